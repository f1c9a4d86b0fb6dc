#!/usr/bin/env python3
"""What observability costs per request: user-space instructions per request (callgrind,
noise-free) of our plain proxy, the `load_balancer` example of bench/proxy.py, in variants run
one after the other in the same run, against the same nginx origin (1 KiB bodies, HTTP/1.1
keepalive, 2 connections; after a warm-up the counters are zeroed and CG_REQUESTS requests are
made).

Variants (each `name=binary[:ENV=VALUE,...]`), from VARIANTS, by default:

- `ours`: the release build of this tree, no `tracing` subscriber (spans disabled at their
  call sites), built-in metrics on;
- `ours-metrics-off`: the same binary with every metric group switched off
  (`PINGORA_METRICS=off`, read by the example);
- `base`: a build without the feature under test, when BASE names its binary (e.g. the
  load_balancer example built from the commit before request spans).

The example also reads `PINGORA_TRACING=registry` (a `tracing` subscriber keeping every span)
and `PINGORA_TRACING=json` (a JSON line per closing span, to a sink), for variants such as
`ours-spans=target/release/examples/load_balancer:PINGORA_TRACING=registry`.

The first variant is the reference of the ratios.

    BASE=/path/to/old/load_balancer bench/proxy.sh --observe

KEEP_CALLGRIND=dir keeps the callgrind dumps (cg-<variant>.N) for callgrind_annotate.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402  (the shared harness)
from proxy import free_port, start, wait_port  # noqa: E402
from proxy_cache import callgrind_count, h2load_uris  # noqa: E402

CG_REQUESTS = int(os.environ.get("CG_REQUESTS", "5000"))


def variants():
    spec = os.environ.get("VARIANTS")
    if spec:
        out = []
        for item in spec.split(";"):
            name, rest = item.split("=", 1)
            exe, _, env = rest.partition(":")
            out.append((name, exe, dict(kv.split("=", 1) for kv in env.split(",") if kv)))
        return out
    out = []
    if os.environ.get("BASE"):
        out.append(("base", os.environ["BASE"], {}))
    out.append(("ours", proxy.OURS, {}))
    out.append(("ours-metrics-off", proxy.OURS, {"PINGORA_METRICS": "off"}))
    return out


def measure(workdir, origin_port, name, exe, env):
    """Instructions per request of `exe` under callgrind."""
    port = free_port()
    vg = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no",
          f"--callgrind-out-file={workdir}/cg-{name}"]
    proc = start(vg + [exe, "-c", proxy.pingora_conf(workdir, f"pingora-{name}"),
                       "--listen", f"127.0.0.1:{port}", f"127.0.0.1:{origin_port}"],
                 f"{workdir}/{name}.log", env={**os.environ, "RUST_LOG": "error", **env})
    try:
        wait_port(port, timeout=120)
        h2load_uris(port, ["/1k"] * 1000, clients=2)  # warm-up: pools, caches
        total, _ = callgrind_count(port, proc, workdir, name, ["/1k"] * CG_REQUESTS)
        dumps = sorted((f for f in os.listdir(workdir) if f.startswith(f"cg-{name}.")),
                       key=lambda f: int(f.rsplit(".", 1)[1]))
        return total / CG_REQUESTS, proxy.allocations_in(f"{workdir}/{dumps[-1]}") / CG_REQUESTS
    finally:
        proc.terminate()
        proc.wait()


def main():
    chosen = variants()
    for _, exe, _ in chosen:
        if not os.path.exists(exe):
            sys.exit(f"missing binary {exe} (bench/proxy.sh --observe builds ours)")
    workdir = tempfile.mkdtemp(prefix="pingora-bench-observe-")
    ports, _, procs = proxy.setup(workdir)
    try:
        rows = [(name, measure(workdir, ports["origin"], name, exe, env)) for name, exe, env in chosen]
    finally:
        proxy.stop(procs)
        keep = os.environ.get("KEEP_CALLGRIND")
        if keep:  # the dumps, for callgrind_annotate
            os.makedirs(keep, exist_ok=True)
            for f in os.listdir(workdir):
                if f.startswith("cg-"):
                    shutil.copy(f"{workdir}/{f}", keep)
        shutil.rmtree(workdir, ignore_errors=True)
    reference = rows[0][1][0]
    print(f"\ninstructions per request, 1 KiB over HTTP/1.1 keepalive, {CG_REQUESTS} requests")
    print("| variant | instructions per request | ratio | heap allocations per request |")
    print("|---|---:|---:|---:|")
    for name, (n, allocs) in rows:
        print(f"| {name} | {n:.0f} | {n / reference:.3f} | {allocs:.1f} |")


if __name__ == "__main__":
    main()
