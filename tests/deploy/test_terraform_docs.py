"""infra/terraform/README.md lists every input and output of the root module, with the input's real default."""

from __future__ import annotations

import json

import hcl2

import terraform

README = (terraform.TERRAFORM / "README.md").read_text()


def _blocks(file: str, kind: str) -> dict:
    with open(terraform.TERRAFORM / file) as f:
        return {terraform.unquote(name): body for block in hcl2.load(f).get(kind, []) for name, body in block.items()}


def _shown(default) -> str:
    if default is None:
        return "null"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, (dict, list)):
        return json.dumps(default) if default else ("{}" if isinstance(default, dict) else "[]")
    return terraform.unquote(default) if isinstance(default, str) else str(default)


def test_every_input_is_documented_with_its_default():
    for name, body in _blocks("variables.tf", "variable").items():
        expected = f"| `{name}` | `{_shown(body['default'])}` |" if "default" in body else f"| `{name}` | `*required*` |"
        assert expected in README, f"README.md: no row starting {expected}"
        assert body.get("description"), f"variable {name} has no description"


def test_every_output_is_documented():
    for name, body in _blocks("outputs.tf", "output").items():
        assert f"`{name}`" in README, f"README.md does not list output {name}"
        assert body.get("description"), f"output {name} has no description"
