//! A tenant's notification settings: what `PUT /notification-settings` accepts, what is stored (secrets
//! included, sealed by the store) and what `GET` shows (secrets never).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::address::{self, UrlPolicy};
use super::NotificationEvent;
use crate::error::{VaultError, VaultResult};

/// The most webhooks one tenant may register.
pub const MAX_WEBHOOKS: usize = 10;
const MAX_URL: usize = 2048;
/// A shared secret shorter than this is guessable; longer than the maximum is a mistake.
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;

/// One webhook: where, signed with what, for which events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookTarget {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub events: Vec<NotificationEvent>,
}

/// Stored per tenant (sealed: it holds the secrets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotificationSettings {
    #[serde(default)]
    pub webhooks: Vec<WebhookTarget>,
}

impl NotificationSettings {
    /// The targets that want `event`.
    pub fn subscribers(&self, event: NotificationEvent) -> impl Iterator<Item = &WebhookTarget> {
        self.webhooks
            .iter()
            .filter(move |w| w.events.contains(&event))
    }

    pub fn webhook(&self, id: &str) -> Option<&WebhookTarget> {
        self.webhooks.iter().find(|w| w.id == id)
    }
}

/// `PUT /notification-settings` as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsUpdate {
    #[serde(default)]
    pub webhooks: Vec<WebhookUpdate>,
    /// Not delivered by this version: refused rather than silently ignored.
    #[serde(default)]
    pub slack: Option<Value>,
    #[serde(default)]
    pub email: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    /// An existing webhook's id keeps its secret when `secret` is left out.
    #[serde(default)]
    pub id: Option<String>,
    pub url: String,
    #[serde(default)]
    pub secret: Option<String>,
    /// Default: the review events (`clearance.denied` is opt-in).
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// What `GET /notification-settings` shows: everything but the secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationSettingsView {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<NotificationEvent>,
    pub secret_set: bool,
}

impl From<&NotificationSettings> for NotificationSettingsView {
    fn from(s: &NotificationSettings) -> Self {
        NotificationSettingsView {
            webhooks: s
                .webhooks
                .iter()
                .map(|w| WebhookView {
                    id: w.id.clone(),
                    url: w.url.clone(),
                    events: w.events.clone(),
                    secret_set: !w.secret.is_empty(),
                })
                .collect(),
        }
    }
}

const DEFAULT_EVENTS: [NotificationEvent; 3] = [
    NotificationEvent::ReviewPending,
    NotificationEvent::ReviewDecided,
    NotificationEvent::ReviewExpired,
];

