//! `serialtwin tap`: a new pty in front of a real device, every byte passed and recorded.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use serialtwin_capture::{CaptureWriter, Header, Tap, TapEnd, Upstream};
use serialtwin_core::{
    FlowControl, Framing, LineSettings, LinkSlot, Parity, PtyOptions, PtyPort, StopBits,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_serial::{SerialPort as _, SerialPortBuilderExt as _, SerialStream};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::TraceFormat;
use crate::files;
use crate::tap_rfc2217::{self, Rfc2217Upstream};
use crate::trace::Trace;

/// `serialtwin tap`.
#[derive(Debug, Args)]
pub(crate) struct TapArgs {
    /// The real device: a serial port (or pty) path, `host:port` for a TCP serial server
    /// (bytes only), or `rfc2217://host:port` (`rfc2217://[::1]:port`) for an RFC 2217 access
    /// server such as ser2net's `telnet(rfc2217)`, which is also told the line settings.
    #[arg(long)]
    pub(crate) upstream: String,
    /// The link to make to the new pty: what the client opens instead of the device.
    #[arg(long)]
    pub(crate) link: PathBuf,
    /// Where to record the conversation (JSON lines; see docs/capture.md): a new file, created
    /// owner-only (0600); refused if anything is already there (see --force).
    #[arg(long, value_name = "FILE")]
    pub(crate) capture: PathBuf,
    /// Replace the --capture file if it exists and is a regular file (never a symlink, a FIFO
    /// or a device).
    #[arg(long)]
    pub(crate) force: bool,
    /// Cut the traffic into frames with this framing (`pi30`, `crlf`, `cr`, `lf`,
    /// `modbus-rtu`, `modbus-ascii`...) for the trace and the capture's `frame` records.
    /// Without it only raw chunks are recorded. `modbus-rtu` cuts each reply by the request it
    /// answers.
    #[arg(long)]
    pub(crate) framing: Option<String>,
    /// Milliseconds without a byte after which a frame whose length the framing cannot tell
    /// (a Modbus diagnostics request, an unknown function code) is given up. Only such frames
    /// wait on silence; at least a USB adapter's latency (16 ms on FTDI chips by default).
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) idle: u64,
    /// The upstream's baud rate until the client sets its own (the client's then wins). Also
    /// sent to an `rfc2217://` upstream, with the data bits, parity, stop bits and flow.
    #[arg(long, default_value_t = 2400)]
    pub(crate) baud: u32,
    /// Data bits on the upstream (a pty cannot show the client's choice).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(5..=8))]
    pub(crate) data_bits: u8,
    /// Parity on the upstream (a pty cannot show the client's choice).
    #[arg(long, value_enum, default_value_t = ParityArg::None)]
    pub(crate) parity: ParityArg,
    /// Stop bits on the upstream until the client sets its own.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub(crate) stop_bits: u8,
    /// Flow control on the upstream until the client sets its own.
    #[arg(long, value_enum, default_value_t = FlowArg::None)]
    pub(crate) flow: FlowArg,
    /// Log every frame and line event on stderr, as `run --trace` does.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "text")]
    pub(crate) trace: Option<TraceFormat>,
    /// When ready, print `{"name","pty","link","upstream","capture"}` and `{"ready": 1}` on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--parity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ParityArg {
    /// No parity bit.
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// `--flow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FlowArg {
    /// No flow control.
    None,
    /// RTS/CTS.
    Hardware,
    /// XON/XOFF.
    Software,
}

pub(crate) const TAP_EXAMPLES: &str = "\
Examples:
  serialtwin tap --upstream /dev/ttyUSB0 --link /tmp/serialtwin/ttyUSB0 --capture inverter.jsonl --framing pi30 --trace
      Point the vendor software (or mppsolar --porttype serial) at /tmp/serialtwin/ttyUSB0
  serialtwin tap --upstream /dev/ttyUSB0 --baud 9600 --link /tmp/serialtwin/ttyUSB0 --capture meter.jsonl --framing modbus-rtu --trace
      A Modbus RTU line: each request and each reply one frame, described in the trace;
      then `serialtwin learn meter.jsonl -o meter.toml` makes a register map of it
  serialtwin tap --upstream 192.168.1.50:8899 --link /tmp/serialtwin/ttyUSB1 --capture meter.jsonl --framing crlf
      The device behind a TCP serial server (raw bytes)
  serialtwin tap --upstream rfc2217://192.168.1.50:2001 --baud 9600 --link /tmp/serialtwin/ttyUSB2 --capture meter.jsonl --framing modbus-rtu
      The device behind an RFC 2217 server (ser2net telnet(rfc2217), serialtwin's rfc2217
      endpoint): the baud rate, data bits, parity, stop bits and flow go to the server, and
      follow the client's baud; DTR and RTS are raised, without waiting for a server that
      never answers them (ser2net on a pty)
  jq -r 'select(.type==\"frame\") | \"\\(.t) \\(.dir) \\(.text)\"' inverter.jsonl
      Read the conversation back

