//! The TLS record layer of a session whose handshake is over and whose
//! keys were taken out of rustls (`dangerous_into_kernel_connection`) so
//! that the session can be handed over to another process: what kTLS does
//! in the kernel, done here because this machine's kernel has no `tls`
//! module, and because it is the only way to carry a TLS connection across
//! an upgrade (rustls cannot be re-created from its secrets; its record
//! protection types need key lengths its public API does not build).
//!
//! Written by hand because it is that small and that fixed: records of TLS
//! 1.3 (RFC 8446 §5.2: inner content type, zero padding, the record header
//! as additional data, nonce = IV ⊕ sequence number) and of TLS 1.2 with
//! AES-GCM (RFC 5288: 8-byte explicit nonce) or ChaCha20-Poly1305 (RFC
//! 7905), sealed and opened in place with aws-lc-rs (the AEAD rustls itself
//! uses here). Application data, `close_notify` and fatal alerts are
//! handled; any post-handshake handshake message (a TLS 1.3 KeyUpdate, a
//! TLS 1.2 renegotiation) ends the connection, as does a sequence number
//! near the AEAD's confidentiality limit.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::{ConnectionTrafficSecrets, ProtocolVersion};
use serde::{Deserialize, Serialize};

/// Largest plaintext of one record.
const MAX_PLAINTEXT: usize = 16 * 1024;
/// Largest record body accepted: TLS 1.3 allows 2^14 + 256, TLS 1.2
/// 2^14 + 2048.
const MAX_CIPHERTEXT_13: usize = MAX_PLAINTEXT + 256;
const MAX_CIPHERTEXT_12: usize = MAX_PLAINTEXT + 2048;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 5;

const CONTENT_ALERT: u8 = 21;
const CONTENT_HANDSHAKE: u8 = 22;
const CONTENT_APPDATA: u8 = 23;

/// Records sealed or opened with one key before the connection ends: far
/// below AES-GCM's confidentiality limit of 2^24.5 full records (RFC 8446
/// §5.5), where rustls would rotate the keys (which needs the handshake
/// secrets that stay with rustls).
const RECORD_LIMIT: u64 = 1 << 24;

/// The AEADs rustls negotiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl Cipher {
    fn algorithm(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    /// TLS 1.2 GCM carries 8 bytes of the nonce in each record.
    fn explicit_nonce_len(self, tls13: bool) -> usize {
        match self {
            Cipher::Aes128Gcm | Cipher::Aes256Gcm if !tls13 => 8,
            _ => 0,
        }
    }
}

/// One direction's key, IV and sequence number.
struct Direction {
    key: LessSafeKey,
    /// Kept for an export.
    key_bytes: Vec<u8>,
    iv: [u8; 12],
    seq: u64,
}

impl Direction {
    fn new(cipher: Cipher, key: &[u8], iv: &[u8], seq: u64) -> Result<Direction, String> {
        let unbound = UnboundKey::new(cipher.algorithm(), key)
            .map_err(|_| format!("a {cipher:?} key of {} bytes", key.len()))?;
        let iv: [u8; 12] = iv
            .try_into()
            .map_err(|_| format!("an IV of {} bytes", iv.len()))?;
        Ok(Direction {
            key: LessSafeKey::new(unbound),
            key_bytes: key.to_vec(),
            iv,
            seq,
        })
    }

    /// IV ⊕ sequence number (RFC 8446 §5.3; the TLS 1.2 AEADs here too).
    fn nonce(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    fn next(&mut self) -> Result<(), Error> {
        if self.seq >= RECORD_LIMIT {
            return Err(Error("too many records under one key".into()));
        }
        self.seq += 1;
        Ok(())
    }
}

/// A record-layer failure: the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error(pub(crate) String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What [`Records::open`] found besides application data.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Opened {
    /// A `close_notify` arrived (nothing after it is read).
    pub(crate) peer_closed: bool,
}

/// An established session's record protection.
pub(crate) struct Records {
    tls13: bool,
    cipher: Cipher,
    tx: Direction,
    rx: Direction,
    peer_closed: bool,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("tls13", &self.tls13)
            .field("cipher", &self.cipher)
            .field("tx_seq", &self.tx.seq)
            .field("rx_seq", &self.rx.seq)
            .finish_non_exhaustive()
    }
}

