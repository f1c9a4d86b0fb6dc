#!/usr/bin/env python3
"""End-to-end cache benchmark on loopback; run through `bench/proxy.sh --cache`.

Uses the harness of bench/proxy.py (the same nginx origin, now sending `Cache-Control:
public, max-age=600`, and the same plain proxies) and adds two caching proxies in front of
the origin, each with one worker:

- nginx-cache: nginx with `proxy_cache` (cache directory on /dev/shm, `proxy_cache_valid 200
  10m`, `proxy_cache_lock on`), plus an `X-Cache-Status` field;
- pingora-cache: our `cache_bench` example (MemCache, LRU eviction, cache lock), which adds
  a `Cache-Status` field.

Three parts, each chosen with PARTS (default `wrk,fill`; `callgrind` is slow):

- wrk: for each body size, `hit` (the object is cached before the runs) and `miss` (every
  request a new URL, bench/cache_miss.lua) on the caching proxies, `pass` on the plain ones;
  requests per CPU-second of the proxy (median of RUNS), then the ratios.
- fill: fresh caching proxies filled with FILL distinct 1 KiB URLs; peak RSS (VmHWM) before
  and after, and the size of nginx's cache files on /dev/shm.
- callgrind: fresh caching proxies under `valgrind --tool=callgrind`; after a warm-up, the
  counters are zeroed and CG_REQUESTS requests are made; user-space instructions per request
  on hits and on misses, and for ours the crates and functions the instructions run in.

Two more for the disk store (`cache_bench --disk`), one worker and the server settings of
the rows above:

- disk: for each of DISK_DIRS (default `/var/tmp,/dev/shm`), nginx-cache with its
  `proxy_cache_path` there and ours with a `DiskCache` directory beside it (no fsync, like
  nginx), alone (pingora-disk) and behind a 64 MiB `MemCache` (pingora-tiered); wrk hits on
  all three and misses on nginx-cache and pingora-disk, with the bodies stored per second
  and the proxy's CPU per MB stored.
- diskcg: the callgrind part for nginx-cache, pingora-disk and pingora-tiered, caches under
  the first of DISK_DIRS.
"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402  (the shared harness)
from proxy import cpu_seconds, descendants, free_port, nginx_conf, peak_rss_mib, start, stop, wait_port  # noqa: E402

SIZES = proxy.SIZES
CONNS = [int(c) for c in os.environ.get("CONNS", "50").split(",")]
TARGETS = os.environ.get("TARGETS", "nginx-cache,pingora-cache,nginx,pingora").split(",")
PARTS = os.environ.get("PARTS", "wrk,fill").split(",")
FILL = int(os.environ.get("FILL", "100000"))
CG_REQUESTS = int(os.environ.get("CG_REQUESTS", "5000"))
OURS_CACHE = os.path.join(proxy.EXAMPLES, "cache_bench")
MISS_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache_miss.lua")
CACHING = {"nginx-cache", "pingora-cache"}
ORIGIN_CACHE_CONTROL = 'add_header Cache-Control "public, max-age=600";'


# Our caching proxies: the cache_bench example with each storage (DIR: a directory of the run).
OURS_STORAGE = {"pingora-cache": [], "pingora-disk": ["--disk", "DIR"],
                "pingora-tiered": ["--disk", "DIR", "--tiered"]}


def start_caching_proxies(workdir, origin_port, tag, valgrind=None, names=("nginx-cache", "pingora-cache"),
                          cache_mib=1024, base="/dev/shm", nginx_mib=512):
    """Starts the caching proxies `names` (nginx-cache and any of OURS_STORAGE); returns
    (ports, procs, the cache directories under `base`). With `valgrind` (a command prefix),
    they run under it and nginx runs as a single process. Ours keeps up to `cache_mib` MiB,
    nginx `nginx_mib` MiB of files."""
    ports = {name: free_port() for name in names}
    cache_dir = f"{base}/pingora-bench-{os.getpid()}-{tag}"
    dirs = [cache_dir] if "nginx-cache" in names else []
    procs = {}
    if "nginx-cache" in names:
        conf = nginx_conf(workdir, f"""
    proxy_cache_path {cache_dir} levels=1:2 keys_zone=bench_{tag}:64m max_size={nginx_mib}m inactive=10m
                     use_temp_path=off manager_files=10000 manager_sleep=50ms;
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{ports['nginx-cache']};
        location / {{
            proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_cache bench_{tag}; proxy_cache_valid 200 10m; proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status;
        }}
    }}""")
        if valgrind:
            conf = conf.replace("worker_processes 1;", "worker_processes 1;\nmaster_process off;")
        with open(f"{workdir}/cache-{tag}.conf", "w") as f:
            f.write(conf)
        procs["nginx-cache"] = start((valgrind or []) + ["nginx", "-c", f"{workdir}/cache-{tag}.conf", "-p", workdir],
                                     f"{workdir}/nginx-cache.log", env=os.environ)
    for name in names:
        if name == "nginx-cache":
            continue
        ours_dir = f"{cache_dir}-{name}"
        storage = [ours_dir if a == "DIR" else a for a in OURS_STORAGE[name]]
        if storage:
            dirs.append(ours_dir)
            storage += ["--fsync"] if os.environ.get("DISK_FSYNC") == "1" else []
        cmd = [OURS_CACHE, "-c", proxy.pingora_conf(workdir, f"{name}-{tag}"),
               "--listen", f"127.0.0.1:{ports[name]}", "--cache-mib", str(cache_mib), *storage,
               f"127.0.0.1:{origin_port}"]
        procs[name] = start((valgrind or []) + cmd, f"{workdir}/{name}.log", env={**os.environ, "RUST_LOG": "error"})
    for name, port in ports.items():
        try:
            wait_port(port, timeout=120 if valgrind else 20)
        except RuntimeError:
            with open(f"{workdir}/{name}.log") as f:
                sys.exit(f"{name} did not start:\n{f.read()}")
    return ports, procs, dirs


def remove(dirs):
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def cache_status(port, path):
    """The cache status field of one response: ours `Cache-Status`, nginx `X-Cache-Status`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}") as r:
        r.read()
        return r.headers.get("Cache-Status") or r.headers.get("X-Cache-Status") or ""


