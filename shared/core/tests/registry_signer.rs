//! `RegistrySigner` over the in-memory key registry: the root alone without delegation; with delegation, one
//! key per period issued ahead by the key step, certified by the root, opened once per period; root rotation;
//! tampered records refused; what is published. Times are explicit (`*_at`), so nothing sleeps.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand::RngCore;

use ledgix_core::at_rest::{DataKey, DataKeySource};
use ledgix_core::error::{SignerError, StoreError};
use ledgix_core::key_registry::{Delegation, LocalKey, MemoryKeyRegistry, RegistrySigner};
use ledgix_core::keys::{parse_time, rfc3339, KeyRecord, KeyRole, KeySchedule};
use ledgix_core::ports::{KeyRegistry, Signer, SigningKey};

/// A key service in process: data keys wrapped with AES-256-GCM under one master key; counts unwraps.
struct CountingKeys {
    master: Aes256Gcm,
    unwraps: AtomicUsize,
}

impl CountingKeys {
    fn new() -> Arc<Self> {
        let mut master = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut master);
        Arc::new(CountingKeys {
            master: Aes256Gcm::new_from_slice(&master).expect("32-byte key"),
            unwraps: AtomicUsize::new(0),
        })
    }

    fn unwraps(&self) -> usize {
        self.unwraps.load(Ordering::SeqCst)
    }
}

const WRAP_AAD: &[u8] = b"test data key";

#[async_trait]
impl DataKeySource for CountingKeys {
    async fn generate(&self) -> Result<DataKey, StoreError> {
        let mut plaintext = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut plaintext);
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .master
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: WRAP_AAD,
                },
            )
            .map_err(|_| StoreError::Corrupt("wrap failed".into()))?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        Ok(DataKey { plaintext, wrapped })
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<[u8; 32], StoreError> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        if wrapped.len() < 12 {
            return Err(StoreError::Corrupt("wrapped key is truncated".into()));
        }
        let (nonce, sealed) = wrapped.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().expect("12 bytes");
        let plaintext = self
            .master
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: WRAP_AAD,
                },
            )
            .map_err(|_| StoreError::Corrupt("wrapped key does not unwrap".into()))?;
        plaintext
            .try_into()
            .map_err(|_| StoreError::Corrupt("data key is not 32 bytes".into()))
    }
}

/// A root key: its kid, the signing handle, and the raw public key.
struct Root {
    key: Arc<LocalKey>,
    public: [u8; 32],
}

fn root(kid: &str) -> Root {
    let key = LocalKey::new(
        kid,
        ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
    );
    let public = key.public_key().ed25519;
    Root {
        key: Arc::new(key),
        public,
    }
}

const SCHEDULE: KeySchedule = KeySchedule {
    period_seconds: 3600,
    publish_ahead_seconds: 600,
    overlap_seconds: 60,
};

/// The start of a key period (2027-01-15T08:00:00Z), and instants relative to it.
const START: i64 = 1_800_000_000 / 3600 * 3600;
const NEXT: i64 = START + 3600;

/// How the key step records root times: to the microsecond, so roots recorded in one second stay ordered.
fn micros(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(START + seconds, 0).expect("time")
}

fn signer(
    root: &Root,
    registry: &Arc<dyn KeyRegistry>,
    keys: Option<&Arc<CountingKeys>>,
) -> RegistrySigner {
    RegistrySigner::new(
        root.key.clone(),
        registry.clone(),
        keys.map(|keys| Delegation::new(SCHEDULE, keys.clone())),
    )
}

fn memory() -> Arc<dyn KeyRegistry> {
    Arc::new(MemoryKeyRegistry::default())
}

async fn record(registry: &Arc<dyn KeyRegistry>, kid: &str) -> KeyRecord {
    let found = all_records(registry.as_ref())
        .await
        .into_iter()
        .filter(|r| r.published.kid == kid)
        .collect::<Vec<_>>();
    assert_eq!(found.len(), 1, "one record for {kid}");
    let by_kid = registry.get(kid).await.expect("get").expect("by kid");
    assert_eq!(found[0], by_kid);
    by_kid
}

/// Every record: the roots, and every period of each root's delegated keys.
async fn all_records(registry: &dyn KeyRegistry) -> Vec<KeyRecord> {
    let mut records = registry.roots().await.expect("roots");
    let kids: Vec<String> = records.iter().map(|r| r.published.kid.clone()).collect();
    for kid in kids {
        records.extend(registry.delegated(&kid, 0).await.expect("delegated"));
    }
    records
}

