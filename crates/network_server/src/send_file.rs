//! Sending files over HTTP (the notes' `http_send_file`): opening beneath a
//! served root, validators and conditional answers, ranges, and streaming
//! the file through the ring with bounded buffers.
//!
//! The transfer table and the hooks the server calls live here:
//! `Core::on_transfer_op` and `Core::on_helper` for completions of transfer
//! operations (`OpTag::Transfer`, with the transfer key) and of the file
//! helper's eventfd, [`Core::on_conn_written`] when a
//! connection's write completed (a transfer may send its next piece), and
//! [`Core::on_conn_closed_files`] when a connection closed (its transfers
//! end).
//!
//! See `docs/send-file.md` for the design: flow, buffer ownership, limits,
//! the cache invalidation argument and what is refused.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use event_manager::snapshot::SnapshotError;
use event_manager::{Completion, CompletionKind, EventManager, FileStat, OutBuf, Pfd, SpliceArgs};
use protocol::{BodyLength, ByteRange, ByteRangesWriter, Header, Precondition, Version};
use serde::{Deserialize, Serialize};

use crate::connections::{ClientKind, Phase, Proto};
use crate::file_cache::{CacheEntry, CacheKey, Lookup};
use crate::fs_helper::{Answer, DirEntry, DirEntryKind, Job, ListDir, ListFor};
use crate::http::RespState;
use crate::op_tag::{next_transfer_key, OpTag};
use crate::out_queue::Owner;
use crate::server::Core;
use crate::{Application, ClientId, Ctx, Error, Request};

// ----- public types -----------------------------------------------------------

/// A directory served by [`Ctx::http_send_file`], opened once with
/// [`Ctx::file_root_open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRootId(u32);

impl FileRootId {
    /// The id as a number, for an application's own state (a root keeps
    /// its id across a handover: see `docs/handover.md`).
    pub fn to_u64(self) -> u64 {
        u64::from(self.0)
    }

    /// The id [`to_u64`](FileRootId::to_u64) gave, or `None` if `v` cannot
    /// be one. An id the server never opened is refused where it is used.
    pub fn from_u64(v: u64) -> Option<FileRootId> {
        u32::try_from(v).ok().map(FileRootId)
    }
}

/// How a served root behaves.
#[derive(Debug, Clone)]
pub struct FileRootOptions {
    /// File served for a directory request (`/dir/`). Default
    /// `Some("index.html")`; `None` answers directory requests with 403.
    pub index: Option<String>,
    /// A file whose content is the body of every 404 answer (read once, when
    /// the root is opened; its MIME type comes from its extension). Default
    /// `None`: a short `text/plain` body.
    pub not_found_page: Option<PathBuf>,
    /// Keep small files of this root in the server's file cache. Default
    /// `true`.
    pub cache: bool,
    /// Answer a directory request without an index with an HTML listing of
    /// its entries (names starting with `.` hidden, as nginx's
    /// `autoindex`). Default `false`: 403.
    pub listing: bool,
    /// Serve paths with a segment that starts with `.` (`/.env`,
    /// `/.git/config`, `/img/.DS_Store`). Default `false`: they are
    /// answered 404 — the root's not-found page, as for a file that is not
    /// there, so a client learns nothing about what exists (a 403 would say
    /// that `/.git/` does) — without touching the file system. Whatever
    /// this says, `/.well-known/…` (RFC 8615: ACME challenges,
    /// `security.txt`) is served, though a dot segment beneath it is not.
    /// The check is on the decoded path, so `%2e` counts as a dot.
    pub dotfiles: bool,
}

impl Default for FileRootOptions {
    fn default() -> Self {
        FileRootOptions {
            index: Some("index.html".into()),
            not_found_page: None,
            cache: true,
            listing: false,
            dotfiles: false,
        }
    }
}

/// Sizes and limits of file transfers and the file cache
/// ([`crate::ServerConfig::files`]).
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// Smallest ring read of a streamed file (reads are between one and
    /// `read_ahead` chunks). Default 64 KiB.
    pub chunk_size: usize,
    /// A transfer reads only while the connection has at most
    /// `chunk_size * (read_ahead - 1)` bytes queued, and reads at most
    /// enough to bring it to `chunk_size * read_ahead`: what a slow client
    /// can make the server hold per transfer. Default 2.
    pub read_ahead: usize,
    /// Most byte ranges honoured in one `Range` field; more and the whole
    /// file is sent (the CVE-2011-3192 shape). Default 16.
    pub max_ranges: usize,
    /// Bytes of file content the cache may hold. `0` disables the cache.
    /// Default 16 MiB.
    pub cache_bytes: usize,
    /// Largest file kept in the cache. Default 256 KiB: a file up to this
    /// size is sent from memory (no read per request, one shared buffer);
    /// larger ones are streamed in `chunk_size` reads.
    pub cache_max_file: usize,
    /// Send file bodies that are not served from the cache without copying
    /// them through user memory: splice them through the ring, file → pipe
    /// → socket (`IORING_OP_SPLICE`), on plain (non-TLS) connections. Off:
    /// every body is read into buffers and written (as TLS connections
    /// always do). Default `true`. See `docs/send-file.md`.
    pub splice: bool,
    /// Capacity asked for each transfer's pipe (`F_SETPIPE_SZ`), in bytes:
    /// the most a splice moves at once, and what a slow client can make a
    /// transfer hold in the kernel. If the kernel refuses it
    /// (`/proc/sys/fs/pipe-max-size`, the user's pipe page limits) the
    /// pipe keeps what it got; one under 16 KiB is not used (the transfer
    /// reads instead). Default 1 MiB.
    pub splice_pipe_size: usize,
    /// Most pipes open at once (two descriptors each, one pipe per transfer
    /// that is splicing); transfers beyond it, and any whose pipe cannot be
    /// made (`EMFILE`), read instead. Default 256.
    pub splice_max_pipes: usize,
    /// Submit each pipe's fill (file → pipe) and drain (pipe → socket)
    /// linked (`IOSQE_IO_LINK`), one submission for both, instead of the
    /// drain after the fill's completion. Default `false`.
    pub splice_link: bool,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            chunk_size: 64 * 1024,
            read_ahead: 2,
            max_ranges: protocol::DEFAULT_MAX_RANGES,
            cache_bytes: 16 << 20,
            cache_max_file: 256 * 1024,
            splice: true,
            splice_pipe_size: 1 << 20,
            splice_max_pipes: 256,
            splice_link: false,
        }
    }
}

/// The empty buffer that comes back in [`Application::on_http_write`] when an
/// [`Ctx::http_send_file`] finished: `bufs == [OutBuf::Static(SEND_FILE_DONE)]`.
pub const SEND_FILE_DONE: &[u8] = b"";

// ----- state ------------------------------------------------------------------

#[derive(Debug)]
struct Root {
    pfd: Pfd,
    /// Canonical path (for the cache's inotify watches and stat checks).
    path: PathBuf,
    opts: FileRootOptions,
    not_found: Option<(Bytes, &'static str)>,
}

/// What a transfer is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A cache hit is being checked with a `statx` of its path.
    Validating,
    /// The helper thread is reading the directory (`dir_file`).
    Listing,
    /// `openat2` in flight.
    Opening,
    /// `fstat` of the open file in flight.
    Statting,
    /// Reading a small file whole (to send it from memory and cache it).
    Filling,
    /// Head queued; body pieces being read and queued.
    Streaming,
    /// Answer complete (or abandoned); waiting for in-flight operations and
    /// the file's close.
    Finished,
}

/// A piece of the body still to queue.
#[derive(Debug)]
enum Seg {
    Mem(OutBuf),
    File { off: u64, len: u64 },
}

/// The parts of the request a transfer needs after the callback returned.
#[derive(Debug)]
struct ReqInfo {
    method: String,
    version: Version,
    /// Precondition, `Range` and `If-Range` fields, copied.
    fields: Vec<(&'static str, Vec<u8>)>,
    /// `req.path` (+ `?query`), for a directory redirect.
    location: String,
}

impl ReqInfo {
    fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
    fn head_only(&self) -> bool {
        self.method == "HEAD"
    }
}

const COPIED_FIELDS: [&str; 6] = [
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "range",
    "if-range",
];

/// Whether a transfer sends its file pieces by splicing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpliceUse {
    /// Decided at its first file piece (configuration, TLS, a pipe).
    Undecided,
    /// Through its pipe.
    Yes,
    /// Read into buffers (TLS, splice off, no pipe, the file system cannot
    /// splice).
    No,
}

/// A transfer's pipe: file bytes spliced in and not yet out to the socket.
#[derive(Debug)]
struct Pipe {
    r: Pfd,
    w: Pfd,
    cap: usize,
    /// Bytes in it (spliced in, not yet spliced out), as the completions
    /// counted them: the file's bytes `from..from + level` (a pipe is
    /// filled only when empty, from one file piece).
    level: usize,
    /// File offset of the first byte in the pipe.
    from: u64,
    /// A file → pipe splice in flight.
    filling: bool,
    /// A pipe → socket splice in flight.
    sending: bool,
    /// When the socket last took bytes from it (the write-progress watch).
    progress_at: crate::timers::Tick,
}

impl Pipe {
    fn busy(&self) -> bool {
        self.filling || self.sending
    }
}

/// Smallest pipe worth splicing through (a user past its pipe page limit
/// gets pipes of two pages).
const MIN_PIPE: usize = 16 * 1024;

/// `SO_SNDTIMEO` of a connection a transfer splices to: a splice into the
/// socket returns after this long without progress (with `EAGAIN`, or the
/// bytes it moved), so that none waits in an io_uring worker for longer;
/// the transfer submits it again and the write-progress timeout decides.
const SPLICE_SEND_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Transfer {
    client: ClientId,
    root: u32,
    req: ReqInfo,
    /// The request named a directory (trailing slash).
    dir_request: bool,
    /// The path of the file actually opened, relative to the root.
    opened: Vec<u8>,
    index_tried: bool,
    step: Step,
    file: Option<Pfd>,
    file_closing: bool,
    /// The directory, kept open for a listing while its index is tried.
    dir_file: Option<Pfd>,
    ops: usize,
    /// The one read in flight.
    reading: bool,
    segs: VecDeque<Seg>,
    /// The head and part heads waiting to leave with the next file bytes
    /// (one `writev` for head and body instead of two sends).
    held: Vec<OutBuf>,
    /// The completion has been reported (or handed to the out queue).
    reported: bool,
    cache_key: CacheKey,
    stat: Option<FileStat>,
    /// Why the transfer failed, reported when its connection has closed.
    error: Option<Error>,
    /// The operation of the current step was not submitted, or was
    /// cancelled, because the server was quiescing: the resume submits it
    /// again (`Core::resume_transfers`).
    stalled: bool,
    splice: SpliceUse,
    /// The pipe while splicing (never carried by a handover: the quiesce
    /// closes it and moves the file offset back over what it held).
    pipe: Option<Pipe>,
}

