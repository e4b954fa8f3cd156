"""Small helpers shared by the bench's Python peers: a server's RSS, a raw
WebSocket client handshake, masked client frames."""

import socket


def rss_kib(pid):
    """The VmRSS of process `pid`, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def websocket(host, port, path="/ws/echo", rcvbuf=None):
    """A connected socket past a WebSocket handshake on `path` (101
    checked), with SO_RCVBUF set to `rcvbuf` before connecting if given."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect((host, port))
    s.sendall(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        if not b:
            raise RuntimeError("closed during the handshake")
        head += b
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def frame(opcode, payload):
    """A final masked client frame (mask key 0, so the payload is sent as
    it is)."""
    head = bytes([0x80 | opcode])
    k = len(payload)
    if k < 126:
        head += bytes([0x80 | k])
    elif k < 65536:
        head += bytes([0x80 | 126]) + k.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + k.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload
