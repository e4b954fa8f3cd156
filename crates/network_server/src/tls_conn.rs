//! One TLS connection's record layer, on rustls's *unbuffered* API: the
//! ciphertext a receive brought is fed in ([`TlsConn::feed`]) and comes
//! out as plaintext for the HTTP/WebSocket code plus handshake records to
//! send; the plaintext a flush takes from the output queue is encrypted
//! straight into the one buffer that write sends ([`TlsConn::encrypt`]).
//! rustls keeps no buffer of its own on either side, so an idle TLS
//! connection holds only its session state (and an input buffer only
//! while a record is incomplete, freed by the sweep).
//!
//! Also here: the connection table's side table of TLS states
//! ([`TlsTable`]), so a plain connection's slot does not grow.

use std::sync::Arc;

use event_manager::{OutBuf, Pfd};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

/// Largest plaintext of one TLS record (RFC 8446 §5.1).
const MAX_RECORD: usize = 16 * 1024;

/// Room reserved per record for its header, tag, content type and (TLS
/// 1.2) explicit nonce: 5 + 16 + 1 (1.3) or 5 + 8 + 16 (1.2 GCM) bytes.
const RECORD_OVERHEAD: usize = 64;

/// Plaintext buffers at least this large are encrypted on their own;
/// smaller ones are gathered into one record (fewer AEAD calls and record
/// headers for a batch of small frames).
const GATHER_BELOW: usize = 4096;

/// Most states handled per [`TlsConn::feed`]: far above what any input
/// produces (each record is at most one state); a guard against a loop.
const MAX_STEPS: usize = 1 << 16;

/// Why the input could not be taken.
#[derive(Debug)]
pub(crate) enum TlsFailure {
    /// The first bytes are a plain-HTTP request, not a TLS record.
    PlainHttp,
    /// rustls refused the input (or the handshake); an alert for the peer,
    /// if TLS allows one, is in [`TlsConn::pending`].
    Tls(rustls::Error),
}

/// What one [`TlsConn::feed`] brought besides plaintext.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fed {
    /// The handshake completed during this call.
    pub(crate) handshake_done: bool,
    /// The peer sent `close_notify`: it sends nothing more.
    pub(crate) peer_closed: bool,
}

/// Who protects the records.
enum Engine {
    /// rustls: the handshake, then everything. Boxed: the state is large
    /// and the whole `TlsConn` is boxed anyway; this keeps the other
    /// variants from being as large.
    Rustls(Box<UnbufferedServerConnection>),
    /// The session's keys, taken out of rustls for a handover
    /// (`tls_records.rs`).
    Records(crate::tls_records::Records),
    /// Between the two (only inside [`TlsConn::move_keys_out`]).
    Gone,
}

