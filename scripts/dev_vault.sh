# Shared by scripts/load.sh, soak.sh, sealing_run.sh and compare_release.sh (sourced, never run): building the
# binaries, the pinned oha, and one `ledgix dev` (LEDGIX_DEV_BIN, default target/release/ledgix) on loopback with
# rate limits off, its largest WAL sampled, cleaned up on exit.
# Expects ROOT (the repository) and the working directory there.
OHA_VERSION=1.16.0
OHA="$ROOT/.tools/bin/oha"

helper() { python3 "$ROOT/scripts/load_helpers.py" "$@"; }

# cargo build --release -p ledgix -p loadgen, skipped when both binaries are newer than every source they are built
# from, tests and benches aside (LEDGIX_BUILD=1 always builds, LEDGIX_BUILD=0 never does).
newer_sources() {
  find Cargo.toml Cargo.lock "${@:2}" -newer "$1" -type f -not -path '*/tests/*' -not -path '*/benches/*' -print -quit
}
build_binaries() {
  local mode="${LEDGIX_BUILD:-auto}"
  if [[ "$mode" == 0 ]]; then echo "# LEDGIX_BUILD=0: target/release/ledgix and loadgen used as they are"; return; fi
  if [[ "$mode" == auto && -x target/release/ledgix && -x target/release/loadgen \
    && -z "$(newer_sources target/release/ledgix cli shared)" \
    && -z "$(newer_sources target/release/loadgen tools/loadgen)" ]]; then
    echo "# target/release/ledgix and loadgen are newer than their sources: not rebuilding (LEDGIX_BUILD=1 forces)"
    return
  fi
  cargo build --release -q -p ledgix -p loadgen
}

# oha, pinned, in .tools/ (gitignored); installed on first use.
ensure_oha() {
  if [[ -x "$OHA" ]] && [[ "$("$OHA" --version)" == "oha $OHA_VERSION" ]]; then return; fi
  echo "# installing oha $OHA_VERSION into .tools/ (cargo install --locked; a few minutes, once)"
  cargo install --locked --quiet oha --version "$OHA_VERSION" --root "$ROOT/.tools"
}

# One oha run against POST /request-clearance, its JSON report into $1; bounded by -z plus a margin.
run_oha() {
  local out="$1"; shift
  timeout 600 "$OHA" --no-tui --output-format json -o "$out" -w -t 10s -m POST \
    -H "X-Vault-API-Key: $key" -H 'content-type: application/json' -Z "$data_dir/bodies.jsonl" \
    "$@" "$url/request-clearance"
}

# `ledgix dev` on a free loopback port with a fresh data directory, rate limits off; samples the largest
# vault.db-wal every 0.2 s into $data_dir/wal-max. Sets data_dir, url, key, admin_key, server. Extra variables for
# the vault: dev_env (NAME=value ...); extra `ledgix dev` flags: dev_args.
dev_env=() dev_args=() extra_pids=()
start_dev() {
  data_dir="$(mktemp -d /tmp/ledgix-load.XXXXXX)"
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  key="lvk_load_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
  # Policies are the tenant admin's to register; the agent key (roles agent + consumer) only asks.
  admin_key="lvk_load_admin_$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
  url="http://127.0.0.1:${port}"
  env LEDGIX_DEV_API_KEY="$key" LEDGIX_DEV_TENANT_ADMIN_API_KEY="$admin_key" VAULT_RATE_LIMIT_RPS=0 \
    VAULT_CLIENT_RATE_LIMIT_RPS=0 RUST_LOG=warn "${dev_env[@]}" \
    "${LEDGIX_DEV_BIN:-target/release/ledgix}" dev "${dev_args[@]}" --addr "127.0.0.1:${port}" --data-dir "$data_dir" \
    >"$data_dir/stdout" 2>"$data_dir/stderr" &
  server=$!
  ( largest=0; while kill -0 "$server" 2>/dev/null; do
      size="$(stat -c %s "$data_dir/vault.db-wal" 2>/dev/null || echo 0)"
      if ((size > largest)); then largest="$size"; echo "$largest" >"$data_dir/wal-max"; fi
      sleep 0.2
    done ) &
  sampler=$!
  for _ in $(seq 1 600); do
    curl -fsS "$url/healthz" >/dev/null 2>&1 && return
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  echo "FAIL: ledgix dev did not answer /healthz; its stderr:" >&2
  tail -20 "$data_dir/stderr" >&2
  exit 1
}

cleanup() {
  kill "${extra_pids[@]}" "${server:-}" "${sampler:-}" 2>/dev/null || true
  wait "${extra_pids[@]}" "${server:-}" "${sampler:-}" 2>/dev/null || true
  [[ -n "${data_dir:-}" ]] && rm -rf "$data_dir"
  return 0
}
trap cleanup EXIT
