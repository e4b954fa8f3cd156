//! Issue 11, item 5: the event-loop thread makes no file-system system call
//! while it serves files — cache misses and hits, streamed files, directory
//! indexes, listings, a file changed under the cache, a missing file. A slow
//! or hung file system (NFS, FUSE) would otherwise stall every connection of
//! the loop.
//!
//! The test runs itself as a child process under `strace -f` (installed by
//! `scripts/install-test-deps`), tracing every system call that takes a path
//! or reads metadata or directories, plus `write` for a marker the loop
//! thread prints once set up (opening the root at start-up is allowed). After
//! the marker, the loop thread's only traced calls may be `write`s
//! (eventfds); the file-system work must appear on other threads (the file
//! helper), or inside io_uring where strace does not see it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use network_server::{
    Application, ClientId, Ctx, FileRootId, FileRootOptions, HttpEvent, ServerConfig,
};

const CHILD_ENV: &str = "RINGTAIL_TEST_LOOP_FS_ROOT";
const TEST_NAME: &str = "loop_thread_makes_no_file_system_calls";

struct Files {
    root: FileRootId,
}

impl Application for Files {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = ev {
            ctx.http_send_file(client, self.root, req.path, req)
                .unwrap();
        }
    }
}

/// The child: serves `root` (listings on) until its stdin closes.
fn child(root: PathBuf) {
    let running = common::spawn(ServerConfig::default(), move |server| {
        let opts = FileRootOptions {
            listing: true,
            ..Default::default()
        };
        let root = server.ctx().file_root_open(&root, opts).unwrap();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        // The marker: one write(2) by the loop thread, after start-up.
        println!("READY {tid}");
        Files { root }
    });
    println!("ADDR {}", running.addr);
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).unwrap_or(0) > 0 {
        line.clear();
    }
    running.stop();
}

fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = common::request(addr, req.as_bytes()).expect("a response");
    (r.status, r.body)
}

/// `(tid, syscall name)` of each line of an `strace -f` log.
fn calls(log: &str) -> Vec<(String, String, &str)> {
    log.lines()
        .filter_map(|l| {
            let (tid, rest) = l.split_once(' ')?;
            let rest = rest.trim_start();
            let rest_name = rest.strip_prefix("<... ").unwrap_or(rest);
            let name: String = rest_name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then(|| (tid.to_string(), name, l))
        })
        .collect()
}

#[test]
fn loop_thread_makes_no_file_system_calls() {
    if let Some(root) = std::env::var_os(CHILD_ENV) {
        return child(root.into());
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(root.join("list")).unwrap();
    std::fs::write(root.join("small.txt"), b"small file\n").unwrap();
    std::fs::write(root.join("sub/index.html"), b"<h1>sub</h1>\n").unwrap();
    std::fs::write(root.join("list/a.txt"), b"a").unwrap();
    let big: Vec<u8> = (0..400_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let log_path = dir.path().join("strace.log");

    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log_path)
        .args([
            "-e",
            "trace=%file,%stat,%lstat,%fstat,%statfs,getdents64,inotify_rm_watch,write",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace is installed by scripts/install-test-deps");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut tid, mut addr) = (None, None);
    let mut line = String::new();
    while addr.is_none() {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child server did not start");
        }
        // (libtest may print "test … " before the child's first line.)
        if let Some((_, t)) = line.trim().split_once("READY ") {
            tid = Some(t.to_string());
        }
        if let Some((_, a)) = line.trim().split_once("ADDR ") {
            addr = Some(a.parse::<SocketAddr>().unwrap());
        }
    }
    let (tid, addr) = (tid.expect("the loop's marker"), addr.unwrap());

    // A miss, then (once the helper has added the watches) hits.
    for _ in 0..5 {
        assert_eq!(get(addr, "/small.txt"), (200, b"small file\n".to_vec()));
    }
    assert_eq!(get(addr, "/big.bin"), (200, big.clone()));
    assert_eq!(get(addr, "/sub/").1, b"<h1>sub</h1>\n");
    assert_eq!(get(addr, "/sub/").1, b"<h1>sub</h1>\n");
    let (status, html) = get(addr, "/list/");
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&html).contains("a.txt"));
    assert_eq!(get(addr, "/missing").0, 404);
    // A change under the cache is still seen.
    std::fs::write(root.join("small.txt"), b"changed\n").unwrap();
    assert_eq!(get(addr, "/small.txt"), (200, b"changed\n".to_vec()));

    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child server did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "child: {status}");

    let log = std::fs::read_to_string(&log_path).unwrap();
    let calls = calls(&log);
    let marker = calls
        .iter()
        .position(|(t, name, l)| *t == tid && name == "write" && l.contains("READY"))
        .expect("the loop thread's marker is in the trace");
    let on_loop: Vec<&str> = calls[marker..]
        .iter()
        .filter(|(t, name, _)| *t == tid && name != "write")
        .map(|(_, _, l)| *l)
        .collect();
    assert!(
        on_loop.is_empty(),
        "file-system calls on the loop thread while serving:\n{}",
        on_loop.join("\n")
    );
    // The work happened, elsewhere: the helper watched the cached files and
    // read the listed directory.
    let elsewhere = |want: &str| {
        calls[marker..]
            .iter()
            .any(|(t, name, _)| *t != tid && name == want)
    };
    assert!(elsewhere("inotify_add_watch"), "no watch added:\n{log}");
    assert!(elsewhere("getdents64"), "no directory read:\n{log}");
}
