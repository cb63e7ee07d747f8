#!/usr/bin/env bash
# Contract fuzzing: schemathesis (pinned in tests/contract/requirements.txt, its own venv .venv-contract) generates
# requests from docs/openapi.yaml and runs them against one real `ledgix dev`, once per key role: agent, consumer,
# reviewer, tenant_admin, auditor (each a key of that single role) on the tenant operations, and the operator's admin
# key on /admin/*. Any server error, any status code, content type, header or body the document does not list for
# the operation, any request the document calls invalid that the server accepts, or any operation that answers
# without a key fails the stage. Each role fuzzes the document as that role must see it (tests/contract/role_schema.py):
# an operation outside its x-required-roles may answer only 403 `forbidden_role`, so a route that forgets its role
# check fails; a tenant operation that names no roles or does not list 403 fails before any request is sent.
#
# Alone:        cargo build --release -p ledgix && scripts/contract_fuzz.sh
# From test.sh: after the release build. Exits non-zero on any failure; stops the vault it started.
#
# Knobs (environment): LEDGIX_BIN (default target/release/ledgix), CONTRACT_MAX_EXAMPLES (schemathesis's
# --max-examples: cases per operation in the fuzzing phase, default 50), CONTRACT_SEED (default 20261127),
# CONTRACT_TIME_LIMIT (seconds for the whole stage, default 900), CONTRACT_REPORT_DIR (JUnit reports and logs kept
# there when set), CONTRACT_VENV (default .venv-contract).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
BIN="${LEDGIX_BIN:-$ROOT/target/release/ledgix}"
VENV="${CONTRACT_VENV:-$ROOT/.venv-contract}"
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-50}"
SEED="${CONTRACT_SEED:-20261127}"
TIME_LIMIT="${CONTRACT_TIME_LIMIT:-900}"
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth
START=$SECONDS

# shellcheck source=scripts/pinned_venv.sh
source scripts/pinned_venv.sh

WORK="$(mktemp -d /tmp/ledgix-contract.XXXXXX)"
REPORTS="${CONTRACT_REPORT_DIR:-$WORK/reports}"
mkdir -p "$REPORTS"
REPORTS="$(cd "$REPORTS" && pwd)"
VAULT_PID=""
RUN_PID=""
cleanup() {
  local status=$?
  if [[ -n "$RUN_PID" ]] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill "$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
  fi
  if [[ -n "$VAULT_PID" ]] && kill -0 "$VAULT_PID" 2>/dev/null; then
    kill "$VAULT_PID" 2>/dev/null || true
    wait "$VAULT_PID" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -f "$WORK/vault.stderr" ]]; then
    echo "--- ledgix dev stderr (tail) ---" >&2
    tail -n 40 "$WORK/vault.stderr" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -x "$BIN" ]] || { echo "no ledgix binary at $BIN (cargo build --release -p ledgix, or set LEDGIX_BIN)" >&2; exit 1; }
pinned_venv "$VENV" tests/contract/requirements.txt

token() { python3 -c "import secrets; print('$1' + secrets.token_hex($2))"; }
AGENT_CONSUMER_KEY="$(token lvk_contract_ 16)"
REVIEWER_KEY="$(token lvk_contract_rev_ 16)"
TENANT_ADMIN_KEY="$(token lvk_contract_adm_ 16)"
ADMIN_KEY="$(token lva_contract_ 24)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"

# Rate limits are off (per key and per client address): one client sends thousands of requests in a few minutes.
LEDGIX_DEV_API_KEY="$AGENT_CONSUMER_KEY" LEDGIX_DEV_REVIEWER_API_KEY="$REVIEWER_KEY" \
  LEDGIX_DEV_TENANT_ADMIN_API_KEY="$TENANT_ADMIN_KEY" LEDGIX_ADMIN_API_KEY="$ADMIN_KEY" \
  VAULT_RATE_LIMIT_RPS=0 VAULT_CLIENT_RATE_LIMIT_RPS=0 RUST_LOG=warn \
  "$BIN" dev --addr "127.0.0.1:$PORT" --data-dir "$WORK/data" </dev/null >"$WORK/vault.stdout" 2>"$WORK/vault.stderr" &
