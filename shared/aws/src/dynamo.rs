//! DynamoDB hot state, one on-demand table (`pk`, `sk`, TTL attribute `expires_at`):
//! burned token ids (`jti#<jti>`) with their consume answers (`idem#<tenant>#consume#<key>`), copies of other
//! idempotent answers (`answer#<tenant>#<key>`; tenant ids hold no `#`, so a key can never reach into another
//! tenant's or the consume answers), clearance status copies
//! (`status#<tenant>#<request id>`), per-key rate-limit buckets (`rate#<key id>`, conditional writes on a
//! version number) and usage counters (`usage#<tenant>`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::model::IdempotencyRecord;
use ledgix_core::ports::{RateLimiter, UsageMeter};
use ledgix_core::ratelimit::{take, Bucket, RateDecision, RateLimit};
use ledgix_core::service::CONSUME_SCOPE_SUFFIX;

use crate::pg::unavailable;

/// How long idempotent answers are kept for replay (the tenant database keeps them for good; see tenant_store).
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
/// How long a clearance's status copy is kept; later reads go to the tenant database (and copy it back).
const STATUS_TTL_SECONDS: i64 = 7 * 24 * 3600;
/// Attempts at a contended rate-limit bucket before giving up (fail closed: 503).
const RATE_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct HotTable {
    client: Client,
    table: String,
    rate_ttl_seconds: i64,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

impl HotTable {
    pub fn new(client: Client, table: impl Into<String>, rate_ttl_seconds: i64) -> Self {
        HotTable {
            client,
            table: table.into(),
            rate_ttl_seconds,
        }
    }

    fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
    }

    /// Burn `jti` and, atomically, record the consume answer under its idempotency key.
    pub async fn burn_jti(
        &self,
        tenant_id: &str,
        jti: &str,
        expires_at: i64,
        idempotency: Option<(&IdempotencyRecord, String)>,
    ) -> Result<(), StoreError> {
        let mut items = Vec::new();
        // Idempotency first: its conflict must win, so a retried consume replays instead of reporting 409.
        if let Some((record, sealed_body)) = &idempotency {
            items.push(self.conditional_put(Self::idempotency_item(
                &record.scope,
                &record.key,
                sealed_body.clone(),
            ))?);
        }
        let mut item = Self::key(format!("jti#{jti}"), "jti");
        item.insert("tenant_id".into(), s(tenant_id));
        // Kept a day past expiry: a replay of an expired token fails verification anyway.
        item.insert("expires_at".into(), n(expires_at + 86_400));
        items.push(self.conditional_put(item)?);
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let service = e.into_service_error();
                if let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) = &service {
                    let reasons: Vec<Option<&str>> = c.cancellation_reasons().iter().map(|r| r.code()).collect();
                    let failed = |i: usize| reasons.get(i).copied().flatten() == Some("ConditionalCheckFailed");
                    if idempotency.is_some() && failed(0) {
                        return Err(StoreError::Conflict(Conflict::IdempotencyKey));
                    }
                    if failed(reasons.len().saturating_sub(1)) {
                        return Err(StoreError::Conflict(Conflict::JtiBurned));
                    }
                }
                Err(unavailable(format!(
                    "dynamodb transaction failed: {service}"
                )))
            }
        }
    }

    fn conditional_put(
        &self,
        item: HashMap<String, AttributeValue>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn answer_key(scope: &str, key: &str) -> HashMap<String, AttributeValue> {
        match scope.strip_suffix(CONSUME_SCOPE_SUFFIX) {
            Some(tenant_id) => Self::key(format!("idem#{tenant_id}#consume#{key}"), "idem"),
            None => Self::key(format!("answer#{scope}#{key}"), "answer"),
        }
    }

    fn idempotency_item(
        scope: &str,
        key: &str,
        sealed_body: String,
    ) -> HashMap<String, AttributeValue> {
        let mut item = Self::answer_key(scope, key);
        item.insert("body".into(), s(sealed_body));
        item.insert(
            "expires_at".into(),
            n(chrono::Utc::now().timestamp() + IDEMPOTENCY_TTL_SECONDS),
        );
        item
    }

    /// Copy an answer the tenant database committed. Unconditional: an answer never changes once committed.
    pub async fn put_idempotency(
        &self,
        scope: &str,
        key: &str,
        sealed_body: String,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::idempotency_item(scope, key, sealed_body)))
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(&e)))?;
        Ok(())
    }

    /// The stored (possibly sealed) answer for an idempotency key.
    pub async fn idempotency_body(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let item = self.get(Self::answer_key(scope, key)).await?;
        Ok(item.and_then(|mut i| match i.remove("body") {
            Some(AttributeValue::S(body)) => Some(body),
            _ => None,
        }))
    }

    async fn get(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(&e)))?;
        Ok(out.item)
    }

    // ----- clearance status copies ---------------------------------------------------------------------
    //
    // The tenant database is the record; this item is a copy that `GET /clearance-status` polls without
    // touching it. `rank` (processing 0 < pending_review 1 < approved/denied 2, the only order a clearance
    // moves in) keeps a late copy from overwriting a newer one. `inflight` counts updates that have marked the
    // item before committing and not yet copied their result: while it is above zero the copy may be older
    // than the record, so readers go to the database. A process that dies mid-update leaves the mark; reads of
    // that request then go to the database until the item expires.

    fn status_key(tenant_id: &str, request_id: &str) -> HashMap<String, AttributeValue> {
        Self::key(format!("status#{tenant_id}#{request_id}"), "status")
    }

    fn status_expiry() -> AttributeValue {
        n(chrono::Utc::now().timestamp() + STATUS_TTL_SECONDS)
    }

    /// Mark the copy as possibly stale before a clearance update commits.
    pub async fn mark_status_changing(
        &self,
        tenant_id: &str,
        request_id: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::status_key(tenant_id, request_id)))
            .update_expression("SET expires_at = :e ADD #inflight :one")
            .expression_attribute_names("#inflight", "inflight")
            .expression_attribute_values(":e", Self::status_expiry())
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(&e)))?;
        Ok(())
    }

    /// Copy a committed status (unless a higher-ranked one is already there); `settles_mark` also takes back
    /// this writer's `mark_status_changing`.
    pub async fn put_status(
        &self,
        tenant_id: &str,
        request_id: &str,
        sealed_body: String,
        rank: u8,
        settles_mark: bool,
    ) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::status_key(tenant_id, request_id)))
            .condition_expression("attribute_not_exists(#rank) OR #rank <= :rank")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_names("#body", "body")
            .expression_attribute_values(":rank", n(rank))
            .expression_attribute_values(":body", s(sealed_body))
            .expression_attribute_values(":e", Self::status_expiry());
        update = if settles_mark {
            update
                .update_expression(
                    "SET #body = :body, #rank = :rank, expires_at = :e ADD #inflight :minus",
                )
                .expression_attribute_names("#inflight", "inflight")
                .expression_attribute_values(":minus", n(-1))
        } else {
            update.update_expression("SET #body = :body, #rank = :rank, expires_at = :e")
        };
        match update.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if !e.is_conditional_check_failed_exception() {
                    return Err(unavailable(DisplayErrorContext(&e)));
                }
                if settles_mark {
                    self.settle_mark(tenant_id, request_id).await?;
                }
                Ok(())
            }
        }
    }

    /// Take back a mark without copying anything (a newer status is already there).
    pub async fn settle_mark(&self, tenant_id: &str, request_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::status_key(tenant_id, request_id)))
            .update_expression("ADD #inflight :minus")
            .expression_attribute_names("#inflight", "inflight")
            .expression_attribute_values(":minus", n(-1))
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(&e)))?;
        Ok(())
    }

    /// Copy a status read from the database into a missing item. Conditional on absence: an update that began
    /// after the read has marked (so created) the item, and then its own copy wins.
    pub async fn restore_status(
        &self,
        tenant_id: &str,
        request_id: &str,
        sealed_body: String,
        rank: u8,
    ) -> Result<(), StoreError> {
        let mut item = Self::status_key(tenant_id, request_id);
        item.insert("body".into(), s(sealed_body));
        item.insert("rank".into(), n(rank));
        item.insert("expires_at".into(), Self::status_expiry());
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Ok(())
                } else {
                    Err(unavailable(DisplayErrorContext(&e)))
                }
            }
        }
    }

    pub async fn status(&self, tenant_id: &str, request_id: &str) -> Result<HotStatus, StoreError> {
        let Some(mut item) = self.get(Self::status_key(tenant_id, request_id)).await? else {
            return Ok(HotStatus::Absent);
        };
        let inflight = item
            .get("inflight")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        if inflight > 0 {
            return Ok(HotStatus::Changing);
        }
        Ok(match item.remove("body") {
            Some(AttributeValue::S(body)) => HotStatus::Current(body),
            _ => HotStatus::Absent,
        })
    }
}

