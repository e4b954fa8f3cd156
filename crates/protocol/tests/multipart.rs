//! The `multipart/form-data` parser: tables of good and bad bodies, exact
//! limits, and the property that feeding a body split anywhere (every one-,
//! two- and, for short bodies, three-piece split; byte by byte; random
//! pieces) gives exactly the events and data of feeding it whole. Also a
//! 50 MiB part streamed in 4 KiB pieces with the parser's memory checked.

mod common;

use common::Rng;
use protocol::{
    boundary_from_content_type, sanitize_filename, Multipart, MultipartError, MultipartEvent,
    MultipartLimits,
};

/// One event, owned; consecutive data runs are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Start {
        name: Vec<u8>,
        filename: Option<Vec<u8>>,
        content_type: Option<Vec<u8>>,
        head: Vec<u8>,
    },
    Data(Vec<u8>),
    PartEnd,
    End,
}

/// Everything feeding a body produced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    events: Vec<Ev>,
    /// The first error, from `feed` or else from `finish`.
    error: Option<MultipartError>,
    /// Bytes consumed (0 after an error).
    consumed: u64,
}

/// Feeds `pieces` in order, recording events. Checks the feed contract on
/// the way: `consumed <= input.len()`, `NeedMore` consumes everything, every
/// call makes progress, data is a slice of the input or (at most a
/// delimiter's length) of held-back delimiter bytes.
fn run<'a>(
    boundary: &[u8],
    pieces: impl IntoIterator<Item = &'a [u8]>,
    limits: &MultipartLimits,
) -> Run {
    let mut mp = Multipart::new(boundary, limits).expect("valid boundary");
    let mut events: Vec<Ev> = Vec::new();
    let mut consumed = 0u64;
    let mut delimiter = b"\r\n--".to_vec();
    delimiter.extend_from_slice(boundary);
    for piece in pieces {
        let mut input = piece;
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 10_000, "no progress");
            let before = mp.total_len();
            let step = match mp.feed(input) {
                Ok(step) => step,
                Err(e) => {
                    assert_eq!(mp.feed(b"--"), Err(e), "errors are sticky");
                    assert_eq!(mp.finish(), Err(e));
                    // Where an error was noticed is not part of the result.
                    return Run {
                        events,
                        error: Some(e),
                        consumed: 0,
                    };
                }
            };
            assert!(step.consumed <= input.len());
            consumed += step.consumed as u64;
            let (input_start, input_end) = (
                input.as_ptr() as usize,
                input.as_ptr() as usize + input.len(),
            );
            match step.event {
                MultipartEvent::NeedMore => assert_eq!(step.consumed, input.len()),
                MultipartEvent::PartStart(p) => {
                    assert!(p.name.len() <= limits.max_field_name_len);
                    events.push(Ev::Start {
                        name: p.name.to_vec(),
                        filename: p.filename.map(<[u8]>::to_vec),
                        content_type: p.content_type.map(<[u8]>::to_vec),
                        head: p.head.to_vec(),
                    });
                }
                MultipartEvent::PartData(d) => {
                    assert!(!d.is_empty());
                    let (s, e) = (d.as_ptr() as usize, d.as_ptr() as usize + d.len());
                    let from_input = s >= input_start && e <= input_end;
                    assert!(
                        from_input
                            || (d.len() < delimiter.len()
                                && (delimiter.starts_with(d) || delimiter[2..].starts_with(d))),
                        "data neither from input nor held back: {d:?}"
                    );
                    if let Some(Ev::Data(prev)) = events.last_mut() {
                        prev.extend_from_slice(d);
                    } else {
                        events.push(Ev::Data(d.to_vec()));
                    }
                }
                MultipartEvent::PartEnd => events.push(Ev::PartEnd),
                MultipartEvent::End => {
                    if events.last() != Some(&Ev::End) {
                        events.push(Ev::End);
                    }
                }
            }
            let need_more = matches!(step.event, MultipartEvent::NeedMore);
            let end = matches!(step.event, MultipartEvent::End);
            let used = step.consumed;
            assert_eq!(mp.total_len() - before, used as u64);
            input = &input[used..];
            if need_more || (end && input.is_empty()) {
                break;
            }
        }
    }
    let error = mp.finish().err();
    assert_eq!(mp.is_done(), error.is_none());
    Run {
        events,
        error,
        consumed,
    }
}

