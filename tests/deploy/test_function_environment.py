"""Every environment variable the code reads is either set by each function's Terraform
(infra/terraform/environment.tf), or comes from the bootstrap secret or Lambda itself, or is deliberately left
at its default for that function, with the reason. And Terraform sets nothing the code does not read.

Four functions load the whole configuration (shared/wiring/src/config.rs, merged over the bootstrap secret), so
each may read any variable the code names. The notifier does not: it reads only what notifier_from_env reads
(variables_the_notifier_reads), and no bootstrap secret."""

from __future__ import annotations

import re
from pathlib import Path

import terraform

ROOT = Path(__file__).resolve().parents[2]

# Set at cold start from the bootstrap secret (AWS_SECRET_NAME), never in Terraform: they are secrets.
# VAULT_JUDGE_API_KEY: the openai/http judge's key (docs/deploy.md, "Policy judge").
FROM_BOOTSTRAP_SECRET = {"DATABASE_URL", "LEDGIX_ADMIN_API_KEY", "VAULT_JUDGE_API_KEY"}
# Set by Lambda in every execution environment.
FROM_LAMBDA = {"AWS_LAMBDA_FUNCTION_NAME"}

# The functions that load the whole configuration (with the bootstrap secret), and every function.
CONFIGURED = ("clearance-api", "jwks", "judge-worker", "anchor-export")
EVERYWHERE = (*CONFIGURED, "notifier")
NOT_HTTP = ("jwks", "judge-worker", "anchor-export")
WITHOUT_STATE = ("jwks",)
NOT_JUDGE_WORKER = ("clearance-api", "jwks", "anchor-export")

