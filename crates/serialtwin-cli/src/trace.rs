//! `--trace`: every frame and line event of every port, one line each, on stderr.
//!
//! ```text
//! 2026-06-21T12:00:00.125Z qpgs rx "QPGS"
//! 2026-06-21T12:00:00.126Z qpgs tx "correct result\r\n"
//! 2026-06-21T12:00:01.002Z qpgs -- close
//! 2026-06-21T12:00:02.310Z inverter rx "QPIGS\xb7\xa8" (checksum does not verify)
//! 2026-06-21T12:00:03.000Z bus rx 01 03 00 6b 00 03 (unit 1 read holding 0x006B ×3)
//! 2026-06-21T12:00:03.001Z bus tx 01 03 06 02 2b 00 00 00 64 05 7a (unit 1 holding ×3: 0x022B 0x0000 0x0064)
//! ```
//!
//! A frame whose checksum the port's framer does not verify ([`Framer::check`]: a corrupted
//! request, a `break-crc` fault, a command typed without one) is marked, whatever the
//! protocol; frames of protocols without checksums never are. A protocol whose framing
//! describes its frames ([`NamedFraming::describe`]: Modbus) gets that line in parentheses after
//! the bytes; the others' lines are the bytes alone.
//!
//! The serving loop calls observers synchronously, so the observer only formats the line and
//! hands it to a writer thread; a slow stderr never slows a port down.
//!
//! [`NamedFraming::describe`]: serialtwin_devices::registry::NamedFraming::describe

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use bytes::BytesMut;
use serialtwin_core::{
    BoxFramer, Checksum, Direction, Framer, Framing, Observation, Observer, Seen,
};
use serialtwin_devices::registry::{self, Describe};
use serialtwin_devices::scripted::escape_bytes;
use tokio::time::Instant;

use crate::cli::TraceFormat;

/// The observer handed to every port.
#[derive(Debug, Clone)]
pub(crate) struct Trace {
    tx: mpsc::Sender<String>,
    format: TraceFormat,
    /// The same moment on tokio's clock and the wall clock, to stamp observations.
    origin: (Instant, jiff::Timestamp),
    /// The port's framing, to check its frames' checksums ([`Trace::checking`]).
    checker: Option<Checker>,
    /// How the port's protocol describes a frame in words, if it does.
    describe: Option<Describe>,
}

/// A framer of one port's framing, asked whether its frames' checksums verify. Observers
/// are shared between threads; a framer is only `Send`, hence the lock (one port's, so
/// never contended).
#[derive(Clone)]
struct Checker(Arc<Mutex<BoxFramer>>);

impl fmt::Debug for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Checker")
    }
}

impl Checker {
    /// Whether the checksum of a frame seen going `direction` fails: a request as the framer
    /// decoded it, or a reply as it went on the wire (decoded first).
    fn fails(&self, direction: Direction, bytes: &[u8]) -> bool {
        let mut framer = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match direction {
            Direction::Rx => framer.check(bytes) == Checksum::Invalid,
            Direction::Tx => {
                framer.reset();
                let mut wire = BytesMut::from(bytes);
                let fails = matches!(
                    framer.decode(&mut wire),
                    Ok(Some(frame)) if framer.check(&frame) == Checksum::Invalid
                );
                framer.reset();
                fails
            }
        }
    }
}

/// The thread writing trace lines; [`finish`](Self::finish) waits until all are written.
#[derive(Debug)]
pub(crate) struct TraceWriter {
    thread: JoinHandle<()>,
}

