//! `ringtail ctl upgrade` end to end (issue 13): a running `ringtail serve`
//! replaces itself by a new binary without dropping a connection, and rolls
//! back when the new binary cannot take over.
//!
//! The binaries are copies of the one cargo built, each stamped with its
//! own build id (the 32-byte field after `RINGTAIL-BUILD-ID:`), so the
//! tests can tell which one serves. The peers are real: sockets on
//! loopback, Python's `websockets` for WebSocket (with and without
//! permessage-deflate, fragmented messages), `ringtail ctl` itself. Every
//! server, and every process an upgrade starts, is killed when its test
//! ends; every wait is bounded.

mod upgrade_harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use upgrade_harness::*;

const MIB: usize = 1024 * 1024;

/// A WebSocket client (tungstenite) with 20 s timeouts.
fn ws(addr: SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = connect(addr);
    tungstenite::client(format!("ws://{addr}{path}"), stream)
        .unwrap_or_else(|e| panic!("WebSocket handshake on {path}: {e}"))
        .0
}

/// Reads text messages until one satisfies `want` (at most 100 messages).
fn read_until(ws: &mut tungstenite::WebSocket<TcpStream>, want: impl Fn(&str) -> bool) -> String {
    for _ in 0..100 {
        if let tungstenite::Message::Text(t) = ws.read().unwrap() {
            if want(t.as_str()) {
                return t.as_str().to_string();
            }
        }
    }
    panic!("no such message among 100");
}

/// A few clients that must work before and after anything the test does:
/// a WebSocket echo, a keep-alive HTTP connection and a RAW echo.
struct Probes {
    ws: tungstenite::WebSocket<TcpStream>,
    http: (std::io::BufReader<TcpStream>, TcpStream),
    raw: TcpStream,
    round: u64,
}

impl Probes {
    fn open(server: &Server) -> Probes {
        let h = connect(server.http);
        let mut p = Probes {
            ws: ws(server.http, "/ws/echo"),
            http: (std::io::BufReader::new(h.try_clone().unwrap()), h),
            raw: connect(server.raw),
            round: 0,
        };
        p.check("before anything");
        p
    }

    /// One message, request and echo on each connection.
    fn check(&mut self, when: &str) {
        self.round += 1;
        let text = format!("probe {} {when}", self.round);
        self.ws
            .send(tungstenite::Message::text(text.clone()))
            .unwrap();
        match self.ws.read() {
            Ok(tungstenite::Message::Text(t)) => assert_eq!(t.as_str(), text, "{when}"),
            other => panic!("WebSocket probe {when}: {other:?}"),
        }
        self.http
            .1
            .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_response(&mut self.http.0, false)
            .unwrap_or_else(|e| panic!("keep-alive probe {when}: {e}"));
        assert_eq!(
            (r.status, &r.body[..]),
            (200, &b"Hello, World!"[..]),
            "{when}"
        );
        self.raw.write_all(text.as_bytes()).unwrap();
        let mut back = vec![0; text.len()];
        self.raw
            .read_exact(&mut back)
            .unwrap_or_else(|e| panic!("RAW probe {when}: {e}"));
        assert_eq!(back, text.as_bytes(), "{when}");
    }
}

