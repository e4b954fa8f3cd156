//! Streaming `multipart/form-data` uploads (RFC 7578): the request body is
//! parsed as it arrives ([`protocol::Multipart`]), file parts are written to
//! new files in an upload directory through the ring, and ordinary fields
//! are kept in memory up to a limit. Nothing holds a whole part.
//!
//! Flow control: bytes waiting for the disk (parsed but not yet written)
//! are bounded by [`UploadOptions::max_buffered`]; past it the connection
//! stops reading (its multishot receive is cancelled) until the writes
//! catch up to half of it, so a body larger than memory streams at disk
//! speed.
//!
//! The application drives it from its HTTP read callback:
//!
//! ```no_run
//! use network_server::{Application, ClientId, Ctx, FileEvent, HttpEvent, UploadDirId,
//!     UploadEvent, UploadOptions};
//!
//! struct App { uploads: UploadDirId }
//! impl Application for App {
//!     fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, ev: HttpEvent<'_>) {
//!         match ev {
//!             HttpEvent::Request(req) if req.path == "/upload" && req.method == "POST" => {
//!                 let _ = ctx.http_upload_begin(client, req, self.uploads, UploadOptions::default());
//!             }
//!             HttpEvent::Request(_) => { let _ = ctx.http_respond(client, 404, &[], "no\n"); }
//!             HttpEvent::Body(chunk) => { let _ = ctx.http_upload_feed(client, chunk); }
//!             HttpEvent::BodyEnd => { let _ = ctx.http_upload_end(client); }
//!         }
//!     }
//!     fn on_file(&mut self, ctx: &mut Ctx<'_>, ev: FileEvent) {
//!         if let FileEvent::Upload { client, event: UploadEvent::Done(parts) } = ev {
//!             let _ = ctx.http_respond(client, 201, &[], format!("{} parts\n", parts.len()));
//!         }
//!         // UploadEvent::Failed: the server already answered (413/400/…).
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use event_manager::snapshot::SnapshotError;
use event_manager::{Completion, CompletionKind, EventManager, OpId, OutBuf, Pfd};
use protocol::{Multipart, MultipartEvent, MultipartLimits};
use serde::{Deserialize, Serialize};
use std::os::unix::ffi::OsStrExt;

use crate::app::FileEvent;
use crate::connections::{ClientKind, PauseReason, Phase, Proto};
use crate::http::RespState;
use crate::op_tag::{OpTag, UploadOp, UPLOAD_MAX_FILES};
use crate::server::Core;
use crate::{Application, ClientId, Ctx, Error, Request};

/// A directory uploads are written to, opened with [`Ctx::upload_dir_open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadDirId(u32);

impl UploadDirId {
    /// The id as a number, for an application's own state (an upload
    /// directory keeps its id across a handover).
    pub fn to_u64(self) -> u64 {
        u64::from(self.0)
    }

    /// The id [`to_u64`](UploadDirId::to_u64) gave, or `None` if `v` cannot
    /// be one. An id the server never opened is refused where it is used.
    pub fn from_u64(v: u64) -> Option<UploadDirId> {
        u32::try_from(v).ok().map(UploadDirId)
    }
}

/// Limits of one upload.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Part count, part-head size and total size limits (413 when crossed,
    /// 400 for malformed bodies). Default: [`MultipartLimits::default`]
    /// (1000 parts, 8 KiB heads, 1 GiB).
    pub limits: MultipartLimits,
    /// Largest non-file field kept in memory; larger → 413. Default 64 KiB.
    pub max_field_size: usize,
    /// Bytes parsed but not yet on disk beyond which the connection stops
    /// reading. Default 512 KiB.
    pub max_buffered: usize,
    /// Size of each disk write. Default 64 KiB.
    pub write_size: usize,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            limits: MultipartLimits::default(),
            max_field_size: 64 * 1024,
            max_buffered: 512 * 1024,
            write_size: 64 * 1024,
        }
    }
}

/// Longest client file name kept at the end of a stored file's name.
const MAX_KEPT_NAME: usize = 100;

/// The client's file name as it ends a stored file's name: its last path
/// segment ([`protocol::sanitize_filename`]), at most [`MAX_KEPT_NAME`]
/// bytes (cut in the middle of the stem, so the extension — and the
/// content type it gives when the file is served — stays). `None` when
/// nothing usable remains. So the listing of an upload directory can show
/// what was uploaded, and a file sent back gets its type from its name.
pub(crate) fn stored_suffix(filename: &str) -> Option<String> {
    let base = protocol::sanitize_filename(filename.as_bytes())?;
    let base = std::str::from_utf8(base).ok()?;
    if base.len() <= MAX_KEPT_NAME {
        return Some(base.to_string());
    }
    let (stem, ext) = match base.rfind('.') {
        Some(i) if base.len() - i <= 16 && i > 0 => (&base[..i], &base[i..]),
        _ => (base, ""),
    };
    let mut cut = MAX_KEPT_NAME - ext.len();
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}{ext}", &stem[..cut]))
}

/// One part of a finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    /// The form field name (`Content-Disposition` `name`, not
    /// percent-decoded; invalid UTF-8 replaced).
    pub name: String,
    /// The client's file name, as sent (never used as a path; see
    /// [`protocol::sanitize_filename`]). `None` for a plain field. A file
    /// is stored as `upload-PID-N-RANDOM-NAME`, NAME being this name's last
    /// segment (at most 100 bytes, its extension kept), so the upload
    /// directory shows what was uploaded and a file sent back takes its
    /// content type from its name.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if given.
    pub content_type: Option<String>,
    /// The field's value or where the file was stored.
    pub data: UploadData,
}

/// Where a part's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadData {
    /// A plain field, in memory.
    Field(Vec<u8>),
    /// A file part, written to a new file (mode 0600) with a server-chosen
    /// name in the upload directory.
    File {
        /// The new file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
}

