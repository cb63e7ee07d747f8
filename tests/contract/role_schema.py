"""The contract one key role must see: docs/openapi.yaml, with each tenant operation the role may not call reduced
to the answer it must then get (403 `forbidden_role`, or 404 `route_not_found` for a path that names no route).

    python role_schema.py docs/openapi.yaml ROLE OUT.json

For a role the operation accepts (its `x-required-roles`) the document is unchanged, so schemathesis checks every
answer against what the document lists. For any other role a route that forgot its role check answers something
else than 403 forbidden_role (a 2xx, a 404 not_found, a 422 ...) and fails `status_code_conformance` or
`response_schema_conformance`. Also refuses (exit 1) a document where a tenant operation names no roles, names an
unknown role, or does not list 403: a forbidden_role answer is only conformant where it is documented.
ROLE `admin` (the operator's key, /admin/* only) leaves the document as it is.
"""

from __future__ import annotations

import copy
import json
import sys

import yaml

ROLES = {"agent", "consumer", "reviewer", "tenant_admin", "auditor"}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def error_with_code(description: str, code: str) -> dict:
    return {
        "description": description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/Error"},
                        {"type": "object", "properties": {"error": {"type": "object", "properties": {"code": {"const": code}}}}},
                    ]
                }
            }
        },
    }


FORBIDDEN = {
    "403": error_with_code("this role is not among the operation's x-required-roles", "forbidden_role"),
    "404": error_with_code("a path that names no route (e.g. an empty path parameter)", "route_not_found"),
}


def tenant_operations(doc: dict):
    for path, item in doc["paths"].items():
        if path.startswith("/admin/"):
            continue
        for method, op in item.items():
            if method not in METHODS:
                continue
            security = op.get("security", doc.get("security"))
            if security == []:  # public: /healthz, the JWKS
                continue
            yield f"{method.upper()} {path}", op


def main(source: str, role: str, out: str) -> int:
    if role not in ROLES | {"admin"}:
        print(f"unknown role {role!r}", file=sys.stderr)
        return 2
    with open(source) as f:
        doc = yaml.safe_load(f)
    problems = []
    for name, op in tenant_operations(doc):
        roles = op.get("x-required-roles")
        if not roles:
            problems.append(f"{name}: no x-required-roles")
            continue
        if unknown := set(roles) - ROLES:
            problems.append(f"{name}: unknown roles {sorted(unknown)}")
        if "403" not in op.get("responses", {}):
            problems.append(f"{name}: does not list 403 (ForbiddenRole)")
        if role != "admin" and role not in roles:
            op["responses"] = copy.deepcopy(FORBIDDEN)
    if problems:
        print("docs/openapi.yaml: tenant operations without a complete role contract:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    with open(out, "w") as f:
        json.dump(doc, f)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))
