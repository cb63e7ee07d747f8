#!/usr/bin/env bash
# Installs what the tests need and runs them all: Rust unit, contract and integration tests, then the
# end-to-end suite driven by ledgix-python against a real `ledgix dev`. Cleans up whatever it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv"

stage() { printf '\n==> %s\n' "$*"; }
# shellcheck source=scripts/pinned_venv.sh
source scripts/pinned_venv.sh

WORK="$(mktemp -d /tmp/ledgix-test.XXXXXX)"
chmod 755 "$WORK"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for_port() {
  local port=$1 what=$2
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$what did not start on port $port" >&2
  return 1
}

cleanup_actions=()
cleanup() {
  local status=$?
  # Stop what was started, newest first, then remove the work directory the services ran in.
  for ((i = ${#cleanup_actions[@]} - 1; i >= 0; i--)); do eval "${cleanup_actions[$i]}" || true; done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

python_env() {
  stage "Python environment (.venv, pinned)"
  local requirements=(tests/e2e/requirements.txt)
  [[ -f tests/aws/requirements.txt ]] && requirements+=(tests/aws/requirements.txt)
  [[ -f tests/deploy/requirements.txt ]] && requirements+=(tests/deploy/requirements.txt)
  pinned_venv "$VENV" "${requirements[@]}"
}

node_env() {
  stage "Node verifier (npm jose, from package-lock.json)"
  npm ci --prefix tests/e2e/jose --no-audit --no-fund --loglevel=error
}

postgres_start() {
  stage "PostgreSQL: a throwaway cluster (pg_createcluster / pg_ctlcluster)"
  local version
  version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
  PG_VERSION="$version"
  PG_CLUSTER="ledgix-test-$$"
  PG_PORT="$(free_port)"
  mkdir -p "$WORK/pg"
  chown postgres:postgres "$WORK/pg"
  # Every e2e vault process keeps pools to the control plane and to each tenant it served: the default 100
  # connections run out on the AWS-backend run.
  pg_createcluster "$version" "$PG_CLUSTER" -p "$PG_PORT" -d "$WORK/pg/data" --pgoption max_connections=500 >/dev/null
  cleanup_actions+=("pg_dropcluster --stop $version $PG_CLUSTER")
  pg_ctlcluster "$version" "$PG_CLUSTER" start
  su postgres -c "psql -q -p $PG_PORT -c \"CREATE ROLE ledgix LOGIN SUPERUSER PASSWORD 'ledgix'\""
  export LEDGIX_TEST_PG_ADMIN="postgresql://ledgix:ledgix@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
}

aws_emulator_start() {
  stage "AWS emulator: moto server with the KMS Ed25519 extension (tests/aws)"
  local port
  port="$(free_port)"
  "$VENV/bin/python" tests/aws/moto_server.py --port "$port" >"$WORK/moto.log" 2>&1 &
  local pid=$!
  cleanup_actions+=("kill $pid; wait $pid 2>/dev/null")
  wait_for_port "$port" "moto server" || { cat "$WORK/moto.log"; return 1; }
  eval "$("$VENV/bin/python" tests/aws/resources.py --endpoint "http://127.0.0.1:$port")"
}

model_server_start() {
  stage "Model server: the OpenAI-compatible API and the HTTP judge, answered by the scripted model (tests/aws)"
  local port key
  port="$(free_port)"
  key="$(python3 -c 'import secrets; print("sk-test-" + secrets.token_urlsafe(24))')"
  "$VENV/bin/python" tests/aws/model_server.py --port "$port" --api-key "$key" >"$WORK/model_server.log" 2>&1 &
  local pid=$!
  cleanup_actions+=("kill $pid; wait $pid 2>/dev/null")
  wait_for_port "$port" "model server" || { cat "$WORK/model_server.log"; return 1; }
  export LEDGIX_TEST_MODEL_SERVER_URL="http://127.0.0.1:$port" LEDGIX_TEST_MODEL_SERVER_KEY="$key"
}

# Cargo.lock is committed, so builds are reproducible: --locked refuses to update it. Without a lockfile (a fresh
# checkout of a library-only workspace) cargo must be allowed to create one.
CARGO_LOCKED=()
[[ -f Cargo.lock ]] && CARGO_LOCKED=(--locked)

rust_build() {
  stage "Build (release, whole workspace)"
  cargo build --release --workspace "${CARGO_LOCKED[@]}"
}

rust_lint() {
  stage "Rust lint: rustfmt and clippy (warnings are errors)"
  cargo fmt --all -- --check
  cargo clippy --release --workspace --all-targets "${CARGO_LOCKED[@]}" -- -D warnings
}

rust_tests() {
  stage "Rust tests: unit, port contract suite (embedded), router and sealing integration"
  cargo test --release --workspace "${CARGO_LOCKED[@]}"
  stage "Rust tests: port contract suite on the AWS adapters (PostgreSQL + emulator)"
  DATABASE_URL="$LEDGIX_TEST_PG_ADMIN" cargo test --release "${CARGO_LOCKED[@]}" -p ledgix-aws -- --include-ignored
  stage "Rust tests: judge adapter contract suite (Bedrock on the AWS emulator; OpenAI API and HTTP judge on the model server)"
  cargo test --release "${CARGO_LOCKED[@]}" -p ledgix-judges -- --include-ignored
  stage "Rust tests: sample events through the Lambda handlers on the AWS adapters"
  su postgres -c "psql -q -p $PG_PORT -c 'CREATE DATABASE ledgix_events_control'"
  DATABASE_URL="postgresql://ledgix:ledgix@127.0.0.1:$PG_PORT/ledgix_events_control?sslmode=disable" \
    VAULT_TENANT_DB_SSLMODE=disable VAULT_LEDGER_ANCHOR_BUCKET=ledgix-anchors LEDGIX_TEST_BACKEND=aws \
    VAULT_PRIVATE_KEY_BASE64="$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')" \
    cargo test --release "${CARGO_LOCKED[@]}" -p ledgix-api --test events
}

browser_env() {
  # tests/e2e/test_review_page.py drives the reviewer page in headless Chromium; it must never skip here.
  export LEDGIX_E2E_REQUIRE_BROWSER=1
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] && return 0
  stage "Browser: Debian's chromium and chromium-driver (apt-get)"
  timeout 600 apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
}

e2e_tests() {
  browser_env
  stage "End-to-end: ledgix-python 0.4.0 against ledgix dev (embedded)"
  LEDGIX_BIN="$ROOT/target/release/ledgix" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/e2e
  stage "End-to-end: the same suite against ledgix dev --backend aws (PostgreSQL, DynamoDB, SQS FIFO, S3, Secrets Manager)"
  su postgres -c "psql -q -p $PG_PORT -c 'CREATE DATABASE ledgix_e2e_control'"
  DATABASE_URL="postgresql://ledgix:ledgix@127.0.0.1:$PG_PORT/ledgix_e2e_control?sslmode=disable" \
    VAULT_TENANT_DB_SSLMODE=disable VAULT_CLEARANCE_SQS_WAIT_TIME_SECONDS=1 \
    VAULT_CLEARANCE_SQS_VISIBILITY_TIMEOUT_SECONDS=5 VAULT_LEDGER_ANCHOR_BUCKET=ledgix-anchors \
    LEDGIX_E2E_BACKEND=aws LEDGIX_BIN="$ROOT/target/release/ledgix" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/e2e
}

contract_tests() {
  stage "Contract fuzzing: schemathesis against docs/openapi.yaml on ledgix dev, once per key role (scripts/contract_fuzz.sh)"
  LEDGIX_BIN="$ROOT/target/release/ledgix" scripts/contract_fuzz.sh &
  local pid=$!
  cleanup_actions+=("kill $pid 2>/dev/null; wait $pid 2>/dev/null")
  wait "$pid"
}

deploy_tests() {
  stage "Deployment: the five function binaries under a local Lambda Runtime API; IAM grants exactly what each calls; every variable set or deliberately defaulted"
  su postgres -c "psql -q -p $PG_PORT -c 'CREATE DATABASE ledgix_deploy_control'"
  DATABASE_URL="postgresql://ledgix:ledgix@127.0.0.1:$PG_PORT/ledgix_deploy_control?sslmode=disable" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/deploy
  stage "Terraform: fmt, validate, terraform test (mock provider), checkov"
  scripts/terraform_check.sh
}

aws_harness_tests() {
  stage "AWS emulator harness: the KMS Ed25519 extension behaves as AWS documents"
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/aws
}

python_env
node_env
postgres_start
aws_emulator_start
model_server_start
rust_build
rust_lint
rust_tests
e2e_tests
contract_tests
deploy_tests
aws_harness_tests
stage "All tests passed"
