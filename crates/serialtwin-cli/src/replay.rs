//! `serialtwin replay CAPTURE`: serve an emulated device built from a capture.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use serialtwin_capture::{CaptureWriter, Header};
use serialtwin_core::{Fleet, Framing, PortSpec};
use serialtwin_devices::replay::{self, Conversation, Fallback, OpenError, Replay, ReplayOptions};
use tracing::info;

use crate::cli::TraceFormat;
use crate::files;
use crate::tap::{Signals, framing};
use crate::trace::Trace;

/// Where a replayed or learned device's link goes by default (as `serialtwin run`'s).
pub(crate) const DEFAULT_LINK: &str = "/tmp/serialtwin/ttyUSB0";

/// `serialtwin replay`.
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches, as clap derives them"
)]
pub(crate) struct ReplayArgs {
    /// The capture to replay (written by `serialtwin tap`; see docs/capture.md).
    pub(crate) capture: PathBuf,
    /// The link to make to the replaying device's pty.
    #[arg(long, default_value = DEFAULT_LINK)]
    pub(crate) link: PathBuf,
    /// The framing (default: the capture's). Another framing than the capture's cuts its raw
    /// chunks again.
    #[arg(long)]
    pub(crate) framing: Option<String>,
    /// Send each reply after the delay it was recorded with (default: at once).
    #[arg(long)]
    pub(crate) timing: bool,
    /// What requests the capture never saw get: `silence`, `nak` (`(NAK` through the framing)
    /// or any other text, sent as a frame (escapes `\r`, `\xNN` allowed).
    #[arg(long, default_value = "silence")]
    pub(crate) fallback: String,
    /// Replay the conversation in recorded order; report every request that deviates from it
    /// (trace line, log) and exit with status 1 at the end if any did.
    #[arg(long)]
    pub(crate) strict: bool,
    /// When a request's recorded replies are used up, start over at its first (default: keep
    /// answering the last).
    #[arg(long)]
    pub(crate) cycle: bool,
    /// Record the replay's own conversation to this capture (frames and line events): a new
    /// file, created owner-only (0600); refused if anything is already there (see --force).
    #[arg(long, value_name = "FILE")]
    pub(crate) capture_to: Option<PathBuf>,
    /// Replace the --capture-to file if it exists and is a regular file (never a symlink, a
    /// FIFO or a device).
    #[arg(long, requires = "capture_to")]
    pub(crate) force: bool,
    /// Log every frame and line event on stderr, as `run --trace` does.
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "text")]
    pub(crate) trace: Option<TraceFormat>,
    /// When ready, print `{"name","pty","link"}` and `{"ready": 1}` on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) const REPLAY_EXAMPLES: &str = "\
Examples:
  serialtwin replay inverter.jsonl --trace
      The recorded inverter at /tmp/serialtwin/ttyUSB0, answering as it did
  serialtwin replay inverter.jsonl --fallback nak --timing
      (NAK for anything not recorded; replies as late as the real device's
  serialtwin replay inverter.jsonl --strict
      The client must repeat the recorded conversation in order; exit status 1 if it did not
  serialtwin replay inverter.jsonl --capture-to replayed.jsonl --force
      Record the replay's own side, replacing the last replayed.jsonl (a regular file only)

Matching: the exact request first, then its printable-ASCII text (cut at the first other byte,
such as a binary CRC), trimmed and upper-cased. A request seen several times replays its
replies in recorded order, then keeps answering the last (--cycle: starts over).";

/// The conversation in the capture at `path`, and the framing it was read with: `asked`, else
/// the capture's own.
pub(crate) fn conversation(
    path: &Path,
    asked: Option<&str>,
) -> anyhow::Result<(Conversation, Framing)> {
    let framing = asked.map(framing).transpose()?;
    replay::open(path, framing).map_err(|e| match e {
        OpenError::Capture(e) => e.into(),
        OpenError::NoFraming => {
            anyhow::anyhow!("{}: {e}: choose one with --framing", path.display())
        }
        e => anyhow::anyhow!("{}: {e}", path.display()),
    })
}

/// `serialtwin replay`.
///
/// # Errors
/// A capture that cannot be read or has no requests, a link that cannot be made, or (with
/// `--strict`) a client that deviated.
pub(crate) fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let (conversation, framing) = conversation(&args.capture, args.framing.as_deref())?;
    let fallback = Fallback::parse(&args.fallback)
        .map_err(|e| anyhow::anyhow!("--fallback {:?}: {e}", args.fallback))?;
    let options = ReplayOptions {
        timing: args.timing,
        fallback,
        strict: args.strict,
        cycle: args.cycle,
    };
    info!(
        exchanges = conversation.exchanges.len(),
        framing = framing.name(),
        "replaying {}",
        args.capture.display()
    );
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(serve(args, Arc::new(conversation), framing, options))
}

