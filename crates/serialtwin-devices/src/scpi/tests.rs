//! The SCPI model through `handle`, and its parser and status model row by row
//! (instruments.md §1.1–§1.3).

use serialtwin_core::SimClock;

use super::header::{Header, Pattern, PatternError, Word, compose, split_unit, units};
use super::param::{self, Number};
use super::status::{self, Status};
use super::*;
use crate::registry::Table;

/// The example's instrument.
fn example() -> Scpi {
    let doc = toml::de::DeTable::parse(EXAMPLE).unwrap().into_inner();
    let device = doc["device"].get_ref().as_array().unwrap()[0].get_ref();
    let built = build(&Build::new(Table::new(device.get("scpi").unwrap().clone()))).unwrap();
    assert_eq!(built[0].line.baud, Some(9600));
    assert_eq!(built[0].framing.name(), "scpi");
    let config: ScpiConfig = Table::new(device.get("scpi").unwrap().clone())
        .deserialize()
        .unwrap()
        .unwrap();
    let properties = config
        .property
        .iter()
        .map(|p| property(p).unwrap())
        .collect();
    Scpi::new(config.idn.into_inner(), Terminator::Lf, 20, properties)
}

fn ask(scpi: &mut Scpi, request: &str) -> Vec<String> {
    let mut ctx = Context::for_test(SimClock::at_unix(0, 1.0));
    let mut replies = Replies::new();
    scpi.handle(request.as_bytes(), &mut ctx, &mut replies)
        .unwrap();
    replies
        .drain()
        .map(|r| String::from_utf8(r.bytes.to_vec()).unwrap())
        .collect()
}

/// One reply line, asserted to be the only one.
fn one(scpi: &mut Scpi, request: &str) -> String {
    let replies = ask(scpi, request);
    assert_eq!(replies.len(), 1, "{request}: {replies:?}");
    replies[0].clone()
}

fn errors(scpi: &mut Scpi) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let e = one(scpi, "SYST:ERR?");
        if e == "0,\"No error\"" {
            return out;
        }
        out.push(e);
    }
}

fn words(header: &str) -> Vec<Word> {
    match Header::parse(header).unwrap() {
        Header::Path { words, .. } => words,
        Header::Common { .. } => panic!("common"),
    }
}

#[test]
fn patterns_read_short_long_optional_and_suffixed_keywords() {
    let p = Pattern::parse("[SOURce:]VOLTage[:LEVel]").unwrap();
    assert_eq!(p.to_string(), "[SOURce]:VOLTage[:LEVel]");
    for spelled in [
        "VOLT",
        "volt",
        "VOLTage",
        "voltAGE",
        "SOUR:VOLT",
        "source:voltage:level",
        "VOLT:LEV",
        "Sour:Volt:Lev",
    ] {
        assert_eq!(p.matches(&words(spelled)), Some(1), "{spelled}");
    }
    for wrong in [
        "VOLTA",
        "VOL",
        "SOURC:VOLT",
        "LEV",
        "VOLT:LEV:LEV",
        "VOLT2",
        "SOUR:LEV",
    ] {
        assert_eq!(p.matches(&words(wrong)), None, "{wrong}");
    }
    let out = Pattern::parse("OUTPut#[:STATe]").unwrap();
    assert!(out.has_suffix());
    assert_eq!(out.matches(&words("OUTP")), Some(1));
    assert_eq!(out.matches(&words("outp2:stat")), Some(2));
    assert_eq!(out.matches(&words("OUTPUT7")), Some(7));
    // The upper-case part is the short form, whatever its length (Keithley's rules make
    // IMMediate IMM and FORMat FORM: the pattern says so).
    let imm = Pattern::parse("INITiate:IMMediate").unwrap();
    assert_eq!(imm.matches(&words("INIT:IMM")), Some(1));
    assert_eq!(imm.matches(&words("INIT:IMME")), None);
    for (bad, why) in [
        ("VoLTage", PatternError::Mnemonic("VoLTage".into())),
        ("volt", PatternError::Mnemonic("volt".into())),
        ("[SOURce:VOLTage", PatternError::Brackets),
        ("[[SOURce]]:VOLT", PatternError::Brackets),
        ("SOURce::VOLTage", PatternError::Empty),
        ("VOLTage:", PatternError::Empty),
        ("", PatternError::Empty),
        ("[SOURce:][:LEVel]", PatternError::AllOptional),
        ("OUTPut#:CHANnel#", PatternError::Suffixes),
        ("VOLTage?", PatternError::Character('?')),
        ("*IDN", PatternError::Character('*')),
    ] {
        assert_eq!(Pattern::parse(bad), Err(why), "{bad}");
    }
}

