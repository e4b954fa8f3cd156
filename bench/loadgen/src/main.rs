//! Load generator for ringtail's benchmark suite: WebSocket (`echo`,
//! `broadcast`, `idle`, below) and HTTPS (`tls-get`, `tls-handshake`:
//! keep-alive requests and a new TLS connection per request, over rustls's
//! client; see `tls.rs`).
//!
//! ```text
//! loadgen echo --url ws://127.0.0.1:9001/ws/echo --conns 64 --size 32 --duration 8
//!              [--warmup 1] [--text] [--server-pid PID]
//! loadgen broadcast --url ws://127.0.0.1:9001/ws/broadcast --receivers 1000 --size 32
//!              --duration 8 [--warmup 1] [--window 64] [--drain 5] [--server-pid PID]
//! loadgen idle --url ws://127.0.0.1:9001/ws/echo --conns 10000 --server-pid PID
//!              [--settle 2] [--hold 1]
//! loadgen http --url http://127.0.0.1:8080/hello --conns 64 --depth 16 --duration 8
//!              [--warmup 1] [--server-pid PID]
//! loadgen tls-get --url https://127.0.0.1:8443/hello --conns 64 --duration 8
//!              [--warmup 1] [--sni localhost] [--expect-body TEXT | --expect-len N]
//!              [--server-pid PID[,PID…]]
//! loadgen tls-handshake --url https://127.0.0.1:8443/hello --conns 64 --duration 8 …
//! ```
//!
//! Every mode takes `--deflate`: each handshake offers
//! `permessage-deflate; client_max_window_bits`, as browsers do, and the
//! output gains `deflate_agreed=N` (connections whose 101 accepted it).
//! The load generator itself never compresses; with deflate agreed a
//! server may still compress what it sends, which the byte-for-byte checks
//! refuse, so `echo --deflate` is for messages below the server's
//! compression threshold (ringtail: 128 bytes) — deflate negotiated but
//! unused.
//!
//! * `echo`: closed loop. Each connection sends one W-byte message, waits
//!   for its echo, and sends the next. After `--warmup` seconds it counts
//!   for `--duration` seconds: messages/s and the round-trip distribution.
//!   With `--server-pid` it also reports the server's CPU time in that
//!   window (from `/proc/PID/stat`) and messages per server-CPU-second.
//! * `broadcast`: R receiver connections and one publisher connection, all
//!   subscribed; the server delivers every message to every connection, the
//!   publisher included (R + 1 deliveries per message). The publisher sends
//!   W-byte binary messages carrying a sequence number and its send time
//!   and keeps at most `--window` messages in flight (a message is done when
//!   all R + 1 connections have it): a closed, bounded loop. Every
//!   connection checks that it gets every message once, in order. Reports
//!   deliveries/s, messages/s, the delivery latency distribution (send to
//!   receipt, every delivery in the window, in a histogram) and `missing`
//!   (deliveries that never came, waited for up to `--drain` seconds after
//!   the window; must be 0). With `--no-echo` the publisher is not among
//!   the recipients (servers such as `../shared/limit` relay to every
//!   connection but the sender): R deliveries per message, done when the R
//!   receivers have it.
//! * `http`: closed loop of plain HTTP/1.1 keep-alive requests. Each
//!   connection writes `--depth` GET requests at once (1: one in flight;
//!   16: pipelined), reads the `--depth` answers (status 200, body by
//!   `Content-Length`), and writes the next batch. Reports answers/s, the
//!   batch round-trip distribution and, with `--server-pid`, answers per
//!   server-CPU-second. One `write` per batch and large reads: it costs
//!   less per request than wrk, so the server saturates first.
//! * `idle`: reads the server's VmRSS, opens N WebSocket connections
//!   (handshake done), waits `--settle` seconds, reads VmRSS again and
//!   reports (after - before) / N, then holds them `--hold` more seconds.
//!   VmRSS is also read after the first N/2 (and a settle):
//!   `marginal_bytes_per_conn` is the growth over the second half per
//!   connection, without the one-time costs the first connections pay.
//!
//! Output is one line of `key=value` pairs on stdout (for scripts).
//!
//! Built to cost the least per message, so that the server is what is
//! measured: one thread, epoll (mio, edge-triggered), a hand-rolled client
//! side of RFC 6455 (the frame is masked once and re-sent as is; echoes are
//! checked byte for byte against what was sent), one `write` and usually one
//! `read` per message, no allocation in the loop. It reports its own CPU use
//! (`loadgen_cpu`, fraction of one core) next to the server's so a run where
//! the load generator saturated is visible.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

mod tls;

/// RFC 6455 §1.3's sample key and the accept value it must produce. Every
/// connection may use the same key: servers only hash it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Masking key of every frame (a benchmark needs no unpredictability).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

type Res<T> = Result<T, String>;

