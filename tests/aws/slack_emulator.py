"""An emulated Slack on loopback, standing in for `hooks.slack.com`: the two endpoints the vault posts to, and the
interaction requests Slack sends the vault when someone clicks a button.

- **Incoming webhooks** `POST /services/<team>/<bot>/<token>`: JSON messages (`text` and/or Block Kit `blocks`),
  checked against the Block Kit limits the vault's messages touch (Slack's "Block Kit" reference: 50 blocks; a
  header's plain text 150 characters; a section's text 3000, at most 10 fields of 2000; a button's text 75, value
  2000, `action_id` 255, `style` primary/danger; only the fields each element defines). Answers as Slack does:
  `200 ok` (text/plain), `400 invalid_payload` (not JSON), `400 no_text` (neither text nor blocks),
  `400 invalid_blocks`, `404 no_service` (an unknown webhook).
- **Response URLs** `POST /actions/<team>/<id>/<token>` (what an interaction's `response_url` points at): the
  same checks, plus `replace_original`, `delete_original`, `response_type`; answers `200 {"ok": true}`.
- **Interactions**: `interaction()` builds the `block_actions` payload Slack would send for a click on one of a
  message's buttons, `signed()` the request itself: the form body `payload=<JSON>` with `X-Slack-Request-Timestamp`
  and `X-Slack-Signature` (`v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>` under the app's signing secret, as
  "Verifying requests from Slack" describes; `test_slack_emulator.py` checks it against Slack's published example).

In a test: `SlackEmulator()` serves on a free port in a thread; `.webhook_url` for the settings, `.messages` and
`.updates()` for what was posted. Alone (foreground, a log line per post): `python slack_emulator.py --port 5300`;
`GET /_ledgix/slack/posts` lists every post as JSON.

Not emulated: Slack's rate limits (1 message a second per webhook), `response_url`'s 30-minute and 5-use limits,
message formatting (what a human would see), Web API methods (`chat.postMessage`, ...), OAuth.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TEAM_ID = "T0LEDGIX"
TEAM_DOMAIN = "ledgix-e2e"
CHANNEL = {"id": "C0REVIEWS", "name": "reviews"}
APP_ID = "A0LEDGIX"

# Block Kit limits (https://api.slack.com/reference/block-kit/blocks, /block-elements, /composition-objects).
MAX_BLOCKS = 50
HEADER_TEXT = 150
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BLOCK_ID = 255


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """`v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>`: what Slack puts in `X-Slack-Signature`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def _length(text: str) -> int:
    """Slack counts characters; UTF-16 units are the stricter reading (an emoji counts twice)."""
    return len(text.encode("utf-16-le")) // 2


class InvalidBlocks(ValueError):
    pass


