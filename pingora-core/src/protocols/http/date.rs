//! The `Date` header value, formatted once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

thread_local! {
    static CACHED: RefCell<(u64, HeaderValue)> = const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

fn now_secs() -> (u64, SystemTime) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (secs, now)
}

/// The current time as an HTTP date (RFC 9110 section 5.6.7), such as
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
///
/// The value is formatted at most once per second on each thread; within the second, this
/// is a reference-count increment.
pub fn get_cached_date() -> HeaderValue {
    let (secs, now) = now_secs();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            cached.1 = HeaderValue::from_str(&text).expect("an HTTP date is a valid header value");
            cached.0 = secs;
        }
        cached.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_current_and_parsable() {
        let date = get_cached_date();
        let parsed = httpdate::parse_http_date(date.to_str().unwrap()).unwrap();
        let delta = SystemTime::now().duration_since(parsed).unwrap();
        assert!(delta.as_secs() <= 1);
        assert_eq!(date.len(), 29);
    }
}