/// `--deflate`: handshakes offer permessage-deflate.
static OFFER_DEFLATE: AtomicBool = AtomicBool::new(false);
/// Handshakes whose answer accepted permessage-deflate.
static DEFLATE_AGREED: AtomicUsize = AtomicUsize::new(0);
/// What browsers offer (Chrome, Firefox, Safari).
const BROWSER_DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// ` deflate_agreed=N` when `--deflate` was given, else nothing.
fn deflate_report() -> String {
    if OFFER_DEFLATE.load(Ordering::Relaxed) {
        format!(" deflate_agreed={}", DEFLATE_AGREED.load(Ordering::Relaxed))
    } else {
        String::new()
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().is_some_and(|m| m.starts_with("tls-")) {
        tls::run(&args)
    } else {
        Args::parse(&args).and_then(|a| match a.mode.as_str() {
            "echo" => echo(&a),
            "broadcast" => broadcast(&a),
            "idle" => idle(&a),
            "http" => http(&a),
            m => Err(format!(
                "unknown mode {m:?} (echo, broadcast, idle, http, tls-get, tls-handshake)"
            )),
        })
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

// ----- arguments --------------------------------------------------------------

struct Args {
    mode: String,
    url: Url,
    /// `broadcast`: every second receiver connects here instead (another
    /// server sharing the topic, e.g. ringtail --cluster).
    url2: Option<Url>,
    conns: usize,
    receivers: usize,
    window: usize,
    drain: f64,
    size: usize,
    duration: f64,
    warmup: f64,
    settle: f64,
    hold: f64,
    text: bool,
    /// broadcast: the server does not send a message back to its publisher.
    no_echo: bool,
    server_pid: Option<u32>,
    /// `http`: requests written at once per connection.
    depth: usize,
}

struct Url {
    host: String,
    addr: SocketAddr,
    path: String,
}

impl Args {
    fn parse(args: &[String]) -> Res<Args> {
        let usage = "usage: loadgen echo|broadcast|idle --url ws://HOST:PORT/PATH [--conns N] \
                     [--receivers R] [--window N] [--drain S] [--size W] [--duration S] \
                     [--warmup S] [--text] [--no-echo] [--deflate] [--server-pid PID] [--settle S] \
                     [--hold S] [--url2 ws://HOST:PORT/PATH]";
        let mode = args.first().ok_or(usage)?.clone();
        let mut url = None;
        let mut a = Args {
            mode,
            url: Url {
                host: String::new(),
                addr: ([127, 0, 0, 1], 0).into(),
                path: String::new(),
            },
            url2: None,
            conns: 64,
            receivers: 1000,
            window: DEFAULT_WINDOW,
            drain: 5.0,
            size: 32,
            duration: 8.0,
            warmup: 1.0,
            settle: 2.0,
            hold: 1.0,
            text: false,
            no_echo: false,
            server_pid: None,
            depth: 1,
        };
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            if flag == "--text" {
                a.text = true;
                continue;
            }
            if flag == "--no-echo" {
                a.no_echo = true;
                continue;
            }
            if flag == "--deflate" {
                OFFER_DEFLATE.store(true, Ordering::Relaxed);
                continue;
            }
            let value = it.next().ok_or(format!("{flag} needs a value\n{usage}"))?;
            match flag.as_str() {
                "--url" => url = Some(Url::parse(value)?),
                "--url2" => a.url2 = Some(Url::parse(value)?),
                "--conns" => a.conns = num(flag, value)?,
                "--receivers" => a.receivers = num(flag, value)?,
                "--window" => a.window = num(flag, value)?,
                "--drain" => a.drain = num(flag, value)?,
                "--size" => a.size = num(flag, value)?,
                "--duration" => a.duration = num(flag, value)?,
                "--warmup" => a.warmup = num(flag, value)?,
                "--settle" => a.settle = num(flag, value)?,
                "--hold" => a.hold = num(flag, value)?,
                "--server-pid" => a.server_pid = Some(num(flag, value)?),
                "--depth" => a.depth = num(flag, value)?,
                _ => return Err(format!("unknown option {flag}\n{usage}")),
            }
        }
        a.url = url.ok_or(format!("--url is required\n{usage}"))?;
        if a.conns == 0 || a.receivers == 0 || a.window == 0 || a.depth == 0 {
            return Err("--conns, --receivers, --window and --depth must be at least 1".into());
        }
        Ok(a)
    }
}

fn num<T: std::str::FromStr>(flag: &str, value: &str) -> Res<T> {
    value
        .parse()
        .map_err(|_| format!("bad value {value:?} for {flag}"))
}

impl Url {
    fn parse(s: &str) -> Res<Url> {
        let rest = s
            .strip_prefix("ws://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or(format!("{s}: only ws:// and http:// URLs are supported"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or(format!("{host}: no address"))?;
        let path = if path.is_empty() { "/" } else { path };
        Ok(Url {
            host: host.into(),
            addr,
            path: path.into(),
        })
    }
}

// ----- connections ------------------------------------------------------------

/// Connects and performs the opening handshake (blocking, bounded by 5 s
/// timeouts). Returns the stream with nothing buffered beyond the 101.
fn connect(url: &Url) -> Res<TcpStream> {
    let timeout = Duration::from_secs(5);
    let mut s = TcpStream::connect_timeout(&url.addr, timeout)
        .map_err(|e| format!("connect {}: {e}", url.addr))?;
    let io = |e: io::Error| format!("handshake with {}: {e}", url.addr);
    s.set_nodelay(true).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let offer = if OFFER_DEFLATE.load(Ordering::Relaxed) {
        format!("Sec-WebSocket-Extensions: {BROWSER_DEFLATE_OFFER}\r\n")
    } else {
        String::new()
    };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
        url.path, url.host
    );
    s.write_all(req.as_bytes()).map_err(io)?;
    // Read byte counts exactly up to the end of the head: the server sends
    // nothing after its 101 until we do, so any extra byte is an error.
    let mut buf = [0u8; 2048];
    let mut n = 0;
    let end = loop {
        let m = s.read(&mut buf[n..]).map_err(io)?;
        if m == 0 {
            return Err(format!("{}: closed during the handshake", url.addr));
        }
        n += m;
        if let Some(i) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if n == buf.len() {
            return Err(format!("{}: handshake answer too long", url.addr));
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    if !head.starts_with("HTTP/1.1 101") || !head.contains(ACCEPT) || end != n {
        let first = head.lines().next().unwrap_or("");
        return Err(format!("{}: bad handshake answer: {first}", url.addr));
    }
    if head
        .to_ascii_lowercase()
        .contains("\r\nsec-websocket-extensions: permessage-deflate")
    {
        DEFLATE_AGREED.fetch_add(1, Ordering::Relaxed);
    }
    s.set_read_timeout(None).map_err(io)?;
    s.set_write_timeout(None).map_err(io)?;
    Ok(s)
}

/// Raises the soft limit on open descriptors to the hard limit.
fn raise_nofile() -> Res<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(format!("getrlimit: {}", io::Error::last_os_error()));
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(format!("setrlimit: {}", io::Error::last_os_error()));
        }
    }
    Ok(lim.rlim_cur)
}

// ----- /proc and rusage -------------------------------------------------------

/// A process's user + system CPU time in seconds (whole thread group).
fn proc_cpu(pid: u32) -> Res<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) start at
    // field 3 (state); utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').ok_or("bad /proc stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// Busy CPU seconds of the whole machine (all CPUs), from `/proc/stat`:
