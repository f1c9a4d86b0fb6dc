//! A zero-downtime upgrade of a daemonized server: the new process takes the listening socket
//! over from the old one once it is ready, and the old one finishes its requests, then exits.
//!
//! ```sh
//! # 1. Start the first process as a daemon. The command returns once the daemon serves
//! #    (about two seconds: it warms up first).
//! cargo run -p pingora --example graceful_upgrade -- -d
//! curl http://127.0.0.1:6204/                    # hello from pid <old>
//!
//! # 2. A slow request, still in flight during the upgrade.
//! curl 'http://127.0.0.1:6204/?sleep=10' &
//!
//! # 3. Start the new process with -u (upgrade), then, within 15 seconds, ask the old one to
//! #    hand its sockets over with SIGQUIT. Read the old pid first: the new daemon moves the
//! #    pid file to graceful_upgrade.pid.old when it starts.
//! old=$(cat /tmp/pingora-graceful-upgrade/graceful_upgrade.pid)
//! cargo run -p pingora --example graceful_upgrade -- -d -u & starting=$!
//! kill -QUIT $old
//! wait $starting   # the `-d -u` command returns once the new daemon serves
//!
//! # 4. The new process serves new connections (for five seconds the old one may still
//! #    accept some); the slow request of step 2 is answered by the old one, which exits
//! #    once it has finished.
//! curl http://127.0.0.1:6204/                    # hello from pid <new>
//! kill -TERM $(cat /tmp/pingora-graceful-upgrade/graceful_upgrade.pid)   # stop for good
//! ```
//!
//! How the steps work:
//!
//! * The configuration is built in code (`Server::new_with_opt_and_conf`), with its files in
//!   `--dir` (`/tmp/pingora-graceful-upgrade` by default): the pid file, the error log (where
//!   a daemon's log goes) and `upgrade_sock`, the Unix socket over which the old process
//!   sends its listening sockets to the new one.
//! * `daemon_wait_for_ready` makes the command that starts a daemon (`-d`) wait until the
//!   daemon's services are all ready, instead of returning as soon as it forked: a script or
//!   process manager that runs it knows when the new process really serves.
//! * The services form a chain: `BG warm up` (standing for loading routes or filling caches;
//!   `--warm-up-ms`, 2000 by default) → `BG Bootstrap Service` (from
//!   `Server::bootstrap_as_a_service()`; with `-u` it receives the old process's sockets) →
//!   `hello` (the HTTP service, on those sockets). So the old process keeps serving alone
//!   while the new one warms up, and only hands over to a process that is ready.
//! * On `SIGQUIT` the old process sends its sockets, waits until the new process confirms
//!   that it serves on them, keeps accepting for five more seconds (so no connection is
//!   refused in between), then stops accepting, finishes the requests in flight (for at most
//!   `grace_period_seconds`, 30 here) and exits.
//!
//! `hello` is a plain `ServeHttp` application given directly to `Service::new`.

mod app;

use std::num::NonZeroU64;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pingora::services::ServiceReadyNotifier;

/// The command line: the server's options (`-d`, `-u`, ...), and this example's.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the HTTP service listens.
    #[arg(long, default_value = "127.0.0.1:6204")]
    listen: String,
    /// The directory of the pid file, the error log and the upgrade socket.
    #[arg(long, default_value = "/tmp/pingora-graceful-upgrade")]
    dir: PathBuf,
    /// How long the warm-up takes before the bootstrap, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    warm_up_ms: u64,
}

/// Stands for the preparation a new process does before it may take traffic.
#[derive(Debug)]
struct WarmUp {
    duration: Duration,
}

#[async_trait]
impl BackgroundService for WarmUp {
    async fn start_with_ready_notifier(
        &self,
        _shutdown: ShutdownWatch,
        ready_notifier: ServiceReadyNotifier,
    ) {
        eprintln!("pid {}: warming up", std::process::id());
        tokio::time::sleep(self.duration).await;
        eprintln!("pid {}: warmed up", std::process::id());
        // The bootstrap, and so the socket hand-over, may start now.
        ready_notifier.notify_ready();
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("cannot create {}: {e}", args.dir.display());
        std::process::exit(1);
    }
    let in_dir = |file: &str| args.dir.join(file).to_string_lossy().into_owned();
    let conf = ServerConf {
        pid_file: in_dir("graceful_upgrade.pid"),
        upgrade_sock: in_dir("graceful_upgrade.sock"),
        error_log: Some(in_dir("graceful_upgrade.log")),
        daemon_wait_for_ready: true,
        daemon_ready_timeout_seconds: NonZeroU64::new(60),
        // Leaves time to send SIGQUIT after starting the new process (one try a second).
        upgrade_sock_connect_accept_max_retries: Some(15),
        grace_period_seconds: Some(30),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    // `-d` and `-u` come from the command line; a `-c` file would be ignored.
    let mut server = Server::new_with_opt_and_conf(Some(args.server), conf);

    let warm_up = server.add_service(background_service(
        "warm up",
        WarmUp {
            duration: Duration::from_millis(args.warm_up_ms),
        },
    ));
    let bootstrap = server.bootstrap_as_a_service();
    bootstrap.add_dependency(&warm_up);

    let mut hello = Service::new("hello".to_string(), app::hello::Hello);
    hello.add_tcp(&args.listen);
    let hello = server.add_service(hello);
    // A listening service needs the sockets the bootstrap received.
    hello.add_dependency(&bootstrap);

    eprintln!(
        "pid {}: hello on http://{} (files in {})",
        std::process::id(),
        args.listen,
        args.dir.display()
    );
    server.run_forever();
}
