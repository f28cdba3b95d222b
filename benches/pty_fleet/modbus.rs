//! The Modbus rows (issue 18): a Modbus RTU read of ten holding registers (function 3), in a
//! closed loop, one request outstanding per port.
//!
//! - **Fleet rows**, at 100 and 1,000 ports (100 with `--quick`). serialtwin serves the
//!   registry's `modbus` model, built from a config as `serialtwin run` builds it, on an
//!   unpaced line. The limit answers the same read, cutting requests by their fixed length:
//!   what a C responder would do. The windows alternate as in the closed loop, and the target is
//!   the closed loop's: at least 0.9 of the limit's round trips.
//! - **pymodbus row**, one pty pair each. pymodbus 3.16.1's own serial server
//!   (`StartSerialServer` with a `SimDevice`, run from `pymodbus_server.py` in the tests'
//!   pinned venv) opens the slave of a pair the bench opened, and the client talks through the
//!   master. serialtwin serves one port. The figures are requests per second and CPU per
//!   request: each server process's, from `/proc`.
//!
//! Requests arrive whole (one 8-byte write each), so the Modbus framer cuts them by length on
//! the lane. A request split across reads leaves a partial frame. The framer then needs to time
//! the silence after it, so the lane hands the port back to its own task until the frame is
//! complete or dropped.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};

use serialtwin::{Latency, LineConfig};

use crate::child::{ServerChild, process_cpu_ns};
use crate::client::Client;
use crate::report::{J, Point, ServerRun, f64_of_usize};
use crate::{Runtime, python};

/// How many holding registers the request reads.
pub(crate) const REGISTERS: u16 = 10;
/// Unit 1, read holding registers (3), address 0, ten registers, CRC-16/MODBUS low byte first.
pub(crate) const REQUEST: &[u8] = &[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
/// Unit 1, function 3, 20 bytes: registers 0–9 holding 1 to 10, then the CRC.
pub(crate) const REPLY: &[u8] = &[
    0x01, 0x03, 0x14, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x04, 0x00, 0x05, 0x00, 0x06, 0x00,
    0x07, 0x00, 0x08, 0x00, 0x09, 0x00, 0x0A, 0x8F, 0x16,
];

/// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), to check the constants above at compile
/// time: the bench has no `crc` crate of its own.
const fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xFFFF_u16;
    let mut i = 0;
    while i < bytes.len() {
        crc ^= bytes[i] as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
            bit += 1;
        }
        i += 1;
    }
    crc
}

const fn crc_ends(frame: &[u8]) -> bool {
    let n = frame.len();
    let crc = crc16(frame.split_at(n - 2).0).to_le_bytes();
    crc[0] == frame[n - 2] && crc[1] == frame[n - 1]
}

const _: () = assert!(crc_ends(REQUEST) && crc_ends(REPLY));
const _: () = assert!(REPLY.len() == 5 + 2 * REGISTERS as usize);

/// The unpaced line the fleet rows serve on: the Modbus model's own line (its framer, its
/// partial-frame timeout), with no pacing, no response latency and whatever baud the client
/// chooses.
pub(crate) fn unpaced_line() -> LineConfig {
    LineConfig {
        baud: None,
        pace: false,
        latency: Latency::None,
        ..serialtwin::devices::modbus::slave::standard_line()
    }
}

/// The limit's framer: add `new` to `carry`, cut every whole [`REQUEST`] off its front
/// (skipping a byte at a time past anything else, as a length framer resynchronises), and say
/// how many there were. What is left is a partial request.
pub(crate) fn cut_requests(carry: &mut Vec<u8>, new: &[u8]) -> usize {
    carry.extend_from_slice(new);
    let mut count = 0;
    let mut at = 0;
    while carry.len() - at >= REQUEST.len() {
        if &carry[at..at + REQUEST.len()] == REQUEST {
            count += 1;
            at += REQUEST.len();
        } else {
            at += 1;
        }
    }
    carry.drain(..at);
    count
}

/// What the Modbus rows measured.
pub(crate) struct Results {
    /// The fleet rows: the limit and serialtwin at each port count.
    pub(crate) points: Vec<Point>,
    /// pymodbus's serial server and serialtwin on one port each, or why pymodbus could not run.
    pub(crate) pymodbus: Result<Point, String>,
}

