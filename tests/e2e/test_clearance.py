"""The clearance lifecycle through the public SDK, and tokens checked by independent verifiers."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import time

import jwt
import pytest
import rfc8785
from ledgix_python import ClearanceDeniedError
from ledgix_python.models import ClearanceRequest, PolicyRegistration

from conftest import APPROVE_SMALL, unique


def test_dev_prints_what_a_user_pastes(vault):
    assert vault.printed("LEDGIX_VAULT_URL") == vault.url
    assert vault.printed("LEDGIX_VAULT_API_KEY") == vault.api_key
    assert vault.printed("LEDGIX_ADMIN_API_KEY") == vault.admin_key


def test_approved_request_returns_a_token_independent_verifiers_accept(vault):
    tool = unique("refund")
    registered = vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    client = vault.client()
    args = {"amount": 45, "currency": "usd", "note": "naïve café ☕", "ratio": 0.1, "nested": {"b": [1, 2.5, None], "a": True}}
    resp = client.request_clearance(ClearanceRequest(tool_name=tool, tool_args=args, agent_id="agent-7", session_id="s-1"))
    assert resp.status == "approved" and resp.decision_status == "approved" and resp.token
    assert resp.policy_version_id == registered["policy_version_id"]
    assert resp.policy_content_hash == registered["policy_content_hash"]
    assert resp.confidence_bucket == "extra_high"

    header = jwt.get_unverified_header(resp.token)
    assert header["alg"] == "EdDSA" and header["typ"] == "JWT" and header["kid"]
    signing_key = jwt.PyJWKClient(f"{vault.url}/.well-known/jwks.json").get_signing_key_from_jwt(resp.token)
    claims = jwt.decode(resp.token, signing_key.key, algorithms=["EdDSA"], audience="ledgix-sdk", issuer="alcv-vault")
    assert claims["sub"] == "clearance" and claims["decision"] == "approved"
    assert claims["tool"] == tool and claims["agent_id"] == "agent-7" and claims["session_id"] == "s-1"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["request_id"] == resp.request_id and claims["tenant_id"] and claims["jti"] and claims["policy_id"]
    expected = "sha256:" + hashlib.sha256(rfc8785.dumps(args)).hexdigest()
    assert claims["tool_args_hash"] == expected

    jwks = vault.http().get("/.well-known/jwks.json").json()
    key = jwks["keys"][0]
    assert key == {**key, "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA"}
    assert len(base64.urlsafe_b64decode(key["x"] + "==")) == 32


def test_sdk_verify_token(vault):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    resp = vault.client(verify_jwt=False).request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 1}))
    claims = vault.client().verify_token(resp.token)
    assert claims["tool"] == tool


def test_denied_request_raises(vault):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    with pytest.raises(ClearanceDeniedError) as denied:
        vault.client().request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 5000}))
    assert "over the hard limit" in str(denied.value)
    raw = vault.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 5000}}).json()
    assert raw["status"] == "denied" and raw["reason_code"] == "amount_over_limit" and raw["token"] is None


def test_unknown_tool_is_denied_fail_closed(vault):
    raw = vault.http().post("/request-clearance", json={"tool_name": unique("nobody_guards_this"), "tool_args": {}}).json()
    assert raw["status"] == "denied" and raw["decision_status"] == "denied"
    assert raw["reason_code"] == "no_policy_for_tool" and raw["token"] is None


def _pending(vault, tool, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reviews = vault.reviewer().get("/reviews", params={"status": "pending"}).json()["reviews"]
        mine = [r for r in reviews if r["tool_name"] == tool]
        if mine:
            return mine[0]
        time.sleep(0.1)
    raise AssertionError("request never reached pending review")


@pytest.mark.parametrize("approve", [True, False])
def test_pending_review_waits_for_a_reviewer(vault, approve):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    client = vault.client()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(client.request_clearance, ClearanceRequest(tool_name=tool, tool_args={"amount": 500}))
        review = _pending(vault, tool)
        assert review["status"] == "pending_review" and review["tool_args"] == {"amount": 500}
        decision = vault.reviewer().post(f"/reviews/{review['request_id']}/decision",
                                         json={"approved": approve, "review_reason": "checked with finance"})
        assert decision.status_code == 200, decision.text
        if approve:
            resp = future.result(timeout=30)
            assert resp.status == "approved" and resp.token and resp.request_id == review["request_id"]
        else:
            with pytest.raises(ClearanceDeniedError):
                future.result(timeout=30)
    again = vault.reviewer().post(f"/reviews/{review['request_id']}/decision", json={"approved": True})
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_pending"


def test_plain_english_policy_goes_to_the_judge_queue(vault):
    tool = unique("email")
    vault.client(vault.tenant_admin_key).register_policy(PolicyRegistration(policy_id=unique("p"), rules=["No bulk email"], tools=[tool]))
    first = vault.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"to": "a@b.c"}}).json()
    assert first["status"] in ("processing", "pending_review")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = vault.http().get(f"/clearance-status/{first['request_id']}").json()
        if status["status"] != "processing":
            break
        time.sleep(0.1)
    assert status["status"] == "pending_review", "the stub judge never approves"
    assert status["reason_code"] == "stub_judge_review" and status["confidence_bucket"] == "none"
    assert status["requires_manual_review"] is True


def test_decision_cache_mints_fresh_tokens(vault):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    client = vault.client(decision_cache_enabled=True)
    request = ClearanceRequest(tool_name=tool, tool_args={"amount": 7})
    first = client.request_clearance(request)
    second = client.request_clearance(request)
    assert second.token and second.token != first.token
    c1, c2 = (jwt.decode(t, options={"verify_signature": False}) for t in (first.token, second.token))
    assert c1["jti"] != c2["jti"] and c1["tool_args_hash"] == c2["tool_args_hash"]
    entries = vault.client().fetch_ledger(500)
    minted = [e for e in entries if e.request_id == second.request_id]
    assert minted and minted[0].action_category == "token.minted"
    assert minted[0].action_metadata["original_request_id"] == first.request_id
    wrong = vault.http().post("/mint-token", json={"tool_name": tool, "tool_args": {"amount": 8},
                                                    "original_request_id": first.request_id})
    assert wrong.status_code == 422, "a cached approval mints only for the exact approved call"


def _token(vault, tool, args, api_key=None):
    return vault.http(api_key).post("/request-clearance", json={"tool_name": tool, "tool_args": args}).json()["token"]


def test_consume_token_burns_exactly_once(vault):
    tool = unique("pay")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    args = {"amount": 10, "to": "acct_1"}
    token = _token(vault, tool, args)
    http = vault.http()
    wrong_args = http.post("/consume-token", json={"token": token, "tool_name": tool, "tool_args": {"amount": 11, "to": "acct_1"}})
    assert wrong_args.status_code == 422 and wrong_args.json()["error"]["code"] == "tool_args_mismatch"
    wrong_tool = http.post("/consume-token", json={"token": token, "tool_name": "other", "tool_args": args})
    assert wrong_tool.status_code == 422
    ok = http.post("/consume-token", json={"token": token, "tool_name": tool, "tool_args": args})
    assert ok.status_code == 200 and ok.json()["consumed"] is True and ok.json()["claims"]["tool"] == tool
    replay = http.post("/consume-token", json={"token": token, "tool_name": tool, "tool_args": args})
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "token_replayed"

    head, payload, sig = _token(vault, tool, args).split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    call = {"tool_name": tool, "tool_args": args}
    assert http.post("/consume-token", json={"token": f"{head}.{payload}.{flipped}", **call}).status_code == 401
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["tool_args_hash"] = "sha256:" + "0" * 64
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert http.post("/consume-token", json={"token": f"{head}.{forged_payload}.{sig}", **call}).status_code == 401
    assert http.post("/consume-token", json={"token": "not-a-token", **call}).status_code == 401


def test_concurrent_replays_let_exactly_one_through(vault):
    tool = unique("pay")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    token = _token(vault, tool, {"amount": 3})

    def consume(_):
        with vault.http() as http:
            return http.post("/consume-token", json={"token": token, "tool_name": tool,
                                                     "tool_args": {"amount": 3}}).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(consume, range(20)))
    assert codes.count(200) == 1 and codes.count(409) == 19, codes


def test_every_decision_is_a_verifiable_ledger_entry(vault):
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    client = vault.client()
    approved = client.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 9, "x": 1.25}))
    with pytest.raises(ClearanceDeniedError):
        client.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 9999}))
    entries = client.fetch_ledger(500)
    assert any(e.request_id == approved.request_id and e.approved for e in entries)
    result = client.verify_ledger_proof(entries, [])
    assert result.intact, result.error
    assert result.verified_entries == len(entries) and result.coverage_note is None
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    raw = vault.http().get("/ledger", params={"limit": 500}).json()["entries"]
    mine = next(e for e in raw if e["request_id"] == approved.request_id)
    mine["tool_args"]["amount"] = 10
    assert not client.verify_ledger_proof(raw, []).intact
