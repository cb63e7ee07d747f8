//! The verdict a judge model must produce, how it is checked, and how its confidence maps to the SDK's buckets.
//! Anything that is not exactly a verdict is invalid output: the request then goes to a human, never through.

use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::model::ConfidenceBucket;

/// What a judge concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeVerdict {
    Approve,
    Deny,
    Review,
}

/// Longest `reason` accepted; a longer one is invalid output (a model rambling is not a verdict).
pub const MAX_REASON_CHARS: usize = 1000;
/// Most passage ids a verdict may cite.
pub const MAX_RULES_APPLIED: usize = 32;

/// JSON Schema of the verdict: the forced tool call's input schema (Bedrock) or the `json_schema` response
/// format (OpenAI-compatible). Only keywords every structured-output implementation supports; the bounds
/// (confidence in 0..=1, reason length) are checked here.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["decision", "confidence", "reason", "rules_applied"],
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "deny", "review"],
                             "description": "approve only if the policy clearly allows the call"},
                "confidence": {"type": "number", "description": "0 to 1: how sure you are of the decision"},
                "reason": {"type": "string", "description": "one or two sentences for the human reviewer"},
                "rules_applied": {"type": "array", "items": {"type": "string"},
                                  "description": "ids of the policy passages the decision relies on"}
            }
        })
    })
}

/// A checked verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decision: JudgeVerdict,
    pub confidence: f64,
    pub reason: String,
    /// Passage ids the verdict relied on, limited to those the model was shown.
    pub rules_applied: Vec<String>,
}

impl Verdict {
    pub fn bucket(&self) -> ConfidenceBucket {
        bucket(self.confidence)
    }

    /// The verdict as recorded in the ledger.
    pub fn to_json(&self) -> Value {
        json!({
            "decision": decision_name(self.decision),
            "confidence": self.confidence,
            "confidence_bucket": self.bucket().as_str(),
            "reason": self.reason,
            "rules_applied": self.rules_applied,
        })
    }
}

pub fn decision_name(decision: JudgeVerdict) -> &'static str {
    match decision {
        JudgeVerdict::Approve => "approve",
        JudgeVerdict::Deny => "deny",
        JudgeVerdict::Review => "review",
    }
}

/// Confidence → bucket (docs/judge.md): extra_high ≥ 0.90, high ≥ 0.75, medium ≥ 0.50, low ≥ 0.25, else none.
pub fn bucket(confidence: f64) -> ConfidenceBucket {
    match confidence {
        c if c >= 0.90 => ConfidenceBucket::ExtraHigh,
        c if c >= 0.75 => ConfidenceBucket::High,
        c if c >= 0.50 => ConfidenceBucket::Medium,
        c if c >= 0.25 => ConfidenceBucket::Low,
        _ => ConfidenceBucket::None,
    }
}

