//! HTTPS modes: `tls-handshake` and `tls-get` (see the overview in `main.rs`).
//!
//! ```text
//! loadgen tls-get --url https://127.0.0.1:8443/hello --conns 64 --duration 8
//!                 [--warmup 1] [--sni localhost] [--expect-body TEXT | --expect-len N]
//!                 [--server-pid PID[,PID…]]
//! loadgen tls-handshake --url https://127.0.0.1:8443/hello --conns 64 --duration 8 …
//! ```
//!
//! * `tls-get`: keep-alive. `--conns` TLS connections, each with one
//!   `GET PATH` in flight: when its answer is complete the next request
//!   goes out on the same connection. Counts answers and body bytes.
//! * `tls-handshake`: a new connection per request. Each of `--conns`
//!   slots connects, does a full TLS handshake, sends
//!   `GET PATH` with `Connection: close` (in the same write as its
//!   `Finished`, as browsers do), reads the whole answer and then waits for
//!   the server to close (its `close_notify` or FIN; a server that has not
//!   closed 2 s after the answer is an error); then it closes its socket and
//!   the slot starts the next connection at once. Counts connections whose
//!   answer completed: each is one full handshake plus one request.
//!
//! The client side: TLS 1.3 only; key exchange X25519 only (the group both
//! nginx/OpenSSL and rustls choose first, without post-quantum hybrids);
//! cipher suites offered as browsers order them (AES-128-GCM, AES-256-GCM,
//! ChaCha20-Poly1305), so servers that follow the client's order (rustls
//! and nginx by default) pick AES-128-GCM; ALPN `http/1.1`; SNI from
//! `--sni` (default `localhost`); **no resumption** (no session ticket or
//! PSK is offered: every handshake is a full one; tickets the server sends
//! are read and dropped). Like wrk and h2load it does **not verify** the
//! server's certificate or its handshake signature (the server still
//! computes it): that would cost the client an ECDSA verification per
//! handshake and measure nothing about the server. bench/tls.sh checks the
//! certificate with curl --cacert instead.
//!
//! Built to cost the client as little as a TLS client can, so the server is
//! what is measured: one thread, epoll (mio, edge-triggered), rustls's
//! unbuffered client API with aws-lc-rs (ciphertext read straight into a
//! 256 KiB buffer per connection, records decrypted there; one `read` takes
//! whatever the socket holds), nothing parsed beyond status line,
//! `Content-Length` and the body's length (and the body itself with
//! `--expect-body`), buffers reused from connection to connection.
//!
//! Output: one line of `key=value` pairs, as the other modes. With
//! `--server-pid` (one or more comma-separated pids, e.g. nginx's master and
//! its worker: their CPU times are summed) the server's CPU time over
//! exactly the counted window is reported, and rates per server CPU second.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, UnbufferedClientConnection};
use rustls::crypto::aws_lc_rs as provider;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::{machine_busy, num, proc_cpu, raise_nofile, self_cpu, Res};

/// Ciphertext input buffer per connection: one `read` takes up to this much.
const IN_BUF: usize = 256 * 1024;
/// How long a `tls-handshake` slot waits for the server to close after the
/// answer to its `Connection: close` request.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

struct TlsArgs {
    mode: String,
    addr: SocketAddr,
    /// `Host` header value (host:port as in the URL).
    host: String,
    path: String,
    sni: String,
    conns: usize,
    duration: f64,
    warmup: f64,
    expect_body: Option<Vec<u8>>,
    expect_len: Option<usize>,
    server_pids: Vec<u32>,
}

