# The pymodbus simulator JSON import, by difference (modbus_simjson.rs): each device file is
# served by pymodbus 3.16.1's own ModbusSimulatorContext + ModbusSerialServer (on a pty pair
# joined by a byte relay below, no socat) and by serialtwin (its link given on the command
# line). ONE pymodbus client runs the same requests against both, in the same order: every
# address of every table (functions 1, 2, 3, 4), writes (5, 6, 15, 16, and 22, 23), then
# everything read again. The answers must be identical: the same exceptions everywhere, the same values
# wherever the file makes them deterministic. Where an action makes them random (random,
# uptime, timestamp), values are checked by range instead.
#
# argv: groups of four: <file.json> <server_list name> <device_list name> <serialtwin link>.
import asyncio
import datetime
import json
import os
import select
import struct
import threading
import tty

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.datastore import ModbusServerContext, ModbusSimulatorContext
from pymodbus.exceptions import ModbusIOException
from pymodbus.server import ModbusSerialServer

# A write plan per device name: (function, address, value or values). The addresses name
# what each write exercises in the test's files (modbus/simjson_*.json).
WRITES = {
    "meter": [
        (6, 3, 1234),  # a writable uint16
        (6, 2, 1),  # read-only bits cell: 02
        (6, 1, 1),  # invalid: 02
        (6, 20, 5),  # writable uint32, but type exception: 02
        (6, 21, 5),  # the uint32's second register: 02
        (6, 12, 1),  # writable bits with an increment: echo read back after the action
        (6, 48, 1),  # at the end of the cells: pymodbus's index error, 04
        (6, 49, 1),  # past it: 02
        (6, 40, 77),
        (6, 42, 78),  # a repeated copy of a writable register
        (16, 22, [1, 2]),
        (16, 22, [5, 6, 7]),  # 22 and 23 written, then 24 read-only: 02
        (16, 40, [9, 9]),
        (5, 0, False),
        (5, 1, True),
        (5, 15, False),
        (5, 33, True),  # cell 2, read-only: 02
        (5, 16, True),  # cell 1, invalid: 02
        (5, 192, False),  # cell 12, writable, increments when read back
        (15, 8, [True] * 12),  # runs into invalid cell 1, checked against cell 0
        (15, 30, [True] * 3),  # starts in cell 1: 02
        (15, 760, [True] * 20),  # cell 47, read-only: 02
        (22, 3, (0x00FF, 0x1200)),  # mask write: read (checked as a write), mask, write
        (22, 2, (0, 0)),  # read-only: 02
        (22, 12, (0xFFFF, 0)),  # the read runs the increment first
        (23, (22, 2), (40, [5, 6])),  # write 40-41, then read 22-23 (checked as writes)
        (23, (4, 2), (22, [1])),  # 22 written, the read-only read answers 02
    ],
    "device": [
        (6, 0, 5),
        (6, 1, 1),  # a uint32's first half: no type exception, allowed
        (6, 2, 2),  # and its second
        (6, 5, 1),  # read-only: 02
        (6, 7, 1),  # invalid: 02
        (6, 8, 0xFFFF),  # a bits cell as a register
        (6, 12, 1),  # at the end: 04
        (6, 13, 1),  # past it: 02
        (16, 0, [1, 2, 3, 4]),
        (16, 4, [10, 11, 12]),  # 16 written, 17 read-only: 02
        (5, 0, False),
        (5, 17, True),
        (5, 40, True),  # discrete-input cells: not writable, 02
        (15, 10, [True, False] * 8),
        (15, 380, [True]),  # the timestamp cell: 02
        (22, 0, (0xF0F0, 0x0101)),
        (23, (0, 3), (1, [7, 8])),
        (23, (5, 1), (0, [3])),  # 0 written, then read-only 5: 02
    ],
}

FUNCTIONS = {1: "read_coils", 2: "read_discrete_inputs", 3: "read_holding_registers", 4: "read_input_registers"}


def pty_pair():
    main, side = os.openpty()
    tty.setraw(side)
    return main, side, os.ttyname(side)