/// Check `answer` against the schema and its bounds. Cited ids the model was not shown are dropped (a model
/// inventing a rule id does not make its decision invalid, but it is not evidence either).
pub fn parse(answer: &Value, shown_ids: &[String]) -> Result<Verdict, String> {
    let Value::Object(fields) = answer else {
        return Err("the verdict is not a JSON object".into());
    };
    if let Some(extra) = fields.keys().find(|k| {
        !matches!(
            k.as_str(),
            "decision" | "confidence" | "reason" | "rules_applied"
        )
    }) {
        return Err(format!("unexpected field `{extra}`"));
    }
    let decision = match fields.get("decision").and_then(Value::as_str) {
        Some("approve") => JudgeVerdict::Approve,
        Some("deny") => JudgeVerdict::Deny,
        Some("review") => JudgeVerdict::Review,
        _ => return Err("`decision` must be approve, deny or review".into()),
    };
    let confidence = fields
        .get("confidence")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && (0.0..=1.0).contains(c))
        .ok_or("`confidence` must be a number from 0 to 1")?;
    let reason = fields
        .get("reason")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty() && r.chars().count() <= MAX_REASON_CHARS)
        .ok_or_else(|| {
            format!("`reason` must be a non-empty string of at most {MAX_REASON_CHARS} characters")
        })?;
    let cited = fields
        .get("rules_applied")
        .and_then(Value::as_array)
        .filter(|ids| ids.len() <= MAX_RULES_APPLIED)
        .ok_or_else(|| {
            format!("`rules_applied` must be an array of at most {MAX_RULES_APPLIED} ids")
        })?;
    let mut rules_applied = Vec::new();
    for id in cited {
        let id = id.as_str().ok_or("`rules_applied` must hold strings")?;
        if shown_ids.iter().any(|shown| shown == id) && !rules_applied.iter().any(|r| r == id) {
            rules_applied.push(id.to_string());
        }
    }
    Ok(Verdict {
        decision,
        confidence,
        reason: reason.to_string(),
        rules_applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        vec!["R1".into(), "R2".into()]
    }

    #[test]
    fn a_valid_verdict_parses_and_keeps_only_shown_ids() {
        let v = parse(
            &json!({"decision": "approve", "confidence": 0.93, "reason": " fits R1 ", "rules_applied": ["R1", "R9", "R1"]}),
            &ids(),
        )
        .expect("valid");
        assert_eq!(v.decision, JudgeVerdict::Approve);
        assert_eq!(v.reason, "fits R1");
        assert_eq!(v.rules_applied, vec!["R1".to_string()]);
        assert_eq!(v.bucket(), ConfidenceBucket::ExtraHigh);
    }

    #[test]
    fn anything_off_schema_is_invalid() {
        let bad = [
            json!("approve"),
            json!({"decision": "allow", "confidence": 0.9, "reason": "x", "rules_applied": []}),
            json!({"decision": "approve", "confidence": 1.5, "reason": "x", "rules_applied": []}),
            json!({"decision": "approve", "confidence": -0.1, "reason": "x", "rules_applied": []}),
            json!({"decision": "approve", "confidence": "0.9", "reason": "x", "rules_applied": []}),
            json!({"decision": "approve", "confidence": 0.9, "reason": "", "rules_applied": []}),
            json!({"decision": "approve", "confidence": 0.9, "reason": "x".repeat(MAX_REASON_CHARS + 1), "rules_applied": []}),
            json!({"decision": "approve", "confidence": 0.9, "reason": "x"}),
            json!({"decision": "approve", "confidence": 0.9, "reason": "x", "rules_applied": [1]}),
            json!({"decision": "approve", "confidence": 0.9, "reason": "x", "rules_applied": [], "override": true}),
            json!({"confidence": 0.9, "reason": "x", "rules_applied": []}),
        ];
        for answer in bad {
            assert!(parse(&answer, &ids()).is_err(), "accepted {answer}");
        }
    }

    #[test]
    fn buckets_follow_the_documented_thresholds() {
        let cases = [
            (0.0, ConfidenceBucket::None),
            (0.2499, ConfidenceBucket::None),
            (0.25, ConfidenceBucket::Low),
            (0.5, ConfidenceBucket::Medium),
            (0.7499, ConfidenceBucket::Medium),
            (0.75, ConfidenceBucket::High),
            (0.8999, ConfidenceBucket::High),
            (0.9, ConfidenceBucket::ExtraHigh),
            (1.0, ConfidenceBucket::ExtraHigh),
        ];
        for (confidence, expected) in cases {
            assert_eq!(bucket(confidence), expected, "{confidence}");
        }
        // The legacy midpoints land in their own buckets.
        for b in [
            ConfidenceBucket::Low,
            ConfidenceBucket::Medium,
            ConfidenceBucket::High,
            ConfidenceBucket::ExtraHigh,
        ] {
            assert_eq!(bucket(b.midpoint()), b);
        }
    }
}