/// Sign with `key` and check the signature against `public`.
async fn signs_as(key: &Arc<dyn SigningKey>, public: &[u8; 32]) {
    let message = b"approval token";
    let signature = key.sign(message).await.expect("sign");
    VerifyingKey::from_bytes(public)
        .expect("public key")
        .verify(
            message,
            &Signature::from_slice(&signature).expect("64 bytes"),
        )
        .expect("the signature verifies with the published key");
}

// ----- (a) without delegation ------------------------------------------------------------------------------

#[tokio::test]
async fn without_delegation_the_root_signs_and_the_key_step_records_it() {
    let root = root("root-a");
    let registry = memory();
    let signer = signer(&root, &registry, None);

    let approval = signer.approval_key().await.expect("approval key");
    assert_eq!(approval.kid(), "root-a");
    assert_eq!(signer.root_key().await.expect("root key").kid(), "root-a");
    assert_eq!(
        signer.approval_key_at(at(0)).await.expect("at").kid(),
        "root-a",
        "whatever the time"
    );
    signs_as(&approval, &root.public).await;

    let published = signer.published_keys_at(at(3000)).await.expect("published");
    assert_eq!(
        published.len(),
        1,
        "the root, published before it is recorded"
    );
    assert_eq!(
        (published[0].kid.as_str(), published[0].role),
        ("root-a", KeyRole::Root)
    );

    let before = Utc::now().timestamp();
    let issued = signer.rotate_ahead().await.expect("key step");
    let after = Utc::now().timestamp();
    assert!(issued.is_empty(), "nothing to issue without delegation");
    let recorded = record(&registry, "root-a").await;
    assert_eq!(recorded.published.role, KeyRole::Root);
    assert_eq!(recorded.published.ed25519, root.public);
    assert_eq!(recorded.published.retired_at, None);
    assert_eq!(recorded.published.certificate, None);
    assert_eq!(recorded.sealed_private, None);
    let active_from = parse_time(&recorded.published.active_from)
        .expect("active_from is an RFC 3339 time")
        .timestamp();
    assert!(
        (before..=after).contains(&active_from),
        "active_from is when the key step ran: {before} <= {active_from} <= {after}"
    );

    signer.rotate_ahead().await.expect("key step again");
    assert_eq!(
        record(&registry, "root-a").await,
        recorded,
        "recorded once, active_from kept"
    );
    assert_eq!(
        signer.published_keys_at(at(3000)).await.expect("published"),
        vec![recorded.published]
    );
}

// ----- (b) with delegation ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_period_key_is_unavailable_until_issued_then_certified_and_opened_once() {
    let root = root("root-b");
    let registry = memory();
    let keys = CountingKeys::new();
    let signer = signer(&root, &registry, Some(&keys));
    let now = at(100);

    let missing = signer.approval_key_at(now).await;
    assert!(
        matches!(missing, Err(SignerError::Unavailable(_))),
        "no key before the key step: {:?}",
        missing.map(|k| k.kid().to_string())
    );
    assert_eq!(
        signer.root_key().await.expect("root").kid(),
        "root-b",
        "the root is there regardless"
    );

    let kid = format!("root-b.d{START}");
    assert_eq!(signer.delegated_kid(START), kid);
    assert_eq!(
        SCHEDULE.due(now),
        vec![START],
        "only this period's key is due"
    );
    assert_eq!(
        signer.rotate_ahead_at(now).await.expect("key step"),
        vec![kid.clone()]
    );

    let key = signer.approval_key_at(now).await.expect("approval key");
    assert_eq!(key.kid(), kid);
    assert_ne!(key.kid(), signer.root_key().await.expect("root").kid());
    let stored = record(&registry, &kid).await;
    assert_eq!(stored.published.role, KeyRole::Delegated);
    assert!(
        stored
            .sealed_private
            .as_deref()
            .is_some_and(|s| s.starts_with("enc2:")),
        "the private half is stored sealed"
    );
    let certificate = stored
        .published
        .certificate
        .as_ref()
        .expect("a certificate")
        .verify(&stored.published.public_key(), &root.public)
        .expect("certified by the root");
    assert_eq!(certificate.issuer, "root-b");
    certificate
        .covers(&rfc3339(now))
        .expect("the window covers now");
    assert_eq!(
        (
            certificate.not_before.clone(),
            certificate.not_after.clone()
        ),
        (rfc3339(at(-60)), rfc3339(at(3660))),
        "the period widened by the overlap"
    );
    signs_as(&key, &stored.published.ed25519).await;
    assert_eq!(keys.unwraps(), 1, "opened once");

    let again = signer.approval_key_at(at(3599)).await.expect("same period");
    assert_eq!(again.kid(), kid);
    signs_as(&again, &stored.published.ed25519).await;
    assert_eq!(
        keys.unwraps(),
        1,
        "signing again in the period does not unwrap again"
    );
}

