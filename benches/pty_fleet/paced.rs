//! The paced section (issue 17): PI30-like ports on a paced 2400-baud 8N1 line, polled open loop.
//!
//! A real inverter's line is slow: its 110-byte `QPIGS` answer takes 110 × 10 / 2400 s =
//! 458.3 ms on the wire, and a USB-serial adapter hands it to the host in chunks (by default one
//! every 16 ms, FTDI's latency timer). A fleet of such lines is polled on a timetable, not as
//! fast as it answers, so the closed loop of the other rows says nothing about it. Here every
//! port is polled open loop, on a fixed schedule staggered evenly over the period, and the
//! figures are what a poller cares about — were the polls sent on time, did every answer come
//! back whole and in time — and what the server pays per answer, paced against unpaced.
//!
//! Three parts, each with server children of its own (`open N paced|unpaced`):
//! - **one quiet port**: one client, alone, polls a few times and counts the reads each reply
//!   arrives in, and the gaps between them;
//! - **1,000 ports, paced vs unpaced vs the limit paced**: three children, one on the paced
//!   line, one on the same line unpaced, and the bench's `limit` responder (`open N paced`: one
//!   thread, epoll over raw ptys, the same pieces written on its own timers — the least a C
//!   program would do, so the kernel's floor for this workload), each polled every 2 s per
//!   port, window by window in turn (ABC CBA) so that noise hits all three;
//! - **the big fleet**: 4,000 paced ports (or as many as the machine allows, see [`big_fleet`])
//!   polled every second.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::termios::{OptionalActions, QueueSelector};

use crate::child::{Cpu, CpuSpent, Refused, ServerChild, TICK_NS};
use crate::client::process_cpu;
use crate::{REPLY, REQUEST, Runtime};

/// The device's baud rate: a PI30 inverter's.
pub(crate) const BAUD: u32 = 2400;
/// Bits on the wire per byte: 8N1 is a start bit, 8 data bits and a stop bit.
const BITS_PER_BYTE: u64 = 10;
/// The USB adapter's chunk interval the library models by default (FTDI's latency timer): a
/// paced byte may reach the host up to this long after its wire time.
pub(crate) const CHUNK: Duration = Duration::from_millis(16);
/// Slack on top of wire time and one chunk before an answer counts as late: room for the
/// scheduler of a loaded 2-CPU machine, far below a poller's timeout.
pub(crate) const SLACK: Duration = Duration::from_millis(50);
/// A poll is on schedule when it was written no later than this after its planned time.
pub(crate) const ON_SCHEDULE: Duration = Duration::from_millis(10);
/// Ports in the paced vs unpaced comparison, and how often each is polled.
pub(crate) const FLEET: usize = 1000;
const FLEET_PERIOD: Duration = Duration::from_secs(2);
/// Ports asked for in the big fleet, and how often each is polled.
pub(crate) const BIG_FLEET: usize = 4000;
const BIG_PERIOD: Duration = Duration::from_secs(1);
/// Ptys left to the rest of the machine when sizing the big fleet.
pub(crate) const PTY_HEADROOM: usize = 64;
/// Pause after the client opened and set up its slaves, before the first poll: the server
/// takes in every slave's open and speed first.
const SETTLE: Duration = Duration::from_millis(300);
/// How long after a window's last poll its answers may still come before they count as lost.
const DRAIN: Duration = Duration::from_secs(5);
/// Most ready slaves read between two looks at the timetable: a few hundred reads take about a
/// millisecond, so a due poll waits no longer than that behind them.
const EVENTS: usize = 256;
/// The quiet port's longest wait for the next piece of a reply.
const QUIET_TIMEOUT: u16 = 2000;

/// The reply's time on the wire at [`BAUD`] 8N1: 458.3 ms.
pub(crate) fn wire_time() -> Duration {
    Duration::from_nanos(REPLY.len() as u64 * BITS_PER_BYTE * 1_000_000_000 / u64::from(BAUD))
}