fn whole(boundary: &[u8], body: &[u8], limits: &MultipartLimits) -> Run {
    run(boundary, [body], limits)
}

/// Checks every one-, two- and (for bodies up to 64 bytes) three-piece
/// split, byte by byte, and random pieces, against feeding `body` whole.
fn assert_split_invariant(boundary: &[u8], body: &[u8], limits: &MultipartLimits) -> Run {
    let expected = whole(boundary, body, limits);
    assert_eq!(
        run(boundary, body.chunks(1), limits),
        expected,
        "bytewise {body:?}"
    );
    for a in 0..=body.len() {
        let got = run(boundary, [&body[..a], &body[a..]], limits);
        assert_eq!(got, expected, "split at {a}: {body:?}");
        if body.len() <= 64 {
            for b in a..=body.len() {
                let got = run(boundary, [&body[..a], &body[a..b], &body[b..]], limits);
                assert_eq!(got, expected, "split at {a},{b}: {body:?}");
            }
        }
    }
    let mut rng = Rng(body.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
    for _ in 0..16 {
        assert_eq!(
            run(boundary, rng.pieces(body), limits),
            expected,
            "random {body:?}"
        );
    }
    expected
}

/// An expected part: name, filename, content type, data.
type P = (
    &'static [u8],
    Option<&'static [u8]>,
    Option<&'static [u8]>,
    &'static [u8],
);

/// The parts of a successful run, checked for the Start/Data/PartEnd/End
/// shape.
/// An owned part: name, filename, content type, data.
type Owned = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>);

fn parts(r: &Run) -> Vec<Owned> {
    let mut out = Vec::new();
    let mut it = r.events.iter().peekable();
    while let Some(ev) = it.next() {
        match ev {
            Ev::Start {
                name,
                filename,
                content_type,
                ..
            } => {
                let data = match it.peek() {
                    Some(Ev::Data(d)) => {
                        let d = d.clone();
                        it.next();
                        d
                    }
                    _ => Vec::new(),
                };
                assert_eq!(it.next(), Some(&Ev::PartEnd), "{r:?}");
                out.push((name.clone(), filename.clone(), content_type.clone(), data));
            }
            Ev::End => assert!(it.next().is_none()),
            other => panic!("unexpected {other:?} in {r:?}"),
        }
    }
    out
}

const CD: &str = "Content-Disposition: form-data";

