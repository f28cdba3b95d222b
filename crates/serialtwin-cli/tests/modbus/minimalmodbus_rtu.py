# minimalmodbus 2.1.1 in RTU mode against unit 1 of the config in modbus_clients.rs
# (argv[1]), with its defaults (19,200 8N1, 50 ms read timeout, writes with FC16) unless a
# check says otherwise. Its checks are strict: CRC, address, function, byte count, echo.
import minimalmodbus
import serial

LINK = sys.argv[1]
inst = minimalmodbus.Instrument(LINK, 1, mode=minimalmodbus.MODE_RTU)
expect(
    (inst.serial.baudrate, inst.serial.parity, inst.serial.timeout),
    (19200, serial.PARITY_NONE, 0.05),
    "minimalmodbus defaults",
)
# Its 50 ms read timeout holds on an idle machine (an answer takes a few ms here), but it is a
# timing claim, and the suite shares its CPUs: a safety net instead (timing belongs in a bench).
inst.serial.timeout = 0.5


def raises(kind, fn, *args, **kwargs):
    try:
        got = fn(*args, **kwargs)
    except kind:
        return
    raise AssertionError(f"want {kind.__name__}, got {got!r}")


def read_register():
    expect(inst.read_register(0), 1234, "holding 0")
    expect(inst.read_register(1, 2, signed=True), -2.0, "holding 1, 2 decimals, signed")
    expect(inst.read_register(0, functioncode=4), 42, "input 0")


def read_float():
    expect(inst.read_float(2), 230.5, "f32 ABCD")
    expect(inst.read_float(4, byteorder=minimalmodbus.BYTEORDER_LITTLE_SWAP), 230.5, "f32 CDAB")
    expect(inst.read_float(20, number_of_registers=4), -1.25e-3, "f64 ABCD")


def read_long():
    swap = minimalmodbus.BYTEORDER_LITTLE_SWAP
    expect(inst.read_long(6, byteorder=swap), 123456, "u32 CDAB")
    expect(inst.read_long(8, signed=True), -123456, "i32 ABCD")
    expect(inst.read_long(10, signed=True, number_of_registers=4), -1234567890123, "i64 ABCD")
    expect(inst.read_long(1, functioncode=4, byteorder=swap), 77880, "input u32 CDAB")


def read_string():
    expect(inst.read_string(14, 4), "SDM630\x00\x00", "string, NULs kept")


def write_register():
    inst.write_register(30, 555)  # FC16, minimalmodbus' default
    expect(inst.read_register(30), 555, "holding 30 after FC16")
    inst.write_register(31, 556, functioncode=6)
    expect(inst.read_register(31), 556, "holding 31 after FC6")
    inst.write_registers(32, [1, 2, 3])
    expect(inst.read_registers(32, 3), [1, 2, 3], "holding 32-34 after")
    inst.write_long(36, -7, signed=True)
    expect(inst.read_long(36, signed=True), -7, "holding 36 after write_long")
    inst.write_float(38, 12.75, byteorder=minimalmodbus.BYTEORDER_LITTLE_SWAP)
    expect(inst.read_float(38, byteorder=minimalmodbus.BYTEORDER_LITTLE_SWAP), 12.75, "f32 CDAB after")


def bits():
    expect(inst.read_bit(0, functioncode=1), 1, "coil 0")
    expect(inst.read_bits(0, 3, functioncode=2), [1, 0, 1], "discrete 0-2")
    inst.write_bit(1, 1)  # FC5
    expect(inst.read_bit(1, functioncode=1), 1, "coil 1 after FC5")
    inst.write_bits(2, [1, 1])  # FC15
    expect(inst.read_bits(0, 4, functioncode=1), [1, 1, 1, 1], "coils 0-3 after FC15")


def long_read():
    # 100 registers: a 205-byte reply, about 117 ms of a 19,200 baud line. The 50 ms default
    # cannot hold it (the line is paced as a real one); raised, as users must, it reads.
    text = "".join(chr(0x41 + i % 26) for i in range(200))
    want = [ord(text[i]) << 8 | ord(text[i + 1]) for i in range(0, 200, 2)]
    inst.serial.timeout = 0.05
    try:
        raises(minimalmodbus.ModbusException, inst.read_registers, 100, 100)
    finally:
        inst.serial.timeout = 1.0
    time.sleep(0.3)  # the late reply passes before the next request
    try:
        expect(inst.read_registers(100, 100), want, "100 registers")
        expect(inst.read_string(100, 100), text, "as a string")
    finally:
        inst.serial.timeout = 0.5


def exceptions():
    raises(minimalmodbus.IllegalRequestError, inst.read_register, 500)
    raises(minimalmodbus.IllegalRequestError, inst.read_register, 25)  # a gap
    raises(minimalmodbus.IllegalRequestError, inst.write_register, 40, 1)  # read-only
    expect(inst.read_register(40), 9, "read-only holding 40 unchanged")


def absent_unit():
    other = minimalmodbus.Instrument(LINK, 9)
    raises(minimalmodbus.NoResponseError, other.read_register, 0)
    expect(inst.read_register(0), 1234, "unit 1 after the silence")


def broadcast():
    everyone = minimalmodbus.Instrument(LINK, 0)
    everyone.write_register(50, 4242)  # FC16 to all; it sleeps the turnaround delay itself
    expect(inst.read_register(50), 4242, "unit 1 holding 50 after a broadcast")
    expect(minimalmodbus.Instrument(LINK, 2).read_register(50), 4242, "unit 2 holding 50")


for name, fn in [
    ("read_register", read_register),
    ("read_float", read_float),
    ("read_long", read_long),
    ("read_string", read_string),
    ("write_register and friends", write_register),
    ("bits", bits),
    ("more than 40 registers with the timeout raised", long_read),
    ("exceptions", exceptions),
    ("absent unit", absent_unit),
    ("broadcast", broadcast),
]:
    check(name, fn)
inst.serial.close()
done()
