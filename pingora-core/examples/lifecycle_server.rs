//! A small HTTP server to try the process lifecycle on: graceful upgrade (`-u` + `SIGQUIT`),
//! graceful shutdown (`SIGTERM`), fast shutdown (`SIGINT`) and daemon mode (`-d`).
//!
//! ```sh
//! cat > /tmp/lifecycle.yaml <<EOF
//! ---
//! version: 1
//! threads: 2
//! upgrade_sock: /tmp/lifecycle_upgrade.sock
//! pid_file: /tmp/lifecycle.pid
//! error_log: /tmp/lifecycle.err
//! listen: ["127.0.0.1:6190"]
//! EOF
//! cargo run -p pingora-core --example lifecycle_server -- -c /tmp/lifecycle.yaml &
//! curl http://127.0.0.1:6190/                       # hello from pid <old>
//! curl -N 'http://127.0.0.1:6190/stream?chunks=50&ms=100' &
//! # Upgrade: start the new process first, then tell the old one to hand over.
//! cargo run -p pingora-core --example lifecycle_server -- -u -c /tmp/lifecycle.yaml &
//! kill -QUIT <old pid>
//! curl http://127.0.0.1:6190/                       # hello from pid <new>
//! ```
//!
//! The configuration file is the server's (see `ServerConf`) plus keys of this example:
//! `listen`, the addresses to listen on (default `127.0.0.1:6190`), `sentry_dsn`, where
//! panics are reported when built with the `sentry` feature, and `bootstrap_as_a_service`
//! (the bootstrap runs as a service, after a half-second warm-up, which the HTTP service does
//! not wait for, except when upgrading). Unknown keys are ignored by
//! `ServerConf`, so both read the same file.
//!
//! Routes: `/stream?chunks=N&ms=M` answers with `N` chunks (default 10), one every `M`
//! milliseconds (default 100); `/panic` panics (the connection closes); anything else answers
//! `hello from pid <pid>`.
//!
//! On standard error (the error log when daemonized) it prints `ready <addresses> pid <pid>`
//! once listening, and, when it stops, the execution phases it went through (`phase <name>`)
//! and `exited pid <pid>`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::listeners::LocalAddrs;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::Opt;
use pingora_core::server::{ExecutionPhase, RunArgs, Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;
use pingora_http::ResponseHeader;
use serde::Deserialize;

/// The keys of the configuration file that belong to this example.
#[derive(Debug, Deserialize)]
struct ExampleConf {
    #[serde(default = "default_listen")]
    listen: Vec<String>,
    #[serde(default)]
    sentry_dsn: Option<String>,
    /// Bootstrap as a service (`Server::bootstrap_as_a_service`) that the HTTP service does
    /// not wait for, except in an upgrading process (`-u`), which must take the old sockets.
    #[serde(default)]
    bootstrap_as_a_service: bool,
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:6190".to_string()]
}

/// Serves `/` and `/stream`.
#[derive(Debug)]
struct LifecycleApp;

/// Ready half a second after it starts: a slow initialisation that the bootstrap waits for.
#[derive(Debug)]
struct WarmUp;

/// Prints where the server listens, once it does.
#[derive(Debug)]
struct ReadyReporter {
    addrs: LocalAddrs,
}

pub(crate) fn main() {
    env_logger::init();
    let opt = Opt::parse_args();
    let example = match &opt.conf {
        Some(path) => read_example_conf(path),
        None => ExampleConf {
            listen: default_listen(),
            sentry_dsn: None,
            bootstrap_as_a_service: false,
        },
    };
    let mut server = match Server::new(Some(opt)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(1);
        }
    };
    let mut phases = server.watch_execution_phase();
    if let Some(dsn) = &example.sentry_dsn {
        report_panics_to(&mut server, dsn);
    }
    let upgrading = server.options.as_ref().is_some_and(|o| o.upgrade);
    let bootstrap = if example.bootstrap_as_a_service {
        // The bootstrap waits for a slow warm-up, so the HTTP service (which does not wait
        // for the bootstrap) starts listening first.
        let warm_up = server.add_service(background_service("warm-up", WarmUp));
        let bootstrap = server.bootstrap_as_a_service();
        bootstrap.add_dependency(&warm_up);
        Some(bootstrap)
    } else {
        server.bootstrap();
        None
    };

    let mut service = Service::new("lifecycle http".to_string(), LifecycleApp);
    for addr in &example.listen {
        service.add_tcp(addr);
    }
    let addrs = service.local_addrs();
    let http = server.add_service(service);
    if let (Some(bootstrap), true) = (&bootstrap, upgrading) {
        http.add_dependency(bootstrap);
    }
    let reporter = server.add_service(background_service("ready", ReadyReporter { addrs }));
    reporter.add_dependency(&http);

    server.run(RunArgs::default());

    // Every phase was kept in the channel; list them now that the server has stopped.
    while let Ok(phase) = phases.try_recv() {
        eprintln!("phase {}", phase_name(&phase));
    }
    eprintln!("exited pid {}", std::process::id());
    std::process::exit(0);
}

