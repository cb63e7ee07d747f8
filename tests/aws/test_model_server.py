"""model_server.py speaks OpenAI's Chat Completions and Embeddings APIs and the HTTP judge protocol of
docs/judge.md, answered by the scripted model (scripted_model.py). One server with an API key serves the module;
a second one without a key checks that auth is then off."""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from pathlib import Path

import httpx
import pytest

import servers

HERE = Path(__file__).parent
KEY = "sk-test-ledgix-0123456789"
DENY = {"decision": "deny", "confidence": 0.93, "reason": "R1 forbids deleting production data",
        "rules_applied": ["R1"]}
NO_ANSWER = {"decision": "review", "confidence": 0.0, "reason": "no scripted answer", "rules_applied": []}
VERDICT_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["decision", "confidence", "reason", "rules_applied"],
    "properties": {"decision": {"type": "string", "enum": ["approve", "deny", "review"]},
                   "confidence": {"type": "number"}, "reason": {"type": "string"},
                   "rules_applied": {"type": "array", "items": {"type": "string"}}}}
SYSTEM = "You are Ledgix's policy judge. Answer with the verdict as JSON."
USER = 'tool_name=delete_table args={"table": "prod"}'
HTTP = httpx.Client(timeout=10)  # one client (and connection pool) for the module's plain requests


def start_server(*args: str):
    return servers.start("model_server.py", *args, ready="/_ledgix/model/requests", timeout=30)


stop_server = servers.stop


@pytest.fixture(scope="module")
def server():
    proc, url = start_server("--api-key", KEY)
    yield url
    stop_server(proc)


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as client:
        yield client


@pytest.fixture
def script(server):
    def arm(*rules: dict) -> None:
        answer = HTTP.post(f"{server}/_ledgix/model/script", json={"rules": list(rules)})
        assert answer.status_code == 200, answer.text
    assert HTTP.post(f"{server}/_ledgix/model/script", json={"reset": True}).status_code == 200
    yield arm
    HTTP.post(f"{server}/_ledgix/model/script", json={"reset": True})


def logged(server) -> list[dict]:
    return HTTP.get(f"{server}/_ledgix/model/requests").json()


def chat_body(**overrides) -> dict:
    return {"model": "gpt-4o-2024-08-06", "temperature": 0, "max_completion_tokens": 512,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}},
            **overrides}


