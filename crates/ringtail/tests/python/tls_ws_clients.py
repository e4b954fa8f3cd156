"""WSS clients for `ringtail serve` with TLS: Python's `ssl` and the
`websockets` library (neither written by us). Run by tests/tls_clients.rs.

    tls_ws_clients.py MODE BASE CA_FILE [ARGS...]

BASE is wss://HOST:PORT (the certificate must name HOST), CA_FILE the PEM
of the CA that signed it. Every mode prints one line "OK <json>" and exits
0, or "FAIL <reason>" and exits 1; every wait is bounded.

echo
    One client on /ws/echo offering permessage-deflate; the server must
    accept it (Sec-WebSocket-Extensions of the 101). Sends a 1 MiB
    compressible text message, a 1 MiB compressible binary one, then 2,000
    small and medium messages (text and binary, some below the server's
    compression threshold) with up to 64 in flight, then one more 1 MiB
    text; every echo must come back exactly once, in order, byte for
    byte. Closes with 1000.

broadcast CLIENTS SENDERS MESSAGES
    CLIENTS clients on /ws/broadcast (every other one with deflate; the
    server subscribes each before its 101); the first SENDERS each send
    MESSAGES numbered messages. Every client must receive every sender's
    messages exactly once and in order.

topics CLIENTS PUBLISHERS MESSAGES
    CLIENTS clients on /ws/topics: client i subscribes to "t<i%3>", even
    ones to "all" as well, and waits for its own "pub" to come back (its
    subscriptions are then in effect). Then the first PUBLISHERS each
    publish MESSAGES numbered messages, message k on "t<k%3>", and every
    fifth one also on "all". Every client must receive exactly the
    messages of its topics, from every publisher, once and in order.

slow READERS MESSAGES SIZE METRICS_URL
    READERS clients on /ws/broadcast that read, and one more that never
    reads (a small receive buffer; the library stops reading its socket
    once 2 frames wait). Reader 0 sends MESSAGES messages of SIZE bytes,
    at most 8 ahead of the slowest reader, so the readers never fall
    behind. Every reader must receive all of them, once and in order.
    Then METRICS_URL (HTTPS) is polled until ringtail_broadcast_drops_total
    is at least 1, and the slow client starts reading: it must see a
    prefix of the messages, in order, then the server's Close; its code
    and reason are reported (the test asserts them).
"""

import asyncio
import json
import socket
import ssl
import sys
import time
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

DEADLINE = 60.0


class Failed(Exception):
    pass


def context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    return ctx


async def recv(ws, what, seconds=20.0):
    try:
        return await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        raise Failed(f"{what}: nothing for {seconds} s")
    except ConnectionClosed as e:
        raise Failed(f"{what}: connection closed ({e})")


# ----- echo -----------------------------------------------------------------------


def small_message(i):
    """The i-th small echo message: text or binary, 1 to ~600 bytes."""
    n = 1 + (i * 37) % 600
    if i % 3 == 2:
        return bytes((i + j) % 251 for j in range(n))
    return (f"{i}:" + "abcdefghij" * 60)[:n]


