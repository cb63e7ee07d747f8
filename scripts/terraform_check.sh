#!/usr/bin/env bash
# Offline checks of infra/terraform: fmt, the Ed25519 key spec and provider minimum in the source, init against
# the provider mirror, validate, `terraform test` (mock provider, plan-level assertions) and checkov (pinned).
# Called by scripts/test.sh; runs alone too. Needs terraform and the mirror in /opt/tf-plugins (hashicorp/aws
# 5.100.0); LEDGIX_TF_PLUGIN_MIRROR overrides the mirror's path.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
SOURCE="$ROOT/infra/terraform"
MIRROR="${LEDGIX_TF_PLUGIN_MIRROR:-/opt/tf-plugins}"
CHECKOV_VENV="$ROOT/.venv-checkov"
WORK="$(mktemp -d /tmp/ledgix-terraform.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

step() { printf -- '--- terraform: %s\n' "$*"; }
fail() { echo "terraform check failed: $*" >&2; exit 1; }

# The provider comes from the offline mirror only.
cat >"$WORK/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$MIRROR"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
RC
export TF_CLI_CONFIG_FILE="$WORK/terraformrc" TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1

step "fmt -check"
terraform fmt -check -recursive -diff "$SOURCE"

step "the signing key is Ed25519 and the provider minimum knows it (checked in the source, untouched)"
grep -Eq '^\s*signing_key_spec\s*=\s*"ECC_NIST_EDWARDS25519"' "$SOURCE/modules/state/kms.tf" ||
  fail "modules/state/kms.tf must set local.signing_key_spec = \"ECC_NIST_EDWARDS25519\""
grep -Eq '^\s*customer_master_key_spec\s*=\s*local\.signing_key_spec' "$SOURCE/modules/state/kms.tf" ||
  fail "aws_kms_key.signing must use local.signing_key_spec"
grep -Eq '^\s*version\s*=\s*">= 6\.21\.0"' "$SOURCE/versions.tf" ||
  fail "versions.tf must require hashicorp/aws >= 6.21.0 (the first release accepting ECC_NIST_EDWARDS25519)"
if find "$SOURCE" -name '*_override.tf' | grep -q .; then
  fail "an active *_override.tf is in infra/terraform; the test overrides live in tests/*.example"
fi

step "every checkov skip gives its reason"
if grep -rnE '#checkov:skip=[A-Z0-9_]+(:\s*)?$' "$SOURCE" --include='*.tf'; then
  fail "the checkov skips above carry no reason"
fi

# A copy set up for the offline mirror: provider 5.100.0 (versions_override) and, because that release's schema
# validation predates the Ed25519 key spec, the signing key's spec left unset (the step above checked the real one).
step "init against $MIRROR (test-only overrides in a temporary copy)"
cp -r "$SOURCE" "$WORK/terraform"
rm -rf "$WORK/terraform/.terraform" "$WORK/terraform/.terraform.lock.hcl"
cp "$SOURCE/tests/versions_override.tf.example" "$WORK/terraform/versions_override.tf"
cp "$SOURCE/tests/signing_key_override.tf.example" "$WORK/terraform/modules/state/signing_key_override.tf"
terraform -chdir="$WORK/terraform" init -backend=false -no-color >"$WORK/init.log" || { cat "$WORK/init.log"; fail "init"; }

step "validate"
terraform -chdir="$WORK/terraform" validate -no-color

step "test (mock provider, plan-level assertions)"
terraform -chdir="$WORK/terraform" test -no-color

step "checkov (pinned, tests/deploy/checkov-requirements.txt)"
# shellcheck source=scripts/pinned_venv.sh
source scripts/pinned_venv.sh
pinned_venv "$CHECKOV_VENV" tests/deploy/checkov-requirements.txt
# --skip-download: no call to the vendor's API; the checks are the ones shipped in the pinned package.
"$CHECKOV_VENV/bin/checkov" -d "$SOURCE" --framework terraform --quiet --compact --skip-download
