//! The `bedrock` judge: Bedrock Runtime **Converse** for verdicts and **InvokeModel** (Titan Text Embeddings v2)
//! for retrieval. Structured output is a forced call of one tool, `record_verdict`, whose input schema is the
//! verdict schema: the tool's input is the verdict. This module builds the request and reads the answer; what to
//! ask and whether to retry are the core's.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::error::BuildError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message,
    SpecificToolChoice, StopReason, SystemContentBlock, TokenUsage, Tool, ToolChoice,
    ToolConfiguration, ToolInputSchema, ToolSpecification,
};
use aws_sdk_bedrockruntime::Client;
use ledgix_core::ports::{Embedded, JudgeCall, JudgeModel, ModelError, ModelReply};
use serde_json::{json, Value};

use crate::bedrock_errors::model_error;
use crate::document::{to_document, to_json};

/// The tool the model is made to call; its input is the verdict.
pub const VERDICT_TOOL: &str = "record_verdict";

/// Room for a verdict (a decision, a confidence, a short reason and a few rule ids) with margin.
pub const DEFAULT_MAX_TOKENS: i32 = 512;

/// The vector size asked of Titan Text Embeddings v2 (it offers 256, 512 or 1024).
pub const EMBEDDING_DIMENSIONS: u32 = 1024;

pub struct BedrockJudge {
    client: Client,
    model: String,
    embedding_model: String,
    max_tokens: i32,
    timeout: Option<Duration>,
}

impl BedrockJudge {
    /// A client built once from `sdk` (region, credentials, `AWS_ENDPOINT_URL`), for the evaluation `model` (a
    /// model or inference-profile id, e.g. `amazon.nova-pro-v1:0`) and the Titan v2 `embedding_model`.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        model: impl Into<String>,
        embedding_model: impl Into<String>,
    ) -> Self {
        // One attempt per call: the judge worker retries throttling, timeouts and unavailability itself, within
        // one budget for the whole judgement. SDK retries underneath would multiply that budget (3 x its
        // attempts) and hide from the core how long a judgement is really taking.
        let config = aws_sdk_bedrockruntime::config::Builder::from(sdk)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .build();
        BedrockJudge {
            client: Client::from_conf(config),
            model: model.into(),
            embedding_model: embedding_model.into(),
            max_tokens: DEFAULT_MAX_TOKENS,
            timeout: None,
        }
    }

    /// The most one model call may take (else the SDK's own timeouts only).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The most tokens a verdict may take (default `DEFAULT_MAX_TOKENS`).
    pub fn with_max_tokens(mut self, max_tokens: i32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    async fn within<T>(
        &self,
        call: impl Future<Output = Result<T, ModelError>>,
    ) -> Result<T, ModelError> {
        match self.timeout {
            None => call.await,
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(ModelError::Timeout(format!(
                    "no answer from Bedrock within {limit:?}"
                )))
            }),
        }
    }

    async fn embed_one(&self, text: &str) -> Result<(Vec<f32>, u64), ModelError> {
        let body =
            json!({"inputText": text, "dimensions": EMBEDDING_DIMENSIONS, "normalize": true});
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| ModelError::Rejected(format!("cannot encode the request: {e}")))?;
        let out = self
            .within(async {
                self.client
                    .invoke_model()
                    .model_id(&self.embedding_model)
                    .content_type("application/json")
                    .accept("application/json")
                    .body(Blob::new(bytes))
                    .send()
                    .await
                    .map_err(model_error)
            })
            .await?;
        parse_titan_embedding(out.body().as_ref())
    }
}

impl std::fmt::Debug for BedrockJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BedrockJudge")
            .field("model", &self.model)
            .field("embedding_model", &self.embedding_model)
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl JudgeModel for BedrockJudge {
    fn backend(&self) -> &str {
        "bedrock"
    }

    fn model_id(&self) -> &str {
        &self.model
    }

    fn embedding_model(&self) -> Option<&str> {
        Some(&self.embedding_model)
    }

    async fn decide(&self, call: JudgeCall<'_>) -> Result<ModelReply, ModelError> {
        let request = ConverseRequest::new(&call, self.max_tokens)?;
        let out = self
            .within(async {
                self.client
                    .converse()
                    .model_id(&self.model)
                    .system(request.system)
                    .messages(request.message)
                    .inference_config(request.inference)
                    .tool_config(request.tools)
                    .send()
                    .await
                    .map_err(model_error)
            })
            .await?;
        read_verdict(out.output(), out.stop_reason(), out.usage())
    }

    /// One InvokeModel per text, in order: Titan v2 embeds a single input per call.
    async fn embed(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        let mut embedded = Embedded {
            vectors: Vec::with_capacity(texts.len()),
            input_tokens: 0,
        };
        for text in texts {
            let (vector, tokens) = self.embed_one(text).await?;
            embedded.vectors.push(vector);
            embedded.input_tokens = embedded.input_tokens.saturating_add(tokens);
        }
        Ok(embedded)
    }
}

