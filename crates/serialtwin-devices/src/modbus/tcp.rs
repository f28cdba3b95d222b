//! Modbus TCP in front of an RTU line: the gateway a `modbus_tcp` endpoint is (`modbus.md` §7;
//! MODBUS Messaging on TCP/IP Implementation Guide V1.0b, "TCP").
//!
//! A request comes as an MBAP header (transaction id, protocol id 0, length, unit id) and a
//! PDU. The gateway writes it to the line as an RTU frame (the unit id as the address, a CRC
//! added), cuts the reply off the line by the length its request implies
//! ([`reply_len`]) and its CRC, and sends the PDU back under the request's transaction id and
//! unit id. Requests go on the line one at a time, so pipelined requests are answered in the
//! order they came, each with its own transaction id.
//!
//! What the unit id means depends on what is behind the endpoint (TCP §4.4.1.2):
//!
//! - **A bus** (several units on the line): the unit id is the address. Unit 0 is a
//!   broadcast, written to the line with no reply awaited, and nothing goes back (SL §2.1). A
//!   unit that stays silent (absent, or it dropped the request) gets exception 0x0B, gateway
//!   target failed to respond, after the gateway's timeout.
//! - **One device**: 0xFF and 0 both address it (the guide's value for a directly attached
//!   device, and the one often sent instead); any other id is its address, or no one's.
//!
//! A header whose protocol id is not 0, or whose length is outside 2–254 (a unit id and a
//! PDU of 1 to 253 bytes, APP §4.1), is not Modbus: the connection is closed.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serialtwin_core::Framing;
use serialtwin_core::net::{Exchange, Gateway, Refusal, Translate};

use super::functions::{MAX_ADU_LEN, RequestLen};
use super::replies::reply_len;
use super::rtu::{self, crc16};

/// The MBAP header's length: transaction id, protocol id, length, unit id.
const MBAP_LEN: usize = 7;

/// Exception 0x0B: gateway target device failed to respond (APP §7).
const TARGET_FAILED: u8 = 0x0B;

/// What stands behind a Modbus TCP endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behind {
    /// Several units on one line: the unit id is the address, 0 a broadcast.
    Bus,
    /// One device at this address: unit ids 0 and 0xFF are it too.
    Device(u8),
}

/// A Modbus TCP gateway in front of an RTU line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpGateway {
    behind: Behind,
}

impl TcpGateway {
    /// A gateway in front of `behind`.
    #[must_use]
    pub const fn new(behind: Behind) -> Self {
        Self { behind }
    }

    /// The gateway for a line framed by `framing` whose units have these addresses: direct
    /// in front of one, a bus in front of several. `None` when the line does not speak RTU
    /// (Modbus ASCII): Modbus TCP and RTU-over-TCP are refused there.
    #[must_use]
    pub fn for_line(framing: &Framing, addresses: &[u8]) -> Option<Arc<dyn Gateway>> {
        (framing.name() == rtu::NAME).then(|| {
            Arc::new(Self::new(match addresses {
                [one] => Behind::Device(*one),
                _ => Behind::Bus,
            })) as Arc<dyn Gateway>
        })
    }
}

impl Gateway for TcpGateway {
    fn connect(&self) -> Box<dyn Translate> {
        Box::new(Connection {
            behind: self.behind,
            waiting: None,
        })
    }
}

/// One connection: the request on the line, if a reply is awaited.
#[derive(Debug)]
struct Connection {
    behind: Behind,
    waiting: Option<Waiting>,
}

/// A request on the line.
#[derive(Debug)]
struct Waiting {
    /// The MBAP transaction id, echoed.
    transaction: [u8; 2],
    /// The MBAP unit id, echoed (0xFF stays 0xFF though the line saw the address).
    unit: u8,
    /// The request as the line carries it, without its CRC: the address a reply starts with,
    /// and the function code it answers.
    request: Bytes,
}

