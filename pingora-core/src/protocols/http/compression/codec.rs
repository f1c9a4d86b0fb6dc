//! The streaming encoders and decoders behind [`Encode`]: gzip (`flate2`), brotli (`brotli`)
//! and zstd (`zstd`), each driven through its `io::Write` adapter into a buffer this module
//! drains after every call.
//!
//! Every call to [`Encode::encode`] flushes the codec, so what a chunk of input produces leaves
//! with that chunk: a slowly streamed response (server-sent events, long polling) reaches the
//! client as it is produced instead of waiting for the encoder's block to fill. The cost is a few
//! bytes per chunk and slightly worse compression when chunks are tiny.
//!
//! Decoders bound what one call may produce ([`MAX_DECOMPRESSION_RATIO`] times its input, plus
//! 1 MiB), so a small compressed chunk cannot make the proxy allocate without limit (a
//! "decompression bomb"); past the bound the decoder fails and the response is passed on
//! without further decoding (see [`ResponseCompressionCtx`](super::ResponseCompressionCtx)).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora_error::{OrErr, Result};

use super::{Encode, COMPRESSION_ERROR};

/// The most a decoder may expand one call's input: deflate's own limit is about 1032:1, so
/// only brotli and zstd streams built to explode go past it.
pub const MAX_DECOMPRESSION_RATIO: usize = 1032;

/// Headroom on top of the ratio bound, for tiny inputs.
const DECODE_SLACK: usize = 1 << 20;

/// Decoders take their input in pieces of this size, so the output bound is checked before a
/// piece can expand far past it.
const DECODE_PIECE: usize = 512;

/// The largest zstd window a client must support for `Content-Encoding: zstd` (RFC 9659
/// section 3: 8 MiB); encoders stay within it and decoders refuse larger.
const ZSTD_WINDOW_LOG: u32 = 23;

/// The brotli window (log2 of its size) the encoder uses: brotli's default.
const BROTLI_WINDOW_LOG: u32 = 22;

/// The brotli encoder's internal buffer.
const BROTLI_BUFFER: usize = 4096;

/// A codec's `io::Write` adapter over a `Vec<u8>`, as the streaming driver needs it.
trait Sink: Write + Send + Sync {
    /// The output produced so far and not yet taken.
    fn output(&mut self) -> &mut Vec<u8>;
    /// Ends the stream; returns the remaining output.
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>>;
}

impl Sink for flate2::write::GzEncoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        (*self).finish()
    }
}

impl Sink for flate2::write::MultiGzDecoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        (*self).finish()
    }
}

impl Sink for brotli::CompressorWriter<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        Ok((*self).into_inner())
    }
}

impl Sink for brotli::DecompressorWriter<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        // A stream cut short is an error, not a clean end.
        (*self)
            .into_inner()
            .map_err(|_| io::Error::new(io::ErrorKind::UnexpectedEof, "truncated brotli stream"))
    }
}

impl Sink for zstd::stream::write::Encoder<'static, Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn finish(self: Box<Self>) -> io::Result<Vec<u8>> {
        (*self).finish()
    }
}

/// A zstd decoder over zstd's raw streaming API, which tells when a frame ends (the `Write`
/// adapter does not, and a stream cut inside a frame must fail rather than end cleanly).
struct ZstdDecoder {
    raw: zstd::stream::raw::Decoder<'static>,
    out: Vec<u8>,
    /// No frame is half decoded (true before any input: an empty body is a clean one).
    frame_done: bool,
}

impl ZstdDecoder {
    /// Decodes `input` into `out`, draining the decoder until it has nothing more to give.
    fn decode(&mut self, input: &[u8]) -> io::Result<()> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut input = InBuffer::around(input);
        loop {
            self.out.reserve(32 * 1024);
            let start = self.out.len();
            let mut output = OutBuffer::around_pos(&mut self.out, start);
            let consumed = input.pos();
            let hint = self.raw.run(&mut input, &mut output)?;
            // A full output buffer may hide more output; otherwise, once the input is
            // consumed, the decoder has given all it can.
            let full = output.pos() == output.capacity();
            let progressed = output.pos() > start || input.pos() > consumed;
            // Hint 0: a frame just ended. A call that did nothing says nothing about it.
            if progressed {
                self.frame_done = hint == 0;
            }
            if input.pos() == input.src.len() && !full {
                return Ok(());
            }
        }
    }
}

impl Write for ZstdDecoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.decode(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.decode(&[])
    }
}

impl Sink for ZstdDecoder {
    fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }
    fn finish(mut self: Box<Self>) -> io::Result<Vec<u8>> {
        self.decode(&[])?;
        if !self.frame_done {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated zstd stream",
            ));
        }
        Ok(std::mem::take(&mut self.out))
    }
}

/// Drives one codec: feeds input, flushes, drains output, keeps statistics.
pub(super) struct Streaming {
    name: &'static str,
    sink: Option<Box<dyn Sink>>,
    /// Decoders: check the output bound.
    decoding: bool,
    bytes_in: usize,
    bytes_out: usize,
    duration: Duration,
    /// Bytes written before the codec's own output (the dcz header), sent with the first
    /// output.
    preamble: Option<Vec<u8>>,
}

impl Streaming {
    fn new(name: &'static str, sink: Box<dyn Sink>, decoding: bool) -> Self {
        Streaming {
            name,
            sink: Some(sink),
            decoding,
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
            preamble: None,
        }
    }