/// One piece of a paced reply: due this long after the request was read, carrying the reply's
/// bytes up to this index (from where the piece before it ended).
pub(crate) type Piece = (Duration, usize);

/// One byte's time on the wire at [`BAUD`] 8N1 in nanoseconds, rounded to the nearest as the
/// library's line has it (4,166,667 ns: without the rounding, byte 96 would end exactly on the
/// 400 ms tick and join its piece, which in the library it misses by 32 ns).
fn byte_ns() -> u64 {
    (BITS_PER_BYTE * 1_000_000_000 + u64::from(BAUD) / 2) / u64::from(BAUD)
}

/// A byte's wire end, `i` bytes into a reply, in nanoseconds from its start.
fn wire_end_ns(i: usize) -> u64 {
    i as u64 * byte_ns()
}

/// How a USB-serial adapter with the default 16 ms latency timer ([`CHUNK`]) hands a paced
/// reply to the host, worked out here from the wire alone (the limit's own arithmetic, not the
/// library's): the adapter's timer runs out [`CHUNK`] after its last hand-over (the reply's
/// start the first time), on the first tick that finds a byte waiting, and hands over every byte
/// whose wire time has passed, at most [`serialtwin::Adapter::CHUNK_BYTES`]; a full packet, or the
/// reply's end, that comes before the tick goes when its last byte has left the wire. For
/// `QPIGS` at 2400 baud: ticks at 16, 32, ... 448 ms, then the rest at 458.33 ms — 29 pieces.
pub(crate) fn pieces() -> Vec<Piece> {
    let len = REPLY.len();
    let chunk = u64::try_from(CHUNK.as_nanos()).unwrap_or(u64::MAX);
    let mut plan = Vec::new();
    let mut last = 0u64;
    let mut sent = 0usize;
    while sent < len {
        let full = (sent + serialtwin::Adapter::CHUNK_BYTES).min(len);
        let ticks = (wire_end_ns(sent + 1) - last).div_ceil(chunk).max(1);
        let tick = last + chunk * ticks;
        let (at, upto) = if wire_end_ns(full) <= tick {
            (wire_end_ns(full), full)
        } else {
            // Bytes whose wire time has passed by the tick.
            let done = tick / byte_ns();
            let done = usize::try_from(done).unwrap_or(usize::MAX);
            (tick, done.clamp(sent + 1, full - 1))
        };
        plan.push((Duration::from_nanos(at), upto));
        sent = upto;
        last = at;
    }
    plan
}

/// The pieces the library's own line ([`serialtwin::Line::schedule`]) makes of the reply on the
/// paced section's line, to check [`pieces`] against.
pub(crate) fn library_pieces() -> Vec<Piece> {
    let mut line = serialtwin::Line::new(serialtwin::LineConfig::uart(BAUD));
    // A paced line at the client's own speed draws no random number; a context lends the rng.
    let mut ctx = serialtwin::Context::for_test(serialtwin::SimClock::real());
    let now = tokio::time::Instant::now();
    let mut plan = Vec::new();
    let mut upto = 0;
    line.schedule(
        bytes::Bytes::from_static(REPLY),
        &serialtwin::LineSettings::new(BAUD),
        ctx.rng(),
        now,
        |at, piece| {
            upto += piece.len();
            plan.push((at - now, upto));
        },
    );
    plan
}

/// An answer is in time when its last byte was read no later than this after its poll was
/// written: wire time, one chunk, and [`SLACK`].
pub(crate) fn in_time_bound() -> Duration {
    wire_time() + CHUNK + SLACK
}

