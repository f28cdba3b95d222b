//! The line: what a real wire does to bytes between the device and the client.
//!
//! It sits outside the device, after the framer's encoder, so every model gets it for free and a
//! device's own tests need none of it. It knows the device's real baud rate (and what happens
//! when the client's differs), its character format, pacing at that speed and format, and a
//! response latency.
//!
//! A paced reply reaches the client as the device's adapter hands it to the host (see
//! [`Adapter`]): in USB chunks, or whole frames from a native UART. The line only says *when*
//! each piece is due ([`Line::schedule`]); whoever serves the port writes it then, from the
//! port's task or from its lane, with the same schedule.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::port::settings::{CharFormat, LineSettings};

/// Silence between two frames on a native UART line, in character times: Modbus RTU's
/// inter-frame gap, which a receiver timing gaps needs to tell frames apart.
const FRAME_GAP_CHARS: f64 = 3.5;

/// How paced output reaches the client: through which adapter the host hears the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    /// A USB-serial adapter, as most hosts reach these devices: it hands bytes over in chunks,
    /// when [`Adapter::CHUNK_BYTES`] have come in or when its latency timer (`chunk`) runs
    /// out. Each byte reaches the client no earlier than it has left the wire and no later
    /// than one `chunk` after; a reply's last chunk goes at its wire end. `chunk` of 1 ms is
    /// an FTDI set to `low_latency`.
    Usb {
        /// The chunk interval (the adapter's latency timer), [`Adapter::MIN_CHUNK`] to
        /// [`Adapter::MAX_CHUNK`] (a value outside is taken as the nearest of the two).
        chunk: Duration,
    },
    /// A native UART (a motherboard's `ttyS0`, an RS-485 card): each frame is written in one
    /// piece when its last byte has left the wire, and frames are at least 3.5 character times
    /// apart, for protocols that time gaps (Modbus RTU). A pty cannot promise gaps between
    /// characters below the scheduler's jitter, so a frame is never split.
    Native,
}

impl Adapter {
    /// The most bytes a USB-serial adapter hands the host in one chunk: a full-speed bulk
    /// packet is 64 bytes, and an FTDI chip spends two of them on its modem and line status.
    pub const CHUNK_BYTES: usize = 62;

    /// An untuned FTDI adapter's latency timer: the default [`Adapter::Usb`] chunk interval.
    pub const DEFAULT_CHUNK: Duration = Duration::from_millis(16);

    /// The shortest chunk interval: an FTDI adapter set to `low_latency`.
    pub const MIN_CHUNK: Duration = Duration::from_millis(1);

    /// The longest chunk interval: an FTDI latency timer is one byte of milliseconds.
    pub const MAX_CHUNK: Duration = Duration::from_millis(255);
}

impl Default for Adapter {
    fn default() -> Self {
        Self::Usb {
            chunk: Self::DEFAULT_CHUNK,
        }
    }
}

/// A UART line's default [`LineConfig::frame_timeout`]: long enough for a person typing a
/// command into a terminal, far longer than any program takes between the bytes of one write.
pub(crate) const UART_FRAME_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a device waits before it starts to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Latency {
    /// Answer at once.
    #[default]
    None,
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between `min` and `max`, drawn from the port's seeded random source.
    Range {
        /// Shortest latency.
        min: Duration,
        /// Longest latency.
        max: Duration,
    },
}

impl Latency {
    /// Draw one latency.
    #[must_use]
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            Self::None => Duration::ZERO,
            Self::Fixed(d) => d,
            Self::Range { min, max } if max > min => {
                let span = u64::try_from(max.saturating_sub(min).as_nanos()).unwrap_or(u64::MAX);
                min + Duration::from_nanos(rng.u64(0..=span))
            }
            Self::Range { min, .. } => min,
        }
    }
}

