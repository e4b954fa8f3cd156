//! TLS settings for [`Protocol::Https`](crate::Protocol::Https) listeners:
//! what goes into [`ServerConfig::tls`](crate::ServerConfig::tls).
//!
//! - [`Certificate::load`] reads a PEM certificate chain and its private
//!   key (RSA as PKCS#1 or PKCS#8, ECDSA P-256/P-384/P-521 as SEC1 or
//!   PKCS#8, Ed25519 as PKCS#8), checks that the key belongs to the
//!   certificate, and takes the certificate's DNS names (subjectAltName)
//!   and its expiry. Every failure is a [`CertError`] naming the file and
//!   what was wrong with it.
//! - [`CertStore`] picks a certificate for each handshake by the server
//!   name the client asks for (SNI): exact names, then `*.example.com`
//!   wildcards, else the default certificate. [`CertStore::replace`]
//!   swaps its whole content at once while the server runs: handshakes
//!   that start afterwards get the new certificates, connections already
//!   open go on with theirs.
//! - [`server_config`] builds the `rustls::ServerConfig` ringtail uses:
//!   TLS 1.3 and 1.2, ALPN `http/1.1`, resumption by tickets and by a
//!   session cache, no 0-RTT. Give the same `Arc` to every event loop's
//!   [`ServerConfig`](crate::ServerConfig), so that a session ticket issued
//!   on one loop resumes on another.
//!
//! ```no_run
//! use std::sync::Arc;
//! use network_server::tls::{server_config, CertSet, CertStore, Certificate};
//! use network_server::{Protocol, Server, ServerConfig};
//!
//! let store = Arc::new(CertStore::new(CertSet::new(
//!     Certificate::load("site.crt".as_ref(), "site.key".as_ref())?,
//!     vec![Certificate::load("api.crt".as_ref(), "api.key".as_ref())?],
//! )));
//! let mut config = ServerConfig::default();
//! config.tls = Some(server_config(store.clone())?);
//! let mut server = Server::new(config)?;
//! server.listen("127.0.0.1:8443".parse()?, Protocol::Https)?;
//! // Later, from any thread (a reload): new handshakes get the new ones.
//! let renewed = Certificate::load("site.crt".as_ref(), "site.key".as_ref())?;
//! store.replace(CertSet::new(renewed, Vec::new()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Kernel TLS (kTLS)
//!
//! Linux can take over a TLS session's record layer (the `tls` upper-layer
//! protocol, `CONFIG_TLS`): after the handshake, the session's keys and
//! sequence numbers are handed to the socket (`setsockopt(TCP_ULP, "tls")`,
//! then `TLS_TX` / `TLS_RX` with the cipher's key, IV and salt), and the
//! kernel encrypts what is written and decrypts what is read, so plaintext
//! writes, `splice` and `sendfile` work on the socket as without TLS. The
//! path would be: set `enable_secret_extraction` in the rustls
//! configuration, call `dangerous_extract_secrets` once the handshake is
//! done, install the keys, then treat the connection as a plain one (with
//! control messages for alerts and `close_notify`, and TLS 1.3 key
//! updates refused or handled).
//!
//! **That path is not built.** [`ktls_probe`] only detects whether the
//! kernel offers the `tls` ULP, so that a server can say which path runs;
//! today rustls encrypts and decrypts in user space in every case (the
//! machine this was written on has no `tls` ULP to test a kTLS path with).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

/// Sessions the stateful resumption cache of [`server_config`] keeps (for
/// TLS 1.2 clients that resume by session id rather than by ticket); the
/// oldest are forgotten first.
pub const SESSION_CACHE_SIZE: usize = 4096;

