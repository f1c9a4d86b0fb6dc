//! The HTTP cache of the proxy through real sockets: a client, the proxy with the cache on
//! (`cache::CacheProxy`: a `MemCache`, a cache lock, the default policy of every cache
//! callback) and an in-process origin that counts the requests it gets and answers as each
//! test scripts it (`ScriptedOrigin`).
//!
//! One module per section of the cache rules (`shared/design/cache-rules.md`), each test named
//! after its rule; `docs/user_guide/cache_rules_tests.md` maps the rules to the tests:
//! * `store`: what may be stored (RFC 9111 §3);
//! * `freshness`: freshness lifetime, `Age`, request directives (§4.2);
//! * `stale`: serving stale (§4.2.4, RFC 5861);
//! * `vary`: `Vary` and the secondary key (§4.1);
//! * `validation`: revalidation and 304s, client conditionals on hits (§4.3);
//! * `invalidation`: unsafe methods and purges (§4.4);
//! * `headers`: stored fields and `Cache-Status` (RFC 9211);
//! * `ranges`: ranges, HEAD, HTTP/1.0 and chunked hits (RFC 9110 §14);
//! * `herd`: the cache lock, streaming readers, writer failures, HTTP/2 clients.

mod cache;
