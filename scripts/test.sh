#!/usr/bin/env bash
# Installs what the tests need and runs them all: Rust unit, contract and integration tests, then the
# end-to-end suite driven by ledgix-python against a real `ledgix dev`. Cleans up whatever it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv"

stage() { printf '\n==> %s\n' "$*"; }

cleanup_actions=()
cleanup() {
  local status=$?
  for ((i = ${#cleanup_actions[@]} - 1; i >= 0; i--)); do eval "${cleanup_actions[$i]}" || true; done
  exit "$status"
}
trap cleanup EXIT

python_env() {
  stage "Python environment (.venv, pinned)"
  local requirements=(tests/e2e/requirements.txt)
  [[ -f tests/aws/requirements.txt ]] && requirements+=(tests/aws/requirements.txt)
  local stamp="$VENV/.requirements.sha256"
  local want
  want="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
  fi
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    local args=()
    for file in "${requirements[@]}"; do args+=(-r "$file"); done
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${args[@]}"
    echo "$want" >"$stamp"
  fi
}

node_env() {
  stage "Node verifier (npm jose, from package-lock.json)"
  npm ci --prefix tests/e2e/jose --no-audit --no-fund --loglevel=error
}

rust_build() {
  stage "Build (release, whole workspace)"
  cargo build --release --workspace --locked
}

rust_tests() {
  stage "Rust tests: unit, port contract suite, router and sealing integration"
  cargo test --release --workspace --locked
}

e2e_tests() {
  stage "End-to-end: ledgix-python 0.4.0 against ledgix dev"
  LEDGIX_BIN="$ROOT/target/release/ledgix" "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/e2e
}

python_env
node_env
rust_build
rust_tests
e2e_tests
stage "All tests passed"
