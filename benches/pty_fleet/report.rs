//! Turning windows into numbers: the printed table and the JSON file.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::Window;

/// `u64` → `f64` for reporting (exact below 2^53, far beyond any count here).
#[expect(
    clippy::cast_precision_loss,
    reason = "counts and nanoseconds far below 2^53"
)]
pub(crate) fn f64_of(v: u64) -> f64 {
    v as f64
}

pub(crate) fn f64_of_usize(v: usize) -> f64 {
    f64_of(u64::try_from(v).unwrap_or(u64::MAX))
}

/// Everything measured for one server at one port count.
#[derive(Debug, Default)]
pub(crate) struct ServerRun {
    /// Number of ports.
    pub(crate) ports: usize,
    /// Time the server took to open the ports.
    pub(crate) bring_up: Duration,
    /// Time the server took to close them.
    pub(crate) teardown: Duration,
    /// Resident memory before opening the ports.
    pub(crate) rss_before: u64,
    /// Resident memory after the ports were opened and warmed up.
    pub(crate) rss_after: u64,
    /// The measurement windows.
    pub(crate) windows: Vec<Window>,
    /// Replies with unexpected bytes.
    pub(crate) corrupt: u64,
    /// Device → client bytes per second through one port (measured at one port only).
    pub(crate) down_bps: Option<f64>,
    /// Client → device bytes per second through one port (measured at one port only).
    pub(crate) up_bps: Option<f64>,
}

/// The numbers of a [`ServerRun`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    pub(crate) rate_median: f64,
    pub(crate) rate_min: f64,
    pub(crate) rate_max: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) cpu_us_per_rt: f64,
    pub(crate) rss_per_port: f64,
    pub(crate) starved: usize,
    pub(crate) min_port_rate: f64,
    pub(crate) client_busy: f64,
}

impl ServerRun {
    /// Median rate with min–max, pooled latency percentiles, CPU and memory per unit.
    pub(crate) fn summary(&self) -> Summary {
        let mut rates: Vec<f64> = self
            .windows
            .iter()
            .map(|w| f64_of(w.round_trips) / w.elapsed.as_secs_f64())
            .collect();
        rates.sort_by(f64::total_cmp);
        let median = match rates.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => rates[n / 2],
            n => f64::midpoint(rates[n / 2 - 1], rates[n / 2]),
        };
        let mut latencies: Vec<u32> = self
            .windows
            .iter()
            .flat_map(|w| w.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let pct = |p: usize| {
            if latencies.is_empty() {
                f64::NAN
            } else {
                f64::from(latencies[(latencies.len() * p / 100).min(latencies.len() - 1)]) / 1e3
            }
        };
        let trips: u64 = self.windows.iter().map(|w| w.round_trips).sum();
        let cpu: u64 = self.windows.iter().map(|w| w.server_cpu_ns).sum();
        let client: u64 = self.windows.iter().map(|w| w.client_cpu_ns).sum();
        let wall: f64 = self.windows.iter().map(|w| w.elapsed.as_secs_f64()).sum();
        Summary {
            rate_median: median,
            rate_min: rates.first().copied().unwrap_or(f64::NAN),
            rate_max: rates.last().copied().unwrap_or(f64::NAN),
            p50_us: pct(50),
            p99_us: pct(99),
            cpu_us_per_rt: f64_of(cpu) / 1e3 / f64_of(trips.max(1)),
            rss_per_port: (f64_of(self.rss_after) - f64_of(self.rss_before))
                / f64_of_usize(self.ports.max(1)),
            starved: self.windows.iter().map(|w| w.starved).max().unwrap_or(0),
            min_port_rate: self
                .windows
                .iter()
                .map(|w| f64_of(w.min_port) / w.elapsed.as_secs_f64())
                .fold(f64::INFINITY, f64::min),
            client_busy: f64_of(client) / 1e9 / wall,
        }
    }
}

