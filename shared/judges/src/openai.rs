//! The `openai` judge: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama). The verdict comes back as the
//! chat answer's content under a strict `json_schema` response format; retrieval embeds with `/embeddings`.
//! Only the wire format lives here: what to ask, what the answer means and whether to retry are the core's.

use std::time::Duration;

use async_trait::async_trait;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use http::Uri;
use ledgix_core::ports::{Embedded, JudgeCall, JudgeModel, ModelError, ModelReply};
use serde_json::{json, Value};

use crate::http_client::{error_detail, join_url, status_error, HttpClient, Response};
use crate::ConfigError;

/// What an `OpenAiJudge` is built from (`VAULT_JUDGE_URL`, `VAULT_JUDGE_API_KEY`, `VAULT_JUDGE_MODEL`,
/// `VAULT_EMBEDDING_MODEL`).
#[derive(Clone)]
pub struct OpenAiConfig {
    /// The API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1` (a trailing slash is fine).
    pub base_url: String,
    /// Sent as `Authorization: Bearer ...` when set (local servers often need none).
    pub api_key: Option<String>,
    pub model: String,
    /// `None`: this judge does not embed, and policies go to it whole.
    pub embedding_model: Option<String>,
    /// The most one call (request and whole answer) may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("model", &self.model)
            .field("embedding_model", &self.embedding_model)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct OpenAiJudge {
    client: HttpClient,
    chat_url: Uri,
    embeddings_url: Uri,
    headers: HeaderMap,
    api_key: Option<String>,
    model: String,
    embedding_model: Option<String>,
    timeout: Duration,
}

impl OpenAiJudge {
    /// With a connection pool of its own.
    pub fn new(config: OpenAiConfig) -> Result<Self, ConfigError> {
        Self::with_client(config, HttpClient::new()?)
    }

    /// Sharing `client`'s connection pool.
    pub fn with_client(config: OpenAiConfig, client: HttpClient) -> Result<Self, ConfigError> {
        if config.model.trim().is_empty() {
            return Err(ConfigError("the openai judge needs a model".into()));
        }
        let api_key = config.api_key.filter(|k| !k.is_empty());
        let mut headers = HeaderMap::new();
        if let Some(key) = &api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                ConfigError("the openai judge's API key is not a valid header value".into())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        Ok(OpenAiJudge {
            client,
            chat_url: join_url(&config.base_url, "chat/completions")?,
            embeddings_url: join_url(&config.base_url, "embeddings")?,
            headers,
            api_key,
            model: config.model,
            embedding_model: config.embedding_model.filter(|m| !m.is_empty()),
            timeout: config.timeout,
        })
    }

    async fn post(&self, url: &Uri, body: &Value) -> Result<Value, ModelError> {
        let Response { status, body } = self
            .client
            .post_json(url, &self.headers, body, self.timeout)
            .await?;
        if !status.is_success() {
            return Err(status_error(
                status,
                &error_detail(&body, self.api_key.as_deref()),
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ModelError::InvalidOutput(format!("the answer is not JSON: {e}")))
    }
}

impl std::fmt::Debug for OpenAiJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiJudge")
            .field("chat_url", &self.chat_url)
            .field("model", &self.model)
            .field("embedding_model", &self.embedding_model)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl JudgeModel for OpenAiJudge {
    fn backend(&self) -> &str {
        "openai"
    }

    fn model_id(&self) -> &str {
        &self.model
    }

    fn embedding_model(&self) -> Option<&str> {
        self.embedding_model.as_deref()
    }

    async fn decide(&self, call: JudgeCall<'_>) -> Result<ModelReply, ModelError> {
        let answer = self
            .post(&self.chat_url, &chat_request(&self.model, &call))
            .await?;
        parse_chat_answer(&answer)
    }

    async fn embed(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        let Some(model) = &self.embedding_model else {
            return Err(ModelError::Rejected(
                "the openai judge has no embedding model configured".into(),
            ));
        };
        if texts.is_empty() {
            return Ok(Embedded {
                vectors: vec![],
                input_tokens: 0,
            });
        }
        let request = json!({"model": model, "input": texts, "encoding_format": "float"});
        let answer = self.post(&self.embeddings_url, &request).await?;
        parse_embeddings(&answer, texts.len())
    }
}

/// The chat request: the prompt as system and user messages, deterministic, the verdict schema as a strict
/// structured-output format.
fn chat_request(model: &str, call: &JudgeCall<'_>) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": call.prompt.system},
            {"role": "user", "content": call.prompt.user},
        ],
        "temperature": 0,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "strict": true, "schema": call.verdict_schema},
        },
    })
}

