"""Separation of duties: nothing the agent sends can widen what it may do.

- Every applicable policy decides and the most restrictive outcome wins (deny > review > judge > approve): a
  policy named in `context.policy_id` can add a policy, never override one, and "newest wins" is gone.
- /mint-token re-mints only what the rules would approve now, only from a rules approval (never a reviewer's),
  and never later than VAULT_MINT_MAX_AGE_SECONDS after the root approval of the chain.
- A token binds exactly one call: /consume-token requires tool_name and tool_args, and arguments the hash could
  not mean exactly (integers beyond ±(2^53−1), non-finite numbers, duplicate keys) are refused with 422.

Catch-all policies (no tools) apply to every tool of their tenant, so the tests that register one run on a vault
of this module's own; the rest use the shared vault with unique tool names.
"""

from __future__ import annotations

import concurrent.futures
import json
import time

import pytest
from ledgix_python import ClearanceDeniedError, VaultConnectionError
from ledgix_python.models import ClearanceRequest

from conftest import Vault, assert_error, ledger, pending_review_for, started, unique, wait_for

APPROVE_ALL = 'package sep\ndecision := "approve"\n'
FREEZE = 'package sep\ndecision := "deny"\nreason := "wires are frozen"\nreason_code := "wire_freeze"\n'
UP_TO_100 = 'package sep\ndefault decision := "deny"\ndecision := "approve" if { input.tool_args.amount <= 100 }\n'
REVIEW_OVER_100 = ('package sep\ndefault decision := "approve"\n'
                   'decision := "review" if { input.tool_args.amount > 100 }\n')
JSON = {"Content-Type": "application/json"}
BIG = 9007199254740993  # 2^53 + 1: no IEEE 754 double holds it
MINT_MAX_AGE = 4  # VAULT_MINT_MAX_AGE_SECONDS of this module's own vault


def reviewer(vault: Vault):
    """An HTTP client with the reviewer's key once API keys have roles (the dev key until then)."""
    return vault.http(getattr(vault, "reviewer_key", vault.api_key))


def decide_review(vault: Vault, request_id: str, approved: bool, reason: str = "e2e") -> dict:
    with reviewer(vault) as r:
        answer = r.post(f"/reviews/{request_id}/decision", json={"approved": approved, "review_reason": reason})
    assert answer.status_code == 200, answer.text
    return answer.json()


def entries_for(http, tool: str) -> list[dict]:
    """The tool's ledger events (the newest 500 of the tenant hold them: tools are unique per test)."""
    return [e for e in ledger(http) if e["tool_name"] == tool]


def written_for(http, tool: str) -> list[tuple[str, str]]:
    """What the ledger holds for the tool, by event (sealing fills in checkpoint fields at any time)."""
    return [(e["request_id"], e["action_category"]) for e in entries_for(http, tool)]


def event_for(http, request_id: str) -> dict:
    mine = [e for e in ledger(http) if e["request_id"] == request_id]
    assert len(mine) == 1, mine
    return mine[0]


def mint_body(tool: str, args: dict, approved: dict, **over) -> dict:
    """What the SDK's decision cache sends to /mint-token."""
    body = {"tool_name": tool, "tool_args": args, "original_request_id": approved["request_id"],
            "policy_version_id": approved["policy_version_id"] or "",
            "policy_content_hash": approved["policy_content_hash"] or "", "reason": "cached"}
    body.update(over)
    return body


@pytest.fixture(scope="module")
def own():
    """A vault of this module's own: its dev tenant holds the catch-all policies these tests register, and a
    mint chain ends MINT_MAX_AGE seconds after its root approval."""
    v = started(Vault(VAULT_MINT_MAX_AGE_SECONDS=str(MINT_MAX_AGE)))
    v.catch_alls = []
    yield v
    v.cleanup()


def register_catch_all(own: Vault, policy_id: str, rego: str) -> dict:
    """A policy for every tool of `own`'s tenant (remembered: every later call there consults it)."""
    registered = own.register(policy_id, [], rego=rego)
    own.catch_alls.append(policy_id)
    return registered


# --- all applicable policies decide; the most restrictive wins -----------------------------------------------

