"""Starting and stopping the harness's servers (moto_server.py, model_server.py) for their own tests: each on a
free loopback port, ready once a control route answers 200, stopped with SIGTERM (a clean exit is asserted)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    """A JSON request with the standard library; (status, body) for any HTTP status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start(script: str, *args: str, ready: str, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    """Run tests/aws/`script` --port <free port> *args; return (process, base URL) once GET `ready` answers 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(HERE / script), "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http("GET", f"{url}{ready}")[0] == 200:
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{script} did not start:\n{proc.communicate()[0]}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()  # SIGTERM: the servers shut down cleanly and exit 0
    try:
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
