use super::*;
use crate::services::Service;

/// The names of the phases received so far.
fn drain(rx: &mut broadcast::Receiver<ExecutionPhase>) -> Vec<String> {
    let mut names = Vec::new();
    while let Ok(phase) = rx.try_recv() {
        let name = format!("{phase:?}");
        names.push(name.split('(').next().unwrap_or_default().to_string());
    }
    names
}

#[test]
fn new_without_options_uses_defaults() {
    let server = Server::new(None).unwrap();
    assert_eq!(*server.configuration, ServerConf::new().unwrap());
    assert!(server.options.is_none());

    let server = Server::new(Opt {
        daemon: true,
        ..Opt::default()
    })
    .unwrap();
    assert!(server.configuration.daemon);
    assert_eq!(server.configuration.version, 1);
}

#[test]
fn new_reads_the_configuration_file() {
    let dir = std::env::temp_dir().join(format!("pingora-server-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, "version: 1\nthreads: 3\n").unwrap();
    let opt = Opt {
        conf: Some(good.display().to_string()),
        ..Opt::default()
    };
    assert_eq!(Server::new(opt).unwrap().configuration.threads, 3);

    // `-t` with a bad file: creating the server fails with a message naming the file.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "threads: 0\n").unwrap();
    let opt = Opt {
        test: true,
        conf: Some(bad.display().to_string()),
        ..Opt::default()
    };
    let err = Server::new(opt).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("bad.yaml") && text.contains("threads must be at least 1"),
        "{text}"
    );

    let opt = Opt {
        conf: Some(dir.join("missing.yaml").display().to_string()),
        ..Opt::default()
    };
    assert!(Server::new(opt)
        .unwrap_err()
        .to_string()
        .contains("missing.yaml"));
}

#[test]
fn new_with_opt_and_conf_ignores_the_file_and_merges_flags() {
    let conf = ServerConf {
        threads: 5,
        ..ServerConf::default()
    };
    let opt = Opt {
        daemon: true,
        conf: Some("/nonexistent.yaml".into()),
        ..Opt::default()
    };
    let server = Server::new_with_opt_and_conf(opt, conf.clone());
    assert_eq!(server.configuration.threads, 5);
    assert!(server.configuration.daemon);
    let server = Server::new_with_opt_and_conf(None, conf);
    assert!(!server.configuration.daemon);
}

#[test]
fn bootstrap_runs_once() {
    let mut server = Server::new(None).unwrap();
    let mut phases = server.watch_execution_phase();
    // The socket table exists before the bootstrap (services that start first record their
    // sockets in it) and is the same table after.
    let before = server.bootstrap.lock().listen_fds();
    assert_eq!(server.try_bootstrap().unwrap(), BootstrapOutcome::Ready);
    assert_eq!(drain(&mut phases), ["Bootstrap", "BootstrapComplete"]);
    assert!(Arc::ptr_eq(&before, &server.bootstrap.lock().listen_fds()));
    // Again: nothing happens.
    server.bootstrap();
    assert_eq!(server.try_bootstrap().unwrap(), BootstrapOutcome::Ready);
    assert!(drain(&mut phases).is_empty());
}

#[test]
fn bootstrap_with_test_flag() {
    let opt = Opt {
        test: true,
        ..Opt::default()
    };
    let mut server = Server::new(opt.clone()).unwrap();
    let mut phases = server.watch_execution_phase();
    assert_eq!(
        server.try_bootstrap().unwrap(),
        BootstrapOutcome::TestPassed
    );
    assert_eq!(drain(&mut phases), ["Bootstrap"]);

    // A configuration built in code is validated too.
    let conf = ServerConf {
        max_blocking_threads: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    let err = server.try_bootstrap().unwrap_err();
    assert!(err.to_string().contains("max_blocking_threads"), "{err}");
}

#[test]
fn upgrade_flag_without_an_old_process_fails_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let conf = ServerConf {
        upgrade_sock: dir.path().join("upgrade.sock").display().to_string(),
        upgrade_sock_connect_accept_max_retries: Some(1),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: true,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    let err = server.try_bootstrap().unwrap_err().to_string();
    assert!(err.contains("graceful upgrade (--upgrade) failed"), "{err}");
    assert!(err.contains("no old process"), "{err}");
}

struct Named(&'static str);

#[async_trait]
impl Service for Named {
    fn name(&self) -> &str {
        self.0
    }
}

#[test]
fn services_are_added_in_every_form() {
    let mut server = Server::new(None).unwrap();
    let a = server.add_service(Named("a"));
    let b = server.add_boxed_service(Box::new(Named("b")));
    let old_style: Vec<Box<dyn Service>> = vec![Box::new(Named("c")), Box::new(Named("d"))];
    let cd = server.add_services(old_style);
    let new_style: Vec<Box<dyn ServiceWithDependents>> = vec![Box::new(Named("e"))];
    let e = server.add_services(new_style);
    let names: Vec<&str> = [&a, &b, &cd[0], &cd[1], &e[0]]
        .iter()
        .map(|h| h.name())
        .collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    let ids: Vec<usize> = [&a, &b, &cd[0], &cd[1], &e[0]]
        .iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);

    let bootstrap = server.bootstrap_as_a_service();
    assert_eq!(bootstrap.name(), "BG Bootstrap Service");
    a.add_dependency(&bootstrap);
    assert_eq!(a.dependencies()[0].name, "BG Bootstrap Service");

    let text = format!("{server:?}");
    assert!(text.contains("\"a\"") && text.contains("\"e\""), "{text}");
    assert!(format!("{:?}", RunArgs::default()).contains("RunArgs"));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Server>();
    check::<ExecutionPhase>();
    check::<ShutdownSignal>();
    check::<UnixShutdownSignalWatch>();
    check::<ListenFds>();
}

/// The environment variable that makes [`signals_child`] run.
const SIGNALS_CHILD: &str = "PINGORA_TEST_SIGNALS_CHILD";

/// Runs [`signals_child`] in a child process: catching SIGINT and SIGTERM would otherwise stop
/// Ctrl-C from ending this test process.
#[test]
fn unix_signals_map_to_shutdown_kinds() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "server::tests::signals_child",
            "--ignored",
            "--nocapture",
        ])
        .env(SIGNALS_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("SIGNALS CHILD OK"),
        "the child test did not run:\n{stdout}"
    );
}

/// Sends itself SIGTERM, SIGQUIT and SIGINT, checking what [`UnixShutdownSignalWatch`] makes
/// of each.
#[test]
#[ignore = "run by unix_signals_map_to_shutdown_kinds in a child process"]
fn signals_child() {
    if std::env::var_os(SIGNALS_CHILD).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (signal, expected) in [
            ("TERM", ShutdownSignal::GracefulTerminate),
            ("QUIT", ShutdownSignal::GracefulUpgrade),
            ("INT", ShutdownSignal::FastShutdown),
        ] {
            let watch = UnixShutdownSignalWatch;
            let mut recv = watch.recv();
            // One poll registers the handlers, so the signal below is caught, not fatal.
            tokio::select! {
                biased;
                got = &mut recv => panic!("no signal was sent yet, got {got:?}"),
                () = std::future::ready(()) => {}
            }
            let status = std::process::Command::new("kill")
                .args(["-s", signal, &std::process::id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            let got = tokio::time::timeout(Duration::from_secs(10), recv)
                .await
                .unwrap();
            assert_eq!(got, expected, "SIG{signal}");
        }
    });
    println!("SIGNALS CHILD OK");
}
