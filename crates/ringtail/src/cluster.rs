//! Topics shared across ringtail processes through Redis pub/sub
//! (`ringtail serve --cluster redis://HOST:PORT[/DB]`).
//!
//! Each process keeps two connections to Redis, each on a thread of its
//! own — never on an event loop: a *subscriber*, subscribed to
//! `ringtail:TOPIC` for every topic at least one local client is in (and
//! to the presence channel), and a *publisher*. A loop that publishes puts
//! the message in the publisher's bounded queue (`try_send`: it never
//! waits); the publisher writes `PUBLISH` commands in batches, in queue
//! order. A message that arrives from Redis goes into every loop's hub
//! inbox, and each loop sends it to its subscribers as one shared frame,
//! exactly like a message published on another loop of the same process.
//!
//! Every message carries its process's instance id; a process skips its
//! own (its clients had it from the local publish). Messages from one
//! process arrive in order at every process (one queue, one connection,
//! and Redis keeps a connection's order); messages from different
//! processes interleave in the order Redis received them.
//!
//! **Failure.** Redis down at start, or lost later: the process serves its
//! local clients, `ringtail_cluster_up` is 0, and both connections are
//! retried with backoff (100 ms doubling to 5 s); on reconnect every
//! topic is subscribed again. A message published while the publisher has
//! no connection, or finds its queue full (`QUEUE_MESSAGES` messages or
//! `QUEUE_BYTES` bytes), is dropped and counted
//! (`ringtail_cluster_dropped_total`) — never queued without bound. A
//! Redis that accepts but stops answering: the publisher's read times out
//! (5 s), the subscriber's `PING` goes unanswered (5 s), and the link is
//! remade; loops never wait for either.
//!
//! **Upgrades.** A new process (`ringtail ctl upgrade`) goes on with the
//! old one's instance id, so other processes do not count its chat
//! members twice, and what the old process published is still skipped as
//! its own should it come back from Redis late. The new process subscribes
//! to its topics as it imports its clients; messages other processes
//! publish between the old process's export and those subscriptions are
//! not delivered (milliseconds).
//!
//! **Presence.** Each process publishes its chat member count on
//! `ringtail-presence` when it changes and every second; the demo chat's
//! online count is the sum over the processes heard from in the last
//! 5 seconds.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::resp::{self, Push, Value};

/// Messages waiting for the publisher at most.
pub const QUEUE_MESSAGES: usize = 8192;
/// Bytes waiting for the publisher at most.
pub const QUEUE_BYTES: usize = 64 << 20;
/// Redis channel prefix of a topic.
const PREFIX: &str = "ringtail:";
/// The presence channel.
const PRESENCE: &str = "ringtail-presence";
/// A process not heard from for this long no longer counts.
const PRESENCE_TTL: Duration = Duration::from_secs(5);
/// Bound on every read that waits for an answer, and on a silent link.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// `redis://HOST:PORT[/DB]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub addr: String,
    pub db: u32,
}

impl Url {
    /// Parses `redis://HOST[:PORT][/DB]` (port 6379 by default).
    pub fn parse(s: &str) -> Result<Url, String> {
        let rest = s
            .strip_prefix("redis://")
            .ok_or_else(|| format!("--cluster {s:?}: expected redis://HOST:PORT[/DB]"))?;
        let (hostport, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (
                h,
                d.parse::<u32>()
                    .map_err(|_| format!("--cluster {s:?}: database {d:?} is not a number"))?,
            ),
            None => (rest, 0),
        };
        if hostport.is_empty() || hostport.contains('@') {
            return Err(format!(
                "--cluster {s:?}: expected redis://HOST:PORT[/DB] (no credentials)"
            ));
        }
        let addr = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        };
        Ok(Url { addr, db })
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub publisher_up: AtomicBool,
    pub subscriber_up: AtomicBool,
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub reconnects: AtomicU64,
}

