"""The same script through pyvisa-sim (`FILE@sim`) and through serialtwin's port
(`ASRL<link>::INSTR`, pyvisa-py): every reply byte-identical.

argv: FILE, then RESOURCE=LINK pairs. The script for each device is generated from the
device's own dialogues: each `q` as written, then what pyvisa-sim does not know (the `q`
lower-cased, with a trailing space or CR, an unknown header, two `q`s joined by the
delimiter), then each status register and error queue read, around another command error. After each request a *sentinel* (the first dialogue with a reply) is sent, and
replies are read until the sentinel's: so silence is seen as silence, without timing.
Prints one JSON list of checks, as the other Python tests do.
"""

import json
import sys

import pyvisa
import yaml

path, pairs = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
with open(path, encoding="utf-8") as f:
    data = yaml.load(f, Loader=yaml.BaseLoader)

results = []


def check(name, ok, detail=""):
    results.append({"name": name, "ok": bool(ok), "detail": detail})


sim_rm = pyvisa.ResourceManager(path + "@sim")
py_rm = pyvisa.ResourceManager("@py")

for resource, link in pairs:
    device = data["devices"][data["resources"][resource]["device"]]
    eom = device.get("eom", {}).get("ASRL INSTR", {"q": "\n", "r": "\n"})
    q_eom, r_eom = eom["q"].strip(" "), eom["r"].strip(" ")
    dialogues = device.get("dialogues", [])
    sentinel = next(d for d in dialogues if "r" in d)["q"].strip(" ")
    requests = [d["q"].strip(" ") for d in dialogues]
    requests += [q.lower() for q in requests if q.lower() != q]
    requests += [requests[0] + " ", requests[0] + "\r", "NO:SUCH:HEADER?", ""]
    requests.append(device.get("delimiter", ";").join(requests[:2]))
    error = device.get("error", {})
    if isinstance(error, dict):
        for entry in error.get("status_register", []) + error.get("error_queue", []):
            requests += [entry["q"], "FOO", entry["q"], entry["q"]]
    sessions = {}
    for name, rm, res in (("sim", sim_rm, resource), ("port", py_rm, f"ASRL{link}::INSTR")):
        inst = rm.open_resource(res, read_termination=r_eom, write_termination="")
        inst.timeout = 10_000  # a safety net: the sentinel always answers
        sessions[name] = inst

    def exchange(inst, request):
        inst.write_raw((request + q_eom).encode())
        inst.write_raw((sentinel + q_eom).encode())
        replies = []
        while True:
            reply = inst.read_raw()
            replies.append(reply)
            if reply == sessions_sentinel[id(inst)]:
                return replies[:-1]

    # What the sentinel itself gets, alone, on each side (a dialogue: the same, checked below).
    sessions_sentinel = {}
    for name, inst in sessions.items():
        inst.write_raw((sentinel + q_eom).encode())
        sessions_sentinel[id(inst)] = inst.read_raw()
    check(
        f"{resource}: sentinel {sentinel!r}",
        sessions_sentinel[id(sessions["sim"])] == sessions_sentinel[id(sessions["port"])],
        repr(sessions_sentinel),
    )
    for request in requests:
        sim = exchange(sessions["sim"], request)
        port = exchange(sessions["port"], request)
        check(f"{resource}: {request!r}", sim == port, f"sim {sim!r}, port {port!r}")
    for inst in sessions.values():
        inst.close()

print(json.dumps(results))