/// A TLS connection's state beside its `Conn`.
pub(crate) struct TlsConn {
    engine: Engine,
    /// Received ciphertext not yet taken by rustls: an incomplete record,
    /// or handshake records rustls keeps until a message is whole.
    inbuf: Vec<u8>,
    /// Ciphertext to send before anything encrypted next: handshake
    /// flights, alerts, `close_notify`, and what a write cut short by a
    /// quiesce left unwritten.
    pub(crate) pending: Vec<u8>,
    /// A write of this connection is in flight (one at a time, as for
    /// plain connections; the output queue's own flag covers only writes
    /// that carried queued plaintext).
    pub(crate) writing: bool,
    /// The plaintext batch whose ciphertext the write in flight carries:
    /// completed in the output queue when that write completes.
    pub(crate) inflight: Option<Vec<OutBuf>>,
    /// Small plaintext gathered into one record (kept between flushes of a
    /// busy connection, freed by the sweep).
    stage: Vec<u8>,
    handshaken: bool,
    /// Any input seen (the first bytes are checked for plain HTTP).
    started: bool,
    /// `close_notify` queued.
    close_sent: bool,
    /// rustls failed: nothing more is encrypted or decrypted.
    failed: bool,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn")
            .field("inbuf", &self.inbuf.len())
            .field("pending", &self.pending.len())
            .field("writing", &self.writing)
            .field("handshaken", &self.handshaken)
            .field("close_sent", &self.close_sent)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl TlsConn {
    pub(crate) fn new(config: Arc<rustls::ServerConfig>) -> Result<TlsConn, rustls::Error> {
        Ok(TlsConn {
            engine: Engine::Rustls(Box::new(UnbufferedServerConnection::new(config)?)),
            inbuf: Vec::new(),
            pending: Vec::new(),
            writing: false,
            inflight: None,
            stage: Vec::new(),
            handshaken: false,
            started: false,
            close_sent: false,
            failed: false,
        })
    }

    /// The handshake is complete: application data may be encrypted.
    pub(crate) fn handshaken(&self) -> bool {
        self.handshaken
    }

    /// In its handshake (not finished, not failed).
    pub(crate) fn handshaking(&self) -> bool {
        !self.handshaken && !self.failed
    }

    /// rustls failed (or the input was not TLS): nothing more is encrypted.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// Nothing to send and no write in flight.
    pub(crate) fn output_idle(&self) -> bool {
        !self.writing && self.pending.is_empty()
    }

    /// Whether a `close_notify` should be sent before the write side is
    /// shut down: handshake done, none sent yet, no failure.
    pub(crate) fn wants_close_notify(&self) -> bool {
        self.handshaken && !self.close_sent && !self.failed
    }

    /// Takes received ciphertext: appends the plaintext it carries to
    /// `plain` and whatever must be sent (handshake records, alerts) to
    /// [`TlsConn::pending`].
    pub(crate) fn feed(&mut self, data: &[u8], plain: &mut Vec<u8>) -> Result<Fed, TlsFailure> {
        if self.failed {
            return Ok(Fed::default());
        }
        if !self.started && !data.is_empty() {
            self.started = true;
            // A TLS connection starts with a handshake record (type 22); an
            // upper-case letter is the start of a request method.
            if data[0].is_ascii_uppercase() {
                self.failed = true;
                return Err(TlsFailure::PlainHttp);
            }
        }
        self.inbuf.extend_from_slice(data);
        if let Engine::Records(r) = &mut self.engine {
            return match r.open(&mut self.inbuf, plain) {
                Ok(o) => Ok(Fed {
                    handshake_done: false,
                    peer_closed: o.peer_closed,
                }),
                Err(e) => {
                    self.failed = true;
                    Err(TlsFailure::Tls(rustls::Error::General(e.0)))
                }
            };
        }
        self.process(plain).map_err(TlsFailure::Tls)
    }

    fn process(&mut self, plain: &mut Vec<u8>) -> Result<Fed, rustls::Error> {
        let Engine::Rustls(conn) = &mut self.engine else {
            return Ok(Fed::default());
        };
        let mut fed = Fed::default();
        let was_handshaken = self.handshaken;
        for _ in 0..MAX_STEPS {
            let UnbufferedStatus { mut discard, state } = conn.process_tls_records(&mut self.inbuf);
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    self.inbuf.drain(..discard.min(self.inbuf.len()));
                    self.fail();
                    return Err(e);
                }
            };
            let mut stop = false;
            match state {
                ConnectionState::ReadTraffic(mut rt) => {
                    while let Some(rec) = rt.next_record() {
                        let rec = rec?;
                        discard += rec.discard;
                        plain.extend_from_slice(rec.payload);
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => encode(&mut e, &mut self.pending)?,
                ConnectionState::TransmitTlsData(t) => t.done(),
                ConnectionState::BlockedHandshake => stop = true,
                ConnectionState::WriteTraffic(_) => {
                    self.handshaken = true;
                    stop = true;
                }
                ConnectionState::PeerClosed => fed.peer_closed = true,
                ConnectionState::Closed => stop = true,
                // Early data is never enabled (`max_early_data_size` 0).
                _ => {
                    self.failed = true;
                    return Err(rustls::Error::General("unexpected TLS state".into()));
                }
            }
            self.inbuf.drain(..discard);
            if stop {
                break;
            }
        }
        fed.handshake_done = self.handshaken && !was_handshaken;
        Ok(fed)
    }

    /// After an error: rustls may have queued a fatal alert for the peer.
    fn fail(&mut self) {
        self.failed = true;
        let Engine::Rustls(conn) = &mut self.engine else {
            return;
        };
        for _ in 0..4 {
            let UnbufferedStatus { state, .. } = conn.process_tls_records(&mut []);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    if encode(&mut e, &mut self.pending).is_err() {
                        break;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(t)) => t.done(),
                _ => break,
            }
        }
    }

    /// Encrypts `bufs` (in order) after whatever is already in `out`.
    /// Records rustls wants sent first (a post-handshake message) go before
    /// them. Call only once [`TlsConn::handshaken`].
    pub(crate) fn encrypt(
        &mut self,
        bufs: &[OutBuf],
        out: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        out.reserve(total + (total / MAX_RECORD + bufs.len().min(4) + 1) * RECORD_OVERHEAD);
        let mut stage = std::mem::take(&mut self.stage);
        let r = if let Engine::Records(rec) = &mut self.engine {
            gather(bufs, &mut stage, out, &mut |data, out| {
                rec.seal(data, out).map_err(|e| rustls::Error::General(e.0))
            })
        } else {
            self.with_write_traffic(out, |wt, out| {
                gather(bufs, &mut stage, out, &mut |data, out| {
                    encrypt_into(wt, data, out)
                })
            })
        };
        stage.clear();
        self.stage = stage;
        r
    }