/// user + nice + system + irq + softirq + steal.
fn machine_busy() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A process's resident set size in KiB (`VmRSS`).
fn proc_rss_kib(pid: u32) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(format!("no VmRSS in /proc/{pid}/status"))
}

/// This process's user + system CPU time in seconds.
fn self_cpu() -> f64 {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

// ----- frames -----------------------------------------------------------------

/// A frame header (FIN set, no RSV bits) for `len` bytes.
fn header(opcode: u8, len: usize, masked: bool) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    let m = if masked { 0x80 } else { 0 };
    match len {
        0..=125 => h.push(m | len as u8),
        126..=0xffff => {
            h.push(m | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(m | 127);
            h.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        h.extend_from_slice(&MASK);
    }
    h
}

// ----- the counted window ---------------------------------------------------------

/// The counted window of a closed-loop mode (`echo`, `http`): it opens
/// `--warmup` seconds after [`Window::new`] and lasts `--duration`; the
/// load generator's CPU, the server's (with `--server-pid`) and the whole
/// machine's are read at both ends.
struct Window {
    server_pid: Option<u32>,
    open_at: Instant,
    end: Instant,
    /// When it opened, and the CPU readings then.
    opened: Option<(Instant, f64, f64, f64)>,
}

impl Window {
    fn new(a: &Args) -> Window {
        let open_at = Instant::now() + Duration::from_secs_f64(a.warmup);
        Window {
            server_pid: a.server_pid,
            open_at,
            end: open_at + Duration::from_secs_f64(a.duration),
            opened: None,
        }
    }

    /// Called each turn of the loop: opens the window once the warm-up is
    /// over; `false` once it has ended.
    fn tick(&mut self) -> Res<bool> {
        let now = Instant::now();
        if self.opened.is_none() && now >= self.open_at {
            let srv = match self.server_pid {
                Some(pid) => proc_cpu(pid)?,
                None => 0.0,
            };
            self.opened = Some((now, self_cpu(), srv, machine_busy()));
        }
        Ok(now < self.end)
    }

    /// Whether an event at `t` is counted.
    fn counts(&self, t: Instant) -> bool {
        self.opened.is_some() && t < self.end
    }

    /// Seconds counted, the load generator's CPU seconds in them and, with
    /// `--server-pid`, the server's CPU seconds and what neither process
    /// was charged for (other processes, steal, interrupts; well above
    /// ~0.05 of the window means the run was disturbed).
    fn finish(&self) -> Res<Counted> {
        let (start, cpu0, srv0, busy0) = self.opened.ok_or("the window never opened")?;
        let secs = start.elapsed().as_secs_f64();
        let cpu = self_cpu() - cpu0;
        let busy = machine_busy() - busy0;
        let server = match self.server_pid {
            Some(pid) => {
                let srv = proc_cpu(pid)? - srv0;
                Some((srv, (busy - cpu - srv).max(0.0)))
            }
            None => None,
        };
        Ok(Counted { secs, cpu, server })
    }
}

/// What [`Window::finish`] read.
struct Counted {
    secs: f64,
    cpu: f64,
    /// The server's CPU seconds and the unaccounted rest.
    server: Option<(f64, f64)>,
}

/// Sorts round trips (ns) and returns the p-quantile in µs.
fn percentiles_us(rtts: &mut [u32]) -> impl Fn(f64) -> f64 + '_ {
    rtts.sort_unstable();
    let rtts = &*rtts;
    move |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)] as f64 / 1e3
}

// ----- echo -------------------------------------------------------------------

struct Conn {
    stream: mio::net::TcpStream,
    /// Bytes of the outgoing frame written so far.
    sent: usize,
    /// Bytes of the expected echo frame received so far.
    recvd: usize,
    start: Instant,
}

