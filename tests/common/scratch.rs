//! A test's own scratch directory under the system temp dir, removed when the test is done,
//! failed or not (`SERIALTWIN_KEEP_TEST_DIRS=1` keeps a failed test's, for a look).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory; derefs to its [`Path`]. Its name is `<prefix>-<tag>-<pid>-<n>`: digits
/// and the given words only, so that no stray substring reaches a client that reads meaning
/// into paths (mppsolar does: `test`, `esp`, `:`...).
#[derive(Debug)]
pub struct Scratch(PathBuf);

/// Make a fresh scratch directory.
pub fn scratch(prefix: &str, tag: &str) -> Scratch {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("SERIALTWIN_KEEP_TEST_DIRS").is_some() {
            eprintln!("test files kept in {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
