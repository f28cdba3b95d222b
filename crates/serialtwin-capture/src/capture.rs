//! Captures: the JSON-lines format, [`CaptureWriter`] and [`read`] (see the crate docs).

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serialtwin_core::input_file::{self, InputError};
use tokio::time::Instant;

use serialtwin_core::escape::{escape, hex, unescape, unhex};
use serialtwin_core::output::{self, Existing, OutputError};
use serialtwin_core::{
    Direction, FlowControl, LineEvent, LineSettings, Observation, Observer, Parity, Seen, StopBits,
};

/// The `format` of a capture header.
pub const FORMAT: &str = "serialtwin-capture";
/// The capture format version this crate writes and reads.
pub const VERSION: u32 = 1;

/// Why a capture cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The capture file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A complete line in the middle of the file is not a capture record.
    #[error("{}:{line}: not a capture record: {reason}", .path.display())]
    Record {
        /// The capture file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
    /// The file is not a capture of a version this crate reads.
    #[error("{}: {reason}", .path.display())]
    Format {
        /// The capture file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The capture file could not be created: something is in the way, or the system refused.
    #[error(transparent)]
    Create(#[from] OutputError),
}

/// The first record: what was recorded, and when.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version, [`VERSION`].
    pub version: u32,
    /// Wall-clock time at `t = 0`, RFC 3339 in UTC.
    pub started: String,
    /// The framing frames were cut with (`pi30`, `crlf`...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<String>,
    /// The device side: a serial port's path or `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The link the client opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The port's name, when an emulated device's port was recorded (`serialtwin run
    /// --capture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The device side's line settings when the capture started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsRecord>,
    /// What wrote the capture (`serialtwin 0.1.0 tap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

impl Header {
    /// A header stamped with the current wall-clock time.
    #[must_use]
    pub fn now() -> Self {
        Self {
            format: FORMAT.to_owned(),
            version: VERSION,
            started: format!("{:.6}", jiff::Timestamp::now()),
            ..Self::default()
        }
    }
}

/// Line settings as a record field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsRecord {
    /// Bits per second.
    pub baud: u32,
    /// Data bits (always 8 as seen on a pty).
    pub data_bits: u8,
    /// `none`, `even` or `odd`.
    pub parity: ParityName,
    /// 1 or 2.
    pub stop_bits: u8,
    /// `none`, `hardware` or `software`.
    pub flow: FlowName,
    /// Whether parity and data bits were really seen (false on a pty).
    #[serde(default)]
    pub parity_visible: bool,
}

/// Parity, as written in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[expect(missing_docs, reason = "the variants are the parities' names")]
pub enum ParityName {
    None,
    Even,
    Odd,
}

/// Flow control, as written in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[expect(missing_docs, reason = "the variants are the flow controls' names")]
pub enum FlowName {
    None,
    Hardware,
    Software,
}

impl From<LineSettings> for SettingsRecord {
    fn from(s: LineSettings) -> Self {
        Self {
            baud: s.baud,
            data_bits: s.data_bits,
            parity: match s.parity {
                Parity::None => ParityName::None,
                Parity::Even => ParityName::Even,
                Parity::Odd => ParityName::Odd,
            },
            stop_bits: match s.stop_bits {
                StopBits::One => 1,
                StopBits::Two => 2,
            },
            flow: match s.flow {
                FlowControl::None => FlowName::None,
                FlowControl::Hardware => FlowName::Hardware,
                FlowControl::Software => FlowName::Software,
            },
            parity_visible: s.parity_visible,
        }
    }
}

impl From<SettingsRecord> for LineSettings {
    fn from(s: SettingsRecord) -> Self {
        Self {
            baud: s.baud,
            data_bits: s.data_bits,
            parity: match s.parity {
                ParityName::None => Parity::None,
                ParityName::Even => Parity::Even,
                ParityName::Odd => Parity::Odd,
            },
            stop_bits: if s.stop_bits == 2 {
                StopBits::Two
            } else {
                StopBits::One
            },
            flow: match s.flow {
                FlowName::None => FlowControl::None,
                FlowName::Hardware => FlowControl::Hardware,
                FlowName::Software => FlowControl::Software,
            },
            parity_visible: s.parity_visible,
        }
    }
}

/// Bytes that went one way at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    /// Seconds since the capture started.
    pub t: Duration,
    /// `rx`: client to device; `tx`: device to client.
    pub dir: Direction,
    /// The bytes.
    pub bytes: Bytes,
}

