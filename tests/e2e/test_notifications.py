"""Reviewers are told: webhook notifications end to end. A receiver in this process (plain http on loopback, which
VAULT_ALLOW_PRIVATE_WEBHOOK_URLS admits for development) gets signed deliveries that the public SDK's
`verify_webhook` accepts; a receiver that fails is retried with the same delivery id; a vault killed with
deliveries outstanding delivers them after restart; addresses a tenant must not reach are refused. Runs on both
backends (on AWS the notifier long-polls an SQS queue of this module's own)."""

from __future__ import annotations

import json
import os
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ledgix_python import verify_webhook
from ledgix_python.models import ClearanceRequest

from conftest import (BACKEND, Vault, WaitingClearance, assert_error, aws_client, free_port, pending_review_for, started,
                      unique, wait_for)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aws"))

REVIEW_ALWAYS = 'package n\ndefault decision := "review"'
DENY_ALWAYS = 'package n\ndefault decision := "deny"\nreason_code := "never"'
SECRET = "whsec_" + uuid.uuid4().hex


class Receiver:
    """A webhook receiver: records every request (headers, raw body) and answers each path with the statuses
    scripted for it, in turn (200 once they run out)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[dict] = []
        self.script: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    statuses = receiver.script.get(self.path, [])
                    status = statuses.pop(0) if statuses else 200
                    receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body, "status": status})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def notify_env() -> dict[str, str]:
    """The development flag, a short anchor interval (the round that expires reviews and re-dispatches the outbox),
    and on AWS state of this module's own: every `ledgix dev --backend aws` process runs rounds over every tenant of
    its control plane and polls its notify queue, so sharing the suite's would hand this module's deliveries to
    vaults without the flag."""
    env = {"VAULT_ALLOW_PRIVATE_WEBHOOK_URLS": "true", "VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS": "2"}
    if BACKEND == "aws":
        from resources import fresh_database, hot_table

        env["DATABASE_URL"] = fresh_database(os.environ["DATABASE_URL"], f"ledgix_notify_{uuid.uuid4().hex[:8]}")
        env["VAULT_DYNAMODB_TABLE"] = hot_table(aws_client("dynamodb"), f"ledgix-notify-{uuid.uuid4().hex[:8]}")
        sqs = aws_client("sqs")
        dlq = sqs.create_queue(QueueName=unique("ledgix-notify-dlq"))["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        env["VAULT_NOTIFY_SQS_QUEUE_URL"] = sqs.create_queue(
            QueueName=unique("ledgix-notify"),
            Attributes={"VisibilityTimeout": "30",
                        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    return env


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def notify_vault():
    v = started(Vault(**notify_env()))
    yield v
    v.cleanup()


def put_webhooks(v: Vault, *webhooks: dict) -> dict:
    with v.tenant_admin() as admin:
        r = admin.put("/notification-settings", json={"webhooks": list(webhooks)})
    assert r.status_code == 200, r.text
    return r.json()


def deliveries(v: Vault) -> list[dict]:
    with v.tenant_admin() as admin:
        r = admin.get("/notification-deliveries", params={"limit": 200})
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def verified(request: dict, secret: str = SECRET) -> dict:
    """The delivery's JSON, after checking its signature with the SDK and its headers."""
    headers = request["headers"]
    assert verify_webhook(request["body"], headers["x-ledgix-signature"], secret), headers
    assert not verify_webhook(request["body"] + b" ", headers["x-ledgix-signature"], secret)
    body = json.loads(request["body"])
    assert headers["x-ledgix-event"] == body["event"]
    assert headers["x-ledgix-delivery"] == body["delivery_id"]
    assert headers["x-ledgix-timestamp"].isdigit()
    assert headers["content-type"] == "application/json"
    return body


# --- settings ------------------------------------------------------------------------------------------------

def test_settings_belong_to_the_tenant_admin_and_secrets_are_write_only(vault):
    # A public address literal: no DNS needed, and nothing is sent until a decision is made.
    hook = {"url": "https://93.184.216.34/ledgix", "secret": SECRET, "events": ["review.pending", "clearance.denied"]}
    saved = put_webhooks(vault, hook)
    assert SECRET not in json.dumps(saved)
    webhook = saved["webhooks"][0]
    assert webhook["id"].startswith("wh_") and webhook["secret_set"] is True
    assert webhook["events"] == ["review.pending", "clearance.denied"]
    with vault.tenant_admin() as admin:
        got = admin.get("/notification-settings")
        assert got.status_code == 200 and got.json() == saved and SECRET not in got.text
        # The secret is kept when the webhook is sent back by id without it.
        kept = admin.put("/notification-settings", json={"webhooks": [{"id": webhook["id"], "url": hook["url"]}]})
        assert kept.status_code == 200, kept.text
        assert kept.json()["webhooks"][0]["secret_set"] is True
        assert admin.put("/notification-settings", json={"webhooks": []}).status_code == 200
    for key in (vault.api_key, vault.reviewer_key):
        with vault.http(key) as other:
            assert_error(other.get("/notification-settings"), 403, "forbidden_role")
            assert_error(other.put("/notification-settings", json={"webhooks": [hook]}), 403, "forbidden_role")
            assert_error(other.get("/notification-deliveries"), 403, "forbidden_role")


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "http://127.0.0.1:9/hook", "https://localhost/hook", "https://[::1]/hook",
    "https://169.254.169.254/latest/meta-data/", "https://10.0.0.7/hook", "https://192.168.1.20/hook",
    "https://[::ffff:169.254.169.254]/hook", "http://93.184.216.34/hook", "https://user:pw@93.184.216.34/hook",
])
def test_addresses_a_tenant_must_not_reach_are_refused(vault, url):
    with vault.tenant_admin() as admin:
        r = admin.put("/notification-settings", json={"webhooks": [{"url": url, "secret": SECRET}]})
    assert_error(r, 422, "invalid_request")


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data/", "http://10.0.0.7/hook",
                                 "https://172.16.0.1/hook", "http://[fd00:ec2::254]/"])