/// v1 → v2 → v1 while every kind of connection the server has is busy:
/// nothing is lost, repeated or reordered, no connection closes, the
/// transfers in progress finish intact, and no descriptor is left behind.
///
/// Descriptor baseline: the server's descriptors by kind (sockets, rings,
/// eventfds, pipes, files by path) with the long-lived clients connected
/// and idle between requests, before the download and the upload begin.
/// The last process must have exactly that once the transfers and the
/// helper connections (metrics, chat, ctl) have closed, since the same
/// clients are connected; and once every client has closed, exactly what
/// the first process had before any client connected. (Counts are by
/// kind, not by number: the new process numbers its descriptors as it
/// receives them. A process that has served a small cached file or a
/// listing has file-helper descriptors too; nothing here asks for one.)
#[test]
fn upgrade_v1_v2_v1_under_load_loses_nothing() {
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let v1 = dir.join("ringtail-v1");
    let v2 = dir.join("ringtail-v2");
    stamp(&bin(), &v1, "v1-test");
    stamp(&bin(), &v2, "v2-test");
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    let big = Arc::new(random_bytes(64 * MIB, 0x9e37_79b9_7f4a_7c15));
    std::fs::write(root.join("big.bin"), &big[..]).unwrap();
    let upload_data = Arc::new(random_bytes(24 * MIB, 0x2545_f491_4f6c_dd1d));

    let server = Server::start(
        dir,
        Opts::new(&v1, 2)
            .arg("--root")
            .arg(&root)
            // Requests are many; their log lines are not needed.
            .arg("--access-log")
            .arg("false")
            // Requests are held half-sent across upgrades.
            .arg("--header-timeout")
            .arg("60"),
    );
    let pid1 = server.pid();
    let status = server.status();
    assert_eq!(status["pid"], pid1, "{status}");
    assert_eq!(status["build"], "v1-test", "{status}");
    assert_eq!(status["loops"], 2, "{status}");
    let fresh = stable_fds(pid1);

    // The long-lived clients.
    let mut py = PyClients::start(server.http, 2, 2, 4);
    let mut keepalive = keepalive_client(server.http);
    let mut pipelined = pipelined_client(server.http);
    let mut raw = raw_client(server.raw);
    let mut held_head = Held::open(server.http, false);
    let mut held_body = Held::open(server.http, true);
    let mut held_ws = HeldWs::open(server.http);
    wait_progress(
        &mut [&mut keepalive, &mut pipelined, &mut raw],
        &mut py,
        "before the upgrades",
    );
    let baseline = stable_fds(pid1);

    // The slow transfers: never further than the test allows, so both are
    // in progress at each upgrade.
    let down_budget = Arc::new(Budget::default());
    let up_budget = Arc::new(Budget::default());
    down_budget.allowed.store(8 * MIB as u64, Ordering::Relaxed);
    up_budget.allowed.store(4 * MIB as u64, Ordering::Relaxed);
    let mut download = download_client(server.http, "/big.bin", big.clone(), down_budget.clone());
    let mut upload = upload_client(
        server.http,
        "upgrade.bin",
        upload_data.clone(),
        up_budget.clone(),
    );
    down_budget.wait_reached("download before the first upgrade", &mut download);
    up_budget.wait_reached("upload before the first upgrade", &mut upload);
    // 8 Python WebSockets, 3 load clients, 2 held requests, a held
    // WebSocket message, 2 transfers.
    let open = 16;

    // v1 → v2.
    let r1 = server.upgrade(&v2, &[], "v2-test", open);
    let pid2 = r1["new_pid"].as_u64().unwrap() as u32;
    wait_progress(
        &mut [&mut keepalive, &mut pipelined, &mut raw],
        &mut py,
        "after the upgrade to v2",
    );
    held_head.complete(true);
    held_body.complete(true);
    held_ws.next();
    down_budget
        .allowed
        .store(16 * MIB as u64, Ordering::Relaxed);
    up_budget.allowed.store(8 * MIB as u64, Ordering::Relaxed);
    down_budget.wait_reached("download after the first upgrade", &mut download);
    up_budget.wait_reached("upload after the first upgrade", &mut upload);

    // v2 → v1.
    let r2 = server.upgrade(&v1, &[], "v1-test", open);
    assert_eq!(r2["old_pid"], pid2);
    let pid3 = r2["new_pid"].as_u64().unwrap() as u32;
    assert_ne!(pid3, pid1);
    wait_progress(
        &mut [&mut keepalive, &mut pipelined, &mut raw],
        &mut py,
        "after the upgrade back to v1",
    );
    held_head.complete(false);
    held_body.complete(false);
    held_ws.next();

    // Both transfers were in progress until now; let them finish.
    assert!(download.progress() < big.len() as u64);
    assert!(upload.progress() < upload_data.len() as u64);
    down_budget.allowed.store(u64::MAX, Ordering::Relaxed);
    up_budget.allowed.store(u64::MAX, Ordering::Relaxed);
    let downloaded = download.finish();
    eprintln!("download: {downloaded}");
    let stored = upload.finish();
    let (code, body) = get(server.http, &format!("/files/{stored}"));
    assert_eq!(code, 200, "/files/{stored}");
    assert!(
        body == upload_data[..],
        "the uploaded file differs from what was sent ({} bytes)",
        body.len()
    );
    {
        use sha2::Digest;
        let on_disk = std::fs::read(server.uploads.join(&stored)).unwrap();
        assert_eq!(
            sha2::Sha256::digest(&on_disk),
            sha2::Sha256::digest(&upload_data[..]),
            "uploaded file on disk"
        );
    }

    // The chat member count came over: the 4 Python members and this one.
    let mut member = ws(server.http, "/ws/chat");
    let count = read_until(&mut member, |t| t.contains("\"count\""));
    let v: serde_json::Value = serde_json::from_str(&count).unwrap();
    assert_eq!(v["n"], 5, "{count}");
    drop(member);

    // Same clients connected: the same descriptors as before the upgrades.
    wait_fds(
        pid3,
        &baseline,
        "after two upgrades, same clients connected",
    );

    for l in [keepalive, pipelined, raw] {
        let name = l.name;
        eprintln!("{name}: {}", l.finish());
    }
    let verdict = py.stop();
    eprintln!("Python clients: {verdict}");
    for (i, c) in verdict["clients"].as_array().unwrap().iter().enumerate() {
        let kind = &verdict["kinds"][i];
        if kind == "chat" {
            // Every member saw every sender's every message (checked in
            // order by the script); here: all saw the same.
            assert_eq!(
                c["per_sender"], verdict["clients"][4]["per_sender"],
                "{verdict}"
            );
            assert!(c["received"].as_u64().unwrap() > 0, "{verdict}");
        } else {
            assert_eq!(c["sent"], c["echoed"], "{verdict}");
            assert!(c["sent"].as_u64().unwrap() > 0, "{verdict}");
        }
    }
    drop((held_head, held_body, held_ws));
    // Every client gone: what the first process had before any came.
    wait_fds(pid3, &fresh, "after every client closed");
    assert!(!gone(pid3));
}

