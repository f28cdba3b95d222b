//! `serialtwin run` and `serialtwin check`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serialtwin_capture::{CaptureWriter, Header, Recorder};
use serialtwin_core::control::{self, Ports};
use serialtwin_core::net::{Endpoint, EndpointConfig, EndpointKind};
use serialtwin_core::trusted_dir::{self, Purpose, TrustedDir};
use serialtwin_core::{Fleet, LinkError, Medium, PortHandle, PortSpec, Stopper, limits};
use tracing::{debug, info, warn};

use crate::cli::{CheckArgs, CtlArgs, RunArgs};
use crate::config::{self, Plan};
use crate::files;
use crate::shard;
use crate::trace::Trace;

/// `serialtwin run`: start the fleet, report readiness, serve until a signal, clean up.
///
/// # Errors
/// A [`ConfigError`](config::ConfigError) (exit status 2) before anything starts, or why the
/// ports could not be started (nothing is left behind).
pub(crate) fn run(args: &RunArgs) -> anyhow::Result<()> {
    let plan = match &args.config {
        Some(path) => Some(match args.shard {
            Some(shard) => {
                let whole = config::load(path)?;
                let tables = whole.tables.len();
                let owned = shard::tables_owned(&whole, shard);
                let plan = shard::select(whole, shard);
                info!(
                    %shard,
                    tables = owned,
                    of = tables,
                    ports = plan.ports.len(),
                    "serving shard {shard}"
                );
                if plan.ports.is_empty() {
                    warn!(
                        "shard {shard} owns none of the {tables} device tables: it serves nothing"
                    );
                }
                plan
            }
            None => config::load(path)?,
        }),
        None => None,
    };
    // First, while this is the only thread: the runtime's threads must start with the
    // signals blocked, so that only the stopper's thread takes them.
    let stopper = Stopper::install(STOP_GRACE).context("cannot take over the stop signals")?;
    if args.exit_with_stdin {
        watch_stdin()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        // Once, before the first port exists (however many tries the default link takes).
        match limits::raise_nofile_limit() {
            Ok(r) if r.raised() => debug!(
                from = r.old_soft,
                to = r.new_soft,
                "raised the open-file limit"
            ),
            Ok(_) => {}
            Err(e) => warn!("cannot raise the open-file limit: {e}"),
        }
        match plan {
            Some(plan) => {
                for w in &plan.warnings {
                    warn!("{w}");
                }
                serve(plan, args, Defaults::None, &stopper).await
            }
            None => serve_default(args, &stopper).await,
        }
    })
}

/// `--exit-with-stdin`: a thread that reads standard input to its end (or a read error),
/// discarding it, then sends this process SIGTERM, which the stopper takes as any other.
/// Started after the stopper, so the thread has the stop signals blocked like every other.
fn watch_stdin() -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            info!("standard input closed (--exit-with-stdin): stopping");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGTERM);
        })
        .context("cannot watch standard input")?;
    Ok(())
}

/// How many default links (`ttyUSB0`, `ttyUSB1`...) a `serialtwin run` without a config tries.
const DEFAULT_LINKS: u32 = 16;

/// The built-in default: a PI30 inverter at `ttyUSB0`, or at the next link no other instance
/// holds (a second `serialtwin run` beside a user's first).
async fn serve_default(args: &RunArgs, stopper: &Stopper) -> anyhow::Result<()> {
    let mut n = 0;
    loop {
        let plan = config::parse(config::DEFAULT_NAME, &config::default_config_at(n), None)?;
        if n == 0 {
            for w in &plan.warnings {
                warn!("{w}");
            }
        }
        match serve(plan, args, Defaults::Link, stopper).await {
            Err(e) if n + 1 < DEFAULT_LINKS && link_busy(&e) => {
                n += 1;
                info!(
                    "{}: the default inverter takes ttyUSB{n} instead",
                    busy_reason(&e)
                );
            }
            other => return other,
        }
    }
}