def test_a_lenient_catch_all_named_in_context_cannot_override_a_tool_freeze(own):
    tool = unique("wire")
    lenient = register_catch_all(own, unique("lenient"), APPROVE_ALL)
    freeze = own.register(unique("freeze"), [tool], rego=FREEZE)
    sdk = own.client()
    try:
        with pytest.raises(ClearanceDeniedError) as denied:
            sdk.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 5, "to": "acct_9"},
                                                   context={"policy_id": lenient["policy_id"]}))
    finally:
        sdk.close()
    with own.http() as h:
        status = h.get(f"/clearance-status/{denied.value.request_id}").json()
        assert (status["status"], status["reason_code"], status["token"]) == ("denied", "wire_freeze", None)
        assert status["policy_version_id"] == freeze["policy_version_id"], "the freeze decides"
        consulted = event_for(h, denied.value.request_id)["action_metadata"]["policies_consulted"]
    assert {(c["policy_id"], c["decision"]) for c in consulted} == {
        (freeze["policy_id"], "deny"), (lenient["policy_id"], "approve")}


def test_naming_a_policy_adds_it_and_never_removes_one(own):
    tool = unique("refund")
    own.register(unique("p"), [tool], rego=UP_TO_100)
    review_everything = own.register(unique("strict"), [unique("other_tool")], rego='package sep\ndecision := "review"\n')
    with own.http() as h:
        plain = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 5}}).json()
        assert plain["status"] == "approved"
        # The agent names a policy that covers another tool: it is consulted, and can only restrict.
        named = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 5},
                                                   "context": {"policy_id": review_everything["policy_id"]}}).json()
        assert named["status"] == "pending_review" and named["token"] is None
        # A name that does not exist adds nothing, and removes nothing.
        ghost = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 500},
                                                   "context": {"policy_id": "no-such-policy"}}).json()
        assert ghost["status"] == "denied"
        # Unnamed, a policy for another tool is not consulted.
        consulted = event_for(h, plain["request_id"])["action_metadata"]["policies_consulted"]
        named_consulted = event_for(h, named["request_id"])["action_metadata"]["policies_consulted"]
    assert review_everything["policy_id"] not in {c["policy_id"] for c in consulted}
    assert {"policy_id": review_everything["policy_id"], "version": 1, "decision": "review",
            "policy_version_id": review_everything["policy_version_id"]} in named_consulted


def test_a_named_policy_alone_never_decides_an_unpoliced_tool(vault, http):
    """The shared tenant has no catch-all: a tool without policy stays `no_policy_for_tool`, whatever is named."""
    other = vault.register(unique("p"), [unique("refund")], rego=APPROVE_ALL)
    body = http().post("/request-clearance", json={"tool_name": unique("unpoliced"), "tool_args": {},
                                                   "context": {"policy_id": other["policy_id"]}}).json()
    assert (body["status"], body["reason_code"], body["token"]) == ("denied", "no_policy_for_tool", None)


def test_a_cosmetic_edit_of_a_permissive_policy_does_not_make_it_decide(vault, client, http):
    """"Newest wins" is gone: re-registering the permissive policy (a comment only, same decisions) made it the
    newest and therefore the deciding one; now both policies decide and the stricter one wins."""
    tool = unique("wire")
    permissive = unique("permissive")
    vault.register(permissive, [tool], rego=APPROVE_ALL)
    strict = vault.register(unique("strict"), [tool], rego=UP_TO_100)
    sdk = client()
    request = ClearanceRequest(tool_name=tool, tool_args={"amount": 5000})
    with pytest.raises(ClearanceDeniedError):
        sdk.request_clearance(request)
    edited = vault.register(permissive, [tool], rego=APPROVE_ALL + "# reworded, same rules\n")
    assert edited["version"] == 2, edited
    with pytest.raises(ClearanceDeniedError) as denied:
        sdk.request_clearance(request)
    status = http().get(f"/clearance-status/{denied.value.request_id}").json()
    assert status["policy_version_id"] == strict["policy_version_id"]
    assert sdk.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 50})).status == "approved"


