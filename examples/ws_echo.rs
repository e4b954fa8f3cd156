//! WebSocket echo: upgrades every request (e.g. `/ws/echo`) and sends each
//! text or binary message back. permessage-deflate is off, so load
//! comparisons with other servers (`bench/ws.sh`) move the same bytes;
//! `--deflate` turns it on with the default terms (`bench/ws.sh`'s
//! `ws_idle_deflate_N` rows: idle connections that negotiated it).
//!
//! Run: `cargo run --release --example ws_echo -- 127.0.0.1:9001`
//! (`--addr ADDR` works too; add `--deflate` to accept permessage-deflate).

use network_server::{
    Application, ClientId, Ctx, Error, HttpEvent, OutBuf, Protocol, Server, ServerConfig, WsOpcode,
};

/// Echo buffers come back in `on_ws_write` and are reused for the next
/// message, so a steady echo allocates nothing.
#[derive(Default)]
struct Echo {
    spare: Vec<Vec<u8>>,
}

impl Application for Echo {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = event {
            // An invalid handshake is answered (400/426) by ws_upgrade itself.
            let _ = ctx.ws_upgrade(client, req, None);
        }
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        if matches!(op, WsOpcode::Text | WsOpcode::Binary) {
            let mut buf = self.spare.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(data);
            let _ = ctx.ws_send(client, op, buf);
        }
    }

    fn on_ws_write(
        &mut self,
        _: &mut Ctx<'_>,
        _: ClientId,
        bufs: Vec<OutBuf>,
        _: Result<(), Error>,
    ) {
        self.spare
            .extend(bufs.into_iter().filter_map(OutBuf::into_vec));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let deflate = args.iter().any(|a| a == "--deflate");
    let addr = args
        .into_iter()
        .find(|a| !a.starts_with("--"))
        .unwrap_or("127.0.0.1:9001".into());
    let mut config = ServerConfig::default();
    config.ws.permessage_deflate = deflate;
    let mut server = Server::new(config)?;
    let listener = server.listen(addr.parse()?, Protocol::Http)?;
    println!("listening on ws://{}/ws/echo", server.local_addr(listener));
    server.run(&mut Echo::default())?;
    Ok(())
}
