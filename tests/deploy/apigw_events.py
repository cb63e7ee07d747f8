"""API Gateway (HTTP API v2) events from the samples in events/apigw, as the function binaries receive them: a
fresh request id and Idempotency-Key each, with the key, body, path and query a test gives."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

from lambda_runtime import FunctionProcess

EVENTS = Path(__file__).resolve().parents[2] / "events"


def apigw(name: str, *, api_key: str | None = None, body: dict | None = None, path: str | None = None,
          query: str | None = None) -> dict:
    event = copy.deepcopy(json.loads((EVENTS / "apigw" / f"{name}.json").read_text()))
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["headers"]["idempotency-key"] = str(uuid.uuid4())
    if api_key is not None:
        event["headers"]["x-vault-api-key"] = api_key
    if body is not None:
        event["body"] = json.dumps(body)
    if path is not None:
        event["rawPath"] = path
        event["requestContext"]["http"]["path"] = path
    if query is not None:
        event["rawQueryString"] = query
        event["queryStringParameters"] = dict(part.split("=", 1) for part in query.split("&"))
    return event


def answer(process: FunctionProcess, event: dict, status: int) -> dict:
    """Invoke; the response's JSON body, after checking its status."""
    response = process.invoke(event)
    if response.get("statusCode") != status:
        raise AssertionError(f"{process.name}: expected {status}, got {response}")
    return json.loads(response["body"]) if response.get("body") else {}
