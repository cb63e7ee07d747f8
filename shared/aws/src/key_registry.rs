//! The signing-key registry (`KeyRegistry`) in the DynamoDB hot table, one item per key holding its record as
//! JSON (`record`: public key, role, validity, certificate, and a delegated key's private half sealed under the
//! envelope KMS key):
//! - root keys under `pk = signing-keys`, `sk = <kid>` (few; a root's retirement is a separate attribute,
//!   `retired_at`, set once);
//! - delegated keys under `pk = signing-keys#<root kid>`, `sk = d<period start, 12 digits>`, so the keys of
//!   recent periods are one range query and a kid (`<root kid>.d<start>`) is one GetItem, however many periods
//!   have passed.
//!
//! Items never expire: retired keys stay for verifiers.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ledgix_core::error::StoreError;
use ledgix_core::keys::{parse_delegated_kid, KeyRecord};
use ledgix_core::ports::KeyRegistry;

use crate::dynamo::s;

const ROOTS: &str = "signing-keys";

/// Where a kid's item lives.
fn item_key(kid: &str) -> (String, String) {
    match parse_delegated_kid(kid) {
        Some((root, start)) => delegated_key(root, start),
        None => (ROOTS.to_string(), kid.to_string()),
    }
}

fn delegated_key(root_kid: &str, start: i64) -> (String, String) {
    (format!("{ROOTS}#{root_kid}"), format!("d{start:012}"))
}

pub struct DynamoKeyRegistry {
    client: Client,
    table: String,
}

impl DynamoKeyRegistry {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoKeyRegistry {
            client,
            table: table.into(),
        }
    }
}

fn record_of(item: &HashMap<String, AttributeValue>) -> Result<KeyRecord, StoreError> {
    let json = item
        .get("record")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt("signing-key item has no record".into()))?;
    let mut record: KeyRecord = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("signing-key record: {e}")))?;
    // A record stored already retired keeps its own time: `retire` sets the attribute only for a live key.
    if record.published.retired_at.is_none() {
        if let Some(retired_at) = item.get("retired_at").and_then(|v| v.as_s().ok()) {
            record.published.retired_at = Some(retired_at.clone());
        }
    }
    Ok(record)
}

impl DynamoKeyRegistry {
    /// Every record of partition `pk` with a sort key at or after `from` (all when `None`), consistently read.
    async fn query(&self, pk: &str, from: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            query = match from {
                Some(from) => query
                    .key_condition_expression("pk = :pk AND sk >= :from")
                    .expression_attribute_values(":from", s(from)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query
                .send()
                .await
                .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
            for item in out.items() {
                records.push(record_of(item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(records)
    }
}

#[async_trait]
impl KeyRegistry for DynamoKeyRegistry {
    async fn roots(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.query(ROOTS, None).await
    }

    async fn delegated(
        &self,
        root_kid: &str,
        from_start: i64,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let (pk, from) = delegated_key(root_kid, from_start.max(0));
        self.query(&pk, Some(&from)).await
    }

    async fn get(&self, kid: &str) -> Result<Option<KeyRecord>, StoreError> {
        let (pk, sk) = item_key(kid);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let record = record_of(item)?;
        // A root kid of the delegated form would land here; only the record itself says which key it is.
        Ok((record.published.kid == kid).then_some(record))
    }

    async fn insert(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let (pk, sk) = item_key(&record.published.kid);
        let json = serde_json::to_string(record)
            .map_err(|e| StoreError::Corrupt(format!("signing-key record: {e}")))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("sk", s(sk))
            .item("record", s(json))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::unavailable(DisplayErrorContext(&e))),
        }
    }

    async fn retire(&self, kid: &str, at: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(ROOTS))
            .key("sk", s(kid))
            .update_expression("SET retired_at = if_not_exists(retired_at, :at)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(at))
            .send()
            .await
            .map_err(|e| StoreError::unavailable(DisplayErrorContext(&e)))?;
        Ok(())
    }
}
