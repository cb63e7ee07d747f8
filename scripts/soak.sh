#!/usr/bin/env bash
# Soak test: `ledgix dev` on loopback (fresh data directory, rate limits off) driven at a fixed rate for a bounded
# time, one separate run per minute so every minute has its own p99.
# Usage: scripts/soak.sh [minutes] [rps] [--generator oha|loadgen]   (defaults: 10 minutes, 1000 req/s, oha)
# After each minute one line: requests, p50/p99 ms, non-200 count, vault.db-wal bytes (now and the largest seen,
# sampled every 0.2 s), vault.db bytes, anchors/ bytes (the export folder), RSS of the vault (VmRSS), ledger events
# so far, bytes on disk per event, and the machine's busy and steal shares of CPU time over the minute (steal: the
# hypervisor ran someone else). At the end: p99 min/max, RSS first/last and its slope over the second half, the
# largest WAL against its 64 MiB bound, and bytes per approval as the least-squares slope of disk size over events.
# Exits 1 on any non-200 response or a WAL over its bound. Generators: oha 1.16.0 (-q RPS --latency-correction,
# 32 connections, installed into .tools/ when missing) or tools/loadgen (--rate RPS, open loop, 32 clients). Both
# measure latency from the scheduled send time, so a stall shows in the percentiles.
# SOAK_STEP_SECONDS (default 60) shortens each "minute" — only to check the script itself.
# Builds as scripts/load.sh does (LEDGIX_BUILD=1 forces, 0 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

minutes=10
rps=1000
generator=oha
positional=()
while (($#)); do
  case "$1" in
    --generator) generator="${2:?--generator needs oha or loadgen}"; shift 2 ;;
    --generator=*) generator="${1#*=}"; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *[!0-9]* | '') echo "usage: scripts/soak.sh [minutes] [rps] [--generator oha|loadgen]" >&2; exit 2 ;;
    *) positional+=("$1"); shift ;;
  esac
done
minutes="${positional[0]:-$minutes}"
rps="${positional[1]:-$rps}"
step="${SOAK_STEP_SECONDS:-60}"
case "$generator" in oha | loadgen) ;; *) echo "--generator: oha or loadgen" >&2; exit 2 ;; esac

# The functions below are the same as in scripts/load.sh.
# shellcheck source=scripts/dev_vault.sh
source "$ROOT/scripts/dev_vault.sh"

build_binaries
[[ "$generator" == oha ]] && ensure_oha
start_dev
curl -fsS -X POST "$url/register-policy" -H "X-Vault-API-Key: $admin_key" -H 'content-type: application/json' \
  -d '{"policy_id":"bench","tools":["bench_refund"],"rego":"package bench\ndefault decision := \"deny\"\ndecision := \"approve\" if { input.tool_args.amount <= 100 }"}' >/dev/null
[[ "$generator" == oha ]] && helper bodies 20000 "$data_dir/bodies.jsonl"

echo "# soak: ${minutes} x ${step}s at ${rps} req/s with ${generator}, vault pid ${server}, data ${data_dir}"
for minute in $(seq 1 "$minutes"); do
  kill -0 "$server" 2>/dev/null || { echo "FAIL: the vault exited; its stderr:" >&2; tail -20 "$data_dir/stderr" >&2; exit 1; }
  helper cpu-times >"$data_dir/cpu-before"
  if [[ "$generator" == oha ]]; then
    run_oha "$data_dir/minute.json" -z "${step}s" -c 32 -q "$rps" --latency-correction
    result=(--oha "$data_dir/minute.json")
  else
    timeout $((step + 60)) target/release/loadgen --url "$url" --api-key "$key" --concurrency 32 \
      --duration "$step" --rate "$rps" >"$data_dir/minute.json"
    result=(--loadgen "$data_dir/minute.json")
  fi
  helper soak-row --minute "$minute" --pid "$server" --wal-max "$(cat "$data_dir/wal-max" 2>/dev/null || echo 0)" \
    --data-dir "$data_dir" --log "$data_dir/soak.jsonl" --cpu-before "$data_dir/cpu-before" "${result[@]}"
done
helper soak-summary "$data_dir/soak.jsonl"