/// How long the section runs.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Windows per server in the 1,000-port comparison.
    windows: usize,
    /// Measured length of each of them.
    window: Duration,
    /// Polling before a window's measurement starts, longer than one reply's wire time: the
    /// measurement sees the steady state, replies in flight at its start as at its end.
    lead_in: Duration,
    /// Measured length of the big fleet's one window.
    big_window: Duration,
    /// Polls of the quiet port.
    quiet_polls: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                windows: 2,
                window: Duration::from_millis(1500),
                lead_in: Duration::from_millis(600),
                big_window: Duration::from_secs(3),
                quiet_polls: 5,
            }
        } else {
            Self {
                windows: 4,
                window: Duration::from_secs(5),
                lead_in: Duration::from_secs(1),
                big_window: Duration::from_secs(20),
                quiet_polls: 10,
            }
        }
    }
}

/// What one open-loop window produced. Polls count when planned inside the measured span (after
/// the lead-in); CPU is read at the span's two ends; answers for CPU are those completed
/// between the two readings, whenever polled.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// Length of the measured span (between the two CPU readings).
    pub(crate) wall: Duration,
    /// Replies completed within the span: CPU per answer divides by this.
    pub(crate) answers: u64,
    /// The server's CPU time within the span.
    pub(crate) server: CpuSpent,
    /// CPU time of the kernel's workqueue threads within the span (see [`Kworkers`]).
    pub(crate) kworkers: Duration,
    /// Non-idle CPU time of the whole machine within the span (`/proc/stat`, every CPU): what
    /// no process shows is in it, but so is anything else running, and the kernel counts it by
    /// sampling each tick, so a light, bursty load comes out coarse (even below its parts).
    pub(crate) machine: Duration,
    /// CPU time of this process (the client) within the span.
    pub(crate) client: Duration,
    /// Polls planned within the span.
    pub(crate) polls: u64,
    /// Of those, polls the pty would not take (the server not reading).
    pub(crate) unsent: u64,
    /// Of those, polls written within [`ON_SCHEDULE`] of their planned time.
    pub(crate) on_schedule: u64,
    /// How late each poll was written, in nanoseconds.
    pub(crate) lateness: Vec<u32>,
    /// Of the polls, those answered whole and correct (before the drain ended).
    pub(crate) correct: u64,
    /// Of those, answered within [`in_time_bound`] of the poll's write.
    pub(crate) in_time: u64,
    /// Poll written to last byte read, of every correct answer, in nanoseconds.
    pub(crate) latencies: Vec<u32>,
    /// Reads each correct answer arrived in.
    pub(crate) reads: Vec<u32>,
    /// The largest gap between two consecutive reads of each correct answer, in nanoseconds.
    pub(crate) max_gaps: Vec<u32>,
    /// Polls still unanswered when the drain ended.
    pub(crate) unanswered: u64,
    /// Replies (of any poll of the window, lead-in too) with a byte that differs from
    /// [`REPLY`]'s.
    pub(crate) corrupt: u64,
    /// Bytes that came when no poll was waiting for an answer.
    pub(crate) stray: u64,
}

/// One row: a server child's fleet and its windows.
#[derive(Debug)]
pub(crate) struct Row {
    /// The server child's kind: `serialtwin`, or `limit` (the bench's C-like responder).
    pub(crate) server: &'static str,
    /// `paced` or `unpaced`.
    pub(crate) name: &'static str,
    pub(crate) ports: usize,
    /// Each port is polled once per period.
    pub(crate) period: Duration,
    /// Time the server took to open the ports.
    pub(crate) bring_up: Duration,
    pub(crate) windows: Vec<Window>,
}

impl Row {
    fn new(server: &'static str, paced: bool, ports: usize, period: Duration) -> Self {
        Self {
            server,
            name: if paced { "paced" } else { "unpaced" },
            ports,
            period,
            bring_up: Duration::ZERO,
            windows: Vec::new(),
        }
    }

    fn paced(&self) -> bool {
        self.name == "paced"
    }
}

