# gensio (Debian's python3-gensio, the library ser2net speaks Telnet with) as a second,
# independent RFC 2217 client of serialtwin's endpoint, run by network_gensio.rs with Debian's
# /usr/bin/python3: argv = serialtwin binary, control socket, the PI30 port's RFC 2217 address
# (host:port), its port name. Every check runs whatever the one before did; the results are one
# JSON list on the last line. Timeouts are safety nets, never what a check measures.
#
# gensio's client reports every NOTIFY-MODEMSTATE and NOTIFY-LINESTATE it gets, as received
# (`modemstate`, `linestate` callbacks), and its `sg_modemstate` / `sg_linestate` send
# SET-MODEMSTATE-MASK / SET-LINESTATE-MASK (lib/sergensio_telnet.c) without waiting for the
# answer, so each mask is followed by a round trip gensio does wait for (a SET-CONTROL DTR
# query) before the device changes a line: the server answers in order, so the mask is in
# effect once an answer is back. (gensio 2.6.2 takes the mask's answer, which comes first, as
# the answer to the pending query, so the query's value is not checked there.) gensio's client
# cannot send NOTIFY-MODEMSTATE (client code 7): that check speaks Telnet on a plain socket.
import json
import socket
import subprocess
import sys
import time

import gensio

BIN, CONTROL, RFC, PORT = sys.argv[1:5]
HOST, TCP_PORT = RFC.rsplit(":", 1)
HOST = HOST.strip("[]")
QPI = b"QPI\xbe\xac\r"
QPI_REPLY = b"(PI30\x9a\x0b\r"
PATIENCE = 10.0
results = []

CTS, DSR, RI, DCD = 0x10, 0x20, 0x40, 0x80
D_CTS, D_DSR, TERI, D_DCD = 0x01, 0x02, 0x04, 0x08
BREAK_DETECT = 0x10


def check(name):
    def run(f):
        try:
            detail = f()
            results.append({"name": name, "ok": True, "detail": detail or ""})
        except Exception as e:  # every check runs, each failure is reported
            results.append({"name": name, "ok": False, "detail": f"{type(e).__name__}: {e}"})
        return f
    return run


def ctl(*words):
    out = subprocess.run([BIN, "ctl", "--socket", CONTROL, *words], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"ctl {' '.join(words)}: {out.stdout}{out.stderr}")