/// The keys of this example in the configuration file at `path`.
fn read_example_conf(path: &str) -> ExampleConf {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // `Server::new` reports unreadable files; a file without the keys gets the defaults.
    serde_yaml::from_str::<ExampleConf>(&text).unwrap_or(ExampleConf {
        listen: default_listen(),
        sentry_dsn: None,
        bootstrap_as_a_service: false,
    })
}

/// Has `server` report panics to the Sentry project at `dsn`.
#[cfg(feature = "sentry")]
fn report_panics_to(server: &mut Server, dsn: &str) {
    match dsn.parse() {
        Ok(dsn) => server.set_sentry_config(pingora_core::sentry::ClientOptions {
            dsn: Some(dsn),
            ..Default::default()
        }),
        Err(e) => eprintln!("not reporting panics: bad sentry_dsn: {e}"),
    }
}

/// Without the `sentry` feature there is nothing to report panics with.
#[cfg(not(feature = "sentry"))]
fn report_panics_to(_server: &mut Server, _dsn: &str) {
    eprintln!("not reporting panics: built without the `sentry` feature");
}

/// The name of a phase, without the runtime handle some carry.
fn phase_name(phase: &ExecutionPhase) -> String {
    let text = format!("{phase:?}");
    text.split('(').next().unwrap_or_default().to_string()
}

#[async_trait]
impl HttpServerApp for LifecycleApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !session.read_request().await.ok()? {
            return None;
        }
        if *shutdown.borrow() {
            // The server is draining: this is the connection's last request.
            session.set_keepalive(None);
        }
        let uri = session.req_header().uri.clone();
        if uri.path() == "/panic" {
            panic!("panic requested in pid {}", std::process::id());
        }
        let written = if uri.path() == "/stream" {
            let chunks = query_number(uri.query(), "chunks").unwrap_or(10);
            let ms = query_number(uri.query(), "ms").unwrap_or(100);
            stream(&mut session, chunks, Duration::from_millis(ms)).await
        } else {
            let body = format!("hello from pid {}\n", std::process::id());
            respond(&mut session, body).await
        };
        if let Err(e) = written {
            log::debug!("cannot answer {uri}: {e}");
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(Some(stream)) => Some(ReusedHttpStream::new(stream, Some(settings))),
            _ => None,
        }
    }
}

/// Answers with `body` in one piece.
async fn respond(session: &mut ServerSession, body: String) -> pingora_error::Result<()> {
    let mut resp = ResponseHeader::build(200, None)?;
    resp.insert_header("Content-Type", "text/plain")?;
    resp.insert_header("Content-Length", body.len().to_string())?;
    session.write_response_header(Box::new(resp)).await?;
    session.write_response_body(Bytes::from(body), true).await
}

/// Answers with `chunks` chunks, `pause` apart.
async fn stream(
    session: &mut ServerSession,
    chunks: u64,
    pause: Duration,
) -> pingora_error::Result<()> {
    let mut resp = ResponseHeader::build(200, None)?;
    resp.insert_header("Content-Type", "text/plain")?;
    resp.insert_header("Transfer-Encoding", "chunked")?;
    session.write_response_header(Box::new(resp)).await?;
    let pid = std::process::id();
    for i in 0..chunks {
        let line = format!("chunk {i} of {chunks} from pid {pid}\n");
        session
            .write_response_body(Bytes::from(line), false)
            .await?;
        tokio::time::sleep(pause).await;
    }
    session.write_response_body(Bytes::new(), true).await
}

/// The number `name=<n>` in a query string.
fn query_number(query: Option<&str>, name: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.parse().ok())
}

#[async_trait]
impl BackgroundService for ReadyReporter {
    async fn start(&self, _shutdown: ShutdownWatch) {
        match self.addrs.wait().await {
            Ok(addrs) => {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                eprintln!("ready {} pid {}", addrs.join(","), std::process::id());
            }
            Err(e) => eprintln!("not listening: {e}"),
        }
    }
}

#[async_trait]
impl BackgroundService for WarmUp {
    async fn start_with_ready_notifier(
        &self,
        _shutdown: ShutdownWatch,
        ready_notifier: pingora_core::services::ServiceReadyNotifier,
    ) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ready_notifier.notify_ready();
    }
}
