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
        self.inner.tree_state(t).await
    }
    async fn unsequenced_events(&self, t: &str, l: usize) -> Result<Vec<LedgerEvent>, StoreError> {
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
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("vault.db")).expect("open"));
    let store = Arc::new(CrashingStore {
        inner: sqlite.clone(),
        fail_seals: AtomicUsize::new(0),
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
    };
    let settings = VaultSettings {
        anchor_batch_size: batch,
        ..VaultSettings::default()
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
        again.is_empty(),
        "nothing left for the next round: {again:?}"
    );
}
