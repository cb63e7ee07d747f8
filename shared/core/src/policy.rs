//! Policies: registration, content hashing, tool mapping, and Rego evaluation with `regorus`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{VaultError, VaultResult};
use crate::hashing::jcs_sha256;
use crate::model::{ConsultedPolicy, PolicyVersion};
use crate::rego_guard::{self, RegoLimits};

pub const MAX_RULES: usize = 200;
pub const MAX_TOOLS: usize = 500;
pub const MAX_REGO_BYTES: usize = 64 * 1024;
/// Default wall-clock budget of one Rego evaluation: a tenant's policy must not stall the decision path.
pub const REGO_TIME_LIMIT: std::time::Duration = rego_guard::DEFAULT_TIME_LIMIT;

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
    /// Validate under the default Rego limits.
    pub fn validate(&self) -> VaultResult<()> {
        self.validate_with(RegoLimits::default())
    }

    /// Validate the registration; a Rego module must pass the tenant-Rego rules and compile under `limits`.
    pub fn validate_with(&self, limits: RegoLimits) -> VaultResult<()> {
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
            RegoPolicy::compile_with(module, limits)?;
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

/// A compiled Rego module, ready to evaluate under its [`RegoLimits`]: only allow-listed builtins, each
/// bounded before it allocates, a per-step execution timer, and a deadline on a dedicated worker pool
/// (see [`crate::rego_guard`]).
#[derive(Clone)]
pub struct RegoPolicy {
    engine: std::sync::Arc<regorus::Engine>,
    package: String,
    limits: RegoLimits,
}

impl RegoPolicy {
    /// Compile under the default limits.
    pub fn compile(module: &str) -> VaultResult<Self> {
        Self::compile_with(module, RegoLimits::default())
    }

    pub fn compile_with(module: &str, limits: RegoLimits) -> VaultResult<Self> {
        rego_guard::check_module(module).map_err(VaultError::InvalidPolicy)?;
        let mut engine = regorus::Engine::new();
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: limits.time,
            // Check the clock before every interpreter step, not every 64th.
            check_interval: std::num::NonZeroU32::MIN,
        });
        rego_guard::install(&mut engine).map_err(|e| {
            VaultError::Internal(format!("rego limits could not be installed: {e}"))
        })?;
        let package = engine
            .add_policy("policy.rego".into(), module.to_string())
            .map_err(|e| VaultError::InvalidPolicy(format!("rego does not compile: {e}")))?;
        rego_guard::check_recursion(engine.get_modules()).map_err(VaultError::InvalidPolicy)?;
        // Evaluate once, against an empty input, on the engine itself: it surfaces errors that only show at
        // evaluation time, and it leaves the engine prepared (rules analysed and scheduled) before it is
        // shared. Every evaluation clones it, and a clone of an unprepared engine would prepare again each time.
        rego_guard::with_budget(limits.memory_bytes, || {
            outcome_of(&mut engine, &package, &json!({}))
        })
        .map_err(|e| VaultError::InvalidPolicy(format!("rego does not evaluate: {e}")))?;
        let policy = RegoPolicy {
            engine: std::sync::Arc::new(engine),
            package,
            limits,
        };
        if !module.contains("decision") {
            return Err(VaultError::InvalidPolicy(
                "rego module must define `decision`".into(),
            ));
        }
        Ok(policy)
    }

    pub fn limits(&self) -> RegoLimits {
        self.limits
    }

    /// Evaluate on the Rego worker pool and wait for the answer on this thread, at most the limits' deadline.
    /// Same signature as ever, usable from synchronous code; from async code prefer [`Self::evaluate_bounded`],
    /// which does not hold the async worker while it waits.
    pub fn evaluate(&self, input: &Value) -> Result<RegoOutcome, String> {
        let policy = self.clone();
        let input = input.clone();
        rego_guard::evaluate_blocking(self.limits.deadline(), move || policy.evaluate_here(&input))
    }

    /// Evaluate on the Rego worker pool; the async caller waits at most the limits' deadline, without blocking
    /// its worker thread. Errors (limits exceeded, pool saturated, bad module output) fail closed upstream.
    pub async fn evaluate_bounded(&self, input: &Value) -> Result<RegoOutcome, String> {
        let policy = self.clone();
        let input = input.clone();
        rego_guard::evaluate_off_thread(self.limits.deadline(), move || {
            policy.evaluate_here(&input)
        })
        .await
    }

    /// Evaluate on the current thread, under the execution timer and a fresh memory budget.
    pub fn evaluate_here(&self, input: &Value) -> Result<RegoOutcome, String> {
        rego_guard::with_budget(self.limits.memory_bytes, || self.run(input))
    }

    /// Evaluate a fresh clone of the prepared engine.
    fn run(&self, input: &Value) -> Result<RegoOutcome, String> {
        outcome_of(&mut (*self.engine).clone(), &self.package, input)
    }
}

