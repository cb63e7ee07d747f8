//! The port contract suite against the embedded SQLite adapter.

use std::sync::Arc;

use ledgix_core::contract::Ports;
use ledgix_core::port_contract_tests;
use ledgix_embedded::{MemoryRateLimiter, SqliteStore};

async fn sqlite() -> (Ports, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("vault.db")).expect("open"));
    (
        Ports {
            store: store.clone(),
            control: store.clone(),
            usage: store.clone(),
            limiter: Arc::new(MemoryRateLimiter::default()),
            notifications: store,
        },
        dir,
    )
}

port_contract_tests!(sqlite());

/// The same contract with payloads encrypted at rest.
mod encrypted {
    use super::*;
    use base64::Engine as _;

    async fn sqlite_encrypted() -> (Ports, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
        let codec = ledgix_embedded::Codec::from_base64_key(&key).expect("key");
        let store =
            Arc::new(SqliteStore::open_with(&dir.path().join("vault.db"), codec).expect("open"));
        (
            Ports {
                store: store.clone(),
                control: store.clone(),
                usage: store.clone(),
                limiter: Arc::new(MemoryRateLimiter::default()),
                notifications: store,
            },
            dir,
        )
    }

    port_contract_tests!(sqlite_encrypted());

    #[tokio::test]
    async fn payloads_are_not_stored_in_plaintext() {
        use ledgix_core::notify::{
            Delivery, NotificationEvent, NotificationSettings, WebhookTarget,
        };
        use ledgix_core::ports::Write;
        let (ports, dir) = sqlite_encrypted().await;
        let mut event = ledgix_core::contract::event("r1");
        event.tool_args = serde_json::json!({"secret_marker": "do-not-store-in-clear"});
        ports
            .store
            .commit("t", vec![Write::AppendEvent(event)])
            .await
            .expect("commit");
        assert_eq!(
            ports.store.ledger_tail("t", 1).await.expect("read")[0].tool_args["secret_marker"],
            "do-not-store-in-clear"
        );

        // Webhook secrets, and the tool arguments a delivery (and its outbox entry) carries.
        let settings = NotificationSettings {
            webhooks: vec![WebhookTarget {
                id: "wh_1".into(),
                url: "https://hooks.example.com/ledgix".into(),
                secret: "webhook-secret-not-in-clear".into(),
                events: vec![NotificationEvent::ReviewPending],
            }],
            slack: None,
            email: None,
        };
        ports
            .notifications
            .put_settings("t", &settings)
            .await
            .expect("put settings");
        let delivery = Delivery::queued(
            "t",
            "wh_1",
            NotificationEvent::ReviewPending,
            "r1",
            serde_json::json!({"tool_args": {"note": "delivery-args-not-in-clear"}}),
        );
        assert!(ports
            .notifications
            .create_delivery(&delivery)
            .await
            .expect("create delivery"));
        let mut queued = delivery.clone();
        queued.delivery_id.push('x');
        queued.body = serde_json::json!({"tool_args": {"note": "outbox-args-not-in-clear"}});
        ports
            .store
            .commit("t", vec![Write::QueueNotifications(vec![queued.clone()])])
            .await
            .expect("commit outbox");
        assert_eq!(
            ports.notifications.settings("t").await.expect("read"),
            Some(settings)
        );
        assert_eq!(
            ports
                .notifications
                .delivery("t", &delivery.delivery_id)
                .await
                .expect("read"),
            Some(delivery)
        );
        assert_eq!(
            ports.store.outbox("t", 10).await.expect("read"),
            vec![queued]
        );

        drop(ports);
        let mut raw = Vec::new();
        for entry in std::fs::read_dir(dir.path()).expect("dir").flatten() {
            raw.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
        for needle in [
            "do-not-store-in-clear",
            "webhook-secret-not-in-clear",
            "delivery-args-not-in-clear",
            "outbox-args-not-in-clear",
        ] {
            let needle = needle.as_bytes();
            assert!(
                !raw.windows(needle.len()).any(|w| w == needle),
                "the database and WAL never hold {:?} in clear",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[tokio::test]
async fn state_survives_reopening_the_file() {
    use ledgix_core::ports::{TenantStore, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vault.db");
    {
        let store = SqliteStore::open(&path).expect("open");
        store
            .commit(
                "t",
                vec![Write::AppendEvent(ledgix_core::contract::event("r1"))],
            )
            .await
            .expect("commit");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let events = store.ledger_tail("t", 10).await.expect("read");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, 1);
}

#[tokio::test]
async fn unfinished_deliveries_are_the_queued_and_retrying_ones_of_every_tenant_oldest_first() {
    use ledgix_core::notify::{Delivery, DeliveryStatus, NotificationEvent, NotificationStore};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("vault.db")).expect("open");
    let delivery = |tenant: &str, request: &str| {
        // Ids carry the creation time in microseconds: keep them apart so their order is the creation order.
        std::thread::sleep(std::time::Duration::from_millis(2));
        Delivery::queued(
            tenant,
            "wh_1",
            NotificationEvent::ReviewPending,
            request,
            serde_json::json!({"n": request}),
        )
    };
    let queued = delivery("a", "r1");
    let (retrying, delivered, dead) = (
        delivery("b", "r2"),
        delivery("a", "r3"),
        delivery("b", "r4"),
    );
    let also_queued = delivery("b", "r5");
    for d in [&queued, &retrying, &delivered, &dead, &also_queued] {
        assert!(store.create_delivery(d).await.expect("create"));
    }
    let moved = |d: &Delivery, status: DeliveryStatus| {
        let mut d = d.clone();
        d.attempts = 1;
        d.status = status;
        d
    };
    let retrying = moved(&retrying, DeliveryStatus::Retrying);
    for d in [
        retrying.clone(),
        moved(&delivered, DeliveryStatus::Delivered),
        moved(&dead, DeliveryStatus::DeadLettered),
    ] {
        assert!(store.update_delivery(&d, 0).await.expect("update"));
    }
    assert_eq!(
        store.unfinished_deliveries(10).await.expect("list"),
        vec![queued.clone(), retrying.clone(), also_queued]
    );
    assert_eq!(
        store.unfinished_deliveries(2).await.expect("list"),
        vec![queued, retrying],
        "oldest first, at most the limit"
    );
}

#[tokio::test]
async fn the_outbox_survives_reopening_the_file() {
    use ledgix_core::notify::{Delivery, NotificationEvent};
    use ledgix_core::ports::{TenantStore, Write};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("vault.db");
    let d = Delivery::queued(
        "t",
        "wh_1",
        NotificationEvent::ReviewDecided,
        "r1",
        serde_json::json!({}),
    );
    {
        let store = SqliteStore::open(&path).expect("open");
        store
            .commit("t", vec![Write::QueueNotifications(vec![d.clone()])])
            .await
            .expect("commit");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.outbox("t", 10).await.expect("read"), vec![d]);
}
