#!/usr/bin/env python3
"""Fail if serialtwin-core's modules import each other in a cycle.

Edges are `crate::a::b` and `super::x` paths in code (comments, `#[cfg(doc)]` imports and
unit-test modules left out), between modules that are not each other's ancestors. The stage
groups (port, wire, device, serve, fleet, ...) are checked the same way.
"""
import collections
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "crates", "serialtwin-core", "src")


def module(path):
    path = path[:-3]
    if path.endswith("/mod"):
        path = path[:-4]
    return "crate" if path == "lib" else path.replace("/", "::")


def exists(name):
    base = name.replace("::", "/")
    return os.path.exists(base + ".rs") or os.path.exists(base + "/mod.rs")


def code_of(text):
    text = re.split(r"\n#\[cfg\(test\)\]\nmod tests", text)[0]
    kept, skip = [], False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        if stripped == "#[cfg(doc)]":
            skip = True
            continue
        if skip:
            skip = False
            continue
        kept.append(line)
    return "\n".join(kept)


def edges():
    graph = collections.defaultdict(set)
    for path in glob.glob("**/*.rs", recursive=True):
        me = module(path)
        for kind, dep in re.findall(r"(crate|super)::((?:[a-z_]+::)*[a-z_]+)", code_of(open(path).read())):
            parts = dep.split("::")
            if kind == "super":
                parent = me.rsplit("::", 1)[0] if "::" in me else "crate"
                parts = ([] if parent == "crate" else parent.split("::")) + parts
            for k in range(len(parts), 0, -1):
                target = "::".join(parts[:k])
                if exists(target):
                    related = (
                        me == "crate"
                        or target == me
                        or me.startswith(target + "::")
                        or target.startswith(me + "::")
                    )
                    if not related:
                        graph[me].add(target)
                    break
    return graph


def cycles(graph):
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def main():
    os.chdir(ROOT)
    graph = edges()
    groups = collections.defaultdict(set)
    for a, targets in graph.items():
        for b in targets:
            if a.split("::")[0] != b.split("::")[0]:
                groups[a.split("::")[0]].add(b.split("::")[0])
    bad = cycles(graph) + cycles(groups)
    for cycle in bad:
        print("module cycle in serialtwin-core: " + " -> ".join(cycle), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