/// Why a certificate or key could not be used. Its `Display` names the
/// file and what was wrong, in one line.
#[derive(Debug)]
#[non_exhaustive]
pub enum CertError {
    /// The file could not be read.
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not well-formed PEM.
    Pem {
        /// The file.
        file: PathBuf,
        /// What the PEM reader said.
        error: String,
    },
    /// No `CERTIFICATE` block in the file.
    NoCertificate {
        /// The file.
        file: PathBuf,
    },
    /// No private key block (`PRIVATE KEY`, `RSA PRIVATE KEY`,
    /// `EC PRIVATE KEY`) in the file.
    NoPrivateKey {
        /// The file.
        file: PathBuf,
    },
    /// The private key is encrypted (`ENCRYPTED PRIVATE KEY`): it would
    /// need a passphrase.
    EncryptedKey {
        /// The file.
        file: PathBuf,
    },
    /// The private key is of a type or size the crypto provider does not
    /// sign with.
    UnsupportedKey {
        /// The file.
        file: PathBuf,
        /// What the provider said.
        error: String,
    },
    /// The first certificate of the chain is not a certificate that can be
    /// parsed (X.509 DER inside the PEM).
    BadCertificate {
        /// The file.
        file: PathBuf,
        /// What the parser said.
        error: String,
    },
    /// The private key is not the key of the chain's first certificate.
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A certificate meant to be chosen by SNI has no DNS name to be chosen
    /// by (no `dNSName` in its subjectAltName, and none given).
    NoNames {
        /// The certificate file (empty for a certificate not from a file).
        file: PathBuf,
    },
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Read { file, error } => write!(f, "cannot read {}: {error}", file.display()),
            CertError::Pem { file, error } => {
                write!(f, "{}: not valid PEM: {error}", file.display())
            }
            CertError::NoCertificate { file } => write!(
                f,
                "{}: no certificate in the file (expected a -----BEGIN CERTIFICATE----- block)",
                file.display()
            ),
            CertError::NoPrivateKey { file } => write!(
                f,
                "{}: no private key in the file (expected a -----BEGIN PRIVATE KEY-----, \
                 RSA PRIVATE KEY or EC PRIVATE KEY block)",
                file.display()
            ),
            CertError::EncryptedKey { file } => write!(
                f,
                "{}: the private key is encrypted; give it unencrypted \
                 (openssl pkey -in ENCRYPTED -out PLAIN)",
                file.display()
            ),
            CertError::UnsupportedKey { file, error } => write!(
                f,
                "{}: unsupported private key type ({error}); RSA 2048 to 8192 bits, \
                 ECDSA P-256, P-384, P-521 and Ed25519 keys are supported",
                file.display()
            ),
            CertError::BadCertificate { file, error } => write!(
                f,
                "{}: the certificate cannot be parsed: {error}",
                file.display()
            ),
            CertError::KeyMismatch { cert, key } => write!(
                f,
                "{}: the private key does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            CertError::NoNames { file } => write!(
                f,
                "{}: the certificate has no DNS name in its subjectAltName to be chosen by SNI",
                file.display()
            ),
        }
    }
}

impl std::error::Error for CertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CertError::Read { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// One certificate chain with its private key, and what the server knows
/// of it: the DNS names SNI chooses it by and when it expires.
#[derive(Clone)]
pub struct Certificate {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    not_after: Option<String>,
    source: Option<(PathBuf, PathBuf)>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .field("source", &self.source)
            .field("chain", &self.key.cert.len())
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads the PEM certificate chain in `cert` (end-entity certificate
    /// first, then its intermediates) and the PEM private key in `key`
    /// (the first key block of the file), and checks that the key is the
    /// certificate's. The DNS names are the certificate's subjectAltName
    /// `dNSName`s.
    pub fn load(cert: &Path, key: &Path) -> Result<Certificate, CertError> {
        let chain = read_chain(cert)?;
        let private = read_key(key)?;
        let signer =
            rustls::crypto::aws_lc_rs::sign::any_supported_type(&private).map_err(|e| {
                CertError::UnsupportedKey {
                    file: key.to_path_buf(),
                    error: e.to_string(),
                }
            })?;
        let certified = CertifiedKey::new(chain, signer);
        let mut c = Certificate::from_key(Arc::new(certified)).map_err(|e| match e {
            CertError::BadCertificate { error, .. } => CertError::BadCertificate {
                file: cert.to_path_buf(),
                error,
            },
            CertError::KeyMismatch { .. } => CertError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            },
            other => other,
        })?;
        c.source = Some((cert.to_path_buf(), key.to_path_buf()));
        Ok(c)
    }

    /// A certificate from a chain and key already in memory: checks that
    /// they match ([`CertifiedKey::keys_match`]; a key that cannot tell its
    /// public key is taken on trust) and reads the end-entity
    /// certificate's DNS names and expiry.
    pub fn from_key(key: Arc<CertifiedKey>) -> Result<Certificate, CertError> {
        let none = PathBuf::new;
        let end_entity = key
            .cert
            .first()
            .ok_or_else(|| CertError::NoCertificate { file: none() })?;
        let parsed =
            webpki::EndEntityCert::try_from(end_entity).map_err(|e| CertError::BadCertificate {
                file: none(),
                error: format!("{e:?}"),
            })?;
        let mut names: Vec<String> = parsed
            .valid_dns_names()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        names.dedup();
        match key.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(CertError::KeyMismatch {
                    cert: none(),
                    key: none(),
                })
            }
            Err(e) => {
                return Err(CertError::BadCertificate {
                    file: none(),
                    error: e.to_string(),
                })
            }
        }
        Ok(Certificate {
            not_after: not_after(end_entity),
            key,
            names,
            source: None,
        })
    }

    /// The same certificate chosen by `names` instead of its own DNS
    /// names (`example.com`, `*.example.com`; compared without regard to
    /// case).
    pub fn with_names<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.names = names
            .into_iter()
            .map(|n| n.into().to_ascii_lowercase())
            .collect();
        self
    }

    /// The names SNI chooses this certificate by.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The end-entity certificate's `notAfter`, as `YYYY-MM-DDTHH:MM:SSZ`
    /// (`None` if it could not be read).
    pub fn not_after(&self) -> Option<&str> {
        self.not_after.as_deref()
    }

    /// The certificate and key files it was loaded from.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        self.source
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// The chain and signing key, as rustls takes them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }
}

