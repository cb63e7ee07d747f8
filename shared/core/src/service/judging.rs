//! Asking the judge model about one policy: which passages it sees (whole rules, or the chunks retrieval
//! picks from a long policy), the prompt, retries within the job's budget, the verdict's validation, metering
//! and the evidence recorded in the ledger.

use std::future::Future;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::Vault;
use crate::error::VaultResult;
use crate::judge::prompt::{self, Passage, PolicyView};
use crate::judge::retrieval;
use crate::judge::retry::RetryBudget;
use crate::judge::verdict::{self, Verdict};
use crate::model::{ClearanceRecord, PolicyVersion};
use crate::ports::{JudgeCall, JudgeModel, ModelError, PolicyChunk, Write};

/// Why a policy got no verdict; the request then goes to a human with this `reason_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum JudgeFailure {
    /// Throttled, timed out or down past the retry budget, or the request refused: `judge_unavailable`.
    Unavailable(String),
    /// The model answered with something that is not a valid verdict: `judge_invalid_output`.
    InvalidOutput(String),
}

impl JudgeFailure {
    pub(super) fn reason_code(&self) -> &'static str {
        match self {
            JudgeFailure::Unavailable(_) => "judge_unavailable",
            JudgeFailure::InvalidOutput(_) => "judge_invalid_output",
        }
    }

    fn from_model(error: ModelError) -> Self {
        match error {
            ModelError::InvalidOutput(e) => JudgeFailure::InvalidOutput(e),
            other => JudgeFailure::Unavailable(other.to_string()),
        }
    }
}

/// What the judge said about one policy, with the passages it was shown and the ledger evidence.
pub(super) struct PolicyJudgement {
    pub policy_id: String,
    pub outcome: Result<Verdict, JudgeFailure>,
    pub passages: Vec<Passage>,
    pub evidence: Value,
}

/// Longest error text kept in the evidence.
const MAX_ERROR_CHARS: usize = 300;