/// One port count: both servers.
#[derive(Debug, Default)]
pub(crate) struct Point {
    pub(crate) ports: usize,
    pub(crate) limit: ServerRun,
    pub(crate) serialtwin: ServerRun,
}

/// How the run was configured.
#[derive(Debug)]
pub(crate) struct RunInfo {
    /// The server measured against the limit (`serialtwin`, or a yardstick variant).
    pub(crate) against: &'static str,
    pub(crate) runtime: &'static str,
    pub(crate) reps: usize,
    pub(crate) window: Duration,
    pub(crate) warmup: Duration,
    pub(crate) quick: bool,
    pub(crate) cpus: usize,
    pub(crate) kernel: String,
    pub(crate) commit: String,
    pub(crate) total: Duration,
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b
}

/// The printed table.
pub(crate) fn table(info: &RunInfo, points: &[Point]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\npty_fleet: raw epoll responder (limit) vs {} ({} runtime); {} x {:.1} s windows per point, \
         median [min-max]; {} CPUs; commit {}",
        info.against,
        info.runtime,
        info.reps,
        info.window.as_secs_f64(),
        info.cpus,
        info.commit
    );
    let _ = writeln!(
        out,
        "{:>5}  {:<10} {:>9} {:>19} {:>8} {:>8} {:>9} {:>10} {:>7} {:>11} {:>6}",
        "ports",
        "server",
        "rt/s",
        "[min-max]",
        "p50 us",
        "p99 us",
        "cpu us/rt",
        "RSS B/port",
        "starved",
        "min port/s",
        "client"
    );
    for p in points {
        let l = p.limit.summary();
        let s = p.serialtwin.summary();
        for (name, x) in [("limit", &l), (info.against, &s)] {
            let _ = writeln!(
                out,
                "{:>5}  {:<10} {:>9.0} {:>19} {:>8.1} {:>8.1} {:>9.2} {:>10.0} {:>7} {:>11.0} {:>5.0}%",
                p.ports,
                name,
                x.rate_median,
                format!("[{:.0}-{:.0}]", x.rate_min, x.rate_max),
                x.p50_us,
                x.p99_us,
                x.cpu_us_per_rt,
                x.rss_per_port,
                x.starved,
                x.min_port_rate,
                x.client_busy * 100.0
            );
        }
        let _ = writeln!(
            out,
            "{:>5}  {:<10} {:>9.2} {:>19} {:>8.2} {:>8.2} {:>9.2} {:>10.2}",
            p.ports,
            "ratio",
            ratio(s.rate_median, l.rate_median),
            "",
            ratio(s.p50_us, l.p50_us),
            ratio(s.p99_us, l.p99_us),
            ratio(s.cpu_us_per_rt, l.cpu_us_per_rt),
            ratio(s.rss_per_port, l.rss_per_port),
        );
    }
    footer(&mut out, info, points);
    out
}

/// Bring-up, throughput, warnings and targets, below the table.
fn footer(out: &mut String, info: &RunInfo, points: &[Point]) {
    if let Some(p) = points.iter().max_by_key(|p| p.ports) {
        let _ = writeln!(
            out,
            "\n{} ports: bring-up limit {:.1} ms, {} {:.1} ms; teardown limit {:.1} ms, {} {:.1} ms",
            p.ports,
            ms(p.limit.bring_up),
            info.against,
            ms(p.serialtwin.bring_up),
            ms(p.limit.teardown),
            info.against,
            ms(p.serialtwin.teardown)
        );
    }
    if let Some(p) = points.iter().find(|p| p.limit.down_bps.is_some()) {
        let mb = |v: Option<f64>| v.unwrap_or(f64::NAN) / 1e6;
        let _ = writeln!(
            out,
            "one port, device->client (16 requests pipelined): limit {:.2} MB/s, {} {:.2} MB/s (ratio {:.2})",
            mb(p.limit.down_bps),
            info.against,
            mb(p.serialtwin.down_bps),
            ratio(mb(p.serialtwin.down_bps), mb(p.limit.down_bps))
        );
        let _ = writeln!(
            out,
            "one port, client->device (64-byte lines streamed): limit {:.2} MB/s, {} {:.2} MB/s (ratio {:.2})",
            mb(p.limit.up_bps),
            info.against,
            mb(p.serialtwin.up_bps),
            ratio(mb(p.serialtwin.up_bps), mb(p.limit.up_bps))
        );
    }
    let corrupt: u64 = points
        .iter()
        .map(|p| p.limit.corrupt + p.serialtwin.corrupt)
        .sum();
    if corrupt > 0 {
        let _ = writeln!(out, "WARNING: {corrupt} replies had unexpected bytes");
    }
    if matches!(info.against, "serialtwin" | "registry") {
        let _ = writeln!(out, "\ntargets (informative, never asserted):");
    } else {
        let _ = writeln!(
            out,
            "\ntargets (for serialtwin; shown for the {} yardstick):",
            info.against
        );
    }
    for t in targets(points) {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if t.met { "met" } else { "MISSED" },
            t.name,
            t.detail
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One of the benchmark's targets, evaluated.
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) met: bool,
    pub(crate) detail: String,
    pub(crate) value: f64,
}

pub(crate) fn targets(points: &[Point]) -> Vec<Target> {
    let mut out = Vec::new();
    if points.is_empty() {
        // `--paced-only`: the closed loop did not run.
        return out;
    }
    for p in points.iter().filter(|p| p.ports >= 100) {
        let r = ratio(
            p.serialtwin.summary().rate_median,
            p.limit.summary().rate_median,
        );
        out.push(Target {
            name: format!("rt/s at {} ports >= 0.9 x limit", p.ports),
            met: r >= 0.9,
            detail: format!("{r:.2}"),
            value: r,
        });
    }
    if let Some(p) = points
        .iter()
        .filter(|p| p.ports >= 1000)
        .max_by_key(|p| p.ports)
    {
        let r = ratio(p.serialtwin.summary().p99_us, p.limit.summary().p99_us);
        out.push(Target {
            name: format!("p99 at {} ports <= 1.5 x limit", p.ports),
            met: r <= 1.5,
            detail: format!("{r:.2}"),
            value: r,
        });
    }
    if let Some(p) = points.iter().max_by_key(|p| p.ports) {
        let per = p.serialtwin.summary().rss_per_port;
        out.push(Target {
            name: format!("memory per port <= 8 KiB (at {} ports)", p.ports),
            met: per <= 8192.0,
            detail: format!("{per:.0} B (limit {:.0} B)", p.limit.summary().rss_per_port),
            value: per,
        });
        let up = p.serialtwin.bring_up;
        out.push(Target {
            name: format!("{} ports up in < 0.5 s", p.ports),
            met: p.ports < 1000 || up < Duration::from_millis(500),
            detail: format!("{:.1} ms", ms(up)),
            value: up.as_secs_f64(),
        });
    }
    let starved: usize = points.iter().map(|p| p.serialtwin.summary().starved).sum();
    out.push(Target {
        name: "no port starved".into(),
        met: starved == 0,
        detail: format!("{starved} starved"),
        value: f64_of_usize(starved),
    });
    out
}

// ---------------------------------------------------------------------------------------------
// JSON, written by hand: the structure is small and fixed.

