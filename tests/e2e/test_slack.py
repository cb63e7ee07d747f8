"""Deciding from Slack, end to end, against the Slack emulator (tests/aws/slack_emulator.py) standing in for
hooks.slack.com on loopback (admitted by VAULT_ALLOW_PRIVATE_WEBHOOK_URLS, as in test_notifications.py): a pending
review arrives as a Block Kit message with Approve/Deny buttons; a click, built and signed exactly as Slack would,
decides it for the agent's waiting SDK call and replaces the message; stale, forged and unsigned clicks are
refused with 401; a click by someone who is not a reviewer decides nothing. Runs on both backends."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from ledgix_python.models import ClearanceRequest

from conftest import WaitingClearance, assert_error, ledger, unique, wait_for
from test_notifications import REVIEW_ALWAYS, notify_vault  # noqa: F401 - notify_vault is a fixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aws"))
from slack_emulator import SlackEmulator  # noqa: E402

REVIEWER = "U0E2EREVIEW"


@pytest.fixture(scope="module")
def slack():
    s = SlackEmulator()
    yield s
    s.close()


@pytest.fixture()
def slack_settings(notify_vault, slack):
    """The dev tenant's Slack settings pointing at the emulator; removed afterwards."""
    saved = put_slack(notify_vault, slack)
    yield saved
    with notify_vault.tenant_admin() as admin:
        admin.put("/notification-settings", json={"webhooks": []})


def put_slack(v, slack: SlackEmulator, **fields) -> dict:
    body = {"webhook_url": slack.webhook_url, "signing_secret": slack.signing_secret,
            "reviewer_user_ids": [REVIEWER], **fields}
    with v.tenant_admin() as admin:
        r = admin.put("/notification-settings", json={"slack": body})
    assert r.status_code == 200, r.text
    return r.json()


def post_click(v, body: bytes, headers: dict) -> httpx.Response:
    """The interaction request as Slack sends it: no API key, the form body, Slack's headers."""
    return httpx.post(f"{v.url}/slack/interactions", content=body, headers=headers, timeout=30)


def message_for(slack: SlackEmulator, tool: str, event_text: str = "Review needed") -> dict:
    """The message about `tool` the incoming webhook received (the pending one by default)."""
    def find():
        return next((m for m in slack.messages if tool in json.dumps(m) and event_text in m["text"]), None)

    return wait_for(find, timeout=30, what=f"a Slack message about {tool}")