/// A session's record layer as plain data (keys included: a snapshot
/// travels only between processes of the same user, over a socket pair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RecordsV4 {
    pub(crate) tls13: bool,
    pub(crate) cipher: Cipher,
    #[serde(with = "serde_bytes")]
    pub(crate) tx_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub(crate) tx_iv: Vec<u8>,
    pub(crate) tx_seq: u64,
    #[serde(with = "serde_bytes")]
    pub(crate) rx_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub(crate) rx_iv: Vec<u8>,
    pub(crate) rx_seq: u64,
    pub(crate) peer_closed: bool,
}

fn split(s: &ConnectionTrafficSecrets) -> Result<(Cipher, &[u8], &[u8]), Error> {
    Ok(match s {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
            (Cipher::Aes128Gcm, key.as_ref(), iv.as_ref())
        }
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
            (Cipher::Aes256Gcm, key.as_ref(), iv.as_ref())
        }
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (Cipher::Chacha20Poly1305, key.as_ref(), iv.as_ref())
        }
        _ => return Err(Error("an AEAD this record layer does not know".into())),
    })
}

impl Records {
    /// From the secrets rustls gave up (`tx`/`rx`: sequence number and
    /// traffic secrets).
    pub(crate) fn from_secrets(
        version: ProtocolVersion,
        secrets: rustls::ExtractedSecrets,
    ) -> Result<Records, Error> {
        let tls13 = match version {
            ProtocolVersion::TLSv1_3 => true,
            ProtocolVersion::TLSv1_2 => false,
            v => return Err(Error(format!("protocol version {v:?}"))),
        };
        let (tx_seq, tx) = &secrets.tx;
        let (rx_seq, rx) = &secrets.rx;
        let (cipher, tx_key, tx_iv) = split(tx)?;
        let (rx_cipher, rx_key, rx_iv) = split(rx)?;
        if rx_cipher != cipher {
            return Err(Error("different AEADs each way".into()));
        }
        let tx = Direction::new(cipher, tx_key, tx_iv, *tx_seq).map_err(Error)?;
        let rx = Direction::new(cipher, rx_key, rx_iv, *rx_seq).map_err(Error)?;
        Ok(Records {
            tls13,
            cipher,
            tx,
            rx,
            peer_closed: false,
        })
    }

    pub(crate) fn export(&self) -> RecordsV4 {
        RecordsV4 {
            tls13: self.tls13,
            cipher: self.cipher,
            tx_key: self.tx.key_bytes.clone(),
            tx_iv: self.tx.iv.to_vec(),
            tx_seq: self.tx.seq,
            rx_key: self.rx.key_bytes.clone(),
            rx_iv: self.rx.iv.to_vec(),
            rx_seq: self.rx.seq,
            peer_closed: self.peer_closed,
        }
    }

    pub(crate) fn import(v: &RecordsV4) -> Result<Records, String> {
        Ok(Records {
            tls13: v.tls13,
            cipher: v.cipher,
            tx: Direction::new(v.cipher, &v.tx_key, &v.tx_iv, v.tx_seq)?,
            rx: Direction::new(v.cipher, &v.rx_key, &v.rx_iv, v.rx_seq)?,
            peer_closed: v.peer_closed,
        })
    }

