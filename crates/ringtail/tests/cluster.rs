//! Three `ringtail serve --cluster` processes sharing topics through a real
//! `redis-server` (on a free port, started and stopped by the test): 300
//! WebSocket clients spread over them, every message to every subscriber
//! exactly once and in order per sender; Redis killed and restarted in the
//! middle (clients stay connected, local traffic goes on, what could not
//! cross is dropped and counted, subscriptions come back); a 1 MiB
//! message; 1,000 topics subscribed and dropped three times with no Redis
//! subscription left behind (`PUBSUB NUMSUB`). The clients are Python's
//! `websockets` (tests/python/cluster_clients.py).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed and waited for on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn test_python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("RINGTAIL_TEST_PYTHON") {
        return p.into();
    }
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/test-venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run scripts/install-test-deps (the README's test command does)",
        p.display()
    );
    p
}

fn redis_server() -> &'static str {
    let p = "/usr/bin/redis-server";
    assert!(
        std::path::Path::new(p).exists(),
        "{p} missing: run scripts/install-test-deps (the README's test command does)"
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `redis-server` on `port`, answering PING.
fn start_redis(port: u16) -> Killed {
    let child = Command::new(redis_server())
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let r = Killed(child);
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut b = [0u8; 7];
            if s.write_all(b"PING\r\n").is_ok()
                && s.read_exact(&mut b).is_ok()
                && &b == b"+PONG\r\n"
            {
                return r;
            }
        }
        assert!(
            Instant::now() < limit,
            "redis-server did not answer on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ringtail serve --cluster` on a free port; its address.
fn start_ringtail(redis_port: u16, dir: &std::path::Path) -> (Killed, SocketAddr) {
    start_ringtail_with(redis_port, dir, &[])
}

fn start_ringtail_with(
    redis_port: u16,
    dir: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (Killed, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .arg("serve")
        .args(extra)
        .args([
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--access-log",
            "false",
        ])
        .arg("--upload-dir")
        .arg(dir)
        .arg("--cluster")
        .arg(format!("redis://127.0.0.1:{redis_port}"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.find("serving HTTP and WebSocket: http://") {
                let rest = &line[i + "serving HTTP and WebSocket: http://".len()..];
                let addr = rest
                    .split('/')
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ringtail did not log its address");
    (Killed(child), addr)
}

/// `ringtail_cluster_*` counters of the process at `addr`.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{addr}/metrics"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics of {addr}:\n{text}"))
}

fn wait_all(addrs: &[SocketAddr], name: &str, want: u64) {
    let limit = Instant::now() + Duration::from_secs(30);
    while !addrs.iter().all(|&a| metric(a, name) == want) {
        assert!(
            Instant::now() < limit,
            "{name} did not become {want} everywhere"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_processes_share_topics_through_redis_through_a_redis_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut redis = Some(start_redis(port));
    let procs: Vec<(Killed, SocketAddr)> = (0..3)
        .map(|i| {
            let d = dir.path().join(format!("up{i}"));
            start_ringtail(port, &d)
        })
        .collect();
    let addrs: Vec<SocketAddr> = procs.iter().map(|(_, a)| *a).collect();
    wait_all(&addrs, "ringtail_cluster_up", 1);

    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/cluster_clients.py");
    let mut py = Killed(
        Command::new(test_python())
            .arg(script)
            .arg(port.to_string())
            .args(addrs.iter().map(|a| a.to_string()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut to_py = py.0.stdin.take().unwrap();
    let from_py = BufReader::new(py.0.stdout.take().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in from_py.lines() {
            let Ok(l) = l else { break };
            let _ = lines_tx.send(l);
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the clients stopped talking (see their stderr)")
    };
    let dropped_before: u64 = addrs
        .iter()
        .map(|&a| metric(a, "ringtail_cluster_dropped_total"))
        .sum();

    assert_eq!(next(), "KILL");
    drop(redis.take());
    wait_all(&addrs, "ringtail_cluster_up", 0);
    writeln!(to_py, "killed").unwrap();

    assert_eq!(next(), "RESTART");
    // What the publishers sent while Redis was down could not cross: it
    // was dropped and counted, not queued.
    let dropped: u64 = addrs
        .iter()
        .map(|&a| metric(a, "ringtail_cluster_dropped_total"))
        .sum();
    assert!(
        dropped >= dropped_before + 30,
        "dropped {dropped_before} → {dropped}"
    );
    redis = Some(start_redis(port));
    wait_all(&addrs, "ringtail_cluster_up", 1);
    writeln!(to_py, "restarted").unwrap();

    let last = next();
    assert!(last.starts_with("OK "), "{last}");
    assert!(py.0.wait().unwrap().success());
    for &a in &addrs {
        assert!(metric(a, "ringtail_cluster_reconnects_total") >= 1);
        assert!(metric(a, "ringtail_cluster_received_total") > 0);
        assert_eq!(metric(a, "ringtail_cluster_subscriptions"), 0);
    }
    drop(procs);
    drop(redis);
}

#[test]
fn redis_down_at_start_is_served_without_and_joined_later() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Nobody listens on `port` yet.
    let (p, addr) = start_ringtail(port, dir.path());
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{addr}/hello"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!");
    assert_eq!(metric(addr, "ringtail_cluster_up"), 0);
    let _redis = start_redis(port);
    wait_all(&[addr], "ringtail_cluster_up", 1);
    drop(p);
}

#[test]
fn a_cluster_url_that_is_not_one_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--cluster",
            "http://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected redis://HOST:PORT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_redis_that_accepts_and_never_answers_stalls_no_loop() {
    // A "Redis" that accepts connections and never reads or answers.
    let stalled = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = stalled.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for s in stalled.incoming().flatten() {
                held.lock().unwrap().push(s);
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let (p, addr) = start_ringtail(port, dir.path());
    // Connected (TCP), so publishing is attempted: the publisher's queue
    // fills behind the silent peer and the rest is dropped and counted.
    let limit = Instant::now() + Duration::from_secs(10);
    while held.lock().unwrap().len() < 2 {
        assert!(Instant::now() < limit, "the bridge did not connect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws/topics"), stream).unwrap();
    ws.send(tungstenite::Message::text("sub t")).unwrap();
    const N: usize = 9_000;
    let body = "x".repeat(100);
    for i in 0..N {
        ws.send(tungstenite::Message::text(format!("pub t {i}:{body}")))
            .unwrap();
    }
    // Every message still reaches the local subscriber, in order, while the
    // bridge is stuck.
    for i in 0..N {
        let m = ws.read().unwrap();
        let text = m.into_text().unwrap();
        assert!(
            text.starts_with(&format!("{i}:")),
            "{i}: {}",
            &text[..20.min(text.len())]
        );
    }
    let t = Instant::now();
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{addr}/hello"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!");
    eprintln!(
        "/hello answered in {:?} with the bridge stalled",
        t.elapsed()
    );
    assert!(metric(addr, "ringtail_cluster_dropped_total") > 0);
    drop(p);
}

/// Reads chat messages from `ws` until `pred` holds for one (10 s).
fn read_until(
    ws: &mut tungstenite::WebSocket<TcpStream>,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < limit, "no such chat message");
        let m = ws.read().unwrap();
        if let Ok(text) = m.into_text() {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

#[test]
fn the_demo_chat_and_its_online_count_span_processes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = start_redis(port);
    let (p1, a1) = start_ringtail(port, &dir.path().join("1"));
    let (p2, a2) = start_ringtail(port, &dir.path().join("2"));
    wait_all(&[a1, a2], "ringtail_cluster_up", 1);
    let chat = |addr: SocketAddr| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tungstenite::client(format!("ws://{addr}/ws/chat"), s)
            .unwrap()
            .0
    };
    let mut x = chat(a1);
    let mut y = chat(a2);
    // Each side learns that two are online, across the processes.
    read_until(&mut x, |v| v["type"] == "count" && v["n"] == 2);
    read_until(&mut y, |v| v["type"] == "count" && v["n"] == 2);
    x.send(tungstenite::Message::text("hello from one"))
        .unwrap();
    let v = read_until(&mut y, |v| v["type"] == "chat");
    assert_eq!(v["text"], "hello from one");
    y.send(tungstenite::Message::text("and from two")).unwrap();
    let v = read_until(&mut x, |v| {
        v["type"] == "chat" && v["text"] != "hello from one"
    });
    assert_eq!(v["text"], "and from two");
    // One leaves: the other process's count follows.
    drop(y);
    read_until(&mut x, |v| v["type"] == "count" && v["n"] == 1);
    drop((p1, p2));
}

#[test]
fn ws_broadcast_reaches_every_member_in_both_processes_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = start_redis(port);
    let (p1, a1) = start_ringtail(port, &dir.path().join("1"));
    let (p2, a2) = start_ringtail(port, &dir.path().join("2"));
    wait_all(&[a1, a2], "ringtail_cluster_up", 1);
    let member = |addr: SocketAddr| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tungstenite::client(format!("ws://{addr}/ws/broadcast"), s)
            .unwrap()
            .0
    };
    let mut members = [member(a1), member(a1), member(a2), member(a2)];
    // Both processes subscribed in Redis before anything is sent.
    let limit = Instant::now() + Duration::from_secs(10);
    while ![a1, a2]
        .iter()
        .all(|&a| metric(a, "ringtail_cluster_subscriptions") == 1)
    {
        assert!(Instant::now() < limit);
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..50 {
        let from = i % members.len();
        members[from]
            .send(tungstenite::Message::text(format!("m{i}")))
            .unwrap();
    }
    for (k, m) in members.iter_mut().enumerate() {
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.push(m.read().unwrap().into_text().unwrap().to_string());
        }
        // Every message once; each sender's own in the order it sent them.
        let mut sorted = seen.clone();
        sorted.sort_by_key(|s| s[1..].parse::<u32>().unwrap());
        assert_eq!(
            sorted,
            (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "member {k}"
        );
        for from in 0..4 {
            let mine: Vec<u32> = seen
                .iter()
                .map(|s| s[1..].parse::<u32>().unwrap())
                .filter(|i| *i as usize % 4 == from)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "member {k} from {from}: {mine:?}"
            );
        }
    }
    drop((p1, p2));
}

#[test]
fn an_upgraded_process_keeps_its_cluster_identity_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = start_redis(port);
    let ctl = dir.path().join("ctl.sock");
    let pid_file = dir.path().join("pid");
    let (_a_first, a) = start_ringtail_with(
        port,
        &dir.path().join("a"),
        &[
            "--control".as_ref(),
            ctl.as_os_str(),
            "--pid-file".as_ref(),
            pid_file.as_os_str(),
        ],
    );
    // Whichever process serves `a` at the end (the upgraded one is not our
    // child) is killed when the test ends, however it ends.
    let _last_a = KillByPidFile(pid_file.clone());
    let (p_b, b) = start_ringtail(port, &dir.path().join("b"));
    wait_all(&[a, b], "ringtail_cluster_up", 1);
    let topics = |addr: SocketAddr| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut ws = tungstenite::client(format!("ws://{addr}/ws/topics"), s)
            .unwrap()
            .0;
        ws.send(tungstenite::Message::text("sub t")).unwrap();
        ws
    };
    let mut x = topics(a);
    let mut y = topics(b);
    let chat = |addr: SocketAddr| {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tungstenite::client(format!("ws://{addr}/ws/chat"), s)
            .unwrap()
            .0
    };
    let mut chat_a = chat(a);
    let mut chat_b = chat(b);
    read_until(&mut chat_a, |v| v["type"] == "count" && v["n"] == 2);
    read_until(&mut chat_b, |v| v["type"] == "count" && v["n"] == 2);
    let limit = Instant::now() + Duration::from_secs(10);
    while ![a, b]
        .iter()
        .all(|&s| metric(s, "ringtail_cluster_subscriptions") == 2)
    {
        assert!(Instant::now() < limit);
        std::thread::sleep(Duration::from_millis(20));
    }
    const N: u32 = 300;
    let upgrade = {
        let ctl = ctl.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            Command::new(env!("CARGO_BIN_EXE_ringtail"))
                .arg("ctl")
                .arg("--control")
                .arg(&ctl)
                .arg("upgrade")
                .output()
                .unwrap()
        })
    };
    for i in 0..N {
        x.send(tungstenite::Message::text(format!("pub t {i}")))
            .unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = upgrade.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    x.send(tungstenite::Message::text("pub t end")).unwrap();
    let read_all = |ws: &mut tungstenite::WebSocket<TcpStream>| {
        let mut got = Vec::new();
        loop {
            let t = ws.read().unwrap().into_text().unwrap().to_string();
            if t == "end" {
                return got;
            }
            got.push(t.parse::<u32>().unwrap());
        }
    };
    // The publisher's own process (the old one, then the new one) delivers
    // each message once, in order: nothing that comes back from Redis is
    // delivered again.
    assert_eq!(read_all(&mut x), (0..N).collect::<Vec<_>>());
    // The other process gets them in order, none twice (a few may be lost
    // while the publisher's process changes; see docs/cluster.md).
    let got = read_all(&mut y);
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    assert!(
        got.len() as u32 > N / 2,
        "only {} of {N} crossed",
        got.len()
    );
    // The chat count is still over two processes, not three: the new
    // process goes on with the old one's instance id (a third member
    // joining on the other process makes 3, not 4).
    let mut chat_c = chat(b);
    let v = read_until(&mut chat_c, |v| v["type"] == "count");
    assert_eq!(v["n"], 3, "{v}");
    drop((chat_a, chat_b));
    drop(p_b);
}

/// Kills the process named in a pid file when dropped (a process started
/// by an upgrade is not the test's child), also when the test fails.
struct KillByPidFile(std::path::PathBuf);

impl Drop for KillByPidFile {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}
