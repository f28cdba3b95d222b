//! The line: what a real wire does to bytes between the device and the client.
//!
//! It sits outside the device, after the framer's encoder, so every model gets it for free and a
//! device's own tests need none of it. It knows the device's real baud rate (and what happens
//! when the client's differs), its character format, pacing at that speed and format, and a
//! response latency.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::port::settings::{CharFormat, LineSettings};

/// Longest batch of paced bytes released at once: pacing stays exact at 115200 baud too.
const PACING_BATCH: Duration = Duration::from_millis(2);

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
    /// Time before the first byte of an answer.
    pub latency: Latency,
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
            latency: Latency::None,
            frame_timeout: Some(UART_FRAME_TIMEOUT),
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
    /// not understood at that speed, garbage when it is at the wrong one, and with pacing, batches
    /// released as their last bit would leave the wire, starting when the wire is free (after
    /// `now` and after what was scheduled before). Without pacing, one piece at `now`.
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
        // The device's own speed and format: a client's choice of stop bits does not change
        // how fast the device's UART sends.
        let baud = self.config.baud.unwrap_or(settings.baud);
        let bits = self
            .config
            .format
            .map_or_else(|| settings.bits_per_char(), |f| f.bits_per_char());
        let per_byte = Duration::from_secs_f64(f64::from(bits) / f64::from(baud.max(1)));
        let per_batch = usize::try_from(PACING_BATCH.as_nanos() / per_byte.as_nanos().max(1))
            .unwrap_or(1)
            .max(1);
        let start = self.busy_until.filter(|&t| t > now).unwrap_or(now);
        let mut sent = 0usize;
        while sent < bytes.len() {
            let done = (sent + per_batch).min(bytes.len());
            // A byte leaves once its last bit has been on the wire.
            let due = start + per_byte * u32::try_from(done).unwrap_or(u32::MAX);
            piece(due, bytes.slice(sent..done));
            sent = done;
            self.busy_until = Some(due);
        }
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
