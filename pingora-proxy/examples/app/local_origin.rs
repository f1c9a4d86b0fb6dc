//! Minimal HTTP/1.1 origins on loopback for the load balancer examples: each answers every
//! request with `Hello from <name>` and keeps connections alive. They run on a thread of their
//! own, outside the proxy's server, and know just enough HTTP for that (request bodies with a
//! `Content-Length` are read and ignored; anything else closes the connection).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts `names.len()` origins on `127.0.0.1` ephemeral ports; returns their addresses.
pub fn start_origins(names: &[&str]) -> Vec<SocketAddr> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("local origins".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("origin runtime");
            rt.block_on(async move {
                let mut addrs = Vec::new();
                for name in names {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind an origin");
                    addrs.push(listener.local_addr().expect("bound"));
                    tokio::spawn(serve(listener, name));
                }
                tx.send(addrs).expect("the caller waits");
                std::future::pending::<()>().await;
            });
        })
        .expect("origin thread");
    rx.recv().expect("origins started")
}

async fn serve(listener: TcpListener, name: String) {
    let body = format!("Hello from {name}\n");
    while let Ok((conn, _)) = listener.accept().await {
        tokio::spawn(connection(conn, body.clone()));
    }
}

async fn connection(mut conn: TcpStream, body: String) {
    let _ = conn.set_nodelay(true);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Read one request head, and its body if it has a length.
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        if head.contains("transfer-encoding:") {
            return;
        }
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