/// What an upload reports, delivered as [`FileEvent::Upload`]: any number
/// of `PartStarted`, then exactly one `Done` or `Failed`.
#[derive(Debug)]
#[non_exhaustive]
pub enum UploadEvent {
    /// A part's head was parsed; its data is on its way to disk (file) or
    /// memory (field). Delivered shortly after (from the next completion),
    /// in part order. The application may refuse the upload with
    /// [`Ctx::http_upload_abort`].
    PartStarted {
        /// Index of the part in the form (0-based).
        index: usize,
        /// The form field name.
        name: String,
        /// The client's file name (`None` for a plain field).
        filename: Option<String>,
        /// The part's `Content-Type`, if given.
        content_type: Option<String>,
    },
    /// The whole form was received and every file is closed. Answer the
    /// request now.
    Done(Vec<UploadedPart>),
    /// The upload failed. If the connection is still open the server has
    /// answered with `status` (413, 400, 415, 500) and closes it; files
    /// created by this upload have been removed. Do not answer.
    Failed {
        /// The status answered (0 if the connection was already gone).
        status: u16,
        /// What went wrong.
        reason: String,
    },
}

#[derive(Debug)]
struct FileW {
    pfd: Option<Pfd>,
    path: PathBuf,
    /// Bytes not yet handed to a write.
    pending: Vec<u8>,
    /// Full chunks waiting for the open to finish.
    waiting: Vec<Vec<u8>>,
    off: u64,
    /// Writes in flight, with the offset each started at.
    flights: Vec<(OpId, u64)>,
    /// Tails of writes a quiesce cut short, with the offset each goes to
    /// (written before anything else after the resume).
    rewrite: Vec<(u64, Vec<u8>)>,
    /// Its open was cut short by a quiesce: submitted again after the
    /// resume (same name).
    reopen: bool,
    /// The part's data is complete.
    ended: bool,
    closing: bool,
    closed: bool,
    part: usize,
}

#[derive(Debug)]
enum Cur {
    None,
    Field(usize, Vec<u8>),
    File(u16),
}

#[derive(Debug)]
struct Upload {
    client: ClientId,
    dir: u32,
    parser: Option<Multipart>,
    opts: UploadOptions,
    parts: Vec<UploadedPart>,
    cur: Cur,
    files: Vec<FileW>,
    /// Operations in flight (opens, writes, closes, unlinks, nops, timers).
    ops: usize,
    /// Parsed bytes not yet written (pending + waiting + in flight).
    buffered: usize,
    paused: bool,
    body_ended: bool,
    /// `PartStarted` events waiting for the next completion.
    started: std::collections::VecDeque<UploadEvent>,
    /// A nop is in flight to deliver events.
    nop_armed: bool,
    /// Done or Failed delivered (or to be delivered by the next completion).
    outcome: Option<UploadEvent>,
    delivered: bool,
    failed: bool,
}

#[derive(Debug)]
struct Dir {
    pfd: Pfd,
    path: PathBuf,
}

/// Uploads in progress.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    dirs: Vec<Dir>,
    map: HashMap<u32, Upload>,
    by_client: HashMap<ClientId, u32>,
    next_key: u32,
    names: u64,
}

impl Drop for Uploads {
    /// Files of uploads that never completed (the server stopped while
    /// they were being written or cleaned up) are removed, so an upload
    /// directory never keeps a half-written file. Runs once, when the
    /// server is dropped, on the thread that owned it.
    fn drop(&mut self) {
        for up in self.map.values() {
            let completed = up.delivered && !up.failed;
            if completed {
                continue;
            }
            for f in &up.files {
                if !f.path.as_os_str().is_empty() {
                    let _ = std::fs::remove_file(&f.path);
                }
            }
        }
    }
}

/// Most files one upload creates (each file's operations are tagged with
/// its index; see `op_tag.rs`).
const MAX_FILES: usize = UPLOAD_MAX_FILES;

/// An upload's operation tag.
fn op(upload: u32, op: UploadOp) -> u64 {
    OpTag::Upload { upload, op }.encode()
}

/// Submits the removal of an upload's file; `true` if an operation is in
/// flight. While quiescing (nothing is submitted) the file is removed at
/// once instead, so that no failed upload leaves one behind.
fn unlink(em: &mut EventManager, path: &Path, tag: u64) -> bool {
    match em.unlink(path, false, tag) {
        Ok(_) => true,
        Err(event_manager::Error::Quiescing) => {
            let _ = std::fs::remove_file(path);
            false
        }
        Err(_) => false,
    }
}

/// The operation tag of an upload's file `id` (`< MAX_FILES`).
fn file_op(upload: u32, id: usize) -> u64 {
    op(upload, UploadOp::File(id as u16))
}

