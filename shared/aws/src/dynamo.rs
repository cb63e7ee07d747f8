//! DynamoDB hot state, one on-demand table (`pk`, `sk`, TTL attribute `expires_at`):
//! burned token ids (`jti#<jti>`) with their consume answers (`idem#<tenant>#consume#<key>`), copies of other
//! idempotent answers (`answer#<tenant>#<key>`; tenant ids hold no `#`, so a key can never reach into another
//! tenant's or the consume answers), clearance status copies
//! (`status#<tenant>#<request id>`), per-key rate-limit buckets (`rate#<key id>`: one GCRA theoretical arrival
//! time, `tat_us`, moved by one conditional update per request) and usage counters (`usage#<tenant>`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;
use ledgix_core::error::{Conflict, StoreError};
use ledgix_core::ports::{RateLimiter, UsageMeter};
use ledgix_core::ratelimit::{Gcra, RateDecision, RateLimit};

/// How long idempotent answers are kept for replay (the tenant database keeps them for good; see tenant_store).
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;
/// How long a clearance's status copy is kept; later reads go to the tenant database (and copy it back).
const STATUS_TTL_SECONDS: i64 = 7 * 24 * 3600;
/// Conditional updates one rate-limit decision may take: busy → idle → busy, then busy again after one clock
/// re-read, is the longest path (see `RateLimiter for HotTable`); a fifth only if the item is deleted under us.
const RATE_STEPS: usize = 5;

#[derive(Clone)]
pub struct HotTable {
    client: Client,
    table: String,
    rate_ttl_seconds: i64,
}

/// A DynamoDB string attribute (shared by the hot-table adapters).
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The hot table's key of an item.
pub(crate) fn key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

/// One item of the hot table, read consistently (shared by the hot-table adapters).
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    key: HashMap<String, AttributeValue>,
) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
    Ok(out.item)
}