Stops on SIGINT, SIGTERM or SIGHUP (the capture is complete), or when the upstream goes away
(exit status 1). A capture is written record by record: a killed tap leaves every record but
the one it was writing, which `replay` and `learn` skip. The capture is a new file (mode 0600):
the tap stops if anything is at its path; --force replaces a regular file there, never a
symlink, a FIFO or a device.";

impl TapArgs {
    /// The upstream's line settings from the command line.
    fn settings(&self) -> LineSettings {
        LineSettings {
            baud: self.baud,
            data_bits: self.data_bits,
            parity: match self.parity {
                ParityArg::None => Parity::None,
                ParityArg::Even => Parity::Even,
                ParityArg::Odd => Parity::Odd,
            },
            stop_bits: if self.stop_bits == 2 {
                StopBits::Two
            } else {
                StopBits::One
            },
            flow: match self.flow {
                FlowArg::None => FlowControl::None,
                FlowArg::Hardware => FlowControl::Hardware,
                FlowArg::Software => FlowControl::Software,
            },
            parity_visible: true,
        }
    }
}

/// A framing by name (the core's and every model's), or an error listing the known ones.
pub(crate) fn framing(name: &str) -> anyhow::Result<Framing> {
    Ok(serialtwin_devices::registry::framing(name)?)
}

/// SIGINT, SIGTERM and SIGHUP, installed before anything is created so that none is lost.
pub(crate) struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    pub(crate) fn install() -> anyhow::Result<Self> {
        let install = |kind| signal(kind).context("cannot install a signal handler");
        Ok(Self {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// A serial port (or another pty) as the tap's upstream: it follows the client's baud rate,
/// stop bits and flow control; parity and data bits stay as the command line set them.
struct SerialUpstream {
    port: SerialStream,
    fixed: LineSettings,
}

impl AsyncRead for SerialUpstream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.port).poll_read(cx, buf)
    }
}

impl AsyncWrite for SerialUpstream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.port).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.port).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.port).poll_shutdown(cx)
    }
}

impl Upstream for SerialUpstream {
    fn follow(&mut self, client: &LineSettings) -> io::Result<Option<LineSettings>> {
        let applied = LineSettings {
            baud: client.baud,
            stop_bits: client.stop_bits,
            flow: client.flow,
            ..self.fixed
        };
        self.port.set_baud_rate(applied.baud)?;
        self.port.set_stop_bits(match applied.stop_bits {
            StopBits::One => tokio_serial::StopBits::One,
            StopBits::Two => tokio_serial::StopBits::Two,
        })?;
        self.port.set_flow_control(match applied.flow {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
            FlowControl::Software => tokio_serial::FlowControl::Software,
        })?;
        Ok(Some(applied))
    }
}

/// The device side.
enum Up {
    Serial(SerialUpstream),
    Tcp(TcpStream),
    Rfc2217(Box<Rfc2217Upstream>),
}

