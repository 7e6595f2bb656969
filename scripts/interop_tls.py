#!/usr/bin/env python3
"""The peer for the Python TLS interop tests in tests/it/tls.rs: Python
`websockets` over TLS (the `ssl` module), both roles.

  interop_tls.py server CERT.pem KEY.pem
      A wss:// echo server on 127.0.0.1 (a free port, printed on the first
      line of stdout) presenting CERT.pem. Runs until stdin closes.

  interop_tls.py client URL CA.pem
      Connects to the wss:// URL trusting CA.pem only, sends messages of
      several kinds and sizes, checks each echo, and closes. Exits 1 on any
      mismatch.
"""

import asyncio
import os
import ssl
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


def messages():
    return ["hello over TLS", "", "é€😀" * 1000, os.urandom(100_000), b"\x00" * 70_000]


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def server(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    async with serve(echo, "127.0.0.1", 0, ssl=context, max_size=None) as s:
        print(s.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def client(url, ca):
    context = ssl.create_default_context(cafile=ca)
    async with connect(url, ssl=context, max_size=None) as ws:
        for message in messages():
            await ws.send(message)
            if await ws.recv() != message:
                print("echo differs", file=sys.stderr)
                sys.exit(1)
    print("python client: %d messages echoed over TLS" % len(messages()))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(sys.argv[2], sys.argv[3]))
    else:
        asyncio.run(client(sys.argv[2], sys.argv[3]))
