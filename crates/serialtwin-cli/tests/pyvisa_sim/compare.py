"""The same script through pyvisa-sim (`FILE@sim`, or `@sim` for its bundled file) and
through what serialtwin serves (pyvisa-py on `@py`: `ASRL<link>::INSTR` for a port, the
resource's own `TCPIP::host::port::SOCKET` name for a raw TCP endpoint): every reply
byte-identical, random ones alike in format and range.

argv: the `@sim` resource manager's spec, the YAML file it reads, then SIM=PY pairs: the
resource's name in the file, and the name pyvisa-py opens. The device's eom is the one of the
resource's interface (`ASRL INSTR` or `TCPIP SOCKET`; LF both ways when it has none).

The script for each device is generated from the device's own definition:
- each dialogue's `q`; then what pyvisa-sim does not know: a `q` lower-cased, with a trailing
  space or CR, an unknown header, an empty request, two `q`s joined by the delimiter;
- each property's getter; for each setter, values its specs take (the default, `min`,
  `max`, between them, every `valid` entry), values they refuse (beyond `max`, below `min`,
  not `valid`) and text its pattern does not read (one digit where `{:f}` wants two, a word),
  each followed by the getter;
- for each channel of each group: its dialogues and getters, and its setters' cases each
  followed by the getters (a group that does not select in the request switched to each
  channel first by the device's `selected_channel` setter);
- each status register and error queue read, around another command error.

After each request a *sentinel* (a dialogue with a fixed reply) is sent, and replies are read
until the sentinel's: silence is seen as silence without timing. A device with no fixed reply
anywhere (the bundled file's device 5: every reply is RANDOM) is read until a 0.5 s silence
instead. A request pyvisa-sim raises on (a format that does not fit the value, a broken
RANDOM directive) gets no reply from the port: both sides then show the replies before it.
A reply to a RANDOM request is checked on each side against its directive: the count of
values, each one `format(float(v), spec) == v`, each within [min, max].
Prints one JSON list of checks, as the other Python tests do.
"""

import json
import os
import re
import sys

import pyvisa
import yaml

sim_spec, path, pairs = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
with open(path, encoding="utf-8") as f:
    data = yaml.load(f, Loader=yaml.BaseLoader)

results = []


def check(name, ok, detail=""):
    results.append({"name": name, "ok": bool(ok), "detail": detail})


RANDOM = re.compile(r"{RANDOM\((\d*.\d*), (\d*.\d*), (\d*)\).*}")


def random_shape(directive, reply):
    """Whether `reply` is what `directive` makes: n values of its format within range."""
    found = RANDOM.findall(directive)
    if not found:
        return False
    low, high, count = float(found[0][0]), float(found[0][1]), int(found[0][2])
    spec = re.sub(r"RANDOM\((\d*.\d*), (\d*.\d*), (\d*)\)", "", directive)
    values = reply.split(", ") if count else []
    if len(values) != count:
        return False
    for v in values:
        try:
            x = float(v)
        except ValueError:
            return False
        if spec.format(x) != v or not low <= x <= high:
            return False
    return True


def setter_cases(setter, specs, default):
    """Text for a setter's value: taken, refused by the specs, or not read by the pattern."""
    pattern = setter["q"].strip(" ")
    kind = re.search(r"{[^}]*?([dfsxeEgG%])?}", pattern).group(1) or "s"

    def text(value):
        if kind == "d":
            return str(int(float(value)))
        if kind in "feEgG":
            return f"{float(value):.3f}"
        return str(value)

    values = [default] if default != "" else []
    cases = []
    if specs.get("min") is not None:
        values.append(specs["min"])
    if specs.get("max") is not None:
        values.append(specs["max"])
    if "min" in specs and "max" in specs:
        values.append((float(specs["min"]) + float(specs["max"])) / 2)
        cases.append(text(float(specs["max"]) + 1))
        cases.append(text(float(specs["min"]) - 1))
    values += list(specs.get("valid", []))
    if specs.get("valid"):
        cases.append("P99V" if kind == "s" else "7")
    if kind in "feEgG":
        cases += ["5", "abc"]
    elif kind == "d":
        cases += ["1.5", "abc"]
    fmt = re.sub(r"{[^}]*}", "{}", pattern.replace("{{", "\0").replace("}}", "\1"))
    fmt = fmt.replace("\0", "{{").replace("\1", "}}")
    return [fmt.format(text(v)) for v in values] + [fmt.format(c) for c in cases]


def channel_requests(device):
    """For each channel of each group: its dialogues and getters, its setters' cases each
    followed by the getter (of every channel, where the request names the channel). A group
    that does not select in the request is switched to each channel first with the device's
    `selected_channel` setter."""
    out = []
    select = device.get("properties", {}).get("selected_channel", {}).get("setter", {}).get("q")
    for group in device.get("channels", {}).values():
        ids = group.get("ids", [])
        can_select = group.get("can_select") != "False"
        for ch in ids:
            if can_select:
                fill = lambda q, ch=ch: q.strip(" ").replace("{ch_id}", ch)
            elif select:
                out.append(re.sub(r"{[^}]*}", ch, select.strip(" "), count=1))
                fill = lambda q: q.strip(" ")
            else:
                continue
            out += [fill(d["q"]) for d in group.get("dialogues", [])]
            for prop in group.get("properties", {}).values():
                getter = prop.get("getter", {}).get("q", "")
                readers = (
                    [getter.strip(" ").replace("{ch_id}", other) for other in ids]
                    if can_select
                    else [fill(getter)]
                ) if getter else []
                out += readers[ids.index(ch) : ids.index(ch) + 1] if can_select else readers
                if "setter" in prop:
                    setter = dict(prop["setter"], q=fill(prop["setter"]["q"]))
                    for case in setter_cases(setter, prop.get("specs", {}), prop.get("default", "")):
                        out.append(case)
                        out += readers
    return out


