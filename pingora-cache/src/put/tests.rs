use std::time::Duration;

use super::*;
use crate::eviction::lru;
use crate::trace::SpanHandle;
use crate::MemCache;

struct TestPut;

impl CachePut for TestPut {
    fn cache_defaults() -> &'static CacheMetaDefaults {
        const DEFAULTS: CacheMetaDefaults =
            CacheMetaDefaults::new(|_| Some(Duration::from_secs(1)), 1, 1);
        &DEFAULTS
    }
}

fn storage() -> &'static MemCache {
    Box::leak(Box::new(MemCache::new()))
}

fn key(primary: &str) -> CacheKey {
    CacheKey::new("", primary, "1")
}

fn ctx(storage: &'static MemCache, primary: &str) -> CachePutCtx<TestPut> {
    CachePutCtx::new(TestPut, key(primary), storage, None, Span::inactive())
}

fn head(cache_control: &str, framing: &[(&str, &str)]) -> ResponseHeader {
    let mut head = ResponseHeader::build(200, None).unwrap();
    head.insert_header("date", "Thu, 26 Apr 2018 05:42:05 GMT")
        .unwrap();
    head.insert_header("cache-control", cache_control).unwrap();
    for (name, value) in framing {
        head.append_header(name.to_string(), *value).unwrap();
    }
    head
}

fn pieces(parts: &[&str]) -> Vec<Bytes> {
    parts
        .iter()
        .map(|p| Bytes::copy_from_slice(p.as_bytes()))
        .collect()
}

/// The stored body of `primary`, or `None` when nothing is stored.
async fn stored(storage: &'static MemCache, primary: &str) -> Option<(CacheMeta, Vec<u8>)> {
    let (meta, mut hit) = storage
        .lookup(&key(primary), &SpanHandle::default())
        .await
        .unwrap()?;
    let mut body = Vec::new();
    while let Some(piece) = hit.read_body().await.unwrap() {
        body.extend_from_slice(&piece);
    }
    Some((meta, body))
}

#[tokio::test]
async fn a_cacheable_response_is_stored_and_hit_with_its_exact_body() {
    let storage = storage();
    let mut ctx = ctx(storage, "a");
    let short = head("public, max-age=10", &[("content-length", "8")]);
    let reason = ctx
        .cache_put_response(short, pieces(&["rust", "", "ace"]))
        .await;
    // Seven bytes for a Content-Length of eight: refused.
    assert_eq!(reason.unwrap_err().etype(), &ERR_INCOMPLETE_BODY);
    assert!(stored(storage, "a").await.is_none());

    let head = head("public, max-age=10", &[("content-length", "8")]);
    let reason = ctx
        .cache_put_response(head, pieces(&["rust", "", "aces"]))
        .await
        .unwrap();
    assert_eq!(reason, None);
    let (meta, body) = stored(storage, "a").await.unwrap();
    assert_eq!(
        meta.headers().get("date").unwrap(),
        "Thu, 26 Apr 2018 05:42:05 GMT"
    );
    assert!(meta.is_fresh(std::time::SystemTime::now()));
    assert_eq!(body, b"rustaces");
}

#[tokio::test]
async fn raw_responses_are_decoded_by_their_framing() {
    let storage = storage();
    let cases: [(&str, &[&str], &[u8]); 4] = [
        (
            "length",
            &["HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Length: 4\r\n\r\nru", "stEXTRA"],
            b"rust",
        ),
        (
            "chunked",
            &[
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nTransfer-Encoding: chunked\r\n\r\n",
                "4\r\nru",
                "st\r\n3;ext=1\r\nace\r\n0\r\nx-t: 1\r\n\r\n",
            ],
            b"rustace",
        ),
        (
            "close",
            &["HTTP/1.0 200 OK\r\nCache-Control: max-age=5\r\n\r\nall", " of it"],
            b"all of it",
        ),
        (
            "no-content",
            &["HTTP/1.1 204 No Content\r\nCache-Control: max-age=5\r\nContent-Length: 4\r\n\r\nrust"],
            b"",
        ),
    ];
    for (name, raw, body) in cases {
        let mut ctx = ctx(storage, name);
        assert_eq!(
            ctx.cache_put_raw(pieces(raw)).await.unwrap(),
            None,
            "{name}"
        );
        let (_, stored_body) = stored(storage, name).await.unwrap();
        assert_eq!(stored_body, body, "{name}");
    }
}

#[tokio::test]
async fn a_raw_body_after_a_parsed_head_is_decoded() {
    let storage = storage();
    let mut ctx = ctx(storage, "b");
    let head = head("max-age=5", &[("transfer-encoding", "chunked")]);
    let body = pieces(&["2\r\nhi\r\n", "0\r\n\r\n"]);
    assert_eq!(ctx.cache_put_raw_body(head, body).await.unwrap(), None);
    assert_eq!(stored(storage, "b").await.unwrap().1, b"hi");
}

