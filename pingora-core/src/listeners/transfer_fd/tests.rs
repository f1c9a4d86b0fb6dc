use super::*;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread;

fn quick(attempts: usize) -> TransferRetry {
    TransferRetry {
        attempts,
        interval: Duration::from_millis(50),
    }
}

#[test]
fn table_round_trip() {
    let mut fds = Fds::new();
    assert!(fds.is_empty());
    fds.add("127.0.0.1:80".into(), 5);
    fds.add("/tmp/x.sock".into(), 6);
    fds.add("127.0.0.1:80".into(), 7);
    assert_eq!(fds.len(), 2);
    assert_eq!(fds.get("127.0.0.1:80"), Some(&7));
    assert_eq!(fds.get("nope"), None);

    let (binds, raw) = fds.serialize();
    let mut copy = Fds::new();
    copy.deserialize(binds, raw);
    assert_eq!(copy, fds);
    assert_eq!(fds.clone(), fds);

    let mut short = Fds::new();
    short.deserialize(vec!["a".into(), "b".into()], vec![1]);
    assert_eq!(short.len(), 1);
    assert_eq!(short.get("a"), Some(&1));
    // Entries added by hand are never handed to a listener: only received sockets are.
    assert!(short.take_received("a").is_none());
}

#[test]
fn sockets_are_handed_over_and_keep_their_queue() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.sock");
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let uds_path = dir.path().join("app.sock");
    let uds = UnixListener::bind(&uds_path).unwrap();

    let mut old = Fds::new();
    old.add("127.0.0.1:0".into(), tcp.as_raw_fd());
    old.add(uds_path.display().to_string(), uds.as_raw_fd());
    // An address the payload cannot carry is left out, with a warning.
    old.add("has space".into(), tcp.as_raw_fd());

    // The new process listens first; the old one connects.
    let receiver_path = path.clone();
    let receiver = thread::spawn(move || {
        let mut new = Fds::new();
        let (count, ack) = new
            .get_from_sock_with(&receiver_path, quick(100), &TrustedPeers::new(None))
            .unwrap();
        // The new process confirms once it uses the sockets.
        ack.confirm();
        (new, count)
    });
    let sent = old.send_to_sock_with(&path, quick(100)).unwrap();
    let (mut new, received) = receiver.join().unwrap();
    assert_eq!((sent, received), (2, 2));
    assert_eq!(new.len(), 2);
    assert!(
        !path.exists(),
        "the upgrade socket file is removed after use"
    );

    // A connection queued before the old listener closes is accepted by the new one.
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"hi").unwrap();
    drop(tcp);
    let taken = new.take_received("127.0.0.1:0").unwrap();
    assert!(new.take_received("127.0.0.1:0").is_none(), "taken once");
    assert_eq!(new.get("127.0.0.1:0"), Some(&taken.as_raw_fd()));
    let adopted = TcpListener::from(taken);
    assert_eq!(adopted.local_addr().unwrap(), addr);
    let (mut conn, _) = adopted.accept().unwrap();
    let mut buf = [0u8; 2];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");

    let uds_taken = new.take_received(&uds_path.display().to_string()).unwrap();
    let adopted_uds = UnixListener::from(uds_taken);
    drop(uds);
    let _client = UnixStream::connect(&uds_path).unwrap();
    adopted_uds.accept().unwrap();

    // The new table can hand the sockets on again, as the next upgrade would.
    let (binds, _) = new.serialize();
    assert_eq!(binds.len(), 2);
}

#[test]
fn sending_without_a_new_process_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut fds = Fds::new();
    fds.add("127.0.0.1:0".into(), tcp.as_raw_fd());
    let path = dir.path().join("nobody.sock");
    let err = fds.send_to_sock_with(&path, quick(2)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("nobody.sock"), "{text}");
    assert!(text.contains("--upgrade"), "{text}");
    assert!(text.contains("2 attempts"), "{text}");

    // Nothing to send is not an error, and needs no peer.
    assert_eq!(Fds::new().send_to_sock_with(&path, quick(1)).unwrap(), 0);
}

