#!/usr/bin/env python3
"""End-to-end compression benchmark on loopback; run through `bench/proxy.sh --compress`.

Uses the harness of bench/proxy.py (CPU and RSS accounting, wrk runs). One nginx origin (1
worker) serves a compressible 100 KiB text file (`text/plain`: the repository's docs) without
compressing it. In front of it, one worker each:

- nginx-gzipN: nginx as a proxy (upstream keepalive) with `gzip on; gzip_comp_level N;
  gzip_types text/plain; gzip_proxied any; gzip_min_length 20;`;
- pingora-N: our `compress_bench` example, which turns the compression module on at level N
  for every request;
- nginx and pingora without compression (`PLAIN=1`, the default), for scale.

wrk (`-t1 -cCONNS`, HTTP/1.1 keepalive) asks for the file with `Accept-Encoding: gzip` at each
of LEVELS (default 1,6), against both proxies; then ours alone with `zstd` at level 3 and `br`
at level 4, for information. Before the runs every target's response is checked: the
expected `Content-Encoding`, and a body that decodes (python's gzip, the zstd and brotli
tools) to the file. Requests per CPU-second of the proxy's processes (the origin's not
counted) are computed per run; each cell is the median of RUNS runs.
"""

import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402  (the shared harness)
from proxy import descendants, free_port, nginx_conf, peak_rss_mib, start, wait_port  # noqa: E402

LEVELS = [int(v) for v in os.environ.get("LEVELS", "1,6").split(",")]
CONNS = int(os.environ.get("CONNS", "50"))
PLAIN = os.environ.get("PLAIN", "1") == "1"
# Ours with the other algorithms, for information: (coding, level).
EXTRA = [(a, int(lv)) for a, lv in (x.split(":") for x in os.environ.get("EXTRA", "zstd:3,br:4").split(",") if x)]
OURS = os.path.join(proxy.EXAMPLES, "compress_bench")
BODY_BYTES = 100 * 1024


def body_text():
    """100 KiB of the repository's documentation, in path order."""
    docs = os.path.join(proxy.ROOT, "docs")
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(docs) for f in files if f.endswith(".md"))
    text = b""
    for path in paths:
        with open(path, "rb") as f:
            text += f.read()
        if len(text) >= BODY_BYTES:
            break
    if len(text) < BODY_BYTES:
        sys.exit("docs/ holds less than 100 KiB of text")
    return text[:BODY_BYTES]


def decode(coding, body):
    if coding == "gzip":
        return gzip.decompress(body)
    tool = {"zstd": ["zstd", "-d", "-q", "-c"], "br": ["brotli", "-d", "-c"]}[coding]
    return subprocess.run(tool, input=body, capture_output=True, check=True).stdout


