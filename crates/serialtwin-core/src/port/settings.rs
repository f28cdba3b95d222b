//! What the client has done to the line: its settings, and the events a port reports.
//!
//! A pty master can see the baud rate (including non-standard rates set through `BOTHER`), the
//! stop bits and hardware/software flow control a client chose. It can **never** see parity or
//! the data-bit count: the kernel's `pty_set_termios()` forces `CS8` and clears `PARENB` on every
//! change, so a pty always reports 8 data bits and no parity whatever the client asked for.
//! [`LineSettings::parity_visible`] says whether the transport could know.

use std::fmt;

/// Number of stop bits per character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum StopBits {
    /// One stop bit.
    #[default]
    One,
    /// Two stop bits (`CSTOPB`).
    Two,
}

/// Parity bit per character.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Parity {
    /// No parity bit.
    #[default]
    None,
    /// Even parity.
    Even,
    /// Odd parity.
    Odd,
}

/// Flow control the client enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FlowControl {
    /// No flow control.
    #[default]
    None,
    /// RTS/CTS (`CRTSCTS`).
    Hardware,
    /// XON/XOFF (`IXON`).
    Software,
}

/// The line settings as a transport sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineSettings {
    /// Bits per second (output speed), including non-standard rates.
    pub baud: u32,
    /// Data bits per character. Always 8 on a pty (see the module docs).
    pub data_bits: u8,
    /// Parity. Always [`Parity::None`] on a pty (see the module docs).
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
    /// Flow control.
    pub flow: FlowControl,
    /// Whether `parity` and `data_bits` were really observed (false on a pty).
    pub parity_visible: bool,
}

impl LineSettings {
    /// 8N1 at `baud`, no flow control, as a transport that sees everything would report it.
    #[must_use]
    pub const fn new(baud: u32) -> Self {
        Self {
            baud,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: StopBits::One,
            flow: FlowControl::None,
            parity_visible: true,
        }
    }

    /// The character format the settings describe (`8N1`...).
    #[must_use]
    pub fn format(&self) -> CharFormat {
        CharFormat {
            data_bits: self.data_bits,
            parity: self.parity,
            stop_bits: self.stop_bits,
        }
    }

    /// Bits on the wire per character: start + data + parity + stop.
    #[must_use]
    pub fn bits_per_char(&self) -> u32 {
        self.format().bits_per_char()
    }
}

impl Default for LineSettings {
    fn default() -> Self {
        Self::new(9600)
    }
}

impl fmt::Display for LineSettings {
    /// `2400 8N1`, with ` rtscts` / ` xonxoff` appended for flow control.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.baud, self.format())?;
        match self.flow {
            FlowControl::None => Ok(()),
            FlowControl::Hardware => f.write_str(" rtscts"),
            FlowControl::Software => f.write_str(" xonxoff"),
        }
    }
}

/// A UART's character format: data bits, parity and stop bits, written the usual way (`8N1`,
/// `7E1`, `8E2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CharFormat {
    /// Data bits per character, 5 to 8.
    pub data_bits: u8,
    /// The parity bit.
    pub parity: Parity,
    /// Stop bits.
    pub stop_bits: StopBits,
}

impl CharFormat {
    /// 8 data bits, no parity, 1 stop bit.
    pub const N81: Self = Self {
        data_bits: 8,
        parity: Parity::None,
        stop_bits: StopBits::One,
    };

    /// Bits on the wire per character: start + data + parity + stop.
    #[must_use]
    pub fn bits_per_char(&self) -> u32 {
        let parity = u32::from(self.parity != Parity::None);
        let stop = match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        1 + u32::from(self.data_bits) + parity + stop
    }
}

impl fmt::Display for CharFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        let stop = match self.stop_bits {
            StopBits::One => 1,
            StopBits::Two => 2,
        };
        write!(f, "{}{parity}{stop}", self.data_bits)
    }
}

/// A character format that is not `<data bits 5-8><N|E|O><stop bits 1|2>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad character format {0:?}: expected data bits 5-8, parity N, E or O, stop bits 1 or 2 (like 8N1 or 7E1)"
)]
pub struct BadCharFormat(String);

impl std::str::FromStr for CharFormat {
    type Err = BadCharFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCharFormat(s.to_owned());
        let &[data, parity, stop] = s.as_bytes() else {
            return Err(bad());
        };
        let data_bits = match data {
            b'5'..=b'8' => data - b'0',
            _ => return Err(bad()),
        };
        let parity = match parity.to_ascii_uppercase() {
            b'N' => Parity::None,
            b'E' => Parity::Even,
            b'O' => Parity::Odd,
            _ => return Err(bad()),
        };
        let stop_bits = match stop {
            b'1' => StopBits::One,
            b'2' => StopBits::Two,
            _ => return Err(bad()),
        };
        Ok(Self {
            data_bits,
            parity,
            stop_bits,
        })
    }
}

