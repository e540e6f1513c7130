#!/usr/bin/env python3
"""Interop checks against a running wsloop echo server, with Python `websockets`
as an independent client (asyncio API).

Not the sync API: its client reads the socket in a background thread while the caller
writes, and Python's `ssl` sockets are not safe for that. Over `wss://`, the server's
TLS 1.3 session tickets are read in that thread while the request is written, and about
one connection in 300 loses its request or fails with an OpenSSL "internal error",
against any server (Python's own `websockets` server too). asyncio drives TLS from one
thread.

Usage: scripts/interop_python.py ws://127.0.0.1:PORT [--deflate]
       scripts/interop_python.py wss://127.0.0.1:PORT --ca CERT.pem [--deflate]

With --deflate the client offers permessage-deflate (the library's default) and the
checks also require it to be negotiated, and add 1 MiB messages and 1,000 in a row.

Prints one line per check and exits non-zero if any check failed.
"""

import asyncio
import os
import ssl
import sys
import traceback

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

TIMEOUT = 10  # seconds per receive/handshake: a hung server fails, never stalls CI


COMPRESSION = None  # "deflate" with --deflate
SSL = None  # for wss://: a context trusting only the --ca certificate


async def dial(url):
    # proxy=None: never route loopback tests through an *_proxy from the environment.
    ws = await connect(
        url,
        compression=COMPRESSION,
        ssl=SSL,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        max_size=None,
        ping_interval=None,
    )
    if COMPRESSION:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        expect("negotiated extension", extensions.startswith("permessage-deflate"), True)
    return ws


def expect(what, got, want):
    if got != want:
        show = lambda v: repr(v) if len(repr(v)) < 80 else f"{type(v).__name__} of length {len(v)}"
        raise AssertionError(f"{what}: got {show(got)}, want {show(want)}")


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def echo(url, message):
    async with await dial(url) as ws:
        await ws.send(message)
        expect("echo", await recv(ws), message)


async def check_text_small(url):
    await echo(url, "hello, wsloop \u2713 \U0001f680")


async def check_binary_small(url):
    await echo(url, bytes(range(256)))


async def check_text_60k(url):
    # Multi-byte characters too, so a UTF-8 check that splits codepoints would show.
    await echo(url, ("wsloop \u00e9\u4e16\U0001f680 " * 4096)[: 60 * 1024])


async def check_binary_60k(url):
    await echo(url, os.urandom(60 * 1024))


async def check_100_in_order(url):
    # Send all before reading any, so the server sees them pipelined in few reads.
    sent = [f"message {i}" if i % 2 else f"binary {i}".encode() for i in range(100)]
    async with await dial(url) as ws:
        for m in sent:
            await ws.send(m)
        got = [await recv(ws) for _ in sent]
    for i, (g, s) in enumerate(zip(got, sent)):
        expect(f"message #{i}", g, s)


async def check_ping(url):
    async with await dial(url) as ws:
        pong = await ws.ping(b"are you there")
        try:
            await asyncio.wait_for(pong, TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"no pong within {TIMEOUT}s") from None


async def check_close_1000(url):
    async with await dial(url) as ws:
        await ws.close(1000, "done here")
    # close_code is the code the server sent back in its close frame.
    expect("close code from server", ws.close_code, 1000)


async def check_invalid_utf8(url):
    # Overlong encoding + lone surrogate: invalid UTF-8 in a text frame.
    # send(bytes, text=True) sends the bytes as-is in a Text frame, unchecked.
    async with await dial(url) as ws:
        await ws.send(b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80\xc0\xaf", text=True)
        try:
            reply = await recv(ws)
            raise AssertionError(f"server echoed invalid UTF-8 back: {reply!r}")
        except ConnectionClosed:
            pass
        expect("close code from server", ws.close_code, 1007)


CHECKS = [
    ("text echo, small", check_text_small),
    ("binary echo, small", check_binary_small),
    ("text echo, 60 KiB", check_text_60k),
    ("binary echo, 60 KiB", check_binary_60k),
    ("100 messages in a row, in order", check_100_in_order),
    ("ping answered with pong", check_ping),
    ("close 1000 with reason echoes 1000", check_close_1000),
    ("invalid UTF-8 text closes with 1007", check_invalid_utf8),
]


async def check_text_1m(url):
    message = "".join(f'{{"n":{i},"word":"w{i % 97}"}}' for i in range(60_000))[: 1 << 20]
    await echo(url, message)


async def check_binary_1m(url):
    message = bytes((i * 7) % 251 for i in range(1 << 20))
    await echo(url, message)


async def check_1000_in_a_row(url):
    async with await dial(url) as ws:
        sent = [f'{{"seq":{i},"payload":"{"abc" * 400}"}}' for i in range(1000)]
        for m in sent:
            await ws.send(m)
            expect("echo", await recv(ws), m)


DEFLATE_CHECKS = [
    ("text echo, 1 MiB", check_text_1m),
    ("binary echo, 1 MiB", check_binary_1m),
    ("1,000 compressible messages in a row", check_1000_in_a_row),
]


def main():
    global COMPRESSION, SSL
    args = sys.argv[1:]
    if "--deflate" in args:
        COMPRESSION = "deflate"
        args.remove("--deflate")
    if "--ca" in args:
        at = args.index("--ca")
        SSL = ssl.create_default_context(cafile=args[at + 1])
        del args[at : at + 2]
    if len(args) != 1 or (args[0].startswith("wss:") and SSL is None):
        sys.exit(f"usage: {sys.argv[0]} ws://HOST:PORT | wss://HOST:PORT --ca CERT [--deflate]")
    url = args[0]
    checks = CHECKS + (DEFLATE_CHECKS if COMPRESSION else [])
    failed = 0
    for name, check in checks:
        try:
            asyncio.run(check(url))
            print(f"ok    {name}", flush=True)
        except Exception as e:  # every failure is reported, the next check still runs
            failed += 1
            print(f"FAIL  {name}: {type(e).__name__}: {e}", flush=True)
            if os.environ.get("INTEROP_VERBOSE"):
                traceback.print_exc()
    mode = "with permessage-deflate" if COMPRESSION else "uncompressed"
    mode += ", over TLS" if SSL else ""
    print(f"python websockets interop ({mode}): {len(checks) - failed} of {len(checks)} checks ok")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
