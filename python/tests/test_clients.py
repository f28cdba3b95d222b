"""The ready-made fixtures with real clients: mppsolar (`--porttype serial`), pymodbus,
pyserial over a pty and over the network endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig

import serial
from pymodbus.client import ModbusSerialClient

from serialtwin import Fleet, ModbusBus, Port


def mppsolar(fleet: Fleet, port: Port, command: str, protocol: str = "PI30") -> dict[str, object]:
    """mppsolar's JSON answer to `command`, which the device itself must have received: with
    a path it misreads, mppsolar answers from canned data without opening the port."""
    before = len(fleet.received(port.name))
    exe = os.path.join(sysconfig.get_path("scripts"), "mppsolar")
    out = subprocess.run(
        [exe, "-p", port.path, "--porttype", "serial", "-P", protocol, "-o", "json", "-c",
         command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == 1, out.stdout
    answer = answers[0]
    assert isinstance(answer, dict)
    for key in ("error", "ERROR", "validity_check"):
        assert key not in answer, answer
    # The record follows the frame by a moment.
    fleet.wait_for(port.name, lambda f: len(fleet.received(port.name)) > before)
    new = [
        f.data
        for f in fleet.frames(port.name)
        if f.kind == "frame" and f.dir == "rx"
    ][before:]
    assert len(new) == 1 and new[0].startswith(command.encode()), fleet.frames(port.name)
    return answer


def test_mppsolar_reads_qpigs(pi30_port: Port, serialtwin_session: Fleet) -> None:
    answer = mppsolar(serialtwin_session, pi30_port, "QPIGS")
    assert answer["_command"] == "QPIGS"
    assert "ac_input_voltage" in answer, answer
    request = serialtwin_session.received("inverter")[0]
    assert request.startswith(b"QPIGS") and len(request) == 7, "a PI30 request keeps its CRC"


def test_mppsolar_follows_the_grid(pi30_port: Port, serialtwin_session: Fleet) -> None:
    assert mppsolar(serialtwin_session, pi30_port, "QMOD")["device_mode"] == "Line"
    serialtwin_session.set("inverter", "grid", False)
    assert mppsolar(serialtwin_session, pi30_port, "QMOD")["device_mode"] != "Line"
    assert [r[:4] for r in serialtwin_session.received("inverter")] == [b"QMOD", b"QMOD"]


def test_mppsolar_after_a_reset_sees_the_grid_again(
    pi30_port: Port, serialtwin_session: Fleet
) -> None:
    # Whatever the test before did (grid off), the session fleet was reset.
    assert mppsolar(serialtwin_session, pi30_port, "QMOD")["device_mode"] == "Line"


def test_pymodbus_reads_and_writes_the_bus(modbus_bus: ModbusBus) -> None:
    assert modbus_bus.unit_ids == (1, 2)
    client = ModbusSerialClient(
        port=modbus_bus.path, baudrate=modbus_bus.baudrate, parity="N", timeout=2, retries=0
    )
    assert client.connect()
    try:
        regs = client.read_input_registers(0, count=2, device_id=1).registers
        volts = client.convert_from_registers(regs, data_type=client.DATATYPE.FLOAT32)
        assert volts == 230.5
        assert client.read_holding_registers(0, count=1, device_id=2).registers == [7]
        assert not client.write_register(0, 42, device_id=2).isError()
        assert client.read_holding_registers(0, count=1, device_id=2).registers == [42]
    finally:
        client.close()


def test_pyserial_over_rfc2217_and_raw_tcp(network_port: Port, serialtwin_session: Fleet) -> None:
    with serial.Serial(network_port.path, 2400, timeout=2) as s:
        s.write(b"QPGS\r\n")
        assert s.readline() == b"correct result\r\n"
    for kind in ("rfc2217", "tcp"):
        with serial.serial_for_url(network_port.url(kind), baudrate=2400, timeout=2) as s:
            s.write(b"hello\r\n")
            assert s.readline() == b"I dont understand\r\n"
    assert serialtwin_session.received("qpgs") == [b"QPGS", b"hello", b"hello"]
