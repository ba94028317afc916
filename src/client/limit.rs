//! The provider-wide request limit: at most N requests in flight (a semaphore) and at most R
//! requests started per second (a token bucket, kept as GCRA: one "theoretical arrival time").
//!
//! One `Limiter` is shared by every clone of a `Client`, so all resources of a Terraform run
//! draw from the same budget. Waiting is async (a single `sleep_until` per request, no busy
//! loop). This module knows nothing about HTTP or retries.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use std::sync::Arc;

/// Bursts allowed above the steady rate, as a fraction of one second's budget (rate 50/s gives a
/// burst of 5): smooth, but a handful of reads at startup do not queue behind each other.
const BURST_SECONDS: f64 = 0.1;

#[derive(Debug)]
pub(crate) struct Limiter {
    slots: Arc<Semaphore>,
    bucket: Option<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Time between two requests at the steady rate.
    interval: Duration,
    /// How far ahead of the schedule a request may start (`(burst - 1) * interval`).
    tolerance: Duration,
    /// Theoretical arrival time of the next request.
    tat: Mutex<Option<Instant>>,
}

/// Held while a request is in flight; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit {
    _slot: OwnedSemaphorePermit,
}

impl Limiter {
    /// `max_concurrent` must be at least 1. `per_second` of 0 or infinity means no rate limit.
    pub fn new(max_concurrent: usize, per_second: f64) -> Limiter {
        let bucket = (per_second.is_finite() && per_second > 0.0).then(|| {
            let interval = Duration::from_secs_f64(1.0 / per_second);
            let burst = (per_second * BURST_SECONDS).floor().max(1.0);
            Bucket {
                interval,
                tolerance: interval.mul_f64(burst - 1.0),
                tat: Mutex::new(None),
            }
        });
        Limiter {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            bucket,
        }
    }

    /// Waits for a rate token, then for a free slot. `None` only if the semaphore was closed,
    /// which this crate never does.
    pub async fn acquire(&self) -> Option<Permit> {
        if let Some(bucket) = &self.bucket {
            let start_at = bucket.reserve(Instant::now());
            if start_at > Instant::now() {
                tokio::time::sleep_until(start_at).await;
            }
        }
        let slot = self.slots.clone().acquire_owned().await.ok()?;
        Some(Permit { _slot: slot })
    }
}

impl Bucket {
    /// Reserves the next slot of the schedule and returns when it may start.
    fn reserve(&self, now: Instant) -> Instant {
        let mut tat = match self.tat.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let scheduled = match *tat {
            Some(t) if t > now => t,
            _ => now,
        };
        *tat = Some(scheduled + self.interval);
        scheduled
            .checked_sub(self.tolerance)
            .map_or(now, |t| t.max(now))
    }
}

#[cfg(test)]
mod tests;
