//! The readings and the report: what was measured, and whether the run passed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::proto::{Counts, Kind, PerKind};

/// The server and the counts at one point of the run.
#[derive(Debug)]
pub(crate) struct Reading {
    /// `start`, `middle` or `end`.
    pub(crate) name: &'static str,
    /// Since the run began.
    pub(crate) at: Duration,
    /// The server's resident memory, bytes.
    pub(crate) rss: u64,
    /// The server's CPU time so far.
    pub(crate) cpu: Duration,
    /// The server's threads, by name.
    pub(crate) threads: BTreeMap<String, usize>,
    /// The server's open descriptors (the fewest of five readings over a second).
    pub(crate) fds: usize,
    /// The most of the five.
    pub(crate) fds_max: usize,
    /// The fewest reading's descriptors, by what they are.
    pub(crate) breakdown: BTreeMap<String, usize>,
    /// Counts of the clients not killed (so far).
    pub(crate) alive: PerKind,
    /// Counts of the killed clients (as they last reported).
    pub(crate) killed: PerKind,
    /// Clients killed so far.
    pub(crate) kills: u64,
    /// Fault and unplug commands so far.
    pub(crate) faults: u64,
    /// Per kind: requests the devices answered, frames that were no request.
    pub(crate) server: Vec<(u64, u64)>,
}

/// Everything the run produced.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) warmup: Duration,
    pub(crate) measured: Duration,
    pub(crate) total: Duration,
    pub(crate) readings: Vec<Reading>,
    /// Final counts of the clients not killed.
    pub(crate) survivors: PerKind,
    /// Last reported counts of the killed clients.
    pub(crate) killed: PerKind,
    pub(crate) killed_clients: u64,
    pub(crate) clients: usize,
    /// The server's counts when the clients were stopped.
    pub(crate) server_stats: Vec<(u64, u64)>,
    pub(crate) cycles: u64,
    pub(crate) cycles_recovered: u64,
    pub(crate) faults: BTreeMap<String, u64>,
    pub(crate) clears: u64,
    pub(crate) problems: Vec<String>,
    pub(crate) details: Vec<String>,
    pub(crate) detail_lines: u64,
    /// The server's RSS every ten seconds: (since the run began, bytes).
    pub(crate) rss: Vec<(Duration, u64)>,
    pub(crate) commit: String,
    pub(crate) kernel: String,
}

/// `m:ss`.
pub(crate) fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

#[expect(
    clippy::cast_precision_loss,
    reason = "byte counts far below 2^53, shown to a tenth of a MiB"
)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn total(per_kind: &PerKind) -> Counts {
    let mut t = Counts::default();
    for c in per_kind {
        t.add(c);
    }
    t
}

fn both(a: &PerKind, b: &PerKind) -> Counts {
    let mut t = total(a);
    t.add(&total(b));
    t
}

impl Report {
    fn start_end(&self) -> Option<(&Reading, &Reading)> {
        Some((self.readings.first()?, self.readings.last()?))
    }

    /// RSS at the end relative to the start's, as a signed fraction.
    #[expect(clippy::cast_precision_loss, reason = "byte counts far below 2^53")]
    fn rss_change(&self) -> Option<f64> {
        let (start, end) = self.start_end()?;
        (start.rss > 0).then(|| (end.rss as f64 - start.rss as f64) / start.rss as f64)
    }

