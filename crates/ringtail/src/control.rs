//! The control socket (`ringtail serve --control`) and its client
//! (`ringtail ctl`).
//!
//! One request per connection: a JSON line (`{"cmd":"status"}`,
//! `{"cmd":"upgrade","binary":…,"threads":…}`, `{"cmd":"reload-tls"}`),
//! one JSON line back (a failure: `{"ok":false,"reason":…}`). The
//! socket is a Unix stream socket with mode 0600 (in a 0700 directory for
//! the default path), and every connection's peer credentials
//! (`SO_PEERCRED`) must name this process's user: another user is closed on
//! without an answer. An upgrade hands the listening socket itself to the
//! new process, so the path keeps answering throughout.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::process::Process;

/// Longest request line.
const MAX_REQUEST: usize = 4096;
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `$XDG_RUNTIME_DIR/ringtail/control.sock`, else
/// `/tmp/ringtail-UID/control.sock`.
pub fn default_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("ringtail/control.sock"),
        _ => PathBuf::from(format!(
            "/tmp/ringtail-{}/control.sock",
            rustix::process::getuid().as_raw()
        )),
    }
}

/// A request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Upgrade {
        binary: Option<PathBuf>,
        threads: Option<usize>,
    },
    ReloadTls,
}

/// Opens the control socket at `path`: creates a missing parent directory
/// with mode 0700, refuses a path a running server answers on, replaces a
/// stale socket file, and sets mode 0600.
pub fn open(path: &Path) -> Result<UnixListener, String> {
    let what = |e: std::io::Error| format!("control socket {}: {e}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(what)?;
        }
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "control socket {}: a running server answers there",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(what)?;
    }
    let l = UnixListener::bind(path).map_err(what)?;
    // Between bind and chmod the socket has the umask's mode; the peer
    // credential check below refuses other users regardless.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(what)?;
    l.set_nonblocking(true).map_err(what)?;
    Ok(l)
}

/// Serves `listener` on a thread until the process has handed over (the
/// listener then belongs to the new process: this one's copy is closed).
pub fn spawn(listener: UnixListener, process: Arc<Process>) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("ringtail-control".into())
        .spawn(move || {
            while !process.handed_over() {
                let mut fds = [rustix::event::PollFd::new(
                    &listener,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 100_000_000,
                };
                if rustix::event::poll(&mut fds, Some(&timeout)).is_err() {
                    continue;
                }
                // Checked again between the wake-up and the accept: a
                // requester that was told an upgrade is done and asks
                // again at once must reach the new process, not this one
                // (whose copy of the listener is still open). Only a
                // connection that arrives in the instant between this check
                // and the accept is served here (status, or an upgrade
                // refused), which is harmless.
                if process.handed_over() {
                    break;
                }
                let Ok((stream, _)) = listener.accept() else {
                    continue;
                };
                if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                    busy.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let (process, busy) = (process.clone(), busy.clone());
                let spawned = std::thread::Builder::new()
                    .name("ringtail-ctl".into())
                    .spawn(move || {
                        serve_one(stream, &process);
                        busy.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    tracing::warn!("cannot start a control connection thread");
                }
            }
        })?;
    Ok(())
}

fn serve_one(stream: UnixStream, process: &Process) {
    let me = rustix::process::getuid();
    match rustix::net::sockopt::socket_peercred(&stream) {
        Ok(cred) if cred.uid == me => {}
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid.as_raw(),
                pid = cred.pid.as_raw_nonzero().get(),
                "control connection from another user refused"
            );
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "control connection without credentials refused");
            return;
        }
    }
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(REQUEST_TIMEOUT));
    let mut line = String::new();
    let mut reader = BufReader::new(std::io::Read::take(&stream, MAX_REQUEST as u64));
    let answer = match reader.read_line(&mut line) {
        Ok(0) => return,
        Ok(_) => match serde_json::from_str::<Request>(line.trim_end()) {
            Ok(Request::Status) => serde_json::to_value(process.status()).expect("plain data"),
            Ok(Request::Upgrade { binary, threads }) => {
                let binary = binary.unwrap_or_else(|| process.exe().to_path_buf());
                match process.upgrade(&binary, threads) {
                    Ok(report) => serde_json::to_value(report).expect("plain data"),
                    Err(reason) => serde_json::json!({"ok": false, "reason": reason}),
                }
            }
            Ok(Request::ReloadTls) => match process.reload_tls() {
                Ok(certificates) => serde_json::json!({"ok": true, "certificates": certificates}),
                Err(reason) => serde_json::json!({"ok": false, "reason": reason}),
            },
            Err(e) => serde_json::json!({"ok": false, "reason": format!("bad request: {e}")}),
        },
        Err(e) => {
            serde_json::json!({"ok": false, "reason": format!("cannot read the request: {e}")})
        }
    };
    let mut out = serde_json::to_vec(&answer).expect("plain data");
    out.push(b'\n');
    let _ = (&stream).write_all(&out);
    // After a handover the process exits once its requester has the answer.
    process.answered();
}

