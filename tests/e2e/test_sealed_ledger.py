"""Sealed ledger end to end: sequencing, checkpoints, proofs and exports, checked with ledgix-python and
independent code (the SDK's own Merkle verifiers, `cryptography` for note signatures), plus tamper cases."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from ledgix_python import LedgixClient, VaultConfig
from ledgix_python.models import ClearanceRequest

from conftest import BACKEND, Vault, aws_client

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LEDGIX_BIN", ROOT / "target" / "release" / "ledgix"))


@pytest.fixture(scope="module")
def sealing_vault():
    v = Vault(VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS="1").start()
    yield {"url": v.url, "key": v.api_key, "tenant_admin_key": v.tenant_admin_key, "data_dir": v.data_dir,
           "tenant_id": v.printed("LEDGIX_DEV_TENANT_ID")}
    v.cleanup()


@pytest.fixture(scope="module")
def sealed(sealing_vault):
    """Three rounds of decisions, each sealed into its own checkpoint."""
    url, key = sealing_vault["url"], sealing_vault["key"]
    rego = 'package seal\ndefault decision := "deny"\ndecision := "approve" if { input.tool_args.amount < 100 }'
    httpx.post(f"{url}/register-policy", headers={"X-Vault-API-Key": sealing_vault["tenant_admin_key"]},
               json={"policy_id": "seal", "tools": ["seal_refund"], "rego": rego}).raise_for_status()
    client = LedgixClient(VaultConfig(vault_url=url, vault_api_key=key, max_retries=0))
    request_ids = []
    for round_no in range(3):
        for i in range(4):
            args = {"amount": 10 + i, "round": round_no, "note": "héllo", "ratio": 0.5}
            request_ids.append(client.request_clearance(ClearanceRequest(tool_name="seal_refund", tool_args=args)).request_id)
        wait_sealed(client, len(request_ids))
    return {"client": client, "request_ids": request_ids, **sealing_vault}


def wait_sealed(client: LedgixClient, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        entries = client.fetch_ledger(500)
        if len(entries) >= count and all(e.leaf_index is not None for e in entries):
            return
        time.sleep(0.2)
    raise AssertionError("events were not sealed in time")


def test_sdk_verifies_entries_and_checkpoints(sealed):
    client = sealed["client"]
    # Export follows sealing asynchronously (on the AWS backend any vault process may be mid-export).
    deadline = time.monotonic() + 30
    while any(c.export_status != "exported" for c in client.fetch_ledger_checkpoints(500)):
        assert time.monotonic() < deadline, "checkpoints were not exported in time"
        time.sleep(0.2)
    entries, checkpoints = client.fetch_ledger(500), client.fetch_ledger_checkpoints(500)
    assert len(checkpoints) >= 3
    assert checkpoints[-1].tree_size == len(entries) == 12
    result = client.verify_ledger_proof(entries, checkpoints)
    assert result.intact, (result.error, [(c.checkpoint_id, c.tree_size, c.signer_key_id) for c in checkpoints])
    assert result.verified_checkpoints == len(checkpoints) and result.coverage_note is None
    scheme = "file://" if BACKEND == "embedded" else "s3://"
    assert all(c.export_status == "exported" and c.export_uri.startswith(scheme) for c in checkpoints)


def test_bundle_with_consistency_verifies(sealed):
    client = sealed["client"]
    bundle = client.fetch_ledger_proof_bundle(sealed["request_ids"][0])
    assert bundle.consistency is not None and bundle.keys
    result = client.verify_ledger_proof_bundle(bundle)
    assert result.intact, result.error
    assert result.verified_checkpoints == 2
    latest = client.fetch_ledger_proof_bundle(sealed["request_ids"][-1])
    assert client.verify_ledger_proof_bundle(latest).intact


def test_proofs_check_out_with_the_sdks_own_merkle_code(sealed):
    client = sealed["client"]
    for rid in sealed["request_ids"]:
        proof = client.fetch_ledger_inclusion_proof(rid)
        assert client._verify_inclusion_proof(proof.leaf_hash, proof.leaf_index, proof.tree_size, proof.path,
                                              proof.checkpoint.root_hash)
    checkpoints = client.fetch_ledger_checkpoints(500)
    for a in checkpoints:
        for b in checkpoints:
            if a.checkpoint_id <= b.checkpoint_id:
                cp = client.fetch_ledger_consistency_proof(a.checkpoint_id, b.checkpoint_id)
                assert client._verify_consistency_proof(a.tree_size, b.tree_size, a.root_hash, b.root_hash, cp.path)
    leaves = [e.leaf_hash for e in sorted(client.fetch_ledger(500), key=lambda e: e.leaf_index)]
    assert client._merkle_root(leaves) == checkpoints[-1].root_hash


def test_tampering_is_detected(sealed):
    client = sealed["client"]
    rid = sealed["request_ids"][1]
    raw = httpx.get(f"{sealed['url']}/ledger/proof/bundle", params={"request_id": rid},
                    headers={"X-Vault-API-Key": sealed["key"]}).json()
    assert client.verify_ledger_proof_bundle(copy.deepcopy(raw)).intact

    changed_event = copy.deepcopy(raw)
    changed_event["event"]["tool_args"]["amount"] = 11.5
    assert not client.verify_ledger_proof_bundle(changed_event).intact

    changed_byte = copy.deepcopy(raw)
    changed_byte["event"]["reason"] = changed_byte["event"]["reason"][:-1] + "!"
    assert not client.verify_ledger_proof_bundle(changed_byte).intact

    wrong_path = copy.deepcopy(raw)
    assert wrong_path["inclusion"]["path"], "a tree of 12 leaves has a non-empty path"
    wrong_path["inclusion"]["path"][0] = "00" * 32
    assert not client.verify_ledger_proof_bundle(wrong_path).intact

    resigned = copy.deepcopy(raw)
    forger = Ed25519PrivateKey.generate()
    payload = base64.urlsafe_b64decode(resigned["inclusion"]["checkpoint"]["checkpoint_payload"] + "==")
    resigned["inclusion"]["checkpoint"]["checkpoint_signature"] = (
        base64.urlsafe_b64encode(forger.sign(payload)).decode().rstrip("="))
    assert not client.verify_ledger_proof_bundle(resigned).intact

    checkpoints = httpx.get(f"{sealed['url']}/ledger/checkpoints", params={"limit": 500},
                            headers={"X-Vault-API-Key": sealed["key"]}).json()["checkpoints"]
    entries = httpx.get(f"{sealed['url']}/ledger", params={"limit": 500},
                        headers={"X-Vault-API-Key": sealed["key"]}).json()["entries"]
    broken_chain = copy.deepcopy(checkpoints)
    broken_chain[1]["prev_checkpoint_hash"] = "ab" * 32
    assert not client.verify_ledger_proof(entries, broken_chain).intact
    changed_entry = copy.deepcopy(entries)
    changed_entry[3]["tool_args"]["round"] = 7
    assert not client.verify_ledger_proof(changed_entry, checkpoints).intact


def _jwk_public_key(url: str) -> tuple[str, bytes]:
    key = httpx.get(f"{url}/.well-known/jwks.json").json()["keys"][0]
    return key["kid"], base64.urlsafe_b64decode(key["x"] + "==")


@pytest.mark.skipif(BACKEND != "embedded", reason="exports go to S3 on the AWS backend (tests/aws checks them)")
def test_exported_log_is_standard_c2sp(sealed):
    """Parse the export with code written from the C2SP specs, not the vault's."""
    export = sealed["data_dir"] / "anchors" / "ledgix" / sealed["tenant_id"]
    _, public = _jwk_public_key(sealed["url"])
    note = (export / "checkpoint").read_text()
    body, _, signatures = note.rpartition("\n\n")
    body += "\n"
    origin, size, root_b64 = body.splitlines()
    assert origin == f"ledgix-vault/{sealed['tenant_id']}"
    line = signatures.strip()
    assert line.startswith("\u2014 " + origin + " ")
    sig = base64.b64decode(line.rsplit(" ", 1)[1])
    key_hash = hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]
    assert sig[:4] == key_hash
    Ed25519PublicKey.from_public_bytes(public).verify(sig[4:], body.encode())  # raises if invalid

    size = int(size)
    client = sealed["client"]
    width = size  # < 256 leaves: one partial tile
    bundle = (export / "tile" / "entries" / "000.p" / str(width)).read_bytes()
    entries, i = [], 0
    while i < len(bundle):
        n = int.from_bytes(bundle[i:i + 2], "big")
        entries.append(bundle[i + 2:i + 2 + n])
        i += 2 + n
    assert len(entries) == size
    leaves = [hashlib.sha256(b"\x00" + e).hexdigest() for e in entries]
    tile = (export / "tile" / "0" / "000.p" / str(width)).read_bytes()
    assert [tile[j * 32:(j + 1) * 32].hex() for j in range(size)] == leaves
    assert client._merkle_root(leaves) == base64.b64decode(root_b64).hex()
    sdk_checkpoint = json.loads((export / "checkpoints" / f"{len(list((export / 'checkpoints').iterdir()))}.json").read_text())
    assert sdk_checkpoint["tree_size"] == size and sdk_checkpoint["root_hash"] == base64.b64decode(root_b64).hex()


