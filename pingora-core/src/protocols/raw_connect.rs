//! CONNECT tunnels through an HTTP proxy ([RFC 9110 section 9.3.6]).
//!
//! [`connect`] sends `CONNECT host:port HTTP/1.1` on a stream to the proxy and reads the
//! proxy's answer: a 2xx turns the stream into a tunnel to `host:port`; anything else is a
//! [`ErrorType::ConnectProxyFailure`] whose cause is a [`ConnectProxyError`] carrying the
//! response.
//!
//! [RFC 9110 section 9.3.6]: https://www.rfc-editor.org/rfc/rfc9110#section-9.3.6

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use http::StatusCode;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h1::head::{parse_response, ResponseHead};
use pingora_http_codec::h1::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::protocols::{PrefixedStream, ProxyDigest, Stream};

/// A hook that may attach user data to the [`ProxyDigest`] of a CONNECT tunnel. It is given
/// the CONNECT request and the proxy's response. (Also at `upstreams::peer`, where peers
/// carry it.)
pub type ProxyDigestUserDataHook = Arc<
    dyn Fn(&http::request::Parts, &ResponseHeader) -> Option<Box<dyn Any + Send + Sync>>
        + Send
        + Sync
        + 'static,
>;

/// What [`connect`] needs of the peer it tunnels to: its user-data hook. Every
/// [`Peer`](crate::upstreams::peer::Peer) is one.
pub trait ConnectPeer {
    /// The hook that attaches user data to the tunnel's [`ProxyDigest`], if any.
    fn connect_user_data_hook(&self) -> Option<&ProxyDigestUserDataHook>;
}

/// The most bytes of response head read from a proxy.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header fields in a proxy's response.
const MAX_HEADERS: usize = 128;

