# Read `count` sentences from a GPS port at `baud` and hand each to pynmea2 and pynmeagps with
# checksum validation; print one JSON list of checks ({"name", "ok", "detail"}).
import json
import sys

import pynmea2
import serial
from pynmeagps import NMEAReader
from pynmeagps.nmeatypes_core import VALCKSUM, VALMSGID

link, baud, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
port = serial.Serial(link, baud, timeout=10)
lines = []
while len(lines) < count:
    line = port.readline()
    if not line:
        break
    lines.append(line)
port.close()
# The first line may be the tail of a cycle begun before the port was open.
lines = lines[1:] if lines and not lines[0].startswith(b"$") else lines

results = []


def check(name, ok, detail=""):
    results.append({"name": name, "ok": bool(ok), "detail": detail})


check("read", len(lines) >= count - 1, f"{len(lines)} lines")
bad = []
tags = set()
rmc_times = []
for raw in lines:
    text = raw.decode("ascii")
    try:
        msg = pynmea2.parse(text.strip(), check=True)
        tags.add(msg.sentence_type)
        if msg.sentence_type == "RMC":
            rmc_times.append(msg.datetime.timestamp())
    except Exception as e:  # noqa: BLE001 -- every failure is reported
        bad.append(f"pynmea2 {text!r}: {e}")
    try:
        NMEAReader.parse(raw, validate=VALCKSUM | VALMSGID)
    except Exception as e:  # noqa: BLE001
        bad.append(f"pynmeagps {text!r}: {e}")
    if not raw.endswith(b"\r\n") or len(raw) > 82:
        bad.append(f"framing {text!r}")
check("every sentence parses with a valid checksum", not bad, "; ".join(bad[:5]))
check("all seven types", tags == {"GGA", "RMC", "GSA", "GSV", "VTG", "GLL", "ZDA"}, sorted(tags))
steps = [round(b - a, 3) for a, b in zip(rmc_times, rmc_times[1:])]
check("RMC steps one period", steps and all(s == round(1 / rate, 3) for s in steps), steps[:12])
print(json.dumps(results))