/// The quiet port: how one paced reply reaches a client that waits for nothing else.
#[derive(Debug, Default)]
pub(crate) struct Quiet {
    /// Reads each reply arrived in.
    pub(crate) reads: Vec<u32>,
    /// Every gap between two consecutive reads of one reply, in nanoseconds.
    pub(crate) gaps: Vec<u32>,
    /// Poll written to first read, per reply, in nanoseconds.
    pub(crate) first: Vec<u32>,
    /// Poll written to last read, per reply, in nanoseconds.
    pub(crate) last: Vec<u32>,
    /// Replies with unexpected bytes.
    pub(crate) corrupt: u64,
}

/// How many ports the big fleet got, and why.
#[derive(Debug, Default)]
pub(crate) struct BigCount {
    /// [`BIG_FLEET`], or less when `kernel.pty.max` is lower.
    pub(crate) asked: usize,
    /// Ports the row ran with.
    pub(crate) used: usize,
    /// Each refused attempt: ports asked for, and the refusal.
    pub(crate) refusals: Vec<(usize, Refused)>,
    /// `kernel.pty.max`, `kernel.pty.reserve` and `kernel.pty.nr` (ptys in use machine-wide)
    /// before the first attempt.
    pub(crate) pty_max: Option<usize>,
    pub(crate) pty_reserve: Option<usize>,
    pub(crate) pty_nr: Option<usize>,
}

/// Everything the paced section measured.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) quick: bool,
    pub(crate) quiet: Quiet,
    pub(crate) paced: Row,
    pub(crate) unpaced: Row,
    /// The limit server on the paced line, alongside `paced` and `unpaced`: the kernel's floor.
    pub(crate) limit: Row,
    pub(crate) big: Row,
    pub(crate) count: BigCount,
}

/// Run the paced section.
pub(crate) fn run(quick: bool, runtime: Runtime) -> std::io::Result<Results> {
    let plan = Plan::new(quick);
    eprintln!("pty_fleet: paced, one quiet port ...");
    let quiet = quiet_port(&plan, runtime)?;
    eprintln!("pty_fleet: paced vs unpaced vs limit paced, {FLEET} ports ...");
    let [paced, unpaced, limit] = compare(&plan, runtime)?;
    eprintln!("pty_fleet: paced, up to {BIG_FLEET} ports ...");
    let (big, count) = big_fleet(&plan, runtime)?;
    Ok(Results {
        quick,
        quiet,
        paced,
        unpaced,
        limit,
        big,
        count,
    })
}

/// Open `n` ports of a server child on the paced line (or unpaced).
fn open(
    server: &mut ServerChild,
    n: usize,
    paced: bool,
) -> std::io::Result<(Duration, Vec<String>)> {
    server.open_on_line(n, paced)?.map_err(|r| {
        std::io::Error::other(format!("{n} ports refused after {}: {}", r.opened, r.error))
    })
}

