"""Create (idempotently) the AWS resources the vault expects, on the emulator, and print `export` lines.

Usage: eval "$(python tests/aws/resources.py --endpoint http://127.0.0.1:PORT)"
"""

from __future__ import annotations

import argparse
import json
import os

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
                        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))


def table(endpoint: str) -> str:
    ddb = client("dynamodb", endpoint)
    name = "ledgix-hot"
    try:
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    return name


def queues(endpoint: str) -> tuple[str, str]:
    sqs = client("sqs", endpoint)
    dlq = sqs.create_queue(QueueName="ledgix-judge-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(QueueName="ledgix-judge.fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "60",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    return queue, dlq


def buckets(endpoint: str) -> None:
    s3 = client("s3", endpoint)
    for name, lock in (("ledgix-anchors", False), ("ledgix-anchors-locked", True), ("ledgix-anchors-unversioned", None)):
        try:
            s3.create_bucket(Bucket=name, **({"ObjectLockEnabledForBucket": True} if lock else {}))
        except ClientError as e:
            if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        if lock is False:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if lock:
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})


def keys(endpoint: str) -> tuple[str, str]:
    kms = client("kms", endpoint)
    found = {}
    for alias in kms.list_aliases()["Aliases"]:
        if alias.get("TargetKeyId"):
            found[alias["AliasName"]] = alias["TargetKeyId"]
    if "alias/ledgix-signing" not in found:
        key = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY", Description="Ledgix signing")
        kms.create_alias(AliasName="alias/ledgix-signing", TargetKeyId=key["KeyMetadata"]["KeyId"])
        found["alias/ledgix-signing"] = key["KeyMetadata"]["KeyId"]
    if "alias/ledgix-envelope" not in found:
        key = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", Description="Ledgix envelope")
        kms.enable_key_rotation(KeyId=key["KeyMetadata"]["KeyId"])
        kms.create_alias(AliasName="alias/ledgix-envelope", TargetKeyId=key["KeyMetadata"]["KeyId"])
        found["alias/ledgix-envelope"] = key["KeyMetadata"]["KeyId"]
    return found["alias/ledgix-signing"], found["alias/ledgix-envelope"]


def secrets(endpoint: str) -> str:
    sm = client("secretsmanager", endpoint)
    name = "ledgix/vault/bootstrap"
    try:
        sm.create_secret(Name=name, SecretString=json.dumps({"VAULT_JWT_ISSUER": "alcv-vault"}))
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceExistsException":
            raise
    return name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    endpoint = parser.parse_args().endpoint
    queue, dlq = queues(endpoint)
    buckets(endpoint)
    signing, envelope = keys(endpoint)
    exports = {
        "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "VAULT_DYNAMODB_TABLE": table(endpoint),
        "VAULT_CLEARANCE_SQS_QUEUE_URL": queue, "VAULT_CLEARANCE_SQS_DLQ_URL": dlq,
        "VAULT_LEDGER_ANCHOR_BUCKET": "ledgix-anchors",
        "VAULT_KMS_KEY_ID": signing, "VAULT_KMS_ENVELOPE_KEY_ID": envelope,
        "AWS_SECRET_NAME": secrets(endpoint), "TENANT_SECRET_PREFIX": "ledgix/tenants/test",
    }
    for name, value in exports.items():
        print(f"export {name}='{value}'")


if __name__ == "__main__":
    main()
