# One pyserial 3.5 story against one RFC 2217 server, run by network_ser2net.rs once against
# ser2net 4.3.11 (telnet(rfc2217) in front of serialtwin ptys) and once against serialtwin's
# own rfc2217 endpoints: argv = label, PI30 url, echo device url. Each step records what it
# observed (never only pass/fail), so that the Rust side can assert what holds on each path
# and compare them. Timeouts are safety nets, except the one step that asks whether the server
# answers SET-CONTROL at all: waiting is the only way to see "no answer".
# The observations are one JSON object on the last line.
import json
import socket
import sys
import time

import serial

LABEL, PI_URL, ECHO_URL = sys.argv[1:4]
QPI = b"QPI\xbe\xac\r"
QPI_REPLY = b"(PI30\x9a\x0b\r"
PATIENCE = 5.0
seen = {"label": LABEL}


def step(name):
    def run(f):
        try:
            seen[name] = f()
        except Exception as e:  # every step runs; a failure is an observation too
            seen[name] = {"error": f"{type(e).__name__}: {e}"}
        return f
    return run


def open_url(url, **kw):
    return serial.serial_for_url(url, timeout=PATIENCE, **kw)


def ask(s, request=QPI):
    s.write(request)
    return s.read_until(b"\r").hex()


@step("open_without_ign_set_control")
def _():
    # Plain rfc2217:// (pyserial waits for every SET-CONTROL answer, 3 s each at most).
    s = open_url(PI_URL.split("?")[0])
    try:
        return {"opened": True, "reply": ask(s)}
    finally:
        s.close()


@step("session")
def _():
    s = open_url(PI_URL)
    out = {}
    try:
        out["reply_9600"] = ask(s)
        try:
            out["modem"] = {"cts": s.cts, "dsr": s.dsr, "cd": s.cd, "ri": s.ri}
        except Exception as e:
            out["modem"] = {"error": f"{type(e).__name__}: {e}"}
        s.baudrate = 19200
        out["reply_19200"] = ask(s)
        s.parity = serial.PARITY_EVEN
        out["reply_8E1"] = ask(s)
        s.parity = serial.PARITY_NONE
        # Purges: each is a round trip pyserial waits for.
        s.reset_input_buffer()
        s.reset_output_buffer()
        out["purged"] = True
        out["reply_after_purge"] = ask(s)
        try:
            s.send_break(0.25)
            out["break"] = "sent"
        except Exception as e:
            out["break"] = f"{type(e).__name__}: {e}"
        out["reply_after_break"] = ask(s)
    finally:
        s.close()
    return out


@step("ff_transparency")
def _():
    # An echoing scripted device (`default = "{0}"`, framing cr): every byte both ways, 0xFF
    # doubled on the wire by pyserial and by the server.
    s = open_url(ECHO_URL)
    try:
        request = b"\x01\xff\x02\xff\xff\x7f\x00\x80"
        s.write(request + b"\r")
        return {"sent": request.hex(), "echoed": s.read_until(b"\r").hex()}
    finally:
        s.close()


@step("signature")
def _():
    # pyserial never asks for it; a raw Telnet request: WILL COM-PORT-OPTION, then an empty
    # SIGNATURE (a request for the server's). The answer is the server's code 100.
    host, port = ECHO_URL[len("rfc2217://"):].split("?")[0].rsplit(":", 1)
    c = socket.create_connection((host.strip("[]"), int(port)), timeout=PATIENCE)
    try:
        c.sendall(b"\xff\xfb\x2c\xff\xfa\x2c\x00\xff\xf0")
        got = b""
        deadline = time.monotonic() + 2.0
        while b"\xff\xfa\x2c\x64" not in got or not got.split(b"\xff\xfa\x2c\x64", 1)[1].count(b"\xff\xf0"):
            c.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = c.recv(4096)
            except socket.timeout:
                return {"answered": False}
            if not chunk:
                return {"answered": False, "closed": True}
            got += chunk
        text = got.split(b"\xff\xfa\x2c\x64", 1)[1].split(b"\xff\xf0", 1)[0]
        return {"answered": True, "text": text.decode("latin-1")}
    finally:
        c.close()


print(json.dumps(seen))
