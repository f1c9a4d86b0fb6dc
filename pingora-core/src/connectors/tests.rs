use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};

use pingora_pool::{IdleCheck, IdleState};

use crate::server::configuration::ServerConf;

use super::*;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::l4::stream::Stream as L4Stream;
use crate::protocols::{PrefixedStream, TcpKeepalive};
use crate::upstreams::peer::HttpPeer;

/// Bound on waiting for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(5);

async fn origin() -> (TcpListener, InetSocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

fn bind(addr: &str) -> BindTo {
    let mut bind_to = BindTo::default();
    bind_to.addr = Some(addr.parse().unwrap());
    bind_to
}

fn plain_peer(addr: InetSocketAddr) -> HttpPeer {
    HttpPeer::new(addr, false, String::new())
}

async fn accept(listener: &TcpListener) -> (TcpStream, InetSocketAddr) {
    tokio::time::timeout(PROMPTLY, listener.accept())
        .await
        .expect("no connection arrived")
        .unwrap()
}

/// Asserts that no further connection arrives: checked after the exchanges under test.
async fn assert_no_accept(listener: &TcpListener) {
    let more = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(more.is_err(), "an unexpected new connection was made");
}

/// Waits until the other end closes `server`. A connection closed with unread data in it
/// is reset rather than closed cleanly.
async fn expect_eof(server: &mut TcpStream) {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(PROMPTLY, server.read(&mut buf))
        .await
        .expect("the connection was not closed");
    match read {
        Ok(n) => assert_eq!(n, 0, "data instead of a close"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

fn local_addr(stream: &Stream) -> InetSocketAddr {
    let digest = stream.get_socket_digest().unwrap();
    *digest.local_addr().unwrap().as_inet().unwrap()
}

/// Checks that `client` and `server` are the two ends of one connection.
async fn assert_connected(client: &mut Stream, server: &mut TcpStream) {
    client.write_all(b"ping").await.unwrap();
    client.flush().await.unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server.write_all(b"pong").await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

fn socket_of(stream: &Stream) -> socket2::SockRef<'_> {
    let l4 = stream.as_any().downcast_ref::<L4Stream>().unwrap();
    socket2::SockRef::from(l4.as_tcp().unwrap())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pingora-conn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// === connecting ===

#[tokio::test]
async fn connects_and_records_the_socket() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let mut client = connector.new_stream(&plain_peer(addr)).await.unwrap();
    let (mut server, client_addr) = accept(&listener).await;
    assert_connected(&mut client, &mut server).await;

    let digest = client.get_socket_digest().unwrap();
    // Recorded at connect time, not looked up.
    assert_eq!(digest.peer_addr.get(), Some(&Some(SocketAddr::Inet(addr))));
    assert_eq!(local_addr(&client), client_addr);
    assert!(socket_of(&client).tcp_nodelay().unwrap());
}

#[tokio::test]
async fn refused_port_is_connect_refused() {
    let addr = origin().await.1; // dropped: nothing listens there any more
    let connector = TransportConnector::new(None);
    let err = connector.new_stream(&plain_peer(addr)).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectRefused);
}

/// A listener that never accepts, with the smallest backlog: once its accept queue is full,
/// the kernel drops further SYNs, so connecting hangs as against a black hole, on loopback.
fn full_backlog_listener() -> (tokio::net::TcpListener, InetSocketAddr) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Connects until a connect fails, holding the connections that succeed (they fill the
/// backlog), and returns the error and how long the failed attempt took.
async fn connect_until_failure(peer: &HttpPeer) -> (pingora_error::BError, Duration) {
    let connector = TransportConnector::new(None);
    let mut held = Vec::new();
    loop {
        assert!(held.len() < 16, "the backlog never filled");
        let start = Instant::now();
        match connector.new_stream(peer).await {
            Ok(stream) => held.push(stream),
            Err(e) => return (e, start.elapsed()),
        }
    }
}

#[tokio::test]
async fn connection_timeout_is_connect_timedout() {
    let (_listener, addr) = full_backlog_listener();
    let mut peer = plain_peer(addr);
    peer.options.connection_timeout = Some(Duration::from_millis(100));
    let (err, took) = connect_until_failure(&peer).await;
    assert_eq!(err.etype(), &ErrorType::ConnectTimedout, "{err}");
    assert!(took >= Duration::from_millis(90), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn total_connection_timeout_is_connect_timedout() {
    let (_listener, addr) = full_backlog_listener();
    let mut peer = plain_peer(addr);
    peer.options.total_connection_timeout = Some(Duration::from_millis(100));
    let (err, took) = connect_until_failure(&peer).await;
    assert_eq!(err.etype(), &ErrorType::ConnectTimedout, "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn peer_bind_to_is_honoured() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let mut peer = plain_peer(addr);
    peer.options.bind_to = Some(bind("127.0.0.2:0"));
    let client = connector.new_stream(&peer).await.unwrap();
    let (_server, seen_from) = accept(&listener).await;
    assert_eq!(seen_from.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(local_addr(&client), seen_from);
}

#[tokio::test]
async fn connector_bind_list_is_used_unless_the_peer_binds() {
    let (listener, addr) = origin().await;
    let mut options = ConnectorOptions::new(8);
    options.bind_to_v4 = vec![
        "127.0.0.3:0".parse().unwrap(),
        "127.0.0.4:0".parse().unwrap(),
    ];
    let connector = TransportConnector::new(Some(options));
    let peer = plain_peer(addr);
    for _ in 0..4 {
        let _client = connector.new_stream(&peer).await.unwrap();
        let (_server, seen_from) = accept(&listener).await;
        let ip = seen_from.ip().to_string();
        assert!(ip == "127.0.0.3" || ip == "127.0.0.4", "{ip}");
    }
    let mut own = plain_peer(addr);
    own.options.bind_to = Some(bind("127.0.0.5:0"));
    let _client = connector.new_stream(&own).await.unwrap();
    assert_eq!(accept(&listener).await.1.ip().to_string(), "127.0.0.5");
}

#[tokio::test]
async fn port_range_is_applied() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let mut bind_to = bind("127.0.0.6:0");
    bind_to.set_port_range(Some((47000, 47099))).unwrap();
    bind_to.set_fallback(true);
    assert!(bind_to.will_fallback());
    let mut peer = plain_peer(addr);
    peer.options.bind_to = Some(bind_to);
    let client = connector.new_stream(&peer).await.unwrap();
    let (_server, seen_from) = accept(&listener).await;
    assert!((47000..=47099).contains(&seen_from.port()), "{seen_from}");
    assert_eq!(local_addr(&client), seen_from);

    let mut bad = BindTo::default();
    assert!(bad.set_port_range(Some((10, 5))).is_err());
    assert!(bad.set_port_range(Some((0, 0))).is_ok());
    assert_eq!(bad.port_range(), None);
    assert!(!bad.will_fallback());
}

#[tokio::test]
async fn unbindable_source_is_bind_error() {
    let (_listener, addr) = origin().await;
    let mut peer = plain_peer(addr);
    // Not an address of this host: binding fails before anything is sent.
    peer.options.bind_to = Some(bind("192.0.2.1:0"));
    let err = TransportConnector::new(None)
        .new_stream(&peer)
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::BindError);
}

#[tokio::test]
async fn socket_options_are_applied() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let hooked = Arc::new(AtomicBool::new(false));
    let mut peer = plain_peer(addr);
    peer.options.tcp_recv_buf = Some(64 * 1024);
    peer.options.dscp = Some(46);
    peer.options.tcp_keepalive = Some(TcpKeepalive {
        idle: Duration::from_secs(61),
        interval: Duration::from_secs(5),
        count: 3,
        user_timeout: Duration::ZERO,
    });
    let flag = Arc::clone(&hooked);
    peer.options.upstream_tcp_sock_tweak_hook = Some(Arc::new(move |socket: &TcpSocket| {
        flag.store(true, Ordering::SeqCst);
        socket.set_send_buffer_size(32 * 1024).or_fail()
    }));
    let client = connector.new_stream(&peer).await.unwrap();
    let _server = accept(&listener).await;
    assert!(hooked.load(Ordering::SeqCst));
    let digest = client.get_socket_digest().unwrap();
    assert!(digest.get_recv_buf().unwrap() >= 64 * 1024);
    let socket = socket_of(&client);
    assert_eq!(socket.tos_v4().unwrap(), 46 << 2);
    assert!(socket.keepalive().unwrap());
    assert_eq!(
        socket.tcp_keepalive_time().unwrap(),
        Duration::from_secs(61)
    );
    assert!(socket.send_buffer_size().unwrap() >= 32 * 1024);
}

#[tokio::test]
async fn tweak_hook_error_fails_the_connect() {
    let (_listener, addr) = origin().await;
    let mut peer = plain_peer(addr);
    peer.options.upstream_tcp_sock_tweak_hook = Some(Arc::new(|_: &TcpSocket| {
        Error::e_explain(ErrorType::SocketError, "refused by hook")
    }));
    let err = TransportConnector::new(None)
        .new_stream(&peer)
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::SocketError);
}

#[tokio::test]
async fn tcp_fast_open_connects() {
    let (listener, addr) = origin().await;
    let mut peer = plain_peer(addr);
    peer.options.tcp_fast_open = true;
    let mut client = TransportConnector::new(None)
        .new_stream(&peer)
        .await
        .unwrap();
    // With TFO the handshake happens with the first write.
    client.write_all(b"ping").await.unwrap();
    let (mut server, _) = accept(&listener).await;
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[derive(Debug)]
struct Redirect(InetSocketAddr);

#[async_trait]
impl L4Connect for Redirect {
    async fn connect(&self, _addr: &SocketAddr) -> Result<L4Stream> {
        TcpStream::connect(self.0)
            .await
            .map(L4Stream::from)
            .or_err(ErrorType::ConnectError, "redirect")
    }
}

#[tokio::test]
async fn custom_l4_connector_is_used() {
    let (listener, addr) = origin().await;
    let refused = origin().await.1;
    let mut peer = plain_peer(refused);
    peer.options.custom_l4 = Some(Arc::new(Redirect(addr)));
    let mut client = TransportConnector::new(None)
        .new_stream(&peer)
        .await
        .unwrap();
    let (mut server, _) = accept(&listener).await;
    assert_connected(&mut client, &mut server).await;
    // The connection counts as leading to the peer it was made for.
    let connector = TransportConnector::new(None);
    connector.release_stream(client, peer.reuse_hash(), None);
    let (_again, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(reused);
}

#[derive(Debug)]
struct CountConnects(Arc<AtomicUsize>);

impl crate::upstreams::peer::Tracing for CountConnects {
    fn on_connected(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn on_disconnected(&self) {}
    fn boxed_clone(&self) -> Box<dyn crate::upstreams::peer::Tracing> {
        Box::new(CountConnects(Arc::clone(&self.0)))
    }
}

#[tokio::test]
async fn tracer_sees_new_connections() {
    let (listener, addr) = origin().await;
    let connects = Arc::new(AtomicUsize::new(0));
    let mut peer = plain_peer(addr);
    peer.options.tracer = Some(crate::upstreams::peer::Tracer(Box::new(CountConnects(
        Arc::clone(&connects),
    ))));
    let connector = TransportConnector::new(None);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let _server = accept(&listener).await;
    assert_eq!(connects.load(Ordering::SeqCst), 1);
    connector.release_stream(stream, peer.reuse_hash(), None);
    let (_stream, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(reused);
    assert_eq!(connects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn tls_peer_needs_a_backend() {
    let (_listener, addr) = origin().await;
    let mut peer = HttpPeer::new(addr, true, "example.com".into());
    peer.options.connection_timeout = Some(Duration::from_millis(300));
    let err = TransportConnector::new(None)
        .new_stream(&peer)
        .await
        .unwrap_err();
    if crate::tls::Backend::compiled_in().is_empty() {
        assert_eq!(err.etype(), &ErrorType::InternalError);
        assert!(err.to_string().contains("no TLS backend"), "{err}");
    } else {
        // With a backend, the silent origin lets the handshake time out.
        assert_eq!(err.etype(), &ErrorType::TLSHandshakeTimedout, "{err}");
    }
}

#[tokio::test]
async fn offloaded_connects_work() {
    let (listener, addr) = origin().await;
    let mut options = ConnectorOptions::new(8);
    options.offload_threadpool = Some((2, 1));
    let connector = TransportConnector::new(Some(options));
    let mut client = connector.new_stream(&plain_peer(addr)).await.unwrap();
    let (mut server, _) = accept(&listener).await;
    assert_connected(&mut client, &mut server).await;
    // Dropping the offload runtimes from inside a runtime must not panic.
    drop(connector);
}

// === reuse ===

#[tokio::test]
async fn released_connection_is_reused() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let peer = plain_peer(addr);
    let (mut first, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    let (mut server, _) = accept(&listener).await;
    assert_connected(&mut first, &mut server).await;
    let port = local_addr(&first).port();
    connector.release_stream(first, peer.reuse_hash(), None);

    let (mut again, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(reused);
    assert_eq!(local_addr(&again).port(), port);
    assert_connected(&mut again, &mut server).await;
    assert_no_accept(&listener).await;
    assert_eq!(connector.unexpected_data_connection_count(), 0);
}

#[tokio::test]
async fn peers_with_other_reuse_hashes_do_not_share() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let a = plain_peer(addr);
    let mut b = plain_peer(addr);
    b.group_key = 1;
    assert_ne!(a.reuse_hash(), b.reuse_hash());

    let (stream, _) = connector.get_stream(&a).await.unwrap();
    let _server_a = accept(&listener).await;
    let port = local_addr(&stream).port();
    connector.release_stream(stream, a.reuse_hash(), None);

    let (other, reused) = connector.get_stream(&b).await.unwrap();
    assert!(!reused);
    assert_ne!(local_addr(&other).port(), port);
    let _server_b = accept(&listener).await;
    let (same, reused) = connector.get_stream(&a).await.unwrap();
    assert!(reused);
    assert_eq!(local_addr(&same).port(), port);
}

#[tokio::test]
async fn connection_to_another_address_is_not_reused() {
    let (listener, addr) = origin().await;
    let (other_listener, other_addr) = origin().await;
    let connector = TransportConnector::new(None);
    let (stream, _) = connector.get_stream(&plain_peer(other_addr)).await.unwrap();
    let (mut other_server, _) = accept(&other_listener).await;
    // Released under the wrong key, as a hash collision would.
    let peer = plain_peer(addr);
    connector.release_stream(stream, peer.reuse_hash(), None);
    let (_fresh, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    let _server = accept(&listener).await;
    expect_eof(&mut other_server).await;
}

#[tokio::test]
async fn connection_closed_while_pooled_is_not_reused() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let peer = plain_peer(addr);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let (server, _) = accept(&listener).await;
    connector.release_stream(stream, peer.reuse_hash(), None);
    drop(server);
    // Past the threshold, taking a connection checks it with the kernel.
    tokio::time::sleep(pingora_pool::THOROUGH_CHECK_AFTER + Duration::from_millis(10)).await;

    let (mut fresh, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    let (mut server, _) = accept(&listener).await;
    assert_connected(&mut fresh, &mut server).await;
    assert_eq!(connector.unexpected_data_connection_count(), 0);
}

#[tokio::test]
async fn connection_closed_before_release_is_not_pooled() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let peer = plain_peer(addr);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let (server, _) = accept(&listener).await;
    drop(server);
    connector.release_stream(stream, peer.reuse_hash(), None);
    tokio::time::sleep(pingora_pool::THOROUGH_CHECK_AFTER + Duration::from_millis(10)).await;
    assert!(connector.reused_stream(&peer).await.is_none());
    assert_eq!(connector.unexpected_data_connection_count(), 0);
}

#[tokio::test]
async fn unexpected_data_while_pooled_discards_and_counts() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let counter = connector.unexpected_data_connection_counter();
    let peer = plain_peer(addr);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let (mut server, _) = accept(&listener).await;
    connector.release_stream(stream, peer.reuse_hash(), None);
    server.write_all(b"junk").await.unwrap();
    tokio::time::sleep(pingora_pool::THOROUGH_CHECK_AFTER + Duration::from_millis(10)).await;

    let (_fresh, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    assert_eq!(connector.unexpected_data_connection_count(), 1);
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 1);
    expect_eof(&mut server).await;
}

#[tokio::test]
async fn unexpected_data_before_release_discards_and_counts() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let peer = plain_peer(addr);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let (mut server, _) = accept(&listener).await;
    server.write_all(b"junk").await.unwrap();
    connector.release_stream(stream, peer.reuse_hash(), None);
    // Seen at the latest when the connection is taken after the kernel-check threshold.
    tokio::time::sleep(pingora_pool::THOROUGH_CHECK_AFTER + Duration::from_millis(10)).await;
    assert!(connector.reused_stream(&peer).await.is_none());
    assert_eq!(connector.unexpected_data_connection_count(), 1);
    expect_eof(&mut server).await;
}

#[tokio::test]
async fn pushed_back_bytes_make_a_connection_unfit() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let peer = plain_peer(addr);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let (mut server, _) = accept(&listener).await;
    let stream = PrefixedStream::prepend(stream, bytes::Bytes::from_static(b"unread"));
    connector.release_stream(stream, peer.reuse_hash(), None);
    assert_eq!(connector.unexpected_data_connection_count(), 1);
    expect_eof(&mut server).await;
}

#[tokio::test]
async fn idle_timeout_closes_the_pooled_connection() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let peer = plain_peer(addr);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let (mut server, _) = accept(&listener).await;
    let released = Instant::now();
    connector.release_stream(stream, peer.reuse_hash(), Some(Duration::from_millis(150)));
    expect_eof(&mut server).await;
    assert!(released.elapsed() >= Duration::from_millis(140));
    assert!(connector.reused_stream(&peer).await.is_none());
}

#[tokio::test]
async fn zero_idle_timeout_does_not_pool() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(None);
    let peer = plain_peer(addr);
    let (stream, _) = connector.get_stream(&peer).await.unwrap();
    let (mut server, _) = accept(&listener).await;
    connector.release_stream(stream, peer.reuse_hash(), Some(Duration::ZERO));
    expect_eof(&mut server).await;
    let (_fresh, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
}

#[tokio::test]
async fn pool_size_is_respected() {
    let (listener, addr) = origin().await;
    let connector = TransportConnector::new(Some(ConnectorOptions::new(2)));
    let peer = plain_peer(addr);
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connector.new_stream(&peer).await.unwrap());
        servers.push(accept(&listener).await.0);
    }
    let ports: Vec<u16> = clients.iter().map(|c| local_addr(c).port()).collect();
    for client in clients {
        connector.release_stream(client, peer.reuse_hash(), None);
    }
    // The least recently released one was evicted and closed.
    expect_eof(&mut servers[0]).await;
    let mut reused_ports = Vec::new();
    for _ in 0..2 {
        let (stream, reused) = connector.get_stream(&peer).await.unwrap();
        assert!(reused);
        reused_ports.push(local_addr(&stream).port());
    }
    reused_ports.sort_unstable();
    let mut kept = ports[1..].to_vec();
    kept.sort_unstable();
    assert_eq!(reused_ports, kept);
    let (_fresh, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
}

#[tokio::test]
async fn unix_socket_peer_connects_and_is_reused() {
    let dir = temp_dir("uds");
    let path = dir.join("origin.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = HttpPeer::new_uds(path.to_str().unwrap(), false, String::new()).unwrap();
    let connector = TransportConnector::new(None);
    let (mut client, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    let (mut server, _) = listener.accept().await.unwrap();
    client.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    server.read_exact(&mut buf).await.unwrap();
    assert!(peer.matches_fd(client.id()));
    connector.release_stream(client, peer.reuse_hash(), None);
    let (_again, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(reused);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn prefer_h1_is_remembered_per_peer() {
    let connector = TransportConnector::new(None);
    let a = HttpPeer::new("127.0.0.1:1", true, "a".into());
    let b = HttpPeer::new("127.0.0.1:1", true, "b".into());
    assert_eq!(connector.preferred_alpn(&a), None);
    connector.prefer_h1(&a);
    assert_eq!(connector.preferred_alpn(&a), Some(ALPN::H1));
    assert_eq!(connector.preferred_alpn(&b), None);
}

#[test]
fn options_from_server_conf() {
    let conf = ServerConf {
        ca_file: Some("/etc/ca.pem".into()),
        upstream_keepalive_pool_size: 7,
        upstream_debug_ssl_keylog: true,
        upstream_connect_offload_threadpools: Some(2),
        upstream_connect_offload_thread_per_pool: Some(3),
        client_bind_to_ipv4: vec!["10.0.0.1".into(), "::1".into(), "bogus".into()],
        client_bind_to_ipv6: vec!["::1".into(), "[::2]:8000".into()],
        ..ServerConf::default()
    };
    let options = ConnectorOptions::from_server_conf(&conf);
    assert_eq!(options.ca_file.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(options.keepalive_pool_size, 7);
    assert!(options.debug_ssl_keylog);
    assert_eq!(options.offload_threadpool, Some((2, 3)));
    assert_eq!(options.bind_to_v4, vec!["10.0.0.1:0".parse().unwrap()]);
    assert_eq!(
        options.bind_to_v6,
        vec!["[::1]:0".parse().unwrap(), "[::2]:8000".parse().unwrap()]
    );

    let half = ServerConf {
        upstream_connect_offload_threadpools: Some(2),
        ..ServerConf::default()
    };
    assert_eq!(
        ConnectorOptions::from_server_conf(&half).offload_threadpool,
        None
    );
    assert_eq!(ConnectorOptions::new(5).keepalive_pool_size, 5);
}

// === CONNECT proxy ===

/// A CONNECT proxy on a Unix socket that answers one request with `answer`, returns the
/// request head it read, then echoes 4 bytes through the "tunnel".
async fn fake_proxy(listener: UnixListener, answer: &'static [u8]) -> String {
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    conn.write_all(answer).await.unwrap();
    let mut buf = [0u8; 4];
    if conn.read_exact(&mut buf).await.is_ok() {
        conn.write_all(&buf).await.unwrap();
        // Keep the tunnel open until the client is done.
        let _ = conn.read(&mut buf).await;
    }
    String::from_utf8(head).unwrap()
}

fn proxied_peer(dir: &std::path::Path) -> HttpPeer {
    let mut headers = BTreeMap::new();
    headers.insert(
        "Proxy-Authorization".to_string(),
        b"Basic dGVzdA==".to_vec(),
    );
    let path = dir.join("proxy.sock");
    let mut peer = HttpPeer::new_proxy(
        path.to_str().unwrap(),
        "10.1.2.3".parse().unwrap(),
        8443,
        false,
        "",
        headers,
    );
    peer.options
        .extra_proxy_headers
        .insert("X-Tenant".to_string(), b"blue".to_vec());
    peer
}

#[tokio::test]
async fn connect_proxy_tunnel_keeps_early_bytes() {
    let dir = temp_dir("proxy-ok");
    let listener = UnixListener::bind(dir.join("proxy.sock")).unwrap();
    let proxy = tokio::spawn(fake_proxy(
        listener,
        b"HTTP/1.1 200 Connection Established\r\nX-Proxy: yes\r\n\r\nearly",
    ));
    let mut peer = proxied_peer(&dir);
    peer.options.proxy_digest_user_data_hook = Some(Arc::new(|req, resp| {
        Some(Box::new(format!("{} {}", req.method, resp.status.as_u16())))
    }));

    let connector = TransportConnector::new(None);
    let (mut tunnel, reused) = connector.get_stream(&peer).await.unwrap();
    assert!(!reused);
    let mut early = [0u8; 5];
    tunnel.read_exact(&mut early).await.unwrap();
    assert_eq!(&early, b"early");
    tunnel.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tunnel.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");

    let digest = tunnel.get_proxy_digest().unwrap();
    assert_eq!(digest.response.status.as_u16(), 200);
    assert_eq!(digest.response.headers["x-proxy"], "yes");
    let user = digest.user_data.as_ref().unwrap();
    assert_eq!(user.downcast_ref::<String>().unwrap(), "CONNECT 200");
    assert!(peer.matches_fd(tunnel.id()));
    drop(tunnel);

    let head = proxy.await.unwrap();
    let lines: Vec<&str> = head.trim_end().split("\r\n").collect();
    assert_eq!(lines[0], "CONNECT 10.1.2.3:8443 HTTP/1.1");
    assert!(lines.contains(&"host: 10.1.2.3:8443") || lines.contains(&"Host: 10.1.2.3:8443"));
    assert!(
        lines.contains(&"Proxy-Authorization: Basic dGVzdA=="),
        "{head}"
    );
    assert!(lines.contains(&"X-Tenant: blue"), "{head}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn connect_proxy_refusal_is_reported_with_its_response() {
    let dir = temp_dir("proxy-407");
    let listener = UnixListener::bind(dir.join("proxy.sock")).unwrap();
    let proxy = tokio::spawn(fake_proxy(
        listener,
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
    ));
    let peer = proxied_peer(&dir);
    let err = TransportConnector::new(None)
        .new_stream(&peer)
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectProxyFailure);
    assert!(!err.retry());
    let cause = err
        .root_cause()
        .downcast_ref::<raw_connect::ConnectProxyError>()
        .expect("the cause carries the response");
    assert_eq!(cause.response.status.as_u16(), 407);
    proxy.await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn connect_proxy_that_hangs_up_is_connection_closed() {
    let dir = temp_dir("proxy-eof");
    let listener = UnixListener::bind(dir.join("proxy.sock")).unwrap();
    let proxy = tokio::spawn(async move {
        let (conn, _): (UnixStream, _) = listener.accept().await.unwrap();
        drop(conn);
    });
    let err = TransportConnector::new(None)
        .new_stream(&proxied_peer(&dir))
        .await
        .unwrap_err();
    // The request may or may not have been written before the hang-up was seen.
    assert!(
        matches!(
            err.etype(),
            ErrorType::ConnectionClosed | ErrorType::WriteError | ErrorType::ReadError
        ),
        "{err}"
    );
    proxy.await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn missing_proxy_socket_is_refused() {
    let dir = temp_dir("proxy-none");
    let err = TransportConnector::new(None)
        .new_stream(&proxied_peer(&dir))
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectRefused);
    std::fs::remove_dir_all(&dir).unwrap();
}

// === liveness probe ===

/// A connected pair: the client end as a [`Stream`], the server end as a `TcpStream`.
async fn pair() -> (Stream, TcpStream) {
    let (listener, addr) = origin().await;
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = accept(&listener).await;
    (Box::new(L4Stream::from(client)), server)
}

/// The probe learns a socket's state from the kernel, without waiting for the reactor: these
/// checks never yield between the server's action and the probe.
#[tokio::test]
async fn probe_sees_the_socket_state_at_once() {
    let (mut clean, _server) = pair().await;
    assert_eq!(clean.check_idle(true), IdleState::Clean);
    assert_eq!(clean.check_idle(true), IdleState::Clean);

    let (mut closed, server) = pair().await;
    drop(server);
    assert_eq!(closed.check_idle(true), IdleState::Closed);

    let (mut dirty, mut server) = pair().await;
    server.write_all(b"x").await.unwrap();
    assert_eq!(dirty.check_idle(true), IdleState::Data);

    let (plain, _server) = pair().await;
    let mut prefixed = PrefixedStream::prepend(plain, bytes::Bytes::from_static(b"left"));
    assert_eq!(prefixed.check_idle(true), IdleState::Data);

    // Streams without a socket can only be polled.
    let (memory, other) = tokio::io::duplex(8);
    let mut memory: Stream = Box::new(memory);
    assert_eq!(memory.check_idle(true), IdleState::Clean);
    drop(other);
    assert_eq!(memory.check_idle(true), IdleState::Closed);
}
