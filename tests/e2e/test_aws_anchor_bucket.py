"""The anchor bucket must keep history: the vault refuses to start on a bucket without versioning (or without
object lock when VAULT_LEDGER_REQUIRE_OBJECT_LOCK), and exports record S3 object versions."""

from __future__ import annotations


import pytest

from conftest import BACKEND, Vault, aws_client

pytestmark = pytest.mark.skipif(BACKEND != "aws", reason="AWS backend only")


@pytest.mark.parametrize("bucket,extra,expected", [
    ("ledgix-anchors-unversioned", {}, "does not have versioning enabled"),
    ("ledgix-anchors", {"VAULT_LEDGER_REQUIRE_OBJECT_LOCK": "true"}, "object lock"),
])
def test_refuses_to_start_without_history(bucket, extra, expected):
    v = Vault(VAULT_LEDGER_ANCHOR_BUCKET=bucket, **extra)
    try:
        with pytest.raises(RuntimeError) as refused:
            v.start()
        assert expected in str(refused.value)
    finally:
        v.cleanup()


def test_object_locked_bucket_is_accepted_and_versions_recorded():
    v = Vault(VAULT_LEDGER_ANCHOR_BUCKET="ledgix-anchors-locked", VAULT_LEDGER_REQUIRE_OBJECT_LOCK="true",
              VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS="1").start()
    try:
        v.http().post("/request-clearance", json={"tool_name": "anything", "tool_args": {}})
        import time
        deadline = time.monotonic() + 30
        checkpoints = []
        while time.monotonic() < deadline:
            checkpoints = v.http().get("/ledger/checkpoints").json()["checkpoints"]
            if checkpoints and checkpoints[-1]["export_status"] == "exported":
                break
            time.sleep(0.2)
        latest = checkpoints[-1]
        assert latest["export_uri"].startswith("s3://ledgix-anchors-locked/") and latest["export_version_id"]
        s3 = aws_client("s3")
        key = latest["export_uri"].split("/", 3)[3]
        versions = s3.list_object_versions(Bucket="ledgix-anchors-locked", Prefix=key)["Versions"]
        assert latest["export_version_id"] in [ver["VersionId"] for ver in versions]
        head = s3.head_object(Bucket="ledgix-anchors-locked", Key=key, VersionId=latest["export_version_id"])
        assert head.get("ObjectLockMode") == "GOVERNANCE", "the bucket's default retention applies to anchors"
    finally:
        v.cleanup()
