//! The file helper thread: the file-system calls io_uring has no operation
//! for, made off the loop thread.
//!
//! A loop thread must never wait for a file system: one hung NFS or FUSE
//! mount would stall every connection of that loop. Opens, `statx`/`fstat`,
//! reads, writes and unlinks go through the ring; what the ring cannot do
//! runs here:
//!
//! - reading a directory (`getdents64` has no io_uring operation): the
//!   listings of [`crate::FileRootOptions::listing`] and
//!   [`crate::Ctx::file_list_dir`];
//! - `inotify_add_watch` (a path lookup) and `inotify_rm_watch` (dropping
//!   the last reference to an unlinked inode frees it, file-system work),
//!   with the `statx` that checks a file did not change before its watch
//!   existed (`file_cache.rs`);
//! - waiting for the inotify descriptor to become readable (`poll`), so the
//!   loop drains it itself, with a non-blocking `read`, only when there is
//!   something to read (see `file_cache.rs` for why the loop, not the ring,
//!   consumes the events).
//!
//! One helper per server, started on first use. Jobs wait in a bounded
//! queue ([`MAX_JOBS`]; a listing refused for a full queue is answered 503,
//! a watch refused means the file is simply not cached); the answers come
//! back through an eventfd the loop keeps armed through the ring, so the
//! request that waits for a listing waits alone: the loop keeps serving
//! everyone else. If the helper is stuck in a hung file system, listings
//! wait (their clients' timeouts apply) and new files are not cached; the
//! loop itself never waits.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use event_manager::{EventManager, EventTrigger, FileStat, Pfd};
use rustix::fs::inotify::{self, WatchFlags};

use crate::op_tag::OpTag;

/// Listing and watch jobs waiting at most (removals are never refused).
pub(crate) const MAX_JOBS: usize = 64;

/// What a directory entry is (from the directory itself, or an `lstat`
/// when the file system does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirEntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// Anything else (FIFO, socket, device), or unknown.
    Other,
}

/// One entry of a directory read by [`crate::Ctx::file_list_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirEntry {
    /// The entry's name (never `.` or `..`).
    pub name: OsString,
    /// Its type.
    pub kind: DirEntryKind,
    /// Its size in bytes (of the link itself for a symbolic link; 0 if it
    /// could not be read: the entry went away meanwhile).
    pub size: u64,
    /// When its content last changed (`None` if it could not be read).
    pub modified: Option<std::time::SystemTime>,
}

/// Who waits for a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListFor {
    /// A file transfer (its key).
    Transfer(u64),
    /// The application (its tag).
    App(u64),
}

/// The directory to list.
#[derive(Debug)]
pub(crate) enum ListDir {
    /// A duplicate of a descriptor the loop holds (a directory opened
    /// beneath a root).
    Fd(OwnedFd),
    /// A path (opened by the helper).
    Path(PathBuf),
}

/// Work for the helper.
#[derive(Debug)]
pub(crate) enum Job {
    List {
        for_: ListFor,
        dir: ListDir,
    },
    /// Watch `file` (with `FILE_MASK`) and each of `dirs` (with `DIR_MASK`),
    /// then check that `file` still has the metadata `expect`.
    Watch {
        id: u64,
        file: PathBuf,
        dirs: Vec<PathBuf>,
        expect: FileStat,
    },
    /// Drop one reference to each watch (removed at the last).
    Unwatch {
        wds: Vec<i32>,
    },
}

/// A watch job's success: the descriptors (file first, then `dirs` in
/// order) and whether each hit must still `statx` the path (a symlink on
/// the way, or a network file system whose changes inotify cannot see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Watched {
    pub(crate) wds: Vec<i32>,
    pub(crate) verify: bool,
}

/// What comes back.
#[derive(Debug)]
pub(crate) enum Answer {
    Listed {
        for_: ListFor,
        result: Result<Vec<DirEntry>, i32>,
    },
    Watched {
        id: u64,
        result: Option<Watched>,
    },
    /// The inotify descriptor has events; the helper stops polling it until
    /// [`Helper::inotify_drained`].
    InotifyReady,
}

pub(crate) const FILE_MASK: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);
// No IN_CREATE: a watched name can only be created anew after an IN_DELETE
// or IN_MOVED_FROM of it (which already dropped the entry), and a late
// IN_CREATE would only drop the fresh entry made after it.
pub(crate) const DIR_MASK: WatchFlags = WatchFlags::DELETE
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

#[derive(Debug)]
struct Shared {
    jobs: Mutex<VecDeque<Job>>,
    answers: Mutex<VecDeque<Answer>>,
    /// The helper's wake-up eventfd (non-blocking).
    wake: OwnedFd,
    stop: AtomicBool,
    /// The helper polls the inotify descriptor.
    inotify_armed: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: `wake` is an open eventfd owned by `self`; the buffer is
        // 8 readable bytes. A full counter (EAGAIN) still wakes the poll.
        let _ = unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr().cast(), 8) };
    }
}