sim_rm = pyvisa.ResourceManager(sim_spec)
py_rm = pyvisa.ResourceManager("@py")

def device_of(resource):
    """The resource's device, in this file or in the one its `filename` names beside it."""
    entry = data["resources"][resource]
    if "filename" in entry:
        with open(os.path.join(os.path.dirname(path), entry["filename"]), encoding="utf-8") as f:
            return yaml.load(f, Loader=yaml.BaseLoader)["devices"][entry["device"]]
    return data["devices"][entry["device"]]


for resource, py_resource in pairs:
    device = device_of(resource)
    interface = "TCPIP SOCKET" if resource.upper().endswith("::SOCKET") else "ASRL INSTR"
    eom = device.get("eom", {}).get(interface, {"q": "\n", "r": "\n"})
    q_eom, r_eom = eom["q"].strip(" "), eom["r"].strip(" ")
    dialogues = device.get("dialogues", [])
    randoms = {d["q"].strip(" "): d["r"].strip(" ") for d in dialogues if "RANDOM" in d.get("r", "")}
    fixed = [d for d in dialogues if "r" in d and "RANDOM" not in d["r"]]
    sentinel = fixed[0]["q"].strip(" ") if fixed else None
    requests = [d["q"].strip(" ") for d in dialogues]
    requests += [q.lower() for q in requests if q.lower() != q]
    requests += [requests[0] + " ", requests[0] + "\r", "NO:SUCH:HEADER?", ""]
    delimiter = device.get("delimiter", ";")
    requests.append(delimiter.join(requests[:2]))
    for prop in device.get("properties", {}).values():
        getter = prop.get("getter", {}).get("q", "").strip(" ")
        if getter:
            requests.append(getter)
            if "RANDOM" in prop["getter"].get("r", ""):
                randoms[getter] = prop["getter"]["r"].strip(" ")
        if "setter" in prop:
            for case in setter_cases(prop["setter"], prop.get("specs", {}), prop.get("default", "")):
                requests.append(case)
                if getter:
                    requests.append(getter)
    requests += channel_requests(device)
    error = device.get("error", {})
    if isinstance(error, dict):
        for entry in error.get("status_register", []) + error.get("error_queue", []):
            requests += [entry["q"], "FOO", entry["q"], entry["q"]]
    sessions = {}
    for name, rm, res in (("sim", sim_rm, resource), ("port", py_rm, py_resource)):
        inst = rm.open_resource(res, read_termination=r_eom, write_termination="")
        # A safety net where a sentinel answers; the silence that ends a reply without one.
        inst.timeout = 10_000 if sentinel else 500
        sessions[name] = inst
    expected_sentinel = {}

    def exchange(name, request):
        inst = sessions[name]
        raised = None
        try:
            inst.write_raw((request + q_eom).encode())
        except Exception as e:  # pyvisa-sim raises what its device raises
            raised = f"{type(e).__name__}: {e}"
        replies = []
        if sentinel is None:
            while True:
                try:
                    replies.append(inst.read_raw())
                except pyvisa.errors.VisaIOError:
                    return replies, raised
        inst.write_raw((sentinel + q_eom).encode())
        # The sentinel's reply ends the exchange, after those of any part that is the
        # sentinel itself.
        pending = 1 + request.split(delimiter).count(sentinel)
        while True:
            reply = inst.read_raw()
            replies.append(reply)
            if reply == expected_sentinel[name]:
                pending -= 1
                if pending == 0:
                    return replies[:-1], raised

    if sentinel:
        for name, inst in sessions.items():
            inst.write_raw((sentinel + q_eom).encode())
            expected_sentinel[name] = inst.read_raw()
        check(
            f"{resource}: sentinel {sentinel!r}",
            expected_sentinel["sim"] == expected_sentinel["port"],
            repr(expected_sentinel),
        )
    for request in requests:
        sim, raised = exchange("sim", request)
        port, _ = exchange("port", request)
        detail = f"sim {sim!r} (raised: {raised}), port {port!r}"
        parts = request.split(delimiter) if delimiter else [request]
        if any(part in randoms for part in parts) and not raised:
            # One reply per part, each random one alike in shape, the others equal.
            def alike(replies):
                if len(replies) != len(parts):
                    return False
                for part, reply in zip(parts, replies):
                    text = reply.decode()[: -len(r_eom)] if r_eom else reply.decode()
                    if part in randoms and not random_shape(randoms[part], text):
                        return False
                return True

            same = [r for p, r in zip(parts, sim) if p not in randoms] == [
                r for p, r in zip(parts, port) if p not in randoms
            ]
            check(f"{resource}: {request!r} (random)", alike(sim) and alike(port) and same, detail)
        else:
            check(f"{resource}: {request!r}", sim == port, detail)
    for inst in sessions.values():
        inst.close()

print(json.dumps(results))
