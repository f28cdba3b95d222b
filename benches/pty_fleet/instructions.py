#!/usr/bin/env python3
"""Instructions per round trip, counted by callgrind: a figure that survives a noisy machine.

The round-trip rates of `cargo bench --bench pty_fleet` drift with the VM's speed; instruction
counts do not. This runs one server child of the bench (`--serve limit`, `--serve serialtwin`, `--serve registry`...)
under `valgrind --tool=callgrind` with one port, makes N round trips from here (request
`QPIGS\\r\\n`, the 110-byte reply), and again with 5 N, and prints the difference per round
trip: the server's user-space instructions for one request (all its threads'), start-up
excluded. It needs
valgrind; nothing in CI runs it.

    cargo bench --bench pty_fleet --no-run            # prints the bench binary's path
    python3 benches/pty_fleet/instructions.py target/release/deps/pty_fleet-<hash>
    python3 benches/pty_fleet/instructions.py <binary> --serve limit --n 2000
    # keep the profiles and read them with callgrind_annotate:
    python3 benches/pty_fleet/instructions.py <binary> --keep /tmp/cg

At one port the server parks (epoll_wait) once per round trip, so the count includes the
runtime's park; a fleet under load parks once per many.

`--ports N` spreads the round trips over N ports in turn (still one request at a time), so each
port's state has gone cold by its next turn; `--cache` adds callgrind's cache simulation and
prints first-level data read/write and instruction misses per round trip — the per-port lines a
request has to fetch, and how much code its path runs through:

    python3 benches/pty_fleet/instructions.py <binary> --ports 300 --n 2000 --cache
    python3 benches/pty_fleet/instructions.py <binary> --ports 300 --n 2000 --cache --serve bare

`--modbus` makes the Modbus rows' round trip instead (`open N modbus`: unit 1's read of ten
holding registers, the 25-byte reply checked byte for byte), against `--serve serialtwin` or
`--serve limit`:

    python3 benches/pty_fleet/instructions.py <binary> --modbus --n 2000
    python3 benches/pty_fleet/instructions.py <binary> --modbus --ports 1000 --n 4000 --cache

`--tcp` counts a network-only device instead (`cargo bench --bench tcp_fleet`'s binary, its
`--serve serialtwin` or `--serve responder`, the minimal tokio responder): `PING` answered
with `PONG` over TCP connections to 127.0.0.1:

    cargo bench --bench tcp_fleet --no-run
    python3 benches/pty_fleet/instructions.py target/release/deps/tcp_fleet-<hash> --tcp --serve responder

Take --n well above --ports (a few thousand): the opens and first requests of many ports are
costly and uneven, and with too few round trips their share does not cancel out.
"""

import argparse
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tty

REQUEST = b"QPIGS\r\n"
REPLY_LEN = 110
# `--modbus`: the Modbus rows' read of ten holding registers (`modbus.rs`'s REQUEST and REPLY).
MODBUS_REQUEST = bytes.fromhex("01030000000AC5CD")
MODBUS_REPLY = bytes.fromhex("010314" + "".join(f"{i:04X}" for i in range(1, 11)) + "8F16")