impl Translate for Connection {
    fn request(&mut self, from_client: &mut BytesMut) -> Result<Option<Exchange>, Refusal> {
        if from_client.len() < MBAP_LEN {
            return Ok(None);
        }
        let protocol = u16::from_be_bytes([from_client[2], from_client[3]]);
        if protocol != 0 {
            return Err(Refusal(format!(
                "Modbus TCP header with protocol id {protocol}, not 0"
            )));
        }
        let length = usize::from(u16::from_be_bytes([from_client[4], from_client[5]]));
        if !(2..=254).contains(&length) {
            return Err(Refusal(format!(
                "Modbus TCP header with length {length}, outside 2-254"
            )));
        }
        if from_client.len() < 6 + length {
            return Ok(None);
        }
        let frame = from_client.split_to(6 + length);
        let unit = frame[6];
        let pdu = &frame[MBAP_LEN..];
        let (address, expects_reply) = match self.behind {
            Behind::Bus => (unit, unit != 0),
            Behind::Device(address) if unit == 0 || unit == 0xFF => (address, true),
            Behind::Device(_) => (unit, true),
        };
        let mut line = BytesMut::with_capacity(1 + pdu.len() + 2);
        line.put_u8(address);
        line.put_slice(pdu);
        let request = line.clone().freeze();
        line.put_u16_le(crc16(&line));
        self.waiting = expects_reply.then(|| Waiting {
            transaction: [frame[0], frame[1]],
            unit,
            request,
        });
        Ok(Some(Exchange {
            to_line: line.freeze(),
            expects_reply,
        }))
    }

    fn reply(&mut self, from_line: &mut BytesMut) -> Option<Bytes> {
        let len = cut_reply(&self.waiting.as_ref()?.request, from_line)?;
        let adu = from_line.split_to(len);
        let waiting = self.waiting.take()?;
        Some(mbap(waiting.transaction, waiting.unit, &adu[1..len - 2]))
    }

    fn silence(&mut self) -> Option<Bytes> {
        let waiting = self.waiting.take()?;
        Some(mbap(
            waiting.transaction,
            waiting.unit,
            &[waiting.request[1] | 0x80, TARGET_FAILED],
        ))
    }
}

/// The length of the reply to `request` (no CRC) at the start of `from_line`, once it is
/// whole; bytes before it that cannot start it are dropped.
fn cut_reply(request: &[u8], from_line: &mut BytesMut) -> Option<usize> {
    let (address, function) = (request[0], request[1]);
    loop {
        // Hunt for the reply's start: its address and its function code, or the code with
        // the exception bit.
        if *from_line.first()? == address && *from_line.get(1)? & 0x7F == function {
            match complete(request, from_line) {
                Cut::Reply(len) => return Some(len),
                Cut::More => return None,
                // Not this reply after all: noise, or a reply the line corrupted, which a
                // gateway drops as it would on a real line (the timeout answers for it).
                Cut::NotReply => {}
            }
        }
        let _ = from_line.split_to(1);
    }
}

/// What the start of the line's bytes is, for the waiting request.
enum Cut {
    /// The reply, this many bytes long with its CRC.
    Reply(usize),
    /// Not whole yet.
    More,
    /// Not its reply.
    NotReply,
}

/// Whether `buf` starts with the whole reply to `request` (no CRC), by the length the
/// request and the reply's header give, or failing those the first prefix whose CRC
/// verifies.
fn complete(request: &[u8], buf: &[u8]) -> Cut {
    match reply_len(Some(request), buf) {
        RequestLen::NeedHeader(_) => Cut::More,
        RequestLen::Exact(len) if len > MAX_ADU_LEN => Cut::NotReply,
        RequestLen::Exact(len) if buf.len() < len => Cut::More,
        RequestLen::Exact(len) if crc_ok(&buf[..len]) => Cut::Reply(len),
        RequestLen::Exact(_) => Cut::NotReply,
        RequestLen::Scan { min, step } => {
            let end = buf.len().min(MAX_ADU_LEN);
            let found = (min..=end).step_by(step).find(|&len| crc_ok(&buf[..len]));
            match found {
                Some(len) => Cut::Reply(len),
                None if buf.len() >= MAX_ADU_LEN => Cut::NotReply,
                None => Cut::More,
            }
        }
    }
}

