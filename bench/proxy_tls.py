#!/usr/bin/env python3
"""TLS termination benchmark on loopback; run through `bench/proxy.sh --tls`.

Uses the harness of bench/proxy.py: the same nginx origin (plain HTTP/1.1, one worker) behind
proxies that terminate TLS with one certificate (ECDSA P-256, made here with `openssl req`):

- nginx: `listen ... ssl http2`, TLS 1.3 enabled (nginx 1.22 offers only up to 1.2 unless
  told), upstream keepalive;
- haproxy: `bind ... ssl crt ... alpn h2,http/1.1`, `http-reuse always`;
- pingora-openssl and pingora-rustls: our load_balancer example built with the `openssl`
  (the same system OpenSSL 3 as nginx and HAProxy) or the `rustls` backend, `--tls-listen`.

Every proxy negotiates the client's first choice, TLS 1.3 with the same cipher suite and key
exchange (the table shows what `openssl s_client` got from each). Three loads, each in WORKERS
workers per proxy and reported as requests (or handshakes) per CPU-second of the proxy, the
run with the median of RUNS:

- h1: HTTP/1.1 over TLS, keepalive (wrk, CONNS connections, 1 KiB and 100 KiB in SIZES);
- h2: HTTP/2 over TLS (h2load, H2_CONNS connections x H2_STREAMS streams);
- handshake: new connections, one 1 KiB request each (h2load --h1, HANDSHAKES connections a
  batch, batches for DURATION seconds): full handshakes, as h2load resumes no session.

With INSTR=1 each proxy then runs alone under callgrind: user-space instructions per new
connection H (CG_HANDSHAKES connections of one request each), then per request on TLS
keepalive: CG_REQUESTS requests over CG_CONNS new connections cost T, so a keepalive request
costs (T - CG_CONNS * H) / (CG_REQUESTS - CG_CONNS), the handshakes taken out. Warm-up
excluded, counters zeroed in between.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402  (the shared harness)
from proxy import (cpu_seconds, descendants, free_port, median_run, nginx_conf, parse_latency,  # noqa: E402
                   peak_rss_mib, pingora_conf, start, stop, wait_port, write_haproxy_cfg)

RUNS = proxy.RUNS
DURATION = proxy.DURATION
WORKERS = proxy.WORKERS
SIZES = proxy.SIZES
CONNS = int(os.environ.get("CONNS", "50"))
LOADS = os.environ.get("LOADS", "h1,h2,handshake").split(",")
HANDSHAKES = int(os.environ.get("HANDSHAKES", "200"))
CG_REQUESTS = int(os.environ.get("CG_REQUESTS", "10000"))
CG_CONNS = int(os.environ.get("CG_CONNS", "50"))
CG_HANDSHAKES = int(os.environ.get("CG_HANDSHAKES", "1000"))
BACKENDS = os.environ.get("TLS_BACKENDS", "openssl,rustls").split(",")
TARGETS = os.environ.get("TARGETS", ",".join(["nginx", "haproxy"] + [f"pingora-{b}" for b in BACKENDS])).split(",")


def ours_binary(target):
    return os.path.join(proxy.EXAMPLES, f"load_balancer-{target.split('-', 1)[1]}")


def make_certificate(workdir):
    """A self-signed ECDSA P-256 certificate for localhost: (cert, key, combined PEM for HAProxy)."""
    cert, key, both = f"{workdir}/cert.pem", f"{workdir}/key.pem", f"{workdir}/both.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    with open(both, "w") as out:
        for part in (cert, key):
            with open(part) as f:
                out.write(f.read())
    return cert, key, both


def start_proxy(workdir, target, origin_port, port, cert, key, both, valgrind=()):
    """Starts one TLS-terminating proxy on `port` in front of the origin."""
    log = f"{workdir}/{target}{'-cg' if valgrind else ''}.log"
    if target == "nginx":
        conf = nginx_conf(workdir, f"""
    upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        http2_max_concurrent_streams 128;
        location / {{ proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""", workers=WORKERS)
        if valgrind:
            conf = conf.replace(f"worker_processes {WORKERS};", "worker_processes 1;\nmaster_process off;")
        path = f"{workdir}/{target}-{port}.conf"
        with open(path, "w") as f:
            f.write(conf)
        cmd = ["nginx", "-c", path, "-p", workdir]
    elif target == "haproxy":
        path = f"{workdir}/haproxy-{port}.cfg"
        write_haproxy_cfg(path, origin_port, [f"127.0.0.1:{port} ssl crt {both} alpn h2,http/1.1"])
        cmd = ["haproxy", "-f", path]
    else:
        name = f"{target}-{port}"
        cmd = [ours_binary(target), "-c", pingora_conf(workdir, name), "--listen", f"127.0.0.1:{free_port()}",
               "--tls-listen", f"127.0.0.1:{port}", "--tls-cert", cert, "--tls-key", key,
               f"127.0.0.1:{origin_port}"]
    proc = start(list(valgrind) + cmd, log, env={**os.environ, "RUST_LOG": "error"})
    try:
        wait_port(port, timeout=120 if valgrind else 20)
    except RuntimeError:
        with open(log) as f:
            sys.exit(f"{target} did not start:\n{f.read()}")
    return proc


def negotiated(port):
    """Protocol and cipher suite an OpenSSL client negotiates with the proxy on `port`."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-brief"], input="", capture_output=True, text=True, timeout=10).stderr
    version = re.search(r"Protocol version: (\S+)", out)
    cipher = re.search(r"Ciphersuite: (\S+)", out)
    group = re.search(r"(?:Negotiated TLS1.3 group|Server Temp Key): (\S+)", out)
    return " ".join(m.group(1).rstrip(",") for m in (version, cipher, group) if m)


