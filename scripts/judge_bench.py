#!/usr/bin/env python3
"""Judge latency and cost per thousand judgements (docs/judge.md, "Latency and cost").

Usage: .venv/bin/python scripts/judge_bench.py [judgements per policy, default 100]

Runs `ledgix dev --judge openai` (release build) against the scripted OpenAI-compatible model server on loopback,
for a short policy (sent whole) and a long one (chunked, embedded, top-k retrieved), and prints one markdown table:
the vault's own time per judgement (request → decided, with a model that answers at once), the tokens each
judgement sends and receives (the emulator counts ceil(characters / 4), about what BPE tokenizers give for
English), and what those tokens cost at the default models' list prices. Model inference time is not in it: it
cannot be measured offline and adds to every row.
"""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# On-demand list prices, us-east-1, USD per 1,000 tokens (Amazon Bedrock pricing page).
NOVA_PRO_INPUT, NOVA_PRO_OUTPUT, TITAN_V2_EMBED = 0.0008, 0.0032, 0.00002

SHORT_RULES = [
    "Refunds up to 100 EUR are allowed for customers with a receipt.",
    "Never refund an account opened in the last seven days.",
]
# A staff handbook of the kind tenants paste in: many unrelated rules, one of which matters to a call.
LONG_RULES = [
    f"Section {i}: {topic}" for i, topic in enumerate([
        "Travel bookings need a manager's approval before any ticket is bought, and economy class is the rule "
        "for flights under six hours; exceptions are recorded with the reason and the approver.",
        "Payroll changes are made only by the finance team after a signed request; an assistant or an agent may "
        "prepare the change but never submit it.",
        "Refunds to customers are limited to 100 EUR without a supervisor; accounts opened in the last seven "
        "days get no refund at all, and a refund never goes to a different card than the purchase.",
        "Marketing emails go to at most fifty customers at once, only to those who opted in, and never contain "
        "pricing that has not been published on the website.",
        "Database exports leave the company only through the approved storage bucket; personal data is masked "
        "unless the data protection officer approved the export in writing.",
        "Production deployments happen Monday to Thursday between 9:00 and 16:00 with a second engineer "
        "watching; rollbacks are always allowed.",
        "Customer contracts are changed only by account managers; discounts above 15 percent need a director.",
        "Vendor payments above 5,000 EUR need two approvals and a purchase order number.",
        "Support tickets marked legal are answered only by the legal team within two working days.",
        "Social media posts on company accounts are reviewed by communications before they are published.",
        "Access to the HR system is granted per person, reviewed every quarter, and removed on the last day.",
        "Gift cards are never issued as compensation; credits are applied to the customer's account instead.",
    ] * 4, start=1)
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def judge_once(http: httpx.Client, tool: str, args: dict) -> float:
    started = time.perf_counter()
    first = http.post("/request-clearance", json={"tool_name": tool, "tool_args": args}).json()
    status = first
    while status["status"] == "processing":
        time.sleep(0.005)
        status = http.get(f"/clearance-status/{first['request_id']}").json()
    if status["status"] != "approved":
        raise SystemExit(f"expected approved, got {status}")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ledgix"], cwd=ROOT, check=True)
    work = Path(tempfile.mkdtemp(prefix="judge-bench-"))
    model_port, vault_port = free_port(), free_port()
    model_key = "sk-bench-" + secrets.token_hex(8)
    agent, admin = "lvk_bench_" + secrets.token_urlsafe(18), "lvk_bench_adm_" + secrets.token_urlsafe(18)
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests/aws/model_server.py"), "--port", str(model_port),
                               "--api-key", model_key], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    model_url = f"http://127.0.0.1:{model_port}"
    env = dict(os.environ, LEDGIX_DEV_API_KEY=agent, LEDGIX_DEV_TENANT_ADMIN_API_KEY=admin, RUST_LOG="warn",
               VAULT_RATE_LIMIT_RPS="0", VAULT_CLIENT_RATE_LIMIT_RPS="0", VAULT_JUDGE_API_KEY=model_key)
    procs.append(subprocess.Popen(
        [str(ROOT / "target/release/ledgix"), "dev", "--addr", f"127.0.0.1:{vault_port}", "--data-dir", str(work),
         "--judge", "openai", "--judge-url", f"{model_url}/v1", "--judge-model", "bench-judge",
         "--embedding-model", "bench-embed"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(work / "stderr", "wb")))
    try:
        wait_ready(f"{model_url}/_ledgix/model/requests")
        vault_url = f"http://127.0.0.1:{vault_port}"
        wait_ready(f"{vault_url}/healthz")
        verdict = {"decision": "approve", "confidence": 0.95, "reason": "Within the refund limit for an "
                   "established account (Section 3).", "rules_applied": ["C3"]}
        httpx.post(f"{model_url}/_ledgix/model/script", json={"rules": [{"match": "bench_", "reply": verdict}]})
        with httpx.Client(base_url=vault_url, headers={"X-Vault-API-Key": admin}, timeout=30) as tenant_admin:
            for policy_id, tool, rules in (("short", "bench_short_refund", SHORT_RULES),
                                           ("handbook", "bench_long_refund", LONG_RULES)):
                r = tenant_admin.post("/register-policy", json={"policy_id": policy_id, "tools": [tool], "rules": rules})
                r.raise_for_status()
        rows = []
        with httpx.Client(base_url=vault_url, headers={"X-Vault-API-Key": agent}, timeout=30) as http:
            for label, tool in (("short policy (2 rules, sent whole)", "bench_short_refund"),
                                (f"long policy ({len(LONG_RULES)} rules, {sum(map(len, LONG_RULES))} characters; "
                                 "top 4 chunks retrieved)", "bench_long_refund")):
                judge_once(http, tool, {"amount": 1, "customer": "warm-up"})  # first use embeds the chunks
                day = time.strftime("%Y-%m-%d", time.gmtime())
                with httpx.Client(base_url=vault_url, headers={"X-Vault-API-Key": admin}, timeout=30) as a:
                    before = dict(a.get("/usage", params={"day": day}).json()["counters"])
                latencies = [judge_once(http, tool, {"amount": 20 + i % 50, "customer": f"c-{i}",
                                                     "reason": "damaged item, refund to the purchase card"})
                             for i in range(runs)]
                with httpx.Client(base_url=vault_url, headers={"X-Vault-API-Key": admin}, timeout=30) as a:
                    after = dict(a.get("/usage", params={"day": day}).json()["counters"])
                per = {m: (after.get(m, 0) - before.get(m, 0)) / runs for m in
                       ("judge.input_tokens", "judge.output_tokens", "judge.embedding_tokens")}
                cost = (per["judge.input_tokens"] * NOVA_PRO_INPUT + per["judge.output_tokens"] * NOVA_PRO_OUTPUT
                        + per["judge.embedding_tokens"] * TITAN_V2_EMBED)  # per judgement, per 1,000 tokens → × 1,000 / 1,000
                latencies.sort()
                rows.append((label, statistics.median(latencies), latencies[int(0.95 * (runs - 1))],
                             per["judge.input_tokens"], per["judge.output_tokens"], per["judge.embedding_tokens"],
                             cost))
        print(f"# {runs} judgements per policy, sequential, `ledgix dev --judge openai` against the scripted model")
        print("| policy | vault time p50 (ms) | p95 (ms) | input tokens | output tokens | embedding tokens "
              "| USD per 1,000 judgements (Nova Pro + Titan v2) |")
        print("|---|---|---|---|---|---|---|")
        for label, p50, p95, tin, tout, temb, cost in rows:
            print(f"| {label} | {p50:.1f} | {p95:.1f} | {tin:.0f} | {tout:.0f} | {temb:.0f} | {cost:.2f} |")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=15)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
