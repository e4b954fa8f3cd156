//! `ringtail serve` end to end: the real binary on port 0, HTTP through curl,
//! and the RAW echo through a socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running binary, its upload directory (removed on drop), and the log
/// lines it has written so far.
struct Serve(
    Child,
    tempfile::TempDir,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and reads the bound addresses from its log.
fn start(threads: &str) -> (Serve, SocketAddr, SocketAddr) {
    start_with(threads, &[])
}

fn start_with(threads: &str, extra: &[&str]) -> (Serve, SocketAddr, SocketAddr) {
    match launch(threads, extra, "127.0.0.1:0", "127.0.0.1:0") {
        Launch::Serving(serve, http, raw) => (serve, http, raw),
        Launch::Exited(status, log) => panic!("ringtail exited ({status}): {log:?}"),
    }
}

/// What became of a launched `ringtail serve`.
enum Launch {
    /// It logged both addresses it serves.
    Serving(Serve, SocketAddr, SocketAddr),
    /// It exited first, with this status and these log lines.
    Exited(std::process::ExitStatus, Vec<String>),
}

/// Starts the binary on `http` and `raw` and waits until it logs the
/// addresses it serves, or exits.
fn launch(threads: &str, extra: &[&str], http: &str, raw: &str) -> Launch {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .arg("serve")
        .args(extra)
        .arg("--upload-dir")
        .arg(dir.path())
        .args(["--addr", http, "--raw-echo", raw])
        .args(["--threads", threads])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut serve = Serve(child, dir, log.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push(line.clone());
            if let Some(i) = line.find("addr=") {
                let addr: SocketAddr = line[i + 5..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let _ = tx.send(Some((line.contains("HTTP"), addr)));
            }
        }
        // End of its stderr: it exited.
        let _ = tx.send(None);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut http, mut raw) = (None, None);
    while http.is_none() || raw.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx
            .recv_timeout(left)
            .expect("ringtail did not log its addresses")
        {
            Some((true, addr)) => http = Some(addr),
            Some((false, addr)) => raw = Some(addr),
            None => {
                let status = wait_exit(&mut serve, Duration::from_secs(20));
                let log = serve.2.lock().unwrap().clone();
                return Launch::Exited(status, log);
            }
        }
    }
    Launch::Serving(serve, http.unwrap(), raw.unwrap())
}

#[test]
fn serve_answers_hello_404_and_raw_echo() {
    let (serve, http, raw) = start("1");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", " %{http_code}"])
        .arg(format!("http://{http}/hello"))
        .arg(format!("http://{http}/missing"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Hello, World! 200Not Found\n 404"
    );
    // One access-log line per answer (combined format: peer, date,
    // request line, status, …).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !serve
        .2
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("\"GET /missing HTTP/1.1\" 404"))
    {
        assert!(
            Instant::now() < deadline,
            "no access log line: {:?}",
            serve.2.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(serve
        .2
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("127.0.0.1 - - [") && l.contains("\"GET /hello HTTP/1.1\" 200 ")));

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

fn ws(addr: SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    tungstenite::client(format!("ws://{addr}{path}"), stream)
        .unwrap()
        .0
}

/// Reads JSON messages until one satisfies `want`.
fn read_until(ws: &mut tungstenite::WebSocket<TcpStream>, want: impl Fn(&str) -> bool) -> String {
    loop {
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
            if want(t.as_str()) {
                return t.as_str().to_string();
            }
        }
    }
}

#[test]
fn ws_echo_endpoint_echoes_text_and_binary() {
    let (_serve, http, _raw) = start("1");
    let mut c = ws(http, "/ws/echo");
    c.send(tungstenite::Message::text("hello ringtail"))
        .unwrap();
    assert_eq!(
        c.read().unwrap().into_text().unwrap().as_str(),
        "hello ringtail"
    );
    c.send(tungstenite::Message::binary(vec![0u8, 1, 2, 255]))
        .unwrap();
    assert_eq!(&c.read().unwrap().into_data()[..], &[0u8, 1, 2, 255]);
}

#[test]
fn chat_broadcast_reaches_clients_on_both_event_loops() {
    let (_serve, http, _raw) = start("2");
    // Connect until clients sit on both loops (each learns its loop from the
    // once-a-second clock message).
    let mut clients: Vec<(tungstenite::WebSocket<TcpStream>, u64)> = Vec::new();
    let mut loops_seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while loops_seen.len() < 2 || clients.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "clients never landed on both loops"
        );
        let mut c = ws(http, "/ws/chat");
        let tick = read_until(&mut c, |t| t.contains("\"tick\""));
        let v: serde_json::Value = serde_json::from_str(&tick).unwrap();
        let l = v["loop"].as_u64().unwrap();
        loops_seen.insert(l);
        clients.push((c, l));
    }
    let n = clients.len();
    // Each client says something; every client hears every line.
    for (i, (c, _)) in clients.iter_mut().enumerate() {
        c.send(tungstenite::Message::text(format!("line {i}")))
            .unwrap();
    }
    for (c, l) in clients.iter_mut() {
        let mut heard = std::collections::HashSet::new();
        while heard.len() < n {
            let t = read_until(c, |t| t.contains("\"chat\""));
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            heard.insert(v["text"].as_str().unwrap().to_string());
        }
        assert_eq!(heard.len(), n, "client on loop {l}");
    }
}

