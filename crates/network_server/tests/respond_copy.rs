//! `Ctx::http_respond_copy`: the body is copied (any size), the answer is
//! the same as `http_respond`'s on the wire — HEAD included — pipelined
//! answers stay in order, and no `on_http_write` follows a copied answer.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{connect, read_response, spawn};
use network_server::{Application, ClientId, Ctx, HttpEvent, OutBuf, ServerConfig};

struct App {
    scratch: Vec<u8>,
    writes: Arc<Mutex<u64>>,
}

impl Application for App {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        let HttpEvent::Request(req) = ev else { return };
        let n: usize = req.path[1..]
            .split('/')
            .nth(1)
            .map_or(0, |n| n.parse().unwrap());
        // The scratch buffer is reused (and overwritten) at once: the copy
        // must not borrow it.
        self.scratch.clear();
        self.scratch.extend((0..n).map(|i| b'a' + (i % 26) as u8));
        let headers = [("Content-Type", "text/plain")];
        if req.path.starts_with("/copy/") {
            ctx.http_respond_copy(client, 200, &headers, &self.scratch)
                .unwrap();
            self.scratch.fill(b'!');
        } else {
            ctx.http_respond(client, 200, &headers, self.scratch.clone())
                .unwrap();
        }
    }

    fn on_http_write(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _client: ClientId,
        _bufs: Vec<OutBuf>,
        _result: Result<(), network_server::Error>,
    ) {
        *self.writes.lock().unwrap() += 1;
    }
}

#[test]
fn copied_answers_match_given_ones_and_give_nothing_back() {
    let writes = Arc::new(Mutex::new(0));
    let w2 = writes.clone();
    let server = spawn(ServerConfig::default(), move |_| App {
        scratch: Vec::new(),
        writes: w2,
    });
    let sizes = [0usize, 13, 1024, 1025, 5000, 70_000];
    let mut s = connect(server.addr);
    let mut requests = Vec::new();
    for n in sizes {
        for kind in ["copy", "given"] {
            for method in ["GET", "HEAD"] {
                write!(requests, "{method} /{kind}/{n} HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
            }
        }
    }
    s.write_all(&requests).unwrap();
    let mut buf = Vec::new();
    for n in sizes {
        let want: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
        for kind in ["copy", "given"] {
            for head in [false, true] {
                let r = read_response(&mut s, &mut buf, head).expect("an answer");
                assert_eq!(r.status, 200);
                assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
                let body: &[u8] = if head { &[] } else { &want };
                assert!(r.body == body, "{kind} {n} head={head}: wrong body");
            }
        }
    }
    drop(s);
    server.stop();
    // One per given answer (GET and HEAD alike), none for a copied one.
    assert_eq!(*writes.lock().unwrap(), sizes.len() as u64 * 2);
}
