#!/usr/bin/env python3
"""End-to-end proxy benchmark on loopback; run through bench/proxy.sh.

One nginx origin (1 worker) serves static 1 KiB and 100 KiB files. The same wrk load is sent to
the origin directly, to nginx as a reverse proxy (1 worker, upstream keepalive), to HAProxy (1
thread, http-reuse always) and to our load_balancer example (1 worker thread). For each target it
reports requests/s, p50/p99 latency, the CPU seconds the proxy used (utime + stime of its
processes during the run), requests per CPU-second and peak RSS. Each cell is the median of
RUNS runs; ratios ours/nginx and ours/haproxy close the table.

With h2c in PROTOS (the default), the same targets are also loaded over HTTP/2 with prior
knowledge (h2c) by h2load: 10 connections x 100 concurrent streams. Each target has a second,
h2c listener (nginx `listen ... http2`, HAProxy `proto h2`); ours serves h2c on its one port.
Upstream connections stay HTTP/1.1 for every proxy.

WORKERS=2 gives each proxy two workers (nginx worker processes, HAProxy threads, our worker
threads; the origin keeps one); on a machine of two shared cores that measures contention, not
scaling. Under callgrind nginx always runs as one process (`master_process off`).

A row is one whole run, the one with the median requests per CPU-second (not each column's
median taken apart, which could mix runs).

With INSTR=1 (the default when valgrind is installed), each proxy is then run alone under
`valgrind --tool=callgrind` (nginx as a single process) and loaded with CG_REQUESTS requests
(1 KiB, HTTP/1.1 keepalive, CG_CONNS connections) after 1,000 warm-up requests, the counters
zeroed in between: user-space instructions per request, a figure the machine's load does not
move, and heap allocations per request (calls into malloc and its kin, or mimalloc for ours, from
outside the allocator). KEEP_CALLGRIND=dir keeps the dumps (callgrind.<target>.<size>.N) for callgrind_annotate.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RUNS = int(os.environ.get("RUNS", "3"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNS = [int(c) for c in os.environ.get("CONNS", "50,200").split(",")]
SIZES = os.environ.get("SIZES", "1k,100k").split(",")
TARGETS = os.environ.get("TARGETS", "origin,nginx,haproxy,pingora").split(",")
PROTOS = os.environ.get("PROTOS", "h1,h2c").split(",")
H2_CONNS = int(os.environ.get("H2_CONNS", "10"))
H2_STREAMS = int(os.environ.get("H2_STREAMS", "100"))
# Connections each proxy (and the origin) is configured to take: nginx `worker_connections`,
# HAProxy `maxconn` (the idle-connection bench raises it).
MAX_CONNS = 4096
# Worker processes (nginx), threads (HAProxy) and worker threads (ours) of each proxy; the
# origin keeps one.
WORKERS = int(os.environ.get("WORKERS", "1"))
INSTR = os.environ.get("INSTR", "1" if shutil.which("valgrind") else "0") == "1"
CG_REQUESTS = int(os.environ.get("CG_REQUESTS", "40000"))
CG_CONNS = int(os.environ.get("CG_CONNS", "50"))
CG_SIZES = os.environ.get("CG_SIZES", "1k").split(",")
TICKS = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"), "release", "examples")
OURS = os.path.join(EXAMPLES, "load_balancer")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def descendants(pid):
    """pid and all its descendants."""
    out = [pid]
    try:
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
        ).stdout.split()
    except OSError:
        return out
    for child in children:
        out.extend(descendants(int(child)))
    return out


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICKS


def peak_rss_mib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total / 1024


def start(cmd, log, **kw):
    """Starts `cmd` with its output in the file `log`."""
    out = open(log, "w")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kw)


def stop(procs, timeout=20):
    """Stops the processes `procs` (a dict): SIGTERM to all, then waits, killing laggards."""
    for p in procs.values():
        p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()


def nginx_conf(workdir, body, workers=1):
    return f"""
