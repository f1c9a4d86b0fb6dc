//! Header operations on a typical 10-header request: `RequestHeader` (which also records
//! name spellings) against a plain `http::HeaderMap` doing the same work, in the same run.
//!
//! Each baseline parses names and values from the same bytes as `append_header` does, so the
//! difference is the cost of keeping spellings. Every case has an untimed setup (building
//! the head it starts from) and a timed routine.
//!
//! Time: `cargo bench -p pingora-http --bench header` (add `-- --quick` for a fast look).
//! On a shared machine times are noisy, so the bench can also run one case a fixed number
//! of times for an instruction count, which load does not disturb:
//!
//! ```text
//! HEADER_BENCH_COUNT=wire_10/request_header:100000 valgrind --tool=callgrind \
//!     --callgrind-out-file=/dev/null target/release/deps/header-<hash>
//! ```
//!
//! Run it again with `:100000:setup` (the setup alone) and divide the difference of the two
//! totals by the count to get instructions per routine.

use std::hint::black_box;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use criterion::{BatchSize, Criterion};
use http::header::{HeaderName, HeaderValue};
use pingora_http::{HMap, RequestHeader};

/// What a browser sends, spelled as browsers do over HTTP/1.1.
const HEADERS: [(&str, &str); 10] = [
    ("Host", "www.example.com"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=4f2a9c1e; theme=dark"),
    ("Upgrade-Insecure-Requests", "1"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Request-ID", "6b1f0d0e-8c4e-4b43-9d55-6f1e2d3c4b5a"),
];

/// Headers a proxy's request filter overwrites: two present, one new.
const EDITS: [(&str, &str); 3] = [
    ("Host", "origin.internal"),
    ("X-Forwarded-For", "203.0.113.7, 198.51.100.2"),
    ("Via", "1.1 pingora"),
];

/// Hop-by-hop clean-up: one present in the middle, one present at the start, one absent.
const REMOVALS: [&str; 3] = ["connection", "host", "keep-alive"];

fn empty_ours() -> RequestHeader {
    RequestHeader::build("GET", b"/index.html", Some(HEADERS.len())).unwrap()
}

fn full_ours() -> RequestHeader {
    let mut req = empty_ours();
    append_ours(&mut req);
    req
}

fn append_ours(req: &mut RequestHeader) {
    for (name, value) in HEADERS {
        req.append_header(name, value).unwrap();
    }
}

fn empty_map() -> HMap {
    HMap::with_capacity(HEADERS.len())
}

fn full_map() -> HMap {
    let mut map = empty_map();
    append_map(&mut map);
    map
}

fn append_map(map: &mut HMap) {
    for (name, value) in HEADERS {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
}

/// The buffer a head is written to.
fn out_buf() -> BytesMut {
    BytesMut::with_capacity(4096)
}

/// The baseline writer: lowercase names straight from the map.
fn write_plain(map: &HMap, buf: &mut BytesMut) {
    for (name, value) in map {
        buf.put_slice(name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_slice(b"\r\n");
    }
}

/// A head with the same headers whose map was edited through `DerefMut`, so the writer has
/// to look spellings up by name.
fn edited_ours() -> RequestHeader {
    let mut req = full_ours();
    req.headers.remove("host");
    req.headers
        .insert("host", HeaderValue::from_static("www.example.com"));
    req
}

/// Something that runs a case: criterion, or a fixed-count loop.
trait Runner {
    fn run<S>(&mut self, id: &str, setup: fn() -> S, routine: fn(&mut S));
}

fn cases(r: &mut impl Runner) {
    r.run("append_10/http_headermap", empty_map, append_map);
    r.run("append_10/request_header", empty_ours, append_ours);

    r.run("insert_3_of_10/http_headermap", full_map, |map| {
        for (name, value) in EDITS {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
    });
    r.run("insert_3_of_10/request_header", full_ours, |req| {
        for (name, value) in EDITS {
            req.insert_header(name, value).unwrap();
        }
    });

    r.run("remove_3_of_10/http_headermap", full_map, |map| {
        for name in REMOVALS {
            black_box(map.remove(name));
        }
    });
    r.run("remove_3_of_10/request_header", full_ours, |req| {
        for name in REMOVALS {
            black_box(req.remove_header(name));
        }
    });

    r.run(
        "wire_10/http_headermap",
        || (full_map(), out_buf()),
        |(map, buf)| {
            buf.clear();
            write_plain(black_box(map), buf);
        },
    );
    r.run(
        "wire_10/request_header",
        || (full_ours(), out_buf()),
        |(req, buf)| {
            buf.clear();
            black_box(&*req).header_to_h1_wire(buf);
        },
    );
    r.run(
        "wire_10/request_header_no_case",
        || (RequestHeader::from(full_ours().as_owned_parts()), out_buf()),
        |(req, buf)| {
            buf.clear();
            black_box(&*req).header_to_h1_wire(buf);
        },
    );
    r.run(
        "wire_10/request_header_after_deref_mut",
        || (edited_ours(), out_buf()),
        |(req, buf)| {
            buf.clear();
            black_box(&*req).header_to_h1_wire(buf);
        },
    );
}

struct CriterionRunner(Criterion);

impl Runner for CriterionRunner {
    fn run<S>(&mut self, id: &str, setup: fn() -> S, routine: fn(&mut S)) {
        self.0.bench_function(id, |b| {
            b.iter_batched_ref(setup, routine, BatchSize::SmallInput)
        });
    }
}

/// Runs one case `count` times, setup included (and routine excluded with `setup_only`).
struct CountRunner {
    id: String,
    count: usize,
    setup_only: bool,
}

impl Runner for CountRunner {
    fn run<S>(&mut self, id: &str, setup: fn() -> S, routine: fn(&mut S)) {
        if id != self.id {
            return;
        }
        for _ in 0..self.count {
            let mut state = setup();
            if !self.setup_only {
                routine(&mut state);
            }
            black_box(state);
        }
        eprintln!("ran {id} {} times", self.count);
    }
}

fn main() {
    if let Ok(spec) = std::env::var("HEADER_BENCH_COUNT") {
        let mut parts = spec.split(':');
        let id = parts.next().unwrap_or_default().to_owned();
        let count = parts.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
        let setup_only = parts.next() == Some("setup");
        cases(&mut CountRunner {
            id,
            count,
            setup_only,
        });
        return;
    }
    let criterion = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut runner = CriterionRunner(criterion);
    cases(&mut runner);
    runner.0.final_summary();
}
