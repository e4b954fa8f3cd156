"""WebSocket clients (Python's `websockets`, a library we did not write)
that keep talking to `ringtail serve` while it upgrades itself to a new
binary, and check that nothing is lost, repeated or reordered and that no
connection closes. Run by tests/upgrade.rs.

    upgrade_clients.py BASE_URL ECHO_PLAIN ECHO_DEFLATE CHAT MAX_SECONDS \
        [CA_FILE HTTPS]

BASE_URL is ws://HOST:PORT, or wss://HOST:PORT with CA_FILE the PEM of the
CA that signed the server's certificate (Python's `ssl` checks it). It
opens ECHO_PLAIN clients on /ws/echo without compression and ECHO_DEFLATE
with permessage-deflate (and checks the server accepted it), CHAT clients
on /ws/chat, and HTTPS keep-alive clients (one TLS connection each, over
Python's `ssl`; only with wss://); prints "READY" once every handshake is
done; then, until a line "stop" (or end of file) arrives on standard input:

* each echo client sends sequence-numbered messages — small and large,
  text and binary, compressible, and fragmented ones (the library sends a
  list as one message in several frames) — with at most 4 in flight, and
  checks every echo comes back exactly once, in order, byte for byte;
* each chat client sends "s<client>:<seq>" every 20 ms; every chat client
  checks it receives every sender's messages exactly once and in order
  (all clients join before anyone sends, so each sees each sender from 0).
* each HTTPS client sends requests one at a time on its one connection —
  GET /hello, HEAD /hello, GET of a missing path, POST /hello with a body —
  each written in two parts, and checks every answer (status, body); the
  connection must stay open throughout.

While it runs it prints "P <json list>" — per client, the messages checked
so far (echo clients first, then chat clients, then HTTPS clients) — when that changed, at most
every 100 ms. After "stop" the senders stop, every client waits (at most 20
s) for what is still due, and it prints "OK <json>" and exits 0, or prints
"FAIL <reason>" and exits 1. It also fails if "stop" has not come after
MAX_SECONDS, or if any connection closes.
"""

import asyncio
import hashlib
import json
import ssl
import sys
import threading
import time

from websockets.asyncio.client import connect


def echo_message(client, seq):
    """The seq-th message of an echo client: its shape cycles."""
    kind = seq % 7
    head = f"{client}:{seq}:"
    if kind == 0:
        return head + "small"
    if kind == 1:
        # Compressible and larger than a receive: spans frames and reads.
        return head + "abcdefgh" * 8192
    if kind == 2:
        # 64 KiB of incompressible binary.
        return head.encode() + hashlib.sha256(head.encode()).digest() * 2048
    if kind == 3:
        # Fragmented text (one message, three frames), with non-ASCII
        # characters split from the rest.
        return [head + "frag-", "ment-" * 300, "ed \u00e9\u20ac"]
    if kind == 4:
        return head.encode() + bytes(range(256)) * 4
    if kind == 5:
        # Fragmented binary, larger pieces.
        return [head.encode(), bytes(range(256)) * 64, b"end"]
    return head + "text \u00e9"


def expected_echo(client, seq):
    m = echo_message(client, seq)
    if isinstance(m, list):
        return "".join(m) if isinstance(m[0], str) else b"".join(m)
    return m


class Failed(Exception):
    pass


class Run:
    def __init__(self):
        self.stop = asyncio.Event()
        self.counts = []
        self.chat_sent = {}
        self.chat_done = 0


async def recv_or_none(ws, seconds):
    """The next message, or None after `seconds` (cancelling `recv` is
    safe in websockets' asyncio client: nothing is lost)."""
    try:
        return await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return None


