//! When a failed delivery is tried again: about a second after the first failure, doubling, capped at 15
//! minutes (SQS's longest delay), with jitter so a receiver coming back is not hit by every retry at once; for
//! 24 hours after the delivery was created, then dead-lettered.

use std::time::Duration;

/// How long deliveries are retried.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// The wait after `failed_attempts` failures (≥ 1): a uniform draw from [½, 1] × min(2^(n−1) s, 15 min);
/// `unit` in [0, 1) is the random draw.
pub fn delay_after(failed_attempts: u32, unit: f64) -> Duration {
    let exponent = failed_attempts.saturating_sub(1).min(20);
    let base = Duration::from_secs(1u64 << exponent).min(MAX_DELAY);
    base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_about_a_second_to_fifteen_minutes() {
        assert_eq!(delay_after(1, 1.0), Duration::from_secs(1));
        assert_eq!(delay_after(1, 0.0), Duration::from_millis(500));
        assert_eq!(delay_after(2, 1.0), Duration::from_secs(2));
        assert_eq!(delay_after(5, 1.0), Duration::from_secs(16));
        assert_eq!(delay_after(10, 1.0), Duration::from_secs(512));
        assert_eq!(delay_after(11, 1.0), MAX_DELAY);
        assert_eq!(delay_after(1000, 0.999), MAX_DELAY.mul_f64(0.9995));
        // 24 hours of retries is about 100 attempts, not thousands.
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0;
        while elapsed < RETRY_FOR {
            attempts += 1;
            elapsed += delay_after(attempts, 1.0);
        }
        assert!((90..110).contains(&attempts), "{attempts}");
    }
}
