//! The file cache: whole small files kept in memory as reference-counted
//! [`Bytes`], served as `OutBuf::Bytes` without a copy.
//!
//! Bounded in bytes ([`crate::FileConfig::cache_bytes`]) and per file
//! ([`crate::FileConfig::cache_max_file`]); least recently used entries go
//! first.
//!
//! A hit makes no file-system call (the argument is in
//! `docs/send-file.md`):
//!
//! 1. **inotify watches every entry**: its file (`IN_MODIFY`, `IN_ATTRIB`,
//!    `IN_CLOSE_WRITE`, `IN_DELETE_SELF`, `IN_MOVE_SELF`) and every
//!    directory from the root down to it (`IN_DELETE`, `IN_MOVED_FROM`,
//!    `IN_MOVED_TO` of the next name on the path, `IN_DELETE_SELF`,
//!    `IN_MOVE_SELF`). Any such event drops the entry; `IN_Q_OVERFLOW`
//!    drops everything. The watches are added by the helper thread
//!    (`fs_helper.rs`: `inotify_add_watch` looks a path up), which then
//!    checks the file's metadata still equals what was recorded before its
//!    bytes were read; events about the entry (its file, the names on its
//!    path) between the job's submission and its answer refuse it.
//! 2. **The loop consumes the events itself**, with a non-blocking `read`
//!    of the inotify descriptor before every hit (a queue in memory, never a
//!    file system). The kernel queues an event before the writing system
//!    call returns, so a request that arrives after a change always finds
//!    the event applied. (Not a ring read: the ring may consume events
//!    whose completion the loop has not dispatched yet when a hit comes.)
//!    The helper polls the descriptor and wakes the loop when events wait,
//!    so dead entries go promptly even without hits.
//! 3. An entry whose path passes a symlink, or lies on a network file
//!    system (NFS, FUSE, SMB, 9P, Ceph, …: changes made elsewhere raise no
//!    event), is also checked on each hit with a `statx` of its path
//!    through the ring: device, inode, size and mtime must be unchanged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use bytes::Bytes;
use event_manager::FileStat;
use rustix::fs::inotify;

use crate::fs_helper::{Answer, Helper, Job, Watched};

/// Root index, decoded relative path, directory request.
pub(crate) type CacheKey = (u32, Vec<u8>, bool);

/// One cached file.
#[derive(Debug, Clone)]
pub(crate) struct CacheEntry {
    pub(crate) body: Bytes,
    /// Metadata when the content was read (from `fstat` of the open file).
    pub(crate) stat: FileStat,
    /// Absolute path of the file (for its watches and `statx` checks).
    pub(crate) stat_path: PathBuf,
    /// The directories from the root down to the file's, each with the
    /// name on the path it contains.
    pub(crate) dirs: Vec<(PathBuf, Vec<u8>)>,
    /// Its MIME type.
    pub(crate) mime: &'static str,
}

#[derive(Debug)]
struct Slot {
    entry: CacheEntry,
    used: u64,
    /// Watch descriptors: the file's (`None`), then each directory's with
    /// the name that matters in it.
    watches: Vec<(i32, Option<Vec<u8>>)>,
    /// Each hit `statx`es the path too.
    verify: bool,
}

/// An entry whose watches the helper is adding.
#[derive(Debug)]
struct Pending {
    job: u64,
    entry: CacheEntry,
    /// [`FileCache::seq`] when the job was submitted.
    sent: u64,
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Serve this.
    Hit(Bytes, FileStat, &'static str),
    /// Cached, but `statx` this path (through the ring) and call
    /// [`FileCache::get_valid`] first.
    Verify(PathBuf),
    Miss,
}

/// Bounded LRU cache of small files, invalidated by inotify.
#[derive(Debug, Default)]
pub(crate) struct FileCache {
    map: HashMap<CacheKey, Slot>,
    lru: BTreeMap<u64, CacheKey>,
    tick: u64,
    bytes: usize,
    pending: HashMap<CacheKey, Pending>,
    pending_bytes: usize,
    next_job: u64,
    /// Non-blocking inotify descriptor (the helper has a duplicate).
    inotify: Option<OwnedFd>,
    /// Watch descriptor → entries using it.
    watches: HashMap<i32, HashSet<CacheKey>>,
    /// Events applied so far; those applied while watch jobs were out
    /// (count, watch, name); the count at the last overflow.
    seq: u64,
    recent: Vec<(u64, i32, Vec<u8>)>,
    overflow_at: u64,
    /// Watch removals to hand to the helper.
    unwatch: Vec<i32>,
    /// inotify or the helper could not be set up: cache nothing.
    pub(crate) broken: bool,
    buf: Vec<u8>,
}

const INOTIFY_BUF: usize = 16 * 1024;

pub(crate) fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.dev == b.dev
        && a.ino == b.ino
        && a.size == b.size
        && a.mtime_sec == b.mtime_sec
        && a.mtime_nsec == b.mtime_nsec
        && b.is_file()
}