/// A JSON value.
pub(crate) enum J {
    Num(f64),
    Str(String),
    Bool(bool),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    pub(crate) fn write(&self, out: &mut String) {
        match self {
            Self::Num(v) if v.is_finite() => {
                let _ = write!(out, "{v}");
            }
            Self::Num(_) => out.push_str("null"),
            Self::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Self::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if u32::from(c) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", u32::from(c));
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Self::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Self::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "\"{k}\":");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn opt(v: Option<f64>) -> J {
    J::Num(v.unwrap_or(f64::NAN))
}

fn server_json(run: &ServerRun) -> J {
    let s = run.summary();
    J::Obj(vec![
        ("round_trips_per_s_median", J::Num(s.rate_median)),
        ("round_trips_per_s_min", J::Num(s.rate_min)),
        ("round_trips_per_s_max", J::Num(s.rate_max)),
        (
            "round_trips_per_s_windows",
            J::Arr(
                run.windows
                    .iter()
                    .map(|w| J::Num(f64_of(w.round_trips) / w.elapsed.as_secs_f64()))
                    .collect(),
            ),
        ),
        ("p50_us", J::Num(s.p50_us)),
        ("p99_us", J::Num(s.p99_us)),
        ("server_cpu_us_per_round_trip", J::Num(s.cpu_us_per_rt)),
        ("rss_bytes_per_port", J::Num(s.rss_per_port)),
        ("rss_before_bytes", J::Num(f64_of(run.rss_before))),
        ("rss_after_bytes", J::Num(f64_of(run.rss_after))),
        ("starved_ports", J::Num(f64_of_usize(s.starved))),
        ("slowest_port_round_trips_per_s", J::Num(s.min_port_rate)),
        ("client_cpu_busy", J::Num(s.client_busy)),
        ("bring_up_ms", J::Num(ms(run.bring_up))),
        ("teardown_ms", J::Num(ms(run.teardown))),
        ("corrupt_replies", J::Num(f64_of(run.corrupt))),
        ("down_bytes_per_s", opt(run.down_bps)),
        ("up_bytes_per_s", opt(run.up_bps)),
    ])
}

/// The JSON document; `paced`: the paced section's part, when it ran.
pub(crate) fn json(
    info: &RunInfo,
    points: &[Point],
    paced: Option<J>,
    modbus: Option<J>,
) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut fields = vec![
        ("bench", J::Str("pty_fleet".into())),
        ("schema", J::Num(1.0)),
        ("unix_time", J::Num(f64_of(now))),
        ("commit", J::Str(info.commit.clone())),
        ("kernel", J::Str(info.kernel.clone())),
        ("cpus", J::Num(f64_of_usize(info.cpus))),
        ("against", J::Str(info.against.into())),
        ("runtime", J::Str(info.runtime.into())),
        ("quick", J::Bool(info.quick)),
        ("repetitions", J::Num(f64_of_usize(info.reps))),
        ("window_s", J::Num(info.window.as_secs_f64())),
        ("warmup_s", J::Num(info.warmup.as_secs_f64())),
        ("total_s", J::Num(info.total.as_secs_f64())),
        (
            "points",
            J::Arr(
                points
                    .iter()
                    .map(|p| {
                        let l = p.limit.summary();
                        let s = p.serialtwin.summary();
                        J::Obj(vec![
                            ("ports", J::Num(f64_of_usize(p.ports))),
                            ("limit", server_json(&p.limit)),
                            ("serialtwin", server_json(&p.serialtwin)),
                            (
                                "ratio",
                                J::Obj(vec![
                                    (
                                        "round_trips_per_s",
                                        J::Num(ratio(s.rate_median, l.rate_median)),
                                    ),
                                    ("p50", J::Num(ratio(s.p50_us, l.p50_us))),
                                    ("p99", J::Num(ratio(s.p99_us, l.p99_us))),
                                    (
                                        "cpu_per_round_trip",
                                        J::Num(ratio(s.cpu_us_per_rt, l.cpu_us_per_rt)),
                                    ),
                                ]),
                            ),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "targets",
            J::Arr(
                targets(points)
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
    ];
    if let Some(paced) = paced {
        fields.push(("paced", paced));
    }
    if let Some(modbus) = modbus {
        fields.push(("modbus", modbus));
    }
    let doc = J::Obj(fields);
    let mut out = String::new();
    doc.write(&mut out);
    out.push('\n');
    out
}
