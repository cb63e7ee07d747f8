"""Fixtures: real `ledgix dev` processes on free loopback ports, clients built from the public SDK."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
from ledgix_python import LedgixClient, VaultConfig

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LEDGIX_BIN", ROOT / "target" / "release" / "ledgix"))
# `embedded` (default) or `aws`: the same suite runs against `ledgix dev --backend aws`, configured by the
# environment scripts/test.sh exports (PostgreSQL, the AWS emulator).
BACKEND = os.environ.get("LEDGIX_E2E_BACKEND", "embedded")
# On AWS every vault process shares the tenants' state, so they must share the signing key too (KMS in
# production): one key for the whole run.
SHARED_KEY = {"VAULT_PRIVATE_KEY_BASE64": base64.b64encode(secrets.token_bytes(32)).decode()} if BACKEND == "aws" else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vault:
    """One `ledgix dev` process; restartable on the same data directory."""

    def __init__(self, **env: str) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="ledgix-e2e-"))
        self.api_key = "lvk_e2e_" + secrets.token_urlsafe(18)
        self.admin_key = "lva_e2e_" + secrets.token_urlsafe(18)
        self.env = {"VAULT_RATE_LIMIT_RPS": "0", "RUST_LOG": "warn", **SHARED_KEY, **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []

    def start(self) -> "Vault":
        env = dict(os.environ, LEDGIX_DEV_API_KEY=self.api_key, LEDGIX_ADMIN_API_KEY=self.admin_key, **self.env)
        self.proc = subprocess.Popen(
            [str(BIN), "dev", "--backend", BACKEND, "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        self.stdout_lines = []
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.stdout_lines.append(line.strip())
            if line.startswith("LEDGIX_DEV_TENANT_ID="):
                break
        if not any(l.startswith("LEDGIX_VAULT_URL=") for l in self.stdout_lines):
            self.stop()
            raise RuntimeError(f"vault did not start: {self.proc.stderr.read()[-3000:] if self.proc.stderr else ''}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("vault never answered /healthz")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> "Vault":
        self.stop()
        return self.start()

    def printed(self, name: str) -> str:
        return next(l.split("=", 1)[1] for l in self.stdout_lines if l.startswith(name + "="))

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- helpers -------------------------------------------------------------------------------------
    def client(self, api_key: str | None = None, **config) -> LedgixClient:
        defaults = dict(review_poll_interval=0.1, review_timeout=30, max_retries=0)
        return LedgixClient(VaultConfig(vault_url=self.url, vault_api_key=api_key or self.api_key, **{**defaults, **config}))

    def http(self, api_key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Vault-API-Key": api_key or self.api_key}, timeout=30)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Admin-API-Key": self.admin_key}, timeout=30)

    def new_tenant(self) -> tuple[str, str]:
        with self.admin() as admin:
            r = admin.post("/admin/tenants", json={"name": "tenant-" + uuid.uuid4().hex[:8]})
        assert r.status_code == 201, r.text
        body = r.json()
        return body["tenant_id"], body["api_key"]

    def register(self, policy_id: str, tools: list[str], rego: str | None = None, rules: list[str] | None = None,
                 api_key: str | None = None) -> dict:
        body = {"policy_id": policy_id, "tools": tools, "rules": rules or [], "description": "e2e"}
        if rego is not None:
            body["rego"] = rego
        with self.http(api_key) as http:
            r = http.post("/register-policy", json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()


@pytest.fixture(scope="session")
def vault():
    v = Vault().start()
    yield v
    v.cleanup()


@pytest.fixture()
def fresh_vault():
    v = Vault()
    yield v
    v.cleanup()


@pytest.fixture(scope="module")
def rate_limited_vault():
    v = Vault(VAULT_RATE_LIMIT_RPS="1", VAULT_RATE_LIMIT_BURST="3").start()
    yield v
    v.cleanup()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


APPROVE_SMALL = """
package e2e
default decision := "deny"
decision := "approve" if { input.tool_args.amount <= 100 }
decision := "review" if { input.tool_args.amount > 100; input.tool_args.amount <= 1000 }
reason := "over the hard limit" if { input.tool_args.amount > 1000 }
reason_code := "amount_over_limit" if { input.tool_args.amount > 1000 }
"""
