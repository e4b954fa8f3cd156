//! Hello-world HTTP/1.1 server on hyper 1.x, a benchmark peer of ringtail's
//! `examples/hello.rs`: every request is answered `200` with
//! `Content-Type: text/plain` and the body `Hello, World!`.
//!
//! One thread: a tokio current-thread runtime, every connection a task on
//! it (to match `ringtail --threads 1`). Configured as hyper's authors do
//! for speed (hyper's own `benches/pipeline.rs` and the TechEmpower hyper
//! entry): HTTP/1 only, keep-alive (the default), `pipeline_flush(true)`
//! so pipelined answers go out in one write, `TCP_NODELAY` on each
//! connection, a `Full<Bytes>` body from a static string (no copy), and
//! a service that returns a ready future.
//!
//! Usage: `hyper_hello [ADDR]` (default `127.0.0.1:8080`).

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

static BODY: &[u8] = b"Hello, World!";

fn hello(_req: Request<Incoming>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    std::future::ready(Ok(res))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        let mut http = http1::Builder::new();
        http.keep_alive(true).pipeline_flush(true);
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(c) => c,
                // EMFILE and friends: keep serving the connections we have.
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let conn = http.serve_connection(TokioIo::new(stream), service_fn(hello));
            tokio::task::spawn(async move {
                let _ = conn.await;
            });
        }
    })
}