#[test]
fn upload_then_download_and_metrics_move() {
    let (serve, http, _raw) = start("1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.bin");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 256) as u8).collect();
    std::fs::write(&file, &payload).unwrap();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-F"])
        .arg(format!("file=@{}", file.display()))
        .arg(format!("http://{http}/upload"))
        .output()
        .unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains("payload.bin"), "{page}");
    assert!(page.contains("(300000 bytes)"), "{page}");
    // The stored copy is served back byte for byte.
    let link = page
        .split("href=\"/files/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let back = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .arg(format!("http://{http}/files/{link}"))
        .output()
        .unwrap();
    assert!(back.stdout == payload, "downloaded copy differs");
    assert_eq!(std::fs::read_dir(serve.1.path()).unwrap().count(), 1);
    // Metrics count what happened (this loop reports when asked).
    let metrics = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://{http}/metrics"))
        .output()
        .unwrap();
    let text = String::from_utf8(metrics.stdout).unwrap();
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert!(value("ringtail_http_requests_total ") >= 3);
    assert!(value("ringtail_http_responses_total{class=\"2xx\"}") >= 2);
    assert!(value("ringtail_bytes_received_total ") >= 300_000);
    assert!(value("ringtail_bytes_sent_total ") >= 300_000);
    assert!(value("ringtail_ring_completions_total ") > 0);
}

/// The build directory: `$CARGO_TARGET_DIR` (a relative one from the
/// workspace root), else `target/` of the workspace.
fn target_dir() -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |t| root.join(t))
}

/// The Python with Playwright that scripts/install-test-deps set up
/// (`target/test-venv`), or `$RINGTAIL_TEST_PYTHON`.
fn test_python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("RINGTAIL_TEST_PYTHON") {
        return p.into();
    }
    let p = target_dir().join("test-venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run scripts/install-test-deps (the README's test command does)",
        p.display()
    );
    p
}

#[test]
fn browser_chat_between_two_tabs_upload_and_screenshot() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: run scripts/install-test-deps"
    );
    let (_serve, http, _raw) = start("2");
    let work = tempfile::tempdir().unwrap();
    let upload = work.path().join("hello-from-the-browser.txt");
    std::fs::write(
        &upload,
        "uploaded through the form by headless Chromium\n".repeat(1000),
    )
    .unwrap();
    // The screenshot is kept as an artefact of the test run.
    let artefacts = target_dir().join("artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("chat.png");
    let _ = std::fs::remove_file(&shot);
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/demo.py");
    let out = Command::new(test_python())
        .arg(script)
        .arg(format!("http://{http}"))
        .arg(&shot)
        .arg(&upload)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK chat between two tabs"), "{stdout}");
    assert!(stdout.contains("OK upload through the form"), "{stdout}");
    assert!(stdout.contains("OK listing shows"), "{stdout}");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
        "a real screenshot"
    );
}