/// File roots, transfers in progress, the file cache and uploads.
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    roots: Vec<Root>,
    active: HashMap<u64, Transfer>,
    by_client: HashMap<ClientId, u64>,
    next_key: u64,
    boundary_seed: u64,
    pub(crate) cache: crate::file_cache::FileCache,
    pub(crate) uploads: crate::upload::Uploads,
    /// The helper thread, started on first use.
    helper: Option<crate::fs_helper::Helper>,
    helper_failed: bool,
    /// `Ctx::file_list_dir` listings the helper has not answered yet (a
    /// handover does not carry them: a quiesce is refused meanwhile).
    app_listings: usize,
    /// Pipes of splicing transfers open now (at most
    /// `FileConfig::splice_max_pipes`).
    pipes_open: usize,
}

impl Transfers {
    /// Why a quiesce cannot start now, if it cannot: the helper thread is
    /// still reading a directory for the application
    /// (`Ctx::file_list_dir`), whose answer a handover cannot carry.
    pub(crate) fn handover_refusal(&self) -> Option<&'static str> {
        (self.app_listings > 0).then_some(
            "a directory listing asked for with Ctx::file_list_dir is still on the file helper thread",
        )
    }

    /// Stops the helper thread and closes its eventfd, and empties the
    /// file cache (none of them is handed over). A transfer waiting for a
    /// directory listing asks for it again after the resume.
    pub(crate) fn stop_helper(&mut self, em: &mut EventManager) {
        if let Some(h) = self.helper.take() {
            let _ = em.close(h.event, OpTag::HelperClose.encode());
        }
        for t in self.active.values_mut() {
            if t.step == Step::Listing && !t.stalled {
                // Its answer is lost with the thread.
                t.ops -= 1;
                t.stalled = true;
            }
        }
        self.cache = Default::default();
    }

    /// The helper thread (started now if need be, with the cache's inotify
    /// descriptor). `None` if it cannot run: then nothing is cached and
    /// listings answer 500.
    fn start_helper(&mut self, em: &mut EventManager) -> Option<&mut crate::fs_helper::Helper> {
        if self.helper.is_none() && !self.helper_failed {
            let ino = self.cache.start_inotify();
            match crate::fs_helper::Helper::start(em, ino) {
                Ok(h) => self.helper = Some(h),
                Err(e) => {
                    tracing::error!(error = %e, "file helper thread cannot start");
                    self.helper_failed = true;
                    self.cache.broken = true;
                }
            }
        }
        self.helper.as_mut()
    }
}

// ----- paths ------------------------------------------------------------------

/// Why a request path cannot name a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// Malformed percent-encoding: 400.
    BadRequest,
    /// A `..` segment: 403.
    Forbidden,
    /// A NUL byte or a name too long: no such file can exist, 404.
    NotFound,
}

impl PathError {
    fn status(self) -> u16 {
        match self {
            PathError::BadRequest => 400,
            PathError::Forbidden => 403,
            PathError::NotFound => 404,
        }
    }
}

const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4095;

/// Percent-decodes a request path and turns it into a path relative to the
/// root: empty and `.` segments dropped, `..` refused, `%2F` treated as a
/// separator, NUL refused. Returns the relative path and whether the request
/// names a directory (ends in `/`).
pub(crate) fn decode_path(raw: &str) -> Result<(Vec<u8>, bool), PathError> {
    let raw = raw.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (Some(h), Some(l)) = (
                raw.get(i + 1).and_then(|&c| hex(c)),
                raw.get(i + 2).and_then(|&c| hex(c)),
            ) else {
                return Err(PathError::BadRequest);
            };
            decoded.push((h * 16 + l) as u8);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    if decoded.contains(&0) {
        return Err(PathError::NotFound);
    }
    let dir = decoded.is_empty() || decoded.ends_with(b"/");
    let mut rel = Vec::with_capacity(decoded.len());
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => continue,
            b".." => return Err(PathError::Forbidden),
            s if s.len() > NAME_MAX => return Err(PathError::NotFound),
            s => {
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(s);
            }
        }
    }
    if rel.len() > PATH_MAX {
        return Err(PathError::NotFound);
    }
    Ok((rel, dir))
}

/// Whether the decoded relative path `rel` (segments joined by `/`, no
/// empty, `.` or `..` segment) is hidden: a segment starts with `.`, other
/// than a leading `.well-known`.
pub(crate) fn is_hidden(rel: &[u8]) -> bool {
    rel.split(|&b| b == b'/')
        .enumerate()
        .any(|(i, seg)| seg.starts_with(b".") && !(i == 0 && seg == b".well-known"))
}

