//! RFC 2217 (Telnet COM-PORT-OPTION), the client side of one TCP connection, without I/O.
//!
//! The mirror of the server [`Session`]: a [`Client`] drives a serial
//! port that an access server (ser2net's `telnet(rfc2217)`, serialtwin's own `rfc2217`
//! endpoint) shares over TCP. It takes the bytes read from the connection and gives back the
//! device's data, the [`ClientEvent`]s (answers, modem and line state) and the bytes to write
//! back; the caller owns the socket, so an IAC sequence split across reads is only parser
//! state and every chunking can be tested without one. `serialtwin tap --upstream
//! rfc2217://host:port` is its user.
//!
//! What a client decides on its own:
//! - **Telnet options.** It offers COM-PORT-OPTION (`WILL`, the client's side by RFC 2217
//!   §1), asks for BINARY and SGA both ways ([`Client::start`]), agrees to those three when
//!   the server asks, and refuses every other option (ECHO included: gensio offers it, and an
//!   echo would corrupt binary protocols). Requests for the state an option is already in, and
//!   the server's answers to its own requests, are not acknowledged (RFC 854, RFC 1143).
//! - **Data is 8-bit clean** whatever BINARY's state: only IAC is special, and a 0xFF goes on
//!   the wire as `IAC IAC` both ways ([`Client::send_data`]).
//! - **Answers are matched, not awaited.** Each SET and PURGE-DATA sent is remembered in
//!   order per command; an answer takes the oldest one and is reported with it
//!   ([`ClientEvent::Answer`]), so the caller sees a refused value. Waiting (and how long) is
//!   the caller's business: [`Client::unanswered`] says what is still open. Servers differ
//!   here: ser2net in front of a pty never answers SET-CONTROL, so a caller must not wait for
//!   that answer without a bound.
//!
//! Input the client cannot make sense of is an error, never a panic and never a reason to
//! buffer without end: a subnegotiation longer than [`MAX_SUBNEGOTIATION`], one that does not
//! end in `IAC SE`, or a server answer too short for its command
//! ([`Rfc2217ClientError`]).

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use super::rfc2217::{
    BINARY, COM_PORT_OPTION, ComSettings, DO, DONT, FLOWCONTROL_RESUME, FLOWCONTROL_SUSPEND, IAC,
    MAX_SUBNEGOTIATION, NOTIFY_LINESTATE, NOTIFY_MODEMSTATE, Options, PURGE_DATA, Q, SB, SE,
    SERVER, SET_BAUDRATE, SET_CONTROL, SET_DATASIZE, SET_PARITY, SET_STOPSIZE, SGA, SIGNATURE,
    Session, WILL, WONT, disable, enable, put_command,
};

/// How many sent commands of one kind are remembered while unanswered. A server that never
/// answers one kind (ser2net on a pty and SET-CONTROL) would otherwise make the list grow
/// with every command; past this the oldest is forgotten, its answer long overdue.
pub const MAX_UNANSWERED: usize = 16;

/// A client command that the server answers (RFC 2217 §2, §3, §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// SET-BAUDRATE (1): bits per second.
    Baud,
    /// SET-DATASIZE (2): 5 to 8.
    DataSize,
    /// SET-PARITY (3): 1 none, 2 odd, 3 even, 4 mark, 5 space.
    Parity,
    /// SET-STOPSIZE (4): 1 one, 2 two, 3 one and a half.
    StopSize,
    /// SET-CONTROL (5): flow control, break, DTR, RTS.
    Control,
    /// PURGE-DATA (12): 1 the server's receive buffer, 2 its transmit buffer, 3 both.
    Purge,
}

impl Command {
    /// Every command, in the order of [`Command::index`].
    const ALL: [Self; 6] = [
        Self::Baud,
        Self::DataSize,
        Self::Parity,
        Self::StopSize,
        Self::Control,
        Self::Purge,
    ];

    /// The client's code on the wire; the server answers with this plus 100.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::Baud => SET_BAUDRATE,
            Self::DataSize => SET_DATASIZE,
            Self::Parity => SET_PARITY,
            Self::StopSize => SET_STOPSIZE,
            Self::Control => SET_CONTROL,
            Self::Purge => PURGE_DATA,
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Baud => 0,
            Self::DataSize => 1,
            Self::Parity => 2,
            Self::StopSize => 3,
            Self::Control => 4,
            Self::Purge => 5,
        }
    }

    /// The command a server code answers.
    fn answered_by(server_code: u8) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.code() + SERVER == server_code)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Baud => "SET-BAUDRATE",
            Self::DataSize => "SET-DATASIZE",
            Self::Parity => "SET-PARITY",
            Self::StopSize => "SET-STOPSIZE",
            Self::Control => "SET-CONTROL",
            Self::Purge => "PURGE-DATA",
        })
    }
}

