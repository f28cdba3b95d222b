//! A recorded NMEA log played as a receiver: gpsfake's format, one cycle per beat.
//!
//! gpsfake's logs (gpsd's `test/daemon/*.log`, or what `gpspipe -R` records) are sentences one
//! to a line, with `#` comment lines: a header (`# Name:`, ...) and magic comments, of which
//! `# Serial: 4800 8N1` sets the line speed (gps/fake.py `TestLoad`, gpsfake(1) "MAGIC
//! COMMENTS"). gpsfake writes the sentences one after another and starts over at the end
//! (`-1`: once); a real receiver sends a burst per fix instead, so the player cuts the log into
//! cycles — a cycle starts at each sentence with the tag the log starts with — and sends one
//! cycle per beat, paced at the line's speed, from the start again after the last
//! (`log_repeat = false`: silence after the last).
//!
//! Sentences go out as recorded: one whose checksum verifies is pushed without it and checked
//! again by the framer (the `break-crc` fault and traces then work as for any sentence); one
//! without a checksum, or with a wrong one, is sent byte for byte, as the recording has it.

use std::convert::Infallible;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use serialtwin_core::{Context, Device, Framer, Framing, LineConfig, Replies};

use super::framer::{self, NmeaFramer};

/// One recorded cycle: each sentence as it is to be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Recorded {
    /// A sentence whose checksum verifies, without it: the framer adds it again.
    Sentence(Bytes),
    /// A line sent byte for byte (CR LF added), its checksum missing or wrong.
    Raw(Bytes),
}

/// The longest log [`read`] reads: 64 MiB, days of sentences at 1 Hz, and a bound on what a
/// file still growing can make it hold.
pub const MAX_LOG_LEN: u64 = 64 << 20;

/// The bytes of the log at `path`: a regular file of at most [`MAX_LOG_LEN`] bytes
/// (`serialtwin_core::input_file`: `/dev/zero` never ends, a FIFO blocks its reader).
///
/// # Errors
/// Why not, in one line.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    serialtwin_core::input_file::read_regular(path, MAX_LOG_LEN, "a log").map_err(|e| e.to_string())
}

/// A parsed log: its cycles and the speed its `# Serial:` comment names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    cycles: Vec<Vec<Recorded>>,
    /// The baud of a `# Serial:` magic comment, if the log has one.
    pub serial_baud: Option<u32>,
}

/// Why a log cannot be played: the 1-based line and the reason.
pub type LogError = (usize, String);

impl Log {
    /// Parse gpsfake's format.
    ///
    /// # Errors
    /// A line that is neither a comment nor an NMEA sentence (a binary log: gpsfake plays
    /// those, this player does not), a bad `# Serial:` comment, or no sentence at all.
    pub fn parse(text: &[u8]) -> Result<Self, LogError> {
        let framer = NmeaFramer::new();
        let mut cycles: Vec<Vec<Recorded>> = Vec::new();
        let mut first_tag: Option<Vec<u8>> = None;
        let mut serial_baud = None;
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            if line.starts_with(b"#") {
                if let Some(at) = line.windows(7).position(|w| w == b"Serial:") {
                    serial_baud = Some(serial(&line[at + 7..]).ok_or_else(|| {
                        (
                            i + 1,
                            "a `# Serial:` comment must read like `4800 8N1`".into(),
                        )
                    })?);
                }
                continue;
            }
            if !matches!(line[0], b'$' | b'!') || !line.iter().all(|b| (0x20..0x7f).contains(b)) {
                return Err((
                    i + 1,
                    "not an NMEA sentence (only text NMEA logs can be played)".into(),
                ));
            }
            let tag = line.split(|&b| b == b',').next().unwrap_or(line).to_vec();
            let first = first_tag.get_or_insert_with(|| tag.clone());
            if *first == tag || cycles.is_empty() {
                cycles.push(Vec::new());
            }
            let recorded = match framer.check(line) {
                serialtwin_core::Checksum::Valid { payload } => {
                    Recorded::Sentence(Bytes::copy_from_slice(&line[..payload]))
                }
                _ => Recorded::Raw(Bytes::copy_from_slice(line)),
            };
            if let Some(cycle) = cycles.last_mut() {
                cycle.push(recorded);
            }
        }
        if cycles.is_empty() {
            return Err((1, "the log has no sentences".into()));
        }
        Ok(Self {
            cycles,
            serial_baud,
        })
    }

    /// How many cycles it has.
    #[must_use]
    pub fn cycles(&self) -> usize {
        self.cycles.len()
    }

    /// The bytes of its largest cycle on the wire.
    #[must_use]
    pub fn largest_cycle_bytes(&self) -> usize {
        self.cycles
            .iter()
            .map(|c| {
                c.iter()
                    .map(|r| match r {
                        Recorded::Sentence(s) => s.len() + "*hh\r\n".len(),
                        Recorded::Raw(s) => s.len() + 2,
                    })
                    .sum::<usize>()
            })
            .max()
            .unwrap_or(0)
    }
}

/// The baud of `4800 8N1`, if the rest reads as gpsfake requires.
fn serial(spec: &[u8]) -> Option<u32> {
    let spec = std::str::from_utf8(spec).ok()?;
    let mut words = spec.split_whitespace();
    let baud = words.next()?.parse().ok()?;
    let format = words.next()?.as_bytes();
    (format.len() == 3
        && matches!(format[0], b'7' | b'8')
        && matches!(format[1], b'N' | b'O' | b'E')
        && matches!(format[2], b'1' | b'2'))
    .then_some(baud)
}

