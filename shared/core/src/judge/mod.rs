//! The policy judge's domain: how a call and a policy become a prompt, how a model's answer becomes a verdict,
//! which policy passages a long policy contributes, and how model calls are retried and shared between
//! tenants. No I/O: the model is a port (`ports::JudgeModel`); `Vault::process_judge_job` drives these parts.

pub mod gate;
pub mod prompt;
pub mod retrieval;
pub mod retry;
mod stub;
pub mod verdict;

pub use stub::{StubJudge, STUB_BACKEND};

use std::time::Duration;

/// VAULT_JUDGE_*: how the judge worker uses its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgeSettings {
    /// VAULT_JUDGE_RETRY_BUDGET_SECONDS: how long one job may keep retrying throttled or timed-out model calls
    /// before the request goes to human review (`judge_unavailable`). Below the queue's visibility timeout.
    pub retry_budget: Duration,
    /// VAULT_JUDGE_TENANT_CONCURRENCY: model calls one tenant may have in flight in this process.
    pub tenant_concurrency: usize,
    /// VAULT_JUDGE_POLICY_BUDGET_CHARS: a policy longer than this is chunked, embedded and retrieved from;
    /// shorter ones go to the model whole.
    pub policy_budget_chars: usize,
    /// Longest chunk a long policy is cut into.
    pub chunk_chars: usize,
    /// VAULT_JUDGE_TOP_K: chunks retrieved per judgement.
    pub top_k: usize,
}

pub const DEFAULT_JUDGE_RETRY_BUDGET_SECONDS: u64 = 60;
pub const DEFAULT_JUDGE_TENANT_CONCURRENCY: usize = 4;
pub const DEFAULT_JUDGE_POLICY_BUDGET_CHARS: usize = 4000;
pub const DEFAULT_JUDGE_CHUNK_CHARS: usize = 800;
pub const DEFAULT_JUDGE_TOP_K: usize = 4;

impl Default for JudgeSettings {
    fn default() -> Self {
        JudgeSettings {
            retry_budget: Duration::from_secs(DEFAULT_JUDGE_RETRY_BUDGET_SECONDS),
            tenant_concurrency: DEFAULT_JUDGE_TENANT_CONCURRENCY,
            policy_budget_chars: DEFAULT_JUDGE_POLICY_BUDGET_CHARS,
            chunk_chars: DEFAULT_JUDGE_CHUNK_CHARS,
            top_k: DEFAULT_JUDGE_TOP_K,
        }
    }
}
