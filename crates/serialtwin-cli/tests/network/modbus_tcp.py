# pymodbus 3.16.1 against serialtwin's Modbus TCP and RTU-over-TCP endpoints, served by
# modbus_tcp.rs: argv = bus Modbus TCP address, bus RTU-over-TCP address, meter Modbus TCP
# address. The bus has units 1 and 2 on one line; the meter is one device at address 5. Every
# check runs whatever the one before did; the results are one JSON list on the last line.
# Timeouts are safety nets, never what a check measures.
import json
import socket
import struct
import sys

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.pdu import ExceptionResponse

BUS_TCP, BUS_RTU, METER_TCP = sys.argv[1:4]
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


def expect(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def host_port(address):
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def client(address, **kwargs):
    host, port = host_port(address)
    c = ModbusTcpClient(host, port=port, timeout=PATIENCE, retries=0, **kwargs)
    if not c.connect():
        raise AssertionError(f"pymodbus cannot connect to {address}")
    return c


def ok(rr, what):
    if rr.isError():
        raise AssertionError(f"{what}: {rr!r}")
    return rr


@check("modbus tcp gateway: each unit id reaches its unit")
def _():
    c = client(BUS_TCP)
    try:
        expect(ok(c.read_holding_registers(0, count=2, device_id=1), "unit 1").registers, [11, 12], "unit 1")
        expect(ok(c.read_holding_registers(0, count=2, device_id=2), "unit 2").registers, [21, 22], "unit 2")
        ok(c.write_register(1, 0xFFFF, device_id=2), "write unit 2")
        expect(ok(c.read_holding_registers(1, count=1, device_id=2), "unit 2").registers, [0xFFFF], "written")
        expect(ok(c.read_holding_registers(1, count=1, device_id=1), "unit 1").registers, [12], "unit 1 untouched")
    finally:
        c.close()


@check("modbus tcp gateway: an absent unit gets exception 0x0B after the gateway timeout")
def _():
    c = client(BUS_TCP)
    try:
        rr = c.read_holding_registers(0, count=1, device_id=9)
        if not isinstance(rr, ExceptionResponse):
            raise AssertionError(f"want an exception, got {rr!r}")
        expect(rr.exception_code, 0x0B, "exception code")
        expect(rr.function_code, 0x83, "function code")
        # The connection goes on: the next request is answered.
        expect(ok(c.read_holding_registers(0, count=1, device_id=1), "after").registers, [11], "after")
    finally:
        c.close()


@check("modbus tcp gateway: a device's exception is passed on")
def _():
    c = client(BUS_TCP)
    try:
        rr = c.read_holding_registers(50, count=1, device_id=1)
        if not isinstance(rr, ExceptionResponse):
            raise AssertionError(f"want an exception, got {rr!r}")
        expect(rr.exception_code, 2, "illegal data address")
    finally:
        c.close()


@check("modbus tcp gateway: unit 0 is a broadcast every unit obeys, with no reply")
def _():
    c = client(BUS_TCP)
    try:
        rr = c.write_register(3, 4242, device_id=0, no_response_expected=True)
        if rr is not None and rr.isError():
            raise AssertionError(f"broadcast: {rr!r}")
        for unit in (1, 2):
            expect(ok(c.read_holding_registers(3, count=1, device_id=unit), f"unit {unit}").registers, [4242], f"unit {unit}")
    finally:
        c.close()


@check("modbus tcp direct: unit ids 0xFF, 0 and its address reach the one device")
def _():
    c = client(METER_TCP)
    try:
        seen = {}
        for unit in (0xFF, 0, 5):
            seen[unit] = ok(c.read_holding_registers(0, count=2, device_id=unit), f"unit {unit}").registers
        expect(seen[0xFF], [51, 52], "0xFF")
        expect(seen[0], seen[0xFF], "0")
        expect(seen[5], seen[0xFF], "its address")
    finally:
        c.close()


def mbap(tid, unit, pdu, protocol=0, length=None):
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


def read_exactly(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"connection closed after {out!r}")
        out += chunk
    return out


def read_reply(s):
    head = read_exactly(s, 6)
    return head + read_exactly(s, struct.unpack(">H", head[4:6])[0])


@check("modbus tcp: pipelined requests answered in order with their transaction ids")
def _():
    s = socket.create_connection(host_port(BUS_TCP), timeout=PATIENCE)
    try:
        asks = [(0x0101, 1, 0), (0xBEEF, 2, 0), (0x0002, 9, 0), (0xFFFF, 1, 1)]
        s.sendall(b"".join(mbap(tid, unit, struct.pack(">BHH", 3, addr, 1)) for tid, unit, addr in asks))
        got = [read_reply(s) for _ in asks]
        expect(got[0], mbap(0x0101, 1, bytes([3, 2, 0, 11])), "first")
        expect(got[1], mbap(0xBEEF, 2, bytes([3, 2, 0, 21])), "second")
        expect(got[2], mbap(0x0002, 9, bytes([0x83, 0x0B])), "absent unit")
        expect(got[3], mbap(0xFFFF, 1, bytes([3, 2, 0, 12])), "fourth")
    finally:
        s.close()


def closed(s):
    # Closed by the server: recv gives b"" (or a reset), never a reply.
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


@check("modbus tcp: a protocol id other than 0, or a length outside 2-254, closes the connection")
def _():
    for what, frame in [
        ("protocol id 1", mbap(1, 1, bytes([3, 0, 0, 0, 1]), protocol=1)),
        ("length 1", mbap(1, 1, b"", length=1)),
        ("length 255", mbap(1, 1, bytes([3, 0, 0, 0, 1]), length=255)),
        ("length 0", mbap(1, 1, b"", length=0)),
    ]:
        s = socket.create_connection(host_port(BUS_TCP), timeout=PATIENCE)
        try:
            s.sendall(frame)
            if not closed(s):
                raise AssertionError(f"{what}: the connection stayed open")
        finally:
            s.close()
    c = client(BUS_TCP)
    try:
        expect(ok(c.read_holding_registers(0, count=1, device_id=1), "after").registers, [11], "the gateway still serves")
    finally:
        c.close()


@check("rtu over tcp: pymodbus ModbusTcpClient with the RTU framer")
def _():
    c = client(BUS_RTU, framer=FramerType.RTU)
    try:
        ok(c.write_registers(2, [0xFFFF, 0x00FF], device_id=1), "write")
        expect(ok(c.read_holding_registers(2, count=2, device_id=1), "read").registers, [0xFFFF, 0x00FF], "read back")
        expect(ok(c.read_holding_registers(0, count=1, device_id=2), "unit 2").registers, [21], "unit 2")
    finally:
        c.close()


@check("rtu over tcp: pymodbus ModbusSerialClient on pyserial's socket://")
def _():
    c = ModbusSerialClient(f"socket://{BUS_RTU}", framer=FramerType.RTU, timeout=PATIENCE, retries=0)
    if not c.connect():
        raise AssertionError("pymodbus cannot connect")
    try:
        expect(ok(c.read_holding_registers(2, count=2, device_id=1), "read").registers, [0xFFFF, 0x00FF], "unit 1")
        expect(ok(c.read_holding_registers(0, count=1, device_id=2), "unit 2").registers, [21], "unit 2")
    finally:
        c.close()


print(json.dumps(results))
