//! `ringtail serve` end to end: the real binary on port 0, HTTP through curl,
//! and the RAW echo through a socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and reads the bound addresses from its log.
fn start(threads: &str) -> (Serve, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--raw-echo",
            "127.0.0.1:0",
        ])
        .args(["--threads", threads])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let serve = Serve(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("addr=") {
                let addr: SocketAddr = line[i + 5..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let _ = tx.send((line.contains("HTTP"), addr));
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut http, mut raw) = (None, None);
    while http.is_none() || raw.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (is_http, addr) = rx
            .recv_timeout(left)
            .expect("ringtail did not log its addresses");
        if is_http {
            http = Some(addr);
        } else {
            raw = Some(addr);
        }
    }
    (serve, http.unwrap(), raw.unwrap())
}

#[test]
fn serve_answers_hello_404_and_raw_echo() {
    let (_serve, http, raw) = start("1");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", " %{http_code}"])
        .arg(format!("http://{http}/hello"))
        .arg(format!("http://{http}/missing"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Hello, World! 200not found\n 404"
    );

    let mut s = TcpStream::connect(raw).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for msg in ["first", "second message"] {
        s.write_all(msg.as_bytes()).unwrap();
        let mut got = vec![0; msg.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.as_bytes());
    }
}

#[test]
fn invalid_options_are_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["serve", "--addr", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value"));
}

#[test]
fn two_event_loops_share_the_port_and_sigterm_exits_cleanly() {
    let (mut serve, http, _raw) = start("2");
    // Many short connections: the kernel spreads them over both listeners;
    // every one is answered.
    for _ in 0..200 {
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.ends_with("Hello, World!"));
    }
    // SAFETY: sending SIGTERM to our own child process.
    assert_eq!(unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "ringtail did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}