def texts(message: dict) -> str:
    out: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            if isinstance(v.get("text"), str):
                out.append(v["text"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(message)
    return "\n".join(out)


def pending_by_http(v, slack: SlackEmulator, args: dict | None = None) -> tuple[str, dict]:
    """A request routed to review (the agent not waiting): its id and its Slack message."""
    tool = unique("wire")
    v.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    with v.http() as agent:
        r = agent.post("/request-clearance", json={"tool_name": tool, "tool_args": args or {"amount": 1}})
    assert r.status_code == 200 and r.json()["status"] == "pending_review", r.text
    return r.json()["request_id"], message_for(slack, tool)


def deliveries_for(v, request_id: str) -> list[dict]:
    with v.tenant_admin() as admin:
        r = admin.get("/notification-deliveries", params={"limit": 200})
    assert r.status_code == 200, r.text
    return [d for d in r.json()["deliveries"] if d["request_id"] == request_id]


def status_of(v, request_id: str) -> str:
    with v.http() as agent:
        return agent.get(f"/clearance-status/{request_id}").json()["status"]


# --- settings ------------------------------------------------------------------------------------------------

def test_slack_settings_are_for_the_tenant_admin_and_the_signing_secret_is_write_only(notify_vault, slack):
    try:
        saved = put_slack(notify_vault, slack)
        assert slack.signing_secret not in json.dumps(saved)
        # The incoming-webhook URL's path is a credential too: only scheme and host are shown.
        shown = slack.webhook_url.split("/", 3)
        assert slack.webhook_url not in json.dumps(saved)
        assert saved["slack"] == {"webhook_url": f"{shown[0]}//{shown[2]}/…", "reviewer_user_ids": [REVIEWER],
                                  "events": ["review.pending", "review.decided", "review.expired"],
                                  "signing_secret_set": True}
        with notify_vault.tenant_admin() as admin:
            got = admin.get("/notification-settings")
            assert got.status_code == 200 and got.json() == saved and slack.signing_secret not in got.text
            # Sent again without the signing secret and the URL: both kept.
            kept = admin.put("/notification-settings", json={"slack": {
                "reviewer_user_ids": [REVIEWER, "W0E2EOTHER"]}})
            assert kept.status_code == 200, kept.text
            assert kept.json()["slack"]["signing_secret_set"] is True
            assert kept.json()["slack"]["reviewer_user_ids"] == [REVIEWER, "W0E2EOTHER"]
            for bad in [{"reviewer_user_ids": []}, {"reviewer_user_ids": ["ada"]},
                        {"webhook_url": "https://169.254.169.254/latest/meta-data/"},
                        {"webhook_url": "https://10.0.0.7/services/x"}, {"signing_secret": "short"}]:
                body = {"webhook_url": slack.webhook_url, "reviewer_user_ids": [REVIEWER], **bad}
                assert_error(admin.put("/notification-settings", json={"slack": body}), 422, "invalid_request")
        for key in (notify_vault.api_key, notify_vault.reviewer_key):
            with notify_vault.http(key) as other:
                r = other.put("/notification-settings", json={"slack": {
                    "webhook_url": slack.webhook_url, "signing_secret": "x" * 20, "reviewer_user_ids": [REVIEWER]}})
                assert_error(r, 403, "forbidden_role")
    finally:
        with notify_vault.tenant_admin() as admin:
            admin.put("/notification-settings", json={"webhooks": []})


# --- a click -------------------------------------------------------------------------------------------------

def test_a_reviewer_approves_in_slack_and_the_waiting_sdk_call_returns_approved(notify_vault, slack, slack_settings):
    tenant_id = notify_vault.printed("LEDGIX_DEV_TENANT_ID")
    tool = unique("wire")
    notify_vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    args = {"amount": 4200, "to": "<!channel> Acme & Co"}
    waiting = WaitingClearance(notify_vault, ClearanceRequest(tool_name=tool, tool_args=args))
    message = message_for(slack, tool)

    # The Block Kit message: the call in detail, and the two buttons naming the tenant and the request.
    blocks = message["blocks"]
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["text"] == f"Review needed: {tool}"
    shown = texts(message)
    assert f"`{tool}`" in shown and '"amount": 4200' in shown, shown
    assert "&lt;!channel&gt; Acme &amp; Co" in shown and "<!channel>" not in shown
    buttons = {b["action_id"]: b for b in blocks[-1]["elements"]}
    assert blocks[-1]["type"] == "actions" and set(buttons) == {"ledgix_approve", "ledgix_deny"}
    assert (buttons["ledgix_approve"]["text"]["text"], buttons["ledgix_approve"]["style"]) == ("Approve", "primary")
    assert (buttons["ledgix_deny"]["text"]["text"], buttons["ledgix_deny"]["style"]) == ("Deny", "danger")
    value = buttons["ledgix_approve"]["value"]
    assert value == buttons["ledgix_deny"]["value"] and value.startswith(f"{tenant_id}:")
    request_id = value.split(":", 1)[1]
    assert f"`{request_id}`" in shown
    assert slack.refused() == [], slack.refused()

    # The reviewer clicks Approve: Slack signs the request and posts it to the vault.
    payload = slack.interaction(message, "ledgix_approve", REVIEWER, user_name="ada")
    body, headers = slack.signed(payload)
    r = post_click(notify_vault, body, headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"outcome": "approved", "request_id": request_id}

    waiting.approved()

    # The ledger names the Slack user as the reviewer; the deciding "key" is the Slack user, not the agent's.
    with notify_vault.reviewer() as reviewer:
        event = next(e for e in ledger(reviewer) if e["request_id"] == request_id
                     and e["action_category"] == "review.decision")
    assert event["action_metadata"]["reviewer_name"] == f"ada (Slack {REVIEWER})"
    assert event["action_metadata"]["reviewer_key_id"] == f"slack:{REVIEWER}"

    # The message is replaced by its outcome through response_url: details kept, buttons gone.
    update = wait_for(lambda: slack.updates(payload["response_url"]), what="the message update")[0]
    assert update["replace_original"] is True
    assert all(b["type"] != "actions" for b in update["blocks"])
    assert f"*Approved* by ada (Slack {REVIEWER})" in texts(update) and f"`{tool}`" in texts(update)
    # And the channel is told (review.decided), as webhooks are.
    decided = message_for(slack, tool, "Approved")
    assert "actions" not in json.dumps(decided)
    mine = wait_for(lambda: (lambda ds: ds if ds and all(d["status"] == "delivered" for d in ds) else None)(
        deliveries_for(notify_vault, request_id)), what="every Slack delivery delivered")
    assert {(d["target_id"], d["event"]) for d in mine} == {("slack", "review.pending"), ("slack", "review.decided"),
                                                            ("slack_response", "review.decided")}, mine

    # A late click finds it decided.
    late = slack.interaction(message, "ledgix_deny", REVIEWER)
    r = post_click(notify_vault, *slack.signed(late))
    assert r.status_code == 200 and r.json()["outcome"] == "not_pending", r.text
    assert status_of(notify_vault, request_id) == "approved"


def test_stale_forged_and_unsigned_interactions_are_refused(notify_vault, slack, slack_settings):
    request_id, message = pending_by_http(notify_vault, slack)
    payload = slack.interaction(message, "ledgix_approve", REVIEWER)
    body, headers = slack.signed(payload)
    stale_body, stale = slack.signed(payload, timestamp=int(time.time()) - 6 * 60)
    _, other_secret = slack.signed(payload, secret="not-the-apps-signing-secret")
    cases = {
        "a timestamp 6 minutes old": (stale_body, stale),
        "a forged signature": (body, {**headers, "X-Slack-Signature": "v0=" + "0" * 64}),
        "another secret": (body, other_secret),
        "another body": (body.replace(b"ledgix_approve", b"ledgix_deny"), headers),
        "no signature": (body, {k: v for k, v in headers.items() if k != "X-Slack-Signature"}),
        "nothing Slack sends": (body, {"Content-Type": headers["Content-Type"]}),
    }
    for what, (b, h) in cases.items():
        r = post_click(notify_vault, b, h)
        assert r.status_code == 401, f"{what}: {r.status_code} {r.text}"
        assert_error(r, 401, "unauthorized")
    # An API key is no substitute for Slack's signature.
    r = httpx.post(f"{notify_vault.url}/slack/interactions", content=body,
                   headers={"Content-Type": headers["Content-Type"], "X-Vault-API-Key": notify_vault.reviewer_key})
    assert_error(r, 401, "unauthorized")
    time.sleep(1)
    assert status_of(notify_vault, request_id) == "pending_review"
    assert slack.updates(payload["response_url"]) == []
    # The genuine click still works (Deny this time).
    deny = slack.interaction(message, "ledgix_deny", REVIEWER)
    r = post_click(notify_vault, *slack.signed(deny))
    assert r.status_code == 200 and r.json()["outcome"] == "denied", r.text
    assert status_of(notify_vault, request_id) == "denied"
    update = wait_for(lambda: slack.updates(deny["response_url"]), what="the message update")[0]
    assert "*Denied* by" in texts(update)


def test_a_click_by_someone_who_is_not_a_reviewer_decides_nothing(notify_vault, slack, slack_settings):
    request_id, message = pending_by_http(notify_vault, slack)
    payload = slack.interaction(message, "ledgix_approve", "U0STRANGER", user_name="mallory")
    r = post_click(notify_vault, *slack.signed(payload))
    assert r.status_code == 200, r.text
    assert r.json() == {"outcome": "not_a_reviewer", "request_id": request_id}
    # Only the clicking user is told; the message keeps its buttons.
    note = wait_for(lambda: slack.updates(payload["response_url"]), what="the note to the user")[0]
    assert note["response_type"] == "ephemeral" and note["replace_original"] is False
    assert "not a reviewer" in note["text"]
    assert status_of(notify_vault, request_id) == "pending_review"
    with notify_vault.reviewer() as reviewer:
        assert not [e for e in ledger(reviewer) if e["request_id"] == request_id
                    and e["action_category"] == "review.decision"]
        # Left decided, so that it does not expire into a later test's notifications.
        assert reviewer.post(f"/reviews/{request_id}/decision", json={"approved": False}).status_code == 200
