# pymodbus 3.16.1 against the buses of modbus/bus.toml, served by modbus_clients.rs: argv[1] is the
# three-unit bus at 19,200, argv[2] the one-unit bus at 115,200. Expected values come from the
# config by hand or from Python's struct and pymodbus' own converters, never from serialtwin.
import asyncio
import struct

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, ModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest

BUS, FAST = sys.argv[1], sys.argv[2]
DT = ModbusSerialClient.DATATYPE


def client(port, baud=19200):
    c = ModbusSerialClient(
        port,
        framer=FramerType.RTU,
        baudrate=baud,
        parity="N",
        stopbits=1,
        timeout=0.5,
        retries=0,
        trace_packet=trace,
    )
    if not c.connect():
        raise SystemExit(f"cannot open {port}")
    return c


def ok(rr):
    if rr.isError():
        raise AssertionError(f"unexpected error reply {rr!r}")
    return rr


def exception(rr, function, code):
    if not isinstance(rr, ExceptionResponse):
        raise AssertionError(f"want exception {code:02x} to FC {function:02x}, got {rr!r}")
    expect((rr.function_code, rr.exception_code), (function | 0x80, code), "exception reply")


def words(fmt, value):
    """A value packed by struct, big-endian bytes, as registers (A B C D -> [AB, CD])."""
    raw = struct.pack(fmt, value)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def regs(c, address, count, device_id=1):
    return ok(c.read_holding_registers(address, count=count, device_id=device_id)).registers


c = client(BUS)


def read_coils():
    rr = ok(c.read_coils(0, count=11, device_id=1))
    expect(rr.bits[:11], [True, False, True] + [False] * 7 + [True], "coils 0-10")


def read_discrete_inputs():
    rr = ok(c.read_discrete_inputs(0, count=4, device_id=1))
    expect(rr.bits[:4], [True, False, True, True], "discrete inputs 0-3")


def read_holding_registers():
    got = regs(c, 0, 19)
    f32 = words(">f", 230.5)
    want = (
        [1234]
        + words(">h", -5)
        + c.convert_to_registers(123456, DT.UINT32)
        + c.convert_to_registers(123456, DT.UINT32, word_order="little")
        + c.convert_to_registers(230.5, DT.FLOAT32)
        + c.convert_to_registers("SDM630", DT.STRING)
        + [0]
        + [7, 235]
        + words(">h", -200)
        + [f32[0] >> 8 | (f32[0] & 0xFF) << 8, f32[1] >> 8 | (f32[1] & 0xFF) << 8]  # BADC
        + words("<f", 230.5)  # DCBA: every byte reversed
    )
    expect(got, want, "holding 0-18")
    expect(c.convert_from_registers(got[1:2], DT.INT16), -5, "i16")
    expect(c.convert_from_registers(got[2:4], DT.UINT32), 123456, "u32 ABCD")
    expect(c.convert_from_registers(got[4:6], DT.UINT32, word_order="little"), 123456, "u32 CDAB")
    expect(c.convert_from_registers(got[6:8], DT.FLOAT32), 230.5, "f32")
    expect(c.convert_from_registers(got[8:12], DT.STRING), "SDM630", "string")
    expect(got[6:8], [0x4366, 0x8000], "230.5 as the reference gives it")
    expect(got[4:6], [0xE240, 0x0001], "123456 CDAB as the reference gives it")


def read_input_registers():
    rr = ok(c.read_input_registers(0, count=5, device_id=1))
    expect(rr.registers, [0x4366, 0x8000, 0xE240, 0x0001, 42], "input 0-4")


def every_unit_its_own():
    for unit in (1, 2, 247):
        want = 1234 if unit == 1 else unit
        expect(regs(c, 0, 1, unit), [want], f"unit {unit} holding 0")
        rr = ok(c.read_holding_registers(0, count=1, device_id=unit))
        expect(rr.dev_id, unit, "reply's address")


def write_single_coil():
    rr = ok(c.write_coil(3, True, device_id=1))
    expect((rr.address, rr.bits[0]), (3, True), "echo")
    expect(ok(c.read_coils(3, count=1, device_id=1)).bits[0], True, "coil 3 after")
    ok(c.write_coil(3, False, device_id=1))
    expect(ok(c.read_coils(3, count=1, device_id=1)).bits[0], False, "coil 3 cleared")


