//! Open-file and pty limits ([`serialtwin_core::limits`]): reading and raising
//! `RLIMIT_NOFILE`, and errors that name the limit hit.

use std::io;
use std::path::Path;

use nix::errno::Errno;
use serialtwin_core::limits::{
    LimitError, NofileLimit, NofileRaise, PtyUsage, classify, classify_pty, nofile_limit,
    pty_usage, raise_nofile_limit,
};

fn os_error(errno: Errno) -> io::Error {
    io::Error::from_raw_os_error(errno as i32)
}

#[test]
fn nofile_limit_is_consistent() {
    let limit = nofile_limit().unwrap();
    assert!(limit.soft <= limit.hard, "{limit:?}");
}

#[test]
fn raise_reaches_the_hard_limit_and_is_idempotent() {
    let first = raise_nofile_limit().unwrap();
    assert_eq!(first.new_soft, first.hard);
    assert!(first.new_soft >= first.old_soft);
    assert_eq!(
        nofile_limit().unwrap(),
        NofileLimit {
            soft: first.hard,
            hard: first.hard
        }
    );
    let second = raise_nofile_limit().unwrap();
    assert!(!second.raised());
    assert_eq!(
        second,
        NofileRaise {
            old_soft: first.hard,
            new_soft: first.hard,
            hard: first.hard
        }
    );
}

#[test]
fn emfile_names_rlimit_nofile() {
    let err = classify(&os_error(Errno::EMFILE)).unwrap();
    assert!(
        matches!(err, LimitError::FileDescriptors { limit: Some(_) }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("RLIMIT_NOFILE"), "{text}");
    assert!(text.contains("ulimit -n"), "{text}");
    assert!(text.contains("raise_nofile_limit"), "{text}");
    // Through the pty classifier too.
    assert!(matches!(
        classify_pty(&os_error(Errno::EMFILE)),
        Some(LimitError::FileDescriptors { .. })
    ));
}

#[test]
fn enfile_names_the_system_table() {
    let err = classify(&os_error(Errno::ENFILE)).unwrap();
    assert!(matches!(err, LimitError::SystemFiles));
    assert!(err.to_string().contains("fs.file-max"));
}

#[test]
fn enospc_from_a_pty_names_kernel_pty_max() {
    let err = classify_pty(&os_error(Errno::ENOSPC)).unwrap();
    assert!(matches!(err, LimitError::Ptys { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("kernel.pty.max"), "{text}");
    assert!(text.contains("sysctl -w kernel.pty.max="), "{text}");
    assert!(text.contains("kernel.pty.reserve"), "{text}");
    // From an ordinary file, ENOSPC is a full disk, not a limit.
    assert!(classify(&os_error(Errno::ENOSPC)).is_none());
}

#[test]
fn other_errors_are_left_alone() {
    assert!(classify(&os_error(Errno::ENOENT)).is_none());
    assert!(classify_pty(&os_error(Errno::EACCES)).is_none());
    assert!(classify_pty(&io::Error::other("not an os error")).is_none());
}

#[test]
fn messages_without_numbers_still_name_the_limit() {
    let fds = LimitError::FileDescriptors { limit: None }.to_string();
    assert!(fds.contains("RLIMIT_NOFILE"), "{fds}");
    let ptys = LimitError::Ptys { usage: None }.to_string();
    assert!(ptys.contains("kernel.pty.max"), "{ptys}");
    let usage = PtyUsage {
        max: 4096,
        in_use: 3072,
        reserve: Some(1024),
    };
    let ptys = LimitError::Ptys { usage: Some(usage) }.to_string();
    assert!(ptys.contains("3072 of 4096 in use"), "{ptys}");
    assert!(ptys.contains("= 3072 are usable"), "{ptys}");
}

#[cfg(target_os = "linux")]
#[test]
fn pty_usage_parses() {
    if !Path::new("/proc/sys/kernel/pty/max").exists() {
        return;
    }
    let usage = pty_usage().expect("readable /proc/sys/kernel/pty");
    assert!(usage.max > 0);
    assert!(usage.in_use <= usage.max, "{usage:?}");
}