/// The loop's side of the helper.
#[derive(Debug)]
pub(crate) struct Helper {
    shared: Arc<Shared>,
    /// The eventfd the helper triggers; armed with `OpTag::HelperEvent`.
    pub(crate) event: Pfd,
    /// Listing and watch jobs queued or running.
    pub(crate) busy: usize,
}

impl Helper {
    /// Starts the thread. `inotify` is a duplicate of the cache's inotify
    /// descriptor (for watches and polling), if the cache has one.
    pub(crate) fn start(
        em: &mut EventManager,
        inotify: Option<OwnedFd>,
    ) -> std::io::Result<Helper> {
        // SAFETY: plain system call; the result is checked.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `wake` is a new descriptor nobody else owns.
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        let event = em.eventfd_open().map_err(std::io::Error::from)?;
        let setup = |em: &mut EventManager| -> std::io::Result<EventTrigger> {
            em.eventfd_arm(event, 0, OpTag::HelperEvent.encode())
                .map_err(std::io::Error::from)?;
            em.eventfd_trigger_handle(event)
                .map_err(std::io::Error::from)
        };
        let notify = match setup(em) {
            Ok(n) => n,
            Err(e) => {
                let _ = em.close(event, OpTag::HelperClose.encode());
                return Err(e);
            }
        };
        let shared = Arc::new(Shared {
            jobs: Mutex::new(VecDeque::new()),
            answers: Mutex::new(VecDeque::new()),
            wake,
            stop: AtomicBool::new(false),
            inotify_armed: AtomicBool::new(true),
        });
        let s2 = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("ringtail-files".into())
            .spawn(move || run(&s2, inotify, &notify));
        if let Err(e) = spawned {
            let _ = em.close(event, OpTag::HelperClose.encode());
            return Err(e);
        }
        Ok(Helper {
            shared,
            event,
            busy: 0,
        })
    }

    /// Queues `job`. Listings and watches are refused (given back) when
    /// [`MAX_JOBS`] are already waiting or running.
    pub(crate) fn submit(&mut self, job: Job) -> Result<(), Job> {
        let counted = !matches!(job, Job::Unwatch { .. });
        if counted {
            if self.busy >= MAX_JOBS {
                return Err(job);
            }
            self.busy += 1;
        }
        self.shared
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
        self.shared.wake();
        Ok(())
    }

    /// Takes the answers that arrived.
    pub(crate) fn answers(&mut self) -> VecDeque<Answer> {
        let answers = std::mem::take(
            &mut *self
                .shared
                .answers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for a in &answers {
            if !matches!(a, Answer::InotifyReady) {
                self.busy = self.busy.saturating_sub(1);
            }
        }
        answers
    }

    /// The loop read the inotify descriptor empty: poll it again.
    pub(crate) fn inotify_drained(&mut self) {
        if !self.shared.inotify_armed.swap(true, Ordering::AcqRel) {
            self.shared.wake();
        }
    }
}

impl Drop for Helper {
    /// Tells the thread to stop (not waited for: it may be inside a hung
    /// file system; it exits when that call returns, closing what it holds).
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
    }
}