/// The new binary exits at once, never answers, or would run fewer loops:
/// each time `ctl upgrade` fails with the reason, the new process is gone,
/// and the old one serves on with its clients; then a real upgrade (and
/// one to more loops) still works.
#[test]
fn failed_upgrades_roll_back_and_a_real_one_still_works() {
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let v2 = dir.join("ringtail-v2");
    stamp(&bin(), &v2, "v2-test");
    let v3 = dir.join("ringtail-v3");
    stamp(&bin(), &v3, "v3-test");
    let hang = dir.join("hang.sh");
    let hang_pid_file = dir.join("hang.pid");
    std::fs::write(
        &hang,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 1000\n",
            hang_pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hang, std::fs::Permissions::from_mode(0o755)).unwrap();

    let server = Server::start(dir, Opts::new(&bin(), 2).arg("--upgrade-timeout").arg("2"));
    let pid = server.pid();
    let build = server.status()["build"].as_str().unwrap().to_string();
    let mut probes = Probes::open(&server);
    let before = stable_fds(pid);

    let serves_on = |probes: &mut Probes, when: &str| {
        assert_eq!(server.pid(), pid, "{when}: pid file changed");
        assert!(!gone(pid), "{when}: the server exited");
        let st = server.status();
        assert_eq!(
            (&st["pid"], &st["build"]),
            (&pid.into(), &build.clone().into()),
            "{when}: {st}"
        );
        assert_eq!(st["upgrading"], false, "{when}: {st}");
        // Its listeners serve again too.
        assert_eq!(
            get(server.http, "/hello"),
            (200, b"Hello, World!".to_vec()),
            "{when}"
        );
        assert_eq!(
            children_of(pid),
            vec![],
            "{when}: a process the upgrade started is left"
        );
        probes.check(when);
    };

    // A binary that exits at once.
    let reason = server.upgrade_refused(&["--binary", "/bin/false"]);
    eprintln!("/bin/false: {reason}");
    serves_on(&mut probes, "after /bin/false");

    // A binary that never answers: killed after --upgrade-timeout.
    let reason = server.upgrade_refused(&["--binary", hang.to_str().unwrap()]);
    eprintln!("hanging binary: {reason}");
    let hang_pid: u32 = std::fs::read_to_string(&hang_pid_file)
        .expect("the hanging binary ran")
        .trim()
        .parse()
        .unwrap();
    server.remember_other(hang_pid, "sleep");
    wait_gone(hang_pid, "the hanging new process");
    serves_on(&mut probes, "after the hanging binary");

    // Fewer loops than the old process runs.
    let reason = server.upgrade_refused(&["--binary", v2.to_str().unwrap(), "--threads", "1"]);
    eprintln!("--threads 1: {reason}");
    let r = reason.to_ascii_lowercase();
    assert!(r.contains("loop") || r.contains("thread"), "{reason}");
    serves_on(&mut probes, "after --threads 1");

    // Three rollbacks left nothing open behind them.
    wait_fds(pid, &before, "after three rolled back upgrades");

    // A real upgrade still works, with the same clients.
    let r = server.upgrade(&v2, &[], "v2-test", 3);
    probes.check("after the upgrade to v2");
    // More loops than the old process: supported; the extra one takes new
    // connections.
    let pid2 = r["new_pid"].as_u64().unwrap() as u32;
    let r = server.upgrade(&v3, &["--threads", "3"], "v3-test", 3);
    assert_eq!(r["old_pid"], pid2);
    assert_eq!(server.status()["loops"], 3);
    probes.check("after the upgrade to three loops");
    for i in 0..30 {
        let (code, body) = get(server.http, "/hello");
        assert_eq!(
            (code, &body[..]),
            (200, &b"Hello, World!"[..]),
            "new connection {i}"
        );
    }
    // A chat member on the loop the last process added (each member learns
    // its loop from the clock message) goes on through one more upgrade,
    // and hears, and is heard by, a member on the first loop.
    let mut on = std::collections::HashMap::new();
    for _ in 0..60 {
        let mut c = ws(server.http, "/ws/chat");
        let tick = read_until(&mut c, |t| t.contains("\"tick\""));
        let l = serde_json::from_str::<serde_json::Value>(&tick).unwrap()["loop"]
            .as_u64()
            .unwrap();
        on.entry(l).or_insert(c);
        if on.contains_key(&0) && on.contains_key(&2) {
            break;
        }
    }
    let (Some(first), Some(added)) = (on.remove(&0), on.remove(&2)) else {
        panic!("no chat member landed on loops 0 and 2 in 60 tries");
    };
    drop(on);
    server.upgrade(&v2, &[], "v2-test", 5);
    assert_eq!(server.status()["loops"], 3);
    probes.check("after an upgrade of three loops");
    let mut pair = [added, first];
    for (from, text) in [(0, "from loop 2"), (1, "from loop 0")] {
        pair[from].send(tungstenite::Message::text(text)).unwrap();
        for c in pair.iter_mut() {
            read_until(c, |t| t.contains("\"chat\"") && t.contains(text));
        }
    }
    let [mut added, _first] = pair;
    let tick = read_until(&mut added, |t| t.contains("\"tick\""));
    assert!(tick.contains("\"loop\":2"), "{tick}");
}

