//! `serialtwin`: emulated serial devices on real serial ports.
//!
//! # Layout
//! - `cli`: the command line (clap).
//! - `config`: the fleet config file: parsing, validation, positions of errors.
//! - `models`: `serialtwin models`, and help texts read from the model registry
//!   (`serialtwin_devices::registry`): the CLI names no model itself.
//! - `trace`: the `--trace` observer.
//! - `run`: `serialtwin run` (signals, limits, readiness output, shutdown).
//! - `tap`, `replay`, `learn`: record a real device, replay a capture, learn a scripted device.
//! - `files`: the files they write on request (`--force`).

mod cli;
mod files;
mod learn;
mod models;
mod replay;
mod run;
mod tap;
mod tap_rfc2217;
mod trace;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use serialtwin_cli::config::{self, ConfigError};
use serialtwin_cli::shard;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Check(args) => run::check(&args),
        Command::Ctl(args) => run::ctl(&args),
        Command::Tap(args) => tap::tap(&args),
        Command::Replay(args) => replay::replay(&args),
        Command::Learn(args) => learn::learn(&args),
        Command::Models(args) => models::models(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            if e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<run::SeveralInstances>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes on one line, leaving out a cause its parent already quotes.
fn chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Logs on stderr: `RUST_LOG` if set, else info (more with -v, less with -q).
fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (_, 0) => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,serialtwin={level},serialtwin_core={level},serialtwin_devices={level}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