#[tokio::test]
async fn the_next_key_is_issued_once_within_the_publication_lead_and_taken_at_the_boundary() {
    let root = root("root-c");
    let registry = memory();
    let keys = CountingKeys::new();
    // `signer` signs; `scheduler` (another instance: its own envelope data key, as an anchor round elsewhere)
    // runs the key step near the boundary.
    let signer = signer(&root, &registry, Some(&keys));
    let scheduler = self::signer(&root, &registry, Some(&keys));
    let (this_kid, next_kid) = (format!("root-c.d{START}"), format!("root-c.d{NEXT}"));

    assert_eq!(
        signer.rotate_ahead_at(at(100)).await.expect("key step"),
        vec![this_kid.clone()]
    );
    assert_eq!(
        signer.approval_key_at(at(100)).await.expect("key").kid(),
        this_kid
    );
    assert_eq!(keys.unwraps(), 1);

    // Not within publish_ahead of the boundary yet: nothing more.
    assert_eq!(SCHEDULE.due(at(2999)), vec![START]);
    assert!(signer
        .rotate_ahead_at(at(2999))
        .await
        .expect("key step")
        .is_empty());
    assert!(registry.get(&next_kid).await.expect("get").is_none());

    // Within it: the next key is issued, once, by whichever instance runs the step first.
    assert_eq!(SCHEDULE.due(at(3000)), vec![START, NEXT]);
    assert_eq!(
        scheduler.rotate_ahead_at(at(3000)).await.expect("key step"),
        vec![next_kid.clone()]
    );
    assert!(scheduler
        .rotate_ahead_at(at(3300))
        .await
        .expect("again")
        .is_empty());
    assert!(signer
        .rotate_ahead_at(at(3300))
        .await
        .expect("elsewhere")
        .is_empty());
    let next = record(&registry, &next_kid).await;
    next.published
        .certificate
        .as_ref()
        .expect("certificate")
        .verify(&next.published.public_key(), &root.public)
        .expect("certified by the root")
        .covers(&rfc3339(at(3600)))
        .expect("covers the next period");

    // Issued ahead, the next key does not sign before its period.
    assert_eq!(
        signer.approval_key_at(at(3599)).await.expect("key").kid(),
        this_kid
    );
    assert_eq!(keys.unwraps(), 1);
    let key = signer.approval_key_at(at(3600)).await.expect("next period");
    assert_eq!(key.kid(), next_kid, "the boundary switches keys");
    signs_as(&key, &next.published.ed25519).await;
    assert_eq!(
        keys.unwraps(),
        2,
        "exactly one more unwrap for the new period"
    );
    assert_eq!(
        signer.approval_key_at(at(3700)).await.expect("key").kid(),
        next_kid
    );
    assert_eq!(keys.unwraps(), 2);
}

/// A registry whose roots listing (the key step's first read) waits until `parties` callers have listed: every
/// key step then works from the same snapshot, and their inserts race.
struct LockstepRegistry {
    inner: Arc<MemoryKeyRegistry>,
    barrier: tokio::sync::Barrier,
}

#[async_trait]
impl KeyRegistry for LockstepRegistry {
    async fn roots(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let roots = self.inner.roots().await;
        self.barrier.wait().await;
        roots
    }

    async fn delegated(
        &self,
        root_kid: &str,
        from_start: i64,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.inner.delegated(root_kid, from_start).await
    }

    async fn get(&self, kid: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.inner.get(kid).await
    }

    async fn insert(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        self.inner.insert(record).await
    }

