//! Handing a whole server over to a fresh one: [`Server::quiesce`],
//! [`Server::export`], [`Server::release`], [`Server::import`],
//! [`Server::resume`] (see `docs/handover.md`).
//!
//! Quiescing stops the event manager's receives, accepts, eventfd reads and
//! timers (kept suspended, with their ids), and cuts every write in flight
//! at the exact byte it reached (the rest goes back to the front of the
//! connection's queue). Until the server resumes, bytes that still arrive
//! are kept unparsed with their connection, and nothing is submitted:
//! output stays queued, closes that need a `shutdown` wait, RAW reads (asked
//! for, or cut by the quiesce) are submitted on resume. The snapshot
//! is then plain data — listeners, every connection with its protocol
//! state, topics, counters, file roots, send-file transfers, upload
//! directories and uploads, each client's user value
//! ([`crate::Ctx::set_user_data`]), the event manager's own snapshot and
//! the application's bytes — and the descriptors.
//!
//! Files (`send_file.rs`, `upload.rs`): file roots and upload directories
//! keep their pfds and indexes (so `FileRootId`s and `UploadDirId`s stay
//! valid; a root's not-found page travels as its bytes). A transfer in
//! progress carries its step, its file's (and a listed directory's) pfd,
//! the segments still to send — file ranges with their offsets, and the
//! part heads of a `multipart/byteranges` answer — the head bytes held to
//! leave with the first file bytes, and the file's stat; bytes already
//! queued are in the connection's output queue. An upload carries its
//! multipart parser state, the parts so far, each file's pfd, path, write
//! offset and the bytes parsed but not yet written, and its flags and
//! counters. While quiescing no transfer or upload operation is submitted:
//! a step held back — or cut short by the cancel (an open, `fstat`, file
//! read, upload file creation; an upload write keeps its unwritten tail at
//! its offset) — is marked and submitted again by [`Server::resume`], in
//! the old server (rollback) or the new one. A transfer waiting for the
//! file helper thread's directory listing asks for it again after the
//! resume (the thread is stopped by the quiesce).
//!
//! Not carried: the file cache (the new server starts with an empty one)
//! and the helper thread; a quiesce is refused while a listing asked for
//! with `Ctx::file_list_dir` is still on that thread (its answer could not
//! be delivered).

use std::os::fd::{OwnedFd, RawFd};
use std::time::{Duration, Instant};

use event_manager::snapshot::{self, SnapshotError};
use event_manager::{Completion, EventManager, Pfd};
use serde::{Deserialize, Serialize};

use crate::connections::{Conn, Pauses, Phase, Proto, RecvState};
use crate::listeners::Listener;
use crate::out_queue::QueueState;
use crate::server::Core;
use crate::{Application, CloseReason, Error, Protocol, Server, ServerConfig, ServerStats};

const MAGIC: [u8; 4] = *b"RTNS";
/// 2: version 1 and, after it, each file root's
/// [`crate::FileRootOptions::dotfiles`] (version 1 roots served dotfiles).
/// 3: version 2 and, after it, the application's value per client
/// ([`crate::Ctx::set_user_data`]; none in versions 1 and 2).
/// 4: version 3 and, after it, TLS connections and HTTPS listeners (none
/// before).
const VERSION: u16 = 4;
const OLDEST_VERSION: u16 = 1;

/// How long [`Server::quiesce`] lets TLS handshakes under way finish.
const HANDSHAKE_WAIT: Duration = Duration::from_millis(500);

/// How long [`Server::quiesce`] waits for the event manager to give back
/// what was in flight (cancelled at once, so this is only a bound).
const QUIESCE_LIMIT: Duration = Duration::from_secs(10);

/// An exported server: [`Server::export`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSnapshot {
    /// The versioned encoding of the server's state (including the event
    /// manager's and the application's).
    pub bytes: Vec<u8>,
    /// The descriptors, in the order [`Server::release`] gives them and
    /// [`Server::import`] takes them; still owned by the exporting server.
    pub fds: Vec<RawFd>,
}

// ----- the format, version 4 ------------------------------------------------

/// Version 4: version 3's body followed by what version 3 lacks.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotV4 {
    v3: SnapshotV3,
    /// Each TLS connection (pfd, state), in pfd order.
    tls: Vec<(u64, crate::tls_conn::TlsV4)>,
    /// The pfds of the HTTPS listeners.
    https: Vec<u64>,
}

/// Checks the TLS part of a snapshot: each entry a connection of the
/// snapshot speaking HTTP or WebSocket, once, with keys that make a record
/// layer; HTTPS listeners among the listeners, and TLS settings to serve
/// them with.
fn check_tls(
    config: &ServerConfig,
    tls: &[(u64, crate::tls_conn::TlsV4)],
    https: &[u64],
    body: &SnapshotV1,
) -> Result<(), SnapshotError> {
    let mut seen = std::collections::HashSet::with_capacity(tls.len());
    for (client, t) in tls {
        let pfd = Pfd::from_u64(*client);
        let fits = body
            .conns
            .iter()
            .any(|c| c.pfd == *client && !matches!(c.proto, ProtoV1::Raw));
        if !fits || !seen.insert(*client) {
            return Err(invalid(format!("TLS state for {pfd} does not fit")));
        }
        crate::tls_conn::TlsConn::import(t)
            .map_err(|e| invalid(format!("TLS state for {pfd}: {e}")))?;
    }
    for l in https {
        if !body.listeners.iter().any(|x| x.pfd == *l && !x.raw) {
            return Err(invalid(format!(
                "HTTPS listener {} is not a listener",
                Pfd::from_u64(*l)
            )));
        }
    }
    if !https.is_empty() && config.tls.is_none() {
        return Err(invalid("HTTPS listeners need ServerConfig::tls"));
    }
    Ok(())
}

// ----- the format, version 3 ------------------------------------------------

/// Version 3: version 2's body followed by what version 2 lacks.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotV3 {
    v2: SnapshotV2,
    /// `(client, value)` for each client whose value is not 0, in pfd
    /// index order.
    user_data: Vec<(u64, u64)>,
    /// Request bodies being collected ([`crate::Ctx::http_collect_body`]).
    bodies: Vec<BodyV3>,
    /// Access-log records of requests in progress and of WebSockets
    /// (`access_log.rs`).
    access: Vec<AccessV3>,
}