#[test]
fn headers_read_common_commands_paths_and_suffixes_or_say_why_not() {
    assert_eq!(
        Header::parse("*idn?"),
        Ok(Header::Common {
            name: "IDN".into(),
            query: true
        })
    );
    assert_eq!(
        Header::parse(":SOUR2:VOLT?"),
        Ok(Header::Path {
            words: vec![
                Word {
                    letters: "SOUR".into(),
                    suffix: Some(2)
                },
                Word {
                    letters: "VOLT".into(),
                    suffix: None
                }
            ],
            query: true
        })
    );
    for bad in [
        "",
        ":",
        "VOLT::LEV",
        "VOLT:",
        "VO-LT",
        "2VOLT",
        "VOLT2A",
        "*",
        "*ID2",
        "VOLT??",
        "ABCDEFGHIJKLM",
    ] {
        assert_eq!(Header::parse(bad), Err(ScpiError::SYNTAX), "{bad:?}");
    }
    for bad in ["OUTP0", "OUTP99999999999"] {
        assert_eq!(
            Header::parse(bad),
            Err(ScpiError::SUFFIX_OUT_OF_RANGE),
            "{bad}"
        );
    }
}

#[test]
fn messages_split_into_units_and_parameters_outside_strings() {
    assert_eq!(units("*IDN?;*OPC?"), ["*IDN?", "*OPC?"]);
    assert_eq!(units(" A ;; B;"), ["A", "B"]);
    assert_eq!(units("DISP:TEXT 'a;b';*OPC?"), ["DISP:TEXT 'a;b'", "*OPC?"]);
    assert_eq!(split_unit("VOLT 5 V"), Ok(("VOLT", vec!["5 V"])));
    assert_eq!(
        split_unit("APPL 1, 2 ,3"),
        Ok(("APPL", vec!["1", "2", "3"]))
    );
    assert_eq!(split_unit("X \"a,b\",c"), Ok(("X", vec!["\"a,b\"", "c"])));
    assert_eq!(split_unit("VOLT?"), Ok(("VOLT?", vec![])));
    assert_eq!(split_unit("VOLT 1,,2"), Err(ScpiError::SYNTAX));
    assert_eq!(split_unit("DISP:TEXT 'open"), Err(ScpiError::SYNTAX));
}

#[test]
fn the_relative_path_rule_composes_as_scpi_parser_does() {
    assert_eq!(compose(None, "VOLT"), "VOLT");
    assert_eq!(compose(Some("A:B"), "C"), "A:C");
    assert_eq!(compose(Some("A:B"), ":C"), ":C");
    assert_eq!(compose(Some(":SOUR:VOLT"), "CURR"), "SOUR:CURR");
    assert_eq!(compose(Some("SOUR:VOLT"), "*IDN?"), "*IDN?");
    assert_eq!(compose(Some("VOLT"), "CURR"), "CURR");
}

