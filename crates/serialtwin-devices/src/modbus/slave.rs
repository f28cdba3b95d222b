//! A Modbus unit on a serial line: its address, and its [`Unit`] answering what is sent to it
//! or to everyone.
//!
//! The RTU framer hands over each request as address, function and data (its CRC checked and
//! removed) and adds the CRC to each reply; the unit answers the PDU. Several slaves share one
//! port as a [`Bus`](serialtwin_core::Bus) routed by [`route`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;

use serialtwin_core::Route;
use serialtwin_core::{
    CharFormat, Context, Device, Framing, Latency, LineConfig, Parity, Replies, Settable,
};

use super::data::{Encoding, Kind, Value};
use super::rtu;
use super::unit::{Access, Delivery, Outcome, Unit};

/// The broadcast address: every unit carries out a write sent to it, and none answers.
pub const BROADCAST: u8 = 0;

/// The highest address a unit may have; 248–255 are reserved (SL §2.2).
pub const MAX_ADDRESS: u8 = 247;

/// An address a unit cannot have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a Modbus unit's address must be from 1 to {MAX_ADDRESS}, not {0}")]
pub struct BadAddress(pub u8);

/// How much room [`Slave`] takes at a time to hand replies out from: a few dozen replies.
const HANDED_BLOCK: usize = 4096;

/// One Modbus unit at its address, as a [`Device`].
#[derive(Debug)]
pub struct Slave {
    address: u8,
    unit: Unit,
    /// The reply being built: the address, then the unit's PDU.
    reply: Vec<u8>,
    /// Where replies are handed out from: each reply a piece split off one allocation, which
    /// is reused once the pieces before it are gone, rather than an allocation per reply.
    handed: BytesMut,
    /// What was declared where, for [`Device::set`].
    declared: BTreeMap<(Table, u16), Declared>,
    /// The run-time keys of the device behind the unit, if a real device's model gave it some
    /// ([`Slave::with_knobs`]).
    knobs: Option<Box<dyn Knobs>>,
    /// Answer every address, with the address asked ([`Slave::answering_every_address`]).
    every_address: bool,
}

/// What a real device's model adds to its unit besides registers: run-time keys that move
/// its plant (`set meter/1 load_w 3000`), and a look at the unit before each request, to
/// bring stored values up to date with the plant and the wall clock.
///
/// The registers' [`Provider`](super::unit::Provider)s compute values at read time from the
/// time since the clock began, which is all that integrating a plant needs. Bits have no
/// providers, and a clock a client may set (an EPEVER's real-time clock) must be stored to be
/// written: [`Knobs::refresh`] keeps those, with the wall time the clock began at.
pub trait Knobs: fmt::Debug + Send {
    /// Set `key` to `value` at `now` (the time since the clock began, as providers see it;
    /// the clock read `epoch` then).
    ///
    /// # Errors
    /// A one-line reason: an unknown key, a value out of range.
    fn set(
        &mut self,
        key: &str,
        value: &str,
        epoch: SystemTime,
        now: Duration,
    ) -> Result<(), String>;

    /// The keys [`Knobs::set`] takes, with their help.
    fn settable(&self) -> Vec<Settable>;

    /// Before `unit` answers a request at `now` (since the clock began, which read `epoch`):
    /// update what the plant or the date say in stored values. Default: nothing to update.
    fn refresh(&mut self, _unit: &mut Unit, _epoch: SystemTime, _now: Duration) {}
}

/// One of a unit's four tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    /// Coils (read and write bits).
    Coil,
    /// Discrete inputs (read-only bits).
    Discrete,
    /// Holding registers.
    Holding,
    /// Input registers (read-only).
    Input,
}

impl Table {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "coil" => Self::Coil,
            "discrete" => Self::Discrete,
            "holding" => Self::Holding,
            "input" => Self::Input,
            _ => return None,
        })
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Coil => "coil",
            Self::Discrete => "discrete",
            Self::Holding => "holding",
            Self::Input => "input",
        })
    }
}

/// What a declaration holds, for [`Device::set`] to change it as declared.
#[derive(Clone, Copy, Debug)]
pub enum Declared {
    /// A bit, with what the client may do to it.
    Bit(Access),
    /// A value in registers, with its encoding and what the client may do to it.
    Registers(Encoding, Access),
    /// A value that moves with the clock: not set from outside.
    Moving,
}

