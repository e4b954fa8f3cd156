//! The built-in application, one instance per event loop: the demo site,
//! `/hello`, `/ws/echo`, `/ws/chat` (broadcast across loops), uploads,
//! uploaded-file serving, `--root` at `/` (the demo pages keep their paths,
//! and the demo home moves to `/ringtail`), `/metrics`, the RAW echo and the
//! periodic tick that a ticker thread drives through each loop's eventfd.
//!
//! Only `POST /upload` reads a request body. Every other request that comes
//! with one is answered once its body is in (the body is discarded as it
//! arrives): answering at the head would leave a malformed body nobody to
//! answer its 400, and the connection would close with the early answer
//! still queued. (Except with `Expect: 100-continue`: that client sends no
//! body when answered at once, so it is.)

use std::sync::Arc;

use network_server::{
    Application, ClientId, ClientKind, CloseReason, Ctx, DirEntry, DirEntryKind, Error, EventId,
    FileEvent, FileRootId, HttpEvent, ListenerId, OutBuf, ReadBufs, Request, UploadData,
    UploadDirId, UploadEvent, UploadOptions, WsOpcode,
};

use crate::hub::{Control, Hub, LoopStats};

const RAW_READ_SIZE: usize = 16 * 1024;
/// Every 404's body: the demo's routes and the file roots (the library's
/// own not-found body) answer the same.
const NOT_FOUND: &str = "Not Found\n";
const CHAT: &str = "chat";
/// `/ws/broadcast`'s topic: every text message to every member (across
/// processes with `--cluster`); the load generator's broadcast mode.
const BROADCAST: &str = "broadcast";

static INDEX_HTML: &str = include_str!("../site/index.html");
static CHAT_HTML: &str = include_str!("../site/chat.html");
static UPLOAD_HTML: &str = include_str!("../site/upload.html");
static SITE_CSS: &str = include_str!("../site/site.css");

/// Directories the loops serve, opened by each loop at start.
#[derive(Debug, Clone, Copy)]
pub struct Roots {
    /// Where uploads are stored (and served from under `/files/`).
    pub uploads: UploadDirId,
    /// The same directory as a file root.
    pub uploaded_files: FileRootId,
    /// `--root`, served at `/` (the demo pages keep their paths).
    pub static_root: Option<FileRootId>,
}

/// One loop's application.
pub struct Ringtail {
    /// This loop's index in the hub.
    pub index: usize,
    /// Shared with the other loops.
    pub hub: Arc<Hub>,
    /// The eventfd other loops and the ticker wake this loop with.
    pub hub_event: EventId,
    /// Served directories.
    pub roots: Roots,
    /// The upload directory's path (for the listing).
    pub upload_path: std::path::PathBuf,
    /// Chat clients on this loop.
    chat: std::collections::HashSet<ClientId>,
    /// `/ws/topics` clients on this loop and the topics each is in.
    topics: std::collections::HashMap<ClientId, std::collections::HashSet<String>>,
    /// `/ws/broadcast` clients on this loop.
    broadcast: std::collections::HashSet<ClientId>,
    /// Requests with a body waiting for it to end before they are answered:
    /// each one's head, written out again (re-parsed at the body's end).
    deferred: std::collections::HashMap<ClientId, Vec<u8>>,
    /// `/files/` requests waiting for their directory read, by tag.
    listings: std::collections::HashMap<u64, ClientId>,
    next_listing: u64,
    /// The grace period of a graceful shutdown asked for through the hub.
    grace: std::time::Duration,
    /// Set when the loop stopped because the process asked it to pause
    /// ([`Control::Pause`]); taken by the loop's thread.
    paused: bool,
}

impl Ringtail {
    /// An application for loop `index`.
    pub fn new(
        index: usize,
        hub: Arc<Hub>,
        hub_event: EventId,
        roots: Roots,
        upload_path: std::path::PathBuf,
        grace: std::time::Duration,
    ) -> Self {
        Ringtail {
            index,
            hub,
            hub_event,
            roots,
            upload_path,
            chat: Default::default(),
            topics: Default::default(),
            broadcast: Default::default(),
            deferred: Default::default(),
            listings: Default::default(),
            next_listing: 0,
            grace,
            paused: false,
        }
    }

