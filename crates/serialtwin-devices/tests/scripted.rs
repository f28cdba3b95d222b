//! Scripted devices: dialogues from TOML, answered by calling `handle` directly.

use std::sync::Arc;
use std::time::Duration;

use serialtwin_core::{Context, Device, Replies, SimClock};
use serialtwin_devices::pi30::CrcVariant;
use serialtwin_devices::scripted::{
    MatchMode, Script, ScriptConfig, ScriptError, ScriptErrorKind, Scripted, escape_bytes,
};

fn device(toml_text: &str) -> Scripted {
    let config: ScriptConfig = toml::from_str(toml_text).expect("valid TOML");
    Scripted::new(Arc::new(Script::compile(&config).expect("valid script")))
}

fn compile_error(toml_text: &str) -> (ScriptError, String) {
    let config: ScriptConfig = toml::from_str(toml_text).expect("valid TOML");
    let err = Script::compile(&config).expect_err("script should be rejected");
    let span = err.span.clone().expect("error has a span");
    (err, toml_text[span].to_owned())
}

/// The frames `dev` sends for `request`.
fn ask(dev: &mut Scripted, request: &[u8]) -> Vec<Vec<u8>> {
    let mut replies = Replies::new();
    let mut ctx = Context::for_test(SimClock::real());
    dev.handle(request, &mut ctx, &mut replies).unwrap();
    replies.frames().into_iter().map(<[u8]>::to_vec).collect()
}