/// The parts of one Converse request.
struct ConverseRequest {
    system: SystemContentBlock,
    message: Message,
    inference: InferenceConfiguration,
    tools: ToolConfiguration,
}

impl ConverseRequest {
    fn new(call: &JudgeCall<'_>, max_tokens: i32) -> Result<Self, ModelError> {
        let schema = to_document(call.verdict_schema)
            .map_err(|e| ModelError::Rejected(format!("the verdict schema: {e}")))?;
        let unbuildable =
            |e: BuildError| ModelError::Rejected(format!("cannot build the request: {e}"));
        let tool = ToolSpecification::builder()
            .name(VERDICT_TOOL)
            .description("Record the verdict on the tool call under the policy.")
            .input_schema(ToolInputSchema::Json(schema))
            .build()
            .map_err(unbuildable)?;
        let forced = SpecificToolChoice::builder()
            .name(VERDICT_TOOL)
            .build()
            .map_err(unbuildable)?;
        Ok(ConverseRequest {
            system: SystemContentBlock::Text(call.prompt.system.clone()),
            message: Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::Text(call.prompt.user.clone()))
                .build()
                .map_err(unbuildable)?,
            inference: InferenceConfiguration::builder()
                .temperature(0.0)
                .max_tokens(max_tokens)
                .build(),
            tools: ToolConfiguration::builder()
                .tools(Tool::ToolSpec(tool))
                .tool_choice(ToolChoice::Tool(forced))
                .build()
                .map_err(unbuildable)?,
        })
    }
}

/// The input of the `record_verdict` call in the answer, and the tokens it cost.
fn read_verdict(
    output: Option<&ConverseOutput>,
    stop_reason: &StopReason,
    usage: Option<&TokenUsage>,
) -> Result<ModelReply, ModelError> {
    let content = output
        .and_then(|o| o.as_message().ok())
        .map(Message::content)
        .unwrap_or_default();
    let tool_use = content.iter().find_map(|block| match block {
        ContentBlock::ToolUse(tool_use) if tool_use.name() == VERDICT_TOOL => Some(tool_use),
        _ => None,
    });
    let Some(tool_use) = tool_use else {
        return Err(ModelError::InvalidOutput(format!(
            "the model did not call {VERDICT_TOOL} (stop reason {})",
            stop_reason.as_str()
        )));
    };
    let verdict = to_json(tool_use.input())
        .map_err(|e| ModelError::InvalidOutput(format!("the {VERDICT_TOOL} input: {e}")))?;
    if !verdict.is_object() {
        return Err(ModelError::InvalidOutput(format!(
            "the {VERDICT_TOOL} input is not an object"
        )));
    }
    let tokens = |n: i32| u64::try_from(n).unwrap_or(0);
    Ok(ModelReply {
        verdict,
        input_tokens: usage.map_or(0, |u| tokens(u.input_tokens())),
        output_tokens: usage.map_or(0, |u| tokens(u.output_tokens())),
    })
}