impl Vault {
    /// Judge `record`'s call under `policy`. `Err` only for store failures (the job is retried); every model
    /// failure is an outcome.
    pub(super) async fn judge_policy(
        &self,
        model: &dyn JudgeModel,
        record: &ClearanceRecord,
        policy: &PolicyVersion,
        budget: &RetryBudget,
    ) -> VaultResult<PolicyJudgement> {
        let tenant_id = record.tenant_id.as_str();
        let mut evidence = json!({
            "policy_id": policy.policy_id,
            "policy_version_id": policy.version_id,
        });
        let view = match self.policy_view(model, record, policy, budget).await? {
            Ok(view) => view,
            Err(failure) => {
                evidence["outcome"] = json!(failure.reason_code());
                evidence["error"] = json!(short(&failure));
                return Ok(PolicyJudgement {
                    policy_id: policy.policy_id.clone(),
                    outcome: Err(failure),
                    passages: vec![],
                    evidence,
                });
            }
        };
        let shown = view.passage_ids();
        let data = prompt::data(&record.request, &view);
        let judge_prompt = prompt::build(&data);
        evidence["prompt_sha256"] = json!(prompt::sha256(&judge_prompt));
        evidence["passages"] = json!(shown);
        if !view.complete {
            evidence["retrieved_chunk_ids"] = json!(shown);
        }
        let call = JudgeCall {
            tenant_id,
            request_id: &record.request_id,
            prompt: &judge_prompt,
            data: &data,
            verdict_schema: verdict::schema(),
        };
        let started = Instant::now();
        let (reply, attempts) = self
            .call_model(tenant_id, budget, || model.decide(call))
            .await;
        evidence["attempts"] = json!(attempts);
        evidence["latency_ms"] =
            json!(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
        let outcome = match reply {
            Ok(reply) => {
                self.meter_count(tenant_id, "judge.judgements", 1).await;
                self.meter_count(tenant_id, "judge.input_tokens", reply.input_tokens)
                    .await;
                self.meter_count(tenant_id, "judge.output_tokens", reply.output_tokens)
                    .await;
                evidence["input_tokens"] = json!(reply.input_tokens);
                evidence["output_tokens"] = json!(reply.output_tokens);
                verdict::parse(&reply.verdict, &shown).map_err(JudgeFailure::InvalidOutput)
            }
            Err(e) => Err(JudgeFailure::from_model(e)),
        };
        match &outcome {
            Ok(v) => {
                evidence["outcome"] = json!("verdict");
                evidence["verdict"] = v.to_json();
            }
            Err(failure) => {
                tracing::warn!(request_id = %record.request_id, policy_id = %policy.policy_id, error = %short(failure), "no verdict from the judge; a human decides");
                evidence["outcome"] = json!(failure.reason_code());
                evidence["error"] = json!(short(failure));
            }
        }
        Ok(PolicyJudgement {
            policy_id: policy.policy_id.clone(),
            outcome,
            passages: view.passages,
            evidence,
        })
    }

    /// The policy as the model will see it: whole when short (or when the backend does not embed), else the
    /// top-k chunks for this call, embedding the policy's chunks first if they are not stored yet.
    async fn policy_view<'p>(
        &self,
        model: &dyn JudgeModel,
        record: &ClearanceRecord,
        policy: &'p PolicyVersion,
        budget: &RetryBudget,
    ) -> VaultResult<Result<PolicyView<'p>, JudgeFailure>> {
        let settings = self.settings.judge;
        let whole = PolicyView {
            policy,
            complete: true,
            passages: prompt::whole_rules(policy),
        };
        let Some(embedding_model) = model.embedding_model() else {
            return Ok(Ok(whole));
        };
        if retrieval::policy_chars(policy) <= settings.policy_budget_chars {
            return Ok(Ok(whole));
        }
        let tenant_id = record.tenant_id.as_str();
        let mut chunks = self
            .ports
            .store
            .policy_chunks(tenant_id, &policy.version_id, embedding_model)
            .await?;
        if chunks.is_empty() {
            let texts = retrieval::chunk_policy(policy, settings.chunk_chars);
            let vectors = match self.embed(model, tenant_id, &texts, budget).await {
                Ok(vectors) => vectors,
                Err(failure) => return Ok(Err(failure)),
            };
            chunks = texts
                .into_iter()
                .zip(vectors)
                .zip(0u32..)
                .map(|((text, embedding), index)| PolicyChunk {
                    index,
                    text,
                    embedding,
                })
                .collect();
            self.ports
                .store
                .commit(
                    tenant_id,
                    vec![Write::PutPolicyChunks {
                        policy_version_id: policy.version_id.clone(),
                        embedding_model: embedding_model.to_string(),
                        chunks: chunks.clone(),
                    }],
                )
                .await?;
        }
        let query = [retrieval::query_text(&record.request)];
        let query = match self.embed(model, tenant_id, &query, budget).await {
            Ok(mut vectors) => vectors.pop().unwrap_or_default(),
            Err(failure) => return Ok(Err(failure)),
        };
        let vectors: Vec<Vec<f32>> = chunks.iter().map(|c| c.embedding.clone()).collect();
        let passages = retrieval::top_k(&query, &vectors, settings.top_k)
            .into_iter()
            .filter_map(|i| chunks.get(i))
            .map(|c| Passage {
                id: format!("C{}", c.index + 1),
                text: c.text.clone(),
            })
            .collect();
        Ok(Ok(PolicyView {
            policy,
            complete: false,
            passages,
        }))
    }

    /// Embed `texts`: one vector each, or a failure (metered either way by the tokens reported).
    async fn embed(
        &self,
        model: &dyn JudgeModel,
        tenant_id: &str,
        texts: &[String],
        budget: &RetryBudget,
    ) -> Result<Vec<Vec<f32>>, JudgeFailure> {
        let (embedded, _) = self
            .call_model(tenant_id, budget, || model.embed(texts))
            .await;
        let embedded = embedded.map_err(JudgeFailure::from_model)?;
        self.meter_count(tenant_id, "judge.embedding_tokens", embedded.input_tokens)
            .await;
        if embedded.vectors.len() != texts.len() || embedded.vectors.iter().any(Vec::is_empty) {
            return Err(JudgeFailure::InvalidOutput(format!(
                "{} embeddings for {} texts",
                embedded.vectors.len(),
                texts.len()
            )));
        }
        Ok(embedded.vectors)
    }

    /// One model call under the tenant's concurrency limit, retried with jittered backoff while the failure
    /// is transient and the budget lasts. No call outlives the budget. Returns the result and the attempts.
    async fn call_model<T, F, Fut>(
        &self,
        tenant_id: &str,
        budget: &RetryBudget,
        mut call: F,
    ) -> (Result<T, ModelError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ModelError>>,
    {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let result = {
                let _slot = self.judge_gate.enter(tenant_id).await;
                match tokio::time::timeout(budget.remaining(), call()).await {
                    Ok(result) => result,
                    Err(_) => Err(ModelError::Timeout(
                        "the judge's retry budget ran out during the call".into(),
                    )),
                }
            };
            match result {
                Err(e) if e.is_transient() => match budget.next_wait(attempt) {
                    Some(wait) => {
                        tracing::info!(tenant_id, attempt, error = %e, wait_ms = wait.as_millis() as u64, "judge model call failed; retrying");
                        tokio::time::sleep(wait).await;
                    }
                    None => return (Err(e), attempt),
                },
                other => return (other, attempt),
            }
        }
    }
}

fn short(failure: &JudgeFailure) -> String {
    let (JudgeFailure::Unavailable(e) | JudgeFailure::InvalidOutput(e)) = failure;
    e.chars().take(MAX_ERROR_CHARS).collect()
}
