//! A unit's tables: sparse maps of bits and registers, each declared read-only or writable,
//! and registers whose value is computed at read time.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use thiserror::Error;

use super::sparse::Sparse;
use crate::modbus::data::{DataError, Encoding, Value};

/// Whether a client may write a declared bit or register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reads only; a write answers exception 02.
    #[default]
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

/// What an address inside a table's extent that nothing was declared at answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Gaps {
    /// Reads give 0, as Eastron SDM meters do (sdm-modbus `read_all` reads across gaps).
    /// Writes still answer 02: there is nothing there to write.
    #[default]
    Zero,
    /// Any access answers exception 02 (illegal data address).
    Exception,
}

/// Why a declaration was refused.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum MapError {
    /// The value would run past address 65535.
    #[error("{len} registers from {start} run past address 65535")]
    PastEnd {
        /// The first address.
        start: u16,
        /// How many.
        len: usize,
    },
    /// The register belongs to a computed value ([`Registers::set_provider`]).
    #[error("register {0} holds a computed value")]
    Computed(u16),
    /// Nothing is stored at this register.
    #[error("register {0} is not declared")]
    Undeclared(u16),
    /// The value does not encode.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// A value computed when it is read: a function of the time (a ramp, a counter), given as a
/// trait object to [`Registers::set_provider`].
///
/// It is asked once per request that reads any of its registers, so a value spanning several
/// registers is always read whole and consistent.
pub trait Provider: fmt::Debug + Send {
    /// The engineering value at `now` (the time since the serving side's clock began; any
    /// fixed origin will do).
    fn value(&mut self, now: Duration) -> Value;
}

/// A value rising (or falling) steadily: `start + per_second × now`, as a float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    /// The value at time zero.
    pub start: f64,
    /// The change per second.
    pub per_second: f64,
}

impl Provider for Ramp {
    fn value(&mut self, now: Duration) -> Value {
        Value::Float(self.start + self.per_second * now.as_secs_f64())
    }
}

/// A whole-number counter: `start + step` for every full `every` elapsed (an energy meter's
/// pulses, an uptime in seconds). With `every` zero it stays at `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The count at time zero.
    pub start: i64,
    /// Added each period.
    pub step: i64,
    /// The period.
    pub every: Duration,
}

impl Provider for Counter {
    fn value(&mut self, now: Duration) -> Value {
        let periods = now
            .as_nanos()
            .checked_div(self.every.as_nanos())
            .unwrap_or(0);
        let periods = i128::try_from(periods).unwrap_or(i128::MAX);
        Value::Int(
            i128::from(self.start).saturating_add(i128::from(self.step).saturating_mul(periods)),
        )
    }
}

/// A value swinging around `mean`: `mean + amplitude × sin(2π × now / period)` (a grid's
/// voltage over a day, a temperature).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sine {
    /// The middle of the swing.
    pub mean: f64,
    /// How far it swings either way.
    pub amplitude: f64,
    /// One full swing (zero: it stays at `mean`).
    pub period: Duration,
}

impl Provider for Sine {
    fn value(&mut self, now: Duration) -> Value {
        let period = self.period.as_secs_f64();
        if period <= 0.0 {
            return Value::Float(self.mean);
        }
        let phase = std::f64::consts::TAU * (now.as_secs_f64() / period).fract();
        Value::Float(self.mean + self.amplitude * phase.sin())
    }
}

/// A seeded random walk: from `start`, each `every` a step drawn uniformly from
/// `-step..=step`, kept within `min..=max`. The same seed gives the same walk however often
/// it is read: step `n` is drawn from the seed and `n`, never from the reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Walk {
    /// The value at time zero.
    pub start: f64,
    /// The largest step either way.
    pub step: f64,
    /// How often it steps (zero: it stays at `start`).
    pub every: Duration,
    /// The lowest it goes.
    pub min: f64,
    /// The highest it goes.
    pub max: f64,
    /// The walk's seed.
    pub seed: u64,
    /// Where it was last read: (steps taken, value), so that a read costs the steps since.
    at: (u128, f64),
}

impl Walk {
    /// A walk from `start` (kept within `min..=max`).
    #[must_use]
    pub fn new(start: f64, step: f64, every: Duration, (min, max): (f64, f64), seed: u64) -> Self {
        let start = start.clamp(min.min(max), max.max(min));
        Self {
            start,
            step,
            every,
            min: min.min(max),
            max: max.max(min),
            seed,
            at: (0, start),
        }
    }
}

