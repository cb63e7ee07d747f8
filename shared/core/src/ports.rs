//! The ports: everything the domain needs from the outside world. Each has an embedded adapter
//! (ledgix-embedded) and an AWS adapter; the contract suite in ledgix-embedded's tests pins their behaviour.

use async_trait::async_trait;

use crate::error::{SignerError, StoreError};
use crate::ledger::LedgerEvent;
use crate::model::{
    ApiKeyRecord, ClearanceRecord, ClearanceRequest, ClearanceStatus, ConfidenceBucket, IdempotencyRecord,
    PolicyVersion, ReviewSettings, Tenant,
};
use crate::ratelimit::{RateDecision, RateLimit};
use crate::token::PublicKey;

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
    async fn add_api_key(&self, key: &ApiKeyRecord, idempotency: Option<&IdempotencyRecord>) -> Result<(), StoreError>;
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Returns false when no such key exists.
    async fn revoke_api_key(&self, key_id: &str) -> Result<bool, StoreError>;
    async fn idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// One write of an atomic tenant commit.
#[derive(Debug, Clone)]
pub enum Write {
    /// Fails with `Conflict::ClearanceState` if the request id exists.
    InsertClearance(ClearanceRecord),
    /// Fails with `Conflict::ClearanceState` unless the stored status is `expected`.
    UpdateClearance { record: ClearanceRecord, expected: ClearanceStatus },
    /// Appends to the tenant's ledger; the store assigns the next `seq`.
    AppendEvent(LedgerEvent),
    PutPolicy(PolicyVersion),
    PutReviewSettings(ReviewSettings),
    /// Fails with `Conflict::JtiBurned` if the jti was burned before.
    BurnJti { jti: String, expires_at: i64 },
    /// Fails with `Conflict::IdempotencyKey` if the key was recorded before.
    PutIdempotency(IdempotencyRecord),
}

/// A tenant's state: policies, clearances, ledger, idempotency records, burned token ids.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Apply every write or none, durably, before returning. Returns the `seq` of each appended event.
    async fn commit(&self, tenant_id: &str, writes: Vec<Write>) -> Result<Vec<i64>, StoreError>;
    async fn clearance(&self, tenant_id: &str, request_id: &str) -> Result<Option<ClearanceRecord>, StoreError>;
    async fn clearances_with_status(
        &self,
        tenant_id: &str,
        status: ClearanceStatus,
        limit: usize,
    ) -> Result<Vec<ClearanceRecord>, StoreError>;
    /// Latest version of every policy of the tenant.
    async fn policies(&self, tenant_id: &str) -> Result<Vec<PolicyVersion>, StoreError>;
    async fn policy_version(&self, tenant_id: &str, version_id: &str) -> Result<Option<PolicyVersion>, StoreError>;
    async fn review_settings(&self, tenant_id: &str) -> Result<ReviewSettings, StoreError>;
    /// The newest `limit` events, in ascending `seq`.
    async fn ledger_tail(&self, tenant_id: &str, limit: usize) -> Result<Vec<LedgerEvent>, StoreError>;
    async fn idempotency(&self, tenant_id: &str, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// Per-principal token buckets.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn take(&self, principal: &str, limit: RateLimit) -> Result<RateDecision, StoreError>;
}

/// Ed25519 signing for tokens, receipts and checkpoints.
#[async_trait]
pub trait Signer: Send + Sync {
    /// `kid` of the active key.
    fn key_id(&self) -> &str;
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
    /// The active key and every retired key still needed to verify old signatures.
    async fn public_keys(&self) -> Result<Vec<PublicKey>, SignerError>;
}

/// Work for the judge worker: identifies a clearance in status `processing`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JudgeJob {
    pub tenant_id: String,
    pub request_id: String,
    pub session_id: String,
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

/// What a judge concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeVerdict {
    Approve,
    Deny,
    Review,
}

#[derive(Debug, Clone)]
pub struct Judgement {
    pub verdict: JudgeVerdict,
    pub confidence_bucket: ConfidenceBucket,
    pub reason: String,
    pub reason_code: Option<String>,
    pub citations: Vec<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("judge unavailable: {0}")]
    Unavailable(String),
    #[error("judge returned an invalid answer: {0}")]
    InvalidAnswer(String),
}

/// Decides plain-English policies: the stub, an HTTP judge, or an LLM backend.
#[async_trait]
pub trait Judge: Send + Sync {
    fn name(&self) -> &str;
    async fn judge(&self, tenant_id: &str, request: &ClearanceRequest, policy: &PolicyVersion)
        -> Result<Judgement, JudgeError>;
}
