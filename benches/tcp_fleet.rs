//! `cargo bench --bench tcp_fleet`: 10,000 network-only devices in one process (issue 20).
//!
//! 1. 10,000 ports, each a device on its own TCP address (127.0.0.1, ports 20,000-29,999:
//!    below the kernel's ephemeral range, 32,768 and up, so no client socket takes one), with
//!    no pty: user memory per device, from the process's resident size before and after.
//! 2. Clients in waves of at most 4,000: each connects to a device, asks once and must be
//!    answered within the deadline, then all of the wave close. Connections set up (connect
//!    and first answer) per second.
//! 3. 1,000 clients connected at once, each asking again as soon as it is answered, for a few
//!    seconds: round trips per second, against a minimal tokio TCP responder (one listener,
//!    one task per connection answering each line) driven the same way in the same run.
//!
//! The descriptor budget: the hard open-file limit here is 20,000 and cannot be raised.
//! 10,000 listeners, plus 4,000 client sockets and the 4,000 connections accepted for them in
//! a wave, plus the runtime's own: about 18,020. So a wave is at most 4,000 clients.
//!
//! Targets: every client of every wave answered within the deadline; round trips at 1,000
//! clients at least 0.9 times the minimal responder's. Not part of the test suite.
//!
//! `--serve serialtwin|responder [--devices N]` serves N devices (or N connections of the
//! responder) on a `current_thread` runtime instead, printing `ready <address>...`, until its
//! stdin closes: the server child `benches/pty_fleet/instructions.py --tcp` counts under
//! callgrind, clients outside it, instructions per round trip being the figure a busy machine
//! does not move.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serialtwin::{Context, Device, Fleet, Medium, PortSpec, Replies};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const DEVICES: u16 = 10_000;
const FIRST_PORT: u16 = 20_000;
const WAVE: usize = 4_000;
const DEADLINE: Duration = Duration::from_secs(10);
const CLIENTS: usize = 1_000;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;

/// The middle of `rates`.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Answers `PING` with `PONG`: the least a device can do, so what is measured is serving.
struct Pong;

impl Device for Pong {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req == b"PING" {
            out.push("PONG");
        }
        Ok(())
    }
}

/// The process's resident size in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Ask once and wait for the answer.
async fn ping(stream: &mut BufReader<TcpStream>, line: &mut String) -> bool {
    if stream.get_mut().write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    line.clear();
    matches!(stream.read_line(line).await, Ok(n) if n > 0) && line.trim_end() == "PONG"
}

/// The process's CPU time so far (user and system), in seconds.
fn cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command's closing parenthesis: fields 14 and 15 are utime and stime.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    #[expect(clippy::cast_precision_loss, reason = "a time")]
    let seconds = ticks as f64 / 100.0;
    seconds
}

/// `CLIENTS` clients, one per address, asking in a loop for `ROUND`: round trips a second,
/// and the process's CPU time per round trip (clients included, the same for both sides).
async fn round_trips(addresses: &[SocketAddr]) -> (f64, f64) {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + ROUND;
    let mut tasks = Vec::new();
    for &addr in addresses.iter().take(CLIENTS) {
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = BufReader::new(TcpStream::connect(addr).await.unwrap());
            let mut line = String::new();
            tokio::time::sleep_until(start.into()).await;
            let mut mine = 0_u64;
            while Instant::now() < end {
                assert!(ping(&mut stream, &mut line).await, "no answer from {addr}");
                mine += 1;
            }
            done.fetch_add(mine, Ordering::Relaxed);
        }));
    }
    tokio::time::sleep_until(start.into()).await;
    let cpu_start = cpu();
    for task in tasks {
        task.await.unwrap();
    }
    let cpu_used = cpu() - cpu_start;
    #[expect(clippy::cast_precision_loss, reason = "a count")]
    let trips = done.load(Ordering::Relaxed) as f64;
    (trips / ROUND.as_secs_f64(), cpu_used / trips)
}

/// The minimal responder: one listener, a task per connection answering each line.
async fn minimal_responder() -> SocketAddr {
    minimal_responder_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// [`minimal_responder`] on `addr`.
async fn minimal_responder_on(addr: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    line.clear();
                    match stream.read_line(&mut line).await {
                        Ok(n) if n > 0 => {
                            if stream.get_mut().write_all(b"PONG\r\n").await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
        }
    });
    addr
}