def test_review_beats_approve_and_deny_beats_review_and_the_judge(vault, http):
    """Each stricter policy is registered first, so "newest wins" would have picked the lenient one."""
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=REVIEW_OVER_100)
    vault.register(unique("p"), [tool], rego=APPROVE_ALL)
    h = http()
    post = lambda amount: h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": amount}}).json()
    assert post(50)["status"] == "approved"
    assert post(500)["status"] == "pending_review"
    vault.register(unique("p"), [tool], rego=UP_TO_100)
    assert post(500)["status"] == "denied"
    assert post(50)["status"] == "approved"
    # Plain-English rules (the judge) next to a rule that denies: denied inline, never queued for the judge.
    judged = unique("email")
    vault.register(unique("p"), [judged], rego=FREEZE)
    vault.register(unique("p"), [judged], rules=["No bulk email"])
    body = h.post("/request-clearance", json={"tool_name": judged, "tool_args": {"to": "x"}}).json()
    assert (body["status"], body["reason_code"], body["token"]) == ("denied", "wire_freeze", None)


def test_judge_routed_calls_still_reach_the_judge(vault, http):
    """Approve + plain-English rules: the judge decides (the development stub asks a human), against the deciding
    policy, and the final ledger event lists both policies."""
    tool = unique("email")
    english = vault.register(unique("p"), [tool], rules=["No bulk email"])
    approve = vault.register(unique("p"), [tool], rego=APPROVE_ALL)
    h = http()
    first = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"to": "a@b.c"}}).json()
    assert first["status"] in ("processing", "pending_review") and first["token"] is None
    assert first["policy_version_id"] == english["policy_version_id"]
    with reviewer(vault) as r:
        review = pending_review_for(r, tool)
    assert review["request_id"] == first["request_id"]
    event = wait_for(lambda: next((e for e in ledger(h) if e["request_id"] == first["request_id"]), None),
                     what="the judge's ledger event")
    consulted = {c["policy_version_id"]: c["decision"] for c in event["action_metadata"]["policies_consulted"]}
    assert consulted == {english["policy_version_id"]: "judge", approve["policy_version_id"]: "approve"}


def test_the_ledger_lists_every_policy_consulted(own):
    tool = unique("refund")
    specific = own.register(unique("p"), [tool], rego=UP_TO_100)
    catch_all = register_catch_all(own, unique("all"), APPROVE_ALL)
    with own.http() as h:
        approved = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()
        assert approved["status"] == "approved"
        assert approved["policy_version_id"] == specific["policy_version_id"], "a tool-specific policy decides"
        event = event_for(h, approved["request_id"])
    assert event["policy_version_id"] == specific["policy_version_id"]
    consulted = event["action_metadata"]["policies_consulted"]
    by_id = {c["policy_id"]: c for c in consulted}
    assert len(consulted) == len(by_id) and set(by_id) == {specific["policy_id"], *own.catch_alls}
    assert by_id[specific["policy_id"]] == {"policy_id": specific["policy_id"], "version": specific["version"],
                                            "policy_version_id": specific["policy_version_id"], "decision": "approve"}
    assert by_id[catch_all["policy_id"]]["policy_version_id"] == catch_all["policy_version_id"]
    assert all(c["decision"] == "approve" for c in consulted)


# --- /mint-token mints only what the rules would approve now ---------------------------------------------------

def test_mint_after_a_new_deny_policy_is_refused(vault, client, http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=UP_TO_100)
    sdk = client(decision_cache_enabled=True)
    request = ClearanceRequest(tool_name=tool, tool_args={"amount": 40, "to": "acct_1"})
    first = sdk.request_clearance(request)
    assert first.status == "approved" and first.policy_version_id, "a rules approval is cached"
    assert sdk.request_clearance(request).token, "the cache mints while the rules approve"
    vault.register(unique("freeze"), [tool], rego=FREEZE)
    h = http()
    before = written_for(h, tool)
    with pytest.raises(VaultConnectionError, match="409"):
        sdk.request_clearance(request)
    direct = h.post("/mint-token", json={"tool_name": tool, "tool_args": request.tool_args,
                                         "original_request_id": first.request_id})
    assert_error(direct, 409, "conflict")
    assert written_for(h, tool) == before, "a refused mint writes nothing"
    sdk.clear_cache()
    with pytest.raises(ClearanceDeniedError):
        sdk.request_clearance(request)


