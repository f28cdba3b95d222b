//! `serialtwin models`: the registry of models, as people read it.

use std::fmt::Write as _;

use serialtwin_devices::registry;

use crate::cli::ModelsArgs;

/// `serialtwin models [NAME]`: one line per model, or everything about one.
///
/// # Errors
/// An unknown name.
pub(crate) fn models(args: &ModelsArgs) -> anyhow::Result<()> {
    let Some(name) = &args.name else {
        for m in serialtwin_devices::MODELS {
            println!("{:<10} {}", m.name, m.summary);
        }
        return Ok(());
    };
    let model = registry::find(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown model `{name}` (known: {})",
            registry::names().join(", ")
        )
    })?;
    print!("{model}");
    Ok(())
}

/// What `set` takes, model by model, for `serialtwin ctl --help`.
pub(crate) fn settable_help() -> String {
    let mut out = String::new();
    for m in serialtwin_devices::MODELS {
        for (i, s) in (m.settable)().iter().enumerate() {
            let model = if i == 0 { m.name } else { "" };
            let _ = writeln!(out, "        {model:<10} {:<8} {}", s.key, s.help);
        }
    }
    out
}
