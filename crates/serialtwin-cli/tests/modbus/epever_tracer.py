# epevermodbus 0.0.18 (a minimalmodbus 2.1.1 instrument) reads an emulated EPEver Tracer as
# it reads the real controller. Args: the link, the clock's start (Unix seconds), the wall time
# just before serialtwin was started (Unix seconds, a bound for the simulated clock at speed
# 1), the serialtwin binary and the control socket (to move the plant as a user does).
# Prepended with harness.py by modbus_devices.rs.
#
# Besides the results, prints one JSON line {"requests": [...]}: the request every getter
# should have put on the wire, in order ([port, unit, function, address, quantity-or-value,
# repeats]), matched by the Rust test against the port's capture: one request per register
# read, no retries (each getter retries up to 5 times on any error, which would hide one).
import datetime
import subprocess

from epevermodbus.driver import EpeverChargeController
import minimalmodbus

link, start_unix, before_unix, serialtwin, socket = (
    sys.argv[1],
    int(sys.argv[2]),
    float(sys.argv[3]),
    sys.argv[4],
    sys.argv[5],
)
REQUESTS = []
c = EpeverChargeController(link, 1)


def wire(*requests):
    for fc, address, n in requests:
        REQUESTS.append([0, 1, fc, address, n, 1])


def close(a, b, share, floor, what):
    if abs(a - b) > share * abs(b) + floor:
        raise AssertionError(f"{what}: {a} vs {b}")


def pv_power_is_volts_times_amps():
    v, a, w = c.get_solar_voltage(), c.get_solar_current(), c.get_solar_power()
    wire((4, 0x3100, 1), (4, 0x3101, 1), (4, 0x3102, 2))
    if w < 50:
        raise AssertionError(f"PV {w} W at noon")
    # ±2 %, and the registers' hundredths.
    close(w, v * a, 0.02, 0.01 * (v + a) + 0.01, "PV W vs V*A")


def battery_and_load_are_consistent():
    soc = c.get_battery_state_of_charge()
    bv, ba = c.get_battery_voltage(), c.get_battery_current()
    charge = c.get_battery_power()
    lv, la, lw = c.get_load_voltage(), c.get_load_current(), c.get_load_power()
    wire((4, 0x311A, 1), (4, 0x331A, 1), (4, 0x331B, 2), (4, 0x3106, 2), (4, 0x310C, 1), (4, 0x310D, 1), (4, 0x310E, 2))
    if not 0 <= soc <= 100:
        raise AssertionError(f"SOC {soc}")
    if not 11.0 <= bv <= 15.0:
        raise AssertionError(f"battery {bv} V")
    close(lw, lv * la, 0.02, 0.01 * (lv + la) + 0.01, "load W vs V*A")
    close(lv, bv, 0.0, 0.011, "the load hangs on the battery")
    # What the charger gives, less what the load takes, goes into the battery.
    close(ba, (charge - lw) / bv, 0.02, 0.05, "battery A vs (charge W - load W) / V")


def rtc_is_the_simulated_clock():
    rtc = c.get_rtc()
    wire((3, 0x9013, 1), (3, 0x9014, 1), (3, 0x9015, 1))
    if rtc is None:
        raise AssertionError("not a date")
    at = rtc.replace(tzinfo=datetime.timezone.utc).timestamp()
    latest = start_unix + (time.time() - before_unix) + 1
    if not start_unix <= at <= latest:
        raise AssertionError(f"RTC {rtc}, simulated clock between {start_unix} and {latest}")


def set_rtc_moves_it():
    c.set_rtc(datetime.datetime(2031, 3, 4, 5, 6, 7))
    wire((16, 0x9013, 3))
    rtc = c.get_rtc()
    wire((3, 0x9013, 1), (3, 0x9014, 1), (3, 0x9015, 1))
    written = datetime.datetime(2031, 3, 4, 5, 6, 7)
    if not written <= rtc <= written + datetime.timedelta(seconds=5):
        raise AssertionError(f"RTC {rtc} after set_rtc({written})")