/// What the server said that the caller may act on, in the order it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// COM-PORT-OPTION agreed (true: the server said `DO`, or `WILL` and we said `DO`) or
    /// refused (false: `DONT` to our `WILL`, or dropped later). Without it the server is no
    /// RFC 2217 server, and nothing but bytes will pass.
    ComPort(bool),
    /// The server answered a command with `value` (a baud rate, or a one-byte code).
    Answer {
        /// What it answers.
        command: Command,
        /// The value the server says is in effect.
        value: u32,
        /// The value asked for by the oldest unanswered command of this kind, or `None` if
        /// none was open (a server speaking unasked). A value different from `asked` is a
        /// refusal: the server keeps `value`.
        asked: Option<u32>,
    },
    /// NOTIFY-MODEMSTATE: the server's modem lines as an 8250 MSR (0x80 CD, 0x40 RI, 0x20 DSR,
    /// 0x10 CTS; deltas in the low nibble).
    ModemState(u8),
    /// NOTIFY-LINESTATE: an 8250 LSR (0x10 break detect, 0x08 framing error...).
    LineState(u8),
    /// The server's SIGNATURE text (sent when asked, or on its own).
    Signature(Vec<u8>),
    /// FLOWCONTROL-SUSPEND (true) or -RESUME (false): stop, or resume, sending the server
    /// anything, data and commands alike (RFC 2217 §5).
    Suspend(bool),
}

/// Why a client gave up on its connection; the caller then drops it.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rfc2217ClientError {
    /// A subnegotiation ran past [`MAX_SUBNEGOTIATION`] bytes: holding it would let a server
    /// make the client buffer without end.
    #[error("telnet subnegotiation for option {option} longer than {limit} bytes")]
    SubnegotiationTooLong {
        /// The option the subnegotiation was for.
        option: u8,
        /// The limit it passed.
        limit: usize,
    },
    /// Inside a subnegotiation, an IAC followed by something other than IAC or SE: the
    /// subnegotiation never ended (RFC 855).
    #[error("telnet subnegotiation for option {option} not ended by IAC SE (IAC then byte {byte})")]
    UnterminatedSubnegotiation {
        /// The option the subnegotiation was for.
        option: u8,
        /// The byte after the IAC.
        byte: u8,
    },
    /// A COM-PORT-OPTION answer too short for its command (a baud rate needs 4 bytes, the
    /// others one).
    #[error("COM-PORT-OPTION answer {code} with {len} value bytes: too short")]
    Malformed {
        /// The server's code.
        code: u8,
        /// How many value bytes it had.
        len: usize,
    },
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

/// The client side of RFC 2217 for one connection: feed it what the server sends
/// ([`receive`](Self::receive)), write what it produces, and ask it to encode the commands.
#[derive(Debug)]
pub struct Client {
    /// Telnet options; `us` is the client's side (the server's DO/DONT), `him` the server's.
    options: Options,
    state: State,
    /// The option of the subnegotiation being read.
    sub_option: u8,
    /// Its bytes so far, un-doubled (COM-PORT-OPTION only; other options are counted and
    /// dropped). Never longer than [`MAX_SUBNEGOTIATION`].
    sub: Vec<u8>,
    /// How many bytes the subnegotiation had so far, kept or not: what the limit counts.
    sub_len: usize,
    /// Per [`Command::index`], the values sent and not yet answered, oldest first.
    asked: [VecDeque<u32>; 6],
    /// Whether [`Client::start`] offered COM-PORT-OPTION: only then is a `DONT` a refusal.
    offered: bool,
    /// COM-PORT-OPTION as last reported: agreed, refused, or not settled yet.
    verdict: Option<bool>,
    /// Whether the server has suspended our sending.
    suspended: bool,
    /// The last NOTIFY-MODEMSTATE.
    modem: Option<u8>,
    /// Our SIGNATURE, sent when the server asks for it.
    signature: Box<[u8]>,
    /// Set once the server broke the protocol; every later `receive` fails the same way.
    failed: Option<Rfc2217ClientError>,
}