#[tokio::test]
async fn truncated_bodies_are_not_stored() {
    let storage = storage();
    let cases: [(&str, &[&str]); 5] = [
        (
            "short-length",
            &["HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Length: 6\r\n\r\nabc"],
        ),
        (
            "no-last-chunk",
            &["HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nrust\r\n"],
        ),
        (
            "inside-chunk",
            &["HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nru"],
        ),
        (
            "bad-chunk",
            &["HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        ),
        ("inside-head", &["HTTP/1.1 200 OK\r\nCache-Control: max"]),
    ];
    for (name, raw) in cases {
        let mut ctx = ctx(storage, name);
        let err = ctx.cache_put_raw(pieces(raw)).await.unwrap_err();
        assert_eq!(err.etype(), &ERR_INCOMPLETE_BODY, "{name}");
        assert!(stored(storage, name).await.is_none(), "{name}");
    }
    let mut ctx = ctx(storage, "invalid");
    let err = ctx.cache_put_raw(pieces(&["HTP/1.1 200 OK\r\n\r\n"])).await;
    assert!(err.is_err());
    assert!(storage.is_empty());
}

#[tokio::test]
async fn uncacheable_responses_are_not_stored() {
    let storage = storage();
    let mut ctx = ctx(storage, "c");
    for cc in ["no-store", "private"] {
        let head = head(cc, &[("content-length", "4")]);
        let reason = ctx.cache_put_response(head, pieces(&["rust"])).await;
        assert_eq!(reason.unwrap(), Some(NoCacheReason::OriginNotCache), "{cc}");
    }
    assert!(storage.is_empty());
}

#[tokio::test]
async fn responses_over_the_size_limit_are_not_stored() {
    let storage = storage();
    let mut ctx = ctx(storage, "d");
    ctx.set_max_file_size_bytes(4);

    // Known from Content-Length: not cacheable, the body is not read.
    let head = head("max-age=5", &[("content-length", "5")]);
    let reason = ctx.cache_put_response(head, pieces(&["rusty"])).await;
    assert_eq!(reason.unwrap(), Some(NoCacheReason::ResponseTooLarge));

    // Found while writing: an error.
    let raw = "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nTransfer-Encoding: chunked\r\n\r\n\
               3\r\nrus\r\n2\r\nty\r\n0\r\n\r\n";
    let err = ctx.cache_put_raw(pieces(&[raw])).await.unwrap_err();
    assert_eq!(err.etype(), &ERR_RESPONSE_TOO_LARGE);
    assert!(storage.is_empty());

    // At the limit: stored.
    let raw = "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Length: 4\r\n\r\nrust";
    assert_eq!(ctx.cache_put_raw(pieces(&[raw])).await.unwrap(), None);
    assert_eq!(stored(storage, "d").await.unwrap().1, b"rust");
}

#[tokio::test]
async fn evicted_objects_are_purged_from_storage() {
    let raw = "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Length: 4\r\n\r\nrust";

    // The weight MemCache reports for one such object.
    let probe: &'static lru::Manager<1> =
        Box::leak(Box::new(lru::Manager::with_capacity(1 << 20, 8)));
    let probe_storage = storage();
    let mut ctx = CachePutCtx::new(
        TestPut,
        key("probe"),
        probe_storage,
        Some(probe),
        Span::inactive(),
    );
    ctx.cache_put_raw(pieces(&[raw])).await.unwrap();
    let weight = probe.total_size();
    assert!(weight >= 4);

    // Room for one object and a half: the second evicts the first.
    let eviction: &'static lru::Manager<1> =
        Box::leak(Box::new(lru::Manager::with_capacity(weight * 3 / 2, 8)));
    let storage = storage();
    for primary in ["first", "second"] {
        let mut ctx = CachePutCtx::new(
            TestPut,
            key(primary),
            storage,
            Some(eviction),
            Span::inactive(),
        );
        assert_eq!(ctx.cache_put_raw(pieces(&[raw])).await.unwrap(), None);
    }
    assert_eq!(eviction.evicted_items(), 1);
    assert!(!eviction.peek(&key("first").to_compact()));
    assert!(stored(storage, "first").await.is_none());
    assert_eq!(stored(storage, "second").await.unwrap().1, b"rust");
    assert_eq!(storage.len(), 1);
}

/// Refuses responses without `x-store`, and counts the heads it saw.
struct Picky {
    heads: usize,
}

impl CachePut for Picky {
    fn cacheable(&self, response: ResponseHeader) -> RespCacheable {
        if response.headers.contains_key("x-store") {
            let cc = CacheControl::from_resp_headers(&response);
            filters::resp_cacheable(cc.as_ref(), response, false, Self::cache_defaults())
        } else {
            RespCacheable::Uncacheable(NoCacheReason::Custom("no x-store"))
        }
    }

    fn cache_defaults() -> &'static CacheMetaDefaults {
        TestPut::cache_defaults()
    }

    fn trace_header(&mut self, _response: &ResponseHeader) {
        self.heads += 1;
    }
}

#[tokio::test]
async fn the_cache_put_decides_and_sees_every_head() {
    let storage = storage();
    let picky = Picky { heads: 0 };
    let mut ctx = CachePutCtx::new(picky, key("e"), storage, None, Span::inactive());
    let raw = "HTTP/1.1 200 OK\r\nCache-Control: max-age=5\r\nContent-Length: 2\r\n\r\nno";
    let reason = ctx.cache_put_raw(pieces(&[raw])).await.unwrap();
    assert_eq!(reason, Some(NoCacheReason::Custom("no x-store")));
    assert!(storage.is_empty());

    let raw = "HTTP/1.1 200 OK\r\nX-Store: 1\r\nContent-Length: 3\r\n\r\nyes";
    assert_eq!(ctx.cache_put_raw(pieces(&[raw])).await.unwrap(), None);
    // Without Cache-Control the defaults give one second of freshness.
    let (meta, body) = stored(storage, "e").await.unwrap();
    assert_eq!(body, b"yes");
    assert_eq!(meta.fresh_sec(), 1);
    assert_eq!(ctx.cache_put.heads, 2);
}
