#!/usr/bin/env bash
# The oha runs of scripts/load.sh against a previous release and this tree, one after the other on this machine,
# so an improvement is a ratio measured in one run.
# Usage: scripts/compare_release.sh <git revision> [seconds] [pairs]   (defaults: 15 s per run, 2 pairs)
# The revision is built once into .tools/compare/ (a git worktree and its own target directory; the first build
# takes as long as a fresh release build). Each pair runs, for the previous release and then for this tree, a
# fresh `ledgix dev` with rate limits off, the bench policy, oha saturated (64 connections) and at once oha at
# 1,000 req/s (32 connections); one summary line per run, then the ratios of the means.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
# shellcheck source=scripts/dev_vault.sh
source "$ROOT/scripts/dev_vault.sh"

rev="${1:?usage: scripts/compare_release.sh <git revision> [seconds] [pairs]}"
seconds="${2:-15}"
pairs="${3:-2}"
commit="$(git rev-parse --verify "$rev^{commit}")"
previous="$ROOT/.tools/compare/$commit"
if [[ ! -x "$previous/target/release/ledgix" ]]; then
  [[ -d "$previous/src" ]] || git worktree add --force --detach "$previous/src" "$commit" >/dev/null
  echo "# building ${commit:0:12} into $previous (once)"
  (cd "$previous/src" && CARGO_TARGET_DIR="$previous/target" cargo build --release -q -p ledgix)
fi
build_binaries
ensure_oha

results="$(mktemp)"
run_one() {  # <label> <binary>
  LEDGIX_DEV_BIN="$2" start_dev
  curl -fsS -X POST "$url/register-policy" -H "X-Vault-API-Key: $admin_key" -H 'content-type: application/json' \
    -d '{"policy_id":"bench","tools":["bench_refund"],"rego":"package bench\ndefault decision := \"deny\"\ndecision := \"approve\" if { input.tool_args.amount <= 100 }"}' >/dev/null
  helper bodies 20000 "$data_dir/bodies.jsonl"
  run_oha "$data_dir/oha-sat.json" -z "${seconds}s" -c 64
  run_oha "$data_dir/oha-1000.json" -z "${seconds}s" -c 32 -q 1000 --latency-correction
  helper oha-summary "$1 oha saturated" "$data_dir/oha-sat.json"
  helper oha-summary "$1 oha 1000 req/s right after" "$data_dir/oha-1000.json"
  python3 - "$1" "$data_dir/oha-sat.json" "$data_dir/oha-1000.json" >>"$results" <<'PY'
import json, sys
sat, fixed = (json.load(open(p)) for p in sys.argv[2:4])
print(json.dumps({"label": sys.argv[1], "rps": sat["summary"]["requestsPerSec"],
                  "p99_ms": fixed["metrics"]["latency_ms"]["p99"]}))
PY
  cleanup
}
for pair in $(seq 1 "$pairs"); do
  echo "# pair $pair of $pairs"
  run_one "previous (${commit:0:12})" "$previous/target/release/ledgix"
  run_one "this tree ($(git rev-parse --short HEAD)$(git diff --quiet || echo +changes))" "$ROOT/target/release/ledgix"
done
python3 - "$results" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
prev = [r for r in runs if r["label"].startswith("previous")]
this = [r for r in runs if not r["label"].startswith("previous")]
mean = lambda rs, k: statistics.mean(r[k] for r in rs)
print(f"# saturated approvals/s, mean of {len(prev)}: previous {mean(prev, 'rps'):,.0f}, this tree {mean(this, 'rps'):,.0f}"
      f" (x{mean(this, 'rps') / mean(prev, 'rps'):.2f})")
print(f"# p99 at 1,000 req/s right after, mean: previous {mean(prev, 'p99_ms'):.1f} ms, this tree {mean(this, 'p99_ms'):.1f} ms"
      f" (x{mean(prev, 'p99_ms') / mean(this, 'p99_ms'):.1f} lower)")
PY
rm -f "$results"
