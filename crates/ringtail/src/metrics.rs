//! `/metrics`: every loop's counters summed, in the Prometheus text
//! exposition format (version 0.0.4).

use std::fmt::Write;

use crate::hub::LoopStats;

/// Renders the sum of `loops`.
pub fn render(
    loops: &[LoopStats],
    cluster: Option<&crate::cluster::Cluster>,
    tls: Option<&crate::tls::Tls>,
) -> String {
    let sum = |f: &dyn Fn(&LoopStats) -> u64| loops.iter().map(f).sum::<u64>();
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "# HELP ringtail_build_info The running build (version and build id).\n\
         # TYPE ringtail_build_info gauge\n\
         ringtail_build_info{{version=\"{}\",build=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        crate::build_id::get().replace(['\\', '"', '\n'], "_"),
    );
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP ringtail_{name} {help}");
        let _ = writeln!(out, "# TYPE ringtail_{name} {kind}");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(out, "ringtail_{name} {v}");
            } else {
                let _ = writeln!(out, "ringtail_{name}{{{labels}}} {v}");
            }
        }
    };
    metric(
        "access_log_dropped_total",
        "counter",
        "Access-log lines dropped because the --access-log-file writer was behind.",
        &[("", crate::access_file::dropped())],
    );
    metric(
        "event_loops",
        "gauge",
        "Event loops (threads) serving.",
        &[("", loops.len() as u64)],
    );
    metric(
        "connections_open",
        "gauge",
        "Open clients by protocol.",
        &[
            ("protocol=\"http\"", sum(&|l| l.clients.http as u64)),
            (
                "protocol=\"websocket\"",
                sum(&|l| l.clients.websocket as u64),
            ),
            ("protocol=\"raw\"", sum(&|l| l.clients.raw as u64)),
        ],
    );
    metric(
        "connections_accepted_total",
        "counter",
        "Connections accepted.",
        &[("", sum(&|l| l.server.accepted))],
    );
    metric(
        "connections_closed_total",
        "counter",
        "Clients closed (one close callback each).",
        &[("", sum(&|l| l.server.closed))],
    );
    metric(
        "http_requests_total",
        "counter",
        "HTTP request heads received.",
        &[("", sum(&|l| l.server.requests))],
    );
    let classes = ["1xx", "2xx", "3xx", "4xx", "5xx"];
    let by_class: Vec<(String, u64)> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("class=\"{c}\""), sum(&|l| l.server.responses[i])))
        .collect();
    let by_class_ref: Vec<(&str, u64)> = by_class.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    metric(
        "http_responses_total",
        "counter",
        "HTTP responses by status class.",
        &by_class_ref,
    );
    metric(
        "http_protocol_errors_total",
        "counter",
        "Requests rejected by the parser (400, 413, 431, ...).",
        &[("", sum(&|l| l.server.protocol_errors))],
    );
    metric(
        "timeouts_total",
        "counter",
        "Connections closed by a timeout.",
        &[("", sum(&|l| l.server.timeouts))],
    );
    metric(
        "write_timeouts_total",
        "counter",
        "Connections closed because the peer accepted no byte for --write-timeout.",
        &[("", sum(&|l| l.server.write_timeouts))],
    );
    metric(
        "file_splices_total",
        "counter",
        "File transfers that spliced their body (file -> pipe -> socket, no copy through user memory).",
        &[("", sum(&|l| l.server.file_splices))],
    );
    metric(
        "file_splice_fallbacks_total",
        "counter",
        "File transfers that read their body although splicing was on (no pipe: the bound, EMFILE; \
         or a file that cannot be spliced).",
        &[("", sum(&|l| l.server.file_splice_fallbacks))],
    );
    metric(
        "spliced_bytes_total",
        "counter",
        "File bytes spliced into sockets (also in the bytes sent).",
        &[("", sum(&|l| l.server.spliced_bytes))],
    );
    metric(
        "output_pauses_total",
        "counter",
        "Times a connection stopped being read because its peer did not read its output.",
        &[("", sum(&|l| l.server.output_pauses))],
    );
    metric(
        "app_panics_total",
        "counter",
        "Request handlers that panicked (their client was closed).",
        &[("", sum(&|l| l.server.app_panics))],
    );
    metric(
        "stale_completions_total",
        "counter",
        "Ring completions that named no operation in flight (dropped; always 0 unless there is a bug).",
        &[("", sum(&|l| l.ring.stale_completions))],
    );
    metric(
        "bytes_received_total",
        "counter",
        "Bytes received on connections.",
        &[("", sum(&|l| l.server.bytes_in))],
    );
    metric(
        "bytes_sent_total",
        "counter",
        "Bytes sent on connections.",
        &[("", sum(&|l| l.server.bytes_out))],
    );
    metric(
        "websocket_upgrades_total",
        "counter",
        "Connections upgraded to WebSocket.",
        &[("", sum(&|l| l.server.ws_upgrades))],
    );
    metric(
        "websocket_messages_received_total",
        "counter",
        "WebSocket messages received.",
        &[("", sum(&|l| l.server.ws_messages_in))],
    );
    metric(
        "broadcast_deliveries_total",
        "counter",
        "Frames queued by broadcasts (one per recipient).",
        &[("", sum(&|l| l.server.ws_broadcast_deliveries))],
    );
    metric(
        "broadcast_drops_total",
        "counter",
        "Broadcast recipients dropped or closed as slow readers.",
        &[("", sum(&|l| l.server.ws_broadcast_drops))],
    );
    metric(
        "hub_drops_total",
        "counter",
        "Messages published on one event loop and dropped for another because \
         that loop's hub inbox was full (--hub-inbox-limit).",
        &[("", sum(&|l| l.hub_drops))],
    );
    metric(
        "queued_bytes_high_water",
        "gauge",
        "Most bytes ever queued on one connection (max over loops).",
        &[(
            "",
            loops
                .iter()
                .map(|l| l.server.queued_bytes_high_water)
                .max()
                .unwrap_or(0),
        )],
    );
    metric(
        "ring_submissions_total",
        "counter",
        "io_uring submission queue entries pushed.",
        &[("", sum(&|l| l.ring.submitted))],
    );
    metric(
        "ring_completions_total",
        "counter",
        "io_uring completions reaped.",
        &[("", sum(&|l| l.ring.completed))],
    );
    if let Some(t) = tls {
        metric(
            "tls_handshakes_total",
            "counter",
            "TLS handshakes completed.",
            &[("", sum(&|l| l.server.tls_handshakes))],
        );
        metric(
            "tls_handshake_failures_total",
            "counter",
            "TLS handshakes that failed (refused or malformed ClientHello, no common version \
             or cipher suite, garbage, a reset); the connection was closed.",
            &[("", sum(&|l| l.server.tls_handshake_failures))],
        );
        metric(
            "tls_handshake_timeouts_total",
            "counter",
            "TLS handshakes not finished within --tls-handshake-timeout (also in \
             ringtail_timeouts_total).",
            &[("", sum(&|l| l.server.tls_handshake_timeouts))],
        );
        metric(
            "tls_plain_http_total",
            "counter",
            "Plain-HTTP requests sent to the HTTPS port (answered 400, closed).",
            &[("", sum(&|l| l.server.tls_plain_http))],
        );
        metric(
            "tls_errors_total",
            "counter",
            "TLS errors after the handshake (a bad record, a fatal alert); the connection was closed.",
            &[("", sum(&|l| l.server.tls_errors))],
        );
        metric(
            "tls_ktls",
            "gauge",
            "1 if the kernel offers kernel TLS (the tls upper-layer protocol), else 0. \
             ringtail does not hand it the keys yet: rustls encrypts in user space either way.",
            &[("", u64::from(t.ktls().is_available()))],
        );
        let (ok, failed) = t.reload_counts();
        metric(
            "tls_reloads_total",
            "counter",
            "Certificate reloads (SIGHUP, ctl reload-tls) by result; a failed one kept the \
             certificates served before.",
            &[("result=\"ok\"", ok), ("result=\"failed\"", failed)],
        );
    }
    if let Some(c) = cluster {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        metric(
            "cluster_up",
            "gauge",
            "1 while both connections to Redis (publisher, subscriber) are up.",
            &[("", u64::from(c.is_up()))],
        );
        metric(
            "cluster_subscriptions",
            "gauge",
            "Topics subscribed in Redis for local clients.",
            &[("", c.subscriptions() as u64)],
        );
        metric(
            "cluster_published_total",
            "counter",
            "Messages published to Redis for other processes.",
            &[("", get(&c.stats.published))],
        );
        metric(
            "cluster_received_total",
            "counter",
            "Messages from other processes delivered to the loops.",
            &[("", get(&c.stats.received))],
        );
        metric(
            "cluster_dropped_total",
            "counter",
            "Messages for other processes dropped: no connection to Redis, or the publisher's queue full.",
            &[("", get(&c.stats.dropped))],
        );
        metric(
            "cluster_reconnects_total",
            "counter",
            "Connections to Redis lost and remade.",
            &[("", get(&c.stats.reconnects))],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_loops_in_prometheus_text() {
        let mut a = LoopStats::default();
        a.server.requests = 3;
        a.server.responses[1] = 2;
        a.clients.websocket = 1;
        let mut b = LoopStats::default();
        b.server.requests = 4;
        b.server.responses[3] = 1;
        b.hub_drops = 5;
        let text = render(&[a, b], None, None);
        assert!(text.contains(
            "# TYPE ringtail_http_requests_total counter\nringtail_http_requests_total 7\n"
        ));
        assert!(text.contains("ringtail_http_responses_total{class=\"2xx\"} 2\n"));
        assert!(text.contains("ringtail_http_responses_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("ringtail_connections_open{protocol=\"websocket\"} 1\n"));
        assert!(text.contains("ringtail_event_loops 2\n"));
        assert!(
            text.contains("# TYPE ringtail_hub_drops_total counter\nringtail_hub_drops_total 5\n")
        );
        assert!(!text.contains("ringtail_tls_"), "no TLS, no TLS metrics");
    }

    #[test]
    fn tls_counters_are_summed_and_ktls_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::tls::tests::write_cert(dir.path(), "a", &["a.test"]);
        let tls = crate::tls::Tls::load(crate::tls::Files {
            cert,
            key,
            sni: Vec::new(),
        })
        .unwrap();
        let mut a = LoopStats::default();
        a.server.tls_handshakes = 3;
        a.server.tls_plain_http = 1;
        let mut b = LoopStats::default();
        b.server.tls_handshakes = 4;
        b.server.tls_handshake_timeouts = 2;
        b.server.tls_handshake_failures = 5;
        b.server.tls_errors = 6;
        let text = render(&[a, b], None, Some(&tls));
        for line in [
            "ringtail_tls_handshakes_total 7\n",
            "ringtail_tls_handshake_failures_total 5\n",
            "ringtail_tls_handshake_timeouts_total 2\n",
            "ringtail_tls_plain_http_total 1\n",
            "ringtail_tls_errors_total 6\n",
            "ringtail_tls_reloads_total{result=\"failed\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let ktls = u64::from(network_server::tls::ktls_available());
        assert!(text.contains(&format!(
            "# TYPE ringtail_tls_ktls gauge\nringtail_tls_ktls {ktls}\n"
        )));
    }
}
