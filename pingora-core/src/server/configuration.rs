//! Server configuration: the YAML file ([`ServerConf`]) and the command line ([`Opt`]).
//!
//! Every key of the configuration file is optional: a missing key takes the default documented
//! on its field. Keys this crate does not know are ignored, so an application can keep its own
//! settings in the same file and parse them itself.
//!
//! ```
//! use pingora_core::server::configuration::ServerConf;
//!
//! let conf = ServerConf::from_yaml("---\nversion: 1\nthreads: 4\nmy_app_key: ignored\n").unwrap();
//! assert_eq!(conf.threads, 4);
//! assert_eq!(conf.grace_period_seconds, None); // 300 s when unset
//! assert!(ServerConf::from_yaml("threads: 0").is_err());
//! ```

use std::ffi::OsString;
use std::fmt::Display;
use std::net::{IpAddr, SocketAddr as InetSocketAddr};
use std::num::NonZeroU64;
use std::path::Path;

use clap::Parser;
use log::warn;
use pingora_error::{Error, ErrorType, OrErr, Result};
use serde::{Deserialize, Serialize};

use crate::connectors::ConnectorOptions;

/// The default cap on retries of retryable proxy errors.
const DEFAULT_MAX_RETRIES: usize = 16;

/// The server configuration, usually read from a YAML file.
///
/// Missing keys take their defaults; unknown keys are ignored. Fields documented as unstable may
/// be renamed or removed in a later release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConf {
    /// The version of the configuration format. `0` by default; [`ServerConf::new`] gives 1.
    pub version: usize,
    /// Whether to run the server in the background (also turned on by `-d`). Default `false`.
    ///
    /// [`Server::run`](super::Server::run) then forks: the process started exits (at once, or
    /// once the daemon is ready with `daemon_wait_for_ready`) and the daemon runs in a session
    /// of its own, with the settings below. Threads started before `run` do not survive the
    /// fork.
    pub daemon: bool,
    /// When daemonized, the file standard error is appended to (created if needed); standard
    /// output and input go to `/dev/null`. Default: none (standard error goes to `/dev/null`
    /// too).
    pub error_log: Option<String>,
    /// When daemonized, the file the process ID is written to. An existing file (such as that
    /// of the process being upgraded) is first renamed to `<pid_file>.old`. Default
    /// `/tmp/pingora.pid`.
    pub pid_file: String,
    /// The Unix socket through which an old and a new server process hand the listening sockets
    /// over during a graceful upgrade. Both must agree on it. Default
    /// `/tmp/pingora_upgrade.sock`.
    pub upgrade_sock: String,
    /// When daemonized, the user to switch to (with its supplementary groups), after the pid
    /// file and error log are opened. Listening sockets are bound later, as that user, unless
    /// they are taken over in a graceful upgrade. Default: none.
    pub user: Option<String>,
    /// When daemonized, the group to switch to. Default: none (the user's primary group when
    /// `user` is set).
    pub group: Option<String>,
    /// When daemonized, the working directory to change to. Default: none (unchanged).
    pub working_directory: Option<String>,
    /// How many worker threads **each** service gets; services do not share threads. Default 1.
    pub threads: usize,
    /// How many tasks accept connections in parallel on each listening socket. Default 1.
    pub listener_tasks_per_fd: usize,
    /// Whether the threads of a service steal work from each other. Default `true`; `false`
    /// runs each thread as its own single-threaded runtime.
    pub work_stealing: bool,
    /// The CA file that upstream TLS certificates are verified against. Default: the TLS
    /// library's system trust store.
    pub ca_file: Option<String>,
    /// The most s2n TLS client configurations the upstream connectors cache (s2n backend
    /// only; see [`ConnectorOptions::s2n_config_cache_size`]); `0` disables the cache.
    /// Default: none (1024).
    pub s2n_config_cache_size: Option<usize>,
    /// After a graceful shutdown starts, how long to wait for services to finish before their
    /// runtimes are shut down. Default: none (300 seconds). The wait ends early once every
    /// service has finished.
    pub grace_period_seconds: Option<u64>,
    /// How long the runtimes are given to stop at the end of a graceful shutdown. Default: none
    /// (5 seconds).
    pub graceful_shutdown_timeout_seconds: Option<u64>,
    /// IPv4 addresses upstream connections are made from, one chosen at random. Default: none.
    /// Unstable.
    pub client_bind_to_ipv4: Vec<String>,
    /// IPv6 addresses upstream connections are made from, one chosen at random. Default: none.
    /// Unstable.
    pub client_bind_to_ipv6: Vec<String>,
    /// How many idle upstream connections are kept for reuse. Default 128. Unstable.
    pub upstream_keepalive_pool_size: usize,
    /// How many dedicated runtimes establish upstream connections. Default: none (connections
    /// are made on the service's own threads). Unstable.
    pub upstream_connect_offload_threadpools: Option<usize>,
    /// How many threads each upstream-connect runtime has. Default: none. Unstable.
    pub upstream_connect_offload_thread_per_pool: Option<usize>,
    /// Whether upstream TLS keys are written to the file named by `$SSLKEYLOGFILE`, for
    /// debugging with tools such as Wireshark. Default `false`. Unstable.
    pub upstream_debug_ssl_keylog: bool,
    /// The most times a retryable proxy error is retried: a fail-safe. Default 16.
    pub max_retries: usize,
    /// How many times, one second apart, connecting to (old process) and accepting on (new
    /// process) the upgrade socket are tried during a graceful upgrade. Default: none (5).
    pub upgrade_sock_connect_accept_max_retries: Option<usize>,
    /// The most threads in each runtime's blocking pool. Default: none (Tokio's 512).
    pub max_blocking_threads: Option<usize>,
    /// How long an idle blocking thread is kept, in seconds. Default: none (Tokio's 10).
    pub blocking_threads_ttl_seconds: Option<u64>,
    /// When daemonizing, whether the process started waits until the daemon is ready (every
    /// service started and ready, listening services bound) before exiting, with status 0;
    /// it exits with status 1 if the daemon exits first or is not ready in time. Useful under
    /// a supervisor such as systemd (`Type=forking`). Default `false`.
    pub daemon_wait_for_ready: bool,
    /// How long the parent waits for the daemon to be ready, in seconds. Default: none (600).
    pub daemon_ready_timeout_seconds: Option<NonZeroU64>,
    /// Accepted for compatibility and unused: the daemon reports readiness through a pipe
    /// inherited from its parent, which cannot be refused, rather than a signal that a
    /// privilege drop could make fail and retry. Default: none.
    pub daemon_notify_timeout_seconds: Option<NonZeroU64>,
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            version: 0,
            daemon: false,
            error_log: None,
            pid_file: "/tmp/pingora.pid".to_string(),
            upgrade_sock: "/tmp/pingora_upgrade.sock".to_string(),
            user: None,
            group: None,
            working_directory: None,
            threads: 1,
            listener_tasks_per_fd: 1,
            work_stealing: true,
            ca_file: None,
            s2n_config_cache_size: None,
            grace_period_seconds: None,
            graceful_shutdown_timeout_seconds: None,
            client_bind_to_ipv4: vec![],
            client_bind_to_ipv6: vec![],
            upstream_keepalive_pool_size: 128,
            upstream_connect_offload_threadpools: None,
            upstream_connect_offload_thread_per_pool: None,
            upstream_debug_ssl_keylog: false,
            max_retries: DEFAULT_MAX_RETRIES,
            upgrade_sock_connect_accept_max_retries: None,
            max_blocking_threads: None,
            blocking_threads_ttl_seconds: None,
            daemon_wait_for_ready: false,
            daemon_ready_timeout_seconds: None,
            daemon_notify_timeout_seconds: None,
        }
    }
}

