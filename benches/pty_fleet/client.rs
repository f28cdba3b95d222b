//! The client: one thread, level-triggered epoll over every slave, raw and nonblocking.
//!
//! The same code drives both servers. A [`Client`] keeps its slaves open for the whole run
//! (each open of `/dev/pts/N` is an inotify event for serialtwin, so we open once, up front).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::termios::OptionalActions;

use crate::{REPLY, REQUEST};

/// Give up on a server that has answered nothing for this long.
const STALL: Duration = Duration::from_secs(10);
/// Requests kept in flight by the pipelined (device → client) throughput test.
const PIPELINE: usize = 16;
/// The line the client → device throughput test streams (not a request: no reply).
const FILLER: &[u8; 64] = b"FILLFILLFILLFILLFILLFILLFILLFILLFILLFILLFILLFILLFILLFILLFILLFI\r\n";

/// One slave the client talks to.
struct Slave {
    fd: OwnedFd,
    /// Bytes of the current reply received so far.
    got: usize,
    /// When the outstanding request was written (`None`: nothing outstanding).
    sent: Option<Instant>,
    /// Round trips completed in the current window.
    done: u64,
}

/// What one measurement window produced.
#[derive(Debug, Default)]
pub(crate) struct Window {
    /// Round trips completed.
    pub(crate) round_trips: u64,
    /// Length of the window.
    pub(crate) elapsed: Duration,
    /// Latency of every round trip, in nanoseconds (saturating at `u32::MAX`).
    pub(crate) latencies: Vec<u32>,
    /// Ports that completed no round trip.
    pub(crate) starved: usize,
    /// The fewest round trips any one port completed.
    pub(crate) min_port: u64,
    /// Server CPU time spent during the window, in nanoseconds.
    pub(crate) server_cpu_ns: u64,
    /// The client thread's CPU time during the window, in nanoseconds.
    pub(crate) client_cpu_ns: u64,
}

/// The client side of one server's ports.
pub(crate) struct Client {
    epoll: Epoll,
    slaves: Vec<Slave>,
    events: Vec<EpollEvent>,
    buf: Vec<u8>,
    /// What the closed loop sends and expects back: a PI30 `QPIGS` and its reply, or a Modbus
    /// read and its reply.
    request: &'static [u8],
    reply: &'static [u8],
    /// Replies whose bytes differed from the expected reply (must stay 0).
    pub(crate) corrupt: u64,
}

/// CPU time of the calling thread.
pub(crate) fn thread_cpu() -> Duration {
    cpu_of(nix::sys::resource::UsageWho::RUSAGE_THREAD)
}

