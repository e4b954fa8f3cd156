//! The harness of `tests/upgrade.rs`: stamped copies of the binary, a
//! `ringtail serve` known by its pid (an upgrade replaces the process, so
//! it is not a `Child` for long), `ringtail ctl`, descriptor counts from
//! `/proc`, plain HTTP over sockets, and load clients on threads.
//!
//! Every wait is bounded by a deadline, every process started (and every
//! process an upgrade started) is killed on drop.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The package version, as `ctl status` and `/metrics` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long any single wait of the harness may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The `ringtail` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringtail"))
}

/// The Python with `websockets`: `RINGTAIL_TEST_PYTHON`, else the test
/// virtualenv `scripts/install-test-deps` makes in the target directory
/// (as in network_server's tests).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("RINGTAIL_TEST_PYTHON") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A relative CARGO_TARGET_DIR is taken from the workspace root.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |t| root.join(t));
    let p = target.join("test-venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run scripts/install-test-deps (the README's test command does)",
        p.display()
    );
    p
}

/// Makes this test process the reaper of orphans: a server started by an
/// upgrade outlives its parent (the old server) and is then re-parented
/// here, where [`gone`] can reap it instead of leaving a zombie (pid 1 of
/// a container may never reap). Each test runs in its own process under
/// nextest; under `cargo test` the setting is process-wide and harmless.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument
    // and touches no memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(r, 0, "prctl: {}", std::io::Error::last_os_error());
}

// ----- binaries -----------------------------------------------------------------

/// The marker the build id field follows in the binary (see
/// `crates/ringtail/src/build_id.rs`).
const MARKER: &[u8] = b"RINGTAIL-BUILD-ID:";
/// Bytes of the build id field.
const FIELD: usize = 32;

/// Copies `src` to `dst` with its build id stamped as `id` (NUL padded),
/// mode 0755. Written to a temporary name and renamed, so a running
/// binary at `dst` is replaced the way `install` does it.
pub fn stamp(src: &Path, dst: &Path, id: &str) {
    assert!(id.len() <= FIELD);
    let mut bytes = std::fs::read(src).unwrap();
    let at = find_all(&bytes, MARKER);
    assert_eq!(
        at.len(),
        1,
        "{}: the marker {:?} should occur once",
        src.display(),
        String::from_utf8_lossy(MARKER)
    );
    let field = &mut bytes[at[0] + MARKER.len()..at[0] + MARKER.len() + FIELD];
    field.fill(0);
    field[..id.len()].copy_from_slice(id.as_bytes());
    let tmp = dst.with_extension("stamping");
    std::fs::write(&tmp, &bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, dst).unwrap();
}

/// Every offset of `needle` in `hay`, found with the C library's memmem
/// (a byte-by-byte search in a test build takes seconds per binary).
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut from = 0;
    while from < hay.len() {
        let rest = &hay[from..];
        // SAFETY: both pointers and lengths describe live slices that are
        // only read; memmem returns null or a pointer into `rest`.
        let p = unsafe {
            libc::memmem(
                rest.as_ptr().cast(),
                rest.len(),
                needle.as_ptr().cast(),
                needle.len(),
            )
        };
        if p.is_null() {
            break;
        }
        let at = from + (p as usize - rest.as_ptr() as usize);
        out.push(at);
        from = at + 1;
    }
    out
}

// ----- processes ----------------------------------------------------------------

/// Whether `pid` has exited: reaped here if it is (or became) our child;
/// a zombie somebody else has to reap counts as exited.
pub fn gone(pid: u32) -> bool {
    reap(pid);
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => proc_state(&stat) == Some('Z'),
    }
}

/// Reaps `pid` if it is our child and has exited: its wait status.
pub fn reap(pid: u32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG writes only to `status`, a local.
    let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    (r == pid as i32).then_some(status)
}

/// Field 3 of `/proc/PID/stat` (after the parenthesised command name).
fn proc_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// Field 4 of `/proc/PID/stat`: the parent pid.
fn proc_ppid(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
}

/// `/proc/PID/cmdline` with NULs as spaces ("" if it is gone).
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Live (non-zombie) processes whose parent is `pid`, with their command
/// lines.
pub fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        if proc_ppid(&stat) == Some(pid) && proc_state(&stat) != Some('Z') {
            out.push((child, cmdline(child)));
        }
    }
    out
}

/// Waits (bounded) until `pid` has exited.
pub fn wait_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + WAIT;
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still runs after {WAIT:?}: {}",
            cmdline(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid this test started (checked by the callers).
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// Runs `cmd` to its end (at most 60 s, then it is killed and the test
/// fails): status, stdout, stderr.
pub fn run_bounded(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// What a command printed.
#[derive(Debug)]
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout as one JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {self:?}"))
    }
}

// ----- descriptors --------------------------------------------------------------

