//! Request heads: [`parse_request`] (httparse plus this crate's checks and
//! analysis) against bare `httparse` on the same bytes, which is the floor
//! the checks add to. Two heads: the load generator's pipelined `/hello`
//! (method, target, Host) and a browser's navigation (16 fields). Results
//! are recorded in `docs/http.md`.
//!
//! ```sh
//! cargo bench -p protocol --bench request_head
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use protocol::{header_storage, parse_request, Limits, Parsed};

const HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:40000\r\n\r\n";

const BROWSER: &[u8] = b"GET /files/report.html?sort=date&page=2 HTTP/1.1\r\n\
Host: example.com:8080\r\n\
Connection: keep-alive\r\n\
Cache-Control: max-age=0\r\n\
sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-User: ?1\r\n\
Sec-Fetch-Dest: document\r\n\
Referer: http://example.com:8080/files/\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en;q=0.9\r\n\r\n";

fn heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("request_head");
    for (name, head) in [("hello", HELLO), ("browser", BROWSER)] {
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_function(format!("parse_request/{name}"), |b| {
            b.iter(|| {
                let mut storage = header_storage::<64>();
                match parse_request(black_box(head), &mut storage, &limits) {
                    Ok(Parsed::Complete(h, n)) => (h.path.len(), n),
                    _ => unreachable!(),
                }
            })
        });
        group.bench_function(format!("httparse/{name}"), |b| {
            b.iter(|| {
                let mut storage = header_storage::<64>();
                let mut req = httparse::Request::new(&mut []);
                match httparse::ParserConfig::default().parse_request_with_uninit_headers(
                    &mut req,
                    black_box(head),
                    &mut storage,
                ) {
                    Ok(httparse::Status::Complete(n)) => (req.path.map_or(0, str::len), n),
                    _ => unreachable!(),
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, heads);
criterion_main!(benches);
