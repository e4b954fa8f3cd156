//! Conditional requests: the precedence table of RFC 9110 §13.2.2 (which
//! of 200, 304 and 412 each combination of fields gives, for GET/HEAD and
//! for other methods), the weak/strong comparison rules, HTTP-date parsing,
//! and the file ETag.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::{
    evaluate_preconditions, if_match, if_none_match, parse_http_date, ETag, EntityTag, Header,
    Precondition, Validators,
};

/// Last-Modified of the test resource: 1994-11-06T08:49:37.25Z.
fn lm() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(784_111_777_250)
}

const AT: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

fn current() -> Validators<'static> {
    Validators {
        exists: true,
        etag: Some(b"\"v1\""),
        last_modified: Some(lm()),
    }
}

use Precondition::{Failed, NotModified, Proceed};

/// Request fields: (name, value).
type Fields = Vec<(&'static str, &'static str)>;

/// (fields, GET result, PUT result)
#[rustfmt::skip]
fn table() -> Vec<(Fields, Precondition, Precondition)> {
    vec![
        (vec![], Proceed, Proceed),
        // If-Match: strong comparison; `*` = exists; invalid = false.
        (vec![("If-Match", "\"v1\"")], Proceed, Proceed),
        (vec![("If-Match", "\"v0\", \"v1\"")], Proceed, Proceed),
        (vec![("If-Match", "\"v0\""), ("If-Match", "\"v1\"")], Proceed, Proceed),
        (vec![("If-Match", "*")], Proceed, Proceed),
        (vec![("If-Match", "\"v2\"")], Failed, Failed),
        (vec![("If-Match", "W/\"v1\"")], Failed, Failed),
        (vec![("If-Match", "v1")], Failed, Failed),
        (vec![("If-Match", "")], Failed, Failed),
        (vec![("If-Match", "*, \"v1\"")], Failed, Failed),
        // If-Unmodified-Since: only without If-Match; invalid → ignored.
        (vec![("If-Unmodified-Since", AT)], Proceed, Proceed),
        (vec![("If-Unmodified-Since", AFTER)], Proceed, Proceed),
        (vec![("If-Unmodified-Since", BEFORE)], Failed, Failed),
        (vec![("If-Unmodified-Since", "not a date")], Proceed, Proceed),
        (vec![("If-Unmodified-Since", BEFORE), ("If-Unmodified-Since", BEFORE)], Proceed, Proceed),
        (vec![("If-Match", "\"v1\""), ("If-Unmodified-Since", BEFORE)], Proceed, Proceed),
        (vec![("If-Match", "\"v2\""), ("If-Unmodified-Since", AFTER)], Failed, Failed),
        // If-None-Match: weak comparison; GET/HEAD → 304, others → 412.
        (vec![("If-None-Match", "\"v1\"")], NotModified, Failed),
        (vec![("If-None-Match", "W/\"v1\"")], NotModified, Failed),
        (vec![("If-None-Match", "\"v0\", W/\"v1\"")], NotModified, Failed),
        (vec![("If-None-Match", "\"v0\""), ("if-none-match", "\"v1\"")], NotModified, Failed),
        (vec![("If-None-Match", "*")], NotModified, Failed),
        (vec![("If-None-Match", "\"v2\"")], Proceed, Proceed),
        (vec![("If-None-Match", "garbage")], Proceed, Proceed),
        // If-None-Match wins over If-Modified-Since, either way.
        (vec![("If-None-Match", "\"v2\""), ("If-Modified-Since", AT)], Proceed, Proceed),
        (vec![("If-None-Match", "\"v1\""), ("If-Modified-Since", BEFORE)], NotModified, Failed),
        // If-Modified-Since: GET/HEAD only; compared at whole seconds.
        (vec![("If-Modified-Since", AT)], NotModified, Proceed),
        (vec![("If-Modified-Since", AFTER)], NotModified, Proceed),
        (vec![("If-Modified-Since", BEFORE)], Proceed, Proceed),
        (vec![("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")], NotModified, Proceed),
        (vec![("If-Modified-Since", "Sun Nov  6 08:49:37 1994")], NotModified, Proceed),
        (vec![("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37")], Proceed, Proceed),
        (vec![("If-Modified-Since", AT), ("If-Modified-Since", AT)], Proceed, Proceed),
        // 412 is decided before 304.
        (vec![("If-Match", "\"v2\""), ("If-None-Match", "\"v1\"")], Failed, Failed),
        (vec![("If-Unmodified-Since", BEFORE), ("If-Modified-Since", AT)], Failed, Failed),
        (vec![("If-Match", "\"v1\""), ("If-None-Match", "\"v1\"")], NotModified, Failed),
        // Names are case-insensitive; other fields are ignored.
        (vec![("IF-NONE-MATCH", "\"v1\""), ("If-Range", "\"v2\"")], NotModified, Failed),
    ]
}

