//! [`TestService`]: one listening pingora service run as a task of the test's runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::LocalAddrs;
use pingora_core::protocols::tls::TlsProvider;
use pingora_core::services::listening::Service;
use pingora_core::services::Service as _;
use pingora_error::Result;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::leaks::Baseline;
use crate::raw::RawConn;
use crate::TIMEOUT;

/// A listening service on `127.0.0.1:0`, run as a task of the test's runtime (no `Server`,
/// no threads of its own). Dropping it stops the service.
#[derive(Debug)]
pub struct TestService {
    /// The address the service is bound to.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// The sockets on the port and the tasks of the runtime once the service was listening.
    baseline: Baseline,
}

impl TestService {
    /// Starts serving plaintext connections with `app`; returns once the port is bound.
    ///
    /// # Panics
    ///
    /// If the port is not bound within [`TIMEOUT`].
    pub async fn start<A: ServerApp + Send + Sync + 'static>(app: A) -> TestService {
        let mut service = Service::new("test service".to_string(), app);
        service.add_tcp("127.0.0.1:0");
        Self::run(service).await.expect("binding failed")
    }

    /// Starts serving TLS connections with `app`, `settings` and `provider`.
    ///
    /// # Panics
    ///
    /// If the endpoint cannot be bound (see [`TestService::try_start_tls`]) or not in time.
    pub async fn start_tls<A: ServerApp + Send + Sync + 'static>(
        app: A,
        provider: &Arc<dyn TlsProvider>,
        settings: TlsSettings,
    ) -> TestService {
        Self::try_start_tls(app, provider, settings)
            .await
            .expect("binding failed")
    }

    /// [`TestService::start_tls`], returning the error of a service that cannot start (a key
    /// that does not load, say) instead of panicking.
    ///
    /// # Errors
    ///
    /// The error the service's endpoint failed to bind with.
    pub async fn try_start_tls<A: ServerApp + Send + Sync + 'static>(
        app: A,
        provider: &Arc<dyn TlsProvider>,
        mut settings: TlsSettings,
    ) -> Result<TestService> {
        settings.set_provider(Arc::clone(provider));
        let mut service = Service::new("test tls service".to_string(), app);
        service.add_tls_with_settings("127.0.0.1:0", None, settings);
        Self::run(service).await
    }

    /// Runs `service`, whose endpoints are already added; waits for its first one to be bound.
    ///
    /// # Errors
    ///
    /// The error the first endpoint failed to bind with.
    pub async fn run<A: ServerApp + Send + Sync + 'static>(
        mut service: Service<A>,
    ) -> Result<TestService> {
        let addrs = service.local_addrs();
        let (shutdown, watch) = watch::channel(false);
        let task = tokio::spawn(async move { service.start_service(None, watch, 1).await });
        let addr = bound(&addrs).await?;
        let baseline = Baseline::local()
            .with_port(addr.port())
            .with_tasks(&tokio::runtime::Handle::current());
        Ok(TestService {
            addr,
            shutdown,
            task,
            baseline,
        })
    }

    /// A new raw HTTP/1 client connection to the service.
    pub async fn connect(&self) -> RawConn<TcpStream> {
        RawConn::connect(self.addr).await
    }

    /// Waits until the service is back to what it had when it started listening: no socket
    /// left on its port but the listener, no task left on the runtime but those it started
    /// with. Call it once the test's clients are gone (dropped) to show that nothing leaked.
    ///
    /// # Panics
    ///
    /// If the counts do not come back within [`TIMEOUT`]; `what` names the check.
    pub async fn assert_settled(&self, what: &str) {
        self.baseline.settle(what).await;
    }

    /// Starts a graceful shutdown (what the server does on SIGTERM) without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Shuts the service down gracefully and waits until it has finished.
    ///
    /// # Panics
    ///
    /// If the service does not stop within [`TIMEOUT`] or its task panicked.
    pub async fn stop(self) {
        self.begin_shutdown();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("the service did not stop")
            .expect("the service task panicked");
    }
}

/// Waits for the first address of `addrs` to be bound; returns it.
///
/// # Errors
///
/// The error binding failed with.
///
/// # Panics
///
/// If nothing is bound within [`TIMEOUT`], or the endpoint is not TCP.
pub async fn bound(addrs: &LocalAddrs) -> Result<SocketAddr> {
    let bound = tokio::time::timeout(TIMEOUT, addrs.wait())
        .await
        .expect("binding timed out")?;
    Ok(*bound[0].as_inet().expect("a TCP endpoint"))
}
