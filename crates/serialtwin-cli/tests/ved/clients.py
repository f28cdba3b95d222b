# VE.Direct clients against an emulated charger; prints one JSON list of checks
# ({"name", "ok", "detail"}).
#
#   clients.py text <link> <mppsolar>   vedirect-m8 1.3.4 and mppsolar 0.16.56 read text blocks
#   clients.py hex <link> <mode> <ctl...>
#                                       a raw reader (pyserial) writes HEX frames and decodes the
#                                       stream itself; HEX sums checked by mppsolar's own
#                                       vedHexChecksum. <mode>: "async" (async frames on, text
#                                       keeps flowing; `<ctl...> irradiance 0` is run to change
#                                       the device state), "inblock" (the same, the frames between
#                                       a block's fields) or "pause" (text pauses while HEX flows)
import json
import subprocess
import sys
import time

import serial
from mppsolar.protocols.protocol_helpers import vedHexChecksum

results = []


def check(name, ok, detail=""):
    results.append({"name": name, "ok": bool(ok), "detail": str(detail)[:2000]})


def hex_valid(frame):
    """A HEX frame (`:` ... without `\n`) whose sum is 0x55, by mppsolar's own function."""
    digits = "0" + frame[1:]
    try:
        data = bytes.fromhex(digits)
    except ValueError:
        return False
    return len(data) >= 2 and vedHexChecksum(data[:-1]) == data[-1]


class StreamDecoder:
    """VE.Direct as OpenDTU reads it: `:` starts a HEX frame anywhere but at a block's checksum
    byte; HEX bytes stay out of the text sum; text resumes after the HEX `\n`. The first block
    may have begun before the port was open: it is reported as partial."""

    def __init__(self):
        self.block = bytearray()
        self.hex = None
        self.at_checksum = False
        self.synced = False
        self.hex_inside = 0  # HEX frames begun while a block was in progress

    def push(self, b):
        if self.hex is not None:
            if b != 0x0A:
                self.hex.append(b)
                return None
            frame, self.hex = self.hex.decode("ascii", "replace"), None
            return ("hex", frame)
        if b == ord(":") and not self.at_checksum:
            self.hex = bytearray(b":")
            if self.synced and self.block:
                self.hex_inside += 1
            return None
        self.block.append(b)
        if self.at_checksum:
            self.at_checksum = False
            block, self.block = bytes(self.block), bytearray()
            if not self.synced:
                self.synced = True
                return ("partial", block)
            return ("block", block)
        self.at_checksum = self.block.endswith(b"\r\nChecksum\t")
        return None


def block_fields(block):
    body = block[2:-1].decode("ascii").split("\r\n")
    return [tuple(f.split("\t", 1)) for f in body]


def text(link, mppsolar):
    from vedirect_m8.vedirect import Vedirect

    ve = Vedirect({"serial_port": link, "baud": 19200, "timeout": 5})
    packets, errors = [], []
    deadline = time.monotonic() + 30
    while len(packets) < 3 and time.monotonic() < deadline:
        try:
            packets.append(ve.read_data_single(timeout=10))
        except Exception as e:  # a block begun before the port opened: vedirect-m8 keeps its fields
            errors.append(repr(e))
            ve.init_data_read()
    ve.close_serial()
    check("vedirect-m8 read 3 blocks", len(packets) == 3, f"{packets} {errors}")
    check("vedirect-m8: at most the first block lost", len(errors) <= 1, errors)
    labels = ["PID", "FW", "SER#", "V", "I", "VPV", "PPV", "CS", "MPPT", "OR", "ERR", "LOAD",
              "IL", "H19", "H20", "H21", "H22", "H23", "HSDS"]
    check("vedirect-m8: the 19 fields", all(list(p) == labels for p in packets), packets)
    check("vedirect-m8: the charger's values",
          all(p["PID"] == "0xA053" and p["SER#"] == "HQ2133ABCDE" and int(p["PPV"]) > 0
              and int(p["VPV"]) > int(p["V"]) > 11000 for p in packets), packets)

    out = subprocess.run([mppsolar, "-P", "ved", "--porttype", "vserial", "-b", "19200",
                          "-p", link, "-o", "json"], capture_output=True, timeout=120)
    stdout = out.stdout.decode("utf-8", "replace")
    check("mppsolar exits 0", out.returncode == 0, stdout + out.stderr.decode("utf-8", "replace"))
    answers = [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]
    answer = answers[0] if answers else {}
    data = {k: v for k, v in answer.items() if not k.startswith("_")}
    check("mppsolar reads the 19 fields of a block",
          answer.get("_command") == "vedtext" and len(data) == 19
          and data.get("product_id") == "0xA053" and data.get("serial_number") == "HQ2133ABCDE",
          stdout)
    volts = data.get("main_or_channel_1_battery_voltage", 0)
    check("mppsolar: battery and panel in volts, charging",
          11 < volts < 15 and data.get("panel_voltage", 0) > volts
          and data.get("state_of_operation") in ("3", "5"), data)

    raw = serial.Serial(link, 19200, timeout=3)
    decoder, blocks = StreamDecoder(), []
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        for b in raw.read(64):
            found = decoder.push(b)
            if found and found[0] == "block":
                blocks.append(found[1])
    raw.close()
    check("raw: blocks sum to 0 mod 256",
          len(blocks) >= 2 and all(sum(b) % 256 == 0 for b in blocks), [sum(b) % 256 for b in blocks])