/// The helper thread.
fn run(shared: &Shared, inotify: Option<OwnedFd>, notify: &EventTrigger) {
    let mut refs: HashMap<i32, usize> = HashMap::new();
    let ino_fd: RawFd = inotify.as_ref().map_or(-1, |f| f.as_raw_fd());
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let ino_armed = ino_fd >= 0 && shared.inotify_armed.load(Ordering::Acquire);
        let mut fds = [
            libc::pollfd {
                fd: shared.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if ino_armed { ino_fd } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the call's
        // duration; both descriptors (or -1, ignored) stay open meanwhile.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue; // EINTR
        }
        if fds[0].revents != 0 {
            let mut v = [0u8; 8];
            // SAFETY: non-blocking read of 8 bytes into `v` from our eventfd.
            let _ = unsafe { libc::read(shared.wake.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
        }
        if fds[1].revents != 0 && shared.inotify_armed.swap(false, Ordering::AcqRel) {
            answer(shared, notify, Answer::InotifyReady);
        }
        loop {
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            let job = shared
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(job) = job else { break };
            if let Some(a) = run_job(inotify.as_ref(), &mut refs, job) {
                answer(shared, notify, a);
            }
        }
    }
}

fn answer(shared: &Shared, notify: &EventTrigger, a: Answer) {
    shared
        .answers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_back(a);
    if let Err(e) = notify.trigger() {
        tracing::warn!(error = %e, "file helper cannot wake its loop");
    }
}

/// Runs one job (on the helper thread; the unit tests call it directly).
pub(crate) fn run_job(
    inotify: Option<&OwnedFd>,
    refs: &mut HashMap<i32, usize>,
    job: Job,
) -> Option<Answer> {
    match job {
        Job::List { for_, dir } => Some(Answer::Listed {
            for_,
            result: list(dir),
        }),
        Job::Watch {
            id,
            file,
            dirs,
            expect,
        } => {
            let result = inotify.and_then(|ino| watch(ino, refs, &file, &dirs, &expect));
            Some(Answer::Watched { id, result })
        }
        Job::Unwatch { wds } => {
            if let Some(ino) = inotify {
                unref(ino, refs, &wds);
            }
            None
        }
    }
}

fn unref(ino: &OwnedFd, refs: &mut HashMap<i32, usize>, wds: &[i32]) {
    for wd in wds {
        if let Some(n) = refs.get_mut(wd) {
            *n -= 1;
            if *n == 0 {
                refs.remove(wd);
                // EINVAL when the kernel already removed it (file deleted).
                let _ = inotify::remove_watch(ino, *wd);
            }
        }
    }
}

/// Network file systems, whose changes made elsewhere inotify never sees.
fn remote_fs(path: &std::path::Path) -> bool {
    const REMOTE: [i64; 11] = [
        0x6969,      // NFS
        0x6573_5546, // FUSE
        0x517b,      // SMB
        0xff53_4d42, // CIFS
        0xfe53_4d42, // SMB2
        0x0102_1997, // 9P
        0x00c3_6400, // Ceph
        0x5346_414f, // AFS
        0x7461_636f, // OCFS2
        0x0116_1970, // GFS2
        0x0bd0_0bd0, // Lustre
    ];
    match rustix::fs::statfs(path) {
        #[allow(clippy::unnecessary_cast)]
        Ok(s) => REMOTE.contains(&(s.f_type as i64)),
        Err(_) => true,
    }
}

fn watch(
    ino: &OwnedFd,
    refs: &mut HashMap<i32, usize>,
    file: &std::path::Path,
    dirs: &[PathBuf],
    expect: &FileStat,
) -> Option<Watched> {
    let mut wds = Vec::with_capacity(dirs.len() + 1);
    let mut ok = true;
    for (i, p) in std::iter::once(file)
        .chain(dirs.iter().map(|d| d.as_path()))
        .enumerate()
    {
        let mask = if i == 0 { FILE_MASK } else { DIR_MASK };
        match inotify::add_watch(ino, p, mask) {
            Ok(wd) => {
                *refs.entry(wd).or_default() += 1;
                wds.push(wd);
            }
            Err(e) => {
                tracing::debug!(error = %e, path = ?p, "cannot watch; not cached");
                ok = false;
                break;
            }
        }
    }
    // The watches exist: a change from now on is an event. One before them
    // shows in the metadata (the content was read after `expect`).
    ok = ok
        && std::fs::metadata(file)
            .is_ok_and(|m| crate::file_cache::same_file(expect, &crate::send_file::file_stat(&m)));
    if !ok {
        unref(ino, refs, &wds);
        return None;
    }
    let verify = std::fs::canonicalize(file).map_or(true, |c| c != file) || remote_fs(file);
    Some(Watched { wds, verify })
}

fn list(dir: ListDir) -> Result<Vec<DirEntry>, i32> {
    let errno = |e: rustix::io::Errno| e.raw_os_error();
    let fd: OwnedFd = match dir {
        ListDir::Fd(fd) => fd,
        ListDir::Path(p) => rustix::fs::open(
            &p,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(errno)?,
    };
    let mut d = rustix::fs::Dir::read_from(&fd).map_err(errno)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e.map_err(errno)?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        use rustix::fs::FileType as T;
        // On this helper thread, never on a loop's.
        let st = rustix::fs::statat(&fd, e.file_name(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).ok();
        let mut t = e.file_type();
        if t == T::Unknown {
            t = st
                .as_ref()
                .map_or(T::Unknown, |s| T::from_raw_mode(s.st_mode));
        }
        let size = st.as_ref().map_or(0, |s| s.st_size.max(0) as u64);
        let modified = st.as_ref().and_then(|s| {
            let secs = u64::try_from(s.st_mtime).ok()?;
            let nanos = u32::try_from(s.st_mtime_nsec).ok()?;
            std::time::UNIX_EPOCH
                .checked_add(std::time::Duration::new(secs, nanos.min(999_999_999)))
        });
        let kind = match t {
            T::RegularFile => DirEntryKind::File,
            T::Directory => DirEntryKind::Dir,
            T::Symlink => DirEntryKind::Symlink,
            _ => DirEntryKind::Other,
        };
        out.push(DirEntry {
            name: OsString::from_vec(name.to_vec()),
            kind,
            size,
            modified,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_by_path_and_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("l")).unwrap();
        let mut got = list(ListDir::Path(dir.path().into())).unwrap();
        got.sort_by(|a, b| a.name.cmp(&b.name));
        let kinds: Vec<_> = got
            .iter()
            .map(|e| (e.name.to_str().unwrap(), e.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("a", DirEntryKind::File),
                ("d", DirEntryKind::Dir),
                ("l", DirEntryKind::Symlink)
            ]
        );
        assert_eq!(got[0].size, 1, "a holds one byte");
        let mtime = std::fs::metadata(dir.path().join("a"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(got[0].modified, Some(mtime));
        let fd = OwnedFd::from(std::fs::File::open(dir.path()).unwrap());
        assert_eq!(list(ListDir::Fd(fd)).unwrap().len(), 3);
        assert_eq!(
            list(ListDir::Path(dir.path().join("missing"))),
            Err(libc::ENOENT)
        );
    }
}