impl Trace {
    /// Start the writer thread.
    pub(crate) fn start(format: TraceFormat) -> (Self, TraceWriter) {
        let (tx, rx) = mpsc::channel::<String>();
        let thread = std::thread::spawn(move || {
            for line in rx {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
        });
        let trace = Self {
            tx,
            format,
            origin: (Instant::now(), jiff::Timestamp::now()),
            checker: None,
            describe: None,
        };
        (trace, TraceWriter { thread })
    }

    /// The observer for a port framed by `framing`, which marks frames whose checksum does
    /// not verify and says what each frame means if the framing's protocol can
    /// ([`registry::describer`], found by the framing's name). `None`: a port without
    /// framing, whose bytes are never checked nor described.
    pub(crate) fn checking(&self, framing: Option<&Framing>) -> Self {
        Self {
            checker: framing.map(|f| Checker(Arc::new(Mutex::new(f.build())))),
            describe: framing.and_then(|f| registry::describer(f.name())),
            ..self.clone()
        }
    }

    /// The trace line of `o`.
    fn line(&self, o: &Observation) -> String {
        let since = o.at.saturating_duration_since(self.origin.0);
        let at = jiff::SignedDuration::try_from(since)
            .ok()
            .and_then(|d| self.origin.1.checked_add(d).ok())
            .unwrap_or(self.origin.1);
        let mut line = format!("{at:.3} {} ", o.port);
        match &o.seen {
            Seen::Frame(direction, bytes) => {
                let _ = write!(line, "{direction} ");
                match self.format {
                    TraceFormat::Text => {
                        let _ = write!(line, "\"{}\"", escape_bytes(bytes).replace('"', "\\\""));
                    }
                    TraceFormat::Hex => {
                        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                        line.push_str(&hex.join(" "));
                    }
                }
                if let Some(words) = self.describe.and_then(|d| d(bytes, *direction)) {
                    let _ = write!(line, " ({words})");
                }
                if self
                    .checker
                    .as_ref()
                    .is_some_and(|c| c.fails(*direction, bytes))
                {
                    line.push_str(" (checksum does not verify)");
                }
            }
            Seen::Event(event) => {
                let _ = write!(line, "-- {event}");
            }
            Seen::FrameError(e) => {
                let _ = write!(line, "!! frame error: {e}");
            }
            Seen::HandlerError(e) => {
                let _ = write!(line, "!! device error: {e}");
            }
            Seen::Fault(fault) => {
                let _ = write!(line, "!! fault: {fault:?}");
            }
        }
        line
    }
}

impl Observer for Trace {
    fn observe(&self, observation: &Observation) {
        // The writer only goes away after every port has stopped.
        let _ = self.tx.send(self.line(observation));
    }
}

impl TraceWriter {
    /// Wait until every line is written; call once every `Trace` clone has been dropped.
    pub(crate) fn finish(self) {
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(trace: &Trace, direction: Direction, bytes: &'static [u8]) -> String {
        trace.line(&Observation {
            at: trace.origin.0,
            port: "p".into(),
            seen: Seen::Frame(direction, Bytes::from_static(bytes)),
        })
    }

    #[test]
    fn frames_whose_checksum_fails_are_marked_for_any_framing() {
        let (trace, writer) = Trace::start(TraceFormat::Text);
        let pi30 = trace.checking(serialtwin_devices::framing_by_name("pi30").as_ref());
        let bad = " (checksum does not verify)";
        assert!(!frame(&pi30, Direction::Rx, b"QPIGS\xb7\xa9").ends_with(bad));
        assert!(frame(&pi30, Direction::Rx, b"QPIGS\xb7\xa8").ends_with(bad));
        assert!(!frame(&pi30, Direction::Tx, b"(NAKss\r").ends_with(bad));
        assert!(frame(&pi30, Direction::Tx, b"(NAKst\r").ends_with(bad));
        // No checksum in the protocol, or no framing at all: nothing to say.
        let crlf = trace.checking(Some(&Framing::default()));
        assert!(!frame(&crlf, Direction::Rx, b"QPGS").ends_with(bad));
        assert!(!frame(&trace, Direction::Rx, b"QPIGS\xb7\xa8").ends_with(bad));
        drop((trace, pi30, crlf));
        writer.finish();
    }

    #[test]
    fn modbus_frames_are_described_next_to_their_bytes() {
        let (trace, writer) = Trace::start(TraceFormat::Hex);
        let rtu = trace.checking(serialtwin_devices::framing_by_name("modbus-rtu").as_ref());
        let line = frame(&rtu, Direction::Rx, &[0x01, 0x03, 0x00, 0x6B, 0x00, 0x03]);
        assert!(
            line.ends_with(" p rx 01 03 00 6b 00 03 (unit 1 read holding 0x006B ×3)"),
            "{line}"
        );
        let line = frame(&rtu, Direction::Tx, &[0x01, 0x83, 0x02, 0xC0, 0xF1]);
        assert!(
            line.ends_with(
                " p tx 01 83 02 c0 f1 (unit 1 exception 02 (illegal data address) to read holding)"
            ),
            "{line}"
        );
        let ascii = trace.checking(serialtwin_devices::framing_by_name("modbus-ascii").as_ref());
        let line = frame(&ascii, Direction::Tx, b":0183027A\r\n");
        assert!(
            line.ends_with(" (unit 1 exception 02 (illegal data address) to read holding)"),
            "{line}"
        );
        // Framings that do not describe, and ports without framing, show the bytes alone.
        let pi30 = trace.checking(serialtwin_devices::framing_by_name("pi30").as_ref());
        assert!(
            frame(&pi30, Direction::Rx, b"QPIGS\xb7\xa9").ends_with(" p rx 51 50 49 47 53 b7 a9")
        );
        assert!(
            frame(&trace, Direction::Rx, &[1, 3, 0, 0x6B, 0, 3])
                .ends_with(" p rx 01 03 00 6b 00 03")
        );
        drop((trace, rtu, ascii, pi30));
        writer.finish();
    }
}
