//! Response heads through `protocol::ResponseHead`: the status line, `Date`
//! (cached per second), `Server`, the application's fields, framing and
//! `Connection`; and [`HeadCache`], which copies the last head when the next
//! one would be the same.

use protocol::{BodyLength, ResponseHead, Version};

/// The last head written by [`HeadCache::write`], copied instead of being
/// checked and formatted again when the next answer has the same status,
/// version, keep-alive, body length, `Date` second and fields (what an
/// endpoint under load usually sends).
#[derive(Debug, Default)]
pub(crate) struct HeadCache {
    key: Option<(u16, Version, bool, BodyLength)>,
    /// The `Date` value in `bytes` (checked apart from `key`: see
    /// [`same_date`]).
    date: [u8; 29],
    fields: Vec<(Box<str>, Box<str>)>,
    bytes: Vec<u8>,
}

/// `a == b` as two overlapping 16-byte loads each: inline, where the
/// array comparison is a `bcmp` call (it showed in the pipelined profile).
fn same_date(a: &[u8; 29], b: &[u8; 29]) -> bool {
    let lo = |d: &[u8; 29]| u128::from_ne_bytes(d[..16].try_into().expect("16 bytes"));
    let hi = |d: &[u8; 29]| u128::from_ne_bytes(d[13..].try_into().expect("16 bytes"));
    lo(a) == lo(b) && hi(a) == hi(b)
}

impl HeadCache {
    /// [`write_head`] with the server name given when the cache was made
    /// (the server's, fixed for its lifetime).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write(
        &mut self,
        out: &mut Vec<u8>,
        date: &[u8; 29],
        server: Option<&str>,
        status: u16,
        version: Version,
        keep_alive: bool,
        headers: &[(&str, &str)],
        body: BodyLength,
    ) -> Result<(), protocol::Error> {
        let key = (status, version, keep_alive, body);
        let same_fields = self.fields.len() == headers.len()
            && self
                .fields
                .iter()
                .zip(headers)
                .all(|((n, v), (hn, hv))| **n == **hn && **v == **hv);
        if self.key == Some(key) && same_fields && same_date(&self.date, date) {
            out.extend_from_slice(&self.bytes);
            return Ok(());
        }
        let start = out.len();
        write_head(
            out, date, server, status, version, keep_alive, headers, body,
        )?;
        self.key = Some(key);
        self.date = *date;
        self.bytes.clear();
        self.bytes.extend_from_slice(&out[start..]);
        if !same_fields {
            self.fields = headers.iter().map(|&(n, v)| (n.into(), v.into())).collect();
        }
        Ok(())
    }
}

/// Fields converted on the stack before falling back to a heap vector.
const STACK_FIELDS: usize = 24;

