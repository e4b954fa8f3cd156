"""N peers that never read, against a running `ringtail serve`.

Each peer sends up to CAP bytes -- WebSocket pings, 16 KiB echo messages or
pipelined GETs of /big.bin -- and reads nothing. Sending stops when every
peer has sent CAP bytes, when the server has taken no byte for 2 s (TCP flow
control holds the peers), or after 120 s. Prints the server's RSS growth.

usage: non_reading_peer.py HOST PORT SERVER_PID {ping|echo|get} N CAP
"""

import socket
import sys
import time

from ws_client import frame, rss_kib, websocket

host, port, pid, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
n, cap = int(sys.argv[5]), int(sys.argv[6])


before = rss_kib(pid)
peers = []
for _ in range(n):
    if kind == "ping":
        s, chunk = websocket(host, port), frame(9, b"p" * 125) * 256
    elif kind == "echo":
        s, chunk = websocket(host, port), frame(2, b"e" * 16384) * 4
    elif kind == "get":
        s = socket.create_connection((host, port))
        chunk = b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n" * 256
    else:
        sys.exit(f"unknown kind {kind}")
    s.setblocking(False)
    peers.append({"sock": s, "chunk": chunk, "at": 0, "sent": 0})

start = last_progress = time.monotonic()
while time.monotonic() - start < 120 and time.monotonic() - last_progress < 2:
    progress = False
    for p in peers:
        if p["sent"] >= cap:
            continue
        try:
            k = p["sock"].send(p["chunk"][p["at"]:])
        except BlockingIOError:
            continue
        except OSError as e:
            print(f"peer closed by the server: {e}", file=sys.stderr)
            p["sent"] = cap
            continue
        p["sent"] += k
        p["at"] = (p["at"] + k) % len(p["chunk"])
        progress = True
    if all(p["sent"] >= cap for p in peers):
        break
    if progress:
        last_progress = time.monotonic()
    else:
        time.sleep(0.005)
after = rss_kib(pid)
sent = sum(p["sent"] for p in peers) / 1048576
print(
    f"{kind} x{n}: sent {sent:.0f} MiB, server RSS {before} -> {after} KiB "
    f"(+{(after - before) / 1024:.1f} MiB)"
)