    /// Each invariant: whether it held, and what it says.
    fn invariants(&self) -> Vec<(bool, String)> {
        let mut v = Vec::new();
        let all = both(&self.survivors, &self.killed);
        v.push((
            all.wrong == 0 && all.missed == 0 && all.stray == 0,
            format!(
                "owed answers wrong {}, missed {}, unasked bytes {} (every client, killed ones up to their last report)",
                all.wrong, all.missed, all.stray
            ),
        ));
        v.push((
            all.open_errors == 0,
            format!(
                "opens of a port owed answers that failed: {} (every client)",
                all.open_errors
            ),
        ));
        let s = total(&self.survivors);
        v.push((
            s.owed == s.answered + s.wrong + s.missed,
            format!(
                "clients not killed: owed {} = answered {} + wrong {} + missed {}",
                s.owed, s.answered, s.wrong, s.missed
            ),
        ));
        if let (Some((start, end)), Some(change)) = (self.start_end(), self.rss_change()) {
            v.push((
                change.abs() <= 0.05,
                format!(
                    "server RSS at the end {:.1} MiB, after the warm-up {:.1} MiB: {:+.2} % (within 5 %)",
                    mib(end.rss),
                    mib(start.rss),
                    change * 100.0
                ),
            ));
            v.push((
                end.fds == start.fds,
                format!(
                    "server descriptors at the end {}, after the warm-up {} (exactly)",
                    end.fds, start.fds
                ),
            ));
        } else {
            v.push((false, "no readings".into()));
        }
        v.push((
            self.cycles_recovered == self.cycles,
            format!(
                "fault cycles in which every faulted port answered again after its clear: {} of {}",
                self.cycles_recovered, self.cycles
            ),
        ));
        v.push((
            self.problems.is_empty(),
            format!(
                "problems (control errors, ports not back, clients lost): {}",
                self.problems.len()
            ),
        ));
        v
    }

    /// Whether every invariant held.
    pub(crate) fn passed(&self) -> bool {
        self.invariants().iter().all(|(ok, _)| *ok)
    }

