"""Signing load: inline approvals through the real clearance-api binary, under a local Lambda Runtime API
(tests/deploy/lambda_runtime.py), against the AWS emulator, in both signing modes; counts the KMS calls each
function makes (the emulator records them per access key).

    .venv/bin/python scripts/signing_load.py --approvals 2000 --instances 2

Needs the release binaries (clearance-api, anchor-export), the emulator (AWS_ENDPOINT_URL with
tests/aws/resources.py applied: VAULT_DYNAMODB_TABLE, VAULT_KMS_KEY_ID, VAULT_ENVELOPE_KMS_KEY_ID) and DATABASE_URL
of a control-plane database whose role may create databases and roles (scripts/signing_load.sh sets all of it up).
For each mode it runs anchor-export's round once (in delegated mode that issues the period's key), creates a
tenant, then drives `--instances` clearance-api processes, one invocation at a time each (as Lambda does), and
prints approvals/s, the KMS calls clearance-api made per approval after its first, and anchor-export's.
Exits 1 if delegated mode made any KMS call on the approval path after the first approval of each instance.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))
from apigw_events import answer, apigw  # noqa: E402
from lambda_runtime import FunctionProcess, lambda_environment  # noqa: E402

EVENTS = ROOT / "events"
RELEASE = ROOT / "target" / "release"
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "")
REGION = os.environ.get("AWS_REGION", "us-east-1")
APPROVE = 'package load\ndefault decision := "deny"\ndecision := "approve" if { input.tool_args.amount < 100 }'


def calls(access_key: str) -> dict[str, int]:
    rows = httpx.get(f"{ENDPOINT}/_ledgix/calls", params={"access_key": access_key}).json()
    return {f"{r['service']}:{r['operation']}": r["count"] for r in rows}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}


def environment(mode: str, run: str) -> dict[str, str]:
    secrets = boto3.client("secretsmanager", endpoint_url=ENDPOINT, region_name=REGION)
    bootstrap = f"ledgix-load-{run}/bootstrap"
    admin_key = "lva_load_" + uuid.uuid4().hex
    secrets.create_secret(Name=bootstrap, SecretString=json.dumps(
        {"DATABASE_URL": os.environ["DATABASE_URL"], "LEDGIX_ADMIN_API_KEY": admin_key}))
    env = {
        "VAULT_BACKEND": "aws", "VAULT_SIGNER_BACKEND": mode, "VAULT_KMS_KEY_ID": os.environ["VAULT_KMS_KEY_ID"],
        "VAULT_KEY_ID": f"load-{run}", "AWS_SECRET_NAME": bootstrap, "RUST_LOG": "warn",
        "TENANT_SECRET_PREFIX": f"ledgix-load-{run}/tenants", "VAULT_DYNAMODB_TABLE": os.environ["VAULT_DYNAMODB_TABLE"],
        "VAULT_ENVELOPE_KMS_KEY_ID": os.environ["VAULT_ENVELOPE_KMS_KEY_ID"], "VAULT_TENANT_DB_SSLMODE": "disable",
        "VAULT_CONTROL_PLANE_DB_SSLMODE": "disable", "VAULT_RATE_LIMIT_RPS": "0", "VAULT_ADMIN_AUTH": "header",
        "VAULT_METRICS": "off", "VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS": "60",
        "VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS": "60",
    }
    env.update(lambda_environment(), AWS_ENDPOINT_URL=ENDPOINT, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
               AWS_SECRET_ACCESS_KEY="test", AWS_SESSION_TOKEN="test-session")
    env["LEDGIX_LOAD_ADMIN_KEY"] = admin_key
    return env


def run_mode(mode: str, approvals: int, instances: int, logs: Path) -> dict:
    run = uuid.uuid4().hex[:8]
    env = environment(mode, run)
    admin_key = env.pop("LEDGIX_LOAD_ADMIN_KEY")
    api_access, anchor_access = f"LOADAPI{run.upper()}", f"LOADANCHOR{run.upper()}"
    started: list[FunctionProcess] = []
    try:
        anchor = FunctionProcess("anchor-export", RELEASE / "anchor-export", {**env, "AWS_ACCESS_KEY_ID": anchor_access},
                                 logs / f"{mode}-anchor-export.log", timeout_seconds=300)
        started.append(anchor)
        anchor.wait_ready()
        anchor.invoke(json.loads((EVENTS / "scheduler" / "anchor-export.json").read_text()), timeout=300)
        apis = []
        for i in range(instances):
            api = FunctionProcess("clearance-api", RELEASE / "clearance-api", {**env, "AWS_ACCESS_KEY_ID": api_access},
                                  logs / f"{mode}-clearance-api-{i}.log")
            started.append(api)
            api.wait_ready()
            apis.append(api)
        create = apigw("admin-create-tenant", body={"name": f"load {mode}"})
        create["headers"]["x-admin-api-key"] = admin_key
        tenant = answer(apis[0], create, 201)
        key = answer(apis[0], apigw("register-policy", api_key=tenant["api_key"], path="/api-keys", body={
            "roles": ["agent", "tenant_admin"], "name": "load"}), 201)["api_key"]
        answer(apis[0], apigw("register-policy", api_key=key, body={
            "policy_id": "load", "tools": ["load_refund"], "rego": APPROVE}), 201)
        request = lambda n: apigw("request-clearance", api_key=key, body={  # noqa: E731
            "tool_name": "load_refund", "tool_args": {"amount": 1, "n": n}})
        for api in apis:  # the first approval of each instance opens the current key (delegated mode)
            first_before = calls(api_access)
            assert answer(api, request(-1), 200)["status"] == "approved"
        first = delta(first_before, calls(api_access))
        before, errors = calls(api_access), []
        per_instance = approvals // instances

        def drive(api: FunctionProcess, offset: int) -> None:
            try:
                for n in range(per_instance):
                    if answer(api, request(offset + n), 200)["status"] != "approved":
                        raise RuntimeError("not approved")
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=drive, args=(api, i * per_instance)) for i, api in enumerate(apis)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"{len(errors)} instance(s) failed: {errors[0]}")
        hot = delta(before, calls(api_access))
        done = per_instance * instances
        kms_hot = {op: n for op, n in hot.items() if op.startswith("kms:")}
        return {"mode": mode, "approvals": done, "seconds": round(elapsed, 2), "per_second": round(done / elapsed, 1),
                "kms_calls_on_hot_path": kms_hot,
                "kms_per_approval": round(sum(kms_hot.values()) / done, 3),
                "first_approval_of_last_instance": first,
                "anchor_export_key_step": {op: n for op, n in calls(anchor_access).items() if op.startswith("kms:")}}
    finally:
        for process in started:
            process.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approvals", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--modes", default="aws_kms_delegated,aws_kms")
    args = parser.parse_args()
    for name in ("AWS_ENDPOINT_URL", "DATABASE_URL", "VAULT_KMS_KEY_ID", "VAULT_ENVELOPE_KMS_KEY_ID", "VAULT_DYNAMODB_TABLE"):
        if not os.environ.get(name):
            print(f"signing_load.py: {name} is not set (scripts/signing_load.sh sets up the emulator)", file=sys.stderr)
            return 2
    logs = Path(tempfile.mkdtemp(prefix="ledgix-signing-load-"))
    ok = True
    for mode in args.modes.split(","):
        result = run_mode(mode, args.approvals, args.instances, logs)
        print(json.dumps(result))
        if mode == "aws_kms_delegated" and result["kms_calls_on_hot_path"]:
            print(f"FAILED: delegated signing called KMS on the approval path: {result['kms_calls_on_hot_path']}")
            ok = False
    print(f"function logs: {logs}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