def check(port, coding, text, target):
    """One request with `Accept-Encoding: coding`: the response must be encoded with it (or
    not at all for `identity`) and decode to `text`. Returns the body's size on the wire."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/file.txt", headers={"Accept-Encoding": coding})
    with urllib.request.urlopen(req) as r:
        body = r.read()
        got = r.headers.get("Content-Encoding") or "identity"
    if got != coding:
        sys.exit(f"{target}: Content-Encoding {got!r}, expected {coding!r}")
    decoded = body if coding == "identity" else decode(coding, body)
    if decoded != text:
        sys.exit(f"{target}: the {coding} body does not decode to the file ({len(decoded)} bytes)")
    return len(body)


def setup(workdir, text):
    """Starts the origin and the proxies; returns (ports, procs)."""
    os.makedirs(f"{workdir}/www", exist_ok=True)
    with open(f"{workdir}/www/file.txt", "wb") as f:
        f.write(text)
    ours_levels = sorted(set(LEVELS + [lv for _, lv in EXTRA] + ([0] if PLAIN else [])))
    nginx_levels = LEVELS + ([0] if PLAIN else [])
    names = ["origin"] + [f"nginx-gzip{lv}" for lv in nginx_levels] + [f"pingora-{lv}" for lv in ours_levels]
    ports = {name: free_port() for name in names}
    procs = {}
    origin = nginx_conf(workdir, f"""
    default_type text/plain;
    server {{ listen 127.0.0.1:{ports['origin']}; root {workdir}/www; }}""")
    with open(f"{workdir}/origin.conf", "w") as f:
        f.write(origin)
    procs["origin"] = start(["nginx", "-c", f"{workdir}/origin.conf", "-p", workdir], f"{workdir}/origin.log")
    # Before ours starts: its first health check of the origin must not be refused.
    proxy.wait_ports(workdir, {"origin": ports["origin"]})
    for level in nginx_levels:
        name = f"nginx-gzip{level}"
        gzip_conf = (f"gzip on; gzip_comp_level {level}; gzip_types text/plain; gzip_proxied any; "
                     f"gzip_min_length 20;") if level else ""
        conf = nginx_conf(workdir, f"""
    upstream origin {{ server 127.0.0.1:{ports['origin']}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{ports[name]};
        {gzip_conf}
        location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""")
        # nginx_conf names the pid file after the config's body: each differs.
        with open(f"{workdir}/{name}.conf", "w") as f:
            f.write(conf)
        procs[name] = start(["nginx", "-c", f"{workdir}/{name}.conf", "-p", workdir], f"{workdir}/{name}.log")
    for level in ours_levels:
        name = f"pingora-{level}"
        procs[name] = start(
            [OURS, "-c", proxy.pingora_conf(workdir, name), "--listen", f"127.0.0.1:{ports[name]}",
             "--level", str(level), f"127.0.0.1:{ports['origin']}"],
            f"{workdir}/{name}.log", env={**os.environ, "RUST_LOG": "error"})
    for name, port in ports.items():
        try:
            wait_port(port)
        except RuntimeError:
            with open(f"{workdir}/{name}.log") as f:
                sys.exit(f"{name} did not start:\n{f.read()}")
    return ports, procs


def cells():
    """(row label, coding, target) of every measured cell, in order."""
    out = []
    if PLAIN:
        out += [("plain", "identity", "nginx-gzip0"), ("plain", "identity", "pingora-0")]
    for level in LEVELS:
        out += [(f"gzip {level}", "gzip", f"nginx-gzip{level}"), (f"gzip {level}", "gzip", f"pingora-{level}")]
    out += [(f"{coding} {level}", coding, f"pingora-{level}") for coding, level in EXTRA]
    return out


def main():
    if not os.path.exists(OURS):
        sys.exit(f"build the proxy first: {OURS} is missing (bench/proxy.sh --compress does it)")
    text = body_text()
    workdir = tempfile.mkdtemp(prefix="pingora-bench-compress-")
    ports, procs = setup(workdir, text)
    results = {}
    try:
        for label, coding, target in cells():
            wire = check(ports[target], coding, text, target)
            pids = descendants(procs[target].pid)
            runs = [proxy.run_wrk(ports[target], "file.txt", CONNS, pids, headers=[f"Accept-Encoding: {coding}"])
                    for _ in range(proxy.RUNS)]
            med = {k: statistics.median(r[k] for r in runs) for k in ["rps", "p50", "p99", "cpu", "per_cpu"]}
            med["errors"] = sum(r["errors"] for r in runs)
            med["wire"] = wire
            med["rss"] = peak_rss_mib(pids)
            results[(label, target)] = med
            print(f"{label:<8} {target:<12} {med['rps']:>8.0f} req/s  p50 {med['p50']:.2f} ms  "
                  f"p99 {med['p99']:.2f} ms  cpu {med['cpu']:.2f} s  {med['per_cpu']:>7.0f} req/cpu-s  "
                  f"body {wire} B  non-2xx {med['errors']}", flush=True)
    finally:
        proxy.stop(procs)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n100 KiB text/plain, wrk -t1 -c{CONNS}, medians of {proxy.RUNS} runs of {proxy.DURATION} s\n")
    print("| coding | target | req/s | p50 ms | p99 ms | CPU s | req per CPU-s | CPU us per req "
          "| body bytes | peak RSS MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (label, target), r in results.items():
        name = "nginx" if target.startswith("nginx") else "pingora"
        print(f"| {label} | {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu']:.2f} | "
              f"{r['per_cpu']:.0f} | {1e6 / r['per_cpu']:.1f} | {r['wire']} | {r['rss']:.0f} |")
    print("\n| coding | ours / nginx (req per CPU-s) |")
    print("|---|---:|")
    for label in ["plain"] * PLAIN + [f"gzip {lv}" for lv in LEVELS]:
        nginx = next(r for (lb, t), r in results.items() if lb == label and t.startswith("nginx"))
        ours = next(r for (lb, t), r in results.items() if lb == label and t.startswith("pingora"))
        print(f"| {label} | {ours['per_cpu'] / nginx['per_cpu']:.2f}x |")


if __name__ == "__main__":
    main()