fn wait_exit(serve: &mut Serve, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = serve.0.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "ringtail did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_finishes_a_download_closes_websockets_with_1001_and_exits_0() {
    let root = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 241) as u8).collect();
    std::fs::write(root.path().join("big.bin"), &big).unwrap();
    let root_arg = root.path().to_str().unwrap().to_string();
    let (mut serve, http, _raw) = start_with("1", &["--root", &root_arg, "--grace", "20"]);
    let mut socket = ws(http, "/ws/echo");
    // A slow download (about 2 s at 10 MB/s) in progress at SIGTERM.
    let out_file = root.path().join("downloaded.bin");
    let mut curl = Command::new("curl")
        .args(["-s", "--max-time", "30", "--limit-rate", "10M", "-o"])
        .arg(&out_file)
        .arg(format!("http://{http}/big.bin"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    // SAFETY: sending SIGTERM to our own child process.
    assert_eq!(unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) }, 0);
    // The WebSocket sees a Close with 1001 (going away).
    let code = loop {
        match socket.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => break u16::from(frame.code),
            Ok(tungstenite::Message::Close(None)) => panic!("close without a code"),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(code, 1001);
    // The download in flight completes in full.
    assert!(curl.wait().unwrap().success());
    assert!(
        std::fs::read(&out_file).unwrap() == big,
        "download cut short"
    );
    // And the server exits 0 once everything is closed.
    let status = wait_exit(&mut serve, Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_second_serve_on_an_address_in_use_is_refused_unless_it_shares_the_port() {
    let (_first, http, raw) = start("2");
    let (http_s, raw_s) = (http.to_string(), raw.to_string());
    // Its HTTP address: refused, naming the address, exit status non-zero.
    let refused = |extra: &[&str], http: &str, raw: &str, named: &SocketAddr| match launch(
        "2", extra, http, raw,
    ) {
        Launch::Serving(_, h, r) => {
            panic!("a second ringtail started on {h} and {r}, sharing the traffic")
        }
        Launch::Exited(status, log) => {
            assert!(!status.success(), "exit status {status}: {log:?}");
            let want = format!("{named}: address already in use");
            assert!(
                log.iter()
                    .any(|l| l.contains(&want) && l.contains("--reuse-port")),
                "{log:?}"
            );
        }
    };
    refused(&[], &http_s, "127.0.0.1:0", &http);
    // Its RAW echo address too.
    refused(&[], "127.0.0.1:0", &raw_s, &raw);
    refused(&["--reuse-port", "false"], &http_s, "127.0.0.1:0", &http);
    // Asked to share: it starts on the same addresses and serves.
    let Launch::Serving(_second, h, r) = launch("1", &["--reuse-port"], &http_s, &raw_s) else {
        panic!("--reuse-port did not share the port")
    };
    assert_eq!((h, r), (http, raw));
    for _ in 0..20 {
        let mut s = TcpStream::connect(http).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert!(got.ends_with("Hello, World!"), "{got}");
    }
}

#[test]
fn an_address_it_cannot_listen_on_is_named() {
    // 192.0.2.1 (TEST-NET-1) is no address of this machine (unless it
    // allows binding to foreign addresses, `ip_nonlocal_bind`).
    match launch("1", &[], "192.0.2.1:8080", "127.0.0.1:0") {
        Launch::Serving(..) => eprintln!("this machine binds non-local addresses: skipped"),
        Launch::Exited(status, log) => {
            assert!(!status.success(), "exit status {status}: {log:?}");
            assert!(
                log.iter()
                    .any(|l| l.starts_with("ringtail: cannot listen on 192.0.2.1:8080: ")),
                "{log:?}"
            );
        }
    }
}

/// `curl` each path: "STATUS BODY" per path.
fn curl_each(http: SocketAddr, paths: &[&str]) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "--path-as-is",
                    "--max-time",
                    "10",
                    "-w",
                    " %{http_code}",
                ])
                .arg(format!("http://{http}{p}"))
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let (body, status) = text.rsplit_once(' ').unwrap();
            format!("{status} {body}")
        })
        .collect()
}

