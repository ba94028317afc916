//! Retry policy: which failed attempts may be repeated, and how long to wait before the next one
//! (capped exponential backoff with full jitter, or the server's `Retry-After`).
//!
//! Pure decisions only: this module does not send requests or sleep; `client` owns the loop.

use std::time::{Duration, SystemTime};

/// First backoff step; attempt `n` waits a random time in `[0, min(cap, BASE_DELAY * 2^n)]`.
pub(crate) const BASE_DELAY: Duration = Duration::from_millis(200);

/// What a non-200 status says about repeating the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusRetry {
    /// The server did not process the request (429, 503): any request may be repeated.
    NotProcessed,
    /// The server or a gateway failed (500, 502, 504): the request may or may not have been
    /// applied. Idempotent requests are repeated; a create must first look for what it may have
    /// created. (A 500 is often a transient backend fault at BentoCloud's scale; giving up on it
    /// would fail a 500-deployment refresh for one hiccup.)
    OutcomeUnknown,
    /// A definite answer: do not repeat.
    Final,
}

pub(crate) fn classify_status(status: u16) -> StatusRetry {
    match status {
        429 | 503 => StatusRetry::NotProcessed,
        500 | 502 | 504 => StatusRetry::OutcomeUnknown,
        _ => StatusRetry::Final,
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub max_retries: u32,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The exponential cap for retry number `attempt` (0 for the first retry).
    fn ceiling(&self, attempt: u32) -> Duration {
        let base = BASE_DELAY.min(self.max_delay);
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(self.max_delay)
    }

    /// Full jitter: uniform in `[0, ceiling(attempt)]`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        if ceiling.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::random::<u64>() % nanos.saturating_add(1))
    }

    /// The delay before retry number `attempt`: the server's `Retry-After` when it gave one
    /// (capped at `max_delay`), else [`Self::backoff`].
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(d) => d.min(self.max_delay),
            None => self.backoff(attempt),
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds (`"3"`, also `"1.5"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), relative to `now`. A date in the past gives zero.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Duration::try_from_secs_f64(secs).ok();
        }
        return None;
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let when = SystemTime::from(when.with_timezone(&chrono::Utc));
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests;
