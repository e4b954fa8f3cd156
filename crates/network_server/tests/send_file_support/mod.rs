//! A file-serving test application: every GET/HEAD is answered with
//! `http_send_file` from one root; `POST /upload…` streams a multipart body
//! into an upload directory; `GET /__stat` reports the server's state (the
//! last transfer's queued bytes, transfers and uploads in flight, cache
//! usage) so tests can watch memory bounds from outside.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use network_server::{
    Application, ClientId, CloseReason, Ctx, FileEvent, FileRootId, FileRootOptions, HttpEvent,
    OutBuf, ServerConfig, UploadDirId, UploadEvent, UploadOptions, UploadedPart, SEND_FILE_DONE,
};

use crate::common::{self, Running};

#[derive(Debug, Default)]
pub struct FileSeen {
    /// Send-file completions: Ok / Err.
    pub done_ok: u64,
    pub done_err: u64,
    /// Write callbacks that were not send-file completions.
    pub other_writes: u64,
    pub uploads: Vec<Result<Vec<UploadedPart>, (u16, String)>>,
    /// `PartStarted`: (index, name, filename).
    pub parts_started: Vec<(usize, String, Option<String>)>,
    pub closes: Vec<CloseReason>,
}

pub struct FileApp {
    pub root: FileRootId,
    pub uploads: UploadDirId,
    pub upload_opts: UploadOptions,
    pub seen: Arc<Mutex<FileSeen>>,
    last: Option<ClientId>,
}

impl Application for FileApp {
    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
        match ev {
            HttpEvent::Request(req) if req.path == "/__stat" => {
                let queued = self
                    .last
                    .and_then(|c| ctx.queued_bytes(c).ok())
                    .map_or(-1, |q| q as i64);
                let (cache_bytes, cache_entries) = ctx.file_cache_usage();
                let body = format!(
                    "{queued} {} {} {cache_bytes} {cache_entries}",
                    ctx.file_transfers_active(),
                    ctx.uploads_active()
                );
                ctx.http_respond(client, 200, &[], body).unwrap();
            }
            HttpEvent::Request(req) if req.method == "POST" && req.path.starts_with("/upload") => {
                ctx.http_upload_begin(client, req, self.uploads, self.upload_opts.clone())
                    .unwrap();
            }
            HttpEvent::Request(req) => {
                self.last = Some(client);
                ctx.http_send_file(client, self.root, req.path, req)
                    .unwrap();
            }
            HttpEvent::Body(chunk) => {
                if ctx.http_upload_active(client) {
                    ctx.http_upload_feed(client, chunk).unwrap();
                }
            }
            HttpEvent::BodyEnd => {
                if ctx.http_upload_active(client) {
                    ctx.http_upload_end(client).unwrap();
                }
            }
        }
    }

    fn on_http_write(
        &mut self,
        _ctx: &mut Ctx<'_>,
        _client: ClientId,
        bufs: Vec<OutBuf>,
        result: Result<(), network_server::Error>,
    ) {
        let mut seen = self.seen.lock().unwrap();
        let is_send_file = bufs.is_empty() || bufs == [OutBuf::Static(SEND_FILE_DONE)];
        match (is_send_file, result) {
            (true, Ok(())) => seen.done_ok += 1,
            (true, Err(_)) => seen.done_err += 1,
            (false, _) => seen.other_writes += 1,
        }
    }

    fn on_file(&mut self, ctx: &mut Ctx<'_>, ev: FileEvent) {
        if let FileEvent::Upload { client, event } = ev {
            match event {
                UploadEvent::Done(parts) => {
                    let mut body = String::new();
                    for p in &parts {
                        match &p.data {
                            network_server::UploadData::Field(v) => body.push_str(&format!(
                                "field {} {}\n",
                                p.name,
                                String::from_utf8_lossy(v)
                            )),
                            network_server::UploadData::File { path, size } => {
                                body.push_str(&format!(
                                    "file {} {} {} {}\n",
                                    p.name,
                                    p.filename.as_deref().unwrap_or(""),
                                    size,
                                    path.display()
                                ))
                            }
                        }
                    }
                    let _ = ctx.http_respond(client, 201, &[("Content-Type", "text/plain")], body);
                    self.seen.lock().unwrap().uploads.push(Ok(parts));
                }
                UploadEvent::Failed { status, reason } => {
                    self.seen
                        .lock()
                        .unwrap()
                        .uploads
                        .push(Err((status, reason)));
                }
                UploadEvent::PartStarted {
                    index,
                    name,
                    filename,
                    ..
                } => {
                    if name == "refuse" {
                        ctx.http_upload_abort(client, 403).unwrap();
                    }
                    let mut seen = self.seen.lock().unwrap();
                    seen.parts_started.push((index, name, filename));
                }
                _ => {}
            }
        }
    }

    fn on_http_close(&mut self, _ctx: &mut Ctx<'_>, _client: ClientId, reason: CloseReason) {
        self.seen.lock().unwrap().closes.push(reason);
    }
}

pub struct FileServer {
    pub server: Running,
    pub seen: Arc<Mutex<FileSeen>>,
    pub base: String,
}

/// Serves `root` (and uploads into `upload_dir`).
pub fn spawn_files(
    config: ServerConfig,
    root: PathBuf,
    opts: FileRootOptions,
    upload_dir: PathBuf,
    upload_opts: UploadOptions,
) -> FileServer {
    let seen = Arc::new(Mutex::new(FileSeen::default()));
    let s2 = seen.clone();
    let server = common::spawn(config, move |server| {
        let mut ctx = server.ctx();
        let root = ctx.file_root_open(&root, opts).unwrap();
        let uploads = ctx.upload_dir_open(&upload_dir).unwrap();
        FileApp {
            root,
            uploads,
            upload_opts,
            seen: s2,
            last: None,
        }
    });
    let base = format!("http://{}", server.addr);
    FileServer { server, seen, base }
}

/// The `/__stat` numbers: queued bytes of the last file client, transfers
/// active, uploads active, cache bytes, cache entries.
pub fn stat(fs: &FileServer) -> (i64, u64, u64, u64, u64) {
    let r = common::request(
        fs.server.addr,
        b"GET /__stat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let s = String::from_utf8(r.body).unwrap();
    let v: Vec<i64> = s.split(' ').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1] as u64, v[2] as u64, v[3] as u64, v[4] as u64)
}

/// Runs curl with a time bound; returns (status, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/install-test-deps");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
