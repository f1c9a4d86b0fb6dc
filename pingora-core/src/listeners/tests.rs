use super::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::Fds;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pingora-listeners-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn builder_records_endpoints() {
    let mut listeners = Listeners::tcp("127.0.0.1:1");
    listeners.add_tcp_with_settings("127.0.0.1:2", TcpSocketOptions::default());
    listeners.add_uds("/tmp/x.sock", Some(Permissions::from_mode(0o600)));
    listeners.add_address(ServerAddress::Tcp("127.0.0.1:3".into(), None));
    listeners.add_listener(ListenerConfig::uds("/tmp/y.sock"));
    assert_eq!(
        listeners.addresses(),
        [
            "127.0.0.1:1",
            "127.0.0.1:2",
            "/tmp/x.sock",
            "127.0.0.1:3",
            "/tmp/y.sock"
        ]
    );
    assert_eq!(
        Listeners::uds("/tmp/z.sock", None).addresses(),
        ["/tmp/z.sock"]
    );
    assert!(Listeners::default().addresses().is_empty());

    match listeners.endpoints[2].address() {
        ServerAddress::Uds(path, Some(perm)) => {
            assert_eq!(path, "/tmp/x.sock");
            assert_eq!(perm.mode() & 0o777, 0o600);
        }
        other => panic!("unexpected {other:?}"),
    }
    match listeners.endpoints[1].address() {
        ServerAddress::Tcp(_, Some(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn mismatched_settings_are_ignored() {
    let uds = ListenerConfig::uds("/tmp/a.sock").tcp_socket_options(TcpSocketOptions::default());
    assert!(matches!(uds.address(), ServerAddress::Uds(_, None)));
    let tcp = ListenerConfig::tcp("127.0.0.1:0").permissions(Permissions::from_mode(0o600));
    assert!(matches!(tcp.address(), ServerAddress::Tcp(_, None)));
    let buffered = ListenerConfig::tcp("127.0.0.1:0").l4_buffer(L4BufferSettings::default());
    assert_eq!(buffered.l4_buffer, Some(L4BufferSettings::default()));
    assert_eq!(ListenerConfig::tcp("127.0.0.1:0").l4_buffer, None);
}

#[tokio::test]
async fn build_reports_addresses_and_registers_fds() {
    let dir = temp_dir("build");
    let path = dir.join("s.sock");
    let mut listeners = Listeners::tcp("127.0.0.1:0");
    listeners.add_uds(path.to_str().unwrap(), None);
    let addrs = listeners.local_addrs();
    assert_eq!(addrs.get(), None);
    assert_eq!(addrs.to_string(), "(not bound yet)");

    let fds = Arc::new(parking_lot::Mutex::new(Fds::new()));
    let stacks = listeners.build(Some(Arc::clone(&fds))).await.unwrap();
    assert_eq!(stacks.len(), 2);
    let bound = tokio::time::timeout(Duration::from_secs(5), addrs.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(addrs.get(), Some(bound.clone()));
    assert_eq!(bound.len(), 2);
    let tcp = *bound[0].as_inet().unwrap();
    assert!(tcp.ip().is_loopback() && tcp.port() != 0);
    assert_eq!(bound[1].to_string(), format!("unix:{}", path.display()));
    assert!(addrs.to_string().contains(&tcp.to_string()));
    assert_eq!(stacks[0].as_str(), "127.0.0.1:0");

    let fds = fds.lock();
    assert_eq!(fds.len(), 2);
    assert!(fds.get("127.0.0.1:0").is_some());
    assert!(fds.get(path.to_str().unwrap()).is_some());
    drop(fds);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn failed_or_abandoned_binds_are_reported() {
    let mut listeners = Listeners::uds("/nonexistent-dir/s.sock", None);
    let addrs = listeners.local_addrs();
    let err = listeners.build(None).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::BindError);
    let waited = addrs.wait().await.unwrap_err();
    assert!(
        waited.to_string().contains("/nonexistent-dir/s.sock"),
        "{waited}"
    );
    assert!(addrs.to_string().starts_with("(binding failed"));

    let listeners = Listeners::tcp("127.0.0.1:0");
    let addrs = listeners.local_addrs();
    drop(listeners);
    let err = addrs.wait().await.unwrap_err();
    assert!(
        err.to_string().contains("dropped before being bound"),
        "{err}"
    );
}

/// Accepts one connection on a fresh endpoint built from `config`; returns the server side
/// after its handshake, and the client side.
async fn accept_one(config: ListenerConfig) -> (Stream, tokio::net::TcpStream) {
    let mut listeners = Listeners::new();
    listeners.add_listener(config);
    let stack = listeners.build(None).await.unwrap().pop().unwrap();
    let addr = *listeners.local_addrs().get().unwrap()[0].as_inet().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = stack.accept().await.unwrap();
    assert_eq!(
        io.peer_addr().as_inet(),
        Some(&client.local_addr().unwrap())
    );
    (io.handshake().await.unwrap(), client)
}

#[tokio::test]
async fn accepted_streams_get_nodelay_and_no_write_buffer_by_default() {
    let (mut stream, mut client) = accept_one(ListenerConfig::tcp("127.0.0.1:0")).await;
    let l4 = stream
        .as_any()
        .downcast_ref::<L4Stream>()
        .expect("an L4 stream");
    assert!(socket2::SockRef::from(l4.as_tcp().unwrap())
        .tcp_nodelay()
        .unwrap());

    // Unbuffered: a write reaches the peer without a flush.
    stream.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"x");
}

#[tokio::test]
async fn explicit_l4_buffer_gathers_writes() {
    let config =
        ListenerConfig::tcp("127.0.0.1:0").l4_buffer(L4BufferSettings::new(None, Some(1460)));
    let (mut stream, mut client) = accept_one(config).await;
    stream.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 1];
    // Buffered: nothing is sent before the flush.
    let early = tokio::time::timeout(Duration::from_millis(100), client.read_exact(&mut buf)).await;
    assert!(early.is_err(), "data arrived before the flush");
    stream.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"x");
}
