"""`Fleet`: one `serialtwin run` process serving a config, driven from Python."""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any, Union

from . import _toml
from ._binary import check_version, find_serialtwin_bin
from ._errors import ConfigError, ControlError, ProcessDied, SerialtwinError

#: A config: a TOML file (a path), TOML text, or a dict of the same shape.
Config = Union[str, "os.PathLike[str]", Mapping[str, Any]]

#: Substrings mppsolar reads meaning into (in the whole lower-cased path): a fleet's
#: directory contains none of them, or mppsolar would not open its ports.
_PATH_TRAPS = ("test", "esp", "daly", "hidraw", "mqtt", "mppsolar", ":")
#: A Unix socket's path holds at most 107 bytes on Linux (108 with the NUL).
SOCKET_PATH_MAX = 107
_SOCKET = "control.sock"
_ERROR_AT = re.compile(r"^(?P<file>.*?):(?P<line>\d+):(?P<column>\d+): (?P<reason>.*)$", re.S)

_versions_checked: set[str] = set()


def fleet_directory() -> str:
    """A new directory for one fleet's config, links, control socket and captures:
    `tempfile.mkdtemp(prefix="serialtwin-")`, whose path contains nothing mppsolar misreads and
    leaves room for the socket's name (else under `/tmp`)."""
    base = tempfile.gettempdir()
    probe = os.path.join(base, "serialtwin-xxxxxxxx", _SOCKET)
    if len(os.fsencode(probe)) > SOCKET_PATH_MAX or any(t in base.lower() for t in _PATH_TRAPS):
        base = "/tmp"
    for _ in range(100):
        made = tempfile.mkdtemp(prefix="serialtwin-", dir=base)
        if not any(t in os.path.basename(made).lower() for t in _PATH_TRAPS):
            return made
        os.rmdir(made)
    raise SerialtwinError(f"cannot make a fleet directory in {base}")


@dataclass(frozen=True)
class Frame:
    """One record of what a port saw: a frame, or a line event.

    `kind` is the capture record's type (`frame`, `open`, `close`, `settings`, `flush`,
    `flow`, `error`; docs/capture.md); a frame has `dir` (`rx`: the client's request as the
    device got it, `tx`: a reply as it went on the wire) and its bytes in `data`.
    """

    kind: str
    t: float
    dir: str | None = None
    data: bytes = b""
    text: str | None = None
    record: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Frame:
        """A frame from one capture record (a JSON object)."""
        hexed = record.get("hex")
        return cls(
            kind=str(record.get("type")),
            t=float(record.get("t", 0.0)),
            dir=record.get("dir"),
            data=bytes.fromhex(hexed) if isinstance(hexed, str) else b"",
            text=record.get("text"),
            record=record,
        )

    def __str__(self) -> str:
        if self.kind == "frame":
            return f"{self.t:11.6f} {self.dir} {self.text}"
        rest = {k: v for k, v in self.record.items() if k not in ("type", "t")}
        extra = " ".join(f"{k}={v}" for k, v in rest.items())
        return f"{self.t:11.6f} -- {self.kind}{' ' + extra if extra else ''}"


class _FrameLog:
    """A port's capture file, read as it grows; only the last `keep` records held."""

    def __init__(self, path: str, keep: int) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self._records: collections.deque[tuple[int, Frame]] = collections.deque(maxlen=keep)
        self._seq = 0
        self._mark = 0

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                while chunk := f.read(1 << 20):
                    self._offset += len(chunk)
                    *lines, self._partial = (self._partial + chunk).split(b"\n")
                    for line in lines:
                        self._take(line)
        except FileNotFoundError:
            pass

    def _take(self, line: bytes) -> None:
        if not line.strip():
            return
        record = json.loads(line)
        if not isinstance(record, dict) or record.get("type") == "header":
            return
        self._records.append((self._seq, Frame.from_record(record)))
        self._seq += 1

    def since_mark(self) -> list[Frame]:
        self.poll()
        return [f for seq, f in self._records if seq >= self._mark]

    def mark(self) -> None:
        self.poll()
        self._mark = self._seq


