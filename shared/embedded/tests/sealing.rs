//! Sequencing and export under concurrency, crashes and export failures, on the embedded adapters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ledgix_core::checkpoint::Checkpoint;
use ledgix_core::config::VaultSettings;
use ledgix_core::error::StoreError;
use ledgix_core::ledger::LedgerEvent;
use ledgix_core::merkle::{self, Hash, Position};
use ledgix_core::model::{
    ClearanceRecord, ClearanceStatus, IdempotencyRecord, PolicyVersion, ReviewSettings,
};
use ledgix_core::ports::{AnchorError, AnchorSink, Exported, TenantStore, TreeState, Write};
use ledgix_core::service::{Principal, VaultPorts};
use ledgix_core::Vault;
use ledgix_embedded::{EmbeddedQueue, FolderAnchor, LocalSigner, MemoryRateLimiter, SqliteStore};

/// A store whose next `fail_seals` sealing commits fail as if the process died before committing.
struct CrashingStore {
    inner: Arc<SqliteStore>,
    fail_seals: AtomicUsize,
    /// Sealers reading a tree right now, and the most seen at once (how many tenants a round seals at once).
    sealing_now: AtomicUsize,
    most_sealing_at_once: AtomicUsize,
    /// Sealing this tenant fails; and one lock, held across reading a tree and taken to read unsealed events,
    /// stands for what a real store shares between tenants (the AWS adapter's tenant-database directory).
    failing_tenant: std::sync::Mutex<Option<String>>,
    shared_lock: tokio::sync::Mutex<()>,
}

#[async_trait]
impl TenantStore for CrashingStore {
    async fn commit(&self, tenant_id: &str, writes: Vec<Write>) -> Result<Vec<i64>, StoreError> {
        let sealing = writes.iter().any(|w| matches!(w, Write::Seal(_)));
        if sealing && self.fail_seals.load(Ordering::SeqCst) > 0 {
            self.fail_seals.fetch_sub(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(
                "simulated crash before commit".into(),
            ));
        }
        self.inner.commit(tenant_id, writes).await
    }
    async fn clearance(&self, t: &str, r: &str) -> Result<Option<ClearanceRecord>, StoreError> {
        self.inner.clearance(t, r).await
    }
    async fn clearances_with_status(
        &self,
        t: &str,
        s: ClearanceStatus,
        l: usize,
    ) -> Result<Vec<ClearanceRecord>, StoreError> {
        self.inner.clearances_with_status(t, s, l).await
    }
    async fn policies(&self, t: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        self.inner.policies(t).await
    }
    async fn policy_version(&self, t: &str, v: &str) -> Result<Option<PolicyVersion>, StoreError> {
        self.inner.policy_version(t, v).await
    }
    async fn review_settings(&self, t: &str) -> Result<ReviewSettings, StoreError> {
        self.inner.review_settings(t).await
    }
    async fn policy_chunks(
        &self,
        t: &str,
        v: &str,
        m: &str,
    ) -> Result<Vec<ledgix_core::ports::PolicyChunk>, StoreError> {
        self.inner.policy_chunks(t, v, m).await
    }
    async fn ledger_tail(&self, t: &str, l: usize) -> Result<Vec<LedgerEvent>, StoreError> {
        self.inner.ledger_tail(t, l).await
    }
    async fn idempotency(&self, t: &str, k: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        TenantStore::idempotency(self.inner.as_ref(), t, k).await
    }
    async fn burn_jti(
        &self,
        t: &str,
        jti: &str,
        expires_at: i64,
        answer: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        self.inner.burn_jti(t, jti, expires_at, answer).await
    }
    async fn consume_answer(
        &self,
        t: &str,
        k: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.consume_answer(t, k).await
    }
    async fn tree_state(&self, t: &str) -> Result<TreeState, StoreError> {
        let now = self.sealing_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_sealing_at_once.fetch_max(now, Ordering::SeqCst);
        let guard = self.shared_lock.lock().await;
        // Long enough for concurrent sealers to overlap here.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(guard);
        let state = self.inner.tree_state(t).await;
        self.sealing_now.fetch_sub(1, Ordering::SeqCst);
        state
    }
    async fn unsequenced_leaves(
        &self,
        t: &str,
        l: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let failing = self
            .failing_tenant
            .lock()
            .map(|f| f.as_deref() == Some(t))
            .unwrap_or(false);
        if failing {
            return Err(StoreError::unavailable("simulated tenant database outage"));
        }
        self.inner.unsequenced_leaves(t, l).await
    }
    async fn unsequenced_events(&self, t: &str, l: usize) -> Result<Vec<LedgerEvent>, StoreError> {
        let _shared = self.shared_lock.lock().await;
        self.inner.unsequenced_events(t, l).await
    }
    async fn tree_hashes(
        &self,
        t: &str,
        p: &[Position],
    ) -> Result<HashMap<Position, Hash>, StoreError> {
        self.inner.tree_hashes(t, p).await
    }
    async fn entries(&self, t: &str, s: u64, e: u64) -> Result<Vec<Hash>, StoreError> {
        self.inner.entries(t, s, e).await
    }
    async fn checkpoints(&self, t: &str, l: usize) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.checkpoints(t, l).await
    }
    async fn checkpoint(&self, t: &str, id: i64) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(t, id).await
    }
    async fn unexported_checkpoints(&self, t: &str) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.unexported_checkpoints(t).await
    }
    async fn outbox(
        &self,
        t: &str,
        l: usize,
    ) -> Result<Vec<ledgix_core::notify::Delivery>, StoreError> {
        self.inner.outbox(t, l).await
    }
    async fn latest_event_for_request(
        &self,
        t: &str,
        r: &str,
    ) -> Result<Option<LedgerEvent>, StoreError> {
        self.inner.latest_event_for_request(t, r).await
    }
}

