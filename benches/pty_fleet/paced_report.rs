//! The paced section's numbers: its table, its targets and its part of the JSON file.

use std::fmt::Write as _;
use std::time::Duration;

use crate::paced::{
    BIG_FLEET, BigCount, CHUNK, FLEET, ON_SCHEDULE, PTY_HEADROOM, Quiet, Results, Row, SLACK,
    in_time_bound, wire_time,
};
use crate::report::{J, Target, f64_of};

/// The reads a reply arrives in with the library's default 16 ms chunks: one per chunk tick
/// within its 458.3 ms, then the last at its wire end.
const EXPECTED_READS: u32 = 29;

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms_of(ns: u32) -> f64 {
    f64::from(ns) / 1e6
}

/// The `p`-th percentile of `sorted` (the largest for 100); `None` when empty.
fn pct(sorted: &[u32], p: usize) -> Option<u32> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get((sorted.len() * p / 100).min(last)).copied()
}

fn pct_ms(sorted: &[u32], p: usize) -> f64 {
    pct(sorted, p).map_or(f64::NAN, ms_of)
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        f64::NAN
    } else {
        f64_of(part) / f64_of(whole)
    }
}

fn sorted(values: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut v: Vec<u32> = values.collect();
    v.sort_unstable();
    v
}

/// The numbers of a paced [`Row`], its windows pooled.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    /// Measured time, all windows.
    wall_s: f64,
    /// Answers completed within it.
    answers: u64,
    answers_per_s: f64,
    /// Server CPU per answer, every thread (`schedstat`), in microseconds.
    cpu_us: f64,
    /// The same from `/proc/<pid>/stat`'s `utime + stime`.
    stat_cpu_us: f64,
    /// The server's share of one core.
    core: f64,
    /// Kernel workqueue threads' CPU per answer, in microseconds.
    kworker_us: f64,
    /// The same as a share of one core.
    kworker_core: f64,
    /// Machine-wide non-idle CPU less this process's, per answer, in microseconds.
    machine_us: f64,
    /// The same as a share of one core.
    machine_core: f64,
    /// The client's (this process's) share of one core.
    client_core: f64,
    /// A server thread exited during a window (its CPU came from `stat` then).
    thread_exited: bool,
    polls: u64,
    unsent: u64,
    on_schedule: f64,
    in_time: f64,
    correct: u64,
    unanswered: u64,
    corrupt: u64,
    stray: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    late_p99_ms: f64,
    late_max_ms: f64,
    reads_median: f64,
    reads_min: f64,
    reads_max: f64,
    reads_mean: f64,
    gap_p99_ms: f64,
    gap_max_ms: f64,
}

impl Row {
    pub(crate) fn summary(&self) -> Summary {
        let w = &self.windows;
        let sum = |f: &dyn Fn(&crate::paced::Window) -> u64| w.iter().map(f).sum::<u64>();
        let span =
            |f: &dyn Fn(&crate::paced::Window) -> Duration| w.iter().map(f).sum::<Duration>();
        let wall = span(&|x| x.wall).as_secs_f64();
        let answers = sum(&|x| x.answers);
        let per_answer = |d: Duration| us(d) / f64_of(answers.max(1));
        let server = span(&|x| x.server.threads);
        let machine_less_client =
            span(&|x| x.machine).as_secs_f64() - span(&|x| x.client).as_secs_f64();
        let latencies = sorted(w.iter().flat_map(|x| x.latencies.iter().copied()));
        let lateness = sorted(w.iter().flat_map(|x| x.lateness.iter().copied()));
        let reads = sorted(w.iter().flat_map(|x| x.reads.iter().copied()));
        let gaps = sorted(w.iter().flat_map(|x| x.max_gaps.iter().copied()));
        let polls = sum(&|x| x.polls);
        let read = |p| pct(&reads, p).map_or(f64::NAN, f64::from);
        Summary {
            wall_s: wall,
            answers,
            answers_per_s: f64_of(answers) / wall,
            cpu_us: per_answer(server),
            stat_cpu_us: per_answer(span(&|x| x.server.stat)),
            core: server.as_secs_f64() / wall,
            kworker_us: per_answer(span(&|x| x.kworkers)),
            kworker_core: span(&|x| x.kworkers).as_secs_f64() / wall,
            machine_us: machine_less_client * 1e6 / f64_of(answers.max(1)),
            machine_core: machine_less_client / wall,
            client_core: span(&|x| x.client).as_secs_f64() / wall,
            thread_exited: w.iter().any(|x| x.server.thread_exited),
            polls,
            unsent: sum(&|x| x.unsent),
            on_schedule: share(sum(&|x| x.on_schedule), polls),
            in_time: share(sum(&|x| x.in_time), polls),
            correct: sum(&|x| x.correct),
            unanswered: sum(&|x| x.unanswered),
            corrupt: sum(&|x| x.corrupt),
            stray: sum(&|x| x.stray),
            p50_ms: pct_ms(&latencies, 50),
            p99_ms: pct_ms(&latencies, 99),
            max_ms: pct_ms(&latencies, 100),
            late_p99_ms: pct_ms(&lateness, 99),
            late_max_ms: pct_ms(&lateness, 100),
            reads_median: read(50),
            reads_min: read(0),
            reads_max: read(100),
            reads_mean: f64_of(reads.iter().map(|&r| u64::from(r)).sum()) / f64_of_len(reads.len()),
            gap_p99_ms: pct_ms(&gaps, 99),
            gap_max_ms: pct_ms(&gaps, 100),
        }
    }
}