def expect(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


class Logger:
    def gensio_log(self, level, log):
        print(f"gensio {level}: {log}", file=sys.stderr)


class Client:
    """One gensio `telnet(rfc2217),tcp` connection; everything it reports, in order."""

    def __init__(self, o):
        self.o = o
        self.waiter = gensio.waiter(o)
        self.data = b""
        self.events = []  # ("modem", byte) and ("line", byte), in the order they came
        self.closed = None
        self.io = gensio.gensio(o, f"telnet(rfc2217),tcp,{HOST},{TCP_PORT}", self)
        self.io.open_s()
        self.io.read_cb_enable(True)
        self.sio = self.io.cast_to_sergensio()

    # gensio's event handler.
    def read_callback(self, io, err, buf, auxdata):
        if err:
            self.closed = err
            io.read_cb_enable(False)
            return 0
        self.data += buf
        return len(buf)

    def write_callback(self, io):
        pass

    def modemstate(self, io, state):
        self.events.append(("modem", state))

    def linestate(self, io, state):
        self.events.append(("line", state))

    def pump_until(self, what, predicate):
        deadline = time.monotonic() + PATIENCE
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {PATIENCE} s: {what}; events {self.events}")
            self.waiter.service(10)

    def next_event(self, what):
        """The next notification, which must be the first one after those already taken."""
        self.pump_until(what, lambda: self.events)
        return self.events.pop(0)

    def ask(self, request, until=b"\r"):
        self.data = b""
        left = request
        while left:
            left = left[self.io.write(left, None):]
            if left:
                self.waiter.service(10)
        self.pump_until("a reply", lambda: self.data.endswith(until))
        return self.data

    def sync(self):
        """A round trip gensio waits for: everything sent before it has been handled. Its
        value is not checked: gensio takes the first answer to arrive, a mask's included."""
        return self.sio.sg_dtr_s(0)

    def close(self):
        self.io.close_s()


o = gensio.alloc_gensio_selector(Logger())
client = None


@check("gensio opens telnet(rfc2217) and the PI30 answers QPI")
def _():
    global client
    client = Client(o)
    expect(client.ask(QPI), QPI_REPLY, "reply")


@check("the first NOTIFY-MODEMSTATE: CD, DSR, CTS, no delta bits")
def _():
    expect(client.next_event("the first modem state"), ("modem", DCD | DSR | CTS), "first notification")


@check("mask 255: each ctl line change with its delta bit")
def _():
    steps = [
        (("cts", "off"), DCD | DSR | D_CTS),
        (("dsr", "off"), DCD | D_DSR),
        (("ri", "on"), DCD | RI),  # a rising RI has no delta bit
        (("ri", "off"), DCD | TERI),  # its trailing edge does
        (("dcd", "off"), D_DCD),
        (("dcd", "on"), DCD | D_DCD),
        (("cts", "on"), DCD | CTS | D_CTS),
        (("dsr", "on"), DCD | DSR | CTS | D_DSR),
    ]
    for (line, state), want in steps:
        ctl("line", PORT, line, state)
        expect(client.next_event(f"{line} {state}"), ("modem", want), f"after {line} {state}")


@check("SET-MODEMSTATE-MASK 0x11 (CTS, delta CTS): the rest filtered out")
def _():
    client.sio.sg_modemstate(CTS | D_CTS)
    client.sync()
    # DSR drops: the state ANDed with the mask still has CTS, so it is sent, without DSR's bits.
    ctl("line", PORT, "dsr", "off")
    expect(client.next_event("dsr off"), ("modem", CTS), "dsr off through mask 0x11")
    ctl("line", PORT, "cts", "off")
    expect(client.next_event("cts off"), ("modem", D_CTS), "cts off through mask 0x11")
    # Only the DSR delta now: a CTS change leaves nothing, so the next notification is DSR's.
    client.sio.sg_modemstate(D_DSR)
    client.sync()
    ctl("line", PORT, "cts", "on")
    ctl("line", PORT, "dsr", "on")
    expect(client.next_event("dsr on"), ("modem", D_DSR), "first notification through mask 0x02")
    client.sio.sg_modemstate(0xFF)
    client.sync()
    ctl("line", PORT, "ri", "on")
    expect(client.next_event("ri on"), ("modem", DCD | RI | DSR | CTS), "mask 255 again")
    ctl("line", PORT, "ri", "off")
    expect(client.next_event("ri off"), ("modem", DCD | DSR | CTS | TERI), "ri's trailing edge")


@check("line-state mask 0 (the default): a device break sends nothing")
def _():
    ctl("line", PORT, "break", "on")
    ctl("line", PORT, "break", "off")
    # Anything sent for the break would come before this modem notification.
    ctl("line", PORT, "cts", "off")
    expect(client.next_event("cts off"), ("modem", DCD | DSR | D_CTS), "the next notification")
    ctl("line", PORT, "cts", "on")
    expect(client.next_event("cts on"), ("modem", DCD | DSR | CTS | D_CTS), "cts back")


@check("SET-LINESTATE-MASK 0x10: ctl line break on gives NOTIFY-LINESTATE break-detect")
def _():
    client.sio.sg_linestate(BREAK_DETECT)
    client.sync()
    ctl("line", PORT, "break", "on")
    expect(client.next_event("break on"), ("line", BREAK_DETECT), "break on")
    # Holding it again changes nothing, and its end is a line state of 0: nothing to send.
    ctl("line", PORT, "break", "on")
    ctl("line", PORT, "break", "off")
    ctl("line", PORT, "dcd", "off")
    expect(client.next_event("dcd off"), ("modem", DSR | CTS | D_DCD), "the next notification")
    ctl("line", PORT, "dcd", "on")
    expect(client.next_event("dcd on"), ("modem", DCD | DSR | CTS | D_DCD), "dcd back")
    # A mask without break detect filters the next break out.
    client.sio.sg_linestate(0x08)
    client.sync()
    ctl("line", PORT, "break", "on")
    ctl("line", PORT, "break", "off")
    ctl("line", PORT, "ri", "on")
    expect(client.next_event("ri on"), ("modem", DCD | RI | DSR | CTS), "after a masked break")
    ctl("line", PORT, "ri", "off")
    expect(client.next_event("ri off"), ("modem", DCD | DSR | CTS | TERI), "ri off")


@check("gensio's DTR, RTS, break and line settings reach the device (trace)")
def _():
    s = client.sio
    expect(s.sg_dtr_s(2), 2, "DTR off answered")  # SERGENSIO_DTR_OFF
    expect(s.sg_rts_s(2), 2, "RTS off answered")  # SERGENSIO_RTS_OFF
    expect(s.sg_sbreak_s(1), 1, "break on answered")  # SERGENSIO_BREAK_ON
    expect(s.sg_sbreak_s(2), 2, "break off answered")
    expect(s.sg_rts_s(1), 1, "RTS on answered")
    expect(s.sg_dtr_s(1), 1, "DTR on answered")
    expect(s.sg_baud_s(9600), 9600, "baud answered")
    expect(s.sg_datasize_s(7), 7, "data size answered")
    expect(s.sg_parity_s(3), 3, "parity answered")  # SERGENSIO_PARITY_EVEN
    expect(s.sg_stopbits_s(2), 2, "stop bits answered")
    # Back to the device's own line, and it answers again.
    expect(s.sg_baud_s(2400), 2400, "baud back")
    expect(s.sg_datasize_s(8), 8, "data size back")
    expect(s.sg_parity_s(1), 1, "parity back")  # SERGENSIO_PARITY_NONE
    expect(s.sg_stopbits_s(1), 1, "stop bits back")
    expect(client.ask(QPI), QPI_REPLY, "reply at 2400 8N1")


if client is not None:
    client.close()


def telnet_command_from(sock, buf, code):
    """Read on from `buf` until `IAC SB COM-PORT-OPTION <code> ... IAC SE`: its value (0xFF
    undoubled) and the bytes after it."""
    start = bytes([255, 250, 44, code])
    deadline = time.monotonic() + PATIENCE
    while True:
        i = buf.find(start)
        if i >= 0:
            end = buf.find(bytes([255, 240]), i + 4)
            if end >= 0:
                return buf[i + 4:end].replace(b"\xff\xff", b"\xff"), buf[end + 2:]
        if time.monotonic() > deadline:
            raise AssertionError(f"no command {code} within {PATIENCE} s: {buf!r}")
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"closed before command {code}: {buf!r}")
        buf += chunk