def test_the_development_flag_admits_loopback_only(notify_vault, url):
    with notify_vault.tenant_admin() as admin:
        assert_error(admin.put("/notification-settings", json={"webhooks": [{"url": url, "secret": SECRET}]}), 422,
                     "invalid_request")
        r = admin.put("/notification-settings", json={"webhooks": [{"url": "http://127.0.0.1:9/x", "secret": SECRET}]})
        assert r.status_code == 200, r.text


def test_email_senders_without_identities_depend_on_the_transport(vault):
    # The shared vault has no VAULT_EMAIL_FROM_IDENTITIES (test_email.py has a vault with them): the printed
    # transport (embedded) sends as anyone, SES (aws) as no one, and says which setting is missing.
    if os.environ.get("VAULT_EMAIL_FROM_IDENTITIES") or os.environ.get("VAULT_EMAIL_SMTP_URL"):
        pytest.skip("VAULT_EMAIL_FROM_IDENTITIES / VAULT_EMAIL_SMTP_URL are set for every vault of this run")
    email = {"to": ["ops@example.com"], "from": "anyone@example.net"}
    with vault.tenant_admin() as admin:
        try:
            r = admin.put("/notification-settings", json={"email": email})
            if BACKEND == "aws":
                assert "VAULT_EMAIL_FROM_IDENTITIES" in assert_error(r, 422, "invalid_request")["message"]
            else:
                assert r.status_code == 200, r.text
                assert r.json()["email"]["to"] == email["to"] and r.json()["email"]["from"] == email["from"]
        finally:
            admin.put("/notification-settings", json={"webhooks": []})


# --- deliveries ----------------------------------------------------------------------------------------------

def test_a_reviewer_is_told_decides_and_the_waiting_sdk_call_returns_approved(notify_vault, receiver):
    path = "/hook/" + unique("review")
    put_webhooks(notify_vault, {"url": receiver.url(path), "secret": SECRET})
    tool = unique("wire")
    notify_vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    waiting = WaitingClearance(notify_vault, ClearanceRequest(tool_name=tool, tool_args={"amount": 4200}))
    pending = wait_for(lambda: receiver.at(path), timeout=30, what="review.pending delivery")
    announced = verified(pending[0])
    assert announced["event"] == "review.pending"
    assert announced["tool_name"] == tool and announced["tool_args"] == {"amount": 4200}
    assert announced["status"] == "pending_review" and announced["policy_id"]
    assert announced["tenant_id"] == notify_vault.printed("LEDGIX_DEV_TENANT_ID")
    # `ledgix dev` links to its own reviewer page (VAULT_PUBLIC_URL elsewhere); opening it decides nothing.
    assert announced["review_url"] == f"{notify_vault.url}/review"
    # The reviewer acts on what the notification says.
    with notify_vault.reviewer() as reviewer:
        r = reviewer.post(f"/reviews/{announced['request_id']}/decision",
                          json={"approved": True, "review_reason": "checked", "reviewer_name": "Ada"})
    assert r.status_code == 200, r.text
    waiting.approved()
    decided = wait_for(lambda: [r for r in receiver.at(path) if json.loads(r["body"])["event"] == "review.decided"],
                       what="review.decided delivery")
    body = verified(decided[0])
    assert body["request_id"] == announced["request_id"] and body["status"] == "approved"
    assert body["reviewer_name"] == "Ada" and body["reason_code"] == "reviewer_approved"
    log = {d["delivery_id"]: d for d in deliveries(notify_vault)}
    for request in receiver.at(path):
        entry = log[request["headers"]["x-ledgix-delivery"]]
        assert entry["status"] == "delivered" and entry["attempts"] == 1 and entry["last_error"] is None