/// Appends a complete response head to `out`; appends nothing and returns
/// the error if a field is invalid (CR/LF/NUL in a value, a field the server
/// owns such as `Content-Length`, …).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_head(
    out: &mut Vec<u8>,
    date: &[u8; 29],
    server: Option<&str>,
    status: u16,
    version: Version,
    keep_alive: bool,
    headers: &[(&str, &str)],
    body: BodyLength,
) -> Result<(), protocol::Error> {
    let mut stack: [(&str, &[u8]); STACK_FIELDS] = [("", &[]); STACK_FIELDS];
    let mut heap = Vec::new();
    let n = headers.len() + usize::from(server.is_some());
    let fields: &mut [(&str, &[u8])] = if n <= STACK_FIELDS {
        &mut stack[..n]
    } else {
        heap.resize(n, ("", &[][..]));
        &mut heap
    };
    let mut i = 0;
    if let Some(s) = server {
        fields[0] = ("Server", s.as_bytes());
        i = 1;
    }
    for (name, value) in headers {
        fields[i] = (name, value.as_bytes());
        i += 1;
    }
    let mut head = ResponseHead::new(status);
    head.version = version;
    head.keep_alive = keep_alive;
    head.date = Some(date);
    head.body = body;
    head.headers = fields;
    head.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_has_server_date_fields_length_and_connection() {
        let mut out = Vec::new();
        let mut dates = protocol::DateCache::new();
        write_head(
            &mut out,
            dates.now(),
            Some("ringtail"),
            404,
            Version::Http11,
            false,
            &[("Content-Type", "text/plain")],
            BodyLength::Known(3),
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\nDate: "), "{s}");
        assert!(s.contains("\r\nServer: ringtail\r\nContent-Type: text/plain\r\n"));
        assert!(
            s.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"),
            "{s}"
        );
    }

    #[test]
    fn header_injection_is_refused() {
        let mut out = Vec::new();
        let r = write_head(
            &mut out,
            protocol::DateCache::new().now(),
            None,
            200,
            Version::Http11,
            true,
            &[("X-A", "1\r\nSet-Cookie: evil")],
            BodyLength::Known(0),
        );
        assert!(r.is_err());
        assert!(out.is_empty());
    }

    /// The cache gives exactly what `write_head` gives, for a repeat and for
    /// each thing that differs; an invalid field is refused even right after
    /// a valid head was cached.
    #[test]
    fn head_cache_matches_write_head() {
        use std::time::Duration;
        let d1 = *protocol::DateCache::new().at(std::time::UNIX_EPOCH);
        let d2 = *protocol::DateCache::new().now();
        // One second later: only the last digit of the time differs.
        let d3 = *protocol::DateCache::new().at(std::time::UNIX_EPOCH + Duration::from_secs(1));
        // A day later at the same time: the day name and number differ.
        let d4 =
            *protocol::DateCache::new().at(std::time::UNIX_EPOCH + Duration::from_secs(86_400));
        let ct = [("Content-Type", "text/plain")];
        type Case<'a> = (u16, bool, &'a [(&'a str, &'a str)], BodyLength, [u8; 29]);
        let cases: [Case<'_>; 11] = [
            (200, true, &ct, BodyLength::Known(13), d1),
            (200, true, &ct, BodyLength::Known(13), d3),
            (200, true, &ct, BodyLength::Known(13), d4),
            (200, true, &ct, BodyLength::Known(13), d1),
            (200, true, &ct, BodyLength::Known(13), d1),
            (200, true, &ct, BodyLength::Known(14), d1),
            (404, true, &ct, BodyLength::Known(14), d1),
            (404, false, &ct, BodyLength::Known(14), d1),
            (
                404,
                false,
                &[("Content-Type", "text/html")],
                BodyLength::Known(14),
                d1,
            ),
            (
                404,
                false,
                &[("Content-Type", "text/html")],
                BodyLength::Known(14),
                d2,
            ),
            (404, false, &[], BodyLength::Known(14), d2),
        ];
        let mut cache = HeadCache::default();
        for (status, keep_alive, fields, body, date) in cases {
            let (mut a, mut b) = (b"x".to_vec(), b"x".to_vec());
            let args = (status, Version::Http11, keep_alive, fields, body);
            write_head(
                &mut a,
                &date,
                Some("rt"),
                args.0,
                args.1,
                args.2,
                args.3,
                args.4,
            )
            .unwrap();
            cache
                .write(
                    &mut b,
                    &date,
                    Some("rt"),
                    args.0,
                    args.1,
                    args.2,
                    args.3,
                    args.4,
                )
                .unwrap();
            assert_eq!(a, b, "{status} {keep_alive} {fields:?} {body:?}");
        }
        let mut out = Vec::new();
        let bad = [("Content-Type", "text/html\r\nX: y")];
        let r = cache.write(
            &mut out,
            &d2,
            Some("rt"),
            404,
            Version::Http11,
            false,
            &bad,
            BodyLength::Known(14),
        );
        assert!(r.is_err() && out.is_empty());
    }

    #[test]
    fn many_fields_spill_to_the_heap() {
        let names: Vec<String> = (0..40).map(|i| format!("X-{i}")).collect();
        let fields: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        let mut out = Vec::new();
        write_head(
            &mut out,
            protocol::DateCache::new().now(),
            None,
            200,
            Version::Http11,
            true,
            &fields,
            BodyLength::Chunked,
        )
        .unwrap();
        assert!(String::from_utf8(out).unwrap().contains("X-39: v\r\n"));
    }
}
