//! `/metrics`: every loop's counters summed, in the Prometheus text
//! exposition format (version 0.0.4).

use std::fmt::Write;

use crate::hub::LoopStats;

/// Renders the sum of `loops`.
pub fn render(loops: &[LoopStats], cluster: Option<&crate::cluster::Cluster>) -> String {
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
        let text = render(&[a, b], None);
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
    }
}