/// Appends `s` with `&`, `<`, `>`, `"` and `'` escaped; invalid UTF-8
/// becomes U+FFFD.
fn html_escape(s: &[u8], out: &mut Vec<u8>) {
    for c in String::from_utf8_lossy(s).chars() {
        match c {
            '&' => out.extend_from_slice(b"&amp;"),
            '<' => out.extend_from_slice(b"&lt;"),
            '>' => out.extend_from_slice(b"&gt;"),
            '"' => out.extend_from_slice(b"&quot;"),
            '\'' => out.extend_from_slice(b"&#39;"),
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// Appends `s` percent-encoded except for RFC 3986 unreserved bytes (a
/// relative link to a name, safe in an HTML attribute).
fn url_escape(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

fn os_path(rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(OsString::from_vec(rel.to_vec()))
    }
}

/// The MIME type for a file name, from its extension.
pub(crate) fn mime_for(name: &[u8]) -> &'static str {
    let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
    let ext = match base.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => &base[i + 1..],
        _ => return "application/octet-stream",
    };
    std::str::from_utf8(ext)
        .ok()
        .and_then(|e| mime_guess::from_ext(e).first_raw())
        .unwrap_or("application/octet-stream")
}

/// The event manager's [`FileStat`] from `std` metadata (a `statx`).
pub(crate) fn file_stat(m: &std::fs::Metadata) -> FileStat {
    use std::os::unix::fs::MetadataExt;
    let dev = m.dev();
    FileStat {
        size: m.size(),
        mode: m.mode(),
        ino: m.ino(),
        dev: (
            (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32,
            (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32,
        ),
        nlink: m.nlink() as u32,
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
        uid: m.uid(),
        gid: m.gid(),
    }
}

pub(crate) fn mtime_of(st: &FileStat) -> SystemTime {
    if st.mtime_sec >= 0 {
        UNIX_EPOCH + Duration::new(st.mtime_sec as u64, st.mtime_nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(st.mtime_sec.unsigned_abs())
            + Duration::from_nanos(st.mtime_nsec.into())
    }
}

/// Status of an `openat2` failure: escapes and refusals are 403, missing
/// files 404.
fn open_error_status(e: &event_manager::Error) -> u16 {
    match e.errno() {
        Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => 404,
        Some(libc::EXDEV | libc::ELOOP | libc::EACCES | libc::EPERM | libc::ENXIO) => 403,
        _ => 500,
    }
}

fn status_body(status: u16) -> &'static str {
    match status {
        400 => "Bad Request\n",
        403 => "Forbidden\n",
        404 => "Not Found\n",
        405 => "Method Not Allowed\n",
        412 => "Precondition Failed\n",
        416 => "Range Not Satisfiable\n",
        503 => "Service Unavailable\n",
        _ => "Internal Server Error\n",
    }
}

// ----- the application's operations -------------------------------------------

impl Ctx<'_> {
    /// Opens `dir` (once, synchronously: call it at start-up) as a root for
    /// [`Ctx::http_send_file`]. Nothing beneath it can be escaped: files
    /// are opened with `openat2(root, path, RESOLVE_BENEATH |
    /// RESOLVE_NO_MAGICLINKS)`.
    pub fn file_root_open(
        &mut self,
        dir: &Path,
        opts: FileRootOptions,
    ) -> Result<FileRootId, std::io::Error> {
        let path = std::fs::canonicalize(dir)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&path)?;
        let not_found = match &opts.not_found_page {
            Some(p) => {
                let body = std::fs::read(p)?;
                let name = p.file_name().map(|n| n.as_encoded_bytes()).unwrap_or(b"");
                Some((Bytes::from(body), mime_for(name)))
            }
            None => None,
        };
        let pfd = self
            .em
            .adopt(std::os::fd::OwnedFd::from(file))
            .map_err(std::io::Error::from)?;
        let roots = &mut self.core.transfers.roots;
        roots.push(Root {
            pfd,
            path,
            opts,
            not_found,
        });
        Ok(FileRootId(roots.len() as u32 - 1))
    }

    /// Answers the current request of `client` with a file beneath `root`
    /// (the notes' `http_send_file`).
    ///
    /// `path` is the URL path to serve, still percent-encoded — usually
    /// `req.path`, or what is left of it after the application stripped a
    /// prefix. `req` is the request being answered; its method, version and
    /// precondition/range fields are used (copied: the call returns at once).
    ///
    /// Answers: 200 (whole file; `HEAD` without body), 206 (one range, or
    /// several as `multipart/byteranges`), 304, 412, 416 (with
    /// `Content-Range: bytes */len`), 301 for a directory named without its
    /// trailing slash, 400 (bad percent-encoding), 403 (`..`, a path the
    /// kernel refused as escaping the root, a symlink loop, not a regular
    /// file, a directory without index), 404 (missing; the root's not-found
    /// page), 405 (not GET/HEAD), 500 (I/O error before the head was sent).
    ///
    /// `Ok(())`: exactly one [`Application::on_http_write`] follows for
    /// this call: `bufs == [OutBuf::Static(SEND_FILE_DONE)]` (one empty
    /// buffer) with `Ok(())` once the whole answer was written; on failure
    /// (connection closed, read error mid-body — the connection is then
    /// closed, as the client could not tell) `Err(..)` with `bufs` either
    /// that marker or empty. Tell it from the application's own writes by
    /// `bufs.is_empty() || bufs == [OutBuf::Static(SEND_FILE_DONE)]`. The
    /// application must not write to this answer itself. `Err(..)` from
    /// this call: nothing was started and no callback follows.
    pub fn http_send_file(
        &mut self,
        client: ClientId,
        root: FileRootId,
        path: &str,
        req: &Request<'_>,
    ) -> Result<(), Error> {
        self.writable(client, ClientKind::Http, 0)?;
        if root.0 as usize >= self.core.transfers.roots.len() {
            return Err(Error::Io(event_manager::Error::NotFound));
        }
        let conn = self.core.conn(client).ok_or(Error::Stale(client))?;
        let Proto::Http(h) = &mut conn.proto else {
            return Err(Error::WrongProtocol(client));
        };
        h.check_unanswered(client)?;
        // The answer belongs to the transfer from now on.
        h.resp = RespState::Streaming {
            chunked: false,
            remaining: Some(0),
        };
        let mut fields = Vec::new();
        for name in COPIED_FIELDS {
            for v in req.headers_named(name) {
                fields.push((name, v.to_vec()));
            }
        }
        let mut location = format!("{}/", req.path);
        if let Some(q) = req.query {
            location.push('?');
            location.push_str(q);
        }
        let info = ReqInfo {
            method: req.method.to_string(),
            version: req.version,
            fields,
            location,
        };
        let ts = &mut self.core.transfers;
        let key = ts.next_key;
        ts.next_key = next_transfer_key(ts.next_key);
        let decoded = decode_path(path);
        let (rel, dir_request) = decoded.clone().unwrap_or_default();
        let root_cache = ts.roots[root.0 as usize].opts.cache;
        let hidden = !ts.roots[root.0 as usize].opts.dotfiles && is_hidden(&rel);
        ts.active.insert(
            key,
            Transfer {
                client,
                root: root.0,
                req: info,
                dir_request,
                opened: rel.clone(),
                index_tried: false,
                step: Step::Opening,
                file: None,
                file_closing: false,
                dir_file: None,
                ops: 0,
                reading: false,
                segs: VecDeque::new(),
                held: Vec::new(),
                reported: false,
                cache_key: (root.0, rel, dir_request),
                stat: None,
                error: None,
                stalled: false,
                splice: SpliceUse::Undecided,
                pipe: None,
            },
        );
        ts.by_client.insert(client, key);
        let t = &ts.active[&key];
        if !matches!(t.req.method.as_str(), "GET" | "HEAD") {
            self.core
                .answer_simple(self.em, key, 405, &[("Allow", "GET, HEAD")]);
            return Ok(());
        }
        if let Err(e) = decoded {
            self.core.answer_simple(self.em, key, e.status(), &[]);
            return Ok(());
        }
        if hidden {
            self.core.answer_simple(self.em, key, 404, &[]);
            return Ok(());
        }
        // A cache hit: inotify events waiting are applied first (no file
        // system call; see file_cache.rs).
        if root_cache {
            let ts = &mut self.core.transfers;
            let t = ts.active.get_mut(&key).expect("just inserted");
            match ts.cache.lookup(&t.cache_key) {
                Lookup::Hit(body, stat, mime) => {
                    t.stat = Some(stat);
                    self.core.respond_file(self.em, key, stat, Some(body), mime);
                    return Ok(());
                }
                Lookup::Verify(path) => {
                    t.step = Step::Validating;
                    match self.em.stat(&path, OpTag::Transfer { key }.encode()) {
                        Ok(_) => t.ops += 1,
                        Err(_) => self.core.on_validated(self.em, key, None),
                    }
                    return Ok(());
                }
                Lookup::Miss => {}
            }
        }
        self.core.open_next(self.em, key);
        Ok(())
    }
}

// ----- the transfer state machine ---------------------------------------------

impl Core {
    /// Submits the `openat2` of the transfer's current path.
    fn open_next(&mut self, em: &mut EventManager, key: u64) {
        let ts = &mut self.transfers;
        let Some(t) = ts.active.get_mut(&key) else {
            return;
        };
        let root = &ts.roots[t.root as usize];
        t.step = Step::Opening;
        if self.quiescing {
            t.stalled = true;
            return;
        }
        let path = os_path(&t.opened);
        let r = em.open_beneath(
            root.pfd,
            &path,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            0,
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            OpTag::Transfer { key }.encode(),
        );
        match r {
            Ok(_) => t.ops += 1,
            Err(e) => {
                tracing::debug!(error = %e, "open_beneath refused");
                self.answer_simple(em, key, 500, &[]);
            }
        }
    }

    /// The helper thread's eventfd fired: handle its answers, re-arm.
    pub(crate) fn on_helper<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        c: Completion,
    ) {
        let CompletionKind::EventFd { result, .. } = c.kind else {
            return; // its close
        };
        let ts = &mut self.transfers;
        let Some(helper) = ts.helper.as_mut() else {
            return;
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "file helper eventfd wait ended");
            return;
        }
        let event = helper.event;
        if let Err(e) = em.eventfd_arm(event, 0, OpTag::HelperEvent.encode()) {
            tracing::error!(error = %e, "cannot re-arm the file helper eventfd");
        }
        let budget = self.config.files.cache_bytes;
        let answers = helper.answers();
        for a in answers {
            match a {
                Answer::Listed {
                    for_: ListFor::Transfer(key),
                    result,
                } => self.finish_listing(em, key, result),
                Answer::Listed {
                    for_: ListFor::App(tag),
                    result,
                } => {
                    self.transfers.app_listings = self.transfers.app_listings.saturating_sub(1);
                    let result = result.map_err(|e| Error::Io(event_manager::Error::Os(e)));
                    let ev = crate::FileEvent::Listed { tag, result };
                    app.on_file(&mut Ctx { em, core: self }, ev);
                }
                a => {
                    let ts = &mut self.transfers;
                    if let Some(h) = ts.helper.as_mut() {
                        crate::file_cache::on_answer(&mut ts.cache, h, a, budget);
                    }
                }
            }
        }
    }

    pub(crate) fn on_transfer_op(&mut self, em: &mut EventManager, key: u64, c: Completion) {
        let Some(t) = self.transfers.active.get_mut(&key) else {
            tracing::debug!(key, ?c.kind, "completion for an unknown file transfer");
            return;
        };
        if let CompletionKind::Close { .. } = c.kind {
            t.file = None;
            t.file_closing = false;
            return self.reap(key);
        }
        t.ops -= 1;
        if t.step == Step::Finished {
            // Abandoned (connection closed): let go of what came back.
            if let CompletionKind::Open { result: Ok(f), .. } = c.kind {
                t.file = Some(f);
            }
            return self.release(em, key);
        }
        match c.kind {
            CompletionKind::Stat { result, .. } => self.on_validated(em, key, result.ok()),
            CompletionKind::Open {
                result: Err(event_manager::Error::Cancelled),
                ..
            } if self.quiescing => t.stalled = true,
            CompletionKind::Fstat {
                result: Err(event_manager::Error::Cancelled),
                ..
            } if self.quiescing => t.stalled = true,
            CompletionKind::Open { result, .. } => match result {
                Ok(f) => {
                    t.file = Some(f);
                    t.step = Step::Statting;
                    if self.quiescing {
                        t.stalled = true;
                        return;
                    }
                    // `fstat` of exactly the opened file, through the ring
                    // (on NFS or FUSE even an `fstat` may wait for a server).
                    match em.fstat(f, OpTag::Transfer { key }.encode()) {
                        Ok(_) => t.ops += 1,
                        Err(_) => self.answer_simple(em, key, 500, &[]),
                    }
                }
                Err(e) => {
                    let mut status = open_error_status(&e);
                    if t.index_tried && status == 404 {
                        if t.dir_file.is_some() {
                            return self.answer_listing(em, key);
                        }
                        // A directory without an index (as nginx answers).
                        status = 403;
                    }
                    tracing::debug!(error = %e, status, "open beneath root failed");
                    self.answer_simple(em, key, status, &[]);
                }
            },
            CompletionKind::Fstat { result, .. } => match result {
                Ok(st) => self.on_stat(em, key, st),
                Err(_) => self.answer_simple(em, key, 500, &[]),
            },
            CompletionKind::Read { buf, result, .. } => self.on_read(em, key, buf, result),
            CompletionKind::Splice { to, result, .. } => self.on_splice(em, key, to, result),
            other => tracing::debug!(key, ?other, "unexpected transfer completion"),
        }
    }

    /// The `statx` of a cache hit that needs one (see `file_cache.rs`)
    /// came back: serve it from memory if the file is still the one cached,
    /// else open it afresh.
    fn on_validated(&mut self, em: &mut EventManager, key: u64, st: Option<FileStat>) {
        let ts = &mut self.transfers;
        let t = ts.active.get_mut(&key).expect("caller checked");
        match st.and_then(|st| ts.cache.get_valid(&t.cache_key, &st)) {
            Some((body, stat, mime)) => {
                t.stat = Some(stat);
                self.respond_file(em, key, stat, Some(body), mime);
            }
            None => {
                ts.cache.remove(&t.cache_key);
                self.open_next(em, key);
            }
        }
    }

    fn on_stat(&mut self, em: &mut EventManager, key: u64, st: FileStat) {
        let max_cached = self.config.files.cache_max_file;
        let cache_on = self.config.files.cache_bytes > 0;
        let ts = &mut self.transfers;
        let t = ts.active.get_mut(&key).expect("caller checked");
        let root = &ts.roots[t.root as usize];
        if st.is_dir() {
            if !t.dir_request {
                let loc = t.req.location.clone();
                return self.answer_simple(em, key, 301, &[("Location", &loc)]);
            }
            let (index, listing) = (root.opts.index.clone(), root.opts.listing);
            match index {
                Some(index) if !t.index_tried => {
                    t.index_tried = true;
                    if !t.opened.is_empty() {
                        t.opened.push(b'/');
                    }
                    t.opened.extend_from_slice(index.as_bytes());
                    if let Some(f) = t.file.take() {
                        if listing {
                            t.dir_file = Some(f);
                        } else {
                            // Its close completion is ignored (`OpTag::Ignore`).
                            let _ = em.close(f, OpTag::Ignore.encode());
                        }
                    }
                    return self.open_next(em, key);
                }
                _ if listing && !t.index_tried => {
                    t.dir_file = t.file.take();
                    return self.answer_listing(em, key);
                }
                _ => return self.answer_simple(em, key, 403, &[]),
            }
        }
        if !st.is_file() {
            return self.answer_simple(em, key, 403, &[]);
        }
        t.stat = Some(st);
        let small = cache_on && root.opts.cache && st.size <= max_cached as u64;
        if small && !t.req.head_only() {
            // Read it whole: send it from memory and keep it in the cache.
            t.step = Step::Filling;
            return self.fill(em, key);
        }
        let mime = mime_for(&t.opened);
        self.respond_file(em, key, st, None, mime);
    }

    /// The file is known (and possibly in memory): evaluate preconditions
    /// and ranges, queue the head, and plan the body.
    fn respond_file(
        &mut self,
        em: &mut EventManager,
        key: u64,
        st: FileStat,
        body: Option<Bytes>,
        mime: &'static str,
    ) {
        let max_ranges = self.config.files.max_ranges;
        let t = self.transfers.active.get(&key).expect("caller checked");
        let len = body.as_ref().map_or(st.size, |b| b.len() as u64);
        let mtime = mtime_of(&st);
        let etag = protocol::ETag::for_file(st.ino, len, mtime);
        let validators = protocol::Validators::for_file(&etag, mtime);
        let last_modified = httpdate::fmt_http_date(mtime);
        let etag_s = String::from_utf8_lossy(etag.as_bytes()).into_owned();
        let head_only = t.req.head_only();
        let headers: Vec<Header<'_>> = t
            .req
            .fields
            .iter()
            .map(|(n, v)| Header { name: n, value: v })
            .collect();
        let pre = protocol::evaluate_preconditions(&t.req.method, &headers, &validators);
        // Ranges: GET only, and only if If-Range (when given) still matches.
        let mut ranges = Ok(None);
        if pre == Precondition::Proceed && t.req.method == "GET" {
            if let Some(value) = t.req.field("range") {
                let if_range_ok = t
                    .req
                    .field("if-range")
                    .is_none_or(|v| protocol::if_range_matches(v, &validators, SystemTime::now()));
                if if_range_ok {
                    let mut limits = protocol::RangeLimits::default();
                    limits.max_ranges = max_ranges;
                    ranges = match protocol::parse_range(value, len, &limits) {
                        Ok(set) => Ok(Some(set)),
                        Err(e) if e.status() == 416 => Err(()),
                        Err(_) => Ok(None),
                    };
                }
            }
        }
        let validator_fields = [
            ("ETag", etag_s.as_str()),
            ("Last-Modified", last_modified.as_str()),
        ];
        match pre {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                return self.answer(em, key, 304, &validator_fields, BodyLength::None, []);
            }
            Precondition::Failed => return self.answer_simple(em, key, 412, &[]),
        }
        let ranges = match ranges {
            Ok(r) => r,
            Err(()) => {
                let mut cr = Vec::new();
                protocol::write_unsatisfied_range(len, &mut cr);
                let cr = String::from_utf8_lossy(&cr).into_owned();
                return self.answer_simple(
                    em,
                    key,
                    416,
                    &[("Content-Range", &cr), validator_fields[0]],
                );
            }
        };
        let piece = |r: ByteRange| match &body {
            Some(b) => Seg::Mem(OutBuf::Bytes(b.slice(r.start as usize..=r.end as usize))),
            None => Seg::File {
                off: r.start,
                len: r.len(),
            },
        };
        let mut segs = VecDeque::new();
        // Field values that need formatting (only for 206 answers).
        let mut content_type = String::new();
        let mut content_range = String::new();
        let (status, body_len) = match ranges {
            None => {
                if len > 0 {
                    segs.push_back(match &body {
                        Some(b) => Seg::Mem(OutBuf::Bytes(b.clone())),
                        None => Seg::File { off: 0, len },
                    });
                }
                (200, len)
            }
            Some(set) => match set.single() {
                Some(r) => {
                    let mut cr = Vec::new();
                    r.write_content_range(len, &mut cr);
                    content_range = String::from_utf8_lossy(&cr).into_owned();
                    segs.push_back(piece(r));
                    (206, r.len())
                }
                None => {
                    self.transfers.boundary_seed = self.transfers.boundary_seed.wrapping_add(1);
                    let seed = {
                        use std::hash::BuildHasher;
                        let n = self.transfers.boundary_seed;
                        std::collections::hash_map::RandomState::new().hash_one(n)
                    };
                    let boundary = ByteRangesWriter::boundary_from_seed(seed);
                    let w = ByteRangesWriter::new(&boundary, Some(mime.as_bytes()), len)
                        .expect("valid boundary and MIME type");
                    let mut ct = Vec::new();
                    w.write_content_type(&mut ct);
                    content_type = String::from_utf8_lossy(&ct).into_owned();
                    for r in set.ranges() {
                        let mut head = Vec::with_capacity(w.part_head_len(r) as usize);
                        w.write_part_head(r, &mut head);
                        segs.push_back(Seg::Mem(OutBuf::Vec(head)));
                        segs.push_back(piece(*r));
                    }
                    let mut closing = Vec::new();
                    w.write_closing(&mut closing);
                    segs.push_back(Seg::Mem(OutBuf::Vec(closing)));
                    let total = w.content_length(set.ranges());
                    // Ranges are coalesced within the file: no overflow.
                    (206, total.expect("multipart length fits in u64"))
                }
            },
        };
        if head_only {
            segs.clear();
        }
        let content_type = if content_type.is_empty() {
            mime
        } else {
            content_type.as_str()
        };
        let all = [
            ("Accept-Ranges", "bytes"),
            ("ETag", etag_s.as_str()),
            ("Last-Modified", last_modified.as_str()),
            ("Content-Type", content_type),
            ("Content-Range", content_range.as_str()),
        ];
        let fields = if content_range.is_empty() {
            &all[..4]
        } else {
            &all[..]
        };
        if !self.start_answer(em, key, status, fields, BodyLength::Known(body_len), true) {
            return;
        }
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        t.segs = segs;
        t.step = Step::Streaming;
        // Memory pieces and the first read go out with the head.
        self.pump(em, key);
    }

    /// Reads the whole of a small file (`Step::Filling`).
    fn fill(&mut self, em: &mut EventManager, key: u64) {
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        if self.quiescing {
            t.stalled = true;
            return;
        }
        let (Some(f), Some(st)) = (t.file, t.stat) else {
            return self.answer_simple(em, key, 500, &[]);
        };
        let buf = Vec::with_capacity(st.size as usize + 1);
        match em.read(f, buf, Some(0), OpTag::Transfer { key }.encode()) {
            Ok(_) => {
                t.ops += 1;
                t.reading = true;
            }
            Err(_) => self.answer_simple(em, key, 500, &[]),
        }
    }

    /// After a resume (or an import): every transfer whose step the
    /// quiesce held back submits it now — an open, `fstat` or read cut
    /// short is simply done again (nothing of it was used), a listing is
    /// asked of the (new) helper thread again — and streaming transfers
    /// read their next piece if the connection has room for it.
    pub(crate) fn resume_transfers(&mut self, em: &mut EventManager) {
        let keys: Vec<u64> = self
            .transfers
            .active
            .iter()
            .filter(|(_, t)| t.stalled || (t.step == Step::Streaming && !t.reading))
            .map(|(&k, _)| k)
            .collect();
        for key in keys {
            let Some(t) = self.transfers.active.get_mut(&key) else {
                continue;
            };
            t.stalled = false;
            match t.step {
                Step::Validating | Step::Opening => self.open_next(em, key),
                Step::Statting => {
                    let r = t
                        .file
                        .map(|f| em.fstat(f, OpTag::Transfer { key }.encode()));
                    match r {
                        Some(Ok(_)) => t.ops += 1,
                        _ => self.answer_simple(em, key, 500, &[]),
                    }
                }
                Step::Filling => self.fill(em, key),
                Step::Listing => self.answer_listing(em, key),
                Step::Streaming => self.pump(em, key),
                Step::Finished => {}
            }
        }
    }

    /// The whole of a small file came back: cache it, answer from memory.
    fn on_filled(&mut self, em: &mut EventManager, key: u64, buf: Vec<u8>) {
        let max_cached = self.config.files.cache_max_file;
        let budget = self.config.files.cache_bytes;
        let ts = &mut self.transfers;
        let t = ts.active.get_mut(&key).expect("caller checked");
        let st = t.stat.expect("statted");
        let body = Bytes::from(buf);
        let mime = mime_for(&t.opened);
        if body.len() as u64 == st.size && body.len() <= max_cached {
            let root = &ts.roots[t.root as usize];
            // The root and each directory below it on the way to the file,
            // with the name that leads on (all watched by the cache).
            let mut dirs = Vec::new();
            let mut stat_path = root.path.clone();
            for seg in t.opened.split(|&b| b == b'/') {
                dirs.push((stat_path.clone(), seg.to_vec()));
                stat_path.push(os_path(seg));
            }
            let entry = CacheEntry {
                body: body.clone(),
                stat: st,
                stat_path,
                dirs,
                mime,
            };
            let cache_key = t.cache_key.clone();
            // While quiescing the helper is stopped and not restarted:
            // nothing is cached.
            if !self.quiescing {
                ts.start_helper(em);
            }
            ts.cache
                .insert(ts.helper.as_mut(), cache_key, entry, budget);
        }
        self.respond_file(em, key, st, Some(body), mime);
    }

    fn on_read(
        &mut self,
        em: &mut EventManager,
        key: u64,
        buf: Vec<u8>,
        result: Result<usize, event_manager::Error>,
    ) {
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        t.reading = false;
        if self.quiescing && result == Err(event_manager::Error::Cancelled) {
            // Cut short for a quiesce: read again after the resume.
            t.stalled = true;
            return;
        }
        if t.step == Step::Filling {
            return match result {
                Ok(_) => self.on_filled(em, key, buf),
                Err(_) => self.answer_simple(em, key, 500, &[]),
            };
        }
        let n = match result {
            Ok(0) => Err(Error::Io(event_manager::Error::Os(libc::EIO))),
            Ok(n) => Ok(n),
            Err(e) => Err(Error::Io(e)),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                // The head promised bytes the file no longer has.
                tracing::warn!(key, error = %e, "file read failed mid-transfer");
                return self.fail(em, key, e);
            }
        };
        match t.segs.front_mut() {
            Some(Seg::File { off, len }) => {
                let n = (n as u64).min(*len);
                *off += n;
                *len -= n;
                if *len == 0 {
                    t.segs.pop_front();
                }
            }
            _ => debug_assert!(false, "read without a file segment"),
        }
        let client = t.client;
        let mut items: Vec<_> = t
            .held
            .drain(..)
            .map(|b| (b, Owner::Server, false))
            .collect();
        items.push((OutBuf::Vec(buf), Owner::Server, false));
        self.queue(em, client, items);
        self.pump(em, key);
    }

    /// Queues what can be queued: memory pieces at once, file pieces one
    /// read at a time while the connection holds less than the read-ahead
    /// bound. Finishes the transfer when everything is queued.
    fn pump(&mut self, em: &mut EventManager, key: u64) {
        let chunk = self.config.files.chunk_size.max(4096);
        let budget = chunk * self.config.files.read_ahead.max(1);
        loop {
            let Some(t) = self.transfers.active.get_mut(&key) else {
                return;
            };
            if t.step != Step::Streaming || t.reading {
                return;
            }
            if self.quiescing {
                // Nothing is submitted (or queued) until the resume.
                t.stalled = true;
                return;
            }
            if t.pipe.as_ref().is_some_and(Pipe::busy) {
                // A splice is in flight; its completion pumps again.
                return;
            }
            let client = t.client;
            let (queued, tls) = match self.conn_ref(client) {
                Some(c) if c.phase == Phase::Open => (c.out.bytes(), c.is_tls()),
                _ => return self.fail(em, key, Error::Closing(client)),
            };
            let splice_on = self.config.files.splice;
            let t = self.transfers.active.get_mut(&key).expect("checked");
            if t.splice == SpliceUse::Undecided && matches!(t.segs.front(), Some(Seg::File { .. }))
            {
                t.splice = if splice_on && !tls {
                    SpliceUse::Yes
                } else {
                    SpliceUse::No
                };
            }
            if t.splice == SpliceUse::Yes && matches!(t.segs.front(), Some(Seg::File { .. })) {
                return self.pump_splice(em, key);
            }
            let t = self.transfers.active.get_mut(&key).expect("checked");
            if t.pipe.as_ref().is_some_and(|p| p.level > 0)
                && matches!(t.segs.front(), None | Some(Seg::Mem(_)))
            {
                // Bytes still in the pipe leave before the memory pieces
                // behind them (and before the end of the answer).
                return self.pump_splice(em, key);
            }
            match t.segs.front_mut() {
                None => {
                    let held = t.held.drain(..).map(|b| (b, Owner::Server, false));
                    let held: Vec<_> = held.collect();
                    self.queue(em, client, held);
                    return self.finish_ok(em, key);
                }
                Some(Seg::Mem(_)) => {
                    let Some(Seg::Mem(b)) = t.segs.pop_front() else {
                        unreachable!()
                    };
                    t.held.push(b);
                }
                Some(Seg::File { off, len }) => {
                    // Read only while at least a chunk fits under the
                    // bound, and at most up to it.
                    if queued + chunk > budget {
                        return;
                    }
                    let n = (*len).min((budget - queued) as u64) as usize;
                    let f = t.file.expect("open file");
                    match em.read(
                        f,
                        Vec::with_capacity(n),
                        Some(*off),
                        OpTag::Transfer { key }.encode(),
                    ) {
                        Ok(_) => {
                            t.ops += 1;
                            t.reading = true;
                        }
                        Err((e, _)) => return self.fail(em, key, e.into()),
                    }
                    return;
                }
            }
        }
    }

    /// The splice path of [`Core::pump`]: the front piece is a file range
    /// (or the pipe still holds bytes of one) and no splice is in flight.
    /// What is held (the head, part heads) is queued first; the pipe is
    /// filled from the file (at the piece's offset) while it is empty, and
    /// emptied into the socket once the connection's queue is idle — the
    /// splice into the socket is the connection's one write in flight
    /// (`OutQueue::begin_external`).
    fn pump_splice(&mut self, em: &mut EventManager, key: u64) {
        let link = self.config.files.splice_link;
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        let client = t.client;
        if t.pipe.is_none() {
            match self.open_pipe(em, client) {
                Some(p) => {
                    let t = self.transfers.active.get_mut(&key).expect("checked");
                    t.pipe = Some(p);
                }
                None => {
                    let t = self.transfers.active.get_mut(&key).expect("checked");
                    t.splice = SpliceUse::No;
                    return self.pump(em, key);
                }
            }
        }
        let t = self.transfers.active.get_mut(&key).expect("checked");
        if !t.held.is_empty() {
            let held: Vec<_> = t
                .held
                .drain(..)
                .map(|b| (b, Owner::Server, false))
                .collect();
            self.queue(em, client, held);
        }
        let idle = self.conn_ref(client).is_some_and(|c| c.out.is_idle());
        let t = self.transfers.active.get_mut(&key).expect("checked");
        let file = t.file;
        let front = match t.segs.front() {
            Some(Seg::File { off, len }) => Some((*off, *len)),
            _ => None,
        };
        let p = t.pipe.as_mut().expect("made above");
        let tag = OpTag::Transfer { key }.encode();
        let to_socket = |len: usize| SpliceArgs {
            from: p.r,
            from_offset: None,
            to: client,
            to_offset: None,
            len: len as u32,
        };
        if p.level > 0 {
            if !idle {
                // The queue's write completes first (`on_conn_written`).
                return;
            }
            let args = to_socket(p.level);
            let since = p.progress_at;
            return match em.splice(args, tag) {
                Ok(op) => {
                    p.sending = true;
                    t.ops += 1;
                    if let Some(c) = self.conn(client) {
                        c.out.begin_external(op, since);
                    }
                }
                Err(e) => self.fail(em, key, e.into()),
            };
        }
        let Some((off, len)) = front else {
            // The pipe is empty and no file piece is next: done with it.
            return self.put_pipe_away(em, key);
        };
        let Some(file) = file else {
            return self.fail(em, key, Error::Io(event_manager::Error::Os(libc::EBADF)));
        };
        let n = len.min(p.cap as u64) as usize;
        let fill = SpliceArgs {
            from: file,
            from_offset: Some(off),
            to: p.w,
            to_offset: None,
            len: n as u32,
        };
        let r = if link && idle {
            em.splice_linked(fill, tag, to_socket(n), tag)
        } else {
            em.splice(fill, tag).map(|op| (op, None))
        };
        match r {
            Ok((_, second)) => {
                p.filling = true;
                t.ops += 1;
                if let Some(op) = second {
                    p.sending = true;
                    t.ops += 1;
                    let since = p.progress_at;
                    if let Some(c) = self.conn(client) {
                        c.out.begin_external(op, since);
                    }
                }
            }
            Err(e) => self.fail(em, key, e.into()),
        }
    }

    /// A new pipe for a transfer to `client`, or `None` (the transfer reads
    /// instead): `splice_max_pipes` reached, the pipe cannot be made
    /// (`EMFILE`, `ENFILE`), or the kernel gave it less than [`MIN_PIPE`].
    fn open_pipe(&mut self, em: &mut EventManager, client: ClientId) -> Option<Pipe> {
        let cfg = &self.config.files;
        if self.transfers.pipes_open >= cfg.splice_max_pipes {
            self.stats.file_splice_fallbacks += 1;
            return None;
        }
        match em.pipe(cfg.splice_pipe_size) {
            Ok((r, w, cap)) if cap >= MIN_PIPE => {
                self.transfers.pipes_open += 1;
                self.stats.file_splices += 1;
                // Bounds each splice into the socket (see the constant).
                let _ = em.set_send_timeout(client, SPLICE_SEND_TIMEOUT);
                Some(Pipe {
                    r,
                    w,
                    cap,
                    level: 0,
                    from: 0,
                    filling: false,
                    sending: false,
                    progress_at: self.timers.now,
                })
            }
            Ok((r, w, cap)) => {
                tracing::debug!(cap, "pipe too small to splice through: reading instead");
                let _ = em.close(r, OpTag::Ignore.encode());
                let _ = em.close(w, OpTag::Ignore.encode());
                self.stats.file_splice_fallbacks += 1;
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "no pipe for a file transfer: reading instead");
                self.stats.file_splice_fallbacks += 1;
                None
            }
        }
    }

    /// Closes an idle, empty pipe of transfer `key` and pumps on.
    fn put_pipe_away(&mut self, em: &mut EventManager, key: u64) {
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        if let Some(p) = t.pipe.take() {
            debug_assert!(p.level == 0 && !p.busy());
            let _ = em.close(p.r, OpTag::Ignore.encode());
            let _ = em.close(p.w, OpTag::Ignore.encode());
            self.transfers.pipes_open -= 1;
        }
        self.pump(em, key);
    }

    /// A splice of transfer `key` completed: into the pipe (`to` is its
    /// write end) or out of it into the socket.
    fn on_splice(
        &mut self,
        em: &mut EventManager,
        key: u64,
        to: Pfd,
        result: Result<usize, event_manager::Error>,
    ) {
        use event_manager::Error as E;
        let now = self.timers.now;
        let quiescing = self.quiescing;
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        let client = t.client;
        let Some(p) = t.pipe.as_mut() else {
            return;
        };
        if to == p.w {
            p.filling = false;
            match result {
                Ok(0) => {
                    // The file ended before the length the head promised.
                    tracing::warn!(key, "file shorter than its stat: transfer cut");
                    return self.fail(em, key, Error::Io(E::Os(libc::EIO)));
                }
                Ok(n) => {
                    if p.level == 0 {
                        if let Some(Seg::File { off, .. }) = t.segs.front() {
                            p.from = *off;
                        }
                    }
                    p.level += n;
                    // A fill starts only once the peer has taken all the
                    // pipe held: a slow disk must not count against the
                    // peer's write progress.
                    p.progress_at = now;
                    match t.segs.front_mut() {
                        Some(Seg::File { off, len }) => {
                            let n = (n as u64).min(*len);
                            *off += n;
                            *len -= n;
                            if *len == 0 {
                                t.segs.pop_front();
                            }
                        }
                        _ => debug_assert!(false, "splice without a file piece"),
                    }
                }
                Err(E::Cancelled) => {} // a quiesce, or the connection closing
                Err(E::Os(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EAGAIN))
                    if p.level == 0 && !p.sending =>
                {
                    // The file system cannot splice this file (or the pipe
                    // refused): nothing moved, read it instead.
                    tracing::debug!(key, ?result, "file cannot be spliced: reading instead");
                    t.splice = SpliceUse::No;
                    self.stats.file_splice_fallbacks += 1;
                    return self.put_pipe_away(em, key);
                }
                Err(e) => {
                    tracing::warn!(key, error = %e, "file splice failed mid-transfer");
                    return self.fail(em, key, Error::Io(e));
                }
            }
        } else {
            p.sending = false;
            let mut moved = 0;
            match result {
                Ok(n) => {
                    moved = n.min(p.level);
                    p.level -= moved;
                    p.from += moved as u64;
                    if moved > 0 {
                        p.progress_at = now;
                    }
                }
                // Cut (quiesce, the fill before it came back short, the
                // connection closing), or `SO_SNDTIMEO` passed without
                // progress: the bytes are still in the pipe.
                Err(E::Cancelled | E::Os(libc::EAGAIN | libc::EINTR)) => {}
                Err(e) => {
                    // A reset or a closed peer (EPIPE, ECONNRESET).
                    if let Some(c) = self.conn(client) {
                        c.out.end_external();
                    }
                    return self.fail(em, key, Error::Io(e));
                }
            }
            self.stats.bytes_out += moved as u64;
            self.stats.spliced_bytes += moved as u64;
            if let Some(c) = self.conn(client) {
                c.out.end_external();
                if let Proto::Http(h) = &mut c.proto {
                    if let Some(a) = &mut h.access {
                        a.bytes_out += moved as u64;
                    }
                }
            }
            if !quiescing {
                // What waited behind the splice (nothing, usually) goes now.
                self.after_external_write(em, client);
            }
        }
        if quiescing {
            return self.rewind_pipe(em, key);
        }
        self.pump(em, key);
    }

    /// For a quiesce: once no splice of transfer `key` is in flight, its
    /// pipe is closed with what it still holds — file bytes `from..from +
    /// level`, spliced in and not yet out — and the transfer's file piece
    /// is moved back to start at `from` again, so those bytes are spliced
    /// anew from the file after the resume or import: none lost, none sent
    /// twice, and a handover carries an offset instead of up to a pipe's
    /// worth of bytes. (A pipe holds references to the file's pages, not a
    /// copy: reading the bytes again from the file gives what the pipe
    /// would have sent.) The level the completions counted is checked
    /// against the kernel's (`FIONREAD`) first; should they differ the
    /// transfer fails rather than send a wrong byte.
    fn rewind_pipe(&mut self, em: &mut EventManager, key: u64) {
        let Some(t) = self.transfers.active.get_mut(&key) else {
            return;
        };
        if t.pipe.as_ref().is_none_or(Pipe::busy) {
            return;
        }
        let p = t.pipe.take().expect("checked");
        let in_pipe = em.pipe_len(p.r);
        let _ = em.close(p.r, OpTag::Ignore.encode());
        let _ = em.close(p.w, OpTag::Ignore.encode());
        self.transfers.pipes_open -= 1;
        let t = self.transfers.active.get_mut(&key).expect("checked");
        t.stalled = true;
        if in_pipe != Ok(p.level) {
            tracing::error!(key, ?in_pipe, level = p.level, "pipe level not as counted");
            return self.fail(em, key, Error::Io(event_manager::Error::Os(libc::EIO)));
        }
        if p.level == 0 {
            return;
        }
        let level = p.level as u64;
        match t.segs.front_mut() {
            Some(Seg::File { off, len }) if *off == p.from + level => {
                *off = p.from;
                *len += level;
            }
            _ => t.segs.push_front(Seg::File {
                off: p.from,
                len: level,
            }),
        }
        self.stats.pipe_bytes_rewound += level;
    }

    /// For [`Server::quiesce`](crate::Server::quiesce), after the event
    /// manager's quiesce: closes the pipes of transfers that have no splice
    /// in flight, moving their file offsets back over what the pipes held
    /// (the others when their splices come back, cut by the quiesce).
    pub(crate) fn quiesce_pipes(&mut self, em: &mut EventManager) {
        let keys: Vec<u64> = self
            .transfers
            .active
            .iter()
            .filter(|(_, t)| t.pipe.as_ref().is_some_and(|p| !p.busy()))
            .map(|(&k, _)| k)
            .collect();
        for key in keys {
            self.rewind_pipe(em, key);
        }
    }

    /// Queues the head of the answer. `false` if the connection is gone or
    /// the head was refused (the transfer is then finished).
    fn start_answer(
        &mut self,
        em: &mut EventManager,
        key: u64,
        status: u16,
        fields: &[(&str, &str)],
        length: BodyLength,
        hold: bool,
    ) -> bool {
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        let (client, version) = (t.client, t.req.version);
        let keep_alive = match self.conn(client) {
            Some(c) if c.phase == Phase::Open => match &c.proto {
                Proto::Http(h) => h.keep_alive,
                _ => false,
            },
            _ => {
                self.fail(em, key, Error::Closing(client));
                return false;
            }
        };
        let mut head = Vec::with_capacity(256);
        let r = crate::head::write_head(
            &mut head,
            self.date.at(self.timers.wall),
            self.config.server_name.as_deref(),
            status,
            version,
            keep_alive,
            fields,
            length,
        );
        if r.is_err() {
            tracing::error!(status, "file answer head refused");
            head.clear();
            let r = crate::head::write_head(
                &mut head,
                self.date.at(self.timers.wall),
                self.config.server_name.as_deref(),
                500,
                version,
                keep_alive,
                &[],
                BodyLength::Known(0),
            );
            debug_assert!(r.is_ok());
            self.response_started(client, 500);
            self.queue(em, client, [(OutBuf::Vec(head), Owner::Server, false)]);
            self.finish_ok(em, key);
            return false;
        }
        self.response_started(client, status);
        if hold {
            let t = self.transfers.active.get_mut(&key).expect("caller checked");
            t.held.push(OutBuf::Vec(head));
        } else {
            self.queue(em, client, [(OutBuf::Vec(head), Owner::Server, false)]);
        }
        true
    }

    /// A complete answer with a small body and no file data.
    fn answer(
        &mut self,
        em: &mut EventManager,
        key: u64,
        status: u16,
        fields: &[(&str, &str)],
        length: BodyLength,
        body: impl IntoIterator<Item = OutBuf>,
    ) {
        if !self.start_answer(em, key, status, fields, length, false) {
            return;
        }
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        t.segs.clear();
        let client = t.client;
        if !t.req.head_only() {
            let items = body.into_iter().map(|b| (b, Owner::Server, false));
            self.queue(em, client, items);
        }
        self.finish_ok(em, key);
    }

    /// Asks the helper thread to read the directory kept in `dir_file`
    /// (exactly the directory opened beneath the root; `getdents64` has no
    /// ring operation); [`Core::finish_listing`] answers. 503 if the
    /// helper's queue is full, 500 if there is no helper.
    fn answer_listing(&mut self, em: &mut EventManager, key: u64) {
        let ts = &mut self.transfers;
        if self.quiescing {
            // The helper thread is stopped: ask after the resume.
            let t = ts.active.get_mut(&key).expect("caller checked");
            t.step = Step::Listing;
            t.stalled = true;
            return;
        }
        let t = ts.active.get(&key).expect("caller checked");
        let dup = t.dir_file.and_then(|d| em.raw_fd(d).ok()).and_then(|fd| {
            // SAFETY: `fd` is open (owned by the event manager as the
            // transfer's `dir_file`) for the duration of this call;
            // `BorrowedFd` only duplicates it.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            b.try_clone_to_owned().ok()
        });
        let Some(dup) = dup else {
            return self.answer_simple(em, key, 500, &[]);
        };
        let job = Job::List {
            for_: ListFor::Transfer(key),
            dir: ListDir::Fd(dup),
        };
        let submitted = match ts.start_helper(em) {
            Some(h) => h.submit(job).is_ok(),
            None => return self.answer_simple(em, key, 500, &[]),
        };
        if !submitted {
            return self.answer_simple(em, key, 503, &[("Retry-After", "1")]);
        }
        let t = ts.active.get_mut(&key).expect("caller checked");
        t.step = Step::Listing;
        t.ops += 1;
    }

    /// The helper read the directory of transfer `key`: 200 with an HTML
    /// listing, or 403 if it could not be read.
    fn finish_listing(
        &mut self,
        em: &mut EventManager,
        key: u64,
        result: Result<Vec<DirEntry>, i32>,
    ) {
        let Some(t) = self.transfers.active.get_mut(&key) else {
            return;
        };
        t.ops -= 1;
        if t.step != Step::Listing {
            // Abandoned meanwhile (the connection closed).
            return self.release(em, key);
        }
        let Ok(entries) = result else {
            return self.answer_simple(em, key, 403, &[]);
        };
        let t = self.transfers.active.get(&key).expect("checked");
        let mut names: Vec<(Vec<u8>, bool)> = entries
            .into_iter()
            .map(|e| (e.name.into_encoded_bytes(), e.kind == DirEntryKind::Dir))
            .filter(|(n, _)| !n.starts_with(b"."))
            .collect();
        names.sort();
        let mut title = b"/".to_vec();
        let dir_rel = &t.cache_key.1;
        if !dir_rel.is_empty() {
            title.extend_from_slice(dir_rel);
            title.push(b'/');
        }
        let mut html = Vec::with_capacity(256 + names.len() * 64);
        html.extend_from_slice(
            b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ",
        );
        html_escape(&title, &mut html);
        html.extend_from_slice(b"</title></head>\n<body><h1>Index of ");
        html_escape(&title, &mut html);
        html.extend_from_slice(b"</h1>\n<ul>\n");
        if !dir_rel.is_empty() {
            html.extend_from_slice(b"<li><a href=\"../\">../</a></li>\n");
        }
        for (name, dir) in &names {
            html.extend_from_slice(b"<li><a href=\"");
            url_escape(name, &mut html);
            if *dir {
                html.push(b'/');
            }
            html.extend_from_slice(b"\">");
            html_escape(name, &mut html);
            if *dir {
                html.push(b'/');
            }
            html.extend_from_slice(b"</a></li>\n");
        }
        html.extend_from_slice(b"</ul>\n</body></html>\n");
        let len = BodyLength::Known(html.len() as u64);
        let fields = [("Content-Type", "text/html; charset=utf-8")];
        self.answer(em, key, 200, &fields, len, [OutBuf::Vec(html)]);
    }

    /// An error or redirect answer with a short text body (404 uses the
    /// root's not-found page).
    fn answer_simple(
        &mut self,
        em: &mut EventManager,
        key: u64,
        status: u16,
        extra: &[(&str, &str)],
    ) {
        let Some(t) = self.transfers.active.get(&key) else {
            return;
        };
        let root = &self.transfers.roots[t.root as usize];
        let (body, mime) = match (&root.not_found, status) {
            (Some((b, m)), 404) => (OutBuf::Bytes(b.clone()), *m),
            (_, 301) => (OutBuf::Static(b""), "text/plain"),
            _ => (OutBuf::Static(status_body(status).as_bytes()), "text/plain"),
        };
        let mut fields = vec![("Content-Type", mime)];
        fields.extend_from_slice(extra);
        let len = BodyLength::Known(body.len() as u64);
        self.answer(em, key, status, &fields, len, [body]);
    }

    /// Everything is queued: queue the completion marker (it comes back
    /// through the out queue once the bytes before it are written, or with
    /// the error that stopped them), mark the answer done, close the file.
    fn finish_ok(&mut self, em: &mut EventManager, key: u64) {
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        let client = t.client;
        t.step = Step::Finished;
        t.reported = true;
        self.transfers.by_client.remove(&client);
        self.queue(
            em,
            client,
            [(
                OutBuf::Static(SEND_FILE_DONE),
                Owner::App { last: true },
                true,
            )],
        );
        if let Some(conn) = self.conn(client) {
            if let Proto::Http(h) = &mut conn.proto {
                h.resp = RespState::Done;
            }
        }
        self.maybe_retire(em, client);
        self.release(em, key);
    }

    /// The transfer cannot complete (a read failed, the file shrank, the
    /// connection is closing): close the connection — its head promised a
    /// length that can no longer be delivered — and report `e` when its
    /// close completes (`on_conn_closed_files`), so the report comes
    /// exactly once and from a place where the application is reachable.
    fn fail(&mut self, em: &mut EventManager, key: u64, e: Error) {
        let t = self.transfers.active.get_mut(&key).expect("caller checked");
        let client = t.client;
        t.step = Step::Finished;
        t.error.get_or_insert(e);
        if self.transfers.by_client.get(&client) != Some(&key) {
            // The connection's close was already handled (or the completion
            // was handed to the out queue): nothing left to report.
            t.reported = true;
        }
        if self.conn(client).is_some_and(|c| c.phase != Phase::Closing) {
            let errno = match e {
                Error::Io(io) => io.errno().unwrap_or(libc::EIO),
                _ => libc::EIO,
            };
            self.hard_close(em, client, Some(crate::CloseReason::Io(errno)));
        }
        self.release(em, key);
    }

    /// Closes the transfer's file (cancelling a read in flight) and forgets
    /// the transfer once nothing of it is in flight.
    fn release(&mut self, em: &mut EventManager, key: u64) {
        let Some(t) = self.transfers.active.get_mut(&key) else {
            return;
        };
        if let Some(d) = t.dir_file.take() {
            let _ = em.close(d, OpTag::Ignore.encode());
        }
        if let Some(p) = t.pipe.take() {
            // Splices in flight are cancelled first; their completions
            // still come here (counted in `ops`).
            let _ = em.close(p.r, OpTag::Ignore.encode());
            let _ = em.close(p.w, OpTag::Ignore.encode());
            self.transfers.pipes_open -= 1;
        }
        let Some(t) = self.transfers.active.get_mut(&key) else {
            return;
        };
        if let Some(f) = t.file {
            if !t.file_closing {
                t.file_closing = true;
                if em.close(f, OpTag::Transfer { key }.encode()).is_err() {
                    t.file = None;
                    t.file_closing = false;
                }
            }
        }
        self.reap(key);
    }

    fn reap(&mut self, key: u64) {
        let Some(t) = self.transfers.active.get(&key) else {
            return;
        };
        if t.step == Step::Finished
            && t.reported
            && t.ops == 0
            && t.file.is_none()
            && !t.file_closing
        {
            self.transfers.active.remove(&key);
        }
    }

    /// A write on `pfd` completed.
    pub(crate) fn on_conn_written<A: Application>(
        &mut self,
        em: &mut EventManager,
        _app: &mut A,
        pfd: Pfd,
    ) {
        if self.quiescing {
            return;
        }
        if let Some(&key) = self.transfers.by_client.get(&pfd) {
            self.pump(em, key);
        }
    }

    /// `pfd` closed.
    pub(crate) fn on_conn_closed_files<A: Application>(
        &mut self,
        em: &mut EventManager,
        app: &mut A,
        pfd: Pfd,
    ) {
        if let Some(key) = self.transfers.by_client.remove(&pfd) {
            if let Some(t) = self.transfers.active.get_mut(&key) {
                let report = !t.reported;
                t.reported = true;
                t.step = Step::Finished;
                let e = t.error.take().unwrap_or(Error::Closing(pfd));
                if report {
                    self.guard(em, Some(pfd), "on_http_write", |ctx| {
                        app.on_http_write(ctx, pfd, Vec::new(), Err(e))
                    });
                }
                self.release(em, key);
            }
        }
        self.upload_on_closed(em, app, pfd);
    }

    /// Transfers in progress (for tests and metrics).
    pub(crate) fn transfers_active(&self) -> usize {
        self.transfers.active.len()
    }
}