#[rustfmt::skip]
fn good() -> Vec<(&'static [u8], Vec<u8>, Vec<P>)> {
    let s = |x: &str| x.as_bytes().to_vec();
    vec![
        // The smallest form: one field, no preamble, no epilogue.
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\n1\r\n--B--")), vec![(b"a", None, None, b"1")]),
        // Preamble and epilogue are ignored, whatever they hold.
        (b"B", s(&format!("preamble --B\r\n\r\n--B\r\n{CD}; name=\"a\"\r\n\r\nv\r\n--B--\r\nepilogue\r\n--B\r\n")),
         vec![(b"a", None, None, b"v")]),
        (b"B", s(&format!("\r\n--B\r\n{CD}; name=a\r\n\r\nv\r\n--B--\r\n")), vec![(b"a", None, None, b"v")]),
        // Two parts, a file with a type; CRLF inside data.
        (b"xYz", s(&format!("--xYz\r\n{CD}; name=\"title\"\r\n\r\nHello\r\n--xYz\r\n{CD}; name=\"f\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n\x01\r\n\r\n--xYz--\r\n")),
         vec![(b"title", None, None, b"Hello"), (b"f", Some(b"a.bin"), Some(b"application/octet-stream"), b"\r\n\x01\r\n")]),
        // Empty data, and data that is only CRLF.
        (b"B", s(&format!("--B\r\n{CD}; name=e\r\n\r\n\r\n--B\r\n{CD}; name=c\r\n\r\n\r\n\r\n--B--")),
         vec![(b"e", None, None, b""), (b"c", None, None, b"\r\n")]),
        // Data holding pieces of the delimiter that are not the delimiter.
        (b"boundary", s(&format!("--boundary\r\n{CD}; name=d\r\n\r\n\r\n--bounda\r\n--boundar\r\r\n--\n--boundary \r-\r\n-boundary\r\n--boundar\r\n--boundary--")),
         vec![(b"d", None, None, b"\r\n--bounda\r\n--boundar\r\r\n--\n--boundary \r-\r\n-boundary\r\n--boundar")]),
        // Transport padding after a boundary.
        (b"B", s(&format!("--B \t \r\n{CD}; name=a\r\n\r\nv\r\n--B\t\r\n{CD}; name=b\r\n\r\nw\r\n--B--")),
         vec![(b"a", None, None, b"v"), (b"b", None, None, b"w")]),
        // Zero parts.
        (b"B", s("--B--"), vec![]),
        (b"B", s("junk\r\n--B--\r\n"), vec![]),
        // Parameter syntax: case, spacing, quoting, escapes, other params.
        (b"B", s("--B\r\ncontent-DISPOSITION:FORM-DATA ;NAME=\"a \\\"q\\\" b\"; x=1\r\n\r\nv\r\n--B--"),
         vec![(b"a \"q\" b", None, None, b"v")]),
        (b"B", s(&format!("--B\r\n{CD}; name=\"\"; filename=\"\"\r\n\r\n\r\n--B--")), vec![(b"", Some(b""), None, b"")]),
        // An old browser's full Windows path keeps its backslashes.
        (b"B", s(&format!("--B\r\n{CD}; name=f; filename=\"C:\\dir\\a.txt\"\r\n\r\nx\r\n--B--")),
         vec![(b"f", Some(b"C:\\dir\\a.txt"), None, b"x")]),
        // filename* wins over filename; an unknown charset falls back.
        (b"B", s(&format!("--B\r\n{CD}; name=f; filename=\"rates.txt\"; filename*=UTF-8''%e2%82%ac%20rates.txt\r\n\r\nx\r\n--B--")),
         vec![(b"f", Some("€ rates.txt".as_bytes()), None, b"x")]),
        (b"B", s(&format!("--B\r\n{CD}; name=f; filename*=iso-8859-1'fr'caf%E9.txt\r\n\r\nx\r\n--B--")),
         vec![(b"f", Some("café.txt".as_bytes()), None, b"x")]),
        (b"B", s(&format!("--B\r\n{CD}; name=f; filename*=koi8-r''%c1; filename=a\r\n\r\nx\r\n--B--")),
         vec![(b"f", Some(b"a"), None, b"x")]),
        // UTF-8 names as browsers send them.
        (b"B", s(&format!("--B\r\n{CD}; name=\"имя\"; filename=\"файл.txt\"\r\n\r\nx\r\n--B--")),
         vec![("имя".as_bytes(), Some("файл.txt".as_bytes()), None, b"x")]),
        // Other fields are kept but not applied.
        (b"B", s(&format!("--B\r\nX-Note:  hi \r\n{CD}; name=a\r\nContent-Transfer-Encoding: base64\r\n\r\nnot decoded\r\n--B--")),
         vec![(b"a", None, None, b"not decoded")]),
        // A boundary of every bchar, with spaces; and one of 70 characters.
        (b"a'()+_,-./:=? z", s(&format!("--a'()+_,-./:=? z\r\n{CD}; name=a\r\n\r\nv\r\n--a'()+_,-./:=? z--")),
         vec![(b"a", None, None, b"v")]),
        (&[b'7'; 70], s(&format!("--{0}\r\n{CD}; name=a\r\n\r\nv\r\n--{0}--", "7".repeat(70))),
         vec![(b"a", None, None, b"v")]),
        // The CRLF ending a head also starts a line: a part without data
        // may be closed right after it (RFC 2046 `[CRLF *OCTET]`).
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\n--B\r\n{CD}; name=b\r\n\r\n--B--")),
         vec![(b"a", None, None, b""), (b"b", None, None, b"")]),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\n--x\r\n--B--")), vec![(b"a", None, None, b"--x")]),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\n-\r\n--B--")), vec![(b"a", None, None, b"-")]),
        // A boundary that is a prefix of a line in the data is a delimiter;
        // one not at the start of a line is data.
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\nx--B\r\ny --B--\r\n--B--")), vec![(b"a", None, None, b"x--B\r\ny --B--")]),
    ]
}

