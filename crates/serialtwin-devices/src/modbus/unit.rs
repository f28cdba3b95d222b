//! One Modbus unit (a slave at one address): its four tables, and the answer to each request
//! PDU.
//!
//! A [`Unit`] knows nothing of addresses, frames or CRCs: the framer cuts and checks frames,
//! and whatever routes by address (a one-unit port, or a bus of several) hands the unit the
//! PDU (function code and data) with how it was addressed ([`Delivery`]). [`Unit::answer`]
//! appends the reply PDU to a buffer, or says why there is none ([`Outcome`]).
//!
//! Requests are checked in the order of the standard's per-function diagrams (APP §4.5 Fig 9,
//! reference §4): function (01), then quantity, byte count or value (03), then address (02),
//! then execution (04). So a request whose quantity and address are both wrong gets 03, and
//! 03 never means "a value the application dislikes".
//!
//! ```
//! use std::time::Duration;
//! use serialtwin_devices::modbus::unit::{Access, Delivery, Outcome, Unit};
//!
//! let mut unit = Unit::default();
//! // Registers 108-110 in the APP §6.3 example are 1-based: PDU addresses 107-109 (0x6B).
//! unit.holding.set_words(0x6B, &[0x022B, 0x0000, 0x0064], Access::ReadOnly)?;
//! let mut out = Vec::new();
//! let outcome = unit.answer(&[0x03, 0x00, 0x6B, 0x00, 0x03], Delivery::Addressed, Duration::ZERO, &mut out);
//! assert_eq!(outcome, Outcome::Normal);
//! assert_eq!(out, [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]);
//! # Ok::<(), serialtwin_devices::modbus::unit::MapError>(())
//! ```

mod cells;
mod sparse;
mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use thiserror::Error;

pub use self::cells::{Action, Area, Cell, Cells, Kind, Number};
pub use self::table::{
    Access, Bits, Counter, Gaps, MapError, Provider, Ramp, Registers, Sine, Walk,
};

/// The largest PDU (APP §4.1).
pub const MAX_PDU: usize = 253;

/// How a request reached the unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Sent to this unit's own address: it answers.
    Addressed,
    /// Sent to address 0: writes (FC 5, 6, 15, 16, 22) are carried out, everything else is
    /// ignored, and nothing is ever returned, not even an exception (SL §2.1, reference §5).
    Broadcast,
}

/// The exception codes a unit answers with (APP §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ExceptionCode {
    /// 01: the function code (or sub-function, or MEI type) is not supported.
    IllegalFunction = 1,
    /// 02: an address, or start + quantity, lies outside the table, or the register is
    /// read-only.
    IllegalDataAddress = 2,
    /// 03: the request's structure is wrong: quantity out of range, inconsistent byte count,
    /// a coil value other than `0xFF00`/`0x0000`.
    IllegalDataValue = 3,
    /// 04: the request was valid but carrying it out failed ([`Unit::fail_next`]).
    ServerDeviceFailure = 4,
}

impl ExceptionCode {
    /// The code on the wire.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }
}

/// What [`Unit::answer`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A normal reply PDU was appended to the buffer.
    Normal,
    /// An exception reply PDU (`[function | 0x80, code]`) was appended to the buffer.
    Exception(ExceptionCode),
    /// Nothing was appended: send nothing.
    Silent(Silence),
}

/// Why a unit sends nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Silence {
    /// The request was a broadcast.
    Broadcast,
    /// The unit is in listen-only mode (diagnostics 0x04), or has just entered or left it.
    ListenOnly,
    /// The PDU was empty: there is not even a function code to answer.
    Empty,
}

