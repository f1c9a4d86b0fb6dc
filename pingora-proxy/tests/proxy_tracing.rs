//! Observability through a real proxy: the request span and its children (as a subscriber
//! records them), the JSON access log of the `access_log` example, and request ids (trusted
//! peers, validation, generation, upstream and client headers).
//!
//! One binary on its own: it installs a global `tracing` subscriber, which the proxy's threads
//! report to. Tests tell their requests apart by path.

#[path = "../examples/app/mod.rs"]
mod app;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use pingora_cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora_cache::MemCache;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, RequestIdOptions, Session, TrustedNet};
use pingora_test_support::origin::{hyper_origin, standard_routes, Origin};
use pingora_test_support::proxy::ProxyUnderTest;
use pingora_test_support::{curl, runtime, TestServer};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

// === a subscriber that records spans, and JSON lines ===

/// A closed span: its name, its parent's name, and its fields as text.
#[derive(Debug, Clone)]
struct Closed {
    name: String,
    parent: Option<String>,
    fields: HashMap<String, String>,
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

struct Recorder(Arc<Mutex<Vec<Closed>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<Fields>() {
                values.record(fields);
            }
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span
            .extensions()
            .get::<Fields>()
            .map(|f| f.0.clone())
            .unwrap_or_default();
        self.0.lock().unwrap().push(Closed {
            name: span.name().to_string(),
            parent: span.parent().map(|p| p.name().to_string()),
            fields,
        });
    }
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Recorded {
    spans: Arc<Mutex<Vec<Closed>>>,
    json: Lines,
}

/// Installs the global subscriber once: span recorder plus JSON lines.
fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let json = Lines::default();
        let writer = json.clone();
        let subscriber = tracing_subscriber::registry()
            .with(Recorder(spans.clone()))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        Recorded { spans, json }
    })
}

/// The closed spans whose request span had `path`, waiting (bounded) for the request span.
fn spans_of(path: &str) -> Vec<Closed> {
    let deadline = std::time::Instant::now() + pingora_test_support::TIMEOUT;
    loop {
        let spans = recorded().spans.lock().unwrap().clone();
        if spans
            .iter()
            .any(|s| s.name == "request" && s.fields.get("path").map(String::as_str) == Some(path))
        {
            return spans;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request span for {path}"
        );
        std::thread::yield_now();
    }
}

// === the proxy ===

struct Traced {
    origin: SocketAddr,
    storage: &'static MemCache,
    lock: &'static CacheKeyLockImpl,
    ids_seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ProxyHttp for Traced {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
        if session.get_header("x-cache").is_some() {
            session
                .cache
                .enable(self.storage, None, None, Some(self.lock), None);
        }
        Ok(())
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn logging(&self, session: &mut Session, _: Option<&pingora_error::Error>, _: &mut ()) {
        if let Some(id) = session.request_id() {
            self.ids_seen.lock().unwrap().push(id.to_string());
        }
        let t = session.timings();
        assert!(t.first_byte.is_some(), "the client got a head");
    }
}

fn start(
    origin: &Origin,
    ids: Option<RequestIdOptions>,
) -> (TestServer, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let ids_seen = Arc::new(Mutex::new(Vec::new()));
    let app = Traced {
        origin: origin.addr,
        storage: Box::leak(Box::new(MemCache::new())),
        lock: Box::leak(Box::new(CacheLock::new(std::time::Duration::from_secs(5)))),
        ids_seen: ids_seen.clone(),
    };
    let (server, addr) = ProxyUnderTest::new(app)
        .configure(move |proxy| proxy.request_id = ids)
        .start();
    (server, addr, ids_seen)
}

#[test]
fn request_span_and_children() {
    recorded();
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (_server, proxy, _) = start(&origin, Some(RequestIdOptions::default()));
    let (status, head, _) =
        curl::response(&["-H", "x-cache: 1", &format!("http://{proxy}/hello?span=1")]);
    assert_eq!(status, 200);
    let spans = spans_of("/hello");
    let request = spans
        .iter()
        .find(|s| s.name == "request" && s.fields["path"] == "/hello")
        .unwrap();
    let f = &request.fields;
    assert_eq!(f["method"], "GET");
    assert_eq!(f["status"], "200");
    assert_eq!(f["retries"], "0");
    assert_eq!(f["upstream"], origin.addr.to_string());
    assert!(f["peer"].starts_with("127.0.0.1:"), "{f:?}");
    let id = &f["id"];
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("x-request-id: {id}")),
        "{head}"
    );
    for field in [
        "connect_ms",
        "upstream_header_ms",
        "first_byte_ms",
        "total_ms",
    ] {
        let ms: f64 = f[field].parse().unwrap();
        assert!(ms >= 0.0, "{field}");
    }
    for child in ["connect", "upstream_request", "cache_lookup"] {
        let span = spans
            .iter()
            .find(|s| s.name == child)
            .unwrap_or_else(|| panic!("no {child} span"));
        assert_eq!(span.parent.as_deref(), Some("request"), "{child}");
    }
}

