//! The event-loop threads and what the process asks of them.
//!
//! Every loop runs on its own thread with its own `Server` (which never
//! leaves that thread). The process talks to a loop through two channels:
//! it wakes the loop with [`Control::Pause`] through the hub, the loop's
//! `Server::run` returns, and the thread then takes [`Cmd`]s — quiesce,
//! export, and finally resume (run again) or release (give up the
//! descriptors and end). A loop imported from an older process starts
//! quiesced and waits for resume or release the same way.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use network_server::Server;

use crate::app::Ringtail;
use crate::hub::{Control, Hub};

/// A command for a loop's thread while it is paused.
#[derive(Debug)]
pub enum Cmd {
    /// `Server::quiesce`.
    Quiesce,
    /// `Server::export` (the server stays quiesced and keeps its descriptors).
    Export,
    /// `Server::resume`, then serve again.
    Resume,
    /// `Server::release`: close this process's copies of the descriptors and
    /// end the thread (the new process holds its own).
    Release,
}

/// A loop's answer.
#[derive(Debug)]
pub enum Reply {
    /// The loop is built (or imported) and waits (imported) or serves: its
    /// connection count.
    Started(Result<usize, String>),
    /// A command was carried out (or why not).
    Done(Result<(), String>),
    /// The export.
    Exported(Result<LoopExport, String>),
}

/// One loop's snapshot: its bytes and its descriptors, which stay owned by
/// the loop (valid until it is released or resumed).
#[derive(Debug)]
pub struct LoopExport {
    pub bytes: Vec<u8>,
    pub fds: Vec<RawFd>,
    pub connections: usize,
}

/// The process's side of one loop.
#[derive(Debug)]
pub struct LoopHandle {
    cmd: mpsc::Sender<Cmd>,
    reply: mpsc::Receiver<Reply>,
    join: Option<JoinHandle<Result<(), String>>>,
}

/// What a new loop thread starts from (one per thread, moved once).
#[allow(clippy::large_enum_variant)]
pub enum Start {
    /// Build it (listeners, eventfd, roots) with this closure, then serve.
    Build(Box<dyn FnOnce() -> Result<(Server, Ringtail), String> + Send>),
    /// Make a fresh server (its ring) at once, then import the snapshot
    /// that comes through `data` into it (the app for it comes from the
    /// closure) and wait for resume or release. If `data` closes first, the
    /// thread ends without a reply (a loop made ready but not needed).
    Import {
        config: network_server::ServerConfig,
        data: mpsc::Receiver<(Vec<u8>, Vec<OwnedFd>)>,
        app: Box<dyn FnOnce() -> Ringtail + Send>,
    },
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Start::Build(_) => f.write_str("Start::Build"),
            Start::Import { .. } => f.write_str("Start::Import"),
        }
    }
}

impl LoopHandle {
    /// Starts loop `index` on a thread named `ringtail-INDEX`; the first
    /// reply is [`Reply::Started`]. `on_end` is called when the thread ends
    /// (returns or panics).
    pub fn spawn(
        index: usize,
        start: Start,
        on_end: Box<dyn FnOnce() + Send>,
    ) -> std::io::Result<LoopHandle> {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (reply_tx, reply_rx) = mpsc::channel();
        /// Calls `on_end` when dropped.
        struct Ended(Option<Box<dyn FnOnce() + Send>>);
        impl Drop for Ended {
            fn drop(&mut self) {
                if let Some(f) = self.0.take() {
                    f();
                }
            }
        }
        let join = std::thread::Builder::new()
            .name(format!("ringtail-{index}"))
            .spawn(move || {
                let _ended = Ended(Some(on_end));
                loop_thread(start, cmd_rx, reply_tx)
            })?;
        Ok(LoopHandle {
            cmd: cmd_tx,
            reply: reply_rx,
            join: Some(join),
        })
    }

    /// Sends `cmd` (an ended loop cannot take it).
    pub fn send(&self, cmd: Cmd) -> Result<(), String> {
        self.cmd
            .send(cmd)
            .map_err(|_| "an event loop has ended".to_string())
    }

    /// The loop's next reply, waiting at most `timeout`.
    pub fn reply(&self, timeout: Duration) -> Result<Reply, String> {
        self.reply.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => {
                format!("an event loop did not answer within {timeout:?}")
            }
            mpsc::RecvTimeoutError::Disconnected => "an event loop has ended".to_string(),
        })
    }

    /// Waits for the thread to end: its result.
    pub fn join(&mut self) -> Result<(), String> {
        match self.join.take() {
            Some(j) => j.join().map_err(|_| "an event loop panicked".to_string())?,
            None => Ok(()),
        }
    }
}

