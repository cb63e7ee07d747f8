"""Bad input of every kind, on every route: a 4xx with the uniform error body, never a 5xx, never a dropped
connection; every response (success or error) carries X-Request-ID."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import APPROVE_SMALL, assert_error, unique

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def tool(vault):
    name = unique("refund")
    vault.register(unique("p"), [name], rego=APPROVE_SMALL)
    return name


def deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


# (name, method, path, raw body or None, extra headers, expected status, expected error code)
CASES = [
    # malformed JSON → 400 invalid_json
    ("truncated", "POST", "/request-clearance", b'{"tool_name": "x", ', JSON, 400, "invalid_json"),
    ("trailing_garbage", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": {}} x', JSON, 400, "invalid_json"),
    ("nan_literal", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": {"a": NaN}}', JSON, 400, "invalid_json"),
    ("number_overflow", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": {"a": 1e400}}', JSON, 422, "invalid_request"),
    ("invalid_utf8", "POST", "/request-clearance", b'{"tool_name": "\xff\xfe", "tool_args": {}}', JSON, 400, "invalid_json"),
    ("lone_surrogate", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": {"s": "\\ud800"}}', JSON, 400, "invalid_json"),
    ("deeply_nested", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": ' + deep(5000) + b"}", JSON, 400, "invalid_json"),
    ("deeply_nested_array", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": {"a": ' + b"[" * 20000 + b"]" * 20000 + b"}}", JSON, 400, "invalid_json"),
    ("malformed_admin", "POST", "/admin/tenants", b"{", JSON, 400, "invalid_json"),
    ("malformed_policy", "POST", "/register-policy", b"{]", JSON, 400, "invalid_json"),
    ("malformed_consume", "POST", "/consume-token", b'{"token": ', JSON, 400, "invalid_json"),
    ("malformed_settings", "PUT", "/review-settings", b"nope", JSON, 400, "invalid_json"),
    # well-formed JSON of the wrong shape → 422 invalid_request
    ("tool_name_int", "POST", "/request-clearance", b'{"tool_name": 5, "tool_args": {}}', JSON, 422, "invalid_request"),
    ("tool_args_string", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": "x"}', JSON, 422, "invalid_request"),
    ("tool_args_array", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": [1]}', JSON, 422, "invalid_request"),
    ("tool_args_null", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": null}', JSON, 422, "invalid_request"),
    ("context_string", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": {}, "context": "x"}', JSON, 422, "invalid_request"),
    ("agent_id_int", "POST", "/request-clearance", b'{"tool_name": "x", "tool_args": {}, "agent_id": 5}', JSON, 422, "invalid_request"),
    ("body_array", "POST", "/request-clearance", b"[1, 2]", JSON, 422, "invalid_request"),
    ("body_null", "POST", "/request-clearance", b"null", JSON, 422, "invalid_request"),
    ("body_string", "POST", "/request-clearance", b'"x"', JSON, 422, "invalid_request"),
    ("no_tool_name", "POST", "/request-clearance", b'{"tool_args": {}}', JSON, 422, "invalid_request"),
    ("empty_tool_name", "POST", "/request-clearance", b'{"tool_name": "", "tool_args": {}}', JSON, 422, "invalid_request"),
    ("huge_tool_name", "POST", "/request-clearance", json.dumps({"tool_name": "x" * 100_000}).encode(), JSON, 422, "invalid_request"),
    ("policy_rules_string", "POST", "/register-policy", b'{"policy_id": "p", "rules": "a"}', JSON, 422, "invalid_request"),
    ("policy_tools_ints", "POST", "/register-policy", b'{"policy_id": "p", "tools": [1]}', JSON, 422, "invalid_request"),
    ("policy_empty_id", "POST", "/register-policy", b'{"policy_id": ""}', JSON, 422, "invalid_request"),
    ("policy_rego_int", "POST", "/register-policy", b'{"policy_id": "p", "rego": 5}', JSON, 422, "invalid_request"),
    ("policy_bad_rego", "POST", "/register-policy", json.dumps({"policy_id": "p", "rego": "package x\nthis is not rego {"}).encode(), JSON, 422, "invalid_policy"),
    ("policy_bad_decision", "POST", "/register-policy", json.dumps({"policy_id": "p", "rego": 'package x\ndecision := "maybe"'}).encode(), JSON, 422, "invalid_policy"),
    ("consume_token_int", "POST", "/consume-token", b'{"token": 5}', JSON, 422, "invalid_request"),
    ("consume_no_token", "POST", "/consume-token", b"{}", JSON, 422, "invalid_request"),
    ("mint_wrong_types", "POST", "/mint-token", b'{"tool_name": "x", "tool_args": {}, "original_request_id": 5}', JSON, 422, "invalid_request"),
    ("review_approved_string", "POST", "/reviews/whatever/decision", b'{"approved": "yes"}', JSON, 422, "invalid_request"),
    ("settings_unknown_bucket", "PUT", "/review-settings", b'{"minimum_confidence_bucket": "very"}', JSON, 422, "invalid_request"),
    ("settings_int_bucket", "PUT", "/review-settings", b'{"minimum_confidence_bucket": 5}', JSON, 422, "invalid_request"),
    # every body is a JSON object: serde would read an array as a struct's fields in order
    ("settings_array", "PUT", "/review-settings", b'["low"]', JSON, 422, "invalid_request"),
    ("admin_tenant_array", "POST", "/admin/tenants", b'["acme"]', JSON, 422, "invalid_request"),
    ("ledger_limit_text", "GET", "/ledger?limit=abc", None, {}, 422, "invalid_request"),
    ("ledger_limit_negative", "GET", "/ledger?limit=-1", None, {}, 422, "invalid_request"),
    # a limit outside the documented 1..maximum is refused, never clamped
    ("ledger_limit_zero", "GET", "/ledger?limit=0", None, {}, 422, "invalid_request"),
    ("ledger_limit_above_max", "GET", "/ledger?limit=501", None, {}, 422, "invalid_request"),
    ("checkpoints_limit_zero", "GET", "/ledger/checkpoints?limit=0", None, {}, 422, "invalid_request"),
    ("checkpoints_limit_above_max", "GET", "/ledger/checkpoints?limit=10001", None, {}, 422, "invalid_request"),
    ("reviews_limit_zero", "GET", "/reviews?limit=0", None, {}, 422, "invalid_request"),
    ("reviews_limit_above_max", "GET", "/reviews?limit=501", None, {}, 422, "invalid_request"),
    ("reviews_bad_status", "GET", "/reviews?status=weird", None, {}, 422, "invalid_request"),
    ("inclusion_no_request_id", "GET", "/ledger/proof/inclusion", None, {}, 422, "invalid_request"),
    ("consistency_text", "GET", "/ledger/proof/consistency?from=a&to=b", None, {}, 422, "invalid_request"),
    ("consistency_backwards", "GET", "/ledger/proof/consistency?from=5&to=1", None, {}, 422, "invalid_request"),
    # size and media type
    ("oversize", "POST", "/request-clearance", json.dumps({"tool_name": "x", "tool_args": {"b": "a" * (300 * 1024)}}).encode(), JSON, 413, "payload_too_large"),
    ("oversize_policy", "POST", "/register-policy", json.dumps({"policy_id": "p", "rules": ["a" * (300 * 1024)]}).encode(), JSON, 413, "payload_too_large"),
    ("text_plain", "POST", "/request-clearance", b'{"tool_name": "x"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("no_content_type", "POST", "/request-clearance", b'{"tool_name": "x"}', {}, 415, "unsupported_media_type"),
    ("form", "POST", "/register-policy", b"policy_id=p", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
    ("settings_text", "PUT", "/review-settings", b'{"minimum_confidence_bucket": "high"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    # routing
    ("unknown_route", "GET", "/nope", None, {}, 404, None),
    ("unknown_request", "GET", "/clearance-status/no-such-request", None, {}, 404, "not_found"),
    ("unknown_review", "POST", "/reviews/no-such-request/decision", b'{"approved": true}', JSON, 404, "not_found"),
    ("wrong_method", "DELETE", "/ledger", None, {}, 405, None),
    ("patch", "PATCH", "/request-clearance", b"{}", JSON, 405, None),
    # path segments that are not UTF-8 (percent-encoded bytes): still the uniform JSON error
    ("non_utf8_request_id", "GET", "/clearance-status/%ff", None, {}, 400, None),
    ("non_utf8_review_id", "POST", "/reviews/%ff%fe/decision", b'{"approved": true}', JSON, 400, None),
    ("non_utf8_tenant_id", "POST", "/admin/tenants/%ff/api-keys", b"{}", JSON, 400, None),
    ("encoded_traversal", "GET", "/clearance-status/..%2f..%2fetc%2fpasswd", None, {}, 404, "not_found"),
    ("nul_in_path", "GET", "/clearance-status/a%00b", None, {}, 404, "not_found"),
]


def key_for(vault, path: str) -> str:
    """A key whose roles the route accepts, so a case tests the input rather than the roles."""
    if path.startswith(("/register-policy", "/policies", "/review-settings")):
        return vault.tenant_admin_key
    if path.startswith("/reviews?"):
        return vault.reviewer_key
    return vault.api_key


@pytest.mark.parametrize("name,method,path,body,headers,status,code", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_the_uniform_4xx(vault, name, method, path, body, headers, status, code):
    auth = {"X-Vault-API-Key": key_for(vault, path), "X-Admin-API-Key": vault.admin_key}
    r = httpx.request(method, f"{vault.url}{path}", content=body, headers={**auth, **headers}, timeout=30)
    assert_error(r, status, code)


def test_the_vault_is_still_healthy_after_all_that(vault, tool):
    """Run last in this module (pytest keeps file order): nothing above wedged or crashed the process."""
    assert vault.proc is not None and vault.proc.poll() is None
    assert httpx.get(f"{vault.url}/healthz").status_code == 200
    with vault.http() as http:
        assert http.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()["status"] == "approved"


@pytest.mark.parametrize("case", ["no_key", "unknown_key", "bearer_unknown", "admin_key_on_tenant_route",
                                  "tenant_key_on_admin_route", "empty_key", "bearer_without_token"])
def test_authentication_failures_are_401(vault, case):
    url = f"{vault.url}/policies"
    headers = {
        "no_key": {},
        "unknown_key": {"X-Vault-API-Key": "lvk_" + "0" * 30},
        "bearer_unknown": {"Authorization": "Bearer lvk_nope"},
        "admin_key_on_tenant_route": {"X-Vault-API-Key": vault.admin_key},
        "tenant_key_on_admin_route": {"X-Admin-API-Key": vault.api_key},
        "empty_key": {"X-Vault-API-Key": ""},
        "bearer_without_token": {"Authorization": "Bearer"},
    }[case]
    if case == "tenant_key_on_admin_route":
        r = httpx.post(f"{vault.url}/admin/tenants", json={"name": "x"}, headers=headers)
    else:
        r = httpx.get(url, headers=headers)
    assert_error(r, 401)


@pytest.mark.parametrize("body,ctype", [(b"{", "application/json"), (b"x" * (300 * 1024), "application/json"),
                                        (b"{}", "text/plain")], ids=["malformed", "oversize", "wrong_media_type"])
def test_auth_is_checked_before_the_body(vault, body, ctype):
    """An unauthenticated caller gets 401 whatever the body: the vault does not parse strangers' input."""
    r = httpx.post(f"{vault.url}/request-clearance", content=body, headers={"Content-Type": ctype})
    assert_error(r, 401)


