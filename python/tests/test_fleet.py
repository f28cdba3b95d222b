"""The Fleet API against the installed binary: configs, errors, control, frames, teardown."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from importlib import metadata

import pytest
import serial

import serialtwin
from serialtwin import ConfigError, ControlError, Fleet, FleetFactory, ProcessDied

QPGS_TOML = """
[[device]]
name = "qpgs"
model = "scripted"
link = "ttyUSB-qpgs"

[device.script]
default = "I dont understand"
rule = [{ request = "QPGS", reply = "correct result" }]
"""


def ask(path: str, request: bytes) -> bytes:
    with serial.Serial(path, 2400, timeout=2) as s:
        s.write(request)
        return s.readline()


def test_the_binary_is_the_wheels_own() -> None:
    found = serialtwin.find_serialtwin_bin()
    import sysconfig

    assert found == os.path.join(sysconfig.get_path("scripts"), "serialtwin")
    assert serialtwin.check_version(found) == metadata.version("serialtwin")
    # The wheel's RECORD lists it, under the scripts (from site-packages: ../../../bin).
    files = metadata.distribution("serialtwin").files or []
    scripts = [f for f in files if f.name == "serialtwin" and "bin" in f.parts]
    assert scripts, [str(f) for f in files]
    assert os.path.samefile(scripts[0].locate(), found)


def test_another_version_is_refused(tmp_path: pathlib.Path) -> None:
    fake = tmp_path / "serialtwin"
    fake.write_text("#!/bin/sh\necho serialtwin 9.9.9\n")
    fake.chmod(0o755)
    with pytest.raises(serialtwin.SerialtwinError, match="9.9.9"):
        Fleet(QPGS_TOML, bin=str(fake)).start()


def test_toml_text_file_and_dict_serve_alike(tmp_path: pathlib.Path) -> None:
    config_file = tmp_path / "qpgs.toml"
    config_file.write_text(QPGS_TOML)
    import tomllib

    for config in (QPGS_TOML, config_file, str(config_file), tomllib.loads(QPGS_TOML)):
        with Fleet(config) as fleet:
            port = fleet.port("qpgs")
            assert port.link == os.path.join(fleet.directory, "ttyUSB-qpgs")
            assert port.pty is not None and port.pty.startswith("/dev/pts/")
            assert ask(port.path, b"QPGS\r\n") == b"correct result\r\n"
            directory = fleet.directory
        assert not os.path.exists(directory), "the fleet's directory is removed"


def test_a_dict_error_names_its_key_path() -> None:
    config = {
        "device": [
            {
                "name": "qpgs",
                "model": "scripted",
                "script": {
                    "rule": [
                        {"request": "A", "reply": "a"},
                        {"request": "B", "reply": {"hex": "zz"}},
                    ]
                },
            }
        ]
    }
    with pytest.raises(ConfigError) as caught:
        Fleet(config).start()
    assert caught.value.location.startswith("device[0].script.rule[1].reply"), caught.value
    assert "zz" in caught.value.reason or "hex" in caught.value.reason, caught.value


def test_a_file_error_names_file_line_and_column(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[device]]\nname = "x"\nmodel = "scripted"\nframing = "crc"\n')
    with pytest.raises(ConfigError) as caught:
        Fleet(bad).start()
    assert caught.value.location == f"{bad}:4:11", caught.value
    assert "crc" in caught.value.reason
    with pytest.raises(ConfigError) as text:
        Fleet(bad.read_text()).start()
    assert text.value.location == "<string>:4:11", text.value


def test_control_commands_and_their_errors(serialtwin_fleet: FleetFactory) -> None:
    fleet = serialtwin_fleet(QPGS_TOML)
    path = fleet.port("qpgs").path
    assert "qpgs" in fleet.ctl("list")
    # A fault on the next reply: it is dropped, the one after comes.
    fleet.fault("qpgs", "drop", next=1)
    with serial.Serial(path, 2400, timeout=0.5) as s:
        s.write(b"QPGS\r\n")
        assert s.readline() == b""
        s.write(b"QPGS\r\n")
        assert s.readline() == b"correct result\r\n"
        # A frame as if the device had sent it.
        fleet.send("qpgs", b"hello\r\n")
        assert s.readline() == b"hello\r\n"
    with pytest.raises(ControlError, match="nosuchport"):
        fleet.set("nosuchport", "volts", "1")
    with pytest.raises(ControlError) as caught:
        fleet.fault("qpgs", "explode")
    assert "explode" in str(caught.value)
    fleet.unplug("qpgs", 0.2)


def test_frames_show_what_the_port_saw(serialtwin_fleet: FleetFactory) -> None:
    fleet = serialtwin_fleet(QPGS_TOML)
    assert ask(fleet.port("qpgs").path, b"QPIGS\r\n") == b"I dont understand\r\n"
    reply = fleet.wait_for("qpgs", b"I dont", dir="tx")
    assert reply.data == b"I dont understand\r\n"
    kinds = [f.kind for f in until_closed(fleet, "qpgs")]
    assert kinds[0] == "open" and "settings" in kinds, kinds
    assert fleet.received("qpgs") == [b"QPIGS"]
    # Bounded: only the last `frames_kept` records are held.
    small = serialtwin_fleet(QPGS_TOML, frames_kept=3)
    with serial.Serial(small.port("qpgs").path, 2400, timeout=2) as s:
        for _ in range(5):
            s.write(b"QPGS\r\n")
            assert s.readline() == b"correct result\r\n"
    assert [f.kind for f in until_closed(small, "qpgs")] == ["frame", "frame", "close"]


def until_closed(fleet: Fleet, port: str) -> list[serialtwin.Frame]:
    """The port's frames once the client's `close` is recorded (a moment after it closed)."""
    deadline = time.monotonic() + 10
    while not fleet.frames(port) or fleet.frames(port)[-1].kind != "close":
        assert time.monotonic() < deadline, fleet.frames(port)
        time.sleep(0.01)
    return fleet.frames(port)


def test_a_killed_binary_raises_process_died(serialtwin_fleet: FleetFactory) -> None:
    fleet = serialtwin_fleet(QPGS_TOML)
    link = fleet.port("qpgs").path
    os.kill(fleet.pid, signal.SIGKILL)
    with pytest.raises(ProcessDied) as caught:
        # (The signal takes a moment: a call may still find it alive.)
        for _ in range(100):
            fleet.ctl("list")
            time.sleep(0.01)
    assert caught.value.signal == signal.SIGKILL
    assert "control socket ready" in caught.value.stderr_tail or caught.value.stderr_tail
    assert "SIGKILL" in str(caught.value)
    # The killed process could not remove its link; the fleet's directory goes anyway.
    directory = fleet.directory
    fleet.close()
    assert not os.path.lexists(link)
    assert not os.path.exists(directory)


def test_a_killed_test_process_leaves_no_orphan() -> None:
    script = textwrap.dedent(
        """
        import sys, time, serialtwin
        fleet = serialtwin.Fleet(sys.argv[1]).start()
        print(fleet.pid, fleet.directory, fleet.port("qpgs").path, flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, QPGS_TOML], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        pid_text, directory, link = child.stdout.readline().split()
        pid = int(pid_text)
        assert os.path.lexists(link)
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 30
        while _running(pid):
            assert time.monotonic() < deadline, "serialtwin outlived its parent"
            time.sleep(0.02)
        assert not os.path.lexists(link), "it stopped cleanly: link removed"
        assert not os.path.exists(os.path.join(directory, "control.sock"))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_fleet_directories_are_safe_for_mppsolar_and_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = serialtwin.fleet_directory()
    try:
        assert os.path.basename(made).startswith("serialtwin-")
        assert "test" not in made.lower()
        assert len(os.path.join(made, "control.sock").encode()) <= serialtwin.SOCKET_PATH_MAX
    finally:
        os.rmdir(made)
    # A temp dir too long for a socket (or one mppsolar would misread) is not used.
    long_dir = tempfile.mkdtemp(prefix="serialtwin-" + "x" * 100)
    monkeypatch.setattr(tempfile, "tempdir", long_dir)
    made = serialtwin.fleet_directory()
    try:
        assert made.startswith("/tmp/serialtwin-")
        assert len(os.path.join(made, "control.sock").encode()) <= serialtwin.SOCKET_PATH_MAX
    finally:
        os.rmdir(made)
        os.rmdir(long_dir)


def test_ports_describe_their_endpoints(serialtwin_fleet: FleetFactory) -> None:
    config = {
        "device": [
            {
                "name": "net",
                "model": "scripted",
                "script": {"default": "x"},
                "network": {"tcp": "127.0.0.1:0"},
            }
        ]
    }
    port = serialtwin_fleet(config).port("net")
    assert port.pty is None, json.dumps(port.endpoints)
    host, number = port.address("tcp")
    assert host == "127.0.0.1" and number > 0
    assert port.url("tcp") == f"socket://127.0.0.1:{number}"
    with pytest.raises(serialtwin.SerialtwinError, match="rfc2217"):
        port.url("rfc2217")


def test_a_fleet_never_closed_is_tidied_at_exit() -> None:
    script = textwrap.dedent(
        """
        import sys, serialtwin
        fleet = serialtwin.Fleet(sys.argv[1]).start()
        print(fleet.pid, fleet.directory, flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, QPGS_TOML], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    pid_text, directory = out.stdout.split()
    assert not _running(int(pid_text))
    assert not os.path.exists(directory)