# variable -> (functions that leave it at its default, why)
DELIBERATE_DEFAULTS: dict[str, tuple[tuple[str, ...], str]] = {
    "VAULT_PRIVATE_KEY_FILE": (CONFIGURED, "the root stays in KMS (VAULT_SIGNER_BACKEND=aws_kms*); delegated keys "
                                           "are sealed under the envelope key in the key registry"),
    "VAULT_PRIVATE_KEY_BASE64": (CONFIGURED, "the root stays in KMS (VAULT_SIGNER_BACKEND=aws_kms*); delegated keys "
                                             "are sealed under the envelope key in the key registry"),
    "VAULT_TRANSPORT_KEY_BASE64": (EVERYWHERE, "payloads use KMS envelope encryption (VAULT_ENVELOPE_KMS_KEY_ID); "
                                               "a static key would be a secret in the environment"),
    "VAULT_DATA_DIR": (CONFIGURED, "embedded backend only"),
    "VAULT_JUDGE_BACKEND": (("jwks", "anchor-export"), "they judge nothing and queue no judge work"),
    "VAULT_JUDGE_URL": (NOT_JUDGE_WORKER, "only judge-worker calls the judge"),
    "VAULT_JUDGE_MODEL": (NOT_JUDGE_WORKER, "only judge-worker calls the judge"),
    "VAULT_EMBEDDING_MODEL": (NOT_JUDGE_WORKER, "only judge-worker embeds policies"),
    "VAULT_JUDGE_TIMEOUT_SECONDS": (NOT_JUDGE_WORKER, "only judge-worker calls the judge"),
    "VAULT_JUDGE_RETRY_BUDGET_SECONDS": (NOT_JUDGE_WORKER, "only judge-worker calls the judge"),
    "VAULT_JUDGE_TENANT_CONCURRENCY": (NOT_JUDGE_WORKER, "only judge-worker calls the judge"),
    "VAULT_JUDGE_POLICY_BUDGET_CHARS": (NOT_JUDGE_WORKER, "only judge-worker calls the judge"),
    "VAULT_JUDGE_TOP_K": (NOT_JUDGE_WORKER, "only judge-worker retrieves policy chunks"),
    "VAULT_CLEARANCE_ASYNC_WORKERS": (CONFIGURED, "the in-process queue; on Lambda judge work goes through SQS"),
    "VAULT_CLEARANCE_ASYNC_QUEUE_SIZE": (CONFIGURED, "the in-process queue; on Lambda judge work goes through SQS"),
    "VAULT_CLEARANCE_SQS_WAIT_TIME_SECONDS": (CONFIGURED, "ledgix dev's own SQS consumer; on Lambda the event "
                                                          "source mapping receives"),
    "VAULT_CLEARANCE_SQS_VISIBILITY_TIMEOUT_SECONDS": (CONFIGURED, "ledgix dev's own SQS consumer; the queue's "
                                                                   "visibility timeout is set in Terraform"),
    "VAULT_LEDGER_ANCHOR_BUCKET_TEMPLATE": (CONFIGURED, "this Terraform creates one anchor bucket per deployment"),
    "VAULT_POLICY_CACHE_TTL_SECONDS": (CONFIGURED, "the seed's default (5 s) bounds staleness across instances"),
    "VAULT_AUTH_CACHE_TTL_SECONDS": (CONFIGURED, "the seed's default (5 s) bounds revocation delay across instances"),
    "VAULT_REGO_TIME_LIMIT_MS": (CONFIGURED, "the built-in budget (100 ms) is the product's limit for tenant Rego"),
    "VAULT_REGO_MEMORY_LIMIT_BYTES": (CONFIGURED, "the built-in budget (32 MiB) is the product's limit for tenant Rego"),
    "VAULT_MAX_POLICIES_PER_TENANT": (CONFIGURED, "the built-in cap (200) is the product's limit per tenant"),
    "AWS_ENDPOINT_URL": (EVERYWHERE, "emulators in tests only; Lambda uses the real endpoints"),
    "VAULT_ALLOW_STUB_JUDGE": (("jwks", "anchor-export"), "they judge nothing"),
    "VAULT_RATE_LIMIT_RPS": (NOT_HTTP, "rate limits apply to API requests (clearance-api)"),
    "VAULT_RATE_LIMIT_BURST": (NOT_HTTP, "rate limits apply to API requests (clearance-api)"),
    "VAULT_RATE_LIMIT_TTL_SECONDS": (NOT_HTTP, "rate limits apply to API requests (clearance-api)"),
    "VAULT_CORS_ALLOWED_ORIGIN": (NOT_HTTP, "CORS headers belong to clearance-api's responses"),
    "VAULT_PUBLIC_URL": (("jwks",), "it builds no notifications (the others get it when public_url is set)"),
    "VAULT_EMAIL_FROM_IDENTITIES": (("jwks",), "it builds no notifications (the others get it when "
                                               "email_identities is set)"),
    "VAULT_ADMIN_AUTH": (NOT_HTTP, "only clearance-api serves /admin/*"),
    "VAULT_CLIENT_RATE_LIMIT_RPS": (CONFIGURED, "the per-client-address limit needs a socket peer, which Lambda does "
                                                "not have; API Gateway's stage throttling limits clearance-api"),
    "VAULT_CLIENT_RATE_LIMIT_BURST": (CONFIGURED, "the per-client-address limit needs a socket peer, which Lambda "
                                                  "does not have; API Gateway's stage throttling limits clearance-api"),
    "VAULT_METRICS": (NOT_HTTP, "request metrics are clearance-api's; the others run at EMF's Lambda default"),
    "VAULT_CLEARANCE_SQS_QUEUE_URL": (NOT_HTTP, "only clearance-api enqueues judge work"),
    "VAULT_CLEARANCE_SQS_FIFO_GROUP_SHARDS": (NOT_HTTP, "only clearance-api enqueues judge work"),
    "VAULT_JWT_TTL": (("anchor-export",), "it mints no tokens and publishes no JWKS"),
    "VAULT_MINT_MAX_AGE_SECONDS": (NOT_HTTP, "only clearance-api serves /mint-token"),
    "VAULT_JWT_ISSUER": (("jwks", "anchor-export"), "they mint no tokens"),
    "VAULT_JWT_AUDIENCE": (("jwks", "anchor-export"), "they mint no tokens"),
    "VAULT_LEDGER_ANCHOR_SCHEDULE_SECONDS": (("clearance-api", "jwks", "judge-worker"),
                                             "only anchor-export is invoked by the anchor schedule"),
    "VAULT_LEDGER_ANCHOR_CONCURRENCY": (("clearance-api", "jwks", "judge-worker"),
                                        "only anchor-export runs anchor rounds (ledgix dev's timer is not on Lambda)"),
    "VAULT_LEDGER_ANCHOR_BUCKET": (("clearance-api", "jwks", "judge-worker"), "only anchor-export exports"),
    "VAULT_LEDGER_ANCHOR_REGION": (("clearance-api", "jwks", "judge-worker"), "only anchor-export exports"),
    "VAULT_LEDGER_REQUIRE_BUCKET_VERSIONING": (("clearance-api", "jwks", "judge-worker"), "only anchor-export exports"),
    "VAULT_LEDGER_REQUIRE_OBJECT_LOCK": (("clearance-api", "jwks", "judge-worker"), "only anchor-export exports"),
    "VAULT_NOTIFY_SQS_QUEUE_URL": (("jwks",), "jwks commits no decision: it has nothing to notify"),
    "VAULT_ALLOW_PRIVATE_WEBHOOK_URLS": (EVERYWHERE, "development only: on AWS a tenant's webhook may reach public "
                                                     "addresses only (the SSRF guard, docs/notifications.md)"),
    "VAULT_EMAIL_SMTP_URL": (EVERYWHERE, "development only (a local SMTP catcher): on AWS email goes through SES"),
}
# jwks builds only the signer from the configuration (functions/jwks/src/main.rs): the KMS root over the key registry
# in the hot table (VAULT_DYNAMODB_TABLE); no store, no ledger, and it opens no delegated key (so neither the
# envelope key nor the key calendar).
for _name in ("TENANT_SECRET_PREFIX", "VAULT_ENVELOPE_KMS_KEY_ID", "VAULT_TENANT_DB_SSLMODE",
              "VAULT_CONTROL_PLANE_DB_SSLMODE", "VAULT_CONTROL_PLANE_DB_MAX_OPEN_CONNS",
              "VAULT_TENANT_DB_MAX_OPEN_CONNS", "VAULT_TENANT_SECRET_CACHE_TTL_SECONDS",
              "VAULT_LEDGER_ANCHOR_BACKFILL_INTERVAL_SECONDS", "VAULT_LEDGER_ANCHOR_BACKFILL_BATCH_SIZE",
              "VAULT_LEDGER_ANCHOR_PREFIX", "VAULT_LEDGER_LOG_ORIGIN", "VAULT_DB_CA_BUNDLE"):
    DELIBERATE_DEFAULTS[_name] = (WITHOUT_STATE, "jwks builds only the signer")
