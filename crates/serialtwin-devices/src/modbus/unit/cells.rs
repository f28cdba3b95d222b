//! One array of typed 16-bit cells that all four tables address, each from its own offset:
//! the storage of pymodbus 3.16.1's `ModbusSimulatorContext` (`datastore/simulator.py`),
//! which a pymodbus simulator device file describes (reference §10).
//!
//! A client must not tell this storage from pymodbus's simulator, so it keeps that
//! simulator's rules even where they surprise, each noted where it is kept:
//! - coils and discrete inputs are bits of the cells: bit `n` is bit `n % 16` of cell `n / 16`;
//! - a read is checked, then every cell it touches runs its action before its value is
//!   taken, so an action runs on every read and never by the clock;
//! - a write is checked and carried out value by value, so a write that meets a read-only
//!   cell has changed the cells before it when it answers 02;
//! - anything the simulator fails on while answering (an index past the array, a value an
//!   action cannot encode, the `reset` action) answers 04, as pymodbus's request handler
//!   turns any exception into "server device failure".

use std::time::Duration;

use super::ExceptionCode;

/// What a cell holds: the first cell of a value says its type, the cells after it are
/// [`Kind::Next`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Nothing declared here: any access answers 02.
    #[default]
    Invalid,
    /// 16 bits, read as coils or discrete inputs (or as a register).
    Bits,
    /// pymodbus's `int16` section: one register holding the *high word of the value as a
    /// float32* (`build_registers_from_value` packs any type that is not `bits`, `uint16` or
    /// `uint32` with `struct.pack(">f")`, and keeps as many words as the type has registers).
    Int16,
    /// One register, an unsigned integer.
    Uint16,
    /// Two registers, an unsigned integer, high word first.
    Uint32,
    /// Two registers, an IEEE 754 single, high word first.
    Float32,
    /// Four registers, an IEEE 754 double, high word first.
    Float64,
    /// Text, two characters a register, as long as the cells after it marked [`Kind::Next`].
    String,
    /// A later register of the value that starts before it.
    Next,
}

impl Kind {
    /// The registers of a value of this kind (pymodbus `CellType.register_count`); `None`
    /// for the kinds it refuses to count (a string, an invalid or a next cell).
    #[must_use]
    pub fn registers(self) -> Option<usize> {
        match self {
            Kind::Bits | Kind::Int16 | Kind::Uint16 => Some(1),
            Kind::Uint32 | Kind::Float32 => Some(2),
            Kind::Float64 => Some(4),
            Kind::Invalid | Kind::String | Kind::Next => None,
        }
    }

    /// Whether values of this kind are integers (pymodbus `CellType.is_int`).
    fn is_int(self) -> bool {
        matches!(self, Kind::Bits | Kind::Uint16 | Kind::Uint32)
    }

    /// The registers of `value` stored as this kind (pymodbus `build_registers_from_value`),
    /// or `None` where pymodbus raises (an integer out of range, a float32 overflow, a kind
    /// it cannot count).
    #[must_use]
    pub fn encode(self, value: Number) -> Option<Vec<u16>> {
        let count = self.registers()?;
        let bytes: Vec<u8> = if self.is_int() {
            // `int(value)` truncates toward zero; `int.to_bytes` refuses what does not fit.
            let whole = value.whole()?;
            let bits = 16 * count;
            if whole < 0 || whole >> bits != 0 {
                return None;
            }
            let bytes = u64::try_from(whole).ok()?.to_be_bytes();
            bytes[8 - 2 * count..].to_vec()
        } else if self == Kind::Float64 {
            value.as_f64().to_be_bytes().to_vec()
        } else {
            let x = value.as_f64();
            #[expect(
                clippy::cast_possible_truncation,
                reason = "packing as a float32 rounds, as struct.pack does"
            )]
            let single = x as f32;
            if x.is_finite() && single.is_infinite() {
                // "float too large to pack with f format"
                return None;
            }
            single.to_be_bytes().to_vec()
        };
        Some(
            bytes
                .chunks_exact(2)
                .take(count)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect(),
        )
    }

    /// The value in `words` as this kind (pymodbus `build_value_from_registers`), or `None`
    /// where pymodbus raises (too few words; the `int16` kind, whose one word cannot unpack
    /// as a float32).
    fn decode(self, words: &[u16]) -> Option<Number> {
        let count = self.registers()?;
        let words = words.get(..count)?;
        if self.is_int() {
            let whole = words
                .iter()
                .fold(0_i128, |acc, &w| (acc << 16) | i128::from(w));
            return Some(Number::Int(whole));
        }
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        match (self, bytes.len()) {
            (Kind::Float64, 8) => Some(Number::Float(f64::from_be_bytes(bytes.try_into().ok()?))),
            (_, 4) => Some(Number::Float(f64::from(f32::from_be_bytes(
                bytes.try_into().ok()?,
            )))),
            _ => None,
        }
    }
}