    /// Takes the session's keys out of rustls (a handover is under way):
    /// from here on `tls_records.rs` protects the records, in this
    /// process if the handover rolls back, in the next one otherwise.
    /// Only for a finished handshake with nothing of rustls's left to
    /// send; `Err` says why not (the connection then stays with rustls).
    pub(crate) fn move_keys_out(&mut self) -> Result<(), String> {
        if !self.handshaken || self.failed {
            return Err("handshake not finished".into());
        }
        if !matches!(self.engine, Engine::Rustls(_)) {
            return match self.engine {
                Engine::Records(_) => Ok(()),
                _ => Err("no session".into()),
            };
        }
        let Engine::Rustls(conn) = std::mem::replace(&mut self.engine, Engine::Gone) else {
            unreachable!("checked above");
        };
        let version = conn.protocol_version();
        match conn.dangerous_into_kernel_connection() {
            Ok((secrets, _kernel)) => {
                let version = version.ok_or("no protocol version")?;
                match crate::tls_records::Records::from_secrets(version, secrets) {
                    Ok(r) => {
                        self.engine = Engine::Records(r);
                        Ok(())
                    }
                    Err(e) => {
                        // The keys are gone: the session cannot go on.
                        self.failed = true;
                        Err(e.0)
                    }
                }
            }
            Err(e) => {
                self.failed = true;
                Err(e.to_string())
            }
        }
    }

    /// The state as plain data, for a handover: `None` for a connection
    /// still in its handshake (or failed), which the importing side
    /// closes.
    pub(crate) fn export(&self) -> TlsV4 {
        TlsV4 {
            records: match &self.engine {
                Engine::Records(r) if !self.failed => Some(r.export()),
                _ => None,
            },
            inbuf: serde_bytes::ByteBuf::from(self.inbuf.clone()),
            pending: serde_bytes::ByteBuf::from(self.pending.clone()),
            close_sent: self.close_sent,
        }
    }

    /// The inverse of [`TlsConn::export`] (`None` for a connection that
    /// was in its handshake).
    pub(crate) fn import(v: &TlsV4) -> Result<Option<TlsConn>, String> {
        let Some(records) = &v.records else {
            return Ok(None);
        };
        Ok(Some(TlsConn {
            engine: Engine::Records(crate::tls_records::Records::import(records)?),
            inbuf: v.inbuf.to_vec(),
            pending: v.pending.to_vec(),
            writing: false,
            inflight: None,
            stage: Vec::new(),
            handshaken: true,
            started: true,
            close_sent: v.close_sent,
            failed: false,
        }))
    }

    /// Queues a `close_notify` alert in [`TlsConn::pending`].
    pub(crate) fn close_notify(&mut self) {
        if !self.wants_close_notify() {
            return;
        }
        self.close_sent = true;
        if let Engine::Records(r) = &mut self.engine {
            if let Err(e) = r.close_notify(&mut self.pending) {
                tracing::debug!(error = %e, "no close_notify sent");
            }
            return;
        }
        let mut out = std::mem::take(&mut self.pending);
        let r = self.with_write_traffic(&mut out, |wt, out| {
            let start = out.len();
            out.resize(start + RECORD_OVERHEAD, 0);
            match wt.queue_close_notify(&mut out[start..]) {
                Ok(n) => {
                    out.truncate(start + n);
                    Ok(())
                }
                Err(e) => {
                    out.truncate(start);
                    Err(rustls::Error::General(format!("close_notify: {e}")))
                }
            }
        });
        self.pending = out;
        if let Err(e) = r {
            tracing::debug!(error = %e, "no close_notify sent");
        }
    }

    /// Runs `f` with the connection in its write-traffic state, encoding
    /// whatever rustls wants sent before it into `out`.
    fn with_write_traffic(
        &mut self,
        out: &mut Vec<u8>,
        f: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> Result<(), rustls::Error>,
    ) -> Result<(), rustls::Error> {
        if self.failed {
            return Err(rustls::Error::General("TLS connection failed".into()));
        }
        let Engine::Rustls(conn) = &mut self.engine else {
            return Err(rustls::Error::General("no rustls session".into()));
        };
        let mut f = Some(f);
        for _ in 0..MAX_STEPS {
            // The input buffer is passed as it is: rustls keeps track of
            // handshake messages inside it, and any complete record in it
            // was taken by the last `feed`.
            let UnbufferedStatus { discard, state } = conn.process_tls_records(&mut self.inbuf);
            let state = match state {
                Ok(s) => s,
                Err(e) => {
                    self.inbuf.drain(..discard.min(self.inbuf.len()));
                    self.fail();
                    return Err(e);
                }
            };
            let done = match state {
                ConnectionState::WriteTraffic(mut wt) => {
                    let f = f.take().expect("called once");
                    Some(f(&mut wt, out))
                }
                ConnectionState::EncodeTlsData(mut e) => {
                    encode(&mut e, out)?;
                    None
                }
                ConnectionState::TransmitTlsData(t) => {
                    t.done();
                    None
                }
                ConnectionState::PeerClosed => None,
                other => Some(Err(rustls::Error::General(format!(
                    "cannot encrypt in state {other:?}"
                )))),
            };
            self.inbuf.drain(..discard);
            if let Some(r) = done {
                return r;
            }
        }
        Err(rustls::Error::General("TLS state loop".into()))
    }

