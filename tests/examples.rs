//! The examples a newcomer copies from run, and do what they say.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo run --example NAME`, with a safety net; returns stdout.
fn run_example(name: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["run", "--quiet", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Generous: the example may still need linking.
    let deadline = Instant::now() + Duration::from_mins(5);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("example {name} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_test_fleet_example_answers_on_every_port_and_cleans_up() {
    let out = run_example("test_fleet");
    assert!(out.contains("48 ports answered"), "{out}");
    assert!(out.contains("all links removed"), "{out}");
}

#[test]
fn the_embedded_example_polls_its_device_next_to_its_own_tasks() {
    let out = run_example("embedded");
    let polls = out.lines().filter(|l| l.starts_with("poller: ")).count();
    assert_eq!(polls, 5, "{out}");
    assert!(out.contains("heartbeat: "), "{out}");
}
