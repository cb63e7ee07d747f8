//! `NotificationStore` on SQLite: a tenant's notification settings and the delivery log, in the same file as
//! the rest (the outbox is part of the tenant commit, in `writer`). Writes go through the single writer; the
//! settings and every delivery are stored sealed (webhook secrets, tool arguments).

use async_trait::async_trait;
use ledgix_core::error::StoreError;
use ledgix_core::notify::{Delivery, DeliveryStatus, NotificationSettings, NotificationStore};

use super::writer::{Done, Op};
use super::SqliteStore;

/// The statuses a delivery can still move from (the rest are final): what `update_delivery` requires and
/// `unfinished_deliveries` lists.
pub(super) const UNFINISHED: [DeliveryStatus; 2] =
    [DeliveryStatus::Queued, DeliveryStatus::Retrying];

fn changed(done: Done) -> bool {
    match done {
        Done::Changed(changed) => changed,
        Done::Seqs(_) => false,
    }
}

impl SqliteStore {
    /// Deliveries still queued or retrying, across tenants, oldest first (at most `limit`): queued again at
    /// start, so a process killed with deliveries in its in-memory queue loses none.
    pub async fn unfinished_deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.query_all(
            "deliveries",
            "SELECT body FROM deliveries WHERE status IN ('queued', 'retrying') ORDER BY delivery_id LIMIT ?1",
            (limit as i64,),
        )
        .await
    }
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn settings(&self, tenant_id: &str) -> Result<Option<NotificationSettings>, StoreError> {
        self.query_one(
            "notification_settings",
            "SELECT body FROM notification_settings WHERE tenant_id = ?1",
            (tenant_id.to_string(),),
        )
        .await
    }

    async fn put_settings(
        &self,
        tenant_id: &str,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError> {
        self.writer
            .write(Op::PutNotificationSettings {
                tenant_id: tenant_id.to_string(),
                settings: settings.clone(),
            })
            .await
            .map(|_| ())
    }

    async fn create_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        self.writer
            .write(Op::CreateDelivery(delivery.clone()))
            .await
            .map(changed)
    }

    async fn delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        self.query_one(
            "deliveries",
            "SELECT body FROM deliveries WHERE tenant_id = ?1 AND delivery_id = ?2",
            (tenant_id.to_string(), delivery_id.to_string()),
        )
        .await
    }

    async fn update_delivery(
        &self,
        delivery: &Delivery,
        expected_attempts: u32,
    ) -> Result<bool, StoreError> {
        self.writer
            .write(Op::UpdateDelivery {
                delivery: delivery.clone(),
                expected_attempts,
            })
            .await
            .map(changed)
    }

    async fn deliveries(&self, tenant_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.query_all(
            "deliveries",
            "SELECT body FROM deliveries WHERE tenant_id = ?1 ORDER BY delivery_id DESC LIMIT ?2",
            (tenant_id.to_string(), limit as i64),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL that lists unfinished deliveries and guards updates names exactly the statuses that are not final.
    #[test]
    fn unfinished_is_every_status_that_is_not_final() {
        // Exhaustive: a new status fails to compile here until it is listed below.
        let listed = |status: DeliveryStatus| match status {
            DeliveryStatus::Queued
            | DeliveryStatus::Retrying
            | DeliveryStatus::Delivered
            | DeliveryStatus::DeadLettered
            | DeliveryStatus::Cancelled => status,
        };
        let all = [
            DeliveryStatus::Queued,
            DeliveryStatus::Retrying,
            DeliveryStatus::Delivered,
            DeliveryStatus::DeadLettered,
            DeliveryStatus::Cancelled,
        ];
        for status in all.map(listed) {
            assert_eq!(
                UNFINISHED.contains(&status),
                !status.is_final(),
                "{status:?}"
            );
        }
        assert_eq!(
            UNFINISHED.map(DeliveryStatus::as_str),
            ["queued", "retrying"],
            "as the SQL and the partial index name them"
        );
    }
}