/// Run the Modbus rows.
pub(crate) fn run(
    quick: bool,
    runtime: Runtime,
    windows: &crate::Windows,
) -> std::io::Result<Results> {
    let counts: &[usize] = if quick { &[100] } else { &[100, 1000] };
    let mut points = Vec::new();
    for &n in counts {
        eprintln!("pty_fleet: modbus, {n} ports ...");
        let mut servers = [
            ServerChild::spawn("limit", runtime)?,
            ServerChild::spawn("serialtwin", runtime)?,
        ];
        let mut clients = Vec::new();
        let mut runs = [ServerRun::default(), ServerRun::default()];
        for (server, run) in servers.iter_mut().zip(&mut runs) {
            run.ports = n;
            run.rss_before = server.rss();
            let (up, paths) = server.open_modbus(n)?;
            run.bring_up = up;
            clients.push(Client::open_for(&paths, REQUEST, REPLY)?);
        }
        let mut cpu: Vec<Box<dyn FnMut() -> u64>> = Vec::new();
        for server in &servers {
            let pid = server.pid();
            cpu.push(Box::new(move || process_cpu_ns(pid)));
        }
        crate::alternate(windows, &mut clients, &mut cpu, &mut runs)?;
        for (i, run) in runs.iter_mut().enumerate() {
            run.rss_after = servers[i].rss();
            run.teardown = servers[i].close()?;
            run.corrupt = clients[i].corrupt;
        }
        drop(clients);
        for server in servers {
            server.finish();
        }
        let [limit, serialtwin] = runs;
        points.push(Point {
            ports: n,
            limit,
            serialtwin,
        });
    }
    eprintln!("pty_fleet: modbus, pymodbus's serial server ...");
    let pymodbus = versus_pymodbus(runtime, windows)?;
    Ok(Results { points, pymodbus })
}

/// pymodbus's own serial server in a child process, killed when dropped (also when the bench
/// fails half-way).
struct Pymodbus(Child);

impl Drop for Pymodbus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pymodbus's serial server against serialtwin, one port each (the `limit` slot of the point
/// holds pymodbus). `Ok(Err(_))`: pymodbus could not be started here, and why.
fn versus_pymodbus(
    runtime: Runtime,
    windows: &crate::Windows,
) -> std::io::Result<Result<Point, String>> {
    let python = python::python();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/pty_fleet/pymodbus_server.py"
    );
    let (master, path): (OwnedFd, String) = crate::server::open_raw_pty()?;
    let mut child = Command::new(&python)
        .arg(script)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take();
    let pymodbus = Pymodbus(child);
    let mut ready = String::new();
    if let Some(out) = stdout {
        BufReader::new(out).read_line(&mut ready)?;
    }
    if ready.trim() != "ready" {
        return Ok(Err(format!("{script} did not start (said {ready:?})")));
    }
    let mut serialtwin = ServerChild::spawn("serialtwin", runtime)?;
    let (up, paths) = serialtwin.open_modbus(1)?;
    let mut clients = vec![
        Client::on(vec![master], REQUEST, REPLY)?,
        Client::open_for(&paths, REQUEST, REPLY)?,
    ];
    let mut runs = [ServerRun::default(), ServerRun::default()];
    for run in &mut runs {
        run.ports = 1;
    }
    runs[1].bring_up = up;
    let pids = [pymodbus.0.id(), serialtwin.pid()];
    let mut cpu: Vec<Box<dyn FnMut() -> u64>> = pids
        .iter()
        .map(|&pid| Box::new(move || process_cpu_ns(pid)) as Box<dyn FnMut() -> u64>)
        .collect();
    crate::alternate(windows, &mut clients, &mut cpu, &mut runs)?;
    for (i, run) in runs.iter_mut().enumerate() {
        run.corrupt = clients[i].corrupt;
    }
    runs[1].teardown = serialtwin.close()?;
    drop(clients);
    serialtwin.finish();
    drop(pymodbus);
    let [pymodbus, serialtwin] = runs;
    Ok(Ok(Point {
        ports: 1,
        limit: pymodbus,
        serialtwin,
    }))
}

