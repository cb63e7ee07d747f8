"""npm `jose` (an independent JOSE implementation) accepts our tokens from our JWKS and rejects tampering."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import APPROVE_SMALL, unique

SCRIPT = Path(__file__).parent / "jose" / "verify.mjs"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_jose_verifies_tokens(vault):
    if not (SCRIPT.parent / "node_modules" / "jose").exists():
        pytest.fail("run `npm ci --prefix tests/e2e/jose` (scripts/test.sh does)")
    tool = unique("refund")
    vault.register(unique("p"), [tool], rego=APPROVE_SMALL)
    token = vault.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 4}}).json()["token"]
    jwks = f"{vault.url}/.well-known/jwks.json"
    ok = subprocess.run(["node", str(SCRIPT), jwks, token], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    verified = json.loads(ok.stdout)
    assert verified["header"]["alg"] == "EdDSA" and verified["payload"]["tool"] == tool
    head, payload, sig = token.split(".")
    bad = subprocess.run(["node", str(SCRIPT), jwks, f"{head}.{payload}.{sig[::-1]}"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    wrong_audience = subprocess.run(["node", str(SCRIPT), jwks, token, "alcv-vault", "someone-else"],
                                    capture_output=True, text=True, timeout=60)
    assert wrong_audience.returncode == 1
