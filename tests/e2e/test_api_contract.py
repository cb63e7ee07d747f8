"""Isolation, administration, rate limiting, idempotency, bad input and persistence over raw HTTP."""

from __future__ import annotations

import uuid

import httpx
import pytest
from ledgix_python.models import ClearanceRequest

from conftest import APPROVE_SMALL, unique


def test_tenants_are_isolated(vault):
    a_tenant, a_key = vault.new_tenant()
    b_tenant, b_key = vault.new_tenant()
    tool = unique("refund")
    vault.register(unique("pa"), [tool], rego=APPROVE_SMALL, api_key=a_key)
    a, b = vault.http(a_key), vault.http(b_key)
    approved = a.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()
    pending = a.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 500}}).json()
    assert approved["status"] == "approved" and pending["status"] == "pending_review"

    assert b.get(f"/clearance-status/{approved['request_id']}").status_code == 404
    r = b.post(f"/reviews/{pending['request_id']}/decision", json={"approved": True})
    assert r.status_code == 404
    assert all(e["request_id"] not in (approved["request_id"], pending["request_id"])
               for e in b.get("/ledger", params={"limit": 500}).json()["entries"])
    assert pending["request_id"] not in [x["request_id"] for x in b.get("/reviews").json()["reviews"]]
    assert b.get("/policies").json()["policies"] == []
    assert b.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()["reason_code"] == "no_policy_for_tool"
    call = {"token": approved["token"], "tool_name": tool, "tool_args": {"amount": 1}}
    assert b.post("/consume-token", json=call).status_code == 401
    assert a.post("/consume-token", json=call).status_code == 200
    assert a.get(f"/clearance-status/{pending['request_id']}").json()["status"] == "pending_review"


def test_administration(vault):
    admin = vault.admin()
    created = admin.post("/admin/tenants", json={"name": "acme"})
    assert created.status_code == 201
    body = created.json()
    assert body["tenant_id"] and body["api_key"] and body["key_id"]
    extra = admin.post(f"/admin/tenants/{body['tenant_id']}/api-keys")
    assert extra.status_code == 201 and extra.json()["api_key"] != body["api_key"]
    key2 = extra.json()
    assert vault.http(key2["api_key"]).get("/ledger").status_code == 200
    assert admin.delete(f"/admin/api-keys/{key2['key_id']}").status_code == 204
    assert vault.http(key2["api_key"]).get("/ledger").status_code == 401
    assert vault.http(body["api_key"]).get("/ledger").status_code == 200, "other keys keep working"
    assert admin.delete(f"/admin/api-keys/{key2['key_id']}x").status_code == 404
    assert admin.post("/admin/tenants/tn_nope/api-keys").status_code == 404
    wrong = httpx.post(f"{vault.url}/admin/tenants", json={"name": "x"}, headers={"X-Admin-API-Key": "wrong"})
    assert wrong.status_code == 401
    tenant_key = httpx.post(f"{vault.url}/admin/tenants", json={"name": "x"}, headers={"X-Admin-API-Key": vault.api_key})
    assert tenant_key.status_code == 401, "a tenant key is not an admin key"
    bearer = httpx.post(f"{vault.url}/admin/tenants", json={"name": "bearer"},
                        headers={"Authorization": f"Bearer {vault.admin_key}"})
    assert bearer.status_code == 201
    assert httpx.get(f"{vault.url}/ledger", headers={"Authorization": f"Bearer {body['api_key']}"}).status_code == 200


def test_rate_limiting(rate_limited_vault):
    v = rate_limited_vault
    with v.http() as http:
        responses = [http.get("/ledger") for _ in range(8)]
    codes = [r.status_code for r in responses]
    assert codes[:3] == [200, 200, 200] and 429 in codes, codes
    ok, limited = responses[0], next(r for r in responses if r.status_code == 429)
    assert ok.headers["X-RateLimit-Limit"] == "3" and "X-RateLimit-Remaining" in ok.headers and "X-RateLimit-Reset" in ok.headers
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.json()["error"]["code"] == "rate_limited" and limited.json()["error"]["request_id"]
    other_tenant, other_key = v.new_tenant()
    assert v.http(other_key).get("/ledger").status_code == 200, "limits are per API key"


