"""Email notifications end to end (docs/notifications.md). Embedded: the vault sends over plain SMTP
(VAULT_EMAIL_SMTP_URL) to a catcher in this process (aiosmtpd), and without it writes the email to its log. AWS: the
notifier sends through SES v2 to the AWS emulator, which lists what it accepted at /_ledgix/ses/messages
(tests/aws/moto_server.py). Either way: settings are the tenant admin's, senders are checked against
VAULT_EMAIL_FROM_IDENTITIES, a pending review arrives as one plain-text email to every recipient with a link to the
reviewer page that decides nothing, failures are retried, and agent text cannot add headers or recipients."""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import os
import re
import threading
import time
import uuid

import httpx
import pytest
from ledgix_python.models import ClearanceRequest

from conftest import (BACKEND, Vault, WaitingClearance, assert_error, aws_client, free_port, pending_review_for, started, unique,
                      wait_for)
from test_notifications import deliveries, notify_env

# Sender identities: a domain of this module's own (on AWS created in the emulator's SES), a domain the vault may
# send as but SES never verified (so SES rejects it), and one address.
DOMAIN = f"alerts-{uuid.uuid4().hex[:8]}.example.com"
UNVERIFIED_DOMAIN = f"unverified-{uuid.uuid4().hex[:8]}.example.com"
SOLO = "solo@example.org"
IDENTITIES = f"{DOMAIN},{UNVERIFIED_DOMAIN},{SOLO}"
SENDER = f"vault@{DOMAIN}"
TO = ["ops@example.com", "sec@example.net"]
REASON = "refunds this large need a person"
REVIEW_WITH_REASON = f'package n\ndefault decision := "review"\nreason := "{REASON}"'
REVIEW_EVENTS = {"review.pending", "review.decided", "review.expired"}
AWS_REGION = os.environ.get("AWS_REGION", "us-east-1")


# --- where the emails arrive ------------------------------------------------------------------------------------

