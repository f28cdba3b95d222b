"""mypy --strict over the installed package and its examples."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile


def test_mypy_strict_is_clean() -> None:
    examples = pathlib.Path(__file__).resolve().parent.parent / "examples"
    assert (examples / "test_qpgs.py").exists(), examples
    with tempfile.TemporaryDirectory(prefix="serialtwin-mypy-") as cache:
        # mypy takes a package or files, not both in one run.
        for target in (["-p", "serialtwin"], [str(examples)]):
            out = subprocess.run(
                [sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache, *target],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert out.returncode == 0, out.stdout + out.stderr
            assert "Success" in out.stdout, out.stdout
