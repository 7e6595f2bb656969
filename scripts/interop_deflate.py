#!/usr/bin/env python3
"""The peer for tests/it/deflate_interop.rs: Python `websockets`, which
compresses every message with permessage-deflate (RFC 7692).

  interop_deflate.py server
      An echo server on 127.0.0.1 (a free port, printed on the first line of
      stdout), compression on with websockets' defaults, plus a second
      listener (port on the second line) that demands no context takeover
      and 10-bit windows. Runs until stdin closes.

  interop_deflate.py client URL OFFER
      Connects to URL offering permessage-deflate as OFFER says (default,
      nct = no context takeover both ways, small = server 10 / client 9
      window bits), sends messages of several kinds and sizes, checks each
      echo, and prints the negotiated Sec-WebSocket-Extensions value.
      Exits 1 on any mismatch.
"""

import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)


def messages():
    rows = [{"id": i, "user": "user%d" % (i % 17), "action": "update", "value": i * 31 % 1000} for i in range(4000)]
    big = json.dumps(rows)
    noise = os.urandom(100_000)
    return [
        "Hello",
        "",
        big[:300],
        big[:300],
        big,
        "é€😀" * 1000,
        b"\x00" * 200_000,
        noise,
        noise[:1000],
        b"",
    ]


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def server():
    small = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=10,
        client_max_window_bits=10,
    )
    async with serve(echo, "127.0.0.1", 0, max_size=None) as default, serve(
        echo, "127.0.0.1", 0, compression=None, extensions=[small], max_size=None
    ) as strict:
        print(default.sockets[0].getsockname()[1], flush=True)
        print(strict.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def client(url, offer):
    factories = {
        "default": ClientPerMessageDeflateFactory(client_max_window_bits=True),
        "nct": ClientPerMessageDeflateFactory(
            server_no_context_takeover=True, client_no_context_takeover=True, client_max_window_bits=True
        ),
        "small": ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=9),
    }
    async with connect(url, compression=None, extensions=[factories[offer]], max_size=None) as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if "permessage-deflate" not in extensions:
            raise SystemExit("no permessage-deflate in the response: %r" % extensions)
        for i, m in enumerate(messages()):
            await ws.send(m)
            back = await ws.recv()
            if back != m:
                raise SystemExit("message %d (%d bytes) came back different" % (i, len(m)))
        print("python client (%s): %d messages echoed, extensions: %s" % (offer, len(messages()), extensions))


def main():
    if sys.argv[1:2] == ["server"]:
        asyncio.run(server())
    elif sys.argv[1:2] == ["client"] and len(sys.argv) == 4:
        asyncio.run(client(sys.argv[2], sys.argv[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