def hex_mode(link, mode, ctl):
    port = serial.Serial(link, 19200, timeout=0.2)
    decoder = StreamDecoder()
    events = []  # (seconds since start, kind, frame)
    t0 = time.monotonic()
    requests = [b":154\n", b":7D5ED008C\n", b":70010003E\n", b":155\n"]
    sent, dark = False, None
    while time.monotonic() - t0 < 9:
        now = time.monotonic() - t0
        seen = sum(1 for e in events if e[1] == "block")
        if not sent and seen >= 2:
            port.write(b"".join(requests))
            sent, sent_at = True, now
        if mode in ("async", "inblock") and dark is None and seen >= 4:
            subprocess.run(ctl + ["irradiance", "0"], check=True, capture_output=True, timeout=30)
            dark = now
        for b in port.read(256):
            found = decoder.push(b)
            if found:
                events.append((time.monotonic() - t0, found[0], found[1]))
    port.close()
    frames = [e[2] for e in events if e[1] == "hex"]
    blocks = [e for e in events if e[1] == "block"]
    check("every HEX frame sums to 0x55 (mppsolar's vedHexChecksum)",
          frames and all(hex_valid(f) for f in frames), frames)
    check("every block sums to 0 mod 256", blocks and all(sum(b[2]) % 256 == 0 for b in blocks),
          [sum(b[2]) % 256 for b in blocks])
    check("ping answered", ":55941B6" in frames, frames)
    check("get 0xEDD5 answered with a value",
          any(f.startswith(":7D5ED00") and len(f) == 14 for f in frames), frames)
    check("get 0x1000: 100 Ah", ":70010006400DA" in frames, frames)
    check("a bad checksum answered :4AAAA", ":4AAAAFD" in frames, frames)
    if mode in ("async", "inblock"):
        asyncs = [f for f in frames if f.startswith(":A")]
        ids = {f[2:6] for f in asyncs}
        check("async frames of 0x0201, 0xEDD5, 0xEDDB", {"0102", "D5ED", "DBED"} <= ids, asyncs)
        late = [e[2] for e in events if e[1] == "hex" and dark is not None and e[0] > dark]
        # 0x0201 = 0 (off): A + 01 + 02 + 00 + 00 + 0x48 = 0x55.
        check("the sun gone: device state 0 reported", ":A0102000048" in late, late)
        if mode == "inblock":
            check("async frames between a block's fields", decoder.hex_inside > 0, frames)
        else:
            check("async frames between blocks only", decoder.hex_inside == 0, frames)
        gaps = [b[0] for b in blocks if b[0] > sent_at]
        check("text keeps flowing through HEX", len(gaps) >= 5, [round(b[0], 2) for b in blocks])
    else:
        check("no async frames", not any(f.startswith(":A") for f in frames), frames)
        after = [round(b[0] - sent_at, 2) for b in blocks if b[0] > sent_at]
        # hex_quiet_s = 3: nothing for about 3 s, then a block a second again.
        check("text pauses while HEX flows, then comes back",
              after and after[0] > 2.5 and len(after) >= 2, after)


if sys.argv[1] == "text":
    text(sys.argv[2], sys.argv[3])
else:
    hex_mode(sys.argv[2], sys.argv[3], sys.argv[4:])
print(json.dumps(results))
