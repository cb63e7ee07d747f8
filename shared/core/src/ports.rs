//! The ports: everything the domain needs from the outside world. Each has an embedded adapter
//! (ledgix-embedded) and an AWS adapter (ledgix-aws); the contract suite (`contract`), run against both,
//! pins their behaviour.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::checkpoint::Checkpoint;
use crate::error::{SignerError, StoreError};
use crate::keys::{KeyRecord, PublishedKey};
use crate::ledger::LedgerEvent;
use crate::merkle::{Hash, Position};
use crate::model::{
    ApiKeyRecord, ClearanceRecord, ClearanceStatus, ClearanceView, IdempotencyRecord,
    PolicyVersion, ReviewSettings, Tenant,
};
use crate::ratelimit::{RateDecision, RateLimit};

/// The scope of the control plane's idempotent answers (administration requests).
pub const ADMIN_SCOPE: &str = "admin";

/// Tenants and their API keys (the control plane).
#[async_trait]
pub trait ControlPlane: Send + Sync {
    /// Create a tenant with its first key; with `idempotency`, atomically record the response too
    /// (`Conflict::IdempotencyKey` when that key was already used).
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        first_key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError>;
    async fn tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError>;
    async fn add_api_key(
        &self,
        key: &ApiKeyRecord,
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError>;
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key of the tenant (revoked ones too), newest first.
    async fn api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Returns false when no such key exists.
    async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError>;
    async fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Every tenant id, for jobs that walk all tenants (the anchor job).
    async fn tenant_ids(&self) -> Result<Vec<String>, StoreError>;
}

/// One write of an atomic tenant commit.
#[derive(Debug, Clone)]
pub enum Write {
    /// Fails with `Conflict::ClearanceState` if the request id exists.
    InsertClearance(ClearanceRecord),
    /// Fails with `Conflict::ClearanceState` unless the stored status is `expected`.
    UpdateClearance {
        record: ClearanceRecord,
        expected: ClearanceStatus,
    },
    /// Appends to the tenant's ledger; the store assigns the next `seq`.
    AppendEvent(LedgerEvent),
    PutPolicy(PolicyVersion),
    PutReviewSettings(ReviewSettings),
    /// Fails with `Conflict::IdempotencyKey` if the key was recorded before.
    PutIdempotency(IdempotencyRecord),
    /// Append sequenced events to the tenant's Merkle tree and record the checkpoint that signs it. Fails with
    /// `Conflict::TreeMoved` unless the tree still has `expected_tree_size` leaves (another sealer won).
    Seal(Seal),
    /// Store a long policy's chunks and their embeddings (retrieval for the judge). Keeps what is stored when
    /// another worker stored them first: the same version and model give the same chunks.
    PutPolicyChunks {
        policy_version_id: String,
        embedding_model: String,
        chunks: Vec<PolicyChunk>,
    },
    /// Notifications this commit's decision causes (the outbox): kept until dispatched to the notifier.
    QueueNotifications(Vec<crate::notify::Delivery>),
    /// These outbox entries were dispatched (recorded in the delivery log and queued): forget them.
    ClearOutbox(Vec<String>),
    /// The checkpoint's export finished: record where it went.
    MarkExported {
        checkpoint_id: i64,
        export_uri: String,
        export_version_id: Option<String>,
        exported_at: String,
    },
}

/// One chunk of a long policy and its embedding. Chunk `index` is shown to the judge as `C{index+1}`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyChunk {
    pub index: u32,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// One sealing round's result for a tenant.
#[derive(Debug, Clone)]
pub struct Seal {
    pub expected_tree_size: u64,
    /// `(seq, leaf_index)` of each newly sequenced event.
    pub leaves: Vec<(i64, u64)>,
    /// New complete-subtree hashes.
    pub nodes: Vec<(Position, Hash)>,
    pub checkpoint: Checkpoint,
}

/// The tenant's tree: its size and latest checkpoint.
#[derive(Debug, Clone, Default)]
pub struct TreeState {
    pub tree_size: u64,
    pub latest: Option<Checkpoint>,
}

impl TreeState {
    /// The tree as its latest checkpoint signs it (empty without one).
    pub fn signed_by(latest: Option<Checkpoint>) -> Self {
        TreeState {
            tree_size: latest.as_ref().map_or(0, |c| c.tree_size as u64),
            latest,
        }
    }
}

/// A tenant's state: policies, clearances, ledger, idempotency records, burned token ids.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Apply every write or none, durably, before returning. Returns the `seq` of each appended event.
    async fn commit(&self, tenant_id: &str, writes: Vec<Write>) -> Result<Vec<i64>, StoreError>;
    async fn clearance(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<ClearanceRecord>, StoreError>;
    /// What `GET /clearance-status` answers: the view of the committed record. Adapters may serve it from a
    /// hot copy, but never a state older than the last commit that returned.
    async fn clearance_status(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<ClearanceView>, StoreError> {
        Ok(self
            .clearance(tenant_id, request_id)
            .await?
            .as_ref()
            .map(ClearanceView::from))
    }
    async fn clearances_with_status(
        &self,
        tenant_id: &str,
        status: ClearanceStatus,
        limit: usize,
    ) -> Result<Vec<ClearanceRecord>, StoreError>;
    /// Latest version of every policy of the tenant.
    async fn policies(&self, tenant_id: &str) -> Result<Vec<PolicyVersion>, StoreError>;
    async fn policy_version(
        &self,
        tenant_id: &str,
        version_id: &str,
    ) -> Result<Option<PolicyVersion>, StoreError>;
    async fn review_settings(&self, tenant_id: &str) -> Result<ReviewSettings, StoreError>;
    /// The stored chunks of a policy version embedded with `embedding_model`, by index; empty when none are.
    async fn policy_chunks(
        &self,
        tenant_id: &str,
        policy_version_id: &str,
        embedding_model: &str,
    ) -> Result<Vec<PolicyChunk>, StoreError>;
    /// The newest `limit` events, in ascending `seq`.
    async fn ledger_tail(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError>;
    /// The stored answer for an idempotency key. An adapter may miss a record whose commit just raced this read
    /// (or whose hot copy was lost); `commit` still refuses that key with `Conflict::IdempotencyKey`, and after
    /// that refusal this returns the record.
    async fn idempotency(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    // ----- token burns -----
    /// Burn a token id, durably, before returning: a `jti` burns once (across tenants), and every later burn of
    /// it fails with `Conflict::JtiBurned`. With `answer` (a `/consume-token` Idempotency-Key), the consume's
    /// answer is recorded in the same atomic write, or not at all: `Conflict::IdempotencyKey` if the tenant
    /// recorded a consume answer under that key before. That check comes first, so a retried consume is refused
    /// for its key (and replays the answer) rather than for its own burn. On either conflict nothing is written.
    /// `expires_at` (Unix seconds) is the token's expiry; an adapter may forget the burn some time after it.
    async fn burn_jti(
        &self,
        tenant_id: &str,
        jti: &str,
        expires_at: i64,
        answer: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError>;
    /// The answer `burn_jti` recorded for the tenant's consume under `key`. Consume answers are kept apart from
    /// the answers of ledger-writing requests (`idempotency`): neither reads the other's, whatever the key.
    async fn consume_answer(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    // ----- the sealed ledger -----
    async fn tree_state(&self, tenant_id: &str) -> Result<TreeState, StoreError>;
    /// `(seq, leaf_hash)` of committed events not yet in the tree, in `seq` order: all sealing needs, without
    /// reading (and decrypting) the events themselves.
    async fn unsequenced_leaves(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError>;
    /// Committed events not yet in the tree, in `seq` order.
    async fn unsequenced_events(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<LedgerEvent>, StoreError>;
    async fn tree_hashes(
        &self,
        tenant_id: &str,
        positions: &[Position],
    ) -> Result<HashMap<Position, Hash>, StoreError>;
    /// Event hashes (the log entries) of leaves `[start, end)`, in leaf order.
    async fn entries(&self, tenant_id: &str, start: u64, end: u64)
        -> Result<Vec<Hash>, StoreError>;
    /// The newest `limit` checkpoints, ascending by id.
    async fn checkpoints(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<Checkpoint>, StoreError>;
    async fn checkpoint(
        &self,
        tenant_id: &str,
        checkpoint_id: i64,
    ) -> Result<Option<Checkpoint>, StoreError>;
    /// Checkpoints whose export has not finished, ascending by id.
    async fn unexported_checkpoints(&self, tenant_id: &str) -> Result<Vec<Checkpoint>, StoreError>;
    /// Outbox entries not yet dispatched, oldest first (at most `limit`).
    async fn outbox(
        &self,
        tenant_id: &str,
        limit: usize,
    ) -> Result<Vec<crate::notify::Delivery>, StoreError>;
    /// The newest event recorded for a request (its final decision so far).
    async fn latest_event_for_request(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<Option<LedgerEvent>, StoreError>;
}

/// Where a written anchor object went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    pub uri: String,
    pub version_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("anchor target unavailable: {0}")]
    Unavailable(String),
    #[error("anchor target misconfigured: {0}")]
    Misconfigured(String),
}

/// Write-once export of checkpoints and tiles (a folder, or S3 with versioning).
#[async_trait]
pub trait AnchorSink: Send + Sync {
    /// Short name signed into checkpoints as `export_target` (`file`, `s3`).
    fn target(&self) -> &str;
    /// Where `put` of this tenant's `key` writes, as its `Exported::uri` will say (known before the write, so an
    /// exported checkpoint can carry its own location).
    fn uri(&self, tenant_id: &str, key: &str) -> String;
    async fn put(
        &self,
        tenant_id: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Exported, AnchorError>;
}

/// Per-tenant usage counters (what a tenant is billed for), by UTC day and metric.
#[async_trait]
pub trait UsageMeter: Send + Sync {
    async fn record(
        &self,
        tenant_id: &str,
        day: &str,
        metric: &str,
        count: u64,
    ) -> Result<(), StoreError>;
    /// Every metric counted for the tenant on `day`, sorted by metric.
    async fn usage(&self, tenant_id: &str, day: &str) -> Result<Vec<(String, u64)>, StoreError>;
}

/// Per-principal token buckets.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn take(&self, principal: &str, limit: RateLimit) -> Result<RateDecision, StoreError>;
}

/// One Ed25519 key that can sign now.
#[async_trait]
pub trait SigningKey: Send + Sync {
    fn kid(&self) -> &str;
    /// The raw Ed25519 public key that verifies its signatures.
    fn ed25519(&self) -> [u8; 32];
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
}

/// The vault's keys (`keys` module): a root key that signs checkpoints, and the key that signs approval tokens
/// and ledger receipts now (the root itself, or a delegated key the root certified).
#[async_trait]
pub trait Signer: Send + Sync {
    /// The key that signs tokens and receipts now. The caller signs with the handle it got, so a rotation
    /// between naming the key (a token's `kid`, a receipt's `receipt_key_id`) and signing cannot mix keys.
    async fn approval_key(&self) -> Result<Arc<dyn SigningKey>, SignerError>;
    /// The root key: signs checkpoints.
    async fn root_key(&self) -> Result<Arc<dyn SigningKey>, SignerError>;
    /// The keys a JWKS lists now: every root, and the delegated keys of recent periods (enough for any token
    /// still unexpired; `PublishedKey::in_jwks` decides).
    async fn published_keys(&self) -> Result<Vec<PublishedKey>, SignerError>;
    /// Any key ever published, by kid, retired ones included (what a proof bundle embeds).
    async fn published_key(&self, kid: &str) -> Result<Option<PublishedKey>, SignerError> {
        Ok(self
            .published_keys()
            .await?
            .into_iter()
            .find(|k| k.kid == kid))
    }
    /// The scheduled key step: record the root, retire rotated-out roots, issue delegated keys ahead of use.
    /// Returns the kids it issued. Signers without a registry have nothing to do.
    async fn rotate_ahead(&self) -> Result<Vec<String>, SignerError> {
        Ok(vec![])
    }
}

/// Where the vault keeps its key records (AWS: the DynamoDB hot table). Global, not per tenant. Every read is
/// bounded: roots are few, delegated keys are read by kid or by a recent range of periods, never all of them.
#[async_trait]
pub trait KeyRegistry: Send + Sync {
    /// Every root key record, retired ones included.
    async fn roots(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// The delegated keys `root_kid` certified for periods starting at or after `from_start` (Unix seconds).
    async fn delegated(
        &self,
        root_kid: &str,
        from_start: i64,
    ) -> Result<Vec<KeyRecord>, StoreError>;
    /// One record by kid.
    async fn get(&self, kid: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Store `record` unless a record with its kid exists; `false` when one did (another instance won).
    async fn insert(&self, record: &KeyRecord) -> Result<bool, StoreError>;
    /// Mark a root key retired at `at`, unless it is already retired.
    async fn retire(&self, kid: &str, at: &str) -> Result<(), StoreError>;
}

/// Work for the judge worker: identifies a clearance in status `processing`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JudgeJob {
    pub tenant_id: String,
    pub request_id: String,
    pub session_id: String,
}

impl JudgeJob {
    /// A queue message body as a job; `None` for a body that is not one (the queue's DLQ keeps it).
    pub fn from_message(body: &str) -> Option<JudgeJob> {
        serde_json::from_str(body).ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue is full")]
    Saturated,
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait JudgeQueue: Send + Sync {
    async fn enqueue(&self, job: &JudgeJob) -> Result<(), QueueError>;
    /// True when the queue is past its watermark; new judge work is refused with 429 instead of queued.
    fn saturated(&self) -> bool {
        false
    }
}

/// The prompt a judge model receives: a fixed system prompt and one user message that carries the call and the
/// policy as delimited JSON data (see `judge::prompt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgePrompt {
    pub system: String,
    pub user: String,
}

/// One judgement asked of a model.
#[derive(Debug, Clone, Copy)]
pub struct JudgeCall<'a> {
    pub tenant_id: &'a str,
    pub request_id: &'a str,
    /// What LLM backends send (Bedrock Converse, OpenAI-compatible chat).
    pub prompt: &'a JudgePrompt,
    /// The same call and policy excerpts as structured JSON: what the `http` judge receives (docs/judge.md).
    pub data: &'a serde_json::Value,
    /// JSON Schema of the verdict object the model must produce (a forced tool call's input schema, or an
    /// OpenAI `json_schema` response format).
    pub verdict_schema: &'a serde_json::Value,
}

/// A model's answer before the core validates it: the verdict object exactly as the model produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelReply {
    pub verdict: serde_json::Value,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Embeddings of policy chunks or of a call, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub input_tokens: u64,
}

/// Why a model gave no usable answer. Throttling, timeouts and unavailability are retried within the judge's
/// retry budget; a rejected request is not (retrying cannot help); invalid output goes to human review.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("model throttled: {0}")]
    Throttled(String),
    #[error("model timed out: {0}")]
    Timeout(String),
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// The service refused the request itself (validation, access denied, unknown model).
    #[error("model refused the request: {0}")]
    Rejected(String),
    /// The model answered, but not with a verdict object (no tool call, unparsable JSON, wrong shape).
    #[error("model output is not a verdict: {0}")]
    InvalidOutput(String),
}

impl ModelError {
    /// Worth another attempt after a backoff.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ModelError::Throttled(_) | ModelError::Timeout(_) | ModelError::Unavailable(_)
        )
    }
}

/// The model behind the policy judge: Bedrock, an OpenAI-compatible endpoint, a tenant's HTTP judge, or the
/// development stub. Adapters only move the call and the answer; prompt building, retrieval, validation,
/// retries and the decision are the core's (`judge` module, `Vault::process_judge_job`).
#[async_trait]
pub trait JudgeModel: Send + Sync {
    /// `bedrock`, `openai`, `http` or `stub`.
    fn backend(&self) -> &str;
    /// The evaluation model (recorded in the ledger with each judgement).
    fn model_id(&self) -> &str;
    /// The embedding model used for retrieval; `None` when this backend does not embed (policies go in whole).
    fn embedding_model(&self) -> Option<&str> {
        None
    }
    /// One judgement: the verdict object as the model produced it, and the tokens it cost.
    async fn decide(&self, call: JudgeCall<'_>) -> Result<ModelReply, ModelError>;
    /// Embed `texts` (policy chunks or a call) with `embedding_model`.
    async fn embed(&self, _texts: &[String]) -> Result<Embedded, ModelError> {
        Err(ModelError::Rejected(format!(
            "the {} judge does not embed text",
            self.backend()
        )))
    }
}
