# A measurement script in pyvisa 1.16 + pyvisa-py 0.8 against serialtwin's `scpi` model, on
# the real pty as ASRL<link>::INSTR. Args: the link, the instrument's config as JSON (what
# scpi.rs generated for this run: idn and properties), a seed for the mixed-case spellings,
# the serialtwin binary and the control socket (to move a measured value as a user does).
#
# Spellings of every property's header come from its pattern here, independently of the
# Rust parser: the short form (upper-case part, optional nodes left out), the long form
# (every node), a random mix of cases, and explicit numeric suffixes.
#
# Prints one JSON line: [{"name", "ok", "detail"}], one per check; every check runs whatever
# the one before did.
import json
import random
import re
import subprocess
import sys
import traceback

import pyvisa
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

link, config, seed, serialtwin, socket = sys.argv[1:6]
config = json.loads(config)
rng = random.Random(int(seed))
RESULTS = []


def check(name, fn, *args):
    try:
        fn(*args)
        RESULTS.append({"name": name, "ok": True, "detail": ""})
    except Exception as e:  # noqa: BLE001 -- every failure is reported, none stops the rest
        RESULTS.append(
            {"name": name, "ok": False, "detail": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"}
        )


def expect(got, want, what="value"):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def nodes(pattern):
    """[(long, short, optional, suffix)] of a header pattern like [SOURce:]VOLTage[:LEVel]."""
    out = []
    for m in re.finditer(r"(\[)?:?([A-Za-z]+)(#)?:?(\])?", pattern):
        long = m.group(2)
        short = re.match(r"[A-Z]+", long).group(0)
        out.append((long, short, m.group(1) is not None, m.group(3) is not None))
    return out


def spellings(pattern, suffix=None):
    """Short, long and mixed-case spellings of a pattern (with `suffix` on its # node)."""
    ns = nodes(pattern)

    def word(text, has_suffix):
        return text + (str(suffix) if has_suffix and suffix is not None else "")

    short = ":".join(word(s, x) for (_, s, opt, x) in ns if not opt)
    long = ":".join(word(l.upper(), x) for (l, _, _, x) in ns)
    mixed = ":" + ":".join(
        word("".join(c.upper() if rng.random() < 0.5 else c.lower() for c in (l if rng.random() < 0.5 else s)), x)
        for (l, s, _, x) in ns
    )
    return {"short": short, "long": long, "mixed": mixed, "lower": long.lower()}


def fmt(prop, value):
    if prop["kind"] == "number":
        return f"{value:.{prop['decimals']}f}"
    if prop["kind"] == "boolean":
        return "1" if value else "0"
    return re.match(r"[A-Z]+", value).group(0)


rm = pyvisa.ResourceManager("@py")
inst = rm.open_resource(f"ASRL{link}::INSTR", read_termination="\n", timeout=3000)
PROPS = config["property"]


def silent(message):
    """`message` gets no reply: the read times out."""
    inst.write(message)
    saved, inst.timeout = inst.timeout, 400
    try:
        got = inst.read()
    except VisaIOError as e:
        expect(e.error_code, StatusCode.error_timeout, "error code")
        return
    finally:
        inst.timeout = saved
    raise AssertionError(f"{message!r} answered {got!r}")


def errors():
    out = []
    while True:
        e = inst.query("SYST:ERR?")
        if e == '0,"No error"':
            return out
        out.append(e)


def identity():
    expect(inst.query("*IDN?"), config["idn"])
    expect(inst.query("*idn?;*OPC?"), config["idn"] + ";1", "compound")
    inst.write("*RST;*CLS")
    # *STB? after *ESR?'s answer: MAV (16), that answer waits to be read.
    expect(inst.query("*ESR?;*STB?;SYST:ERR:COUN?"), "0;16;0")


def every_property_by_every_spelling():
    inst.write("*RST")
    for prop in PROPS:
        suffixes = prop.get("suffixes", 1)
        for n in range(1, suffixes + 1):
            forms = spellings(prop["header"], n if suffixes > 1 or n > 1 else None)
            if prop["kind"] == "number":
                lo, hi, d = prop["min"], prop["max"], prop["decimals"]
                values = [round(rng.uniform(lo, hi), d) for _ in forms]
            elif prop["kind"] == "boolean":
                values = [bool(i % 2) for i, _ in enumerate(forms)]
            else:
                values = [prop["choices"][i % len(prop["choices"])] for i, _ in enumerate(forms)]
            for (kind, setter), value, getter in zip(forms.items(), values, list(forms.values())[1:] + list(forms.values())[:1]):
                if prop.get("read_only"):
                    expect(inst.query(setter + "?"), fmt(prop, prop["default"]), f"{setter}?")
                    continue
                arg = value if prop["kind"] != "boolean" else ("ON" if value else "OFF")
                if prop["kind"] == "choice" and kind == "long":
                    arg = value.upper()  # the long form of the mnemonic
                elif prop["kind"] == "choice":
                    arg = re.match(r"[A-Z]+", value).group(0).lower()
                inst.write(f"{setter} {arg}")
                expect(inst.query(getter + "?"), fmt(prop, value), f"{setter} {arg}; {getter}?")
    expect(errors(), [], "errors")


def limits():
    inst.write("*RST")
    for prop in (p for p in PROPS if p["kind"] == "number"):
        s = spellings(prop["header"])["short"]
        lo, hi, default = (fmt(prop, prop[k]) for k in ("min", "max", "default"))
        expect(inst.query(f"{s}? MIN;{s.split(':')[-1]}? MAX;{s.split(':')[-1]}? DEF"), f"{lo};{hi};{default}", s)
        if prop.get("read_only"):
            continue
        for word, want in (("MAXimum", hi), ("min", lo), ("DEF", default)):
            inst.write(f"{s} {word}")
            expect(inst.query(f"{s}?"), want, f"{s} {word}")
        silent(f"{s} {prop['max'] + 1}")
        silent(f"{s} {prop['min'] - 1}")
        expect(errors(), ['-222,"Data out of range"'] * 2)
        # In the property's unit with a multiplier: milli.
        milli = round(prop["max"] * 1000 / 2)
        inst.write(f"{s} {milli} m{prop['unit']}")
        expect(inst.query(f"{s}?"), fmt(prop, milli / 1000), f"{s} {milli} m{prop['unit']}")
        silent(f"{s} 1 OHM")
        expect(errors(), ['-131,"Invalid suffix"'])
    expect(inst.query("*ESR?"), str(16 + 32), "EXE and CME")


def suffixes():
    for prop in (p for p in PROPS if p.get("suffixes", 1) > 1):
        forms = spellings(prop["header"], prop["suffixes"] + 1)
        silent(forms["short"] + " ON")
        expect(errors(), ['-114,"Header suffix out of range"'])


def relative_paths():
    volt = next(p for p in PROPS if p["name"] == "voltage")
    func = next(p for p in PROPS if p["name"] == "function")
    inst.write(f"SOUR:VOLT {volt['max']};FUNC {func['choices'][1]};:OUTP ON")
    expect(
        inst.query("SOURce:VOLTage?;FUNCtion?;:OUTP?"),
        f"{fmt(volt, volt['max'])};{fmt(func, func['choices'][1])};1",
    )
    # The issue's own example: SOUR:VOLT 5;CURR 1 sets SOUR:CURR.
    curr = next(p for p in PROPS if p["name"] == "current")
    inst.write(f"SOUR:VOLT {volt['min']};CURR {curr['max']}")
    expect(inst.query("SOUR:CURR?;VOLT?"), f"{fmt(curr, curr['max'])};{fmt(volt, volt['min'])}")
    silent("OUTP:STAT ON;VOLT 1")
    expect(errors(), ['-113,"Undefined header"'])


def wrong_commands_are_silent_and_queued():
    inst.write("*CLS")
    silent("FOO")
    silent("VOLTA 1")
    expect(inst.query("*ESR?"), "32", "CME")
    expect(inst.query("SYST:ERR?"), '-113,"Undefined header"')
    expect(inst.query("SYSTem:ERRor:NEXT?"), '-113,"Undefined header"')
    expect(inst.query("SYST:ERR?"), '0,"No error"')


def status_registers():
    inst.write("*CLS;*ESE 32;*SRE 36")
    expect(inst.query("*ESE?;*SRE?"), "32;36")
    silent("NOPE")
    expect(inst.query("*STB?"), str(4 + 32 + 64), "queue, ESB, MSS")
    inst.write("*CLS")
    expect(inst.query("*STB?;*ESE?;*SRE?"), "0;32;36")
    inst.write("*OPC")
    expect(inst.query("*ESR?"), "1")


def the_queue_overflows_and_survives_rst():
    inst.write("*CLS")
    for _ in range(25):
        inst.write("NOPE")
    expect(inst.query("SYST:ERR:COUN?"), str(config["error_queue"]))
    inst.write("*RST")
    got = errors()
    expect(len(got), config["error_queue"])
    expect(got[-1], '-350,"Queue overflow"')
    for _ in range(3):
        inst.write("NOPE")
    inst.write("*CLS")
    expect(inst.query("SYST:ERR:COUN?"), "0")


def every_line_ending():
    for ending in ("\r\n", "\n", "\r"):
        inst.write_termination = ending
        expect(inst.query("*IDN?"), config["idn"], repr(ending))
    inst.write_termination = "\r\n"


def a_measurement_run():
    """A sweep as a bench script does it: set, confirm, read the measured temperature the
    test moves from outside (ctl set), check for errors once at the end."""
    volt = next(p for p in PROPS if p["name"] == "voltage")
    inst.write("*RST;*CLS")
    inst.write("OUTP ON")
    step = (volt["max"] - volt["min"]) / 4
    for i in range(5):
        v = round(volt["min"] + i * step, volt["decimals"])
        inst.write(f"VOLT {v}")
        expect(inst.query("VOLT?;*OPC?"), f"{fmt(volt, v)};1")
    subprocess.run([serialtwin, "ctl", "--socket", socket, "set", "inst", "temperature", "31.5"], check=True, capture_output=True, timeout=30)
    temp = next(p for p in PROPS if p["name"] == "temperature")
    expect(inst.query("MEAS:TEMP?"), fmt(temp, 31.5))
    expect(inst.query("SYST:ERR?"), '0,"No error"')


def hostile_input():
    """Bad input answers nothing and queues a syntax or range error; an overlong line (past
    the framer's 1,024 bytes) is dropped whole and queues -363; the instrument answers on as
    before."""
    inst.write("*CLS")
    inst.write_raw(b"\xff\xfe\x00garbage\n")
    inst.write_raw(b"VOLT " + b"9" * 5000 + b"\n")
    inst.write_raw(b"DISP:TEXT 'open\r\n")
    inst.write_raw(b"VOLT 1E999999\n")
    expect(inst.query("*IDN?"), config["idn"])
    expect(
        errors(),
        [
            '-102,"Syntax error"',
            '-363,"Input buffer overrun"',
            '-102,"Syntax error"',
            '-222,"Data out of range"',
        ],
    )


check("*IDN? and compound queries", identity)
check("every property by short, long, mixed-case and lower-case spellings", every_property_by_every_spelling)
check("MIN, MAX, DEF, ranges and units", limits)
check("numeric suffixes out of range", suffixes)
check("the relative-path rule after ;", relative_paths)
check("a wrong command sends nothing and is queued", wrong_commands_are_silent_and_queued)
check("ESE, SRE, STB, OPC", status_registers)
check("the error queue: depth, -350, *RST keeps it, *CLS clears it", the_queue_overflows_and_survives_rst)
check("CR LF, LF and CR end a message", every_line_ending)
check("a measurement run", a_measurement_run)
check("garbage, an overlong line, an unterminated string, a huge number", hostile_input)
inst.close()
print(json.dumps(RESULTS))
