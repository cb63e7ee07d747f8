"""The scripted model behind the test emulators of the judge's model services: Bedrock Runtime (Converse,
InvokeModel) in moto_server.py, and the OpenAI-compatible API and the HTTP judge in model_server.py.

A test scripts the answers (and failures) over HTTP on the emulator's own port, then reads back what the vault
sent. Not an AWS or OpenAI API; JSON in and out:

  POST /_ledgix/model/script    {"rules": [RULE, ...]}   appends rules (200 {"rules": <how many are armed>})
                                {"reset": true}          clears the rules and the request log (both may be given:
                                                         reset first, then append)
  GET  /_ledgix/model/script    {"rules": [RULE + "calls": <matching calls so far>, ...]}, oldest first
  GET  /_ledgix/model/requests  every model request received, in order (a request the service refuses, for a bad
                                key or a shape the real service rejects, never reaches the model and is not here):
                                [{"api": "converse"|"invoke_model"|"chat"|"embeddings"|"judge", "model": "...",
                                  "prompt": "...", "body": <the parsed request body>}, ...]
  POST /_ledgix/model/requests  {"reset": true}          clears the request log
  Bad input -> 400 {"error": "..."}; another method -> 405.

RULE (unknown fields are refused, so a typo cannot silently script nothing):
  "match": "<substring>"        required; searched (plain, case-sensitive) in the request's prompt text:
                                Converse: the system text blocks, then the user messages' text blocks, joined
                                with "\\n"; Chat Completions: the system/developer messages, then the user
                                messages, likewise; embeddings: the input text(s); the HTTP judge: the raw body.
                                "" matches everything.
  "reply": {...}                the answer, normally a verdict (any JSON object; never checked against a schema)
  "text": "..."                 a raw text answer instead (malformed model output); not with "reply"
  "fail": "throttle"|"timeout"|"validation"|"unavailable"|"hang"
  "times": N                    with "fail": the first N matching calls fail, later ones answer with reply/text
                                (absent or null: every call fails). Without "fail": the rule answers N matching
                                calls and is then spent (so older rules apply again).
  "delay_seconds": S            sleep S seconds before answering or failing. With "fail": "hang" (and "timeout" on
                                the OpenAI API, which has no timeout status) it is the hang instead: a hanging call
                                sleeps S (default 30) and then answers normally (for client-side timeout tests);
                                once "times" are used up the rule answers at once
  "usage": {"input_tokens": n, "output_tokens": m}   reported token counts (either may be left out)
  "apis": ["converse", ...]     only these APIs consult the rule (default: all)
Rules are tried newest first; the first that matches (and is not spent) applies. None matches -> the reply
{"decision": "review", "confidence": 0.0, "reason": "no scripted answer", "rules_applied": []}.
Embedding requests (InvokeModel, /v1/embeddings) consult the rules for "fail" and "delay_seconds" only: their
vectors are always the deterministic ones below, and they never spend a reply rule's "times".

Token usage a rule does not give: input = ceil(characters of the prompt text / 4), output = ceil(characters of
the answer (the JSON of the reply, or the text) / 4), each at least 1.

Embeddings: the lowercase words [a-z0-9]+ of the text, each hashed (SHA-256) to an index below `dims` and a sign,
summed and L2-normalised (no words: the zero vector). Texts sharing words have a higher cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from dataclasses import dataclass, field

APIS = ("converse", "invoke_model", "chat", "embeddings", "judge")
FAILURES = ("throttle", "timeout", "validation", "unavailable", "hang")
NO_ANSWER = {"decision": "review", "confidence": 0.0, "reason": "no scripted answer", "rules_applied": []}
HANG_SECONDS = 30.0
RULE_FIELDS = {"match", "reply", "text", "fail", "times", "delay_seconds", "usage", "apis"}

SCRIPT_PATH = "/_ledgix/model/script"
REQUESTS_PATH = "/_ledgix/model/requests"

_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> int:
    """The emulators' token count of a text: ceil(characters / 4), at least 1."""
    return max(1, math.ceil(len(text) / 4))


def embedding(text: str, dims: int, normalize: bool = True) -> list[float]:
    """The deterministic embedding of `text` (see the module docstring)."""
    vector = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:8], "big") % dims] += 1.0 if digest[8] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if normalize and norm else vector