#[test]
fn parameters_read_numbers_units_limits_booleans_and_choices() {
    let v = Some("V");
    assert_eq!(param::number("5", v), Ok(Number::Value(5.0)));
    assert_eq!(param::number("-1.5E1", v), Ok(Number::Value(-15.0)));
    assert_eq!(param::number(".5", v), Ok(Number::Value(0.5)));
    assert_eq!(param::number("500 mV", v), Ok(Number::Value(0.5)));
    assert_eq!(param::number("2KV", v), Ok(Number::Value(2000.0)));
    assert_eq!(param::number("3V", v), Ok(Number::Value(3.0)));
    assert_eq!(param::number("2 MAV", v), Ok(Number::Value(2e6)));
    assert_eq!(param::number("100 MA", Some("A")), Ok(Number::Value(0.1)));
    assert_eq!(param::number("1 MHZ", Some("HZ")), Ok(Number::Value(1e6)));
    assert_eq!(param::number("1 MOHM", Some("OHM")), Ok(Number::Value(1e6)));
    for (word, n) in [
        ("MIN", Number::Min),
        ("maximum", Number::Max),
        ("Def", Number::Default),
    ] {
        assert_eq!(param::number(word, v), Ok(n));
    }
    assert_eq!(param::number("5 A", v), Err(ScpiError::INVALID_SUFFIX));
    assert_eq!(param::number("5 V", None), Err(ScpiError::INVALID_SUFFIX));
    assert_eq!(param::number("five", v), Err(ScpiError::DATA_TYPE));
    assert_eq!(param::number("MINI", v), Err(ScpiError::DATA_TYPE));
    assert_eq!(param::number("-", v), Err(ScpiError::DATA_TYPE));
    assert_eq!(param::number("5 %", v), Err(ScpiError::SYNTAX));
    assert_eq!(param::number("1E999", v), Err(ScpiError::OUT_OF_RANGE));
    let huge = "9".repeat(400);
    assert_eq!(param::number(&huge, v), Err(ScpiError::OUT_OF_RANGE));
    assert_eq!(param::boolean("on"), Ok(true));
    assert_eq!(param::boolean("OFF"), Ok(false));
    assert_eq!(param::boolean("1"), Ok(true));
    assert_eq!(param::boolean("0"), Ok(false));
    assert_eq!(param::boolean("0.2"), Ok(false));
    assert_eq!(param::boolean("maybe"), Err(ScpiError::ILLEGAL_VALUE));
    assert_eq!(param::boolean("'on'"), Err(ScpiError::DATA_TYPE));
    let shapes: Vec<Mnemonic> = ["SINusoid", "SQUare", "RAMP"]
        .iter()
        .map(|m| Mnemonic::parse(m).unwrap())
        .collect();
    assert_eq!(param::choice("sin", &shapes), Ok(0));
    assert_eq!(param::choice("SQUARE", &shapes), Ok(1));
    assert_eq!(param::choice("TRI", &shapes), Err(ScpiError::ILLEGAL_VALUE));
    assert_eq!(param::choice("5", &shapes), Err(ScpiError::DATA_TYPE));
}

#[test]
fn the_status_model_follows_ieee_488_2() {
    let mut s = Status::new(20);
    assert_eq!(s.stb(false), 0);
    // Each error class sets its ESR bit (instruments.md §1.3's table).
    for (code, bit) in [
        (-100, status::CME),
        (-102, status::CME),
        (-113, status::CME),
        (-200, status::EXE),
        (-222, status::EXE),
        (-224, status::EXE),
        (-350, status::DDE),
        (7, status::DDE),
        (-410, status::QYE),
        (-420, status::QYE),
    ] {
        assert_eq!(Status::class_bit(code), bit, "{code}");
    }
    s.push(ScpiError::UNDEFINED_HEADER);
    s.push(ScpiError::OUT_OF_RANGE);
    assert_eq!(s.stb(false), status::STB_ERRORS);
    s.set_ese(status::CME);
    assert_eq!(s.stb(false), status::STB_ERRORS | status::STB_ESB);
    // MSS: STB & SRE, bit 6 ignored in SRE.
    s.set_sre(0xFF);
    assert_eq!(s.sre(), 0xBF);
    assert_eq!(
        s.stb(true),
        status::STB_ERRORS | status::STB_MAV | status::STB_ESB | status::STB_MSS
    );
    // *ESR? reads and clears; STB is not cleared by reading.
    assert_eq!(s.read_esr(), status::CME | status::EXE);
    assert_eq!(s.read_esr(), 0);
    assert_eq!(s.stb(false), status::STB_ERRORS | status::STB_MSS);
    // FIFO.
    assert_eq!(s.next_error(), "-113,\"Undefined header\"");
    assert_eq!(s.error_count(), 1);
    // *CLS clears the queue and ESR, keeps the enables.
    s.operation_complete();
    s.clear();
    assert_eq!(
        (s.error_count(), s.read_esr(), s.ese(), s.sre()),
        (0, 0, status::CME, 0xBF)
    );
    assert_eq!(s.next_error(), "0,\"No error\"");
    // Overflow: the newest entry becomes -350, later errors are dropped until there is room.
    let mut s = Status::new(3);
    for _ in 0..5 {
        s.push(ScpiError::SYNTAX);
    }
    assert_eq!(s.error_count(), 3);
    assert_eq!(s.read_esr(), status::CME | status::DDE);
    // An error dropped on a full queue still sets its class's bit.
    s.push(ScpiError::OUT_OF_RANGE);
    assert_eq!(s.read_esr(), status::EXE | status::DDE);
    assert_eq!(s.next_error(), "-102,\"Syntax error\"");
    assert_eq!(s.next_error(), "-102,\"Syntax error\"");
    assert_eq!(s.next_error(), "-350,\"Queue overflow\"");
    s.push(ScpiError::OUT_OF_RANGE);
    assert_eq!(s.next_error(), "-222,\"Data out of range\"");
}

