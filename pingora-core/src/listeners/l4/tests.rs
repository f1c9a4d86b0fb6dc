use super::*;
use std::net::TcpListener as StdTcpListener;
use std::os::unix::fs::MetadataExt;

use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::GetSocketDigest;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pingora-l4-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn inet(listener: &Listener) -> std::net::SocketAddr {
    *listener.local_addr().unwrap().as_inet().unwrap()
}

#[tokio::test]
async fn binds_tcp_on_any_port() {
    let listener = bind_tcp("127.0.0.1:0", None, TCP_BIND_RETRY).await.unwrap();
    let addr = inet(&listener);
    assert_ne!(addr.port(), 0);
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (_stream, peer) = listener.accept().await.unwrap();
    assert_eq!(peer, SocketAddr::Inet(client.local_addr().unwrap()));

    let sock = socket2::SockRef::from(&client);
    assert!(
        !sock.tcp_nodelay().unwrap(),
        "clients keep Nagle unless asked"
    );
    let listener_sock = match &listener {
        Listener::Tcp(l) => socket2::SockRef::from(l),
        Listener::Unix(_) => unreachable!(),
    };
    assert!(listener_sock.reuse_address().unwrap());
}

#[tokio::test]
async fn socket_options_are_applied() {
    let options = TcpSocketOptions {
        ipv6_only: Some(true),
        tcp_fastopen: Some(10),
        dscp: Some(46),
        so_reuseport: Some(true),
        tcp_recv_buf: Some(256 * 1024),
        tcp_snd_buf: Some(128 * 1024),
        ..Default::default()
    };
    // IPv6 may be unavailable in a container; use it only if it binds.
    let addr = if StdTcpListener::bind("[::1]:0").is_ok() {
        "[::1]:0"
    } else {
        "127.0.0.1:0"
    };
    let listener = bind_tcp(addr, Some(&options), TCP_BIND_RETRY)
        .await
        .unwrap();
    let bound = inet(&listener);
    {
        let Listener::Tcp(l) = &listener else {
            unreachable!()
        };
        let sock = socket2::SockRef::from(l);
        assert!(sock.reuse_port().unwrap());
        if bound.is_ipv6() {
            assert!(sock.only_v6().unwrap());
        }
    }

    // SO_REUSEPORT lets a second socket share the port.
    let twin = bind_tcp(&bound.to_string(), Some(&options), TCP_BIND_RETRY)
        .await
        .unwrap();
    assert_eq!(inet(&twin), bound);
    drop(twin);

    let client = tokio::net::TcpStream::connect(bound).await.unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    // Accepted connections inherit the buffer sizes (Linux doubles the value it is given).
    let digest = stream.get_socket_digest().unwrap();
    assert!(digest.get_recv_buf().unwrap() >= 256 * 1024);
    assert!(digest.get_snd_buf().unwrap() >= 128 * 1024);
    drop(client);
}

#[tokio::test]
async fn ipv6_only_is_ignored_for_ipv4() {
    let options = TcpSocketOptions {
        ipv6_only: Some(true),
        ..Default::default()
    };
    let listener = bind_tcp("127.0.0.1:0", Some(&options), TCP_BIND_RETRY)
        .await
        .unwrap();
    assert!(inet(&listener).is_ipv4());
}

#[tokio::test]
async fn bad_addresses_are_errors() {
    for addr in ["nonsense", "127.0.0.1", "300.0.0.1:80"] {
        let err = bind_tcp(addr, None, TCP_BIND_RETRY).await.unwrap_err();
        assert_eq!(err.etype(), &ErrorType::BindError);
        assert!(err.to_string().contains(addr), "{err}");
    }
    // An address of another host cannot be bound.
    let err = bind_tcp("192.0.2.1:0", None, TCP_BIND_RETRY)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot bind 192.0.2.1:0"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn address_in_use_is_retried_then_given_up() {
    let blocker = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let addr = blocker.local_addr().unwrap().to_string();
    let retry = BindRetry {
        attempts: 3,
        interval: Duration::from_millis(200),
    };
    let start = tokio::time::Instant::now();
    let err = bind_tcp(&addr, None, retry).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::BindError);
    assert!(
        err.to_string().contains("still in use after 3 attempts"),
        "{err}"
    );
    // Two pauses between three attempts (virtual time).
    assert_eq!(start.elapsed(), Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn address_in_use_is_retried_until_free() {
    let blocker = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let addr = blocker.local_addr().unwrap();
    let retry = BindRetry {
        attempts: 5,
        interval: Duration::from_millis(100),
    };
    let start = tokio::time::Instant::now();
    let addr_str = addr.to_string();
    let bind = tokio::spawn(async move { bind_tcp(&addr_str, None, retry).await });
    // On this single-threaded runtime the bind task makes its first attempt when this task
    // yields; the attempt fails and the task sleeps (time is paused, so it cannot go on).
    tokio::task::yield_now().await;
    assert!(
        !bind.is_finished(),
        "the first attempt must fail while the port is taken"
    );
    drop(blocker);
    let listener = bind.await.unwrap().unwrap();
    assert_eq!(inet(&listener), addr);
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "the bind was retried"
    );
}

#[tokio::test]
async fn binds_unix_sockets() {
    let dir = temp_dir("uds");
    let path = dir.join("a.sock");
    let path_str = path.to_str().unwrap();
    // A stale file at the path is replaced.
    std::fs::write(&path, b"stale").unwrap();
    let listener = bind_uds(path_str, None).unwrap();
    let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o666);
    let connect = tokio::net::UnixStream::connect(&path);
    let (accepted, client) = tokio::join!(listener.accept(), connect);
    accepted.unwrap();
    client.unwrap();

    let other = dir.join("b.sock");
    let _listener = bind_uds(
        other.to_str().unwrap(),
        Some(&Permissions::from_mode(0o600)),
    )
    .unwrap();
    let mode = std::fs::metadata(&other).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let err = bind_uds(dir.join("missing/c.sock").to_str().unwrap(), None).unwrap_err();
    assert_eq!(err.etype(), &ErrorType::BindError);
    assert!(err.to_string().contains("missing/c.sock"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn connection_settings() {
    let listener = bind_tcp("127.0.0.1:0", None, TCP_BIND_RETRY).await.unwrap();
    let client = tokio::net::TcpStream::connect(inet(&listener))
        .await
        .unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    let ka = TcpKeepalive {
        idle: Duration::from_secs(30),
        interval: Duration::from_secs(3),
        count: 4,
        user_timeout: Duration::ZERO,
    };
    let settings = ConnectionSettings {
        addr: ServerAddress::Tcp(
            "127.0.0.1:0".into(),
            Some(TcpSocketOptions {
                tcp_keepalive: Some(ka),
                dscp: Some(10),
                ..Default::default()
            }),
        ),
        l4_buffer: None,
    };
    settings.apply(&mut stream).unwrap();
    let sock = socket2::SockRef::from(stream.as_tcp().unwrap());
    assert!(sock.tcp_nodelay().unwrap());
    assert!(sock.keepalive().unwrap());
    assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(30));
    assert_eq!(sock.tos_v4().unwrap(), 10 << 2);
    drop(client);
}
