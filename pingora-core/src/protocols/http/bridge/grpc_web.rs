//! The gRPC-web bridge: serves gRPC-web clients (browsers) from gRPC servers.
//!
//! gRPC-web ([the protocol](https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md)) is
//! gRPC ([over HTTP/2](https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md)) made
//! usable from a browser, which can neither send HTTP/2 trailers nor read them:
//!
//! * the request's `Content-Type` is `application/grpc-web` (or `application/grpc-web+proto`
//!   ...) where gRPC has `application/grpc`;
//! * the response's trailers (`grpc-status`, `grpc-message` ...) travel at the end of the body,
//!   in a frame of their own: flag byte `0x80`, a 4-byte big-endian length, then the fields as
//!   `name: value\r\n` lines;
//! * in text mode (`application/grpc-web-text`) both bodies are base64.
//!
//! [`GrpcWebCtx`] makes these changes to one request and its response. The proxy's
//! [`GrpcWebBridge`](crate::modules::http::grpc_web::GrpcWebBridge) module runs it.

#[cfg(test)]
mod tests;
mod text;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, TE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

/// The gRPC content type, and the start of its `+proto`-like variants.
const GRPC: &[u8] = b"application/grpc";

/// The gRPC-web content type.
const GRPC_WEB: &[u8] = b"application/grpc-web";

/// What follows [`GRPC_WEB`] in the text-mode content type.
const TEXT: &[u8] = b"-text";

/// The flag byte of the gRPC-web trailer frame: an uncompressed frame of trailers.
const TRAILER_FRAME_FLAG: u8 = 0x80;

/// Flag byte and length of a gRPC(-web) frame.
const FRAME_HEAD_LEN: usize = 5;

/// Where a request is in the bridge.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not enabled for this request ([`GrpcWebCtx::init`] was not called), or not gRPC-web.
    #[default]
    Disabled,
    /// Enabled; the request head was not seen yet.
    Init,
    /// The request was turned into gRPC; waiting for the response head.
    Upgrade,
    /// The response is gRPC and is being turned into gRPC-web; waiting for the trailers.
    Trailers,
    /// The trailers were written into the body.
    Done,
}

/// The body encoding of one direction of a gRPC-web exchange.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// `application/grpc-web`: the gRPC frames as they are.
    #[default]
    Binary,
    /// `application/grpc-web-text`: the frames in base64.
    Text,
}

/// The state of the gRPC-web bridge for one request.
///
/// Disabled until [`init`](Self::init) is called, which an application does for the requests
/// it wants bridged (typically all of them, in `early_request_filter`). Then:
///
/// * [`request_header_filter`](Self::request_header_filter) turns a gRPC-web request head into
///   a gRPC one and leaves any other request alone (and the bridge disabled);
/// * [`request_body_filter`](Self::request_body_filter) decodes a text-mode request body;
/// * [`response_header_filter`](Self::response_header_filter) turns a gRPC response head into
///   the gRPC-web form the client used (a response that is not gRPC disables the bridge);
/// * [`response_body_filter`](Self::response_body_filter) encodes a text-mode response body;
/// * [`response_trailer_filter`](Self::response_trailer_filter) returns the trailers as the
///   gRPC-web trailer frame, the last bytes of the body.
///
/// A trailers-only gRPC response (`grpc-status` in the head, no body) keeps its status fields in
/// the head, where gRPC-web clients read them.
///
/// ```
/// use pingora_core::protocols::http::bridge::grpc_web::GrpcWebCtx;
/// use pingora_http::{RequestHeader, ResponseHeader};
///
/// let mut grpc = GrpcWebCtx::default();
/// grpc.init();
///
/// let mut req = RequestHeader::build("POST", b"/echo.Echo/Say", None).unwrap();
/// req.insert_header("content-type", "application/grpc-web+proto").unwrap();
/// grpc.request_header_filter(&mut req);
/// assert_eq!(req.headers["content-type"], "application/grpc+proto");
/// assert_eq!(req.headers["te"], "trailers");
///
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("content-type", "application/grpc+proto").unwrap();
/// grpc.response_header_filter(&mut resp);
/// assert_eq!(resp.headers["content-type"], "application/grpc-web+proto");
///
/// let mut trailers = http::HeaderMap::new();
/// trailers.insert("grpc-status", "0".parse().unwrap());
/// let frame = grpc.response_trailer_filter(&mut trailers).unwrap().unwrap();
/// assert_eq!(&frame[..], b"\x80\x00\x00\x00\x10grpc-status: 0\r\n");
/// ```
#[derive(Debug, Default)]
pub struct GrpcWebCtx {
    state: State,
    /// How the client encodes the request body.
    request: Encoding,
    /// How the client wants the response body encoded.
    response: Encoding,
    decoder: text::Decoder,
    encoder: text::Encoder,
}