@dataclass(frozen=True)
class Port:
    """A port of a running fleet, as `serialtwin run --json` announced it."""

    name: str
    model: str
    #: The pseudo-terminal (`/dev/pts/N`); None for a network-only port.
    pty: str | None
    #: The symlink clients open (absolute), if the config gave one.
    link: str | None
    #: Network endpoints by kind (`tcp`, `rfc2217`, `modbus_tcp`, `rtu_tcp`): `host:port`.
    endpoints: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """What a serial client opens: the link, else the pty."""
        if self.link is not None:
            return self.link
        if self.pty is not None:
            return self.pty
        raise SerialtwinError(f"port {self.name} has no pty (network only): use .url()")

    def address(self, kind: str = "tcp") -> tuple[str, int]:
        """An endpoint's host (without IPv6 brackets) and port number."""
        try:
            addr = self.endpoints[kind]
        except KeyError:
            raise SerialtwinError(
                f"port {self.name} has no {kind} endpoint (it has: "
                f"{', '.join(self.endpoints) or 'none'}; see [device.network])"
            ) from None
        host, _, number = addr.rpartition(":")
        return host.strip("[]"), int(number)

    def url(self, kind: str = "rfc2217") -> str:
        """An endpoint as a URL: `rfc2217://…` and `socket://…` (tcp) as pyserial's
        `serial_for_url` takes them, `tcp://…` for `modbus_tcp` and `rtu_tcp`."""
        self.address(kind)
        scheme = {"rfc2217": "rfc2217", "tcp": "socket"}.get(kind, "tcp")
        return f"{scheme}://{self.endpoints[kind]}"


