//! Slack on the wire: the Block Kit messages the notifier posts to a tenant's incoming webhook (rendered at send
//! time from the event body, so a delivery stores one body whatever its target), the update that replaces a
//! message once its request is decided, and the interaction requests Slack sends when a reviewer clicks
//! Approve or Deny: their form-encoded `payload`, and the signature Slack puts on them (`X-Slack-Signature`,
//! "Verifying requests from Slack").
//!
//! Everything an agent or a tenant supplies (tool name, arguments, reason, ids) is escaped for mrkdwn (`&`, `<`,
//! `>`: no mention, channel ping or link can be smuggled into a message) and sent with `verbatim: true` (Slack does
//! not turn `@here` or URLs in it into anything), and every text is bounded by Slack's limits.

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::webhook::{outcome, str_of, Outcome};
use super::{NotificationEvent, OutboundPost};

/// The target id of a tenant's Slack incoming webhook in deliveries.
pub const TARGET_ID: &str = "slack";
/// The target id of a message update posted to an interaction's `response_url`.
pub const RESPONSE_TARGET_ID: &str = "slack_response";
/// The `action_id`s of the two buttons of a `review.pending` message.
pub const APPROVE_ACTION: &str = "ledgix_approve";
pub const DENY_ACTION: &str = "ledgix_deny";
/// An interaction whose `X-Slack-Request-Timestamp` is further than this from now is refused (a replay).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 5 * 60;

/// Slack's limits, in UTF-16 code units to be safe: a section's text, a section field, a header.
const MAX_SECTION_TEXT: usize = 3000;
const MAX_FIELD_TEXT: usize = 2000;
const MAX_HEADER_TEXT: usize = 150;
/// What a text cut short ends with.
const CUT: &str = "…";

// ----- rendering ------------------------------------------------------------------------------------------

/// `&`, `<` and `>` as Slack's mrkdwn wants them escaped (the only control characters it has).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// `text` escaped, within `budget` UTF-16 units, ending with `marker` when cut (never inside an entity).
fn escaped_within(text: &str, budget: usize, marker: &str) -> String {
    let mut out = String::new();
    let mut used = 0;
    let room = budget.saturating_sub(utf16_len(marker));
    let mut escaped = String::new();
    for (i, c) in text.chars().enumerate() {
        escaped.clear();
        push_escaped(&mut escaped, c);
        let cost = utf16_len(&escaped);
        if used + cost > room {
            // Would the rest fit without the marker? Only if this is the last character.
            let rest: String = text.chars().skip(i).collect();
            let rest = escape(&rest);
            if used + utf16_len(&rest) <= budget {
                out.push_str(&rest);
            } else {
                out.push_str(marker);
            }
            return out;
        }
        out.push_str(&escaped);
        used += cost;
    }
    out
}