/// An anchor target that is down for its first `failures` writes.
struct FlakyAnchor {
    inner: FolderAnchor,
    failures: AtomicUsize,
    writes: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl AnchorSink for FlakyAnchor {
    fn target(&self) -> &str {
        "file"
    }
    fn uri(&self, tenant_id: &str, key: &str) -> String {
        self.inner.uri(tenant_id, key)
    }
    async fn put(
        &self,
        tenant_id: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Exported, AnchorError> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(AnchorError::Unavailable("simulated outage".into()));
        }
        if let Ok(mut w) = self.writes.lock() {
            w.push(key.to_string());
        }
        self.inner.put(tenant_id, key, body, content_type).await
    }
}

struct Harness {
    vault: Arc<Vault>,
    store: Arc<CrashingStore>,
    anchor: Arc<FlakyAnchor>,
    principal: Principal,
    _dir: tempfile::TempDir,
}

async fn harness(batch: usize) -> Harness {
    harness_with(VaultSettings {
        anchor_batch_size: batch,
        ..VaultSettings::default()
    })
    .await
}

async fn harness_with(settings: VaultSettings) -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("vault.db")).expect("open"));
    let store = Arc::new(CrashingStore {
        inner: sqlite.clone(),
        fail_seals: AtomicUsize::new(0),
        sealing_now: AtomicUsize::new(0),
        most_sealing_at_once: AtomicUsize::new(0),
        failing_tenant: std::sync::Mutex::new(None),
        shared_lock: tokio::sync::Mutex::new(()),
    });
    let anchor = Arc::new(FlakyAnchor {
        inner: FolderAnchor::new(dir.path().join("anchors"), "ledgix"),
        failures: AtomicUsize::new(0),
        writes: Default::default(),
    });
    let (queue, _receiver) = EmbeddedQueue::new(16);
    let ports = VaultPorts {
        control: sqlite.clone(),
        store: store.clone(),
        limiter: Arc::new(MemoryRateLimiter::default()),
        signer: Arc::new(LocalSigner::generate("k1")),
        queue: Arc::new(queue),
        judge: None,
        anchor: Some(anchor.clone()),
        usage: sqlite.clone(),
        notify: None,
    };
    let vault = Arc::new(Vault::new(settings, ports));
    let created = vault.create_tenant("t", None).await.expect("tenant");
    let principal = vault
        .authenticate(created.api_key.as_deref().expect("shown once"))
        .await
        .expect("principal");
    Harness {
        vault,
        store,
        anchor,
        principal,
        _dir: dir,
    }
}

/// Commit `n` decided events (no policy → denied: one event each).
async fn decide(h: &Harness, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let request: ledgix_core::model::ClearanceRequest =
            serde_json::from_value(serde_json::json!({"tool_name": "t", "tool_args": {"i": i}}))
                .expect("request");
        ids.push(
            h.vault
                .request_clearance(&h.principal, request, None)
                .await
                .expect("decided")
                .request_id,
        );
    }
    ids
}