    /// Frees buffers that hold nothing (called by the sweep for idle
    /// connections). Returns whether anything was freed.
    pub(crate) fn release_if_idle(&mut self) -> bool {
        let mut freed = false;
        for v in [&mut self.inbuf, &mut self.pending, &mut self.stage] {
            if v.is_empty() && v.capacity() > 0 {
                *v = Vec::new();
                freed = true;
            }
        }
        freed
    }
}

/// Encodes a handshake record rustls has ready at the end of `out`.
fn encode(
    e: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
    out: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    let mut need = 4096;
    loop {
        out.resize(start + need, 0);
        match e.encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                need = required_size;
            }
            Err(other) => {
                out.truncate(start);
                return Err(rustls::Error::General(format!("encode: {other}")));
            }
        }
    }
}

/// Encrypts plaintext at the end of a buffer (rustls's or the record
/// layer's).
type Enc<'a> = dyn FnMut(&[u8], &mut Vec<u8>) -> Result<(), rustls::Error> + 'a;

/// Encrypts `bufs` with `enc`: small ones gathered in `stage` into one
/// record, large ones on their own.
fn gather(
    bufs: &[OutBuf],
    stage: &mut Vec<u8>,
    out: &mut Vec<u8>,
    enc: &mut Enc<'_>,
) -> Result<(), rustls::Error> {
    fn seal(
        stage: &mut Vec<u8>,
        out: &mut Vec<u8>,
        enc: &mut Enc<'_>,
    ) -> Result<(), rustls::Error> {
        let r = if stage.is_empty() {
            Ok(())
        } else {
            enc(stage, out)
        };
        stage.clear();
        r
    }
    for b in bufs {
        let s = b.as_slice();
        if s.len() >= GATHER_BELOW {
            seal(stage, out, enc)?;
            enc(s, out)?;
        } else {
            if stage.len() + s.len() > MAX_RECORD {
                seal(stage, out, enc)?;
            }
            stage.extend_from_slice(s);
        }
    }
    seal(stage, out, enc)
}

/// A TLS connection as plain data (`TlsConn::export`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TlsV4 {
    /// The session's record layer; `None`: in its handshake (closed by the
    /// importing side).
    pub(crate) records: Option<crate::tls_records::RecordsV4>,
    pub(crate) inbuf: serde_bytes::ByteBuf,
    pub(crate) pending: serde_bytes::ByteBuf,
    pub(crate) close_sent: bool,
}

/// Encrypts `data` (split into records by rustls) at the end of `out`.
fn encrypt_into(
    wt: &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    let mut need = data.len() + (data.len() / MAX_RECORD + 1) * RECORD_OVERHEAD;
    loop {
        out.resize(start + need, 0);
        match wt.encrypt(data, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size }))
                if required_size > need =>
            {
                need = required_size;
            }
            Err(other) => {
                out.truncate(start);
                return Err(rustls::Error::General(format!("encrypt: {other}")));
            }
        }
    }
}

/// The TLS states of a server's connections, by pfd index (empty for a
/// server without TLS clients).
#[derive(Debug, Default)]
pub(crate) struct TlsTable {
    slots: Vec<Option<(Pfd, Box<TlsConn>)>>,
    live: usize,
}

impl TlsTable {
    pub(crate) fn insert(&mut self, pfd: Pfd, tls: Box<TlsConn>) {
        let i = pfd.index() as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace((pfd, tls)).is_none() {
            self.live += 1;
        }
    }

    pub(crate) fn get_mut(&mut self, pfd: Pfd) -> Option<&mut TlsConn> {
        match self.slots.get_mut(pfd.index() as usize) {
            Some(Some((p, t))) if *p == pfd => Some(t),
            _ => None,
        }
    }

    pub(crate) fn get(&self, pfd: Pfd) -> Option<&TlsConn> {
        match self.slots.get(pfd.index() as usize) {
            Some(Some((p, t))) if *p == pfd => Some(t),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, pfd: Pfd) -> Option<Box<TlsConn>> {
        let slot = self.slots.get_mut(pfd.index() as usize)?;
        if slot.as_ref().is_some_and(|(p, _)| *p == pfd) {
            self.live -= 1;
            return slot.take().map(|(_, t)| t);
        }
        None
    }

    /// TLS connections open.
    pub(crate) fn len(&self) -> usize {
        self.live
    }
}