fn f64_of_len(n: usize) -> f64 {
    f64_of(u64::try_from(n).unwrap_or(u64::MAX))
}

/// The quiet port's numbers.
struct QuietSummary {
    polls: usize,
    reads_median: f64,
    reads_min: f64,
    reads_max: f64,
    gap_min_ms: f64,
    gap_p50_ms: f64,
    gap_p90_ms: f64,
    gap_max_ms: f64,
    /// Gaps longer than one chunk and a millisecond: a chunk tick missed.
    gaps_over_chunk: usize,
    first_ms: f64,
    last_ms: f64,
}

impl Quiet {
    fn summary(&self) -> QuietSummary {
        let reads = sorted(self.reads.iter().copied());
        let gaps = sorted(self.gaps.iter().copied());
        let read = |p| pct(&reads, p).map_or(f64::NAN, f64::from);
        let over = CHUNK + Duration::from_millis(1);
        QuietSummary {
            polls: self.reads.len(),
            reads_median: read(50),
            reads_min: read(0),
            reads_max: read(100),
            gap_min_ms: pct_ms(&gaps, 0),
            gap_p50_ms: pct_ms(&gaps, 50),
            gap_p90_ms: pct_ms(&gaps, 90),
            gap_max_ms: pct_ms(&gaps, 100),
            gaps_over_chunk: gaps
                .iter()
                .filter(|&&g| Duration::from_nanos(u64::from(g)) > over)
                .count(),
            first_ms: pct_ms(&sorted(self.first.iter().copied()), 50),
            last_ms: pct_ms(&sorted(self.last.iter().copied()), 50),
        }
    }
}

/// Why the big fleet has the ports it has, in a sentence.
pub(crate) fn why(c: &BigCount) -> String {
    let show = |v: Option<usize>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let (max, reserve, nr) = (show(c.pty_max), show(c.pty_reserve), show(c.pty_nr));
    let Some((asked, refused)) = c.refusals.first() else {
        return if c.used == BIG_FLEET {
            let mut s = format!(
                "{BIG_FLEET} as asked (kernel.pty.max {max}, kernel.pty.reserve {reserve}, \
                 {nr} ptys in use before)"
            );
            if let (Some(max), Some(reserve), Some(nr)) = (c.pty_max, c.pty_reserve, c.pty_nr)
                && c.used + nr >= max.saturating_sub(reserve)
            {
                let _ = write!(
                    s,
                    "; more than max - reserve = {}, so this /dev/pts may use the reserve: it \
                     is a devpts instance mounted in the initial mount namespace",
                    max.saturating_sub(reserve)
                );
            }
            s
        } else {
            format!(
                "kernel.pty.max {max} less {PTY_HEADROOM} left to the rest of the machine \
                 ({nr} ptys in use before)"
            )
        };
    };
    let mut s = format!(
        "{asked} asked, refused after {} ({})",
        refused.opened, refused.error
    );
    if let (Some(max), Some(reserve), Some(nr)) = (c.pty_max, c.pty_reserve, c.pty_nr) {
        let limit = max.saturating_sub(reserve);
        // The kernel refuses the pty that would make the machine's count reach the limit.
        if (refused.opened + nr + 1).abs_diff(limit) <= PTY_HEADROOM {
            let _ = write!(
                s,
                "; that is kernel.pty.max {max} - kernel.pty.reserve {reserve} = {limit} \
                 ptys machine-wide ({nr} in use before), all a devpts instance mounted \
                 outside the initial mount namespace may have, so this /dev/pts is such one"
            );
        }
    }
    for (asked, refused) in &c.refusals[1..] {
        let _ = write!(
            s,
            "; then {asked} refused after {} ({})",
            refused.opened, refused.error
        );
    }
    let _ = write!(
        s,
        "; used {} ({PTY_HEADROOM} fewer than the last refusal allowed, left to the rest of \
         the machine)",
        c.used
    );
    s
}

