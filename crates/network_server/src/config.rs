//! Server limits and timeouts, each with a default and a doc line saying
//! what crossing it does.

use std::time::Duration;

/// Limits, timeouts and sizes of one server (one event loop).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request head (request line + headers) in bytes; larger → 431.
    /// Default 16 KiB.
    pub max_head_size: usize,
    /// Most header fields in one request; more → 431. Default 100.
    pub max_headers: usize,
    /// Largest request body in bytes (Content-Length or chunked total);
    /// larger → 413. Bodies are streamed to the application, never held
    /// whole. Default 1 GiB.
    pub max_body_size: u64,
    /// Time allowed to receive a complete request head once its first byte
    /// arrived (slowloris guard); exceeded → 408 and close. Default 10 s.
    pub header_read_timeout: Duration,
    /// Time a keep-alive connection may sit idle between requests before it
    /// is closed quietly. Default 60 s.
    pub keepalive_timeout: Duration,
    /// How long a closing connection may go without any write completing
    /// while its queued output drains; then it is closed at once (a peer
    /// that stopped reading cannot hold it open). Default 30 s.
    pub drain_timeout: Duration,
    /// After the write side is shut down, how long lingering input is read
    /// and discarded before the close. Default 2 s.
    pub linger_timeout: Duration,
    /// After the write side is shut down, how many lingering input bytes are
    /// discarded before closing anyway. Default 64 KiB.
    pub linger_max_bytes: usize,
    /// Bytes of pipelined input buffered while the application has not yet
    /// answered the current request; past it the connection stops reading
    /// until the answer is complete. Default 64 KiB.
    pub max_pipelined_bytes: usize,
    /// Outgoing bytes queued per connection beyond which writes are refused
    /// with [`crate::Error::Backpressure`]. Default 16 MiB.
    pub max_queued_bytes: usize,
    /// Outgoing bytes queued per connection (everything: answers, frames,
    /// pongs, close frames) beyond which the server stops reading from it
    /// — its peer is not reading what it asked for, and TCP flow control
    /// then holds the peer back — and stops answering its pipelined
    /// requests; both resume once the queue is below half of this. Default
    /// 256 KiB (with the kernel's socket buffer in front of it, a peer that
    /// reads at all keeps its connection busy; 50 peers that read nothing
    /// hold about 25 MiB of the server's memory, not gigabytes).
    pub pause_reading_above: usize,
    /// A connection whose peer accepts no byte of a pending write for this
    /// long is closed ([`crate::CloseReason::Timeout`]), HTTP, WebSocket
    /// and RAW alike. Default 30 s.
    pub write_progress_timeout: Duration,
    /// What a panic in an application callback does. Default
    /// [`PanicPolicy::CloseClient`].
    pub on_panic: PanicPolicy,
    /// Set `TCP_NODELAY` on accepted connections. The server already
    /// coalesces each turn's output per connection into one `writev`, so
    /// Nagle's algorithm would only add delay. Default `true`.
    pub tcp_nodelay: bool,
    /// Write one access-log line per answer, one per WebSocket upgrade and
    /// one when that WebSocket closes, in the combined log format with the
    /// duration after it (`peer - - [date] "request line" status bytes
    /// "referer" "user-agent" seconds`; a WebSocket's close line adds
    /// `ws_close=CODE in=BYTES`), to `tracing` with target `access` at
    /// level info. Costs, while on, a small record per request and per
    /// open WebSocket. Default `false`.
    pub access_log: bool,
    /// Where access-log lines go instead of `tracing` (with
    /// [`ServerConfig::access_log`] on): batches of whole lines, handed
    /// over when 32 KiB have gathered, at each [`ServerConfig::timer_tick`]
    /// and when the loop stops or is exported — much cheaper per line than
    /// a `tracing` event. Default `None` (`tracing`).
    pub access_log_sink: Option<crate::AccessLogSink>,
    /// `Server` header value on every response; `None` sends none.
    /// Default `Some("ringtail")`.
    pub server_name: Option<String>,
    /// Granularity of the timeout sweep. Default 250 ms.
    pub timer_tick: Duration,
    /// WebSocket limits, timeouts and options.
    pub ws: WsConfig,
    /// File transfers ([`crate::Ctx::http_send_file`]) and the file cache.
    pub files: crate::FileConfig,
    /// The event manager's ring and buffer sizes.
    pub ring: event_manager::Config,
    /// TLS settings of [`Protocol::Https`](crate::Protocol::Https)
    /// listeners (certificates, versions, ALPN, resumption); see
    /// [`crate::tls`] for a certificate store that reloads and picks by SNI
    /// and for the settings ringtail uses. Shared by every loop (an `Arc`):
    /// session tickets issued by one loop resume on another. Default
    /// `None`.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// Time a TLS client has, from its connection being accepted, to finish
    /// its handshake; past it the connection is closed (counted in
    /// [`ServerStats::tls_handshake_timeouts`](crate::ServerStats::tls_handshake_timeouts)).
    /// Default 10 s.
    pub tls_handshake_timeout: Duration,
}

