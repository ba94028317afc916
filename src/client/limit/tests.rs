//! Tests of the request limit: a smooth rate after a small burst, one schedule for all waiters,
//! and the cap on requests in flight (paused time).

use super::*;

#[tokio::test(start_paused = true)]
async fn rate_is_smooth_after_a_small_burst() {
    let limiter = Arc::new(Limiter::new(100, 10.0)); // burst 1
    let t0 = Instant::now();
    let mut starts = Vec::new();
    for _ in 0..20 {
        let _p = limiter.acquire().await.expect("permit");
        starts.push(Instant::now() - t0);
    }
    // 20 requests at 10/s: the last starts at 1.9 s, evenly spaced.
    assert_eq!(starts[0], Duration::ZERO);
    assert_eq!(starts[19], Duration::from_millis(1900));
    for w in starts.windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_millis(100));
    }

    let burst = Limiter::new(100, 50.0); // burst 5
    let t0 = Instant::now();
    for _ in 0..5 {
        let _p = burst.acquire().await.expect("permit");
    }
    assert_eq!(
        Instant::now() - t0,
        Duration::ZERO,
        "burst of 5 is immediate"
    );
    let _p = burst.acquire().await.expect("permit");
    assert_eq!(Instant::now() - t0, Duration::from_millis(20));
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_share_one_schedule() {
    let limiter = Arc::new(Limiter::new(100, 20.0)); // burst 2, 50 ms apart
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let l = limiter.clone();
            tokio::spawn(async move {
                let _p = l.acquire().await.expect("permit");
                Instant::now() - t0
            })
        })
        .collect();
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.expect("join"));
    }
    done.sort();
    // 10 requests, burst 2, then 20/s: the last starts at (10 - 2) * 50 ms.
    assert_eq!(done[9], Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn slots_cap_in_flight_requests() {
    let limiter = Limiter::new(2, 0.0);
    let a = limiter.acquire().await.expect("a");
    let _b = limiter.acquire().await.expect("b");
    let third = tokio::time::timeout(Duration::from_secs(1), limiter.acquire()).await;
    assert!(third.is_err(), "a third request must wait");
    drop(a);
    assert!(limiter.acquire().await.is_some());
}