/// One record of a capture (after the header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Bytes exactly as one read returned them.
    Chunk(Data),
    /// One frame (see the crate docs for what `rx` and `tx` frames hold).
    Frame(Data),
    /// A line event.
    Event {
        /// Seconds since the capture started.
        t: Duration,
        /// What happened.
        event: LineEvent,
    },
    /// Something went wrong (a frame discarded, the upstream failed); for people.
    Error {
        /// Seconds since the capture started.
        t: Duration,
        /// What.
        message: String,
    },
}

impl Record {
    /// When it happened.
    #[must_use]
    pub fn t(&self) -> Duration {
        match self {
            Self::Chunk(d) | Self::Frame(d) => d.t,
            Self::Event { t, .. } | Self::Error { t, .. } => *t,
        }
    }
}

/// The JSON shape of a record (internal: [`Record`] is the API).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Wire {
    Header(Header),
    Chunk(WireData),
    Frame(WireData),
    Open {
        t: f64,
    },
    Close {
        t: f64,
    },
    Settings {
        t: f64,
        #[serde(flatten)]
        settings: SettingsRecord,
    },
    Flush {
        t: f64,
        input: bool,
        output: bool,
    },
    Dtr {
        t: f64,
        on: bool,
    },
    Rts {
        t: f64,
        on: bool,
    },
    Break {
        t: f64,
        on: bool,
    },
    Flow {
        t: f64,
        running: bool,
    },
    Error {
        t: f64,
        message: String,
    },
    /// Anything a later version adds: skipped.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireData {
    t: f64,
    dir: WireDir,
    /// Lossless. A hand-written record may leave it out and give only `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
    /// For people; read only when `hex` is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// For people, on a frame: what it means, in the framing's words
    /// ([`CaptureWriter::describing`]); never read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    what: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum WireDir {
    Rx,
    Tx,
}

/// Seconds with microsecond precision.
fn seconds(d: Duration) -> f64 {
    // Whole microseconds, so the written number has at most six decimals.
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    #[expect(
        clippy::cast_precision_loss,
        reason = "exact below 2^53 µs (285 years); read back exactly below MAX_MICROS"
    )]
    let s = micros as f64 / 1e6;
    s
}

/// The latest time a record may carry, in microseconds: 2^51, about 71 years. Below it, a
/// time written with [`seconds`] reads back to the same microsecond (dividing, then
/// multiplying, by 10^6 in `f64` is off by less than half a microsecond); above it, a time read
/// and written back could come back a microsecond or two off.
const MAX_MICROS: f64 = 2_251_799_813_685_248.0;

fn duration(t: f64) -> Result<Duration, String> {
    if !(t.is_finite() && t >= 0.0) {
        return Err(format!("bad time {t}"));
    }
    let micros = (t * 1e6).round();
    if micros >= MAX_MICROS {
        return Err(format!("bad time {t}: more than 71 years after the start"));
    }
    Ok(Duration::from_micros(
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "checked non-negative and below 2^51"
        )]
        {
            micros as u64
        },
    ))
}

impl Data {
    fn to_wire(&self) -> WireData {
        WireData {
            t: seconds(self.t),
            dir: match self.dir {
                Direction::Rx => WireDir::Rx,
                Direction::Tx => WireDir::Tx,
            },
            hex: Some(hex(&self.bytes)),
            text: Some(escape(&self.bytes)),
            what: None,
        }
    }

    fn from_wire(w: &WireData) -> Result<Self, String> {
        let bytes = match (&w.hex, &w.text) {
            (Some(h), _) => unhex(h)?,
            (None, Some(text)) => unescape(text)?,
            (None, None) => return Err("a chunk or frame needs `hex` or `text`".into()),
        };
        Ok(Self {
            t: duration(w.t)?,
            dir: match w.dir {
                WireDir::Rx => Direction::Rx,
                WireDir::Tx => Direction::Tx,
            },
            bytes: Bytes::from(bytes),
        })
    }
}

