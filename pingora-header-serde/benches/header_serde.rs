//! Size and speed of `HeaderSerde`.
//!
//! First prints the serialized size of the crate's sample heads (`samples/test/*`) against
//! their raw HTTP/1 wire size: without a dictionary, with a dictionary trained on the other
//! half of the samples (odd-numbered files train, even-numbered are measured, so the figure
//! is not flattered by measuring on the training data), and with one trained on all of them.
//! Then criterion measures serialize, deserialize and the round trip of a typical head.
//!
//! Run: `cargo bench -p pingora-header-serde --bench header_serde -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_header_serde::{dict, HeaderSerde};
use pingora_http::ResponseHeader;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/test")
}

/// The samples as (number, raw bytes), in number order.
fn samples() -> Vec<(u32, Vec<u8>)> {
    let mut samples: Vec<(u32, Vec<u8>)> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let number = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
            (number, std::fs::read(path).unwrap())
        })
        .collect();
    samples.sort();
    samples
}

/// Builds the header a raw sample head describes (status code and fields; these samples have
/// canonical reason phrases and HTTP/1.x versions).
fn parse(raw: &[u8]) -> ResponseHeader {
    let text = std::str::from_utf8(raw).unwrap();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let code: u16 = status_line[9..12].parse().unwrap();
    let mut resp = ResponseHeader::build(code, None).unwrap();
    if status_line.starts_with("HTTP/1.0") {
        resp.set_version(http::Version::HTTP_10);
    }
    for line in lines.take_while(|line| !line.is_empty()) {
        let (name, value) = line.split_once(": ").unwrap();
        resp.append_header(name.to_owned(), value).unwrap();
    }
    resp
}

/// Trains a dictionary on the samples whose number satisfies `pick`.
fn train_on(pick: impl Fn(u32) -> bool) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!("header-serde-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (number, raw) in samples().into_iter().filter(|(n, _)| pick(*n)) {
        std::fs::write(dir.join(number.to_string()), raw).unwrap();
    }
    let dictionary = dict::train(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    dictionary
}

fn report_sizes() {
    let measured: Vec<ResponseHeader> = samples()
        .into_iter()
        .filter(|(n, _)| n % 2 == 0)
        .map(|(_, raw)| parse(&raw))
        .collect();
    let raw: usize = samples()
        .into_iter()
        .filter(|(n, _)| n % 2 == 0)
        .map(|(_, raw)| raw.len())
        .sum();
    let held_out = train_on(|n| n % 2 == 1);
    let all = train_on(|_| true);
    println!(
        "sizes of {} sample heads ({} raw bytes, {:.0} per head):",
        measured.len(),
        raw,
        raw as f64 / measured.len() as f64
    );
    for (name, serde) in [
        ("no dictionary", HeaderSerde::new(None)),
        (
            "dictionary from the other samples",
            HeaderSerde::new(Some(held_out.clone())),
        ),
        (
            "dictionary from all samples",
            HeaderSerde::new(Some(all.clone())),
        ),
    ] {
        let total: usize = measured
            .iter()
            .map(|resp| serde.serialize(resp).unwrap().len())
            .sum();
        println!(
            "  {name:<34} {:>6.0} bytes per head, {:.3} of raw",
            total as f64 / measured.len() as f64,
            total as f64 / raw as f64
        );
    }
    println!(
        "  (dictionaries: {} and {} bytes)",
        held_out.len(),
        all.len()
    );
}

fn bench_round_trip(c: &mut Criterion) {
    report_sizes();
    let typical = parse(&samples()[0].1);
    let dictionary = train_on(|n| n % 2 == 1);
    let mut group = c.benchmark_group("header_serde");
    for (name, serde) in [
        ("no_dict", HeaderSerde::new(None)),
        ("dict", HeaderSerde::new(Some(dictionary))),
    ] {
        let stored = serde.serialize(&typical).unwrap();
        group.bench_function(format!("serialize/{name}"), |b| {
            b.iter(|| serde.serialize(black_box(&typical)).unwrap())
        });
        group.bench_function(format!("deserialize/{name}"), |b| {
            b.iter(|| serde.deserialize(black_box(&stored)).unwrap())
        });
        group.bench_function(format!("round_trip/{name}"), |b| {
            b.iter(|| {
                let stored = serde.serialize(black_box(&typical)).unwrap();
                serde.deserialize(&stored).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_round_trip);
criterion_main!(benches);
