//! VAULT_JUDGE_*: which model decides plain-English policies, and its adapter, built once at start.

use std::sync::Arc;
use std::time::Duration;

use ledgix_core::judge::{self, JudgeSettings, StubJudge};
use ledgix_core::ports::JudgeModel;

use crate::config::ConfigError;

pub const DEFAULT_BEDROCK_JUDGE_MODEL: &str = "amazon.nova-pro-v1:0";
pub const DEFAULT_BEDROCK_EMBEDDING_MODEL: &str = "amazon.titan-embed-text-v2:0";
pub const DEFAULT_JUDGE_TIMEOUT_SECONDS: u64 = 20;

/// VAULT_JUDGE_BACKEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeBackend {
    Stub,
    Bedrock,
    OpenAi,
    Http,
}

impl JudgeBackend {
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        Ok(match name {
            "stub" => JudgeBackend::Stub,
            "bedrock" => JudgeBackend::Bedrock,
            "openai" => JudgeBackend::OpenAi,
            "http" => JudgeBackend::Http,
            other => {
                return Err(ConfigError(format!(
                    "VAULT_JUDGE_BACKEND={other:?} must be bedrock, openai, http or stub"
                )))
            }
        })
    }
}

/// The judge's configuration. `backend: None` means no judge: plain-English policies go to human review.
#[derive(Clone)]
pub struct JudgeConfig {
    pub backend: Option<JudgeBackend>,
    pub model: Option<String>,
    pub embedding_model: Option<String>,
    pub url: Option<String>,
    /// VAULT_JUDGE_API_KEY: a secret (put it in the bootstrap secret on AWS); never logged.
    pub api_key: Option<String>,
    /// VAULT_JUDGE_TIMEOUT_SECONDS: one model call.
    pub timeout: Duration,
    pub settings: JudgeSettings,
}

impl std::fmt::Debug for JudgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeConfig")
            .field("backend", &self.backend)
            .field("model", &self.model)
            .field("embedding_model", &self.embedding_model)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("settings", &self.settings)
            .finish()
    }
}

/// The raw values, as read from the environment (or `ledgix dev`'s flags).
pub struct JudgeVariables {
    pub backend: Option<String>,
    pub allow_stub: bool,
    pub model: Option<String>,
    pub embedding_model: Option<String>,
    pub url: Option<String>,
    pub api_key: Option<String>,
    pub timeout_seconds: u64,
    pub retry_budget_seconds: u64,
    pub tenant_concurrency: usize,
    pub policy_budget_chars: usize,
    pub top_k: usize,
}

