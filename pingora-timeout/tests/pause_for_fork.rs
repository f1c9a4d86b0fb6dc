//! `pause_for_fork` / `unpause` on the process-wide timer manager. This lives in its own test
//! binary (its own process) because pausing the shared manager would disturb other tests.

use pingora_timeout::fast_timeout::{pause_for_fork, unpause};
use pingora_timeout::{sleep, timeout, Elapsed};
use std::future::pending;
use std::time::{Duration, Instant};

#[tokio::test]
async fn new_timers_fire_immediately_while_paused_and_normally_after() {
    // Start the clock with a timeout that is pending across the pause.
    let across = tokio::spawn(async {
        let start = Instant::now();
        let result = timeout(Duration::from_millis(100), pending::<()>()).await;
        (result, start.elapsed())
    });
    sleep(Duration::from_millis(10)).await;

    pause_for_fork();
    let start = Instant::now();
    assert_eq!(
        timeout(Duration::from_secs(3600), pending::<()>()).await,
        Err(Elapsed)
    );
    sleep(Duration::from_secs(3600)).await;
    assert!(start.elapsed() < Duration::from_millis(50));
    // A ready future still wins while paused.
    assert_eq!(timeout(Duration::from_secs(3600), async { 5 }).await, Ok(5));
    unpause();

    let start = Instant::now();
    assert_eq!(
        timeout(Duration::from_millis(30), pending::<()>()).await,
        Err(Elapsed)
    );
    assert!(start.elapsed() >= Duration::from_millis(30));

    let (result, waited) = across.await.unwrap();
    assert_eq!(result, Err(Elapsed));
    assert!(
        waited >= Duration::from_millis(100),
        "fired early: {waited:?}"
    );
}