/// Sends `cmd` to every loop and collects one `Done` from each: the first
/// failure (every loop is asked and answers first).
pub fn all_done(
    loops: &[LoopHandle],
    cmd: impl Fn() -> Cmd,
    timeout: Duration,
) -> Result<(), String> {
    for l in loops {
        l.send(cmd())?;
    }
    let mut first_err = None;
    for l in loops {
        let r = match l.reply(timeout) {
            Ok(Reply::Done(r)) => r,
            Ok(other) => Err(format!("an event loop answered {other:?}")),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Asks every loop to pause ([`Control::Pause`]) and quiesce. On failure
/// the loops that quiesced are resumed (a rollback) and the reason given.
pub fn pause_all(hub: &Hub, loops: &[LoopHandle], timeout: Duration) -> Result<(), String> {
    for i in 0..loops.len() {
        hub.request(i, Control::Pause);
    }
    let r = all_done(loops, || Cmd::Quiesce, timeout);
    if let Err(e) = r {
        resume_all(loops, timeout);
        return Err(e);
    }
    Ok(())
}

/// Resumes every loop (logging failures: a loop that cannot resume is
/// already lost).
pub fn resume_all(loops: &[LoopHandle], timeout: Duration) {
    if let Err(e) = all_done(loops, || Cmd::Resume, timeout) {
        tracing::error!(error = %e, "an event loop did not resume");
    }
}

/// Exports every (quiesced) loop.
pub fn export_all(loops: &[LoopHandle], timeout: Duration) -> Result<Vec<LoopExport>, String> {
    for l in loops {
        l.send(Cmd::Export)?;
    }
    let mut out = Vec::new();
    let mut first_err = None;
    for l in loops {
        match l.reply(timeout) {
            Ok(Reply::Exported(Ok(e))) => out.push(e),
            Ok(Reply::Exported(Err(e))) | Err(e) => {
                first_err.get_or_insert(e);
            }
            Ok(other) => {
                first_err.get_or_insert(format!("an event loop answered {other:?}"));
            }
        }
    }
    first_err.map_or(Ok(out), Err)
}

fn loop_thread(
    start: Start,
    cmds: mpsc::Receiver<Cmd>,
    replies: mpsc::Sender<Reply>,
) -> Result<(), String> {
    let (server, mut app, running) = match start {
        Start::Build(build) => match build() {
            Ok((s, a)) => {
                let n = s.client_count();
                let _ = replies.send(Reply::Started(Ok(n)));
                (s, a, true)
            }
            Err(e) => {
                let _ = replies.send(Reply::Started(Err(e.clone())));
                return Err(e);
            }
        },
        Start::Import { config, data, app } => {
            // The ring is made now, before the old process pauses.
            let fresh = Server::new(config);
            let Ok((bytes, fds)) = data.recv() else {
                return Ok(());
            };
            let fresh = match fresh {
                Ok(s) => s,
                Err(e) => {
                    let e = format!("cannot set up a loop: {e}");
                    let _ = replies.send(Reply::Started(Err(e.clone())));
                    return Err(e);
                }
            };
            let mut app = app();
            // The descriptors come straight from the old process's loop, in
            // its order: sockets are not checked one by one (8 ms of pause
            // at 10,000 connections); the others are.
            let check = network_server::event_manager::DescriptorCheck::NonSockets;
            match fresh.import_into(&bytes, fds, check, &mut app) {
                Ok(s) => {
                    let _ = replies.send(Reply::Started(Ok(s.client_count())));
                    (s, app, false)
                }
                // The descriptors come back with the error: dropping them
                // closes this process's copies only.
                Err((e, _fds)) => {
                    let e = format!("the snapshot was refused: {e}");
                    let _ = replies.send(Reply::Started(Err(e.clone())));
                    return Err(e);
                }
            }
        }
    };
    let mut server = server;
    let mut running = running;
    loop {
        if running {
            server.run(&mut app).map_err(|e| e.to_string())?;
            if !app.take_paused() {
                // The graceful shutdown ended.
                return Ok(());
            }
        }
        // Paused (or imported): take commands until told to go on or end.
        loop {
            let Ok(cmd) = cmds.recv() else {
                // Nobody will ever command this loop again: serve.
                if let Err(e) = server.resume(&mut app) {
                    return Err(e.to_string());
                }
                break;
            };
            match cmd {
                Cmd::Quiesce => {
                    let r = server.quiesce(&mut app).map_err(|e| e.to_string());
                    let _ = replies.send(Reply::Done(r));
                }
                Cmd::Export => {
                    let connections = server.client_count();
                    let r = server
                        .export(&mut app)
                        .map(|s| LoopExport {
                            bytes: s.bytes,
                            fds: s.fds,
                            connections,
                        })
                        .map_err(|e| e.to_string());
                    let _ = replies.send(Reply::Exported(r));
                }
                Cmd::Resume => {
                    let mut r = server.resume(&mut app).map_err(|e| e.to_string());
                    if r.is_err() {
                        // A quiesce that timed out is still under way: let
                        // it finish, then resume.
                        r = server
                            .quiesce(&mut app)
                            .and_then(|()| server.resume(&mut app))
                            .map_err(|e| e.to_string());
                    }
                    let failed = r.is_err();
                    let _ = replies.send(Reply::Done(r));
                    if failed {
                        return Err("the loop could not resume".into());
                    }
                    break;
                }
                Cmd::Release => {
                    // This process's copies of the descriptors close here;
                    // the new process holds its own.
                    drop(server.release());
                    let _ = replies.send(Reply::Done(Ok(())));
                    return Ok(());
                }
            }
        }
        running = true;
    }
}