/// The printed rows.
pub(crate) fn table(r: &Results) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nmodbus: read of {REGISTERS} holding registers (function 3), closed loop, unpaced; \
         median [min-max]"
    );
    let _ = writeln!(
        out,
        "{:>5}  {:<10} {:>9} {:>19} {:>8} {:>8} {:>9}",
        "ports", "server", "rt/s", "[min-max]", "p50 us", "p99 us", "cpu us/rt"
    );
    let rows = r
        .points
        .iter()
        .map(|p| ("limit", p))
        .chain(r.pymodbus.as_ref().ok().map(|p| ("pymodbus", p)));
    for (other, p) in rows {
        let o = p.limit.summary();
        let s = p.serialtwin.summary();
        for (name, x) in [(other, &o), ("serialtwin", &s)] {
            let _ = writeln!(
                out,
                "{:>5}  {:<10} {:>9.0} {:>19} {:>8.1} {:>8.1} {:>9.2}",
                p.ports,
                name,
                x.rate_median,
                format!("[{:.0}-{:.0}]", x.rate_min, x.rate_max),
                x.p50_us,
                x.p99_us,
                x.cpu_us_per_rt,
            );
        }
        let _ = writeln!(
            out,
            "{:>5}  {:<10} {:>9.2} {:>19} {:>8.2} {:>8.2} {:>9.2}   (serialtwin / {other})",
            p.ports,
            "ratio",
            s.rate_median / o.rate_median,
            "",
            s.p50_us / o.p50_us,
            s.p99_us / o.p99_us,
            s.cpu_us_per_rt / o.cpu_us_per_rt,
        );
    }
    if let Err(why) = &r.pymodbus {
        let _ = writeln!(out, "pymodbus row skipped: {why}");
    }
    let corrupt: u64 = r
        .points
        .iter()
        .chain(r.pymodbus.as_ref().ok())
        .map(|p| p.limit.corrupt + p.serialtwin.corrupt)
        .sum();
    if corrupt > 0 {
        let _ = writeln!(
            out,
            "WARNING: {corrupt} Modbus replies had unexpected bytes"
        );
    }
    let _ = writeln!(out, "targets (informative, never asserted):");
    for (name, met, detail) in targets(r) {
        let _ = writeln!(
            out,
            "  [{}] {name}: {detail}",
            if met { "met" } else { "MISSED" }
        );
    }
    out
}

/// The Modbus rows' target: the closed loop's, at least 0.9 of the limit's round trips.
fn targets(r: &Results) -> Vec<(String, bool, String)> {
    r.points
        .iter()
        .map(|p| {
            let ratio = p.serialtwin.summary().rate_median / p.limit.summary().rate_median;
            (
                format!("modbus rt/s at {} ports >= 0.9 x limit", p.ports),
                ratio >= 0.9,
                format!("{ratio:.2}"),
            )
        })
        .collect()
}

/// The rows for the JSON file.
pub(crate) fn json(r: &Results) -> J {
    let point = |other: &'static str, p: &Point| {
        let o = p.limit.summary();
        let s = p.serialtwin.summary();
        let side = |x: &crate::report::Summary| {
            J::Obj(vec![
                ("round_trips_per_s", J::Num(x.rate_median)),
                ("p50_us", J::Num(x.p50_us)),
                ("p99_us", J::Num(x.p99_us)),
                ("cpu_us_per_round_trip", J::Num(x.cpu_us_per_rt)),
            ])
        };
        J::Obj(vec![
            ("ports", J::Num(f64_of_usize(p.ports))),
            (other, side(&o)),
            ("serialtwin", side(&s)),
            ("ratio_round_trips", J::Num(s.rate_median / o.rate_median)),
            ("ratio_cpu", J::Num(s.cpu_us_per_rt / o.cpu_us_per_rt)),
        ])
    };
    J::Obj(vec![
        (
            "points",
            J::Arr(r.points.iter().map(|p| point("limit", p)).collect()),
        ),
        (
            "pymodbus",
            match &r.pymodbus {
                Ok(p) => point("pymodbus", p),
                Err(why) => J::Str(why.clone()),
            },
        ),
    ])
}
