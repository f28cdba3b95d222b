//! Injected faults: what a flaky device or a bad cable does to replies.
//!
//! Faults are applied by the serving loop to encoded replies, after the device and before the
//! line's pacing, so every model gets them. A [`FaultRule`] says what happens, to which replies
//! (all, or those answering requests that start with a given command) and when (with a
//! probability drawn from the port's seeded random source, or to the next N replies).

use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// The longest duration a command takes (an unplug, a delay fault): a typo of a few more digits
/// must not leave a port unplugged for years, nor overflow a timer.
pub const MAX_DURATION: Duration = Duration::from_hours(24);

/// What happens to a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// The reply is never sent.
    Drop,
    /// One byte of the reply (not its final terminator byte) is changed.
    Corrupt,
    /// The reply's checksum is wrong (the framer says where it is; without one, the byte
    /// before the terminator is changed).
    BreakChecksum,
    /// Only the first part of the reply is sent.
    Truncate,
    /// A few random bytes arrive before the reply.
    Noise,
    /// The reply is sent twice.
    Duplicate,
    /// The reply is sent after this extra delay (past a client's timeout).
    Delay(Duration),
    /// The port disappears, as a USB adapter pulled out does, and comes back after this long
    /// under the same link.
    Unplug(Duration),
}

impl FaultKind {
    /// Parse `drop`, `corrupt`, `break-crc`, `truncate`, `noise`, `duplicate`, `delay:<ms>`,
    /// `unplug:<ms>`.
    ///
    /// # Errors
    /// A message naming what was not understood.
    pub fn parse(s: &str) -> Result<Self, String> {
        let ms = |v: &str| {
            let ms = v
                .trim_end_matches("ms")
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("bad duration {v:?} in fault {s:?} (milliseconds)"))?;
            if ms > MAX_DURATION {
                return Err(format!(
                    "duration {v:?} in fault {s:?} is longer than the most a fault takes ({}h)",
                    MAX_DURATION.as_secs() / 3600
                ));
            }
            Ok(ms)
        };
        Ok(match s.split_once(':') {
            None => match s {
                "drop" => Self::Drop,
                "corrupt" => Self::Corrupt,
                "break-crc" | "break-checksum" => Self::BreakChecksum,
                "truncate" => Self::Truncate,
                "noise" => Self::Noise,
                "duplicate" => Self::Duplicate,
                _ => return Err(unknown(s)),
            },
            Some(("delay", v)) => Self::Delay(ms(v)?),
            Some(("unplug", v)) => Self::Unplug(ms(v)?),
            Some(_) => return Err(unknown(s)),
        })
    }
}

/// The fault kinds, as [`FaultKind::parse`] reads them.
const FAULT_KINDS: &str =
    "drop, corrupt, break-crc, truncate, noise, duplicate, delay:<ms>, unplug:<ms>";

/// Not a fault kind: the message lists the ones there are.
fn unknown(s: &str) -> String {
    format!("unknown fault {s:?} (known: {FAULT_KINDS})")
}

/// When a rule fires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum When {
    /// Each matching reply with this probability (0.0 to 1.0).
    Probability(f64),
    /// The next this many matching replies; then the rule is spent.
    Next(u32),
}

/// One fault rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// What happens.
    pub kind: FaultKind,
    /// When.
    pub when: When,
    /// Only replies to requests starting with these bytes (`None`: every reply, unprompted
    /// frames included).
    pub command: Option<Bytes>,
    /// Only replies of the device at this address on a bus (`None`: every device's): a
    /// silent, slow or checksum-breaking unit among good ones.
    pub unit: Option<u32>,
}

impl FaultRule {
    /// `kind` for the next `n` replies.
    #[must_use]
    pub fn next(kind: FaultKind, n: u32) -> Self {
        Self {
            kind,
            when: When::Next(n),
            command: None,
            unit: None,
        }
    }

    /// `kind` for each reply with probability `p`.
    #[must_use]
    pub fn probability(kind: FaultKind, p: f64) -> Self {
        Self {
            kind,
            when: When::Probability(p),
            command: None,
            unit: None,
        }
    }

    /// Only for replies to requests starting with `command`.
    #[must_use]
    pub fn for_command(mut self, command: impl Into<Bytes>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// Only for replies of the device at `unit` on a bus.
    #[must_use]
    pub fn for_unit(mut self, unit: u32) -> Self {
        self.unit = Some(unit);
        self
    }

    fn matches(&self, request: Option<&[u8]>, unit: Option<u32>) -> bool {
        let command = match (&self.command, request) {
            (None, _) => true,
            (Some(c), Some(r)) => r.starts_with(c),
            (Some(_), None) => false,
        };
        command && (self.unit.is_none() || self.unit == unit)
    }

    fn spent(&self) -> bool {
        matches!(self.when, When::Next(0))
    }
}

/// The fault rules of one port.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    /// No faults.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a rule.
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    /// Remove every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Whether there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a rule is for one device of a bus: the caller then says whose each reply is.
    #[must_use]
    pub fn per_unit(&self) -> bool {
        self.rules.iter().any(|r| r.unit.is_some())
    }

