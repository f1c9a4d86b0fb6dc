//! HTTP modules through a real proxy: response compression with real clients (`curl
//! --compressed` over HTTP/1, an h2c client), the rules that leave responses alone, the default
//! module, decompression, compression on cache hits and compressed variants stored by
//! `upstream_compression`, and user modules (an ACL, ordering, trailers turned into body).

mod e2e;

use std::any::Any;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use e2e::*;
use http::{HeaderMap, Method, Response};
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_cache::MemCache;
use pingora_core::apps::HttpServerOptions;
use pingora_core::modules::http::compression::{ResponseCompression, ResponseCompressionBuilder};
use pingora_core::modules::http::{HttpModule, HttpModuleBuilder, HttpModules, Module};
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};

// === the origin ===

/// Compressible text of `len` bytes.
fn text(len: usize) -> Vec<u8> {
    let line = b"the quick brown fox jumps over the lazy proxy, again and again\n";
    line.iter().copied().cycle().take(len).collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => drop(
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap(),
        ),
        "br" => drop(
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap(),
        ),
        "zstd" => out = zstd::stream::decode_all(data).unwrap(),
        "" => out = data.to_vec(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

const TEXT_LEN: usize = 50_000;

/// `/text` (text/plain, strong ETag, cacheable), `/gz` (the same text gzip-encoded),
/// `/image`, `/no-transform`, `/chunked` (text of unknown length); counts requests.
fn origin(rt: &tokio::runtime::Runtime, hits: Arc<AtomicUsize>) -> Origin {
    hyper_origin(rt, move |req| {
        hits.fetch_add(1, Ordering::SeqCst);
        async move {
            let (ctype, body, extra): (&str, Vec<u8>, Option<(&str, &str)>) = match req.uri().path()
            {
                "/text" => ("text/plain", text(TEXT_LEN), None),
                "/gz" => (
                    "text/plain",
                    gzip(&text(TEXT_LEN)),
                    Some(("content-encoding", "gzip")),
                ),
                "/image" => ("image/png", text(TEXT_LEN), None),
                "/no-transform" => (
                    "text/plain",
                    text(TEXT_LEN),
                    Some(("cache-control", "no-transform")),
                ),
                _ => ("text/plain", b"?".to_vec(), None),
            };
            // A simple `bytes=A-B` range, as origins that support ranges answer it.
            let range = req
                .headers()
                .get("range")
                .and_then(|v| v.to_str().ok()?.strip_prefix("bytes=")?.split_once('-'))
                .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
            let mut resp = Response::builder();
            let body = match range {
                Some((first, last)) => {
                    let total = body.len();
                    resp = resp
                        .status(206)
                        .header("content-range", format!("bytes {first}-{last}/{total}"));
                    body[first..=last].to_vec()
                }
                None => body,
            };
            let mut resp = resp
                .header("content-type", ctype)
                .header("content-length", body.len())
                .header("etag", "\"v1\"")
                .header("accept-ranges", "bytes");
            if req.uri().path() != "/no-transform" {
                resp = resp.header("cache-control", "max-age=60");
            }
            if let Some((name, value)) = extra {
                resp = resp.header(name, value);
            }
            resp.body(full(body)).unwrap()
        }
    })
}

// === user modules ===

/// Refuses requests with `x-block` (an access-control module).
struct Acl;

#[async_trait]
impl HttpModule for Acl {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        if req.headers.contains_key("x-block") {
            return Error::e_explain(ErrorType::HTTPStatus(403), "blocked by the ACL module");
        }
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct AclBuilder;

impl HttpModuleBuilder for AclBuilder {
    fn order(&self) -> i16 {
        100
    }
    fn init(&self) -> Module {
        Box::new(Acl)
    }
}

/// Tags responses (`x-order`), counts body bytes, and turns trailers into a body line.
struct Tagger {
    tag: &'static str,
    body_bytes: usize,
}

#[async_trait]
impl HttpModule for Tagger {
    async fn response_header_filter(&mut self, resp: &mut ResponseHeader, _: bool) -> Result<()> {
        resp.append_header("x-order", self.tag).map(drop)
    }
    fn response_body_filter(&mut self, body: &mut Option<Bytes>, _: bool) -> Result<()> {
        self.body_bytes += body.as_ref().map_or(0, Bytes::len);
        Ok(())
    }
    fn response_trailer_filter(
        &mut self,
        trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        if self.tag != "trailers" {
            return Ok(None);
        }
        let line = trailers
            .as_ref()
            .and_then(|t| t.get("x-checksum"))
            .map(|v| format!("\nchecksum={}", v.to_str().unwrap()))
            .unwrap_or_default();
        Ok(Some(Bytes::from(line)))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct TaggerBuilder(&'static str, i16);

impl HttpModuleBuilder for TaggerBuilder {
    fn order(&self) -> i16 {
        self.1
    }
    fn init(&self) -> Module {
        Box::new(Tagger {
            tag: self.0,
            body_bytes: 0,
        })
    }
}

// === the proxy ===

/// Request fields that steer the proxy.
const COMPRESS: &str = "x-compress";
const DECOMPRESS: &str = "x-decompress";
const UPSTREAM_COMPRESS: &str = "x-upstream-compress";
const CACHE: &str = "x-cache";

struct App {
    origin: SocketAddr,
    /// Origin with trailers (h2c).
    h2_origin: Option<SocketAddr>,
    /// Install the test's modules (else the default: compression only).
    modules: bool,
    storage: &'static MemCache,
    lock: &'static CacheKeyLockImpl,
}

impl App {
    fn new(origin: SocketAddr, h2_origin: Option<SocketAddr>, modules: bool) -> Self {
        App {
            origin,
            h2_origin,
            modules,
            storage: Box::leak(Box::new(MemCache::new())),
            lock: Box::leak(Box::new(CacheLock::new(std::time::Duration::from_secs(5)))),
        }
    }
}

#[async_trait]
impl ProxyHttp for App {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(ResponseCompressionBuilder::enable(0));
        if self.modules {
            modules.add_module(Box::new(AclBuilder));
            modules.add_module(Box::new(TaggerBuilder("low", -5)));
            modules.add_module(Box::new(TaggerBuilder("high", 5)));
            modules.add_module(Box::new(TaggerBuilder("trailers", 0)));
        }
    }

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        let level = session
            .get_header(COMPRESS)
            .map(|v| v.to_str().unwrap().parse::<u32>().unwrap());
        let decompress = session.get_header(DECOMPRESS).is_some();
        let compression = session
            .downstream_modules_ctx
            .get_mut::<ResponseCompression>()
            .expect("the compression module is installed");
        if let Some(level) = level {
            compression.adjust_level(level);
        }
        compression.adjust_decompression(decompress);
        if session.get_header(UPSTREAM_COMPRESS).is_some() {
            session.upstream_compression.adjust_level(6);
        }
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
        if session.get_header(CACHE).is_some() {
            session
                .cache
                .enable(self.storage, None, None, Some(self.lock), None);
        }
        Ok(())
    }

    async fn upstream_peer(&self, session: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        if session.req_header().uri.path() == "/trailers" {
            let mut peer = HttpPeer::new(self.h2_origin.unwrap(), false, String::new());
            peer.options.set_http_version(2, 2);
            return Ok(Box::new(peer));
        }
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        // The modules' state is reachable from the application's callbacks.
        if let Some(tagger) = session.downstream_modules_ctx.get::<Tagger>() {
            resp.insert_header("x-tagger-seen", tagger.body_bytes.to_string())?;
        }
        Ok(())
    }
}

/// Proxy in front of the origins; `modules` installs the user modules.
struct Setup {
    rt: tokio::runtime::Runtime,
    _origin: Origin,
    _h2: Option<H2Origin>,
    _proxy: TestServer,
    proxy: SocketAddr,
    hits: Arc<AtomicUsize>,
}

fn setup(modules: bool) -> Setup {
    let rt = runtime();
    let hits = Arc::new(AtomicUsize::new(0));
    let origin = origin(&rt, hits.clone());
    let handler: Handler = Arc::new(|_req, mut respond| {
        Box::pin(async move {
            let resp = Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(())
                .unwrap();
            let mut stream = respond.send_response(resp, false).unwrap();
            stream
                .send_data(Bytes::from_static(b"payload"), false)
                .unwrap();
            let mut trailers = HeaderMap::new();
            trailers.insert("x-checksum", "abc".parse().unwrap());
            stream.send_trailers(trailers).unwrap();
        })
    });
    let h2 = h2_origin(&rt, handler);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    let (server, proxy) = start_proxy_with(
        App::new(origin.addr, Some(h2.addr), modules),
        ServerConf::default(),
        Some(options),
    );
    Setup {
        rt,
        _origin: origin,
        _h2: Some(h2),
        _proxy: server,
        proxy,
        hits,
    }
}

fn url(setup: &Setup, path: &str) -> String {
    format!("http://{}{path}", setup.proxy)
}

/// A field of a curl head, lowercase name.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// === compression with real clients ===

#[test]
fn curl_compressed_gets_each_coding() {
    let s = setup(false);
    for coding in ["gzip", "br", "zstd"] {
        let (status, head, body) = curl::response(&[
            "--compressed".to_string(),
            "-H".into(),
            format!("accept-encoding: {coding}"),
            "-H".into(),
            format!("{COMPRESS}: 5"),
            url(&s, "/text"),
        ]);
        assert_eq!(status, 200);
        assert_eq!(header(&head, "content-encoding"), Some(coding), "{head}");
        assert_eq!(header(&head, "content-length"), None, "{head}");
        assert_eq!(header(&head, "accept-ranges"), None, "{head}");
        assert_eq!(header(&head, "etag"), Some("W/\"v1\""), "{head}");
        assert_eq!(header(&head, "vary"), Some("accept-encoding"), "{head}");
        assert_eq!(body, text(TEXT_LEN), "{coding}: curl decoded the body");
    }
}

#[test]
fn curl_over_raw_bytes_is_really_compressed() {
    let s = setup(false);
    // Without --compressed curl hands over the bytes as they came.
    let (_, head, body) = curl::response(&[
        "-H".to_string(),
        "accept-encoding: gzip".into(),
        "-H".into(),
        format!("{COMPRESS}: 6"),
        url(&s, "/text"),
    ]);
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    assert!(body.len() < TEXT_LEN / 10, "{} bytes", body.len());
    assert_eq!(decode("gzip", &body), text(TEXT_LEN));
}

#[test]
fn h2_client_gets_compressed_responses() {
    let s = setup(false);
    s.rt.block_on(async {
        let client = h2_client(s.proxy).await;
        for coding in ["zstd", "br", "gzip"] {
            let mut req = request(Method::GET, "/text");
            req.headers_mut()
                .insert("accept-encoding", coding.parse().unwrap());
            req.headers_mut().insert(COMPRESS, "4".parse().unwrap());
            let got = exchange(&client, req, None).await;
            assert_eq!(got.status, 200);
            let encoding = got
                .headers
                .get("content-encoding")
                .map(|v| v.to_str().unwrap());
            assert_eq!(encoding, Some(coding));
            assert!(got.headers.get("content-length").is_none());
            assert_eq!(decode(coding, &got.body), text(TEXT_LEN));
        }
    });
}

#[test]
fn head_has_the_compressed_get_head() {
    let s = setup(false);
    // (With -I curl prints the head as the body too.)
    let (status, head, _) = curl::response(&[
        "-I".to_string(),
        "-H".into(),
        "accept-encoding: br".into(),
        "-H".into(),
        format!("{COMPRESS}: 5"),
        url(&s, "/text"),
    ]);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-encoding"), Some("br"), "{head}");
    assert_eq!(header(&head, "content-length"), None, "{head}");
    assert_eq!(header(&head, "vary"), Some("accept-encoding"), "{head}");
}

#[test]
fn responses_left_alone() {
    let s = setup(false);
    let cases: [(&str, &[&str], u16); 5] = [
        ("/text", &[], 200), // the client accepts nothing
        ("/image", &["accept-encoding: gzip"], 200),
        ("/no-transform", &["accept-encoding: gzip"], 200),
        ("/text", &["accept-encoding: gzip", "range: bytes=0-9"], 206),
        ("/gz", &["accept-encoding: gzip"], 200), // already gzip: not compressed twice
    ];
    for (path, fields, expected) in cases {
        let mut args = vec!["-H".to_string(), format!("{COMPRESS}: 6")];
        for f in fields {
            args.extend(["-H".to_string(), f.to_string()]);
        }
        args.push(url(&s, path));
        let (status, head, body) = curl::response(&args);
        assert_eq!(status, expected, "{path} {fields:?}");
        let encoding = header(&head, "content-encoding");
        if path == "/gz" {
            assert_eq!(encoding, Some("gzip"));
            assert_eq!(
                decode("gzip", &body),
                text(TEXT_LEN),
                "not compressed twice"
            );
        } else {
            assert_eq!(encoding, None, "{path} {fields:?}: {head}");
            assert!(header(&head, "content-length").is_some(), "{path}: {head}");
        }
    }
    // Range answered by the origin: the partial body is untouched.
    let (_, _, body) = curl::response(&[
        "-H".to_string(),
        "accept-encoding: gzip".into(),
        "-H".into(),
        "range: bytes=0-9".into(),
        "-H".into(),
        format!("{COMPRESS}: 6"),
        url(&s, "/text"),
    ]);
    assert_eq!(body, text(10));
}

#[test]
fn default_module_is_installed_and_off() {
    // An application that does not override init_downstream_modules.
    struct Plain(SocketAddr);
    #[async_trait]
    impl ProxyHttp for Plain {
        type CTX = ();
        fn new_ctx(&self) {}
        async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
            if session.get_header(COMPRESS).is_some() {
                let module = session
                    .downstream_modules_ctx
                    .get_mut::<ResponseCompression>();
                module.expect("installed by default").adjust_level(6);
            }
            Ok(false)
        }
        async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
            Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
        }
    }
    let rt = runtime();
    let origin = origin(&rt, Arc::default());
    let (_server, proxy) = start_proxy(Plain(origin.addr));
    let target = format!("http://{proxy}/text");
    let (_, head, _) = curl::response(&["-H", "accept-encoding: gzip", &target]);
    assert_eq!(
        header(&head, "content-encoding"),
        None,
        "off by default: {head}"
    );
    let on = format!("{COMPRESS}: 1");
    let (_, head, body) = curl::response(&["-H", "accept-encoding: gzip", "-H", &on, &target]);
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &body), text(TEXT_LEN));
}

