#!/usr/bin/env python3
"""The generator's ceiling against its own sink, for one or more builds, interleaved.

    loadtest/scripts/ceiling.py [--rounds N] [--connects N] [--cert PEM --key PEM] LABEL=BINARY...

Each round runs, for every LABEL (in alternating order, so no build always goes first):
`send` (4 connections, 32 B) against `sink --mode discard`, `echo` (100 connections x 16 in
flight, 32 B) and `connect` (N connections) against `sink --mode echo`; the sink is pinned to
core 0 and the generator to core 1, 5 s per run. A LABEL ending in `wss` runs over TLS (the
sink with --cert/--key, the generator with --ca). Prints throughput and the generator's own
CPU time (user + sys, from getrusage) per operation: on a machine shared with other work the
throughput swings, the CPU time per operation much less. The sink is the first BINARY's.
"""

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time


def parse(argv):
    opts = {"rounds": 3, "connects": 5000, "cert": None, "key": None}
    builds = []
    it = iter(argv)
    for a in it:
        if a.startswith("--"):
            value = next(it)
            opts[a[2:]] = value if a in ("--cert", "--key") else int(value)
        else:
            label, binary = a.split("=", 1)
            builds.append((label, binary))
    if not builds:
        sys.exit(__doc__)
    return opts, builds


def start_sink(binary, mode, port, tls, opts):
    extra = ["--tls-cert", opts["cert"], "--tls-key", opts["key"]] if tls else []
    sink = subprocess.Popen(
        ["taskset", "-c", "0", binary, "sink", "--port", str(port), "--mode", mode] + extra,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return sink


def generate(binary, argv, tls, opts, out):
    if tls:
        argv = [a.replace("ws://127.0.0.1", "wss://localhost") for a in argv]
        argv += ["--ca", opts["cert"]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        ["taskset", "-c", "1", binary] + argv + ["--quiet", "--json", out],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(out) as f:
        return cpu, json.load(f)


def one_round(label, binary, sink_binary, opts, out):
    tls = label.endswith("wss")
    port = 20000 + random.randint(0, 10000) * 2
    figures = {}
    sink = start_sink(sink_binary, "discard", port, tls, opts)
    url = f"ws://127.0.0.1:{port}/"
    cpu, r = generate(binary, ["send", "--url", url, "-c", "4", "-d", "5", "--size", "32"], tls, opts, out)
    sink.kill()
    sink.wait()
    figures["send msg/s"] = (r["throughput"]["sent_per_sec"], cpu * 1e9 / max(r["counters"]["sent"], 1))
    sink = start_sink(sink_binary, "echo", port + 1, tls, opts)
    url = f"ws://127.0.0.1:{port + 1}/"
    echo = ["echo", "--url", url, "-c", "100", "-w", "16", "-d", "5", "--size", "32"]
    cpu, r = generate(binary, echo, tls, opts, out)
    figures["echo msg/s"] = (r["throughput"]["msgs_per_sec"], cpu * 1e9 / max(r["counters"]["received"], 1))
    connect = ["connect", "--url", url, "-c", str(opts["connects"])]
    cpu, r = generate(binary, connect, tls, opts, out)
    opened = max(r["connections"]["opened"], 1)
    figures["connect conn/s"] = (r["throughput"]["connects_per_sec"], cpu * 1e9 / opened)
    sink.kill()
    sink.wait()
    return figures


def main():
    opts, builds = parse(sys.argv[1:])
    sink_binary = builds[0][1]
    results = {label: {} for label, _ in builds}
    out = os.path.join(tempfile.mkdtemp(prefix="ceiling-"), "run.json")
    for n in range(opts["rounds"]):
        for label, binary in builds if n % 2 == 0 else builds[::-1]:
            figures = one_round(label, binary, sink_binary, opts, out)
            for name, value in figures.items():
                results[label].setdefault(name, []).append(value)
            line = ", ".join(f"{k} {v[0]:,.0f} ({v[1]:,.0f} ns CPU/op)" for k, v in figures.items())
            print(f"round {n} {label}: {line}", flush=True)
    print(f"over {opts['rounds']} rounds: best throughput; generator CPU ns per op, min / median")
    for label, figures in results.items():
        parts = []
        for name, values in figures.items():
            cpus = sorted(v[1] for v in values)
            best = max(v[0] for v in values)
            parts.append(f"{name} {best:,.0f}, {cpus[0]:,.0f} / {cpus[len(cpus) // 2]:,.0f} ns")
        print(f"{label}: " + "; ".join(parts))


main()
