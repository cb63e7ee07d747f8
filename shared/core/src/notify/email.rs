//! Email notifications: the tenant's recipients and sender, which senders the vault may send as, and the
//! message itself. Plain text only: the body carries agent-supplied text (tool name, arguments, reason), which
//! HTML would have to escape perfectly; text cannot run. The message links to the reviewer page and never to
//! an action: following a link only opens the page (no approve-by-GET).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::webhook::{outcome, str_of, Outcome};
use super::{NotificationEvent, SendError};

/// The delivery target id of the tenant's email recipients.
pub const TARGET_ID: &str = "email";
/// The most recipients one tenant may name (one message goes to all of them).
pub const MAX_RECIPIENTS: usize = 10;
/// Longest subject line kept (RFC 5322 recommends 78 characters per header line; encoders fold longer ones).
const MAX_SUBJECT: usize = 200;
/// Arguments longer than this (pretty JSON) are cut, with a note saying where the whole call is.
const MAX_ARGS_TEXT: usize = 16 * 1024;

/// Where a tenant's emails go, and from whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailTarget {
    pub to: Vec<String>,
    pub from: String,
    pub events: Vec<NotificationEvent>,
}

/// Which senders this vault may send as (VAULT_EMAIL_FROM_IDENTITIES: addresses and domains, as verified with
/// the mail service). `None`: any sender (a development transport that sends as anyone). `Some(empty)`: none,
/// so email is refused (SES without identities configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailPolicy {
    pub allowed_from: Option<Vec<String>>,
}

impl EmailPolicy {
    /// Whether `from` is one of the identities, or at one of the domains.
    pub fn check_from(&self, from: &str) -> Result<(), String> {
        let Some(identities) = &self.allowed_from else {
            return Ok(());
        };
        if identities.is_empty() {
            return Err("this vault sends no email: it has no sender identities (VAULT_EMAIL_FROM_IDENTITIES)".into());
        }
        let from = from.to_ascii_lowercase();
        let domain = from.rsplit_once('@').map_or("", |(_, d)| d);
        let allowed = identities.iter().any(|identity| {
            let identity = identity.to_ascii_lowercase();
            if identity.contains('@') {
                identity == from
            } else {
                identity == domain
            }
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{from} is not one of this vault's sender identities ({})",
                identities.join(", ")
            ))
        }
    }
}

/// A plain address `local@domain.tld`: no display name, no spaces, quotes, angle brackets or control
/// characters (nothing that could become another header or recipient), at most 254 characters.
pub fn check_address(address: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{address:?} is not a plain email address ({why})"));
    if address.len() > 254 {
        return bad("longer than 254 characters");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return bad("no @");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("the part before @ must be 1 to 64 characters");
    }
    let allowed_local = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    if !local.chars().all(allowed_local)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return bad("only letters, digits and !#$%&'*+-/=?^_`{|}~. before @");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return bad("the domain must be a name like example.com");
    }
    Ok(())
}

/// One email of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundEmail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

/// Sends email (SES, SMTP, or the log in development).
#[async_trait]
pub trait EmailSender: Send + Sync {
    async fn send(&self, email: &OutboundEmail) -> Result<(), SendError>;
}

/// Control characters (line breaks among them) removed: a subject is one header line.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// What happened, as a title: the subject's text and the body's first line.
fn headline(event: NotificationEvent, body: &Value) -> String {
    let tool = str_of(body, "tool_name");
    match outcome(event, body) {
        Outcome::ReviewNeeded => format!("Review needed: {tool}"),
        Outcome::Expired => format!("Review expired, denied: {tool}"),
        Outcome::DeniedByPolicy => format!("Denied by policy: {tool}"),
        Outcome::Approved { by } => format!("Approved by {by}: {tool}"),
        Outcome::Withdrawn => format!("Withdrawn by the requesting agent: {tool}"),
        Outcome::Denied { by } => format!("Denied by {by}: {tool}"),
    }
}

/// The arguments as pretty JSON, cut at `MAX_ARGS_TEXT` (on a character boundary) with a note.
fn arguments(body: &Value) -> String {
    let request_id = str_of(body, "request_id");
    let elsewhere = format!("GET /clearance-status/{request_id} has them");
    if body.get("tool_args_truncated").and_then(Value::as_bool) == Some(true) {
        return format!("(too large to show here: {elsewhere})");
    }
    let pretty = serde_json::to_string_pretty(body.get("tool_args").unwrap_or(&Value::Null))
        .unwrap_or_default();
    if pretty.len() <= MAX_ARGS_TEXT {
        return pretty;
    }
    let mut end = MAX_ARGS_TEXT;
    while !pretty.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (cut: {elsewhere} all)", &pretty[..end])
}