def _text_object(obj, limit: int, where: str, plain_only: bool = False) -> None:
    if not isinstance(obj, dict):
        raise InvalidBlocks(f"{where}: not a text object")
    kind = obj.get("type")
    allowed = {"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}
    if kind not in allowed or (plain_only and kind != "plain_text"):
        raise InvalidBlocks(f"{where}: text type {kind!r}")
    if extra := set(obj) - allowed[kind]:
        raise InvalidBlocks(f"{where}: unknown fields {sorted(extra)}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise InvalidBlocks(f"{where}: empty text")
    if _length(text) > limit:
        raise InvalidBlocks(f"{where}: text longer than {limit}")


def _button(element: dict, where: str) -> None:
    if extra := set(element) - {"type", "text", "action_id", "value", "style", "url", "confirm", "accessibility_label"}:
        raise InvalidBlocks(f"{where}: unknown fields {sorted(extra)}")
    _text_object(element.get("text"), BUTTON_TEXT, f"{where}.text", plain_only=True)
    if not isinstance(element.get("action_id", ""), str) or len(element.get("action_id", "")) > ACTION_ID:
        raise InvalidBlocks(f"{where}.action_id")
    if _length(element.get("value", "")) > BUTTON_VALUE:
        raise InvalidBlocks(f"{where}.value longer than {BUTTON_VALUE}")
    if element.get("style", "primary") not in ("primary", "danger"):
        raise InvalidBlocks(f"{where}.style")


def check_blocks(blocks) -> None:
    """Raise InvalidBlocks where Slack would answer `invalid_blocks` (for the block types the vault sends)."""
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        raise InvalidBlocks(f"blocks: a list of at most {MAX_BLOCKS}")
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if isinstance(block, dict) and len(block.get("block_id", "")) > BLOCK_ID:
            raise InvalidBlocks(f"{where}.block_id")
        if kind == "header":
            if extra := set(block) - {"type", "text", "block_id"}:
                raise InvalidBlocks(f"{where}: unknown fields {sorted(extra)}")
            _text_object(block.get("text"), HEADER_TEXT, f"{where}.text", plain_only=True)
        elif kind == "section":
            if extra := set(block) - {"type", "text", "fields", "block_id", "accessory", "expand"}:
                raise InvalidBlocks(f"{where}: unknown fields {sorted(extra)}")
            if "text" not in block and "fields" not in block:
                raise InvalidBlocks(f"{where}: a section needs text or fields")
            if "text" in block:
                _text_object(block["text"], SECTION_TEXT, f"{where}.text")
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > SECTION_FIELDS:
                raise InvalidBlocks(f"{where}.fields: at most {SECTION_FIELDS}")
            for j, field in enumerate(fields):
                _text_object(field, FIELD_TEXT, f"{where}.fields[{j}]")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
                raise InvalidBlocks(f"{where}.elements: 1 to {CONTEXT_ELEMENTS}")
            for j, element in enumerate(elements):
                _text_object(element, SECTION_TEXT, f"{where}.elements[{j}]")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= ACTIONS_ELEMENTS:
                raise InvalidBlocks(f"{where}.elements: 1 to {ACTIONS_ELEMENTS}")
            for j, element in enumerate(elements):
                if element.get("type") != "button":
                    raise InvalidBlocks(f"{where}.elements[{j}]: only buttons are emulated")
                _button(element, f"{where}.elements[{j}]")
        elif kind == "divider":
            pass
        else:
            raise InvalidBlocks(f"{where}: block type {kind!r} is not emulated")


def check_message(message) -> str | None:
    """Slack's error code for a message it would refuse, else None."""
    if not isinstance(message, dict):
        return "invalid_payload"
    if not message.get("text") and not message.get("blocks"):
        return "no_text"
    if "blocks" in message:
        try:
            check_blocks(message["blocks"])
        except InvalidBlocks:
            return "invalid_blocks"
    return None


class SlackEmulator:
    """Slack's incoming webhook and response URLs on 127.0.0.1 (a free port unless given)."""

    def __init__(self, port: int = 0, signing_secret: str | None = None) -> None:
        self.signing_secret = signing_secret or secrets.token_hex(16)
        self.webhook_path = f"/services/{TEAM_ID}/B0LEDGIX/{secrets.token_urlsafe(18)}"
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                if self.path == "/_ledgix/slack/posts":
                    with emulator.lock:
                        body = json.dumps(emulator.posts).encode()
                    return self._answer(200, body, "application/json")
                self._answer(404, b"not_found", "text/plain")

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                kind = ("webhook" if self.path == emulator.webhook_path
                        else "response" if self.path.startswith(f"/actions/{TEAM_ID}/") else None)
                if kind is None:
                    return self._answer(404, b"no_service", "text/plain")
                try:
                    message = json.loads(raw)
                    error = check_message(message)
                except ValueError:
                    message, error = None, "invalid_payload"
                if "application/json" not in self.headers.get("content-type", ""):
                    error = error or "invalid_payload"
                with emulator.lock:
                    emulator.posts.append({"kind": kind, "path": self.path, "message": message, "error": error,
                                           "headers": {k.lower(): v for k, v in self.headers.items()}})
                if error:
                    return self._answer(400, error.encode(), "text/plain")
                if kind == "webhook":
                    return self._answer(200, b"ok", "text/plain")
                self._answer(200, b'{"ok": true}', "application/json")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        """The incoming webhook's URL (Slack's: `https://hooks.slack.com/services/T…/B…/…`)."""
        return self.base_url + self.webhook_path

    def new_response_url(self) -> str:
        """A fresh `response_url` (Slack's: `https://hooks.slack.com/actions/T…/<id>/<token>`)."""
        return f"{self.base_url}/actions/{TEAM_ID}/{next(self._ids)}{secrets.randbelow(10**9):09d}/{secrets.token_urlsafe(12)}"

    @property
    def messages(self) -> list[dict]:
        """The messages accepted on the incoming webhook, in order."""
        with self.lock:
            return [p["message"] for p in self.posts if p["kind"] == "webhook" and p["error"] is None]

    def refused(self) -> list[dict]:
        """Posts Slack would have refused (with their error code)."""
        with self.lock:
            return [p for p in self.posts if p["error"] is not None]

    def updates(self, response_url: str) -> list[dict]:
        """What was posted to `response_url` (and accepted), in order."""
        path = urllib.parse.urlsplit(response_url).path
        with self.lock:
            return [p["message"] for p in self.posts if p["kind"] == "response" and p["path"] == path
                    and p["error"] is None]

    def interaction(self, message: dict, action_id: str, user_id: str, user_name: str = "ada",
                    response_url: str | None = None) -> dict:
        """The `block_actions` payload Slack sends when `user_id` clicks the button `action_id` of `message`."""
        button = next((e for b in message.get("blocks", []) if b.get("type") == "actions"
                       for e in b["elements"] if e.get("action_id") == action_id), None)
        if button is None:
            raise ValueError(f"the message has no button {action_id!r}")
        block_id = next(b.get("block_id", "") for b in message["blocks"]
                        if b.get("type") == "actions" and button in b["elements"])
        ts = f"{time.time():.6f}"
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "token": "verification-token-deprecated",
            "container": {"type": "message", "message_ts": ts, "channel_id": CHANNEL["id"], "is_ephemeral": False},
            "trigger_id": f"{secrets.randbelow(10**12)}.{secrets.randbelow(10**11)}.{secrets.token_hex(16)}",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": CHANNEL,
            "message": {"type": "message", "subtype": "bot_message", "text": message.get("text", ""), "ts": ts,
                        "bot_id": "B0LEDGIX", "blocks": message.get("blocks", [])},
            "state": {"values": {}},
            "response_url": response_url or self.new_response_url(),
            "actions": [{**button, "block_id": block_id, "action_ts": f"{time.time():.6f}"}],
        }

    def signed(self, payload: dict, timestamp: int | None = None, secret: str | None = None) -> tuple[bytes, dict]:
        """The request Slack sends for `payload`: form body and headers, signed now (or at `timestamp`) with the
        app's signing secret (or `secret`)."""
        body = urllib.parse.urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature(secret or self.signing_secret, stamp, body),
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5300)
    parser.add_argument("--signing-secret", default=None)
    args = parser.parse_args()
    slack = SlackEmulator(args.port, args.signing_secret)
    print(f"SLACK_WEBHOOK_URL={slack.webhook_url}", flush=True)
    print(f"SLACK_SIGNING_SECRET={slack.signing_secret}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            with slack.lock:
                new, seen = slack.posts[seen:], len(slack.posts)
            for post in new:
                print(json.dumps({"kind": post["kind"], "error": post["error"], "message": post["message"]}), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        slack.close()


if __name__ == "__main__":
    main()