async def echo_client(run, index, ws):
    sent = 0
    got = 0
    window = asyncio.Semaphore(4)
    done_sending = asyncio.Event()

    async def sender():
        nonlocal sent
        while not run.stop.is_set():
            await window.acquire()
            if run.stop.is_set():
                break
            await ws.send(echo_message(index, sent))
            sent += 1
            await asyncio.sleep(0.005)
        done_sending.set()

    async def receiver():
        nonlocal got
        since = time.monotonic()
        while not (done_sending.is_set() and got == sent):
            m = await recv_or_none(ws, 0.2)
            if m is None:
                if got < sent and time.monotonic() - since > 20:
                    raise Failed(f"echo client {index}: no echo of message {got} for 20 s "
                                 f"({sent} sent)")
                continue
            since = time.monotonic()
            want = expected_echo(index, got)
            if m != want:
                raise Failed(f"echo client {index}: echo {got} is {str(m)[:60]!r}..., "
                             f"want {str(want)[:60]!r}...")
            got += 1
            run.counts[index] = got
            window.release()

    await asyncio.gather(sender(), receiver())
    return {"sent": sent, "echoed": got}


async def chat_client(run, index, slot, ws, senders):
    """`index`: this client's number among the chat clients; `slot`: its
    place in run.counts."""
    last = {s: -1 for s in range(senders)}
    received = 0

    async def sender():
        seq = 0
        while not run.stop.is_set():
            await ws.send(f"s{index}:{seq}")
            seq += 1
            run.chat_sent[index] = seq
            await asyncio.sleep(0.02)
        run.chat_done += 1

    def all_in():
        return run.chat_done == senders and all(
            last[s] == run.chat_sent[s] - 1 for s in range(senders))

    async def receiver():
        nonlocal received
        since = time.monotonic()
        while not (run.stop.is_set() and all_in()):
            m = await recv_or_none(ws, 0.2)
            if m is None:
                if time.monotonic() - since > 20:
                    raise Failed(f"chat client {index}: no chat message for 20 s; last seen "
                                 f"per sender {last}, sent {run.chat_sent}")
                continue
            try:
                v = json.loads(m)
            except (TypeError, ValueError):
                raise Failed(f"chat client {index}: not a JSON chat message: {m[:60]!r}")
            if v.get("type") != "chat":
                continue  # counts and ticks
            since = time.monotonic()
            text = v["text"]
            if not text.startswith("s") or ":" not in text:
                raise Failed(f"chat client {index}: unexpected chat text {text!r}")
            s, seq = text[1:].split(":")
            s, seq = int(s), int(seq)
            if seq != last[s] + 1:
                raise Failed(f"chat client {index}: from sender {s} got {seq} after "
                             f"{last[s]} (lost, repeated or reordered)")
            last[s] = seq
            received += 1
            run.counts[slot] = received

    await asyncio.gather(sender(), receiver())
    return {"received": received, "per_sender": [last[s] + 1 for s in range(senders)]}


def https_request(n):
    """The n-th request of an HTTPS client: bytes, HEAD?, status, body."""
    kind = n % 4
    if kind == 0:
        return b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", False, 200, b"Hello, World!"
    if kind == 1:
        return b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n", True, 200, None
    if kind == 2:
        return f"GET /missing-{n} HTTP/1.1\r\nHost: t\r\n\r\n".encode(), False, 404, None
    body = f"{n:010d}".encode()
    return (b"POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n" + body,
            False, 200, b"Hello, World!")


async def https_client(run, index, slot, conn):
    reader, writer = conn
    n = 0

    async def line(what):
        try:
            got = await asyncio.wait_for(reader.readline(), 20)
        except asyncio.TimeoutError:
            raise Failed(f"HTTPS client {index}: request {n}: no {what} for 20 s")
        if not got:
            raise Failed(f"HTTPS client {index}: request {n}: connection closed")
        return got

    while not run.stop.is_set():
        req, head, status, body = https_request(n)
        cut = len(req) // 2
        writer.write(req[:cut])
        await writer.drain()
        await asyncio.sleep(0.001)
        writer.write(req[cut:])
        await writer.drain()
        status_line = await line("status line")
        if not status_line.startswith(f"HTTP/1.1 {status} ".encode()):
            raise Failed(f"HTTPS client {index}: request {n}: {status_line!r}, want {status}")
        length = None
        while True:
            h = await line("header")
            if h in (b"\r\n", b"\n"):
                break
            name, _, value = h.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length is None:
            raise Failed(f"HTTPS client {index}: request {n}: no Content-Length")
        if not head:
            try:
                got = await asyncio.wait_for(reader.readexactly(length), 20)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                raise Failed(f"HTTPS client {index}: request {n}: body: {e!r}")
            if body is not None and got != body:
                raise Failed(f"HTTPS client {index}: request {n}: body {got[:60]!r}")
        n += 1
        run.counts[slot] = n
        await asyncio.sleep(0.002)
    writer.close()
    return {"requests": n}


