//! A client child (`--client ROLE`): one thread, level-triggered epoll over its ports' slaves
//! (opened through the links, raw, nonblocking), polling each port with one request at a time
//! and checking every answer byte for byte.
//!
//! Commands on stdin, one a line:
//! - `stop`: send nothing more, wait for the answers still owed, print `final ...`, exit;
//! - `doom`: write half a request on some idle ports and a whole one on the others, print
//!   `doomed` and wait to be killed;
//! - `lenient`: faults are coming: from now on (and for the requests outstanding) no answer is
//!   owed; timeouts, garbage and hangups are survived by reopening the port (`ack lenient`);
//! - `resync`: reopen every port that is not open (an unplugged one comes back under its link),
//!   then close them all (`ack closed`);
//! - `strict`: reopen every port and owe answers again; `recovered N` once each of the N ports
//!   has answered correctly.
//!
//! It prints `stats ...` every second (the counts so far, per kind), and `wrong ...`,
//! `missed ...`, `stray ...` for each failure (the first few in detail).

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::termios::OptionalActions;

use crate::proto::{self, Kind, PerKind, Rng, Role, port_name};
use serialtwin::escape::escape;

/// An owed answer that has not come after this long is missed. (The slowest answer, 63 bytes
/// at 2400 baud, takes 0.26 s on the line.)
const OWED_WITHIN: Duration = Duration::from_secs(10);
/// An exposed request not answered after this long is given up (the port is reopened).
const EXPOSED_WITHIN: Duration = Duration::from_secs(2);
/// After a failure on a port owed answers, this long before it is reopened (past the paced
/// lines' 1 s frame timeout, so that one failure does not cause the next).
const RESYNC_AFTER: Duration = Duration::from_millis(1500);
/// Failures printed in full, per client.
const DETAILS: u32 = 20;
/// The stdin token in the epoll set; ports use their index in `ports`.
const STDIN: u64 = u64::MAX;

/// A request sent and not yet answered.
struct Outstanding {
    seq: u64,
    answer: Vec<u8>,
    got: usize,
    sent: Instant,
    /// Sent (or outstanding) while faults may hit it: no answer owed.
    exposed: bool,
}

/// One port, as this client has it.
struct Port {
    kind: Kind,
    name: String,
    link: PathBuf,
    fd: Option<OwnedFd>,
    /// When to try to open it again, while closed.
    reopen_at: Option<Instant>,
    next_seq: u64,
    outstanding: Option<Outstanding>,
    /// A request not yet written in full (the line would not take it all).
    unsent: Vec<u8>,
    next_send: Instant,
    /// Not yet answered correctly since the last `strict`.
    recovering: bool,
}

/// The client's state.
struct Client {
    role: Role,
    epoll: Epoll,
    ports: Vec<Port>,
    counts: PerKind,
    rng: Rng,
    think_ms: u64,
    /// Close and reopen a port after one answer in this many (0: never).
    reopen_one_in: u64,
    lenient: bool,
    stopping: bool,
    recovering: usize,
    details: u32,
    buf: Vec<u8>,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A lost parent ends us through the death signal.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Run as a client child of `role` on `ports` (their links under `dir/links`).
pub(crate) fn run(
    role: Role,
    dir: &Path,
    ports: &[usize],
    seed: u64,
    think_ms: u64,
    reopen_one_in: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    let stdin = std::io::stdin();
    rustix::io::ioctl_fionbio(&stdin, true)?;
    epoll.add(stdin.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, STDIN))?;
    let now = Instant::now();
    let mut client = Client {
        role,
        epoll,
        ports: ports
            .iter()
            .map(|&index| Port {
                kind: Kind::of(index),
                name: port_name(index),
                link: dir.join("links").join(port_name(index)),
                fd: None,
                reopen_at: Some(now),
                next_seq: 0,
                outstanding: None,
                unsent: Vec::new(),
                next_send: now,
                recovering: false,
            })
            .collect(),
        counts: PerKind::default(),
        rng: Rng::new(seed),
        think_ms: think_ms.max(1),
        reopen_one_in,
        lenient: false,
        stopping: false,
        recovering: 0,
        details: 0,
        buf: vec![0; 4096],
    };
    // Spread the first requests over one think time.
    for p in &mut client.ports {
        p.next_send = now + Duration::from_millis(client.rng.below(client.think_ms));
    }
    client.main_loop(&stdin)
}