worker_processes {workers};
daemon off;
pid {workdir}/nginx-{os.getpid()}-{abs(hash(body)) % 100000}.pid;
error_log /dev/null crit;
events {{ worker_connections {MAX_CONNS}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {workdir};
    proxy_temp_path {workdir};
    fastcgi_temp_path {workdir};
    uwsgi_temp_path {workdir};
    scgi_temp_path {workdir};
    {body}
}}
"""


def pingora_conf(workdir, name):
    """Writes the server configuration of one of our proxies (WORKERS worker threads); returns
    its path."""
    path = f"{workdir}/{name}.yaml"
    with open(path, "w") as f:
        f.write(f"---\nversion: 1\nthreads: {WORKERS}\nupstream_keepalive_pool_size: 256\n"
                f"pid_file: {workdir}/{name}.pid\nupgrade_sock: {workdir}/{name}.sock\n")
    return path


def write_haproxy_cfg(path, origin_port, binds):
    """Writes HAProxy's configuration: WORKERS threads, connection reuse, listening on `binds`
    ("address[ options]"), proxying to the origin."""
    bind_lines = "".join(f"    bind {b}\n" for b in binds)
    with open(path, "w") as f:
        f.write(f"""
global
    nbthread {WORKERS}
    maxconn {MAX_CONNS}
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend fe
{bind_lines}    default_backend be
backend be
    server origin 127.0.0.1:{origin_port}