impl Slave {
    /// `unit` at `address` (1 to [`MAX_ADDRESS`]).
    ///
    /// # Errors
    /// [`BadAddress`] for 0 (broadcast) and the reserved 248–255.
    pub fn new(address: u8, unit: Unit) -> Result<Self, BadAddress> {
        if address == BROADCAST || address > MAX_ADDRESS {
            return Err(BadAddress(address));
        }
        Ok(Self {
            address,
            unit,
            reply: Vec::with_capacity(super::functions::MAX_ADU_LEN),
            handed: BytesMut::new(),
            declared: BTreeMap::new(),
            knobs: None,
            every_address: false,
        })
    }

    /// The same unit with `knobs`: keys without a table (`load_w`) go to them.
    #[must_use]
    pub fn with_knobs(mut self, knobs: Box<dyn Knobs>) -> Self {
        self.knobs = Some(knobs);
        self
    }

    /// Answer a request to any address but broadcast, replying with the address it was sent
    /// to: a pymodbus simulator whose server entry has no `device_id` does (its server
    /// context falls back to its one device for every unit id). On a bus, route to it with
    /// [`route_every`].
    #[must_use]
    pub fn answering_every_address(mut self) -> Self {
        self.every_address = true;
        self
    }

    /// Note what was declared at `address` of `table`, so that [`Device::set`]
    /// (`set <port>/<unit> holding.20 5`) can change it as declared.
    pub fn note_declared(&mut self, table: Table, address: u16, declared: Declared) {
        self.declared.insert((table, address), declared);
    }

    /// Its address.
    #[must_use]
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Its unit.
    #[must_use]
    pub fn unit(&self) -> &Unit {
        &self.unit
    }

    /// Its unit, to change.
    pub fn unit_mut(&mut self) -> &mut Unit {
        &mut self.unit
    }
}