impl Client {
    /// A client for a new connection; `signature` is the text sent to a server asking for ours.
    #[must_use]
    pub fn new(signature: &str) -> Self {
        Self {
            options: Options::default(),
            state: State::Data,
            sub_option: 0,
            sub: Vec::new(),
            sub_len: 0,
            asked: Default::default(),
            offered: false,
            verdict: None,
            suspended: false,
            modem: None,
            signature: signature.as_bytes().into(),
            failed: None,
        }
    }

    /// The bytes to send as soon as the connection is up: `WILL COM-PORT-OPTION` (the
    /// client's side, RFC 2217 §1), then `WILL` and `DO` for BINARY and SGA. An option already
    /// asked for or agreed is not asked for again.
    pub fn start(&mut self, out: &mut BytesMut) {
        self.offered = true;
        self.options.ask(
            &[
                (WILL, COM_PORT_OPTION),
                (WILL, BINARY),
                (DO, BINARY),
                (WILL, SGA),
                (DO, SGA),
            ],
            out,
        );
    }

    /// Takes bytes read from the server, split anywhere. The device's data (doubled 0xFF
    /// undone) is appended to `data`, Telnet answers to `out`, and what the caller may act on
    /// to `events`, all in the order the server sent them. Other Telnet commands (NOP, GA,
    /// AYT...) and subnegotiations for other options are dropped; so are COM-PORT-OPTION
    /// codes a server does not send.
    ///
    /// # Errors
    /// [`Rfc2217ClientError`] when the server breaks the protocol; what came before has been
    /// handled. Every later call fails the same way: the caller drops the connection.
    pub fn receive(
        &mut self,
        input: &[u8],
        data: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
        out: &mut BytesMut,
    ) -> Result<(), Rfc2217ClientError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut rest = input;
        while let Some((&byte, tail)) = rest.split_first() {
            if self.state == State::Data && byte != IAC {
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

    /// Appends `data` for the device to `out`, every 0xFF doubled.
    pub fn send_data(data: &[u8], out: &mut BytesMut) {
        Session::send_data(data, out);
    }

    /// Asks for `line`: SET-BAUDRATE, SET-DATASIZE, SET-PARITY and SET-STOPSIZE, then
    /// SET-CONTROL with its flow control (1 none, 2 XON/XOFF, 3 hardware), as pyserial
    /// configures a port. Each is remembered until answered.
    pub fn set_line(&mut self, line: ComSettings, out: &mut BytesMut) {
        self.send(Command::Baud, line.baud, out);
        self.send(Command::DataSize, line.data_size.into(), out);
        self.send(Command::Parity, line.parity.into(), out);
        self.send(Command::StopSize, line.stop_size.into(), out);
        self.send(Command::Control, line.flow.into(), out);
    }

    /// SET-CONTROL `value` (RFC 2217 §3: 5/6 break on/off, 8/9 DTR on/off, 11/12 RTS on/off,
    /// 1 to 3 and 14 to 19 flow control, the others queries), remembered until answered.
    pub fn control(&mut self, value: u8, out: &mut BytesMut) {
        self.send(Command::Control, value.into(), out);
    }

    /// PURGE-DATA `value` (1 the server's receive buffer, 2 its transmit buffer, 3 both),
    /// remembered until answered.
    pub fn purge(&mut self, value: u8, out: &mut BytesMut) {
        self.send(Command::Purge, value.into(), out);
    }

    /// Asks for the server's SIGNATURE (an empty one is the request); it comes back as
    /// [`ClientEvent::Signature`], if the server answers at all.
    pub fn ask_signature(out: &mut BytesMut) {
        put_command(out, SIGNATURE, &[]);
    }

    /// How many `command`s sent are still unanswered (at most [`MAX_UNANSWERED`]).
    #[must_use]
    pub fn unanswered(&self, command: Command) -> usize {
        self.asked[command.index()].len()
    }

    /// Whether COM-PORT-OPTION is on in either direction (the server said DO to our WILL, or
    /// WILL and we said DO).
    #[must_use]
    pub fn com_port_agreed(&self) -> bool {
        let com_port = self.options.com_port;
        com_port.us == Q::Yes || com_port.him == Q::Yes
    }

    /// Whether the server refused COM-PORT-OPTION outright: it said DONT to our WILL, and has
    /// not offered the option itself.
    #[must_use]
    pub fn com_port_refused(&self) -> bool {
        let com_port = self.options.com_port;
        self.offered && com_port.us == Q::No && com_port.him != Q::Yes
    }

    /// Whether the server has suspended our sending (FLOWCONTROL-SUSPEND without a RESUME).
    #[must_use]
    pub fn suspended(&self) -> bool {
        self.suspended
    }

    /// The server's last NOTIFY-MODEMSTATE, if any came.
    #[must_use]
    pub fn modem_state(&self) -> Option<u8> {
        self.modem
    }

    /// Encodes `command` with `value` and remembers it.
    fn send(&mut self, command: Command, value: u32, out: &mut BytesMut) {
        if command == Command::Baud {
            put_command(out, command.code(), &value.to_be_bytes());
        } else {
            // Every other command's value is one byte; the callers pass a u8.
            put_command(out, command.code(), &[value.to_be_bytes()[3]]);
        }
        let asked = &mut self.asked[command.index()];
        if asked.len() == MAX_UNANSWERED {
            asked.pop_front();
        }
        asked.push_back(value);
    }

    /// The oldest open `command` an answer with `value` answers. SET-CONTROL values come in
    /// groups (outbound flow, break, DTR, RTS, inbound flow) and a server answers each with a
    /// value of its group, so the oldest of the answer's group is taken: a server that drops
    /// some answers (or a list cut at [`MAX_UNANSWERED`]) does not shift the rest onto the
    /// wrong requests. Without one of its group, the oldest of all.
    fn take_asked(&mut self, command: Command, value: u32) -> Option<u32> {
        let asked = &mut self.asked[command.index()];
        let same = if command == Command::Control {
            asked
                .iter()
                .position(|&v| control_group(v) == control_group(value))
        } else {
            None
        };
        asked.remove(same.unwrap_or(0))
    }

    /// One byte that is not part of a run of plain data.
    fn step(
        &mut self,
        byte: u8,
        data: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
        out: &mut BytesMut,
    ) -> Result<(), Rfc2217ClientError> {
        match self.state {
            State::Data => {
                if byte == IAC {
                    self.state = State::Iac;
                } else {
                    data.put_u8(byte);
                }
            }
            State::Iac => {
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
            State::Verb(verb) => {
                self.state = State::Data;
                self.negotiate(verb, byte, events, out);
            }
            State::SbOption => {
                self.sub_option = byte;
                self.sub.clear();
                self.sub_len = 0;
                if byte == COM_PORT_OPTION && self.sub.capacity() == 0 {
                    // Once, at its final size, so the buffer never grows past the limit.
                    self.sub.reserve_exact(MAX_SUBNEGOTIATION);
                }
                self.state = State::Sb;
            }
            State::Sb => {
                if byte == IAC {
                    self.state = State::SbIac;
                } else {
                    self.push_sub(byte)?;
                }
            }
            State::SbIac => match byte {
                IAC => {
                    self.state = State::Sb;
                    self.push_sub(IAC)?;
                }
                SE => {
                    self.state = State::Data;
                    if self.sub_option == COM_PORT_OPTION {
                        let body = std::mem::take(&mut self.sub);
                        let done = match body.split_first() {
                            Some((&code, value)) => self.com_port(code, value, events, out),
                            None => Ok(()),
                        };
                        self.sub = body;
                        self.sub.clear();
                        done?;
                    }
                }
                _ => {
                    return Err(Rfc2217ClientError::UnterminatedSubnegotiation {
                        option: self.sub_option,
                        byte,
                    });
                }
            },
        }
        Ok(())
    }

    fn push_sub(&mut self, byte: u8) -> Result<(), Rfc2217ClientError> {
        if self.sub_len >= MAX_SUBNEGOTIATION {
            return Err(Rfc2217ClientError::SubnegotiationTooLong {
                option: self.sub_option,
                limit: MAX_SUBNEGOTIATION,
            });
        }
        self.sub_len += 1;
        if self.sub_option == COM_PORT_OPTION {
            self.sub.push(byte);
        }
        Ok(())
    }

    /// `IAC <verb> <option>` from the server.
    fn negotiate(
        &mut self,
        verb: u8,
        option: u8,
        events: &mut Vec<ClientEvent>,
        out: &mut BytesMut,
    ) {
        let state = self.options.get_mut(option);
        match verb {
            WILL => enable(state.map(|s| &mut s.him), DO, DONT, option, out),
            DO => enable(state.map(|s| &mut s.us), WILL, WONT, option, out),
            WONT => disable(state.map(|s| &mut s.him), DONT, option, out),
            _ => disable(state.map(|s| &mut s.us), WONT, option, out),
        }
        if option == COM_PORT_OPTION {
            let verdict = if self.com_port_agreed() {
                Some(true)
            } else if self.com_port_refused() {
                Some(false)
            } else {
                None
            };
            if let Some(agreed) = verdict
                && verdict != self.verdict
            {
                events.push(ClientEvent::ComPort(agreed));
            }
            self.verdict = verdict;
        }
    }

    /// One COM-PORT-OPTION command from the server.
    fn com_port(
        &mut self,
        code: u8,
        value: &[u8],
        events: &mut Vec<ClientEvent>,
        out: &mut BytesMut,
    ) -> Result<(), Rfc2217ClientError> {
        let malformed = || Rfc2217ClientError::Malformed {
            code,
            len: value.len(),
        };
        if let Some(command) = Command::answered_by(code) {
            // A longer value is padding (sredird pads its baud answer with NULs; pyserial
            // compares only the leading bytes too).
            let value = if command == Command::Baud {
                let bytes: [u8; 4] = value
                    .get(..4)
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(malformed)?;
                u32::from_be_bytes(bytes)
            } else {
                u32::from(*value.first().ok_or_else(malformed)?)
            };
            let asked = self.take_asked(command, value);
            events.push(ClientEvent::Answer {
                command,
                value,
                asked,
            });
            return Ok(());
        }
        match code.checked_sub(SERVER) {
            Some(SIGNATURE) if value.is_empty() => put_command(out, SIGNATURE, &self.signature),
            Some(SIGNATURE) => events.push(ClientEvent::Signature(value.to_vec())),
            Some(NOTIFY_MODEMSTATE) => {
                let lines = *value.first().ok_or_else(malformed)?;
                self.modem = Some(lines);
                events.push(ClientEvent::ModemState(lines));
            }
            Some(NOTIFY_LINESTATE) => {
                events.push(ClientEvent::LineState(
                    *value.first().ok_or_else(malformed)?,
                ));
            }
            Some(FLOWCONTROL_SUSPEND | FLOWCONTROL_RESUME) => {
                let suspend = code == FLOWCONTROL_SUSPEND + SERVER;
                if self.suspended != suspend {
                    self.suspended = suspend;
                    events.push(ClientEvent::Suspend(suspend));
                }
            }
            // Mask answers (never asked here), client codes, unknown codes: nothing to act on.
            _ => {}
        }
        Ok(())
    }
}

/// Which setting a SET-CONTROL value is about (RFC 2217 §3): 0 outbound (or both
/// directions') flow control, 1 break, 2 DTR, 3 RTS, 4 inbound flow control; anything else 5.
fn control_group(value: u32) -> u8 {
    match value {
        0..=3 | 17 | 19 => 0,
        4..=6 => 1,
        7..=9 => 2,
        10..=12 => 3,
        13..=16 | 18 => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::rfc2217::{Event, Session};

    const ECHO: u8 = 1;

    /// What one or more `receive` calls produced.
    #[derive(Debug, Default)]
    struct Got {
        data: BytesMut,
        events: Vec<ClientEvent>,
        out: BytesMut,
    }

    fn feed(client: &mut Client, input: &[u8]) -> Got {
        let mut got = Got::default();
        client
            .receive(input, &mut got.data, &mut got.events, &mut got.out)
            .unwrap();
        got
    }

    /// `input` one byte per call, as the slowest network would hand it over.
    fn feed_bytewise(client: &mut Client, input: &[u8]) -> Got {
        let mut got = Got::default();
        for byte in input {
            client
                .receive(
                    std::slice::from_ref(byte),
                    &mut got.data,
                    &mut got.events,
                    &mut got.out,
                )
                .unwrap();
        }
        got
    }

    fn started() -> (Client, BytesMut) {
        let mut client = Client::new("serialtwin tap");
        let mut out = BytesMut::new();
        client.start(&mut out);
        (client, out)
    }

    fn answer(code: u8, value: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_command(&mut out, code, value);
        out.to_vec()
    }

    #[test]
    fn start_offers_com_port_and_asks_for_binary_and_sga() {
        let (mut client, out) = started();
        assert_eq!(
            &out[..],
            [
                IAC, WILL, 44, IAC, WILL, BINARY, IAC, DO, BINARY, IAC, WILL, SGA, IAC, DO, SGA
            ]
        );
        // Asked once only.
        let mut again = BytesMut::new();
        client.start(&mut again);
        assert!(again.is_empty());
        assert!(!client.com_port_agreed() && !client.com_port_refused());
    }

    #[test]
    fn gensio_opening_is_answered_without_acknowledging_answers() {
        let (mut client, _) = started();
        // What gensio (ser2net 4) sends on connect, `telnet_server_init_seq`.
        let gensio = [
            IAC, WILL, SGA, IAC, DO, SGA, IAC, WILL, ECHO, IAC, DONT, ECHO, IAC, DO, BINARY, IAC,
            WILL, BINARY, IAC, DO, 44,
        ];
        let got = feed(&mut client, &gensio);
        // Our own requests answered: silence. ECHO refused once; its DONT needs nothing.
        assert_eq!(&got.out[..], [IAC, DONT, ECHO]);
        assert_eq!(got.events, [ClientEvent::ComPort(true)]);
        assert!(client.com_port_agreed());
        assert!(got.data.is_empty());
    }

    #[test]
    fn a_refused_com_port_is_reported_once() {
        let (mut client, _) = started();
        let got = feed(&mut client, &[IAC, DONT, 44, IAC, DONT, 44]);
        assert_eq!(got.events, [ClientEvent::ComPort(false)]);
        assert!(client.com_port_refused());
        assert!(got.out.is_empty(), "a refusal of our offer needs no answer");
    }

    #[test]
    fn unknown_options_are_refused_and_a_server_offer_of_com_port_is_taken() {
        let (mut client, _) = started();
        let got = feed(&mut client, &[IAC, DO, 24, IAC, WILL, 24, IAC, WILL, 44]);
        assert_eq!(&got.out[..], [IAC, WONT, 24, IAC, DONT, 24, IAC, DO, 44]);
        assert_eq!(got.events, [ClientEvent::ComPort(true)]);
    }

    #[test]
    fn data_is_undoubled_and_commands_in_it_are_dropped() {
        let (mut client, _) = started();
        // 0xFF doubled, a NOP (241) and a GA (249) in the data, CR NUL left alone.
        let wire = [1, IAC, IAC, 2, IAC, 241, 3, IAC, 249, b'\r', 0, IAC, IAC];
        let whole = feed(&mut client, &wire);
        assert_eq!(&whole.data[..], [1, 0xFF, 2, 3, b'\r', 0, 0xFF]);
        let (mut client, _) = started();
        let split = feed_bytewise(&mut client, &wire);
        assert_eq!(split.data, whole.data);
    }

    #[test]
    fn data_sent_is_doubled() {
        let mut out = BytesMut::new();
        Client::send_data(&[0xFF, 1, 0xFF, 0xFF], &mut out);
        assert_eq!(&out[..], [IAC, IAC, 1, IAC, IAC, IAC, IAC]);
    }

    #[test]
    fn set_line_sends_what_pyserial_sends_and_answers_are_matched() {
        let (mut client, _) = started();
        let mut out = BytesMut::new();
        client.set_line(ComSettings::new(9600), &mut out);
        // The bytes pyserial 3.5 sends for 9600 8N1 without flow control (reference, §2).
        let want: Vec<u8> = [
            &[IAC, SB, 44, 1, 0, 0, 0x25, 0x80, IAC, SE][..],
            &[IAC, SB, 44, 2, 8, IAC, SE],
            &[IAC, SB, 44, 3, 1, IAC, SE],
            &[IAC, SB, 44, 4, 1, IAC, SE],
            &[IAC, SB, 44, 5, 1, IAC, SE],
        ]
        .concat();
        assert_eq!(&out[..], &want[..]);
        for command in [
            Command::Baud,
            Command::DataSize,
            Command::Parity,
            Command::StopSize,
            Command::Control,
        ] {
            assert_eq!(client.unanswered(command), 1, "{command}");
        }
        // Answers split byte by byte, the baud one refused (the server keeps 2400).
        let replies = [
            answer(101, &2400u32.to_be_bytes()),
            answer(102, &[8]),
            answer(103, &[1]),
            answer(104, &[1]),
        ]
        .concat();
        let got = feed_bytewise(&mut client, &replies);
        assert_eq!(
            got.events,
            [
                ClientEvent::Answer {
                    command: Command::Baud,
                    value: 2400,
                    asked: Some(9600)
                },
                ClientEvent::Answer {
                    command: Command::DataSize,
                    value: 8,
                    asked: Some(8)
                },
                ClientEvent::Answer {
                    command: Command::Parity,
                    value: 1,
                    asked: Some(1)
                },
                ClientEvent::Answer {
                    command: Command::StopSize,
                    value: 1,
                    asked: Some(1)
                },
            ]
        );
        assert_eq!(client.unanswered(Command::Baud), 0);
        assert_eq!(client.unanswered(Command::Control), 1);
    }

    #[test]
    fn a_server_that_never_answers_set_control_leaves_a_bounded_list() {
        // ser2net on a pty: SET-CONTROL goes unanswered, forever.
        let (mut client, _) = started();
        let mut out = BytesMut::new();
        for _ in 0..100 {
            client.control(8, &mut out);
            client.control(11, &mut out);
        }
        assert_eq!(client.unanswered(Command::Control), MAX_UNANSWERED);
        // The rest goes on: data and other answers are unaffected.
        client.purge(3, &mut out);
        let mut input = answer(112, &[3]);
        input.extend_from_slice(b"data");
        let got = feed(&mut client, &input);
        assert_eq!(&got.data[..], b"data");
        assert_eq!(
            got.events,
            [ClientEvent::Answer {
                command: Command::Purge,
                value: 3,
                asked: Some(3)
            }]
        );
        // A late answer takes the oldest remembered command of its kind (RTS here, not the
        // older DTR).
        let got = feed(&mut client, &answer(105, &[11]));
        assert_eq!(
            got.events,
            [ClientEvent::Answer {
                command: Command::Control,
                value: 11,
                asked: Some(11)
            }]
        );
    }

    #[test]
    fn doubled_ff_inside_an_answer_and_padding() {
        let (mut client, _) = started();
        let mut out = BytesMut::new();
        client.set_line(ComSettings::new(0x00FF_FF00), &mut out);
        assert!(
            out.windows(8)
                .any(|w| w == [IAC, SB, 44, 1, 0, IAC, IAC, IAC]),
            "0xFF doubled inside SET-BAUDRATE: {out:02x?}"
        );
        // sredird pads the baud answer with four NULs.
        let reply = answer(101, &[0, 0xFF, 0xFF, 0, 0, 0, 0, 0]);
        let got = feed_bytewise(&mut client, &reply);
        assert_eq!(
            got.events,
            [ClientEvent::Answer {
                command: Command::Baud,
                value: 0x00FF_FF00,
                asked: Some(0x00FF_FF00)
            }]
        );
    }

    #[test]
    fn notifications_signature_and_suspension() {
        let (mut client, _) = started();
        let input = [
            answer(107, &[0xB0]),
            answer(106, &[0x10]),
            answer(100, b"ser2net"),
            answer(100, &[]),
            answer(108, &[]),
            answer(108, &[]),
            answer(109, &[]),
            answer(110, &[0]),
            answer(99, &[1]),
        ]
        .concat();
        let got = feed(&mut client, &input);
        assert_eq!(
            got.events,
            [
                ClientEvent::ModemState(0xB0),
                ClientEvent::LineState(0x10),
                ClientEvent::Signature(b"ser2net".to_vec()),
                ClientEvent::Suspend(true),
                ClientEvent::Suspend(false),
            ]
        );
        assert_eq!(client.modem_state(), Some(0xB0));
        assert!(!client.suspended());
        // The server's request for our signature is answered with the client code.
        assert_eq!(&got.out[..], &answer(0, b"serialtwin tap")[..]);
        let mut ask = BytesMut::new();
        Client::ask_signature(&mut ask);
        assert_eq!(&ask[..], [IAC, SB, 44, 0, IAC, SE]);
    }

    #[test]
    fn an_overlong_subnegotiation_is_an_error_and_stays_one() {
        for option in [44, 24] {
            let (mut client, _) = started();
            let mut got = Got::default();
            let mut input = vec![IAC, SB, option, 107];
            input.resize(MAX_SUBNEGOTIATION + 10, 0x30);
            let error = client
                .receive(&input, &mut got.data, &mut got.events, &mut got.out)
                .unwrap_err();
            assert_eq!(
                error,
                Rfc2217ClientError::SubnegotiationTooLong {
                    option,
                    limit: MAX_SUBNEGOTIATION
                }
            );
            assert!(client.sub.capacity() <= MAX_SUBNEGOTIATION);
            let again = client
                .receive(b"x", &mut got.data, &mut got.events, &mut got.out)
                .unwrap_err();
            assert_eq!(again, error);
            assert!(got.data.is_empty());
        }
    }

    #[test]
    fn malformed_answers_are_errors() {
        let cases: [(&[u8], Rfc2217ClientError); 4] = [
            (
                &[IAC, SB, 44, 101, 0, 0x25, IAC, SE],
                Rfc2217ClientError::Malformed { code: 101, len: 2 },
            ),
            (
                &[IAC, SB, 44, 105, IAC, SE],
                Rfc2217ClientError::Malformed { code: 105, len: 0 },
            ),
            (
                &[IAC, SB, 44, 107, IAC, SE],
                Rfc2217ClientError::Malformed { code: 107, len: 0 },
            ),
            (
                &[IAC, SB, 44, 105, 8, IAC, 241],
                Rfc2217ClientError::UnterminatedSubnegotiation {
                    option: 44,
                    byte: 241,
                },
            ),
        ];
        for (input, want) in cases {
            let (mut client, _) = started();
            let mut got = Got::default();
            let mut whole = input.to_vec();
            whole.extend_from_slice(b"after");
            assert_eq!(
                client.receive(&whole, &mut got.data, &mut got.events, &mut got.out),
                Err(want),
                "{input:02x?}"
            );
            assert!(got.data.is_empty(), "nothing after the error is passed on");
        }
    }

    /// Moves bytes between a client and serialtwin's own server session until both are quiet.
    fn pump(
        client: &mut Client,
        server: &mut Session,
        mut to_server: BytesMut,
        mut to_client: BytesMut,
    ) -> (Got, BytesMut, Vec<Event>) {
        let mut got = Got::default();
        let mut device = BytesMut::new();
        let mut server_events = Vec::new();
        while !to_server.is_empty() || !to_client.is_empty() {
            let mut answers = BytesMut::new();
            let mut events = Vec::new();
            server
                .receive(&to_server, &mut device, &mut events, &mut answers)
                .unwrap();
            to_server.clear();
            for event in &events {
                if let Event::Purge { value } = event {
                    server.answer_purge(*value, &mut answers);
                }
            }
            server_events.extend(events);
            to_client.extend_from_slice(&answers);
            // The server's bytes in two pieces, split mid-sequence where there is a middle.
            let half = to_client.len() / 2;
            let whole = to_client.split();
            for piece in [&whole[..half], &whole[half..]] {
                client
                    .receive(piece, &mut got.data, &mut got.events, &mut to_server)
                    .unwrap();
            }
        }
        (got, device, server_events)
    }

    #[test]
    fn against_serialtwins_own_server() {
        let mut server = Session::new(ComSettings::new(2400), "serialtwin");
        let (mut client, hello) = started();
        let mut greeting = BytesMut::new();
        server.start(&mut greeting);
        let (got, _, _) = pump(&mut client, &mut server, hello, greeting);
        assert!(client.com_port_agreed() && server.com_port_agreed());
        assert_eq!(got.events[0], ClientEvent::ComPort(true));
        assert!(
            got.events.contains(&ClientEvent::ModemState(0xB0)),
            "{:?}",
            got.events
        );

        let mut commands = BytesMut::new();
        client.set_line(
            ComSettings {
                parity: 3,
                ..ComSettings::new(9600)
            },
            &mut commands,
        );
        client.control(8, &mut commands);
        client.control(11, &mut commands);
        client.control(5, &mut commands);
        client.purge(3, &mut commands);
        Client::send_data(&[0xFF, 0x00, 0xFF], &mut commands);
        let mut from_device = BytesMut::new();
        Session::send_data(&[0xFF, 0xFF, 7], &mut from_device);
        let (got, device, events) = pump(&mut client, &mut server, commands, from_device);
        assert_eq!(&device[..], [0xFF, 0x00, 0xFF]);
        assert_eq!(&got.data[..], [0xFF, 0xFF, 7]);
        assert_eq!(
            events,
            [
                Event::Settings(ComSettings {
                    baud: 9600,
                    ..ComSettings::new(2400)
                }),
                Event::Settings(ComSettings {
                    parity: 3,
                    ..ComSettings::new(9600)
                }),
                Event::Break(true),
                Event::Purge { value: 3 },
            ]
        );
        for event in &got.events {
            if let ClientEvent::Answer { value, asked, .. } = event {
                assert_eq!(Some(*value), *asked, "every value accepted: {event:?}");
            }
        }
        for command in Command::ALL {
            assert_eq!(client.unanswered(command), 0, "{command}");
        }
    }
}