#[test]
fn decompresses_for_clients_that_do_not_accept_the_coding() {
    let s = setup(false);
    let decompress = format!("{DECOMPRESS}: 1");
    let (_, head, body) = curl::response(&[
        "-H",
        "accept-encoding: br",
        "-H",
        &decompress,
        &url(&s, "/gz"),
    ]);
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert_eq!(body, text(TEXT_LEN));
    // Without decompression the encoded body passes as it is.
    let (_, head, body) = curl::response(&["-H", "accept-encoding: br", &url(&s, "/gz")]);
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &body), text(TEXT_LEN));
}

// === with the cache ===

#[test]
fn cache_stores_identity_and_compresses_each_hit() {
    let s = setup(false);
    let get = |coding: &str| {
        curl::response(&[
            "-H".to_string(),
            format!("accept-encoding: {coding}"),
            "-H".into(),
            format!("{COMPRESS}: 5"),
            "-H".into(),
            format!("{CACHE}: 1"),
            url(&s, "/text"),
        ])
    };
    let (_, head, body) = get("gzip");
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    assert_eq!(decode("gzip", &body), text(TEXT_LEN));
    for coding in ["br", "zstd", "gzip"] {
        let (_, head, body) = get(coding);
        assert_eq!(
            header(&head, "content-encoding"),
            Some(coding),
            "hit: {head}"
        );
        assert_eq!(header(&head, "vary"), Some("accept-encoding"));
        assert_eq!(decode(coding, &body), text(TEXT_LEN));
    }
    let (_, head, body) = get("identity");
    assert_eq!(header(&head, "content-encoding"), None);
    assert_eq!(body, text(TEXT_LEN));
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        1,
        "one origin fetch, every hit compressed"
    );
}

