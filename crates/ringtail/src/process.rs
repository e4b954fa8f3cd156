//! The serving process: its event loops, what may ask things of them (the
//! control socket, signals), and the two ways it starts — fresh, binding
//! its listeners, or taking over from an older process (`upgrade.rs`).
//!
//! One thing at a time is done to the loops: an upgrade holds the loops'
//! lock from start to end, and a shutdown signal that arrives meanwhile is
//! carried out after it (by this process after a rollback, by the new one
//! after a takeover). An upgrade is refused once a graceful shutdown began.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use network_server::{FileRootOptions, Protocol, Server};
use serde::Serialize;

use crate::app::{Ringtail, Roots};
use crate::config::Settings;
use crate::hub::{Control, Hub};
use crate::loops::{self, Cmd, LoopHandle, Reply, Start};
use crate::upgrade::{self, Begin, Channel, Going, Hello, Imported, Kind, LoopPlan};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The addresses the first loop bound.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: std::net::SocketAddr,
    pub raw: Option<std::net::SocketAddr>,
    pub https: Option<std::net::SocketAddr>,
}

/// `ringtail ctl status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub pid: u32,
    pub version: &'static str,
    pub build: String,
    pub loops: usize,
    /// Open clients by kind, as the loops last reported (every second).
    pub connections: Connections,
    pub uptime_s: f64,
    pub upgrading: bool,
    pub shutting_down: bool,
}

/// Open clients by kind.
#[derive(Debug, Serialize)]
pub struct Connections {
    pub http: usize,
    pub websocket: usize,
    pub raw: usize,
}

/// A successful `ringtail ctl upgrade`.
#[derive(Debug, Serialize)]
pub struct UpgradeReport {
    pub ok: bool,
    pub old_pid: u32,
    pub new_pid: u32,
    pub build: String,
    pub connections: usize,
    /// From the moment this process began to pause its loops to the
    /// moment the new one had resumed all it took over.
    pub pause_ms: f64,
    /// From the request to the new process's confirmation.
    pub total_ms: f64,
    /// The snapshots' size.
    pub snapshot_bytes: usize,
    /// Where the pause went.
    pub phases: Phases,
}

/// The parts of an upgrade's pause, in milliseconds.
#[derive(Debug, Serialize)]
pub struct Phases {
    /// Every loop quiesced (this process).
    pub quiesce_ms: f64,
    /// Every loop exported (this process).
    pub export_ms: f64,
    /// Snapshots and descriptors sent and received.
    pub transfer_ms: f64,
    /// Every snapshot imported (the new process).
    pub import_ms: f64,
    /// `Imported` → `Commit` received.
    pub commit_ms: f64,
    /// Every imported loop resumed (the new process).
    pub resume_ms: f64,
}

/// Counts live loop threads; the main thread waits for none to be left.
#[derive(Debug, Default)]
pub struct Alive {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Alive {
    fn started(&self) {
        *self.count.lock().unwrap() += 1;
    }

    fn ended(&self) {
        *self.count.lock().unwrap() -= 1;
        self.changed.notify_all();
    }

