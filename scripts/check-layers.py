#!/usr/bin/env python3
"""Checks that pingora-core's modules form layers without import loops.

Every `crate::a::b...` path in a source file (test modules and files excluded) is an edge from
the file's module to the module it names. Modules are taken at the depth given per top-level
module below (`protocols::http::v1`, `connectors`, ...), and the edges between them must form
no cycle; a module's own submodules count as the module itself. It also checks the intended
order of the layers:

    metrics -> protocols -> upstreams -> connectors -> listeners -> apps/modules -> services -> server

(a module may use those to its left, never those to its right). Prints the graph and exits 1
on a cycle or a layer violation.

    scripts/check-layers.py [pingora-core/src]
"""
import os
import re
import sys
from collections import defaultdict

SRC = sys.argv[1] if len(sys.argv) > 1 else "pingora-core/src"

# How deep each top-level module is split into nodes of the graph.
DEPTH = {"protocols": 3, "connectors": 1, "upstreams": 1, "apps": 1, "modules": 1,
         "services": 1, "server": 1, "listeners": 1, "tls": 1, "utils": 1, "shutdown": 1,
         "metrics": 1}

# Layers, lowest first. Modules not listed may be used by anyone and use anyone below them
# only if their own imports say so (they still take part in the cycle check).
LAYERS = [
    {"metrics"},
    {"protocols", "tls", "utils", "shutdown"},
    {"upstreams"},
    {"connectors"},
    {"listeners"},
    {"apps", "modules"},
    {"services"},
    {"server"},
]


def layer_of(node):
    top = node.split("::")[0]
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    return None


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3]  # strip .rs
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def is_module(parts):
    base = os.path.join(SRC, *parts)
    return os.path.isdir(base) or os.path.isfile(base + ".rs")


def node(parts):
    """The graph node of a path: its longest prefix that is a module, cut at the depth."""
    if not parts:
        return "crate"
    k = 1
    while k < len(parts) and is_module(parts[: k + 1]):
        k += 1
    depth = DEPTH.get(parts[0], 1)
    if parts[:3] == ["protocols", "http", "v2"] or parts[:3] == ["protocols", "http", "v1"]:
        depth = 4  # the client and server sides of one HTTP version are separate nodes
    return "::".join(parts[: min(k, depth)])


def strip_tests(text):
    """Drops `#[cfg(test)] mod x { ... }` blocks (brace-matched)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def uses(text, here):
    """Module paths named by the file: `crate::a::b`, `super::x` and `use crate::{a, b}`."""
    found = set()
    text = re.sub(r"//[^\n]*", "", text)  # comments, including doc links
    for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", text):
        found.add(tuple(m.group(1).split("::")))
    for m in re.finditer(r"\bcrate::\{([^}]*)\}", text):
        for item in m.group(1).split(","):
            item = item.strip().split(" ")[0]
            if item:
                found.add(tuple(item.split("::")))
    for m in re.finditer(r"\bsuper::((?:\w+::)*\w+)", text):
        found.add(tuple(here[:-1]) + tuple(m.group(1).split("::")))
    return found


def main():
    edges = defaultdict(set)
    for dirpath, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(dirpath, name)
            if os.sep + "tests" + os.sep in path:
                continue
            here = module_of(path)
            with open(path) as f:
                text = strip_tests(f.read())
            src = node(here)
            for target in uses(text, here):
                dst = node(list(target))
                top = dst.split("::")[0]
                if top not in DEPTH or dst == src or dst.startswith(src + "::") or src.startswith(dst + "::"):
                    continue
                edges[src].add(dst)

    for src in sorted(edges):
        print(f"{src} -> {', '.join(sorted(edges[src]))}")

    failed = False
    # Cycles: depth-first search for back edges.
    state, stack = {}, []

    def visit(n):
        nonlocal failed
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                print("CYCLE: " + " -> ".join(stack[stack.index(m):] + [m]))
                failed = True
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            visit(n)

    for src, dsts in sorted(edges.items()):
        for dst in sorted(dsts):
            a, b = layer_of(src), layer_of(dst)
            if a is not None and b is not None and b > a:
                print(f"LAYER: {src} (layer {a}) uses {dst} (layer {b})")
                failed = True

    print("layers: " + " -> ".join("/".join(sorted(layer)) for layer in LAYERS))
    print("FAILED" if failed else "ok: no cycle, no layer violation")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
