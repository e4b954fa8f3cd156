//! WebSocket broadcast: every client of `/ws/broadcast` is subscribed to one
//! topic, and every text or binary message a client sends is published to
//! that topic — delivered to every connected client, the sender included,
//! as one shared frame (encoded once, reference-counted, written to each
//! subscriber). The broadcast workload of `bench/ws.sh`.
//!
//! Default `ServerConfig` apart from: permessage-deflate off (as in
//! `ws_echo`: the load comparison moves the same bytes for every server) and
//! a per-connection queued-bytes limit of 64 MiB instead of 4 MiB, so that a
//! load test with large messages and a deep window never trips the
//! slow-client policy (close 1008). A drop or slow-client close would be
//! reported on stderr; the load generator also counts every delivery and
//! reports the missing ones.
//!
//! Run: `cargo run --release --example ws_broadcast -- 127.0.0.1:9001`
//! (`--addr ADDR` works too).

use network_server::{
    Application, ClientId, Ctx, HttpEvent, Protocol, Server, ServerConfig, WsOpcode,
};

const PATH: &str = "/ws/broadcast";
const TOPIC: &str = "broadcast";

/// Messages some subscriber did not get (dropped or closed as slow).
#[derive(Default)]
struct Broadcast {
    lost: u64,
}

impl Application for Broadcast {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {
        let HttpEvent::Request(req) = event else {
            return;
        };
        if req.path != PATH {
            let text = [("Content-Type", "text/plain; charset=utf-8")];
            let _ = ctx.http_respond(client, 404, &text, "not found\n");
            return;
        }
        // An invalid handshake is answered (400/426) by ws_upgrade itself.
        if ctx.ws_upgrade(client, req, None).is_ok() {
            let _ = ctx.ws_subscribe(client, TOPIC);
        }
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, _: ClientId, op: WsOpcode, data: &[u8]) {
        if matches!(op, WsOpcode::Text | WsOpcode::Binary) {
            let report = ctx.ws_publish(TOPIC, op, data);
            let lost = (report.dropped + report.closed) as u64;
            if lost > 0 {
                self.lost += lost;
                eprintln!(
                    "ws_broadcast: {} dropped, {} closed as slow ({} lost in all)",
                    report.dropped, report.closed, self.lost
                );
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .skip(1)
        .find(|a| a != "--addr")
        .unwrap_or("127.0.0.1:9001".into());
    let mut config = ServerConfig::default();
    config.ws.permessage_deflate = false;
    config.ws.max_queued_bytes = 64 << 20;
    let mut server = Server::new(config)?;
    let listener = server.listen(addr.parse()?, Protocol::Http)?;
    println!("listening on ws://{}{PATH}", server.local_addr(listener));
    server.run(&mut Broadcast::default())?;
    Ok(())
}