/// Writes what is left of `buf` after the `sent` bytes already written;
/// stops at `WouldBlock` (a writable event resumes it). The echo and http
/// modes' connections both go through it.
fn write_some(stream: &mut impl Write, sent: &mut usize, buf: &[u8]) -> io::Result<()> {
    while *sent < buf.len() {
        match stream.write(&buf[*sent..]) {
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn echo(a: &Args) -> Res<String> {
    raise_nofile()?;
    let opcode = if a.text { 0x1 } else { 0x2 };
    // Printable ASCII, so it is valid UTF-8 for `--text` too.
    let payload: Vec<u8> = (0..a.size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut frame = header(opcode, a.size, true);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    let mut expect = header(opcode, a.size, false);
    expect.extend_from_slice(&payload);

    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut conns = Vec::with_capacity(a.conns);
    for i in 0..a.conns {
        let s = connect(&a.url)?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        conns.push(Conn {
            stream,
            sent: 0,
            recvd: 0,
            start: Instant::now(),
        });
    }

    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut rtts: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut window = Window::new(a);
    for c in &mut conns {
        c.start = Instant::now();
        write_some(&mut c.stream, &mut c.sent, &frame).map_err(|e| format!("write: {e}"))?;
    }
    loop {
        if !window.tick()? {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.sent < frame.len() {
                write_some(&mut c.stream, &mut c.sent, &frame)
                    .map_err(|e| format!("write: {e}"))?;
            }
            loop {
                let want = (expect.len() - c.recvd).min(buf.len());
                let n = match c.stream.read(&mut buf[..want]) {
                    Ok(0) => return Err("the server closed a connection".into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read: {e}")),
                };
                if buf[..n] != expect[c.recvd..c.recvd + n] {
                    return Err("the echo differs from the message sent".into());
                }
                c.recvd += n;
                if c.recvd == expect.len() {
                    let t = Instant::now();
                    if window.counts(t) {
                        rtts.push((t - c.start).as_nanos().min(u32::MAX as u128) as u32);
                    }
                    c.start = t;
                    c.sent = 0;
                    c.recvd = 0;
                    write_some(&mut c.stream, &mut c.sent, &frame)
                        .map_err(|e| format!("write: {e}"))?;
                    break;
                }
                // A short read drained the socket; more bytes bring a new
                // edge (epoll reports every arrival), so no EAGAIN read.
                if n < want {
                    break;
                }
            }
        }
    }
    let Counted { secs, cpu, server } = window.finish()?;
    if rtts.is_empty() {
        return Err("no message completed in the measured window".into());
    }
    let msgs = rtts.len();
    let pct = percentiles_us(&mut rtts);
    let mut line = format!(
        "mode=echo conns={} size={} secs={secs:.2} msgs={msgs} msgs_per_s={:.0} \
         p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} loadgen_cpu={:.2}",
        a.conns,
        a.size,
        msgs as f64 / secs,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        cpu / secs,
    );
    if let Some((srv, other)) = server {
        line += &format!(
            " server_cpu={:.2} server_cpu_s={srv:.2} msgs_per_server_cpu_s={:.0} other_cpu={:.2}",
            srv / secs,
            if srv > 0.0 { msgs as f64 / srv } else { 0.0 },
            other / secs,
        );
    }
    line += &deflate_report();
    Ok(line)
}

// ----- http -------------------------------------------------------------------

struct HttpConn {
    stream: mio::net::TcpStream,
    /// Bytes of the batch written so far.
    sent: usize,
    /// Answers of the batch still to come.
    owed: usize,
    /// Received bytes not yet parsed.
    inbuf: Vec<u8>,
    start: Instant,
}

/// Parses complete answers at the front of `c.inbuf`: each must be a 200
/// with a `Content-Length`. Returns how many were taken.
fn take_answers(c: &mut HttpConn) -> Res<usize> {
    let mut at = 0;
    let mut n = 0;
    while n < c.owed {
        let rest = &c.inbuf[at..];
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = &rest[..end];
        if !head.starts_with(b"HTTP/1.1 200 ") {
            let first = String::from_utf8_lossy(&head[..head.len().min(40)]).into_owned();
            return Err(format!("answer not 200: {first}"));
        }
        let len = head
            .split(|&b| b == b'\n')
            .find_map(|line| {
                let line = std::str::from_utf8(line).ok()?.trim_end();
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .ok_or("an answer without Content-Length")?;
        if rest.len() < end + 4 + len {
            break;
        }
        at += end + 4 + len;
        n += 1;
    }
    c.inbuf.drain(..at);
    Ok(n)
}

fn http(a: &Args) -> Res<String> {
    raise_nofile()?;
    let one = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        a.url.path, a.url.host
    );
    let batch = one.repeat(a.depth).into_bytes();
    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut conns = Vec::with_capacity(a.conns);
    for i in 0..a.conns {
        let s = TcpStream::connect_timeout(&a.url.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect {}: {e}", a.url.addr))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        conns.push(HttpConn {
            stream,
            sent: 0,
            owed: a.depth,
            inbuf: Vec::with_capacity(64 * 1024),
            start: Instant::now(),
        });
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut rtts: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut answers = 0u64;
    let mut window = Window::new(a);
    for c in &mut conns {
        write_some(&mut c.stream, &mut c.sent, &batch).map_err(|e| format!("write: {e}"))?;
    }
    loop {
        if !window.tick()? {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.sent < batch.len() {
                write_some(&mut c.stream, &mut c.sent, &batch)
                    .map_err(|e| format!("write: {e}"))?;
            }
            loop {
                let n = match c.stream.read(&mut buf) {
                    Ok(0) => return Err("the server closed a connection".into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read: {e}")),
                };
                c.inbuf.extend_from_slice(&buf[..n]);
                let got = take_answers(c)?;
                c.owed -= got;
                if window.counts(Instant::now()) {
                    answers += got as u64;
                }
                if c.owed == 0 {
                    if !c.inbuf.is_empty() {
                        return Err("more answers than requests".into());
                    }
                    let t = Instant::now();
                    if window.counts(t) {
                        rtts.push((t - c.start).as_nanos().min(u32::MAX as u128) as u32);
                    }
                    c.start = t;
                    c.sent = 0;
                    c.owed = a.depth;
                    write_some(&mut c.stream, &mut c.sent, &batch)
                        .map_err(|e| format!("write: {e}"))?;
                    break;
                }
                if n < buf.len() {
                    break;
                }
            }
        }
    }
    let Counted { secs, cpu, server } = window.finish()?;
    if rtts.is_empty() {
        return Err("no batch completed in the measured window".into());
    }
    let pct = percentiles_us(&mut rtts);
    let mut line = format!(
        "mode=http conns={} depth={} secs={secs:.2} answers={answers} answers_per_s={:.0} \
         p50_us={:.1} p99_us={:.1} max_us={:.1} loadgen_cpu={:.2}",
        a.conns,
        a.depth,
        answers as f64 / secs,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        cpu / secs,
    );
    if let Some((srv, other)) = server {
        line += &format!(
            " server_cpu={:.2} server_cpu_s={srv:.2} answers_per_server_cpu_s={:.0} other_cpu={:.2}",
            srv / secs,
            if srv > 0.0 { answers as f64 / srv } else { 0.0 },
            other / secs,
        );
    }
    Ok(line)
}

// ----- broadcast --------------------------------------------------------------

/// Messages the publisher keeps in flight unless `--window` says otherwise.
/// At 1,000 receivers and 32 B, smaller windows leave the load generator
/// near a full core (0.76 at 16, 0.9 at 1: one read per delivery) while
/// each server sends few frames per write; at 64 every server was at its
/// full core with the load generator at about half of one, and the queue
/// per connection stays at most 64 frames (2 KiB). bench/README.md has
/// the measurements.
const DEFAULT_WINDOW: usize = 64;

/// Bytes of a broadcast payload that carry data: the sequence number and
/// the send time (nanoseconds since the start of the run), both little
/// endian; the rest is zeros.
const STAMP: usize = 16;
/// The stamp of a `--text` broadcast message: both numbers in hex.
const TEXT_STAMP: usize = 32;

/// Latency histogram: exact below 256 ns, then 128 buckets per power of two
/// (under 0.8 % relative error). Recording is an index computation and an
/// increment: nothing is allocated per sample.
struct Hist {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Hist {
    const SUB: u32 = 7;

    fn new() -> Hist {
        Hist {
            counts: vec![0; (2 << Self::SUB) + (64 - Self::SUB as usize - 1) * (1 << Self::SUB)],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        let base = 2u64 << Self::SUB;
        if v < base {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // ≥ SUB + 1
        let shift = e - Self::SUB;
        let m = v >> shift; // in [2^SUB, 2^(SUB+1))
        (base + u64::from(e - Self::SUB - 1) * (1 << Self::SUB) + (m - (1 << Self::SUB))) as usize
    }

    /// The middle of bucket `i`'s range.
    fn value(i: usize) -> f64 {
        let base = 2usize << Self::SUB;
        if i < base {
            return i as f64;
        }
        let k = i - base;
        let shift = (k >> Self::SUB) as u32 + 1;
        let m = (k & ((1 << Self::SUB) - 1)) + (1 << Self::SUB);
        ((m as f64) + 0.5) * (1u64 << shift) as f64
    }

    fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// The value at quantile `p` (0-based nearest rank, as `echo` reports).
    fn quantile(&self, p: f64) -> f64 {
        if p >= 1.0 {
            return self.max as f64;
        }
        let rank = ((self.total as f64 * p) as u64).min(self.total.saturating_sub(1));
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::value(i).min(self.max as f64);
            }
        }
        self.max as f64
    }
}

/// One subscribed connection of the broadcast test (every receiver, and the
/// publisher, which gets its own messages too).
struct Sub {
    stream: mio::net::TcpStream,
    /// Sequence number of the next message this connection must get.
    next: u64,
    /// The start of a frame that the last read cut off.
    carry: Box<[u8]>,
    carry_len: usize,
}

/// Counters shared by every connection's receive path.
struct Tally {
    /// Deliveries per in-flight message, indexed by sequence % window.
    got: Vec<u32>,
    /// Messages handed to the publisher's socket so far.
    sent: u64,
    /// The oldest message not yet delivered everywhere.
    done: u64,
    /// Sequence numbers some connection skipped (the server lost them).
    missing: u64,
    /// In the measured window: deliveries and completed messages.
    deliveries: u64,
    completed: u64,
    hist: Hist,
}

impl Tally {
    /// Connection `i` got message `seq`, sent at `stamp` ns, at `now` ns.
    fn deliver(
        &mut self,
        sub: &mut Sub,
        i: usize,
        seq: u64,
        stamp: u64,
        now: u64,
        measuring: bool,
    ) -> Res<()> {
        if seq < sub.next || seq >= self.sent {
            return Err(format!(
                "connection {i} got message {seq} after {} ({} sent): out of order or unknown",
                sub.next, self.sent
            ));
        }
        // A gap: the server lost messages for this connection. Count them
        // and credit their slots, so that the window moves on.
        while sub.next < seq {
            let w = self.got.len() as u64;
            self.got[(sub.next % w) as usize] += 1;
            self.missing += 1;
            sub.next += 1;
        }
        let w = self.got.len() as u64;
        self.got[(seq % w) as usize] += 1;
        sub.next = seq + 1;
        if measuring {
            self.deliveries += 1;
            self.hist.record(now.saturating_sub(stamp));
        }
        Ok(())
    }

    /// Retires the messages every subscriber now has (they complete in
    /// order: each connection gets them in order).
    fn retire(&mut self, subscribers: u32, measuring: bool) {
        let w = self.got.len() as u64;
        while self.done < self.sent && self.got[(self.done % w) as usize] == subscribers {
            self.got[(self.done % w) as usize] = 0;
            self.done += 1;
            if measuring {
                self.completed += 1;
            }
        }
    }
}

/// Reads whatever connection `i` has and handles every complete frame:
/// data frames are deliveries, a Ping is answered, anything else is an
/// error. One clock read per `read` (every frame in it arrived by then).
#[allow(clippy::too_many_arguments)]
fn broadcast_read(
    sub: &mut Sub,
    i: usize,
    buf: &mut [u8],
    tally: &mut Tally,
    size: usize,
    t0: Instant,
    measuring: bool,
    zeros: &[u8],
) -> Res<()> {
    loop {
        let carried = sub.carry_len;
        buf[..carried].copy_from_slice(&sub.carry[..carried]);
        let want = buf.len() - carried;
        let n = match sub.stream.read(&mut buf[carried..]) {
            Ok(0) => return Err(format!("the server closed connection {i}")),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        let now = t0.elapsed().as_nanos() as u64;
        let data = &buf[..carried + n];
        let mut at = 0;
        while data.len() - at >= 2 {
            let (b0, b1) = (data[at], data[at + 1]);
            if b1 & 0x80 != 0 {
                return Err(format!("connection {i}: masked frame from the server"));
            }
            let (hlen, len) = match b1 & 0x7f {
                126 if data.len() - at >= 4 => {
                    (4, u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize)
                }
                127 if data.len() - at >= 10 => {
                    let mut l = [0u8; 8];
                    l.copy_from_slice(&data[at + 2..at + 10]);
                    (10, u64::from_be_bytes(l) as usize)
                }
                126 | 127 => break,
                l => (2, l as usize),
            };
            if len > size.max(125) {
                return Err(format!("connection {i}: {len}-byte frame, expected {size}"));
            }
            if data.len() - at < hlen + len {
                break;
            }
            let payload = &data[at + hlen..at + hlen + len];
            match b0 {
                0x82 if len == size => {
                    let mut v = [0u8; 8];
                    v.copy_from_slice(&payload[..8]);
                    let seq = u64::from_le_bytes(v);
                    v.copy_from_slice(&payload[8..STAMP]);
                    let stamp = u64::from_le_bytes(v);
                    if payload[STAMP..] != zeros[..size - STAMP] {
                        return Err(format!("connection {i}: message {seq} corrupted"));
                    }
                    tally.deliver(sub, i, seq, stamp, now, measuring)?;
                }
                // `--text`: the stamp as 32 hex digits, then zeros.
                0x81 if len == size => {
                    let hex = |b: &[u8]| {
                        std::str::from_utf8(b)
                            .ok()
                            .and_then(|s| u64::from_str_radix(s, 16).ok())
                    };
                    let (Some(seq), Some(stamp)) =
                        (hex(&payload[..16]), hex(&payload[16..TEXT_STAMP]))
                    else {
                        return Err(format!("connection {i}: bad text stamp"));
                    };
                    if payload[TEXT_STAMP..] != zeros[..size - TEXT_STAMP] {
                        return Err(format!("connection {i}: message {seq} corrupted"));
                    }
                    tally.deliver(sub, i, seq, stamp, now, measuring)?;
                }
                0x89 => {
                    // Ping: answer with a masked Pong of the same payload.
                    let mut pong = [0u8; 2 + 4 + 125];
                    pong[0] = 0x8a;
                    pong[1] = 0x80 | len as u8;
                    pong[2..6].copy_from_slice(&MASK);
                    for (k, b) in payload.iter().enumerate() {
                        pong[6 + k] = b ^ MASK[k % 4];
                    }
                    let frame = &pong[..6 + len];
                    if sub.stream.write(frame).map_err(|e| format!("write: {e}"))? != frame.len() {
                        return Err(format!("connection {i}: pong cut short"));
                    }
                }
                0x88 => {
                    let code = if len >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        1005
                    };
                    return Err(format!(
                        "the server closed connection {i} (close code {code})"
                    ));
                }
                _ => {
                    return Err(format!(
                        "connection {i}: unexpected frame (first byte {b0:#04x}, {len} bytes)"
                    ))
                }
            }
            at += hlen + len;
        }
        let rest = carried + n - at;
        sub.carry[..rest].copy_from_slice(&buf[at..carried + n]);
        sub.carry_len = rest;
        // A short read drained the socket; more bytes bring a new edge.
        if n < want {
            return Ok(());
        }
    }
}

fn broadcast(a: &Args) -> Res<String> {
    if a.size < if a.text { TEXT_STAMP } else { STAMP } {
        return Err(format!(
            "--size must be at least {STAMP} (sequence number and time)"
        ));
    }
    let limit = raise_nofile()?;
    if (a.receivers as u64) + 64 > limit {
        return Err(format!(
            "{} receivers need more descriptors than the limit {limit} (ulimit -Hn)",
            a.receivers
        ));
    }
    let subscribers = a.receivers + 1;
    // The last connection publishes; each message goes to `recipients`
    // connections (its publisher too unless --no-echo).
    let publisher = a.receivers;
    let recipients = if a.no_echo { a.receivers } else { subscribers } as u32;
    // The frame as sent, its stamp zero: re-stamped (and re-masked) per message.
    let mut template = header(if a.text { 0x1 } else { 0x2 }, a.size, true);
    let head = template.len();
    template.extend((0..a.size).map(|i| MASK[i % 4]));
    let frame_len = template.len();
    let zeros = vec![0u8; a.size];

    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut subs = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let url = match &a.url2 {
            Some(u2) if i % 2 == 1 && i != publisher => u2,
            _ => &a.url,
        };
        let s = connect(url)?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = mio::net::TcpStream::from_std(s);
        let interest = if i == publisher {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry()
            .register(&mut stream, Token(i), interest)
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        subs.push(Sub {
            stream,
            next: 0,
            // A cut frame is at most a whole data frame, or a control frame.
            carry: vec![0u8; (10 + a.size).max(2 + 125)].into_boxed_slice(),
            carry_len: 0,
        });
    }

    let mut tally = Tally {
        got: vec![0; a.window],
        sent: 0,
        done: 0,
        missing: 0,
        deliveries: 0,
        completed: 0,
        hist: Hist::new(),
    };
    let mut out: Vec<u8> = Vec::with_capacity(a.window * frame_len);
    let mut out_pos = 0;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024 + 10 + a.size];
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);
    let drain_until = end + Duration::from_secs_f64(a.drain);
    let mut measuring = false;
    let (mut cpu0, mut srv0, mut busy0) = (0.0, 0.0, 0.0);
    let (mut cpu1, mut srv1, mut busy1) = (0.0, 0.0, 0.0);
    let mut window_start = measure_from;
    let mut window_end = None;
    loop {
        let now = Instant::now();
        if !measuring && window_end.is_none() && now >= measure_from {
            measuring = true;
            window_start = now;
            cpu0 = self_cpu();
            busy0 = machine_busy();
            if let Some(pid) = a.server_pid {
                srv0 = proc_cpu(pid)?;
            }
        }
        if measuring && now >= end {
            // The window closes; no more messages, the ones in flight drain.
            measuring = false;
            window_end = Some(now);
            cpu1 = self_cpu();
            busy1 = machine_busy();
            if let Some(pid) = a.server_pid {
                srv1 = proc_cpu(pid)?;
            }
        }
        if window_end.is_some() && (tally.done == tally.sent || now >= drain_until) {
            break;
        }
        // Publish while the window has room (and the last batch is out).
        if window_end.is_none() && out_pos == out.len() {
            out.clear();
            out_pos = 0;
            let stamp = t0.elapsed().as_nanos() as u64;
            while tally.sent - tally.done < a.window as u64 {
                let f = out.len();
                out.extend_from_slice(&template);
                let stamped = if a.text { TEXT_STAMP } else { STAMP };
                let p = &mut out[f + head..f + head + stamped];
                if a.text {
                    p.copy_from_slice(format!("{:016x}{stamp:016x}", tally.sent).as_bytes());
                } else {
                    p[..8].copy_from_slice(&tally.sent.to_le_bytes());
                    p[8..].copy_from_slice(&stamp.to_le_bytes());
                }
                for (k, b) in p.iter_mut().enumerate() {
                    *b ^= MASK[k % 4];
                }
                tally.sent += 1;
            }
        }
        while out_pos < out.len() {
            match subs[publisher].stream.write(&out[out_pos..]) {
                Ok(n) => out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                broadcast_read(
                    &mut subs[i],
                    i,
                    &mut buf,
                    &mut tally,
                    a.size,
                    t0,
                    measuring,
                    &zeros,
                )?;
            }
        }
        tally.retire(recipients, measuring);
    }
    let window_end = window_end.unwrap_or_else(Instant::now);
    let secs = (window_end - window_start).as_secs_f64();
    // Whatever never came: gaps found on the way, plus what each connection
    // still lacks after the drain.
    let missing = tally.missing
        + subs
            .iter()
            .enumerate()
            .filter(|&(i, _)| !(a.no_echo && i == publisher))
            .map(|(_, s)| tally.sent - s.next)
            .sum::<u64>();
    if tally.hist.total == 0 {
        return Err("no delivery in the measured window".into());
    }
    let h = &tally.hist;
    let mut line = format!(
        "mode=broadcast receivers={} subscribers={subscribers} size={} window={} secs={secs:.2} \
         msgs={} deliveries={} msgs_per_s={:.0} deliveries_per_s={:.0} p50_us={:.1} p99_us={:.1} \
         p999_us={:.1} max_us={:.1} sent={} missing={missing} loadgen_cpu={:.2}",
        a.receivers,
        a.size,
        a.window,
        tally.completed,
        tally.deliveries,
        tally.completed as f64 / secs,
        tally.deliveries as f64 / secs,
        h.quantile(0.50) / 1e3,
        h.quantile(0.99) / 1e3,
        h.quantile(0.999) / 1e3,
        h.quantile(1.0) / 1e3,
        tally.sent,
        (cpu1 - cpu0) / secs,
    );
    if a.server_pid.is_some() {
        let (cpu, srv) = (cpu1 - cpu0, srv1 - srv0);
        let other = (busy1 - busy0 - cpu - srv).max(0.0);
        line += &format!(
            " server_cpu={:.2} server_cpu_s={srv:.2} deliveries_per_server_cpu_s={:.0} other_cpu={:.2}",
            srv / secs,
            if srv > 0.0 { tally.deliveries as f64 / srv } else { 0.0 },
            other / secs,
        );
    }
    line += &deflate_report();
    Ok(line)
}

// ----- idle -------------------------------------------------------------------

fn idle(a: &Args) -> Res<String> {
    let pid = a.server_pid.ok_or("idle needs --server-pid")?;
    let limit = raise_nofile()?;
    if (a.conns as u64) + 64 > limit {
        return Err(format!(
            "{} connections need more descriptors than the limit {limit} (ulimit -Hn)",
            a.conns
        ));
    }
    let before = proc_rss_kib(pid)?;
    let t0 = Instant::now();
    let settle = Duration::from_secs_f64(a.settle);
    let half = a.conns / 2;
    let mut held = Vec::with_capacity(a.conns);
    for _ in 0..half {
        held.push(connect(&a.url)?);
    }
    let connect_half = t0.elapsed();
    std::thread::sleep(settle);
    let mid = proc_rss_kib(pid)?;
    let t1 = Instant::now();
    for _ in half..a.conns {
        held.push(connect(&a.url)?);
    }
    let connect_secs = (connect_half + t1.elapsed()).as_secs_f64();
    std::thread::sleep(settle);
    let after = proc_rss_kib(pid)?;
    std::thread::sleep(Duration::from_secs_f64(a.hold));
    drop(held);
    let per_conn = (after as f64 - before as f64) * 1024.0 / a.conns as f64;
    // The slope over the second half leaves out one-time costs that the
    // first connections pay (buffer pools touched, tables grown).
    let marginal = (after as f64 - mid as f64) * 1024.0 / (a.conns - half).max(1) as f64;
    Ok(format!(
        "mode=idle conns={} connect_secs={connect_secs:.2} rss_before_kib={before} \
         rss_mid_kib={mid} rss_after_kib={after} bytes_per_conn={per_conn:.0} \
         marginal_bytes_per_conn={marginal:.0}{}",
        a.conns,
        deflate_report()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_buckets_are_ordered_and_close() {
        let mut last = 0;
        for v in (0..1_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let i = Hist::index(v);
            assert!(i >= last, "index goes down at {v}");
            last = i;
            let mid = Hist::value(i);
            assert!(
                (mid - v as f64).abs() <= v as f64 / 128.0 + 0.5,
                "{v} -> {mid}"
            );
        }
        assert!(Hist::index(u64::MAX) < Hist::new().counts.len());
    }

    #[test]
    fn hist_quantiles() {
        let mut h = Hist::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let rel = |a: f64, b: f64| (a - b).abs() / b;
        assert!(rel(h.quantile(0.5), 501_000.0) < 0.01);
        assert!(rel(h.quantile(0.99), 991_000.0) < 0.01);
        assert_eq!(h.quantile(1.0), 1_000_000.0);
    }

    fn sub() -> Sub {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        Sub {
            stream: mio::net::TcpStream::from_std(s),
            next: 0,
            carry: vec![0; 16].into_boxed_slice(),
            carry_len: 0,
        }
    }

    #[test]
    fn tally_counts_gaps_and_retires_in_order() {
        let mut t = Tally {
            got: vec![0; 4],
            sent: 4,
            done: 0,
            missing: 0,
            deliveries: 0,
            completed: 0,
            hist: Hist::new(),
        };
        let (mut a, mut b) = (sub(), sub());
        for seq in 0..4 {
            t.deliver(&mut a, 0, seq, 0, 10, true).unwrap();
        }
        // b misses 1 and 2: they count as missing, and the window moves on.
        t.deliver(&mut b, 1, 0, 0, 10, true).unwrap();
        t.deliver(&mut b, 1, 3, 0, 10, true).unwrap();
        assert_eq!(t.missing, 2);
        t.retire(2, true);
        assert_eq!((t.done, t.completed, t.deliveries), (4, 4, 6));
        assert!(t.got.iter().all(|&g| g == 0));
        // Out of order and never-sent messages are errors.
        assert!(t.deliver(&mut b, 1, 3, 0, 10, true).is_err());
        assert!(t.deliver(&mut b, 1, 9, 0, 10, true).is_err());
    }
}