/// What the device's UART makes of a client that runs at another baud rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mismatch {
    /// Nothing: the pty delivers bytes whatever the settings (a plain port).
    #[default]
    Ignore,
    /// The device hears nothing it can decode and stays silent.
    Silence,
    /// The client gets garbage bytes instead of the device's answers, as a UART at the wrong
    /// speed produces.
    Garbage,
}

/// A device's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LineConfig {
    /// The baud rate the device really runs at. `None`: whatever the client chooses.
    pub baud: Option<u32>,
    /// The character format the device's UART really uses, which sets how long each byte takes
    /// on the wire when pacing. `None`: the client's stop bits, 8 data bits and no parity (a
    /// pty never shows a client's parity or data bits).
    pub format: Option<CharFormat>,
    /// What happens when the client's baud rate differs from `baud`.
    pub mismatch: Mismatch,
    /// Release output no faster than the line's speed would carry it.
    pub pace: bool,
    /// How paced output reaches the client.
    pub adapter: Adapter,
    /// Time before the first byte of an answer.
    pub latency: Latency,
    /// The client hears its own bytes back, before any answer, as through an RS-485 adapter
    /// that echoes what it sends (pymodbus `handle_local_echo=True` expects it).
    pub echo: bool,
    /// How long the device's UART keeps a partial request: bytes of an incomplete frame older
    /// than this are discarded when new bytes arrive, as UART firmware resets its receive
    /// buffer after a gap (a client killed half-way through a request must not spoil the next
    /// client's). `None`: kept however old (a plain port).
    pub frame_timeout: Option<Duration>,
}

impl LineConfig {
    /// A real 8N1 UART line at `baud`: paced, answering a client at another speed with garbage.
    #[must_use]
    pub fn uart(baud: u32) -> Self {
        Self {
            baud: Some(baud),
            format: Some(CharFormat::N81),
            mismatch: Mismatch::Garbage,
            pace: true,
            adapter: Adapter::default(),
            latency: Latency::None,
            frame_timeout: Some(UART_FRAME_TIMEOUT),
            echo: false,
        }
    }

    /// Whether a client at `settings` is at the wrong speed for this line.
    #[must_use]
    pub fn mismatched(&self, settings: &LineSettings) -> bool {
        self.mismatch != Mismatch::Ignore && self.baud.is_some_and(|b| b != settings.baud)
    }
}

/// The line stage of one port.
#[derive(Debug)]
pub struct Line {
    config: LineConfig,
    /// When the wire is free again (the end of the last paced byte).
    busy_until: Option<Instant>,
}