/// Something that happened on the line other than data.
///
/// A transport that cannot know an event simply never reports it (a `duplex` pipe reports none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineEvent {
    /// A client opened the port (the first open of a session).
    Opened,
    /// The last client closed the port.
    Closed,
    /// The client changed its line settings (or opened the port, which applies them).
    Settings(LineSettings),
    /// The client flushed its queues (`tcflush`).
    Flush {
        /// The client discarded what it had not yet read (bytes the device sent).
        input: bool,
        /// The client discarded what it had not yet sent.
        output: bool,
    },
    /// The client suspended (`false`) or resumed (`true`) output with `tcflow`.
    Flow(bool),
    /// The client raised (`true`) or dropped DTR. Only a transport that carries modem lines
    /// reports it (an RFC 2217 endpoint; a pty has none).
    Dtr(bool),
    /// The client raised (`true`) or dropped RTS (as [`LineEvent::Dtr`]).
    Rts(bool),
    /// The client started (`true`) or ended a break: the line held at space (as
    /// [`LineEvent::Dtr`]).
    Break(bool),
}

impl fmt::Display for LineEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Opened => f.write_str("open"),
            Self::Closed => f.write_str("close"),
            Self::Settings(s) => write!(f, "settings {s}"),
            Self::Flush { input, output } => match (input, output) {
                (true, true) => f.write_str("flush both"),
                (true, false) => f.write_str("flush input"),
                (false, true) => f.write_str("flush output"),
                (false, false) => f.write_str("flush"),
            },
            Self::Flow(true) => f.write_str("flow start"),
            Self::Flow(false) => f.write_str("flow stop"),
            Self::Dtr(on) => write!(f, "dtr {}", on_off(*on)),
            Self::Rts(on) => write!(f, "rts {}", on_off(*on)),
            Self::Break(on) => write!(f, "break {}", on_off(*on)),
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Whether a client has the port open, as the device's context shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Session {
    /// A client has the port open right now (`None`: the transport cannot tell).
    pub open: Option<bool>,
    /// How many client sessions have begun since the port was created.
    pub count: u64,
}

/// A modem line the device drives towards the client. On the wire (RFC 2217's
/// NOTIFY-MODEMSTATE, an 8250 MSR) each is one bit of the high nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModemLine {
    /// Clear to send.
    Cts,
    /// Data set ready.
    Dsr,
    /// Ring indicator.
    Ri,
    /// Data carrier detect.
    Dcd,
}

impl ModemLine {
    /// The line's bit in an 8250 modem status register.
    #[must_use]
    pub const fn bit(self) -> u8 {
        match self {
            Self::Cts => 0x10,
            Self::Dsr => 0x20,
            Self::Ri => 0x40,
            Self::Dcd => 0x80,
        }
    }

    /// Its name in the control protocol: `cts`, `dsr`, `ri`, `dcd`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Cts => "cts",
            Self::Dsr => "dsr",
            Self::Ri => "ri",
            Self::Dcd => "dcd",
        }
    }

    /// `cts`, `dsr`, `ri`, or `dcd` (also `cd`, pyserial's name).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "cts" => Some(Self::Cts),
            "dsr" => Some(Self::Dsr),
            "ri" => Some(Self::Ri),
            "dcd" | "cd" => Some(Self::Dcd),
            _ => None,
        }
    }
}

/// A line the device drives that `serialtwin ctl line` can change: one of its modem lines, or
/// its transmit line held in break.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceLine {
    /// A modem line (CTS, DSR, RI, DCD), carried as RFC 2217's NOTIFY-MODEMSTATE.
    Modem(ModemLine),
    /// The device holds its transmit line in break (spacing). A receiving 8250 flags this as
    /// "break detect" in its line status register, so RFC 2217 carries it as NOTIFY-LINESTATE
    /// with bit 0x10, to clients whose line-state mask asks for it.
    Break,
}

impl DeviceLine {
    /// Its name in the control protocol: a modem line's ([`ModemLine::name`]) or `break`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Modem(line) => line.name(),
            Self::Break => "break",
        }
    }

    /// A modem line's name ([`ModemLine::parse`]) or `break`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        if name == "break" {
            Some(Self::Break)
        } else {
            ModemLine::parse(name).map(Self::Modem)
        }
    }
}

/// The device's break as network endpoints see it ([`PortHandle::line_break`]).
///
/// A count as well as the state, so that a break begun and ended before an endpoint looked is
/// still seen: a watch channel only keeps the latest value.
///
/// [`PortHandle::line_break`]: crate::PortHandle::line_break
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineBreak {
    /// The device holds the line in break now.
    pub on: bool,
    /// How many breaks the device has begun since the port got network endpoints.
    pub begun: u64,
}
