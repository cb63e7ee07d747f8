//! Rate-limit arithmetic shared by every rate-limit adapter: GCRA (the generic cell rate algorithm), the
//! token bucket stated as one number per key.
//!
//! A key's state is its *theoretical arrival time* (TAT, microseconds since the Unix epoch): the time at which
//! its bucket would be full again. With the emission interval `T = ceil(1 s / rps)` and the burst window
//! `W = burst × T`, a request at `now` is admitted when `max(TAT, now) + T ≤ now + W`, and then
//! `TAT := max(TAT, now) + T`; otherwise it is refused and nothing changes, with `Retry-After = TAT + T − W − now`.
//!
//! **Bound.** In any interval of length `e` seconds a key is admitted at most `burst + rps × e` requests
//! ([`max_admitted`]): each admission moves the TAT forward by `T ≥ 1/rps` from at least the interval's start,
//! and an admission at a time `t` leaves it at most `t + W`.
//!
//! Because the state is one number that an admission only ever *adds* `T` to, a shared store can apply a
//! request with one conditional write (DynamoDB: `SET tat = tat + T` if `now ≤ tat ≤ now + W − T`, see
//! [`Gcra::busy_range`]) and no read; concurrent requests then never conflict, they queue in the store.

use serde::{Deserialize, Serialize};

const MICROS_PER_SECOND: i64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second; 0 disables limiting.
    pub rps: u32,
    /// Bucket capacity.
    pub burst: u32,
}

impl RateLimit {
    pub fn enabled(&self) -> bool {
        self.rps > 0
    }

    /// The bucket size in requests (a burst of 0 counts as 1: one request is always admissible).
    pub fn capacity(&self) -> u32 {
        self.burst.max(1)
    }

    /// The GCRA constants of this limit (`rps` must be above 0: see [`RateLimit::enabled`]).
    pub fn gcra(&self) -> Gcra {
        // Rounded up: a longer interval never admits more than `rps` per second.
        let interval_us =
            (MICROS_PER_SECOND + i64::from(self.rps.max(1)) - 1) / i64::from(self.rps.max(1));
        Gcra {
            limit: *self,
            interval_us,
            window_us: interval_us * i64::from(self.capacity()),
        }
    }
}

/// GCRA constants of one [`RateLimit`], all in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gcra {
    pub limit: RateLimit,
    /// `T`: how far one admission moves the TAT (`ceil(1 s / rps)`).
    pub interval_us: i64,
    /// `W = burst × T`: how far ahead of now the TAT may run after an admission.
    pub window_us: i64,
}

impl Gcra {
    /// One request at `now_us` against the stored TAT (`None`: never seen, or expired — the same as idle).
    /// Returns the TAT to store (unchanged when refused) and the decision.
    pub fn step(&self, tat_us: Option<i64>, now_us: i64) -> (Option<i64>, RateDecision) {
        let base = tat_us.map_or(now_us, |tat| tat.max(now_us));
        let next = base + self.interval_us;
        if next - now_us <= self.window_us {
            (Some(next), self.admitted(next, now_us))
        } else {
            (tat_us, self.refused(base, now_us))
        }
    }

    /// The stored TATs at which a request at `now_us` is admitted by adding `T` to it: `now ≤ TAT ≤ now + W − T`.
    /// Below the range the key is idle (its new TAT is `now + T`, always admitted); above it, exhausted.
    pub fn busy_range(&self, now_us: i64) -> (i64, i64) {
        (now_us, now_us + self.window_us - self.interval_us)
    }

    /// The decision for an admitted request that moved the TAT to `new_tat_us`.
    pub fn admitted(&self, new_tat_us: i64, now_us: i64) -> RateDecision {
        let ahead = (new_tat_us - now_us).max(0);
        RateDecision {
            allowed: true,
            limit: self.limit.capacity(),
            // Requests admissible right now, at this same instant.
            remaining: ((self.window_us - ahead).max(0) / self.interval_us) as u32,
            reset_seconds: ceil_seconds(ahead),
            retry_after_seconds: 0,
        }
    }

    /// The decision for a request refused because the stored TAT is `tat_us` (beyond the busy range).
    pub fn refused(&self, tat_us: i64, now_us: i64) -> RateDecision {
        let wait = tat_us + self.interval_us - self.window_us - now_us;
        RateDecision {
            allowed: false,
            limit: self.limit.capacity(),
            remaining: 0,
            reset_seconds: ceil_seconds((tat_us - now_us).max(0)),
            retry_after_seconds: ceil_seconds(wait).max(1),
        }
    }

    /// The most requests this limit admits in any interval of `elapsed_us` microseconds:
    /// `burst + floor(elapsed / T)`, which is at most `burst + rps × elapsed`.
    pub fn max_admitted(&self, elapsed_us: i64) -> u64 {
        u64::from(self.limit.capacity()) + (elapsed_us.max(0) / self.interval_us) as u64
    }
}