def test_unknown_fields_are_ignored_everywhere(vault, tool):
    with vault.http() as http:
        extra = {"future_field": {"nested": [1, 2]}, "another": None}
        r = http.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}, **extra})
        assert r.status_code == 200 and r.json()["status"] == "approved"
        token = r.json()["token"]
        with vault.tenant_admin() as tenant_admin:
            r = tenant_admin.post("/register-policy", json={"policy_id": unique("p"), "tools": [unique("t")], "rules": ["x"], **extra})
            assert r.status_code == 201, r.text
            r = tenant_admin.put("/review-settings", json={"minimum_confidence_bucket": "high", **extra})
            assert r.status_code == 200, r.text
        r = http.post("/consume-token", json={"token": token, "tool_name": tool, "tool_args": {"amount": 1}, **extra})
        assert r.status_code == 200, r.text
    with vault.admin() as admin:
        assert admin.post("/admin/tenants", json={"name": "x", **extra}).status_code == 201


def test_content_type_parameters_and_case_are_accepted(vault, tool):
    for ctype in ["application/json; charset=utf-8", "application/JSON"]:
        r = httpx.post(f"{vault.url}/request-clearance", headers={"X-Vault-API-Key": vault.api_key, "Content-Type": ctype},
                       content=json.dumps({"tool_name": tool, "tool_args": {"amount": 2}}).encode())
        assert r.status_code == 200, (ctype, r.text)


