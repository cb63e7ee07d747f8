"""The judge's non-AWS model services for tests, answered by the scripted model (scripted_model.py): an
OpenAI-compatible API (VAULT_JUDGE_BACKEND=openai) and the HTTP judge (VAULT_JUDGE_BACKEND=http, docs/judge.md).

Usage:  python tests/aws/model_server.py --port 5100 [--api-key KEY] [--verbose]
        (foreground on 127.0.0.1; stops on SIGTERM or SIGINT)

  POST /v1/chat/completions   OpenAI Chat Completions. With --api-key, `Authorization: Bearer KEY` is required
                              (else 401, code invalid_api_key). Checked as OpenAI checks them: model; messages (a
                              non-empty list of {role, content}, roles system/developer/user/assistant/tool/
                              function); temperature (0..2); max_tokens / max_completion_tokens (>= 1);
                              response_format text | json_object (the messages must mention "json") | json_schema
                              {name, schema, strict} (strict: every object has additionalProperties false and
                              requires all its properties, as OpenAI's structured outputs require); no unknown
                              arguments; no streaming (not emulated). The prompt the rules match: the system and
                              developer messages, then the user messages, joined with "\\n". Answer: choices[0].
                              message.content = the rule's text or the reply's JSON, finish_reason "stop", usage.
  POST /v1/embeddings         {"model", "input": str | [str] (or token arrays), "dimensions"?, "encoding_format"?:
                              float | base64} -> {"object": "list", "data": [{"object": "embedding", "index",
                              "embedding"}], "model", "usage"}; the scripted model's deterministic vectors, 1536
                              dimensions unless `dimensions` is given (text-embedding-3-large: 3072, as OpenAI's).
  POST /judge                 the HTTP judge protocol of docs/judge.md. With --api-key, X-API-Key must equal it
                              (else 401). Content-Type application/json (else 415); a body that is not JSON, has
                              version != 1 or lacks tenant_id/request_id (strings) or call/policy/verdict_schema
                              (objects) -> 400. The prompt the rules match is the raw body. Answer: 200 {"verdict":
                              <reply>, "usage": {"input_tokens", "output_tokens"}, "model": "scripted-http-judge"};
                              a "text" rule's text is the whole body (malformed output).
  /_ledgix/model/script, /_ledgix/model/requests   the scripted model's control API (scripted_model.py).

Scripted failures: OpenAI API: throttle -> 429 {"error": {type "requests", code "rate_limit_exceeded"}},
validation -> 400 invalid_request_error, unavailable -> 503 server_error, timeout -> a hang (OpenAI has no timeout
status). HTTP judge: throttle 429, timeout 504, validation 400, unavailable 503, each {"error": "..."}. hang (both):
the answer, delay_seconds (default 30) late. OpenAI errors are {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import re
import signal
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripted_model.py, beside this file
from scripted_model import ScriptedModel, embedding, tokens  # noqa: E402

JUDGE_MODEL = "scripted-http-judge"
CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
CHAT_ARGUMENTS = {
    "model", "messages", "response_format", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n",
    "stop", "stream", "stream_options", "seed", "user", "tools", "tool_choice", "parallel_tool_calls", "logprobs",
    "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "metadata", "store", "reasoning_effort",
    "service_tier", "modalities", "audio", "prediction", "web_search_options", "verbosity", "prompt_cache_key",
    "safety_identifier", "functions", "function_call",
}
EMBEDDING_ARGUMENTS = {"model", "input", "dimensions", "encoding_format", "user"}
EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}  # OpenAI's defaults; any other model: 1536
EMBEDDING_MAX_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
MAX_EMBEDDING_INPUTS = 2048


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type_, "param": param, "code": code}}


def missing(param: str) -> OpenAIError:
    return OpenAIError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def invalid_value(param: str, value, supported: tuple[str, ...]) -> OpenAIError:
    listed = ", ".join(f"'{s}'" for s in supported[:-1]) + f", and '{supported[-1]}'"
    return OpenAIError(400, f"Invalid value: '{value}'. Supported values are: {listed}.", param=param,
                       code="invalid_value")


def invalid_type(param: str, expected: str, value) -> OpenAIError:
    return OpenAIError(400, f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
                       param=param, code="invalid_type")


def _json_type(value) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _range(param: str, value, low, high, integer: bool) -> None:
    kind = "integer" if integer else "decimal"
    if value is None:
        return
    if type(value) is bool or not isinstance(value, int if integer else (int, float)):
        raise invalid_type(param, f"{'an integer' if integer else 'a decimal'}", value)
    if value < low:
        raise OpenAIError(400, f"Invalid '{param}': {kind} below minimum value. Expected a value >= {low}, but got "
                               f"{value} instead.", param=param, code=f"{kind}_below_min_value")
    if high is not None and value > high:
        raise OpenAIError(400, f"Invalid '{param}': {kind} above maximum value. Expected a value <= {high}, but got "
                               f"{value} instead.", param=param, code=f"{kind}_above_max_value")


def strict_schema_problem(schema, context: tuple = ()) -> str | None:
    """What OpenAI's strict structured outputs refuse in a JSON Schema (the subset a verdict schema can hit)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        required = schema.get("required")
        absent = [name for name in properties if not isinstance(required, list) or name not in required]
        if absent:
            return (f"In context={context}, 'required' is required to be supplied and to be an array including every "
                    f"key in properties. Missing '{absent[0]}'.")
        for name, sub in properties.items():
            problem = strict_schema_problem(sub, context + ("properties", name))
            if problem:
                return problem
    if "items" in schema:
        problem = strict_schema_problem(schema["items"], context + ("items",))
        if problem:
            return problem
    for keyword in ("anyOf", "allOf"):
        for i, sub in enumerate(schema.get(keyword) or []):
            problem = strict_schema_problem(sub, context + (keyword, i))
            if problem:
                return problem
    for keyword in ("$defs", "definitions"):
        for name, sub in (schema.get(keyword) or {}).items():
            problem = strict_schema_problem(sub, context + (keyword, name))
            if problem:
                return problem
    return None


