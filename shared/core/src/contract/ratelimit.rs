//! Rate-limit contract: under any concurrency a request is admitted or refused with a Retry-After, never an
//! error, and a key is never admitted more than `burst + rps × elapsed` (ratelimit.rs, "Bound").

use std::time::Instant;

use super::{unique, Ports};
use crate::ratelimit::{max_admitted, RateDecision, RateLimit};

/// `n` simultaneous takes on one key; every answer, and how long they took from the first start to the last
/// answer (the window the bound is asserted over).
async fn concurrent_takes(
    p: &Ports,
    key: &str,
    limit: RateLimit,
    n: usize,
) -> (Vec<RateDecision>, i64) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (limiter, key, barrier) = (p.limiter.clone(), key.to_string(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            limiter.take(&key, limit).await
        }));
    }
    let mut decisions = Vec::new();
    for task in tasks {
        let decision = task.await.expect("task");
        decisions
            .push(decision.unwrap_or_else(|e| panic!("a take failed instead of deciding: {e:?}")));
    }
    let elapsed_us = i64::try_from(started.elapsed().as_micros()).expect("elapsed");
    (decisions, elapsed_us)
}

pub async fn rate_limit_decides_every_concurrent_request(p: Ports) {
    // Well under the limit: every request admitted, none refused, none an error.
    let roomy = RateLimit { rps: 1, burst: 100 };
    let (decisions, elapsed_us) = concurrent_takes(&p, &unique("key"), roomy, 64).await;
    assert!(
        decisions.iter().all(|d| d.allowed),
        "64 concurrent takes under a burst of 100: all admitted ({} refused)",
        decisions.iter().filter(|d| !d.allowed).count()
    );
    // X-RateLimit-Remaining follows the bucket down: the last admitted sees 100 − 64 left, plus what refilled.
    let mut remaining: Vec<u64> = decisions.iter().map(|d| u64::from(d.remaining)).collect();
    remaining.sort_unstable();
    let refilled = max_admitted(roomy, elapsed_us) - 100;
    assert!(
        remaining[0] <= 36 + refilled + 1 && remaining[63] <= 99,
        "remaining {remaining:?} after 64 of 100 in {elapsed_us} µs"
    );

    // Over the limit: exactly the burst (plus what the rate refills while they run) admitted, the rest refused.
    let tight = RateLimit { rps: 2, burst: 5 };
    let key = unique("key");
    let (decisions, elapsed_us) = concurrent_takes(&p, &key, tight, 64).await;
    let admitted = decisions.iter().filter(|d| d.allowed).count() as u64;
    assert!(
        admitted >= u64::from(tight.burst),
        "a full bucket admits its burst: {admitted}"
    );
    assert!(
        admitted <= max_admitted(tight, elapsed_us),
        "{admitted} admitted in {elapsed_us} µs; the bound is burst + rps × elapsed = {}",
        max_admitted(tight, elapsed_us)
    );
    for refused in decisions.iter().filter(|d| !d.allowed) {
        assert!(
            refused.retry_after_seconds > 0,
            "a refusal says when to retry: {refused:?}"
        );
        assert_eq!((refused.limit, refused.remaining), (5, 0));
    }
    for admitted in decisions.iter().filter(|d| d.allowed) {
        assert_eq!((admitted.limit, admitted.retry_after_seconds), (5, 0));
        assert!(
            admitted.remaining < 5 && admitted.reset_seconds > 0,
            "{admitted:?}"
        );
    }

    // Keys are separate buckets.
    let other = p.limiter.take(&unique("key"), tight).await.expect("take");
    assert!(other.allowed && other.remaining == 4, "{other:?}");
}
