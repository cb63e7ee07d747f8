"""The emulator's Bedrock Runtime (moto_server.py, 6) behaves as AWS documents it, checked through boto3's
bedrock-runtime client, whose botocore model parses our answers as it parses AWS's: Converse with a forced tool,
text answers, errors, the scripted model's rules, Titan Text Embeddings V2, the call recorder and the request log.
One moto_server.py subprocess on a free loopback port serves the whole module."""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

import servers

HERE = Path(__file__).parent
http = servers.http
NO_RETRIES = Config(retries={"total_max_attempts": 1})
MODEL = "amazon.nova-pro-v1:0"
EMBED = "amazon.titan-embed-text-v2:0"
SYSTEM = "You are Ledgix's policy judge. Answer with record_verdict."
DENY = {"decision": "deny", "confidence": 0.93, "reason": "R1 forbids deleting production data",
        "rules_applied": ["R1"]}
APPROVE = {"decision": "approve", "confidence": 0.8, "reason": "within policy", "rules_applied": ["C2"]}
NO_ANSWER = {"decision": "review", "confidence": 0.0, "reason": "no scripted answer", "rules_applied": []}
VERDICT_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["decision", "confidence", "reason", "rules_applied"],
    "properties": {"decision": {"type": "string", "enum": ["approve", "deny", "review"]},
                   "confidence": {"type": "number"}, "reason": {"type": "string"},
                   "rules_applied": {"type": "array", "items": {"type": "string"}}}}
TOOLS = {"tools": [{"toolSpec": {"name": "record_verdict", "description": "Record the verdict",
                                 "inputSchema": {"json": VERDICT_SCHEMA}}}],
         "toolChoice": {"tool": {"name": "record_verdict"}}}


@pytest.fixture(scope="module")
def endpoint():
    proc, url = servers.start("moto_server.py", ready="/_ledgix/model/requests")
    yield url
    servers.stop(proc)


@pytest.fixture
def script(endpoint):
    """Arm rules on the scripted model; every test starts and ends with no rules and an empty request log."""
    def arm(*rules: dict) -> None:
        status, answer = http("POST", f"{endpoint}/_ledgix/model/script", {"rules": list(rules)})
        assert status == 200, answer
    assert http("POST", f"{endpoint}/_ledgix/model/script", {"reset": True})[0] == 200
    yield arm
    http("POST", f"{endpoint}/_ledgix/model/script", {"reset": True})


def requests_logged(endpoint) -> list[dict]:
    status, answer = http("GET", f"{endpoint}/_ledgix/model/requests")
    assert status == 200
    return json.loads(answer)


def client(service: str, endpoint: str, config: Config = NO_RETRIES, access_key: str = "test"):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access_key,
                        aws_secret_access_key="test", config=config)


@pytest.fixture(scope="module")
def bedrock(endpoint):
    return client("bedrock-runtime", endpoint)


def converse(bedrock, text: str = "tool_name=delete_table args={\"table\": \"prod\"}", model: str = MODEL,
             tools: dict | None = TOOLS, **kwargs):
    request = {"modelId": model, "system": [{"text": SYSTEM}],
               "messages": [{"role": "user", "content": [{"text": text}]}], **kwargs}
    if tools is not None:
        request["toolConfig"] = tools
    return bedrock.converse(**request)


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def embed(bedrock, text: str, **fields) -> dict:
    answer = bedrock.invoke_model(modelId=EMBED, body=json.dumps({"inputText": text, **fields}))
    assert answer["contentType"] == "application/json"
    return json.loads(answer["body"].read())


# --- Converse ---------------------------------------------------------------------------------------------------------

