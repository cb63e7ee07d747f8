//! The scripting handle of the test model servers (tests/aws/moto_server.py for Bedrock,
//! tests/aws/model_server.py for the OpenAI-compatible API and the HTTP judge): both serve the same control API
//! on their own port, `POST /_ledgix/model/script` to arm rules and `GET /_ledgix/model/requests` for what the
//! model received. Rules are matched by a substring of the prompt, so tests running in parallel each use a
//! unique one and never reset.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

pub struct Emulator {
    base: String,
    client: Client,
}

impl Emulator {
    pub fn new(base: &str) -> Self {
        Emulator {
            base: base.trim_end_matches('/').to_string(),
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    /// Arm one rule (it takes precedence over the rules armed before it).
    pub async fn script(&self, rule: Value) {
        self.send("POST", json!({"rules": [rule]})).await;
    }

    /// Every request the model received whose text mentions `needle`.
    pub async fn requests_mentioning(&self, needle: &str) -> Vec<Value> {
        match self.send("GET", Value::Null).await {
            Value::Array(all) => all.into_iter().filter(|r| mentions(r, needle)).collect(),
            other => panic!("the request log is not a list: {other}"),
        }
    }

    async fn send(&self, method: &str, body: Value) -> Value {
        let path = if method == "GET" {
            "requests"
        } else {
            "script"
        };
        let url = format!("{}/_ledgix/model/{path}", self.base);
        let payload = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        let request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json")
            .body(Full::new(payload))
            .expect("control request");
        let response = self
            .client
            .request(request)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e} (is the emulator running?)"));
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("control answer")
            .to_bytes();
        assert!(
            status.is_success(),
            "{method} {url}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("control answer is JSON")
        }
    }
}

/// Whether any string in `value` contains `needle`, looking inside strings that are themselves JSON (a logged
/// request body may be kept as text).
pub fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => {
            s.contains(needle)
                || serde_json::from_str::<Value>(s)
                    .ok()
                    .filter(|inner| inner.is_object() || inner.is_array())
                    .is_some_and(|inner| mentions(&inner, needle))
        }
        Value::Array(items) => items.iter().any(|v| mentions(v, needle)),
        Value::Object(map) => map.values().any(|v| mentions(v, needle)),
        _ => false,
    }
}

/// A logged request's body as JSON (an object, or text holding one).
pub fn body(request: &Value) -> Value {
    match &request["body"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}
