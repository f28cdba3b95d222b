//! The fleet benchmark: how close serialtwin gets to the kernel's pty limit, side by side.
//!
//! ```text
//! cargo bench --bench pty_fleet                     # full run (~4.5 min: paced and Modbus too)
//! cargo bench --bench pty_fleet -- --quick          # short run (< 1 min)
//! cargo bench --bench pty_fleet -- --no-paced       # the closed loop only (~1.5 min)
//! cargo bench --bench pty_fleet -- --paced-only     # the paced section only (~2 min)
//! cargo bench --bench pty_fleet -- --modbus-only    # the Modbus rows only (~1 min)
//! cargo bench --bench pty_fleet -- --no-modbus      # everything but the Modbus rows
//! cargo bench --bench pty_fleet -- --json out.json  # JSON path (default target/bench/pty_fleet.json)
//! cargo bench --bench pty_fleet -- --rt multi       # serialtwin on a 2-worker multi_thread runtime
//! cargo bench --bench pty_fleet -- --ports 100,1000 --reps 3 --secs 1
//! cargo bench --bench pty_fleet -- --against bare   # the limit vs a variant (see below)
//! cargo bench --bench pty_fleet -- --against registry  # devices built from a config
//! ```
//!
//! Two servers, each in a child process (the bench re-executes itself with `--serve KIND`):
//! - **limit**: one thread, level-triggered epoll over plain raw ptys, answering `QPIGS\r\n`
//!   with a fixed 110-byte line — no runtime, no framing layer, what a C responder would do;
//! - **serialtwin**: a [`serialtwin::Fleet`] of minimal devices through the public API (the
//!   device pushes the 108-byte payload, the default CRLF framer adds `\r\n`), on a
//!   `current_thread` runtime by default — the same single thread the limit gets.
//!
//! `--against registry` serves the same fleet with devices the model registry built from a
//! config (the `scripted` model answering `QPIGS`, boxed, as `serialtwin run` makes them): what
//! a fleet of config-built devices costs.
//!
//! `--against bare|api` replaces serialtwin with a yardstick, to see where the gap to the limit
//! comes from: `bare` is the least a tokio program can do on serialtwin's pty (a task per port:
//! read, count lines, write the reply), `api` the same through serialtwin's framer, `Device` and
//! `Replies` and nothing else (no cancellation, control, events, observers, faults or line).
//!
//! One client (this process, one thread, epoll over every slave, raw and nonblocking) drives
//! both with a closed loop, one request outstanding per port, alternating the servers window by
//! window (ABBA) so that a noisy machine hurts both alike. Nothing is pinned. See
//! `docs/performance.md` for the numbers and what moved them.
//!
//! After the closed loop comes the **paced section** (issue 17; `paced.rs`): PI30-like ports on
//! a paced 2400-baud 8N1 line, polled open loop on a fixed schedule — one quiet port's reply
//! read by read, 1,000 ports paced against the same unpaced and against the limit paced (every
//! 2 s per port, the three in turns), and 4,000 paced ports, or as many as the machine allows,
//! every second. Its figures are the server's CPU per answer (and the kworkers', and the
//! machine's), the share of polls sent on schedule and answered whole in time, and how each
//! reply arrives.
//!
//! Then the **Modbus rows** (issue 18; `modbus.rs`): a read of ten holding registers at 100 and
//! 1,000 unpaced ports, serialtwin's `modbus` model against the limit answering the same read,
//! and on one pty pair against pymodbus's own serial server.
//!
//! The **limit paced** (`open N paced` to the limit) is the kernel's floor for that workload: the
//! same responder writing each reply in the 29 pieces the library's USB-adapter model schedules
//! (16 ms latency timer, at most 62 bytes a piece, the last at the reply's wire end), each when
//! due, on a timer heap of its own whose soonest entry is its `epoll_wait` timeout — the least a
//! C program would do. Its row, serialtwin paced / limit paced (how close serialtwin gets) and
//! limit paced / serialtwin unpaced (what the pty writes alone cost against the unpaced row) are
//! printed with the paced targets, as informative lines, never targets themselves.

#[path = "pty_fleet/child.rs"]
mod child;
#[path = "pty_fleet/client.rs"]
mod client;
#[path = "pty_fleet/modbus.rs"]
mod modbus;
#[path = "pty_fleet/paced.rs"]
mod paced;
#[path = "pty_fleet/paced_report.rs"]
mod paced_report;
/// The tests' pinned venv (pymodbus for the Modbus rows), created by the same code.
#[path = "../tests/common/python.rs"]
#[expect(
    dead_code,
    unreachable_pub,
    reason = "the bench needs only the venv's interpreter, and the file is the tests' too"
)]
mod python;
#[path = "pty_fleet/report.rs"]
mod report;
#[path = "pty_fleet/server.rs"]
mod server;
#[path = "shared/mod.rs"]
mod shared;

