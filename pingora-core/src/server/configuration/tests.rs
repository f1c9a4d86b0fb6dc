use super::*;

const EVERY_KEY: &str = r#"
---
version: 2
daemon: true
error_log: /var/log/pingora/error.log
pid_file: /run/pingora.pid
upgrade_sock: /run/pingora_upgrade.sock
user: nobody
group: nogroup
working_directory: /srv
threads: 8
listener_tasks_per_fd: 3
work_stealing: false
ca_file: /etc/ssl/ca.pem
s2n_config_cache_size: 0
grace_period_seconds: 60
graceful_shutdown_timeout_seconds: 7
client_bind_to_ipv4: [1.2.3.4, 5.6.7.8]
client_bind_to_ipv6: ["::1"]
upstream_keepalive_pool_size: 42
upstream_connect_offload_threadpools: 2
upstream_connect_offload_thread_per_pool: 4
upstream_debug_ssl_keylog: true
max_retries: 3
upgrade_sock_connect_accept_max_retries: 9
max_blocking_threads: 64
blocking_threads_ttl_seconds: 30
daemon_wait_for_ready: true
daemon_ready_timeout_seconds: 120
daemon_notify_timeout_seconds: 15
"#;

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pingora-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn defaults() {
    let conf = ServerConf::default();
    assert_eq!(conf.version, 0);
    assert!(!conf.daemon);
    assert_eq!(conf.error_log, None);
    assert_eq!(conf.pid_file, "/tmp/pingora.pid");
    assert_eq!(conf.upgrade_sock, "/tmp/pingora_upgrade.sock");
    assert_eq!(conf.user, None);
    assert_eq!(conf.group, None);
    assert_eq!(conf.working_directory, None);
    assert_eq!(conf.threads, 1);
    assert_eq!(conf.listener_tasks_per_fd, 1);
    assert!(conf.work_stealing);
    assert_eq!(conf.ca_file, None);
    assert_eq!(conf.s2n_config_cache_size, None);
    assert_eq!(conf.grace_period_seconds, None);
    assert_eq!(conf.graceful_shutdown_timeout_seconds, None);
    assert!(conf.client_bind_to_ipv4.is_empty());
    assert!(conf.client_bind_to_ipv6.is_empty());
    assert_eq!(conf.upstream_keepalive_pool_size, 128);
    assert_eq!(conf.upstream_connect_offload_threadpools, None);
    assert_eq!(conf.upstream_connect_offload_thread_per_pool, None);
    assert!(!conf.upstream_debug_ssl_keylog);
    assert_eq!(conf.max_retries, 16);
    assert_eq!(conf.upgrade_sock_connect_accept_max_retries, None);
    assert_eq!(conf.max_blocking_threads, None);
    assert_eq!(conf.blocking_threads_ttl_seconds, None);
    assert!(!conf.daemon_wait_for_ready);
    assert_eq!(conf.daemon_ready_timeout_seconds, None);
    assert_eq!(conf.daemon_notify_timeout_seconds, None);

    let new = ServerConf::new().unwrap();
    assert_eq!(new.version, 1);
    assert_eq!(
        new,
        ServerConf {
            version: 1,
            ..ServerConf::default()
        }
    );
    assert_eq!(ServerConf::from_yaml("---\nversion: 1").unwrap(), new);
    // An empty document is all defaults.
    assert_eq!(ServerConf::from_yaml("{}").unwrap(), ServerConf::default());
}

#[test]
fn every_key_is_read() {
    let conf = ServerConf::from_yaml(EVERY_KEY).unwrap();
    let nz = |n| NonZeroU64::new(n);
    let expected = ServerConf {
        version: 2,
        daemon: true,
        error_log: Some("/var/log/pingora/error.log".into()),
        pid_file: "/run/pingora.pid".into(),
        upgrade_sock: "/run/pingora_upgrade.sock".into(),
        user: Some("nobody".into()),
        group: Some("nogroup".into()),
        working_directory: Some("/srv".into()),
        threads: 8,
        listener_tasks_per_fd: 3,
        work_stealing: false,
        ca_file: Some("/etc/ssl/ca.pem".into()),
        s2n_config_cache_size: Some(0),
        grace_period_seconds: Some(60),
        graceful_shutdown_timeout_seconds: Some(7),
        client_bind_to_ipv4: vec!["1.2.3.4".into(), "5.6.7.8".into()],
        client_bind_to_ipv6: vec!["::1".into()],
        upstream_keepalive_pool_size: 42,
        upstream_connect_offload_threadpools: Some(2),
        upstream_connect_offload_thread_per_pool: Some(4),
        upstream_debug_ssl_keylog: true,
        max_retries: 3,
        upgrade_sock_connect_accept_max_retries: Some(9),
        max_blocking_threads: Some(64),
        blocking_threads_ttl_seconds: Some(30),
        daemon_wait_for_ready: true,
        daemon_ready_timeout_seconds: nz(120),
        daemon_notify_timeout_seconds: nz(15),
    };
    assert_eq!(conf, expected);
}

#[test]
fn yaml_round_trip() {
    let conf = ServerConf::from_yaml(EVERY_KEY).unwrap();
    let yaml = conf.to_yaml();
    assert!(yaml.contains("listener_tasks_per_fd: 3"), "{yaml}");
    assert_eq!(ServerConf::from_yaml(&yaml).unwrap(), conf);
    let default_yaml = ServerConf::default().to_yaml();
    assert_eq!(
        ServerConf::from_yaml(&default_yaml).unwrap(),
        ServerConf::default()
    );
}

