//! The `pyvisa_sim` target: a pyvisa-sim device file (`serialtwin_devices::pyvisa_sim::load`),
//! compiled (`Script::compile`) and served as the model builds it (`SimDevice` behind the
//! eom framer), answering requests; and the Python pieces it runs (`PyFormat`, the
//! stringparser `Pattern`) on strings of the input.
//!
//! The input: the YAML text is everything up to the first NUL byte (read as UTF-8, invalid
//! bytes replaced); what follows is a list of requests separated by NUL bytes (at most
//! [`MAX_REQUESTS`]). Invariants:
//!
//! - no panic, loading, compiling or answering;
//! - `load` of every resource the file declares (the keys of `resources`, at most
//!   [`MAX_RESOURCES`]; `ASRL1::INSTR` when there are none) is a device or an error whose
//!   line lies within the text (its lines as YAML counts them: a lone CR ends one too);
//! - the eom framer cuts the requests (each followed by the device's `q` eom) into the same
//!   frames and errors whether the bytes come whole, in pieces of 1–8 bytes or byte by byte,
//!   and every frame is within its limit;
//! - every reply frame the device gives is at most [`MAX_REPLY`] (1 MiB);
//! - a request that raises (`Err(Raised)`) leaves the device usable: the file's first
//!   dialogue with a literal reply answers as it did before;
//! - each request as a `PyFormat` renders an int, a float and a str (the next request) within
//!   [`MAX_REPLY`] or errs; as a stringparser `Pattern` it parses the other requests or errs.

use std::sync::Arc;

use bytes::BytesMut;
use serialtwin_core::escape::unescape;
use serialtwin_core::{FrameError, Framing, Replies};
use serialtwin_devices::pyvisa_sim::{self, SimDevice, eom, yaml};
use serialtwin_devices::scripted::python::parse::Pattern;
use serialtwin_devices::scripted::python::{PyFormat, PyValue};
use serialtwin_devices::scripted::{Script, ScriptConfig, Scripted};

/// The most requests one input sends.
const MAX_REQUESTS: usize = 16;

/// The most resources of one file loaded.
const MAX_RESOURCES: usize = 4;

/// The longest reply frame anything a file says may give.
const MAX_REPLY: usize = 1 << 20;

/// The resource loaded when the file declares none.
const FALLBACK: &str = "ASRL1::INSTR";

/// Check one input.
pub(crate) fn check(data: &[u8]) {
    let (yaml_bytes, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(yaml_bytes);
    let requests: Vec<&[u8]> = rest
        .map(|r| r.split(|&b| b == 0).take(MAX_REQUESTS).collect())
        .unwrap_or_default();
    python_pieces(&requests);
    for resource in resources(&text) {
        match pyvisa_sim::load(&text, &resource) {
            Err(e) => {
                let lines = yaml_lines(&text);
                assert!(
                    e.at.line >= 1 && e.at.line <= lines + 1,
                    "line {} of {lines}: {e}",
                    e.at.line
                );
            }
            Ok(loaded) => {
                let Ok(script) = Script::compile(&loaded.script) else {
                    continue;
                };
                let framing = eom::framing(&loaded.query_eom, &loaded.reply_eom);
                let probe = probe(&loaded.script, &loaded.delimiter);
                let device = SimDevice::new(
                    Scripted::new(Arc::new(script)),
                    framing.clone(),
                    loaded.delimiter.clone(),
                );
                serve(device, &framing, &loaded.query_eom, &requests, probe);
            }
        }
    }
}

/// How many lines YAML reads in `text`: a line break is LF, CR LF or a lone CR.
fn yaml_lines(text: &str) -> usize {
    let lone_cr = text
        .as_bytes()
        .windows(2)
        .filter(|w| w[0] == b'\r' && w[1] != b'\n')
        .count()
        + usize::from(text.ends_with('\r'));
    text.bytes().filter(|&b| b == b'\n').count() + lone_cr + 1
}

/// The resource names the file declares (its `resources` keys), or [`FALLBACK`].
fn resources(text: &str) -> Vec<String> {
    let names: Vec<String> = yaml::parse(text)
        .ok()
        .and_then(|root| {
            let entries = root.get("resources")?.map("").ok()?;
            Some(
                entries
                    .iter()
                    .map(|(name, _)| name.clone())
                    .take(MAX_RESOURCES)
                    .collect(),
            )
        })
        .unwrap_or_default();
    if names.is_empty() {
        vec![FALLBACK.to_owned()]
    } else {
        names
    }
}

/// The request of the script's first rule with a literal reply (a dialogue), when it holds
/// no delimiter: it answers the same every time.
fn probe(script: &ScriptConfig, delimiter: &[u8]) -> Option<Vec<u8>> {
    let rule = script
        .rules
        .iter()
        .map(toml::Spanned::get_ref)
        .find(|r| r.python.is_none() && r.reply.is_some() && r.request.is_some())?;
    let request = unescape(rule.request.as_ref()?.get_ref()).ok()?;
    let split = !delimiter.is_empty() && request.windows(delimiter.len()).any(|w| w == delimiter);
    (!split).then_some(request)
}

/// Every frame (or error) `framing` cuts from `stream` fed in pieces of `sizes` (cycled).
fn cut(
    framing: &Framing,
    eom_len: usize,
    stream: &[u8],
    sizes: &[usize],
) -> Vec<Result<Vec<u8>, String>> {
    let mut framer = framing.build();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut k = 0;
    while fed < stream.len() {
        let n = sizes[k % sizes.len()].min(stream.len() - fed);
        k += 1;
        buf.extend_from_slice(&stream[fed..fed + n]);
        fed += n;
        loop {
            match framer.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(
                        frame.len() <= framer.max_frame_len(),
                        "a frame of {} bytes",
                        frame.len()
                    );
                    out.push(Ok(frame.to_vec()));
                }
                Ok(None) => break,
                Err(e @ FrameError::TooLong { .. }) => out.push(Err(e.to_string())),
                Err(e) => panic!("the eom framer reported {e}"),
            }
        }
        assert!(
            buf.len() < eom::MAX_LEN + eom_len,
            "the framer holds {} bytes",
            buf.len()
        );
    }
    out
}