/// What the status copy of a clearance says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HotStatus {
    /// No copy: read the database (and copy it back).
    Absent,
    /// An update is (or was, if its process died) between marking and copying: read the database.
    Changing,
    /// The (possibly sealed) view, equal to the last committed status.
    Current(String),
}

#[async_trait]
impl RateLimiter for HotTable {
    async fn take(&self, principal: &str, limit: RateLimit) -> Result<RateDecision, StoreError> {
        let key = Self::key(format!("rate#{principal}"), "bucket");
        for _ in 0..RATE_ATTEMPTS {
            let current = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| unavailable(DisplayErrorContext(&e)))?;
            let item = current.item();
            let number = |name: &str| -> Option<f64> { item?.get(name)?.as_n().ok()?.parse().ok() };
            let version = number("version").map(|v| v as i64);
            let bucket = match (number("tokens"), number("updated_at_ms")) {
                (Some(tokens), Some(updated)) => Some(Bucket {
                    tokens,
                    updated_at_ms: updated as i64,
                }),
                _ => None,
            };
            let now_ms = chrono::Utc::now().timestamp_millis();
            let (next, decision) = take(limit, bucket, now_ms);
            let mut new_item = key.clone();
            new_item.insert("tokens".into(), n(next.tokens));
            new_item.insert("updated_at_ms".into(), n(next.updated_at_ms));
            new_item.insert("version".into(), n(version.unwrap_or(0) + 1));
            new_item.insert(
                "expires_at".into(),
                n(now_ms / 1000 + self.rate_ttl_seconds),
            );
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(new_item));
            put = match version {
                Some(v) => put
                    .condition_expression("version = :v")
                    .expression_attribute_values(":v", n(v)),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
            match put.send().await {
                Ok(_) => return Ok(decision),
                Err(e) => {
                    let e = e.into_service_error();
                    if !e.is_conditional_check_failed_exception() {
                        return Err(unavailable(e));
                    }
                }
            }
        }
        Err(unavailable("rate-limit bucket is contended; retry"))
    }
}

/// Usage counters: `usage#<tenant>` / `<day>#<metric>`, incremented atomically with ADD.
#[async_trait]
impl UsageMeter for HotTable {
    async fn record(
        &self,
        tenant_id: &str,
        day: &str,
        metric: &str,
        count: u64,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(
                format!("usage#{tenant_id}"),
                &format!("{day}#{metric}"),
            )))
            .update_expression("ADD #count :n")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":n", n(count))
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(&e)))?;
        Ok(())
    }

    async fn usage(&self, tenant_id: &str, day: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :day)")
            .expression_attribute_values(":pk", s(format!("usage#{tenant_id}")))
            .expression_attribute_values(":day", s(format!("{day}#")))
            .send()
            .await
            .map_err(|e| unavailable(DisplayErrorContext(&e)))?;
        let mut counters: Vec<(String, u64)> = out
            .items()
            .iter()
            .filter_map(|item| {
                let metric = item.get("sk")?.as_s().ok()?.split_once('#')?.1.to_string();
                let count = item.get("count")?.as_n().ok()?.parse().ok()?;
                Some((metric, count))
            })
            .collect();
        counters.sort();
        Ok(counters)
    }
}