impl Ctx<'_> {
    /// Opens a directory for uploads (synchronously: call it at start-up).
    /// Files are created in it with `openat2(dir, name, O_CREAT | O_EXCL,
    /// RESOLVE_BENEATH)` under names the server picks.
    pub fn upload_dir_open(&mut self, dir: &Path) -> Result<UploadDirId, std::io::Error> {
        let path = std::fs::canonicalize(dir)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)?;
        let pfd = self
            .em
            .adopt(std::os::fd::OwnedFd::from(file))
            .map_err(std::io::Error::from)?;
        let dirs = &mut self.core.transfers.uploads.dirs;
        dirs.push(Dir { pfd, path });
        Ok(UploadDirId(dirs.len() as u32 - 1))
    }

    /// Starts receiving the body of the current request (a `POST` with a
    /// `multipart/form-data` body) into `dir`. Feed the body with
    /// [`Ctx::http_upload_feed`] and [`Ctx::http_upload_end`]; exactly one
    /// [`FileEvent::Upload`] follows (`Done` or `Failed`). A request whose
    /// `Content-Type` is not `multipart/form-data` fails with 415 (400 for
    /// a bad boundary).
    pub fn http_upload_begin(
        &mut self,
        client: ClientId,
        req: &Request<'_>,
        dir: UploadDirId,
        opts: UploadOptions,
    ) -> Result<(), Error> {
        self.writable(client, ClientKind::Http, 0)?;
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        let Proto::Http(h) = &conn.proto else {
            return Err(Error::WrongProtocol(client));
        };
        if h.resp != RespState::Pending {
            return Err(Error::AlreadyResponded(client));
        }
        let ups = &mut self.core.transfers.uploads;
        if dir.0 as usize >= ups.dirs.len() || ups.by_client.contains_key(&client) {
            return Err(Error::Io(event_manager::Error::NotFound));
        }
        let parser = req
            .header("content-type")
            .ok_or(protocol::MultipartError::NotFormData)
            .and_then(protocol::boundary_from_content_type)
            .and_then(|b| Multipart::new(b, &opts.limits));
        let key = ups.next_key;
        ups.next_key = ups.next_key.wrapping_add(1);
        let body_ended = !req.body.has_body();
        ups.map.insert(
            key,
            Upload {
                client,
                dir: dir.0,
                parser: parser.as_ref().ok().cloned(),
                opts,
                parts: Vec::new(),
                cur: Cur::None,
                files: Vec::new(),
                ops: 0,
                buffered: 0,
                paused: false,
                body_ended,
                started: Default::default(),
                nop_armed: false,
                outcome: None,
                delivered: false,
                failed: false,
            },
        );
        ups.by_client.insert(client, key);
        match parser {
            Err(e) => self.core.upload_fail(self.em, key, e.status(), e.as_str()),
            Ok(_) if body_ended => self.core.upload_fail(self.em, key, 400, "no body"),
            Ok(_) => {}
        }
        Ok(())
    }

    /// Feeds the next piece of the request body (from
    /// [`crate::HttpEvent::Body`]) to the upload of `client`.
    pub fn http_upload_feed(&mut self, client: ClientId, chunk: &[u8]) -> Result<(), Error> {
        let key = self.upload_key(client)?;
        self.core.upload_feed(self.em, key, chunk);
        Ok(())
    }

    /// The request body ended ([`crate::HttpEvent::BodyEnd`]).
    pub fn http_upload_end(&mut self, client: ClientId) -> Result<(), Error> {
        let key = self.upload_key(client)?;
        let up = self
            .core
            .transfers
            .uploads
            .map
            .get_mut(&key)
            .expect("indexed");
        up.body_ended = true;
        if !up.failed {
            if let Err(e) = up.parser.as_ref().expect("parser").finish() {
                self.core.upload_fail(self.em, key, e.status(), e.as_str());
                return Ok(());
            }
        }
        self.core.upload_check_done(self.em, key);
        Ok(())
    }

    /// Refuses the upload of `client` (e.g. after a `PartStarted` the
    /// application does not want): answers `status` and closes, removes
    /// its files; `Failed` follows.
    pub fn http_upload_abort(&mut self, client: ClientId, status: u16) -> Result<(), Error> {
        let key = self.upload_key(client)?;
        self.core
            .upload_fail(self.em, key, status, "refused by the application");
        Ok(())
    }

    /// The key of `client`'s upload (`NoRequest` if it has none).
    fn upload_key(&self, client: ClientId) -> Result<u32, Error> {
        self.core
            .transfers
            .uploads
            .by_client
            .get(&client)
            .copied()
            .ok_or(Error::NoRequest(client))
    }

    /// Whether `client` has an upload in progress.
    pub fn http_upload_active(&self, client: ClientId) -> bool {
        self.core.transfers.uploads.by_client.contains_key(&client)
    }
}

