//! The `http` judge: a tenant's own service-to-service judge, spoken to in the versioned protocol of
//! docs/judge.md. It receives the call and the whole policy as structured data (no prompt, no retrieval) and
//! answers with the verdict object; this module only builds the envelope and reads the answer.

use std::time::Duration;

use async_trait::async_trait;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::Uri;
use ledgix_core::ports::{JudgeCall, JudgeModel, ModelError, ModelReply};
use serde_json::{json, Value};

use crate::http_client::{error_detail, parse_url, status_error, HttpClient, Response};
use crate::ConfigError;

/// The protocol version this adapter speaks (the envelope's `version`).
const PROTOCOL_VERSION: u32 = 1;

/// What an `HttpJudge` is built from (`VAULT_JUDGE_URL`, `VAULT_JUDGE_API_KEY`).
#[derive(Clone)]
pub struct HttpJudgeConfig {
    /// Where the judge is POSTed, e.g. `https://judge.tenant.example/v1/judge`.
    pub url: String,
    /// Sent as `X-API-Key`.
    pub api_key: String,
    /// The most one call (request and whole answer) may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for HttpJudgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpJudgeConfig")
            .field("url", &self.url)
            .field("api_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct HttpJudge {
    client: HttpClient,
    url: Uri,
    headers: HeaderMap,
    api_key: String,
    timeout: Duration,
}

impl HttpJudge {
    /// With a connection pool of its own.
    pub fn new(config: HttpJudgeConfig) -> Result<Self, ConfigError> {
        Self::with_client(config, HttpClient::new()?)
    }

    /// Sharing `client`'s connection pool.
    pub fn with_client(config: HttpJudgeConfig, client: HttpClient) -> Result<Self, ConfigError> {
        if config.api_key.is_empty() {
            return Err(ConfigError("the http judge needs an API key".into()));
        }
        let mut value = HeaderValue::from_str(&config.api_key).map_err(|_| {
            ConfigError("the http judge's API key is not a valid header value".into())
        })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("x-api-key"), value);
        Ok(HttpJudge {
            client,
            url: parse_url(&config.url)?,
            headers,
            api_key: config.api_key,
            timeout: config.timeout,
        })
    }
}

impl std::fmt::Debug for HttpJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpJudge")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl JudgeModel for HttpJudge {
    fn backend(&self) -> &str {
        "http"
    }

    fn model_id(&self) -> &str {
        "http"
    }

    async fn decide(&self, call: JudgeCall<'_>) -> Result<ModelReply, ModelError> {
        let request = envelope(&call)?;
        let Response { status, body } = self
            .client
            .post_json(&self.url, &self.headers, &request, self.timeout)
            .await?;
        if !status.is_success() {
            return Err(status_error(
                status,
                &error_detail(&body, Some(&self.api_key)),
            ));
        }
        parse_answer(&body)
    }
}

/// The request body of docs/judge.md: the version, the ids, `call` and `policy` from the core's structured
/// data, and the verdict schema.
fn envelope(call: &JudgeCall<'_>) -> Result<Value, ModelError> {
    let part = |name: &str| {
        call.data.get(name).cloned().ok_or_else(|| {
            ModelError::Rejected(format!("the judge call's data has no {name:?} to send"))
        })
    };
    Ok(json!({
        "version": PROTOCOL_VERSION,
        "tenant_id": call.tenant_id,
        "request_id": call.request_id,
        "call": part("call")?,
        "policy": part("policy")?,
        "verdict_schema": call.verdict_schema,
    }))
}

/// `{"verdict": {...}, "usage"?: {"input_tokens", "output_tokens"}, "model"?}`.
fn parse_answer(body: &[u8]) -> Result<ModelReply, ModelError> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|e| ModelError::InvalidOutput(format!("the judge's answer is not JSON ({e})")))?;
    let verdict = answer
        .get("verdict")
        .filter(|v| v.is_object())
        .cloned()
        .ok_or_else(|| {
            ModelError::InvalidOutput("the judge's answer has no verdict object".into())
        })?;
    let usage = answer.get("usage");
    let tokens = |name: &str| {
        usage
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(ModelReply {
        verdict,
        input_tokens: tokens("input_tokens"),
        output_tokens: tokens("output_tokens"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgix_core::ports::JudgePrompt;

    #[test]
    fn the_envelope_is_the_documented_one() {
        let prompt = JudgePrompt {
            system: "unused".into(),
            user: "unused".into(),
        };
        let data = json!({
            "call": {"tool_name": "refund", "tool_args": {"amount": 40}, "agent_id": "a", "session_id": "s", "context": {}},
            "policy": {"policy_id": "p", "version": 1, "policy_version_id": "pv", "description": "d",
                       "complete": true, "passages": [{"id": "R1", "text": "Refunds under 50 are fine."}]},
        });
        let schema = json!({"type": "object"});
        let call = JudgeCall {
            tenant_id: "t_1",
            request_id: "req_1",
            prompt: &prompt,
            data: &data,
            verdict_schema: &schema,
        };
        assert_eq!(
            envelope(&call).unwrap(),
            json!({
                "version": 1,
                "tenant_id": "t_1",
                "request_id": "req_1",
                "call": data["call"],
                "policy": data["policy"],
                "verdict_schema": schema,
            })
        );
        let partial = json!({"call": {}});
        let call = JudgeCall {
            data: &partial,
            ..call
        };
        assert!(matches!(envelope(&call), Err(ModelError::Rejected(_))));
    }

    #[test]
    fn answers_give_the_verdict_and_optional_usage() {
        let verdict = json!({"decision": "deny", "confidence": 0.75, "reason": "over limit", "rules_applied": ["R1"]});
        let full = json!({"verdict": verdict, "usage": {"input_tokens": 120, "output_tokens": 30}, "model": "x"});
        let reply = parse_answer(full.to_string().as_bytes()).unwrap();
        assert_eq!(reply.verdict, verdict);
        assert_eq!((reply.input_tokens, reply.output_tokens), (120, 30));
        let bare = json!({"verdict": verdict});
        let reply = parse_answer(bare.to_string().as_bytes()).unwrap();
        assert_eq!((reply.input_tokens, reply.output_tokens), (0, 0));
        for body in [
            &b"approve"[..],
            br#"{"decision": "approve"}"#,
            br#"{"verdict": "approve"}"#,
            br#"[]"#,
        ] {
            assert!(matches!(
                parse_answer(body),
                Err(ModelError::InvalidOutput(_))
            ));
        }
    }

    #[test]
    fn settings_are_checked() {
        let config = HttpJudgeConfig {
            url: "https://judge.example.com/v1/judge".into(),
            api_key: "k_secret".into(),
            timeout: Duration::from_secs(10),
        };
        assert!(!format!("{config:?}").contains("k_secret"));
        let judge = HttpJudge::new(config.clone()).unwrap();
        assert!(!format!("{judge:?}").contains("k_secret"));
        assert_eq!((judge.backend(), judge.model_id()), ("http", "http"));
        assert_eq!(judge.embedding_model(), None);
        let no_key = HttpJudgeConfig {
            api_key: String::new(),
            ..config.clone()
        };
        assert!(HttpJudge::new(no_key).is_err());
        let bad_url = HttpJudgeConfig {
            url: "judge.example.com".into(),
            ..config
        };
        assert!(HttpJudge::new(bad_url).is_err());
    }
}