/// The line the Modbus standard makes the default: 19,200 baud, 8 data bits, even parity, one
/// stop bit (SL §2.5.1, §3.2); a native UART, whole frames 3.5 characters apart (a master
/// timing gaps must see them); answers within 1–5 ms, as a slave's firmware turns a request
/// around; a partial request forgotten after a second without bytes.
#[must_use]
pub fn standard_line() -> LineConfig {
    LineConfig {
        format: Some(CharFormat {
            parity: Parity::Even,
            ..CharFormat::N81
        }),
        adapter: serialtwin_core::Adapter::Native,
        latency: Latency::Range {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        ..LineConfig::uart(19_200)
    }
}

/// A real device's factory line: [`standard_line`] (a native UART answering within 1–5 ms) at
/// the device's own speed and character format (an Eastron SDM630 leaves the factory at
/// 9600 8N1).
#[must_use]
pub fn factory_line(baud: u32, format: CharFormat) -> LineConfig {
    LineConfig {
        baud: Some(baud),
        format: Some(format),
        ..standard_line()
    }
}

/// A unit address given in a config (`value`, called `name` in the error), checked: 1 to
/// [`MAX_ADDRESS`], as every model that puts a unit on a line takes it.
///
/// # Errors
/// Anything else, at the value.
pub fn address_in_config(
    value: &serde_spanned::Spanned<u32>,
    name: &str,
) -> Result<u8, crate::registry::BuildError> {
    let id = *value.get_ref();
    u8::try_from(id)
        .ok()
        .filter(|a| (1..=MAX_ADDRESS).contains(a))
        .ok_or_else(|| {
            crate::registry::BuildError::at(
                value.span(),
                format!("{name} must be from 1 to {MAX_ADDRESS}, not {id}"),
            )
        })
}

/// Where a request goes on a bus of [`Slave`]s: the unit its first byte names, or every unit
/// for a broadcast. A bus's router.
#[must_use]
pub fn route(request: &[u8]) -> Route {
    match request.first() {
        None => Route::Nobody,
        Some(&BROADCAST) => Route::All,
        Some(&address) => Route::To(u32::from(address)),
    }
}

/// The bus key of a slave answering every address ([`route_every`]).
pub const EVERY_ADDRESS: u32 = 0x100;

/// A bus router for one slave that answers every address: requests to 1-255 go to
/// [`EVERY_ADDRESS`], broadcasts to all.
#[must_use]
pub fn route_every(request: &[u8]) -> Route {
    match request.first() {
        None => Route::Nobody,
        Some(&BROADCAST) => Route::All,
        Some(_) => Route::To(EVERY_ADDRESS),
    }
}

impl Device for Slave {
    type Error = std::convert::Infallible;

    fn framing(&self) -> Framing {
        rtu::framing()
    }

    fn line(&self) -> LineConfig {
        standard_line()
    }

    fn handle(
        &mut self,
        request: &[u8],
        ctx: &mut Context,
        replies: &mut Replies,
    ) -> Result<(), Self::Error> {
        let Some((&address, pdu)) = request.split_first() else {
            return Ok(());
        };
        let delivery = match address {
            BROADCAST => Delivery::Broadcast,
            a if a == self.address || self.every_address => Delivery::Addressed,
            _ => {
                // Another unit's: heard on the line, not answered.
                self.unit.note_other_message();
                return Ok(());
            }
        };
        let clock = ctx.clock();
        let now = if self.knobs.is_some() || self.unit.reads_clock() {
            clock
                .now()
                .duration_since(clock.epoch())
                .unwrap_or_default()
        } else {
            // Nothing of this unit looks at the time (`Unit::reads_clock`).
            Duration::ZERO
        };
        if let Some(knobs) = &mut self.knobs {
            knobs.refresh(&mut self.unit, clock.epoch(), now);
        }
        self.reply.clear();
        self.reply.push(if self.every_address {
            address
        } else {
            self.address
        });
        let outcome = self.unit.answer(pdu, delivery, now, &mut self.reply);
        if let Some(knobs) = &mut self.knobs {
            // At once: a client's write to a stored value the plant keeps (a clock it set)
            // is noticed before time moves on.
            knobs.refresh(&mut self.unit, clock.epoch(), now);
        }
        match outcome {
            Outcome::Normal | Outcome::Exception(_) => {
                if self.handed.capacity() < self.reply.len() {
                    self.handed.reserve(HANDED_BLOCK);
                }
                self.handed.extend_from_slice(&self.reply);
                replies.push(self.handed.split().freeze());
            }
            Outcome::Silent(_) => {}
        }
        Ok(())
    }

    /// `<table>.<address>` (`holding.20`, `coil.0x10`) and a value as the declaration's type
    /// reads it: a number, text for a string, `on`/`off` for a bit.
    fn set(&mut self, key: &str, value: &str, ctx: &mut Context) -> Result<(), String> {
        if let Some(knobs) = &mut self.knobs
            && !key.contains('.')
        {
            let clock = ctx.clock();
            let now = clock
                .now()
                .duration_since(clock.epoch())
                .unwrap_or_default();
            return knobs.set(key, value, clock.epoch(), now);
        }
        let (table, address) = key
            .split_once('.')
            .and_then(|(t, a)| Some((Table::parse(t)?, parse_address(a)?)))
            .ok_or_else(|| {
                format!(
                    "{key:?}: a key is <table>.<address>, table coil, discrete, holding or input"
                )
            })?;
        let declared = self
            .declared
            .get(&(table, address))
            .copied()
            .ok_or_else(|| {
                format!(
                    "unit {} declares no {table} value at {address}",
                    self.address
                )
            })?;
        match declared {
            Declared::Moving => Err(format!(
                "{table} {address} moves with the clock: it cannot be set"
            )),
            Declared::Bit(access) => {
                let bit = match value {
                    "on" | "true" | "1" => true,
                    "off" | "false" | "0" => false,
                    _ => return Err(format!("a bit is on or off, not {value:?}")),
                };
                let bits = if table == Table::Coil {
                    &mut self.unit.coils
                } else {
                    &mut self.unit.discrete_inputs
                };
                bits.set(address, bit, access);
                Ok(())
            }
            Declared::Registers(encoding, access) => {
                let kind = encoding.kind();
                let value = if matches!(kind, Kind::Ascii { .. }) {
                    Value::Text(value.to_owned())
                } else if let Ok(n) = value.parse::<i128>() {
                    Value::Int(n)
                } else {
                    Value::Float(
                        value
                            .parse::<f64>()
                            .map_err(|_| format!("a {kind} is a number, not {value:?}"))?,
                    )
                };
                let registers = if table == Table::Holding {
                    &mut self.unit.holding
                } else {
                    &mut self.unit.input
                };
                registers
                    .set_value(address, &encoding, &value, access)
                    .map_err(|e| format!("{table} {address}: {e}"))
            }
        }
    }

    fn settable(&self) -> Vec<Settable> {
        let mut keys = self
            .knobs
            .as_ref()
            .map(|k| k.settable())
            .unwrap_or_default();
        keys.push(Settable::new(
            "<table>.<address>",
            "a declared value: table coil, discrete, holding or input, the address decimal or \
             0x hex; a number, text for a string, on/off for a bit",
        ));
        keys
    }
}

/// `20` or `0x14`.
fn parse_address(s: &str) -> Option<u16> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}
