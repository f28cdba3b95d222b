//! Pieces both benchmarks' processes use (`pty_fleet` and `soak`).

use std::io::BufRead as _;
use std::process::Command;

/// `program args`'s trimmed stdout, or nothing if it cannot run or fails (for a report's
/// header: the kernel, the commit).
pub(crate) fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The lines of stdin, read by a plain thread of their own so that a server's runtime
/// threads do nothing but serve; the channel closes with stdin.
pub(crate) fn stdin_lines() -> std::io::Result<tokio::sync::mpsc::UnboundedReceiver<String>> {
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })?;
    Ok(lines)
}