#[test]
fn root_refuses_dotfiles_unless_asked_and_serves_well_known() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::write(r.join("index.txt"), "index").unwrap();
    std::fs::write(r.join(".env"), "SECRET=1").unwrap();
    std::fs::create_dir_all(r.join(".git")).unwrap();
    std::fs::write(r.join(".git/config"), "[core]").unwrap();
    std::fs::create_dir_all(r.join(".well-known/acme-challenge")).unwrap();
    std::fs::write(r.join(".well-known/acme-challenge/tok"), "tok.key").unwrap();
    let root_arg = r.to_str().unwrap();
    let paths = [
        "/index.txt",
        "/.env",
        "/%2eenv",
        "/.git/config",
        "/.well-known/acme-challenge/tok",
    ];
    let (_serve, http, _raw) = start_with("1", &["--root", root_arg]);
    assert_eq!(
        curl_each(http, &paths),
        [
            "200 index",
            "404 Not Found\n",
            "404 Not Found\n",
            "404 Not Found\n",
            "200 tok.key"
        ]
    );
    let (_serve, http, _raw) = start_with("1", &["--root", root_arg, "--dotfiles"]);
    assert_eq!(
        curl_each(http, &paths),
        [
            "200 index",
            "200 SECRET=1",
            "200 SECRET=1",
            "200 [core]",
            "200 tok.key"
        ]
    );
}

/// Sends `request` on a new connection and reads until the server closes.
fn exchange(http: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{e} after {:?}", String::from_utf8_lossy(&got)));
    String::from_utf8(got).unwrap()
}

