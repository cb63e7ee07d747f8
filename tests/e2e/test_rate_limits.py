"""Rate limiting on a separate vault (VAULT_RATE_LIMIT_RPS=1, VAULT_RATE_LIMIT_BURST=3). Raw httpx, because the SDK
retries 429s by itself; one test checks exactly that. Every test uses its own tenant: buckets are per API key."""

from __future__ import annotations

import time

import pytest

from conftest import APPROVE_SMALL, assert_error, unique


def exhaust(http, path: str = "/policies", attempts: int = 50):
    """Send until the first 429 (a bucket of 3 refilling at 1/s empties long before 50 requests)."""
    seen = []
    for _ in range(attempts):
        r = http.get(path)
        seen.append(r)
        if r.status_code == 429:
            return seen
    raise AssertionError(f"no 429 after {attempts} requests: {[r.status_code for r in seen]}")


@pytest.fixture()
def tenant(rate_limited_vault):
    _, key = rate_limited_vault.new_tenant()
    with rate_limited_vault.http(key) as http:
        yield http, key


def test_429_carries_retry_after_and_the_limit_headers(tenant):
    http, _ = tenant
    seen = exhaust(http)
    assert all(r.status_code == 200 for r in seen[:-1]) and len(seen) >= 3, [r.status_code for r in seen]
    limited = seen[-1]
    error = assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) >= 1
    assert error["message"]


def test_limit_headers_on_every_authenticated_tenant_response(rate_limited_vault, tenant):
    http, _ = tenant
    responses = [
        http.get("/policies"),
        http.get("/clearance-status/no-such-request"),  # an error response is still an authenticated one
        http.post("/request-clearance", json={"tool_name": unique("t"), "tool_args": {}}),
    ]
    assert [r.status_code for r in responses] == [200, 404, 200], [r.text for r in responses]
    for r in responses:
        assert r.headers["X-RateLimit-Limit"] == "3"
        assert 0 <= int(r.headers["X-RateLimit-Remaining"]) <= 2
        assert int(r.headers["X-RateLimit-Reset"]) >= 0


def test_the_bucket_refills_after_retry_after(tenant):
    http, _ = tenant
    limited = exhaust(http)[-1]
    time.sleep(int(limited.headers["Retry-After"]) + 0.5)
    again = http.get("/policies")
    assert again.status_code == 200, again.text


def test_the_sdk_waits_out_429s_by_itself(rate_limited_vault, tenant):
    http, key = tenant
    tool = unique("refund")
    rate_limited_vault.register(unique("p"), [tool], rego=APPROVE_SMALL, api_key=key)
    exhaust(http)
    from ledgix_python.models import ClearanceRequest

    client = rate_limited_vault.client(key)
    try:
        resp = client.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 1}))
        assert resp.status == "approved" and resp.token
    finally:
        client.close()


def test_unauthenticated_traffic_does_not_drain_a_tenant(rate_limited_vault, tenant):
    http, key = tenant
    import httpx

    for _ in range(10):
        assert httpx.get(f"{rate_limited_vault.url}/policies", headers={"X-Vault-API-Key": key + "x"}).status_code == 401
    assert http.get("/policies").status_code == 200


def test_buckets_are_per_tenant(rate_limited_vault, tenant):
    http, _ = tenant
    exhaust(http)
    _, other = rate_limited_vault.new_tenant()
    with rate_limited_vault.http(other) as other_http:
        assert other_http.get("/policies").status_code == 200


def test_public_routes_are_not_limited(rate_limited_vault):
    import httpx

    codes = [httpx.get(f"{rate_limited_vault.url}{p}").status_code for p in ["/healthz", "/.well-known/jwks.json"] * 5]
    assert set(codes) == {200}
