//! The judge-port contract: one set of cases, run against every adapter over its test server, pins what the
//! core may rely on whichever backend is configured (the verdict comes back exactly as the model wrote it, the
//! prompt reaches the model, and each kind of failure is the same `ModelError`).
//!
//! The servers are the Python emulators in tests/aws; these tests are ignored by default and need:
//! - bedrock: `AWS_ENDPOINT_URL` (tests/aws/moto_server.py), `AWS_REGION`, dummy credentials;
//! - openai and http: `LEDGIX_TEST_MODEL_SERVER_URL` and `LEDGIX_TEST_MODEL_SERVER_KEY`
//!   (tests/aws/model_server.py; the OpenAI API at `{url}/v1`, the HTTP judge at `{url}/judge`).
//!
//! Run them with `cargo test -p ledgix-judges -- --include-ignored` (add `bedrock::`, `openai::` or `http::`
//! to run one backend's).

mod support;

use std::time::{Duration, Instant};

use ledgix_core::ports::{JudgeCall, JudgeModel, JudgePrompt, ModelError};
use ledgix_judges::{BedrockJudge, HttpJudge, HttpJudgeConfig, OpenAiConfig, OpenAiJudge};
use serde_json::{json, Value};
use support::{body, cosine, Emulator};

const TIMEOUT: Duration = Duration::from_secs(15);
const SHORT_TIMEOUT: Duration = Duration::from_secs(1);
const SYSTEM: &str = "You are the policy judge of Ledgix Vault. Answer with a verdict.";

/// The backend under test, its scripting handle, and how to build judges that differ in one setting.
struct Backend {
    name: &'static str,
    emulator: Emulator,
    judge: Box<dyn JudgeModel>,
    short_timeout: Box<dyn JudgeModel>,
    /// The same endpoint with a wrong API key (`None`: the backend has no key of its own).
    wrong_key: Option<Box<dyn JudgeModel>>,
    /// What the model receives: the prompt (LLM backends) or the protocol envelope (the http judge).
    wire: Wire,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Bedrock Converse: system blocks, one user message, the forced `record_verdict` tool.
    Converse,
    /// OpenAI Chat Completions: system and user messages, a strict `json_schema` response format.
    Chat,
    /// The HTTP judge protocol of docs/judge.md.
    Envelope,
}

fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} must be set to run this test (see the module docs)"))
}

async fn bedrock() -> Backend {
    let endpoint = env("AWS_ENDPOINT_URL");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let judge = |timeout| {
        BedrockJudge::new(&sdk, "amazon.nova-pro-v1:0", "amazon.titan-embed-text-v2:0")
            .with_timeout(timeout)
    };
    Backend {
        name: "bedrock",
        emulator: Emulator::new(&endpoint),
        judge: Box::new(judge(TIMEOUT)),
        short_timeout: Box::new(judge(SHORT_TIMEOUT)),
        wrong_key: None,
        wire: Wire::Converse,
    }
}

async fn openai() -> Backend {
    let url = env("LEDGIX_TEST_MODEL_SERVER_URL");
    let key = env("LEDGIX_TEST_MODEL_SERVER_KEY");
    let judge = |key: &str, timeout| {
        let config = OpenAiConfig {
            base_url: format!("{}/v1/", url.trim_end_matches('/')),
            api_key: Some(key.to_string()),
            model: "ledgix-test-judge".into(),
            embedding_model: Some("ledgix-test-embedding".into()),
            timeout,
        };
        Box::new(OpenAiJudge::new(config).expect("openai judge")) as Box<dyn JudgeModel>
    };
    Backend {
        name: "openai",
        emulator: Emulator::new(&url),
        judge: judge(&key, TIMEOUT),
        short_timeout: judge(&key, SHORT_TIMEOUT),
        wrong_key: Some(judge("wrong-key-0000", TIMEOUT)),
        wire: Wire::Chat,
    }
}

async fn http() -> Backend {
    let url = env("LEDGIX_TEST_MODEL_SERVER_URL");
    let key = env("LEDGIX_TEST_MODEL_SERVER_KEY");
    let judge = |key: &str, timeout| {
        let config = HttpJudgeConfig {
            url: format!("{}/judge", url.trim_end_matches('/')),
            api_key: key.to_string(),
            timeout,
        };
        Box::new(HttpJudge::new(config).expect("http judge")) as Box<dyn JudgeModel>
    };
    Backend {
        name: "http",
        emulator: Emulator::new(&url),
        judge: judge(&key, TIMEOUT),
        short_timeout: judge(&key, SHORT_TIMEOUT),
        wrong_key: Some(judge("wrong-key-0000", TIMEOUT)),
        wire: Wire::Envelope,
    }
}

