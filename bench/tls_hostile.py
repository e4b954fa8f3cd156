"""Hostile TLS peers against one `ringtail serve` (HTTPS on PORT, its root
holding a large `big.bin`): N connections that stop halfway through a
ClientHello, send garbage, send an unfinished 16 KiB handshake record, or
stay silent (a quarter each), then 200 TLS peers that ask for big.bin and
never read; prints the server's VmRSS (KiB) and open descriptors at each
step and whether an ordinary HTTPS client is still served. Run by hand:

    python3 bench/tls_hostile.py SERVER_PID TLS_PORT N CA_FILE
"""
import socket, ssl, sys, time, os
pid, port, n, ca = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
ctx = ssl.create_default_context(cafile=ca)
def ok():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    d = b""
    while True:
        c = s.recv(65536)
        if not c: break
        d += c
    return d.startswith(b"HTTP/1.1 200")
# A real ClientHello from Python's ssl, captured via a memory BIO.
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
o = ctx.wrap_bio(inc, out, server_hostname="localhost")
try: o.do_handshake()
except ssl.SSLWantReadError: pass
hello = out.read()
print("base rss", rss(), "fds", fds())
held = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    kind = i % 4
    if kind == 0: s.sendall(hello[: len(hello) // 2])           # stops halfway
    elif kind == 1: s.sendall(os.urandom(3000))                  # garbage
    elif kind == 2: s.sendall(bytes([22,3,1,0x40,0]) + os.urandom(8000))  # a big handshake record, never finished
    else: pass                                                    # silent
    held.append(s)
time.sleep(1)
print(f"{n} hostile held: rss", rss(), "fds", fds(), "served others:", ok())
# TLS peers that never read: handshake, ask for a big file, read nothing.
readers = []
for i in range(200):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    readers.append(s)
time.sleep(2)
print("+200 non-reading TLS peers: rss", rss(), "fds", fds(), "served others:", ok())
time.sleep(12)  # handshake timeout 10 s
print("after the handshake timeout: rss", rss(), "fds", fds(), "served others:", ok())
for s in held + readers: s.close()
time.sleep(2)
print("all closed: rss", rss(), "fds", fds(), "served others:", ok())