/// What happens when an application callback panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicPolicy {
    /// Catch the panic at the callback boundary, log it with the client and
    /// the callback's name, count it ([`crate::ServerStats::app_panics`]),
    /// and close only the client the callback was about: an HTTP request
    /// without an answer yet gets a 500, a WebSocket is closed with 1011;
    /// the close callback reports [`crate::CloseReason::Panic`]. Every other
    /// client is served on. The application's own state is whatever the
    /// panicking callback left behind.
    CloseClient,
    /// Log the panic, then abort the process (as `panic = "abort"` would).
    Abort,
}

/// What to do when a WebSocket client's queued output crosses
/// [`WsConfig::max_queued_bytes`] (a slow reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowClientPolicy {
    /// Drop the message for that client (counted in the broadcast report);
    /// the connection stays.
    DropMessage,
    /// Close the connection with this status code (1008 policy violation or
    /// 1013 try again later are the usual choices).
    Close(u16),
}

/// WebSocket settings of a server.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Largest message (after reassembly and decompression); larger → close
    /// 1009. Default 16 MiB.
    pub max_message_size: usize,
    /// Largest single frame payload; larger → close 1009. Default 16 MiB.
    pub max_frame_size: usize,
    /// Idle time after which the server pings the peer. Default 30 s.
    pub ping_interval: Duration,
    /// Time the peer has to answer a ping (with anything) before the
    /// connection is closed. Default 30 s.
    pub pong_timeout: Duration,
    /// Time the peer has to answer our Close before the TCP connection is
    /// closed anyway. Default 5 s.
    pub close_timeout: Duration,
    /// Outgoing bytes queued per WebSocket connection beyond which the
    /// [`SlowClientPolicy`] applies. Each queued piece not yet handed to
    /// the kernel counts its own size too (56 B), so a subscriber queued
    /// many tiny broadcast frames cannot hold more memory than this in
    /// bookkeeping. Per connection: the worst case for a server is this
    /// times its stalled clients. Default 4 MiB.
    pub max_queued_bytes: usize,
    /// What happens to a client over `max_queued_bytes`. Default
    /// `Close(1008)`.
    pub slow_client: SlowClientPolicy,
    /// Accept permessage-deflate (RFC 7692) when the client offers it.
    /// Default `true`.
    pub permessage_deflate: bool,
    /// The terms deflate is accepted on (when `permessage_deflate`).
    /// Default [`DeflateConfig::DEFAULT`](protocol::ws::DeflateConfig::DEFAULT):
    /// `server_no_context_takeover` and `client_no_context_takeover`
    /// (asked of every client; RFC 7692 §7.1.1.2 lets the server ask even
    /// when the offer did not), 32 KiB windows, level 6. With both
    /// `*_no_context_takeover` an idle connection holds no compression
    /// state: each event loop shares one compressor and one decompressor.
    /// Turning either off gives each connection that compresses in that
    /// direction its own, from its first compressed message for its
    /// lifetime (about 320 KB for a compressor at level 6 with a 32 KiB
    /// window, up to about 50 KB for a decompressor; see
    /// `docs/websocket.md`).
    pub deflate: protocol::ws::DeflateConfig,
    /// Messages shorter than this are sent uncompressed even when deflate
    /// was negotiated (RSV1 is per message). Default 128 bytes.
    pub compress_min_size: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            max_queued_bytes: 4 << 20,
            slow_client: SlowClientPolicy::Close(1008),
            permessage_deflate: true,
            deflate: protocol::ws::DeflateConfig::DEFAULT,
            compress_min_size: 128,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head_size: 16 * 1024,
            max_headers: 100,
            max_body_size: 1 << 30,
            header_read_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            linger_timeout: Duration::from_secs(2),
            linger_max_bytes: 64 * 1024,
            max_pipelined_bytes: 64 * 1024,
            max_queued_bytes: 16 << 20,
            pause_reading_above: 256 << 10,
            write_progress_timeout: Duration::from_secs(30),
            on_panic: PanicPolicy::CloseClient,
            tcp_nodelay: true,
            access_log: false,
            access_log_sink: None,
            server_name: Some("ringtail".into()),
            timer_tick: Duration::from_millis(250),
            ws: WsConfig::default(),
            files: crate::FileConfig::default(),
            ring: event_manager::Config::default(),
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}