impl GrpcWebCtx {
    /// Enables the bridge for this request. Call it before the request head is filtered.
    pub fn init(&mut self) {
        *self = GrpcWebCtx {
            state: State::Init,
            ..GrpcWebCtx::default()
        };
    }

    /// Turns a gRPC-web request head into a gRPC one: `Content-Type` `application/grpc-web`,
    /// `application/grpc-web-text` (and their `+proto`-like variants) become
    /// `application/grpc` (with the same variant), `TE: trailers` is set, and a text-mode
    /// request loses its `Content-Length`, since decoding changes the body's length.
    ///
    /// Requests that are not gRPC-web are left alone, as are all requests when the bridge was
    /// not [`init`](Self::init)ed.
    pub fn request_header_filter(&mut self, req: &mut RequestHeader) {
        if self.state != State::Init {
            return;
        }
        let Some((encoding, variant)) = req
            .headers
            .get(CONTENT_TYPE)
            .and_then(|ct| parse_grpc_web(ct.as_bytes()))
        else {
            self.state = State::Disabled;
            return;
        };
        let wants_text = req
            .headers
            .get_all(ACCEPT)
            .iter()
            .any(|accept| accepts_text(accept.as_bytes()));
        self.request = encoding;
        self.response = if wants_text { Encoding::Text } else { encoding };

        let grpc = [GRPC, &variant].concat();
        // The values are made of bytes of valid header values, so inserting cannot fail.
        let _ = req.insert_header(CONTENT_TYPE, grpc);
        // gRPC servers require it: it tells them that the path to the client keeps trailers.
        let _ = req.insert_header(TE, HeaderValue::from_static("trailers"));
        if encoding == Encoding::Text {
            req.remove_header(&CONTENT_LENGTH);
        }
        // gRPC ends a request with an END_STREAM DATA frame, never on the HEADERS frame.
        req.set_send_end_stream(false);
        self.state = State::Upgrade;
    }

