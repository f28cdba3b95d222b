# sdm-modbus 0.7.0 (on pymodbus 3.6.9) reads an emulated SDM630 and SDM120 as it reads the
# real meters. Args: the SDM630's link, the SDM120's link, the clock's speed (simulated
# seconds per real second), the serialtwin binary and the control socket (to move the load as
# a user does). Prepended with harness.py by modbus_devices.rs.
#
# Besides the results, prints one JSON line {"requests": [...]}: the request every call should
# have put on the wire, in order ([port, unit, function, address, quantity, repeats]), which
# the Rust test matches against the ports' captures: one request per getter, no retries.
import math
import time

import sdm_modbus
from pymodbus.pdu import ExceptionResponse

import subprocess

link630, link120, speed = sys.argv[1], sys.argv[2], float(sys.argv[3])
serialtwin, socket, link_bus = sys.argv[4], sys.argv[5], sys.argv[6]
REQUESTS = []


def expect_requests(port, *requests):
    for r in requests:
        REQUESTS.append([port] + list(r) + [1])


def spans(meter, rtype):
    """The requests read_all(rtype) makes, from sdm-modbus' own tables: one per batch,
    from its lowest address to the end of its highest."""
    fc = 4 if rtype == sdm_modbus.registerType.INPUT else 3
    out = []
    regs = {k: v for k, v in meter.registers.items() if v[2] == rtype}
    for batch in sorted({v[7] for v in regs.values()}):
        vs = [v for v in regs.values() if v[7] == batch]
        lo = min(v[0] for v in vs)
        hi = max(v[0] + v[1] for v in vs)
        out.append((1, fc, lo, hi - lo))
    return out


m630 = sdm_modbus.SDM630(device=link630, baud=9600, parity="N", unit=1, timeout=1)
m120 = sdm_modbus.SDM120(device=link120, baud=2400, parity="N", unit=1, timeout=1)
INPUT = sdm_modbus.registerType.INPUT
HOLDING = sdm_modbus.registerType.HOLDING


def keys_of(meter, rtype):
    return {k for k, v in meter.registers.items() if v[2] == rtype}


def physics(r, phases):
    """Every phase: V 207-253, |P - V*I*PF| <= 2 %; f 49.5-50.5."""
    if not 49.5 <= r["frequency"] <= 50.5:
        raise AssertionError(f"frequency {r['frequency']}")
    total = 0.0
    for p in phases:
        v, i, pf, w = (r[f"{p}voltage"], r[f"{p}current"], r[f"{p}power_factor"], r[f"{p}power_active"])
        if not 207 <= v <= 253:
            raise AssertionError(f"{p}voltage {v}")
        if not (0 < pf <= 1 and w > 0):
            raise AssertionError(f"{p}: PF {pf}, P {w}")
        if abs(w - v * i * pf) > 0.02 * w:
            raise AssertionError(f"{p}: P {w} vs V*I*PF {v * i * pf}")
        s, q = r[f"{p}power_apparent"], r[f"{p}power_reactive"]
        if abs(s * s - w * w - q * q) > 0.02 * s * s:
            raise AssertionError(f"{p}: S {s}, P {w}, Q {q}")
        total += w
    return total


SEEN = {}


def read_all_630():
    before = time.monotonic()
    r = m630.read_all(INPUT)
    after = time.monotonic()
    expect_requests(0, *spans(m630, INPUT))
    expect(set(r), keys_of(m630, INPUT), "keys")
    total = physics(r, ["l1_", "l2_", "l3_"])
    if abs(r["total_power_active"] - total) > 0.001 * total:
        raise AssertionError(f"total {r['total_power_active']} vs sum {total}")
    SEEN["first"] = (before, after, r)
    # Total is import + export, read in a later batch: up to the energy of the read's own
    # duration later (in simulated time), and float32's last digit.
    later = r["total_energy_active"] - r["import_energy_active"] - r["export_energy_active"]
    most = 1.05 * total * (after - before) * speed / 3.6e6 + 0.01
    if not -0.01 <= later <= most:
        raise AssertionError(f"total energy is import + export + {later} kWh, at most {most}")


def energy_rises_ten_simulated_minutes_later():
    before_a, after_a, a = SEEN["first"]
    # Ten simulated minutes after the first read ended, at least.
    time.sleep(max(0.0, 600.0 / speed - (time.monotonic() - after_a)))
    before_b = time.monotonic()
    b = m630.read_all(INPUT)
    after_b = time.monotonic()
    expect_requests(0, *spans(m630, INPUT))
    physics(b, ["l1_", "l2_", "l3_"])
    gained = (b["import_energy_active"] - a["import_energy_active"]) * 3.6e6  # W·s
    if gained <= 0:
        raise AssertionError(f"import energy {a['import_energy_active']} -> {b['import_energy_active']}")
    # The simulated time between the two reads lies between these (real seconds × speed);
    # the power between the two readings' (the load moves slowly), ±5 %.
    least, most = (before_b - after_a) * speed, (after_b - before_a) * speed
    p = sorted([a["total_power_active"], b["total_power_active"]])
    if least < 600:
        raise AssertionError(f"only {least} simulated seconds apart")
    if not 0.95 * p[0] * least <= gained <= 1.05 * p[1] * most:
        raise AssertionError(
            f"gained {gained / 3600:.1f} Wh in {least:.0f}-{most:.0f} s at {p[0]:.0f}-{p[1]:.0f} W"
        )