impl JudgeConfig {
    pub fn from_variables(v: JudgeVariables) -> Result<Self, ConfigError> {
        // Unset: the seeds' service-to-service judge when VAULT_JUDGE_URL is set, else the stub if allowed.
        let backend = match v.backend.as_deref() {
            Some("none") => None,
            Some(name) => Some(JudgeBackend::parse(name)?),
            None if v.url.is_some() => Some(JudgeBackend::Http),
            None if v.allow_stub => Some(JudgeBackend::Stub),
            None => None,
        };
        let need = |value: &Option<String>, name: &str, why: &str| {
            value
                .clone()
                .ok_or_else(|| ConfigError(format!("{name} is required {why}")))
        };
        let (model, embedding_model) =
            match backend {
                Some(JudgeBackend::Stub) if !v.allow_stub => return Err(ConfigError(
                    "VAULT_JUDGE_BACKEND=stub needs VAULT_ALLOW_STUB_JUDGE=true (development only)"
                        .into(),
                )),
                Some(JudgeBackend::Bedrock) => (
                    Some(
                        v.model
                            .unwrap_or_else(|| DEFAULT_BEDROCK_JUDGE_MODEL.into()),
                    ),
                    Some(
                        v.embedding_model
                            .unwrap_or_else(|| DEFAULT_BEDROCK_EMBEDDING_MODEL.into()),
                    ),
                ),
                Some(JudgeBackend::OpenAi) => {
                    need(
                        &v.url,
                        "VAULT_JUDGE_URL",
                        "for VAULT_JUDGE_BACKEND=openai (e.g. http://127.0.0.1:11434/v1)",
                    )?;
                    (
                        Some(need(
                            &v.model,
                            "VAULT_JUDGE_MODEL",
                            "for VAULT_JUDGE_BACKEND=openai",
                        )?),
                        v.embedding_model,
                    )
                }
                Some(JudgeBackend::Http) => {
                    need(&v.url, "VAULT_JUDGE_URL", "for VAULT_JUDGE_BACKEND=http")?;
                    need(
                        &v.api_key,
                        "VAULT_JUDGE_API_KEY",
                        "for VAULT_JUDGE_BACKEND=http (sent as X-API-Key)",
                    )?;
                    (v.model, None)
                }
                _ => (None, None),
            };
        if let Some(url) = &v.url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "VAULT_JUDGE_URL={url:?} must be an http(s) URL"
                )));
            }
        }
        if v.timeout_seconds == 0
            || v.retry_budget_seconds == 0
            || v.tenant_concurrency == 0
            || v.top_k == 0
            || v.policy_budget_chars == 0
        {
            return Err(ConfigError(
                "VAULT_JUDGE_TIMEOUT_SECONDS, _RETRY_BUDGET_SECONDS, _TENANT_CONCURRENCY, _TOP_K and _POLICY_BUDGET_CHARS must be positive".into(),
            ));
        }
        Ok(JudgeConfig {
            backend,
            model,
            embedding_model,
            url: v.url,
            api_key: v.api_key,
            timeout: Duration::from_secs(v.timeout_seconds),
            settings: JudgeSettings {
                retry_budget: Duration::from_secs(v.retry_budget_seconds),
                tenant_concurrency: v.tenant_concurrency,
                policy_budget_chars: v.policy_budget_chars,
                chunk_chars: judge::DEFAULT_JUDGE_CHUNK_CHARS.min(v.policy_budget_chars),
                top_k: v.top_k,
            },
        })
    }

    /// The model adapter, built once. The Bedrock client uses `sdk` (the AWS backend's, already loaded) or
    /// else loads the standard AWS chain (AWS_ENDPOINT_URL included).
    pub async fn build(
        &self,
        sdk: Option<&ledgix_aws::bootstrap::SdkConfig>,
    ) -> Result<Option<Arc<dyn JudgeModel>>, ConfigError> {
        if self.backend != Some(JudgeBackend::Bedrock) {
            return self.build_local();
        }
        let loaded;
        let sdk = match sdk {
            Some(sdk) => sdk,
            None => {
                loaded = ledgix_aws::bootstrap::sdk_config().await;
                &loaded
            }
        };
        Ok(Some(Arc::new(
            ledgix_judges::BedrockJudge::new(
                sdk,
                self.model.clone().unwrap_or_default(),
                self.embedding_model.clone().unwrap_or_default(),
            )
            .with_timeout(self.timeout),
        )))
    }

    /// Every adapter but Bedrock's, which needs the (async) AWS credential chain: [`JudgeConfig::build`].
    pub fn build_local(&self) -> Result<Option<Arc<dyn JudgeModel>>, ConfigError> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Ok(match self.backend {
            None => None,
            Some(JudgeBackend::Stub) => Some(Arc::new(StubJudge)),
            Some(JudgeBackend::Bedrock) => {
                return Err(ConfigError(
                    "VAULT_JUDGE_BACKEND=bedrock is built with the AWS credential chain (JudgeConfig::build)".into(),
                ))
            }
            Some(JudgeBackend::OpenAi) => Some(Arc::new(
                ledgix_judges::OpenAiJudge::new(ledgix_judges::OpenAiConfig {
                    base_url: text(&self.url),
                    api_key: self.api_key.clone(),
                    model: text(&self.model),
                    embedding_model: self.embedding_model.clone(),
                    timeout: self.timeout,
                })
                .map_err(|e| ConfigError(e.to_string()))?,
            )),
            Some(JudgeBackend::Http) => Some(Arc::new(
                ledgix_judges::HttpJudge::new(ledgix_judges::HttpJudgeConfig {
                    url: text(&self.url),
                    api_key: text(&self.api_key),
                    timeout: self.timeout,
                })
                .map_err(|e| ConfigError(e.to_string()))?,
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> JudgeVariables {
        JudgeVariables {
            backend: None,
            allow_stub: false,
            model: None,
            embedding_model: None,
            url: None,
            api_key: None,
            timeout_seconds: 20,
            retry_budget_seconds: 60,
            tenant_concurrency: 4,
            policy_budget_chars: 4000,
            top_k: 4,
        }
    }

    #[test]
    fn backends_are_chosen_and_checked() {
        assert_eq!(
            JudgeConfig::from_variables(vars()).expect("none").backend,
            None
        );
        let stub = JudgeConfig::from_variables(JudgeVariables {
            allow_stub: true,
            ..vars()
        })
        .expect("stub");
        assert_eq!(stub.backend, Some(JudgeBackend::Stub));
        assert!(JudgeConfig::from_variables(JudgeVariables {
            backend: Some("stub".into()),
            ..vars()
        })
        .is_err());
        let bedrock = JudgeConfig::from_variables(JudgeVariables {
            backend: Some("bedrock".into()),
            ..vars()
        })
        .expect("bedrock");
        assert_eq!(bedrock.model.as_deref(), Some(DEFAULT_BEDROCK_JUDGE_MODEL));
        assert_eq!(
            bedrock.embedding_model.as_deref(),
            Some(DEFAULT_BEDROCK_EMBEDDING_MODEL)
        );
        assert!(JudgeConfig::from_variables(JudgeVariables {
            backend: Some("openai".into()),
            model: Some("m".into()),
            ..vars()
        })
        .is_err());
        assert!(JudgeConfig::from_variables(JudgeVariables {
            backend: Some("gpt".into()),
            ..vars()
        })
        .is_err());
        // The seeds' configuration: a URL and a key mean the service-to-service judge.
        let http = JudgeConfig::from_variables(JudgeVariables {
            url: Some("https://judge.internal/evaluate".into()),
            api_key: Some("k".into()),
            ..vars()
        })
        .expect("http");
        assert_eq!(http.backend, Some(JudgeBackend::Http));
        assert!(
            !format!("{http:?}").contains("\"k\""),
            "the key is never printed"
        );
        assert!(JudgeConfig::from_variables(JudgeVariables {
            url: Some("https://j".into()),
            ..vars()
        })
        .is_err());
        assert!(JudgeConfig::from_variables(JudgeVariables {
            url: Some("ftp://j".into()),
            api_key: Some("k".into()),
            ..vars()
        })
        .is_err());
    }
}
