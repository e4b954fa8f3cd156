//! The access log written by a thread of its own — to `--access-log-file
//! PATH`, or to stderr when none is given — so an event loop never waits
//! for the disk or for whoever reads stderr.
//!
//! The event loops hand their lines over in batches
//! (`network_server::AccessLogSink`: a loop gathers up to 32 KiB, and
//! hands over at least every timer tick), not as one `tracing` event each.
//! Batches reach the writer thread through a channel bounded to
//! [`CAPACITY`] messages and [`MAX_QUEUED_BYTES`] bytes. When the writer
//! falls behind — a slow or full disk — and either bound is reached, the
//! loops do not wait: the batch is dropped and its lines counted
//! (`ringtail_access_log_dropped_total` in `/metrics`, [`dropped`]). The
//! writer appends to the file (created if missing) or writes stderr, and
//! flushes whenever it has caught up; a write error is reported once on
//! stderr and the lines that fail are counted as dropped. The process
//! flushes what is queued before it exits ([`Guard`], waiting at most a
//! second: a stderr nobody reads does not hold the exit).
//!
//! While lines keep coming the writer does not wait in `recv` between
//! batches but looks again every [`POLL`]: a sender wakes a receiver that
//! waits (a futex call, and a switch to the writer, per line — with the
//! log on, a keep-alive `/hello` server answered half as many requests per
//! second), while one that polls collects a batch per look and writes it
//! with one `write`. After [`IDLE_POLLS`] empty looks it waits in `recv`
//! again, so an idle server's writer sleeps.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// How often a busy writer looks for lines (their latency to the file).
/// At 1.5 M lines/s a look finds ~3,000, well under [`CAPACITY`].
pub const POLL: Duration = Duration::from_millis(2);

/// Empty looks (100 ms) after which the writer waits in `recv` instead.
const IDLE_POLLS: u32 = 50;

/// Messages (batches, or single lines from `tracing`) that may wait for
/// the writer thread.
pub const CAPACITY: usize = 16 * 1024;

/// Bytes that may wait for the writer thread.
pub const MAX_QUEUED_BYTES: usize = 16 << 20;

/// Lines dropped because the writer was behind (or failed).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Access-log lines dropped so far.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

enum Msg {
    Line(Vec<u8>),
    /// Write everything before this, flush, and answer.
    Flush(mpsc::Sender<()>),
}

/// The way to the writer thread: batches from the loops' sink
/// ([`AccessFile::send`]), and, as a `tracing_subscriber` writer, each
/// event's text as one message.
#[derive(Clone)]
pub struct AccessFile {
    tx: SyncSender<Msg>,
    /// Bytes sent and not yet written.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
}

impl AccessFile {
    /// Hands `lines` (whole lines, each ending in `\n`) to the writer;
    /// drops and counts them when it is behind.
    pub fn send(&self, lines: Vec<u8>) {
        let n = lines.len();
        if self.queued.fetch_add(n, Ordering::Relaxed) + n > self.max_queued {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return count_dropped(&lines);
        }
        match self.tx.try_send(Msg::Line(lines)) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) | Err(TrySendError::Disconnected(msg)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
                if let Msg::Line(lines) = msg {
                    count_dropped(&lines);
                }
            }
        }
    }
}

/// Counts the lines of a batch that will not be written.
fn count_dropped(lines: &[u8]) {
    let n = lines.iter().filter(|&&b| b == b'\n').count().max(1);
    DROPPED.fetch_add(n as u64, Ordering::Relaxed);
}

/// Flushes the file when dropped (at the end of `main`), waiting at most
/// a second for the writer.
pub struct Guard {
    tx: SyncSender<Msg>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// Opens `path` for appending and starts the writer thread.
pub fn open(path: &Path) -> Result<(AccessFile, Guard), String> {
    open_with(path, CAPACITY, MAX_QUEUED_BYTES)
}

fn open_with(
    path: &Path,
    capacity: usize,
    max_queued: usize,
) -> Result<(AccessFile, Guard), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open --access-log-file {}: {e}", path.display()))?;
    start(file, capacity, max_queued)
}

/// Starts the writer thread on stderr: the access log's lines where no
/// `--access-log-file` is given. Stderr is written under its lock, a
/// batch at a time, so a line of the rest of the log (also written whole
/// under that lock) never lands inside an access line; and a stderr that
/// blocks (a full pipe, a stopped terminal) stalls this thread, not a loop.
pub fn stderr() -> Result<(AccessFile, Guard), String> {
    start(std::io::stderr(), CAPACITY, MAX_QUEUED_BYTES)
}

fn start(
    out: impl Write + Send + 'static,
    capacity: usize,
    max_queued: usize,
) -> Result<(AccessFile, Guard), String> {
    let (tx, rx) = mpsc::sync_channel(capacity);
    let queued = Arc::new(AtomicUsize::new(0));
    let written = queued.clone();
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || write_lines(out, rx, &written))
        .map_err(|e| format!("cannot start the access-log writer: {e}"))?;
    let file = AccessFile {
        tx: tx.clone(),
        queued,
        max_queued,
    };
    Ok((file, Guard { tx }))
}

