//! Files written on request ([`serialtwin_core::output`]): new files owner-only, nothing
//! already there overwritten unless asked, symlinks, FIFOs and directories never written.

mod common;

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;

use serialtwin_core::output::{Existing, OutputError, create};

use common::TempDir;

#[test]
fn a_new_file_is_created_owner_only() {
    let dir = TempDir::new("output-new");
    let path = dir.0.join("a.jsonl");
    create(&path, Existing::Refuse)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o077, 0, "no rights for others");
    assert_eq!(std::fs::read(&path).unwrap(), b"x");
}

#[test]
fn an_existing_file_is_kept_unless_replacing() {
    let dir = TempDir::new("output-exists");
    let path = dir.0.join("a.jsonl");
    std::fs::write(&path, b"precious").unwrap();
    let e = create(&path, Existing::Refuse).unwrap_err();
    assert!(matches!(e, OutputError::Exists { .. }), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    create(&path, Existing::Replace)
        .unwrap()
        .write_all(b"new")
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
}

#[test]
fn symlinks_fifos_and_directories_are_never_written() {
    let dir = TempDir::new("output-odd");
    let victim = dir.0.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = dir.0.join("link.jsonl");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dangling = dir.0.join("dangling.jsonl");
    std::os::unix::fs::symlink(dir.0.join("nowhere"), &dangling).unwrap();
    let fifo = dir.0.join("fifo.jsonl");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    for (path, what) in [
        (&link, "a symbolic link"),
        (&dangling, "a symbolic link"),
        (&fifo, "a FIFO"),
        (&dir.0, "a directory"),
    ] {
        for existing in [Existing::Refuse, Existing::Replace] {
            match create(path, existing) {
                Err(OutputError::NotRegular { what: found, .. }) => {
                    assert_eq!(found, what, "{}", path.display());
                }
                other => panic!("{} {existing:?}: {other:?}", path.display()),
            }
        }
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(
        !dir.0.join("nowhere").exists(),
        "a dangling link is not followed"
    );
}
