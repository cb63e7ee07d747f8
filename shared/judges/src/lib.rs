//! The judge model adapters behind `ledgix_core::ports::JudgeModel`: Bedrock Converse (`bedrock`), any
//! OpenAI-compatible chat endpoint (`openai`) and a tenant's own service-to-service judge (`http`); see
//! docs/judge.md.
//!
//! Adapters only move the call and the answer. Prompt building, retrieval, verdict validation, retries and the
//! decision are the core's; an adapter sends `JudgeCall` as its backend expects it, hands back the verdict object
//! exactly as the model produced it, and says why it could not as a typed `ModelError` (which the core retries
//! or sends to human review).

mod bedrock;
mod bedrock_errors;
mod document;
mod http_client;
mod http_judge;
mod openai;

pub use bedrock::{BedrockJudge, DEFAULT_MAX_TOKENS, EMBEDDING_DIMENSIONS, VERDICT_TOOL};
pub use http_client::{HttpClient, MAX_RESPONSE_BYTES};
pub use http_judge::{HttpJudge, HttpJudgeConfig};
pub use openai::{OpenAiConfig, OpenAiJudge};

/// A judge that cannot be built from its settings (a malformed URL, an API key that is not a header value, no
/// usable TLS trust roots). Never carries the API key itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("judge configuration: {0}")]
pub struct ConfigError(pub String);
