"""A wss:// echo server on Python `websockets` (permessage-deflate on, its defaults: context
takeover both ways, 4 KiB windows), for the load generator's TLS tests.

Usage: wss_echo.py CERT.pem KEY.pem [--no-compression]. Prints the port it listens on,
then serves until killed.
"""

import asyncio
import ssl
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    cert, key = sys.argv[1], sys.argv[2]
    compression = None if "--no-compression" in sys.argv[3:] else "deflate"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    async with serve(
        echo, "127.0.0.1", 0, ssl=context, compression=compression, max_size=1 << 20
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


asyncio.run(main())
