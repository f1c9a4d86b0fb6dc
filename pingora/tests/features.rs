//! The umbrella's optional parts are reachable through `pingora::` paths and the prelude.

#![cfg(all(feature = "proxy", feature = "lb"))]

use async_trait::async_trait;
use pingora::prelude::*;

struct App(std::sync::Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for App {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let backend = self
            .0
            .select(b"", 8)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no backend"))?;
        Ok(Box::new(HttpPeer::new(backend, false, String::new())))
    }
}

#[test]
fn prelude_builds_a_load_balancing_proxy() {
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:1", "127.0.0.1:2"]).unwrap();
    lb.set_health_check(TcpHealthCheck::new());
    let lb = std::sync::Arc::new(lb);
    let server = Server::new(None).unwrap();
    let service = http_proxy_service(&server.configuration, App(lb.clone()));
    assert!(service.app_logic().is_some());
    // Round robin over the two backends before any health check ran.
    let picked: std::collections::HashSet<String> = (0..4)
        .map(|_| lb.select(b"", 8).unwrap().to_string())
        .collect();
    assert_eq!(picked.len(), 2);
    let _: &pingora::lb::Backends = lb.backends();
    let _ = pingora::proxy::FailToProxy {
        error_code: 502,
        can_reuse_downstream: false,
    };
}

/// With `cache`, the cache crate is `pingora::cache`, and a proxy enables it per request.
#[cfg(feature = "cache")]
mod cache {
    use std::sync::LazyLock;
    use std::time::Duration;

    use pingora::cache::lock::CacheLock;
    use pingora::cache::{CachePhase, MemCache};
    use pingora::prelude::*;

    static STORAGE: LazyLock<MemCache> = LazyLock::new(MemCache::new);
    static LOCK: LazyLock<CacheLock> = LazyLock::new(|| CacheLock::new(Duration::from_secs(1)));

    #[test]
    fn the_cache_is_reachable_and_enables_per_request() {
        let mut cache = pingora::cache::HttpCache::new();
        cache.enable(&*STORAGE, None, None, Some(&*LOCK), None);
        assert_eq!(cache.phase(), CachePhase::Uninit);
        cache.set_cache_key(pingora::cache::CacheKey::new("", "http://a/", ""));
        assert_eq!(cache.phase(), CachePhase::CacheKey);
        let _: Option<pingora::proxy::PurgeStatus> = None;
        let _: fn(&Session) -> pingora::cache::CacheKey =
            pingora::proxy::proxy_cache::default_cache_key;
    }
}
