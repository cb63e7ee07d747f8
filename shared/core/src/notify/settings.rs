//! A tenant's notification settings: what `PUT /notification-settings` accepts, what is stored (secrets
//! included, sealed by the store) and what `GET` shows (secrets never).

use serde::{Deserialize, Serialize};

use super::address::{self, UrlPolicy};
use super::email::{self, EmailPolicy, EmailTarget};
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

/// The tenant's Slack app: where its messages go (an incoming webhook), the secret Slack signs its interaction
/// requests with, and who may decide from Slack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlackTarget {
    /// The incoming webhook of the channel reviewers watch (it is a credential too: anyone holding it can post).
    pub webhook_url: String,
    /// The Slack app's signing secret: verifies `POST /slack/interactions` (`X-Slack-Signature`).
    pub signing_secret: String,
    /// The Slack user ids (`U…`, `W…`) whose Approve/Deny clicks decide; anyone else's decide nothing.
    pub reviewer_user_ids: Vec<String>,
    pub events: Vec<NotificationEvent>,
}

impl SlackTarget {
    pub fn is_reviewer(&self, user_id: &str) -> bool {
        self.reviewer_user_ids.iter().any(|id| id == user_id)
    }
}

/// Stored per tenant (sealed: it holds the secrets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotificationSettings {
    #[serde(default)]
    pub webhooks: Vec<WebhookTarget>,
    /// Settings stored before Slack existed read as `None`.
    #[serde(default)]
    pub slack: Option<SlackTarget>,
    /// Settings stored before email existed read as `None`.
    #[serde(default)]
    pub email: Option<EmailTarget>,
}

