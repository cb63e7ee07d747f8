"""Signing keys end to end (docs/ledger.md, "Signing keys"): rotation never breaks verification.

Embedded: `ledgix keys rotate --data-dir` between two runs of one vault: tokens signed before verify until they
expire, proof bundles spanning both keys verify with the SDK and `ledgix verify`.
AWS (emulator): delegated signing (VAULT_SIGNER_BACKEND=aws_kms_delegated) with 20 s key periods: the SDK
verifies every token across key changes, no KMS call is made per approval, bundles carry the delegated key's
certificate and verify, a forged certificate is refused, and a root rotation (a new KMS key) keeps earlier
bundles verifying. The delegated vault uses its own DynamoDB table, so its key registry is its own.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledgix_python import LedgixClient, VaultConfig
from ledgix_python.models import ClearanceRequest

from conftest import BACKEND, Vault, unique, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aws"))
from resources import fresh_database, hot_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LEDGIX_BIN", ROOT / "target" / "release" / "ledgix"))
APPROVE = 'package keys\ndefault decision := "deny"\ndecision := "approve" if { input.tool_args.amount < 100 }'
PERIOD = 20


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sdk(v: Vault) -> LedgixClient:
    return LedgixClient(VaultConfig(vault_url=v.url, vault_api_key=v.api_key, max_retries=0))


def approve(client: LedgixClient, tool: str, n: int):
    result = client.request_clearance(ClearanceRequest(tool_name=tool, tool_args={"amount": 1, "n": n}))
    assert result.status == "approved" and result.token, result
    return result


def wait_sealed(v: Vault, request_id: str, timeout: float = 60) -> dict:
    def sealed():
        r = v.http().get("/ledger/proof/bundle", params={"request_id": request_id})
        return r.json() if r.status_code == 200 else None
    return wait_for(sealed, timeout=timeout, interval=0.3, what=f"a proof bundle for {request_id}")


def verify_cli(bundle: dict, jwks: dict, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    bundle_file, jwks_file = tmp_path / f"{name}.json", tmp_path / f"{name}.jwks.json"
    bundle_file.write_text(json.dumps(bundle))
    jwks_file.write_text(json.dumps(jwks))
    return subprocess.run([str(BIN), "verify", "bundle", str(bundle_file), "--jwks", str(jwks_file)],
                          capture_output=True, text=True)


def kids(jwks: dict) -> set[str]:
    return {k["kid"] for k in jwks["keys"]}


# --- embedded: ledgix keys rotate --------------------------------------------------------------------------


@pytest.mark.skipif(BACKEND != "embedded", reason="the data directory's key ring is the embedded backend's")
def test_keys_rotate_keeps_tokens_and_bundles_verifying(fresh_vault, tmp_path):
    v = fresh_vault
    v.env["VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS"] = "1"
    v.start()
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE)
    before = approve(sdk(v), tool, 1)
    old_kid = jwt.get_unverified_header(before.token)["kid"]
    wait_sealed(v, before.request_id)
    v.stop()

    rotated = subprocess.run([str(BIN), "keys", "rotate", "--data-dir", str(v.data_dir)], capture_output=True, text=True)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    listed = subprocess.run([str(BIN), "keys", "list", "--data-dir", str(v.data_dir)], capture_output=True, text=True)
    assert listed.returncode == 0 and old_kid in listed.stdout, listed.stdout + listed.stderr

    v.start()
    jwks = v.http().get("/.well-known/jwks.json").json()
    assert old_kid in kids(jwks) and len(kids(jwks)) == 2, jwks
    client, verifier = sdk(v), sdk(v)  # request_clearance verifies (and remembers) its own tokens: verify apart
    # A token signed before the rotation verifies (the SDK fetches the JWKS) and is consumed once.
    assert verifier.verify_token(before.token)["request_id"] == before.request_id
    consumed = v.http().post("/consume-token", json={"token": before.token, "tool_name": tool,
                                                      "tool_args": {"amount": 1, "n": 1}})
    assert consumed.status_code == 200, consumed.text
    after = approve(client, tool, 2)
    new_kid = jwt.get_unverified_header(after.token)["kid"]
    assert new_kid != old_kid and new_kid in kids(jwks)
    assert verifier.verify_token(after.token)["request_id"] == after.request_id
    wait_sealed(v, after.request_id)

    # The first decision's bundle: receipt and first checkpoint by the old key, consistency to a checkpoint
    # signed by the new one; both keys embedded, the old one marked retired with a real time.
    bundle = v.http().get("/ledger/proof/bundle", params={"request_id": before.request_id}).json()
    assert bundle["event"]["receipt_key_id"] == old_kid
    assert bundle["consistency"]["to_checkpoint"]["signer_key_id"] == new_kid
    embedded = {k["key_id"]: k for k in bundle["keys"]}
    assert set(embedded) == {old_kid, new_kid}
    assert embedded[old_kid]["retired_at"] and not embedded[new_kid]["retired_at"]
    assert all(not k["active_from"].startswith("1970") for k in embedded.values())
    assert client.verify_ledger_proof_bundle(bundle).intact
    result = verify_cli(bundle, jwks, tmp_path, "rotated")
    assert result.returncode == 0, result.stdout + result.stderr


# --- AWS: delegated signing -------------------------------------------------------------------------------


def boto(service: str):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))


def own_table() -> str:
    """A hot table for one vault only: its key registry is then its own, whatever other vaults of the run do."""
    return hot_table(boto("dynamodb"), f"ledgix-keys-{uuid.uuid4().hex[:8]}")


def own_database() -> str:
    """A control plane of its own: the anchor loop of a `ledgix dev --backend aws` process seals every tenant of
    its control plane, so sharing the suite's would sign other vaults' checkpoints with this vault's keys."""
    return fresh_database(os.environ["DATABASE_URL"], f"ledgix_keys_{uuid.uuid4().hex[:8]}")