def test_a_body_just_under_the_limit_is_accepted(vault, tool):
    body = json.dumps({"tool_name": tool, "tool_args": {"amount": 1, "pad": ""}})
    pad = 256 * 1024 - len(body) - 64
    payload = json.dumps({"tool_name": tool, "tool_args": {"amount": 1, "pad": "a" * pad}}).encode()
    assert len(payload) < 256 * 1024
    r = httpx.post(f"{vault.url}/request-clearance", content=payload, headers={"X-Vault-API-Key": vault.api_key, **JSON})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text[:300]


def test_a_chunked_oversize_body_is_413(vault):
    def chunks():
        yield b'{"tool_name": "x", "tool_args": {"b": "'
        for _ in range(300):
            yield b"a" * 1024
        yield b'"}}'

    r = httpx.post(f"{vault.url}/request-clearance", content=chunks(), headers={"X-Vault-API-Key": vault.api_key, **JSON})
    assert_error(r, 413, "payload_too_large")


@pytest.mark.parametrize("method,path,auth", [
    ("GET", "/healthz", None), ("GET", "/.well-known/jwks.json", None), ("GET", "/policies", "tenant"),
    ("GET", "/ledger", "tenant"), ("GET", "/reviews?status=pending", "tenant"), ("GET", "/review-settings", "tenant"),
    ("GET", "/ledger/checkpoints", "tenant"),
])
def test_successes_carry_a_request_id_too(vault, method, path, auth):
    headers = {"X-Vault-API-Key": key_for(vault, path)} if auth == "tenant" else {}
    r = httpx.request(method, f"{vault.url}{path}", headers=headers)
    assert r.status_code == 200 and r.headers.get("X-Request-ID"), (r.status_code, dict(r.headers))


