//! Fault decisions, deterministic for a scenario's `seed`.
//!
//! Request number `i` (counting `/json-api/` requests from 0 in arrival
//! order) draws from its own ChaCha stream `(seed, i)`, so the decision for a
//! request does not depend on how many random numbers earlier requests used.
//! Inspection endpoints (`/__sim/*`) are never faulted.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::scenario::FaultSpec;

/// What happens to one API request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strike {
    None,
    /// Answered with HTTP 500; the call is not applied.
    Http500,
    /// Connection closed without an answer; `after`: the call was applied first.
    Reset {
        after: bool,
    },
    /// No answer until the client gives up; `after`: the call was applied first.
    Hang {
        after: bool,
    },
}

impl Strike {
    pub(crate) fn label(self) -> Option<&'static str> {
        match self {
            Strike::None => None,
            Strike::Http500 => Some("http_500"),
            Strike::Reset { after: false } => Some("reset_before"),
            Strike::Reset { after: true } => Some("reset_after"),
            Strike::Hang { after: false } => Some("hang_before"),
            Strike::Hang { after: true } => Some("hang_after"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decision {
    pub strike: Strike,
    pub latency_ms: u64,
}

/// The decision for API request number `index`.
pub(crate) fn decide(spec: &FaultSpec, index: u64) -> Decision {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    rng.set_stream(index);
    let u: f64 = rng.random();
    let after: bool = rng.random();
    let strike = if u < spec.http_500 {
        Strike::Http500
    } else if u < spec.http_500 + spec.reset {
        Strike::Reset { after }
    } else if u < spec.http_500 + spec.reset + spec.hang {
        Strike::Hang { after }
    } else {
        Strike::None
    };
    let [lo, hi] = spec.latency_ms;
    let latency_ms = if hi > lo {
        rng.random_range(lo..=hi)
    } else {
        lo
    };
    Decision { strike, latency_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FaultSpec {
        FaultSpec {
            seed: 7,
            http_500: 0.05,
            reset: 0.02,
            hang: 0.01,
            latency_ms: [0, 20],
            ..FaultSpec::default()
        }
    }

    #[test]
    fn decisions_are_deterministic_per_seed_and_index() {
        let s = spec();
        for i in 0..200 {
            assert_eq!(decide(&s, i), decide(&s, i));
        }
        let other = FaultSpec { seed: 8, ..spec() };
        let differ = (0..200)
            .filter(|i| decide(&s, *i) != decide(&other, *i))
            .count();
        assert!(differ > 100, "a different seed gives different decisions");
    }

    #[test]
    fn rates_hold_within_statistical_tolerance() {
        // n = 100_000; the standard deviation of a count with p = 0.05 is
        // sqrt(n p (1-p)) ≈ 69, so ±5σ is ±345 around 5000.
        let s = spec();
        let n = 100_000u64;
        let (mut e500, mut reset, mut hang, mut after, mut lat_max) = (0u64, 0u64, 0u64, 0u64, 0);
        for i in 0..n {
            let d = decide(&s, i);
            lat_max = lat_max.max(d.latency_ms);
            match d.strike {
                Strike::Http500 => e500 += 1,
                Strike::Reset { after: a } => {
                    reset += 1;
                    after += a as u64;
                }
                Strike::Hang { after: a } => {
                    hang += 1;
                    after += a as u64;
                }
                Strike::None => {}
            }
        }
        let within = |count: u64, p: f64| {
            let mean = n as f64 * p;
            let sd = (n as f64 * p * (1.0 - p)).sqrt();
            (count as f64 - mean).abs() <= 5.0 * sd
        };
        assert!(within(e500, 0.05), "http_500 {e500}");
        assert!(within(reset, 0.02), "reset {reset}");
        assert!(within(hang, 0.01), "hang {hang}");
        // half of reset+hang strike after applying
        let both = reset + hang;
        let sd = (both as f64 * 0.25).sqrt();
        assert!(
            (after as f64 - both as f64 / 2.0).abs() <= 5.0 * sd,
            "after {after} of {both}"
        );
        assert!(lat_max <= 20);
    }
}