impl TlsArgs {
    fn parse(args: &[String]) -> Res<TlsArgs> {
        let usage = "usage: loadgen tls-get|tls-handshake --url https://HOST:PORT/PATH \
                     [--conns N] [--duration S] [--warmup S] [--sni NAME] \
                     [--expect-body TEXT | --expect-len N] [--server-pid PID[,PID…]]";
        let mode = args.first().ok_or(usage)?.clone();
        let mut url = None;
        let mut a = TlsArgs {
            mode,
            addr: ([127, 0, 0, 1], 0).into(),
            host: String::new(),
            path: String::new(),
            sni: "localhost".into(),
            conns: 64,
            duration: 8.0,
            warmup: 1.0,
            expect_body: None,
            expect_len: None,
            server_pids: Vec::new(),
        };
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or(format!("{flag} needs a value\n{usage}"))?;
            match flag.as_str() {
                "--url" => url = Some(value.clone()),
                "--sni" => a.sni = value.clone(),
                "--conns" => a.conns = num(flag, value)?,
                "--duration" => a.duration = num(flag, value)?,
                "--warmup" => a.warmup = num(flag, value)?,
                "--expect-body" => a.expect_body = Some(value.as_bytes().to_vec()),
                "--expect-len" => a.expect_len = Some(num(flag, value)?),
                "--server-pid" => {
                    for p in value.split(',').filter(|p| !p.is_empty()) {
                        a.server_pids.push(num(flag, p)?);
                    }
                }
                _ => return Err(format!("unknown option {flag}\n{usage}")),
            }
        }
        let url = url.ok_or(format!("--url is required\n{usage}"))?;
        let rest = url
            .strip_prefix("https://")
            .ok_or(format!("{url}: only https:// URLs are supported"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        a.addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or(format!("{host}: no address"))?;
        a.host = host.into();
        a.path = if path.is_empty() {
            "/".into()
        } else {
            path.into()
        };
        if a.conns == 0 {
            return Err("--conns must be at least 1".into());
        }
        Ok(a)
    }
}

/// Accepts any certificate and any handshake signature (see the module
/// documentation: a load generator's verification would measure nothing
/// about the server).
#[derive(Debug)]
struct NoVerify(Vec<SignatureScheme>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

fn client_config() -> Res<Arc<ClientConfig>> {
    let base = provider::default_provider();
    let schemes = base.signature_verification_algorithms.supported_schemes();
    let prov = CryptoProvider {
        cipher_suites: vec![
            provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
            provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
            provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![provider::kx_group::X25519],
        ..base
    };
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(prov))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS client config: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(schemes)))
        .with_no_client_auth();
    cfg.resumption = Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

// ----- the answer -------------------------------------------------------------

/// An HTTP/1.1 answer being read: head up to `\r\n\r\n`, then
/// `Content-Length` bytes of body.
#[derive(Default)]
struct Resp {
    head: Vec<u8>,
    /// Body bytes still to come once the head is parsed.
    body_left: Option<usize>,
    /// The body, collected only when it is to be compared.
    body: Vec<u8>,
}

struct Check<'a> {
    body: Option<&'a [u8]>,
    len: Option<usize>,
}

impl Resp {
    fn reset(&mut self) {
        self.head.clear();
        self.body_left = None;
        self.body.clear();
    }

    /// Feeds plaintext; returns (body bytes in it, whether the answer is
    /// complete). Bytes after a complete answer are an error (one request
    /// is in flight at a time).
    fn feed(&mut self, mut data: &[u8], check: &Check<'_>) -> Res<(usize, bool)> {
        if self.body_left.is_none() {
            let from = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(data);
            let Some(end) = self.head[from..].windows(4).position(|w| w == b"\r\n\r\n") else {
                if self.head.len() > 64 * 1024 {
                    return Err("answer head longer than 64 KiB".into());
                }
                return Ok((0, false));
            };
            let end = from + end + 4;
            let rest = self.head.len() - end;
            data = &data[data.len() - rest..];
            self.head.truncate(end);
            let head = String::from_utf8_lossy(&self.head);
            if !head.starts_with("HTTP/1.1 200 ") {
                let first = head.lines().next().unwrap_or("");
                return Err(format!("unexpected answer: {first}"));
            }
            let mut len = None;
            for line in head.split("\r\n").skip(1) {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    return Err("chunked answers are not supported".into());
                }
            }
            let len = len.ok_or("answer without Content-Length")?;
            if let Some(want) = check.len {
                if len != want {
                    return Err(format!("Content-Length {len}, expected {want}"));
                }
            }
            if let Some(want) = check.body {
                if len != want.len() {
                    return Err(format!("Content-Length {len}, expected {}", want.len()));
                }
            }
            self.body_left = Some(len);
        }
        let left = self.body_left.as_mut().expect("head parsed");
        if data.len() > *left {
            return Err(format!(
                "{} bytes after the end of the answer",
                data.len() - *left
            ));
        }
        *left -= data.len();
        if check.body.is_some() {
            self.body.extend_from_slice(data);
        }
        let done = *left == 0;
        if done {
            if let Some(want) = check.body {
                if self.body != want {
                    return Err("the body differs from the expected one".into());
                }
            }
        }
        Ok((data.len(), done))
    }
}