/// Whether starting failed because a link is held by another running instance.
fn link_busy(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref(), Some(LinkError::Busy { .. })))
}

/// What the busy link error says.
fn busy_reason(e: &anyhow::Error) -> String {
    e.chain()
        .find(|c| matches!(c.downcast_ref(), Some(LinkError::Busy { .. })))
        .map_or_else(|| e.to_string(), ToString::to_string)
}

/// Which of the built-in defaults a run uses, for what to tidy at exit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Defaults {
    /// None: a config file.
    None,
    /// The default config's link directory.
    Link,
}

/// `serialtwin check`: validate, list what would start, warn.
///
/// # Errors
/// A [`ConfigError`](config::ConfigError).
pub(crate) fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let (plan, name) = match &args.config {
        Some(path) => {
            let plan = config::load(path)?;
            match args.shard {
                Some(shard) => {
                    let name = format!(
                        "{}: shard {shard} owns {} of {} device table(s)",
                        path.display(),
                        shard::tables_owned(&plan, shard),
                        plan.tables.len()
                    );
                    (shard::select(plan, shard), name)
                }
                None => (plan, path.display().to_string()),
            }
        }
        None => (
            config::parse(config::DEFAULT_NAME, &config::default_config(), None)?,
            config::DEFAULT_NAME.to_owned(),
        ),
    };
    for w in plan.warnings.iter().chain(&plan.busy) {
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
        match plan.warnings.len() + plan.busy.len() {
            0 => String::new(),
            n => format!(", {n} warning(s)"),
        }
    )?;
    Ok(())
}

/// How long the ports have to stop after a signal before the process removes their links and
/// exits without them (a device handler that never returns): within 2 s of the signal, all
/// told.
const STOP_GRACE: Duration = Duration::from_millis(1500);

async fn serve(
    plan: Plan,
    args: &RunArgs,
    defaults: Defaults,
    stopper: &Stopper,
) -> anyhow::Result<()> {
    let trace = args.trace.map(Trace::start);
    let captures = match &args.capture {
        Some(template) => Captures::create(template, &plan, args.force)?,
        None => Captures::default(),
    };

    let models: Vec<&'static str> = plan.ports.iter().map(|p| p.model).collect();
    let endpoints: Vec<Vec<EndpointConfig>> =
        plan.ports.iter().map(|p| p.endpoints.clone()).collect();
    let network_only: Vec<_> = plan.ports.iter().map(|p| p.network_only).collect();
    let ports = port_specs(
        plan.ports,
        plan.clock,
        &captures,
        trace.as_ref().map(|(t, _)| t),
    );
    let fleet = Fleet::new();
    // Ports, then their endpoints: either failing, nothing is left behind.
    let started = match fleet.spawn_all(ports).await {
        Ok(handles) => {
            stopper.release_links_of(fleet.links());
            match listen(&handles, endpoints, &fleet).await {
                Ok(listening) => Ok((handles, listening)),
                Err(e) => {
                    fleet.shutdown().await;
                    Err(e)
                }
            }
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context("cannot start the ports (nothing was left behind)"))
        }
    };
    let (handles, listening) = match started {
        Ok(started) => started,
        Err(e) => {
            if let Some((t, writer)) = trace {
                drop(t);
                writer.finish();
            }
            captures.discard();
            return Err(e);
        }
    };
    let ports = Ports::new(handles.iter().cloned());
    let (control, control_task) = start_control(args, ports.clone(), fleet.cancellation()).await?;
    if let Some(control) = &control {
        stopper.remove_file(control.clone());
    }
    let timeline = tokio::spawn(control::run_timeline(
        plan.timeline,
        ports,
        fleet.cancellation(),
    ));
    if let Some(control) = &control {
        info!(
            "control: serialtwin ctl --socket {} list",
            control.display()
        );
    }
    let addresses = addresses(&listening, &handles, &network_only);
    ready(&handles, &models, &addresses, &captures, args.json)?;
    info!(
        ports = handles.len(),
        "ready; stop with Ctrl-C (SIGINT), SIGTERM or SIGHUP"
    );

    let which = stopper.signalled().await;
    info!("{which}: stopping every port");
    fleet.shutdown().await;
    for (_, tasks) in listening {
        for task in tasks {
            let _ = task.await;
        }
    }
    let _ = timeline.await;
    drop(handles);
    // The socket is removed when its task ends (the fleet's cancellation ends it).
    if let Some(task) = control_task {
        let _ = task.await;
    }
    // No empty directories left behind: the default socket's and the default link's, if
    // nothing else (another instance) is in them. (`remove_dir` removes only an empty one.)
    if args.control.is_none()
        && let Some(dir) = control.as_deref().and_then(Path::parent)
    {
        let _ = std::fs::remove_dir(dir);
    }
    if defaults == Defaults::Link {
        let _ = std::fs::remove_dir(config::default_link_dir());
    }
    if let Some((t, writer)) = trace {
        drop(t);
        writer.finish();
    }
    let closed = captures.close();
    stopper.stopped();
    closed?;
    info!("stopped; links removed");
    Ok(())
}

