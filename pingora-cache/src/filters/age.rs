//! The age of a response (RFC 9111 section 4.2.3), in whole seconds.
//!
//! ```text
//! apparent_age          = max(0, response_time - date_value)
//! corrected_age_value   = age_value + (response_time - request_time)
//! corrected_initial_age = max(apparent_age, corrected_age_value)
//! current_age           = corrected_initial_age + (now - response_time)
//! ```
//!
//! `request_time` is when the request was sent upstream, `response_time` when its response
//! head arrived, `date_value` the response's `Date` and `age_value` its `Age`. A stored
//! response is fresh while its freshness lifetime is greater than its current age.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};

use crate::cache_control::{parse_delta_seconds, DELTA_SECONDS_OVERFLOW_VALUE};

/// The response's `Age` (RFC 9111 section 5.1): the first member of the first field line; 0
/// when absent or when that member is not a non-negative integer; clamped to 2^31 - 1.
pub fn age_value(headers: &HeaderMap) -> Duration {
    let Some(line) = headers.get(header::AGE) else {
        return Duration::ZERO;
    };
    let first = line
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default();
    let first = first.trim_ascii();
    let secs = parse_delta_seconds(first).unwrap_or(0);
    Duration::from_secs(u64::from(secs))
}

/// The response's `Date`, if it has exactly one valid one.
pub fn date_value(headers: &HeaderMap) -> Option<SystemTime> {
    let mut values = headers.get_all(header::DATE).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    super::parse_http_date(value)
}

/// `max(0, response_time - date_value)`.
pub fn apparent_age(date_value: SystemTime, response_time: SystemTime) -> Duration {
    response_time.duration_since(date_value).unwrap_or_default()
}

/// The age of the response when it arrived: the larger of its apparent age (0 without a
/// `Date`) and its `Age` plus the time the request took.
pub fn corrected_initial_age(
    age_value: Duration,
    date_value: Option<SystemTime>,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent = date_value.map_or(Duration::ZERO, |date| apparent_age(date, response_time));
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or_default();
    let corrected = age_value.saturating_add(delay);
    clamp(apparent.max(corrected))
}

/// The age at `now` of a response that arrived at `response_time` with
/// `corrected_initial_age`: the initial age plus the time spent in the cache.
pub fn current_age(
    corrected_initial_age: Duration,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    let resident = now.duration_since(response_time).unwrap_or_default();
    clamp(corrected_initial_age.saturating_add(resident))
}

/// Whole seconds, at most 2^31 - 1 (what an `Age` field may say).
fn clamp(age: Duration) -> Duration {
    Duration::from_secs(age.as_secs().min(u64::from(DELTA_SECONDS_OVERFLOW_VALUE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    use crate::test_util::header_map as headers;

    #[test]
    fn age_field() {
        // (Age lines, age_value in seconds)
        let cases: &[(&[&str], u64)] = &[
            (&[], 0),
            (&["0"], 0),
            (&["60"], 60),
            (&[" 60 "], 60),
            (&["60, 70"], 60),
            (&["60", "70"], 60),
            (&["-1"], 0),
            (&["1.5"], 0),
            (&["abc, 60"], 0),
            (&[""], 0),
            (&["99999999999999"], u64::from(DELTA_SECONDS_OVERFLOW_VALUE)),
        ];
        for (lines, expected) in cases {
            let fields: Vec<_> = lines.iter().map(|v| ("age", *v)).collect();
            assert_eq!(age_value(&headers(&fields)), s(*expected), "{lines:?}");
        }
    }

    #[test]
    fn date_field() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let t = httpdate::parse_http_date(date).unwrap();
        assert_eq!(date_value(&headers(&[("date", date)])), Some(t));
        assert_eq!(
            date_value(&headers(&[("date", "Sunday, 06-Nov-94 08:49:37 GMT")])),
            Some(t)
        );
        assert_eq!(
            date_value(&headers(&[("date", "Sun Nov  6 08:49:37 1994")])),
            Some(t)
        );
        assert_eq!(date_value(&headers(&[("date", "yesterday")])), None);
        assert_eq!(
            date_value(&headers(&[("date", date), ("date", date)])),
            None
        );
        assert_eq!(date_value(&headers(&[])), None);
    }

    #[test]
    fn age_formula_table() {
        // (age_value, date, request_time, response_time, now, corrected_initial_age, current_age)
        type Case = (u64, Option<u64>, u64, u64, u64, u64, u64);
        let cases: &[Case] = &[
            // A fresh response from a nearby origin.
            (0, Some(1_000), 1_000, 1_000, 1_000, 0, 0),
            // Resident time adds up.
            (0, Some(1_000), 1_000, 1_000, 1_030, 0, 30),
            // The upstream's Age counts, plus the request's round trip.
            (100, Some(1_000), 1_000, 1_002, 1_002, 102, 102),
            // A Date in the past (clock skew or an older copy): apparent age wins.
            (0, Some(900), 1_000, 1_000, 1_010, 100, 110),
            // A Date in the future gives no negative age.
            (0, Some(2_000), 1_000, 1_001, 1_001, 1, 1),
            // Age larger than the apparent age wins.
            (500, Some(900), 1_000, 1_000, 1_000, 500, 500),
            // No Date: only Age and the round trip.
            (5, None, 1_000, 1_003, 1_010, 8, 15),
            // Clocks going backwards never make ages negative.
            (0, None, 1_005, 1_000, 990, 0, 0),
        ];
        for &(age, date, req, resp, now, initial, current) in cases {
            let got = corrected_initial_age(s(age), date.map(at), at(req), at(resp));
            assert_eq!(got, s(initial), "{age} {date:?} {req} {resp}");
            assert_eq!(current_age(got, at(resp), at(now)), s(current), "{now}");
        }
        assert_eq!(apparent_age(at(10), at(25)), s(15));
        assert_eq!(apparent_age(at(25), at(10)), s(0));
        let max = u64::from(DELTA_SECONDS_OVERFLOW_VALUE);
        assert_eq!(current_age(s(max), at(0), at(1_000)), s(max));
    }
}