""")


def setup(workdir, origin_extra=""):
    """Starts the origin (with `origin_extra` in its server blocks) and the three proxies."""
    os.makedirs(f"{workdir}/www", exist_ok=True)
    with open(f"{workdir}/www/1k", "wb") as f:
        f.write(b"x" * 1024)
    with open(f"{workdir}/www/100k", "wb") as f:
        f.write(b"x" * 102400)
    ports = {t: free_port() for t in ["origin", "nginx", "haproxy", "pingora"]}
    h2_ports = {t: free_port() for t in ["origin", "nginx", "haproxy"]}
    h2_ports["pingora"] = ports["pingora"]
    procs = {}

    origin = nginx_conf(workdir, f"""
    server {{ listen 127.0.0.1:{ports['origin']} reuseport; root {workdir}/www; {origin_extra} }}
    server {{ listen 127.0.0.1:{h2_ports['origin']} http2; root {workdir}/www; {origin_extra} }}""")
    with open(f"{workdir}/origin.conf", "w") as f:
        f.write(origin)
    procs["origin"] = start(["nginx", "-c", f"{workdir}/origin.conf", "-p", workdir], f"{workdir}/origin.log")
    # The origin listens before any proxy starts: ours checks its backend's health at start,
    # and a refused first check would fail every request until the next one.
    wait_ports(workdir, {"origin": ports["origin"], "origin-h2": h2_ports["origin"]}, log="origin")

    proxy = nginx_conf(workdir, f"""
    upstream origin {{ server 127.0.0.1:{ports['origin']}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{ports['nginx']};
        location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
    server {{
        listen 127.0.0.1:{h2_ports['nginx']} http2;
        http2_max_concurrent_streams 128;
        location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""", workers=WORKERS)
    with open(f"{workdir}/proxy.conf", "w") as f:
        f.write(proxy)
    procs["nginx"] = start(["nginx", "-c", f"{workdir}/proxy.conf", "-p", workdir], f"{workdir}/nginx.log")

    write_haproxy_cfg(f"{workdir}/haproxy.cfg", ports["origin"],
                      [f"127.0.0.1:{ports['haproxy']}", f"127.0.0.1:{h2_ports['haproxy']} proto h2"])
    procs["haproxy"] = start(["haproxy", "-f", f"{workdir}/haproxy.cfg"], f"{workdir}/haproxy.log")

    procs["pingora"] = start(
        [OURS, "-c", pingora_conf(workdir, "pingora"), "--listen", f"127.0.0.1:{ports['pingora']}",
         f"127.0.0.1:{ports['origin']}"],
        f"{workdir}/pingora.log",
        env={**os.environ, "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "error")},
    )
    for name, port in list(ports.items()) + list(h2_ports.items()):
        wait_ports(workdir, {name: port})
    return ports, h2_ports, procs


def wait_ports(workdir, ports, log=None):
    """Waits for each of `ports` (name to port) to listen; exits with the named process's log
    (`log`, or the port's name) if one does not."""
    for name, port in ports.items():
        try:
            wait_port(port)
        except RuntimeError:
            with open(f"{workdir}/{log or name}.log") as f:
                sys.exit(f"{name} did not start:\n{f.read()}")


def parse_latency(text, label):
    m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return float(m.group(1)) * scale


def run_wrk(port, path, conns, pids, script=None, headers=()):
    """One wrk run after a 1 s warm-up. A Lua `script` gets a fresh token as its argument on
    each wrk invocation (bench/cache_miss.lua makes its URLs unique with it); `headers`
    ("Name: value") are added to every request."""
    url = f"http://127.0.0.1:{port}/{path}"
    header_args = [a for h in headers for a in ("-H", h)]

    def wrk(*args):
        extra = ["-s", script, url, "--", f"{os.getpid()}-{time.monotonic_ns()}"] if script else [url]
        return subprocess.run(["wrk", "-t1", f"-c{conns}", *header_args, *args, *extra],
                              capture_output=True, text=True).stdout

    # Warm up connections and pools.
    wrk("-d1s")
    before = cpu_seconds(pids)
    out = wrk(f"-d{DURATION}s", "--latency")
    cpu = cpu_seconds(pids) - before
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": parse_latency(out, "50"),
        "p99": parse_latency(out, "99"),
        "cpu": cpu,
        "per_cpu": reqs / cpu if cpu > 0 else float("nan"),
        "errors": (int(errors.group(1)) if errors else 0),
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def run_h2load(port, path, pids):
    url = f"http://127.0.0.1:{port}/{path}"
    base = ["h2load", "-t1", f"-c{H2_CONNS}", f"-m{H2_STREAMS}"]
    subprocess.run(base + ["-D", "1", url], capture_output=True)
    before = cpu_seconds(pids)
    out = subprocess.run(base + ["-D", str(DURATION), url], capture_output=True, text=True).stdout
    cpu = cpu_seconds(pids) - before
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    if not done or not rps:
        return {"rps": float("nan"), "mean": float("nan"), "cpu": cpu, "per_cpu": float("nan"), "failed": -1}
    succeeded = int(done.group(4))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean.group(2)] if mean else float("nan")
    return {
        "rps": float(rps.group(1)),
        "mean": float(mean.group(1)) * scale if mean else float("nan"),
        "cpu": cpu,
        "per_cpu": succeeded / cpu if cpu > 0 else float("nan"),
        "failed": int(done.group(5)) + int(done.group(6)),
    }


def median_run(runs):
    """The run with the median requests per CPU-second (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: (r["per_cpu"] != r["per_cpu"], r["per_cpu"]))
    return ordered[(len(ordered) - 1) // 2]


def h1_requests(port, path, count, conns):
    """`count` requests for `path` over `conns` HTTP/1.1 keepalive connections (h2load --h1);
    exits unless every one got a 2xx."""
    out = subprocess.run(["h2load", "--h1", "-t1", f"-c{conns}", "-n", str(count),
                          f"http://127.0.0.1:{port}/{path}"], capture_output=True, text=True).stdout
    m = re.search(r"status codes: (\d+) 2xx", out)
    if not m or int(m.group(1)) != count:
        sys.exit(f"only {m.group(1) if m else 0} of {count} requests succeeded on port {port}:\n{out}")


def start_under_callgrind(workdir, target, origin_port, out_file):
    """Starts proxy `target` alone under callgrind in front of the origin; returns (port, proc)."""
    vg = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no",
          f"--callgrind-out-file={out_file}"]
    port = free_port()
    if target == "nginx":
        conf = nginx_conf(workdir, f"""
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""").replace("worker_processes 1;", "worker_processes 1;\nmaster_process off;")
        with open(f"{workdir}/cg-nginx.conf", "w") as f:
            f.write(conf)
        cmd = ["nginx", "-c", f"{workdir}/cg-nginx.conf", "-p", workdir]
    elif target == "haproxy":
        write_haproxy_cfg(f"{workdir}/cg-haproxy.cfg", origin_port, [f"127.0.0.1:{port}"])
        cmd = ["haproxy", "-f", f"{workdir}/cg-haproxy.cfg"]
    else:
        cmd = [OURS, "-c", pingora_conf(workdir, "pingora-cg"), "--listen", f"127.0.0.1:{port}",
               f"127.0.0.1:{origin_port}"]
    proc = start(vg + cmd, f"{workdir}/cg-{target}.log", env={**os.environ, "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "error")})
    wait_port(port, timeout=120)
    return port, proc


# Heap allocation entry points: the C library's, and mimalloc's (ours; Rust's global allocator
# calls these directly). A call counts when its caller is not one of them (realloc calling malloc
# is one allocation).
ALLOC_FNS = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign",
             "mi_malloc", "mi_zalloc", "mi_realloc", "mi_malloc_aligned", "mi_zalloc_aligned",
             "mi_realloc_aligned"}


def remove_workdir(workdir):
    """Removes the bench's working directory, copying its callgrind dumps to KEEP_CALLGRIND
    first when set."""
    keep = os.environ.get("KEEP_CALLGRIND")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for f in os.listdir(workdir):
            if f.startswith("callgrind."):
                shutil.copy(f"{workdir}/{f}", keep)
    shutil.rmtree(workdir, ignore_errors=True)


def allocations_in(path):
    """Heap allocations counted in a callgrind dump (written with --compress-strings=no)."""
    calls, fn, callee = 0, "", ""
    with open(path) as f:
        for line in f:
            if line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("cfn="):
                callee = line[4:].strip()
            elif line.startswith("calls=") and callee in ALLOC_FNS and fn not in ALLOC_FNS:
                calls += int(line[6:].split()[0])
    return calls


def instructions_per_request(workdir, origin_port, target, size):
    """User-space instructions and heap allocations per request of `target` under callgrind
    (see the module docs)."""
    out_file = f"{workdir}/callgrind.{target}.{size}"
    port, proc = start_under_callgrind(workdir, target, origin_port, out_file)
    try:
        h1_requests(port, size, 1000, CG_CONNS)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
        h1_requests(port, size, CG_REQUESTS, CG_CONNS)
        total, allocs = dump_counts(proc, out_file)
        return total / CG_REQUESTS, allocs / CG_REQUESTS
    finally:
        end(proc)


def dump_counts(proc, out_file):
    """Makes the callgrind of `proc` (run with --callgrind-out-file=`out_file`) dump its
    counters; returns the instructions and heap allocations counted since they were zeroed."""
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
    workdir, base = os.path.split(out_file)
    dumps = [f for f in os.listdir(workdir) if f.startswith(base + ".")]
    latest = os.path.join(workdir, max(dumps, key=lambda f: int(f.rsplit(".", 1)[1])))
    with open(latest) as f:
        total = int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))
    return total, allocations_in(latest)


def end(proc):
    """Stops `proc`: SIGTERM, then SIGKILL after a minute."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def main():
    if not os.path.exists(OURS):
        sys.exit(f"build the proxy first: {OURS} is missing (bench/proxy.sh does it)")
    workdir = tempfile.mkdtemp(prefix="pingora-bench-")
    ports, h2_ports, procs = setup(workdir)
    results = {}
    h2_results = {}
    try:
        for size in SIZES if "h1" in PROTOS else []:
            for conns in CONNS:
                for target in TARGETS:
                    pids = descendants(procs[target].pid)
                    runs = [run_wrk(ports[target], size, conns, pids) for _ in range(RUNS)]
                    med = dict(median_run(runs))
                    med["errors"] = sum(r["errors"] for r in runs)
                    med["socket_errors"] = "; ".join(r["socket_errors"] for r in runs if r["socket_errors"])
                    results[(size, conns, target)] = med
                    print(f"{size:>4} c={conns:<3} {target:<8} {med['rps']:>9.0f} req/s  "
                          f"p50 {med['p50']:.2f} ms  p99 {med['p99']:.2f} ms  "
                          f"cpu {med['cpu']:.2f} s  {med['per_cpu']:>8.0f} req/cpu-s  "
                          f"non-2xx {med['errors']} {med['socket_errors']}", flush=True)
        # Peak RSS after the HTTP/1.1 runs (up to 200 connections), before h2c's 1000 streams.
        rss = {t: peak_rss_mib(descendants(procs[t].pid)) for t in TARGETS}
        for size in SIZES if "h2c" in PROTOS else []:
            for target in TARGETS:
                pids = descendants(procs[target].pid)
                runs = [run_h2load(h2_ports[target], size, pids) for _ in range(RUNS)]
                med = dict(median_run(runs))
                med["failed"] = sum(r["failed"] for r in runs)
                h2_results[(size, target)] = med
                print(f"{size:>4} h2c {H2_CONNS}x{H2_STREAMS} {target:<8} {med['rps']:>9.0f} req/s  "
                      f"mean {med['mean']:.2f} ms  cpu {med['cpu']:.2f} s  "
                      f"{med['per_cpu']:>8.0f} req/cpu-s  failed {med['failed']}", flush=True)
        h2_rss = {t: peak_rss_mib(descendants(procs[t].pid)) for t in TARGETS}
        instr = {}
        for size in CG_SIZES if INSTR else []:
            for target in [t for t in TARGETS if t != "origin"]:
                instr[(size, target)] = instructions_per_request(workdir, ports["origin"], target, size)
                print(f"{size:>4} callgrind {target:<8} {instr[(size, target)][0]:>8.0f} instructions/request"
                      f"  {instr[(size, target)][1]:.1f} allocations/request", flush=True)
    finally:
        stop(procs)
        remove_workdir(workdir)

    if results:
        print()
        print(f"| workload | target | req/s | p50 ms | p99 ms | CPU s | req per CPU-s | peak RSS MiB |")
        print(f"|---|---|---:|---:|---:|---:|---:|---:|")
    for size in SIZES if "h1" in PROTOS else []:
        for conns in CONNS:
            for target in TARGETS:
                r = results[(size, conns, target)]
                print(f"| HTTP/1.1 {size}, {conns} conns | {target} | {r['rps']:.0f} | {r['p50']:.2f} | "
                      f"{r['p99']:.2f} | {r['cpu']:.2f} | {r['per_cpu']:.0f} | {rss[target]:.0f} |")
    if h2_results:
        print()
        print(f"| workload | target | req/s | mean ms | CPU s | req per CPU-s | failed | peak RSS MiB |")
        print(f"|---|---|---:|---:|---:|---:|---:|---:|")
        for (size, target), r in h2_results.items():
            print(f"| h2c {size}, {H2_CONNS}x{H2_STREAMS} streams | {target} | {r['rps']:.0f} | {r['mean']:.2f} | "
                  f"{r['cpu']:.2f} | {r['per_cpu']:.0f} | {r['failed']} | {h2_rss[target]:.0f} |")
    if instr:
        print()
        print(f"| user-space instructions per request (callgrind, HTTP/1.1 keepalive, {CG_CONNS} conns, "
              f"{CG_REQUESTS} requests) | target | instructions | ours / target | heap allocations |")
        print("|---|---|---:|---:|---:|")
        for (size, target), (n, allocs) in instr.items():
            ours = instr.get((size, "pingora"))
            ratio = f"{ours[0] / n:.2f}x" if ours else "-"
            print(f"| {size} | {target} | {n:.0f} | {ratio} | {allocs:.1f} |")
    if "pingora" in TARGETS:
        print()
        print("| workload | ours / nginx (req per CPU-s) | ours / haproxy (req per CPU-s) |")
        print("|---|---:|---:|")
        for size in SIZES if "h1" in PROTOS else []:
            for conns in CONNS:
                ours = results[(size, conns, "pingora")]["per_cpu"]
                cells = []
                for other in ["nginx", "haproxy"]:
                    if other in TARGETS:
                        cells.append(f"{ours / results[(size, conns, other)]['per_cpu']:.2f}x")
                    else:
                        cells.append("-")
                print(f"| HTTP/1.1 {size}, {conns} conns | {cells[0]} | {cells[1]} |")
        for size in SIZES if h2_results else []:
            ours = h2_results[(size, "pingora")]["per_cpu"]
            cells = [f"{ours / h2_results[(size, o)]['per_cpu']:.2f}x" if o in TARGETS else "-" for o in ["nginx", "haproxy"]]
            print(f"| h2c {size}, {H2_CONNS}x{H2_STREAMS} streams | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
