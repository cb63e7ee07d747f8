"""Policy versions and fail-closed evaluation, /mint-token's preconditions, reviewer races, and Idempotency-Key
semantics under concurrency and across tenants."""

from __future__ import annotations

import concurrent.futures
import uuid

import jwt
import pytest
from ledgix_python.models import ClearanceRequest

from conftest import APPROVE_SMALL, assert_error, ledger, unique


# --- policies ---------------------------------------------------------------------------------------------

def test_policy_versions(vault, http, tenant_admin_http):
    h = http()
    policy_id, tool = unique("p"), unique("t")
    body = {"policy_id": policy_id, "tools": [tool], "rego": APPROVE_SMALL, "description": "v1"}
    first = tenant_admin_http.post("/register-policy", json=body)
    assert first.status_code == 201 and first.json()["status"] == "registered" and first.json()["version"] == 1
    same = tenant_admin_http.post("/register-policy", json=body)
    assert same.status_code == 200 and same.json()["status"] == "unchanged"
    assert same.json()["policy_version_id"] == first.json()["policy_version_id"]
    assert same.json()["policy_content_hash"] == first.json()["policy_content_hash"]
    before = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()
    assert before["policy_version_id"] == first.json()["policy_version_id"]

    changed = tenant_admin_http.post("/register-policy", json={**body, "rego": APPROVE_SMALL.replace("amount <= 100 }", "amount <= 10 }")})
    assert changed.status_code == 201 and changed.json()["version"] == 2
    assert changed.json()["policy_version_id"] != first.json()["policy_version_id"]
    assert changed.json()["policy_content_hash"] != first.json()["policy_content_hash"]
    after = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 50}}).json()
    assert after["status"] == "denied", "the new version decides from now on (50 was approved under v1)"
    assert after["policy_version_id"] == changed.json()["policy_version_id"]
    listed = [p for p in tenant_admin_http.get("/policies").json()["policies"] if p["policy_id"] == policy_id]
    assert len(listed) == 1 and listed[0]["version"] == 2, "GET /policies lists latest versions only"
    old = h.get(f"/clearance-status/{before['request_id']}").json()
    assert old["policy_version_id"] == first.json()["policy_version_id"], "past decisions keep their version"


@pytest.mark.parametrize("rego,args,why", [
    ('package x\nimport rego.v1\ndefault decision := "deny"\ndecision := "approve" if { input.tool_args.z / 0 > 1 }',
     {"z": 1}, "runtime error"),
    ('package x\ndecision := "approve" if { input.tool_args.a == 1 }', {"a": 2}, "decision undefined"),
    ('package x\ndecision := input.tool_args.d', {"d": "maybe"}, "decision not one of the four"),
    ('package x\ndecision := input.tool_args.d', {"d": ["approve"]}, "decision not a string"),
])
def test_policy_that_cannot_decide_fails_closed(vault, http, tenant_admin_http, rego, args, why):
    tool = unique("t")
    r = tenant_admin_http.post("/register-policy", json={"policy_id": unique("p"), "tools": [tool], "rego": rego})
    assert r.status_code == 201, r.text
    resp = http().post("/request-clearance", json={"tool_name": tool, "tool_args": args})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "denied" and body["decision_status"] == "denied" and body["token"] is None, why


def test_rego_sees_the_documented_input(vault, http):
    tool = unique("t")
    rego = ('package x\nimport rego.v1\ndefault decision := "deny"\n'
            'decision := "approve" if {\n  input.tool_name == "%s"\n  input.tool_args.n == 1\n'
            '  input.agent_id == "ag-1"\n  input.session_id == "se-1"\n  input.context.ticket == "T-9"\n'
            '  startswith(input.tenant_id, "")\n  input.tenant_id != ""\n}\n' % tool)
    vault.register(unique("p"), [tool], rego=rego)
    args = {"tool_name": tool, "tool_args": {"n": 1}, "agent_id": "ag-1", "session_id": "se-1", "context": {"ticket": "T-9"}}
    assert http().post("/request-clearance", json=args).json()["status"] == "approved"
    assert http().post("/request-clearance", json={**args, "context": {}}).json()["status"] == "denied"


