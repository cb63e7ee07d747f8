"""The emulator's additions behave as AWS documents them (see moto_server.py), and resources.py creates what the
vault expects, idempotently. One moto_server.py subprocess on a free loopback port serves the whole module."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import servers

HERE = Path(__file__).parent
http = servers.http
SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture(scope="module")
def endpoint():
    proc, url = servers.start("moto_server.py", ready="/_ledgix/faults")
    yield url
    servers.stop(proc)


@pytest.fixture
def faults(endpoint):
    def arm(body: dict) -> dict:
        status, answer = http("POST", f"{endpoint}/_ledgix/faults", body)
        assert status == 200, answer
        return json.loads(answer)
    yield arm
    arm({"reset": True})


def client(service: str, endpoint: str, config: Config | None = None):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test", config=config)


@pytest.fixture(scope="module")
def kms(endpoint):
    return client("kms", endpoint, NO_RETRIES)


@pytest.fixture(scope="module")
def key_id(kms):
    return kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]


def sign(kms, key_id, message=b"ledgix checkpoint", **kwargs):
    kwargs = {"MessageType": "RAW", "SigningAlgorithm": "ED25519_SHA_512", **kwargs}
    return kms.sign(KeyId=key_id, Message=message, **kwargs)


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


# --- CreateKey / DescribeKey / GetPublicKey -------------------------------------------------------------------------

def test_create_and_describe_key(kms, key_id):
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeySpec"] == meta["CustomerMasterKeySpec"] == "ECC_NIST_EDWARDS25519"
    assert meta["KeyUsage"] == "SIGN_VERIFY" and meta["KeyState"] == "Enabled"
    assert meta["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]


@pytest.mark.parametrize("usage", ["ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", None])
def test_ed25519_keys_are_sign_verify_only(kms, usage):
    with pytest.raises(ClientError) as err:
        kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", **({"KeyUsage": usage} if usage else {}))
    assert code(err) == "ValidationException"


def test_get_public_key_is_a_44_byte_ed25519_spki(kms, key_id):
    out = kms.get_public_key(KeyId=key_id)
    der = out["PublicKey"]
    assert len(der) == 44 and der[:12] == SPKI_PREFIX
    assert out["KeySpec"] == "ECC_NIST_EDWARDS25519" and out["KeyUsage"] == "SIGN_VERIFY"
    assert out["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    assert out["KeyId"].startswith("arn:aws:kms:us-east-1:") and out["KeyId"].endswith(f":key/{key_id}")
    assert "EncryptionAlgorithms" not in out


def test_key_can_be_addressed_by_alias(kms, key_id):
    kms.create_alias(AliasName="alias/test-ed25519", TargetKeyId=key_id)
    public = kms.get_public_key(KeyId="alias/test-ed25519")["PublicKey"]
    signature = sign(kms, "alias/test-ed25519", b"by alias")["Signature"]
    Ed25519PublicKey.from_public_bytes(public[12:]).verify(signature, b"by alias")


# --- Sign / Verify -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("message", [b"x", b"ledgix.audit.checkpoint.v1\x00\xff" * 10, bytes(range(256)) * 16])
def test_sign_raw_is_a_64_byte_ed25519_signature_of_the_message(kms, key_id, message):
    out = sign(kms, key_id, message)
    assert len(out["Signature"]) == 64 and out["SigningAlgorithm"] == "ED25519_SHA_512"
    assert out["KeyId"].endswith(f":key/{key_id}")
    public = kms.get_public_key(KeyId=key_id)["PublicKey"][-32:]
    Ed25519PublicKey.from_public_bytes(public).verify(out["Signature"], message)  # raises if it is not
    # Ed25519 is deterministic: the same message gives the same signature.
    assert sign(kms, key_id, message)["Signature"] == out["Signature"]


def test_message_limit_is_4096_bytes(kms, key_id):
    sign(kms, key_id, b"m" * 4096)
    with pytest.raises(ClientError) as err:
        sign(kms, key_id, b"m" * 4097)
    assert code(err) == "ValidationException"


@pytest.mark.parametrize("message_type, algorithm, expected", [
    ("DIGEST", "ED25519_SHA_512", "ValidationException"),       # ED25519_SHA_512 requires RAW
    ("EXTERNAL_MU", "ED25519_SHA_512", "ValidationException"),
    ("RAW", "ED25519_PH_SHA_512", "ValidationException"),       # PH requires DIGEST
    ("DIGEST", "ED25519_PH_SHA_512", "ValidationException"),    # Ed25519ph: not emulated
    ("RAW", "ECDSA_SHA_256", "InvalidKeyUsageException"),       # a real algorithm, not for this key
    ("RAW", "RSASSA_PSS_SHA_256", "InvalidKeyUsageException"),
    ("RAW", "EDDSA", "ValidationException"),                    # not in the SigningAlgorithmSpec enum
])
def test_unsupported_sign_requests_are_refused(kms, key_id, message_type, algorithm, expected):
    message = bytes(64)  # a plausible SHA-512 digest, for the DIGEST cases
    with pytest.raises(ClientError) as err:
        sign(kms, key_id, message, MessageType=message_type, SigningAlgorithm=algorithm)
    assert code(err) == expected
    signature = sign(kms, key_id, message)["Signature"]
    with pytest.raises(ClientError) as err:
        kms.verify(KeyId=key_id, Message=message, Signature=signature, MessageType=message_type,
                   SigningAlgorithm=algorithm)
    assert code(err) == expected


def test_verify(kms, key_id):
    message = b"ledgix.audit.event.v1\x00payload"
    signature = sign(kms, key_id, message)["Signature"]
    out = kms.verify(KeyId=key_id, Message=message, Signature=signature, MessageType="RAW",
                     SigningAlgorithm="ED25519_SHA_512")
    assert out["SignatureValid"] is True and out["SigningAlgorithm"] == "ED25519_SHA_512"
    for bad_message, bad_signature in [(message + b"!", signature), (message, bytes(64)),
                                       (message, signature[:-1] + bytes([signature[-1] ^ 1]))]:
        with pytest.raises(ClientError) as err:
            kms.verify(KeyId=key_id, Message=bad_message, Signature=bad_signature, MessageType="RAW",
                       SigningAlgorithm="ED25519_SHA_512")
        assert code(err) == "KMSInvalidSignatureException"
    with pytest.raises(ClientError) as err:
        kms.verify(KeyId=key_id, Message=b"m" * 4097, Signature=signature, MessageType="RAW",
                   SigningAlgorithm="ED25519_SHA_512")
    assert code(err) == "ValidationException"


def test_disabled_and_deleted_keys_do_not_sign(kms):
    key = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    with pytest.raises(ClientError) as err:
        sign(kms, key)
    assert code(err) == "DisabledException"
    kms.enable_key(KeyId=key)
    sign(kms, key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    with pytest.raises(ClientError) as err:
        sign(kms, key)
    assert code(err) == "KMSInvalidStateException"


def test_unknown_key_is_not_found(kms):
    with pytest.raises(ClientError) as err:
        sign(kms, "alias/does-not-exist")
    assert code(err) == "NotFoundException"


def test_ed25519_key_does_not_encrypt(kms, key_id):
    with pytest.raises(ClientError) as err:
        kms.encrypt(KeyId=key_id, Plaintext=b"secret")
    assert code(err) == "InvalidKeyUsageException"
    with pytest.raises(ClientError) as err:
        kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert code(err) == "InvalidKeyUsageException"


def test_other_key_specs_still_work(kms):
    ecdsa = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    out = kms.sign(KeyId=ecdsa, Message=b"m", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    assert kms.get_public_key(KeyId=ecdsa)["KeySpec"] == "ECC_NIST_P256"
    assert kms.verify(KeyId=ecdsa, Message=b"m", Signature=out["Signature"], MessageType="RAW",
                      SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"]
    symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=symmetric, Plaintext=b"secret")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


# --- Fault injection -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 3])
def test_throttle_fault_fails_exactly_n_sign_calls(kms, key_id, faults, n):
    assert faults({"kms_sign_throttle": n}) == {"kms_sign_throttle": n}
    kms.describe_key(KeyId=key_id)  # only Sign is throttled
    for _ in range(n):
        with pytest.raises(ClientError) as err:
            sign(kms, key_id)
        assert code(err) == "ThrottlingException"
        assert err.value.response["Error"]["Message"] == "Rate exceeded"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(sign(kms, key_id)["Signature"]) == 64
    assert faults({}) == {"kms_sign_throttle": 0}


def test_throttle_fault_wire_shape(endpoint, key_id, faults):
    faults({"kms_sign_throttle": 1})
    headers = {"X-Amz-Target": "TrentService.Sign", "Content-Type": "application/x-amz-json-1.1",
               "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kms/aws4_request, "
                                "SignedHeaders=host, Signature=x"}
    body = {"KeyId": key_id, "Message": "eA==", "MessageType": "RAW", "SigningAlgorithm": "ED25519_SHA_512"}
    assert http("POST", endpoint + "/", body, headers) == (
        400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode())
    status, answer = http("POST", endpoint + "/", body, headers)
    assert status == 200 and len(json.loads(answer)["Signature"]) == 88  # base64 of 64 bytes


def test_boto3_default_retries_ride_out_a_short_throttle(endpoint, key_id, faults):
    faults({"kms_sign_throttle": 2})
    retrying = client("kms", endpoint, Config(retries={"mode": "standard", "max_attempts": 3}))
    out = sign(retrying, key_id)
    assert out["ResponseMetadata"]["RetryAttempts"] == 2


def test_reset_and_bad_fault_requests(endpoint, faults):
    faults({"kms_sign_throttle": 5})
    assert faults({"reset": True}) == {"kms_sign_throttle": 0}
    for bad in [{"kms_sign_throttle": -1}, {"kms_sign_throttle": "3"}, {"kms_throttle": 3}, [1]]:
        status, _ = http("POST", f"{endpoint}/_ledgix/faults", bad)
        assert status == 400, bad
    assert http("PUT", f"{endpoint}/_ledgix/faults", {})[0] == 405


# --- S3 response fixes ---------------------------------------------------------------------------------------------

S3_AUTH = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, "
                            "SignedHeaders=host, Signature=x"}


def test_s3_answers_with_its_real_root_elements(endpoint):
    s3 = client("s3", endpoint)
    s3.create_bucket(Bucket="roots")
    status, raw = http("GET", f"{endpoint}/roots?versioning", headers=S3_AUTH)
    assert status == 200 and b"<VersioningConfiguration" in raw and b"Status" not in raw
    s3.put_bucket_versioning(Bucket="roots", VersioningConfiguration={"Status": "Enabled"})
    status, raw = http("GET", f"{endpoint}/roots?versioning", headers=S3_AUTH)
    assert b"<VersioningConfiguration" in raw and b"</VersioningConfiguration>" in raw
    assert b"GetBucketVersioningResponse" not in raw
    assert s3.get_bucket_versioning(Bucket="roots")["Status"] == "Enabled"


# --- resources.py --------------------------------------------------------------------------------------------------

def run_resources(endpoint) -> dict[str, str]:
    out = subprocess.run([sys.executable, str(HERE / "resources.py"), "--endpoint", endpoint],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    exports = {}
    for line in out.stdout.splitlines():
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, value = words[1].split("=", 1)
        exports[name] = value
    return exports


@pytest.fixture(scope="module")
def resources(endpoint):
    first = run_resources(endpoint)
    second = run_resources(endpoint)
    assert first == second, "a second run creates nothing new and prints the same settings"
    return first


def test_resources_prints_the_settings(endpoint, resources):
    assert {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "VAULT_DYNAMODB_TABLE",
            "VAULT_CLEARANCE_SQS_QUEUE_URL", "VAULT_CLEARANCE_SQS_DLQ_URL", "VAULT_LEDGER_ANCHOR_BUCKET",
            "VAULT_KMS_KEY_ID", "VAULT_ENVELOPE_KMS_KEY_ID", "AWS_SECRET_NAME",
            "TENANT_SECRET_PREFIX"} <= set(resources)
    assert resources["AWS_ENDPOINT_URL"] == endpoint and resources["AWS_REGION"] == "us-east-1"
    assert (resources["AWS_ACCESS_KEY_ID"], resources["AWS_SECRET_ACCESS_KEY"]) == ("test", "test")
    assert resources["VAULT_DYNAMODB_TABLE"] == "ledgix-hot"
    assert resources["VAULT_LEDGER_ANCHOR_BUCKET"] == "ledgix-anchors"
    assert resources["AWS_SECRET_NAME"] == "ledgix/vault/bootstrap"
    assert resources["TENANT_SECRET_PREFIX"] == "ledgix/tenants/test"


def test_resources_table(endpoint, resources):
    ddb = client("dynamodb", endpoint)
    table = ddb.describe_table(TableName="ledgix-hot")["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {"pk": "S", "sk": "S"}
    ttl = ddb.describe_time_to_live(TableName="ledgix-hot")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_resources_queues(endpoint, resources):
    sqs = client("sqs", endpoint)
    attrs = sqs.get_queue_attributes(QueueUrl=resources["VAULT_CLEARANCE_SQS_QUEUE_URL"],
                                     AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=resources["VAULT_CLEARANCE_SQS_DLQ_URL"],
                                   AttributeNames=["All"])["Attributes"]
    assert resources["VAULT_CLEARANCE_SQS_QUEUE_URL"].endswith("/ledgix-judge.fifo")
    assert resources["VAULT_CLEARANCE_SQS_DLQ_URL"].endswith("/ledgix-judge-dlq.fifo")
    assert attrs["FifoQueue"] == "true" and attrs["ContentBasedDeduplication"] == "false"
    assert attrs["VisibilityTimeout"] == "60"
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"] and int(redrive["maxReceiveCount"]) == 5
    assert dlq["FifoQueue"] == "true" and dlq["QueueArn"].endswith(":ledgix-judge-dlq.fifo")


def test_resources_buckets(endpoint, resources):
    s3 = client("s3", endpoint)
    assert s3.get_bucket_versioning(Bucket="ledgix-anchors")["Status"] == "Enabled"
    assert "Status" not in s3.get_bucket_versioning(Bucket="ledgix-anchors-unversioned")
    with pytest.raises(ClientError) as err:
        s3.get_object_lock_configuration(Bucket="ledgix-anchors")
    assert code(err) == "ObjectLockConfigurationNotFoundError"
    assert s3.get_bucket_versioning(Bucket="ledgix-anchors-locked")["Status"] == "Enabled"
    lock = s3.get_object_lock_configuration(Bucket="ledgix-anchors-locked")["ObjectLockConfiguration"]
    assert lock == {"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}}


def test_resources_keys(endpoint, resources):
    kms = client("kms", endpoint)
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    assert aliases["alias/ledgix-signing"] == resources["VAULT_KMS_KEY_ID"]
    assert aliases["alias/ledgix-envelope"] == resources["VAULT_ENVELOPE_KMS_KEY_ID"]
    signing = kms.describe_key(KeyId=resources["VAULT_KMS_KEY_ID"])["KeyMetadata"]
    assert (signing["KeySpec"], signing["KeyUsage"]) == ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    envelope = kms.describe_key(KeyId=resources["VAULT_ENVELOPE_KMS_KEY_ID"])["KeyMetadata"]
    assert (envelope["KeySpec"], envelope["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    assert kms.get_key_rotation_status(KeyId=resources["VAULT_ENVELOPE_KMS_KEY_ID"])["KeyRotationEnabled"]
    message = b"anchor checkpoint"
    signature = sign(kms, "alias/ledgix-signing", message)["Signature"]
    public = kms.get_public_key(KeyId=resources["VAULT_KMS_KEY_ID"])["PublicKey"]
    Ed25519PublicKey.from_public_bytes(public[12:]).verify(signature, message)


def test_resources_secret(endpoint, resources):
    sm = client("secretsmanager", endpoint)
    value = sm.get_secret_value(SecretId="ledgix/vault/bootstrap")["SecretString"]
    assert json.loads(value) == {"VAULT_JWT_ISSUER": "alcv-vault"}


# --- DynamoDB: conditional updates are atomic, and a failed one can return the item (moto_server.py, 5) --------------

@pytest.fixture(scope="module")
def counter_table(endpoint):
    ddb = client("dynamodb", endpoint, NO_RETRIES)
    ddb.create_table(TableName="atomic-test", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    return ddb


def test_concurrent_conditional_updates_apply_one_at_a_time(endpoint, counter_table):
    """Without the lock, moto lets racing threads pass the same condition: with the server's thread switch
    interval at 1 µs (sys.setswitchinterval) a round applied 23 of these 20-capped increments and lost 3."""
    from concurrent.futures import ThreadPoolExecutor

    counter_table.put_item(TableName="atomic-test", Item={"pk": {"S": "c"}, "n": {"N": "0"}})

    def increment(_):
        ddb = client("dynamodb", endpoint, NO_RETRIES)  # one connection per thread
        try:
            ddb.update_item(TableName="atomic-test", Key={"pk": {"S": "c"}}, UpdateExpression="SET n = n + :one",
                            ConditionExpression="n < :cap",
                            ExpressionAttributeValues={":one": {"N": "1"}, ":cap": {"N": "20"}})
            return True
        except ClientError as e:
            assert code_of(e) == "ConditionalCheckFailedException"
            return False

    for _ in range(5):  # each round: 48 racing updates, exactly the 20 the condition allows
        counter_table.put_item(TableName="atomic-test", Item={"pk": {"S": "c"}, "n": {"N": "0"}})
        with ThreadPoolExecutor(48) as pool:
            applied = sum(pool.map(increment, range(48)))
        item = counter_table.get_item(TableName="atomic-test", Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]
        assert (applied, item["n"]["N"]) == (20, "20")


def code_of(error: ClientError) -> str:
    return error.response["Error"]["Code"]


def test_failed_condition_returns_the_old_item_when_asked(counter_table):
    counter_table.put_item(TableName="atomic-test", Item={"pk": {"S": "old"}, "tat": {"N": "1700000000000000"}})
    with pytest.raises(ClientError) as failed:
        counter_table.update_item(TableName="atomic-test", Key={"pk": {"S": "old"}},
                                  UpdateExpression="SET tat = tat + :t", ConditionExpression="tat BETWEEN :lo AND :hi",
                                  ExpressionAttributeValues={":t": {"N": "5"}, ":lo": {"N": "1"}, ":hi": {"N": "2"}},
                                  ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert code_of(failed.value) == "ConditionalCheckFailedException"
    assert failed.value.response["Item"] == {"pk": {"S": "old"}, "tat": {"N": "1700000000000000"}}
    with pytest.raises(ClientError) as missing:
        counter_table.update_item(TableName="atomic-test", Key={"pk": {"S": "absent"}},
                                  UpdateExpression="SET tat = tat + :t", ConditionExpression="attribute_exists(tat)",
                                  ExpressionAttributeValues={":t": {"N": "5"}},
                                  ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert "Item" not in missing.value.response, "no item, nothing returned (as AWS)"
    done = counter_table.update_item(TableName="atomic-test", Key={"pk": {"S": "old"}},
                                     UpdateExpression="SET tat = tat + :t", ConditionExpression="tat >= :lo",
                                     ExpressionAttributeValues={":t": {"N": "5"}, ":lo": {"N": "1"}},
                                     ReturnValues="UPDATED_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert done["Attributes"] == {"tat": {"N": "1700000000000005"}}
