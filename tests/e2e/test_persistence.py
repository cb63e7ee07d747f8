"""State that must survive a restart (graceful) and a crash (SIGKILL) on the same data directory."""

from __future__ import annotations

import uuid

from conftest import APPROVE_SMALL, ledger, unique, wait_for


def test_security_state_survives_a_restart(restartable_vault):
    v = restartable_vault
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE_SMALL)
    with v.admin() as admin:
        tenant = admin.post("/admin/tenants", json={"name": "persist"}).json()
        extra = admin.post(f"/admin/tenants/{tenant['tenant_id']}/api-keys").json()
        assert admin.delete(f"/admin/api-keys/{extra['key_id']}").status_code == 204
    with v.http() as h:
        burned = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()["token"]
        assert h.post("/consume-token", json={"token": burned, "tool_name": tool, "tool_args": {"amount": 1}}).status_code == 200
        unused = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 2}}).json()["token"]
        pending = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 300}}).json()
        key = str(uuid.uuid4())
        first = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 3}},
                       headers={"Idempotency-Key": key})
    with v.tenant_admin() as tenant_admin:
        settings = tenant_admin.put("/review-settings", json={"minimum_confidence_bucket": "medium"})
        assert settings.status_code == 200

    v.restart()

    with v.http() as h, v.reviewer() as reviewer:
        r = h.post("/consume-token", json={"token": burned, "tool_name": tool, "tool_args": {"amount": 1}})
        assert r.status_code == 409 and r.json()["error"]["code"] == "token_replayed", "burned jtis stay burned"
        assert h.post("/consume-token", json={"token": unused, "tool_name": tool, "tool_args": {"amount": 2}}).status_code == 200, \
            "issued tokens stay valid"
        assert h.get(f"/clearance-status/{pending['request_id']}").json()["status"] == "pending_review"
        assert pending["request_id"] in [r["request_id"] for r in reviewer.get("/reviews").json()["reviews"]]
        decided = reviewer.post(f"/reviews/{pending['request_id']}/decision", json={"approved": True, "review_reason": "after"})
        assert decided.status_code == 200 and decided.json()["token"]
        again = h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 3}},
                       headers={"Idempotency-Key": key})
        assert again.status_code == 200 and again.json() == first.json(), "an idempotent retry spans a restart"
        assert sum(e["request_id"] == first.json()["request_id"] for e in ledger(h)) == 1
        assert reviewer.get("/review-settings").json() == {"minimum_confidence_bucket": "medium", "review_deadline_seconds": 86400}
    with v.http(tenant["api_key"]) as t:
        assert t.get("/policies").status_code == 200
    with v.http(extra["api_key"]) as revoked:
        assert revoked.get("/policies").status_code == 401, "a revoked key stays revoked"


def test_a_crash_loses_no_queued_decision_and_duplicates_none(restartable_vault):
    """Judge jobs accepted (status processing) before a SIGKILL are all decided exactly once after the restart."""
    v = restartable_vault
    tool = unique("email")
    v.register(unique("p"), [tool], rules=["Only to customers"])
    with v.http() as h:
        accepted = [h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"n": i}, "session_id": f"s{i % 3}"}).json()
                    for i in range(15)]
    assert all(a["status"] in ("processing", "pending_review") for a in accepted)
    v.kill()
    v.start()
    with v.http() as h:
        for a in accepted:
            wait_for(lambda: h.get(f"/clearance-status/{a['request_id']}").json()["status"] != "processing",
                     timeout=60, what=f"a decision for {a['request_id']}")
        entries = ledger(h)
        for a in accepted:
            mine = [e for e in entries if e["request_id"] == a["request_id"]]
            assert len(mine) == 1, f"{a['request_id']}: {len(mine)} ledger events"
            assert h.get(f"/clearance-status/{a['request_id']}").json()["status"] == "pending_review"
    client = v.client()
    try:
        result = client.verify_ledger_proof(entries, [])
        assert result.intact and result.verified_entries == len(entries), result.error
    finally:
        client.close()


def test_a_crash_keeps_every_answered_decision(restartable_vault):
    """Whatever the vault answered before a SIGKILL is in the ledger afterwards, unchanged (durable on commit)."""
    v = restartable_vault
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE_SMALL)
    with v.http() as h:
        answered = [h.post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": a}}).json()
                    for a in (1, 5000, 300, 2)]
        before = {e["request_id"]: e["event_hash"] for e in ledger(h)}
    v.kill()
    v.start()
    with v.http() as h:
        after = {e["request_id"]: e["event_hash"] for e in ledger(h)}
        for a in answered:
            assert a["request_id"] in after
            assert h.get(f"/clearance-status/{a['request_id']}").json()["status"] == a["status"]
    assert {k: after[k] for k in before} == before
