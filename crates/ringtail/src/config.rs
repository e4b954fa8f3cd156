//! Configuration: command-line flags, an optional TOML file (`--config`),
//! and their validation. Flags win over the file; the file wins over the
//! defaults. Every problem is refused at start with a one-line reason.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use network_server::ServerConfig;
use serde::Deserialize;

/// The default of `--tls-addr`.
pub const DEFAULT_TLS_ADDR: &str = "127.0.0.1:8443";

/// The default of `--hub-inbox-limit`.
pub const DEFAULT_HUB_INBOX_LIMIT: usize = 65536;

/// Flags of `ringtail serve`.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// HTTP and WebSocket listen address [default: 127.0.0.1:8080].
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Also serve a RAW TCP echo on this address [default: off].
    #[arg(long)]
    raw_echo: Option<SocketAddr>,
    /// Share --addr and --raw-echo with other processes that listen there
    /// with SO_REUSEPORT (the kernel splits the connections between them).
    /// Without it, an address something already listens on is refused with
    /// "address already in use" [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    reuse_port: Option<bool>,
    /// Event loops (threads), each with its own ring and SO_REUSEPORT
    /// listener; 0 = one per CPU [default: 0].
    #[arg(long)]
    threads: Option<usize>,
    /// Serve this directory at / (the demo pages keep their paths; the demo
    /// home moves to /ringtail) [default: the embedded demo site].
    #[arg(long)]
    root: Option<PathBuf>,
    /// Serve paths under --root with a segment starting with "." (.env,
    /// .git/, …); without it they answer 404. /.well-known/ is served
    /// either way [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    dotfiles: Option<bool>,
    /// Send files larger than the file cache's limit by splicing them
    /// (file -> pipe -> socket through the ring, no copy through user
    /// memory) on plain HTTP connections; false reads them into buffers,
    /// as HTTPS always does [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    splice: Option<bool>,
    /// Where uploads are stored (created if missing) [default: ./ringtail-uploads].
    #[arg(long)]
    upload_dir: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive
    /// [default: info].
    #[arg(long)]
    log_level: Option<String>,
    /// Largest request body in bytes [default: 1073741824].
    #[arg(long)]
    max_body_size: Option<u64>,
    /// Seconds to receive a request head (slowloris guard) [default: 10].
    #[arg(long)]
    header_timeout: Option<f64>,
    /// Seconds a keep-alive connection may idle [default: 60].
    #[arg(long)]
    keepalive_timeout: Option<f64>,
    /// Largest WebSocket message in bytes [default: 16777216].
    #[arg(long)]
    ws_max_message: Option<usize>,
    /// Seconds a connection may go without its peer accepting any byte of
    /// a pending write before it is closed [default: 30].
    #[arg(long)]
    write_timeout: Option<f64>,
    /// Bytes queued for one connection (its peer not reading) past which
    /// the server stops reading from it until the queue is below half
    /// [default: 262144].
    #[arg(long)]
    pause_reading_above: Option<usize>,
    /// What a panic in a request handler does: `close-client` (log it,
    /// count it, answer 500 / close 1011, keep serving) or `abort`
    /// [default: close-client].
    #[arg(long)]
    on_panic: Option<String>,
    /// One access-log line per answer, and per WebSocket upgrade and close,
    /// in the combined log format with the duration, written by a thread
    /// of its own (lines reach it within a timer tick) [default: true].
    #[arg(long)]
    access_log: Option<bool>,
    /// Write the access log to this file (appended to; created if missing)
    /// instead of stderr. Lines that find the writer 16 MiB behind are
    /// dropped and counted in ringtail_access_log_dropped_total [default:
    /// none: stderr, beside the rest of the log, whatever --log-level].
    #[arg(long, value_name = "PATH")]
    access_log_file: Option<PathBuf>,
    /// Seconds a graceful shutdown (first SIGINT/SIGTERM) may take before
    /// the remaining connections are closed [default: 10].
    #[arg(long)]
    grace: Option<f64>,
    /// Messages published on other event loops (chat) that may wait for one
    /// loop; past it they are dropped for that loop and counted in
    /// ringtail_hub_drops_total [default: 65536].
    #[arg(long)]
    hub_inbox_limit: Option<usize>,
    /// Open the control socket (`ringtail ctl`) at PATH: a Unix socket only
    /// this user may use (mode 0600; other users' connections are refused).
    /// Without PATH: $XDG_RUNTIME_DIR/ringtail/control.sock, or
    /// /tmp/ringtail-UID/control.sock (in a 0700 directory) [default: off].
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "PATH")]
    control: Option<PathBuf>,
    /// Write the process id to this file (a new process rewrites it after
    /// an upgrade) [default: none].
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Seconds an upgrade waits for the new process at each step (start,
    /// import, confirm) before rolling back [default: 10].
    #[arg(long)]
    upgrade_timeout: Option<f64>,
    /// Share topics (the chat, /ws/topics) with other ringtail processes
    /// through Redis pub/sub at redis://HOST:PORT[/DB]; Redis down or lost
    /// is retried, local clients are served meanwhile [default: off].
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// Serve HTTPS and WSS (TLS 1.3 and 1.2, ALPN http/1.1) with this PEM
    /// certificate chain (the server's certificate first, then its
    /// intermediates), on --tls-addr beside plain HTTP on --addr; needs
    /// --tls-key. Reloaded without a restart by SIGHUP and `ringtail ctl
    /// reload-tls` [default: none: no HTTPS].
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (RSA, ECDSA or Ed25519; PKCS#8,
    /// PKCS#1 or SEC1; unencrypted) [default: none].
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// HTTPS and WSS listen address (each event loop has its own
    /// SO_REUSEPORT listener there, as on --addr) [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    tls_addr: Option<SocketAddr>,
    /// One more certificate, chosen for clients that ask for one of its
    /// subjectAltName DNS names (SNI; `*.example.com` names match one
    /// label); repeat for more. Clients asking for no name or another one
    /// get --tls-cert [default: none].
    #[arg(long, value_name = "CERT:KEY", value_parser = crate::tls::parse_pair)]
    tls_sni: Vec<(PathBuf, PathBuf)>,
    /// Seconds a TLS client has, from its connection being accepted, to
    /// finish its handshake [default: 10].
    #[arg(long, value_name = "SECONDS")]
    tls_handshake_timeout: Option<f64>,
    /// A TOML file with any of the settings above (same names, `-` → `_`;
    /// the TLS ones in a `[tls]` table: cert, key, addr, handshake_timeout,
    /// sni = [{ cert = …, key = … }]); flags given on the command line
    /// override it [default: none].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The TOML file: the same settings as the flags.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    addr: Option<SocketAddr>,
    raw_echo: Option<SocketAddr>,
    threads: Option<usize>,
    root: Option<PathBuf>,
    dotfiles: Option<bool>,
    splice: Option<bool>,
    upload_dir: Option<PathBuf>,
    log_level: Option<String>,
    max_body_size: Option<u64>,
    header_timeout: Option<f64>,
    keepalive_timeout: Option<f64>,
    ws_max_message: Option<usize>,
    write_timeout: Option<f64>,
    pause_reading_above: Option<usize>,
    on_panic: Option<String>,
    grace: Option<f64>,
    access_log: Option<bool>,
    access_log_file: Option<PathBuf>,
    reuse_port: Option<bool>,
    hub_inbox_limit: Option<usize>,
    control: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    upgrade_timeout: Option<f64>,
    cluster: Option<String>,
    tls: Option<FileTls>,
}

/// The TOML file's `[tls]` table.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    addr: Option<SocketAddr>,
    handshake_timeout: Option<f64>,
    #[serde(default)]
    sni: Vec<FileSni>,
}

