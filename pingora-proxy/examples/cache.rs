//! A caching reverse proxy: responses are stored in memory (or on disk) and served from
//! there while fresh, following the HTTP caching rules (RFC 9111) by default.
//!
//! ```sh
//! cargo run -p pingora-proxy --example cache
//! curl -i 127.0.0.1:6191/          # Cache-Status: pingora; fwd=uri-miss; fwd-status=200; stored
//! curl -i 127.0.0.1:6191/          # Cache-Status: pingora; hit; ttl=9 -- and an Age field
//! curl -i 127.0.0.1:6191/max-age/2 # stale after 2 s, then revalidated with the origin
//! curl -i 127.0.0.1:6191/private   # never stored
//! ```
//!
//! On disk, surviving restarts (`--tiered` puts a memory tier in front of the disk):
//!
//! ```sh
//! cargo run -p pingora-proxy --example cache -- --disk /tmp/pingora-cache
//! cargo run -p pingora-proxy --example cache -- --disk /tmp/pingora-cache --tiered
//! ```
//!
//! A graceful upgrade (`SIGQUIT` to the old process, `-u` to the new one) hands the warm
//! disk cache over: once the old process handed its listening sockets over it stops writing
//! (read only: its last requests are still served from the cache) and releases the
//! directory; the new one, which served without the cache until then, rebuilds the index
//! from the files.
//!
//! `--listen` sets the proxy's address (port 0: any free port) and `--origin` an origin of
//! your own instead of the example's (on 127.0.0.1:7105). Once listening, the proxy prints
//! `listening on <address>`; with `--disk`, what it found in the directory first.

mod app;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use pingora_cache::{DiskCache, StorageRef};
use pingora_core::listeners::LocalAddrs;
use pingora_core::server::configuration::Opt;
use pingora_core::server::{ExecutionPhase, Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_proxy::http_proxy_service;
use tokio::sync::broadcast;

/// The example's own origin.
const ORIGIN: &str = "127.0.0.1:7105";

/// How long a new process at a graceful upgrade waits for the old one to release the disk
/// cache (the old one does when it stops serving, after the upgrade's overlap).
const HAND_OVER_WAIT: Duration = Duration::from_secs(120);

/// The command line: the server's options and the example's.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:6191")]
    listen: String,
    /// An origin (`ip:port`) to cache instead of the example's own.
    #[arg(long)]
    origin: Option<SocketAddr>,
    /// Keep the cache in this directory (it survives restarts) instead of in memory.
    #[arg(long, value_name = "DIR")]
    disk: Option<PathBuf>,
    /// With `--disk`: a memory tier in front of the disk store.
    #[arg(long, requires = "disk")]
    tiered: bool,
}

pub(crate) fn main() {
    env_logger::init();
    let args = Args::parse();
    let upgrading = args.server.upgrade;
    // The disk store, once open: a process that stops serving hands it over (read only).
    let disk: &'static OnceLock<&'static DiskCache> = Box::leak(Box::default());
    let storage: &'static OnceLock<StorageRef> = match &args.disk {
        // A new process at a graceful upgrade opens the store once the old one released it
        // (see `DiskOpener`), serving without the cache meanwhile.
        Some(_) if upgrading => Box::leak(Box::default()),
        Some(dir) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to open the disk cache");
            let (storage, store) = runtime
                .block_on(app::cache::open_disk(dir, args.tiered))
                .expect("open the disk cache");
            let _ = disk.set(store);
            Box::leak(Box::new(OnceLock::from(storage)))
        }
        None => app::cache::memory(),
    };
    let mut server = Server::new(Some(args.server)).expect("server set-up");
    server.bootstrap();
    if let Some(dir) = &args.disk {
        let opener = DiskOpener {
            dir: upgrading.then(|| dir.clone()),
            tiered: args.tiered,
            storage,
            disk,
            phases: Mutex::new(Some(server.watch_execution_phase())),
        };
        server.add_service(background_service("disk cache", opener));
    }

    let origin = match args.origin {
        Some(origin) => origin,
        None => {
            server.add_service(app::cache::origin_service(ORIGIN));
            ORIGIN.parse().expect("a socket address")
        }
    };
    let proxy_app = app::cache::CachingProxy { origin, storage };
    let mut proxy = http_proxy_service(&server.configuration, proxy_app);
    proxy.add_tcp(&args.listen);
    let addrs = proxy.local_addrs();
    let proxy = server.add_service(proxy);
    let reporter = server.add_service(background_service("ready", ReadyReporter { addrs }));
    reporter.add_dependency(&proxy);
    server.run_forever();
}

/// Opens the disk store of a new process at a graceful upgrade (`dir` set) once the old
/// process released it, and hands the store over (read only) when this process stops
/// serving: as soon as its listening sockets went to the new process, or at a shutdown.
struct DiskOpener {
    dir: Option<PathBuf>,
    tiered: bool,
    storage: &'static OnceLock<StorageRef>,
    disk: &'static OnceLock<&'static DiskCache>,
    /// The server's phases: the store is handed over as soon as the listening sockets are.
    phases: Mutex<Option<broadcast::Receiver<ExecutionPhase>>>,
}

/// Waits until this process stops serving for good: its listening sockets were handed to a
/// new process (a graceful upgrade), or a shutdown began.
async fn stopped_serving(
    shutdown: &mut ShutdownWatch,
    phases: Option<broadcast::Receiver<ExecutionPhase>>,
) {
    let handed_over = async {
        let Some(mut phases) = phases else {
            return std::future::pending().await;
        };
        loop {
            match phases.recv().await {
                Ok(ExecutionPhase::GracefulUpgradeCloseTimeout(_)) => return,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    };
    tokio::select! {
        () = handed_over => {}
        _ = shutdown.changed() => {}
    }
}

#[async_trait]
impl BackgroundService for DiskOpener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Some(dir) = &self.dir {
            let opened = tokio::select! {
                opened = app::cache::open_disk_within(dir, self.tiered, HAND_OVER_WAIT) => opened,
                _ = shutdown.changed() => return,
            };
            match opened {
                Ok((storage, store)) => {
                    let _ = self.disk.set(store);
                    let _ = self.storage.set(storage);
                    eprintln!("disk cache taken over");
                }
                Err(e) => eprintln!("no disk cache: {e}"),
            }
        }
        let phases = self.phases.lock().ok().and_then(|mut p| p.take());
        stopped_serving(&mut shutdown, phases).await;
        if let Some(store) = self.disk.get() {
            // The order first: the next process reads it once the directory is released.
            app::cache::save_eviction_state(store.dir()).await;
            store.set_read_only();
            eprintln!("disk cache handed over (read only)");
        }
    }
}

/// Prints where the proxy listens, once it does.
struct ReadyReporter {
    addrs: LocalAddrs,
}

#[async_trait]
impl BackgroundService for ReadyReporter {
    async fn start(&self, _shutdown: ShutdownWatch) {
        match self.addrs.wait().await {
            Ok(addrs) => {
                for addr in addrs {
                    eprintln!("listening on {addr}");
                }
            }
            Err(e) => eprintln!("not listening: {e}"),
        }
    }
}