/// The diagnostics counters (APP §6.8.1, SL §6.1), as diagnostics sub-functions 0x0B to 0x12
/// and function 11 report them. All are 16 bits and wrap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// 0x0B: messages seen on the bus: every request handed to [`Unit::answer`], plus those
    /// the serving side reports with [`Unit::note_other_message`].
    pub bus_messages: u16,
    /// 0x0C: CRC (or LRC) errors. Only the framer sees them: [`Unit::note_crc_error`].
    pub crc_errors: u16,
    /// 0x0D: exceptions, broadcast ones included though they are never sent.
    pub exceptions: u16,
    /// 0x0E: messages addressed to this unit or broadcast, that it processed.
    pub server_messages: u16,
    /// 0x0F: messages addressed to this unit or broadcast it returned nothing for.
    pub no_responses: u16,
    /// 0x10: NAK exceptions (07). This emulator never answers 07, so it stays 0.
    pub naks: u16,
    /// 0x11: busy exceptions (06). This emulator never answers 06, so it stays 0.
    pub busy: u16,
    /// 0x12: characters lost to overrun. Only the serving side could see them:
    /// [`Unit::note_overrun`].
    pub overruns: u16,
    /// Function 11's event count: requests completed without an exception, function 11
    /// itself excepted.
    pub events: u16,
}

/// A unit's fixed answers: what gaps read as, function 7's status byte, function 17's id
/// and run indicator, function 43/14's identification objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// What an undeclared address inside a table's extent answers.
    pub gaps: Gaps,
    /// Function 7's exception status byte.
    pub exception_status: u8,
    /// Function 17's server id (at most 250 bytes).
    pub server_id: Vec<u8>,
    /// Function 17's run indicator (`0xFF` on, `0x00` off).
    pub run_indicator: bool,
    /// Function 43/14's objects by id (each at most 244 bytes): 0x00 `VendorName`,
    /// 0x01 `ProductCode` and 0x02 `MajorMinorRevision` are required; 0x03 to 0x06
    /// (`VendorUrl`, `ProductName`, `ModelName`, `UserApplicationName`) are regular, 0x80 and
    /// above extended.
    pub identification: BTreeMap<u8, Vec<u8>>,
    /// The function codes the unit answers; any other gets exception 01, as a real device
    /// answers a code its documentation does not list (an Eastron meter knows 3, 4 and 16).
    /// `None`: every code this unit implements.
    pub functions: Option<BTreeSet<u8>>,
    /// What a write reaching a declared read-only value gets.
    pub read_only_writes: ReadOnlyWrites,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            gaps: Gaps::Zero,
            exception_status: 0,
            server_id: b"serialtwin".to_vec(),
            run_indicator: true,
            identification: BTreeMap::from([
                (0x00, b"serialtwin".to_vec()),
                (0x01, b"modbus-unit".to_vec()),
                (0x02, env!("CARGO_PKG_VERSION").as_bytes().to_vec()),
            ]),
            functions: None,
            read_only_writes: ReadOnlyWrites::default(),
        }
    }
}

/// What a unit answers a write that reaches a declared read-only value (a coil or holding
/// register declared read-only, or one that moves with the clock). The standard's answer is
/// exception 02; devices differ, and a map says which its device does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadOnlyWrites {
    /// Exception 02 (illegal data address), nothing written.
    #[default]
    Exception,
    /// Exception 04 (server device failure), nothing written: the request was valid, carrying
    /// it out failed.
    DeviceFailure,
    /// The write is acknowledged as usual; the writable values it reaches are written, the
    /// read-only ones keep theirs.
    Ignored,
}

/// Why [`Unit::new`] refused its settings.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    /// The server id does not fit function 17's reply.
    #[error("the server id has {0} bytes, at most 250 fit a reply")]
    ServerIdTooLong(usize),
    /// An identification object does not fit function 43/14's reply.
    #[error("identification object {id:#04x} has {len} bytes, at most 244 fit a reply")]
    ObjectTooLong {
        /// The object id.
        id: u8,
        /// Its length.
        len: usize,
    },
    /// A basic identification object is missing.
    #[error(
        "identification object {0:#04x} (VendorName, ProductCode, MajorMinorRevision) is required"
    )]
    MissingBasic(u8),
}

/// What a handled request leaves to do.
enum Answer {
    /// The reply is in the buffer.
    Reply,
    /// The reply is in the buffer; clear the counters afterwards (diagnostics 0x01, 0x0A).
    ReplyThenClear,
    /// No reply (diagnostics 0x04).
    Quiet,
}

type Handled = Result<Answer, ExceptionCode>;

const READ_BITS_MAX: u16 = 2000;
const READ_REGISTERS_MAX: u16 = 125;
const WRITE_COILS_MAX: u16 = 1968;
const WRITE_REGISTERS_MAX: u16 = 123;
const READ_WRITE_WRITE_MAX: u16 = 121;

