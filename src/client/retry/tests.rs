//! Tests of the retry policy: which statuses are retried, back-off and `Retry-After`.

use super::*;

#[test]
fn statuses() {
    assert_eq!(classify_status(429), StatusRetry::NotProcessed);
    assert_eq!(classify_status(503), StatusRetry::NotProcessed);
    assert_eq!(classify_status(502), StatusRetry::OutcomeUnknown);
    assert_eq!(classify_status(504), StatusRetry::OutcomeUnknown);
    assert_eq!(classify_status(500), StatusRetry::OutcomeUnknown);
    for s in [200, 400, 401, 404, 409, 501] {
        assert_eq!(classify_status(s), StatusRetry::Final, "{s}");
    }
}

#[test]
fn backoff_is_jittered_exponential_and_capped() {
    let p = RetryPolicy {
        max_retries: 8,
        max_delay: Duration::from_secs(30),
    };
    assert_eq!(p.ceiling(0), Duration::from_millis(200));
    assert_eq!(p.ceiling(3), Duration::from_millis(1600));
    assert_eq!(p.ceiling(40), Duration::from_secs(30));
    for attempt in 0..12 {
        for _ in 0..50 {
            assert!(p.backoff(attempt) <= p.ceiling(attempt));
        }
    }
    // Full jitter spreads the values out.
    let samples: Vec<Duration> = (0..100).map(|_| p.backoff(5)).collect();
    assert!(samples.iter().any(|d| *d < Duration::from_secs(3)));
    assert!(samples.iter().any(|d| *d > Duration::from_secs(3)));
    // Retry-After wins, capped.
    assert_eq!(
        p.delay(0, Some(Duration::from_secs(5))),
        Duration::from_secs(5)
    );
    assert_eq!(
        p.delay(0, Some(Duration::from_secs(500))),
        Duration::from_secs(30)
    );
    let zero = RetryPolicy {
        max_retries: 1,
        max_delay: Duration::ZERO,
    };
    assert_eq!(zero.backoff(3), Duration::ZERO);
}

#[test]
fn retry_after_seconds_and_dates() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
    assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("1.5", now),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-1", now), None);
}