impl NotificationSettings {
    /// The ids of the targets that want `event`: each subscribed webhook's, then `slack` and `email` if they are.
    pub fn targets(&self, event: NotificationEvent) -> Vec<&str> {
        let webhooks = self
            .webhooks
            .iter()
            .filter(|w| w.events.contains(&event))
            .map(|w| w.id.as_str());
        let slack = self
            .slack
            .as_ref()
            .filter(|s| s.events.contains(&event))
            .map(|_| super::slack::TARGET_ID);
        let email = self
            .email
            .as_ref()
            .filter(|e| e.events.contains(&event))
            .map(|_| email::TARGET_ID);
        webhooks.chain(slack).chain(email).collect()
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
    /// Left out (or `null`): no Slack notifications.
    #[serde(default)]
    pub slack: Option<SlackUpdate>,
    /// Left out (or `null`): no email.
    #[serde(default)]
    pub email: Option<EmailUpdate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailUpdate {
    pub to: Vec<String>,
    pub from: String,
    /// Default: the review events.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

impl EmailUpdate {
    fn apply(self, policy: &EmailPolicy) -> VaultResult<EmailTarget> {
        let invalid = |m: String| Err(VaultError::InvalidRequest(m));
        if self.to.is_empty() || self.to.len() > email::MAX_RECIPIENTS {
            return invalid(format!(
                "email.to must name 1 to {} addresses",
                email::MAX_RECIPIENTS
            ));
        }
        let mut to: Vec<String> = Vec::new();
        for address in self.to {
            if let Err(why) = email::check_address(&address) {
                return invalid(format!("email.to: {why}"));
            }
            if !to.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                to.push(address);
            }
        }
        if let Err(why) = email::check_address(&self.from) {
            return invalid(format!("email.from: {why}"));
        }
        if let Err(why) = policy.check_from(&self.from) {
            return invalid(format!("email.from: {why}"));
        }
        Ok(EmailTarget {
            to,
            from: self.from,
            events: parse_events(self.events, "email.events")?,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackUpdate {
    /// Kept from the stored Slack settings when left out (it is a credential: never shown again).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Kept from the stored Slack settings when left out.
    #[serde(default)]
    pub signing_secret: Option<String>,
    pub reviewer_user_ids: Vec<String>,
    /// Default: the review events.
    #[serde(default)]
    pub events: Option<Vec<String>>,
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
    /// `null` without Slack settings.
    pub slack: Option<SlackView>,
    /// `null` without email settings (nothing in them is secret).
    pub email: Option<EmailTarget>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlackView {
    /// Scheme and host only: the path of an incoming-webhook URL is the credential that posts to the channel.
    pub webhook_url: String,
    pub reviewer_user_ids: Vec<String>,
    pub events: Vec<NotificationEvent>,
    pub signing_secret_set: bool,
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
            slack: s.slack.as_ref().map(|slack| SlackView {
                webhook_url: redacted_url(&slack.webhook_url),
                reviewer_user_ids: slack.reviewer_user_ids.clone(),
                events: slack.events.clone(),
                signing_secret_set: !slack.signing_secret.is_empty(),
            }),
            email: s.email.clone(),
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
        email_policy: &EmailPolicy,
    ) -> VaultResult<NotificationSettings> {
        let invalid = |m: String| Err(VaultError::InvalidRequest(m));
        let email = self.email.map(|e| e.apply(email_policy)).transpose()?;
        let slack = match self.slack {
            None => None,
            Some(update) => Some(update.apply(stored.and_then(|s| s.slack.as_ref()), policy)?),
        };
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
            check_secret(&secret, &format!("webhooks[{i}].secret"))?;
            let events = parse_events(w.events, &format!("webhooks[{i}].events"))?;
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
        Ok(NotificationSettings {
            webhooks,
            slack,
            email,
        })
    }
}

/// The most Slack reviewers one tenant may name.
pub const MAX_SLACK_REVIEWERS: usize = 100;

impl SlackUpdate {
    fn apply(self, stored: Option<&SlackTarget>, policy: UrlPolicy) -> VaultResult<SlackTarget> {
        let invalid = |m: String| Err(VaultError::InvalidRequest(m));
        let webhook_url = match (self.webhook_url, stored) {
            (Some(url), _) => url,
            (None, Some(stored)) => stored.webhook_url.clone(),
            (None, None) => {
                return invalid(
                    "slack.webhook_url is required (the Slack app's incoming webhook)".into(),
                )
            }
        };
        if webhook_url.len() > MAX_URL {
            return invalid(format!(
                "slack.webhook_url is longer than {MAX_URL} characters"
            ));
        }
        if let Err(why) = address::check_url(&webhook_url, policy) {
            return invalid(format!("slack.webhook_url: {why}"));
        }
        let signing_secret = match (self.signing_secret, stored) {
            (Some(secret), _) => secret,
            (None, Some(stored)) => stored.signing_secret.clone(),
            (None, None) => {
                return invalid(
                    "slack.signing_secret is required (the Slack app's \"Signing Secret\")".into(),
                )
            }
        };
        check_secret(&signing_secret, "slack.signing_secret")?;
        if self.reviewer_user_ids.is_empty() {
            return invalid(
                "slack.reviewer_user_ids is empty: name the Slack users who may decide".into(),
            );
        }
        if self.reviewer_user_ids.len() > MAX_SLACK_REVIEWERS {
            return invalid(format!(
                "slack.reviewer_user_ids: at most {MAX_SLACK_REVIEWERS}"
            ));
        }
        let mut reviewer_user_ids: Vec<String> = Vec::new();
        for id in self.reviewer_user_ids {
            if !super::slack::is_user_id(&id) {
                return invalid(format!(
                    "slack.reviewer_user_ids: {id:?} is not a Slack user id (U… or W…, as Slack shows it)"
                ));
            }
            if !reviewer_user_ids.contains(&id) {
                reviewer_user_ids.push(id);
            }
        }
        Ok(SlackTarget {
            webhook_url,
            signing_secret,
            reviewer_user_ids,
            events: parse_events(self.events, "slack.events")?,
        })
    }
}

/// `https://hooks.slack.com/…`: what a tenant admin needs to recognise the URL, without the secret path.
fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/…",
                url.scheme(),
                url.host_str().unwrap_or("")
            )
        }
        Err(_) => "…".into(),
    }
}

fn check_secret(secret: &str, field: &str) -> VaultResult<()> {
    if !SECRET_CHARS.contains(&secret.chars().count()) || secret.chars().any(char::is_control) {
        return Err(VaultError::InvalidRequest(format!(
            "{field} must be {} to {} characters, without control characters",
            SECRET_CHARS.start(),
            SECRET_CHARS.end()
        )));
    }
    Ok(())
}

/// Event names as sent (`None`: the review events), without repeats; unknown names and an empty list refused.
fn parse_events(names: Option<Vec<String>>, field: &str) -> VaultResult<Vec<NotificationEvent>> {
    let Some(names) = names else {
        return Ok(DEFAULT_EVENTS.to_vec());
    };
    let mut events = Vec::new();
    for name in &names {
        match NotificationEvent::parse(name) {
            Some(e) if !events.contains(&e) => events.push(e),
            Some(_) => {}
            None => {
                return Err(VaultError::InvalidRequest(format!(
                    "{field}: unknown event {name:?} (review.pending, review.decided, review.expired, clearance.denied)"
                )))
            }
        }
    }
    if events.is_empty() {
        return Err(VaultError::InvalidRequest(format!("{field} is empty")));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn update(v: Value) -> NotificationSettingsUpdate {
        serde_json::from_value(v).expect("update")
    }

    const STRICT: UrlPolicy = UrlPolicy {
        allow_loopback: false,
    };
    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const ANY_SENDER: EmailPolicy = EmailPolicy { allowed_from: None };

    #[test]
    fn email_settings_take_plain_addresses_and_an_allowed_sender() {
        let s = update(
            json!({"email": {"to": ["ops@example.com", "OPS@example.com", "sec@example.com"],
            "from": "vault@alerts.example.com"}}),
        )
        .apply(None, STRICT, &ANY_SENDER)
        .expect("valid");
        let email = s.email.clone().expect("email");
        assert_eq!(email.to, ["ops@example.com", "sec@example.com"]);
        assert_eq!(email.events, DEFAULT_EVENTS.to_vec());
        assert_eq!(s.targets(NotificationEvent::ReviewPending), vec!["email"]);
        let view = serde_json::to_value(NotificationSettingsView::from(&s)).expect("json");
        assert_eq!(view["email"]["from"], "vault@alerts.example.com");
        let identities = EmailPolicy {
            allowed_from: Some(vec!["alerts.example.com".into()]),
        };
        let from = |from: &str| {
            update(json!({"email": {"to": ["ops@example.com"], "from": from}})).apply(
                None,
                STRICT,
                &identities,
            )
        };
        assert!(from("vault@alerts.example.com").is_ok());
        match from("vault@example.com") {
            Err(VaultError::InvalidRequest(m)) => assert!(m.contains("sender identities"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slack_settings_default_to_the_review_events_and_keep_their_signing_secret() {
        let first = update(json!({"slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x",
            "signing_secret": SLACK_SECRET, "reviewer_user_ids": ["U2CERLKJA", "W012A3CDE", "U2CERLKJA"]}}))
        .apply(None, STRICT, &ANY_SENDER)
        .expect("valid");
        let slack = first.slack.clone().expect("slack");
        assert_eq!(slack.events, DEFAULT_EVENTS.to_vec());
        assert_eq!(slack.reviewer_user_ids, ["U2CERLKJA", "W012A3CDE"]);
        assert_eq!(
            first.targets(NotificationEvent::ReviewPending),
            vec![super::super::slack::TARGET_ID]
        );
        assert!(first.targets(NotificationEvent::ClearanceDenied).is_empty());
        let view = serde_json::to_value(NotificationSettingsView::from(&first)).expect("json");
        assert!(!view.to_string().contains(SLACK_SECRET), "{view}");
        assert_eq!(view["slack"]["signing_secret_set"], true);
        // Sent back without the secret: kept.
        let second = update(
            json!({"slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/y",
            "reviewer_user_ids": ["U2CERLKJA"], "events": ["review.pending"]}}),
        )
        .apply(Some(&first), STRICT, &ANY_SENDER)
        .expect("valid");
        let kept = second.slack.expect("slack");
        assert_eq!(kept.signing_secret, SLACK_SECRET);
        assert_eq!(kept.events, vec![NotificationEvent::ReviewPending]);
        // Left out: Slack is off.
        let off = update(json!({"webhooks": []}))
            .apply(Some(&first), STRICT, &ANY_SENDER)
            .expect("valid");
        assert_eq!(off.slack, None);
        assert_eq!(
            serde_json::to_value(NotificationSettingsView::from(&off)).expect("json")["slack"],
            Value::Null
        );
    }

    #[test]
    fn settings_stored_before_slack_existed_still_read() {
        let stored: NotificationSettings = serde_json::from_value(json!({"webhooks": [
            {"id": "wh_1", "url": "https://a.example.com/", "secret": "0123456789abcdef", "events": ["review.pending"]}
        ]}))
        .expect("old settings");
        assert_eq!(stored.slack, None);
        assert_eq!(
            stored.targets(NotificationEvent::ReviewPending),
            vec!["wh_1"]
        );
    }

    #[test]
    fn a_new_webhook_gets_an_id_default_events_and_keeps_its_secret_out_of_the_view() {
        let s = update(json!({"webhooks": [{"url": "https://hooks.example.com/x", "secret": "0123456789abcdef"}]}))
            .apply(None, STRICT, &ANY_SENDER)
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
        .apply(None, STRICT, &ANY_SENDER)
        .expect("valid");
        let id = first.webhooks[0].id.clone();
        let second = update(json!({"webhooks": [{"id": id, "url": "https://b.example.com/", "events": ["clearance.denied"]}]}))
            .apply(Some(&first), STRICT, &ANY_SENDER)
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
                json!({"email": {"to": [], "from": "v@example.com"}}),
                "email.to must name 1 to 10",
            ),
            (
                json!({"email": {"to": ["Ops <ops@example.com>"], "from": "v@example.com"}}),
                "email.to: ",
            ),
            (
                json!({"email": {"to": ["ops@example.com"], "from": "v@example.com\r\nBcc: x@y.z"}}),
                "email.from: ",
            ),
            (
                json!({"email": {"to": ["ops@example.com"], "from": "v@example.com", "events": []}}),
                "email.events is empty",
            ),
            (
                json!({"slack": {"webhook_url": "https://hooks.slack.com/x", "reviewer_user_ids": ["U1234ABCD"]}}),
                "signing_secret is required",
            ),
            (
                json!({"slack": {"webhook_url": "https://hooks.slack.com/x", "signing_secret": SLACK_SECRET, "reviewer_user_ids": []}}),
                "reviewer_user_ids is empty",
            ),
            (
                json!({"slack": {"webhook_url": "https://hooks.slack.com/x", "signing_secret": SLACK_SECRET, "reviewer_user_ids": ["ada"]}}),
                "not a Slack user id",
            ),
            (
                json!({"slack": {"webhook_url": "http://hooks.slack.com/x", "signing_secret": SLACK_SECRET, "reviewer_user_ids": ["U1234ABCD"]}}),
                "slack.webhook_url: the URL must use https",
            ),
            (
                json!({"slack": {"webhook_url": "https://169.254.169.254/x", "signing_secret": SLACK_SECRET, "reviewer_user_ids": ["U1234ABCD"]}}),
                "link-local",
            ),
            (
                json!({"slack": {"webhook_url": "https://hooks.slack.com/x", "signing_secret": "short", "reviewer_user_ids": ["U1234ABCD"]}}),
                "slack.signing_secret must be 16 to 256",
            ),
            (
                json!({"slack": {"webhook_url": "https://hooks.slack.com/x", "signing_secret": SLACK_SECRET, "reviewer_user_ids": ["U1234ABCD"], "events": ["nope"]}}),
                "slack.events: unknown event",
            ),
        ] {
            match update(body.clone()).apply(None, STRICT, &ANY_SENDER) {
                Err(VaultError::InvalidRequest(m)) => assert!(m.contains(why), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
