"""The README's Python example runs as written against a fresh vault."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs(fresh_vault):
    v = fresh_vault.start()
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    env = dict(os.environ, LEDGIX_VAULT_URL=v.url, LEDGIX_VAULT_API_KEY=v.api_key,
               LEDGIX_TENANT_ADMIN_API_KEY=v.tenant_admin_key)
    run = subprocess.run([sys.executable, "-c", blocks[0]], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("approved ") and lines[1].startswith("denied:") and lines[2] == "True"