async fn serve(
    args: &ReplayArgs,
    conversation: Arc<Conversation>,
    framing: Framing,
    options: ReplayOptions,
) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let strict = options.strict;
    let total = conversation.exchanges.len();
    let device = Replay::new(conversation, framing.clone(), options);
    let report = device.report();
    let trace = args.trace.map(Trace::start);
    let capture = match &args.capture_to {
        Some(path) => {
            let mut header = Header::now();
            header.framing = Some(framing.name().to_owned());
            header.upstream = Some(format!("replay of {}", args.capture.display()));
            header.link = Some(args.link.display().to_string());
            header.tool = Some(format!("serialtwin {} replay", env!("CARGO_PKG_VERSION")));
            Some(
                CaptureWriter::create_with(path, &header, files::existing(args.force))
                    .map_err(files::with_hint)?,
            )
        }
        None => None,
    };
    let mut spec = PortSpec::new("replay").link(args.link.clone());
    if let Some((t, _)) = &trace {
        spec.serve
            .observers
            .push(Arc::new(t.checking(Some(&framing))));
    }
    spec.serve.framing = Some(framing);
    if let Some(c) = &capture {
        spec.serve.observers.push(Arc::new(c.clone()));
    }
    let fleet = Fleet::new();
    let handle = fleet
        .spawn(spec, device)
        .context("cannot start the replaying port")?;

    let mut out = io::stdout().lock();
    if args.json {
        let line = serde_json::json!({
            "name": handle.name(),
            "model": replay::MODEL.name,
            "pty": handle.pty().display().to_string(),
            "link": args.link.display().to_string(),
        });
        writeln!(out, "{line}")?;
        writeln!(out, "{}", serde_json::json!({ "ready": 1 }))?;
    } else {
        writeln!(
            out,
            "replay  {}  (pty {}, {total} recorded exchange(s) from {})",
            args.link.display(),
            handle.pty().display(),
            args.capture.display()
        )?;
    }
    out.flush()?;
    drop(out);
    info!("ready; stop with Ctrl-C (SIGINT), SIGTERM or SIGHUP");

    let which = signals.recv().await;
    info!("{which}: stopping");
    fleet.shutdown().await;
    drop(handle);
    if let Some(c) = &capture {
        c.close()?;
    }
    if let Some((t, writer)) = trace {
        drop(t);
        writer.finish();
    }
    let counts = report.counts();
    info!(
        exact = counts.exact,
        normalised = counts.normalised,
        fallback = counts.fallback,
        "stopped; link removed"
    );
    if strict {
        if !counts.deviations.is_empty() {
            for d in &counts.deviations {
                eprintln!("{d}");
            }
            bail!(
                "strict replay: the client deviated {} time(s); {} of {total} recorded exchange(s) replayed in order",
                counts.deviations.len(),
                counts.in_order
            );
        }
        info!(
            "strict replay: {} of {total} recorded exchange(s) replayed in order, no deviation",
            counts.in_order
        );
    }
    Ok(())
}