#[test]
fn common_commands_answer_as_ieee_488_2_says() {
    let mut scpi = example();
    assert_eq!(one(&mut scpi, "*IDN?"), "ACME,SRC-2,SN002,2.0");
    assert_eq!(one(&mut scpi, "*idn?;*OPC?"), "ACME,SRC-2,SN002,2.0;1");
    assert_eq!(one(&mut scpi, "*TST?"), "0");
    assert!(ask(&mut scpi, "*WAI").is_empty());
    // *OPC sets ESR bit 0; *ESR? reads and clears.
    assert!(ask(&mut scpi, "*OPC").is_empty());
    assert_eq!(one(&mut scpi, "*ESR?;*ESR?"), "1;0");
    // A command error sets CME (32), an execution error EXE (16).
    assert!(ask(&mut scpi, "FOO;VOLT 99").is_empty());
    assert_eq!(one(&mut scpi, "*ESR?"), "48");
    assert_eq!(one(&mut scpi, "*STB?"), "4");
    assert!(ask(&mut scpi, "*ESE 32;*SRE 36").is_empty());
    assert_eq!(one(&mut scpi, "*ESE?;*SRE?"), "32;36");
    assert!(ask(&mut scpi, "BAR").is_empty());
    // Errors queued (4), ESB (32), MSS (64): *SRE 36 enables bits 2 and 5.
    assert_eq!(one(&mut scpi, "*STB?"), "100");
    // MAV while an answer waits in the same message.
    assert_eq!(one(&mut scpi, "*OPC?;*STB?"), "1;116");
    // *CLS clears the queue and the ESR, not the enables.
    assert!(ask(&mut scpi, "*CLS").is_empty());
    assert_eq!(
        one(&mut scpi, "*STB?;*ESE?;*SRE?;SYST:ERR:COUN?"),
        "0;32;36;0"
    );
    // *SRE ignores bit 6; masks are 0..=255.
    assert!(
        ask(
            &mut scpi,
            "*SRE 255;*ESE 256;*ESE;*ESE MAX;*RST 1;*IDN? 1;*FOO"
        )
        .is_empty()
    );
    assert_eq!(one(&mut scpi, "*SRE?;*ESE?"), "191;32");
    assert_eq!(
        errors(&mut scpi),
        [
            "-222,\"Data out of range\"",
            "-109,\"Missing parameter\"",
            "-104,\"Data type error\"",
            "-108,\"Parameter not allowed\"",
            "-108,\"Parameter not allowed\"",
            "-113,\"Undefined header\"",
        ]
    );
}

