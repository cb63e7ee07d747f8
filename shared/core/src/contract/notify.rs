//! Notification contract: settings per tenant, a delivery log whose records are created once and moved only
//! by the notifier that read them last (conditional on the attempts it saw), and the outbox, committed with
//! the decision that caused it or not at all.

use serde_json::json;

use super::{clearance, unique, Ports};
use crate::model::ClearanceStatus;
use crate::notify::{
    Delivery, DeliveryStatus, NotificationEvent, NotificationSettings, SlackTarget, WebhookTarget,
};
use crate::ports::Write;

fn settings(url: &str) -> NotificationSettings {
    NotificationSettings {
        webhooks: vec![WebhookTarget {
            id: unique("wh"),
            url: url.into(),
            secret: "a-secret-of-some-length".into(),
            events: vec![
                NotificationEvent::ReviewPending,
                NotificationEvent::ClearanceDenied,
            ],
        }],
        slack: Some(SlackTarget {
            webhook_url: "https://hooks.slack.com/services/T0/B0/x".into(),
            signing_secret: "a-slack-signing-secret".into(),
            reviewer_user_ids: vec!["U2CERLKJA".into()],
            events: vec![NotificationEvent::ReviewPending],
        }),
        email: Some(crate::notify::EmailTarget {
            to: vec!["ops@example.com".into()],
            from: "vault@alerts.example.com".into(),
            events: vec![NotificationEvent::ReviewExpired],
        }),
    }
}

fn delivery(tenant: &str, request_id: &str) -> Delivery {
    Delivery::queued(
        tenant,
        "wh_1",
        NotificationEvent::ReviewPending,
        request_id,
        json!({"event": "review.pending", "tool_args": {"amount": 5, "note": "ünïcode"}}),
    )
}

pub async fn notification_settings_round_trip(p: Ports) {
    let (a, b) = (unique("t"), unique("t"));
    assert_eq!(p.notifications.settings(&a).await.expect("read"), None);
    let first = settings("https://a.example.com/hook");
    p.notifications.put_settings(&a, &first).await.expect("put");
    assert_eq!(
        p.notifications.settings(&a).await.expect("read"),
        Some(first)
    );
    assert_eq!(
        p.notifications.settings(&b).await.expect("read"),
        None,
        "tenants are apart"
    );
    let second = NotificationSettings::default();
    p.notifications
        .put_settings(&a, &second)
        .await
        .expect("replace");
    assert_eq!(
        p.notifications.settings(&a).await.expect("read"),
        Some(second)
    );
}

pub async fn deliveries_are_created_once_and_moved_conditionally(p: Ports) {
    let (tenant, other) = (unique("t"), unique("t"));
    let d = delivery(&tenant, "r1");
    assert!(p.notifications.create_delivery(&d).await.expect("create"));
    assert!(
        !p.notifications.create_delivery(&d).await.expect("again"),
        "created once"
    );
    assert_eq!(
        p.notifications
            .delivery(&tenant, &d.delivery_id)
            .await
            .expect("read"),
        Some(d.clone())
    );
    assert_eq!(
        p.notifications
            .delivery(&other, &d.delivery_id)
            .await
            .expect("read"),
        None
    );

    let mut failed = d.clone();
    failed.attempts = 1;
    failed.status = DeliveryStatus::Retrying;
    failed.last_error = Some("HTTP 500".into());
    assert!(p
        .notifications
        .update_delivery(&failed, 0)
        .await
        .expect("update"));
    assert!(
        !p.notifications
            .update_delivery(&failed, 0)
            .await
            .expect("stale"),
        "a notifier that read 0 attempts loses to the one that recorded the first"
    );
    let mut delivered = failed.clone();
    delivered.attempts = 2;
    delivered.status = DeliveryStatus::Delivered;
    delivered.last_error = None;
    delivered.delivered_at = Some(crate::model::now_rfc3339());
    assert!(p
        .notifications
        .update_delivery(&delivered, 1)
        .await
        .expect("update"));
    let mut after = delivered.clone();
    after.attempts = 3;
    after.status = DeliveryStatus::Retrying;
    assert!(
        !p.notifications
            .update_delivery(&after, 2)
            .await
            .expect("final"),
        "a delivered delivery is final"
    );
    assert_eq!(
        p.notifications
            .delivery(&tenant, &d.delivery_id)
            .await
            .expect("read"),
        Some(delivered)
    );

    let mut ids = vec![d.delivery_id.clone()];
    for i in 0..4 {
        let later = delivery(&tenant, &format!("r{i}"));
        assert!(p
            .notifications
            .create_delivery(&later)
            .await
            .expect("create"));
        ids.push(later.delivery_id);
    }
    ids.reverse();
    let listed: Vec<String> = p
        .notifications
        .deliveries(&tenant, 3)
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    assert_eq!(listed, ids[..3].to_vec(), "newest first, at most the limit");
    assert!(p
        .notifications
        .deliveries(&other, 10)
        .await
        .expect("list")
        .is_empty());
}

pub async fn outbox_commits_with_its_decision_or_not_at_all(p: Ports) {
    let (tenant, other) = (unique("t"), unique("t"));
    let (d1, d2) = (delivery(&tenant, "r1"), delivery(&tenant, "r1"));
    p.store
        .commit(
            &tenant,
            vec![
                Write::InsertClearance(clearance(&tenant, "r1", ClearanceStatus::PendingReview)),
                Write::QueueNotifications(vec![d1.clone(), d2.clone()]),
            ],
        )
        .await
        .expect("commit");
    assert_eq!(
        p.store.outbox(&tenant, 10).await.expect("outbox"),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(
        p.store.outbox(&tenant, 1).await.expect("outbox"),
        vec![d1.clone()]
    );
    assert!(p.store.outbox(&other, 10).await.expect("outbox").is_empty());

    // The same request id again conflicts: neither the clearance nor its notification is kept.
    let lost = delivery(&tenant, "r1");
    let failed = p
        .store
        .commit(
            &tenant,
            vec![
                Write::InsertClearance(clearance(&tenant, "r1", ClearanceStatus::Denied)),
                Write::QueueNotifications(vec![lost]),
            ],
        )
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(p.store.outbox(&tenant, 10).await.expect("outbox").len(), 2);

    p.store
        .commit(
            &tenant,
            vec![Write::ClearOutbox(vec![
                d1.delivery_id.clone(),
                "dl_unknown".into(),
            ])],
        )
        .await
        .expect("clear");
    assert_eq!(p.store.outbox(&tenant, 10).await.expect("outbox"), vec![d2]);
}