/// The request `CONNECT host:port HTTP/1.1`, with a `Host` header naming the same authority
/// and then `headers` (a `Host` among them replaces the default one).
///
/// An IPv6 `host` is put in brackets.
///
/// # Errors
///
/// [`ErrorType::InvalidHTTPHeader`] if a header name or value is invalid.
pub fn generate_connect_header<'a, H, S>(
    host: &str,
    port: u16,
    headers: H,
) -> Result<Box<RequestHeader>>
where
    S: AsRef<[u8]>,
    H: Iterator<Item = (S, &'a Vec<u8>)>,
{
    let authority = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut req = RequestHeader::build(http::Method::CONNECT, authority.as_bytes(), None)?;
    req.insert_header(http::header::HOST, authority.as_str())?;
    for (name, value) in headers {
        let name = String::from_utf8_lossy(name.as_ref()).into_owned();
        if name.eq_ignore_ascii_case("host") {
            req.insert_header(name, value.as_slice())?;
        } else {
            req.append_header(name, value.as_slice())?;
        }
    }
    Ok(Box::new(req))
}

/// Sends `request_header` (a CONNECT request) on `stream` to a proxy and reads the answer.
///
/// On a 2xx answer, returns the tunnel and a [`ProxyDigest`] of the response, with the user
/// data of the peer's
/// [`proxy_digest_user_data_hook`](crate::upstreams::peer::Peer::proxy_digest_user_data_hook).
/// Bytes the proxy sent after its response head belong to the tunnel: the returned stream
/// reads them first.
///
/// # Errors
///
/// [`ErrorType::ConnectProxyFailure`] with a [`ConnectProxyError`] cause if the proxy answers
/// other than 2xx; [`ErrorType::InvalidHTTPHeader`] for a malformed or too large response
/// head; [`ErrorType::ConnectionClosed`] if the proxy closes before answering;
/// [`ErrorType::WriteError`] or [`ErrorType::ReadError`] for I/O failures. All are blamed on
/// the upstream.
pub async fn connect<P: ConnectPeer>(
    stream: Stream,
    request_header: &RequestHeader,
    peer: &P,
) -> Result<(Stream, ProxyDigest)> {
    let mut stream = stream;
    let mut wire = BytesMut::with_capacity(128 + request_header.headers.len() * 32);
    wire.put_slice(request_header.method.as_str().as_bytes());
    wire.put_u8(b' ');
    wire.put_slice(request_header.raw_path());
    wire.put_slice(b" HTTP/1.1\r\n");
    request_header.header_to_h1_wire(&mut wire);
    wire.put_slice(b"\r\n");
    stream
        .write_all(&wire)
        .await
        .or_err(ErrorType::WriteError, "while sending CONNECT to the proxy")
        .map_err(Error::into_up)?;
    stream
        .flush()
        .await
        .or_err(ErrorType::WriteError, "while sending CONNECT to the proxy")
        .map_err(Error::into_up)?;

    let (response, rest) = read_response(&mut stream).await?;
    if !response.status.is_success() {
        let status = response.status;
        return Err(Error::because(
            ErrorType::ConnectProxyFailure,
            format!("CONNECT proxy answered {status}"),
            // By value, so that the cause downcasts to `ConnectProxyError`.
            ConnectProxyError {
                response: Box::new(response),
            },
        )
        .into_up());
    }
    let user_data = peer
        .connect_user_data_hook()
        .and_then(|hook| hook(request_header, &response));
    let mut digest = ProxyDigest::new(Box::new(response));
    digest.user_data = user_data;
    Ok((PrefixedStream::prepend(stream, rest), digest))
}

/// Reads the proxy's final response head, skipping interim (1xx) responses. Returns the
/// head and whatever was read after it.
async fn read_response(stream: &mut Stream) -> Result<(ResponseHeader, Bytes)> {
    let mut buf = BytesMut::with_capacity(1024);
    let limits = Limits::default()
        .max_headers(MAX_HEADERS)
        .max_header_bytes(MAX_HEAD_BYTES);
    loop {
        // Not strict about `Content-Length`: the body, if any, is not read.
        while let Some(ResponseHead {
            header: response, ..
        }) = parse_response(&mut buf, &limits, false)?
        {
            // Interim responses precede the real one (RFC 9110 section 15.2).
            if response.status.is_informational()
                && response.status != StatusCode::SWITCHING_PROTOCOLS
            {
                continue;
            }
            return Ok((response, buf.freeze()));
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(Error::explain(
                ErrorType::InvalidHTTPHeader,
                "CONNECT proxy response head too large",
            )
            .into_up());
        }
        buf.reserve(4096);
        let n = stream
            .read_buf(&mut buf)
            .await
            .or_err(
                ErrorType::ReadError,
                "while reading the CONNECT proxy response",
            )
            .map_err(Error::into_up)?;
        if n == 0 {
            return Err(Error::explain(
                ErrorType::ConnectionClosed,
                "CONNECT proxy closed the connection before answering",
            )
            .into_up());
        }
    }
}

/// The cause of a [`ErrorType::ConnectProxyFailure`]: the proxy refused the tunnel with this
/// response.
#[derive(Debug)]
pub struct ConnectProxyError {
    /// The proxy's response.
    pub response: Box<ResponseHeader>,
}

// === impl ConnectProxyError ===

impl ConnectProxyError {
    /// A boxed error for `response`.
    pub fn boxed_new(response: Box<ResponseHeader>) -> Box<Self> {
        Box::new(ConnectProxyError { response })
    }
}

impl fmt::Display for ConnectProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CONNECT proxy refused the tunnel: {}",
            self.response.status
        )
    }
}

impl std::error::Error for ConnectProxyError {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use http::Version;

    use super::*;
    use crate::upstreams::peer::HttpPeer;