#[test]
fn rst_restores_the_properties_and_leaves_the_status_alone() {
    let mut scpi = example();
    assert!(ask(&mut scpi, "VOLT 12.5;:OUTP2 ON;:FUNC SQU;*ESE 16;NOPE").is_empty());
    assert_eq!(one(&mut scpi, "VOLT?;:OUTP2?;:FUNC?"), "12.500;1;SQU");
    assert!(ask(&mut scpi, "*RST").is_empty());
    assert_eq!(
        one(&mut scpi, "VOLT?;:OUTP2?;:FUNC?;*ESE?"),
        "0.000;0;SIN;16"
    );
    assert_eq!(errors(&mut scpi), ["-113,\"Undefined header\""]);
}

#[test]
fn every_property_is_reached_by_short_long_and_mixed_case_forms() {
    let mut scpi = example();
    for (set, get, want) in [
        ("VOLT 1", "VOLT?", "1.000"),
        ("SOURce:VOLTage:LEVel 2", "sour:volt:lev?", "2.000"),
        ("sOuRcE:vOlTaGe 3", "Source:Voltage?", "3.000"),
        (":VOLT:LEV 4", ":SOURCE:VOLT?", "4.000"),
        ("OUTP ON", "OUTPut:STATe?", "1"),
        ("output1:state 0", "OUTP1?", "0"),
        ("Outp2 1", "OUTPUT2:STAT?", "1"),
        ("FUNC RAMP", "SOURce:FUNCtion:SHAPe?", "RAMP"),
        ("source:function:shape square", "func?", "SQU"),
    ] {
        assert!(ask(&mut scpi, set).is_empty(), "{set}");
        assert_eq!(one(&mut scpi, get), want, "{set} then {get}");
    }
    assert_eq!(
        one(&mut scpi, "MEAS:TEMP?;:measure:temperature?"),
        "25.0;25.0"
    );
    assert_eq!(errors(&mut scpi), Vec::<String>::new());
}

#[test]
fn numbers_take_limits_defaults_and_units_and_are_range_checked() {
    let mut scpi = example();
    assert!(ask(&mut scpi, "VOLT MAX").is_empty());
    assert_eq!(one(&mut scpi, "VOLT?"), "30.000");
    assert!(ask(&mut scpi, "VOLT MIN;VOLT?").len() == 1);
    assert!(ask(&mut scpi, "VOLT 1500 mV").is_empty());
    assert_eq!(one(&mut scpi, "VOLT?"), "1.500");
    assert!(ask(&mut scpi, "VOLT DEF").is_empty());
    assert_eq!(
        one(&mut scpi, "VOLT?;VOLT? MIN;VOLT? MAX;VOLT? DEF"),
        "0.000;0.000;30.000;0.000"
    );
    assert!(
        ask(
            &mut scpi,
            "VOLT 30.001;VOLT -1;VOLT 5 A;VOLT;VOLT 1,2;VOLT? 3;VOLT x"
        )
        .is_empty()
    );
    assert_eq!(
        errors(&mut scpi),
        [
            "-222,\"Data out of range\"",
            "-222,\"Data out of range\"",
            "-131,\"Invalid suffix\"",
            "-109,\"Missing parameter\"",
            "-108,\"Parameter not allowed\"",
            "-108,\"Parameter not allowed\"",
            "-104,\"Data type error\"",
        ]
    );
    assert_eq!(one(&mut scpi, "VOLT?"), "0.000", "nothing changed");
}

#[test]
fn compound_messages_follow_the_relative_path_rule() {
    let mut scpi = example();
    // SOUR:VOLT 5;FUNC SQU is SOUR:FUNC SQU; :OUTP restarts at the root; *XXX keeps the path.
    assert!(ask(&mut scpi, "SOUR:VOLT 5;FUNC SQU;*CLS;VOLT 6;:OUTP ON").is_empty());
    assert_eq!(one(&mut scpi, "SOUR:VOLT?;FUNC?;:OUTP?"), "6.000;SQU;1");
    // OUTP:STAT ON;VOLT 1 is OUTP:VOLT, which does not exist.
    assert!(ask(&mut scpi, "OUTP:STAT ON;VOLT 1").is_empty());
    assert_eq!(errors(&mut scpi), ["-113,\"Undefined header\""]);
    // An error does not stop the rest of the message; the answers still come on one line.
    assert_eq!(
        one(&mut scpi, "*IDN?;NOPE?;*OPC?"),
        "ACME,SRC-2,SN002,2.0;1"
    );
}