    fn wait_none(&self) {
        let mut n = self.count.lock().unwrap();
        while *n > 0 {
            n = self.changed.wait(n).unwrap();
        }
    }
}

/// The process.
pub struct Process {
    hub: Arc<Hub>,
    settings: Arc<Settings>,
    /// The binary this process was started from, and its arguments.
    exe: PathBuf,
    args: Vec<OsString>,
    started: Instant,
    bound: Bound,
    loops: Mutex<Vec<LoopHandle>>,
    alive: Arc<Alive>,
    /// A copy of the control socket, handed to the new process.
    control: Option<OwnedFd>,
    upgrading: AtomicBool,
    shutting_down: AtomicBool,
    shutdown_pending: AtomicBool,
    /// Set at the commit of an upgrade: the new process owns everything.
    handed: AtomicBool,
    new_pid: AtomicU32,
    /// Set once the upgrade's requester has its answer (the process may
    /// then exit).
    answered: (Mutex<bool>, Condvar),
}

/// Builds loop `index`: its server, listeners (the first loop binds, the
/// others reuse its resolved addresses), hub eventfd and served roots.
pub fn build_loop(
    settings: &Settings,
    index: usize,
    hub: &Arc<Hub>,
    bound: Option<&Bound>,
) -> Result<(Server, Ringtail, Bound), BoxError> {
    let mut server = Server::new(settings.server.clone())?;
    // The first loop makes sure nobody listens on the addresses yet (unless
    // sharing was asked for); the others join its listeners.
    let exclusive = bound.is_none() && !settings.reuse_port;
    let http_addr = bound.map_or(settings.addr, |b| b.http);
    let http = listen(&mut server, http_addr, Protocol::Http, exclusive)?;
    let mut raw = None;
    if let Some(addr) = bound.map_or(settings.raw_echo, |b| b.raw) {
        let l = listen(&mut server, addr, Protocol::Raw, exclusive)?;
        raw = Some(server.local_addr(l));
    }
    let mut https = None;
    let tls_addr = settings.tls.as_ref().map(|t| t.addr);
    if let Some(addr) = bound.map_or(tls_addr, |b| b.https) {
        let l = listen(&mut server, addr, Protocol::Https, exclusive)?;
        https = Some(server.local_addr(l));
    }
    let this = Bound {
        http: server.local_addr(http),
        raw,
        https,
    };
    let mut ctx = server.ctx();
    let hub_event = ctx.eventfd_open()?;
    ctx.eventfd_prepare(hub_event, 0)?;
    hub.register(index, ctx.eventfd_trigger_handle(hub_event)?);
    let uploads = ctx.upload_dir_open(&settings.upload_dir)?;
    let uploaded_files = ctx.file_root_open(&settings.upload_dir, FileRootOptions::default())?;
    let static_root = match &settings.root {
        Some(root) => Some(ctx.file_root_open(
            root,
            FileRootOptions {
                dotfiles: settings.dotfiles,
                ..Default::default()
            },
        )?),
        None => None,
    };
    let roots = Roots {
        uploads,
        uploaded_files,
        static_root,
    };
    let app = Ringtail::new(
        index,
        hub.clone(),
        hub_event,
        roots,
        settings.upload_dir.clone(),
        settings.grace,
    );
    Ok((server, app, this))
}

/// Listens on `addr` with `SO_REUSEPORT`; `exclusive` refuses an address
/// something already listens on (another ringtail included).
fn listen(
    server: &mut Server,
    addr: std::net::SocketAddr,
    protocol: Protocol,
    exclusive: bool,
) -> Result<network_server::ListenerId, String> {
    let r = if exclusive {
        server.listen_reuseport_exclusive(addr, protocol)
    } else {
        server.listen_reuseport(addr, protocol)
    };
    r.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse if exclusive => format!(
            "{addr}: address already in use (another process listens there; \
             --reuse-port to share it)"
        ),
        std::io::ErrorKind::AddrInUse => {
            format!("{addr}: address already in use (by a listener that does not share it with us)")
        }
        // "cannot listen on ADDR: …" (network_server names the address).
        _ => e.to_string(),
    })
}

/// Spawns loop `index` building itself; `bound_tx` gets its addresses.
fn spawn_built(
    settings: &Arc<Settings>,
    hub: &Arc<Hub>,
    alive: &Arc<Alive>,
    index: usize,
    bound: Option<Bound>,
    bound_tx: Option<std::sync::mpsc::Sender<Bound>>,
) -> Result<LoopHandle, BoxError> {
    let (settings, hub) = (settings.clone(), hub.clone());
    let build = Box::new(move || {
        let (server, app, b) =
            build_loop(&settings, index, &hub, bound.as_ref()).map_err(|e| e.to_string())?;
        if let Some(tx) = bound_tx {
            let _ = tx.send(b);
        }
        Ok((server, app))
    });
    spawn(alive, index, Start::Build(build))
}

fn spawn(alive: &Arc<Alive>, index: usize, start: Start) -> Result<LoopHandle, BoxError> {
    alive.started();
    let a = alive.clone();
    match LoopHandle::spawn(index, start, Box::new(move || a.ended())) {
        Ok(h) => Ok(h),
        Err(e) => {
            alive.ended();
            Err(e.into())
        }
    }
}

/// Waits for a loop's `Started`: its connection count.
fn started(h: &LoopHandle) -> Result<usize, String> {
    match h.reply(Duration::from_secs(60))? {
        Reply::Started(r) => r,
        other => Err(format!("an event loop answered {other:?}")),
    }
}