fn frames(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[tokio::test]
async fn the_original_use_case_fits_in_a_handful_of_lines() {
    let mut dev = device(
        r#"
        default = "I dont understand"
        [[rule]]
        request = "QPGS"
        reply = "correct result"
        "#,
    );
    assert_eq!(ask(&mut dev, b"test2"), frames(&["I dont understand"]));
    assert_eq!(ask(&mut dev, b"QPGS"), frames(&["correct result"]));
    assert_eq!(ask(&mut dev, b"QPGS "), frames(&["I dont understand"]));
}

#[tokio::test]
async fn no_default_means_silence() {
    let mut dev = device("[[rule]]\nrequest = 'A'\nreply = 'B'\n");
    assert!(ask(&mut dev, b"X").is_empty());
    assert_eq!(ask(&mut dev, b"A"), frames(&["B"]));
}

#[tokio::test]
async fn regex_captures_fill_the_reply() {
    let mut dev = device(
        r#"
        [[rule]]
        regex = 'ADD (\d+) (?<b>\d+)'
        reply = "{1}+{b}={0}"
        "#,
    );
    assert_eq!(ask(&mut dev, b"ADD 1 2"), frames(&["1+2=ADD 1 2"]));
    // Anchored at both ends: a longer request does not match.
    assert!(ask(&mut dev, b"xADD 1 2").is_empty());
    assert!(ask(&mut dev, b"ADD 1 2x").is_empty());
}

#[tokio::test]
async fn a_property_has_a_getter_and_a_setter() {
    let mut dev = device(
        r#"
        state = { volts = "0.000" }
        [[rule]]
        regex = 'VOLT (?<v>\d+\.\d{3})'
        set = { volts = "{v}" }
        reply = "OK volts={volts}"
        [[rule]]
        regex = 'VOLT .*'
        reply = "ERR"
        [[rule]]
        request = "VOLT?"
        reply = "{volts}"
        "#,
    );
    assert_eq!(ask(&mut dev, b"VOLT?"), frames(&["0.000"]));
    assert_eq!(ask(&mut dev, b"VOLT 1.250"), frames(&["OK volts=1.250"]));
    assert_eq!(ask(&mut dev, b"VOLT?"), frames(&["1.250"]));
    assert_eq!(ask(&mut dev, b"VOLT lots"), frames(&["ERR"]));
    assert_eq!(ask(&mut dev, b"VOLT?"), frames(&["1.250"]));
    assert_eq!(dev.state("volts"), Some(&b"1.250"[..]));
}

#[tokio::test]
async fn sequences_answer_in_turn_then_fall_through() {
    let mut dev = device(
        r#"
        default = "none left"
        [[rule]]
        request = "READ"
        sequence = ["first", ["second", "and more"], []]
        [[rule]]
        request = "NEXT"
        sequence = ["a", "b"]
        cycle = true
        [[rule]]
        request = "ONCE"
        times = 1
        reply = "only once"
        "#,
    );
    assert_eq!(ask(&mut dev, b"READ"), frames(&["first"]));
    assert_eq!(ask(&mut dev, b"READ"), frames(&["second", "and more"]));
    assert!(ask(&mut dev, b"READ").is_empty());
    assert_eq!(ask(&mut dev, b"READ"), frames(&["none left"]));
    let cycled: Vec<_> = [
        ask(&mut dev, b"NEXT"),
        ask(&mut dev, b"NEXT"),
        ask(&mut dev, b"NEXT"),
    ]
    .concat();
    assert_eq!(cycled, frames(&["a", "b", "a"]));
    assert_eq!(ask(&mut dev, b"ONCE"), frames(&["only once"]));
    assert_eq!(ask(&mut dev, b"ONCE"), frames(&["none left"]));
}

#[tokio::test]
async fn a_learned_recording_is_repeated_rules() {
    // What `learn` generates: one rule per exchange, each used once, in order.
    let mut dev = device(
        r#"
        [[rule]]
        request = "Q"
        reply = "1"
        times = 1
        [[rule]]
        request = "Q"
        reply = "2"
        times = 1
        "#,
    );
    assert_eq!(ask(&mut dev, b"Q"), frames(&["1"]));
    assert_eq!(ask(&mut dev, b"Q"), frames(&["2"]));
    assert!(ask(&mut dev, b"Q").is_empty());
}

#[tokio::test]
async fn replies_carry_any_bytes_delays_and_raw_frames() {
    let mut dev = device(
        r#"
        [[rule]]
        request = '\x00\xFFBIN\r'
        reply = [
            '\x00\x01\xfe\\',
            { hex = "de ad be ef", raw = true, delay_ms = 250 },
            { text = "{{braces}}", delay_ms = 5 },
        ]
        "#,
    );
    let mut replies = Replies::new();
    let mut ctx = Context::for_test(SimClock::real());
    dev.handle(b"\x00\xffBIN\r", &mut ctx, &mut replies)
        .unwrap();
    let got = replies.as_slice();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].bytes.as_ref(), b"\x00\x01\xfe\\");
    assert!(!got[0].raw);
    assert_eq!(got[0].delay, Duration::ZERO);
    assert_eq!(got[1].bytes.as_ref(), b"\xde\xad\xbe\xef");
    assert!(got[1].raw);
    assert_eq!(got[1].delay, Duration::from_millis(250));
    assert_eq!(got[2].bytes.as_ref(), b"{braces}");
    assert_eq!(got[2].delay, Duration::from_millis(5));
}

#[tokio::test]
async fn the_default_can_echo_the_request() {
    let mut dev = device("default = 'ECHO {0}'\n");
    assert_eq!(ask(&mut dev, b"hi"), frames(&["ECHO hi"]));
}

#[tokio::test]
async fn every_port_keeps_its_own_state() {
    let config: ScriptConfig = toml::from_str(
        "state = { n = '0' }\n[[rule]]\nregex = 'SET (.*)'\nset = { n = '{1}' }\n[[rule]]\nrequest = 'GET'\nreply = '{n}'\n",
    )
    .unwrap();
    let script = Arc::new(Script::compile(&config).unwrap());
    let mut a = Scripted::new(Arc::clone(&script));
    let mut b = Scripted::new(script);
    assert!(ask(&mut a, b"SET 7").is_empty());
    assert_eq!(ask(&mut a, b"GET"), frames(&["7"]));
    assert_eq!(ask(&mut b, b"GET"), frames(&["0"]));
}

