//! A custom, non-HTTP protocol: a line-based key-value store.
//!
//! Each request is one line; each answer is one line:
//!
//! | request | answer |
//! |---|---|
//! | `SET <key> <value>` | `OK` |
//! | `GET <key>` | `VALUE <value>` or `NOT_FOUND` |
//! | `DEL <key>` | `DELETED` or `NOT_FOUND` |
//! | `QUIT` | `BYE`, then the server closes the connection |
//! | anything else | `ERROR <reason>` |
//!
//! Lines are at most [`MAX_LINE`] bytes; a longer one is answered with an error and the
//! connection is closed, so a client cannot make the server buffer without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The longest request line accepted, its newline included.
pub const MAX_LINE: usize = 4096;

/// The key-value server. The store is shared by all connections.
#[derive(Debug, Default)]
pub struct KvApp {
    store: Mutex<HashMap<String, String>>,
}

/// What to do after answering a line.
enum Next {
    Continue,
    Close,
}

impl KvApp {
    /// Runs one request line and returns the answer line (without its newline).
    fn execute(&self, line: &str) -> (String, Next) {
        let mut words = line.splitn(3, ' ');
        let command = words.next().unwrap_or_default();
        let key = words.next();
        let value = words.next();
        let mut store = self
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match (command, key, value) {
            ("SET", Some(key), Some(value)) => {
                store.insert(key.to_string(), value.to_string());
                ("OK".into(), Next::Continue)
            }
            ("GET", Some(key), None) => match store.get(key) {
                Some(value) => (format!("VALUE {value}"), Next::Continue),
                None => ("NOT_FOUND".into(), Next::Continue),
            },
            ("DEL", Some(key), None) => match store.remove(key) {
                Some(_) => ("DELETED".into(), Next::Continue),
                None => ("NOT_FOUND".into(), Next::Continue),
            },
            ("QUIT", None, None) => ("BYE".into(), Next::Close),
            ("SET" | "GET" | "DEL" | "QUIT", ..) => {
                ("ERROR wrong number of arguments".into(), Next::Continue)
            }
            _ => ("ERROR unknown command".into(), Next::Continue),
        }
    }
}

#[async_trait]
impl ServerApp for KvApp {
    async fn process_new(
        self: &Arc<Self>,
        io: Stream,
        _shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut io = BufReader::new(io);
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut io)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
                .await;
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) if line.last() != Some(&b'\n') => {
                    // Either too long, or the client closed in the middle of a line.
                    let _ = io.write_all(b"ERROR line too long\n").await;
                    return None;
                }
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let (answer, next) = self.execute(text.trim_end_matches(['\r', '\n']));
            io.write_all(answer.as_bytes()).await.ok()?;
            io.write_all(b"\n").await.ok()?;
            io.flush().await.ok()?;
            if let Next::Close = next {
                return None;
            }
        }
    }
}
