#!/usr/bin/env python3
"""Instructions per round trip, counted by callgrind: a figure that survives a noisy machine.

The round-trip rates of `cargo bench --bench pty_fleet` drift with the VM's speed; instruction
counts do not. This runs one server child of the bench (`--serve limit` or `--serve serialtwin`)
under `valgrind --tool=callgrind` with one port, makes N round trips from here (request
`QPIGS\\r\\n`, the 110-byte reply), and again with 5 N, and prints the difference per round
trip: the server's user-space instructions for one request, start-up excluded. It needs
valgrind; nothing in CI runs it.

    cargo bench --bench pty_fleet --no-run            # prints the bench binary's path
    python3 benches/pty_fleet/instructions.py target/release/deps/pty_fleet-<hash>
    python3 benches/pty_fleet/instructions.py <binary> --serve limit --n 2000
    # keep the profiles and read them with callgrind_annotate:
    python3 benches/pty_fleet/instructions.py <binary> --keep /tmp/cg

At one port the server parks (epoll_wait) once per round trip, so the count includes the
runtime's park; a fleet under load parks once per many.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import tty

REQUEST = b"QPIGS\r\n"
REPLY_LEN = 110


def run(binary, serve, n, out):
    child = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "--serve", serve],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if child.stdout.readline().strip() != "ready":
        sys.exit("the server child did not start")
    child.stdin.write("open 1\n")
    child.stdin.flush()
    words = child.stdout.readline().split()
    if len(words) != 3 or words[0] != "opened":
        sys.exit(f"unexpected answer to open: {words}")
    fd = os.open(words[2], os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    for _ in range(n):
        os.write(fd, REQUEST)
        got = b""
        while len(got) < REPLY_LEN:
            chunk = os.read(fd, 512)
            if not chunk:
                sys.exit("the port closed")
            got += chunk
        if len(got) != REPLY_LEN or not got.endswith(b"\r\n"):
            sys.exit(f"unexpected reply: {got!r}")
    os.close(fd)
    child.stdin.write("close\n")
    child.stdin.flush()
    child.stdout.readline()
    child.stdin.close()
    child.wait()
    with open(out) as f:
        return int(re.search(r"^totals: (\d+)", f.read(), re.M).group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("binary", help="the pty_fleet bench binary")
    p.add_argument("--serve", default="serialtwin", choices=["serialtwin", "limit"])
    p.add_argument("--n", type=int, default=1000, help="round trips of the short run")
    p.add_argument("--keep", help="directory to keep the two callgrind profiles in")
    args = p.parse_args()
    directory = args.keep or tempfile.mkdtemp(prefix="instructions-")
    os.makedirs(directory, exist_ok=True)
    short = run(args.binary, args.serve, args.n, os.path.join(directory, f"{args.serve}.short.out"))
    long = run(args.binary, args.serve, 5 * args.n, os.path.join(directory, f"{args.serve}.long.out"))
    per = (long - short) / (4 * args.n)
    print(f"{args.serve}: {per:.0f} instructions per round trip (one port, callgrind)")


if __name__ == "__main__":
    main()