def assert_openai_error(answer: httpx.Response, status: int, type_: str, code: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == type_ and error["code"] == code
    return error


# --- Chat Completions -------------------------------------------------------------------------------------------------

def test_chat_completion_shape(api, script, server):
    script({"match": "delete_table", "reply": DENY})
    before = int(time.time())
    answer = api.post("/v1/chat/completions", json=chat_body())
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert before <= body["created"] <= int(time.time()) + 1
    assert body["model"] == "gpt-4o-2024-08-06"
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and json.loads(choice["message"]["content"]) == DENY
    usage = body["usage"]
    assert usage["prompt_tokens"] == math.ceil(len(SYSTEM + "\n" + USER) / 4)
    assert usage["completion_tokens"] == math.ceil(len(json.dumps(DENY)) / 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    [entry] = logged(server)
    assert entry["api"] == "chat" and entry["model"] == "gpt-4o-2024-08-06"
    assert entry["prompt"] == SYSTEM + "\n" + USER and entry["body"] == chat_body()


def test_chat_text_rule_usage_rule_and_no_match(api, script):
    script({"match": "delete_table", "text": "not json at all", "usage": {"input_tokens": 7, "output_tokens": 3}})
    body = api.post("/v1/chat/completions", json=chat_body()).json()
    assert body["choices"][0]["message"]["content"] == "not json at all"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    other = api.post("/v1/chat/completions", json=chat_body(messages=[{"role": "user", "content": "read_file"}]))
    assert json.loads(other.json()["choices"][0]["message"]["content"]) == NO_ANSWER


def test_content_parts_and_developer_messages_are_prompt_text(api, script, server):
    messages = [{"role": "developer", "content": [{"type": "text", "text": "judge"}]},
                {"role": "user", "content": [{"type": "text", "text": "delete_table"}]}]
    assert api.post("/v1/chat/completions", json=chat_body(messages=messages)).status_code == 200
    assert logged(server)[-1]["prompt"] == "judge\ndelete_table"


@pytest.mark.parametrize("headers, code", [
    ({}, None), ({"Authorization": "Bearer wrong-key-123456"}, "invalid_api_key"),
    ({"Authorization": f"Basic {KEY}"}, "invalid_api_key"),
])
def test_chat_requires_the_bearer_key(server, script, headers, code):
    answer = HTTP.post(f"{server}/v1/chat/completions", json=chat_body(), headers=headers)
    error = assert_openai_error(answer, 401, "invalid_request_error", code)
    if code:
        assert error["message"].startswith("Incorrect API key provided")
    assert logged(server) == []


def test_without_an_api_key_no_auth_is_needed():
    proc, url = start_server()
    try:
        assert HTTP.post(f"{url}/v1/chat/completions", json=chat_body()).status_code == 200
        assert HTTP.post(f"{url}/judge", json=judge_body()).status_code == 200
    finally:
        stop_server(proc)


@pytest.mark.parametrize("body, param, code", [
    ({"model": None}, None, None),
    ({"messages": None}, "messages", "missing_required_parameter"),
    ({"messages": []}, "messages", "empty_array"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"temperature": 3}, "temperature", "decimal_above_max_value"),
    ({"max_tokens": 0}, "max_tokens", "integer_below_min_value"),
    ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": VERDICT_SCHEMA}}},
     "response_format.json_schema.name", "missing_required_parameter"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "verdict", "strict": True, "schema": {**VERDICT_SCHEMA, "additionalProperties": True}}}},
     "response_format", None),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "verdict", "strict": True, "schema": {**VERDICT_SCHEMA, "required": ["decision"]}}}},
     "response_format", None),
    ({"response_format": {"type": "json_object"}, "messages": [{"role": "user", "content": "delete_table"}]},
     "messages", None),  # json_object needs the word "json" in the messages
    ({"temprature": 0}, None, None),
])
def test_invalid_chat_requests_are_refused_in_openai_shape(api, script, server, body, param, code):
    request = {name: value for name, value in chat_body(**body).items() if value is not None}
    error = assert_openai_error(api.post("/v1/chat/completions", json=request), 400, "invalid_request_error", code)
    assert error["param"] == param
    assert logged(server) == []


def test_json_schema_without_strict_and_json_object_are_accepted(api, script):
    loose = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}}}
    assert api.post("/v1/chat/completions", json=chat_body(response_format=loose)).status_code == 200
    messages = [{"role": "user", "content": "answer in JSON: delete_table"}]
    answer = api.post("/v1/chat/completions", json=chat_body(response_format={"type": "json_object"},
                                                              messages=messages))
    assert answer.status_code == 200


def test_unparsable_body_and_unknown_path(api, script):
    answer = api.post("/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_openai_error(answer, 400, "invalid_request_error")
    assert_openai_error(api.post("/v1/completions", json={}), 404, "invalid_request_error")


@pytest.mark.parametrize("fail, status, type_, code", [
    ("throttle", 429, "requests", "rate_limit_exceeded"),
    ("validation", 400, "invalid_request_error", None),
    ("unavailable", 503, "server_error", None),
])
def test_scripted_failures_in_openai_shape(api, script, fail, status, type_, code):
    script({"match": "delete_table", "fail": fail, "times": 1, "reply": DENY})
    assert_openai_error(api.post("/v1/chat/completions", json=chat_body()), status, type_, code)
    answer = api.post("/v1/chat/completions", json=chat_body())
    assert json.loads(answer.json()["choices"][0]["message"]["content"]) == DENY


@pytest.mark.parametrize("fail", ["hang", "timeout"])  # OpenAI has no timeout status: a timeout hangs
def test_hang_outlasts_a_client_timeout(server, script, fail):
    script({"match": "delete_table", "fail": fail, "times": 1, "delay_seconds": 1.5, "reply": DENY})
    headers = {"Authorization": f"Bearer {KEY}"}
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        HTTP.post(f"{server}/v1/chat/completions", json=chat_body(), headers=headers, timeout=0.4)
    assert time.monotonic() - started < 1.2
    answer = HTTP.post(f"{server}/v1/chat/completions", json=chat_body(), headers=headers, timeout=1.0)
    assert json.loads(answer.json()["choices"][0]["message"]["content"]) == DENY


def test_a_patient_client_gets_the_answer_after_the_hang(api, script):
    script({"match": "delete_table", "fail": "hang", "delay_seconds": 0.5, "reply": DENY})
    started = time.monotonic()
    answer = api.post("/v1/chat/completions", json=chat_body())
    assert time.monotonic() - started >= 0.5
    assert json.loads(answer.json()["choices"][0]["message"]["content"]) == DENY


# --- Embeddings -------------------------------------------------------------------------------------------------------

def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))  # unit vectors


