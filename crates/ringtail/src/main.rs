//! The `ringtail` command.
//!
//! `ringtail serve` runs the server. Until the HTTP layer lands it serves a
//! RAW TCP echo on the event manager, so the command already exercises the
//! io_uring loop end to end.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;

use clap::{Parser, Subcommand};
use event_manager::{Completion, CompletionKind, EventManager};

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
    /// Run the server (for now: a TCP echo service on the event manager).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Log level filter (error, warn, info, debug, trace).
        #[arg(long, default_value = "info")]
        log_level: String,
    },
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { addr, log_level } => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(log_level))
                .init();
            if let Err(e) = serve(addr) {
                eprintln!("ringtail: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn serve(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut em = EventManager::new()?;
    tracing::info!(addr = %listener.local_addr()?, features = ?em.features(), "ringtail serving TCP echo");
    let lst = em.adopt(OwnedFd::from(listener))?;
    em.accept_multishot(lst, 0)?;
    em.run(&mut |em: &mut EventManager, c: Completion| match c.kind {
        CompletionKind::Accept { result, .. } => match result {
            Ok(conn) => {
                let _ = em.recv_multishot(conn, 0);
            }
            Err(e) => tracing::warn!(error = %e, "accept"),
        },
        CompletionKind::AcceptEnd { result, .. } => {
            tracing::error!(?result, "listener stopped accepting");
            em.stop();
        }
        CompletionKind::Recv { pfd, buf } => {
            let _ = em.write(pfd, buf.to_vec(), None, 0);
        }
        CompletionKind::RecvEnd { pfd, .. } => {
            let _ = em.close(pfd, 0);
        }
        _ => {}
    })?;
    Ok(())
}
