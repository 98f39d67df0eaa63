//! Noticing that a failing destination is back, without waiting out every sender's backoff.
//!
//! Owns: one destination's per-core recovery state — when its last attempt started, and a
//! signal raised when an attempt succeeds — and [`Recovery::wait`], the retry wait every
//! sender uses instead of a plain sleep. Does not own: the backoff schedule
//! ([`super::backoff`]) or sending ([`super::sender`]). Cold path: runs once per failed attempt.
//!
//! Why (*pyrogate extension*; Alloy sleeps out each backoff): during an outage every sender
//! holds an upload in backoff, and dskit's doubling reaches tens of seconds within a minute
//! (Alloy's defaults: 500 ms doubling to 5 m). Once the upstream is back, each sender would
//! only notice at the end of its own wait, while the queue behind them stays full and new
//! uploads are dropped. Two rules fix that:
//! - **probe**: while uploads wait to retry, one of them is attempted as soon as no attempt has
//!   started on this destination (this core) for the probe interval — `max(PROBE_INTERVAL,
//!   min_backoff_period)` — so a dead upstream sees about one request per probe interval per
//!   core, and a recovered one is noticed within about one interval;
//! - **wake on recovery**: when an attempt succeeds after none had for a probe interval (the
//!   destination was down), every upload waiting to retry is retried at once: an upstream that
//!   answers again after an outage is probably back. While successes keep coming (a few
//!   failures among many successes, or an overloaded upstream failing part of its requests)
//!   failed uploads wait out their backoff as in Alloy, so retries do not pile onto an
//!   upstream that is struggling.
//!
//! Neither shortens a wait below the upstream's `Retry-After`, and a probe is an ordinary
//! attempt: it counts towards `max_backoff_retries` and in `pyroscope_write_retries_total`.

use std::cell::Cell;
use std::time::{Duration, Instant};

use crate::sync::Notify;

/// Shortest interval between probes of a destination whose uploads all wait in backoff.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// One destination's recovery state on one core.
#[derive(Debug, Default)]
pub struct Recovery {
    last_attempt: Cell<Option<Instant>>,
    last_success: Cell<Option<Instant>>,
    /// Senders inside [`Recovery::wait`].
    waiting: Cell<usize>,
    succeeded: Notify,
}

/// Decrements the waiter count however the wait ends.
struct Waiting<'a>(&'a Cell<usize>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl Recovery {
    /// An attempt on this destination starts now.
    pub fn attempt_started(&self) {
        self.last_attempt.set(Some(Instant::now()));
    }

    /// An attempt succeeded: if none had for `probe_interval`, every waiting upload is
    /// retried now.
    pub fn attempt_succeeded(&self, probe_interval: Duration) {
        let now = Instant::now();
        let was_down = self
            .last_success
            .replace(Some(now))
            .is_none_or(|t| now.duration_since(t) >= probe_interval);
        if was_down && self.waiting.get() > 0 {
            self.succeeded.notify_all();
        }
    }

    /// Waits `delay` before a retry, but at least `floor` (the upstream's `Retry-After`), and
    /// returns early when the destination recovers (see [`Recovery::attempt_succeeded`]) or
    /// when this waiter is due to probe: no attempt has started here for `probe_interval`.
    pub async fn wait(&self, delay: Duration, floor: Duration, probe_interval: Duration) {
        let start = Instant::now();
        let end = start + delay;
        if !floor.is_zero() {
            monoio::time::sleep(floor.min(delay)).await;
        }
        self.waiting.set(self.waiting.get() + 1);
        let _waiting = Waiting(&self.waiting);
        loop {
            let now = Instant::now();
            if now >= end {
                return;
            }
            let due = self.last_attempt.get().map_or(now, |t| t + probe_interval);
            if now >= due {
                return;
            }
            let wake = end.min(due);
            let succeeded = self.succeeded.notified();
            if monoio::time::timeout(wake - now, succeeded).await.is_ok() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    const MS: Duration = Duration::from_millis(1);

    #[monoio::test_all(timer_enabled = true)]
    async fn a_long_backoff_is_cut_to_the_probe_interval_when_nothing_else_is_attempted() {
        let r = Recovery::default();
        r.attempt_started();
        let t = Instant::now();
        r.wait(Duration::from_secs(30), Duration::ZERO, 50 * MS)
            .await;
        let waited = t.elapsed();
        assert!(
            waited >= 45 * MS && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_short_backoff_is_waited_out_in_full() {
        let r = Recovery::default();
        r.attempt_started();
        let t = Instant::now();
        r.wait(20 * MS, Duration::ZERO, Duration::from_secs(10))
            .await;
        assert!(t.elapsed() >= 20 * MS);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_success_wakes_every_waiter_but_not_before_retry_after() {
        let r = Rc::new(Recovery::default());
        r.attempt_started();
        let t = Instant::now();
        let a = monoio::spawn({
            let r = r.clone();
            async move {
                r.wait(
                    Duration::from_secs(30),
                    Duration::ZERO,
                    Duration::from_secs(30),
                )
                .await
            }
        });
        let b = monoio::spawn({
            let r = r.clone();
            async move {
                r.wait(Duration::from_secs(30), 100 * MS, Duration::from_secs(30))
                    .await
            }
        });
        monoio::time::sleep(150 * MS).await;
        assert_eq!(r.waiting.get(), 2);
        r.attempt_started();
        r.attempt_succeeded(Duration::from_secs(30));
        a.await;
        b.await;
        let waited = t.elapsed();
        assert!(
            waited >= 100 * MS && waited < Duration::from_secs(10),
            "{waited:?}"
        );
        assert_eq!(r.waiting.get(), 0);
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn a_success_among_recent_successes_wakes_nobody() {
        let r = Rc::new(Recovery::default());
        r.attempt_started();
        r.attempt_succeeded(Duration::from_secs(30));
        let t = Instant::now();
        let w = monoio::spawn({
            let r = r.clone();
            async move {
                r.wait(200 * MS, Duration::ZERO, Duration::from_secs(30))
                    .await
            }
        });
        monoio::time::sleep(50 * MS).await;
        r.attempt_succeeded(Duration::from_secs(30));
        w.await;
        // Still up (a success 50 ms earlier): the failed upload waits out its backoff.
        assert!(t.elapsed() >= 190 * MS, "{:?}", t.elapsed());
    }

    #[monoio::test_all(timer_enabled = true)]
    async fn attempts_elsewhere_postpone_the_probe() {
        let r = Rc::new(Recovery::default());
        r.attempt_started();
        let t = Instant::now();
        let w = monoio::spawn({
            let r = r.clone();
            async move { r.wait(300 * MS, Duration::ZERO, 100 * MS).await }
        });
        for _ in 0..4 {
            monoio::time::sleep(50 * MS).await;
            r.attempt_started();
        }
        w.await;
        // Attempts every 50 ms keep the 100 ms probe from firing: the full 300 ms is waited.
        assert!(t.elapsed() >= 290 * MS, "{:?}", t.elapsed());
    }
}