/// The email announcing `event`, rendered from the delivery's stored event body.
pub fn message(
    target: &EmailTarget,
    event: NotificationEvent,
    body: &Value,
    delivery_id: &str,
) -> OutboundEmail {
    let title = headline(event, body);
    let mut text = format!("{}\n\n", one_line(&title, 1000));
    let facts = [
        ("Event", event.as_str()),
        ("Request", str_of(body, "request_id")),
        ("Tool", str_of(body, "tool_name")),
        ("Agent", str_of(body, "agent_id")),
        ("Policy", str_of(body, "policy_id")),
        ("Confidence", str_of(body, "confidence_bucket")),
        ("Requested", str_of(body, "requested_at")),
    ];
    for (name, value) in facts {
        if !value.is_empty() {
            text.push_str(&format!("{name}: {}\n", one_line(value, 1000)));
        }
    }
    let reason = str_of(body, "reason");
    if !reason.is_empty() {
        text.push_str(&format!("\nReason:\n{reason}\n"));
    }
    text.push_str(&format!("\nArguments:\n{}\n", arguments(body)));
    let review_url = str_of(body, "review_url");
    if review_url.starts_with("https://") || review_url.starts_with("http://") {
        // The vault's own configured address (VAULT_PUBLIC_URL), never agent text.
        text.push_str(&format!(
            "\nOpen the review page: {review_url}\nOpening the page decides nothing: sign in with a reviewer key to approve or deny.\n"
        ));
    }
    text.push_str(&format!("\nDelivery: {delivery_id}\n-- \nLedgix Vault\n"));
    OutboundEmail {
        from: target.from.clone(),
        to: target.to.clone(),
        subject: one_line(&format!("[Ledgix] {title}"), MAX_SUBJECT),
        text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target() -> EmailTarget {
        EmailTarget {
            to: vec!["ops@example.com".into(), "sec@example.com".into()],
            from: "vault@alerts.example.com".into(),
            events: vec![NotificationEvent::ReviewPending],
        }
    }

    fn pending() -> Value {
        json!({"event": "review.pending", "tenant_id": "tn_1", "request_id": "req-1",
               "tool_name": "pay\r\nBcc: evil@example.net", "tool_args": {"amount": 1, "to": "acct-9"},
               "reason": "large transfer", "policy_id": "payments", "confidence_bucket": "none",
               "agent_id": "agent-7", "requested_at": "2026-11-28T00:00:00Z",
               "review_url": "https://vault.example.com/review"})
    }

    #[test]
    fn a_pending_review_reads_as_text_with_the_call_and_a_link_that_decides_nothing() {
        let email = message(
            &target(),
            NotificationEvent::ReviewPending,
            &pending(),
            "dl_1",
        );
        assert_eq!(email.to, ["ops@example.com", "sec@example.com"]);
        assert_eq!(email.from, "vault@alerts.example.com");
        assert_eq!(
            email.subject,
            "[Ledgix] Review needed: pay  Bcc: evil@example.net"
        );
        assert!(!email.subject.contains('\n') && !email.subject.contains('\r'));
        for expected in [
            "Request: req-1",
            "Agent: agent-7",
            "Policy: payments",
            "large transfer",
            "\"to\": \"acct-9\"",
            "Open the review page: https://vault.example.com/review\n",
            "Opening the page decides nothing",
            "Delivery: dl_1",
        ] {
            assert!(email.text.contains(expected), "{expected}: {}", email.text);
        }
        // The only URL in the message is the page itself.
        assert_eq!(email.text.matches("://").count(), 1, "{}", email.text);
    }

    #[test]
    fn outcomes_name_who_decided() {
        let mut body = pending();
        body["tool_name"] = json!("pay");
        body["status"] = json!("approved");
        body["reviewer_name"] = json!("Ada");
        let subject = |event, body: &Value| message(&target(), event, body, "dl_2").subject;
        assert_eq!(
            subject(NotificationEvent::ReviewDecided, &body),
            "[Ledgix] Approved by Ada: pay"
        );
        body["status"] = json!("denied");
        body["decided_by"] = json!("agent");
        assert_eq!(
            subject(NotificationEvent::ReviewDecided, &body),
            "[Ledgix] Withdrawn by the requesting agent: pay"
        );
        assert_eq!(
            subject(NotificationEvent::ReviewExpired, &body),
            "[Ledgix] Review expired, denied: pay"
        );
        assert_eq!(
            subject(NotificationEvent::ClearanceDenied, &body),
            "[Ledgix] Denied by policy: pay"
        );
    }

    #[test]
    fn large_arguments_are_cut_and_say_where_the_rest_is() {
        let mut body = pending();
        body["tool_args"] = json!({"blob": "é".repeat(20_000)});
        let text = message(&target(), NotificationEvent::ReviewPending, &body, "dl_3").text;
        assert!(text.contains("… (cut: GET /clearance-status/req-1 has them all)"));
        assert!(text.len() < MAX_ARGS_TEXT + 2_000);
        body["tool_args_truncated"] = json!(true);
        let text = message(&target(), NotificationEvent::ReviewPending, &body, "dl_3").text;
        assert!(text.contains("too large to show here"));
        let long = one_line(&"x".repeat(500), MAX_SUBJECT);
        assert_eq!(long.chars().count(), MAX_SUBJECT);
    }

    #[test]
    fn only_plain_addresses_are_accepted() {
        for good in ["ops@example.com", "a.b+tag@mail.example.co.uk", "x@a-b.io"] {
            assert_eq!(check_address(good), Ok(()), "{good}");
        }
        for bad in [
            "ops",
            "Ops <ops@example.com>",
            "ops@example.com\r\nBcc: x@y.z",
            "ops@localhost",
            "a b@example.com",
            "\"q\"@example.com",
            ".a@example.com",
            "a@-x.com",
            "a@example..com",
            "",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn senders_must_be_an_identity_or_at_one_of_its_domains() {
        let policy = EmailPolicy {
            allowed_from: Some(vec!["alerts.example.com".into(), "ops@example.org".into()]),
        };
        assert_eq!(policy.check_from("vault@alerts.example.com"), Ok(()));
        assert_eq!(policy.check_from("Vault@Alerts.Example.com"), Ok(()));
        assert_eq!(policy.check_from("ops@example.org"), Ok(()));
        assert!(policy.check_from("other@example.org").is_err());
        assert!(policy.check_from("vault@sub.alerts.example.com").is_err());
        assert!(policy.check_from("vault@example.com").is_err());
        let none = EmailPolicy {
            allowed_from: Some(vec![]),
        };
        assert!(none
            .check_from("vault@alerts.example.com")
            .unwrap_err()
            .contains("VAULT_EMAIL_FROM_IDENTITIES"));
        assert_eq!(EmailPolicy::default().check_from("any@example.com"), Ok(()));
    }
}