def test_forced_tool_returns_the_scripted_verdict_as_tool_input(bedrock, script):
    script({"match": "delete_table", "reply": DENY, "usage": {"input_tokens": 321, "output_tokens": 45}})
    answer = converse(bedrock)
    assert answer["stopReason"] == "tool_use"
    message = answer["output"]["message"]
    assert message["role"] == "assistant" and len(message["content"]) == 1
    use = message["content"][0]["toolUse"]
    assert use["name"] == "record_verdict" and use["input"] == DENY
    assert use["toolUseId"].startswith("tooluse_") and len(use["toolUseId"]) > len("tooluse_")
    assert answer["usage"] == {"inputTokens": 321, "outputTokens": 45, "totalTokens": 366}
    assert answer["metrics"]["latencyMs"] >= 1


def test_usage_is_counted_from_the_prompt_and_answer_when_not_scripted(bedrock, script):
    script({"match": "delete_table", "reply": DENY})
    text = "tool_name=delete_table"
    usage = converse(bedrock, text)["usage"]
    assert usage["inputTokens"] == math.ceil(len(SYSTEM + "\n" + text) / 4)
    assert usage["outputTokens"] == math.ceil(len(json.dumps(DENY)) / 4)
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]


def test_text_rule_answers_text_content(bedrock, script):
    script({"match": "delete_table", "text": "I think this is probably fine?"})
    answer = converse(bedrock)
    assert answer["stopReason"] == "end_turn"
    assert answer["output"]["message"]["content"] == [{"text": "I think this is probably fine?"}]


def test_without_tool_config_the_reply_is_text(bedrock, script):
    script({"match": "delete_table", "reply": DENY})
    answer = converse(bedrock, tools=None)
    assert answer["stopReason"] == "end_turn"
    assert json.loads(answer["output"]["message"]["content"][0]["text"]) == DENY


def test_newest_matching_rule_wins_and_no_match_is_review(bedrock, script):
    script({"match": "delete", "reply": APPROVE}, {"match": "delete_table", "reply": DENY})
    assert converse(bedrock)["output"]["message"]["content"][0]["toolUse"]["input"] == DENY
    assert converse(bedrock, "delete_row")["output"]["message"]["content"][0]["toolUse"]["input"] == APPROVE
    assert converse(bedrock, "read_file")["output"]["message"]["content"][0]["toolUse"]["input"] == NO_ANSWER


def test_the_system_prompt_is_matched_too(bedrock, script):
    script({"match": "policy judge", "reply": APPROVE})
    assert converse(bedrock, "anything")["output"]["message"]["content"][0]["toolUse"]["input"] == APPROVE


@pytest.mark.parametrize("fail, error, status", [
    ("throttle", "ThrottlingException", 429),
    ("timeout", "ModelTimeoutException", 408),
    ("validation", "ValidationException", 400),
    ("unavailable", "ServiceUnavailableException", 503),
])
def test_scripted_failures_are_bedrock_errors(bedrock, script, fail, error, status):
    script({"match": "delete_table", "fail": fail})
    with pytest.raises(ClientError) as err:
        converse(bedrock)
    assert code(err) == error
    meta = err.value.response["ResponseMetadata"]
    assert meta["HTTPStatusCode"] == status
    assert meta["HTTPHeaders"]["x-amzn-errortype"] == f"{error}:http://internal.amazon.com/coral/com.amazon.bedrock/"
    assert err.value.response["Error"]["Message"]
    if fail == "throttle":
        assert err.value.response["Error"]["Message"] == "Too many requests, please wait before trying again."
    with pytest.raises(ClientError):  # no "times": every call fails
        converse(bedrock)


def test_fail_times_then_the_reply(bedrock, script):
    script({"match": "delete_table", "fail": "throttle", "times": 2, "reply": DENY})
    for _ in range(2):
        with pytest.raises(ClientError) as err:
            converse(bedrock)
        assert code(err) == "ThrottlingException"
    for _ in range(2):
        assert converse(bedrock)["output"]["message"]["content"][0]["toolUse"]["input"] == DENY


def test_boto3_default_retries_ride_out_a_short_throttle(endpoint, script):
    script({"match": "delete_table", "fail": "throttle", "times": 1, "reply": DENY})
    retrying = client("bedrock-runtime", endpoint, Config(retries={"mode": "standard"}))
    assert converse(retrying)["output"]["message"]["content"][0]["toolUse"]["input"] == DENY
    assert len(requests_logged(endpoint)) == 2