fn row_line(out: &mut String, label: &str, row: &Row, s: &Summary) {
    let _ = writeln!(
        out,
        "{:<8} {:>5} {:>4.1}s {:>7.1} {:>10.2} {:>5.1}% {:>9.2} {:>10.2} {:>8.2}% {:>7.2}% {:>7.1} {:>7.1} {:>7.1} {:>13} {:>7.1} {:>7} {:>5.0}%",
        label,
        row.ports,
        row.period.as_secs_f64(),
        s.answers_per_s,
        s.cpu_us,
        s.core * 100.0,
        s.kworker_us,
        s.machine_us,
        s.on_schedule * 100.0,
        s.in_time * 100.0,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        format!(
            "{:.0} [{:.0}-{:.0}]",
            s.reads_median, s.reads_min, s.reads_max
        ),
        s.gap_max_ms,
        s.corrupt + s.stray,
        s.client_core * 100.0,
    );
}

/// One row's per-answer figures over another's.
fn ratio_line(out: &mut String, label: &str, a: &Summary, b: &Summary) {
    let _ = writeln!(
        out,
        "{:<8} {:>5} {:>5} {:>7} {:>10.2} {:>6} {:>9.2} {:>10.2}",
        label,
        "",
        "",
        "",
        a.cpu_us / b.cpu_us,
        "",
        a.kworker_us / b.kworker_us,
        a.machine_us / b.machine_us
    );
}

/// The printed section.
pub(crate) fn table(r: &Results) -> String {
    let mut out = String::new();
    header(&mut out, r);
    let paced = r.paced.summary();
    let unpaced = r.unpaced.summary();
    let limit = r.limit.summary();
    let big = r.big.summary();
    row_line(&mut out, "paced", &r.paced, &paced);
    row_line(&mut out, "unpaced", &r.unpaced, &unpaced);
    ratio_line(&mut out, "ratio", &paced, &unpaced);
    row_line(&mut out, "limit", &r.limit, &limit);
    ratio_line(&mut out, "st/limit", &paced, &limit);
    row_line(&mut out, "paced", &r.big, &big);
    quiet_line(&mut out, &r.quiet);
    let _ = writeln!(out, "big fleet: {} ports: {}", r.count.used, why(&r.count));
    let _ = writeln!(
        out,
        "measured: {:.1} s per row at {FLEET} ports ({} windows each, in turns), {:.1} s at {}; \
         bring-up paced {:.1} ms, unpaced {:.1} ms, limit {:.1} ms, big {:.1} ms",
        paced.wall_s,
        r.paced.windows.len(),
        big.wall_s,
        r.big.ports,
        r.paced.bring_up.as_secs_f64() * 1e3,
        r.unpaced.bring_up.as_secs_f64() * 1e3,
        r.limit.bring_up.as_secs_f64() * 1e3,
        r.big.bring_up.as_secs_f64() * 1e3
    );
    for (name, row, s) in [
        ("paced", &r.paced, &paced),
        ("unpaced", &r.unpaced, &unpaced),
        ("limit", &r.limit, &limit),
        ("big", &r.big, &big),
    ] {
        details(&mut out, name, row, s);
    }
    if r.quiet.corrupt > 0 {
        let _ = writeln!(
            out,
            "  WARNING: quiet port: {} replies with unexpected bytes",
            r.quiet.corrupt
        );
    }
    let _ = writeln!(
        out,
        "\npaced targets (issue 17; informative, never asserted):"
    );
    for t in targets(r) {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if t.met { "met" } else { "MISSED" },
            t.name,
            t.detail
        );
    }
    let _ = writeln!(
        out,
        "paced floor (informative: the limit responder on the same paced line, {} writes per \
         reply on its own timers):",
        crate::paced::pieces().len()
    );
    for f in floor(r) {
        let _ = writeln!(out, "  {}: {}", f.name, f.detail);
    }
    out
}

