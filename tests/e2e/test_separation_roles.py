"""Separation of duties, tried as the attacker: nothing but the agent's own API key. Every route accepts only
the roles it states; a request needs a second key to be approved; the agent cannot rewrite its own rules; the
tenant admin manages the tenant's keys. Runs on both backends."""

from __future__ import annotations

import threading
import uuid

import pytest
from ledgix_python import ReviewPendingError
from ledgix_python.models import ClearanceRequest

from conftest import APPROVE_SMALL, assert_error, ledger, pending_review_for, unique, wait_for

REVIEW_ALWAYS = """
package sod
default decision := "review"
"""

ALL_ROLES = ["agent", "consumer", "reviewer", "tenant_admin", "auditor"]


def decide(http_client, request_id: str, approved: bool, **extra):
    return http_client.post(f"/reviews/{request_id}/decision", json={"approved": approved, **extra})


def events_for(http_client, request_id: str) -> list[dict]:
    return [e for e in ledger(http_client) if e["request_id"] == request_id]


# --- 1. self-approval ----------------------------------------------------------------------------------------

def test_the_agent_cannot_approve_its_own_review(vault, client, http, reviewer_http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    agent = client(review_mode="detach")
    with pytest.raises(ReviewPendingError) as pending:
        agent.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 999999}))
    request_id = pending.value.pending_approval.request_id

    refused = decide(http(), request_id, True)
    error = assert_error(refused, 403, "forbidden_role")
    assert "reviewer" in error["message"]
    status = http().get(f"/clearance-status/{request_id}").json()
    assert status["status"] == "pending_review" and status["token"] is None, status
    assert status["requested_by"], "the clearance records which key asked"
    # It cannot see the queue a reviewer works from either.
    assert_error(http().get("/reviews", params={"status": "pending"}), 403, "forbidden_role")

    approved = decide(reviewer_http, request_id, True, review_reason="checked", reviewer_name="Dana")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["token"]
    event = events_for(reviewer_http, request_id)[-1]
    assert event["action_category"] == "review.decision"
    assert event["action_metadata"]["reviewer_name"] == "Dana"
    assert event["action_metadata"]["reviewer_key_id"] != status["requested_by"]


def test_a_key_with_every_role_still_cannot_approve_what_it_asked_for(vault):
    """Keys made before roles existed keep every role, but four eyes hold for them too."""
    _, key = vault.new_tenant()
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS, api_key=key)
    with vault.http(key) as http:
        r = http.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}})
        assert r.json()["status"] == "pending_review", r.text
        refused = decide(http, r.json()["request_id"], True)
        assert_error(refused, 403, "forbidden")
        assert http.get(f"/clearance-status/{r.json()['request_id']}").json()["status"] == "pending_review"


def test_a_reviewer_approval_wakes_the_waiting_sdk_call(vault, client, reviewer_http):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    agent = client(review_timeout=60)
    result: dict = {}

    def ask():
        result["clearance"] = agent.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 500}))

    waiting = threading.Thread(target=ask)
    waiting.start()
    review = pending_review_for(reviewer_http, tool)
    assert review["requested_by"]
    assert decide(reviewer_http, review["request_id"], True).status_code == 200
    waiting.join(timeout=60)
    assert result["clearance"].status == "approved" and result["clearance"].token


def test_the_agent_may_withdraw_its_own_request(vault, client, http, reviewer_http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    with pytest.raises(ReviewPendingError) as pending:
        client(review_mode="detach").request_clearance(ClearanceRequest(tool_name=tool, tool_args={"n": 1}))
    pending.value.pending_approval.cancel()
    request_id = pending.value.pending_approval.request_id
    status = http().get(f"/clearance-status/{request_id}").json()
    assert status["status"] == "denied" and status["reason_code"] == "cancelled_by_agent", status
    event = events_for(http(), request_id)[-1]
    assert event["action_category"] == "review.cancelled_by_agent"
    assert event["action_metadata"]["decided_by"] == "agent"
    assert_error(decide(reviewer_http, request_id, True), 409, "not_pending")


def test_an_agent_sees_only_its_own_requests(vault, http, reviewer_http, tenant_admin_http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    r = http().post("/request-clearance", json={"tool_name": tool, "tool_args": {}})
    request_id = r.json()["request_id"]
    created = tenant_admin_http.post("/api-keys", json={"roles": ["agent"], "name": "another agent"})
    assert created.status_code == 201, created.text
    with vault.http(created.json()["api_key"]) as other_agent:
        assert_error(other_agent.get(f"/clearance-status/{request_id}"), 404, "not_found")
        # Nor may it withdraw what it did not ask for.
        assert_error(decide(other_agent, request_id, False), 403, "forbidden_role")
    for overseer in (reviewer_http, tenant_admin_http):
        assert overseer.get(f"/clearance-status/{request_id}").status_code == 200


# --- 2. rewriting its own rules ------------------------------------------------------------------------------

def test_the_agent_cannot_rewrite_its_rules(vault, client, http, tenant_admin_http):
    tool = unique("transfer")
    policy_id = unique("p")
    vault.register(policy_id, [tool], rego=APPROVE_SMALL)
    agent = http()
    assert_error(agent.put("/review-settings", json={"minimum_confidence_bucket": "none"}), 403, "forbidden_role")
    lenient = {"policy_id": policy_id, "tools": [tool], "rules": [], "description": "mine now",
               "rego": 'package x\ndefault decision := "approve"'}
    assert_error(agent.post("/register-policy", json=lenient), 403, "forbidden_role")
    assert_error(agent.get("/policies"), 403, "forbidden_role")
    assert_error(agent.get("/usage"), 403, "forbidden_role")
    assert_error(agent.post("/api-keys", json={"roles": ["reviewer"]}), 403, "forbidden_role")
    big = agent.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 999999}})
    assert big.json()["status"] == "denied", big.text
    # The tenant admin's key may do what the agent may not.
    assert tenant_admin_http.get("/review-settings").status_code == 200
    assert tenant_admin_http.get("/policies").status_code == 200