    fn run(&mut self, input: &[u8], end: bool) -> io::Result<Vec<u8>> {
        let Some(sink) = self.sink.as_mut() else {
            // Already finished: nothing more can come out.
            return Ok(Vec::new());
        };
        if self.decoding {
            let bound = input
                .len()
                .saturating_mul(MAX_DECOMPRESSION_RATIO)
                .saturating_add(DECODE_SLACK);
            for piece in input.chunks(DECODE_PIECE) {
                sink.write_all(piece)?;
                if sink.output().len() > bound {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "decompressed data exceeds the expansion bound",
                    ));
                }
            }
        } else {
            sink.write_all(input)?;
        }
        let mut out = if end {
            let sink = self.sink.take().expect("checked above");
            sink.finish()?
        } else {
            sink.flush()?;
            let buf = sink.output();
            let capacity = buf.capacity();
            std::mem::replace(buf, Vec::with_capacity(capacity.min(64 * 1024)))
        };
        if let Some(mut preamble) = self.preamble.take() {
            preamble.append(&mut out);
            out = preamble;
        }
        Ok(out)
    }
}

impl Encode for Streaming {
    fn encode(&mut self, input: &[u8], end: bool) -> Result<Bytes> {
        let start = Instant::now();
        let result = self.run(input, end);
        self.duration += start.elapsed();
        let out = result
            .or_err_with(COMPRESSION_ERROR, || format!("{} failed", self.name))
            .inspect_err(|_| self.sink = None)?;
        self.bytes_in += input.len();
        self.bytes_out += out.len();
        Ok(Bytes::from(out))
    }

    fn stat(&self) -> (&'static str, usize, usize, Duration) {
        (self.name, self.bytes_in, self.bytes_out, self.duration)
    }
}

/// A gzip encoder at `level` (1-9; higher is clamped).
pub(super) fn gzip_encoder(level: u32) -> Streaming {
    let level = flate2::Compression::new(level.clamp(1, 9));
    let sink = flate2::write::GzEncoder::new(Vec::new(), level);
    Streaming::new("gzip", Box::new(sink), false)
}

/// A gzip decoder (several concatenated members are one stream, as RFC 1952 allows).
pub(super) fn gzip_decoder() -> Streaming {
    let sink = flate2::write::MultiGzDecoder::new(Vec::new());
    Streaming::new("de-gzip", Box::new(sink), true)
}

/// A brotli encoder at `level` (0-11; higher is clamped).
pub(super) fn brotli_encoder(level: u32) -> Streaming {
    let sink =
        brotli::CompressorWriter::new(Vec::new(), BROTLI_BUFFER, level.min(11), BROTLI_WINDOW_LOG);
    Streaming::new("br", Box::new(sink), false)
}

/// A brotli decoder.
pub(super) fn brotli_decoder() -> Streaming {
    let sink = brotli::DecompressorWriter::new(Vec::new(), BROTLI_BUFFER);
    Streaming::new("de-br", Box::new(sink), true)
}

/// A zstd encoder at `level` (1-22; higher is clamped), its window within 8 MiB.
pub(super) fn zstd_encoder(level: u32) -> Result<Streaming> {
    zstd_encoder_with(level, &[]).map(|sink| Streaming::new("zstd", Box::new(sink), false))
}

/// A zstd encoder with a raw-content dictionary (empty: none).
fn zstd_encoder_with(
    level: u32,
    dictionary: &[u8],
) -> Result<zstd::stream::write::Encoder<'static, Vec<u8>>> {
    let level = level.clamp(1, 22) as i32;
    let mut encoder = zstd::stream::write::Encoder::with_dictionary(Vec::new(), level, dictionary)
        .or_err(COMPRESSION_ERROR, "zstd encoder")?;
    // Levels 18 and up would pick larger windows than HTTP clients must accept.
    encoder
        .window_log(ZSTD_WINDOW_LOG.min(window_log_for(level)))
        .or_err(COMPRESSION_ERROR, "zstd window")?;
    // Not set: the checksum (RFC 9659 leaves it optional; TCP and TLS already check).
    Ok(encoder)
}

/// The window zstd itself picks for `level` on large inputs, at most the HTTP limit.
fn window_log_for(level: i32) -> u32 {
    match level {
        ..=1 => 19,
        2 => 20,
        3..=5 => 21,
        6..=17 => 22,
        _ => 23,
    }
}

/// A zstd decoder that refuses windows over 8 MiB.
pub(super) fn zstd_decoder() -> Result<Streaming> {
    use zstd::stream::raw::DParameter;
    let mut raw = zstd::stream::raw::Decoder::new().or_err(COMPRESSION_ERROR, "zstd decoder")?;
    raw.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG))
        .or_err(COMPRESSION_ERROR, "zstd window")?;
    let sink = ZstdDecoder {
        raw,
        out: Vec::new(),
        frame_done: true,
    };
    Ok(Streaming::new("de-zstd", Box::new(sink), true))
}

/// The magic number that starts a `dcz` response (RFC 9842 section 4: a zstd skippable frame
/// header carrying the dictionary's hash).
pub const DCZ_MAGIC: [u8; 8] = [0x5e, 0x2a, 0x4d, 0x18, 0x20, 0x00, 0x00, 0x00];

/// The size of a `dcz` response's header: the magic number, then the dictionary's SHA-256.
pub const DCZ_HEADER_SIZE: usize = DCZ_MAGIC.len() + 32;

/// A `dcz` encoder: zstd with `dictionary`, its output preceded by the header naming the
/// dictionary by `hash`.
pub(super) fn dcz_encoder(level: u32, dictionary: &[u8], hash: [u8; 32]) -> Result<Streaming> {
    let sink = zstd_encoder_with(level, dictionary)?;
    let mut streaming = Streaming::new("dcz", Box::new(sink), false);
    let mut preamble = Vec::with_capacity(DCZ_HEADER_SIZE);
    preamble.extend_from_slice(&DCZ_MAGIC);
    preamble.extend_from_slice(&hash);
    streaming.preamble = Some(preamble);
    Ok(streaming)
}