impl Provider for Walk {
    fn value(&mut self, now: Duration) -> Value {
        let steps = now
            .as_nanos()
            .checked_div(self.every.as_nanos())
            .unwrap_or(0);
        if steps < self.at.0 {
            // The clock went back: walk again from the start.
            self.at = (0, self.start);
        }
        let (mut n, mut value) = self.at;
        while n < steps {
            n += 1;
            // Step n from the seed and n alone.
            let n64 = u64::try_from(n).unwrap_or(u64::MAX);
            let mut rng =
                fastrand::Rng::with_seed(self.seed ^ n64.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            value = (value + self.step * (2.0 * rng.f64() - 1.0)).clamp(self.min, self.max);
        }
        self.at = (n, value);
        Value::Float(value)
    }
}

/// The last address of `len` from `start`, if it exists.
fn last(start: u16, len: usize) -> Option<u16> {
    let len = u16::try_from(len).ok()?;
    if len == 0 {
        return None;
    }
    start.checked_add(len - 1)
}

/// `len` addresses from `start`, stopping at 65535 (a `u16` range from would overflow there).
fn addresses(start: u16, len: usize) -> impl Iterator<Item = u16> {
    (u32::from(start)..)
        .take(len)
        .map_while(|address| u16::try_from(address).ok())
}

/// The extent set, or the span from the lowest to the highest declared address.
fn extent_of<V>(set: Option<(u16, u16)>, cells: &Sparse<V>) -> Option<(u16, u16)> {
    set.or_else(|| cells.bounds())
}

/// Whether `quantity` cells from `start` lie within a table's extent, each declared unless
/// gaps read as zero: what a read of bits and of registers alike may reach.
fn readable<V>(
    extent: Option<(u16, u16)>,
    cells: &Sparse<V>,
    start: u16,
    quantity: u16,
    gaps: Gaps,
) -> bool {
    let Some(end) = last(start, quantity.into()) else {
        return false;
    };
    let Some((first, final_)) = extent_of(extent, cells) else {
        return false;
    };
    // Two binary searches, not a look-up per address: what a read of ten registers costs
    // is on the serving path of every port.
    start >= first
        && end <= final_
        && (gaps == Gaps::Zero || cells.count(start, end) == usize::from(end - start) + 1)
}

/// Coils or discrete inputs: single bits, declared one by one or in runs.
#[derive(Clone, Debug, Default)]
pub struct Bits {
    cells: Sparse<(bool, Access)>,
    /// Set by [`Bits::set_extent`]; otherwise the declared span.
    extent: Option<(u16, u16)>,
}

impl Bits {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare (or overwrite) the bit at `address`.
    pub fn set(&mut self, address: u16, value: bool, access: Access) {
        self.cells.insert(address, (value, access));
    }

    /// Declare a run of bits from `start`.
    ///
    /// # Errors
    /// [`MapError::PastEnd`] if the run passes address 65535 (nothing is declared then).
    pub fn set_run(&mut self, start: u16, values: &[bool], access: Access) -> Result<(), MapError> {
        if !values.is_empty() && last(start, values.len()).is_none() {
            return Err(MapError::PastEnd {
                start,
                len: values.len(),
            });
        }
        self.cells
            .insert_run(start, values.iter().map(|&value| (value, access)));
        Ok(())
    }

    /// The bit at `address`, if declared.
    #[must_use]
    pub fn get(&self, address: u16) -> Option<bool> {
        self.cells.get(address).map(|&(value, _)| value)
    }

    /// Make the table span `range` whatever is declared: addresses outside it answer 02,
    /// undeclared ones inside it follow the unit's [`Gaps`].
    pub fn set_extent(&mut self, range: RangeInclusive<u16>) {
        self.extent = Some((*range.start(), *range.end()));
    }

    /// The addresses the table spans (`None` while empty and no extent is set).
    #[must_use]
    pub fn extent(&self) -> Option<RangeInclusive<u16>> {
        extent_of(self.extent, &self.cells).map(|(a, b)| a..=b)
    }

    pub(super) fn readable(&self, start: u16, quantity: u16, gaps: Gaps) -> bool {
        readable(self.extent, &self.cells, start, quantity, gaps)
    }

    pub(super) fn writable(&self, start: u16, quantity: u16) -> bool {
        let Some(end) = last(start, quantity.into()) else {
            return false;
        };
        self.readable(start, quantity, Gaps::Exception)
            && self
                .cells
                .range(start, end)
                .all(|(_, &(_, access))| access == Access::ReadWrite)
    }