impl FileCache {
    /// Bytes of content and number of entries (including those whose
    /// watches are being added).
    pub(crate) fn usage(&self) -> (usize, usize) {
        (
            self.bytes + self.pending_bytes,
            self.map.len() + self.pending.len(),
        )
    }

    /// Creates the non-blocking inotify descriptor; returns a duplicate for
    /// the helper. `None` (and the cache stays off) if that failed.
    pub(crate) fn start_inotify(&mut self) -> Option<OwnedFd> {
        let setup = || -> std::io::Result<(OwnedFd, OwnedFd)> {
            let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
            let dup = fd.try_clone()?;
            Ok((fd, dup))
        };
        match setup() {
            Ok((fd, dup)) => {
                self.inotify = Some(fd);
                Some(dup)
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable: file cache disabled");
                self.broken = true;
                None
            }
        }
    }

    /// Applies every inotify event waiting (non-blocking reads of an
    /// in-memory queue: no file system is touched). Returns `false` if the
    /// descriptor failed (the cache is then dropped and stays off).
    pub(crate) fn drain(&mut self) -> bool {
        let Some(fd) = &self.inotify else {
            return !self.broken;
        };
        let raw = fd.as_raw_fd();
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(INOTIFY_BUF, 0);
        let mut ok = true;
        loop {
            // SAFETY: `raw` is our open inotify descriptor; `buf` is
            // INOTIFY_BUF writable bytes.
            let n = unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                self.apply_events(&buf[..n as usize]);
                continue;
            }
            let errno = std::io::Error::last_os_error().raw_os_error();
            if n < 0 && errno == Some(libc::EINTR) {
                continue;
            }
            if n == 0 || errno != Some(libc::EAGAIN) {
                tracing::warn!(?errno, "inotify read failed: file cache disabled");
                ok = false;
            }
            break;
        }
        self.buf = buf;
        if !ok {
            self.clear();
            self.inotify = None;
            self.broken = true;
        }
        ok
    }

    /// For a hit: applies pending events first, then looks `key` up.
    pub(crate) fn lookup(&mut self, key: &CacheKey) -> Lookup {
        if self.map.is_empty() || !self.drain() {
            return Lookup::Miss;
        }
        let Some(slot) = self.map.get_mut(key) else {
            return Lookup::Miss;
        };
        if slot.verify {
            return Lookup::Verify(slot.entry.stat_path.clone());
        }
        self.lru.remove(&slot.used);
        self.tick += 1;
        slot.used = self.tick;
        self.lru.insert(self.tick, key.clone());
        let e = &slot.entry;
        Lookup::Hit(e.body.clone(), e.stat, e.mime)
    }

    /// The entry for `key` if `st` (a fresh `statx` of its path) shows the
    /// same file, unchanged.
    pub(crate) fn get_valid(
        &mut self,
        key: &CacheKey,
        st: &FileStat,
    ) -> Option<(Bytes, FileStat, &'static str)> {
        if !self.drain() {
            return None;
        }
        let slot = self.map.get_mut(key)?;
        if !same_file(&slot.entry.stat, st) {
            return None;
        }
        self.lru.remove(&slot.used);
        self.tick += 1;
        slot.used = self.tick;
        self.lru.insert(self.tick, key.clone());
        let e = &slot.entry;
        Some((e.body.clone(), e.stat, e.mime))
    }

    pub(crate) fn remove(&mut self, key: &CacheKey) {
        let Some(slot) = self.map.remove(key) else {
            return;
        };
        self.lru.remove(&slot.used);
        self.bytes -= slot.entry.body.len();
        for (wd, _) in &slot.watches {
            if let Some(keys) = self.watches.get_mut(wd) {
                keys.remove(key);
                if keys.is_empty() {
                    self.watches.remove(wd);
                }
            }
            self.unwatch.push(*wd);
        }
    }

    fn clear(&mut self) {
        let keys: Vec<CacheKey> = self.map.keys().cloned().collect();
        for k in keys {
            self.remove(&k);
        }
    }

    fn evict_for(&mut self, size: usize, budget: usize) {
        while self.bytes + self.pending_bytes + size > budget {
            let Some((_, k)) = self.lru.pop_first() else {
                break;
            };
            self.remove(&k);
        }
    }

    /// Hands the watch removals collected so far to the helper.
    pub(crate) fn flush_unwatch(&mut self, helper: Option<&mut Helper>) {
        if self.unwatch.is_empty() {
            return;
        }
        let wds = std::mem::take(&mut self.unwatch);
        if let Some(h) = helper {
            let _ = h.submit(Job::Unwatch { wds });
        }
    }

    /// Offers `entry` for caching under `key`: the helper adds its watches,
    /// and [`FileCache::on_watched`] makes it an entry. Until then it is
    /// counted (it holds memory) but not served.
    pub(crate) fn insert(
        &mut self,
        helper: Option<&mut Helper>,
        key: CacheKey,
        entry: CacheEntry,
        budget: usize,
    ) {
        let size = entry.body.len();
        // Events already queued are older than the job.
        self.drain();
        self.remove(&key);
        if let Some(p) = self.pending.remove(&key) {
            self.pending_bytes -= p.entry.body.len();
        }
        let Some(helper) = helper else {
            return;
        };
        if size > budget || self.broken || self.inotify.is_none() {
            return self.flush_unwatch(Some(helper));
        }
        self.evict_for(size, budget);
        self.next_job += 1;
        let job = Job::Watch {
            id: self.next_job,
            file: entry.stat_path.clone(),
            dirs: entry.dirs.iter().map(|(d, _)| d.clone()).collect(),
            expect: entry.stat,
        };
        if helper.submit(job).is_ok() {
            self.pending_bytes += size;
            self.pending.insert(
                key,
                Pending {
                    job: self.next_job,
                    entry,
                    sent: self.seq,
                },
            );
        }
        self.flush_unwatch(Some(helper));
    }

    /// The helper answered watch job `id`.
    pub(crate) fn on_watched(
        &mut self,
        helper: &mut Helper,
        id: u64,
        result: Option<Watched>,
        budget: usize,
    ) {
        // Events that came before the answer count against it.
        self.drain();
        let key = self
            .pending
            .iter()
            .find(|(_, p)| p.job == id)
            .map(|(k, _)| k.clone());
        let taken = key.and_then(|k| self.pending.remove(&k).map(|p| (k, p)));
        if let Some((_, p)) = &taken {
            self.pending_bytes -= p.entry.body.len();
        }
        match (taken, result) {
            (Some((key, p)), Some(w)) => {
                // An event on the file, or about the next name on its path
                // (or about a directory itself), since the job went out.
                let relevant = |(seq, wd, name): &(u64, i32, Vec<u8>)| {
                    *seq > p.sent
                        && w.wds.iter().enumerate().any(|(i, w)| {
                            w == wd && (i == 0 || name.is_empty() || *name == p.entry.dirs[i - 1].1)
                        })
                };
                let changed = self.overflow_at > p.sent || self.recent.iter().any(relevant);
                if changed || self.broken || p.entry.body.len() > budget {
                    self.unwatch.extend_from_slice(&w.wds);
                } else {
                    self.add(key, p.entry, w, budget);
                }
            }
            (None, Some(w)) => self.unwatch.extend_from_slice(&w.wds),
            (_, None) => {}
        }
        // Only events later than the oldest job still out matter.
        match self.pending.values().map(|p| p.sent).min() {
            None => self.recent.clear(),
            Some(oldest) => self.recent.retain(|(s, _, _)| *s > oldest),
        }
        self.flush_unwatch(Some(helper));
    }

    fn add(&mut self, key: CacheKey, entry: CacheEntry, w: Watched, budget: usize) {
        let size = entry.body.len();
        self.evict_for(size, budget);
        let mut watches = Vec::with_capacity(w.wds.len());
        for (i, wd) in w.wds.iter().enumerate() {
            let name = if i == 0 {
                None
            } else {
                Some(entry.dirs[i - 1].1.clone())
            };
            watches.push((*wd, name));
            self.watches.entry(*wd).or_default().insert(key.clone());
        }
        self.tick += 1;
        self.lru.insert(self.tick, key.clone());
        self.bytes += size;
        self.map.insert(
            key,
            Slot {
                entry,
                used: self.tick,
                watches,
                verify: w.verify,
            },
        );
    }

    /// Applies a batch of inotify events.
    fn apply_events(&mut self, buf: &[u8]) {
        let mut drop: Vec<CacheKey> = Vec::new();
        let mut overflow = false;
        let mut p = 0;
        while p + 16 <= buf.len() {
            let word = |i: usize| u32::from_ne_bytes(buf[p + i..p + i + 4].try_into().expect("4"));
            let wd = word(0) as i32;
            let mask = word(4);
            let len = word(12) as usize;
            let name_raw = buf.get(p + 16..p + 16 + len).unwrap_or(&[]);
            let name = &name_raw[..name_raw
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(name_raw.len())];
            p += 16 + len;
            self.seq += 1;
            if mask & libc::IN_Q_OVERFLOW != 0 {
                overflow = true;
                self.overflow_at = self.seq;
                continue;
            }
            if !self.pending.is_empty() {
                self.recent.push((self.seq, wd, name.to_vec()));
            }
            let Some(keys) = self.watches.get(&wd) else {
                continue;
            };
            for k in keys {
                let Some(slot) = self.map.get(k) else {
                    continue;
                };
                // A directory's event about another name leaves this entry.
                let about_other = !name.is_empty()
                    && slot
                        .watches
                        .iter()
                        .all(|(w, n)| *w != wd || n.as_deref().is_some_and(|n| n != name));
                if !about_other || mask & libc::IN_IGNORED != 0 {
                    drop.push(k.clone());
                }
            }
        }
        if overflow {
            tracing::debug!("inotify queue overflowed: file cache dropped");
            self.clear();
            return;
        }
        for k in drop {
            tracing::trace!(?k, "file cache entry invalidated");
            self.remove(&k);
        }
    }
}

