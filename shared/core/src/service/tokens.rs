//! Approval tokens: minting for an approved call, re-minting for the SDK's decision cache, consuming once.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::idempotency::AnswerScope;
use super::{known_id, Idempotency, Principal, Vault};
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::hashing::tool_args_hash;
use crate::model::{now_rfc3339, ClearanceRecord, ClearanceStatus, DecisionSource};
use crate::ports::Write;
use crate::token::{self, ApprovalClaims, PublicKey};
use crate::tool_args;

/// `POST /mint-token` as the SDK's decision cache sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct MintRequest {
    pub tool_name: String,
    #[serde(
        default = "crate::model::empty_object",
        deserialize_with = "crate::tool_args::strict"
    )]
    pub tool_args: Value,
    #[serde(default)]
    pub agent_id: String,
    #[serde(default)]
    pub session_id: String,
    pub original_request_id: String,
    #[serde(default)]
    pub policy_version_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MintView {
    pub token: String,
    pub request_id: String,
    pub original_request_id: String,
    pub reason: String,
    pub status: String,
    pub decision_status: String,
    pub policy_version_id: String,
    pub policy_content_hash: String,
    pub expires_at: i64,
}

/// `POST /consume-token`: the token and the exact call it is presented for. Both are required: a protected
/// service that forgot them would accept any of the tenant's tokens for any call.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumeRequest {
    pub token: String,
    pub tool_name: String,
    #[serde(deserialize_with = "crate::tool_args::strict")]
    pub tool_args: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsumeView {
    pub consumed: bool,
    pub jti: String,
    pub claims: ApprovalClaims,
}

impl Vault {
    /// Mint and attach a fresh approval token to an approved record.
    pub(super) async fn attach_token(&self, record: &mut ClearanceRecord) -> VaultResult<()> {
        let (token, claims) = self.mint(record, &record.request_id.clone()).await?;
        record.token = Some(token);
        record.jti = Some(claims.jti);
        Ok(())
    }

    async fn mint(
        &self,
        record: &ClearanceRecord,
        request_id: &str,
    ) -> VaultResult<(String, ApprovalClaims)> {
        let iat = chrono::Utc::now().timestamp();
        let claims = ApprovalClaims {
            iss: self.settings.jwt_issuer.clone(),
            aud: self.settings.jwt_audience.clone(),
            sub: token::TOKEN_SUBJECT.into(),
            iat,
            exp: iat + self.settings.jwt_ttl_seconds,
            jti: uuid::Uuid::new_v4().to_string(),
            tool: record.request.tool_name.clone(),
            agent_id: record.request.agent_id.clone(),
            session_id: record.request.session_id.clone(),
            policy_id: record.policy_id.clone(),
            decision: "approved".into(),
            tool_args_hash: tool_args_hash(&record.request.tool_args)
                .map_err(|e| VaultError::InvalidRequest(e.to_string()))?,
            tenant_id: record.tenant_id.clone(),
            request_id: request_id.to_string(),
        };
        let key = self.ports.signer.approval_key().await?;
        let input = token::signing_input(key.kid(), &claims)?;
        let signature = key.sign(input.as_bytes()).await?;
        Ok((token::assemble(&input, &signature), claims))
    }

