"""A pass-through in front of the AWS emulator for Bedrock Runtime alone, so the least-privilege test knows which
model each call named. The emulator records service and operation per access key (/_ledgix/calls); IAM also
checks the resource, which for Converse and InvokeModel is the model in the request path
(POST /model/{modelId}/converse, /model/{modelId}/invoke). A function started with
AWS_ENDPOINT_URL_BEDROCK_RUNTIME pointing here (the SDKs' service-specific endpoint variable, read by
aws-config's standard chain) sends its Bedrock calls through; everything else still goes to AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import httpx

# Request path suffix -> Bedrock Runtime operation.
OPERATIONS = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
}
_PATH = re.compile(r"^/model/([^/]+)/([a-z-]+)$")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
               "content-length", "expect", "proxy-connection"}


class BedrockRecorder:
    """Forwards every request to `upstream` unchanged (the signature's access key included, so the emulator still
    attributes the call) and counts (access key, operation, model id)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self.unrecognised: list[str] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def calls(self, access_key: str) -> Counter[tuple[str, str]]:
        """(operation, model id) -> count, for the calls signed with `access_key`."""
        with self._lock:
            return Counter({(op, model): n for (key, op, model), n in self.counts.items() if key == access_key})

    def stop(self) -> None:
        self.server.shutdown()
        self._client.close()

    def _record(self, headers, path: str) -> None:
        credential = _CREDENTIAL.search(headers.get("Authorization", ""))
        key = credential.group(1) if credential else "anonymous"
        match = _PATH.match(path.split("?", 1)[0])
        with self._lock:
            if match and match.group(2) in OPERATIONS:
                self.counts[(key, OPERATIONS[match.group(2)], unquote(match.group(1)))] += 1
            else:
                self.unrecognised.append(path)

    def _handler(self):
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body()
                recorder._record(self.headers, self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                try:
                    answer = recorder._client.request(self.command, recorder.upstream + self.path,
                                                      headers=headers, content=body)
                except httpx.HTTPError as e:
                    message = f"bedrock recorder: upstream failed: {e}".encode()
                    self.send_response(502)
                    self.send_header("Content-Length", str(len(message)))
                    self.end_headers()
                    self.wfile.write(message)
                    return
                content = answer.content
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-encoding":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_POST = do_GET = do_PUT = do_DELETE = _forward

        return Handler