#[test]
fn mistakes_are_reported_at_the_offending_value() {
    let (err, at) = compile_error("[[rule]]\nregex = '(unclosed'\nreply = 'x'\n");
    assert!(matches!(err.kind, ScriptErrorKind::Regex(_)), "{err}");
    assert_eq!(at, "'(unclosed'");
    assert!(!err.to_string().contains('\n'), "one line: {err}");

    let (err, at) = compile_error("[[rule]]\nrequest = 'A'\nreply = 'hello {who}'\n");
    assert!(
        matches!(err.kind, ScriptErrorKind::UnknownName { .. }),
        "{err}"
    );
    assert_eq!(at, "'hello {who}'");

    let (err, at) = compile_error("[[rule]]\nregex = 'A(.)'\nreply = '{2}'\n");
    assert!(
        matches!(
            err.kind,
            ScriptErrorKind::NoSuchGroup {
                index: 2,
                groups: 1
            }
        ),
        "{err}"
    );
    assert_eq!(at, "'{2}'");

    let (err, at) = compile_error("[[rule]]\nrequest = 'A'\nset = { nope = '1' }\n");
    assert!(
        matches!(err.kind, ScriptErrorKind::UnknownState { .. }),
        "{err}"
    );
    assert_eq!(at, "'1'");

    let (err, at) = compile_error("[[rule]]\nrequest = 'A\\q'\n");
    assert!(matches!(err.kind, ScriptErrorKind::Text(_)), "{err}");
    assert_eq!(at, "'A\\q'");

    let (err, at) = compile_error("[[rule]]\nrequest = 'A'\nregex = 'A'\n");
    assert!(matches!(err.kind, ScriptErrorKind::TwoPatterns), "{err}");
    assert_eq!(at, "'A'");

    let (err, _) = compile_error("[[rule]]\nreply = 'x'\n");
    assert!(matches!(err.kind, ScriptErrorKind::NoPattern), "{err}");

    let (err, at) = compile_error("[[rule]]\nrequest = 'A'\nreply = { hex = 'zz' }\n");
    assert!(matches!(err.kind, ScriptErrorKind::Text(_)), "{err}");
    assert_eq!(at, "{ hex = 'zz' }");
}

#[test]
fn serde_rejects_unknown_keys_and_wrong_types_with_a_position() {
    let err =
        toml::from_str::<ScriptConfig>("[[rule]]\nrequest = 'A'\nrepley = 'x'\n").unwrap_err();
    assert!(err.message().contains("unknown field `repley`"), "{err}");
    assert_eq!(err.span().map(|s| s.start), Some(23));

    let err = toml::from_str::<ScriptConfig>("[[rule]]\nrequest = 'A'\nreply = 5\n").unwrap_err();
    assert!(err.message().contains("a reply"), "{err}");
    assert_eq!(err.span().map(|s| s.start), Some(31));

    let err = toml::from_str::<ScriptConfig>("[[rule]]\nrequest = 'A'\nreply = { txt = 'x' }\n")
        .unwrap_err();
    assert!(err.message().contains("unknown field `txt`"), "{err}");
}

#[tokio::test]
async fn state_can_be_set_from_outside() {
    let mut dev = device("state = { mode = 'A' }\n[[rule]]\nrequest = 'MODE?'\nreply = '{mode}'\n");
    let mut ctx = Context::for_test(SimClock::real());
    dev.set("mode", r"B\x21", &mut ctx).unwrap();
    assert_eq!(ask(&mut dev, b"MODE?"), frames(&["B!"]));
    assert!(dev.set("nope", "1", &mut ctx).unwrap_err().contains("mode"));
}

#[tokio::test]
async fn a_generated_script_round_trips_through_toml() {
    use serde_spanned::Spanned;
    use serialtwin_devices::scripted::{ReplyItem, ReplySpec, RuleConfig};
    // What a generator (`learn`) builds: one rule per exchange, used once each, in order.
    let rule = |request: &str, reply: ReplySpec| {
        Spanned::new(
            0..0,
            RuleConfig {
                request: Some(Spanned::new(0..0, request.to_owned())),
                reply: Some(reply),
                times: Some(1),
                ..RuleConfig::default()
            },
        )
    };
    let config = ScriptConfig {
        default: Some(ReplySpec::new(vec![ReplyItem::text("?")])),
        rules: vec![
            rule("QPGS", ReplySpec::new(vec![ReplyItem::text("one")])),
            rule(
                "QPGS",
                ReplySpec::new(vec![
                    ReplyItem::text("two"),
                    ReplyItem {
                        hex: Some("00 ff".into()),
                        raw: true,
                        delay_ms: 20,
                        ..ReplyItem::default()
                    },
                ]),
            ),
        ],
        ..ScriptConfig::default()
    };
    let text = toml::to_string(&config).unwrap();
    assert!(text.contains("[[rule]]"), "{text}");
    let mut dev = device(&text);
    assert_eq!(ask(&mut dev, b"QPGS"), frames(&["one"]));
    assert_eq!(ask(&mut dev, b"QPGS"), [b"two".to_vec(), vec![0x00, 0xff]]);
    assert_eq!(ask(&mut dev, b"QPGS"), frames(&["?"]));
}