/// One `[tls] sni` entry.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileSni {
    cert: PathBuf,
    key: PathBuf,
}

/// HTTPS: where, and the certificates.
#[derive(Debug)]
pub struct TlsSettings {
    pub addr: SocketAddr,
    pub tls: std::sync::Arc<crate::tls::Tls>,
}

/// Everything `serve` needs, validated.
#[derive(Debug)]
pub struct Settings {
    pub addr: SocketAddr,
    pub raw_echo: Option<SocketAddr>,
    /// Join other processes' `SO_REUSEPORT` listeners instead of refusing
    /// an address in use.
    pub reuse_port: bool,
    /// Most messages waiting in one loop's hub inbox.
    pub hub_inbox_limit: usize,
    pub threads: usize,
    pub root: Option<PathBuf>,
    /// Serve dotfiles under `root` ([`network_server::FileRootOptions::dotfiles`]).
    pub dotfiles: bool,
    pub upload_dir: PathBuf,
    pub log_filter: tracing_subscriber::EnvFilter,
    pub server: ServerConfig,
    /// Where the access log goes instead of stderr.
    pub access_log_file: Option<PathBuf>,
    pub grace: Duration,
    /// The control socket's path, if one is opened.
    pub control: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    /// How long an upgrade waits for the new process at each step.
    pub upgrade_timeout: Duration,
    /// Redis for topics shared across processes (`--cluster`).
    pub cluster: Option<crate::cluster::Url>,
    /// HTTPS, if a certificate was given.
    pub tls: Option<TlsSettings>,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "{name} must be between 0 and 86400 seconds, got {v}"
        ))
    }
}