/// `--capture`: one capture file per port, written by one thread.
#[derive(Default)]
struct Captures {
    /// Port `i`'s writer.
    writers: Vec<CaptureWriter>,
}

impl Captures {
    /// Create every port's capture file from `template` (see `--capture`), or none: a file
    /// that cannot be made removes those made before it.
    fn create(template: &Path, plan: &Plan, force: bool) -> anyhow::Result<Self> {
        let recorder = Recorder::new().context("cannot start the capture writer")?;
        let several = plan.ports.len() > 1;
        let mut made = Self::default();
        for port in &plan.ports {
            let path = capture_path(template, &port.name, several);
            let header = Header {
                framing: Some(port.framing.name().to_owned()),
                link: port.link.as_ref().map(|l| l.display().to_string()),
                port: Some(port.name.clone()),
                tool: Some(format!("serialtwin {} run", env!("CARGO_PKG_VERSION"))),
                ..Header::now()
            };
            match recorder.create(&path, &header, files::existing(force)) {
                // Frames say what they mean where the protocol can (Modbus), as a tap's do.
                Ok(writer) => made.writers.push(
                    match serialtwin_devices::registry::describer(port.framing.name()) {
                        Some(describe) => writer.describing(describe),
                        None => writer,
                    },
                ),
                Err(e) => {
                    made.discard();
                    return Err(files::with_hint(e))
                        .with_context(|| format!("cannot record port `{}`", port.name));
                }
            }
        }
        for w in &made.writers {
            info!(capture = %w.path().display(), "recording");
        }
        Ok(made)
    }

    /// Port `i`'s capture file.
    fn path(&self, i: usize) -> Option<&Path> {
        self.writers.get(i).map(CaptureWriter::path)
    }

    /// Close every file: each holds the whole conversation.
    fn close(&self) -> anyhow::Result<()> {
        let mut failed = None;
        for w in &self.writers {
            if let Err(e) = w.close() {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), |e| Err(e).context("a capture is incomplete"))
    }

    /// Close and remove every file: nothing was served, nothing is left behind.
    fn discard(&self) {
        for w in &self.writers {
            let _ = w.close();
            let _ = std::fs::remove_file(w.path());
        }
    }
}

/// Port `name`'s capture path from `--capture`'s `template`: `{name}` replaced by the name
/// (`/` as `_`, so a name never reaches into another directory); without `{name}` and with
/// `several` ports, `-name` before the extension; else the template itself.
fn capture_path(template: &Path, name: &str, several: bool) -> PathBuf {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
    let name = name.replace('/', "_");
    let bytes = template.as_os_str().as_bytes();
    let marker = b"{name}";
    if bytes.windows(marker.len()).any(|w| w == marker) {
        let mut out = Vec::with_capacity(bytes.len() + name.len());
        let mut rest = bytes;
        while let Some(at) = rest.windows(marker.len()).position(|w| w == marker) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(name.as_bytes());
            rest = &rest[at + marker.len()..];
        }
        out.extend_from_slice(rest);
        return PathBuf::from(OsString::from_vec(out));
    }
    if !several {
        return template.to_owned();
    }
    let mut file = template.file_stem().unwrap_or_default().to_owned();
    file.push("-");
    file.push(&name);
    if let Some(ext) = template.extension() {
        file.push(".");
        file.push(ext);
    }
    template.with_file_name(file)
}

