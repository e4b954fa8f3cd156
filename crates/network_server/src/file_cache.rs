//! The file cache: whole small files kept in memory as reference-counted
//! [`Bytes`], served as `OutBuf::Bytes` without a copy.
//!
//! Bounded in bytes ([`crate::FileConfig::cache_bytes`]) and per file
//! ([`crate::FileConfig::cache_max_file`]); least recently used entries go
//! first.
//!
//! Two mechanisms keep it honest (the argument is in `docs/send-file.md`):
//!
//! 1. **Every hit is checked** with a `statx` of the file's path through the
//!    ring before it is served: device, inode, size and modification time
//!    (nanoseconds) must equal those recorded when the content was read.
//!    A changed, replaced or deleted file is a miss and is opened afresh.
//! 2. **inotify through the ring** drops entries as soon as their file or
//!    directory reports a change (`IN_MODIFY`, `IN_ATTRIB`, `IN_CLOSE_WRITE`,
//!    `IN_DELETE_SELF`, `IN_MOVE_SELF` on the file; `IN_DELETE`,
//!    `IN_MOVED_FROM`, `IN_MOVED_TO` of its name, or
//!    `IN_DELETE_SELF`/`IN_MOVE_SELF` of its directory), so memory is not
//!    held for dead files; `IN_Q_OVERFLOW` drops everything. The inotify
//!    descriptor is a pfd read with ring `read`s, re-armed after each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use bytes::Bytes;
use event_manager::{Completion, CompletionKind, EventManager, FileStat, Pfd};
use rustix::fs::inotify::{self, WatchFlags};

use crate::send_file::{op_tag, SUB_INOTIFY};
use crate::server::Core;

/// Root index, decoded relative path, directory request.
pub(crate) type CacheKey = (u32, Vec<u8>, bool);

/// One cached file.
#[derive(Debug, Clone)]
pub(crate) struct CacheEntry {
    pub(crate) body: Bytes,
    /// Metadata when the content was read (from `fstat` of the open file).
    pub(crate) stat: FileStat,
    /// Absolute path of the file, for the check on each hit.
    pub(crate) stat_path: PathBuf,
    /// Its MIME type.
    pub(crate) mime: &'static str,
}

#[derive(Debug)]
struct Slot {
    entry: CacheEntry,
    used: u64,
    file_wd: i32,
    dir_wd: i32,
    name: Vec<u8>,
}

#[derive(Debug)]
struct Inotify {
    pfd: Pfd,
    /// A duplicate of the descriptor for `inotify_add_watch`/`rm_watch`
    /// (the original belongs to the event manager).
    ctl: OwnedFd,
    watches: HashMap<i32, HashSet<CacheKey>>,
}

/// Bounded LRU cache of small files, invalidated by inotify and checked on
/// every hit.
#[derive(Debug, Default)]
pub(crate) struct FileCache {
    map: HashMap<CacheKey, Slot>,
    lru: BTreeMap<u64, CacheKey>,
    tick: u64,
    bytes: usize,
    inotify: Option<Inotify>,
    /// inotify could not be set up: cache nothing.
    broken: bool,
}

const FILE_MASK: WatchFlags = WatchFlags::MODIFY
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF);
// No IN_CREATE: a cached name can only be created anew after an
// IN_DELETE or IN_MOVED_FROM of it (which already dropped the entry), and a
// late IN_CREATE would only drop the fresh entry made after it.
const DIR_MASK: WatchFlags = WatchFlags::DELETE
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

const INOTIFY_BUF: usize = 16 * 1024;

fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.dev == b.dev
        && a.ino == b.ino
        && a.size == b.size
        && a.mtime_sec == b.mtime_sec
        && a.mtime_nsec == b.mtime_nsec
        && b.is_file()
}