/// `host:port` (TCP) rather than a path: no leading `/` or `.`, and a numeric port.
fn is_tcp(upstream: &str) -> bool {
    !upstream.starts_with(['/', '.'])
        && upstream
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn open_serial(path: &str, s: &LineSettings) -> anyhow::Result<SerialUpstream> {
    let port = tokio_serial::new(path, s.baud)
        .data_bits(match s.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .parity(match s.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(match s.stop_bits {
            StopBits::One => tokio_serial::StopBits::One,
            StopBits::Two => tokio_serial::StopBits::Two,
        })
        .flow_control(match s.flow {
            FlowControl::None => tokio_serial::FlowControl::None,
            FlowControl::Hardware => tokio_serial::FlowControl::Hardware,
            FlowControl::Software => tokio_serial::FlowControl::Software,
        })
        .open_native_async()
        .with_context(|| format!("cannot open upstream {path}"))?;
    Ok(SerialUpstream { port, fixed: *s })
}

/// `serialtwin tap`.
///
/// # Errors
/// Bad arguments, an upstream or link that cannot be opened, or an upstream that fails or goes
/// away while tapping.
pub(crate) fn tap(args: &TapArgs) -> anyhow::Result<()> {
    let framing = args.framing.as_deref().map(framing).transpose()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(run(args, framing))
}

/// The capture file, its header saying what is tapped and how; its frames say what they mean
/// where the protocol can (Modbus: unit, function, address...).
fn open_capture(
    args: &TapArgs,
    framing: Option<&Framing>,
    settings: LineSettings,
) -> anyhow::Result<CaptureWriter> {
    let mut header = Header::now();
    header.framing = framing.map(|f| f.name().to_owned());
    header.upstream = Some(args.upstream.clone());
    header.link = Some(args.link.display().to_string());
    header.settings = Some(settings.into());
    header.tool = Some(format!("serialtwin {} tap", env!("CARGO_PKG_VERSION")));
    let capture = CaptureWriter::create_with(&args.capture, &header, files::existing(args.force))
        .map_err(files::with_hint)?;
    Ok(
        match framing.and_then(|f| serialtwin_devices::registry::describer(f.name())) {
            Some(describe) => capture.describing(describe),
            None => capture,
        },
    )
}

async fn run(args: &TapArgs, framing: Option<Framing>) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let settings = args.settings();
    let upstream = if let Some(address) = tap_rfc2217::address(&args.upstream)? {
        Up::Rfc2217(Box::new(
            Rfc2217Upstream::connect(&args.upstream, address, settings).await?,
        ))
    } else if is_tcp(&args.upstream) {
        Up::Tcp(
            TcpStream::connect(&args.upstream)
                .await
                .with_context(|| format!("cannot connect to upstream {}", args.upstream))?,
        )
    } else {
        Up::Serial(open_serial(&args.upstream, &settings)?)
    };
    let mut slot = LinkSlot::claim(args.link.clone())?;
    let port = PtyPort::open(&PtyOptions {
        baud: args.baud,
        ..PtyOptions::default()
    })
    .context("cannot create the pty")?;
    slot.point_to(port.path())?;
    let pty = port.path().to_owned();

    let capture = open_capture(args, framing.as_ref(), settings)?;

    let trace = args.trace.map(Trace::start);
    let mut tap = Tap::new("tap")
        .capture(capture.clone())
        .idle(std::time::Duration::from_millis(args.idle));
    if let Some((t, _)) = &trace {
        tap = tap.observe(Arc::new(t.checking(framing.as_ref())));
    }
    if let Some(f) = framing {
        tap = tap.framing(f);
    }

    let mut out = io::stdout().lock();
    if args.json {
        let line = serde_json::json!({
            "name": "tap",
            "pty": pty.display().to_string(),
            "link": args.link.display().to_string(),
            "upstream": args.upstream,
            "capture": args.capture.display().to_string(),
        });
        writeln!(out, "{line}")?;
        writeln!(out, "{}", serde_json::json!({ "ready": 1 }))?;
    } else {
        writeln!(
            out,
            "tap  {}  ->  {}  (pty {}, capture {})",
            args.link.display(),
            args.upstream,
            pty.display(),
            args.capture.display()
        )?;
    }
    out.flush()?;
    drop(out);
    info!(upstream = %args.upstream, link = %args.link.display(), "tapping; stop with Ctrl-C (SIGINT), SIGTERM or SIGHUP");

    let cancel = CancellationToken::new();
    let ended = {
        let running = async {
            match upstream {
                Up::Serial(u) => tap.run(port, u, &cancel).await,
                Up::Tcp(u) => tap.run(port, u, &cancel).await,
                Up::Rfc2217(u) => tap.run(port, *u, &cancel).await,
            }
        };
        tokio::pin!(running);
        tokio::select! {
            which = signals.recv() => {
                info!("{which}: stopping");
                cancel.cancel();
                running.await
            }
            ended = &mut running => ended,
        }
    };
    // The tap holds a trace clone: the trace writer finishes only once it is gone.
    drop(tap);
    let closed = capture.close();
    if let Some((t, writer)) = trace {
        drop(t);
        writer.finish();
    }
    if let Err(e) = slot.release() {
        warn!("cannot remove link: {e}");
    }
    closed.context("the capture is incomplete")?;
    match ended {
        Ok(TapEnd::Cancelled) => {
            info!(capture = %args.capture.display(), "stopped; capture complete, link removed");
            Ok(())
        }
        Ok(end) => bail!("tap stopped: {end:?}"),
        Err(e) => Err(e).context("tap stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_or_path() {
        assert!(is_tcp("127.0.0.1:8899"));
        assert!(is_tcp("inverter.local:23"));
        assert!(is_tcp("[::1]:23"));
        assert!(!is_tcp("/dev/ttyUSB0"));
        assert!(!is_tcp("./dev:1"));
        assert!(!is_tcp("/tmp/a:1"));
        assert!(!is_tcp("ttyUSB0"));
    }
}
