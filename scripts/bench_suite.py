#!/usr/bin/env python3
"""wsloop benchmark suite: wsloop (inline and worker-pool dispatch) against the peer echo
servers of ../shared/peers, each pinned to one core and driven by wsloop-loadtest on the
other. Prints a Markdown report (date, machine, command, results table, ratios, syscalls per
echoed message, how to read it); `--write BENCHMARKS.md` also writes it to that file.

    python3 scripts/bench_suite.py                          # full run, 10 s per scenario
    python3 scripts/bench_suite.py --quick                  # ~3 s per scenario
    python3 scripts/bench_suite.py --write BENCHMARKS.md    # and save the report

Every scenario gets a fresh server process. Raw loadtest JSON, the loadtest tables and the
server logs of every run go to target/bench-suite/<UTC time>/. Python 3.11 standard library
only. A missing peer is reported as a row saying so; every server is stopped on exit, also
on Ctrl-C; every step has a time limit.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADTEST = ROOT / "target/release/wsloop-loadtest"
WSLOOP = ROOT / "target/release/wsloop"
PEERS = ROOT / "target/peers"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Scenario parameters (issue 7).
ECHO_CONNECTIONS = 100
ECHO_WINDOW = 16
RATE_CONNECTIONS = 1000
RATE_INTERVAL_MS = 100
HOLD_CONNECTIONS = 10_000
# The server CPU window sits inside the generator's measurement window: it opens this long
# after (the moment the server holds every connection + the warmup) and closes this long
# before (that moment + warmup + duration). The generator starts sending 20-60 ms after the
# server holds the last connection (its start barrier), so the CPU window never covers
# connection setup, warmup, drain or close.
CPU_START_MARGIN = 0.25
CPU_END_MARGIN = 0.05

# Every child we start, so that every exit path can stop them.
CHILDREN: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"[bench-suite {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- processes

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In the child before exec: die with the suite, and may hold as many sockets as the
    hard limit allows (the same for every server)."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def spawn(argv: list[str], *, cwd: Path | None = None, stdout=subprocess.DEVNULL,
          stderr=subprocess.DEVNULL) -> subprocess.Popen:
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                         preexec_fn=_child_setup)
    CHILDREN.append(p)
    return p


def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        except ProcessLookupError:
            pass
    if p in CHILDREN:
        CHILDREN.remove(p)


def stop_all() -> None:
    for p in list(CHILDREN):
        stop(p, grace=2.0)


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------------ /proc readers

def proc_cpu_ticks(pid: int) -> int | None:
    """utime + stime of the whole process (every thread), in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def core_busy_ticks() -> dict[int, tuple[int, int]]:
    """Per core: (busy ticks, total ticks) from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+)\s+(.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + (v[4] if len(v) > 4 else 0)
                total = sum(v[:8])
                out[int(m.group(1))] = (total - idle, total)
    return out


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


@dataclass
class Snap:
    t: float
    ticks: int | None
    cores: dict[int, tuple[int, int]]


def snap(pid: int) -> Snap:
    cores = core_busy_ticks()
    t = time.monotonic()
    return Snap(t, proc_cpu_ticks(pid), cores)


def sleep_until(t: float) -> None:
    while True:
        d = t - time.monotonic()
        if d <= 0:
            return
        time.sleep(min(d, 0.5))


# ------------------------------------------------------------------------------ servers

@dataclass
class ServerKind:
    key: str
    label: str
    argv: callable  # port -> argv (without taskset)
    cwd: Path | None = None
    missing: str | None = None  # why it cannot run, if it cannot


def server_kinds() -> list[ServerKind]:
    def wsloop(dispatch):
        return lambda port: [str(WSLOOP), "--addr", f"127.0.0.1:{port}", "--dispatch", dispatch,
                             "--reactors", "1", "--workers", "1"]

    tt = PEERS / "release/tokio-tungstenite-echo"
    fw = PEERS / "release/fastwebsockets-echo"
    node_dir = PEERS / "node-ws"
    node = shutil.which("node")
    kinds = [
        ServerKind("wsloop-inline", "wsloop, inline dispatch", wsloop("inline")),
        ServerKind("wsloop-workers", "wsloop, worker-pool dispatch", wsloop("workers")),
        ServerKind("tokio-tungstenite", "tokio-tungstenite, 1 thread",
                   lambda port: [str(tt), "--port", str(port), "--threads", "1"]),
        ServerKind("fastwebsockets", "fastwebsockets, 1 thread",
                   lambda port: [str(fw), "--port", str(port), "--threads", "1"]),
        ServerKind("node-ws", "Node ws",
                   lambda port: [node or "node", "server.js", "--port", str(port)], cwd=node_dir),
    ]
    for k in kinds:
        if k.key.startswith("wsloop") and not WSLOOP.exists():
            k.missing = f"{WSLOOP.relative_to(ROOT)} not built"
    if not tt.exists():
        kinds[2].missing = "target/peers/release/tokio-tungstenite-echo not built (no ../shared/peers?)"
    if not fw.exists():
        kinds[3].missing = "target/peers/release/fastwebsockets-echo not built (no ../shared/peers?)"
    if node is None:
        kinds[4].missing = "node not installed"
    elif not (node_dir / "server.js").exists() or not (node_dir / "node_modules/ws").is_dir():
        kinds[4].missing = "target/peers/node-ws not installed (no npm or no ../shared/peers?)"
    return kinds


_next_port = 19200


def free_port() -> int:
    """A port below the ephemeral range that nothing listens on; a new one for each run, so
    no run meets the TIME_WAIT sockets of the run before."""
    global _next_port
    for _ in range(2000):
        port = _next_port
        _next_port = 19200 if _next_port >= 30000 else _next_port + 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


class Server:
    def __init__(self, kind: ServerKind, core: int, logfile: Path):
        self.kind = kind
        self.port = free_port()
        self.logf = open(logfile, "wb")
        argv = ["taskset", "-c", str(core)] + kind.argv(self.port)
        self.proc = spawn(argv, cwd=kind.cwd, stdout=self.logf, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid  # taskset execs the server: same pid
        self.url = f"ws://127.0.0.1:{self.port}/"

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind.key} exited with {self.proc.returncode} at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                time.sleep(0.3)  # let it notice our probe's close before anyone counts fds
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind.key} did not listen on {self.port} within {timeout:.0f} s")

    def close(self) -> None:
        stop(self.proc, signal.SIGTERM, grace=3.0)
        self.logf.close()


# ----------------------------------------------------------------------------- scenarios

@dataclass
class Run:
    server: str
    scenario: str
    ok: bool = False
    error: str | None = None
    report: dict | None = None
    msgs_per_sec: float | None = None
    gen_busy: float | None = None
    gen_saturated: bool = False
    cpu_window_s: float | None = None
    cpu_pct: float | None = None
    ns_per_msg: float | None = None
    core_busy_pct: dict = field(default_factory=dict)
    p50_us: float | None = None
    p99_us: float | None = None
    bytes_per_conn: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        d = dict(self.__dict__)
        d.pop("report")
        return d


def run_loadtest(argv: list[str], out_dir: Path, name: str, timeout: float):
    """Starts the generator pinned to the client core; returns (process, json path, log)."""
    json_path = out_dir / f"{name}.json"
    logf = open(out_dir / f"{name}.loadtest.txt", "wb")
    cmd = ["taskset", "-c", str(ARGS.client_core), str(LOADTEST)] + argv + [
        "--json", str(json_path), "--quiet"]
    (out_dir / f"{name}.cmd").write_text(shlex.join(cmd) + "\n")
    p = spawn(cmd, stdout=logf, stderr=subprocess.STDOUT)
    return p, json_path, logf, time.monotonic() + timeout


def finish_loadtest(p, json_path: Path, logf, deadline: float, run: Run) -> dict | None:
    try:
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        run.error = "loadtest overran its time limit and was stopped"
        stop(p, signal.SIGINT, grace=3.0)
    finally:
        logf.close()  # on Ctrl-C, `p` stays in CHILDREN for stop_all()
    if p in CHILDREN:
        CHILDREN.remove(p)
    if run.error:
        return None
    if p.returncode != 0 or not json_path.exists():
        tail = Path(logf.name).read_text(errors="replace").strip().splitlines()[-3:]
        run.error = f"loadtest exited with {p.returncode}: " + " / ".join(tail)
        return None
    rep = json.loads(json_path.read_text())
    run.report = rep
    gens = rep.get("generator") or []
    run.gen_busy = max((g["busy"] for g in gens), default=None)
    run.gen_saturated = bool(rep.get("generator_saturated"))
    for w in rep.get("warnings") or []:
        run.notes.append(f"loadtest: {w}")
    msgs = rep["messages"]
    if rep["scenario"] != "hold" and not msgs.get("accounted", True):
        run.notes.append("loadtest: messages not all accounted for")
    if msgs.get("lost"):
        run.notes.append(f"{msgs['lost']} messages lost (connections died)")
    conns = rep["connections"]
    if conns["failed"]:
        run.notes.append(f"{conns['failed']} of {conns['attempted']} connections failed")
    if conns.get("closed_by_server"):
        run.notes.append(f"{conns['closed_by_server']} connections closed by the server")
    return rep


def common_args(server: Server, duration: float, warmup: float) -> list[str]:
    return ["--url", server.url, "-d", f"{duration:g}", "--warmup", f"{warmup:g}"]


def measured_run(server: Server, run: Run, out_dir: Path, argv: list[str],
                 connections: int) -> dict | None:
    """Runs the generator and reads the server's CPU over a window inside its measurement
    window (see CPU_START_MARGIN); fills msg/s, latency and the CPU figures of `run`."""
    d, w = ARGS.duration, ARGS.warmup
    base = fd_count(server.pid)
    p, jp, logf, deadline = run_loadtest(argv, out_dir, f"{run.server}.{run.scenario}",
                                         timeout=w + d + 45)
    # The moment the server holds every connection: the generator's start barrier follows
    # within a few tens of ms, then warmup, then the measurement window.
    t_all = None
    wait_until = time.monotonic() + 12.0
    while time.monotonic() < wait_until and p.poll() is None:
        if fd_count(server.pid) - base >= connections:
            t_all = time.monotonic()
            break
        time.sleep(0.002)
    a = b = None
    if t_all is None:
        run.notes.append("server never held all connections at once: no CPU figures")
    else:
        sleep_until(t_all + w + CPU_START_MARGIN)
        a = snap(server.pid)
        sleep_until(t_all + w + d - CPU_END_MARGIN)
        b = snap(server.pid)
    rep = finish_loadtest(p, jp, logf, deadline, run)
    if rep is None:
        return None
    run.msgs_per_sec = rep["throughput"]["msgs_per_sec"]
    run.p50_us = rep["latency_us"]["p50_us"]
    run.p99_us = rep["latency_us"]["p99_us"]
    if a and b and a.ticks is not None and b.ticks is not None:
        span = b.t - a.t
        cpu_s = (b.ticks - a.ticks) / CLK_TCK
        run.cpu_window_s = span
        run.cpu_pct = 100.0 * cpu_s / span
        if run.msgs_per_sec:
            run.ns_per_msg = cpu_s * 1e9 / (run.msgs_per_sec * span)
        # /proc/stat's per-core figures are tick samples: fair for a core busy throughout
        # (echo), not for the latency run's short timer-driven bursts.
        for core in (ARGS.server_core, ARGS.client_core) if run.scenario.startswith("echo") else ():
            if core in a.cores and core in b.cores:
                busy = b.cores[core][0] - a.cores[core][0]
                total = b.cores[core][1] - a.cores[core][1]
                run.core_busy_pct[core] = 100.0 * busy / total if total else None
    run.ok = True
    return rep


def scenario_echo(server: Server, run: Run, out_dir: Path, size: int) -> None:
    argv = ["echo"] + common_args(server, ARGS.duration, ARGS.warmup) + [
        "-c", str(ECHO_CONNECTIONS), "-w", str(ECHO_WINDOW), "-s", str(size), "--payload", "binary"]
    measured_run(server, run, out_dir, argv, ECHO_CONNECTIONS)


def scenario_latency(server: Server, run: Run, out_dir: Path) -> None:
    argv = ["rate"] + common_args(server, ARGS.duration, ARGS.warmup) + [
        "-c", str(RATE_CONNECTIONS), "-i", str(RATE_INTERVAL_MS), "-s", "32", "--payload", "binary"]
    measured_run(server, run, out_dir, argv, RATE_CONNECTIONS)


def scenario_idle(server: Server, run: Run, out_dir: Path) -> None:
    argv = ["hold", "--url", server.url, "-c", str(HOLD_CONNECTIONS), "-d", f"{ARGS.hold:g}",
            "--server-pid", str(server.pid)]
    p, jp, logf, deadline = run_loadtest(argv, out_dir, f"{run.server}.{run.scenario}",
                                         timeout=ARGS.hold + 90)
    rep = finish_loadtest(p, jp, logf, deadline, run)
    if rep is None:
        return
    mem = rep.get("memory") or {}
    run.bytes_per_conn = mem.get("bytes_per_connection")
    opened = rep["connections"]["opened"]
    if opened != HOLD_CONNECTIONS:
        run.notes.append(f"only {opened} of {HOLD_CONNECTIONS} connections opened")
    run.ok = run.bytes_per_conn is not None
    if not run.ok:
        run.error = "no RSS figure (see loadtest warnings)"


SCENARIOS = [
    ("echo32", "echo 32 B", lambda s, r, o: scenario_echo(s, r, o, 32)),
    ("echo1k", "echo 1 KiB", lambda s, r, o: scenario_echo(s, r, o, 1024)),
    ("latency", "latency 10k msg/s", scenario_latency),
    ("idle", "idle memory", scenario_idle),
]


def run_one(kind: ServerKind, key: str, fn, out_dir: Path) -> Run:
    run = Run(kind.key, key)
    server = None
    try:
        server = Server(kind, ARGS.server_core, out_dir / f"{kind.key}.{key}.server.log")
        server.wait_ready()
        fn(server, run, out_dir)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        run.error = str(e)
    finally:
        if server is not None:
            if server.proc.poll() is not None and run.error is None:
                run.notes.append(f"server exited on its own with {server.proc.returncode}")
            server.close()
    return run


# ------------------------------------------------------------------------------- strace

@dataclass
class StraceResult:
    ok: bool = False
    error: str | None = None
    seconds: float | None = None
    messages: int | None = None
    msgs_per_sec: float | None = None
    calls: dict = field(default_factory=dict)
    # The same run without strace: write-family calls from /proc/PID/io.
    plain_error: str | None = None
    plain_messages: int | None = None
    plain_msgs_per_sec: float | None = None
    plain_syscw: int | None = None


SYSCALL_MEANING = {
    "recvfrom": "socket reads (std `read` on a TcpStream)",
    "read": "other reads (the mio waker's eventfd)",
    "writev": "socket writes, vectored",
    "sendto": "socket writes (std `write` on a TcpStream)",
    "write": "other writes (the mio waker's eventfd, logs)",
    "epoll_wait": "reactor turns",
    "epoll_pwait": "reactor turns",
    "futex": "thread wake-ups and contended locks",
    "epoll_ctl": "interest changes",
}


def proc_io(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            k, v = line.split(":")
            out[k.strip()] = int(v)
    return out


def strace_echo_argv(url: str) -> list[str]:
    return ["echo", "--url", url, "-d", f"{ARGS.strace_seconds:g}", "--warmup", "0",
            "-c", str(ECHO_CONNECTIONS), "-w", str(ECHO_WINDOW), "-s", "32", "--payload", "binary"]


def plain_syscw_run(kind: ServerKind, out_dir: Path, res: StraceResult) -> None:
    """The strace run's load on a fresh server without strace: `syscw` of /proc/PID/io
    counts write-family calls (write, writev; not sendto) at full speed."""
    server = None
    try:
        server = Server(kind, ARGS.server_core, out_dir / "plain.server.log")
        server.wait_ready()
        before = proc_io(server.pid)
        run = Run("wsloop-inline", "plain-echo32")
        p, jp, logf, dl = run_loadtest(strace_echo_argv(server.url), out_dir,
                                       "plain.wsloop-inline.echo32",
                                       timeout=ARGS.strace_seconds + 60)
        rep = finish_loadtest(p, jp, logf, dl, run)
        after = proc_io(server.pid)
        if rep is None:
            raise RuntimeError(run.error or "loadtest failed")
        res.plain_messages = rep["counters"]["received"]
        res.plain_msgs_per_sec = rep["throughput"]["msgs_per_sec"]
        res.plain_syscw = after["syscw"] - before["syscw"]
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        res.plain_error = str(e)
    finally:
        if server is not None:
            server.close()


def strace_run(out_dir: Path) -> StraceResult:
    res = StraceResult()
    kinds = {k.key: k for k in server_kinds()}
    kind = kinds["wsloop-inline"]
    if kind.missing:
        res.error = kind.missing
        return res
    plain_syscw_run(kind, out_dir, res)
    if shutil.which("strace") is None:
        res.error = "strace not installed (apt-get install strace)"
        return res
    server = tracer = None
    summary = out_dir / "strace.wsloop-inline.echo32.txt"
    try:
        server = Server(kind, ARGS.server_core, out_dir / "strace.server.log")
        server.wait_ready()
        tlog = open(out_dir / "strace.stderr.txt", "wb")
        tracer = spawn(["taskset", "-c", str(ARGS.client_core), "strace", "-c", "-f",
                        "-p", str(server.pid), "-o", str(summary)],
                       stdout=subprocess.DEVNULL, stderr=tlog)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if b"attached" in (out_dir / "strace.stderr.txt").read_bytes():
                break
            if tracer.poll() is not None:
                raise RuntimeError("strace exited at start (ptrace not permitted?)")
            time.sleep(0.05)
        else:
            raise RuntimeError("strace did not attach within 10 s")
        time.sleep(0.5)
        run = Run("wsloop-inline", "strace-echo32")
        argv = strace_echo_argv(server.url)
        t0 = time.monotonic()
        p, jp, logf, dl = run_loadtest(argv, out_dir, "strace.wsloop-inline.echo32",
                                       timeout=ARGS.strace_seconds + 60)
        rep = finish_loadtest(p, jp, logf, dl, run)
        time.sleep(0.2)
        res.seconds = time.monotonic() - t0
        stop(tracer, signal.SIGINT, grace=15.0)
        tlog.close()
        if rep is None:
            raise RuntimeError(run.error or "loadtest failed")
        # strace was attached before the generator started and detached after it exited:
        # every message of the run was echoed inside strace's window.
        res.messages = rep["counters"]["received"]
        res.msgs_per_sec = rep["throughput"]["msgs_per_sec"]
        res.calls = parse_strace_c(summary.read_text())
        if not res.calls:
            raise RuntimeError("strace -c printed no summary")
        res.ok = True
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        res.error = str(e)
    finally:
        if tracer is not None:
            stop(tracer, signal.SIGINT, grace=15.0)
        if server is not None:
            server.close()
    return res


def parse_strace_c(text: str) -> dict[str, int]:
    calls = {}
    for line in text.splitlines():
        tok = line.split()
        if len(tok) in (5, 6) and re.fullmatch(r"[\d.]+", tok[0]) and tok[-1] != "total":
            try:
                calls[tok[-1]] = int(tok[3])
            except ValueError:
                continue
    return calls


# ------------------------------------------------------------------------------- report

def fmt_rate(v):
    return "–" if v is None else f"{v / 1e6:.2f} M"


def fmt_int(v):
    return "–" if v is None else f"{v:,.0f}"


def fmt_pct(v):
    return "–" if v is None else f"{v:.0f}%"


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.1f}×" if r >= 10 else f"{r:.2f}×" if r >= 0.1 else f"{r:.3f}×"


def generator_bound(r: Run | None) -> bool:
    return bool(r and r.ok and (r.gen_saturated or (r.gen_busy or 0) > 0.9))


def busy_cell(r: Run | None) -> str:
    if r is None or not r.ok or r.gen_busy is None:
        return "–"
    return f"{r.gen_busy * 100:.0f}%" + ("\\*" if generator_bound(r) else "")


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)}


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src",
                                "loadtest", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes to src/loadtest)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def render(kinds, runs, strace: StraceResult | None, meta: dict) -> str:
    R = {(r.server, r.scenario): r for r in runs}
    L = []
    L.append("# wsloop benchmarks")
    L.append("")
    L.append("Printed by `scripts/bench_suite.py`; rerun it rather than edit these figures.")
    L.append("")
    m = meta["machine"]
    L.append(f"- **date**: {meta['date']}")
    L.append(f"- **machine**: {m['nproc']} cores (`nproc`), {m['cpu']}, {m['memory_gib']} GiB, "
             f"Linux {m['kernel']}; load average {meta['load_before']} before the run, "
             f"{meta['load_after']} after")
    L.append(f"- **command**: `{meta['command']}` (wsloop at {meta['rev']})")
    L.append(f"- **setup**: each server pinned to core {ARGS.server_core} (`taskset -c "
             f"{ARGS.server_core}`), `wsloop-loadtest` pinned to core {ARGS.client_core}, a fresh "
             f"server process per scenario; echo: {ECHO_CONNECTIONS} connections × {ECHO_WINDOW} "
             f"binary messages in flight, {ARGS.duration:g} s after {ARGS.warmup:g} s warmup; "
             f"latency: `rate -c {RATE_CONNECTIONS} -i {RATE_INTERVAL_MS}` (10k msg/s, 32 B), "
             f"{ARGS.duration:g} s after {ARGS.warmup:g} s warmup; idle: `hold -c "
             f"{HOLD_CONNECTIONS} -d {ARGS.hold:g} --server-pid PID`")
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("| server | echo 32 B msg/s | echo 1 KiB msg/s | server CPU % 32 B / 1 KiB "
             "| server CPU ns/msg 32 B / 1 KiB | p50 / p99 µs at 10k msg/s | idle bytes/conn "
             "| generator busy 32 B / 1 KiB / 10k |")
    L.append("|---|--:|--:|--:|--:|--:|--:|--:|")
    for k in kinds:
        if k.missing:
            L.append(f"| {k.label} | not available: {k.missing} | | | | | | |")
            continue
        e32, e1k, lat, idle = (R.get((k.key, s)) for s, _, _ in SCENARIOS)

        def cell(r, f):
            if r is None:
                return "–"
            if not r.ok:
                return "failed"
            return f(r)

        L.append("| " + " | ".join([
            k.label,
            cell(e32, lambda r: fmt_rate(r.msgs_per_sec)),
            cell(e1k, lambda r: fmt_rate(r.msgs_per_sec)),
            f"{cell(e32, lambda r: fmt_pct(r.cpu_pct))} / {cell(e1k, lambda r: fmt_pct(r.cpu_pct))}",
            f"{cell(e32, lambda r: fmt_int(r.ns_per_msg))} / {cell(e1k, lambda r: fmt_int(r.ns_per_msg))}",
            cell(lat, lambda r: f"{r.p50_us:,.0f} / {r.p99_us:,.0f}"),
            cell(idle, lambda r: fmt_int(r.bytes_per_conn)),
            f"{busy_cell(e32)} / {busy_cell(e1k)} / {busy_cell(lat)}",
        ]) + " |")
    L.append("")

    # Ratios.
    peers = [k for k in kinds if not k.key.startswith("wsloop")]
    mine = [k for k in kinds if k.key.startswith("wsloop")]
    L.append("## wsloop ÷ each peer")
    L.append("")
    L.append("msg/s: higher is better. ns/msg and p99: lower is better.")
    L.append("")
    L.append("| wsloop | ÷ peer | msg/s 32 B | msg/s 1 KiB | ns/msg 32 B | ns/msg 1 KiB "
             "| p99 at 10k msg/s |")
    L.append("|---|---|--:|--:|--:|--:|--:|")

    def val(server, scen, attr):
        r = R.get((server, scen))
        return getattr(r, attr) if r and r.ok else None

    for w in mine:
        for p in peers:
            if w.missing or p.missing:
                L.append(f"| {w.label} | {p.label} | not available | | | | |")
                continue
            L.append("| " + " | ".join([
                w.label, p.label,
                fmt_ratio(val(w.key, "echo32", "msgs_per_sec"), val(p.key, "echo32", "msgs_per_sec")),
                fmt_ratio(val(w.key, "echo1k", "msgs_per_sec"), val(p.key, "echo1k", "msgs_per_sec")),
                fmt_ratio(val(w.key, "echo32", "ns_per_msg"), val(p.key, "echo32", "ns_per_msg")),
                fmt_ratio(val(w.key, "echo1k", "ns_per_msg"), val(p.key, "echo1k", "ns_per_msg")),
                fmt_ratio(val(w.key, "latency", "p99_us"), val(p.key, "latency", "p99_us")),
            ]) + " |")
    L.append("")

    # Syscalls.
    if strace is not None:
        L.append(f"## Syscalls per echoed message: wsloop inline, echo 32 B, under `strace -c -f`")
        L.append("")
        if not strace.ok:
            L.append(f"Not measured under strace: {strace.error}.")
            if strace.plain_syscw is not None and strace.plain_messages:
                L.append("")
                L.append(f"Without strace, `syscw` of `/proc/PID/io` (write, writev; not sendto) "
                         f"counted {strace.plain_syscw:,} calls for {strace.plain_messages:,} "
                         f"echoed messages: {strace.plain_syscw / strace.plain_messages:.4f} "
                         f"per message.")
        else:
            L.append(f"`strace -c -f -p PID` attached to a fresh `wsloop --dispatch inline "
                     f"--reactors 1 --workers 1` before `wsloop-loadtest echo -c "
                     f"{ECHO_CONNECTIONS} -w {ECHO_WINDOW} -s 32 -d {ARGS.strace_seconds:g}` "
                     f"started and detached after it exited ({strace.seconds:.1f} s); every one "
                     f"of the run's {strace.messages:,} echoed messages falls inside that window. "
                     f"Under strace the server ran at {fmt_rate(strace.msgs_per_sec)} msg/s; the "
                     f"counts include the 100 handshakes and closes.")
            L.append("")
            L.append("| syscall | what it is here | calls | per echoed message |")
            L.append("|---|---|--:|--:|")
            shown = sorted(strace.calls.items(), key=lambda kv: -kv[1])
            for name, n in shown:
                if n < strace.messages * 0.001 and name not in SYSCALL_MEANING:
                    continue
                L.append(f"| {name} | {SYSCALL_MEANING.get(name, '')} | {n:,} "
                         f"| {n / strace.messages:.4f} |")
            for name in ("futex", "write", "read", "epoll_wait"):
                if name not in strace.calls:
                    L.append(f"| {name} | {SYSCALL_MEANING.get(name, '')} | 0 | 0 |")
            total = sum(strace.calls.values())
            L.append(f"| all | | {total:,} | {total / strace.messages:.4f} |")
        if strace.plain_syscw is not None and strace.plain_messages:
            L.append(f"| write family, no strace | `syscw` of `/proc/PID/io` (write, writev; "
                     f"not sendto) over the same load on a fresh server, "
                     f"{fmt_rate(strace.plain_msgs_per_sec)} msg/s, "
                     f"{strace.plain_messages:,} messages | {strace.plain_syscw:,} "
                     f"| {strace.plain_syscw / strace.plain_messages:.4f} |")
        elif strace.plain_error:
            L.append(f"| write family, no strace | not measured: {strace.plain_error} | | |")
        L.append("")

    # How to read.
    bound = []
    for k in kinds:
        labs = [lab for s, lab, _ in SCENARIOS if generator_bound(R.get((k.key, s)))]
        if labs:
            bound.append(f"{k.label} ({', '.join(labs)})")
    L.append("## How to read it")
    L.append("")
    L.append("- **msg/s**: messages echoed per second in the measurement window (the "
             "generator's `throughput.msgs_per_sec`: answered messages of those sent in the "
             "window); each echoed message is counted once.")
    L.append(f"- **server CPU %**: the server process's utime + stime (all its threads, "
             f"`/proc/PID/stat`, {CLK_TCK} ticks/s) over a window inside the generator's "
             f"measurement window: from {CPU_START_MARGIN:g} s after the moment the server held "
             f"all {ECHO_CONNECTIONS} connections (seen in `/proc/PID/fd`) plus the warmup, to "
             f"that moment plus warmup plus duration less {CPU_END_MARGIN:g} s; so no connection "
             f"setup, warmup, drain or close. 100% is one core. The kernel derives these "
             f"figures from the scheduler's exact run time, so each read is good to a tick.")
    L.append("- **server CPU ns/msg**: that CPU time ÷ (msg/s × the window's length). It stays "
             "valid when the generator, not the server, is the limit: compare servers on it "
             "then. It covers the server's own threads, kernel TCP work in its syscalls "
             "included; loopback delivery done on the generator's core is not in it.")
    L.append("- **p50 / p99**: round trip at 1,000 connections × 10 msg/s, measured from each "
             "message's intended send time (coordinated omission corrected).")
    L.append("- **idle bytes/conn**: growth of the server's RSS from before the connections "
             f"opened to while all {HOLD_CONNECTIONS:,} were held, ÷ connections; user-space "
             "memory only (kernel socket buffers are not in RSS).")
    L.append("- **generator busy**: share of the window the generator's one thread was not "
             "idle in `poll`; \\* marks a run above 90% or with a saturated second, where "
             "msg/s and latency show the generator's limit rather than the server's (its "
             "cost per message grows when a server writes each frame with its own syscall, "
             "so it can be the limit at low msg/s too). "
             + ("Generator-bound here: " + "; ".join(bound) + "." if bound
                else "No run was generator-bound here."))
    L.append("- **ratios** are wsloop's figure ÷ the peer's, from this one run on a shared "
             "2-core virtual machine where other work may run at the same time: differences "
             "under ~10–15% are noise. The per-run details below show how busy each core was "
             "in each echo run's CPU window (`/proc/stat`, tick-sampled, so only shown for "
             "echo, where the cores are busy throughout); \"others\" is the server core's "
             "busy share not spent by the server, i.e. other processes competing with it. "
             "The latency runs' ns/msg is the cost of a message at low load (a wake-up per "
             "message or so). The raw JSON "
             f"of every run is in `{meta['out_dir']}/`.")
    L.append("")

    # Details.
    L.append("## Per-run details")
    L.append("")
    L.append(f"| server | scenario | msg/s | CPU window s | server CPU % | server CPU ns/msg "
             f"| core {ARGS.server_core} busy % (others) | core {ARGS.client_core} busy % "
             f"| generator busy | notes |")
    L.append("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in runs:
        notes = list(r.notes)
        if r.error:
            notes.insert(0, "FAILED: " + r.error)
        c0 = r.core_busy_pct.get(ARGS.server_core)
        others = None if c0 is None or r.cpu_pct is None else max(0.0, c0 - r.cpu_pct)
        L.append("| " + " | ".join([
            r.server, r.scenario,
            fmt_int(r.msgs_per_sec),
            "–" if r.cpu_window_s is None else f"{r.cpu_window_s:.2f}",
            fmt_pct(r.cpu_pct),
            fmt_int(r.ns_per_msg),
            "–" if c0 is None else f"{fmt_pct(c0)} ({fmt_pct(others)})",
            fmt_pct(r.core_busy_pct.get(ARGS.client_core)),
            busy_cell(r),
            "; ".join(n.replace("|", "/") for n in notes),
        ]) + " |")
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------------- main

def build() -> None:
    steps = [
        ["cargo", "build", "--release", "-p", "wsloop", "--bin", "wsloop",
         "-p", "wsloop-loadtest", "--bin", "wsloop-loadtest"],
        ["bash", "scripts/build-peers.sh"],
    ]
    for i, cmd in enumerate(steps):
        log("building: " + shlex.join(cmd))
        p = spawn(cmd, cwd=ROOT, stdout=sys.stderr, stderr=sys.stderr)
        try:
            rc = p.wait(timeout=3600)
        except subprocess.TimeoutExpired:
            stop(p)
            rc = -1
        if p in CHILDREN:
            CHILDREN.remove(p)
        if rc != 0:
            if i == 0:
                raise SystemExit(f"bench-suite: building wsloop failed ({rc})")
            log(f"building the peers failed ({rc}); the missing ones are reported as such")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, help="seconds measured per echo and latency "
                    "run (default 10, or 3 with --quick)")
    ap.add_argument("--quick", action="store_true", help="~3 s runs")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of warmup (default 1)")
    ap.add_argument("--hold", type=float, help="seconds the idle connections are held "
                    "before the RSS is read (default 2, or 1 with --quick)")
    ap.add_argument("--write", type=Path, metavar="FILE", help="also write the report here")
    ap.add_argument("--servers", help="comma-separated subset of: wsloop-inline, "
                    "wsloop-workers, tokio-tungstenite, fastwebsockets, node-ws")
    ap.add_argument("--no-build", action="store_true", help="use what is already built")
    ap.add_argument("--no-strace", action="store_true", help="skip the syscall count")
    ap.add_argument("--strace-seconds", type=float, default=3.0)
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument("--out", type=Path, help="directory for raw results "
                    "(default target/bench-suite/<UTC time>)")
    a = ap.parse_args(argv)
    if a.duration is None:
        a.duration = 3.0 if a.quick else 10.0
    if a.hold is None:
        a.hold = 1.0 if a.quick else 2.0
    if a.duration < 1.0 or a.duration > 600 or a.warmup < 0 or a.warmup > 60:
        ap.error("--duration must be 1..600 s and --warmup 0..60 s")
    if not (0 < a.strace_seconds <= 60) or not (0 < a.hold <= 60):
        ap.error("--strace-seconds and --hold must be over 0 and at most 60 s")
    if a.server_core == a.client_core:
        ap.error("--server-core and --client-core must differ")
    return a


ARGS: argparse.Namespace


def main(argv) -> int:
    global ARGS
    ARGS = parse_args(argv)
    # Ctrl-C stops the suite even where it was started with SIGINT ignored (`cmd &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    cores = os.sched_getaffinity(0)
    if not {ARGS.server_core, ARGS.client_core} <= cores:
        print(f"bench-suite: needs cores {ARGS.server_core} and {ARGS.client_core}; this "
              f"process may use {sorted(cores)}", file=sys.stderr)
        return 2
    stamp = dt.datetime.now(dt.timezone.utc)
    out_dir = ARGS.out or ROOT / "target/bench-suite" / stamp.strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not ARGS.no_build:
            build()
        if not LOADTEST.exists():
            print(f"bench-suite: {LOADTEST} is missing (run without --no-build)", file=sys.stderr)
            return 2
        # From here on the suite's own polling stays off the server's core.
        os.sched_setaffinity(0, {ARGS.client_core})
        kinds = server_kinds()
        if ARGS.servers:
            want = [s.strip() for s in ARGS.servers.split(",") if s.strip()]
            unknown = set(want) - {k.key for k in kinds}
            if unknown:
                print(f"bench-suite: unknown servers {sorted(unknown)}", file=sys.stderr)
                return 2
            kinds = [k for k in kinds if k.key in want]
        load_before = " ".join(open("/proc/loadavg").read().split()[:3])
        runs: list[Run] = []
        for k in kinds:
            if k.missing:
                log(f"{k.key}: not available ({k.missing})")
                continue
            for key, label, fn in SCENARIOS:
                log(f"{k.key}: {label}")
                r = run_one(k, key, fn, out_dir)
                runs.append(r)
                if r.ok:
                    log(f"  ok: {summary_line(r)}")
                else:
                    log(f"  FAILED: {r.error}")
                time.sleep(0.5)
        strace = None
        if not ARGS.no_strace and (not ARGS.servers or "wsloop-inline" in ARGS.servers):
            log("syscalls: wsloop inline, echo 32 B under strace -c")
            strace = strace_run(out_dir)
            if not strace.ok:
                log(f"  strace: {strace.error}")
        load_after = " ".join(open("/proc/loadavg").read().split()[:3])
        cmd = "python3 scripts/bench_suite.py" + ("" if not argv else " " + shlex.join(argv))
        meta = {
            "date": stamp.strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_info(),
            "command": cmd,
            "rev": git_rev(),
            "load_before": load_before,
            "load_after": load_after,
            "out_dir": os.path.relpath(out_dir, ROOT),
        }
        text = render(kinds, runs, strace, meta)
        (out_dir / "results.json").write_text(json.dumps({
            "meta": meta, "runs": [r.as_json() for r in runs],
            "strace": None if strace is None else strace.__dict__}, indent=1))
        (out_dir / "report.md").write_text(text + "\n")
        print(text)
        if ARGS.write:
            ARGS.write.write_text(text + "\n")
            log(f"wrote {ARGS.write}")
        return 0
    except KeyboardInterrupt:
        log("interrupted: stopping every server")
        return 130
    finally:
        stop_all()


def summary_line(r: Run) -> str:
    parts = []
    if r.msgs_per_sec is not None:
        parts.append(f"{r.msgs_per_sec:,.0f} msg/s")
    if r.cpu_pct is not None:
        parts.append(f"server CPU {r.cpu_pct:.0f}%")
    if r.ns_per_msg is not None:
        parts.append(f"{r.ns_per_msg:,.0f} ns/msg")
    if r.p99_us is not None:
        parts.append(f"p50/p99 {r.p50_us:.0f}/{r.p99_us:.0f} µs")
    if r.bytes_per_conn is not None:
        parts.append(f"{r.bytes_per_conn:,.0f} B/conn")
    if r.gen_busy is not None:
        parts.append(f"generator {r.gen_busy * 100:.0f}% busy")
    parts += r.notes
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