/// Evaluate the module's package once on `engine` and read `decision`, `reason` and `reason_code` from it.
fn outcome_of(
    engine: &mut regorus::Engine,
    package: &str,
    input: &Value,
) -> Result<RegoOutcome, String> {
    engine.set_input(regorus::Value::from(input.clone()));
    let results = engine
        .eval_query(package.to_string(), false)
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

/// A policy version with its compiled Rego, if any.
#[derive(Clone)]
pub struct CompiledPolicy {
    pub version: PolicyVersion,
    pub rego: Option<RegoPolicy>,
}

impl CompiledPolicy {
    pub fn new(version: PolicyVersion) -> Self {
        Self::with_limits(version, RegoLimits::default())
    }

    /// Compile a stored version under `limits`; a module that no longer compiles (or now breaks the rules
    /// for tenant Rego) leaves `rego` empty, and the policy then denies (`policy_evaluation_error`).
    pub fn with_limits(version: PolicyVersion, limits: RegoLimits) -> Self {
        let rego = version.rego.as_deref().filter(|r| !r.trim().is_empty()).and_then(|m| {
            RegoPolicy::compile_with(m, limits)
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

/// What one policy says about a call, from least to most restrictive. When several policies apply, the
/// greatest wins: deny > review > judge > approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Approve,
    Judge,
    Review,
    Deny,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Judge => "judge",
            Verdict::Review => "review",
            Verdict::Deny => "deny",
        }
    }
}

/// Why a policy applies to a call. Among equally restrictive verdicts the first kind decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Applies {
    /// The policy lists the tool.
    ToolSpecific,
    /// The policy lists no tools: it covers every tool.
    CatchAll,
    /// Named by the call's `context.policy_id` without covering the tool: it may add restrictions, never
    /// make a call applicable on its own.
    Named,
}

/// One policy's verdict on one call.
#[derive(Clone)]
pub struct PolicyVerdict<'a> {
    pub policy: &'a CompiledPolicy,
    pub applies: Applies,
    pub verdict: Verdict,
    /// The module's `reason`, or `None` for the verdict's default.
    pub reason: Option<String>,
    pub reason_code: Option<String>,
    /// A deny because the policy could not decide (fails closed), not because its rules said so.
    pub fail_closed: bool,
}

/// Every applicable policy's verdict on a call, most restrictive first: `verdicts[0]` decides.
#[derive(Clone, Default)]
pub struct Evaluation<'a> {
    pub verdicts: Vec<PolicyVerdict<'a>>,
}

impl<'a> Evaluation<'a> {
    /// The deciding policy: the most restrictive verdict; among equals a tool-specific policy, then a
    /// catch-all, then one only named by the call, then the smallest policy_id. `None`: no policy applies.
    pub fn deciding(&self) -> Option<&PolicyVerdict<'a>> {
        self.verdicts.first()
    }

    /// What every consulted policy said, in deciding order, for the clearance and its ledger event.
    pub fn consulted(&self) -> Vec<ConsultedPolicy> {
        self.verdicts
            .iter()
            .map(|v| ConsultedPolicy {
                policy_id: v.policy.version.policy_id.clone(),
                version: v.policy.version.version,
                policy_version_id: v.policy.version.version_id.clone(),
                decision: v.verdict.as_str().into(),
            })
            .collect()
    }
}