def is_hit(status):
    return status == "HIT" or "; hit" in status


def check_hit(port, path, target):
    cache_status(port, path)
    status = cache_status(port, path)
    if not is_hit(status):
        sys.exit(f"{target}: /{path} is not a hit after a first request: {status!r}")


def check_miss(port, path, target):
    status = cache_status(port, f"{path}?check={time.monotonic_ns()}")
    if is_hit(status) or not status:
        sys.exit(f"{target}: a new URL is not a miss: {status!r}")


# === wrk: requests per CPU-second ===

def default_modes(target):
    return ["hit", "miss"] if target in CACHING else ["pass"]


def wrk_part(ports, procs, targets=TARGETS, modes_of=default_modes):
    """wrk runs of `targets`, in the modes `modes_of(target)`; results by (size, conns, target, mode)."""
    results = {}
    for size in SIZES:
        for conns in CONNS:
            for target in targets:
                for mode in modes_of(target):
                    if mode == "hit":
                        check_hit(ports[target], size, target)
                    elif mode == "miss":
                        check_miss(ports[target], size, target)
                    pids = descendants(procs[target].pid)
                    script = MISS_LUA if mode == "miss" else None
                    runs = [proxy.run_wrk(ports[target], size, conns, pids, script) for _ in range(proxy.RUNS)]
                    med = {k: statistics.median(r[k] for r in runs) for k in ["rps", "p50", "p99", "cpu", "per_cpu"]}
                    med["errors"] = sum(r["errors"] for r in runs)
                    results[(size, conns, target, mode)] = med
                    if mode == "miss":
                        check_hit(ports[target], f"{size}?stored={time.monotonic_ns()}", target)
                    print(f"{size:>4} c={conns:<3} {target:<14} {mode:<4} {med['rps']:>9.0f} req/s  "
                          f"p50 {med['p50']:.2f} ms  p99 {med['p99']:.2f} ms  cpu {med['cpu']:.2f} s  "
                          f"{med['per_cpu']:>8.0f} req/cpu-s  non-2xx {med['errors']}", flush=True)
    return results


