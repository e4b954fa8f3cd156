//! The server: [`Server`], `Core` (the server's state, held in parts with
//! one home each: `connections.rs`, `listeners.rs`, `timers.rs`,
//! `stats.rs`, `topics.rs`, …), the routing of event-manager completions
//! (by their `OpTag`, `op_tag.rs`) to connections and to the application,
//! the connection lifecycle (accepting, reading, writing, the close
//! sequence, the sweep, shutdown), and the RAW / eventfd / file paths of
//! [`Ctx`]. HTTP specifics are in `http.rs`; the outgoing queue in
//! `out_queue.rs`.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use event_manager::{Completion, CompletionKind, EventManager, OutBuf, Pfd, StopHandle};

use crate::app::{CloseReason, FileEvent};
use crate::connections::{
    ClientId, ClientKind, Conn, Connections, PauseReason, Phase, Proto, RecvState,
};
use crate::head::HeadCache;
use crate::http::RespState;
use crate::listeners::{
    bind_listener, bind_socket, peer_addr, set_nodelay, socket_addr, Listener, ListenerId,
    Listeners, Protocol,
};
use crate::op_tag::OpTag;
use crate::out_queue::{AppWrite, Owner};
use crate::stats::{ClientCounts, ServerStats};
use crate::timers::Timers;
use crate::{Application, Error, ServerConfig};

/// An eventfd opened with [`Ctx::eventfd_open`].
pub type EventId = Pfd;

/// Reads given back by [`crate::Application::on_raw_read`].
#[derive(Debug)]
pub enum ReadBufs {
    /// The buffer of [`Ctx::raw_read`].
    One(Vec<u8>),
    /// The buffers of [`Ctx::raw_readv`].
    Many(Vec<Vec<u8>>),
}

/// Starts a graceful shutdown of one server from any thread.
///
/// Made by [`Server::shutdown_handle`] (which describes the shutdown and has
/// a Ctrl-C / SIGTERM recipe). It is `Send`, `Sync` and cheap to clone; a
/// program with one server per thread keeps one handle per server and calls
/// [`ShutdownHandle::shutdown`] on each. It is not meant to be called
/// from inside a signal handler: wait for the signal on an ordinary thread
/// and call it there.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    trigger: event_manager::EventTrigger,
}

impl ShutdownHandle {
    /// Begins the shutdown (idempotent: a second call changes nothing; the
    /// grace period counts from the first). Fails only if the server's
    /// eventfd cannot be written, e.g. after the server was dropped.
    pub fn shutdown(&self) -> Result<(), Error> {
        Ok(self.trigger.trigger()?)
    }
}

/// Most vectors [`Core::spare_batches`] keeps.
const SPARE_BATCHES_MAX: usize = 1024;

/// Server state other than the ring: everything a [`Ctx`] reaches.
#[derive(Debug)]
pub struct Core {
    pub(crate) config: ServerConfig,
    /// The connection table (`connections.rs`).
    pub(crate) conns: Connections,
    /// The listening sockets (`listeners.rs`).
    pub(crate) listeners: Listeners,
    /// Clocks, the periodic tick, the shutdown deadline (`timers.rs`).
    pub(crate) timers: Timers,
    /// Counters (`stats.rs`).
    pub(crate) stats: ServerStats,
    /// WebSocket topics (`topics.rs`).
    pub(crate) topics: crate::topics::Topics,
    /// Small broadcast frames queued since the last flush (`ws.rs`).
    pub(crate) bcast: crate::ws::BcastChunk,
    /// Empty batch vectors: a write of one buffer goes to the event manager
    /// without its vector and comes back as one buffer, so the vector
    /// waits here meanwhile (at most [`SPARE_BATCHES_MAX`]) instead of
    /// being freed and allocated again per write.
    pub(crate) spare_batches: Vec<Vec<OutBuf>>,
    /// File transfers and uploads in progress (`send_file.rs`, `upload.rs`).
    pub(crate) transfers: crate::send_file::Transfers,
    pub(crate) date: protocol::DateCache,
    /// The last response head written by `http_respond`.
    head_cache: HeadCache,
    /// permessage-deflate (de)compressors shared by the loop's WebSocket
    /// connections that keep no compression context (`ws.rs`).
    pub(crate) ws_codecs: crate::ws::SharedCodecs,
    /// Between [`Server::quiesce`] (or an import) and [`Server::resume`]:
    /// nothing is submitted, received bytes are kept unparsed
    /// (`handover.rs`).
    pub(crate) quiescing: bool,
    /// RAW reads to submit on resume: asked for while quiescing, or
    /// cancelled by the quiesce (`handover.rs`).
    pub(crate) raw_reads: Vec<crate::handover::PendingRead>,
    /// Explicit offsets of RAW reads in flight (file reads), so that one
    /// cancelled by a quiesce is submitted again at the same place.
    pub(crate) raw_read_offsets: std::collections::HashMap<event_manager::OpId, u64>,
    /// Clients upgraded to WebSocket whose [`Application::on_ws_open`] has
    /// not run yet (it runs once the upgrading callback has returned).
    pub(crate) ws_opened: Vec<Pfd>,
    /// Access-log state of each WebSocket (only with
    /// [`ServerConfig::access_log`]; `access_log.rs`).
    pub(crate) ws_access: std::collections::HashMap<Pfd, crate::access_log::WsAccess>,
    /// Where access-log lines go (`access_log.rs`).
    pub(crate) access_lines: crate::access_log::AccessLines,
    /// The TLS state of each TLS connection (`tls_conn.rs`).
    pub(crate) tls: crate::tls_conn::TlsTable,
    /// Plaintext of the receive being decrypted (reused).
    pub(crate) tls_plain: Vec<u8>,
    /// TLS connections imported in the middle of their handshake: closed
    /// by the resume.
    pub(crate) tls_dropped: Vec<Pfd>,
}

/// Writes the access-log line of `h`'s current request, if it has one not
/// yet written.
fn log_http(
    lines: &mut crate::access_log::AccessLines,
    h: &mut crate::http::HttpConn,
    now: crate::timers::Tick,
    date: &[u8; 29],
) {
    let Some(line) = h.request_line.take() else {
        return;
    };
    let access = h.access.take().unwrap_or_default();
    lines.write(h.peer, &line, &access, now, date, None);
}

/// What callbacks use to act on the server: every operation the
/// application can call lives here.
pub struct Ctx<'a> {
    pub(crate) em: &'a mut EventManager,
    pub(crate) core: &'a mut Core,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").finish_non_exhaustive()
    }
}

/// One event loop serving HTTP and RAW clients to an [`Application`].
#[derive(Debug)]
pub struct Server {
    pub(crate) em: EventManager,
    pub(crate) core: Core,
}

impl Server {
    /// A server with its own io_uring ring. Create it on the thread that
    /// will run it.
    pub fn new(config: ServerConfig) -> Result<Server, Error> {
        let em = EventManager::with_config(config.ring.clone())?;
        Ok(Server::from_parts(config, em))
    }

    /// A server around `em` with nothing in it yet (new, or importing).
    pub(crate) fn from_parts(config: ServerConfig, em: EventManager) -> Server {
        let timers = Timers::new(&em);
        let access_lines = crate::access_log::AccessLines::new(config.access_log_sink.clone());
        Server {
            em,
            core: Core {
                config,
                conns: Connections::default(),
                listeners: Listeners::default(),
                timers,
                stats: ServerStats::default(),
                topics: Default::default(),
                bcast: Default::default(),
                spare_batches: Vec::new(),
                transfers: Default::default(),
                date: protocol::DateCache::new(),
                head_cache: HeadCache::default(),
                ws_codecs: Default::default(),
                quiescing: false,
                raw_reads: Vec::new(),
                raw_read_offsets: Default::default(),
                ws_opened: Vec::new(),
                ws_access: Default::default(),
                access_lines,
                tls: Default::default(),
                tls_plain: Vec::new(),
                tls_dropped: Vec::new(),
            },
        }
    }

    /// Listens on `addr` (port 0 picks a free port; see
    /// [`Server::local_addr`]).
    ///
    /// A failure keeps the system error's [`std::io::ErrorKind`] (e.g.
    /// [`std::io::ErrorKind::AddrInUse`]) and names the address:
    /// `cannot listen on 127.0.0.1:8080: Address already in use (os error 98)`.
    pub fn listen(&mut self, addr: SocketAddr, protocol: Protocol) -> std::io::Result<ListenerId> {
        let l = bind_listener(addr, false).map_err(|e| naming(addr, e))?;
        self.listen_on(l, protocol).map_err(|e| naming(addr, e))
    }

