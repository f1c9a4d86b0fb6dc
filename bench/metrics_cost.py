#!/usr/bin/env python3
"""What the built-in metrics cost: user-space instructions per proxied request of the
load_balancer example under callgrind, with every metric group on and with all of them off
(`--metrics-off`), in the same run.

    cargo build --release -p pingora-proxy --example load_balancer
    python3 bench/metrics_cost.py            # ROUNDS=3 CG_REQUESTS=5000

Each round starts both proxies fresh (one worker thread, in front of one nginx origin serving
1 KiB), makes 1,000 warm-up requests, zeroes the counters, makes CG_REQUESTS requests with two
`h2load --h1 -c1` clients and reads the instruction count (as the callgrind part of
bench/proxy_cache.py does). The rounds alternate the two modes.
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402  (the shared harness)
from proxy_cache import CG_REQUESTS, callgrind_count, h2load_uris  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
VALGRIND = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no"]


def start_origin(workdir):
    os.makedirs(f"{workdir}/www", exist_ok=True)
    with open(f"{workdir}/www/1k", "wb") as f:
        f.write(b"x" * 1024)
    port = proxy.free_port()
    with open(f"{workdir}/origin.conf", "w") as f:
        f.write(proxy.nginx_conf(workdir, f"server {{ listen 127.0.0.1:{port}; root {workdir}/www; }}"))
    proc = proxy.start(["nginx", "-c", f"{workdir}/origin.conf", "-p", workdir], f"{workdir}/origin.log")
    proxy.wait_port(port)
    return port, proc


def measure(workdir, origin_port, name, extra):
    """Instructions per request of one fresh proxy under callgrind, and the self instructions
    per request by function."""
    port = proxy.free_port()
    cmd = VALGRIND + [f"--callgrind-out-file={workdir}/cg-{name}", proxy.OURS, *extra,
                      "-c", proxy.pingora_conf(workdir, name), "--listen", f"127.0.0.1:{port}",
                      f"127.0.0.1:{origin_port}"]
    proc = proxy.start(cmd, f"{workdir}/{name}.log", env={**os.environ, "RUST_LOG": "error"})
    try:
        proxy.wait_port(port, timeout=120)
        h2load_uris(port, ["/1k"] * 1000, clients=2)
        total, by_fn = callgrind_count(port, proc, workdir, name, ["/1k"] * CG_REQUESTS)
        return total / CG_REQUESTS, {fn: n / CG_REQUESTS for (fn, _), n in by_fn.items()}
    finally:
        proc.terminate()
        proc.wait()


def main():
    if not os.path.exists(proxy.OURS):
        sys.exit(f"build the proxy first: {proxy.OURS} is missing")
    workdir = tempfile.mkdtemp(prefix="pingora-bench-metrics-")
    origin_port, origin = start_origin(workdir)
    results = {"on": [], "off": []}
    functions = {}
    try:
        for round_ in range(ROUNDS):
            for mode, extra in [("on", []), ("off", ["--metrics-off"])]:
                per_request, functions[mode] = measure(workdir, origin_port, f"{mode}{round_}", extra)
                results[mode].append(per_request)
                print(f"round {round_ + 1} metrics {mode:<3} {per_request:8.0f} instructions per request",
                      flush=True)
    finally:
        origin.terminate()
        origin.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    on, off = min(results["on"]), min(results["off"])
    print(f"\nmetrics on: {on:.0f}, all groups off: {off:.0f}, difference {on - off:.0f} "
          f"instructions per request ({100 * (on - off) / off:.2f}%)")
    # Where the difference goes, in the last round: the functions whose cost moved most.
    names = set(functions["on"]) | set(functions["off"])
    moved = sorted(((functions["on"].get(n, 0) - functions["off"].get(n, 0), n) for n in names),
                   key=lambda d: -abs(d[0]))
    print("\nself instructions per request, on minus off (last round), largest moves:")
    for delta, name in moved[:15]:
        print(f"  {delta:+8.1f}  {name[:140]}")


if __name__ == "__main__":
    main()