/// The command-line options of a Pingora server.
///
/// Build it from the process arguments with [`Opt::parse_args`], from any list of arguments
/// with [`Opt::parse_from_args`], or directly.
///
/// ```
/// use pingora_core::server::configuration::Opt;
///
/// let opt = Opt::parse_from_args(["server", "-t", "-c", "conf.yaml"]);
/// assert!(opt.test);
/// assert_eq!(opt.conf.as_deref(), Some("conf.yaml"));
/// ```
#[derive(Parser, Debug, Default, Clone, PartialEq, Eq)]
#[clap(name = "basic", long_about = None)]
pub struct Opt {
    /// Take over the listening sockets of a running server (graceful upgrade): wait on
    /// `upgrade_sock` for the old server to send them when it receives `SIGQUIT`.
    #[clap(
        short,
        long,
        help = "Take over the listening sockets of the running server (graceful upgrade): \
                start this process, then send SIGQUIT to the old one."
    )]
    pub upgrade: bool,

    /// Run in the background (same as `daemon: true` in the configuration).
    #[clap(short, long, help = "Run in the background as a daemon.")]
    pub daemon: bool,

    /// Accepted and ignored, so that `cargo test -- --nocapture` arguments do not upset a
    /// server parsing its command line.
    #[clap(long, hide = true)]
    pub nocapture: bool,

    /// Test that the server can start, then exit: [`Server::bootstrap`] exits with status 0
    /// once the configuration has been validated.
    ///
    /// [`Server::bootstrap`]: crate::server::Server::bootstrap
    #[clap(
        short,
        long,
        help = "Test that the configuration is valid and the server can start, then exit."
    )]
    pub test: bool,

    /// The path to the configuration file (see [`ServerConf`]).
    #[clap(short, long, help = "The path to the configuration file.")]
    pub conf: Option<String>,
}

