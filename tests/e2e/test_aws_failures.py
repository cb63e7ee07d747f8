"""Failure behaviour on the AWS backend (PostgreSQL + the AWS emulator), driven from outside as an operator
would break things: redelivered queue messages, a tenant whose secret is gone or whose database is
unreachable, KMS throttling. Runs only with LEDGIX_E2E_BACKEND=aws (scripts/test.sh's second pass)."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

from conftest import APPROVE_SMALL, BACKEND, Vault, unique
from conftest import aws_client as boto

pytestmark = pytest.mark.skipif(BACKEND != "aws", reason="AWS backend only")


@pytest.fixture(scope="module")
def aws_vault():
    # No secret cache: each request re-reads the tenant's secret, so breaking it shows at once.
    v = Vault(VAULT_TENANT_SECRET_CACHE_TTL_SECONDS="0").start()
    yield v
    v.cleanup()


def _ledger_count(v: Vault, api_key: str, request_id: str) -> int:
    entries = v.http(api_key).get("/ledger", params={"limit": 500}).json()["entries"]
    return sum(e["request_id"] == request_id for e in entries)


def test_redelivered_judge_job_writes_nothing_twice(aws_vault):
    v = aws_vault
    tool = unique("email")
    v.register(unique("p"), [tool], rules=["Only to customers"])
    first = v.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"to": "x"}, "session_id": "s1"}).json()
    deadline = time.monotonic() + 90
    while v.http().get(f"/clearance-status/{first['request_id']}").json()["status"] == "processing":
        assert time.monotonic() < deadline, "the SQS worker never decided"
        time.sleep(0.2)
    assert _ledger_count(v, v.api_key, first["request_id"]) == 1
    # Deliver the same job again, as SQS does after a lost delete (new dedup id: outside the 5-minute window).
    tenant_id = v.printed("LEDGIX_DEV_TENANT_ID")
    job = {"tenant_id": tenant_id, "request_id": first["request_id"], "session_id": "s1"}
    sqs = boto("sqs")
    queue = os.environ["VAULT_CLEARANCE_SQS_QUEUE_URL"]
    for n in range(2):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(job), MessageGroupId=f"{tenant_id}#redelivery",
                         MessageDeduplicationId=f"{first['request_id']}-again-{n}")
    deadline = time.monotonic() + 90
    while int(sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
              ["Attributes"]["ApproximateNumberOfMessages"]) > 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1)
    assert _ledger_count(v, v.api_key, first["request_id"]) == 1, "a redelivered, already decided job wrote nothing"


def test_a_tenant_without_its_secret_fails_alone(aws_vault):
    v = aws_vault
    broken_id, broken_key = v.new_tenant()
    healthy_id, healthy_key = v.new_tenant()
    prefix = os.environ["TENANT_SECRET_PREFIX"]
    boto("secretsmanager").delete_secret(SecretId=f"{prefix}/{broken_id}", ForceDeleteWithoutRecovery=True)
    broken = v.http(broken_key).post("/request-clearance", json={"tool_name": "x", "tool_args": {}})
    assert broken.status_code == 503 and broken.json()["error"]["code"] == "unavailable"
    assert broken.headers["Retry-After"]
    healthy = v.http(healthy_key).post("/request-clearance", json={"tool_name": "x", "tool_args": {}})
    assert healthy.status_code == 200 and healthy.json()["reason_code"] == "no_policy_for_tool"


def test_unreachable_database_means_503_and_no_token(aws_vault):
    v = aws_vault
    tenant_id, key = v.new_tenant()
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE_SMALL, api_key=key)
    sm = boto("secretsmanager")
    name = f"{os.environ['TENANT_SECRET_PREFIX']}/{tenant_id}"
    good = json.loads(sm.get_secret_value(SecretId=name)["SecretString"])
    sm.put_secret_value(SecretId=name, SecretString=json.dumps({**good, "port": 1}))
    try:
        r = v.http(key).post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}})
        assert r.status_code == 503 and "token" not in r.json()
    finally:
        sm.put_secret_value(SecretId=name, SecretString=json.dumps(good))
    entries = v.http(key).get("/ledger").json()["entries"]
    ok = v.http(key).post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}}).json()
    assert ok["status"] == "approved" and ok["token"]
    assert len(v.http(key).get("/ledger").json()["entries"]) == len(entries) + 1, "the failed attempt left no event"


@pytest.fixture(scope="module")
def kms_vault():
    if not os.environ.get("VAULT_KMS_KEY_ID"):
        pytest.fail("VAULT_KMS_KEY_ID must be set by tests/aws/resources.py")
    v = Vault(VAULT_SIGNER_BACKEND="aws_kms", VAULT_PRIVATE_KEY_BASE64="").start()
    yield v
    v.cleanup()


def _faults(body: dict) -> None:
    httpx.post(f"{os.environ['AWS_ENDPOINT_URL']}/_ledgix/faults", json=body).raise_for_status()


def test_kms_signing_retries_throttling_then_fails_closed(kms_vault):
    v = kms_vault
    tool = unique("refund")
    v.register(unique("p"), [tool], rego=APPROVE_SMALL)
    jwk = v.http().get("/.well-known/jwks.json").json()["keys"][0]
    assert jwk["crv"] == "Ed25519"
    try:
        _faults({"kms_sign_throttle": 2})
        ok = v.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}})
        assert ok.status_code == 200 and ok.json()["status"] == "approved", "two throttles are retried away"
        assert v.client().verify_token(ok.json()["token"])["tool"] == tool
        before = len(v.http().get("/ledger", params={"limit": 500}).json()["entries"])
        _faults({"kms_sign_throttle": 50})
        failed = v.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"amount": 1}})
        assert failed.status_code == 503 and failed.json()["error"]["code"] == "unavailable"
    finally:
        _faults({"reset": True})
    assert len(v.http().get("/ledger", params={"limit": 500}).json()["entries"]) == before, "no event, no token"


def test_worker_killed_mid_batch_is_completed_once_on_redelivery():
    """A vault process is killed (SIGKILL) while judge jobs are queued or in flight; another process picks the
    redelivered messages up after the visibility timeout, and every request ends up decided exactly once."""
    import signal

    producer = Vault(VAULT_TENANT_SECRET_CACHE_TTL_SECONDS="0").start()
    try:
        tool = unique("email")
        producer.register(unique("p"), [tool], rules=["Only to customers"])
        ids = [producer.http().post("/request-clearance", json={"tool_name": tool, "tool_args": {"n": i},
                                                                 "session_id": f"s{i % 3}"}).json()["request_id"]
               for i in range(12)]
        assert producer.proc is not None
        producer.proc.send_signal(signal.SIGKILL)
        producer.proc.wait(timeout=10)
        survivor = Vault(VAULT_TENANT_SECRET_CACHE_TTL_SECONDS="0")
        survivor.api_key, survivor.data_dir = producer.api_key, producer.data_dir
        survivor.start()
        try:
            deadline = time.monotonic() + 120
            pending = set(ids)
            while pending and time.monotonic() < deadline:
                for rid in list(pending):
                    if survivor.http().get(f"/clearance-status/{rid}").json()["status"] != "processing":
                        pending.discard(rid)
                time.sleep(0.5)
            assert not pending, f"{len(pending)} requests were never decided"
            time.sleep(2)  # let any straggling redelivery land before counting
            for rid in ids:
                assert _ledger_count(survivor, survivor.api_key, rid) == 1, f"{rid} decided exactly once"
        finally:
            survivor.stop()
    finally:
        producer.cleanup()