async def mode_echo(base, ctx):
    ws = await connect(base + "/ws/echo", ssl=ctx, compression="deflate",
                       max_size=4 * 1024 * 1024, open_timeout=10)
    ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    if "permessage-deflate" not in ext:
        raise Failed(f"deflate not accepted: Sec-WebSocket-Extensions {ext!r}")
    sent_bytes = 0
    big_text = "".join(f"line {i:07d}: ringtail over TLS, compressible\n"
                       for i in range(1024 * 1024 // 44 + 1))[:1024 * 1024]
    big_bin = b"".join(i.to_bytes(4, "big") * 4 for i in range(65536))
    assert len(big_text) == 1024 * 1024 and len(big_bin) == 1024 * 1024
    for m in (big_text, big_bin):
        await ws.send(m)
        sent_bytes += len(m)
        back = await recv(ws, "echo of a 1 MiB message")
        if back != m:
            raise Failed(f"the 1 MiB echo differs ({type(back).__name__} of {len(back)})")

    n_small = 2000
    window = asyncio.Semaphore(64)
    small_bytes = 0

    async def sender():
        nonlocal small_bytes
        for i in range(n_small):
            await window.acquire()
            m = small_message(i)
            small_bytes += len(m)
            await ws.send(m)

    async def receiver():
        for i in range(n_small):
            back = await recv(ws, f"echo of small message {i}")
            want = small_message(i)
            if back != want:
                raise Failed(f"echo {i} is {str(back)[:60]!r}, want {str(want)[:60]!r} "
                             "(lost, repeated or reordered)")
            window.release()

    await asyncio.gather(sender(), receiver())
    sent_bytes += small_bytes
    await ws.send(big_text)
    sent_bytes += len(big_text)
    if await recv(ws, "the last 1 MiB echo") != big_text:
        raise Failed("the last 1 MiB echo differs")
    await ws.close()
    return {"extensions": ext, "messages": 3 + n_small, "bytes": sent_bytes,
            "close_code": ws.close_code}


# ----- broadcast ------------------------------------------------------------------


async def mode_broadcast(base, ctx, n_clients, n_senders, n_msgs):
    conns = []
    for i in range(n_clients):
        ws = await connect(base + "/ws/broadcast", ssl=ctx, open_timeout=10,
                           compression="deflate" if i % 2 else None)
        conns.append(ws)
    deflated = sum(1 for ws in conns
                   if "permessage-deflate" in ws.response.headers.get(
                       "Sec-WebSocket-Extensions", ""))
    total = n_senders * n_msgs

    async def client(i, ws):
        last = [-1] * n_senders
        got = 0
        while got < total:
            m = await recv(ws, f"client {i} after {got} of {total} ({last})")
            s, seq, _ = m.split(":", 2)
            s, seq = int(s[1:]), int(seq)
            if seq != last[s] + 1:
                raise Failed(f"client {i}: from sender {s} got {seq} after {last[s]} "
                             "(lost, repeated or reordered)")
            last[s] = seq
            got += 1
        # Nothing more may come (no copy of anything).
        try:
            extra = await asyncio.wait_for(ws.recv(), 0.3)
            raise Failed(f"client {i}: a message after all of them: {extra[:60]!r}")
        except asyncio.TimeoutError:
            pass
        return got

    async def sender(s, ws):
        for k in range(n_msgs):
            await ws.send(f"s{s}:{k}:" + "x" * (k % 50))
            if k % 20 == 19:
                await asyncio.sleep(0.002)

    results = await asyncio.gather(*(client(i, ws) for i, ws in enumerate(conns)),
                                   *(sender(s, conns[s]) for s in range(n_senders)))
    for ws in conns:
        await ws.close()
    return {"clients": n_clients, "deflate": deflated, "received": results[:n_clients]}


# ----- topics ---------------------------------------------------------------------


def topics_of(i):
    return [f"t{i % 3}"] + (["all"] if i % 2 == 0 else [])


async def mode_topics(base, ctx, n_clients, n_pubs, n_msgs):
    conns = []
    for i in range(n_clients):
        ws = await connect(base + "/ws/topics", ssl=ctx, open_timeout=10,
                           compression="deflate" if i % 2 else None)
        conns.append(ws)
    # Subscribe, then see one's own message come back: the subscriptions
    # are then in effect (one connection's commands are taken in order).
    for i, ws in enumerate(conns):
        for t in topics_of(i):
            await ws.send(f"sub {t}")
        await ws.send(f"pub t{i % 3} ready:{i}")

    async def ready(i, ws):
        while True:
            m = await recv(ws, f"client {i} waiting for its own ready")
            if m == f"ready:{i}":
                return

    await asyncio.gather(*(ready(i, ws) for i, ws in enumerate(conns)))

    def expected(i):
        mine = set(topics_of(i))
        out = {p: [] for p in range(n_pubs)}
        for p in range(n_pubs):
            for k in range(n_msgs):
                if f"t{k % 3}" in mine:
                    out[p].append(f"p{p}:{k}:t{k % 3}")
                if k % 5 == 0 and "all" in mine:
                    out[p].append(f"p{p}:{k}:all")
        return out

    async def client(i, ws):
        want = expected(i)
        at = {p: 0 for p in range(n_pubs)}
        total = sum(len(v) for v in want.values())
        got = 0
        while got < total:
            m = await recv(ws, f"client {i} after {got} of {total}")
            if m.startswith("ready:"):
                continue  # another client's, on the same topic
            p = int(m.split(":", 1)[0][1:])
            if at[p] >= len(want[p]) or m != want[p][at[p]]:
                nxt = want[p][at[p]] if at[p] < len(want[p]) else None
                raise Failed(f"client {i} ({topics_of(i)}): got {m!r}, want {nxt!r} "
                             "(lost, repeated, reordered or not subscribed)")
            at[p] += 1
            got += 1
        try:
            while True:
                extra = await asyncio.wait_for(ws.recv(), 0.3)
                if not extra.startswith("ready:"):
                    raise Failed(f"client {i}: a message after all of them: {extra!r}")
        except asyncio.TimeoutError:
            pass
        return got

    async def publisher(p, ws):
        for k in range(n_msgs):
            await ws.send(f"pub t{k % 3} p{p}:{k}:t{k % 3}")
            if k % 5 == 0:
                await ws.send(f"pub all p{p}:{k}:all")
            if k % 20 == 19:
                await asyncio.sleep(0.002)

    results = await asyncio.gather(*(client(i, ws) for i, ws in enumerate(conns)),
                                   *(publisher(p, conns[p]) for p in range(n_pubs)))
    for ws in conns:
        await ws.close()
    return {"clients": n_clients, "received": results[:n_clients]}


# ----- slow -----------------------------------------------------------------------


def metric(url, ctx, name):
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise Failed(f"no {name} in {url}")


async def mode_slow(base, ctx, n_readers, n_msgs, size, metrics_url):
    readers = []
    for i in range(n_readers):
        readers.append(await connect(base + "/ws/broadcast", ssl=ctx, open_timeout=10,
                                     compression=None, max_size=4 * size))
    # The one that never reads: a small receive buffer, and the library
    # stops reading its socket once two frames wait.
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect((host, int(port)))
    slow = await connect(base + "/ws/broadcast", ssl=ctx, sock=sock, open_timeout=10,
                         compression=None, max_size=4 * size, max_queue=2,
                         ping_interval=None)
    before = metric(metrics_url, ctx, "ringtail_broadcast_drops_total")

    def message(k):
        head = f"{k:06d}:"
        return head + chr(ord("a") + k % 26) * (size - len(head))

    progress = [0] * n_readers

    async def reader(i, ws):
        for k in range(n_msgs):
            m = await recv(ws, f"reader {i} waiting for message {k}")
            if m != message(k):
                raise Failed(f"reader {i}: message {m[:7]!r} instead of {k} "
                             "(lost, repeated or reordered)")
            progress[i] = k + 1
        return progress[i]

    async def sender():
        for k in range(n_msgs):
            t0 = time.monotonic()
            while k - min(progress) >= 8:
                if time.monotonic() - t0 > 20:
                    raise Failed(f"readers stuck at {progress} while sending {k}")
                await asyncio.sleep(0.002)
            await readers[0].send(message(k))

    got = await asyncio.gather(*(reader(i, ws) for i, ws in enumerate(readers)), sender())
    sent_at = time.monotonic()
    # The server closes the slow client with its policy; its counters
    # reach /metrics within a tick.
    drops = before
    while drops < before + 1:
        if time.monotonic() - sent_at > 20:
            raise Failed(f"ringtail_broadcast_drops_total still {drops} after 20 s")
        await asyncio.sleep(0.1)
        drops = metric(metrics_url, ctx, "ringtail_broadcast_drops_total")
    # Now it reads: a prefix of the messages in order, then the Close.
    seen = 0
    code = reason = None
    try:
        while True:
            m = await asyncio.wait_for(slow.recv(), 20)
            if m != message(seen):
                raise Failed(f"the slow client got {m[:7]!r} as message {seen}")
            seen += 1
    except asyncio.TimeoutError:
        raise Failed(f"the slow client was not closed ({seen} messages, then nothing for 20 s)")
    except ConnectionClosed as e:
        if e.rcvd is not None:
            code, reason = e.rcvd.code, e.rcvd.reason
    # The readers are still served.
    await readers[1].send("after:" + "z" * 10)
    for i, ws in enumerate(readers):
        m = await recv(ws, f"reader {i} after the slow client was closed")
        if m != "after:" + "z" * 10:
            raise Failed(f"reader {i}: {m[:20]!r} after the slow client was closed")
    for ws in readers:
        await ws.close()
    return {"readers": got[:n_readers], "slow_seen": seen, "slow_code": code,
            "slow_reason": reason, "drops": drops - before, "sent": n_msgs}


async def main(argv):
    mode, base, ca = argv[1:4]
    ctx = context(ca)
    rest = argv[4:]

    async def run():
        if mode == "echo":
            return await mode_echo(base, ctx)
        if mode == "broadcast":
            return await mode_broadcast(base, ctx, *map(int, rest[:3]))
        if mode == "topics":
            return await mode_topics(base, ctx, *map(int, rest[:3]))
        if mode == "slow":
            return await mode_slow(base, ctx, int(rest[0]), int(rest[1]), int(rest[2]), rest[3])
        raise Failed(f"unknown mode {mode!r}")

    try:
        return await asyncio.wait_for(run(), DEADLINE)
    except asyncio.TimeoutError:
        raise Failed(f"{mode} did not finish within {DEADLINE} s")


if __name__ == "__main__":
    try:
        out = asyncio.run(main(sys.argv))
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        print(f"FAIL {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print("OK", json.dumps(out), flush=True)