class SmtpCatcher:
    """An SMTP server on loopback (aiosmtpd) keeping every accepted message, parsed. A message whose subject
    contains a string in `refuse` is answered `451` once (the string is then removed) and kept in `refused`."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict] = []
        self.refused: list[dict] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()
        catcher = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
                raw = envelope.original_content or envelope.content
                message = email.message_from_bytes(raw, policy=email.policy.default)
                parsed = {"from": envelope.mail_from, "from_header": str(message["from"] or ""),
                          "to": list(envelope.rcpt_tos), "to_header": str(message["to"] or ""),
                          "subject": str(message["subject"] or ""), "content_type": message.get_content_type(),
                          "multipart": message.is_multipart(), "raw": raw,
                          "body": "" if message.is_multipart() else message.get_content().replace("\r\n", "\n")}
                with catcher.lock:
                    hit = next((s for s in catcher.refuse if s in parsed["subject"]), None)
                    if hit is not None:
                        catcher.refuse.discard(hit)
                        catcher.refused.append(parsed)
                        return "451 4.3.0 Try again later"
                    catcher.messages.append(parsed)
                return "250 Message accepted for delivery"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=True)
        self.controller.start()
        self.smtp_url = f"smtp://127.0.0.1:{self.port}"

    def all(self) -> list[dict]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.controller.stop()


class SesMailbox:
    """What the emulator's SES accepted (GET /_ledgix/ses/messages), in the catcher's shape."""

    def __init__(self) -> None:
        self.endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
        aws_client("sesv2").create_email_identity(EmailIdentity=DOMAIN)
        self.refuse: set[str] = set()  # SMTP only

    def all(self) -> list[dict]:
        r = httpx.get(f"{self.endpoint}/_ledgix/ses/messages", params={"region": AWS_REGION}, timeout=10)
        assert r.status_code == 200, f"/_ledgix/ses/messages: {r.status_code} {r.text[:300]}"
        listed = r.json()
        listed = listed["messages"] if isinstance(listed, dict) else listed
        out = []
        for m in listed:
            destinations = m.get("destinations") or {}
            if isinstance(destinations, dict):
                to = list(destinations.get("ToAddresses", []))
                others = [*destinations.get("CcAddresses", []), *destinations.get("BccAddresses", [])]
            else:
                to, others = list(destinations), []
            out.append({"id": m.get("id"), "from": m.get("source"), "to": to + others, "to_only": to,
                        "subject": m.get("subject") or "", "body": (m.get("body") or "").replace("\r\n", "\n"),
                        "raw": None})
        return out

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def mailbox():
    box = SesMailbox() if BACKEND == "aws" else SmtpCatcher()
    yield box
    box.close()


@pytest.fixture(scope="module")
def email_vault(mailbox):
    """A vault of this module's own (notify_env: short anchor rounds, on AWS its own database, table and notify
    queue) that may send as IDENTITIES, over SMTP to the catcher (embedded) or through SES (aws)."""
    env = {**notify_env(), "VAULT_EMAIL_FROM_IDENTITIES": IDENTITIES}
    if BACKEND != "aws":
        env["VAULT_EMAIL_SMTP_URL"] = mailbox.smtp_url
    v = started(Vault(**env))
    yield v
    v.cleanup()


# --- helpers ----------------------------------------------------------------------------------------------------

def put_email(v: Vault, to: list[str] = TO, sender: str = SENDER, events: list[str] | None = None) -> dict:
    body = {"to": to, "from": sender}
    if events is not None:
        body["events"] = events
    with v.tenant_admin() as admin:
        r = admin.put("/notification-settings", json={"email": body})
    assert r.status_code == 200, r.text
    return r.json()


def clear_settings(v: Vault) -> None:
    with v.tenant_admin() as admin:
        r = admin.put("/notification-settings", json={"webhooks": []})
    assert r.status_code == 200, r.text


def to_review(v: Vault, args: dict, tool: str | None = None) -> tuple[str, str]:
    """A request routed to review (the agent not waiting): (tool, request_id)."""
    tool = tool or unique("mail")
    v.register(unique("p"), [tool], rego=REVIEW_WITH_REASON)
    with v.http() as agent:
        r = agent.post("/request-clearance", json={"tool_name": tool, "tool_args": args})
    assert r.status_code == 200 and r.json()["status"] == "pending_review", r.text
    return tool, r.json()["request_id"]


def mails_about(box, marker: str, subject_part: str = "") -> list[dict]:
    return [m for m in box.all() if marker in m["subject"] and subject_part in m["subject"]]


def wait_mail(box, marker: str, subject_part: str = "") -> dict:
    return wait_for(lambda: next(iter(mails_about(box, marker, subject_part)), None), timeout=30,
                    what=f"an email about {marker!r} {subject_part!r}")


def email_deliveries(v: Vault, request_id: str, event: str | None = None) -> list[dict]:
    return [d for d in deliveries(v) if d["target_id"] == "email" and d["request_id"] == request_id
            and (event is None or d["event"] == event)]


def wait_delivery(v: Vault, request_id: str, event: str, status: str, timeout: float = 30) -> dict:
    return wait_for(lambda: next((d for d in email_deliveries(v, request_id, event) if d["status"] == status), None),
                    timeout=timeout, what=f"an email delivery of {event} for {request_id} with status {status}")


def delivery_line(body: str) -> str:
    found = re.findall(r"^Delivery: (dl_\S+)$", body, flags=re.MULTILINE)
    assert len(found) == 1, body
    return found[0]


# --- settings ---------------------------------------------------------------------------------------------------

def test_email_settings_round_trip_belong_to_the_tenant_admin_and_are_checked(email_vault):
    try:
        saved = put_email(email_vault, to=[*TO, TO[0]], events=["review.pending", "clearance.denied"])
        assert saved["email"]["from"] == SENDER
        assert sorted(saved["email"]["to"]) == sorted(TO), saved  # deduplicated
        assert saved["email"]["events"] == ["review.pending", "clearance.denied"], saved
        with email_vault.tenant_admin() as admin:
            got = admin.get("/notification-settings")
            assert got.status_code == 200 and got.json() == saved, got.text
            # The events default to the three review events (denials are opt-in), as for webhooks.
            r = admin.put("/notification-settings", json={"email": {"to": TO, "from": SENDER}})
            assert r.status_code == 200, r.text
            assert set(r.json()["email"]["events"]) == REVIEW_EVENTS, r.json()
            # A sender at an identity's domain (case-insensitive), or an identity's address.
            for sender in (f"Other@{DOMAIN.upper()}", SOLO):
                r = admin.put("/notification-settings", json={"email": {"to": TO, "from": sender}})
                assert r.status_code == 200, f"{sender}: {r.text}"
            bad_settings = [
                {"to": ["ops"]}, {"to": ["Ops <ops@example.com>"]}, {"to": ["ops@example.com\r\nBcc: evil@example.com"]},
                {"to": []}, {"to": [f"ops{i}@example.com" for i in range(11)]}, {"to": "ops@example.com"},
                {"from": "Vault <vault@" + DOMAIN + ">"}, {"from": "not-an-address"},
                # Outside VAULT_EMAIL_FROM_IDENTITIES: another domain, a subdomain, another address at SOLO's domain.
                {"from": "vault@elsewhere.example.net"}, {"from": f"vault@sub.{DOMAIN}"}, {"from": "other@example.org"},
                {"events": ["review.nope"]},
            ]
            for bad in bad_settings:
                r = admin.put("/notification-settings", json={"email": {"to": TO, "from": SENDER, **bad}})
                assert_error(r, 422, "invalid_request")
            # Refusals changed nothing.
            assert admin.get("/notification-settings").json()["email"]["from"] == SOLO
            r = admin.put("/notification-settings", json={"email": None})
            assert r.status_code == 200 and r.json()["email"] is None, r.text
            got = admin.get("/notification-settings").json()
            assert "email" in got and got["email"] is None, got
        for key in (email_vault.api_key, email_vault.reviewer_key):
            with email_vault.http(key) as other:
                assert_error(other.get("/notification-settings"), 403, "forbidden_role")
                r = other.put("/notification-settings", json={"email": {"to": TO, "from": SENDER}})
                assert_error(r, 403, "forbidden_role")
    finally:
        clear_settings(email_vault)


# --- a pending review -------------------------------------------------------------------------------------------

def test_a_pending_review_is_one_plain_text_email_to_every_recipient(email_vault, mailbox):
    put_email(email_vault, events=["review.pending", "review.decided"])
    try:
        # Keys in sorted order and ASCII only: the pretty JSON reads the same whatever order the vault keeps.
        args = {"amount": 4200, "memo": {"invoice": "inv-7", "lines": [1, 2]}, "to": "acct-9"}
        tool, request_id = to_review(email_vault, args)
        mail = wait_mail(mailbox, tool)
        delivery = wait_delivery(email_vault, request_id, "review.pending", "delivered")
        assert len(mails_about(mailbox, tool)) == 1, mails_about(mailbox, tool)
        assert len(email_deliveries(email_vault, request_id, "review.pending")) == 1

        assert mail["from"] == SENDER
        assert sorted(mail["to"]) == sorted(TO), mail["to"]
        if mail["raw"] is not None:  # SMTP: the headers as sent
            assert email.utils.parseaddr(mail["from_header"])[1] == SENDER, mail["from_header"]
            assert sorted(a for _, a in email.utils.getaddresses([mail["to_header"]])) == sorted(TO), mail["to_header"]
            assert mail["content_type"] == "text/plain" and not mail["multipart"], mail["content_type"]
        else:
            assert mail["to_only"] == mail["to"]
        assert mail["subject"].startswith("[Ledgix]") and "Review needed" in mail["subject"], mail["subject"]

        body = mail["body"]
        review_url = f"{email_vault.url}/review"
        for expected in (request_id, tool, REASON, json.dumps(args, indent=2, sort_keys=True),
                         f"Open the review page: {review_url}",
                         "Opening the page decides nothing: sign in with a reviewer key to approve or deny."):
            assert expected in body, f"{expected!r} not in:\n{body}"
        assert "<html" not in body.lower() and "<a " not in body.lower()
        assert delivery_line(body) == delivery["delivery_id"]
        assert delivery["attempts"] == 1 and delivery["last_error"] is None, delivery
        # No approve-by-GET: no link acts, and none carries the request.
        urls = re.findall(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s<>\"]+", body)
        assert review_url in urls, urls
        for url in urls:
            assert not re.search(r"approve|deny|decision|decide", url, re.IGNORECASE), url
            assert request_id not in url, url
    finally:
        clear_settings(email_vault)


def test_a_decided_review_is_announced_to_subscribers_only(email_vault, mailbox):
    put_email(email_vault, events=["review.pending", "review.decided"])
    try:
        tool = unique("mail")
        email_vault.register(unique("p"), [tool], rego=REVIEW_WITH_REASON)
        waiting = WaitingClearance(email_vault, ClearanceRequest(tool_name=tool, tool_args={"amount": 7}))
        with email_vault.reviewer() as reviewer:
            request_id = pending_review_for(reviewer, tool)["request_id"]
        pending = wait_mail(mailbox, tool, "Review needed")
        assert request_id in pending["body"]
        with email_vault.reviewer() as reviewer:
            r = reviewer.post(f"/reviews/{request_id}/decision",
                              json={"approved": True, "review_reason": "checked", "reviewer_name": "Ada Lovelace"})
        assert r.status_code == 200, r.text
        waiting.approved()
        decided = wait_mail(mailbox, tool, "Approved by Ada Lovelace")
        assert decided["subject"].startswith("[Ledgix] Approved by Ada Lovelace:"), decided["subject"]
        assert sorted(decided["to"]) == sorted(TO)
        assert request_id in decided["body"]
        delivery = wait_delivery(email_vault, request_id, "review.decided", "delivered")
        assert delivery_line(decided["body"]) == delivery["delivery_id"] != delivery_line(pending["body"])

        # Subscribed to review.pending only: the decision sends nothing.
        put_email(email_vault, events=["review.pending"])
        tool, request_id = to_review(email_vault, {"amount": 8})
        wait_mail(mailbox, tool, "Review needed")
        with email_vault.reviewer() as reviewer:
            r = reviewer.post(f"/reviews/{request_id}/decision", json={"approved": False, "reviewer_name": "Ada"})
        assert r.status_code == 200, r.text
        time.sleep(3)  # over a notifier round trip and an anchor round
        assert email_deliveries(email_vault, request_id, "review.decided") == []
        assert len(mails_about(mailbox, tool)) == 1, mails_about(mailbox, tool)
    finally:
        clear_settings(email_vault)


# --- failures ---------------------------------------------------------------------------------------------------

@pytest.mark.skipif(BACKEND == "aws", reason="SMTP catcher only; the AWS case is the SES rejection below")
def test_an_smtp_server_that_refuses_once_gets_the_email_again(email_vault, mailbox):
    put_email(email_vault, events=["review.pending"])
    try:
        tool = unique("mail")
        mailbox.refuse.add(tool)
        tool, request_id = to_review(email_vault, {"amount": 9}, tool=tool)
        delivery = wait_delivery(email_vault, request_id, "review.pending", "delivered")
        assert delivery["attempts"] >= 2, delivery
        assert [m for m in mailbox.refused if tool in m["subject"]], "the first attempt was never refused"
        caught = mails_about(mailbox, tool)
        assert len(caught) == 1, caught
        assert delivery_line(caught[0]["body"]) == delivery["delivery_id"]
        assert len(email_deliveries(email_vault, request_id)) == 1
    finally:
        clear_settings(email_vault)


@pytest.mark.skipif(BACKEND != "aws", reason="SES only; the SMTP case is the refusing catcher above")
def test_a_sender_ses_rejects_is_retried_with_the_error(email_vault, mailbox):
    # Allowed by VAULT_EMAIL_FROM_IDENTITIES, never created in the emulator's SES: SendEmail is MessageRejected.
    put_email(email_vault, sender=f"vault@{UNVERIFIED_DOMAIN}", events=["review.pending"])
    try:
        tool, request_id = to_review(email_vault, {"amount": 10})
        delivery = wait_for(lambda: next((d for d in email_deliveries(email_vault, request_id, "review.pending")
                                          if d["status"] == "retrying" and d["last_error"]), None),
                            timeout=30, what="a retrying email delivery")
        assert "MessageRejected" in delivery["last_error"], delivery
        assert delivery["attempts"] >= 1 and delivery["next_attempt_at"], delivery
        assert mails_about(mailbox, tool) == []
    finally:
        clear_settings(email_vault)


# --- agent text in headers --------------------------------------------------------------------------------------

def test_a_tool_name_cannot_add_headers_or_recipients(email_vault, mailbox):
    marker = unique("inj")
    tool = marker + "\r\nBcc: evil@example.com"
    with email_vault.tenant_admin() as admin:
        r = admin.post("/register-policy", json={"policy_id": unique("p"), "tools": [tool], "rules": [],
                                                  "rego": REVIEW_WITH_REASON})
    if r.status_code == 422:
        pytest.skip("the vault refuses tool names with line breaks at registration")
    assert r.status_code in (200, 201), r.text
    put_email(email_vault, events=["review.pending"])
    try:
        with email_vault.http() as agent:
            r = agent.post("/request-clearance", json={"tool_name": tool, "tool_args": {}})
        if r.status_code == 422:
            pytest.skip("the vault refuses tool names with line breaks in clearance requests")
        assert r.status_code == 200 and r.json()["status"] == "pending_review", r.text
        mail = wait_mail(mailbox, marker)
        assert "\r" not in mail["subject"] and "\n" not in mail["subject"], repr(mail["subject"])
        # The text stays, on the subject's one line.
        assert "Bcc: evil@example.com" in mail["subject"], mail["subject"]
        assert sorted(mail["to"]) == sorted(TO), mail["to"]
        if mail["raw"] is not None:
            headers = email.message_from_bytes(mail["raw"])  # compat32: the header lines as sent
            assert not [k for k in headers.keys() if k.lower() in ("bcc", "cc")], headers.keys()
            assert "evil@example.com" not in str(headers["to"])
            head = mail["raw"].split(b"\r\n\r\n", 1)[0]
            assert not re.search(rb"(?im)^bcc:", head), head
    finally:
        clear_settings(email_vault)


# --- senders allowed when the settings were written, not any more ------------------------------------------------

def test_a_sender_no_longer_allowed_at_send_time_cancels_the_delivery(email_vault, mailbox):
    put_email(email_vault, events=["review.pending"])
    try:
        email_vault.env["VAULT_EMAIL_FROM_IDENTITIES"] = SOLO
        email_vault.restart()
        tool, request_id = to_review(email_vault, {"amount": 11})
        wait_delivery(email_vault, request_id, "review.pending", "cancelled")
        assert mails_about(mailbox, tool) == []
    finally:
        clear_settings(email_vault)
        email_vault.env["VAULT_EMAIL_FROM_IDENTITIES"] = IDENTITIES
        email_vault.restart()


# --- the printed transport --------------------------------------------------------------------------------------

@pytest.mark.skipif(BACKEND == "aws", reason="the printed transport is embedded only (AWS sends through SES)")
def test_without_smtp_the_embedded_vault_writes_the_email_to_its_log(fresh_vault):
    if os.environ.get("VAULT_EMAIL_SMTP_URL"):
        pytest.skip("VAULT_EMAIL_SMTP_URL is set in the environment")
    # No identities: a development transport sends as anyone.
    fresh_vault.env.update(notify_env(), RUST_LOG="info")
    fresh_vault.env.pop("VAULT_EMAIL_FROM_IDENTITIES", None)
    fresh_vault.start()
    put_email(fresh_vault, sender="dev@anything.example.net", events=["review.pending"])
    tool, request_id = to_review(fresh_vault, {"amount": 12})
    delivery = wait_delivery(fresh_vault, request_id, "review.pending", "delivered")

    def logged():
        for line in fresh_vault.log_path.read_text(errors="replace").splitlines():
            if delivery["delivery_id"] in line and tool in line and "Review needed" in line:
                return line
        return None

    line = wait_for(logged, timeout=10, what="the email in the vault's log")
    text = "\n".join(strings(json.loads(line)))  # JSON tracing: the email's fields, unescaped
    for expected in (f"Delivery: {delivery['delivery_id']}", request_id, f"{fresh_vault.url}/review",
                     "dev@anything.example.net", TO[0]):
        assert expected in text, f"{expected!r} not in {line[:2000]}"


def strings(value) -> list[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []
