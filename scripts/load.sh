#!/usr/bin/env bash
# Load test of the inline approval path against `ledgix dev` on loopback.
# Usage: scripts/load.sh [seconds]   (defaults: 15 s per run)
# Runs a closed-loop throughput test and an open-loop 1,000 req/s latency test; prints one JSON line each.
# Rate limiting is off for the run (per key, VAULT_RATE_LIMIT_RPS=0, and per client address — all of the load
# comes from 127.0.0.1 — VAULT_CLIENT_RATE_LIMIT_RPS=0); every approval is committed (fsync) before
# its response, exactly as in normal operation.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"

cargo build --release -q -p ledgix -p loadgen
data_dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
key="lvk_load_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
# Policies are the tenant admin's to register; the agent key (roles agent + consumer) only asks.
admin_key="lvk_load_admin_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
url="http://127.0.0.1:${port}"

LEDGIX_DEV_API_KEY="$key" LEDGIX_DEV_TENANT_ADMIN_API_KEY="$admin_key" VAULT_RATE_LIMIT_RPS=0 VAULT_CLIENT_RATE_LIMIT_RPS=0 RUST_LOG=warn \
  target/release/ledgix dev --addr "127.0.0.1:${port}" --data-dir "$data_dir" >"$data_dir/stdout" 2>"$data_dir/stderr" &
server=$!
# The largest vault.db-wal seen, sampled every 0.2 s (the WAL's bound: docs/configuration.md, "Embedded storage").
( largest=0; while kill -0 "$server" 2>/dev/null; do
    size="$(stat -c %s "$data_dir/vault.db-wal" 2>/dev/null || echo 0)"
    (( size > largest )) && largest="$size" && echo "$largest" >"$data_dir/wal-max"
    sleep 0.2
  done ) &
sampler=$!
cleanup() {
  kill "$server" "$sampler" 2>/dev/null || true; wait "$server" "$sampler" 2>/dev/null || true; rm -rf "$data_dir"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

curl -fsS -X POST "$url/register-policy" -H "X-Vault-API-Key: $admin_key" -H 'content-type: application/json' \
  -d '{"policy_id":"bench","tools":["bench_refund"],"rego":"package bench\ndefault decision := \"deny\"\ndecision := \"approve\" if { input.tool_args.amount <= 100 }"}' >/dev/null

echo "# closed loop, 64 keep-alive clients, ${seconds}s"
target/release/loadgen --url "$url" --api-key "$key" --concurrency 64 --duration "$seconds"
echo "# open loop, 1000 req/s, 32 keep-alive clients, ${seconds}s"
target/release/loadgen --url "$url" --api-key "$key" --concurrency 32 --duration "$seconds" --rate 1000
echo "# ledger events committed: $(python3 - "$data_dir/vault.db" <<'PY'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("select count(*) from ledger").fetchone()[0])
PY
)"
echo "# largest vault.db-wal seen: $(cat "$data_dir/wal-max" 2>/dev/null || echo 0) bytes (bound: 67108864)"