def run_wrk(port, size, pids):
    url = f"https://127.0.0.1:{port}/{size}"
    subprocess.run(["wrk", "-t1", f"-c{CONNS}", "-d1s", url], capture_output=True)
    before = cpu_seconds(pids)
    out = subprocess.run(["wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "--latency", url],
                         capture_output=True, text=True).stdout
    cpu = cpu_seconds(pids) - before
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p99": parse_latency(out, "99"),
            "cpu": cpu, "per_cpu": reqs / cpu if cpu > 0 else float("nan"), "failed": int(bad.group(1)) if bad else 0}


def h2load(args, url):
    """Runs h2load; returns (succeeded, failed, req/s)."""
    out = subprocess.run(["h2load", "-t1", *args, url], capture_output=True, text=True).stdout
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not done:
        return 0, -1, float("nan")
    return int(done.group(4)), int(done.group(5)) + int(done.group(6)), float(rps.group(1)) if rps else float("nan")


def run_h2(port, size, pids):
    url = f"https://127.0.0.1:{port}/{size}"
    args = [f"-c{proxy.H2_CONNS}", f"-m{proxy.H2_STREAMS}"]
    h2load(args + ["-D", "1"], url)
    before = cpu_seconds(pids)
    ok, failed, rps = h2load(args + ["-D", str(DURATION)], url)
    cpu = cpu_seconds(pids) - before
    return {"rps": rps, "p99": float("nan"), "cpu": cpu, "per_cpu": ok / cpu if cpu > 0 else float("nan"),
            "failed": failed}


def run_handshakes(port, pids):
    """Batches of HANDSHAKES new connections (one 1 KiB request each) for DURATION seconds."""
    url = f"https://127.0.0.1:{port}/1k"
    batch = ["--h1", f"-c{HANDSHAKES}", f"-n{HANDSHAKES}"]
    h2load(batch, url)
    before, start_time = cpu_seconds(pids), time.monotonic()
    ok = failed = 0
    while time.monotonic() - start_time < DURATION:
        done, bad, _ = h2load(batch, url)
        ok, failed = ok + done, failed + max(bad, 0)
    elapsed, cpu = time.monotonic() - start_time, cpu_seconds(pids) - before
    return {"rps": ok / elapsed, "p99": float("nan"), "cpu": cpu,
            "per_cpu": ok / cpu if cpu > 0 else float("nan"), "failed": failed}


def show_errors(workdir, target):
    """Prints the distinct errors in the log of proxy `target` (for a run with failures)."""
    try:
        with open(f"{workdir}/{target}.log", errors="replace") as f:
            lines = [re.sub(r"\d+", "N", line.strip())[:240] for line in f if "ERROR" in line or "WARN" in line]
    except OSError:
        return
    for line, count in sorted(((l, lines.count(l)) for l in set(lines)), key=lambda x: -x[1])[:8]:
        print(f"    {count} x {line}", flush=True)


def wrk_part(workdir, origin_port, cert, key, both):
    ports = {t: free_port() for t in TARGETS}
    procs = {t: start_proxy(workdir, t, origin_port, ports[t], cert, key, both) for t in TARGETS}
    results, ciphers = {}, {t: negotiated(ports[t]) for t in TARGETS}
    loads = [(load, size) for load in LOADS if load != "handshake" for size in SIZES]
    loads += [("handshake", "1k")] if "handshake" in LOADS else []
    try:
        for load, size in loads:
            for target in TARGETS:
                pids = descendants(procs[target].pid)
                run = {"h1": lambda: run_wrk(ports[target], size, pids),
                       "h2": lambda: run_h2(ports[target], size, pids),
                       "handshake": lambda: run_handshakes(ports[target], pids)}[load]
                runs = [run() for _ in range(RUNS)]
                med = dict(median_run(runs))
                med["failed"] = sum(r["failed"] for r in runs)
                results[(load, size, target)] = med
                if med["failed"]:
                    show_errors(workdir, target)
                print(f"{load:>9} {size:>4} {target:<16} {med['rps']:>9.0f}/s  p99 {med['p99']:.2f} ms  "
                      f"cpu {med['cpu']:.2f} s  {med['per_cpu']:>8.0f} per cpu-s  failed {med['failed']}", flush=True)
        rss = {t: peak_rss_mib(descendants(procs[t].pid)) for t in TARGETS}
    finally:
        stop(procs)
    return results, ciphers, rss


