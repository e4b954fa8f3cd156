//! Counters: [`ServerStats`] (kept by the server as it goes) and
//! [`ClientCounts`] (counted from the connection table on demand).

/// Counters of one server, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Clients whose close callback has fired.
    pub closed: u64,
    /// HTTP requests whose head was delivered.
    pub requests: u64,
    /// Error responses the server sent itself (4xx/5xx for bad input).
    pub protocol_errors: u64,
    /// Connections closed by a timeout.
    pub timeouts: u64,
    /// Bytes received / sent on connections.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Connections upgraded to WebSocket.
    pub ws_upgrades: u64,
    /// WebSocket messages received.
    pub ws_messages_in: u64,
    /// Frames queued by broadcasts and publishes (one per recipient).
    pub ws_broadcast_deliveries: u64,
    /// Broadcast recipients dropped or closed by the slow-client policy.
    pub ws_broadcast_drops: u64,
    /// Most bytes ever queued (or in flight) on one connection.
    pub queued_bytes_high_water: u64,
    /// HTTP responses started, by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub responses: [u64; 5],
    /// Times a connection stopped being read because its queued output
    /// crossed [`ServerConfig::pause_reading_above`](crate::ServerConfig::pause_reading_above).
    pub output_pauses: u64,
    /// Connections closed because their peer accepted no byte for
    /// [`ServerConfig::write_progress_timeout`] (also counted in
    /// `timeouts`).
    ///
    /// [`ServerConfig::write_progress_timeout`]: crate::ServerConfig::write_progress_timeout
    pub write_timeouts: u64,
    /// Application callbacks that panicked (see [`crate::PanicPolicy`]).
    pub app_panics: u64,
    /// Most bytes of received input ever buffered unparsed on one HTTP
    /// connection (a partial head, pipelined requests).
    pub input_high_water: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed (a malformed or refused ClientHello, no
    /// common version or cipher suite, a bad record, garbage, a reset):
    /// the connection was closed, with an alert where TLS allows one.
    pub tls_handshake_failures: u64,
    /// TLS handshakes not finished within
    /// [`ServerConfig::tls_handshake_timeout`](crate::ServerConfig::tls_handshake_timeout)
    /// (also counted in `timeouts`).
    pub tls_handshake_timeouts: u64,
    /// Plain-HTTP requests sent to a TLS listener (answered 400, closed).
    pub tls_plain_http: u64,
    /// TLS errors after the handshake (a bad record or MAC, a fatal alert
    /// from the peer): the connection was closed.
    pub tls_errors: u64,
    /// File transfers that spliced their body (file → pipe → socket, see
    /// [`FileConfig::splice`](crate::FileConfig::splice)): one per pipe
    /// opened.
    pub file_splices: u64,
    /// File transfers that read their body although splicing was on: no
    /// pipe (`splice_max_pipes` reached, `EMFILE`, a pipe under 16 KiB) or a
    /// file the file system cannot splice.
    pub file_splice_fallbacks: u64,
    /// Bytes spliced into sockets (also counted in `bytes_out`).
    pub spliced_bytes: u64,
    /// Bytes that were in splicing transfers' pipes at a quiesce (spliced
    /// from the file, not yet into the socket): the pipes were closed and
    /// the transfers' file offsets moved back over them, so they are
    /// spliced again after the resume or import.
    pub pipe_bytes_rewound: u64,
}

impl ServerStats {
    pub(crate) fn count_response(&mut self, status: u16) {
        if let Some(slot) = self
            .responses
            .get_mut((status / 100).wrapping_sub(1) as usize)
        {
            *slot += 1;
        }
    }
}

/// Open clients of one server by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    /// HTTP connections.
    pub http: usize,
    /// WebSocket connections.
    pub websocket: usize,
    /// RAW clients.
    pub raw: usize,
}