DELIBERATE_DEFAULTS["DATABASE_URL"] = (WITHOUT_STATE, "jwks builds only the signer")  # not even the bootstrap one
for _name in ("VAULT_SIGNING_KEY_PERIOD_SECONDS", "VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS",
              "VAULT_SIGNING_KEY_OVERLAP_SECONDS"):
    DELIBERATE_DEFAULTS[_name] = (WITHOUT_STATE, "jwks opens no delegated key: it lists the registry as it is")
KEY_CALENDAR = {"VAULT_SIGNING_KEY_PERIOD_SECONDS", "VAULT_SIGNING_KEY_PUBLISH_AHEAD_SECONDS",
                "VAULT_SIGNING_KEY_OVERLAP_SECONDS"}


def variables_the_code_reads() -> set[str]:
    """Variable names in the library and function sources (the configuration is read by name, in one place per
    crate: shared/wiring/src/config.rs, shared/aws/src/bootstrap.rs)."""
    sources = [*ROOT.glob("shared/*/src/**/*.rs"), *ROOT.glob("functions/*/src/*.rs")]
    names = set()
    for path in sources:
        names |= set(re.findall(r'"((?:VAULT|LEDGIX|AWS|TENANT|DATABASE)_[A-Z0-9_]+)"', path.read_text()))
    names.discard("LEDGIX_DEV_API_KEY")  # ledgix dev only: the cli reads it for the dev tenant
    return names


def _body(path: str, opening: str) -> str:
    """The Rust item starting at `opening` in `path`, up to its closing brace at the start of a line."""
    text = (ROOT / path).read_text()
    start = text.index(opening)
    return text[start:text.index("\n}\n", start)]


def variables_the_notifier_reads() -> set[str]:
    """What the notifier function reads: its main (functions/notifier/src/main.rs) builds nothing but
    notifier_from_env (shared/wiring/src/assemble.rs), which reads NotifyConfig::from_env (the webhook and email
    settings, shared/wiring/src/config.rs) and hands the rest to NotifierBackend::connect
    (shared/aws/src/bootstrap.rs). Read from those bodies, so a variable added there shows up here."""
    main = (ROOT / "functions" / "notifier" / "src" / "main.rs").read_text()
    assert "notifier_from_env()" in main and "load_config" not in main and "build(" not in main, (
        "the notifier builds more than notifier_from_env: check what it reads")
    bodies = _body("shared/wiring/src/assemble.rs", "pub async fn notifier_from_env") + _body(
        "shared/wiring/src/config.rs", "impl NotifyConfig {") + _body(
        "shared/aws/src/bootstrap.rs", "impl NotifierBackend {")
    return set(re.findall(r'"((?:VAULT|LEDGIX|AWS|TENANT|DATABASE)_[A-Z0-9_]+)"', bodies))


def reads(function: str) -> tuple[set[str], set[str]]:
    """The variables `function` may read, and those of them the bootstrap secret supplies."""
    if function == "notifier":
        return variables_the_notifier_reads(), set()
    return variables_the_code_reads(), FROM_BOOTSTRAP_SECRET