impl FileCache {
    /// Bytes of content and number of entries.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.bytes, self.map.len())
    }

    /// For a cached `key`: a fresh `statx` of its file's path (`None` if
    /// that failed). `None` if not cached.
    pub(crate) fn current_stat(&self, key: &CacheKey) -> Option<Option<FileStat>> {
        let slot = self.map.get(key)?;
        let m = std::fs::metadata(&slot.entry.stat_path).ok();
        Some(m.map(|m| crate::send_file::file_stat(&m)))
    }

    /// The entry for `key` if `st` (a fresh `statx` of its path) shows the
    /// same file, unchanged.
    pub(crate) fn get_valid(
        &mut self,
        key: &CacheKey,
        st: &FileStat,
    ) -> Option<(Bytes, FileStat, &'static str)> {
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
        if let Some(ino) = &mut self.inotify {
            for wd in [slot.file_wd, slot.dir_wd] {
                if let Some(keys) = ino.watches.get_mut(&wd) {
                    keys.remove(key);
                    if keys.is_empty() {
                        ino.watches.remove(&wd);
                        let _ = inotify::remove_watch(&ino.ctl, wd);
                    }
                }
            }
        }
    }

    fn clear(&mut self) {
        let keys: Vec<CacheKey> = self.map.keys().cloned().collect();
        for k in keys {
            self.remove(&k);
        }
    }

    /// Caches `entry` under `key`, evicting least recently used entries to
    /// stay within `budget` bytes. Files that cannot be watched are not
    /// cached.
    pub(crate) fn insert(
        &mut self,
        em: &mut EventManager,
        key: CacheKey,
        entry: CacheEntry,
        budget: usize,
    ) {
        let size = entry.body.len();
        if size > budget || self.broken {
            return;
        }
        self.remove(&key);
        if self.inotify.is_none() && !self.start_inotify(em) {
            return;
        }
        while self.bytes + size > budget {
            let Some((_, k)) = self.lru.pop_first() else {
                break;
            };
            self.remove(&k);
        }
        let ino = self.inotify.as_mut().expect("started");
        let Some(dir) = entry.stat_path.parent() else {
            return;
        };
        let name = entry
            .stat_path
            .file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_default();
        let file_wd = match inotify::add_watch(&ino.ctl, &entry.stat_path, FILE_MASK) {
            Ok(wd) => wd,
            Err(e) => {
                tracing::debug!(error = %e, path = ?entry.stat_path, "cannot watch; not cached");
                return;
            }
        };
        ino.watches.entry(file_wd).or_default().insert(key.clone());
        let dir_wd = match inotify::add_watch(&ino.ctl, dir, DIR_MASK) {
            Ok(wd) => wd,
            Err(e) => {
                tracing::debug!(error = %e, ?dir, "cannot watch directory; not cached");
                if let Some(keys) = ino.watches.get_mut(&file_wd) {
                    keys.remove(&key);
                    if keys.is_empty() {
                        ino.watches.remove(&file_wd);
                        let _ = inotify::remove_watch(&ino.ctl, file_wd);
                    }
                }
                return;
            }
        };
        ino.watches.entry(dir_wd).or_default().insert(key.clone());
        self.tick += 1;
        self.lru.insert(self.tick, key.clone());
        self.bytes += size;
        self.map.insert(
            key,
            Slot {
                entry,
                used: self.tick,
                file_wd,
                dir_wd,
                name,
            },
        );
    }

    fn start_inotify(&mut self, em: &mut EventManager) -> bool {
        let mut setup = || -> std::io::Result<Inotify> {
            // Blocking descriptor: the ring's read waits for events.
            let fd = inotify::init(inotify::CreateFlags::CLOEXEC)?;
            let ctl = fd.try_clone()?;
            let pfd = em.adopt(fd).map_err(std::io::Error::from)?;
            Ok(Inotify {
                pfd,
                ctl,
                watches: HashMap::new(),
            })
        };
        match setup() {
            Ok(ino) => {
                let pfd = ino.pfd;
                self.inotify = Some(ino);
                if em
                    .read(
                        pfd,
                        Vec::with_capacity(INOTIFY_BUF),
                        None,
                        op_tag(SUB_INOTIFY, 0),
                    )
                    .is_err()
                {
                    self.inotify = None;
                    self.broken = true;
                    return false;
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable: file cache disabled");
                self.broken = true;
                false
            }
        }
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
            if mask & libc::IN_Q_OVERFLOW != 0 {
                overflow = true;
                continue;
            }
            let Some(ino) = &self.inotify else { continue };
            let Some(keys) = ino.watches.get(&wd) else {
                continue;
            };
            for k in keys {
                let Some(slot) = self.map.get(k) else {
                    continue;
                };
                // A directory's event about another name leaves this entry.
                if !name.is_empty() && slot.dir_wd == wd && slot.name != name {
                    continue;
                }
                drop.push(k.clone());
            }
            if mask & libc::IN_IGNORED != 0 {
                // The watch is gone (file deleted, or removed by us).
                if let Some(ino) = &mut self.inotify {
                    if let Some(keys) = ino.watches.remove(&wd) {
                        drop.extend(keys);
                    }
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

impl Core {
    /// An inotify read came back: apply it and read again.
    pub(crate) fn on_inotify(&mut self, em: &mut EventManager, c: Completion) {
        let CompletionKind::Read {
            pfd,
            mut buf,
            result,
        } = c.kind
        else {
            return;
        };
        let cache = &mut self.transfers.cache;
        match result {
            Ok(n) if n > 0 => {
                cache.apply_events(&buf);
                buf.clear();
                if em.read(pfd, buf, None, op_tag(SUB_INOTIFY, 0)).is_ok() {
                    return;
                }
            }
            Ok(_) => {}
            Err(event_manager::Error::Cancelled) => {}
            Err(e) => tracing::warn!(error = %e, "inotify read failed"),
        }
        // Without inotify the cache cannot be trusted to shrink: drop it and
        // stop caching (the per-hit check still keeps answers fresh).
        cache.clear();
        if let Some(ino) = cache.inotify.take() {
            let _ = em.close(ino.pfd, op_tag(crate::send_file::SUB_INOTIFY, 1));
        }
        cache.broken = true;
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
            mime: "text/plain",
        };
        (key, e)
    }

    #[test]
    fn watches_follow_entries_and_overflow_drops_everything() {
        let mut em = EventManager::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = FileCache::default();
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let (k, e) = entry(dir.path(), name, &[i as u8; 100]);
            c.insert(&mut em, k, e, 250);
        }
        // 250-byte budget: the least recently used entry went.
        assert_eq!(c.usage(), (200, 2));
        assert!(!c.map.contains_key(&(0, b"a".to_vec(), false)));
        // One file watch per entry plus the shared directory watch.
        assert_eq!(c.inotify.as_ref().unwrap().watches.len(), 3);
        let st = c.map[&(0, b"b".to_vec(), false)].entry.stat;
        assert!(c.get_valid(&(0, b"b".to_vec(), false), &st).is_some());
        let mut other = st;
        other.mtime_nsec ^= 1;
        assert!(c.get_valid(&(0, b"b".to_vec(), false), &other).is_none());
        // An event naming another file of the directory leaves entries alone.
        let dir_wd = c.map[&(0, b"b".to_vec(), false)].dir_wd;
        c.apply_events(&event(dir_wd, libc::IN_DELETE, b"zzz"));
        assert_eq!(c.usage().1, 2);
        // One naming "b" drops b only; its file watch goes with it.
        c.apply_events(&event(dir_wd, libc::IN_MOVED_TO, b"b"));
        assert_eq!(c.usage(), (100, 1));
        assert_eq!(c.inotify.as_ref().unwrap().watches.len(), 2);
        // Overflow: everything goes, watches too.
        c.apply_events(&event(-1, libc::IN_Q_OVERFLOW, b""));
        assert_eq!(c.usage(), (0, 0));
        assert!(c.inotify.as_ref().unwrap().watches.is_empty());
    }

    #[test]
    fn overflow_event_parses() {
        let mut c = FileCache::default();
        let mut buf = event(-1, libc::IN_Q_OVERFLOW, b"");
        buf.extend(event(3, libc::IN_MODIFY, b"name.txt"));
        c.apply_events(&buf); // nothing cached: must not panic
        assert_eq!(c.usage(), (0, 0));
    }
}
