"""The exceptions the package raises."""

from __future__ import annotations


class SerialtwinError(Exception):
    """Anything that went wrong driving the `serialtwin` binary."""


class ConfigError(SerialtwinError):
    """The binary refused the config: `location` says where, `reason` why.

    `location` is `FILE:LINE:COLUMN` for a config file, `<string>:LINE:COLUMN` for TOML text,
    and a key path such as `device[0].script.rule[1].reply` for a dict.
    """

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


class ControlError(SerialtwinError):
    """A control command failed; the message is the CLI's (`serialtwin ctl`)."""


class ProcessDied(SerialtwinError):
    """The `serialtwin run` process is gone while the fleet was still in use.

    `signal` is the signal that ended it (or None), `returncode` its exit status as
    `subprocess` reports it, `stderr_tail` its last lines of stderr.
    """

    def __init__(self, pid: int, returncode: int, stderr_tail: str) -> None:
        self.pid = pid
        self.returncode = returncode
        self.signal: int | None = -returncode if returncode < 0 else None
        self.stderr_tail = stderr_tail
        if self.signal is not None:
            import signal as _signal

            try:
                how = f"killed by {_signal.Signals(self.signal).name}"
            except ValueError:
                how = f"killed by signal {self.signal}"
        else:
            how = f"exited with status {returncode}"
        super().__init__(f"serialtwin (pid {pid}) {how}; its stderr ended with:\n{stderr_tail}")