/// How an arriving message reaches the loops: `(topic, payload)`.
pub type Deliver = Box<dyn Fn(&str, &[u8]) + Send + Sync>;

/// The process's bridge to Redis.
pub struct Cluster {
    url: Url,
    id: [u8; 8],
    queue: mpsc::SyncSender<(String, Vec<u8>)>,
    queued_bytes: Arc<AtomicUsize>,
    /// Local clients per topic; Redis is subscribed to those above zero.
    topics: Mutex<HashMap<String, usize>>,
    /// Subscribe (`true`) / unsubscribe commands for the subscriber.
    commands: Mutex<Vec<(String, bool)>>,
    wake: UnixStream,
    pub stats: Arc<Stats>,
    /// Chat members per process (by instance id) and when last heard.
    presence: Mutex<HashMap<[u8; 8], (i64, Instant)>>,
    local_members: AtomicU64,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn instance_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut id))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        id = (t ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    id
}

impl Cluster {
    /// Starts the bridge's two threads. `deliver` hands an arriving message
    /// to the loops; `on_presence` is called when the cluster-wide chat
    /// count may have changed.
    pub fn start(
        url: Url,
        id: Option<[u8; 8]>,
        deliver: Deliver,
        on_presence: Box<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Arc<Cluster>> {
        let (tx, rx) = mpsc::sync_channel(QUEUE_MESSAGES);
        let (wake, wake_rx) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let cluster = Arc::new(Cluster {
            url,
            id: id.unwrap_or_else(instance_id),
            queue: tx,
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            topics: Mutex::new(HashMap::new()),
            commands: Mutex::new(Vec::new()),
            wake,
            stats: Arc::new(Stats::default()),
            presence: Mutex::new(HashMap::new()),
            local_members: AtomicU64::new(0),
        });
        {
            let c = cluster.clone();
            std::thread::Builder::new()
                .name("ringtail-cluster-pub".into())
                .spawn(move || c.publisher(rx))?;
        }
        {
            let c = cluster.clone();
            std::thread::Builder::new()
                .name("ringtail-cluster-sub".into())
                .spawn(move || c.subscriber(wake_rx, deliver, on_presence))?;
        }
        Ok(cluster)
    }

    /// This process's instance id (a new process after an upgrade goes on
    /// with its predecessor's).
    pub fn id(&self) -> [u8; 8] {
        self.id
    }

    /// Whether both connections are up.
    pub fn is_up(&self) -> bool {
        self.stats.publisher_up.load(Ordering::Relaxed)
            && self.stats.subscriber_up.load(Ordering::Relaxed)
    }

    /// Topics Redis is (to be) subscribed to for local clients.
    pub fn subscriptions(&self) -> usize {
        self.topics.lock().unwrap().len()
    }

    /// Publishes `payload` on `topic` to the other processes. Never waits:
    /// dropped (and counted) without a connection or with a full queue.
    pub fn publish(&self, topic: &str, payload: &[u8]) {
        if !self.stats.publisher_up.load(Ordering::Relaxed) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut body = Vec::with_capacity(8 + payload.len());
        body.extend_from_slice(&self.id);
        body.extend_from_slice(payload);
        if !self.enqueue(format!("{PREFIX}{topic}"), body) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues `body` for `channel` if the queue has room (in messages and
    /// bytes); whether it did.
    fn enqueue(&self, channel: String, body: Vec<u8>) -> bool {
        let n = body.len();
        if self.queued_bytes.fetch_add(n, Ordering::AcqRel) + n > QUEUE_BYTES {
            self.queued_bytes.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        if self.queue.try_send((channel, body)).is_err() {
            self.queued_bytes.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// A local client joined `topic`.
    pub fn join(&self, topic: &str) {
        let first = {
            let mut t = self.topics.lock().unwrap();
            let n = t.entry(topic.to_string()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            self.command(topic, true);
        }
    }

    /// A local client left `topic`.
    pub fn leave(&self, topic: &str) {
        let last = {
            let mut t = self.topics.lock().unwrap();
            match t.get_mut(topic) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    t.remove(topic);
                    true
                }
                None => false,
            }
        };
        if last {
            self.command(topic, false);
        }
    }

    fn command(&self, topic: &str, subscribe: bool) {
        self.commands
            .lock()
            .unwrap()
            .push((format!("{PREFIX}{topic}"), subscribe));
        let _ = (&self.wake).write(&[1]);
    }

    /// This process's chat member count changed to `n`: tell the others.
    pub fn set_local_members(&self, n: i64) {
        self.local_members.store(n.max(0) as u64, Ordering::Relaxed);
        self.announce_presence();
    }

    /// Publishes this process's chat member count (also every second, from
    /// the ticker, so a process that went away stops counting).
    pub fn announce_presence(&self) {
        let n = self.local_members.load(Ordering::Relaxed);
        self.presence
            .lock()
            .unwrap()
            .insert(self.id, (n as i64, Instant::now()));
        if !self.stats.publisher_up.load(Ordering::Relaxed) {
            return;
        }
        let mut body = self.id.to_vec();
        body.extend_from_slice(n.to_string().as_bytes());
        // Sent again within a second if there is no room now.
        let _ = self.enqueue(PRESENCE.to_string(), body);
    }

    /// Chat members across the processes heard from recently.
    pub fn members(&self) -> i64 {
        let mut p = self.presence.lock().unwrap();
        p.retain(|id, (_, seen)| *id == self.id || seen.elapsed() < PRESENCE_TTL);
        p.values().map(|(n, _)| *n).sum()
    }

    // ----- the publisher ------------------------------------------------------

    fn publisher(self: Arc<Self>, rx: mpsc::Receiver<(String, Vec<u8>)>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let mut conn = match connect(&self.url) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(addr = %self.url.addr, error = %e, "cluster: publisher cannot connect; retrying in {backoff:?}");
                    self.drain_dropping(&rx, backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            self.stats.publisher_up.store(true, Ordering::Relaxed);
            tracing::info!(addr = %self.url.addr, "cluster: publisher connected");
            let e = self.publish_loop(&mut conn, &rx);
            self.stats.publisher_up.store(false, Ordering::Relaxed);
            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cluster: publisher lost its connection");
        }
    }

    /// While there is no connection: messages already queued are dropped
    /// (counted) for `wait`.
    fn drain_dropping(&self, rx: &mpsc::Receiver<(String, Vec<u8>)>, wait: Duration) {
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok((_, body)) => {
                    self.queued_bytes.fetch_sub(body.len(), Ordering::AcqRel);
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left);
                    break;
                }
            }
        }
    }

    fn publish_loop(&self, conn: &mut Conn, rx: &mpsc::Receiver<(String, Vec<u8>)>) -> String {
        let mut out = Vec::new();
        loop {
            let first = match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // An idle link is checked with a PING.
                    out.clear();
                    resp::command(&mut out, &[b"PING"]);
                    if let Err(e) = conn.write_all(&out).and_then(|()| conn.read_value()) {
                        return e;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return "the process is ending".into(),
            };
            // One batch: what is queued now, up to 256 messages.
            let mut batch = vec![first];
            while batch.len() < 256 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            out.clear();
            for (channel, body) in &batch {
                resp::command(&mut out, &[b"PUBLISH", channel.as_bytes(), body]);
            }
            let bytes: usize = batch.iter().map(|(_, b)| b.len()).sum();
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            let n = batch.len() as u64;
            drop(batch);
            if let Err(e) = conn.write_all(&out) {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                return e;
            }
            for i in 0..n {
                match conn.read_value() {
                    Ok(Value::Int(_)) => {
                        self.stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(other) => {
                        self.stats.dropped.fetch_add(n - i, Ordering::Relaxed);
                        return format!("PUBLISH answered {other:?}");
                    }
                    Err(e) => {
                        self.stats.dropped.fetch_add(n - i, Ordering::Relaxed);
                        return e;
                    }
                }
            }
        }
    }

    // ----- the subscriber -----------------------------------------------------

    fn subscriber(
        self: Arc<Self>,
        wake: UnixStream,
        deliver: Deliver,
        on_presence: Box<dyn Fn() + Send + Sync>,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let e = match connect(&self.url) {
                Ok(mut conn) => {
                    backoff = BACKOFF_MIN;
                    self.subscribe_loop(&mut conn, &wake, &deliver, &on_presence)
                }
                Err(e) => e,
            };
            if self.stats.subscriber_up.swap(false, Ordering::Relaxed) {
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(addr = %self.url.addr, error = %e, "cluster: subscriber without a connection; retrying in {backoff:?}");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn subscribe_loop(
        &self,
        conn: &mut Conn,
        wake: &UnixStream,
        deliver: &Deliver,
        on_presence: &(dyn Fn() + Send + Sync),
    ) -> String {
        // Every topic wanted now; later changes come as commands (taken
        // before the list, so none is lost in between).
        self.commands.lock().unwrap().clear();
        let mut channels: Vec<String> = self
            .topics
            .lock()
            .unwrap()
            .keys()
            .map(|t| format!("{PREFIX}{t}"))
            .collect();
        channels.push(PRESENCE.to_string());
        let mut out = Vec::new();
        for chunk in channels.chunks(256) {
            let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
            args.extend(chunk.iter().map(|c| c.as_bytes()));
            resp::command(&mut out, &args);
        }
        if let Err(e) = conn.write_all(&out) {
            return e;
        }
        self.stats.subscriber_up.store(true, Ordering::Relaxed);
        tracing::info!(addr = %self.url.addr, topics = channels.len() - 1, "cluster: subscriber connected");
        let mut last_heard = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        loop {
            // Commands first (subscribe/unsubscribe as local clients come
            // and go).
            let mut drain = [0u8; 64];
            while (&*wake).read(&mut drain).is_ok_and(|n| n > 0) {}
            let cmds = std::mem::take(&mut *self.commands.lock().unwrap());
            if !cmds.is_empty() {
                out.clear();
                for (ch, sub) in &cmds {
                    let verb: &[u8] = if *sub { b"SUBSCRIBE" } else { b"UNSUBSCRIBE" };
                    resp::command(&mut out, &[verb, ch.as_bytes()]);
                }
                if let Err(e) = conn.write_all(&out) {
                    return e;
                }
            }
            // Whatever arrived.
            loop {
                match conn.next_buffered() {
                    Ok(Some(v)) => {
                        last_heard = Instant::now();
                        match resp::push(v) {
                            Ok(Push::Message { channel, payload }) => {
                                self.on_message(&channel, &payload, deliver, on_presence)
                            }
                            Ok(Push::Pong) => ping_sent = None,
                            Ok(Push::Subscription { .. }) => {}
                            Err(e) => return e.to_string(),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return e,
                }
            }
            // A silent link is checked with a PING; no answer → remade.
            match ping_sent {
                Some(t) if t.elapsed() > ANSWER_TIMEOUT => return "PING unanswered".into(),
                None if last_heard.elapsed() > Duration::from_secs(1) => {
                    out.clear();
                    resp::command(&mut out, &[b"PING"]);
                    if let Err(e) = conn.write_all(&out) {
                        return e;
                    }
                    ping_sent = Some(Instant::now());
                    last_heard = Instant::now();
                }
                _ => {}
            }
            match conn.wait_readable(wake, Duration::from_millis(500)) {
                Ok(true) => {
                    if let Err(e) = conn.fill() {
                        return e;
                    }
                }
                Ok(false) => {}
                Err(e) => return e,
            }
        }
    }

    fn on_message(
        &self,
        channel: &[u8],
        payload: &[u8],
        deliver: &Deliver,
        on_presence: &(dyn Fn() + Send + Sync),
    ) {
        if payload.len() < 8 || payload[..8] == self.id {
            return;
        }
        let (id, body) = payload.split_at(8);
        if channel == PRESENCE.as_bytes() {
            let n = std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.parse::<i64>().ok());
            if let Some(n) = n {
                let id: [u8; 8] = id.try_into().expect("8 bytes");
                let changed = self
                    .presence
                    .lock()
                    .unwrap()
                    .insert(id, (n, Instant::now()))
                    .is_none_or(|(old, _)| old != n);
                if changed {
                    on_presence();
                }
            }
            return;
        }
        let Some(topic) = channel
            .strip_prefix(PREFIX.as_bytes())
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            return;
        };
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        deliver(topic, body);
    }
}

/// A connection to Redis with its read buffer.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    limits: resp::Limits,
}

fn connect(url: &Url) -> Result<Conn, String> {
    use std::net::ToSocketAddrs;
    let addr = url
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("{}: {e}", url.addr))?
        .next()
        .ok_or_else(|| format!("{}: no address", url.addr))?;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut c = Conn {
        s,
        buf: Vec::new(),
        limits: resp::Limits::default(),
    };
    if url.db != 0 {
        let mut out = Vec::new();
        resp::command(&mut out, &[b"SELECT", url.db.to_string().as_bytes()]);
        c.write_all(&out)?;
        match c.read_value()? {
            Value::Simple(_) => {}
            other => return Err(format!("SELECT {} answered {other:?}", url.db)),
        }
    }
    Ok(c)
}

impl Conn {
    fn write_all(&mut self, b: &[u8]) -> Result<(), String> {
        self.s.write_all(b).map_err(|e| format!("write: {e}"))
    }

    /// One value already in the buffer, if complete.
    fn next_buffered(&mut self) -> Result<Option<Value>, String> {
        match resp::parse(&self.buf, &self.limits).map_err(|e| e.to_string())? {
            Some((v, used)) => {
                self.buf.drain(..used);
                Ok(Some(v))
            }
            None => Ok(None),
        }
    }

    /// Reads once (what is there, waiting at most the read timeout).
    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 64 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) => Err("Redis closed the connection".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// The next value, waiting at most the read timeout for it.
    fn read_value(&mut self) -> Result<Value, String> {
        let until = Instant::now() + ANSWER_TIMEOUT;
        loop {
            if let Some(v) = self.next_buffered()? {
                return Ok(v);
            }
            if Instant::now() >= until {
                return Err("no answer from Redis".into());
            }
            self.fill()?;
        }
    }

    /// Waits until the socket or `wake` is readable, or `timeout`: whether
    /// the socket is (readable, or closed).
    fn wait_readable(&self, wake: &UnixStream, timeout: Duration) -> Result<bool, String> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [
            PollFd::new(&self.s, PollFlags::IN),
            PollFd::new(wake, PollFlags::IN),
        ];
        let t = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        match poll(&mut fds, Some(&t)) {
            Ok(_) => Ok(!fds[0].revents().is_empty()),
            Err(rustix::io::Errno::INTR) => Ok(false),
            Err(e) => Err(format!("poll: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_host_port_and_database() {
        assert_eq!(
            Url::parse("redis://127.0.0.1:7000/3").unwrap(),
            Url {
                addr: "127.0.0.1:7000".into(),
                db: 3
            }
        );
        assert_eq!(
            Url::parse("redis://localhost").unwrap(),
            Url {
                addr: "localhost:6379".into(),
                db: 0
            }
        );
        assert_eq!(
            Url::parse("redis://[::1]:7000/").unwrap().addr,
            "[::1]:7000"
        );
        for bad in ["http://x", "redis://", "redis://u:p@h:1", "redis://h:1/x"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
