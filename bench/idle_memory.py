#!/usr/bin/env python3
"""Memory per idle keepalive connection: ours against nginx and HAProxy.

Starts the origin and the three proxies of bench/proxy.py, then, for each proxy in turn, a
child process (this script with `--clients`) opens IDLE_CONNS connections to it, sends one
HTTP/1.1 request on each, reads the response, and keeps every connection open and idle. The
proxy's resident memory (VmRSS, summed over its processes) is read before and while they are
held; the difference divided by the count is the memory per idle connection. The clients run
in their own process so that the file-descriptor limit (20k on the machines we use) is split:
IDLE_CONNS descriptors on each side.

    IDLE_CONNS=8000 bench/proxy.sh --idle
"""

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy  # noqa: E402  (the shared harness)

IDLE_CONNS = int(os.environ.get("IDLE_CONNS", "8000"))
TARGETS = os.environ.get("TARGETS", "nginx,haproxy,pingora").split(",")


async def hold(port, count):
    """Opens `count` connections, one request on each, and keeps them until stdin closes."""
    request = f"GET /1k HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    conns = []
    sem = asyncio.Semaphore(200)  # opening rate: no SYN flood against a 4096 backlog

    async def one():
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            conns.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(count)))
    print(f"held {len(conns)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
        except (FileNotFoundError, StopIteration):
            pass
    return total


def measure(target, port, pids):
    before = rss_kib(pids)
    child = subprocess.Popen([sys.executable, __file__, "--clients", str(port), str(IDLE_CONNS)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()
    if not line.startswith("held"):
        sys.exit(f"{target}: the clients could not hold {IDLE_CONNS} connections")
    time.sleep(1)  # let the proxy settle (pools, timers)
    held = rss_kib(pids)
    child.stdin.close()
    child.wait()
    return before, held


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--clients":
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        asyncio.run(hold(int(sys.argv[2]), int(sys.argv[3])))
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the proxies
    # Room for every idle connection and the upstream ones; HAProxy wants two descriptors per
    # connection it may take, within the 20k limit.
    proxy.MAX_CONNS = IDLE_CONNS + 1000
    workdir = tempfile.mkdtemp(prefix="pingora-bench-idle-")
    ports, _, procs = proxy.setup(workdir)
    rows = []
    try:
        for target in TARGETS:
            pids = proxy.descendants(procs[target].pid)
            before, held = measure(target, ports[target], pids)
            rows.append((target, before, held))
            print(f"{target:8} {before / 1024:7.1f} MiB idle, {held / 1024:7.1f} MiB with "
                  f"{IDLE_CONNS} idle connections", flush=True)
    finally:
        proxy.stop(procs)
    print(f"\n| proxy | RSS before, MiB | RSS with {IDLE_CONNS} idle connections, MiB | "
          f"per connection, KiB |")
    print("|---|---:|---:|---:|")
    for target, before, held in rows:
        print(f"| {target} | {before / 1024:.1f} | {held / 1024:.1f} | "
              f"{(held - before) / IDLE_CONNS:.2f} |")


if __name__ == "__main__":
    main()