fn headers<'a>(fields: &'a [(&'static str, &'static str)]) -> Vec<Header<'a>> {
    fields
        .iter()
        .map(|(name, value)| Header {
            name,
            value: value.as_bytes(),
        })
        .collect()
}

#[test]
fn precedence_table() {
    let cur = current();
    for (fields, get, put) in table() {
        let h = headers(&fields);
        assert_eq!(
            evaluate_preconditions("GET", &h, &cur),
            get,
            "GET {fields:?}"
        );
        assert_eq!(
            evaluate_preconditions("HEAD", &h, &cur),
            get,
            "HEAD {fields:?}"
        );
        assert_eq!(
            evaluate_preconditions("PUT", &h, &cur),
            put,
            "PUT {fields:?}"
        );
        assert_eq!(
            evaluate_preconditions("POST", &h, &cur),
            put,
            "POST {fields:?}"
        );
        assert_eq!(
            evaluate_preconditions("DELETE", &h, &cur),
            put,
            "DELETE {fields:?}"
        );
        // These select no representation: preconditions are ignored.
        for method in ["OPTIONS", "CONNECT", "TRACE"] {
            assert_eq!(
                evaluate_preconditions(method, &h, &cur),
                Proceed,
                "{method} {fields:?}"
            );
        }
    }
    assert_eq!(Proceed.status(), None);
    assert_eq!(NotModified.status(), Some(304));
    assert_eq!(Failed.status(), Some(412));
}

#[test]
fn missing_resource_and_missing_validators() {
    // A PUT that would create the resource.
    let absent = Validators {
        exists: false,
        etag: None,
        last_modified: None,
    };
    let h = |f: &'static [(&'static str, &'static str)]| headers(f);
    assert_eq!(
        evaluate_preconditions("PUT", &h(&[("If-None-Match", "*")]), &absent),
        Proceed
    );
    assert_eq!(
        evaluate_preconditions("PUT", &h(&[("If-Match", "*")]), &absent),
        Failed
    );
    assert_eq!(
        evaluate_preconditions("PUT", &h(&[("If-Match", "\"v1\"")]), &absent),
        Failed
    );
    assert_eq!(
        evaluate_preconditions("PUT", &h(&[("If-Unmodified-Since", BEFORE)]), &absent),
        Proceed
    );

    // No ETag: tags match nothing. No Last-Modified: dates are ignored.
    let bare = Validators {
        exists: true,
        etag: None,
        last_modified: None,
    };
    assert_eq!(
        evaluate_preconditions("GET", &h(&[("If-None-Match", "\"v1\"")]), &bare),
        Proceed
    );
    assert_eq!(
        evaluate_preconditions("GET", &h(&[("If-None-Match", "*")]), &bare),
        NotModified
    );
    assert_eq!(
        evaluate_preconditions("GET", &h(&[("If-Match", "\"v1\"")]), &bare),
        Failed
    );
    assert_eq!(
        evaluate_preconditions("GET", &h(&[("If-Modified-Since", AT)]), &bare),
        Proceed
    );
    assert_eq!(
        evaluate_preconditions("PUT", &h(&[("If-Unmodified-Since", BEFORE)]), &bare),
        Proceed
    );

    // A weak current tag still matches If-None-Match, never If-Match.
    let weak = Validators {
        etag: Some(b"W/\"v1\""),
        ..current()
    };
    assert_eq!(
        evaluate_preconditions("GET", &h(&[("If-None-Match", "\"v1\"")]), &weak),
        NotModified
    );
    assert_eq!(
        evaluate_preconditions("PUT", &h(&[("If-Match", "\"v1\"")]), &weak),
        Failed
    );
    assert_eq!(
        evaluate_preconditions("PUT", &h(&[("If-Match", "W/\"v1\"")]), &weak),
        Failed
    );
}

