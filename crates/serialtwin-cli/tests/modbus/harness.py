# Shared by the Modbus client scripts (prepended to each by modbus_clients.rs). Every check
# runs on, whatever the one before did; the Rust test asserts on the printed results.
import json
import sys
import time
import traceback

RESULTS = []
WIRE = []


def trace(sending, data):
    """pymodbus' trace_packet: the bytes of the current check, for a failure's message."""
    WIRE.append(("-> " if sending else "<- ") + data.hex(" "))
    del WIRE[:-24]  # the last exchanges are the ones a failure needs
    return data


def check(name, fn, *args):
    WIRE.clear()
    try:
        fn(*args)
        RESULTS.append({"name": name, "ok": True})
    except Exception as e:  # noqa: BLE001 -- every failure is reported, none stops the rest
        RESULTS.append(
            {
                "name": name,
                "ok": False,
                "error": f"{type(e).__name__}: {e}",
                "wire": list(WIRE),
                "where": traceback.format_exc(limit=-3),
            }
        )


def expect(got, want, what="value"):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def done():
    print(json.dumps(RESULTS))
