"""tool_args_hash is SHA-256 over RFC 8785 (JCS) canonical JSON, checked against the `rfc8785` package on the inputs
where canonicalisers usually go wrong: key order by UTF-16 code units, ECMAScript number formatting, string escapes.
Then the consequence: any JSON spelling of the same value consumes the token; any different value does not."""

from __future__ import annotations

import hashlib
import json

import jwt
import pytest
import rfc8785
from ledgix_python.models import ClearanceRequest

from conftest import assert_error, unique

APPROVE_ALL = 'package e2e_all\ndecision := "approve"\n'

CASES = {
    # RFC 8785 §3.2.3: sorting by UTF-16 code units puts U+1F600 (surrogates D83D..) before U+FB33; UTF-8 byte
    # or code point order would not.
    "utf16_key_order": {"\u20ac": "Euro", "\r": "CR", "\ufb33": "Hebrew", "1": "One", "\U0001F600": "smiley",
                        "\u0080": "ctrl", "\u00f6": "o-umlaut", "a": 1, "A": 2, "": "empty key"},
    # ECMAScript Number.prototype.toString: integral floats without ".0", exponent switch at 1e21 and 1e-7.
    "numbers": {"n": [1.0, -1.0, 0.0, -0.0, 1e21, 1e20, 1e-7, 1e-6, 0.1, 123456789.5, 333333333.3333333,
                      5e-324, 1.7976931348623157e308, 9007199254740991, -9007199254740991, 4.5, 2e-3, 1.5e300]},
    # Only ", \\ and controls are escaped; controls as \\b \\f \\n \\r \\t or \\u00XX lowercase; "/", DEL, U+2028 literal.
    "escapes": {"s": "\"\\/\b\f\n\r\t\u0000\u001f\u007f\u2028\u2029</script>", "unicode": "naïve café ☕ 𝄞"},
    "nesting": {"z": {"y": {"x": [{"b": 1, "a": [None, True, False, {}, []]}]}}, "a": [], "m": {}},
    "empty": {},
}


@pytest.fixture(scope="module")
def tool(vault):
    name = unique("canon")
    vault.register(unique("p"), [name], rego=APPROVE_ALL)
    return name


def jcs_hash(value) -> str:
    return "sha256:" + hashlib.sha256(rfc8785.dumps(value)).hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_sdk_request_hash_matches_rfc8785(vault, client, tool, case):
    args = CASES[case]
    resp = client().request_clearance(ClearanceRequest(tool_name=tool, tool_args=args))
    claims = jwt.decode(resp.token, options={"verify_signature": False})
    assert claims["tool_args_hash"] == jcs_hash(args), rfc8785.dumps(args)
    with vault.http() as http:
        consumed = http.post("/consume-token", json={"token": resp.token, "tool_name": tool, "tool_args": args})
    assert consumed.status_code == 200, consumed.text
    assert consumed.json()["claims"]["tool_args_hash"] == claims["tool_args_hash"]


def _raw_token(http, tool: str, raw_args: bytes) -> str:
    body = b'{"tool_name": ' + json.dumps(tool).encode() + b', "tool_args": ' + raw_args + b"}"
    r = http.post("/request-clearance", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    return r.json()["token"]


def _consume(http, tool: str, token: str, raw_args: bytes):
    body = (b'{"token": "' + token.encode() + b'", "tool_name": ' + json.dumps(tool).encode()
            + b', "tool_args": ' + raw_args + b"}")
    return http.post("/consume-token", content=body, headers={"Content-Type": "application/json"})


SAME_VALUE = [
    (b'{"a": 1, "b": [1, 2]}', b'{"b":[1,2],"a":1}'),
    (b'{"x": 1}', b'{"x": 1.0}'),
    (b'{"x": 100}', b'{"x": 1E2}'),
    (b'{"x": 0.5}', b'{"x": 5e-1}'),
    (b'{"x": 1e21}', b'{"x": 1000000000000000000000}'),
    (b'{"s": "\xc3\xa9/"}', b'{"s": "\\u00e9\\/"}'),
    (b'{"k\xe2\x82\xac": true}', b'{"k\\u20AC": true}'),
    (b'{"n": null, "e": {}}', b'{ "e" : { } , "n" : null }'),
]


@pytest.mark.parametrize("issued,presented", SAME_VALUE)
def test_any_spelling_of_the_same_value_consumes(vault, tool, issued, presented):
    with vault.http() as http:
        token = _raw_token(http, tool, issued)
        r = _consume(http, tool, token, presented)
        assert r.status_code == 200, r.text


DIFFERENT_VALUE = [
    (b'{"x": 1}', b'{"x": "1"}'),
    (b'{"x": 1}', b'{"x": 1.0000000000000002}'),
    (b'{"x": null}', b"{}"),
    (b'{"x": [1, 2]}', b'{"x": [2, 1]}'),
    (b'{"s": "\xc3\xa9"}', b'{"s": "e\xcc\x81"}'),  # NFC vs NFD: JCS does not normalise Unicode
    (b'{"s": "a"}', b'{"s": "A"}'),
    (b'{"x": true}', b'{"x": 1}'),
    (b'{"x": {"y": 1}}', b'{"x": {"y": 1, "z": 2}}'),
]


@pytest.mark.parametrize("issued,presented", DIFFERENT_VALUE)
def test_a_different_value_is_refused_and_the_token_survives(vault, tool, issued, presented):
    with vault.http() as http:
        token = _raw_token(http, tool, issued)
        assert_error(_consume(http, tool, token, presented), 422, "tool_args_mismatch")
        r = _consume(http, tool, token, issued)
        assert r.status_code == 200, "a refused presentation does not burn the token"