def test_a_failing_receiver_gets_retries_with_one_delivery_id_and_accepts_it_once(notify_vault, receiver):
    path = "/hook/" + unique("flaky")
    receiver.script[path] = [500, 503]
    put_webhooks(notify_vault, {"url": receiver.url(path), "secret": SECRET, "events": ["review.pending"]})
    tool = unique("wire")
    notify_vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    with notify_vault.http() as agent:
        assert agent.post("/request-clearance", json={"tool_name": tool, "tool_args": {}}).status_code == 200
    attempts = wait_for(lambda: (lambda got: got if len(got) >= 3 else None)(receiver.at(path)), timeout=60,
                        what="three attempts")
    assert [a["status"] for a in attempts] == [500, 503, 200]
    ids = {a["headers"]["x-ledgix-delivery"] for a in attempts}
    assert len(ids) == 1, ids
    for a in attempts:
        verified(a)
    entry = wait_for(lambda: next((d for d in deliveries(notify_vault) if d["delivery_id"] in ids
                                   and d["status"] == "delivered"), None), what="delivered status")
    assert entry["attempts"] == 3 and entry["event"] == "review.pending"


def test_denials_are_announced_only_to_webhooks_that_opt_in(notify_vault, receiver):
    opted, default = "/hook/" + unique("denied"), "/hook/" + unique("reviews")
    put_webhooks(notify_vault, {"url": receiver.url(opted), "secret": SECRET, "events": ["clearance.denied"]},
                 {"url": receiver.url(default), "secret": SECRET})
    tool = unique("wire")
    notify_vault.register(unique("p"), [tool], rego=DENY_ALWAYS)
    with notify_vault.http() as agent:
        r = agent.post("/request-clearance", json={"tool_name": tool, "tool_args": {"to": "x"}})
    assert r.status_code == 200 and r.json()["status"] == "denied", r.text
    body = verified(wait_for(lambda: receiver.at(opted), what="clearance.denied delivery")[0])
    assert body["event"] == "clearance.denied" and body["tool_name"] == tool and body["reason_code"] == "never"
    assert receiver.at(default) == []


def test_an_unanswered_review_expires_is_denied_and_announced(notify_vault, receiver):
    path = "/hook/" + unique("expiry")
    put_webhooks(notify_vault, {"url": receiver.url(path), "secret": SECRET, "events": ["review.expired"]})
    with notify_vault.tenant_admin() as admin:
        r = admin.put("/review-settings", json={"minimum_confidence_bucket": "high", "review_deadline_seconds": 10})
        assert r.status_code == 200 and r.json()["review_deadline_seconds"] == 10, r.text
    try:
        tool = unique("wire")
        notify_vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
        with notify_vault.http() as agent:
            request_id = agent.post("/request-clearance", json={"tool_name": tool, "tool_args": {}}).json()["request_id"]
            # Earlier tests' pending requests expire too: this one's delivery is the one to find.
            body = wait_for(lambda: next((b for b in map(verified, receiver.at(path)) if b["request_id"] == request_id),
                                         None), timeout=60, what="review.expired delivery")
            assert body["event"] == "review.expired" and body["status"] == "denied"
            assert body["reason_code"] == "review_expired"
            status = agent.get(f"/clearance-status/{request_id}").json()
        assert status["status"] == "denied" and status["reason_code"] == "review_expired", status
        with notify_vault.reviewer() as reviewer:
            late = reviewer.post(f"/reviews/{request_id}/decision", json={"approved": True})
        assert late.status_code == 409, late.text
    finally:
        with notify_vault.tenant_admin() as admin:
            admin.put("/review-settings", json={"minimum_confidence_bucket": "high", "review_deadline_seconds": 86400})


def test_deliveries_outstanding_when_the_vault_is_killed_are_delivered_after_restart(fresh_vault):
    fresh_vault.env.update(notify_env())
    fresh_vault.start()
    port = free_port()
    path = "/hook/" + unique("down")
    put_webhooks(fresh_vault, {"url": f"http://127.0.0.1:{port}{path}", "secret": SECRET})
    tool = unique("wire")
    fresh_vault.register(unique("p"), [tool], rego=REVIEW_ALWAYS)
    with fresh_vault.http() as agent:
        request_ids = [agent.post("/request-clearance", json={"tool_name": tool, "tool_args": {"i": i}}).json()["request_id"]
                       for i in range(3)]
    # Nothing listens yet: every delivery fails and is rescheduled.
    wait_for(lambda: (lambda ds: ds if len(ds) == 3 and all(d["status"] == "retrying" for d in ds) else None)(
        deliveries(fresh_vault)), what="three retrying deliveries")
    fresh_vault.kill()
    late = Receiver(port)
    try:
        fresh_vault.start()
        got = wait_for(lambda: (lambda rs: rs if len({r["headers"]["x-ledgix-delivery"] for r in rs}) == 3 else None)(
            late.at(path)), timeout=90, what="all three deliveries after restart")
        assert sorted(verified(r)["request_id"] for r in {r["headers"]["x-ledgix-delivery"]: r for r in got}.values()) \
            == sorted(request_ids)
        wait_for(lambda: all(d["status"] == "delivered" for d in deliveries(fresh_vault)), what="delivered statuses")
    finally:
        late.close()