/// A receiver playing a [`Log`].
#[derive(Clone, Debug)]
pub struct LogPlayer {
    log: Log,
    baud: u32,
    period: Duration,
    repeat: bool,
}

impl LogPlayer {
    /// Play `log` at `baud`, one cycle per `period`; after the last cycle, from the first
    /// again if `repeat`.
    #[must_use]
    pub fn new(log: Log, baud: u32, period: Duration, repeat: bool) -> Self {
        Self {
            log,
            baud,
            period,
            repeat,
        }
    }
}

impl Device for LogPlayer {
    type Error = Infallible;

    fn framing(&self) -> Framing {
        framer::framing()
    }

    fn line(&self) -> LineConfig {
        LineConfig::uart(self.baud)
    }

    /// A recording obeys nobody: client writes are heard and ignored.
    fn handle(&mut self, _: &[u8], _: &mut Context, _: &mut Replies) -> Result<(), Infallible> {
        Ok(())
    }

    fn talks_every(&self) -> Option<Duration> {
        Some(self.period)
    }

    /// Cycle `n - 1` of the log on the `n`th beat after the clock's start (counted on the
    /// clock, as the synthesised receiver counts its cycles).
    fn talk(&mut self, ctx: &mut Context, replies: &mut Replies) {
        let clock = ctx.clock();
        let start = clock
            .epoch()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let step = self.period.as_secs_f64() * clock.speed();
        let since = (clock.unix_seconds_f64() - start).max(0.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a non-negative count of cycles, saturating far beyond year 9999"
        )]
        let beat = if step > 0.0 {
            (since / step).round() as usize
        } else {
            1
        };
        let Some(index) = beat.checked_sub(1) else {
            return;
        };
        let n = self.log.cycles.len();
        if index >= n && !self.repeat {
            return;
        }
        for recorded in &self.log.cycles[index % n] {
            match recorded {
                Recorded::Sentence(s) => replies.push(s.clone()),
                Recorded::Raw(s) => {
                    let mut line = s.to_vec();
                    line.extend_from_slice(b"\r\n");
                    replies.push_raw(line);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serialtwin_core::SimClock;

    use super::*;

    const LOG: &[u8] = b"# Name: a test drive\r\n# Serial: 4800 8N1\r\n\
        $GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.13,309.6,150324,,,A*6E\r\n\
        $GPGGA,123519.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,47.0,M,,*61\r\n\
        $GPRMC,123520.00,A,4807.0380,N,01131.0000,E,0.13,309.6,150324,,,A*66\n\
        $GPGGA,123520.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,47.0,M,,\n\
        $GPGLL,4807.0380,N,01131.0000,E,123520.00,A,A*00\n";

    fn said(player: &mut LogPlayer, ctx: &mut Context) -> Vec<(bool, String)> {
        let mut replies = Replies::new();
        player.talk(ctx, &mut replies);
        replies
            .drain()
            .map(|r| (r.raw, String::from_utf8(r.bytes.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn a_log_is_cut_into_cycles_at_its_first_tag() {
        let log = Log::parse(LOG).unwrap();
        assert_eq!(log.cycles(), 2);
        assert_eq!(log.serial_baud, Some(4800));
        assert_eq!(log.cycles[1].len(), 3);
        assert!(matches!(log.cycles[1][1], Recorded::Raw(_)));
        assert_eq!(
            Log::parse(b"# only\n\n").unwrap_err(),
            (1, "the log has no sentences".into())
        );
        assert_eq!(Log::parse(b"$GPGGA,1\n\xb5b\x01\n").unwrap_err().0, 2);
        assert_eq!(Log::parse(b"# Serial: fast\n$GPGGA\n").unwrap_err().0, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_cycle_per_beat_as_recorded_then_again_or_silence() {
        for repeat in [true, false] {
            let mut player = LogPlayer::new(
                Log::parse(LOG).unwrap(),
                4800,
                Duration::from_secs(1),
                repeat,
            );
            let mut ctx = Context::for_test(SimClock::at_unix(1_000, 1.0));
            let mut heard = Vec::new();
            for _ in 0..3 {
                tokio::time::advance(Duration::from_secs(1)).await;
                heard.push(said(&mut player, &mut ctx));
            }
            assert_eq!(
                heard[0],
                [
                    (
                        false,
                        "$GPRMC,123519.00,A,4807.0380,N,01131.0000,E,0.13,309.6,150324,,,A".into()
                    ),
                    (
                        false,
                        "$GPGGA,123519.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,47.0,M,,"
                            .into()
                    )
                ]
            );
            assert_eq!(
                heard[1][1..],
                [
                    (
                        true,
                        "$GPGGA,123520.00,4807.0380,N,01131.0000,E,1,08,0.9,545.4,M,47.0,M,,\r\n"
                            .into()
                    ),
                    (
                        true,
                        "$GPGLL,4807.0380,N,01131.0000,E,123520.00,A,A*00\r\n".into()
                    )
                ]
            );
            if repeat {
                assert_eq!(heard[2], heard[0]);
            } else {
                assert!(heard[2].is_empty());
            }
        }
    }
}
