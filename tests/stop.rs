//! A process whose device handlers never return still stops on a signal, with its links and
//! their lock files removed: the stop signals are taken by [`Stopper`]'s own thread, not by
//! the runtime the stuck handlers hold.
//!
//! This test has its own `main` (`harness = false`): a `Stopper` must be installed while the
//! process has one thread, which the test harness never allows. The same binary is the child
//! (with `SERIALTWIN_STUCK_DIR` set) and the parent that signals it.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serialtwin::{Context, Device, Fleet, PortSpec, Replies, Stopper};

/// The child's link directory.
const CHILD: &str = "SERIALTWIN_STUCK_DIR";
/// Ports, each stuck in its handler: as many as the child runtime's workers, so none is free.
const PORTS: usize = 2;
/// The safety net: a child that has not stopped by then has failed.
const PATIENCE: Duration = Duration::from_secs(20);

/// Handlers stuck so far.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// A device whose handler never returns.
struct Stuck;

impl Device for Stuck {
    type Error = std::convert::Infallible;

    fn handle(&mut self, _: &[u8], _: &mut Context, _: &mut Replies) -> Result<(), Self::Error> {
        STUCK.fetch_add(1, Ordering::SeqCst);
        loop {
            std::thread::park();
        }
    }
}

fn main() {
    match std::env::var_os(CHILD) {
        Some(dir) => child(Path::new(&dir)),
        None => parent(),
    }
}

/// Serve `PORTS` stuck devices in `dir`; say `ready`, then `stuck N` as each handler sticks.
fn child(dir: &Path) {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let stopper = Stopper::install(Duration::from_millis(1500)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(PORTS)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Every port on its own task, so the stuck handlers hold the runtime's workers.
        let fleet = Fleet::without_lanes();
        let ports = fleet
            .spawn_all((0..PORTS).map(|i| {
                let spec = PortSpec::new(format!("p{i}")).link(dir.join(format!("ttyUSB{i}")));
                (spec, Stuck)
            }))
            .await
            .unwrap();
        stopper.release_links_of(fleet.links());
        println!("ready {}", ports.len());
        // `stuck N` as the Nth handler sticks: the parent asks the next port only then.
        std::thread::spawn(|| {
            let mut told = 0;
            while told < PORTS {
                while told < STUCK.load(Ordering::SeqCst) {
                    told += 1;
                    println!("stuck {told}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        stopper.signalled().await;
        fleet.shutdown().await;
        stopper.stopped();
    });
}

/// Start the child, make every handler stick, send SIGINT: the child exits by itself, its
/// links and lock files gone.
fn parent() {
    let dir = common::test_dir("stop");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, &*dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    // The child's lines through a thread, so that a line that never comes fails the test
    // after the safety net instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            "(nothing within the safety net: the child was killed)".to_owned()
        })
    };
    let ready = next();
    assert_eq!(ready, format!("ready {PORTS}"), "the child did not start");
    let paths: Vec<PathBuf> = (0..PORTS).map(|i| dir.join(format!("ttyUSB{i}"))).collect();
    // One request at a time, each asked once the one before holds its worker: two at once
    // may both be woken on one worker, and the one left in its LIFO slot (which no other
    // worker steals) never runs, so the test would wait for it for ever.
    let mut clients = Vec::new();
    for (i, link) in paths.iter().enumerate() {
        clients.push(ask(link));
        assert_eq!(
            next(),
            format!("stuck {}", i + 1),
            "every handler holds a worker"
        );
    }

    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(clients);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "a forced stop is a failure: {stderr}"
    );
    assert!(stderr.contains("not stopped in time"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&*dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "links and lock files removed: {left:?}");
    println!("test a_stuck_device_does_not_keep_the_process_or_its_links ... ok");
}

/// Open `link` as a client and send one request, which its device will never finish.
fn ask(link: &Path) -> std::fs::File {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(link)
        .unwrap();
    f.write_all(b"HELLO\r\n").unwrap();
    f
}