/// `burst + rps × elapsed`: the documented bound on admissions in any interval of `elapsed_us` microseconds
/// (the limiter's own bound, [`Gcra::max_admitted`], never exceeds it).
pub fn max_admitted(limit: RateLimit, elapsed_us: i64) -> u64 {
    u64::from(limit.capacity())
        + (elapsed_us.max(0) as u128 * u128::from(limit.rps) / MICROS_PER_SECOND as u128) as u64
}

fn ceil_seconds(us: i64) -> u64 {
    ((us.max(0) + MICROS_PER_SECOND - 1) / MICROS_PER_SECOND) as u64
}

/// Bucket state as tokens (the view of [`take`]); adapters store the GCRA TAT instead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub tokens: f64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// Seconds until one token is available (0 when allowed).
    pub retry_after_seconds: u64,
}

impl RateDecision {
    pub fn unlimited() -> Self {
        RateDecision {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_seconds: 0,
            retry_after_seconds: 0,
        }
    }
}

/// Refill `bucket` up to `now_ms` and try to take one token: [`Gcra::step`] on the bucket seen as tokens
/// (`tokens = burst − (TAT − now) / T`), so it admits exactly what the TAT form admits.
pub fn take(limit: RateLimit, bucket: Option<Bucket>, now_ms: i64) -> (Bucket, RateDecision) {
    let gcra = limit.gcra();
    let capacity = f64::from(limit.capacity());
    let now_us = now_ms * 1000;
    let tat = bucket.map(|b| {
        let missing = (capacity - b.tokens).clamp(0.0, capacity);
        b.updated_at_ms * 1000 + (missing * gcra.interval_us as f64).round() as i64
    });
    let (tat, decision) = gcra.step(tat, now_us);
    let ahead = tat.map_or(0, |t| (t - now_us).max(0)) as f64;
    let state = Bucket {
        tokens: (capacity - ahead / gcra.interval_us as f64).clamp(0.0, capacity),
        updated_at_ms: now_ms,
    };
    (state, decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limit = RateLimit { rps: 2, burst: 3 };
        let mut bucket = None;
        for _ in 0..3 {
            let (b, d) = take(limit, bucket, 0);
            assert!(d.allowed);
            bucket = Some(b);
        }
        let (b, d) = take(limit, bucket, 0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_seconds, 1);
        assert_eq!(d.remaining, 0);
        let (_, d) = take(limit, Some(b), 500);
        assert!(d.allowed, "half a second at 2 rps refills one token");
    }

    const S: i64 = 1_000_000;

    #[test]
    fn interval_and_window() {
        let g = RateLimit { rps: 20, burst: 40 }.gcra();
        assert_eq!((g.interval_us, g.window_us), (50_000, 2 * S));
        let g = RateLimit { rps: 3, burst: 2 }.gcra();
        assert_eq!(g.interval_us, 333_334, "rounded up: never faster than rps");
        assert_eq!(
            RateLimit { rps: 5, burst: 0 }.gcra().window_us,
            200_000,
            "a burst of 0 is 1"
        );
    }

    #[test]
    fn a_full_bucket_admits_burst_at_one_instant_then_refuses() {
        let limit = RateLimit { rps: 10, burst: 4 };
        let g = limit.gcra();
        let now = 1_700_000_000 * S;
        let mut tat = None;
        for k in 1..=4u32 {
            let (next, d) = g.step(tat, now);
            assert!(d.allowed);
            assert_eq!(d.limit, 4);
            assert_eq!(
                d.remaining,
                4 - k,
                "remaining counts what is still admissible now"
            );
            assert_eq!(d.reset_seconds, 1, "k × 100 ms until full, rounded up");
            tat = next;
        }
        let (after, d) = g.step(tat, now);
        assert_eq!(after, tat, "a refusal changes nothing");
        assert!(!d.allowed);
        assert_eq!((d.remaining, d.retry_after_seconds), (0, 1));
        // The exact wait is TAT + T − W − now = 100 ms: admitted then, not a microsecond before.
        assert!(!g.step(tat, now + 100_000 - 1).1.allowed);
        assert!(g.step(tat, now + 100_000).1.allowed);
    }

    #[test]
    fn retry_after_is_the_time_until_one_admission() {
        let g = RateLimit { rps: 1, burst: 3 }.gcra();
        let now = 50 * S;
        // 2.5 s beyond the window: the next admission is 3.5 s away (TAT + T − W − now), Retry-After 4 s.
        let tat = now + g.window_us + 2 * S + S / 2;
        let d = g.refused(tat, now);
        assert_eq!(
            d.retry_after_seconds, 4,
            "TAT + T − W − now = 3.5 s, rounded up"
        );
        assert!(!g.step(Some(tat), now + 3 * S + S / 2 - 1).1.allowed);
        assert!(g.step(Some(tat), now + 3 * S + S / 2).1.allowed);
        assert!(
            g.step(Some(tat), now + d.retry_after_seconds as i64 * S)
                .1
                .allowed
        );
    }

    #[test]
    fn an_idle_key_is_a_full_bucket() {
        let g = RateLimit { rps: 2, burst: 5 }.gcra();
        let now = 10 * S;
        for stale in [None, Some(0), Some(now - 1)] {
            let (tat, d) = g.step(stale, now);
            assert_eq!(tat, Some(now + g.interval_us));
            assert!(d.allowed);
            assert_eq!(d.remaining, 4);
        }
    }

    #[test]
    fn the_busy_range_is_exactly_where_adding_t_admits() {
        let g = RateLimit { rps: 7, burst: 3 }.gcra();
        let now = 1_000 * S;
        let (low, high) = g.busy_range(now);
        for tat in [
            low - 1,
            low,
            low + 1,
            high - 1,
            high,
            high + 1,
            now + g.window_us,
        ] {
            let (next, d) = g.step(Some(tat), now);
            let in_range = (low..=high).contains(&tat);
            if tat < low {
                assert_eq!(next, Some(now + g.interval_us), "idle: restarts from now");
                assert!(d.allowed);
            } else {
                assert_eq!(d.allowed, in_range, "tat {tat}");
                if in_range {
                    assert_eq!(next, Some(tat + g.interval_us), "busy: TAT + T");
                    assert_eq!(d, g.admitted(tat + g.interval_us, now));
                } else {
                    assert_eq!(d, g.refused(tat, now));
                }
            }
        }
    }

    /// A deterministic stream of arrival gaps (xorshift), from back-to-back to a few seconds apart.
    fn arrivals(seed: u64, count: usize) -> Vec<i64> {
        let mut x = seed;
        let mut t = 1_700_000_000 * S;
        (0..count)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t += match x % 10 {
                    0..=5 => 0,
                    6..=8 => (x >> 8) as i64 % 200_000,
                    _ => (x >> 8) as i64 % (3 * S),
                };
                t
            })
            .collect()
    }

    #[test]
    fn never_more_than_burst_plus_rps_times_elapsed_in_any_window() {
        for (limit, seed) in [
            (RateLimit { rps: 20, burst: 40 }, 1),
            (RateLimit { rps: 3, burst: 2 }, 2),
            (RateLimit { rps: 1, burst: 1 }, 3),
            (
                RateLimit {
                    rps: 1000,
                    burst: 5,
                },
                4,
            ),
        ] {
            let g = limit.gcra();
            let mut tat = None;
            let mut admitted = Vec::new();
            for now in arrivals(seed, 3000) {
                let (next, d) = g.step(tat, now);
                tat = next;
                if d.allowed {
                    admitted.push(now);
                }
            }
            assert!(
                admitted.len() > limit.capacity() as usize,
                "{limit:?}: the test admits"
            );
            for i in 0..admitted.len() {
                for j in i..admitted.len().min(i + 400) {
                    let elapsed = admitted[j] - admitted[i];
                    let count = (j - i + 1) as u64;
                    assert!(
                        count <= g.max_admitted(elapsed)
                            && g.max_admitted(elapsed) <= max_admitted(limit, elapsed),
                        "{limit:?}: {count} admitted in {elapsed} µs"
                    );
                }
            }
        }
    }

    #[test]
    fn the_bound_is_reached_by_a_saturating_client() {
        let limit = RateLimit { rps: 4, burst: 8 };
        let g = limit.gcra();
        let start = 100 * S;
        let (mut tat, mut admitted) = (None, 0u64);
        // A request every millisecond for ten seconds.
        for ms in 0..=10_000 {
            let (next, d) = g.step(tat, start + ms * 1000);
            tat = next;
            admitted += u64::from(d.allowed);
        }
        assert_eq!(admitted, g.max_admitted(10 * S));
        assert_eq!(admitted, max_admitted(limit, 10 * S), "8 + 4 × 10");
    }

    #[test]
    fn take_on_tokens_agrees_with_the_tat_form() {
        let limit = RateLimit { rps: 3, burst: 4 };
        let g = limit.gcra();
        let (mut bucket, mut tat) = (None, None);
        for now in arrivals(9, 500) {
            let now_ms = now / 1000;
            let (b, d1) = take(limit, bucket, now_ms);
            let (t, d2) = g.step(tat, now_ms * 1000);
            assert_eq!(d1.allowed, d2.allowed, "at {now_ms} ms");
            (bucket, tat) = (Some(b), t);
        }
    }
}
