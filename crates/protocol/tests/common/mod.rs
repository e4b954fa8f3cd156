//! A miniature connection for the integration tests: it accumulates the
//! pieces it is fed the way network_server does, parses heads, decodes
//! bodies, and records what came out, so that feeding a stream whole and
//! feeding it split can be compared.

#![allow(dead_code)]

use protocol::{
    header_storage, parse_request, BodyDecoder, BodyFraming, Error, Limits, Parsed, RequestHead,
    TargetForm, Version,
};

/// An owned copy of a [`RequestHead`] plus its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Vec<(String, Vec<u8>)>,
    pub target_form: TargetForm,
    pub path: String,
    pub query: Option<String>,
    pub host: Option<Vec<u8>>,
    pub authority: Option<Vec<u8>>,
    pub keep_alive: bool,
    pub framing: BodyFraming,
    pub expect_continue: bool,
    pub upgrade: bool,
    /// Bytes the head took.
    pub head_len: usize,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl Req {
    pub fn from_head(h: &RequestHead<'_, '_>, head_len: usize) -> Self {
        Req {
            method: h.method.to_owned(),
            target: h.target.to_owned(),
            version: h.version,
            headers: h
                .headers
                .iter()
                .map(|x| (x.name.to_owned(), x.value.to_vec()))
                .collect(),
            target_form: h.target_form,
            path: h.path.to_owned(),
            query: h.query.map(str::to_owned),
            host: h.host.map(<[u8]>::to_vec),
            authority: h.authority.map(<[u8]>::to_vec),
            keep_alive: h.keep_alive,
            framing: h.body,
            expect_continue: h.expect_continue,
            upgrade: h.upgrade,
            head_len,
            body: Vec::new(),
        }
    }
}

/// Everything a connection saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Requests whose head completed, with as much body as arrived.
    pub requests: Vec<Req>,
    /// The first error, which ends the connection.
    pub error: Option<Error>,
    /// Whether the stream ended in the middle of a head or a body.
    pub incomplete: bool,
    /// Bytes received but not consumed when the stream ended.
    pub leftover: Vec<u8>,
}

/// Feeds `pieces` in order to one connection.
pub fn serve<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, limits: &Limits) -> Outcome {
    let mut requests: Vec<Req> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut body: Option<BodyDecoder> = None;
    let fail = |requests, e, buf: Vec<u8>| Outcome {
        requests,
        error: Some(e),
        incomplete: true,
        leftover: buf,
    };
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match body.as_mut() {
                None => {
                    if buf.is_empty() {
                        break;
                    }
                    let mut headers = header_storage::<256>();
                    match parse_request(&buf, &mut headers, limits) {
                        Ok(Parsed::Partial) => break,
                        Ok(Parsed::Complete(head, n)) => {
                            requests.push(Req::from_head(&head, n));
                            body = Some(BodyDecoder::new(head.body, limits));
                            buf.drain(..n);
                        }
                        Err(e) => return fail(requests, e, buf),
                    }
                }
                Some(dec) => {
                    let step = match dec.decode(&buf) {
                        Ok(s) => s,
                        Err(e) => return fail(requests, e, buf),
                    };
                    let req = requests.last_mut().expect("a head came first");
                    req.body.extend_from_slice(step.data(&buf));
                    assert!(step.data.end <= step.consumed);
                    buf.drain(..step.consumed);
                    if step.done {
                        body = None;
                    } else if buf.is_empty() {
                        break;
                    } else {
                        assert!(!step.data.is_empty(), "no progress on non-empty input");
                    }
                }
            }
        }
    }
    let incomplete = body.is_some() || !buf.is_empty();
    Outcome {
        requests,
        error: None,
        incomplete,
        leftover: buf,
    }
}

/// The whole stream in one piece.
pub fn serve_whole(input: &[u8], limits: &Limits) -> Outcome {
    serve([input], limits)
}

/// One byte at a time.
pub fn serve_bytewise(input: &[u8], limits: &Limits) -> Outcome {
    serve(input.chunks(1), limits)
}

/// Split in two at `at`.
pub fn serve_split(input: &[u8], at: usize, limits: &Limits) -> Outcome {
    serve([&input[..at], &input[at..]], limits)
}

/// A tiny deterministic PRNG (xorshift64*), so the randomised tests need no
/// dependency and always run the same cases.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Cuts `input` into pieces at random points.
    pub fn pieces<'a>(&mut self, input: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = 1 + self.below(rest.len().min(16));
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}
