//! RFC 2217 (Telnet COM-PORT-OPTION), the server side of one TCP connection, without I/O.
//!
//! A client such as pyserial's `rfc2217://` drives a serial port over TCP: Telnet carries the
//! data, and COM-PORT-OPTION subnegotiations carry the line settings, DTR, RTS, break, purges
//! and modem-line notifications. A [`Session`] takes the bytes read from the connection and
//! gives back the device's data, the [`Event`]s the caller must act on and the bytes to write
//! back. The caller owns the socket, so an IAC sequence split across two reads is only parser
//! state, and every chunking of a stream can be tested without one.
//!
//! What a session decides on its own:
//! - **Telnet options.** It asks for COM-PORT-OPTION, SGA and BINARY in both directions
//!   ([`Session::start`]), agrees to those three when the client asks, refuses every other
//!   option (ECHO included: an echo would corrupt binary protocols), and never acknowledges a
//!   request for the state an option is already in, nor the client's answer to one of its own
//!   requests: re-acknowledging is what starts negotiation storms (RFC 854, RFC 1143).
//! - **Data is 8-bit clean** whatever BINARY's state: only IAC is special. pyserial never stuffs
//!   CR NUL, and gensio (ser2net's Telnet) never strips it.
//! - **Every SET is answered** with the server code and the value now in effect, because
//!   pyserial waits for each answer and compares it with what it sent. A value the session
//!   refuses is answered with the value in effect, which pyserial reports as "remote rejected
//!   value".
//! - **PURGE-DATA is not answered here**: the caller purges, then answers with
//!   [`Session::answer_purge`], so that no purged byte can follow the answer.
//!
//! The session never buffers output: while the client has suspended the flow
//! ([`Event::Suspend`]), the caller holds back everything it would write, answers included.

use bytes::{BufMut, BytesMut};

use crate::port::settings::{FlowControl, LineSettings, Parity, StopBits};

/// The longest subnegotiation accepted, counted in bytes between the option and `IAC SE` once
/// doubled 0xFF are undone. The longest COM-PORT-OPTION command a client needs is a 4-byte
/// SET-BAUDRATE, and signatures are short text; anything near this length is abuse, and
/// refusing it bounds what one connection can make the server hold.
pub const MAX_SUBNEGOTIATION: usize = 1024;

// Telnet commands (RFC 854).
pub(crate) const IAC: u8 = 255;
pub(crate) const DONT: u8 = 254;
pub(crate) const DO: u8 = 253;
pub(crate) const WONT: u8 = 252;
pub(crate) const WILL: u8 = 251;
pub(crate) const SB: u8 = 250;
pub(crate) const SE: u8 = 240;

// Telnet options.
pub(crate) const BINARY: u8 = 0;
pub(crate) const SGA: u8 = 3;
pub(crate) const COM_PORT_OPTION: u8 = 44;

// COM-PORT-OPTION client codes (RFC 2217 §1); the server's are the same plus `SERVER`.
pub(crate) const SIGNATURE: u8 = 0;
pub(crate) const SET_BAUDRATE: u8 = 1;
pub(crate) const SET_DATASIZE: u8 = 2;
pub(crate) const SET_PARITY: u8 = 3;
pub(crate) const SET_STOPSIZE: u8 = 4;
pub(crate) const SET_CONTROL: u8 = 5;
pub(crate) const NOTIFY_LINESTATE: u8 = 6;
pub(crate) const NOTIFY_MODEMSTATE: u8 = 7;
pub(crate) const FLOWCONTROL_SUSPEND: u8 = 8;
pub(crate) const FLOWCONTROL_RESUME: u8 = 9;
pub(crate) const SET_LINESTATE_MASK: u8 = 10;
pub(crate) const SET_MODEMSTATE_MASK: u8 = 11;
pub(crate) const PURGE_DATA: u8 = 12;
pub(crate) const SERVER: u8 = 100;

// Modem lines (an 8250 MSR): the states in the high nibble, their changes in the low one.
const DCD: u8 = 0x80;
const RI: u8 = 0x40;
const DSR: u8 = 0x20;
const CTS: u8 = 0x10;
const DELTA_DCD: u8 = 0x08;
const TRAILING_RI: u8 = 0x04;
const DELTA_DSR: u8 = 0x02;
const DELTA_CTS: u8 = 0x01;

/// NOTIFY-LINESTATE's "break-detect" bit (an 8250 LSR's BI): the line has been held in break.
/// [`Session::line_state`] takes it when the device begins a break.
pub const LINESTATE_BREAK: u8 = 0x10;

/// NOTIFY-LINESTATE's framing-error bit: what a UART receiving at another baud rate than the
/// sender's reports with the garbage it reads.
pub const LINESTATE_FRAMING_ERROR: u8 = 0x08;

/// The modem lines reported until [`Session::modem_state`] says otherwise: DCD, DSR and CTS on,
/// as a device with its DTR and RTS raised shows them through a null-modem cable. A pty has no
/// modem lines, so something has to be made up, and a line that looks connected is what
/// clients waiting for DSR or CTS expect.
pub const DEFAULT_MODEM_LINES: u8 = DCD | DSR | CTS;

/// The line as RFC 2217 codes it. The codes are kept as they travel so that every answer
/// repeats the value in effect byte for byte, which is what pyserial checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComSettings {
    /// Bits per second (a big-endian u32 on the wire).
    pub baud: u32,
    /// Data bits per character: 5 to 8.
    pub data_size: u8,
    /// Parity: 1 none, 2 odd, 3 even (RFC 2217's 4 mark and 5 space are refused).
    pub parity: u8,
    /// Stop bits: 1 means one, 2 two (RFC 2217's 3, one and a half, is refused).
    pub stop_size: u8,
    /// Flow control, as SET-CONTROL's outbound (or both directions) values: 1 none,
    /// 2 XON/XOFF, 3 hardware.
    pub flow: u8,
}

impl ComSettings {
    /// 8N1 at `baud` without flow control, the line most devices start with.
    #[must_use]
    pub const fn new(baud: u32) -> Self {
        Self {
            baud,
            data_size: 8,
            parity: 1,
            stop_size: 1,
            flow: 1,
        }
    }
}

/// RFC 2217's codes as the port's settings (the session refuses mark and space parity and
/// 1.5 stop bits, which the port's settings cannot name). Parity is visible: the client said
/// it, where a pty would hide it.
impl From<ComSettings> for LineSettings {
    fn from(s: ComSettings) -> Self {
        Self {
            baud: s.baud,
            data_bits: s.data_size,
            parity: match s.parity {
                2 => Parity::Odd,
                3 => Parity::Even,
                _ => Parity::None,
            },
            stop_bits: if s.stop_size == 2 {
                StopBits::Two
            } else {
                StopBits::One
            },
            flow: match s.flow {
                2 => FlowControl::Software,
                3 => FlowControl::Hardware,
                _ => FlowControl::None,
            },
            parity_visible: true,
        }
    }
}

/// The port's settings as RFC 2217 codes them (what a client asks an access server for).
impl From<&LineSettings> for ComSettings {
    fn from(s: &LineSettings) -> Self {
        Self {
            baud: s.baud,
            data_size: s.data_bits,
            parity: match s.parity {
                Parity::None => 1,
                Parity::Odd => 2,
                Parity::Even => 3,
            },
            stop_size: match s.stop_bits {
                StopBits::One => 1,
                StopBits::Two => 2,
            },
            flow: match s.flow {
                FlowControl::None => 1,
                FlowControl::Software => 2,
                FlowControl::Hardware => 3,
            },
        }
    }
}

/// What the caller must act on. A state (the line, DTR, RTS, break, suspension) is reported
/// when it changes, not on every command, since a client repeats its whole configuration
/// whenever it changes one part of it; a purge is reported every time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Baud, data size, parity, stop size or flow control changed; the whole line now in
    /// effect. A SET that repeats the value in effect is answered but reports nothing.
    Settings(ComSettings),
    /// DTR raised (true) or dropped.
    Dtr(bool),
    /// RTS raised (true) or dropped.
    Rts(bool),
    /// Break on (true) or off.
    Break(bool),
    /// PURGE-DATA: 1 the server's receive buffer (data from the device not yet sent to the
    /// client), 2 its transmit buffer (data from the client not yet given to the device),
    /// 3 both. Only these values are reported. The session does not answer: the caller purges,
    /// then calls [`Session::answer_purge`], so that nothing purged can follow the answer.
    /// Data the client sent before the purge in the same `receive` call is in `data` with the
    /// rest; the caller can count it as already given to the device.
    Purge {
        /// The PURGE-DATA value: 1, 2 or 3.
        value: u8,
    },
    /// FLOWCONTROL-SUSPEND (true) or -RESUME (false): stop, or resume, sending the client
    /// anything, data and answers alike.
    Suspend(bool),
}