VAULT_PID=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$URL/healthz" 2>/dev/null && break
  kill -0 "$VAULT_PID" 2>/dev/null || { echo "ledgix dev exited before answering /healthz" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "$URL/healthz" || { echo "ledgix dev did not answer /healthz on $URL" >&2; exit 1; }

# Keys of one role each, made by the tenant admin (the dev key holds agent + consumer together).
new_key() {
  curl -fsS -X POST "$URL/api-keys" -H "X-Vault-API-Key: $TENANT_ADMIN_KEY" -H 'content-type: application/json' \
    -d "{\"roles\": [\"$1\"], \"name\": \"contract-$1\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])'
}
AGENT_KEY="$(new_key agent)"
CONSUMER_KEY="$(new_key consumer)"
AUDITOR_KEY="$(new_key auditor)"
declare -A KEYS=(
  [agent]="$AGENT_KEY"
  [consumer]="$CONSUMER_KEY"
  [reviewer]="$REVIEWER_KEY"
  [tenant_admin]="$TENANT_ADMIN_KEY"
  [auditor]="$AUDITOR_KEY"
  [admin]="$ADMIN_KEY"
)
for role in "${!KEYS[@]}"; do
  [[ -n "${KEYS[$role]}" ]] || { echo "no $role key" >&2; exit 1; }
done
# tenant_admin runs last among the tenant roles: it may revoke keys (DELETE /api-keys/{key_id} on ids it created).
ROLES=(agent consumer reviewer auditor tenant_admin admin)

failed=()
summary=()
for role in "${ROLES[@]}"; do
  remaining=$((TIME_LIMIT - (SECONDS - START)))
  if ((remaining <= 0)); then
    echo "contract stage exceeded its time limit (${TIME_LIMIT}s) before role $role" >&2
    failed+=("$role (not run: time limit)")
    continue
  fi
  key="${KEYS[$role]}"
  if [[ $role == admin ]]; then
    scope=(--include-path-regex '^/admin/' -H "X-Admin-API-Key: $key" -H "Authorization: Bearer $key")
  else
    scope=(--exclude-path-regex '^/admin/' -H "X-Vault-API-Key: $key" -H "Authorization: Bearer $key")
  fi
  # The document as this role must see it: operations outside its x-required-roles answer only 403 forbidden_role.
  "$VENV/bin/python" tests/contract/role_schema.py docs/openapi.yaml "$role" "$WORK/openapi.$role.json"
  printf '\n--- schemathesis as %s (seed %s, at most %s examples per operation, %ss left) ---\n' \
    "$role" "$SEED" "$MAX_EXAMPLES" "$remaining"
  started=$SECONDS
  status=0
  # In the background and waited for, so a signal to this script is handled at once (and its trap stops the run).
  # From $WORK: schemathesis keeps a crash store in ./.schemathesis, which must neither land in the work tree nor
  # carry cases from one run into the next.
  (cd "$WORK" && exec timeout --kill-after=10 "$remaining" "$VENV/bin/schemathesis" run "$WORK/openapi.$role.json" --url "$URL" "${scope[@]}" \
    --checks "$CHECKS" --max-examples "$MAX_EXAMPLES" --seed "$SEED" --workers 1 --generation-database none \
    --request-timeout 10 --no-color --report junit --report-junit-path "$REPORTS/$role.junit.xml" \
    >"$REPORTS/$role.log" 2>&1) &
  RUN_PID=$!
  wait "$RUN_PID" || status=$?
  RUN_PID=""
  ((status != 124 && status != 137)) || echo "schemathesis as $role ran out of the stage's time limit (${TIME_LIMIT}s)" >&2
  cases="$(grep -Eo '[0-9]+ generated' "$REPORTS/$role.log" | tail -1 | cut -d' ' -f1)"
  sed -n '/^=* FAILURES =*$/,$p' "$REPORTS/$role.log"
  [[ $status -eq 0 ]] || grep -q '=== FAILURES ===' "$REPORTS/$role.log" || tail -n 40 "$REPORTS/$role.log"
  grep -E '^=+ .* in [0-9.]+s =+$' "$REPORTS/$role.log" | tail -1 || true
  summary+=("$(printf '%-13s %6s cases %5ss  %s' "$role" "${cases:-?}" "$((SECONDS - started))" \
    "$([[ $status -eq 0 ]] && echo ok || echo "FAILED (exit $status)")")")
  [[ $status -eq 0 ]] || failed+=("$role")
  if [[ $status -eq 0 && ! ${cases:-0} -gt 0 ]]; then
    echo "schemathesis as $role ran no case" >&2
    failed+=("$role (no case)")
  fi
  if ! kill -0 "$VAULT_PID" 2>/dev/null; then
    echo "ledgix dev died during the $role run" >&2
    failed+=("vault died")
    break
  fi
done

if grep -q 'panicked' "$WORK/vault.stderr"; then
  echo "ledgix dev panicked:" >&2
  grep -m 5 'panicked' "$WORK/vault.stderr" >&2
  failed+=("vault panicked")
fi

printf '\n--- contract fuzzing summary (seed %s, max %s examples, %ss in all) ---\n' "$SEED" "$MAX_EXAMPLES" "$((SECONDS - START))"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "contract fuzzing failed for: ${failed[*]}" >&2
  exit 1
fi
