#!/usr/bin/env python3
"""Memory per idle connection of a running server: its resident set after opening N
WebSocket connections (held idle, open), minus before, over N.

Usage: scripts/idle_memory.py PID URL N [--ca CERT.pem]
  PID  the server's process id (its /proc/PID/status VmRSS is read)
  URL  ws://HOST:PORT/ or wss://HOST:PORT/ (with --ca: the certificate to trust)

One connection is opened and used first, so buffers a server allocates once (per
reactor) are in the "before" figure. Needs Python `websockets` (asyncio client).
"""

import asyncio
import ssl
import sys

from websockets.asyncio.client import connect


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_one(url, context):
    ws = await connect(url, ssl=context, proxy=None, compression=None, ping_interval=None,
                       open_timeout=60, max_queue=1)
    return ws


async def main():
    args = sys.argv[1:]
    context = None
    if "--ca" in args:
        at = args.index("--ca")
        context = ssl.create_default_context(cafile=args[at + 1])
        del args[at : at + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    pid, url, n = int(args[0]), args[1], int(args[2])
    warm = [await open_one(url, context) for _ in range(4)]
    for ws in warm:
        await ws.send("warm-up")
        await ws.recv()
    await asyncio.sleep(1)
    before = rss_kib(pid)
    held = []
    for start in range(0, n, 200):
        batch = [open_one(url, context) for _ in range(min(200, n - start))]
        held += await asyncio.gather(*batch)
    await asyncio.sleep(2)
    after = rss_kib(pid)
    per = (after - before) * 1024 / n
    print(f"{url.split(':')[0]}: {n} idle connections, server RSS {before} KiB -> {after} KiB: "
          f"{per:.0f} bytes per connection")
    for ws in held + warm:
        ws.transport.abort()


if __name__ == "__main__":
    asyncio.run(main())
