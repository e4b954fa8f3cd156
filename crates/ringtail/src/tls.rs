//! TLS of `ringtail serve`: the certificate files (`--tls-cert`,
//! `--tls-key`, `--tls-sni`), the certificate store every loop's HTTPS
//! listener shares, reloading it (SIGHUP, `ringtail ctl reload-tls`), and
//! whether the kernel offers kTLS (detected and reported; not used yet, see
//! `network_server::tls`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use network_server::rustls;
use network_server::tls::{CertError, CertSet, CertStore, Certificate, Ktls};
use serde::Serialize;

/// The certificate and key files, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    /// The default certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Certificates chosen by SNI (by their subjectAltName DNS names):
    /// chain and key.
    pub sni: Vec<(PathBuf, PathBuf)>,
}

/// One certificate as `ctl reload-tls` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    /// The DNS names it is chosen by (subjectAltName).
    pub names: Vec<String>,
    /// Its expiry (`YYYY-MM-DDTHH:MM:SSZ`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// The certificate file.
    pub cert: PathBuf,
    /// Whether it is the default (for clients that ask for no name or an
    /// unknown one).
    pub default: bool,
}

/// The process's TLS: shared by every loop, reloaded in place.
pub struct Tls {
    files: Files,
    store: Arc<CertStore>,
    config: Arc<rustls::ServerConfig>,
    ktls: Ktls,
    /// One reload at a time (SIGHUP and the control socket may ask at once).
    reloading: Mutex<()>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .field("ktls", &self.ktls)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificates, builds the rustls configuration and probes
    /// for kTLS; a certificate that cannot be used is refused with the
    /// file and the reason.
    pub fn load(files: Files) -> Result<Tls, String> {
        let set = load_set(&files)?;
        let store = Arc::new(CertStore::new(set));
        let config = network_server::tls::server_config(store.clone())
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        Ok(Tls {
            files,
            store,
            config,
            ktls: network_server::tls::ktls_probe(),
            reloading: Mutex::new(()),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        })
    }

    /// The configuration every loop's `ServerConfig::tls` shares.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// Whether the kernel offers kTLS.
    pub fn ktls(&self) -> &Ktls {
        &self.ktls
    }

    /// Reloads, successful and failed.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        )
    }

    /// The certificates served now.
    pub fn certificates(&self) -> Vec<CertInfo> {
        describe(&self.store.current())
    }

    /// Reads every file again and, if all of them can be used, replaces
    /// the certificates at once: handshakes from now on get the new ones,
    /// open connections go on. Otherwise the old ones stay and the reason
    /// is returned.
    pub fn reload(&self) -> Result<Vec<CertInfo>, String> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        match load_set(&self.files) {
            Ok(set) => {
                let info = describe(&set);
                self.store.replace(set);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Ok(info)
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                Err(format!("{e}; the certificates loaded before are kept"))
            }
        }
    }
}

/// Loads every certificate of `files`.
fn load_set(files: &Files) -> Result<CertSet, String> {
    let what = |e: CertError| format!("TLS certificate: {e}");
    let default = Certificate::load(&files.cert, &files.key).map_err(what)?;
    let mut sni = Vec::new();
    for (cert, key) in &files.sni {
        let c = Certificate::load(cert, key).map_err(what)?;
        if c.names().is_empty() {
            return Err(what(CertError::NoNames { file: cert.clone() }));
        }
        sni.push(c);
    }
    Ok(CertSet::new(default, sni))
}

fn describe(set: &CertSet) -> Vec<CertInfo> {
    set.iter()
        .enumerate()
        .map(|(i, c)| CertInfo {
            names: c.names().to_vec(),
            not_after: c.not_after().map(str::to_string),
            cert: c.files().map(|(c, _)| c.to_path_buf()).unwrap_or_default(),
            default: i == 0,
        })
        .collect()
}

/// `CERT:KEY` of `--tls-sni` (split at the first `:`).
pub fn parse_pair(s: &str) -> Result<(PathBuf, PathBuf), String> {
    match s.split_once(':') {
        Some((c, k)) if !c.is_empty() && !k.is_empty() => Ok((c.into(), k.into())),
        _ => Err(format!("expected CERT:KEY (two PEM files), got {s:?}")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for `names`, written as `stem.crt` and
    /// `stem.key` in `dir`.
    pub fn write_cert(dir: &std::path::Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        let (crt, key) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&crt, c.cert.pem()).unwrap();
        std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
        (crt, key)
    }

    #[test]
    fn a_failed_reload_keeps_the_certificates_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = write_cert(dir.path(), "a", &["a.test"]);
        let (sni_crt, sni_key) = write_cert(dir.path(), "b", &["b.test", "*.b.test"]);
        let tls = Tls::load(Files {
            cert: crt.clone(),
            key: key.clone(),
            sni: vec![(sni_crt.clone(), sni_key)],
        })
        .unwrap();
        let before = tls.certificates();
        assert_eq!(before.len(), 2);
        assert_eq!(before[0].names, ["a.test"]);
        assert!(before[0].default);
        assert_eq!(before[1].names, ["b.test", "*.b.test"]);
        assert!(!before[1].default);
        assert_eq!(before[1].cert, sni_crt);

        // Another key for the default certificate: refused, nothing changes.
        let (_, other_key) = write_cert(dir.path(), "c", &["c.test"]);
        std::fs::copy(&other_key, &key).unwrap();
        let e = tls.reload().unwrap_err();
        assert!(
            e.contains("does not match the certificate") && e.contains("kept"),
            "{e}"
        );
        assert_eq!(tls.certificates(), before);
        assert_eq!(tls.reload_counts(), (0, 1));

        // A new pair in place: taken.
        write_cert(dir.path(), "a", &["a2.test"]);
        let after = tls.reload().unwrap();
        assert_eq!(after[0].names, ["a2.test"]);
        assert_eq!(tls.certificates(), after);
        assert_eq!(tls.reload_counts(), (1, 1));
    }

    #[test]
    fn sni_certificates_need_names_and_pairs_are_two_files() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = write_cert(dir.path(), "a", &["a.test"]);
        let (n_crt, n_key) = write_cert(dir.path(), "n", &[]);
        let e = Tls::load(Files {
            cert: crt,
            key,
            sni: vec![(n_crt, n_key)],
        })
        .unwrap_err();
        assert!(e.contains("n.crt: the certificate has no DNS name"), "{e}");
        assert_eq!(
            parse_pair("a.crt:a.key").unwrap(),
            ("a.crt".into(), "a.key".into())
        );
        assert!(parse_pair("a.crt").is_err());
        assert!(parse_pair(":a.key").is_err());
    }
}
