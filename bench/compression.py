#!/usr/bin/env python3
"""Our compression throughput against the command-line tools; run through bench/compression.sh.

Reads, from the directory given as its argument, what pingora-core's `compression` bench left
there: the corpus (`corpus`), our compressed sizes (`sizes.tsv`: algorithm, level, bytes fed
in 16 KiB chunks, bytes fed in one call, seconds of one chunked pass) and criterion's samples
(`criterion/{encode,decode}/...`). Then times `gzip -N`, `zstd -N -T1` and `brotli -q N -w 22`
compressing the same corpus from standard input to /dev/null, and decompressing their own
output, and prints the tables: MB/s are 10^6 bytes of uncompressed text per second.

A tool's speed is its marginal one: the best of RUNS wall-clock runs over the corpus, less the
best of RUNS over the corpus's first 16 KiB, for the bytes between. That takes out the process's
start-up and the set-up of the codec's tables (zstd at level 9 spends about 8 ms setting up its
tables for 16 KiB), which a process pays on fresh memory and our in-process bench does not.
zstd's own in-memory benchmark (`zstd -bN`, the same C library as ours) is printed as a check.
"""

import json
import os
import re
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("RUNS", "5"))
HEAD = 16 * 1024  # the prefix whose time is subtracted

# Each tool's compress and decompress commands; standard input to standard output.
TOOLS = {
    "gzip": (lambda level: ["gzip", f"-{level}", "-c"], ["gzip", "-d", "-c"]),
    "zstd": (lambda level: ["zstd", f"-{level}", "-T1", "-q", "-c"], ["zstd", "-d", "-q", "-c"]),
    "br": (lambda level: ["brotli", "-q", str(level), "-w", "22", "-c"], ["brotli", "-d", "-c"]),
}
# The level whose stream each decoder is timed on (as in the bench).
DECODE_LEVEL = {"gzip": 6, "br": 4, "zstd": 3}


def best_wall(cmd, input_path, runs=RUNS):
    """The shortest wall-clock time of `runs` runs of `cmd` reading `input_path`."""
    best = float("inf")
    for _ in range(runs):
        with open(input_path, "rb") as stdin:
            start = time.perf_counter()
            subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, check=True)
            best = min(best, time.perf_counter() - start)
    return best


def marginal_mbps(cmd, full, head, size):
    """MB/s of `cmd` over the bytes of `full` (uncompressed size `size`) past the `head` file."""
    seconds = best_wall(cmd, full) - best_wall(cmd, head)
    return (size - HEAD) / seconds / 1e6 if seconds > 0 else float("nan")


def output_of(cmd, input_path):
    with open(input_path, "rb") as stdin:
        return subprocess.run(cmd, stdin=stdin, capture_output=True, check=True).stdout


def ours(workdir, *ids):
    """(median, best) seconds per iteration of one criterion benchmark, or None."""
    path = os.path.join(workdir, "criterion", *ids, "new", "sample.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        data = json.load(f)
    per_iter = [t / n / 1e9 for t, n in zip(data["times"], data["iters"])]
    return statistics.median(per_iter), min(per_iter)


def mbps(size, seconds):
    return size / seconds / 1e6 if seconds and seconds > 0 else float("nan")


def main():
    workdir = sys.argv[1]
    corpus = os.path.join(workdir, "corpus")
    size = os.path.getsize(corpus)
    head = os.path.join(workdir, "head")
    with open(corpus, "rb") as src, open(head, "wb") as dst:
        dst.write(src.read(HEAD))
    rows = []
    with open(os.path.join(workdir, "sizes.tsv")) as f:
        for line in f:
            algorithm, level, chunked, whole, one_pass = line.split("\t")
            rows.append((algorithm, int(level), int(chunked), int(whole), float(one_pass)))

    print(f"\ncorpus: {size} bytes; CLI: best of {RUNS} less best of {RUNS} over its first {HEAD} bytes; "
          f"ours: criterion's median and best sample (one timed pass where criterion did not run)\n")
    print("| algorithm | level | ours MB/s (median) | ours MB/s (best) | CLI MB/s | ours/CLI (best) "
          "| ours bytes, 16 KiB chunks | ours bytes, one call | CLI bytes | ours chunked / CLI bytes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    # With a criterion filter, only the algorithms criterion ran.
    ran = {a for a, *_ in rows if os.path.isdir(os.path.join(workdir, "criterion", "encode", a))}
    for algorithm, level, chunked, whole, one_pass in rows:
        if algorithm not in ran:
            continue
        compress, _ = TOOLS[algorithm]
        cmd = compress(level)
        cli_bytes = len(output_of(cmd, corpus))
        cli = marginal_mbps(cmd, corpus, head, size)
        timing = ours(workdir, "encode", algorithm, str(level))
        if timing:
            median, best = mbps(size, timing[0]), mbps(size, timing[1])
            median_cell = f"{median:.1f}"
        else:
            best = mbps(size, one_pass)
            median_cell = "(1 pass)"
        print(f"| {algorithm} | {level} | {median_cell} | {best:.1f} | {cli:.1f} | {best / cli:.2f}x | "
              f"{chunked} | {whole} | {cli_bytes} | {chunked / cli_bytes:.3f} |", flush=True)

    print("\n| decoder | stream level | ours MB/s (median) | ours MB/s (best) | CLI MB/s | ours/CLI (best) |")
    print("|---|---:|---:|---:|---:|---:|")
    for algorithm, level in DECODE_LEVEL.items():
        timing = ours(workdir, "decode", algorithm)
        if not timing:
            continue
        compress, decompress = TOOLS[algorithm]
        encoded = {}
        for name, path in [("corpus", corpus), ("head", head)]:
            encoded[name] = os.path.join(workdir, f"{name}.{algorithm}")
            with open(encoded[name], "wb") as f:
                f.write(output_of(compress(level), path))
        cli = marginal_mbps(decompress, encoded["corpus"], encoded["head"], size)
        median, best = mbps(size, timing[0]), mbps(size, timing[1])
        print(f"| {algorithm} | {level} | {median:.1f} | {best:.1f} | {cli:.1f} | {best / cli:.2f}x |", flush=True)

    if "zstd" in ran:
        print("\nzstd's in-memory benchmark of its library on the corpus (compress, decompress):")
        for algorithm, level, *_ in rows:
            if algorithm == "zstd":
                out = subprocess.run(["zstd", f"-b{level}", "-i1", corpus], capture_output=True, text=True)
                speeds = re.findall(r"\(x[\d.]+\),\s+([\d.]+) MB/s,\s+([\d.]+) MB/s", out.stdout + out.stderr)
                if speeds:
                    print(f"  zstd -b{level}: {speeds[-1][0]} MB/s, {speeds[-1][1]} MB/s")


if __name__ == "__main__":
    main()