@dataclass
class Rule:
    match: str
    reply: dict | None = None
    text: str | None = None
    fail: str | None = None
    times: int | None = None
    delay_seconds: float | None = None
    usage: dict = field(default_factory=dict)
    apis: list[str] | None = None
    calls: int = 0  # matching calls this rule has applied to
    failed: int = 0  # of which failed
    answered: int = 0  # of which answered (counts towards "times" for a rule without "fail")

    @staticmethod
    def parse(raw: object) -> "Rule":
        if not isinstance(raw, dict):
            raise ValueError("each rule must be a JSON object")
        unknown = set(raw) - RULE_FIELDS
        if unknown:
            raise ValueError(f"unknown rule fields {sorted(unknown)}; allowed: {sorted(RULE_FIELDS)}")
        if not isinstance(raw.get("match"), str):
            raise ValueError('"match" is required and must be a string')
        reply, text, fail = raw.get("reply"), raw.get("text"), raw.get("fail")
        if reply is not None and not isinstance(reply, dict):
            raise ValueError('"reply" must be a JSON object')
        if text is not None and not isinstance(text, str):
            raise ValueError('"text" must be a string')
        if reply is not None and text is not None:
            raise ValueError('give "reply" or "text", not both')
        if fail is not None and fail not in FAILURES:
            raise ValueError(f'"fail" must be one of {list(FAILURES)}')
        times = raw.get("times")
        if times is not None and (type(times) is not int or times < 0):
            raise ValueError('"times" must be a non-negative integer or null')
        delay = raw.get("delay_seconds")
        if delay is not None and (type(delay) not in (int, float) or delay < 0):
            raise ValueError('"delay_seconds" must be a non-negative number')
        usage = {} if raw.get("usage") is None else raw["usage"]
        if not isinstance(usage, dict) or set(usage) - {"input_tokens", "output_tokens"} or any(
                type(v) is not int or v < 0 for v in usage.values()):
            raise ValueError('"usage" must be {"input_tokens": n, "output_tokens": m} with non-negative integers')
        apis = raw.get("apis")
        if apis is not None and (not isinstance(apis, list) or not apis or any(a not in APIS for a in apis)):
            raise ValueError(f'"apis" must be a non-empty list of {list(APIS)}')
        return Rule(match=raw["match"], reply=reply, text=text, fail=fail, times=times,
                    delay_seconds=None if delay is None else float(delay), usage=dict(usage), apis=apis)

    def describe(self) -> dict:
        out = {"match": self.match}
        for name in ("reply", "text", "fail", "times", "delay_seconds", "apis"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.usage:
            out["usage"] = self.usage
        out["calls"] = self.calls
        return out


@dataclass
class Outcome:
    """What the model does with one request. `fail` is None (answer) or throttle/timeout/validation/unavailable;
    a hang has already been slept through and answers normally."""
    fail: str | None
    reply: dict | None
    text: str | None
    input_tokens: int
    output_tokens: int

    @property
    def answer(self) -> str:
        """The answer as text: the raw text, or the reply's JSON."""
        return self.text if self.text is not None else json.dumps(self.reply)


class ScriptedModel:
    """Rules and a request log, shared by a server's request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[Rule] = []
        self.log: list[dict] = []
        self.stopping = threading.Event()  # set on shutdown: cuts every sleep short

    def stop(self) -> None:
        self.stopping.set()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stopping.wait(seconds)

    # --- the control API ---------------------------------------------------------------------------------------

    def control(self, method: str, path: str, body: bytes) -> tuple[int, object] | None:
        """Serve a control request: (status, JSON answer), or None when `path` is not a control path."""
        if path not in (SCRIPT_PATH, REQUESTS_PATH):
            return None
        if method == "GET":
            with self.lock:
                if path == SCRIPT_PATH:
                    return 200, {"rules": [rule.describe() for rule in self.rules]}
                return 200, list(self.log)
        if method != "POST":
            return 405, {"error": "use GET or POST"}
        try:
            request = json.loads(body or b"{}")
        except ValueError as e:
            return 400, {"error": f"not JSON: {e}"}
        if not isinstance(request, dict):
            return 400, {"error": "expected a JSON object"}
        if path == REQUESTS_PATH:
            if set(request) != {"reset"} or request["reset"] is not True:
                return 400, {"error": 'expected {"reset": true}'}
            with self.lock:
                self.log.clear()
            return 200, []
        if not request or set(request) - {"rules", "reset"}:
            return 400, {"error": 'expected {"rules": [...]} and/or {"reset": true}'}
        if "reset" in request and request["reset"] is not True:
            return 400, {"error": '"reset" must be true'}
        raw_rules = request.get("rules", [])
        if not isinstance(raw_rules, list):
            return 400, {"error": '"rules" must be a list'}
        try:
            rules = [Rule.parse(raw) for raw in raw_rules]
        except ValueError as e:
            return 400, {"error": str(e)}
        with self.lock:
            if request.get("reset"):
                self.rules.clear()
                self.log.clear()
            self.rules.extend(rules)
            return 200, {"rules": len(self.rules)}

    # --- a model call ------------------------------------------------------------------------------------------

    def call(self, api: str, model: str, prompt: str, body: object, *, embedding_call: bool = False,
             timeout_is_hang: bool = False) -> Outcome:
        """Log the request, apply the first matching rule (sleeping for delays and hangs) and return what to do.
        `timeout_is_hang`: the API has no timeout error (OpenAI), so a scripted timeout hangs instead."""
        assert api in APIS
        with self.lock:
            self.log.append({"api": api, "model": model, "prompt": prompt, "body": body})
            rule = self._select(api, prompt)
            fail, delay = None, 0.0
            if rule is not None:
                rule.calls += 1
                if rule.fail is not None and (rule.times is None or rule.failed < rule.times):
                    rule.failed += 1
                    fail = rule.fail
                elif not embedding_call:
                    rule.answered += 1
                hangs = rule.fail == "hang" or (rule.fail == "timeout" and timeout_is_hang)
                if hangs and fail is not None:
                    fail, delay = None, HANG_SECONDS if rule.delay_seconds is None else rule.delay_seconds
                elif not hangs:  # once a hanging rule's "times" are used up, it answers at once
                    delay = rule.delay_seconds or 0.0
        self.sleep(delay)
        if rule is not None and (rule.reply is not None or rule.text is not None):
            reply, text = rule.reply, rule.text
        else:
            reply, text = dict(NO_ANSWER), None
        usage = rule.usage if rule is not None else {}
        answer = text if text is not None else json.dumps(reply)
        return Outcome(fail=fail, reply=reply, text=text,
                       input_tokens=usage.get("input_tokens", tokens(prompt)),
                       output_tokens=usage.get("output_tokens", tokens(answer)))

    def _select(self, api: str, prompt: str) -> Rule | None:
        for rule in reversed(self.rules):
            if rule.apis is not None and api not in rule.apis:
                continue
            if rule.match not in prompt:
                continue
            spent = rule.fail is None and rule.times is not None and rule.answered >= rule.times
            if spent:
                continue
            return rule
        return None
