"""What infra/terraform declares, read from its source: each function's environment variable names
(environment.tf, local.function_environment), IAM grants (iam.tf, local.function_permissions), both per signing
mode (signing.tf), the Bedrock models the judge is given (judge.tf) and the inputs' defaults (variables.tf)."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"
FUNCTIONS = ("clearance-api", "jwks", "judge-worker", "anchor-export", "notifier")
SIGNING_MODES = ("direct", "delegated")
_NAME = re.compile(r"\b([A-Z][A-Z0-9_]{2,})\s*=")
# Conditions in environment.tf that depend on the signing mode (the others count as true: "whatever the inputs").
_MODE_CONDITIONS = {"local.delegated_signing": lambda mode: mode == "delegated"}


def unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _locals(path: Path) -> dict:
    merged: dict = {}
    with open(path) as f:
        for block in hcl2.load(f).get("locals", []):
            merged.update(block)
    return merged


def _check_mode(signing_mode: str | None) -> None:
    assert signing_mode is None or signing_mode in SIGNING_MODES, signing_mode


def function_permissions(signing_mode: str | None = None) -> dict[str, set[str]]:
    """Function name -> the IAM actions local.function_permissions grants it with `signing_mode` (iam.tf's
    local.function_statements keeps a statement with `signing_modes` only in those modes); None: in any mode."""
    _check_mode(signing_mode)
    permissions = _locals(TERRAFORM / "iam.tf")["function_permissions"]
    granted = {}
    for name, statements in permissions.items():
        granted[unquote(name)] = {
            unquote(a) for statement in statements for a in statement["actions"]
            if signing_mode is None or signing_mode in {unquote(m) for m in statement.get("signing_modes", SIGNING_MODES)}}
    return granted


def signer_backend(signing_mode: str) -> str:
    """VAULT_SIGNER_BACKEND for a signing_mode (signing.tf's local.signer_backends)."""
    _check_mode(signing_mode)
    return unquote(_locals(TERRAFORM / "signing.tf")["signer_backends"][signing_mode])


def variable_default(name: str):
    """The default of a root module input (variables.tf), strings unquoted."""
    with open(TERRAFORM / "variables.tf") as f:
        for block in hcl2.load(f).get("variable", []):
            for variable, body in block.items():
                if unquote(variable) == name:
                    default = body["default"]
                    return unquote(default) if isinstance(default, str) else default
    raise KeyError(name)


def function_environment(signing_mode: str | None = None) -> dict[str, set[str]]:
    """Function name -> the variable names local.function_environment gives it with `signing_mode` (None: in any
    mode). Whatever the other inputs: optional entries such as VAULT_CORS_ALLOWED_ORIGIN count as set."""
    _check_mode(signing_mode)
    text = (TERRAFORM / "environment.tf").read_text()
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    body = text[text.index("function_environment = {"):]
    # The named maps the functions merge, e.g. `signer_environment = {` ... `}` over several lines (a one-line
    # map must not run on into the next local's body), some under a condition (`var.x ? {` ... `} : {}`).
    conditional = r"\b(\w+_environment)\s*=\s*(?:((?:var|local)\.\w+)\s*\?\s*)?"
    maps, conditions = {}, {}
    for m in re.finditer(conditional + r"\{[ \t]*\n(.*?)\n  \}", text, re.S):
        if m.group(1) != "function_environment":
            maps[m.group(1)], conditions[m.group(1)] = set(_NAME.findall(m.group(3))), m.group(2)
    for m in re.finditer(r"\b(\w+_environment)\s*=\s*((?:var|local)\.\w+)\s*\?[^\n]*", text):
        if m.group(1) not in maps:
            maps[m.group(1)], conditions[m.group(1)] = set(_NAME.findall(m.group(0))), m.group(2)

    def included(local: str) -> bool:
        test = _MODE_CONDITIONS.get(conditions.get(local) or "")
        return signing_mode is None or test is None or test(signing_mode)

    result = {}
    entries = list(re.finditer(r'^    "([a-z-]+)"\s*=', body, re.M))
    for i, entry in enumerate(entries):
        end = entries[i + 1].start() if i + 1 < len(entries) else len(body)
        chunk = body[entry.end():end]
        names = set(_NAME.findall(chunk))
        for local in re.findall(r"local\.(\w+_environment)", chunk):
            if included(local):
                names |= maps[local]
        result[entry.group(1)] = names
    return result


def bedrock_default_models() -> dict[str, str]:
    """judge.tf's local.bedrock_default_models: VAULT_JUDGE_MODEL and VAULT_EMBEDDING_MODEL of the bedrock judge
    when judge_model / embedding_model are left null ({"judge_model": ..., "embedding_model": ...})."""
    models = _locals(TERRAFORM / "judge.tf")["bedrock_default_models"]
    return {unquote(k): unquote(v) for k, v in models.items()}


def bedrock_invoke_grants(model_ids: list[str], *, region: str, account: str,
                          partition: str = "aws") -> tuple[set[str], dict[str, str]]:
    """What iam.tf grants judge-worker bedrock:InvokeModel on for these model ids, as (the ARNs its calls name,
    {routed foundation-model ARN: the inference-profile ARN it is granted through}).

    The same rule as iam.tf's local.judge_model_arns / judge_routed_model_arns (with judge.tf's list of
    inference-profile geographies, read from the source); tests/deploy/test_judge_grants.py pins it to the ARNs
    infra/terraform/tests/plan.tftest.hcl asserts for the same inputs, so the two cannot drift apart."""
    geographies = {unquote(g) for g in _locals(TERRAFORM / "judge.tf")["bedrock_profile_geographies"]}
    called: set[str] = set()
    routed: dict[str, str] = {}
    for model_id in dict.fromkeys(model_ids):
        prefix, _, foundation_model = model_id.partition(".")
        if prefix in geographies:
            profile = f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}"
            called.add(profile)
            routed[f"arn:{partition}:bedrock:*::foundation-model/{foundation_model}"] = profile
        else:
            called.add(f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}")
    return called, routed


def bedrock_call_resource(model_id: str, *, region: str, account: str, partition: str = "aws") -> str:
    """The resource a Bedrock Runtime call (Converse, InvokeModel) naming `model_id` is authorised on: the model
    ARN itself, an inference profile's ARN in the caller's region, else the foundation model's ARN there."""
    if model_id.startswith("arn:"):
        return model_id
    geographies = {unquote(g) for g in _locals(TERRAFORM / "judge.tf")["bedrock_profile_geographies"]}
    if model_id.partition(".")[0] in geographies:
        return f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model_id}"
    return f"arn:{partition}:bedrock:{region}::foundation-model/{model_id}"