/// A number as Python holds it: an integer, or a float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i128),
    /// A float.
    Float(f64),
}

impl Number {
    /// As a float.
    #[must_use]
    pub fn as_f64(self) -> f64 {
        match self {
            #[expect(
                clippy::cast_precision_loss,
                reason = "Python's float() of an integer rounds the same way"
            )]
            Number::Int(n) => n as f64,
            Number::Float(x) => x,
        }
    }

    /// Python's `a > b` across the two kinds.
    fn above(self, other: Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a > b,
            _ => self.as_f64() > other.as_f64(),
        }
    }

    /// `int(x)`: toward zero; `None` for a float that is not finite.
    fn whole(self) -> Option<i128> {
        match self {
            Number::Int(n) => Some(n),
            #[expect(
                clippy::cast_possible_truncation,
                reason = "int() truncates toward zero too"
            )]
            Number::Float(x) if x.is_finite() => Some(x.trunc() as i128),
            Number::Float(_) => None,
        }
    }
}

/// What a cell does each time a read touches it (pymodbus's built-in actions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Add 1; above `maxval` go back to `minval` (only when both are given); below `minval`
    /// go to `minval`.
    Increment {
        /// `minval`, if given.
        min: Option<Number>,
        /// `maxval`, if given.
        max: Option<Number>,
    },
    /// A random value: an integer in `min..=max` for integer kinds (`random.randint`), a
    /// float between them for the others (`random.uniform`). pymodbus's defaults are 1 and
    /// 65536.
    Random {
        /// `minval`.
        min: Number,
        /// `maxval`.
        max: Number,
    },
    /// The local date and time in this cell and the six after it, whatever they hold: year,
    /// month − 1, day, weekday (Monday 1), hour, minute, second.
    Timestamp,
    /// Whole seconds since the device started, plus 1.
    Uptime,
    /// pymodbus raises "RESET server" from it: the read answers 04.
    Reset,
}

/// One cell.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cell {
    /// What it holds.
    pub kind: Kind,
    /// Whether a client may write it (the file's `write` section).
    pub writable: bool,
    /// Its register value.
    pub value: u16,
    /// What a read of it does first.
    pub action: Option<Action>,
}

/// Which of the four tables a request addresses: each starts at its own offset in the cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Area {
    /// Functions 1, 5, 15.
    Coils,
    /// Function 2.
    Discrete,
    /// Function 4.
    Input,
    /// Functions 3, 6, 16, 22, 23.
    Holding,
}

/// The cells of one simulated device, with the offset each table starts at.
#[derive(Clone, Debug)]
pub struct Cells {
    array: Vec<Cell>,
    /// Coils, discrete inputs, input registers, holding registers: all 0 with `shared
    /// blocks`, else each block after the one before, in that order (pymodbus
    /// `handle_setup_section`).
    offsets: [usize; 4],
    /// `type exception`: a read that starts or ends inside a value answers 02, and so does
    /// any write to a value of more than one register.
    type_exception: bool,
    rng: fastrand::Rng,
}

/// Whether a check passed, failed (02), or failed on an index past the cells (04).
type Checked = Result<bool, ExceptionCode>;