/// Why a session gave up on its connection; the caller then drops it.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rfc2217Error {
    /// A subnegotiation ran past [`MAX_SUBNEGOTIATION`] bytes. Only a broken or hostile client
    /// sends one, and holding it would let a client make the server buffer without end.
    #[error("telnet subnegotiation for option {option} longer than {limit} bytes")]
    SubnegotiationTooLong {
        /// The option the subnegotiation was for.
        option: u8,
        /// The limit it passed.
        limit: usize,
    },
}

/// One side of one Telnet option, as RFC 1143's "Q method" keeps it, without the states for
/// turning an option off: the server never asks for that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Q {
    /// Off.
    #[default]
    No,
    /// Off, and we asked for it: the peer's yes is an answer, not a request to acknowledge.
    WantYes,
    /// On.
    Yes,
}

/// Both sides of an option the server supports.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OptionState {
    /// Whether the server does it (the client's DO/DONT, our WILL/WONT).
    pub(crate) us: Q,
    /// Whether the client does it (the client's WILL/WONT, our DO/DONT).
    pub(crate) him: Q,
}

/// The options the server agrees to; every other one stays off in both directions.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    pub(crate) binary: OptionState,
    pub(crate) sga: OptionState,
    pub(crate) com_port: OptionState,
}

impl Options {
    pub(crate) fn get_mut(&mut self, option: u8) -> Option<&mut OptionState> {
        match option {
            BINARY => Some(&mut self.binary),
            SGA => Some(&mut self.sga),
            COM_PORT_OPTION => Some(&mut self.com_port),
            _ => None,
        }
    }

    /// Ask for each `(verb, option)` (`DO`: the other side's, `WILL`: ours) that is neither
    /// asked for nor agreed yet, writing the requests to `out`.
    pub(crate) fn ask(&mut self, requests: &[(u8, u8)], out: &mut BytesMut) {
        for &(verb, option) in requests {
            let Some(state) = self.get_mut(option) else {
                continue;
            };
            let side = if verb == DO {
                &mut state.him
            } else {
                &mut state.us
            };
            if *side == Q::No {
                *side = Q::WantYes;
                out.extend_from_slice(&[IAC, verb, option]);
            }
        }
    }
}

/// Where the parser is in the byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Plain data.
    Data,
    /// After an IAC in the data.
    Iac,
    /// After `IAC WILL`, `WONT`, `DO` or `DONT`: the option comes next.
    Verb(u8),
    /// After `IAC SB`: the option comes next.
    SbOption,
    /// Inside a subnegotiation.
    Sb,
    /// After an IAC inside a subnegotiation.
    SbIac,
}

/// The subnegotiation being read.
#[derive(Debug, Default)]
struct Subnegotiation {
    /// Its option.
    option: u8,
    /// Bytes read so far, un-doubled, whether kept or not: what the limit counts.
    len: usize,
    /// The command and value of a COM-PORT-OPTION subnegotiation; other options are counted
    /// and dropped. Never longer than [`MAX_SUBNEGOTIATION`].
    body: Vec<u8>,
}

impl Subnegotiation {
    fn begin(&mut self, option: u8) {
        self.option = option;
        self.clear();
        if option == COM_PORT_OPTION && self.body.capacity() == 0 {
            // Once, at its final size, so the buffer never grows past the limit.
            self.body.reserve_exact(MAX_SUBNEGOTIATION);
        }
    }

    fn push(&mut self, byte: u8) -> Result<(), Rfc2217Error> {
        if self.len >= MAX_SUBNEGOTIATION {
            return Err(Rfc2217Error::SubnegotiationTooLong {
                option: self.option,
                limit: MAX_SUBNEGOTIATION,
            });
        }
        self.len += 1;
        if self.option == COM_PORT_OPTION {
            self.body.push(byte);
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.len = 0;
        self.body.clear();
    }
}

/// DTR, RTS and break as the client set them.
#[derive(Clone, Copy, Debug)]
struct Control {
    dtr: bool,
    rts: bool,
    break_on: bool,
}

/// The server side of RFC 2217 for one connection: feed it what the client sends
/// ([`receive`](Self::receive)), write what it produces, and tell it about the device's modem
/// and line state.
#[derive(Debug)]
pub struct Session {
    /// The line in effect: every SET answer repeats it.
    settings: ComSettings,
    /// Inbound flow control, coded like [`ComSettings::flow`] (1, 2, 3); it travels as 13 more.
    inbound_flow: u8,
    control: Control,
    /// The device's modem lines (high nibble only): the base for the next deltas.
    modem: u8,
    /// The client's SET-MODEMSTATE-MASK: which modem bits it wants to hear about.
    modem_mask: u8,
    /// The client's SET-LINESTATE-MASK: which line-state bits it wants to hear about.
    line_mask: u8,
    suspended: bool,
    /// COM-PORT-OPTION's agreement as last seen, to notice it starting (and send the first
    /// modem state then).
    agreed: bool,
    /// Our SIGNATURE, sent when the client asks for it.
    signature: Box<[u8]>,
    options: Options,
    state: State,
    sub: Subnegotiation,
    /// Set once the client abused the protocol; every later `receive` fails the same way.
    failed: Option<Rfc2217Error>,
}

impl Session {
    /// A session for a new connection. `initial` is the line in effect before the client says
    /// anything (the device's own), `signature` the text sent to a client asking for ours.
    /// DTR and RTS start on, break off, the modem lines at [`DEFAULT_MODEM_LINES`], the
    /// modem-state mask at 255 and the line-state mask at 0 (RFC 2217's defaults).
    #[must_use]
    pub fn new(initial: ComSettings, signature: &str) -> Self {
        Self {
            settings: initial,
            inbound_flow: if matches!(initial.flow, 1..=3) {
                initial.flow
            } else {
                1
            },
            control: Control {
                dtr: true,
                rts: true,
                break_on: false,
            },
            modem: DEFAULT_MODEM_LINES,
            modem_mask: 255,
            line_mask: 0,
            suspended: false,
            agreed: false,
            signature: signature.as_bytes().into(),
            options: Options::default(),
            state: State::Data,
            sub: Subnegotiation::default(),
            failed: None,
        }
    }

    /// The bytes to send as soon as the connection is accepted: `DO COM-PORT-OPTION`, which
    /// pyserial waits for before anything else, then `WILL` and `DO` for SGA and BINARY.
    /// An option already asked for or agreed is not asked for again.
    pub fn start(&mut self, out: &mut BytesMut) {
        self.options.ask(
            &[
                (DO, COM_PORT_OPTION),
                (WILL, SGA),
                (DO, SGA),
                (WILL, BINARY),
                (DO, BINARY),
            ],
            out,
        );
    }

    /// Takes bytes read from the client, split anywhere: an IAC sequence or a subnegotiation
    /// may end in a later call. Data for the device (doubled 0xFF undone) is appended to
    /// `data`, Telnet and COM-PORT-OPTION answers to `out`, and what the caller must act on to
    /// `events`, all in the order the client sent them.
    ///
    /// Other Telnet commands (NOP, GA, BRK, AYT...) are dropped, and so is an IAC followed by a
    /// byte that is no command. Subnegotiations for other options are read and dropped.
    /// COM-PORT-OPTION commands are obeyed even before the option is agreed: a client that
    /// sends them wants them. Inside a subnegotiation, an IAC followed by anything but IAC or
    /// SE means the `IAC SE` was lost (RFC 855 leaves this open): the subnegotiation is dropped
    /// unread, and the IAC and that byte are taken as a Telnet command.
    ///
    /// # Errors
    /// [`Rfc2217Error::SubnegotiationTooLong`] once a subnegotiation passes
    /// [`MAX_SUBNEGOTIATION`] bytes; what came before it has been handled. Every later call
    /// fails the same way: the caller drops the connection.
    pub fn receive(
        &mut self,
        input: &[u8],
        data: &mut BytesMut,
        events: &mut Vec<Event>,
        out: &mut BytesMut,
    ) -> Result<(), Rfc2217Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut rest = input;
        while let Some((&byte, tail)) = rest.split_first() {
            if self.state == State::Data && byte != IAC {
                // Runs of plain data go through at once.
                let run = rest.iter().position(|&b| b == IAC).unwrap_or(rest.len());
                let (plain, after) = rest.split_at(run);
                data.extend_from_slice(plain);
                rest = after;
                continue;
            }
            rest = tail;
            if let Err(error) = self.step(byte, data, events, out) {
                self.failed = Some(error.clone());
                return Err(error);
            }
        }
        Ok(())
    }