/// A Titan v2 answer: `{"embedding": [...], "inputTextTokenCount": n}`.
fn parse_titan_embedding(body: &[u8]) -> Result<(Vec<f32>, u64), ModelError> {
    let invalid = |why: &str| ModelError::InvalidOutput(format!("embedding answer: {why}"));
    let answer: Value = serde_json::from_slice(body).map_err(|_| invalid("not JSON"))?;
    let vector = answer
        .get("embedding")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("no embedding array"))?
        .iter()
        .map(|x| x.as_f64().map(|x| x as f32))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| invalid("the embedding holds a non-number"))?;
    if vector.is_empty() {
        return Err(invalid("the embedding is empty"));
    }
    let tokens = answer
        .get("inputTextTokenCount")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    Ok((vector, tokens))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_bedrockruntime::types::ToolUseBlock;
    use ledgix_core::ports::JudgePrompt;

    fn verdict() -> Value {
        json!({"decision": "approve", "confidence": 0.93, "reason": "under the limit", "rules_applied": ["R1"]})
    }

    fn answer(blocks: Vec<ContentBlock>) -> ConverseOutput {
        let mut message = Message::builder().role(ConversationRole::Assistant);
        for block in blocks {
            message = message.content(block);
        }
        ConverseOutput::Message(message.build().unwrap())
    }

    fn tool_use(name: &str, input: &Value) -> ContentBlock {
        ContentBlock::ToolUse(
            ToolUseBlock::builder()
                .tool_use_id("tooluse_1")
                .name(name)
                .input(to_document(input).unwrap())
                .build()
                .unwrap(),
        )
    }

    fn usage(input: i32, output: i32) -> TokenUsage {
        TokenUsage::builder()
            .input_tokens(input)
            .output_tokens(output)
            .total_tokens(input + output)
            .build()
            .unwrap()
    }

    #[test]
    fn the_tool_input_is_the_verdict() {
        let output = answer(vec![
            ContentBlock::Text("Recording the verdict.".into()),
            tool_use(VERDICT_TOOL, &verdict()),
        ]);
        let reply =
            read_verdict(Some(&output), &StopReason::ToolUse, Some(&usage(900, 45))).unwrap();
        assert_eq!(reply.verdict, verdict());
        assert_eq!((reply.input_tokens, reply.output_tokens), (900, 45));
    }

    #[test]
    fn no_verdict_call_is_invalid_output() {
        let text = answer(vec![ContentBlock::Text(verdict().to_string())]);
        let other_tool = answer(vec![tool_use("something_else", &verdict())]);
        let not_object = answer(vec![tool_use(VERDICT_TOOL, &json!("approve"))]);
        for output in [Some(&text), Some(&other_tool), Some(&not_object), None] {
            let result = read_verdict(output, &StopReason::EndTurn, None);
            assert!(
                matches!(result, Err(ModelError::InvalidOutput(_))),
                "{result:?}"
            );
        }
    }

    #[test]
    fn the_request_forces_the_verdict_tool() {
        let prompt = JudgePrompt {
            system: "You judge tool calls.".into(),
            user: "<call>{}</call>".into(),
        };
        let data = json!({});
        let schema = json!({"type": "object", "properties": {"confidence": {"type": "number", "maximum": 1}}});
        let call = JudgeCall {
            tenant_id: "t_1",
            request_id: "req_1",
            prompt: &prompt,
            data: &data,
            verdict_schema: &schema,
        };
        let request = ConverseRequest::new(&call, 256).unwrap();
        assert_eq!(
            request.system,
            SystemContentBlock::Text("You judge tool calls.".into())
        );
        assert_eq!(request.message.role(), &ConversationRole::User);
        assert_eq!(
            request.message.content(),
            &[ContentBlock::Text("<call>{}</call>".into())]
        );
        assert_eq!(request.inference.temperature(), Some(0.0));
        assert_eq!(request.inference.max_tokens(), Some(256));
        let Some(Tool::ToolSpec(spec)) = request.tools.tools().first() else {
            panic!("no tool spec");
        };
        assert_eq!(spec.name(), VERDICT_TOOL);
        let Some(ToolInputSchema::Json(document)) = spec.input_schema() else {
            panic!("no JSON input schema");
        };
        assert_eq!(to_json(document).unwrap(), schema);
        assert!(
            matches!(request.tools.tool_choice(), Some(ToolChoice::Tool(t)) if t.name() == VERDICT_TOOL)
        );
    }

    #[test]
    fn titan_answers_give_a_vector_and_tokens() {
        let (vector, tokens) =
            parse_titan_embedding(br#"{"embedding": [0.25, -0.5, 1], "inputTextTokenCount": 6}"#)
                .unwrap();
        assert_eq!(vector, vec![0.25, -0.5, 1.0]);
        assert_eq!(tokens, 6);
        for body in [
            &b"nope"[..],
            br#"{"embedding": []}"#,
            br#"{"embedding": ["x"]}"#,
            br#"{}"#,
        ] {
            assert!(matches!(
                parse_titan_embedding(body),
                Err(ModelError::InvalidOutput(_))
            ));
        }
    }
}