def test_idempotent_retries(vault):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    http = vault.http()
    key = str(uuid.uuid4())
    body = {"tool_name": tool, "tool_args": {"amount": 5}}
    first = http.post("/request-clearance", json=body, headers={"Idempotency-Key": key})
    second = http.post("/request-clearance", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() and second.headers.get("Idempotent-Replayed") == "true"
    rid = first.json()["request_id"]
    entries = http.get("/ledger", params={"limit": 500}).json()["entries"]
    assert sum(e["request_id"] == rid for e in entries) == 1, "nothing written twice"
    reused = http.post("/request-clearance", json={**body, "tool_args": {"amount": 6}}, headers={"Idempotency-Key": key})
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"

    policy = {"policy_id": unique("p"), "tools": [unique("t")], "rules": ["be nice"]}
    pkey = str(uuid.uuid4())
    with vault.tenant_admin() as tenant_admin:
        p1 = tenant_admin.post("/register-policy", json=policy, headers={"Idempotency-Key": pkey})
        p2 = tenant_admin.post("/register-policy", json=policy, headers={"Idempotency-Key": pkey})
    assert p1.status_code == p2.status_code == 201 and p1.json() == p2.json()

    token = first.json()["token"]
    ckey = str(uuid.uuid4())
    call = {"token": token, **body}
    c1 = http.post("/consume-token", json=call, headers={"Idempotency-Key": ckey})
    c2 = http.post("/consume-token", json=call, headers={"Idempotency-Key": ckey})
    assert c1.status_code == c2.status_code == 200 and c1.json() == c2.json()
    assert http.post("/consume-token", json=call).status_code == 409


@pytest.mark.parametrize("case", ["malformed", "wrong_types", "args_not_object", "oversize", "content_type",
                                  "no_auth", "bad_key", "unknown_route", "empty_tool"])
def test_bad_input_gets_a_clear_4xx(vault, case):
    url = f"{vault.url}/request-clearance"
    headers = {"X-Vault-API-Key": vault.api_key, "Content-Type": "application/json"}
    expected = {"malformed": 400, "wrong_types": 422, "args_not_object": 422, "oversize": 413, "content_type": 415,
                "no_auth": 401, "bad_key": 401, "unknown_route": 404, "empty_tool": 422}[case]
    if case == "malformed":
        r = httpx.post(url, content=b'{"tool_name": "x", ', headers=headers)
    elif case == "wrong_types":
        r = httpx.post(url, content=b'{"tool_name": 5, "tool_args": {}}', headers=headers)
    elif case == "args_not_object":
        r = httpx.post(url, json={"tool_name": "x", "tool_args": "x"}, headers=headers)
    elif case == "oversize":
        r = httpx.post(url, json={"tool_name": "x", "tool_args": {"blob": "a" * (300 * 1024)}}, headers=headers)
    elif case == "content_type":
        r = httpx.post(url, content=b'{"tool_name": "x"}', headers={**headers, "Content-Type": "text/plain"})
    elif case == "no_auth":
        r = httpx.post(url, json={"tool_name": "x"})
    elif case == "bad_key":
        r = httpx.post(url, json={"tool_name": "x"}, headers={"X-Vault-API-Key": "lvk_wrong"})
    elif case == "unknown_route":
        r = httpx.get(f"{vault.url}/nope", headers=headers)
    else:
        r = httpx.post(url, json={"tool_name": "", "tool_args": {}}, headers=headers)
    assert r.status_code == expected, r.text
    error = r.json()["error"]
    assert error["code"] and error["message"] and error["request_id"] == r.headers["X-Request-ID"]


def test_unknown_fields_are_ignored(vault):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    r = vault.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1},
                                                      "some_future_field": {"x": 1}, "purpose": "billing"})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.headers["X-Request-ID"]


def test_state_survives_a_restart(fresh_vault):
    v = fresh_vault.start()
    tool = unique("refund")
    v.register("persisted", [tool], rego=APPROVE_SMALL)
    resp = v.client().request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 2}))
    tenant_id, tenant_key = v.new_tenant()
    jwks_before = v.http().get("/.well-known/jwks.json").json()
    entries_before = v.http().get("/ledger").json()["entries"]
    v.restart()
    assert v.http().get("/.well-known/jwks.json").json() == jwks_before
    def identity(entries):  # sealing may have added leaf_index/checkpoint_id since
        return [(e["seq"], e["event_uuid"], e["event_hash"], e["receipt_signature"]) for e in entries]

    assert identity(v.http().get("/ledger").json()["entries"])[: len(entries_before)] == identity(entries_before)
    assert [p["policy_id"] for p in v.tenant_admin().get("/policies").json()["policies"]] == ["persisted"]
    assert v.http(tenant_key).get("/ledger").status_code == 200
    assert v.http().get(f"/clearance-status/{resp.request_id}").json()["status"] == "approved"
    token = v.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 3}}).json()["token"]
    assert v.client().verify_token(token)["tool"] == tool, "the signing key persisted"


def test_usage_is_metered_per_tenant(vault):
    tenant_id, key = vault.new_tenant()
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL, api_key=key)
    http = vault.http(key)
    token = http.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()["token"]
    http.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 5000}})
    assert http.post("/consume-token", json={"token": token, "tool_name": tool, "tool_args": {"amount": 1}}).status_code == 200
    usage = http.get("/usage").json()
    assert usage["tenant_id"] == tenant_id
    assert usage["counters"] == {"clearance.approved": 1, "clearance.denied": 1, "token.consumed": 1}
    assert http.get("/usage", params={"day": "yesterday"}).status_code == 422