/// `--serve serialtwin|responder [--devices N]`: N devices on free ports (or the responder,
/// N times), their addresses on stdout, served until stdin closes.
fn serve_only(what: &str, devices: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let fleet = Fleet::new();
        let mut addresses = Vec::new();
        for i in 0..devices {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            addresses.push(match what {
                "serialtwin" => {
                    let mut spec = PortSpec::new(format!("dev{i}"));
                    spec.medium = Medium::Tcp(any);
                    let port = fleet.spawn(spec, Pong).unwrap_or_else(|e| panic!("{e}"));
                    port.address().unwrap()
                }
                "responder" => minimal_responder_on(any).await,
                other => panic!("--serve serialtwin or responder, not {other}"),
            });
        }
        let words: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        println!("ready {}", words.join(" "));
        // Until stdin closes (its reader on a thread of its own: stdin is no socket).
        let (closed, wait) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            let _ = closed.send(());
        });
        let _ = wait.await;
        fleet.shutdown().await;
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(what) = value("--serve") {
        let devices = value("--devices").map_or(1, |n| n.parse().expect("--devices N"));
        serve_only(&what, devices);
        return;
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fleet_bench());
}

/// The benchmark itself.
async fn fleet_bench() {
    println!("tcp_fleet: {DEVICES} network-only devices in one process");
    let before = resident();
    let fleet = Fleet::new();
    let started = Instant::now();
    let mut addresses = Vec::new();
    for i in 0..DEVICES {
        let addr = SocketAddr::from(([127, 0, 0, 1], FIRST_PORT + i));
        let mut spec = PortSpec::new(format!("dev{i}"));
        spec.medium = Medium::Tcp(addr);
        fleet.spawn(spec, Pong).unwrap_or_else(|e| panic!("{e}"));
        addresses.push(addr);
    }
    let spawned = started.elapsed();
    let after = resident();
    #[expect(clippy::cast_precision_loss, reason = "a size")]
    let grown = (after - before) as f64;
    let per_device = grown / f64::from(DEVICES);
    println!(
        "  {DEVICES} listening in {:.2} s; resident {:.1} MiB more: {:.0} bytes per device",
        spawned.as_secs_f64(),
        grown / 1_048_576.0,
        per_device
    );

    let mut failed = 0;
    for (n, wave) in addresses.chunks(WAVE).enumerate() {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for &addr in wave {
            tasks.push(tokio::spawn(async move {
                tokio::time::timeout(DEADLINE, async move {
                    let mut stream = BufReader::new(TcpStream::connect(addr).await.ok()?);
                    let mut line = String::new();
                    ping(&mut stream, &mut line).await.then_some(stream)
                })
                .await
                .ok()
                .flatten()
            }));
        }
        let mut open = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Some(stream) => open.push(stream),
                None => failed += 1,
            }
        }
        let took = started.elapsed();
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let rate = open.len() as f64 / took.as_secs_f64();
        println!(
            "  wave {n}: {} of {} connected and answered in {:.2} s: {rate:.0} connections/s",
            open.len(),
            wave.len(),
            took.as_secs_f64()
        );
        drop(open);
        // The closes reach the devices before the next wave's descriptors are taken.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Alternated, medians: the machine's drift between two runs is not the difference.
    let responder = minimal_responder().await;
    let (mut ours, mut theirs, mut our_cpu, mut their_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (rate, cpu) = round_trips(&addresses).await;
        let (minimal_rate, minimal_cpu) = round_trips(&vec![responder; CLIENTS]).await;
        println!(
            "  round {round}: serialtwin {rate:.0} round trips/s ({:.1} us CPU each), minimal \
             responder {minimal_rate:.0} ({:.1} us)",
            cpu * 1e6,
            minimal_cpu * 1e6
        );
        ours.push(rate);
        theirs.push(minimal_rate);
        our_cpu.push(cpu);
        their_cpu.push(minimal_cpu);
    }
    let (serialtwin, minimal) = (median(ours), median(theirs));
    let ratio = serialtwin / minimal;
    let cpu_ratio = median(their_cpu) / median(our_cpu);
    println!(
        "  {CLIENTS} clients, medians of {ROUNDS}: serialtwin {serialtwin:.0} round trips/s, \
         minimal tokio responder {minimal:.0}: {ratio:.2}x (CPU per round trip: {cpu_ratio:.2}x \
         the responder's efficiency)"
    );
    let ok = failed == 0 && ratio >= 0.9;
    println!(
        "  targets: every client answered within {} s ({failed} not): {}; >= 0.9x: {}",
        DEADLINE.as_secs(),
        if failed == 0 { "met" } else { "MISSED" },
        if ratio >= 0.9 { "met" } else { "MISSED" }
    );
    fleet.shutdown().await;
    if !ok {
        std::process::exit(1);
    }
}