#[test]
fn wrong_commands_and_queries_send_nothing_and_queue_their_error() {
    let mut scpi = example();
    for (request, code) in [
        ("VOLTA 1", -113),
        ("VOLT:FOO?", -113),
        ("MEAS:TEMP 30", -113),
        ("SYST:ERR", -113),
        ("OUTP3 ON", -114),
        ("OUTP0?", -114),
        ("OUTP maybe", -224),
        ("FUNC TRIangle", -224),
        ("FUNC 3", -104),
        ("VO$LT 1", -102),
        ("\u{0}\u{7f}", -102),
        ("DISP:TEXT 'unterminated", -102),
        ("SYST:ERR? 1", -108),
    ] {
        assert!(ask(&mut scpi, request).is_empty(), "{request:?}");
        let e = errors(&mut scpi);
        assert!(
            e.len() == 1 && e[0].starts_with(&format!("{code},")),
            "{request:?}: {e:?}"
        );
    }
    assert!(ask(&mut scpi, "").is_empty());
    assert!(ask(&mut scpi, ";;;").is_empty());
    assert_eq!(one(&mut scpi, "SYST:VERS?"), "1999.0");
    // Invalid UTF-8 is a syntax error, not a panic.
    let mut ctx = Context::for_test(SimClock::at_unix(0, 1.0));
    let mut replies = Replies::new();
    scpi.handle(&[0xff, 0xfe, b'?'], &mut ctx, &mut replies)
        .unwrap();
    assert!(replies.drain().next().is_none());
    assert_eq!(errors(&mut scpi), ["-102,\"Syntax error\""]);
}

#[test]
fn the_error_queue_holds_twenty_and_survives_rst_not_cls() {
    let mut scpi = example();
    for _ in 0..25 {
        ask(&mut scpi, "NOPE");
    }
    assert_eq!(one(&mut scpi, "SYST:ERR:COUN?"), "20");
    ask(&mut scpi, "*RST");
    assert_eq!(one(&mut scpi, "SYSTem:ERRor:COUNt?"), "20");
    let e = errors(&mut scpi);
    assert_eq!(e.len(), 20);
    assert_eq!(e[19], "-350,\"Queue overflow\"");
    ask(&mut scpi, "NOPE;*CLS");
    assert_eq!(one(&mut scpi, "SYSTEM:ERROR:NEXT?"), "0,\"No error\"");
}

#[test]
fn ctl_set_moves_a_property_within_its_range() {
    let mut scpi = example();
    let mut ctx = Context::for_test(SimClock::at_unix(0, 1.0));
    scpi.set("temperature", "31.5", &mut ctx).unwrap();
    scpi.set("output:2", "ON", &mut ctx).unwrap();
    assert_eq!(one(&mut scpi, "MEAS:TEMP?;:OUTP2?;:OUTP1?"), "31.5;1;0");
    // *RST restores settings, not what is measured.
    assert_eq!(one(&mut scpi, "*RST;MEAS:TEMP?;:OUTP2?"), "31.5;0");
    assert!(
        scpi.set("temperature", "200", &mut ctx)
            .unwrap_err()
            .contains("out of range")
    );
    assert!(scpi.set("output:3", "ON", &mut ctx).is_err());
    assert!(
        scpi.set("nothing", "1", &mut ctx)
            .unwrap_err()
            .contains("voltage")
    );
    let keys: Vec<_> = scpi.settable().into_iter().map(|s| s.key).collect();
    assert_eq!(
        keys,
        ["voltage", "output[:1..2]", "function", "temperature"]
    );
}

