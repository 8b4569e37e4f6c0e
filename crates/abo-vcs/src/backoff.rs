//! When a poller polls next: its interval after a success, an exponential back-off after
//! failures, with jitter so that many pollers of one server do not poll in lockstep. Pure
//! functions of their inputs (the random draw is a parameter).

use std::time::Duration;

/// Share of a delay that jitter may add or remove.
const JITTER: f64 = 0.1;

/// The delay before the next attempt after `failures` consecutive failures (at least 1):
/// `initial`, doubled for each further failure, capped at `max`, ±10% jitter from `draw`
/// (in `[0, 1)`). `initial` is never above `interval` (a failing poller does not wait
/// longer than a healthy one before its first retry) and `max` never below it.
pub fn retry_delay(
    failures: u32,
    interval: Duration,
    initial: Duration,
    max: Duration,
    draw: f64,
) -> Duration {
    let initial = initial.min(interval);
    let max = max.max(interval);
    let exponent = failures.saturating_sub(1).min(32);
    let base = initial.saturating_mul(1u32 << exponent.min(31)).min(max);
    jitter(base, draw)
}

/// `delay` moved by up to ±10% according to `draw` in `[0, 1)`.
pub fn jitter(delay: Duration, draw: f64) -> Duration {
    let draw = if draw.is_finite() {
        draw.clamp(0.0, 1.0)
    } else {
        0.5
    };
    delay.mul_f64(1.0 - JITTER + 2.0 * JITTER * draw)
}

/// The delay before a poller's first poll: a share `draw` of `spread`, so that pollers
/// started together spread their first polls.
pub fn start_delay(spread: Duration, draw: f64) -> Duration {
    let draw = if draw.is_finite() {
        draw.clamp(0.0, 1.0)
    } else {
        0.0
    };
    spread.mul_f64(draw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubling_then_capped() {
        let delays: Vec<u64> = (1..=9)
            .map(|n| retry_delay(n, S(600), S(30), S(3600), 0.5).as_secs())
            .collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_delay(u32::MAX, S(600), S(30), S(3600), 0.5), S(3600));
        assert_eq!(retry_delay(0, S(600), S(30), S(3600), 0.5), S(30));
    }

    #[test]
    fn bounds_follow_the_interval() {
        // A short interval retries no later than it; a long one is the cap.
        assert_eq!(retry_delay(1, S(10), S(30), S(3600), 0.5), S(10));
        assert_eq!(retry_delay(20, S(7200), S(30), S(3600), 0.5), S(7200));
    }

    #[test]
    fn jitter_is_bounded() {
        assert_eq!(jitter(S(100), 0.0), S(90));
        assert_eq!(jitter(S(100), 0.5), S(100));
        assert_eq!(jitter(S(100), 1.0), S(110));
        assert_eq!(jitter(S(100), f64::NAN), S(100));
        assert_eq!(jitter(S(100), 7.0), S(110));
        assert_eq!(start_delay(S(60), 0.5), S(30));
        assert_eq!(start_delay(S(60), -1.0), S(0));
    }
}