#[test]
fn access_log_example_writes_json_lines() {
    recorded();
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (_server, proxy) = ProxyUnderTest::new(app::access_log::AccessLog {
        origin: origin.addr,
    })
    .configure(|proxy| proxy.request_id = Some(RequestIdOptions::default()))
    .start();
    let (status, head, body) = curl::response(&[&format!("http://{proxy}/download/1000?log=1")]);
    assert_eq!((status, body.len()), (200, 1000));
    spans_of("/download/1000");
    let text = String::from_utf8(recorded().json.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .find(|v| v["target"] == "access_log" && v["fields"]["uri"] == "/download/1000?log=1")
        .expect("an access log line");
    let fields = &line["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["body_bytes_sent"], 1000);
    assert_eq!(fields["upstream_body_bytes"], 1000);
    let id = fields["request_id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(head.contains(id), "{head}");
    assert!(fields["total_ms"].as_f64().unwrap() >= fields["first_byte_ms"].as_f64().unwrap());
    // The line carries the request's span.
    assert_eq!(line["span"]["name"], "request");
    assert_eq!(line["span"]["id"], id);
}

#[test]
fn request_ids_from_trusted_peers_only() {
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let get = |proxy: SocketAddr, id: &str| {
        let (_, head, body) = curl::response(&[
            "-H",
            &format!("x-request-id: {id}"),
            &format!("http://{proxy}/headers"),
        ]);
        let sent_upstream = String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: ").map(str::to_owned))
            .expect("the id went upstream");
        let to_client = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-request-id: ")
                    .map(str::to_owned)
            })
            .expect("the id came back");
        assert_eq!(sent_upstream.to_ascii_lowercase(), to_client);
        sent_upstream
    };

    // Loopback trusted: a valid incoming id is kept; invalid ones are replaced.
    let trusted = RequestIdOptions {
        trusted: vec![TrustedNet::parse("127.0.0.0/8").unwrap()],
        ..Default::default()
    };
    let (_server, proxy, seen) = start(&origin, Some(trusted));
    assert_eq!(get(proxy, "abc-123_XYZ"), "abc-123_XYZ");
    let long = "a".repeat(129);
    for bad in [long.as_str(), "has space", "quote\"d"] {
        let id = get(proxy, bad);
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32, "a generated id");
    }
    assert_eq!(get(proxy, &"b".repeat(128)), "b".repeat(128));
    assert_eq!(
        seen.lock().unwrap()[0],
        "abc-123_XYZ",
        "Session::request_id in logging"
    );

    // Nobody trusted: always generated, each one different.
    let (_server2, proxy2, _) = start(&origin, Some(RequestIdOptions::default()));
    let a = get(proxy2, "abc");
    let b = get(proxy2, "abc");
    assert!(a != "abc" && b != "abc" && a != b);

    // Ids off (the default): nothing added.
    let (_server3, proxy3, seen3) = start(&origin, None);
    let (_, head, body) = curl::response(&[&format!("http://{proxy3}/headers")]);
    assert!(!head.to_ascii_lowercase().contains("x-request-id"));
    assert!(!String::from_utf8_lossy(&body).contains("x-request-id"));
    assert!(seen3.lock().unwrap().is_empty());
}

#[test]
fn trusted_nets() {
    let net = TrustedNet::parse("10.1.0.0/16").unwrap();
    assert!(net.contains("10.1.200.3".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    assert!(
        net.contains("::ffff:10.1.0.9".parse().unwrap()),
        "IPv4-mapped"
    );
    let v6 = TrustedNet::parse("2001:db8::/32").unwrap();
    assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
    assert!(!v6.contains("10.1.0.1".parse().unwrap()));
    assert!(TrustedNet::parse("0.0.0.0/0")
        .unwrap()
        .contains("1.2.3.4".parse().unwrap()));
    assert!(TrustedNet::parse("127.0.0.1")
        .unwrap()
        .contains("127.0.0.1".parse().unwrap()));
    for bad in ["10.0.0.0/33", "host/8", "::/129", ""] {
        assert!(TrustedNet::parse(bad).is_err(), "{bad}");
    }
}
