# pymodbus 3.16.1 through `serialtwin tap --framing modbus-rtu`, then against what the capture
# became (modbus_tap.rs). One story of requests: reads of every table on two units, writes,
# an exception, a silent unit, diagnostics, device identification, a broadcast, and reads that
# see the writes and a moving counter.
#
#   record PORT OUT FRAMING       run the story, write each request's answer to OUT (JSON)
#   replay PORT RECORDED FRAMING  run the same story: every answer must be the recorded one
#   learned PORT RECORDED FRAMING read each distinct read once: its last recorded answer
#
# FRAMING is modbus-rtu or modbus-ascii.
#
# Answers are what pymodbus decoded (registers, bits, exception codes, silence), never bytes
# computed by serialtwin.
import json
import sys
import time

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse

MODE, PORT = sys.argv[1], sys.argv[2]
FRAMER = {"modbus-rtu": FramerType.RTU, "modbus-ascii": FramerType.ASCII}[sys.argv[4]]

STORY = [
    ["read", 1, 3, 0, 10],
    ["read", 1, 4, 0, 4],
    ["read", 1, 1, 0, 8],
    ["read", 1, 2, 0, 4],
    ["read", 2, 3, 0, 3],
    ["read", 1, 4, 10, 2],
    ["write_register", 1, 5, 777],
    ["write_coils", 1, 0, [False, True, True]],
    ["read", 1, 3, 0, 10],
    ["read", 1, 1, 0, 8],
    ["read", 1, 3, 100, 1],
    ["read", 9, 3, 0, 1],
    ["diag", 1, "a537"],
    ["ident", 1],
    ["broadcast", 8, 55],
    ["pause"],
    ["read", 1, 4, 10, 2],
    ["read", 1, 3, 0, 10],
    ["read", 2, 3, 0, 3],
]

c = ModbusSerialClient(
    PORT,
    framer=FRAMER,
    baudrate=19200,
    parity="N",
    stopbits=1,
    timeout=0.5,
    retries=0,
)
if not c.connect():
    raise SystemExit(f"cannot open {PORT}")


def answer(rr):
    if isinstance(rr, ExceptionResponse):
        return {"exception": rr.exception_code}
    if rr.isError():
        return {"error": repr(rr)}
    return None


def run(step):
    kind = step[0]
    try:
        if kind == "read":
            _, unit, fc, address, count = step
            read = {
                1: c.read_coils,
                2: c.read_discrete_inputs,
                3: c.read_holding_registers,
                4: c.read_input_registers,
            }[fc]
            rr = read(address, count=count, device_id=unit)
            if (a := answer(rr)) is not None:
                return a
            if fc in (1, 2):
                return {"bits": rr.bits[:count]}
            return {"registers": rr.registers}
        if kind == "write_register":
            _, unit, address, value = step
            rr = c.write_register(address, value, device_id=unit)
            return answer(rr) or {"echo": [rr.address, rr.registers]}
        if kind == "write_coils":
            _, unit, address, values = step
            rr = c.write_coils(address, values, device_id=unit)
            return answer(rr) or {"echo": [rr.address, rr.count]}
        if kind == "diag":
            _, unit, data = step
            rr = c.diag_query_data(bytes.fromhex(data), device_id=unit)
            return answer(rr) or {"echo": rr.message.hex()}
        if kind == "ident":
            _, unit = step
            rr = c.read_device_information(read_code=1, object_id=0, device_id=unit)
            return answer(rr) or {
                "information": {str(k): v.decode() for k, v in rr.information.items()}
            }
        if kind == "broadcast":
            _, address, value = step
            c.write_register(address, value, device_id=0, no_response_expected=True)
            return {"broadcast": True}
        if kind == "pause":
            # SL 2.4.1's turnaround delay after a broadcast; the counter moves meanwhile.
            time.sleep(0.3)
            return {"paused": True}
    except ModbusIOException:
        return {"silent": True}
    raise SystemExit(f"unknown step {step}")


def key(step):
    return json.dumps(step)


if MODE == "record":
    answers = [[step, run(step)] for step in STORY]
    with open(sys.argv[3], "w") as f:
        json.dump(answers, f)
    print(json.dumps({"requests": sum(1 for s in STORY if s[0] != "pause")}))
else:
    with open(sys.argv[3]) as f:
        recorded = json.load(f)
    if MODE == "replay":
        checks = recorded
    else:
        # The last answer to each distinct read, and the other questions a map answers alone.
        last = {}
        for step, got in recorded:
            if step[0] in ("read", "diag", "ident"):
                last[key(step)] = [step, got]
        checks = list(last.values())
    failures = []
    for step, want in checks:
        got = run(step)
        if got != want:
            failures.append({"step": step, "want": want, "got": got})
    print(json.dumps({"checked": len(checks), "failures": failures}))