def test_a_key_outside_its_roles_gets_forbidden_role_on_every_tenant_route(vault):
    keys = vault.new_tenant_keys()
    with vault.http(keys["auditor"]) as auditor:
        assert auditor.get("/ledger").status_code == 200
        assert_error(auditor.post("/request-clearance", json={"tool_name": "x", "tool_args": {}}), 403, "forbidden_role")
        assert_error(auditor.post("/consume-token", json={"token": "x", "tool_name": "x", "tool_args": {}}),
                     403, "forbidden_role")
    with vault.http(keys["reviewer"]) as reviewer:
        assert_error(reviewer.post("/mint-token", json={"tool_name": "x", "original_request_id": "r"}),
                     403, "forbidden_role")
        assert_error(reviewer.put("/review-settings", json={"minimum_confidence_bucket": "none"}),
                     403, "forbidden_role")


# --- keys ---------------------------------------------------------------------------------------------------

def test_admin_tenants_start_with_a_tenant_admin_key_and_answers_never_store_it(vault, admin_http):
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    first = admin_http.post("/admin/tenants", json={"name": "acme"}, headers=idem)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["roles"] == ["tenant_admin"] and body["api_key"]
    replay = admin_http.post("/admin/tenants", json={"name": "acme"}, headers=idem)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["tenant_id"] == body["tenant_id"]
    assert "api_key" not in replay.json(), "a replay never shows the secret again"
    keyed = admin_http.post(f"/admin/tenants/{body['tenant_id']}/api-keys", json={})
    assert keyed.status_code == 201 and keyed.json()["roles"] == ["agent"], keyed.text


def test_tenant_admins_manage_their_own_keys(vault):
    keys = vault.new_tenant_keys()
    other = vault.new_tenant_keys()
    with vault.http(keys["tenant_admin"]) as admin:
        idem = {"Idempotency-Key": str(uuid.uuid4())}
        created = admin.post("/api-keys", json={"roles": ["reviewer", "auditor"], "name": "Dana"}, headers=idem)
        assert created.status_code == 201, created.text
        made = created.json()
        assert made["roles"] == ["reviewer", "auditor"] and made["name"] == "Dana" and made["api_key"]
        replay = admin.post("/api-keys", json={"roles": ["reviewer", "auditor"], "name": "Dana"}, headers=idem)
        assert replay.status_code == 201 and "api_key" not in replay.json()
        assert replay.json()["key_id"] == made["key_id"]

        listed = admin.get("/api-keys").json()["api_keys"]
        mine = next(k for k in listed if k["key_id"] == made["key_id"])
        assert mine["roles"] == ["reviewer", "auditor"] and not mine["revoked"]
        assert all("api_key" not in k and "key_hash" not in k for k in listed)
        assert {k["roles"][0] for k in listed} >= {"tenant_admin", "agent", "reviewer", "auditor"}

        assert_error(admin.post("/api-keys", json={"roles": ["root"]}), 422, "invalid_request")
        assert_error(admin.post("/api-keys", json={"roles": []}), 422, "invalid_request")
        # Another tenant's key is not this tenant's to revoke.
        other_keys = vault.http(other["tenant_admin"]).get("/api-keys").json()["api_keys"]
        assert_error(admin.delete(f"/api-keys/{other_keys[0]['key_id']}"), 404, "not_found")

        with vault.http(made["api_key"]) as dana:
            assert dana.get("/ledger").status_code == 200
        assert admin.delete(f"/api-keys/{made['key_id']}").status_code == 204
        with vault.http(made["api_key"]) as dana:
            assert_error(dana.get("/ledger"), 401, "unauthorized")
        listed = admin.get("/api-keys").json()["api_keys"]
        assert next(k for k in listed if k["key_id"] == made["key_id"])["revoked"]


def test_ledgix_dev_prints_a_key_per_duty(vault):
    assert vault.printed("LEDGIX_VAULT_API_KEY") == vault.api_key
    assert vault.printed("LEDGIX_REVIEWER_API_KEY") == vault.reviewer_key
    assert vault.printed("LEDGIX_TENANT_ADMIN_API_KEY") == vault.tenant_admin_key
    with vault.tenant_admin() as admin:
        roles = {tuple(k["roles"]) for k in admin.get("/api-keys").json()["api_keys"]}
    assert {("agent", "consumer"), ("reviewer",), ("tenant_admin",)} <= roles


def test_the_agent_key_can_still_verify_the_ledger(vault, client):
    agent = client()
    entries = agent.fetch_ledger()
    assert agent.verify_ledger_proof(entries, []).intact


def test_a_refused_request_leaves_the_connection_usable(vault):
    """A request refused before its handler (no key, wrong role) has its body read anyway, so the client's next
    request on the same keep-alive connection is answered (hyper closes a connection whose body was left unread)."""
    import http.client
    import json
    from urllib.parse import urlparse

    url = urlparse(vault.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = json.dumps({"policy_id": unique("p"), "tools": ["t"], "rules": [], "description": "x" * 50_000})
    try:
        for key, status in ((vault.api_key, 403), ("not-a-key", 401), (vault.api_key, 403)):
            conn.request("POST", "/register-policy", body=body,
                         headers={"X-Vault-API-Key": key, "content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == status
    finally:
        conn.close()
