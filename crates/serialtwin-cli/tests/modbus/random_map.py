# Random register maps, drawn here and checked here with pymodbus' own converters.
#
#   draw  <seed> <dir>                       writes <dir>/map.toml (two devices serving the
#                                            same units: gaps = "exception" and gaps = "zero")
#                                            and <dir>/map.json (what was declared)
#   check <dir> <exception link> <zero link> reads every declared value on both, gaps, past
#                                            the end, and writes (pymodbus, one process)
#
# Values are drawn so that (value - offset) / scale is exact in binary floating point
# (power-of-two scales, whole offsets, floats with few mantissa bits, no scale on 64-bit
# integers): the words are then defined whatever rounding the model does, and come from
# pymodbus' convert_to_registers of the raw value.
import random

TYPES = ["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "string"]
SIZES = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "u64": 4, "i64": 4, "f32": 2, "f64": 4}
CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.:/"


def draw_raw(rng, kind):
    if kind == "u16":
        return rng.randint(0, 0xFFFF)
    if kind == "i16":
        return rng.randint(-0x8000, 0x7FFF)
    if kind == "u32":
        return rng.randint(0, 0xFFFFFFFF)
    if kind == "i32":
        return rng.randint(-0x80000000, 0x7FFFFFFF)
    if kind == "u64":  # a TOML integer is an i64
        return rng.choice([0, 1, 2**63 - 1, rng.randint(0, 2**63 - 1)])
    if kind == "i64":
        return rng.choice([-(2**63), 2**63 - 1, -1, rng.randint(-(2**63), 2**63 - 1)])
    if kind == "f32":
        return rng.randint(-(2**15), 2**15) / 16
    if kind == "f64":
        return rng.choice([rng.randint(-(2**30), 2**30) / 1024, rng.uniform(-1e12, 1e12)])
    raise ValueError(kind)


def draw_entry(rng, address, table):
    kind = rng.choice(TYPES)
    e = {"address": address, "type": kind}
    if table == "holding":
        e["writable"] = rng.random() < 0.6
    if kind == "string":
        e["registers"] = rng.randint(1, 8)
        e["text"] = "".join(rng.choice(CHARS) for _ in range(rng.randint(1, 2 * e["registers"])))
        return e
    e["order"] = rng.choice(["ABCD", "CDAB"]) if SIZES[kind] > 1 else "ABCD"
    e["raw"] = draw_raw(rng, kind)
    exact_float = kind == "f64" and not float(e["raw"]).is_integer() and abs(e["raw"]) > 2**30
    if kind in ("u64", "i64") or exact_float or rng.random() < 0.4:
        e["scale"], e["offset"] = 1, 0
    else:
        e["scale"] = rng.choice([1, 0.5, 0.25, 2, 4])
        e["offset"] = rng.choice([0, 0, -10, 100])
    return e


def draw_table(rng, table):
    entries = []
    address = rng.choice([0, rng.randint(1, 2000), rng.randint(60000, 65000)])
    for _ in range(rng.randint(5, 25)):
        address += rng.choice([0, 0, 0, 1, 2, 5])  # a gap before it, often none
        e = draw_entry(rng, address, table)
        size = e["registers"] if e["type"] == "string" else SIZES[e["type"]]
        if address + size > 65536:
            break
        entries.append(e)
        address += size
    return entries


def draw_bits(rng, table):
    bits = []
    address = rng.randint(0, 3000)
    for _ in range(rng.randint(3, 40)):
        address += rng.choice([0, 0, 0, 1, 3])
        b = {"address": address, "value": rng.random() < 0.5}
        if table == "coil":
            b["writable"] = rng.random() < 0.6
        bits.append(b)
        address += 1
    return bits


def number(v):
    return repr(v) if isinstance(v, float) else str(v)


def value_of(e):
    """The engineering value the config declares: raw * scale + offset, exact."""
    if e["scale"] == 1 and e["offset"] == 0:
        return e["raw"]
    v = e["raw"] * e["scale"] + e["offset"]
    return float(v)