enum Act {
    None,
    More,
    Open(u16),
    Fail(u16, &'static str),
}

impl Core {
    fn upload_feed(&mut self, em: &mut EventManager, key: u32, mut input: &[u8]) {
        loop {
            let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
                return;
            };
            if up.failed {
                return;
            }
            let Upload {
                parser,
                parts,
                cur,
                files,
                opts,
                buffered,
                started,
                ..
            } = up;
            let parser = parser.as_mut().expect("parser");
            let (consumed, act) = match parser.feed(input) {
                Err(e) => (input.len(), Act::Fail(e.status(), e.as_str())),
                Ok(step) => {
                    let act = match step.event {
                        MultipartEvent::NeedMore | MultipartEvent::End => Act::More,
                        MultipartEvent::PartStart(p) => {
                            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                            let part = UploadedPart {
                                name: s(p.name),
                                filename: p.filename.map(s),
                                content_type: p.content_type.map(s),
                                data: UploadData::Field(Vec::new()),
                            };
                            let index = parts.len();
                            let is_file = part.filename.is_some();
                            started.push_back(UploadEvent::PartStarted {
                                index,
                                name: part.name.clone(),
                                filename: part.filename.clone(),
                                content_type: part.content_type.clone(),
                            });
                            parts.push(part);
                            if !is_file {
                                *cur = Cur::Field(index, Vec::new());
                                Act::None
                            } else if files.len() >= MAX_FILES {
                                Act::Fail(413, "too many files")
                            } else {
                                let id = files.len() as u16;
                                files.push(FileW {
                                    pfd: None,
                                    path: PathBuf::new(),
                                    pending: Vec::new(),
                                    waiting: Vec::new(),
                                    off: 0,
                                    flights: Vec::new(),
                                    rewrite: Vec::new(),
                                    reopen: false,
                                    ended: false,
                                    closing: false,
                                    closed: false,
                                    part: index,
                                });
                                *cur = Cur::File(id);
                                Act::Open(id)
                            }
                        }
                        MultipartEvent::PartData(d) => match cur {
                            Cur::Field(_, v) if v.len() + d.len() > opts.max_field_size => {
                                Act::Fail(413, "form field too large")
                            }
                            Cur::Field(_, v) => {
                                v.extend_from_slice(d);
                                Act::None
                            }
                            Cur::File(id) => {
                                let f = &mut files[*id as usize];
                                if f.pending.capacity() == 0 {
                                    f.pending.reserve_exact(opts.write_size);
                                }
                                f.pending.extend_from_slice(d);
                                *buffered += d.len();
                                Act::None
                            }
                            Cur::None => Act::None,
                        },
                        MultipartEvent::PartEnd => {
                            match std::mem::replace(cur, Cur::None) {
                                Cur::Field(i, v) => parts[i].data = UploadData::Field(v),
                                Cur::File(id) => files[id as usize].ended = true,
                                Cur::None => {}
                            }
                            Act::None
                        }
                    };
                    (step.consumed, act)
                }
            };
            input = &input[consumed..];
            match act {
                Act::Fail(status, why) => return self.upload_fail(em, key, status, why),
                Act::Open(id) => self.upload_open(em, key, id),
                Act::None => {}
                Act::More => {
                    self.upload_write_all(em, key, false);
                    break;
                }
            }
            self.upload_write_all(em, key, false);
            if input.is_empty() {
                // Events may still be due with no input (e.g. PartEnd);
                // the parser returns NeedMore when there are none.
                continue;
            }
        }
        let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
            return;
        };
        // Part events reach the application from the next completion.
        if !up.started.is_empty() && !up.nop_armed {
            up.nop_armed = true;
            up.ops += 1;
            em.nop(op(key, UploadOp::Deliver));
        }
        // Flow control.
        if !up.paused && up.buffered > up.opts.max_buffered {
            up.paused = true;
            let client = up.client;
            self.set_pause(em, client, PauseReason::Upload, true);
        }
    }

    /// Creates file `id` of upload `key` in the upload directory, named
    /// `upload-PID-N-RANDOM`, followed by `-` and the client's file name
    /// when it has a usable one ([`stored_suffix`]).
    fn upload_open(&mut self, em: &mut EventManager, key: u32, id: u16) {
        let ups = &mut self.transfers.uploads;
        ups.names += 1;
        let rnd = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(ups.names)
        };
        let mut name = format!("upload-{}-{}-{:016x}", std::process::id(), ups.names, rnd);
        let up = ups.map.get_mut(&key).expect("caller checked");
        let part = up.files[id as usize].part;
        if let Some(kept) = up.parts[part].filename.as_deref().and_then(stored_suffix) {
            name.push('-');
            name.push_str(&kept);
        }
        let dir = &ups.dirs[up.dir as usize];
        up.files[id as usize].path = dir.path.join(name);
        self.upload_submit_open(em, key, id);
    }

    /// Submits the `openat2` creating file `id` of upload `key` (its path
    /// is chosen), or keeps it for the resume while quiescing.
    fn upload_submit_open(&mut self, em: &mut EventManager, key: u32, id: u16) {
        let ups = &mut self.transfers.uploads;
        let up = ups.map.get_mut(&key).expect("caller checked");
        let dir = &ups.dirs[up.dir as usize];
        let f = &mut up.files[id as usize];
        if self.quiescing {
            f.reopen = true;
            return;
        }
        f.reopen = false;
        let name = f.path.file_name().map(Path::new).unwrap_or(Path::new(""));
        let r = em.open_beneath(
            dir.pfd,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
            op(key, UploadOp::File(id)),
        );
        match r {
            Ok(_) => up.ops += 1,
            Err(_) => self.upload_fail(em, key, 500, "cannot create upload file"),
        }
    }

    /// Submits writes: full chunks (or everything, at a part's end) of each
    /// open file.
    fn upload_write_all(&mut self, em: &mut EventManager, key: u32, _force: bool) {
        let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
            return;
        };
        if up.failed || self.quiescing {
            // While quiescing the bytes wait (the resume writes them).
            return;
        }
        let ws = up.opts.write_size;
        let mut close = Vec::new();
        let mut refused = false;
        for (id, f) in up.files.iter_mut().enumerate() {
            if f.closing || f.closed {
                continue;
            }
            if f.pending.len() >= ws || (f.ended && !f.pending.is_empty()) {
                let buf = std::mem::take(&mut f.pending);
                f.waiting.push(buf);
            }
            let Some(pfd) = f.pfd else { continue };
            let tag = file_op(key, id);
            if !f.rewrite.is_empty() {
                for (off, buf) in std::mem::take(&mut f.rewrite) {
                    match em.write(pfd, OutBuf::Vec(buf), Some(off), tag) {
                        Ok(op) => {
                            f.flights.push((op, off));
                            up.ops += 1;
                        }
                        Err(_) => refused = true,
                    }
                }
            }
            for buf in f.waiting.drain(..) {
                let len = buf.len() as u64;
                match em.write(pfd, OutBuf::Vec(buf), Some(f.off), tag) {
                    Ok(op) => {
                        f.flights.push((op, f.off));
                        f.off += len;
                        up.ops += 1;
                    }
                    Err(_) => refused = true,
                }
            }
            if f.ended
                && f.pending.is_empty()
                && f.waiting.is_empty()
                && f.rewrite.is_empty()
                && f.flights.is_empty()
            {
                f.closing = true;
                close.push((id, pfd));
            }
        }
        if refused {
            return self.upload_fail(em, key, 500, "write refused");
        }
        for (id, pfd) in close {
            if em.close(pfd, file_op(key, id)).is_ok() {
                up.ops += 1;
            }
        }
    }

    /// A completion of an upload operation.
    pub(crate) fn on_upload_op<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        ukey: u32,
        op: UploadOp,
        c: Completion,
    ) {
        let quiescing = self.quiescing;
        let Some(up) = self.transfers.uploads.map.get_mut(&ukey) else {
            return;
        };
        up.ops = up.ops.saturating_sub(1);
        match (op, c.kind) {
            (UploadOp::Deliver, _) => up.nop_armed = false,
            (
                UploadOp::File(n),
                CompletionKind::Open {
                    result: Err(event_manager::Error::Cancelled),
                    ..
                },
            ) if quiescing && !up.failed => {
                // Cut short for a quiesce (nothing was created): opened
                // again after the resume.
                up.files[n as usize].reopen = true;
            }
            (
                UploadOp::File(n),
                CompletionKind::Unlink {
                    result: Err(event_manager::Error::Cancelled),
                    ..
                },
            ) if quiescing => {
                // A failed upload's file, whose removal a quiesce cut
                // short: removed now (nothing is submitted while quiescing).
                let _ = std::fs::remove_file(&up.files[n as usize].path);
            }
            (UploadOp::File(n), CompletionKind::Open { result, .. }) => {
                let id = n as usize;
                match result {
                    Ok(pfd) if !up.failed => {
                        up.files[id].pfd = Some(pfd);
                        self.upload_write_all(em, ukey, false);
                    }
                    Ok(pfd) => {
                        // Failed while the open was in flight: the unlink
                        // submitted then may have run first; remove again.
                        up.files[id].pfd = Some(pfd);
                        up.files[id].closing = true;
                        if em.close(pfd, file_op(ukey, id)).is_ok() {
                            up.ops += 1;
                        }
                        let path = up.files[id].path.clone();
                        if unlink(em, &path, file_op(ukey, id)) {
                            up.ops += 1;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot create upload file");
                        up.files[id].closed = true;
                        self.upload_fail(em, ukey, 500, "cannot create upload file");
                    }
                }
            }
            (
                UploadOp::File(n),
                CompletionKind::Write {
                    buf,
                    written,
                    result,
                    ..
                },
            ) => {
                let id = n as usize;
                let f = &mut up.files[id];
                let at = f.flights.iter().position(|&(o, _)| o == c.op);
                let start = at.map(|i| f.flights.swap_remove(i).1);
                if let (true, Err(event_manager::Error::Cancelled), Some(start), false) =
                    (quiescing, &result, start, up.failed)
                {
                    // Cut short for a quiesce: what was written counts, the
                    // rest is written again after the resume.
                    let written = written.min(buf.len());
                    up.buffered = up.buffered.saturating_sub(written);
                    if written < buf.len() {
                        let mut rest = match buf {
                            OutBuf::Vec(v) => v,
                            other => other.as_slice().to_vec(),
                        };
                        rest.drain(..written);
                        f.rewrite.push((start + written as u64, rest));
                    }
                    self.upload_check_done(em, ukey);
                    return self.upload_deliver(em, app, ukey);
                }
                up.buffered = up.buffered.saturating_sub(buf.len());
                if let Err(e) = result {
                    if !up.failed {
                        tracing::warn!(error = %e, "upload write failed");
                        let status = if e.errno() == Some(libc::ENOSPC) {
                            507
                        } else {
                            500
                        };
                        self.upload_fail(em, ukey, status, "write failed");
                    }
                } else {
                    self.upload_write_all(em, ukey, false);
                    self.upload_resume(em, ukey);
                }
            }
            (UploadOp::File(n), CompletionKind::Close { .. }) => {
                let id = n as usize;
                let f = &mut up.files[id];
                f.closed = true;
                f.pfd = None;
                if !up.failed {
                    let (part, path, size) = (f.part, f.path.clone(), f.off);
                    up.parts[part].data = UploadData::File { path, size };
                }
            }
            (_, other) => tracing::trace!(?other, "upload completion"),
        }
        self.upload_check_done(em, ukey);
        self.upload_deliver(em, app, ukey);
    }

    /// Reading resumes once the writes have caught up to half the bound.
    fn upload_resume(&mut self, em: &mut EventManager, key: u32) {
        let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
            return;
        };
        if !up.paused || up.buffered > up.opts.max_buffered / 2 {
            return;
        }
        let client = up.client;
        up.paused = false;
        // A receive still being cancelled is re-armed when its end arrives
        // (`Core::update_recv`).
        self.set_pause(em, client, PauseReason::Upload, false);
    }

    /// Everything received and stored: the outcome is `Done`.
    fn upload_check_done(&mut self, em: &mut EventManager, key: u32) {
        let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
            return;
        };
        if up.failed || up.outcome.is_some() || up.delivered || !up.body_ended {
            return;
        }
        if !up.files.iter().all(|f| f.closed) {
            return;
        }
        up.outcome = Some(UploadEvent::Done(std::mem::take(&mut up.parts)));
        // Deliver from a completion (the application is reachable there).
        em.nop(op(key, UploadOp::Deliver));
        up.ops += 1;
    }

    /// Fails the upload: answers `status` and closes (if nothing was
    /// answered yet), removes the files it created, and arranges for
    /// `Failed` to be delivered.
    pub(crate) fn upload_fail(&mut self, em: &mut EventManager, key: u32, status: u16, why: &str) {
        let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
            return;
        };
        if up.failed {
            return;
        }
        up.failed = true;
        let client = up.client;
        tracing::debug!(%client, status, why, "upload failed");
        for (id, f) in up.files.iter_mut().enumerate() {
            let tag = file_op(key, id);
            if let (Some(pfd), false) = (f.pfd, f.closing) {
                f.closing = true;
                if em.close(pfd, tag).is_ok() {
                    up.ops += 1;
                }
            }
            if !f.path.as_os_str().is_empty() && unlink(em, &f.path, tag) {
                up.ops += 1;
            }
            f.pending = Vec::new();
            f.waiting.clear();
            f.rewrite.clear();
            f.reopen = false;
        }
        let answered = match self.conn(client) {
            Some(c) if c.phase == Phase::Open => {
                let pending = matches!(&c.proto, Proto::Http(h) if h.resp == RespState::Pending);
                if pending {
                    self.http_error(em, client, status);
                } else {
                    self.hard_close(em, client, Some(crate::CloseReason::ProtocolError(status)));
                }
                status
            }
            _ => 0,
        };
        let up = self.transfers.uploads.map.get_mut(&key).expect("present");
        up.outcome = Some(UploadEvent::Failed {
            status: answered,
            reason: why.to_string(),
        });
        let was_paused = std::mem::replace(&mut up.paused, false);
        em.nop(op(key, UploadOp::Deliver));
        up.ops += 1;
        if was_paused {
            self.set_pause(em, client, PauseReason::Upload, false);
        }
    }

    /// Hands the outcome to the application, once; forgets the upload when
    /// nothing of it is in flight.
    fn upload_deliver<A: Application>(&mut self, em: &mut EventManager, app: &mut A, key: u32) {
        let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
            return;
        };
        let client = up.client;
        // Part events first, one at a time (the application may abort the
        // upload from any of them).
        while let Some(event) = self
            .transfers
            .uploads
            .map
            .get_mut(&key)
            .and_then(|u| u.started.pop_front())
        {
            self.guard(em, Some(client), "on_file", |ctx| {
                app.on_file(ctx, FileEvent::Upload { client, event })
            });
        }
        let Some(up) = self.transfers.uploads.map.get_mut(&key) else {
            return;
        };
        if let Some(event) = up.outcome.take() {
            up.delivered = true;
            if self.transfers.uploads.by_client.get(&client) == Some(&key) {
                self.transfers.uploads.by_client.remove(&client);
            }
            self.guard(em, Some(client), "on_file", |ctx| {
                app.on_file(ctx, FileEvent::Upload { client, event })
            });
        }
        let Some(up) = self.transfers.uploads.map.get(&key) else {
            return;
        };
        if up.delivered && up.ops == 0 {
            self.transfers.uploads.map.remove(&key);
        }
    }

    /// The connection of an upload closed: fail it now.
    pub(crate) fn upload_on_closed<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
    ) {
        let Some(&key) = self.transfers.uploads.by_client.get(&pfd) else {
            return;
        };
        self.upload_fail(em, key, 0, "connection closed");
        self.upload_deliver(em, app, key);
    }

    /// Uploads in progress (tests).
    pub(crate) fn uploads_active(&self) -> usize {
        self.transfers.uploads.map.len()
    }
}

