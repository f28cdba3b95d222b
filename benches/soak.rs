//! The soak benchmark: 1,000 ports served for minutes (or an hour) while clients poll and
//! reopen them, some clients are killed mid-request, and faults, clears and unplugs arrive
//! through the control socket. Not a test: not in `cargo test`, not in `.ci/run`.
//!
//! ```text
//! cargo bench --bench soak                        # 2 min warm-up + 3 min measured
//! cargo bench --bench soak -- --hour              # 2 min warm-up + 60 min measured
//! cargo bench --bench soak -- --minutes 10        # 2 min warm-up + 10 min measured
//! cargo bench --bench soak -- --minutes 2 --warmup-secs 30   # a short run while developing
//! ```
//!
//! Other options: `--think-ms N` (a client's mean pause between answer and next request,
//! 250), `--kill-every-secs N` (10), `--fault-every-secs N` (20), `--seed N`; and, to find
//! out what a figure comes from, `--no-kills`, `--no-faults`, `--reopen-one-in N` (a client
//! closes and reopens a port after one answer in N, 16; 0: never).
//!
//! Processes (the bench re-executes itself):
//! - **the server** (`--serve DIR`): 1,000 ports, six kinds (see `soak/proto.rs`): sync
//!   devices in a fleet with lanes (lane-served), async devices (task-served), sync devices in
//!   a `Fleet::without_lanes()` (task-served), each unpaced and paced (9600 or 2400 8N1);
//!   links under DIR, and a control socket (`serialtwin ctl`'s protocol). Its resident memory
//!   and descriptors are read from `/proc/<pid>`.
//! - **clients** (`--client ROLE`): 7 steady clients (700 ports, never killed), 10 killable
//!   ones (20 ports each; one is killed every `--kill-every-secs`, alternately after writing
//!   half a request on some ports and a whole one on the others, and at a random moment, then
//!   replaced once its ports' devices have heard it leave), 1 on the 100 faulted ports.
//! - **this process**: schedules kills and fault cycles, reads the clients' counts, measures.
//!
//! A fault cycle: the faulted client is told no answer is owed from now on; each faulted port
//! gets one of drop, corrupt, duplicate, truncate, noise, delay, `unplug:<ms>` faults (next=N
//! or p=P) or an `unplug` command; 5 s later every port is `clear`ed; once `list` shows every
//! port plugged in, the client closes them, and once their devices have heard it leave, it
//! reopens them and owes answers again: each port must answer correctly.
//!
//! The report: requests, answers (owed, answered, wrong, missed), kills, faults, the server's
//! RSS and descriptors after the warm-up (start), at the middle and at the end. It fails (exit
//! status 1) unless: no owed answer was wrong or missed and no unasked bytes came; the RSS at
//! the end is within 5 % of the start's; the descriptors at the end are exactly the start's;
//! and every fault cycle ended with every faulted port answering.

#[path = "soak/client.rs"]
mod client;
#[path = "soak/proto.rs"]
mod proto;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/server.rs"]
mod server;
#[path = "shared/mod.rs"]
mod shared;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::proto::{PORTS, PerKind, Rng, Role, port_name};
use crate::report::{Reading, Report};

/// Steady clients (the 700 steady ports dealt round-robin).
const STEADY_CLIENTS: usize = 7;
/// Killable clients (the 200 killable ports dealt round-robin: 20 each).
const KILLABLE_CLIENTS: usize = 10;
/// How long the faults of a cycle act before the `clear`.
const FAULTED_FOR: Duration = Duration::from_secs(5);
/// After a kill, at least this long before the replacement opens the ports.
const AFTER_KILL: Duration = Duration::from_millis(1200);
/// How long a step of a fault cycle or a departure may take before it is a failure.
const STEP_WITHIN: Duration = Duration::from_secs(10);

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    warmup: Duration,
    measured: Duration,
    think_ms: u64,
    kill_every: Duration,
    fault_every: Duration,
    seed: u64,
    /// Kill clients (`--no-kills`: never).
    kills: bool,
    /// Fault cycles (`--no-faults`: none).
    faults: bool,
    /// A client closes and reopens a port after one answer in this many (0: never).
    reopen_one_in: u64,
}