    /// Bits from `start`, packed LSB first, 0 in gaps and padding. Checked beforehand.
    pub(super) fn read_packed(&self, start: u16, quantity: u16, out: &mut Vec<u8>) {
        let from = out.len();
        out.resize(from + usize::from(quantity).div_ceil(8), 0);
        let Some(end) = last(start, quantity.into()) else {
            return;
        };
        // One walk of the declared bits in the span (up to 2,000 of them), not a look-up each.
        for (address, &(bit, _)) in self.cells.range(start, end) {
            if bit {
                let i = usize::from(address - start);
                out[from + i / 8] |= 1 << (i % 8);
            }
        }
    }

    /// Write `quantity` bits packed LSB first in `packed`. Checked beforehand.
    pub(super) fn write_packed(&mut self, start: u16, quantity: u16, packed: &[u8]) {
        let Some(end) = last(start, quantity.into()) else {
            return;
        };
        for (address, (bit, access)) in self.cells.range_mut(start, end) {
            // Only writable bits (see `Registers::write`).
            if *access == Access::ReadWrite {
                let i = usize::from(address - start);
                *bit = packed[i / 8] & (1 << (i % 8)) != 0;
            }
        }
    }
}

/// A declared register: 8 bytes, so that a read of ten takes two cache lines.
#[derive(Clone, Copy, Debug)]
enum Cell {
    Stored(u16, Access),
    /// Word `word` of computed value `point`.
    Computed {
        point: u32,
        word: u16,
    },
}

const _: () = assert!(size_of::<Cell>() == 8);

#[derive(Debug)]
struct Point {
    encoding: Encoding,
    provider: Box<dyn Provider>,
}

/// Holding or input registers: stored words, each read-only or writable, and computed values.
#[derive(Debug, Default)]
pub struct Registers {
    cells: Sparse<Cell>,
    points: Vec<Point>,
    /// Set by [`Registers::set_extent`]; otherwise the declared span.
    extent: Option<(u16, u16)>,
}

impl Registers {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Declare (or overwrite) registers from `start` holding `words`.
    ///
    /// # Errors
    /// [`MapError::PastEnd`] past address 65535, [`MapError::Computed`] over a computed value;
    /// nothing is changed then.
    pub fn set_words(&mut self, start: u16, words: &[u16], access: Access) -> Result<(), MapError> {
        self.check_free(start, words.len())?;
        self.cells
            .insert_run(start, words.iter().map(|&word| Cell::Stored(word, access)));
        Ok(())
    }

    /// Declare (or overwrite) registers from `start` holding `value` as `encoding` says.
    ///
    /// # Errors
    /// As [`Registers::set_words`], and [`MapError::Data`] if the value does not encode.
    pub fn set_value(
        &mut self,
        start: u16,
        encoding: &Encoding,
        value: &Value,
        access: Access,
    ) -> Result<(), MapError> {
        let words = encoding.encode(value)?;
        self.set_words(start, &words, access)
    }

    /// Declare registers from `start` whose value `provider` computes at each read, encoded
    /// as `encoding` says. They are read-only. A value that does not encode (out of range)
    /// reads as zeros.
    ///
    /// # Errors
    /// [`MapError::PastEnd`] past address 65535, [`MapError::Computed`] over another computed
    /// value.
    pub fn set_provider(
        &mut self,
        start: u16,
        encoding: Encoding,
        provider: Box<dyn Provider>,
    ) -> Result<(), MapError> {
        let len = encoding.registers();
        self.check_free(start, len)?;
        // At most 65,536 values of at least one register each, and a value of at most 65,536
        // registers (`check_free` refused longer): neither conversion saturates.
        let point = u32::try_from(self.points.len()).unwrap_or(u32::MAX);
        self.points.push(Point { encoding, provider });
        self.cells.insert_run(
            start,
            (0..len).map(|word| Cell::Computed {
                point,
                word: u16::try_from(word).unwrap_or(u16::MAX),
            }),
        );
        Ok(())
    }

    fn check_free(&self, start: u16, len: usize) -> Result<(), MapError> {
        if len == 0 {
            return Ok(());
        }
        let end = last(start, len).ok_or(MapError::PastEnd { start, len })?;
        match self
            .cells
            .range(start, end)
            .find(|(_, cell)| matches!(cell, Cell::Computed { .. }))
        {
            Some((address, _)) => Err(MapError::Computed(address)),
            None => Ok(()),
        }
    }