impl Client {
    fn main_loop(&mut self, stdin: &std::io::Stdin) -> Result<(), Box<dyn std::error::Error>> {
        let mut events = vec![EpollEvent::empty(); 256];
        let mut commands = Vec::new();
        let mut next_stats = Instant::now() + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            self.tick(now);
            if now >= next_stats {
                say(&format!("stats{}", proto::format_counts(&self.counts)));
                next_stats = now + Duration::from_secs(1);
            }
            if self.stopping && self.ports.iter().all(|p| p.outstanding.is_none()) {
                say(&format!("final{}", proto::format_counts(&self.counts)));
                return Ok(());
            }
            let n = match self.epoll.wait(&mut events, EpollTimeout::from(5u16)) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => 0,
                Err(e) => return Err(e.into()),
            };
            for event in &events[..n] {
                let token = event.data();
                if token == STDIN {
                    match rustix::io::read(stdin, &mut self.buf[..]) {
                        Ok(0) => return Ok(()),
                        Ok(got) => commands.extend_from_slice(&self.buf[..got]),
                        Err(Errno::AGAIN | Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                    while let Some(end) = commands.iter().position(|&b| b == b'\n') {
                        let line = String::from_utf8_lossy(&commands[..end]).into_owned();
                        commands.drain(..=end);
                        self.command(line.trim())?;
                    }
                } else if let Ok(i) = usize::try_from(token) {
                    self.readable(i, Instant::now());
                }
            }
        }
    }

    /// Sends, timeouts and reopens that are due.
    fn tick(&mut self, now: Instant) {
        for i in 0..self.ports.len() {
            let p = &mut self.ports[i];
            if p.fd.is_none() {
                if p.reopen_at.is_some_and(|t| now >= t) && !self.stopping {
                    self.open(i, now);
                }
                continue;
            }
            if !p.unsent.is_empty() {
                self.write_unsent(i);
                continue;
            }
            let p = &mut self.ports[i];
            if let Some(o) = &p.outstanding {
                let within = if o.exposed {
                    EXPOSED_WITHIN
                } else {
                    OWED_WITHIN
                };
                if now.duration_since(o.sent) > within {
                    let (seq, got, exposed) = (o.seq, o.got, o.exposed);
                    if !exposed {
                        self.counts[p.kind.index()].missed += 1;
                        self.detail("missed", i, seq, &format!("{got} bytes of the answer"));
                    }
                    self.resync(i, now);
                }
                continue;
            }
            if !self.stopping && now >= p.next_send {
                self.send(i, now);
            }
        }
    }

    fn detail(&mut self, what: &str, i: usize, seq: u64, text: &str) {
        self.details += 1;
        let p = &self.ports[i];
        if self.details <= DETAILS {
            say(&format!(
                "{what} {} {} {} seq={seq} {text}",
                self.role.name(),
                p.name,
                p.kind.name(),
            ));
        } else {
            say(&format!(
                "{what} {} {} {}",
                self.role.name(),
                p.name,
                p.kind.name()
            ));
        }
    }

