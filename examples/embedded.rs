//! An emulated device living inside a larger async application, next to its own tasks.
//!
//! The application here is a tiny "poller" that talks to the emulated port through a real
//! serial client every second, and a heartbeat task; all share one runtime and stop together on
//! Ctrl-C (or after 5 polls) through one `CancellationToken`.
//!
//! `cargo run --example embedded`

use std::time::Duration;

use serialtwin::{Context, Device, Fleet, PortSpec, Replies};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_serial::SerialPortBuilderExt;

/// A thermometer whose reading drifts with the simulated clock.
struct Thermometer;

impl Device for Thermometer {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        ctx: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        if req == b"TEMP?" {
            let t = 20.0 + (ctx.clock().unix_seconds_f64() / 60.0).sin() * 2.0;
            out.push(format!("TEMP {t:.2}"));
        } else {
            out.push("ERR");
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("thermo"), Thermometer)?;
    let stop = fleet.cancellation();
    let tasks = tokio_util::task::TaskTracker::new();

    // The application's own task: a poller using an ordinary serial client on the pty.
    let path = port.pty().to_str().unwrap().to_owned();
    let poller_stop = stop.clone();
    tasks.spawn(async move {
        let serial = tokio_serial::new(path, 9600)
            .open_native_async()
            .expect("open port");
        let mut serial = BufReader::new(serial);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..5 {
            tokio::select! {
                () = poller_stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            serial
                .get_mut()
                .write_all(b"TEMP?\r\n")
                .await
                .expect("write");
            let mut line = String::new();
            serial.read_line(&mut line).await.expect("read");
            println!("poller: {}", line.trim_end());
        }
        poller_stop.cancel();
    });

    // Another task of the application.
    let heartbeat_stop = stop.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(2500));
        loop {
            tokio::select! {
                () = heartbeat_stop.cancelled() => return,
                _ = tick.tick() => println!("heartbeat: {} port(s) running", 1),
            }
        }
    });
    tasks.close();

    tokio::select! {
        _ = tokio::signal::ctrl_c() => stop.cancel(),
        () = stop.cancelled() => {}
    }
    fleet.shutdown().await;
    tasks.wait().await;
    Ok(())
}