/// What this process is to be.
enum Mode {
    Parent(Options),
    Serve(PathBuf),
    Client {
        role: Role,
        dir: PathBuf,
        ports: Vec<usize>,
        seed: u64,
        think_ms: u64,
        reopen_one_in: u64,
    },
}

fn parse_args() -> Result<Mode, String> {
    let mut o = Options {
        warmup: Duration::from_mins(2),
        measured: Duration::from_mins(3),
        think_ms: 250,
        kill_every: Duration::from_secs(10),
        fault_every: Duration::from_secs(20),
        seed: 1,
        kills: true,
        faults: true,
        reopen_one_in: 16,
    };
    let (mut serve, mut role, mut dir, mut ports) = (None, None, None, Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| -> Result<u64, String> {
            v.parse().map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--hour" => o.measured = Duration::from_hours(1),
            "--minutes" => {
                let v = value("--minutes")?;
                let m: f64 = v.parse().map_err(|e| format!("--minutes: {e}"))?;
                o.measured =
                    Duration::try_from_secs_f64(m * 60.0).map_err(|e| format!("--minutes: {e}"))?;
            }
            "--warmup-secs" => {
                o.warmup = Duration::from_secs(number(&arg, value(&arg)?)?);
            }
            "--think-ms" => o.think_ms = number(&arg, value(&arg)?)?,
            "--kill-every-secs" => {
                o.kill_every = Duration::from_secs(number(&arg, value(&arg)?)?.max(2));
            }
            "--fault-every-secs" => {
                o.fault_every = Duration::from_secs(number(&arg, value(&arg)?)?.max(10));
            }
            "--seed" => o.seed = number(&arg, value(&arg)?)?,
            "--no-kills" => o.kills = false,
            "--no-faults" => o.faults = false,
            "--reopen-one-in" => o.reopen_one_in = number(&arg, value(&arg)?)?,
            "--serve" => serve = Some(PathBuf::from(value(&arg)?)),
            "--client" => {
                let v = value(&arg)?;
                role = Some(Role::parse(&v).ok_or_else(|| format!("--client: {v:?}"))?);
            }
            "--dir" => dir = Some(PathBuf::from(value(&arg)?)),
            "--ports" => {
                ports = value(&arg)?
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--ports: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            // cargo bench passes --bench.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(dir) = serve {
        return Ok(Mode::Serve(dir));
    }
    if let Some(role) = role {
        return Ok(Mode::Client {
            role,
            dir: dir.ok_or("--client needs --dir")?,
            ports,
            seed: o.seed,
            think_ms: o.think_ms,
            reopen_one_in: o.reopen_one_in,
        });
    }
    Ok(Mode::Parent(o))
}

fn main() -> std::process::ExitCode {
    let result = match parse_args() {
        Ok(Mode::Serve(dir)) => server::run(&dir).map(|()| true),
        Ok(Mode::Client {
            role,
            dir,
            ports,
            seed,
            think_ms,
            reopen_one_in,
        }) => client::run(role, &dir, &ports, seed, think_ms, reopen_one_in).map(|()| true),
        Ok(Mode::Parent(o)) => parent(&o),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The children.

/// The server child.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Server {
    fn spawn(dir: &Path) -> std::io::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("no stdout"))?,
        );
        let mut this = Self {
            child,
            stdin,
            stdout,
        };
        let line = this.read_line()?;
        if line != "ready" {
            return Err(std::io::Error::other(format!(
                "server: expected ready, got {line:?}"
            )));
        }
        Ok(this)
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("the server exited"));
        }
        Ok(line.trim_end().to_owned())
    }

    fn ask(&mut self, command: &str) -> std::io::Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin closed"))?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        self.read_line()
    }

    /// The ports of `ports` whose devices last heard a client open them.
    fn still_open(&mut self, ports: &[usize]) -> std::io::Result<Vec<usize>> {
        let mut command = "sessions".to_owned();
        for p in ports {
            let _ = write!(command, " {p}");
        }
        let line = self.ask(&command)?;
        let flags: Vec<&str> = line.split_whitespace().skip(1).collect();
        if flags.len() != ports.len() {
            return Err(std::io::Error::other(format!(
                "server: bad answer {line:?}"
            )));
        }
        Ok(ports
            .iter()
            .zip(flags)
            .filter(|(_, f)| *f != "0")
            .map(|(p, _)| *p)
            .collect())
    }

    /// Per kind: requests the devices answered, and frames that were no request.
    fn stats(&mut self) -> std::io::Result<Vec<(u64, u64)>> {
        let line = self.ask("stats")?;
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(std::io::Error::other)?;
        Ok(n.chunks(2).map(|c| (c[0], c[1])).collect())
    }

    /// Resident memory, from `/proc/<pid>/status`.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// Open descriptors, by what they are (from `/proc/<pid>/fd`).
    fn descriptors(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())) else {
            return kinds;
        };
        for entry in dir.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            let kind = if t == "/dev/ptmx" || t.starts_with("/dev/pts/ptmx") {
                "pty master".to_owned()
            } else if t.starts_with("/dev/pts/") {
                "pty slave".to_owned()
            } else if let Some(rest) = t.strip_prefix("anon_inode:") {
                rest.trim_matches(['[', ']']).to_owned()
            } else if let Some((kind, _)) = t.split_once(":[") {
                kind.to_owned()
            } else if t.ends_with(".lock") {
                "lock file".to_owned()
            } else if std::fs::metadata(&target).is_ok_and(|m| m.is_dir()) {
                "directory".to_owned()
            } else {
                "other".to_owned()
            };
            *kinds.entry(kind).or_insert(0) += 1;
        }
        kinds
    }

    /// CPU time of the whole process so far (`/proc/<pid>/stat`: utime + stime, in ticks of
    /// 10 ms).
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Duration::from_millis((ticks(11) + ticks(12)) * 10)
    }

    /// Threads, by name.
    fn threads(&self) -> BTreeMap<String, usize> {
        let mut names = BTreeMap::new();
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return names;
        };
        for task in dir.flatten() {
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            // Numbered threads (`lane-0`, `lane-1`) as one name.
            let name = name
                .trim()
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .to_owned();
            *names.entry(name).or_insert(0) += 1;
        }
        names
    }

    /// Close stdin (the server shuts every port down and exits) and wait.
    fn finish(mut self) -> bool {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("soak: the server did not exit within 30 s; killing it");
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

/// A line from a client child (`None`: it closed its stdout).
struct Message {
    client: usize,
    line: Option<String>,
}

/// How a client child stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Running,
    /// Killed by us: its last counts are what it reported before.
    Killed,
    /// Stopped and reported its final counts.
    Finished,
}