impl Record {
    fn to_wire(&self) -> Wire {
        match self {
            Self::Chunk(d) => Wire::Chunk(d.to_wire()),
            Self::Frame(d) => Wire::Frame(d.to_wire()),
            Self::Error { t, message } => Wire::Error {
                t: seconds(*t),
                message: message.clone(),
            },
            Self::Event { t, event } => {
                let t = seconds(*t);
                match event {
                    LineEvent::Opened => Wire::Open { t },
                    LineEvent::Closed => Wire::Close { t },
                    LineEvent::Settings(s) => Wire::Settings {
                        t,
                        settings: (*s).into(),
                    },
                    LineEvent::Flush { input, output } => Wire::Flush {
                        t,
                        input: *input,
                        output: *output,
                    },
                    LineEvent::Flow(running) => Wire::Flow {
                        t,
                        running: *running,
                    },
                    LineEvent::Dtr(on) => Wire::Dtr { t, on: *on },
                    LineEvent::Rts(on) => Wire::Rts { t, on: *on },
                    LineEvent::Break(on) => Wire::Break { t, on: *on },
                }
            }
        }
    }

    fn from_wire(w: Wire) -> Result<Option<Self>, String> {
        let event = |t: f64, event| {
            Ok(Some(Self::Event {
                t: duration(t)?,
                event,
            }))
        };
        match w {
            Wire::Header(_) => Err("a second header".into()),
            Wire::Chunk(d) => Ok(Some(Self::Chunk(Data::from_wire(&d)?))),
            Wire::Frame(d) => Ok(Some(Self::Frame(Data::from_wire(&d)?))),
            Wire::Open { t } => event(t, LineEvent::Opened),
            Wire::Close { t } => event(t, LineEvent::Closed),
            Wire::Settings { t, settings } => event(t, LineEvent::Settings(settings.into())),
            Wire::Flush { t, input, output } => event(t, LineEvent::Flush { input, output }),
            Wire::Flow { t, running } => event(t, LineEvent::Flow(running)),
            Wire::Dtr { t, on } => event(t, LineEvent::Dtr(on)),
            Wire::Rts { t, on } => event(t, LineEvent::Rts(on)),
            Wire::Break { t, on } => event(t, LineEvent::Break(on)),
            Wire::Error { t, message } => Ok(Some(Self::Error {
                t: duration(t)?,
                message,
            })),
            Wire::Unknown => Ok(None),
        }
    }

    /// The record as one JSON line (no newline).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_wire()).unwrap_or_default()
    }
}

/// A capture read back.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// The header.
    pub header: Header,
    /// Every record after the header, in file order.
    pub records: Vec<Record>,
    /// An incomplete last line (the writer was killed mid-record), set aside: its 1-based line
    /// number and length in bytes.
    pub truncated: Option<(usize, usize)>,
    /// Records of types this version does not know, skipped.
    pub skipped: usize,
}