def run(binary, serve, n, ports, cache, out, modbus):
    # One profile per thread, summed: the main thread runs the server (the runtime's
    # `block_on`, or the limit's loop) and, with lanes, a lane's thread serves the requests.
    # The others (stdin, the session watcher) work at the opens and closes only; with many
    # ports their uneven share there moves the count by up to ~150 instructions.
    tool = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
    if cache:
        tool.append("--cache-sim=yes")
    child = subprocess.Popen(
        tool + [binary, "--serve", serve],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if child.stdout.readline().strip() != "ready":
        sys.exit("the server child did not start")
    child.stdin.write(f"open {ports} modbus\n" if modbus else f"open {ports}\n")
    child.stdin.flush()
    words = child.stdout.readline().split()
    if len(words) != 2 + ports or words[0] != "opened":
        sys.exit(f"unexpected answer to open: {words[:4]}")
    fds = []
    for path in words[2:]:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        fds.append(fd)
    request, reply_len = (MODBUS_REQUEST, len(MODBUS_REPLY)) if modbus else (REQUEST, REPLY_LEN)
    for i in range(n):
        fd = fds[i % ports]
        os.write(fd, request)
        got = b""
        while len(got) < reply_len:
            chunk = os.read(fd, 512)
            if not chunk:
                sys.exit("the port closed")
            got += chunk
        if modbus and got != MODBUS_REPLY or not modbus and (len(got) != REPLY_LEN or not got.endswith(b"\r\n")):
            sys.exit(f"unexpected reply: {got!r}")
    for fd in fds:
        os.close(fd)
    child.stdin.write("close\n")
    child.stdin.flush()
    child.stdout.readline()
    child.stdin.close()
    child.wait()
    return totals(out)


def run_tcp(binary, serve, n, ports, cache, out):
    """`run` for a network-only device: the tcp_fleet bench's server child, TCP clients."""
    tool = ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}"]
    if cache:
        tool.append("--cache-sim=yes")
    child = subprocess.Popen(
        tool + [binary, "--serve", serve, "--devices", str(ports)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    words = child.stdout.readline().split()
    if not words or words[0] != "ready" or len(words) != 1 + ports:
        sys.exit(f"the server child did not start: {words[:3]}")
    conns = []
    for word in words[1:]:
        host, port = word.rsplit(":", 1)
        c = socket.create_connection((host, int(port)))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(c)
    for i in range(n):
        c = conns[i % ports]
        c.sendall(b"PING\r\n")
        got = b""
        while not got.endswith(b"\n"):
            chunk = c.recv(64)
            if not chunk:
                sys.exit("the device closed")
            got += chunk
        if got != b"PONG\r\n":
            sys.exit(f"unexpected reply: {got!r}")
    for c in conns:
        c.close()
    child.stdin.close()
    child.wait()
    return totals(out)


def totals(out):
    """Every thread's profile of `out`, summed by event."""
    summed = {}
    for path in sorted(glob.glob(f"{out}-*")):
        with open(path) as f:
            text = f.read()
        events = re.search(r"^events: (.*)$", text, re.M).group(1).split()
        counts = map(int, re.search(r"^totals: (.*)$", text, re.M).group(1).split())
        for event, total in zip(events, counts):
            summed[event] = summed.get(event, 0) + total
    return summed


def main():
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py needs valgrind (apt install valgrind); nothing else uses it")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("binary", help="the pty_fleet bench binary")
    p.add_argument("--serve", default="serialtwin",
                   choices=["serialtwin", "registry", "limit", "bare", "api", "responder"])
    p.add_argument("--n", type=int, default=1000, help="round trips of the short run")
    p.add_argument("--ports", type=int, default=1, help="ports the round trips take turns on")
    p.add_argument("--cache", action="store_true", help="simulate the caches, print misses")
    p.add_argument("--modbus", action="store_true",
                   help="the Modbus rows' read (serve serialtwin or limit) instead of QPIGS")
    p.add_argument("--tcp", action="store_true",
                   help="the tcp_fleet bench's network-only device (serve serialtwin or responder)")
    p.add_argument("--keep", help="directory to keep the two callgrind profiles in")
    args = p.parse_args()
    directory = args.keep or tempfile.mkdtemp(prefix="instructions-")
    os.makedirs(directory, exist_ok=True)
    def once(k):
        out = os.path.join(directory, f"{args.serve}.{k}.out")
        if args.tcp:
            return run_tcp(args.binary, args.serve, k * args.n, args.ports, args.cache, out)
        return run(args.binary, args.serve, k * args.n, args.ports, args.cache, out, args.modbus)

    runs = [once(k) for k in (1, 5)]
    per = {e: (runs[1][e] - runs[0][e]) / (4 * args.n) for e in runs[0]}
    line = f"{args.serve}: {per['Ir']:.0f} instructions per round trip"
    if args.cache:
        line += (f"; first-level misses per round trip: data read {per['D1mr']:.1f}, "
                 f"data write {per['D1mw']:.1f}, instruction {per['I1mr']:.1f}")
    print(f"{line} ({args.ports} port(s), callgrind)")


if __name__ == "__main__":
    main()
