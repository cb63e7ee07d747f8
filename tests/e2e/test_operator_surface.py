"""The operator surface of a real `ledgix dev`: the per-client-address limit in front of key lookup
(VAULT_CLIENT_RATE_LIMIT_*), how administration routes are admitted (VAULT_ADMIN_AUTH), and the admin key's
minimum length. Raw httpx: the SDK retries 429s by itself. Each test starts its own vault."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from conftest import BIN, Vault, assert_error, started

WRONG = {"X-Vault-API-Key": "lvk_e2e_not_a_key_" + "0" * 24}


@pytest.fixture()
def client_limited_vault():
    v = started(Vault(VAULT_CLIENT_RATE_LIMIT_RPS="1", VAULT_CLIENT_RATE_LIMIT_BURST="5"))
    yield v
    v.cleanup()


def test_wrong_keys_from_one_address_are_throttled_before_any_key_lookup(client_limited_vault):
    v = client_limited_vault
    seen = []
    for _ in range(30):  # a bucket of 5 refilling at 1/s empties long before 30 quick requests
        r = httpx.get(f"{v.url}/policies", headers=WRONG)
        seen.append(r.status_code)
        if r.status_code == 429:
            break
    assert seen[-1] == 429, seen
    assert set(seen[:-1]) == {401}, seen
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    assert r.headers["X-RateLimit-Limit"] == "5"
    # The address is throttled whatever it presents: a valid key does not get past the limit either.
    limited = httpx.get(f"{v.url}/policies", headers={"X-Vault-API-Key": v.tenant_admin_key})
    assert_error(limited, 429, "rate_limited")


def test_admin_auth_iam_refuses_every_admin_request_outside_api_gateway():
    v = started(Vault(VAULT_ADMIN_AUTH="iam"))
    try:
        r = httpx.post(f"{v.url}/admin/tenants", json={"name": "nope"},
                       headers={"X-Admin-API-Key": v.admin_key, "Idempotency-Key": "iam-1"})
        assert_error(r, 403, "forbidden")
        # Tenant routes are not affected.
        ok = httpx.get(f"{v.url}/policies", headers={"X-Vault-API-Key": v.tenant_admin_key})
        assert ok.status_code == 200, ok.text
    finally:
        v.cleanup()


def test_admin_auth_off_serves_no_admin_routes():
    v = started(Vault(VAULT_ADMIN_AUTH="off"))
    try:
        r = httpx.post(f"{v.url}/admin/tenants", json={"name": "nope"},
                       headers={"X-Admin-API-Key": v.admin_key, "Idempotency-Key": "off-1"})
        assert_error(r, 404)
    finally:
        v.cleanup()


def test_a_short_admin_key_stops_start_up_with_one_line_naming_it(tmp_path):
    short = "lva_short_admin_key_123"  # 23 bytes
    run = subprocess.run([str(BIN), "dev", "--addr", "127.0.0.1:0", "--data-dir", str(tmp_path)],
                         env={"PATH": "/usr/bin:/bin", "LEDGIX_ADMIN_API_KEY": short, "RUST_LOG": "warn"},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert "LEDGIX_ADMIN_API_KEY" in output and "32" in output, output
    assert short not in output, "the key itself is never printed"
