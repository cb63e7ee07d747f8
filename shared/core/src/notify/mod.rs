//! Notifying people of decisions: a tenant's notification settings, the deliveries a decision queues (in the
//! same tenant commit, as an outbox), and the notifier that delivers them with retries. The wire formats
//! (webhook body and headers, the signature) are in `webhook`, Slack's messages and interaction requests in
//! `slack`, emails in `email`, the retry schedule in `retry`, which addresses a webhook may reach in `address`, the delivery use
//! case in `notifier`.

pub mod address;
pub mod email;
pub mod notifier;
pub mod retry;
pub mod settings;
pub mod slack;
pub mod webhook;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

pub use email::{EmailPolicy, EmailSender, EmailTarget, OutboundEmail};
pub use notifier::{DeliveryOutcome, Notifier, NotifyPorts};
pub use settings::{NotificationSettings, NotificationSettingsView, SlackTarget, WebhookTarget};

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationEvent {
    /// A request was routed to human review.
    #[serde(rename = "review.pending")]
    ReviewPending,
    /// A reviewer (or the requesting agent, withdrawing) decided a pending request.
    #[serde(rename = "review.decided")]
    ReviewDecided,
    /// A pending request passed the tenant's review deadline and was denied (`review_expired`).
    #[serde(rename = "review.expired")]
    ReviewExpired,
    /// A request was denied without review (opt-in: it can be frequent).
    #[serde(rename = "clearance.denied")]
    ClearanceDenied,
}

impl NotificationEvent {
    pub const ALL: [NotificationEvent; 4] = [
        NotificationEvent::ReviewPending,
        NotificationEvent::ReviewDecided,
        NotificationEvent::ReviewExpired,
        NotificationEvent::ClearanceDenied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationEvent::ReviewPending => "review.pending",
            NotificationEvent::ReviewDecided => "review.decided",
            NotificationEvent::ReviewExpired => "review.expired",
            NotificationEvent::ClearanceDenied => "clearance.denied",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued, not yet attempted.
    Queued,
    /// Attempted and failed; another attempt is scheduled at `next_attempt_at`.
    Retrying,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt for 24 hours failed: given up.
    DeadLettered,
    /// The target was removed from the settings before the delivery succeeded.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::DeadLettered => "dead_lettered",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// No further attempt will be made.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered | DeliveryStatus::DeadLettered | DeliveryStatus::Cancelled
        )
    }
}

/// One notification to one target: created by the commit that decided (outbox), then tracked by the notifier.
/// `body` is the JSON sent (it holds the tool call's arguments: adapters store it sealed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `dl_` + creation time + randomness: sorts by creation, and is the receiver's de-duplication key
    /// (`X-Ledgix-Delivery`).
    pub delivery_id: String,
    pub tenant_id: String,
    /// The webhook's id in the tenant's settings, `slack` (the tenant's Slack incoming webhook),
    /// `slack_response` (an update of a Slack message: `body` holds the `response_url` and the message) or
    /// `email` (the tenant's email recipients).
    pub target_id: String,
    pub event: NotificationEvent,
    pub request_id: String,
    pub body: Value,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub created_at: String,
    /// When the next attempt is due (queued and retrying deliveries).
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// The last failed attempt: HTTP status or transport error, never the response body.
    pub last_error: Option<String>,
}

impl Delivery {
    /// A new, queued delivery of `body` to `target_id`.
    pub fn queued(
        tenant_id: &str,
        target_id: &str,
        event: NotificationEvent,
        request_id: &str,
        body: Value,
    ) -> Self {
        let now = chrono::Utc::now();
        Delivery {
            delivery_id: new_delivery_id(now),
            tenant_id: tenant_id.into(),
            target_id: target_id.into(),
            event,
            request_id: request_id.into(),
            body,
            status: DeliveryStatus::Queued,
            attempts: 0,
            created_at: crate::model::rfc3339(now),
            next_attempt_at: Some(crate::model::rfc3339(now)),
            delivered_at: None,
            last_error: None,
        }
    }
}

/// Time-ordered: 16 hex digits of microseconds since the epoch, then 8 random hex digits. Within a process
/// the time part strictly increases, so deliveries one decision queues keep their order.
fn new_delivery_id(now: chrono::DateTime<chrono::Utc>) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(now.timestamp_micros()).unwrap_or(0);
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    let micros = now.max(previous + 1);
    format!("dl_{micros:016x}{:08x}", rand::random::<u32>())
}

/// What the notifier's queue carries: which delivery to attempt. Everything else is read from the store, so a
/// queue message holds nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub tenant_id: String,
    pub delivery_id: String,
}

impl From<&Delivery> for DeliveryJob {
    fn from(d: &Delivery) -> Self {
        DeliveryJob {
            tenant_id: d.tenant_id.clone(),
            delivery_id: d.delivery_id.clone(),
        }
    }
}

/// Notification settings and the delivery log, per tenant. Kept apart from the tenant's database: the
/// notifier (on AWS a function outside the VPC, with internet egress) reads and writes nothing else.
/// Adapters store settings and delivery bodies sealed.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    async fn settings(&self, tenant_id: &str) -> Result<Option<NotificationSettings>, StoreError>;
    async fn put_settings(
        &self,
        tenant_id: &str,
        settings: &NotificationSettings,
    ) -> Result<(), StoreError>;
    /// Record a delivery unless one with its id exists; `false` if it did (a re-dispatched outbox entry).
    async fn create_delivery(&self, delivery: &Delivery) -> Result<bool, StoreError>;
    async fn delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> Result<Option<Delivery>, StoreError>;
    /// Store `delivery` if the stored one has still made `expected_attempts` attempts and is not final;
    /// `false` if another notifier moved it first.
    async fn update_delivery(
        &self,
        delivery: &Delivery,
        expected_attempts: u32,
    ) -> Result<bool, StoreError>;
    /// The tenant's most recent deliveries, newest first.
    async fn deliveries(&self, tenant_id: &str, limit: usize) -> Result<Vec<Delivery>, StoreError>;
}

/// The notifier's queue: a job becomes visible after `delay` (at most 15 minutes, SQS's `DelaySeconds` cap,
/// which is also the retry schedule's cap).
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    async fn send(&self, job: &DeliveryJob, delay: std::time::Duration) -> Result<(), StoreError>;
}

/// An outbound HTTP POST of a webhook.
#[derive(Debug, Clone)]
pub struct OutboundPost {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// The URL or an address it resolves to is not allowed (scheme, loopback, private, link-local,
    /// metadata): never retried into success, but retried anyway, since DNS can change.
    #[error("refused: {0}")]
    Refused(String),
    /// DNS, connect, TLS, timeout or a read failure.
    #[error("{0}")]
    Transport(String),
    /// The mail service refused the message (e.g. SES `MessageRejected`, an SMTP 4xx/5xx): retried, since the
    /// cause (a sending pause, an identity not yet verified) can pass.
    #[error("{0}")]
    Rejected(String),
}

/// Sends webhooks, refusing addresses a tenant must not reach at connect time (DNS rebinding), and checks a
/// URL the same way when it is registered.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Resolve the URL's host and check every address it resolves to.
    async fn check(&self, url: &str) -> Result<(), SendError>;
    /// POST, returning the HTTP status code.
    async fn post(&self, request: &OutboundPost) -> Result<u16, SendError>;
}
