//! `POST /slack/interactions` in-process: only a request Slack signed with the tenant's signing secret, recently,
//! for a tenant's Approve/Deny action decides anything, and only when the clicking user is one of the tenant's
//! Slack reviewers; then the decision is the review use case's (ledger, four eyes, notifications).

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::send;
use ledgix_core::notify::slack;
use ledgix_core::roles::Role;
use serde_json::{json, Value};

const SECRET: &str = "slack-signing-secret-for-tests";
const REVIEWER: &str = "U0REVIEWER";

struct TestVault {
    app: axum::Router,
    api_key: String,
    tenant_id: String,
    _dir: tempfile::TempDir,
}

async fn vault() -> TestVault {
    // Loopback URLs for Slack, as in `ledgix dev` with VAULT_ALLOW_PRIVATE_WEBHOOK_URLS: no notifier runs here,
    // so nothing is sent to them.
    let tv = common::tenant_vault(Role::ALL.to_vec(), |config| {
        config.notify.allow_loopback_webhooks = true;
    })
    .await;
    let (app, _) = common::app(&tv.vault, None);
    TestVault {
        app,
        api_key: tv.api_key,
        tenant_id: tv.tenant_id,
        _dir: tv.dir,
    }
}

impl TestVault {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("x-vault-api-key", &self.api_key);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let (status, _, body) = send(&self.app, request).await;
        (status, body)
    }

    /// A request routed to review, pending: its request id.
    async fn pending_request(&self) -> String {
        let rego = "package p\ndefault decision := \"review\"";
        let (status, _) = self
            .call(
                Method::POST,
                "/register-policy",
                Some(json!({"policy_id": "p", "tools": ["wire"], "rego": rego})),
            )
            .await;
        assert!(status.is_success(), "{status}");
        let (status, body) = self
            .call(
                Method::POST,
                "/request-clearance",
                Some(json!({"tool_name": "wire", "tool_args": {"amount": 4200}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "pending_review", "{body}");
        body["request_id"].as_str().expect("request id").to_string()
    }

    async fn status_of(&self, request_id: &str) -> String {
        let (_, body) = self
            .call(
                Method::GET,
                &format!("/clearance-status/{request_id}"),
                None,
            )
            .await;
        body["status"].as_str().unwrap_or_default().to_string()
    }

    async fn deliveries(&self) -> Vec<Value> {
        let (status, body) = self
            .call(Method::GET, "/notification-deliveries", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["deliveries"].as_array().cloned().unwrap_or_default()
    }
}

/// `application/x-www-form-urlencoded` of one field.
fn form(name: &str, value: &str) -> String {
    let mut out = format!("{name}=");
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn click(tenant_id: &str, request_id: &str, user_id: &str, approve: bool) -> String {
    let action = if approve {
        slack::APPROVE_ACTION
    } else {
        slack::DENY_ACTION
    };
    let payload = json!({
        "type": "block_actions",
        "team": {"id": "T0TEAM", "domain": "acme"},
        "user": {"id": user_id, "username": "ada", "name": "Ada", "team_id": "T0TEAM"},
        "api_app_id": "A0APP",
        "response_url": "http://127.0.0.1:9/actions/T0TEAM/1/x",
        "actions": [{"type": "button", "block_id": "ledgix_review", "action_id": action,
                     "value": slack::action_value(tenant_id, request_id), "action_ts": "1.2"}],
    });
    form("payload", &payload.to_string())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The request as Slack sends it: the form body, the timestamp, the signature (`None`: left out).
fn interaction(body: &str, timestamp: Option<i64>, signature: Option<String>) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/slack/interactions")
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(ts) = timestamp {
        request = request.header("x-slack-request-timestamp", ts.to_string());
    }
    if let Some(sig) = signature {
        request = request.header("x-slack-signature", sig);
    }
    request.body(Body::from(body.to_string())).expect("request")
}

fn signed(body: &str, timestamp: i64, secret: &str) -> Request<Body> {
    let signature = slack::signature(secret, &timestamp.to_string(), body.as_bytes());
    interaction(body, Some(timestamp), Some(signature))
}

async fn configure_slack(v: &TestVault) {
    let (status, view) = v
        .call(
            Method::PUT,
            "/notification-settings",
            Some(
                json!({"slack": {"webhook_url": "http://127.0.0.1:9/services/T0/B0/x",
                "signing_secret": SECRET, "reviewer_user_ids": [REVIEWER]}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(!view.to_string().contains(SECRET), "{view}");
    assert_eq!(view["slack"]["signing_secret_set"], true);
    assert_eq!(view["slack"]["reviewer_user_ids"], json!([REVIEWER]));
    assert_eq!(
        view["slack"]["events"],
        json!(["review.pending", "review.decided", "review.expired"])
    );
}

fn assert_unauthorized(status: StatusCode, body: &Value, what: &str) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    assert!(body["error"]["request_id"].is_string(), "{what}");
}

#[tokio::test]
async fn only_a_recent_request_signed_with_the_tenants_secret_is_heard() {
    let v = vault().await;
    configure_slack(&v).await;
    let request_id = v.pending_request().await;
    let body = click(&v.tenant_id, &request_id, REVIEWER, true);
    let forged = format!("v0={}", "0".repeat(64));
    let cases = [
        (interaction(&body, None, None), "no headers"),
        (interaction(&body, Some(now()), None), "no signature header"),
        (
            interaction(&body, Some(now()), Some(forged)),
            "forged signature",
        ),
        (
            signed(&body, now(), "another-secret-of-16+"),
            "another secret",
        ),
        (
            signed(&body, now() - 6 * 60, SECRET),
            "signed, but 6 minutes old",
        ),
        (
            signed(&body, now() + 6 * 60, SECRET),
            "signed, 6 minutes ahead",
        ),
        (
            signed(
                &click("tn_unknown", &request_id, REVIEWER, true),
                now(),
                SECRET,
            ),
            "a tenant without Slack settings",
        ),
        (signed("payload=%7B%7D", now(), SECRET), "no Ledgix action"),
        (signed("", now(), SECRET), "empty body"),
    ];
    for (request, what) in cases {
        let (status, _, answer) = send(&v.app, request).await;
        assert_unauthorized(status, &answer, what);
    }
    // Signed over another body: the signature covers the body exactly.
    let other = click(&v.tenant_id, &request_id, REVIEWER, false);
    let ts = now();
    let signature = slack::signature(SECRET, &ts.to_string(), other.as_bytes());
    let (status, _, answer) = send(&v.app, interaction(&body, Some(ts), Some(signature))).await;
    assert_unauthorized(status, &answer, "the signature of another body");
    assert_eq!(v.status_of(&request_id).await, "pending_review");
}

#[tokio::test]
async fn a_click_by_someone_else_decides_nothing_and_a_reviewers_click_decides_once() {
    let v = vault().await;
    configure_slack(&v).await;
    let request_id = v.pending_request().await;
    let announced = v.deliveries().await;
    assert!(
        announced
            .iter()
            .any(|d| d["target_id"] == "slack" && d["event"] == "review.pending"),
        "{announced:?}"
    );

    let stranger = click(&v.tenant_id, &request_id, "U0STRANGER", true);
    let (status, _, answer) = send(&v.app, signed(&stranger, now(), SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"outcome": "not_a_reviewer", "request_id": request_id})
    );
    assert_eq!(v.status_of(&request_id).await, "pending_review");

    let approve = click(&v.tenant_id, &request_id, REVIEWER, true);
    let (status, _, answer) = send(&v.app, signed(&approve, now(), SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"outcome": "approved", "request_id": request_id})
    );
    assert_eq!(v.status_of(&request_id).await, "approved");
    let (_, ledger) = v.call(Method::GET, "/ledger?limit=5", None).await;
    let event = ledger["entries"]
        .as_array()
        .and_then(|entries| {
            entries.iter().find(|e| {
                e["request_id"] == request_id.as_str() && e["action_category"] == "review.decision"
            })
        })
        .cloned()
        .expect("the review's ledger event");
    assert_eq!(
        event["action_metadata"]["reviewer_key_id"],
        "slack:U0REVIEWER"
    );
    assert_eq!(
        event["action_metadata"]["reviewer_name"],
        "Ada (Slack U0REVIEWER)"
    );

    // A second click (or a deny after the approval) finds it decided.
    let deny = click(&v.tenant_id, &request_id, REVIEWER, false);
    let (status, _, answer) = send(&v.app, signed(&deny, now(), SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "not_pending");
    assert_eq!(v.status_of(&request_id).await, "approved");

    // What the users see next goes to the response_url through the notifier: the stranger's note, the
    // approval replacing the message, the message updated again for the late click; and the channel is told.
    let deliveries = v.deliveries().await;
    let updates: Vec<&str> = deliveries
        .iter()
        .filter(|d| d["target_id"] == "slack_response")
        .filter_map(|d| d["event"].as_str())
        .collect();
    assert_eq!(
        updates,
        ["review.decided", "review.decided", "review.pending"],
        "newest first: {deliveries:?}"
    );
    assert!(deliveries
        .iter()
        .any(|d| d["target_id"] == "slack" && d["event"] == "review.decided"));
}

#[tokio::test]
async fn a_deny_click_denies() {
    let v = vault().await;
    configure_slack(&v).await;
    let request_id = v.pending_request().await;
    let deny = click(&v.tenant_id, &request_id, REVIEWER, false);
    let (status, _, answer) = send(&v.app, signed(&deny, now(), SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["outcome"], "denied");
    assert_eq!(v.status_of(&request_id).await, "denied");
}

#[tokio::test]
async fn slack_and_email_settings_are_checked() {
    let v = vault().await;
    for (body, why) in [
        (
            json!({"slack": {"webhook_url": "https://10.0.0.7/x", "signing_secret": SECRET, "reviewer_user_ids": [REVIEWER]}}),
            "private",
        ),
        (
            json!({"slack": {"webhook_url": "https://hooks.slack.com/x", "signing_secret": SECRET, "reviewer_user_ids": ["someone"]}}),
            "not a Slack user id",
        ),
        (
            json!({"slack": {"webhook_url": "https://hooks.slack.com/x", "signing_secret": SECRET, "reviewer_user_ids": [REVIEWER], "colour": "red"}}),
            "unknown field",
        ),
        (
            json!({"email": {"to": ["Ops <ops@example.com>"], "from": "vault@example.com"}}),
            "email.to: ",
        ),
        (
            json!({"email": {"to": ["ops@example.com"], "from": "vault@example.com", "cc": []}}),
            "unknown field",
        ),
    ] {
        let (status, answer) = v
            .call(Method::PUT, "/notification-settings", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{body}: {message}");
    }
    let (status, view) = v.call(Method::GET, "/notification-settings", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view, json!({"webhooks": [], "slack": null, "email": null}));
}
