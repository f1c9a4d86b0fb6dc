//! The `upstream_modules` feature through a real proxy: upstream modules filter the request
//! head and body sent upstream and the response received (before `upstream_compression`), and
//! `adjust_upstream_modules` reaches them per response.

#![cfg(feature = "upstream_modules")]

use std::any::Any;
use std::net::SocketAddr;
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::{HttpModule, HttpModuleBuilder, HttpModules, Module};
use pingora::prelude::*;
use pingora_test_support::curl;
use pingora_test_support::origin::{hyper_origin, standard_routes};
use pingora_test_support::proxy::start_proxy;
use pingora_test_support::runtime;

/// Marks the request sent upstream, upper-cases its body, and counts the response's raw body.
#[derive(Default)]
struct Marker {
    /// Set by `adjust_upstream_modules` from the upstream's status.
    upstream_status: Option<u16>,
    response_bytes: usize,
}

#[async_trait]
impl HttpModule for Marker {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-upstream-module", "1")
    }
    async fn request_body_filter(&mut self, body: &mut Option<Bytes>, _: bool) -> Result<()> {
        if let Some(b) = body {
            *b = Bytes::from(b.to_ascii_uppercase());
        }
        Ok(())
    }
    async fn response_header_filter(&mut self, resp: &mut ResponseHeader, _: bool) -> Result<()> {
        let status = self.upstream_status.unwrap_or(0).to_string();
        resp.insert_header("x-upstream-module-saw", status)?;
        // Seen by upstream_compression after this module: it makes the response compressible.
        if !resp.headers.contains_key("content-type") {
            resp.insert_header("content-type", "text/plain")?;
        }
        Ok(())
    }
    fn response_body_filter(&mut self, body: &mut Option<Bytes>, _: bool) -> Result<()> {
        self.response_bytes += body.as_ref().map_or(0, Bytes::len);
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

struct MarkerBuilder;

impl HttpModuleBuilder for MarkerBuilder {
    fn init(&self) -> Module {
        Box::new(Marker::default())
    }
}

struct App {
    origin: SocketAddr,
    /// Raw response bytes each upstream module saw, one message per request. The logging
    /// phase runs after the client has its response, so the test waits on this channel.
    seen: Mutex<Sender<usize>>,
}

#[async_trait]
impl ProxyHttp for App {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_upstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(MarkerBuilder));
    }

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        if session.get_header("x-upstream-gzip").is_some() {
            session.upstream_compression.adjust_level(6);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn adjust_upstream_modules(
        &self,
        session: &mut Session,
        upstream_response: &ResponseHeader,
        _: bool,
        _: &mut (),
    ) -> Result<()> {
        let marker = session.upstream_modules_ctx.get_mut::<Marker>().unwrap();
        marker.upstream_status = Some(upstream_response.status.as_u16());
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _: Option<&Error>, _: &mut ()) {
        let marker = session.upstream_modules_ctx.get::<Marker>().unwrap();
        let _ = self.seen.lock().unwrap().send(marker.response_bytes);
    }
}

#[test]
fn upstream_modules_filter_both_directions() {
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (seen, logged) = channel();
    let (_server, proxy) = start_proxy(App {
        origin: origin.addr,
        seen: Mutex::new(seen),
    });
    let next_logged = || {
        logged
            .recv_timeout(Duration::from_secs(10))
            .expect("logged")
    };

    // The request head sent upstream carries the module's field; the response head the
    // module saw was adjusted by the application.
    let (status, head, body) = curl::response(&[format!("http://{proxy}/headers")]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("x-upstream-module: 1"));
    assert!(head.contains("x-upstream-module-saw: 200"), "{head}");
    next_logged();

    // The request body sent upstream went through the module.
    let (_, _, body) = curl::response(&[
        "--data-binary".to_string(),
        "hello upstream".into(),
        format!("http://{proxy}/echo"),
    ]);
    assert_eq!(body, b"HELLO UPSTREAM");
    next_logged();

    // The module sees the raw response, before upstream_compression gzips it.
    let (_, head, body) = curl::response(&[
        "-H".to_string(),
        "x-upstream-gzip: 1".into(),
        "-H".into(),
        "accept-encoding: gzip".into(),
        "-H".into(),
        "x-fill: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
        format!("http://{proxy}/headers"),
    ]);
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{head}"
    );
    let raw = next_logged();
    assert!(
        raw > body.len(),
        "module saw {raw} raw bytes, client got {}",
        body.len()
    );
}