/// One Modbus unit: four tables, settings, diagnostics counters.
///
/// The tables are public: declare values in them before serving, and change them while
/// serving (a test sets a meter's voltage).
#[derive(Debug)]
pub struct Unit {
    /// Coils (functions 1, 5, 15).
    pub coils: Bits,
    /// Discrete inputs (function 2).
    pub discrete_inputs: Bits,
    /// Holding registers (functions 3, 6, 16, 22, 23).
    pub holding: Registers,
    /// Input registers (function 4).
    pub input: Registers,
    settings: Settings,
    counters: Counters,
    /// Diagnostics 0x04 was received: answer nothing until a restart (0x01).
    listen_only: bool,
    /// Requests still to fail with 04 ([`Unit::fail_next`]).
    failures: u32,
    /// A pymodbus simulator's cells ([`Unit::use_cells`]): when set, the four tables above
    /// are not used, and every read and write goes to the cells instead.
    cells: Option<Cells>,
}

impl Default for Unit {
    fn default() -> Self {
        Self::with_valid(Settings::default())
    }
}

impl Unit {
    /// An empty unit with `settings`.
    ///
    /// # Errors
    /// A server id or identification object too long for a reply, or a basic identification
    /// object missing.
    pub fn new(settings: Settings) -> Result<Self, SettingsError> {
        if settings.server_id.len() > 250 {
            return Err(SettingsError::ServerIdTooLong(settings.server_id.len()));
        }
        for id in 0..=2 {
            if !settings.identification.contains_key(&id) {
                return Err(SettingsError::MissingBasic(id));
            }
        }
        if let Some((&id, object)) = settings
            .identification
            .iter()
            .find(|(_, object)| object.len() > 244)
        {
            return Err(SettingsError::ObjectTooLong {
                id,
                len: object.len(),
            });
        }
        Ok(Self::with_valid(settings))
    }

    fn with_valid(settings: Settings) -> Self {
        Self {
            coils: Bits::new(),
            discrete_inputs: Bits::new(),
            holding: Registers::new(),
            input: Registers::new(),
            settings,
            counters: Counters::default(),
            listen_only: false,
            failures: 0,
            cells: None,
        }
    }

    /// Serve `cells` (a pymodbus simulator device file's layout) in place of the four
    /// tables: reads and writes of functions 1-6, 15, 16, 22 and 23 follow pymodbus's
    /// simulator from then on, after the same structural checks (03) as ever.
    pub fn use_cells(&mut self, cells: Cells) {
        self.cells = Some(cells);
    }