    /// An application for loop `index` that takes its eventfd and roots
    /// from the state of the loop it takes over (`Server::import` calls
    /// [`Application::import`]); until then they name nothing, and an
    /// application whose import failed is dropped unused.
    pub fn for_import(
        index: usize,
        hub: Arc<Hub>,
        upload_path: std::path::PathBuf,
        grace: std::time::Duration,
    ) -> Self {
        let nothing = Roots {
            uploads: UploadDirId::from_u64(u64::from(u32::MAX)).expect("fits"),
            uploaded_files: FileRootId::from_u64(u64::from(u32::MAX)).expect("fits"),
            static_root: None,
        };
        Ringtail::new(
            index,
            hub,
            EventId::from_u64(u64::MAX),
            nothing,
            upload_path,
            grace,
        )
    }

    /// Whether the loop stopped because the process asked it to pause
    /// (and clears it); otherwise `Server::run` returned because a
    /// graceful shutdown ended.
    pub fn take_paused(&mut self) -> bool {
        std::mem::take(&mut self.paused)
    }

    /// Publishes on this loop and every other one of the process, and
    /// through the cluster bridge (if any) on every other process.
    fn publish_everywhere(&self, ctx: &mut Ctx<'_>, topic: &str, message: &[u8]) {
        self.publish_here(ctx, topic, message);
        if let Some(c) = self.hub.cluster() {
            c.publish(topic, message);
        }
    }

    /// Publishes on this loop and every other one of the process.
    fn publish_here(&self, ctx: &mut Ctx<'_>, topic: &str, message: &[u8]) {
        ctx.ws_publish(topic, WsOpcode::Text, message);
        self.hub.publish_others(self.index, topic, message);
    }

    /// The chat count changed by `delta` here: every chat client of the
    /// process hears the new count (with a cluster, the count over every
    /// process; the others learn it through the presence channel).
    fn announce_count(&self, ctx: &mut Ctx<'_>, delta: i64) {
        let mut n = self.hub.chat_clients_add(delta);
        if let Some(c) = self.hub.cluster() {
            c.set_local_members(n);
            n = c.members();
        }
        let msg = serde_json::json!({"type": "count", "n": n}).to_string();
        self.publish_here(ctx, CHAT, msg.as_bytes());
    }

    /// `/ws/topics`: `sub TOPIC`, `unsub TOPIC`, `pub TOPIC TEXT` (topics
    /// of 1 to 128 bytes without spaces). Answers `error: …` to anything
    /// else.
    fn on_topics_message(&mut self, ctx: &mut Ctx<'_>, client: ClientId, text: &str) {
        let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
        let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        if topic.is_empty() || topic.len() > 128 {
            let _ = ctx.ws_send(
                client,
                WsOpcode::Text,
                b"error: topic of 1 to 128 bytes".to_vec(),
            );
            return;
        }
        let mine = self.topics.entry(client).or_default();
        match verb {
            "sub" => {
                if mine.insert(topic.to_string()) && ctx.ws_subscribe(client, topic).is_ok() {
                    if let Some(c) = self.hub.cluster() {
                        c.join(topic);
                    }
                }
            }
            "unsub" => {
                if mine.remove(topic) {
                    let _ = ctx.ws_unsubscribe(client, topic);
                    if let Some(c) = self.hub.cluster() {
                        c.leave(topic);
                    }
                }
            }
            "pub" => self.publish_everywhere(ctx, topic, payload.as_bytes()),
            _ => {
                let _ = ctx.ws_send(client, WsOpcode::Text, b"error: sub, unsub or pub".to_vec());
            }
        }
    }

    fn report(&self, ctx: &mut Ctx<'_>) {
        self.hub.report(
            self.index,
            LoopStats {
                server: ctx.stats(),
                clients: ctx.client_counts(),
                ring: ctx.ring_stats(),
                hub_drops: 0,
            },
        );
    }

