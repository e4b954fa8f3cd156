//! `Sec-WebSocket-Extensions` (RFC 6455 §9.1) and the negotiation of
//! permessage-deflate (RFC 7692 §5, §7.1): [`negotiate_deflate`] reads the
//! client's offers, declines the ones it must (unknown or duplicated
//! parameters, bad values), accepts the first one left given the server's
//! [`DeflateConfig`], and returns the agreed [`PerMessageDeflate`], which
//! also writes the response header value.
//!
//! The header grammar, parsed without allocating:
//!
//! ```text
//! Sec-WebSocket-Extensions = 1#extension
//! extension = extension-token *( OWS ";" OWS extension-param )
//! extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
//! ```

use crate::fields::{is_ows, is_tchar};

use super::{DeflateConfig, Error};

/// The parameters of an accepted permessage-deflate offer — what the
/// server writes in its `Sec-WebSocket-Extensions` response and how both
/// sides compress (RFC 7692 §7.1).
///
/// "Server" and "client" are the roles of RFC 7692: the `server_*`
/// parameters govern what the server compresses (and the client
/// decompresses), the `client_*` ones what the client compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerMessageDeflate {
    /// The server resets its compressor after every message, so messages
    /// do not refer to earlier ones. It is what lets one compressed frame be
    /// sent to many clients (broadcast) and one compressor be shared.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message; the server
    /// resets its decompressor too, so one decompressor can be shared.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window is at most 2^n bytes (8..=15); `None`
    /// means 15 (32 KiB). See [`compress_window_bits`](Self::compress_window_bits)
    /// for 8.
    pub server_max_window_bits: Option<u8>,
    /// The client's LZ77 window is at most 2^n bytes (8..=15); `None`
    /// means 15. Sent only when the client's offer had
    /// `client_max_window_bits`.
    pub client_max_window_bits: Option<u8>,
}

impl PerMessageDeflate {
    /// The window the server compresses with: `server_max_window_bits`,
    /// except that 8 becomes 9.
    ///
    /// zlib (and zlib-rs, which follows it) cannot make raw DEFLATE with a
    /// 256-byte window; it refuses `windowBits` 8 for raw streams. A
    /// compressor with a 512-byte window never emits a distance above
    /// 512 − 262 = 250 (`MAX_DIST = w_size − MIN_LOOKAHEAD`), so its
    /// output decodes with a 256-byte window: agreeing to 8 and compressing
    /// with 9 is safe. This is what zlib itself does for zlib streams.
    pub fn compress_window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(15).clamp(9, 15)
    }

    /// The window the server decompresses with: `client_max_window_bits`
    /// (the client promised not to exceed it), 9 for 8 (a larger window
    /// always decodes a smaller one's output; flate2 accepts 9..=15).
    pub fn decompress_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(15).clamp(9, 15)
    }

    /// Appends the `Sec-WebSocket-Extensions` response value, e.g.
    /// `permessage-deflate; server_no_context_takeover; client_max_window_bits=12`.
    pub fn write_response_value(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"permessage-deflate");
        if self.server_no_context_takeover {
            out.extend_from_slice(b"; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.extend_from_slice(b"; client_no_context_takeover");
        }
        for (name, bits) in [
            (
                &b"; server_max_window_bits="[..],
                self.server_max_window_bits,
            ),
            (b"; client_max_window_bits=", self.client_max_window_bits),
        ] {
            if let Some(bits) = bits {
                out.extend_from_slice(name);
                if bits >= 10 {
                    out.push(b'1');
                }
                out.push(b'0' + bits % 10);
            }
        }
    }
}

/// One item of a `Sec-WebSocket-Extensions` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item<'a> {
    /// The start of an extension element: its token.
    Extension(&'a [u8]),
    /// A parameter of the current element: name, and value (token, or the
    /// inside of a quoted string with its escapes) if any.
    Param(&'a [u8], Option<Value<'a>>),
}

/// A parameter value as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Value<'a> {
    raw: &'a [u8],
    quoted: bool,
}

impl Value<'_> {
    /// The value's bytes, quoted-pair escapes removed.
    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let mut escaped = false;
        self.raw.iter().copied().filter(move |&b| {
            if self.quoted && !escaped && b == b'\\' {
                escaped = true;
                false
            } else {
                escaped = false;
                true
            }
        })
    }

    /// A window-bits value: a decimal 8..=15 without leading zeros
    /// (RFC 7692 §7.1.2.1), as a token or quoted.
    fn window_bits(&self) -> Option<u8> {
        let mut n: u8 = 0;
        for (digits, b) in self.bytes().enumerate() {
            if !b.is_ascii_digit() || digits == 2 || (digits == 1 && n == 0) {
                return None;
            }
            n = n * 10 + (b - b'0');
        }
        (8..=15).contains(&n).then_some(n)
    }
}

