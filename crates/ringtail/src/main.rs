//! The `ringtail` command.
//!
//! `ringtail serve` runs the server on one event loop: HTTP/1.1 on `--addr`
//! (`/hello` answers `Hello, World!`; the demo site, WebSocket chat, uploads
//! and metrics arrive with their issues) and, with `--raw-echo ADDR`, a RAW
//! TCP echo listener that exercises the RAW callbacks.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use network_server::{
    Application, ClientId, CloseReason, Ctx, Error, HttpEvent, ListenerId, OutBuf, Protocol,
    ReadBufs, Server, ServerConfig,
};

#[derive(Parser, Debug)]
#[command(
    name = "ringtail",
    version,
    about = "A Linux network server built on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve {
        /// HTTP listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Also serve a RAW TCP echo on this address.
        #[arg(long)]
        raw_echo: Option<SocketAddr>,
        /// Event loops (threads), each with its own ring and its own
        /// SO_REUSEPORT listener; 0 = one per CPU.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Log level filter (error, warn, info, debug, trace).
        #[arg(long, default_value = "info")]
        log_level: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            addr,
            raw_echo,
            threads,
            log_level,
        } => {
            let filter = match tracing_subscriber::EnvFilter::try_new(&log_level) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("ringtail: invalid --log-level {log_level:?}: {e}");
                    return ExitCode::from(2);
                }
            };
            use std::io::IsTerminal;
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            let threads = if threads == 0 {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            } else {
                threads
            };
            match serve(addr, raw_echo, threads) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ringtail: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Starts `threads` event loops sharing the listening addresses through
/// `SO_REUSEPORT`, and stops them all on SIGINT/SIGTERM (a second signal
/// exits at once).
fn serve(
    addr: SocketAddr,
    raw_echo: Option<SocketAddr>,
    threads: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // The first loop binds (resolving port 0); the others reuse its ports.
    let mut first = Server::new(ServerConfig::default())?;
    let http = first
        .listen_reuseport(addr, Protocol::Http)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let http_addr = first.local_addr(http);
    let raw_addr = match raw_echo {
        Some(raw) => {
            let l = first
                .listen_reuseport(raw, Protocol::Raw)
                .map_err(|e| format!("cannot listen on {raw}: {e}"))?;
            Some(first.local_addr(l))
        }
        None => None,
    };
    tracing::info!(addr = %http_addr, threads, "serving HTTP (try /hello)");
    if let Some(raw) = raw_addr {
        tracing::info!(addr = %raw, "serving RAW TCP echo");
    }
    let mut stops = vec![first.stop_handle()?];
    let mut joins = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for i in 1..threads {
        let ready_tx = ready_tx.clone();
        joins.push(
            std::thread::Builder::new()
                .name(format!("ringtail-{i}"))
                .spawn(move || -> Result<(), String> {
                    let setup = || -> Result<Server, Box<dyn std::error::Error>> {
                        let mut s = Server::new(ServerConfig::default())?;
                        s.listen_reuseport(http_addr, Protocol::Http)?;
                        if let Some(raw) = raw_addr {
                            s.listen_reuseport(raw, Protocol::Raw)?;
                        }
                        Ok(s)
                    };
                    let mut server = match setup() {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return Err(e.to_string());
                        }
                    };
                    let stop = server.stop_handle().map_err(|e| e.to_string())?;
                    let _ = ready_tx.send(Ok(stop));
                    server.run(&mut Ringtail).map_err(|e| e.to_string())
                })?,
        );
    }
    drop(ready_tx);
    for _ in 1..threads {
        let r = ready_rx.recv().map_err(|_| "event loop failed to start")?;
        stops.push(r.map_err(|e| format!("event loop failed to start: {e}"))?);
    }
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::spawn(move || {
        let mut count = 0;
        for sig in signals.forever() {
            count += 1;
            if count > 1 {
                tracing::warn!(sig, "second signal: exiting now");
                std::process::exit(1);
            }
            tracing::info!(sig, "signal: stopping");
            for s in &stops {
                let _ = s.stop();
            }
        }
    });
    first.run(&mut Ringtail)?;
    for j in joins {
        j.join().map_err(|_| "event loop panicked")??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The built-in application.
struct Ringtail;

const RAW_READ_SIZE: usize = 16 * 1024;

impl Application for Ringtail {
    fn on_accept(&mut self, ctx: &mut Ctx<'_>, client: ClientId, _listener: ListenerId) {
        if ctx.client_kind(client) == Ok(network_server::ClientKind::Raw) {
            let _ = ctx.raw_read(client, Vec::with_capacity(RAW_READ_SIZE), None);
        }
    }

    fn on_http_read(&mut self, ctx: &mut Ctx<'_>, client: ClientId, event: HttpEvent<'_>) {
        let HttpEvent::Request(req) = event else {
            return; // bodies are ignored; the answer was given at the head
        };
        let text = [("Content-Type", "text/plain; charset=utf-8")];
        let r = match req.path {
            "/hello" => ctx.http_respond(client, 200, &text, "Hello, World!"),
            "/" => ctx.http_respond(
                client,
                200,
                &text,
                "ringtail: an io_uring HTTP/WebSocket server. Try /hello.\n",
            ),
            _ => ctx.http_respond(client, 404, &text, "not found\n"),
        };
        if let Err(e) = r {
            tracing::debug!(%client, error = %e, "respond failed");
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

    fn on_http_close(&mut self, _ctx: &mut Ctx<'_>, client: ClientId, reason: CloseReason) {
        tracing::trace!(%client, ?reason, "http closed");
    }
}