def holding_registers():
    r = m630.read_all(HOLDING)
    expect_requests(0, *spans(m630, HOLDING))
    expect(set(r), keys_of(m630, HOLDING), "keys")
    expect(r["meter_id"], 1, "meter_id")
    expect(r["baud"], 2, "baud code (9600)")
    expect(r["system_type"], 3, "system type (3P4W)")


def single_reads():
    for key in ["l1_voltage", "frequency", "import_energy_active", "total_power_active"]:
        value = m630.read(key)
        reg = m630.registers[key]
        expect_requests(0, (1, 4, reg[0], 2))
        if not isinstance(value, float) or math.isnan(value):
            raise AssertionError(f"{key}: {value!r}")
    v = m630.read("l2_voltage")
    expect_requests(0, (1, 4, 2, 2))
    if not 207 <= v <= 253:
        raise AssertionError(f"l2_voltage {v}")


def write_goes_to_unit_0_times_out_and_reads_back_on_unit_1():
    start = time.monotonic()
    result = m630.write("demand_period", 30)
    waited = time.monotonic() - start
    # A broadcast gets no answer: pymodbus 3.6.9 waits its timeout (and retries it).
    if not result.isError():
        raise AssertionError(f"a reply to a broadcast: {result}")
    if waited < 1.0:
        raise AssertionError(f"gave up after {waited:.2f} s, before its 1 s timeout")
    REQUESTS.append([0, 0, 16, 0x0002, 2, "1+"])
    expect(m630.read("demand_period"), 30, "demand_period on unit 1")
    expect_requests(0, (1, 3, 0x0002, 2))


def unlisted_function_codes_answer_01():
    c = m630.client
    rr = c.write_register(0x0002, 15, slave=1)  # FC 6: Eastron lists 16 only
    expect_requests(0, (1, 6, 0x0002, 15))
    if not isinstance(rr, ExceptionResponse) or rr.exception_code != 1:
        raise AssertionError(f"FC 6: {rr}")
    rr = c.read_coils(0, 1, slave=1)
    expect_requests(0, (1, 1, 0, 1))
    if not isinstance(rr, ExceptionResponse) or rr.exception_code != 1:
        raise AssertionError(f"FC 1: {rr}")
    expect(m630.read("demand_period"), 30, "demand_period unchanged by FC 6")
    expect_requests(0, (1, 3, 0x0002, 2))


def sdm120_reads_one_phase():
    r = m120.read_all(INPUT)
    expect_requests(1, *spans(m120, INPUT))
    expect(set(r), keys_of(m120, INPUT), "keys")
    physics(r, [""])
    h = m120.read_all(HOLDING)
    expect_requests(1, *spans(m120, HOLDING))
    expect(set(h), keys_of(m120, HOLDING), "keys")
    expect(h["baud"], 0, "baud code (2400)")


def ctl_set_load_moves_the_meter():
    subprocess.run([serialtwin, "ctl", "--socket", socket, "set", "sdm630/1", "load_w", "0"], check=True, capture_output=True)
    a = m630.read("import_energy_active")
    expect(m630.read("total_power_active"), 0.0, "power with no load")
    expect(m630.read("l1_current"), 0.0, "current with no load")
    time.sleep(60.0 / speed)  # a simulated minute, at least
    expect(m630.read("import_energy_active"), a, "import energy with no load")
    expect_requests(0, (1, 4, 0x48, 2), (1, 4, 0x34, 2), (1, 4, 0x06, 2), (1, 4, 0x48, 2))
    subprocess.run([serialtwin, "ctl", "--socket", socket, "set", "sdm630/1", "load_w", "9000"], check=True, capture_output=True)
    p = m630.read("total_power_active")
    expect_requests(0, (1, 4, 0x34, 2))
    # 9 kW ± the day's 25 % swing.
    if not 6750 <= p <= 11250:
        raise AssertionError(f"{p} W drawn by a 9 kW load")


def two_meters_on_one_bus():
    second = sdm_modbus.SDM630(device=link_bus, baud=9600, parity="N", unit=2, timeout=1)
    first = sdm_modbus.SDM630(parent=second, unit=1)
    r2 = second.read_all(INPUT)
    expect_requests(2, *[(2,) + s[1:] for s in spans(second, INPUT)])
    physics(r2, ["l1_", "l2_", "l3_"])
    expect(second.read("meter_id"), 2, "unit 2's meter_id")
    expect(first.read("meter_id"), 1, "unit 1's meter_id")
    expect_requests(2, (2, 3, 0x14, 2), (1, 3, 0x14, 2))
    # Two meters, two circuits: their currents differ.
    a1, a2 = first.read("l1_current"), second.read("l1_current")
    expect_requests(2, (1, 4, 0x06, 2), (2, 4, 0x06, 2))
    if a1 == a2:
        raise AssertionError(f"both meters read {a1} A")
    second.disconnect()


check("read_all returns every key of its SDM630 table, physically consistent", read_all_630)
check("import energy rises over ten simulated minutes as power says", energy_rises_ten_simulated_minutes_later)
check("read_all of the holding registers", holding_registers)
check("read one key: one request", single_reads)
check("write goes to unit 0, times out, reads back on unit 1", write_goes_to_unit_0_times_out_and_reads_back_on_unit_1)
check("function codes Eastron does not list answer 01", unlisted_function_codes_answer_01)
check("SDM120 read_all at 2400 baud", sdm120_reads_one_phase)
check("ctl set load_w moves the meter", ctl_set_load_moves_the_meter)
check("two SDM630s on one modbus bus, each at its address", two_meters_on_one_bus)
m630.disconnect()
m120.disconnect()
print(json.dumps({"requests": REQUESTS}))
done()
