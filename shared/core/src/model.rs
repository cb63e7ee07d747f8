//! Domain records: clearances, policies, tenants, API keys, settings.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Categorical confidence, ordered from weakest to strongest.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum ConfidenceBucket {
    #[default]
    None,
    Low,
    Medium,
    High,
    ExtraHigh,
}

impl ConfidenceBucket {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfidenceBucket::None => "none",
            ConfidenceBucket::Low => "low",
            ConfidenceBucket::Medium => "medium",
            ConfidenceBucket::High => "high",
            ConfidenceBucket::ExtraHigh => "extra_high",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "none" => ConfidenceBucket::None,
            "low" => ConfidenceBucket::Low,
            "medium" => ConfidenceBucket::Medium,
            "high" => ConfidenceBucket::High,
            "extra_high" => ConfidenceBucket::ExtraHigh,
            _ => return None,
        })
    }

    /// The legacy `confidence` float of SDK ledger entries: the bucket's midpoint.
    pub fn midpoint(self) -> f64 {
        match self {
            ConfidenceBucket::None => 0.0,
            ConfidenceBucket::Low => 0.3,
            ConfidenceBucket::Medium => 0.6,
            ConfidenceBucket::High => 0.8,
            ConfidenceBucket::ExtraHigh => 0.95,
        }
    }
}

/// Where a clearance request is in its lifecycle (`status` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearanceStatus {
    Processing,
    Approved,
    Denied,
    PendingReview,
}

impl ClearanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClearanceStatus::Processing => "processing",
            ClearanceStatus::Approved => "approved",
            ClearanceStatus::Denied => "denied",
            ClearanceStatus::PendingReview => "pending_review",
        }
    }

    /// `decision_status` on the wire. Nothing is approved until decided, so `processing` reads as denied
    /// (fail closed); pending review means the policy allows it subject to a human.
    pub fn decision_status(self) -> &'static str {
        match self {
            ClearanceStatus::Approved => "approved",
            ClearanceStatus::PendingReview => "approved_pending_review",
            ClearanceStatus::Processing | ClearanceStatus::Denied => "denied",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, ClearanceStatus::Approved | ClearanceStatus::Denied)
    }

    /// Position in the only order a clearance moves in: processing → pending review → approved/denied.
    pub fn rank(self) -> u8 {
        match self {
            ClearanceStatus::Processing => 0,
            ClearanceStatus::PendingReview => 1,
            ClearanceStatus::Approved | ClearanceStatus::Denied => 2,
        }
    }
}

/// What the agent asked for, as `ledgix-python`'s `ClearanceRequest` sends it. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClearanceRequest {
    pub tool_name: String,
    /// Read by [`crate::tool_args::strict`]: a duplicate key is refused, never resolved.
    #[serde(
        default = "empty_object",
        deserialize_with = "crate::tool_args::strict"
    )]
    pub tool_args: Value,
    #[serde(default = "default_agent")]
    pub agent_id: String,
    #[serde(default)]
    pub session_id: String,
    #[serde(default = "empty_object")]
    pub context: Value,
    #[serde(default)]
    pub human_principal: Option<String>,
    #[serde(default)]
    pub parent_jti: Option<String>,
    #[serde(default)]
    pub destination_uri: Option<String>,
    #[serde(default)]
    pub destination_provider: Option<String>,
    #[serde(default)]
    pub destination_account_ref: Option<String>,
    #[serde(default)]
    pub data_categories: Option<Vec<String>>,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub processing_register_ref: Option<String>,
    #[serde(default)]
    pub dataset_ref: Option<String>,
}

pub fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn default_agent() -> String {
    "default-agent".to_string()
}

/// How a decision was reached; recorded in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionSource {
    NoPolicy,
    Rego,
    Judge,
    Reviewer,
    MintToken,
    /// The requesting agent withdrew its own pending request.
    Agent,
    /// No reviewer decided before the tenant's review deadline.
    Deadline,
}

/// The stored state of one clearance request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClearanceRecord {
    pub tenant_id: String,
    pub request_id: String,
    pub status: ClearanceStatus,
    pub request: ClearanceRequest,
    pub policy_id: String,
    pub policy_version_id: String,
    pub policy_content_hash: String,
    pub reason: String,
    pub reason_code: Option<String>,
    pub confidence_bucket: ConfidenceBucket,
    pub minimum_confidence_bucket: ConfidenceBucket,
    pub decided_by: Option<DecisionSource>,
    /// The approval token, once approved. Stored so status polls return it; never logged.
    pub token: Option<String>,
    pub jti: Option<String>,
    /// Key id of the API key that asked for this clearance (empty on records made before it was recorded).
    #[serde(default)]
    pub requested_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Every policy that decided this call, with what each said (deny > review > judge > approve).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies_consulted: Vec<ConsultedPolicy>,
    /// When the rules approval at the root of a mint chain was made: `/mint-token` never reaches past
    /// VAULT_MINT_MAX_AGE_SECONDS from it. Set on minted records only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_approved_at: Option<String>,
}

