# pyserial 3.5 on one host of network_netns.rs's two, run inside a network namespace.
# argv = "clients" <raw TCP addr> <RFC 2217 addr> <unreachable addr> <unreachable addr>...:
#   QPIGS through socket:// and rfc2217:// at the fleet host's address, and each further
#   address (the fleet host's loopback endpoint, seen from this host) refusing the connection;
# or "fleet" <addr>: QPIGS through socket:// at that address (the loopback endpoint, from the
#   fleet host itself).
# Every check runs whatever the one before did; the results are one JSON list on the last line.
# Timeouts are safety nets, never what a check measures.
import json
import socket
import sys

import serial

QPIGS = b"QPIGS\xb7\xa9\r"
PATIENCE = 10.0
results = []


def check(name):
    def run(f):
        try:
            detail = f()
            results.append({"name": name, "ok": True, "detail": detail or ""})
        except Exception as e:  # every check runs, each failure is reported
            results.append({"name": name, "ok": False, "detail": f"{type(e).__name__}: {e}"})
        return f
    return run


def qpigs(url):
    # The PI30's own speed: over RFC 2217 another one would garble the reply, as on its line.
    port = serial.serial_for_url(url, baudrate=2400, timeout=PATIENCE)
    try:
        port.write(QPIGS)
        reply = port.read_until(b"\r")
    finally:
        port.close()
    # (BBB.B CC.C ...: 21 fields, then the CRC and CR.
    if not reply.startswith(b"(") or not reply.endswith(b"\r") or len(reply.split(b" ")) < 17:
        raise AssertionError(f"not a QPIGS reply: {reply!r}")
    return reply[:24].decode("ascii", "replace")


def refused(addr):
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=PATIENCE).close()
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as e:
        raise AssertionError(f"{addr}: {e!r}, not a refusal") from e
    raise AssertionError(f"{addr} accepted a connection")


role, addrs = sys.argv[1], sys.argv[2:]
if role == "clients":
    tcp, rfc2217, unreachable = addrs[0], addrs[1], addrs[2:]
    check(f"QPIGS through socket://{tcp}")(lambda: qpigs(f"socket://{tcp}"))
    check(f"QPIGS through rfc2217://{rfc2217}")(lambda: qpigs(f"rfc2217://{rfc2217}"))
    for addr in unreachable:
        check(f"{addr} not reachable")(lambda addr=addr: refused(addr))
else:
    check(f"QPIGS through socket://{addrs[0]}")(lambda: qpigs(f"socket://{addrs[0]}"))
print(json.dumps(results))
