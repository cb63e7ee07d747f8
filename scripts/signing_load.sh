#!/usr/bin/env bash
# Signing load (docs/benchmarks.md, "Signing modes"): inline approvals through the real clearance-api binary on the
# AWS emulator, delegated vs direct KMS signing, with the KMS calls each function made.
# Usage: scripts/signing_load.sh [--approvals 2000] [--instances 2]
# Starts a private PostgreSQL cluster (pg_ctlcluster) and the moto emulator on free loopback ports, builds the
# release binaries it runs (LEDGIX_BUILD=0 skips the build), runs scripts/signing_load.py, and removes what it
# started. Needs the .venv scripts/test.sh builds (moto, boto3, httpx).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
[[ -x .venv/bin/python ]] || { echo "signing_load.sh: .venv missing; run scripts/test.sh once to build it" >&2; exit 2; }
if [[ "${LEDGIX_BUILD:-1}" != 0 ]]; then
  cargo build --release --locked -p clearance-api -p anchor-export
fi

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d /tmp/ledgix-signing-load.XXXXXX)"
chmod 755 "$work"
cluster="signload$$"
pg_port="$(free_port)"
moto_port="$(free_port)"
moto_pid=""
cleanup() {
  [[ -n "$moto_pid" ]] && kill "$moto_pid" 2>/dev/null || true
  [[ -n "${version:-}" ]] && pg_dropcluster --stop "$version" "$cluster" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
mkdir -p "$work/pg" && chown postgres:postgres "$work/pg"
pg_createcluster "$version" "$cluster" -p "$pg_port" -d "$work/pg/data" --pgoption max_connections=300 >/dev/null
pg_ctlcluster "$version" "$cluster" start
su postgres -c "psql -q -p $pg_port -c \"CREATE ROLE ledgix LOGIN SUPERUSER PASSWORD 'ledgix'\"" >/dev/null
su postgres -c "psql -q -p $pg_port -c 'CREATE DATABASE ledgix_load_control OWNER ledgix'" >/dev/null
.venv/bin/python tests/aws/moto_server.py --port "$moto_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$moto_port") 2>/dev/null && break; sleep 0.2; done
eval "$(.venv/bin/python tests/aws/resources.py --endpoint "http://127.0.0.1:$moto_port")"
export DATABASE_URL="postgresql://ledgix:ledgix@127.0.0.1:$pg_port/ledgix_load_control?sslmode=disable"
.venv/bin/python scripts/signing_load.py "$@"
