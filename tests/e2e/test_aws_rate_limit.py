"""The per-key rate limit on the AWS backend (DynamoDB, one conditional update per request) under concurrency:
64 simultaneous requests on one key are each admitted or refused with 429 + Retry-After, never a 503, and no more
than `burst + rps × elapsed` are admitted (docs/configuration.md, "Rate limits"). Raw httpx: the SDK retries 429s.
Runs only with LEDGIX_E2E_BACKEND=aws (scripts/test.sh's second pass)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import BACKEND, Vault, assert_error, started

pytestmark = pytest.mark.skipif(BACKEND != "aws", reason="AWS backend only")

RPS, BURST, N = 1, 100, 64


@pytest.fixture(scope="module")
def limited_vault():
    # The per-address limit off: only the per-key limit is under test.
    v = started(Vault(VAULT_RATE_LIMIT_RPS=str(RPS), VAULT_RATE_LIMIT_BURST=str(BURST),
                      VAULT_CLIENT_RATE_LIMIT_RPS="0"))
    yield v
    v.cleanup()


def wave(vault: Vault, key: str, n: int = N) -> list[httpx.Response]:
    """`n` requests on one key, released together (one connection each)."""
    ready = threading.Barrier(n)

    def one(_):
        with vault.http(key) as http:
            http.get("/healthz")  # connect first, so the requests themselves start together
            ready.wait()
            # /usage reads DynamoDB alone: the answers are the limiter's, not the tenant database's capacity.
            return http.get("/usage", params={"day": "2026-11-27"})

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def codes(responses) -> dict[int, int]:
    seen: dict[int, int] = {}
    for r in responses:
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
    return seen


def test_concurrent_requests_under_the_limit_are_all_admitted(limited_vault):
    _, key = limited_vault.new_tenant()
    started_at = time.monotonic()
    responses = wave(limited_vault, key)
    elapsed = time.monotonic() - started_at
    assert codes(responses) == {200: N}, ([r.text for r in responses if r.status_code != 200][:3],
                                          limited_vault.stderr_tail())
    # X-RateLimit-Remaining follows the bucket down: the last admitted sees 100 − 64, plus what refilled.
    remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in responses)
    assert remaining[-1] <= BURST - 1 and remaining[0] <= BURST - N + RPS * elapsed + 1, (remaining, elapsed)


def test_concurrent_requests_over_the_limit_get_only_200s_and_429s(limited_vault):
    _, key = limited_vault.new_tenant()
    started_at = time.monotonic()
    responses = wave(limited_vault, key) + wave(limited_vault, key)  # 128 requests on a bucket of 100
    elapsed = time.monotonic() - started_at
    seen = codes(responses)
    assert set(seen) <= {200, 429}, (seen, [r.text for r in responses if r.status_code not in (200, 429)][:2],
                                     limited_vault.stderr_tail())
    assert seen.get(429, 0) > 0, seen
    # Within the bound: the burst, plus one per second of the test at 1 rps (rounded up).
    assert BURST <= seen[200] <= BURST + RPS * elapsed + 1, (seen, elapsed)
    for r in responses:
        if r.status_code == 429:
            assert_error(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers["X-RateLimit-Limit"] == str(BURST)
            assert r.headers["X-RateLimit-Remaining"] == "0"
