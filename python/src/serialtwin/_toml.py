"""A config given as a dict, written as TOML for the binary, with a map from every line and
column back to the key path that wrote it (`device[0].script.rule[1].reply`), so that the
binary's `FILE:LINE:COLUMN` errors can name the dict's key."""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class _Line:
    """One written line: the key path it holds, and the spans of inline values in it."""

    path: str
    #: (first column, last column, path), 1-based columns, innermost spans last.
    spans: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class Written:
    """The TOML text and what each line of it came from."""

    text: str
    lines: list[_Line]

    def path_at(self, line: int, column: int | None) -> str:
        """The key path written at `line` (1-based) and `column` (1-based, if known)."""
        if not 1 <= line <= len(self.lines):
            return "(config)"
        entry = self.lines[line - 1]
        best = entry.path
        if column is not None:
            width = None
            for first, last, path in entry.spans:
                if first <= column <= last and (width is None or last - first <= width):
                    best, width = path, last - first
        return best or "(config)"


def _key(name: object, path: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{path or 'config'}: TOML keys are strings, not {name!r}")
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_table(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) > 0
        and all(isinstance(v, Mapping) for v in value)
    )


def _string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return out.replace("\x7f", "\\u007f")


def _inline(value: object, path: str, column: int, spans: list[tuple[int, int, str]]) -> str:
    """`value` as an inline TOML value starting at `column`; spans of its parts into `spans`."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if math.isnan(value):
            text = "nan"
        elif math.isinf(value):
            text = "inf" if value > 0 else "-inf"
        else:
            text = repr(value)
    elif isinstance(value, str):
        text = _string(value)
    elif isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        text = value.isoformat()
    elif isinstance(value, Mapping):
        parts = []
        at = column + 2
        for k, v in value.items():
            key = _key(k, path) + " = "
            item = _inline(v, _join(path, str(k)), at + len(key), spans)
            spans.append((at, at + len(key) + len(item) - 1, _join(path, str(k))))
            parts.append(key + item)
            at += len(key) + len(item) + 2
        text = "{ " + ", ".join(parts) + " }" if parts else "{}"
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        parts = []
        at = column + 1
        for i, v in enumerate(value):
            item = _inline(v, f"{path}[{i}]", at, spans)
            spans.append((at, at + len(item) - 1, f"{path}[{i}]"))
            parts.append(item)
            at += len(item) + 2
        text = "[" + ", ".join(parts) + "]"
    elif value is None:
        raise TypeError(f"{path}: TOML has no null (leave the key out)")
    else:
        raise TypeError(f"{path}: cannot write {type(value).__name__} {value!r} as TOML")
    return text


def dumps(config: Mapping[str, Any]) -> Written:
    """`config` as TOML, with where each line came from.

    Raises:
        TypeError: a value TOML cannot hold (None, bytes...), named by its key path.
    """
    out: list[str] = []
    lines: list[_Line] = []
    _table(config, "", [], out, lines)
    return Written("\n".join(out) + "\n", lines)


def _table(
    table: Mapping[str, Any], path: str, header: list[str], out: list[str], lines: list[_Line]
) -> None:
    plain = [(k, v) for k, v in table.items() if not _is_table(v) and not _is_table_array(v)]
    for k, v in plain:
        key = _key(k, path)
        spans: list[tuple[int, int, str]] = []
        value = _inline(v, _join(path, k), len(key) + 4, spans)
        out.append(f"{key} = {value}")
        lines.append(_Line(_join(path, k), spans))
    for k, v in table.items():
        if _is_table(v):
            names = [*header, _key(k, path)]
            if out:
                out.append("")
                lines.append(_Line(path))
            out.append("[" + ".".join(names) + "]")
            lines.append(_Line(_join(path, k)))
            _table(v, _join(path, k), names, out, lines)
        elif _is_table_array(v):
            names = [*header, _key(k, path)]
            for i, item in enumerate(v):
                item_path = f"{_join(path, k)}[{i}]"
                if out:
                    out.append("")
                    lines.append(_Line(path))
                out.append("[[" + ".".join(names) + "]]")
                lines.append(_Line(item_path))
                _table(item, item_path, names, out, lines)
