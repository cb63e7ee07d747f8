//! Retrieval for long policies: a policy over the judge's budget is cut into chunks, each chunk embedded once
//! (stored per tenant, policy version and embedding model), and each judgement shows the model the top-k
//! chunks by cosine similarity to the call. Ranking is done here over plain arrays: PostgreSQL here has no
//! pgvector; on Aurora with pgvector, `TenantStore::policy_chunks` could rank in SQL instead (docs/judge.md).

use crate::model::{ClearanceRequest, PolicyVersion};

/// Longest query text embedded for a call (tool name, arguments, context), in characters.
pub const MAX_QUERY_CHARS: usize = 4000;

/// Characters of policy text the judge would see whole: description and rules.
pub fn policy_chars(policy: &PolicyVersion) -> usize {
    policy.description.chars().count()
        + policy
            .rules
            .iter()
            .map(|r| r.chars().count())
            .sum::<usize>()
}

/// Cut the policy's rules into chunks of at most `max_chars` characters: each rule is a chunk when it fits; a
/// longer rule is cut at sentence ends (or, failing that, at whitespace, or anywhere). The description is not
/// chunked: the judge always sees it. Chunk `i` is shown to the model as `C{i+1}`.
pub fn chunk_policy(policy: &PolicyVersion, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(64);
    let mut chunks = Vec::new();
    for rule in &policy.rules {
        let rule = rule.trim();
        if !rule.is_empty() {
            chunks.extend(split(rule, max_chars));
        }
    }
    chunks
}

fn split(text: &str, max_chars: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for sentence in sentences(text) {
        if current.chars().count() + sentence.chars().count() > max_chars && !current.is_empty() {
            out.push(std::mem::take(&mut current).trim().to_string());
        }
        if sentence.chars().count() > max_chars {
            out.extend(hard_wrap(sentence, max_chars));
        } else {
            current.push_str(sentence);
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// Sentences with their trailing punctuation and space.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let at_end = matches!(c, '.' | '!' | '?' | '\n' | ';');
        let followed_by_space = chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        if at_end && followed_by_space {
            let end = chars.peek().map_or(text.len(), |(j, _)| *j);
            out.push(&text[start..end]);
            start = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn hard_wrap(text: &str, max_chars: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for word in text.split_inclusive(char::is_whitespace) {
        if current.chars().count() + word.chars().count() > max_chars && !current.is_empty() {
            out.push(std::mem::take(&mut current).trim().to_string());
        }
        if word.chars().count() > max_chars {
            let chars: Vec<char> = word.chars().collect();
            out.extend(
                chars
                    .chunks(max_chars)
                    .map(|c| c.iter().collect::<String>().trim().to_string()),
            );
        } else {
            current.push_str(word);
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out.retain(|c| !c.is_empty());
    out
}

/// What a call is about, as text to embed: tool name, arguments and context (bounded).
pub fn query_text(request: &ClearanceRequest) -> String {
    let text = format!(
        "tool: {}\narguments: {}\ncontext: {}",
        request.tool_name, request.tool_args, request.context
    );
    text.chars().take(MAX_QUERY_CHARS).collect()
}

/// Cosine similarity; 0 for vectors of different length or zero norm.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na.sqrt() * nb.sqrt())) as f32
}

/// Indexes of the `k` chunks most similar to `query` (ties: the earlier chunk), returned in policy order.
pub fn top_k(query: &[f32], chunks: &[Vec<f32>], k: usize) -> Vec<usize> {
    let mut scored: Vec<(usize, f32)> = chunks
        .iter()
        .enumerate()
        .map(|(i, v)| (i, cosine(query, v)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut chosen: Vec<usize> = scored.into_iter().take(k.max(1)).map(|(i, _)| i).collect();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: Vec<String>) -> PolicyVersion {
        PolicyVersion {
            tenant_id: "t".into(),
            policy_id: "p".into(),
            version: 1,
            version_id: "pv".into(),
            content_hash: "h".into(),
            description: "Handbook".into(),
            rules,
            tools: vec![],
            rego: None,
            created_at: String::new(),
        }
    }

    #[test]
    fn chunks_respect_the_limit_and_keep_every_word() {
        let long_rule = "Refunds need a receipt. ".repeat(60) + &"x".repeat(300);
        let p = policy(vec!["Short rule.".into(), long_rule.clone()]);
        let chunks = chunk_policy(&p, 200);
        assert_eq!(chunks[0], "Short rule.");
        assert!(
            chunks
                .iter()
                .all(|c| c.chars().count() <= 200 && !c.is_empty()),
            "{chunks:?}"
        );
        let words = |t: &str| {
            t.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
                .join("")
        };
        assert_eq!(words(&chunks[1..].join(" ")), words(&long_rule));
        assert!(policy_chars(&p) > 1500);
    }

    #[test]
    fn top_k_picks_the_most_similar_in_policy_order() {
        let chunks = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.7, 0.7, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        assert_eq!(top_k(&[0.0, 1.0, 0.1], &chunks, 2), vec![1, 2]);
        assert_eq!(top_k(&[0.0, 0.0, 1.0], &chunks, 1), vec![3]);
        assert_eq!(cosine(&[1.0, 0.0], &[1.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[3.0, 4.0], &[3.0, 4.0]) - 1.0).abs() < 1e-6);
    }
}