    /// The report as printed.
    #[expect(
        clippy::too_many_lines,
        reason = "one table after another, in the order they are read"
    )]
    pub(crate) fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "soak: {} ports, {} measured after a {} warm-up (run {}); commit {}, kernel {}, {} CPUs",
            crate::proto::PORTS,
            clock(self.measured),
            clock(self.warmup),
            clock(self.total),
            self.commit,
            self.kernel,
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        );
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .map(|k| format!("{} {}", k.name(), k.ports()))
            .collect();
        let _ = writeln!(s, "ports: {}", kinds.join(", "));
        let _ = writeln!(
            s,
            "clients: 7 steady (700 ports), 10 killable at a time (200 ports), 1 faulted (100 ports); {} started in all",
            self.clients
        );
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "{:<7} {:>5} {:>10} {:>10} {:>10} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9} {:>5}",
            "point",
            "at",
            "requests",
            "answers",
            "owed",
            "wrong",
            "missed",
            "stray",
            "kills",
            "faults",
            "RSS MiB",
            "fds"
        );
        for r in &self.readings {
            let all = both(&r.alive, &r.killed);
            let fds = if r.fds_max == r.fds {
                r.fds.to_string()
            } else {
                format!("{}-{}", r.fds, r.fds_max)
            };
            let _ = writeln!(
                s,
                "{:<7} {:>5} {:>10} {:>10} {:>10} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9.1} {:>5}",
                r.name,
                clock(r.at),
                all.requests(),
                all.answers(),
                all.owed,
                all.wrong,
                all.missed,
                all.stray,
                r.kills,
                r.faults,
                mib(r.rss),
                fds
            );
        }
        let _ = writeln!(
            s,
            "(since the run began, every client, killed ones as they last reported: requests written in full, correct answers, requests owed an answer, and of those the wrong and missed; stray: bytes no request asked for)"
        );
        if let (Some(first), Some(last)) = (self.readings.first(), self.readings.last()) {
            let server = |r: &Reading| r.server.iter().map(|(h, _)| h).sum::<u64>();
            let secs = last.at.saturating_sub(first.at).as_secs_f64().max(1.0);
            let requests = |r: &Reading| both(&r.alive, &r.killed).requests();
            #[expect(clippy::cast_precision_loss, reason = "request counts far below 2^53")]
            let rate = (requests(last) - requests(first)) as f64 / secs;
            let _ = writeln!(
                s,
                "between start and end: {:.0} requests/s from the clients, {} answered by the devices",
                rate,
                server(last) - server(first)
            );
        }
        for pair in self.readings.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let _ = writeln!(
                s,
                "server CPU {} to {}: {:.1} s in {:.0} s ({:.0} % of one CPU)",
                a.name,
                b.name,
                b.cpu.saturating_sub(a.cpu).as_secs_f64(),
                b.at.saturating_sub(a.at).as_secs_f64(),
                100.0 * b.cpu.saturating_sub(a.cpu).as_secs_f64()
                    / b.at.saturating_sub(a.at).as_secs_f64().max(1.0)
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "server descriptors, by what they are:");
        for r in &self.readings {
            let parts: Vec<String> = r
                .breakdown
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(s, "  {:<7} {}", r.name, parts.join(", "));
        }
        let _ = writeln!(s, "server threads:");
        for r in &self.readings {
            let parts: Vec<String> = r.threads.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(s, "  {:<7} {}", r.name, parts.join(", "));
        }
        let _ = writeln!(s, "server RSS (MiB), every 10 s from the beginning:");
        for row in self.rss.chunks(12) {
            let cells: Vec<String> = row.iter().map(|&(_, b)| format!("{:.2}", mib(b))).collect();
            let _ = writeln!(
                s,
                "  {:>5}  {}",
                row.first().map_or_else(String::new, |&(at, _)| clock(at)),
                cells.join(" ")
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "per kind, clients not killed (final counts):\n  {:<11} {:>9} {:>9} {:>6} {:>6} {:>6} {:>8} {:>10} {:>8} {:>7} | {:>10} {:>8}",
            "kind",
            "owed",
            "answered",
            "wrong",
            "missed",
            "stray",
            "exposed",
            "exposed-ok",
            "reopens",
            "openerr",
            "device-ans",
            "not-req"
        );
        for (i, k) in Kind::ALL.iter().enumerate() {
            let c = &self.survivors[i];
            let (h, e) = self.server_stats.get(i).copied().unwrap_or_default();
            let _ = writeln!(
                s,
                "  {:<11} {:>9} {:>9} {:>6} {:>6} {:>6} {:>8} {:>10} {:>8} {:>7} | {:>10} {:>8}",
                k.name(),
                c.owed,
                c.answered,
                c.wrong,
                c.missed,
                c.stray,
                c.exposed,
                c.exposed_ok,
                c.reopens,
                c.open_errors,
                h,
                e
            );
        }
        let t = total(&self.survivors);
        let _ = writeln!(
            s,
            "  {:<11} {:>9} {:>9} {:>6} {:>6} {:>6} {:>8} {:>10} {:>8} {:>7} | {:>10} {:>8}",
            "total",
            t.owed,
            t.answered,
            t.wrong,
            t.missed,
            t.stray,
            t.exposed,
            t.exposed_ok,
            t.reopens,
            t.open_errors,
            self.server_stats.iter().map(|(h, _)| h).sum::<u64>(),
            self.server_stats.iter().map(|(_, e)| e).sum::<u64>()
        );
        let _ = writeln!(
            s,
            "  (device-ans: requests the devices answered, every client; not-req: frames that were not a request — half requests glued to the next, noise)"
        );
        let k = total(&self.killed);
        let _ = writeln!(
            s,
            "killed clients: {}; before dying they had reported {} requests and {} correct answers (wrong {}, missed {}, stray {})",
            self.killed_clients,
            k.requests(),
            k.answers(),
            k.wrong,
            k.missed,
            k.stray
        );
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "fault cycles: {} ({} recovered); commands: {}; clear {}",
            self.cycles,
            self.cycles_recovered,
            faults.join(", "),
            self.clears
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "invariants:");
        for (ok, text) in self.invariants() {
            let _ = writeln!(s, "  [{}] {text}", if ok { "ok" } else { "FAIL" });
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s, "problems:");
            for p in &self.problems {
                let _ = writeln!(s, "  {p}");
            }
        }
        if self.detail_lines > 0 {
            let _ = writeln!(
                s,
                "failures reported by clients ({} in all, the first {}):",
                self.detail_lines,
                self.details.len()
            );
            for d in &self.details {
                let _ = writeln!(s, "  {d}");
            }
        }
        let _ = writeln!(
            s,
            "soak: {}",
            if self.passed() { "PASSED" } else { "FAILED" }
        );
        s
    }
}