#[test]
fn replies_end_as_configured_and_requests_in_any_line_ending() {
    let table = Table::parse("terminator = 'crlf'\n").unwrap();
    let built = build(&Build::new(table)).unwrap();
    assert_eq!(built[0].framing.name(), "scpi-crlf");
}

#[test]
fn a_bad_config_is_pointed_at() {
    for (text, at, why) in [
        ("idn = 'ACME;X'\n", "'ACME;X'", "`idn` must be 4 fields"),
        ("error_queue = 0\n", "0", "`error_queue`"),
        (
            "[[property]]\nname = 'v'\nheader = 'VoLT'\nkind = 'number'\nmin = 0\nmax = 1\n",
            "'VoLT'",
            "not a SCPI mnemonic",
        ),
        (
            "[[property]]\nname = 'v'\nheader = 'VOLT'\nkind = 'number'\nmin = 0\nmax = 1\ndefault = 2\n",
            "2",
            "`default` must be a number",
        ),
        (
            "[[property]]\nname = 'v'\nheader = 'VOLT'\nkind = 'number'\nmin = 0\nmax = 1\nsuffixes = 2\n",
            "2",
            "needs a `#`",
        ),
        (
            "[[property]]\nname = 'f'\nheader = 'FUNC'\nkind = 'choice'\nchoices = ['SIN', 'sin']\n",
            "['SIN', 'sin']",
            "not a SCPI mnemonic",
        ),
        (
            "[[property]]\nname = 'f'\nheader = 'FUNC'\nkind = 'choice'\nchoices = ['SINe', 'SIN']\n",
            "['SINe', 'SIN']",
            "different short forms",
        ),
        (
            "[[property]]\nname = 'o'\nheader = 'OUTP'\nkind = 'boolean'\nunit = 'V'\n",
            "'V'",
            "`unit` has no meaning",
        ),
        (
            "[[property]]\nname = 'o'\nheader = 'A'\nkind = 'boolean'\n[[property]]\nname = 'o'\nheader = 'B'\nkind = 'boolean'\n",
            "'o'",
            "two properties",
        ),
        (
            "[[property]]\nname = 'o'\nheader = 'A:B:C:D:E:F:G:H:I:J:K:L:M'\nkind = 'boolean'\n",
            "'A:B:C:D:E:F:G:H:I:J:K:L:M'",
            "at most 12",
        ),
        (
            "[[property]]\nname = 'o'\nheader = 'A'\nkind = 'bool'\n",
            "'bool'",
            "unknown variant",
        ),
    ] {
        let e = build(&Build::new(Table::parse(text).unwrap())).unwrap_err();
        let span = e.at.clone().unwrap();
        assert!(
            &text[span.clone()] == at
                && text.rfind(at) == Some(span.start)
                && e.reason.contains(why),
            "{text}: {:?} at {:?}",
            e.reason,
            &text[span]
        );
    }
}

#[test]
fn an_overlong_line_queues_an_input_buffer_overrun() {
    // The framer drops the line and hands on `lines::OVERRUN` where it ends.
    let mut scpi = example();
    assert!(ask(&mut scpi, "\n").is_empty(), "no reply");
    assert_eq!(
        one(&mut scpi, "*ESR?"),
        "8",
        "a device-dependent error (DDE)"
    );
    assert_eq!(errors(&mut scpi), ["-363,\"Input buffer overrun\""]);
    let framing = scpi.framing();
    let mut framer = framing.build();
    let mut wire = bytes::BytesMut::new();
    wire.extend_from_slice(b"VOLT ");
    wire.extend_from_slice(&vec![b'9'; Framing::DEFAULT_MAX_LEN + 10]);
    wire.extend_from_slice(b"\r\n*IDN?\n");
    let mut cut = Vec::new();
    loop {
        match framer.decode(&mut wire) {
            Ok(Some(frame)) => cut.push(Ok(frame.to_vec())),
            Ok(None) => break,
            Err(e) => cut.push(Err(e.to_string())),
        }
    }
    assert!(cut[0].is_err(), "{cut:?}");
    assert_eq!(cut[1..], [Ok(b"\n".to_vec()), Ok(b"*IDN?".to_vec())]);
}