/// Reads a token at `s[*i..]`; empty if none.
fn token<'a>(s: &'a [u8], i: &mut usize) -> &'a [u8] {
    let start = *i;
    while *i < s.len() && is_tchar(s[*i]) {
        *i += 1;
    }
    &s[start..*i]
}

fn skip_ows(s: &[u8], i: &mut usize) {
    while *i < s.len() && is_ows(s[*i]) {
        *i += 1;
    }
}

/// Reads a quoted string at `s[*i..]` (which starts with `"`); returns its
/// inside, escapes kept.
fn quoted<'a>(s: &'a [u8], i: &mut usize) -> Result<&'a [u8], Error> {
    let start = *i + 1;
    let mut j = start;
    while j < s.len() {
        match s[j] {
            b'"' => {
                *i = j + 1;
                return Ok(&s[start..j]);
            }
            b'\\' if j + 1 < s.len() && is_quoted_byte(s[j + 1]) => j += 2,
            b if is_quoted_byte(b) && b != b'\\' => j += 1,
            _ => break,
        }
    }
    Err(Error::InvalidExtensionsHeader)
}

/// `qdtext` and the escapable bytes of a `quoted-pair` (RFC 9110 §5.6.4):
/// HTAB, SP, VCHAR and obs-text, less `"` (which ends the string).
const fn is_quoted_byte(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | b'!' | b'#'..=b'~' | 0x80..=0xFF)
}

/// Parses one `Sec-WebSocket-Extensions` field value, calling `f` for
/// every item in order. Empty list members are skipped (RFC 9110 §5.6.1).
fn parse_extensions<'a>(s: &'a [u8], mut f: impl FnMut(Item<'a>)) -> Result<(), Error> {
    let bad = Err(Error::InvalidExtensionsHeader);
    let mut i = 0;
    loop {
        skip_ows(s, &mut i);
        if i == s.len() {
            return Ok(());
        }
        if s[i] == b',' {
            i += 1;
            continue;
        }
        let name = token(s, &mut i);
        if name.is_empty() {
            return bad;
        }
        f(Item::Extension(name));
        loop {
            skip_ows(s, &mut i);
            match s.get(i) {
                None => return Ok(()),
                Some(b',') => {
                    i += 1;
                    break;
                }
                Some(b';') => i += 1,
                Some(_) => return bad,
            }
            skip_ows(s, &mut i);
            let param = token(s, &mut i);
            if param.is_empty() {
                return bad;
            }
            skip_ows(s, &mut i);
            let value = if s.get(i) == Some(&b'=') {
                i += 1;
                skip_ows(s, &mut i);
                let value = if s.get(i) == Some(&b'"') {
                    let raw = quoted(s, &mut i)?;
                    Value { raw, quoted: true }
                } else {
                    Value {
                        raw: token(s, &mut i),
                        quoted: false,
                    }
                };
                // RFC 6455 §9.1: a quoted value must still be a token
                // once unescaped.
                if value.raw.is_empty() || !value.bytes().all(is_tchar) {
                    return bad;
                }
                Some(value)
            } else {
                None
            };
            f(Item::Param(param, value));
        }
    }
}

/// A permessage-deflate offer being read.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value.
    client_max_window_bits: Option<Option<u8>>,
    /// Parameters seen, one bit each (duplicates decline the offer).
    seen: u8,
    /// Still acceptable.
    ok: bool,
}

impl Offer {
    fn param(&mut self, name: &[u8], value: Option<Value<'_>>) {
        let (bit, ok) = if name.eq_ignore_ascii_case(b"server_no_context_takeover") {
            self.server_no_context_takeover = true;
            (1, value.is_none())
        } else if name.eq_ignore_ascii_case(b"client_no_context_takeover") {
            self.client_no_context_takeover = true;
            (2, value.is_none())
        } else if name.eq_ignore_ascii_case(b"server_max_window_bits") {
            self.server_max_window_bits = value.and_then(|v| v.window_bits());
            (4, self.server_max_window_bits.is_some())
        } else if name.eq_ignore_ascii_case(b"client_max_window_bits") {
            let bits = value.map(|v| v.window_bits());
            self.client_max_window_bits = Some(bits.flatten());
            (8, bits != Some(None))
        } else {
            // RFC 7692 §5.1: a parameter not defined for an offer.
            (0, false)
        };
        if !ok || self.seen & bit != 0 {
            self.ok = false;
        }
        self.seen |= bit;
    }

    /// The response to this offer under `config`, if it can be accepted.
    fn accept(&self, config: &DeflateConfig) -> Option<PerMessageDeflate> {
        if !self.ok {
            return None;
        }
        let server_bits = config.server_max_window_bits.clamp(8, 15);
        let client_bits = config.client_max_window_bits.clamp(8, 15);
        Some(PerMessageDeflate {
            server_no_context_takeover: self.server_no_context_takeover
                || config.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover
                || config.client_no_context_takeover,
            // RFC 7692 §7.1.2.1: at most the offered value; the server may
            // also limit itself unasked.
            server_max_window_bits: match self.server_max_window_bits {
                Some(offered) => Some(offered.min(server_bits)),
                None => (server_bits < 15).then_some(server_bits),
            },
            // RFC 7692 §7.1.2.2: only if offered, at most the offered value.
            client_max_window_bits: self.client_max_window_bits.and_then(|offered| {
                let bits = offered.unwrap_or(15).min(client_bits);
                (bits < 15).then_some(bits)
            }),
        })
    }
}