    #[test]
    fn connect_header() {
        let req =
            generate_connect_header("example.com", 80, std::iter::empty::<(&String, &Vec<u8>)>())
                .unwrap();
        assert_eq!(req.method, http::Method::CONNECT);
        assert_eq!(req.raw_path(), b"example.com:80");
        assert_eq!(req.headers["host"], "example.com:80");

        let mut extra = BTreeMap::new();
        extra.insert("HOST".to_string(), b"override:1".to_vec());
        extra.insert("X-A".to_string(), b"1".to_vec());
        let req = generate_connect_header("::1", 443, extra.iter()).unwrap();
        assert_eq!(req.raw_path(), b"[::1]:443");
        assert_eq!(req.headers.get_all("host").iter().count(), 1);
        assert_eq!(req.headers["host"], "override:1");
        assert_eq!(req.headers["x-a"], "1");

        let mut bad = BTreeMap::new();
        bad.insert("X-Bad".to_string(), b"a\r\nb".to_vec());
        let err = generate_connect_header("h", 1, bad.iter()).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader);
    }

    /// Runs a CONNECT exchange against a proxy that answers with `answer`, in pieces, then
    /// hangs up.
    async fn exchange(answer: &'static [&'static [u8]]) -> Result<(Stream, ProxyDigest)> {
        let (client, mut proxy) = tokio::io::duplex(4096);
        let peer = HttpPeer::new("127.0.0.1:1", false, String::new());
        let req =
            generate_connect_header("10.0.0.1", 443, std::iter::empty::<(&String, &Vec<u8>)>())
                .unwrap();
        let server = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let n = proxy.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n"));
            assert!(buf[..n].ends_with(b"\r\n\r\n"));
            for piece in answer {
                proxy.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let result = connect(Box::new(client), &req, &peer).await;
        server.await.unwrap();
        result
    }

    #[tokio::test]
    async fn interim_responses_are_skipped_and_the_rest_is_kept() {
        let result = exchange(&[
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 2",
            b"00 Fine\r\nVia: p\r\n\r\ntun",
            b"nel",
        ])
        .await;
        let (mut stream, digest) = result.unwrap();
        assert_eq!(digest.response.status, StatusCode::OK);
        assert_eq!(digest.response.version, Version::HTTP_10);
        assert_eq!(digest.response.reason_phrase(), Some("Fine"));
        assert_eq!(digest.response.headers["via"], "p");
        assert!(digest.user_data.is_none());
        let mut rest = [0u8; 6];
        stream.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"tunnel");
    }

    #[tokio::test]
    async fn refusal_carries_the_response() {
        let result = exchange(&[b"HTTP/1.1 403 Forbidden\r\n\r\n"]).await;
        let err = result.err().unwrap();
        assert_eq!(err.etype(), &ErrorType::ConnectProxyFailure);
        let cause = err
            .root_cause()
            .downcast_ref::<ConnectProxyError>()
            .unwrap();
        assert_eq!(cause.response.status, StatusCode::FORBIDDEN);
        assert!(cause.to_string().contains("403"));
    }

    #[tokio::test]
    async fn malformed_and_truncated_answers() {
        let result = exchange(&[b"SSH-2.0-OpenSSH\r\n\r\n"]).await;
        assert_eq!(result.err().unwrap().etype(), &ErrorType::InvalidHTTPHeader);
        let result = exchange(&[b"HTTP/1.1 200 OK\r\n"]).await;
        assert_eq!(result.err().unwrap().etype(), &ErrorType::ConnectionClosed);
    }

    #[tokio::test]
    async fn oversized_head_is_rejected() {
        let (client, mut proxy) = tokio::io::duplex(1 << 20);
        let peer = HttpPeer::new("127.0.0.1:1", false, String::new());
        let req =
            generate_connect_header("h", 1, std::iter::empty::<(&String, &Vec<u8>)>()).unwrap();
        let server = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let _ = proxy.read(&mut buf).await.unwrap();
            let mut head = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
            head.resize(head.len() + MAX_HEAD_BYTES + 10, b'a');
            let _ = proxy.write_all(&head).await;
            proxy
        });
        let err = connect(Box::new(client), &req, &peer).await.err().unwrap();
        assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader);
        drop(server.await.unwrap());
    }
}
