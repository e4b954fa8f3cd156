//! The helpers of `tests/tls_serve.rs` and `tests/tls_clients.rs`: a test
//! CA and the certificates it signs (rcgen, in a temporary directory), a
//! `ringtail serve` with TLS on port 0 (killed on drop, its log kept),
//! rustls connections, keep-alive GETs, curl with the CA, `ctl`, metrics.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use network_server::rustls;
use rustls::pki_types::{CertificateDer, ServerName};

pub const WAIT: Duration = Duration::from_secs(20);

/// A test CA, and the certificates it signs, in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_der: CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Pki {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ringtail test CA");
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), cert.pem()).unwrap();
        Pki {
            dir,
            ca_der: cert.der().clone(),
            ca: rcgen::Issuer::new(params, key),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA certificate's file (for `curl --cacert`, `s_client -CAfile`).
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// Writes `stem.crt` and `stem.key`: a certificate with common name
    /// `cn` for `names`, signed by the CA (`alg` for its key). Returns its
    /// DER.
    pub fn issue(
        &self,
        stem: &str,
        cn: &str,
        names: &[&str],
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        // Written through a temporary name and renamed, as a certificate
        // renewal tool does: a reload never reads half a file.
        for (ext, text) in [("crt", cert.pem()), ("key", key.serialize_pem())] {
            let tmp = self.path(&format!("{stem}.{ext}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, self.path(&format!("{stem}.{ext}"))).unwrap();
        }
        cert.der().clone()
    }

    /// A rustls client trusting the CA, offering ALPN http/1.1.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

/// A running `ringtail serve`, killed on drop, with its log so far.
pub struct Serve {
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub uploads: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `ringtail serve` on port 0 for HTTP and HTTPS with `args`,
    /// and waits until it logs both addresses.
    /// [`Serve::start`] with `STEM.crt` and `STEM.key` of `pki` as its
    /// certificate, then `args`.
    pub fn start_with_cert(pki: &Pki, stem: &str, args: &[&str]) -> Serve {
        let (cert, key) = (
            pki.path(&format!("{stem}.crt")),
            pki.path(&format!("{stem}.key")),
        );
        let mut all = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        Serve::start(&all)
    }

    pub fn start(args: &[&str]) -> Serve {
        let uploads = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringtail"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--tls-addr", "127.0.0.1:0"])
            .arg("--upload-dir")
            .arg(uploads.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(i) = line.find("addr=") {
                        let addr: Option<SocketAddr> = line[i + 5..]
                            .split_whitespace()
                            .next()
                            .and_then(|a| a.parse().ok());
                        if let Some(addr) = addr {
                            let _ = tx.send(Some((line.contains("serving HTTPS"), addr)));
                        }
                    }
                    log.lock().unwrap().push(line);
                }
                let _ = tx.send(None);
            });
        }
        let deadline = Instant::now() + WAIT;
        let (mut http, mut https) = (None, None);
        while http.is_none() || https.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Some((true, a))) => https = Some(a),
                Ok(Some((false, a))) => http = Some(a),
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("ringtail did not serve: {:?}", log.lock().unwrap());
                }
            }
        }
        Serve {
            child,
            log,
            http: http.unwrap(),
            https: https.unwrap(),
            uploads,
        }
    }

    /// Waits until a log line contains every one of `parts`.
    pub fn wait_log(&self, parts: &[&str]) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self
                .log
                .lock()
                .unwrap()
                .iter()
                .any(|l| parts.iter().all(|p| l.contains(p)))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}: {:?}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }
}

/// A TLS connection to `addr` asking for `sni`.
pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub fn connect(client: &Arc<rustls::ClientConfig>, addr: SocketAddr, sni: &str) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// The end-entity certificate the server presented.
pub fn peer_cert(s: &Tls) -> CertificateDer<'static> {
    s.conn.peer_certificates().unwrap()[0].clone().into_owned()
}

/// One keep-alive GET on `s`: status and body.
pub fn get(s: &mut impl ReadWrite, path: &str) -> (u16, String) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (name, v) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("a Content-Length");
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// `curl` with the test CA, HTTP/1.1 only, resolving `name` to the
/// server's HTTPS address, allowed 10 s.
pub fn curl(pki: &Pki, serve: &Serve, name: &str, args: &[&str]) -> Output {
    curl_within(pki, serve, name, 10, args)
}

/// [`curl`] allowed `secs` seconds.
pub fn curl_within(pki: &Pki, serve: &Serve, name: &str, secs: u32, args: &[&str]) -> Output {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            &secs.to_string(),
            "--http1.1",
            "--cacert",
        ])
        .arg(pki.ca_file())
        .arg("--resolve")
        .arg(format!("{name}:{}:127.0.0.1", serve.https.port()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `metric` (no labels) in a `/metrics` text.
pub fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

pub fn ctl(control: &Path, what: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringtail"))
        .args(["ctl", "--control"])
        .arg(control)
        .arg(what)
        .output()
        .unwrap()
}

/// The Python with Playwright that scripts/install-test-deps set up
/// (`target/test-venv`), or `$RINGTAIL_TEST_PYTHON`.
pub fn test_python() -> PathBuf {
    if let Ok(p) = std::env::var("RINGTAIL_TEST_PYTHON") {
        return p.into();
    }
    let p = target_dir().join("test-venv/bin/python");
    assert!(
        p.exists(),
        "{} missing: run scripts/install-test-deps (the README's test command does)",
        p.display()
    );
    p
}

pub fn target_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |t| root.join(t))
}
