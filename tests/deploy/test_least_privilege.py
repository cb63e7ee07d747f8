"""Least privilege, proven by running the code: each of the five function binaries runs under a local Lambda
Runtime API (lambda_runtime.py) against the AWS emulator with its own access key, with exactly the environment
variables its Terraform gives it, and handles the sample events of a full round (tenant created, policies,
inline approval, queued judgements, token consumed, judge batches, notifications, anchor round, proofs). The
emulator records the API operations per access key; the test checks that infra/terraform/iam.tf's function_permissions grants each
function exactly the actions it called: nothing missing, nothing extra. The round runs once per signing mode
(signing_mode = "direct": the KMS root signs everything; "delegated": per-period keys certified by the root sign
tokens and receipts in memory), each on a fresh deployment whose root key has just been rotated (generation 2 of
signing_key_generations), so the key step retires the first generation's root as Terraform's rotation makes it.

The judge is Terraform's default, Bedrock with the default models, answered by the emulator's scripted model:
judge-worker judges a short plain-English policy (whole, Converse only) and one longer than
VAULT_JUDGE_POLICY_BUDGET_CHARS (chunks and the call embedded with InvokeModel, then Converse). Its Bedrock calls
pass through bedrock_recorder.py, which notes the model each one names, and every one must be on a model ARN iam.tf
grants for the configured models, every granted model used.

Notifications (docs/notifications.md): the tenant subscribes a webhook on a receiver in this process to
review.pending, review.expired and clearance.denied, with a 10 s review deadline. clearance-api dispatches a
review.pending (a rules policy asks for review), judge-worker a clearance.denied (the model denies the transfer) and
anchor-export a review.expired (its round expires the review); each records the delivery in the hot table and
queues a job on the notify queue. The tenant also has email on review.pending, from a domain of email_identities
(an SES identity the harness creates in the emulator), so clearance-api records and queues a second delivery for it.
The notifier then gets those jobs as the event source mapping would deliver them (events/sqs/notifier.json is the
template), posts the webhooks and sends the email (SES v2 SendEmail, found in the emulator's /_ledgix/ses/messages);
the receiver fails the first post, so the notifier also re-queues a retry. The receiver is on loopback, which only
VAULT_ALLOW_PRIVATE_WEBHOOK_URLS admits: the test gives that development flag to clearance-api (which checks the
URL) and the notifier, beside their Terraform environment (TEST_ONLY); Terraform never sets it.

Needs: the release build (target/release/<function>), the emulator (AWS_ENDPOINT_URL; Bedrock Runtime with its
scripted model, POST /_ledgix/model/script) with tests/aws/resources.py applied, DATABASE_URL of a database whose
role may create databases and roles (each mode's control plane is a fresh database created through it, with psql),
and psql. scripts/test.sh runs it (deploy_tests); by hand:

    cargo build --release -p clearance-api -p jwks -p judge-worker -p anchor-export -p notifier
    .venv/bin/python tests/aws/moto_server.py --port 5000 &
    eval "$(.venv/bin/python tests/aws/resources.py --endpoint http://127.0.0.1:5000)"
    psql "$ADMIN_URL" -c 'CREATE DATABASE ledgix_deploy_control'      # a role with CREATEDB and CREATEROLE
    DATABASE_URL="postgresql://ledgix:ledgix@127.0.0.1:5432/ledgix_deploy_control?sslmode=disable" \
      .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/deploy/test_least_privilege.py

(-s shows the AWS calls per request it prints.)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.session import get_session

import terraform
from bedrock_recorder import BedrockRecorder
from apigw_events import answer, apigw
from lambda_runtime import FunctionProcess, lambda_environment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "aws"))
from resources import fresh_database, hot_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
RELEASE = ROOT / "target" / "release"
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")
ADMIN_KEY = json.loads((EVENTS / "apigw" / "expectations.json").read_text())["admin_api_key"]

pytestmark = pytest.mark.skipif(not ENDPOINT or "DATABASE_URL" not in os.environ,
                                reason="needs the AWS emulator (AWS_ENDPOINT_URL) and DATABASE_URL")

# API operation names that differ from the IAM action authorising them.
IAM_ACTION = {
    "s3:GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration",
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    # Bedrock Runtime: Converse is authorised by bedrock:InvokeModel (ConverseStream by the streaming action).
    "bedrock:Converse": "bedrock:InvokeModel",
    "bedrock:ConverseStream": "bedrock:InvokeModelWithResponseStream",
    # SQS batch operations are authorised by the single-message action.
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}

REGION = "us-east-1"

# The judge as Terraform deploys it by default (judge.tf): Bedrock, with the models it grants and tells the code.
JUDGE_MODELS = terraform.bedrock_default_models()
POLICY_BUDGET_CHARS = 4000  # VAULT_JUDGE_POLICY_BUDGET_CHARS, judge_policy_budget_chars' default

# A plain-English policy over the budget: judged from retrieved chunks, so its chunks and each call are embedded.
LONG_POLICY = {
    "policy_id": "payments",
    "description": "Outgoing wire transfers",
    "tools": ["wire_transfer"],
    "rules": [f"Rule {i} for outgoing wire transfers: a transfer to a payee first seen less than {i + 1} days ago, "
              f"or above {1000 * (i + 1)} US dollars, or to a country outside the approved list for region {i}, "
              f"is refused unless the treasury team approved that payee in writing beforehand."
              for i in range(24)],
}
# What the emulator's model answers, by a piece of the prompt (the tool call is in it as JSON data).
MODEL_SCRIPT = {"rules": [
    {"match": "send_email", "reply": {"decision": "approve", "confidence": 0.97,
                                      "reason": "Customers may be e-mailed", "rules_applied": ["R1"]}},
    {"match": "wire_transfer", "reply": {"decision": "deny", "confidence": 0.95,
                                         "reason": "The payee is new and the amount is over the limit",
                                         "rules_applied": ["C1"]}},
]}

# SDK calls in the code that no function makes: the local SQS consumers of `ledgix dev --backend aws` (the judge
# queue's and the notify queue's; on Lambda the event source mappings receive and delete).
DEV_ONLY = {"sqs:ReceiveMessage", "sqs:DeleteMessage"}

# Granted for a path the round below cannot reach from outside, each checked to be in the code
# (sdk_operations_in_code) instead of observed.
UNREACHED_PATHS = {
    ("clearance-api", "secretsmanager:PutSecretValue"):
        "tenant provisioning is idempotent: when the tenant's secret already exists (a retried provisioning) "
        "CreateSecret fails with ResourceExistsException and the code overwrites it (shared/aws/src/tenants.rs)",
}

# Variables a function gets in this test only, beside its Terraform environment: the development flag that admits
# the loopback receiver's URL (clearance-api checks it when the webhook is registered, the notifier at every post).
TEST_ONLY = {
    "clearance-api": {"VAULT_ALLOW_PRIVATE_WEBHOOK_URLS": "true"},
    "notifier": {"VAULT_ALLOW_PRIVATE_WEBHOOK_URLS": "true"},
}

# The notifications the round subscribes to, and what decides each: a rules policy that always asks for review.
NOTIFY_EVENTS = ["review.pending", "review.expired", "clearance.denied"]
REVIEW_POLICY = {"policy_id": "erasure", "description": "Erasing records needs a human", "tools": ["erase_records"],
                 "rules": ["Always reviewed"], "rego": 'package erasure\ndefault decision := "review"'}
REVIEW_DEADLINE_SECONDS = 10  # the shortest a tenant may set
WEBHOOK_SECRET = "whsec_" + uuid.uuid4().hex
# Terraform's email_identities for the round (a domain), and the tenant's email settings: review.pending only.
EMAIL_IDENTITIES = ["alerts.ledgix-test.example"]
EMAIL_SETTINGS = {"to": ["reviewers@example.com"], "from": "vault@alerts.ledgix-test.example",
                  "events": ["review.pending"]}

# The key calendar of signing_mode = "delegated", at Terraform's defaults.
PERIOD_SECONDS = terraform.variable_default("signing_key_period_seconds")
CALENDAR = {
    "VAULT_SIGNING_KEY_PERIOD_SECONDS": str(PERIOD_SECONDS),
    "VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS": str(terraform.variable_default("signing_key_publish_ahead_seconds")),
    "VAULT_SIGNING_KEY_OVERLAP_SECONDS": str(terraform.variable_default("signing_key_overlap_seconds")),
}


class Receiver:
    """A webhook receiver on loopback: records every post (headers, raw body) and fails the first `fail_first`
    with 503, so the notifier's retry path runs too."""

    def __init__(self, fail_first: int = 1) -> None:
        self.posts: list[dict] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    status = 503 if len(receiver.posts) < receiver.fail_first else 200
                    receiver.posts.append({"path": self.path, "status": status, "body": body,
                                           "headers": {k.lower(): v for k, v in self.headers.items()}})
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ledgix"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def boto(service: str):
    # The harness's own key: its calls are not attributed to any function.
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id="HARNESS", aws_secret_access_key="test")