/// Poll one port alone, a few times, and see how each reply arrives.
fn quiet_port(plan: &Plan, runtime: Runtime) -> std::io::Result<Quiet> {
    let mut server = ServerChild::spawn("serialtwin", runtime)?;
    let (_, paths) = open(&mut server, 1, true)?;
    let fd = open_slave(&paths[0])?;
    std::thread::sleep(SETTLE);
    let mut quiet = Quiet::default();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..plan.quiet_polls {
        poll_quietly(&fd, &mut buf, &mut quiet)?;
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(fd);
    server.close()?;
    server.finish();
    Ok(quiet)
}

/// One poll of the quiet port: write the request, then wait for each piece of the reply with
/// `poll` and read it whole into a buffer far larger than a reply.
fn poll_quietly(fd: &OwnedFd, buf: &mut [u8], quiet: &mut Quiet) -> std::io::Result<()> {
    write_request(fd)?;
    let sent = Instant::now();
    let mut got = 0usize;
    let mut reads = 0u32;
    let mut last = sent;
    let mut corrupt = false;
    while got < REPLY.len() {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(QUIET_TIMEOUT)) {
            Ok(0) => {
                return Err(std::io::Error::other(format!(
                    "quiet port: no reply byte for {QUIET_TIMEOUT} ms ({got} of {} came)",
                    REPLY.len()
                )));
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let n = match rustix::io::read(fd, &mut *buf) {
            Ok(0) => return Err(std::io::Error::other("quiet port: server hung up")),
            Ok(n) => n,
            Err(Errno::AGAIN | Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        if reads == 0 {
            quiet.first.push(nanos(now - sent));
        } else {
            quiet.gaps.push(nanos(now - last));
        }
        if got + n > REPLY.len() || buf[..n] != REPLY[got..got + n] {
            corrupt = true;
        }
        reads += 1;
        last = now;
        got += n;
    }
    quiet.last.push(nanos(last - sent));
    quiet.reads.push(reads);
    quiet.corrupt += u64::from(corrupt);
    Ok(())
}

/// The same 1,000 ports paced and unpaced, and the limit paced, each in its own child, in
/// turns: window by window in one order and then the reverse (ABC CBA), so that a drift in the
/// machine's noise hits all three alike.
fn compare(plan: &Plan, runtime: Runtime) -> std::io::Result<[Row; 3]> {
    let mut servers = [
        ServerChild::spawn("serialtwin", runtime)?,
        ServerChild::spawn("serialtwin", runtime)?,
        ServerChild::spawn("limit", runtime)?,
    ];
    let mut rows = [
        Row::new("serialtwin", true, FLEET, FLEET_PERIOD),
        Row::new("serialtwin", false, FLEET, FLEET_PERIOD),
        Row::new("limit", true, FLEET, FLEET_PERIOD),
    ];
    let mut clients = Vec::new();
    for (server, row) in servers.iter_mut().zip(&mut rows) {
        let (up, paths) = open(server, row.ports, row.paced())?;
        row.bring_up = up;
        clients.push(OpenLoop::open(&paths)?);
    }
    std::thread::sleep(SETTLE);
    for w in 0..plan.windows {
        let order = if w % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for i in order {
            let window =
                clients[i].window(rows[i].period, plan.lead_in, plan.window, &servers[i])?;
            rows[i].windows.push(window);
        }
    }
    drop(clients);
    for mut server in servers {
        server.close()?;
        server.finish();
    }
    Ok(rows)
}

/// A `kernel.pty` setting.
fn pty_sysctl(name: &str) -> Option<usize> {
    std::fs::read_to_string(format!("/proc/sys/kernel/pty/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The big fleet: [`BIG_FLEET`] paced ports polled every second, or fewer when the machine
/// will not have that many ptys.
///
/// `kernel.pty.max` bounds the ptys of the whole machine, but a devpts instance mounted outside
/// the initial mount namespace (a container's `/dev/pts`) may only use `max - reserve` of them:
/// the last `kernel.pty.reserve` are kept for the initial instance. Which one this process has
/// cannot be read anywhere, so the row asks for `min(4000, max - 64)` and, when the server is
/// refused, asks again for 64 fewer than it got (64 left to the rest of the machine).
fn big_fleet(plan: &Plan, runtime: Runtime) -> std::io::Result<(Row, BigCount)> {
    let mut count = BigCount {
        pty_max: pty_sysctl("max"),
        pty_reserve: pty_sysctl("reserve"),
        pty_nr: pty_sysctl("nr"),
        ..BigCount::default()
    };
    count.asked = count.pty_max.map_or(BIG_FLEET, |max| {
        BIG_FLEET.min(max.saturating_sub(PTY_HEADROOM))
    });
    let mut server = ServerChild::spawn("serialtwin", runtime)?;
    let mut want = count.asked;
    let (up, paths) = loop {
        match server.open_on_line(want, true)? {
            Ok(opened) => break opened,
            Err(refused) => {
                eprintln!(
                    "pty_fleet: {want} paced ports refused after {}: {}",
                    refused.opened, refused.error
                );
                let fewer = refused.opened.saturating_sub(PTY_HEADROOM);
                count.refusals.push((want, refused));
                if fewer == 0 || count.refusals.len() == 3 {
                    return Err(std::io::Error::other(
                        "the big fleet: too few ptys after three attempts",
                    ));
                }
                want = fewer;
            }
        }
    };
    count.used = want;
    let mut row = Row::new("serialtwin", true, want, BIG_PERIOD);
    row.bring_up = up;
    let mut client = OpenLoop::open(&paths)?;
    std::thread::sleep(SETTLE);
    row.windows
        .push(client.window(row.period, plan.lead_in, plan.big_window, &server)?);
    drop(client);
    server.close()?;
    server.finish();
    Ok((row, count))
}

// ---------------------------------------------------------------------------------------------
// The open-loop client.

/// Open a slave as a poller would: raw, at the device's speed (a client at another speed gets
/// garbage from a UART line), nonblocking.
fn open_slave(path: &str) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut t = rustix::termios::tcgetattr(&fd)?;
    t.make_raw();
    t.set_speed(BAUD)?;
    rustix::termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    Ok(fd)
}

/// Write one request; `Ok(false)` when the pty would not take it.
fn try_request(fd: &OwnedFd) -> std::io::Result<bool> {
    match rustix::io::write(fd, REQUEST) {
        Ok(n) if n == REQUEST.len() => Ok(true),
        Ok(_) => Err(std::io::Error::other("short request write")),
        Err(Errno::AGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn write_request(fd: &OwnedFd) -> std::io::Result<()> {
    if try_request(fd)? {
        Ok(())
    } else {
        Err(std::io::Error::other("the pty would not take a request"))
    }
}

fn nanos(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

/// A poll waiting for its answer.
#[derive(Debug)]
struct Waiting {
    /// When it was written.
    sent: Instant,
    /// Planned inside the measured span: its figures count.
    measured: bool,
    /// Reads that brought bytes of its answer so far.
    reads: u32,
    /// When the last of them was.
    last: Option<Instant>,
    /// The largest gap between two of them.
    max_gap: Duration,
    /// A byte differed from the expected reply.
    corrupt: bool,
}

/// One slave of the open-loop client.
struct Port {
    fd: OwnedFd,
    /// Bytes of the oldest waiting answer received so far.
    got: usize,
    /// Polls waiting for answers, oldest first (one, unless the server falls a period behind).
    waiting: VecDeque<Waiting>,
}

/// The open-loop client: one thread, level-triggered epoll over every slave.
struct OpenLoop {
    epoll: Epoll,
    ports: Vec<Port>,
    events: Vec<EpollEvent>,
    buf: Vec<u8>,
}

/// One reading of everything a window's CPU figures come from.
struct Sample {
    at: Instant,
    server: Cpu,
    kworkers: Kworkers,
    /// Non-idle CPU time of the machine, in clock ticks.
    machine: u64,
    /// This process's CPU time.
    client: Duration,
}

impl Sample {
    fn take(server: &ServerChild) -> Self {
        Self {
            at: Instant::now(),
            server: server.cpu(),
            kworkers: Kworkers::now(),
            machine: machine_ticks(),
            client: process_cpu(),
        }
    }
}

/// Run time of every kernel workqueue thread (`kworker/...`), by pid: a pty write only queues
/// the bytes, and a kworker carries them to the other side's line discipline and wakes its
/// reader (`flush_to_ldisc`), work that no process's own CPU time shows. The kworkers serve
/// the whole machine, but during a window nearly all of their work is the bench's ptys.
struct Kworkers(Vec<(u32, u64)>);

impl Kworkers {
    fn now() -> Self {
        let mut threads = Vec::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Self(threads);
        };
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
                continue;
            };
            let kworker = std::fs::read_to_string(entry.path().join("comm"))
                .is_ok_and(|comm| comm.starts_with("kworker"));
            if !kworker {
                continue;
            }
            let ns = std::fs::read_to_string(entry.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(ns) = ns {
                threads.push((pid, ns));
            }
        }
        threads.sort_unstable();
        Self(threads)
    }

    /// Their run time from `earlier` to this reading: a kworker born in between counts whole;
    /// one that ended in between is missed (the kernel keeps few idle ones, rarely ends busy
    /// ones).
    fn since(&self, earlier: &Self) -> Duration {
        let ns = self
            .0
            .iter()
            .map(|&(pid, ns)| {
                let before = earlier
                    .0
                    .binary_search_by_key(&pid, |&(p, _)| p)
                    .map_or(0, |i| earlier.0[i].1);
                ns.saturating_sub(before)
            })
            .sum();
        Duration::from_nanos(ns)
    }
}

/// Non-idle CPU time of the whole machine so far, in clock ticks: the `cpu` line of
/// `/proc/stat` less `idle` and `iowait` (`guest` is already inside `user`).
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

impl OpenLoop {
    fn open(paths: &[String]) -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let mut ports = Vec::with_capacity(paths.len());
        for (i, path) in paths.iter().enumerate() {
            let fd = open_slave(path)?;
            epoll.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))?;
            ports.push(Port {
                fd,
                got: 0,
                waiting: VecDeque::with_capacity(2),
            });
        }
        Ok(Self {
            epoll,
            ports,
            events: vec![EpollEvent::empty(); EVENTS],
            buf: vec![0; 64 * 1024],
        })
    }

    /// Poll every port once per `period`, port after port at even steps, for `lead_in` and then
    /// `length` measured; then wait for every answer (at most [`DRAIN`]).
    fn window(
        &mut self,
        period: Duration,
        lead_in: Duration,
        length: Duration,
        server: &ServerChild,
    ) -> std::io::Result<Window> {
        let n = u32::try_from(self.ports.len()).map_err(std::io::Error::other)?;
        let start = Instant::now();
        let mut timetable = Timetable {
            start,
            step: period / n,
            from: start + lead_in,
            to: start + lead_in + length,
            polled: 0,
        };
        let mut w = Window::default();
        let mut first: Option<Sample> = None;
        let mut last: Option<Sample> = None;
        let mut outstanding = 0usize;
        loop {
            let now = Instant::now();
            if first.is_none() && now >= timetable.from {
                first = Some(Sample::take(server));
            }
            if last.is_none() && now >= timetable.to {
                last = Some(Sample::take(server));
            }
            outstanding += self.send_due(&mut timetable, &mut w)?;
            if last.is_some() && outstanding == 0 {
                break;
            }
            if now >= timetable.to + DRAIN {
                self.give_up(&mut w);
                break;
            }
            let wake = [
                timetable.due(),
                first.is_none().then_some(timetable.from),
                last.is_none().then_some(timetable.to),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_millis(100));
            let counting = first.is_some() && last.is_none();
            outstanding -= self.read_ready(wake, counting, &mut w)?;
        }
        if let (Some(first), Some(last)) = (first, last) {
            w.wall = last.at - first.at;
            w.server = last.server.since(&first.server);
            w.kworkers = last.kworkers.since(&first.kworkers);
            w.machine = Duration::from_nanos(last.machine.saturating_sub(first.machine) * TICK_NS);
            w.client = last.client.saturating_sub(first.client);
        }
        Ok(w)
    }

    /// Write every poll that is due; the number written.
    fn send_due(&mut self, timetable: &mut Timetable, w: &mut Window) -> std::io::Result<usize> {
        let mut written = 0;
        while let Some(planned) = timetable.due().filter(|&at| at <= Instant::now()) {
            let index = usize::try_from(timetable.polled).unwrap_or(0) % self.ports.len();
            let port = &mut self.ports[index];
            let sent = Instant::now();
            let measured = planned >= timetable.from;
            let taken = try_request(&port.fd)?;
            if taken {
                port.waiting.push_back(Waiting {
                    sent,
                    measured,
                    reads: 0,
                    last: None,
                    max_gap: Duration::ZERO,
                    corrupt: false,
                });
                written += 1;
            }
            if measured {
                let late = sent.saturating_duration_since(planned);
                w.polls += 1;
                w.unsent += u64::from(!taken);
                w.on_schedule += u64::from(taken && late <= ON_SCHEDULE);
                w.lateness.push(nanos(late));
            }
            timetable.polled += 1;
        }
        Ok(written)
    }

    /// Wait for replies until `wake` at the latest, and take in what came; the number of
    /// answers completed. `counting`: within the measured span.
    fn read_ready(
        &mut self,
        wake: Instant,
        counting: bool,
        w: &mut Window,
    ) -> std::io::Result<usize> {
        // Rounded up: waking early would only spin.
        let ms = wake
            .saturating_duration_since(Instant::now())
            .as_micros()
            .div_ceil(1000)
            .min(100);
        let timeout = EpollTimeout::from(u16::try_from(ms).unwrap_or(100));
        let ready = match self.epoll.wait(&mut self.events, timeout) {
            Ok(ready) => ready,
            Err(nix::Error::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        let bound = in_time_bound();
        let mut done = 0;
        for event in &self.events[..ready] {
            let Some(port) = usize::try_from(event.data())
                .ok()
                .and_then(|i| self.ports.get_mut(i))
            else {
                continue;
            };
            let got = match rustix::io::read(&port.fd, &mut self.buf[..]) {
                Ok(0) => return Err(std::io::Error::other("server hung up")),
                Ok(got) => got,
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            done += take_bytes(port, &self.buf[..got], Instant::now(), counting, bound, w);
        }
        Ok(done)
    }

    /// Give up on the answers still awaited, and leave every port clean for the next window.
    fn give_up(&mut self, w: &mut Window) {
        for port in &mut self.ports {
            w.unanswered += port.waiting.drain(..).filter(|p| p.measured).count() as u64;
            port.got = 0;
            let _ = rustix::termios::tcflush(&port.fd, QueueSelector::IFlush);
        }
    }
}

/// When a window's polls are due: the `k`-th at `start + k * step`, until `to`.
struct Timetable {
    start: Instant,
    step: Duration,
    /// The measured span: polls planned from `from` count.
    from: Instant,
    /// The last poll is planned before `to`; the measured span ends there.
    to: Instant,
    /// Polls written (or refused) so far.
    polled: u32,
}

impl Timetable {
    /// The planned time of the next poll, if there is one.
    fn due(&self) -> Option<Instant> {
        let next = self.start + self.step * self.polled;
        (next < self.to).then_some(next)
    }
}

/// Match `bytes`, just read from `port` at `now`, against the answers its polls wait for; the
/// number of answers they completed. `counting`: within the measured span, so completed
/// answers count for CPU.
fn take_bytes(
    port: &mut Port,
    mut bytes: &[u8],
    now: Instant,
    counting: bool,
    bound: Duration,
    w: &mut Window,
) -> usize {
    let mut done = 0;
    while !bytes.is_empty() {
        let Some(answer) = port.waiting.front_mut() else {
            w.stray += bytes.len() as u64;
            break;
        };
        let take = (REPLY.len() - port.got).min(bytes.len());
        if bytes[..take] != REPLY[port.got..port.got + take] {
            answer.corrupt = true;
        }
        if let Some(previous) = answer.last {
            answer.max_gap = answer.max_gap.max(now - previous);
        }
        answer.last = Some(now);
        answer.reads += 1;
        port.got += take;
        bytes = &bytes[take..];
        if port.got < REPLY.len() {
            continue;
        }
        port.got = 0;
        let Some(answer) = port.waiting.pop_front() else {
            break;
        };
        done += 1;
        w.answers += u64::from(counting);
        if answer.corrupt {
            w.corrupt += 1;
            continue;
        }
        if answer.measured {
            let latency = now - answer.sent;
            w.correct += 1;
            w.in_time += u64::from(latency <= bound);
            w.latencies.push(nanos(latency));
            w.reads.push(answer.reads);
            w.max_gaps.push(nanos(answer.max_gap));
        }
    }
    done
}