    /// Listens on `addr` with `SO_REUSEPORT`, so that one server per thread
    /// can each have its own listener on the same address and the kernel
    /// spreads connections between them. Bind the first with the port you
    /// want (or 0) and the others with [`Server::local_addr`] of the first.
    ///
    /// This is the *shared* form: it also joins any other process of the
    /// same user that listens on `addr` with `SO_REUSEPORT`, and the kernel
    /// then silently splits the connections between the processes. That is
    /// what a deliberate second instance (or a new binary starting next to
    /// the old one during an upgrade) wants; to be the only process on the
    /// address, bind the first listener of the group with
    /// [`Server::listen_reuseport_exclusive`] instead and the others with
    /// this call.
    /// Errors name the address, as [`Server::listen`]'s do.
    pub fn listen_reuseport(
        &mut self,
        addr: SocketAddr,
        protocol: Protocol,
    ) -> std::io::Result<ListenerId> {
        let l = bind_listener(addr, true).map_err(|e| naming(addr, e))?;
        self.listen_on(l, protocol).map_err(|e| naming(addr, e))
    }

    /// Like [`Server::listen_reuseport`], but first makes sure that nothing
    /// listens on `addr` yet: it fails with
    /// [`std::io::ErrorKind::AddrInUse`] if any socket — with or without
    /// `SO_REUSEPORT`, in this process or another — listens there. Use it
    /// for the first listener of a group of servers (one per thread) that
    /// should own the address alone; the others then join with
    /// [`Server::listen_reuseport`] on [`Server::local_addr`] of this one.
    /// Errors name the address, as [`Server::listen`]'s do.
    ///
    /// The check binds a socket without `SO_REUSEPORT` (which the kernel
    /// refuses next to any listener) and keeps it bound while the real
    /// listener is bound, so that port 0 resolves to a port nobody holds.
    /// Listeners handed over by another process (an upgrade) go through
    /// [`Server::listen_on`], which does no such check.
    pub fn listen_reuseport_exclusive(
        &mut self,
        addr: SocketAddr,
        protocol: Protocol,
    ) -> std::io::Result<ListenerId> {
        let claim = bind_socket(addr, false).map_err(|e| naming(addr, e))?;
        let resolved = claim
            .local_addr()
            .map_err(|e| naming(addr, e))?
            .as_socket()
            .ok_or_else(|| naming(addr, std::io::ErrorKind::AddrNotAvailable.into()))?;
        let l = bind_listener(resolved, true).map_err(|e| naming(resolved, e))?;
        drop(claim);
        self.listen_on(l, protocol).map_err(|e| naming(resolved, e))
    }

    /// Serves connections of an already bound listener.
    pub fn listen_on(&mut self, l: TcpListener, protocol: Protocol) -> std::io::Result<ListenerId> {
        if protocol == Protocol::Https && self.core.config.tls.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an HTTPS listener needs ServerConfig::tls",
            ));
        }
        let addr = l.local_addr()?;
        let pfd = self
            .em
            .adopt(OwnedFd::from(l))
            .map_err(std::io::Error::from)?;
        let id = self.core.listeners.next_id();
        self.em
            .accept_multishot(pfd, OpTag::Accept { listener: id.0 }.encode())
            .map_err(std::io::Error::from)?;
        Ok(self.core.listeners.push(Listener {
            pfd,
            protocol,
            addr,
        }))
    }

    /// Stops accepting on a listener and closes it; open connections stay.
    pub fn stop_listening(&mut self, l: ListenerId) -> Result<(), Error> {
        let pfd = self.core.listeners.get(l).pfd;
        Ok(self.em.close(pfd, OpTag::Close.encode())?)
    }

    /// The address a listener is bound to.
    pub fn local_addr(&self, l: ListenerId) -> SocketAddr {
        self.core.listeners.get(l).addr
    }

    /// A context for calling operations before (or between) runs, e.g. to
    /// open an eventfd or adopt a descriptor.
    pub fn ctx(&mut self) -> Ctx<'_> {
        self.em.update_clock();
        self.core.sync_clock(&self.em);
        Ctx {
            em: &mut self.em,
            core: &mut self.core,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ServerStats {
        self.core.stats
    }

    /// Clients (connections and RAW descriptors) currently open.
    pub fn client_count(&self) -> usize {
        self.core.conns.count()
    }

    /// A handle that stops [`Server::run`] from another thread.
    pub fn stop_handle(&mut self) -> Result<StopHandle, Error> {
        Ok(self.em.stop_handle()?)
    }

    /// A handle that starts a graceful shutdown from any thread (e.g. a
    /// signal handler): the server stops accepting, lets requests in
    /// progress finish, closes WebSockets with 1001 and idle connections,
    /// and [`Server::run`] returns once every client is closed — or after
    /// `grace`, when the rest are closed at once. Exactly one close callback
    /// still fires per client.
    ///
    /// # Ctrl-C and SIGTERM
    ///
    /// Block the signals in every thread (block them before any thread is
    /// spawned: threads inherit the mask), wait for them on a thread of
    /// your own with `sigwait`, and call [`ShutdownHandle::shutdown`] from
    /// there. A second signal can end the process at once. (`ringtail
    /// serve` does the same with the `signal-hook` crate's `Signals`
    /// iterator, which needs no `unsafe`.)
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use network_server::{Application, Protocol, Server, ServerConfig};
    ///
    /// struct App;
    /// impl Application for App {}
    ///
    /// fn main() -> Result<(), Box<dyn std::error::Error>> {
    ///     // SIGINT and SIGTERM are delivered to `sigwait` below, not to a
    ///     // handler; block them before any thread starts.
    ///     // SAFETY: plain libc calls on a local, initialised signal set.
    ///     let set = unsafe {
    ///         let mut set: libc::sigset_t = std::mem::zeroed();
    ///         libc::sigemptyset(&mut set);
    ///         libc::sigaddset(&mut set, libc::SIGINT);
    ///         libc::sigaddset(&mut set, libc::SIGTERM);
    ///         libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    ///         set
    ///     };
    ///
    ///     let mut server = Server::new(ServerConfig::default())?;
    ///     server.listen("127.0.0.1:8080".parse()?, Protocol::Http)?;
    ///     let shutdown = server.shutdown_handle(Duration::from_secs(10))?;
    ///
    ///     std::thread::spawn(move || {
    ///         let mut first = true;
    ///         loop {
    ///             let mut sig = 0;
    ///             // SAFETY: `set` is an initialised signal set; `sig` is
    ///             // a valid place for the answer.
    ///             if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
    ///                 continue;
    ///             }
    ///             if !first {
    ///                 std::process::exit(1); // second signal: do not wait
    ///             }
    ///             first = false;
    ///             let _ = shutdown.shutdown();
    ///         }
    ///     });
    ///
    ///     server.run(&mut App)?; // returns once the shutdown is over
    ///     Ok(())
    /// }
    /// ```
    pub fn shutdown_handle(&mut self, grace: Duration) -> Result<ShutdownHandle, Error> {
        let ev = self.em.eventfd_open()?;
        self.em
            .eventfd_arm(ev, 0, OpTag::shutdown_event(grace).encode())?;
        Ok(ShutdownHandle {
            trigger: self.em.eventfd_trigger_handle(ev)?,
        })
    }

    /// Runs the event loop until stopped ([`Ctx::stop`] or a [`StopHandle`]).
    pub fn run<A: Application>(&mut self, app: &mut A) -> Result<(), Error> {
        self.arm_tick();
        let Server { em, core } = self;
        let r = em.run(&mut |em: &mut EventManager, c: Completion| core.on_completion(em, app, c));
        core.access_lines.flush();
        r?;
        Ok(())
    }

    /// Runs until stopped or until `deadline`; `Ok(true)` if stopped.
    pub fn run_until<A: Application>(
        &mut self,
        app: &mut A,
        deadline: Instant,
    ) -> Result<bool, Error> {
        self.arm_tick();
        let Server { em, core } = self;
        let r = em.run_until(
            &mut |em: &mut EventManager, c: Completion| core.on_completion(em, app, c),
            deadline,
        );
        core.access_lines.flush();
        Ok(r?)
    }

    fn arm_tick(&mut self) {
        self.em.update_clock();
        self.core.sync_clock(&self.em);
        // Writes queued through `ctx()` before the loop started.
        self.core.flush_dirty(&mut self.em);
        let period = self.core.config.timer_tick;
        self.core.timers.arm_tick(&mut self.em, period);
    }
}

/// `e`, of the same kind, with a message that names the address:
/// "cannot listen on ADDR: what the system said".
fn naming(addr: SocketAddr, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
}