    /// The cells, if the unit serves them ([`Unit::use_cells`]).
    #[must_use]
    pub fn cells(&self) -> Option<&Cells> {
        self.cells.as_ref()
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Change function 7's exception status byte.
    pub fn set_exception_status(&mut self, status: u8) {
        self.settings.exception_status = status;
    }

    /// Change function 17's run indicator.
    pub fn set_run_indicator(&mut self, running: bool) {
        self.settings.run_indicator = running;
    }

    /// The diagnostics counters.
    #[must_use]
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Whether the unit is in listen-only mode (diagnostics 0x04, left by 0x01).
    #[must_use]
    pub fn listen_only(&self) -> bool {
        self.listen_only
    }

    /// Make the next `requests` requests that pass every check fail with exception 04
    /// (server device failure), without carrying them out. Replaces any count still pending.
    pub fn fail_next(&mut self, requests: u32) {
        self.failures = requests;
    }

    /// The framer dropped a frame with a bad CRC or LRC (diagnostics 0x0C).
    pub fn note_crc_error(&mut self) {
        bump(&mut self.counters.crc_errors);
    }

    /// The serving side lost characters to overrun (diagnostics 0x12).
    pub fn note_overrun(&mut self) {
        bump(&mut self.counters.overruns);
    }

    /// A valid frame for another address passed on the bus (diagnostics 0x0B counts every
    /// message on the bus; [`Unit::answer`] counts only those it is handed).
    pub fn note_other_message(&mut self) {
        bump(&mut self.counters.bus_messages);
    }

    /// Answer one request `pdu` (function code and data; no address, no CRC), appending the
    /// reply PDU to `out`. `now` is the time computed values ([`Provider`]) are read at.
    ///
    /// Never panics, whatever the bytes.
    pub fn answer(
        &mut self,
        pdu: &[u8],
        delivery: Delivery,
        now: Duration,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let Some(&function) = pdu.first() else {
            return Outcome::Silent(Silence::Empty);
        };
        bump(&mut self.counters.bus_messages);
        bump(&mut self.counters.server_messages);
        let broadcast = delivery == Delivery::Broadcast;

        if self.listen_only {
            // Only a restart is acted on; it leaves listen-only mode without a reply.
            if !broadcast && function == 0x08 && pdu.len() == 5 && is_restart(&pdu[1..]) {
                self.listen_only = false;
                self.counters = Counters::default();
            } else {
                bump(&mut self.counters.no_responses);
            }
            return Outcome::Silent(Silence::ListenOnly);
        }
        if broadcast && !matches!(function, 0x05 | 0x06 | 0x0F | 0x10 | 0x16) {
            bump(&mut self.counters.no_responses);
            return Outcome::Silent(Silence::Broadcast);
        }

        let mark = out.len();
        let listed = self
            .settings
            .functions
            .as_ref()
            .is_none_or(|codes| codes.contains(&function));
        let handled = if listed {
            self.dispatch(function, pdu, now, out)
        } else {
            Err(ExceptionCode::IllegalFunction)
        };
        let outcome = match handled {
            Err(code) => {
                out.truncate(mark);
                bump(&mut self.counters.exceptions);
                if broadcast {
                    Outcome::Silent(Silence::Broadcast)
                } else {
                    out.extend_from_slice(&[function | 0x80, code.code()]);
                    Outcome::Exception(code)
                }
            }
            Ok(answer) => {
                if function != 0x0B {
                    bump(&mut self.counters.events);
                }
                if let Answer::ReplyThenClear = answer {
                    self.counters = Counters::default();
                }
                if broadcast {
                    out.truncate(mark);
                    Outcome::Silent(Silence::Broadcast)
                } else if let Answer::Quiet = answer {
                    Outcome::Silent(Silence::ListenOnly)
                } else {
                    Outcome::Normal
                }
            }
        };
        if let Outcome::Silent(_) = outcome {
            bump(&mut self.counters.no_responses);
        }
        outcome
    }

    fn dispatch(&mut self, function: u8, pdu: &[u8], now: Duration, out: &mut Vec<u8>) -> Handled {
        match function {
            0x01 | 0x02 => self.read_bits(function, pdu, now, out),
            0x03 | 0x04 => self.read_registers(function, pdu, now, out),
            0x05 => self.write_coil(pdu, now, out),
            0x06 => self.write_register(pdu, now, out),
            0x07 => {
                check(pdu.len() == 1)?;
                self.execute()?;
                out.extend_from_slice(&[0x07, self.settings.exception_status]);
                Ok(Answer::Reply)
            }
            0x08 => self.diagnostics(pdu, out),
            0x0B => {
                check(pdu.len() == 1)?;
                self.execute()?;
                out.extend_from_slice(&[0x0B, 0x00, 0x00]);
                out.extend_from_slice(&self.counters.events.to_be_bytes());
                Ok(Answer::Reply)
            }
            0x0F => self.write_coils(pdu, out),
            0x10 => self.write_registers(pdu, out),
            0x11 => {
                check(pdu.len() == 1)?;
                self.execute()?;
                let id = &self.settings.server_id;
                // At most 250 bytes (checked in `Unit::new`), so the count fits.
                let count = u8::try_from(id.len() + 1).unwrap_or(u8::MAX);
                out.extend_from_slice(&[0x11, count]);
                out.extend_from_slice(id);
                out.push(if self.settings.run_indicator {
                    0xFF
                } else {
                    0x00
                });
                Ok(Answer::Reply)
            }
            0x16 => self.mask_write(pdu, now, out),
            0x17 => self.read_write(pdu, now, out),
            0x2B => self.identification(pdu, out),
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }

    /// Run `op` on the cells (the caller checked they are set).
    /// Whether answering may look at the time it is given: the unit has computed values,
    /// or a pymodbus simulator's cells (whose `uptime` action counts from it). Reading the
    /// simulated clock costs more than a ten-register read, so a unit of stored values is
    /// answered without it.
    #[must_use]
    pub fn reads_clock(&self) -> bool {
        self.cells.is_some() || self.holding.computes() || self.input.computes()
    }

    fn with_cells(
        &mut self,
        op: impl FnOnce(&mut Cells) -> Result<(), ExceptionCode>,
    ) -> Result<(), ExceptionCode> {
        match self.cells.as_mut() {
            Some(cells) => op(cells),
            None => Err(ExceptionCode::ServerDeviceFailure),
        }
    }

    /// The execution step: fails with 04 while [`Unit::fail_next`] has requests to fail.
    fn execute(&mut self) -> Result<(), ExceptionCode> {
        if self.failures > 0 {
            self.failures -= 1;
            return Err(ExceptionCode::ServerDeviceFailure);
        }
        Ok(())
    }

    fn read_bits(&mut self, function: u8, pdu: &[u8], now: Duration, out: &mut Vec<u8>) -> Handled {
        check(pdu.len() == 5)?;
        let (start, quantity) = (word(pdu, 1), word(pdu, 3));
        check((1..=READ_BITS_MAX).contains(&quantity))?;
        if self.cells.is_some() {
            self.execute()?;
            let area = if function == 0x01 {
                Area::Coils
            } else {
                Area::Discrete
            };
            let mut bits = Vec::new();
            self.with_cells(|cells| cells.read_bits(area, start, quantity, false, now, &mut bits))?;
            out.push(function);
            push_packed(out, &bits);
            return Ok(Answer::Reply);
        }
        let gaps = self.settings.gaps;
        let table = if function == 0x01 {
            &self.coils
        } else {
            &self.discrete_inputs
        };
        address(table.readable(start, quantity, gaps))?;
        self.execute()?;
        let table = if function == 0x01 {
            &self.coils
        } else {
            &self.discrete_inputs
        };
        // At most 250 bytes for 2000 bits.
        let count = u8::try_from(usize::from(quantity).div_ceil(8)).unwrap_or(u8::MAX);
        out.extend_from_slice(&[function, count]);
        table.read_packed(start, quantity, out);
        Ok(Answer::Reply)
    }

    fn read_registers(
        &mut self,
        function: u8,
        pdu: &[u8],
        now: Duration,
        out: &mut Vec<u8>,
    ) -> Handled {
        check(pdu.len() == 5)?;
        let (start, quantity) = (word(pdu, 1), word(pdu, 3));
        check((1..=READ_REGISTERS_MAX).contains(&quantity))?;
        if self.cells.is_some() {
            self.execute()?;
            let area = if function == 0x03 {
                Area::Holding
            } else {
                Area::Input
            };
            let mut words = Vec::new();
            self.with_cells(|cells| {
                cells.read_words(area, start, quantity, false, now, &mut words)
            })?;
            out.extend_from_slice(&[function, byte_count(quantity)]);
            out.extend(words.iter().flat_map(|w| w.to_be_bytes()));
            return Ok(Answer::Reply);
        }
        let gaps = self.settings.gaps;
        let readable = if function == 0x03 {
            self.holding.readable(start, quantity, gaps)
        } else {
            self.input.readable(start, quantity, gaps)
        };
        address(readable)?;
        self.execute()?;
        let table = if function == 0x03 {
            &mut self.holding
        } else {
            &mut self.input
        };
        out.extend_from_slice(&[function, byte_count(quantity)]);
        table.read(start, quantity, now, out);
        Ok(Answer::Reply)
    }

    fn write_coil(&mut self, pdu: &[u8], now: Duration, out: &mut Vec<u8>) -> Handled {
        check(pdu.len() == 5)?;
        let (at, value) = (word(pdu, 1), word(pdu, 3));
        check(value == 0xFF00 || value == 0x0000)?;
        if self.cells.is_some() {
            self.execute()?;
            // pymodbus writes, then reads the coil back (checked as a write) and echoes what
            // it read: an action on the cell shows in the echo.
            let mut bits = Vec::new();
            self.with_cells(|cells| {
                cells.write_bits(Area::Coils, at, [value == 0xFF00])?;
                cells.read_bits(Area::Coils, at, 1, true, now, &mut bits)
            })?;
            let echo: u16 = if bits.first() == Some(&true) {
                0xFF00
            } else {
                0
            };
            out.push(0x05);
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(&echo.to_be_bytes());
            return Ok(Answer::Reply);
        }
        self.may_write(Table::Coils, at, 1)?;
        self.execute()?;
        self.coils.write_packed(at, 1, &[u8::from(value == 0xFF00)]);
        out.extend_from_slice(pdu);
        Ok(Answer::Reply)
    }

    fn write_register(&mut self, pdu: &[u8], now: Duration, out: &mut Vec<u8>) -> Handled {
        check(pdu.len() == 5)?;
        let (at, value) = (word(pdu, 1), word(pdu, 3));
        if self.cells.is_some() {
            self.execute()?;
            // As for a coil: written, read back, and what was read echoed.
            let mut words = Vec::new();
            self.with_cells(|cells| {
                cells.write_words(Area::Holding, at, [value])?;
                cells.read_words(Area::Holding, at, 1, true, now, &mut words)
            })?;
            out.push(0x06);
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(&words.first().copied().unwrap_or(0).to_be_bytes());
            return Ok(Answer::Reply);
        }
        self.may_write(Table::Holding, at, 1)?;
        self.execute()?;
        self.holding.write(at, [value]);
        out.extend_from_slice(pdu);
        Ok(Answer::Reply)
    }

    fn write_coils(&mut self, pdu: &[u8], out: &mut Vec<u8>) -> Handled {
        check(pdu.len() >= 6)?;
        let (start, quantity, count) = (word(pdu, 1), word(pdu, 3), pdu[5]);
        check((1..=WRITE_COILS_MAX).contains(&quantity))?;
        check(usize::from(count) == usize::from(quantity).div_ceil(8))?;
        check(pdu.len() == 6 + usize::from(count))?;
        if self.cells.is_some() {
            self.execute()?;
            let bits = (0..usize::from(quantity)).map(|i| pdu[6 + i / 8] & (1 << (i % 8)) != 0);
            self.with_cells(|cells| cells.write_bits(Area::Coils, start, bits))?;
            out.extend_from_slice(&pdu[..5]);
            return Ok(Answer::Reply);
        }
        self.may_write(Table::Coils, start, quantity)?;
        self.execute()?;
        self.coils.write_packed(start, quantity, &pdu[6..]);
        out.extend_from_slice(&pdu[..5]);
        Ok(Answer::Reply)
    }

    fn write_registers(&mut self, pdu: &[u8], out: &mut Vec<u8>) -> Handled {
        check(pdu.len() >= 6)?;
        let (start, quantity, count) = (word(pdu, 1), word(pdu, 3), pdu[5]);
        check((1..=WRITE_REGISTERS_MAX).contains(&quantity))?;
        check(usize::from(count) == 2 * usize::from(quantity))?;
        check(pdu.len() == 6 + usize::from(count))?;
        if self.cells.is_some() {
            self.execute()?;
            self.with_cells(|cells| cells.write_words(Area::Holding, start, words(&pdu[6..])))?;
            out.extend_from_slice(&pdu[..5]);
            return Ok(Answer::Reply);
        }
        self.may_write(Table::Holding, start, quantity)?;
        self.execute()?;
        self.holding.write(start, words(&pdu[6..]));
        out.extend_from_slice(&pdu[..5]);
        Ok(Answer::Reply)
    }

    fn mask_write(&mut self, pdu: &[u8], now: Duration, out: &mut Vec<u8>) -> Handled {
        check(pdu.len() == 7)?;
        let (at, and, or) = (word(pdu, 1), word(pdu, 3), word(pdu, 5));
        if self.cells.is_some() {
            self.execute()?;
            // pymodbus reads (checked as a write), masks, writes.
            self.with_cells(|cells| {
                let mut current = Vec::new();
                cells.read_words(Area::Holding, at, 1, true, now, &mut current)?;
                let current = current.first().copied().unwrap_or(0);
                cells.write_words(Area::Holding, at, [(current & and) | (or & !and)])
            })?;
            out.extend_from_slice(pdu);
            return Ok(Answer::Reply);
        }
        self.may_write(Table::Holding, at, 1)?;
        self.execute()?;
        let current = self.holding.word(at).unwrap_or(0);
        self.holding.write(at, [(current & and) | (or & !and)]);
        out.extend_from_slice(pdu);
        Ok(Answer::Reply)
    }

    fn read_write(&mut self, pdu: &[u8], now: Duration, out: &mut Vec<u8>) -> Handled {
        check(pdu.len() >= 10)?;
        let (read_start, read_quantity) = (word(pdu, 1), word(pdu, 3));
        let (write_start, write_quantity, count) = (word(pdu, 5), word(pdu, 7), pdu[9]);
        check((1..=READ_REGISTERS_MAX).contains(&read_quantity))?;
        check((1..=READ_WRITE_WRITE_MAX).contains(&write_quantity))?;
        check(usize::from(count) == 2 * usize::from(write_quantity))?;
        check(pdu.len() == 10 + usize::from(count))?;
        if self.cells.is_some() {
            self.execute()?;
            // The write first; pymodbus checks the read as a write too (function 23 writes).
            let mut read = Vec::new();
            self.with_cells(|cells| {
                cells.write_words(Area::Holding, write_start, words(&pdu[10..]))?;
                cells.read_words(
                    Area::Holding,
                    read_start,
                    read_quantity,
                    true,
                    now,
                    &mut read,
                )
            })?;
            out.extend_from_slice(&[0x17, byte_count(read_quantity)]);
            out.extend(read.iter().flat_map(|w| w.to_be_bytes()));
            return Ok(Answer::Reply);
        }
        address(
            self.holding
                .readable(read_start, read_quantity, self.settings.gaps),
        )?;
        self.may_write(Table::Holding, write_start, write_quantity)?;
        self.execute()?;
        // The write comes first (APP §6.17).
        self.holding.write(write_start, words(&pdu[10..]));
        out.extend_from_slice(&[0x17, byte_count(read_quantity)]);
        self.holding.read(read_start, read_quantity, now, out);
        Ok(Answer::Reply)
    }

    /// Whether a write of `quantity` values from `start` goes ahead: every value declared and
    /// writable; or every value declared, some read-only, and the map's
    /// [`ReadOnlyWrites`] lets it (the read-only ones are then left as they are). An address
    /// nothing is declared at is 02 whatever the map says.
    fn may_write(&self, table: Table, start: u16, quantity: u16) -> Result<(), ExceptionCode> {
        let (writable, declared) = match table {
            Table::Coils => (
                self.coils.writable(start, quantity),
                self.coils.readable(start, quantity, Gaps::Exception),
            ),
            Table::Holding => (
                self.holding.writable(start, quantity),
                self.holding.readable(start, quantity, Gaps::Exception),
            ),
        };
        if writable {
            return Ok(());
        }
        address(declared)?;
        match self.settings.read_only_writes {
            ReadOnlyWrites::Exception => Err(ExceptionCode::IllegalDataAddress),
            ReadOnlyWrites::DeviceFailure => Err(ExceptionCode::ServerDeviceFailure),
            ReadOnlyWrites::Ignored => Ok(()),
        }
    }

    fn diagnostics(&mut self, pdu: &[u8], out: &mut Vec<u8>) -> Handled {
        check(pdu.len() >= 3)?;
        let sub = word(pdu, 1);
        let data = &pdu[3..];
        let counter = match sub {
            0x00 => {
                check(data.len().is_multiple_of(2))?;
                self.execute()?;
                out.extend_from_slice(pdu);
                return Ok(Answer::Reply);
            }
            0x01 => {
                check(data.len() == 2 && is_restart(&pdu[1..]))?;
                self.execute()?;
                out.extend_from_slice(pdu);
                return Ok(Answer::ReplyThenClear);
            }
            0x04 | 0x0A => {
                check(data == [0, 0])?;
                self.execute()?;
                if sub == 0x04 {
                    self.listen_only = true;
                    return Ok(Answer::Quiet);
                }
                out.extend_from_slice(pdu);
                return Ok(Answer::ReplyThenClear);
            }
            0x0B => self.counters.bus_messages,
            0x0C => self.counters.crc_errors,
            0x0D => self.counters.exceptions,
            0x0E => self.counters.server_messages,
            0x0F => self.counters.no_responses,
            0x10 => self.counters.naks,
            0x11 => self.counters.busy,
            0x12 => self.counters.overruns,
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        check(data == [0, 0])?;
        self.execute()?;
        out.extend_from_slice(&pdu[..3]);
        out.extend_from_slice(&counter.to_be_bytes());
        Ok(Answer::Reply)
    }

    /// Function 43, MEI type 14: read device identification (APP §6.21).
    fn identification(&mut self, pdu: &[u8], out: &mut Vec<u8>) -> Handled {
        check(pdu.len() >= 2)?;
        if pdu[1] != 0x0E {
            return Err(ExceptionCode::IllegalFunction);
        }
        check(pdu.len() == 4)?;
        let (code, object) = (pdu[2], pdu[3]);
        let objects = &self.settings.identification;
        let category = match code {
            0x01 => 0x00..=0x02,
            0x02 => 0x00..=0x7F,
            0x03 | 0x04 => 0x00..=0xFF,
            _ => return Err(ExceptionCode::IllegalDataValue),
        };
        if code == 0x04 {
            address(objects.contains_key(&object))?;
        }
        self.execute()?;
        let objects = &self.settings.identification;
        let conformity = if objects.keys().any(|&id| id >= 0x80) {
            0x83
        } else if objects.keys().any(|&id| id >= 0x03) {
            0x82
        } else {
            0x81
        };
        let header = out.len();
        out.extend_from_slice(&[0x2B, 0x0E, code, conformity, 0x00, 0x00, 0x00]);
        let mut count = 0_u8;
        if code == 0x04 {
            if let Some(value) = objects.get(&object) {
                push_object(out, object, value);
                count = 1;
            }
        } else {
            // An id this stream does not hold restarts it at its first object.
            let start = if category.contains(&object) && objects.contains_key(&object) {
                object
            } else {
                0x00
            };
            for (&id, value) in objects.range(start..=*category.end()) {
                if out.len() - header + 2 + value.len() > MAX_PDU {
                    out[header + 4] = 0xFF;
                    out[header + 5] = id;
                    break;
                }
                push_object(out, id, value);
                count += 1;
            }
        }
        out[header + 6] = count;
        Ok(Answer::Reply)
    }
}

/// A byte count, then `bits` packed LSB first (at most 2000 bits: 250 bytes).
fn push_packed(out: &mut Vec<u8>, bits: &[bool]) {
    let from = out.len();
    out.push(u8::try_from(bits.len().div_ceil(8)).unwrap_or(u8::MAX));
    out.resize(from + 1 + bits.len().div_ceil(8), 0);
    for (i, &bit) in bits.iter().enumerate() {
        if bit {
            out[from + 1 + i / 8] |= 1 << (i % 8);
        }
    }
}

fn push_object(out: &mut Vec<u8>, id: u8, value: &[u8]) {
    // At most 244 bytes (checked in `Unit::new`).
    out.extend_from_slice(&[id, u8::try_from(value.len()).unwrap_or(u8::MAX)]);
    out.extend_from_slice(value);
}

fn bump(counter: &mut u16) {
    *counter = counter.wrapping_add(1);
}

/// Diagnostics 0x01's sub-function and data: `00 01` then `00 00` or `FF 00`.
fn is_restart(sub_and_data: &[u8]) -> bool {
    matches!(sub_and_data, [0x00, 0x01, 0x00 | 0xFF, 0x00])
}

/// Exception 03 unless `ok`.
fn check(ok: bool) -> Result<(), ExceptionCode> {
    if ok {
        Ok(())
    } else {
        Err(ExceptionCode::IllegalDataValue)
    }
}

/// Exception 02 unless `ok`.
/// The writable tables, for [`Unit::may_write`].
#[derive(Clone, Copy)]
enum Table {
    Coils,
    Holding,
}

fn address(ok: bool) -> Result<(), ExceptionCode> {
    if ok {
        Ok(())
    } else {
        Err(ExceptionCode::IllegalDataAddress)
    }
}

/// The big-endian word at `at` (the caller checked the length).
fn word(pdu: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([pdu[at], pdu[at + 1]])
}

fn words(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
}

/// Two bytes per register, for at most 125 registers.
fn byte_count(quantity: u16) -> u8 {
    u8::try_from(2 * usize::from(quantity)).unwrap_or(u8::MAX)
}