/// A DynamoDB number attribute.
pub(crate) fn n(value: impl ToString) -> AttributeValue {
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
        key(pk, sk)
    }

    /// Burn `jti` and, atomically, record the consume answer (`(idempotency key, sealed body)`) under its key.
    pub async fn burn_jti(
        &self,
        tenant_id: &str,
        jti: &str,
        expires_at: i64,
        answer: Option<(&str, String)>,
    ) -> Result<(), StoreError> {
        let mut items = Vec::new();
        // Idempotency first: its conflict must win, so a retried consume replays instead of reporting 409.
        if let Some((key, sealed_body)) = &answer {
            items.push(self.conditional_put(Self::answer_item(
                Self::consume_answer_key(tenant_id, key),
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
                    if answer.is_some() && failed(0) {
                        return Err(StoreError::Conflict(Conflict::IdempotencyKey));
                    }
                    if failed(reasons.len().saturating_sub(1)) {
                        return Err(StoreError::Conflict(Conflict::JtiBurned));
                    }
                }
                Err(StoreError::unavailable(format!(
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
            .map_err(StoreError::unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Where the copy of a ledger-writing request's answer lives.
    fn answer_key(tenant_id: &str, key: &str) -> HashMap<String, AttributeValue> {
        Self::key(format!("answer#{tenant_id}#{key}"), "answer")
    }

    /// Where a consume's answer lives (only here: it is written with the burn).
    fn consume_answer_key(tenant_id: &str, key: &str) -> HashMap<String, AttributeValue> {
        Self::key(format!("idem#{tenant_id}#consume#{key}"), "idem")
    }

    fn answer_item(
        mut item: HashMap<String, AttributeValue>,
        sealed_body: String,
    ) -> HashMap<String, AttributeValue> {
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
        tenant_id: &str,
        key: &str,
        sealed_body: String,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::answer_item(
                Self::answer_key(tenant_id, key),
                sealed_body,
            )))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
        Ok(())
    }

    /// The copied (possibly sealed) answer of a ledger-writing request.
    pub async fn idempotency_body(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.body(Self::answer_key(tenant_id, key)).await
    }

    /// The (possibly sealed) answer `burn_jti` recorded for a consume.
    pub async fn consume_answer_body(
        &self,
        tenant_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.body(Self::consume_answer_key(tenant_id, key)).await
    }

    async fn body(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(key)
            .await?
            .and_then(|mut i| match i.remove("body") {
                Some(AttributeValue::S(body)) => Some(body),
                _ => None,
            }))
    }

    async fn get(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        get_item(&self.client, &self.table, key).await
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
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
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
                    return Err(StoreError::unavailable(DisplayErrorContext(&e)));
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
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
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
                    Err(StoreError::unavailable(DisplayErrorContext(&e)))
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

/// What a conditional update of a rate-limit bucket found.
enum Step {
    /// Applied: the TAT is now this.
    Moved(i64),
    /// The condition failed on this stored TAT (`None`: no item, or an item without one).
    Found(Option<i64>),
}

/// GCRA on DynamoDB without a read and without retries on contention. Each request is one conditional
/// UpdateItem in the common case:
///
/// - **busy** (`SET tat_us = tat_us + T` if `now ≤ tat_us ≤ now + W − T`): the bucket has been used within the
///   window and has room. Concurrent requests do not conflict: each adds `T` in turn, and the condition, checked
///   atomically on the item, admits exactly as many as fit.
/// - **idle** (`SET tat_us = now + T` if there is no `tat_us` or `tat_us < now`): the first request after a
///   quiet spell (or ever).
///
/// A failed condition returns the item as it was (`ReturnValuesOnConditionCheckFailure = ALL_OLD`), which says
/// which case holds: a TAT beyond the busy range is an exhausted bucket, answered as refused (429, Retry-After
/// `TAT + T − W − now`) with nothing written; below it, the idle update; in it (after a failed idle update),
/// the busy one. The stored TAT only grows, so once the idle update has failed the busy one either applies or
/// finds the bucket exhausted. A request's clock is read before it reaches the table, so a concurrent request
/// that read its clock later can leave a TAT that looks exhausted to it although real time has room: an
/// exhausted answer is checked once against a fresh clock and, if that has room, the busy update is tried
/// again. A decision takes at most four updates, whatever the concurrency. Only the item vanishing in between (TTL deletion, long after its TAT has passed) can make it
/// go round again; if that happened `RATE_STEPS` times the request is refused (429, Retry-After 1), never
/// admitted past the limit and never a 503.
#[async_trait]
impl RateLimiter for HotTable {
    async fn take(&self, principal: &str, limit: RateLimit) -> Result<RateDecision, StoreError> {
        let gcra = limit.gcra();
        let mut now_us = chrono::Utc::now().timestamp_micros();
        let mut clock_reread = false;
        let mut busy = true;
        for _ in 0..RATE_STEPS {
            // Past the furthest TAT this request can leave (now + W): the item outlives its meaning.
            let expires_at = (now_us + gcra.window_us) / 1_000_000 + 1 + self.rate_ttl_seconds;
            let step = if busy {
                self.rate_busy(principal, &gcra, now_us, expires_at).await?
            } else {
                self.rate_idle(principal, &gcra, now_us, expires_at).await?
            };
            match step {
                Step::Moved(tat) => return Ok(gcra.admitted(tat, now_us)),
                Step::Found(Some(tat)) if tat > gcra.busy_range(now_us).1 => {
                    // Our clock was read before a concurrent request's, whose TAT then looks one interval
                    // too far: read it once more (a later `now` only admits what the real time allows).
                    let fresh_us = chrono::Utc::now().timestamp_micros();
                    if clock_reread || tat > gcra.busy_range(fresh_us).1 {
                        return Ok(gcra.refused(tat, fresh_us.max(now_us)));
                    }
                    (now_us, clock_reread, busy) = (fresh_us, true, true);
                }
                Step::Found(Some(tat)) if tat >= now_us => busy = true,
                Step::Found(_) => busy = false,
            }
        }
        tracing::warn!(
            principal,
            "rate-limit bucket vanished during the decision; refused"
        );
        let mut refused = gcra.refused(now_us + gcra.window_us, now_us);
        refused.retry_after_seconds = 1;
        Ok(refused)
    }
}

impl HotTable {
    fn rate_key(principal: &str) -> HashMap<String, AttributeValue> {
        Self::key(format!("rate#{principal}"), "bucket")
    }

    /// `SET tat_us = tat_us + T` if `now ≤ tat_us ≤ now + W − T`.
    async fn rate_busy(
        &self,
        principal: &str,
        gcra: &Gcra,
        now_us: i64,
        expires_at: i64,
    ) -> Result<Step, StoreError> {
        let (low, high) = gcra.busy_range(now_us);
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::rate_key(principal)))
            .update_expression("SET tat_us = tat_us + :t, expires_at = :exp")
            .condition_expression("tat_us BETWEEN :low AND :high")
            .expression_attribute_values(":t", n(gcra.interval_us))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":low", n(low))
            .expression_attribute_values(":high", n(high))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match update.send().await {
            Ok(out) => match tat_of(out.attributes()) {
                Some(tat) => Ok(Step::Moved(tat)),
                None => Err(StoreError::unavailable(
                    "rate-limit update returned no tat_us",
                )),
            },
            Err(e) => condition_failed(e.into_service_error()),
        }
    }

    /// `SET tat_us = now + T` if there is no `tat_us` or `tat_us < now` (and drop the attributes of the
    /// token-bucket items written before GCRA, so an old item is simply an idle one).
    async fn rate_idle(
        &self,
        principal: &str,
        gcra: &Gcra,
        now_us: i64,
        expires_at: i64,
    ) -> Result<Step, StoreError> {
        let next = now_us + gcra.interval_us;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::rate_key(principal)))
            .update_expression(
                "SET tat_us = :next, expires_at = :exp REMOVE #tokens, updated_at_ms, version",
            )
            .condition_expression("attribute_not_exists(tat_us) OR tat_us < :now")
            .expression_attribute_names("#tokens", "tokens")
            .expression_attribute_values(":next", n(next))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":now", n(now_us))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match update.send().await {
            Ok(_) => Ok(Step::Moved(next)),
            Err(e) => condition_failed(e.into_service_error()),
        }
    }
}

fn tat_of(item: Option<&HashMap<String, AttributeValue>>) -> Option<i64> {
    item?.get("tat_us")?.as_n().ok()?.parse().ok()
}

/// A failed condition is an answer (the item as it was); any other error is the store's.
fn condition_failed(
    e: aws_sdk_dynamodb::operation::update_item::UpdateItemError,
) -> Result<Step, StoreError> {
    match e {
        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(
            failed,
        ) => Ok(Step::Found(tat_of(failed.item()))),
        other => Err(StoreError::unavailable(DisplayErrorContext(&other))),
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
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
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
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
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