impl Core {
    /// Takes the event loop's clocks for this turn.
    fn sync_clock(&mut self, em: &EventManager) {
        self.timers.sync(em);
    }

    pub(crate) fn conn(&mut self, pfd: Pfd) -> Option<&mut Conn> {
        self.conns.get_mut(pfd)
    }

    pub(crate) fn conn_ref(&self, pfd: Pfd) -> Option<&Conn> {
        self.conns.get(pfd)
    }

    /// Routes one event-manager completion.
    pub(crate) fn on_completion<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        c: Completion,
    ) {
        self.sync_clock(em);
        let Some(tag) = OpTag::decode(c.user) else {
            tracing::debug!(user = c.user, kind = ?c.kind, "completion with an unknown tag ignored");
            return;
        };
        match tag {
            OpTag::Transfer { key } => self.on_transfer_op(em, key, c),
            OpTag::Upload { upload, op } => self.on_upload_op(em, app, upload, op, c),
            OpTag::HelperEvent | OpTag::HelperClose => self.on_helper(em, app, c),
            OpTag::Ignore => {}
            _ => self.on_conn_completion(em, app, tag, c),
        }
        self.after_callbacks(em, app);
    }

    /// Routes a completion that is not a file subsystem's: connections,
    /// listeners, eventfds, the application's file operations, the tick.
    fn on_conn_completion<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        tag: OpTag,
        c: Completion,
    ) {
        match (tag, c.kind) {
            (OpTag::Accept { listener }, CompletionKind::Accept { result, .. }) => match result {
                Ok(pfd) => self.on_accept(em, app, pfd, listener),
                Err(e) => tracing::warn!(error = %e, "accept failed; still listening"),
            },
            (_, CompletionKind::AcceptEnd { listener, result }) => {
                if self.timers.shutdown_deadline().is_some() {
                    tracing::debug!(%listener, "listener closed for shutdown");
                } else {
                    tracing::error!(%listener, ?result, "listener stopped accepting");
                }
            }
            (OpTag::ShutdownEvent { grace_ms }, CompletionKind::EventFd { .. }) => {
                self.begin_shutdown(em, Duration::from_millis(grace_ms));
            }
            (_, CompletionKind::Recv { pfd, mut buf }) => {
                self.stats.bytes_in += buf.len() as u64;
                if let Some(w) = self.ws_access.get_mut(&pfd) {
                    w.access.bytes_in += buf.len() as u64;
                }
                self.on_recv(em, app, pfd, &mut buf);
            }
            (_, CompletionKind::RecvEnd { pfd, result }) => self.on_recv_end(em, app, pfd, result),
            (
                _,
                CompletionKind::Write {
                    pfd,
                    buf,
                    written,
                    result,
                },
            ) => {
                let mut bufs = self.spare_batches.pop().unwrap_or_default();
                bufs.push(buf);
                self.on_write_done(em, app, pfd, bufs, written, result.map(|_| ()))
            }
            (
                _,
                CompletionKind::Writev {
                    pfd,
                    bufs,
                    written,
                    result,
                },
            ) => self.on_write_done(em, app, pfd, bufs, written, result.map(|_| ())),
            (_, CompletionKind::Shutdown { pfd, result }) => self.on_shutdown_done(em, pfd, result),
            (_, CompletionKind::Close { pfd, .. }) => self.on_closed(em, app, pfd),
            (_, CompletionKind::Read { pfd, buf, result }) => {
                let offset = self.raw_read_offsets.remove(&c.op);
                if self.quiescing && result == Err(event_manager::Error::Cancelled) {
                    // Cut by the quiesce: submitted again on resume.
                    return self.raw_reads.push(crate::handover::PendingRead {
                        client: pfd,
                        bufs: ReadBufs::One(buf),
                        offset,
                    });
                }
                let result = result.map_err(Error::from);
                self.guard(em, Some(pfd), "on_raw_read", |ctx| {
                    app.on_raw_read(ctx, pfd, ReadBufs::One(buf), result)
                });
            }
            (_, CompletionKind::Readv { pfd, bufs, result }) => {
                let offset = self.raw_read_offsets.remove(&c.op);
                if self.quiescing && result == Err(event_manager::Error::Cancelled) {
                    return self.raw_reads.push(crate::handover::PendingRead {
                        client: pfd,
                        bufs: ReadBufs::Many(bufs),
                        offset,
                    });
                }
                let result = result.map_err(Error::from);
                self.guard(em, Some(pfd), "on_raw_read", |ctx| {
                    app.on_raw_read(ctx, pfd, ReadBufs::Many(bufs), result)
                });
            }
            (_, CompletionKind::EventFd { pfd, info, result }) => match result {
                Ok(count) => {
                    self.guard(em, None, "on_event", |ctx| {
                        app.on_event(ctx, pfd, info, count)
                    });
                }
                Err(e) => tracing::debug!(%pfd, error = %e, "eventfd wait ended"),
            },
            (OpTag::AppFile { tag }, CompletionKind::Open { result, .. }) => {
                let result = result.map_err(Error::from).inspect(|&pfd| {
                    self.conns.insert(Conn::new(pfd, Proto::Raw));
                });
                let ev = FileEvent::Opened { tag, result };
                self.guard(em, None, "on_file", |ctx| app.on_file(ctx, ev));
            }
            (
                OpTag::AppFile { tag },
                CompletionKind::Stat { result, .. } | CompletionKind::Fstat { result, .. },
            ) => {
                let ev = FileEvent::Stat {
                    tag,
                    result: result.map_err(Error::from),
                };
                self.guard(em, None, "on_file", |ctx| app.on_file(ctx, ev));
            }
            (OpTag::AppFile { tag }, CompletionKind::Unlink { result, .. }) => {
                let ev = FileEvent::Unlinked {
                    tag,
                    result: result.map_err(Error::from),
                };
                self.guard(em, None, "on_file", |ctx| app.on_file(ctx, ev));
            }
            (OpTag::Tick, CompletionKind::Timeout { .. }) => {
                self.sweep(em);
                self.timers.rearm_tick(em, self.config.timer_tick);
            }
            (_, other) => tracing::debug!(?other, "completion ignored"),
        }
    }

    /// Work deferred until the callbacks of one completion have returned.
    pub(crate) fn after_callbacks<A: Application>(&mut self, em: &mut EventManager, app: &mut A) {
        self.ws_open_callbacks(em, app);
        // Connections whose answer completed while input was waiting.
        while let Some(pfd) = self.conns.pop_ready() {
            match self.conn_ref(pfd).map(|c| &c.proto) {
                Some(Proto::WebSocket(_)) => self.ws_resume(em, app, pfd),
                Some(_) => self.process_http(em, app, pfd, None),
                None => {}
            }
        }
        self.ws_open_callbacks(em, app);
        self.flush_dirty(em);
    }

    /// Runs [`Application::on_ws_open`] for each client upgraded since the
    /// last call, in the order of their upgrades. Called before anything
    /// else about a new WebSocket reaches the application (its first
    /// message, its close).
    pub(crate) fn ws_open_callbacks<A: Application>(&mut self, em: &mut EventManager, app: &mut A) {
        while !self.ws_opened.is_empty() {
            for pfd in std::mem::take(&mut self.ws_opened) {
                let upgraded = self
                    .conn_ref(pfd)
                    .is_some_and(|c| c.kind() == ClientKind::WebSocket);
                if upgraded {
                    self.guard(em, Some(pfd), "on_ws_open", |ctx| app.on_ws_open(ctx, pfd));
                }
            }
        }
    }

    fn on_accept<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        listener: u32,
    ) {
        let now = self.timers.now;
        self.stats.accepted += 1;
        let protocol = self.listeners.get(ListenerId(listener)).protocol;
        let proto = match protocol {
            Protocol::Http | Protocol::Https => Proto::Http(Box::default()),
            Protocol::Raw => Proto::Raw,
        };
        if self.config.tcp_nodelay {
            if let Ok(fd) = em.raw_fd(pfd) {
                set_nodelay(fd);
            }
        }
        let mut conn = Conn::new(pfd, proto);
        if self.config.access_log {
            if let (Proto::Http(h), Ok(fd)) = (&mut conn.proto, em.raw_fd(pfd)) {
                h.peer = peer_addr(fd);
            }
        }
        if protocol == Protocol::Http {
            conn.deadline = Some(now + self.config.header_read_timeout);
        }
        if protocol == Protocol::Https {
            let tls = self.config.tls.clone().map(crate::tls_conn::TlsConn::new);
            match tls {
                Some(Ok(tls)) => {
                    self.tls.insert(pfd, Box::new(tls));
                    conn.set_tls();
                    conn.deadline = Some(now + self.config.tls_handshake_timeout);
                }
                _ => {
                    tracing::error!(%pfd, "cannot start a TLS session: closing");
                    self.conns.insert(conn);
                    return self.hard_close(em, pfd, Some(CloseReason::Application));
                }
            }
        }
        self.conns.insert(conn);
        self.guard(em, Some(pfd), "on_accept", |ctx| {
            app.on_accept(ctx, pfd, ListenerId(listener))
        });
        self.update_recv(em, pfd);
    }

    /// Sets or clears one pause reason of `pfd` and brings its receive in
    /// line.
    pub(crate) fn set_pause(
        &mut self,
        em: &mut EventManager,
        pfd: Pfd,
        reason: PauseReason,
        on: bool,
    ) {
        let Some(conn) = self.conn(pfd) else { return };
        conn.pause.set(reason, on);
        self.update_recv(em, pfd);
    }

    /// The one place that decides whether a connection reads: level-
    /// triggered, from its state, called after anything that may change it
    /// (output queued or written, input buffered, an upload's flow control,
    /// the close sequence, a receive that ended).
    ///
    /// An open HTTP or WebSocket connection reads while no [`PauseReason`]
    /// holds; a lingering one reads (and discards) until EOF; RAW clients
    /// read only through the application. A receive that must stop is
    /// cancelled once — the event manager remembers the cancel, so it ends
    /// even if the kernel had already ended it on its own — and its
    /// `RecvEnd` calls this again, which re-arms it if reading is wanted by
    /// then.
    #[inline]
    pub(crate) fn update_recv(&mut self, em: &mut EventManager, pfd: Pfd) {
        let high = self.config.pause_reading_above;
        let Some(conn) = self.conn(pfd) else { return };
        // The common case, checked inline on every flush and write
        // completion: reading, no reason to stop, nothing to resume.
        if conn.pause.is_empty()
            && conn.recv_state() == RecvState::Armed
            && conn.out.bytes() <= high
        {
            return;
        }
        self.update_recv_slow(em, pfd);
    }

    #[inline(never)]
    fn update_recv_slow(&mut self, em: &mut EventManager, pfd: Pfd) {
        let high = self.config.pause_reading_above;
        let Some(conn) = self.conn(pfd) else { return };
        let queued = conn.out.bytes();
        if queued > high {
            if !conn.pause.has(PauseReason::Output) {
                conn.pause.set(PauseReason::Output, true);
                self.stats.output_pauses += 1;
            }
        } else if queued <= high / 2 {
            conn.pause.set(PauseReason::Output, false);
        }
        let Some(conn) = self.conn(pfd) else { return };
        let want = match conn.phase {
            Phase::Open => conn.pause.is_empty() && !matches!(conn.proto, Proto::Raw),
            Phase::Lingering => true,
            // Input is discarded while the output drains: leave the
            // receive as it is (it notices a reset); closing cancels it.
            Phase::Draining | Phase::ShutdownSent | Phase::Closing => return,
        } && !conn.peer_eof();
        match conn.recv_state() {
            RecvState::Off if want => match em.recv_multishot(pfd, OpTag::Recv.encode()) {
                Ok(op) => conn.recv_armed(op),
                Err(e) => tracing::debug!(%pfd, error = %e, "cannot arm receive"),
            },
            RecvState::Armed if !want => {
                if let Some(op) = conn.recv_cancel() {
                    let _ = em.cancel(op);
                }
            }
            _ => {}
        }
    }

    fn on_recv<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        data: &mut [u8],
    ) {
        let linger_max = self.config.linger_max_bytes;
        let quiescing = self.quiescing;
        let Some(conn) = self.conn(pfd) else { return };
        match conn.phase {
            Phase::Open => {}
            Phase::Draining | Phase::ShutdownSent | Phase::Closing => return,
            Phase::Lingering => {
                let n = u32::try_from(data.len()).unwrap_or(u32::MAX);
                conn.linger_bytes = conn.linger_bytes.saturating_add(n);
                if conn.linger_bytes as usize > linger_max {
                    self.hard_close(em, pfd, None);
                }
                return;
            }
        }
        if conn.is_tls() {
            return self.tls_recv(em, app, pfd, data);
        }
        if quiescing {
            return self.keep_input(pfd, data);
        }
        match conn.proto {
            Proto::Http(_) => self.process_http(em, app, pfd, Some(data)),
            Proto::WebSocket(_) => self.ws_feed(em, app, pfd, data),
            Proto::Raw => {}
        }
    }

    fn on_recv_end<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        result: Result<(), event_manager::Error>,
    ) {
        let Some(conn) = self.conn(pfd) else { return };
        conn.recv_ended(result.is_ok());
        match result {
            // Paused (or closing): re-armed here if reading is wanted again
            // by now (e.g. the answer was written before this arrived).
            Err(event_manager::Error::Cancelled) => self.update_recv(em, pfd),
            Ok(()) => match conn.phase {
                Phase::Lingering => self.hard_close(em, pfd, None),
                Phase::Open => {
                    let _ = app;
                    self.on_peer_eof(em, pfd)
                }
                _ => {}
            },
            Err(e) => {
                let errno = e.errno().unwrap_or(libc::EIO);
                self.hard_close(em, pfd, Some(CloseReason::Io(errno)));
            }
        }
    }

    /// The peer will send nothing more. An HTTP connection in the middle of
    /// a request, or with nothing to answer, closes; one whose answer is
    /// still being produced closes once the answer has been written.
    pub(crate) fn on_peer_eof(&mut self, em: &mut EventManager, pfd: Pfd) {
        let Some(conn) = self.conn(pfd) else { return };
        match &conn.proto {
            Proto::Http(h) if matches!(h.req, crate::http::ReqState::Body(_)) => {
                // End of stream inside a body: the request can never
                // complete. Abandon it now (an upload's files are removed
                // when the close completes) rather than wait for a timeout
                // and answer a peer that has gone.
                self.hard_close(em, pfd, Some(CloseReason::IncompleteBody));
            }
            Proto::Http(h) if h.awaiting_answer() => {
                // Finish the answer, then close (half-closed client).
                if let Proto::Http(h) = &mut conn.proto {
                    h.keep_alive = false;
                }
            }
            Proto::Http(_) => {
                conn.reason = CloseReason::Peer;
                self.begin_close(em, pfd, CloseReason::Peer);
            }
            // End of stream without a Close frame (1006): nothing more to do.
            Proto::WebSocket(_) => self.hard_close(em, pfd, Some(CloseReason::Peer)),
            Proto::Raw => {}
        }
    }

    // ----- writes ----------------------------------------------------------

    /// Queues buffers on a connection. The write starts when the current
    /// callback returns ([`Core::flush_dirty`]), so everything a callback
    /// queues — a head and its body, several messages — leaves in one
    /// `writev` (one segment for a small answer; no Nagle/delayed-ACK stall
    /// between a head and its body).
    pub(crate) fn queue(
        &mut self,
        _em: &mut EventManager,
        pfd: Pfd,
        items: impl IntoIterator<Item = (OutBuf, Owner, bool)>,
    ) {
        self.settle_run();
        let before = self.queued_before(pfd);
        let Some(conn) = self.conn(pfd) else { return };
        for (buf, owner, skip) in items {
            conn.out.push(buf, owner, skip);
        }
        if let Some(before) = before {
            self.count_queued(pfd, before);
        }
        self.mark_dirty(pfd);
    }

    /// Like [`Core::queue`] for a copy of the server's own `bytes` (see
    /// [`OutQueue::push_copy`](crate::out_queue::OutQueue::push_copy)).
    pub(crate) fn queue_copy(&mut self, pfd: Pfd, bytes: &[u8]) {
        self.settle_run();
        let before = self.queued_before(pfd);
        let Some(conn) = self.conn(pfd) else { return };
        conn.out.push_copy(bytes);
        if let Some(before) = before {
            self.count_queued(pfd, before);
        }
        self.mark_dirty(pfd);
    }

    /// [`Core::queue_append`] with the current `Date`, the configuration
    /// and the head cache at hand (for response heads).
    pub(crate) fn queue_with<E>(
        &mut self,
        pfd: Pfd,
        size: usize,
        write: impl FnOnce(&mut Vec<u8>, &[u8; 29], &ServerConfig, &mut HeadCache) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        self.settle_run();
        let before = self.queued_before(pfd);
        let date = self.date.at(self.timers.wall);
        let (config, heads) = (&self.config, &mut self.head_cache);
        let conn = self.conns.get_mut(pfd)?;
        let r = conn
            .out
            .append_with(size, |v| write(v, date, config, heads));
        if r.is_ok() {
            if let Some(before) = before {
                self.count_queued(pfd, before);
            }
            self.mark_dirty(pfd);
        }
        Some(r)
    }

    /// Appends to `pfd`'s output what `write` puts into its copy buffer
    /// (about `size` bytes; see [`OutQueue::append_with`]). `None` if the
    /// connection is gone.
    ///
    /// [`OutQueue::append_with`]: crate::out_queue::OutQueue::append_with
    pub(crate) fn queue_append<E>(
        &mut self,
        pfd: Pfd,
        size: usize,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        self.settle_run();
        let before = self.queued_before(pfd);
        let r = self.conn(pfd)?.out.append_with(size, write);
        if r.is_ok() {
            if let Some(before) = before {
                self.count_queued(pfd, before);
            }
            self.mark_dirty(pfd);
        }
        Some(r)
    }

    /// Output was queued on `pfd`: flush it after the current callback.
    pub(crate) fn mark_dirty(&mut self, pfd: Pfd) {
        let Some(queued) = self.conns.mark_dirty(pfd) else {
            return;
        };
        let queued = queued as u64;
        self.stats.queued_bytes_high_water = self.stats.queued_bytes_high_water.max(queued);
    }

    /// Starts the writes of every connection that queued something.
    pub(crate) fn flush_dirty(&mut self, em: &mut EventManager) {
        self.seal_broadcast();
        while let Some(pfd) = self.conns.pop_dirty() {
            self.flush(em, pfd);
            self.update_recv(em, pfd);
        }
    }

    pub(crate) fn flush(&mut self, em: &mut EventManager, pfd: Pfd) {
        // No write may start with a broadcast range unresolved.
        self.seal_broadcast();
        let quiescing = self.quiescing;
        let Some(conn) = self.conn(pfd) else { return };
        // While quiescing output stays queued (the resume writes it).
        if conn.phase == Phase::Closing || quiescing {
            return;
        }
        if conn.is_tls() {
            return self.tls_flush(em, pfd);
        }
        let Some(mut bufs) = conn.out.take_batch() else {
            return;
        };
        let r = if bufs.len() == 1 {
            let buf = bufs.pop().expect("one buffer");
            if self.spare_batches.len() < SPARE_BATCHES_MAX && bufs.capacity() <= 64 {
                self.spare_batches.push(bufs);
            }
            em.write(pfd, buf, None, OpTag::Write.encode())
                .map_err(|(e, b)| (e, vec![b]))
        } else {
            em.writev(pfd, bufs, None, OpTag::Write.encode())
        };
        let now = self.timers.now;
        match r {
            Ok(op) => {
                if let Some(conn) = self.conn(pfd) {
                    conn.out.watch_write(op, now);
                }
            }
            Err((e, bufs)) => {
                // The pfd went stale under us: finish the batch as failed; the
                // close completion reports the rest.
                tracing::debug!(%pfd, error = %e, "write refused");
                if let Some(conn) = self.conn(pfd) {
                    let _ = conn.out.complete(bufs);
                }
            }
        }
    }

    fn on_write_done<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        bufs: Vec<OutBuf>,
        written: usize,
        result: Result<(), event_manager::Error>,
    ) {
        let now = self.timers.now;
        self.stats.bytes_out += written as u64;
        if let Some(w) = self.ws_access.get_mut(&pfd) {
            w.access.bytes_out += written as u64;
        }
        let quiescing = self.quiescing;
        let Some(conn) = self.conn(pfd) else { return };
        let kind = conn.kind();
        // The queue's batch this write carried: a TLS write carries it
        // sealed (or none: only the server's own TLS records).
        let (batch, result) = if conn.is_tls() {
            self.tls_written(pfd, bufs, written, result)
        } else {
            (Some(bufs), result)
        };
        let Some(conn) = self.conn(pfd) else { return };
        let done = match batch {
            Some(bufs)
                if quiescing
                    && result == Err(event_manager::Error::Cancelled)
                    && !conn.is_tls() =>
            {
                // Cut short for a quiesce: what was written completes, the
                // rest goes back to the front of the queue.
                let done = conn.out.complete_partial(bufs, written);
                return self.give_back(em, app, pfd, kind, done, Ok(()));
            }
            Some(bufs) => Some(conn.out.complete(bufs)),
            None => None,
        };
        let result = result.map_err(Error::from);
        let failed = result.is_err();
        let carried_batch = done.is_some();
        self.give_back(em, app, pfd, kind, done.unwrap_or_default(), result);
        if !failed && carried_batch {
            // A file transfer on this connection may send its next piece.
            self.on_conn_written(em, app, pfd);
        }
        if failed {
            let errno = match result {
                Err(Error::Io(e)) => e.errno().unwrap_or(libc::EIO),
                _ => libc::EIO,
            };
            if self.conn(pfd).is_some_and(|c| c.phase != Phase::Closing) {
                self.hard_close(em, pfd, Some(CloseReason::Io(errno)));
            }
            return;
        }
        self.flush(em, pfd);
        let drain = self.config.drain_timeout;
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase == Phase::Draining {
            conn.deadline = Some(now + drain);
        }
        if conn.out.is_idle() && conn.phase == Phase::Draining {
            return self.advance_close(em, pfd);
        }
        let Some(conn) = self.conn(pfd) else { return };
        let was_blocked = conn.pause.has(PauseReason::Output);
        self.update_recv(em, pfd);
        let Some(conn) = self.conn(pfd) else { return };
        if was_blocked && !conn.pause.has(PauseReason::Output) {
            // Output fell below the resume level: pipelined requests or
            // WebSocket input held back by it are processed again.
            match &conn.proto {
                Proto::Http(h) if !h.inbuf.is_empty() && !h.awaiting_answer() => {
                    self.conns.push_ready(pfd)
                }
                Proto::WebSocket(w) if w.reader.as_ref().is_some_and(|r| !r.stash.is_empty()) => {
                    self.conns.push_ready(pfd)
                }
                _ => {}
            }
        }
    }

    /// A write outside the queue (a file transfer's splice into the socket,
    /// `OutQueue::begin_external`) completed on `pfd`: what was queued
    /// meanwhile is written, and a close that waited goes on.
    pub(crate) fn after_external_write(&mut self, em: &mut EventManager, pfd: Pfd) {
        let now = self.timers.now;
        let drain = self.config.drain_timeout;
        self.flush(em, pfd);
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase == Phase::Draining {
            conn.deadline = Some(now + drain);
            if conn.out.is_idle() {
                return self.advance_close(em, pfd);
            }
        }
        self.update_recv(em, pfd);
    }

    /// Hands each completed application write back through the right
    /// write-complete callback.
    fn give_back<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        kind: ClientKind,
        done: Vec<AppWrite>,
        result: Result<(), Error>,
    ) {
        for group in done {
            match kind {
                ClientKind::Http => self.guard(em, Some(pfd), "on_http_write", |ctx| {
                    app.on_http_write(ctx, pfd, group, result)
                }),
                ClientKind::WebSocket => self.guard(em, Some(pfd), "on_ws_write", |ctx| {
                    app.on_ws_write(ctx, pfd, group, result)
                }),
                ClientKind::Raw => self.guard(em, Some(pfd), "on_raw_write", |ctx| {
                    app.on_raw_write(ctx, pfd, group, result)
                }),
            };
        }
    }

    // ----- the close sequence ----------------------------------------------

    /// Graceful close: drain what is queued, shut down the write side,
    /// discard lingering input (bounded), close.
    pub(crate) fn begin_close(&mut self, em: &mut EventManager, pfd: Pfd, reason: CloseReason) {
        let now = self.timers.now;
        let drain = self.config.drain_timeout;
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        conn.reason = reason;
        if matches!(conn.proto, Proto::Raw) {
            return self.hard_close(em, pfd, Some(reason));
        }
        conn.phase = Phase::Draining;
        // Draining is bounded too: a peer that stops reading cannot hold the
        // connection open (the deadline moves on with every completed write;
        // the sweep closes it when there was none for `drain_timeout`).
        conn.deadline = Some(now + drain);
        self.advance_close(em, pfd);
    }

    pub(crate) fn advance_close(&mut self, em: &mut EventManager, pfd: Pfd) {
        let now = self.timers.now;
        let linger = self.config.linger_timeout;
        let quiescing = self.quiescing;
        let Some(conn) = self.conn(pfd) else { return };
        // While quiescing the shutdown waits for the resume.
        if conn.phase != Phase::Draining || !conn.out.is_idle() || quiescing {
            return;
        }
        if conn.is_tls() && !self.tls_close_notify(em, pfd) {
            return; // written first; its completion comes back here
        }
        let Some(conn) = self.conn(pfd) else { return };
        conn.phase = Phase::ShutdownSent;
        // Bound the whole remaining sequence.
        conn.deadline = Some(now + linger);
        if em
            .shutdown(pfd, std::net::Shutdown::Write, OpTag::Shutdown.encode())
            .is_err()
        {
            self.hard_close(em, pfd, None);
        }
    }

    fn on_shutdown_done(
        &mut self,
        em: &mut EventManager,
        pfd: Pfd,
        result: Result<(), event_manager::Error>,
    ) {
        let quiescing = self.quiescing;
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase != Phase::ShutdownSent {
            return;
        }
        if quiescing && result == Err(event_manager::Error::Cancelled) {
            // Cancelled by a quiesce: the resume shuts down again.
            conn.phase = Phase::Draining;
            return;
        }
        if result.is_err() || conn.peer_eof() {
            return self.hard_close(em, pfd, None);
        }
        conn.phase = Phase::Lingering;
        // Read (and discard) until EOF or the bounds, even if reading was
        // paused.
        self.update_recv(em, pfd);
    }

    /// Closes now (cancelling whatever is in flight). `reason` overrides
    /// the recorded one when given.
    pub(crate) fn hard_close(
        &mut self,
        em: &mut EventManager,
        pfd: Pfd,
        reason: Option<CloseReason>,
    ) {
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase == Phase::Closing {
            return;
        }
        if let Some(r) = reason {
            conn.reason = r;
        }
        tracing::debug!(%pfd, reason = ?conn.reason, phase = ?conn.phase, "closing");
        conn.phase = Phase::Closing;
        conn.deadline = None;
        if let Err(e) = em.close(pfd, OpTag::Close.encode()) {
            tracing::error!(%pfd, error = %e, "close refused");
        }
    }

    /// The descriptor is closed: give back every buffer still queued, then
    /// fire exactly one close callback.
    fn on_closed<A: Application>(&mut self, em: &mut EventManager, app: &mut A, pfd: Pfd) {
        let Some(mut conn) = self.conns.remove(pfd) else {
            return; // an eventfd or a listener
        };
        if conn.is_tls() {
            self.tls.remove(pfd);
        }
        let kind = conn.kind();
        if let Proto::WebSocket(w) = &mut conn.proto {
            if let Some(e) = w.extra.take() {
                self.ws_forget(pfd, &e.topics);
            }
        }
        let failed = conn.out.drain_failed();
        self.give_back(em, app, pfd, kind, failed, Err(Error::Closing(pfd)));
        // File transfers of this connection end (their completion fires).
        self.on_conn_closed_files(em, app, pfd);
        self.stats.closed += 1;
        if self.timers.shutdown_deadline().is_some() {
            // Stops once every client is closed and every upload has
            // removed its partial files.
            self.check_shutdown(em);
        }
        let reason = conn.reason;
        if self.config.access_log {
            let date = *self.date.at(self.timers.wall);
            let now = self.timers.now;
            match &mut conn.proto {
                // A request not done: its peer left, or it was refused.
                Proto::Http(h) => log_http(&mut self.access_lines, h, now, &date),
                Proto::WebSocket(_) => {
                    if let Some(w) = self.ws_access.remove(&pfd) {
                        self.access_lines.write(
                            w.peer,
                            &w.line,
                            &w.access,
                            now,
                            &date,
                            Some(reason),
                        );
                    }
                }
                Proto::Raw => {}
            }
        }
        match kind {
            ClientKind::Http => self.guard(em, Some(pfd), "on_http_close", |ctx| {
                app.on_http_close(ctx, pfd, reason)
            }),
            ClientKind::WebSocket => self.guard(em, Some(pfd), "on_ws_close", |ctx| {
                app.on_ws_close(ctx, pfd, reason)
            }),
            ClientKind::Raw => self.guard(em, Some(pfd), "on_raw_close", |ctx| {
                app.on_raw_close(ctx, pfd, reason)
            }),
        };
        self.conns.closed();
    }

    /// Calls an application callback, about `client` if it concerns one,
    /// catching a panic at this boundary ([`crate::PanicPolicy`]). `None` if
    /// it panicked.
    pub(crate) fn guard<R>(
        &mut self,
        em: &mut EventManager,
        client: Option<Pfd>,
        callback: &'static str,
        f: impl FnOnce(&mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let mut ctx = Ctx { em, core: self };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut ctx))) {
            Ok(r) => Some(r),
            Err(payload) => {
                self.on_app_panic(em, client, callback, payload.as_ref());
                None
            }
        }
    }

    /// A callback panicked: log and count it, then close only its client
    /// (500 for an unanswered HTTP request, 1011 for a WebSocket), or abort
    /// under [`crate::PanicPolicy::Abort`].
    fn on_app_panic(
        &mut self,
        em: &mut EventManager,
        client: Option<Pfd>,
        callback: &'static str,
        payload: &(dyn std::any::Any + Send),
    ) {
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not a string)");
        let client_s = client.map_or_else(|| "-".to_string(), |c| c.to_string());
        tracing::error!(client = %client_s, callback, panic = msg, "application callback panicked");
        if self.config.on_panic == crate::PanicPolicy::Abort {
            std::process::abort();
        }
        self.stats.app_panics += 1;
        let Some(pfd) = client else { return };
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase != Phase::Open {
            return; // already closing: it ends on its own
        }
        match &conn.proto {
            Proto::Http(h) if matches!(h.resp, RespState::Idle | RespState::Pending) => {
                self.http_error(em, pfd, 500);
            }
            Proto::Http(_) | Proto::Raw => self.hard_close(em, pfd, None),
            Proto::WebSocket(_) => {
                self.ws_fail(em, pfd, protocol::ws::CloseCode(1011));
            }
        }
        if let Some(conn) = self.conn(pfd) {
            conn.reason = CloseReason::Panic;
        }
    }

    /// An answer's status line is being written: count it, and keep the
    /// status for the access log (written when the request is done:
    /// [`Core::log_request`]).
    pub(crate) fn response_started(&mut self, pfd: Pfd, status: u16) {
        self.stats.count_response(status);
        if let Some(Proto::Http(h)) = self.conn(pfd).map(|c| &mut c.proto) {
            if let Some(a) = &mut h.access {
                a.status = status;
            }
        }
    }

    /// Writes the access-log line of `pfd`'s current request (if it has
    /// one: the access log is on and the line not yet written).
    pub(crate) fn log_request(&mut self, pfd: Pfd) {
        let date = self.date.at(self.timers.wall);
        let now = self.timers.now;
        if let Some(Proto::Http(h)) = self.conns.get_mut(pfd).map(|c| &mut c.proto) {
            log_http(&mut self.access_lines, h, now, date);
        }
    }

    /// Counts `before..after` queued bytes of `pfd` into its access-log
    /// record (HTTP answers).
    pub(crate) fn count_queued(&mut self, pfd: Pfd, before: usize) {
        if let Some(conn) = self.conns.get_mut(pfd) {
            let added = conn.out.bytes().saturating_sub(before) as u64;
            if let Proto::Http(h) = &mut conn.proto {
                if let Some(a) = &mut h.access {
                    a.bytes_out += added;
                }
            }
        }
    }

    /// `pfd`'s queued bytes, when the access log counts them.
    pub(crate) fn queued_before(&self, pfd: Pfd) -> Option<usize> {
        if !self.config.access_log {
            return None;
        }
        self.conns.get(pfd).map(|c| c.out.bytes())
    }

    /// Closes connections whose deadline passed.
    /// Graceful shutdown: stop accepting; close idle HTTP connections; let
    /// requests in progress finish (then close); close WebSockets with 1001;
    /// close RAW clients. The loop stops when no client is left, or at the
    /// end of `grace`, when whatever remains is closed at once.
    fn begin_shutdown(&mut self, em: &mut EventManager, grace: Duration) {
        if !self.timers.begin_shutdown(grace) {
            return;
        }
        tracing::info!(clients = self.conns.count(), ?grace, "shutting down");
        for l in self.listeners.iter() {
            let _ = em.close(l.pfd, OpTag::Close.encode());
        }
        let clients: Vec<(Pfd, ClientKind, bool)> = self
            .conns
            .iter()
            .map(|c| {
                let busy = matches!(&c.proto, Proto::Http(h) if h.awaiting_answer());
                (c.pfd, c.kind(), busy)
            })
            .collect();
        for (pfd, kind, busy) in clients {
            match kind {
                ClientKind::Http if busy => {
                    if let Some(Proto::Http(h)) = self.conn(pfd).map(|c| &mut c.proto) {
                        h.keep_alive = false;
                    }
                }
                ClientKind::Http => self.begin_close(em, pfd, CloseReason::Shutdown),
                ClientKind::WebSocket => {
                    self.ws_fail(em, pfd, protocol::ws::CloseCode::GOING_AWAY);
                    if let Some(c) = self.conn(pfd) {
                        c.reason = CloseReason::Shutdown;
                    }
                }
                ClientKind::Raw => self.hard_close(em, pfd, Some(CloseReason::Shutdown)),
            }
        }
        self.flush_dirty(em);
        self.check_shutdown(em);
    }

    /// Stops the loop once shutdown has drained every client, or forces
    /// the rest closed at the deadline.
    fn check_shutdown(&mut self, em: &mut EventManager) {
        let Some(deadline) = self.timers.shutdown_deadline() else {
            return;
        };
        let no_clients = self.conns.is_empty();
        let past = Instant::now() >= deadline;
        if no_clients && (self.uploads_active() == 0 || past) {
            // Uploads still cleaning up past the deadline are removed when
            // the server is dropped (see `Uploads`' `Drop`).
            tracing::info!("shutdown complete");
            em.stop();
            return;
        }
        if past {
            let left: Vec<Pfd> = self.conns.iter().map(|c| c.pfd).collect();
            tracing::warn!(clients = left.len(), "grace period over: closing the rest");
            for pfd in left {
                self.hard_close(em, pfd, Some(CloseReason::Shutdown));
            }
        }
    }

    /// Whether a graceful shutdown is under way (no new requests on kept-
    /// alive connections).
    pub(crate) fn shutting_down(&self) -> bool {
        self.timers.shutdown_deadline().is_some()
    }

    fn sweep(&mut self, em: &mut EventManager) {
        self.access_lines.flush();
        self.check_shutdown(em);
        // One pass: idle connections give back the buffers they kept from
        // their last burst of activity, and expired deadlines are collected.
        let now = self.timers.tick_at(Instant::now());
        let write_timeout = self.config.write_progress_timeout;
        let mut expired: Vec<(Pfd, Phase)> = Vec::new();
        let mut stalled: Vec<Pfd> = Vec::new();
        let mut released = 0usize;
        for conn in self.conns.iter_mut() {
            // Write progress: a write in flight whose count has not moved
            // for the timeout means a peer that accepts nothing.
            if let Some(w) = conn.out.write_watch() {
                match em.write_progress(w.op) {
                    Some(n) if n != w.written => {
                        w.written = n;
                        w.since = now;
                    }
                    _ if w.since + write_timeout <= now => stalled.push(conn.pfd),
                    _ => {}
                }
            }
            let mut freed = conn.out.release_if_idle();
            if conn.is_tls() {
                if let Some(t) = self.tls.get_mut(conn.pfd) {
                    if t.output_idle() && conn.out.is_idle() {
                        freed |= t.release_if_idle();
                    }
                }
            }
            match &mut conn.proto {
                Proto::Http(h) if h.inbuf.is_empty() && h.inbuf.capacity() > 0 => {
                    h.inbuf = Vec::new();
                    freed = true;
                }
                Proto::WebSocket(w) => freed |= w.release_if_idle(),
                _ => {}
            }
            released += usize::from(freed);
            if conn.deadline.is_some_and(|d| d <= now) {
                expired.push((conn.pfd, conn.phase));
            }
        }
        if released >= TRIM_AFTER_RELEASES {
            trim_allocator();
        }
        for pfd in stalled {
            tracing::debug!(%pfd, "no write progress: closing");
            self.stats.timeouts += 1;
            self.stats.write_timeouts += 1;
            self.hard_close(em, pfd, Some(CloseReason::Timeout));
        }
        for (pfd, phase) in expired {
            if self.conn_ref(pfd).is_none_or(|c| c.phase == Phase::Closing) {
                continue; // closed above for making no write progress
            }
            self.stats.timeouts += 1;
            match phase {
                Phase::Open if self.tls.get(pfd).is_some_and(|t| !t.handshaken()) => {
                    tracing::debug!(%pfd, "TLS handshake not finished in time: closing");
                    self.stats.tls_handshake_timeouts += 1;
                    self.hard_close(em, pfd, Some(CloseReason::Timeout));
                }
                Phase::Open => self.on_timeout(em, pfd),
                _ => self.hard_close(em, pfd, None),
            }
        }
    }
}