def write_single_register():
    rr = ok(c.write_register(20, 0xABCD, device_id=1))
    expect((rr.address, rr.registers), (20, [0xABCD]), "echo")
    expect(regs(c, 20, 1), [0xABCD], "holding 20 after")


def write_multiple_coils():
    values = [True, False, True, True, False, True]
    rr = ok(c.write_coils(4, values, device_id=1))
    expect((rr.address, rr.count), (4, 6), "reply")
    expect(ok(c.read_coils(4, count=6, device_id=1)).bits[:6], values, "coils 4-9 after")


def write_multiple_registers():
    rr = ok(c.write_registers(21, [1, 0x8000, 0xFFFF], device_id=1))
    expect((rr.address, rr.count), (21, 3), "reply")
    expect(regs(c, 21, 3), [1, 0x8000, 0xFFFF], "holding 21-23 after")


def mask_write():
    # APP 6.16's example: 0x12 AND 0xF2 OR 0x25 gives 0x17.
    rr = ok(c.mask_write_register(address=24, and_mask=0x00F2, or_mask=0x0025, device_id=1))
    expect((rr.address, rr.and_mask, rr.or_mask), (24, 0x00F2, 0x0025), "echo")
    expect(regs(c, 24, 1), [0x0017], "holding 24 after")


def read_write_multiple():
    rr = ok(
        c.readwrite_registers(
            read_address=30, read_count=4, write_address=31, values=[310, 320], device_id=1
        )
    )
    expect(rr.registers, [30, 310, 320, 33], "read after the write")


def diagnostics_echo():
    rr = ok(c.diag_query_data(b"\xa5\x37", device_id=1))
    expect((rr.sub_function_code, rr.message), (0, b"\xa5\x37"), "echo")


def device_identification():
    rr = ok(c.read_device_information(read_code=1, object_id=0, device_id=1))
    expect(rr.information, {0: b"ACME Meters", 1: b"PM-3", 2: b"2.7"}, "basic objects")
    rr = ok(c.read_device_information(read_code=4, object_id=1, device_id=1))
    expect(rr.information, {1: b"PM-3"}, "object 1 alone")


def past_the_table():
    exception(c.read_holding_registers(1000, count=1, device_id=1), 3, 2)
    exception(c.read_holding_registers(99, count=3, device_id=1), 3, 2)  # 100 is the last
    exception(c.read_coils(1000, count=1, device_id=1), 1, 2)
    exception(c.read_input_registers(13, count=2, device_id=1), 4, 2)


def gap_inside_the_table():
    exception(c.read_holding_registers(50, count=1, device_id=1), 3, 2)
    exception(c.read_holding_registers(33, count=2, device_id=1), 3, 2)  # 33 declared, 34 not
    exception(c.read_holding_registers(18, count=2, device_id=1), 3, 2)  # 19 is a gap
    exception(c.write_register(50, 1, device_id=1), 6, 2)


class RawCount(ReadHoldingRegistersRequest):
    """FC3 with any quantity: pymodbus refuses to encode a bad one itself."""

    def encode(self):
        return struct.pack(">HH", self.address, self.count)


def bad_quantity():
    exception(c.execute(False, RawCount(address=0, count=126, dev_id=1)), 3, 3)
    exception(c.execute(False, RawCount(address=0, count=0, dev_id=1)), 3, 3)
    # Quantity before address: both bad gives 03.
    exception(c.execute(False, RawCount(address=1000, count=126, dev_id=1)), 3, 3)


def read_only_register():
    exception(c.write_register(12, 1, device_id=1), 6, 2)
    expect(regs(c, 12, 1), [7], "holding 12 unchanged")
    exception(c.write_registers(11, [1, 2], device_id=1), 16, 2)
    expect(regs(c, 11, 2), [0, 7], "holding 11-12 unchanged")


def read_only_coil():
    exception(c.write_coil(10, False, device_id=1), 5, 2)
    expect(ok(c.read_coils(10, count=1, device_id=1)).bits[0], True, "coil 10 unchanged")


def unsupported_function():
    exception(c.read_fifo_queue(address=0, device_id=1), 0x18, 1)


def absent_unit_is_silent():
    try:
        rr = c.read_holding_registers(0, count=1, device_id=9)
    except ModbusIOException:
        pass
    else:
        raise AssertionError(f"unit 9 answered {rr!r}")
    expect(regs(c, 0, 1), [1234], "unit 1 after the silence")


