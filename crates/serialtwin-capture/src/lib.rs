//! serialtwin-capture: captures of serial conversations, and the tap that records them.
//!
//! # Captures
//!
//! A capture is a recorded conversation on a serial line, as JSON lines: one record per line,
//! each a JSON object with a `type`. The first is a `header` ([`Header`]); after it come
//! `chunk`s (bytes exactly as they were read, in either direction), `frame`s (the same bytes cut
//! by a framer), and line events (`open`, `close`, `settings`, `flush`, `flow`, `error`): each a
//! [`Record`]. Every record after the header carries `t`, seconds since the capture started on
//! a monotonic clock, with microsecond precision. Bytes are lossless in `hex`, with a readable
//! `text` beside them for people (`\r`, `\n`, `\t`, `\\` and `\xNN` escapes, as
//! [`serialtwin_core::escape`] writes them):
//!
//! ```text
//! {"type":"header","format":"serialtwin-capture","version":1,"started":"2026-06-21T12:00:00.000000Z","framing":"pi30","upstream":"/dev/ttyUSB0"}
//! {"type":"open","t":0.000113}
//! {"type":"settings","t":0.000131,"baud":2400,"data_bits":8,"parity":"none","stop_bits":1,"flow":"none","parity_visible":false}
//! {"type":"chunk","t":0.101012,"dir":"rx","hex":"5150494753b7a90d","text":"QPIGS\xb7\xa9\r"}
//! {"type":"frame","t":0.101020,"dir":"rx","hex":"5150494753b7a9","text":"QPIGS\xb7\xa9"}
//! ```
//!
//! A `frame` is what an [`Observer`](serialtwin_core::Observer) sees as
//! [`Seen::Frame`](serialtwin_core::Seen::Frame): a request (`rx`) as the device gets it from
//! the framer (terminator removed), a reply (`tx`) exactly as it went on the wire (checksum and
//! terminator included). Full details: `docs/capture.md`.
//!
//! [`CaptureWriter`] streams records to a file from a writer thread (a [`Recorder`]'s, which
//! can serve any number of files), writing each whole line with one `write(2)` as soon as it
//! is made, so a capture survives the recording process being
//! killed (even with SIGKILL) up to the last record handed over. [`read`] accepts such a file:
//! an incomplete last line is set aside ([`Capture::truncated`]), not an error.
//!
//! # The tap
//!
//! A client-facing port on one side, the real device on the other, everything recorded:
//!
//! ```text
//! client ── /dev/pts/N (link) ── PtyPort ──► Tap ──► upstream (serial port, pty, TCP)
//!                                        ◄──     ◄──
//!                                     observers (trace), capture (chunks, frames, events)
//! ```
//!
//! Every byte passes both ways unchanged, as soon as it is read ([`Tap::run`]). Beside that,
//! each direction has its own [`Cutter`] (a framer built from one
//! [`Framing`](serialtwin_core::Framing)) that cuts the stream into frames for the observers and
//! the capture: requests (`rx`) as the device would be handed them, replies (`tx`) as the exact
//! wire bytes the framer consumed. When the client changes its line settings the upstream is
//! asked to follow ([`Upstream::follow`]).

mod capture;
mod tap;

pub use crate::capture::{
    Capture, CaptureError, CaptureWriter, Data, Describe, FORMAT, FlowName, Header,
    MAX_CAPTURE_LEN, ParityName, Record, Recorder, SettingsRecord, VERSION, parse, read,
};
pub use crate::tap::{Cut, Cutter, Tap, TapEnd, TapError, Upstream};