#[test]
fn upstream_compression_stores_one_variant_per_coding() {
    let s = setup(false);
    let get = |accept: &str| {
        let mut args = vec!["-H".to_string(), format!("{UPSTREAM_COMPRESS}: 1")];
        args.extend(["-H".to_string(), format!("{CACHE}: 1")]);
        if !accept.is_empty() {
            args.extend(["-H".to_string(), format!("accept-encoding: {accept}")]);
        }
        args.push(url(&s, "/text"));
        curl::response(&args)
    };
    // (Accept-Encoding, coding received, origin fetches so far)
    let steps = [
        ("gzip, br", "br", 1),
        ("br;q=0.9, gzip;q=0.5", "br", 1), // another spelling, same coding: a hit
        ("gzip", "gzip", 2),
        ("x-gzip, deflate", "gzip", 2),
        ("", "", 3), // identity
        ("identity", "", 3),
    ];
    for (accept, coding, fetches) in steps {
        let (status, head, body) = get(accept);
        assert_eq!(status, 200);
        assert_eq!(
            header(&head, "content-encoding").unwrap_or(""),
            coding,
            "{accept}: {head}"
        );
        assert_eq!(decode(coding, &body), text(TEXT_LEN), "{accept}");
        assert_eq!(s.hits.load(Ordering::SeqCst), fetches, "{accept}: {head}");
    }
}