def kms_operations(access_key: str) -> dict[str, int]:
    calls = httpx.get(f"{os.environ['AWS_ENDPOINT_URL']}/_ledgix/calls", params={"access_key": access_key}).json()
    return {c["operation"]: c["count"] for c in calls if c["service"] == "kms"}


def checkpoints(v: Vault) -> int:
    return len(v.http().get("/ledger/checkpoints", params={"limit": 500}).json()["checkpoints"])


@pytest.fixture(scope="module")
def delegated():
    if BACKEND != "aws":
        pytest.skip("delegated signing is the AWS backend's (KMS root key, DynamoDB key registry)")
    access_key = "E2EDELEGATED" + uuid.uuid4().hex[:6].upper()
    env = {"VAULT_SIGNER_BACKEND": "aws_kms_delegated", "VAULT_PRIVATE_KEY_BASE64": "",
           "VAULT_SIGNING_KEY_PERIOD_SECONDS": str(PERIOD), "VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS": "8",
           "VAULT_SIGNING_KEY_OVERLAP_SECONDS": "2", "VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS": "1",
           "VAULT_DYNAMODB_TABLE": own_table(), "DATABASE_URL": own_database(), "AWS_ACCESS_KEY_ID": access_key,
           "VAULT_KEY_ID": "e2e-root-1"}
    v = Vault(**env).start()
    yield {"vault": v, "access_key": access_key, "env": env}
    v.cleanup()


def test_tokens_verify_across_key_changes_without_kms_on_the_hot_path(delegated):
    v, access_key = delegated["vault"], delegated["access_key"]
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE)
    client, verifier = sdk(v), sdk(v)  # request_clearance verifies (and remembers) its own tokens: verify apart
    approve(client, tool, 0)  # opens the current key
    seen: dict[str, int] = {}
    kms_before, checkpoints_before, n = kms_operations(access_key), checkpoints(v), 0
    deadline = time.monotonic() + 2 * PERIOD + 5  # at least two key changes
    while time.monotonic() < deadline:
        n += 1
        result = approve(client, tool, n)
        kid = jwt.get_unverified_header(result.token)["kid"]
        seen[kid] = seen.get(kid, 0) + 1
        # Both clients verified with the JWKS they fetched once, and fetch it again on an unknown kid: keys
        # published ahead of their period make that work at every key change.
        assert verifier.verify_token(result.token)["request_id"] == result.request_id
        time.sleep(0.3)
    kms = {op: count - kms_before.get(op, 0) for op, count in kms_operations(access_key).items()}
    sealed = checkpoints(v) - checkpoints_before
    assert len(seen) >= 3, f"three key periods should have signed: {seen}"
    assert all(k.startswith("e2e-root-1.d") for k in seen), seen
    # Only the anchor loop of this process calls KMS Sign: per checkpoint sealed (this vault's only tenant) one
    # for the checkpoint and one for its C2SP note at export, and one certificate per key issued; never two per
    # approval as direct signing does.
    issued = len(seen) + 1
    assert kms.get("Sign", 0) <= 2 * sealed + issued, (kms, sealed, n)
    assert kms.get("Sign", 0) < n, f"{n} approvals made {kms} KMS calls"
    # One Decrypt per key opened (and the payload data keys of the envelope, reused for minutes).
    assert kms.get("Decrypt", 0) <= len(seen) + 2, kms
    jwks = v.http().get("/.well-known/jwks.json").json()
    assert "e2e-root-1" in kids(jwks) and set(seen) <= kids(jwks)
    # An independent verifier (PyJWT) with the published key of the last token's kid.
    last = approve(client, tool, n + 1)
    jwks = v.http().get("/.well-known/jwks.json").json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == jwt.get_unverified_header(last.token)["kid"])
    decoded = jwt.decode(last.token, jwt.PyJWK(jwk).key, algorithms=["EdDSA"], audience="ledgix-sdk",
                         options={"verify_iss": False})
    assert decoded["request_id"] == last.request_id