def access_key(function: str) -> str:
    return "FN" + function.upper().replace("-", "")


def recorded_counts(function: str) -> dict[str, int]:
    calls = httpx.get(f"{ENDPOINT}/_ledgix/calls", params={"access_key": access_key(function)}).json()
    return {f"{c['service']}:{c['operation']}": c["count"] for c in calls}


def calls_made(function: str, act) -> tuple[object, dict[str, int]]:
    """Run `act()`; return its result and the API operations `function` called meanwhile (a warm instance)."""
    before = recorded_counts(function)
    result = act()
    after = recorded_counts(function)
    return result, {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}


def recorded_actions(function: str) -> set[str]:
    return {IAM_ACTION.get(operation, operation) for operation in recorded_counts(function)}


def kms_calls(calls: dict[str, int]) -> dict[str, int]:
    """The KMS operations among a calls_made() delta."""
    return {op: n for op, n in calls.items() if op.startswith("kms:")}


@pytest.fixture(scope="module", params=terraform.SIGNING_MODES)
def deployment(request, tmp_path_factory):
    """A fresh deployment's worth of emulated resources for one signing_mode, and the values Terraform would set."""
    mode = request.param
    run = uuid.uuid4().hex[:8]
    queue_name, bucket = f"ledgix-lp-{run}-judge.fifo", f"ledgix-lp-{run}-anchors"
    sqs, s3, kms, sm = boto("sqs"), boto("s3"), boto("kms"), boto("secretsmanager")
    queue_url = sqs.create_queue(QueueName=queue_name, Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "30"})["QueueUrl"]
    # The notify queue as modules/state creates it: standard, redriven to its DLQ after 5 receives.
    notify_dlq = sqs.create_queue(QueueName=f"ledgix-lp-{run}-notify-dlq", Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
    notify_dlq_arn = sqs.get_queue_attributes(QueueUrl=notify_dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    notify_url = sqs.create_queue(QueueName=f"ledgix-lp-{run}-notify", Attributes={
        "VisibilityTimeout": "180",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": notify_dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    # signing_key_generations = ["1", "2"]: one KMS key per generation, the last the root. Generation "1" keeps
    # signing_key_kid as its kid, a later one is <signing_key_kid>-<generation> (infra/terraform/signing.tf).
    generations = {generation: {
        "arn": kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"],
        "kid": f"lp-{run}" if generation == "1" else f"lp-{run}-{generation}"} for generation in ("1", "2")}
    envelope = kms.create_key(KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    # The SES identities Terraform creates (email.tf); the emulator treats them as verified at once.
    for identity in EMAIL_IDENTITIES:
        boto("sesv2").create_email_identity(EmailIdentity=identity)
    bootstrap = f"ledgix-lp-{run}/bootstrap"
    # What the operator puts in the bootstrap secret (docs/deploy.md): the only secrets, never in Terraform. Each
    # mode's deployment has its own control plane, so one's anchor rounds never see the other's tenants.
    control_plane = fresh_database(os.environ["DATABASE_URL"], f"ledgix_lp_{run}")
    sm.create_secret(Name=bootstrap, SecretString=json.dumps(
        {"DATABASE_URL": control_plane, "LEDGIX_ADMIN_API_KEY": ADMIN_KEY}))
    # A value for every name infra/terraform/environment.tf may set, as a deployment would set it; PostgreSQL
    # without TLS and the stub judge are the test's only departures from the defaults.
    values = {
        "VAULT_BACKEND": "aws", "VAULT_SIGNER_BACKEND": terraform.signer_backend(mode),
        "VAULT_KMS_KEY_ID": generations["2"]["arn"], "VAULT_KEY_ID": generations["2"]["kid"],
        "AWS_SECRET_NAME": bootstrap, "RUST_LOG": "info",
        "TENANT_SECRET_PREFIX": f"ledgix-lp-{run}/tenants", "VAULT_DYNAMODB_TABLE": hot_table(boto("dynamodb"), f"ledgix-lp-{run}-hot"),
        **CALENDAR,
        "VAULT_ENVELOPE_KMS_KEY_ID": envelope, "VAULT_TENANT_DB_SSLMODE": "disable",
        "VAULT_CONTROL_PLANE_DB_SSLMODE": "disable", "VAULT_CONTROL_PLANE_DB_MAX_OPEN_CONNS": "5",
        "VAULT_TENANT_DB_MAX_OPEN_CONNS": "5", "VAULT_TENANT_SECRET_CACHE_TTL_SECONDS": "300",
        "VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS": "60", "VAULT_LEDGER_ANCHOR_BACKFILL_BATCH_SIZE": "500",
        "VAULT_LEDGER_ANCHOR_PREFIX": "ledgix", "VAULT_LEDGER_LOG_ORIGIN": "ledgix-vault",
        # A 60 s interval on a 60 s schedule: one round per invocation, so the test does not wait 30 s for a second.
        "VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS": "60", "VAULT_LEDGER_ANCHOR_CONCURRENCY": "8",
        "VAULT_JWT_TTL": "300", "VAULT_JWT_ISSUER": "alcv-vault", "VAULT_JWT_AUDIENCE": "ledgix-sdk",
        "VAULT_ALLOW_STUB_JUDGE": "true", "VAULT_CLEARANCE_SQS_QUEUE_URL": queue_url,
        "VAULT_NOTIFY_SQS_QUEUE_URL": notify_url, "VAULT_PUBLIC_URL": "https://vault.example.com",
        "VAULT_EMAIL_FROM_IDENTITIES": ",".join(EMAIL_IDENTITIES),
        "VAULT_CLEARANCE_SQS_FIFO_GROUP_SHARDS": "32", "VAULT_RATE_LIMIT_RPS": "20", "VAULT_RATE_LIMIT_BURST": "40",
        "VAULT_RATE_LIMIT_TTL_SECONDS": "180", "VAULT_METRICS": "emf", "VAULT_CORS_ALLOWED_ORIGIN": "https://console.example",
        "VAULT_LEDGER_ANCHOR_BUCKET": bucket, "VAULT_LEDGER_ANCHOR_REGION": "us-east-1",
        "VAULT_LEDGER_REQUIRE_BUCKET_VERSIONING": "true", "VAULT_LEDGER_REQUIRE_OBJECT_LOCK": "true",
        # Terraform's default: /admin/* only through API Gateway's AWS_IAM route.
        "VAULT_ADMIN_AUTH": "iam", "VAULT_MINT_MAX_AGE_SECONDS": "3600",
        # db_ca_bundle_path left null (PostgreSQL here has no verify-full); an empty value is unset to the code.
        "VAULT_DB_CA_BUNDLE": "",
    }
    # The policy judge as Terraform's defaults set it (judge.tf, environment.tf): Bedrock with the default models;
    # VAULT_JUDGE_URL is for the openai/http judges only (None: not set). The stub judge is not allowed.
    values.update({
        "VAULT_JUDGE_BACKEND": "bedrock", "VAULT_JUDGE_MODEL": JUDGE_MODELS["judge_model"],
        "VAULT_EMBEDDING_MODEL": JUDGE_MODELS["embedding_model"], "VAULT_JUDGE_URL": None,
        "VAULT_JUDGE_TIMEOUT_SECONDS": "20", "VAULT_JUDGE_RETRY_BUDGET_SECONDS": "60",
        "VAULT_JUDGE_TENANT_CONCURRENCY": "4", "VAULT_JUDGE_POLICY_BUDGET_CHARS": str(POLICY_BUDGET_CHARS),
        "VAULT_JUDGE_TOP_K": "4", "VAULT_ALLOW_STUB_JUDGE": "false",
    })
    httpx.post(f"{ENDPOINT}/_ledgix/calls", json={"reset": True}).raise_for_status()
    scripted = httpx.post(f"{ENDPOINT}/_ledgix/model/script", json=MODEL_SCRIPT)
    if scripted.status_code == 404:
        pytest.fail("the emulator has no scripted Bedrock model (tests/aws/moto_server.py: POST /_ledgix/model/script)")
    scripted.raise_for_status()
    bedrock = BedrockRecorder(ENDPOINT)
    logs = tmp_path_factory.mktemp("function-logs")
    started: dict[str, FunctionProcess] = {}

    def start(function: str, label: str = "", **overrides: str) -> FunctionProcess:
        names = terraform.function_environment(mode)[function]
        missing = names - values.keys()
        assert not missing, f"give the test a value for {sorted(missing)}"
        env = {name: overrides.get(name, values[name]) for name in names if values[name] is not None}
        test_only = TEST_ONLY.get(function, {})
        assert not test_only.keys() & names, f"{function}: Terraform sets {sorted(test_only.keys() & names)}"
        env.update(test_only)
        env.update(lambda_environment(), AWS_ENDPOINT_URL=ENDPOINT, AWS_REGION=REGION,
                   AWS_DEFAULT_REGION=REGION, AWS_ACCESS_KEY_ID=access_key(function),
                   AWS_SECRET_ACCESS_KEY="test", AWS_SESSION_TOKEN="test-session",
                   AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.url)
        process = FunctionProcess(function, RELEASE / function, env, logs / f"{function}{label}.log")
        if function in started:
            started[function].stop()
        started[function] = process
        process.init_seconds = process.wait_ready()
        return process

    receiver = Receiver()
    yield {"start": start, "queue_url": queue_url, "notify_url": notify_url, "bucket": bucket, "logs": logs,
           "started": started, "values": values, "bedrock": bedrock, "mode": mode, "generations": generations,
           "receiver": receiver}
    for process in started.values():
        process.stop()
    bedrock.stop()
    receiver.close()


def judge_records(queue_url: str, count: int) -> dict[str, dict]:
    """The judge jobs clearance-api queued (request id -> SQS record), as the event source mapping would deliver
    them, once `count` have arrived."""
    template = json.loads((EVENTS / "sqs" / "judge-batch.json").read_text())["Records"][0]
    records: dict[str, dict] = {}
    for _ in range(10):
        messages = boto("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                               AttributeNames=["All"]).get("Messages", [])
        for m in messages:
            record = copy.deepcopy(template)
            record.update(messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"],
                          md5OfBody=m["MD5OfBody"])
            record["attributes"].update({k: v for k, v in m["Attributes"].items() if k in record["attributes"]})
            records[json.loads(m["Body"])["request_id"]] = record
        if len(records) >= count:
            break
    return records


def notify_records(notify_url: str, count: int, wait_seconds: float = 15) -> list[dict]:
    """The notification jobs on the notify queue, as the event source mapping would deliver them to the notifier
    (events/sqs/notifier.json is the template), once `count` have arrived; received and deleted with the harness's
    key, as the mapping does with the notifier's role (NotifyQueueEventSource in iam.tf)."""
    sqs = boto("sqs")
    template = json.loads((EVENTS / "sqs" / "notifier.json").read_text())["Records"][0]
    arn = sqs.get_queue_attributes(QueueUrl=notify_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records: list[dict] = []
    deadline = time.monotonic() + wait_seconds
    while len(records) < count and time.monotonic() < deadline:
        for m in sqs.receive_message(QueueUrl=notify_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     AttributeNames=["All"]).get("Messages", []):
            record = copy.deepcopy(template)
            record.update(messageId=m["MessageId"], receiptHandle=m["ReceiptHandle"], body=m["Body"],
                          md5OfBody=m["MD5OfBody"], eventSourceARN=arn)
            record["attributes"].update({k: v for k, v in m["Attributes"].items() if k in record["attributes"]})
            records.append(record)
            sqs.delete_message(QueueUrl=notify_url, ReceiptHandle=m["ReceiptHandle"])
    assert len(records) == count, f"expected {count} notification jobs on the notify queue, got {len(records)}"
    return records


def bedrock_operations(calls: dict[str, int]) -> set[str]:
    """The Bedrock Runtime operations among a calls_made() delta."""
    return {op.split(":", 1)[1] for op in calls if op.startswith("bedrock:")}


def jwks_kids(process: FunctionProcess) -> list[str]:
    response = process.invoke(json.loads((EVENTS / "apigw" / "jwks.json").read_text()))
    assert response["statusCode"] == 200, response
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return [key["kid"] for key in json.loads(body)["keys"]]


def test_each_function_is_granted_exactly_what_its_code_calls(deployment):
    start, queue_url, mode = deployment["start"], deployment["queue_url"], deployment["mode"]
    generations, delegated = deployment["generations"], deployment["mode"] == "delegated"
    scheduled = json.loads((EVENTS / "scheduler" / "anchor-export.json").read_text())

    # The key step comes first, as after `terraform apply` with signing_key_generations = ["1", "2"]: generation 1's
    # root was recorded (delegated: and it certified this period's key) while it was the root; the first round
    # under generation 2 records the new root and retires the old one. Delegated, it also issues the current
    # period's key, without which approvals answer 503, so anchor-export runs before clearance-api serves.
    start("anchor-export", "-generation-1", VAULT_KMS_KEY_ID=generations["1"]["arn"],
          VAULT_KEY_ID=generations["1"]["kid"]).invoke(scheduled)
    # A root retires only the roots recorded before it, to the second (active_from): generation 2 comes later.
    time.sleep(1.05 - time.time() % 1)
    anchor = start("anchor-export")
    _, key_step = calls_made("anchor-export", lambda: anchor.invoke(scheduled))
    print(f"\n[{mode}] AWS calls, anchor round without tenants right after a root rotation (the key step): "
          f"{json.dumps(key_step, sort_keys=True)}")
    assert key_step.get("dynamodb:UpdateItem") == 1, f"the rotated-out root is retired once: {key_step}"
    if delegated:
        assert key_step.get("kms:Sign", 0) >= 1 and key_step.get("kms:GenerateDataKey", 0) >= 1, (
            f"the new root certifies the period's key, sealed under the envelope key: {key_step}")
    else:
        assert not kms_calls(key_step), f"direct: no key to issue, and no checkpoint without tenants: {key_step}"

    jwks = start("jwks")
    kids = jwks_kids(jwks)
    assert {generations["1"]["kid"], generations["2"]["kid"]} <= set(kids), (
        f"the JWKS keeps the retired root and lists the new one: {kids}")
    issued = [kid for kid in kids if kid.startswith(f"{generations['2']['kid']}.d")]
    assert bool(issued) == delegated, f"delegated keys of the new root are published only when delegated: {kids}"

    api = start("clearance-api")
    # As Terraform deploys it (VAULT_ADMIN_AUTH=iam): the operator's key alone is refused; a request API Gateway
    # authorised with IAM (the sample's requestContext.authorizer.iam) creates the tenant.
    answer(api, apigw("admin-create-tenant", body={"name": "least-privilege"}), 403)
    tenant = answer(api, apigw("admin-create-tenant-iam", body={"name": "least-privilege"}), 201)
    assert tenant["roles"] == ["tenant_admin"], tenant
    # One key for the whole round: the tenant admin issues it the duties the round exercises.
    key = answer(api, apigw("register-policy", api_key=tenant["api_key"], path="/api-keys", body={
        "roles": ["agent", "consumer", "tenant_admin"], "name": "least-privilege round"}), 201)["api_key"]
    answer(api, apigw("register-policy", api_key=key), 201)
    answer(api, apigw("register-policy", api_key=key, body={
        "policy_id": "email", "description": "judged", "tools": ["send_email"], "rules": ["Only to customers"]}), 201)
    assert len(LONG_POLICY["description"]) + sum(map(len, LONG_POLICY["rules"])) > POLICY_BUDGET_CHARS
    answer(api, apigw("register-policy", api_key=key, body=LONG_POLICY), 201)

    def approval() -> dict:
        return answer(api, apigw("request-clearance", api_key=key), 200)

    while True:
        period = int(time.time()) // PERIOD_SECONDS
        # The instance's first approval in this key period (and its first at all): it warms the tenant's pool and
        # caches, and, delegated, opens the period's key.
        _, per_first = calls_made("clearance-api", approval)
        approved, per_request = calls_made("clearance-api", approval)
        if int(time.time()) // PERIOD_SECONDS == period:
            break
        # A key period began meanwhile (delegated: a new key to open); measure both again within the new one.
    assert approved["status"] == "approved" and approved["token"]
    if delegated:
        assert not kms_calls(per_request), f"a warm delegated approval calls no KMS at all: {per_request}"
        assert kms_calls(per_first).get("kms:Decrypt") == 1 and "kms:Sign" not in per_first, (
            f"the first approval of a key period opens its key with one envelope Decrypt, never Sign: {per_first}")
    else:
        assert kms_calls(per_request) == {"kms:Sign": 2}, f"direct: the token and the receipt, one Sign each: {per_request}"
    queued, per_request_queued = calls_made("clearance-api", lambda: answer(api, apigw("request-clearance", api_key=key, body={
        "tool_name": "send_email", "tool_args": {"to": "a@example.com"}, "session_id": "s-1"}), 200))
    queued_long = answer(api, apigw("request-clearance", api_key=key, body={
        "tool_name": "wire_transfer", "tool_args": {"amount": 25000, "currency": "usd", "payee": "new-supplier"},
        "session_id": "s-1"}), 200)
    assert queued["status"] == queued_long["status"] == "processing", (queued, queued_long)
    _, per_consume = calls_made("clearance-api", lambda: answer(
        api, apigw("consume-token", api_key=key, body={
            "token": approved["token"], "tool_name": "stripe_refund", "tool_args": {"amount": 45, "currency": "usd"}}), 200))
    # Measured AWS calls of a warm clearance-api per request (docs/benchmarks.md).
    first_label = "first approval of a key period (this instance's first)" if delegated else "first approval of an instance"
    print(f"[{mode}] AWS calls, {first_label}: {json.dumps(per_first, sort_keys=True)}"
          f"\n[{mode}] AWS calls, inline approval: {json.dumps(per_request, sort_keys=True)}"
          f"\n[{mode}] AWS calls, queued judgement (request): {json.dumps(per_request_queued, sort_keys=True)}"
          f"\n[{mode}] AWS calls, consume-token: {json.dumps(per_consume, sort_keys=True)}")

    # Notifications, set up after the measurements above (with settings, a fresh read of the tenant's rules also
    # opens them with the envelope key). A rules policy that asks for review, a review deadline the anchor round
    # below will have passed, and the loopback receiver subscribed to what the round's decisions announce.
    receiver: Receiver = deployment["receiver"]
    answer(api, apigw("register-policy", api_key=key, body=REVIEW_POLICY), 201)
    review_settings = answer(api, apigw("get-review-settings", api_key=key), 200)
    answer(api, apigw("put-review-settings", api_key=key, body={
        "minimum_confidence_bucket": review_settings["minimum_confidence_bucket"],
        "review_deadline_seconds": REVIEW_DEADLINE_SECONDS}), 200)
    saved, per_settings = calls_made("clearance-api", lambda: answer(api, apigw(
        "put-review-settings", api_key=key, path="/notification-settings",
        body={"webhooks": [{"url": receiver.url, "secret": WEBHOOK_SECRET, "events": NOTIFY_EVENTS}],
              "email": EMAIL_SETTINGS}), 200))
    assert WEBHOOK_SECRET not in json.dumps(saved) and saved["webhooks"][0]["secret_set"], saved
    pending, per_review = calls_made("clearance-api", lambda: answer(api, apigw("request-clearance", api_key=key, body={
        "tool_name": "erase_records", "tool_args": {"table": "customers"}, "session_id": "s-2"}), 200))
    pending_at = time.time()
    assert pending["status"] == "pending_review", pending
    print(f"[{mode}] AWS calls, PUT /notification-settings: {json.dumps(per_settings, sort_keys=True)}"
          f"\n[{mode}] AWS calls, a request routed to review, review.pending dispatched: {json.dumps(per_review, sort_keys=True)}")
    assert per_review.get("sqs:SendMessage") == 2 and per_review.get("dynamodb:PutItem", 0) >= 1, (
        f"clearance-api records the review.pending deliveries (webhook, email) and queues a job each: {per_review}")

    worker = start("judge-worker")
    records = judge_records(queue_url, 2)
    assert set(records) == {queued["request_id"], queued_long["request_id"]}, sorted(records)
    # One message per batch (judge_worker_batch_size's default), in queue order (one FIFO group: session s-1).
    outcome, per_judgement = calls_made("judge-worker", lambda: worker.invoke({"Records": [records[queued["request_id"]]]}))
    assert outcome == {"batchItemFailures": []}
    print(f"[{mode}] AWS calls, queued judgement (worker, first batch of a cold instance): {json.dumps(per_judgement, sort_keys=True)}")
    assert bedrock_operations(per_judgement) == {"Converse"}, (
        f"a short policy goes to the model whole: one Converse, no embeddings; judge-worker called {per_judgement}")
    outcome, per_long = calls_made("judge-worker", lambda: worker.invoke({"Records": [records[queued_long["request_id"]]]}))
    assert outcome == {"batchItemFailures": []}
    print(f"[{mode}] AWS calls, queued judgement of a long policy (worker, warm): {json.dumps(per_long, sort_keys=True)}")
    assert bedrock_operations(per_long) == {"InvokeModel", "Converse"}, (
        f"a policy over VAULT_JUDGE_POLICY_BUDGET_CHARS is embedded (InvokeModel) and judged from its chunks "
        f"(Converse); judge-worker called {per_long}")
    if delegated:
        # The cold worker reads the period's key by kid and opens it once (a registry GetItem, an envelope Decrypt
        # beside the one that reads the request), then signs in memory; it never lists the registry.
        assert "kms:Sign" not in per_judgement and "kms:Sign" not in per_long, (per_judgement, per_long)
        # The approval announces nothing; the denial reads the tenant's notification settings (one more GetItem).
        assert per_judgement.get("dynamodb:GetItem") == 1 and per_long.get("dynamodb:GetItem") == 1, (per_judgement, per_long)
        assert "dynamodb:Query" not in per_judgement, per_judgement
    else:
        # The KMS root signs each judged decision's receipt, and the approval's token.
        assert per_judgement.get("kms:Sign") == 2 and per_long.get("kms:Sign") == 1, (per_judgement, per_long)
    # The denial is announced (clearance.denied): its delivery recorded, its job queued; the approval is not.
    assert "sqs:SendMessage" not in per_judgement and per_long.get("sqs:SendMessage") == 1, (per_judgement, per_long)
    assert per_long.get("dynamodb:PutItem", 0) >= 1, per_long
    status, per_poll = calls_made("clearance-api", lambda: answer(
        api, apigw("clearance-status", api_key=key, path=f"/clearance-status/{queued['request_id']}"), 200))
    print(f"[{mode}] AWS calls, clearance-status poll: {json.dumps(per_poll, sort_keys=True)}")
    assert status["status"] == "approved", f"the scripted model approved the e-mail (0.97): {status}"
    status_long = answer(api, apigw("clearance-status", api_key=key, path=f"/clearance-status/{queued_long['request_id']}"), 200)
    assert status_long["status"] == "denied", f"the scripted model denied the transfer: {status_long}"

    # The anchor round expires the review once it is older than the deadline, and announces it (review.expired).
    time.sleep(max(0.0, pending_at + REVIEW_DEADLINE_SECONDS + 1.5 - time.time()))
    _, per_round = calls_made("anchor-export", lambda: anchor.invoke(scheduled))
    print(f"[{mode}] AWS calls, anchor round expiring a review (review.expired dispatched): {json.dumps(per_round, sort_keys=True)}")
    assert per_round.get("sqs:SendMessage") == 1, f"anchor-export queues the review.expired job: {per_round}"
    expired = answer(api, apigw("clearance-status", api_key=key, path=f"/clearance-status/{pending['request_id']}"), 200)
    assert expired["status"] == "denied" and expired["reason_code"] == "review_expired", expired
    exported = boto("s3").list_objects_v2(Bucket=deployment["bucket"], Prefix=f"ledgix/{tenant['tenant_id']}/")
    assert any(o["Key"].endswith("/checkpoint") for o in exported.get("Contents", [])), exported
    answer(api, apigw("proof-bundle", api_key=key, query=f"request_id={approved['request_id']}"), 200)
    answer(api, apigw("ledger", api_key=key), 200)
    usage = answer(api, apigw("ledger", api_key=key, path="/usage"), 200)
    assert usage, "the usage counters of the round"

    check_notifications(deployment, api, key, {pending["request_id"], queued_long["request_id"]})

    granted = terraform.function_permissions(mode)
    observed = {name: recorded_actions(name) for name in terraform.FUNCTIONS}
    code = sdk_operations_in_code()
    for (name, action), reason in UNREACHED_PATHS.items():
        assert action in code and action not in observed[name], f"{name} {action}: {reason}"
        observed[name].add(action)
    for name in terraform.FUNCTIONS:
        missing, extra = observed[name] - granted[name], granted[name] - observed[name]
        assert not missing and not extra, (
            f"{name} ({mode}): iam.tf must grant exactly what the code calls; missing {sorted(missing)}, "
            f"never called {sorted(extra)}")

    # The resources of bedrock:InvokeModel: the models judge-worker named, against what iam.tf grants for the
    # configured models (terraform.bedrock_invoke_grants, pinned to plan.tftest.hcl by test_judge_grants.py).
    check_bedrock_models(deployment["bedrock"], deployment["values"])

    # Every SDK operation the AWS adapters contain was exercised by some function (or is dev-only), so the round
    # above cannot have skipped a code path that would need a permission.
    called_anywhere = set().union(*observed.values()) | DEV_ONLY
    assert code <= called_anywhere, sorted(code - called_anywhere)

    report = {name: round(process.init_seconds * 1000, 1) for name, process in deployment["started"].items()}
    print(f"\n[{mode}] init durations (ms, this machine): {json.dumps(report)}")


def deliveries(api: FunctionProcess, key: str) -> list[dict]:
    """GET /notification-deliveries (clearance-api: the delivery log, newest first)."""
    return answer(api, apigw("get-review-settings", api_key=key, path="/notification-deliveries", query="limit=50"),
                  200)["deliveries"]


def check_notifications(deployment: dict, api: FunctionProcess, key: str, request_ids: set[str]) -> None:
    """The notifier takes the four jobs the round's decisions queued (three webhooks, one email), posts the webhooks
    and sends the email with SES; the receiver fails the first post, so one delivery is retried: the notifier
    re-queues its job with a delay and delivers it next time."""
    mode, receiver = deployment["mode"], deployment["receiver"]
    logged = deliveries(api, key)
    assert sorted(d["event"] for d in logged) == sorted(NOTIFY_EVENTS + EMAIL_SETTINGS["events"]), logged
    assert {d["request_id"] for d in logged} == request_ids and {d["status"] for d in logged} == {"queued"}, logged
    [email] = [d for d in logged if d["target_id"] == "email"]
    assert email["event"] == "review.pending", email

    notifier = deployment["start"]("notifier")
    # The sample event as it is: jobs for deliveries this deployment never recorded are skipped and a body that is
    # no job is dropped, all acknowledged (redelivering cannot make them deliverable).
    sample = json.loads((EVENTS / "sqs" / "notifier.json").read_text())
    assert notifier.invoke(sample) == {"batchItemFailures": []} and not receiver.posts, receiver.posts
    jobs = notify_records(deployment["notify_url"], 4)
    assert {json.loads(r["body"])["delivery_id"] for r in jobs} == {d["delivery_id"] for d in logged}, jobs
    outcome, per_batch = calls_made("notifier", lambda: notifier.invoke({"Records": jobs}))
    print(f"[{mode}] AWS calls, notifier batch of 4 jobs (cold instance; one webhook fails, one email): "
          f"{json.dumps(per_batch, sort_keys=True)}")
    assert outcome == {"batchItemFailures": []}, f"a failed webhook is rescheduled, not reported: {outcome}"
    assert [p["status"] for p in receiver.posts].count(503) == 1 and len(receiver.posts) == 3, receiver.posts
    assert per_batch.get("sqs:SendMessage") == 1, f"the failed delivery's job is queued again: {per_batch}"
    assert per_batch.get("ses:SendEmail") == 1, f"the email is one SendEmail to every recipient: {per_batch}"
    # What SES accepted (the emulator's record): from the tenant's sender to its recipients, naming the request.
    sent = [m for m in httpx.get(f"{ENDPOINT}/_ledgix/ses/messages", params={"region": REGION}).json()
            if email["request_id"] in (m["body"] or "")]
    assert len(sent) == 1, sent
    assert sent[0]["source"] == EMAIL_SETTINGS["from"], sent
    assert sent[0]["destinations"].get("ToAddresses") == EMAIL_SETTINGS["to"], sent
    assert "Review needed" in sent[0]["subject"] and email["delivery_id"] in sent[0]["body"], sent

    retry = notify_records(deployment["notify_url"], 1)  # after its delay (about a second)
    failed_id = next(json.loads(p["body"])["delivery_id"] for p in receiver.posts if p["status"] == 503)
    assert json.loads(retry[0]["body"])["delivery_id"] == failed_id, (retry, failed_id)
    outcome, per_retry = calls_made("notifier", lambda: notifier.invoke({"Records": retry}))
    print(f"[{mode}] AWS calls, notifier retry (warm): {json.dumps(per_retry, sort_keys=True)}")
    assert outcome == {"batchItemFailures": []} and len(receiver.posts) == 4, (outcome, receiver.posts)

    # Each post is signed with the webhook's secret, names its delivery, and carries the decision it announces.
    for post in receiver.posts:
        headers, body = post["headers"], json.loads(post["body"])
        expected = hmac.new(WEBHOOK_SECRET.encode(), post["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-ledgix-signature"], f"sha256={expected}"), headers
        assert headers["x-ledgix-event"] == body["event"] and headers["x-ledgix-delivery"] == body["delivery_id"]
        assert body["request_id"] in request_ids, body
    assert {json.loads(p["body"])["event"] for p in receiver.posts if p["status"] == 200} == set(NOTIFY_EVENTS)
    logged = {d["delivery_id"]: d for d in deliveries(api, key)}
    assert {d["status"] for d in logged.values()} == {"delivered"}, logged
    assert logged[failed_id]["attempts"] == 2, logged[failed_id]


def check_bedrock_models(bedrock: BedrockRecorder, values: dict) -> None:
    """Every Bedrock call of judge-worker names a model ARN iam.tf grants for the configured models, every
    granted model is called, and no other function calls Bedrock at all."""
    worker = access_key("judge-worker")
    named = bedrock.calls(worker)
    emulated = {op.split(":", 1)[1]: n for op, n in recorded_counts("judge-worker").items() if op.startswith("bedrock:")}
    through_recorder = {op: sum(n for (o, _), n in named.items() if o == op) for op in {o for o, _ in named}}
    assert named and through_recorder == emulated, (
        f"judge-worker's Bedrock calls must all pass bedrock_recorder.py (AWS_ENDPOINT_URL_BEDROCK_RUNTIME): "
        f"it saw {through_recorder}, the emulator {emulated}; unrecognised paths {bedrock.unrecognised}")
    account = boto("sts").get_caller_identity()["Account"]
    configured = [values["VAULT_JUDGE_MODEL"], values["VAULT_EMBEDDING_MODEL"]]
    called_on, routed = terraform.bedrock_invoke_grants(configured, region=REGION, account=account)
    resources = {terraform.bedrock_call_resource(model, region=REGION, account=account) for _, model in named}
    assert {op for op, _ in named} <= {"Converse", "InvokeModel"}, named  # both bedrock:InvokeModel, granted above
    assert resources <= called_on, f"judge-worker called models iam.tf does not grant: {sorted(resources - called_on)}"
    assert called_on <= resources, f"iam.tf grants models judge-worker never called: {sorted(called_on - resources)}"
    # A profile's foundation model is invoked by Bedrock on the routed call, never by the code.
    assert set(routed.values()) <= resources, routed
    by_operation = {op: {model for o, model in named if o == op} for op in ("Converse", "InvokeModel")}
    assert by_operation == {"Converse": {values["VAULT_JUDGE_MODEL"]}, "InvokeModel": {values["VAULT_EMBEDDING_MODEL"]}}, (
        f"Converse judges with VAULT_JUDGE_MODEL, InvokeModel embeds with VAULT_EMBEDDING_MODEL: {by_operation}")
    for name in terraform.FUNCTIONS:
        if name != "judge-worker":
            assert not bedrock.calls(access_key(name)), f"{name} called Bedrock: {bedrock.calls(access_key(name))}"


# botocore service model -> IAM service prefix of its actions.
SDK_SERVICES = {"dynamodb": "dynamodb", "kms": "kms", "secretsmanager": "secretsmanager", "sqs": "sqs", "s3": "s3",
                "bedrock-runtime": "bedrock", "sesv2": "ses"}


def sdk_operations_in_code() -> set[str]:
    """IAM actions of the SDK operations called in shared/aws/src, shared/judges/src and functions/*/src (method
    names matched against the botocore service models: `.get_item()` is DynamoDB GetItem, `.converse()` Bedrock
    Runtime Converse, `.send_email()` SES v2 SendEmail)."""
    session = get_session()
    sources = "\n".join(p.read_text() for p in [*(ROOT / "shared" / "aws" / "src").glob("*.rs"),
                                                 *(ROOT / "shared" / "judges" / "src").rglob("*.rs"),
                                                 *(ROOT / "functions").glob("*/src/*.rs")])
    called = set(re.findall(r"\.([a-z][a-z0-9_]*)\(\)", sources))
    actions = set()
    for service, prefix in SDK_SERVICES.items():
        for operation in session.get_service_model(service).operation_names:
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
            if snake in called:
                actions.add(IAM_ACTION.get(f"{prefix}:{operation}", f"{prefix}:{operation}"))
    return actions