    /// Data from the device, as it goes to the client: every 0xFF doubled, since a single one
    /// would start a Telnet command. Nothing else changes.
    pub fn send_data(data: &[u8], out: &mut BytesMut) {
        out.reserve(data.len());
        for piece in data.split_inclusive(|&b| b == IAC) {
            out.extend_from_slice(piece);
            if piece.last() == Some(&IAC) {
                out.put_u8(IAC);
            }
        }
    }

    /// Answers a PURGE-DATA the caller has carried out ([`Event::Purge`]) with the same
    /// value. Call it once the purge is done: the client keeps whatever follows the answer.
    pub fn answer_purge(&mut self, value: u8, out: &mut BytesMut) {
        put_command(out, PURGE_DATA + SERVER, &[value]);
    }

    /// The device's modem lines, as an 8250 MSR's high nibble (0x80 DCD, 0x40 RI, 0x20 DSR,
    /// 0x10 CTS; the low nibble is ignored). Once COM-PORT-OPTION is agreed, a change is sent
    /// as NOTIFY-MODEMSTATE: the lines, the delta bits against the last lines given (0x01 CTS,
    /// 0x02 DSR, 0x04 RI's trailing edge, 0x08 DCD), masked with the client's modem-state mask,
    /// and nothing if that leaves 0. Lines that did not change send nothing, so the caller may
    /// call this on every poll. Lines given before the agreement are kept and sent when it
    /// comes.
    pub fn modem_state(&mut self, lines: u8, out: &mut BytesMut) {
        let lines = lines & (DCD | RI | DSR | CTS);
        let old = self.modem;
        self.modem = lines;
        if !self.agreed || lines == old {
            return;
        }
        let changed = old ^ lines;
        let mut report = lines;
        for (line, delta) in [(CTS, DELTA_CTS), (DSR, DELTA_DSR), (DCD, DELTA_DCD)] {
            if changed & line != 0 {
                report |= delta;
            }
        }
        if old & RI != 0 && lines & RI == 0 {
            report |= TRAILING_RI;
        }
        report &= self.modem_mask;
        if report != 0 {
            put_command(out, NOTIFY_MODEMSTATE + SERVER, &[report]);
        }
    }

    /// A line state to report (8250 LSR bits: 0x10 break detect, 0x08 framing error, 0x04
    /// parity error...): sent as NOTIFY-LINESTATE once COM-PORT-OPTION is agreed, masked with
    /// the client's line-state mask, and only if that leaves something. The mask starts at 0,
    /// so nothing is sent until the client asks for some bits.
    pub fn line_state(&mut self, state: u8, out: &mut BytesMut) {
        let report = state & self.line_mask;
        if self.agreed && report != 0 {
            put_command(out, NOTIFY_LINESTATE + SERVER, &[report]);
        }
    }

    /// Whether COM-PORT-OPTION is on in either direction: the client said WILL and we said DO
    /// (RFC 2217's way), or it said DO and we said WILL. The first modem state is sent when
    /// this becomes true.
    #[must_use]
    pub fn com_port_agreed(&self) -> bool {
        let com_port = self.options.com_port;
        com_port.us == Q::Yes || com_port.him == Q::Yes
    }

    /// The line in effect.
    #[must_use]
    pub fn settings(&self) -> ComSettings {
        self.settings
    }

    /// Inbound flow control (SET-CONTROL 14, 15, 16), coded like [`ComSettings::flow`]:
    /// 1 none, 2 XON/XOFF, 3 hardware. It is kept apart from `flow` and reported by no event:
    /// an emulated device has no receive buffer to protect, and RFC 2217 lets a client set the
    /// two directions separately.
    #[must_use]
    pub fn inbound_flow(&self) -> u8 {
        self.inbound_flow
    }

    /// Whether DTR is on.
    #[must_use]
    pub fn dtr(&self) -> bool {
        self.control.dtr
    }

    /// Whether RTS is on.
    #[must_use]
    pub fn rts(&self) -> bool {
        self.control.rts
    }

    /// Whether a break is on.
    #[must_use]
    pub fn break_on(&self) -> bool {
        self.control.break_on
    }

    /// Whether the client has suspended the flow (FLOWCONTROL-SUSPEND without a RESUME since).
    #[must_use]
    pub fn suspended(&self) -> bool {
        self.suspended
    }

    /// One byte that is not part of a run of plain data.
    fn step(
        &mut self,
        byte: u8,
        data: &mut BytesMut,
        events: &mut Vec<Event>,
        out: &mut BytesMut,
    ) -> Result<(), Rfc2217Error> {
        match self.state {
            State::Data => {
                if byte == IAC {
                    self.state = State::Iac;
                } else {
                    data.put_u8(byte);
                }
            }
            State::Iac => self.command(byte, data),
            State::Verb(verb) => {
                self.state = State::Data;
                self.negotiate(verb, byte, out);
            }
            State::SbOption => {
                self.sub.begin(byte);
                self.state = State::Sb;
            }
            State::Sb => {
                if byte == IAC {
                    self.state = State::SbIac;
                } else {
                    self.sub.push(byte)?;
                }
            }
            State::SbIac => match byte {
                IAC => {
                    self.state = State::Sb;
                    self.sub.push(IAC)?;
                }
                SE => {
                    self.state = State::Data;
                    self.end_subnegotiation(events, out);
                }
                _ => {
                    self.sub.clear();
                    self.command(byte, data);
                }
            },
        }
        Ok(())
    }

    /// The byte after an IAC outside a subnegotiation.
    fn command(&mut self, byte: u8, data: &mut BytesMut) {
        self.state = match byte {
            IAC => {
                data.put_u8(IAC);
                State::Data
            }
            WILL | WONT | DO | DONT => State::Verb(byte),
            SB => State::SbOption,
            // NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, a stray SE, or no command at all.
            _ => State::Data,
        };
    }

    /// `IAC <verb> <option>` from the client.
    fn negotiate(&mut self, verb: u8, option: u8, out: &mut BytesMut) {
        let state = self.options.get_mut(option);
        match verb {
            WILL => enable(state.map(|s| &mut s.him), DO, DONT, option, out),
            DO => enable(state.map(|s| &mut s.us), WILL, WONT, option, out),
            WONT => disable(state.map(|s| &mut s.him), DONT, option, out),
            _ => disable(state.map(|s| &mut s.us), WONT, option, out),
        }
        let agreed = self.com_port_agreed();
        if agreed && !self.agreed {
            // Always once, whatever the mask: pyserial's modem-line properties raise until
            // they have seen one.
            put_command(
                out,
                NOTIFY_MODEMSTATE + SERVER,
                &[self.modem & self.modem_mask],
            );
        }
        self.agreed = agreed;
    }

    /// A complete subnegotiation has been read.
    fn end_subnegotiation(&mut self, events: &mut Vec<Event>, out: &mut BytesMut) {
        if self.sub.option == COM_PORT_OPTION {
            let body = std::mem::take(&mut self.sub.body);
            if let Some((&code, value)) = body.split_first() {
                self.com_port_command(code, value, events, out);
            }
            self.sub.body = body;
        }
        self.sub.clear();
    }

