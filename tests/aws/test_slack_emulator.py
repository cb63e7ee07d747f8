"""The Slack emulator keeps Slack's shapes: its signer reproduces Slack's published example, its incoming webhook
answers as Slack's does, and its interactions are what Slack sends for a click."""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pytest

from slack_emulator import SlackEmulator, signature

# "Verifying requests from Slack" (https://api.slack.com/authentication/verifying-requests-from-slack).
EXAMPLE_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
EXAMPLE_TIMESTAMP = "1531420618"
EXAMPLE_BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
                b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
                b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
                b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

MESSAGE = {"text": "Review needed", "blocks": [
    {"type": "header", "text": {"type": "plain_text", "text": "Review needed: pay", "emoji": False}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*Arguments*", "verbatim": True}},
    {"type": "actions", "block_id": "ledgix_review", "elements": [
        {"type": "button", "action_id": "ledgix_approve", "style": "primary", "value": "tn_1:r1",
         "text": {"type": "plain_text", "text": "Approve", "emoji": False}}]},
]}


@pytest.fixture()
def slack():
    s = SlackEmulator()
    yield s
    s.close()


def test_the_signer_reproduces_slacks_published_example():
    assert signature(EXAMPLE_SECRET, EXAMPLE_TIMESTAMP, EXAMPLE_BODY) == EXAMPLE_SIGNATURE


def test_the_incoming_webhook_answers_as_slack_does(slack):
    ok = httpx.post(slack.webhook_url, json=MESSAGE)
    assert (ok.status_code, ok.text) == (200, "ok")
    assert slack.messages == [MESSAGE]
    too_long = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]}
    unknown_field = {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x", "colour": "red"}}]}
    header_mrkdwn = {"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]}
    for body, error in [({}, "no_text"), (too_long, "invalid_blocks"), (unknown_field, "invalid_blocks"),
                        (header_mrkdwn, "invalid_blocks")]:
        r = httpx.post(slack.webhook_url, json=body)
        assert (r.status_code, r.text) == (400, error), body
    r = httpx.post(slack.webhook_url, content=b"{not json", headers={"content-type": "application/json"})
    assert (r.status_code, r.text) == (400, "invalid_payload")
    r = httpx.post(slack.base_url + "/services/T0/B0/wrong", json=MESSAGE)
    assert (r.status_code, r.text) == (404, "no_service")
    assert slack.messages == [MESSAGE]


def test_a_click_is_the_signed_form_slack_sends(slack):
    response_url = slack.new_response_url()
    payload = slack.interaction(MESSAGE, "ledgix_approve", "U2CERLKJA", response_url=response_url)
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U2CERLKJA"
    assert payload["actions"][0]["value"] == "tn_1:r1" and payload["actions"][0]["block_id"] == "ledgix_review"
    body, headers = slack.signed(payload, timestamp=1531420618)
    assert headers["X-Slack-Signature"] == signature(slack.signing_secret, "1531420618", body)
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    (name, value), = urllib.parse.parse_qsl(body.decode())
    assert name == "payload" and json.loads(value) == payload
    with pytest.raises(ValueError):
        slack.interaction(MESSAGE, "ledgix_deny", "U2CERLKJA")
    update = {"replace_original": True, "text": "Approved"}
    r = httpx.post(response_url, json=update)
    assert r.status_code == 200
    assert slack.updates(response_url) == [update]
    assert slack.updates(slack.new_response_url()) == []