def fc16_of_twelve_set_points_reads_back():
    before = c.get_battery_voltage_control_registers()
    wire((3, 0x9003, 12))
    c.set_battery_voltage_control_registers(boost_charging_voltage=14.2, float_charging_voltage=13.6)
    # It reads all twelve first, then writes all twelve with FC 16.
    wire((3, 0x9003, 12), (16, 0x9003, 12))
    after = c.get_battery_voltage_control_registers()
    wire((3, 0x9003, 12))
    want = dict(before, boost_charging_voltage=14.2, float_charging_voltage=13.6)
    expect(after, want, "set-points")
    expect(c.get_boost_charging_voltage(), 14.2, "boost alone")
    wire((3, 0x9007, 1))


def other_getters():
    expect(c.get_battery_type(), "SEALED", "type")
    expect(c.get_battery_capacity(), 200, "capacity")
    expect(c.get_rated_charging_current(), 30.0, "rated charging current")
    expect(c.get_rated_load_current(), 30.0, "rated load current")
    expect(c.get_battery_real_rated_voltage(), 12.0, "real rated voltage")
    wire((3, 0x9000, 1), (3, 0x9001, 1), (4, 0x3005, 1), (4, 0x300E, 1), (4, 0x311D, 1))
    for t in [c.get_battery_temperature(), c.get_controller_temperature(), c.get_remote_battery_temperature()]:
        if not -40 <= t <= 85:
            raise AssertionError(f"temperature {t}")
    wire((4, 0x3110, 1), (4, 0x3111, 1), (4, 0x311B, 1))
    status = c.get_charging_equipment_status()
    expect(status["running"], True, "charger running")
    expect(status["input_voltage_status"], "NORMAL", "PV input at noon")
    expect(c.get_battery_status()["battery_status"], "NORMAL", "battery")
    expect(c.get_discharging_equipment_status()["running"], True, "load output")
    wire((4, 0x3201, 1), (4, 0x3200, 1), (4, 0x3202, 1))
    expect(c.is_day(), True, "noon")
    expect(c.is_device_over_temperature(), False, "over temperature")
    wire((2, 0x200C, 1), (2, 0x2000, 1))
    today, total = c.get_generated_energy_today(), c.get_total_generated_energy()
    wire((4, 0x330C, 2), (4, 0x3312, 2))
    if not 0 <= today <= total:
        raise AssertionError(f"generated today {today}, in total {total}")
    lo, hi = c.get_minimum_battery_voltage_today(), c.get_maximum_battery_voltage_today()
    wire((4, 0x3303, 1), (4, 0x3302, 1))
    if not 0 < lo <= hi:
        raise AssertionError(f"battery today {lo}-{hi} V")


def unlisted_function_code_answers_01():
    try:
        c.write_register(0x9001, 150, functioncode=6)
    except minimalmodbus.IllegalRequestError as e:
        if "illegal function" not in str(e).lower():
            raise AssertionError(f"not exception 01: {e}")
    else:
        raise AssertionError("FC 6 was accepted")
    wire((6, 0x9001, 150))
    expect(c.get_battery_capacity(), 200, "capacity unchanged")
    wire((3, 0x9001, 1))


def night_falls_when_the_sun_is_set_to_zero():
    subprocess.run([serialtwin, "ctl", "--socket", socket, "set", "charger/1", "irradiance", "0"], check=True, capture_output=True)
    expect(c.is_night(), True, "night")
    expect(c.get_solar_power(), 0.0, "PV power")
    expect(c.get_charging_equipment_status()["input_voltage_status"], "NO_INPUT_POWER", "PV input")
    wire((2, 0x200C, 1), (4, 0x3102, 2), (4, 0x3201, 1))
    if c.get_battery_current() >= 0:
        raise AssertionError("the battery still charges at night")
    wire((4, 0x331B, 2))


check("PV W = V x A", pv_power_is_volts_times_amps)
check("battery and load consistent, SOC 0-100", battery_and_load_are_consistent)
check("RTC is the simulated clock", rtc_is_the_simulated_clock)
check("FC 16 of twelve set-points at 0x9003 reads back", fc16_of_twelve_set_points_reads_back)
check("other getters", other_getters)
check("function codes EPEVER does not list answer 01", unlisted_function_code_answers_01)
check("set_rtc moves the RTC", set_rtc_moves_it)
check("ctl set irradiance 0 makes it night", night_falls_when_the_sun_is_set_to_zero)
c.serial.close()
print(json.dumps({"requests": REQUESTS}))
done()
