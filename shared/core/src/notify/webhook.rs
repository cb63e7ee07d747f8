//! A webhook delivery on the wire: the JSON body and the headers. The signature is the one the SDK's
//! `verify_webhook` checks: `X-Ledgix-Signature: sha256=<hex HMAC-SHA256 of the raw body under the secret>`.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{Delivery, NotificationEvent, OutboundPost, WebhookTarget};
use crate::model::ClearanceRecord;

/// Arguments larger than this (as JSON) are left out of the body (`tool_args_truncated: true`; the receiver
/// reads them from `GET /clearance-status`): a request may carry 256 KiB, more than a webhook should, and more
/// than a DynamoDB item holds once sealed.
pub const MAX_BODY_TOOL_ARGS: usize = 32 * 1024;

/// The event body of a decision: what a reviewer needs to act on it without another call.
pub fn event_body(
    event: NotificationEvent,
    record: &ClearanceRecord,
    occurred_at: &str,
    extra: Value,
) -> Value {
    let mut body = json!({
        "event": event.as_str(),
        "tenant_id": record.tenant_id,
        "request_id": record.request_id,
        "status": record.status.as_str(),
        "tool_name": record.request.tool_name,
        "tool_args": record.request.tool_args,
        "agent_id": record.request.agent_id,
        "session_id": record.request.session_id,
        "reason": record.reason,
        "reason_code": record.reason_code,
        "confidence_bucket": record.confidence_bucket.as_str(),
        "policy_id": record.policy_id,
        "policy_version_id": record.policy_version_id,
        "requested_at": record.created_at,
        "occurred_at": occurred_at,
    });
    if let Some(map) = body.as_object_mut() {
        let args_size =
            serde_json::to_vec(&record.request.tool_args).map_or(usize::MAX, |v| v.len());
        if args_size > MAX_BODY_TOOL_ARGS {
            map.insert("tool_args".into(), Value::Null);
            map.insert("tool_args_truncated".into(), Value::Bool(true));
        }
        if let Value::Object(extra) = extra {
            map.extend(extra);
        }
    }
    body
}

/// A text field of an event body (`""` when absent).
pub fn str_of<'a>(body: &'a Value, key: &str) -> &'a str {
    body.get(key).and_then(Value::as_str).unwrap_or("")
}

/// What happened to the request, as the messages (Slack, email) tell it from its event body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    ReviewNeeded,
    Expired,
    DeniedByPolicy,
    /// `by`: the reviewer's name, else the key id, else "a reviewer".
    Approved {
        by: &'a str,
    },
    Withdrawn,
    Denied {
        by: &'a str,
    },
}

pub fn outcome(event: NotificationEvent, body: &Value) -> Outcome<'_> {
    let by = [
        str_of(body, "reviewer_name"),
        str_of(body, "reviewer_key_id"),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("a reviewer");
    match event {
        NotificationEvent::ReviewPending => Outcome::ReviewNeeded,
        NotificationEvent::ReviewExpired => Outcome::Expired,
        NotificationEvent::ClearanceDenied => Outcome::DeniedByPolicy,
        NotificationEvent::ReviewDecided => {
            match (str_of(body, "status"), str_of(body, "decided_by")) {
                ("approved", _) => Outcome::Approved { by },
                (_, "agent") => Outcome::Withdrawn,
                _ => Outcome::Denied { by },
            }
        }
    }
}

/// `sha256=` + hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts a key of any length: new_from_slice cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The POST for one attempt of `delivery` to `target`, stamped `timestamp` (Unix seconds). The body carries the
/// delivery id too, so a receiver that logs only bodies can still de-duplicate.
pub fn request(delivery: &Delivery, target: &WebhookTarget, timestamp: i64) -> OutboundPost {
    let mut body = delivery.body.clone();
    if let Some(map) = body.as_object_mut() {
        map.insert("delivery_id".into(), json!(delivery.delivery_id));
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    OutboundPost {
        url: target.url.clone(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "ledgix-vault-webhooks/1".into()),
            ("x-ledgix-event".into(), delivery.event.as_str().into()),
            ("x-ledgix-delivery".into(), delivery.delivery_id.clone()),
            ("x-ledgix-timestamp".into(), timestamp.to_string()),
            (
                "x-ledgix-signature".into(),
                signature(&target.secret, &bytes),
            ),
        ],
        body: bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
