"""TCPIP SOCKET resources through pyvisa-sim (`FILE@sim`) and through serialtwin's raw TCP
endpoint (the same resource name on `@py`, pyvisa-py): every reply byte-identical.

argv: FILE, then a JSON list of {"resource": name as in FILE, "idn": what its device's first
dialogue answers}. For each resource a script is generated from its device's own dialogues,
with its `TCPIP SOCKET` eom (LF both ways when it has none): each `q` as written, then what
pyvisa-sim does not know (the `q` lower-cased, with a trailing space or CR, an unknown header,
an empty message, two `q`s joined by the delimiter), then each status register and error
queue read around a command error. After each request a *sentinel* (the first dialogue with a
reply) is sent and replies are read up to the sentinel's (its last: a request holding the
sentinel among its delimited parts gets its reply too), so silence is seen as no reply without
waiting for a timeout; a timeout (the safety net) is "no reply", and a sentinel that differs
ends that resource's checks. Then a user's session, `open_resource(name,
write_termination=q, read_termination=r).query(sentinel)`, must get `idn` on both sides: the
endpoint serves this resource's device, not another one's.
Prints one JSON list of checks, as the other Python tests do.
"""

import json
import sys

import pyvisa
import yaml
from pyvisa import constants

path, wanted = sys.argv[1], json.loads(sys.argv[2])
with open(path, encoding="utf-8") as f:
    data = yaml.load(f, Loader=yaml.BaseLoader)

results = []


def check(name, ok, detail=""):
    results.append({"name": name, "ok": bool(ok), "detail": detail})


def read(inst, how="read_raw"):
    """A reply, or None for no reply (a timeout)."""
    try:
        return getattr(inst, how)()
    except pyvisa.errors.VisaIOError as e:
        if e.error_code == constants.StatusCode.error_timeout:
            return None
        raise


sides = {"sim": pyvisa.ResourceManager(path + "@sim"), "port": pyvisa.ResourceManager("@py")}

for want in wanted:
    resource = want["resource"]
    device = data["devices"][data["resources"][resource]["device"]]
    eom = device.get("eom", {}).get("TCPIP SOCKET", {"q": "\n", "r": "\n"})
    q_eom, r_eom = eom["q"].strip(" "), eom["r"].strip(" ")
    dialogues = device.get("dialogues", [])
    sentinel = next(d for d in dialogues if "r" in d)["q"].strip(" ")
    requests = [d["q"].strip(" ") for d in dialogues]
    requests += [q.lower() for q in requests if q.lower() != q]
    requests += [requests[0] + " ", requests[0] + "\r", "NO:SUCH:HEADER?", ""]
    delimiter = device.get("delimiter", ";")
    requests.append(delimiter.join(requests[:2]))
    error = device.get("error", {})
    if isinstance(error, dict):
        for entry in error.get("status_register", []) + error.get("error_queue", []):
            requests += [entry["q"], "FOO", entry["q"], entry["q"]]

    sessions = {}
    alone = {}
    for name, rm in sides.items():
        inst = rm.open_resource(resource, read_termination=r_eom, write_termination="")
        inst.timeout = 10_000  # a safety net: the sentinel always answers
        inst.write_raw((sentinel + q_eom).encode())
        alone[name] = read(inst)
        sessions[name] = inst
    check(f"{resource}: sentinel {sentinel!r}", alone["sim"] == alone["port"], repr(alone))
    if alone["sim"] != alone["port"] or alone["sim"] is None:
        for inst in sessions.values():
            inst.close()
        continue

    def exchange(name, request):
        inst = sessions[name]
        inst.write_raw((request + q_eom).encode())
        inst.write_raw((sentinel + q_eom).encode())
        sentinels = 1 + request.split(delimiter).count(sentinel)
        replies = []
        while replies.count(alone[name]) < sentinels:
            reply = read(inst)
            if reply is None:
                return replies + ["no reply"]
            replies.append(reply)
        return replies[:-1]

    for request in requests:
        sim, port = exchange("sim", request), exchange("port", request)
        check(f"{resource}: {request!r}", sim == port, f"sim {sim!r}, port {port!r}")
    for inst in sessions.values():
        inst.close()

    asked = {}
    for name, rm in sides.items():
        inst = rm.open_resource(resource, write_termination=q_eom, read_termination=r_eom)
        inst.timeout = 10_000
        inst.write(sentinel)
        asked[name] = read(inst, "read")
        inst.close()
    check(
        f"{resource}: query({sentinel!r}) is {want['idn']!r}",
        asked["sim"] == asked["port"] == want["idn"],
        repr(asked),
    )

print(json.dumps(results))