/// `ringtail serve` without an older process: bind and serve.
pub fn serve_fresh(settings: Settings) -> Result<(), BoxError> {
    let settings = Arc::new(settings);
    let threads = settings.threads;
    let hub = Arc::new(Hub::new(threads, settings.hub_inbox_limit));
    start_cluster(&settings, &hub, None)?;
    let alive = Arc::new(Alive::default());
    // The control socket first: a path a running server answers on is
    // refused before any address is bound.
    let control = match &settings.control {
        Some(path) => Some(crate::control::open(path)?),
        None => None,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let first = spawn_built(&settings, &hub, &alive, 0, None, Some(tx))?;
    let mut handles = vec![first];
    if let Err(e) = started(&handles[0]) {
        return Err(e.into());
    }
    let bound = rx
        .recv()
        .map_err(|_| "the first event loop failed to start")?;
    for i in 1..threads {
        handles.push(spawn_built(&settings, &hub, &alive, i, Some(bound), None)?);
    }
    let mut failed = None;
    for h in &handles[1..] {
        if let Err(e) = started(h) {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        // Stop the loops that did start.
        for i in 0..threads {
            hub.request(i, Control::Shutdown);
        }
        alive.wait_none();
        return Err(format!("an event loop failed to start: {e}").into());
    }
    // The pid file is written, and the signals and the control socket are
    // taken, before the address is logged: whoever waits for that line
    // finds them (a SIGHUP sent then reloads, and does not end the process).
    let process = Process::new(settings, hub, alive, bound, handles, control.as_ref())?;
    process.clone().start_services(control)?;
    tracing::info!(addr = %bound.http, threads, "serving HTTP and WebSocket: http://{}/ (try /hello, /chat)", bound.http);
    if let (Some(addr), Some(tls)) = (bound.https, &process.settings.tls) {
        log_tls(&tls.tls);
        tracing::info!(%addr, "serving HTTPS and WSS: https://{addr}/");
    }
    if let Some(raw) = bound.raw {
        tracing::info!(addr = %raw, "serving RAW TCP echo");
    }
    notify("READY=1");
    process.run_to_end()
}

/// `ringtail serve` started by an older process for an upgrade: take its
/// loops over (see `upgrade.rs`), then serve.
pub fn serve_takeover(settings: Settings) -> Result<(), BoxError> {
    let chan = Channel::from_stdin()?;
    let settings = Arc::new(settings);
    let hub = Arc::new(Hub::new(settings.threads, settings.hub_inbox_limit));
    let alive = Arc::new(Alive::default());
    // Every loop that may take over one of the old process's gets its
    // thread and ring now, before the old process pauses.
    let mut handles = Vec::new();
    let mut feeds = Vec::new();
    for i in 0..settings.threads {
        let (tx, rx) = std::sync::mpsc::channel();
        let (hub_i, s) = (hub.clone(), settings.clone());
        let start = Start::Import {
            config: settings.server.clone(),
            data: rx,
            app: Box::new(move || Ringtail::for_import(i, hub_i, s.upload_dir.clone(), s.grace)),
        };
        handles.push(spawn(&alive, i, start)?);
        feeds.push(tx);
    }
    let hello = Hello {
        protocol: upgrade::PROTOCOL,
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        build: crate::build_id::get(),
        threads: settings.threads,
    };
    let t = Duration::from_secs(60);
    chan.send_json(Kind::Hello, &hello, t)?;
    let begin: Begin = chan.recv_json(Kind::Begin, t)?;
    let timeout = Duration::from_millis(begin.timeout_ms.max(1000));
    let refuse = |why: String| -> BoxError {
        let _ = chan.send(Kind::Refused, why.as_bytes(), &[], timeout);
        why.into()
    };
    let k = begin.loops.len();
    if k == 0 || settings.threads < k {
        return Err(refuse(format!(
            "the new process runs {} loops and cannot take over {k}",
            settings.threads
        )));
    }
    let bytes: usize = begin.loops.iter().map(|l| l.bytes).sum();
    let nfds: usize = begin.loops.iter().map(|l| l.fds).sum::<usize>() + begin.control as usize;
    // The cluster bridge goes on under the old process's instance id, so
    // other processes count one set of chat members, not two, and what the
    // old process published is still recognised as its own.
    start_cluster(&settings, &hub, begin.cluster_id.map(u64::to_le_bytes))?;
    let (data, mut fds) = chan.recv_snapshots(bytes, nfds, timeout).map_err(refuse)?;
    let received_at_ns = upgrade::monotonic_ns();
    let control = if begin.control { fds.pop() } else { None };
    let (mut at, mut fds) = (0, fds.into_iter());
    for (plan, feed) in begin.loops.iter().zip(&feeds) {
        let part = (
            data[at..at + plan.bytes].to_vec(),
            fds.by_ref().take(plan.fds).collect(),
        );
        at += plan.bytes;
        let _ = feed.send(part);
    }
    // Loops beyond the old process's end here (extra ones are built after
    // the commit, with listeners).
    drop(feeds);
    handles.truncate(k);
    let mut connections = 0;
    let mut failed = None;
    for h in &handles {
        match started(h) {
            Ok(n) => connections += n,
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        release(&handles);
        return Err(refuse(e));
    }
    let imported_at_ns = upgrade::monotonic_ns();
    if let Err(e) = chan.send_json(Kind::Imported, &Imported { connections }, timeout) {
        release(&handles);
        return Err(format!("cannot tell the old process: {e}").into());
    }
    // Until the commit the old process may still roll back: nothing here
    // has touched a socket.
    match chan.recv(timeout) {
        Ok(m) if m.kind == Kind::Commit => {}
        other => {
            release(&handles);
            let why = match other {
                Ok(m) => format!("expected Commit, got {:?}", m.kind),
                Err(e) => e.to_string(),
            };
            return Err(format!("the old process did not commit ({why}); it serves on").into());
        }
    }
    let committed_at_ns = upgrade::monotonic_ns();
    for (i, plan) in begin.loops.iter().enumerate() {
        let msgs = plan
            .messages
            .iter()
            .map(|(t, m)| (Arc::<str>::from(t.as_str()), Arc::<[u8]>::from(&m[..])))
            .collect();
        hub.requeue(i, msgs);
    }
    if let Err(e) = loops::all_done(&handles, || Cmd::Resume, timeout) {
        tracing::error!(error = %e, "an imported loop did not resume");
    }
    let resumed_at_ns = upgrade::monotonic_ns();
    let bound = Bound {
        http: begin.http,
        raw: begin.raw,
        https: begin.https,
    };
    for i in k..settings.threads {
        match spawn_built(&settings, &hub, &alive, i, Some(bound), None) {
            Ok(h) => {
                if let Err(e) = started(&h) {
                    tracing::error!(loop_ = i, error = %e, "an extra event loop failed to start");
                }
                handles.push(h);
            }
            Err(e) => tracing::error!(loop_ = i, error = %e, "an extra event loop failed to start"),
        }
    }
    let control = control.map(UnixListener::from);
    let process = Process::new(settings, hub, alive, bound, handles, control.as_ref())?;
    process.clone().start_services(control)?;
    let pid = std::process::id();
    notify(&format!("MAINPID={pid}\nREADY=1"));
    let going = Going {
        pid,
        build: crate::build_id::get(),
        connections,
        received_at_ns,
        imported_at_ns,
        committed_at_ns,
        resumed_at_ns,
    };
    if let Err(e) = chan.send_json(Kind::Going, &going, timeout) {
        tracing::warn!(error = %e, "cannot confirm to the old process (it may have exited)");
    }
    drop(chan);
    let pause_ms = resumed_at_ns.saturating_sub(begin.paused_at_ns) as f64 / 1e6;
    tracing::info!(
        connections,
        old_pid = begin.old_pid,
        pause_ms,
        "upgraded: took over {connections} connections from pid {}; serving HTTP and WebSocket: http://{}/",
        begin.old_pid,
        begin.http
    );
    process.run_to_end()
}

/// Says which certificates are served and which path encrypts.
fn log_tls(tls: &crate::tls::Tls) {
    for c in tls.certificates() {
        tracing::info!(
            cert = %c.cert.display(),
            names = ?c.names,
            not_after = c.not_after.as_deref().unwrap_or("?"),
            default = c.default,
            "TLS certificate"
        );
    }
    if tls.ktls().is_available() {
        tracing::info!(
            "TLS: records are encrypted by rustls in user space (the kernel offers kTLS, \
             but handing it the session keys is not built yet)"
        );
    } else {
        tracing::info!(
            "TLS: records are encrypted by rustls in user space (no kTLS: {})",
            tls.ktls()
        );
    }
}

/// Starts the bridge to other processes (`--cluster`): messages from them
/// go into every loop's inbox; a change of the cluster-wide chat count
/// wakes every loop to announce it.
fn start_cluster(settings: &Settings, hub: &Arc<Hub>, id: Option<[u8; 8]>) -> Result<(), BoxError> {
    let Some(url) = &settings.cluster else {
        return Ok(());
    };
    let deliver = {
        let hub = hub.clone();
        Box::new(move |topic: &str, msg: &[u8]| hub.publish_all(topic, msg))
    };
    let on_presence = {
        let hub = hub.clone();
        Box::new(move || {
            for i in 0..hub.loops() {
                hub.request(i, Control::Count);
            }
        })
    };
    let c = crate::cluster::Cluster::start(url.clone(), id, deliver, on_presence)?;
    tracing::info!(addr = %url.addr, db = url.db, "cluster: sharing topics through Redis");
    hub.set_cluster(c);
    Ok(())
}

/// Releases imported loops that will not serve (this process's copies of
/// the descriptors close; the old process keeps its own).
fn release(handles: &[LoopHandle]) {
    if let Err(e) = loops::all_done(handles, || Cmd::Release, Duration::from_secs(30)) {
        tracing::warn!(error = %e, "an imported loop was not released");
    }
}

impl Process {
    fn new(
        settings: Arc<Settings>,
        hub: Arc<Hub>,
        alive: Arc<Alive>,
        bound: Bound,
        handles: Vec<LoopHandle>,
        control: Option<&UnixListener>,
    ) -> Result<Arc<Process>, BoxError> {
        let exe = std::env::current_exe()?;
        let control = match control {
            Some(l) => Some(l.as_fd().try_clone_to_owned()?),
            None => None,
        };
        if let Some(path) = &settings.pid_file {
            write_pid_file(path)?;
        }
        if let Some(t) = &settings.tls {
            hub.set_tls(t.tls.clone());
        }
        Ok(Arc::new(Process {
            hub,
            settings,
            exe,
            args: std::env::args_os().skip(1).collect(),
            started: Instant::now(),
            bound,
            loops: Mutex::new(handles),
            alive,
            control,
            upgrading: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            shutdown_pending: AtomicBool::new(false),
            handed: AtomicBool::new(false),
            new_pid: AtomicU32::new(0),
            answered: (Mutex::new(false), Condvar::new()),
        }))
    }

    /// The binary this process was started from (`SIGUSR2` and
    /// `ctl upgrade` without `--binary` run it again, read anew from disk).
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Whether an upgrade committed: the new process owns everything.
    pub fn handed_over(&self) -> bool {
        self.handed.load(Ordering::Acquire)
    }

    /// `ringtail ctl status`.
    pub fn status(&self) -> Status {
        let reports = self.hub.reports();
        Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION"),
            build: crate::build_id::get(),
            loops: self.hub.loops(),
            connections: Connections {
                http: reports.iter().map(|r| r.clients.http).sum(),
                websocket: reports.iter().map(|r| r.clients.websocket).sum(),
                raw: reports.iter().map(|r| r.clients.raw).sum(),
            },
            uptime_s: self.started.elapsed().as_secs_f64(),
            upgrading: self.upgrading.load(Ordering::Relaxed),
            shutting_down: self.shutting_down.load(Ordering::Relaxed),
        }
    }

    /// The ticker, the signal thread and the control socket's thread.
    fn start_services(self: Arc<Self>, control: Option<UnixListener>) -> Result<(), BoxError> {
        {
            let hub = self.hub.clone();
            std::thread::Builder::new()
                .name("ringtail-ticker".into())
                .spawn(move || loop {
                    // Wakes every loop once a second through its eventfd
                    // (the loops report their counters and send the clock
                    // to chat clients).
                    hub.tick_all();
                    if let Some(c) = hub.cluster() {
                        c.announce_presence();
                    }
                    std::thread::sleep(Duration::from_secs(1));
                })?;
        }
        let mut wanted = vec![
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGUSR2,
        ];
        // SIGHUP reloads the certificates; without TLS it keeps its
        // default action (the process ends, as when its terminal goes).
        if self.settings.tls.is_some() {
            wanted.push(signal_hook::consts::SIGHUP);
        }
        let mut signals = signal_hook::iterator::Signals::new(wanted)?;
        {
            let process = self.clone();
            std::thread::Builder::new()
                .name("ringtail-signals".into())
                .spawn(move || {
                    let mut stops = 0;
                    for sig in signals.forever() {
                        if sig == signal_hook::consts::SIGHUP {
                            tracing::info!("SIGHUP: reloading the TLS certificates");
                            // The outcome is logged by `reload_tls`.
                            let _ = process.reload_tls();
                            continue;
                        }
                        if sig == signal_hook::consts::SIGUSR2 {
                            let p = process.clone();
                            let _ = std::thread::Builder::new()
                                .name("ringtail-upgrade".into())
                                .spawn(move || {
                                    tracing::info!("SIGUSR2: upgrading to {}", p.exe.display());
                                    // The outcome is logged by `upgrade`.
                                    let _ = p.upgrade(&p.exe.clone(), None);
                                    p.answered();
                                });
                            continue;
                        }
                        stops += 1;
                        if stops > 1 {
                            tracing::warn!(sig, "second signal: exiting now");
                            std::process::exit(1);
                        }
                        tracing::info!(
                            sig,
                            "signal: shutting down gracefully (a second signal exits at once)"
                        );
                        process.request_shutdown();
                    }
                })?;
        }
        if let Some(l) = control {
            crate::control::spawn(l, self.clone())?;
        }
        Ok(())
    }

    /// Reads the TLS certificate files again and serves the new
    /// certificates to handshakes from now on (open connections go on);
    /// on failure the old ones stay. Logged either way.
    pub fn reload_tls(&self) -> Result<Vec<crate::tls::CertInfo>, String> {
        let Some(t) = &self.settings.tls else {
            return Err("TLS is not configured (no --tls-cert): nothing to reload".into());
        };
        match t.tls.reload() {
            Ok(certs) => {
                for c in &certs {
                    tracing::info!(
                        cert = %c.cert.display(),
                        names = ?c.names,
                        not_after = c.not_after.as_deref().unwrap_or("?"),
                        "TLS certificate reloaded"
                    );
                }
                Ok(certs)
            }
            Err(e) => {
                tracing::warn!("TLS reload failed: {e}");
                Err(e)
            }
        }
    }

    /// A graceful shutdown of every loop, now or after the upgrade in
    /// progress.
    fn request_shutdown(&self) {
        self.shutdown_pending.store(true, Ordering::SeqCst);
        let Ok(_loops) = self.loops.try_lock() else {
            tracing::info!("an upgrade is in progress: the shutdown follows it");
            return;
        };
        if !self.shutdown_pending.swap(false, Ordering::SeqCst) {
            return;
        }
        self.shutdown_now();
    }

    /// With the loops' lock held (or an upgrade over).
    fn shutdown_now(&self) {
        if self.handed_over() {
            let pid = self.new_pid.load(Ordering::Relaxed);
            tracing::info!(pid, "passing the shutdown to the new process");
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            return;
        }
        self.shutting_down.store(true, Ordering::SeqCst);
        for i in 0..self.hub.loops() {
            self.hub.request(i, Control::Shutdown);
        }
    }

    /// Upgrades to `binary` (see `upgrade.rs`): the report, or why not
    /// (this process then serves on).
    pub fn upgrade(&self, binary: &Path, threads: Option<usize>) -> Result<UpgradeReport, String> {
        let r = {
            let Ok(mut loops) = self.loops.try_lock() else {
                return Err("an upgrade is already in progress".into());
            };
            if self.shutting_down.load(Ordering::SeqCst) {
                return Err("the server is shutting down gracefully; no upgrade now".into());
            }
            if self.handed_over() {
                return Err("this process has already handed over to a new one".into());
            }
            self.upgrading.store(true, Ordering::SeqCst);
            // Whoever asked answers this upgrade (an earlier one's answer
            // does not count).
            *self.answered.0.lock().unwrap() = false;
            let r = self.hand_over(&mut loops, binary, threads);
            self.upgrading.store(false, Ordering::SeqCst);
            r
        };
        match &r {
            Err(why) if self.handed_over() => {
                tracing::warn!("upgrade committed but not confirmed: {why}; exiting")
            }
            Err(why) => tracing::warn!("upgrade failed, serving on: {why}"),
            Ok(_) => {}
        }
        if self.shutdown_pending.swap(false, Ordering::SeqCst) {
            self.shutdown_now();
        }
        r
    }

    /// Called by whoever answers the upgrade's requester, once answered.
    pub fn answered(&self) {
        *self.answered.0.lock().unwrap() = true;
        self.answered.1.notify_all();
    }

    fn hand_over(
        &self,
        loops: &mut [LoopHandle],
        binary: &Path,
        threads: Option<usize>,
    ) -> Result<UpgradeReport, String> {
        let t0 = Instant::now();
        let timeout = self.settings.upgrade_timeout;
        let (chan, theirs) = Channel::pair().map_err(|e| format!("socket pair: {e}"))?;
        let mut child = {
            // The command (and with it this process's copy of the new
            // process's end) is dropped right after the spawn, so the
            // new process's exit closes the pair.
            let mut cmd = Command::new(binary);
            cmd.args(args_with_threads(&self.args, threads))
                .env(upgrade::ENV, "1")
                .stdin(Stdio::from(theirs));
            cmd.spawn()
                .map_err(|e| format!("cannot start {}: {e}", binary.display()))?
        };
        tracing::info!(pid = child.id(), binary = %binary.display(), "upgrade: new process started");
        let hello: Hello = match chan.recv_json(Kind::Hello, timeout) {
            Ok(h) => h,
            Err(e) => {
                return Err(stop_child(
                    &mut child,
                    &chan,
                    format!("the new process did not start: {e}"),
                ))
            }
        };
        if hello.protocol != upgrade::PROTOCOL {
            return Err(stop_child(
                &mut child,
                &chan,
                format!(
                    "the new process speaks upgrade protocol {}, this one {}",
                    hello.protocol,
                    upgrade::PROTOCOL
                ),
            ));
        }
        if hello.threads < loops.len() {
            return Err(stop_child(
                &mut child,
                &chan,
                format!(
                    "the new process would run {} loops, fewer than the {} it must take over \
                     (moving connections between loops is not supported)",
                    hello.threads,
                    loops.len()
                ),
            ));
        }
        let paused_at_ns = upgrade::monotonic_ns();
        let step = timeout + Duration::from_secs(10);
        if let Err(e) = loops::pause_all(&self.hub, loops, step) {
            return Err(stop_child(
                &mut child,
                &chan,
                format!("cannot quiesce: {e}"),
            ));
        }
        let quiesced_at_ns = upgrade::monotonic_ns();
        let rollback = |child: &mut Child, why: String| -> String {
            // The new process has touched no socket (no commit): this one
            // serves again at once, then sees the new one gone.
            loops::resume_all(loops, step);
            let why = stop_child(child, &chan, why);
            tracing::warn!("upgrade rolled back: {why}");
            why
        };
        let exports = match loops::export_all(loops, step) {
            Ok(e) => e,
            Err(e) => return Err(rollback(&mut child, format!("cannot export: {e}"))),
        };
        let exported_at_ns = upgrade::monotonic_ns();
        let connections: usize = exports.iter().map(|e| e.connections).sum();
        let snapshot_bytes: usize = exports.iter().map(|e| e.bytes.len()).sum();
        tracing::debug!(connections, "upgrade: loops quiesced and exported");
        let begin = Begin {
            old_pid: std::process::id(),
            loops: exports
                .iter()
                .enumerate()
                .map(|(i, e)| LoopPlan {
                    bytes: e.bytes.len(),
                    fds: e.fds.len(),
                    messages: self
                        .hub
                        .peek_inbox(i)
                        .into_iter()
                        .map(|(t, m)| (t.to_string(), m.to_vec()))
                        .collect(),
                })
                .collect(),
            http: self.bound.http,
            raw: self.bound.raw,
            https: self.bound.https,
            control: self.control.is_some(),
            timeout_ms: timeout.as_millis() as u64,
            paused_at_ns,
            cluster_id: self.hub.cluster().map(|c| u64::from_le_bytes(c.id())),
        };
        let sent = chan.send_json(Kind::Begin, &begin, timeout).and_then(|()| {
            let borrowed: Vec<Vec<BorrowedFd<'_>>> = exports
                .iter()
                .map(|e| {
                    e.fds
                        .iter()
                        .map(|&fd| {
                            // SAFETY: every descriptor of `exports` belongs
                            // to a loop's quiesced server, which keeps it
                            // open until that loop is told to resume or
                            // release; no loop is told either before this
                            // closure has returned and the borrows ended.
                            unsafe { BorrowedFd::borrow_raw(fd) }
                        })
                        .collect()
                })
                .collect();
            let parts: Vec<(&[u8], &[BorrowedFd<'_>])> = exports
                .iter()
                .zip(&borrowed)
                .map(|(e, b)| (&e.bytes[..], &b[..]))
                .collect();
            chan.send_snapshots(&parts, self.control.as_ref().map(|c| c.as_fd()), timeout)
        });
        if let Err(e) = sent {
            return Err(rollback(
                &mut child,
                format!("cannot hand the snapshots over: {e}"),
            ));
        }
        drop(exports);
        let sent_at_ns = upgrade::monotonic_ns();
        let imported: Imported = match chan.recv_json(Kind::Imported, timeout) {
            Ok(i) => i,
            Err(e) => {
                return Err(rollback(
                    &mut child,
                    format!("the new process did not take over: {e}"),
                ))
            }
        };
        if let Err(e) = chan.send(Kind::Commit, &[], &[], timeout) {
            // It cannot have received the commit, so it has touched nothing.
            return Err(rollback(&mut child, format!("cannot commit: {e}")));
        }
        // Committed: everything is the new process's.
        let new_pid = child.id();
        self.new_pid.store(new_pid, Ordering::Relaxed);
        self.handed.store(true, Ordering::Release);
        // The new process outlives this one: it is not waited for.
        drop(child);
        let going = chan.recv_json::<Going>(Kind::Going, timeout);
        // This process's copies of the descriptors close only now, so the
        // closing does not compete with the new process's resume.
        if let Err(e) = loops::all_done(loops, || Cmd::Release, step) {
            tracing::error!(error = %e, "a loop did not release its descriptors");
        }
        let going =
            going.map_err(|e| format!("committed, but the new process did not confirm: {e}"))?;
        let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
        let pause_ms = ms(paused_at_ns, going.resumed_at_ns);
        let phases = Phases {
            quiesce_ms: ms(paused_at_ns, quiesced_at_ns),
            export_ms: ms(quiesced_at_ns, exported_at_ns),
            transfer_ms: ms(exported_at_ns, going.received_at_ns.max(sent_at_ns)),
            import_ms: ms(going.received_at_ns, going.imported_at_ns),
            commit_ms: ms(going.imported_at_ns, going.committed_at_ns),
            resume_ms: ms(going.committed_at_ns, going.resumed_at_ns),
        };
        tracing::info!(
            new_pid,
            connections = imported.connections,
            pause_ms,
            "upgrade: pid {new_pid} took over; exiting"
        );
        Ok(UpgradeReport {
            ok: true,
            old_pid: std::process::id(),
            new_pid: going.pid,
            build: going.build,
            connections: going.connections,
            pause_ms,
            total_ms: t0.elapsed().as_secs_f64() * 1e3,
            snapshot_bytes,
            phases,
        })
    }

    /// Serves until every loop has ended (a graceful shutdown, or a
    /// handover); then cleans up what this process owns.
    fn run_to_end(self: Arc<Self>) -> Result<(), BoxError> {
        self.alive.wait_none();
        if self.handed_over() {
            // Let the upgrade's requester have its answer first.
            let (lock, cv) = &self.answered;
            let done = lock.lock().unwrap();
            let _ = cv
                .wait_timeout_while(done, Duration::from_secs(10), |d| !*d)
                .unwrap();
            return Ok(());
        }
        let mut first_err = None;
        for h in self.loops.lock().unwrap().iter_mut() {
            if let Err(e) = h.join() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(path) = &self.settings.control {
            let _ = std::fs::remove_file(path);
        }
        if let Some(path) = &self.settings.pid_file {
            if std::fs::read_to_string(path)
                .is_ok_and(|s| s.trim() == std::process::id().to_string())
            {
                let _ = std::fs::remove_file(path);
            }
        }
        tracing::info!("stopped");
        first_err.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// Kills the new process if it still runs, waits for it, and returns `why`
/// with how it ended.
fn stop_child(child: &mut Child, chan: &Channel, why: String) -> String {
    // Told why, a new process that still listens exits by itself (it has
    // touched nothing); one that does not within a second is killed.
    let _ = chan.send(
        Kind::Refused,
        why.as_bytes(),
        &[],
        Duration::from_millis(100),
    );
    let limit = Instant::now() + Duration::from_secs(1);
    let exited = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < limit => std::thread::sleep(Duration::from_millis(10)),
            _ => break None,
        }
    };
    let status = match exited {
        Some(s) => format!("it exited: {s}"),
        None => {
            let _ = child.kill();
            match child.wait() {
                Ok(s) => format!("it was killed: {s}"),
                Err(e) => format!("it could not be waited for: {e}"),
            }
        }
    };
    format!("{why} ({status})")
}

/// This process's arguments, with `--threads` replaced when asked.
fn args_with_threads(args: &[OsString], threads: Option<usize>) -> Vec<OsString> {
    let Some(n) = threads else {
        return args.to_vec();
    };
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a == "--threads" {
            skip = true;
            continue;
        }
        if a.to_string_lossy().starts_with("--threads=") {
            continue;
        }
        out.push(a.clone());
    }
    out.push("--threads".into());
    out.push(n.to_string().into());
    out
}

/// Writes this process's id to `path` (through a temporary file and a
/// rename, so a reader never sees half of it).
fn write_pid_file(path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, path)
}

/// Tells systemd (`NOTIFY_SOCKET`, `sd_notify(3)`) `state`; nothing without
/// it.
fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let r = (|| -> std::io::Result<()> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_replaced_in_every_spelling() {
        let args: Vec<OsString> = ["serve", "--threads", "2", "--addr", "x", "--threads=3"]
            .iter()
            .map(OsString::from)
            .collect();
        let out = args_with_threads(&args, Some(4));
        assert_eq!(out, ["serve", "--addr", "x", "--threads", "4"]);
        assert_eq!(args_with_threads(&args, None), args);
    }
}