#[test]
fn unknown_keys_are_ignored() {
    let conf = ServerConf::from_yaml(
        "version: 1\nthreads: 2\nmy_app:\n  upstreams: [a, b]\n  weight: 3\nanother: true\n",
    )
    .unwrap();
    assert_eq!(conf.threads, 2);
    assert_eq!(
        conf,
        ServerConf {
            version: 1,
            threads: 2,
            ..ServerConf::default()
        }
    );
}

#[test]
fn bad_yaml_is_an_error() {
    for bad in [
        "threads: [1, 2]",
        "threads: -1",
        "daemon: maybe",
        "threads: [1, 2",
    ] {
        let err = ServerConf::from_yaml(bad).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ReadError, "{bad}");
        assert!(
            err.to_string()
                .contains("invalid server configuration YAML"),
            "{err}"
        );
    }
    // Zero is not a valid timeout for these two keys.
    assert!(ServerConf::from_yaml("daemon_ready_timeout_seconds: 0").is_err());
    assert!(ServerConf::from_yaml("daemon_notify_timeout_seconds: 0").is_err());
}

#[test]
fn validate_rejects_unworkable_values() {
    let cases: &[(&str, &str)] = &[
        ("threads: 0", "threads must be at least 1"),
        (
            "listener_tasks_per_fd: 0",
            "listener_tasks_per_fd must be at least 1",
        ),
        (
            "max_blocking_threads: 0",
            "max_blocking_threads must be greater than zero",
        ),
        (
            "upstream_connect_offload_threadpools: 0",
            "upstream_connect_offload_threadpools must be greater than zero",
        ),
        (
            "upstream_connect_offload_thread_per_pool: 0",
            "upstream_connect_offload_thread_per_pool must be greater than zero",
        ),
        ("daemon: true\npid_file: ''", "pid_file must not be empty"),
    ];
    for (yaml, message) in cases {
        let err = ServerConf::from_yaml(yaml).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ReadError);
        let text = err.to_string();
        assert!(text.contains("invalid server configuration"), "{text}");
        assert!(text.contains(message), "{yaml}: {text}");
    }

    // Every problem is reported at once.
    let err = ServerConf::from_yaml("threads: 0\nmax_blocking_threads: 0").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("threads must be at least 1"), "{text}");
    assert!(text.contains("max_blocking_threads"), "{text}");

    // Values that merely look odd are fine.
    let conf = ServerConf {
        grace_period_seconds: Some(0),
        upstream_keepalive_pool_size: 0,
        max_retries: 0,
        pid_file: String::new(),
        ..ServerConf::default()
    };
    assert_eq!(conf.clone().validate().unwrap(), conf);
}

#[test]
fn load_from_file() {
    let path = temp_path("every_key.yaml");
    std::fs::write(&path, EVERY_KEY).unwrap();
    let path_str = path.display().to_string();
    let conf = ServerConf::load_from_yaml(&path_str).unwrap();
    assert_eq!(conf.threads, 8);

    let missing = temp_path("missing.yaml").display().to_string();
    let err = ServerConf::load_from_yaml(&missing).unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadError);
    assert!(err.to_string().contains(&missing), "{err}");

    let bad = temp_path("bad.yaml");
    std::fs::write(&bad, "threads: 0\n").unwrap();
    let bad_str = bad.display().to_string();
    let err = ServerConf::load_from_yaml(&bad_str).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&bad_str), "{text}");
    assert!(text.contains("threads must be at least 1"), "{text}");
}

#[test]
fn options_override_the_file() {
    let path = temp_path("plain.yaml");
    std::fs::write(&path, "version: 1\nthreads: 3\n").unwrap();
    let opt = Opt {
        daemon: true,
        conf: Some(path.display().to_string()),
        ..Opt::default()
    };
    let conf = ServerConf::load_yaml_with_opt_override(&opt).unwrap();
    assert!(conf.daemon);
    assert_eq!(conf.threads, 3);

    let err = ServerConf::load_yaml_with_opt_override(&Opt::default()).unwrap_err();
    assert!(err.to_string().contains("no configuration file"), "{err}");

    let conf = ServerConf::new_with_opt_override(&Opt {
        daemon: true,
        ..Opt::default()
    })
    .unwrap();
    assert!(conf.daemon);
    assert_eq!(conf.version, 1);
    let conf = ServerConf::new_with_opt_override(&Opt::default()).unwrap();
    assert!(!conf.daemon);
}

#[test]
fn opt_parsing() {
    assert_eq!(Opt::parse_from_args(["prog"]), Opt::default());
    let opt = Opt::parse_from_args(["prog", "-u", "-d", "-t", "-c", "/etc/p.yaml"]);
    assert_eq!(
        opt,
        Opt {
            upgrade: true,
            daemon: true,
            nocapture: false,
            test: true,
            conf: Some("/etc/p.yaml".into()),
        }
    );
    let long = Opt::parse_from_args([
        "prog",
        "--upgrade",
        "--daemon",
        "--test",
        "--conf",
        "/etc/p.yaml",
        "--nocapture",
    ]);
    assert_eq!(
        long,
        Opt {
            nocapture: true,
            ..opt
        }
    );
    let eq = Opt::parse_from_args(["prog", "--conf=/x.yaml"]);
    assert_eq!(eq.conf.as_deref(), Some("/x.yaml"));

    assert!(Opt::try_parse_from(["prog", "--bogus"]).is_err());
    assert!(Opt::try_parse_from(["prog", "-c"]).is_err());
    // `--nocapture` is accepted but hidden from the help.
    let help = Opt::try_parse_from(["prog", "--help"])
        .unwrap_err()
        .to_string();
    assert!(help.contains("--conf"), "{help}");
    assert!(!help.contains("nocapture"), "{help}");
}
