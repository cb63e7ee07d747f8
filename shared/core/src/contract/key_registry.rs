//! Contract cases for the signing-key registry (`KeyRegistry`): records round-trip exactly, the first insert of
//! a kid wins, a root is retired once, `retire` never creates a record, roots are listed apart from delegated
//! keys, and `delegated` returns exactly the periods asked for, across pages.
//! Adapters run them with `key_registry_contract_tests!(async_factory)`: the in-memory registry
//! (ledgix-core's tests/key_registry_contract.rs) and DynamoDB (ledgix-aws's tests/contract.rs).
//!
//! The registry is global and a DynamoDB table outlives a test run, so every kid is unique per run and the
//! cases assert on the records they inserted only. The records are dated in 2001: a vault sharing the table
//! lists them last (newest first) and its JWKS drops the delegated ones (long expired); no root is left
//! unretired.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::Signer as _;
use rand::RngCore;

use super::unique;
use crate::keys::{
    rfc3339, KeyCertificate, KeyRecord, KeyRole, KeySchedule, PublishedKey, SignedCertificate,
};
use crate::ports::KeyRegistry;
use crate::token::PublicKey;

/// 2001-01-01T00:00:00Z: the period the contract's records belong to.
const PERIOD: i64 = 978_307_200;

fn at(seconds: i64) -> String {
    rfc3339(DateTime::<Utc>::from_timestamp(PERIOD + seconds, 0).unwrap_or_default())
}

fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

/// A root key's record, as the key step writes it (`retired_at` given for a root rotated out).
fn root_record(kid: &str, retired_at: Option<String>) -> KeyRecord {
    KeyRecord {
        published: PublishedKey {
            kid: kid.into(),
            ed25519: signing_key().verifying_key().to_bytes(),
            role: KeyRole::Root,
            active_from: at(0),
            retired_at,
            certificate: None,
        },
        sealed_private: None,
    }
}

/// A delegated key's record, as the key step writes it: certified by `root` (kid `root_kid`) for the
/// contract's period, with `sealed_bytes` random bytes standing in for its sealed private half.
fn delegated_record(
    root: &ed25519_dalek::SigningKey,
    root_kid: &str,
    kid: &str,
    sealed_bytes: usize,
) -> KeyRecord {
    let public = PublicKey {
        kid: kid.into(),
        ed25519: signing_key().verifying_key().to_bytes(),
    };
    let (not_before, not_after) = KeySchedule::default().window(PERIOD);
    let payload = KeyCertificate::for_key(&public, not_before, not_after, root_kid).payload();
    let mut sealed = vec![0u8; sealed_bytes];
    rand::rngs::OsRng.fill_bytes(&mut sealed);
    let certificate = SignedCertificate {
        signature: root.sign(&payload).to_bytes().to_vec(),
        payload,
        issuer: root_kid.into(),
    };
    KeyRecord::delegated(
        &public,
        (not_before, not_after),
        certificate,
        format!("enc2:{}", STANDARD.encode(sealed)),
    )
}

/// The record under `kid`, read by kid and, for a root, also from the roots listing (the two must agree).
async fn listed(registry: &dyn KeyRegistry, kid: &str) -> Vec<KeyRecord> {
    let by_kid: Vec<KeyRecord> = registry.get(kid).await.expect("get").into_iter().collect();
    let in_roots: Vec<KeyRecord> = registry
        .roots()
        .await
        .expect("roots")
        .into_iter()
        .filter(|r| r.published.kid == kid)
        .collect();
    if by_kid.iter().all(|r| r.published.role == KeyRole::Root) {
        assert_eq!(in_roots, by_kid, "roots() and get() agree on {kid}");
    } else {
        assert!(
            in_roots.is_empty(),
            "a delegated key is not listed as a root"
        );
    }
    by_kid
}

pub async fn key_records_round_trip_exactly(registry: Arc<dyn KeyRegistry>) {
    let root_kid = unique("contract-root");
    let root_key = signing_key();
    let root = root_record(&root_kid, Some(at(7200)));
    let delegated = delegated_record(
        &root_key,
        &root_kid,
        &crate::keys::delegated_kid(&root_kid, PERIOD),
        96,
    );
    assert!(registry.insert(&root).await.expect("insert root"));
    assert!(registry.insert(&delegated).await.expect("insert delegated"));
    assert_eq!(
        listed(&*registry, &root_kid).await,
        vec![root],
        "the root record"
    );
    let read = listed(&*registry, &delegated.published.kid).await;
    assert_eq!(
        read,
        vec![delegated.clone()],
        "the delegated record, with its certificate and sealed private half"
    );
    // What a verifier does with it: the certificate still verifies against the root.
    let certificate = read[0].published.certificate.as_ref().expect("certificate");
    certificate
        .verify(
            &read[0].published.public_key(),
            &root_key.verifying_key().to_bytes(),
        )
        .expect("the stored certificate verifies");
}