def _check_response_format(response_format, messages_text: str) -> None:
    if response_format is None:
        return
    if not isinstance(response_format, dict):
        raise invalid_type("response_format", "an object", response_format)
    kind = response_format.get("type")
    if kind is None:
        raise missing("response_format.type")
    if kind not in ("text", "json_object", "json_schema"):
        raise invalid_value("response_format.type", kind, ("json_object", "json_schema", "text"))
    if kind == "json_object" and "json" not in messages_text.lower():
        raise OpenAIError(400, "'messages' must contain the word 'json' in some form, to use 'response_format' of "
                               "type 'json_object'.", param="messages")
    if kind != "json_schema":
        return
    spec = response_format.get("json_schema")
    if spec is None:
        raise missing("response_format.json_schema")
    if not isinstance(spec, dict):
        raise invalid_type("response_format.json_schema", "an object", spec)
    name = spec.get("name")
    if name is None:
        raise missing("response_format.json_schema.name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
        raise OpenAIError(400, "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a "
                               "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                          param="response_format.json_schema.name", code="invalid_value")
    schema, strict = spec.get("schema"), spec.get("strict")
    if schema is not None and not isinstance(schema, dict):
        raise invalid_type("response_format.json_schema.schema", "an object", schema)
    if strict is not None and type(strict) is not bool:
        raise invalid_type("response_format.json_schema.strict", "a boolean", strict)
    if strict:
        if not isinstance(schema, dict) or schema.get("type") != "object":
            got = schema.get("type") if isinstance(schema, dict) else None
            raise OpenAIError(400, f"Invalid schema for response_format '{name}': schema must be a JSON Schema of "
                                   f"'type: \"object\"', got 'type: \"{got}\"'.", param="response_format")
        problem = strict_schema_problem(schema)
        if problem:
            raise OpenAIError(400, f"Invalid schema for response_format '{name}': {problem}", param="response_format")


def _text_of(content, param: str) -> str:
    """The text of a message's content: a string, or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if not isinstance(part, dict) or "type" not in part:
                raise missing(f"{param}[{i}].type")
            if part["type"] == "text":
                if not isinstance(part.get("text"), str):
                    raise missing(f"{param}[{i}].text")
                texts.append(part["text"])
        return "\n".join(texts)
    raise invalid_type(param, "one of a string or array of objects", content)


def chat_request(request: object) -> tuple[str, str]:
    """Validate a Chat Completions request as OpenAI does: (model, prompt text)."""
    if not isinstance(request, dict):
        raise invalid_type("body", "an object", request)
    unknown = sorted(set(request) - CHAT_ARGUMENTS)
    if unknown:
        raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIError(400, "you must provide a model parameter")
    messages = request.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
    if not messages:
        raise OpenAIError(400, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                               "empty array instead.", param="messages", code="empty_array")
    instructions, user, everything = [], [], []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise missing(f"messages[{i}].role")
        if role not in CHAT_ROLES:
            raise invalid_value(f"messages[{i}].role", role,
                                ("system", "assistant", "user", "function", "tool", "developer"))
        content = message.get("content")
        if content is None:
            if role == "assistant" and message.get("tool_calls"):
                continue
            raise missing(f"messages[{i}].content")
        text = _text_of(content, f"messages[{i}].content")
        everything.append(text)
        if role in ("system", "developer"):
            instructions.append(text)
        elif role == "user":
            user.append(text)
    _range("temperature", request.get("temperature"), 0, 2, integer=False)
    _range("top_p", request.get("top_p"), 0, 1, integer=False)
    _range("max_tokens", request.get("max_tokens"), 1, None, integer=True)
    _range("max_completion_tokens", request.get("max_completion_tokens"), 1, None, integer=True)
    if request.get("n") not in (None, 1):
        raise OpenAIError(400, "This test server answers n=1 only", param="n")
    if request.get("stream"):
        raise OpenAIError(400, "Streaming is not emulated by this test server", param="stream")
    _check_response_format(request.get("response_format"), "\n".join(everything))
    return model, "\n".join(instructions + user)


def embeddings_request(request: object) -> tuple[str, list[str], int, str]:
    """Validate an Embeddings request as OpenAI does: (model, input texts, dimensions, encoding format)."""
    if not isinstance(request, dict):
        raise invalid_type("body", "an object", request)
    unknown = sorted(set(request) - EMBEDDING_ARGUMENTS)
    if unknown:
        raise OpenAIError(400, f"Unrecognized request argument supplied: {unknown[0]}")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIError(400, "you must provide a model parameter")
    raw = request.get("input")
    if raw is None:
        raise missing("input")
    invalid = OpenAIError(400, "'$.input' is invalid. Please check the API reference: "
                               "https://platform.openai.com/docs/api-reference.")
    if isinstance(raw, str):
        items = [raw]
    elif isinstance(raw, list) and raw and all(type(t) is int for t in raw):
        items = [raw]  # one token array
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise invalid
    texts = []
    for item in items:
        if isinstance(item, str) and item:
            texts.append(item)
        elif isinstance(item, list) and item and all(type(t) is int and t >= 0 for t in item):
            texts.append(" ".join(f"t{t}" for t in item))  # token ids: each its own word
        else:
            raise invalid
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise OpenAIError(400, f"'$.input' is invalid: at most {MAX_EMBEDDING_INPUTS} inputs per request.",
                          param="input")
    dimensions = request.get("dimensions")
    if dimensions is not None:
        if model == "text-embedding-ada-002":
            raise OpenAIError(400, "This model does not support specifying dimensions.", param="dimensions")
        _range("dimensions", dimensions, 1, EMBEDDING_MAX_DIMENSIONS.get(model), integer=True)
    encoding = request.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid_value("encoding_format", encoding, ("float", "base64"))
    return model, texts, dimensions or EMBEDDING_DIMENSIONS.get(model, 1536), encoding


def judge_request(request: object) -> None:
    """The HTTP judge protocol's request body (docs/judge.md), or ValueError."""
    if not isinstance(request, dict):
        raise ValueError("the body must be a JSON object")
    if request.get("version") != 1 or type(request.get("version")) is not int:
        raise ValueError(f"unsupported protocol version {request.get('version')!r}; this judge speaks version 1")
    for name in ("tenant_id", "request_id"):
        if not isinstance(request.get(name), str):
            raise ValueError(f"{name} must be a string")
    for name in ("call", "policy", "verdict_schema"):
        if not isinstance(request.get(name), dict):
            raise ValueError(f"{name} must be an object")


OPENAI_FAILURES = {
    "throttle": lambda model: OpenAIError(
        429, f"Rate limit reached for {model} on requests per min (RPM): Limit 1, Used 1, Requested 1. Please try "
             "again in 1s.", type_="requests", code="rate_limit_exceeded"),
    "validation": lambda model: OpenAIError(400, "Invalid request (a scripted validation failure)."),
    "unavailable": lambda model: OpenAIError(503, "The server is overloaded or not ready yet.", type_="server_error"),
}
JUDGE_FAILURES = {"throttle": (429, "throttled"), "timeout": (504, "the judge timed out"),
                  "validation": (400, "the judge refused the request"),
                  "unavailable": (503, "the judge is unavailable")}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as OpenAI's clients expect
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall between them
    server_version = "ledgix-model-server"
    server: "ModelServer"

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status: int, body: bytes, content_type: str = "application/json", headers=()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload, headers=()) -> None:
        self.send(status, json.dumps(payload).encode(), headers=headers)

    def dispatch(self, method: str) -> None:
        try:
            path = urlsplit(self.path).path
            body = self.read_body()
            answer = self.server.model.control(method, path, body)
            if answer is not None:
                return self.send_json(*answer)
            if path == "/judge":
                return self.judge(method, body)
            routes = {"/v1/chat/completions": self.chat, "/v1/embeddings": self.embeddings}
            if path.startswith("/v1/"):
                request_id = "req_" + uuid.uuid4().hex
                try:
                    if method != "POST" or path not in routes:
                        raise OpenAIError(404, f"Invalid URL ({method} {path})")
                    self.check_bearer()
                    try:
                        request = json.loads(body)
                    except ValueError:
                        raise OpenAIError(400, "We could not parse the JSON body of your request. (HINT: This likely "
                                               "means you aren't using your HTTP library correctly. The OpenAI API "
                                               "expects a JSON payload, but what was sent was not valid JSON.)")
                    payload = routes[path](request)
                except OpenAIError as error:
                    return self.send_json(error.status, error.body, [("x-request-id", request_id)])
                return self.send_json(200, payload, [("x-request-id", request_id)])
            self.send_json(404, {"error": f"no such path: {method} {path}"})
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a hang outlived its timeout)
            self.close_connection = True

    # --- OpenAI ----------------------------------------------------------------------------------------------------

    def check_bearer(self) -> None:
        key = self.server.api_key
        if key is None:
            return
        header = self.headers.get("Authorization", "")
        if not header:
            raise OpenAIError(401, "You didn't provide an API key. You need to provide your API key in an "
                                   "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        given = header[7:] if header.startswith("Bearer ") else header
        if not hmac.compare_digest(given.encode(), key.encode()):
            shown = given[:3] + "*" * max(0, len(given) - 7) + given[-4:] if len(given) > 7 else "*" * len(given)
            raise OpenAIError(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                   "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    def openai_call(self, api: str, model: str, prompt: str, request, embedding_call: bool = False):
        outcome = self.server.model.call(api, model, prompt, request, embedding_call=embedding_call,
                                         timeout_is_hang=True)
        if outcome.fail:
            raise OPENAI_FAILURES[outcome.fail](model)
        return outcome

    def chat(self, request) -> dict:
        model, prompt = chat_request(request)
        outcome = self.openai_call("chat", model, prompt, request)
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:29], "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": outcome.answer, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": outcome.input_tokens, "completion_tokens": outcome.output_tokens,
                      "total_tokens": outcome.input_tokens + outcome.output_tokens},
        }

    def embeddings(self, request) -> dict:
        model, texts, dimensions, encoding = embeddings_request(request)
        self.openai_call("embeddings", model, "\n".join(texts), request, embedding_call=True)
        data = []
        for i, text in enumerate(texts):
            vector = embedding(text, dimensions)
            if encoding == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        used = sum(tokens(text) for text in texts)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": used, "total_tokens": used}}

    # --- the HTTP judge --------------------------------------------------------------------------------------------

    def judge(self, method: str, body: bytes) -> None:
        if method != "POST":
            return self.send_json(405, {"error": "use POST"}, [("Allow", "POST")])
        key = self.server.api_key
        if key is not None and not hmac.compare_digest(self.headers.get("X-API-Key", "").encode(), key.encode()):
            return self.send_json(401, {"error": "missing or wrong X-API-Key"})
        if self.headers.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return self.send_json(415, {"error": "Content-Type must be application/json"})
        try:
            request = json.loads(body)
            judge_request(request)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            return self.send_json(400, {"error": str(e)})
        outcome = self.server.model.call("judge", JUDGE_MODEL, body.decode("utf-8", "replace"), request)
        if outcome.fail:
            status, message = JUDGE_FAILURES[outcome.fail]
            return self.send_json(status, {"error": message})
        if outcome.text is not None:
            return self.send(200, outcome.text.encode())
        self.send_json(200, {"verdict": outcome.reply, "model": JUDGE_MODEL,
                             "usage": {"input_tokens": outcome.input_tokens, "output_tokens": outcome.output_tokens}})


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True  # a hanging request does not hold up shutdown

    def __init__(self, port: int, api_key: str | None, verbose: bool = False) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.model = ScriptedModel()
        self.api_key = api_key
        self.verbose = verbose


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible API and HTTP judge, answered by a scripted model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="required as Bearer token (OpenAI API) and X-API-Key (judge)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()
    server = ModelServer(args.port, args.api_key, args.verbose)

    def stop(*_):  # shutdown() waits for serve_forever() to return, so it cannot run on the main thread
        server.model.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"scripted model server on http://127.0.0.1:{args.port} (OpenAI API under /v1, HTTP judge at /judge)",
          flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