    fn route(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        req: &Request<'_>,
    ) -> Result<(), Error> {
        let html = [("Content-Type", "text/html; charset=utf-8")];
        let text = [("Content-Type", "text/plain; charset=utf-8")];
        match req.path {
            "/hello" => ctx.http_respond_copy(client, 200, &text, b"Hello, World!"),
            "/" => match self.roots.static_root {
                Some(root) => ctx.http_send_file(client, root, "/", req),
                None => ctx.http_respond(client, 200, &html, INDEX_HTML),
            },
            "/ringtail" => ctx.http_respond(client, 200, &html, INDEX_HTML),
            "/chat" => ctx.http_respond(client, 200, &html, CHAT_HTML),
            "/site.css" => ctx.http_respond(client, 200, &[("Content-Type", "text/css")], SITE_CSS),
            "/upload" if req.method == "POST" => {
                ctx.http_upload_begin(client, req, self.roots.uploads, UploadOptions::default())
            }
            "/upload" => ctx.http_respond(client, 200, &html, UPLOAD_HTML),
            "/files" | "/files/" => {
                // Read on the server's file helper thread; answered in
                // on_file (FileEvent::Listed).
                self.next_listing += 1;
                ctx.file_list_dir(&self.upload_path, self.next_listing)?;
                self.listings.insert(self.next_listing, client);
                Ok(())
            }
            "/metrics" => {
                self.report(ctx);
                let body = crate::metrics::render(
                    &self.hub.reports(),
                    self.hub.cluster().map(|c| &**c),
                    self.hub.tls().map(|t| &**t),
                );
                ctx.http_respond(
                    client,
                    200,
                    &[("Content-Type", "text/plain; version=0.0.4")],
                    body,
                )
            }
            // Reached only once the body is in (see `on_http_read`): a
            // handshake cannot carry one (RFC 6455 §4.1: a GET). Refused and
            // closed, as a failed handshake is.
            "/ws/echo" | "/ws/chat" | "/ws/topics" | "/ws/broadcast" if req.body.has_body() => {
                ctx.http_respond(client, 400, &text, "a WebSocket handshake has no body\n")?;
                ctx.http_close(client)
            }
            "/ws/echo" => ctx.ws_upgrade(client, req, None),
            "/ws/chat" => {
                ctx.ws_upgrade(client, req, None)?;
                ctx.ws_subscribe(client, CHAT)?;
                self.chat.insert(client);
                if let Some(c) = self.hub.cluster() {
                    c.join(CHAT);
                }
                self.announce_count(ctx, 1);
                Ok(())
            }
            "/ws/topics" => {
                ctx.ws_upgrade(client, req, None)?;
                self.topics.insert(client, Default::default());
                Ok(())
            }
            "/ws/broadcast" => {
                ctx.ws_upgrade(client, req, None)?;
                ctx.ws_subscribe(client, BROADCAST)?;
                self.broadcast.insert(client);
                if let Some(c) = self.hub.cluster() {
                    c.join(BROADCAST);
                }
                Ok(())
            }
            p if p.starts_with("/files/") => {
                ctx.http_send_file(client, self.roots.uploaded_files, &p["/files".len()..], req)
            }
            // Everything else comes from --root when there is one.
            p => match self.roots.static_root {
                Some(root) => ctx.http_send_file(client, root, p, req),
                // The same body as a file root's 404.
                None => ctx.http_respond(client, 404, &text, NOT_FOUND),
            },
        }
    }

    /// Routes `req`; a request the route failed to answer gets a 500 rather
    /// than waiting forever.
    fn answer(&mut self, ctx: &mut Ctx<'_>, client: ClientId, req: &Request<'_>) {
        if let Err(e) = self.route(ctx, client, req) {
            tracing::debug!(%client, error = %e, "request not answered by its route");
            let text = [("Content-Type", "text/plain; charset=utf-8")];
            // Fails harmlessly if the route answered (or closed) after all.
            let _ = ctx.http_respond(client, 500, &text, "internal server error\n");
        }
    }

    /// Answers the request `head` (written by [`head_text`]) whose body has
    /// just ended.
    fn answer_deferred(&mut self, ctx: &mut Ctx<'_>, client: ClientId, head: &[u8]) {
        use network_server::protocol::{header_storage, parse_request, Limits, Parsed};
        let mut limits = Limits::DEFAULT;
        limits.max_head_size = usize::MAX;
        limits.max_headers = DEFERRED_HEADERS;
        limits.max_body_size = u64::MAX;
        let mut storage = header_storage::<DEFERRED_HEADERS>();
        match parse_request(head, &mut storage, &limits) {
            Ok(Parsed::Complete(req, _)) => self.answer(ctx, client, &req),
            other => {
                // Cannot happen: the head was parsed once already.
                tracing::error!(%client, ?other, "a kept request head does not parse again");
                let text = [("Content-Type", "text/plain; charset=utf-8")];
                let _ = ctx.http_respond(client, 500, &text, "internal server error\n");
            }
        }
    }

