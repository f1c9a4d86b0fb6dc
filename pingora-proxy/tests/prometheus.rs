//! The built-in metrics, scraped from the Prometheus service after traffic through a proxy.
//!
//! Metrics are process-wide: this file is a test binary of its own, with one test, so that
//! the counts it asserts are those of its own requests.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::LazyLock;

use async_trait::async_trait;
use pingora_cache::MemCache;
use pingora_core::apps::HttpServerOptions;
use pingora_core::metrics::{self, Group};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ProxyHttp, ProxyServiceBuilder, Session};
use pingora_test_support::origin::{full, hyper_origin, standard_routes};
use pingora_test_support::{curl, TestServer};

static CACHE: LazyLock<MemCache> = LazyLock::new(MemCache::new);

/// Proxies to the origin; a request with the query `retry` first tries a dead address, and
/// that connection failure is retried. `/cached` goes through the cache.
struct Router {
    origin: SocketAddr,
    dead: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Router {
    /// Attempts so far.
    type CTX = usize;
    fn new_ctx(&self) -> usize {
        0
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        tries: &mut usize,
    ) -> Result<Box<HttpPeer>> {
        *tries += 1;
        let retry = session.req_header().uri.query() == Some("retry");
        let addr = if retry && *tries == 1 {
            self.dead
        } else {
            self.origin
        };
        Ok(Box::new(HttpPeer::new(addr, false, String::new())))
    }

    fn request_cache_filter(&self, session: &mut Session, _tries: &mut usize) -> Result<()> {
        if session.req_header().uri.path() == "/cached" {
            session.cache.enable(&*CACHE, None, None, None, None);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _tries: &mut usize,
        mut e: Box<Error>,
    ) -> Box<Error> {
        e.set_retry(true);
        e
    }
}

/// A scrape: every sample by series (`name{label="value"}`), and every family's type.
#[derive(Debug)]
struct Scrape {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    /// Parses the text exposition format.
    fn parse(text: &str) -> Scrape {
        let mut samples = HashMap::new();
        let mut types = HashMap::new();
        for line in text.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (name, kind) = declared.split_once(' ').expect("# TYPE name kind");
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').expect("series value");
                let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
                assert!(
                    samples.insert(series.to_string(), value).is_none(),
                    "{line}"
                );
            }
        }
        Scrape { samples, types }
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in the scrape: {self:#?}"))
    }

    fn has_family(&self, prefix: &str) -> bool {
        self.types.keys().any(|name| name.starts_with(prefix))
    }
}

/// Scrapes `addr`, asking for gzip or not; checks the response's type and encoding.
fn scrape(addr: SocketAddr, gzip: bool) -> Scrape {
    let url = format!("http://{addr}/metrics");
    let mut args = vec![url.as_str()];
    if gzip {
        args.extend(["-H", "Accept-Encoding: gzip"]);
    }
    let (status, head, body) = curl::response(&args);
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/plain; version=0.0.4\r\n"),
        "{head}"
    );
    let text = if gzip {
        assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("a gzip body");
        text
    } else {
        assert!(!head.contains("content-encoding"), "{head}");
        String::from_utf8(body).expect("text")
    };
    Scrape::parse(&text)
}

/// `GET path` through the proxy; returns the status.
fn get(proxy: SocketAddr, path: &str, h2c: bool) -> u16 {
    let url = format!("http://{proxy}{path}");
    let mut args = vec![url.as_str()];
    if h2c {
        args.push("--http2-prior-knowledge");
    }
    curl::response(&args).0
}