// === impl ServerConf ===

impl ServerConf {
    /// The default configuration of version 1.
    ///
    /// Returns an `Option` for compatibility; it is always `Some`.
    pub fn new() -> Option<Self> {
        Some(ServerConf {
            version: 1,
            ..ServerConf::default()
        })
    }

    /// The default configuration of version 1 with the command-line options `opt` applied.
    ///
    /// Returns an `Option` for compatibility; it is always `Some`.
    pub fn new_with_opt_override(opt: &Opt) -> Option<Self> {
        let mut conf = Self::new()?;
        conf.merge_with_opt(opt);
        Some(conf)
    }

    /// Reads and validates the YAML configuration file at `path`.
    ///
    /// # Errors
    ///
    /// A [`ErrorType::ReadError`] naming the file if it cannot be read, is not valid YAML for
    /// this structure, or fails [`ServerConf::validate`].
    pub fn load_from_yaml<P>(path: P) -> Result<Self>
    where
        P: AsRef<Path> + Display,
    {
        let text = std::fs::read_to_string(&path).or_err_with(ErrorType::ReadError, || {
            format!("unable to read configuration file {path}")
        })?;
        log::debug!("configuration read from {path}");
        Self::from_yaml(&text).map_err(|e| e.more_context(format!("in configuration file {path}")))
    }

    /// Reads the configuration file named by `opt.conf` and applies the other options of `opt`.
    ///
    /// # Errors
    ///
    /// As [`ServerConf::load_from_yaml`], or a [`ErrorType::ReadError`] if `opt.conf` is not
    /// set.
    pub fn load_yaml_with_opt_override(opt: &Opt) -> Result<Self> {
        let Some(path) = &opt.conf else {
            return Error::e_explain(ErrorType::ReadError, "no configuration file path given");
        };
        let mut conf = Self::load_from_yaml(path)?;
        conf.merge_with_opt(opt);
        Ok(conf)
    }

    /// Parses and validates a configuration from YAML text.
    ///
    /// # Errors
    ///
    /// A [`ErrorType::ReadError`] if the text is not valid YAML for this structure (the cause
    /// says where), or if it fails [`ServerConf::validate`].
    pub fn from_yaml(conf_str: &str) -> Result<Self> {
        let conf: ServerConf = serde_yaml::from_str(conf_str)
            .or_err(ErrorType::ReadError, "invalid server configuration YAML")?;
        log::trace!("loaded configuration: {conf:?}");
        conf.validate()
    }