def callgrind_part(workdir, origin_port, cert, key, both):
    """Instructions per keepalive request and per new connection, each proxy alone under callgrind."""
    out = {}
    for target in TARGETS:
        dump = f"{workdir}/callgrind.tls.{target}"
        vg = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no",
              f"--callgrind-out-file={dump}"]
        port = free_port()
        proc = start_proxy(workdir, target, origin_port, port, cert, key, both, valgrind=vg)
        url = f"https://127.0.0.1:{port}/1k"
        try:
            row = {}
            for label, conns, count in [("handshake", CG_HANDSHAKES, CG_HANDSHAKES),
                                        ("keepalive", CG_CONNS, CG_REQUESTS)]:
                h2load(["--h1", f"-c{CG_CONNS}", "-n500"], url)
                subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
                ok, failed, _ = h2load(["--h1", f"-c{conns}", f"-n{count}"], url)
                if ok != count:
                    sys.exit(f"{target}: {ok} of {count} requests succeeded under callgrind ({failed} failed)")
                total, allocs = proxy.dump_counts(proc, dump)
                if label == "keepalive":
                    # Take out the handshakes (and first requests) of the CG_CONNS connections.
                    total -= conns * row["handshake"][0]
                    allocs -= conns * row["handshake"][1]
                    count -= conns
                row[label] = (total / count, allocs / count)
            out[target] = row
            print(f"callgrind {target:<16} keepalive {row['keepalive'][0]:>8.0f} instr/request "
                  f"({row['keepalive'][1]:.1f} allocs)  handshake {row['handshake'][0]:>9.0f} instr/connection "
                  f"({row['handshake'][1]:.1f} allocs)", flush=True)
        finally:
            proxy.end(proc)
    return out


def print_tables(results, ciphers, rss, instr):
    if results:
        print()
        print("| load | target | negotiated | per s | p99 ms | CPU s | per CPU-s | failed | peak RSS MiB |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|")
        for (load, size, target), r in results.items():
            workload = {"h1": f"HTTP/1.1 over TLS {size}, {CONNS} conns",
                        "h2": f"h2 over TLS {size}, {proxy.H2_CONNS}x{proxy.H2_STREAMS} streams",
                        "handshake": f"new connections (1 request each), {HANDSHAKES} at a time"}[load]
            print(f"| {workload} | {target} | {ciphers[target]} | {r['rps']:.0f} | {r['p99']:.2f} | {r['cpu']:.2f} | "
                  f"{r['per_cpu']:.0f} | {r['failed']} | {rss[target]:.0f} |")
        ours = [t for t in TARGETS if t.startswith("pingora")]
        others = [t for t in ("nginx", "haproxy") if t in TARGETS]
        print()
        print("| load | " + " | ".join(f"{o} / {t}" for o in ours for t in others) + " |")
        print("|---|" + "---:|" * (len(ours) * len(others)))
        for load, size in dict.fromkeys((load, size) for (load, size, _) in results):
            cells = [f"{results[(load, size, o)]['per_cpu'] / results[(load, size, t)]['per_cpu']:.2f}x"
                     for o in ours for t in others]
            print(f"| {load} {size} | " + " | ".join(cells) + " |")
    if instr:
        print()
        print(f"| callgrind | keepalive instructions per request ({CG_CONNS} conns, {CG_REQUESTS} requests) | "
              f"allocations | instructions per new connection ({CG_HANDSHAKES}) | allocations |")
        print("|---|---:|---:|---:|---:|")
        for target, row in instr.items():
            print(f"| {target} | {row['keepalive'][0]:.0f} | {row['keepalive'][1]:.1f} | "
                  f"{row['handshake'][0]:.0f} | {row['handshake'][1]:.1f} |")


def main():
    for target in TARGETS:
        if target.startswith("pingora") and not os.path.exists(ours_binary(target)):
            sys.exit(f"build it first: {ours_binary(target)} is missing (bench/proxy.sh --tls does it)")
    workdir = tempfile.mkdtemp(prefix="pingora-bench-tls-")
    origin = None
    try:
        cert, key, both = make_certificate(workdir)
        os.makedirs(f"{workdir}/www", exist_ok=True)
        for name, size in (("1k", 1024), ("100k", 102400)):
            with open(f"{workdir}/www/{name}", "wb") as f:
                f.write(b"x" * size)
        origin_port = free_port()
        with open(f"{workdir}/origin.conf", "w") as f:
            f.write(nginx_conf(workdir, f"server {{ listen 127.0.0.1:{origin_port}; root {workdir}/www; }}"))
        origin = start(["nginx", "-c", f"{workdir}/origin.conf", "-p", workdir], f"{workdir}/origin.log")
        wait_port(origin_port)
        results, ciphers, rss = wrk_part(workdir, origin_port, cert, key, both) if LOADS != [""] else ({}, {}, {})
        instr = callgrind_part(workdir, origin_port, cert, key, both) if proxy.INSTR else {}
    finally:
        if origin:
            stop({"origin": origin})
        proxy.remove_workdir(workdir)
    print_tables(results, ciphers, rss, instr)


if __name__ == "__main__":
    main()