impl Capture {
    /// The frames, in order.
    pub fn frames(&self) -> impl Iterator<Item = &Data> {
        self.records.iter().filter_map(|r| match r {
            Record::Frame(d) => Some(d),
            _ => None,
        })
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> impl Iterator<Item = &Data> {
        self.records.iter().filter_map(|r| match r {
            Record::Chunk(d) => Some(d),
            _ => None,
        })
    }
}

/// The longest capture [`read`] reads: 1 GiB, days of a busy line, and a bound on what a
/// path that keeps giving (a file still growing) can make it hold.
pub const MAX_CAPTURE_LEN: u64 = 1 << 30;

/// Read the capture at `path`: a regular file of at most [`MAX_CAPTURE_LEN`] bytes.
///
/// A last line that is incomplete — no newline and not a whole record, as a writer killed
/// mid-record leaves it — is set aside in [`Capture::truncated`]; everything before it is read.
///
/// Anything but a regular file is refused (`serialtwin_core::input_file`: `/dev/zero` never
/// ends, a FIFO or a serial port blocks its reader).
///
/// # Errors
/// [`CaptureError`]: the file cannot be read, is not a regular file or is longer than
/// [`MAX_CAPTURE_LEN`], does not start with a capture header, or has a malformed record before its
/// last line.
pub fn read(path: &Path) -> Result<Capture, CaptureError> {
    let text = input_file::read_regular(path, MAX_CAPTURE_LEN, "a capture").map_err(|e| {
        CaptureError::Io {
            path: path.to_owned(),
            source: match e {
                InputError::Io(source) => source,
                other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
            },
        }
    })?;
    parse(path, &text)
}

/// Parse capture `text` (what [`read`] reads; `path` names it in errors).
///
/// # Errors
/// As [`read`].
pub fn parse(path: &Path, text: &[u8]) -> Result<Capture, CaptureError> {
    let bad = |line: usize, reason: String| CaptureError::Record {
        path: path.to_owned(),
        line,
        reason,
    };
    let mut capture = Capture::default();
    let mut header = None;
    let ends_in_newline = text.last() == Some(&b'\n');
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // `split` yields an empty piece after a final newline.
    let count = if ends_in_newline {
        lines.len() - 1
    } else {
        lines.len()
    };
    for (i, line) in lines.iter().take(count).enumerate() {
        let number = i + 1;
        let last = number == count;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let wire: Wire = match serde_json::from_slice(line) {
            Ok(w) => w,
            Err(_) if last && !ends_in_newline => {
                capture.truncated = Some((number, line.len()));
                break;
            }
            Err(e) => return Err(bad(number, e.to_string())),
        };
        if header.is_none() {
            match wire {
                Wire::Header(h) => {
                    if h.format != FORMAT {
                        return Err(CaptureError::Format {
                            path: path.to_owned(),
                            reason: format!("format `{}`, not `{FORMAT}`", h.format),
                        });
                    }
                    if h.version > VERSION {
                        return Err(CaptureError::Format {
                            path: path.to_owned(),
                            reason: format!(
                                "capture version {} is newer than this serialtwin reads ({VERSION})",
                                h.version
                            ),
                        });
                    }
                    header = Some(h);
                    continue;
                }
                _ => {
                    return Err(CaptureError::Format {
                        path: path.to_owned(),
                        reason: "not a serialtwin capture: the first record is not a header".into(),
                    });
                }
            }
        }
        match Record::from_wire(wire).map_err(|e| bad(number, e))? {
            Some(r) => capture.records.push(r),
            None => capture.skipped += 1,
        }
    }
    capture.header = header.ok_or_else(|| CaptureError::Format {
        path: path.to_owned(),
        reason: "empty: no capture header".into(),
    })?;
    Ok(capture)
}

/// One thread that writes any number of capture files, so recording a fleet of a thousand ports
/// costs one thread, not a thousand.
///
/// Each [`CaptureWriter`] it [creates](Self::create) hands its lines to that thread, which
/// writes each whole line with one `write(2)` as soon as it comes. The thread ends when the
/// recorder and every writer it made are gone. Clones share the thread.
#[derive(Clone, Debug)]
pub struct Recorder {
    /// Messages for the writer thread.
    tx: mpsc::Sender<Message>,
    /// The next file's id.
    next: Arc<AtomicU64>,
}

/// What the writer thread is asked to do.
enum Message {
    /// Take over a file whose header is written.
    Open(u64, std::fs::File),
    /// Write one record line to a file.
    Line(u64, String),
    /// Flush and close a file; the first write error it met goes back (if anyone listens).
    Close(u64, mpsc::Sender<io::Result<()>>),
}

/// A file the writer thread holds.
struct Open {
    file: std::fs::File,
    /// The first write error: later lines are dropped, `close` reports it.
    failed: Option<io::Error>,
}

impl Recorder {
    /// A recorder with its writer thread.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn new() -> io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || write_files(&rx))?;
        Ok(Self {
            tx,
            next: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Create `path`, a new file (replacing a regular file there only with
    /// [`Existing::Replace`], never a symlink, a FIFO or a device: see [`output::create`]),
    /// and write `header` into it; `t = 0` is now.
    ///
    /// Must be called within a tokio runtime, or with tokio's clock otherwise usable.
    ///
    /// # Errors
    /// [`CaptureError::Create`] if something is at `path` or the file cannot be created,
    /// [`CaptureError::Io`] if it cannot be written or the writer thread is gone.
    pub fn create(
        &self,
        path: impl Into<PathBuf>,
        header: &Header,
        existing: Existing,
    ) -> Result<CaptureWriter, CaptureError> {
        let path = path.into();
        let io_error = |source| CaptureError::Io {
            path: path.clone(),
            source,
        };
        let mut file = output::create(&path, existing)?;
        let mut line = serde_json::to_string(&Wire::Header(header.clone()))
            .map_err(|e| io_error(io::Error::other(e)))?;
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io_error)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.tx
            .send(Message::Open(id, file))
            .map_err(|_| io_error(io::Error::other("the capture writer thread is gone")))?;
        Ok(CaptureWriter {
            describe: None,
            inner: Arc::new(Inner {
                path,
                id,
                origin: Instant::now(),
                tx: Mutex::new(Some(self.tx.clone())),
            }),
        })
    }
}

/// The writer thread: unbuffered, each record is one write(2), in the kernel before the next.
fn write_files(rx: &mpsc::Receiver<Message>) {
    let mut files: HashMap<u64, Open> = HashMap::new();
    for message in rx {
        match message {
            Message::Open(id, file) => {
                files.insert(id, Open { file, failed: None });
            }
            Message::Line(id, line) => {
                if let Some(open) = files.get_mut(&id)
                    && open.failed.is_none()
                    && let Err(e) = open.file.write_all(line.as_bytes())
                {
                    open.failed = Some(e);
                }
            }
            Message::Close(id, done) => {
                let result =
                    files
                        .remove(&id)
                        .map_or(Ok(()), |mut open| match open.failed.take() {
                            Some(e) => Err(e),
                            None => open.file.flush(),
                        });
                let _ = done.send(result);
            }
        }
    }
}

/// Streams records to one capture file, one flushed line each, from a [`Recorder`]'s thread.
///
/// It is an [`Observer`]: frames, line events and errors a serving loop or a tap sees become
/// records. Chunks (raw reads) come through [`chunk`](Self::chunk). Clones share the file;
/// [`close`](Self::close) writes what is queued and stops.
#[derive(Clone, Debug)]
pub struct CaptureWriter {
    inner: Arc<Inner>,
    /// Says what a frame means, for its record's `what` ([`CaptureWriter::describing`]).
    describe: Option<Describe>,
}

/// One short line on what a frame means: a request (`rx`) as decoded, a reply (`tx`) as it
/// went on the wire; `None`: nothing to say. (A model's describer: Modbus says
/// `unit 1 read holding 0x006B ×3`.)
pub type Describe = fn(&[u8], Direction) -> Option<String>;

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// The file's id in the writer thread.
    id: u64,
    /// `t = 0`.
    origin: Instant,
    /// The writer thread's queue; `None` once closed.
    tx: Mutex<Option<mpsc::Sender<Message>>>,
}

impl Drop for Inner {
    /// A writer dropped without [`CaptureWriter::close`] still has its file flushed and closed.
    fn drop(&mut self) {
        if let Some(tx) = self
            .tx
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let (done, _) = mpsc::channel();
            let _ = tx.send(Message::Close(self.id, done));
        }
    }
}

impl CaptureWriter {
    /// Create `path`, a new file, and write `header` into it; `t = 0` is now. Anything
    /// already at `path` is left alone: see [`create_with`](Self::create_with). The file gets
    /// a writer thread of its own; a [`Recorder`] shares one among many files.
    ///
    /// Must be called within a tokio runtime, or with tokio's clock otherwise usable.
    ///
    /// # Errors
    /// [`CaptureError::Create`] if something is at `path` or the file cannot be created,
    /// [`CaptureError::Io`] if it cannot be written.
    pub fn create(path: impl Into<PathBuf>, header: &Header) -> Result<Self, CaptureError> {
        Self::create_with(path, header, Existing::Refuse)
    }