    /// A fresh token for a cached approval (the SDK's decision cache). Only for the exact call that was
    /// approved, only for an approval by the rules (a reviewer's or the judge's covers one call), only while
    /// the policy version that approved it is current and the root approval of the chain is younger than
    /// VAULT_MINT_MAX_AGE_SECONDS, and only if every applicable policy approves the call now.
    pub async fn mint_token(
        &self,
        principal: &Principal,
        request: MintRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<MintView> {
        let tenant_id = principal.tenant_id.as_str();
        self.replay(AnswerScope::Tenant(tenant_id), idem).await?;
        tool_args::check(&request.tool_args)?;
        known_id(&request.original_request_id, "original clearance request")?;
        let original = self
            .ports
            .store
            .clearance(tenant_id, &request.original_request_id)
            .await?
            .ok_or(VaultError::NotFound("original clearance request"))?;
        if original.status != ClearanceStatus::Approved {
            return Err(VaultError::Conflict(
                "the original request is not approved".into(),
            ));
        }
        if !original.mintable() {
            return Err(VaultError::Conflict(
                "the original request was approved by a reviewer or the judge for that one call; request clearance again"
                    .into(),
            ));
        }
        let same_args = tool_args_hash(&request.tool_args).ok()
            == tool_args_hash(&original.request.tool_args).ok();
        if request.tool_name != original.request.tool_name || !same_args {
            return Err(VaultError::ToolArgsMismatch(
                "tool_name and tool_args must match the approved request".into(),
            ));
        }
        if !request.agent_id.is_empty() && request.agent_id != original.request.agent_id {
            return Err(VaultError::ToolArgsMismatch(
                "agent_id must match the approved request".into(),
            ));
        }
        if !request.policy_version_id.is_empty()
            && request.policy_version_id != original.policy_version_id
        {
            return Err(VaultError::Conflict(
                "policy_version_id does not match the approved request".into(),
            ));
        }
        let root_approved_at = self.root_approval(&original)?;
        let rules = self.tenant_rules(tenant_id).await?;
        let current = rules
            .policies
            .iter()
            .find(|p| p.version.policy_id == original.policy_id);
        if current.map(|p| p.version.version_id.as_str())
            != Some(original.policy_version_id.as_str())
        {
            return Err(VaultError::Conflict(
                "the policy changed since this approval; request clearance again".into(),
            ));
        }
        let mut call = original.request.clone();
        if !request.session_id.is_empty() {
            call.session_id = request.session_id.clone();
        }
        // The rules as they are now, on the exact call the token will authorise: every applicable policy.
        let ruling = self.rule_on(tenant_id, &rules.policies, &call).await;
        if ruling.decision.status != ClearanceStatus::Approved {
            return Err(VaultError::Conflict(format!(
                "the current policies do not approve this call (now {}); request clearance again",
                ruling.decision.status.as_str()
            )));
        }

        let mut minted = original.clone();
        minted.request_id = crate::model::new_request_id();
        minted.request = call;
        minted.decided_by = Some(DecisionSource::MintToken);
        minted.policy_id = ruling.policy_id;
        minted.policy_version_id = ruling.policy_version_id;
        minted.policy_content_hash = ruling.policy_content_hash;
        minted.policies_consulted = ruling.consulted;
        minted.root_approved_at = Some(root_approved_at.clone());
        minted.requested_by = principal.key_id.clone();
        minted.created_at = now_rfc3339();
        minted.updated_at = minted.created_at.clone();
        let (token, claims) = self.mint(&minted, &minted.request_id.clone()).await?;
        minted.token = Some(token.clone());
        minted.jti = Some(claims.jti.clone());
        let event = self
            .ledger_event(
                &minted,
                "token.minted",
                &[],
                json!({
                    "original_request_id": original.request_id,
                    "root_approved_at": root_approved_at,
                }),
            )
            .await?;
        let view = MintView {
            token,
            request_id: minted.request_id.clone(),
            original_request_id: original.request_id.clone(),
            reason: original.reason.clone(),
            status: "approved".into(),
            decision_status: "approved".into(),
            policy_version_id: minted.policy_version_id.clone(),
            policy_content_hash: minted.policy_content_hash.clone(),
            expires_at: claims.exp,
        };
        let writes = vec![Write::InsertClearance(minted), Write::AppendEvent(event)];
        self.commit_answered(tenant_id, writes, idem, 200, &view)
            .await?;
        self.meter(tenant_id, "token.minted").await;
        Ok(view)
    }

    /// When the rules approval at the root of `original`'s mint chain was made, if it is recent enough to
    /// mint from (VAULT_MINT_MAX_AGE_SECONDS). A minted record carries its root's time; a rules approval is
    /// its own root.
    fn root_approval(&self, original: &ClearanceRecord) -> VaultResult<String> {
        let root = match (&original.root_approved_at, original.decided_by) {
            (Some(root), _) => root.clone(),
            (None, Some(DecisionSource::Rego)) => original.updated_at.clone(),
            // A minted record from before roots were recorded: its chain's age is unknown.
            _ => {
                return Err(VaultError::Conflict(
                    "the age of this approval is unknown; request clearance again".into(),
                ))
            }
        };
        let approved_at = chrono::DateTime::parse_from_rfc3339(&root).map_err(|e| {
            VaultError::Internal(format!("stored approval time {root:?} is unreadable: {e}"))
        })?;
        let age = chrono::Utc::now().signed_duration_since(approved_at);
        if age > chrono::Duration::seconds(self.settings.mint_max_age_seconds) {
            return Err(VaultError::Conflict(format!(
                "the approval is older than {} seconds (VAULT_MINT_MAX_AGE_SECONDS); request clearance again",
                self.settings.mint_max_age_seconds
            )));
        }
        Ok(root)
    }

    /// Burn a token's jti: exactly one caller ever gets 200 for it.
    pub async fn consume_token(
        &self,
        principal: &Principal,
        request: ConsumeRequest,
        idem: Option<&Idempotency>,
    ) -> VaultResult<ConsumeView> {
        let tenant_id = principal.tenant_id.as_str();
        let scope = AnswerScope::Consume(tenant_id);
        self.replay(scope, idem).await?;
        tool_args::check(&request.tool_args)?;
        let keys = self.public_keys().await?;
        let claims = token::verify(
            &request.token,
            &keys,
            &self.settings.jwt_issuer,
            &self.settings.jwt_audience,
        )?;
        if claims.tenant_id != principal.tenant_id {
            return Err(VaultError::InvalidToken);
        }
        if request.tool_name != claims.tool {
            return Err(VaultError::ToolArgsMismatch(
                "tool_name does not match the token".into(),
            ));
        }
        let hash = tool_args_hash(&request.tool_args)
            .map_err(|e| VaultError::InvalidRequest(e.to_string()))?;
        if hash != claims.tool_args_hash {
            return Err(VaultError::ToolArgsMismatch(
                "tool_args do not hash to the token's tool_args_hash".into(),
            ));
        }
        let view = ConsumeView {
            consumed: true,
            jti: claims.jti.clone(),
            claims,
        };
        // The answer is recorded with the burn: a retried consume replays its 200 rather than reporting its own
        // burn as a replay.
        let answer = Self::answer(scope, idem, 200, &view)?;
        match self
            .ports
            .store
            .burn_jti(tenant_id, &view.jti, view.claims.exp, answer.as_ref())
            .await
        {
            Ok(()) => {
                self.meter(tenant_id, "token.consumed").await;
                Ok(view)
            }
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.replay_after_conflict(scope, idem).await)
            }
            Err(StoreError::Conflict(Conflict::JtiBurned)) => Err(VaultError::TokenReplayed),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn jwks(&self) -> VaultResult<jsonwebtoken::jwk::JwkSet> {
        Ok(token::jwks(&self.public_keys().await?))
    }

    /// The keys the JWKS lists now: every root key, and each delegated key until the tokens it can have
    /// signed have expired. Tokens are verified against the same set.
    pub async fn public_keys(&self) -> VaultResult<Vec<PublicKey>> {
        let now = chrono::Utc::now();
        Ok(self
            .ports
            .signer
            .published_keys()
            .await?
            .iter()
            .filter(|k| k.in_jwks(now, self.settings.jwt_ttl_seconds))
            .map(|k| k.public_key())
            .collect())
    }
}
