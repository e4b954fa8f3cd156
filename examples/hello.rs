//! The smallest ringtail HTTP application: answers every request with
//! `Hello, World!`, reads (and counts) request bodies, and logs closes.
//!
//! Run: `cargo run --release --example hello -- 127.0.0.1:8080`

use network_server::{
    Application, ClientId, CloseReason, Ctx, HttpEvent, Protocol, Server, ServerConfig,
};

#[derive(Default)]
struct Hello {
    body_bytes: u64,
}

impl Application for Hello {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {
        match event {
            // A request without a body can be answered at once; one with a
            // body is answered when the body has arrived.
            HttpEvent::Request(req) if !req.body.has_body() => self.answer(ctx, client),
            HttpEvent::Request(_) => {}
            HttpEvent::Body(chunk) => self.body_bytes += chunk.len() as u64,
            HttpEvent::BodyEnd => self.answer(ctx, client),
        }
    }

    fn on_http_close(&mut self, _ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        if !matches!(reason, CloseReason::Peer) {
            eprintln!("{client} closed: {reason:?}");
        }
    }
}

impl Hello {
    fn answer(&mut self, ctx: &mut Ctx<'_>, client: ClientId) {
        let headers = [("Content-Type", "text/plain")];
        // Copied next to the head; nothing comes back in on_http_write.
        let _ = ctx.http_respond_copy(client, 200, &headers, b"Hello, World!");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let mut server = Server::new(ServerConfig::default())?;
    let listener = server.listen(addr.parse()?, Protocol::Http)?;
    println!("listening on http://{}", server.local_addr(listener));
    server.run(&mut Hello::default())?;
    Ok(())
}