/// One judgement with a marker of its own in the prompt and in the structured data, so that rules and logged
/// requests belong to exactly one test.
struct Case {
    marker: String,
    prompt: JudgePrompt,
    data: Value,
    schema: Value,
}

impl Case {
    fn new() -> Self {
        let marker = format!("case-{}", uuid::Uuid::new_v4());
        let data = json!({
            "call": {"tool_name": "issue_refund", "tool_args": {"amount": 40, "note": marker},
                     "agent_id": "agent-7", "session_id": "sess-1", "context": {}},
            "policy": {"policy_id": "refunds", "version": 1, "policy_version_id": "pv_1",
                       "description": "Refund rules", "complete": true,
                       "passages": [{"id": "R1", "text": "Refunds up to 50 EUR need no approval."}]},
        });
        let prompt = JudgePrompt {
            system: SYSTEM.to_string(),
            user: format!(
                "<<<POLICY>>>\n{}\n<<<END POLICY>>>\n<<<TOOL CALL>>>\n{}\n<<<END TOOL CALL>>>",
                data["policy"], data["call"]
            ),
        };
        Case {
            marker,
            prompt,
            data,
            schema: verdict_schema(),
        }
    }

    fn call(&self) -> JudgeCall<'_> {
        JudgeCall {
            tenant_id: "t_contract",
            request_id: "req_contract",
            prompt: &self.prompt,
            data: &self.data,
            verdict_schema: &self.schema,
        }
    }

    fn rule(&self, fields: Value) -> Value {
        let mut rule = json!({"match": self.marker});
        if let (Some(rule), Value::Object(fields)) = (rule.as_object_mut(), fields) {
            rule.extend(fields);
        }
        rule
    }
}

fn verdict_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["decision", "confidence", "reason", "rules_applied"],
        "properties": {
            "decision": {"type": "string", "enum": ["approve", "deny", "review"]},
            "confidence": {"type": "number"},
            "reason": {"type": "string"},
            "rules_applied": {"type": "array", "items": {"type": "string"}},
        },
    })
}

fn approve() -> Value {
    json!({"decision": "approve", "confidence": 0.93, "reason": "Refund of 40 EUR is under the 50 EUR limit.",
           "rules_applied": ["R1"]})
}

fn kind(result: &Result<impl std::fmt::Debug, ModelError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ModelError::Throttled(_)) => "throttled",
        Err(ModelError::Timeout(_)) => "timeout",
        Err(ModelError::Unavailable(_)) => "unavailable",
        Err(ModelError::Rejected(_)) => "rejected",
        Err(ModelError::InvalidOutput(_)) => "invalid_output",
    }
}

/// The cases, written once.
mod cases {
    use super::*;

    pub async fn approve_round_trips(judge: &dyn JudgeModel, emulator: &Emulator) {
        let case = Case::new();
        emulator
            .script(case.rule(json!({"reply": approve()})))
            .await;
        let reply = judge.decide(case.call()).await.expect("a verdict");
        assert_eq!(reply.verdict, approve());
        assert!(reply.input_tokens > 0, "{reply:?}");
        assert!(reply.output_tokens > 0, "{reply:?}");
    }

    pub async fn usage_is_reported(judge: &dyn JudgeModel, emulator: &Emulator) {
        let case = Case::new();
        let usage = json!({"input_tokens": 321, "output_tokens": 17});
        emulator
            .script(case.rule(json!({"reply": approve(), "usage": usage})))
            .await;
        let reply = judge.decide(case.call()).await.expect("a verdict");
        assert_eq!((reply.input_tokens, reply.output_tokens), (321, 17));
    }