def broadcast_write_everywhere():
    rr = c.write_register(100, 0xBEEF, device_id=0, no_response_expected=True)
    rr2 = c.write_coils(100, [True], device_id=0, no_response_expected=True)
    time.sleep(0.3)  # SL 2.4.1's turnaround delay, and time for a wrong reply to show
    expect(c.socket.in_waiting, 0, "bytes returned to a broadcast")
    for unit in (1, 2, 247):
        expect(regs(c, 100, 1, unit), [0xBEEF], f"unit {unit} holding 100")
        expect(ok(c.read_coils(100, count=1, device_id=unit)).bits[0], True, f"unit {unit} coil 100")
    _ = rr, rr2


def values_move_with_the_clock():
    first = ok(c.read_input_registers(10, count=4, device_id=1)).registers
    time.sleep(0.5)
    second = ok(c.read_input_registers(10, count=4, device_id=1)).registers
    n1, n2 = (c.convert_from_registers(r[0:2], DT.UINT32) for r in (first, second))
    r1, r2 = (c.convert_from_registers(r[2:4], DT.FLOAT32) for r in (first, second))
    if not n2 > n1 >= 0:
        raise AssertionError(f"counter did not count: {n1} then {n2}")
    if not r2 > r1 >= 0.0:
        raise AssertionError(f"ramp did not rise: {r1} then {r2}")


for name, fn in [
    ("read coils", read_coils),
    ("read discrete inputs", read_discrete_inputs),
    ("read holding registers", read_holding_registers),
    ("read input registers", read_input_registers),
    ("each unit answers with its own values", every_unit_its_own),
    ("write single coil", write_single_coil),
    ("write single register", write_single_register),
    ("write multiple coils", write_multiple_coils),
    ("write multiple registers", write_multiple_registers),
    ("mask write", mask_write),
    ("read/write multiple, write first", read_write_multiple),
    ("diagnostics echo", diagnostics_echo),
    ("device identification", device_identification),
    ("exception 02 past the table", past_the_table),
    ("exception 02 in a gap", gap_inside_the_table),
    ("exception 03 bad quantity, before the address", bad_quantity),
    ("exception 02 writing a read-only register", read_only_register),
    ("exception 02 writing a read-only coil", read_only_coil),
    ("exception 01 unsupported function", unsupported_function),
    ("absent unit is silent", absent_unit_is_silent),
    ("broadcast write carried out by every unit", broadcast_write_everywhere),
    ("values move with the clock", values_move_with_the_clock),
]:
    check(name, fn)
c.close()


async def async_client():
    a = AsyncModbusSerialClient(
        BUS,
        framer=FramerType.RTU,
        baudrate=19200,
        timeout=0.5,
        retries=0,
        trace_packet=trace,
    )
    if not await a.connect():
        raise AssertionError("async client did not connect")
    try:
        rr = ok(await a.read_holding_registers(0, count=1, device_id=247))
        expect(rr.registers, [247], "unit 247 holding 0")
        ok(await a.write_registers(21, [7, 8, 9], device_id=1))
        rr = ok(await a.read_holding_registers(21, count=3, device_id=1))
        expect(rr.registers, [7, 8, 9], "holding 21-23 after")
        exception(await a.read_holding_registers(1000, count=1, device_id=1), 3, 2)
        try:
            rr = await a.read_holding_registers(0, count=1, device_id=9)
        except ModbusIOException:
            pass
        else:
            raise AssertionError(f"unit 9 answered {rr!r}")
        rr = ok(await a.read_input_registers(0, count=2, device_id=1))
        expect(a.convert_from_registers(rr.registers, DT.FLOAT32), 230.5, "input 0 f32")
    finally:
        a.close()


check("async client", lambda: asyncio.run(async_client()))


def fast_bus():
    f = client(FAST, 115200)
    try:
        expect(regs(f, 0, 1), [4321], "holding 0 at 115200")
        ok(f.write_register(1, 99, device_id=1))
        expect(regs(f, 1, 1), [99], "holding 1 after")
        text = "".join(chr(0x41 + i % 26) for i in range(200))
        expect(regs(f, 10, 100), f.convert_to_registers(text, DT.STRING), "100 registers")
        # No identity in its config: the defaults, three non-empty objects.
        info = ok(f.read_device_information(read_code=1, object_id=0, device_id=1)).information
        expect(sorted(info), [0, 1, 2], "basic object ids")
        if not all(info.values()):
            raise AssertionError(f"an empty default object: {info!r}")
    finally:
        f.close()


check("bus at 115200 8N1", fast_bus)
done()
