//! Hello-world HTTP/1.1 server on may_minihttp, a benchmark peer of
//! ringtail's `examples/hello.rs`: every request is answered `200` with
//! `Content-Type: text/plain` and the body `Hello, World!`.
//!
//! Written like the crate's own TechEmpower entry
//! (`examples/techempower_no_db.rs`): a service per connection from an
//! `HttpServiceFactory`, a static body, may's coroutine pool and 4 KiB
//! coroutine stacks as configured there, and — to match
//! `ringtail --threads 1` — ONE may worker thread (`set_workers(1)`; may's
//! default is one per CPU). may_minihttp answers pipelined requests in one
//! write per read batch by design.
//!
//! Usage: `may_minihttp_hello [ADDR]` (default `127.0.0.1:8080`).

use std::io;

use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.header("Content-Type: text/plain").body("Hello, World!");
        Ok(())
    }
}

struct Factory;

impl HttpServiceFactory for Factory {
    type Service = Hello;

    fn new_service(&self, _id: usize) -> Hello {
        Hello
    }
}

fn main() {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    may::config()
        .set_workers(1)
        .set_pool_capacity(500)
        .set_stack_size(0x1000);
    let server = Factory.start(&addr).unwrap_or_else(|e| {
        eprintln!("listen on {addr}: {e}");
        std::process::exit(1);
    });
    println!("listening on http://{addr}");
    server.join().unwrap();
}