#[test]
fn requests_with_a_body_are_answered_after_it_and_a_malformed_one_gets_a_400() {
    let (_serve, http, _raw) = start("1");
    // A malformed chunk size: the client is told, not just disconnected.
    let got = exchange(
        http,
        b"POST /hello HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert!(got.starts_with("HTTP/1.1 400 "), "{got:?}");
    assert!(!got.contains("Hello, World!"), "{got:?}");
    // The same on the other endpoints that do not read bodies.
    for path in ["/metrics", "/chat", "/files/", "/missing", "/ws/echo"] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nxyz"
        );
        let got = exchange(http, req.as_bytes());
        assert!(got.starts_with("HTTP/1.1 400 "), "{path}: {got:?}");
    }
    // A good body: answered once it is in, and the connection carries on.
    let got = exchange(
        http,
        b"POST /hello HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
          GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(got.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{got:?}");
    assert_eq!(got.matches("Hello, World!").count(), 2, "{got:?}");
    // A WebSocket handshake with a body is refused rather than left hanging.
    let got = exchange(
        http,
        b"GET /ws/echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Content-Length: 3\r\n\r\nabc",
    );
    assert!(got.starts_with("HTTP/1.1 400 "), "{got:?}");
    // Expect: 100-continue: the body is not needed, so it is not asked for;
    // the answer comes at once and the connection closes after it.
    let got = exchange(
        http,
        b"POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    );
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got:?}");
    assert!(got.ends_with("Hello, World!"), "{got:?}");
}

#[test]
fn a_burst_across_event_loops_arrives_in_order_and_what_a_full_inbox_drops_is_counted() {
    // An inbox of one message: a burst from one loop overflows the other's
    // unless it keeps up.
    let (_serve, http, _raw) = start_with("2", &["--hub-inbox-limit", "1"]);
    let mut by_loop = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while by_loop.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "clients never landed on both loops"
        );
        let mut c = ws(http, "/ws/chat");
        let tick = read_until(&mut c, |t| t.contains("\"tick\""));
        let v: serde_json::Value = serde_json::from_str(&tick).unwrap();
        by_loop.entry(v["loop"].as_u64().unwrap()).or_insert(c);
    }
    let mut a = by_loop.remove(&0).unwrap();
    let mut b = by_loop.remove(&1).unwrap();
    // B collects the chat lines it hears until the first "end".
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            let t = read_until(&mut b, |t| t.contains("\"chat\""));
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            let text = v["text"].as_str().unwrap().to_string();
            if text == "end" {
                return got;
            }
            got.push(text);
        }
    });
    const N: usize = 2000;
    for k in 0..N {
        a.write(tungstenite::Message::text(format!("m{k}")))
            .unwrap();
    }
    a.flush().unwrap();
    // "end" until B hears one (an "end" can be dropped like anything else).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() {
        assert!(Instant::now() < deadline, "B never heard the end");
        a.send(tungstenite::Message::text("end")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = reader.join().unwrap();
    // What arrived is in the order it was published, none twice.
    let seq: Vec<usize> = got
        .iter()
        .map(|t| t.strip_prefix('m').unwrap().parse().unwrap())
        .collect();
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "out of order: {seq:?}");
    assert!(seq.iter().all(|&k| k < N));
    // And every message that did not arrive was counted as dropped.
    let metrics = exchange(
        http,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let drops: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringtail_hub_drops_total "))
        .unwrap_or_else(|| panic!("no hub drops in:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(
        drops >= N - seq.len(),
        "{} of {N} arrived but only {drops} drops counted",
        seq.len()
    );
}

/// curl `args`; (status, content type, body).
fn curl_full(args: &[&str]) -> (String, String, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code} %{content_type}",
        ])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (status, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
    (status.to_string(), ctype.to_string(), body.to_string())
}

#[test]
fn demo_errors_are_consistent_and_uploads_keep_their_name_and_type() {
    let (_serve, http, _raw) = start("1");
    // One 404 body, from a route or from a file root.
    let route = curl_full(&[&format!("http://{http}/no-such-page")]);
    let file = curl_full(&[&format!("http://{http}/files/no-such-file")]);
    assert_eq!(route.0, "404");
    assert_eq!(
        (&route.0, &route.2),
        (&file.0, &file.2),
        "{route:?} {file:?}"
    );
    // A 415 that says what it wanted.
    let wrong = curl_full(&[
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        "not a form",
        &format!("http://{http}/upload"),
    ]);
    assert_eq!(wrong.0, "415");
    assert!(wrong.2.contains("multipart/form-data"), "{wrong:?}");

    // An upload keeps its name: listed as sent, served with the type its
    // name gives.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("local.bin");
    std::fs::write(&src, br#"{"ok": true}"#).unwrap();
    let form = format!("file=@{};filename=report 2026.json", src.display());
    let done = curl_full(&["-F", &form, &format!("http://{http}/upload")]);
    assert_eq!(done.0, "200", "{done:?}");
    let listing = curl_full(&[&format!("http://{http}/files/")]).2;
    let row = listing
        .split("<tr>")
        .find(|r| r.contains(">report 2026.json</a>"))
        .unwrap_or_else(|| panic!("not listed under its name: {listing}"));
    assert!(row.contains("<td>12 B</td>"), "{row}");
    let href = row
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(href.ends_with("report%202026.json"), "{href}");
    let back = curl_full(&[&format!("http://{http}{href}")]);
    assert_eq!(back.0, "200");
    assert!(back.1.starts_with("application/json"), "{back:?}");
    assert_eq!(back.2, r#"{"ok": true}"#);
}
