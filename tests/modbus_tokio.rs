//! Issue 18: a tokio-modbus 0.17 RTU client, over tokio-serial, against a bus of three Modbus
//! units on one pty — every table read, writes read back, the exceptions as tokio-modbus
//! reports them, and silence for a unit nobody has.
//!
//! Expected values are written out as the words a client sees (`f32::to_bits`, two's
//! complement by hand), not derived from the encoder that stored them.

use std::future::Future;
use std::time::Duration;

use serialtwin::devices::modbus::data::{Encoding, Kind, Order, Pad, Value};
use serialtwin::devices::modbus::rtu::framing;
use serialtwin::devices::modbus::slave::{self, route, standard_line};
use serialtwin::devices::modbus::unit::{Access, Unit};
use serialtwin::{Bus, Fleet, PortSpec};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;
use tokio_serial::{DataBits, FlowControl, Parity, SerialStream, StopBits};

/// The units on the bus.
const UNITS: [u8; 3] = [1, 2, 247];

/// Safety net for a call that must be answered (tokio-modbus has no timeout of its own).
const PATIENCE: Duration = Duration::from_secs(10);

/// How long a unit nobody has is listened to: a master's turnaround is 100–200 ms.
const SILENCE: Duration = Duration::from_millis(500);

/// Holding register 0 of each unit: `0x1200 + address`, writable.
fn hr0(address: u8) -> u16 {
    0x1200 + u16::from(address)
}

/// Coil `i` of unit `address` (10 coils, writable).
fn coil(address: u8, i: u16) -> bool {
    (i + u16::from(address)).is_multiple_of(3)
}

/// Discrete input `i` of unit `address` (5 inputs).
fn discrete(address: u8, i: u16) -> bool {
    (i * u16::from(address)) % 4 == 1 || i == 4
}

/// The high and low word of a 32-bit value (ABCD, as most meters send it).
fn words(v: u32) -> [u16; 2] {
    [(v >> 16) as u16, (v & 0xFFFF) as u16]
}

/// A unit whose values depend on its address, so that an answer from the wrong unit shows.
///
/// Holding: 0 u16 `hr0` (rw), 1 i16 −5·address (rw), 2–3 u32 100,000·address, 4–5 f32
/// 230.5 + address, 6–9 scratch words (rw, 0). Input: 0–1 f32 50.25·address, 2–3 i32
/// −100,000·address in CDAB order, 4–7 the text `"U<address>"` NUL-padded. Coils 0–9 (rw),
/// discrete inputs 0–4.
fn unit(address: u8) -> Unit {
    let a = i128::from(address);
    let mut unit = Unit::default();
    let hr = &mut unit.holding;
    hr.set_words(0, &[hr0(address)], Access::ReadWrite).unwrap();
    hr.set_value(
        1,
        &Encoding::new(Kind::I16),
        &Value::Int(-5 * a),
        Access::ReadWrite,
    )
    .unwrap();
    hr.set_value(
        2,
        &Encoding::new(Kind::U32),
        &Value::Int(100_000 * a),
        Access::ReadOnly,
    )
    .unwrap();
    hr.set_value(
        4,
        &Encoding::new(Kind::F32),
        &Value::Float(230.5 + f64::from(address)),
        Access::ReadOnly,
    )
    .unwrap();
    hr.set_words(6, &[0; 4], Access::ReadWrite).unwrap();
    let ir = &mut unit.input;
    ir.set_value(
        0,
        &Encoding::new(Kind::F32),
        &Value::Float(50.25 * f64::from(address)),
        Access::ReadOnly,
    )
    .unwrap();
    ir.set_value(
        2,
        &Encoding::new(Kind::I32).with_order(Order::Cdab),
        &Value::Int(-100_000 * a),
        Access::ReadOnly,
    )
    .unwrap();
    ir.set_value(
        4,
        &Encoding::new(Kind::Ascii {
            registers: 4,
            pad: Pad::Nul,
        }),
        &Value::Text(format!("U{address}")),
        Access::ReadOnly,
    )
    .unwrap();
    let coils: Vec<bool> = (0..10).map(|i| coil(address, i)).collect();
    unit.coils.set_run(0, &coils, Access::ReadWrite).unwrap();
    let inputs: Vec<bool> = (0..5).map(|i| discrete(address, i)).collect();
    unit.discrete_inputs
        .set_run(0, &inputs, Access::ReadOnly)
        .unwrap();
    unit
}