    /// One COM-PORT-OPTION command from the client (RFC 2217 §2 to §5).
    fn com_port_command(
        &mut self,
        code: u8,
        value: &[u8],
        events: &mut Vec<Event>,
        out: &mut BytesMut,
    ) {
        let line = self.settings;
        match code {
            // An empty signature asks for ours; a client's own is only for its logs.
            SIGNATURE if value.is_empty() => {
                put_command(out, SIGNATURE + SERVER, &self.signature);
            }
            SET_BAUDRATE => {
                // 0 asks for the value in effect. A value shorter than 4 bytes is a Cisco IOS
                // speed index to ser2net; that dialect is not spoken here, so it is refused
                // like any other malformed value.
                if let Some(baud) = <[u8; 4]>::try_from(value)
                    .ok()
                    .map(u32::from_be_bytes)
                    .filter(|&baud| baud != 0)
                {
                    self.change(ComSettings { baud, ..line }, events);
                }
                put_command(out, code + SERVER, &self.settings.baud.to_be_bytes());
            }
            SET_DATASIZE => {
                if let &[data_size @ 5..=8] = value {
                    self.change(ComSettings { data_size, ..line }, events);
                }
                put_command(out, code + SERVER, &[self.settings.data_size]);
            }
            SET_PARITY => {
                // None, odd, even: what the port's settings (and a pty's client) can name.
                // Mark and space are answered with the parity in effect, a refusal pyserial
                // reports as "remote rejected value".
                if let &[parity @ 1..=3] = value {
                    self.change(ComSettings { parity, ..line }, events);
                }
                put_command(out, code + SERVER, &[self.settings.parity]);
            }
            SET_STOPSIZE => {
                // One or two; 1.5 is refused as mark and space parity are.
                if let &[stop_size @ 1..=2] = value {
                    self.change(ComSettings { stop_size, ..line }, events);
                }
                put_command(out, code + SERVER, &[self.settings.stop_size]);
            }
            SET_CONTROL => {
                let answer = self.set_control(value, events);
                put_command(out, code + SERVER, &[answer]);
            }
            NOTIFY_MODEMSTATE => {
                // pyserial's `poll_modem` asks this way: the lines as they are, no deltas, no mask.
                put_command(out, code + SERVER, &[self.modem]);
            }
            FLOWCONTROL_SUSPEND | FLOWCONTROL_RESUME => {
                let suspend = code == FLOWCONTROL_SUSPEND;
                if self.suspended != suspend {
                    self.suspended = suspend;
                    events.push(Event::Suspend(suspend));
                }
            }
            SET_LINESTATE_MASK => {
                if let &[mask] = value {
                    self.line_mask = mask;
                }
                put_command(out, code + SERVER, &[self.line_mask]);
            }
            SET_MODEMSTATE_MASK => {
                if let &[mask] = value {
                    self.modem_mask = mask;
                }
                put_command(out, code + SERVER, &[self.modem_mask]);
            }
            PURGE_DATA => {
                // Another value purges nothing, and an answer would say it did: no answer.
                if let &[value @ 1..=3] = value {
                    events.push(Event::Purge { value });
                }
            }
            // NOTIFY-LINESTATE is the server's to send; unknown codes have no meaning to answer.
            _ => {}
        }
    }

    /// SET-CONTROL (RFC 2217 §3); returns the value to answer with.
    ///
    /// Flow control: 1 to 3 set outbound (or both directions) flow, [`ComSettings::flow`];
    /// 14 to 16 set inbound flow, kept apart ([`Session::inbound_flow`]). The DCD, DTR and DSR
    /// flow controls (17, 18, 19) are refused with the value in effect for their direction:
    /// outbound for 17 and 19, inbound for 18. A value RFC 2217 does not define, or a value
    /// that is not one byte, is answered like the query 0.
    fn set_control(&mut self, value: &[u8], events: &mut Vec<Event>) -> u8 {
        let &[value] = value else {
            return self.settings.flow;
        };
        let control = &mut self.control;
        match value {
            1..=3 => {
                self.change(
                    ComSettings {
                        flow: value,
                        ..self.settings
                    },
                    events,
                );
                self.settings.flow
            }
            4 => on_off(control.break_on, 5),
            5 | 6 => {
                flip(&mut control.break_on, value == 5, Event::Break, events);
                value
            }
            7 => on_off(control.dtr, 8),
            8 | 9 => {
                flip(&mut control.dtr, value == 8, Event::Dtr, events);
                value
            }
            10 => on_off(control.rts, 11),
            11 | 12 => {
                flip(&mut control.rts, value == 11, Event::Rts, events);
                value
            }
            14..=16 => {
                self.inbound_flow = value - 13;
                value
            }
            13 | 18 => self.inbound_flow + 13,
            _ => self.settings.flow,
        }
    }

    /// Takes `new` as the line in effect, reporting it if it differs.
    fn change(&mut self, new: ComSettings, events: &mut Vec<Event>) {
        if new != self.settings {
            self.settings = new;
            events.push(Event::Settings(new));
        }
    }
}

/// The client asks for an option on its side (`WILL`) or ours (`DO`): agree to a supported
/// option that is off, refuse an unsupported one, and stay silent when it is already on or
/// the request answers our own (RFC 1143).
pub(crate) fn enable(side: Option<&mut Q>, agree: u8, refuse: u8, option: u8, out: &mut BytesMut) {
    match side {
        Some(q @ Q::No) => {
            *q = Q::Yes;
            out.extend_from_slice(&[IAC, agree, option]);
        }
        Some(q) => *q = Q::Yes,
        None => out.extend_from_slice(&[IAC, refuse, option]),
    }
}

/// The client turns an option off on its side (`WONT`) or ours (`DONT`): acknowledge only if
/// it was on; a refusal of our request, or of something never on, needs no answer.
pub(crate) fn disable(side: Option<&mut Q>, acknowledge: u8, option: u8, out: &mut BytesMut) {
    match side {
        Some(q @ Q::Yes) => {
            *q = Q::No;
            out.extend_from_slice(&[IAC, acknowledge, option]);
        }
        Some(q) => *q = Q::No,
        None => {}
    }
}

/// The SET-CONTROL answer to a query: `on` if the signal is on, the next value if off.
fn on_off(state: bool, on: u8) -> u8 {
    if state { on } else { on + 1 }
}

/// Sets a signal, reporting it if it changed.
fn flip(signal: &mut bool, on: bool, event: fn(bool) -> Event, events: &mut Vec<Event>) {
    if *signal != on {
        *signal = on;
        events.push(event(on));
    }
}