def test_every_variable_the_code_reads_is_set_or_deliberately_defaulted():
    environment = terraform.function_environment()
    assert set(environment) == set(terraform.FUNCTIONS)
    for function, names in environment.items():
        code, from_secret = reads(function)
        defaulted = {v for v, (functions, _) in DELIBERATE_DEFAULTS.items() if function in functions}
        unaccounted = code - names - from_secret - FROM_LAMBDA - defaulted
        assert not unaccounted, f"{function} reads {sorted(unaccounted)}: set them in environment.tf or say why not"
        both = names & defaulted
        assert not both, f"{function}: {sorted(both)} are set in Terraform and also listed as defaulted"


def test_terraform_sets_only_what_the_code_reads():
    for function, names in terraform.function_environment().items():
        code = reads(function)[0] | {"RUST_LOG"}  # RUST_LOG: tracing's EnvFilter reads it by convention
        assert names <= code, f"{function}: Terraform sets {sorted(names - code)}, which nothing reads"


def test_the_notifier_gets_its_own_settings_and_nothing_else():
    """The notifier runs outside the VPC with the delivery log, the envelope key, the notify queue and the email
    senders: no database URL, no bootstrap secret to merge one from, no signer. Every function that commits
    decisions gets the notify queue and the email senders (clearance-api checks them on PUT /notification-settings);
    the development flags (loopback webhooks, an SMTP catcher) are never set."""
    assert variables_the_notifier_reads() == {
        "VAULT_NOTIFY_SQS_QUEUE_URL", "VAULT_DYNAMODB_TABLE", "VAULT_ENVELOPE_KMS_KEY_ID",
        "VAULT_TRANSPORT_KEY_BASE64", "VAULT_ALLOW_PRIVATE_WEBHOOK_URLS", "VAULT_EMAIL_SMTP_URL",
        "VAULT_EMAIL_FROM_IDENTITIES"}
    for mode in terraform.SIGNING_MODES:
        environment = terraform.function_environment(mode)
        assert environment["notifier"] == {
            "VAULT_NOTIFY_SQS_QUEUE_URL", "VAULT_DYNAMODB_TABLE", "VAULT_ENVELOPE_KMS_KEY_ID", "RUST_LOG",
            "VAULT_EMAIL_FROM_IDENTITIES"}, mode
        for function, names in environment.items():
            assert ("VAULT_NOTIFY_SQS_QUEUE_URL" in names) == (function != "jwks"), function
            assert ("VAULT_EMAIL_FROM_IDENTITIES" in names) == (function != "jwks"), function
            assert not names & {"VAULT_ALLOW_PRIVATE_WEBHOOK_URLS", "VAULT_EMAIL_SMTP_URL"}, function


def test_the_deliberate_defaults_are_real_variables():
    stale = set(DELIBERATE_DEFAULTS) - variables_the_code_reads()
    assert not stale, f"no longer read by the code: {sorted(stale)}"


def test_every_variable_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text()
    missing = {name for name in variables_the_code_reads() if f"`{name}`" not in documented}
    assert not missing, f"docs/configuration.md does not list {sorted(missing)}"


def test_the_key_calendar_is_set_only_with_delegated_signing():
    """The AWS backend reads VAULT_SIGNING_KEY_* only with VAULT_SIGNER_BACKEND=aws_kms_delegated
    (shared/aws/src/bootstrap.rs, AwsSettings::from_lookup), where every function that builds the vault must get the
    same calendar (the period decides which key signs), and the envelope key that seals the keys."""
    assert terraform.signer_backend("direct") == "aws_kms"
    assert terraform.signer_backend("delegated") == "aws_kms_delegated"
    direct, delegated = terraform.function_environment("direct"), terraform.function_environment("delegated")
    for function in terraform.FUNCTIONS:
        assert not direct[function] & KEY_CALENDAR, f"{function}: the key calendar is set in direct mode"
        signs = function != "notifier"  # it builds no signer (notifier_from_env)
        assert ("VAULT_SIGNER_BACKEND" in direct[function]) == signs == ("VAULT_SIGNER_BACKEND" in delegated[function])
        builds_the_vault = {"VAULT_SIGNER_BACKEND", "VAULT_ENVELOPE_KMS_KEY_ID"} <= delegated[function]
        assert (KEY_CALENDAR <= delegated[function]) == builds_the_vault, (
            f"{function}: the key calendar goes to exactly the functions that build the vault")
        assert delegated[function] - KEY_CALENDAR == direct[function], f"{function}: only the calendar differs"
