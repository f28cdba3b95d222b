//! `serialtwin learn CAPTURE -o device.toml`: a capture turned into an editable scripted device.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serialtwin_core::{PortNameError, check_port_name, output};
use serialtwin_devices::learn::{LearnOptions, learn as learn_toml};
use serialtwin_devices::replay::Fallback;
use tracing::{info, warn};

use crate::replay::{DEFAULT_LINK, conversation};
use crate::{config, files};

/// `serialtwin learn`.
#[derive(Debug, Args)]
pub(crate) struct LearnArgs {
    /// The capture to learn from.
    pub(crate) capture: PathBuf,
    /// The fleet config to write (`-`: stdout): a new file, created owner-only (0600); refused
    /// if anything is already there (see --force).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub(crate) output: PathBuf,
    /// Replace the -o file if it exists and is a regular file (never a symlink, a FIFO or a
    /// device).
    #[arg(long)]
    pub(crate) force: bool,
    /// The framing (default: the capture's).
    #[arg(long)]
    pub(crate) framing: Option<String>,
    /// The device's port name: one word (printable, no whitespace, not `*`), as `ctl` uses it.
    #[arg(long, default_value = "learned", value_parser = port_name)]
    pub(crate) name: String,
    /// The device's link.
    #[arg(long, default_value = DEFAULT_LINK)]
    pub(crate) link: String,
    /// Keep the recorded reply delays (`delay_ms`).
    #[arg(long)]
    pub(crate) timing: bool,
    /// Sequences start over after their last reply (default: the last reply repeats).
    #[arg(long)]
    pub(crate) cycle: bool,
    /// What requests never recorded get: `silence`, `nak` (`(NAK`), or any text as a frame
    /// through the framing (escapes `\r`, `\xNN` allowed), as replay's --fallback. Default:
    /// what the framing's protocol answers an unknown command (PI30: `(NAK`), else silence.
    #[arg(long, value_name = "silence|nak|FRAME", value_parser = Fallback::parse)]
    pub(crate) default: Option<Fallback>,
}

/// `--name`: refused by clap, before the capture is read, if it is not a port name.
fn port_name(name: &str) -> Result<String, PortNameError> {
    check_port_name(name).map(|()| name.to_owned())
}

pub(crate) const LEARN_EXAMPLES: &str = "\
Examples:
  serialtwin learn inverter.jsonl -o inverter.toml && serialtwin run inverter.toml
      A scripted device answering as the recorded one did; edit inverter.toml from there
  serialtwin learn inverter.jsonl -o inverter.toml --timing --force
      Learn it again, with the recorded delays, over the last inverter.toml
  serialtwin learn meter.jsonl -o meter.toml --default 'ERR'
      Requests never recorded get ERR, not what the framing's protocol answers (PI30: (NAK)

-o makes a new file (mode 0600) and stops if anything is at its path; --force replaces a
regular file there, never a symlink, a FIFO or a device.";

/// `serialtwin learn`.
///
/// # Errors
/// A capture that cannot be read or has no requests, or an output that cannot be written.
pub(crate) fn learn(args: &LearnArgs) -> anyhow::Result<()> {
    let (conversation, framing) = conversation(&args.capture, args.framing.as_deref())?;
    if serialtwin_devices::registry::learner(framing.name()).is_some()
        && (args.timing || args.cycle || args.default.is_some())
    {
        warn!(
            framing = framing.name(),
            "--timing, --cycle and --default shape a script; this framing learns its own way \
             (Modbus: a register map): ignored"
        );
    }
    let options = LearnOptions {
        name: args.name.clone(),
        link: Some(args.link.clone()),
        source: args.capture.display().to_string(),
        timing: args.timing,
        cycle: args.cycle,
        default: args.default.clone(),
    };
    let text = learn_toml(&conversation, &framing, &options);
    // What we write must load: a failure here is a bug in `learn`, caught before a person
    // finds it.
    config::parse("<learned config>", &text, None)
        .context("the learned config does not load (a bug in serialtwin learn)")?;
    if args.output.as_os_str() == "-" {
        std::io::stdout().lock().write_all(text.as_bytes())?;
    } else {
        output::create(&args.output, files::existing(args.force))
            .map_err(files::with_hint)?
            .write_all(text.as_bytes())
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        info!(
            exchanges = conversation.exchanges.len(),
            "wrote {}; run it with: serialtwin run {}",
            args.output.display(),
            args.output.display()
        );
    }
    Ok(())
}
