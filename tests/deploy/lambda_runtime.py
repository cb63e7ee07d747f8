"""A local AWS Lambda Runtime API (the interface a provided.al2023 `bootstrap` polls), enough to run our function
binaries exactly as Lambda does: the process starts with AWS_LAMBDA_RUNTIME_API set, initialises, then loops on
GET /2018-06-01/runtime/invocation/next and posts each result to .../invocation/<id>/response (or /error).

The time from process start to its first `next` poll is the function's init duration (Lambda's "Init Duration",
measured here on this machine's CPU rather than a Graviton one).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PREFIX = "/2018-06-01/runtime"


class FunctionProcess:
    """One function binary under the emulated Runtime API."""

    def __init__(self, name: str, binary: Path, environment: dict[str, str], log_path: Path,
                 memory_mb: int = 512, timeout_seconds: int = 30) -> None:
        self.name = name
        self.timeout_seconds = timeout_seconds
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.results: dict[str, tuple[str, bytes]] = {}
        self.done = threading.Condition()
        self.first_poll: float | None = None
        self.init_error: bytes | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        function_name = f"ledgix-{name}"
        env = {
            **environment,
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.server.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/11/23/[$LATEST]{uuid.uuid4().hex}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
            "_HANDLER": "bootstrap",
            "LAMBDA_TASK_ROOT": str(binary.parent),
        }
        self.log = open(log_path, "wb")
        self.started = time.perf_counter()
        self.process = subprocess.Popen([str(binary)], env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def _handler(self):
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404)
                if runtime.first_poll is None:
                    runtime.first_poll = time.perf_counter()
                request_id, event = runtime.pending.get()
                deadline_ms = int(time.time() * 1000) + runtime.timeout_seconds * 1000
                self._reply(200, event, {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        f"arn:aws:lambda:us-east-1:123456789012:function:ledgix-{runtime.name}",
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0",
                })

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == f"{PREFIX}/init/error":
                    runtime.init_error = body
                    with runtime.done:
                        runtime.done.notify_all()
                    return self._reply(202)
                parts = self.path[len(PREFIX):].strip("/").split("/")
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    with runtime.done:
                        runtime.results[parts[1]] = (parts[2], body)
                        runtime.done.notify_all()
                    return self._reply(202)
                return self._reply(404)

        return Handler

    def wait_ready(self, timeout: float = 60) -> float:
        """Wait for the first `next` poll; return the init duration in seconds."""
        deadline = time.monotonic() + timeout
        while self.first_poll is None:
            if self.init_error is not None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} failed to start: {self.init_error!r}, exit {self.process.poll()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not poll for work within {timeout} s")
            time.sleep(0.005)
        return self.first_poll - self.started

    def invoke(self, event: dict, timeout: float = 60) -> dict:
        """Deliver one event; return the function's response, or raise with its error."""
        request_id = str(uuid.uuid4())
        self.pending.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        with self.done:
            while request_id not in self.results:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.process.returncode}) during the invocation")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.name} did not answer within {timeout} s")
                self.done.wait(min(remaining, 0.5))
            kind, body = self.results.pop(request_id)
        if kind == "error":
            raise RuntimeError(f"{self.name} returned an error: {body.decode(errors='replace')}")
        return json.loads(body) if body else {}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.server.shutdown()
        self.log.close()


def lambda_environment() -> dict[str, str]:
    """The variables Lambda itself sets that our binaries may read, besides the credentials."""
    keep = ("PATH", "LANG", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
    return {k: v for k, v in os.environ.items() if k in keep}