/// CPU time of this whole process (every thread; not its children).
pub(crate) fn process_cpu() -> Duration {
    cpu_of(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

fn cpu_of(who: nix::sys::resource::UsageWho) -> Duration {
    let Ok(u) = nix::sys::resource::getrusage(who) else {
        return Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::new(
            u64::try_from(t.tv_sec()).unwrap_or(0),
            u32::try_from(t.tv_usec()).unwrap_or(0) * 1000,
        )
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn saturating_ns(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Client {
    /// Open every path as a client would: raw, nonblocking, and watch them all; PI30 requests.
    pub(crate) fn open(paths: &[String]) -> std::io::Result<Self> {
        Self::open_for(paths, REQUEST, REPLY)
    }

    /// [`Client::open`] with another request and reply (the Modbus rows).
    pub(crate) fn open_for(
        paths: &[String],
        request: &'static [u8],
        reply: &'static [u8],
    ) -> std::io::Result<Self> {
        let mut fds = Vec::with_capacity(paths.len());
        for path in paths {
            let fd = rustix::fs::open(
                path.as_str(),
                OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let mut t = rustix::termios::tcgetattr(&fd)?;
            t.make_raw();
            rustix::termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
            fds.push(fd);
        }
        Self::on(fds, request, reply)
    }

    /// A client on descriptors already open and set up (a pty master whose slave another
    /// server opened), nonblocking.
    pub(crate) fn on(
        fds: Vec<OwnedFd>,
        request: &'static [u8],
        reply: &'static [u8],
    ) -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let mut slaves = Vec::with_capacity(fds.len());
        for (i, fd) in fds.into_iter().enumerate() {
            epoll.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))?;
            slaves.push(Slave {
                fd,
                got: 0,
                sent: None,
                done: 0,
            });
        }
        Ok(Self {
            epoll,
            events: vec![EpollEvent::empty(); 1024.min(slaves.len().max(1))],
            slaves,
            buf: vec![0; 64 * 1024],
            request,
            reply,
            corrupt: 0,
        })
    }

    /// Number of ports.
    pub(crate) fn len(&self) -> usize {
        self.slaves.len()
    }

    fn wait(&mut self, timeout: Duration) -> std::io::Result<usize> {
        let ms = u16::try_from(timeout.as_millis().clamp(1, 1000)).unwrap_or(1000);
        match self.epoll.wait(&mut self.events, EpollTimeout::from(ms)) {
            Ok(n) => Ok(n),
            Err(nix::Error::EINTR) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn send_request(slave: &mut Slave, request: &[u8], now: Instant) -> std::io::Result<()> {
        let n = rustix::io::write(&slave.fd, request)?;
        if n != request.len() {
            return Err(std::io::Error::other("short request write"));
        }
        slave.sent = Some(now);
        Ok(())
    }

    /// The closed loop: one outstanding request per port for `length`. `cpu` reads the
    /// server's CPU time; it is sampled at the start and the end of the window. Requests still
    /// outstanding at the end are drained (not counted) before returning.
    pub(crate) fn closed_loop(
        &mut self,
        length: Duration,
        cpu: &mut dyn FnMut() -> u64,
    ) -> std::io::Result<Window> {
        let (request, reply) = (self.request, self.reply);
        let mut latencies = Vec::with_capacity(1 << 16);
        for s in &mut self.slaves {
            s.done = 0;
            s.got = 0;
        }
        let client0 = thread_cpu();
        let cpu0 = cpu();
        let start = Instant::now();
        let end = start + length;
        for s in &mut self.slaves {
            Self::send_request(s, request, start)?;
        }
        let mut round_trips = 0u64;
        let mut last_progress = start;
        let mut outstanding = self.slaves.len();
        let mut stopped_at = None;
        let mut server_cpu = 0;
        let mut client_cpu = Duration::ZERO;
        while outstanding > 0 {
            let now = Instant::now();
            let running = stopped_at.is_none();
            if running && now >= end {
                server_cpu = cpu().saturating_sub(cpu0);
                client_cpu = thread_cpu().saturating_sub(client0);
                stopped_at = Some(now);
            }
            if now.duration_since(last_progress) > STALL {
                return Err(std::io::Error::other(format!(
                    "no reply for {STALL:?} with {outstanding} requests outstanding"
                )));
            }
            let timeout = if stopped_at.is_none() {
                end.saturating_duration_since(now)
            } else {
                Duration::from_millis(100)
            };
            let n = self.wait(timeout)?;
            for i in 0..n {
                let Ok(index) = usize::try_from(self.events[i].data()) else {
                    continue;
                };
                let slave = &mut self.slaves[index];
                let got = match rustix::io::read(&slave.fd, &mut self.buf[..]) {
                    Ok(0) => return Err(std::io::Error::other("server hung up")),
                    Ok(got) => got,
                    Err(Errno::AGAIN | Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                };
                let bytes = &self.buf[..got];
                if slave.got + got > reply.len() || bytes != &reply[slave.got..slave.got + got] {
                    self.corrupt += 1;
                }
                slave.got += got;
                if slave.got < reply.len() {
                    continue;
                }
                slave.got = 0;
                let now = Instant::now();
                last_progress = now;
                let Some(sent) = slave.sent.take() else {
                    continue;
                };
                if stopped_at.is_none() {
                    round_trips += 1;
                    slave.done += 1;
                    latencies.push(saturating_ns(now - sent));
                    Self::send_request(slave, request, now)?;
                } else {
                    outstanding -= 1;
                }
            }
        }
        let elapsed = stopped_at.map_or(length, |t| t - start);
        Ok(Window {
            round_trips,
            elapsed,
            latencies,
            starved: self.slaves.iter().filter(|s| s.done == 0).count(),
            min_port: self.slaves.iter().map(|s| s.done).min().unwrap_or(0),
            server_cpu_ns: server_cpu,
            client_cpu_ns: nanos(client_cpu),
        })
    }

    /// Device → client bytes per second through port 0: [`PIPELINE`] requests in flight.
    pub(crate) fn pipelined_down(&mut self, length: Duration) -> std::io::Result<f64> {
        let requests = REQUEST.repeat(PIPELINE);
        let slave = &mut self.slaves[0];
        let mut got = 0usize;
        let mut in_flight = PIPELINE;
        write_all(&slave.fd, &requests)?;
        let start = Instant::now();
        let end = start + length;
        let mut received = 0u64;
        let mut last_progress = start;
        let mut stopped = false;
        while in_flight > 0 {
            let now = Instant::now();
            if !stopped && now >= end {
                stopped = true;
            }
            if now.duration_since(last_progress) > STALL {
                return Err(std::io::Error::other("pipelined test stalled"));
            }
            let ms = u16::try_from(end.saturating_duration_since(now).as_millis().clamp(1, 100))
                .unwrap_or(100);
            if self
                .epoll
                .wait(&mut self.events, EpollTimeout::from(ms))
                .is_err()
            {
                continue;
            }
            let n = match rustix::io::read(&slave.fd, &mut self.buf[..]) {
                Ok(0) => return Err(std::io::Error::other("server hung up")),
                Ok(n) => n,
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            last_progress = Instant::now();
            got += n;
            let replies = got / REPLY.len();
            got %= REPLY.len();
            in_flight -= replies;
            if !stopped {
                received += (replies * REPLY.len()) as u64;
                write_all(&slave.fd, &requests[..replies * REQUEST.len()])?;
                in_flight += replies;
            }
        }
        Ok(crate::report::f64_of(received) / length.as_secs_f64())
    }

    /// Client → device bytes per second through port 0: stream filler lines for `length`, then
    /// one request; the rate counts until its reply is back (so every byte was consumed).
    pub(crate) fn stream_up(&mut self, length: Duration) -> std::io::Result<f64> {
        let chunk = FILLER.repeat(64);
        let slave = &mut self.slaves[0];
        let start = Instant::now();
        let end = start + length;
        let mut sent = 0u64;
        while Instant::now() < end {
            match rustix::io::write(&slave.fd, &chunk) {
                Ok(n) => sent += n as u64,
                Err(Errno::AGAIN | Errno::INTR) => wait_writable(&slave.fd),
                Err(e) => return Err(e.into()),
            }
        }
        // Finish the partial line we may have left, then ask.
        let partial = usize::try_from(sent % FILLER.len() as u64).unwrap_or(0);
        if partial != 0 {
            write_all(&slave.fd, &FILLER[partial..])?;
            sent += (FILLER.len() - partial) as u64;
        }
        write_all(&slave.fd, REQUEST)?;
        let mut got = 0usize;
        let deadline = Instant::now() + STALL;
        while got < REPLY.len() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("stream test: no reply"));
            }
            let _ = self
                .epoll
                .wait(&mut self.events, EpollTimeout::from(100u16));
            match rustix::io::read(&slave.fd, &mut self.buf[..]) {
                Ok(0) => return Err(std::io::Error::other("server hung up")),
                Ok(n) => got += n,
                Err(Errno::AGAIN | Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(crate::report::f64_of(sent) / start.elapsed().as_secs_f64())
    }
}

fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::AGAIN | Errno::INTR) => wait_writable(fd),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn wait_writable(fd: &OwnedFd) {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    // An error here shows up as the next write's error.
    let _ = nix::poll::poll(&mut fds, PollTimeout::from(100u16));
}