/// Whether `adu` ends in the CRC of what comes before it (low byte first).
fn crc_ok(adu: &[u8]) -> bool {
    adu.len() >= 2 && {
        let (payload, sent) = adu.split_at(adu.len() - 2);
        crc16(payload).to_le_bytes() == sent
    }
}

/// A Modbus TCP reply: the MBAP header (protocol id 0, the length of unit id and PDU) and
/// the PDU.
fn mbap(transaction: [u8; 2], unit: u8, pdu: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(MBAP_LEN + pdu.len());
    out.put_slice(&transaction);
    out.put_u16(0);
    out.put_u16(u16::try_from(1 + pdu.len()).unwrap_or(u16::MAX));
    out.put_u8(unit);
    out.put_slice(pdu);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// Requests written to the line, for tests: every [`Exchange`] a client's bytes give.
    fn exchanges(
        translate: &mut dyn Translate,
        bytes: &[u8],
    ) -> Result<VecDeque<Exchange>, Refusal> {
        let mut buf = BytesMut::from(bytes);
        let mut out = VecDeque::new();
        while let Some(exchange) = translate.request(&mut buf)? {
            out.push_back(exchange);
        }
        Ok(out)
    }

    /// An RTU frame with its CRC.
    fn rtu(frame: &[u8]) -> Vec<u8> {
        let mut out = frame.to_vec();
        out.extend_from_slice(&crc16(frame).to_le_bytes());
        out
    }

    #[test]
    fn the_reference_request_and_reply() {
        // modbus.md §7: tid 1, unit 1, read 3 holding registers at 0x6B.
        let mut c = TcpGateway::new(Behind::Bus).connect();
        let sent = exchanges(c.as_mut(), &[0, 1, 0, 0, 0, 6, 1, 3, 0, 0x6B, 0, 3]).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(&sent[0].to_line[..], rtu(&[1, 3, 0, 0x6B, 0, 3]));
        assert!(sent[0].expects_reply);
        let mut line = BytesMut::from(&rtu(&[1, 3, 6, 2, 0x2B, 0, 0, 0, 0x64])[..]);
        let reply = c.reply(&mut line).unwrap();
        assert_eq!(
            &reply[..],
            [0, 1, 0, 0, 0, 9, 1, 3, 6, 2, 0x2B, 0, 0, 0, 0x64]
        );
        assert!(line.is_empty());
    }

    #[test]
    fn a_reply_in_pieces_behind_noise() {
        let mut c = TcpGateway::new(Behind::Bus).connect();
        exchanges(c.as_mut(), &[0x12, 0x34, 0, 0, 0, 6, 7, 4, 0, 0, 0, 1]).unwrap();
        let reply = rtu(&[7, 4, 2, 0xAB, 0xCD]);
        let mut line = BytesMut::from(&[0xFF, 7, 9, 0][..]);
        assert_eq!(c.reply(&mut line), None);
        line.extend_from_slice(&reply[..3]);
        assert_eq!(c.reply(&mut line), None);
        line.extend_from_slice(&reply[3..]);
        assert_eq!(
            &c.reply(&mut line).unwrap()[..],
            [0x12, 0x34, 0, 0, 0, 5, 7, 4, 2, 0xAB, 0xCD]
        );
    }

    #[test]
    fn a_corrupted_reply_is_not_passed_on_and_silence_answers_0x0b() {
        let mut c = TcpGateway::new(Behind::Bus).connect();
        exchanges(c.as_mut(), &[0, 9, 0, 0, 0, 6, 5, 3, 0, 0, 0, 1]).unwrap();
        let mut bad = rtu(&[5, 3, 2, 0, 1]);
        bad[4] ^= 0x40;
        let mut line = BytesMut::from(&bad[..]);
        assert_eq!(c.reply(&mut line), None);
        assert_eq!(
            &c.silence().unwrap()[..],
            [0, 9, 0, 0, 0, 3, 5, 0x83, TARGET_FAILED]
        );
        assert_eq!(c.silence(), None, "one answer per request");
    }

    #[test]
    fn an_exception_is_passed_on() {
        let mut c = TcpGateway::new(Behind::Bus).connect();
        exchanges(c.as_mut(), &[0, 2, 0, 0, 0, 6, 3, 6, 0, 9, 0, 1]).unwrap();
        let mut line = BytesMut::from(&rtu(&[3, 0x86, 2])[..]);
        assert_eq!(
            &c.reply(&mut line).unwrap()[..],
            [0, 2, 0, 0, 0, 3, 3, 0x86, 2]
        );
    }

    #[test]
    fn broadcast_on_a_bus_awaits_nothing() {
        let mut c = TcpGateway::new(Behind::Bus).connect();
        let sent = exchanges(c.as_mut(), &[0, 3, 0, 0, 0, 6, 0, 6, 0, 1, 0, 5]).unwrap();
        assert!(!sent[0].expects_reply);
        assert_eq!(&sent[0].to_line[..], rtu(&[0, 6, 0, 1, 0, 5]));
        assert_eq!(c.silence(), None);
    }

    #[test]
    fn a_direct_device_answers_to_0_and_0xff_under_the_id_asked() {
        let mut c = TcpGateway::new(Behind::Device(17)).connect();
        for unit in [0, 0xFF, 17] {
            let sent = exchanges(c.as_mut(), &[0, 4, 0, 0, 0, 6, unit, 3, 0, 0, 0, 1]).unwrap();
            assert_eq!(sent[0].to_line[0], 17);
            assert!(sent[0].expects_reply);
            let mut line = BytesMut::from(&rtu(&[17, 3, 2, 0, 42])[..]);
            assert_eq!(
                &c.reply(&mut line).unwrap()[..],
                [0, 4, 0, 0, 0, 5, unit, 3, 2, 0, 42]
            );
        }
    }

    #[test]
    fn pipelined_requests_come_out_one_by_one() {
        let mut c = TcpGateway::new(Behind::Bus).connect();
        let mut buf = BytesMut::new();
        for tid in 1..=3_u8 {
            buf.extend_from_slice(&[0, tid, 0, 0, 0, 6, 1, 3, 0, tid, 0, 1]);
        }
        buf.extend_from_slice(&[0, 4, 0]);
        for tid in 1..=3_u8 {
            let exchange = c.request(&mut buf).unwrap().unwrap();
            assert_eq!(exchange.to_line[3], tid);
            let mut line = BytesMut::from(&rtu(&[1, 3, 2, 0, tid])[..]);
            assert_eq!(c.reply(&mut line).unwrap()[1], tid);
        }
        assert_eq!(c.request(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 3);
    }

    #[test]
    fn headers_that_are_not_modbus_refuse() {
        let mut c = TcpGateway::new(Behind::Bus).connect();
        assert!(exchanges(c.as_mut(), &[0, 1, 0, 1, 0, 6, 1, 3, 0, 0, 0, 1]).is_err());
        for length in [0_u8, 1, 255] {
            let err = exchanges(c.as_mut(), &[0, 1, 0, 0, 0, length, 1, 3]).unwrap_err();
            assert!(err.0.contains("length"), "{err}");
        }
        assert!(
            exchanges(c.as_mut(), &[0, 1, 0, 0, 0xFF, 0xFF])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_longest_pdu_is_carried() {
        // Length 254: unit id and a 253-byte PDU, an RTU frame of 256 bytes.
        let mut c = TcpGateway::new(Behind::Bus).connect();
        let mut request = vec![0, 1, 0, 0, 0, 254, 1, 0x10, 0, 0, 0, 123, 246];
        request.extend(std::iter::repeat_n(0xAA, 247));
        let sent = exchanges(c.as_mut(), &request).unwrap();
        assert_eq!(sent[0].to_line.len(), 256);
    }
}