/// Negotiates permessage-deflate from the values of every
/// `Sec-WebSocket-Extensions` field of the request, in order.
///
/// Each `permessage-deflate` element is an offer (RFC 7692 §5). An offer
/// with an unknown parameter, a repeated parameter, a value on a
/// `*_no_context_takeover`, or a window-bits value that is not 8..=15
/// (without leading zeros; token or quoted) is declined; the first offer
/// left is accepted, and the response is built from it and `config`
/// (see `docs/websocket.md`). `Ok(None)`: no acceptable offer, the
/// connection goes on uncompressed. Other extensions are ignored. A value
/// that does not follow the header's grammar is
/// [`Error::InvalidExtensionsHeader`].
///
/// ```
/// use protocol::ws::{negotiate_deflate, DeflateConfig};
///
/// let offers: [&[u8]; 1] = [b"permessage-deflate; server_max_window_bits=10, permessage-deflate"];
/// let agreed = negotiate_deflate(offers, &DeflateConfig::default())?.unwrap();
/// assert_eq!(agreed.server_max_window_bits, Some(10));
/// let mut value = Vec::new();
/// agreed.write_response_value(&mut value);
/// assert_eq!(
///     value,
///     b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
///       server_max_window_bits=10"
/// );
/// # Ok::<(), protocol::ws::Error>(())
/// ```
pub fn negotiate_deflate<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Result<Option<PerMessageDeflate>, Error> {
    let mut agreed = None;
    let mut offer: Option<Offer> = None;
    let close = |offer: &mut Option<Offer>, agreed: &mut Option<PerMessageDeflate>| {
        if let Some(o) = offer.take() {
            if agreed.is_none() {
                *agreed = o.accept(config);
            }
        }
    };
    for value in values {
        parse_extensions(value, |item| match item {
            Item::Extension(name) => {
                close(&mut offer, &mut agreed);
                if name.eq_ignore_ascii_case(b"permessage-deflate") {
                    offer = Some(Offer {
                        ok: true,
                        ..Offer::default()
                    });
                }
            }
            Item::Param(name, value) => {
                if let Some(o) = offer.as_mut() {
                    o.param(name, value);
                }
            }
        })?;
        // An element never continues into the next field line.
        close(&mut offer, &mut agreed);
    }
    Ok(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &[u8]) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        parse_extensions(s, |item| {
            out.push(match item {
                Item::Extension(n) => String::from_utf8_lossy(n).into_owned(),
                Item::Param(n, None) => format!(";{}", String::from_utf8_lossy(n)),
                Item::Param(n, Some(v)) => format!(
                    ";{}={}",
                    String::from_utf8_lossy(n),
                    String::from_utf8(v.bytes().collect()).unwrap()
                ),
            })
        })?;
        Ok(out)
    }

    #[test]
    fn grammar() {
        assert_eq!(items(b"").unwrap(), Vec::<String>::new());
        assert_eq!(items(b" , ,").unwrap(), Vec::<String>::new());
        assert_eq!(
            items(b"a; b ; c = 1 ,d;e=\"x\\yz\",, f").unwrap(),
            ["a", ";b", ";c=1", "d", ";e=xyz", "f"]
        );
        for bad in [
            &b"a;"[..],
            b"a; =1",
            b"a; b=",
            b"a; b=\"\"",
            b"a; b=\"1 2\"",
            b"a; b=\"12",
            b"a; b=\"1\\",
            b"a b",
            b";a",
            b"a;b=1=2",
            b"a;b=c d",
            b"a/1",
            b"a\x01",
        ] {
            assert_eq!(items(bad), Err(Error::InvalidExtensionsHeader), "{bad:?}");
        }
    }

    #[test]
    fn window_bits_values() {
        let v = |raw: &'static [u8], quoted| Value { raw, quoted }.window_bits();
        assert_eq!(v(b"8", false), Some(8));
        assert_eq!(v(b"15", false), Some(15));
        assert_eq!(v(b"1\\0", true), Some(10));
        for bad in [&b"7"[..], b"16", b"08", b"010", b"", b"9a", b"100"] {
            assert_eq!(v(bad, false), None, "{bad:?}");
        }
    }

    #[test]
    fn response_values() {
        let mut out = Vec::new();
        PerMessageDeflate {
            server_no_context_takeover: false,
            client_no_context_takeover: true,
            server_max_window_bits: Some(8),
            client_max_window_bits: Some(15),
        }
        .write_response_value(&mut out);
        assert_eq!(
            out,
            b"permessage-deflate; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=15"
        );
    }
}