/// The process's open descriptors by kind: "socket", "pipe",
/// "anon_inode:[io_uring]", "anon_inode:[eventfd]", … and files by path.
pub type Fds = BTreeMap<String, usize>;

pub fn fds(pid: u32) -> Fds {
    let mut out = Fds::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return out;
    };
    for e in dir.flatten() {
        // A descriptor closed meanwhile has no link any more.
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        let kind = if t.starts_with("socket:") {
            "socket".to_string()
        } else if t.starts_with("pipe:") {
            "pipe".to_string()
        } else {
            t.into_owned()
        };
        *out.entry(kind).or_default() += 1;
    }
    out
}

/// The descriptors of `pid` once two reads 200 ms apart agree (bounded):
/// a count not caught in the middle of a connection's opening or closing.
pub fn stable_fds(pid: u32) -> Fds {
    let deadline = Instant::now() + WAIT;
    let mut last = fds(pid);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = fds(pid);
        if now == last {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "descriptors of {pid} never settled: {last:?} then {now:?}"
        );
        last = now;
    }
}

/// Waits (bounded) until `pid`'s descriptors are `want`; fails with what
/// differs.
pub fn wait_fds(pid: u32, want: &Fds, what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = fds(pid);
        if &now == want {
            return;
        }
        if Instant::now() > deadline {
            let mut diff = Vec::new();
            for k in want.keys().chain(now.keys()) {
                let (a, b) = (
                    want.get(k).copied().unwrap_or(0),
                    now.get(k).copied().unwrap_or(0),
                );
                if a != b && !diff.iter().any(|(d, _, _): &(String, usize, usize)| d == k) {
                    diff.push((k.clone(), a, b));
                }
            }
            panic!(
                "{what}: descriptors of pid {pid} differ from the baseline after {WAIT:?} \
                 (kind, baseline, now): {diff:?}\nbaseline {want:?}\nnow {now:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ----- the server ---------------------------------------------------------------

/// How to start a server.
#[derive(Debug)]
pub struct Opts {
    pub binary: PathBuf,
    pub threads: usize,
    /// Flags after the harness's own.
    pub extra: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Opts {
    pub fn new(binary: &Path, threads: usize) -> Opts {
        Opts {
            binary: binary.to_path_buf(),
            threads,
            extra: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Opts {
        self.extra.push(a.as_ref().to_string_lossy().into_owned());
        self
    }
}

/// A `ringtail serve` with a control socket and a pid file in `dir`,
/// uploads in `dir/uploads`, HTTP and RAW echo on port 0. Known by pid:
/// after an upgrade the serving process is not ours to wait for.
#[derive(Debug)]
pub struct Server {
    pub dir: PathBuf,
    pub control: PathBuf,
    pub pid_file: PathBuf,
    pub uploads: PathBuf,
    pub http: SocketAddr,
    pub raw: SocketAddr,
    /// HTTPS and WSS, when started with `--tls-cert`.
    pub https: Option<SocketAddr>,
    /// Everything the processes wrote on stderr (the new process inherits
    /// the old one's).
    pub log: Arc<Mutex<Vec<String>>>,
    /// Every server pid seen (killed on drop if still running).
    pids: Mutex<Vec<u32>>,
    /// Other processes to kill on drop if they still run, with a word their
    /// command line must contain.
    others: Mutex<Vec<(u32, String)>>,
}

impl Server {
    /// Starts the server in `dir` (which outlives it: the caller keeps the
    /// `TempDir`) and waits until it logs its addresses.
    pub fn start(dir: &Path, opts: Opts) -> Server {
        let control = dir.join("ctl.sock");
        let pid_file = dir.join("ringtail.pid");
        let uploads = dir.join("uploads");
        let mut cmd = Command::new(&opts.binary);
        cmd.arg("serve")
            .args(["--threads", &opts.threads.to_string()])
            .arg("--control")
            .arg(&control)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--upload-dir")
            .arg(&uploads)
            .args(["--addr", "127.0.0.1:0", "--raw-echo", "127.0.0.1:0"])
            .args(&opts.extra)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RINGTAIL_UPGRADE")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", opts.binary.display()));
        let pid = child.id();
        let stderr = child.stderr.take().unwrap();
        // The child is waited for by pid (`gone`), like the processes that
        // replace it; dropping the handle neither kills nor waits.
        drop(child);
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(Some(line.clone()));
                    log.lock().unwrap().push(line);
                }
                let _ = tx.send(None);
            });
        }
        let mut server = Server {
            dir: dir.to_path_buf(),
            control,
            pid_file,
            uploads,
            http: "0.0.0.0:0".parse().unwrap(),
            raw: "0.0.0.0:0".parse().unwrap(),
            https: None,
            log,
            pids: Mutex::new(vec![pid]),
            others: Mutex::new(Vec::new()),
        };
        let deadline = Instant::now() + WAIT;
        let (mut http, mut raw, mut https) = (None, None, None);
        let tls = opts.extra.iter().any(|a| a == "--tls-cert");
        while http.is_none() || raw.is_none() || (tls && https.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Some(line)) => {
                    if let Some(rest) = line.split("serving HTTP and WebSocket: http://").nth(1) {
                        http.get_or_insert(rest.split('/').next().unwrap().parse().unwrap());
                    } else if let Some(rest) = line.split("serving HTTPS and WSS: https://").nth(1)
                    {
                        https.get_or_insert(rest.split('/').next().unwrap().parse().unwrap());
                    } else if line.contains("serving RAW TCP echo") {
                        let a = line.split("addr=").nth(1).unwrap();
                        raw.get_or_insert(a.split_whitespace().next().unwrap().parse().unwrap());
                    }
                }
                Ok(None) => panic!(
                    "ringtail serve exited before serving: {}",
                    server.log_tail()
                ),
                Err(_) => panic!(
                    "ringtail serve did not log its addresses in {WAIT:?}: {}",
                    server.log_tail()
                ),
            }
        }
        server.http = http.unwrap();
        server.raw = raw.unwrap();
        server.https = https;
        // The pid file is written just after the address is logged.
        let deadline = Instant::now() + WAIT;
        while std::fs::read_to_string(&server.pid_file)
            .map_or(true, |t| t.trim() != pid.to_string())
        {
            assert!(
                Instant::now() < deadline,
                "pid file {} not written{}",
                server.pid_file.display(),
                server.log_tail()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(40);
        format!(
            "\n--- server log (last {}) ---\n{}",
            log.len() - from,
            log[from..].join("\n")
        )
    }

    /// Whether some log line contains every one of `words`.
    pub fn logged(&self, words: &[&str]) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| words.iter().all(|w| l.contains(w)))
    }

    /// The pid in the pid file.
    pub fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(&self.pid_file)
            .unwrap_or_else(|e| panic!("pid file {}: {e}", self.pid_file.display()));
        let pid = text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("pid file says {text:?}: {e}"));
        self.remember(pid);
        pid
    }

    /// Adds `pid` to the processes killed on drop.
    pub fn remember(&self, pid: u32) {
        let mut pids = self.pids.lock().unwrap();
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }

    /// Also kill `pid` on drop if it runs and its command line contains
    /// `word`.
    pub fn remember_other(&self, pid: u32, word: &str) {
        self.others.lock().unwrap().push((pid, word.to_string()));
    }

    /// `ringtail ctl --control PATH ARGS…`, run with the test's binary.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.arg("ctl")
            .arg("--control")
            .arg(&self.control)
            .args(args);
        run_bounded(cmd, &format!("ringtail ctl {args:?}"))
    }

    /// `ctl status`, which must succeed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.ctl(&["status"]);
        assert!(
            out.status.success(),
            "ctl status: {out:?}{}",
            self.log_tail()
        );
        out.json()
    }

    /// `ctl upgrade ARGS…`, which must fail with a reason: the reason.
    pub fn upgrade_refused(&self, args: &[&str]) -> String {
        let mut all = vec!["upgrade"];
        all.extend_from_slice(args);
        self.refused(&self.ctl(&all))
    }

    /// The reason of a failed `ctl upgrade`: exit status 1, stdout
    /// `{"ok":false,"reason":…}`, stderr `ringtail ctl: upgrade failed: …`.
    pub fn refused(&self, out: &Output) -> String {
        assert_eq!(
            out.status.code(),
            Some(1),
            "ctl upgrade: {out:?}{}",
            self.log_tail()
        );
        let v = out.json();
        assert_eq!(v["ok"], false, "{out:?}");
        let reason = v["reason"].as_str().unwrap_or_default().to_string();
        assert!(!reason.is_empty(), "no reason: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("ringtail ctl: upgrade failed: {reason}")),
            "stderr does not say why: {out:?}"
        );
        reason
    }

    /// `ctl upgrade --binary BINARY ARGS…`, which must succeed, and every
    /// check of a finished upgrade: the answer (ok, old and new pid, build,
    /// at least `min_connections` taken over, pause and total times), the
    /// old process gone, the pid file rewritten, `ctl status` and `/metrics`
    /// from the new process with the new build, the new process's log line.
    /// Returns the answer.
    pub fn upgrade(
        &self,
        binary: &Path,
        args: &[&str],
        build: &str,
        min_connections: u64,
    ) -> serde_json::Value {
        let old = self.pid();
        let mut all = vec!["upgrade", "--binary", binary.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.ctl(&all);
        assert!(
            out.status.success(),
            "ctl {all:?} failed: {out:?}{}",
            self.log_tail()
        );
        let v = out.json();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["old_pid"], old, "{v}");
        let new = v["new_pid"].as_u64().unwrap_or_else(|| panic!("{v}")) as u32;
        self.remember(new);
        assert_ne!(new, old, "{v}");
        assert_eq!(v["build"], build, "{v}");
        let conns = v["connections"].as_u64().unwrap_or_else(|| panic!("{v}"));
        assert!(
            conns >= min_connections,
            "{conns} connections taken over, {min_connections} at least open: {v}"
        );
        for k in ["pause_ms", "total_ms"] {
            let ms = v[k].as_f64().unwrap_or_else(|| panic!("no {k}: {v}"));
            assert!(ms.is_finite() && ms >= 0.0, "{k}: {v}");
        }
        // The old process exits once it has answered.
        wait_gone(old, "the old server");
        assert_eq!(self.pid(), new, "pid file not rewritten");
        let status = self.status();
        assert_eq!(status["pid"], new, "{status}");
        assert_eq!(status["build"], build, "{status}");
        assert_eq!(status["version"], VERSION, "{status}");
        assert_eq!(status["upgrading"], false, "{status}");
        // The same socket, handed over: still the owner's alone.
        let mode = std::fs::metadata(&self.control)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "control socket mode {mode:o} after an upgrade"
        );
        let (code, body) = get(self.http, "/metrics");
        assert_eq!(code, 200);
        let body = String::from_utf8_lossy(&body);
        let line = format!("ringtail_build_info{{version=\"{VERSION}\",build=\"{build}\"}} 1");
        assert!(
            body.lines().any(|l| l == line),
            "no {line:?} in /metrics:\n{body}"
        );
        assert!(
            self.logged(&["upgraded: took over", &format!("from pid {old}")]),
            "the new process did not log the takeover{}",
            self.log_tail()
        );
        v
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(&self.pid_file) {
            if let Ok(pid) = text.trim().parse() {
                self.remember(pid);
            }
        }
        let mark = self.control.to_string_lossy().into_owned();
        let mut kill: Vec<u32> = Vec::new();
        for &pid in self.pids.lock().unwrap().iter() {
            if !gone(pid) && cmdline(pid).contains(&mark) {
                kill.push(pid);
            }
        }
        for (pid, word) in self.others.lock().unwrap().iter() {
            if !gone(*pid) && cmdline(*pid).contains(word.as_str()) {
                kill.push(*pid);
            }
        }
        for &pid in &kill {
            // SAFETY: kill(2) on a process this test started (its command
            // line names this test's control socket, or the word given).
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let deadline = Instant::now() + WAIT;
        for pid in kill {
            while !gone(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

// ----- HTTP over a socket -------------------------------------------------------

/// A connection with read and write timeouts of 20 s.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One response: status, header fields (names lower-cased), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (`head`: to a HEAD request, so without a body).
pub fn read_response(r: &mut impl BufRead, head: bool) -> Result<Response, String> {
    let mut line = String::new();
    let mut read_line = |line: &mut String| -> Result<(), String> {
        line.clear();
        match r.read_line(line) {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    };
    read_line(&mut line)?;
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line {l:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 304 || status == 204 || (100..200).contains(&status) {
        return Ok(resp);
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16)
                .map_err(|_| format!("bad chunk size {size:?}"))?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            resp.body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)
            .map_err(|e| format!("body of {len}: {e}"))?;
    } else {
        r.read_to_end(&mut resp.body).map_err(|e| e.to_string())?;
    }
    Ok(resp)
}

/// `GET path` on a new connection (`Connection: close`): status and body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = connect(addr);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let r =
        read_response(&mut BufReader::new(s), false).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (r.status, r.body)
}

/// The kinds of request the HTTP load clients cycle through, and the
/// answer each must get.
pub fn request(n: u64) -> (Vec<u8>, bool, u16, Option<&'static [u8]>) {
    match n % 4 {
        0 => (
            b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            false,
            200,
            Some(b"Hello, World!"),
        ),
        1 => (
            b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
            true,
            200,
            None,
        ),
        2 => (
            format!("GET /missing-{n} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes(),
            false,
            404,
            None,
        ),
        // A body the application answers at its end.
        _ => (
            format!(
                "POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n{:010}",
                n
            )
            .into_bytes(),
            false,
            200,
            Some(b"Hello, World!"),
        ),
    }
}

/// Checks `resp` is the answer to request `n` (see [`request`]).
pub fn check_answer(n: u64, resp: &Response) -> Result<(), String> {
    let (_, _, status, body) = request(n);
    if resp.status != status {
        return Err(format!(
            "request {n}: status {} instead of {status}",
            resp.status
        ));
    }
    if let Some(b) = body {
        if resp.body != b {
            return Err(format!(
                "request {n}: body {:?}",
                String::from_utf8_lossy(&resp.body)
            ));
        }
    }
    Ok(())
}

/// A request held half-sent on a keep-alive connection across an upgrade.
#[derive(Debug)]
pub struct Held {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    body: bool,
    done: u64,
}

impl Held {
    /// Connects and sends the first half of a request: with `body`, the
    /// head and half of the body; else half of the head.
    pub fn open(addr: SocketAddr, body: bool) -> Held {
        let s = connect(addr);
        let mut h = Held {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            body,
            done: 0,
        };
        h.send_first_half();
        h
    }

    fn send_first_half(&mut self) {
        let first: &[u8] = if self.body {
            b"POST /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234"
        } else {
            b"GET /hello HTTP/1.1\r\nHost: t\r\n"
        };
        self.writer.write_all(first).unwrap();
    }

    /// Sends the rest, checks the answer, and (with `again`) sends the
    /// first half of the next request on the same connection.
    pub fn complete(&mut self, again: bool) {
        let rest: &[u8] = if self.body { b"56789" } else { b"\r\n" };
        self.writer.write_all(rest).unwrap();
        let what = if self.body { "mid-body" } else { "mid-head" };
        let r = read_response(&mut self.reader, false)
            .unwrap_or_else(|e| panic!("the {what} request held across an upgrade: {e}"));
        assert_eq!(r.status, 200, "{what}: {r:?}");
        assert_eq!(r.body, b"Hello, World!", "{what}: {r:?}");
        self.done += 1;
        if again {
            self.send_first_half();
        }
    }
}

// ----- load on threads ----------------------------------------------------------

/// A client on its own thread until told to stop; it counts its progress
/// and ends with a summary, or with an error (anything lost, wrong, late
/// by more than 20 s, or a closed connection).
#[derive(Debug)]
pub struct Load {
    pub name: &'static str,
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<Result<String, String>>>,
}

impl Load {
    pub fn spawn(
        name: &'static str,
        f: impl FnOnce(&AtomicBool, &AtomicU64) -> Result<String, String> + Send + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), progress.clone());
        let handle = std::thread::spawn(move || f(&s, &p));
        Load {
            name,
            stop,
            progress,
            handle: Some(handle),
        }
    }

    pub fn progress(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Fails the test if the client has ended (it ends only when told to,
    /// or on an error).
    pub fn check_alive(&mut self) {
        if self.handle.as_ref().is_some_and(|h| h.is_finished()) {
            let r = self.handle.take().unwrap().join();
            panic!("{} ended early: {r:?}", self.name);
        }
    }

    /// Tells it to stop and waits (bounded): its summary.
    pub fn finish(mut self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let h = self.handle.take().unwrap();
        let deadline = Instant::now() + WAIT + WAIT;
        while !h.is_finished() {
            assert!(Instant::now() < deadline, "{} did not stop", self.name);
            std::thread::sleep(Duration::from_millis(10));
        }
        match h.join() {
            Ok(Ok(summary)) => summary,
            Ok(Err(e)) => panic!("{}: {e}", self.name),
            Err(_) => panic!("{} panicked", self.name),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // Its socket closes when the thread ends (it checks `stop` at
        // least every 20 s: its socket timeouts).
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Keep-alive HTTP: one request at a time (GET, HEAD, a 404, a POST with
/// a body), each written in two parts.
pub fn keepalive_client(addr: SocketAddr) -> Load {
    Load::spawn("keep-alive HTTP client", move |stop, progress| {
        let mut w = connect(addr);
        let mut r = BufReader::new(w.try_clone().unwrap());
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let (req, head, _, _) = request(n);
            let cut = req.len() / 2;
            w.write_all(&req[..cut])
                .map_err(|e| format!("write: {e}"))?;
            std::thread::sleep(Duration::from_millis(1));
            w.write_all(&req[cut..])
                .map_err(|e| format!("write: {e}"))?;
            let resp = read_response(&mut r, head).map_err(|e| format!("request {n}: {e}"))?;
            check_answer(n, &resp)?;
            n += 1;
            progress.store(n, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(format!("{n} requests"))
    })
}

/// Pipelined HTTP: 12 requests written at once, then 12 answers read, in
/// order.
pub fn pipelined_client(addr: SocketAddr) -> Load {
    Load::spawn("pipelined HTTP client", move |stop, progress| {
        let mut w = connect(addr);
        let mut r = BufReader::new(w.try_clone().unwrap());
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let batch: Vec<u64> = (n..n + 12).collect();
            let mut bytes = Vec::new();
            for &k in &batch {
                bytes.extend_from_slice(&request(k).0);
            }
            w.write_all(&bytes).map_err(|e| format!("write: {e}"))?;
            for &k in &batch {
                let resp =
                    read_response(&mut r, request(k).1).map_err(|e| format!("request {k}: {e}"))?;
                check_answer(k, &resp)?;
            }
            n += 12;
            progress.store(n, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(3));
        }
        Ok(format!("{n} requests"))
    })
}

/// The RAW echo stream: every 8-byte word is its own offset, so a byte
/// lost, repeated or moved shows where.
fn raw_pattern(from: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut word = from / 8;
    let skip = (from % 8) as usize;
    while out.len() < len + skip {
        out.extend_from_slice(&(word * 8).to_le_bytes());
        word += 1;
    }
    out.drain(..skip);
    out.truncate(len);
    out
}

/// RAW echo: writes of varying sizes, each read back and compared.
pub fn raw_client(addr: SocketAddr) -> Load {
    Load::spawn("RAW echo client", move |stop, progress| {
        let mut s = connect(addr);
        let mut at = 0u64;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let len = 1 + (i * 7919 % 9000) as usize;
            let out = raw_pattern(at, len);
            s.write_all(&out).map_err(|e| format!("write: {e}"))?;
            let mut back = vec![0; len];
            s.read_exact(&mut back)
                .map_err(|e| format!("echo of bytes {at}..{}: {e}", at + len as u64))?;
            if back != out {
                let k = back.iter().zip(&out).position(|(a, b)| a != b).unwrap();
                return Err(format!("echo differs at byte {}", at + k as u64));
            }
            at += len as u64;
            i += 1;
            progress.store(at, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(format!("{at} bytes echoed"))
    })
}

/// Reads `len` bytes of pseudo-random data (xorshift64, seeded).
pub fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A budget of bytes a slow transfer may move so far: raised by the test
/// between upgrades, so the transfer is still in progress at each one
/// whatever the machine's speed.
#[derive(Debug, Default)]
pub struct Budget {
    pub allowed: AtomicU64,
    pub moved: AtomicU64,
}

impl Budget {
    /// Waits until the transfer has moved everything it was allowed.
    pub fn wait_reached(&self, what: &str, load: &mut Load) {
        let deadline = Instant::now() + WAIT + WAIT;
        while self.moved.load(Ordering::Relaxed) < self.allowed.load(Ordering::Relaxed) {
            load.check_alive();
            assert!(
                Instant::now() < deadline,
                "{what}: {} of {} bytes after {:?}",
                self.moved.load(Ordering::Relaxed),
                self.allowed.load(Ordering::Relaxed),
                WAIT + WAIT
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How much more may move now (waits, bounded, while nothing may; an
    /// error once the test has let go of the client).
    fn take(&self, want: usize, stop: &AtomicBool) -> Result<usize, String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if stop.load(Ordering::Relaxed) && self.allowed.load(Ordering::Relaxed) != u64::MAX {
                return Err("stopped before the end".into());
            }
            let (a, m) = (
                self.allowed.load(Ordering::Relaxed),
                self.moved.load(Ordering::Relaxed),
            );
            if a > m {
                return Ok(want.min((a - m) as usize));
            }
            if Instant::now() > deadline {
                return Err(format!("budget stuck at {a} bytes for 90 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Downloads `path` (expected to be `want`) within `budget`, comparing
/// every byte as it comes; then checks SHA-256 and that nothing follows.
pub fn download_client(
    addr: SocketAddr,
    path: &str,
    want: Arc<Vec<u8>>,
    budget: Arc<Budget>,
) -> Load {
    let path = path.to_string();
    Load::spawn("download", move |stop, progress| {
        use sha2::Digest;
        let mut s = connect(addr);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut r = BufReader::with_capacity(64 * 1024, s);
        // The head only: read_response would read the whole body.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8];
            r.read_exact(&mut b).map_err(|e| format!("head: {e}"))?;
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return Err(format!("download answered {head:?}"));
        }
        let len_line = format!("content-length: {}\r\n", want.len());
        if !head.contains(&len_line) {
            return Err(format!("download head without {len_line:?}: {head:?}"));
        }
        let mut hash = sha2::Sha256::new();
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while got < want.len() {
            let n = budget.take(buf.len().min(want.len() - got), stop)?;
            let n = r
                .read(&mut buf[..n])
                .map_err(|e| format!("after {got} bytes: {e}"))?;
            if n == 0 {
                return Err(format!("closed after {got} of {} bytes", want.len()));
            }
            if buf[..n] != want[got..got + n] {
                let k = buf[..n].iter().zip(&want[got..]).position(|(a, b)| a != b);
                return Err(format!("byte {} differs", got + k.unwrap_or(0)));
            }
            hash.update(&buf[..n]);
            got += n;
            budget.moved.fetch_add(n as u64, Ordering::Relaxed);
            progress.store(got as u64, Ordering::Relaxed);
        }
        let mut rest = Vec::new();
        r.read_to_end(&mut rest)
            .map_err(|e| format!("after the body: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the body", rest.len()));
        }
        let (a, b) = (hash.finalize(), sha2::Sha256::digest(&want[..]));
        if a != b {
            return Err(format!("sha256 {a:x} instead of {b:x}"));
        }
        Ok(format!("{got} bytes, sha256 {a:x}"))
    })
}

/// Uploads `data` as the file `name` of a multipart form within `budget`;
/// the summary is the stored name the answer links to (`/files/NAME`).
pub fn upload_client(
    addr: SocketAddr,
    name: &str,
    data: Arc<Vec<u8>>,
    budget: Arc<Budget>,
) -> Load {
    let name = name.to_string();
    Load::spawn("upload", move |stop, progress| {
        let boundary = "ringtail-upgrade-test-7f3a9c2e5d1b";
        let pre = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        let post = format!("\r\n--{boundary}--\r\n");
        let total = pre.len() + data.len() + post.len();
        let mut s = connect(addr);
        write!(
            s,
            "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; \
             boundary={boundary}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n{pre}"
        )
        .map_err(|e| e.to_string())?;
        let mut sent = 0;
        while sent < data.len() {
            let n = budget.take((64 * 1024).min(data.len() - sent), stop)?;
            s.write_all(&data[sent..sent + n])
                .map_err(|e| format!("after {sent} bytes: {e}"))?;
            sent += n;
            budget.moved.fetch_add(n as u64, Ordering::Relaxed);
            progress.store(sent as u64, Ordering::Relaxed);
        }
        s.write_all(post.as_bytes()).map_err(|e| e.to_string())?;
        let resp = read_response(&mut BufReader::new(s), false)?;
        let page = String::from_utf8_lossy(&resp.body);
        if resp.status != 200 {
            return Err(format!("upload answered {}: {page}", resp.status));
        }
        let stored = page
            .split("href=\"/files/")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .ok_or_else(|| format!("no link in {page}"))?;
        if !page.contains(&format!("({} bytes)", data.len())) {
            return Err(format!(
                "the answer does not say {} bytes: {page}",
                data.len()
            ));
        }
        Ok(stored.to_string())
    })
}

// ----- the Python WebSocket clients ---------------------------------------------

/// `tests/python/upgrade_clients.py`: echo (with and without
/// permessage-deflate, fragmented messages among them) and chat clients.
#[derive(Debug)]
pub struct PyClients {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    /// The latest per-client progress, the final line, and stderr.
    state: Arc<Mutex<PyState>>,
}

#[derive(Debug, Default)]
struct PyState {
    ready: bool,
    counts: Vec<u64>,
    last: Option<String>,
    stderr: String,
}

impl PyClients {
    /// Starts them and waits (bounded) until every handshake is done.
    pub fn start(http: SocketAddr, plain: usize, deflate: usize, chat: usize) -> PyClients {
        Self::start_with(&format!("ws://{http}"), plain, deflate, chat, &[])
    }

    /// The same over TLS: `wss://HOST:PORT` (`host` must be a name of the
    /// server's certificate, `ca` the file of the CA that signed it), with
    /// `https` HTTPS keep-alive clients after the WebSocket ones.
    pub fn start_tls(
        host: &str,
        https_addr: SocketAddr,
        ca: &Path,
        (plain, deflate, chat, https): (usize, usize, usize, usize),
    ) -> PyClients {
        let base = format!("wss://{host}:{}", https_addr.port());
        let extra = [ca.to_str().unwrap().to_string(), https.to_string()];
        Self::start_with(&base, plain, deflate, chat, &extra)
    }

    fn start_with(
        base: &str,
        plain: usize,
        deflate: usize,
        chat: usize,
        extra: &[String],
    ) -> PyClients {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/upgrade_clients.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(base)
            .args([plain, deflate, chat].map(|n| n.to_string()))
            // Its own bound on the whole run.
            .arg("120")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let state = Arc::new(Mutex::new(PyState::default()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        {
            let state = state.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut st = state.lock().unwrap();
                    if line == "READY" {
                        st.ready = true;
                    } else if let Some(p) = line.strip_prefix("P ") {
                        st.counts = serde_json::from_str(p).unwrap_or_default();
                    } else {
                        st.last = Some(line);
                    }
                }
            });
        }
        {
            let state = state.clone();
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = BufReader::new(err).read_to_string(&mut s);
                state.lock().unwrap().stderr = s;
            });
        }
        let mut py = PyClients {
            stdin: child.stdin.take(),
            child,
            state,
        };
        let deadline = Instant::now() + WAIT;
        while !py.state.lock().unwrap().ready {
            py.check_alive();
            assert!(
                Instant::now() < deadline,
                "the Python clients did not connect"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        py
    }

    fn check_alive(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            // Let the readers finish.
            std::thread::sleep(Duration::from_millis(200));
            let s = self.state.lock().unwrap();
            panic!(
                "the Python clients ended early ({st}): {:?}\n{}",
                s.last, s.stderr
            );
        }
    }

    /// Messages checked so far, per client.
    pub fn counts(&mut self) -> Vec<u64> {
        self.check_alive();
        self.state.lock().unwrap().counts.clone()
    }

    /// Tells them to stop and waits (bounded) for the verdict: the JSON
    /// summary of `OK <json>`.
    pub fn stop(mut self) -> serde_json::Value {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "the Python clients did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The stdout reader sees the last line before end of file.
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.state.lock().unwrap();
            if let Some(last) = &s.last {
                assert!(
                    status.success(),
                    "the Python clients failed ({status}): {last}\n{}",
                    s.stderr
                );
                let json = last
                    .strip_prefix("OK ")
                    .unwrap_or_else(|| panic!("the Python clients said {last:?}\n{}", s.stderr));
                return serde_json::from_str(json).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "the Python clients ended ({status}) without a verdict\n{}",
                s.stderr
            );
            drop(s);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PyClients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until every load client and every Python client has
/// made progress beyond where it was when this was called — i.e. each is
/// being served (after an upgrade: by the new process).
pub fn wait_progress(loads: &mut [&mut Load], py: &mut PyClients, what: &str) {
    let before: Vec<u64> = loads.iter().map(|l| l.progress()).collect();
    let py_before = py.counts();
    let deadline = Instant::now() + WAIT;
    loop {
        for l in loads.iter_mut() {
            l.check_alive();
        }
        let now: Vec<u64> = loads.iter().map(|l| l.progress()).collect();
        let py_now = py.counts();
        let loads_moved = now.iter().zip(&before).all(|(a, b)| a > b);
        let py_moved =
            py_now.len() == py_before.len() && py_now.iter().zip(&py_before).all(|(a, b)| a > b);
        if loads_moved && py_moved {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not every client made progress in {WAIT:?}: {:?} {before:?} -> {now:?}, \
             Python {py_before:?} -> {py_now:?}",
            loads.iter().map(|l| l.name).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ----- a WebSocket message held half-sent ---------------------------------------

/// A WebSocket client written by hand, to hold one text message split at
/// awkward places across upgrades: three fragments (a two-byte character
/// split between the first two), the stream cut inside the second frame's
/// header and inside the third frame's payload.
#[derive(Debug)]
pub struct HeldWs {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    bytes: Vec<u8>,
    cuts: [usize; 2],
    stage: usize,
}

/// What the held message says, whole.
pub const HELD_WS_TEXT: &str = "first-é-second-third";

impl HeldWs {
    /// Connects, completes the handshake on `/ws/echo` (no extension), and
    /// sends the message up to the first cut.
    pub fn open(addr: SocketAddr) -> HeldWs {
        let s = connect(addr);
        let mut h = HeldWs {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            bytes: Vec::new(),
            cuts: [0, 0],
            stage: 0,
        };
        h.writer
            .write_all(
                b"GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        let r = read_response(&mut h.reader, false).unwrap();
        assert_eq!(r.status, 101, "{r:?}");
        assert_eq!(
            r.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        let text = HELD_WS_TEXT.as_bytes();
        let e = HELD_WS_TEXT.find('é').unwrap();
        let first = frame(false, 0x1, &text[..e + 1]);
        let second = frame(false, 0x0, &text[e + 1..e + 10]);
        let third = frame(true, 0x0, &text[e + 10..]);
        h.cuts = [first.len() + 1, first.len() + second.len() + 8];
        h.bytes = [first, second, third].concat();
        h.writer.write_all(&h.bytes[..h.cuts[0]]).unwrap();
        h
    }

    /// Sends the next part; after the last one, reads the echo and checks
    /// it is the whole message, once.
    pub fn next(&mut self) {
        self.stage += 1;
        match self.stage {
            1 => self
                .writer
                .write_all(&self.bytes[self.cuts[0]..self.cuts[1]])
                .unwrap(),
            2 => {
                self.writer.write_all(&self.bytes[self.cuts[1]..]).unwrap();
                let (op, msg) = self.read_message();
                assert_eq!(
                    op, 0x1,
                    "the held WebSocket message came back as opcode {op}"
                );
                assert_eq!(
                    String::from_utf8_lossy(&msg),
                    HELD_WS_TEXT,
                    "the held WebSocket message"
                );
            }
            _ => panic!("the held WebSocket message is complete"),
        }
    }

    /// Reads one whole message (skipping pings and pongs).
    fn read_message(&mut self) -> (u8, Vec<u8>) {
        let mut op = None;
        let mut out = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.reader
                .read_exact(&mut h)
                .expect("echo of the held message");
            let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            assert_eq!(h[0] & 0x70, 0, "RSV bits set without an extension");
            assert_eq!(h[1] & 0x80, 0, "a server frame is not masked");
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.reader.read_exact(&mut b).unwrap();
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.reader.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0; len];
            self.reader.read_exact(&mut payload).unwrap();
            match opcode {
                0x9 | 0xa => continue,
                0x8 => panic!("closed instead of echoing the held message: {payload:?}"),
                0x0 => assert!(op.is_some(), "a continuation first"),
                o => {
                    assert!(op.is_none(), "a new message inside another");
                    op = Some(o);
                }
            }
            out.extend_from_slice(&payload);
            if fin {
                return (op.unwrap(), out);
            }
        }
    }
}

/// A masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
    assert!(payload.len() < 126);
    let mut f = vec![(u8::from(fin) << 7) | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}
