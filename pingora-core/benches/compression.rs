//! Compression throughput on one core: our encoders and decoders through
//! [`Algorithm::compressor`] and [`Algorithm::decompressor`], a new codec per iteration (as per
//! response) fed 16 KiB at a time, as the proxy may feed them (each call flushes), over 1 MiB
//! of the repository's own text.
//!
//! Throughput is in bytes of uncompressed text per second, for encoders and decoders alike.
//! Before the runs it prints each setting's compressed size, fed in 16 KiB chunks and fed in
//! one call, so the cost of the per-chunk flush in ratio shows. `bench/compression.sh` runs it
//! next to the command-line tools on the same text (see docs/benchmarks.md, "Compression").
//!
//! The corpus: `docs/**/*.md`, then the Rust sources of pingora-http, pingora-proxy and
//! pingora-core, each directory's files in path order, cut at 1 MiB. With
//! `COMPRESSION_CORPUS_OUT=FILE` it is also written to `FILE`, and with
//! `COMPRESSION_SIZES_OUT=FILE` the compressed sizes as tab-separated lines (algorithm, level,
//! chunked size, one-call size, seconds of the one timed chunked pass).
//!
//! Brotli's level 11 runs at well under 1 MB/s: it gets its size and one timed pass, not
//! criterion's samples (about 30 s), unless `COMPRESSION_BROTLI_11=1`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingora_core::protocols::http::compression::{Algorithm, Encode};

/// The corpus size.
const CORPUS_BYTES: usize = 1 << 20;

/// The piece of body fed at a time. The proxy hands the codec what one read from the upstream
/// gave: up to 64 KiB over HTTP/1, often less (a TLS record holds 16 KiB, an HTTP/2 DATA frame
/// 16 KiB by default).
const CHUNK: usize = 16 * 1024;

/// The settings measured: algorithm and levels.
const SETTINGS: [(Algorithm, &[u32]); 3] = [
    (Algorithm::Gzip, &[1, 6, 9]),
    (Algorithm::Brotli, &[1, 4, 5, 11]),
    (Algorithm::Zstd, &[1, 3, 9, 19]),
];

/// Whether criterion samples `algorithm` at `level` (all but the slowest, unless asked).
fn sampled(algorithm: Algorithm, level: u32) -> bool {
    algorithm != Algorithm::Brotli
        || level < 11
        || std::env::var("COMPRESSION_BROTLI_11").is_ok_and(|v| v == "1")
}

/// The level whose output each decoder is measured on.
fn decoder_level(algorithm: Algorithm) -> u32 {
    match algorithm {
        Algorithm::Gzip => 6,
        Algorithm::Brotli => 4,
        _ => 3,
    }
}

/// The files under `dir` whose names end with `ext`, in path order.
fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.to_string_lossy().ends_with(ext) {
            out.push(path);
        }
    }
}

/// About 1 MiB of the repository's documentation and sources, the same for a given commit.
fn corpus() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate sits in the workspace");
    let mut files = Vec::new();
    files_under(&root.join("docs"), ".md", &mut files);
    for krate in ["pingora-http", "pingora-proxy", "pingora-core"] {
        files_under(&root.join(krate).join("src"), ".rs", &mut files);
    }
    let mut text = Vec::with_capacity(CORPUS_BYTES + (64 << 10));
    for file in files {
        if text.len() >= CORPUS_BYTES {
            break;
        }
        text.extend_from_slice(&fs::read(&file).expect("a readable repository file"));
    }
    assert!(
        text.len() >= CORPUS_BYTES,
        "the repository has 1 MiB of text"
    );
    text.truncate(CORPUS_BYTES);
    text
}

/// Runs `input` through `codec` in `chunk`-sized pieces, the last one ending the stream;
/// returns the output.
fn run(mut codec: Box<dyn Encode + Send + Sync>, input: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2);
    let mut pieces = input.chunks(chunk).peekable();
    while let Some(piece) = pieces.next() {
        let end = pieces.peek().is_none();
        out.extend_from_slice(
            &codec
                .encode(piece, end)
                .expect("the codec accepts its input"),
        );
    }
    out
}

fn encode(algorithm: Algorithm, level: u32, input: &[u8], chunk: usize) -> Vec<u8> {
    let encoder = algorithm.compressor(level).expect("a compressor");
    run(encoder, input, chunk)
}

fn decode(algorithm: Algorithm, input: &[u8]) -> Vec<u8> {
    let decoder = algorithm.decompressor(true).expect("a decompressor");
    run(decoder, input, CHUNK)
}

/// Prints (and with `COMPRESSION_SIZES_OUT`, writes) each setting's compressed sizes, checking
/// that each output decodes to the corpus.
fn report_sizes(corpus: &[u8]) {
    if let Ok(path) = std::env::var("COMPRESSION_CORPUS_OUT") {
        fs::write(&path, corpus).expect("the corpus file is writable");
    }
    println!("corpus: {} bytes", corpus.len());
    println!(
        "| algorithm | level | 16 KiB chunks: bytes | ratio | one call: bytes | ratio \
         | one chunked pass: MB/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut lines = String::new();
    for (algorithm, levels) in SETTINGS {
        for &level in levels {
            let start = Instant::now();
            let chunked = encode(algorithm, level, corpus, CHUNK);
            let seconds = start.elapsed().as_secs_f64();
            let whole = encode(algorithm, level, corpus, corpus.len());
            assert!(decode(algorithm, &chunked) == corpus, "round trip");
            let ratio = |n: usize| corpus.len() as f64 / n as f64;
            println!(
                "| {} | {level} | {} | {:.2} | {} | {:.2} | {:.1} |",
                algorithm.as_str(),
                chunked.len(),
                ratio(chunked.len()),
                whole.len(),
                ratio(whole.len()),
                corpus.len() as f64 / seconds / 1e6
            );
            lines.push_str(&format!(
                "{}\t{level}\t{}\t{}\t{seconds:.6}\n",
                algorithm.as_str(),
                chunked.len(),
                whole.len()
            ));
        }
    }
    if let Ok(path) = std::env::var("COMPRESSION_SIZES_OUT") {
        fs::write(&path, lines).expect("the sizes file is writable");
    }
}

fn bench_compression(c: &mut Criterion) {
    let corpus = corpus();
    report_sizes(&corpus);

    let mut group = c.benchmark_group("encode");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(corpus.len() as u64));
    for (algorithm, levels) in SETTINGS {
        for &level in levels.iter().filter(|&&l| sampled(algorithm, l)) {
            group.bench_with_input(
                BenchmarkId::new(algorithm.as_str(), level),
                &corpus,
                |b, corpus| b.iter(|| encode(algorithm, level, corpus, CHUNK)),
            );
        }
    }
    group.finish();

    let mut group = c.benchmark_group("decode");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(corpus.len() as u64));
    for (algorithm, _) in SETTINGS {
        let encoded = encode(algorithm, decoder_level(algorithm), &corpus, CHUNK);
        group.bench_with_input(
            BenchmarkId::from_parameter(algorithm.as_str()),
            &encoded,
            |b, encoded| b.iter(|| decode(algorithm, encoded)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench_compression);
criterion_main!(benches);