    /// The faults that hit one reply to `request` (`None`: unprompted), consuming `Next`
    /// counts. Rules for one unit of a bus never hit (see [`Faults::draw_for`]).
    pub fn draw(&mut self, request: Option<&[u8]>, rng: &mut fastrand::Rng) -> Vec<FaultKind> {
        self.draw_for(request, None, rng)
    }

    /// [`Faults::draw`] for a reply of the device at `unit` on a bus.
    pub fn draw_for(
        &mut self,
        request: Option<&[u8]>,
        unit: Option<u32>,
        rng: &mut fastrand::Rng,
    ) -> Vec<FaultKind> {
        let mut hit = Vec::new();
        for rule in &mut self.rules {
            if !rule.matches(request, unit) {
                continue;
            }
            let fires = match &mut rule.when {
                When::Probability(p) => rng.f64() < *p,
                When::Next(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                When::Next(_) => false,
            };
            if fires {
                hit.push(rule.kind);
            }
        }
        self.rules.retain(|r| !r.spent());
        hit
    }
}

/// A byte that is not a common frame delimiter, so damage does not invent frame boundaries.
fn damage(byte: u8, rng: &mut fastrand::Rng) -> u8 {
    loop {
        let b = byte ^ rng.u8(1..=255);
        if !matches!(b, b'\r' | b'\n' | b'(' | 0) {
            return b;
        }
    }
}

/// Apply the byte-level faults in `kinds` to one encoded reply; returns the chunks to send
/// (empty: dropped). `checksum` is where the framer says the checksum is.
pub(crate) fn apply(
    kinds: &[FaultKind],
    encoded: &Bytes,
    checksum: Option<&Range<usize>>,
    rng: &mut fastrand::Rng,
) -> Vec<Bytes> {
    let mut bytes = BytesMut::from(encoded.as_ref());
    let mut copies = 1;
    let mut noise = false;
    for kind in kinds {
        match kind {
            FaultKind::Drop => return Vec::new(),
            FaultKind::Corrupt if bytes.len() > 1 => {
                let i = rng.usize(..bytes.len() - 1);
                bytes[i] = damage(bytes[i], rng);
            }
            FaultKind::BreakChecksum if !bytes.is_empty() => {
                let range = checksum
                    .cloned()
                    .filter(|r| r.end <= bytes.len() && !r.is_empty())
                    .unwrap_or(bytes.len().saturating_sub(2)..bytes.len().saturating_sub(1));
                for i in range {
                    bytes[i] = damage(bytes[i], rng);
                }
            }
            FaultKind::Truncate if bytes.len() > 1 => {
                let keep = rng.usize(1..bytes.len());
                bytes.truncate(keep);
            }
            FaultKind::Noise => noise = true,
            FaultKind::Duplicate => copies = 2,
            _ => {}
        }
    }
    let body = bytes.freeze();
    let mut out = Vec::with_capacity(copies + 1);
    if noise {
        let n = rng.usize(1..=8);
        let junk: Vec<u8> = (0..n).map(|_| damage(rng.u8(..), rng)).collect();
        out.push(Bytes::from(junk));
    }
    for _ in 0..copies {
        out.push(body.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_faults() {
        let mut rng = fastrand::Rng::with_seed(3);
        let reply = Bytes::from_static(b"(ACK9 \r");
        assert!(apply(&[FaultKind::Drop], &reply, None, &mut rng).is_empty());
        let dup = apply(&[FaultKind::Duplicate], &reply, None, &mut rng);
        assert_eq!(dup, [reply.clone(), reply.clone()]);
        let broken = apply(&[FaultKind::BreakChecksum], &reply, Some(&(4..6)), &mut rng);
        assert_eq!(&broken[0][..4], b"(ACK");
        assert_ne!(&broken[0][4..6], b"9 ");
        assert_eq!(broken[0][6], b'\r');
        let corrupt = apply(&[FaultKind::Corrupt], &reply, None, &mut rng);
        assert_eq!(corrupt[0].len(), reply.len());
        assert_eq!(
            corrupt[0]
                .iter()
                .zip(reply.iter())
                .filter(|(a, b)| a != b)
                .count(),
            1
        );
        let cut = apply(&[FaultKind::Truncate], &reply, None, &mut rng);
        assert!(cut[0].len() < reply.len() && reply.starts_with(&cut[0]));
        let noisy = apply(&[FaultKind::Noise], &reply, None, &mut rng);
        assert_eq!(noisy.len(), 2);
        assert!(!noisy[0].contains(&b'(') && noisy[1] == reply);
    }
}
