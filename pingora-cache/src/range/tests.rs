use super::*;
use proptest::prelude::*;

fn single(r: Range<u64>) -> RangeType {
    RangeType::Single(r)
}

#[test]
fn parse_table() {
    use RangeType::{None as Full, Unsatisfiable as U416};
    // (Range value, content length, result)
    let cases: Vec<(&str, u64, RangeType)> = vec![
        ("bytes=0-0", 10, single(0..1)),
        ("bytes=0-9", 10, single(0..10)),
        ("bytes=0-99", 10, single(0..10)),
        ("bytes=5-", 10, single(5..10)),
        ("bytes=-3", 10, single(7..10)),
        ("bytes=-30", 10, single(0..10)),
        ("BYTES = 1-2", 10, single(1..3)),
        (" bytes=1-2 ", 10, single(1..3)),
        ("bytes= 1 - 2 ", 10, single(1..3)),
        ("bytes=1-2,", 10, single(1..3)),
        ("bytes=,1-2", 10, single(1..3)),
        // Several ranges, in order; unsatisfiable members are dropped.
        ("bytes=0-1,4-5", 10, RangeType::Multi(vec![0..2, 4..6])),
        ("bytes=0-1, -2", 10, RangeType::Multi(vec![0..2, 8..10])),
        ("bytes=5-1000,0-0", 10, RangeType::Multi(vec![5..10, 0..1])),
        ("bytes=0-1,20-30", 10, single(0..2)),
        (
            "bytes=0-1,1-2,2-3",
            10,
            RangeType::Multi(vec![0..2, 1..3, 2..4]),
        ),
        ("bytes=0-0,1-1,2-2,3-3", 10, Full),
        // Unsatisfiable.
        ("bytes=10-", 10, U416),
        ("bytes=10-20", 10, U416),
        ("bytes=-0", 10, U416),
        ("bytes=0-", 0, U416),
        ("bytes=-5", 0, U416),
        ("bytes=99999999999999999999999-", 10, U416),
        ("bytes=0-99999999999999999999999", 10, single(0..10)),
        // Invalid: ignored.
        ("bytes=5-1", 10, Full),
        ("bytes=0-1,5-1", 10, Full),
        ("bytes=", 10, Full),
        ("bytes=,", 10, Full),
        ("bytes=-", 10, Full),
        ("bytes=a-b", 10, Full),
        ("bytes=1", 10, Full),
        ("bytes=+1-2", 10, Full),
        ("bytes=1-2-3", 10, Full),
        ("items=0-1", 10, Full),
        ("0-1", 10, Full),
        ("", 10, Full),
    ];
    for (value, len, expected) in cases {
        assert_eq!(
            parse_range_header(value.as_bytes(), len, 3),
            expected,
            "{value} {len}"
        );
    }
}

use crate::test_util::header_map as headers;

#[test]
fn hit_rules() {
    let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
    let later = "Sun, 06 Nov 1994 08:49:38 GMT";
    let stored = headers(&[("etag", "\"v1\""), ("last-modified", lm), ("date", later)]);
    let get = Method::GET;
    // (method, request fields, stored status, result)
    type Case<'a> = (&'a Method, &'a [(&'a str, &'a str)], u16, RangeType);
    let cases: &[Case<'_>] = &[
        (&get, &[("range", "bytes=0-1")], 200, single(0..2)),
        (
            &Method::HEAD,
            &[("range", "bytes=0-1")],
            200,
            RangeType::None,
        ),
        (&get, &[("range", "bytes=0-1")], 404, RangeType::None),
        (&get, &[("range", "bytes=0-1")], 206, RangeType::None),
        (&get, &[], 200, RangeType::None),
        (
            &get,
            &[("range", "bytes=0-1"), ("range", "bytes=2-3")],
            200,
            RangeType::None,
        ),
        (
            &get,
            &[("range", "bytes=0-1"), ("if-range", "\"v1\"")],
            200,
            single(0..2),
        ),
        (
            &get,
            &[("range", "bytes=0-1"), ("if-range", "\"v2\"")],
            200,
            RangeType::None,
        ),
        (
            &get,
            &[("range", "bytes=0-1"), ("if-range", "W/\"v1\"")],
            200,
            RangeType::None,
        ),
        (
            &get,
            &[("range", "bytes=0-1"), ("if-range", lm)],
            200,
            single(0..2),
        ),
        (
            &get,
            &[("range", "bytes=0-1"), ("if-range", later)],
            200,
            RangeType::None,
        ),
        (
            &get,
            &[("range", "bytes=0-1"), ("if-range", "garbage")],
            200,
            RangeType::None,
        ),
        (
            &get,
            &[("range", "bytes=50-"), ("if-range", "\"v1\"")],
            200,
            RangeType::Unsatisfiable,
        ),
    ];
    for (method, fields, status, expected) in cases {
        let status = StatusCode::from_u16(*status).unwrap();
        let got = range_for_hit(method, &headers(fields), status, &stored, 10, 4);
        assert_eq!(got, *expected, "{method} {fields:?} {status}");
    }
}

#[test]
fn content_range_values() {
    assert_eq!(content_range(Some(&(0..10)), 10), "bytes 0-9/10");
    assert_eq!(content_range(Some(&(5..6)), 10), "bytes 5-5/10");
    assert_eq!(content_range(None, 10), "bytes */10");
    assert_eq!(content_range(Some(&(3..3)), 10), "bytes */10");
}

#[test]
fn multipart_framing() {
    let m = Multipart::new("XYZ".into(), Some("text/plain".into()), 10);
    assert_eq!(m.content_type_value(), "multipart/byteranges; boundary=XYZ");
    assert_eq!(
        m.part_header(&(0..2)),
        "\r\n--XYZ\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n"
    );
    assert_eq!(m.end(), "\r\n--XYZ--\r\n");
    let body = b"0123456789";
    let ranges = [0..2, 5..10];
    let mut built = Vec::new();
    for r in &ranges {
        built.extend_from_slice(m.part_header(r).as_bytes());
        built.extend_from_slice(&body[r.start as usize..r.end as usize]);
    }
    built.extend_from_slice(m.end().as_bytes());
    assert_eq!(m.body_length(&ranges), built.len() as u64);

    let untyped = Multipart::new("b".into(), None, 3);
    assert_eq!(
        untyped.part_header(&(0..1)),
        "\r\n--b\r\nContent-Range: bytes 0-0/3\r\n\r\n"
    );
}

proptest! {
    #[test]
    fn ranges_stay_inside_the_body(value in "[ bytesBYTES=,0-9-]{0,40}", len in 0u64..50, max in 1usize..5) {
        match parse_range_header(value.as_bytes(), len, max) {
            RangeType::Single(r) => prop_assert!(r.start < r.end && r.end <= len),
            RangeType::Multi(ranges) => {
                prop_assert!(ranges.len() >= 2 && ranges.len() <= max);
                for r in ranges {
                    prop_assert!(r.start < r.end && r.end <= len);
                }
            }
            RangeType::None | RangeType::Unsatisfiable => {}
        }
    }

    #[test]
    fn single_ranges_match_a_plain_reading(first in 0u64..40, last in 0u64..40, len in 0u64..30) {
        let got = parse_range_header(format!("bytes={first}-{last}").as_bytes(), len, 1);
        let expected = if last < first {
            RangeType::None
        } else if first >= len {
            RangeType::Unsatisfiable
        } else {
            RangeType::Single(first..(last + 1).min(len))
        };
        prop_assert_eq!(got, expected);
    }
}