def test_rego_reason_and_reason_code_are_returned(vault, http):
    tool = unique("t")
    vault.register(unique("p"), [tool], rego='package x\ndecision := "deny"\nreason := "closed on sundays"\nreason_code := "closed"')
    body = http().post("/request-clearance", json={"tool_name": tool, "tool_args": {}}).json()
    assert (body["status"], body["reason"], body["reason_code"]) == ("denied", "closed on sundays", "closed")
    tool2 = unique("t")
    vault.register(unique("p"), [tool2], rego='package x\ndecision := "deny"')
    assert http().post("/request-clearance", json={"tool_name": tool2, "tool_args": {}}).json()["reason_code"] == "policy_denied"


def test_review_settings_round_trip(vault, http):
    _, key = vault.new_tenant()
    h = http(key)
    day = 86400
    assert h.get("/review-settings").json() == {"minimum_confidence_bucket": "high", "review_deadline_seconds": day}
    for bucket in ("extra_high", "medium", "low", "none", "high"):
        r = h.put("/review-settings", json={"minimum_confidence_bucket": bucket})
        expected = {"minimum_confidence_bucket": bucket, "review_deadline_seconds": day}
        assert r.status_code == 200 and r.json() == expected
        assert h.get("/review-settings").json() == expected
    # The deadline is kept when a PUT leaves it out, and bounded.
    r = h.put("/review-settings", json={"minimum_confidence_bucket": "low", "review_deadline_seconds": 3600})
    assert r.status_code == 200 and r.json()["review_deadline_seconds"] == 3600
    assert h.put("/review-settings", json={"minimum_confidence_bucket": "low"}).json()["review_deadline_seconds"] == 3600
    for bad in (9, 30 * day + 1, -1, "soon"):
        assert h.put("/review-settings", json={"minimum_confidence_bucket": "low", "review_deadline_seconds": bad}).status_code == 422
    tool = unique("t")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL, api_key=key)
    assert h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()["minimum_confidence_bucket"] == "low"
    _, other = vault.new_tenant()  # other tenants are untouched
    assert http(other).get("/review-settings").json() == {"minimum_confidence_bucket": "high", "review_deadline_seconds": day}


# --- /mint-token --------------------------------------------------------------------------------------------

@pytest.fixture()
def approved(vault, http):
    tool = unique("refund")
    policy_id = unique("p")
    vault.register(policy_id, [tool], rego=APPROVE_SMALL)
    args = {"amount": 7, "memo": "x"}
    resp = http().post("/request-clearance", json={"tool_name": tool, "tool_args": args}).json()
    assert resp["status"] == "approved"
    return {"tool": tool, "args": args, "resp": resp, "policy_id": policy_id}


def _mint_body(a, **over):
    body = {"tool_name": a["tool"], "tool_args": a["args"], "original_request_id": a["resp"]["request_id"],
            "policy_id": a["policy_id"], "policy_version_id": a["resp"]["policy_version_id"],
            "policy_content_hash": a["resp"]["policy_content_hash"], "confidence_bucket": "extra_high", "reason": "cached"}
    body.update(over)
    return body


def test_minted_tokens_are_fresh_bound_and_consumable(vault, http, approved):
    h = http()
    minted = [h.post("/mint-token", json=_mint_body(approved)) for _ in range(3)]
    assert all(m.status_code == 200 for m in minted), [m.text for m in minted]
    tokens = [m.json()["token"] for m in minted] + [approved["resp"]["token"]]
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in tokens]
    assert len({c["jti"] for c in claims}) == 4 and len({m.json()["request_id"] for m in minted}) == 3
    assert {c["tool_args_hash"] for c in claims} == {claims[-1]["tool_args_hash"]}
    assert all(m.json()["status"] == "approved" and m.json()["decision_status"] == "approved" for m in minted)
    for token in tokens:
        r = h.post("/consume-token", json={"token": token, "tool_name": approved["tool"], "tool_args": approved["args"]})
        assert r.status_code == 200, r.text
    entries = ledger(h)
    for m in minted:
        mine = [e for e in entries if e["request_id"] == m.json()["request_id"]]
        assert len(mine) == 1 and mine[0]["approved"] is True
        assert mine[0]["action_metadata"]["original_request_id"] == approved["resp"]["request_id"]


