"""Dict configs written as TOML: what tomllib reads back is the dict, and every line and
column maps back to the key path that wrote it."""

from __future__ import annotations

import datetime
import math
import tomllib

import pytest

from serialtwin._toml import dumps

CONFIG = {
    "clock": {"start": datetime.datetime(2026, 6, 21, 6, tzinfo=datetime.timezone.utc),
              "speed": 60.0},
    "device": [
        {
            "name": "meter",
            "model": "scripted",
            "faults": ["drop next=1", "delay:20 p=0.5"],
            "script": {
                "default": 'quote " backslash \\ tab \t nul \x00 del \x7f é',
                "state": {"volts": "0.000", "odd key": "x"},
                "rule": [
                    {"request": "*IDN?", "reply": "ACME"},
                    {"regex": "VOLT (\\d+)", "reply": ["OK", {"hex": "06", "raw": True}]},
                ],
            },
            "line": {"latency_ms": [20, 80], "echo": False},
        },
        {"name": "inf", "model": "x", "values": [math.inf, -math.inf, 1.5, -2, 0]},
    ],
}


def test_what_is_written_reads_back_as_the_dict() -> None:
    assert tomllib.loads(dumps(CONFIG).text) == CONFIG


def test_lines_and_columns_map_to_key_paths() -> None:
    written = dumps(CONFIG)
    lines = written.text.splitlines()

    def at(needle: str) -> str:
        for n, line in enumerate(lines, 1):
            if needle in line:
                return written.path_at(n, line.index(needle) + 1)
        raise AssertionError(f"{needle!r} not written:\n{written.text}")

    assert at('"ACME"') == "device[0].script.rule[0].reply"
    assert at('"OK"') == "device[0].script.rule[1].reply[0]"
    assert at('hex = "06"') == "device[0].script.rule[1].reply[1].hex"
    assert at("raw = true") == "device[0].script.rule[1].reply[1].raw"
    assert at("[[device.script.rule]]") == "device[0].script.rule[0]"
    assert at('"delay:20') == "device[0].faults[1]"
    assert at('"odd key"') == "device[0].script.state.odd key"
    assert at("80]") == "device[0].line.latency_ms[1]"
    assert at('name = "inf"') == "device[1].name"
    assert written.path_at(10_000, 1) == "(config)"


def test_values_toml_cannot_hold_name_their_key() -> None:
    with pytest.raises(TypeError, match=r"device\[0\]\.link: TOML has no null"):
        dumps({"device": [{"name": "x", "link": None}]})
    with pytest.raises(TypeError, match=r"device\[0\]\.script\.rule\[0\]\.reply\[1\]"):
        dumps({"device": [{"script": {"rule": [{"reply": ["a", b"raw"]}]}}]})
