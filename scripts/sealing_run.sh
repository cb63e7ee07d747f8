#!/usr/bin/env bash
# Sealing run: several tenants writing at a steady rate while the anchor job seals and exports their logs.
# Usage: scripts/sealing_run.sh [--backend embedded|aws] [--tenants 3] [--rate 200] [--seconds 180] [--interval 30]
# Starts `ledgix dev` (loopback, rate limits off, VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS=interval), creates
# the tenants through the admin API (POST /admin/tenants, then the tenant admin issues an agent and an auditor key
# with POST /api-keys), registers an approving Rego policy per tenant, and drives every tenant at `rate`
# approvals/s for `seconds` (one tools/loadgen --rate per tenant, in parallel). Every 10 s, and afterwards until
# every tenant is sealed and exported (at most 2 intervals + 30 s), it prints each tenant's anchor lag from
# GET /ledger/status (auditor key); while that route answers 404 the lag is the newest event's seq minus the latest
# checkpoint's tree_size, its age read from vault.db (embedded) or estimated as events behind / rate (marked ~).
# Exits 1 unless every tenant's lag stayed within 2 intervals, every request was approved, and the export —
# embedded: <data-dir>/anchors/<prefix>/<tenant>/checkpoints/<id>.json; aws: s3://$VAULT_LEDGER_ANCHOR_BUCKET/
# <prefix>/<tenant>/... (boto3 from .venv) — holds every checkpoint 1..n in order (chained, growing tree sizes,
# exported in order, matching the vault's records and the signed `checkpoint` note).
# --backend aws needs the environment scripts/test.sh sets up for `ledgix dev --backend aws`: PostgreSQL
# (DATABASE_URL, VAULT_TENANT_DB_SSLMODE=disable for a local cluster) and the AWS emulator's resources (eval the
# output of `.venv/bin/python tests/aws/resources.py --endpoint http://127.0.0.1:PORT`).
# Builds as scripts/load.sh does (LEDGIX_BUILD=1 forces, 0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

backend=embedded tenants=3 rate=200 seconds=180 interval=30
usage() { echo "usage: scripts/sealing_run.sh [--backend embedded|aws] [--tenants N] [--rate R] [--seconds S] [--interval I]" >&2; exit 2; }
while (($#)); do
  case "$1" in
    --backend) backend="${2:-}"; shift 2 || usage ;;
    --tenants) tenants="${2:-}"; shift 2 || usage ;;
    --rate) rate="${2:-}"; shift 2 || usage ;;
    --seconds) seconds="${2:-}"; shift 2 || usage ;;
    --interval) interval="${2:-}"; shift 2 || usage ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) usage ;;
  esac
done
case "$backend" in embedded | aws) ;; *) usage ;; esac
for n in "$tenants" "$rate" "$seconds" "$interval"; do [[ "$n" =~ ^[1-9][0-9]*$ ]] || usage; done
prefix="${VAULT_LEDGER_ANCHOR_PREFIX:-ledgix}"

python=python3
if [[ "$backend" == aws ]]; then
  missing=()
  for name in DATABASE_URL AWS_ENDPOINT_URL VAULT_DYNAMODB_TABLE VAULT_LEDGER_ANCHOR_BUCKET TENANT_SECRET_PREFIX; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    echo "sealing_run.sh --backend aws: ${missing[*]} not set. It needs the environment scripts/test.sh exports for" >&2
    echo "  the aws backend: a PostgreSQL DATABASE_URL (and VAULT_TENANT_DB_SSLMODE=disable for a local cluster), the" >&2
    echo "  AWS emulator (.venv/bin/python tests/aws/moto_server.py --port P) and its resources:" >&2
    echo "  eval \"\$(.venv/bin/python tests/aws/resources.py --endpoint http://127.0.0.1:P)\"" >&2
    exit 2
  fi
  python="$ROOT/.venv/bin/python"
  "$python" -c 'import boto3' 2>/dev/null || { echo "sealing_run.sh --backend aws: boto3 missing from .venv (scripts/test.sh builds it)" >&2; exit 2; }
fi

# The functions below are as in scripts/load.sh.
# shellcheck source=scripts/dev_vault.sh
source "$ROOT/scripts/dev_vault.sh"

build_binaries
admin_api_key="lva_sealing_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
dev_env=(LEDGIX_ADMIN_API_KEY="$admin_api_key" VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS="$interval")
dev_args=(--backend "$backend")
start_dev
helper tenants "$url" "$admin_api_key" "$tenants" "$data_dir/tenants.json"
mapfile -t agent_keys < <(python3 -c 'import json,sys; [print(t["agent"]) for t in json.load(open(sys.argv[1]))]' "$data_dir/tenants.json")

echo "# ${tenants} tenants x ${rate} approvals/s for ${seconds}s on ${backend}; anchor interval ${interval}s (lag bound $((2 * interval))s)"
started="$(date +%s.%N)"
for i in "${!agent_keys[@]}"; do
  timeout $((seconds + 60)) target/release/loadgen --url "$url" --api-key "${agent_keys[$i]}" --concurrency 8 \
    --duration "$seconds" --rate "$rate" >"$data_dir/loadgen-$((i + 1)).json" 2>"$data_dir/loadgen-$((i + 1)).err" &
  extra_pids+=($!)
done

sample() {
  helper lag-sample --url "$url" --tenants "$data_dir/tenants.json" --data-dir "$data_dir" --log "$data_dir/lag.jsonl" \
    --started "$started" --rate "$rate" --interval "$interval" --phase "$1"
}
next=10
sleep_to_next_sample() {
  sleep "$(python3 -c "import time; print(max(0.0, $started + $next - time.time()))")"
  next=$((next + 10))
}
load_running() {
  local pid
  for pid in "${extra_pids[@]}"; do kill -0 "$pid" 2>/dev/null && return 0; done
  return 1
}
# Every 10 s while the load runs...
while load_running; do
  sleep_to_next_sample
  if load_running; then sample load; else sample drain; fi
done
failed=0
for pid in "${extra_pids[@]}"; do wait "$pid" || failed=1; done
extra_pids=()
# ...then until every tenant is sealed and its latest checkpoint exported (bounded: 2 intervals + 30 s).
drain_until=$(($(date +%s) + 2 * interval + 30))
until helper caught-up --url "$url" --tenants "$data_dir/tenants.json" --data-dir "$data_dir"; do
  if (($(date +%s) >= drain_until)); then
    echo "FAIL: not sealed and exported within $((2 * interval + 30))s after the load" >&2
    failed=1
    break
  fi
  sleep_to_next_sample
  sample drain
done
sample done

for i in $(seq 1 "$tenants"); do
  helper loadgen-summary "tenant $i loadgen (${rate}/s, 8 clients)" "$data_dir/loadgen-$i.json" || failed=1
done
helper lag-verdict "$data_dir/lag.jsonl" "$interval" || failed=1
"$python" scripts/load_helpers.py export-check --url "$url" --tenants "$data_dir/tenants.json" --backend "$backend" \
  --data-dir "$data_dir" --bucket "${VAULT_LEDGER_ANCHOR_BUCKET:-}" --prefix "$prefix" || failed=1
if ((failed)); then
  echo "FAIL: see the lines above" >&2
  exit 1
fi
echo "# sealing run passed"