def print_wrk(results):
    print()
    print("| workload | target | cache | req/s | p50 ms | p99 ms | CPU s | req per CPU-s | CPU us per req |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for (size, conns, target, mode), r in results.items():
        print(f"| HTTP/1.1 {size}, {conns} conns | {target} | {mode} | {r['rps']:.0f} | {r['p50']:.2f} | "
              f"{r['p99']:.2f} | {r['cpu']:.2f} | {r['per_cpu']:.0f} | {1e6 / r['per_cpu']:.1f} |")
    print()
    print("| workload | ours: hit / miss CPU per req | ours: hit / pass | ours / nginx, hits | ours / nginx, misses |")
    print("|---|---:|---:|---:|---:|")

    def per_cpu(size, conns, target, mode):
        r = results.get((size, conns, target, mode))
        return r["per_cpu"] if r else float("nan")

    for size in SIZES:
        for conns in CONNS:
            hit = per_cpu(size, conns, "pingora-cache", "hit")
            miss = per_cpu(size, conns, "pingora-cache", "miss")
            plain = per_cpu(size, conns, "pingora", "pass")
            print(f"| HTTP/1.1 {size}, {conns} conns | {miss / hit:.2f} | {plain / hit:.2f} | "
                  f"{hit / per_cpu(size, conns, 'nginx-cache', 'hit'):.2f}x | "
                  f"{miss / per_cpu(size, conns, 'nginx-cache', 'miss'):.2f}x |")


# === disk: the disk store against nginx's proxy_cache on the same filesystem ===

DISK_DIRS = os.environ.get("DISK_DIRS", "/var/tmp,/dev/shm").split(",")
DISK_TARGETS = os.environ.get("DISK_TARGETS", "nginx-cache,pingora-disk,pingora-tiered").split(",")
# DISK_FSYNC=1: our disk store fsyncs each object (nginx never does).
DISK_MIB = int(os.environ.get("DISK_MIB", "2048"))  # the size bound of both sides
BODY_BYTES = {"1k": 1024, "100k": 102400}


def filesystem(path):
    out = subprocess.run(["df", "-T", path], capture_output=True, text=True).stdout.split("\n")
    return out[1].split()[1] if len(out) > 1 and out[1] else "?"


def disk_part(workdir, origin_port):
    """For each of DISK_DIRS: nginx-cache and our disk and tiered stores with their cache
    directories there; hits (all three) and misses (nginx-cache, pingora-disk)."""
    for i, base in enumerate(DISK_DIRS):
        fs = filesystem(base)
        print(f"\ncache directories under {base} ({fs})", flush=True)
        ports, procs, dirs = start_caching_proxies(workdir, origin_port, f"disk{i}", names=DISK_TARGETS,
                                                   cache_mib=DISK_MIB, base=base, nginx_mib=DISK_MIB)
        try:
            results = wrk_part(ports, procs, DISK_TARGETS,
                               lambda t: ["hit"] if t == "pingora-tiered" else ["hit", "miss"])
        finally:
            stop(procs)
            remove(dirs)
        print_disk(results, f"{base} ({fs})")


def print_disk(results, where):
    print()
    print(f"| workload | cache on {where} | target | cache | req/s | p99 ms | req per CPU-s | ours / nginx "
          f"| MB/s stored | CPU ms per MB stored |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for (size, conns, target, mode), r in results.items():
        nginx = results.get((size, conns, "nginx-cache", mode))
        vs = f"{r['per_cpu'] / nginx['per_cpu']:.2f}x" if nginx and target != "nginx-cache" else "-"
        stored, per_mb = "-", "-"
        if mode == "miss" and size in BODY_BYTES:
            mb = BODY_BYTES[size] / 1e6
            stored, per_mb = f"{r['rps'] * mb:.1f}", f"{1e3 / (r['per_cpu'] * mb):.1f}"
        print(f"| HTTP/1.1 {size}, {conns} conns | {where} | {target} | {mode} | {r['rps']:.0f} | {r['p99']:.2f} | "
              f"{r['per_cpu']:.0f} | {vs} | {stored} | {per_mb} |")


# === fill: peak RSS with many cached objects ===

def h2load_uris(port, uris, clients=4):
    """Requests every URI once over HTTP/1.1 keepalive, `clients` h2load processes of one
    connection each (h2load gives each connection the whole URI list)."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for i in range(clients):
            part = uris[i::clients]
            if not part:
                continue
            with open(f"{tmp}/uris{i}", "w") as f:
                f.write("".join(f"http://127.0.0.1:{port}{u}\n" for u in part))
            jobs.append(subprocess.Popen(
                ["h2load", "--h1", "-c1", "-n", str(len(part)), "-i", f"{tmp}/uris{i}"],
                stdout=subprocess.PIPE, text=True))
        ok = 0
        for job in jobs:
            out = job.communicate()[0]
            m = re.search(r"status codes: (\d+) 2xx", out)
            ok += int(m.group(1)) if m else 0
    if ok != len(uris):
        sys.exit(f"only {ok} of {len(uris)} requests succeeded")


def fill_part(workdir, origin_port):
    ports, procs, dirs = start_caching_proxies(workdir, origin_port, "fill")
    rows = {}
    try:
        for target in ["nginx-cache", "pingora-cache"]:
            pids = descendants(procs[target].pid)
            idle = peak_rss_mib(pids)
            start_time = time.time()
            h2load_uris(ports[target], [f"/1k?fill={i}" for i in range(FILL)])
            took = time.time() - start_time
            check_hit(ports[target], "1k?fill=0", target)
            pids = descendants(procs[target].pid)
            rows[target] = (idle, peak_rss_mib(pids), took)
            print(f"fill {FILL} x 1k {target:<13} idle {idle:.1f} MiB  peak {rows[target][1]:.1f} MiB  "
                  f"({took:.1f} s)", flush=True)
        disk = subprocess.run(["du", "-sm", dirs[0]], capture_output=True, text=True).stdout.split()
    finally:
        stop(procs)
        remove(dirs)
    print()
    print(f"| {FILL} cached 1 KiB objects | peak RSS before (MiB) | peak RSS after (MiB) | per object |")
    print("|---|---:|---:|---:|")
    for target, (idle, peak, _) in rows.items():
        print(f"| {target} | {idle:.1f} | {peak:.1f} | {(peak - idle) * 1048576 / FILL:.0f} B |")
    if disk:
        print(f"\nnginx's cache files on /dev/shm: {disk[0]} MiB (tmpfs memory, outside its RSS)")


# === callgrind: instructions per request ===

def callgrind_self_costs(path):
    """Self instruction counts by function and by object file, from a callgrind output
    written with --compress-strings=no --compress-pos=no."""
    by_fn, by_ob = defaultdict(int), defaultdict(int)
    fn, ob, skip = "?", "?", False
    with open(path) as f:
        for line in f:
            if line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("ob="):
                ob = line[3:].strip()
            elif line.startswith("calls="):
                skip = True  # the next cost line is the call's inclusive cost
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip:
                    skip = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    by_fn[(fn, ob)] += int(parts[1])
    return by_fn


def crate_of(fn, ob):
    """A function's crate, from a Rust symbol's first path segment, else its object file."""
    name = fn.lstrip("<&*( ")
    name = re.sub(r"^(dyn |mut |impl )", "", name)
    m = re.match(r"([a-z_][a-z0-9_]*)::", name)
    if m:
        return m.group(1)
    if fn.startswith(("ZSTD_", "HUF_", "FSE_", "HIST_")):
        return "zstd (stored header compression)"
    if fn.startswith(("mi_", "_mi_")):
        return "allocator (mimalloc)"
    if "memcpy" in fn or "memmove" in fn or "memset" in fn:
        return "libc memcpy/memset"
    return os.path.basename(ob)


def callgrind_count(port, proc, workdir, name, uris):
    """Zeroes the counters, requests `uris`, dumps; returns (instructions, self costs)."""
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
    h2load_uris(port, uris, clients=2)
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
    dumps = sorted((f for f in os.listdir(workdir) if f.startswith(f"cg-{name}.")),
                   key=lambda f: int(f.rsplit(".", 1)[1]))
    path = f"{workdir}/{dumps[-1]}"
    with open(path) as f:
        total = int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))
    return total, callgrind_self_costs(path)


def start_plain_ours(workdir, origin_port, valgrind):
    """Our plain proxy (the load_balancer example of bench/proxy.py) under `valgrind`."""
    port = free_port()
    proc = start(valgrind + [proxy.OURS, "-c", proxy.pingora_conf(workdir, "pingora-cg"),
                             "--listen", f"127.0.0.1:{port}", f"127.0.0.1:{origin_port}"],
                 f"{workdir}/pingora.log", env={**os.environ, "RUST_LOG": "error"})
    wait_port(port, timeout=120)
    return {"pingora": port}, {"pingora": proc}, []


def callgrind_part(workdir, origin_port, targets=("nginx-cache", "pingora-cache", "pingora"), base="/dev/shm",
                   tag="cg"):
    """Hits and misses of the caching proxies `targets` (cache directories under `base`), and
    for scale our plain proxy (`pingora`, `pass`)."""
    prefix = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no"]
    rows, ours_costs = {}, {}
    for target in targets:
        name = f"{tag}-{target}"
        vg = prefix + [f"--callgrind-out-file={workdir}/cg-{name}"]
        if target == "pingora":
            ports, procs, dirs = start_plain_ours(workdir, origin_port, vg)
        else:
            ports, procs, dirs = start_caching_proxies(workdir, origin_port, f"{tag}{len(rows)}", vg, [target],
                                                       base=base)
        try:
            for size in SIZES:
                port = ports[target]
                h2load_uris(port, [f"/{size}"] * 1000, clients=2)  # warm-up, and the object cached
                if target == "pingora":
                    plain, _ = callgrind_count(port, procs[target], workdir, name, [f"/{size}"] * CG_REQUESTS)
                    rows[(size, target)] = (plain / CG_REQUESTS, None)
                    print(f"callgrind {size:>4} {target:<14} pass {plain / CG_REQUESTS:>8.0f} instr/req", flush=True)
                    continue
                check_hit(port, size, target)
                hit, costs = callgrind_count(port, procs[target], workdir, name, [f"/{size}"] * CG_REQUESTS)
                h2load_uris(port, [f"/{size}?warm={i}" for i in range(500)], clients=2)
                miss, miss_costs = callgrind_count(port, procs[target], workdir, name,
                                                   [f"/{size}?cg={i}" for i in range(CG_REQUESTS)])
                rows[(size, target)] = (hit / CG_REQUESTS, miss / CG_REQUESTS)
                print(f"callgrind {size:>4} {target:<14} hit {hit / CG_REQUESTS:>8.0f} instr/req  "
                      f"miss {miss / CG_REQUESTS:>8.0f} instr/req", flush=True)
                if target.startswith("pingora-") and size == SIZES[0]:
                    ours_costs[target] = {"hits": costs, "misses": miss_costs}
        finally:
            stop(procs)
            remove(dirs)
    ours = [t for t in targets if t.startswith("pingora-")]
    print()
    print(f"| workload | target | instructions per hit | per miss | hit / miss | / nginx, hits | / nginx, misses "
          f"| ours: per pass (no cache) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for size in SIZES:
        plain = rows.get((size, "pingora"), (float("nan"),))[0]
        nginx = rows.get((size, "nginx-cache"), (float("nan"), float("nan")))
        for target in ["nginx-cache", *ours]:
            if (size, target) in rows:
                hit, miss = rows[(size, target)]
                vs = "- | -" if target == "nginx-cache" or nginx[0] != nginx[0] else \
                    f"{hit / nginx[0]:.2f}x | {miss / nginx[1]:.2f}x"
                pass_cell = "-" if target == "nginx-cache" or plain != plain else f"{plain:.0f}"
                print(f"| {size} | {target} | {hit:.0f} | {miss:.0f} | {hit / miss:.2f} | {vs} | {pass_cell} |")
    for target, costs in ours_costs.items():
        for label, c in costs.items():
            print_costs(c, f"{target} {label}")


def print_costs(costs, label):
    total = sum(costs.values())
    per_req = CG_REQUESTS
    crates = defaultdict(int)
    for (fn, ob), n in costs.items():
        crates[crate_of(fn, ob)] += n
    print(f"\nours, {SIZES[0]} {label}, by crate of the function (instructions per request):")
    print("| where | instructions per request | share |")
    print("|---|---:|---:|")
    for crate, n in sorted(crates.items(), key=lambda kv: -kv[1])[:14]:
        print(f"| {crate} | {n / per_req:.0f} | {100 * n / total:.0f}% |")
    print(f"\nours, {SIZES[0]} {label}, top functions by self instructions per request:")
    for (fn, _), n in sorted(costs.items(), key=lambda kv: -kv[1])[:25]:
        print(f"  {n / per_req:>7.0f}  {fn[:150]}")


def main():
    for exe in [proxy.OURS, OURS_CACHE]:
        if not os.path.exists(exe):
            sys.exit(f"build the proxies first: {exe} is missing (bench/proxy.sh --cache does it)")
    workdir = tempfile.mkdtemp(prefix="pingora-bench-cache-")
    ports, _, procs = proxy.setup(workdir, ORIGIN_CACHE_CONTROL)
    cache_dirs = []
    try:
        if "wrk" in PARTS:
            cache_ports, cache_procs, dirs = start_caching_proxies(workdir, ports["origin"], "wrk", cache_mib=256)
            cache_dirs.extend(dirs)
            procs.update(cache_procs)
            results = wrk_part({**ports, **cache_ports}, procs)
            print_wrk(results)
        if "fill" in PARTS:
            fill_part(workdir, ports["origin"])
        if "callgrind" in PARTS:
            callgrind_part(workdir, ports["origin"])
        if "disk" in PARTS:
            disk_part(workdir, ports["origin"])
        if "diskcg" in PARTS:
            callgrind_part(workdir, ports["origin"], DISK_TARGETS, DISK_DIRS[0], "diskcg")
    finally:
        stop(procs)
        remove(cache_dirs)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