use std::time::{Duration, Instant};

use crate::child::ServerChild;
use crate::client::Client;
use crate::report::{Point, RunInfo, ServerRun};

/// The request: a PI30 general-status query.
pub(crate) const REQUEST: &[u8] = b"QPIGS\r\n";
/// The reply on the wire: 108 bytes of payload and `\r\n`.
pub(crate) const REPLY: &[u8] =
    b"(230.0 50.0 230.0 50.0 0460 0361 009 401 54.30 012 088 0036 0008 \
101.5 54.30 00000 00110110 00 00 00435 0101\r\n";
/// The reply's payload, what the serialtwin device pushes.
pub(crate) const PAYLOAD: &[u8] = REPLY.split_at(REPLY.len() - 2).0;
const _: () = assert!(REPLY.len() == 110 && PAYLOAD.len() == 108);

/// Which tokio runtime the serialtwin server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// One thread, like the limit.
    CurrentThread,
    /// Two workers (one per CPU here).
    MultiThread,
}

impl Runtime {
    fn name(self) -> &'static str {
        match self {
            Self::CurrentThread => "current_thread",
            Self::MultiThread => "multi_thread",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "current" | "current_thread" => Some(Self::CurrentThread),
            "multi" | "multi_thread" => Some(Self::MultiThread),
            _ => None,
        }
    }
}

/// Command-line options.
#[derive(Debug)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent switches of the command line, one per section"
)]
struct Options {
    quick: bool,
    json: String,
    ports: Vec<usize>,
    reps: usize,
    window: Duration,
    warmup: Duration,
    throughput: Duration,
    runtime: Runtime,
    /// The server measured against the limit: `serialtwin`, or a yardstick variant.
    against: &'static str,
    /// Run the closed loop (not with `--paced-only`).
    closed: bool,
    /// Run the paced section (not with `--no-paced` or `--modbus-only`).
    paced: bool,
    /// Run the Modbus rows (not with `--no-modbus`, `--paced-only`).
    modbus: bool,
    serve: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Options {
        quick: false,
        json: "target/bench/pty_fleet.json".into(),
        ports: vec![1, 10, 100, 1000],
        reps: 5,
        window: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
        throughput: Duration::from_secs(1),
        runtime: Runtime::CurrentThread,
        against: "serialtwin",
        closed: true,
        paced: true,
        modbus: true,
        serve: None,
    };
    let mut reps = None;
    let mut secs = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--no-paced" => o.paced = false,
            "--paced-only" => {
                o.closed = false;
                o.modbus = false;
            }
            "--no-modbus" => o.modbus = false,
            "--modbus-only" => {
                o.closed = false;
                o.paced = false;
            }
            "--json" => o.json = value("--json")?,
            "--ports" => {
                o.ports = value("--ports")?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|e| format!("--ports: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--reps" => {
                reps = Some(
                    value("--reps")?
                        .parse()
                        .map_err(|e| format!("--reps: {e}"))?,
                );
            }
            "--secs" => {
                secs = Some(
                    value("--secs")?
                        .parse::<f64>()
                        .map_err(|e| format!("--secs: {e}"))?,
                );
            }
            "--rt" => {
                let v = value("--rt")?;
                o.runtime =
                    Runtime::parse(&v).ok_or_else(|| format!("--rt: {v:?} (current or multi)"))?;
            }
            "--against" => {
                let v = value("--against")?;
                o.against = match v.as_str() {
                    "serialtwin" => "serialtwin",
                    "registry" => "registry",
                    "bare" => "bare",
                    "api" => "api",
                    _ => {
                        return Err(format!(
                            "--against: {v:?} (serialtwin, registry, bare or api)"
                        ));
                    }
                };
            }
            "--serve" => o.serve = Some(value("--serve")?),
            // cargo bench passes --bench; libtest-style filters mean nothing here.
            "--bench" => {}
            other => eprintln!("pty_fleet: ignoring argument {other:?}"),
        }
    }
    if o.quick {
        o.reps = 3;
        o.window = Duration::from_millis(400);
        o.warmup = Duration::from_millis(200);
        o.throughput = Duration::from_millis(300);
    }
    if let Some(r) = reps {
        o.reps = r;
    }
    if let Some(s) = secs {
        o.window = Duration::try_from_secs_f64(s).map_err(|e| format!("--secs: {e}"))?;
    }
    o.reps = o.reps.max(1);
    if !o.closed && !o.paced && !o.modbus {
        return Err("those options leave nothing to run".into());
    }
    Ok(o)
}

/// How long the closed loop measures: a warm-up, then `reps` windows per server.
pub(crate) struct Windows {
    reps: usize,
    window: Duration,
    warmup: Duration,
}