/// A client child.
struct ClientChild {
    role: Role,
    ports: Vec<usize>,
    child: Child,
    stdin: Option<ChildStdin>,
    /// The latest counts it reported (final once finished).
    counts: PerKind,
    life: Life,
}

impl ClientChild {
    fn spawn(
        id: usize,
        role: Role,
        ports: Vec<usize>,
        dir: &Path,
        seed: u64,
        o: &Options,
        tx: &mpsc::Sender<Message>,
    ) -> std::io::Result<Self> {
        let list = ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--client", role.name(), "--ports", &list])
            .arg("--dir")
            .arg(dir)
            .args(["--seed", &seed.to_string()])
            .args(["--think-ms", &o.think_ms.to_string()])
            .args(["--reopen-one-in", &o.reopen_one_in.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let tx = tx.clone();
        std::thread::Builder::new()
            .name(format!("client-{id}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx
                        .send(Message {
                            client: id,
                            line: Some(line),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                let _ = tx.send(Message {
                    client: id,
                    line: None,
                });
            })?;
        Ok(Self {
            role,
            ports,
            child,
            stdin,
            counts: PerKind::default(),
            life: Life::Running,
        })
    }

    fn tell(&mut self, command: &str) {
        if let Some(stdin) = &mut self.stdin {
            // A client that is gone shows up as its missing answer.
            let _ = writeln!(stdin, "{command}").and_then(|()| stdin.flush());
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
        self.life = Life::Killed;
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// Where the killing stands.
enum Killing {
    Idle,
    /// Told to write its doomed requests; killed when it says it has.
    Dooming {
        client: usize,
        since: Instant,
    },
    /// Killed at `at`; its ports get a new client once their devices heard it leave.
    Replacing {
        slot: usize,
        ports: Vec<usize>,
        at: Instant,
    },
}

/// Where the fault cycle stands.
#[derive(Debug)]
enum Faulting {
    Idle,
    /// Waiting for the client's `ack lenient`.
    Lenient {
        since: Instant,
    },
    /// The faults act until then.
    Faulted {
        until: Instant,
    },
    /// Cleared; waiting for every port to be plugged in.
    Plugging {
        since: Instant,
    },
    /// Waiting for the client's `ack closed`.
    Closing {
        since: Instant,
    },
    /// Waiting for the devices to hear the client leave.
    Departing {
        since: Instant,
    },
    /// Waiting for the client's `recovered`.
    Recovering {
        since: Instant,
    },
}

/// Everything the parent keeps.
struct Run<'a> {
    o: &'a Options,
    dir: PathBuf,
    socket: PathBuf,
    server: Server,
    clients: Vec<ClientChild>,
    /// The client ids of the killable slots.
    killable: Vec<usize>,
    faulted: usize,
    rx: mpsc::Receiver<Message>,
    tx: mpsc::Sender<Message>,
    rt: tokio::runtime::Runtime,
    rng: Rng,
    killing: Killing,
    kills: u64,
    next_kill: Instant,
    faulting: Faulting,
    next_fault: Instant,
    cycles: u64,
    cycles_recovered: u64,
    faults: BTreeMap<String, u64>,
    clears: u64,
    /// Failures of the run's own machinery or of the fleet (not counts): each one fails it.
    problems: Vec<String>,
    /// The clients' failure lines (wrong, missed, stray).
    details: Vec<String>,
    detail_lines: u64,
    /// The fault cycle's faulted client has said `ack lenient` / `ack closed` / `recovered`.
    acks: Vec<String>,
    /// Dooming clients that said `doomed`.
    doomed: Vec<usize>,
    /// The server's RSS every [`RSS_EVERY`], from the start.
    rss: Vec<(Duration, u64)>,
}

/// How often the server's RSS is sampled for the trend in the report.
const RSS_EVERY: Duration = Duration::from_secs(10);

fn parent(o: &Options) -> Result<bool, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("serialtwin-soak-{}", std::process::id()));
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    }
    let result = run(o, &dir, started);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(o: &Options, dir: &Path, started: Instant) -> Result<bool, Box<dyn std::error::Error>> {
    eprintln!(
        "soak: {PORTS} ports, warm-up {} s, measured {} s",
        o.warmup.as_secs(),
        o.measured.as_secs()
    );
    let server = Server::spawn(dir)?;
    let (tx, rx) = mpsc::channel();
    let mut r = Run {
        o,
        dir: dir.to_owned(),
        socket: dir.join("ctl").join("control.sock"),
        server,
        clients: Vec::new(),
        killable: Vec::new(),
        faulted: 0,
        rx,
        tx,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        rng: Rng::new(o.seed),
        killing: Killing::Idle,
        kills: 0,
        next_kill: started + o.kill_every,
        faulting: Faulting::Idle,
        next_fault: started + o.fault_every / 2,
        cycles: 0,
        cycles_recovered: 0,
        faults: BTreeMap::new(),
        clears: 0,
        problems: Vec::new(),
        details: Vec::new(),
        detail_lines: 0,
        acks: Vec::new(),
        doomed: Vec::new(),
        rss: Vec::new(),
    };
    r.spawn_clients()?;
    let start_at = started + o.warmup;
    let points = [
        ("start", start_at),
        ("middle", start_at + o.measured / 2),
        ("end", start_at + o.measured),
    ];
    let mut readings: Vec<Reading> = Vec::new();
    while readings.len() < points.len() {
        r.pump(Duration::from_millis(50));
        let now = Instant::now();
        if r.rss
            .last()
            .is_none_or(|&(at, _)| now - started >= at + RSS_EVERY)
        {
            let rss = r.server.rss();
            r.rss.push((now - started, rss));
        }
        r.step_killing(now)?;
        let (name, at) = points[readings.len()];
        // A reading waits for the fault cycle to be over (no port unplugged, no control
        // connection), and no cycle starts while one is due.
        let due = now >= at;
        if matches!(r.faulting, Faulting::Idle) && due {
            eprintln!("soak: reading {name} at {}", report::clock(now - started));
            readings.push(r.reading(name, started)?);
            continue;
        }
        r.step_faulting(now, due)?;
    }
    r.finish(readings, started)
}

impl Run<'_> {
    /// Stop every client (each finishes what it is owed and reports) and the server; the
    /// report.
    fn finish(
        self,
        readings: Vec<Reading>,
        started: Instant,
    ) -> Result<bool, Box<dyn std::error::Error>> {
        let mut r = self;
        let o = r.o;
        let stats = r.server.stats()?;
        for c in &mut r.clients {
            if c.life == Life::Running {
                c.tell("stop");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while r.clients.iter().any(|c| c.life == Life::Running) && Instant::now() < deadline {
            r.pump(Duration::from_millis(100));
        }
        for (id, c) in r.clients.iter_mut().enumerate() {
            if c.life == Life::Running {
                r.problems.push(format!(
                    "client {id} ({}) did not finish within 30 s of stop",
                    c.role.name()
                ));
                let _ = c.child.kill();
            }
            let _ = c.child.wait();
        }
        let Run {
            server,
            clients,
            kills,
            cycles,
            cycles_recovered,
            faults,
            clears,
            mut problems,
            details,
            detail_lines,
            rss,
            ..
        } = r;
        if !server.finish() {
            problems.push("the server did not shut down cleanly".to_owned());
        }
        let mut survivors = PerKind::default();
        let mut killed = PerKind::default();
        for c in &clients {
            let sum = if c.life == Life::Killed {
                &mut killed
            } else {
                &mut survivors
            };
            for (s, k) in sum.iter_mut().zip(&c.counts) {
                s.add(k);
            }
        }
        let report = Report {
            warmup: o.warmup,
            measured: o.measured,
            total: started.elapsed(),
            readings,
            survivors,
            killed,
            killed_clients: kills,
            clients: clients.len(),
            server_stats: stats,
            cycles,
            cycles_recovered,
            faults,
            clears,
            problems,
            details,
            detail_lines,
            rss,
            commit: shared::command_output("git", &["rev-parse", "--short", "HEAD"]),
            kernel: shared::command_output("uname", &["-r"]),
        };
        print!("{}", report.text());
        Ok(report.passed())
    }
}

impl Run<'_> {
    fn spawn_client(&mut self, role: Role, ports: Vec<usize>) -> std::io::Result<usize> {
        let id = self.clients.len();
        let seed = self.o.seed.wrapping_mul(1000).wrapping_add(id as u64);
        let c = ClientChild::spawn(id, role, ports, &self.dir, seed, self.o, &self.tx)?;
        self.clients.push(c);
        Ok(id)
    }

    fn spawn_clients(&mut self) -> std::io::Result<()> {
        let of = |role: Role| (0..PORTS).filter(move |&p| Role::of(p) == role);
        let deal = |role: Role, n: usize| {
            let mut groups = vec![Vec::new(); n];
            for (i, p) in of(role).enumerate() {
                groups[i % n].push(p);
            }
            groups
        };
        for ports in deal(Role::Steady, STEADY_CLIENTS) {
            self.spawn_client(Role::Steady, ports)?;
        }
        for ports in deal(Role::Killable, KILLABLE_CLIENTS) {
            let id = self.spawn_client(Role::Killable, ports)?;
            self.killable.push(id);
        }
        self.faulted = self.spawn_client(Role::Faulted, of(Role::Faulted).collect())?;
        Ok(())
    }

    /// Take in the clients' lines for up to `wait`.
    fn pump(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(m) = self.rx.recv_timeout(left) else {
                return;
            };
            self.message(m);
            if Instant::now() >= deadline {
                return;
            }
        }
    }

    fn message(&mut self, m: Message) {
        let c = &mut self.clients[m.client];
        let Some(line) = m.line else {
            if c.life == Life::Running {
                // Gone without being killed or stopped: its counts stay what it reported.
                self.problems.push(format!(
                    "client {} ({}) exited unasked",
                    m.client,
                    c.role.name()
                ));
                c.life = Life::Finished;
            }
            return;
        };
        if c.life == Life::Killed {
            // Lines it wrote before it died: the counts it had reported stand.
            return;
        }
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb {
            "stats" | "final" => match proto::parse_counts(rest) {
                Some(counts) => {
                    c.counts = counts;
                    if verb == "final" {
                        c.life = Life::Finished;
                    }
                }
                None => self
                    .problems
                    .push(format!("client {}: bad line {line:?}", m.client)),
            },
            "wrong" | "missed" | "stray" | "open-failed" => {
                eprintln!("soak: {line}");
                self.detail_lines += 1;
                if self.details.len() < 40 {
                    self.details.push(line);
                }
            }
            "doomed" => self.doomed.push(m.client),
            "ack" | "recovered" => self.acks.push(line),
            _ => self
                .problems
                .push(format!("client {}: unknown line {line:?}", m.client)),
        }
    }

    /// The fleet's answer to a control command, through the control socket.
    fn control(&mut self, line: &str) -> String {
        match self
            .rt
            .block_on(serialtwin::control::request(&self.socket, line))
        {
            Ok(reply) => {
                if !reply.starts_with("ok") {
                    self.problems.push(format!("control {line:?}: {reply}"));
                }
                reply
            }
            Err(e) => {
                self.problems.push(format!("control {line:?}: {e}"));
                String::new()
            }
        }
    }

    fn step_killing(&mut self, now: Instant) -> std::io::Result<()> {
        match &self.killing {
            Killing::Idle => {
                if !self.o.kills || now < self.next_kill {
                    return Ok(());
                }
                let slot = usize::try_from(self.rng.below(self.killable.len() as u64)).unwrap_or(0);
                let id = self.killable[slot];
                self.kills += 1;
                if self.kills % 2 == 1 {
                    // Half a request on some ports, a whole one on the others, then killed.
                    self.clients[id].tell("doom");
                    self.killing = Killing::Dooming {
                        client: id,
                        since: now,
                    };
                } else {
                    // At a random moment: whatever it was doing.
                    self.kill(slot, now);
                }
            }
            &Killing::Dooming { client, since } => {
                let told = self.doomed.contains(&client);
                if told || now.duration_since(since) > Duration::from_secs(5) {
                    if !told {
                        self.problems
                            .push(format!("client {client} did not say doomed within 5 s"));
                    }
                    self.doomed.clear();
                    let slot = self.killable.iter().position(|&c| c == client).unwrap_or(0);
                    self.kill(slot, now);
                }
            }
            Killing::Replacing { slot, ports, at } => {
                if now.duration_since(*at) < AFTER_KILL {
                    return Ok(());
                }
                let (slot, ports, at) = (*slot, ports.clone(), *at);
                let open = self.server.still_open(&ports)?;
                if !open.is_empty() {
                    if now.duration_since(at) < STEP_WITHIN {
                        return Ok(());
                    }
                    self.problems.push(format!(
                        "ports {} still open for their devices {} s after their client was killed",
                        names(&open),
                        STEP_WITHIN.as_secs()
                    ));
                }
                let id = self.spawn_client(Role::Killable, ports)?;
                self.killable[slot] = id;
                self.killing = Killing::Idle;
                self.next_kill = now + self.o.kill_every;
            }
        }
        Ok(())
    }

    fn kill(&mut self, slot: usize, now: Instant) {
        let id = self.killable[slot];
        let c = &mut self.clients[id];
        c.kill();
        self.killing = Killing::Replacing {
            slot,
            ports: c.ports.clone(),
            at: now,
        };
    }

    /// Take the ack starting with `prefix`, if it came.
    fn ack(&mut self, prefix: &str) -> Option<String> {
        let i = self.acks.iter().position(|a| a.starts_with(prefix))?;
        Some(self.acks.remove(i))
    }

    fn faulted_ports(&self) -> Vec<usize> {
        self.clients[self.faulted].ports.clone()
    }

    /// One step of the fault cycle; `hold`: start no new cycle.
    #[expect(
        clippy::too_many_lines,
        reason = "one arm per step of the cycle, in the order they come"
    )]
    fn step_faulting(&mut self, now: Instant, hold: bool) -> std::io::Result<()> {
        let late = |since: Instant| now.duration_since(since) > STEP_WITHIN;
        match self.faulting {
            Faulting::Idle => {
                if self.o.faults && !hold && now >= self.next_fault {
                    self.acks.clear();
                    self.clients[self.faulted].tell("lenient");
                    self.faulting = Faulting::Lenient { since: now };
                }
            }
            Faulting::Lenient { since } => {
                if self.ack("ack lenient").is_some() {
                    self.inject();
                    self.faulting = Faulting::Faulted {
                        until: Instant::now() + FAULTED_FOR,
                    };
                } else if late(since) {
                    self.problems
                        .push("the faulted client did not ack lenient".into());
                    self.faulting = Faulting::Idle;
                    self.next_fault = now + self.o.fault_every;
                }
            }
            Faulting::Faulted { until } => {
                if now >= until {
                    for p in self.faulted_ports() {
                        self.control(&format!("clear {}", port_name(p)));
                        self.clears += 1;
                    }
                    self.faulting = Faulting::Plugging {
                        since: Instant::now(),
                    };
                }
            }
            Faulting::Plugging { since } => {
                let list = self.control("list");
                let unplugged: Vec<usize> = self
                    .faulted_ports()
                    .into_iter()
                    .filter(|&p| {
                        let name = port_name(p);
                        !list.lines().any(|l| {
                            let mut w = l.split_whitespace();
                            w.next() == Some(name.as_str())
                                && w.next().is_some_and(|pty| pty.starts_with("/dev/"))
                        })
                    })
                    .collect();
                if unplugged.is_empty() || late(since) {
                    if !unplugged.is_empty() {
                        self.problems.push(format!(
                            "ports {} still unplugged {} s after clear",
                            names(&unplugged),
                            STEP_WITHIN.as_secs()
                        ));
                    }
                    self.clients[self.faulted].tell("resync");
                    self.faulting = Faulting::Closing { since: now };
                }
            }
            Faulting::Closing { since } => {
                if let Some(ack) = self.ack("ack closed") {
                    if !ack.ends_with(" 0") {
                        self.problems.push(format!(
                            "the faulted client could not reopen every port: {ack}"
                        ));
                    }
                    self.faulting = Faulting::Departing { since: now };
                } else if late(since) {
                    self.problems
                        .push("the faulted client did not ack closed".into());
                    self.faulting = Faulting::Departing { since: now };
                }
            }
            Faulting::Departing { since } => {
                let open = self.server.still_open(&self.faulted_ports())?;
                if open.is_empty() || late(since) {
                    if !open.is_empty() {
                        self.problems.push(format!(
                            "faulted ports {} still open for their devices {} s after their client closed them",
                            names(&open),
                            STEP_WITHIN.as_secs()
                        ));
                    }
                    self.clients[self.faulted].tell("strict");
                    self.faulting = Faulting::Recovering { since: now };
                }
            }
            Faulting::Recovering { since } => {
                if self.ack("recovered").is_some() {
                    self.cycles_recovered += 1;
                    self.faulting = Faulting::Idle;
                    self.next_fault = now + self.o.fault_every;
                } else if now.duration_since(since) > 3 * STEP_WITHIN {
                    self.problems.push(format!(
                        "fault cycle {}: not every faulted port answered within {} s of its clear",
                        self.cycles,
                        3 * STEP_WITHIN.as_secs()
                    ));
                    self.faulting = Faulting::Idle;
                    self.next_fault = now + self.o.fault_every;
                }
            }
        }
        Ok(())
    }

    /// One fault (or unplug) on each faulted port, a different one each cycle.
    fn inject(&mut self) {
        const FAULTS: [&str; 10] = [
            "fault {} drop next=2",
            "fault {} corrupt next=2",
            "fault {} duplicate next=1",
            "fault {} truncate next=1",
            "fault {} noise next=2",
            "fault {} delay:300 next=2",
            "fault {} unplug:400 next=1",
            "unplug {} 700",
            "fault {} drop p=0.5",
            "fault {} corrupt p=0.3 cmd=Q",
        ];
        self.cycles += 1;
        let cycle = usize::try_from(self.cycles).unwrap_or(0);
        for (i, p) in self.faulted_ports().into_iter().enumerate() {
            let template = FAULTS[(i + cycle) % FAULTS.len()];
            let command = template.replace("{}", &port_name(p));
            let mut words = command.split_whitespace();
            let key = match (words.next(), words.nth(1)) {
                (Some("unplug"), _) => "unplug".to_owned(),
                (_, Some(kind)) => kind.split(':').next().unwrap_or(kind).to_owned(),
                _ => command.clone(),
            };
            self.control(&command);
            *self.faults.entry(key).or_insert(0) += 1;
        }
    }

    /// Counts so far: (clients not killed, killed clients).
    fn counts(&self) -> (PerKind, PerKind) {
        let mut alive = PerKind::default();
        let mut killed = PerKind::default();
        for c in &self.clients {
            let sum = if c.life == Life::Killed {
                &mut killed
            } else {
                &mut alive
            };
            for (s, k) in sum.iter_mut().zip(&c.counts) {
                s.add(k);
            }
        }
        (alive, killed)
    }

    /// The server's memory and descriptors, and the counts so far. Descriptors are read five
    /// times over a second; the fewest is the reading (a control connection closing, a
    /// `/proc` scan for the session counts come and go).
    fn reading(&mut self, name: &'static str, started: Instant) -> std::io::Result<Reading> {
        let at = started.elapsed();
        let mut samples = Vec::new();
        let mut breakdown = BTreeMap::new();
        for i in 0..5 {
            if i > 0 {
                self.pump(Duration::from_millis(200));
            }
            let d = self.server.descriptors();
            let n: usize = d.values().sum();
            if samples.iter().all(|&m| n < m) {
                breakdown = d;
            }
            samples.push(n);
        }
        let rss = self.server.rss();
        let (alive, killed) = self.counts();
        Ok(Reading {
            name,
            at,
            rss,
            cpu: self.server.cpu(),
            threads: self.server.threads(),
            fds: samples.iter().copied().min().unwrap_or(0),
            fds_max: samples.iter().copied().max().unwrap_or(0),
            breakdown,
            alive,
            killed,
            kills: self.kills,
            faults: self.faults.values().sum(),
            server: self.server.stats()?,
        })
    }
}

fn names(ports: &[usize]) -> String {
    ports
        .iter()
        .map(|&p| port_name(p))
        .collect::<Vec<_>>()
        .join(", ")
}
