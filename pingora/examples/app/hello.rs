//! An HTTP application that tells which process answered, after an optional pause: enough to
//! watch a graceful upgrade hand the listening socket from one process to the next.

use std::time::Duration;

use async_trait::async_trait;
use http::{header, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The longest pause a request may ask for.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Answers `hello from pid <pid>`. A request with `?sleep=<seconds>` (fractions allowed, at
/// most [`MAX_SLEEP`]) is answered after that pause, so it can still be in flight while the
/// process is being replaced.
///
/// A plain [`ServeHttp`]: `Service::new(name, Hello)` serves it as it is.
#[derive(Debug, Default)]
pub struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let pause = requested_sleep(session.req_header().uri.query());
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let body = format!("hello from pid {}\n", std::process::id());
        Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body.into_bytes())
            .expect("a valid response")
    }
}

/// The pause asked for by `sleep=<seconds>` in `query`; zero if none or not a number.
pub fn requested_sleep(query: Option<&str>) -> Duration {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "sleep")
        .and_then(|(_, value)| value.parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(Duration::ZERO, |seconds| {
            Duration::from_secs_f64(seconds.min(MAX_SLEEP.as_secs_f64()))
        })
}
