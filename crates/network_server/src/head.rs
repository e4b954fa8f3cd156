//! Response heads through `protocol::ResponseHead`: the status line, `Date`
//! (cached per second), `Server`, the application's fields, framing and
//! `Connection`. Heads are written into their own buffer; bodies stay in the
//! application's buffers (separate iovecs).

use protocol::{BodyLength, ResponseHead, Version};

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