def _abandon(proc: subprocess.Popen[bytes], directory: str, keep: bool) -> None:
    """A fleet dropped or left at exit without `close()`: stop its process (SIGINT, a kill
    after 5 s) and remove its directory."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _error_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.startswith("error: "):
            return line[len("error: ") :]
    return text.strip().splitlines()[-1] if text.strip() else ""


class Fleet:
    """A `serialtwin run` of `config`, started by `with Fleet(config) as fleet:` (or
    `start()`) and stopped at the end (SIGINT, then a kill after `grace` seconds).

    `config` is a TOML file (a `pathlib.Path`, or a `str` with no newline and no `=`), TOML
    text, or a dict of the same shape. The process runs in a directory of its own
    (`fleet_directory()`, also its working directory and `TMPDIR`): relative `link`s land
    there, the control socket is there, and the directory is removed at the end (unless
    `keep`). It exits by itself when this process dies (its stdin is a pipe from here).
    """

    def __init__(
        self,
        config: Config,
        *,
        bin: str | None = None,
        ready_timeout: float = 30.0,
        grace: float = 5.0,
        keep: bool = False,
        frames_kept: int = 1000,
        args: Sequence[str] = (),
    ) -> None:
        self._config = config
        self._bin = bin
        self.ready_timeout = ready_timeout
        self.grace = grace
        self.keep = keep
        self.frames_kept = frames_kept
        self._args = list(args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._dir: str | None = None
        self._config_path = ""
        self._written: _toml.Written | None = None
        self._generation = 0
        self._ports: dict[str, Port] = {}
        self._logs: dict[str, _FrameLog] = {}
        self._dirty = False
        self._death_told = False
        self._finalizer: weakref.finalize[..., Fleet] | None = None

    # ----------------------------------------------------------------------------- life
    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(raise_died=exc_type is None)

    @property
    def bin(self) -> str:
        """The binary this fleet runs."""
        if self._bin is None:
            self._bin = find_serialtwin_bin()
        return self._bin

    @property
    def directory(self) -> str:
        """The fleet's own directory (links, socket, captures, stderr)."""
        if self._dir is None:
            raise SerialtwinError("the fleet is not started")
        return self._dir

    @property
    def socket(self) -> str:
        """The control socket."""
        return os.path.join(self.directory, _SOCKET)

    @property
    def pid(self) -> int:
        """The `serialtwin run` process id."""
        return self._running().pid

    @property
    def ports(self) -> Mapping[str, Port]:
        """Every port by name."""
        return dict(self._ports)

    def start(self) -> Fleet:
        """Start the process and wait for its readiness (`--json`'s `{"ready": N}`).

        Raises:
            ConfigError: the binary refused the config (where, and why).
            SerialtwinError: it could not start or was not ready within `ready_timeout`.
        """
        if self._proc is not None:
            return self
        binary = self.bin
        if binary not in _versions_checked:
            check_version(binary)
            _versions_checked.add(binary)
        self._dir = fleet_directory()
        try:
            self._write_config()
            self._spawn()
        except BaseException:
            self._remove_dir()
            raise
        return self

    def _write_config(self) -> None:
        config = self._config
        if isinstance(config, Mapping):
            self._written = _toml.dumps(config)
            text = self._written.text
        elif isinstance(config, str) and ("\n" in config or "=" in config):
            text = config
        else:
            path = os.fspath(config)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"config file {path} not found")
            self._config_path = os.path.abspath(path)
            return
        self._config_path = os.path.join(self.directory, "fleet.toml")
        with open(self._config_path, "w", encoding="utf-8") as f:
            f.write(text)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Anything defaulted (none is: --control is given) in the fleet's own directory.
        env["TMPDIR"] = self.directory
        env["XDG_RUNTIME_DIR"] = ""
        return env

    def _spawn(self) -> None:
        self._generation += 1
        gen = self._generation
        stderr_path = os.path.join(self.directory, f"stderr-{gen}.log")
        capture = os.path.join(self.directory, f"capture-{gen}-{{name}}.jsonl")
        cmd = [
            self.bin,
            "run",
            self._config_path,
            "--json",
            "--control",
            self.socket,
            "--capture",
            capture,
            "--exit-with-stdin",
            *self._args,
        ]
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=self.directory,
                env=self._env(),
            )
        self._proc = proc
        # Stopped and tidied even if `close()` is never called (at exit, or when collected).
        self._finalizer = weakref.finalize(self, _abandon, proc, self.directory, self.keep)
        self._stderr_path = stderr_path
        self._death_told = False
        self._dirty = False
        lines: queue.Queue[bytes | None] = queue.Queue()
        assert proc.stdout is not None
        out: IO[bytes] = proc.stdout

        def read() -> None:
            for line in out:
                lines.put(line)
            lines.put(None)

        self._reader = threading.Thread(target=read, name=f"serialtwin-{proc.pid}", daemon=True)
        self._reader.start()
        announced: list[Mapping[str, Any]] = []
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._stop_process()
                raise SerialtwinError(
                    f"serialtwin was not ready within {self.ready_timeout} s; stderr:\n"
                    + _tail(stderr_path)
                ) from None
            if line is None:
                self._failed_start()
            else:
                value = json.loads(line)
                if "ready" in value:
                    break
                announced.append(value)
        self._ports = {}
        self._logs = {}
        for p in announced:
            link = p.get("link")
            name = str(p["name"])
            endpoints = {
                k: str(p[k]) for k in ("tcp", "rfc2217", "modbus_tcp", "rtu_tcp") if p.get(k)
            }
            self._ports[name] = Port(
                name=name,
                model=str(p["model"]),
                pty=p.get("pty"),
                link=os.path.join(self.directory, link) if link else None,
                endpoints=endpoints,
            )
            if p.get("capture"):
                self._logs[name] = _FrameLog(
                    os.path.join(self.directory, str(p["capture"])), self.frames_kept
                )

    def _failed_start(self) -> None:
        proc = self._proc
        assert proc is not None
        try:
            code = proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            self._stop_process()
            code = proc.returncode
        self._finish_process()
        stderr = _tail(self._stderr_path, 200)
        message = _error_line(stderr)
        if code == 2:
            raise self._config_error(message)
        if code < 0:
            self._death_told = True
            raise ProcessDied(proc.pid, code, _tail(self._stderr_path))
        raise SerialtwinError(f"serialtwin run failed (exit status {code}): {message}")

    def _config_error(self, message: str) -> ConfigError:
        at = _ERROR_AT.match(message)
        if at is None or at["file"] != self._config_path:
            return ConfigError(self._describe_config(), message)
        line, column, reason = int(at["line"]), int(at["column"]), at["reason"]
        if self._written is not None:
            return ConfigError(self._written.path_at(line, column), reason)
        if not isinstance(self._config, (str, os.PathLike)) or self._is_text():
            return ConfigError(f"<string>:{line}:{column}", reason)
        return ConfigError(f"{self._config_path}:{line}:{column}", reason)

    def _is_text(self) -> bool:
        c = self._config
        return isinstance(c, str) and ("\n" in c or "=" in c)

    def _describe_config(self) -> str:
        if self._written is not None:
            return "(config)"
        return "<string>" if self._is_text() else self._config_path

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise SerialtwinError("the fleet is not running")
        self._check_alive()
        return self._proc

    def _check_alive(self) -> None:
        proc = self._proc
        if proc is None:
            raise SerialtwinError("the fleet is not running")
        code = proc.poll()
        if code is not None:
            self._death_told = True
            raise ProcessDied(proc.pid, code, _tail(self._stderr_path))

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self._proc is not None and self._proc.poll() is None

    def _stop_process(self) -> int:
        """SIGINT, then SIGKILL after `grace`; the exit status."""
        proc = self._proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def _finish_process(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        if self._reader is not None:
            self._reader.join(timeout=self.grace)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._proc = None
        self._reader = None

    def _remove_dir(self) -> None:
        if self._dir is not None and not self.keep:
            shutil.rmtree(self._dir, ignore_errors=True)

    def close(self, *, raise_died: bool = True) -> None:
        """Stop the process (SIGINT, a kill after `grace`) and remove the directory.

        Raises:
            ProcessDied: it had died and no call said so yet (with `raise_died`).
            SerialtwinError: it did not stop cleanly after SIGINT.
        """
        proc = self._proc
        if proc is None:
            return
        died = proc.poll() is not None
        code = self._stop_process()
        tail = _tail(self._stderr_path)
        self._finish_process()
        self._remove_dir()
        if not raise_died:
            return
        if died and code != 0 and not self._death_told:
            raise ProcessDied(proc.pid, code, tail)
        if not died and code != 0:
            raise SerialtwinError(f"serialtwin did not stop cleanly (status {code}):\n{tail}")

    def restart(self) -> None:
        """Stop the process and start it again on the same config and directory: every device
        as new (its ptys change, its links do not)."""
        if self._proc is not None:
            self._stop_process()
            self._finish_process()
        for log in self._logs.values():
            try:
                os.remove(log.path)
            except FileNotFoundError:
                pass
        self._spawn()

    def reset(self) -> None:
        """Make the fleet as new for the next test: restarted if it died, if a control command
        changed it, or if any device was sent a request since the last reset (its state may
        have moved); else only the frames are forgotten."""
        if (
            self._proc is None
            or self._proc.poll() is not None
            or self._dirty
            or any(f.kind == "frame" and f.dir == "rx" for log in self._logs.values()
                   for f in log.since_mark())
        ):
            self.restart()
        for log in self._logs.values():
            log.mark()

    # -------------------------------------------------------------------------- ports
    def port(self, name: str) -> Port:
        """The port called `name`."""
        try:
            return self._ports[name]
        except KeyError:
            raise KeyError(
                f"no port {name!r} in this fleet (ports: {', '.join(self._ports) or 'none'})"
            ) from None

    # ------------------------------------------------------------------------ control
    def ctl(self, *words: str, timeout: float = 5.0) -> str:
        """Send one control command (`serialtwin ctl` syntax); what it printed.

        Raises:
            ControlError: the command failed (the CLI's message).
            ProcessDied: the process is gone.
        """
        self._running()
        result = subprocess.run(
            [self.bin, "ctl", "--socket", self.socket, "--timeout", f"{round(timeout * 1000)}ms",
             *words],
            capture_output=True,
            text=True,
            timeout=timeout + 30,
            env=self._env(),
        )
        if result.returncode != 0:
            proc = self._proc
            assert proc is not None
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            self._check_alive()
            raise ControlError(_error_line(result.stderr) or f"ctl failed: {result.stderr}")
        return result.stdout.rstrip("\n")

    def set(self, port: str, key: str, value: object) -> str:
        """Set a device value (`ctl set`); True/False are `on`/`off`."""
        self._dirty = True
        text = ("on" if value else "off") if isinstance(value, bool) else str(value)
        return self.ctl("set", port, key, text)

    def fault(
        self,
        port: str,
        kind: str,
        *,
        next: int | None = None,
        p: float | None = None,
        cmd: str | None = None,
    ) -> str:
        """Add a fault rule (`ctl fault`): `kind` as `drop`, `corrupt`, `break-crc`,
        `delay:200`...; for the `next` replies, or each with probability `p`; only replies to
        requests starting with `cmd`."""
        self._dirty = True
        words = ["fault", port, kind]
        if next is not None:
            words.append(f"next={next}")
        if p is not None:
            words.append(f"p={p}")
        if cmd is not None:
            words.append(f"cmd={cmd}")
        return self.ctl(*words)

    def clear(self, port: str) -> str:
        """Remove every fault rule of `port`."""
        return self.ctl("clear", port)

    def unplug(self, port: str, seconds: float) -> str:
        """Pull the port's plug for `seconds` (`ctl unplug`)."""
        self._dirty = True
        return self.ctl("unplug", port, f"{max(1, round(seconds * 1000))}ms")

    def send(self, port: str, frame: str | bytes) -> str:
        """Send `frame` as if the device had (`ctl send`): bytes are escaped as `\\xHH` where
        needed; a str is passed as it is (its `\\r`, `\\xHH` escapes are the CLI's)."""
        if isinstance(frame, bytes):
            frame = "".join(
                chr(b) if 0x21 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in frame
            )
        return self.ctl("send", port, frame)

    # ------------------------------------------------------------------------- frames
    def _log(self, port: str) -> _FrameLog:
        self.port(port)
        return self._logs[port]

    def frames(self, port: str) -> list[Frame]:
        """What `port` saw since the fleet started or was reset: frames both ways and line
        events (the last `frames_kept` of them), from `run --capture`."""
        return self._log(port).since_mark()

    def received(self, port: str) -> list[bytes]:
        """The requests `port`'s device received (as its framer cut them)."""
        return [f.data for f in self.frames(port) if f.kind == "frame" and f.dir == "rx"]

    def wait_for(
        self,
        port: str,
        match: bytes | Callable[[Frame], bool],
        *,
        dir: str = "rx",
        timeout: float = 5.0,
    ) -> Frame:
        """The first frame of `port` in direction `dir` whose bytes start with `match` (or for
        which `match(frame)` is true), waiting up to `timeout` s for it to be recorded.

        Raises:
            TimeoutError: none came; the message lists the frames seen.
        """
        deadline = time.monotonic() + timeout
        while True:
            for f in self.frames(port):
                if f.kind != "frame" or f.dir != dir:
                    continue
                if callable(match) and match(f) or isinstance(match, bytes) and f.data.startswith(match):
                    return f
            if time.monotonic() >= deadline:
                seen = "\n".join(str(f) for f in self.frames(port)[-20:])
                raise TimeoutError(f"port {port}: no {dir} frame {match!r}; seen:\n{seen}")
            self._check_alive()
            time.sleep(0.01)

    def recent(self, lines: int = 20) -> Iterator[tuple[str, str]]:
        """Each port's last `lines` records as text (for reports)."""
        for name, log in self._logs.items():
            frames = log.since_mark()[-lines:]
            yield name, "\n".join(str(f) for f in frames) if frames else "(nothing)"
