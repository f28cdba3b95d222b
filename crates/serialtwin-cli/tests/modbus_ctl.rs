//! `serialtwin ctl set <port>/<unit> <table>.<address> <value>` on a Modbus bus, seen by a raw
//! RTU master on the real port.

mod common;

use common::{PATIENCE, ctl, open_at, start, work_dir, write_config};
use serialtwin_devices::modbus::rtu::crc16;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_crc(payload: &[u8]) -> Vec<u8> {
    let mut adu = payload.to_vec();
    adu.extend_from_slice(&crc16(payload).to_le_bytes());
    adu
}

async fn ask(port: &mut tokio_serial::SerialStream, payload: &[u8], reply: usize) -> Vec<u8> {
    port.write_all(&with_crc(payload)).await.unwrap();
    let mut got = vec![0u8; reply];
    tokio::time::timeout(PATIENCE, port.read_exact(&mut got))
        .await
        .expect("a reply in time")
        .unwrap();
    got
}

/// A bus of two units (1 and 7) served by `serialtwin run` with a control socket: the run,
/// the socket, and a client on the port at 19,200 baud.
fn bus(
    tag: &str,
) -> (
    common::Running,
    std::path::PathBuf,
    tokio_serial::SerialStream,
    common::scratch::Scratch,
) {
    let dir = work_dir(tag);
    let socket = dir.join("run/control.sock");
    let config = write_config(
        &dir,
        "modbus.toml",
        &format!(
            r#"
[[device]]
name = "bus"
model = "modbus"
link = "{dir}/ttyUSB-modbus"

[[device.modbus.unit]]
id = 1
[[device.modbus.unit.holding]]
address = 20
[[device.modbus.unit.input]]
address = 0
type = "f32"
value = 230.5
[[device.modbus.unit.input]]
address = 10
counter = {{ start = 0, step = 1, every_ms = 1000 }}

[[device.modbus.unit]]
id = 7
[[device.modbus.unit.coil]]
address = 3
value = false
"#,
            dir = dir.display()
        ),
    );
    let run = start(
        &dir,
        &[
            config.to_str().unwrap(),
            "--control",
            socket.to_str().unwrap(),
        ],
    );
    let link = run.links().remove(0);
    let port = open_at(&link, 19_200);
    (run, socket, port, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_sets_a_units_declared_values_as_declared() {
    let (run, socket, mut port, _dir) = bus("modbusset");

    let (ok, text) = ctl(&socket, &["set", "bus/1", "holding.20", "4711"]);
    assert!(ok, "{text}");
    assert_eq!(
        ask(&mut port, &[1, 3, 0, 20, 0, 1], 7).await,
        with_crc(&[1, 3, 2, 0x12, 0x67])
    );
    // A float, as declared: 49.75 is 0x4247 0x0000.
    let (ok, text) = ctl(&socket, &["set", "bus/1", "input.0x0", "49.75"]);
    assert!(ok, "{text}");
    assert_eq!(
        ask(&mut port, &[1, 4, 0, 0, 0, 2], 9).await,
        with_crc(&[1, 4, 4, 0x42, 0x47, 0, 0])
    );
    let (ok, text) = ctl(&socket, &["set", "bus/7", "coil.3", "on"]);
    assert!(ok, "{text}");
    assert_eq!(
        ask(&mut port, &[7, 1, 0, 3, 0, 1], 6).await,
        with_crc(&[7, 1, 1, 1])
    );
    // What cannot be set says why.
    for (args, why) in [
        (
            ["set", "bus/1", "holding.21", "1"],
            "unit 1 declares no holding value at 21",
        ),
        (["set", "bus/1", "holding.20", "70000"], "out of range"),
        (["set", "bus/1", "input.10", "5"], "moves with the clock"),
        (
            ["set", "bus/9", "holding.20", "1"],
            "no device at address 9",
        ),
        (["set", "bus/7", "coil.3", "maybe"], "a bit is on or off"),
        (
            ["set", "nobus/1", "holding.20", "1"],
            "no port named \"nobus/1\"",
        ),
    ] {
        let (ok, text) = ctl(&socket, &args);
        assert!(!ok && text.contains(why), "{args:?}: {text}");
    }
    drop(run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_faults_one_unit_of_a_bus() {
    let (run, socket, mut port, _dir) = bus("modbusfault");
    let (ok, text) = ctl(&socket, &["set", "bus/1", "holding.20", "4711"]);
    assert!(ok, "{text}");

    // Faults per unit: unit 7 goes silent, unit 1 answers on; unit 1's next reply has a broken
    // CRC; `clear` brings unit 7 back.
    let (ok, text) = ctl(&socket, &["fault", "bus/7", "drop", "p=1"]);
    assert!(ok, "{text}");
    port.write_all(&with_crc(&[7, 1, 0, 3, 0, 1]))
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let heard =
        tokio::time::timeout(std::time::Duration::from_millis(300), port.read(&mut byte)).await;
    assert!(heard.is_err(), "a silent unit answered {byte:02X?}");
    assert_eq!(
        ask(&mut port, &[1, 3, 0, 20, 0, 1], 7).await,
        with_crc(&[1, 3, 2, 0x12, 0x67])
    );
    let (ok, text) = ctl(&socket, &["fault", "bus/1", "break-crc", "next=1"]);
    assert!(ok, "{text}");
    let broken = ask(&mut port, &[1, 3, 0, 20, 0, 1], 7).await;
    assert_eq!(broken[..5], [1, 3, 2, 0x12, 0x67]);
    assert_ne!(
        broken,
        with_crc(&[1, 3, 2, 0x12, 0x67]),
        "the CRC is broken"
    );
    let (ok, text) = ctl(&socket, &["clear", "bus"]);
    assert!(ok, "{text}");
    assert_eq!(
        ask(&mut port, &[7, 1, 0, 3, 0, 1], 6).await,
        with_crc(&[7, 1, 1, 0])
    );
    let (ok, text) = ctl(&socket, &["fault", "bus/x", "drop"]);
    assert!(!ok && text.contains("no port named \"bus/x\""), "{text}");
    drop(run);
}