/// A scripted device on the framing called `framing`.
fn device_on(toml_text: &str, framing: &str) -> Scripted {
    device(toml_text).with_framing(serialtwin_devices::framing_by_name(framing).unwrap())
}

/// `command` with its PI30 CRC under `variant` (a request as the framer hands it over).
fn pi30(command: &str, variant: CrcVariant) -> Vec<u8> {
    let mut r = command.as_bytes().to_vec();
    r.extend_from_slice(&variant.checksum(command.as_bytes()));
    r
}

#[tokio::test]
async fn a_normalised_script_matches_requests_as_replay_does() {
    let script = r#"
        match = "normalised"
        default = "(NAK"
        [[rule]]
        request = 'QPIGS'
        reply = '(230.0'
        [[rule]]
        request = 'QED20250305'
        reply = '(00238'
        [[rule]]
        request = 'QMODI\xc1'          # as recorded: QMOD and its (printable) CRC
        reply = '(B'
        [[rule]]
        request = '\x01\x03\x00\x00'   # binary: no printable text, so byte for byte only
        reply = 'registers'
        [[rule]]
        regex = '(?s-u)QPIRI..'        # a regex sees the request as it came, CRC and all
        reply = 'by regex'
    "#;
    let mut dev = device_on(script, "pi30");
    let ok = |dev: &mut Scripted, request: &[u8], reply: &str| {
        assert_eq!(
            ask(dev, request),
            frames(&[reply]),
            "{}",
            escape_bytes(request)
        );
    };
    // With its CRC under either escape rule (QED20250305's differ: 0x7201 and 0x7200).
    ok(&mut dev, &pi30("QPIGS", CrcVariant::Mppsolar), "(230.0");
    let (mpp, reference) = (
        pi30("QED20250305", CrcVariant::Mppsolar),
        pi30("QED20250305", CrcVariant::Reference),
    );
    assert_ne!(mpp, reference);
    ok(&mut dev, &mpp, "(00238");
    ok(&mut dev, &reference, "(00238");
    // Typed in a terminal: no CRC, any case, spaces around.
    ok(&mut dev, b"QPIGS", "(230.0");
    ok(&mut dev, b" qpigs  ", "(230.0");
    // A CRC that does not verify is not removed: the text before its first unprintable byte
    // is what counts, as in replay.
    ok(&mut dev, b"QPIGS\xff\xff", "(230.0");
    // A rule written with its CRC: the CRC the framing verifies is removed from the rule too.
    ok(&mut dev, b"qmod", "(B");
    ok(&mut dev, &pi30("QMOD", CrcVariant::Reference), "(B");
    // Binary: byte for byte only.
    ok(&mut dev, b"\x01\x03\x00\x00", "registers");
    ok(&mut dev, b"\x01\x03\x00\x01", "(NAK");
    // Regex: the raw request.
    ok(&mut dev, &pi30("QPIRI", CrcVariant::Mppsolar), "by regex");
    ok(&mut dev, b"qpiri", "(NAK");
    ok(&mut dev, b"QPIGSX", "(NAK");

    // The same script without `match`: byte for byte, as before.
    let exact = script.replace("match = \"normalised\"", "");
    let mut dev = device_on(&exact, "pi30");
    ok(&mut dev, b"QPIGS", "(230.0");
    ok(&mut dev, b"qpigs", "(NAK");
    ok(&mut dev, &pi30("QPIGS", CrcVariant::Mppsolar), "(NAK");
}

