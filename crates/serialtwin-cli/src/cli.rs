//! The command line: subcommands, flags, and the examples `--help` shows.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use serialtwin_cli::shard::Shard;

/// Emulated serial devices on real serial ports (ptys with stable symlinks).
#[derive(Debug, Parser)]
#[command(name = "serialtwin", version, propagate_version = true, after_help = MAIN_EXAMPLES)]
pub(crate) struct Cli {
    /// More log output on stderr (-v: debug, -vv: trace). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,
    /// Less log output on stderr (-q: warnings only, -qq: errors only).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub(crate) quiet: u8,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start every device of a config file (or the default PI30 inverter) until a signal.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Validate a config file without starting anything; warn about risky link paths.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// List the device models (or describe one: its table, framings, values, an example).
    #[command(after_help = MODELS_EXAMPLES)]
    Models(ModelsArgs),
    /// Send a control command to a running `serialtwin run` (faults, unplug, device values).
    #[command(after_help = ctl_help())]
    Ctl(CtlArgs),
    /// Put a new pty in front of a real device: pass every byte, trace it, record a capture.
    #[command(after_help = crate::tap::TAP_EXAMPLES)]
    Tap(crate::tap::TapArgs),
    /// Serve an emulated device built from a capture: it answers as the recorded device did.
    #[command(after_help = crate::replay::REPLAY_EXAMPLES)]
    Replay(crate::replay::ReplayArgs),
    /// Turn a capture into a scripted device (a fleet config to run and edit).
    #[command(after_help = crate::learn::LEARN_EXAMPLES)]
    Learn(crate::learn::LearnArgs),
}

/// `serialtwin ctl`.
#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The control socket. Default: the per-user one `serialtwin run` opens.
    #[arg(long)]
    pub(crate) socket: Option<PathBuf>,
    /// Give up if the whole request (connect, send, reply) takes longer, e.g. `500ms`, `10s`.
    #[arg(long, default_value = "5s", value_parser = serialtwin_core::control::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// The command, e.g. `fault inv0 break-crc next=3` (see the examples below).
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// `serialtwin run`.
#[derive(Debug, Args)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "independent command-line switches, one field each as clap derives them"
)]
pub(crate) struct RunArgs {
    /// The fleet config (TOML). Without one: a PI30 inverter at `/tmp/serialtwin/ttyUSB0`
    /// (`$TMPDIR/serialtwin/ttyUSB0` where `TMPDIR` is set).
    pub(crate) config: Option<PathBuf>,
    /// When ready, print one JSON object per port and a final `{"ready": N}` on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Log every frame and line event on stderr (`--trace=hex` shows bytes as hex).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "text")]
    pub(crate) trace: Option<TraceFormat>,
    /// The control socket for `serialtwin ctl`: created 0600 in a directory of yours that is
    /// 0700 (made so if missing; refused if it belongs to someone else or is open to others);
    /// an existing file there is replaced only if it is a stale socket of yours. Default:
    /// `$XDG_RUNTIME_DIR/serialtwin/control.sock` (if that directory is yours and 0700) or
    /// `$TMPDIR/serialtwin-<uid>/control.sock`, skipped with a warning if another instance
    /// has it or the directory is not to be trusted.
    #[arg(long, conflicts_with = "no_control")]
    pub(crate) control: Option<PathBuf>,
    /// Do not open a control socket.
    #[arg(long)]
    pub(crate) no_control: bool,
    /// Record every port's conversation — frames both ways and line events, as `tap` writes
    /// them (docs/capture.md) — for `replay` or `learn`: one new file per port, owner-only
    /// (0600). `{name}` in the path is the port's name (a `/` in it becomes `_`); with
    /// several ports and no `{name}`, `-NAME` goes before the extension (`run.jsonl` ->
    /// `run-inverter.jsonl`). The run stops before serving if anything is at a path (see
    /// --force).
    #[arg(long, value_name = "PATH")]
    pub(crate) capture: Option<PathBuf>,
    /// Replace a --capture file that exists and is a regular file (never a symlink, a FIFO or
    /// a device).
    #[arg(long, requires = "capture")]
    pub(crate) force: bool,
    /// Serve only shard K of N (K from 0): the `[[device]]` tables this replica owns, by
    /// rendezvous hashing of their names, so N processes running one config serve each
    /// device once. Endpoint addresses come from the whole config.
    #[arg(long, value_name = "K/N", requires = "config")]
    pub(crate) shard: Option<Shard>,
    /// Stop, as on SIGTERM, when standard input reaches its end (what is read is ignored):
    /// a parent holding the other end of a pipe takes the fleet with it when it dies, even by
    /// SIGKILL. Off by default: a background job's standard input is often /dev/null.
    #[arg(long)]
    pub(crate) exit_with_stdin: bool,
}

