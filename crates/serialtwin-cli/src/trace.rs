//! `--trace`: every frame and line event of every port, one line each, on stderr.
//!
//! ```text
//! 2026-06-21T12:00:00.125Z qpgs rx "QPGS"
//! 2026-06-21T12:00:00.126Z qpgs tx "correct result\r\n"
//! 2026-06-21T12:00:01.002Z qpgs -- close
//! ```
//!
//! The serving loop calls observers synchronously, so the observer only formats the line and
//! hands it to a writer thread; a slow stderr never slows a port down.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::mpsc;
use std::thread::JoinHandle;

use serialtwin_core::{Observation, Observer, Seen};
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
        };
        (trace, TraceWriter { thread })
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