@pytest.mark.skipif(BACKEND != "embedded", reason="reads the export folder of the embedded backend")
def test_ledgix_verify_cli(sealed, tmp_path):
    url, key = sealed["url"], sealed["key"]
    rid = sealed["request_ids"][0]
    ok = subprocess.run([str(BIN), "verify", "bundle", f"{url}/ledger/proof/bundle?request_id={rid}", "--api-key", key],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("VERIFIED")
    raw = httpx.get(f"{url}/ledger/proof/bundle", params={"request_id": rid}, headers={"X-Vault-API-Key": key}).json()
    raw["event"]["tool_args"]["amount"] = 99
    tampered = tmp_path / "bundle.json"
    tampered.write_text(json.dumps(raw))
    bad = subprocess.run([str(BIN), "verify", "bundle", str(tampered)], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout.startswith("FAILED"), bad.stdout + bad.stderr

    export = sealed["data_dir"] / "anchors" / "ledgix" / sealed["tenant_id"]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(httpx.get(f"{url}/.well-known/jwks.json").text)
    good = tmp_path / "good.json"
    good.write_text(httpx.get(f"{url}/ledger/proof/bundle", params={"request_id": rid}, headers={"X-Vault-API-Key": key}).text)
    pinned = subprocess.run([str(BIN), "verify", "bundle", str(good), "--jwks", str(jwks)], capture_output=True, text=True)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    foreign = json.loads(good.read_text())
    forged_jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(Ed25519PrivateKey.generate().public_key()
                  .public_bytes_raw()).decode().rstrip("="), "kid": foreign["keys"][0]["key_id"]}
    foreign["keys"][0]["public_jwk"] = base64.urlsafe_b64encode(json.dumps(forged_jwk).encode()).decode().rstrip("=")
    good.write_text(json.dumps(foreign))
    refused = subprocess.run([str(BIN), "verify", "bundle", str(good), "--jwks", str(jwks)], capture_output=True, text=True)
    assert refused.returncode == 1 and "not one of the pinned vault keys" in refused.stdout, refused.stdout
    whole = subprocess.run([str(BIN), "verify", "log", str(export), "--jwks", str(jwks)], capture_output=True, text=True)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    copy_dir = tmp_path / "log"
    shutil.copytree(export, copy_dir)
    tiles = [p for p in (copy_dir / "tile" / "0").rglob("*") if p.is_file()]
    widest = max(tiles, key=lambda p: int(p.name))
    data = bytearray(widest.read_bytes())
    data[0] ^= 1
    widest.write_bytes(bytes(data))
    broken = subprocess.run([str(BIN), "verify", "log", str(copy_dir), "--jwks", str(jwks)], capture_output=True, text=True)
    assert broken.returncode == 1, broken.stdout + broken.stderr


def test_proof_for_unsealed_or_foreign_request_is_refused(sealed):
    url = sealed["url"]
    other = httpx.get(f"{url}/ledger/proof/bundle", params={"request_id": "no-such-request"},
                      headers={"X-Vault-API-Key": sealed["key"]})
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"


def _jwks_file(url: str, tmp_path: Path) -> Path:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(httpx.get(f"{url}/.well-known/jwks.json").text)
    return jwks


def _wait_exported(sealed) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        checkpoints = httpx.get(f"{sealed['url']}/ledger/checkpoints", headers={"X-Vault-API-Key": sealed["key"]}).json()["checkpoints"]
        if checkpoints and all(c["export_status"] == "exported" for c in checkpoints):
            return
        time.sleep(0.2)
    raise AssertionError("checkpoints were not exported in time")


@pytest.mark.skipif(BACKEND != "aws", reason="reads the tenant's log from the S3 anchor bucket")
def test_ledgix_verify_log_from_s3_and_its_url(sealed, tmp_path):
    """An auditor follows the tenant's log from S3 alone: s3:// with AWS credentials, or the objects' URLs."""
    _wait_exported(sealed)
    jwks = _jwks_file(sealed["url"], tmp_path)
    bucket = os.environ["VAULT_LEDGER_ANCHOR_BUCKET"]
    location = f"s3://{bucket}/ledgix/{sealed['tenant_id']}"
    from_s3 = subprocess.run([str(BIN), "verify", "log", location, "--jwks", str(jwks)], capture_output=True, text=True)
    assert from_s3.returncode == 0 and from_s3.stdout.startswith("VERIFIED"), from_s3.stdout + from_s3.stderr
    assert "12 entries" in from_s3.stdout

    # The same objects over plain HTTP(S) GETs (the emulator's path-style URLs). The bucket is private, so an
    # anonymous reader cannot fetch them: that is "unreadable" (exit 2), not a verdict on the log.
    s3 = aws_client("s3")
    url = f"{os.environ['AWS_ENDPOINT_URL']}/{bucket}/ledgix/{sealed['tenant_id']}"
    private = subprocess.run([str(BIN), "verify", "log", url, "--jwks", str(jwks)], capture_output=True, text=True)
    assert private.returncode == 2 and "403" in private.stderr and "VERIFIED" not in private.stdout, private.stderr
    # Published for auditors (a bucket policy granting anonymous reads of this tenant's prefix), it verifies.
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/ledgix/{sealed['tenant_id']}/*"}]}))
    try:
        over_http = subprocess.run([str(BIN), "verify", "log", url, "--jwks", str(jwks)], capture_output=True, text=True)
        assert over_http.returncode == 0 and over_http.stdout.startswith("VERIFIED"), over_http.stdout + over_http.stderr
    finally:
        s3.delete_bucket_policy(Bucket=bucket)

    # A tile rewritten in the bucket (a new object version) is caught.
    key = f"ledgix/{sealed['tenant_id']}/tile/0/000.p/12"
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    forged = bytearray(original)
    forged[0] ^= 1
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(forged))
    try:
        broken = subprocess.run([str(BIN), "verify", "log", location, "--jwks", str(jwks)], capture_output=True, text=True)
        assert broken.returncode == 1 and broken.stdout.startswith("FAILED"), broken.stdout + broken.stderr
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)

    missing = subprocess.run([str(BIN), "verify", "log", f"s3://{bucket}/ledgix/no-such-tenant", "--jwks", str(jwks)],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and "no exported checkpoints" in missing.stdout, missing.stdout + missing.stderr


@pytest.mark.skipif(BACKEND != "embedded", reason="serves the embedded export folder")
def test_ledgix_verify_log_and_bundle_over_https(sealed, tmp_path):
    """https:// sources are fetched with rustls against the system trust store (SSL_CERT_FILE honoured)."""
    import datetime
    import http.server
    import ssl
    import threading
    from functools import partial

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    _wait_exported(sealed)
    # A private CA and a localhost certificate it issued (webpki refuses a CA certificate as the server's own).
    now = datetime.datetime.now(datetime.timezone.utc)

    def issue(subject, issuer, public_key, signing_key, ca):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ledgix test CA")])
    ca_cert = issue(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    cert = issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), ca_name, key.public_key(), ca_key,
                 ca=False)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    export = sealed["data_dir"] / "anchors" / "ledgix"
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(export))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"https://localhost:{server.server_address[1]}/{sealed['tenant_id']}"
        jwks = _jwks_file(sealed["url"], tmp_path)
        env = {**os.environ, "SSL_CERT_FILE": str(ca_file)}
        ok = subprocess.run([str(BIN), "verify", "log", base, "--jwks", str(jwks)], capture_output=True, text=True, env=env)
        assert ok.returncode == 0 and ok.stdout.startswith("VERIFIED"), ok.stdout + ok.stderr
        bundle = httpx.get(f"{sealed['url']}/ledger/proof/bundle", params={"request_id": sealed["request_ids"][0]},
                           headers={"X-Vault-API-Key": sealed["key"]}).text
        (export / sealed["tenant_id"] / "bundle.json").write_text(bundle)
        one = subprocess.run([str(BIN), "verify", "bundle", f"{base}/bundle.json", "--jwks", str(jwks)],
                             capture_output=True, text=True, env=env)
        assert one.returncode == 0, one.stdout + one.stderr
        # Without trusting the certificate the fetch is refused: exit 2, nothing verified.
        untrusted = subprocess.run([str(BIN), "verify", "log", base, "--jwks", str(jwks)], capture_output=True, text=True,
                                   env={**os.environ, "SSL_CERT_FILE": str(tmp_path / "jwks.json")})
        assert untrusted.returncode == 2 and "VERIFIED" not in untrusted.stdout, untrusted.stdout + untrusted.stderr
    finally:
        server.shutdown()


def test_exported_checkpoint_objects_carry_their_final_export_fields(sealed):
    """Each exported checkpoints/<id>.json says what the vault recorded for its export — exported, where, when —
    and not the `pending` copy taken before it (docs/ledger.md, "Export"); only the S3 object version, which the
    write itself assigns, is left out of the object."""
    _wait_exported(sealed)
    recorded = httpx.get(f"{sealed['url']}/ledger/checkpoints",
                         headers={"X-Vault-API-Key": sealed["key"]}).json()["checkpoints"]
    assert len(recorded) >= 3
    for checkpoint in recorded:
        uri = checkpoint["export_uri"]
        if BACKEND == "embedded":
            assert uri.startswith("file://"), uri
            body = Path(uri.removeprefix("file://")).read_bytes()
        else:
            bucket, key = uri.removeprefix("s3://").split("/", 1)
            assert checkpoint["export_version_id"], checkpoint
            body = aws_client("s3").get_object(Bucket=bucket, Key=key,
                                               VersionId=checkpoint["export_version_id"])["Body"].read()
        assert uri.endswith(f"/checkpoints/{checkpoint['checkpoint_id']}.json"), uri
        exported = json.loads(body)
        assert exported["export_status"] == "exported" and exported["export_uri"] == uri, exported
        assert exported["exported_at"] == checkpoint["exported_at"], (exported, checkpoint)
        assert "export_version_id" not in exported
        assert {k: v for k, v in exported.items()} == {k: v for k, v in checkpoint.items() if k != "export_version_id"}


def test_ledger_status_reports_the_anchor_lag():
    """GET /ledger/status: events committed but not sealed show as lag until an anchor round seals them. A long
    interval keeps the next round away while the lag is read."""
    if BACKEND == "aws":
        pytest.skip("on the AWS backend every running vault's anchor timer seals every tenant, so no lag stays put")
    slow = Vault(VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS="3600").start()
    try:
        with httpx.Client(base_url=slow.url, headers={"X-Vault-API-Key": slow.api_key}, timeout=30) as http:
            # The first tick of the timer runs at start; decisions made after it wait for the next (an hour).
            time.sleep(1)
            for i in range(3):
                assert http.post("/request-clearance", json={"tool_name": "unpoliced", "tool_args": {"i": i}}).status_code == 200
            time.sleep(1.1)
            status = http.get("/ledger/status").json()
        assert status["events_behind"] >= 3, status
        assert status["lag_seconds"] >= 1.0 and status["oldest_unsequenced_at"], status
        assert status["anchor_interval_seconds"] == 3600 and status["within_bound"] is True
        with httpx.Client(base_url=slow.url, headers={"X-Vault-API-Key": slow.reviewer_key}, timeout=30) as http:
            assert http.get("/ledger/status").status_code == 200, "reviewers read the ledger too"
    finally:
        slow.cleanup()


def test_ledger_status_is_caught_up_after_a_round(sealed, sealing_vault):
    with httpx.Client(base_url=sealing_vault["url"], headers={"X-Vault-API-Key": sealing_vault["key"]}, timeout=30) as http:
        deadline = time.monotonic() + 30
        while True:
            status = http.get("/ledger/status").json()
            if status["events_behind"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert status["events_behind"] == 0 and status["lag_seconds"] == 0 and "oldest_unsequenced_at" not in status
    assert status["tree_size"] >= 1 and status["latest_checkpoint_id"] >= 1 and status["within_bound"] is True
    assert status["tenant_id"] == sealing_vault["tenant_id"]
