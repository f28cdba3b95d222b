//! Helpers shared by the integration tests (each test file that needs one says `mod common;`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A test's own fresh directory, `<system temp>/serialtwin-core-test-<tag>-<pid>-<n>` (the
/// counter keeps tests running in parallel apart), removed with everything in it when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// A new, empty directory; `tag` says in its name which test it is for.
    pub(crate) fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "serialtwin-core-test-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // Only an earlier process of the same pid, killed before its cleanup, leaves one behind.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