def test_a_reviewer_approval_is_never_cached_or_minted(vault, client, http):
    tool = unique("wire")
    vault.register(unique("p"), [tool], rego=REVIEW_OVER_100)
    sdk = client(decision_cache_enabled=True)
    request = ClearanceRequest(tool_name=tool, tool_args={"amount": 300, "to": "acct_2"})
    h = http()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(sdk.request_clearance, request)
        with reviewer(vault) as r:
            review = pending_review_for(r, tool)
        decided = decide_review(vault, review["request_id"], True)
        approved = future.result(timeout=60)
    assert approved.status == "approved" and approved.token and approved.request_id == review["request_id"]
    assert not decided["policy_version_id"], "the review decision's answer is not cacheable"
    assert not approved.policy_version_id, "nor is the status poll the SDK resolved it with"
    status = h.get(f"/clearance-status/{review['request_id']}").json()
    assert status["status"] == "approved" and status["token"] and not status["policy_version_id"]

    # The same call again goes back to the vault as a new request (a human decides again), not to /mint-token.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        again = pool.submit(sdk.request_clearance, request)
        with reviewer(vault) as r:
            second = pending_review_for(r, tool)
        assert second["request_id"] != review["request_id"]
        decide_review(vault, second["request_id"], False)
        with pytest.raises(ClearanceDeniedError):
            again.result(timeout=60)
    assert not [e for e in entries_for(h, tool) if e["action_category"] == "token.minted"]

    before = written_for(h, tool)
    r = h.post("/mint-token", json={"tool_name": tool, "tool_args": request.tool_args,
                                    "original_request_id": review["request_id"]})
    assert_error(r, 409, "conflict")
    assert "reviewer" in r.json()["error"]["message"]
    assert written_for(h, tool) == before


def test_a_mint_chain_ends_at_the_root_approvals_max_age(own):
    v = own
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=UP_TO_100)
    args = {"amount": 9}
    with v.http() as h:
        root = h.post("/request-clearance", json={"tool_name": tool, "tool_args": args}).json()
        approved_at = time.monotonic()
        assert root["status"] == "approved"
        first = h.post("/mint-token", json=mint_body(tool, args, root))
        assert first.status_code == 200, first.text
        chained = h.post("/mint-token", json=mint_body(tool, args, first.json()))
        assert chained.status_code == 200, chained.text
        roots = {event_for(h, m.json()["request_id"])["action_metadata"]["root_approved_at"] for m in (first, chained)}
        assert len(roots) == 1, "a mint from a minted request keeps the root's approval time"
        time.sleep(max(0.0, approved_at + MINT_MAX_AGE + 1.0 - time.monotonic()))
        before = written_for(h, tool)
        # Minting from a minted request counts from the root approval, not from the mint.
        late_chain = h.post("/mint-token", json=mint_body(tool, args, chained.json()))
        assert_error(late_chain, 409, "conflict")
        assert "VAULT_MINT_MAX_AGE_SECONDS" in late_chain.json()["error"]["message"]
        assert_error(h.post("/mint-token", json=mint_body(tool, args, root)), 409, "conflict")
        assert written_for(h, tool) == before
        # A fresh request is a fresh root.
        again = h.post("/request-clearance", json={"tool_name": tool, "tool_args": args}).json()
        assert h.post("/mint-token", json=mint_body(tool, args, again)).status_code == 200


def test_the_sdk_cache_stops_minting_after_the_max_age(own):
    v = own
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=UP_TO_100)
    sdk = v.client(decision_cache_enabled=True, decision_cache_ttl_seconds=600)
    try:
        request = ClearanceRequest(tool_name=tool, tool_args={"amount": 3})
        first = sdk.request_clearance(request)
        started_at = time.monotonic()
        assert sdk.request_clearance(request).request_id != first.request_id
        time.sleep(max(0.0, started_at + MINT_MAX_AGE + 1.0 - time.monotonic()))
        with pytest.raises(VaultConnectionError, match="409"):
            sdk.request_clearance(request)
    finally:
        sdk.close()


# --- exact binding ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def approve_all_tool(vault):
    tool = unique("acct")
    vault.register(unique("p"), [tool], rego=APPROVE_ALL)
    return tool


def _approved(h, tool: str, args: dict) -> dict:
    body = h.post("/request-clearance", json={"tool_name": tool, "tool_args": args}).json()
    assert body["status"] == "approved", body
    return body


def test_consume_requires_the_call(vault, approve_all_tool):
    tool, args = approve_all_tool, {"amount": 1, "to": "acct_3"}
    with vault.http() as h:
        token = _approved(h, tool, args)["token"]
        for body in ({"token": token}, {"token": token, "tool_name": tool}, {"token": token, "tool_args": args},
                     {"token": token, "tool_name": tool, "tool_args": None},
                     {"token": token, "tool_name": tool, "tool_args": [1]}):
            assert_error(h.post("/consume-token", json=body), 422, "invalid_request")
        ok = h.post("/consume-token", json={"token": token, "tool_name": tool, "tool_args": args})
        assert ok.status_code == 200, "refused presentations do not burn the token"


