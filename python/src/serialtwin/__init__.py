"""serialtwin: emulated serial devices on real serial ports (ptys), from Python.

The wheel ships the `serialtwin` binary built from the Rust workspace; this module only drives
it (`serialtwin run --json`, `serialtwin ctl`, `run --capture`). See docs/python.md.

    with serialtwin.Fleet("fleet.toml") as fleet:
        path = fleet.port("inverter").path
"""

from __future__ import annotations

from ._binary import check_version, find_serialtwin_bin, package_version
from ._errors import ConfigError, ControlError, ProcessDied, SerialtwinError
from ._fleet import SOCKET_PATH_MAX, Config, Fleet, Frame, Port, fleet_directory
from .fixtures import FleetFactory, ModbusBus, ModelFixture

__all__ = [
    "SOCKET_PATH_MAX",
    "Config",
    "ConfigError",
    "ControlError",
    "Fleet",
    "FleetFactory",
    "Frame",
    "ModbusBus",
    "ModelFixture",
    "Port",
    "ProcessDied",
    "SerialtwinError",
    "__version__",
    "check_version",
    "find_serialtwin_bin",
    "fleet_directory",
    "package_version",
]

try:
    __version__ = package_version()
except Exception:  # pragma: no cover - not installed (a source checkout)
    __version__ = "0+unknown"