/// `serialtwin models`.
#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// A model to describe in full: its config table, the framings it brings, the values
    /// `ctl set` changes, and an example `[[device]]`.
    pub(crate) name: Option<String>,
}

/// `serialtwin check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The fleet config (TOML) to validate. Without one: the default config.
    pub(crate) config: Option<PathBuf>,
    /// List what shard K of N (K from 0) would serve (see `run --shard`).
    #[arg(long, value_name = "K/N", requires = "config")]
    pub(crate) shard: Option<Shard>,
}

/// How `--trace` shows bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum TraceFormat {
    /// Text, with control bytes escaped (`\r`, `\x00`).
    Text,
    /// Hex bytes.
    Hex,
}

const MAIN_EXAMPLES: &str = "\
Examples:
  serialtwin run                      # a PI30 inverter at /tmp/serialtwin/ttyUSB0
  serialtwin run fleet.toml --trace   # the devices of fleet.toml, showing the traffic
  serialtwin check fleet.toml         # validate without starting anything
  serialtwin models                   # the built-in models
  serialtwin tap --upstream /dev/ttyUSB0 --link /tmp/serialtwin/ttyUSB0 --capture c.jsonl --framing pi30
  serialtwin replay c.jsonl           # a device answering as the recorded one did
  serialtwin learn c.jsonl -o dev.toml  # the same as an editable scripted device";

const RUN_EXAMPLES: &str = "\
Examples:
  serialtwin run
      One PI30 inverter; then: mppsolar -p /tmp/serialtwin/ttyUSB0 -P PI30 -c QPIGS
  serialtwin run examples/qpgs.toml --trace
      A scripted device answering QPGS, every frame logged on stderr
  serialtwin run fleet.toml --json > ports.jsonl
      Scripts wait for the final {\"ready\": N} line
  serialtwin run fleet.toml --shard 1/3
      The second of three replicas of one config: the device tables it owns
  serialtwin run fleet.toml --capture 'captures/{name}.jsonl'
      Records each port's conversation; then: serialtwin replay captures/inverter.jsonl
  serialtwin run fleet.toml --json --exit-with-stdin
      For a harness that starts it with a pipe as stdin: stops when that pipe closes

Stops on SIGINT, SIGTERM or SIGHUP, removing every link it made. Exit status: 0 after a
signal, 1 if the ports cannot be started, 2 for a bad config.";

const CHECK_EXAMPLES: &str = "\
Examples:
  serialtwin check examples/fleet.toml
      Prints the ports it would start; errors as FILE:LINE:COLUMN: REASON (exit status 2)
  serialtwin check
      The same for the default config `serialtwin run` uses without one
  serialtwin check fleet.toml --shard 0/3
      The ports the first of three replicas would serve";

/// `serialtwin ctl --help`: the commands, and what `set` takes for each model.
fn ctl_help() -> String {
    format!(
        "\
Commands (one per call; `*` for every port):
  list                                      the ports and their ptys
  fault <port> <kind> [next=N|p=P] [cmd=PREFIX]
        kinds: drop corrupt break-crc truncate noise duplicate delay:<ms> unplug:<ms>
  clear <port>                              remove every fault rule
  unplug <port> <duration>                  pull the plug; back after e.g. 2s
  set <port> <key> <value>                  a device value; the keys by model:
{}  send <port> <text>                        send a frame as if the device had (\\r \\xHH)
  line <port> <cts|dsr|ri|dcd> <on|off>     a modem line the device drives, seen by
                                            RFC 2217 clients (a pty carries none)
  line <port> break <on|off>                the device holds its line in break: RFC 2217
                                            clients whose line-state mask has 0x10 get
                                            NOTIFY-LINESTATE break-detect (the mask is 0
                                            until a client sets it)

Examples:
  serialtwin ctl fault inverter break-crc next=3 cmd=QPIGS
  serialtwin ctl set inverter grid off
  serialtwin ctl unplug inverter 5s
  serialtwin ctl line inverter cts off
  serialtwin ctl line inverter break on
  serialtwin ctl --socket /run/user/1000/serialtwin/control.sock list",
        crate::models::settable_help()
    )
}

const MODELS_EXAMPLES: &str = "\
Examples:
  serialtwin models
      One line per model: its name (the `model` key of a [[device]]) and what it emulates
  serialtwin models pi30
      Its [device.pi30] table, its framings, the values `ctl set` takes, an example";