    async fn retire(&self, kid: &str, at: &str) -> Result<(), StoreError> {
        self.inner.retire(kid, at).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_key_steps_issue_each_key_once() {
    let root = root("root-d");
    let lockstep = Arc::new(LockstepRegistry {
        inner: Arc::new(MemoryKeyRegistry::default()),
        barrier: tokio::sync::Barrier::new(2),
    });
    let registry: Arc<dyn KeyRegistry> = lockstep.clone();
    let keys = CountingKeys::new();
    let (a, b) = (
        Arc::new(signer(&root, &registry, Some(&keys))),
        Arc::new(signer(&root, &registry, Some(&keys))),
    );
    // Both see an empty registry, both issue the two due keys; each key is stored once.
    let now = at(3000);
    let (issued_a, issued_b) = {
        let (a, b) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { a.rotate_ahead_at(now).await });
        let tb = tokio::spawn(async move { b.rotate_ahead_at(now).await });
        (
            ta.await.expect("task").expect("a"),
            tb.await.expect("task").expect("b"),
        )
    };
    let mut issued: Vec<String> = issued_a.iter().chain(&issued_b).cloned().collect();
    issued.sort();
    assert_eq!(
        issued,
        vec![format!("root-d.d{START}"), format!("root-d.d{NEXT}")],
        "each key reported issued by exactly one instance: a {issued_a:?}, b {issued_b:?}"
    );

    let records = all_records(lockstep.inner.as_ref()).await;
    let kids: Vec<&str> = records.iter().map(|r| r.published.kid.as_str()).collect();
    assert_eq!(kids.len(), 3, "the root and two keys, each once: {kids:?}");
    assert_eq!(
        kids.iter().collect::<HashSet<_>>().len(),
        3,
        "no kid twice: {kids:?}"
    );
    // The stored record of each key is whole: another instance (listing without the lockstep) opens it.
    let reader = signer(
        &root,
        &(lockstep.inner.clone() as Arc<dyn KeyRegistry>),
        Some(&keys),
    );
    for (instant, kid) in [(at(100), START), (at(3600), NEXT)] {
        let key = reader.approval_key_at(instant).await.expect("opens");
        assert_eq!(key.kid(), format!("root-d.d{kid}"));
        let stored = records
            .iter()
            .find(|r| r.published.kid == key.kid())
            .expect("stored");
        signs_as(&key, &stored.published.ed25519).await;
    }
}

// ----- (c) root rotation -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_root_retires_the_old_one_and_issues_keys_under_its_own_kid() {
    let (old_root, new_root) = (root("root-old"), root("root-new"));
    let registry = memory();
    let keys = CountingKeys::new();
    let old = signer(&old_root, &registry, Some(&keys));
    assert_eq!(
        old.rotate_ahead_at(at(100)).await.expect("key step"),
        vec![format!("root-old.d{START}")]
    );

    let new = signer(&new_root, &registry, Some(&keys));
    assert_eq!(
        new.rotate_ahead_at(at(200)).await.expect("key step"),
        vec![format!("root-new.d{START}")],
        "the period's key under the new root"
    );
    let retired = record(&registry, "root-old").await;
    assert_eq!(retired.published.role, KeyRole::Root);
    assert_eq!(
        retired.published.retired_at,
        Some(micros(at(200))),
        "the old root is retired when the new one's key step runs"
    );
    assert_eq!(
        record(&registry, "root-new").await.published.retired_at,
        None
    );

    assert_eq!(new.root_key().await.expect("root").kid(), "root-new");
    let key = new.approval_key_at(at(200)).await.expect("approval key");
    assert_eq!(key.kid(), format!("root-new.d{START}"));
    let stored = record(&registry, key.kid()).await;
    let certificate = stored.published.certificate.as_ref().expect("certificate");
    assert_eq!(certificate.issuer, "root-new");
    certificate
        .verify(&stored.published.public_key(), &new_root.public)
        .expect("certified by the new root");
    assert!(
        certificate
            .verify(&stored.published.public_key(), &old_root.public)
            .is_err(),
        "not by the old one"
    );

    let published: Vec<(String, Option<String>)> = new
        .published_keys_at(at(300))
        .await
        .expect("published")
        .into_iter()
        .map(|k| (k.kid, k.retired_at))
        .collect();
    for kid in [
        "root-old",
        "root-new",
        &format!("root-old.d{START}"),
        &format!("root-new.d{START}"),
    ] {
        assert!(
            published.iter().any(|(k, _)| k == kid),
            "{kid} stays published for verifiers: {published:?}"
        );
    }

    new.rotate_ahead_at(at(300)).await.expect("key step again");
    assert_eq!(
        record(&registry, "root-old").await.published.retired_at,
        Some(micros(at(200))),
        "retired once"
    );
}

// ----- (d) tampered records --------------------------------------------------------------------------------

/// A registry holding `root`'s record and `record`, and a signer of `root` over it.
async fn signer_over(root: &Root, record: KeyRecord, keys: &Arc<CountingKeys>) -> RegistrySigner {
    let registry = memory();
    let signer = signer(root, &registry, Some(keys));
    assert!(registry.insert(&record).await.expect("insert"));
    signer
}

