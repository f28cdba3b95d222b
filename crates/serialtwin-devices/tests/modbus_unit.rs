//! A Modbus unit answering PDUs, and values in registers: the reference's verified bytes, the
//! APP §6 examples, every function's checks in the standard's order, broadcast and
//! listen-only silence, and a seeded randomized check of the encodings against an independent
//! one written here.

#![expect(
    clippy::too_many_lines,
    reason = "a test reads as one story of requests and replies"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use serialtwin_devices::modbus::data::{DataError, Encoding, Kind, Order, Pad, Value};
use serialtwin_devices::modbus::unit::{
    Access, Counter, Counters, Delivery, ExceptionCode, Gaps, MapError, Outcome, Ramp,
    ReadOnlyWrites, Settings, Silence, Unit,
};

const ILLEGAL_FUNCTION: Outcome = Outcome::Exception(ExceptionCode::IllegalFunction);
const ILLEGAL_ADDRESS: Outcome = Outcome::Exception(ExceptionCode::IllegalDataAddress);
const ILLEGAL_VALUE: Outcome = Outcome::Exception(ExceptionCode::IllegalDataValue);
const DEVICE_FAILURE: Outcome = Outcome::Exception(ExceptionCode::ServerDeviceFailure);

fn ask_at(unit: &mut Unit, pdu: &[u8], now: Duration) -> (Outcome, Vec<u8>) {
    let mut out = Vec::new();
    let outcome = unit.answer(pdu, Delivery::Addressed, now, &mut out);
    (outcome, out)
}

fn ask(unit: &mut Unit, pdu: &[u8]) -> (Outcome, Vec<u8>) {
    ask_at(unit, pdu, Duration::ZERO)
}

fn broadcast(unit: &mut Unit, pdu: &[u8]) -> Outcome {
    let mut out = Vec::new();
    let outcome = unit.answer(pdu, Delivery::Broadcast, Duration::ZERO, &mut out);
    assert!(out.is_empty(), "a broadcast got bytes back: {out:02X?}");
    outcome
}

/// The normal reply, or a panic naming what came instead.
fn normal(unit: &mut Unit, pdu: &[u8]) -> Vec<u8> {
    let (outcome, out) = ask(unit, pdu);
    assert_eq!(outcome, Outcome::Normal, "for {pdu:02X?}: {out:02X?}");
    out
}

/// The exception reply's code, checking its bytes.
fn exception(unit: &mut Unit, pdu: &[u8]) -> Outcome {
    let (outcome, out) = ask(unit, pdu);
    if let Outcome::Exception(code) = outcome {
        assert_eq!(out, [pdu[0] | 0x80, code.code()], "for {pdu:02X?}");
    }
    outcome
}

/// 100 of each (addresses 0 to 99): holding registers writable holding their address,
/// input registers holding 1000 + address, coils writable and discrete inputs, both off.
fn hundred() -> Unit {
    let mut unit = Unit::default();
    let words: Vec<u16> = (0..100).collect();
    unit.holding
        .set_words(0, &words, Access::ReadWrite)
        .unwrap();
    let inputs: Vec<u16> = (1000..1100).collect();
    unit.input.set_words(0, &inputs, Access::ReadOnly).unwrap();
    unit.coils
        .set_run(0, &[false; 100], Access::ReadWrite)
        .unwrap();
    unit.discrete_inputs
        .set_run(0, &[false; 100], Access::ReadOnly)
        .unwrap();
    unit
}

#[test]
fn the_reference_example_and_its_exceptions() {
    let mut unit = Unit::default();
    // APP §6.3: registers 108-110 (1-based) are PDU addresses 0x6B-0x6D.
    unit.holding
        .set_words(0x6B, &[0x022B, 0x0000, 0x0064], Access::ReadOnly)
        .unwrap();
    assert_eq!(
        normal(&mut unit, &[0x03, 0x00, 0x6B, 0x00, 0x03]),
        [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64]
    );
    // One past the end: `83 02`.
    assert_eq!(
        ask(&mut unit, &[0x03, 0x00, 0x6B, 0x00, 0x04]).1,
        [0x83, 0x02]
    );
    // Quantity zero: `83 03`.
    assert_eq!(
        ask(&mut unit, &[0x03, 0x00, 0x6B, 0x00, 0x00]).1,
        [0x83, 0x03]
    );
}

#[test]
fn read_coils_packs_lsb_first_as_app_6_1() {
    let mut unit = Unit::default();
    // APP §6.1: coils 20-38 are CD 6B 05, the first coil in the lowest bit.
    let bits = [
        true, false, true, true, false, false, true, true, // 0xCD
        true, true, false, true, false, true, true, false, // 0x6B
        true, false, true, // 0x05, padded with zeros
    ];
    unit.coils.set_run(19, &bits, Access::ReadWrite).unwrap();
    assert_eq!(
        normal(&mut unit, &[0x01, 0x00, 0x13, 0x00, 0x13]),
        [0x01, 0x03, 0xCD, 0x6B, 0x05]
    );
}

#[test]
fn read_discrete_inputs_as_app_6_2() {
    let mut unit = Unit::default();
    // APP §6.2: inputs 197-218 are AC DB 35.
    let bits = [
        false, false, true, true, false, true, false, true, // 0xAC
        true, true, false, true, true, false, true, true, // 0xDB
        true, false, true, false, true, true, // 0x35
    ];
    unit.discrete_inputs
        .set_run(0xC4, &bits, Access::ReadOnly)
        .unwrap();
    assert_eq!(
        normal(&mut unit, &[0x02, 0x00, 0xC4, 0x00, 0x16]),
        [0x02, 0x03, 0xAC, 0xDB, 0x35]
    );
    // Coils and discrete inputs are separate tables.
    assert_eq!(
        exception(&mut unit, &[0x01, 0x00, 0xC4, 0x00, 0x16]),
        ILLEGAL_ADDRESS
    );
}

#[test]
fn read_input_registers_as_app_6_4() {
    let mut unit = Unit::default();
    unit.input
        .set_words(0x08, &[0x000A], Access::ReadOnly)
        .unwrap();
    assert_eq!(
        normal(&mut unit, &[0x04, 0x00, 0x08, 0x00, 0x01]),
        [0x04, 0x02, 0x00, 0x0A]
    );
    // Holding registers are another table.
    assert_eq!(
        exception(&mut unit, &[0x03, 0x00, 0x08, 0x00, 0x01]),
        ILLEGAL_ADDRESS
    );
}

