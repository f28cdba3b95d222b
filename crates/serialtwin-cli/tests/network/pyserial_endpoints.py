# pyserial 3.5 (and minimalmodbus 2.1.1, pymodbus 3.16.1) against serialtwin's network
# endpoints, served by network.rs: argv = serialtwin binary, control socket, PI30 raw TCP
# address, PI30 RFC 2217 address, Modbus raw TCP address, Modbus RFC 2217 address, PI30 port
# name. Every check runs whatever the one before did; the results are one JSON list on the
# last line. Timeouts are safety nets, never what a check measures.
import json
import socket
import subprocess
import sys
import time

import minimalmodbus
import serial
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient

BIN, CONTROL, PI_TCP, PI_RFC, MB_TCP, MB_RFC, PI_NAME = sys.argv[1:8]
QPI = b"QPI\xbe\xac\r"
QPI_REPLY = b"(PI30\x9a\x0b\r"
QPIGS = b"QPIGS\xb7\xa9\r"
PATIENCE = 5.0
results = []


def check(name):
    def run(f):
        try:
            detail = f()
            results.append({"name": name, "ok": True, "detail": detail or ""})
        except Exception as e:  # every check runs, each failure is reported
            results.append({"name": name, "ok": False, "detail": f"{type(e).__name__}: {e}"})
        return f
    return run


def ctl(*words):
    out = subprocess.run([BIN, "ctl", "--socket", CONTROL, *words], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"ctl {' '.join(words)}: {out.stdout}{out.stderr}")


def until(what, predicate):
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {PATIENCE} s: {what}")
        time.sleep(0.01)


def expect(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


@check("raw tcp: QPI answered through socket://")
def _():
    s = serial.serial_for_url(f"socket://{PI_TCP}", timeout=PATIENCE)
    try:
        s.write(QPI)
        expect(s.read_until(b"\r"), QPI_REPLY, "reply")
    finally:
        s.close()


@check("raw tcp: a second client is refused, the first keeps the port")
def _():
    first = serial.serial_for_url(f"socket://{PI_TCP}", timeout=PATIENCE)
    try:
        # The first is being served once it is answered.
        first.write(QPI)
        expect(first.read_until(b"\r"), QPI_REPLY, "first client's reply")
        host, port = PI_TCP.rsplit(":", 1)
        second = socket.create_connection((host.strip("[]"), int(port)), timeout=PATIENCE)
        said = b""
        while True:
            chunk = second.recv(100)
            if not chunk:
                break
            said += chunk
        second.close()
        expect(said, b"Port already in use\r\n", "the second client hears")
        first.write(QPI)
        expect(first.read_until(b"\r"), QPI_REPLY, "first client's reply after")
    finally:
        first.close()


rfc = None


@check("rfc2217: pyserial opens rfc2217:// and is answered")
def _():
    global rfc
    rfc = serial.serial_for_url(f"rfc2217://{PI_RFC}", baudrate=2400, timeout=PATIENCE)
    rfc.write(QPI)
    expect(rfc.read_until(b"\r"), QPI_REPLY, "reply")


@check("rfc2217: the device's modem lines, and ctl line changing them")
def _():
    expect((rfc.cts, rfc.dsr, rfc.ri, rfc.cd), (True, True, False, True), "lines at open")
    ctl("line", PI_NAME, "cts", "off")
    ctl("line", PI_NAME, "ri", "on")
    until("cts off and ri on", lambda: (rfc.cts, rfc.ri) == (False, True))
    ctl("line", PI_NAME, "dcd", "off")
    until("cd off", lambda: not rfc.cd)
    ctl("line", PI_NAME, "cts", "on")
    ctl("line", PI_NAME, "ri", "off")
    ctl("line", PI_NAME, "dcd", "on")
    until("lines back", lambda: (rfc.cts, rfc.dsr, rfc.ri, rfc.cd) == (True, True, False, True))


@check("rfc2217: settings, DTR, RTS and break reach the device (trace)")
def _():
    rfc.parity = serial.PARITY_EVEN
    rfc.dtr = False
    rfc.rts = False
    rfc.send_break(0.05)
    rfc.rts = True
    rfc.parity = serial.PARITY_NONE
    rfc.dtr = True
    rfc.write(QPI)
    expect(rfc.read_until(b"\r"), QPI_REPLY, "reply after")


@check("rfc2217: another baud garbles the answer, the device's own restores it")
def _():
    rfc.baudrate = 9600
    rfc.write(QPI)
    time.sleep(0.5)
    garbled = rfc.read(rfc.in_waiting or 1)
    if garbled.startswith(b"(PI30"):
        raise AssertionError(f"answered plainly at 9600: {garbled!r}")
    rfc.baudrate = 2400
    rfc.reset_input_buffer()
    rfc.write(QPI)
    expect(rfc.read_until(b"\r"), QPI_REPLY, "reply at 2400")


@check("rfc2217: PURGE 1 during a paced QPIGS leaves nothing of it after the answer")
def _():
    rfc.write(QPIGS)
    # 110 bytes at 2400 baud take 458 ms on the wire: purge while they go.
    first = rfc.read(10)
    if len(first) != 10 or not first.startswith(b"("):
        raise AssertionError(f"the reply did not start: {first!r}")
    rfc.reset_input_buffer()  # PURGE-DATA 1, waits for the answer
    old = rfc.timeout
    rfc.timeout = 1.0
    after = rfc.read(200)
    rfc.timeout = old
    expect(after, b"", "bytes after the purge answer")
    rfc.write(QPI)
    expect(rfc.read_until(b"\r"), QPI_REPLY, "the next request is answered")


@check("rfc2217: 0xFF both ways, Modbus through minimalmodbus")
def _():
    port = serial.serial_for_url(f"rfc2217://{MB_RFC}", baudrate=19200, timeout=PATIENCE)
    try:
        inst = minimalmodbus.Instrument(port, 1)
        inst.serial.timeout = PATIENCE
        values = [0xFFFF, 0x00FF, 0xFF00, 0xFFFF]
        inst.write_registers(10, values)
        expect(inst.read_registers(10, 4), values, "registers read back")
        inst.write_bit(0, 1)  # FF 00 on the wire
        expect(inst.read_bit(0, functioncode=1), 1, "coil read back")
    finally:
        port.close()


@check("raw tcp: 0xFF as it is, Modbus through pymodbus on socket://")
def _():
    c = ModbusSerialClient(f"socket://{MB_TCP}", framer=FramerType.RTU, timeout=PATIENCE, retries=0)
    if not c.connect():
        raise AssertionError("pymodbus cannot connect")
    try:
        values = [0xFFFF, 0xFFFE, 0x7FFF, 0xFFFF]
        rr = c.write_registers(20, values, device_id=1)
        if rr.isError():
            raise AssertionError(f"write: {rr!r}")
        rr = c.read_holding_registers(20, count=4, device_id=1)
        if rr.isError():
            raise AssertionError(f"read: {rr!r}")
        expect(list(rr.registers), values, "registers read back")
    finally:
        c.close()


if rfc is not None:
    rfc.close()
print(json.dumps(results))
