//! How long a ringtail server stops serving for one handover to a fresh
//! `Server` in the same process — `quiesce` → `export` → `release` →
//! `import` → `resume` — with N open WebSocket connections (held by
//! `loadgen idle`, a separate process) and a few busy ones.
//!
//! ```text
//! handover_pause --loadgen PATH --conns N [--rounds R] [--deflate]
//! ```
//!
//! Prints one `key=value` line: the median and largest pause over the
//! rounds, the median of each phase, and the snapshot's size. The server
//! runs on this process's first allowed CPU, as the script pins it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use network_server::{
    Application, ClientId, Ctx, HttpEvent, Protocol, Server, ServerConfig, WsOpcode,
};

struct Echo;

impl Application for Echo {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        if let HttpEvent::Request(req) = ev {
            if req.path.starts_with("/ws") {
                let _ = ctx.ws_upgrade(client, req, None);
            } else {
                let _ = ctx.http_respond(client, 200, &[], "hello");
            }
        }
    }
    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        if matches!(op, WsOpcode::Text | WsOpcode::Binary) {
            let _ = ctx.ws_send(client, op, data.to_vec());
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], flag: &str, default: Option<T>) -> T {
    match args.iter().position(|a| a == flag) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("bad value for {flag}")),
        None => default.unwrap_or_else(|| panic!("{flag} is required")),
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let loadgen: String = arg(&args, "--loadgen", None);
    let conns: usize = arg(&args, "--conns", None);
    let rounds: usize = arg(&args, "--rounds", Some(11));
    let deflate = args.iter().any(|a| a == "--deflate");
    let cpu_other: String = arg(&args, "--client-cpu", Some("1".to_string()));
    raise_nofile();

    let config = ServerConfig::default();
    let mut server = Server::new(config.clone()).expect("server");
    let l = server
        .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
        .expect("listen");
    let addr = server.local_addr(l);
    let mut app = Echo;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &cpu_other, &loadgen, "idle"])
        .args(["--url", &format!("ws://{addr}/ws")])
        .args(["--conns", &conns.to_string()])
        .args(["--server-pid", &std::process::id().to_string()])
        .args(["--settle", "0.2", "--hold", "600"]);
    if deflate {
        cmd.arg("--deflate");
    }
    let mut child: Child = cmd.stdout(Stdio::null()).spawn().expect("loadgen");
    let limit = Instant::now() + Duration::from_secs(120);
    while server.client_count() < conns {
        assert!(
            Instant::now() < limit,
            "only {} connections",
            server.client_count()
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("loadgen exited: {status}");
        }
        server
            .run_until(&mut app, Instant::now() + Duration::from_millis(50))
            .expect("run");
    }
    let (mut total, mut quiesce, mut export, mut import, mut resume) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..rounds {
        server
            .run_until(&mut app, Instant::now() + Duration::from_millis(100))
            .expect("run");
        let t0 = Instant::now();
        server.quiesce(&mut app).expect("quiesce");
        let t1 = Instant::now();
        let snap = server.export(&mut app).expect("export");
        let t2 = Instant::now();
        let fds = server.release();
        server = Server::import(config.clone(), &snap.bytes, fds, &mut app)
            .map_err(|(e, _)| e)
            .expect("import");
        let t3 = Instant::now();
        server.resume(&mut app).expect("resume");
        let t4 = Instant::now();
        size = snap.bytes.len();
        total.push(t4 - t0);
        quiesce.push(t1 - t0);
        export.push(t2 - t1);
        import.push(t3 - t2);
        resume.push(t4 - t3);
    }
    assert_eq!(server.client_count(), conns, "connections lost");
    let _ = child.kill();
    let _ = child.wait();
    let max = *total.iter().max().unwrap();
    println!(
        "conns={conns} deflate={deflate} rounds={rounds} pause_median_ms={} pause_max_ms={} \
         quiesce_ms={} export_ms={} release_import_ms={} resume_ms={} snapshot_bytes={size}",
        ms(median(&mut total)),
        ms(max),
        ms(median(&mut quiesce)),
        ms(median(&mut export)),
        ms(median(&mut import)),
        ms(median(&mut resume)),
    );
}