// ----- connections ------------------------------------------------------------

struct Slot {
    sock: Option<mio::net::TcpStream>,
    tls: Option<UnbufferedClientConnection>,
    /// Waiting for the non-blocking connect to complete.
    connecting: bool,
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    out: Vec<u8>,
    out_start: usize,
    out_end: usize,
    /// The request is to be encrypted and sent as soon as the connection
    /// allows it.
    req_due: bool,
    resp: Resp,
    /// tls-handshake: the answer is complete; waiting for the server to close.
    answered: Option<Instant>,
    /// Latency start: connect (tls-handshake) or request (tls-get).
    t0: Instant,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            sock: None,
            tls: None,
            connecting: false,
            inbuf: vec![0; IN_BUF],
            in_start: 0,
            in_end: 0,
            out: vec![0; 16 * 1024],
            out_start: 0,
            out_end: 0,
            req_due: false,
            resp: Resp::default(),
            answered: None,
            t0: Instant::now(),
        }
    }
}

/// What a run counts.
struct Stats {
    measuring: bool,
    end: Instant,
    answers: u64,
    body_bytes: u64,
    lat_ns: Vec<u64>,
    /// Negotiated parameters of the first completed handshake.
    params: Option<String>,
}

enum Pumped {
    /// Waiting for the socket (an event resumes it).
    Waiting,
    /// tls-handshake: the connection is over; open the next.
    Finished,
}

struct Client<'a> {
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
    addr: SocketAddr,
    request: Vec<u8>,
    handshake_mode: bool,
    check: Check<'a>,
}

