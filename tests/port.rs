//! Real ports, real clients: tokio-serial and bare `open(2)` on `/dev/pts/N` and its link.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::bare::bare_open;
use common::{Counter, PATIENCE, ask, open_client, test_dir, wait_for};
use serialtwin::{Fleet, LineEvent, PortSpec, Seen};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn tokio_serial_on_pty_and_link_state_kept_across_100_reopens() {
    let dir = test_dir("reopen");
    let fleet = Fleet::new();
    let port = fleet
        .spawn(
            PortSpec::new("counter").link(dir.join("ttyUSB0")),
            Counter::default(),
        )
        .unwrap();
    assert!(port.pty().starts_with("/dev/pts/"));
    assert_eq!(
        std::fs::read_link(port.link().unwrap()).unwrap(),
        port.pty()
    );
    for i in 1..=100u32 {
        // Alternate between the slave path and the symlink, as different programs would.
        let path = if i % 2 == 0 {
            port.pty()
        } else {
            port.link().unwrap()
        };
        let mut client = open_client(path);
        assert_eq!(
            ask(&mut client, b"INC\r\n").await,
            format!("{i}\r\n").as_bytes()
        );
        drop(client);
    }
    fleet.shutdown().await;
    assert!(!dir.join("ttyUSB0").exists());
}

#[tokio::test]
async fn garbage_without_terminator_then_a_valid_request_is_answered() {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("g"), Counter::default()).unwrap();
    let mut events = port.observations();
    let mut client = open_client(port.pty());
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|i| b'A' + u8::try_from(i % 26).unwrap())
        .collect();
    AsyncWriteExt::write_all(&mut client, &garbage)
        .await
        .unwrap();
    AsyncWriteExt::write_all(&mut client, b"\r\n")
        .await
        .unwrap();
    assert_eq!(ask(&mut client, b"INC\r\n").await, b"1\r\n");
    wait_for(
        &mut events,
        |s| matches!(s, Seen::FrameError(e) if e.contains("longer than")),
    )
    .await;
    fleet.shutdown().await;
}