/// Plain text within `budget` (a header: plain text is not parsed, so it needs no escaping).
fn plain_within(text: &str, budget: usize) -> String {
    if utf16_len(text) <= budget {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = utf16_len(CUT);
    for c in text.chars() {
        if used + c.len_utf16() > budget {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    out.push_str(CUT);
    out
}

/// Inline code: escaped, with backticks made harmless (one would end the code span).
fn code(text: &str, budget: usize) -> String {
    let inner = escaped_within(&text.replace('`', "'"), budget.saturating_sub(2), CUT);
    format!("`{inner}`")
}

fn mrkdwn(text: String) -> Value {
    json!({"type": "mrkdwn", "text": text, "verbatim": true})
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": mrkdwn(text)})
}

/// The arguments as a code block within a section's limit: pretty JSON, escaped, cut with a note saying where
/// the whole call is.
fn arguments_block(body: &Value) -> String {
    const HEAD: &str = "*Arguments*\n```\n";
    const TAIL: &str = "\n```";
    let request_id = str_of(body, "request_id");
    if body.get("tool_args_truncated").and_then(Value::as_bool) == Some(true) {
        return format!(
            "*Arguments*\ntoo large to show here: `GET /clearance-status/{}` has them",
            escape(request_id)
        );
    }
    let args = body.get("tool_args").cloned().unwrap_or(Value::Null);
    let pretty = serde_json::to_string_pretty(&args).unwrap_or_default();
    // Three backticks in a value would end the code block early.
    let pretty = pretty.replace("```", "``\u{200b}`");
    let marker = format!("\n… (cut: GET /clearance-status/{request_id} has them all)");
    let budget = MAX_SECTION_TEXT - utf16_len(HEAD) - utf16_len(TAIL);
    format!(
        "{HEAD}{}{TAIL}",
        escaped_within(&pretty, budget, &escape(&marker))
    )
}

/// The request in detail: a header, the facts as fields, the arguments, the reason, and where it came from.
fn detail_blocks(body: &Value, title: &str) -> Vec<Value> {
    let tool = str_of(body, "tool_name");
    let field = |name: &str, value: String| mrkdwn(format!("*{name}*\n{value}"));
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text",
            "text": plain_within(&format!("{title}: {tool}"), MAX_HEADER_TEXT), "emoji": false}}),
        json!({"type": "section", "fields": [
            field("Tool", code(tool, MAX_FIELD_TEXT - 10)),
            field("Policy", code(str_of(body, "policy_id"), MAX_FIELD_TEXT - 10)),
            field("Confidence", escaped_within(str_of(body, "confidence_bucket"), 100, CUT)),
            field("Agent", code(str_of(body, "agent_id"), MAX_FIELD_TEXT - 10)),
        ]}),
        section(arguments_block(body)),
    ];
    let reason = str_of(body, "reason");
    if !reason.is_empty() {
        blocks.push(section(format!(
            "*Reason*\n{}",
            escaped_within(reason, MAX_SECTION_TEXT - 20, CUT)
        )));
    }
    let mut context = format!(
        "Request {} · requested {}",
        code(str_of(body, "request_id"), 300),
        escaped_within(str_of(body, "requested_at"), 64, CUT)
    );
    let review_url = str_of(body, "review_url");
    if review_url.starts_with("https://") || review_url.starts_with("http://") {
        // The vault's own configured address (VAULT_PUBLIC_URL), never agent text; escaped all the same.
        context.push_str(&format!(" · <{}|Open the review page>", escape(review_url)));
    }
    blocks.push(json!({"type": "context", "elements": [mrkdwn(context)]}));
    blocks
}

/// One line saying what happened to the request.
pub fn outcome_line(event: NotificationEvent, body: &Value) -> String {
    let tool = code(str_of(body, "tool_name"), 300);
    let who = |by: &str| escaped_within(by, 300, CUT);
    match outcome(event, body) {
        Outcome::ReviewNeeded => format!(":eyes: *Review needed*: {tool}"),
        Outcome::Expired => {
            format!(":hourglass: *Expired*: no reviewer decided in time, so {tool} was denied")
        }
        Outcome::DeniedByPolicy => format!(":no_entry: *Denied* by policy: {tool}"),
        Outcome::Approved { by } => format!(":white_check_mark: *Approved* by {}: {tool}", who(by)),
        Outcome::Withdrawn => {
            format!(":leftwards_arrow_with_hook: *Withdrawn* by the requesting agent: {tool}")
        }
        Outcome::Denied { by } => format!(":no_entry: *Denied* by {}: {tool}", who(by)),
    }
}

/// The buttons' `value`: which tenant's request (the tenant picks the signing secret an interaction is checked
/// with; the signature then binds the request to that tenant).
pub fn action_value(tenant_id: &str, request_id: &str) -> String {
    format!("{tenant_id}:{request_id}")
}