/// What the section measures, and the columns' heads.
fn header(out: &mut String, r: &Results) {
    let wire = wire_time().as_secs_f64() * 1e3;
    let _ = writeln!(
        out,
        "\npty_fleet, paced lines: QPIGS answered with {} bytes on a {}-baud 8N1 line ({wire:.1} ms \
         on the wire); open loop, each port polled once per period, polls staggered evenly{}",
        crate::REPLY.len(),
        crate::paced::BAUD,
        if r.quick { "; quick run" } else { "" }
    );
    let _ = writeln!(
        out,
        "  on sched: poll written <= {} ms after its planned time; in time: answer whole and \
         correct <= {:.1} ms after its poll was written (wire + {} ms chunk + {} ms)",
        ON_SCHEDULE.as_millis(),
        in_time_bound().as_secs_f64() * 1e3,
        CHUNK.as_millis(),
        SLACK.as_millis()
    );
    let _ = writeln!(
        out,
        "  ratio: paced / unpaced; limit: the bench's limit responder (one thread, epoll over raw \
         ptys) paced the same way, each reply in the adapter's pieces, every due piece written \
         back to back after its epoll_wait, whose timeout is the soonest piece (to the ms); \
         st/limit: paced / limit"
    );
    let _ = writeln!(
        out,
        "  cpu: the server's threads (schedstat) over the measured time / answers in it; kw: \
         the kernel's kworker threads (where pty writes are delivered); m-c: machine-wide \
         non-idle (/proc/stat) less this process's"
    );
    let _ = writeln!(
        out,
        "{:<8} {:>5} {:>5} {:>7} {:>10} {:>6} {:>9} {:>10} {:>9} {:>8} {:>7} {:>7} {:>7} {:>13} {:>7} {:>7} {:>6}",
        "row",
        "ports",
        "every",
        "ans/s",
        "cpu us/ans",
        "core",
        "kw us/ans",
        "m-c us/ans",
        "on sched",
        "in time",
        "p50 ms",
        "p99 ms",
        "max ms",
        "reads/reply",
        "gap ms",
        "corrupt",
        "client"
    );
}

fn quiet_line(out: &mut String, quiet: &Quiet) {
    let q = quiet.summary();
    let _ = writeln!(
        out,
        "\none quiet port, {} polls: {:.0} reads per reply [{:.0}-{:.0}] ({EXPECTED_READS} +- 1 \
         with 16 ms chunks); gaps between reads min {:.1} p50 {:.1} p90 {:.1} max {:.1} ms, {} \
         over {} ms; first read {:.1} ms, last {:.1} ms after the poll (medians)",
        q.polls,
        q.reads_median,
        q.reads_min,
        q.reads_max,
        q.gap_min_ms,
        q.gap_p50_ms,
        q.gap_p90_ms,
        q.gap_max_ms,
        q.gaps_over_chunk,
        CHUNK.as_millis() + 1,
        q.first_ms,
        q.last_ms
    );
}

/// A row's figures that do not fit its line, and its warnings.
fn details(out: &mut String, name: &str, row: &Row, s: &Summary) {
    let _ = writeln!(
        out,
        "  {name:<7} {} ports: {} polls, {} answered whole, lateness p99 {:.2} max {:.2} ms; \
         reads/reply mean {:.1}; largest gap in a reply p99 {:.1} ms; utime+stime {:.2} \
         us/ans; kworkers {:.1}%, m-c {:.1}% of a core, client {:.1}%",
        row.ports,
        s.polls,
        s.correct,
        s.late_p99_ms,
        s.late_max_ms,
        s.reads_mean,
        s.gap_p99_ms,
        s.stat_cpu_us,
        s.kworker_core * 100.0,
        s.machine_core * 100.0,
        s.client_core * 100.0
    );
    let problems = [
        (s.unsent, "polls the pty would not take"),
        (s.unanswered, "polls never answered"),
        (s.corrupt, "replies with unexpected bytes"),
        (s.stray, "bytes with no poll waiting"),
    ];
    for (count, what) in problems {
        if count > 0 {
            let _ = writeln!(out, "  WARNING: {name}: {count} {what}");
        }
    }
    if s.thread_exited {
        let _ = writeln!(
            out,
            "  note: {name}: a server thread exited during a window; its CPU is utime+stime"
        );
    }
}