#[test]
fn good_bodies_parse_the_same_however_split() {
    let limits = MultipartLimits::default();
    for (boundary, body, expected) in good() {
        let r = assert_split_invariant(boundary, &body, &limits);
        assert_eq!(r.error, None, "{:?}", String::from_utf8_lossy(&body));
        assert_eq!(r.consumed, body.len() as u64);
        let got = parts(&r);
        let want: Vec<_> = expected
            .iter()
            .map(|(n, f, t, d)| {
                (
                    n.to_vec(),
                    f.map(<[u8]>::to_vec),
                    t.map(<[u8]>::to_vec),
                    d.to_vec(),
                )
            })
            .collect();
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn part_heads_are_kept_whole() {
    let body = format!("--B\r\nX-Note:  hi \r\n{CD}; name=a\r\n\r\nv\r\n--B--");
    let mut mp = Multipart::new(b"B", &MultipartLimits::default()).unwrap();
    let step = mp.feed(body.as_bytes()).unwrap();
    let MultipartEvent::PartStart(part) = step.event else {
        panic!("{step:?}")
    };
    assert_eq!(
        part.head,
        format!("X-Note:  hi \r\n{CD}; name=a\r\n").as_bytes()
    );
    assert_eq!(part.header("x-note"), Some(&b"hi"[..]));
    assert_eq!(
        part.header("CONTENT-disposition"),
        Some(&b"form-data; name=a"[..])
    );
    assert_eq!(part.header("content-type"), None);
    assert_eq!(step.consumed, body.find("v\r\n").unwrap());
}

#[rustfmt::skip]
fn bad() -> Vec<(&'static [u8], Vec<u8>, MultipartError)> {
    use MultipartError::*;
    let s = |x: &str| x.as_bytes().to_vec();
    let part = |head: &str| s(&format!("--B\r\n{head}\r\n\r\nv\r\n--B--"));
    vec![
        // Framing.
        (b"B", s(""), Incomplete),
        (b"B", s("no delimiter at all"), Incomplete),
        (b"B", s("--B"), Incomplete),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n")), Incomplete),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\nunterminated data\r\n--")), Incomplete),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\nv\r\n--B\r\n")), Incomplete),
        (b"B", s("--Bx\r\n"), InvalidDelimiter),
        (b"B", s("--B\n"), InvalidDelimiter),
        (b"B", s("--B\rx"), InvalidDelimiter),
        (b"B", s("--B -"), InvalidDelimiter),
        (b"B", s("--B-x"), InvalidDelimiter),
        (b"B", s("x\r\n--B_\r\n"), InvalidDelimiter),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\nv\r\n--Bjunk\r\n--B--")), InvalidDelimiter),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\r\n--Bjunk\r\n--B--")), InvalidDelimiter),
        // Part heads.
        (b"B", part("no colon"), InvalidPartHeader),
        (b"B", part("Name : v"), InvalidPartHeader),
        (b"B", part(": v"), InvalidPartHeader),
        (b"B", part(&format!(" {CD}; name=a")), InvalidPartHeader),
        (b"B", part(&format!("{CD};\r\n name=a")), InvalidPartHeader),
        (b"B", part(&format!("{CD}; name=a\nX: y")), InvalidPartHeader),
        (b"B", part(&format!("{CD}; name=a\rX: y")), InvalidPartHeader),
        (b"B", part(&format!("{CD}; name=\"a\0\"")), InvalidPartHeader),
        (b"B", part(&format!("{CD}; name=\"a\x7f\"")), InvalidPartHeader),
        (b"B", s(&format!("--B\r\n{CD}; name=a\r\n\rv")), InvalidPartHeader),
        // Content-Disposition.
        (b"B", s("--B\r\n\r\nv\r\n--B--"), MissingContentDisposition),
        (b"B", part("Content-Type: text/plain"), MissingContentDisposition),
        (b"B", part(&format!("{CD}; name=a\r\n{CD}; name=b")), MissingContentDisposition),
        (b"B", part(&format!("{CD}; name=a\r\nContent-Type: a/b\r\nContent-Type: c/d")), MissingContentDisposition),
        (b"B", part("Content-Disposition: attachment; name=a"), InvalidContentDisposition),
        (b"B", part("Content-Disposition: form-data"), InvalidContentDisposition),
        (b"B", part("Content-Disposition: form-data; filename=a"), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=a; name=b")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=a; filename=x; filename=y")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=a b")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=\"a")), InvalidContentDisposition),
        (b"B", part(&format!("{CD} name=a")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=a; filename*=\"utf-8''a\"")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=a; filename*=utf-8''%ff")), InvalidContentDisposition),
        (b"B", part(&format!("{CD}; name=a; filename*=a.txt")), InvalidContentDisposition),
    ]
}