/// One upgrade at a time: while the new binary starts (held at a gate
/// here) the server serves, `ctl status` says it is upgrading, a second
/// `ctl upgrade` is refused, and a SIGTERM waits; when the new binary
/// exits instead of taking over, the upgrade fails, the old process serves
/// on, and then carries the SIGTERM out: a graceful shutdown, exit 0.
#[test]
fn one_upgrade_at_a_time_and_a_sigterm_during_one_waits_for_it() {
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let v2 = dir.join("ringtail-v2");
    stamp(&bin(), &v2, "v2-test");
    let fifo = dir.join("gate");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path `c` and nothing else.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let gate = dir.join("gate.sh");
    let gate_pid_file = dir.join("gate.pid");
    std::fs::write(
        &gate,
        format!(
            "#!/bin/sh\necho $$ > {}\nread line < {}\nexit 3\n",
            gate_pid_file.display(),
            fifo.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&gate, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A timeout far beyond this test: nothing here depends on one.
    let server = Server::start(
        dir,
        Opts::new(&bin(), 1)
            .arg("--upgrade-timeout")
            .arg("600")
            .arg("--grace")
            .arg("10"),
    );
    let pid = server.pid();
    let mut probes = Probes::open(&server);
    std::thread::scope(|s| {
        let first = s.spawn(|| server.ctl(&["upgrade", "--binary", gate.to_str().unwrap()]));
        let deadline = Instant::now() + WAIT;
        while server.status()["upgrading"] != true {
            assert!(!first.is_finished(), "the gated upgrade ended early");
            assert!(Instant::now() < deadline, "ctl status never said upgrading");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The new binary has not answered: the old process serves.
        probes.check("while the new binary starts");
        let reason = server.upgrade_refused(&["--binary", v2.to_str().unwrap()]);
        assert!(reason.contains("in progress"), "{reason}");
        signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + WAIT;
        while !server.logged(&["shutting down gracefully"]) {
            assert!(
                Instant::now() < deadline,
                "SIGTERM not logged{}",
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Still serving, still upgrading: the shutdown waits.
        probes.check("after SIGTERM, during the upgrade");
        assert_eq!(server.status()["upgrading"], true);
        // Open the gate: the new binary exits.
        let deadline = Instant::now() + WAIT;
        let mut w = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                Ok(w) => break w,
                // No reader yet (ENXIO).
                Err(e) => {
                    assert!(Instant::now() < deadline, "the gate was never read: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        w.write_all(b"go\n").unwrap();
        let reason = server.refused(&first.join().unwrap());
        eprintln!("gated binary: {reason}");
    });
    let gate_pid: u32 = std::fs::read_to_string(&gate_pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    server.remember_other(gate_pid, "gate");
    wait_gone(gate_pid, "the gated new process");
    // The rolled back process carries the SIGTERM out.
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = reap(pid) {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after the rolled back upgrade{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "wait status {status:#x}{}",
        server.log_tail()
    );
}

/// `ctl` without a server at the path: exit 1, and it says so.
#[test]
fn ctl_without_a_server_cannot_connect() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("nobody.sock");
    for args in [&["status"][..], &["upgrade"][..]] {
        let mut cmd = Command::new(bin());
        cmd.arg("ctl").arg("--control").arg(&path).args(args);
        let out = run_bounded(cmd, "ctl without a server");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let want = format!("ringtail ctl: cannot connect to {}: ", path.display());
        assert!(out.stderr.starts_with(&want), "{out:?}");
    }
}

/// The control socket is the owner's alone: mode 0600, and another user
/// (uid 65534, when the tests run as root) gets no answer — neither
/// through the file mode nor, with the mode opened up, past the peer
/// credential check. The owner is served throughout.
#[test]
fn another_user_cannot_use_the_control_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Another user must reach the socket (so the socket's own mode is what
    // refuses) and run the binary.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.join("ringtail");
    std::fs::copy(bin(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(dir, Opts::new(&exe, 1));
    let mode = std::fs::metadata(&server.control)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode {mode:o}");
    assert_eq!(server.status()["pid"], server.pid());

    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the part with another user is skipped");
        return;
    }
    let as_nobody = || {
        let mut cmd = Command::new(&exe);
        cmd.arg("ctl")
            .arg("--control")
            .arg(&server.control)
            .arg("status")
            .uid(65534)
            .gid(65534);
        run_bounded(cmd, "ctl status as uid 65534")
    };
    // The file mode refuses the connection.
    let out = as_nobody();
    assert!(!out.status.success(), "{out:?}");
    assert!(!out.stdout.contains("pid"), "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{out:?}");
    // With the mode opened up, the peer credentials still refuse it.
    std::fs::set_permissions(&server.control, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody();
    std::fs::set_permissions(&server.control, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(!out.stdout.contains("pid"), "{out:?}");
    let deadline = Instant::now() + WAIT;
    while !server.logged(&["another user refused"]) {
        assert!(
            Instant::now() < deadline,
            "refusal not logged{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The owner still is served.
    assert_eq!(server.status()["pid"], server.pid());
    assert_eq!(get(server.http, "/hello"), (200, b"Hello, World!".to_vec()));
}

/// An upgrade asked for during a graceful shutdown is refused with a
/// reason; the shutdown goes on (the request and the download in progress
/// complete) and the process exits 0.
#[test]
fn an_upgrade_during_a_graceful_shutdown_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let v2 = dir.join("ringtail-v2");
    stamp(&bin(), &v2, "v2-test");
    let root = dir.join("root");
    std::fs::create_dir(&root).unwrap();
    let big = Arc::new(random_bytes(32 * MIB, 7));
    std::fs::write(root.join("big.bin"), &big[..]).unwrap();
    let server = Server::start(
        dir,
        Opts::new(&bin(), 1)
            .arg("--root")
            .arg(&root)
            .arg("--grace")
            .arg("30"),
    );
    let pid = server.pid();
    // Requests in progress hold the grace period: one whose body is half
    // sent, and a download whose answer has begun (and cannot be all in
    // the socket buffers). A request merely sent may not have been read
    // when the shutdown begins (its connection is then idle and closed at
    // once): the half-sent one is waited for until the server counts it.
    let counted = |n: &mut u64| {
        // Each look is a request too.
        *n += 1;
        let (code, body) = get(server.http, "/metrics");
        assert_eq!(code, 200);
        let body = String::from_utf8_lossy(&body).into_owned();
        body.lines()
            .find_map(|l| l.strip_prefix("ringtail_http_requests_total "))
            .unwrap_or_else(|| panic!("no ringtail_http_requests_total in {body}"))
            .parse::<u64>()
            .unwrap()
    };
    let mut looks = 0;
    let before = counted(&mut looks) - looks;
    let mut held = Held::open(server.http, true);
    let deadline = Instant::now() + WAIT;
    while counted(&mut looks) < before + looks + 1 {
        assert!(
            Instant::now() < deadline,
            "the half-sent request was never counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let budget = Arc::new(Budget::default());
    budget.allowed.store(MIB as u64, Ordering::Relaxed);
    let mut download = download_client(server.http, "/big.bin", big.clone(), budget.clone());
    budget.wait_reached("download before SIGTERM", &mut download);
    signal(pid, libc::SIGTERM);
    let deadline = Instant::now() + WAIT;
    loop {
        let out = server.ctl(&["status"]);
        assert!(
            out.status.success(),
            "the server stopped answering although a download is in progress: {out:?}{}",
            server.log_tail()
        );
        if out.json()["shutting_down"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "SIGTERM not seen: {out:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let reason = server.upgrade_refused(&["--binary", v2.to_str().unwrap()]);
    assert!(reason.contains("shutting down"), "{reason}");
    assert_eq!(server.pid(), pid);
    assert!(!gone(pid));
    assert_eq!(children_of(pid), vec![]);
    // The shutdown goes on: the request is answered, the download
    // completes, then the process ends.
    held.complete(false);
    budget.allowed.store(u64::MAX, Ordering::Relaxed);
    eprintln!("download: {}", download.finish());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = reap(pid) {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after the shutdown{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "wait status {status:#x}{}",
        server.log_tail()
    );
}

/// SIGUSR2 upgrades to the binary at the path the server was started
/// from, read anew: replaced the way `install` does (a new file renamed
/// over it), the new build serves, under a new pid. A broken binary there
/// is rolled back from, as with `ctl upgrade`.
#[test]
fn sigusr2_upgrades_to_the_binary_now_at_the_started_path() {
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exe = dir.join("ringtail");
    stamp(&bin(), &exe, "v1-test");
    let server = Server::start(dir, Opts::new(&exe, 2));
    let pid = server.pid();
    assert_eq!(server.status()["build"], "v1-test");
    let mut probes = Probes::open(&server);
    // First a binary there that exits at once: the server serves on.
    let broken = dir.join("broken");
    std::fs::write(&broken, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&broken, &exe).unwrap();
    signal(pid, libc::SIGUSR2);
    let deadline = Instant::now() + WAIT;
    while !server.log.lock().unwrap().iter().any(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("upgrade") && l.contains("fail")
    }) {
        assert!(
            Instant::now() < deadline,
            "no failed upgrade logged after SIGUSR2{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.pid(), pid);
    assert_eq!(server.status()["build"], "v1-test");
    assert_eq!(children_of(pid), vec![]);
    probes.check("after SIGUSR2 with a broken binary");
    // Then the real one.
    stamp(&bin(), &exe, "v2-test");
    signal(pid, libc::SIGUSR2);
    let deadline = Instant::now() + WAIT;
    let new = loop {
        let now = server.pid();
        if now != pid {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "pid file unchanged after SIGUSR2{}",
            server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_gone(pid, "the old server");
    let st = server.status();
    assert_eq!(st["pid"], new, "{st}");
    assert_eq!(st["build"], "v2-test", "{st}");
    assert!(server.logged(&["upgraded: took over", &format!("from pid {pid}")]));
    probes.check("after SIGUSR2");
}

/// With `NOTIFY_SOCKET`, systemd hears `READY=1` at start and, after an
/// upgrade, `MAINPID=<new pid>` and `READY=1` from the new process.
#[test]
fn systemd_hears_ready_and_the_new_main_pid() {
    become_subreaper();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let v2 = dir.join("ringtail-v2");
    stamp(&bin(), &v2, "v2-test");
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let mut opts = Opts::new(&bin(), 1);
    opts.env
        .push(("NOTIFY_SOCKET".into(), notify_path.to_str().unwrap().into()));
    let server = Server::start(dir, opts);
    let recv = || {
        let mut buf = vec![0; 4096];
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification: {e}{}", server.log_tail()));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    let r = server.upgrade(&v2, &[], "v2-test", 0);
    let new = r["new_pid"].as_u64().unwrap();
    let second = recv();
    let lines: Vec<&str> = second.lines().collect();
    assert!(
        lines.contains(&format!("MAINPID={new}").as_str()),
        "{second:?}"
    );
    assert!(lines.contains(&"READY=1"), "{second:?}");
}
