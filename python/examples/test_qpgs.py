"""The original use case as a pytest test: a device answering `QPGS` with `correct result`
and anything else with `I dont understand`, talked to with pyserial."""

import serial

from serialtwin import FleetFactory

QPGS = {"device": [{"name": "qpgs", "model": "scripted", "script": {
    "default": "I dont understand", "rule": [{"request": "QPGS", "reply": "correct result"}]}}]}


def test_qpgs(serialtwin_fleet: FleetFactory) -> None:
    port = serialtwin_fleet(QPGS).port("qpgs")
    with serial.Serial(port.path, 2400, timeout=2) as s:
        s.write(b"QPGS\r\n")
        assert s.readline() == b"correct result\r\n"
        s.write(b"QPIGS\r\n")
        assert s.readline() == b"I dont understand\r\n"
