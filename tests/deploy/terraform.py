"""What infra/terraform declares, read from its source: each function's environment variable names
(environment.tf, local.function_environment) and IAM grants (iam.tf, local.function_permissions)."""

from __future__ import annotations

import re
from pathlib import Path

import hcl2

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"
FUNCTIONS = ("clearance-api", "jwks", "judge-worker", "anchor-export")
_NAME = re.compile(r"\b([A-Z][A-Z0-9_]{2,})\s*=")


def unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _locals(path: Path) -> dict:
    merged: dict = {}
    with open(path) as f:
        for block in hcl2.load(f).get("locals", []):
            merged.update(block)
    return merged


def function_permissions() -> dict[str, set[str]]:
    """Function name -> the IAM actions local.function_permissions grants it."""
    permissions = _locals(TERRAFORM / "iam.tf")["function_permissions"]
    return {unquote(name): {unquote(a) for statement in statements for a in statement["actions"]}
            for name, statements in permissions.items()}


def function_environment() -> dict[str, set[str]]:
    """Function name -> the variable names local.function_environment gives it (whatever the inputs: optional
    entries such as VAULT_CORS_ALLOWED_ORIGIN count as set)."""
    text = (TERRAFORM / "environment.tf").read_text()
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    body = text[text.index("function_environment = {"):]
    # The named maps the functions merge, e.g. `signer_environment = { ... }`.
    maps = {m.group(1): set(_NAME.findall(m.group(2)))
            for m in re.finditer(r"\b(\w+_environment)\s*=\s*(?:var\.\w+\s*\?\s*)?\{(.*?)\n  \}", text, re.S)
            if m.group(1) != "function_environment"}
    maps.update({m.group(1): set(_NAME.findall(m.group(0)))
                 for m in re.finditer(r"\b(\w+_environment)\s*=\s*var\.\w+\s*\?[^\n]*", text)})
    result = {}
    entries = list(re.finditer(r'^    "([a-z-]+)"\s*=', body, re.M))
    for i, entry in enumerate(entries):
        end = entries[i + 1].start() if i + 1 < len(entries) else len(body)
        chunk = body[entry.end():end]
        names = set(_NAME.findall(chunk))
        for local in re.findall(r"local\.(\w+_environment)", chunk):
            names |= maps[local]
        result[entry.group(1)] = names
    return result