impl NotificationSettingsUpdate {
    /// The settings this update makes, given the stored ones (for the secrets it keeps). Checks everything
    /// that needs no network: the address checks that resolve names are the sender's.
    pub fn apply(
        self,
        stored: Option<&NotificationSettings>,
        policy: UrlPolicy,
    ) -> VaultResult<NotificationSettings> {
        let invalid = |m: String| Err(VaultError::InvalidRequest(m));
        if self.slack.is_some() || self.email.is_some() {
            return invalid(
                "slack and email notifications are not available in this version; use webhooks"
                    .into(),
            );
        }
        if self.webhooks.len() > MAX_WEBHOOKS {
            return invalid(format!("at most {MAX_WEBHOOKS} webhooks"));
        }
        let mut webhooks = Vec::with_capacity(self.webhooks.len());
        for (i, w) in self.webhooks.into_iter().enumerate() {
            if w.url.len() > MAX_URL {
                return invalid(format!(
                    "webhooks[{i}].url is longer than {MAX_URL} characters"
                ));
            }
            if let Err(why) = address::check_url(&w.url, policy) {
                return invalid(format!("webhooks[{i}].url: {why}"));
            }
            let previous =
                w.id.as_deref()
                    .and_then(|id| stored.and_then(|s| s.webhook(id)));
            if w.id.is_some() && previous.is_none() {
                return invalid(format!(
                    "webhooks[{i}].id is not a registered webhook; leave it out to add one"
                ));
            }
            let secret = match (w.secret, previous) {
                (Some(secret), _) => secret,
                (None, Some(previous)) => previous.secret.clone(),
                (None, None) => {
                    return invalid(format!(
                        "webhooks[{i}].secret is required for a new webhook"
                    ))
                }
            };
            if !SECRET_CHARS.contains(&secret.chars().count())
                || secret.chars().any(char::is_control)
            {
                return invalid(format!(
                    "webhooks[{i}].secret must be {} to {} characters, without control characters",
                    SECRET_CHARS.start(),
                    SECRET_CHARS.end()
                ));
            }
            let events = match w.events {
                None => DEFAULT_EVENTS.to_vec(),
                Some(names) => {
                    let mut events = Vec::new();
                    for name in &names {
                        match NotificationEvent::parse(name) {
                            Some(e) if !events.contains(&e) => events.push(e),
                            Some(_) => {}
                            None => {
                                return invalid(format!(
                                    "webhooks[{i}].events: unknown event {name:?} (review.pending, review.decided, review.expired, clearance.denied)"
                                ))
                            }
                        }
                    }
                    if events.is_empty() {
                        return invalid(format!("webhooks[{i}].events is empty"));
                    }
                    events
                }
            };
            let id = match previous {
                Some(p) => p.id.clone(),
                None => crate::apikey::new_id("wh_"),
            };
            if webhooks
                .iter()
                .any(|existing: &WebhookTarget| existing.id == id)
            {
                return invalid(format!("webhooks[{i}].id appears twice"));
            }
            webhooks.push(WebhookTarget {
                id,
                url: w.url,
                secret,
                events,
            });
        }
        Ok(NotificationSettings { webhooks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update(v: Value) -> NotificationSettingsUpdate {
        serde_json::from_value(v).expect("update")
    }

    const STRICT: UrlPolicy = UrlPolicy {
        allow_loopback: false,
    };

    #[test]
    fn a_new_webhook_gets_an_id_default_events_and_keeps_its_secret_out_of_the_view() {
        let s = update(json!({"webhooks": [{"url": "https://hooks.example.com/x", "secret": "0123456789abcdef"}]}))
            .apply(None, STRICT)
            .expect("valid");
        assert_eq!(s.webhooks.len(), 1);
        assert!(s.webhooks[0].id.starts_with("wh_"));
        assert_eq!(s.webhooks[0].events, DEFAULT_EVENTS.to_vec());
        let view = serde_json::to_value(NotificationSettingsView::from(&s)).expect("json");
        assert!(!view.to_string().contains("0123456789abcdef"), "{view}");
        assert_eq!(view["webhooks"][0]["secret_set"], true);
    }

    #[test]
    fn an_existing_webhook_keeps_its_secret_when_it_is_left_out() {
        let first = update(
            json!({"webhooks": [{"url": "https://a.example.com/", "secret": "first-secret-0123"}]}),
        )
        .apply(None, STRICT)
        .expect("valid");
        let id = first.webhooks[0].id.clone();
        let second = update(json!({"webhooks": [{"id": id, "url": "https://b.example.com/", "events": ["clearance.denied"]}]}))
            .apply(Some(&first), STRICT)
            .expect("valid");
        assert_eq!(second.webhooks[0].secret, "first-secret-0123");
        assert_eq!(second.webhooks[0].id, first.webhooks[0].id);
        assert_eq!(
            second.webhooks[0].events,
            vec![NotificationEvent::ClearanceDenied]
        );
    }

    #[test]
    fn bad_updates_are_refused() {
        for (body, why) in [
            (
                json!({"webhooks": [{"url": "https://a.example.com/"}]}),
                "secret is required",
            ),
            (
                json!({"webhooks": [{"url": "https://a.example.com/", "secret": "short"}]}),
                "16 to 256",
            ),
            (
                json!({"webhooks": [{"url": "http://a.example.com/", "secret": "0123456789abcdef"}]}),
                "https",
            ),
            (
                json!({"webhooks": [{"url": "https://127.0.0.1/", "secret": "0123456789abcdef"}]}),
                "loopback",
            ),
            (
                json!({"webhooks": [{"url": "https://a.example.com/", "secret": "0123456789abcdef", "events": ["nope"]}]}),
                "unknown event",
            ),
            (
                json!({"webhooks": [{"id": "wh_unknown", "url": "https://a.example.com/", "secret": "0123456789abcdef"}]}),
                "not a registered",
            ),
            (
                json!({"slack": {"webhook_url": "https://hooks.slack.com/x"}}),
                "not available",
            ),
        ] {
            match update(body.clone()).apply(None, STRICT) {
                Err(VaultError::InvalidRequest(m)) => assert!(m.contains(why), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