def toml(units, link, gaps):
    out = [f'[[device]]\nname = "{gaps}"\nmodel = "modbus"\nlink = "{link}"\n']
    out.append(f'[device.modbus]\ngaps = "{gaps}"\n')
    for u in units:
        out.append(f"[[device.modbus.unit]]\nid = {u['id']}\n")
        for table in ("holding", "input"):
            for e in u[table]:
                out.append(f"[[device.modbus.unit.{table}]]")
                out.append(f"address = {e['address']}")
                out.append(f'type = "{e["type"]}"')
                if e["type"] == "string":
                    out.append(f'value = "{e["text"]}"')
                    out.append(f"registers = {e['registers']}")
                else:
                    if SIZES[e["type"]] > 1:
                        out.append(f'order = "{e["order"]}"')
                    v = value_of(e)
                    out.append(f"value = {number(float(v) if e['type'] in ('f32', 'f64') else v)}")
                    if e["scale"] != 1 or e["offset"] != 0:
                        out.append(f"scale = {number(float(e['scale']))}")
                        out.append(f"offset = {number(float(e['offset']))}")
                if "writable" in e:
                    out.append(f"writable = {str(e['writable']).lower()}")
                out.append("")
        for table in ("coil", "discrete"):
            for b in u[table]:
                out.append(f"[[device.modbus.unit.{table}]]")
                out.append(f"address = {b['address']}\nvalue = {str(b['value']).lower()}")
                if "writable" in b:
                    out.append(f"writable = {str(b['writable']).lower()}")
                out.append("")
    return "\n".join(out) + "\n"


def draw(seed, directory):
    rng = random.Random(seed)
    ids = rng.sample(range(1, 248), 3)
    units = [
        {
            "id": i,
            "holding": draw_table(rng, "holding"),
            "input": draw_table(rng, "input"),
            "coil": draw_bits(rng, "coil"),
            "discrete": draw_bits(rng, "discrete"),
        }
        for i in ids
    ]
    with open(f"{directory}/map.toml", "w") as f:
        f.write(toml(units, f"{directory}/ttyUSB-exception", "exception"))
        f.write("\n")
        f.write(toml(units, f"{directory}/ttyUSB-zero", "zero"))
    with open(f"{directory}/map.json", "w") as f:
        json.dump(units, f)
    print(json.dumps([{"name": f"drew seed {seed}", "ok": True}]))