async fn assert_tree_is_whole(h: &Harness, expected_leaves: u64) {
    let tenant = &h.principal.tenant_id;
    let events = h.store.ledger_tail(tenant, 10_000).await.expect("ledger");
    let mut indexes: Vec<i64> = events
        .iter()
        .map(|e| e.leaf_index.expect("every event sealed"))
        .collect();
    indexes.sort_unstable();
    assert_eq!(
        indexes,
        (0..expected_leaves as i64).collect::<Vec<_>>(),
        "each event sealed exactly once, no gaps"
    );
    let by_seq: Vec<i64> = events.iter().map(|e| e.leaf_index.unwrap_or(-1)).collect();
    assert!(
        by_seq.windows(2).all(|w| w[0] < w[1]),
        "leaf order follows seq order"
    );
    let checkpoints = h
        .vault
        .checkpoints(&h.principal, 10_000)
        .await
        .expect("checkpoints");
    let mut prev = String::new();
    for c in &checkpoints {
        assert_eq!(
            c.prev_checkpoint_hash, prev,
            "checkpoint {} chains",
            c.checkpoint_id
        );
        prev = c.checkpoint_hash.clone();
    }
    let latest = checkpoints.last().expect("a checkpoint");
    assert_eq!(latest.tree_size as u64, expected_leaves);
    let leaves: Vec<Hash> = events
        .iter()
        .map(|e| merkle::parse_hash(&e.leaf_hash).expect("hex"))
        .collect();
    assert_eq!(
        hex::encode(merkle::root(&leaves).expect("root")),
        latest.root_hash
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sealers_never_sequence_twice() {
    let h = harness(7).await;
    decide(&h, 60).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (vault, tenant) = (h.vault.clone(), h.principal.tenant_id.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                vault.seal(&tenant).await.expect("seal");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_tree_is_whole(&h, 60).await;
}

#[tokio::test]
async fn a_crash_before_commit_leaves_no_gap_and_no_duplicate() {
    let h = harness(500).await;
    decide(&h, 10).await;
    h.store.fail_seals.store(1, Ordering::SeqCst);
    assert!(
        h.vault.seal(&h.principal.tenant_id).await.is_err(),
        "the crashed round reports failure"
    );
    assert!(
        h.vault
            .checkpoints(&h.principal, 10)
            .await
            .expect("read")
            .is_empty(),
        "nothing half-written"
    );
    decide(&h, 5).await;
    h.vault
        .seal_and_export(&h.principal.tenant_id)
        .await
        .expect("recovered round");
    assert_tree_is_whole(&h, 15).await;
}

#[tokio::test]
async fn export_failures_are_retried_in_order_and_lose_nothing() {
    let h = harness(4).await;
    let tenant = h.principal.tenant_id.clone();
    decide(&h, 10).await;
    h.anchor.failures.store(2, Ordering::SeqCst);
    let first = h.vault.seal_and_export(&tenant).await.expect("round");
    assert!(first.export_failed);
    assert_eq!(first.exported, 0);
    for _ in 0..3 {
        h.vault.seal_and_export(&tenant).await.expect("round");
    }
    let checkpoints = h.vault.checkpoints(&h.principal, 100).await.expect("read");
    assert_eq!(checkpoints.len(), 3, "10 events in batches of 4");
    assert!(checkpoints
        .iter()
        .all(|c| c.export_status == "exported" && c.export_uri.starts_with("file://")));
    let writes = h.anchor.writes.lock().expect("lock").clone();
    let order: Vec<&String> = writes
        .iter()
        .filter(|k| k.starts_with("checkpoints/"))
        .collect();
    assert_eq!(
        order,
        [
            "checkpoints/1.json",
            "checkpoints/2.json",
            "checkpoints/3.json"
        ]
    );
    assert_tree_is_whole(&h, 10).await;
}

/// The exported `checkpoints/<id>.json` says what the vault recorded for its export (where, `exported`, when),
/// not the `pending` copy taken before it; its signed payload and hash are the checkpoint's own.
#[tokio::test]
async fn exported_checkpoint_objects_carry_their_final_export_fields() {
    let h = harness(4).await;
    let tenant = h.principal.tenant_id.clone();
    decide(&h, 10).await;
    for _ in 0..3 {
        h.vault.seal_and_export(&tenant).await.expect("round");
    }
    let recorded = h.vault.checkpoints(&h.principal, 100).await.expect("read");
    assert_eq!(recorded.len(), 3);
    for checkpoint in &recorded {
        let uri = &checkpoint.export_uri;
        let path = uri.strip_prefix("file://").expect("a file URI");
        let object: ledgix_core::checkpoint::Checkpoint =
            serde_json::from_slice(&std::fs::read(path).expect("the object is where its URI says"))
                .expect("a checkpoint");
        assert_eq!(
            &object, checkpoint,
            "checkpoint {}: the object is the vault's record",
            checkpoint.checkpoint_id
        );
        assert_eq!(object.export_status, "exported");
        assert!(object.exported_at.is_some());
        assert!(
            path.ends_with(&format!("checkpoints/{}.json", checkpoint.checkpoint_id)),
            "{uri}"
        );
        // The signed part verifies as before: the payload is the draft's, the hash is over it.
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &object.checkpoint_payload,
        )
        .expect("base64url");
        assert_eq!(
            hex::encode(ledgix_core::ledger::domain_hash(
                ledgix_core::ledger::CHECKPOINT_HASH_PREFIX,
                &payload
            )),
            object.checkpoint_hash
        );
    }
}

#[tokio::test]
async fn one_anchor_round_catches_a_backlog_up() {
    let h = harness(4).await;
    decide(&h, 10).await;
    let reports = h.vault.anchor_round().await.expect("round");
    let (tenant, report) = &reports[0];
    assert_eq!(tenant, &h.principal.tenant_id);
    assert_eq!(
        report.sequenced, 10,
        "three batches of at most 4 in one round"
    );
    assert_eq!(report.exported, 3, "a checkpoint per batch, each exported");
    assert_tree_is_whole(&h, 10).await;
    let again = h.vault.anchor_round().await.expect("round");
    assert!(
        again.iter().all(|(_, r)| r.is_idle()),
        "nothing left for the next round: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_round_seals_tenants_concurrently_within_its_bound_and_reports_their_lag() {
    let h = harness_with(VaultSettings {
        anchor_batch_size: 100,
        anchor_concurrency: 4,
        ..VaultSettings::default()
    })
    .await;
    decide(&h, 6).await;
    let lag = h
        .vault
        .anchor_lag(&h.principal.tenant_id)
        .await
        .expect("lag");
    assert_eq!(lag.events_behind, 6);
    assert!(lag.oldest_unsequenced_at.is_some() && lag.lag_seconds >= 0.0);
    let status = h.vault.ledger_status(&h.principal).await.expect("status");
    assert_eq!((status.tree_size, status.lag.events_behind), (0, 6));
    assert!(status.within_bound);
    let mut tenants = vec![h.principal.tenant_id.clone()];
    for i in 0..11 {
        let created = h
            .vault
            .create_tenant(&format!("t{i}"), None)
            .await
            .expect("tenant");
        let principal = h
            .vault
            .authenticate(created.api_key.as_deref().expect("key"))
            .await
            .expect("principal");
        for n in 0..3 {
            let request = serde_json::from_value(
                serde_json::json!({"tool_name": "t", "tool_args": {"n": n}}),
            )
            .expect("request");
            h.vault
                .request_clearance(&principal, request, None)
                .await
                .expect("decided");
        }
        tenants.push(principal.tenant_id);
    }
    let reports = h.vault.anchor_round().await.expect("round");
    let mut sealed: Vec<&String> = reports.iter().map(|(t, _)| t).collect();
    sealed.sort();
    tenants.sort();
    assert_eq!(
        sealed,
        tenants.iter().collect::<Vec<_>>(),
        "every tenant is in the round"
    );
    for (tenant, report) in &reports {
        assert!(report.sequenced > 0, "{tenant} sealed");
        assert_eq!(report.lag.events_behind, 0, "{tenant} caught up");
        assert_eq!(report.lag.lag_seconds, 0.0);
    }
    let most = h.store.most_sealing_at_once.load(Ordering::SeqCst);
    assert!(
        most > 1,
        "tenants were sealed concurrently (at most {most} at once)"
    );
    assert!(
        most <= 4,
        "never more than VAULT_LEDGER_ANCHOR_CONCURRENCY at once: {most}"
    );
    let status = h.vault.ledger_status(&h.principal).await.expect("status");
    assert_eq!((status.tree_size, status.lag.events_behind), (6, 0));
    assert_eq!(status.latest_checkpoint_id, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_tenant_reports_its_lag_without_stalling_the_round() {
    let h = harness_with(VaultSettings {
        anchor_concurrency: 4,
        ..VaultSettings::default()
    })
    .await;
    decide(&h, 2).await;
    let mut others = Vec::new();
    for i in 0..6 {
        let created = h
            .vault
            .create_tenant(&format!("o{i}"), None)
            .await
            .expect("tenant");
        others.push(created.tenant_id);
    }
    if let Ok(mut failing) = h.store.failing_tenant.lock() {
        *failing = Some(h.principal.tenant_id.clone());
    }
    // A failure handled outside the concurrent sealing would wait for a lock that a sealer it no longer polls
    // holds: the round would never end.
    let reports = tokio::time::timeout(std::time::Duration::from_secs(20), h.vault.anchor_round())
        .await
        .expect("the round ends")
        .expect("round");
    let (_, failed) = reports
        .iter()
        .find(|(t, _)| t == &h.principal.tenant_id)
        .expect("the failing tenant is reported");
    assert!(failed.seal_failed && !failed.is_idle(), "{failed:?}");
    assert_eq!(failed.lag.events_behind, 2, "its lag is still measured");
    assert_eq!(reports.len(), others.len() + 1);
}