/// The bus of [`UNITS`] on a pty of `fleet` (the standard line: 19,200 8E1), and a
/// tokio-modbus RTU client on it addressing unit 1.
fn start(fleet: &Fleet, name: &str) -> Context {
    let mut bus = Bus::new(route, framing(), standard_line());
    for address in UNITS {
        bus = bus.with(
            u32::from(address),
            slave::Slave::new(address, unit(address)).unwrap(),
        );
    }
    let port = fleet.spawn(PortSpec::new(name), bus).unwrap();
    let path = port.pty().to_str().unwrap().to_owned();
    // A pty carries no parity: None here, Even on the emulated line, is not a mismatch.
    let builder = tokio_serial::new(&path, 19_200)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None);
    let serial = SerialStream::open(&builder).unwrap_or_else(|e| panic!("open {path}: {e}"));
    rtu::attach_slave(serial, Slave(1))
}

/// A call that must succeed: answered in time, no transport error, no exception.
async fn ok<T: std::fmt::Debug>(call: impl Future<Output = tokio_modbus::Result<T>>) -> T {
    tokio::time::timeout(PATIENCE, call)
        .await
        .expect("answered in time")
        .expect("no transport or protocol error")
        .expect("no exception")
}

/// A call that must be answered with an exception: which one.
async fn exception<T: std::fmt::Debug>(
    call: impl Future<Output = tokio_modbus::Result<T>>,
) -> ExceptionCode {
    tokio::time::timeout(PATIENCE, call)
        .await
        .expect("answered in time")
        .expect("no transport or protocol error")
        .expect_err("an exception")
}

/// A call that must get no answer at all.
async fn silence<T: std::fmt::Debug>(call: impl Future<Output = tokio_modbus::Result<T>>) {
    let got = tokio::time::timeout(SILENCE, call).await;
    assert!(
        got.is_err(),
        "an answer where there must be silence: {got:?}"
    );
}

