//! The `ringtail` command.
//!
//! `ringtail serve` runs the server: one event loop per thread, each with its
//! own io_uring ring and its own `SO_REUSEPORT` listener (the first loop
//! refuses an address another process listens on, unless `--reuse-port`),
//! serving the demo site (`app.rs`), with cross-loop broadcast through the
//! hub (`hub.rs`) and Prometheus metrics (`metrics.rs`). Configuration comes from flags and an
//! optional TOML file (`config.rs`). The process and its loop threads are in
//! `process.rs` and `loops.rs`; `ringtail ctl` and the control socket in
//! `control.rs`; upgrading to a new binary in `upgrade.rs`; HTTPS
//! certificates and their reload in `tls.rs`.

mod access_file;
mod app;
mod build_id;
mod cluster;
mod config;
mod control;
mod hub;
mod loops;
mod metrics;
mod process;
mod tls;
mod upgrade;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ServeArgs, Settings};

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

// Parsed once; the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (demo site, /hello, /ws/echo, /ws/chat, /upload,
    /// /files/, /metrics; --root DIR at /).
    #[command(
        after_help = "Settings come from the flags, then the --config file, then \
        the defaults: a flag given on the command line overrides the file."
    )]
    Serve(ServeArgs),
    /// Talk to a running server through its control socket (status,
    /// upgrade to a new binary without dropping a connection, reload the
    /// TLS certificates).
    Ctl(control::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Ctl(args) => return control::main(args),
    };
    let mut settings = match Settings::resolve(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringtail: {e}");
            return ExitCode::from(2);
        }
    };
    let _flush_access_log = match access_file::init_logging(&mut settings) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("ringtail: {e}");
            return ExitCode::from(2);
        }
    };
    // Started by an older process for an upgrade (`upgrade.rs`)?
    let takeover = std::env::var_os(upgrade::ENV).is_some_and(|v| v == "1");
    let r = if takeover {
        process::serve_takeover(settings)
    } else {
        process::serve_fresh(settings)
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringtail: {e}");
            ExitCode::FAILURE
        }
    }
}