    /// Decodes a piece of a text-mode (`application/grpc-web-text`) request body in place; does
    /// nothing for other requests. The base64 groups may be split anywhere between pieces.
    ///
    /// # Errors
    ///
    /// [`ErrorType::HTTPStatus`]`(400)` if the body is not base64.
    pub fn request_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        // Once the request went upstream as gRPC, its whole body is decoded, whatever the
        // response turns out to be.
        if self.request != Encoding::Text {
            return Ok(());
        }
        let input = body.take();
        let decoded = self
            .decoder
            .decode(input.as_deref().unwrap_or_default(), end_of_stream)
            .map_err(|_| {
                Error::explain(
                    ErrorType::HTTPStatus(400),
                    "the body of a grpc-web-text request is not base64",
                )
                .into_down()
            })?;
        if input.is_some() || !decoded.is_empty() {
            *body = Some(decoded);
        }
        Ok(())
    }

    /// Turns a gRPC response head into the gRPC-web form the client used: `Content-Type`
    /// `application/grpc` becomes `application/grpc-web` (or `application/grpc-web-text`), with
    /// the same variant, and the body, which grows by the trailer frame, loses its
    /// `Content-Length` for chunked encoding.
    ///
    /// Informational responses pass unchanged; a final response that is not gRPC disables the
    /// bridge for the rest of the exchange.
    pub fn response_header_filter(&mut self, resp: &mut ResponseHeader) {
        if self.state != State::Upgrade || resp.status.is_informational() {
            return;
        }
        let Some(variant) = resp
            .headers
            .get(CONTENT_TYPE)
            .and_then(|ct| grpc_variant(ct.as_bytes()))
        else {
            self.state = State::Disabled;
            return;
        };
        let text: &[u8] = match self.response {
            Encoding::Binary => b"",
            Encoding::Text => TEXT,
        };
        let web = [GRPC_WEB, text, variant].concat();
        let _ = resp.insert_header(CONTENT_TYPE, web);
        resp.remove_header(&CONTENT_LENGTH);
        let _ = resp.insert_header(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        self.state = State::Trailers;
    }

    /// Encodes a piece of a text-mode response body in place; does nothing for other
    /// responses. Bytes that do not fill a base64 group wait for the next piece (or the
    /// trailers), so that padding comes only at the end.
    ///
    /// # Errors
    ///
    /// None at present; the signature matches the other body filters.
    pub fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if self.response != Encoding::Text || self.state != State::Trailers {
            return Ok(());
        }
        let input = body.take();
        let encoded = self
            .encoder
            .encode(input.as_deref().unwrap_or_default(), end_of_stream);
        if input.is_some() || !encoded.is_empty() {
            *body = Some(encoded);
        }
        if end_of_stream {
            // The body ended without trailers: there is nothing left to bridge.
            self.state = State::Done;
        }
        Ok(())
    }

    /// Turns the gRPC response trailers into the gRPC-web trailer frame and returns it (base64
    /// in text mode, after the rest of the body), to be sent as the last bytes of the body in
    /// place of the trailers. Field names are lowercase, as gRPC-web requires.
    ///
    /// Returns `None`, and disables the bridge, if the response is not being bridged.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] if the trailers do not fit in a frame (4 GiB).
    pub fn response_trailer_filter(
        &mut self,
        resp_trailers: &mut HeaderMap,
    ) -> Result<Option<Bytes>> {
        if self.state != State::Trailers {
            self.state = State::Disabled;
            return Ok(None);
        }
        let frame = trailer_frame(resp_trailers)?;
        self.state = State::Done;
        Ok(Some(match self.response {
            Encoding::Binary => frame,
            Encoding::Text => self.encoder.encode(&frame, true),
        }))
    }
}

/// The gRPC-web trailer frame of `trailers`.
fn trailer_frame(trailers: &HeaderMap) -> Result<Bytes> {
    // `HeaderName`s are lowercase already.
    let len: usize = trailers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let Ok(len32) = u32::try_from(len) else {
        return Error::e_explain(
            ErrorType::InvalidHTTPHeader,
            format!("gRPC trailers of {len} bytes do not fit a gRPC-web frame"),
        );
    };
    let mut frame = BytesMut::with_capacity(FRAME_HEAD_LEN + len);
    frame.put_u8(TRAILER_FRAME_FLAG);
    frame.put_u32(len32);
    for (name, value) in trailers {
        frame.put_slice(name.as_str().as_bytes());
        frame.put_slice(b": ");
        frame.put_slice(value.as_bytes());
        frame.put_slice(b"\r\n");
    }
    Ok(frame.freeze())
}

/// The encoding and the lowercased variant (`+proto`, `; charset=...`, or nothing) of a gRPC-web
/// content type; `None` for any other content type.
fn parse_grpc_web(content_type: &[u8]) -> Option<(Encoding, Vec<u8>)> {
    let rest = strip_prefix_ignore_case(content_type, GRPC_WEB)?;
    let (encoding, variant) = match strip_prefix_ignore_case(rest, TEXT) {
        Some(variant) => (Encoding::Text, variant),
        None => (Encoding::Binary, rest),
    };
    is_variant(variant).then(|| (encoding, variant.to_ascii_lowercase()))
}

/// The variant of a gRPC content type (`application/grpc+proto` gives `+proto`); `None` for
/// any other content type, gRPC-web included.
fn grpc_variant(content_type: &[u8]) -> Option<&[u8]> {
    strip_prefix_ignore_case(content_type, GRPC).filter(|variant| is_variant(variant))
}

/// Whether `rest`, what follows a gRPC base type, is a variant or parameters (or nothing), not
/// more of another type's name (`application/grpc-webx`).
fn is_variant(rest: &[u8]) -> bool {
    matches!(rest.first(), None | Some(b'+' | b';' | b' '))
}

/// Whether an `Accept` value asks for a text-mode (base64) response.
fn accepts_text(accept: &[u8]) -> bool {
    accept.split(|&b| b == b',').any(|item| {
        let item = item.trim_ascii_start();
        parse_grpc_web(item).is_some_and(|(encoding, _)| encoding == Encoding::Text)
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}
