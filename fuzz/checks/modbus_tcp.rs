//! The `modbus_tcp` target: the Modbus TCP gateway's translation (`modbus::tcp`, what a
//! `modbus_tcp` endpoint runs per connection) on any bytes from the client and from the line.
//!
//! The input's first byte picks what stands behind the gateway (even: a bus; odd: one device,
//! at the address in the second byte), the third is the piece size; the rest is split in two
//! halves, the client's bytes and the line's. Each request the client's bytes give is put on
//! the line, and the line's bytes are fed to its reply in pieces; a request the line leaves
//! unanswered is answered by the silence. Invariants:
//!
//! - no panic, and no spin: a request cut consumes the client's bytes;
//! - the same requests (and the same refusal) whether the client's bytes come whole or in
//!   pieces;
//! - each request on the line is the client's PDU behind an address and before a CRC that
//!   verifies, at most 256 bytes; the address is the unit id, or the device's for 0 and 0xFF
//!   in front of one device; a reply is awaited except for unit 0 on a bus;
//! - each reply to the client is an MBAP with the request's transaction and unit ids,
//!   protocol 0 and the length of what follows; its PDU is the request's function code or its
//!   exception, and it is a line frame whose CRC verifies, or exception 0x0B for silence; one
//!   answer per request, none for a broadcast;
//! - a refusal comes only for a protocol id other than 0 or a length outside 2-254.

use bytes::BytesMut;
use serialtwin_core::net::{Exchange, Gateway, Refusal};
use serialtwin_devices::modbus::rtu::crc16;
use serialtwin_devices::modbus::tcp::{Behind, TcpGateway};

/// Every request the client's bytes give, fed in pieces of `piece` bytes (0: whole).
fn requests(gateway: TcpGateway, client: &[u8], piece: usize) -> (Vec<Exchange>, Option<Refusal>) {
    let mut translate = gateway.connect();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let pieces: Vec<&[u8]> = if piece == 0 {
        vec![client]
    } else {
        client.chunks(piece).collect()
    };
    for chunk in pieces {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match translate.request(&mut buf) {
                Ok(Some(exchange)) => {
                    assert!(buf.len() < before, "a request consumed nothing");
                    out.push(exchange);
                }
                Ok(None) => break,
                Err(refusal) => return (out, Some(refusal)),
            }
        }
    }
    (out, None)
}

/// Check everything about one input.
pub(crate) fn check(data: &[u8]) {
    let [pick, address, piece, rest @ ..] = data else {
        return;
    };
    let behind = if pick % 2 == 0 {
        Behind::Bus
    } else {
        Behind::Device(*address)
    };
    let gateway = TcpGateway::new(behind);
    let (client, line) = rest.split_at(rest.len() / 2);
    let piece = usize::from(*piece % 9);

    let (whole, refused) = requests(gateway, client, 0);
    let (pieces, refused_pieces) = requests(gateway, client, piece);
    assert_eq!(whole, pieces, "requests depend on how the bytes came");
    assert_eq!(refused, refused_pieces);

    // The requests against the client's bytes, header by header.
    let mut at = 0;
    for exchange in &whole {
        let header = &client[at..at + 7];
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        assert_eq!(&header[2..4], [0, 0]);
        assert!((2..=254).contains(&length));
        let (unit, pdu) = (header[6], &client[at + 7..at + 6 + length]);
        let frame = &exchange.to_line;
        assert!(frame.len() <= 256);
        let (body, crc) = frame.split_at(frame.len() - 2);
        assert_eq!(crc16(body).to_le_bytes(), crc, "the CRC verifies");
        assert_eq!(&body[1..], pdu, "the PDU is carried as it is");
        let expected = match behind {
            Behind::Device(device) if unit == 0 || unit == 0xFF => device,
            _ => unit,
        };
        assert_eq!(body[0], expected, "the address");
        assert_eq!(
            exchange.expects_reply,
            !(behind == Behind::Bus && unit == 0),
            "a reply is awaited except for a broadcast"
        );
        at += 6 + length;
    }
    if let Some(refusal) = &refused {
        let header = &client[at..at + 7];
        let protocol = u16::from_be_bytes([header[2], header[3]]);
        let length = u16::from_be_bytes([header[4], header[5]]);
        assert!(
            protocol != 0 || !(2..=254).contains(&length),
            "refused a good header: {refusal}"
        );
    }

    // Each request on the line, answered by the line's bytes (or by silence).
    let mut translate = gateway.connect();
    let mut client_buf = BytesMut::from(client);
    let mut from_line = BytesMut::new();
    let mut line_pieces = line.chunks(piece.max(1));
    while let Ok(Some(exchange)) = translate.request(&mut client_buf) {
        let (tid, unit) = {
            let start = client.len() - client_buf.len() - (exchange.to_line.len() - 3) - 7;
            ([client[start], client[start + 1]], client[start + 6])
        };
        let function = exchange.to_line[1];
        from_line.clear();
        let mut answer = None;
        if exchange.expects_reply {
            for chunk in line_pieces.by_ref() {
                from_line.extend_from_slice(chunk);
                if let Some(reply) = translate.reply(&mut from_line) {
                    answer = Some((reply, false));
                    break;
                }
                assert!(from_line.len() <= 256 + 8, "the line's bytes pile up");
            }
            if answer.is_none() {
                answer = translate.silence().map(|reply| (reply, true));
                assert!(answer.is_some(), "silence is answered");
            }
        }
        assert_eq!(translate.silence(), None, "one answer per request");
        let Some((reply, silent)) = answer else {
            continue;
        };
        assert_eq!(&reply[..2], tid);
        assert_eq!(&reply[2..4], [0, 0]);
        assert_eq!(
            usize::from(u16::from_be_bytes([reply[4], reply[5]])),
            reply.len() - 6
        );
        assert_eq!(reply[6], unit);
        assert_eq!(reply[7] & 0x7F, function & 0x7F);
        if silent {
            assert_eq!(&reply[7..], [function | 0x80, 0x0B]);
        }
    }
}
