"""WebSocket checks driven by Python's `websockets` library (a client we did
not write), against a ringtail echo endpoint. Run by the Rust tests with the
virtualenv that scripts/install-test-deps creates.

    ws_client.py echo URL
        text and binary messages of 0, 1, 125, 126, 127, 65535, 65536 bytes,
        64 KiB and 16 MiB, each echoed back intact; a ping answered.
    ws_client.py deflate URL PARAMS
        negotiate permessage-deflate with PARAMS (comma-separated:
        server_no_context_takeover, client_no_context_takeover,
        server_max_window_bits=N, client_max_window_bits=N), print the
        negotiated extension, and echo compressible and random messages.
    ws_client.py close URL
        close with 1000 and a reason; the server echoes the code.

Prints "OK ..." lines and exits 0 on success; raises (exit 1) otherwise.
Every operation is bounded by a timeout.
"""

import asyncio
import os
import sys

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

SIZES = [0, 1, 125, 126, 127, 65535, 65536, 64 * 1024 + 3, 16 * 1024 * 1024]


async def echo(url):
    async with connect(url, max_size=32 * 1024 * 1024, compression=None, open_timeout=10) as ws:
        for n in SIZES:
            # Exactly n bytes of UTF-8, with a two-byte character when it fits.
            text = ("ringtail-" * (n // 9 + 1))[: max(n - 2, 0)] + ("é" if n >= 2 else "x" * n)
            assert len(text.encode()) == n
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), 20)
            assert got == text, f"text {n}: got {len(got)} chars"
            data = os.urandom(n)
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), 20)
            assert got == data, f"binary {n}: got {len(got)} bytes"
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        # A fragmented text message whose UTF-8 code point spans fragments.
        await ws.send(["fragmented ", "mess", "age \u00e9", "\u20ac end"])
        got = await asyncio.wait_for(ws.recv(), 10)
        assert got == "fragmented message \u00e9\u20ac end", got
    print("OK echo", len(SIZES))


def factory(params):
    kw = {}
    for p in filter(None, params.split(",")):
        if "=" in p:
            k, v = p.split("=")
            kw[k] = int(v)
        else:
            kw[p] = True
    return ClientPerMessageDeflateFactory(**kw)


async def deflate(url, params):
    async with connect(
        url, extensions=[factory(params)], compression=None, max_size=32 * 1024 * 1024, open_timeout=10
    ) as ws:
        negotiated = ws.response.headers.get("Sec-WebSocket-Extensions")
        assert negotiated and negotiated.startswith("permessage-deflate"), negotiated
        for i in range(20):
            msg = ("compress me please " * (50 * (i + 1)))
            await ws.send(msg)
            assert await asyncio.wait_for(ws.recv(), 10) == msg
            blob = os.urandom(1000 * (i + 1))
            await ws.send(blob)
            assert await asyncio.wait_for(ws.recv(), 10) == blob
        big = "x" * (4 * 1024 * 1024)
        await ws.send(big)
        assert await asyncio.wait_for(ws.recv(), 20) == big
        # Fragmented compressed messages (RSV1 on the first frame only),
        # with a code point split across fragments, twice in a row.
        for _ in range(2):
            parts = ["compress the fragments " * 20, "é" * 100, "and the end " * 30]
            await ws.send(parts)
            assert await asyncio.wait_for(ws.recv(), 10) == "".join(parts)
    print("OK deflate", negotiated)


async def close(url):
    ws = await connect(url, open_timeout=10)
    await ws.close(1000, "bye")
    assert ws.close_code == 1000, ws.close_code
    print("OK close", ws.close_code)


def main():
    cmd, url = sys.argv[1], sys.argv[2]
    if cmd == "echo":
        coro = echo(url)
    elif cmd == "deflate":
        coro = deflate(url, sys.argv[3] if len(sys.argv) > 3 else "")
    elif cmd == "close":
        coro = close(url)
    else:
        raise SystemExit(f"unknown command {cmd}")
    asyncio.run(asyncio.wait_for(coro, 60))


if __name__ == "__main__":
    main()
