"""The pytest plugin itself: reports, options, the session fleet's reset."""

from __future__ import annotations

import os

import pytest
import serial

from serialtwin import Fleet, Port

FAILING = '''
import serial

QPGS = {"device": [{"name": "qpgs", "model": "scripted", "script": {
    "default": "I dont understand", "rule": [{"request": "QPGS", "reply": "correct result"}]}}]}


def test_fails(serialtwin_fleet):
    port = serialtwin_fleet(QPGS).port("qpgs")
    with serial.Serial(port.path, 2400, timeout=2) as s:
        s.write(b"QPGS\\r\\n")
        assert s.readline() == b"something else\\r\\n"
'''


def test_a_failing_tests_report_shows_the_ports_recent_frames(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_inner=FAILING)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--serialtwin-keep")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "serialtwin port qpgs: recent frames" in out, out
    assert "rx QPGS" in out and "tx correct result\\r\\n" in out, out
    # --serialtwin-keep lists the fleet's directory and leaves it (gone once looked at).
    kept = out.split("serialtwin: fleet directories kept", 1)[1].split()[1]
    assert os.path.isdir(kept), out
    assert os.path.exists(os.path.join(kept, "fleet.toml"))
    assert not os.path.lexists(os.path.join(kept, "qpgs")), "stopped: no link"
    import shutil

    shutil.rmtree(kept)


def test_serialtwin_bin_option_is_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
def test_one(serialtwin_fleet):
    serialtwin_fleet('[[device]]\\nname = "x"\\nmodel = "scripted"\\n')
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--serialtwin-bin=/bin/true")
    result.assert_outcomes(errors=0, failed=1)
    assert "/bin/true" in result.stdout.str()


def test_the_session_fleet_restarts_only_when_something_changed(
    pi30_port: Port, serialtwin_session: Fleet
) -> None:
    pid = serialtwin_session.pid
    serialtwin_session.reset()
    assert serialtwin_session.pid == pid, "nothing happened: no restart"
    with serial.Serial(pi30_port.path, 2400, timeout=2) as s:
        s.write(b"QPI\xbe\xac\r")
        assert s.read_until(b"\r").startswith(b"(PI30")
    serialtwin_session.reset()
    assert serialtwin_session.pid != pid, "a device heard a request: restarted"
    assert serialtwin_session.frames("inverter") == []
