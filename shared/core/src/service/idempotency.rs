//! Idempotency in one place. Every POST's `Idempotency-Key` is a parameter of its use case: the use case replays
//! a stored answer (or refuses a key reused for another request) before doing any work, and records its own
//! answer in the same atomic write as its effect, so a retry gets the same response and writes nothing twice.

use serde::Serialize;

use super::Vault;
use crate::error::{Conflict, StoreError, VaultError, VaultResult};
use crate::model::{now_rfc3339, IdempotencyRecord};
use crate::ports::{Write, ADMIN_SCOPE};

/// An `Idempotency-Key` with the hash of the exact request it arrived on.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// Where a use case's answers are kept: each next to the write it answers for.
#[derive(Debug, Clone, Copy)]
pub(super) enum AnswerScope<'a> {
    /// Requests that write the tenant's ledger or settings: committed with those writes.
    Tenant(&'a str),
    /// `/consume-token`: recorded with the token burn.
    Consume(&'a str),
    /// Administration: recorded with the control-plane write.
    Admin,
    /// A tenant's own key management (`/api-keys`): recorded with the control-plane write.
    TenantKeys(&'a str),
}

impl AnswerScope<'_> {
    /// The scope named in stored records.
    fn name(&self) -> String {
        match self {
            AnswerScope::Tenant(tenant_id) => tenant_id.to_string(),
            AnswerScope::Consume(tenant_id) => format!("{tenant_id}#consume"),
            AnswerScope::Admin => ADMIN_SCOPE.to_string(),
            AnswerScope::TenantKeys(tenant_id) => format!("keys#{tenant_id}"),
        }
    }
}

impl Vault {
    /// `Err(Replay)` with the stored answer when this exact request was answered before, 422 when the key was
    /// used for a different request, `Ok` when there is nothing to replay.
    pub(super) async fn replay(
        &self,
        scope: AnswerScope<'_>,
        idem: Option<&Idempotency>,
    ) -> VaultResult<()> {
        let Some(idem) = idem else {
            return Ok(());
        };
        let stored = match scope {
            AnswerScope::Tenant(tenant_id) => {
                self.ports.store.idempotency(tenant_id, &idem.key).await?
            }
            AnswerScope::Consume(tenant_id) => {
                self.ports
                    .store
                    .consume_answer(tenant_id, &idem.key)
                    .await?
            }
            AnswerScope::Admin | AnswerScope::TenantKeys(_) => {
                self.ports
                    .control
                    .idempotency(&scope.name(), &idem.key)
                    .await?
            }
        };
        match stored {
            None => Ok(()),
            Some(record) if record.request_hash == idem.request_hash => {
                Err(VaultError::Replay(Box::new(record)))
            }
            Some(_) => Err(VaultError::IdempotencyKeyReused),
        }
    }

    /// A write refused with `Conflict::IdempotencyKey` lost a race to a request with the same key: answer as
    /// that request did (the store returns its record once it has refused the key).
    pub(super) async fn replay_after_conflict(
        &self,
        scope: AnswerScope<'_>,
        idem: Option<&Idempotency>,
    ) -> VaultError {
        match idem {
            None => VaultError::Internal("idempotency conflict without a key".into()),
            Some(_) => match self.replay(scope, idem).await {
                Err(e) => e,
                Ok(()) => {
                    VaultError::Internal("idempotency conflict without a stored record".into())
                }
            },
        }
    }

    /// The record that stores `body` as the answer (with `status`) to the request behind `idem`.
    pub(super) fn answer<T: Serialize>(
        scope: AnswerScope<'_>,
        idem: Option<&Idempotency>,
        status: u16,
        body: &T,
    ) -> VaultResult<Option<IdempotencyRecord>> {
        idem.map(|idem| {
            Ok(IdempotencyRecord {
                scope: scope.name(),
                key: idem.key.clone(),
                request_hash: idem.request_hash.clone(),
                status_code: status,
                response_body: serde_json::to_string(body)
                    .map_err(|e| VaultError::Internal(e.to_string()))?,
                created_at: now_rfc3339(),
            })
        })
        .transpose()
    }

    /// Commit tenant writes together with the answer `body` (status 200 or 201) to the request behind `idem`.
    /// A lost idempotency race answers with the winner's stored response.
    pub(super) async fn commit_answered<T: Serialize>(
        &self,
        tenant_id: &str,
        mut writes: Vec<Write>,
        idem: Option<&Idempotency>,
        status: u16,
        body: &T,
    ) -> VaultResult<Vec<i64>> {
        let scope = AnswerScope::Tenant(tenant_id);
        writes.extend(Self::answer(scope, idem, status, body)?.map(Write::PutIdempotency));
        if writes.is_empty() {
            // Nothing to make durable here (e.g. settings kept outside the tenant's store, asked without a key).
            return Ok(vec![]);
        }
        match self.ports.store.commit(tenant_id, writes).await {
            Ok(seqs) => Ok(seqs),
            Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {
                Err(self.replay_after_conflict(scope, idem).await)
            }
            Err(e) => Err(e.into()),
        }
    }
}