/// The key for `START` as an instance of `root` issues it into a registry of its own.
async fn issued(root: &Root, keys: &Arc<CountingKeys>, now: DateTime<Utc>) -> Vec<KeyRecord> {
    let registry = memory();
    signer(root, &registry, Some(keys))
        .rotate_ahead_at(now)
        .await
        .expect("key step");
    all_records(registry.as_ref())
        .await
        .into_iter()
        .filter(|r| r.published.role == KeyRole::Delegated)
        .collect()
}

fn refused(result: Result<Arc<dyn SigningKey>, SignerError>, what: &str) {
    match result {
        Err(SignerError::Misconfigured(_)) => {}
        Err(other) => panic!("{what}: refused, but as {other:?}"),
        Ok(key) => panic!("{what}: signed with {}", key.kid()),
    }
}

#[tokio::test]
async fn a_record_whose_private_half_is_another_keys_is_refused() {
    let root = root("root-e");
    let keys = CountingKeys::new();
    let genuine = issued(&root, &keys, at(100)).await.remove(0);
    // The same kid issued elsewhere: another key, sealed for this kid under the same envelope key.
    let other = issued(&root, &keys, at(100)).await.remove(0);
    assert_eq!(genuine.published.kid, other.published.kid);
    assert_ne!(genuine.published.ed25519, other.published.ed25519);
    let mut swapped = genuine.clone();
    swapped.sealed_private = other.sealed_private.clone();
    refused(
        signer_over(&root, swapped, &keys)
            .await
            .approval_key_at(at(100))
            .await,
        "private half of another key",
    );

    // A private half moved from another record (sealed for another kid).
    let next = issued(&root, &keys, at(3000))
        .await
        .into_iter()
        .find(|r| r.published.kid == format!("root-e.d{NEXT}"))
        .expect("next key");
    let mut moved = genuine.clone();
    moved.sealed_private = next.sealed_private.clone();
    refused(
        signer_over(&root, moved, &keys)
            .await
            .approval_key_at(at(100))
            .await,
        "private half moved from another record",
    );

    // No private half at all.
    let mut bare = genuine.clone();
    bare.sealed_private = None;
    refused(
        signer_over(&root, bare, &keys)
            .await
            .approval_key_at(at(100))
            .await,
        "no private half",
    );

    // The genuine record opens.
    let key = signer_over(&root, genuine.clone(), &keys)
        .await
        .approval_key_at(at(100))
        .await
        .expect("the genuine record");
    assert_eq!(key.kid(), genuine.published.kid);
}

#[tokio::test]
async fn a_record_certified_by_another_root_is_refused() {
    let root = root("root-f");
    // An impostor root under the same kid certifies its own key for the period.
    let impostor = self::root("root-f");
    let keys = CountingKeys::new();
    let forged = issued(&impostor, &keys, at(100)).await.remove(0);
    assert_eq!(forged.published.kid, format!("root-f.d{START}"));
    refused(
        signer_over(&root, forged.clone(), &keys)
            .await
            .approval_key_at(at(100))
            .await,
        "certificate by another root",
    );

    // A genuine record whose certificate was swapped for the impostor's.
    let genuine = issued(&root, &keys, at(100)).await.remove(0);
    let mut recertified = genuine.clone();
    recertified.published.certificate = forged.published.certificate.clone();
    refused(
        signer_over(&root, recertified, &keys)
            .await
            .approval_key_at(at(100))
            .await,
        "certificate swapped",
    );

    // No certificate.
    let mut uncertified = genuine.clone();
    uncertified.published.certificate = None;
    refused(
        signer_over(&root, uncertified, &keys)
            .await
            .approval_key_at(at(100))
            .await,
        "no certificate",
    );
}

// ----- (e) what is published -------------------------------------------------------------------------------