#[tokio::test]
async fn every_table_of_every_unit_reads_as_declared() {
    let fleet = Fleet::new();
    let mut ctx = start(&fleet, "modbus-tokio-read");
    for address in UNITS {
        ctx.set_slave(Slave(address));
        let a = u32::from(address);
        let f = f32::from(address);
        // Holding: u16, i16, u32, f32, the scratch words.
        let i16_word = (-5 * i16::from(address)).cast_unsigned();
        let [u32_hi, u32_lo] = words(100_000 * a);
        let [f32_hi, f32_lo] = words((230.5 + f).to_bits());
        assert_eq!(
            ok(ctx.read_holding_registers(0, 10)).await,
            [
                hr0(address),
                i16_word,
                u32_hi,
                u32_lo,
                f32_hi,
                f32_lo,
                0,
                0,
                0,
                0
            ],
            "holding registers of unit {address}"
        );
        // A read inside the table: the f32 alone.
        assert_eq!(ok(ctx.read_holding_registers(4, 2)).await, [f32_hi, f32_lo]);
        // Input: f32, i32 low word first, text.
        let [ir_f_hi, ir_f_lo] = words((50.25 * f).to_bits());
        let [i32_hi, i32_lo] = words((-100_000 * i32::from(address)).cast_unsigned());
        let text = format!("U{address}");
        let mut chars = text.bytes().chain(std::iter::repeat(0)).take(8);
        let text_words: Vec<u16> = (0..4)
            .map(|_| u16::from_be_bytes([chars.next().unwrap(), chars.next().unwrap()]))
            .collect();
        let mut expected = vec![ir_f_hi, ir_f_lo, i32_lo, i32_hi];
        expected.extend(&text_words);
        assert_eq!(
            ok(ctx.read_input_registers(0, 8)).await,
            expected,
            "input registers of unit {address}"
        );
        // Bits: all of them, and a run crossing a byte boundary from an odd address.
        let coils: Vec<bool> = (0..10).map(|i| coil(address, i)).collect();
        assert_eq!(ok(ctx.read_coils(0, 10)).await, coils, "coils of {address}");
        assert_eq!(ok(ctx.read_coils(3, 7)).await, coils[3..]);
        let inputs: Vec<bool> = (0..5).map(|i| discrete(address, i)).collect();
        assert_eq!(
            ok(ctx.read_discrete_inputs(0, 5)).await,
            inputs,
            "discrete inputs of {address}"
        );
        assert_eq!(ok(ctx.read_discrete_inputs(1, 3)).await, inputs[1..4]);
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn writes_read_back_on_their_own_unit_only() {
    let fleet = Fleet::new();
    let mut ctx = start(&fleet, "modbus-tokio-write");
    ctx.set_slave(Slave(2));

    // FC 05 and 15.
    assert!(!coil(2, 0));
    ok(ctx.write_single_coil(0, true)).await;
    ok(ctx.write_multiple_coils(5, &[true, false, true, true, false])).await;
    let mut coils: Vec<bool> = (0..10).map(|i| coil(2, i)).collect();
    coils[0] = true;
    coils[5..10].copy_from_slice(&[true, false, true, true, false]);
    assert_eq!(ok(ctx.read_coils(0, 10)).await, coils);
    ok(ctx.write_single_coil(0, false)).await;
    assert_eq!(ok(ctx.read_coils(0, 1)).await, [false]);

    // FC 06 and 16.
    ok(ctx.write_single_register(6, 0xBEEF)).await;
    ok(ctx.write_multiple_registers(7, &[1, 0x8000, 0xFFFF])).await;
    assert_eq!(
        ok(ctx.read_holding_registers(6, 4)).await,
        [0xBEEF, 1, 0x8000, 0xFFFF]
    );
    // The i16 written as a word reads back as one.
    ok(ctx.write_single_register(1, (-12_345_i16).cast_unsigned())).await;
    assert_eq!(
        ok(ctx.read_holding_registers(1, 1)).await,
        [(-12_345_i16).cast_unsigned()]
    );

    // FC 22: (0x1202 AND 0xFF00) OR (0x0034 AND NOT 0xFF00) = 0x1234.
    assert_eq!(hr0(2), 0x1202);
    ok(ctx.masked_write_register(0, 0xFF00, 0x0034)).await;
    assert_eq!(ok(ctx.read_holding_registers(0, 1)).await, [0x1234]);
    // AND 0 with OR: the register becomes the OR mask.
    ok(ctx.masked_write_register(0, 0x0000, 0xA5A5)).await;
    assert_eq!(ok(ctx.read_holding_registers(0, 1)).await, [0xA5A5]);

    // FC 23: the write is carried out before the read, so the read sees it.
    assert_eq!(
        ok(ctx.read_write_multiple_registers(6, 4, 8, &[0xAAAA, 0x5555])).await,
        [0xBEEF, 1, 0xAAAA, 0x5555]
    );
    assert_eq!(ok(ctx.read_holding_registers(8, 2)).await, [0xAAAA, 0x5555]);

    // A read-only register refuses the write (02) and keeps its value.
    assert_eq!(
        exception(ctx.write_single_register(2, 7)).await,
        ExceptionCode::IllegalDataAddress
    );
    assert_eq!(
        exception(ctx.masked_write_register(4, 0, 0)).await,
        ExceptionCode::IllegalDataAddress
    );
    assert_eq!(
        ok(ctx.read_holding_registers(2, 4)).await,
        [
            words(200_000)[0],
            words(200_000)[1],
            words(232.5_f32.to_bits())[0],
            words(232.5_f32.to_bits())[1]
        ]
    );

    // The other units were not touched.
    for address in [1, 247] {
        ctx.set_slave(Slave(address));
        assert_eq!(ok(ctx.read_holding_registers(0, 1)).await, [hr0(address)]);
        assert_eq!(
            ok(ctx.read_holding_registers(6, 4)).await,
            [0; 4],
            "unit {address}"
        );
        let coils: Vec<bool> = (0..10).map(|i| coil(address, i)).collect();
        assert_eq!(ok(ctx.read_coils(0, 10)).await, coils, "unit {address}");
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn exceptions_come_back_as_the_inner_error() {
    let fleet = Fleet::new();
    let mut ctx = start(&fleet, "modbus-tokio-exceptions");
    ctx.set_slave(Slave(247));
    // 02: reads past each table, and a write past the holding table.
    assert_eq!(
        exception(ctx.read_holding_registers(9, 2)).await,
        ExceptionCode::IllegalDataAddress
    );
    assert_eq!(
        exception(ctx.read_input_registers(8, 1)).await,
        ExceptionCode::IllegalDataAddress
    );
    assert_eq!(
        exception(ctx.read_coils(5, 6)).await,
        ExceptionCode::IllegalDataAddress
    );
    assert_eq!(
        exception(ctx.read_discrete_inputs(5, 1)).await,
        ExceptionCode::IllegalDataAddress
    );
    assert_eq!(
        exception(ctx.write_multiple_registers(9, &[1, 2])).await,
        ExceptionCode::IllegalDataAddress
    );
    // A coil past the table.
    assert_eq!(
        exception(ctx.write_single_coil(10, true)).await,
        ExceptionCode::IllegalDataAddress
    );
    // 03: tokio-modbus sends quantities the standard forbids, and the unit refuses them.
    assert_eq!(
        exception(ctx.read_holding_registers(0, 126)).await,
        ExceptionCode::IllegalDataValue
    );
    assert_eq!(
        exception(ctx.read_holding_registers(0, 0)).await,
        ExceptionCode::IllegalDataValue
    );
    assert_eq!(
        exception(ctx.read_coils(0, 2001)).await,
        ExceptionCode::IllegalDataValue
    );
    assert_eq!(
        exception(ctx.write_multiple_registers(6, &[])).await,
        ExceptionCode::IllegalDataValue
    );
    assert_eq!(
        exception(ctx.write_multiple_coils(0, &[])).await,
        ExceptionCode::IllegalDataValue
    );
    // None of it changed anything, and the line is still in step.
    assert_eq!(ok(ctx.read_holding_registers(6, 4)).await, [0; 4]);
    assert_eq!(ok(ctx.read_holding_registers(0, 1)).await, [hr0(247)]);
    fleet.shutdown().await;
}

#[tokio::test]
async fn an_absent_unit_is_silence_and_the_bus_answers_after() {
    let fleet = Fleet::new();
    let mut ctx = start(&fleet, "modbus-tokio-absent");
    // Nobody is unit 9: the safety net fires, then every unit answers.
    ctx.set_slave(Slave(9));
    silence(ctx.read_holding_registers(0, 1)).await;
    for address in UNITS {
        ctx.set_slave(Slave(address));
        assert_eq!(ok(ctx.read_holding_registers(0, 1)).await, [hr0(address)]);
    }
    // A broadcast write is carried out by every unit and answered by none.
    ctx.set_slave(Slave::broadcast());
    silence(ctx.write_single_register(7, 0x0063)).await;
    for address in UNITS {
        ctx.set_slave(Slave(address));
        assert_eq!(
            ok(ctx.read_holding_registers(7, 1)).await,
            [0x0063],
            "unit {address}"
        );
    }
    fleet.shutdown().await;
}
