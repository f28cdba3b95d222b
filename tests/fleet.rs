//! Fleets: many ports on one runtime, their links, their limits, their shutdown.

mod common;

use std::io::Read;
use std::path::PathBuf;

use common::{Counter, ask, open_client, test_dir};
use serialtwin::{Fleet, FleetError, LinkError, PortSpec, limits};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_answer_concurrently() {
    let dir = test_dir("fleet200");
    let fleet = Fleet::new();
    let ports = fleet
        .spawn_all((0..200).map(|i| {
            (
                PortSpec::new(format!("dev{i}")).link(dir.join(format!("ttyUSB{i}"))),
                Counter::default(),
            )
        }))
        .await
        .unwrap();
    let clients = ports.iter().map(|p| {
        let path = p.link().unwrap().to_owned();
        tokio::spawn(async move {
            let mut c = open_client(&path);
            for i in 1..=5u32 {
                assert_eq!(ask(&mut c, b"INC\r\n").await, format!("{i}\r\n").as_bytes());
            }
        })
    });
    for c in futures::future::join_all(clients).await {
        c.unwrap();
    }
    fleet.shutdown().await;
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "links or lock files left behind: {left:?}");
}

#[tokio::test]
async fn a_live_link_is_refused_to_a_second_instance() {
    let dir = test_dir("live");
    let link = dir.join("ttyUSB0");
    let first = Fleet::new();
    let port = first
        .spawn(PortSpec::new("first").link(&link), Counter::default())
        .unwrap();
    let second = Fleet::new();
    let err = second
        .spawn(PortSpec::new("second").link(&link), Counter::default())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            FleetError::Link {
                source: LinkError::Busy { .. },
                ..
            }
        ),
        "{err}"
    );
    // The first instance's link is untouched and still works.
    assert_eq!(std::fs::read_link(&link).unwrap(), port.pty());
    let mut c = open_client(&link);
    assert_eq!(ask(&mut c, b"INC\r\n").await, b"1\r\n");
    first.shutdown().await;
    assert!(!link.exists());
}