def test_embeddings_shape_and_default_dimensions(api, script, server):
    texts = ["delete the production table", "Never delete production tables.", "Refunds need a manager."]
    answer = api.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": texts})
    assert answer.status_code == 200
    body = answer.json()
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1), ("embedding", 2)]
    vectors = [d["embedding"] for d in body["data"]]
    assert all(len(v) == 1536 and math.isclose(math.sqrt(sum(x * x for x in v)), 1.0) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2
    expected = sum(math.ceil(len(t) / 4) for t in texts)
    assert body["usage"] == {"prompt_tokens": expected, "total_tokens": expected}
    assert logged(server)[-1]["api"] == "embeddings"


def test_embeddings_dimensions_single_string_and_base64(api, script):
    one = api.post("/v1/embeddings", json={"model": "m", "input": "hello world", "dimensions": 256}).json()
    [item] = one["data"]
    assert len(item["embedding"]) == 256
    packed = api.post("/v1/embeddings", json={"model": "m", "input": "hello world", "dimensions": 256,
                                              "encoding_format": "base64"}).json()["data"][0]["embedding"]
    decoded = struct.unpack("<256f", base64.b64decode(packed))
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, item["embedding"]))


@pytest.mark.parametrize("body", [
    {"model": "m", "input": ""}, {"model": "m", "input": []}, {"model": "m"}, {"input": "x"},
    {"model": "m", "input": "x", "dimensions": 0}, {"model": "m", "input": "x", "encoding_format": "int8"},
    {"model": "text-embedding-3-small", "input": "x", "dimensions": 2000},
])
def test_invalid_embedding_requests(api, script, body):
    answer = api.post("/v1/embeddings", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_embeddings_need_the_key_and_obey_failures(server, api, script):
    assert HTTP.post(f"{server}/v1/embeddings", json={"model": "m", "input": "x"}).status_code == 401
    script({"match": "production", "fail": "throttle", "times": 1})
    assert_openai_error(api.post("/v1/embeddings", json={"model": "m", "input": "production"}), 429, "requests",
                        "rate_limit_exceeded")
    assert api.post("/v1/embeddings", json={"model": "m", "input": "production"}).status_code == 200


# --- the HTTP judge ---------------------------------------------------------------------------------------------------

def judge_body(**overrides) -> dict:
    return {"version": 1, "tenant_id": "t_123", "request_id": "req_456",
            "call": {"tool_name": "delete_table", "tool_args": {"table": "prod"}, "agent_id": "agent-1",
                     "session_id": "s-1", "context": {}},
            "policy": {"policy_id": "pol_1", "version": 3, "policy_version_id": "pv_1", "description": "Data safety",
                       "complete": True, "passages": [{"id": "R1", "text": "Never delete production tables."}]},
            "verdict_schema": VERDICT_SCHEMA, **overrides}


def judge(server, body=None, key: str | None = KEY, timeout: float = 10) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({} if key is None else {"X-API-Key": key})}
    return HTTP.post(f"{server}/judge", content=json.dumps(judge_body() if body is None else body),
                      headers=headers, timeout=timeout)


def test_judge_answers_the_verdict(server, script):
    script({"match": '"tool_name": "delete_table"', "reply": DENY, "usage": {"input_tokens": 90, "output_tokens": 12}})
    answer = judge(server)
    assert answer.status_code == 200
    assert answer.json() == {"verdict": DENY, "usage": {"input_tokens": 90, "output_tokens": 12},
                             "model": "scripted-http-judge"}
    [entry] = logged(server)
    assert entry["api"] == "judge" and entry["body"] == judge_body()
    assert entry["prompt"] == json.dumps(judge_body())  # the raw body, as sent