/// Reads every `CERTIFICATE` block of `file`.
fn read_chain(file: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(file)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(file, e))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate {
            file: file.to_path_buf(),
        });
    }
    Ok(chain)
}

/// Reads the first private key block of `file`.
fn read_key(file: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let bytes = read(file)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(k) => Ok(k),
        Err(pem::Error::NoItemsFound) => {
            let encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
            let file = file.to_path_buf();
            if bytes.windows(encrypted.len()).any(|w| w == encrypted) {
                Err(CertError::EncryptedKey { file })
            } else {
                Err(CertError::NoPrivateKey { file })
            }
        }
        Err(e) => Err(pem_error(file, e)),
    }
}

fn read(file: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(file).map_err(|error| CertError::Read {
        file: file.to_path_buf(),
        error,
    })
}

fn pem_error(file: &Path, e: pem::Error) -> CertError {
    CertError::Pem {
        file: file.to_path_buf(),
        error: e.to_string(),
    }
}

/// The `notAfter` of an X.509 certificate's validity, as
/// `YYYY-MM-DDTHH:MM:SSZ`. Only the few DER elements before it are walked
/// (the certificate was already parsed in full by webpki).
fn not_after(cert: &[u8]) -> Option<String> {
    /// One DER element at the start of `input`: its tag, its contents and
    /// what follows it.
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = element(cert)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let (tag, _, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        // [0] version; the serial number follows.
        (_, _, rest) = element(rest)?;
    }
    // signature algorithm, issuer, validity
    let (_, _, rest) = element(rest)?;
    let (_, _, rest) = element(rest)?;
    let (SEQUENCE, validity, _) = element(rest)? else {
        return None;
    };
    let (_, _, rest) = element(validity)?;
    let (tag, time, _) = element(rest)?;
    let time = std::str::from_utf8(time).ok()?;
    let full = match (tag, time.len()) {
        // UTCTime YYMMDDHHMMSSZ: years 50..99 are 19xx (RFC 5280 §4.1.2.5.1).
        (0x17, 13) => {
            let century = if time[..2] >= *"50" { "19" } else { "20" };
            format!("{century}{time}")
        }
        // GeneralizedTime YYYYMMDDHHMMSSZ.
        (0x18, 15) => time.to_string(),
        _ => return None,
    };
    if !full.ends_with('Z') || !full[..14].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[0..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

/// The whole content of a [`CertStore`]: a default certificate and the
/// certificates chosen by SNI, with their names indexed.
#[derive(Debug)]
pub struct CertSet {
    default: Certificate,
    sni: Vec<Certificate>,
    /// Exact name → index (0 = the default, i = `sni[i - 1]`).
    exact: HashMap<String, usize>,
    /// Wildcard suffix (`example.com` for `*.example.com`) → index.
    wildcard: HashMap<String, usize>,
}

impl CertSet {
    /// The default certificate (for clients that send no server name, or
    /// one that no certificate has) and the certificates chosen by SNI.
    ///
    /// A name is looked up exactly first, then as a wildcard
    /// (`*.example.com` stands for one label: `a.example.com`, not
    /// `example.com` nor `a.b.example.com`). Where several certificates
    /// have the same name, the first of `sni` with it wins, and any of
    /// them wins over the default's. The default's own names are indexed
    /// too, so an exact name of the default wins over a wildcard of
    /// another.
    pub fn new(default: Certificate, sni: Vec<Certificate>) -> CertSet {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let all = sni
            .iter()
            .enumerate()
            .map(|(i, c)| (i + 1, c))
            .chain(std::iter::once((0, &default)));
        for (i, c) in all {
            for name in &c.names {
                match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_string()).or_insert(i),
                    None => exact.entry(name.clone()).or_insert(i),
                };
            }
        }
        CertSet {
            default,
            sni,
            exact,
            wildcard,
        }
    }

    /// The default certificate.
    pub fn default_certificate(&self) -> &Certificate {
        &self.default
    }

    /// The certificates chosen by SNI, in the order given.
    pub fn sni_certificates(&self) -> &[Certificate] {
        &self.sni
    }

    /// Every certificate: the default first.
    pub fn iter(&self) -> impl Iterator<Item = &Certificate> {
        std::iter::once(&self.default).chain(&self.sni)
    }

    /// The certificate for a client that asked for `server_name` (or sent
    /// none).
    pub fn choose(&self, server_name: Option<&str>) -> &Certificate {
        let Some(name) = server_name else {
            return &self.default;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let found = self.exact.get(&name).copied().or_else(|| {
            let (_, parent) = name.split_once('.')?;
            self.wildcard.get(parent).copied()
        });
        match found {
            Some(0) | None => &self.default,
            Some(i) => &self.sni[i - 1],
        }
    }
}

/// The certificates a server presents, chosen per handshake by SNI
/// ([`CertSet::choose`]) and replaceable while the server runs. It is the
/// `cert_resolver` of the configuration [`server_config`] builds.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Arc<CertSet>>,
}