impl Ctx<'_> {
    /// Reads the directory `path` on the server's file helper thread
    /// (`getdents64` has no io_uring operation; the loop never waits for a
    /// file system): [`Application::on_file`] gets [`crate::FileEvent::Listed`]
    /// with `tag` and the entries (unsorted; `.` and `..` left out).
    /// `Err` at once if the helper cannot start or already has
    /// 64 listings and cache watches waiting (`EAGAIN`).
    pub fn file_list_dir(&mut self, path: &Path, tag: u64) -> Result<(), Error> {
        let job = Job::List {
            for_: ListFor::App(tag),
            dir: ListDir::Path(path.to_path_buf()),
        };
        if self.core.quiescing {
            // The helper thread is stopped for a handover: try again later.
            return Err(Error::Io(event_manager::Error::Os(libc::EAGAIN)));
        }
        let ts = &mut self.core.transfers;
        let r = match ts.start_helper(self.em) {
            Some(h) => h
                .submit(job)
                .map_err(|_| Error::Io(event_manager::Error::Os(libc::EAGAIN))),
            None => Err(Error::Io(event_manager::Error::Os(libc::EIO))),
        };
        if r.is_ok() {
            ts.app_listings += 1;
        }
        r
    }

    /// File transfers not yet finished (including ones waiting for their
    /// file to close).
    pub fn file_transfers_active(&self) -> usize {
        self.core.transfers_active()
    }

    /// Bytes and entries in the file cache.
    pub fn file_cache_usage(&self) -> (usize, usize) {
        self.core.transfers.cache.usage()
    }
}

