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
            match serve(addr, raw_echo) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ringtail: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn serve(addr: SocketAddr, raw_echo: Option<SocketAddr>) -> Result<(), Box<dyn std::error::Error>> {
    let mut server = Server::new(ServerConfig::default())?;
    let http = server
        .listen(addr, Protocol::Http)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!(addr = %server.local_addr(http), "serving HTTP (try /hello)");
    if let Some(raw) = raw_echo {
        let l = server
            .listen(raw, Protocol::Raw)
            .map_err(|e| format!("cannot listen on {raw}: {e}"))?;
        tracing::info!(addr = %server.local_addr(l), "serving RAW TCP echo");
    }
    server.run(&mut Ringtail)?;
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