    /// The uploaded files (regular files of the upload directory) as an
    /// HTML list.
    fn listing(entries: Vec<DirEntry>) -> String {
        let mut files: Vec<DirEntry> = entries
            .into_iter()
            .filter(|e| e.kind == DirEntryKind::File)
            .collect();
        // Newest first.
        files.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
        let mut page = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>uploaded files</title>\
             <link rel=\"stylesheet\" href=\"/site.css\"></head><body><h1>Uploaded files</h1>\
             <table id=\"files\"><tr><th>name</th><th>size</th><th>uploaded (UTC)</th></tr>",
        );
        for f in &files {
            let stored = f.name.to_string_lossy();
            let date = f.modified.map_or_else(|| "-".to_string(), utc_minute);
            page.push_str(&format!(
                "<tr><td><a href=\"/files/{}\">{}</a></td><td>{}</td><td>{date}</td></tr>",
                url_path_escape(&stored),
                html_escape(original_name(&stored)),
                human_size(f.size),
            ));
        }
        if files.is_empty() {
            page.push_str("<tr><td colspan=\"3\">none yet</td></tr>");
        }
        page.push_str(
            "</table><p><a href=\"/upload\">upload</a> · <a href=\"/\">home</a></p></body></html>",
        );
        page
    }
}

/// Header slots for re-parsing a kept head (the server parses at most this
/// many fields).
const DEFERRED_HEADERS: usize = 256;