impl Cells {
    /// `cells` with the tables at `offsets` (coils, discrete inputs, input registers, holding
    /// registers); `seed` seeds the `random` action.
    #[must_use]
    pub fn new(cells: Vec<Cell>, offsets: [usize; 4], type_exception: bool, seed: u64) -> Self {
        Self {
            array: cells,
            offsets,
            type_exception,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The cells.
    #[must_use]
    pub fn cells(&self) -> &[Cell] {
        &self.array
    }

    fn offset(&self, area: Area) -> usize {
        self.offsets[area as usize]
    }

    fn cell(&self, index: usize) -> Result<&Cell, ExceptionCode> {
        self.array
            .get(index)
            .ok_or(ExceptionCode::ServerDeviceFailure)
    }

    /// pymodbus `validate`: `count` registers from `address` (bits: bit `address`, `count`
    /// bits, rounded to registers as pymodbus does: the count alone, not where the bits
    /// start). `write` is true for the writing function codes, 22 and 23 included, even on
    /// their reads.
    fn validate(&self, area: Area, bits: bool, address: u16, count: u16, write: bool) -> Checked {
        let (address, count) = if bits {
            (usize::from(address) / 16, usize::from(count).div_ceil(16))
        } else {
            (usize::from(address), usize::from(count))
        };
        let start = self.offset(area) + address;
        if start > self.array.len() {
            return Ok(false);
        }
        // At exactly the end pymodbus goes on, and its index error answers 04.
        self.loop_validate(start, start + count, write)
    }

    /// pymodbus `loop_validate`.
    fn loop_validate(&self, start: usize, end: usize, write: bool) -> Checked {
        let mut i = start;
        while i < end {
            let cell = self.cell(i)?;
            if (write && !cell.writable) || cell.kind == Kind::Invalid {
                return Ok(false);
            }
            if !self.type_exception {
                i += 1;
                continue;
            }
            match cell.kind {
                Kind::Next => return Ok(false),
                Kind::String => {
                    // A string's length is unknown: the rest of the request must be its.
                    for j in i + 1..end {
                        if self.cell(j)?.kind != Kind::Next {
                            return Ok(false);
                        }
                    }
                    return Ok(true);
                }
                kind => {
                    let step = kind.registers().unwrap_or(1);
                    if i + step > end {
                        return Ok(false);
                    }
                    i += step;
                }
            }
        }
        Ok(true)
    }

    /// Run the action of cell `index`, if any.
    fn act(&mut self, index: usize, now: Duration) -> Result<(), ExceptionCode> {
        let fail = ExceptionCode::ServerDeviceFailure;
        let Some(action) = self.cell(index)?.action else {
            return Ok(());
        };
        let kind = self.array[index].kind;
        let words = match action {
            Action::Reset => return Err(fail),
            Action::Timestamp => {
                let now = jiff::ZonedDateTime::now();
                let fields = [
                    now.year(),
                    i16::from(now.month()) - 1,
                    i16::from(now.day()),
                    i16::from(now.weekday().to_monday_one_offset()),
                    i16::from(now.hour()),
                    i16::from(now.minute()),
                    i16::from(now.second()),
                ];
                fields
                    .iter()
                    .map(|&f| u16::try_from(f).unwrap_or(0))
                    .collect()
            }
            Action::Uptime => {
                let seconds = i128::from(now.as_secs()) + 1;
                kind.encode(Number::Int(seconds)).ok_or(fail)?
            }
            Action::Random { min, max } => {
                let value = if kind.is_int() {
                    let (low, high) = (min.whole().ok_or(fail)?, max.whole().ok_or(fail)?);
                    if low > high {
                        return Err(fail);
                    }
                    let low = i64::try_from(low).map_err(|_| fail)?;
                    let high = i64::try_from(high).map_err(|_| fail)?;
                    Number::Int(i128::from(self.rng.i64(low..=high)))
                } else {
                    let (low, high) = (min.as_f64(), max.as_f64());
                    Number::Float(low + (high - low) * self.rng.f64())
                };
                kind.encode(value).ok_or(fail)?
            }
            Action::Increment { min, max } => {
                let count = kind.registers().ok_or(fail)?;
                let current: Vec<u16> = (index..index + count)
                    .map(|i| self.cell(i).map(|c| c.value))
                    .collect::<Result<_, _>>()?;
                let value = kind.decode(&current).ok_or(fail)?;
                let mut value = match value {
                    Number::Int(n) => Number::Int(n + 1),
                    Number::Float(x) => Number::Float(x + 1.0),
                };
                if let (Some(max), Some(min)) = (max, min)
                    && value.above(max)
                {
                    value = min;
                }
                if let Some(min) = min
                    && min.above(value)
                {
                    value = min;
                }
                kind.encode(value).ok_or(fail)?
            }
        };
        // Written one by one: past the end, those before are written and the read fails.
        for (i, word) in words.into_iter().enumerate() {
            self.array
                .get_mut(index + i)
                .ok_or(ExceptionCode::ServerDeviceFailure)?
                .value = word;
        }
        Ok(())
    }

    /// Read `count` registers from `address` of `area` into `out` (functions 3, 4, and the
    /// read of 6, 22 and 23, with `write` true for those three).
    ///
    /// # Errors
    /// 02 when the check fails, 04 when pymodbus would raise.
    pub fn read_words(
        &mut self,
        area: Area,
        address: u16,
        count: u16,
        write: bool,
        now: Duration,
        out: &mut Vec<u16>,
    ) -> Result<(), ExceptionCode> {
        if !self.validate(area, false, address, count, write)? {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let start = self.offset(area) + usize::from(address);
        for i in start..start + usize::from(count) {
            self.act(i, now)?;
            out.push(self.cell(i)?.value);
        }
        Ok(())
    }

    /// Read `count` bits from bit `address` of `area` into `out` (functions 1, 2, and the read
    /// of 5, with `write` true then).
    ///
    /// # Errors
    /// As [`Cells::read_words`].
    pub fn read_bits(
        &mut self,
        area: Area,
        address: u16,
        count: u16,
        write: bool,
        now: Duration,
        out: &mut Vec<bool>,
    ) -> Result<(), ExceptionCode> {
        if !self.validate(area, true, address, count, write)? {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let start = self.offset(area) + usize::from(address) / 16;
        let mut bit = usize::from(address) % 16;
        let mut left = usize::from(count);
        // The registers the bits span, from where they start; pymodbus checked fewer when
        // they start inside a register, and reads these unchecked.
        let registers = (left + bit).div_ceil(16);
        for i in start..start + registers {
            self.act(i, now)?;
            let value = self.cell(i)?.value;
            while left > 0 && bit < 16 {
                out.push(value & (1 << bit) != 0);
                left -= 1;
                bit += 1;
            }
            bit = 0;
        }
        Ok(())
    }

    /// Write `values` from register `address` of `area`, each checked before it is written
    /// (functions 6, 16, 22, 23).
    ///
    /// # Errors
    /// 02 at the first value whose check fails (those before it are written), 04 past the
    /// cells.
    pub fn write_words(
        &mut self,
        area: Area,
        address: u16,
        values: impl IntoIterator<Item = u16>,
    ) -> Result<(), ExceptionCode> {
        let start = self.offset(area) + usize::from(address);
        let mut checked = address;
        for (index, value) in (start..).zip(values) {
            if !self.validate(area, false, checked, 1, true)? {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            self.array
                .get_mut(index)
                .ok_or(ExceptionCode::ServerDeviceFailure)?
                .value = value;
            checked = checked.wrapping_add(1);
        }
        Ok(())
    }

    /// Write `values` from bit `address` of `area`, each checked before it is written
    /// (functions 5, 15).
    ///
    /// pymodbus checks each bit against the register of a counter that starts at the bit
    /// address and steps by one only when the bits cross into the next register, so after the
    /// first register it keeps checking (nearly always) the first one: kept, as a client sees
    /// it.
    ///
    /// # Errors
    /// As [`Cells::write_words`].
    pub fn write_bits(
        &mut self,
        area: Area,
        address: u16,
        values: impl IntoIterator<Item = bool>,
    ) -> Result<(), ExceptionCode> {
        let mut index = self.offset(area) + usize::from(address) / 16;
        let mut bit = usize::from(address) % 16;
        let mut checked = address;
        for value in values {
            if !self.validate(area, true, checked, 1, true)? {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            let cell = self
                .array
                .get_mut(index)
                .ok_or(ExceptionCode::ServerDeviceFailure)?;
            if value {
                cell.value |= 1 << bit;
            } else {
                cell.value &= !(1 << bit);
            }
            bit += 1;
            if bit == 16 {
                bit = 0;
                index += 1;
                checked = checked.wrapping_add(1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(kind: Kind, value: u16) -> Cell {
        Cell {
            kind,
            writable: false,
            value,
            action: None,
        }
    }

    #[test]
    fn values_encode_as_pymodbus_packs_them() {
        assert_eq!(
            Kind::Uint32.encode(Number::Int(617_001)),
            Some(vec![9, 27_177])
        );
        assert_eq!(
            Kind::Float32.encode(Number::Float(230.5)),
            Some(vec![0x4366, 0x8000])
        );
        assert_eq!(Kind::Int16.encode(Number::Int(5)), Some(vec![0x40A0]));
        assert_eq!(Kind::Uint16.encode(Number::Int(65_536)), None);
        assert_eq!(Kind::Uint16.encode(Number::Int(-1)), None);
        assert_eq!(Kind::Float32.encode(Number::Float(1e39)), None);
        assert_eq!(Kind::String.encode(Number::Int(1)), None);
    }

    #[test]
    fn a_read_ending_inside_a_value_is_refused_only_with_type_exception() {
        let cells = vec![cell(Kind::Uint32, 1), cell(Kind::Next, 2)];
        let mut strict = Cells::new(cells.clone(), [0; 4], true, 0);
        let mut out = Vec::new();
        assert_eq!(
            strict.read_words(Area::Holding, 0, 1, false, Duration::ZERO, &mut out),
            Err(ExceptionCode::IllegalDataAddress)
        );
        let mut lax = Cells::new(cells, [0; 4], false, 0);
        lax.read_words(Area::Holding, 1, 1, false, Duration::ZERO, &mut out)
            .unwrap();
        assert_eq!(out, [2]);
        // Starting at the end is pymodbus's index error: 04.
        assert_eq!(
            lax.read_words(Area::Holding, 2, 1, false, Duration::ZERO, &mut out),
            Err(ExceptionCode::ServerDeviceFailure)
        );
    }

    #[test]
    fn increment_wraps_to_minval_above_maxval() {
        let mut counter = cell(Kind::Uint16, 5);
        counter.action = Some(Action::Increment {
            min: Some(Number::Int(0)),
            max: Some(Number::Int(6)),
        });
        let mut cells = Cells::new(vec![counter], [0; 4], false, 0);
        let mut out = Vec::new();
        for _ in 0..3 {
            cells
                .read_words(Area::Holding, 0, 1, false, Duration::ZERO, &mut out)
                .unwrap();
        }
        assert_eq!(out, [6, 0, 1]);
    }

    #[test]
    fn a_unit_answers_from_its_cells_and_echoes_what_it_read_back() {
        use crate::modbus::unit::{Delivery, Outcome, Silence, Unit};
        let mut counter = cell(Kind::Bits, 0);
        counter.writable = true;
        counter.action = Some(Action::Increment {
            min: None,
            max: None,
        });
        let mut unit = Unit::default();
        unit.use_cells(Cells::new(
            vec![counter, cell(Kind::Uint16, 9)],
            [0; 4],
            false,
            0,
        ));
        let mut out = Vec::new();
        // Write 5 to the counter: read back (incremented) and echoed as 6.
        let outcome = unit.answer(
            &[0x06, 0, 0, 0, 5],
            Delivery::Addressed,
            Duration::ZERO,
            &mut out,
        );
        assert_eq!(
            (outcome, out.as_slice()),
            (Outcome::Normal, &[0x06, 0, 0, 0, 6][..])
        );
        // A broadcast write is carried out (and read back, running the increment), unanswered.
        out.clear();
        let outcome = unit.answer(
            &[0x06, 0, 0, 0, 1],
            Delivery::Broadcast,
            Duration::ZERO,
            &mut out,
        );
        assert_eq!(outcome, Outcome::Silent(Silence::Broadcast));
        assert_eq!(unit.cells().unwrap().cells()[0].value, 2);
        // Coil 0 is bit 0 of cell 0; reading it increments the cell first (2 -> 3: on).
        out.clear();
        unit.answer(
            &[0x01, 0, 0, 0, 1],
            Delivery::Addressed,
            Duration::ZERO,
            &mut out,
        );
        assert_eq!(out, [0x01, 1, 1]);
        // Quantity is checked before anything else: 03, and the cells are untouched.
        out.clear();
        let outcome = unit.answer(
            &[0x03, 0, 0, 0, 126],
            Delivery::Addressed,
            Duration::ZERO,
            &mut out,
        );
        assert_eq!(outcome, Outcome::Exception(ExceptionCode::IllegalDataValue));
        assert_eq!(unit.cells().unwrap().cells()[0].value, 3);
    }

    #[test]
    fn a_write_stops_at_the_first_read_only_register_having_written_those_before() {
        let mut writable = cell(Kind::Uint16, 0);
        writable.writable = true;
        let mut cells = Cells::new(
            vec![writable, writable, cell(Kind::Uint16, 0)],
            [0; 4],
            false,
            0,
        );
        assert_eq!(
            cells.write_words(Area::Holding, 0, [7, 8, 9]),
            Err(ExceptionCode::IllegalDataAddress)
        );
        let values: Vec<u16> = cells.cells().iter().map(|c| c.value).collect();
        assert_eq!(values, [7, 8, 0]);
    }
}
