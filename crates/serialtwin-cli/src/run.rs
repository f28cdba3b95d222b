//! `serialtwin run` and `serialtwin check`.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use serialtwin_core::{Fleet, PortHandle, PortSpec, limits};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{debug, info, warn};

use crate::cli::{CheckArgs, RunArgs};
use crate::config::{self, Plan};
use crate::trace::Trace;

/// `serialtwin run`: start the fleet, report readiness, serve until a signal, clean up.
///
/// # Errors
/// A [`ConfigError`](config::ConfigError) (exit status 2) before anything starts, or why the
/// ports could not be started (nothing is left behind).
pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let plan = match &args.config {
        Some(path) => config::load(path)?,
        None => config::parse(config::DEFAULT_NAME, config::DEFAULT_CONFIG)?,
    };
    for w in &plan.warnings {
        warn!("{w}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(serve(plan, args))
}

/// `serialtwin check`: validate, list what would start, warn.
///
/// # Errors
/// A [`ConfigError`](config::ConfigError).
pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let (plan, name) = match &args.config {
        Some(path) => (config::load(path)?, path.display().to_string()),
        None => (
            config::parse(config::DEFAULT_NAME, config::DEFAULT_CONFIG)?,
            config::DEFAULT_NAME.to_owned(),
        ),
    };
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    for port in &plan.ports {
        let link = port
            .link
            .as_deref()
            .map_or_else(|| "-".to_owned(), |l| l.display().to_string());
        writeln!(out, "{:<16} {:<10} {link}", port.name, port.model)?;
    }
    writeln!(
        out,
        "{name}: ok, {} port(s){}",
        plan.ports.len(),
        match plan.warnings.len() {
            0 => String::new(),
            n => format!(", {n} warning(s)"),
        }
    )?;
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP, installed before the first port exists so that none is lost.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        let install = |kind| signal(kind).context("cannot install a signal handler");
        Ok(Self {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

async fn serve(plan: Plan, args: &RunArgs) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    match limits::raise_nofile_limit() {
        Ok(r) if r.raised() => debug!(
            from = r.old_soft,
            to = r.new_soft,
            "raised the open-file limit"
        ),
        Ok(_) => {}
        Err(e) => warn!("cannot raise the open-file limit: {e}"),
    }
    let trace = args.trace.map(Trace::start);
    let observer = trace.as_ref().map(|(t, _)| Arc::new(t.clone()));

    let models: Vec<&'static str> = plan.ports.iter().map(|p| p.model).collect();
    let ports = plan.ports.into_iter().map(|p| {
        let mut spec = PortSpec::new(p.name);
        spec.link = p.link;
        spec.owner = p.owner;
        spec.mode = p.mode;
        spec.framing = p.framing;
        spec.line = p.line;
        spec.seed = p.seed;
        spec.clock = plan.clock;
        if let Some(o) = &observer {
            spec.observers.push(o.clone());
        }
        (spec, p.device)
    });
    let fleet = Fleet::new();
    let started = fleet.spawn_all(ports).await;
    drop(observer);
    let handles = match started {
        Ok(handles) => handles,
        Err(e) => {
            if let Some((t, writer)) = trace {
                drop(t);
                writer.finish();
            }
            return Err(e).context("cannot start the ports (nothing was left behind)");
        }
    };
    ready(&handles, &models, args.json)?;
    info!(
        ports = handles.len(),
        "ready; stop with Ctrl-C (SIGINT), SIGTERM or SIGHUP"
    );

    let which = signals.recv().await;
    info!("{which}: stopping every port");
    fleet.shutdown().await;
    drop(handles);
    if let Some((t, writer)) = trace {
        drop(t);
        writer.finish();
    }
    info!("stopped; links removed");
    Ok(())
}

/// One port in `--json` readiness output.
#[derive(serde::Serialize)]
struct ReadyPort<'a> {
    name: &'a str,
    model: &'a str,
    pty: String,
    link: Option<String>,
}

/// Readiness on stdout: a table, or JSON lines ending in `{"ready": N}`.
fn ready(handles: &[PortHandle], models: &[&str], json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let link = |h: &PortHandle| h.link().map(Path::display).map(|d| d.to_string());
    if json {
        for (h, model) in handles.iter().zip(models) {
            let port = ReadyPort {
                name: h.name(),
                model,
                pty: h.pty().display().to_string(),
                link: link(h),
            };
            writeln!(out, "{}", serde_json::to_string(&port)?)?;
        }
        writeln!(out, "{}", serde_json::json!({ "ready": handles.len() }))?;
    } else {
        let column = |texts: &mut dyn Iterator<Item = usize>, title: &str| {
            texts.max().unwrap_or(0).max(title.len())
        };
        let name_w = column(&mut handles.iter().map(|h| h.name().len()), "NAME");
        let model_w = column(&mut models.iter().map(|m| m.len()), "MODEL");
        let pty_w = column(
            &mut handles.iter().map(|h| h.pty().as_os_str().len()),
            "PTY",
        );
        writeln!(
            out,
            "{:<name_w$}  {:<model_w$}  {:<pty_w$}  LINK",
            "NAME", "MODEL", "PTY"
        )?;
        for (h, model) in handles.iter().zip(models) {
            writeln!(
                out,
                "{:<name_w$}  {model:<model_w$}  {:<pty_w$}  {}",
                h.name(),
                h.pty().display().to_string(),
                link(h).unwrap_or_else(|| "-".into())
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