/// An access-log record: a request's (`ws` false; its request line and
/// peer are in the HTTP state) or a WebSocket's.
#[derive(Debug, Serialize, Deserialize)]
struct AccessV3 {
    client: u64,
    ws: bool,
    /// A WebSocket's request line and peer.
    line: Option<String>,
    peer: Option<String>,
    referer: Option<String>,
    user_agent: Option<String>,
    /// Milliseconds from the request (or upgrade) to the export.
    elapsed_ms: u64,
    status: u16,
    bytes_out: u64,
    bytes_in: u64,
}

impl AccessV3 {
    fn of(client: Pfd, a: &crate::access_log::Access, now: crate::timers::Tick) -> AccessV3 {
        AccessV3 {
            client: client.to_u64(),
            ws: false,
            line: None,
            peer: None,
            referer: a.referer.as_deref().map(str::to_string),
            user_agent: a.user_agent.as_deref().map(str::to_string),
            elapsed_ms: a.start.map_or(0, |s| now.millis_since(s)),
            status: a.status,
            bytes_out: a.bytes_out,
            bytes_in: a.bytes_in,
        }
    }

    fn access(&self, now: crate::timers::Tick) -> crate::access_log::Access {
        crate::access_log::Access {
            referer: self.referer.clone().map(String::into_boxed_str),
            user_agent: self.user_agent.clone().map(String::into_boxed_str),
            start: Some(now.minus_millis(self.elapsed_ms)),
            status: self.status,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
        }
    }
}

/// Checks the access-log records: each of a connection of the right kind,
/// once; a WebSocket's with its request line and a peer that parses.
fn check_access(access: &[AccessV3], conns: &[ConnV1]) -> Result<(), SnapshotError> {
    let mut seen = std::collections::HashSet::with_capacity(access.len());
    for a in access {
        let pfd = Pfd::from_u64(a.client);
        let fits = conns.iter().find(|c| c.pfd == a.client).is_some_and(|c| {
            matches!(
                (&c.proto, a.ws),
                (ProtoV1::Http(_), false) | (ProtoV1::WebSocket(_), true)
            )
        });
        if !fits || (a.ws && a.line.is_none()) {
            return Err(invalid(format!("access-log record for {pfd} does not fit")));
        }
        if let Some(p) = &a.peer {
            p.parse::<std::net::SocketAddr>()
                .map_err(|_| invalid(format!("access-log peer {p:?}")))?;
        }
        if !seen.insert(a.client) {
            return Err(invalid(format!("access-log record for {pfd} twice")));
        }
    }
    Ok(())
}

/// A request body being collected.
#[derive(Debug, Serialize, Deserialize)]
struct BodyV3 {
    client: u64,
    limit: u64,
    bytes: serde_bytes::ByteBuf,
}

/// Decodes a body of `version` (1, 2 or 3, checked by `snapshot::open`) as
/// version 3: clients of older versions have no user data.
fn decode_body(version: u16, body: &[u8]) -> Result<SnapshotV3, SnapshotError> {
    if version < 3 {
        return Ok(SnapshotV3 {
            v2: decode_body_v2(version, body)?,
            user_data: Vec::new(),
            bodies: Vec::new(),
            access: Vec::new(),
        });
    }
    snapshot::decode(body)
}

/// Checks the user data of a snapshot against its connections: each
/// client named once, and a connection of the snapshot.
/// Opens and decodes a snapshot of any version this reader knows, as
/// version 4.
fn open_body(bytes: &[u8]) -> Result<SnapshotV4, SnapshotError> {
    let (version, body) = snapshot::open(bytes, MAGIC, OLDEST_VERSION, VERSION)?;
    if version < 4 {
        return Ok(SnapshotV4 {
            v3: decode_body(version, body)?,
            tls: Vec::new(),
            https: Vec::new(),
        });
    }
    snapshot::decode(body)
}

/// What versions 3 and 4 add to a snapshot, checked against its
/// connections and listeners (by `check_snapshot` and by an import alike).
fn check_tail(config: &ServerConfig, snap: &SnapshotV4) -> Result<(), SnapshotError> {
    let v3 = &snap.v3;
    let conns = &v3.v2.v1.conns;
    check_user_data(&v3.user_data, conns)?;
    check_bodies(config, &v3.bodies, conns)?;
    check_access(&v3.access, conns)?;
    check_tls(config, &snap.tls, &snap.https, &v3.v2.v1)
}

fn check_user_data(user_data: &[(u64, u64)], conns: &[ConnV1]) -> Result<(), SnapshotError> {
    let known: std::collections::HashSet<u64> = conns.iter().map(|c| c.pfd).collect();
    let mut seen = std::collections::HashSet::with_capacity(user_data.len());
    for &(client, _) in user_data {
        if !known.contains(&client) {
            return Err(invalid(format!(
                "user data for {}, not a connection",
                Pfd::from_u64(client)
            )));
        }
        if !seen.insert(client) {
            return Err(invalid(format!(
                "user data for {} twice",
                Pfd::from_u64(client)
            )));
        }
    }
    Ok(())
}

/// Checks the collected bodies of a snapshot: each of an HTTP connection
/// receiving a body, once, within its limit and `config`'s body limit.
fn check_bodies(
    config: &ServerConfig,
    bodies: &[BodyV3],
    conns: &[ConnV1],
) -> Result<(), SnapshotError> {
    let mut seen = std::collections::HashSet::with_capacity(bodies.len());
    for b in bodies {
        let pfd = Pfd::from_u64(b.client);
        let receiving = conns
            .iter()
            .find(|c| c.pfd == b.client)
            .is_some_and(|c| matches!(&c.proto, ProtoV1::Http(h) if h.in_body()));
        if !receiving {
            return Err(invalid(format!(
                "collected body for {pfd}, not an HTTP request receiving one"
            )));
        }
        if !seen.insert(b.client) {
            return Err(invalid(format!("collected body for {pfd} twice")));
        }
        if b.bytes.len() as u64 > b.limit || b.limit > config.max_body_size {
            return Err(invalid(format!(
                "collected body for {pfd}: {} bytes, limit {}",
                b.bytes.len(),
                b.limit
            )));
        }
    }
    Ok(())
}