async def progress(run):
    shown = None
    while not run.stop.is_set():
        if run.counts != shown:
            shown = list(run.counts)
            print("P", json.dumps(shown), flush=True)
        try:
            await asyncio.wait_for(run.stop.wait(), 0.1)
        except asyncio.TimeoutError:
            pass


async def main(base, n_plain, n_deflate, n_chat, max_seconds, ca_file=None, n_https=0):
    run = Run()
    tls = None
    if base.startswith("wss://"):
        tls = ssl.create_default_context(cafile=ca_file)
    elif n_https:
        raise Failed("HTTPS clients need a wss:// base and a CA file")
    loop = asyncio.get_running_loop()

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        loop.call_soon_threadsafe(run.stop.set)

    threading.Thread(target=read_stdin, daemon=True).start()

    conns = []
    kinds = []
    for i in range(n_plain + n_deflate):
        deflate = i >= n_plain
        ws = await connect(base + "/ws/echo", max_size=8 * 1024 * 1024, open_timeout=10,
                           compression="deflate" if deflate else None, ssl=tls)
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        if deflate and "permessage-deflate" not in ext:
            raise Failed(f"echo client {i}: deflate not accepted ({ext!r})")
        if not deflate and ext:
            raise Failed(f"echo client {i}: extension {ext!r} not offered")
        conns.append(ws)
        kinds.append("echo-deflate" if deflate else "echo")
    for i in range(n_chat):
        ws = await connect(base + "/ws/chat", max_size=8 * 1024 * 1024, open_timeout=10,
                           compression=None, ssl=tls)
        conns.append(ws)
        kinds.append("chat")
    host, port = base.split("://", 1)[1].rsplit(":", 1)
    https = []
    for i in range(n_https):
        https.append(await asyncio.wait_for(
            asyncio.open_connection(host, int(port), ssl=tls, server_hostname=host), 10))
        kinds.append("https")
    run.counts = [0] * (len(conns) + n_https)
    run.chat_sent = {i: 0 for i in range(n_chat)}
    print("READY", flush=True)

    n_echo = n_plain + n_deflate
    tasks = [echo_client(run, i, conns[i]) for i in range(n_echo)]
    tasks += [chat_client(run, i, n_echo + i, conns[n_echo + i], n_chat) for i in range(n_chat)]
    tasks += [https_client(run, i, len(conns) + i, https[i]) for i in range(n_https)]

    async def deadline():
        try:
            await asyncio.wait_for(run.stop.wait(), max_seconds)
        except asyncio.TimeoutError:
            raise Failed(f"not told to stop within {max_seconds} s")

    results = await asyncio.gather(deadline(), progress(run), *tasks)
    print("P", json.dumps(run.counts), flush=True)
    for ws in conns:
        await ws.close()
    return {"kinds": kinds, "clients": results[2:]}


if __name__ == "__main__":
    base, plain, deflate, chat, max_s = sys.argv[1:6]
    ca, n_https = (sys.argv[6], int(sys.argv[7])) if len(sys.argv) > 7 else (None, 0)
    try:
        out = asyncio.run(main(base, int(plain), int(deflate), int(chat), float(max_s),
                               ca, n_https))
    except Exception as e:  # noqa: BLE001 - every failure is reported the same way
        print(f"FAIL {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
    print("OK", json.dumps(out), flush=True)
