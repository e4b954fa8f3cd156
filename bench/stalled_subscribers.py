"""N WebSocket subscribers of /ws/broadcast that never read, against a
running `ringtail serve`, and one publisher that keeps sending.

The subscribers connect with a 4 KiB receive buffer and then read nothing.
The publisher (itself a subscriber, so it reads and discards what comes
back) sends SIZE-byte text messages, one every PACE seconds (0: as fast as
the server takes them), until it has sent CAP bytes, SECS seconds have
passed, or the server has taken nothing for 3 s. Meanwhile the server's RSS
is sampled every 0.2 s. Afterwards: how many subscribers the server closed
(the slow-client policy), and whether a fresh client still gets /hello.

Prints one line: subscribers, published bytes, seconds, RSS before, peak
and after (KiB), subscribers closed, the /hello status line.

usage: stalled_subscribers.py HOST PORT SERVER_PID N SIZE CAP PACE SECS
"""

import socket
import sys
import time

from ws_client import frame, rss_kib, websocket

host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n, size, cap = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
pace, secs = float(sys.argv[7]), float(sys.argv[8])

before = rss_kib(pid)
subs = [websocket(host, port, "/ws/broadcast", rcvbuf=4096) for _ in range(n)]
pub = websocket(host, port, "/ws/broadcast")
pub.setblocking(False)
msg = frame(1, b"x" * size)
sent, start = 0, time.time()
last_progress = last_sample = start
peak = rss_kib(pid)
while sent < cap and time.time() - start < secs:
    now = time.time()
    if now - last_sample >= 0.2:
        peak, last_sample = max(peak, rss_kib(pid)), now
    try:
        while pub.recv(1 << 20):
            pass
        raise SystemExit("the publisher was closed by the server")
    except BlockingIOError:
        pass
    try:
        k = pub.send(msg)
        sent += k
        if k:
            last_progress = now
        if pace:
            time.sleep(pace)
    except BlockingIOError:
        if now - last_progress > 3:
            break
        time.sleep(0.001)
# Let the server finish what it took, sampling on.
for _ in range(10):
    time.sleep(0.2)
    peak = max(peak, rss_kib(pid))
after = rss_kib(pid)

c = socket.create_connection((host, port), timeout=5)
c.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
status = c.recv(4096).split(b"\r\n")[0].decode()

closed = 0
for s in subs:
    s.setblocking(False)
    try:
        while True:
            if not s.recv(1 << 20):
                closed += 1
                break
    except BlockingIOError:
        pass
    except ConnectionResetError:
        closed += 1
print(
    f"subscribers={n} size={size} pace_s={pace} published_bytes={sent} "
    f"secs={time.time() - start:.1f} rss_kib_before={before} rss_kib_peak={peak} "
    f"rss_kib_after={after} closed_by_server={closed} hello={status!r}"
)
