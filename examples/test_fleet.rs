//! What a test suite does: spawn dozens of fake ports, talk to all of them at once with a real
//! serial client, assert on what each port saw, and tear everything down.
//!
//! `cargo run --example test_fleet`

use std::time::Duration;

use serialtwin::{Context, Device, Direction, Fleet, PortSpec, Replies, Seen};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_serial::SerialPortBuilderExt;

/// Each port answers `ID?` with its own name.
struct Named;

impl Device for Named {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        ctx: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req == b"ID?" {
            out.push(ctx.name().to_owned());
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PORTS: usize = 48;
    let dir = std::env::temp_dir().join(format!("serialtwin-example-{}", std::process::id()));
    let fleet = Fleet::new();
    let ports = fleet
        .spawn_all((0..PORTS).map(|i| {
            (
                PortSpec::new(format!("dev{i}")).link(dir.join(format!("ttyUSB{i}"))),
                Named,
            )
        }))
        .await?;

    let mut checks = tokio::task::JoinSet::new();
    for port in &ports {
        let path = port.link().unwrap().to_str().unwrap().to_owned();
        let name = port.name().to_owned();
        let mut seen = port.observations();
        checks.spawn(async move {
            let serial = tokio_serial::new(path, 2400)
                .open_native_async()
                .expect("open");
            let mut serial = BufReader::new(serial);
            serial.get_mut().write_all(b"ID?\r\n").await.expect("write");
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(10), serial.read_line(&mut line))
                .await
                .expect("in time")
                .expect("read");
            assert_eq!(line, format!("{name}\r\n"));
            // What did the port see from the client?
            loop {
                let o = seen.recv().await.expect("observation");
                if let Seen::Frame(Direction::Rx, frame) = o.seen {
                    assert_eq!(frame.as_ref(), b"ID?");
                    break;
                }
            }
        });
    }
    while let Some(done) = checks.join_next().await {
        done?;
    }
    println!("{PORTS} ports answered");
    fleet.shutdown().await;
    assert!(
        std::fs::read_dir(&dir)?.next().is_none(),
        "every link removed"
    );
    println!("all links removed");
    std::fs::remove_dir(&dir)?;
    Ok(())
}
