//! `ringtail serve --access-log-file`: the access log in the combined
//! format with the duration, written to a file (and not to stderr) — curl
//! requests with a referer and a user agent, a WebSocket upgrade (101) and
//! its close with duration and bytes — read back from the file.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ringtail serve` with `extra` flags; its address and stderr lines.
fn start(dir: &std::path::Path, extra: &[&str]) -> (Serve, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .arg("serve")
        .args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .arg("--upload-dir")
        .arg(dir.join("uploads"))
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let serve = Serve(child);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
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
                let _ = tx.send(addr);
            }
            lines.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ringtail did not log its address");
    (serve, addr, log)
}

/// The file's lines once `want` of them are there (bounded).
fn lines_of(path: &std::path::Path, want: usize) -> Vec<String> {
    let limit = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= want {
            return lines;
        }
        assert!(Instant::now() < limit, "access log has {lines:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Splits a combined line: (peer, date, request line, status, bytes,
/// referer, user agent, seconds, rest).
fn fields(
    line: &str,
) -> (
    String,
    String,
    String,
    String,
    u64,
    String,
    String,
    f64,
    String,
) {
    let (peer, rest) = line.split_once(" - - [").expect(line);
    let (date, rest) = rest.split_once("] \"").expect(line);
    let (request, rest) = rest.split_once("\" ").expect(line);
    let (status, rest) = rest.split_once(' ').expect(line);
    let (bytes, rest) = rest.split_once(" \"").expect(line);
    let (referer, rest) = rest.split_once("\" \"").expect(line);
    let (agent, rest) = rest.rsplit_once("\" ").expect(line);
    let (secs, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    (
        peer.into(),
        date.into(),
        request.into(),
        status.into(),
        bytes.parse().expect(line),
        referer.into(),
        agent.into(),
        secs.parse().expect(line),
        tail.into(),
    )
}

#[test]
fn the_access_log_file_has_requests_upgrades_and_closes_in_combined_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let (_serve, addr, stderr) = start(dir.path(), &["--access-log-file", path.to_str().unwrap()]);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "/dev/null"])
        .args([
            "-e",
            "http://example.test/from",
            "-A",
            "tester \"quoted\"/1.0",
        ])
        .arg(format!("http://{addr}/hello"))
        .arg(format!("http://{addr}/missing"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines = lines_of(&path, 2);
    let hello = fields(&lines[0]);
    assert_eq!(hello.0, "127.0.0.1");
    assert_eq!(
        hello.1.len(),
        "04/Dec/2026:12:52:56 +0000".len(),
        "{}",
        hello.1
    );
    assert!(hello.1.ends_with(" +0000"), "{}", hello.1);
    assert_eq!(hello.2, "GET /hello HTTP/1.1");
    assert_eq!(hello.3, "200");
    assert!(
        hello.4 > "Hello, World!".len() as u64,
        "head and body: {}",
        hello.4
    );
    assert_eq!(hello.5, "http://example.test/from");
    assert_eq!(hello.6, "tester \\\"quoted\\\"/1.0");
    assert!(hello.7 >= 0.0 && hello.8.is_empty(), "{}", lines[0]);
    let missing = fields(&lines[1]);
    assert_eq!(
        (missing.2.as_str(), missing.3.as_str()),
        ("GET /missing HTTP/1.1", "404")
    );

    // A WebSocket: its upgrade, then (after messages) its close.
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws/echo"), stream).unwrap();
    let upgrade = fields(&lines_of(&path, 3)[2]);
    assert_eq!(
        (upgrade.2.as_str(), upgrade.3.as_str()),
        ("GET /ws/echo HTTP/1.1", "101")
    );
    assert!(upgrade.8.is_empty());
    let message = "x".repeat(1000);
    ws.send(tungstenite::Message::text(message.clone()))
        .unwrap();
    assert_eq!(ws.read().unwrap().into_text().unwrap().as_str(), message);
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }))
    .unwrap();
    while ws.read().is_ok() {}
    drop(ws); // the server's close ends once our side has closed too
    let lines = lines_of(&path, 4);
    let close = fields(&lines[3]);
    assert_eq!(
        (close.2.as_str(), close.3.as_str()),
        ("GET /ws/echo HTTP/1.1", "101")
    );
    assert!(close.4 > 1000, "the echo went out: {}", lines[3]);
    assert!(close.8.starts_with("ws_close=1000 in="), "{}", lines[3]);
    let received: u64 = close.8["ws_close=1000 in=".len()..].parse().unwrap();
    assert!(received > 1000, "the message came in: {}", lines[3]);
    // Not on stderr.
    assert!(
        !stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("GET /hello")),
        "{:?}",
        stderr.lock().unwrap()
    );
}

#[test]
fn an_access_log_file_that_cannot_be_opened_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("no-such-dir").join("access.log");
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["serve", "--addr", "127.0.0.1:0", "--upload-dir"])
        .arg(dir.path().join("uploads"))
        .arg("--access-log-file")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open --access-log-file") && err.contains("no-such-dir"),
        "{err}"
    );
}

/// Without `--access-log-file` the lines go to stderr through the writer
/// thread: a stderr pipe nobody reads (full after 64 KiB) stops that
/// thread, not the loop — the answers go on, and nothing is dropped while
/// the writer's channel has room.
#[test]
fn a_stderr_nobody_reads_does_not_stop_the_answers() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .arg("serve")
        .args(["--addr", "127.0.0.1:0", "--threads", "1"])
        .arg("--upload-dir")
        .arg(dir.path().join("uploads"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let _serve = Serve(child);
    // Read up to the address, then never again (the pipe stays open).
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no address line");
        if let Some(i) = line.find("addr=") {
            break line[i + 5..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let agent = "x".repeat(300);
    let request = format!("GET /hello HTTP/1.1\r\nHost: h\r\nUser-Agent: {agent}\r\n\r\n");
    // 2,000 lines of ~400 bytes: ~12 times what the pipe holds.
    let mut buf = [0u8; 4096];
    for i in 0..2000 {
        s.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"Hello, World!") {
            let n = s
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("answer {i} did not come: {e}"));
            assert!(n > 0, "closed at answer {i}");
            got.extend_from_slice(&buf[..n]);
        }
    }
    drop(stderr);
}