/// The paced section's targets, evaluated.
pub(crate) fn targets(r: &Results) -> Vec<Target> {
    let paced = r.paced.summary();
    let unpaced = r.unpaced.summary();
    let big = r.big.summary();
    let q = r.quiet.summary();
    let percent = |v: f64| format!("{:.2} %", v * 100.0);
    let cpu_ratio = paced.cpu_us / unpaced.cpu_us;
    let corrupt =
        paced.corrupt + paced.stray + unpaced.corrupt + unpaced.stray + big.corrupt + big.stray;
    let corrupt = corrupt + r.quiet.corrupt;
    vec![
        Target {
            name: format!("paced / unpaced server CPU per answer at {FLEET} ports <= 2"),
            met: cpu_ratio <= 2.0,
            detail: format!(
                "{cpu_ratio:.2} ({:.2} / {:.2} us; with kworkers {:.2}, machine less client {:.2})",
                paced.cpu_us,
                unpaced.cpu_us,
                (paced.cpu_us + paced.kworker_us) / (unpaced.cpu_us + unpaced.kworker_us),
                paced.machine_us / unpaced.machine_us
            ),
            value: cpu_ratio,
        },
        Target {
            name: format!("paced polls on schedule at {FLEET} ports >= 99 %"),
            met: paced.on_schedule >= 0.99,
            detail: percent(paced.on_schedule),
            value: paced.on_schedule,
        },
        Target {
            name: format!("paced answers in time at {FLEET} ports >= 99 %"),
            met: paced.in_time >= 0.99,
            detail: percent(paced.in_time),
            value: paced.in_time,
        },
        Target {
            name: format!(
                "one quiet port: reads per reply {EXPECTED_READS} +- 1 (16 ms chunks; median)"
            ),
            met: q.reads_median.is_finite() && (q.reads_median - 29.0).abs() <= 1.0,
            detail: format!(
                "{:.0} [{:.0}-{:.0}]",
                q.reads_median, q.reads_min, q.reads_max
            ),
            value: q.reads_median,
        },
        Target {
            name: format!(
                "{} paced ports every {:.0} s: server < 1 core",
                r.big.ports,
                r.big.period.as_secs_f64()
            ),
            met: big.core < 1.0,
            detail: format!(
                "{:.1} % of a core, {:.2} us/answer",
                big.core * 100.0,
                big.cpu_us
            ),
            value: big.core,
        },
        Target {
            name: format!("{} paced ports: polls on schedule >= 99 %", r.big.ports),
            met: big.on_schedule >= 0.99,
            detail: percent(big.on_schedule),
            value: big.on_schedule,
        },
        Target {
            name: format!("{} paced ports: answers in time >= 99 %", r.big.ports),
            met: big.in_time >= 0.99,
            detail: percent(big.in_time),
            value: big.in_time,
        },
        Target {
            name: "no corrupt answer in the paced section".into(),
            met: corrupt == 0,
            detail: format!("{corrupt} corrupt replies or stray bytes"),
            value: f64_of(corrupt),
        },
    ]
}

/// An informative figure of the paced floor: a ratio of server CPU per answer with the limit
/// paced, never a target.
pub(crate) struct Floor {
    pub(crate) name: String,
    /// Its key in the JSON file.
    pub(crate) key: &'static str,
    /// Server CPU per answer, one row's over the other's.
    pub(crate) value: f64,
    /// The same with each row's kworker time per answer added.
    pub(crate) with_kworkers: f64,
    pub(crate) detail: String,
}

/// The paced floor's figures: how far serialtwin paced is from the limit paced, and what the
/// limit paced (the kernel's part, nearly) costs against serialtwin unpaced.
pub(crate) fn floor(r: &Results) -> Vec<Floor> {
    let paced = r.paced.summary();
    let unpaced = r.unpaced.summary();
    let limit = r.limit.summary();
    let ratio = |a: &Summary, b: &Summary| {
        (
            a.cpu_us / b.cpu_us,
            (a.cpu_us + a.kworker_us) / (b.cpu_us + b.kworker_us),
        )
    };
    let figure = |name: String, key, a: &Summary, b: &Summary, what: &str| {
        let (value, with_kworkers) = ratio(a, b);
        Floor {
            name,
            key,
            value,
            with_kworkers,
            detail: format!(
                "{value:.2} ({:.2} / {:.2} us; with kworkers {with_kworkers:.2}: {:.2} / {:.2} \
                 us){what}",
                a.cpu_us,
                b.cpu_us,
                a.cpu_us + a.kworker_us,
                b.cpu_us + b.kworker_us
            ),
        }
    };
    vec![
        figure(
            format!("serialtwin paced / limit paced server CPU per answer at {FLEET} ports"),
            "serialtwin_paced_over_limit_paced",
            &paced,
            &limit,
            "",
        ),
        figure(
            format!("limit paced / serialtwin unpaced server CPU per answer at {FLEET} ports"),
            "limit_paced_over_serialtwin_unpaced",
            &limit,
            &unpaced,
            "; what pacing costs with nothing but the kernel's writes around it",
        ),
        Floor {
            name: "limit paced replies".into(),
            key: "limit_paced_reads_per_reply_median",
            value: limit.reads_median,
            with_kworkers: f64::NAN,
            detail: format!(
                "{:.0} reads per reply [{:.0}-{:.0}] ({} pieces written), {} of {} \
                 polls answered whole, {} corrupt or stray, {:.2} % in time, {:.2} % on schedule",
                limit.reads_median,
                limit.reads_min,
                limit.reads_max,
                crate::paced::pieces().len(),
                limit.correct,
                limit.polls,
                limit.corrupt + limit.stray,
                limit.in_time * 100.0,
                limit.on_schedule * 100.0
            ),
        },
    ]
}

fn num(v: f64) -> J {
    J::Num(v)
}

fn count(v: u64) -> J {
    J::Num(f64_of(v))
}

fn row_json(row: &Row) -> J {
    let s = row.summary();
    J::Obj(vec![
        ("server", J::Str(row.server.into())),
        ("pacing", J::Str(row.name.into())),
        ("ports", num(f64_of_len(row.ports))),
        ("period_s", num(row.period.as_secs_f64())),
        ("windows", num(f64_of_len(row.windows.len()))),
        ("measured_s", num(s.wall_s)),
        ("bring_up_ms", num(row.bring_up.as_secs_f64() * 1e3)),
        ("answers", count(s.answers)),
        ("answers_per_s", num(s.answers_per_s)),
        ("server_cpu_us_per_answer", num(s.cpu_us)),
        ("server_stat_cpu_us_per_answer", num(s.stat_cpu_us)),
        ("server_core_share", num(s.core)),
        ("server_thread_exited", J::Bool(s.thread_exited)),
        ("kworker_us_per_answer", num(s.kworker_us)),
        ("kworker_core_share", num(s.kworker_core)),
        ("machine_less_client_us_per_answer", num(s.machine_us)),
        ("machine_less_client_core_share", num(s.machine_core)),
        ("client_core_share", num(s.client_core)),
        ("polls", count(s.polls)),
        ("polls_unsent", count(s.unsent)),
        ("on_schedule_share", num(s.on_schedule)),
        ("in_time_share", num(s.in_time)),
        ("answered_whole", count(s.correct)),
        ("unanswered", count(s.unanswered)),
        ("corrupt_replies", count(s.corrupt)),
        ("stray_bytes", count(s.stray)),
        ("latency_p50_ms", num(s.p50_ms)),
        ("latency_p99_ms", num(s.p99_ms)),
        ("latency_max_ms", num(s.max_ms)),
        ("lateness_p99_ms", num(s.late_p99_ms)),
        ("lateness_max_ms", num(s.late_max_ms)),
        ("reads_per_reply_median", num(s.reads_median)),
        ("reads_per_reply_min", num(s.reads_min)),
        ("reads_per_reply_max", num(s.reads_max)),
        ("reads_per_reply_mean", num(s.reads_mean)),
        ("largest_gap_in_reply_p99_ms", num(s.gap_p99_ms)),
        ("largest_gap_in_reply_max_ms", num(s.gap_max_ms)),
    ])
}