    /// Opens every complete record at the front of `inbuf` (in place) and
    /// appends application data to `plain`; returns how many bytes of
    /// `inbuf` that used up (an incomplete record is left).
    pub(crate) fn open(
        &mut self,
        inbuf: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> (Result<Opened, Error>, usize) {
        let mut opened = Opened::default();
        let mut pos = 0;
        let max = if self.tls13 {
            MAX_CIPHERTEXT_13
        } else {
            MAX_CIPHERTEXT_12
        };
        let r = loop {
            if self.peer_closed {
                // Nothing after close_notify is read.
                pos = inbuf.len();
                break Ok(());
            }
            let Some(header) = inbuf.get(pos..pos + HEADER_LEN) else {
                break Ok(());
            };
            let header: [u8; HEADER_LEN] = header.try_into().expect("five bytes");
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if len > max || header[1] != 3 {
                break Err(Error(format!(
                    "a record of {len} bytes (version byte {})",
                    header[1]
                )));
            }
            let Some(body) = inbuf.get_mut(pos + HEADER_LEN..pos + HEADER_LEN + len) else {
                break Ok(());
            };
            let (typ, content) = match self.open_record(header, body) {
                Ok(x) => x,
                Err(e) => break Err(e),
            };
            match typ {
                CONTENT_APPDATA => plain.extend_from_slice(content),
                CONTENT_ALERT => match content {
                    // close_notify (warning or, as some peers send it, fatal).
                    [_, 0] => {
                        self.peer_closed = true;
                        opened.peer_closed = true;
                    }
                    [level, desc] => {
                        break Err(Error(format!("alert {desc} (level {level}) from the peer")))
                    }
                    _ => break Err(Error("a malformed alert".into())),
                },
                CONTENT_HANDSHAKE => {
                    break Err(Error(
                        "a handshake message after the handshake (key update or renegotiation)"
                            .into(),
                    ))
                }
                t => break Err(Error(format!("a record of content type {t}"))),
            }
            pos += HEADER_LEN + len;
        };
        (r.map(|()| opened), pos)
    }

    /// [`Records::open`] on a buffer that keeps what is left.
    #[cfg(test)]
    fn open_vec(&mut self, inbuf: &mut Vec<u8>, plain: &mut Vec<u8>) -> Result<Opened, Error> {
        let (r, used) = self.open(inbuf, plain);
        inbuf.drain(..used);
        r
    }

    /// Opens one record in place: its content type and plaintext.
    fn open_record<'a>(
        &mut self,
        header: [u8; HEADER_LEN],
        body: &'a mut [u8],
    ) -> Result<(u8, &'a [u8]), Error> {
        let bad = || Error("a record that does not decrypt".into());
        let explicit = self.cipher.explicit_nonce_len(self.tls13);
        if body.len() < explicit + TAG_LEN {
            return Err(bad());
        }
        let (typ, plain) = if self.tls13 {
            if header[0] != CONTENT_APPDATA {
                return Err(Error(format!(
                    "an unprotected record of type {}",
                    header[0]
                )));
            }
            let nonce = Nonce::assume_unique_for_key(self.rx.nonce());
            let plain = self
                .rx
                .key
                .open_in_place(nonce, Aad::from(header), body)
                .map_err(|_| bad())?;
            // TLSInnerPlaintext: content, type, zero padding.
            let end = plain.iter().rposition(|&b| b != 0).ok_or_else(bad)?;
            let typ = plain[end];
            (typ, &plain[..end])
        } else {
            let plain_len = body.len() - explicit - TAG_LEN;
            let mut aad = [0u8; 13];
            aad[..8].copy_from_slice(&self.rx.seq.to_be_bytes());
            aad[8] = header[0];
            aad[9..11].copy_from_slice(&header[1..3]);
            aad[11..].copy_from_slice(&(plain_len as u16).to_be_bytes());
            let nonce = if explicit > 0 {
                let mut n = [0u8; 12];
                n[..4].copy_from_slice(&self.rx.iv[..4]);
                n[4..].copy_from_slice(&body[..8]);
                n
            } else {
                self.rx.nonce()
            };
            let plain = self
                .rx
                .key
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    &mut body[explicit..],
                )
                .map_err(|_| bad())?;
            (header[0], &*plain)
        };
        if plain.len() > MAX_PLAINTEXT {
            return Err(Error("a record over 16 KiB of plaintext".into()));
        }
        self.rx.next()?;
        Ok((typ, plain))
    }

    /// Seals `data` as application-data records at the end of `out`.
    pub(crate) fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        for chunk in data.chunks(MAX_PLAINTEXT) {
            self.seal_record(CONTENT_APPDATA, chunk, out)?;
        }
        Ok(())
    }

    /// Seals a `close_notify` alert at the end of `out`.
    pub(crate) fn close_notify(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        self.seal_record(CONTENT_ALERT, &[1, 0], out)
    }

    fn seal_record(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let explicit = self.cipher.explicit_nonce_len(self.tls13);
        let inner = if self.tls13 { 1 } else { 0 };
        let len = explicit + data.len() + inner + TAG_LEN;
        let outer = if self.tls13 { CONTENT_APPDATA } else { typ };
        let header = [outer, 3, 3, (len >> 8) as u8, len as u8];
        let nonce = self.tx.nonce();
        out.reserve(HEADER_LEN + len);
        out.extend_from_slice(&header);
        if explicit > 0 {
            out.extend_from_slice(&nonce[4..]);
        }
        let start = out.len();
        out.extend_from_slice(data);
        let tag = if self.tls13 {
            out.push(typ);
            self.tx.key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut out[start..],
            )
        } else {
            let mut aad = [0u8; 13];
            aad[..8].copy_from_slice(&self.tx.seq.to_be_bytes());
            aad[8] = typ;
            aad[9..11].copy_from_slice(&[3, 3]);
            aad[11..].copy_from_slice(&(data.len() as u16).to_be_bytes());
            self.tx.key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[start..],
            )
        };
        let tag = tag.map_err(|_| Error("sealing failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        self.tx.next()
    }
}