/// The replies to one request; each frame within [`MAX_REPLY`].
fn ask(device: &mut SimDevice, request: &[u8]) -> (bool, Vec<Vec<u8>>) {
    let mut replies = Replies::new();
    let ok = device.answer(request, &mut replies).is_ok();
    let frames: Vec<Vec<u8>> = replies.frames().iter().map(|f| f.to_vec()).collect();
    for frame in &frames {
        assert!(
            frame.len() <= MAX_REPLY,
            "a reply of {} bytes to {:?}",
            frame.len(),
            String::from_utf8_lossy(&request[..request.len().min(64)])
        );
    }
    (ok, frames)
}

/// The device on the requests, through its framer.
fn serve(
    mut device: SimDevice,
    framing: &Framing,
    query_eom: &[u8],
    requests: &[&[u8]],
    probe: Option<Vec<u8>>,
) {
    let mut stream = Vec::new();
    for request in requests {
        stream.extend_from_slice(request);
        stream.extend_from_slice(query_eom);
    }
    let whole = cut(framing, query_eom.len(), &stream, &[stream.len().max(1)]);
    let seed = stream.first().copied().unwrap_or(0);
    let sizes: Vec<usize> = (0..8)
        .map(|i| 1 + usize::from(seed.rotate_left(i) & 7))
        .collect();
    assert_eq!(
        cut(framing, query_eom.len(), &stream, &sizes),
        whole,
        "pieces of {sizes:?}"
    );
    assert_eq!(
        cut(framing, query_eom.len(), &stream, &[1]),
        whole,
        "byte by byte"
    );
    let expected = probe.map(|p| {
        let answer = ask(&mut device, &p);
        assert!(answer.0, "a literal dialogue raised");
        (p, answer)
    });
    for frame in whole.iter().filter_map(|f| f.as_ref().ok()) {
        let (ok, _) = ask(&mut device, frame);
        if !ok && let Some((p, before)) = &expected {
            assert_eq!(&ask(&mut device, p), before, "after a raise");
        }
    }
}

/// Each request as a format and a pattern.
fn python_pieces(requests: &[&[u8]]) {
    for (i, request) in requests.iter().enumerate() {
        let text = String::from_utf8_lossy(request);
        let next = requests
            .get(i + 1)
            .map_or_else(String::new, |r| String::from_utf8_lossy(r).into_owned());
        if let Ok(format) = PyFormat::parse(&text) {
            let int = i128::from_le_bytes(padded(request));
            let float = f64::from_le_bytes(padded(request));
            for value in [PyValue::Int(int), PyValue::Float(float), PyValue::Str(next)] {
                let mut out = String::new();
                if format.render(&value, &mut out).is_ok() {
                    assert!(out.len() <= MAX_REPLY, "{} bytes from {text:?}", out.len());
                } else {
                    assert!(out.is_empty(), "an error left output");
                }
            }
        }
        if let Ok(pattern) = Pattern::new(&text) {
            for other in requests {
                let _ = pattern.parse(&String::from_utf8_lossy(other));
            }
        }
    }
}

/// The first `N` bytes of `bytes`, zero-padded.
fn padded<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}