// ----- the client ---------------------------------------------------------------

/// `ringtail ctl`: talk to a running server.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The control socket [default: $XDG_RUNTIME_DIR/ringtail/control.sock,
    /// or /tmp/ringtail-UID/control.sock].
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    #[command(subcommand)]
    what: CtlCommand,
}

#[derive(Subcommand, Debug)]
enum CtlCommand {
    /// Print the server's state as JSON: pid, version, build id, loops,
    /// connections by kind (as of the last second), uptime.
    Status,
    /// Replace the running process by a new one (the binary it was started
    /// from, re-read from disk, unless --binary) without dropping a
    /// connection. Exits 0 once the new process serves; otherwise non-zero
    /// with the reason, the old process serving on.
    Upgrade {
        /// The binary to run [default: the path the server was started from].
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Event loops of the new process [default: the old one's setting];
        /// at least as many as the old process runs.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Read the TLS certificate and key files again (as SIGHUP does): new
    /// handshakes get the new certificates, open connections go on. Prints
    /// the certificates now served; exits non-zero with the reason if a
    /// file cannot be used (the old certificates are then kept).
    ReloadTls,
}

/// Runs `ringtail ctl`.
pub fn main(args: CtlArgs) -> ExitCode {
    let path = args.control.unwrap_or_else(default_path);
    let (request, timeout) = match args.what {
        CtlCommand::Status => (Request::Status, Duration::from_secs(10)),
        CtlCommand::ReloadTls => (Request::ReloadTls, Duration::from_secs(30)),
        CtlCommand::Upgrade { binary, threads } => {
            let binary = match binary.map(|b| std::path::absolute(&b)).transpose() {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("ringtail ctl: --binary: {e}");
                    return ExitCode::from(2);
                }
            };
            // The server bounds every step by --upgrade-timeout.
            (
                Request::Upgrade { binary, threads },
                Duration::from_secs(600),
            )
        }
    };
    let what = match request {
        Request::Upgrade { .. } => "upgrade failed",
        Request::ReloadTls => "reload-tls failed",
        Request::Status => "failed",
    };
    let answer = match ask(&path, &request, timeout) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ringtail ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{answer}");
    let ok = answer.get("ok").and_then(|v| v.as_bool()).unwrap_or(true);
    if !ok {
        let reason = answer
            .get("reason")
            .and_then(|v| v.as_str())
            .unwrap_or("no reason given");
        eprintln!("ringtail ctl: {what}: {reason}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Sends `request` to the server at `path`; its answer.
fn ask(path: &Path, request: &Request, timeout: Duration) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_vec(request).expect("plain data");
    line.push(b'\n');
    s.write_all(&line)
        .map_err(|e| format!("cannot send to {}: {e}", path.display()))?;
    let mut answer = String::new();
    BufReader::new(&s)
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from {}: {e}", path.display()))?;
    if answer.is_empty() {
        return Err(format!(
            "{} closed without answering (another user's server?)",
            path.display()
        ));
    }
    serde_json::from_str(answer.trim_end()).map_err(|e| format!("bad answer: {e}"))
}