// ----- the format, version 2 ------------------------------------------------

/// Version 2: version 1's body followed by what version 1 lacks.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotV2 {
    v1: SnapshotV1,
    /// [`crate::FileRootOptions::dotfiles`] of each file root, in order.
    root_dotfiles: Vec<bool>,
}

/// Decodes a body of `version` (1 or 2) as version 2: a version-1 server
/// had no dotfile rule, so its roots keep serving dotfiles.
fn decode_body_v2(version: u16, body: &[u8]) -> Result<SnapshotV2, SnapshotError> {
    if version == 1 {
        let v1: SnapshotV1 = snapshot::decode(body)?;
        let roots = crate::send_file::Transfers::roots_in(&v1.files);
        return Ok(SnapshotV2 {
            v1,
            root_dotfiles: vec![true; roots],
        });
    }
    snapshot::decode(body)
}

// ----- the format, version 1 ------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotV1 {
    #[serde(with = "serde_bytes")]
    em: Vec<u8>,
    listeners: Vec<ListenerV1>,
    conns: Vec<ConnV1>,
    topics: Vec<TopicV1>,
    stats: Vec<u64>,
    tick_armed: bool,
    raw_reads: Vec<ReadV1>,
    /// File roots, send-file transfers, upload directories and uploads.
    files: crate::send_file::FilesV1,
    #[serde(with = "serde_bytes")]
    app: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ListenerV1 {
    pfd: u64,
    raw: bool,
    addr: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TopicV1 {
    name: String,
    members: Vec<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConnV1 {
    pfd: u64,
    proto: ProtoV1,
    out: QueueState,
    /// The armed receive's id, if any (an `OpId` the event manager keeps).
    recv: RecvV1,
    pause: u8,
    phase: u8,
    reason: ReasonV1,
    /// Milliseconds from the export to the connection's deadline.
    deadline_ms: Option<u64>,
    linger_bytes: u32,
}

#[derive(Debug, Serialize, Deserialize)]
enum RecvV1 {
    Off,
    Armed(u64),
    Eof,
}

#[derive(Debug, Serialize, Deserialize)]
enum ReasonV1 {
    Application,
    Peer,
    ProtocolError(u16),
    Timeout,
    WebSocket(u16),
    Io(i32),
    Shutdown,
    IncompleteBody,
    Panic,
    Tls,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ProtoV1 {
    Http(crate::http::HttpV1),
    WebSocket(crate::ws::WsV1),
    Raw,
}

impl From<CloseReason> for ReasonV1 {
    fn from(r: CloseReason) -> ReasonV1 {
        match r {
            CloseReason::Application => ReasonV1::Application,
            CloseReason::Peer => ReasonV1::Peer,
            CloseReason::ProtocolError(s) => ReasonV1::ProtocolError(s),
            CloseReason::Timeout => ReasonV1::Timeout,
            CloseReason::WebSocket(c) => ReasonV1::WebSocket(c),
            CloseReason::Io(e) => ReasonV1::Io(e),
            CloseReason::Shutdown => ReasonV1::Shutdown,
            CloseReason::IncompleteBody => ReasonV1::IncompleteBody,
            CloseReason::Panic => ReasonV1::Panic,
            CloseReason::Tls => ReasonV1::Tls,
        }
    }
}

impl From<ReasonV1> for CloseReason {
    fn from(r: ReasonV1) -> CloseReason {
        match r {
            ReasonV1::Application => CloseReason::Application,
            ReasonV1::Peer => CloseReason::Peer,
            ReasonV1::ProtocolError(s) => CloseReason::ProtocolError(s),
            ReasonV1::Timeout => CloseReason::Timeout,
            ReasonV1::WebSocket(c) => CloseReason::WebSocket(c),
            ReasonV1::Io(e) => CloseReason::Io(e),
            ReasonV1::Shutdown => CloseReason::Shutdown,
            ReasonV1::IncompleteBody => CloseReason::IncompleteBody,
            ReasonV1::Panic => CloseReason::Panic,
            ReasonV1::Tls => CloseReason::Tls,
        }
    }
}

fn phase_code(p: Phase) -> u8 {
    match p {
        Phase::Open => 0,
        Phase::Draining => 1,
        Phase::ShutdownSent => 2,
        Phase::Lingering => 3,
        Phase::Closing => 4,
    }
}

fn phase_of(code: u8) -> Option<Phase> {
    Some(match code {
        0 => Phase::Open,
        1 => Phase::Draining,
        2 => Phase::ShutdownSent,
        3 => Phase::Lingering,
        _ => return None,
    })
}

fn invalid(m: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(m.into())
}

fn stats_row(s: &ServerStats) -> Vec<u64> {
    let mut v = vec![
        s.accepted,
        s.closed,
        s.requests,
        s.protocol_errors,
        s.timeouts,
        s.bytes_in,
        s.bytes_out,
        s.ws_upgrades,
        s.ws_messages_in,
        s.ws_broadcast_deliveries,
        s.ws_broadcast_drops,
        s.queued_bytes_high_water,
        s.output_pauses,
        s.write_timeouts,
        s.app_panics,
        s.input_high_water,
    ];
    v.extend_from_slice(&s.responses);
    v.extend_from_slice(&[
        s.tls_handshakes,
        s.tls_handshake_failures,
        s.tls_handshake_timeouts,
        s.tls_plain_http,
        s.tls_errors,
        s.file_splices,
        s.file_splice_fallbacks,
        s.spliced_bytes,
        s.pipe_bytes_rewound,
    ]);
    v
}

fn stats_of(v: &[u64]) -> ServerStats {
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    ServerStats {
        accepted: at(0),
        closed: at(1),
        requests: at(2),
        protocol_errors: at(3),
        timeouts: at(4),
        bytes_in: at(5),
        bytes_out: at(6),
        ws_upgrades: at(7),
        ws_messages_in: at(8),
        ws_broadcast_deliveries: at(9),
        ws_broadcast_drops: at(10),
        queued_bytes_high_water: at(11),
        output_pauses: at(12),
        write_timeouts: at(13),
        app_panics: at(14),
        input_high_water: at(15),
        responses: [at(16), at(17), at(18), at(19), at(20)],
        tls_handshakes: at(21),
        tls_handshake_failures: at(22),
        tls_handshake_timeouts: at(23),
        tls_plain_http: at(24),
        tls_errors: at(25),
        file_splices: at(26),
        file_splice_fallbacks: at(27),
        spliced_bytes: at(28),
        pipe_bytes_rewound: at(29),
    }
}

impl Server {
    /// Stops the server where it is, for an [`export`](Server::export) (or
    /// a [`resume`](Server::resume), to roll back): every receive, accept,
    /// eventfd wait and timer is suspended, every write in flight is cut at
    /// the byte it reached, and nothing new is submitted. Completions that
    /// were already on their way are handled first (received bytes are
    /// kept unparsed; the application may be called for accepts, eventfds
    /// and finished writes, and what it queues stays queued). Returns once
    /// nothing of the server's is in the kernel.
    ///
    /// Refused (nothing changes) during a graceful shutdown and while the
    /// file helper thread still owes the application a directory listing
    /// (`Ctx::file_list_dir`). Send-file transfers and uploads in progress
    /// are carried (see the module documentation).
    pub fn quiesce<A: Application>(&mut self, app: &mut A) -> Result<(), Error> {
        let Server { em, core } = self;
        if core.timers.shutdown_deadline().is_some() {
            return Err(Error::Handover("the server is shutting down"));
        }
        if let Some(why) = core.transfers.handover_refusal() {
            return Err(Error::Handover(why));
        }
        let extractable = core
            .config
            .tls
            .as_ref()
            .is_some_and(|t| t.enable_secret_extraction);
        if core.tls.len() > 0 && !extractable {
            // A session's keys cannot leave rustls: it could not be carried.
            return Err(Error::Handover(
                "TLS connections are open and ServerConfig::tls has enable_secret_extraction off",
            ));
        }
        // TLS handshakes under way cannot be carried (rustls gives up a
        // session's keys only once it is established): let those already
        // started finish first, serving as usual, for a bounded time;
        // whatever is still in its handshake after that is closed by the
        // importing side (its client starts over).
        let handshaking: Vec<Pfd> = core
            .conns
            .iter()
            .filter(|c| c.is_tls() && core.tls.get(c.pfd).is_some_and(|t| t.handshaking()))
            .map(|c| c.pfd)
            .collect();
        let limit = Instant::now() + HANDSHAKE_WAIT;
        while handshaking
            .iter()
            .any(|&p| core.tls.get(p).is_some_and(|t| t.handshaking()))
            && Instant::now() < limit
        {
            em.turn(
                &mut |em: &mut EventManager, c: Completion| core.on_completion(em, app, c),
                Some(Duration::from_millis(10)),
            )?;
        }
        core.quiescing = true;
        // The file helper thread and its eventfd are not carried over.
        core.transfers.stop_helper(em);
        em.quiesce();
        // Pipes of splicing transfers are closed and their file offsets
        // moved back over what they held (now, or when their splices come
        // back cut): a handover carries no pipe.
        core.quiesce_pipes(em);
        let limit = Instant::now() + QUIESCE_LIMIT;
        while !em.is_quiesced() {
            if Instant::now() >= limit {
                return Err(Error::Handover("the event manager did not quiesce in time"));
            }
            em.turn(
                &mut |em: &mut EventManager, c: Completion| core.on_completion(em, app, c),
                Some(Duration::from_millis(10)),
            )?;
            // Closes asked for meanwhile (by the application) are allowed
            // to finish; anything else they queued waits.
        }
        // An upgrade made outside a callback (through `Server::ctx`) is
        // announced now: a snapshot carries no pending `on_ws_open`.
        core.ws_open_callbacks(em, app);
        Ok(())
    }

    /// Writes the quiesced server down (see the module documentation):
    /// closes nothing and changes nothing, so [`resume`](Server::resume)
    /// may follow instead of [`release`](Server::release). The
    /// application's [`Application::export`] bytes go with it.
    pub fn export<A: Application>(&mut self, app: &mut A) -> Result<ServerSnapshot, Error> {
        if !self.core.quiescing || !self.em.is_quiesced() {
            return Err(Error::Handover("export needs a quiesced server"));
        }
        // Lines of answers already given are this server's to write.
        self.core.access_lines.flush();
        let em_snap = self.em.export()?;
        // Established TLS sessions leave rustls for the record layer that
        // travels (`tls_records.rs`); one still in its handshake cannot.
        let tls_pfds: Vec<Pfd> = self
            .core
            .conns
            .iter()
            .filter(|c| c.is_tls())
            .map(|c| c.pfd)
            .collect();
        let mut tls = Vec::with_capacity(tls_pfds.len());
        for pfd in tls_pfds {
            if let Some(t) = self.core.tls.get_mut(pfd) {
                if let Err(e) = t.move_keys_out() {
                    tracing::debug!(%pfd, reason = %e, "TLS connection not carried: closed by the importer");
                }
                tls.push((pfd.to_u64(), t.export()));
            }
        }
        let app_bytes = app.export(&mut self.ctx());
        // What the application broadcast meanwhile gets its bytes.
        self.core.seal_broadcast();
        let core = &self.core;
        let now = core.timers.now;
        let mut conns = Vec::new();
        for c in core.conns.iter() {
            conns.push(export_conn(c, now)?);
        }
        let files = core.transfers.export()?;
        let root_dotfiles = core.transfers.export_dotfiles();
        let v1 = SnapshotV1 {
            em: em_snap.bytes,
            listeners: core
                .listeners
                .iter()
                .map(|l| ListenerV1 {
                    pfd: l.pfd.to_u64(),
                    raw: l.protocol == Protocol::Raw,
                    addr: l.addr.to_string(),
                })
                .collect(),
            conns,
            topics: core
                .topics
                .export()
                .into_iter()
                .map(|(name, members)| TopicV1 {
                    name,
                    members: members.iter().map(|p| p.to_u64()).collect(),
                })
                .collect(),
            stats: stats_row(&core.stats),
            tick_armed: core.timers.tick_armed(),
            raw_reads: core.raw_reads.iter().map(export_read).collect(),
            files,
            app: app_bytes,
        };
        let user_data = core
            .conns
            .user_data_set()
            .into_iter()
            .map(|(pfd, v)| (pfd.to_u64(), v))
            .collect();
        let bodies = core
            .conns
            .iter()
            .filter_map(|c| match &c.proto {
                Proto::Http(h) => h.collect.as_ref().map(|b| BodyV3 {
                    client: c.pfd.to_u64(),
                    limit: b.limit,
                    bytes: serde_bytes::ByteBuf::from(b.buf.clone()),
                }),
                _ => None,
            })
            .collect();
        let mut access: Vec<AccessV3> = core
            .conns
            .iter()
            .filter_map(|c| match &c.proto {
                Proto::Http(h) => h.access.as_ref().map(|a| AccessV3::of(c.pfd, a, now)),
                _ => None,
            })
            .collect();
        for (&pfd, w) in &core.ws_access {
            let mut a = AccessV3::of(pfd, &w.access, now);
            a.ws = true;
            a.line = Some(w.line.to_string());
            a.peer = w.peer.map(|p| p.to_string());
            access.push(a);
        }
        access.sort_by_key(|a| a.client);
        let https = core
            .listeners
            .iter()
            .filter(|l| l.protocol == Protocol::Https)
            .map(|l| l.pfd.to_u64())
            .collect();
        let body = SnapshotV4 {
            v3: SnapshotV3 {
                v2: SnapshotV2 { v1, root_dotfiles },
                user_data,
                bodies,
                access,
            },
            tls,
            https,
        };
        Ok(ServerSnapshot {
            bytes: snapshot::write(MAGIC, VERSION, &body),
            fds: em_snap.fds,
        })
    }

    /// Gives up the descriptors (in [`ServerSnapshot::fds`] order) and
    /// drops the server without closing them or calling the application.
    pub fn release(self) -> Vec<OwnedFd> {
        let Server { em, mut core } = self;
        // Nothing of the core may close a pfd on drop: its parts hold none
        // the event manager would not give up here. Uploads in progress
        // belong to the importing server: their files stay.
        core.transfers.uploads.forget();
        drop(core);
        em.release()
    }

    /// A server (with `config`) that takes over an exported one: the
    /// descriptors are [`ServerSnapshot::fds`]. Client ids, listener ids,
    /// topics, deadlines and every connection's protocol state are as they
    /// were; the application gets its bytes through
    /// [`Application::import`]. The server starts quiesced: call
    /// [`resume`](Server::resume). On error nothing is kept and the
    /// descriptors come back.
    #[allow(clippy::result_large_err)]
    pub fn import<A: Application>(
        config: ServerConfig,
        bytes: &[u8],
        fds: Vec<OwnedFd>,
        app: &mut A,
    ) -> Result<Server, (SnapshotError, Vec<OwnedFd>)> {
        let body = match open_body(bytes) {
            Ok(b) => b,
            Err(e) => return Err((e, fds)),
        };
        let em = EventManager::import(config.ring.clone(), &body.v3.v2.v1.em, fds)?;
        Server::import_body(config, em, body, app)
    }

    /// [`Server::import`] into this server, which must be fresh (made by
    /// [`Server::new`], nothing opened or listened on): with its
    /// configuration, and the ring it already has — so a handover's pause
    /// does not include setting one up. A server that is not fresh is
    /// refused and dropped. `check`: which descriptors are checked against
    /// the snapshot ([`event_manager::DescriptorCheck`]; `import` checks
    /// every one).
    #[allow(clippy::result_large_err)]
    pub fn import_into<A: Application>(
        self,
        bytes: &[u8],
        fds: Vec<OwnedFd>,
        check: event_manager::DescriptorCheck,
        app: &mut A,
    ) -> Result<Server, (SnapshotError, Vec<OwnedFd>)> {
        let body = match open_body(bytes) {
            Ok(b) => b,
            Err(e) => return Err((e, fds)),
        };
        let Server { em, core } = self;
        let config = core.config.clone();
        drop(core);
        let em = em.import_into(&body.v3.v2.v1.em, fds, check)?;
        Server::import_body(config, em, body, app)
    }

    #[allow(clippy::result_large_err)]
    fn import_body<A: Application>(
        config: ServerConfig,
        em: EventManager,
        body: SnapshotV4,
        app: &mut A,
    ) -> Result<Server, (SnapshotError, Vec<OwnedFd>)> {
        let mut server = Server::from_parts(config, em);
        if let Err(e) = server.import_state(body, app) {
            let fds = server.release();
            return Err((e, fds));
        }
        Ok(server)
    }

    /// Decodes and checks a snapshot against `config` without importing it
    /// (no ring, no descriptors): the format, the event manager's part, and
    /// every connection's protocol state against this configuration's
    /// limits — what [`Server::import`] checks before it takes anything
    /// over, short of the descriptors themselves. Returns the number of
    /// connections.
    pub fn check_snapshot(config: &ServerConfig, bytes: &[u8]) -> Result<usize, SnapshotError> {
        let snap = open_body(bytes)?;
        check_tail(config, &snap)?;
        let SnapshotV2 {
            v1: body,
            root_dotfiles,
        } = snap.v3.v2;
        if root_dotfiles.len() != crate::send_file::Transfers::roots_in(&body.files) {
            return Err(invalid("file roots and dotfile settings differ in number"));
        }
        EventManager::check_snapshot(&body.em)?;
        for c in &body.conns {
            check_conn(config, c)?;
        }
        crate::send_file::check_files(&body.files)?;
        Ok(body.conns.len())
    }

    fn import_state<A: Application>(
        &mut self,
        body: SnapshotV4,
        app: &mut A,
    ) -> Result<(), SnapshotError> {
        check_tail(&self.core.config, &body)?;
        let SnapshotV4 {
            v3:
                SnapshotV3 {
                    v2:
                        SnapshotV2 {
                            v1: body,
                            root_dotfiles,
                        },
                    user_data,
                    bodies,
                    access,
                },
            tls,
            https,
        } = body;
        let Server { em, core } = self;
        core.quiescing = true;
        let open = |raw: u64, what: &str| -> Result<Pfd, SnapshotError> {
            let pfd = Pfd::from_u64(raw);
            em.raw_fd(pfd)
                .map(|_| pfd)
                .map_err(|_| invalid(format!("{what} {pfd} is not an open pfd")))
        };
        for l in body.listeners {
            let addr = l
                .addr
                .parse()
                .map_err(|_| invalid(format!("listener address {:?}", l.addr)))?;
            core.listeners.push(Listener {
                pfd: open(l.pfd, "listener")?,
                protocol: if l.raw {
                    Protocol::Raw
                } else if https.contains(&l.pfd) {
                    Protocol::Https
                } else {
                    Protocol::Http
                },
                addr,
            });
        }
        let now = core.timers.now;
        for c in body.conns {
            let pfd = open(c.pfd, "connection")?;
            if core.conns.get(pfd).is_some() {
                return Err(invalid(format!("connection {pfd} twice")));
            }
            // The receive the connection records must be the one the event
            // manager kept for it (or none): anything else would leave it
            // never reading, or reading twice.
            let kept = em.suspended_receive(pfd).map(|op| op.to_u64());
            let recorded = match c.recv {
                RecvV1::Armed(op) => Some(op),
                RecvV1::Off | RecvV1::Eof => None,
            };
            if kept != recorded {
                return Err(invalid(format!(
                    "{pfd}: receive {recorded:?}, event manager {kept:?}"
                )));
            }
            let conn = import_conn(core, pfd, c, now)?;
            core.conns.insert(conn);
        }
        for t in body.topics {
            core.topics.intern(&t.name);
            for m in t.members {
                let pfd = Pfd::from_u64(m);
                let ws = core
                    .conns
                    .get(pfd)
                    .is_some_and(|c| matches!(c.proto, Proto::WebSocket(_)));
                if !ws {
                    return Err(invalid(format!(
                        "topic {:?} member {pfd} is not a WebSocket",
                        t.name
                    )));
                }
                core.topics.subscribe(&t.name, pfd);
            }
        }
        // Each client's own list of topic ids must match the topics.
        for c in core.conns.iter() {
            if let Proto::WebSocket(w) = &c.proto {
                for &id in w.extra.iter().flat_map(|e| e.topics.iter()) {
                    if !core.topics.is_member(id, c.pfd) {
                        return Err(invalid(format!("{} lists topic {id} it is not in", c.pfd)));
                    }
                }
            }
        }
        for r in body.raw_reads {
            let r = import_read(core, r)?;
            core.raw_reads.push(r);
        }
        for (client, t) in tls {
            // Checked above: an HTTP or WebSocket connection of the
            // snapshot, with a state that imports.
            let pfd = Pfd::from_u64(client);
            let state = crate::tls_conn::TlsConn::import(&t).map_err(invalid)?;
            if let Some(conn) = core.conn(pfd) {
                conn.set_tls();
            }
            match state {
                Some(state) => core.tls.insert(pfd, Box::new(state)),
                // In its handshake at the export: closed on the resume
                // (the client starts over).
                None => core.tls_dropped.push(pfd),
            }
        }
        for (client, value) in user_data {
            // Checked above: a connection of the snapshot, now in the table.
            core.conns.set_user_data(Pfd::from_u64(client), value);
        }
        for b in bodies {
            // Checked above: an HTTP connection receiving a body.
            if let Some(Proto::Http(h)) = core.conn(Pfd::from_u64(b.client)).map(|c| &mut c.proto) {
                h.collect = Some(Box::new(crate::http::Collect {
                    limit: b.limit,
                    buf: b.bytes.into_vec(),
                }));
            }
        }
        for a in access {
            // Checked above: a connection of the kind the record says.
            let pfd = Pfd::from_u64(a.client);
            let record = a.access(now);
            if a.ws {
                let w = crate::access_log::WsAccess {
                    line: a.line.unwrap_or_default().into_boxed_str(),
                    peer: a.peer.and_then(|p| p.parse().ok()),
                    access: record,
                };
                core.ws_access.insert(pfd, w);
            } else if let Some(Proto::Http(h)) = core.conn(pfd).map(|c| &mut c.proto) {
                h.access = Some(Box::new(record));
            }
        }
        core.import_files(em, body.files, &root_dotfiles)?;
        core.stats = stats_of(&body.stats);
        core.timers.set_tick_armed(body.tick_armed);
        let mut ctx = crate::Ctx { em, core };
        app.import(&mut ctx, &body.app)
            .map_err(|e| invalid(format!("application state: {e}")))?;
        Ok(())
    }

    /// Goes on after a [`quiesce`](Server::quiesce) (a rollback) or an
    /// [`import`](Server::import): suspended operations are re-armed,
    /// queued output is written, input kept while quiesced is processed,
    /// closes that waited go on.
    pub fn resume<A: Application>(&mut self, app: &mut A) -> Result<(), Error> {
        let Server { em, core } = self;
        if !core.quiescing {
            return Ok(());
        }
        em.resume()?;
        core.quiescing = false;
        em.update_clock();
        core.timers.sync(em);
        for pfd in std::mem::take(&mut core.tls_dropped) {
            tracing::debug!(%pfd, "TLS handshake cut by the handover: closing");
            core.hard_close(em, pfd, Some(CloseReason::Tls));
        }
        let pfds: Vec<Pfd> = core.conns.iter().map(|c| c.pfd).collect();
        for pfd in pfds {
            core.resume_conn(em, pfd);
        }
        for r in std::mem::take(&mut core.raw_reads) {
            let client = r.client;
            if let Err(e) = core.submit_raw_read(em, r.client, r.bufs, r.offset) {
                tracing::warn!(%client, error = %e, "RAW read not resumed");
            }
        }
        core.resume_transfers(em);
        core.resume_uploads(em);
        core.after_callbacks(em, app);
        Ok(())
    }
}

/// A RAW read to submit when the server resumes (see `Core::raw_reads`).
#[derive(Debug)]
pub(crate) struct PendingRead {
    pub(crate) client: Pfd,
    pub(crate) bufs: crate::ReadBufs,
    pub(crate) offset: Option<u64>,
}

/// A pending RAW read as plain data: each buffer's bytes and capacity.
#[derive(Debug, Serialize, Deserialize)]
struct ReadV1 {
    client: u64,
    many: bool,
    bufs: Vec<(serde_bytes::ByteBuf, u64)>,
    offset: Option<u64>,
}

/// Largest buffer capacity an imported RAW read may ask for.
const MAX_READ_BUF: u64 = 64 << 20;

impl Core {
    /// Submits a RAW read — or, while quiescing, keeps it for the resume.
    pub(crate) fn submit_raw_read(
        &mut self,
        em: &mut EventManager,
        client: Pfd,
        bufs: crate::ReadBufs,
        offset: Option<u64>,
    ) -> Result<(), Error> {
        if self.quiescing {
            self.raw_reads.push(PendingRead {
                client,
                bufs,
                offset,
            });
            return Ok(());
        }
        let tag = crate::op_tag::OpTag::RawRead.encode();
        let op = match bufs {
            crate::ReadBufs::One(b) => em.read(client, b, offset, tag).map_err(|(e, _)| e)?,
            crate::ReadBufs::Many(b) => em.readv(client, b, offset, tag).map_err(|(e, _)| e)?,
        };
        if let Some(at) = offset {
            self.raw_read_offsets.insert(op, at);
        }
        Ok(())
    }
}

fn export_read(r: &PendingRead) -> ReadV1 {
    let buf = |b: &Vec<u8>| (serde_bytes::ByteBuf::from(b.clone()), b.capacity() as u64);
    let (many, bufs) = match &r.bufs {
        crate::ReadBufs::One(b) => (false, vec![buf(b)]),
        crate::ReadBufs::Many(v) => (true, v.iter().map(buf).collect()),
    };
    ReadV1 {
        client: r.client.to_u64(),
        many,
        bufs,
        offset: r.offset,
    }
}

fn import_read(core: &Core, r: ReadV1) -> Result<PendingRead, SnapshotError> {
    let client = Pfd::from_u64(r.client);
    if !core
        .conns
        .get(client)
        .is_some_and(|c| matches!(c.proto, Proto::Raw))
    {
        return Err(invalid(format!("RAW read for {client}, not a RAW client")));
    }
    if (!r.many && r.bufs.len() != 1) || r.bufs.len() > 1024 {
        return Err(invalid(format!("RAW read with {} buffers", r.bufs.len())));
    }
    let mut bufs = Vec::with_capacity(r.bufs.len());
    for (bytes, cap) in r.bufs {
        if cap > MAX_READ_BUF || (bytes.len() as u64) > cap {
            return Err(invalid(format!("RAW read buffer of {cap} bytes")));
        }
        let mut v = bytes.into_vec();
        v.reserve_exact(cap as usize - v.len());
        bufs.push(v);
    }
    Ok(PendingRead {
        client,
        bufs: if r.many {
            crate::ReadBufs::Many(bufs)
        } else {
            crate::ReadBufs::One(bufs.pop().expect("one buffer"))
        },
        offset: r.offset,
    })
}

fn export_conn(c: &Conn, now: crate::timers::Tick) -> Result<ConnV1, Error> {
    let out = c
        .out
        .export()
        .ok_or(Error::Handover("a connection has a write in flight"))?;
    let recv = match c.recv_state() {
        RecvState::Off => RecvV1::Off,
        RecvState::Armed => RecvV1::Armed(c.recv_op().map_or(0, |o| o.to_u64())),
        RecvState::Eof => RecvV1::Eof,
        RecvState::Cancelling => {
            return Err(Error::Handover("a connection is cancelling its receive"))
        }
    };
    if c.phase == Phase::Closing {
        return Err(Error::Handover("a connection is closing"));
    }
    let proto = match &c.proto {
        Proto::Http(h) => ProtoV1::Http(h.export()),
        Proto::WebSocket(w) => ProtoV1::WebSocket(w.export(c.pfd)?),
        Proto::Raw => ProtoV1::Raw,
    };
    Ok(ConnV1 {
        pfd: c.pfd.to_u64(),
        proto,
        out,
        recv,
        pause: c.pause.bits(),
        phase: phase_code(c.phase),
        reason: c.reason.into(),
        deadline_ms: c.deadline.map(|d| d.millis_after(now)),
        linger_bytes: c.linger_bytes,
    })
}

/// Checks what [`import_conn`] would build, without building it.
fn check_conn(config: &ServerConfig, c: &ConnV1) -> Result<(), SnapshotError> {
    let pfd = Pfd::from_u64(c.pfd);
    match &c.proto {
        ProtoV1::Http(h) => {
            crate::http::HttpConn::import(h.clone(), config)?;
        }
        ProtoV1::WebSocket(w) => {
            crate::ws::WsConn::import(w.clone(), config)?;
        }
        ProtoV1::Raw => {}
    }
    if let RecvV1::Armed(0) = c.recv {
        return Err(invalid(format!("{pfd}: receive id 0")));
    }
    Pauses::from_bits(c.pause).ok_or_else(|| invalid(format!("{pfd}: pause bits")))?;
    phase_of(c.phase).ok_or_else(|| invalid(format!("{pfd}: phase {}", c.phase)))?;
    Ok(())
}

fn import_conn(
    core: &mut Core,
    pfd: Pfd,
    c: ConnV1,
    now: crate::timers::Tick,
) -> Result<Conn, SnapshotError> {
    let proto = match c.proto {
        ProtoV1::Http(h) => Proto::Http(Box::new(crate::http::HttpConn::import(h, &core.config)?)),
        ProtoV1::WebSocket(w) => Proto::WebSocket(crate::ws::WsConn::import(w, &core.config)?),
        ProtoV1::Raw => Proto::Raw,
    };
    let mut conn = Conn::new(pfd, proto);
    conn.out = crate::out_queue::OutQueue::import(c.out);
    match c.recv {
        RecvV1::Off => {}
        RecvV1::Armed(op) => {
            let op = event_manager::OpId::from_u64(op)
                .ok_or_else(|| invalid(format!("{pfd}: receive id 0")))?;
            conn.recv_armed(op);
        }
        RecvV1::Eof => conn.recv_ended(true),
    }
    conn.pause = Pauses::from_bits(c.pause).ok_or_else(|| invalid(format!("{pfd}: pause bits")))?;
    conn.phase = phase_of(c.phase).ok_or_else(|| invalid(format!("{pfd}: phase {}", c.phase)))?;
    conn.reason = c.reason.into();
    conn.deadline = c.deadline_ms.map(|ms| now + Duration::from_millis(ms));
    conn.linger_bytes = c.linger_bytes;
    Ok(conn)
}

/// What a file-ish pfd in a snapshot must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// A directory (file roots, upload directories).
    Dir,
    /// A regular file (a file being sent, an uploaded file).
    Regular,
    /// Either (a file opened but not yet `fstat`ed).
    Any,
}

/// Checks that `raw` names a pfd the imported event manager holds, that it
/// is a file of the `kind` wanted (an `fstat` of the descriptor), and that
/// nothing else claimed it; records it in `claimed`.
pub(crate) fn claim_file_pfd(
    em: &EventManager,
    claimed: &mut std::collections::HashSet<u64>,
    raw: u64,
    kind: FileKind,
    what: &str,
) -> Result<Pfd, SnapshotError> {
    let pfd = Pfd::from_u64(raw);
    let fd = em
        .raw_fd(pfd)
        .map_err(|_| invalid(format!("{what} {pfd} is not an open pfd")))?;
    if em.kind(pfd).ok() != Some(event_manager::FdKind::File) {
        return Err(invalid(format!("{what} {pfd} is not a file")));
    }
    // SAFETY: `st` is a plain C struct for which all-zero bytes are valid;
    // `fstat` only writes into it, and `fd` is open (held by `em`).
    let mode = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 {
            return Err(invalid(format!("{what} {pfd}: fstat failed")));
        }
        st.st_mode & libc::S_IFMT
    };
    let fits = match kind {
        FileKind::Dir => mode == libc::S_IFDIR,
        FileKind::Regular => mode == libc::S_IFREG,
        FileKind::Any => mode == libc::S_IFDIR || mode == libc::S_IFREG,
    };
    if !fits {
        return Err(invalid(format!("{what} {pfd} is not a {kind:?} file")));
    }
    if !claimed.insert(raw) {
        return Err(invalid(format!("{what} {pfd} is named twice")));
    }
    Ok(pfd)
}

impl Core {
    /// While quiescing: bytes received by an open connection are kept with
    /// it unparsed — HTTP in its input buffer, WebSocket in its stash — so
    /// that nothing reaches the application and no work is made; the resume
    /// processes them.
    pub(crate) fn keep_input(&mut self, pfd: Pfd, data: &[u8]) {
        let now = self.timers.now;
        let header_timeout = self.config.header_read_timeout;
        let limits = crate::ws::ws_limits(&self.config);
        let Some(conn) = self.conn(pfd) else { return };
        match &mut conn.proto {
            Proto::Http(h) => {
                if h.keep_input(data) {
                    conn.deadline = Some(now + header_timeout);
                }
            }
            Proto::WebSocket(w) => {
                let compression = w.deflate.is_on();
                w.reader
                    .get_or_insert_with(|| crate::ws::Reader::new(&limits, compression))
                    .stash
                    .extend_from_slice(data);
            }
            Proto::Raw => {}
        }
    }

    /// After a resume: write what is queued, process input kept while
    /// quiesced, and go on with a close that waited.
    fn resume_conn(&mut self, em: &mut EventManager, pfd: Pfd) {
        let Some(conn) = self.conn(pfd) else { return };
        let pending_input = match &conn.proto {
            // A request body (an upload's, say) is read on while its
            // answer is awaited.
            Proto::Http(h) => {
                !h.inbuf.is_empty()
                    && (!h.awaiting_answer() || matches!(h.req, crate::http::ReqState::Body(_)))
            }
            Proto::WebSocket(w) => w.reader.as_ref().is_some_and(|r| !r.stash.is_empty()),
            Proto::Raw => false,
        };
        let draining = conn.phase == Phase::Draining;
        // TLS records cut short by the quiesce (their plaintext already
        // counted as written) wait outside the queue.
        let queued = !conn.out.is_idle()
            || (conn.is_tls() && self.tls.get(pfd).is_some_and(|t| !t.output_idle()));
        if pending_input {
            self.conns.push_ready(pfd);
        }
        if queued {
            self.mark_dirty(pfd);
        } else if draining {
            self.advance_close(em, pfd);
        }
        self.update_recv(em, pfd);
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    /// The pinned version-3 file (`tests/data/snapshot-v3.bin`: version 2's
    /// three clients, each with a user value) reads with those values, and
    /// versions 1 and 2 read with none.
    #[test]
    fn pinned_snapshots_read_with_their_user_data() {
        let read = |bytes: &[u8]| {
            let (version, body) = snapshot::open(bytes, MAGIC, OLDEST_VERSION, VERSION).unwrap();
            (version, decode_body(version, body).unwrap())
        };
        let (version, v3) = read(include_bytes!("../tests/data/snapshot-v3.bin"));
        assert_eq!(version, 3);
        let values: Vec<u64> = v3.user_data.iter().map(|&(_, v)| v).collect();
        assert_eq!(values, [7, u64::MAX, 42]);
        let clients: Vec<u64> = v3.v2.v1.conns.iter().map(|c| c.pfd).collect();
        let named: Vec<u64> = v3.user_data.iter().map(|&(c, _)| c).collect();
        assert_eq!(named, clients);
        assert_eq!(v3.bodies.len(), 1);
        assert_eq!(
            v3.bodies[0].client, clients[1],
            "the one inside a chunked body"
        );
        assert_eq!(
            (v3.bodies[0].limit, &v3.bodies[0].bytes[..]),
            (1024, &b"abc"[..])
        );
        for old in [
            &include_bytes!("../tests/data/snapshot-v1.bin")[..],
            &include_bytes!("../tests/data/snapshot-v2.bin")[..],
        ] {
            let (_, body) = read(old);
            assert!(body.user_data.is_empty());
            assert_eq!(body.v2.v1.conns.len(), 3);
        }
    }

    #[test]
    fn user_data_for_an_unknown_or_repeated_client_is_refused() {
        let bytes = include_bytes!("../tests/data/snapshot-v3.bin");
        let (version, body) = snapshot::open(bytes, MAGIC, OLDEST_VERSION, VERSION).unwrap();
        let body = decode_body(version, body).unwrap();
        let first = body.user_data[0];
        let mut twice = body.user_data.clone();
        twice.push(first);
        let e = check_user_data(&twice, &body.v2.v1.conns).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        let stranger = [(Pfd::new(999, 1).to_u64(), 5)];
        let e = check_user_data(&stranger, &body.v2.v1.conns).unwrap_err();
        assert!(e.to_string().contains("not a connection"), "{e}");
    }
}
