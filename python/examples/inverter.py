"""A PI30 inverter until Ctrl-C, its grid switched off after 2 s.

    python inverter.py    # then: mppsolar -p <the printed path> --porttype serial -P PI30 -c QMOD
"""

import time

import serialtwin

CONFIG = """
[[device]]
name = "inverter"
model = "pi30"
link = "ttyUSB-inverter"
"""


def main() -> None:
    with serialtwin.Fleet(CONFIG) as fleet:
        print(fleet.port("inverter").path, flush=True)
        time.sleep(2)
        fleet.set("inverter", "grid", False)
        print(fleet.ctl("list"), flush=True)
        try:
            while fleet.alive():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