/// What the notifier posts to the incoming webhook for `event`: for `review.pending` the request in detail with
/// Approve and Deny buttons; for the others one line and the request id.
pub fn message(event: NotificationEvent, body: &Value) -> Value {
    let line = outcome_line(event, body);
    if event != NotificationEvent::ReviewPending {
        return json!({"text": line, "blocks": [
            section(line.clone()),
            json!({"type": "context", "elements": [mrkdwn(format!(
                "Request {}", code(str_of(body, "request_id"), 300)))]}),
        ]});
    }
    let value = action_value(str_of(body, "tenant_id"), str_of(body, "request_id"));
    let mut blocks = detail_blocks(body, "Review needed");
    blocks.push(
        json!({"type": "actions", "block_id": "ledgix_review", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": value,
             "text": {"type": "plain_text", "text": "Approve", "emoji": false}},
            {"type": "button", "action_id": DENY_ACTION, "style": "danger", "value": value,
             "text": {"type": "plain_text", "text": "Deny", "emoji": false}},
        ]}),
    );
    json!({"text": line, "blocks": blocks})
}

/// What replaces a `review.pending` message once the request is no longer pending (posted to the
/// interaction's `response_url`): the same details, no buttons, and the outcome.
pub fn replacement(event: NotificationEvent, body: &Value) -> Value {
    let line = outcome_line(event, body);
    let mut blocks = detail_blocks(body, "Review");
    blocks.insert(1, section(line.clone()));
    json!({"replace_original": true, "text": line, "blocks": blocks})
}

/// A message only the clicking user sees, leaving the original as it is.
pub fn ephemeral(text: &str) -> Value {
    json!({"response_type": "ephemeral", "replace_original": false, "text": escape(text)})
}

/// The POST of a Slack message: JSON, no signature (the incoming webhook's URL is the credential).
pub fn post(url: &str, message: &Value) -> OutboundPost {
    OutboundPost {
        url: url.to_string(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "ledgix-vault-slack/1".into()),
        ],
        body: serde_json::to_vec(message).unwrap_or_default(),
    }
}

// ----- interactions -----------------------------------------------------------------------------------------

/// A Slack user id as Slack shows it: `U` (or `W`, Enterprise Grid) and upper-case letters and digits.
pub fn is_user_id(id: &str) -> bool {
    (3..=32).contains(&id.len())
        && (id.starts_with('U') || id.starts_with('W'))
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A click on one of a message's buttons, as far as the vault reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub tenant_id: String,
    pub request_id: String,
    /// Approve (`true`) or Deny.
    pub approve: bool,
    pub user_id: String,
    /// The Slack user's `name`, else `username`, else the id.
    pub user_name: String,
    pub response_url: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InteractionError {
    #[error("the body has no `payload` field")]
    NoPayload,
    #[error("the payload is not JSON of a Slack interaction: {0}")]
    Malformed(String),
    #[error("not a block_actions interaction")]
    NotBlockActions,
    #[error("no Approve or Deny action of a Ledgix message")]
    NoLedgixAction,
    #[error("the user id is missing or malformed")]
    BadUser,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    user: Option<User>,
    #[serde(default)]
    actions: Vec<Action>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    #[serde(default)]
    action_id: String,
    value: Option<String>,
}

/// Read an interaction request's form body (`payload=<JSON>`). Nothing here is trusted before the signature is
/// checked: the tenant id only chooses the secret to check it with.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, InteractionError> {
    let raw = url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or(InteractionError::NoPayload)?;
    let payload: Payload =
        serde_json::from_str(&raw).map_err(|e| InteractionError::Malformed(e.to_string()))?;
    if payload.kind != "block_actions" {
        return Err(InteractionError::NotBlockActions);
    }
    let (approve, value) = payload
        .actions
        .iter()
        .find_map(|a| {
            let approve = match a.action_id.as_str() {
                APPROVE_ACTION => true,
                DENY_ACTION => false,
                _ => return None,
            };
            a.value.as_deref().map(|v| (approve, v))
        })
        .ok_or(InteractionError::NoLedgixAction)?;
    let (tenant_id, request_id) = value
        .split_once(':')
        .filter(|(t, r)| !t.is_empty() && !r.is_empty())
        .ok_or(InteractionError::NoLedgixAction)?;
    let user = payload.user.ok_or(InteractionError::BadUser)?;
    if !is_user_id(&user.id) {
        return Err(InteractionError::BadUser);
    }
    let user_name = [user.name, user.username]
        .into_iter()
        .flatten()
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        })
        .find(|n| !n.trim().is_empty())
        .unwrap_or_else(|| user.id.clone());
    Ok(Interaction {
        tenant_id: tenant_id.to_string(),
        request_id: request_id.to_string(),
        approve,
        user_id: user.id,
        user_name: user_name.trim().to_string(),
        response_url: payload.response_url.filter(|u| !u.is_empty()),
    })
}

