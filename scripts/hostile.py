#!/usr/bin/env python3
"""Tries the server as an attacker would and prints what each bound held to.

Each scenario starts its own `wsloop` (target/release/wsloop unless --server is given) on a
free loopback port, attacks it for a bounded time, samples the server's resident memory
(VmRSS) every 20 ms, and prints one line of figures. Exit status 1 if a bound broke.

    cargo build --release --bin wsloop && python3 scripts/hostile.py [--only NAME] [--scale F]

Loopback only; every loop is bounded in count and time.
"""

import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, flags):
        self.port = free_port()
        cmd = [binary, "--addr", f"127.0.0.1:{self.port}", *flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"server did not start: {cmd}")
        self.peak = 0
        self._stop = False
        time.sleep(0.2)
        self.base = self.rss()
        threading.Thread(target=self._sample, daemon=True).start()

    def rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _sample(self):
        while not self._stop:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def growth(self):
        return max(0, self.peak - self.base)

    def stop(self):
        self._stop = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def upgrade(port, path="/", host=None, read=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    host = host or f"127.0.0.1:{port}"
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    if read:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        return s, head.split(b"\r\n", 1)[0]
    return s, None


def frame(opcode, payload=b""):
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def is_closed(s, wait=0.0):
    """True once the server closed the socket (EOF or reset); drains what is readable."""
    s.settimeout(wait if wait > 0 else 0.0001)
    try:
        while True:
            data = s.recv(1 << 16)
            if not data:
                return True
    except (BlockingIOError, socket.timeout):
        return False
    except OSError:
        return True


def flood(s, blob, total, seconds):
    """Sends `blob` until `total` bytes or `seconds` have gone; returns bytes sent."""
    sent, end = 0, time.time() + seconds
    s.settimeout(0.5)
    while sent < total and time.time() < end:
        try:
            sent += s.send(blob)
        except socket.timeout:
            continue
        except OSError:
            break
    return sent


def sends(socks, blob, total, seconds):
    """Floods every socket at once; returns the bytes sent in all."""
    sent = [0] * len(socks)

    def run(i):
        sent[i] = flood(socks[i], blob, total, seconds)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(socks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(sent)


def echo_load(port, conns, seconds):
    """A busy reactor: `conns` connections echoing 1 KiB messages as fast as they can."""
    stop = time.time() + seconds

    def run():
        try:
            s, _ = upgrade(port)
            msg = frame(0x2, b"x" * 1024)
            while time.time() < stop:
                s.sendall(msg * 16)
                got = 0
                while got < 16 * 1028:
                    got += len(s.recv(1 << 16))
            s.close()
        except OSError:
            pass

    threads = [threading.Thread(target=run, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    return threads


# ---- scenarios ----


def deadlines_on_a_busy_reactor(binary, scale):
    srv = Server(binary, ["--reactors", "1", "--handshake-timeout", "1", "--close-timeout", "1"])
    try:
        load = echo_load(srv.port, 8, 6)
        time.sleep(0.3)
        start = time.time()
        half = []
        for _ in range(150):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            half.append(s)
        # Three that upload and never read: closed as slow consumers, then at the close
        # timeout since they never answer the close frame.
        deaf = [upgrade(srv.port)[0] for _ in range(3)]
        blob = frame(0x2, b"y" * 65000)
        flooders = [
            threading.Thread(target=flood, args=(s, blob, 1 << 40, 4), daemon=True) for s in deaf
        ]
        for t in flooders:
            t.start()
        time.sleep(max(0, start + 4 - time.time()))
        open_half = sum(not is_closed(s) for s in half)
        for t in flooders:
            t.join()
        open_deaf = sum(not is_closed(s, 0.5) for s in deaf)
        for t in load:
            t.join()
        ok = open_half == 0 and open_deaf == 0
        return ok, f"half-sent requests still open after 4 s: {open_half}/150; non-reading uploaders still open: {open_deaf}/3"
    finally:
        srv.stop()


def sigterm_with_a_deaf_client(binary, scale):
    srv = Server(binary, ["--reactors", "1", "--close-timeout", "1"])
    try:
        s, _ = upgrade(srv.port)
        stop = threading.Thread(target=flood, args=(s, frame(0x2, b"z" * 65000), 1 << 40, 5), daemon=True)
        stop.start()
        time.sleep(0.5)
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(timeout=5)
            took = time.time() - t0
        except subprocess.TimeoutExpired:
            took = None
        ok = took is not None and took < 2.0
        return ok, f"exited {took:.2f} s after SIGTERM (close timeout 1 s)" if took else "still running 5 s after SIGTERM"
    finally:
        srv.stop()


def ping_flood(binary, scale, conns=1):
    cap = MIB
    srv = Server(binary, ["--max-backpressure", str(cap)])
    try:
        pings = int(5_000_000 * scale)
        blob = frame(0x9) * 10_000
        socks = [upgrade(srv.port)[0] for _ in range(conns)]
        sent = sends(socks, blob, pings * 6, 20)
        growth = srv.growth()
        bound = conns * cap + 8 * MIB
        return growth <= bound, (
            f"{conns} conn x {sent / 6e6 / conns:.1f} M empty pings sent, never read: "
            f"+{growth / MIB:.1f} MiB RSS (cap {cap / MIB:.0f} MiB each; bound {bound / MIB:.0f} MiB)"
        )
    finally:
        srv.stop()


def ping_flood_8(binary, scale):
    return ping_flood(binary, scale, conns=8)


def tiny_message_flood(binary, scale, flags=(), conns=1, label="default"):
    srv = Server(binary, list(flags))
    try:
        count = int(30_000_000 * scale)
        blob = frame(0x1) * 10_000
        socks = [upgrade(srv.port)[0] for _ in range(conns)]
        t0 = time.time()
        sent = sends(socks, blob, count * 6, 30)
        took = time.time() - t0
        growth = srv.growth()
        # Each connection's queue, the event budget of the (at most two) workers twice
        # over (the allocator's rounding and the batches' spare room are not counted in
        # it), and the allocator's arenas: a constant, whatever the flood's length.
        bound = conns * MIB + 2 * (4 * MIB * 2) + 8 * MIB
        return growth <= bound, (
            f"{label}: {conns} conn x {sent / 6e6 / conns:.1f} M empty text frames sent in {took:.1f} s, "
            f"never read: +{growth / MIB:.1f} MiB RSS (bound {bound / MIB:.0f} MiB)"
        )
    finally:
        srv.stop()


def tiny_flood_drop(binary, scale):
    return tiny_message_flood(
        binary, scale, ["--backpressure", "drop", "--workers", "1"], conns=2, label="drop, 1 worker"
    )


def every_accepted_connection_is_addressable(binary, scale):
    n = int(8192 * min(scale, 1.0))
    srv = Server(binary, ["--max-connections", str(n), "--reactors", "2"])
    try:
        socks, refused = [], 0
        for _ in range(n):
            s, status = upgrade(srv.port)
            if status.startswith(b"HTTP/1.1 101"):
                socks.append(s)
            else:
                refused += 1
                s.close()
        msg = frame(0x1, b"hi")
        for s in socks:
            s.sendall(msg)
        deaf = 0
        for s in socks:
            s.settimeout(5)
            try:
                if s.recv(16)[:4] != b"\x81\x02hi":
                    deaf += 1
            except OSError:
                deaf += 1
        extra, status = upgrade(srv.port)
        ok = deaf == 0 and refused == 0 and status.startswith(b"HTTP/1.1 503")
        for s in socks:
            s.close()
        return ok, f"{len(socks)}/{n} got 101 over 2 reactors, {deaf} of them deaf; one more got {status.decode()}"
    finally:
        srv.stop()


def refused_handshake_firehose(binary, scale):
    srv = Server(binary, ["--reactors", "1"])
    try:
        hose = socket.create_connection(("127.0.0.1", srv.port))
        hose.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        stop = time.time() + 3
        sent = [0]

        def firehose():
            blob = b"\0" * (1 << 16)
            hose.settimeout(0.5)
            while time.time() < stop:
                try:
                    sent[0] += hose.send(blob)
                except socket.timeout:
                    continue
                except OSError:
                    return

        t = threading.Thread(target=firehose, daemon=True)
        t.start()
        time.sleep(0.3)
        s, _ = upgrade(srv.port)
        lat = []
        while time.time() < stop - 0.2:
            t0 = time.perf_counter()
            s.sendall(frame(0x1, b"ping"))
            s.recv(16)
            lat.append(time.perf_counter() - t0)
        t.join()
        lat.sort()
        p99 = lat[int(len(lat) * 0.99)] * 1000
        return p99 < 20, (
            f"neighbour echo p99 {p99:.2f} ms over {len(lat)} round trips while a refused client "
            f"pushed {sent[0] / MIB:.0f} MiB"
        )
    finally:
        srv.stop()


def dns_rebinding(binary, scale):
    results = []
    for flags, expect in [([], b"101"), (["--allowed-hosts", "127.0.0.1"], b"403")]:
        srv = Server(binary, flags)
        try:
            _, status = upgrade(srv.port, host=f"evil.example:{srv.port}")
            results.append((flags, status, expect in status))
        finally:
            srv.stop()
    ok = all(r[2] for r in results)
    text = "; ".join(f"{' '.join(f) or 'defaults'}: Host evil.example -> {s.decode()}" for f, s, _ in results)
    return ok, text


SCENARIOS = {
    "deadlines": deadlines_on_a_busy_reactor,
    "sigterm": sigterm_with_a_deaf_client,
    "pings": ping_flood,
    "pings8": ping_flood_8,
    "tiny": tiny_message_flood,
    "tiny-drop": tiny_flood_drop,
    "addressable": every_accepted_connection_is_addressable,
    "firehose": refused_handshake_firehose,
    "rebinding": dns_rebinding,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="target/release/wsloop")
    ap.add_argument("--only", action="append")
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies flood sizes")
    args = ap.parse_args()
    failed = 0
    for name, run in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        ok, text = run(args.server, args.scale)
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {text}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
