#!/usr/bin/env bash
# Builds the five Lambda packages for infra/terraform: target/lambda/<function>/bootstrap.zip (arm64 Graviton,
# provided.al2023), with cargo-lambda (pinned, from PyPI; it brings Zig as the cross linker).
# Usage: scripts/package.sh            Then: cd infra/terraform && terraform apply   (docs/deploy.md)
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$(pwd)/.venv-package"
CARGO_LAMBDA_VERSION="1.9.2"
FUNCTIONS=(clearance-api jwks judge-worker anchor-export notifier)

if [[ "$("$TOOLS/bin/cargo-lambda" lambda --version 2>/dev/null)" != *"$CARGO_LAMBDA_VERSION"* ]]; then
  echo "==> installing cargo-lambda $CARGO_LAMBDA_VERSION into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
if command -v rustup >/dev/null; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null
fi

echo "==> cargo lambda build --release --arm64 --output-format zip (${FUNCTIONS[*]})"
packages=()
for function in "${FUNCTIONS[@]}"; do packages+=(-p "$function"); done
PATH="$TOOLS/bin:$PATH" cargo lambda build --release --arm64 --output-format zip --locked "${packages[@]}"

# LEDGIX_DB_CA_BUNDLE=<PEM file>: ship that CA bundle (the RDS global bundle) in every package as
# rds-ca-bundle.pem, i.e. /var/task/rds-ca-bundle.pem in Lambda: set db_ca_bundle_path to that (docs/deploy.md).
if [[ -n "${LEDGIX_DB_CA_BUNDLE:-}" ]]; then
  grep -q -- "-----BEGIN CERTIFICATE-----" "$LEDGIX_DB_CA_BUNDLE" ||
    { echo "LEDGIX_DB_CA_BUNDLE=$LEDGIX_DB_CA_BUNDLE holds no PEM certificate" >&2; exit 1; }
  echo "==> adding $LEDGIX_DB_CA_BUNDLE to each package as rds-ca-bundle.pem"
  for function in "${FUNCTIONS[@]}"; do
    python3 - "target/lambda/$function/bootstrap.zip" "$LEDGIX_DB_CA_BUNDLE" <<'PY'
import sys, zipfile
archive, bundle = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as z:
    if "rds-ca-bundle.pem" not in z.namelist():
        info = zipfile.ZipInfo("rds-ca-bundle.pem", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, open(bundle, "rb").read())
PY
  done
fi

echo "==> packages (bytes, base64 SHA-256 as Lambda reports CodeSha256)"
for function in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$function/bootstrap.zip"
  [[ -f "$zip" ]] || { echo "missing $zip" >&2; exit 1; }
  printf '%-14s %9d  %s\n' "$function" "$(stat -c %s "$zip")" "$(openssl dgst -sha256 -binary "$zip" | base64)"
done