/// Every (TLS 1.3?, cipher) pair this record layer carries: what the
/// fuzz target and the tests go through.
const EVERY_PAIR: [(bool, Cipher); 6] = [
    (true, Cipher::Aes128Gcm),
    (true, Cipher::Aes256Gcm),
    (true, Cipher::Chacha20Poly1305),
    (false, Cipher::Aes128Gcm),
    (false, Cipher::Aes256Gcm),
    (false, Cipher::Chacha20Poly1305),
];

/// Drives the record layer with arbitrary bytes for the fuzz target
/// `tls_records` (reached through [`crate::fuzzing`]): the first byte picks
/// the version and AEAD; the rest is (a) opened as received records, which
/// must fail or yield at most what was given, never panic, and (b) sealed
/// by one end in pieces whose sizes the input chooses and opened by the
/// other fed in pieces, which must give back exactly what was sealed.
pub(crate) fn fuzz(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (tls13, cipher) = EVERY_PAIR[usize::from(pick) % EVERY_PAIR.len()];
    let key_len = if cipher == Cipher::Aes128Gcm { 16 } else { 32 };
    let end = |tx: u8, rx: u8| RecordsV4 {
        tls13,
        cipher,
        tx_key: vec![tx; key_len],
        tx_iv: vec![tx; 12],
        tx_seq: u64::from(pick),
        rx_key: vec![rx; key_len],
        rx_iv: vec![rx; 12],
        rx_seq: u64::from(pick),
        peer_closed: false,
    };
    let mut a = Records::import(&end(1, 2)).expect("valid keys");
    let mut b = Records::import(&end(2, 1)).expect("valid keys");
    // (a) Received garbage.
    let mut garbage = rest.to_vec();
    let mut plain = Vec::new();
    let (r, used) = b.open(&mut garbage, &mut plain);
    assert!(used <= rest.len());
    if r.is_ok() {
        assert!(plain.len() <= rest.len());
    }
    // (b) A round trip in pieces.
    let mut b = Records::import(&end(2, 1)).expect("valid keys");
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    for piece in rest.chunks(1 + usize::from(pick) * 97) {
        a.seal(piece, &mut wire).expect("sealing");
        sent.extend_from_slice(piece);
    }
    let mut inbuf = Vec::new();
    let mut got = Vec::new();
    for piece in wire.chunks(1 + usize::from(pick) * 13) {
        inbuf.extend_from_slice(piece);
        let (r, used) = b.open(&mut inbuf, &mut got);
        r.expect("a record sealed by the peer opens");
        inbuf.drain(..used);
    }
    assert!(inbuf.is_empty());
    assert_eq!(got, sent);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ends of one session: `a` seals what `b` opens and back.
    fn pair(tls13: bool, cipher: Cipher) -> (Records, Records) {
        let key_len = if cipher == Cipher::Aes128Gcm { 16 } else { 32 };
        let k1: Vec<u8> = (0..key_len).map(|i| i as u8).collect();
        let k2: Vec<u8> = (0..key_len).map(|i| 200 - i as u8).collect();
        let iv1: Vec<u8> = (0..12).map(|i| 7 * i as u8).collect();
        let iv2: Vec<u8> = (0..12).map(|i| 100 + i as u8).collect();
        let v = |tx_key: &Vec<u8>, tx_iv: &Vec<u8>, rx_key: &Vec<u8>, rx_iv: &Vec<u8>| RecordsV4 {
            tls13,
            cipher,
            tx_key: tx_key.clone(),
            tx_iv: tx_iv.clone(),
            tx_seq: 3,
            rx_key: rx_key.clone(),
            rx_iv: rx_iv.clone(),
            rx_seq: 3,
            peer_closed: false,
        };
        (
            Records::import(&v(&k1, &iv1, &k2, &iv2)).unwrap(),
            Records::import(&v(&k2, &iv2, &k1, &iv1)).unwrap(),
        )
    }

    const ALL: [(bool, Cipher); 6] = super::EVERY_PAIR;

    #[test]
    fn sealed_records_open_on_the_other_end_in_pieces() {
        for (tls13, cipher) in ALL {
            let (mut a, mut b) = pair(tls13, cipher);
            let data: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
            let mut wire = Vec::new();
            a.seal(&data, &mut wire).unwrap();
            a.seal(b"tail", &mut wire).unwrap();
            // Three records for 40,000 bytes, one for the tail.
            assert_eq!(a.tx.seq, 3 + 4);
            // Fed a few bytes at a time: incomplete records stay.
            let (mut inbuf, mut plain) = (Vec::new(), Vec::new());
            for piece in wire.chunks(777) {
                inbuf.extend_from_slice(piece);
                b.open_vec(&mut inbuf, &mut plain).unwrap();
            }
            assert!(inbuf.is_empty());
            assert_eq!(&plain[..40_000], &data[..], "{tls13} {cipher:?}");
            assert_eq!(&plain[40_000..], b"tail");
            // And the other way, ending with close_notify.
            let mut wire = Vec::new();
            b.seal(b"back", &mut wire).unwrap();
            b.close_notify(&mut wire).unwrap();
            let mut plain = Vec::new();
            let o = a.open_vec(&mut wire, &mut plain).unwrap();
            assert!(o.peer_closed);
            assert_eq!(plain, b"back");
        }
    }

    #[test]
    fn tampered_replayed_or_oversized_records_are_refused() {
        for (tls13, cipher) in ALL {
            let (mut a, mut b) = pair(tls13, cipher);
            let mut wire = Vec::new();
            a.seal(b"hello", &mut wire).unwrap();
            let mut bad = wire.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(b.clone_fresh().open_vec(&mut bad, &mut Vec::new()).is_err());
            // The same record twice: the second has the wrong sequence number.
            let mut twice = wire.clone();
            twice.extend_from_slice(&wire);
            let mut plain = Vec::new();
            assert!(b.open_vec(&mut twice, &mut plain).is_err());
            assert_eq!(plain, b"hello");
            // A header announcing more than a record may hold.
            let mut huge = vec![23, 3, 3, 0xff, 0xff];
            assert!(pair(tls13, cipher)
                .1
                .open_vec(&mut huge, &mut Vec::new())
                .is_err());
        }
    }

    #[test]
    fn a_key_update_or_a_fatal_alert_ends_the_session() {
        for (tls13, cipher) in ALL {
            let (mut a, mut b) = pair(tls13, cipher);
            let mut wire = Vec::new();
            a.seal_record(CONTENT_HANDSHAKE, &[24, 0, 0, 1, 0], &mut wire)
                .unwrap();
            let e = b.open_vec(&mut wire, &mut Vec::new()).unwrap_err();
            assert!(e.0.contains("handshake message"), "{e}");
            let (mut a, mut b) = pair(tls13, cipher);
            let mut wire = Vec::new();
            a.seal_record(CONTENT_ALERT, &[2, 40], &mut wire).unwrap();
            let e = b.open_vec(&mut wire, &mut Vec::new()).unwrap_err();
            assert!(e.0.contains("alert 40"), "{e}");
        }
    }

    impl Records {
        /// A copy at the same place (for trying input on).
        fn clone_fresh(&self) -> Records {
            Records::import(&self.export()).unwrap()
        }
    }
}
