//! Crash reports to Sentry (feature `sentry`): the client a server starts, and the hubs that
//! keep apart the context of each service, connection and HTTP/2 stream.
//!
//! The `sentry` crate's panic integration reports a panic with the hub active on the panicking
//! thread. Tokio runs many tasks on one thread, so a thread's hub would mix their context: the
//! server gives each task it spawns a hub of its own, active while the task is polled
//! ([`Reported`]):
//!
//! * a service's task gets a hub tagged with the service's name ([`for_service`]);
//! * an accept loop shares the hub of its service ([`inherited`]);
//! * a connection, and each HTTP/2 stream, gets a hub of its own, derived from the one it was
//!   spawned from ([`isolated`]); the request being served is written into it
//!   ([`set_request`]), and replaced by the next request of the connection.
//!
//! Tasks spawned otherwise (by applications, or subrequests) report with their thread's hub,
//! which holds the client but no request.
//!
//! Hubs are bound whenever the spawning task's hub has a client with a DSN, so also for a
//! client the program started itself with `sentry::init` before
//! [`Server::run`](crate::server::Server::run). Otherwise nothing is bound: each spawn looks at
//! its thread's hub once, and a request's context is set only inside a hub bound here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pingora_http::RequestHeader;
use sentry::protocol::{Context as EventContext, Map, Value};
use sentry::{ClientInitGuard, ClientOptions, Hub, HubSwitchGuard};

tokio::task_local! {
    /// The hub of the connection or HTTP/2 stream this task serves, where the request goes.
    static SERVING: Arc<Hub>;
}

/// The running Sentry client: dropping it sends what is queued (for at most the client's
/// `shutdown_timeout`) and stops reporting.
pub(crate) struct Reporting {
    _guard: ClientInitGuard,
}

/// Starts the Sentry client of `options`, if any and if it has a DSN (its own, or
/// `SENTRY_DSN`). To be called in the process that serves: after daemonizing, since the
/// client's sending thread would not survive the fork.
pub(crate) fn start(options: Option<ClientOptions>) -> Option<Reporting> {
    let guard = sentry::init(options?);
    if !guard.is_enabled() {
        log::warn!("Sentry is configured without a DSN: panics are not reported");
        return None;
    }
    // `init` bound the client to this thread's hub. Threads take their first hub from the
    // main hub, which is this one only if this thread touched Sentry first.
    let current = Hub::current();
    let main = Hub::main();
    if !Arc::ptr_eq(&current, &main) {
        main.bind_client(current.client());
    }
    if let Some(dsn) = guard.dsn() {
        log::info!("panics are reported to Sentry at {}", dsn.host());
    }
    Some(Reporting { _guard: guard })
}

/// The hub active here, when it has a client with a DSN.
fn active_hub() -> Option<Arc<Hub>> {
    let hub = Hub::current();
    hub.client()
        .is_some_and(|client| client.is_enabled())
        .then_some(hub)
}

/// `fut` run with a hub of its own tagged `service: name`.
pub(crate) fn for_service<F: Future>(name: &str, fut: F) -> Reported<F> {
    let hub = active_hub().map(|parent| {
        let hub = Hub::new_from_top(parent);
        hub.configure_scope(|scope| scope.set_tag("service", name));
        Arc::new(hub)
    });
    Reported::new(hub, false, fut)
}

/// `fut` run with the hub active here (an accept loop, with its service's hub).
pub(crate) fn inherited<F: Future>(fut: F) -> Reported<F> {
    Reported::new(active_hub(), false, fut)
}

/// `fut` run with a hub of its own, derived from the one active here, where the request it
/// serves is recorded (a connection, or an HTTP/2 stream).
pub(crate) fn isolated<F: Future>(fut: F) -> Reported<F> {
    let hub = active_hub().map(|parent| Arc::new(Hub::new_from_top(parent)));
    Reported::new(hub, true, fut)
}

/// Records `req` as the request being served, in the hub of the connection or stream of this
/// task: its method, path (without the query) and version, never its header values (they may
/// hold credentials) nor its query (it may hold tokens).
pub(crate) fn set_request(req: &RequestHeader) {
    // Outside an isolated task (reporting off, or a task spawned elsewhere) nothing is set:
    // its hub may be its thread's, shared by other tasks.
    let _ = SERVING.try_with(|hub| {
        let mut request = Map::new();
        request.insert("method".into(), Value::from(req.method.as_str()));
        request.insert("path".into(), Value::from(req.uri.path()));
        request.insert("version".into(), Value::from(format!("{:?}", req.version)));
        hub.configure_scope(|scope| scope.set_context("request", EventContext::Other(request)));
    });
}

pin_project_lite::pin_project! {
    /// A future polled with its own Sentry hub active, or as it is when reporting is off.
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Reported<F> {
        hub: Option<Arc<Hub>>,
        // Whether the hub records the request served (see `set_request`).
        serving: bool,
        #[pin]
        inner: F,
    }
}

impl<F> Reported<F> {
    fn new(hub: Option<Arc<Hub>>, serving: bool, inner: F) -> Self {
        Reported {
            hub,
            serving,
            inner,
        }
    }
}

impl<F: Future> Future for Reported<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(hub) = this.hub else {
            return this.inner.poll(cx);
        };
        // Both are undone when the poll returns or unwinds; a panic is reported before that.
        let _active = HubSwitchGuard::new(Arc::clone(hub));
        if *this.serving {
            SERVING.sync_scope(Arc::clone(hub), || this.inner.poll(cx))
        } else {
            this.inner.poll(cx)
        }
    }
}