fn nums(values: &[u32], scale: f64) -> J {
    J::Arr(values.iter().map(|&v| num(f64::from(v) / scale)).collect())
}

/// The paced section's part of the JSON file.
pub(crate) fn json(r: &Results) -> J {
    let paced = r.paced.summary();
    let unpaced = r.unpaced.summary();
    let q = r.quiet.summary();
    let c = &r.count;
    let opt = |v: Option<usize>| v.map_or(num(f64::NAN), |v| num(f64_of_len(v)));
    J::Obj(vec![
        ("baud", num(f64::from(crate::paced::BAUD))),
        ("reply_bytes", num(f64_of_len(crate::REPLY.len()))),
        ("wire_ms", num(wire_time().as_secs_f64() * 1e3)),
        ("chunk_ms", num(CHUNK.as_secs_f64() * 1e3)),
        ("on_schedule_bound_ms", num(ON_SCHEDULE.as_secs_f64() * 1e3)),
        ("in_time_bound_ms", num(in_time_bound().as_secs_f64() * 1e3)),
        ("paced", row_json(&r.paced)),
        ("unpaced", row_json(&r.unpaced)),
        ("limit_paced", row_json(&r.limit)),
        (
            "ratio",
            J::Obj(vec![
                ("server_cpu_per_answer", num(paced.cpu_us / unpaced.cpu_us)),
                (
                    "server_stat_cpu_per_answer",
                    num(paced.stat_cpu_us / unpaced.stat_cpu_us),
                ),
                (
                    "kworker_per_answer",
                    num(paced.kworker_us / unpaced.kworker_us),
                ),
                (
                    "server_and_kworker_per_answer",
                    num((paced.cpu_us + paced.kworker_us) / (unpaced.cpu_us + unpaced.kworker_us)),
                ),
                (
                    "machine_less_client_per_answer",
                    num(paced.machine_us / unpaced.machine_us),
                ),
            ]),
        ),
        (
            "floor",
            J::Arr(
                floor(r)
                    .into_iter()
                    .map(|f| {
                        J::Obj(vec![
                            ("name", J::Str(f.name)),
                            ("key", J::Str(f.key.into())),
                            ("value", J::Num(f.value)),
                            ("with_kworkers", J::Num(f.with_kworkers)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("big", row_json(&r.big)),
        (
            "big_ports",
            J::Obj(vec![
                ("asked", num(f64_of_len(c.asked))),
                ("used", num(f64_of_len(c.used))),
                ("why", J::Str(why(c))),
                ("pty_max", opt(c.pty_max)),
                ("pty_reserve", opt(c.pty_reserve)),
                ("pty_nr_before", opt(c.pty_nr)),
            ]),
        ),
        (
            "quiet_port",
            J::Obj(vec![
                ("polls", num(f64_of_len(q.polls))),
                ("reads_per_reply", nums(&r.quiet.reads, 1.0)),
                ("reads_per_reply_median", num(q.reads_median)),
                ("gap_min_ms", num(q.gap_min_ms)),
                ("gap_p50_ms", num(q.gap_p50_ms)),
                ("gap_p90_ms", num(q.gap_p90_ms)),
                ("gap_max_ms", num(q.gap_max_ms)),
                ("gaps_over_chunk", num(f64_of_len(q.gaps_over_chunk))),
                ("first_read_ms_median", num(q.first_ms)),
                ("last_read_ms_median", num(q.last_ms)),
                ("corrupt_replies", count(r.quiet.corrupt)),
            ]),
        ),
        (
            "targets",
            J::Arr(
                targets(r)
                    .into_iter()
                    .map(|t| {
                        J::Obj(vec![
                            ("name", J::Str(t.name)),
                            ("met", J::Bool(t.met)),
                            ("value", J::Num(t.value)),
                        ])
                    })
                    .collect(),
            ),
        ),
    ])
}
