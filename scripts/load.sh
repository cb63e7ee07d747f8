#!/usr/bin/env bash
# Load test of the inline approval path against `ledgix dev` on loopback.
# Usage: scripts/load.sh [seconds] [--generator loadgen|oha|both]   (defaults: 15 s per run, both)
# Per generator, a saturated run (64 keep-alive clients) and IMMEDIATELY after it a fixed-rate run at 1,000 req/s
# (32 clients), so the p99 at 1,000 req/s is measured right after saturation; one summary line per run
# (req/s, p50/p99 ms, status codes, approvals/s; loadgen also prints its JSON line).
#   loadgen: tools/loadgen (hyper); the open loop measures latency from the scheduled send time.
#   oha:     oha 1.16.0 (installed into .tools/ on first use with `cargo install --locked`), -z/-q, --latency-correction
#            (latency from the scheduled time too), -w (requests in flight at the deadline are awaited, not aborted);
#            bodies vary like loadgen's (one of 20,000 lines per request, `-Z`).
# Every response must be 200 and every clearance approved, else the script says FAIL and exits 1 (after the report).
# Afterwards: ledger events, bytes on disk per approval ((vault.db + vault.db-wal) / ledger events) and the largest
# vault.db-wal seen (sampled every 0.2 s; bound 64 MiB, docs/configuration.md "Embedded storage").
# Rate limiting is off for the run (per key, VAULT_RATE_LIMIT_RPS=0, and per client address — all of the load
# comes from 127.0.0.1 — VAULT_CLIENT_RATE_LIMIT_RPS=0); every approval is committed (fsync) before
# its response, exactly as in normal operation.
# Builds with `cargo build --release -p ledgix -p loadgen` unless both binaries are newer than every source file
# (LEDGIX_BUILD=1 forces the build, LEDGIX_BUILD=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

# shellcheck source=scripts/dev_vault.sh
source "$ROOT/scripts/dev_vault.sh"

seconds=15
generator=both
while (($#)); do
  case "$1" in
    --generator) generator="${2:?--generator needs loadgen, oha or both}"; shift 2 ;;
    --generator=*) generator="${1#*=}"; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *[!0-9]* | '') echo "usage: scripts/load.sh [seconds] [--generator loadgen|oha|both]" >&2; exit 2 ;;
    *) seconds="$1"; shift ;;
  esac
done
case "$generator" in loadgen | oha | both) ;; *) echo "--generator: loadgen, oha or both" >&2; exit 2 ;; esac

build_binaries
[[ "$generator" == loadgen ]] || ensure_oha

start_dev
curl -fsS -X POST "$url/register-policy" -H "X-Vault-API-Key: $admin_key" -H 'content-type: application/json' \
  -d '{"policy_id":"bench","tools":["bench_refund"],"rego":"package bench\ndefault decision := \"deny\"\ndecision := \"approve\" if { input.tool_args.amount <= 100 }"}' >/dev/null

failed=0
if [[ "$generator" != oha ]]; then
  echo "# loadgen: closed loop, 64 keep-alive clients, ${seconds}s"
  target/release/loadgen --url "$url" --api-key "$key" --concurrency 64 --duration "$seconds" | tee "$data_dir/lg-sat.json"
  echo "# loadgen: open loop, 1000 req/s, 32 keep-alive clients, ${seconds}s (right after the saturated run)"
  target/release/loadgen --url "$url" --api-key "$key" --concurrency 32 --duration "$seconds" --rate 1000 | tee "$data_dir/lg-1000.json"
  helper loadgen-summary "loadgen saturated (64 clients, ${seconds}s)" "$data_dir/lg-sat.json" || failed=1
  helper loadgen-summary "loadgen 1000 req/s (32 clients, ${seconds}s)" "$data_dir/lg-1000.json" || failed=1
fi

if [[ "$generator" != loadgen ]]; then
  helper bodies 20000 "$data_dir/bodies.jsonl"
  before="$(helper db-stats "$data_dir")"
  echo "# oha $("$OHA" --version | awk '{print $2}'): saturated, 64 connections, ${seconds}s; then at once 1000 req/s, 32 connections, ${seconds}s"
  run_oha "$data_dir/oha-sat.json" -z "${seconds}s" -c 64
  run_oha "$data_dir/oha-1000.json" -z "${seconds}s" -c 32 -q 1000 --latency-correction
  helper oha-summary "oha saturated (64 connections, ${seconds}s)" "$data_dir/oha-sat.json" || failed=1
  helper oha-summary "oha 1000 req/s (32 connections, ${seconds}s)" "$data_dir/oha-1000.json" || failed=1
  # oha does not read bodies: every 200 must be one more approved clearance.
  after="$(helper db-stats "$data_dir")"
  python3 - "$before" "$after" "$data_dir/oha-sat.json" "$data_dir/oha-1000.json" <<'PY' || failed=1
import json, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ok = sum(json.load(open(f)).get("statusCodeDistribution", {}).get("200", 0) for f in sys.argv[3:5])
approved = after["approved"] - before["approved"]
print(f"# oha: {ok:,} responses 200, {approved:,} clearances approved meanwhile")
if approved != ok:
    print(f"FAIL: {ok} responses 200 but {approved} approvals", file=sys.stderr)
    sys.exit(1)
PY
fi

python3 - "$(helper db-stats "$data_dir")" "$(cat "$data_dir/wal-max" 2>/dev/null || echo 0)" <<'PY'
import json, sys
s, wal_max = json.loads(sys.argv[1]), int(sys.argv[2])
events = s["events"] or 1
print(f"# ledger events committed: {s['events']}")
print(f"# on disk: vault.db {s['db_bytes']:,} + vault.db-wal {s['wal_bytes']:,} bytes = "
      f"{(s['db_bytes'] + s['wal_bytes']) / events:,.0f} bytes per approval (vault.db alone {s['db_bytes'] / events:,.0f}); "
      f"anchors/ {s['anchors_bytes']:,} bytes")
print(f"# largest vault.db-wal seen: {wal_max} bytes (bound: 67108864)")
PY
if ((failed)); then
  echo "FAIL: see the lines above" >&2
  exit 1
fi