impl Options {
    fn windows(&self) -> Windows {
        Windows {
            reps: self.reps,
            window: self.window,
            warmup: self.warmup,
        }
    }
}

/// The closed loop on two servers' clients: a warm-up each, then `reps` windows each, in ABBA
/// order so that a noisy machine hurts both alike; `cpu[i]` reads server `i`'s CPU time.
pub(crate) fn alternate(
    w: &Windows,
    clients: &mut [Client],
    cpu: &mut [Box<dyn FnMut() -> u64>],
    runs: &mut [ServerRun; 2],
) -> std::io::Result<()> {
    for (client, cpu) in clients.iter_mut().zip(cpu.iter_mut()) {
        client.closed_loop(w.warmup, cpu.as_mut())?;
    }
    for rep in 0..w.reps {
        let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let window = clients[i].closed_loop(w.window, cpu[i].as_mut())?;
            runs[i].windows.push(window);
        }
    }
    Ok(())
}

/// Measure both servers at `ports` ports.
fn point(o: &Options, ports: usize, throughput: bool) -> std::io::Result<Point> {
    let mut servers = [
        ServerChild::spawn("limit", o.runtime)?,
        ServerChild::spawn(o.against, o.runtime)?,
    ];
    let mut runs = [
        ServerRun {
            ports,
            ..ServerRun::default()
        },
        ServerRun {
            ports,
            ..ServerRun::default()
        },
    ];
    let mut clients = Vec::new();
    for (server, run) in servers.iter_mut().zip(&mut runs) {
        run.rss_before = server.rss();
        let (up, paths) = server.open(ports)?;
        run.bring_up = up;
        clients.push(Client::open(&paths)?);
    }
    let mut cpu: Vec<Box<dyn FnMut() -> u64>> = servers
        .iter()
        .map(|server| {
            let pid = server.pid();
            Box::new(move || child::process_cpu_ns(pid)) as Box<dyn FnMut() -> u64>
        })
        .collect();
    alternate(&o.windows(), &mut clients, &mut cpu, &mut runs)?;
    for (i, run) in runs.iter_mut().enumerate() {
        run.rss_after = servers[i].rss();
    }
    if throughput {
        for (i, run) in runs.iter_mut().enumerate() {
            run.down_bps = Some(clients[i].pipelined_down(o.throughput)?);
            run.up_bps = Some(clients[i].stream_up(o.throughput)?);
        }
    }
    for (i, run) in runs.iter_mut().enumerate() {
        run.teardown = servers[i].close()?;
        run.corrupt = clients[i].corrupt;
        debug_assert_eq!(clients[i].len(), ports);
    }
    drop(clients);
    for server in servers {
        server.finish();
    }
    let [limit, serialtwin] = runs;
    Ok(Point {
        ports,
        limit,
        serialtwin,
    })
}

/// Raise the soft limit on open files to the hard one: the big paced fleet needs three
/// descriptors per port in its server (pty master, held slave, lock file) and one per port
/// here, and the server children inherit the limit.
fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        eprintln!("pty_fleet: cannot raise the open-file limit from {soft} to {hard}: {e}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    if let Some(kind) = &o.serve {
        return server::run(kind, o.runtime);
    }
    raise_file_limit();
    let started = Instant::now();
    let mut points = Vec::new();
    if o.closed {
        for (i, &n) in o.ports.iter().enumerate() {
            eprintln!("pty_fleet: {n} ports ...");
            points.push(point(&o, n, i == 0)?);
        }
    }
    let paced = if o.paced {
        Some(paced::run(o.quick, o.runtime)?)
    } else {
        None
    };
    let modbus = if o.modbus {
        Some(modbus::run(o.quick, o.runtime, &o.windows())?)
    } else {
        None
    };
    let info = RunInfo {
        against: o.against,
        runtime: o.runtime.name(),
        reps: o.reps,
        window: o.window,
        warmup: o.warmup,
        quick: o.quick,
        cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        kernel: shared::command_output("uname", &["-r"]),
        commit: shared::command_output("git", &["rev-parse", "--short", "HEAD"]),
        total: started.elapsed(),
    };
    if o.closed {
        print!("{}", report::table(&info, &points));
    }
    if let Some(paced) = &paced {
        print!("{}", paced_report::table(paced));
    }
    if let Some(modbus) = &modbus {
        print!("{}", modbus::table(modbus));
    }
    println!("total bench time {:.1} s", info.total.as_secs_f64());
    let json = report::json(
        &info,
        &points,
        paced.as_ref().map(paced_report::json),
        modbus.as_ref().map(modbus::json),
    );
    if let Some(dir) = std::path::Path::new(&o.json).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&o.json, json)?;
    println!("JSON written to {}", o.json);
    Ok(())
}