    pub async fn the_prompt_reaches_the_model(
        judge: &dyn JudgeModel,
        emulator: &Emulator,
        wire: Wire,
    ) {
        let case = Case::new();
        emulator
            .script(case.rule(json!({"reply": approve()})))
            .await;
        judge.decide(case.call()).await.expect("a verdict");
        let requests = emulator.requests_mentioning(&case.marker).await;
        assert_eq!(
            requests.len(),
            1,
            "one request, no hidden retries: {requests:?}"
        );
        let request = &requests[0];
        let body = body(request);
        if wire != Wire::Envelope {
            assert!(
                support::mentions(request, SYSTEM),
                "system prompt: {request}"
            );
            assert!(
                support::mentions(request, &case.prompt.user),
                "user prompt: {request}"
            );
            assert_eq!(request["model"], judge.model_id(), "{request}");
            assert_eq!(
                body["temperature"]
                    .as_f64()
                    .or(body["inferenceConfig"]["temperature"].as_f64()),
                Some(0.0)
            );
        }
        match wire {
            Wire::Converse => {
                assert_eq!(body["system"], json!([{"text": SYSTEM}]));
                assert_eq!(
                    body["messages"],
                    json!([{"role": "user", "content": [{"text": case.prompt.user}]}])
                );
                let tools = &body["toolConfig"];
                assert_eq!(
                    tools["toolChoice"],
                    json!({"tool": {"name": "record_verdict"}})
                );
                assert_eq!(tools["tools"][0]["toolSpec"]["name"], "record_verdict");
                assert_eq!(
                    tools["tools"][0]["toolSpec"]["inputSchema"]["json"],
                    case.schema
                );
            }
            Wire::Chat => {
                assert_eq!(
                    body["messages"],
                    json!([{"role": "system", "content": SYSTEM}, {"role": "user", "content": case.prompt.user}])
                );
                let format = &body["response_format"];
                assert_eq!(format["type"], "json_schema");
                assert_eq!(format["json_schema"]["strict"], true);
                assert_eq!(format["json_schema"]["schema"], case.schema);
            }
            Wire::Envelope => {
                assert_eq!(body["version"], 1, "{body}");
                assert_eq!(body["tenant_id"], "t_contract");
                assert_eq!(body["request_id"], "req_contract");
                assert_eq!(body["call"], case.data["call"]);
                assert_eq!(body["policy"], case.data["policy"]);
                assert_eq!(body["verdict_schema"], case.schema);
            }
        }
    }

    pub async fn text_is_invalid_output(judge: &dyn JudgeModel, emulator: &Emulator) {
        let case = Case::new();
        emulator
            .script(case.rule(json!({"text": "I think this refund is fine."})))
            .await;
        let result = judge.decide(case.call()).await;
        assert_eq!(kind(&result), "invalid_output", "{result:?}");
    }

    pub async fn fault_maps_to(
        judge: &dyn JudgeModel,
        emulator: &Emulator,
        fault: &str,
        expected: &str,
    ) {
        let case = Case::new();
        emulator.script(case.rule(json!({"fail": fault}))).await;
        let result = judge.decide(case.call()).await;
        assert_eq!(kind(&result), expected, "fail={fault}: {result:?}");
    }

    /// The core retries with its own budget: one `decide` is one request, even when throttled.
    pub async fn failures_are_not_retried_underneath(judge: &dyn JudgeModel, emulator: &Emulator) {
        let case = Case::new();
        // The first matching call is throttled, later ones answer with the reply.
        let rule = json!({"fail": "throttle", "times": 1, "reply": approve()});
        emulator.script(case.rule(rule)).await;
        let first = judge.decide(case.call()).await;
        assert_eq!(kind(&first), "throttled", "{first:?}");
        let second = judge
            .decide(case.call())
            .await
            .expect("the fault was used up");
        assert_eq!(second.verdict, approve());
        let requests = emulator.requests_mentioning(&case.marker).await;
        assert_eq!(requests.len(), 2, "{requests:?}");
    }

    pub async fn a_hung_model_times_out(short_timeout: &dyn JudgeModel, emulator: &Emulator) {
        let case = Case::new();
        emulator
            .script(case.rule(json!({"fail": "hang", "times": 1})))
            .await;
        let started = Instant::now();
        let result = short_timeout.decide(case.call()).await;
        assert_eq!(kind(&result), "timeout", "{result:?}");
        assert!(
            started.elapsed() < SHORT_TIMEOUT * 5,
            "{:?}",
            started.elapsed()
        );
    }

    pub async fn a_wrong_key_is_rejected(wrong_key: &dyn JudgeModel, right_key: &str) {
        let case = Case::new();
        let result = wrong_key.decide(case.call()).await;
        assert_eq!(kind(&result), "rejected", "{result:?}");
        let message = format!("{result:?}");
        assert!(!message.contains("wrong-key-0000"), "{message}");
        assert!(!message.contains(right_key), "{message}");
    }