/// The control socket: `--control PATH` (must work), or the per-user default — `control.sock`,
/// or `control-<pid>.sock` beside it while another instance serves that one (best effort: no
/// socket, and a warning, if neither can be made) — or none with `--no-control`. Its path,
/// and the task that serves it (it removes the socket when the fleet is cancelled).
async fn start_control(
    args: &RunArgs,
    ports: Ports,
    cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<(Option<PathBuf>, Option<tokio::task::JoinHandle<()>>)> {
    if args.no_control {
        return Ok((None, None));
    }
    let candidates = if let Some(path) = &args.control {
        vec![path.clone()]
    } else {
        let first = control_default();
        forget_dead_instances(&first);
        let own = first.with_file_name(format!("control-{}.sock", std::process::id()));
        vec![first, own]
    };
    let mut last = None;
    for path in candidates {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let socket = path.clone();
        let (ports, cancel) = (ports.clone(), cancel.clone());
        let task = tokio::spawn(async move {
            let result = control::serve_socket_ready(&socket, ports, cancel, tx).await;
            if let Err(e) = result {
                debug!(error = %e, "control socket ended");
            }
        });
        match rx.await {
            Ok(Ok(())) => {
                info!(socket = %path.display(), "control socket ready (serialtwin ctl)");
                return Ok((Some(path), Some(task)));
            }
            Ok(Err(e)) => {
                let _ = task.await;
                last = Some((path, e));
            }
            Err(_) => return Ok((None, None)),
        }
    }
    match last {
        Some((path, e)) if args.control.is_some() => Err(anyhow::anyhow!(
            "cannot open the control socket {}: {e}",
            path.display()
        )),
        Some((path, e)) => {
            warn!(socket = %path.display(), "no control socket: {e}; use --control PATH");
            Ok((None, None))
        }
        None => Ok((None, None)),
    }
}

/// `$XDG_RUNTIME_DIR/serialtwin/control.sock`, else `$TMPDIR/serialtwin-<euid>/control.sock`
/// (`/tmp` without `TMPDIR`).
///
/// `$XDG_RUNTIME_DIR` counts only if it is ours and `0700`: after `sudo -E`, root inherits a
/// user's, and putting root's socket in a directory that user controls would hand them root's
/// fleet (and root's `ctl` output).
pub(crate) fn control_default() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        match TrustedDir::open(&dir, Purpose::Private) {
            Ok(_) => return dir.join("serialtwin/control.sock"),
            Err(e) => warn!("ignoring $XDG_RUNTIME_DIR for the control socket: {e}"),
        }
    }
    std::env::temp_dir()
        .join(format!("serialtwin-{}", trusted_dir::euid()))
        .join("control.sock")
}

/// `serialtwin ctl`: send one command to a running instance and print the reply.
///
/// The reply is printed with control characters escaped: it comes from whoever serves the
/// socket, and raw escape sequences could rewrite the user's terminal.
///
/// # Errors
/// If the socket cannot be reached or is not to be trusted, no reply came within `--timeout`,
/// or the instance answered with an error.
pub(crate) fn ctl(args: &CtlArgs) -> anyhow::Result<()> {
    let path = match &args.socket {
        Some(path) => path.clone(),
        None => instance()?,
    };
    let line = args.command.join(" ");
    let reply = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        // The timer must be made inside the runtime.
        .block_on(async {
            tokio::time::timeout(args.timeout, control::request(&path, &line)).await
        })
        .map_err(|_| {
            anyhow::anyhow!(
                "timed out: no reply from {} within {:?} (see --timeout)",
                path.display(),
                args.timeout
            )
        })?
        .with_context(|| {
            format!(
                "cannot reach {} (is `serialtwin run` running?)",
                path.display()
            )
        })?;
    let reply = printable(&reply);
    match reply.strip_prefix("ok") {
        Some(rest) => {
            // What followed `ok` (the ports, for `list`), or `ok` itself.
            let rest = rest.trim_start_matches('\n');
            println!("{}", if rest.is_empty() { "ok" } else { rest });
            Ok(())
        }
        None => Err(anyhow::anyhow!(
            "{}",
            reply.strip_prefix("error: ").unwrap_or(&reply)
        )),
    }
}