def test_request_ids_are_unique_per_response(vault):
    ids = {httpx.get(f"{vault.url}/healthz").headers["X-Request-ID"] for _ in range(20)}
    assert len(ids) == 20


def test_admin_successes_and_no_content_carry_a_request_id(vault):
    with vault.admin() as admin:
        created = admin.post("/admin/tenants", json={"name": "rid"})
        assert created.status_code == 201 and created.headers.get("X-Request-ID")
        key = admin.post(f"/admin/tenants/{created.json()['tenant_id']}/api-keys")
        assert key.status_code == 201 and key.headers.get("X-Request-ID")
        revoked = admin.delete(f"/admin/api-keys/{key.json()['key_id']}")
        assert revoked.status_code == 204 and revoked.headers.get("X-Request-ID") and revoked.content == b""


NUL = "a\u0000b"


@pytest.mark.parametrize("case", ["tool_name", "tool_args_value", "tool_args_key", "agent_id", "session_id", "context",
                                  "policy_id", "policy_rule", "review_reason", "tenant_name", "consume_args", "path_id"])
def test_nul_characters_are_never_a_server_error(vault, tool, case):
    """U+0000 is valid JSON; storage layers (PostgreSQL text/jsonb) refuse it. Accept it or refuse it with a 4xx,
    never a 5xx."""
    h = vault.http()
    if case in ("tool_name", "tool_args_value", "tool_args_key", "agent_id", "session_id", "context"):
        body = {"tool_name": tool, "tool_args": {"amount": 1}}
        if case == "tool_name":
            body["tool_name"] = NUL
        elif case == "tool_args_value":
            body["tool_args"]["memo"] = NUL
        elif case == "tool_args_key":
            body["tool_args"][NUL] = 1
        elif case == "context":
            body["context"] = {"note": NUL}
        else:
            body[case] = NUL
        r = h.post("/request-clearance", json=body)
    elif case == "policy_id":
        with vault.tenant_admin() as tenant_admin:
            r = tenant_admin.post("/register-policy", json={"policy_id": NUL, "tools": [unique("t")], "rules": ["x"]})
    elif case == "policy_rule":
        with vault.tenant_admin() as tenant_admin:
            r = tenant_admin.post("/register-policy", json={"policy_id": unique("p"), "tools": [unique("t")], "rules": [NUL]})
    elif case == "review_reason":
        vault.register(unique("p"), [t := unique("t")], rego=APPROVE_SMALL)
        pending = h.post("/request-clearance", json={"tool_name": t, "tool_args": {"amount": 300}}).json()
        with vault.reviewer() as reviewer:
            r = reviewer.post(f"/reviews/{pending['request_id']}/decision", json={"approved": False, "review_reason": NUL})
    elif case == "tenant_name":
        with vault.admin() as admin:
            r = admin.post("/admin/tenants", json={"name": NUL})
    elif case == "consume_args":
        token = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()["token"]
        r = h.post("/consume-token", json={"token": token, "tool_name": tool, "tool_args": {"amount": 1, "x": NUL}})
    else:
        r = h.get("/clearance-status/a%00b")
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert_error(r, r.status_code)
    h.close()


@pytest.mark.parametrize("key", ["", "k" * 4096, "ключ-🔑".encode(), b"\xff\xfe", "a b\tc"],
                         ids=["empty", "4k", "utf8_bytes", "not_utf8", "whitespace"])
def test_odd_idempotency_keys_are_never_a_server_error(vault, tool, key):
    with vault.http() as h:
        body = {"tool_name": tool, "tool_args": {"amount": 1}}
        first = h.post("/request-clearance", json=body, headers={"Idempotency-Key": key})
        assert first.status_code < 500, first.text
        if first.status_code >= 400:
            assert_error(first, first.status_code)
        else:
            second = h.post("/request-clearance", json=body, headers={"Idempotency-Key": key})
            assert second.status_code == first.status_code
