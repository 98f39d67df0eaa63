//! Random faults for the stand-in: per-request latency, error and throttle answers, connection
//! resets and hangs, each at its own rate, drawn from a seeded [`Prng`].
//!
//! Owns: the fault model and the draw ([`Faults::decide`]), which maps one uniform number to an
//! [`Action`] so that a fixed seed gives a fixed sequence of outcomes. Does not own when a draw
//! happens (the stand-in draws once per request that passed Pyroscope's rules and found no
//! scripted action, from a generator seeded per connection: [`crate::server`]).

use std::time::Duration;

use crate::bodies::Prng;
use crate::server::Action;

/// How long an accepted request waits before its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    None,
    Fixed(Duration),
    /// Uniform between the two bounds.
    Uniform(Duration, Duration),
    /// Exponential with this mean (a long tail, as a loaded server has), capped at 20 × mean.
    Exponential(Duration),
}

impl Latency {
    pub fn sample(&self, rng: &mut Prng) -> Duration {
        match *self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform(lo, hi) => lo + (hi - lo).mul_f64(rng.next_f64()),
            Latency::Exponential(mean) => {
                let u = rng.next_f64();
                mean.mul_f64((-(1.0 - u).ln()).min(20.0))
            }
        }
    }
}

/// Faults injected into requests that passed validation, each at its own rate (0..1).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub latency: Latency,
    /// Rate of `error_status` answers.
    pub error_rate: f64,
    pub error_status: u16,
    /// Rate of 429 answers with `Retry-After: retry_after_secs`.
    pub throttle_rate: f64,
    pub retry_after_secs: u32,
    /// Rate of connection resets (RST, no answer).
    pub reset_rate: f64,
    /// Rate of hangs: no answer for `hang_for`, then the connection is closed.
    pub hang_rate: f64,
    pub hang_for: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Latency::None,
            error_rate: 0.0,
            error_status: 503,
            throttle_rate: 0.0,
            retry_after_secs: 1,
            reset_rate: 0.0,
            hang_rate: 0.0,
            hang_for: Duration::from_secs(30),
        }
    }
}

impl Faults {
    /// Draws one request's fate: one uniform number picks reset, hang, error, throttle or
    /// success in that order of the rates; an answer also draws its latency.
    pub fn decide(&self, rng: &mut Prng) -> Action {
        let u = rng.next_f64();
        let mut edge = self.reset_rate;
        if u < edge {
            return Action::Reset;
        }
        edge += self.hang_rate;
        if u < edge {
            return Action::HangFor(self.hang_for);
        }
        let delay = self.latency.sample(rng);
        edge += self.error_rate;
        if u < edge {
            return Action::status(self.error_status).delayed(delay);
        }
        edge += self.throttle_rate;
        if u < edge {
            return Action::status(429)
                .with_retry_after(&self.retry_after_secs.to_string())
                .delayed(delay);
        }
        Action::ok().delayed(delay)
    }

    /// Whether no fault is configured at all.
    pub fn is_none(&self) -> bool {
        self.error_rate == 0.0
            && self.throttle_rate == 0.0
            && self.reset_rate == 0.0
            && self.hang_rate == 0.0
            && self.latency == Latency::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_rates_are_met_with_a_fixed_seed() {
        let faults = Faults {
            latency: Latency::Uniform(Duration::from_millis(1), Duration::from_millis(3)),
            error_rate: 0.05,
            error_status: 503,
            throttle_rate: 0.02,
            retry_after_secs: 2,
            reset_rate: 0.01,
            hang_rate: 0.01,
            hang_for: Duration::from_secs(1),
        };
        let mut rng = Prng::new(42);
        let (mut ok, mut err, mut thr, mut reset, mut hang) = (0, 0, 0, 0, 0);
        let mut delays = Duration::ZERO;
        for _ in 0..100_000 {
            match faults.decide(&mut rng) {
                Action::Respond {
                    status: 200,
                    retry_after: None,
                    delay,
                } => {
                    ok += 1;
                    assert!(delay >= Duration::from_millis(1) && delay < Duration::from_millis(3));
                    delays += delay;
                }
                Action::Respond {
                    status: 503,
                    retry_after: None,
                    ..
                } => err += 1,
                Action::Respond {
                    status: 429,
                    retry_after: Some(r),
                    ..
                } if r == "2" => thr += 1,
                Action::Reset => reset += 1,
                Action::HangFor(d) => {
                    assert_eq!(d, Duration::from_secs(1));
                    hang += 1
                }
                other => panic!("{other:?}"),
            }
        }
        // Exact for this seed; within 0.2 percentage points of each rate.
        assert_eq!(
            (ok, err, thr, reset, hang),
            (91_058, 4_863, 2_019, 1_025, 1_035)
        );
        let mean = delays / ok;
        assert!(
            mean > Duration::from_micros(1_980) && mean < Duration::from_micros(2_020),
            "{mean:?}"
        );
    }
}
