"""SDK paths beyond the blocking happy path: detached reviews, the judge queue, async calls, policy registration."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
from ledgix_python import ClearanceDeniedError, PolicyRegistrationError, ReviewPendingError
from ledgix_python.models import ClearanceRequest, PolicyRegistration

from conftest import APPROVE_SMALL, ledger, pending_review_for, unique, wait_for


def test_detached_review_resolves_when_the_reviewer_approves(vault, client, http, reviewer_http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    sdk = client(review_mode="detach")
    with pytest.raises(ReviewPendingError) as detached:
        sdk.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 250}))
    pending = detached.value.pending_approval
    assert pending.request_id
    status = http().get(f"/clearance-status/{pending.request_id}").json()
    assert status["status"] == "pending_review" and status["requires_manual_review"] is True
    assert status["decision_status"] == "approved_pending_review" and status["token"] is None

    decided = reviewer_http.post(f"/reviews/{pending.request_id}/decision", json={"approved": True, "review_reason": "ok"})
    assert decided.status_code == 200, decided.text
    resolved = pending.wait(timeout=30)
    assert resolved.status == "approved" and resolved.token and resolved.request_id == pending.request_id
    claims = client().verify_token(resolved.token)
    assert claims["request_id"] == pending.request_id and claims["tool"] == tool


def test_detached_review_cancelled_by_the_agent_is_denied(vault, client, http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    sdk = client(review_mode="detach")
    with pytest.raises(ReviewPendingError) as detached:
        sdk.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 250}))
    pending = detached.value.pending_approval
    pending.cancel()
    status = http().get(f"/clearance-status/{pending.request_id}").json()
    assert status["status"] == "denied" and status["decision_status"] == "denied" and status["token"] is None
    with pytest.raises(ClearanceDeniedError):
        pending.wait(timeout=30)
    outcome = [e for e in ledger(http()) if e["request_id"] == pending.request_id]
    assert [e["decision_status"] for e in outcome] == ["approved_pending_review", "denied"]


def test_judge_queue_then_reviewer_through_the_blocking_sdk(vault, client, reviewer_http):
    """A plain-English policy: processing (queued) -> stub judge -> pending_review -> reviewer approves; the
    blocking SDK call rides through all of it and returns the approved response with a token."""
    tool = unique("email")
    registered = client(vault.tenant_admin_key).register_policy(PolicyRegistration(policy_id=unique("p"), rules=["No bulk email"], tools=[tool]))
    assert registered.status == "registered"
    sdk = client()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(sdk.request_clearance, ClearanceRequest(tool_name=tool, tool_args={"to": "a@example.com"}))
        review = pending_review_for(reviewer_http, tool)
        assert review["confidence_bucket"] == "none"
        r = reviewer_http.post(f"/reviews/{review['request_id']}/decision", json={"approved": True, "review_reason": "fine"})
        assert r.status_code == 200, r.text
        resp = future.result(timeout=60)
    assert resp.status == "approved" and resp.decision_status == "approved" and resp.token
    assert resp.request_id == review["request_id"]


def test_async_client(vault, client):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)

    async def run():
        sdk = client(verify_jwt=False)
        try:
            approved = await sdk.arequest_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 12}))
            with pytest.raises(ClearanceDeniedError):
                await sdk.arequest_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 12000}))
            verifier = client()
            try:
                claims = await verifier.averify_token(approved.token)
            finally:
                await verifier.aclose()
            entries = await sdk.afetch_ledger(500)
            return approved, claims, entries
        finally:
            await sdk.aclose()

    approved, claims, entries = asyncio.run(run())
    assert approved.status == "approved" and claims["request_id"] == approved.request_id
    assert any(e.request_id == approved.request_id for e in entries)


def test_sdk_policy_registration_is_versioned(vault, client, tenant_admin_http):
    sdk = client(vault.tenant_admin_key)
    policy_id, tool = unique("p"), unique("t")
    first = sdk.register_policy(PolicyRegistration(policy_id=policy_id, rules=["Be kind"], tools=[tool]))
    again = sdk.register_policy(PolicyRegistration(policy_id=policy_id, rules=["Be kind"], tools=[tool]))
    changed = sdk.register_policy(PolicyRegistration(policy_id=policy_id, rules=["Be kinder"], tools=[tool]))
    assert (first.policy_id, first.status) == (policy_id, "registered")
    assert again.status == "unchanged"
    assert changed.status == "registered"
    mine = [p for p in tenant_admin_http.get("/policies").json()["policies"] if p["policy_id"] == policy_id]
    assert len(mine) == 1 and mine[0]["version"] == 2 and mine[0]["rules"] == ["Be kinder"]
    with pytest.raises(PolicyRegistrationError):
        sdk.register_policy(PolicyRegistration(policy_id="", rules=["x"]))


def test_stub_judge_never_approves_even_at_the_lowest_bar(vault, client, http):
    """Even with the bar at `none`, the development stub judge never approves on its own."""
    tenant_id, key = vault.new_tenant()
    h = http(key)
    assert h.put("/review-settings", json={"minimum_confidence_bucket": "none"}).status_code == 200
    tool = unique("email")
    client(key).register_policy(PolicyRegistration(policy_id=unique("p"), rules=["Only customers"], tools=[tool]))
    first = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {}}).json()
    final = wait_for(lambda: (s := h.get(f"/clearance-status/{first['request_id']}").json())["status"] != "processing" and s,
                     what="the judge's answer")
    assert final["status"] == "pending_review" and final["token"] is None