    /// As [`create`](Self::create), replacing a regular file at `path` with
    /// [`Existing::Replace`] (never a symlink, a FIFO or a device: see [`output::create`]).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub fn create_with(
        path: impl Into<PathBuf>,
        header: &Header,
        existing: Existing,
    ) -> Result<Self, CaptureError> {
        let path = path.into();
        let recorder = Recorder::new().map_err(|source| CaptureError::Io {
            path: path.clone(),
            source,
        })?;
        recorder.create(path, header, existing)
    }

    /// The capture file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// `at` as a capture time.
    #[must_use]
    pub fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.inner.origin)
    }

    /// Record `record`.
    pub fn record(&self, record: &Record) {
        self.write_line(record.to_json());
    }

    /// Give each `frame` record a `what`: what `describe` says the frame means, for people
    /// reading the capture (replay and learn never read it). Clones made after this share it.
    #[must_use]
    pub fn describing(mut self, describe: Describe) -> Self {
        self.describe = Some(describe);
        self
    }

    fn write_line(&self, mut line: String) {
        line.push('\n');
        if let Some(tx) = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            // A failed write is reported by `close`.
            let _ = tx.send(Message::Line(self.inner.id, line));
        }
    }

    /// Record bytes exactly as one read returned them.
    pub fn chunk(&self, at: Instant, dir: Direction, bytes: Bytes) {
        self.record(&Record::Chunk(Data {
            t: self.since_start(at),
            dir,
            bytes,
        }));
    }

    /// Write what is queued and stop recording; later records are dropped.
    ///
    /// # Errors
    /// The first write error met on this file.
    pub fn close(&self) -> Result<(), CaptureError> {
        let tx = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(tx) = tx else {
            return Ok(());
        };
        let io_error = |source| CaptureError::Io {
            path: self.inner.path.clone(),
            source,
        };
        let (done, result) = mpsc::channel();
        tx.send(Message::Close(self.inner.id, done))
            .map_err(|_| io_error(io::Error::other("the capture writer thread is gone")))?;
        match result.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io_error(e)),
            Err(_) => Err(io_error(io::Error::other(
                "the capture writer thread ended",
            ))),
        }
    }
}

impl Observer for CaptureWriter {
    fn observe(&self, o: &Observation) {
        let t = self.since_start(o.at);
        let record = match &o.seen {
            Seen::Frame(dir, bytes) => {
                let data = Data {
                    t,
                    dir: *dir,
                    bytes: bytes.clone(),
                };
                let mut wire = data.to_wire();
                wire.what = self.describe.and_then(|d| d(bytes, *dir));
                self.write_line(serde_json::to_string(&Wire::Frame(wire)).unwrap_or_default());
                return;
            }
            Seen::Event(event) => Record::Event {
                t,
                event: event.clone(),
            },
            Seen::FrameError(e) => Record::Error {
                t,
                message: format!("frame error: {e}"),
            },
            Seen::HandlerError(e) => Record::Error {
                t,
                message: format!("device error: {e}"),
            },
            Seen::Fault(kind) => Record::Error {
                t,
                message: format!("fault: {kind:?}"),
            },
        };
        self.record(&record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `capture = "/dev/zero"` in a replay device (a config the `config` fuzz target may
    /// write): `read` read a device that never ends until memory ran out. Devices, FIFOs and
    /// directories are refused without a read (a FIFO without a writer would block the open).
    #[test]
    fn read_refuses_what_is_not_a_regular_file() {
        for path in ["/dev/zero", "/dev/null", "/"] {
            let e = read(Path::new(path)).unwrap_err();
            assert!(
                matches!(&e, CaptureError::Io { source, .. }
                    if source.kind() == io::ErrorKind::InvalidInput),
                "{path}: {e}"
            );
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let dir =
            std::env::temp_dir().join(format!("serialtwin-capture-fifo-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = read(&fifo).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(e.to_string().contains("not a regular file (a FIFO)"), "{e}");
    }

    /// Found by the `capture` fuzz target: `"t":9999999990.204517` (317 years) read as
    /// ….204518 s, written back as ….204517 and read again as ….204516.
    #[test]
    fn times_read_back_exactly_or_not_at_all() {
        let last = Duration::from_micros(2_251_799_813_685_247);
        let json = Record::Error {
            t: last,
            message: String::new(),
        }
        .to_json();
        let t: f64 = json
            .split("\"t\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(duration(t).unwrap(), last);
        for t in [2_251_799_813.685_248, 9_999_999_990.204_517, 1e300] {
            assert!(duration(t).unwrap_err().contains("71 years"), "{t}");
        }
    }

    #[test]
    fn times_have_microsecond_precision() {
        for micros in [0, 1, 101_012, 300_000, 3_600_000_001] {
            let d = Duration::from_micros(micros);
            let json = Record::Error {
                t: d,
                message: String::new(),
            }
            .to_json();
            let t = json
                .split("\"t\":")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap();
            assert!(t.split('.').nth(1).is_none_or(|f| f.len() <= 6), "{json}");
            assert_eq!(duration(t.parse().unwrap()).unwrap(), d);
        }
    }
}
