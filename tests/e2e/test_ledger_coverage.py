"""Every kind of decision lands in the tenant's ledger exactly once, and the SDK detects any edited field."""

from __future__ import annotations

import copy

import pytest
from ledgix_python import ClearanceDeniedError
from ledgix_python.models import ClearanceRequest, PolicyRegistration

from conftest import APPROVE_SMALL, ledger, pending_review_for, unique, wait_for


@pytest.fixture(scope="module")
def history(vault):
    """A fresh tenant with one decision of every kind, and its ledger."""
    keys = vault.new_tenant_keys()
    tenant_id, key = keys["tenant_id"], keys["agent"]
    tool, judged_tool = unique("refund"), unique("email")
    policy_id = unique("p")
    vault.register(policy_id, [tool], rego=APPROVE_SMALL, api_key=keys["tenant_admin"])
    sdk = vault.client(key)
    cached = vault.client(key, decision_cache_enabled=True)
    tenant_admin = vault.client(keys["tenant_admin"])
    h = vault.http(key)
    reviewer = vault.http(keys["reviewer"])
    ids: dict[str, str] = {}

    approved = cached.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 1, "ratio": 0.25},
                                                         agent_id="agent-l", session_id="sess-l"))
    ids["approved"] = approved.request_id
    ids["minted"] = cached.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 1, "ratio": 0.25},
                                                              agent_id="agent-l", session_id="sess-l")).request_id
    with pytest.raises(ClearanceDeniedError) as denied:
        sdk.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 5000}))
    ids["denied"] = denied.value.request_id
    ids["no_policy"] = h.post("/request-clearance", json={"tool_name": unique("unguarded"), "tool_args": {}}).json()["request_id"]
    for outcome in ("review_approved", "review_denied"):
        pending = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 500, "o": outcome}}).json()
        assert pending["status"] == "pending_review"
        ids[outcome] = pending["request_id"]
        r = reviewer.post(f"/reviews/{pending['request_id']}/decision",
                   json={"approved": outcome == "review_approved", "review_reason": "e2e"})
        assert r.status_code == 200, r.text
    tenant_admin.register_policy(PolicyRegistration(policy_id=unique("pj"), rules=["Only to customers"], tools=[judged_tool]))
    judged = h.post("/request-clearance", json={"tool_name": judged_tool, "tool_args": {"to": "x"}}).json()
    ids["judged"] = judged["request_id"]
    pending_review_for(reviewer, judged_tool)
    wait_for(lambda: any(e["request_id"] == ids["judged"] for e in ledger(h)), what="the judge's ledger event")
    entries = ledger(h)
    yield {"ids": ids, "entries": entries, "client": sdk, "http": h, "tool": tool, "policy_id": policy_id,
           "tenant_id": tenant_id}
    for c in (sdk, cached, tenant_admin):
        c.close()
    h.close()
    reviewer.close()


def _by_request(entries, request_id):
    return [e for e in entries if e["request_id"] == request_id]


def test_each_decision_is_recorded_exactly_once(history):
    entries, ids = history["entries"], history["ids"]
    statuses = {kind: [(e["decision_status"], e["approved"]) for e in _by_request(entries, rid)] for kind, rid in ids.items()}
    assert statuses["approved"] == [("approved", True)]
    assert statuses["minted"] == [("approved", True)]
    assert statuses["denied"] == [("denied", False)]
    assert statuses["no_policy"] == [("denied", False)]
    assert statuses["review_approved"] == [("approved_pending_review", False), ("approved", True)]
    assert statuses["review_denied"] == [("approved_pending_review", False), ("denied", False)]
    assert statuses["judged"] == [("approved_pending_review", False)]
    assert len(entries) == sum(len(v) for v in statuses.values()), "nothing else was written"

    minted = _by_request(entries, ids["minted"])[0]
    assert minted["action_metadata"]["original_request_id"] == ids["approved"]
    approved = _by_request(entries, ids["approved"])[0]
    assert approved["tool_name"] == history["tool"] and approved["tool_args"] == {"amount": 1, "ratio": 0.25}
    assert approved["agent_id"] == "agent-l" and approved["policy_id"] == history["policy_id"]
    assert approved["policy_version_id"] and approved["policy_content_hash"]


def test_sequence_numbers_are_ordered_and_unique(history):
    seqs = [e["seq"] for e in history["entries"]]
    assert seqs == sorted(set(seqs)), seqs
    assert len({e["event_uuid"] for e in history["entries"]}) == len(seqs)


def test_the_whole_ledger_verifies(history):
    client, entries = history["client"], history["entries"]
    result = client.verify_ledger_proof(copy.deepcopy(entries), [])
    assert result.intact, result.error
    assert result.verified_entries == len(entries)
    assert result.coverage_note is None, "every event body is hashed, none redacted"
    assert result.latest_leaf_hash == entries[-1]["leaf_hash"]


def _flip_char(text: str, at: int) -> str:
    return text[:at] + ("B" if text[at] != "B" else "C") + text[at + 1:]


TAMPERS = {
    "tool_args": lambda e: e["tool_args"].update(injected=1),
    "tool_name": lambda e: e.update(tool_name=e["tool_name"] + "x"),
    "reason": lambda e: e.update(reason=e["reason"] + "."),
    "approved": lambda e: e.update(approved=not e["approved"]),
    "agent_id": lambda e: e.update(agent_id="someone-else"),
    "policy_id": lambda e: e.update(policy_id="other-policy"),
    "policy_version_id": lambda e: e.update(policy_version_id="00000000-0000-0000-0000-000000000000"),
    "accepted_at": lambda e: e.update(accepted_at="2000-01-01T00:00:00Z"),
    "action_category": lambda e: e.update(action_category="something.else"),
    "action_metadata": lambda e: e["action_metadata"].update(extra="x"),
    "request_id": lambda e: e.update(request_id="00000000-0000-0000-0000-000000000000"),
    "event_hash": lambda e: e.update(event_hash="00" * 32),
    "leaf_hash": lambda e: e.update(leaf_hash="00" * 32),
    "receipt_signature": lambda e: e.update(receipt_signature=_flip_char(e["receipt_signature"], 10)),
}


@pytest.mark.parametrize("field", sorted(TAMPERS))
def test_any_edited_field_breaks_verification(history, field):
    entries = copy.deepcopy(history["entries"])
    target = next(e for e in entries if e["request_id"] == history["ids"]["approved"])
    TAMPERS[field](target)
    result = history["client"].verify_ledger_proof(entries, [])
    assert not result.intact


def test_other_tenants_see_none_of_it(vault, history):
    _, other_key = vault.new_tenant()
    with vault.http(other_key) as other:
        seen = {e["request_id"] for e in ledger(other)}
        assert not seen & set(history["ids"].values())
        for rid in history["ids"].values():
            assert other.get(f"/clearance-status/{rid}").status_code == 404
            assert other.get("/ledger/proof/inclusion", params={"request_id": rid}).status_code == 404
