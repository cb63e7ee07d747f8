"""Create, idempotently, the AWS resources the vault expects, on the emulator (or any endpoint), and print the
settings that point the vault at them as shell `export NAME=value` lines.

Usage:  eval "$(python tests/aws/resources.py --endpoint http://127.0.0.1:PORT)"

Region us-east-1; credentials AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from the environment, else test / test.
Running it again changes nothing and prints the same lines (existing resources are found by name or alias and
brought back to the settings below where AWS allows it).

  DynamoDB  ledgix-hot                   PAY_PER_REQUEST, pk (S, HASH) + sk (S, RANGE), TTL on expires_at
  SQS       ledgix-judge.fifo            FIFO, ContentBasedDeduplication false, VisibilityTimeout 60,
                                         redrive to ledgix-judge-dlq.fifo after 5 receives
            ledgix-notify                standard, VisibilityTimeout 60, redrive to ledgix-notify-dlq after 5
                                         receives (the notifier's delivery jobs)
  S3        ledgix-anchors               versioning enabled
            ledgix-anchors-locked        object lock (so versioning), default retention GOVERNANCE 1 day
            ledgix-anchors-unversioned   no versioning (the vault must refuse to start on it)
  KMS       alias/ledgix-signing         ECC_NIST_EDWARDS25519, SIGN_VERIFY
            alias/ledgix-envelope        SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT, rotation enabled
  Secrets   ledgix/vault/bootstrap       {"VAULT_JWT_ISSUER": "alcv-vault"}
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"
TABLE = "ledgix-hot"
QUEUE, DLQ = "ledgix-judge.fifo", "ledgix-judge-dlq.fifo"
NOTIFY_QUEUE, NOTIFY_DLQ = "ledgix-notify", "ledgix-notify-dlq"
BUCKET, LOCKED_BUCKET, UNVERSIONED_BUCKET = "ledgix-anchors", "ledgix-anchors-locked", "ledgix-anchors-unversioned"
SIGNING_ALIAS, ENVELOPE_ALIAS = "alias/ledgix-signing", "alias/ledgix-envelope"
BOOTSTRAP_SECRET = "ledgix/vault/bootstrap"
BOOTSTRAP_VALUE = {"VAULT_JWT_ISSUER": "alcv-vault"}
TENANT_SECRET_PREFIX = "ledgix/tenants/test"


def credentials() -> tuple[str, str]:
    return os.environ.get("AWS_ACCESS_KEY_ID") or "test", os.environ.get("AWS_SECRET_ACCESS_KEY") or "test"


def client(service: str, endpoint: str):
    key, secret = credentials()
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=None)


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def hot_table(ddb, name: str = TABLE) -> str:
    """The hot table as infra/terraform/modules/state creates it: pk/sk, on demand, TTL on expires_at. Tests that
    need a key registry of their own (it lives in this table) create one under another name."""
    try:
        ddb.create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
    except ClientError as e:
        if error_code(e) != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    # AWS refuses to "enable" TTL that is already enabled, so look first.
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or ttl.get("AttributeName") != "expires_at":
        ddb.update_time_to_live(TableName=name,
                                TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    return name


def table(endpoint: str) -> str:
    return hot_table(client("dynamodb", endpoint))


def fresh_database(url: str, name: str) -> str:
    """Create PostgreSQL database `name` through `url` (psql, a role that may create databases); return its URL."""
    from urllib.parse import urlsplit, urlunsplit
    import subprocess
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'],
                   check=True, capture_output=True)
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def queue(sqs, name: str, attributes: dict[str, str], fifo: bool = True) -> str:
    """CreateQueue is idempotent only for identical attributes: find the queue first, then converge them. A
    queue's type cannot change: an existing queue of the other type is an error."""
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as e:
        if error_code(e) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        created = {"FifoQueue": "true", **attributes} if fifo else attributes
        return sqs.create_queue(QueueName=name, Attributes=created)["QueueUrl"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    if (found.get("FifoQueue") == "true") != fifo:
        sys.exit(f"resources.py: queue {name} exists but is {'not ' if fifo else ''}a FIFO queue; "
                 "delete it or restart the emulator")
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def queues(endpoint: str) -> tuple[str, str]:
    sqs = client("sqs", endpoint)
    dlq = queue(sqs, DLQ, {"ContentBasedDeduplication": "false"})
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    main = queue(sqs, QUEUE, {
        "ContentBasedDeduplication": "false", "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})
    return main, dlq


def notify_queues(endpoint: str) -> tuple[str, str]:
    """The notifier's standard queue: delivery jobs in any order, retries as delayed messages."""
    sqs = client("sqs", endpoint)
    dlq = queue(sqs, NOTIFY_DLQ, {"MessageRetentionPeriod": "1209600"}, fifo=False)
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    main = queue(sqs, NOTIFY_QUEUE, {
        "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})}, fifo=False)
    return main, dlq


def buckets(endpoint: str) -> str:
    s3 = client("s3", endpoint)

    def create(name: str, **kwargs) -> None:
        try:
            s3.create_bucket(Bucket=name, **kwargs)  # us-east-1: no CreateBucketConfiguration
        except ClientError as e:
            if error_code(e) != "BucketAlreadyOwnedByYou":
                raise

    create(BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    # Object lock can only be turned on at creation here; it enables versioning with it.
    create(LOCKED_BUCKET, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=LOCKED_BUCKET, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    create(UNVERSIONED_BUCKET)
    if s3.get_bucket_versioning(Bucket=UNVERSIONED_BUCKET).get("Status"):
        sys.exit(f"resources.py: bucket {UNVERSIONED_BUCKET} has versioning, which cannot be removed; "
                 "restart the emulator")
    return BUCKET


def kms_key(kms, alias: str, spec: str, usage: str) -> str:
    """The key behind `alias`, created with `spec` and `usage` if the alias does not exist yet."""
    try:
        meta = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except ClientError as e:
        if error_code(e) != "NotFoundException":
            raise
        meta = kms.create_key(KeySpec=spec, KeyUsage=usage, Description=f"Ledgix {alias}")["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    if (meta["KeySpec"], meta["KeyUsage"], meta["KeyState"]) != (spec, usage, "Enabled"):
        sys.exit(f"resources.py: {alias} points at key {meta['KeyId']} with "
                 f"{meta['KeySpec']}/{meta['KeyUsage']}/{meta['KeyState']}, not {spec}/{usage}/Enabled")
    return meta["KeyId"]


def keys(endpoint: str) -> tuple[str, str]:
    kms = client("kms", endpoint)
    signing = kms_key(kms, SIGNING_ALIAS, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    envelope = kms_key(kms, ENVELOPE_ALIAS, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    kms.enable_key_rotation(KeyId=envelope)  # idempotent
    return signing, envelope


def secrets(endpoint: str) -> str:
    sm = client("secretsmanager", endpoint)
    value = json.dumps(BOOTSTRAP_VALUE, separators=(",", ":"))
    try:
        sm.create_secret(Name=BOOTSTRAP_SECRET, SecretString=value)
    except ClientError as e:
        if error_code(e) != "ResourceExistsException":
            raise
        if json.loads(sm.get_secret_value(SecretId=BOOTSTRAP_SECRET)["SecretString"]) != BOOTSTRAP_VALUE:
            sm.put_secret_value(SecretId=BOOTSTRAP_SECRET, SecretString=value)
    return BOOTSTRAP_SECRET


def main() -> None:
    parser = argparse.ArgumentParser(description="Create Ledgix's AWS resources; print export lines.")
    parser.add_argument("--endpoint", required=True, help="e.g. http://127.0.0.1:5000 (the moto server)")
    endpoint = parser.parse_args().endpoint.rstrip("/")
    key, secret = credentials()
    queue_url, dlq_url = queues(endpoint)
    notify_url, notify_dlq_url = notify_queues(endpoint)
    signing, envelope = keys(endpoint)
    exports = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "VAULT_DYNAMODB_TABLE": table(endpoint),
        "VAULT_CLEARANCE_SQS_QUEUE_URL": queue_url,
        "VAULT_CLEARANCE_SQS_DLQ_URL": dlq_url,
        "VAULT_NOTIFY_SQS_QUEUE_URL": notify_url,
        "VAULT_NOTIFY_SQS_DLQ_URL": notify_dlq_url,
        "VAULT_LEDGER_ANCHOR_BUCKET": buckets(endpoint),
        "VAULT_KMS_KEY_ID": signing,
        "VAULT_ENVELOPE_KMS_KEY_ID": envelope,
        "AWS_SECRET_NAME": secrets(endpoint),
        "TENANT_SECRET_PREFIX": TENANT_SECRET_PREFIX,
    }
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")


if __name__ == "__main__":
    main()