/// Whatever the requests, a normalised rule matches exactly when replay's normalisation says
/// the two are the same request: one code, one answer.
#[tokio::test]
async fn normalised_rules_agree_with_replays_normalisation() {
    use std::fmt::Write as _;

    use serialtwin_devices::replay::normalise_for;
    let rules = [
        "QPIGS",
        "qpiri ",
        r"QMODI\xc1",
        r"\x00ABC",
        r"AB\x01CD",
        "*IDN?",
        "",
    ];
    let probes: Vec<Vec<u8>> = [
        &b"QPIGS"[..],
        b"QPIGS\xb7\xa9",
        b"QPIRI",
        b"QPIRI\xf8\x54",
        b"qmod",
        b"QMOD",
        b"\x00ABC",
        b"\x00ABD",
        b"ab",
        b"AB\x02",
        b"AB\x01CD",
        b"*idn?",
        b"",
        b"  ",
        b"\xff",
    ]
    .iter()
    .map(|p| p.to_vec())
    .chain([pi30("QPIGS", CrcVariant::Reference)])
    .collect();
    for framing_name in ["pi30", "crlf"] {
        let framing = serialtwin_devices::framing_by_name(framing_name).unwrap();
        let mut text = String::from("match = 'normalised'\n");
        for (i, rule) in rules.iter().enumerate() {
            let _ = writeln!(text, "[[rule]]\nrequest = '{rule}'\nreply = '{i}'");
        }
        let mut dev = device(&text).with_framing(framing.clone());
        let written: Vec<Vec<u8>> = rules
            .iter()
            .map(|r| serialtwin_core::escape::unescape(r).unwrap())
            .collect();
        for probe in &probes {
            let key = normalise_for(&framing, probe);
            let want = written
                .iter()
                .position(|r| r == probe || (!key.is_empty() && normalise_for(&framing, r) == key))
                .map(|i| vec![i.to_string().into_bytes()])
                .unwrap_or_default();
            assert_eq!(
                ask(&mut dev, probe),
                want,
                "{framing_name}: {}",
                escape_bytes(probe)
            );
        }
    }
}

#[tokio::test]
async fn a_normalised_sequence_counts_every_spelling_of_its_request() {
    let mut dev = device_on(
        "match = 'normalised'\n[[rule]]\nrequest = 'QPIGS'\nsequence = ['1', '2', '3']\n",
        "pi30",
    );
    assert_eq!(
        ask(&mut dev, &pi30("QPIGS", CrcVariant::Mppsolar)),
        frames(&["1"])
    );
    assert_eq!(ask(&mut dev, b"qpigs"), frames(&["2"]));
    assert_eq!(ask(&mut dev, b"QPIGS\x00\x00"), frames(&["3"]));
    assert!(ask(&mut dev, b"QPIGS").is_empty(), "used up");
}

#[test]
fn match_takes_exact_or_normalised_and_says_so_at_the_value() {
    for (text, mode) in [
        ("", MatchMode::Exact),
        ("match = 'exact'\n", MatchMode::Exact),
        ("match = 'normalised'\n", MatchMode::Normalised),
    ] {
        let config: ScriptConfig = toml::from_str(text).unwrap();
        assert_eq!(config.matching, mode, "{text}");
        assert_eq!(Script::compile(&config).unwrap().matching(), mode);
    }
    let text = "default = 'x'\nmatch = 'fuzzy'\n";
    let err = toml::from_str::<ScriptConfig>(text).unwrap_err();
    assert!(
        err.message()
            .contains("unknown variant `fuzzy`, expected `exact` or `normalised`"),
        "{err}"
    );
    assert_eq!(err.span().map(|s| &text[s]), Some("'fuzzy'"));
    // Written back only when it is not the default.
    let config: ScriptConfig = toml::from_str("match = 'normalised'\n").unwrap();
    assert_eq!(
        toml::to_string(&config).unwrap(),
        "match = \"normalised\"\n"
    );
    assert_eq!(toml::to_string(&ScriptConfig::default()).unwrap(), "");
}
