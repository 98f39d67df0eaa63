//! Retry policy: which outcomes are retried and how long to wait between attempts.
//!
//! Owns: dskit's jittered exponential backoff as Alloy uses it (`min_backoff_period`,
//! `max_backoff_period`, `max_backoff_retries` = total attempts) and Alloy's `shouldRetry`
//! rules, plus honouring `Retry-After` (Alloy ignores it; users asked for it). Does not own:
//! sleeping or sending. Pure; cold relative to the request path (runs once per failure).

use std::time::Duration;

/// Longest `Retry-After` honoured; a larger value (or a far-future date) waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What one attempt produced, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError {
    /// A complete response with a status other than 200.
    Status(u16),
    /// Connect failure, reset, malformed response, or the per-attempt timeout.
    Transport,
}

/// Alloy's `shouldRetry` for `/ingest`: transport errors and timeouts, 408, 5xx, and 429 when
/// `retry_on_http_429`; never other statuses (other 4xx, 2xx other than 200, 3xx).
pub fn should_retry(err: AttemptError, retry_on_429: bool) -> bool {
    match err {
        AttemptError::Transport => true,
        AttemptError::Status(429) => retry_on_429,
        AttemptError::Status(408) => true,
        AttemptError::Status(s) => s >= 500,
    }
}

/// dskit `backoff.Backoff`: the n-th wait is uniform in `[d, min(2d, max))` where `d` starts at
/// `min` and doubles per retry, capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    max_attempts: u32,
    attempts: u32,
    next_min: Duration,
}

impl Backoff {
    /// `max_attempts` = 0 means unbounded.
    pub fn new(min: Duration, max: Duration, max_attempts: u32) -> Self {
        Backoff {
            min,
            max: max.max(min),
            max_attempts,
            attempts: 0,
            next_min: Duration::ZERO,
        }
    }

    /// Counts an attempt; returns whether another one is allowed after it.
    pub fn record_attempt(&mut self) -> bool {
        self.attempts = self.attempts.saturating_add(1);
        self.max_attempts == 0 || self.attempts < self.max_attempts
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt. `rand01` is a uniform sample in `[0, 1)`;
    /// `retry_after` (from the upstream) lengthens the wait but never shortens it. It is honoured
    /// even beyond `max_backoff_period` (that bounds pyrogate's own exponential growth, not
    /// what the server asked for), up to [`MAX_RETRY_AFTER`].
    pub fn next_delay(&mut self, rand01: f64, retry_after: Option<Duration>) -> Duration {
        let jittered = if self.min == self.max {
            self.min
        } else {
            self.next_min = if self.next_min.is_zero() {
                self.min
            } else {
                (self.next_min * 2).min(self.max)
            };
            let upper = (self.next_min * 2).min(self.max);
            let span = upper.saturating_sub(self.next_min);
            self.next_min + span.mul_f64(rand01.clamp(0.0, 1.0))
        };
        match retry_after {
            Some(ra) => jittered.max(ra.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_rules_follow_alloy() {
        use AttemptError::*;
        assert!(should_retry(Transport, false));
        assert!(should_retry(Status(500), false));
        assert!(should_retry(Status(503), false));
        assert!(should_retry(Status(408), false));
        assert!(should_retry(Status(429), true));
        assert!(!should_retry(Status(429), false));
        for s in [400, 401, 403, 404, 413, 422, 204, 301] {
            assert!(!should_retry(Status(s), true), "{s}");
        }
    }

    #[test]
    fn max_attempts_counts_every_attempt() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 3);
        assert!(b.record_attempt());
        assert!(b.record_attempt());
        assert!(!b.record_attempt());
        assert_eq!(b.attempts(), 3);
    }

    #[test]
    fn zero_max_attempts_is_unbounded() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 0);
        for _ in 0..1000 {
            assert!(b.record_attempt());
        }
    }

    #[test]
    fn delays_double_within_jitter_and_cap_at_max() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000), 0);
        assert_eq!(b.next_delay(0.0, None), ms(100));
        assert_eq!(b.next_delay(0.5, None), ms(300)); // [200, 400)
        assert_eq!(b.next_delay(0.0, None), ms(400));
        assert_eq!(b.next_delay(0.0, None), ms(800));
        assert_eq!(b.next_delay(0.99, None), ms(1000));
    }

    #[test]
    fn retry_after_lengthens_but_is_capped() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(10), ms(50), 0);
        assert_eq!(b.next_delay(0.0, Some(ms(1000))), ms(1000));
        assert_eq!(b.next_delay(0.0, Some(ms(3_600_000))), MAX_RETRY_AFTER);
        assert_eq!(b.next_delay(0.0, Some(ms(1))), ms(40));
    }
}