/// `req`'s head as it could have been received: request line, fields, empty
/// line.
fn head_text(req: &Request<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.version.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in req.headers {
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The name a file was uploaded with: the server stores it as
/// `upload-PID-N-RANDOM-NAME` (`network_server::UploadedPart::filename`);
/// a name of another shape is shown as it is.
fn original_name(stored: &str) -> &str {
    let kept = stored.strip_prefix("upload-").and_then(|rest| {
        let mut it = rest.splitn(4, '-');
        let (pid, n, rnd, name) = (it.next()?, it.next()?, it.next()?, it.next()?);
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let hex = rnd.len() == 16 && rnd.bytes().all(|b| b.is_ascii_hexdigit());
        (digits(pid) && digits(n) && hex && !name.is_empty()).then_some(name)
    });
    kept.unwrap_or(stored)
}

/// `1.5 KiB`, `3 B`, `12.0 MiB`.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `2026-12-04 12:47` (UTC).
fn utc_minute(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A stored file name as a URL path segment: bytes outside the unreserved
/// set percent-encoded.
fn url_path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A chat message as the page sends it — `{"name": …, "text": …}` — or
/// plain text (from another client), with the sender's name (trimmed, at
/// most 32 characters; `anonymous` when empty or absent) and the server's
/// time (milliseconds since the Unix epoch), as JSON for every member.
fn chat_message(data: &[u8], now: std::time::SystemTime) -> String {
    #[derive(serde::Deserialize)]
    struct Said {
        name: Option<String>,
        text: String,
    }
    let (name, text) = match serde_json::from_slice::<Said>(data) {
        Ok(s) => (s.name.unwrap_or_default(), s.text),
        Err(_) => (String::new(), String::from_utf8_lossy(data).into_owned()),
    };
    let name: String = name.trim().chars().take(32).collect();
    let name = if name.is_empty() {
        "anonymous".into()
    } else {
        name
    };
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    serde_json::json!({"type": "chat", "name": name, "text": text, "time": ms}).to_string()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What [`Ringtail`] hands over (JSON: small, and readable in a snapshot).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AppState {
    chat: Vec<u64>,
    deferred: Vec<(u64, Vec<u8>)>,
    next_listing: u64,
    /// The loop's hub eventfd, carried with the server (absent in state
    /// written before upgrades between processes existed: the importing
    /// loop then keeps its own).
    #[serde(default)]
    hub_event: Option<u64>,
    /// The loop's roots (their ids stay valid across a handover).
    #[serde(default)]
    roots: Option<RootsState>,
    /// `/ws/topics` clients and their topics.
    #[serde(default)]
    topics: Vec<(u64, Vec<String>)>,
    /// `/ws/broadcast` clients.
    #[serde(default)]
    broadcast: Vec<u64>,
}

/// [`Roots`] as numbers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RootsState {
    uploads: u64,
    uploaded_files: u64,
    static_root: Option<u64>,
}

impl Application for Ringtail {
    fn on_accept(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _listener: ListenerId) {
        if ctx.client_kind(client) == Ok(ClientKind::Raw) {
            let _ = ctx.raw_read(client, Vec::with_capacity(RAW_READ_SIZE), None);
        }
    }

    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {
        match event {
            HttpEvent::Request(req) => {
                let upload = req.path == "/upload" && req.method == "POST";
                // A client waiting for `100 Continue` sends no body when
                // answered at once (and the server then closes after the
                // answer), so only the others wait for the body.
                if req.body.has_body() && !upload && !req.expect_continue {
                    // Answered at `BodyEnd`; a malformed body gets the
                    // server's 400 instead.
                    self.deferred.insert(client, head_text(req));
                } else {
                    self.answer(ctx, client, req);
                }
            }
            HttpEvent::Body(chunk) => {
                if ctx.http_upload_active(client) {
                    let _ = ctx.http_upload_feed(client, chunk);
                }
                // Otherwise a body nobody reads (a deferred request's).
            }
            HttpEvent::BodyEnd => {
                if ctx.http_upload_active(client) {
                    let _ = ctx.http_upload_end(client);
                } else if let Some(head) = self.deferred.remove(&client) {
                    self.answer_deferred(ctx, client, &head);
                }
            }
        }
    }

    fn on_ws_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, op: WsOpcode, data: &[u8]) {
        match op {
            WsOpcode::Text | WsOpcode::Binary if self.chat.contains(&client) => {
                let msg = chat_message(data, std::time::SystemTime::now());
                self.publish_everywhere(ctx, CHAT, msg.as_bytes());
            }
            WsOpcode::Text if self.broadcast.contains(&client) => {
                self.publish_everywhere(ctx, BROADCAST, data);
            }
            WsOpcode::Text if self.topics.contains_key(&client) => {
                let text = String::from_utf8_lossy(data).into_owned();
                self.on_topics_message(ctx, client, &text);
            }
            WsOpcode::Text | WsOpcode::Binary => {
                let _ = ctx.ws_send(client, op, data.to_vec());
            }
            WsOpcode::Ping | WsOpcode::Pong => {}
        }
    }

    fn on_ws_close(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _reason: CloseReason) {
        if self.chat.remove(&client) {
            if let Some(c) = self.hub.cluster() {
                c.leave(CHAT);
            }
            self.announce_count(ctx, -1);
        }
        if self.broadcast.remove(&client) {
            if let Some(c) = self.hub.cluster() {
                c.leave(BROADCAST);
            }
        }
        if let Some(topics) = self.topics.remove(&client) {
            if let Some(c) = self.hub.cluster() {
                topics.iter().for_each(|t| c.leave(t));
            }
        }
    }

    fn on_raw_read(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        bufs: ReadBufs,
        result: Result<usize, Error>,
    ) {
        let ReadBufs::One(buf) = bufs else { return };
        match result {
            Ok(n) if n > 0 => {
                let _ = ctx.raw_write(client, buf);
            }
            _ => {
                let _ = ctx.raw_close(client);
            }
        }
    }

    fn on_raw_write(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: ClientId,
        mut bufs: Vec<OutBuf>,
        result: Result<(), Error>,
    ) {
        // Reuse the echoed buffer for the next read.
        if result.is_ok() {
            let buf = bufs.pop().and_then(OutBuf::into_vec).map(|mut v| {
                v.clear();
                v
            });
            let _ = ctx.raw_read(
                client,
                buf.unwrap_or_else(|| Vec::with_capacity(RAW_READ_SIZE)),
                None,
            );
        }
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_>, event: EventId, _info: u64, _count: u64) {
        if event != self.hub_event {
            return;
        }
        if self.hub.take_request(self.index, Control::Shutdown) {
            if let Err(e) = ctx.shutdown(self.grace) {
                tracing::warn!(error = %e, "graceful shutdown not begun");
            }
        }
        if self.hub.take_request(self.index, Control::Pause) {
            // The loop's thread takes over (quiesce, export, then resume or
            // release); the eventfd is re-armed below so it can wake the
            // loop again after a resume.
            self.paused = true;
            ctx.stop();
        }
        // Messages published on other loops (and other processes).
        for (topic, msg) in self.hub.take_inbox(self.index) {
            ctx.ws_publish(&topic, WsOpcode::Text, &msg);
        }
        // The cluster-wide chat count changed.
        if self.hub.take_request(self.index, Control::Count) {
            if let Some(c) = self.hub.cluster() {
                let msg = serde_json::json!({"type": "count", "n": c.members()}).to_string();
                ctx.ws_publish(CHAT, WsOpcode::Text, msg.as_bytes());
            }
        }
        // The ticker's wake-up: report counters, and send the clock to this
        // loop's chat clients (each loop does its own, no cross-loop copy).
        let tick = self.hub.take_tick(self.index);
        if tick {
            self.report(ctx);
        }
        if tick && ctx.ws_topic_size(CHAT) > 0 {
            let now = httpdate::fmt_http_date(std::time::SystemTime::now());
            let msg =
                serde_json::json!({"type": "tick", "time": now, "loop": self.index}).to_string();
            ctx.ws_publish(CHAT, WsOpcode::Text, msg.as_bytes());
        }
        if let Err(e) = ctx.eventfd_prepare(event, 0) {
            tracing::error!(error = %e, "cannot re-arm the hub eventfd");
        }
    }

    /// The loop's own per-client state for a handover: the chat members,
    /// the heads of requests answered when their body ends, and the next
    /// listing tag. (Listings waiting for the file helper are not carried:
    /// a handover answers them first; see `docs/handover.md`.)
    fn export(&mut self, _ctx: &mut Ctx<'_>) -> Vec<u8> {
        let state = AppState {
            chat: self.chat.iter().map(|c| c.to_u64()).collect(),
            deferred: self
                .deferred
                .iter()
                .map(|(c, head)| (c.to_u64(), head.clone()))
                .collect(),
            next_listing: self.next_listing,
            hub_event: Some(self.hub_event.to_u64()),
            roots: Some(RootsState {
                uploads: self.roots.uploads.to_u64(),
                uploaded_files: self.roots.uploaded_files.to_u64(),
                static_root: self.roots.static_root.map(FileRootId::to_u64),
            }),
            topics: self
                .topics
                .iter()
                .map(|(c, t)| (c.to_u64(), t.iter().cloned().collect()))
                .collect(),
            broadcast: self.broadcast.iter().map(|c| c.to_u64()).collect(),
        };
        serde_json::to_vec(&state).expect("plain data serializes")
    }

    /// Takes over the state [`Application::export`] wrote (in this process
    /// or a new one): every client named must be open and of the right
    /// kind. The process-wide chat count grows by the members this loop
    /// did not have.
    fn import(&mut self, ctx: &mut Ctx<'_>, state: &[u8]) -> Result<(), String> {
        if state.is_empty() {
            return Ok(());
        }
        let s: AppState = serde_json::from_slice(state).map_err(|e| e.to_string())?;
        let client = |v: u64, kind: ClientKind| -> Result<ClientId, String> {
            let c = ClientId::from_u64(v);
            match ctx.client_kind(c) {
                Ok(k) if k == kind => Ok(c),
                other => Err(format!("client {c} is {other:?}, not {kind:?}")),
            }
        };
        let chat = s
            .chat
            .iter()
            .map(|&v| client(v, ClientKind::WebSocket))
            .collect::<Result<std::collections::HashSet<_>, _>>()?;
        let deferred = s
            .deferred
            .into_iter()
            .map(|(v, head)| Ok((client(v, ClientKind::Http)?, head)))
            .collect::<Result<std::collections::HashMap<_, _>, String>>()?;
        let topics = s
            .topics
            .into_iter()
            .map(|(v, t)| Ok((client(v, ClientKind::WebSocket)?, t.into_iter().collect())))
            .collect::<Result<std::collections::HashMap<_, std::collections::HashSet<String>>, String>>()?;
        let broadcast = s
            .broadcast
            .iter()
            .map(|&v| client(v, ClientKind::WebSocket))
            .collect::<Result<std::collections::HashSet<_>, _>>()?;
        if let Some(ev) = s.hub_event {
            let ev = EventId::from_u64(ev);
            // An eventfd of this server, or the handle fails.
            let trigger = ctx
                .eventfd_trigger_handle(ev)
                .map_err(|e| format!("hub eventfd {ev}: {e}"))?;
            // A loop of a new process: its hub learns how to wake it (in
            // the same process the hub keeps the waker it has, which wakes
            // the same eventfd).
            self.hub.register(self.index, trigger);
            self.hub_event = ev;
        }
        if let Some(r) = s.roots {
            let bad = || format!("root ids out of range: {}", r.uploads);
            self.roots = Roots {
                uploads: UploadDirId::from_u64(r.uploads).ok_or_else(bad)?,
                uploaded_files: FileRootId::from_u64(r.uploaded_files).ok_or_else(bad)?,
                static_root: match r.static_root {
                    Some(v) => Some(FileRootId::from_u64(v).ok_or_else(bad)?),
                    None => None,
                },
            };
        }
        let new_members = chat.difference(&self.chat).count() as i64;
        self.hub.chat_clients_add(new_members);
        // Memberships this process's cluster bridge did not count yet (a
        // new process after an upgrade: all of them).
        if let Some(c) = self.hub.cluster() {
            for _ in chat.difference(&self.chat) {
                c.join(CHAT);
            }
            for (client, ts) in &topics {
                let had = self.topics.get(client);
                for t in ts.iter().filter(|t| !had.is_some_and(|h| h.contains(*t))) {
                    c.join(t);
                }
            }
            for _ in broadcast.difference(&self.broadcast) {
                c.join(BROADCAST);
            }
            c.set_local_members(self.hub.chat_clients_add(0));
        }
        self.chat = chat;
        self.topics = topics;
        self.broadcast = broadcast;
        self.deferred = deferred;
        self.next_listing = self.next_listing.max(s.next_listing);
        Ok(())
    }

    fn on_file(&mut self, ctx: &mut Ctx<'_>, event: FileEvent) {
        if let FileEvent::Listed { tag, result } = event {
            let Some(client) = self.listings.remove(&tag) else {
                return;
            };
            if let Err(e) = &result {
                tracing::warn!(error = %e, "cannot read the upload directory");
            }
            let page = Self::listing(result.unwrap_or_default());
            let html = [("Content-Type", "text/html; charset=utf-8")];
            // The client may have gone meanwhile.
            let _ = ctx.http_respond(client, 200, &html, page);
            return;
        }
        if let FileEvent::Upload { client, event } = event {
            match event {
                UploadEvent::Done(parts) => {
                    let mut page = String::from(
                        "<!doctype html><html><head><meta charset=\"utf-8\"><title>uploaded</title>\
                         <link rel=\"stylesheet\" href=\"/site.css\"></head><body><h1>Uploaded</h1><ul>",
                    );
                    for p in &parts {
                        if let UploadData::File { path, size } = &p.data {
                            let stored = path
                                .file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default();
                            let shown = html_escape(p.filename.as_deref().unwrap_or(&stored));
                            let stored = url_path_escape(&stored);
                            page.push_str(&format!(
                                "<li><a href=\"/files/{stored}\">{shown}</a> ({size} bytes)</li>"
                            ));
                        }
                    }
                    page.push_str("</ul><p><a href=\"/files/\">all files</a> · <a href=\"/upload\">upload more</a></p></body></html>");
                    let _ = ctx.http_respond(
                        client,
                        200,
                        &[("Content-Type", "text/html; charset=utf-8")],
                        page,
                    );
                }
                UploadEvent::Failed { status, reason } => {
                    tracing::info!(%client, status, reason, "upload failed");
                }
                _ => {}
            }
        }
    }

    fn on_http_close(&mut self, _ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        // A request whose body never ended (bad body, timeout, peer gone).
        self.deferred.remove(&client);
        tracing::trace!(%client, ?reason, "http closed");
    }
}

#[cfg(test)]
mod page_tests {
    use super::*;

    #[test]
    fn stored_upload_names_show_the_original_name() {
        assert_eq!(
            original_name("upload-12-3-0123456789abcdef-cat photo.jpg"),
            "cat photo.jpg"
        );
        assert_eq!(original_name("upload-12-3-0123456789abcdef-a-b-c"), "a-b-c");
        // Other shapes are shown as they are.
        assert_eq!(
            original_name("upload-12-3-0123456789abcdef"),
            "upload-12-3-0123456789abcdef"
        );
        assert_eq!(
            original_name("upload-x-3-0123456789abcdef-n"),
            "upload-x-3-0123456789abcdef-n"
        );
        assert_eq!(original_name("notes.txt"), "notes.txt");
    }

    #[test]
    fn sizes_dates_and_links_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_388_469);
        assert_eq!(utc_minute(t), "2026-12-04 12:47");
        assert_eq!(utc_minute(std::time::UNIX_EPOCH), "1970-01-01 00:00");
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(utc_minute(leap), "2000-02-29 00:00");
        assert_eq!(url_path_escape("a b/é?.txt"), "a%20b%2F%C3%A9%3F.txt");
    }

    #[test]
    fn chat_messages_carry_a_name_and_the_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_388_469_123);
        let m: serde_json::Value =
            serde_json::from_str(&chat_message(br#"{"name":"  Alice ","text":"hi"}"#, at)).unwrap();
        assert_eq!(m["type"], "chat");
        assert_eq!(
            (m["name"].as_str(), m["text"].as_str()),
            (Some("Alice"), Some("hi"))
        );
        assert_eq!(m["time"], 1_796_388_469_123u64);
        // Plain text (another client), or no name: anonymous.
        let m: serde_json::Value = serde_json::from_str(&chat_message(b"plain", at)).unwrap();
        assert_eq!(
            (m["name"].as_str(), m["text"].as_str()),
            (Some("anonymous"), Some("plain"))
        );
        let m: serde_json::Value =
            serde_json::from_str(&chat_message(br#"{"text":"x"}"#, at)).unwrap();
        assert_eq!(m["name"], "anonymous");
        let long = format!(r#"{{"name":"{}","text":"x"}}"#, "n".repeat(100));
        let m: serde_json::Value =
            serde_json::from_str(&chat_message(long.as_bytes(), at)).unwrap();
        assert_eq!(m["name"].as_str().unwrap().len(), 32);
    }
}

#[cfg(test)]
mod handover_tests {
    //! The demo chat keeps its members across a handover to a fresh
    //! server *and* a fresh application object (as in a new process):
    //! a member's message is still published as chat, not echoed.

    use super::*;
    use network_server::{FileRootOptions, Protocol, Server, ServerConfig};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn run(server: &mut Server, app: &mut Ringtail, ms: u64) {
        server
            .run_until(app, Instant::now() + Duration::from_millis(ms))
            .unwrap();
    }

    #[test]
    fn chat_members_survive_a_handover_to_a_fresh_application() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::default();
        let mut server = Server::new(config.clone()).unwrap();
        let l = server
            .listen("127.0.0.1:0".parse().unwrap(), Protocol::Http)
            .unwrap();
        let addr = server.local_addr(l);
        let hub = Arc::new(Hub::new(1, 1024));
        let mut ctx = server.ctx();
        let hub_event = ctx.eventfd_open().unwrap();
        ctx.eventfd_prepare(hub_event, 0).unwrap();
        let roots = Roots {
            uploads: ctx.upload_dir_open(dir.path()).unwrap(),
            uploaded_files: ctx
                .file_root_open(dir.path(), FileRootOptions::default())
                .unwrap(),
            static_root: None,
        };
        let fresh = |hub: &Arc<Hub>| {
            Ringtail::new(
                0,
                hub.clone(),
                hub_event,
                roots,
                dir.path().to_path_buf(),
                std::time::Duration::from_secs(1),
            )
        };
        let mut app = fresh(&hub);

        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (got_tx, got_rx) = mpsc::channel::<String>();
        let client = std::thread::spawn(move || {
            let stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws/chat"), stream).unwrap();
            // The member count announced when it joined.
            let first = ws.read().unwrap().into_text().unwrap().to_string();
            got_tx.send(first).unwrap();
            go_rx.recv().unwrap();
            ws.send(tungstenite::Message::text("after the handover"))
                .unwrap();
            loop {
                let m = ws.read().unwrap().into_text().unwrap().to_string();
                if m.contains("after the handover") {
                    got_tx.send(m).unwrap();
                    break;
                }
            }
        });
        let limit = Instant::now() + Duration::from_secs(10);
        let first = loop {
            run(&mut server, &mut app, 20);
            if let Ok(m) = got_rx.try_recv() {
                break m;
            }
            assert!(Instant::now() < limit, "the chat client did not join");
        };
        assert!(first.contains("\"count\""), "{first}");
        assert_eq!(hub.chat_clients_add(0), 1);

        server.quiesce(&mut app).unwrap();
        let snap = server.export(&mut app).unwrap();
        let fds = server.release();
        // A new process would start with a new hub and a new application.
        let hub2 = Arc::new(Hub::new(1, 1024));
        let mut app2 = fresh(&hub2);
        let mut server = Server::import(config, &snap.bytes, fds, &mut app2)
            .map_err(|(e, _)| e)
            .unwrap();
        server.resume(&mut app2).unwrap();
        assert_eq!(hub2.chat_clients_add(0), 1, "the member count came over");

        go_tx.send(()).unwrap();
        let msg = loop {
            run(&mut server, &mut app2, 20);
            if let Ok(m) = got_rx.try_recv() {
                break m;
            }
            assert!(Instant::now() < limit, "no chat message after the handover");
        };
        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(v["type"], "chat", "{msg}");
        assert_eq!(v["text"], "after the handover");
        client.join().unwrap();
    }
}