/// The policies that decide a call: every policy listing the tool, every catch-all (no tools), and the one
/// named in `context.policy_id` if it exists. Nothing the caller sends removes a policy, and a named policy
/// alone never makes a tool decidable: with no tool-specific or catch-all policy the answer is empty.
pub fn applicable<'a>(
    policies: &'a [CompiledPolicy],
    tool_name: &str,
    context: &Value,
) -> Vec<(&'a CompiledPolicy, Applies)> {
    let named = context
        .get("policy_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let found: Vec<_> = policies
        .iter()
        .filter_map(|p| {
            let applies = if p.version.tools.iter().any(|t| t == tool_name) {
                Applies::ToolSpecific
            } else if p.version.tools.is_empty() {
                Applies::CatchAll
            } else if named == Some(p.version.policy_id.as_str()) {
                Applies::Named
            } else {
                return None;
            };
            Some((p, applies))
        })
        .collect();
    if found.iter().all(|(_, applies)| *applies == Applies::Named) {
        return vec![];
    }
    found
}

/// One policy's verdict. Fails closed: a module that no longer compiles, errs (limits included), or decides
/// nothing (with no plain-English rules to judge) denies. A policy of plain-English rules only goes to the
/// judge. The module runs on the Rego pool; the async caller's worker is not held while it runs.
pub async fn verdict_of<'a>(
    policy: &'a CompiledPolicy,
    applies: Applies,
    input: &Value,
) -> PolicyVerdict<'a> {
    let verdict = |verdict, reason: Option<String>, reason_code: Option<&str>| PolicyVerdict {
        policy,
        applies,
        verdict,
        reason,
        reason_code: reason_code.map(str::to_string),
        fail_closed: verdict == Verdict::Deny,
    };
    let has_rules = policy.version.rules.iter().any(|r| !r.trim().is_empty());
    if !policy.has_rego() {
        return verdict(Verdict::Judge, None, None);
    }
    let Some(rego) = &policy.rego else {
        return verdict(
            Verdict::Deny,
            Some("The policy's rego module no longer compiles".into()),
            Some("policy_evaluation_error"),
        );
    };
    let outcome = match rego.evaluate_bounded(input).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(policy_id = %policy.version.policy_id, error = %e, "rego evaluation failed; denying");
            return verdict(
                Verdict::Deny,
                Some("The policy could not be evaluated for this call".into()),
                Some("policy_evaluation_error"),
            );
        }
    };
    let decided = |v, default_code: Option<&str>| PolicyVerdict {
        policy,
        applies,
        verdict: v,
        reason: outcome.reason.clone(),
        reason_code: outcome
            .reason_code
            .clone()
            .or(default_code.map(str::to_string)),
        fail_closed: false,
    };
    match outcome.decision {
        RegoDecision::Approve => decided(Verdict::Approve, None),
        RegoDecision::Deny => decided(Verdict::Deny, Some("policy_denied")),
        RegoDecision::Review => decided(Verdict::Review, Some("policy_review")),
        RegoDecision::Judge => verdict(Verdict::Judge, None, None),
        RegoDecision::Undefined if has_rules => verdict(Verdict::Judge, None, None),
        RegoDecision::Undefined => verdict(
            Verdict::Deny,
            Some("The policy's rules do not decide this call".into()),
            Some("policy_undecided"),
        ),
    }
}

/// Evaluate every applicable policy (see [`applicable`]) on `input` (the documented Rego input) and order
/// the verdicts so the deciding one comes first. Every applicable policy is evaluated, even after a deny: the
/// ledger lists what each said.
pub async fn evaluate<'a>(
    policies: &'a [CompiledPolicy],
    tool_name: &str,
    context: &Value,
    input: &Value,
) -> Evaluation<'a> {
    let mut verdicts: Vec<PolicyVerdict<'a>> = Vec::new();
    for (policy, applies) in applicable(policies, tool_name, context) {
        verdicts.push(verdict_of(policy, applies, input).await);
    }
    verdicts.sort_by(|a, b| {
        b.verdict
            .cmp(&a.verdict)
            .then(a.applies.cmp(&b.applies))
            .then_with(|| a.policy.version.policy_id.cmp(&b.policy.version.policy_id))
    });
    Evaluation { verdicts }
}
