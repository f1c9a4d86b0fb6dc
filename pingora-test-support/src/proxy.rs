//! A pingora-proxy service under test, in a [`TestServer`] on `127.0.0.1:0` (feature `proxy`).

use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::services::listening::Service;
use pingora_proxy::{HttpProxy, ProxyHttp, ProxyServiceBuilder};

use crate::{TestServer, TestService};

/// Builds and starts a proxy running an application; by default plaintext with the default
/// [`ServerConf`] for the proxy's own settings (connector, retries).
#[derive(Debug)]
#[must_use = "a builder does nothing until started"]
pub struct ProxyUnderTest<SV> {
    app: SV,
    conf: ServerConf,
    options: Option<HttpServerOptions>,
    tls: Option<TlsSettings>,
    configure: Option<Configure<SV>>,
}

/// A change to the proxy application before it starts.
struct Configure<SV>(Box<dyn FnOnce(&mut HttpProxy<SV>) + Send>);

impl<SV> std::fmt::Debug for Configure<SV> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Configure")
    }
}

impl<SV> ProxyUnderTest<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// A proxy running `app`.
    pub fn new(app: SV) -> Self {
        ProxyUnderTest {
            app,
            conf: ServerConf::default(),
            options: None,
            tls: None,
            configure: None,
        }
    }

    /// Changes the proxy application (its public settings, such as `request_id`) before it
    /// starts.
    pub fn configure(mut self, change: impl FnOnce(&mut HttpProxy<SV>) + Send + 'static) -> Self {
        self.configure = Some(Configure(Box::new(change)));
        self
    }

    /// The configuration the proxy service is built with.
    pub fn conf(mut self, conf: ServerConf) -> Self {
        self.conf = conf;
        self
    }

    /// The options for serving clients (h2c, keepalive limits ...).
    pub fn server_options(mut self, options: Option<HttpServerOptions>) -> Self {
        self.options = options;
        self
    }

    /// Serves clients over TLS with `settings` instead of plaintext.
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.tls = Some(settings);
        self
    }

    /// Starts the proxy as a [`TestService`]: a task of the current runtime, with no `Server`
    /// and no threads of its own, so that the test sees the proxy's tasks among the runtime's
    /// (see [`leaks::alive_tasks`](crate::leaks::alive_tasks)). Returns once it listens.
    ///
    /// # Panics
    ///
    /// If the endpoint cannot be bound within [`TIMEOUT`](crate::TIMEOUT).
    pub async fn serve(self) -> TestService {
        let ProxyUnderTest {
            app,
            conf,
            options,
            tls,
            configure,
        } = self;
        let service = build(app, &Arc::new(conf), options, tls, configure);
        TestService::run(service).await.expect("binding failed")
    }

    /// Starts the proxy; returns its server (stopped when dropped) and its address.
    pub fn start(self) -> (TestServer, SocketAddr) {
        let ProxyUnderTest {
            app,
            conf,
            options,
            tls,
            configure,
        } = self;
        let conf = Arc::new(conf);
        let (server, addrs) = TestServer::start(move |server| {
            let service = build(app, &conf, options, tls, configure);
            let addrs = service.local_addrs();
            server.add_service(service);
            vec![addrs]
        });
        (server, addrs[0])
    }
}

/// The proxy service running `app`, listening on `127.0.0.1:0`.
fn build<SV>(
    app: SV,
    conf: &Arc<ServerConf>,
    options: Option<HttpServerOptions>,
    tls: Option<TlsSettings>,
    configure: Option<Configure<SV>>,
) -> Service<HttpProxy<SV>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let mut builder = ProxyServiceBuilder::new(conf, app);
    if let Some(options) = options {
        builder = builder.server_options(options);
    }
    let mut service = builder.build();
    if let (Some(configure), Some(proxy)) = (configure, service.app_logic_mut()) {
        (configure.0)(proxy);
    }
    match tls {
        Some(settings) => service.add_tls_with_settings("127.0.0.1:0", None, settings),
        None => service.add_tcp("127.0.0.1:0"),
    }
    service
}

/// Starts a plaintext proxy running `app` with the default configuration.
pub fn start_proxy<SV>(app: SV) -> (TestServer, SocketAddr)
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    ProxyUnderTest::new(app).start()
}

/// Starts a plaintext proxy running `app` with `conf` (for the connector and retry settings)
/// and `options` for serving clients.
pub fn start_proxy_with<SV>(
    app: SV,
    conf: ServerConf,
    options: Option<HttpServerOptions>,
) -> (TestServer, SocketAddr)
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    ProxyUnderTest::new(app)
        .conf(conf)
        .server_options(options)
        .start()
}
