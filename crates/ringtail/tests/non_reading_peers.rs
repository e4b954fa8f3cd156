//! Peers that never read (issue 11): 50 WebSocket peers flooding pings, 50
//! flooding echo messages and 50 pipelining GETs of a large file, none of
//! them reading a byte, against one `ringtail serve` loop. The server's
//! resident memory stays bounded, and it keeps answering everyone else.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server process, killed when dropped (and its directory, removed
/// after it).
struct Serve(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Serve {
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    }
}

const BIG: usize = 8 << 20;

fn start() -> (Serve, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("big.bin"), vec![b'z'; BIG]).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["serve", "--threads", "1", "--addr", "127.0.0.1:0"])
        .arg("--root")
        .arg(&root)
        .arg("--upload-dir")
        .arg(dir.path().join("up"))
        // Stalled peers stay for the whole measurement.
        .args(["--write-timeout", "600", "--access-log", "false"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let serve = Serve(child, dir);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("addr=") {
                let a = line[i + 5..].split_whitespace().next().unwrap().to_string();
                let _ = tx.send(a.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ringtail serve did not start");
    (serve, addr)
}

fn hello(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("Hello, World!"), "{out}");
}

fn ws_open(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"GET /ws/echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]); // a zero mask: payload as is
    f.extend_from_slice(payload);
    f
}

/// One peer: its socket, the bytes it repeats, what it has sent.
struct Peer {
    s: TcpStream,
    chunk: Vec<u8>,
    off: usize,
    sent: usize,
}

/// Writes to every peer without blocking, round-robin, until each has sent
/// `cap` bytes or none could send anything for a second (the server stopped
/// reading them all); bounded by 60 s. Returns the bytes sent.
fn flood(peers: &mut [Peer], cap: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(1) {
        let mut progress = false;
        for (i, p) in peers.iter_mut().enumerate().filter(|(_, p)| p.sent < cap) {
            match p.s.write(&p.chunk[p.off..]) {
                Ok(n) => {
                    p.sent += n;
                    p.off = (p.off + n) % p.chunk.len();
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!(
                    "peer {i} ({}) failed after {} bytes: {e}",
                    ["pings", "echo", "GETs"][i % 3],
                    p.sent
                ),
            }
        }
        if progress {
            quiet_since = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
        if peers.iter().all(|p| p.sent >= cap) {
            break;
        }
    }
    peers.iter().map(|p| p.sent).sum()
}

/// Opens `n` peers of `kind` (0 pings, 1 echo, 2 GETs), floods from all of
/// them until the server stops taking their bytes, and returns how much
/// the server's RSS grew (MiB) and what they sent (MiB).
fn stall(serve: &Serve, addr: SocketAddr, kind: usize, n: usize) -> (Vec<Peer>, f64, f64) {
    let before = serve.rss_kib();
    let ping = masked(0x9, &[b'p'; 125]);
    let echo = masked(0x2, &[b'e'; 16 * 1024]);
    let get = b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    let mut peers: Vec<Peer> = (0..n)
        .map(|_| {
            let (s, chunk) = match kind {
                0 => (ws_open(addr), ping.repeat(256)),
                1 => (ws_open(addr), echo.repeat(4)),
                _ => (TcpStream::connect(addr).unwrap(), get.repeat(256)),
            };
            s.set_nonblocking(true).unwrap();
            Peer {
                s,
                chunk,
                off: 0,
                sent: 0,
            }
        })
        .collect();
    // Each may send up to 64 MiB: far more than the socket buffers between
    // it and the server hold, so whatever the server keeps reading shows.
    let cap = 64 << 20;
    let sent = flood(&mut peers, cap);
    let capped = peers.iter().filter(|p| p.sent >= cap).count();
    assert_eq!(
        capped, 0,
        "{capped} peers that never read could send {cap} bytes each"
    );
    let grown = serve.rss_kib().saturating_sub(before) as f64 / 1024.0;
    (peers, grown, sent as f64 / 1048576.0)
}

const KINDS: [&str; 3] = ["pinging", "echo", "pipelined-GET"];

#[test]
fn peers_that_never_read_leave_memory_bounded_and_others_served() {
    let (serve, addr) = start();
    hello(addr);
    // One peer of each kind: under 16 MiB each.
    for (kind, name) in KINDS.iter().enumerate() {
        let (peers, grown, sent) = stall(&serve, addr, kind, 1);
        eprintln!("1 {name} peer sent {sent:.0} MiB: server RSS +{grown:.1} MiB");
        assert!(
            grown < 16.0,
            "server RSS grew by {grown:.1} MiB for one {name} peer"
        );
        hello(addr);
        drop(peers);
    }
    // 50 of each kind: under 64 MiB for each 50, with all 150 held at once
    // at the end, and the server answering others throughout.
    let mut held = Vec::new();
    let mut total = 0.0;
    for (kind, name) in KINDS.iter().enumerate() {
        let (peers, grown, sent) = stall(&serve, addr, kind, 50);
        eprintln!("50 {name} peers sent {sent:.0} MiB: server RSS +{grown:.1} MiB");
        assert!(
            grown < 64.0,
            "server RSS grew by {grown:.1} MiB for 50 {name} peers"
        );
        hello(addr);
        total += grown;
        held.push(peers);
    }
    eprintln!("150 peers held at once: server RSS +{total:.1} MiB in all");
    drop(held);
    hello(addr);
}