impl Client<'_> {
    /// Starts a new connection in `slot` (non-blocking connect).
    fn open(&self, poll: &Poll, slot: &mut Slot, token: usize) -> Res<()> {
        let mut sock = mio::net::TcpStream::connect(self.addr)
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        sock.set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        poll.registry()
            .register(
                &mut sock,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        slot.sock = Some(sock);
        slot.tls = Some(
            UnbufferedClientConnection::new(self.cfg.clone(), self.name.clone())
                .map_err(|e| format!("TLS client: {e}"))?,
        );
        slot.connecting = true;
        slot.in_start = 0;
        slot.in_end = 0;
        slot.out_start = 0;
        slot.out_end = 0;
        slot.req_due = true;
        slot.resp.reset();
        slot.answered = None;
        slot.t0 = Instant::now();
        Ok(())
    }

    /// Encrypts the request into `slot.out`.
    fn encrypt_request(
        request: &[u8],
        w: &mut rustls::unbuffered::WriteTraffic<'_, rustls::client::ClientConnectionData>,
        out: &mut Vec<u8>,
        out_end: &mut usize,
    ) -> Res<()> {
        loop {
            match w.encrypt(request, &mut out[*out_end..]) {
                Ok(n) => {
                    *out_end += n;
                    return Ok(());
                }
                Err(EncryptError::InsufficientSize(s)) => out.resize(*out_end + s.required_size, 0),
                Err(e) => return Err(format!("encrypt: {e}")),
            }
        }
    }

    /// Moves the connection in `slot` as far as the socket allows: writes
    /// what is queued, reads what has come, runs the TLS state machine,
    /// counts completed answers and sends the next request.
    fn pump(&self, slot: &mut Slot, st: &mut Stats) -> Res<Pumped> {
        let Slot {
            sock,
            tls,
            connecting,
            inbuf,
            in_start,
            in_end,
            out,
            out_start,
            out_end,
            req_due,
            resp,
            answered,
            t0,
        } = slot;
        let (Some(sock), Some(tls)) = (sock.as_mut(), tls.as_mut()) else {
            return Ok(Pumped::Waiting);
        };
        // A read that returned less than it asked for emptied the socket:
        // reading again would only return EAGAIN, and new bytes bring a
        // new edge (epoll reports every arrival), so it is not tried.
        let mut drained = false;
        if *connecting {
            if let Some(e) = sock.take_error().map_err(|e| format!("connect: {e}"))? {
                return Err(format!("connect {}: {e}", self.addr));
            }
            match sock.peer_addr() {
                Ok(_) => *connecting = false,
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(Pumped::Waiting),
                Err(e) => return Err(format!("connect {}: {e}", self.addr)),
            }
        }
        loop {
            // 1. What is queued goes out first.
            while *out_start < *out_end {
                match sock.write(&out[*out_start..*out_end]) {
                    Ok(n) => *out_start += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            if *out_start == *out_end {
                *out_start = 0;
                *out_end = 0;
            }
            // 2. The TLS state machine on what has been read.
            let UnbufferedStatus { mut discard, state } =
                tls.process_tls_records(&mut inbuf[*in_start..*in_end]);
            let state = state.map_err(|e| format!("TLS: {e}"))?;
            let mut need_read = false;
            match state {
                ConnectionState::ReadTraffic(mut rt) => {
                    while let Some(rec) = rt.next_record() {
                        let rec = rec.map_err(|e| format!("TLS: {e}"))?;
                        discard += rec.discard;
                        if answered.is_some() {
                            return Err("data after the answer to Connection: close".into());
                        }
                        let (body, done) = resp.feed(rec.payload, &self.check)?;
                        let now = Instant::now();
                        if st.measuring && now < st.end {
                            st.body_bytes += body as u64;
                        }
                        if done {
                            if st.measuring && now < st.end {
                                st.answers += 1;
                                st.lat_ns.push((now - *t0).as_nanos() as u64);
                            }
                            resp.reset();
                            if self.handshake_mode {
                                *answered = Some(now);
                            } else {
                                *req_due = true;
                            }
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut e) => loop {
                    match e.encode(&mut out[*out_end..]) {
                        Ok(n) => {
                            *out_end += n;
                            break;
                        }
                        Err(EncodeError::InsufficientSize(s)) => {
                            out.resize(*out_end + s.required_size, 0)
                        }
                        Err(e) => return Err(format!("encode: {e}")),
                    }
                },
                ConnectionState::TransmitTlsData(mut t) => {
                    // The request rides with the client's Finished.
                    if *req_due {
                        if let Some(mut w) = t.may_encrypt_app_data() {
                            Self::encrypt_request(&self.request, &mut w, out, out_end)?;
                            *req_due = false;
                        }
                    }
                    // Queued in `out`, which step 1 writes.
                    t.done();
                }
                ConnectionState::WriteTraffic(mut w) => {
                    if *req_due {
                        Self::encrypt_request(&self.request, &mut w, out, out_end)?;
                        *req_due = false;
                        if !self.handshake_mode {
                            *t0 = Instant::now();
                        }
                    } else {
                        need_read = true;
                    }
                }
                ConnectionState::BlockedHandshake => need_read = true,
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    if answered.is_some() {
                        return Ok(Pumped::Finished);
                    }
                    return Err("the server closed a connection (close_notify)".into());
                }
                other => return Err(format!("unexpected TLS state {other:?}")),
            }
            *in_start += discard;
            if st.params.is_none() && !tls.is_handshaking() {
                st.params = Some(params(tls));
            }
            if !need_read {
                continue;
            }
            // 3. Read: compact first when the buffer's tail is short.
            if *in_start == *in_end {
                *in_start = 0;
                *in_end = 0;
            } else if *in_start > 0 && inbuf.len() - *in_end < 32 * 1024 {
                inbuf.copy_within(*in_start..*in_end, 0);
                *in_end -= *in_start;
                *in_start = 0;
            }
            if *in_end == inbuf.len() {
                return Err("TLS record larger than the input buffer".into());
            }
            if drained {
                return Ok(Pumped::Waiting);
            }
            let want = inbuf.len() - *in_end;
            match sock.read(&mut inbuf[*in_end..]) {
                Ok(0) => {
                    if answered.is_some() {
                        return Ok(Pumped::Finished);
                    }
                    return Err("the server closed a connection".into());
                }
                Ok(n) => {
                    *in_end += n;
                    drained = n < want;
                }
                // Nothing more to read; if a write is still pending, the
                // writable edge resumes it.
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Pumped::Waiting),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if answered.is_some() && e.kind() == ErrorKind::ConnectionReset => {
                    return Ok(Pumped::Finished)
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// `version=… suite=… group=… alpn=…` of a connection.
fn params(c: &UnbufferedClientConnection) -> String {
    let alpn = c
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_else(|| "-".into());
    format!(
        "version={:?} suite={:?} group={:?} alpn={alpn}",
        c.protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        c.negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        c.negotiated_key_exchange_group()
            .map(|g| format!("{:?}", g.name()))
            .unwrap_or_default(),
    )
    .replace('"', "")
}

fn servers_cpu(pids: &[u32]) -> Res<f64> {
    pids.iter().map(|&p| proc_cpu(p)).sum()
}

pub(crate) fn run(args: &[String]) -> Res<String> {
    let a = TlsArgs::parse(args)?;
    let handshake_mode = match a.mode.as_str() {
        "tls-get" => false,
        "tls-handshake" => true,
        m => return Err(format!("unknown mode {m:?}")),
    };
    raise_nofile()?;
    let connection = if handshake_mode {
        "close"
    } else {
        "keep-alive"
    };
    let client = Client {
        cfg: client_config()?,
        name: ServerName::try_from(a.sni.clone()).map_err(|e| format!("--sni: {e}"))?,
        addr: a.addr,
        request: format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: {connection}\r\n\r\n",
            a.path, a.host
        )
        .into_bytes(),
        handshake_mode,
        check: Check {
            body: a.expect_body.as_deref(),
            len: a.expect_len,
        },
    };
    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut slots: Vec<Slot> = (0..a.conns).map(|_| Slot::new()).collect();
    let t_start = Instant::now();
    let measure_from = t_start + Duration::from_secs_f64(a.warmup);
    let mut st = Stats {
        measuring: false,
        end: measure_from + Duration::from_secs_f64(a.duration),
        answers: 0,
        body_bytes: 0,
        lat_ns: Vec::with_capacity(1 << 20),
        params: None,
    };
    for (i, s) in slots.iter_mut().enumerate() {
        client.open(&poll, s, i)?;
    }
    let mut events = Events::with_capacity(1024);
    let (mut cpu0, mut srv0, mut busy0) = (0.0, 0.0, 0.0);
    let mut window_start = measure_from;
    let mut last_scan = Instant::now();
    loop {
        let now = Instant::now();
        if !st.measuring && now >= measure_from {
            st.measuring = true;
            window_start = now;
            cpu0 = self_cpu();
            busy0 = machine_busy();
            srv0 = servers_cpu(&a.server_pids)?;
        }
        if now >= st.end {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for ev in events.iter() {
            let i = ev.token().0;
            match client.pump(&mut slots[i], &mut st)? {
                Pumped::Waiting => {}
                Pumped::Finished => {
                    let s = &mut slots[i];
                    if let Some(mut sock) = s.sock.take() {
                        let _ = poll.registry().deregister(&mut sock);
                    }
                    client.open(&poll, s, i)?;
                }
            }
        }
        if handshake_mode && last_scan.elapsed() > Duration::from_millis(100) {
            last_scan = Instant::now();
            if slots
                .iter()
                .any(|s| s.answered.is_some_and(|t| t.elapsed() > CLOSE_WAIT))
            {
                return Err(format!(
                    "the server did not close a connection within {CLOSE_WAIT:?} of answering \
                     a Connection: close request"
                ));
            }
        }
    }
    let secs = window_start.elapsed().as_secs_f64();
    let cpu = self_cpu() - cpu0;
    let busy = machine_busy() - busy0;
    let srv = if a.server_pids.is_empty() {
        None
    } else {
        Some(servers_cpu(&a.server_pids)? - srv0)
    };
    if st.lat_ns.is_empty() {
        return Err("no answer completed in the measured window".into());
    }
    let mut lat = st.lat_ns;
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1e3;
    let n = st.answers;
    let mb = st.body_bytes as f64 / 1e6;
    let mut line = format!(
        "mode={} conns={} secs={secs:.2} answers={n} answers_per_s={:.0} body_bytes={} \
         mb_per_s={:.1} p50_us={:.0} p99_us={:.0} loadgen_cpu={:.2}",
        a.mode,
        a.conns,
        n as f64 / secs,
        st.body_bytes,
        mb / secs,
        pct(0.50),
        pct(0.99),
        cpu / secs
    );
    let mut other = busy - cpu;
    if let Some(srv) = srv {
        other -= srv;
        line += &format!(" server_cpu={:.2} server_cpu_s={srv:.2}", srv / secs);
        if srv > 0.0 {
            line += &format!(
                " answers_per_server_cpu_s={:.0} mb_per_server_cpu_s={:.1}",
                n as f64 / srv,
                mb / srv
            );
        } else {
            line += " answers_per_server_cpu_s=- mb_per_server_cpu_s=-";
        }
    }
    line += &format!(" other_cpu={:.2}", other.max(0.0) / secs);
    if let Some(p) = st.params {
        line += " ";
        line += &p;
    }
    Ok(line)
}