def test_reply_times_then_the_older_rule(bedrock, script):
    script({"match": "delete", "reply": APPROVE}, {"match": "delete_table", "reply": DENY, "times": 1})
    assert converse(bedrock)["output"]["message"]["content"][0]["toolUse"]["input"] == DENY
    assert converse(bedrock)["output"]["message"]["content"][0]["toolUse"]["input"] == APPROVE


def test_hang_outlasts_a_client_timeout_then_answers(endpoint, script):
    script({"match": "delete_table", "fail": "hang", "times": 1, "delay_seconds": 2, "reply": DENY})
    impatient = client("bedrock-runtime", endpoint, Config(retries={"total_max_attempts": 1}, read_timeout=0.5))
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        converse(impatient)
    assert time.monotonic() - started < 1.5
    assert converse(impatient)["output"]["message"]["content"][0]["toolUse"]["input"] == DENY  # times: 1


def test_a_hanging_call_holds_up_no_other_request(endpoint, script):
    """Bedrock requests are not serialised with DynamoDB's (moto_server.py, 5): a DynamoDB call goes through while
    a Converse call hangs."""
    script({"match": "delete_table", "fail": "hang", "delay_seconds": 1.5, "reply": DENY})
    patient = client("bedrock-runtime", endpoint, Config(retries={"total_max_attempts": 1}, read_timeout=10))
    hanging = threading.Thread(target=converse, args=(patient,))
    hanging.start()
    time.sleep(0.2)
    started = time.monotonic()
    client("dynamodb", endpoint).list_tables()
    converse(patient, "read_file")  # another model call, not matching the hang
    assert time.monotonic() - started < 1.0
    hanging.join()


# --- model identifiers and request validation -------------------------------------------------------------------------

@pytest.mark.parametrize("model", [
    "amazon.nova-pro-v1:0", "us.amazon.nova-pro-v1:0", "eu.amazon.nova-lite-v1:0", "apac.amazon.nova-micro-v1:0",
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "meta.llama3-1-70b-instruct-v1:0", "amazon.titan-text-express-v1",
    "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-pro-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
])
def test_known_model_identifiers_are_accepted(bedrock, script, endpoint, model):
    script({"match": "delete_table", "reply": DENY})
    assert converse(bedrock, model=model)["output"]["message"]["content"][0]["toolUse"]["input"] == DENY
    assert requests_logged(endpoint)[-1]["model"] == model