fn write_lines(out: impl Write, rx: Receiver<Msg>, queued: &AtomicUsize) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut failed = false;
    let fail = |e: std::io::Error, failed: &mut bool| {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(failed, true) {
            eprintln!("ringtail: cannot write the access log: {e}");
        }
    };
    let mut idle = IDLE_POLLS;
    loop {
        let msg = if idle < IDLE_POLLS {
            match rx.try_recv() {
                Ok(msg) => msg,
                Err(TryRecvError::Empty) => {
                    idle += 1;
                    std::thread::sleep(POLL);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(msg) => msg,
                Err(_) => break,
            }
        };
        idle = 0;
        let mut next = Some(msg);
        // Everything waiting, then one flush.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(line) => {
                    if let Err(e) = out.write_all(&line) {
                        fail(e, &mut failed);
                    }
                    queued.fetch_sub(line.len(), Ordering::Relaxed);
                }
                Msg::Flush(ack) => {
                    if let Err(e) = out.flush() {
                        fail(e, &mut failed);
                    }
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            fail(e, &mut failed);
        }
    }
}

/// The loops' sink for access lines: each batch goes to `out`'s writer.
fn sink_to(out: AccessFile) -> network_server::AccessLogSink {
    network_server::AccessLogSink::new(move |lines| out.send(lines))
}

/// Sets up the log: everything on stderr (filtered by `--log-level`); the
/// access log — every line of it, whatever the log level — through the
/// sink this puts in `settings.server` to a writer thread, which writes
/// `--access-log-file` when one is given (with any other `tracing` event
/// with target `access`), else stderr, as plain combined-format lines. The
/// guard flushes the writer when dropped.
pub fn init_logging(settings: &mut crate::config::Settings) -> Result<Option<Guard>, String> {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::prelude::*;
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let Some(path) = &settings.access_log_file else {
        tracing_subscriber::registry()
            .with(stderr.with_filter(settings.log_filter.clone()))
            .init();
        if !settings.server.access_log {
            return Ok(None);
        }
        // The access lines go to stderr through a writer thread too: not
        // one `tracing` event each, and never a loop waiting on stderr.
        let (out, guard) = self::stderr()?;
        settings.server.access_log_sink = Some(sink_to(out));
        return Ok(Some(guard));
    };
    let (file, guard) = open(path)?;
    settings.server.access_log_sink = Some(sink_to(file.clone()));
    let access = tracing_subscriber::fmt::layer()
        .with_writer(file)
        .with_ansi(false)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_filter(filter_fn(|m| m.target() == "access"));
    tracing_subscriber::registry()
        .with(
            stderr
                .with_filter(settings.log_filter.clone())
                .with_filter(filter_fn(|m| m.target() != "access")),
        )
        .with(access)
        .init();
    Ok(Some(guard))
}

/// One event's text, sent when the writer is dropped.
pub struct LineWriter {
    buf: Vec<u8>,
    file: AccessFile,
}

impl Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.file.send(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AccessFile {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            buf: Vec::with_capacity(256),
            file: self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn lines_reach_the_file_and_a_full_channel_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        // A writer thread that cannot take anything: the channel of one
        // line is full after the first, so the second is dropped.
        let (tx, rx) = mpsc::sync_channel(1);
        let stuck = AccessFile {
            tx,
            queued: Arc::default(),
            max_queued: 1 << 20,
        };
        let before = dropped();
        writeln!(stuck.make_writer(), "one").unwrap();
        writeln!(stuck.make_writer(), "two").unwrap();
        assert_eq!(dropped() - before, 1, "the second line was dropped");
        // A batch is dropped whole, each of its lines counted.
        stuck.send(b"a\nb\nc\n".to_vec());
        assert_eq!(dropped() - before, 4);
        drop(rx);

        // Past the byte bound (nothing written yet: 8 bytes wait), a batch
        // is dropped even though the channel has room.
        let (tx, _rx) = mpsc::sync_channel(8);
        let full = AccessFile {
            tx,
            queued: Arc::default(),
            max_queued: 10,
        };
        let before = dropped();
        full.send(b"1234567\n".to_vec());
        full.send(b"x\ny\nz\n".to_vec());
        assert_eq!(dropped() - before, 3, "the second batch crossed the bound");
        assert_eq!(full.queued.load(Ordering::Relaxed), 8);

        let (file, guard) = open_with(&path, 8, 1 << 20).unwrap();
        for i in 0..3 {
            writeln!(file.make_writer(), "line {i}").unwrap();
        }
        file.send(b"batch 1\nbatch 2\n".to_vec());
        drop(guard); // flushes
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "line 0\nline 1\nline 2\nbatch 1\nbatch 2\n");
        assert_eq!(
            file.queued.load(Ordering::Relaxed),
            0,
            "written bytes leave the count"
        );
    }

    #[test]
    fn a_file_that_cannot_be_opened_is_named() {
        let e = open(Path::new("/nonexistent-dir/access.log"))
            .map(|_| ())
            .unwrap_err();
        assert!(e.contains("/nonexistent-dir/access.log"), "{e}");
    }
}
