//! Files the commands write on request (`tap --capture`, `replay --capture-to`, `learn -o`):
//! made new, or with `--force` replacing a regular file, never anything else (see
//! `serialtwin_core::output`).

use serialtwin_capture::CaptureError;
use serialtwin_core::output::{Existing, OutputError};

/// What `--force` asks for.
pub(crate) fn existing(force: bool) -> Existing {
    if force {
        Existing::Replace
    } else {
        Existing::Refuse
    }
}

/// `e`, saying how to replace the file when it is only in the way because it exists.
pub(crate) fn with_hint(e: impl Into<anyhow::Error>) -> anyhow::Error {
    let e = e.into();
    let exists = match (
        e.downcast_ref::<OutputError>(),
        e.downcast_ref::<CaptureError>(),
    ) {
        (Some(OutputError::Exists { path }), _)
        | (_, Some(CaptureError::Create(OutputError::Exists { path }))) => Some(path.clone()),
        _ => None,
    };
    match exists {
        Some(path) => anyhow::anyhow!(
            "{} already exists: pass --force to replace it",
            path.display()
        ),
        None => e,
    }
}