/// A sweep that freed the idle state of at least this many connections
/// (typically after a burst of new connections that went quiet) is followed
/// by [`trim_allocator`].
const TRIM_AFTER_RELEASES: usize = 256;

/// Gives whole free pages inside the C allocator's heap back to the kernel.
/// Memory freed by a burst of connections that went idle sits between the
/// allocations that stay (each client's state), where `free` alone never
/// returns it; glibc's `malloc_trim` (≥ 2.8) releases such pages in every
/// arena with `MADV_DONTNEED`. It costs one walk of the free lists (tens
/// of microseconds for a heap of a few MiB) and is rate-limited by the
/// sweep. Under another global allocator it finds nothing to do.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it takes the allocator's
    // own locks and only releases pages that hold no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

// ----- the application's operations ---------------------------------------

impl Ctx<'_> {
    /// Stops the server loop after the current callback.
    pub fn stop(&mut self) {
        self.em.stop();
    }

    /// Begins a graceful shutdown, as a [`ShutdownHandle`] does: listeners
    /// close, idle clients are closed, busy ones get up to `grace` to
    /// finish; the loop returns when the last client is gone. A second
    /// call (or a handle's) changes nothing.
    ///
    /// For an application that triggers its own eventfd from another
    /// thread (a signal handler's thread, say) this needs no descriptor of
    /// its own, so nothing is left behind in a handover; a
    /// [`ShutdownHandle`]'s eventfd is carried like any other.
    ///
    /// Refused while the server is quiesced for a handover
    /// ([`Server::quiesce`]): resume it first.
    pub fn shutdown(&mut self, grace: Duration) -> Result<(), Error> {
        if self.core.quiescing {
            return Err(Error::Handover("the server is quiesced for a handover"));
        }
        self.core.begin_shutdown(self.em, grace);
        Ok(())
    }

    /// Whether a graceful shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.core.timers.shutdown_deadline().is_some()
    }

    /// Keeps `value` for `client` (any kind: HTTP, WebSocket, RAW), so an
    /// application needs no `HashMap<ClientId, _>` of its own beside the
    /// server's connection table. [`Ctx::user_data`] reads it back — also
    /// in the client's close callback, after which it is gone (a client
    /// that reuses the slot starts at 0). It stays across a WebSocket
    /// upgrade (the client id does not change).
    ///
    /// A plain `u64` on purpose: it travels with the client in a handover
    /// ([`Server::export`] / [`Server::import`], in a new process too), as
    /// everything in a snapshot must be plain data. An application with
    /// richer per-client state keeps it in a table of its own (a `Vec` or
    /// slab) and stores the index here; such a table is the application's
    /// to carry over ([`Application::export`]). Costs nothing until used,
    /// then 8 bytes per connection slot.
    ///
    /// Fails with [`Error::Stale`] for a closed client (in its close
    /// callback too: it is leaving).
    ///
    /// ```no_run
    /// # use network_server::{Application, ClientId, Ctx, HttpEvent};
    /// const CHAT: u64 = 1;
    /// struct App;
    /// impl Application for App {
    ///     fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
    ///         if let HttpEvent::Request(req) = ev {
    ///             if req.path == "/chat" && ctx.ws_upgrade(client, req, None).is_ok() {
    ///                 let _ = ctx.set_user_data(client, CHAT); // which room, say
    ///             }
    ///         }
    ///     }
    ///     fn on_ws_open(&mut self, ctx: &mut Ctx<'_>, client: ClientId) {
    ///         if ctx.user_data(client) == Ok(CHAT) {
    ///             let _ = ctx.ws_subscribe(client, "chat");
    ///         }
    ///     }
    /// }
    /// ```
    pub fn set_user_data(&mut self, client: ClientId, value: u64) -> Result<(), Error> {
        if self.core.conns.set_user_data(client, value) {
            Ok(())
        } else {
            Err(Error::Stale(client))
        }
    }

    /// The value [`Ctx::set_user_data`] kept for `client`, 0 if none was
    /// set. Readable until the client's close callback has returned; then
    /// [`Error::Stale`].
    pub fn user_data(&self, client: ClientId) -> Result<u64, Error> {
        self.core
            .conns
            .user_data(client)
            .ok_or(Error::Stale(client))
    }

    /// The protocol a live client speaks.
    pub fn client_kind(&self, client: ClientId) -> Result<ClientKind, Error> {
        self.core
            .conn_ref(client)
            .map(Conn::kind)
            .ok_or(Error::Stale(client))
    }

    /// The address of the client's peer: for an HTTP or WebSocket
    /// connection, or a RAW TCP connection, the remote end's IP address and
    /// port (what the peer's `TcpStream::local_addr` says). Fails with
    /// [`Error::Stale`] for a closed client, [`Error::NotIpSocket`] for one
    /// that is not an IPv4/IPv6 socket (an adopted file, pipe or Unix
    /// socket), and [`Error::Io`] with the kernel's error otherwise (e.g.
    /// `ENOTCONN` for an unconnected socket, or for a connection still
    /// closing whose peer has already gone).
    ///
    /// The kernel is asked on each call (one `getpeername`); an application
    /// that needs it after the peer may have gone, or per request, can keep
    /// it from [`Application::on_accept`].
    pub fn peer_addr(&self, client: ClientId) -> Result<SocketAddr, Error> {
        self.socket_addr(client, true)
    }

    /// The local address of the client's socket: the server's address and
    /// port the peer connected to (useful behind a wildcard listener such
    /// as `0.0.0.0` or `[::]`). Errors as [`Ctx::peer_addr`].
    pub fn local_addr(&self, client: ClientId) -> Result<SocketAddr, Error> {
        self.socket_addr(client, false)
    }

    fn socket_addr(&self, client: ClientId, peer: bool) -> Result<SocketAddr, Error> {
        let fd = self.em.raw_fd(client)?;
        if self.em.kind(client)? != event_manager::FdKind::Socket {
            return Err(Error::NotIpSocket(client));
        }
        match socket_addr(fd, peer) {
            Ok(Some(addr)) => Ok(addr),
            Ok(None) => Err(Error::NotIpSocket(client)),
            Err(e) => Err(Error::Io(event_manager::Error::Os(
                e.raw_os_error().unwrap_or(libc::EINVAL),
            ))),
        }
    }

    /// Bytes queued for writing to a client and not yet written.
    pub fn queued_bytes(&self, client: ClientId) -> Result<usize, Error> {
        self.core
            .conn_ref(client)
            .map(|c| c.out.bytes())
            .ok_or(Error::Stale(client))
    }

    /// Open clients by kind (walks the connection table).
    pub fn client_counts(&self) -> ClientCounts {
        self.core.conns.counts()
    }

    /// The event manager's counters (ring submissions, completions, …).
    pub fn ring_stats(&self) -> event_manager::Stats {
        self.em.stats()
    }

    /// Counters of this server.
    pub fn stats(&self) -> ServerStats {
        self.core.stats
    }

    pub(crate) fn writable(
        &mut self,
        client: ClientId,
        kind: ClientKind,
        extra: usize,
    ) -> Result<(), Error> {
        let max = self.core.config.max_queued_bytes;
        // A run's frames count in what the client has queued.
        self.core.settle_run();
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        if conn.kind() != kind {
            return Err(Error::WrongProtocol(client));
        }
        if conn.phase != Phase::Open {
            return Err(Error::Closing(client));
        }
        if conn.out.bytes() + extra > max && conn.out.bytes() > 0 {
            return Err(Error::Backpressure(client));
        }
        Ok(())
    }

    /// Queues one application write (its buffers come back together).
    pub(crate) fn queue_app(&mut self, client: ClientId, bufs: Vec<OutBuf>, skip: bool) {
        let n = bufs.len();
        let items = bufs
            .into_iter()
            .enumerate()
            .map(move |(i, b)| (b, Owner::App { last: i + 1 == n }, skip));
        self.core.queue(self.em, client, items);
    }

    // ----- RAW -------------------------------------------------------------

    /// Hands an existing descriptor (pipe, file, socket) to the server as a
    /// RAW client.
    pub fn adopt(&mut self, fd: OwnedFd) -> Result<ClientId, Error> {
        let pfd = self.em.adopt(fd)?;
        self.core.conns.insert(Conn::new(pfd, Proto::Raw));
        Ok(pfd)
    }

    /// Reads into `buf`'s spare capacity; [`Application::on_raw_read`]
    /// follows. `offset` is for files (`None` = current position).
    pub fn raw_read(
        &mut self,
        client: ClientId,
        buf: Vec<u8>,
        offset: Option<u64>,
    ) -> Result<(), Error> {
        self.check_raw(client)?;
        self.core
            .submit_raw_read(self.em, client, ReadBufs::One(buf), offset)
    }

    /// Reads into each buffer's spare capacity in turn.
    pub fn raw_readv(
        &mut self,
        client: ClientId,
        bufs: Vec<Vec<u8>>,
        offset: Option<u64>,
    ) -> Result<(), Error> {
        self.check_raw(client)?;
        self.core
            .submit_raw_read(self.em, client, ReadBufs::Many(bufs), offset)
    }

    /// Writes a buffer; [`Application::on_raw_write`] gives it back.
    pub fn raw_write(&mut self, client: ClientId, buf: impl Into<OutBuf>) -> Result<(), Error> {
        let buf = buf.into();
        self.writable(client, ClientKind::Raw, buf.len())?;
        self.queue_app(client, vec![buf], false);
        Ok(())
    }

    /// Writes several buffers in order without copying them together.
    pub fn raw_writev(&mut self, client: ClientId, bufs: Vec<OutBuf>) -> Result<(), Error> {
        let len = bufs.iter().map(OutBuf::len).sum();
        self.writable(client, ClientKind::Raw, len)?;
        self.queue_app(client, bufs, false);
        Ok(())
    }

    /// Closes a RAW client; [`Application::on_raw_close`] follows once.
    pub fn raw_close(&mut self, client: ClientId) -> Result<(), Error> {
        self.check_raw(client)?;
        self.core
            .hard_close(self.em, client, Some(CloseReason::Application));
        Ok(())
    }

    fn check_raw(&mut self, client: ClientId) -> Result<(), Error> {
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        if !matches!(conn.proto, Proto::Raw) {
            return Err(Error::WrongProtocol(client));
        }
        if conn.phase != Phase::Open {
            return Err(Error::Closing(client));
        }
        Ok(())
    }

    // ----- eventfds --------------------------------------------------------

    /// Opens an eventfd.
    pub fn eventfd_open(&mut self) -> Result<EventId, Error> {
        Ok(self.em.eventfd_open()?)
    }

    /// Arms the eventfd: the next trigger calls
    /// [`Application::on_event`] with `info`.
    pub fn eventfd_prepare(&mut self, event: EventId, info: u64) -> Result<(), Error> {
        self.em.eventfd_arm(event, info, OpTag::AppEvent.encode())?;
        Ok(())
    }

    /// Triggers the eventfd from the loop's own thread.
    pub fn eventfd_trigger(&mut self, event: EventId) -> Result<(), Error> {
        Ok(self.em.eventfd_trigger(event)?)
    }

    /// A handle to trigger the eventfd from any thread.
    pub fn eventfd_trigger_handle(
        &mut self,
        event: EventId,
    ) -> Result<event_manager::EventTrigger, Error> {
        Ok(self.em.eventfd_trigger_handle(event)?)
    }

    /// Closes the eventfd (a prepared wait ends without a callback).
    pub fn eventfd_close(&mut self, event: EventId) -> Result<(), Error> {
        Ok(self.em.close(event, OpTag::Close.encode())?)
    }

    // ----- files -----------------------------------------------------------

    /// Opens a file; [`Application::on_file`] gets [`FileEvent::Opened`]
    /// with a RAW client for it. `tag` comes back in the event: its low 56
    /// bits (the top 8 are dropped; the same for `file_stat`, `file_fstat`
    /// and `file_unlink`).
    pub fn file_open(
        &mut self,
        path: &std::path::Path,
        flags: i32,
        mode: u32,
        tag_: u64,
    ) -> Result<(), Error> {
        self.em
            .open(path, flags, mode, OpTag::app_file(tag_).encode())?;
        Ok(())
    }

    /// `stat` of a path; [`FileEvent::Stat`] follows.
    pub fn file_stat(&mut self, path: &std::path::Path, tag_: u64) -> Result<(), Error> {
        self.em.stat(path, OpTag::app_file(tag_).encode())?;
        Ok(())
    }

    /// `fstat` of an open RAW client (e.g. an opened file).
    pub fn file_fstat(&mut self, client: ClientId, tag_: u64) -> Result<(), Error> {
        self.em.fstat(client, OpTag::app_file(tag_).encode())?;
        Ok(())
    }

    /// Removes a file; [`FileEvent::Unlinked`] follows.
    pub fn file_unlink(&mut self, path: &std::path::Path, tag_: u64) -> Result<(), Error> {
        self.em
            .unlink(path, false, OpTag::app_file(tag_).encode())?;
        Ok(())
    }
}
