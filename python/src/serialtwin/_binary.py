"""Finding the `serialtwin` binary the wheel installed, and checking it is this package's."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from importlib import metadata

from ._errors import SerialtwinError

#: The environment variable naming a binary, looked at after the installed ones.
BIN_ENV = "SERIALTWIN_BIN"


def find_serialtwin_bin() -> str:
    """The `serialtwin` binary installed with this package, as ruff's `find_ruff_bin` finds its own.

    In order: the interpreter's scripts directory (a venv's `bin/`), the user scheme's
    (`pip install --user`), `bin/` beside the package root (`pip install --target`), then
    `$SERIALTWIN_BIN`. Never `PATH` alone, never a cargo build.

    Raises:
        FileNotFoundError: none of them holds one.
    """
    exe = "serialtwin" + (sysconfig.get_config_var("EXE") or "")
    scripts = os.path.join(sysconfig.get_path("scripts"), exe)
    if os.path.isfile(scripts):
        return scripts
    if sys.version_info >= (3, 10):
        user_scheme = sysconfig.get_preferred_scheme("user")
    else:  # pragma: no cover - requires-python is 3.10
        user_scheme = "posix_user"
    user = os.path.join(sysconfig.get_path("scripts", scheme=user_scheme), exe)
    if os.path.isfile(user):
        return user
    # `pip install --target DIR` puts the package in DIR and the scripts in DIR/bin.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.path.join(package_root, "bin", exe)
    if os.path.isfile(target):
        return target
    from_env = os.environ.get(BIN_ENV)
    if from_env and os.path.isfile(from_env):
        return from_env
    raise FileNotFoundError(
        f"no serialtwin binary: looked at {scripts}, {user}, {target} and ${BIN_ENV}"
    )


def package_version() -> str:
    """This package's version (the workspace's, as the wheel was built)."""
    return metadata.version("serialtwin")


def check_version(binary: str) -> str:
    """`binary --version`'s version, which must be this package's.

    Raises:
        SerialtwinError: it cannot run, or it is another version.
    """
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise SerialtwinError(f"cannot run {binary} --version: {e}") from e
    words = out.split()
    found = words[1] if len(words) == 2 and words[0] == "serialtwin" else out.strip()
    wanted = package_version()
    if found != wanted:
        raise SerialtwinError(
            f"{binary} is serialtwin {found}, this package is {wanted}: "
            "install the wheel of one build (or point --serialtwin-bin / the bin argument at it)"
        )
    return found