pub async fn key_insert_keeps_the_first_record(registry: Arc<dyn KeyRegistry>) {
    let root_kid = unique("contract-root");
    let root = signing_key();
    let kid = format!("{root_kid}.d{PERIOD}");
    let first = delegated_record(&root, &root_kid, &kid, 96);
    let second = delegated_record(&root, &root_kid, &kid, 96);
    assert!(registry.insert(&first).await.expect("first insert"));
    assert!(
        !registry.insert(&second).await.expect("second insert"),
        "a second record under the same kid is refused"
    );
    assert!(
        !registry.insert(&first).await.expect("same record again"),
        "even the same record is inserted once"
    );
    assert_eq!(
        listed(&*registry, &kid).await,
        vec![first],
        "the first record stays, unchanged"
    );

    // Instances issuing the same period's key at once: exactly one insert wins, and its record is stored.
    let kid = format!("{root_kid}.d{}", PERIOD + 3600);
    let candidates: Vec<KeyRecord> = (0..6)
        .map(|_| delegated_record(&root, &root_kid, &kid, 96))
        .collect();
    let tasks: Vec<_> = candidates
        .iter()
        .cloned()
        .map(|record| {
            let registry = registry.clone();
            tokio::spawn(async move { registry.insert(&record).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.expect("task").expect("insert") {
            winners.push(i);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent insert wins: {winners:?}"
    );
    assert_eq!(
        listed(&*registry, &kid).await,
        vec![candidates[winners[0]].clone()],
        "the winner's record is the one stored"
    );
}

pub async fn key_retire_sets_retired_at_once(registry: Arc<dyn KeyRegistry>) {
    let kid = unique("contract-root");
    let root = root_record(&kid, None);
    assert!(registry.insert(&root).await.expect("insert"));
    assert_eq!(
        listed(&*registry, &kid).await,
        vec![root.clone()],
        "not retired yet"
    );
    registry.retire(&kid, &at(3600)).await.expect("retire");
    let mut retired = root.clone();
    retired.published.retired_at = Some(at(3600));
    assert_eq!(
        listed(&*registry, &kid).await,
        vec![retired.clone()],
        "retired_at is set, nothing else changes"
    );
    registry
        .retire(&kid, &at(7200))
        .await
        .expect("retiring again is not an error");
    assert_eq!(
        listed(&*registry, &kid).await,
        vec![retired],
        "a second retire keeps the first time"
    );

    // A root recorded as already retired keeps the time it was recorded with.
    let kid = unique("contract-root");
    let rotated_out = root_record(&kid, Some(at(1800)));
    assert!(registry.insert(&rotated_out).await.expect("insert"));
    registry.retire(&kid, &at(3600)).await.expect("retire");
    assert_eq!(
        listed(&*registry, &kid).await,
        vec![rotated_out],
        "already retired: unchanged"
    );
}

pub async fn key_retire_of_an_unknown_kid_creates_nothing(registry: Arc<dyn KeyRegistry>) {
    let kid = unique("contract-root");
    let result = registry.retire(&kid, &at(3600)).await;
    assert!(
        result.is_err(),
        "retiring a kid the registry does not hold is an error: {result:?}"
    );
    assert!(
        listed(&*registry, &kid).await.is_empty(),
        "and creates no record"
    );
}

/// Enough bytes per record that 32 of them exceed the 1 MB a DynamoDB query answers at once.
const LARGE_SEALED_BYTES: usize = 27_000;

pub async fn key_delegated_range_returns_the_periods_asked_for(registry: Arc<dyn KeyRegistry>) {
    let root_kid = unique("contract-root");
    let root = signing_key();
    let records: Vec<KeyRecord> = (0..32)
        .map(|i| {
            let kid = crate::keys::delegated_kid(&root_kid, PERIOD + i * 3600);
            delegated_record(&root, &root_kid, &kid, LARGE_SEALED_BYTES)
        })
        .collect();
    for record in &records {
        assert!(registry.insert(record).await.expect("insert"));
    }
    let all = registry
        .delegated(&root_kid, PERIOD)
        .await
        .expect("delegated");
    assert_eq!(
        all.len(),
        records.len(),
        "every period, each once (across pages)"
    );
    for record in &records {
        assert!(
            all.contains(record),
            "{} is listed as inserted",
            record.published.kid
        );
    }
    let recent = registry
        .delegated(&root_kid, PERIOD + 16 * 3600)
        .await
        .expect("delegated");
    assert_eq!(recent.len(), 16, "only the periods from the given start");
    assert!(recent.iter().all(|r| records[16..].contains(r)));
    assert!(
        registry
            .delegated(&unique("contract-other-root"), PERIOD)
            .await
            .expect("delegated")
            .is_empty(),
        "another root's keys are its own"
    );
    let roots = registry.roots().await.expect("roots");
    assert!(
        roots.iter().all(|r| r.published.role == KeyRole::Root),
        "roots() lists root keys only"
    );
    assert_eq!(
        registry.get(&records[5].published.kid).await.expect("get"),
        Some(records[5].clone()),
        "one delegated key by kid"
    );
}

/// Generates one `#[tokio::test]` per key-registry contract case. `$factory` is an async expression returning
/// an `Arc<dyn KeyRegistry>`. Extra attributes after a comma (e.g. `#[ignore = "..."]`) apply to every
/// generated test.
#[macro_export]
macro_rules! key_registry_contract_tests {
    ($factory:expr) => {
        $crate::key_registry_contract_tests!($factory, #[cfg(all())]);
    };
    ($factory:expr, $(#[$meta:meta])+) => {
        $crate::key_registry_contract_tests!(@case [$(#[$meta])+] $factory,
            key_records_round_trip_exactly,
            key_insert_keeps_the_first_record,
            key_retire_sets_retired_at_once,
            key_retire_of_an_unknown_kid_creates_nothing,
            key_delegated_range_returns_the_periods_asked_for);
    };
    (@case $attrs:tt $factory:expr, $($case:ident),+) => {
        $( $crate::key_registry_contract_tests!(@one $attrs $factory, $case); )+
    };
    (@one [$(#[$meta:meta])*] $factory:expr, $case:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$meta])*
        async fn $case() {
            $crate::contract::$case($factory.await).await;
        }
    };
}
