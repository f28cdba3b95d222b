//! The `rfc2217` target: both sides of RFC 2217 (`net::rfc2217::Session`, what an `rfc2217`
//! endpoint runs per connection, and `net::rfc2217_client::Client`, what `tap --upstream
//! rfc2217://` runs) on any bytes from the other side.
//!
//! The input's first byte picks the side (even: the server, odd: the client), the second the
//! piece size; the rest is what the other side sent. Invariants:
//!
//! - no panic;
//! - the same data, events, answers and error whether the bytes come whole or in pieces of
//!   any size (a Telnet command or a subnegotiation may be split anywhere);
//! - data out is never more than what came in, and answers are bounded by it (at most a
//!   subnegotiation's worth per byte, plus the opening);
//! - once it has failed, every later call fails the same way;
//! - what it writes, fed to the other side, is well-formed: the other side takes it without
//!   an error, and the data in it (0xFF doubled) comes out as sent;
//! - a server's settings are always ones it can name: data size 5-8, parity 1-3, stop size
//!   1 or 2, flow 1-3.

use bytes::BytesMut;
use serialtwin_core::net::rfc2217::{ComSettings, Event, MAX_SUBNEGOTIATION, Session};
use serialtwin_core::net::rfc2217_client::Client;

/// What the server side made of `input`, fed in pieces of `piece` bytes (0: whole).
fn server(input: &[u8], piece: usize) -> (BytesMut, Vec<Event>, BytesMut, Option<String>) {
    let mut session = Session::new(ComSettings::new(9600), "serialtwin fuzz");
    let (mut data, mut events, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
    session.start(&mut out);
    let error = feed(input, piece, |chunk| {
        session.receive(chunk, &mut data, &mut events, &mut out)
    });
    let s = session.settings();
    assert!((5..=8).contains(&s.data_size), "{s:?}");
    assert!((1..=3).contains(&s.parity), "{s:?}");
    assert!(matches!(s.stop_size, 1 | 2), "{s:?}");
    assert!((1..=3).contains(&s.flow), "{s:?}");
    (data, events, out, error)
}

/// What the client side made of `input`, fed in pieces of `piece` bytes (0: whole).
fn client(input: &[u8], piece: usize) -> (BytesMut, String, BytesMut, Option<String>) {
    let mut client = Client::new("serialtwin fuzz");
    let (mut data, mut events, mut out) = (BytesMut::new(), Vec::new(), BytesMut::new());
    client.start(&mut out);
    client.set_line(ComSettings::new(19_200), &mut out);
    let error = feed(input, piece, |chunk| {
        client.receive(chunk, &mut data, &mut events, &mut out)
    });
    (data, format!("{events:?}"), out, error)
}

/// `input` to `receive` in pieces of `piece` bytes (0: whole) until it fails; its error, which
/// every later call must repeat (failed once, failed for good).
fn feed<E: PartialEq + std::fmt::Debug + std::fmt::Display>(
    input: &[u8],
    piece: usize,
    mut receive: impl FnMut(&[u8]) -> Result<(), E>,
) -> Option<String> {
    let pieces: Vec<&[u8]> = if piece == 0 {
        vec![input]
    } else {
        input.chunks(piece).collect()
    };
    for chunk in pieces {
        if let Err(e) = receive(chunk) {
            assert_eq!(receive(b"x").err().as_ref(), Some(&e));
            return Some(e.to_string());
        }
    }
    None
}

/// Check everything about one input.
pub(crate) fn check(data: &[u8]) {
    let [side, piece, input @ ..] = data else {
        return;
    };
    let piece = usize::from(*piece % 7) + 1;
    // Room for the opening and one answer per byte of input, however long.
    let bound = 64 + input.len() * (MAX_SUBNEGOTIATION + 16).min(64);
    if side % 2 == 0 {
        let whole = server(input, 0);
        assert_eq!(
            whole,
            server(input, piece),
            "pieces change what the server sees"
        );
        let (data, _, out, _) = &whole;
        assert!(data.len() <= input.len());
        assert!(
            out.len() <= bound,
            "{} bytes out for {} in",
            out.len(),
            input.len()
        );
        // The server's answers, and data it sends, are what a client takes.
        let mut stream = out.clone();
        Session::send_data(input, &mut stream);
        let (got, _, _, error) = client(&stream, 0);
        assert_eq!(error, None, "the client refuses the server's bytes");
        assert_eq!(&got[..], input, "data through the server's doubling");
    } else {
        let whole = client(input, 0);
        assert_eq!(
            whole,
            client(input, piece),
            "pieces change what the client sees"
        );
        let (data, _, out, _) = &whole;
        assert!(data.len() <= input.len());
        assert!(
            out.len() <= bound + 64,
            "{} bytes out for {} in",
            out.len(),
            input.len()
        );
        let mut stream = out.clone();
        Client::send_data(input, &mut stream);
        let (got, _, _, error) = server(&stream, 0);
        assert_eq!(error, None, "the server refuses the client's bytes");
        assert_eq!(&got[..], input, "data through the client's doubling");
    }
}