impl Line {
    /// A line with `config`.
    #[must_use]
    pub fn new(config: LineConfig) -> Self {
        Self {
            config,
            busy_until: None,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &LineConfig {
        &self.config
    }

    /// Whether incoming bytes from a client at `settings` reach the device. Under
    /// [`Mismatch::Silence`] a client at the wrong speed is not heard at all; under
    /// [`Mismatch::Garbage`] the device answers and its answer arrives garbled.
    #[must_use]
    pub fn accepts_input(&self, settings: &LineSettings) -> bool {
        !(self.config.mismatched(settings) && self.config.mismatch == Mismatch::Silence)
    }

    /// Send `bytes` (an encoded reply) to `io` as the wire would, given the client's `settings`:
    /// each piece of [`Line::schedule`] written at its time.
    ///
    /// # Errors
    /// Any I/O error writing to `io`.
    pub async fn transmit<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        bytes: &[u8],
        settings: &LineSettings,
        rng: &mut fastrand::Rng,
    ) -> std::io::Result<()> {
        let mut pieces = Vec::new();
        self.schedule(
            Bytes::copy_from_slice(bytes),
            settings,
            rng,
            Instant::now(),
            |at, piece| pieces.push((at, piece)),
        );
        for (at, piece) in pieces {
            tokio::time::sleep_until(at).await;
            io.write_all(&piece).await?;
            io.flush().await?;
        }
        Ok(())
    }

    /// What the wire makes of `bytes` (an encoded reply) for a client at `settings`, as pieces
    /// each to be written at its instant, handed to `piece` in order: nothing when the device is
    /// not understood at that speed, garbage when it is at the wrong one, and with pacing, the
    /// pieces the [`Adapter`] hands the host, starting when the wire is free (after `now` and
    /// after what was scheduled before). Without pacing, one piece at `now`.
    pub fn schedule(
        &mut self,
        bytes: Bytes,
        settings: &LineSettings,
        rng: &mut fastrand::Rng,
        now: Instant,
        mut piece: impl FnMut(Instant, Bytes),
    ) {
        if bytes.is_empty() {
            return;
        }
        let bytes = if self.config.mismatched(settings) {
            match self.config.mismatch {
                Mismatch::Silence | Mismatch::Ignore => return,
                Mismatch::Garbage => Bytes::from(garble(&bytes, rng)),
            }
        } else {
            bytes
        };
        if !self.config.pace {
            piece(now, bytes);
            return;
        }
        let per_byte = self.char_time(settings);
        // The wire is free after what was scheduled before (and, for a native UART, after
        // the silence a frame needs before it).
        let free = match (self.busy_until, self.config.adapter) {
            (Some(busy), Adapter::Native) => busy + per_byte.mul_f64(FRAME_GAP_CHARS),
            (Some(busy), Adapter::Usb { .. }) => busy,
            (None, _) => now,
        };
        let start = free.max(now);
        // A byte has arrived once its last bit has been on the wire.
        let end_of = |i: usize| start + per_byte * u32::try_from(i).unwrap_or(u32::MAX);
        let end = end_of(bytes.len());
        self.busy_until = Some(end);
        let Adapter::Usb { chunk } = self.config.adapter else {
            piece(end, bytes);
            return;
        };
        let chunk = chunk.clamp(Adapter::MIN_CHUNK, Adapter::MAX_CHUNK);
        // When the adapter last handed bytes over: its latency timer counts from there.
        let mut last = start;
        let mut sent = 0usize;
        while sent < bytes.len() {
            let full = (sent + Adapter::CHUNK_BYTES).min(bytes.len());
            let first_done = end_of(sent + 1);
            // The timer runs out on the first tick that finds a byte waiting.
            let ticks = (first_done - last)
                .as_nanos()
                .div_ceil(chunk.as_nanos().max(1));
            let tick = last + chunk * u32::try_from(ticks.max(1)).unwrap_or(u32::MAX);
            let (at, upto) = if end_of(full) <= tick {
                // The packet filled (or the reply ended) before the timer ran out.
                (end_of(full), full)
            } else {
                // Every byte done by the tick: at least the first, and fewer than a packet.
                let done = (tick - start).as_nanos() / per_byte.as_nanos().max(1);
                let done = usize::try_from(done).unwrap_or(usize::MAX);
                (tick, done.clamp(sent + 1, full - 1))
            };
            piece(at, bytes.slice(sent..upto));
            sent = upto;
            last = at;
        }
    }

    /// How long one character of the device's takes on the wire: the device's own speed and
    /// format (a client's choice of stop bits does not change how fast the device's UART
    /// sends).
    fn char_time(&self, settings: &LineSettings) -> Duration {
        let baud = self.config.baud.unwrap_or(settings.baud);
        let bits = self
            .config
            .format
            .map_or_else(|| settings.bits_per_char(), |f| f.bits_per_char());
        Duration::from_secs_f64(f64::from(bits) / f64::from(baud.max(1)))
    }

    /// What was scheduled and not yet sent will not be: the wire is free from `now`.
    pub fn abort(&mut self, now: Instant) {
        self.busy_until = self.busy_until.map(|t| t.min(now));
    }
}

/// What a UART at the wrong speed makes of `bytes`: about as many bytes, none of them right.
fn garble(bytes: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    bytes.iter().map(|&b| b ^ rng.u8(1..=255)).collect()
}