/// One policy consulted for a decision, as recorded in the clearance and its ledger event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsultedPolicy {
    pub policy_id: String,
    pub version: i64,
    pub policy_version_id: String,
    /// `approve`, `judge`, `review` or `deny`.
    pub decision: String,
}

impl ClearanceRecord {
    /// Approved by the rules alone (Rego, or a mint that re-ran them), so `/mint-token` may re-mint it.
    pub fn mintable(&self) -> bool {
        self.status == ClearanceStatus::Approved
            && matches!(
                self.decided_by,
                Some(DecisionSource::Rego | DecisionSource::MintToken)
            )
    }
}

/// A registered policy version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyVersion {
    pub tenant_id: String,
    pub policy_id: String,
    pub version: i64,
    pub version_id: String,
    pub content_hash: String,
    pub description: String,
    pub rules: Vec<String>,
    pub tools: Vec<String>,
    pub rego: Option<String>,
    pub created_at: String,
}

impl PolicyVersion {
    pub fn applies_to(&self, tool_name: &str) -> bool {
        self.tools.is_empty() || self.tools.iter().any(|t| t == tool_name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tenant {
    pub tenant_id: String,
    pub name: String,
    pub created_at: String,
}

/// An API key as stored: only its SHA-256 hash, never the key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub tenant_id: String,
    pub key_hash: String,
    pub created_at: String,
    pub revoked: bool,
    /// What the key may do; keys made before roles existed are stored without and keep every role.
    pub roles: Vec<crate::roles::Role>,
    /// A label the tenant gave the key (empty when none).
    pub name: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReviewSettings {
    pub minimum_confidence_bucket: ConfidenceBucket,
    /// A pending review older than this is denied (`review_expired`). Settings stored before it existed read
    /// as the default.
    #[serde(default = "default_review_deadline")]
    pub review_deadline_seconds: u64,
}

/// 24 hours.
pub const DEFAULT_REVIEW_DEADLINE_SECONDS: u64 = 24 * 3600;

fn default_review_deadline() -> u64 {
    DEFAULT_REVIEW_DEADLINE_SECONDS
}

impl Default for ReviewSettings {
    fn default() -> Self {
        ReviewSettings {
            minimum_confidence_bucket: ConfidenceBucket::High,
            review_deadline_seconds: DEFAULT_REVIEW_DEADLINE_SECONDS,
        }
    }
}

/// A completed response kept under its idempotency key, replayed verbatim on retry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Tenant id, or `admin` for administration routes.
    pub scope: String,
    pub key: String,
    /// SHA-256 of method, path and raw body: a retry must be the same request.
    pub request_hash: String,
    pub status_code: u16,
    pub response_body: String,
    pub created_at: String,
}

/// A new clearance's request id: a UUIDv7 (RFC 9562), time-ordered with 74 random bits. Stores index
/// clearances and ledger events by it; ids that grow with time are appended at the end of those indexes,
/// where random ones dirty a different index page per request (a page written to the WAL and checkpointed
/// again for every approval). A request id is no secret: every read of it needs the tenant's key.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Current UTC time as RFC 3339 with microseconds, the ledger's timestamp format.
pub fn now_rfc3339() -> String {
    rfc3339(chrono::Utc::now())
}

/// The vault's timestamp format: RFC 3339, UTC, microseconds.
pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The `ClearanceResponse` wire shape of ledgix-python.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClearanceView {
    pub status: String,
    pub decision_status: String,
    pub requires_manual_review: bool,
    pub token: Option<String>,
    pub reason: String,
    pub request_id: String,
    pub confidence_bucket: String,
    pub minimum_confidence_bucket: String,
    pub policy_version_id: Option<String>,
    pub policy_content_hash: Option<String>,
    pub reason_code: Option<String>,
    /// Ledgix extension: key id of the API key that asked (absent on records made before it was recorded).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requested_by: String,
}

impl From<&ClearanceRecord> for ClearanceView {
    fn from(r: &ClearanceRecord) -> Self {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        ClearanceView {
            status: r.status.as_str().into(),
            decision_status: r.status.decision_status().into(),
            requires_manual_review: r.status == ClearanceStatus::PendingReview,
            token: if r.status == ClearanceStatus::Approved {
                r.token.clone()
            } else {
                None
            },
            reason: r.reason.clone(),
            request_id: r.request_id.clone(),
            confidence_bucket: r.confidence_bucket.as_str().into(),
            minimum_confidence_bucket: r.minimum_confidence_bucket.as_str().into(),
            // Only a rules approval may seed the SDK's decision cache (which caches an approval only with a
            // policy_version_id): a reviewer's or judge's approval covers one call, and /mint-token refuses it.
            policy_version_id: if r.status == ClearanceStatus::Approved && !r.mintable() {
                None
            } else {
                non_empty(&r.policy_version_id)
            },
            policy_content_hash: non_empty(&r.policy_content_hash),
            reason_code: r.reason_code.clone(),
            requested_by: r.requested_by.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Request ids are version 7 and, within a process, ordered by creation: the property the stores' indexes
    /// rely on to append instead of inserting at random.
    #[test]
    fn request_ids_are_uuidv7_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| super::new_request_id()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a uuid");
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
