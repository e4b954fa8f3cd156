//! The `ringtail` command.
//!
//! `ringtail serve` runs the server: one event loop per thread, each with its
//! own io_uring ring and its own `SO_REUSEPORT` listener (the first loop
//! refuses an address another process listens on, unless `--reuse-port`),
//! serving the demo site (`app.rs`), with cross-loop broadcast through the
//! hub (`hub.rs`) and Prometheus metrics (`metrics.rs`). Configuration comes from flags and an
//! optional TOML file (`config.rs`).

mod app;
mod config;
mod hub;
mod metrics;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use network_server::{FileRootOptions, Protocol, Server};

use crate::app::{Ringtail, Roots};
use crate::config::{ServeArgs, Settings};
use crate::hub::Hub;

#[derive(Parser, Debug)]
#[command(
    name = "ringtail",
    // "0.1.0 (abc1234)": the git revision from build.rs ("unknown" outside
    // a checkout).
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("RINGTAIL_GIT_REV"), ")"),
    about = "A Linux network server built on io_uring: HTTP/1.1, WebSocket and raw descriptors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (demo site, /hello, /ws/echo, /ws/chat, /upload,
    /// /files/, /metrics; --root DIR at /).
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Serve(args) = cli.command;
    let settings = match Settings::resolve(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringtail: {e}");
            return ExitCode::from(2);
        }
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(settings.log_filter.clone())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match serve(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringtail: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds loop `index`: its server, listeners (the first loop binds, the
/// others reuse its resolved addresses), hub eventfd and served roots.
fn build_loop(
    settings: &Settings,
    index: usize,
    hub: &Arc<Hub>,
    bound: Option<&Bound>,
) -> Result<(Server, Ringtail, Bound), BoxError> {
    let mut server = Server::new(settings.server.clone())?;
    // The first loop makes sure nobody listens on the addresses yet (unless
    // sharing was asked for); the others join its listeners.
    let exclusive = bound.is_none() && !settings.reuse_port;
    let http_addr = bound.map_or(settings.addr, |b| b.http);
    let http = listen(&mut server, http_addr, Protocol::Http, exclusive)?;
    let mut raw = None;
    if let Some(addr) = bound.map_or(settings.raw_echo, |b| b.raw) {
        let l = listen(&mut server, addr, Protocol::Raw, exclusive)?;
        raw = Some(server.local_addr(l));
    }
    let this = Bound {
        http: server.local_addr(http),
        raw,
    };
    let mut ctx = server.ctx();
    let hub_event = ctx.eventfd_open()?;
    ctx.eventfd_prepare(hub_event, 0)?;
    hub.register(index, ctx.eventfd_trigger_handle(hub_event)?);
    let uploads = ctx.upload_dir_open(&settings.upload_dir)?;
    let uploaded_files = ctx.file_root_open(&settings.upload_dir, FileRootOptions::default())?;
    let static_root = match &settings.root {
        Some(root) => Some(ctx.file_root_open(
            root,
            FileRootOptions {
                dotfiles: settings.dotfiles,
                ..Default::default()
            },
        )?),
        None => None,
    };
    let roots = Roots {
        uploads,
        uploaded_files,
        static_root,
    };
    let app = Ringtail::new(
        index,
        hub.clone(),
        hub_event,
        roots,
        settings.upload_dir.clone(),
    );
    Ok((server, app, this))
}

/// Listens on `addr` with `SO_REUSEPORT`; `exclusive` refuses an address
/// something already listens on (another ringtail included).
fn listen(
    server: &mut Server,
    addr: std::net::SocketAddr,
    protocol: Protocol,
    exclusive: bool,
) -> Result<network_server::ListenerId, String> {
    let r = if exclusive {
        server.listen_reuseport_exclusive(addr, protocol)
    } else {
        server.listen_reuseport(addr, protocol)
    };
    r.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse if exclusive => format!(
            "{addr}: address already in use (another process listens there; \
             --reuse-port to share it)"
        ),
        std::io::ErrorKind::AddrInUse => {
            format!("{addr}: address already in use (by a listener that does not share it with us)")
        }
        // "cannot listen on ADDR: …" (network_server names the address).
        _ => e.to_string(),
    })
}

/// The addresses the first loop bound.
#[derive(Debug, Clone, Copy)]
struct Bound {
    http: std::net::SocketAddr,
    raw: Option<std::net::SocketAddr>,
}

fn serve(settings: Settings) -> Result<(), BoxError> {
    let threads = settings.threads;
    let hub = Arc::new(Hub::new(threads, settings.hub_inbox_limit));
    let (mut first, mut first_app, bound) = build_loop(&settings, 0, &hub, None)?;
    tracing::info!(addr = %bound.http, threads, "serving HTTP and WebSocket: http://{}/ (try /hello, /chat)", bound.http);
    if let Some(raw) = bound.raw {
        tracing::info!(addr = %raw, "serving RAW TCP echo");
    }
    let mut stops = vec![first.shutdown_handle(settings.grace)?];
    let mut joins = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let settings = Arc::new(settings);
    for i in 1..threads {
        let (ready_tx, settings, hub) = (ready_tx.clone(), settings.clone(), hub.clone());
        joins.push(
            std::thread::Builder::new()
                .name(format!("ringtail-{i}"))
                .spawn(move || -> Result<(), String> {
                    let (mut server, mut app) = match build_loop(&settings, i, &hub, Some(&bound)) {
                        Ok((s, a, _)) => (s, a),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return Err(e.to_string());
                        }
                    };
                    let stop = server
                        .shutdown_handle(settings.grace)
                        .map_err(|e| e.to_string())?;
                    let _ = ready_tx.send(Ok(stop));
                    server.run(&mut app).map_err(|e| e.to_string())
                })?,
        );
    }
    drop(ready_tx);
    for _ in 1..threads {
        let r = ready_rx
            .recv()
            .map_err(|_| "an event loop failed to start")?;
        stops.push(r.map_err(|e| format!("an event loop failed to start: {e}"))?);
    }

    // The ticker: wakes every loop once a second through its eventfd (the
    // loops report their counters and send the clock to chat clients).
    let running = Arc::new(AtomicBool::new(true));
    {
        let (hub, running) = (hub.clone(), running.clone());
        std::thread::Builder::new()
            .name("ringtail-ticker".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    hub.tick_all();
                    std::thread::sleep(Duration::from_secs(1));
                }
            })?;
    }

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    {
        let running = running.clone();
        std::thread::spawn(move || {
            for (n, sig) in signals.forever().enumerate() {
                if n > 0 {
                    tracing::warn!(sig, "second signal: exiting now");
                    std::process::exit(1);
                }
                tracing::info!(
                    sig,
                    "signal: shutting down gracefully (a second signal exits at once)"
                );
                running.store(false, Ordering::Relaxed);
                for s in &stops {
                    let _ = s.shutdown();
                }
            }
        });
    }
    first.run(&mut first_app)?;
    for j in joins {
        j.join().map_err(|_| "an event loop panicked")??;
    }
    tracing::info!("stopped");
    Ok(())
}
