"""N idle connections held open against one ringtail process (TLS 1.3 with
Python's ssl, or plain TCP), each after one keep-alive GET /hello; prints
the server's VmRSS growth per connection (`bench/tls_idle.sh` runs it).

    python3 tls_idle.py PID PORT tls|plain CA_FILE N
"""
import socket
import ssl
import sys
import time

pid, port, mode, ca, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3


def rss_kib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")


time.sleep(1.0)  # the server settles (its 250 ms sweep)
before = rss_kib()
conns = []
deadline = time.monotonic() + 300
for _ in range(n):
    if time.monotonic() > deadline:
        raise SystemExit("took more than 300 s")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if mode == "tls":
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while b"Hello, World!" not in got:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("closed before the answer")
        got += chunk
    conns.append(s)
time.sleep(1.5)  # idle: the sweep frees what the burst left
after = rss_kib()
print(f"{mode} n={n} rss_kib {before} -> {after} bytes_per_conn {(after - before) * 1024 / n:.0f}")