@pytest.mark.parametrize("case,status", [
    ("unknown_original", 404), ("denied_original", 409), ("pending_original", 409), ("other_tenant", 404),
    ("other_args", 422), ("other_tool", 422), ("policy_changed", 409),
])
def test_mint_refuses_anything_but_the_exact_approved_call(vault, http, approved, case, status):
    h = http()
    if case == "unknown_original":
        body = _mint_body(approved, original_request_id=str(uuid.uuid4()))
    elif case == "denied_original":
        denied = h.post("/request-clearance", json={"tool_name": approved["tool"], "tool_args": {"amount": 5000}}).json()
        body = _mint_body(approved, tool_args={"amount": 5000}, original_request_id=denied["request_id"])
    elif case == "pending_original":
        pending = h.post("/request-clearance", json={"tool_name": approved["tool"], "tool_args": {"amount": 500}}).json()
        assert pending["status"] == "pending_review"
        body = _mint_body(approved, tool_args={"amount": 500}, original_request_id=pending["request_id"])
    elif case == "other_tenant":
        _, key = vault.new_tenant()
        vault.register(approved["policy_id"], [approved["tool"]], rego=APPROVE_SMALL, api_key=key)
        h = http(key)
        body = _mint_body(approved)
    elif case == "other_args":
        body = _mint_body(approved, tool_args={**approved["args"], "amount": 8})
    elif case == "other_tool":
        body = _mint_body(approved, tool_name=approved["tool"] + "_x")
    else:
        vault.register(approved["policy_id"], [approved["tool"]], rego=APPROVE_SMALL + "\n# v2\n")
        body = _mint_body(approved)
    before = len(ledger(h))
    r = h.post("/mint-token", json=body)
    assert_error(r, status)
    assert len(ledger(h)) == before, "a refused mint writes nothing"


def test_a_review_approval_is_not_mintable(vault, client, http, reviewer_http):
    """A reviewer approves one call: its answers carry no policy_version_id (so the SDK's decision cache, which
    needs one, never caches it) and /mint-token refuses it (tests/e2e/test_separation_policies.py drives the SDK)."""
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    h = http()
    pending = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 300}}).json()
    decided = reviewer_http.post(f"/reviews/{pending['request_id']}/decision", json={"approved": True, "review_reason": "ok"})
    assert decided.status_code == 200 and not decided.json()["policy_version_id"], decided.text
    status = h.get(f"/clearance-status/{pending['request_id']}").json()
    assert status["status"] == "approved" and status["token"] and not status["policy_version_id"]
    r = h.post("/mint-token", json={"tool_name": tool, "tool_args": {"amount": 300},
                                    "original_request_id": pending["request_id"]})
    assert_error(r, 409, "conflict")


# --- reviews ------------------------------------------------------------------------------------------------

def test_concurrent_reviewers_decide_once(vault):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    with vault.http() as h:
        pending = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 400}}).json()
    rid = pending["request_id"]

    def decide(i):
        with vault.reviewer() as c:
            r = c.post(f"/reviews/{rid}/decision", json={"approved": i % 2 == 0, "review_reason": f"reviewer {i}"})
            return r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(decide, range(12)))
    codes = [c for c, _ in results]
    assert codes.count(200) == 1 and codes.count(409) == 11, codes
    assert all(b["error"]["code"] == "not_pending" for c, b in results if c == 409)
    winner = next(b for c, b in results if c == 200)
    with vault.http() as h:
        mine = [e for e in ledger(h) if e["request_id"] == rid]
        final = h.get(f"/clearance-status/{rid}").json()
    assert len(mine) == 2, "the request event and exactly one review outcome"
    assert final["status"] == winner["status"] and final["decision_status"] == mine[-1]["decision_status"]
    assert (final["token"] is not None) == (winner["status"] == "approved")


def test_review_decisions_on_decided_or_unknown_requests(vault, http, reviewer_http):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    h, reviewer = http(), reviewer_http
    approved = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()
    assert_error(reviewer.post(f"/reviews/{approved['request_id']}/decision", json={"approved": False}), 409, "not_pending")
    denied = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 9999}}).json()
    assert_error(reviewer.post(f"/reviews/{denied['request_id']}/decision", json={"approved": True}), 409, "not_pending")
    assert h.get(f"/clearance-status/{denied['request_id']}").json()["token"] is None, "a denial stays denied"
    assert_error(reviewer.post(f"/reviews/{uuid.uuid4()}/decision", json={"approved": True}), 404, "not_found")


