//! The parent's handle on a server child: spawn, commands, and readings from `/proc/<pid>`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Runtime;

/// A server running in a child process of ours.
pub(crate) struct ServerChild {
    /// `limit`, `serialtwin` or a variant.
    pub(crate) kind: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ServerChild {
    /// Start `kind` and wait until it is ready.
    pub(crate) fn spawn(kind: &'static str, runtime: Runtime) -> std::io::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--serve", kind, "--rt", runtime.name()])
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
            kind,
            child,
            stdin,
            stdout,
        };
        let line = this.read_line()?;
        if line != "ready" {
            return Err(std::io::Error::other(format!(
                "{kind}: expected ready, got {line:?}"
            )));
        }
        Ok(this)
    }

    fn read_line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(format!(
                "{}: server exited",
                self.kind
            )));
        }
        Ok(line.trim_end().to_owned())
    }

    fn command(&mut self, command: &str) -> std::io::Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("stdin closed"))?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        self.read_line()
    }

    /// Open `n` ports; their slave paths and the time the server took.
    pub(crate) fn open(&mut self, n: usize) -> std::io::Result<(Duration, Vec<String>)> {
        let line = self.command(&format!("open {n}"))?;
        self.opened(&line, n)
    }

    /// Open `n` ports on the paced section's 2400-baud line, `paced` or not (`serialtwin` or
    /// `limit`). `Ok(Err(_))`: the system refused a port; the child closed them all again.
    pub(crate) fn open_on_line(
        &mut self,
        n: usize,
        paced: bool,
    ) -> std::io::Result<Result<(Duration, Vec<String>), Refused>> {
        let pacing = if paced { "paced" } else { "unpaced" };
        let line = self.command(&format!("open {n} {pacing}"))?;
        if let Some(rest) = line.strip_prefix("failed ") {
            let (count, error) = rest.split_once(' ').unwrap_or((rest, ""));
            return Ok(Err(Refused {
                opened: count.parse().map_err(std::io::Error::other)?,
                error: error.to_owned(),
            }));
        }
        self.opened(&line, n).map(Ok)
    }

    /// Open `n` ports answering the Modbus rows' read (`serialtwin` and `limit`).
    pub(crate) fn open_modbus(&mut self, n: usize) -> std::io::Result<(Duration, Vec<String>)> {
        let line = self.command(&format!("open {n} modbus"))?;
        self.opened(&line, n)
    }

    /// The paths and bring-up time of an `opened` answer for `n` ports.
    fn opened(&self, line: &str, n: usize) -> std::io::Result<(Duration, Vec<String>)> {
        let mut words = line.split(' ');
        let (Some("opened"), Some(ns)) = (words.next(), words.next()) else {
            return Err(std::io::Error::other(format!(
                "{}: bad answer {line:?}",
                self.kind
            )));
        };
        let ns: u64 = ns.parse().map_err(std::io::Error::other)?;
        let paths: Vec<String> = words.map(str::to_owned).collect();
        if paths.len() != n {
            return Err(std::io::Error::other(format!(
                "{}: {} paths for {n} ports",
                self.kind,
                paths.len()
            )));
        }
        Ok((Duration::from_nanos(ns), paths))
    }

    /// Close every port; the time the server took.
    pub(crate) fn close(&mut self) -> std::io::Result<Duration> {
        let line = self.command("close")?;
        let ns = line
            .strip_prefix("closed ")
            .and_then(|ns| ns.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("{}: bad answer {line:?}", self.kind)))?;
        Ok(Duration::from_nanos(ns))
    }

    /// The server process's id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process, in bytes.
    pub(crate) fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    /// A reading of the server's CPU time for [`Cpu::since`]: every thread's `schedstat` (ns)
    /// and the process's `utime + stime` from `/proc/<pid>/stat` (clock ticks, which also
    /// count threads that have exited).
    pub(crate) fn cpu(&self) -> Cpu {
        let pid = self.child.id();
        let mut threads = Vec::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                    continue;
                };
                let ns = std::fs::read_to_string(task.path().join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
                if let Some(ns) = ns {
                    threads.push((tid, ns));
                }
            }
        }
        threads.sort_unstable();
        Cpu {
            threads,
            ticks: stat_ticks(&format!("/proc/{pid}/stat")),
        }
    }

    /// Close stdin (the child exits), and wait for it; kill it if it lingers.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break,
            }
        }
        eprintln!("pty_fleet: {} server did not exit; killing it", self.kind);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.stop();
        }
    }
}

/// A server child's refusal to open the ports it was asked for.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// Ports it had opened when the system refused the next one.
    pub(crate) opened: usize,
    /// The error, as the fleet put it.
    pub(crate) error: String,
}

/// Nanoseconds per clock tick of `/proc` (`USER_HZ`, 100 on every Linux architecture the
/// bench runs on).
pub(crate) const TICK_NS: u64 = 10_000_000;

/// CPU time of every thread of process `pid` so far, in nanoseconds (the sum of the threads'
/// `schedstat` run times; `stat`'s utime+stime at 10 ms resolution as a fallback).
pub(crate) fn process_cpu_ns(pid: u32) -> u64 {
    let mut total = 0u64;
    let mut found = false;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                total += ns;
                found = true;
            }
        }
    }
    if found && total > 0 {
        return total;
    }
    stat_ticks(&format!("/proc/{pid}/stat")) * TICK_NS
}

/// `utime + stime` of the process whose `stat` file is at `path`, in clock ticks: every thread
/// the process has had, live or exited.
pub(crate) fn stat_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    ticks(11) + ticks(12)
}

/// One reading of a server process's CPU time (see [`ServerChild::cpu`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Cpu {
    /// `(tid, ns run)` of every live thread, by tid.
    threads: Vec<(u32, u64)>,
    /// `utime + stime` of the process, in clock ticks.
    ticks: u64,
}

/// The server's CPU time between two readings.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSpent {
    /// Summed over every thread, to the nanosecond (`schedstat`); when a thread exited in
    /// between, whose time `schedstat` can no longer show, the `stat` figure instead.
    pub(crate) threads: Duration,
    /// From the process's `utime + stime`: every thread too, but in 10 ms ticks, so up to
    /// 10 ms off at each end.
    pub(crate) stat: Duration,
    /// A thread that was there at the start was gone at the end.
    pub(crate) thread_exited: bool,
}

impl Cpu {
    /// What was spent from `earlier` to this reading.
    pub(crate) fn since(&self, earlier: &Self) -> CpuSpent {
        let stat = Duration::from_nanos(self.ticks.saturating_sub(earlier.ticks) * TICK_NS);
        let thread_exited = earlier
            .threads
            .iter()
            .any(|(tid, _)| self.threads.binary_search_by_key(tid, |&(t, _)| t).is_err());
        let total = |c: &Self| c.threads.iter().map(|&(_, ns)| ns).sum::<u64>();
        let threads = if thread_exited || self.threads.is_empty() {
            stat
        } else {
            Duration::from_nanos(total(self).saturating_sub(total(earlier)))
        };
        CpuSpent {
            threads,
            stat,
            thread_exited,
        }
    }
}
