"""The emulator's additions behave as AWS documents them (see moto_server.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(HERE / "moto_server.py"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=0.5)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture(scope="module")
def ed_key(endpoint):
    kms = client("kms", endpoint)
    return kms, kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]


def test_key_metadata_and_public_key(ed_key):
    kms, key_id = ed_key
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeySpec"] == "ECC_NIST_EDWARDS25519" and meta["KeyUsage"] == "SIGN_VERIFY"
    assert meta["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    public = kms.get_public_key(KeyId=key_id)
    assert public["KeySpec"] == "ECC_NIST_EDWARDS25519"
    der = public["PublicKey"]
    assert len(der) == 44 and der[:12].hex() == "302a300506032b6570032100"


def test_sign_raw_gives_a_64_byte_ed25519_signature(ed_key):
    kms, key_id = ed_key
    message = b"ledgix checkpoint payload \x00\xff"
    out = kms.sign(KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")
    assert len(out["Signature"]) == 64 and out["SigningAlgorithm"] == "ED25519_SHA_512"
    public = kms.get_public_key(KeyId=key_id)["PublicKey"][12:]
    Ed25519PublicKey.from_public_bytes(public).verify(out["Signature"], message)  # raises if wrong
    assert kms.verify(KeyId=key_id, Message=message, Signature=out["Signature"], MessageType="RAW",
                      SigningAlgorithm="ED25519_SHA_512")["SignatureValid"]
    with pytest.raises(ClientError) as bad:
        kms.verify(KeyId=key_id, Message=message + b"!", Signature=out["Signature"], MessageType="RAW",
                   SigningAlgorithm="ED25519_SHA_512")
    assert bad.value.response["Error"]["Code"] == "KMSInvalidSignatureException"


@pytest.mark.parametrize("kwargs", [
    {"MessageType": "DIGEST", "SigningAlgorithm": "ED25519_SHA_512"},
    {"MessageType": "RAW", "SigningAlgorithm": "ED25519_PH_SHA_512"},
    {"MessageType": "RAW", "SigningAlgorithm": "ECDSA_SHA_256"},
])
def test_unsupported_modes_are_refused(ed_key, kwargs):
    kms, key_id = ed_key
    with pytest.raises(ClientError) as err:
        kms.sign(KeyId=key_id, Message=b"m" * 32, **kwargs)
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_message_limit_is_4096_bytes(ed_key):
    kms, key_id = ed_key
    kms.sign(KeyId=key_id, Message=b"m" * 4096, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")
    with pytest.raises(ClientError) as err:
        kms.sign(KeyId=key_id, Message=b"m" * 4097, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_ed25519_keys_are_sign_verify_only(endpoint):
    with pytest.raises(ClientError) as err:
        client("kms", endpoint).create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="ENCRYPT_DECRYPT")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_throttle_fault(endpoint, ed_key):
    _, key_id = ed_key
    httpx.post(f"{endpoint}/_ledgix/faults", json={"kms_sign_throttle": 2}).raise_for_status()
    headers = {"X-Amz-Target": "TrentService.Sign", "Content-Type": "application/x-amz-json-1.1",
               "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=x"}
    body = {"KeyId": key_id, "Message": "eA==", "MessageType": "RAW", "SigningAlgorithm": "ED25519_SHA_512"}
    answers = [httpx.post(endpoint, json=body, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [400, 400, 200]
    assert answers[0].json()["__type"] == "ThrottlingException"
    httpx.post(f"{endpoint}/_ledgix/faults", json={"reset": True}).raise_for_status()


def test_s3_answers_with_the_real_root_elements(endpoint):
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket="roots")
    s3.put_bucket_versioning(Bucket="roots", VersioningConfiguration={"Status": "Enabled"})
    raw = httpx.get(f"{endpoint}/roots?versioning",
                    headers={"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"})
    assert "<VersioningConfiguration" in raw.text and "GetBucketVersioningResponse" not in raw.text
    assert s3.get_bucket_versioning(Bucket="roots")["Status"] == "Enabled"


def test_resources_are_idempotent(endpoint):
    for _ in range(2):
        out = subprocess.run([sys.executable, str(HERE / "resources.py"), "--endpoint", endpoint],
                             capture_output=True, text=True, check=True).stdout
    exports = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
    assert exports["VAULT_DYNAMODB_TABLE"].strip("'") == "ledgix-hot"
    s3 = client("s3", endpoint)
    assert s3.get_bucket_versioning(Bucket="ledgix-anchors")["Status"] == "Enabled"
    assert s3.get_object_lock_configuration(Bucket="ledgix-anchors-locked")["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    ttl = client("dynamodb", endpoint).describe_time_to_live(TableName="ledgix-hot")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    sqs = client("sqs", endpoint)
    attrs = sqs.get_queue_attributes(QueueUrl=exports["VAULT_CLEARANCE_SQS_QUEUE_URL"].strip("'"), AttributeNames=["All"])["Attributes"]
    assert attrs["FifoQueue"] == "true" and "ledgix-judge-dlq.fifo" in attrs["RedrivePolicy"]
