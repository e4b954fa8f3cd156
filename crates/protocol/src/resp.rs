//! RESP2, the Redis protocol — the part the cluster bridge needs: commands
//! written as arrays of bulk strings, and an incremental parser for
//! replies and pub/sub pushes.
//!
//! Written here rather than taken from the `redis` crate because the bridge
//! needs exactly this: a pub/sub connection that waits on its socket *and*
//! on a wake-up descriptor (to subscribe and unsubscribe while it waits),
//! keeps a partly received message across wake-ups, and bounds every size
//! a misbehaving server could send. The parser is a pure function over
//! bytes, unit-tested and fuzzed (`fuzz/fuzz_targets/resp.rs`); the bridge
//! itself is `ringtail`'s (`crates/ringtail/src/cluster.rs`).

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`
    Simple(String),
    /// `-ERR …`
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nfoo` (`None`: `$-1`)
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n…` (`None`: `*-1`)
    Array(Option<Vec<Value>>),
}

/// What the parser accepts at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of one bulk string.
    pub max_bulk: usize,
    /// Elements of one array.
    pub max_array: usize,
    /// Arrays nested in arrays.
    pub max_depth: usize,
    /// Bytes of a simple string, error or integer line.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk: 64 << 20,
            max_array: 1024,
            max_depth: 4,
            max_line: 64 << 10,
        }
    }
}

/// Input the parser refuses (the connection is then closed): what was
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RESP: {}", self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(m.into()))
}

/// Parses one value from the start of `buf`: `Ok(Some((value, used)))`,
/// `Ok(None)` if `buf` holds only the start of one (read more), or an
/// error for input that is not RESP or crosses `limits`.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, ProtocolError> {
    parse_at(buf, 0, limits, 0)
}

/// The line starting at `at` (without `\r\n`) and the index after it.
fn line<'a>(
    buf: &'a [u8],
    at: usize,
    limits: &Limits,
) -> Result<Option<(&'a [u8], usize)>, ProtocolError> {
    let rest = &buf[at..];
    match memchr_crlf(rest) {
        Some(i) if i > limits.max_line => err("line too long"),
        Some(i) => Ok(Some((&rest[..i], at + i + 2))),
        None if rest.len() > limits.max_line + 1 => err("line too long"),
        None => Ok(None),
    }
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, b"\r\n")
}

fn int(l: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(l)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map_or_else(
            || err(format!("bad integer {:?}", String::from_utf8_lossy(l))),
            Ok,
        )
}

fn parse_at(
    buf: &[u8],
    at: usize,
    limits: &Limits,
    depth: usize,
) -> Result<Option<(Value, usize)>, ProtocolError> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((l, next)) = line(buf, at + 1, limits)? else {
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(l).into_owned();
    match kind {
        b'+' => Ok(Some((Value::Simple(text()), next))),
        b'-' => Ok(Some((Value::Error(text()), next))),
        b':' => Ok(Some((Value::Int(int(l)?), next))),
        b'$' => {
            let n = int(l)?;
            if n == -1 {
                return Ok(Some((Value::Bulk(None), next)));
            }
            let n = usize::try_from(n).map_err(|_| ProtocolError(format!("bulk length {n}")))?;
            if n > limits.max_bulk {
                return err(format!("bulk of {n} bytes (limit {})", limits.max_bulk));
            }
            let end = next + n;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return err("bulk not followed by CRLF");
            }
            Ok(Some((Value::Bulk(Some(buf[next..end].to_vec())), end + 2)))
        }
        b'*' => {
            let n = int(l)?;
            if n == -1 {
                return Ok(Some((Value::Array(None), next)));
            }
            let n = usize::try_from(n).map_err(|_| ProtocolError(format!("array length {n}")))?;
            if n > limits.max_array {
                return err(format!("array of {n} (limit {})", limits.max_array));
            }
            if depth >= limits.max_depth {
                return err("arrays nested too deep");
            }
            let mut items = Vec::with_capacity(n.min(16));
            let mut at = next;
            for _ in 0..n {
                match parse_at(buf, at, limits, depth + 1)? {
                    Some((v, used)) => {
                        items.push(v);
                        at = used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(items)), at)))
        }
        other => err(format!("unknown type byte {other:#04x}")),
    }
}

/// Appends the command `args` (an array of bulk strings) to `out`.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    use std::io::Write;
    let _ = write!(out, "*{}\r\n", args.len());
    for a in args {
        let _ = write!(out, "${}\r\n", a.len());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A pub/sub push, as far as a subscriber cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// `message CHANNEL PAYLOAD`
    Message {
        /// The channel it was published on.
        channel: Vec<u8>,
        /// What was published.
        payload: Vec<u8>,
    },
    /// `subscribe`/`unsubscribe CHANNEL COUNT`.
    Subscription {
        /// `subscribe` (or `unsubscribe`).
        subscribed: bool,
        /// The channel.
        channel: Vec<u8>,
        /// The server's count of this connection's subscriptions after it.
        count: i64,
    },
    /// `pong` (a `PING` on a subscribed connection).
    Pong,
}

/// What a value read on a subscribed connection is.
pub fn push(v: Value) -> Result<Push, ProtocolError> {
    let Value::Array(Some(items)) = v else {
        return match v {
            Value::Error(e) => err(format!("server error: {e}")),
            other => err(format!("unexpected {other:?} on a subscribed connection")),
        };
    };
    let bulk = |v: &Value| match v {
        Value::Bulk(Some(b)) => Some(b.clone()),
        _ => None,
    };
    match items.first().and_then(bulk).as_deref() {
        Some(b"message") if items.len() == 3 => match (bulk(&items[1]), bulk(&items[2])) {
            (Some(channel), Some(payload)) => Ok(Push::Message { channel, payload }),
            _ => err("malformed message push"),
        },
        Some(k @ (b"subscribe" | b"unsubscribe")) if items.len() == 3 => {
            let subscribed = k == b"subscribe";
            match (&items[1], &items[2]) {
                (Value::Bulk(c), Value::Int(count)) => Ok(Push::Subscription {
                    subscribed,
                    channel: c.clone().unwrap_or_default(),
                    count: *count,
                }),
                _ => err("malformed subscription push"),
            }
        }
        Some(b"pong") => Ok(Push::Pong),
        _ => err(format!("unexpected push {items:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(b: &[u8]) -> Value {
        let (v, used) = parse(b, &Limits::default()).unwrap().unwrap();
        assert_eq!(used, b.len());
        v
    }

    #[test]
    fn every_type_parses_and_every_prefix_asks_for_more() {
        let msg = b"*3\r\n$7\r\nmessage\r\n$4\r\nchat\r\n$5\r\nhe\r\no\r\n";
        assert_eq!(
            push(one(msg)).unwrap(),
            Push::Message {
                channel: b"chat".to_vec(),
                payload: b"he\r\no".to_vec()
            }
        );
        for n in 0..msg.len() {
            assert_eq!(parse(&msg[..n], &Limits::default()), Ok(None), "prefix {n}");
        }
        assert_eq!(one(b"+OK\r\n"), Value::Simple("OK".into()));
        assert_eq!(one(b"-ERR no\r\n"), Value::Error("ERR no".into()));
        assert_eq!(one(b":-12\r\n"), Value::Int(-12));
        assert_eq!(one(b"$-1\r\n"), Value::Bulk(None));
        assert_eq!(one(b"*-1\r\n"), Value::Array(None));
        assert_eq!(one(b"$0\r\n\r\n"), Value::Bulk(Some(vec![])));
        let sub = one(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(
            push(sub).unwrap(),
            Push::Subscription {
                subscribed: true,
                channel: b"a".to_vec(),
                count: 1
            }
        );
        // Two values back to back: the first, and where the second starts.
        let (_, used) = parse(b":1\r\n:2\r\n", &Limits::default()).unwrap().unwrap();
        assert_eq!(used, 4);
    }

    #[test]
    fn what_is_not_resp_or_too_big_is_refused() {
        let l = Limits {
            max_bulk: 10,
            max_array: 3,
            max_depth: 2,
            max_line: 20,
        };
        for bad in [
            &b"?x\r\n"[..],
            b":12a\r\n",
            b"$11\r\n",
            b"$-2\r\n",
            b"*4\r\n",
            b"*1\r\n*1\r\n*1\r\n:1\r\n",
            b"$2\r\nabcd\r\n",
            b"+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(
                parse(bad, &l).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(push(Value::Int(1)).is_err());
        assert!(push(Value::Error("NOAUTH".into())).is_err());
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"PUBLISH", b"ringtail:chat", b"a\r\nb"]);
        assert_eq!(
            out,
            b"*3\r\n$7\r\nPUBLISH\r\n$13\r\nringtail:chat\r\n$4\r\na\r\nb\r\n".to_vec()
        );
        assert_eq!(
            one(&out),
            Value::Array(Some(vec![
                Value::Bulk(Some(b"PUBLISH".to_vec())),
                Value::Bulk(Some(b"ringtail:chat".to_vec())),
                Value::Bulk(Some(b"a\r\nb".to_vec())),
            ]))
        );
    }
}