#[tokio::test]
async fn published_keys_list_the_root_and_delegated_keys_until_their_tokens_expire() {
    let root = root("root-g");
    let registry = memory();
    let keys = CountingKeys::new();
    let signer = signer(&root, &registry, Some(&keys));
    signer.rotate_ahead_at(at(3000)).await.expect("key step");

    let published = signer.published_keys_at(at(3000)).await.expect("published");
    let (this_kid, next_kid) = (format!("root-g.d{START}"), format!("root-g.d{NEXT}"));
    let kids: Vec<(&str, KeyRole)> = published.iter().map(|k| (k.kid.as_str(), k.role)).collect();
    assert_eq!(
        kids,
        vec![
            (next_kid.as_str(), KeyRole::Delegated),
            ("root-g", KeyRole::Root),
            (this_kid.as_str(), KeyRole::Delegated),
        ],
        "newest active_from first"
    );
    let this = published
        .iter()
        .find(|k| k.kid == this_kid)
        .expect("this period's key");
    assert_eq!(
        this.active_from,
        rfc3339(at(-60)),
        "its certificate's not_before"
    );
    assert_eq!(
        this.retired_at,
        Some(rfc3339(at(3660))),
        "its certificate's not_after"
    );
    assert!(this.certificate.is_some());
    let root_key = published.iter().find(|k| k.kid == "root-g").expect("root");
    assert_eq!(root_key.ed25519, root.public);
    assert_eq!(
        root_key.active_from,
        micros(at(3000)),
        "recorded by the key step"
    );

    // A token signed at the last instant of the window lives `ttl` more: the key leaves the JWKS then.
    let ttl = 300;
    assert!(this.in_jwks(at(100), ttl));
    assert!(this.in_jwks(at(3660 + ttl - 1), ttl));
    assert!(
        !this.in_jwks(at(3660 + ttl), ttl),
        "dropped once not_after + ttl has passed"
    );
    let next = published
        .iter()
        .find(|k| k.kid == next_kid)
        .expect("next key");
    assert!(next.in_jwks(at(3000), ttl), "published ahead of its period");
    assert!(
        next.in_jwks(at(3660 + ttl), ttl),
        "still live when the previous one goes"
    );
    assert!(
        root_key.in_jwks(at(10 * 365 * 86_400), ttl),
        "roots stay for ever"
    );
}

#[tokio::test]
async fn an_instance_still_on_the_old_root_does_not_retire_the_new_one() {
    let (old_root, new_root) = (root("root-old"), root("root-new"));
    let registry = memory();
    let old = signer(&old_root, &registry, None);
    let new = signer(&new_root, &registry, None);
    old.rotate_ahead_at(at(100)).await.expect("key step");
    new.rotate_ahead_at(at(200)).await.expect("key step");
    // A rolling deploy: an instance with the old configuration runs its key step after the new root's.
    old.rotate_ahead_at(at(300)).await.expect("key step");
    assert_eq!(
        record(&registry, "root-new").await.published.retired_at,
        None
    );
    assert_eq!(
        record(&registry, "root-old").await.published.retired_at,
        Some(micros(at(200)))
    );
}

#[tokio::test]
async fn a_kid_on_record_for_another_key_is_refused() {
    let registry = memory();
    signer(&root("root"), &registry, None)
        .rotate_ahead_at(at(100))
        .await
        .expect("key step");
    // A new KMS key configured under the old kid: verifiers could not tell the two apart.
    let reused = signer(&root("root"), &registry, None);
    assert!(matches!(
        reused.rotate_ahead_at(at(200)).await,
        Err(SignerError::Misconfigured(_))
    ));
}

#[tokio::test]
async fn listings_reach_back_only_as_far_as_a_live_token_and_old_keys_are_read_by_kid() {
    let root = root("root-h");
    let registry = memory();
    let keys = CountingKeys::new();
    signer(&root, &registry, Some(&keys))
        .rotate_ahead_at(at(0))
        .await
        .expect("key step");
    let old_kid = format!("root-h.d{START}");
    // A day and more later (longest token TTL 24 h + period + overlap): the listing no longer reads that key...
    let later = signer(&root, &registry, Some(&keys));
    let listed = later
        .published_keys_at(at(3600 + 60 + 86_400 + 1))
        .await
        .expect("published");
    assert!(
        listed.iter().any(|k| k.kid == "root-h"),
        "roots are always listed"
    );
    assert!(!listed.iter().any(|k| k.kid == old_kid), "{listed:?}");
    // ...yet a bundle that needs it still finds it, by kid.
    let old = later
        .published_key(&old_kid)
        .await
        .expect("lookup")
        .expect("found by kid");
    assert_eq!(old.role, KeyRole::Delegated);
}

#[tokio::test]
async fn a_root_kid_in_the_delegated_form_is_refused() {
    let registry = memory();
    let result = signer(&root("vault.d1800000000"), &registry, None)
        .rotate_ahead_at(at(0))
        .await;
    assert!(
        matches!(result, Err(SignerError::Misconfigured(_))),
        "{result:?}"
    );
}