    pub async fn embeddings_follow_meaning(judge: &dyn JudgeModel) {
        let texts = [
            "refund the customer order for the damaged blue kettle",
            "refund the customer order for the damaged red kettle",
            "rotate the production database credentials tonight",
        ]
        .map(String::from);
        let embedded = judge.embed(&texts).await.expect("embeddings");
        assert_eq!(embedded.vectors.len(), texts.len());
        let dims = embedded.vectors[0].len();
        assert!(dims > 0);
        assert!(embedded.vectors.iter().all(|v| v.len() == dims));
        assert!(embedded.input_tokens > 0, "{}", embedded.input_tokens);
        let near = cosine(&embedded.vectors[0], &embedded.vectors[1]);
        let far = cosine(&embedded.vectors[0], &embedded.vectors[2]);
        assert!(near > far, "near {near} <= far {far}");
        let nothing = judge.embed(&[]).await.expect("no texts");
        assert!(nothing.vectors.is_empty());
    }

    pub async fn does_not_embed(judge: &dyn JudgeModel) {
        assert_eq!(judge.embedding_model(), None);
        let result = judge.embed(&["text".to_string()]).await;
        assert_eq!(kind(&result), "rejected", "{result:?}");
    }
}

/// The suite for one backend; `$setup` builds it, `$embeds` says whether it does retrieval.
macro_rules! judge_contract {
    ($name:ident, $reason:literal, embeds: $embeds:literal $(, $extra:item)*) => {
        mod $name {
            use super::*;

            async fn backend() -> Backend {
                let backend = super::$name().await;
                assert_eq!(backend.judge.backend(), backend.name);
                backend
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn an_approve_verdict_round_trips() {
                let b = backend().await;
                cases::approve_round_trips(&*b.judge, &b.emulator).await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn usage_is_reported() {
                let b = backend().await;
                cases::usage_is_reported(&*b.judge, &b.emulator).await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn the_prompt_reaches_the_model() {
                let b = backend().await;
                cases::the_prompt_reaches_the_model(&*b.judge, &b.emulator, b.wire).await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn text_is_invalid_output() {
                let b = backend().await;
                cases::text_is_invalid_output(&*b.judge, &b.emulator).await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn throttling_is_throttled() {
                let b = backend().await;
                cases::fault_maps_to(&*b.judge, &b.emulator, "throttle", "throttled").await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn a_model_timeout_is_a_timeout() {
                let b = backend().await;
                // The short timeout: an OpenAI-compatible server has no timeout error, the emulator hangs.
                cases::fault_maps_to(&*b.short_timeout, &b.emulator, "timeout", "timeout").await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn a_hung_model_times_out() {
                let b = backend().await;
                cases::a_hung_model_times_out(&*b.short_timeout, &b.emulator).await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn validation_is_rejected() {
                let b = backend().await;
                cases::fault_maps_to(&*b.judge, &b.emulator, "validation", "rejected").await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn unavailability_is_unavailable() {
                let b = backend().await;
                cases::fault_maps_to(&*b.judge, &b.emulator, "unavailable", "unavailable").await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn failures_are_not_retried_underneath() {
                let b = backend().await;
                cases::failures_are_not_retried_underneath(&*b.judge, &b.emulator).await;
            }

            #[tokio::test]
            #[ignore = $reason]
            async fn embedding() {
                let b = backend().await;
                if $embeds {
                    cases::embeddings_follow_meaning(&*b.judge).await;
                } else {
                    cases::does_not_embed(&*b.judge).await;
                }
            }

            $($extra)*
        }
    };
}

/// For backends with an API key of their own (Bedrock's credentials are the SDK's: signed requests).
macro_rules! wrong_key_test {
    ($reason:literal) => {
        #[tokio::test]
        #[ignore = $reason]
        async fn a_wrong_api_key_is_rejected() {
            let b = backend().await;
            let wrong = b.wrong_key.as_deref().expect("a wrong-key judge");
            cases::a_wrong_key_is_rejected(wrong, &env("LEDGIX_TEST_MODEL_SERVER_KEY")).await;
        }
    };
}

judge_contract!(bedrock, "needs the AWS emulator (AWS_ENDPOINT_URL)", embeds: true);
judge_contract!(
    openai,
    "needs the model server (LEDGIX_TEST_MODEL_SERVER_URL, _KEY)",
    embeds: true,
    wrong_key_test!("needs the model server (LEDGIX_TEST_MODEL_SERVER_URL, _KEY)");
);
judge_contract!(
    http,
    "needs the model server (LEDGIX_TEST_MODEL_SERVER_URL, _KEY)",
    embeds: false,
    wrong_key_test!("needs the model server (LEDGIX_TEST_MODEL_SERVER_URL, _KEY)");
);