@check("client code 7 (NOTIFY-MODEMSTATE) answered with the current lines, no deltas")
def _():
    # The endpoint serves one client at a time: wait until gensio's has gone.
    deadline = time.monotonic() + PATIENCE
    while True:
        sock = socket.create_connection((HOST, int(TCP_PORT)), timeout=PATIENCE)
        sock.sendall(bytes([255, 251, 44]))  # IAC WILL COM-PORT-OPTION
        first = sock.recv(64)
        if not first.startswith(b"Port already in use"):
            break
        sock.close()
        if time.monotonic() > deadline:
            raise AssertionError("gensio's connection never went away")
        time.sleep(0.05)
    try:
        ctl("line", PORT, "cts", "off")
        ctl("line", PORT, "ri", "on")
        # Past the first notification and both changes: then ask.
        sock.settimeout(PATIENCE)
        rest = first
        seen = []
        while len(seen) < 3:
            value, rest = telnet_command_from(sock, rest, 107)
            seen.append(value)
        sock.sendall(bytes([255, 250, 44, 7, 255, 240]))
        value, _ = telnet_command_from(sock, rest, 107)
        expect(value, bytes([DCD | RI | DSR]), "the answer to code 7")
        return f"notifications {[v.hex() for v in seen]}, answer {value.hex()}"
    finally:
        sock.close()
        ctl("line", PORT, "cts", "on")
        ctl("line", PORT, "ri", "off")


print(json.dumps(results))