fn nothing_to_read(file: &mut std::fs::File) -> bool {
    let mut buf = [0u8; 64];
    matches!(file.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn a_reply_produced_after_the_client_left_is_not_read_by_the_next() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("late"), Counter::default())
        .unwrap();
    let mut seen = port.observations();
    let mut first = bare_open(port.pty());
    first.write_all(b"LATE\r\n").unwrap();
    wait_for(
        &mut seen,
        |s| matches!(s, Seen::Frame(_, f) if f.as_ref() == b"LATE"),
    )
    .await;
    drop(first);
    // The device would produce its reply 300 ms later, with nobody there: the departure drops
    // it with everything else still to go out to the departed client.
    wait_for(&mut seen, |s| matches!(s, Seen::Event(LineEvent::Closed))).await;
    let mut second = bare_open(port.pty());
    assert_eq!(port.probe().unwrap().unread().unwrap(), 0);
    assert!(
        nothing_to_read(&mut second),
        "stale bytes delivered to the next client"
    );
    // And the port still answers the new client.
    second.write_all(b"INC\r\n").unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while !got.ends_with(b"\n") {
            let mut b = [0u8; 16];
            match second.read(&mut b) {
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await
    .unwrap();
    // A late reply still on its way would come first: the port answers in order.
    assert_eq!(got, b"1\r\n");
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_reply_the_client_never_read_is_discarded_when_it_leaves() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("unread"), Counter::default())
        .unwrap();
    let mut seen = port.observations();
    let first = {
        let mut f = bare_open(port.pty());
        f.write_all(b"INC\r\n").unwrap();
        f
    };
    wait_for(
        &mut seen,
        |s| matches!(s, Seen::Frame(_, f) if f.as_ref() == b"1\r\n"),
    )
    .await;
    tokio::time::timeout(PATIENCE, async {
        while port.probe().unwrap().unread().unwrap() < 3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the reply waits in the line");
    drop(first);
    wait_for(&mut seen, |s| *s == Seen::Event(LineEvent::Closed)).await;
    assert_eq!(port.probe().unwrap().unread().unwrap(), 0);
    let mut second = bare_open(port.pty());
    assert!(nothing_to_read(&mut second));
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_partial_request_of_a_departed_client_is_forgotten() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("partial"), Counter::default())
        .unwrap();
    let mut seen = port.observations();
    {
        let mut f = bare_open(port.pty());
        f.write_all(b"GARB").unwrap();
    }
    wait_for(&mut seen, |s| *s == Seen::Event(LineEvent::Closed)).await;
    let mut client = open_client(port.pty());
    // Without the reset the device would see "GARBINC".
    assert_eq!(ask(&mut client, b"INC\r\n").await, b"1\r\n");
    fleet.shutdown().await;
}

/// Child half of the exclusive-lock test: open the port with tokio-serial (which sets
/// `TIOCEXCL`), say so, and wait to be killed.
#[tokio::test]
#[ignore = "run as a child process by exclusive_lock_left_by_a_killed_client_is_cleared"]
async fn child_hold_port_exclusively() {
    if !common::is_child() {
        return;
    }
    let path = std::env::var("SERIALTWIN_PORT").unwrap();
    let _client = open_client(std::path::Path::new(&path));
    println!("HOLDING");
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_hours(1)).await;
}

#[tokio::test]
async fn exclusive_lock_left_by_a_killed_client_is_cleared() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("excl"), Counter::default())
        .unwrap();
    let mut seen = port.observations();
    let mut child = common::child(
        "child_hold_port_exclusively",
        &[("SERIALTWIN_PORT", port.pty().to_str().unwrap())],
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while !text.contains("HOLDING") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "child ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        port.probe().unwrap().exclusive().unwrap(),
        "the client set TIOCEXCL"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(&mut seen, |s| *s == Seen::Event(LineEvent::Closed)).await;
    assert!(
        !port.probe().unwrap().exclusive().unwrap(),
        "TIOCEXCL cleared after the client died"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_open_is_seen_before_its_first_frame() {
    let fleet = Fleet::new();
    let port = fleet
        .spawn(PortSpec::new("order"), Counter::default())
        .unwrap();
    let mut seen = port.observations();
    for round in 1..=20u32 {
        let mut client = bare_open(port.pty());
        client.write_all(b"INC\r\n").unwrap();
        let mut order = Vec::new();
        tokio::time::timeout(PATIENCE, async {
            while !matches!(
                order.last(),
                Some(Seen::Frame(serialtwin::Direction::Rx, _))
            ) {
                let o = seen.recv().await.unwrap();
                if matches!(
                    o.seen,
                    Seen::Event(LineEvent::Opened) | Seen::Frame(serialtwin::Direction::Rx, _)
                ) {
                    order.push(o.seen);
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(
            order.first(),
            Some(&Seen::Event(LineEvent::Opened)),
            "round {round}: {order:?}"
        );
        drop(client);
        wait_for(&mut seen, |s| *s == Seen::Event(LineEvent::Closed)).await;
    }
    fleet.shutdown().await;
}

/// Streams 1 KiB readings as fast as it can, and answers `INC` like the counter.
struct Firehose {
    counter: Counter,
    tick: tokio::time::Interval,
}

impl serialtwin::Device for Firehose {
    type Error = std::convert::Infallible;
    fn handle(
        &mut self,
        req: &[u8],
        ctx: &mut serialtwin::Context,
        out: &mut serialtwin::Replies,
    ) -> Result<(), Self::Error> {
        self.counter.handle(req, ctx, out)
    }
    fn sends_unprompted(&self) -> bool {
        true
    }
    async fn unprompted(&mut self, _: &mut serialtwin::Context) -> Option<serialtwin::Reply> {
        self.tick.tick().await;
        Some(serialtwin::Reply::frame(vec![b'x'; 1024]))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_and_leaves_does_not_hang_the_port() {
    let fleet = Fleet::new();
    let tick = tokio::time::interval(Duration::from_millis(2));
    let port = fleet
        .spawn(
            PortSpec::new("hose"),
            Firehose {
                counter: Counter::default(),
                tick,
            },
        )
        .unwrap();
    let mut seen = port.observations();
    let sloth = bare_open(port.pty());
    // Wait until the line is full (the client's 4 KiB read buffer, then the kernel's buffers
    // behind it) and the device is blocked writing: no frame goes out for a while.
    tokio::time::timeout(PATIENCE, async {
        while port.probe().unwrap().unread().unwrap() < 4000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        loop {
            match tokio::time::timeout(Duration::from_millis(300), seen.recv()).await {
                Err(_) => return,
                Ok(Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(e)) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the line fills up");
    drop(sloth);
    // The departure is handled (the stale readings are discarded) although the device was
    // blocked writing when it happened. (Waiting for the `close` observation instead would race
    // the stream of readings through the broadcast's 256-slot window.)
    tokio::time::timeout(PATIENCE, async {
        while port.probe().unwrap().unread().unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stale readings are discarded");
    // The port is not stuck: a new client gets its answer among the readings.
    let mut client = open_client(port.pty());
    AsyncWriteExt::write_all(&mut client, b"INC\r\n")
        .await
        .unwrap();
    // (A leading newline so that an answer arriving first is a line too.)
    let mut stream = b"\n".to_vec();
    tokio::time::timeout(PATIENCE, async {
        // Readings are `x...x\r\n`; the answer is a line of its own among them.
        while !stream.windows(4).any(|w| w == b"\n1\r\n") {
            let mut buf = [0u8; 4096];
            let n = tokio::io::AsyncReadExt::read(&mut client, &mut buf)
                .await
                .unwrap();
            stream.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("an answer");
    fleet.shutdown().await;
}

/// Answers `DUMP` with 2,000 numbered lines (about 26 KiB: more than the line holds).
struct Dumper;

impl serialtwin::Device for Dumper {
    type Error = std::convert::Infallible;
    fn handle(
        &mut self,
        req: &[u8],
        _: &mut serialtwin::Context,
        out: &mut serialtwin::Replies,
    ) -> Result<(), Self::Error> {
        if req == b"DUMP" {
            for i in 0..2000 {
                out.push(format!("line {i:05}"));
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_larger_than_the_line_arrives_whole_once_the_client_reads() {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("dump"), Dumper).unwrap();
    let mut client = open_client(port.pty());
    AsyncWriteExt::write_all(&mut client, b"DUMP\r\n")
        .await
        .unwrap();
    // Not reading yet: the line fills and the device's write waits for room.
    tokio::time::timeout(PATIENCE, async {
        while port.probe().unwrap().unread().unwrap() < 4000 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the line fills up");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Now read: the waiting write must learn that there is room again, and nothing is lost.
    let expected: Vec<u8> = (0..2000)
        .flat_map(|i| format!("line {i:05}\r\n").into_bytes())
        .collect();
    let mut got = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while got.len() < expected.len() {
            let mut buf = [0u8; 4096];
            let n = tokio::io::AsyncReadExt::read(&mut client, &mut buf)
                .await
                .unwrap();
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the whole reply arrives");
    assert_eq!(got, expected);
    // And the port still answers.
    assert_eq!(ask(&mut client, b"DUMP\r\n").await, b"line 00000\r\n");
    fleet.shutdown().await;
}

#[tokio::test]
async fn owner_and_mode_are_set_on_the_slave_and_kept_across_an_unplug() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let me = nix::unistd::geteuid();
    // Giving a node away needs CAP_CHOWN; otherwise give it to ourselves (still a real chown).
    let (uid, gid) = if me.is_root() {
        (65_534, 65_534)
    } else {
        (me.as_raw(), nix::unistd::getegid().as_raw())
    };
    let fleet = Fleet::new();
    let mut spec = PortSpec::new("owned");
    spec.owner = Some((uid, gid));
    spec.mode = Some(0o660);
    let port = fleet.spawn(spec, Counter::default()).unwrap();
    let check = |path: &std::path::Path| {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", path.display());
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o660,
            "{}",
            path.display()
        );
    };
    check(port.pty());
    // A client on the old pty learns when it is gone (the port reads as unplugged by then).
    let mut client = open_client(port.pty());
    port.unplug(Duration::from_millis(50)).await.unwrap();
    common::expect_hangup(&mut client).await;
    drop(client);
    let back = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(p) = port.current_pty() {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("plugged back in");
    check(&back);
    fleet.shutdown().await;
}

/// Fails on purpose with a scratch directory in use (run by
/// `a_failing_test_leaves_no_scratch_directory`, in a child process).
#[test]
#[ignore = "fails on purpose; run by a_failing_test_leaves_no_scratch_directory"]
fn fails_with_a_scratch_directory() {
    if !common::is_child() {
        return;
    }
    let dir = test_dir("failing");
    std::fs::write(dir.join("note"), b"left by a failing test").unwrap();
    println!("SCRATCH {}", dir.display());
    panic!("failing on purpose");
}

/// A test that fails leaves nothing behind in the temp directory: a suite that fails a few
/// times a day must not fill `/tmp`.
#[test]
fn a_failing_test_leaves_no_scratch_directory() {
    let out = common::child("fails_with_a_scratch_directory", &[])
        .env_remove("SERIALTWIN_KEEP_TEST_DIRS")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .find_map(|l| l.split("SCRATCH ").nth(1))
        .unwrap_or_else(|| panic!("the child names its directory: {stdout}"));
    assert!(
        !std::path::Path::new(dir).exists(),
        "{dir} left behind by a failing test"
    );
}