    fn open(&mut self, i: usize, now: Instant) {
        let p = &mut self.ports[i];
        let opened = rustix::fs::open(
            &p.link,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .and_then(|fd| {
            let mut t = rustix::termios::tcgetattr(&fd)?;
            t.make_raw();
            if let Some(baud) = p.kind.baud() {
                t.set_speed(baud)?;
            }
            rustix::termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
            Ok(fd)
        });
        match opened {
            Ok(fd) => {
                let token = u64::try_from(i).unwrap_or(u64::MAX - 1);
                if self
                    .epoll
                    .add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                    .is_err()
                {
                    if !self.lenient {
                        self.counts[p.kind.index()].open_errors += 1;
                    }
                    p.reopen_at = Some(now + Duration::from_millis(100));
                    return;
                }
                p.fd = Some(fd);
                p.reopen_at = None;
                p.next_send = p.next_send.max(now);
            }
            Err(e) => {
                // An unplugged port's link is back within a second (faults: not counted); on
                // a port owed answers, every failure is noted, and the open retried.
                p.reopen_at = Some(now + Duration::from_millis(100));
                if !self.lenient {
                    self.counts[p.kind.index()].open_errors += 1;
                    let seq = p.next_seq;
                    self.detail("open-failed", i, seq, &e.to_string());
                }
            }
        }
    }

    /// Close port `i`; reopen it at `reopen_at` (`None`: not until told).
    fn close(&mut self, i: usize, reopen_at: Option<Instant>) {
        let p = &mut self.ports[i];
        if let Some(fd) = p.fd.take() {
            let _ = self.epoll.delete(&fd);
            drop(fd);
            self.counts[p.kind.index()].reopens += 1;
        }
        p.outstanding = None;
        p.unsent.clear();
        p.reopen_at = reopen_at;
    }

    /// After a failure: close the port and open it again a while later.
    fn resync(&mut self, i: usize, now: Instant) {
        let after = if self.lenient {
            Duration::from_millis(200)
        } else {
            RESYNC_AFTER
        };
        self.close(i, Some(now + after));
    }

    fn send(&mut self, i: usize, now: Instant) {
        let exposed = self.lenient;
        let p = &mut self.ports[i];
        let seq = p.next_seq;
        p.next_seq += 1;
        let request = proto::request(seq);
        p.outstanding = Some(Outstanding {
            seq,
            answer: proto::answer(&p.name, seq),
            got: 0,
            sent: now,
            exposed,
        });
        p.unsent = request;
        self.write_unsent(i);
    }

    /// Write what is left of the current request; once all of it is written, it counts.
    fn write_unsent(&mut self, i: usize) {
        let p = &mut self.ports[i];
        let Some(fd) = &p.fd else { return };
        match rustix::io::write(fd, &p.unsent) {
            Ok(n) => {
                p.unsent.drain(..n);
            }
            Err(Errno::AGAIN | Errno::INTR) => return,
            Err(_) => {
                // The line went away under the request (an unplug): the answer cannot come.
                self.hangup(i, Instant::now());
                return;
            }
        }
        if p.unsent.is_empty()
            && let Some(o) = &mut p.outstanding
        {
            o.sent = Instant::now();
            let c = &mut self.counts[p.kind.index()];
            if o.exposed {
                c.exposed += 1;
            } else {
                c.owed += 1;
            }
        }
    }

    fn hangup(&mut self, i: usize, now: Instant) {
        let p = &self.ports[i];
        if let Some(o) = &p.outstanding
            && !o.exposed
            && p.unsent.is_empty()
        {
            let (seq, kind) = (o.seq, p.kind);
            self.counts[kind.index()].missed += 1;
            self.detail("missed", i, seq, "the port hung up");
        }
        self.resync(i, now);
    }

    fn readable(&mut self, i: usize, now: Instant) {
        let Some(fd) = &self.ports[i].fd else { return };
        let got = match rustix::io::read(fd, &mut self.buf[..]) {
            Ok(0) => {
                self.hangup(i, now);
                return;
            }
            Ok(got) => got,
            Err(Errno::AGAIN | Errno::INTR) => return,
            Err(_) => {
                self.hangup(i, now);
                return;
            }
        };
        let bytes = self.buf[..got].to_vec();
        let p = &mut self.ports[i];
        let k = p.kind.index();
        let Some(o) = &mut p.outstanding else {
            if !self.lenient {
                self.counts[k].stray += 1;
                let text = format!("no answer owed, got \"{}\"", escape(&bytes));
                let seq = p.next_seq;
                self.detail("stray", i, seq, &text);
                self.resync(i, now);
            }
            return;
        };
        let expected = &o.answer[o.got..];
        if bytes.len() > expected.len() || bytes != expected[..bytes.len()] {
            let (seq, exposed) = (o.seq, o.exposed);
            if !exposed {
                self.counts[k].wrong += 1;
                let text = format!(
                    "expected \"{}\" got \"{}{}\"",
                    escape(&o.answer),
                    escape(&o.answer[..o.got]),
                    escape(&bytes)
                );
                self.detail("wrong", i, seq, &text);
            }
            self.resync(i, now);
            return;
        }
        o.got += bytes.len();
        if o.got < o.answer.len() {
            return;
        }
        let exposed = o.exposed;
        p.outstanding = None;
        if exposed {
            self.counts[k].exposed_ok += 1;
        } else {
            self.counts[k].answered += 1;
            if p.recovering {
                p.recovering = false;
                self.recovering -= 1;
                if self.recovering == 0 {
                    say(&format!("recovered {}", self.ports.len()));
                }
            }
        }
        let think = Duration::from_millis(self.rng.below(2 * self.think_ms));
        self.ports[i].next_send = now + think;
        // Now and then, close the port and open it again at once, as mppsolar does for
        // every command.
        if self.role != Role::Faulted
            && self.reopen_one_in > 0
            && self.rng.below(self.reopen_one_in) == 0
        {
            self.close(i, Some(now));
            self.open(i, now);
        }
    }

    fn command(&mut self, line: &str) -> Result<(), Box<dyn std::error::Error>> {
        let now = Instant::now();
        match line {
            "stop" => self.stopping = true,
            "doom" => {
                for i in 0..self.ports.len() {
                    let p = &mut self.ports[i];
                    let (Some(fd), None) = (&p.fd, &p.outstanding) else {
                        continue;
                    };
                    let request = proto::request(p.next_seq);
                    let part = if i % 2 == 0 {
                        &request[..request.len() / 2]
                    } else {
                        &request[..]
                    };
                    let _ = rustix::io::write(fd, part);
                }
                say("doomed");
                // Wait for the signal.
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
            "lenient" => {
                self.lenient = true;
                for p in &mut self.ports {
                    if let Some(o) = &mut p.outstanding
                        && !o.exposed
                    {
                        o.exposed = true;
                        if p.unsent.is_empty() {
                            // Written while owed, outstanding when the faults came: exposed.
                            let c = &mut self.counts[p.kind.index()];
                            c.owed -= 1;
                            c.exposed += 1;
                        }
                    }
                }
                say("ack lenient");
            }
            "resync" => {
                let deadline = now + Duration::from_secs(10);
                while self.ports.iter().any(|p| p.fd.is_none()) && Instant::now() < deadline {
                    for i in 0..self.ports.len() {
                        if self.ports[i].fd.is_none() {
                            self.open(i, Instant::now());
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let missing = self.ports.iter().filter(|p| p.fd.is_none()).count();
                // Let the ports see the opens before they see the closes.
                std::thread::sleep(Duration::from_millis(300));
                for i in 0..self.ports.len() {
                    self.close(i, None);
                }
                say(&format!("ack closed {missing}"));
            }
            "strict" => {
                self.lenient = false;
                self.recovering = self.ports.len();
                for i in 0..self.ports.len() {
                    self.ports[i].recovering = true;
                    self.ports[i].next_send = now;
                    self.open(i, now);
                }
            }
            other => return Err(format!("bad command {other:?}").into()),
        }
        Ok(())
    }
}
