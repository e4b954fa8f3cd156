"""Clients for tests/cluster.rs: WebSocket clients spread over several
ringtail processes sharing topics through Redis.

    cluster_clients.py REDIS_PORT ADDR1 ADDR2 ADDR3

Talks to the test over stdin/stdout: prints `KILL` and waits for a line
(Redis is then down), prints `RESTART` and waits for a line (Redis is back),
prints `OK <facts as JSON>` at the end. Every check failing raises (non-zero
exit with the reason)."""

import asyncio
import hashlib
import json
import socket
import sys
import time

import websockets

REDIS_PORT = int(sys.argv[1])
ADDRS = sys.argv[2:]
CLIENTS_PER_PROCESS = 100
PUBLISHERS_PER_PROCESS = 10
MESSAGES = 20
TOPIC = "t"


def redis(*args):
    """One command to Redis over a fresh socket; the reply, parsed."""
    s = socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=5)
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)
    f = s.makefile("rb")

    def read():
        line = f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2].decode()
        if t == b"*":
            return [read() for _ in range(int(rest))]
        raise ValueError(line)

    v = read()
    s.close()
    return v


def numsub(*channels):
    r = redis("PUBSUB", "NUMSUB", *["ringtail:" + c for c in channels])
    return dict(zip(r[0::2], r[1::2]))


def wait_for(what, check, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def step(word):
    print(word, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise AssertionError("the test went away at " + word)


class Client:
    def __init__(self, ws, process):
        self.ws = ws
        self.process = process
        self.got = []
        self.closed = None
        self.task = asyncio.ensure_future(self.read())

    async def read(self):
        try:
            async for m in self.ws:
                self.got.append(m)
        except websockets.ConnectionClosed as e:
            self.closed = e
        if self.closed is None:
            self.closed = "closed"


async def until(what, check, seconds=20):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def from_senders(client, prefix):
    """Messages of this phase by sender, in arrival order."""
    by = {}
    for m in client.got:
        if m.startswith(prefix):
            sender, seq = m[len(prefix):].split(":")
            by.setdefault(sender, []).append(int(seq))
    return by


async def publish_all(pubs, prefix, count):
    for i in range(count):
        for name, c in pubs:
            await c.ws.send("pub %s %s%s:%d" % (TOPIC, prefix, name, i))


async def main():
    loop = asyncio.get_running_loop()
    clients = []
    for p, addr in enumerate(ADDRS):
        for _ in range(CLIENTS_PER_PROCESS):
            ws = await websockets.connect("ws://%s/ws/topics" % addr, max_size=4 << 20)
            clients.append(Client(ws, p))
    for c in clients:
        await c.ws.send("sub " + TOPIC)
    # One Redis subscription per process, not one per client.
    await loop.run_in_executor(None, wait_for, "3 subscriptions", lambda: numsub(TOPIC)[
        "ringtail:" + TOPIC] == len(ADDRS))
    pubs = []
    for p in range(len(ADDRS)):
        mine = [c for c in clients if c.process == p][:PUBLISHERS_PER_PROCESS]
        pubs += [("p%dc%d" % (p, i), c) for i, c in enumerate(mine)]
    senders = {name for name, _ in pubs}

    # Phase 1: every message to every subscriber, once, in order per sender.
    await publish_all(pubs, "A", MESSAGES)
    want = list(range(MESSAGES))
    await until("phase A deliveries", lambda: all(
        sum(len(v) for v in from_senders(c, "A").values()) >= len(senders) * MESSAGES
        for c in clients))
    for c in clients:
        by = from_senders(c, "A")
        assert set(by) == senders, (set(by) ^ senders)
        for s, seqs in by.items():
            assert seqs == want, (s, seqs)

    # Phase 2: Redis down. Local deliveries go on; nothing crosses.
    step("KILL")
    await publish_all(pubs, "D", 5)
    own = {p: {n for n, c in pubs if c.process == p} for p in range(len(ADDRS))}
    await until("local deliveries while Redis is down", lambda: all(
        sum(len(v) for v in from_senders(c, "D").values()) >= len(own[c.process]) * 5
        for c in clients))
    await asyncio.sleep(0.3)
    for c in clients:
        by = from_senders(c, "D")
        assert set(by) == own[c.process], ("cross-process while down", set(by))
        assert all(v == list(range(5)) for v in by.values()), by
        assert c.closed is None, c.closed

    # Phase 3: Redis back: subscriptions restored, traffic resumes.
    step("RESTART")
    await loop.run_in_executor(None, wait_for, "subscriptions restored",
                               lambda: numsub(TOPIC)["ringtail:" + TOPIC] == len(ADDRS))
    await publish_all(pubs, "R", MESSAGES)
    await until("phase R deliveries", lambda: all(
        sum(len(v) for v in from_senders(c, "R").values()) >= len(senders) * MESSAGES
        for c in clients))
    for c in clients:
        by = from_senders(c, "R")
        assert set(by) == senders
        for s, seqs in by.items():
            assert seqs == want, (s, seqs)

    # A 1 MiB message from one process reaches every subscriber.
    big = "B" + ("0123456789abcdef" * (1 << 16))[: (1 << 20) - 1]
    await clients[0].ws.send("pub %s %s" % (TOPIC, big))
    await until("the 1 MiB message", lambda: all(big in c.got for c in clients), 30)

    # No client lost, nothing extra.
    for c in clients:
        assert c.closed is None, c.closed
        assert len(c.got) == len(senders) * MESSAGES * 2 + len(own[c.process]) * 5 + 1, len(c.got)

    # Churn: 1,000 topics subscribed and dropped by a client on each
    # process, three times; no Redis subscription is left behind.
    churn = ["c%d" % i for i in range(1000)]
    churners = [next(c for c in clients if c.process == p) for p in range(len(ADDRS))]
    for _ in range(3):
        for c in churners:
            for t in churn:
                await c.ws.send("sub " + t)
        await loop.run_in_executor(None, wait_for, "1,000 topics subscribed", lambda: all(
            v == len(ADDRS) for v in numsub(*churn).values()))
        for c in churners:
            for t in churn:
                await c.ws.send("unsub " + t)
        await loop.run_in_executor(None, wait_for, "1,000 topics dropped", lambda: all(
            v == 0 for v in numsub(*churn).values()))
    left = redis("PUBSUB", "CHANNELS", "ringtail:*")
    assert left == ["ringtail:" + TOPIC], left

    for c in clients:
        await c.ws.close()
    await loop.run_in_executor(None, wait_for, "the last subscription dropped",
                               lambda: numsub(TOPIC)["ringtail:" + TOPIC] == 0)
    print("OK " + json.dumps({"clients": len(clients), "senders": len(senders),
                              "big_sha": hashlib.sha256(big.encode()).hexdigest()[:12]}),
          flush=True)


asyncio.run(main())