// ----- handover ---------------------------------------------------------------

/// Upload directories and uploads in progress as plain data (part of
/// `send_file::FilesV1`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct UploadsV1 {
    dirs: Vec<DirV1>,
    uploads: Vec<UploadV1>,
    next_key: u32,
    names: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DirV1 {
    pfd: u64,
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadV1 {
    key: u32,
    client: u64,
    dir: u32,
    parser: Option<protocol::MultipartState>,
    /// `MultipartLimits`: parts, part head size, total size, field name.
    limits: (u64, u64, u64, u64),
    max_field_size: u64,
    max_buffered: u64,
    write_size: u64,
    parts: Vec<PartV1>,
    cur: CurV1,
    files: Vec<FileV1>,
    /// Deliver no-ops the event manager keeps suspended for it.
    ops: u32,
    buffered: u64,
    paused: bool,
    body_ended: bool,
    started: Vec<StartedV1>,
    nop_armed: bool,
    outcome: Option<OutcomeV1>,
    delivered: bool,
    failed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartV1 {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: DataV1,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum DataV1 {
    Field(#[serde(with = "serde_bytes")] Vec<u8>),
    File {
        #[serde(with = "serde_bytes")]
        path: Vec<u8>,
        size: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum CurV1 {
    None,
    Field(u64, #[serde(with = "serde_bytes")] Vec<u8>),
    File(u16),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StartedV1 {
    index: u64,
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum OutcomeV1 {
    Done(Vec<PartV1>),
    Failed { status: u16, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileV1 {
    pfd: Option<u64>,
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pending: Vec<u8>,
    waiting: Vec<serde_bytes::ByteBuf>,
    rewrite: Vec<(u64, serde_bytes::ByteBuf)>,
    off: u64,
    reopen: bool,
    ended: bool,
    closing: bool,
    closed: bool,
    part: u64,
}

/// Most upload operations (suspended deliver no-ops) one upload may claim
/// in a snapshot.
const MAX_SNAPSHOT_OPS: u32 = 1 << 16;

fn invalid(m: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(m.into())
}

fn bytes_of(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

fn path_of(b: &[u8]) -> PathBuf {
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

fn part_v1(p: &UploadedPart) -> PartV1 {
    PartV1 {
        name: p.name.clone(),
        filename: p.filename.clone(),
        content_type: p.content_type.clone(),
        data: match &p.data {
            UploadData::Field(v) => DataV1::Field(v.clone()),
            UploadData::File { path, size } => DataV1::File {
                path: bytes_of(path),
                size: *size,
            },
        },
    }
}

fn part_of(p: PartV1) -> UploadedPart {
    UploadedPart {
        name: p.name,
        filename: p.filename,
        content_type: p.content_type,
        data: match p.data {
            DataV1::Field(v) => UploadData::Field(v),
            DataV1::File { path, size } => UploadData::File {
                path: path_of(&path),
                size,
            },
        },
    }
}

fn limits_of(l: (u64, u64, u64, u64)) -> MultipartLimits {
    let mut m = MultipartLimits::default();
    m.max_parts = l.0 as usize;
    m.max_part_header_size = l.1 as usize;
    m.max_total_size = l.2;
    m.max_field_name_len = l.3 as usize;
    m
}

impl Uploads {
    /// The uploads of a quiesced server: every file operation has come
    /// back then (a write cut short keeps its unwritten tail in
    /// `rewrite`); only deliver no-ops may be suspended.
    pub(crate) fn export(&self) -> Result<UploadsV1, Error> {
        let mut keys: Vec<u32> = self.map.keys().copied().collect();
        keys.sort_unstable();
        let mut uploads = Vec::with_capacity(keys.len());
        for key in keys {
            let up = &self.map[&key];
            if up
                .files
                .iter()
                .any(|f| !f.flights.is_empty() || (f.closing && !f.closed))
            {
                return Err(Error::Handover("an upload has a file operation in flight"));
            }
            let l = up.opts.limits;
            uploads.push(UploadV1 {
                key,
                client: up.client.to_u64(),
                dir: up.dir,
                parser: up.parser.as_ref().map(Multipart::export),
                limits: (
                    l.max_parts as u64,
                    l.max_part_header_size as u64,
                    l.max_total_size,
                    l.max_field_name_len as u64,
                ),
                max_field_size: up.opts.max_field_size as u64,
                max_buffered: up.opts.max_buffered as u64,
                write_size: up.opts.write_size as u64,
                parts: up.parts.iter().map(part_v1).collect(),
                cur: match &up.cur {
                    Cur::None => CurV1::None,
                    Cur::Field(i, v) => CurV1::Field(*i as u64, v.clone()),
                    Cur::File(id) => CurV1::File(*id),
                },
                files: up
                    .files
                    .iter()
                    .map(|f| FileV1 {
                        pfd: f.pfd.map(Pfd::to_u64),
                        path: bytes_of(&f.path),
                        pending: f.pending.clone(),
                        waiting: f.waiting.iter().map(|b| b.clone().into()).collect(),
                        rewrite: f
                            .rewrite
                            .iter()
                            .map(|(o, b)| (*o, b.clone().into()))
                            .collect(),
                        off: f.off,
                        reopen: f.reopen,
                        ended: f.ended,
                        closing: f.closing,
                        closed: f.closed,
                        part: f.part as u64,
                    })
                    .collect(),
                ops: up.ops as u32,
                buffered: up.buffered as u64,
                paused: up.paused,
                body_ended: up.body_ended,
                started: up
                    .started
                    .iter()
                    .filter_map(|e| match e {
                        UploadEvent::PartStarted {
                            index,
                            name,
                            filename,
                            content_type,
                        } => Some(StartedV1 {
                            index: *index as u64,
                            name: name.clone(),
                            filename: filename.clone(),
                            content_type: content_type.clone(),
                        }),
                        _ => None,
                    })
                    .collect(),
                nop_armed: up.nop_armed,
                outcome: match &up.outcome {
                    None => None,
                    Some(UploadEvent::Done(parts)) => {
                        Some(OutcomeV1::Done(parts.iter().map(part_v1).collect()))
                    }
                    Some(UploadEvent::Failed { status, reason }) => Some(OutcomeV1::Failed {
                        status: *status,
                        reason: reason.clone(),
                    }),
                    Some(UploadEvent::PartStarted { .. }) => {
                        return Err(Error::Handover("an upload's outcome is a part event"))
                    }
                },
                delivered: up.delivered,
                failed: up.failed,
            });
        }
        Ok(UploadsV1 {
            dirs: self
                .dirs
                .iter()
                .map(|d| DirV1 {
                    pfd: d.pfd.to_u64(),
                    path: bytes_of(&d.path),
                })
                .collect(),
            uploads,
            next_key: self.next_key,
            names: self.names,
        })
    }

    /// After an export, when the server is released: the uploads belong
    /// to the importing server now, so this one's `Drop` must not remove
    /// their files.
    pub(crate) fn forget(&mut self) {
        self.map.clear();
        self.by_client.clear();
    }
}

/// Checks what [`Core::import_uploads`] would build, short of the
/// descriptors.
pub(crate) fn check_uploads(v: &UploadsV1) -> Result<(), SnapshotError> {
    let mut keys = std::collections::HashSet::new();
    let mut clients = std::collections::HashSet::new();
    for up in &v.uploads {
        let what = format!("upload {}", up.key);
        if !keys.insert(up.key) {
            return Err(invalid(format!("{what} twice")));
        }
        if !up.delivered && !clients.insert(up.client) {
            return Err(invalid(format!("{what}: a second upload of its client")));
        }
        if up.dir as usize >= v.dirs.len() {
            return Err(invalid(format!("{what}: directory {}", up.dir)));
        }
        if up.ops > MAX_SNAPSHOT_OPS {
            return Err(invalid(format!("{what}: {} operations", up.ops)));
        }
        if up.write_size == 0 || up.files.len() > MAX_FILES {
            return Err(invalid(format!("{what}: write size or file count")));
        }
        match &up.parser {
            Some(st) => {
                Multipart::import(st.clone(), &limits_of(up.limits))
                    .map_err(|e| invalid(format!("{what}: parser: {e}")))?;
            }
            None if !up.failed => return Err(invalid(format!("{what}: no parser"))),
            None => {}
        }
        let nparts = up.parts.len() as u64;
        match &up.cur {
            CurV1::Field(i, _) if *i >= nparts => {
                return Err(invalid(format!("{what}: current field {i}")))
            }
            CurV1::File(id) if *id as usize >= up.files.len() => {
                return Err(invalid(format!("{what}: current file {id}")))
            }
            _ => {}
        }
        if up.started.iter().any(|s| s.index >= nparts) && up.outcome.is_none() {
            return Err(invalid(format!("{what}: part event index")));
        }
        let mut pfds = std::collections::HashSet::new();
        for f in &up.files {
            if f.part >= nparts && !matches!(up.outcome, Some(OutcomeV1::Done(_))) {
                return Err(invalid(format!("{what}: file of part {}", f.part)));
            }
            if f.path.is_empty() && (f.pfd.is_some() || f.reopen) {
                return Err(invalid(format!("{what}: file without a path")));
            }
            if f.pfd.is_some_and(|p| !pfds.insert(p)) || (f.pfd.is_some() && f.closed) {
                return Err(invalid(format!("{what}: file pfd")));
            }
            for (o, b) in &f.rewrite {
                if o.checked_add(b.len() as u64).is_none_or(|end| end > f.off) {
                    return Err(invalid(format!("{what}: rewrite past the file's end")));
                }
            }
            if f.off.checked_add(f.pending.len() as u64).is_none() {
                return Err(invalid(format!("{what}: offset")));
            }
        }
    }
    Ok(())
}

impl Core {
    /// Takes over upload directories and uploads (see
    /// `Core::import_files`); `claimed` are the pfds already taken.
    pub(crate) fn import_uploads(
        &mut self,
        em: &EventManager,
        claimed: &mut std::collections::HashSet<u64>,
        v: UploadsV1,
    ) -> Result<(), SnapshotError> {
        use crate::handover::{claim_file_pfd, FileKind};
        check_uploads(&v)?;
        let ups = &mut self.transfers.uploads;
        for d in v.dirs {
            let pfd = claim_file_pfd(em, claimed, d.pfd, FileKind::Dir, "upload directory")?;
            ups.dirs.push(Dir {
                pfd,
                path: path_of(&d.path),
            });
        }
        for u in v.uploads {
            let client = Pfd::from_u64(u.client);
            if !u.delivered {
                let http = self
                    .conns
                    .get(client)
                    .is_some_and(|c| matches!(c.proto, Proto::Http(_)));
                let failed_and_gone = u.failed && self.conns.get(client).is_none();
                if !http && !failed_and_gone {
                    return Err(invalid(format!(
                        "upload {}: client {client} is not an HTTP connection",
                        u.key
                    )));
                }
            }
            let limits = limits_of(u.limits);
            let parser = match u.parser {
                Some(st) => Some(
                    Multipart::import(st, &limits)
                        .map_err(|e| invalid(format!("upload {}: parser: {e}", u.key)))?,
                ),
                None => None,
            };
            let mut files = Vec::with_capacity(u.files.len());
            for f in u.files {
                let pfd = match f.pfd {
                    Some(raw) => Some(claim_file_pfd(
                        em,
                        claimed,
                        raw,
                        FileKind::Regular,
                        "uploaded file",
                    )?),
                    None => None,
                };
                files.push(FileW {
                    pfd,
                    path: path_of(&f.path),
                    pending: f.pending,
                    waiting: f.waiting.into_iter().map(|b| b.into_vec()).collect(),
                    off: f.off,
                    flights: Vec::new(),
                    rewrite: f
                        .rewrite
                        .into_iter()
                        .map(|(o, b)| (o, b.into_vec()))
                        .collect(),
                    reopen: f.reopen,
                    ended: f.ended,
                    closing: f.closing,
                    closed: f.closed,
                    part: f.part as usize,
                });
            }
            let ups = &mut self.transfers.uploads;
            if !u.delivered && self.conns.get(client).is_some() {
                ups.by_client.insert(client, u.key);
            }
            ups.map.insert(
                u.key,
                Upload {
                    client,
                    dir: u.dir,
                    parser,
                    opts: UploadOptions {
                        limits,
                        max_field_size: u.max_field_size as usize,
                        max_buffered: u.max_buffered as usize,
                        write_size: u.write_size as usize,
                    },
                    parts: u.parts.into_iter().map(part_of).collect(),
                    cur: match u.cur {
                        CurV1::None => Cur::None,
                        CurV1::Field(i, v) => Cur::Field(i as usize, v),
                        CurV1::File(id) => Cur::File(id),
                    },
                    files,
                    ops: u.ops as usize,
                    buffered: u.buffered as usize,
                    paused: u.paused,
                    body_ended: u.body_ended,
                    started: u
                        .started
                        .into_iter()
                        .map(|s| UploadEvent::PartStarted {
                            index: s.index as usize,
                            name: s.name,
                            filename: s.filename,
                            content_type: s.content_type,
                        })
                        .collect(),
                    nop_armed: u.nop_armed,
                    outcome: u.outcome.map(|o| match o {
                        OutcomeV1::Done(parts) => {
                            UploadEvent::Done(parts.into_iter().map(part_of).collect())
                        }
                        OutcomeV1::Failed { status, reason } => {
                            UploadEvent::Failed { status, reason }
                        }
                    }),
                    delivered: u.delivered,
                    failed: u.failed,
                },
            );
        }
        let ups = &mut self.transfers.uploads;
        ups.next_key = v.next_key;
        ups.names = v.names;
        Ok(())
    }

    /// After a resume (or an import): files whose creation the quiesce cut
    /// short are created, bytes that waited (and tails of writes cut
    /// short) are written, files complete are closed, flow control is
    /// brought up to date.
    pub(crate) fn resume_uploads(&mut self, em: &mut EventManager) {
        let mut keys: Vec<u32> = self.transfers.uploads.map.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            let Some(up) = self.transfers.uploads.map.get(&key) else {
                continue;
            };
            if up.failed {
                continue;
            }
            let reopen: Vec<u16> = (up.files.iter().enumerate())
                .filter(|(_, f)| f.reopen)
                .map(|(i, _)| i as u16)
                .collect();
            for id in reopen {
                self.upload_submit_open(em, key, id);
            }
            self.upload_write_all(em, key, false);
            self.upload_resume(em, key);
            self.upload_check_done(em, key);
        }
    }
}

impl Ctx<'_> {
    /// Uploads not yet finished (including ones cleaning up).
    pub fn uploads_active(&self) -> usize {
        self.core.uploads_active()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_end_with_the_client_file_name_and_keep_its_extension() {
        assert_eq!(stored_suffix("cat.jpg").as_deref(), Some("cat.jpg"));
        assert_eq!(
            stored_suffix("C:\\Users\\me\\été.pdf").as_deref(),
            Some("été.pdf")
        );
        assert_eq!(stored_suffix("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(stored_suffix(".."), None);
        assert_eq!(stored_suffix("a\nb"), None);
        let long = format!("{}.tar.gz", "é".repeat(80));
        let kept = stored_suffix(&long).unwrap();
        assert!(kept.len() <= MAX_KEPT_NAME, "{}", kept.len());
        assert!(kept.ends_with("é.gz"), "{kept}");
        let no_ext = "x".repeat(300);
        assert_eq!(stored_suffix(&no_ext).unwrap().len(), MAX_KEPT_NAME);
    }
}
