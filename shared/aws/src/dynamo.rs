//! DynamoDB hot state, one on-demand table (`pk`, `sk`, TTL attribute `expires_at`):
//! burned token ids (`jti#<jti>`), consume-token idempotency records (`idem#<scope>#<key>`), and
//! per-key rate-limit buckets (`rate#<key id>`, conditional writes on a version number).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::model::IdempotencyRecord;
use ledgix_core::ports::{RateLimiter, UsageMeter};
use ledgix_core::ratelimit::{take, Bucket, RateDecision, RateLimit};

use crate::pg::{corrupt, unavailable};

/// How long consume-token answers are kept for replay.
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
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
        idempotency: Option<&IdempotencyRecord>,
    ) -> Result<(), StoreError> {
        let mut items = Vec::new();
        // Idempotency first: its conflict must win, so a retried consume replays instead of reporting 409.
        if let Some(record) = idempotency {
            let mut item = Self::key(format!("idem#{}#{}", record.scope, record.key), "idem");
            item.insert(
                "body".into(),
                s(serde_json::to_string(record).map_err(corrupt)?),
            );
            item.insert(
                "expires_at".into(),
                n(chrono::Utc::now().timestamp() + IDEMPOTENCY_TTL_SECONDS),
            );
            items.push(self.conditional_put(item)?);
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

    pub async fn idempotency(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(format!("idem#{scope}#{key}"), "idem")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        match out
            .item()
            .and_then(|i| i.get("body"))
            .and_then(|b| b.as_s().ok())
        {
            Some(body) => Ok(Some(serde_json::from_str(body).map_err(corrupt)?)),
            None => Ok(None),
        }
    }
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
                .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(&e)))?;
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
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(&e)))?;
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
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(&e)))?;
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