/// The process id a second instance's socket is named after (`control-<pid>.sock`).
fn instance_pid(name: &str) -> Option<u32> {
    name.strip_prefix("control-")?
        .strip_suffix(".sock")?
        .parse()
        .ok()
}

/// The instances' sockets in `default`'s directory: `control.sock` (no pid) and every
/// `control-<pid>.sock`. None unless the directory is our own: nothing in anyone else's is
/// probed or removed.
fn instance_sockets(default: &Path) -> Vec<(PathBuf, Option<u32>)> {
    let Some(dir) = default.parent() else {
        return Vec::new();
    };
    if TrustedDir::open(dir, Purpose::Private).is_err() {
        return Vec::new();
    }
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_name()?.to_str()?;
            match instance_pid(name) {
                Some(pid) => Some((path, Some(pid))),
                None => (name == "control.sock").then_some((path, None)),
            }
        })
        .collect()
}

/// Remove the sockets (and their lock files) beside `default` that instances which no longer
/// run left behind (killed ones cannot remove their own).
fn forget_dead_instances(default: &Path) {
    for (path, pid) in instance_sockets(default) {
        let Some(pid) = pid else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            debug!(socket = %path.display(), "removing a dead instance's control socket");
            let _ = std::fs::remove_file(&path);
            let mut lock = path.into_os_string();
            lock.push(".lock");
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// The control socket of the one instance running, as the default sockets show it: the
/// default path when none answers there or beside it (the request then says nobody is).
///
/// # Errors
/// [`SeveralInstances`] when more than one answers.
fn instance() -> anyhow::Result<PathBuf> {
    let first = control_default();
    // (A probe is a connection: only in a directory of our own, see `instance_sockets`.)
    let mut sockets: Vec<PathBuf> = instance_sockets(&first)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| std::os::unix::net::UnixStream::connect(path).is_ok())
        .collect();
    sockets.sort();
    match sockets.len() {
        0 => Ok(first),
        1 => Ok(sockets.remove(0)),
        _ => Err(SeveralInstances(sockets).into()),
    }
}

/// More than one `serialtwin run` answers on the default sockets: which one is meant?
#[derive(Debug)]
pub(crate) struct SeveralInstances(Vec<PathBuf>);

impl std::fmt::Display for SeveralInstances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} serialtwin instances are running; choose one with --socket:",
            self.0.len()
        )?;
        for socket in &self.0 {
            write!(
                f,
                "\n  serialtwin ctl --socket {} ...",
                printable(&socket.display().to_string())
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for SeveralInstances {}

/// `text` with every control character but the line breaks escaped (`\r`, `\t`, `\x1b`,
/// `\u{9b}`), so that nothing a server sends is taken by the terminal as a command.
fn printable(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('\n'),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() && u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::{capture_path, printable};

    #[test]
    fn capture_paths_name_each_port_and_stay_in_their_directory() {
        let at = |t: &str, name: &str, several: bool| capture_path(Path::new(t), name, several);
        assert_eq!(
            at("c/{name}.jsonl", "inv0", true),
            PathBuf::from("c/inv0.jsonl")
        );
        assert_eq!(
            at("c/{name}-{name}", "a/../b", false),
            PathBuf::from("c/a_.._b-a_.._b")
        );
        assert_eq!(
            at("c/run.jsonl", "inv0", true),
            PathBuf::from("c/run-inv0.jsonl")
        );
        assert_eq!(at("c/run", "inv0", true), PathBuf::from("c/run-inv0"));
        assert_eq!(
            at("c/run.jsonl", "inv0", false),
            PathBuf::from("c/run.jsonl")
        );
    }

    #[test]
    fn printable_escapes_control_characters_but_keeps_lines() {
        assert_eq!(
            printable("ok\n\u{1b}[2Jinv0\u{7}\t\r\u{9b}x é\\"),
            "ok\n\\x1b[2Jinv0\\x07\\t\\r\\u{9b}x é\\\\"
        );
    }
}

/// What the fleet spawns for each planned port: its spec (with the capture writer and the
/// trace that watch it) and its device.
fn port_specs(
    ports: Vec<config::PortPlan>,
    clock: serialtwin_core::SimClock,
    captures: &Captures,
    trace: Option<&Trace>,
) -> Vec<(PortSpec, serialtwin_core::BoxDevice)> {
    let mut writers = captures.writers.iter();
    ports
        .into_iter()
        .map(|p| {
            let mut spec = PortSpec::new(p.name);
            if let Some(writer) = writers.next() {
                spec.serve.observers.push(Arc::new(writer.clone()));
            }
            spec.link = p.link;
            spec.owner = p.owner;
            spec.mode = p.mode;
            spec.medium = match p.network_only {
                Some((_, addr)) => Medium::Tcp(addr),
                // Only its endpoints reach it: no pty for them to bridge through.
                None if spec.link.is_none() && !p.endpoints.is_empty() => Medium::InProcess,
                None => Medium::Pty,
            };
            if let Some(t) = trace {
                // Each port's own: it checks the checksums of that port's framing.
                spec.serve
                    .observers
                    .push(Arc::new(t.checking(Some(&p.framing))));
            }
            spec.serve.framing = Some(p.framing);
            spec.serve.line = p.line;
            spec.serve.seed = p.seed;
            spec.serve.clock = clock;
            spec.serve.faults = p.faults;
            (spec, p.device)
        })
        .collect()
}

/// One port's endpoints as they serve: each one's kind and address, and their tasks.
type Listening = (
    Vec<(EndpointKind, SocketAddr)>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// Each port's network endpoints, bound and serving until the fleet stops: their addresses
/// and tasks, in port order.
async fn listen(
    handles: &[PortHandle],
    endpoints: Vec<Vec<EndpointConfig>>,
    fleet: &Fleet,
) -> anyhow::Result<Vec<Listening>> {
    let mut bound = Vec::new();
    for (handle, configs) in handles.iter().zip(endpoints) {
        let mut endpoints = Vec::new();
        for config in configs {
            let addr = config.addr;
            let kind = config.kind;
            let endpoint = Endpoint::bind(config).await.with_context(|| {
                format!(
                    "port {}: cannot listen for {} on {addr} (nothing was left behind)",
                    handle.name(),
                    kind.name()
                )
            })?;
            endpoints.push(endpoint);
        }
        bound.push(endpoints);
    }
    // Every address is bound before any is served: a failure leaves no endpoint running.
    Ok(handles
        .iter()
        .zip(bound)
        .map(|(handle, endpoints)| {
            let addresses = endpoints
                .iter()
                .map(|e| (e.kind(), e.local_addr()))
                .collect();
            let tasks = endpoints
                .into_iter()
                .map(|e| tokio::spawn(e.serve(handle.clone(), fleet.cancellation())))
                .collect();
            (addresses, tasks)
        })
        .collect())
}

/// Each port's addresses, in port order: its endpoints', or a network-only port's own.
fn addresses(
    listening: &[Listening],
    handles: &[PortHandle],
    network_only: &[Option<(EndpointKind, SocketAddr)>],
) -> Vec<Vec<(EndpointKind, SocketAddr)>> {
    listening
        .iter()
        .zip(handles)
        .zip(network_only)
        .map(
            |(((addresses, _), handle), only)| match (only, handle.address()) {
                (Some((kind, _)), Some(addr)) => vec![(*kind, addr)],
                _ => addresses.clone(),
            },
        )
        .collect()
}

/// One port in `--json` readiness output.
#[derive(serde::Serialize)]
struct ReadyPort<'a> {
    name: &'a str,
    model: &'a str,
    /// `None` for a network-only port.
    pty: Option<String>,
    link: Option<String>,
    /// `--capture`'s file for this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    capture: Option<String>,
    /// Its raw TCP endpoint, `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp: Option<String>,
    /// Its RFC 2217 endpoint, `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    rfc2217: Option<String>,
    /// Its Modbus TCP endpoint, `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    modbus_tcp: Option<String>,
    /// Its RTU-over-TCP endpoint, `host:port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    rtu_tcp: Option<String>,
}

/// A port's pty as readiness shows it; `None` for a network-only port, which has none.
fn pty_of(h: &PortHandle) -> Option<String> {
    (h.medium() == Medium::Pty).then(|| h.pty().display().to_string())
}

/// Readiness on stdout: a table, or JSON lines ending in `{"ready": N}`.
fn ready(
    handles: &[PortHandle],
    models: &[&str],
    endpoints: &[Vec<(EndpointKind, SocketAddr)>],
    captures: &Captures,
    json: bool,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let link = |h: &PortHandle| h.link().map(Path::display).map(|d| d.to_string());
    let address = |i: usize, kind: EndpointKind| {
        endpoints
            .get(i)
            .and_then(|e| e.iter().find(|(k, _)| *k == kind))
            .map(|(_, a)| a.to_string())
    };
    if json {
        for (i, (h, model)) in handles.iter().zip(models).enumerate() {
            let port = ReadyPort {
                name: h.name(),
                model,
                pty: pty_of(h),
                link: link(h),
                capture: captures.path(i).map(|p| p.display().to_string()),
                tcp: address(i, EndpointKind::Tcp),
                rfc2217: address(i, EndpointKind::Rfc2217),
                modbus_tcp: address(i, EndpointKind::ModbusTcp),
                rtu_tcp: address(i, EndpointKind::RtuTcp),
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
            &mut handles.iter().map(|h| pty_of(h).map_or(1, |p| p.len())),
            "PTY",
        );
        // The network column only when some port has an endpoint.
        let networked = endpoints.iter().any(|e| !e.is_empty());
        let network = |i: usize| {
            endpoints.get(i).map_or_else(String::new, |e| {
                e.iter()
                    .map(|(kind, addr)| format!("{} {addr}", kind.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        };
        let links: Vec<String> = handles
            .iter()
            .map(|h| link(h).unwrap_or_else(|| "-".into()))
            .collect();
        let link_w = column(&mut links.iter().map(String::len), "LINK");
        if networked {
            writeln!(
                out,
                "{:<name_w$}  {:<model_w$}  {:<pty_w$}  {:<link_w$}  NETWORK",
                "NAME", "MODEL", "PTY", "LINK"
            )?;
        } else {
            writeln!(
                out,
                "{:<name_w$}  {:<model_w$}  {:<pty_w$}  LINK",
                "NAME", "MODEL", "PTY"
            )?;
        }
        for (i, ((h, model), link)) in handles.iter().zip(models).zip(&links).enumerate() {
            if networked {
                writeln!(
                    out,
                    "{:<name_w$}  {model:<model_w$}  {:<pty_w$}  {link:<link_w$}  {}",
                    h.name(),
                    pty_of(h).unwrap_or_else(|| "-".into()),
                    network(i)
                )?;
            } else {
                writeln!(
                    out,
                    "{:<name_w$}  {model:<model_w$}  {:<pty_w$}  {link}",
                    h.name(),
                    pty_of(h).unwrap_or_else(|| "-".into()),
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