// ----- handover ---------------------------------------------------------------

/// File roots, transfers in progress and uploads, as plain data (part of
/// the server's snapshot, `handover.rs`). The file cache and the helper
/// thread are not carried: the importing side starts with an empty cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FilesV1 {
    roots: Vec<RootV1>,
    transfers: Vec<TransferV1>,
    next_key: u64,
    boundary_seed: u64,
    pub(crate) uploads: crate::upload::UploadsV1,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RootV1 {
    pfd: u64,
    #[serde(with = "serde_bytes")]
    path: Vec<u8>,
    index: Option<String>,
    #[serde(with = "serde_bytes")]
    not_found_page: Option<Vec<u8>>,
    cache: bool,
    listing: bool,
    /// The not-found page's bytes as read when the root was opened (its
    /// MIME type comes again from `not_found_page`'s name).
    #[serde(with = "serde_bytes")]
    not_found: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TransferV1 {
    key: u64,
    client: u64,
    root: u32,
    method: String,
    http10: bool,
    /// Copied request fields: index into `COPIED_FIELDS`, value.
    fields: Vec<(u8, serde_bytes::ByteBuf)>,
    location: String,
    dir_request: bool,
    #[serde(with = "serde_bytes")]
    opened: Vec<u8>,
    index_tried: bool,
    step: u8,
    file: Option<u64>,
    dir_file: Option<u64>,
    segs: Vec<SegV1>,
    held: Vec<serde_bytes::ByteBuf>,
    #[serde(with = "serde_bytes")]
    cache_rel: Vec<u8>,
    stat: Option<StatV1>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SegV1 {
    Mem(serde_bytes::ByteBuf),
    File { off: u64, len: u64 },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct StatV1 {
    size: u64,
    mode: u32,
    ino: u64,
    dev: (u32, u32),
    nlink: u32,
    mtime_sec: i64,
    mtime_nsec: u32,
    uid: u32,
    gid: u32,
}

impl From<FileStat> for StatV1 {
    fn from(s: FileStat) -> StatV1 {
        StatV1 {
            size: s.size,
            mode: s.mode,
            ino: s.ino,
            dev: s.dev,
            nlink: s.nlink,
            mtime_sec: s.mtime_sec,
            mtime_nsec: s.mtime_nsec,
            uid: s.uid,
            gid: s.gid,
        }
    }
}

impl From<StatV1> for FileStat {
    fn from(s: StatV1) -> FileStat {
        FileStat {
            size: s.size,
            mode: s.mode,
            ino: s.ino,
            dev: s.dev,
            nlink: s.nlink,
            mtime_sec: s.mtime_sec,
            mtime_nsec: s.mtime_nsec,
            uid: s.uid,
            gid: s.gid,
        }
    }
}

fn step_code(s: Step) -> u8 {
    match s {
        Step::Validating => 0,
        Step::Listing => 1,
        Step::Opening => 2,
        Step::Statting => 3,
        Step::Filling => 4,
        Step::Streaming => 5,
        Step::Finished => 6,
    }
}

fn step_of(code: u8) -> Option<Step> {
    Some(match code {
        0 => Step::Validating,
        1 => Step::Listing,
        2 => Step::Opening,
        3 => Step::Statting,
        4 => Step::Filling,
        5 => Step::Streaming,
        _ => return None,
    })
}

fn invalid(m: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid(m.into())
}

fn path_of(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(bytes.to_vec()))
}

impl Transfers {
    /// [`FileRootOptions::dotfiles`] of each root, in root order (version 2
    /// of the snapshot carries it beside [`FilesV1`]).
    pub(crate) fn export_dotfiles(&self) -> Vec<bool> {
        self.roots.iter().map(|r| r.opts.dotfiles).collect()
    }

    /// The number of roots in `v`.
    pub(crate) fn roots_in(v: &FilesV1) -> usize {
        v.roots.len()
    }

    /// The file roots, transfers and uploads of a quiesced server. Every
    /// transfer is between operations then (a listing the stopped helper
    /// thread owed is asked for again after the import).
    pub(crate) fn export(&self) -> Result<FilesV1, Error> {
        let roots = self
            .roots
            .iter()
            .map(|r| RootV1 {
                pfd: r.pfd.to_u64(),
                path: r.path.clone().into_os_string().into_vec(),
                index: r.opts.index.clone(),
                not_found_page: r
                    .opts
                    .not_found_page
                    .clone()
                    .map(|p| p.into_os_string().into_vec()),
                cache: r.opts.cache,
                listing: r.opts.listing,
                not_found: r.not_found.as_ref().map(|(b, _)| b.to_vec()),
            })
            .collect();
        let mut keys: Vec<u64> = self.active.keys().copied().collect();
        keys.sort_unstable();
        let mut transfers = Vec::with_capacity(keys.len());
        for key in keys {
            let t = &self.active[&key];
            if t.step == Step::Finished || t.reported {
                return Err(Error::Handover(
                    "a finished file transfer is still closing its file",
                ));
            }
            if t.pipe.is_some() {
                return Err(Error::Handover("a file transfer still holds a pipe"));
            }
            if t.ops != 0 || t.reading || t.file_closing {
                return Err(Error::Handover(
                    "a file transfer has an operation in flight",
                ));
            }
            let fields = t
                .req
                .fields
                .iter()
                .map(|(n, v)| {
                    let i = COPIED_FIELDS.iter().position(|c| c == n).unwrap_or(0);
                    (i as u8, serde_bytes::ByteBuf::from(v.clone()))
                })
                .collect();
            transfers.push(TransferV1 {
                key,
                client: t.client.to_u64(),
                root: t.root,
                method: t.req.method.clone(),
                http10: t.req.version == Version::Http10,
                fields,
                location: t.req.location.clone(),
                dir_request: t.dir_request,
                opened: t.opened.clone(),
                index_tried: t.index_tried,
                step: step_code(t.step),
                file: t.file.map(Pfd::to_u64),
                dir_file: t.dir_file.map(Pfd::to_u64),
                segs: t
                    .segs
                    .iter()
                    .map(|s| match s {
                        Seg::Mem(b) => SegV1::Mem(b.as_slice().to_vec().into()),
                        Seg::File { off, len } => SegV1::File {
                            off: *off,
                            len: *len,
                        },
                    })
                    .collect(),
                held: t
                    .held
                    .iter()
                    .map(|b| b.as_slice().to_vec().into())
                    .collect(),
                cache_rel: t.cache_key.1.clone(),
                stat: t.stat.map(StatV1::from),
            });
        }
        Ok(FilesV1 {
            roots,
            transfers,
            next_key: self.next_key,
            boundary_seed: self.boundary_seed,
            uploads: self.uploads.export()?,
        })
    }
}

/// Checks what [`Core::import_files`] would build, short of the
/// descriptors.
pub(crate) fn check_files(v: &FilesV1) -> Result<(), SnapshotError> {
    use crate::op_tag::TRANSFER_KEY_LIMIT;
    if v.next_key >= TRANSFER_KEY_LIMIT {
        return Err(invalid(format!("transfer key {}", v.next_key)));
    }
    let mut keys = std::collections::HashSet::new();
    let mut clients = std::collections::HashSet::new();
    for t in &v.transfers {
        let what = format!("file transfer {}", t.key);
        if t.key >= TRANSFER_KEY_LIMIT || !keys.insert(t.key) {
            return Err(invalid(format!("{what}: key out of range or twice")));
        }
        if !clients.insert(t.client) {
            return Err(invalid(format!("{what}: a second transfer of its client")));
        }
        if t.root as usize >= v.roots.len() {
            return Err(invalid(format!("{what}: root {}", t.root)));
        }
        let step = step_of(t.step).ok_or_else(|| invalid(format!("{what}: step {}", t.step)))?;
        if t.fields
            .iter()
            .any(|(i, _)| *i as usize >= COPIED_FIELDS.len())
        {
            return Err(invalid(format!("{what}: request field")));
        }
        let has_file_seg = t.segs.iter().any(|s| matches!(s, SegV1::File { .. }));
        let needs_file = matches!(step, Step::Statting | Step::Filling) || has_file_seg;
        if needs_file && t.file.is_none() {
            return Err(invalid(format!("{what}: no file")));
        }
        if step == Step::Filling && t.stat.is_none() {
            return Err(invalid(format!("{what}: no stat")));
        }
        if step == Step::Listing && t.dir_file.is_none() {
            return Err(invalid(format!("{what}: no directory")));
        }
        let planned = !t.segs.is_empty() || !t.held.is_empty();
        if planned && step != Step::Streaming {
            return Err(invalid(format!("{what}: body planned before streaming")));
        }
        for s in &t.segs {
            if let SegV1::File { off, len } = s {
                if *len == 0 || off.checked_add(*len).is_none() {
                    return Err(invalid(format!("{what}: file range {off}+{len}")));
                }
            }
        }
        if t.file.is_some() && t.file == t.dir_file {
            return Err(invalid(format!("{what}: file and directory are one pfd")));
        }
    }
    crate::upload::check_uploads(&v.uploads)
}

impl Core {
    /// Takes over file roots, transfers and uploads (after the connections:
    /// every transfer's client must be an HTTP connection). Every pfd named
    /// is checked: open in the event manager, a directory or a regular
    /// file as the part needs, and named once.
    pub(crate) fn import_files(
        &mut self,
        em: &EventManager,
        v: FilesV1,
        dotfiles: &[bool],
    ) -> Result<(), SnapshotError> {
        use crate::handover::{claim_file_pfd, FileKind};
        check_files(&v)?;
        if dotfiles.len() != v.roots.len() {
            return Err(invalid(format!(
                "{} file roots, {} dotfile settings",
                v.roots.len(),
                dotfiles.len()
            )));
        }
        let mut claimed = std::collections::HashSet::new();
        for (i, r) in v.roots.into_iter().enumerate() {
            let pfd = claim_file_pfd(em, &mut claimed, r.pfd, FileKind::Dir, "file root")?;
            let not_found_page = r.not_found_page.map(|p| path_of(&p));
            let not_found = r.not_found.map(|b| {
                let name = not_found_page
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or(b"");
                (Bytes::from(b), mime_for(name))
            });
            debug_assert_eq!(i, self.transfers.roots.len());
            self.transfers.roots.push(Root {
                pfd,
                path: path_of(&r.path),
                opts: FileRootOptions {
                    index: r.index,
                    not_found_page,
                    cache: r.cache,
                    listing: r.listing,
                    dotfiles: dotfiles[i],
                },
                not_found,
            });
        }
        for t in v.transfers {
            let client = Pfd::from_u64(t.client);
            let http = self
                .conns
                .get(client)
                .is_some_and(|c| matches!(c.proto, Proto::Http(_)));
            if !http {
                return Err(invalid(format!(
                    "file transfer {}: client {client} is not an HTTP connection",
                    t.key
                )));
            }
            let file = match t.file {
                Some(raw) => Some(claim_file_pfd(
                    em,
                    &mut claimed,
                    raw,
                    if matches!(step_of(t.step), Some(Step::Filling | Step::Streaming)) {
                        FileKind::Regular
                    } else {
                        FileKind::Any
                    },
                    "transferred file",
                )?),
                None => None,
            };
            let dir_file = match t.dir_file {
                Some(raw) => Some(claim_file_pfd(
                    em,
                    &mut claimed,
                    raw,
                    FileKind::Dir,
                    "listed directory",
                )?),
                None => None,
            };
            let fields = t
                .fields
                .into_iter()
                .map(|(i, v)| (COPIED_FIELDS[i as usize], v.into_vec()))
                .collect();
            let transfer = Transfer {
                client,
                root: t.root,
                req: ReqInfo {
                    method: t.method,
                    version: if t.http10 {
                        Version::Http10
                    } else {
                        Version::Http11
                    },
                    fields,
                    location: t.location,
                },
                dir_request: t.dir_request,
                opened: t.opened,
                index_tried: t.index_tried,
                step: step_of(t.step).expect("checked"),
                file,
                file_closing: false,
                dir_file,
                ops: 0,
                reading: false,
                segs: t
                    .segs
                    .into_iter()
                    .map(|s| match s {
                        SegV1::Mem(b) => Seg::Mem(OutBuf::Vec(b.into_vec())),
                        SegV1::File { off, len } => Seg::File { off, len },
                    })
                    .collect(),
                held: t
                    .held
                    .into_iter()
                    .map(|b| OutBuf::Vec(b.into_vec()))
                    .collect(),
                reported: false,
                cache_key: (t.root, t.cache_rel, t.dir_request),
                stat: t.stat.map(FileStat::from),
                error: None,
                // The resume takes the step up again.
                stalled: true,
                splice: SpliceUse::Undecided,
                pipe: None,
            };
            self.transfers.by_client.insert(client, t.key);
            self.transfers.active.insert(t.key, transfer);
        }
        self.transfers.next_key = v.next_key;
        self.transfers.boundary_seed = v.boundary_seed;
        self.import_uploads(em, &mut claimed, v.uploads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_and_refuse() {
        assert_eq!(decode_path("/"), Ok((b"".to_vec(), true)));
        assert_eq!(decode_path("/a/b.txt"), Ok((b"a/b.txt".to_vec(), false)));
        assert_eq!(decode_path("/a//./b/"), Ok((b"a/b".to_vec(), true)));
        assert_eq!(decode_path("/a%20b"), Ok((b"a b".to_vec(), false)));
        assert_eq!(decode_path("/a%2fb"), Ok((b"a/b".to_vec(), false)));
        assert_eq!(
            decode_path("//etc/passwd"),
            Ok((b"etc/passwd".to_vec(), false))
        );
        assert_eq!(decode_path("/..\\x"), Ok((b"..\\x".to_vec(), false)));
        assert_eq!(decode_path("/../x"), Err(PathError::Forbidden));
        assert_eq!(decode_path("/%2e%2e/x"), Err(PathError::Forbidden));
        assert_eq!(decode_path("/a/%2E%2E%2Fx"), Err(PathError::Forbidden));
        assert_eq!(decode_path("/a/.."), Err(PathError::Forbidden));
        assert_eq!(decode_path("/a%00b"), Err(PathError::NotFound));
        assert_eq!(decode_path("/a%zz"), Err(PathError::BadRequest));
        assert_eq!(decode_path("/a%2"), Err(PathError::BadRequest));
        assert_eq!(
            decode_path(&format!("/{}", "a".repeat(300))),
            Err(PathError::NotFound)
        );
    }

    #[test]
    fn decoded_paths_never_escape() {
        // Random paths over an alphabet rich in separators, dots, escapes.
        let alphabet: &[&str] = &[
            "/", ".", "..", "%2e", "%2E", "%2f", "%2F", "%00", "%5c", "\\", "a", "%", "%z", "~",
        ];
        let mut x: u64 = 0x243f_6a88_85a3_08d3;
        for _ in 0..20_000 {
            let mut p = String::new();
            let n = 1 + (x % 12) as usize;
            for _ in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p.push_str(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            if let Ok((rel, _)) = decode_path(&p) {
                assert!(!rel.starts_with(b"/"), "{p}");
                assert!(!rel.contains(&0), "{p}");
                assert!(
                    rel.split(|&b| b == b'/')
                        .all(|s| s != b".." && s != b"." && !s.is_empty())
                        || rel.is_empty(),
                    "{p} -> {:?}",
                    String::from_utf8_lossy(&rel)
                );
            }
        }
    }

    #[test]
    fn mime_types_from_extensions() {
        assert_eq!(mime_for(b"a/index.html"), "text/html");
        assert_eq!(mime_for(b"x.css"), "text/css");
        assert_eq!(mime_for(b"x.png"), "image/png");
        assert_eq!(mime_for(b"noext"), "application/octet-stream");
        assert_eq!(mime_for(b"dir.d/noext"), "application/octet-stream");
        assert_eq!(mime_for(b".bashrc"), "application/octet-stream");
        assert_eq!(mime_for(b"A.JPG"), "image/jpeg");
    }
}