def check_all(directory, exc_link, zero_link):
    from pymodbus import FramerType
    from pymodbus.client import ModbusSerialClient
    from pymodbus.pdu import ExceptionResponse

    DT = ModbusSerialClient.DATATYPE
    KINDS = {
        "u16": DT.UINT16, "i16": DT.INT16, "u32": DT.UINT32, "i32": DT.INT32,
        "u64": DT.UINT64, "i64": DT.INT64, "f32": DT.FLOAT32, "f64": DT.FLOAT64,
    }
    with open(f"{directory}/map.json") as f:
        units = json.load(f)

    def words(e, raw=None):
        if e["type"] == "string":
            w = ModbusSerialClient.convert_to_registers(e["text"], DT.STRING)
            return w + [0] * (e["registers"] - len(w))
        order = "little" if e["order"] == "CDAB" else "big"
        return ModbusSerialClient.convert_to_registers(
            e["raw"] if raw is None else raw, KINDS[e["type"]], word_order=order
        )

    def connect(link):
        c = ModbusSerialClient(link, framer=FramerType.RTU, baudrate=19200, timeout=0.5,
                               retries=0, trace_packet=trace)
        if not c.connect():
            raise SystemExit(f"cannot open {link}")
        return c

    def read(c, table, address, count, unit):
        fn = {"holding": c.read_holding_registers, "input": c.read_input_registers,
              "coil": c.read_coils, "discrete": c.read_discrete_inputs}[table]
        return fn(address, count=count, device_id=unit)

    def ok(rr, what):
        if rr.isError():
            raise AssertionError(f"{what}: error reply {rr!r} (code {getattr(rr, 'exception_code', '?')})")
        return rr

    def is_02(rr, what):
        if not isinstance(rr, ExceptionResponse) or rr.exception_code != 2:
            raise AssertionError(f"{what}: want exception 02, got {rr!r}")

    def spans(u, table):
        """Declared addresses -> (entry, word index) and the table's extent."""
        at = {}
        for e in u[table]:
            size = e["registers"] if e["type"] == "string" else SIZES[e["type"]]
            for k in range(size):
                at[e["address"] + k] = (e, k)
        return at, (min(at), max(at)) if at else None

    exc, zero = connect(exc_link), connect(zero_link)
    for u in units:
        unit = u["id"]
        for table in ("holding", "input"):
            at, extent = spans(u, table)
            if extent is None:
                continue

            def every_value(c=None, table=table, u=u, unit=unit):
                for cl in (exc, zero):
                    for e in u[table]:
                        want = words(e)
                        got = ok(read(cl, table, e["address"], len(want), unit),
                                 f"{table} {e['address']} {e['type']}").registers
                        expect(got, want, f"unit {unit} {table} {e['address']} {e}")

            def gaps(table=table, at=at, extent=extent, unit=unit):
                lo, hi = extent
                holes = [a for a in range(lo, hi + 1) if a not in at]
                for a in holes:
                    is_02(read(exc, table, a, 1, unit), f"gap {table} {a} (exception)")
                    expect(ok(read(zero, table, a, 1, unit), f"gap {a}").registers, [0],
                           f"gap {table} {a} (zero)")
                for cl, name in ((exc, "exception"), (zero, "zero")):
                    if hi < 65535:
                        is_02(read(cl, table, hi + 1, 1, unit), f"past the end {hi + 1} ({name})")
                    if lo > 0:
                        is_02(read(cl, table, lo - 1, 1, unit), f"before the start {lo - 1} ({name})")
                # The whole extent in one span per 125 registers: gaps read 0 under "zero".
                whole = []
                for a in range(lo, hi + 1):
                    if a in at:
                        e, k = at[a]
                        whole.append(words(e)[k])
                    else:
                        whole.append(0)
                for start in range(lo, hi + 1, 125):
                    n = min(125, hi + 1 - start)
                    got = ok(read(zero, table, start, n, unit), f"span {start}+{n}").registers
                    expect(got, whole[start - lo : start - lo + n], f"{table} span {start}+{n} (zero)")

            check(f"unit {unit} {table}: every declared value as pymodbus encodes it", every_value)
            check(f"unit {unit} {table}: gaps, ends and spans", gaps)

            if table == "holding":
                def writes(u=u, unit=unit, at=at, extent=extent):
                    rng = random.Random(unit)
                    for e in u["holding"]:
                        before = words(e)
                        if e["type"] == "string":
                            new = [rng.randint(0, 0xFFFF) for _ in before]
                        else:
                            new = words(e, draw_raw(rng, e["type"]))
                        if len(new) == 1:
                            rr = exc.write_register(e["address"], new[0], device_id=unit)
                        else:
                            rr = exc.write_registers(e["address"], new, device_id=unit)
                        got = ok(read(exc, "holding", e["address"], len(new), unit), "read back").registers
                        if e["writable"]:
                            ok(rr, f"write {e['address']}")
                            expect(got, new, f"holding {e['address']} after a write")
                        else:
                            is_02(rr, f"write to read-only {e['address']}")
                            expect(got, before, f"read-only holding {e['address']} unchanged")
                    lo, hi = extent
                    for a in [a for a in range(lo, hi + 1) if a not in at][:5]:
                        is_02(exc.write_register(a, 1, device_id=unit), f"write into gap {a}")
                        is_02(zero.write_register(a, 1, device_id=unit), f"write into gap {a} (zero)")

                check(f"unit {unit} holding: writes where writable, 02 elsewhere", writes)

        for table in ("coil", "discrete"):
            bits = {b["address"]: b for b in u[table]}
            lo, hi = min(bits), max(bits)

            def every_bit(table=table, bits=bits, lo=lo, hi=hi, unit=unit):
                for a, b in bits.items():
                    got = ok(read(exc, table, a, 1, unit), f"{table} {a}").bits[0]
                    expect(got, b["value"], f"{table} {a}")
                    if table == "coil":
                        rr = exc.write_coil(a, not b["value"], device_id=unit)
                        got = ok(read(exc, table, a, 1, unit), f"{table} {a}").bits[0]
                        if b["writable"]:
                            ok(rr, f"write coil {a}")
                            expect(got, not b["value"], f"coil {a} after a write")
                        else:
                            is_02(rr, f"write to read-only coil {a}")
                            expect(got, b["value"], f"read-only coil {a} unchanged")
                for a in range(lo, hi + 1):
                    if a not in bits:
                        is_02(read(exc, table, a, 1, unit), f"{table} gap {a}")
                want = [bits[a]["value"] if a in bits else False for a in range(lo, hi + 1)]
                got = ok(read(zero, table, lo, hi + 1 - lo, unit), f"{table} span").bits
                expect(got[: len(want)], want, f"{table} {lo}-{hi} (zero)")
                is_02(read(exc, table, hi + 1, 1, unit), f"{table} past the end")

            check(f"unit {unit} {table}s: every bit, writes, gaps", every_bit)
    exc.close()
    zero.close()
    done()


if sys.argv[1] == "draw":
    draw(int(sys.argv[2]), sys.argv[3])
else:
    check_all(sys.argv[2], sys.argv[3], sys.argv[4])