/// Why an interaction's signature is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("X-Slack-Request-Timestamp is not a Unix time")]
    BadTimestamp,
    #[error("X-Slack-Request-Timestamp is more than 5 minutes from now (a replay?)")]
    Stale,
    #[error("X-Slack-Signature does not match the body")]
    Mismatch,
}

/// `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>` under the signing secret.
pub fn signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts a key of any length: new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(signing_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The first half of Slack's check, which needs no secret: the timestamp within 5 minutes of `now` (Unix
/// seconds). Done before anything is looked up, so that a request no signature can save costs nothing more.
pub fn check_timestamp(timestamp: &str, now: i64) -> Result<(), SignatureError> {
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if now.abs_diff(sent) > MAX_CLOCK_SKEW_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

/// Slack's check: the timestamp within 5 minutes of `now` (Unix seconds), and the signature, compared in
/// constant time.
pub fn verify(
    signing_secret: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    check_timestamp(timestamp, now)?;
    let expected = signature(signing_secret, timestamp, body);
    if bool::from(
        expected
            .as_bytes()
            .ct_eq(signature_header.trim().as_bytes()),
    ) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // "Verifying requests from Slack" (api.slack.com/authentication/verifying-requests-from-slack).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(offset: i64) -> i64 {
        TIMESTAMP.parse::<i64>().expect("number") + offset
    }

    #[test]
    fn slacks_published_example_verifies() {
        assert_eq!(signature(SECRET, TIMESTAMP, BODY.as_bytes()), EXPECTED);
        assert_eq!(
            verify(SECRET, TIMESTAMP, EXPECTED, BODY.as_bytes(), at(0)),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, TIMESTAMP, EXPECTED, BODY.as_bytes(), at(299)),
            Ok(())
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused_even_when_correctly_signed() {
        for offset in [301, 6 * 60, -301] {
            assert_eq!(
                verify(SECRET, TIMESTAMP, EXPECTED, BODY.as_bytes(), at(offset)),
                Err(SignatureError::Stale),
                "{offset}"
            );
        }
        assert_eq!(
            verify(SECRET, "yesterday", EXPECTED, BODY.as_bytes(), at(0)),
            Err(SignatureError::BadTimestamp)
        );
    }

    #[test]
    fn a_forged_signature_a_changed_body_or_another_secret_is_refused() {
        let forged = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b504";
        let tampered = BODY.replace("roadrunner", "coyote");
        let cases = [
            (SECRET, TIMESTAMP, forged, BODY.to_string()),
            (SECRET, TIMESTAMP, "", BODY.to_string()),
            (SECRET, TIMESTAMP, "v0=", BODY.to_string()),
            (SECRET, TIMESTAMP, &EXPECTED[..20], BODY.to_string()),
            (SECRET, TIMESTAMP, EXPECTED, tampered),
            (
                "8f742231b10e8888abcd99yyyzzz85a6",
                TIMESTAMP,
                EXPECTED,
                BODY.to_string(),
            ),
            // The timestamp is signed too: moving it forward within the window breaks the signature.
            (SECRET, "1531420619", EXPECTED, BODY.to_string()),
        ];
        for (secret, timestamp, sig, body) in cases {
            assert_eq!(
                verify(secret, timestamp, sig, body.as_bytes(), at(0)),
                Err(SignatureError::Mismatch),
                "{secret} {timestamp} {sig}"
            );
        }
    }

    fn pending_body(args: Value, reason: &str) -> Value {
        json!({"event": "review.pending", "tenant_id": "tn_abc", "request_id": "req-1", "status": "pending_review",
               "tool_name": "wire_transfer", "tool_args": args, "agent_id": "agent-7", "session_id": "s",
               "reason": reason, "reason_code": "policy_review", "confidence_bucket": "none",
               "policy_id": "payments", "policy_version_id": "v1", "requested_at": "2026-01-01T00:00:00Z",
               "occurred_at": "2026-01-01T00:00:00Z"})
    }

    fn texts(message: &Value) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(t)) = map.get("text") {
                        out.push(t.clone());
                    }
                    map.values().for_each(|v| walk(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(message, &mut out);
        out
    }

    #[test]
    fn the_review_page_is_a_link_only_when_the_vault_knows_its_address() {
        let mut body = pending_body(json!({}), "r");
        assert!(!texts(&message(NotificationEvent::ReviewPending, &body))
            .join("\n")
            .contains("Open the review page"));
        body["review_url"] = json!("https://vault.example.com/review");
        let all = texts(&message(NotificationEvent::ReviewPending, &body)).join("\n");
        assert!(
            all.contains("<https://vault.example.com/review|Open the review page>"),
            "{all}"
        );
        body["review_url"] = json!("javascript:alert(1)");
        assert!(!texts(&message(NotificationEvent::ReviewPending, &body))
            .join("\n")
            .contains("Open the review page"));
    }

    #[test]
    fn a_pending_review_has_the_details_and_two_buttons_naming_the_tenant_and_request() {
        let message = message(
            NotificationEvent::ReviewPending,
            &pending_body(json!({"amount": 4200, "to": "acme"}), "needs a human"),
        );
        let blocks = message["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "Review needed: wire_transfer");
        let all = texts(&message).join("\n");
        for expected in [
            "`wire_transfer`",
            "`payments`",
            "\"amount\": 4200",
            "needs a human",
            "none",
            "`req-1`",
        ] {
            assert!(all.contains(expected), "{expected} in {all}");
        }
        let actions = blocks.last().expect("actions");
        assert_eq!(actions["type"], "actions");
        let buttons = actions["elements"].as_array().expect("buttons");
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0]["action_id"], APPROVE_ACTION);
        assert_eq!(buttons[0]["style"], "primary");
        assert_eq!(buttons[0]["text"]["text"], "Approve");
        assert_eq!(buttons[1]["action_id"], DENY_ACTION);
        assert_eq!(buttons[1]["style"], "danger");
        assert_eq!(buttons[1]["text"]["text"], "Deny");
        for b in buttons {
            assert_eq!(b["value"], "tn_abc:req-1");
        }
        assert!(message["text"].as_str().is_some_and(|t| !t.is_empty()));
    }

    #[test]
    fn agent_supplied_text_cannot_ping_link_or_leave_its_code_block() {
        let hostile = "<!channel> <https://evil.example|click> & ```*bold*```";
        let mut body = pending_body(json!({"note": hostile}), hostile);
        body["tool_name"] = json!("pay<@U0ADMIN>`x`");
        let message = message(NotificationEvent::ReviewPending, &body);
        for block in message["blocks"].as_array().expect("blocks") {
            if block["type"] == "header" || block["type"] == "actions" {
                continue; // plain text: Slack does not parse it
            }
            for text in texts(block) {
                assert!(!text.contains('<') && !text.contains('>'), "{text}");
            }
        }
        let all = texts(&message).join("\n");
        assert!(
            all.contains("&lt;!channel&gt;") && all.contains("&amp;"),
            "{all}"
        );
        let args = texts(&message["blocks"][2]).join("");
        assert_eq!(args.matches("```").count(), 2, "{args}");
        // Every mrkdwn object is verbatim: no @here or URL auto-parsing.
        let blocks = serde_json::to_string(&message["blocks"]).expect("json");
        assert_eq!(
            blocks.matches("\"type\":\"mrkdwn\"").count(),
            blocks.matches("\"verbatim\":true").count()
        );
    }

    #[test]
    fn large_arguments_are_cut_to_fit_slacks_section_limit() {
        let big = json!({"blob": "<&>".repeat(5000), "emoji": "💸".repeat(2000)});
        let cut = message(
            NotificationEvent::ReviewPending,
            &pending_body(big, &"why ".repeat(2000)),
        );
        for block in cut["blocks"].as_array().expect("blocks") {
            if let Some(text) = block["text"]["text"].as_str() {
                let limit = if block["type"] == "header" {
                    MAX_HEADER_TEXT
                } else {
                    MAX_SECTION_TEXT
                };
                assert!(utf16_len(text) <= limit, "{} > {limit}", utf16_len(text));
            }
        }
        let args = cut["blocks"][2]["text"]["text"].as_str().expect("args");
        assert!(
            args.ends_with("has them all)\n```"),
            "{}",
            args.chars().rev().take(80).collect::<String>()
        );
        assert!(
            !args.contains("&am\n") && !args.contains("&l…"),
            "no entity is cut"
        );
        let mut body = pending_body(json!(null), "r");
        body["tool_args_truncated"] = json!(true);
        let args =
            message(NotificationEvent::ReviewPending, &body)["blocks"][2]["text"]["text"].clone();
        assert!(
            args.as_str()
                .is_some_and(|t| t.contains("GET /clearance-status/req-1")),
            "{args}"
        );
        let long_tool = "t".repeat(400);
        let mut body = pending_body(json!({}), "r");
        body["tool_name"] = json!(long_tool);
        let header =
            message(NotificationEvent::ReviewPending, &body)["blocks"][0]["text"]["text"].clone();
        assert!(header
            .as_str()
            .is_some_and(|h| h.chars().count() <= MAX_HEADER_TEXT && h.ends_with(CUT)));
    }

    #[test]
    fn decided_expired_and_denied_are_one_line_without_buttons() {
        let mut body = pending_body(json!({}), "r");
        body["status"] = json!("approved");
        body["decided_by"] = json!("reviewer");
        body["reviewer_name"] = json!("Ada <admin>");
        let decided = message(NotificationEvent::ReviewDecided, &body);
        let line = decided["text"].as_str().expect("text");
        assert!(
            line.contains("*Approved* by Ada &lt;admin&gt;") && line.contains("`wire_transfer`"),
            "{line}"
        );
        assert!(!serde_json::to_string(&decided)
            .expect("json")
            .contains(APPROVE_ACTION));
        body["status"] = json!("denied");
        assert!(message(NotificationEvent::ReviewDecided, &body)["text"]
            .as_str()
            .is_some_and(|t| t.contains("*Denied* by Ada")));
        body["decided_by"] = json!("agent");
        assert!(message(NotificationEvent::ReviewDecided, &body)["text"]
            .as_str()
            .is_some_and(|t| t.contains("*Withdrawn*")));
        assert!(message(NotificationEvent::ReviewExpired, &body)["text"]
            .as_str()
            .is_some_and(|t| t.contains("*Expired*")));
        assert!(message(NotificationEvent::ClearanceDenied, &body)["text"]
            .as_str()
            .is_some_and(|t| t.contains("*Denied* by policy")));
    }

    #[test]
    fn the_replacement_keeps_the_details_drops_the_buttons_and_says_the_outcome() {
        let mut body = pending_body(json!({"amount": 1}), "r");
        body["status"] = json!("approved");
        body["reviewer_name"] = json!("ada (Slack U2CERLKJA)");
        let update = replacement(NotificationEvent::ReviewDecided, &body);
        assert_eq!(update["replace_original"], true);
        let blocks = update["blocks"].as_array().expect("blocks");
        assert!(blocks.iter().all(|b| b["type"] != "actions"));
        assert!(texts(&update)
            .join("\n")
            .contains("*Approved* by ada (Slack U2CERLKJA)"));
        assert_eq!(ephemeral("not <you>")["text"], "not &lt;you&gt;");
        assert_eq!(ephemeral("x")["response_type"], "ephemeral");
    }

    fn form(payload: &Value) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    fn click(action_id: &str, value: &str) -> Value {
        json!({"type": "block_actions", "team": {"id": "T1", "domain": "acme"},
               "user": {"id": "U2CERLKJA", "username": "roadrunner", "name": "Road Runner", "team_id": "T1"},
               "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
               "response_url": "https://hooks.slack.com/actions/T1/1/abc",
               "actions": [{"type": "button", "action_id": action_id, "block_id": "ledgix_review",
                            "value": value, "action_ts": "1531420618.000"}]})
    }

    #[test]
    fn an_interaction_names_the_tenant_request_decision_and_user() {
        let got = parse_interaction(&form(&click(APPROVE_ACTION, "tn_abc:req:with:colons")))
            .expect("parsed");
        assert_eq!(
            got,
            Interaction {
                tenant_id: "tn_abc".into(),
                request_id: "req:with:colons".into(),
                approve: true,
                user_id: "U2CERLKJA".into(),
                user_name: "Road Runner".into(),
                response_url: Some("https://hooks.slack.com/actions/T1/1/abc".into()),
            }
        );
        assert!(
            !parse_interaction(&form(&click(DENY_ACTION, "tn_abc:r")))
                .expect("deny")
                .approve
        );
        let mut nameless = click(DENY_ACTION, "tn_abc:r");
        nameless["user"] = json!({"id": "W012A3CDE"});
        assert_eq!(
            parse_interaction(&form(&nameless))
                .expect("parsed")
                .user_name,
            "W012A3CDE"
        );
    }

    #[test]
    fn anything_else_is_not_an_interaction() {
        let mut other_type = click(APPROVE_ACTION, "tn:r");
        other_type["type"] = json!("view_submission");
        let mut bad_user = click(APPROVE_ACTION, "tn:r");
        bad_user["user"]["id"] = json!("roadrunner");
        for (body, error) in [
            (b"".to_vec(), InteractionError::NoPayload),
            (
                b"payload=%7Bnot".to_vec(),
                InteractionError::Malformed(String::new()),
            ),
            (form(&other_type), InteractionError::NotBlockActions),
            (
                form(&click("other_action", "tn:r")),
                InteractionError::NoLedgixAction,
            ),
            (
                form(&click(APPROVE_ACTION, "no-colon")),
                InteractionError::NoLedgixAction,
            ),
            (
                form(&click(APPROVE_ACTION, ":r")),
                InteractionError::NoLedgixAction,
            ),
            (form(&bad_user), InteractionError::BadUser),
        ] {
            match (parse_interaction(&body), &error) {
                (Err(InteractionError::Malformed(_)), InteractionError::Malformed(_)) => {}
                (got, _) => assert_eq!(got, Err(error), "{}", String::from_utf8_lossy(&body)),
            }
        }
    }

    #[test]
    fn slack_user_ids_look_like_slacks() {
        for ok in ["U2CERLKJA", "W012A3CDE", "U0123456789"] {
            assert!(is_user_id(ok), "{ok}");
        }
        for bad in [
            "",
            "U",
            "u2cerlkja",
            "B2CERLKJA",
            "U2CER LKJA",
            "U2CER:",
            &format!("U{}", "A".repeat(40)),
        ] {
            assert!(!is_user_id(bad), "{bad}");
        }
    }
}