#[test]
fn scrape_counts_the_traffic_through_the_proxy() {
    // Switched off before anything records: its families must not be exported at all.
    metrics::disable(Group::Http2);

    let rt = pingora_test_support::runtime();
    let origin = hyper_origin(&rt, |req| async move {
        if req.uri().path() != "/cached" {
            return standard_routes(req).await;
        }
        let mut resp = http::Response::new(full("stored"));
        resp.headers_mut()
            .insert("cache-control", "max-age=600".parse().unwrap());
        resp
    });
    let router = Router {
        origin: origin.addr,
        dead: pingora_test_support::dead_addr(),
    };
    let (_server, addrs) = TestServer::start(|server| {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        let mut proxy = ProxyServiceBuilder::new(&server.configuration, router)
            .server_options(options)
            .build();
        proxy.add_tcp("127.0.0.1:0");
        let mut prometheus = pingora_prometheus::prometheus_http_service();
        prometheus.add_tcp("127.0.0.1:0");
        let addrs = vec![proxy.local_addrs(), prometheus.local_addrs()];
        server.add_service(proxy);
        server.add_service(prometheus);
        addrs
    });
    let (proxy, prometheus) = (addrs[0], addrs[1]);
    let before = scrape(prometheus, false);

    for _ in 0..5 {
        assert_eq!(get(proxy, "/hello", false), 200);
    }
    for _ in 0..2 {
        assert_eq!(get(proxy, "/nothing-here", false), 404);
    }
    assert_eq!(
        get(proxy, "/hello?retry", false),
        200,
        "retried on the origin"
    );
    assert_eq!(get(proxy, "/hello", true), 200, "over h2c");
    assert_eq!(get(proxy, "/cached", false), 200, "a miss");
    assert_eq!(get(proxy, "/cached", false), 200, "a hit");
    // The upstream exchanges: every request but the failed connect of the retried one and
    // the cache hit.
    let exchanges = 10.0;

    let after = scrape(prometheus, false);
    let moved = |series: &str| after.get(series) - before.get(series);
    assert_eq!(moved("pingora_proxy_requests_total{protocol=\"h1\"}"), 10.0);
    assert_eq!(moved("pingora_proxy_requests_total{protocol=\"h2\"}"), 1.0);
    assert_eq!(moved("pingora_proxy_responses_total{class=\"2xx\"}"), 9.0);
    assert_eq!(moved("pingora_proxy_responses_total{class=\"4xx\"}"), 2.0);
    for class in ["1xx", "3xx", "5xx"] {
        let series = format!("pingora_proxy_responses_total{{class=\"{class}\"}}");
        assert_eq!(moved(&series), 0.0, "{series}");
    }
    assert_eq!(moved("pingora_proxy_retries_total"), 1.0);
    assert_eq!(moved("pingora_upstream_connect_failures_total"), 1.0);

    // Every new upstream connection is one the origin accepted; the other exchanges reused
    // one (pooled between requests).
    let connections = origin.connection_count() as f64;
    assert!(connections >= 1.0);
    assert_eq!(moved("pingora_upstream_connect_seconds_count"), connections);
    assert_eq!(
        moved("pingora_upstream_connect_seconds_bucket{le=\"+Inf\"}"),
        connections
    );
    assert_eq!(
        moved("pingora_upstream_sessions_total{connection=\"new\"}"),
        connections
    );
    assert_eq!(
        moved("pingora_upstream_sessions_total{connection=\"reused\"}"),
        exchanges - connections
    );
    assert!(after.get("pingora_upstream_idle_connections") <= connections);
    assert_eq!(
        moved("pingora_upstream_response_header_seconds_count"),
        exchanges
    );
    assert!(after.get("pingora_upstream_response_header_seconds_sum") > 0.0);

    // The 11 client connections, and this scrape's own.
    assert_eq!(moved("pingora_downstream_connections_accepted_total"), 12.0);
    assert!(after.get("pingora_downstream_connections_open") >= 1.0);
    // Only the two `/cached` requests enabled the cache.
    assert_eq!(moved("pingora_cache_lookups_total"), 2.0);
    assert_eq!(moved("pingora_cache_misses_total"), 1.0);
    assert_eq!(moved("pingora_cache_hits_total"), 1.0);
    assert_eq!(
        moved("pingora_cache_stale_served_total{reason=\"updating\"}"),
        0.0
    );
    // Nothing of TLS happened.
    assert_eq!(
        moved("pingora_tls_handshakes_total{side=\"downstream\"}"),
        0.0
    );

    assert!(!before.has_family("pingora_h2_"), "a group switched off");
    assert!(!after.has_family("pingora_h2_"), "a group switched off");
    assert_eq!(after.types["pingora_proxy_requests_total"], "counter");
    assert_eq!(after.types["pingora_downstream_connections_open"], "gauge");
    assert_eq!(after.types["pingora_upstream_connect_seconds"], "histogram");
    #[cfg(target_os = "linux")]
    assert!(after.get("process_resident_memory_bytes") > 0.0);

    // The same counts compressed; the only change is this scrape's connection.
    let gzipped = scrape(prometheus, true);
    for (series, value) in &after.samples {
        if series.starts_with("pingora_proxy_")
            || series.starts_with("pingora_upstream_")
            || series.starts_with("pingora_cache_")
        {
            assert_eq!(gzipped.get(series), *value, "{series}");
        }
    }
    assert_eq!(
        gzipped.get("pingora_downstream_connections_accepted_total")
            - after.get("pingora_downstream_connections_accepted_total"),
        1.0
    );

    // Switched back on, the group is exported again and counts from then on.
    metrics::enable(Group::Http2);
    assert_eq!(get(proxy, "/hello", true), 200);
    let on = scrape(prometheus, false);
    assert_eq!(
        on.get("pingora_h2_streams_opened_total{side=\"downstream\"}"),
        1.0
    );
    assert_eq!(
        on.get("pingora_h2_streams_opened_total{side=\"upstream\"}"),
        0.0
    );
    drop(rt);
}
