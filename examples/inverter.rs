//! One emulated Voltronic PI30 inverter on a real port, and how to talk to it with mppsolar.
//!
//! `cargo run --example inverter [pi30|pi30max]`, then in another shell run the mppsolar
//! command it prints.

use serialtwin::devices::pi30::{Pi30, Pi30Config};
use serialtwin::{Fleet, PortSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // mppsolar picks its transport from substrings of the whole lower-cased path: this one
    // contains "serial" and "ttyusb" and nothing it would misread (never "test", "esp", ...).
    let link = "/tmp/serialtwin/ttyUSB-inv0";
    let variant = std::env::args().nth(1).unwrap_or_else(|| "pi30".into());
    let config: Pi30Config = toml::from_str(&format!("variant = {variant:?}"))?;
    let protocol = variant.to_uppercase();
    let inverter = Pi30::new(config)?;
    let fleet = Fleet::new();
    let port = fleet.spawn(PortSpec::new("inv0").link(link), inverter)?;
    println!("PI30 inverter on {} (link {link})", port.pty().display());
    println!("talk to it with:");
    println!("  mppsolar -p {link} --porttype serial -P {protocol} -c QPIGS -o json");
    tokio::signal::ctrl_c().await?;
    fleet.shutdown().await;
    Ok(())
}