#[test]
fn write_single_coil_and_its_exceptions() {
    let mut unit = hundred();
    unit.coils.set(100, true, Access::ReadOnly);
    let on = [0x05, 0x00, 0x2A, 0xFF, 0x00];
    assert_eq!(normal(&mut unit, &on), on);
    assert_eq!(unit.coils.get(42), Some(true));
    let off = [0x05, 0x00, 0x2A, 0x00, 0x00];
    assert_eq!(normal(&mut unit, &off), off);
    assert_eq!(unit.coils.get(42), Some(false));
    // Any other value is 03, even at a bad address; the coil is untouched.
    assert_eq!(
        exception(&mut unit, &[0x05, 0x00, 0x2A, 0x00, 0x01]),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(&mut unit, &[0x05, 0x00, 0x2A, 0xFF, 0xFF]),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(&mut unit, &[0x05, 0x10, 0x00, 0x12, 0x34]),
        ILLEGAL_VALUE
    );
    assert_eq!(unit.coils.get(42), Some(false));
    // A read-only coil, or none at all: 02.
    assert_eq!(
        exception(&mut unit, &[0x05, 0x00, 0x64, 0xFF, 0x00]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(unit.coils.get(100), Some(true));
    assert_eq!(
        exception(&mut unit, &[0x05, 0x00, 0x65, 0xFF, 0x00]),
        ILLEGAL_ADDRESS
    );
    // A PDU of the wrong length: 03.
    assert_eq!(
        exception(&mut unit, &[0x05, 0x00, 0x2A, 0xFF]),
        ILLEGAL_VALUE
    );
}

/// A write reaching read-only values answers what the map says: 02 (the standard's, and the
/// default), 04, or an acknowledgement that writes only the writable values. An address
/// nothing is declared at stays 02 whatever the map says.
#[test]
fn writes_to_read_only_values_answer_as_the_map_says() {
    let unit_with = |policy| {
        let mut unit = Unit::new(Settings {
            gaps: Gaps::Exception,
            read_only_writes: policy,
            ..Settings::default()
        })
        .unwrap();
        // Holding 0-3: 0 and 1 writable, 2 read-only, 3 writable; 5 read-only after a gap.
        unit.holding
            .set_words(0, &[10, 11], Access::ReadWrite)
            .unwrap();
        unit.holding.set_words(2, &[12], Access::ReadOnly).unwrap();
        unit.holding.set_words(3, &[13], Access::ReadWrite).unwrap();
        unit.holding.set_words(5, &[15], Access::ReadOnly).unwrap();
        unit.coils
            .set_run(0, &[false, false], Access::ReadWrite)
            .unwrap();
        unit.coils.set(2, true, Access::ReadOnly);
        unit
    };
    // Function 16 over 1-3 (2 read-only), 6 at 2, 5 at coil 2, 15 over coils 0-2, 22 at 2,
    // 23 writing 2-3: what each policy gives, then what the registers hold.
    let writes: [&[u8]; 6] = [
        &[
            0x10, 0x00, 0x01, 0x00, 0x03, 0x06, 0x00, 0x21, 0x00, 0x22, 0x00, 0x23,
        ],
        &[0x06, 0x00, 0x02, 0x00, 0x42],
        &[0x05, 0x00, 0x02, 0x00, 0x00],
        &[0x0F, 0x00, 0x00, 0x00, 0x03, 0x01, 0x03],
        &[0x16, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01],
        &[
            0x17, 0x00, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x02, 0x04, 0x00, 0x52, 0x00, 0x53,
        ],
    ];
    for (policy, want) in [
        (ReadOnlyWrites::Exception, Some(ILLEGAL_ADDRESS)),
        (ReadOnlyWrites::DeviceFailure, Some(DEVICE_FAILURE)),
        (ReadOnlyWrites::Ignored, None),
    ] {
        for pdu in writes {
            let mut unit = unit_with(policy);
            if let Some(code) = want {
                assert_eq!(exception(&mut unit, pdu), code, "{policy:?} {pdu:02X?}");
                assert_eq!(unit.holding.word(1), Some(11), "nothing written");
                assert_eq!(unit.holding.word(3), Some(13), "nothing written");
                assert_eq!(unit.coils.get(0), Some(false), "nothing written");
            } else {
                let (outcome, _) = ask(&mut unit, pdu);
                assert_eq!(outcome, Outcome::Normal, "{policy:?} {pdu:02X?}");
            }
            assert_eq!(unit.holding.word(2), Some(12), "{policy:?}: read-only kept");
            assert_eq!(unit.coils.get(2), Some(true), "{policy:?}: read-only kept");
        }
        // The writable values a let-through write reaches are written.
        let mut unit = unit_with(policy);
        let _ = ask(&mut unit, writes[0]);
        let _ = ask(&mut unit, writes[3]);
        let written = (
            unit.holding.word(1),
            unit.holding.word(3),
            unit.coils.get(0),
        );
        if want.is_none() {
            assert_eq!(written, (Some(0x21), Some(0x23), Some(true)));
        } else {
            assert_eq!(written, (Some(11), Some(13), Some(false)));
        }
        // Nothing declared at 4: 02 whatever the policy.
        let mut unit = unit_with(policy);
        assert_eq!(
            exception(&mut unit, &[0x10, 0x00, 0x03, 0x00, 0x02, 0x04, 0, 1, 0, 2]),
            ILLEGAL_ADDRESS,
            "{policy:?}"
        );
        assert_eq!(
            exception(&mut unit, &[0x06, 0x00, 0x04, 0x00, 0x01]),
            ILLEGAL_ADDRESS,
            "{policy:?}"
        );
    }
}

#[test]
fn write_single_register_and_read_only_registers() {
    let mut unit = hundred();
    unit.holding.set_words(100, &[7], Access::ReadOnly).unwrap();
    let write = [0x06, 0x00, 0x01, 0x00, 0x03];
    assert_eq!(normal(&mut unit, &write), write);
    assert_eq!(unit.holding.word(1), Some(3));
    assert_eq!(
        exception(&mut unit, &[0x06, 0x00, 0x64, 0x00, 0x03]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(unit.holding.word(100), Some(7));
    // Input registers are never written.
    assert_eq!(unit.input.word(1), Some(1001));
}

#[test]
fn boundaries_of_a_100_register_table() {
    let mut unit = hundred();
    assert_eq!(
        normal(&mut unit, &[0x03, 0x00, 0x60, 0x00, 0x04]),
        [0x03, 0x08, 0x00, 96, 0x00, 97, 0x00, 98, 0x00, 99]
    );
    assert_eq!(
        exception(&mut unit, &[0x03, 0x00, 0x60, 0x00, 0x05]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        exception(&mut unit, &[0x04, 0x00, 0x60, 0x00, 0x05]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        exception(&mut unit, &[0x01, 0x00, 0x60, 0x00, 0x05]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        exception(
            &mut unit,
            &[
                0x10, 0x00, 0x60, 0x00, 0x05, 0x0A, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5
            ]
        ),
        ILLEGAL_ADDRESS
    );
    assert_eq!(unit.holding.word(96), Some(96), "nothing written");
    // Start + quantity past 65535 wraps nowhere.
    assert_eq!(
        exception(&mut unit, &[0x03, 0xFF, 0xFF, 0x00, 0x02]),
        ILLEGAL_ADDRESS
    );
}

#[test]
fn quantity_limits_are_03() {
    let mut unit = hundred();
    unit.coils.set_extent(0..=u16::MAX);
    unit.discrete_inputs.set_extent(0..=u16::MAX);
    unit.holding.set_extent(0..=u16::MAX);
    unit.input.set_extent(0..=u16::MAX);
    // Read bits: 1..=2000.
    for fc in [0x01, 0x02] {
        assert_eq!(exception(&mut unit, &[fc, 0, 0, 0x00, 0x00]), ILLEGAL_VALUE);
        let out = normal(&mut unit, &[fc, 0, 0, 0x07, 0xD0]);
        assert_eq!(out[1], 250);
        assert_eq!(out.len(), 252);
        assert_eq!(exception(&mut unit, &[fc, 0, 0, 0x07, 0xD1]), ILLEGAL_VALUE);
    }
    // Read registers: 1..=125.
    for fc in [0x03, 0x04] {
        assert_eq!(exception(&mut unit, &[fc, 0, 0, 0x00, 0x00]), ILLEGAL_VALUE);
        assert_eq!(normal(&mut unit, &[fc, 0, 0, 0x00, 0x7D]).len(), 252);
        assert_eq!(exception(&mut unit, &[fc, 0, 0, 0x00, 0x7E]), ILLEGAL_VALUE);
    }
    // Write coils: 1..=1968 with bc = ceil(N/8). The table's extent covers them but a gap is
    // never writable, so a valid quantity past the declared coils is 02.
    let mut pdu = vec![0x0F, 0, 0, 0x07, 0xB0, 246];
    pdu.resize(6 + 246, 0);
    assert_eq!(exception(&mut unit, &pdu), ILLEGAL_ADDRESS);
    let mut pdu = vec![0x0F, 0, 0, 0x07, 0xB1, 247];
    pdu.resize(6 + 247, 0);
    assert_eq!(exception(&mut unit, &pdu), ILLEGAL_VALUE);
    assert_eq!(exception(&mut unit, &[0x0F, 0, 0, 0, 0, 0]), ILLEGAL_VALUE);
    // Write registers: 1..=123 with bc = 2N.
    let mut pdu = vec![0x10, 0, 0, 0x00, 0x7B, 246];
    pdu.resize(6 + 246, 0);
    assert_eq!(exception(&mut unit, &pdu), ILLEGAL_ADDRESS);
    let mut pdu = vec![0x10, 0, 0, 0x00, 0x7C, 248];
    pdu.resize(6 + 248, 0);
    assert_eq!(exception(&mut unit, &pdu), ILLEGAL_VALUE);
    assert_eq!(exception(&mut unit, &[0x10, 0, 0, 0, 0, 0]), ILLEGAL_VALUE);
    // Read/write: read 1..=125, write 1..=121.
    let rw = |read: u16, write: u16| {
        let mut pdu = vec![0x17, 0, 0];
        pdu.extend_from_slice(&read.to_be_bytes());
        pdu.extend_from_slice(&[0, 0]);
        pdu.extend_from_slice(&write.to_be_bytes());
        let count = u8::try_from(2 * write).unwrap_or(0);
        pdu.push(count);
        pdu.resize(10 + usize::from(count), 0);
        pdu
    };
    assert_eq!(normal(&mut unit, &rw(125, 1)).len(), 252);
    assert_eq!(normal(&mut unit, &rw(1, 1)).len(), 4);
    assert_eq!(exception(&mut unit, &rw(126, 1)), ILLEGAL_VALUE);
    assert_eq!(exception(&mut unit, &rw(0, 1)), ILLEGAL_VALUE);
    assert_eq!(exception(&mut unit, &rw(1, 0)), ILLEGAL_VALUE);
    assert_eq!(exception(&mut unit, &rw(1, 122)), ILLEGAL_VALUE);
    // 121 registers (242 bytes) from address 0 run past the 100 declared ones: 02.
    assert_eq!(exception(&mut unit, &rw(1, 121)), ILLEGAL_ADDRESS);
}

#[test]
fn quantity_is_checked_before_address() {
    let mut unit = hundred();
    // Quantity bad and address bad at once: 03, for every function with a quantity.
    for pdu in [
        &[0x01, 0xFF, 0x00, 0x00, 0x00][..],
        &[0x02, 0xFF, 0x00, 0x07, 0xD1],
        &[0x03, 0xFF, 0x00, 0x00, 0x00],
        &[0x04, 0xFF, 0x00, 0x00, 0x7E],
        &[0x0F, 0xFF, 0x00, 0x00, 0x00, 0x00],
        &[0x10, 0xFF, 0x00, 0x00, 0x7C, 0x00],
        &[
            0x17, 0xFF, 0x00, 0x00, 0x00, 0xFF, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00,
        ],
    ] {
        assert_eq!(exception(&mut unit, pdu), ILLEGAL_VALUE, "for {pdu:02X?}");
    }
    // Byte count inconsistent and address bad: 03.
    assert_eq!(
        exception(&mut unit, &[0x10, 0xFF, 0x00, 0x00, 0x01, 0x04, 0, 1, 0, 2]),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(&mut unit, &[0x0F, 0xFF, 0x00, 0x00, 0x09, 0x01, 0xFF]),
        ILLEGAL_VALUE
    );
    // An unsupported function comes first of all, whatever follows.
    assert_eq!(exception(&mut unit, &[0x41, 0xFF]), ILLEGAL_FUNCTION);
    assert_eq!(exception(&mut unit, &[0x0C]), ILLEGAL_FUNCTION);
    assert_eq!(exception(&mut unit, &[0x83, 0, 0, 0, 1]), ILLEGAL_FUNCTION);
}

#[test]
fn write_multiple_coils_as_app_6_11() {
    let mut unit = Unit::default();
    unit.coils
        .set_run(19, &[false; 10], Access::ReadWrite)
        .unwrap();
    // APP §6.11: coils 20-29 set from CD 01, the first coil in the lowest bit.
    assert_eq!(
        normal(&mut unit, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01]),
        [0x0F, 0x00, 0x13, 0x00, 0x0A]
    );
    let expected = [
        true, false, true, true, false, false, true, true, true, false,
    ];
    let got: Vec<bool> = (19..29).map(|a| unit.coils.get(a).unwrap()).collect();
    assert_eq!(got, expected);
    // Read back: the same bytes, the unused bits of the last one zero.
    assert_eq!(
        normal(&mut unit, &[0x01, 0x00, 0x13, 0x00, 0x0A]),
        [0x01, 0x02, 0xCD, 0x01]
    );
    // One read-only coil in the run: 02, nothing written.
    unit.coils.set(25, false, Access::ReadOnly);
    assert_eq!(
        exception(&mut unit, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0x00, 0x00]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(unit.coils.get(19), Some(true));
}

#[test]
fn write_multiple_registers_as_app_6_12() {
    let mut unit = hundred();
    assert_eq!(
        normal(
            &mut unit,
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02]
        ),
        [0x10, 0x00, 0x01, 0x00, 0x02]
    );
    assert_eq!(unit.holding.word(1), Some(0x000A));
    assert_eq!(unit.holding.word(2), Some(0x0102));
    // bc ≠ 2N, or a PDU shorter than bc says: 03.
    assert_eq!(
        exception(
            &mut unit,
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x03, 0x00, 0x0A, 0x01]
        ),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(
            &mut unit,
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01]
        ),
        ILLEGAL_VALUE
    );
    // A read-only register in the run: 02, nothing written.
    unit.holding.set_words(3, &[3], Access::ReadOnly).unwrap();
    assert_eq!(
        exception(&mut unit, &[0x10, 0x00, 0x02, 0x00, 0x02, 0x04, 0, 9, 0, 9]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(unit.holding.word(2), Some(0x0102));
}

#[test]
fn mask_write_as_app_6_16() {
    let mut unit = hundred();
    unit.holding
        .set_words(4, &[0x12], Access::ReadWrite)
        .unwrap();
    let pdu = [0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25];
    assert_eq!(normal(&mut unit, &pdu), pdu);
    // (0x12 & 0xF2) | (0x25 & !0xF2) = 0x12 | 0x05.
    assert_eq!(unit.holding.word(4), Some(0x17));
    // All ones in AND keeps the register; all zeros puts OR in.
    unit.holding
        .set_words(5, &[0xA5A5], Access::ReadWrite)
        .unwrap();
    normal(&mut unit, &[0x16, 0x00, 0x05, 0xFF, 0x00, 0x12, 0x34]);
    assert_eq!(unit.holding.word(5), Some(0xA534));
    unit.holding.set_words(6, &[7], Access::ReadOnly).unwrap();
    assert_eq!(
        exception(&mut unit, &[0x16, 0x00, 0x06, 0x00, 0x00, 0x00, 0x01]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        exception(&mut unit, &[0x16, 0x00, 0x06, 0x00, 0x00, 0x00]),
        ILLEGAL_VALUE
    );
}

#[test]
fn read_write_writes_before_it_reads() {
    let mut unit = hundred();
    // APP §6.17's request: read 6 from 3, write 3 at 14 (0x0E).
    let out = normal(
        &mut unit,
        &[
            0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0x00, 0xFF, 0x00, 0xFF,
            0x00, 0xFF,
        ],
    );
    assert_eq!(out, [0x17, 0x0C, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
    assert_eq!(unit.holding.word(14), Some(0xFF));
    // Reading what is written sees the new values.
    let out = normal(
        &mut unit,
        &[
            0x17, 0x00, 0x14, 0x00, 0x03, 0x00, 0x15, 0x00, 0x02, 0x04, 0xAB, 0xCD, 0x12, 0x34,
        ],
    );
    assert_eq!(out, [0x17, 0x06, 0x00, 0x14, 0xAB, 0xCD, 0x12, 0x34]);
    // A read-only register in the write range: 02, nothing written.
    unit.holding.set_words(30, &[30], Access::ReadOnly).unwrap();
    assert_eq!(
        exception(
            &mut unit,
            &[
                0x17, 0x00, 0x00, 0x00, 0x01, 0x00, 0x1D, 0x00, 0x02, 0x04, 0, 1, 0, 1
            ]
        ),
        ILLEGAL_ADDRESS
    );
    assert_eq!(unit.holding.word(29), Some(29));
    // A bad read range: 02, and the write is not done either.
    assert_eq!(
        exception(
            &mut unit,
            &[
                0x17, 0x00, 0x63, 0x00, 0x02, 0x00, 0x1D, 0x00, 0x01, 0x02, 0, 1
            ]
        ),
        ILLEGAL_ADDRESS
    );
    assert_eq!(unit.holding.word(29), Some(29));
}

#[test]
fn exception_status_and_server_id() {
    let settings = Settings {
        exception_status: 0x6D,
        server_id: b"SDM630".to_vec(),
        run_indicator: true,
        ..Settings::default()
    };
    let mut unit = Unit::new(settings).unwrap();
    assert_eq!(normal(&mut unit, &[0x07]), [0x07, 0x6D]);
    assert_eq!(
        normal(&mut unit, &[0x11]),
        [0x11, 0x07, b'S', b'D', b'M', b'6', b'3', b'0', 0xFF]
    );
    unit.set_run_indicator(false);
    unit.set_exception_status(0x01);
    assert_eq!(normal(&mut unit, &[0x07]), [0x07, 0x01]);
    assert_eq!(*normal(&mut unit, &[0x11]).last().unwrap(), 0x00);
    assert_eq!(exception(&mut unit, &[0x07, 0x00]), ILLEGAL_VALUE);
    assert_eq!(exception(&mut unit, &[0x11, 0x00]), ILLEGAL_VALUE);

    let settings = Settings {
        server_id: vec![0; 251],
        ..Settings::default()
    };
    assert!(Unit::new(settings).is_err());
    let mut settings = Settings::default();
    settings.identification.remove(&0x01);
    assert!(Unit::new(settings).is_err());
}

#[test]
fn diagnostics_echo_counters_and_clear() {
    let mut unit = hundred();
    let echo = [0x08, 0x00, 0x00, 0xA5, 0x37];
    assert_eq!(normal(&mut unit, &echo), echo);
    // Two good requests, then an exception.
    normal(&mut unit, &[0x03, 0x00, 0x00, 0x00, 0x01]);
    exception(&mut unit, &[0x03, 0x00, 0x00, 0x00, 0x00]);
    // A broadcast (no reply), a CRC error and a frame for another unit, from the serving side.
    assert_eq!(
        broadcast(&mut unit, &[0x06, 0x00, 0x00, 0x00, 0x01]),
        Outcome::Silent(Silence::Broadcast)
    );
    unit.note_crc_error();
    unit.note_other_message();
    unit.note_overrun();
    let counter = |unit: &mut Unit, sub: u8| {
        let out = normal(unit, &[0x08, 0x00, sub, 0x00, 0x00]);
        assert_eq!(out[..3], [0x08, 0x00, sub]);
        u16::from_be_bytes([out[3], out[4]])
    };
    // Bus messages: 4 requests + 1 other + this one.
    assert_eq!(counter(&mut unit, 0x0B), 6);
    assert_eq!(counter(&mut unit, 0x0C), 1);
    assert_eq!(counter(&mut unit, 0x0D), 1);
    // Server messages: the 4, the three counter requests before and this one.
    assert_eq!(counter(&mut unit, 0x0E), 8);
    assert_eq!(counter(&mut unit, 0x0F), 1);
    assert_eq!(counter(&mut unit, 0x10), 0);
    assert_eq!(counter(&mut unit, 0x11), 0);
    assert_eq!(counter(&mut unit, 0x12), 1);
    // Function 11: the events so far (echo, read, broadcast, 8 counter reads), not the exception.
    assert_eq!(normal(&mut unit, &[0x0B]), [0x0B, 0x00, 0x00, 0x00, 11]);
    assert_eq!(
        normal(&mut unit, &[0x0B]),
        [0x0B, 0x00, 0x00, 0x00, 11],
        "11 itself is not counted"
    );
    assert_eq!(unit.counters().events, 11);
    // Clear counters (0x0A) echoes, then everything is zero.
    let clear = [0x08, 0x00, 0x0A, 0x00, 0x00];
    assert_eq!(normal(&mut unit, &clear), clear);
    assert_eq!(unit.counters(), Counters::default());
    assert_eq!(counter(&mut unit, 0x0D), 0);
    // Counter reads take data 0000 only; unknown sub-functions are 01.
    assert_eq!(
        exception(&mut unit, &[0x08, 0x00, 0x0B, 0x00, 0x01]),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(&mut unit, &[0x08, 0x00, 0x0B, 0x00]),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(&mut unit, &[0x08, 0x00, 0x13, 0x00, 0x00]),
        ILLEGAL_FUNCTION
    );
    assert_eq!(exception(&mut unit, &[0x08, 0x00]), ILLEGAL_VALUE);
    assert_eq!(
        exception(&mut unit, &[0x08, 0x00, 0x01, 0x12, 0x34]),
        ILLEGAL_VALUE
    );
    // Restart (0x01) echoes and clears.
    let restart = [0x08, 0x00, 0x01, 0xFF, 0x00];
    assert_eq!(normal(&mut unit, &restart), restart);
    assert_eq!(unit.counters(), Counters::default());
}

#[test]
fn listen_only_is_silent_until_a_restart() {
    let mut unit = hundred();
    let (outcome, out) = ask(&mut unit, &[0x08, 0x00, 0x04, 0x00, 0x00]);
    assert_eq!(outcome, Outcome::Silent(Silence::ListenOnly));
    assert!(out.is_empty());
    assert!(unit.listen_only());
    for pdu in [
        &[0x03, 0x00, 0x00, 0x00, 0x01][..],
        &[0x06, 0x00, 0x01, 0x12, 0x34],
        &[0x03, 0x00, 0x00, 0x00, 0x00],
        &[0x41],
        &[0x08, 0x00, 0x00, 0x12, 0x34],
        &[0x08, 0x00, 0x0A, 0x00, 0x00],
        &[0x08, 0x00, 0x01, 0x12, 0x34],
    ] {
        let (outcome, out) = ask(&mut unit, pdu);
        assert_eq!(
            outcome,
            Outcome::Silent(Silence::ListenOnly),
            "for {pdu:02X?}"
        );
        assert!(out.is_empty());
    }
    assert_eq!(unit.holding.word(1), Some(1), "no action taken");
    assert_eq!(unit.counters().no_responses, 8);
    // The restart leaves listen-only without a reply, and clears the counters.
    let (outcome, out) = ask(&mut unit, &[0x08, 0x00, 0x01, 0x00, 0x00]);
    assert_eq!(outcome, Outcome::Silent(Silence::ListenOnly));
    assert!(out.is_empty());
    assert!(!unit.listen_only());
    assert_eq!(unit.counters(), Counters::default());
    assert_eq!(
        normal(&mut unit, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        [0x03, 0x02, 0x00, 0x01]
    );
}

#[test]
fn broadcasts_are_carried_out_or_ignored_and_never_answered() {
    let mut unit = hundred();
    unit.holding
        .set_words(100, &[100], Access::ReadOnly)
        .unwrap();
    let silent = Outcome::Silent(Silence::Broadcast);
    assert_eq!(
        broadcast(&mut unit, &[0x05, 0x00, 0x01, 0xFF, 0x00]),
        silent
    );
    assert_eq!(unit.coils.get(1), Some(true));
    assert_eq!(
        broadcast(&mut unit, &[0x06, 0x00, 0x01, 0x12, 0x34]),
        silent
    );
    assert_eq!(unit.holding.word(1), Some(0x1234));
    assert_eq!(
        broadcast(&mut unit, &[0x0F, 0x00, 0x02, 0x00, 0x02, 0x01, 0x03]),
        silent
    );
    assert_eq!(
        (unit.coils.get(2), unit.coils.get(3)),
        (Some(true), Some(true))
    );
    assert_eq!(
        broadcast(&mut unit, &[0x10, 0x00, 0x02, 0x00, 0x01, 0x02, 0xBE, 0xEF]),
        silent
    );
    assert_eq!(unit.holding.word(2), Some(0xBEEF));
    assert_eq!(
        broadcast(&mut unit, &[0x16, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01]),
        silent
    );
    assert_eq!(unit.holding.word(2), Some(0x0001));
    // Exceptions are not sent either (but counted).
    assert_eq!(
        broadcast(&mut unit, &[0x06, 0x00, 0x64, 0x00, 0x00]),
        silent
    );
    assert_eq!(
        broadcast(&mut unit, &[0x05, 0x00, 0x01, 0x12, 0x34]),
        silent
    );
    assert_eq!(unit.counters().exceptions, 2);
    assert_eq!(unit.holding.word(100), Some(100));
    // Reads, 23, 43, diagnostics and unknown functions are ignored: 23 writes nothing.
    assert_eq!(
        broadcast(&mut unit, &[0x03, 0x00, 0x00, 0x00, 0x01]),
        silent
    );
    assert_eq!(
        broadcast(
            &mut unit,
            &[
                0x17, 0x00, 0x00, 0x00, 0x01, 0x00, 0x05, 0x00, 0x01, 0x02, 0x99, 0x99
            ]
        ),
        silent
    );
    assert_eq!(unit.holding.word(5), Some(5));
    assert_eq!(broadcast(&mut unit, &[0x2B, 0x0E, 0x01, 0x00]), silent);
    assert_eq!(
        broadcast(&mut unit, &[0x08, 0x00, 0x04, 0x00, 0x00]),
        silent
    );
    assert!(!unit.listen_only());
    assert_eq!(broadcast(&mut unit, &[0x41]), silent);
    assert_eq!(unit.counters().exceptions, 2);
    assert_eq!(unit.counters().no_responses, 12);
}

#[test]
fn an_injected_failure_is_04_after_every_check() {
    let mut unit = hundred();
    unit.fail_next(2);
    // Checks still come first, and do not use up the failures.
    assert_eq!(
        exception(&mut unit, &[0x06, 0x00, 0x64, 0x00, 0x01]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        exception(&mut unit, &[0x03, 0x00, 0x00, 0x00, 0x00]),
        ILLEGAL_VALUE
    );
    assert_eq!(exception(&mut unit, &[0x42]), ILLEGAL_FUNCTION);
    // A valid write fails, and is not carried out.
    assert_eq!(
        exception(&mut unit, &[0x06, 0x00, 0x01, 0x00, 0x09]),
        DEVICE_FAILURE
    );
    assert_eq!(unit.holding.word(1), Some(1));
    assert_eq!(
        exception(&mut unit, &[0x2B, 0x0E, 0x01, 0x00]),
        DEVICE_FAILURE
    );
    // Then it is back to normal.
    assert_eq!(
        normal(&mut unit, &[0x06, 0x00, 0x01, 0x00, 0x09]),
        [0x06, 0x00, 0x01, 0x00, 0x09]
    );
    assert_eq!(unit.holding.word(1), Some(9));
}

/// Objects `{id, len, bytes}` of a function 43/14 reply, after the header checks.
fn objects_of(reply: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut objects = Vec::new();
    let mut at = 7;
    for _ in 0..reply[6] {
        let len = usize::from(reply[at + 1]);
        objects.push((reply[at], reply[at + 2..at + 2 + len].to_vec()));
        at += 2 + len;
    }
    assert_eq!(at, reply.len(), "the object count matches the bytes");
    objects
}

#[test]
fn read_device_identification() {
    let settings = Settings {
        identification: BTreeMap::from([
            (0x00, b"Eastron".to_vec()),
            (0x01, b"SDM630".to_vec()),
            (0x02, b"1.2".to_vec()),
            (0x04, b"Smart meter".to_vec()),
        ]),
        ..Settings::default()
    };
    let mut unit = Unit::new(settings).unwrap();
    let basic = normal(&mut unit, &[0x2B, 0x0E, 0x01, 0x00]);
    // Regular objects present: conformity 0x82; all fits: no more, next 0.
    assert_eq!(basic[..6], [0x2B, 0x0E, 0x01, 0x82, 0x00, 0x00]);
    assert_eq!(
        objects_of(&basic),
        [
            (0x00, b"Eastron".to_vec()),
            (0x01, b"SDM630".to_vec()),
            (0x02, b"1.2".to_vec())
        ]
    );
    // Regular stream: basic and regular objects.
    let regular = normal(&mut unit, &[0x2B, 0x0E, 0x02, 0x00]);
    assert_eq!(objects_of(&regular).len(), 4);
    // A stream from a known id starts there; from an unknown one, at 0.
    let from_one = normal(&mut unit, &[0x2B, 0x0E, 0x01, 0x01]);
    assert_eq!(objects_of(&from_one)[0].0, 0x01);
    assert_eq!(objects_of(&from_one).len(), 2);
    let unknown = normal(&mut unit, &[0x2B, 0x0E, 0x01, 0x33]);
    assert_eq!(unknown, basic);
    // Individual access.
    let one = normal(&mut unit, &[0x2B, 0x0E, 0x04, 0x04]);
    assert_eq!(one[..7], [0x2B, 0x0E, 0x04, 0x82, 0x00, 0x00, 0x01]);
    assert_eq!(objects_of(&one), [(0x04, b"Smart meter".to_vec())]);
    assert_eq!(
        exception(&mut unit, &[0x2B, 0x0E, 0x04, 0x03]),
        ILLEGAL_ADDRESS
    );
    // A bad code is 03 (even with an unknown object); a bad MEI type 01.
    assert_eq!(
        exception(&mut unit, &[0x2B, 0x0E, 0x05, 0x00]),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(&mut unit, &[0x2B, 0x0E, 0x00, 0x77]),
        ILLEGAL_VALUE
    );
    assert_eq!(
        exception(&mut unit, &[0x2B, 0x0D, 0x01, 0x00]),
        ILLEGAL_FUNCTION
    );
    assert_eq!(exception(&mut unit, &[0x2B, 0x0E, 0x01]), ILLEGAL_VALUE);
    assert_eq!(exception(&mut unit, &[0x2B]), ILLEGAL_VALUE);
}

#[test]
fn device_identification_streams_in_parts() {
    // Three 100-byte objects do not fit one PDU (253 bytes, 7 of header).
    let settings = Settings {
        identification: BTreeMap::from([
            (0x00, vec![b'a'; 100]),
            (0x01, vec![b'b'; 100]),
            (0x02, vec![b'c'; 100]),
            (0x80, vec![b'x'; 5]),
        ]),
        ..Settings::default()
    };
    let mut unit = Unit::new(settings).unwrap();
    let first = normal(&mut unit, &[0x2B, 0x0E, 0x03, 0x00]);
    assert!(first.len() <= 253);
    // Extended objects: conformity 0x83; more follows, from object 2.
    assert_eq!(first[..6], [0x2B, 0x0E, 0x03, 0x83, 0xFF, 0x02]);
    assert_eq!(objects_of(&first).len(), 2);
    let rest = normal(&mut unit, &[0x2B, 0x0E, 0x03, 0x02]);
    assert_eq!(rest[..6], [0x2B, 0x0E, 0x03, 0x83, 0x00, 0x00]);
    assert_eq!(
        objects_of(&rest),
        [(0x02, vec![b'c'; 100]), (0x80, vec![b'x'; 5])]
    );
    // The basic stream stops at object 2.
    let basic_rest = normal(&mut unit, &[0x2B, 0x0E, 0x01, 0x02]);
    assert_eq!(objects_of(&basic_rest), [(0x02, vec![b'c'; 100])]);

    let mut settings = Settings::default();
    settings.identification.insert(0x05, vec![0; 245]);
    assert!(Unit::new(settings).is_err());
}

#[test]
fn gaps_read_zero_or_answer_02() {
    let mut unit = Unit::default();
    unit.input.set_words(0, &[1, 2], Access::ReadOnly).unwrap();
    unit.input.set_words(5, &[6], Access::ReadOnly).unwrap();
    unit.holding.set_words(0, &[1], Access::ReadWrite).unwrap();
    unit.holding.set_words(2, &[3], Access::ReadWrite).unwrap();
    unit.coils.set(0, true, Access::ReadWrite);
    unit.coils.set(3, true, Access::ReadWrite);
    assert_eq!(
        normal(&mut unit, &[0x04, 0x00, 0x00, 0x00, 0x06]),
        [0x04, 0x0C, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 6]
    );
    assert_eq!(
        normal(&mut unit, &[0x01, 0x00, 0x00, 0x00, 0x04]),
        [0x01, 0x01, 0x09]
    );
    // Past the last declared register is outside the table.
    assert_eq!(
        exception(&mut unit, &[0x04, 0x00, 0x00, 0x00, 0x07]),
        ILLEGAL_ADDRESS
    );
    // A gap is never written.
    assert_eq!(
        exception(&mut unit, &[0x06, 0x00, 0x01, 0x00, 0x01]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        exception(
            &mut unit,
            &[0x10, 0x00, 0x00, 0x00, 0x03, 0x06, 0, 1, 0, 1, 0, 1]
        ),
        ILLEGAL_ADDRESS
    );
    // An extent set wider than what is declared (an SDM630's 0x0000×80 span).
    unit.input.set_extent(0..=79);
    assert_eq!(
        normal(&mut unit, &[0x04, 0x00, 0x00, 0x00, 0x50]).len(),
        2 + 160
    );

    let settings = Settings {
        gaps: Gaps::Exception,
        ..Settings::default()
    };
    let mut strict = Unit::new(settings).unwrap();
    strict
        .input
        .set_words(0, &[1, 2], Access::ReadOnly)
        .unwrap();
    strict.input.set_words(5, &[6], Access::ReadOnly).unwrap();
    strict.coils.set(0, true, Access::ReadWrite);
    strict.coils.set(3, true, Access::ReadWrite);
    assert_eq!(
        exception(&mut strict, &[0x04, 0x00, 0x00, 0x00, 0x06]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        normal(&mut strict, &[0x04, 0x00, 0x00, 0x00, 0x02]),
        [0x04, 0x04, 0, 1, 0, 2]
    );
    assert_eq!(
        exception(&mut strict, &[0x01, 0x00, 0x00, 0x00, 0x04]),
        ILLEGAL_ADDRESS
    );
    // An empty table answers 02 to everything.
    assert_eq!(
        exception(&mut strict, &[0x03, 0x00, 0x00, 0x00, 0x01]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        exception(&mut strict, &[0x02, 0x00, 0x00, 0x00, 0x01]),
        ILLEGAL_ADDRESS
    );
}

#[test]
fn computed_values_are_read_at_the_time_given() {
    let mut unit = Unit::default();
    let counter = Encoding::new(Kind::U32).with_order(Order::Cdab);
    unit.input
        .set_provider(
            0,
            counter,
            Box::new(Counter {
                start: 100,
                step: 3,
                every: Duration::from_secs(2),
            }),
        )
        .unwrap();
    let ramp = Encoding::new(Kind::F32);
    unit.input
        .set_provider(
            2,
            ramp,
            Box::new(Ramp {
                start: 230.0,
                per_second: 0.25,
            }),
        )
        .unwrap();
    let read = |unit: &mut Unit, secs: u64| {
        let (outcome, out) = ask_at(
            unit,
            &[0x04, 0x00, 0x00, 0x00, 0x04],
            Duration::from_secs(secs),
        );
        assert_eq!(outcome, Outcome::Normal);
        out
    };
    // t = 0: 100 (CDAB: 0x0064 0x0000); 230.0 = 0x4366 0x0000.
    assert_eq!(
        read(&mut unit, 0),
        [0x04, 0x08, 0x00, 0x64, 0x00, 0x00, 0x43, 0x66, 0x00, 0x00]
    );
    // t = 5 s: two periods, 106; 231.25 = 0x4367 0x4000.
    assert_eq!(
        read(&mut unit, 5),
        [0x04, 0x08, 0x00, 0x6A, 0x00, 0x00, 0x43, 0x67, 0x40, 0x00]
    );
    // Computed registers are read-only, and cannot be declared over.
    assert_eq!(
        exception(&mut unit, &[0x06, 0x00, 0x00, 0x00, 0x01]),
        ILLEGAL_ADDRESS
    );
    assert_eq!(
        unit.input.set_words(1, &[1], Access::ReadOnly),
        Err(MapError::Computed(1))
    );
    // Half of a value can be read alone.
    let (_, out) = ask_at(
        &mut unit,
        &[0x04, 0x00, 0x03, 0x00, 0x01],
        Duration::from_secs(5),
    );
    assert_eq!(out, [0x04, 0x02, 0x40, 0x00]);
}

#[test]
fn the_last_address_is_usable() {
    let mut unit = Unit::default();
    unit.holding
        .set_words(0xFFFE, &[1, 2], Access::ReadWrite)
        .unwrap();
    assert_eq!(
        unit.holding.set_words(0xFFFF, &[1, 2], Access::ReadWrite),
        Err(MapError::PastEnd {
            start: 0xFFFF,
            len: 2
        })
    );
    assert_eq!(
        normal(&mut unit, &[0x03, 0xFF, 0xFE, 0x00, 0x02]),
        [0x03, 0x04, 0, 1, 0, 2]
    );
    normal(&mut unit, &[0x10, 0xFF, 0xFE, 0x00, 0x02, 0x04, 0, 3, 0, 4]);
    assert_eq!(unit.holding.word(0xFFFF), Some(4));
    unit.coils.set(0xFFFF, false, Access::ReadWrite);
    normal(&mut unit, &[0x05, 0xFF, 0xFF, 0xFF, 0x00]);
    assert_eq!(unit.coils.get(0xFFFF), Some(true));
    assert_eq!(
        normal(&mut unit, &[0x01, 0xFF, 0xFF, 0x00, 0x01]),
        [0x01, 0x01, 0x01]
    );
}

#[test]
fn no_input_panics_or_answers_more_than_a_pdu() {
    let mut rng = fastrand::Rng::with_seed(18);
    let mut unit = hundred();
    unit.input.set_extent(0..=u16::MAX);
    let mut out = Vec::new();
    for _ in 0..20_000 {
        let len = rng.usize(0..12);
        let mut pdu: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        if let Some(first) = pdu.first_mut() {
            // Mostly real function codes.
            *first = [
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8,
                11,
                15,
                16,
                17,
                22,
                23,
                43,
                rng.u8(..),
            ][rng.usize(0..16)];
        }
        out.clear();
        let delivery = if rng.bool() {
            Delivery::Addressed
        } else {
            Delivery::Broadcast
        };
        let outcome = unit.answer(&pdu, delivery, Duration::ZERO, &mut out);
        assert!(out.len() <= 253);
        match outcome {
            Outcome::Silent(_) => assert!(out.is_empty()),
            Outcome::Exception(code) => assert_eq!(out, [pdu[0] | 0x80, code.code()]),
            Outcome::Normal => assert_eq!(out[0], pdu[0]),
        }
        if unit.listen_only() {
            unit.answer(
                &[0x08, 0, 1, 0, 0],
                Delivery::Addressed,
                Duration::ZERO,
                &mut Vec::new(),
            );
        }
    }
}

// ---- values in registers ----

#[test]
fn verified_vectors_in_every_order() {
    // 230.5 f32 is 43 66 80 00 big-endian.
    let f = |order| {
        Encoding::new(Kind::F32)
            .with_order(order)
            .encode(&Value::Float(230.5))
            .unwrap()
    };
    assert_eq!(f(Order::Abcd), [0x4366, 0x8000]);
    assert_eq!(f(Order::Cdab), [0x8000, 0x4366]);
    assert_eq!(f(Order::Badc), [0x6643, 0x0080]);
    assert_eq!(f(Order::Dcba), [0x0080, 0x6643]);
    // 123456 u32 is 00 01 E2 40.
    let u = |order| {
        Encoding::new(Kind::U32)
            .with_order(order)
            .encode(&Value::Int(123_456))
            .unwrap()
    };
    assert_eq!(u(Order::Cdab), [0xE240, 0x0001]);
    assert_eq!(u(Order::Abcd), [0x0001, 0xE240]);
    assert_eq!(u(Order::Badc), [0x0100, 0x40E2]);
    assert_eq!(u(Order::Dcba), [0x40E2, 0x0100]);
    // 64 bits: 0x0102030405060708.
    let l = |order| {
        Encoding::new(Kind::U64)
            .with_order(order)
            .encode(&Value::Int(0x0102_0304_0506_0708))
            .unwrap()
    };
    assert_eq!(l(Order::Abcd), [0x0102, 0x0304, 0x0506, 0x0708]);
    assert_eq!(l(Order::Cdab), [0x0708, 0x0506, 0x0304, 0x0102]);
    assert_eq!(l(Order::Badc), [0x0201, 0x0403, 0x0605, 0x0807]);
    assert_eq!(l(Order::Dcba), [0x0807, 0x0605, 0x0403, 0x0201]);
    // Strings, NUL and space padded.
    let text = |registers, pad| Encoding::new(Kind::Ascii { registers, pad });
    assert_eq!(
        text(3, Pad::Nul)
            .encode(&Value::Text("SDM630".into()))
            .unwrap(),
        [0x5344, 0x4D36, 0x3330]
    );
    assert_eq!(
        text(3, Pad::Space)
            .encode(&Value::Text("SDM63".into()))
            .unwrap(),
        [0x5344, 0x4D36, 0x3320]
    );
    assert_eq!(
        text(4, Pad::Nul)
            .encode(&Value::Text("SDM".into()))
            .unwrap(),
        [0x5344, 0x4D00, 0x0000, 0x0000]
    );
    assert_eq!(
        text(3, Pad::Space)
            .decode(&[0x5344, 0x4D36, 0x3320])
            .unwrap(),
        Value::Text("SDM63".into())
    );
    // Signed: -2 as i32 CDAB is FFFE FFFF; EPEver's -2.0 A at ÷100 is FF38 FFFF.
    let amps = Encoding::new(Kind::I32)
        .with_order(Order::Cdab)
        .scaled(0.01, 0.0)
        .unwrap();
    assert_eq!(amps.encode(&Value::Float(-2.0)).unwrap(), [0xFF38, 0xFFFF]);
    assert_eq!(amps.decode(&[0xFF38, 0xFFFF]).unwrap(), Value::Float(-2.0));
    assert_eq!(
        Encoding::new(Kind::I16).decode(&[0xFFFE]).unwrap(),
        Value::Int(-2)
    );
    // Bit fields.
    let flags = Encoding::new(Kind::Bits { registers: 2 });
    assert_eq!(
        flags.encode(&Value::Bits(0x0001_8000)).unwrap(),
        [0x0001, 0x8000]
    );
    assert_eq!(
        flags.decode(&[0x0001, 0x8000]).unwrap(),
        Value::Bits(0x0001_8000)
    );
    // Offset: 20 °C stored as (20 − (−40)) / 0.5 = 120.
    let celsius = Encoding::new(Kind::U16).scaled(0.5, -40.0).unwrap();
    assert_eq!(celsius.encode(&Value::Float(20.0)).unwrap(), [120]);
    assert_eq!(celsius.decode(&[120]).unwrap(), Value::Float(20.0));
}

#[test]
fn values_that_do_not_fit_are_errors() {
    let u16_ = Encoding::new(Kind::U16);
    assert!(matches!(
        u16_.encode(&Value::Int(65_536)),
        Err(DataError::OutOfRange { .. })
    ));
    assert!(matches!(
        u16_.encode(&Value::Int(-1)),
        Err(DataError::OutOfRange { .. })
    ));
    assert!(matches!(
        u16_.encode(&Value::Float(-0.6)),
        Err(DataError::OutOfRange { .. })
    ));
    assert_eq!(u16_.encode(&Value::Float(-0.4)).unwrap(), [0]);
    assert_eq!(u16_.encode(&Value::Float(65_535.4)).unwrap(), [0xFFFF]);
    assert!(matches!(
        Encoding::new(Kind::I32).encode(&Value::Float(f64::NAN)),
        Err(DataError::NotFinite { .. })
    ));
    assert!(matches!(
        Encoding::new(Kind::U64).encode(&Value::Float(f64::INFINITY)),
        Err(DataError::NotFinite { .. })
    ));
    assert!(matches!(
        Encoding::new(Kind::U64).encode(&Value::Float(1e300)),
        Err(DataError::OutOfRange { .. })
    ));
    assert!(matches!(
        Encoding::new(Kind::I64).encode(&Value::Int(i128::from(i64::MAX) + 1)),
        Err(DataError::OutOfRange { .. })
    ));
    assert!(matches!(
        Encoding::new(Kind::F32).encode(&Value::Float(1e39)),
        Err(DataError::OutOfRange { .. })
    ));
    // NaN is a float's own value.
    assert!(
        Encoding::new(Kind::F32)
            .encode(&Value::Float(f64::NAN))
            .is_ok()
    );
    // Scaled: 700 V at ÷100 is 70000, too big for a u16.
    let volts = Encoding::new(Kind::U16).scaled(0.01, 0.0).unwrap();
    assert!(matches!(
        volts.encode(&Value::Float(700.0)),
        Err(DataError::OutOfRange { .. })
    ));
    let text = Encoding::new(Kind::Ascii {
        registers: 2,
        pad: Pad::Nul,
    });
    assert_eq!(
        text.encode(&Value::Text("SDM630".into())),
        Err(DataError::TooLong {
            len: 6,
            registers: 2
        })
    );
    assert_eq!(
        text.encode(&Value::Text("é".into())),
        Err(DataError::NotAscii)
    );
    assert_eq!(text.decode(&[0xC300, 0x0000]), Err(DataError::NotAscii));
    assert!(matches!(
        text.encode(&Value::Int(1)),
        Err(DataError::WrongValue { .. })
    ));
    assert!(matches!(
        u16_.encode(&Value::Text("1".into())),
        Err(DataError::WrongValue { .. })
    ));
    assert!(matches!(
        Encoding::new(Kind::Bits { registers: 1 }).encode(&Value::Bits(0x1_0000)),
        Err(DataError::OutOfRange { .. })
    ));
    assert!(matches!(
        Encoding::new(Kind::U16).scaled(0.0, 0.0),
        Err(DataError::BadScale { .. })
    ));
    assert!(matches!(
        Encoding::new(Kind::U16).scaled(1.0, f64::NAN),
        Err(DataError::BadScale { .. })
    ));
}

// ---- the randomized check ----

/// A value's big-endian bytes laid out as `order` says, written out by hand per order.
fn independent_words(be: &[u8], order: Order) -> Vec<u16> {
    let pairs = |bytes: &[u8]| -> Vec<u16> {
        bytes
            .chunks(2)
            .map(|p| (u16::from(p[0]) << 8) | u16::from(p[1]))
            .collect()
    };
    match order {
        Order::Abcd => pairs(be),
        Order::Cdab => {
            let mut words = pairs(be);
            words.reverse();
            words
        }
        Order::Badc => {
            let swapped: Vec<u8> = be.chunks(2).flat_map(|p| [p[1], p[0]]).collect();
            pairs(&swapped)
        }
        Order::Dcba => {
            let reversed: Vec<u8> = be.iter().rev().copied().collect();
            pairs(&reversed)
        }
    }
}

/// A random value of a random kind, with the words an independent encoding gives, the
/// engineering value, and how far decoding may be off.
fn random_point(rng: &mut fastrand::Rng) -> (Encoding, Value, Vec<u16>, f64) {
    let order = Order::ALL[rng.usize(0..4)];
    let scales = [1.0, 0.1, 0.01, 10.0, 0.5];
    let scale = scales[rng.usize(0..scales.len())];
    let offset = [0.0, -40.0, 1000.0][rng.usize(0..3)];
    let make = |kind: Kind| {
        Encoding::new(kind)
            .with_order(order)
            .scaled(scale, offset)
            .unwrap()
    };
    // The engineering value of raw integer `raw` under this scale and offset.
    #[expect(
        clippy::cast_precision_loss,
        reason = "raw values below 2^32 are exact"
    )]
    let engineering = |raw: i64| raw as f64 * scale + offset;
    match rng.usize(0..10) {
        0 => {
            let raw = rng.u16(..);
            (
                make(Kind::U16),
                Value::Float(engineering(raw.into())),
                independent_words(&raw.to_be_bytes(), order),
                scale / 2.0,
            )
        }
        1 => {
            let raw = rng.i16(..);
            (
                make(Kind::I16),
                Value::Float(engineering(raw.into())),
                independent_words(&raw.to_be_bytes(), order),
                scale / 2.0,
            )
        }
        2 => {
            let raw = rng.u32(..);
            (
                make(Kind::U32),
                Value::Float(engineering(raw.into())),
                independent_words(&raw.to_be_bytes(), order),
                scale / 2.0,
            )
        }
        3 => {
            let raw = rng.i32(..);
            (
                make(Kind::I32),
                Value::Float(engineering(raw.into())),
                independent_words(&raw.to_be_bytes(), order),
                scale / 2.0,
            )
        }
        // 64-bit integers unscaled: exact.
        4 => {
            let raw = rng.u64(..);
            let e = Encoding::new(Kind::U64).with_order(order);
            (
                e,
                Value::Int(raw.into()),
                independent_words(&raw.to_be_bytes(), order),
                0.0,
            )
        }
        5 => {
            let raw = rng.i64(..);
            let e = Encoding::new(Kind::I64).with_order(order);
            (
                e,
                Value::Int(raw.into()),
                independent_words(&raw.to_be_bytes(), order),
                0.0,
            )
        }
        6 => {
            let raw = f32::from_bits(rng.u32(..));
            let raw = if raw.is_finite() {
                raw
            } else {
                rng.f32() * 1e6 - 5e5
            };
            let e = Encoding::new(Kind::F32).with_order(order);
            (
                e,
                Value::Float(raw.into()),
                independent_words(&raw.to_be_bytes(), order),
                0.0,
            )
        }
        7 => {
            let raw = f64::from_bits(rng.u64(..));
            let raw = if raw.is_finite() {
                raw
            } else {
                rng.f64() - 0.5
            };
            let e = Encoding::new(Kind::F64).with_order(order);
            (
                e,
                Value::Float(raw),
                independent_words(&raw.to_be_bytes(), order),
                0.0,
            )
        }
        8 => {
            let registers = rng.u16(1..6);
            let pad = if rng.bool() { Pad::Nul } else { Pad::Space };
            let len = rng.usize(0..=2 * usize::from(registers));
            // Letters and digits: no trailing pad characters to strip.
            let text: String = (0..len).map(|_| rng.alphanumeric()).collect();
            let mut bytes = text.clone().into_bytes();
            bytes.resize(
                2 * usize::from(registers),
                if pad == Pad::Nul { 0 } else { b' ' },
            );
            let e = Encoding::new(Kind::Ascii { registers, pad });
            (
                e,
                Value::Text(text),
                independent_words(&bytes, Order::Abcd),
                0.0,
            )
        }
        _ => {
            let registers = rng.u8(1..=4);
            let bits = rng.u64(..) >> (64 - 16 * u32::from(registers));
            let bytes = &bits.to_be_bytes()[8 - 2 * usize::from(registers)..];
            let e = Encoding::new(Kind::Bits { registers });
            (
                e,
                Value::Bits(bits),
                independent_words(bytes, Order::Abcd),
                0.0,
            )
        }
    }
}

fn close_enough(decoded: &Value, expected: &Value, tolerance: f64) -> bool {
    match (decoded, expected) {
        (Value::Float(d), Value::Float(e)) => {
            // f64 arithmetic on the way (scale, offset) adds a little on top of the type's step.
            (d - e).abs() <= tolerance + 1e-9 * e.abs().max(1.0) || d.to_bits() == e.to_bits()
        }
        #[expect(
            clippy::cast_precision_loss,
            reason = "raw values below 2^32 are exact"
        )]
        (Value::Int(d), Value::Float(e)) => (*d as f64 - e).abs() <= tolerance,
        _ => decoded == expected,
    }
}

#[test]
fn random_maps_encode_decode_and_read_back_exactly() {
    for seed in 0..40 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut unit = Unit::default();
        let mut expected: BTreeMap<u16, u16> = BTreeMap::new();
        let mut address = rng.u16(0..1000);
        for _ in 0..rng.usize(1..40) {
            let (encoding, value, words, tolerance) = random_point(&mut rng);
            let encoded = encoding.encode(&value).unwrap();
            assert_eq!(encoded, words, "seed {seed}: {encoding:?} of {value:?}");
            let decoded = encoding.decode(&encoded).unwrap();
            assert!(
                close_enough(&decoded, &value, tolerance),
                "seed {seed}: {encoding:?}: {value:?} came back as {decoded:?}"
            );
            let access = if rng.bool() {
                Access::ReadOnly
            } else {
                Access::ReadWrite
            };
            unit.holding
                .set_value(address, &encoding, &value, access)
                .unwrap();
            unit.input
                .set_value(address, &encoding, &value, Access::ReadOnly)
                .unwrap();
            for (at, word) in (address..).zip(&words) {
                expected.insert(at, *word);
            }
            assert!(
                close_enough(
                    &unit.holding.value(address, &encoding).unwrap(),
                    &value,
                    tolerance
                ),
                "seed {seed}"
            );
            address += u16::try_from(words.len()).unwrap() + rng.u16(0..3);
        }
        // Every declared register, through the protocol, in random spans of up to 125.
        let (&first, &last) = (
            expected.keys().next().unwrap(),
            expected.keys().last().unwrap(),
        );
        let mut start = first;
        while start <= last {
            let quantity = rng.u16(1..=125).min(last - start + 1);
            for fc in [0x03, 0x04] {
                let mut pdu = vec![fc];
                pdu.extend_from_slice(&start.to_be_bytes());
                pdu.extend_from_slice(&quantity.to_be_bytes());
                let out = normal(&mut unit, &pdu);
                assert_eq!(usize::from(out[1]), 2 * usize::from(quantity));
                for (i, at) in (start..start + quantity).enumerate() {
                    let got = u16::from_be_bytes([out[2 + 2 * i], out[3 + 2 * i]]);
                    // Gaps between values read 0.
                    assert_eq!(
                        got,
                        expected.get(&at).copied().unwrap_or(0),
                        "seed {seed}, register {at}"
                    );
                }
            }
            start += quantity;
        }
    }
}

mod moving_values {
    use std::time::Duration;

    use serialtwin_devices::modbus::data::Value;
    use serialtwin_devices::modbus::unit::{Provider, Sine, Walk};

    fn float(v: Value) -> f64 {
        match v {
            Value::Float(x) => x,
            other => panic!("not a float: {other:?}"),
        }
    }

    /// The exact bits: the same walk is the same, not nearly.
    fn bits(v: Value) -> u64 {
        float(v).to_bits()
    }

    #[test]
    fn a_sine_swings_around_its_mean_over_its_period() {
        let mut sine = Sine {
            mean: 230.0,
            amplitude: 10.0,
            period: Duration::from_mins(1),
        };
        let at = |sine: &mut Sine, s: u64| float(sine.value(Duration::from_secs(s)));
        assert!((at(&mut sine, 0) - 230.0).abs() < 1e-9);
        assert!((at(&mut sine, 15) - 240.0).abs() < 1e-9);
        assert!((at(&mut sine, 45) - 220.0).abs() < 1e-9);
        assert!((at(&mut sine, 60) - 230.0).abs() < 1e-9);
        assert!((at(&mut sine, 75) - 240.0).abs() < 1e-9, "and again");
    }

    /// The same seed gives the same walk however it is read; another seed another walk; it
    /// never leaves its bounds.
    #[test]
    fn a_walk_is_its_seeds_whatever_the_reads() {
        let walk = |seed| Walk::new(50.0, 5.0, Duration::from_secs(1), (40.0, 60.0), seed);
        let (mut every_second, mut now_and_then) = (walk(7), walk(7));
        let stepwise: Vec<u64> = (0..=600)
            .map(|s| bits(every_second.value(Duration::from_secs(s))))
            .collect();
        for s in [0u64, 3, 200, 201, 599, 600] {
            let got = bits(now_and_then.value(Duration::from_secs(s)));
            assert_eq!(got, stepwise[usize::try_from(s).unwrap()], "at {s} s");
        }
        assert!(
            stepwise
                .iter()
                .all(|&v| (40.0..=60.0).contains(&f64::from_bits(v)))
        );
        assert!(stepwise.windows(2).any(|w| w[0] != w[1]), "it moves");
        let mut other = walk(8);
        let differs = (1..=600).any(|s| {
            bits(other.value(Duration::from_secs(s))) != stepwise[usize::try_from(s).unwrap()]
        });
        assert!(differs, "another seed, another walk");
        // A clock that goes back walks again from the start.
        assert_eq!(
            bits(now_and_then.value(Duration::from_secs(3))),
            stepwise[3]
        );
    }
}