impl CertStore {
    /// A store holding `set`.
    pub fn new(set: CertSet) -> CertStore {
        CertStore {
            current: RwLock::new(Arc::new(set)),
        }
    }

    /// Replaces the whole content at once, returning the previous one.
    /// Every handshake that asks for a certificate afterwards gets one of
    /// the new set; connections already established keep the session they
    /// have (nothing of theirs depends on the store).
    pub fn replace(&self, set: CertSet) -> Arc<CertSet> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *current, Arc::new(set))
    }

    /// The content now.
    pub fn current(&self) -> Arc<CertSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The chain and key for a client that asked for `server_name`.
    pub fn choose(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let set = self.current.read().unwrap_or_else(|e| e.into_inner());
        set.choose(server_name).key.clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.choose(client_hello.server_name()))
    }
}

/// ALPN protocols the server offers: HTTP/1.1 only.
pub const ALPN: &[&[u8]] = &[b"http/1.1"];

/// The rustls configuration ringtail serves with, its certificates from
/// `store`:
///
/// - the aws-lc-rs provider's default cipher suites and key exchanges
///   (X25519, P-256, P-384 and the post-quantum hybrid X25519MLKEM768);
/// - TLS 1.3 and TLS 1.2;
/// - ALPN `http/1.1` only (a client that offers ALPN without it is
///   refused with `no_application_protocol`; one that offers none is
///   served);
/// - resumption: TLS 1.3 and 1.2 session tickets
///   ([`Ticketer`](rustls::crypto::aws_lc_rs::Ticketer): AES-256 and
///   HMAC-SHA256 keys made at start, rotated every 6 hours, tickets valid
///   12 hours), and for TLS 1.2 clients without tickets a session cache of
///   [`SESSION_CACHE_SIZE`] entries;
/// - no 0-RTT data (`max_early_data_size` 0: early data can be replayed);
/// - the server's order of cipher suites is not forced
///   (`ignore_client_order` false: the client's preference, among what
///   both offer);
/// - no client certificates.
///
/// Fails only if the system's random number generator does (for the
/// ticket keys).
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    config.max_early_data_size = 0;
    config.ignore_client_order = false;
    // An established session's keys may leave rustls — only for a
    // handover (`Server::export`), where they travel to the next process
    // of the same user; nothing else reads them.
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// Whether the kernel offers kernel TLS, and if not why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ktls {
    /// The kernel has the `tls` upper-layer protocol.
    Available,
    /// It has not (or it could not be told).
    Unavailable {
        /// Why, in a few words.
        reason: String,
    },
}

impl Ktls {
    /// Whether it is [`Ktls::Available`].
    pub fn is_available(&self) -> bool {
        matches!(self, Ktls::Available)
    }
}

impl fmt::Display for Ktls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ktls::Available => f.write_str("the kernel offers the tls upper-layer protocol"),
            Ktls::Unavailable { reason } => f.write_str(reason),
        }
    }
}

/// Where Linux lists the TCP upper-layer protocols it has loaded.
const AVAILABLE_ULP: &str = "/proc/sys/net/ipv4/tcp_available_ulp";

/// Whether the kernel offers the `tls` upper-layer protocol (see the
/// module documentation: ringtail detects it but does not use it yet).
///
/// Asks the kernel directly: a connected loopback TCP socket pair is made
/// and `setsockopt(TCP_ULP, "tls")` tried on one end (the kernel may load
/// the `tls` module for it where that is allowed; `ENOENT` means there is
/// none). Where the sockets cannot be made or the call fails otherwise,
/// `/proc/sys/net/ipv4/tcp_available_ulp` is read instead.
pub fn ktls_probe() -> Ktls {
    match probe_socket() {
        Ok(()) => Ktls::Available,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ktls::Unavailable {
            reason: "the kernel has no tls upper-layer protocol \
                     (setsockopt TCP_ULP \"tls\": ENOENT; the tls module is not loaded)"
                .into(),
        },
        Err(probe) => match std::fs::read_to_string(AVAILABLE_ULP) {
            Ok(list) if ulp_list_has_tls(&list) => Ktls::Available,
            Ok(list) => Ktls::Unavailable {
                reason: format!(
                    "the kernel lists no tls upper-layer protocol ({AVAILABLE_ULP}: {:?}; \
                     setsockopt TCP_ULP: {probe})",
                    list.trim()
                ),
            },
            Err(e) => Ktls::Unavailable {
                reason: format!("cannot tell (setsockopt TCP_ULP: {probe}; {AVAILABLE_ULP}: {e})"),
            },
        },
    }
}

