//! The original use case: answer `QPGS` with `correct result`, anything else with
//! `I dont understand`, on a real serial port any program can open.
//!
//! `cargo run --example qpgs`, then e.g. `python3 -m serial.tools.miniterm /tmp/serialtwin/qpgs 2400`.

use serialtwin::{Context, Device, Fleet, PortSpec, Replies};

struct Qpgs;

impl Device for Qpgs {
    type Error = std::convert::Infallible;

    fn handle(
        &mut self,
        req: &[u8],
        _: &mut Context,
        out: &mut Replies,
    ) -> Result<(), Self::Error> {
        out.push(if req == b"QPGS" {
            "correct result"
        } else {
            "I dont understand"
        });
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("qpgs").link("/tmp/serialtwin/qpgs"), Qpgs)?;
    println!(
        "{} -> {}",
        port.link().unwrap().display(),
        port.pty().display()
    );
    tokio::signal::ctrl_c().await?;
    fleet.shutdown().await;
    Ok(())
}
