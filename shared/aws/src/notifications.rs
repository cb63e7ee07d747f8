//! `NotificationStore` in the DynamoDB hot table: what the notifier reads and writes. On AWS the notifier is a
//! function outside the VPC that reaches only DynamoDB, SQS and KMS, so nothing here touches PostgreSQL.
//!
//! - settings: `pk = notify#<tenant>`, `sk = settings`, `body` = the `NotificationSettings` JSON sealed with the
//!   payload cipher under `notification_settings` (it holds the webhooks' signing secrets);
//! - deliveries: `pk = deliveries#<tenant>`, `sk = <delivery id>` (time-ordered, so a tenant's log is one
//!   range query, newest first), `body` = the whole `Delivery` JSON sealed under `deliveries` (it holds the
//!   tool call's arguments), and in clear the two attributes the conditional writes test, `attempts` (N) and
//!   `status` (S); `expires_at` removes the item 30 days after the delivery was created.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use ledgix_core::at_rest::PayloadCipher;
use ledgix_core::error::StoreError;
use ledgix_core::notify::{Delivery, DeliveryStatus, NotificationSettings, NotificationStore};

use crate::dynamo::{get_item, key, n, s};

/// How long the delivery log keeps a delivery (DynamoDB TTL, counted from its creation).
pub const DELIVERY_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// AAD label (table) of sealed settings.
const SETTINGS_LABEL: &str = "notification_settings";
/// AAD label (table) of sealed deliveries.
const DELIVERIES_LABEL: &str = "deliveries";

#[derive(Clone)]
pub struct DynamoNotificationStore {
    client: Client,
    table: String,
    /// Settings and delivery bodies are sealed with it: the tenant store's cipher (KMS envelope, static key
    /// or plaintext, whichever the backend is configured with).
    cipher: PayloadCipher,
}

fn unavailable<E: std::error::Error>(e: E) -> StoreError {
    StoreError::unavailable(DisplayErrorContext(&e))
}

fn settings_key(tenant_id: &str) -> HashMap<String, AttributeValue> {
    key(format!("notify#{tenant_id}"), "settings")
}

fn deliveries_pk(tenant_id: &str) -> String {
    format!("deliveries#{tenant_id}")
}

fn body_of(item: &HashMap<String, AttributeValue>) -> Result<String, StoreError> {
    item.get("body")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::corrupt("notification item has no body"))
}

/// When a delivery's item expires: 30 days after it was created (now, if its creation time is unreadable).
fn expires_at(delivery: &Delivery) -> i64 {
    let created = chrono::DateTime::parse_from_rfc3339(&delivery.created_at)
        .map(|t| t.timestamp())
        .unwrap_or_else(|_| chrono::Utc::now().timestamp());
    created + DELIVERY_TTL_SECONDS
}

impl DynamoNotificationStore {
    /// `client` and `table`: the hot table's (`VAULT_DYNAMODB_TABLE`); `cipher`: the backend's payload cipher.
    pub fn new(client: Client, table: impl Into<String>, cipher: PayloadCipher) -> Self {
        DynamoNotificationStore {
            client,
            table: table.into(),
            cipher,
        }
    }

    async fn get(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        get_item(&self.client, &self.table, key).await
    }

    /// The item of `delivery`, body sealed.
    async fn delivery_item(
        &self,
        delivery: &Delivery,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let json = serde_json::to_string(delivery).map_err(StoreError::corrupt)?;
        let mut item = key(deliveries_pk(&delivery.tenant_id), &delivery.delivery_id);
        item.insert("attempts".into(), n(delivery.attempts));
        item.insert("status".into(), s(delivery.status.as_str()));
        item.insert(
            "body".into(),
            s(self.cipher.seal(DELIVERIES_LABEL, json).await?),
        );
        item.insert("expires_at".into(), n(expires_at(delivery)));
        Ok(item)
    }

    /// A delivery item as the delivery it holds, which must be the one its key names.
    async fn open_delivery(
        &self,
        tenant_id: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Delivery, StoreError> {
        let json = self.cipher.open(DELIVERIES_LABEL, body_of(item)?).await?;
        let delivery: Delivery = serde_json::from_str(&json).map_err(StoreError::corrupt)?;
        let sk = item.get("sk").and_then(|v| v.as_s().ok());
        if delivery.tenant_id != tenant_id || sk != Some(&delivery.delivery_id) {
            return Err(StoreError::corrupt(format!(
                "delivery item of tenant {tenant_id} holds delivery {} of tenant {}",
                delivery.delivery_id, delivery.tenant_id
            )));
        }
        Ok(delivery)
    }

    /// PutItem under `condition`; `false` when the condition failed.
    async fn put_if(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        names: &[(&str, &str)],
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (name, attribute) in names {
            put = put.expression_attribute_names(*name, *attribute);
        }
        for (name, value) in values {
            put = put.expression_attribute_values(*name, value.clone());
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Ok(false)
                } else {
                    Err(unavailable(e))
                }
            }
        }
    }
}

#[async_trait]
impl NotificationStore for DynamoNotificationStore {
    async fn settings(&self, tenant_id: &str) -> Result<Option<NotificationSettings>, StoreError> {
        let Some(item) = self.get(settings_key(tenant_id)).await? else {
            return Ok(None);
        };
        let json = self.cipher.open(SETTINGS_LABEL, body_of(&item)?).await?;
        serde_json::from_str(&json)
            .map(Some)
            .map_err(StoreError::corrupt)
    }

    async fn put_settings(
        &self,
        tenant_id: &str,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(settings).map_err(StoreError::corrupt)?;
        let mut item = settings_key(tenant_id);
        item.insert(
            "body".into(),
            s(self.cipher.seal(SETTINGS_LABEL, json).await?),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn create_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        let item = self.delivery_item(delivery).await?;
        self.put_if(item, "attribute_not_exists(pk)", &[], &[])
            .await
    }

    async fn delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        match self.get(key(deliveries_pk(tenant_id), delivery_id)).await? {
            Some(item) => Ok(Some(self.open_delivery(tenant_id, &item).await?)),
            None => Ok(None),
        }
    }

    async fn update_delivery(
        &self,
        delivery: &Delivery,
        expected_attempts: u32,
    ) -> Result<bool, StoreError> {
        let item = self.delivery_item(delivery).await?;
        // A missing item fails the condition too: only a recorded delivery is moved.
        self.put_if(
            item,
            "attempts = :expected AND #status IN (:queued, :retrying)",
            &[("#status", "status")],
            &[
                (":expected", n(expected_attempts)),
                (":queued", s(DeliveryStatus::Queued.as_str())),
                (":retrying", s(DeliveryStatus::Retrying.as_str())),
            ],
        )
        .await
    }

    async fn deliveries(&self, tenant_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut deliveries = Vec::new();
        let mut start = None;
        // A page stops at 1 MB: go on from where it stopped until `limit` deliveries are read.
        while deliveries.len() < limit {
            let page = i32::try_from(limit - deliveries.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(deliveries_pk(tenant_id)))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(page)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                deliveries.push(self.open_delivery(tenant_id, item).await?);
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        deliveries.truncate(limit);
        Ok(deliveries)
    }
}
