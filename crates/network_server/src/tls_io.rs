//! Where TLS meets the connection lifecycle: received ciphertext is
//! decrypted before the HTTP/WebSocket code sees it
//! ([`Core::tls_recv`]), a flush encrypts the output queue's batch into
//! one write ([`Core::tls_flush`]), a write's completion hands the
//! plaintext batch back to the queue ([`Core::tls_written`]), and the
//! close sequence sends `close_notify` before shutting the write side down
//! ([`Core::tls_close_notify`]). The record layer itself is `tls_conn.rs`.

use event_manager::{EventManager, OutBuf, Pfd};

use crate::app::CloseReason;
use crate::connections::{Phase, Proto};
use crate::op_tag::OpTag;
use crate::server::Core;
use crate::tls_conn::TlsFailure;
use crate::Application;

/// The answer to a plain-HTTP request on a TLS port (as nginx's, a 400
/// that says what happened), sent unencrypted, then the connection closes.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain\r\n\
Content-Length: 42\r\n\
Connection: close\r\n\
\r\n\
This port expects TLS: use https:// here.\n";

impl Core {
    /// Bytes received on TLS connection `pfd`: decrypted, and the
    /// plaintext handled as a plain connection's input would be.
    pub(crate) fn tls_recv<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        data: &mut [u8],
    ) {
        let now = self.timers.now;
        let header_timeout = self.config.header_read_timeout;
        let Some(tls) = self.tls.get_mut(pfd) else {
            return;
        };
        let mut plain = std::mem::take(&mut self.tls_plain);
        plain.clear();
        let fed = tls.feed(data, &mut plain);
        let has_output = !tls.pending.is_empty();
        let handshaken = tls.handshaken();
        match fed {
            Err(TlsFailure::PlainHttp) => {
                self.stats.tls_plain_http += 1;
                self.stats.protocol_errors += 1;
                if let Some(tls) = self.tls.get_mut(pfd) {
                    tls.pending.extend_from_slice(PLAIN_HTTP_ANSWER);
                }
                self.stats.count_response(400);
                self.tls_fail_close(em, pfd);
            }
            Err(TlsFailure::Tls(e)) => {
                if handshaken {
                    self.stats.tls_errors += 1;
                } else {
                    self.stats.tls_handshake_failures += 1;
                }
                tracing::debug!(%pfd, error = %e, handshaken, "TLS error: closing");
                self.tls_fail_close(em, pfd);
            }
            Ok(fed) => {
                if fed.handshake_done {
                    self.stats.tls_handshakes += 1;
                    // From here a fresh HTTP connection: its first request
                    // head has the usual time.
                    if let Some(conn) = self.conn(pfd) {
                        conn.deadline = Some(now + header_timeout);
                    }
                }
                if has_output {
                    self.mark_dirty(pfd);
                }
                if !plain.is_empty() {
                    self.tls_plaintext(em, app, pfd, &mut plain);
                }
                if fed.peer_closed {
                    self.tls_peer_closed(em, pfd);
                }
            }
        }
        if plain.capacity() <= 64 * 1024 {
            self.tls_plain = plain;
        }
    }

    /// Decrypted input of `pfd`, to the protocol it speaks.
    fn tls_plaintext<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
        plain: &mut [u8],
    ) {
        let quiescing = self.quiescing;
        let Some(conn) = self.conn(pfd) else { return };
        if conn.phase != Phase::Open {
            return;
        }
        if quiescing {
            return self.keep_input(pfd, plain);
        }
        match conn.proto {
            Proto::Http(_) => self.process_http(em, app, pfd, Some(plain)),
            Proto::WebSocket(_) => self.ws_feed(em, app, pfd, plain),
            Proto::Raw => {}
        }
    }

    /// The peer sent `close_notify`: as the end of its stream.
    fn tls_peer_closed(&mut self, em: &mut EventManager, pfd: Pfd) {
        if self.conn_ref(pfd).is_some_and(|c| c.phase == Phase::Open) {
            self.on_peer_eof(em, pfd);
        }
    }

    /// A TLS failure: what is pending (an alert, the plain-HTTP answer) is
    /// written, then the connection closes without `close_notify`.
    fn tls_fail_close(&mut self, em: &mut EventManager, pfd: Pfd) {
        self.settle_run();
        let Some(conn) = self.conn(pfd) else { return };
        // Nothing queued for the application may go out any more.
        conn.out.discard_queued();
        conn.reason = CloseReason::Tls;
        self.mark_dirty(pfd);
        self.begin_close(em, pfd, CloseReason::Tls);
    }

    /// Starts the next write of TLS connection `pfd`: its pending records,
    /// then (once the handshake is done) the output queue's next batch,
    /// encrypted.
    pub(crate) fn tls_flush(&mut self, em: &mut EventManager, pfd: Pfd) {
        let now = self.timers.now;
        let (Some(conn), Some(tls)) = (self.conns.get_mut(pfd), self.tls.get_mut(pfd)) else {
            return;
        };
        if tls.writing {
            return;
        }
        let plain = if tls.handshaken() && !tls.failed() {
            conn.out.take_batch()
        } else {
            None
        };
        let mut cipher = std::mem::take(&mut tls.pending);
        if let Some(bufs) = &plain {
            if let Err(e) = tls.encrypt(bufs, &mut cipher) {
                // Cannot happen with a working session; the batch is lost
                // with the connection.
                tracing::warn!(%pfd, error = %e, "TLS encryption failed: closing");
                self.stats.tls_errors += 1;
                let _ = conn.out.complete(plain.expect("checked"));
                return self.hard_close(em, pfd, Some(CloseReason::Tls));
            }
        }
        if cipher.is_empty() && plain.is_none() {
            return;
        }
        // An all-skipped batch still goes through a (zero-length) write, so
        // that its buffers come back through the completion as a plain
        // connection's do.
        let has_plain = plain.is_some();
        tls.inflight = plain;
        tls.writing = true;
        match em.write(pfd, OutBuf::Vec(cipher), None, OpTag::Write.encode()) {
            Ok(op) => {
                if has_plain {
                    conn.out.watch_write(op, now);
                }
            }
            Err((e, _)) => {
                tracing::debug!(%pfd, error = %e, "write refused");
                tls.writing = false;
                if let Some(bufs) = tls.inflight.take() {
                    let _ = conn.out.complete(bufs);
                }
            }
        }
    }

    /// A write of TLS connection `pfd` completed: the plaintext batch it
    /// carried, if any, to complete in the output queue, and the result to
    /// complete it with. A write cut short by a quiesce keeps its unwritten
    /// ciphertext to be written first on the resume (the records are
    /// sealed: their plaintext counts as written).
    pub(crate) fn tls_written(
        &mut self,
        pfd: Pfd,
        bufs: Vec<OutBuf>,
        written: usize,
        mut result: Result<(), event_manager::Error>,
    ) -> (Option<Vec<OutBuf>>, Result<(), event_manager::Error>) {
        let quiescing = self.quiescing;
        let Some(tls) = self.tls.get_mut(pfd) else {
            return (None, result);
        };
        tls.writing = false;
        if quiescing && result == Err(event_manager::Error::Cancelled) {
            if let Some(OutBuf::Vec(mut cipher)) = bufs.into_iter().next() {
                if written < cipher.len() {
                    cipher.drain(..written);
                    cipher.extend_from_slice(&tls.pending);
                    tls.pending = cipher;
                }
            }
            result = Ok(());
        }
        (tls.inflight.take(), result)
    }

    /// Before the write side of TLS connection `pfd` is shut down: queues
    /// `close_notify` (once) and writes what is pending. `true` once
    /// nothing is left to write.
    pub(crate) fn tls_close_notify(&mut self, em: &mut EventManager, pfd: Pfd) -> bool {
        let Some(tls) = self.tls.get_mut(pfd) else {
            return true;
        };
        tls.close_notify();
        if tls.output_idle() {
            return true;
        }
        self.tls_flush(em, pfd);
        false
    }
}