#[test]
fn list_evaluators() {
    let cur = current();
    let one = |v: &'static str| [v.as_bytes()];
    assert_eq!(if_match(std::iter::empty(), &cur), None);
    assert_eq!(if_none_match(std::iter::empty(), &cur), None);
    assert_eq!(if_match(one("\"v1\""), &cur), Some(true));
    assert_eq!(if_match(one("W/\"v1\""), &cur), Some(false));
    assert_eq!(if_none_match(one("W/\"v1\""), &cur), Some(false));
    assert_eq!(if_none_match(one("\"V1\""), &cur), Some(true));
    // A comma inside a tag is part of it.
    let comma = Validators {
        etag: Some(b"\"a,b\""),
        ..cur
    };
    assert_eq!(if_match(one("\"a,b\""), &comma), Some(true));
    assert_eq!(if_match(one("\"a\", \"b\""), &comma), Some(false));
}

#[test]
fn entity_tags() {
    type Case = (&'static [u8], Option<(bool, &'static [u8])>);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (b"\"xyzzy\"", Some((false, b"xyzzy"))),
        (b"W/\"xyzzy\"", Some((true, b"xyzzy"))),
        (b"\"\"", Some((false, b""))),
        (b"\"a b\"", None),
        (b"\"\xff\"", Some((false, b"\xff"))),
        (b"w/\"x\"", None),
        (b"W/x", None),
        (b"\"x", None),
        (b"x\"", None),
        (b"\"x\" ", None),
        (b"\"x\"\"", None),
        (b"", None),
    ];
    for (value, expected) in cases {
        let got = EntityTag::parse(value).map(|t| (t.is_weak(), t.opaque()));
        assert_eq!(got, *expected, "{:?}", String::from_utf8_lossy(value));
    }
    // RFC 9110 §8.8.3.2's table.
    let t = |v: &'static [u8]| EntityTag::parse(v).unwrap();
    let rows = [
        (t(b"W/\"1\""), t(b"W/\"1\""), false, true),
        (t(b"W/\"1\""), t(b"W/\"2\""), false, false),
        (t(b"W/\"1\""), t(b"\"1\""), false, true),
        (t(b"\"1\""), t(b"\"1\""), true, true),
    ];
    for (a, b, strong, weak) in rows {
        assert_eq!(a.strong_eq(&b), strong, "{a:?} {b:?}");
        assert_eq!(a.weak_eq(&b), weak, "{a:?} {b:?}");
    }
}

#[test]
fn http_dates() {
    let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
    for ok in [
        AT,
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(parse_http_date(ok.as_bytes()), Some(t), "{ok}");
    }
    for bad in [
        &b""[..],
        b"Sun, 06 Nov 1994 08:49:37 PST",
        b"Sun, 06 Nov 1994 08:49:37",
        b"Sun, 6 Nov 1994 08:49:37 GMT junk",
        b"1994-11-06T08:49:37Z",
        b"Sun, 06 Nov 1994 08:49:37 GMT\xff",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
}

#[test]
fn file_etags() {
    let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let base = ETag::for_file(42, 1000, t);
    assert_eq!(base, ETag::for_file(42, 1000, t));
    let tag = EntityTag::parse(base.as_bytes()).expect("a valid entity tag");
    assert!(!tag.is_weak());
    for other in [
        ETag::for_file(43, 1000, t),
        ETag::for_file(42, 1001, t),
        ETag::for_file(42, 1000, t + Duration::from_nanos(1)),
        ETag::for_file(42, 1000, UNIX_EPOCH - Duration::from_nanos(1)),
    ] {
        assert_ne!(base.as_bytes(), other.as_bytes());
        assert!(EntityTag::parse(other.as_bytes()).is_some());
    }
    // Usable as the current validators directly.
    let cur = Validators::for_file(&base, t);
    assert_eq!(cur.etag, Some(base.as_bytes()));
    let h = [Header {
        name: "If-None-Match",
        value: base.as_bytes(),
    }];
    assert_eq!(evaluate_preconditions("GET", &h, &cur), NotModified);
    assert_eq!(
        format!("{base:?}"),
        format!("ETag({})", String::from_utf8_lossy(base.as_bytes()))
    );
}