/// `choices[0].message.content` as a JSON object, and the tokens from `usage`.
fn parse_chat_answer(answer: &Value) -> Result<ModelReply, ModelError> {
    let message = answer
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .and_then(|choice| choice.get("message"))
        .ok_or_else(|| ModelError::InvalidOutput("the answer has no choices".into()))?;
    let Some(content) = message.get("content").and_then(Value::as_str) else {
        let why = match message.get("refusal").and_then(Value::as_str) {
            Some(refusal) => format!("the model refused: {refusal}"),
            None => "the answer has no text content".to_string(),
        };
        return Err(ModelError::InvalidOutput(why));
    };
    let verdict: Value = serde_json::from_str(content.trim())
        .map_err(|e| ModelError::InvalidOutput(format!("the model's answer is not JSON ({e})")))?;
    if !verdict.is_object() {
        return Err(ModelError::InvalidOutput(
            "the model's answer is not a JSON object".into(),
        ));
    }
    let usage = answer.get("usage");
    let tokens = |name: &str| {
        usage
            .and_then(|u| u.get(name))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Ok(ModelReply {
        verdict,
        input_tokens: tokens("prompt_tokens"),
        output_tokens: tokens("completion_tokens"),
    })
}

/// `data[].embedding` put back in input order by `index`; exactly one vector per text.
fn parse_embeddings(answer: &Value, expected: usize) -> Result<Embedded, ModelError> {
    let invalid = |why: &str| ModelError::InvalidOutput(format!("embeddings answer: {why}"));
    let data = answer
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("no data"))?;
    if data.len() != expected {
        return Err(invalid(&format!(
            "{} vectors for {expected} texts",
            data.len()
        )));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in data.iter().enumerate() {
        let index = match item.get("index") {
            None => position,
            Some(index) => index
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| invalid("an index is not a number"))?,
        };
        let slot = vectors
            .get_mut(index)
            .ok_or_else(|| invalid("an index is out of range"))?;
        if slot.is_some() {
            return Err(invalid("an index appears twice"));
        }
        let vector = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an item has no embedding array"))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .ok_or_else(|| invalid("an embedding holds a non-number"))?;
        *slot = Some(vector);
    }
    let vectors = vectors
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("a text has no vector"))?;
    let input_tokens = answer
        .get("usage")
        .and_then(|u| u.get("prompt_tokens").or_else(|| u.get("total_tokens")))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok(Embedded {
        vectors,
        input_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledgix_core::ports::JudgePrompt;

    fn verdict() -> Value {
        json!({"decision": "approve", "confidence": 0.9, "reason": "within limits", "rules_applied": ["R1"]})
    }

    #[test]
    fn the_request_carries_the_prompt_and_the_strict_schema() {
        let prompt = JudgePrompt {
            system: "You judge tool calls.".into(),
            user: "<call>{}</call>".into(),
        };
        let data = json!({"call": {}, "policy": {}});
        let schema = json!({"type": "object"});
        let call = JudgeCall {
            tenant_id: "t_1",
            request_id: "req_1",
            prompt: &prompt,
            data: &data,
            verdict_schema: &schema,
        };
        let request = chat_request("gpt-4o-mini", &call);
        assert_eq!(request["model"], "gpt-4o-mini");
        assert_eq!(request["messages"][0]["role"], "system");
        assert_eq!(request["messages"][0]["content"], "You judge tool calls.");
        assert_eq!(request["messages"][1]["role"], "user");
        assert_eq!(request["messages"][1]["content"], "<call>{}</call>");
        assert_eq!(request["temperature"], 0);
        assert_eq!(request["response_format"]["type"], "json_schema");
        assert_eq!(request["response_format"]["json_schema"]["name"], "verdict");
        assert_eq!(request["response_format"]["json_schema"]["strict"], true);
        assert_eq!(request["response_format"]["json_schema"]["schema"], schema);
    }

    #[test]
    fn a_chat_answer_gives_the_verdict_and_its_tokens() {
        let answer = json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict().to_string()}}],
            "usage": {"prompt_tokens": 812, "completion_tokens": 41, "total_tokens": 853},
        });
        let reply = parse_chat_answer(&answer).unwrap();
        assert_eq!(reply.verdict, verdict());
        assert_eq!((reply.input_tokens, reply.output_tokens), (812, 41));
    }

    #[test]
    fn answers_that_are_not_a_verdict_object_are_invalid_output() {
        let with_content = |content: Value| json!({"choices": [{"message": {"content": content}}]});
        for answer in [
            json!({"choices": []}),
            json!({"object": "chat.completion"}),
            with_content(json!("I think it should be approved.")),
            with_content(json!("[1, 2]")),
            with_content(json!("\"approve\"")),
            with_content(Value::Null),
            json!({"choices": [{"message": {"content": null, "refusal": "I can't help with that"}}]}),
        ] {
            assert!(
                matches!(
                    parse_chat_answer(&answer),
                    Err(ModelError::InvalidOutput(_))
                ),
                "{answer}"
            );
        }
    }

    #[test]
    fn embeddings_come_back_in_input_order() {
        let answer = json!({
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                {"object": "embedding", "index": 0, "embedding": [1.0, 0.5]},
            ],
            "usage": {"prompt_tokens": 7, "total_tokens": 7},
        });
        let embedded = parse_embeddings(&answer, 2).unwrap();
        assert_eq!(embedded.vectors, vec![vec![1.0, 0.5], vec![0.0, 1.0]]);
        assert_eq!(embedded.input_tokens, 7);
    }

    #[test]
    fn embeddings_must_match_the_texts_one_to_one() {
        let item = |index: u64| json!({"index": index, "embedding": [0.1]});
        for (answer, expected) in [
            (json!({"data": [item(0)]}), 2),
            (json!({"data": [item(0), item(0)]}), 2),
            (json!({"data": [item(0), item(5)]}), 2),
            (json!({"data": [{"index": 0, "embedding": ["x"]}]}), 1),
            (json!({"data": [{"index": 0}]}), 1),
            (json!({"error": "nope"}), 1),
        ] {
            assert!(
                matches!(
                    parse_embeddings(&answer, expected),
                    Err(ModelError::InvalidOutput(_))
                ),
                "{answer}"
            );
        }
    }

    #[test]
    fn settings_are_checked_and_the_key_is_never_shown() {
        let config = OpenAiConfig {
            base_url: "http://127.0.0.1:11434/v1/".into(),
            api_key: Some("sk-secret".into()),
            model: "llama3.1".into(),
            embedding_model: None,
            timeout: Duration::from_secs(5),
        };
        assert!(!format!("{config:?}").contains("sk-secret"));
        let judge = OpenAiJudge::new(config.clone()).unwrap();
        assert!(!format!("{judge:?}").contains("sk-secret"));
        assert_eq!(judge.backend(), "openai");
        assert_eq!(judge.model_id(), "llama3.1");
        assert_eq!(judge.embedding_model(), None);
        assert_eq!(
            judge.chat_url.to_string(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        let bad_url = OpenAiConfig {
            base_url: "localhost:11434".into(),
            ..config.clone()
        };
        assert!(OpenAiJudge::new(bad_url).is_err());
        let bad_key = OpenAiConfig {
            api_key: Some("sk-\nsecret".into()),
            ..config
        };
        let err = OpenAiJudge::new(bad_key).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