/// The 1-based line and column (in characters) of byte `at` of `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Settings {
    /// Merges flags over the file over the defaults, and checks the result.
    pub fn resolve(args: ServeArgs) -> Result<Settings, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text).map_err(|e| {
                    let at = e.span().map_or_else(String::new, |span| {
                        let (line, col) = line_col(&text, span.start);
                        format!(":{line}:{col}")
                    });
                    format!(
                        "invalid --config {}{at}: {}",
                        path.display(),
                        e.message().lines().next().unwrap_or("")
                    )
                })?
            }
            None => FileConfig::default(),
        };
        let threads = match args.threads.or(file.threads).unwrap_or(0) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n if n > 1024 => return Err(format!("--threads {n} is more than 1024")),
            n => n,
        };
        let log_level = args
            .log_level
            .or(file.log_level)
            .unwrap_or_else(|| "info".into());
        let log_filter = tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| format!("invalid --log-level {log_level:?}: {e}"))?;
        let root = args.root.or(file.root);
        if let Some(r) = &root {
            if !r.is_dir() {
                return Err(format!("--root {} is not a directory", r.display()));
            }
        }
        let upload_dir = args
            .upload_dir
            .or(file.upload_dir)
            .unwrap_or_else(|| PathBuf::from("ringtail-uploads"));
        std::fs::create_dir_all(&upload_dir)
            .map_err(|e| format!("cannot create --upload-dir {}: {e}", upload_dir.display()))?;
        let mut server = ServerConfig::default();
        if let Some(v) = args.max_body_size.or(file.max_body_size) {
            server.max_body_size = v;
        }
        if let Some(v) = args.header_timeout.or(file.header_timeout) {
            server.header_read_timeout = seconds("--header-timeout", v)?;
        }
        if let Some(v) = args.keepalive_timeout.or(file.keepalive_timeout) {
            server.keepalive_timeout = seconds("--keepalive-timeout", v)?;
        }
        if let Some(v) = args.ws_max_message.or(file.ws_max_message) {
            if v == 0 {
                return Err("--ws-max-message must be at least 1".into());
            }
            server.ws.max_message_size = v;
            server.ws.max_frame_size = v;
        }
        if let Some(v) = args.write_timeout.or(file.write_timeout) {
            server.write_progress_timeout = seconds("--write-timeout", v)?;
        }
        if let Some(v) = args.pause_reading_above.or(file.pause_reading_above) {
            if v == 0 {
                return Err("--pause-reading-above must be at least 1".into());
            }
            server.pause_reading_above = v;
        }
        if let Some(v) = args.on_panic.or(file.on_panic) {
            server.on_panic = match v.as_str() {
                "close-client" => network_server::PanicPolicy::CloseClient,
                "abort" => network_server::PanicPolicy::Abort,
                other => {
                    return Err(format!(
                        "--on-panic {other:?}: expected close-client or abort"
                    ))
                }
            };
        }
        server.access_log = args.access_log.or(file.access_log).unwrap_or(true);
        server.files.splice = args.splice.or(file.splice).unwrap_or(true);
        let grace = seconds("--grace", args.grace.or(file.grace).unwrap_or(10.0))?;
        let hub_inbox_limit = args
            .hub_inbox_limit
            .or(file.hub_inbox_limit)
            .unwrap_or(DEFAULT_HUB_INBOX_LIMIT);
        if hub_inbox_limit == 0 {
            return Err("--hub-inbox-limit must be at least 1".into());
        }
        let upgrade_timeout = seconds(
            "--upgrade-timeout",
            args.upgrade_timeout
                .or(file.upgrade_timeout)
                .unwrap_or(10.0),
        )?;
        let control = args.control.or(file.control).map(|p| {
            if p.as_os_str().is_empty() {
                crate::control::default_path()
            } else {
                p
            }
        });
        let cluster = match args.cluster.or(file.cluster) {
            Some(u) => Some(crate::cluster::Url::parse(&u)?),
            None => None,
        };
        let ftls = file.tls.unwrap_or_default();
        let tls_timeout = args.tls_handshake_timeout.or(ftls.handshake_timeout);
        if let Some(v) = tls_timeout {
            server.tls_handshake_timeout = seconds("--tls-handshake-timeout", v)?;
        }
        let sni = if args.tls_sni.is_empty() {
            ftls.sni.into_iter().map(|p| (p.cert, p.key)).collect()
        } else {
            args.tls_sni
        };
        let tls_addr = args.tls_addr.or(ftls.addr);
        let tls = match (args.tls_cert.or(ftls.cert), args.tls_key.or(ftls.key)) {
            (Some(cert), Some(key)) => {
                let tls = crate::tls::Tls::load(crate::tls::Files { cert, key, sni })?;
                server.tls = Some(tls.server_config());
                Some(TlsSettings {
                    addr: tls_addr
                        .unwrap_or_else(|| DEFAULT_TLS_ADDR.parse().expect("valid default")),
                    tls: std::sync::Arc::new(tls),
                })
            }
            (Some(_), None) => return Err("--tls-cert needs --tls-key (its private key)".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert".into()),
            (None, None) => {
                let given = [
                    (tls_addr.is_some(), "--tls-addr"),
                    (!sni.is_empty(), "--tls-sni"),
                    (tls_timeout.is_some(), "--tls-handshake-timeout"),
                ];
                if let Some((_, flag)) = given.iter().find(|(g, _)| *g) {
                    return Err(format!("{flag} needs --tls-cert and --tls-key"));
                }
                None
            }
        };
        Ok(Settings {
            tls,
            access_log_file: args.access_log_file.or(file.access_log_file),
            grace,
            cluster,
            control,
            pid_file: args.pid_file.or(file.pid_file),
            upgrade_timeout,
            addr: args
                .addr
                .or(file.addr)
                .unwrap_or_else(|| "127.0.0.1:8080".parse().expect("valid default")),
            raw_echo: args.raw_echo.or(file.raw_echo),
            reuse_port: args.reuse_port.or(file.reuse_port).unwrap_or(false),
            hub_inbox_limit,
            threads,
            root,
            dotfiles: args.dotfiles.or(file.dotfiles).unwrap_or(false),
            upload_dir,
            log_filter,
            server,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringtail.toml");
        std::fs::write(&path, text).unwrap();
        let args = ServeArgs {
            config: Some(path),
            upload_dir: Some(dir.path().join("up")),
            ..Default::default()
        };
        Settings::resolve(args)
    }

    #[test]
    fn file_settings_apply_and_mistakes_are_refused_in_one_line() {
        let s = with_file("threads = 3\nheader_timeout = 2.5\nws_max_message = 1024\n").unwrap();
        assert_eq!(s.threads, 3);
        assert_eq!(s.server.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(s.server.ws.max_message_size, 1024);
        let e = with_file("treads = 3\n").unwrap_err();
        assert!(e.contains("unknown field `treads`"), "{e}");
        assert!(!e.contains('\n'));
        let e = with_file("header_timeout = -1\n").unwrap_err();
        assert!(e.contains("between 0 and 86400"), "{e}");
        let e = with_file("addr = \"nowhere\"\n").unwrap_err();
        assert!(e.starts_with("invalid --config"), "{e}");
    }

    #[test]
    fn toml_mistakes_name_their_line_and_column() {
        let e = with_file("threads = 2\n\n  treads = 3\n").unwrap_err();
        assert!(
            e.contains("ringtail.toml:3:3: unknown field `treads`"),
            "{e}"
        );
        let e = with_file("threads = 2\ngrace = \"long\"\n").unwrap_err();
        assert!(e.contains("ringtail.toml:2:9: "), "{e}");
        let e = with_file("héllo = = 1\n").unwrap_err();
        assert!(e.contains("ringtail.toml:1:"), "{e}");
        assert_eq!(line_col("ab\ncdé\nf", 7), (2, 4));
        assert_eq!(line_col("ab\ncdé\nf", 6), (2, 3), "inside a character");
        assert_eq!(line_col("ab\ncdé\nf", 8), (3, 1));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn the_access_log_file_comes_from_the_file_and_a_flag_overrides_it() {
        assert_eq!(with_file("").unwrap().access_log_file, None);
        let s = with_file("access_log_file = \"/tmp/a.log\"\n").unwrap();
        assert_eq!(s.access_log_file, Some(PathBuf::from("/tmp/a.log")));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringtail.toml");
        std::fs::write(&path, "access_log_file = \"/tmp/a.log\"\nthreads = 3\n").unwrap();
        let s = Settings::resolve(ServeArgs {
            config: Some(path),
            upload_dir: Some(dir.path().join("up")),
            access_log_file: Some(PathBuf::from("/tmp/b.log")),
            threads: Some(2),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.access_log_file, Some(PathBuf::from("/tmp/b.log")));
        assert_eq!(s.threads, 2, "flags override the file");
    }

    #[test]
    fn splice_is_on_by_default_and_the_file_or_a_flag_turns_it_off() {
        assert!(with_file("").unwrap().server.files.splice);
        assert!(!with_file("splice = false\n").unwrap().server.files.splice);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ringtail.toml");
        std::fs::write(&path, "splice = true\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            upload_dir: Some(dir.path().join("up")),
            splice: Some(false),
            ..Default::default()
        };
        assert!(!Settings::resolve(args).unwrap().server.files.splice);
    }

    #[test]
    fn dotfiles_are_off_by_default_and_come_from_the_file() {
        assert!(!with_file("").unwrap().dotfiles);
        assert!(with_file("dotfiles = true\n").unwrap().dotfiles);
    }

    #[test]
    fn tls_comes_from_the_tls_table_and_flags_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = crate::tls::tests::write_cert(dir.path(), "a", &["a.test"]);
        let (b_crt, b_key) = crate::tls::tests::write_cert(dir.path(), "b", &["b.test"]);
        assert!(with_file("").unwrap().tls.is_none());
        let text = format!(
            "[tls]\ncert = {crt:?}\nkey = {key:?}\nhandshake_timeout = 3\n\
             sni = [{{ cert = {b_crt:?}, key = {b_key:?} }}]\n"
        );
        let s = with_file(&text).unwrap();
        let tls = s.tls.as_ref().unwrap();
        assert_eq!(tls.addr, DEFAULT_TLS_ADDR.parse().unwrap());
        assert_eq!(tls.tls.certificates().len(), 2);
        assert!(s.server.tls.is_some());
        assert_eq!(s.server.tls_handshake_timeout, Duration::from_secs(3));

        let path = dir.path().join("ringtail.toml");
        std::fs::write(&path, &text).unwrap();
        let s = Settings::resolve(ServeArgs {
            config: Some(path),
            upload_dir: Some(dir.path().join("up")),
            tls_addr: Some("127.0.0.1:9443".parse().unwrap()),
            tls_sni: vec![(b_crt.clone(), b_key.clone()), (b_crt, b_key)],
            ..Default::default()
        })
        .unwrap();
        let tls = s.tls.unwrap();
        assert_eq!(tls.addr, "127.0.0.1:9443".parse().unwrap());
        assert_eq!(
            tls.tls.certificates().len(),
            3,
            "the flags' list replaces the file's"
        );
    }

    #[test]
    fn tls_mistakes_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = crate::tls::tests::write_cert(dir.path(), "a", &["a.test"]);
        let e = with_file(&format!("[tls]\ncert = {crt:?}\n")).unwrap_err();
        assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
        let e = with_file("[tls]\naddr = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(
            e.contains("--tls-addr needs --tls-cert and --tls-key"),
            "{e}"
        );
        let e = with_file("[tls]\ncert = \"a\"\n  kee = \"b\"\n").unwrap_err();
        assert!(e.contains("ringtail.toml:3:3: unknown field `kee`"), "{e}");
        let e = with_file(&format!("[tls]\ncert = {key:?}\nkey = {key:?}\n")).unwrap_err();
        assert!(
            e.contains("TLS certificate: ") && e.contains("a.key: no certificate in the file"),
            "{e}"
        );
        let e = with_file(&format!(
            "[tls]\ncert = {crt:?}\nkey = {key:?}\nhandshake_timeout = 0\n"
        ))
        .unwrap_err();
        assert!(e.contains("--tls-handshake-timeout must be between"), "{e}");
    }

    #[test]
    fn reuse_port_and_hub_inbox_limit_have_defaults_and_come_from_the_file() {
        let s = with_file("").unwrap();
        assert!(!s.reuse_port);
        assert_eq!(s.hub_inbox_limit, DEFAULT_HUB_INBOX_LIMIT);
        let s = with_file("reuse_port = true\nhub_inbox_limit = 7\n").unwrap();
        assert!(s.reuse_port);
        assert_eq!(s.hub_inbox_limit, 7);
        let e = with_file("hub_inbox_limit = 0\n").unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
    }
}
