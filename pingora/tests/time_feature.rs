//! `pingora::time` is `pingora-timeout`, reachable with the `time` feature.

#![cfg(feature = "time")]

use std::time::Duration;

#[tokio::test]
async fn time_module_is_pingora_timeout() {
    let done = pingora::time::timeout(Duration::from_secs(10), async { 7 }).await;
    assert_eq!(done.ok(), Some(7));

    let elapsed: Result<(), pingora::time::Elapsed> =
        pingora::time::timeout(Duration::from_millis(1), std::future::pending()).await;
    assert!(elapsed.is_err());
}