#[test]
fn receiving_without_an_old_process_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.sock");
    let mut fds = Fds::new();
    let err = fds
        .get_from_sock_with(&path, quick(2), &TrustedPeers::new(None))
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no old process"), "{text}");
    assert!(text.contains("SIGQUIT"), "{text}");
    assert!(!path.exists());
    assert!(fds.is_empty());

    let missing_dir = dir.path().join("missing/upgrade.sock");
    let err = fds
        .get_from_sock_with(&missing_dir, quick(1), &TrustedPeers::new(None))
        .unwrap_err();
    assert!(err.to_string().contains("directory exist"), "{err}");
}

#[test]
fn a_malformed_message_is_refused_and_not_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.sock");
    let receiver_path = path.clone();
    let receiver = thread::spawn(move || {
        let mut new = Fds::new();
        let result = new
            .get_from_sock_with(&receiver_path, quick(100), &TrustedPeers::new(None))
            .map(|(count, _)| count);
        (result.map_err(|e| e.to_string()), new.len())
    });
    // Two addresses but one socket.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = connect_with_retry(&path, quick(100)).unwrap();
    send_all(&stream, b"a b", &[tcp.as_raw_fd()]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (result, len) = receiver.join().unwrap();
    let err = result.unwrap_err();
    assert!(err.contains("2 listen addresses but 1 sockets"), "{err}");
    assert_eq!(len, 0);
    let mut ack = [0u8; 1];
    assert_eq!((&stream).read(&mut ack).unwrap(), 0, "no confirmation");
}

#[test]
fn an_unconfirmed_hand_over_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.sock");
    let listener = UnixListener::bind(&path).unwrap();
    // A peer that reads the message and hangs up without confirming.
    let peer = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (payload, fds) = receive_all(&stream).unwrap();
        (payload, fds.len())
    });
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut fds = Fds::new();
    fds.add("127.0.0.1:0".into(), tcp.as_raw_fd());
    let err = fds.send_to_sock_with(&path, quick(5)).unwrap_err();
    assert!(err.to_string().contains("without confirming"), "{err}");
    let (payload, count) = peer.join().unwrap();
    assert_eq!(payload, b"127.0.0.1:0");
    assert_eq!(count, 1);
}

#[test]
fn only_trusted_users_may_hand_sockets_over() {
    let me = nix::unistd::geteuid().as_raw();
    let trusted = TrustedPeers::new(Some(4242));
    assert!(trusted.allows(0));
    assert!(trusted.allows(me));
    assert!(trusted.allows(4242));
    assert!(!trusted.allows(4243) || me == 4243);

    // A peer of an untrusted user is refused, and the receiver keeps waiting.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.sock");
    let listener = bind_upgrade_sock(&path).unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    let nobody = TrustedPeers {
        uids: vec![u32::MAX - 1],
    };
    let err = accept_with_retry(&listener, &path, quick(1), &nobody).unwrap_err();
    assert!(err.to_string().contains("no old process"), "{err}");
}

#[test]
fn a_new_process_that_gives_up_before_confirming_fails_the_hand_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upgrade.sock");
    let receiver_path = path.clone();
    // The new process receives the sockets, then fails to start: its confirmation is dropped.
    let receiver = thread::spawn(move || {
        let mut new = Fds::new();
        let (count, ack) = new
            .get_from_sock_with(&receiver_path, quick(100), &TrustedPeers::new(None))
            .unwrap();
        drop(ack);
        count
    });
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut old = Fds::new();
    old.add("127.0.0.1:0".into(), tcp.as_raw_fd());
    let err = old.send_to_sock_with(&path, quick(100)).unwrap_err();
    assert!(err.to_string().contains("without confirming"), "{err}");
    assert_eq!(receiver.join().unwrap(), 1);
}
