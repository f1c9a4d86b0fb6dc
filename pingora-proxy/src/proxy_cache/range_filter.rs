//! Range requests answered by the proxy when the cache handles a request: the default
//! `range_header_filter` and the body filter that cuts the ranges out of a streamed body.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::{header, Method, StatusCode};
use pingora_cache::range::{content_range, range_for_hit, Multipart, RangeType};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::Session;

/// The default `range_header_filter`: decides the range answer for the request and rewrites
/// `resp` for it (206 with `Content-Range`, 206 `multipart/byteranges`, or 416).
///
/// A range is served only for GET, on a 200 whose length is known, when `If-Range` (if any)
/// matches. Several ranges are served as multipart only when they are in ascending order
/// and do not overlap (the body streams once); otherwise the full response is sent, as RFC
/// 9110 allows.
pub fn range_header_filter(session: &mut Session, resp: &mut ResponseHeader) -> RangeType {
    if session.ignore_downstream_range {
        return RangeType::None;
    }
    let max_ranges = session.cache.options().max_ranges;
    range_header_filter_with(session.req_header(), resp, max_ranges)
}

/// [`range_header_filter`] with the request and the most ranges given.
pub fn range_header_filter_with(
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    max_ranges: usize,
) -> RangeType {
    let Some(length) = content_length(resp) else {
        return RangeType::None;
    };
    let range = range_for_hit(
        &req.method,
        &req.headers,
        resp.status,
        &resp.headers,
        length,
        max_ranges,
    );
    match &range {
        RangeType::None => {}
        RangeType::Single(r) => {
            set_partial(resp, r.end - r.start);
            let _ = resp.insert_header(header::CONTENT_RANGE, content_range(Some(r), length));
        }
        RangeType::Multi(ranges) => {
            let ascending = ranges.windows(2).all(|w| w[0].end <= w[1].start);
            if !ascending {
                return RangeType::None;
            }
            let multipart = multipart_for(resp, length);
            set_partial(resp, multipart.body_length(ranges));
            let _ = resp.insert_header(header::CONTENT_TYPE, multipart.content_type_value());
        }
        RangeType::Unsatisfiable => {
            resp.set_status(StatusCode::RANGE_NOT_SATISFIABLE).ok();
            let _ = resp.insert_header(header::CONTENT_LENGTH, "0");
            let _ = resp.insert_header(header::CONTENT_RANGE, content_range(None, length));
            resp.remove_header(&header::CONTENT_TYPE);
        }
    }
    range
}

fn set_partial(resp: &mut ResponseHeader, body_length: u64) {
    resp.set_status(StatusCode::PARTIAL_CONTENT).ok();
    let _ = resp.insert_header(header::CONTENT_LENGTH, body_length.to_string());
}

/// The `Content-Length` of `resp`, when it has exactly one valid value.
pub(crate) fn content_length(resp: &ResponseHeader) -> Option<u64> {
    let mut values = resp.headers.get_all(header::CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.parse().ok()
}

/// The multipart framing for a body of `length` bytes; the boundary is derived from the
/// length and the process's random state, so that it is not predictable by a client.
fn multipart_for(resp: &ResponseHeader, length: u64) -> Multipart {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new().hash_one(length);
    let content_type = resp
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Multipart::new(format!("pingora-{seed:016x}"), content_type, length)
}

/// Cuts the requested ranges out of a body streamed from its first byte.
#[derive(Debug)]
pub(crate) struct RangeBodyFilter {
    ranges: Vec<Range<u64>>,
    multipart: Option<Multipart>,
    /// Index of the range being served.
    current: usize,
    /// Offset in the full body of the next byte to come.
    offset: u64,
    /// Whether the current range's part header was sent (multipart).
    part_started: bool,
}

impl RangeBodyFilter {
    /// The filter for the range answer `range` of a body of `length` bytes whose
    /// `Content-Type` was `original_type`; `resp` is the header the range filter rewrote
    /// (its multipart boundary is read from it). `None` when the whole body is sent.
    pub(crate) fn new(
        range: RangeType,
        length: u64,
        original_type: Option<String>,
        resp: &ResponseHeader,
    ) -> Option<Self> {
        let (ranges, multipart) = match range {
            RangeType::None => return None,
            RangeType::Single(r) => (vec![r], None),
            RangeType::Multi(ranges) => {
                let boundary = resp
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split("boundary=").nth(1))?
                    .to_string();
                (
                    ranges,
                    Some(Multipart::new(boundary, original_type, length)),
                )
            }
            RangeType::Unsatisfiable => (Vec::new(), None),
        };
        Some(RangeBodyFilter {
            ranges,
            multipart,
            current: 0,
            offset: 0,
            part_started: false,
        })
    }

    /// The single range served, if that is what this filter does.
    pub(crate) fn single(&self) -> Option<Range<u64>> {
        match (&self.multipart, self.ranges.as_slice()) {
            (None, [range]) => Some(range.clone()),
            _ => None,
        }
    }

    /// Skips the first `offset` bytes of the body (the reader was seeked there).
    pub(crate) fn starting_at(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// The part of `data` (the next bytes of the full body) the client gets; at `end`, the
    /// closing multipart delimiter is added.
    pub(crate) fn filter(&mut self, data: Option<Bytes>, end: bool) -> Option<Bytes> {
        let mut out = BytesMut::new();
        if let Some(data) = data {
            let start = self.offset;
            self.offset += data.len() as u64;
            while let Some(range) = self.ranges.get(self.current).cloned() {
                if range.start >= self.offset {
                    break;
                }
                if let (Some(multipart), false) = (&self.multipart, self.part_started) {
                    out.extend_from_slice(multipart.part_header(&range).as_bytes());
                    self.part_started = true;
                }
                let from = range.start.max(start);
                let to = range.end.min(self.offset);
                if from < to {
                    let (from, to) = ((from - start) as usize, (to - start) as usize);
                    out.extend_from_slice(&data[from..to]);
                }
                if range.end <= self.offset {
                    self.current += 1;
                    self.part_started = false;
                } else {
                    break;
                }
            }
        }
        if end {
            if let Some(multipart) = &self.multipart {
                if !self.ranges.is_empty() {
                    out.extend_from_slice(multipart.end().as_bytes());
                }
            }
        }
        (!out.is_empty()).then(|| out.freeze())
    }
}

/// Whether the request is one the range filter may answer: GET with a `Range`.
pub(crate) fn wants_range(req: &RequestHeader) -> bool {
    req.method == Method::GET && req.headers.contains_key(header::RANGE)
}