def test_pending_list_only_holds_pending(vault, http, reviewer_http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    h, reviewer = http(), reviewer_http
    a = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 200}}).json()
    b = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 201}}).json()
    listed = {r["request_id"]: r for r in reviewer.get("/reviews", params={"status": "pending"}).json()["reviews"]}
    assert a["request_id"] in listed and b["request_id"] in listed
    assert listed[a["request_id"]]["tool_args"] == {"amount": 200}
    reviewer.post(f"/reviews/{a['request_id']}/decision", json={"approved": True})
    listed = {r["request_id"] for r in reviewer.get("/reviews", params={"status": "pending"}).json()["reviews"]}
    assert a["request_id"] not in listed and b["request_id"] in listed


# --- Idempotency-Key ------------------------------------------------------------------------------------------

def test_register_policy_key_reused_with_another_body(vault, tenant_admin_http):
    h = tenant_admin_http
    key = str(uuid.uuid4())
    policy = {"policy_id": unique("p"), "tools": [unique("t")], "rules": ["be nice"]}
    first = h.post("/register-policy", json=policy, headers={"Idempotency-Key": key})
    replay = h.post("/register-policy", json=policy, headers={"Idempotency-Key": key})
    assert first.status_code == replay.status_code == 201 and first.json() == replay.json()
    assert replay.headers.get("Idempotent-Replayed") == "true"
    reused = h.post("/register-policy", json={**policy, "rules": ["be nicer"]}, headers={"Idempotency-Key": key})
    assert_error(reused, 422, "idempotency_key_reused")
    listed = [p for p in h.get("/policies").json()["policies"] if p["policy_id"] == policy["policy_id"]]
    assert len(listed) == 1 and listed[0]["version"] == 1 and listed[0]["rules"] == ["be nice"]


def test_concurrent_retries_with_one_key_decide_once(vault):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    key = str(uuid.uuid4())
    body = {"tool_name": tool, "tool_args": {"amount": 3}}

    def send(_):
        with vault.http() as c:
            r = c.post("/request-clearance", json=body, headers={"Idempotency-Key": key})
            return r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, range(20)))
    ok = [b for c, b in results if c == 200]
    busy = [b for c, b in results if c == 409]
    assert len(ok) + len(busy) == 20, [c for c, _ in results]
    assert ok and all(b == ok[0] for b in ok), "every completed retry sees the same response"
    assert all(b["error"]["code"] == "idempotency_in_progress" for b in busy)
    with vault.http() as h:
        assert [e["request_id"] for e in ledger(h) if e["tool_name"] == tool] == [ok[0]["request_id"]]


def test_idempotency_keys_are_scoped_per_tenant(vault):
    _, a_key = vault.new_tenant()
    _, b_key = vault.new_tenant()
    key = str(uuid.uuid4())
    with vault.http(a_key) as a, vault.http(b_key) as b:
        ra = a.post("/request-clearance", json={"tool_name": unique("a"), "tool_args": {}}, headers={"Idempotency-Key": key})
        rb = b.post("/request-clearance", json={"tool_name": unique("b"), "tool_args": {"x": 1}}, headers={"Idempotency-Key": key})
        assert ra.status_code == rb.status_code == 200, (ra.text, rb.text)
        assert ra.json()["request_id"] != rb.json()["request_id"]
        assert rb.headers.get("Idempotent-Replayed") != "true"


def test_review_decision_retry_is_replayed_not_conflicting(vault, http, reviewer_http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    h = http()
    pending = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 700}}).json()
    key = str(uuid.uuid4())
    decision = {"approved": True, "review_reason": "ok"}
    first = reviewer_http.post(f"/reviews/{pending['request_id']}/decision", json=decision, headers={"Idempotency-Key": key})
    retry = reviewer_http.post(f"/reviews/{pending['request_id']}/decision", json=decision, headers={"Idempotency-Key": key})
    assert first.status_code == retry.status_code == 200 and first.json() == retry.json()
    assert sum(e["request_id"] == pending["request_id"] for e in ledger(h)) == 2


def test_sdk_requests_are_never_deduplicated_by_accident(vault, client, http):
    """The SDK sends a fresh Idempotency-Key per call: two identical calls are two decisions."""
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    sdk = client()
    r1 = sdk.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 2}))
    r2 = sdk.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 2}))
    assert r1.request_id != r2.request_id
    assert sum(e["tool_name"] == tool for e in ledger(http())) == 2