    /// The stored word at `address` (`None` if undeclared or computed).
    #[must_use]
    pub fn word(&self, address: u16) -> Option<u16> {
        match self.cells.get(address)? {
            Cell::Stored(word, _) => Some(*word),
            Cell::Computed { .. } => None,
        }
    }

    /// The stored value at `start`, decoded as `encoding` says.
    ///
    /// # Errors
    /// [`MapError::Undeclared`] or [`MapError::Computed`] for a register that stores
    /// nothing, [`MapError::Data`] if the words do not decode.
    pub fn value(&self, start: u16, encoding: &Encoding) -> Result<Value, MapError> {
        let len = encoding.registers();
        let _ = last(start, len).ok_or(MapError::PastEnd { start, len })?;
        let words = addresses(start, len)
            .map(|address| match self.cells.get(address) {
                Some(Cell::Stored(word, _)) => Ok(*word),
                Some(Cell::Computed { .. }) => Err(MapError::Computed(address)),
                None => Err(MapError::Undeclared(address)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(encoding.decode(&words)?)
    }

    /// Make the table span `range` whatever is declared: addresses outside it answer 02,
    /// undeclared ones inside it follow the unit's [`Gaps`].
    pub fn set_extent(&mut self, range: RangeInclusive<u16>) {
        self.extent = Some((*range.start(), *range.end()));
    }

    /// The addresses the table spans (`None` while empty and no extent is set).
    #[must_use]
    pub fn extent(&self) -> Option<RangeInclusive<u16>> {
        extent_of(self.extent, &self.cells).map(|(a, b)| a..=b)
    }

    pub(super) fn readable(&self, start: u16, quantity: u16, gaps: Gaps) -> bool {
        readable(self.extent, &self.cells, start, quantity, gaps)
    }

    pub(super) fn writable(&self, start: u16, quantity: u16) -> bool {
        let Some(end) = last(start, quantity.into()) else {
            return false;
        };
        self.readable(start, quantity, Gaps::Exception)
            && self
                .cells
                .range(start, end)
                .all(|(_, cell)| matches!(cell, Cell::Stored(_, Access::ReadWrite)))
    }

    /// Whether any register holds a computed value: only then does a read need the time.
    pub(super) fn computes(&self) -> bool {
        !self.points.is_empty()
    }

    /// Registers from `start` as big-endian bytes, 0 in gaps; each computed value asked once.
    /// Checked beforehand.
    pub(super) fn read(&mut self, start: u16, quantity: u16, now: Duration, out: &mut Vec<u8>) {
        let Some(end) = last(start, quantity.into()) else {
            return;
        };
        // Gaps read 0: the reply is zeroed first, and each declared cell in the span (one
        // walk of them) is written at its place.
        let from = out.len();
        out.resize(from + 2 * usize::from(quantity), 0);
        let reply = &mut out[from..];
        let points = &mut self.points;
        let mut computed: Vec<(u32, Vec<u16>)> = Vec::new();
        for (address, &cell) in self.cells.range(start, end) {
            let word = match cell {
                Cell::Stored(word, _) => word,
                Cell::Computed { point, word } => {
                    let words = if let Some((_, words)) = computed.iter().find(|(p, _)| *p == point)
                    {
                        words
                    } else {
                        let Point { encoding, provider } = &mut points[point as usize];
                        let words = encoding
                            .encode(&provider.value(now))
                            .unwrap_or_else(|_| vec![0; encoding.registers()]);
                        computed.push((point, words));
                        &computed[computed.len() - 1].1
                    };
                    words.get(usize::from(word)).copied().unwrap_or(0)
                }
            };
            let at = 2 * usize::from(address - start);
            reply[at..at + 2].copy_from_slice(&word.to_be_bytes());
        }
    }

    /// Write `words` from `start`. Checked beforehand (every register stored and writable).
    pub(super) fn write(&mut self, start: u16, words: impl IntoIterator<Item = u16>) {
        for (address, new) in addresses(start, usize::MAX).zip(words) {
            // Only writable values: a read-only one reached by a write the map lets through
            // (`ReadOnlyWrites::Ignored`) keeps its value.
            if let Some(Cell::Stored(word, Access::ReadWrite)) = self.cells.get_mut(address) {
                *word = new;
            }
        }
    }
}
