"""A WebSocket client (Python's `websockets`, a library we did not write)
that checks a connection survives server handovers with nothing lost,
repeated or reordered. Run by tests/handover.rs.

    ws_seq.py URL SECONDS COMPRESSION

Subscribes to the server's ticks ("sub"), then for SECONDS sends
sequence-numbered messages — small and large, text and binary, some
fragmented, compressible ones when COMPRESSION is "deflate" — with up to 8
in flight, and checks that:

* every echo comes back exactly once and in order, byte for byte;
* the ticks ("tick:N", published by the server every 10 ms) arrive with
  consecutive N (none lost or repeated) from the first one seen;
* the connection is never closed.

Prints "OK <echoes> <ticks>" and exits 0, or raises (exit 1).
"""

import asyncio
import hashlib
import sys
import time

from websockets.asyncio.client import connect


def message(seq):
    """The seq-th message: its kind cycles so every shape recurs often."""
    kind = seq % 6
    head = f"{seq}:".encode()
    if kind == 0:
        return head + b"small"
    if kind == 1:
        # Compressible, larger than one receive: spans frames and reads.
        return (head + b"abcdefgh" * 8192).decode()
    if kind == 2:
        return head + hashlib.sha256(head).digest() * 2048  # 64 KiB binary
    if kind == 3:
        # Fragmented text: the library sends each piece as a frame.
        return [f"{seq}:frag-", "ment-" * 300, "ed \u00e9\u20ac"]
    if kind == 4:
        return head + bytes(range(256)) * 4
    return f"{seq}:text \u00e9"


def expected(seq):
    m = message(seq)
    if isinstance(m, list):
        return "".join(m)
    return m


async def main(url, seconds, compression):
    kw = {"compression": "deflate" if compression == "deflate" else None}
    async with connect(url, max_size=8 * 1024 * 1024, open_timeout=10, **kw) as ws:
        await ws.send("sub")
        sent = 0
        got = 0
        ticks = []
        window = asyncio.Semaphore(8)
        done_sending = asyncio.Event()

        async def sender():
            nonlocal sent
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await window.acquire()
                await ws.send(message(sent))
                sent += 1
            done_sending.set()

        async def receiver():
            nonlocal got
            while not (done_sending.is_set() and got == sent):
                m = await asyncio.wait_for(ws.recv(), 20)
                if isinstance(m, str) and m.startswith("tick:"):
                    ticks.append(int(m[5:]))
                    continue
                want = expected(got)
                assert m == want, f"echo {got}: got {str(m)[:40]!r}..., want {str(want)[:40]!r}..."
                got += 1
                window.release()

        await asyncio.gather(sender(), receiver())
        for a, b in zip(ticks, ticks[1:]):
            assert b == a + 1, f"ticks not consecutive: {a} then {b}"
        assert len(ticks) > 0, "no tick arrived"
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "none")
        print("OK", got, len(ticks), ext)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3]))
