//! Table of malformed, ambiguous and oversized requests: bytes in, expected
//! error and status out. Each one is also fed byte by byte and split at
//! every point, and must fail the same way.

mod common;

use common::{serve, serve_bytewise, serve_whole};
use protocol::{Error, Limits};

/// `POST / HTTP/1.1` with a Host, the given extra fields, an empty line and
/// `body`.
fn post(fields: &str, body: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: example.com\r\n{fields}\r\n{body}").into_bytes()
}

/// A chunked POST whose body is `body`.
fn chunked(body: &str) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

fn get(line_and_fields: &str) -> Vec<u8> {
    line_and_fields.as_bytes().to_vec()
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    error: Error,
    status: u16,
}

fn case(name: &'static str, input: Vec<u8>, error: Error, status: u16) -> Case {
    Case {
        name,
        input,
        error,
        status,
    }
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Error::*;
    let many_fields: String = (0..101).map(|i| format!("X-F{i}: v\r\n")).collect();
    vec![
        // ----- request smuggling shapes -------------------------------------
        case("CL then TE", post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), ContentLengthWithTransferEncoding, 400),
        case("TE then CL", post("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), ContentLengthWithTransferEncoding, 400),
        case("TE and CL lowercase", post("transfer-encoding: chunked\r\ncontent-length: 0\r\n", ""), ContentLengthWithTransferEncoding, 400),
        case("two differing CL lines", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello"), ConflictingContentLength, 400),
        case("differing CL list", post("Content-Length: 5, 6\r\n", "hello"), ConflictingContentLength, 400),
        case("CL with plus", post("Content-Length: +5\r\n", "hello"), InvalidContentLength, 400),
        case("CL with minus", post("Content-Length: -5\r\n", "hello"), InvalidContentLength, 400),
        case("CL in hex", post("Content-Length: 0x5\r\n", "hello"), InvalidContentLength, 400),
        case("CL with inner space", post("Content-Length: 1 0\r\n", "hello"), InvalidContentLength, 400),
        case("CL empty", post("Content-Length:\r\n", ""), InvalidContentLength, 400),
        case("CL empty list member", post("Content-Length: 5,\r\n", "hello"), InvalidContentLength, 400),
        case("CL overflowing u64", post("Content-Length: 99999999999999999999999\r\n", ""), InvalidContentLength, 400),
        case("CL with decimals", post("Content-Length: 5.0\r\n", "hello"), InvalidContentLength, 400),
        case("TE chunked twice in one field", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), InvalidTransferEncoding, 400),
        case("TE chunked twice in two fields", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), InvalidTransferEncoding, 400),
        case("TE xchunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), InvalidTransferEncoding, 400),
        case("TE chunked not final", post("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"), InvalidTransferEncoding, 400),
        case("TE gzip only", post("Transfer-Encoding: gzip\r\n", ""), InvalidTransferEncoding, 400),
        case("TE identity", post("Transfer-Encoding: identity\r\n", ""), InvalidTransferEncoding, 400),
        case("TE empty", post("Transfer-Encoding:\r\n", ""), InvalidTransferEncoding, 400),
        case("TE chunked with parameter", post("Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"), InvalidTransferEncoding, 400),
        case("TE quoted", post("Transfer-Encoding: \"chunked\"\r\n", "0\r\n\r\n"), InvalidTransferEncoding, 400),
        case("TE gzip then chunked", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), UnsupportedTransferCoding, 501),
        case("TE with obs-fold", post("Transfer-Encoding: gzip,\r\n chunked\r\n", "0\r\n\r\n"), ObsoleteLineFolding, 400),
        case("TE space before colon", post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), WhitespaceBeforeColon, 400),
        case("CL space before colon", post("Content-Length : 5\r\n", "hello"), WhitespaceBeforeColon, 400),
        case("CL tab before colon", post("Content-Length\t: 5\r\n", "hello"), WhitespaceBeforeColon, 400),
        case("TE on HTTP/1.0", get("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), TransferEncodingInHttp10, 400),
        case("TE and CL on HTTP/1.0", get("POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), TransferEncodingInHttp10, 400),
        // ----- sizes ----------------------------------------------------------
        case("target longer than the head limit", format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(20_000)).into_bytes(), HeadTooLarge, 431),
        case("field longer than the head limit", post(&format!("X-Big: {}\r\n", "b".repeat(17_000)), ""), HeadTooLarge, 431),
        case("101 fields", post(&many_fields, ""), TooManyHeaders, 431),
        case("absurd Content-Length", post("Content-Length: 99999999999999\r\n", ""), BodyTooLarge, 413),
        case("Content-Length just over 1 GiB", post("Content-Length: 1073741825\r\n", ""), BodyTooLarge, 413),
        // ----- chunked bodies ---------------------------------------------------
        case("chunk size not hex", chunked("zz\r\nabc\r\n0\r\n\r\n"), InvalidChunkSize, 400),
        case("chunk size negative", chunked("-1\r\na\r\n0\r\n\r\n"), InvalidChunkSize, 400),
        case("chunk size empty", chunked("\r\nabc\r\n0\r\n\r\n"), InvalidChunkSize, 400),
        case("chunk size 0x prefix", chunked("0x3\r\nabc\r\n0\r\n\r\n"), InvalidChunkSize, 400),
        case("chunk size with trailing space", chunked("3 \r\nabc\r\n0\r\n\r\n"), InvalidChunkSize, 400),
        case("chunk size with leading space", chunked(" 3\r\nabc\r\n0\r\n\r\n"), InvalidChunkSize, 400),
        case("chunk size 17 digits", chunked("10000000000000000\r\n"), ChunkSizeOverflow, 400),
        case("chunk size above 2^63-1", chunked("8000000000000000\r\n"), ChunkSizeOverflow, 400),
        case("chunk size above the body limit", chunked("7fffffffffffffff\r\n"), BodyTooLarge, 413),
        case("chunks summing above the body limit", chunked("1\r\na\r\n40000000\r\n"), BodyTooLarge, 413),
        case("chunk data too long", chunked("3\r\nabcd\r\n0\r\n\r\n"), InvalidChunkDelimiter, 400),
        case("chunk data without CRLF", chunked("3\r\nabc0\r\n\r\n"), InvalidChunkDelimiter, 400),
        case("chunk size line bare LF", chunked("3\nabc\r\n0\r\n\r\n"), BareLineFeed, 400),
        case("chunk data bare LF", chunked("3\r\nabc\n0\r\n\r\n"), BareLineFeed, 400),
        case("chunk size line bare CR", chunked("3\rabc\r\n0\r\n\r\n"), BareCarriageReturn, 400),
        case("chunk extension without name", chunked("3;=x\r\nabc\r\n0\r\n\r\n"), InvalidChunkExtension, 400),
        case("chunk extension with bare LF in quotes", chunked("3;a=\"x\ny\"\r\nabc\r\n0\r\n\r\n"), InvalidChunkExtension, 400),
        case("chunk extension unterminated", chunked("3;a=\"x\r\nabc\r\n0\r\n\r\n"), InvalidChunkExtension, 400),
        case("chunk extension too long", chunked(&format!("3;a={}\r\nabc\r\n0\r\n\r\n", "x".repeat(2000))), ChunkExtensionTooLong, 400),
        case("trailer without colon", chunked("0\r\nX-Bad trailer\r\n\r\n"), InvalidTrailer, 400),
        case("trailer obs-fold", chunked("0\r\nX-T: a\r\n b\r\n\r\n"), InvalidTrailer, 400),
        case("trailer NUL", chunked("0\r\nX-T: a\0b\r\n\r\n"), InvalidTrailer, 400),
        case("trailers too large", chunked(&format!("0\r\nX-T: {}\r\n\r\n", "t".repeat(17_000))), TrailersTooLarge, 431),
        case("last chunk bare LF", chunked("0\r\n\n"), BareLineFeed, 400),
        // ----- bytes that never belong in a head -------------------------------
        case("NUL in target", get("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidTarget, 400),
        case("NUL in field value", get("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"), InvalidHeaderValue, 400),
        case("NUL in field name", get("GET / HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n"), InvalidHeaderName, 400),
        case("DEL in field value", get("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n"), InvalidHeaderValue, 400),
        case("control byte in field value", get("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n"), InvalidHeaderValue, 400),
        case("bare LF after request line", get("GET / HTTP/1.1\nHost: a\r\n\r\n"), BareLineFeed, 400),
        case("bare LF after a field", get("GET / HTTP/1.1\r\nHost: a\n\r\n"), BareLineFeed, 400),
        case("bare LF everywhere", get("GET / HTTP/1.1\nHost: a\n\n"), BareLineFeed, 400),
        case("bare LF as leading empty line", get("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), BareLineFeed, 400),
        case("bare CR inside a value", get("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"), BareCarriageReturn, 400),
        case("bare CR line endings", get("GET / HTTP/1.1\rHost: a\r\r"), BareCarriageReturn, 400),
        case("bare CR at head end", get("GET / HTTP/1.1\r\nHost: a\r\n\rX"), BareCarriageReturn, 400),
        // ----- request line ---------------------------------------------------
        case("method with (", get("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidMethod, 400),
        case("method with @", get("GE@T / HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidMethod, 400),
        case("method with non-ASCII", get("G\u{e9}T / HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidMethod, 400),
        case("leading space", get(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidMethod, 400),
        case("double space", get("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidRequestLine, 400),
        case("no version (HTTP/0.9)", get("GET /\r\n\r\n"), InvalidRequestLine, 400),
        case("lowercase version", get("GET / http/1.1\r\nHost: a\r\n\r\n"), InvalidVersion, 400),
        case("HTTP/1.2", get("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), UnsupportedVersion, 505),
        case("HTTP/2.0", get("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), UnsupportedVersion, 505),
        case("HTTP/2 preface", get("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), UnsupportedVersion, 505),
        case("HTTP/0.9 with version", get("GET / HTTP/0.9\r\n\r\n"), UnsupportedVersion, 505),
        case("HTTP/11", get("GET / HTTP/11\r\nHost: a\r\n\r\n"), InvalidVersion, 400),
        case("HTTP/1", get("GET / HTTP/1\r\nHost: a\r\n\r\n"), InvalidVersion, 400),
        case("HTTP/1.1 with junk", get("GET / HTTP/1.1x\r\nHost: a\r\n\r\n"), InvalidVersion, 400),
        case("HTTP/1.1 with trailing space", get("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), InvalidVersion, 400),
        case("HTTP/2.0 with junk", get("GET / HTTP/2.0x\r\nHost: a\r\n\r\n"), InvalidVersion, 400),
        case("non-ASCII in target", get("GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidTarget, 400),
        case("fragment in target", get("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidTarget, 400),
        case("asterisk with GET", get("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidTarget, 400),
        case("authority-form with GET", get("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidTarget, 400),
        case("CONNECT without port", get("CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"), InvalidTarget, 400),
        case("absolute-form ftp", get("GET ftp://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidTarget, 400),
        case("absolute-form with userinfo", get("GET http://u:p@example.com/ HTTP/1.1\r\nHost: a\r\n\r\n"), InvalidTarget, 400),
        // ----- header fields -----------------------------------------------------
        case("field without colon", get("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), InvalidHeaderName, 400),
        case("field with space in name", get("GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n"), InvalidHeaderName, 400),
        case("field with empty name", get("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), InvalidHeaderName, 400),
        case("space before colon", get("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), WhitespaceBeforeColon, 400),
        case("obs-fold", get("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"), ObsoleteLineFolding, 400),
        case("obs-fold with tab", get("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n"), ObsoleteLineFolding, 400),
        case("whitespace before first field", get("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), ObsoleteLineFolding, 400),
        case("missing Host", get("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), MissingHost, 400),
        case("missing Host, absolute-form", get("GET http://example.com/ HTTP/1.1\r\n\r\n"), MissingHost, 400),
        case("duplicate Host", get("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), DuplicateHost, 400),
        case("duplicate identical Host", get("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), DuplicateHost, 400),
        case("Host with space", get("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), InvalidHost, 400),
        case("Host with userinfo", get("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), InvalidHost, 400),
        case("Host with path", get("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), InvalidHost, 400),
        case("Host list", get("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), InvalidHost, 400),
        case("unknown expectation", post("Expect: 100-continue, fast\r\nContent-Length: 0\r\n", ""), UnsupportedExpectation, 417),
    ]
}

#[test]
fn table_has_enough_cases() {
    assert!(cases().len() >= 40, "{}", cases().len());
}

#[test]
fn each_bad_request_fails_with_its_error_and_status() {
    let limits = Limits::default();
    let mut failures = Vec::new();
    for c in cases() {
        let out = serve_whole(&c.input, &limits);
        if out.error != Some(c.error) || c.error.status() != c.status {
            failures.push(format!(
                "{}: expected {:?} ({}), got {:?} ({:?})",
                c.name,
                c.error,
                c.status,
                out.error,
                out.error.map(|e| e.status())
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn each_bad_request_fails_the_same_way_however_it_is_split() {
    let limits = Limits::default();
    let mut failures = Vec::new();
    for c in cases() {
        let whole = serve_whole(&c.input, &limits);
        let bytewise = serve_bytewise(&c.input, &limits);
        if bytewise.error != whole.error {
            failures.push(format!(
                "{} bytewise: {:?} vs whole {:?}",
                c.name, bytewise.error, whole.error
            ));
        }
        // Every two-piece split, for inputs small enough to make it cheap.
        if c.input.len() <= 600 {
            for at in 0..=c.input.len() {
                let split = serve([&c.input[..at], &c.input[at..]], &limits);
                if split.error != whole.error {
                    failures.push(format!(
                        "{} split at {at}: {:?} vs whole {:?}",
                        c.name, split.error, whole.error
                    ));
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_head_of_exactly_the_limit_passes_and_one_byte_more_fails() {
    let mut limits = Limits::default();
    limits.max_head_size = 64;
    let head = |pad: usize| format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(pad));
    let exact = head(64 - head(0).len());
    assert_eq!(exact.len(), 64);
    let out = serve_whole(exact.as_bytes(), &limits);
    assert_eq!((out.error, out.requests.len()), (None, 1));
    let over = head(65 - head(0).len());
    assert_eq!(
        serve_whole(over.as_bytes(), &limits).error,
        Some(Error::HeadTooLarge)
    );
    // An incomplete head that already fills the limit fails without waiting.
    assert_eq!(
        serve_whole(&over.as_bytes()[..64], &limits).error,
        Some(Error::HeadTooLarge)
    );
}

#[test]
fn header_count_limit_is_the_smaller_of_config_and_storage() {
    let mut limits = Limits::default();
    limits.max_headers = 3;
    let three = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    let four = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(serve_whole(three, &limits).error, None);
    assert_eq!(
        serve_whole(four, &limits).error,
        Some(Error::TooManyHeaders)
    );

    let limits = Limits::default();
    let mut storage = protocol::header_storage::<2>();
    assert_eq!(
        protocol::parse_request(three, &mut storage, &limits),
        Err(Error::TooManyHeaders)
    );
}

#[test]
fn errors_after_a_good_pipelined_request_keep_the_good_one() {
    let limits = Limits::default();
    let input =
        b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    let out = serve_whole(input, &limits);
    assert_eq!(out.requests.len(), 1);
    assert_eq!(out.requests[0].path, "/ok");
    assert_eq!(out.error, Some(Error::DuplicateHost));
}