@pytest.mark.parametrize("model", [
    "amazon.nova-pro", "openai.gpt-4o-v1:0", "gpt-4o", "xx.amazon.nova-pro-v1:0", "mistral.mistral-large-2402-v1:0",
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/amazon.nova-pro-v1:0",
    "arn:aws:s3:::bucket/amazon.nova-pro-v1:0",
])
def test_unknown_model_identifier_is_a_validation_error(bedrock, script, model):
    with pytest.raises(ClientError) as err:
        converse(bedrock, model=model)
    assert code(err) == "ValidationException"
    assert err.value.response["Error"]["Message"] == "The provided model identifier is invalid."
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("request_fields", [
    {"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]},
    {"messages": [{"role": "user", "content": [{"text": "a"}]}, {"role": "user", "content": [{"text": "b"}]}]},
    {"messages": [{"role": "user", "content": []}]},
    {"messages": [{"role": "user", "content": [{"text": "   "}]}]},
    {"messages": []},
    {"system": [{"text": " "}]},
    {"toolConfig": {"tools": TOOLS["tools"], "toolChoice": {"tool": {"name": "something_else"}}}},
    {"toolConfig": {"tools": [{"toolSpec": {"name": "bad name!", "inputSchema": {"json": {}}}}]}},
    {"inferenceConfig": {"temperature": 1.5}},
    {"toolConfig": None,  # toolResult needs a toolConfig
     "messages": [{"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}]}]},
    {"modelId": EMBED},
])
def test_invalid_converse_requests_are_refused(bedrock, script, endpoint, request_fields):
    request = {"modelId": MODEL, "messages": [{"role": "user", "content": [{"text": "delete_table"}]}],
               "toolConfig": TOOLS, **request_fields}
    request = {name: value for name, value in request.items() if value is not None}
    with pytest.raises(ClientError) as err:
        bedrock.converse(**request)
    assert code(err) == "ValidationException"
    assert requests_logged(endpoint) == []  # refused before the model saw it


def test_auto_tool_choice_answers_with_the_first_tool(bedrock, script):
    script({"match": "delete_table", "reply": DENY})
    tools = {"tools": TOOLS["tools"] + [{"toolSpec": {"name": "other", "inputSchema": {"json": {"type": "object"}}}}],
             "toolChoice": {"auto": {}}}
    use = converse(bedrock, tools=tools)["output"]["message"]["content"][0]["toolUse"]
    assert use["name"] == "record_verdict"
    tools["toolChoice"] = {"tool": {"name": "other"}}
    assert converse(bedrock, tools=tools)["output"]["message"]["content"][0]["toolUse"]["name"] == "other"


# --- InvokeModel: Titan Text Embeddings V2 ----------------------------------------------------------------------------

def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.parametrize("dimensions", [256, 512, 1024, None])
def test_titan_embeddings_have_the_dimensions_and_unit_length(bedrock, script, dimensions):
    fields = {} if dimensions is None else {"dimensions": dimensions}
    answer = embed(bedrock, "Agents may not delete production tables.", **fields)
    assert set(answer) == {"embedding", "inputTextTokenCount"}
    assert len(answer["embedding"]) == (dimensions or 1024)
    assert math.isclose(math.sqrt(sum(x * x for x in answer["embedding"])), 1.0, rel_tol=1e-9)
    assert answer["inputTextTokenCount"] == math.ceil(len("Agents may not delete production tables.") / 4)


def test_titan_embeddings_are_deterministic_and_similar_texts_score_higher(bedrock, script):
    query = embed(bedrock, "delete the production database table")["embedding"]
    assert embed(bedrock, "delete the production database table")["embedding"] == query
    close = embed(bedrock, "Never delete a production database table without approval.")["embedding"]
    far = embed(bedrock, "Refunds over 500 dollars need a manager's sign-off.")["embedding"]
    assert cosine(query, close) > cosine(query, far) + 0.2


def test_titan_embeddings_unnormalised_and_binary(bedrock, script):
    raw = embed(bedrock, "alpha beta beta", dimensions=256, normalize=False)["embedding"]
    assert sorted(abs(x) for x in raw if x)[-1] >= 1.0 and not math.isclose(sum(x * x for x in raw), 1.0)
    both = embed(bedrock, "alpha beta", dimensions=256, embeddingTypes=["float", "binary"])
    assert both["embeddingsByType"]["float"] == both["embedding"]
    assert set(both["embeddingsByType"]["binary"]) <= {0, 1}


@pytest.mark.parametrize("body", [
    {"inputText": ""}, {"inputText": "x" * 50_001}, {"inputText": "x", "dimensions": 300}, {},
    {"inputText": "x", "normalize": "yes"}, {"inputText": "x", "unknownField": 1}, {"inputText": 5},
])
def test_invalid_embedding_bodies_are_refused(bedrock, script, body):
    with pytest.raises(ClientError) as err:
        bedrock.invoke_model(modelId=EMBED, body=json.dumps(body))
    assert code(err) == "ValidationException"
    assert err.value.response["Error"]["Message"].startswith("Malformed input request")


def test_max_length_input_is_accepted(bedrock, script):
    assert len(embed(bedrock, "word " * 10_000, dimensions=256)["embedding"]) == 256


def test_invoke_model_on_a_chat_model_or_unknown_model_is_refused(bedrock, script):
    for model in (MODEL, "not-a-model"):
        with pytest.raises(ClientError) as err:
            bedrock.invoke_model(modelId=model, body=json.dumps({"inputText": "x"}))
        assert code(err) == "ValidationException"


def test_scripted_failures_apply_to_embeddings(bedrock, script):
    script({"match": "production", "fail": "throttle", "times": 1})
    with pytest.raises(ClientError) as err:
        embed(bedrock, "production tables")
    assert code(err) == "ThrottlingException"
    assert len(embed(bedrock, "production tables")["embedding"]) == 1024


def test_rules_can_be_limited_to_apis(bedrock, script):
    script({"match": "delete_table", "fail": "unavailable", "apis": ["converse"]})
    embed(bedrock, "delete_table")  # not affected
    with pytest.raises(ClientError) as err:
        converse(bedrock)
    assert code(err) == "ServiceUnavailableException"


# --- the call recorder and the request log ----------------------------------------------------------------------------

def test_call_recorder_names_converse_and_invoke_model(endpoint, script):
    model = client("bedrock-runtime", endpoint, access_key="BEDROCKREC")
    converse(model)
    converse(model)
    model.invoke_model(modelId=EMBED, body=json.dumps({"inputText": "x"}))
    with pytest.raises(ClientError):
        converse(model, model="bogus")
    status, answer = http("GET", f"{endpoint}/_ledgix/calls?access_key=BEDROCKREC")
    assert status == 200
    assert json.loads(answer) == [{"service": "bedrock", "operation": "Converse", "count": 3},
                                  {"service": "bedrock", "operation": "InvokeModel", "count": 1}]


def test_request_log_holds_prompt_and_body(bedrock, script, endpoint):
    converse(bedrock, "tool_name=delete_table", model="us.amazon.nova-pro-v1:0", inferenceConfig={"temperature": 0})
    embed(bedrock, "delete_table", dimensions=512)
    log = requests_logged(endpoint)
    assert [entry["api"] for entry in log] == ["converse", "invoke_model"]
    assert log[0]["model"] == "us.amazon.nova-pro-v1:0"
    assert log[0]["prompt"] == SYSTEM + "\n" + "tool_name=delete_table"
    assert log[0]["body"]["toolConfig"]["toolChoice"] == {"tool": {"name": "record_verdict"}}
    assert log[0]["body"]["inferenceConfig"] == {"temperature": 0}
    assert log[1] == {"api": "invoke_model", "model": EMBED, "prompt": "delete_table",
                      "body": {"inputText": "delete_table", "dimensions": 512}}
    assert http("POST", f"{endpoint}/_ledgix/model/requests", {"reset": True}) == (200, b"[]")
    assert requests_logged(endpoint) == []


@pytest.mark.parametrize("body", [
    {"rules": [{"reply": DENY}]}, {"rules": [{"match": "x", "fail": "explode"}]}, {"rules": {"match": "x"}},
    {"rules": [{"match": "x", "replies": DENY}]}, {"rules": [{"match": "x", "reply": DENY, "text": "t"}]},
    {"rules": [{"match": "x", "times": -1}]}, {"reset": False}, {}, {"rules": [{"match": "x", "apis": ["chat2"]}]},
])
def test_control_api_refuses_bad_input(endpoint, script, body):
    status, answer = http("POST", f"{endpoint}/_ledgix/model/script", body)
    assert status == 400 and "error" in json.loads(answer)
    assert http("PUT", f"{endpoint}/_ledgix/model/script", {})[0] == 405


def test_control_api_lists_and_resets_rules(endpoint, bedrock, script):
    script({"match": "delete_table", "reply": DENY})
    converse(bedrock)
    status, answer = http("GET", f"{endpoint}/_ledgix/model/script")
    assert status == 200 and json.loads(answer) == {"rules": [{"match": "delete_table", "reply": DENY, "calls": 1}]}
    assert http("POST", f"{endpoint}/_ledgix/model/script", {"reset": True}) == (200, b'{"rules": 0}')
    assert requests_logged(endpoint) == []
    assert converse(bedrock)["output"]["message"]["content"][0]["toolUse"]["input"] == NO_ANSWER