def test_bundles_carry_the_certificate_and_a_forged_one_is_refused(delegated, tmp_path):
    v = delegated["vault"]
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE)
    client = sdk(v)
    result = approve(client, tool, 1)
    bundle = wait_sealed(v, result.request_id)
    jwks = v.http().get("/.well-known/jwks.json").json()
    receipt_kid = bundle["event"]["receipt_key_id"]
    keys = {k["key_id"]: k for k in bundle["keys"]}
    assert receipt_kid.startswith("e2e-root-1.d") and bundle["inclusion"]["checkpoint"]["signer_key_id"] == "e2e-root-1"
    delegated_key, root = keys[receipt_kid], keys["e2e-root-1"]
    assert delegated_key["attestation_status"] == "certified" and delegated_key["attestation_key_id"] == "e2e-root-1"
    assert root["attestation_status"] == "root"
    certificate = json.loads(unb64url(delegated_key["attestation_payload"]))
    assert certificate["kid"] == receipt_kid and certificate["issuer"] == "e2e-root-1"
    assert certificate["not_before"][:19] <= bundle["event"]["accepted_at"][:19] < certificate["not_after"][:19]
    assert client.verify_ledger_proof_bundle(bundle).intact
    ok = verify_cli(bundle, jwks, tmp_path, "delegated")
    assert ok.returncode == 0, ok.stdout + ok.stderr

    # A forger with their own key: a certificate for it, signed by a key that is not the vault's root.
    forger = Ed25519PrivateKey.generate()
    fields = dict(certificate, not_after="2099-01-01T00:00:00Z")
    payload = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
    forged = json.loads(json.dumps(bundle))
    for key in forged["keys"]:
        if key["key_id"] == receipt_kid:
            key["attestation_payload"] = b64url(payload)
            key["attestation_signature"] = b64url(forger.sign(payload))
    refused = verify_cli(forged, jwks, tmp_path, "forged")
    assert refused.returncode == 1 and refused.stdout.startswith("FAILED"), refused.stdout + refused.stderr
    # Without any certificate the delegated key is not trusted either.
    stripped = json.loads(json.dumps(bundle))
    for key in stripped["keys"]:
        if key["key_id"] == receipt_kid:
            key["attestation_payload"] = key["attestation_signature"] = ""
            key["attestation_status"] = "root"
    refused = verify_cli(stripped, jwks, tmp_path, "stripped")
    assert refused.returncode == 1, refused.stdout + refused.stderr


def test_root_rotation_keeps_earlier_bundles_verifying(delegated, tmp_path):
    v, env = delegated["vault"], delegated["env"]
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE)
    early = approve(sdk(v), tool, 1)
    wait_sealed(v, early.request_id)
    v.stop()

    # The operator rotates the root: a new KMS key (Terraform's next signing_key_generations entry).
    new_root = boto("kms").create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    v.env.update(VAULT_KMS_KEY_ID=new_root, VAULT_KEY_ID="e2e-root-2")
    v.start()
    client, verifier = sdk(v), sdk(v)
    # The early token was signed by a key of the old root; it verifies until it expires.
    assert verifier.verify_token(early.token)["request_id"] == early.request_id
    later = approve(client, tool, 2)
    assert jwt.get_unverified_header(later.token)["kid"].startswith("e2e-root-2.d")
    assert verifier.verify_token(later.token)["request_id"] == later.request_id
    wait_sealed(v, later.request_id)

    def spanning():
        b = v.http().get("/ledger/proof/bundle", params={"request_id": early.request_id}).json()
        return b if b.get("consistency") and b["consistency"]["to_checkpoint"]["signer_key_id"] == "e2e-root-2" else None
    bundle = wait_for(spanning, timeout=30, interval=0.3, what="a checkpoint signed by the new root")
    keys = {k["key_id"]: k for k in bundle["keys"]}
    assert {"e2e-root-1", "e2e-root-2", bundle["event"]["receipt_key_id"]} <= set(keys)
    assert keys["e2e-root-1"]["retired_at"], "the old root is marked retired"
    assert not keys["e2e-root-1"]["active_from"].startswith("1970")
    jwks = v.http().get("/.well-known/jwks.json").json()
    assert {"e2e-root-1", "e2e-root-2"} <= kids(jwks)
    assert client.verify_ledger_proof_bundle(bundle).intact
    result = verify_cli(bundle, jwks, tmp_path, "root-rotation")
    assert result.returncode == 0, result.stdout + result.stderr