/// [`ktls_probe`]`().is_available()`.
pub fn ktls_available() -> bool {
    ktls_probe().is_available()
}

/// Whether a `tcp_available_ulp` list (names separated by spaces) has `tls`.
fn ulp_list_has_tls(list: &str) -> bool {
    list.split_whitespace().any(|u| u == "tls")
}

/// `setsockopt(TCP_ULP, "tls")` on an established loopback connection.
fn probe_socket() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let client = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (_server, _) = listener.accept()?;
    let name = b"tls";
    // SAFETY: the descriptor is the live socket `client` owns; the option
    // value is a valid buffer of the length given, only read by the kernel.
    let r = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_ULP,
            name.as_ptr().cast(),
            name.len() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::HandshakeKind;

    /// A CA and what it signs, in a temporary directory.
    struct Pki {
        dir: tempfile::TempDir,
        ca: rcgen::Issuer<'static, rcgen::KeyPair>,
        ca_der: CertificateDer<'static>,
    }

    impl Pki {
        fn new() -> Pki {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "ringtail test CA");
            let cert = params.self_signed(&key).unwrap();
            Pki {
                dir: tempfile::tempdir().unwrap(),
                ca_der: cert.der().clone(),
                ca: rcgen::Issuer::new(params, key),
            }
        }

        /// A leaf for `names` signed by the CA, written as `stem.crt`
        /// (leaf, then the CA: a chain) and `stem.key`.
        fn leaf(
            &self,
            stem: &str,
            names: &[&str],
            alg: &'static rcgen::SignatureAlgorithm,
        ) -> (PathBuf, PathBuf) {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let mut params = rcgen::CertificateParams::new(names).unwrap();
            params.not_after = rcgen::date_time_ymd(2040, 6, 30);
            let cert = params.signed_by(&key, &self.ca).unwrap();
            let crt = self.dir.path().join(format!("{stem}.crt"));
            let k = self.dir.path().join(format!("{stem}.key"));
            std::fs::write(
                &crt,
                format!("{}{}", cert.pem(), pem_of(&self.ca_der, "CERTIFICATE")),
            )
            .unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (crt, k)
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// A client configuration trusting the CA.
        fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let mut c = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Arc::new(c)
        }
    }

    /// DER as a PEM block.
    fn pem_of(der: &[u8], label: &str) -> String {
        use std::fmt::Write;
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    b64.push('=');
                }
            }
        }
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap());
        }
        let _ = writeln!(out, "-----END {label}-----");
        out
    }

    /// Runs a handshake in memory between a client asking for `sni` and a
    /// server configured with `server`; the end-entity certificate the
    /// client got, and how the handshake went.
    fn handshake(
        server: &Arc<rustls::ServerConfig>,
        client: &Arc<rustls::ClientConfig>,
        sni: &str,
    ) -> Result<(CertificateDer<'static>, HandshakeKind, Option<Vec<u8>>), rustls::Error> {
        let name = ServerName::try_from(sni.to_string()).unwrap();
        let mut c = rustls::ClientConnection::new(client.clone(), name)?;
        let mut s = rustls::ServerConnection::new(server.clone())?;
        let mut buf = Vec::new();
        for _ in 0..20 {
            if !c.is_handshaking() && !s.is_handshaking() {
                break;
            }
            buf.clear();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
            }
            let r = s.process_new_packets();
            buf.clear();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
            }
            r?;
            c.process_new_packets()?;
        }
        // Let the client take the server's tickets (sent after the
        // handshake in TLS 1.3).
        buf.clear();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets()?;
        let got = c.peer_certificates().unwrap()[0].clone().into_owned();
        Ok((
            got,
            c.handshake_kind().unwrap(),
            c.alpn_protocol().map(|p| p.to_vec()),
        ))
    }

    fn names(c: &Certificate) -> Vec<&str> {
        c.names().iter().map(|s| s.as_str()).collect()
    }

    #[test]
    fn rsa_and_ecdsa_chains_load_with_their_names_and_expiry() {
        let pki = Pki::new();
        for (stem, alg) in [
            ("rsa", &rcgen::PKCS_RSA_SHA256),
            ("p256", &rcgen::PKCS_ECDSA_P256_SHA256),
            ("p384", &rcgen::PKCS_ECDSA_P384_SHA384),
            ("ed25519", &rcgen::PKCS_ED25519),
        ] {
            let (crt, key) = pki.leaf(stem, &["Example.com", "*.example.com"], alg);
            let c = Certificate::load(&crt, &key).unwrap_or_else(|e| panic!("{stem}: {e}"));
            assert_eq!(c.certified_key().cert.len(), 2, "{stem}: leaf and CA");
            assert_eq!(names(&c), ["example.com", "*.example.com"], "{stem}");
            assert_eq!(c.not_after(), Some("2040-06-30T00:00:00Z"), "{stem}");
            assert_eq!(c.files(), Some((crt.as_path(), key.as_path())));
        }
    }

    #[test]
    fn key_formats_pkcs1_and_sec1_load_too() {
        let pki = Pki::new();
        // rcgen writes PKCS#8; the same keys as PKCS#1 (RSA) and SEC1 (EC)
        // come from openssl's "traditional" output where it is installed,
        // so this test writes them from the DER rustls parses instead.
        let (crt, key) = pki.leaf("rsa", &["rsa.test"], &rcgen::PKCS_RSA_SHA256);
        let pkcs8 = PrivateKeyDer::from_pem_file(&key).unwrap();
        let PrivateKeyDer::Pkcs8(pkcs8) = pkcs8 else {
            panic!("rcgen writes PKCS#8")
        };
        // PKCS#8 wraps the PKCS#1 key in an OCTET STRING at its end:
        // SEQUENCE { version, AlgorithmIdentifier, OCTET STRING { key } }.
        let inner = last_octet_string(pkcs8.secret_pkcs8_der());
        let pkcs1 = pki.path("rsa1.key");
        std::fs::write(&pkcs1, pem_of(inner, "RSA PRIVATE KEY")).unwrap();
        Certificate::load(&crt, &pkcs1).unwrap();

        let (crt, key) = pki.leaf("ec", &["ec.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let PrivateKeyDer::Pkcs8(pkcs8) = PrivateKeyDer::from_pem_file(&key).unwrap() else {
            panic!("rcgen writes PKCS#8")
        };
        let inner = last_octet_string(pkcs8.secret_pkcs8_der());
        let sec1 = pki.path("ec1.key");
        std::fs::write(&sec1, pem_of(inner, "EC PRIVATE KEY")).unwrap();
        Certificate::load(&crt, &sec1).unwrap();
    }

    /// The contents of the OCTET STRING that is the third element of a
    /// PKCS#8 `PrivateKeyInfo`.
    fn last_octet_string(der: &[u8]) -> &[u8] {
        fn element(input: &[u8]) -> (u8, &[u8], &[u8]) {
            let tag = input[0];
            let (len, rest) = if input[1] < 0x80 {
                (usize::from(input[1]), &input[2..])
            } else {
                let n = usize::from(input[1] & 0x7f);
                let len = input[2..2 + n]
                    .iter()
                    .fold(0usize, |a, &b| (a << 8) | usize::from(b));
                (len, &input[2 + n..])
            };
            (tag, &rest[..len], &rest[len..])
        }
        let (_, info, _) = element(der);
        let (_, _, rest) = element(info); // version
        let (_, _, rest) = element(rest); // algorithm
        let (tag, key, _) = element(rest);
        assert_eq!(tag, 0x04);
        key
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let pki = Pki::new();
        let (crt, _) = pki.leaf("a", &["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other_key) = pki.leaf("b", &["b.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let e = Certificate::load(&crt, &other_key).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("b.key: the private key does not match the certificate in")
                && msg.contains("a.crt"),
            "{msg}"
        );
        // An RSA key for an ECDSA certificate: a mismatch too.
        let (_, rsa_key) = pki.leaf("r", &["r.test"], &rcgen::PKCS_RSA_SHA256);
        let e = Certificate::load(&crt, &rsa_key).unwrap_err();
        assert!(matches!(e, CertError::KeyMismatch { .. }), "{e:?}");
    }

    #[test]
    fn files_without_what_they_should_hold_are_refused_with_the_reason() {
        let pki = Pki::new();
        let (crt, key) = pki.leaf("a", &["a.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let missing = pki.path("missing.crt");
        let e = Certificate::load(&missing, &key).unwrap_err();
        assert!(e.to_string().starts_with("cannot read ") && e.to_string().contains("missing.crt"));

        // The key file given as the certificate, and the other way round.
        let e = Certificate::load(&key, &key).unwrap_err();
        assert!(matches!(e, CertError::NoCertificate { .. }), "{e:?}");
        assert!(
            e.to_string().contains("a.key: no certificate in the file"),
            "{e}"
        );
        let e = Certificate::load(&crt, &crt).unwrap_err();
        assert!(matches!(e, CertError::NoPrivateKey { .. }), "{e:?}");
        assert!(
            e.to_string().contains("a.crt: no private key in the file"),
            "{e}"
        );

        let enc = pki.path("enc.key");
        std::fs::write(
            &enc,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = Certificate::load(&crt, &enc).unwrap_err();
        assert!(matches!(e, CertError::EncryptedKey { .. }), "{e:?}");

        // A PKCS#8 block that holds no key rustls can sign with.
        let junk = pki.path("junk.key");
        std::fs::write(
            &junk,
            pem_of(&[0x30, 0x03, 0x02, 0x01, 0x00], "PRIVATE KEY"),
        )
        .unwrap();
        let e = Certificate::load(&crt, &junk).unwrap_err();
        assert!(matches!(e, CertError::UnsupportedKey { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("junk.key: unsupported private key type"),
            "{e}"
        );

        // Broken PEM.
        let broken = pki.path("broken.crt");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap();
        let e = Certificate::load(&broken, &key).unwrap_err();
        assert!(matches!(e, CertError::Pem { .. }), "{e:?}");
        assert!(e.to_string().contains("broken.crt: not valid PEM"), "{e}");

        // A CERTIFICATE block that is no certificate.
        let bad = pki.path("bad.crt");
        std::fs::write(&bad, pem_of(&[0x30, 0x00], "CERTIFICATE")).unwrap();
        let e = Certificate::load(&bad, &key).unwrap_err();
        assert!(matches!(e, CertError::BadCertificate { .. }), "{e:?}");
        assert!(
            e.to_string()
                .contains("bad.crt: the certificate cannot be parsed"),
            "{e}"
        );
    }

    #[test]
    fn sni_chooses_exact_names_then_wildcards_then_the_default() {
        let pki = Pki::new();
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        let load = |stem, names: &[&str]| {
            let (c, k) = pki.leaf(stem, names, alg);
            Certificate::load(&c, &k).unwrap()
        };
        let default = load("default", &["default.test", "exact.example.com"]);
        let wild = load("wild", &["*.example.com"]);
        let api = load("api", &["api.example.com", "API.other.test"]);
        let store = CertStore::new(CertSet::new(
            default.clone(),
            vec![wild.clone(), api.clone()],
        ));
        let is =
            |got: Arc<CertifiedKey>, want: &Certificate| Arc::ptr_eq(&got, want.certified_key());
        assert!(is(store.choose(None), &default), "no SNI: the default");
        assert!(is(store.choose(Some("api.example.com")), &api), "exact");
        assert!(
            is(store.choose(Some("Api.Other.Test.")), &api),
            "case, trailing dot"
        );
        assert!(is(store.choose(Some("www.example.com")), &wild), "wildcard");
        assert!(
            is(store.choose(Some("exact.example.com")), &default),
            "an exact name of the default beats a wildcard"
        );
        assert!(
            is(store.choose(Some("example.com")), &default),
            "a wildcard does not cover its parent"
        );
        assert!(
            is(store.choose(Some("a.b.example.com")), &default),
            "a wildcard covers one label"
        );
        assert!(is(store.choose(Some("unknown.test")), &default), "no match");

        // The same through real handshakes: rustls asks the store.
        let server = server_config(Arc::new(store)).unwrap();
        let client = pki.client(&[b"http/1.1"]);
        let (got, _, alpn) = handshake(&server, &client, "api.example.com").unwrap();
        assert_eq!(got, api.certified_key().cert[0]);
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
        let (got, _, _) = handshake(&server, &client, "www.example.com").unwrap();
        assert_eq!(got, wild.certified_key().cert[0]);
        // A client that sends no server name gets the default.
        let mut no_sni = (*client).clone();
        no_sni.enable_sni = false;
        let no_sni = Arc::new(no_sni);
        let (got, _, _) = handshake(&server, &no_sni, "default.test").unwrap();
        assert_eq!(got, default.certified_key().cert[0]);
        // … even when it means another name (and then refuses the default).
        let e = handshake(&server, &no_sni, "api.example.com").unwrap_err();
        assert!(
            e.to_string().contains("certificate not valid for name"),
            "{e}"
        );
    }

    #[test]
    fn a_replaced_set_is_what_the_next_handshake_gets_and_sessions_resume() {
        let pki = Pki::new();
        let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
        let (c1, k1) = pki.leaf("one", &["site.test"], alg);
        let first = Certificate::load(&c1, &k1).unwrap();
        let store = Arc::new(CertStore::new(CertSet::new(first.clone(), Vec::new())));
        let server = server_config(store.clone()).unwrap();
        let client = pki.client(&[b"h2", b"http/1.1"]);
        let (got, kind, alpn) = handshake(&server, &client, "site.test").unwrap();
        assert_eq!(got, first.certified_key().cert[0]);
        assert_eq!(kind, HandshakeKind::Full);
        assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "h2 is not offered");
        // The client took a ticket: the next connection resumes.
        let (_, kind, _) = handshake(&server, &client, "site.test").unwrap();
        assert_eq!(kind, HandshakeKind::Resumed);

        let (c2, k2) = pki.leaf("two", &["site.test"], alg);
        let second = Certificate::load(&c2, &k2).unwrap();
        let old = store.replace(CertSet::new(second.clone(), Vec::new()));
        assert!(Arc::ptr_eq(
            old.default_certificate().certified_key(),
            first.certified_key()
        ));
        assert!(Arc::ptr_eq(
            &store.choose(Some("site.test")),
            second.certified_key()
        ));
        let fresh = pki.client(&[b"http/1.1"]);
        let (got, kind, _) = handshake(&server, &fresh, "site.test").unwrap();
        assert_eq!(kind, HandshakeKind::Full);
        assert_eq!(got, second.certified_key().cert[0]);
    }

    #[test]
    fn a_client_offering_alpn_without_http1_is_refused_and_tls12_is_served() {
        let pki = Pki::new();
        let (c, k) = pki.leaf("one", &["site.test"], &rcgen::PKCS_ECDSA_P256_SHA256);
        let store = Arc::new(CertStore::new(CertSet::new(
            Certificate::load(&c, &k).unwrap(),
            Vec::new(),
        )));
        let server = server_config(store).unwrap();
        let e = handshake(&server, &pki.client(&[b"h2"]), "site.test").unwrap_err();
        assert!(matches!(e, rustls::Error::NoApplicationProtocol), "{e}");
        // No ALPN at all: served.
        handshake(&server, &pki.client(&[]), "site.test").unwrap();
        // TLS 1.2 only.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls12 = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls12 = Arc::new(tls12);
        let (_, kind, _) = handshake(&server, &tls12, "site.test").unwrap();
        assert_eq!(kind, HandshakeKind::Full);
        let (_, kind, _) = handshake(&server, &tls12, "site.test").unwrap();
        assert_eq!(kind, HandshakeKind::Resumed, "TLS 1.2 resumes too");
    }

    #[test]
    fn certificates_for_sni_may_be_given_names_and_ones_without_names_say_so() {
        let pki = Pki::new();
        let (c, k) = pki.leaf("n", &[], &rcgen::PKCS_ECDSA_P256_SHA256);
        let cert = Certificate::load(&c, &k).unwrap();
        assert!(cert.names().is_empty());
        let named = cert.with_names(["Other.Test"]);
        assert_eq!(names(&named), ["other.test"]);
        let set = CertSet::new(
            Certificate::load(
                &pki.leaf("d", &["d.test"], &rcgen::PKCS_ECDSA_P256_SHA256).0,
                &{ pki.path("d.key") },
            )
            .unwrap(),
            vec![named.clone()],
        );
        assert!(Arc::ptr_eq(
            set.choose(Some("other.test")).certified_key(),
            named.certified_key()
        ));
        assert_eq!(set.iter().count(), 2);
        let e = CertError::NoNames { file: c.clone() };
        assert!(e.to_string().contains("no DNS name"), "{e}");
    }

    #[test]
    fn not_after_reads_utc_and_generalized_times() {
        let pki = Pki::new();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["t.test".to_string()]).unwrap();
        // UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280).
        params.not_after = rcgen::date_time_ymd(2049, 12, 31);
        let utc = params.signed_by(&key, &pki.ca).unwrap();
        assert_eq!(
            not_after(utc.der()).as_deref(),
            Some("2049-12-31T00:00:00Z")
        );
        params.not_after = rcgen::date_time_ymd(2051, 1, 2);
        let gen = params.signed_by(&key, &pki.ca).unwrap();
        assert_eq!(
            not_after(gen.der()).as_deref(),
            Some("2051-01-02T00:00:00Z")
        );
        assert_eq!(not_after(b"\x30\x00"), None);
        assert_eq!(not_after(b""), None);
    }

    #[test]
    fn ktls_detection_agrees_with_the_kernel_list() {
        let probe = ktls_probe();
        // After the probe (which may have loaded the module), the kernel's
        // list says the same. On the machine this was written on the
        // kernel has no tls ULP: the probe says unavailable, and why.
        let listed = std::fs::read_to_string(AVAILABLE_ULP).unwrap_or_default();
        assert_eq!(probe.is_available(), ulp_list_has_tls(&listed), "{probe}");
        assert_eq!(ktls_available(), probe.is_available());
        if !probe.is_available() {
            assert!(probe.to_string().contains("tls"), "{probe}");
        }
        assert!(ulp_list_has_tls("mptcp tls"));
        assert!(!ulp_list_has_tls("mptcp"));
        assert!(!ulp_list_has_tls("tlsx"));
    }
}