// === user modules ===

#[test]
fn acl_module_refuses_before_the_upstream() {
    let s = setup(true);
    let (status, _, _) = curl::response(&["-H", "x-block: 1", &url(&s, "/text")]);
    assert_eq!(status, 403);
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
    let (status, head, body) = curl::response(&[&url(&s, "/text")]);
    assert_eq!(status, 200);
    assert_eq!(body, text(TEXT_LEN));
    // Higher order first, on responses too; the app reached a module's state.
    let orders: Vec<_> = head
        .lines()
        .filter_map(|l| l.strip_prefix("x-order: "))
        .collect();
    assert_eq!(orders, ["high", "trailers", "low"]);
    assert_eq!(header(&head, "x-tagger-seen"), Some("0"));
}

#[test]
fn module_turns_trailers_into_body_for_h1_and_h2_clients() {
    let s = setup(true);
    // HTTP/1 client: the trailer line ends the body, no trailer section.
    let (status, head, body) = curl::response(&[&url(&s, "/trailers")]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(String::from_utf8_lossy(&body), "payload\nchecksum=abc");
    s.rt.block_on(async {
        let client = h2_client(s.proxy).await;
        let got = exchange(&client, request(Method::GET, "/trailers"), None).await;
        assert_eq!(String::from_utf8_lossy(&got.body), "payload\nchecksum=abc");
        assert!(
            got.trailers.is_none(),
            "trailers were turned into body: {:?}",
            got.trailers
        );
    });
}
