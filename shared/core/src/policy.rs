//! Policies: registration, content hashing, tool mapping, and Rego evaluation with `regorus`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{VaultError, VaultResult};
use crate::hashing::jcs_sha256;
use crate::model::PolicyVersion;

pub const MAX_RULES: usize = 200;
pub const MAX_TOOLS: usize = 500;
pub const MAX_REGO_BYTES: usize = 64 * 1024;
/// Wall-clock budget of one Rego evaluation: a tenant's policy must not stall the decision path.
pub const REGO_TIME_LIMIT: std::time::Duration = std::time::Duration::from_millis(100);

/// `POST /register-policy`: the SDK's `PolicyRegistration` plus our optional `rego` module.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRegistration {
    pub policy_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub rules: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub rego: Option<String>,
}

impl PolicyRegistration {
    pub fn validate(&self) -> VaultResult<()> {
        let id = self.policy_id.trim();
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(VaultError::InvalidRequest(
                "policy_id must be 1 to 128 characters".into(),
            ));
        }
        if self.rules.len() > MAX_RULES || self.tools.len() > MAX_TOOLS {
            return Err(VaultError::InvalidRequest(format!(
                "at most {MAX_RULES} rules and {MAX_TOOLS} tools per policy"
            )));
        }
        if self.tools.iter().any(|t| t.trim().is_empty()) {
            return Err(VaultError::InvalidRequest(
                "tool names must not be empty".into(),
            ));
        }
        let rego = self
            .rego
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty());
        if rego.is_none() && self.rules.iter().all(|r| r.trim().is_empty()) {
            return Err(VaultError::InvalidPolicy(
                "a policy needs at least one rule or a rego module".into(),
            ));
        }
        if let Some(module) = rego {
            if module.len() > MAX_REGO_BYTES {
                return Err(VaultError::InvalidPolicy(format!(
                    "rego module exceeds {MAX_REGO_BYTES} bytes"
                )));
            }
            RegoPolicy::compile(module)?;
        }
        Ok(())
    }

    /// `sha256:<hex>` of the JCS form of everything that affects decisions.
    pub fn content_hash(&self) -> VaultResult<String> {
        jcs_sha256(&json!({
            "description": self.description,
            "policy_id": self.policy_id,
            "rego": self.rego_module(),
            "rules": self.rules,
            "tools": self.tools,
        }))
        .map_err(|e| VaultError::Internal(e.to_string()))
    }

    pub fn rego_module(&self) -> Option<&str> {
        self.rego.as_deref().filter(|r| !r.trim().is_empty())
    }
}

/// What a Rego module decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegoDecision {
    Approve,
    Deny,
    Review,
    Judge,
    /// `decision` is not defined for this input.
    Undefined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoOutcome {
    pub decision: RegoDecision,
    pub reason: Option<String>,
    pub reason_code: Option<String>,
}

/// A compiled Rego module, ready to evaluate.
#[derive(Clone)]
pub struct RegoPolicy {
    engine: regorus::Engine,
    package: String,
}

impl RegoPolicy {
    pub fn compile(module: &str) -> VaultResult<Self> {
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: REGO_TIME_LIMIT,
            check_interval: std::num::NonZeroU32::new(64).unwrap_or(std::num::NonZeroU32::MIN),
        });
        let package = engine
            .add_policy("policy.rego".into(), module.to_string())
            .map_err(|e| VaultError::InvalidPolicy(format!("rego does not compile: {e}")))?;
        let policy = RegoPolicy { engine, package };
        // Evaluate once against an empty input: surfaces errors that only show at evaluation time.
        policy
            .evaluate(&json!({}))
            .map_err(|e| VaultError::InvalidPolicy(format!("rego does not evaluate: {e}")))?;
        if !module.contains("decision") {
            return Err(VaultError::InvalidPolicy(
                "rego module must define `decision`".into(),
            ));
        }
        Ok(policy)
    }

    /// Evaluate the module's package once and read `decision`, `reason` and `reason_code` from it.
    pub fn evaluate(&self, input: &Value) -> Result<RegoOutcome, String> {
        let mut engine = self.engine.clone();
        engine.set_input(regorus::Value::from(input.clone()));
        let results = engine
            .eval_query(self.package.clone(), false)
            .map_err(|e| e.to_string())?;
        let package = results
            .result
            .into_iter()
            .next()
            .and_then(|r| r.expressions.into_iter().next())
            .map(|e| e.value)
            .unwrap_or(regorus::Value::Undefined);
        let field = |name: &str| -> Result<Option<String>, String> {
            match &package[name] {
                regorus::Value::Undefined => Ok(None),
                regorus::Value::String(s) => Ok(Some(s.to_string())),
                other => Err(format!("{name} must be a string, got {other}")),
            }
        };
        let decision = match field("decision")? {
            None => RegoDecision::Undefined,
            Some(text) => match text.as_str() {
                "approve" => RegoDecision::Approve,
                "deny" => RegoDecision::Deny,
                "review" => RegoDecision::Review,
                "judge" => RegoDecision::Judge,
                other => {
                    return Err(format!(
                        "decision must be approve, deny, review or judge, got {other:?}"
                    ))
                }
            },
        };
        Ok(RegoOutcome {
            decision,
            reason: field("reason")?,
            reason_code: field("reason_code")?,
        })
    }
}

/// A policy version with its compiled Rego, if any.
#[derive(Clone)]
pub struct CompiledPolicy {
    pub version: PolicyVersion,
    pub rego: Option<RegoPolicy>,
}

impl CompiledPolicy {
    pub fn new(version: PolicyVersion) -> Self {
        let rego = version.rego.as_deref().filter(|r| !r.trim().is_empty()).and_then(|m| {
            RegoPolicy::compile(m)
                .map_err(|e| tracing::error!(policy_version_id = %version.version_id, error = %e, "stored rego no longer compiles"))
                .ok()
        });
        CompiledPolicy { version, rego }
    }

    pub fn has_rego(&self) -> bool {
        self.version
            .rego
            .as_deref()
            .is_some_and(|r| !r.trim().is_empty())
    }
}

/// Pick the policy for a call: an explicit `context.policy_id`, else a policy naming the tool, else a policy
/// for all tools; the newest registration wins within each group.
pub fn select<'a>(
    policies: &'a [CompiledPolicy],
    tool_name: &str,
    context: &Value,
) -> Option<&'a CompiledPolicy> {
    if let Some(wanted) = context
        .get("policy_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return policies
            .iter()
            .find(|p| p.version.policy_id == wanted)
            .filter(|p| p.version.applies_to(tool_name));
    }
    let newest =
        |a: &&CompiledPolicy, b: &&CompiledPolicy| a.version.created_at.cmp(&b.version.created_at);
    policies
        .iter()
        .filter(|p| p.version.tools.iter().any(|t| t == tool_name))
        .max_by(newest)
        .or_else(|| {
            policies
                .iter()
                .filter(|p| p.version.tools.is_empty())
                .max_by(newest)
        })
}