#[tokio::test]
async fn a_regular_file_is_never_replaced() {
    let dir = test_dir("regular");
    let path = dir.join("ttyUSB0");
    std::fs::write(&path, b"precious").unwrap();
    let fleet = Fleet::new();
    let err = fleet
        .spawn(PortSpec::new("p").link(&path), Counter::default())
        .unwrap_err();
    assert!(matches!(&err, FleetError::Link { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

/// Child half: make a port with a link, announce it, wait to be killed.
#[tokio::test]
#[ignore = "run as a child process by a_stale_link_of_a_killed_instance_is_taken_over"]
async fn child_serve_on_link() {
    if !common::is_child() {
        return;
    }
    let link = PathBuf::from(std::env::var("SERIALTWIN_LINK").unwrap());
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("doomed").link(&link), Counter::default())
        .unwrap();
    println!("READY {}", port.pty().display());
    tokio::time::sleep(std::time::Duration::from_hours(1)).await;
}

#[tokio::test]
async fn a_stale_link_of_a_killed_instance_is_taken_over() {
    let dir = test_dir("stale");
    let link = dir.join("ttyUSB0");
    let mut child = common::child(
        "child_serve_on_link",
        &[("SERIALTWIN_LINK", link.to_str().unwrap())],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while !text.contains("READY") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "child ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The killed instance left its link (and lock file) behind.
    assert!(std::fs::symlink_metadata(&link).is_ok());
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("heir").link(&link), Counter::default())
        .unwrap();
    assert_eq!(std::fs::read_link(&link).unwrap(), port.pty());
    let mut c = open_client(&link);
    assert_eq!(ask(&mut c, b"INC\r\n").await, b"1\r\n");
    drop(c);
    fleet.shutdown().await;
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link removed at shutdown"
    );
}

#[tokio::test]
async fn shutdown_leaves_a_link_that_someone_else_repointed() {
    let dir = test_dir("repointed");
    let link = dir.join("ttyUSB0");
    let fleet = Fleet::new();
    fleet
        .spawn(PortSpec::new("p").link(&link), Counter::default())
        .unwrap();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    fleet.shutdown().await;
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("/dev/null")
    );
}

/// Child half of the limit tests: set the open-file limits from the environment, then try a
/// fleet of `SERIALTWIN_PORTS` ports and report what happened on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the fd-limit tests"]
async fn child_big_fleet() {
    use nix::sys::resource::{Resource, setrlimit};
    if !common::is_child() {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap().parse::<u64>().unwrap();
    let (soft, hard) = (env("SERIALTWIN_SOFT"), env("SERIALTWIN_HARD"));
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    // What the CLI does at start.
    let raised = limits::raise_nofile_limit().unwrap();
    println!(
        "LIMIT {} -> {} (hard {})",
        raised.old_soft, raised.new_soft, raised.hard
    );
    let n = env("SERIALTWIN_PORTS");
    let dir = PathBuf::from(std::env::var("SERIALTWIN_DIR").unwrap());
    let fds_before = common::open_fds();
    let fleet = Fleet::new();
    let result = fleet
        .spawn_all((0..n).map(|i| {
            (
                PortSpec::new(format!("p{i}")).link(dir.join(format!("ttyUSB{i}"))),
                Counter::default(),
            )
        }))
        .await;
    match result {
        Ok(ports) => {
            // Every port answers (checked on a sample, to stay inside the limit's headroom).
            for p in ports.iter().step_by(97) {
                let mut c = open_client(p.pty());
                assert_eq!(ask(&mut c, b"INC\r\n").await, b"1\r\n");
            }
            println!("OK {}", ports.len());
            fleet.shutdown().await;
        }
        Err(e) => {
            println!("ERR {e}");
            fleet.shutdown().await;
        }
    }
    let left = std::fs::read_dir(&dir).unwrap().count();
    println!(
        "LEFT links={left} fds={}",
        common::open_fds().saturating_sub(fds_before)
    );
}

fn run_big_fleet(soft: u64, hard: u64, ports: u64) -> String {
    let dir = test_dir("big");
    let out = common::child(
        "child_big_fleet",
        &[
            ("SERIALTWIN_SOFT", &soft.to_string()),
            ("SERIALTWIN_HARD", &hard.to_string()),
            ("SERIALTWIN_PORTS", &ports.to_string()),
            ("SERIALTWIN_DIR", dir.to_str().unwrap()),
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_thousand_ports_with_a_soft_limit_of_1024() {
    let hard = limits::nofile_limit().unwrap().hard;
    assert!(
        hard >= 4096,
        "this test needs a hard RLIMIT_NOFILE of at least 4096, have {hard}"
    );
    let out = run_big_fleet(1024, hard, 1000);
    assert!(out.contains("LIMIT 1024 -> "), "{out}");
    assert!(out.contains("OK 1000"), "{out}");
    assert!(out.contains("LEFT links=0 fds=0"), "{out}");
}

#[test]
fn a_hard_limit_of_256_fails_naming_rlimit_nofile_and_leaves_nothing() {
    let out = run_big_fleet(256, 256, 1000);
    let err = out
        .lines()
        .find(|l| l.starts_with("ERR "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(err.contains("RLIMIT_NOFILE"), "{err}");
    assert!(out.contains("LEFT links=0 fds=0"), "{out}");
}

/// Two ports, one shared state: a parallel group's devices share a plant the same way.
#[tokio::test]
async fn devices_on_different_ports_share_state() {
    use std::sync::{Arc, Mutex};

    use serialtwin::{Context, Device, Replies};

    struct Shared(Arc<Mutex<u32>>);
    impl Device for Shared {
        type Error = std::convert::Infallible;
        fn handle(
            &mut self,
            _: &[u8],
            _: &mut Context,
            out: &mut Replies,
        ) -> Result<(), Self::Error> {
            let mut n = self.0.lock().unwrap();
            *n += 1;
            out.push(n.to_string());
            Ok(())
        }
    }
    let total = Arc::new(Mutex::new(0));
    let fleet = Fleet::new();
    let a = fleet
        .spawn(PortSpec::new("a"), Shared(total.clone()))
        .unwrap();
    let b = fleet
        .spawn(PortSpec::new("b"), Shared(total.clone()))
        .unwrap();
    let (mut ca, mut cb) = (open_client(a.pty()), open_client(b.pty()));
    assert_eq!(ask(&mut ca, b"X\r\n").await, b"1\r\n");
    assert_eq!(ask(&mut cb, b"X\r\n").await, b"2\r\n");
    assert_eq!(ask(&mut ca, b"X\r\n").await, b"3\r\n");
    fleet.shutdown().await;
}

/// Keeps a copy of every request it was sent (a recorder, a device with a history), while
/// the serving loops lend each other buffers: what it was handed must be each port's own.
struct Keeper {
    kept: std::sync::Arc<std::sync::Mutex<Vec<bytes::Bytes>>>,
}

impl serialtwin::Device for Keeper {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        request: &[u8],
        _: &mut serialtwin::Context,
        replies: &mut serialtwin::Replies,
    ) -> Result<(), Self::Error> {
        let mut kept = self.kept.lock().unwrap();
        kept.push(bytes::Bytes::copy_from_slice(request));
        replies.push(kept.len().to_string());
        Ok(())
    }
}

/// The request port `port` sends in `round`.
fn request(port: usize, round: usize) -> String {
    format!("P{port}R{round}{}", "x".repeat((port + round) % 17))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_a_device_keeps_stay_intact_while_many_ports_serve() {
    const PORTS: usize = 40;
    const ROUNDS: usize = 25;
    let fleet = Fleet::new();
    let kept: Vec<_> = (0..PORTS).map(|_| std::sync::Arc::default()).collect();
    let ports = fleet
        .spawn_all(kept.iter().enumerate().map(|(i, kept)| {
            (
                PortSpec::new(format!("keeper{i}")),
                Keeper {
                    kept: std::sync::Arc::clone(kept),
                },
            )
        }))
        .await
        .unwrap();
    let clients = ports.iter().enumerate().map(|(port, p)| {
        let path = p.pty().to_owned();
        tokio::spawn(async move {
            let mut c = open_client(&path);
            let mut count = 0;
            for round in 1..=ROUNDS {
                // Lengths vary so that frames land at different offsets of the lent buffers;
                // every third round sends two requests in one write.
                let one = request(port, round);
                if round % 3 == 0 {
                    c.write_all(format!("{one}\r\n{one}b\r\n").as_bytes())
                        .await
                        .unwrap();
                    for _ in 0..2 {
                        count += 1;
                        assert_eq!(
                            common::read_line(&mut c).await,
                            format!("{count}\r\n").as_bytes()
                        );
                    }
                } else {
                    count += 1;
                    let reply = ask(&mut c, format!("{one}\r\n").as_bytes()).await;
                    assert_eq!(reply, format!("{count}\r\n").as_bytes());
                }
            }
        })
    });
    for c in futures::future::join_all(clients).await {
        c.unwrap();
    }
    for (port, kept) in kept.iter().enumerate() {
        let mut expected = Vec::new();
        for round in 1..=ROUNDS {
            let one = request(port, round);
            if round % 3 == 0 {
                expected.push(format!("{one}b"));
            }
            expected.insert(expected.len() - usize::from(round % 3 == 0), one);
        }
        let got: Vec<String> = kept
            .lock()
            .unwrap()
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        assert_eq!(got, expected, "port {port}");
    }
    fleet.shutdown().await;
}

/// A name the control protocol cannot address is refused before anything is made: no link, no
/// lock file, no port; and `spawn_all` stops the ports it already started.
#[tokio::test]
async fn a_port_name_that_is_not_one_word_is_refused() {
    let dir = test_dir("badname");
    let fleet = Fleet::new();
    for name in [
        "inv 0",
        "inv\t0",
        "inv\n0",
        "inv\u{1b}[2J",
        "*",
        "",
        "inv\u{7f}",
    ] {
        let err = fleet
            .spawn(
                PortSpec::new(name).link(dir.join("ttyUSB0")),
                Counter::default(),
            )
            .unwrap_err();
        assert!(matches!(&err, FleetError::Name(_)), "{name:?}: {err}");
        assert!(!err.to_string().contains(['\n', '\t', '\u{1b}']), "{err}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "{name:?} left {left:?}");
        assert!(fleet.is_empty());
    }
    let err = fleet
        .spawn_all([
            (
                PortSpec::new("good").link(dir.join("a")),
                Counter::default(),
            ),
            (
                PortSpec::new("bad one").link(dir.join("b")),
                Counter::default(),
            ),
        ])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"bad one\""), "{err}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "left {left:?}");
    // The same spec with a name of one word starts.
    let port = fleet
        .spawn(
            PortSpec::new("inv-0.a_B").link(dir.join("ttyUSB0")),
            Counter::default(),
        )
        .unwrap();
    assert_eq!(port.name(), "inv-0.a_B");
    fleet.shutdown().await;
}