    /// The configuration as YAML text, with every key.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a ServerConf is always representable as YAML")
    }

    /// Checks the values that cannot work, returning the configuration if they are fine.
    ///
    /// Rejected: `threads: 0`, `listener_tasks_per_fd: 0`, `max_blocking_threads: 0`,
    /// `upstream_connect_offload_threadpools: 0`, `upstream_connect_offload_thread_per_pool: 0`
    /// and `daemon: true` with an empty `pid_file`.
    ///
    /// # Errors
    ///
    /// A [`ErrorType::ReadError`] listing every problem found.
    pub fn validate(self) -> Result<Self> {
        let mut problems = Vec::new();
        if self.threads == 0 {
            problems.push("threads must be at least 1");
        }
        if self.listener_tasks_per_fd == 0 {
            problems.push("listener_tasks_per_fd must be at least 1");
        }
        if self.max_blocking_threads == Some(0) {
            problems
                .push("max_blocking_threads must be greater than zero (omit it for the default)");
        }
        if self.upstream_connect_offload_threadpools == Some(0) {
            problems.push(
                "upstream_connect_offload_threadpools must be greater than zero (omit it to \
                 disable offloading)",
            );
        }
        if self.upstream_connect_offload_thread_per_pool == Some(0) {
            problems.push(
                "upstream_connect_offload_thread_per_pool must be greater than zero (omit it to \
                 disable offloading)",
            );
        }
        if self.daemon && self.pid_file.is_empty() {
            problems.push("pid_file must not be empty when daemon is true");
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Error::e_explain(
                ErrorType::ReadError,
                format!("invalid server configuration: {}", problems.join("; ")),
            )
        }
    }

    /// Applies the command-line options that override the file: `-d` turns `daemon` on.
    pub fn merge_with_opt(&mut self, opt: &Opt) {
        if opt.daemon {
            self.daemon = true;
        }
    }
}

// === impl Opt ===

impl Opt {
    /// Parses the command-line arguments of the process.
    ///
    /// Like any clap parser, prints the help or an error and exits the process when asked for
    /// help or given bad arguments.
    pub fn parse_args() -> Self {
        Opt::parse()
    }

    /// Parses `args`, whose first item is the program name.
    ///
    /// Like any clap parser, prints the help or an error and exits the process when asked for
    /// help or given bad arguments.
    pub fn parse_from_args<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Opt::parse_from(args)
    }
}

// === impl ConnectorOptions ===

// Defined here rather than with the connectors, which know nothing of the server's
// configuration file.
impl ConnectorOptions {
    /// The options a server configuration asks for: `ca_file`, `upstream_debug_ssl_keylog`,
    /// `upstream_keepalive_pool_size`, the offload thread pools (when both numbers are set and
    /// not zero) and the `client_bind_to_ipv4`/`ipv6` addresses. Bind addresses that are not IP
    /// addresses of the right family are logged and skipped.
    pub fn from_server_conf(server_conf: &ServerConf) -> Self {
        let offload_threadpool = server_conf
            .upstream_connect_offload_threadpools
            .zip(server_conf.upstream_connect_offload_thread_per_pool)
            .filter(|&(pools, threads)| pools > 0 && threads > 0);
        ConnectorOptions {
            ca_file: server_conf.ca_file.clone(),
            cert_key_file: None,
            debug_ssl_keylog: server_conf.upstream_debug_ssl_keylog,
            keepalive_pool_size: server_conf.upstream_keepalive_pool_size,
            offload_threadpool,
            bind_to_v4: parse_bind_addrs(&server_conf.client_bind_to_ipv4, true),
            bind_to_v6: parse_bind_addrs(&server_conf.client_bind_to_ipv6, false),
            s2n_config_cache_size: server_conf.s2n_config_cache_size,
        }
    }
}

/// Parses configured source addresses: IPs (port 0, chosen when connecting) or `ip:port`s.
fn parse_bind_addrs(addrs: &[String], v4: bool) -> Vec<InetSocketAddr> {
    addrs
        .iter()
        .filter_map(|text| {
            let parsed = text
                .parse::<IpAddr>()
                .map(|ip| InetSocketAddr::new(ip, 0))
                .or_else(|_| text.parse::<InetSocketAddr>());
            match parsed {
                Ok(addr) if addr.is_ipv4() == v4 => Some(addr),
                Ok(_) => {
                    warn!("ignoring bind address {text}: wrong IP family");
                    None
                }
                Err(_) => {
                    warn!("ignoring bind address {text}: not an IP address");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