#[test]
fn bad_bodies_fail_the_same_way_however_split() {
    let limits = MultipartLimits::default();
    for (boundary, body, err) in bad() {
        let r = assert_split_invariant(boundary, &body, &limits);
        assert_eq!(r.error, Some(err), "{:?}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn statuses() {
    assert_eq!(MultipartError::InvalidDelimiter.status(), 400);
    assert_eq!(MultipartError::Incomplete.status(), 400);
    assert_eq!(MultipartError::TooManyParts.status(), 413);
    assert_eq!(MultipartError::PartHeaderTooLarge.status(), 413);
    assert_eq!(MultipartError::BodyTooLarge.status(), 413);
    assert_eq!(MultipartError::FieldNameTooLong.status(), 413);
    assert_eq!(MultipartError::NotFormData.status(), 415);
    assert_eq!(MultipartError::TooManyParts.to_string(), "too many parts");
}

fn form(parts: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..parts {
        body.extend_from_slice(format!("--B\r\n{CD}; name=f{i}\r\n\r\nv{i}\r\n").as_bytes());
    }
    body.extend_from_slice(b"--B--\r\n");
    body
}

#[test]
fn limits_are_exact() {
    let mut limits = MultipartLimits::default();

    limits.max_parts = 3;
    assert_eq!(whole(b"B", &form(3), &limits).error, None);
    let r = assert_split_invariant(b"B", &form(4), &limits);
    assert_eq!(r.error, Some(MultipartError::TooManyParts));
    assert_eq!(parts(&r).len(), 3);
    limits.max_parts = 0;
    assert_eq!(whole(b"B", b"--B--", &limits).error, None);
    assert_eq!(
        whole(b"B", &form(1), &limits).error,
        Some(MultipartError::TooManyParts)
    );
    limits = MultipartLimits::default();

    // The head counts from its first byte to the empty line's LF.
    let head = format!("{CD}; name=a\r\n\r\n");
    let body = format!("--B\r\n{head}v\r\n--B--");
    limits.max_part_header_size = head.len();
    assert_eq!(
        assert_split_invariant(b"B", body.as_bytes(), &limits).error,
        None
    );
    limits.max_part_header_size = head.len() - 1;
    assert_eq!(
        assert_split_invariant(b"B", body.as_bytes(), &limits).error,
        Some(MultipartError::PartHeaderTooLarge)
    );
    limits = MultipartLimits::default();

    // Every byte counts, epilogue included; the error comes once the limit
    // is passed, after every event before it.
    let body = form(2);
    limits.max_total_size = body.len() as u64;
    let full = assert_split_invariant(b"B", &body, &limits);
    assert_eq!(full.error, None);
    limits.max_total_size = body.len() as u64 - 1;
    let r = assert_split_invariant(b"B", &body, &limits);
    assert_eq!(r.error, Some(MultipartError::BodyTooLarge));
    assert_eq!(
        r.events, full.events,
        "the End before the epilogue's last byte"
    );
    limits.max_total_size = 10;
    let r = assert_split_invariant(b"B", &body, &limits);
    assert_eq!(r.error, Some(MultipartError::BodyTooLarge));
    let mut mp = Multipart::new(b"B", &limits).unwrap();
    let mut input = &body[..];
    let err = loop {
        match mp.feed(input) {
            Ok(step) => {
                let used = step.consumed;
                input = &input[used..];
            }
            Err(e) => break e,
        }
    };
    assert_eq!((err, mp.total_len()), (MultipartError::BodyTooLarge, 10));
    limits = MultipartLimits::default();

    limits.max_field_name_len = 3;
    let named = |n: &str| format!("--B\r\n{CD}; name=\"{n}\"\r\n\r\nv\r\n--B--").into_bytes();
    assert_eq!(whole(b"B", &named("abc"), &limits).error, None);
    assert_eq!(whole(b"B", &named("a\\\"c"), &limits).error, None);
    assert_eq!(
        assert_split_invariant(b"B", &named("abcd"), &limits).error,
        Some(MultipartError::FieldNameTooLong)
    );
}

#[test]
fn boundaries_from_content_type() {
    use MultipartError::*;
    type Case = (&'static [u8], Result<&'static [u8], MultipartError>);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (b"multipart/form-data; boundary=abc", Ok(b"abc")),
        (b"multipart/form-data;boundary=abc", Ok(b"abc")),
        (b"MULTIPART/FORM-DATA ; BOUNDARY=abc ; charset=utf-8", Ok(b"abc")),
        (b"multipart/form-data; charset=utf-8; boundary=\"a b'():,./=?+_-\"", Ok(b"a b'():,./=?+_-")),
        (b"multipart/form-data; boundary=----WebKitFormBoundaryABC123", Ok(b"----WebKitFormBoundaryABC123")),
        (b"multipart/form-data; ; boundary=x;", Ok(b"x")),
        (b"text/plain; boundary=abc", Err(NotFormData)),
        (b"multipart/mixed; boundary=abc", Err(NotFormData)),
        (b"multipart/form-data", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=\"\"", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=\"ab \"", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=\"a\\b\"", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=\"a", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=a; boundary=a", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=a!b", Err(InvalidBoundary)),
        (b"multipart/form-data; boundary=a b", Err(InvalidBoundary)),
        (b"multipart/form-data boundary=a", Err(InvalidBoundary)),
        (b"multipart; boundary=a", Err(InvalidBoundary)),
        (b"", Err(InvalidBoundary)),
    ];
    for (value, expected) in cases {
        assert_eq!(
            boundary_from_content_type(value),
            *expected,
            "{:?}",
            String::from_utf8_lossy(value)
        );
    }
    let seventy = format!("multipart/form-data; boundary={}", "a".repeat(70));
    assert_eq!(
        boundary_from_content_type(seventy.as_bytes()).map(<[u8]>::len),
        Ok(70)
    );
    let seventy_one = format!("multipart/form-data; boundary={}", "a".repeat(71));
    assert_eq!(
        boundary_from_content_type(seventy_one.as_bytes()),
        Err(InvalidBoundary)
    );

    let limits = MultipartLimits::default();
    for bad in [&b""[..], b"a ", b"a\r", b"a\"", &[b'a'; 71]] {
        assert_eq!(
            Multipart::new(bad, &limits).err(),
            Some(InvalidBoundary),
            "{bad:?}"
        );
    }
}

#[test]
fn filenames_are_sanitized() {
    for (name, safe) in [
        (&b"a.txt"[..], Some(&b"a.txt"[..])),
        (b"/etc/passwd", Some(b"passwd")),
        (b"..\\..\\boot.ini", Some(b"boot.ini")),
        (b"dir/", None),
        (b"", None),
        (b".", None),
        (b"a/..", None),
        (b"a\r\nb", None),
        (b"\x7f", None),
        ("naïve.txt".as_bytes(), Some("naïve.txt".as_bytes())),
    ] {
        assert_eq!(sanitize_filename(name), safe, "{name:?}");
    }
}

/// Builds a random valid form: random parts, names, file names, and data
/// laced with CRLFs, dashes and pieces of the delimiter.
fn random_form(rng: &mut Rng, boundary: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    if rng.below(3) == 0 {
        body.extend_from_slice(b"preamble\r\n");
    }
    let alphabet: Vec<u8> = {
        let mut a = b"\r\n-x".to_vec();
        a.extend_from_slice(boundary);
        a
    };
    for i in 0..rng.below(5) {
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary);
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(format!("{CD}; name=\"n{i}\"").as_bytes());
        if rng.below(2) == 0 {
            body.extend_from_slice(
                format!("; filename=\"f{i}.bin\"\r\nContent-Type: application/x-{i}").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        let mut data = Vec::new();
        for _ in 0..rng.below(60) {
            data.push(alphabet[rng.below(alphabet.len())]);
        }
        // Never let the data hold a real delimiter.
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        while let Some(p) = data
            .windows(delimiter.len())
            .position(|w| w == delimiter.as_slice())
        {
            data[p] = b'x';
        }
        if data.starts_with(&delimiter[2..]) {
            data[0] = b'x';
        }
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary);
    body.extend_from_slice(b"--");
    if rng.below(2) == 0 {
        body.extend_from_slice(b"\r\nepilogue");
    }
    body
}

#[test]
fn random_forms_and_random_corruptions_split_anywhere() {
    let limits = MultipartLimits::default();
    let mut rng = Rng(0x5eed_f00d_dead_beef);
    for round in 0..300 {
        let boundary: &[u8] = if round % 2 == 0 { b"b" } else { b"--bnd" };
        let body = random_form(&mut rng, boundary);
        let expected = whole(boundary, &body, &limits);
        assert_eq!(expected.error, None, "{:?}", String::from_utf8_lossy(&body));
        for _ in 0..8 {
            assert_eq!(run(boundary, rng.pieces(&body), &limits), expected);
        }
        let mut bad = body.clone();
        let at = rng.below(bad.len());
        bad[at] = [b'\r', b'\n', b'-', b'x', 0][rng.below(5)];
        let expected = whole(boundary, &bad, &limits);
        for _ in 0..8 {
            assert_eq!(
                run(boundary, rng.pieces(&bad), &limits),
                expected,
                "{bad:?}"
            );
        }
    }
}

/// The byte at `offset` of the 50 MiB part's data: a 97-byte pattern full
/// of CRLFs, dashes and partial delimiters, so that 4 KiB pieces end inside
/// `CRLF--bounda…` at many different offsets.
const PATTERN: &[u8] = b"\r\n--boundar\r\n--bounda\r\r\n-\r\n--boundar_y binary \x00\xff\r\n\r\n-- boundary\r\n--b\r\n--boundarX-not-quite";

#[test]
fn fifty_mib_part_streams_in_constant_memory() {
    assert_ne!(4096 % PATTERN.len(), 0);
    let twice = [PATTERN, PATTERN].concat();
    assert!(!twice.windows(12).any(|w| w == b"\r\n--boundary"));
    const DATA_LEN: usize = 50 << 20;
    let head = format!("--boundary\r\n{CD}; name=\"upload\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n");
    let tail = b"\r\n--boundary--\r\n";
    let total = head.len() + DATA_LEN + tail.len();
    // The byte at `i` of the body, produced piece by piece into one buffer.
    let fill = |start: usize, buf: &mut [u8]| {
        for (k, b) in buf.iter_mut().enumerate() {
            let i = start + k;
            *b = if i < head.len() {
                head.as_bytes()[i]
            } else if i < head.len() + DATA_LEN {
                PATTERN[(i - head.len()) % PATTERN.len()]
            } else {
                tail[i - head.len() - DATA_LEN]
            };
        }
    };

    let mut mp = Multipart::new(b"boundary", &MultipartLimits::default()).unwrap();
    let mut buf = [0u8; 4096];
    let (mut data_len, mut held_bytes, mut events) = (0usize, 0usize, Vec::new());
    let mut heap = None;
    let mut offset = 0;
    while offset < total {
        let n = buf.len().min(total - offset);
        fill(offset, &mut buf[..n]);
        offset += n;
        let mut input = &buf[..n];
        loop {
            let (start, end) = (
                input.as_ptr() as usize,
                input.as_ptr() as usize + input.len(),
            );
            let step = mp.feed(input).unwrap();
            match step.event {
                MultipartEvent::PartData(d) => {
                    let s = d.as_ptr() as usize;
                    if !(s >= start && s + d.len() <= end) {
                        held_bytes += d.len();
                    }
                    for (k, &b) in d.iter().enumerate() {
                        assert_eq!(b, PATTERN[(data_len + k) % PATTERN.len()]);
                    }
                    data_len += d.len();
                }
                MultipartEvent::PartStart(p) => {
                    assert_eq!(p.filename, Some(&b"big.bin"[..]));
                    events.push("start");
                }
                MultipartEvent::PartEnd => events.push("end"),
                MultipartEvent::End => {
                    if events.last() != Some(&"form end") {
                        events.push("form end");
                    }
                }
                MultipartEvent::NeedMore => {}
            }
            let need_more = matches!(step.event, MultipartEvent::NeedMore);
            let end = matches!(step.event, MultipartEvent::End);
            input = &input[step.consumed..];
            if need_more || (end && input.is_empty()) {
                break;
            }
        }
        // Memory never grows with the data.
        let h = mp.heap_size();
        assert!(h <= 2 * 8 * 1024 + 74, "{h}");
        assert_eq!(*heap.get_or_insert(h), h);
    }
    mp.finish().unwrap();
    assert_eq!(events, ["start", "end", "form end"]);
    assert_eq!(data_len, DATA_LEN);
    assert_eq!(mp.total_len(), total as u64);
    // Held-back bytes were re-emitted from the delimiter at most once per
    // piece; the rest came straight from the input.
    assert!(
        held_bytes > 0 && held_bytes <= (total / 4096 + 1) * 12,
        "{held_bytes}"
    );
}
