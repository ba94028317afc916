//! The control plane's clock: the wall clock, or a manual one that only moves when a test
//! steps it (as omicron's simulated sled agent does), so that every time-based behaviour (the
//! status sync, progress deadlines, drains, replica start-up, scale-to-zero idleness, crashes)
//! happens exactly when the test says, and never because a test was slow.
//!
//! Everything of the control plane that reads "now" reads it here: the HTTP handlers, the
//! reconciler's ticks, the replicas and the proxy's load counters. The reconciler still ticks
//! on a real interval; with a manual clock a tick only sees time pass after
//! [`Clock::advance`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Milliseconds since the epoch, from the wall clock or stepped by hand.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The wall clock (`bentocloud-local serve`, and most tests).
    #[default]
    Real,
    /// Stands still until [`Clock::advance`]; waiters are woken through the channel.
    Manual(Arc<watch::Sender<i64>>),
}

impl Clock {
    /// A manual clock that reads `start_ms` until advanced.
    pub fn manual(start_ms: i64) -> Clock {
        Clock::Manual(Arc::new(watch::Sender::new(start_ms)))
    }

    /// Now, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::Real => chrono::Utc::now().timestamp_millis(),
            Clock::Manual(t) => *t.borrow(),
        }
    }

    /// Moves a manual clock forward by `by`; returns the new time. The wall clock cannot be
    /// stepped: `Err` says so.
    pub fn advance(&self, by: Duration) -> Result<i64, String> {
        match self {
            Clock::Real => Err("the wall clock cannot be advanced".into()),
            Clock::Manual(t) => {
                let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
                t.send_modify(|now| *now = now.saturating_add(ms));
                Ok(*t.borrow())
            }
        }
    }

    /// Resolves once the clock reads `at_ms` or later.
    pub async fn sleep_until(&self, at_ms: i64) {
        match self {
            Clock::Real => {
                let left = at_ms.saturating_sub(self.now_ms()).max(0);
                tokio::time::sleep(Duration::from_millis(left as u64)).await;
            }
            Clock::Manual(t) => {
                let mut rx = t.subscribe();
                // The sender lives as long as this clock does: `Err` cannot happen while
                // `self` is borrowed, and would only mean "never".
                if rx.wait_for(|now| *now >= at_ms).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.now_ms(), 1_000);
        assert_eq!(c.advance(Duration::from_millis(250)), Ok(1_250));
        assert_eq!(c.now_ms(), 1_250);
        assert!(Clock::Real.advance(Duration::from_secs(1)).is_err());
        let before = Clock::Real.now_ms();
        assert!(before > 1_600_000_000_000, "the wall clock reads epoch ms");
    }

    #[tokio::test]
    async fn sleepers_wake_when_the_clock_reaches_their_time() {
        let c = Clock::manual(0);
        let sleeper = tokio::spawn({
            let c = c.clone();
            async move { c.sleep_until(500).await }
        });
        c.advance(Duration::from_millis(499)).expect("manual");
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its time");
        c.advance(Duration::from_millis(1)).expect("manual");
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("woke at its time")
            .expect("joined");
        // Already past: at once.
        tokio::time::timeout(Duration::from_secs(5), c.sleep_until(10))
            .await
            .expect("no wait for a past time");
    }
}