def relay(a, b):
    """Copy bytes both ways between two pty mains: the two sides become one line."""
    while True:
        ready, _, _ = select.select([a, b], [], [])
        for fd in ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            os.write(b if fd == a else a, data)


def serve_with_pymodbus(doc, server_name, device_name):
    """pymodbus's simulator on one pty, as its http_server builds it; the other end's path."""
    server_main, server_side, server_path = pty_pair()
    client_main, client_side, client_path = pty_pair()
    threading.Thread(target=relay, args=(server_main, client_main), daemon=True).start()
    server = dict(doc["server_list"][server_name])
    context = ModbusSimulatorContext(doc["device_list"][device_name], None)
    if "device_id" in server:
        datastore = ModbusServerContext(devices={int(server.pop("device_id")): context}, single=False)
    else:
        datastore = ModbusServerContext(devices=context, single=True)
    server.pop("comm")
    server.pop("identity", None)
    framer = server.pop("framer")
    server["port"] = server_path
    ready = threading.Event()

    def run():
        async def main():
            modbus = ModbusSerialServer(framer=framer, context=datastore, **server)
            # Built, not yet listening: check_device's first read waits for that.
            ready.set()
            await modbus.serve_forever()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return client_path, (server_side, client_side)


class Device:
    """What the test knows of one file: its layout, and the cells whose values are random."""

    def __init__(self, doc, server_name, device_name):
        self.name = device_name
        self.server = doc["server_list"][server_name]
        dev = doc["device_list"][device_name]
        setup = dev["setup"]
        sizes = {k: setup[k + " size"] for k in ("co", "di", "ir", "hr")}
        if setup["shared blocks"]:
            self.total = max(sizes.values())
            self.offsets = {1: 0, 2: 0, 3: 0, 4: 0}
        else:
            co, di, ir = sizes["co"], sizes["di"], sizes["ir"]
            self.total = co + di + ir + sizes["hr"]
            self.offsets = {1: 0, 2: co, 4: co + di, 3: co + di + ir}
        for write, read in ((5, 1), (15, 1), (6, 3), (16, 3), (22, 3), (23, 3)):
            self.offsets[write] = self.offsets[read]
        self.unit = int(self.server.get("device_id", 1))
        self.random = set()  # cells whose values are only known by range
        self.ranges = []  # (cell, type, low, high)
        counts = {"bits": 1, "int16": 1, "uint16": 1, "uint32": 2, "float32": 2, "float64": 4}
        for section, count in counts.items():
            for entry in dev.get(section, []):
                if not isinstance(entry, dict) or entry.get("action") not in ("random", "uptime", "timestamp"):
                    continue
                addr = entry["addr"]
                start, end = (addr, addr) if isinstance(addr, int) else addr
                action = entry["action"]
                span = 7 if action == "timestamp" else count
                self.random.update(range(start, start + span))
                params = entry.get("parameters", {})
                if action == "random":
                    self.ranges.append((start, section, params["minval"], params["maxval"]))
                elif action == "uptime":
                    self.ranges.append((start, section, 1, 3600))
                else:
                    self.ranges.append((start, "timestamp", None, None))
        for rule in dev.get("repeat", []):
            (a, b), (c, d) = rule["addr"], rule["to"]
            src = a
            for target in range(c, d + 1):
                if src in self.random:
                    self.random.add(target)
                src = a if src >= b else src + 1

    def cells(self, function, address, count):
        """The cells a request touches."""
        base = self.offsets[function]
        if function == 23:
            (read, read_count), (write, values) = address, count
            return set(range(base + read, base + read + read_count)) | set(
                range(base + write, base + write + len(values))
            )
        if function in (1, 2, 5, 15):
            return set(range(base + address // 16, base + (address + count - 1) // 16 + 1))
        return set(range(base + address, base + address + count))

    def requests(self):
        """Every address of every table, then the writes, then every address again."""
        plan = []
        for function in (3, 4):
            span = self.total - self.offsets[function] + 2
            for count in (1, 2, 4):
                plan += [(function, a, count) for a in range(span)]
        for function in (1, 2):
            span = (self.total - self.offsets[function]) * 16 + 18
            plan += [(function, a, 1) for a in range(span)]
            plan += [(function, a, 5) for a in range(0, span, 3)]
            plan += [(function, a, 20) for a in range(0, span, 7)]
        plan += WRITES[self.name]
        for function in (3, 4):
            plan += [(function, a, 1) for a in range(self.total - self.offsets[function] + 2)]
        plan += [(1, a, 16) for a in range(0, (self.total - self.offsets[1]) * 16 + 18, 16)]
        return plan


# How long the client waits for an answer: a safety net, never a timing check. Only the one
# request meant to go unanswered (another unit id on a bus) waits it out; every other answer
# comes in milliseconds, but a loaded machine can hold either server back for much longer
# than a real client's 0.5 s, and a late answer taken as the next request's shifts every
# answer after it.
PATIENCE = 5.0


def open_client(path, device):
    framer = FramerType.ASCII if device.server["framer"] == "ascii" else FramerType.RTU
    c = ModbusSerialClient(
        path,
        framer=framer,
        baudrate=device.server.get("baudrate", 19200),
        parity="N",
        stopbits=1,
        timeout=PATIENCE,
        retries=0,
    )
    if not c.connect():
        raise SystemExit(f"cannot open {path}")
    return c


def ask(c, unit, request):
    function, address, arg = request
    try:
        if function in FUNCTIONS:
            rr = getattr(c, FUNCTIONS[function])(address, count=arg, device_id=unit)
        elif function == 5:
            rr = c.write_coil(address, arg, device_id=unit)
        elif function == 6:
            rr = c.write_register(address, arg, device_id=unit)
        elif function == 15:
            rr = c.write_coils(address, arg, device_id=unit)
        elif function == 22:
            rr = c.mask_write_register(address=address, and_mask=arg[0], or_mask=arg[1], device_id=unit)
        elif function == 23:
            rr = c.readwrite_registers(
                read_address=address[0],
                read_count=address[1],
                write_address=arg[0],
                values=arg[1],
                device_id=unit,
            )
        else:
            rr = c.write_registers(address, arg, device_id=unit)
    except ModbusIOException:
        return ["silent"]
    if rr.isError():
        return ["exception", rr.exception_code]
    if function in (1, 2):
        return ["bits", list(rr.bits[:arg])]
    if function in (3, 4, 23):
        return ["registers", list(rr.registers)]
    if function == 22:
        return ["echo", rr.address, rr.and_mask, rr.or_mask]
    if function == 5:
        return ["echo", rr.address, list(rr.bits[:1])]
    if function == 6:
        return ["echo", rr.address, list(rr.registers)]
    return ["echo", rr.address, rr.count]


def decode(section, words):
    raw = b"".join(struct.pack(">H", w) for w in words)
    if section == "float32":
        return struct.unpack(">f", raw)[0]
    if section == "float64":
        return struct.unpack(">d", raw)[0]
    return int.from_bytes(raw, "big")


def by_range(c, device, cell, section, low, high):
    """Read a random value whole: ["in range"], ["exception", code], or ["out", why]."""
    function = 3 if cell >= device.offsets[3] else 4
    address = cell - device.offsets[function]
    count = {"timestamp": 7, "uint32": 2, "float32": 2, "float64": 4}.get(section, 1)
    answer = ask(c, device.unit, (function, address, count))
    if answer[0] != "registers":
        return answer
    if section == "timestamp":
        y, mo, d, _wd, h, mi, s = answer[1]
        at = datetime.datetime(y, mo + 1, d, h, mi, s)
        if abs((datetime.datetime.now() - at).total_seconds()) > 300:
            return ["out", f"cell {cell}: timestamp {at} is not now"]
        return ["in range"]
    value = decode(section, answer[1])
    if not low <= value <= high:
        return ["out", f"cell {cell}: {value} not in [{low}, {high}]"]
    return ["in range"]


def compare(device, plan, theirs, ours):
    """The differences, as text."""
    problems = []
    for request, a, b in zip(plan, theirs, ours):
        function, address, arg = request
        if function == 23:
            count = arg
        else:
            count = len(arg) if isinstance(arg, list) else (arg if function in (1, 2, 3, 4) else 1)
        random = device.cells(function, address, count) & device.random
        same = a == b or (random and a[0] == b[0] and a[0] in ("registers", "bits", "echo"))
        if not same:
            problems.append(f"{request}: pymodbus {a}, serialtwin {b}")
    return problems


def check_device(doc, server_name, device_name, link):
    device = Device(doc, server_name, device_name)
    theirs_path, _keep = serve_with_pymodbus(doc, server_name, device_name)
    plan = device.requests()
    answers = {}
    ranged = {}
    for who, path in (("pymodbus", theirs_path), ("serialtwin", link)):
        c = open_client(path, device)
        # pymodbus's server says it is ready before it has opened its port, and opening it
        # (pyserial) drops what was written before: a request sent then goes unanswered. One
        # read, on both sides alike, asked until it is answered (a handful of tries as a
        # safety net), so the plan starts on a listening server.
        for _ in range(6):
            if ask(c, device.unit, (3, 0, 1)) != ["silent"]:
                break
        else:
            raise SystemExit(f"{who}: no answer to a first read")
        answers[who] = [ask(c, device.unit, r) for r in plan]
        ranged[who] = [by_range(c, device, *spec) for spec in device.ranges]
        if "device_id" not in device.server:
            # No device_id: pymodbus answers any unit id with the same device.
            answers[who].append(ask(c, 200, (3, 0, 1)))
        else:
            # Another unit id: pymodbus answers 0B, serialtwin stays silent, as a unit on a
            # real line does (a difference on purpose, the only one).
            answers[who].append(ask(c, device.unit + 1, (3, 0, 1)))
        c.close()
    checks = []
    problems = compare(device, plan, answers["pymodbus"], answers["serialtwin"])
    if "device_id" not in device.server:
        a, b = answers["pymodbus"][-1], answers["serialtwin"][-1]
        if a != b:
            problems.append(f"unit 200: pymodbus {a}, serialtwin {b}")
    exceptions = {}
    for a in answers["pymodbus"]:
        if a[0] == "exception":
            exceptions[a[1]] = exceptions.get(a[1], 0) + 1
    if "device_id" in device.server:
        a, b = answers["pymodbus"][-1], answers["serialtwin"][-1]
        checks.append(
            {
                "name": f"{device_name}: another unit id, pymodbus 0B, serialtwin silent",
                "ok": a == ["exception", 11] and b == ["silent"],
                "error": f"pymodbus {a}, serialtwin {b}",
            }
        )
    checks.append(
        {
            "name": f"{device_name}: identical answers",
            "ok": not problems,
            "error": f"{len(problems)} of {len(plan)} differ:\n" + "\n".join(problems[:40]),
            "requests": len(plan),
            "exceptions": exceptions,
        }
    )
    # Each ranged value is in range on both, or the same exception on both.
    range_problems = [
        f"{spec}: pymodbus {a}, serialtwin {b}"
        for spec, a, b in zip(device.ranges, ranged["pymodbus"], ranged["serialtwin"])
        if a != b or a[0] == "out"
    ]
    in_range = sum(1 for a in ranged["serialtwin"] if a == ["in range"])
    checks.append(
        {
            "name": f"{device_name}: random values in range",
            "ok": not range_problems and in_range > 0,
            "error": "\n".join(range_problems) or "no value was in range",
            "in_range": in_range,
        }
    )
    return checks


def main():
    import sys

    args = sys.argv[1:]
    results = []
    for i in range(0, len(args), 4):
        path, server_name, device_name, link = args[i : i + 4]
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        results += check_device(doc, server_name, device_name, link)
    print(json.dumps(results))


main()