def test_judge_default_and_text_answers(server, script):
    body = judge(server).json()
    assert body["verdict"] == NO_ANSWER
    assert body["usage"]["input_tokens"] == math.ceil(len(json.dumps(judge_body())) / 4)
    script({"match": "delete_table", "text": "{\"verdict\": "})
    answer = judge(server)
    assert answer.status_code == 200 and answer.text == "{\"verdict\": "


@pytest.mark.parametrize("key", [None, "wrong", KEY.upper()])
def test_judge_requires_the_x_api_key(server, script, key):
    assert judge(server, key=key).status_code == 401
    bearer = {"Authorization": f"Bearer {KEY}"}  # the OpenAI API's header is not the judge's
    assert HTTP.post(f"{server}/judge", json=judge_body(), headers=bearer).status_code == 401
    assert logged(server) == []


@pytest.mark.parametrize("body", [
    {**judge_body(), "version": 2}, {k: v for k, v in judge_body().items() if k != "version"},
    {**judge_body(), "version": True}, {**judge_body(), "call": "delete"}, [1, 2],
    {k: v for k, v in judge_body().items() if k != "verdict_schema"},
])
def test_judge_refuses_bad_bodies(server, script, body):
    answer = judge(server, body)
    assert answer.status_code == 400 and "error" in answer.json()


def test_judge_refuses_non_json(server, script):
    answer = HTTP.post(f"{server}/judge", content=b"version=1", headers={"X-API-Key": KEY,
                                                                          "Content-Type": "application/json"})
    assert answer.status_code == 400
    answer = HTTP.post(f"{server}/judge", content=json.dumps(judge_body()),
                        headers={"X-API-Key": KEY, "Content-Type": "text/plain"})
    assert answer.status_code == 415


@pytest.mark.parametrize("fail, status", [("throttle", 429), ("timeout", 504), ("validation", 400),
                                          ("unavailable", 503)])
def test_judge_scripted_failures(server, script, fail, status):
    script({"match": "delete_table", "fail": fail, "times": 1, "reply": DENY})
    answer = judge(server)
    assert answer.status_code == status and "error" in answer.json()
    assert judge(server).json()["verdict"] == DENY


def test_judge_hang(server, script):
    script({"match": "delete_table", "fail": "hang", "times": 1, "delay_seconds": 1.5, "reply": DENY})
    with pytest.raises(httpx.ReadTimeout):
        judge(server, timeout=0.4)
    assert judge(server, timeout=1.0).json()["verdict"] == DENY


# --- the control API --------------------------------------------------------------------------------------------------

def test_control_api_reset(server, api, script):
    script({"match": "delete_table", "reply": DENY})
    judge(server)
    api.post("/v1/chat/completions", json=chat_body())
    assert [e["api"] for e in logged(server)] == ["judge", "chat"]
    rules = HTTP.get(f"{server}/_ledgix/model/script").json()["rules"]
    assert rules == [{"match": "delete_table", "reply": DENY, "calls": 2}]
    assert HTTP.post(f"{server}/_ledgix/model/requests", json={"reset": True}).json() == []
    assert logged(server) == []
    assert judge(server).json()["verdict"] == DENY  # the rules stay
    assert HTTP.post(f"{server}/_ledgix/model/script", json={"reset": True}).json() == {"rules": 0}
    assert logged(server) == [] and judge(server).json()["verdict"] == NO_ANSWER


@pytest.mark.parametrize("path, body", [
    ("/_ledgix/model/script", {"rules": [{"reply": DENY}]}),
    ("/_ledgix/model/script", {"rules": [{"match": "x", "delay_seconds": "soon"}]}),
    ("/_ledgix/model/script", {"rules": [{"match": "x", "usage": {"input_tokens": -1}}]}),
    ("/_ledgix/model/requests", {"reset": False}),
    ("/_ledgix/model/requests", {}),
])
def test_control_api_refuses_bad_input(server, script, path, body):
    answer = HTTP.post(f"{server}{path}", json=body)
    assert answer.status_code == 400 and "error" in answer.json()
    answer = HTTP.post(f"{server}{path}", content=b"nope")
    assert answer.status_code == 400
