//! [`DateCache`]: the `Date` field value (an IMF-fixdate, RFC 9110 §5.6.7),
//! formatted at most once per second and handed out as 29 bytes.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Last second httpdate can format: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

/// Caches the formatted `Date` value; one per event loop.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let mut dates = protocol::DateCache::new();
/// let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(dates.at(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
/// assert_eq!(dates.now().len(), 29);
/// ```
#[derive(Debug, Clone)]
pub struct DateCache {
    buf: [u8; 29],
    /// The Unix second `buf` shows; `None` before the first call.
    second: Option<u64>,
    /// The times `buf` holds for, `start..end` (that second, unclamped):
    /// a time inside is two comparisons away from the answer, where
    /// working out its second is a subtraction with checks (it showed in
    /// the pipelined profile: every answer asks).
    valid: Option<(SystemTime, SystemTime)>,
}

impl DateCache {
    /// An empty cache; the first call formats.
    pub const fn new() -> Self {
        DateCache {
            buf: [0; 29],
            second: None,
            valid: None,
        }
    }

    /// The date for the current time (`SystemTime::now()`).
    pub fn now(&mut self) -> &[u8; 29] {
        self.at(SystemTime::now())
    }

    /// The date for `time`, reformatted only when its second differs from
    /// the cached one. Times before 1970 or after 9999 are clamped.
    pub fn at(&mut self, time: SystemTime) -> &[u8; 29] {
        if let Some((start, end)) = self.valid {
            if start <= time && time < end {
                return &self.buf;
            }
        }
        let secs = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(MAX_SECS);
        if self.second != Some(secs) {
            let date = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(secs));
            let mut w = &mut self.buf[..];
            // An IMF-fixdate is exactly 29 bytes for years 1970..=9999.
            let written = write!(w, "{date}").is_ok() && w.is_empty();
            debug_assert!(written);
            self.second = Some(secs);
        }
        // Only a second that was not clamped holds for a range of times.
        let start = UNIX_EPOCH + Duration::from_secs(secs);
        let end = start + Duration::from_secs(1);
        self.valid = (start <= time && time < end).then_some((start, end));
        &self.buf
    }
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_caches() {
        let mut c = DateCache::new();
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(c.at(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        // Same second, different sub-second: same bytes.
        assert_eq!(
            c.at(t + Duration::from_millis(999)),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            c.at(t + Duration::from_secs(1)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
        // Backwards works too.
        assert_eq!(c.at(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn clamps() {
        let mut c = DateCache::new();
        assert_eq!(
            c.at(UNIX_EPOCH - Duration::from_secs(5)),
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        // Clamped to the epoch: the epoch's own second still formats anew.
        assert_eq!(
            c.at(UNIX_EPOCH - Duration::from_secs(4)),
            b"Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            c.at(UNIX_EPOCH + Duration::from_secs(1 << 40)),
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(
            c.at(UNIX_EPOCH + Duration::from_secs((1 << 40) + 7)),
            b"Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(
            c.at(UNIX_EPOCH + Duration::from_secs(1)),
            b"Thu, 01 Jan 1970 00:00:01 GMT"
        );
    }

    #[test]
    fn a_clock_that_steps_back_gets_its_own_second() {
        let mut c = DateCache::new();
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            c.at(t + Duration::from_millis(1500)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
        assert_eq!(
            c.at(t + Duration::from_millis(999)),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(c.at(t), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            c.at(t + Duration::from_secs(1)),
            b"Sun, 06 Nov 1994 08:49:38 GMT"
        );
    }

    #[test]
    fn now_parses_back() {
        let mut c = DateCache::new();
        let s = std::str::from_utf8(c.now()).unwrap().to_owned();
        let back = httpdate::parse_http_date(&s).unwrap();
        let diff = SystemTime::now()
            .duration_since(back)
            .unwrap_or(Duration::ZERO);
        assert!(diff < Duration::from_secs(120), "{s}");
    }
}