/// `IAC SB COM-PORT-OPTION <code> <value> IAC SE`, 0xFF in the value doubled (RFC 855).
pub(crate) fn put_command(out: &mut BytesMut, code: u8, value: &[u8]) {
    out.extend_from_slice(&[IAC, SB, COM_PORT_OPTION, code]);
    Session::send_data(value, out);
    out.extend_from_slice(&[IAC, SE]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_settings_and_their_codes_convert_both_ways() {
        let settings = LineSettings {
            parity: Parity::Even,
            stop_bits: StopBits::Two,
            flow: FlowControl::Hardware,
            data_bits: 7,
            parity_visible: true,
            ..LineSettings::new(19_200)
        };
        let codes = ComSettings::from(&settings);
        assert_eq!(
            codes,
            ComSettings {
                baud: 19_200,
                data_size: 7,
                parity: 3,
                stop_size: 2,
                flow: 3
            }
        );
        assert_eq!(LineSettings::from(codes), settings);
        let plain = ComSettings::new(9600);
        assert_eq!(ComSettings::from(&LineSettings::from(plain)), plain);
    }

    const ECHO: u8 = 1;
    /// An option nobody here supports (TERMINAL-TYPE).
    const TERMINAL_TYPE: u8 = 24;

    /// What one or more `receive` calls produced.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Output {
        data: Vec<u8>,
        events: Vec<Event>,
        out: Vec<u8>,
    }

    fn feed(session: &mut Session, input: &[u8]) -> Output {
        let (mut data, mut events, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
        session
            .receive(input, &mut data, &mut events, &mut out)
            .expect("within the limit");
        Output {
            data: data.to_vec(),
            events,
            out: out.to_vec(),
        }
    }

    /// Only the bytes written back.
    fn answer(session: &mut Session, input: &[u8]) -> Vec<u8> {
        let output = feed(session, input);
        assert!(output.data.is_empty(), "no data expected: {output:?}");
        assert!(output.events.is_empty(), "no events expected: {output:?}");
        output.out
    }

    fn started() -> Session {
        let mut session = Session::new(ComSettings::new(9600), "serialtwin");
        session.start(&mut BytesMut::new());
        session
    }

    /// A started session whose client agreed COM-PORT-OPTION (first notification dropped).
    fn agreed() -> Session {
        let mut session = started();
        feed(&mut session, &[IAC, WILL, COM_PORT_OPTION]);
        assert!(session.com_port_agreed());
        session
    }

    /// A COM-PORT-OPTION subnegotiation with any code, 0xFF in the value doubled: what a
    /// client sends, and what a server answers.
    fn sb(code: u8, value: &[u8]) -> Vec<u8> {
        let mut bytes = vec![IAC, SB, COM_PORT_OPTION, code];
        for &b in value {
            bytes.push(b);
            if b == IAC {
                bytes.push(IAC);
            }
        }
        bytes.extend([IAC, SE]);
        bytes
    }

    fn double(data: &[u8]) -> Vec<u8> {
        data.iter()
            .flat_map(|&b| if b == IAC { vec![IAC, IAC] } else { vec![b] })
            .collect()
    }

    fn undouble(wire: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        let mut bytes = wire.iter();
        while let Some(&b) = bytes.next() {
            if b == IAC {
                assert_eq!(bytes.next(), Some(&IAC), "a lone IAC in {wire:x?}");
            }
            data.push(b);
        }
        data
    }

    #[test]
    fn start_asks_for_com_port_sga_and_binary_once() {
        let mut session = Session::new(ComSettings::new(9600), "serialtwin");
        let mut out = BytesMut::new();
        session.start(&mut out);
        assert_eq!(
            &out[..],
            [
                IAC, DO, 44, IAC, WILL, SGA, IAC, DO, SGA, IAC, WILL, BINARY, IAC, DO, BINARY
            ]
        );
        assert!(!session.com_port_agreed());
        let mut again = BytesMut::new();
        session.start(&mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn will_com_port_is_answered_once_and_brings_the_first_modem_state() {
        let mut session = Session::new(ComSettings::new(9600), "serialtwin");
        let mut expected = vec![IAC, DO, 44];
        expected.extend(sb(107, &[DEFAULT_MODEM_LINES]));
        assert_eq!(answer(&mut session, &[IAC, WILL, 44]), expected);
        assert!(session.com_port_agreed());
        assert!(answer(&mut session, &[IAC, WILL, 44]).is_empty());
    }

    #[test]
    fn an_answer_to_our_request_is_not_acknowledged() {
        let mut session = started();
        assert_eq!(
            answer(&mut session, &[IAC, WILL, 44]),
            sb(107, &[DEFAULT_MODEM_LINES])
        );
        for reply in [
            [IAC, WILL, SGA],
            [IAC, DO, SGA],
            [IAC, WILL, BINARY],
            [IAC, DO, BINARY],
        ] {
            assert!(answer(&mut session, &reply).is_empty());
            assert!(answer(&mut session, &reply).is_empty());
        }
    }

    #[test]
    fn do_com_port_is_answered_with_will_once() {
        let mut session = started();
        let mut expected = vec![IAC, WILL, 44];
        expected.extend(sb(107, &[DEFAULT_MODEM_LINES]));
        assert_eq!(answer(&mut session, &[IAC, DO, 44]), expected);
        assert!(answer(&mut session, &[IAC, DO, 44]).is_empty());
        // Already agreed: the client's WILL brings no second first notification.
        assert!(answer(&mut session, &[IAC, WILL, 44]).is_empty());
    }

    #[test]
    fn echo_and_unknown_options_are_refused() {
        let mut session = started();
        for _ in 0..2 {
            assert_eq!(answer(&mut session, &[IAC, DO, ECHO]), [IAC, WONT, ECHO]);
            assert_eq!(answer(&mut session, &[IAC, WILL, ECHO]), [IAC, DONT, ECHO]);
            let (will, refused) = ([IAC, WILL, TERMINAL_TYPE], [IAC, DONT, TERMINAL_TYPE]);
            assert_eq!(answer(&mut session, &will), refused);
            assert_eq!(answer(&mut session, &[IAC, DO, 200]), [IAC, WONT, 200]);
        }
    }

    #[test]
    fn turning_off_what_is_off_gets_nothing() {
        let mut session = Session::new(ComSettings::new(9600), "serialtwin");
        for option in [BINARY, ECHO, SGA, TERMINAL_TYPE, 44, 255] {
            assert!(answer(&mut session, &[IAC, DONT, option]).is_empty());
            assert!(answer(&mut session, &[IAC, WONT, option]).is_empty());
        }
        // A refusal of our own request is not acknowledged either.
        let mut session = started();
        assert!(answer(&mut session, &[IAC, WONT, 44, IAC, DONT, SGA]).is_empty());
        assert!(!session.com_port_agreed());
    }

    #[test]
    fn options_the_client_asks_for_are_agreed_and_turned_off_once() {
        let mut session = Session::new(ComSettings::new(9600), "serialtwin");
        for option in [SGA, BINARY] {
            assert_eq!(
                answer(&mut session, &[IAC, WILL, option]),
                [IAC, DO, option]
            );
            assert_eq!(
                answer(&mut session, &[IAC, DO, option]),
                [IAC, WILL, option]
            );
            assert!(answer(&mut session, &[IAC, WILL, option, IAC, DO, option]).is_empty());
            assert_eq!(
                answer(&mut session, &[IAC, WONT, option]),
                [IAC, DONT, option]
            );
            assert_eq!(
                answer(&mut session, &[IAC, DONT, option]),
                [IAC, WONT, option]
            );
            assert!(answer(&mut session, &[IAC, WONT, option, IAC, DONT, option]).is_empty());
        }
    }

    #[test]
    fn com_port_agreed_again_sends_a_first_modem_state_again() {
        let mut session = agreed();
        assert_eq!(answer(&mut session, &[IAC, WONT, 44]), [IAC, DONT, 44]);
        assert!(!session.com_port_agreed());
        session.modem_state(0x30, &mut BytesMut::new());
        let mut expected = vec![IAC, DO, 44];
        expected.extend(sb(107, &[0x30]));
        assert_eq!(answer(&mut session, &[IAC, WILL, 44]), expected);
    }

    #[test]
    fn data_is_eight_bit_clean_with_iac_undoubled() {
        let mut session = started();
        let output = feed(
            &mut session,
            &[
                1, IAC, IAC, 2, b'\r', 0, b'\r', b'\n', IAC, IAC, IAC, IAC, 0xFE,
            ],
        );
        assert_eq!(
            output.data,
            [1, 0xFF, 2, b'\r', 0, b'\r', b'\n', 0xFF, 0xFF, 0xFE]
        );
        assert!(output.out.is_empty() && output.events.is_empty());
    }

    #[test]
    fn other_telnet_commands_are_dropped() {
        let mut session = agreed();
        // SE outside a subnegotiation, NOP, DM, BRK, IP, AO, AYT, EC, EL, GA, and non-commands.
        for command in (240..=249).chain([0, b'A', 239]) {
            let output = feed(&mut session, &[b'a', IAC, command, b'b']);
            assert_eq!(output.data, b"ab", "IAC {command}");
            assert!(output.out.is_empty() && output.events.is_empty());
        }
        assert!(!session.break_on());
    }

    #[test]
    fn verified_captures() {
        let cases: [(&[u8], &[u8]); 7] = [
            (
                &[0xFF, 0xFA, 0x2C, 0x01, 0x00, 0x00, 0x25, 0x80, 0xFF, 0xF0],
                &[0xFF, 0xFA, 0x2C, 0x65, 0x00, 0x00, 0x25, 0x80, 0xFF, 0xF0],
            ),
            (
                &[0xFF, 0xFA, 0x2C, 0x02, 0x08, 0xFF, 0xF0],
                &[0xFF, 0xFA, 0x2C, 0x66, 0x08, 0xFF, 0xF0],
            ),
            (
                &[0xFF, 0xFA, 0x2C, 0x03, 0x01, 0xFF, 0xF0],
                &[0xFF, 0xFA, 0x2C, 0x67, 0x01, 0xFF, 0xF0],
            ),
            (
                &[0xFF, 0xFA, 0x2C, 0x04, 0x01, 0xFF, 0xF0],
                &[0xFF, 0xFA, 0x2C, 0x68, 0x01, 0xFF, 0xF0],
            ),
            (
                &[0xFF, 0xFA, 0x2C, 0x05, 0x01, 0xFF, 0xF0],
                &[0xFF, 0xFA, 0x2C, 0x69, 0x01, 0xFF, 0xF0],
            ),
            (
                &[0xFF, 0xFA, 0x2C, 0x05, 0x08, 0xFF, 0xF0],
                &[0xFF, 0xFA, 0x2C, 0x69, 0x08, 0xFF, 0xF0],
            ),
            (
                &[0xFF, 0xFA, 0x2C, 0x05, 0x0B, 0xFF, 0xF0],
                &[0xFF, 0xFA, 0x2C, 0x69, 0x0B, 0xFF, 0xF0],
            ),
        ];
        let mut session = agreed();
        for (request, reply) in cases {
            assert_eq!(answer(&mut session, request), reply);
        }
        for value in [1, 2] {
            let output = feed(&mut session, &[0xFF, 0xFA, 0x2C, 0x0C, value, 0xFF, 0xF0]);
            assert_eq!(output.events, [Event::Purge { value }]);
            assert!(output.out.is_empty());
            let mut out = BytesMut::new();
            session.answer_purge(value, &mut out);
            assert_eq!(&out[..], [0xFF, 0xFA, 0x2C, 0x70, value, 0xFF, 0xF0]);
        }
    }

    #[test]
    fn queries_answer_the_value_in_effect() {
        let line = ComSettings {
            baud: 115_200,
            data_size: 7,
            parity: 3,
            stop_size: 2,
            flow: 3,
        };
        let mut session = Session::new(line, "serialtwin");
        let cases = [
            (sb(1, &[0, 0, 0, 0]), sb(101, &115_200_u32.to_be_bytes())),
            (sb(2, &[0]), sb(102, &[7])),
            (sb(3, &[0]), sb(103, &[3])),
            (sb(4, &[0]), sb(104, &[2])),
            (sb(5, &[0]), sb(105, &[3])),
            (sb(5, &[4]), sb(105, &[6])),
            (sb(5, &[7]), sb(105, &[8])),
            (sb(5, &[10]), sb(105, &[11])),
            (sb(5, &[13]), sb(105, &[16])),
        ];
        for (query, reply) in cases {
            assert_eq!(answer(&mut session, &query), reply);
        }
        assert_eq!(session.settings(), line);
    }

    #[test]
    fn invalid_values_are_answered_with_the_value_in_effect() {
        let mut session = agreed();
        let baud = sb(101, &9600_u32.to_be_bytes());
        let cases = [
            // A Cisco speed index to ser2net (shorter than 4 bytes), too long, or empty.
            (sb(1, &[8]), baud.clone()),
            (sb(1, &[0, 0x25, 0x80]), baud.clone()),
            (sb(1, &[0, 0, 0x4B, 0, 0]), baud.clone()),
            (sb(1, &[]), baud),
            (sb(2, &[9]), sb(102, &[8])),
            (sb(2, &[4]), sb(102, &[8])),
            (sb(2, &[0xFF]), sb(102, &[8])),
            (sb(2, &[7, 7]), sb(102, &[8])),
            (sb(2, &[]), sb(102, &[8])),
            (sb(3, &[6]), sb(103, &[1])),
            (sb(3, &[7]), sb(103, &[1])),
            (sb(4, &[4]), sb(104, &[1])),
            (sb(5, &[20]), sb(105, &[1])),
            (sb(5, &[0xFF]), sb(105, &[1])),
            (sb(5, &[]), sb(105, &[1])),
            (sb(5, &[5, 5]), sb(105, &[1])),
        ];
        for (request, reply) in cases {
            assert_eq!(answer(&mut session, &request), reply, "{request:x?}");
        }
        assert_eq!(session.settings(), ComSettings::new(9600));
        assert!(!session.break_on());
    }

    #[test]
    fn mark_space_and_one_and_a_half_stop_bits_are_refused() {
        let mut session = agreed();
        for (code, value, in_effect) in [(3, 4, 1), (3, 5, 1), (4, 3, 1)] {
            let output = feed(&mut session, &sb(code, &[value]));
            assert_eq!(output.out, sb(code + 100, &[in_effect]));
            assert!(output.events.is_empty());
        }
    }

    #[test]
    fn a_change_is_reported_once_with_the_whole_line() {
        let mut session = agreed();
        let output = feed(&mut session, &sb(1, &19_200_u32.to_be_bytes()));
        assert_eq!(output.out, sb(101, &19_200_u32.to_be_bytes()));
        let mut line = ComSettings::new(19_200);
        assert_eq!(output.events, [Event::Settings(line)]);
        assert_eq!(
            answer(&mut session, &sb(1, &19_200_u32.to_be_bytes())),
            sb(101, &19_200_u32.to_be_bytes())
        );
        for (code, value) in [(2, 7), (3, 3), (4, 2), (5, 2)] {
            match code {
                2 => line.data_size = value,
                3 => line.parity = value,
                4 => line.stop_size = value,
                _ => line.flow = value,
            }
            let output = feed(&mut session, &sb(code, &[value]));
            assert_eq!(output.out, sb(code + 100, &[value]));
            assert_eq!(output.events, [Event::Settings(line)]);
            assert_eq!(
                answer(&mut session, &sb(code, &[value])),
                sb(code + 100, &[value])
            );
        }
        assert_eq!(session.settings(), line);
    }

    #[test]
    fn break_dtr_and_rts_are_reported_on_change() {
        let mut session = agreed();
        // Already on: answered, nothing to report.
        assert_eq!(answer(&mut session, &sb(5, &[8])), sb(105, &[8]));
        assert_eq!(answer(&mut session, &sb(5, &[11])), sb(105, &[11]));
        assert_eq!(answer(&mut session, &sb(5, &[6])), sb(105, &[6]));
        let cases = [
            (5, Event::Break(true), 4),
            (6, Event::Break(false), 4),
            (9, Event::Dtr(false), 7),
            (8, Event::Dtr(true), 7),
            (12, Event::Rts(false), 10),
            (11, Event::Rts(true), 10),
        ];
        for (value, event, query) in cases {
            let output = feed(&mut session, &sb(5, &[value]));
            assert_eq!(output.out, sb(105, &[value]));
            assert_eq!(output.events, [event]);
            assert_eq!(answer(&mut session, &sb(5, &[value])), sb(105, &[value]));
            assert_eq!(answer(&mut session, &sb(5, &[query])), sb(105, &[value]));
        }
        feed(&mut session, &sb(5, &[5]));
        feed(&mut session, &sb(5, &[9]));
        feed(&mut session, &sb(5, &[12]));
        assert!(session.break_on() && !session.dtr() && !session.rts());
    }

    #[test]
    fn inbound_flow_is_kept_apart_and_dcd_dtr_dsr_flow_are_refused() {
        let mut session = agreed();
        assert_eq!(answer(&mut session, &sb(5, &[15])), sb(105, &[15]));
        assert_eq!(session.inbound_flow(), 2);
        assert_eq!(answer(&mut session, &sb(5, &[13])), sb(105, &[15]));
        assert_eq!(answer(&mut session, &sb(5, &[0])), sb(105, &[1]));
        assert_eq!(session.settings().flow, 1);
        // Outbound flow leaves inbound as it is.
        let output = feed(&mut session, &sb(5, &[3]));
        assert_eq!(output.events.len(), 1);
        assert_eq!(session.inbound_flow(), 2);
        // 17 and 19 (outbound) and 18 (inbound): the value in effect, nothing changes.
        assert_eq!(answer(&mut session, &sb(5, &[17])), sb(105, &[3]));
        assert_eq!(answer(&mut session, &sb(5, &[18])), sb(105, &[15]));
        assert_eq!(answer(&mut session, &sb(5, &[19])), sb(105, &[3]));
        assert_eq!((session.settings().flow, session.inbound_flow()), (3, 2));
    }

    #[test]
    fn signature_request_is_answered_and_the_clients_own_ignored() {
        let mut session = agreed();
        assert_eq!(answer(&mut session, &sb(0, &[])), sb(100, b"serialtwin"));
        assert!(answer(&mut session, &sb(0, b"pyserial 3.5")).is_empty());
    }

    #[test]
    fn notify_modemstate_request_gets_the_lines_unmasked() {
        let mut session = agreed();
        assert_eq!(answer(&mut session, &sb(11, &[0])), sb(111, &[0]));
        assert_eq!(
            answer(&mut session, &sb(7, &[])),
            sb(107, &[DEFAULT_MODEM_LINES])
        );
        session.modem_state(0x30, &mut BytesMut::new());
        assert_eq!(answer(&mut session, &sb(7, &[])), sb(107, &[0x30]));
        // NOTIFY-LINESTATE is ours to send, and unknown codes mean nothing.
        for code in [6, 13, 99, 101, 112, 255] {
            assert!(
                answer(&mut session, &sb(code, &[1])).is_empty(),
                "code {code}"
            );
        }
    }

    #[test]
    fn masks_are_stored_and_answered_doubled() {
        let mut session = agreed();
        assert_eq!(
            answer(
                &mut session,
                &[0xFF, 0xFA, 0x2C, 0x0B, 0xFF, 0xFF, 0xFF, 0xF0]
            ),
            [0xFF, 0xFA, 0x2C, 0x6F, 0xFF, 0xFF, 0xFF, 0xF0]
        );
        assert_eq!(answer(&mut session, &sb(10, &[0x18])), sb(110, &[0x18]));
        assert_eq!(answer(&mut session, &sb(10, &[])), sb(110, &[0x18]));
        assert_eq!(session.line_mask, 0x18);
        assert_eq!(session.modem_mask, 0xFF);
    }

    #[test]
    fn modem_lines_before_agreement_are_sent_at_agreement() {
        let mut session = started();
        let mut out = BytesMut::new();
        session.modem_state(0x30, &mut out);
        session.modem_state(0x20, &mut out);
        assert!(out.is_empty());
        assert_eq!(answer(&mut session, &[IAC, WILL, 44]), sb(107, &[0x20]));
    }

    #[test]
    fn the_first_modem_state_goes_out_even_when_it_masks_to_nothing() {
        let mut session = started();
        assert_eq!(answer(&mut session, &sb(11, &[0])), sb(111, &[0]));
        session.modem_state(0, &mut BytesMut::new());
        assert_eq!(answer(&mut session, &[IAC, DO, 44]), {
            let mut expected = vec![IAC, WILL, 44];
            expected.extend(sb(107, &[0]));
            expected
        });
    }

    #[test]
    fn modem_changes_carry_deltas_and_the_mask() {
        let mut session = agreed();
        let send = |session: &mut Session, lines| {
            let mut out = BytesMut::new();
            session.modem_state(lines, &mut out);
            out.to_vec()
        };
        assert!(
            send(&mut session, DEFAULT_MODEM_LINES).is_empty(),
            "unchanged"
        );
        assert_eq!(send(&mut session, 0xA0), sb(107, &[0xA1]), "CTS off");
        assert_eq!(
            send(&mut session, 0xE0),
            sb(107, &[0xE0]),
            "RI rising: no delta"
        );
        assert_eq!(
            send(&mut session, 0xA0),
            sb(107, &[0xA4]),
            "RI's trailing edge"
        );
        assert_eq!(
            send(&mut session, 0x30),
            sb(107, &[0x39]),
            "DCD off, CTS on"
        );
        assert!(
            send(&mut session, 0x3F).is_empty(),
            "the low nibble is ignored"
        );
        feed(&mut session, &sb(11, &[0x0F]));
        assert_eq!(
            send(&mut session, 0x10),
            sb(107, &[0x02]),
            "DSR off, deltas only"
        );
        feed(&mut session, &sb(11, &[0x02]));
        assert!(send(&mut session, 0x00).is_empty(), "CTS masked out");
        assert_eq!(send(&mut session, 0x20), sb(107, &[0x02]));
    }

    #[test]
    fn line_states_follow_the_mask_and_the_agreement() {
        let mut session = started();
        feed(&mut session, &sb(10, &[0xFF]));
        let mut out = BytesMut::new();
        session.line_state(0x10, &mut out);
        assert!(out.is_empty(), "not agreed yet");
        let mut session = agreed();
        session.line_state(0x10, &mut out);
        assert!(out.is_empty(), "the mask starts at 0");
        feed(&mut session, &sb(10, &[0x18]));
        session.line_state(0x14, &mut out);
        assert_eq!(&out[..], sb(106, &[0x10]));
        out.clear();
        session.line_state(0x04, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn suspend_and_resume_are_reported_not_answered() {
        let mut session = agreed();
        let output = feed(&mut session, &sb(8, &[]));
        assert_eq!(output.events, [Event::Suspend(true)]);
        assert!(output.out.is_empty() && session.suspended());
        assert!(answer(&mut session, &sb(8, &[])).is_empty());
        let output = feed(&mut session, &sb(9, &[]));
        assert_eq!(output.events, [Event::Suspend(false)]);
        assert!(output.out.is_empty() && !session.suspended());
    }

    #[test]
    fn purge_values_other_than_1_to_3_do_nothing() {
        let mut session = agreed();
        for value in [&[0][..], &[4], &[0xFF], &[], &[1, 1]] {
            assert!(answer(&mut session, &sb(12, value)).is_empty(), "{value:?}");
        }
        assert_eq!(
            feed(&mut session, &sb(12, &[3])).events,
            [Event::Purge { value: 3 }]
        );
    }

    #[test]
    fn subnegotiations_for_other_options_are_skipped() {
        let mut session = agreed();
        let mut input = b"a".to_vec();
        input.extend([
            IAC,
            SB,
            TERMINAL_TYPE,
            0,
            b'x',
            IAC,
            IAC,
            b'm',
            IAC,
            SE,
            b'b',
        ]);
        input.extend([IAC, SB, COM_PORT_OPTION, IAC, SE]);
        let output = feed(&mut session, &input);
        assert_eq!(output.data, b"ab");
        assert!(output.out.is_empty() && output.events.is_empty());
    }

    #[test]
    fn a_lost_se_ends_the_subnegotiation_unread() {
        let mut session = Session::new(ComSettings::new(9600), "serialtwin");
        let output = feed(&mut session, &[IAC, SB, 44, 1, 0, 0, IAC, WILL, SGA, b'z']);
        assert_eq!(output.out, [IAC, DO, SGA]);
        assert_eq!(output.data, b"z");
        // A new subnegotiation in place of the SE: the first is dropped, the second obeyed.
        let mut input = vec![IAC, SB, 44, 1, 0, 0];
        input.extend(sb(2, &[7]));
        let output = feed(&mut session, &input);
        assert_eq!(output.out, sb(102, &[7]));
        assert_eq!(session.settings().baud, 9600);
        assert_eq!(session.settings().data_size, 7);
    }

    #[test]
    fn a_truncated_subnegotiation_waits_for_the_rest() {
        let request = sb(1, &[0, 0, 0x4B, 0]);
        for cut in 0..=request.len() {
            let mut session = agreed();
            let (head, tail) = request.split_at(cut);
            let first = feed(&mut session, head);
            let second = feed(&mut session, tail);
            let (done, waiting) = if cut == request.len() {
                (first, second)
            } else {
                (second, first)
            };
            assert_eq!(waiting, Output::default(), "cut at {cut}");
            assert_eq!(done.out, sb(101, &[0, 0, 0x4B, 0]));
        }
    }

    #[test]
    fn the_limit_counts_undoubled_bytes_and_the_error_sticks() {
        for option in [COM_PORT_OPTION, TERMINAL_TYPE] {
            // Exactly the limit: a client signature (code 0, then 0xFF doubled) is accepted.
            let mut session = agreed();
            let mut input = vec![IAC, SB, option, 0];
            input.extend(double(&[0xFF; MAX_SUBNEGOTIATION - 1]));
            input.extend([IAC, SE, b'k']);
            assert_eq!(feed(&mut session, &input).data, b"k");
            // One more byte fails, and so does everything after.
            let mut input = vec![IAC, SB, option];
            input.extend([b'x'; MAX_SUBNEGOTIATION + 1]);
            let expected = Rfc2217Error::SubnegotiationTooLong {
                option,
                limit: MAX_SUBNEGOTIATION,
            };
            let (mut data, mut events, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
            let result = session.receive(&input, &mut data, &mut events, &mut out);
            assert_eq!(result, Err(expected.clone()));
            let result = session.receive(b"more", &mut data, &mut events, &mut out);
            assert_eq!(result, Err(expected));
            assert!(data.is_empty() && events.is_empty() && out.is_empty());
        }
    }

    #[test]
    fn pyserial_open_gets_every_answer_it_waits_for() {
        let mut session = Session::new(ComSettings::new(9600), "serialtwin");
        let mut out = BytesMut::new();
        session.start(&mut out);
        assert!(out.starts_with(&[IAC, DO, 44]));
        // 1. DO ECHO, WILL SGA, DO SGA, DO COM-PORT, WILL COM-PORT; then its answers to our
        // BINARY requests.
        let requests = [
            0xFF, 0xFD, 0x01, 0xFF, 0xFB, 0x03, 0xFF, 0xFD, 0x03, 0xFF, 0xFD, 0x2C, 0xFF, 0xFB,
            0x2C,
        ];
        let mut expected = vec![IAC, WONT, ECHO, IAC, WILL, 44];
        expected.extend(sb(107, &[DEFAULT_MODEM_LINES]));
        assert_eq!(answer(&mut session, &requests), expected);
        assert!(answer(&mut session, &[IAC, DO, BINARY, IAC, WILL, BINARY]).is_empty());
        assert!(session.com_port_agreed());
        // 3. The four SETs back to back, acknowledged with the same values.
        let sets = [
            sb(1, &9600_u32.to_be_bytes()),
            sb(2, &[8]),
            sb(3, &[1]),
            sb(4, &[1]),
        ];
        let replies: Vec<u8> = sets
            .iter()
            .flat_map(|set| {
                let mut reply = set.clone();
                reply[3] += 100;
                reply
            })
            .collect();
        assert_eq!(answer(&mut session, &sets.concat()), replies);
        // 4. and 5. Flow control none, DTR on, RTS on, one at a time.
        for value in [1, 8, 11] {
            assert_eq!(answer(&mut session, &sb(5, &[value])), sb(105, &[value]));
        }
        // 6. PURGE-DATA 1, then 2, each answered once the caller has purged.
        for value in [1, 2] {
            let output = feed(&mut session, &sb(12, &[value]));
            assert_eq!(output.events, [Event::Purge { value }]);
            assert!(output.out.is_empty() && output.data.is_empty());
            let mut out = BytesMut::new();
            session.answer_purge(value, &mut out);
            assert_eq!(&out[..], sb(112, &[value]));
        }
        assert_eq!(session.settings(), ComSettings::new(9600));
        assert!(session.dtr() && session.rts() && !session.break_on());
    }

    #[test]
    fn pyserial_reconfiguring_reports_only_what_changed() {
        let mut session = agreed();
        // `baudrate = 19200` repeats the whole configuration.
        let mut input = sb(1, &[0, 0, 0x4B, 0]);
        for (code, value) in [(2, 8), (3, 1), (4, 1), (5, 1)] {
            input.extend(sb(code, &[value]));
        }
        let output = feed(&mut session, &input);
        assert_eq!(output.events, [Event::Settings(ComSettings::new(19_200))]);
        let mut expected = sb(101, &[0, 0, 0x4B, 0]);
        for (code, value) in [(102, 8), (103, 1), (104, 1), (105, 1)] {
            expected.extend(sb(code, &[value]));
        }
        assert_eq!(output.out, expected);
    }

    #[test]
    fn send_data_doubles_iac_only() {
        let mut out = BytesMut::new();
        Session::send_data(&[1, 0xFF, 2, 0xFF, 0xFF, b'\r', 0], &mut out);
        assert_eq!(
            &out[..],
            [1, 0xFF, 0xFF, 2, 0xFF, 0xFF, 0xFF, 0xFF, b'\r', 0]
        );
        out.clear();
        Session::send_data(&[], &mut out);
        assert!(out.is_empty());
    }

    /// A client stream mixing data, negotiation, commands and garbage.
    fn random_stream(rng: &mut fastrand::Rng) -> Vec<u8> {
        let mut stream = Vec::new();
        for _ in 0..rng.usize(1..40) {
            match rng.u8(0..9) {
                0 => {
                    let data: Vec<u8> = (0..rng.usize(0..20)).map(|_| interesting(rng)).collect();
                    stream.extend(double(&data));
                }
                1 => {
                    let verb = [WILL, WONT, DO, DONT][rng.usize(0..4)];
                    let option =
                        [BINARY, ECHO, SGA, 44, TERMINAL_TYPE, rng.u8(..)][rng.usize(0..6)];
                    stream.extend([IAC, verb, option]);
                }
                2 => {
                    let value: Vec<u8> = (0..rng.usize(0..6)).map(|_| interesting(rng)).collect();
                    stream.extend(sb(rng.u8(0..14), &value));
                }
                3 => stream.extend([IAC, rng.u8(240..=249)]),
                4 => {
                    let value: Vec<u8> = (0..rng.usize(0..30)).map(|_| rng.u8(..)).collect();
                    stream.extend([IAC, SB, TERMINAL_TYPE]);
                    stream.extend(double(&value));
                    stream.extend([IAC, SE]);
                }
                5 => stream.extend((0..rng.usize(0..10)).map(|_| interesting(rng))),
                6 => stream.extend(sb(SET_CONTROL, &[rng.u8(0..21)])),
                7 => stream.extend(sb(SET_BAUDRATE, &rng.u32(..).to_be_bytes())),
                _ => stream.extend(sb(rng.u8(1..5), &[rng.u8(0..10)])),
            }
        }
        if rng.u8(0..20) == 0 {
            // Past the limit, then more that must never be read.
            stream.extend([IAC, SB, [44, TERMINAL_TYPE][rng.usize(0..2)]]);
            stream.extend((0..=MAX_SUBNEGOTIATION).map(|_| rng.u8(0..IAC)));
            stream.extend(sb(SET_CONTROL, &[5]));
        }
        stream
    }

    /// A byte, often one the parser treats specially.
    fn interesting(rng: &mut fastrand::Rng) -> u8 {
        const SPECIAL: [u8; 12] = [IAC, SB, SE, WILL, WONT, DO, DONT, 44, 0, 1, 5, 12];
        if rng.bool() {
            SPECIAL[rng.usize(0..SPECIAL.len())]
        } else {
            rng.u8(..)
        }
    }

    /// Cuts `stream` into random pieces, empty ones included.
    fn chunks<'a>(rng: &mut fastrand::Rng, stream: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = stream;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(rng.usize(0..=rest.len().min(9)));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }

    /// Feeds `pieces` in order, stopping at the first error.
    fn run(session: &mut Session, pieces: &[&[u8]]) -> (Output, Option<Rfc2217Error>) {
        let (mut data, mut events, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
        let mut error = None;
        for piece in pieces {
            if let Err(e) = session.receive(piece, &mut data, &mut events, &mut out) {
                error = Some(e);
                break;
            }
        }
        let output = Output {
            data: data.to_vec(),
            events,
            out: out.to_vec(),
        };
        (output, error)
    }

    #[test]
    fn any_chunking_gives_the_same_result() {
        let mut rng = fastrand::Rng::with_seed(2217);
        let (mut events, mut answers, mut errors) = (0, 0, 0);
        for case in 0..500 {
            let stream = random_stream(&mut rng);
            let mut whole = started();
            let mut split = started();
            let expected = run(&mut whole, &[&stream]);
            events += expected.0.events.len();
            answers += usize::from(expected.0.out.windows(3).any(|w| w == [IAC, SB, 44]));
            errors += usize::from(expected.1.is_some());
            let pieces = chunks(&mut rng, &stream);
            assert_eq!(
                run(&mut split, &pieces),
                expected,
                "case {case}: {stream:x?}"
            );
            let state = |s: &Session| {
                (
                    s.settings(),
                    s.inbound_flow(),
                    (s.dtr(), s.rts(), s.break_on(), s.suspended()),
                    s.com_port_agreed(),
                    (s.modem_mask, s.line_mask, s.state),
                )
            };
            assert_eq!(state(&split), state(&whole), "case {case}");
        }
        // The streams reach the interesting paths, the limit included.
        assert!(
            events > 500 && answers > 250,
            "{events} events, {answers} answered"
        );
        assert!(errors > 5, "{errors} errors");
    }

    #[test]
    fn random_bytes_never_panic_nor_grow_past_the_limit() {
        let mut rng = fastrand::Rng::with_seed(44);
        for _ in 0..300 {
            let mut session = Session::new(ComSettings::new(rng.u32(..)), "serialtwin");
            if rng.bool() {
                session.start(&mut BytesMut::new());
            }
            let stream: Vec<u8> = (0..rng.usize(0..4096))
                .map(|_| interesting(&mut rng))
                .collect();
            let (mut data, mut events, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
            for piece in chunks(&mut rng, &stream) {
                let result = session.receive(piece, &mut data, &mut events, &mut out);
                assert!(session.sub.len <= MAX_SUBNEGOTIATION);
                assert!(session.sub.body.capacity() <= MAX_SUBNEGOTIATION);
                session.modem_state(rng.u8(..), &mut out);
                session.line_state(rng.u8(..), &mut out);
                if result.is_err() {
                    break;
                }
            }
            assert!(data.len() <= stream.len());
        }
    }

    #[test]
    fn data_with_iac_round_trips_both_ways() {
        let mut rng = fastrand::Rng::with_seed(255);
        for _ in 0..300 {
            let original: Vec<u8> = (0..rng.usize(0..200))
                .map(|_| if rng.u8(0..4) == 0 { IAC } else { rng.u8(..) })
                .collect();
            // Client to server.
            let wire = double(&original);
            let mut session = agreed();
            let (output, error) = run(&mut session, &chunks(&mut rng, &wire));
            assert_eq!(error, None);
            assert_eq!(output.data, original);
            assert!(output.events.is_empty() && output.out.is_empty());
            // Server to client.
            let mut out = BytesMut::new();
            Session::send_data(&original, &mut out);
            assert_eq!(undouble(&out), original);
            assert_eq!(&out[..], double(&original));
        }
    }

    #[test]
    fn a_mebibyte_subnegotiation_fails_fast_without_buffering() {
        for (option, filler) in [
            (COM_PORT_OPTION, b'x'),
            (COM_PORT_OPTION, IAC),
            (TERMINAL_TYPE, 0),
        ] {
            let mut session = agreed();
            feed(&mut session, &[IAC, SB, option]);
            let chunk = vec![filler; 64 * 1024];
            let (mut data, mut events, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
            let mut fed = 0;
            let error = loop {
                match session.receive(&chunk, &mut data, &mut events, &mut out) {
                    Ok(()) => fed += chunk.len(),
                    Err(error) => break error,
                }
                assert!(fed < 1 << 20, "a mebibyte went in unrefused");
            };
            assert_eq!(fed, 0, "refused within the first 64 KiB");
            assert_eq!(
                error,
                Rfc2217Error::SubnegotiationTooLong {
                    option,
                    limit: MAX_SUBNEGOTIATION
                }
            );
            assert!(session.sub.body.capacity() <= MAX_SUBNEGOTIATION);
            assert!(session.sub.len <= MAX_SUBNEGOTIATION);
            assert!(data.is_empty() && events.is_empty() && out.is_empty());
        }
    }
}