def test_integers_beyond_2_53_are_refused_everywhere(vault, approve_all_tool):
    tool = approve_all_tool
    with vault.http() as h:
        before = written_for(h, tool)
        raw = ('{"tool_name": %s, "tool_args": {"acct": %d}}' % (json.dumps(tool), BIG)).encode()
        assert_error(h.post("/request-clearance", content=raw, headers=JSON), 422, "invalid_request")
        nested = ('{"tool_name": %s, "tool_args": {"x": {"y": [1, -%d]}}}' % (json.dumps(tool), BIG)).encode()
        assert_error(h.post("/request-clearance", content=nested, headers=JSON), 422, "invalid_request")
        assert written_for(h, tool) == before, "nothing was decided"

        # A token for the double 2^53 (what Rego saw and the hash means) cannot be spent with the integer
        # 2^53 + 1, which JCS would have written as the same number.
        issued = h.post("/request-clearance", content=(
            '{"tool_name": %s, "tool_args": {"acct": 9007199254740992.0}}' % json.dumps(tool)).encode(), headers=JSON).json()
        assert issued["status"] == "approved", issued
        token = issued["token"]
        spend = ('{"token": "%s", "tool_name": %s, "tool_args": {"acct": %d}}' % (token, json.dumps(tool), BIG)).encode()
        assert_error(h.post("/consume-token", content=spend, headers=JSON), 422, "invalid_request")
        mint = ('{"tool_name": %s, "tool_args": {"acct": %d}, "original_request_id": "%s"}'
                % (json.dumps(tool), BIG, issued["request_id"])).encode()
        assert_error(h.post("/mint-token", content=mint, headers=JSON), 422, "invalid_request")
        exact = ('{"token": "%s", "tool_name": %s, "tool_args": {"acct": 9007199254740992.0}}'
                 % (token, json.dumps(tool))).encode()
        assert h.post("/consume-token", content=exact, headers=JSON).status_code == 200


def test_non_finite_numbers_are_refused(vault, approve_all_tool):
    tool = json.dumps(approve_all_tool)
    with vault.http() as h:
        for raw in ('{"tool_name": %s, "tool_args": {"amount": 1e400}}' % tool,
                    '{"tool_name": %s, "tool_args": {"amount": -1e400}}' % tool):
            assert_error(h.post("/request-clearance", content=raw.encode(), headers=JSON), 422, "invalid_request")


@pytest.mark.parametrize("args", [
    '{"to": "acct_attacker", "to": "acct_1"}',
    '{"amount": 1, "payee": {"iban": "X", "iban": "Y"}}',
    '{"batch": [{"to": "a"}, {"to": "b", "to": "c"}]}',
    '{"to": "a", "\\u0074o": "b"}',
])
def test_duplicate_keys_are_refused_everywhere(vault, approve_all_tool, args):
    tool = json.dumps(approve_all_tool)
    with vault.http() as h:
        before = written_for(h, approve_all_tool)
        raw = '{"tool_name": %s, "tool_args": %s}' % (tool, args)
        assert_error(h.post("/request-clearance", content=raw.encode(), headers=JSON), 422, "invalid_request")
        assert written_for(h, approve_all_tool) == before
        # Consume and mint: a token for the last-wins reading cannot be spent with the duplicated spelling.
        last_wins = json.loads(args)
        issued = _approved(h, approve_all_tool, last_wins)
        spend = '{"token": "%s", "tool_name": %s, "tool_args": %s}' % (issued["token"], tool, args)
        assert_error(h.post("/consume-token", content=spend.encode(), headers=JSON), 422, "invalid_request")
        mint = '{"tool_name": %s, "tool_args": %s, "original_request_id": "%s"}' % (tool, args, issued["request_id"])
        assert_error(h.post("/mint-token", content=mint.encode(), headers=JSON), 422, "invalid_request")
        ok = h.post("/consume-token", json={"token": issued["token"], "tool_name": approve_all_tool,
                                            "tool_args": last_wins})
        assert ok.status_code == 200, ok.text
