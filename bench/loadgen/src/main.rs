//! WebSocket load generator for ringtail's benchmark suite.
//!
//! ```text
//! loadgen echo --url ws://127.0.0.1:9001/ws/echo --conns 64 --size 32 --duration 8
//!              [--warmup 1] [--text] [--server-pid PID]
//! loadgen idle --url ws://127.0.0.1:9001/ws/echo --conns 10000 --server-pid PID
//!              [--settle 2] [--hold 1]
//! ```
//!
//! * `echo`: closed loop. Each connection sends one W-byte message, waits
//!   for its echo, and sends the next. After `--warmup` seconds it counts
//!   for `--duration` seconds: messages/s and the round-trip distribution.
//!   With `--server-pid` it also reports the server's CPU time in that
//!   window (from `/proc/PID/stat`) and messages per server-CPU-second.
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
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

/// RFC 6455 §1.3's sample key and the accept value it must produce. Every
/// connection may use the same key: servers only hash it.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Masking key of every frame (a benchmark needs no unpredictability).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = Args::parse(&args).and_then(|a| match a.mode.as_str() {
        "echo" => echo(&a),
        "idle" => idle(&a),
        m => Err(format!("unknown mode {m:?} (echo, idle)")),
    });
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
    conns: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    settle: f64,
    hold: f64,
    text: bool,
    server_pid: Option<u32>,
}

struct Url {
    host: String,
    addr: SocketAddr,
    path: String,
}

impl Args {
    fn parse(args: &[String]) -> Res<Args> {
        let usage = "usage: loadgen echo|idle --url ws://HOST:PORT/PATH [--conns N] [--size W] \
                     [--duration S] [--warmup S] [--text] [--server-pid PID] [--settle S] [--hold S]";
        let mode = args.first().ok_or(usage)?.clone();
        let mut url = None;
        let mut a = Args {
            mode,
            url: Url {
                host: String::new(),
                addr: ([127, 0, 0, 1], 0).into(),
                path: String::new(),
            },
            conns: 64,
            size: 32,
            duration: 8.0,
            warmup: 1.0,
            settle: 2.0,
            hold: 1.0,
            text: false,
            server_pid: None,
        };
        let mut it = args[1..].iter();
        while let Some(flag) = it.next() {
            if flag == "--text" {
                a.text = true;
                continue;
            }
            let value = it.next().ok_or(format!("{flag} needs a value\n{usage}"))?;
            match flag.as_str() {
                "--url" => url = Some(Url::parse(value)?),
                "--conns" => a.conns = num(flag, value)?,
                "--size" => a.size = num(flag, value)?,
                "--duration" => a.duration = num(flag, value)?,
                "--warmup" => a.warmup = num(flag, value)?,
                "--settle" => a.settle = num(flag, value)?,
                "--hold" => a.hold = num(flag, value)?,
                "--server-pid" => a.server_pid = Some(num(flag, value)?),
                _ => return Err(format!("unknown option {flag}\n{usage}")),
            }
        }
        a.url = url.ok_or(format!("--url is required\n{usage}"))?;
        if a.conns == 0 {
            return Err("--conns must be at least 1".into());
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
            .ok_or(format!("{s}: only ws:// URLs are supported"))?;
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
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
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

// ----- echo -------------------------------------------------------------------

struct Conn {
    stream: mio::net::TcpStream,
    /// Bytes of the outgoing frame written so far.
    sent: usize,
    /// Bytes of the expected echo frame received so far.
    recvd: usize,
    start: Instant,
}

/// Writes what is left of `frame`; stops at `WouldBlock` (a writable event
/// resumes it).
fn write_some(c: &mut Conn, frame: &[u8]) -> io::Result<()> {
    while c.sent < frame.len() {
        match c.stream.write(&frame[c.sent..]) {
            Ok(n) => c.sent += n,
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
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);
    let mut measuring = false;
    let (mut cpu0, mut srv0, mut busy0) = (0.0, 0.0, 0.0);
    let mut window_start = measure_from;
    for c in &mut conns {
        c.start = Instant::now();
        write_some(c, &frame).map_err(|e| format!("write: {e}"))?;
    }
    loop {
        let now = Instant::now();
        if !measuring && now >= measure_from {
            measuring = true;
            window_start = now;
            cpu0 = self_cpu();
            busy0 = machine_busy();
            if let Some(pid) = a.server_pid {
                srv0 = proc_cpu(pid)?;
            }
        }
        if now >= end {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .map_err(|e| format!("epoll_wait: {e}"))?;
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.sent < frame.len() {
                write_some(c, &frame).map_err(|e| format!("write: {e}"))?;
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
                    if measuring && t < end {
                        rtts.push((t - c.start).as_nanos().min(u32::MAX as u128) as u32);
                    }
                    c.start = t;
                    c.sent = 0;
                    c.recvd = 0;
                    write_some(c, &frame).map_err(|e| format!("write: {e}"))?;
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
    let secs = window_start.elapsed().as_secs_f64();
    let cpu = self_cpu() - cpu0;
    let busy = machine_busy() - busy0;
    if rtts.is_empty() {
        return Err("no message completed in the measured window".into());
    }
    rtts.sort_unstable();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)] as f64 / 1e3;
    let msgs = rtts.len();
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
    if let Some(pid) = a.server_pid {
        let srv = proc_cpu(pid)? - srv0;
        // What neither process was charged for: other processes, steal,
        // interrupt time. Well above ~0.05 means the run was disturbed.
        let other = (busy - cpu - srv).max(0.0);
        line += &format!(
            " server_cpu={:.2} server_cpu_s={srv:.2} msgs_per_server_cpu_s={:.0} other_cpu={:.2}",
            srv / secs,
            if srv > 0.0 { msgs as f64 / srv } else { 0.0 },
            other / secs,
        );
    }
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
         marginal_bytes_per_conn={marginal:.0}",
        a.conns
    ))
}