/// What a helper answer means for the cache (called by `send_file.rs`).
pub(crate) fn on_answer(cache: &mut FileCache, helper: &mut Helper, a: Answer, budget: usize) {
    match a {
        Answer::InotifyReady => {
            cache.drain();
            helper.inotify_drained();
            cache.flush_unwatch(Some(helper));
        }
        Answer::Watched { id, result } => cache.on_watched(helper, id, result, budget),
        Answer::Listed { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(wd: i32, mask: u32, name: &[u8]) -> Vec<u8> {
        let len = if name.is_empty() {
            0
        } else {
            (name.len() + 1).next_multiple_of(16)
        };
        let mut v = Vec::new();
        v.extend_from_slice(&wd.to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        let mut n = name.to_vec();
        n.resize(len, 0);
        v.extend_from_slice(&n);
        v
    }

    fn entry(dir: &std::path::Path, name: &str, body: &[u8]) -> (CacheKey, CacheEntry) {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        let stat = crate::send_file::file_stat(&std::fs::metadata(&path).unwrap());
        let key = (0, name.as_bytes().to_vec(), false);
        let e = CacheEntry {
            body: Bytes::copy_from_slice(body),
            stat,
            stat_path: path,
            dirs: vec![(dir.to_path_buf(), name.as_bytes().to_vec())],
            mime: "text/plain",
        };
        (key, e)
    }

    /// Runs the helper's jobs on this thread: watches the pending entries.
    fn settle(c: &mut FileCache, ino: &OwnedFd, refs: &mut HashMap<i32, usize>) {
        let jobs: Vec<_> = c
            .pending
            .values()
            .map(|p| Job::Watch {
                id: p.job,
                file: p.entry.stat_path.clone(),
                dirs: p.entry.dirs.iter().map(|(d, _)| d.clone()).collect(),
                expect: p.entry.stat,
            })
            .collect();
        for j in jobs {
            if let Some(Answer::Watched { id, result }) =
                crate::fs_helper::run_job(Some(ino), refs, j)
            {
                c.drain();
                let key = c
                    .pending
                    .iter()
                    .find(|(_, p)| p.job == id)
                    .map(|(k, _)| k.clone());
                let p = c.pending.remove(&key.unwrap()).unwrap();
                c.pending_bytes -= p.entry.body.len();
                let w = result.expect("watched");
                c.add(
                    (
                        0,
                        p.entry
                            .stat_path
                            .file_name()
                            .unwrap()
                            .as_encoded_bytes()
                            .to_vec(),
                        false,
                    ),
                    p.entry,
                    w,
                    250,
                );
            }
        }
        let wds = std::mem::take(&mut c.unwatch);
        crate::fs_helper::run_job(Some(ino), refs, Job::Unwatch { wds });
    }

    fn hit(c: &mut FileCache, name: &str) -> bool {
        matches!(
            c.lookup(&(0, name.as_bytes().to_vec(), false)),
            Lookup::Hit(..)
        )
    }

    #[test]
    fn watches_follow_entries_and_events_drop_them() {
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let mut c = FileCache::default();
        let ino = c.start_inotify().unwrap();
        let mut refs = HashMap::new();
        // Without a helper nothing is offered.
        let (k, e) = entry(&dir, "a", &[0; 100]);
        c.insert(None, k, e, 250);
        assert_eq!(c.usage(), (0, 0));
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let (k, e) = entry(&dir, name, &[i as u8; 100]);
            c.next_job += 1;
            c.pending_bytes += 100;
            c.pending.insert(
                k,
                Pending {
                    job: c.next_job,
                    entry: e,
                    sent: c.seq,
                },
            );
            settle(&mut c, &ino, &mut refs);
        }
        // 250-byte budget: the least recently used entry went.
        assert_eq!(c.usage(), (200, 2));
        assert!(!c.map.contains_key(&(0, b"a".to_vec(), false)));
        // One file watch per entry plus the shared directory watch, on both
        // sides.
        assert_eq!(c.watches.len(), 3);
        assert_eq!(refs.len(), 3);
        // Hits need no stat; an unchanged file is served.
        assert!(hit(&mut c, "b"));
        let st = c.map[&(0, b"b".to_vec(), false)].entry.stat;
        let mut other = st;
        other.mtime_nsec ^= 1;
        assert!(c.get_valid(&(0, b"b".to_vec(), false), &other).is_none());
        // Another file of the directory changes: entries stay.
        std::fs::write(dir.join("zzz"), "z").unwrap();
        std::fs::remove_file(dir.join("zzz")).unwrap();
        assert!(hit(&mut c, "b") && hit(&mut c, "c"));
        // "b" is written: its next lookup misses; its watch goes with it.
        std::fs::write(dir.join("b"), [9; 100]).unwrap();
        assert!(!hit(&mut c, "b"));
        assert!(hit(&mut c, "c"));
        assert_eq!(c.usage(), (100, 1));
        assert_eq!(c.watches.len(), 2);
        settle(&mut c, &ino, &mut refs);
        assert_eq!(refs.len(), 2, "the helper removed b's watch");
        // Replaced by rename: the directory's event names it.
        std::fs::write(dir.join(".new"), [7; 100]).unwrap();
        std::fs::rename(dir.join(".new"), dir.join("c")).unwrap();
        assert!(!hit(&mut c, "c"));
        assert_eq!(c.usage(), (0, 0));
        assert!(c.watches.is_empty());
        settle(&mut c, &ino, &mut refs);
        assert!(refs.is_empty());
    }

    #[test]
    fn a_change_while_watches_are_added_refuses_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        let mut c = FileCache::default();
        let ino = c.start_inotify().unwrap();
        let mut refs = HashMap::new();
        // Changed before the watch existed: the helper's check refuses it.
        let (k, e) = entry(&dir, "a", b"one");
        std::fs::write(dir.join("a"), b"two!").unwrap();
        let job = Job::Watch {
            id: 1,
            file: e.stat_path.clone(),
            dirs: vec![dir.clone()],
            expect: e.stat,
        };
        let a = crate::fs_helper::run_job(Some(&ino), &mut refs, job);
        assert!(matches!(a, Some(Answer::Watched { result: None, .. })));
        assert!(refs.is_empty(), "refused watches are removed");
        // Changed after the watch, before the loop saw the answer: the
        // event counts against it.
        let (_, e) = entry(&dir, "a", b"one");
        c.next_job = 2;
        c.pending_bytes = 3;
        c.pending.insert(
            k.clone(),
            Pending {
                job: 2,
                entry: e.clone(),
                sent: c.seq,
            },
        );
        let job = Job::Watch {
            id: 2,
            file: e.stat_path.clone(),
            dirs: vec![dir.clone()],
            expect: e.stat,
        };
        let Some(Answer::Watched { id, result }) =
            crate::fs_helper::run_job(Some(&ino), &mut refs, job)
        else {
            panic!("no answer");
        };
        assert!(result.is_some());
        std::fs::write(dir.join("a"), b"six").unwrap();
        let wds = result.as_ref().unwrap().wds.clone();
        // (on_watched without a helper thread: the same steps.)
        c.drain();
        let p = c.pending.remove(&k).unwrap();
        c.pending_bytes -= 3;
        assert_eq!(p.job, id);
        assert!(c
            .recent
            .iter()
            .any(|(s, wd, _)| *s > p.sent && wds.contains(wd)));
    }

    #[test]
    fn overflow_event_parses_and_drops_everything() {
        let mut c = FileCache::default();
        let mut buf = event(-1, libc::IN_Q_OVERFLOW, b"");
        buf.extend(event(3, libc::IN_MODIFY, b"name.txt"));
        c.apply_events(&buf); // nothing cached: must not panic
        assert_eq!(c.usage(), (0, 0));
        assert_eq!(c.overflow_at, 1);
    }
}
