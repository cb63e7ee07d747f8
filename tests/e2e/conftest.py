"""Fixtures: real `ledgix dev` processes on free loopback ports, clients built from the public SDK."""

from __future__ import annotations

import base64
import os
import queue
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from ledgix_python import LedgixClient, VaultConfig

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LEDGIX_BIN", ROOT / "target" / "release" / "ledgix"))
# `embedded` (default) or `aws`: the same suite runs against `ledgix dev --backend aws`, configured by the
# environment scripts/test.sh exports (PostgreSQL, the AWS emulator).
BACKEND = os.environ.get("LEDGIX_E2E_BACKEND", "embedded")
# Seconds a vault may take to print its LEDGIX_* lines and answer /healthz.
STARTUP_TIMEOUT = float(os.environ.get("LEDGIX_E2E_STARTUP_TIMEOUT", "60"))
# On AWS every vault process shares the tenants' state, so they must share the signing key too (KMS in
# production): one key for the whole run.
SHARED_KEY = {"VAULT_PRIVATE_KEY_BASE64": base64.b64encode(secrets.token_bytes(32)).decode()} if BACKEND == "aws" else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ALL_VAULTS: list["Vault"] = []


class Vault:
    """One `ledgix dev` process; restartable on the same data directory."""

    def __init__(self, **env: str) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="ledgix-e2e-"))
        # Logs live outside the data directory so a restart on the same data sees only the vault's own files.
        self.log_dir = Path(tempfile.mkdtemp(prefix="ledgix-e2e-log-"))
        # The dev tenant's keys, one per duty: the agent's (roles agent + consumer), a reviewer's, a tenant admin's.
        self.api_key = "lvk_e2e_" + secrets.token_urlsafe(18)
        self.reviewer_key = "lvk_e2e_rev_" + secrets.token_urlsafe(18)
        self.tenant_admin_key = "lvk_e2e_adm_" + secrets.token_urlsafe(18)
        self.admin_key = "lva_e2e_" + secrets.token_urlsafe(24)
        self.env = {"VAULT_RATE_LIMIT_RPS": "0", "RUST_LOG": "warn", **SHARED_KEY, **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.starts = 0
        self._reader: threading.Thread | None = None
        self._owned_dirs = [self.data_dir, self.log_dir]
        _ALL_VAULTS.append(self)

    @property
    def log_path(self) -> Path:
        """stderr (JSON tracing) of the current or last run. Written to a file, never a pipe: an undrained
        pipe would block the vault once its buffer fills."""
        return self.log_dir / f"stderr.{self.starts}.log"

    def stderr_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _fail(self, why: str) -> None:
        self.stop()
        code = self.proc.returncode if self.proc else None
        raise RuntimeError(f"vault did not start ({why}; exit code {code}); stderr tail:\n{self.stderr_tail()}")

    def start(self, timeout: float = STARTUP_TIMEOUT) -> "Vault":
        """Start `ledgix dev`; return once it has printed its LEDGIX_* lines and /healthz answers 200.
        Raises RuntimeError carrying the tail of the vault's stderr when it does not."""
        self.starts += 1
        env = dict(os.environ, LEDGIX_DEV_API_KEY=self.api_key, LEDGIX_DEV_REVIEWER_API_KEY=self.reviewer_key,
                   LEDGIX_DEV_TENANT_ADMIN_API_KEY=self.tenant_admin_key, LEDGIX_ADMIN_API_KEY=self.admin_key,
                   **self.env)
        with open(self.log_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [str(BIN), "dev", "--backend", BACKEND, "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(self.data_dir)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self.stdout_lines = []
        lines: queue.Queue[str | None] = queue.Queue()

        def drain(stream, sink: list[str]) -> None:  # keeps reading stdout for the life of the process
            for line in stream:
                sink.append(line.strip())
                lines.put(line)
            lines.put(None)

        self._reader = threading.Thread(target=drain, args=(self.proc.stdout, self.stdout_lines), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(f"no LEDGIX_DEV_TENANT_ID line on stdout within {timeout:.0f}s")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=10)
                self._fail("stdout closed before the LEDGIX_* lines were printed")
            if line.startswith("LEDGIX_DEV_TENANT_ID="):
                break
        if not any(l.startswith("LEDGIX_VAULT_URL=") for l in self.stdout_lines):
            self._fail("LEDGIX_VAULT_URL= was never printed")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail("exited before /healthz answered")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self._fail(f"/healthz did not answer 200 within {timeout:.0f}s")
        return self  # unreachable

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None
        if self.proc and self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def kill(self) -> None:
        """SIGKILL: a crash, no graceful shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def restart(self) -> "Vault":
        self.stop()
        return self.start()

    def printed(self, name: str) -> str:
        return next(l.split("=", 1)[1] for l in self.stdout_lines if l.startswith(name + "="))

    def cleanup(self) -> None:
        self.stop()
        for directory in {self.data_dir, *self._owned_dirs}:
            shutil.rmtree(directory, ignore_errors=True)

    # --- helpers -------------------------------------------------------------------------------------
    def client(self, api_key: str | None = None, **config) -> LedgixClient:
        defaults = dict(review_poll_interval=0.1, review_timeout=30, max_retries=0)
        return LedgixClient(VaultConfig(vault_url=self.url, vault_api_key=api_key or self.api_key, **{**defaults, **config}))

    def http(self, api_key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Vault-API-Key": api_key or self.api_key}, timeout=30)

    def reviewer(self) -> httpx.Client:
        return self.http(self.reviewer_key)

    def tenant_admin(self) -> httpx.Client:
        return self.http(self.tenant_admin_key)

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Admin-API-Key": self.admin_key}, timeout=30)

    def new_tenant_keys(self) -> dict[str, str]:
        """A new tenant through POST /admin/tenants: `{"tenant_id", "tenant_admin" (its first key), "agent" (roles
        agent + consumer), "reviewer", "auditor"}`, the role keys issued by the tenant admin through POST /api-keys."""
        with self.admin() as admin:
            r = admin.post("/admin/tenants", json={"name": "tenant-" + uuid.uuid4().hex[:8]})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["roles"] == ["tenant_admin"], body
        keys = {"tenant_id": body["tenant_id"], "tenant_admin": body["api_key"]}
        with self.http(body["api_key"]) as http:
            for name, roles in (("agent", ["agent", "consumer"]), ("reviewer", ["reviewer"]), ("auditor", ["auditor"])):
                r = http.post("/api-keys", json={"roles": roles, "name": name})
                assert r.status_code == 201, r.text
                keys[name] = r.json()["api_key"]
        return keys

    def new_tenant(self) -> tuple[str, str]:
        """A new tenant and one key holding every role (as keys made before roles existed do), for tests about
        isolation rather than duties."""
        with self.admin() as admin:
            r = admin.post("/admin/tenants", json={"name": "tenant-" + uuid.uuid4().hex[:8]})
            assert r.status_code == 201, r.text
            tenant_id = r.json()["tenant_id"]
            r = admin.post(f"/admin/tenants/{tenant_id}/api-keys",
                           json={"roles": ["agent", "consumer", "reviewer", "tenant_admin", "auditor"]})
        assert r.status_code == 201, r.text
        return tenant_id, r.json()["api_key"]

    def register(self, policy_id: str, tools: list[str], rego: str | None = None, rules: list[str] | None = None,
                 api_key: str | None = None) -> dict:
        """Register a policy with the tenant admin's key (or `api_key`)."""
        body = {"policy_id": policy_id, "tools": tools, "rules": rules or [], "description": "e2e"}
        if rego is not None:
            body["rego"] = rego
        with self.http(api_key or self.tenant_admin_key) as http:
            r = http.post("/register-policy", json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()


@pytest.fixture(scope="session", autouse=True)
def _reap_vaults():
    """At the end of the run, stop any vault a test left running and remove every temporary directory."""
    yield
    for v in _ALL_VAULTS:
        v.cleanup()


def started(v: Vault) -> Vault:
    try:
        return v.start()
    except BaseException:
        v.cleanup()
        raise


@pytest.fixture(scope="session")
def vault():
    """The shared vault: rate limiting off, random dev and admin keys. Tests use unique tool and policy ids."""
    v = started(Vault())
    yield v
    v.cleanup()


@pytest.fixture()
def fresh_vault():
    """A vault of one's own, not yet started: `.start()`, `.restart()` / `.kill()` on the same data directory."""
    v = Vault()
    yield v
    v.cleanup()


@pytest.fixture()
def restartable_vault(fresh_vault):
    """A started vault of one's own, for persistence tests (`.restart()` keeps the data directory)."""
    return fresh_vault.start()


@pytest.fixture(scope="module")
def rate_limited_vault():
    v = started(Vault(VAULT_RATE_LIMIT_RPS="1", VAULT_RATE_LIMIT_BURST="3"))
    yield v
    v.cleanup()


# --- thin fixtures over the shared vault ---------------------------------------------------------------

@pytest.fixture()
def base_url(vault) -> str:
    return vault.url


@pytest.fixture()
def dev_api_key(vault) -> str:
    return vault.api_key


@pytest.fixture()
def admin_key(vault) -> str:
    return vault.admin_key


@pytest.fixture()
def client(vault):
    """Factory: `client(api_key=None, **VaultConfig overrides)` -> ledgix_python.LedgixClient; closed afterwards."""
    made: list[LedgixClient] = []

    def make(api_key: str | None = None, **config) -> LedgixClient:
        made.append(vault.client(api_key, **config))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture()
def http(vault):
    """Factory: `http(api_key=None)` -> httpx.Client on the vault with that tenant key; closed afterwards."""
    made: list[httpx.Client] = []

    def make(api_key: str | None = None) -> httpx.Client:
        made.append(vault.http(api_key))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture()
def reviewer_http(vault):
    """httpx.Client with the dev tenant's reviewer key."""
    with vault.reviewer() as c:
        yield c


@pytest.fixture()
def tenant_admin_http(vault):
    """httpx.Client with the dev tenant's tenant_admin key."""
    with vault.tenant_admin() as c:
        yield c


@pytest.fixture()
def admin_http(vault):
    with vault.admin() as admin:
        yield admin


@pytest.fixture()
def new_tenant(vault):
    """Factory: `new_tenant()` -> (tenant_id, api_key), created through POST /admin/tenants."""
    return vault.new_tenant


# --- helpers ----------------------------------------------------------------------------------------------

class WaitingClearance:
    """An agent's `request_clearance` blocked in a thread until a reviewer decides, as the SDK waits."""

    def __init__(self, vault, request, review_timeout: int = 60) -> None:
        self.result: dict = {}

        def ask() -> None:
            with vault.client(review_timeout=review_timeout) as agent:
                try:
                    self.result["response"] = agent.request_clearance(request)
                except Exception as e:  # noqa: BLE001 - approved() reports it
                    self.result["error"] = e

        self.thread = threading.Thread(target=ask, daemon=True)
        self.thread.start()

    def approved(self, timeout: float = 60):
        """The SDK call's answer, once it returned approved with a token."""
        self.thread.join(timeout=timeout)
        assert not self.thread.is_alive(), "the SDK call did not return"
        assert "error" not in self.result, self.result.get("error")
        response = self.result["response"]
        assert response.status == "approved" and response.token, response
        return response


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll until `predicate()` returns something truthy and return it. Generous timeouts, no timing asserts."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def ledger(http_client: httpx.Client, limit: int = 500) -> list[dict]:
    r = http_client.get("/ledger", params={"limit": limit})
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def pending_review_for(http_client: httpx.Client, tool: str, timeout: float = 30.0) -> dict:
    """The tenant's pending review for `tool`, once it shows up in GET /reviews?status=pending."""
    def find():
        reviews = http_client.get("/reviews", params={"status": "pending"}).json()["reviews"]
        return next((r for r in reviews if r["tool_name"] == tool), None)

    return wait_for(find, timeout, what=f"a pending review for {tool}")


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The uniform error contract: status, JSON {"error": {code, message, request_id}}, X-Request-ID header."""
    assert response.status_code == status, f"{response.status_code} != {status}: {response.text[:500]}"
    request_id = response.headers.get("X-Request-ID")
    assert request_id, "every response carries X-Request-ID"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers.get("content-type")
    error = response.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["request_id"] == request_id, error
    if code is not None:
        assert error["code"] == code, error
    return error


def aws_client(service: str):
    """A boto3 client on the AWS emulator (AWS backend runs only)."""
    import boto3

    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


APPROVE_SMALL = """
package e2e
default decision := "deny"
decision := "approve" if { input.tool_args.amount <= 100 }
decision := "review" if { input.tool_args.amount > 100; input.tool_args.amount <= 1000 }
reason := "over the hard limit" if { input.tool_args.amount > 1000 }
reason_code := "amount_over_limit" if { input.tool_args.amount > 1000 }
"""


# --- a vault with a real judge (docs/judge.md) on the emulated model services (tests/aws/README.md) ------------

class ScriptedModel:
    """The scripted model's control API (tests/aws/scripted_model.py) on the service the judge calls: what the
    model answers (`script`) and what the vault sent it (`requests`). Shared by every test of a run: match on a
    unique tool name rather than resetting."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def script(self, *rules: dict) -> None:
        """Append rules (the newest is tried first): {"match", "reply" | "text", "fail", "times", "usage", ...}."""
        r = httpx.post(f"{self.url}/_ledgix/model/script", json={"rules": list(rules)}, timeout=10)
        assert r.status_code == 200, r.text

    def requests(self, match: str, apis: tuple[str, ...] = ("chat", "converse", "judge")) -> list[dict]:
        """The judge requests (`api`, `model`, `prompt`, `body`) whose prompt contains `match`, in order;
        embedding requests only when `apis` names them."""
        r = httpx.get(f"{self.url}/_ledgix/model/requests", timeout=10)
        assert r.status_code == 200, r.text
        return [q for q in r.json() if q["api"] in apis and match in q["prompt"]]


# Retries give up after 3 s (not 60: a throttled judge must reach human review within a test), and a policy over
# 600 characters is chunked, embedded and retrieved from (the top 2 chunks).
JUDGE_TUNING = {"VAULT_JUDGE_RETRY_BUDGET_SECONDS": "3", "VAULT_JUDGE_POLICY_BUDGET_CHARS": "600",
                "VAULT_JUDGE_TOP_K": "2"}


def real_judge(judge: str | None = None) -> tuple[dict[str, str], ScriptedModel]:
    """The VAULT_JUDGE_* variables of a real judge on this run's emulated model service, and its scripted model.
    `judge=None`: the model judge of the backend (embedded: `openai` on tests/aws/model_server.py, models
    `scripted-judge` / `scripted-embed`; aws: `bedrock` with its default models on the AWS emulator).
    `judge="http"`: the HTTP judge of tests/aws/model_server.py. Skips when the service's variables are unset."""
    if judge is None and BACKEND == "aws":
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if not endpoint:
            pytest.skip("AWS_ENDPOINT_URL is not set: no AWS emulator to serve Bedrock (tests/aws/moto_server.py)")
        return {"VAULT_JUDGE_BACKEND": "bedrock", **JUDGE_TUNING}, ScriptedModel(endpoint)
    url, key = os.environ.get("LEDGIX_TEST_MODEL_SERVER_URL"), os.environ.get("LEDGIX_TEST_MODEL_SERVER_KEY")
    if not url or not key:
        pytest.skip("LEDGIX_TEST_MODEL_SERVER_URL / LEDGIX_TEST_MODEL_SERVER_KEY are not set: no model server "
                    "(tests/aws/model_server.py)")
    url = url.rstrip("/")
    if judge == "http":
        env = {"VAULT_JUDGE_BACKEND": "http", "VAULT_JUDGE_URL": f"{url}/judge", "VAULT_JUDGE_API_KEY": key}
    else:
        env = {"VAULT_JUDGE_BACKEND": "openai", "VAULT_JUDGE_URL": f"{url}/v1", "VAULT_JUDGE_API_KEY": key,
               "VAULT_JUDGE_MODEL": "scripted-judge", "VAULT_EMBEDDING_MODEL": "scripted-embed"}
    return {**env, **JUDGE_TUNING}, ScriptedModel(url)


def _own_judge_queue() -> str:
    """On AWS every `ledgix dev --backend aws` polls VAULT_CLEARANCE_SQS_QUEUE_URL, and the other vaults of the run
    judge with the stub: a vault with a real judge gets a FIFO queue of its own. Returns its URL."""
    return aws_client("sqs").create_queue(
        QueueName=unique("ledgix-judge-e2e") + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "60"})["QueueUrl"]


@pytest.fixture(scope="module")
def scripted_model() -> ScriptedModel:
    """The scripted model behind `judge_vault`'s judge."""
    return real_judge()[1]


@pytest.fixture(scope="module")
def judge_vault():
    """A vault whose plain-English policies are decided by a real judge adapter (`real_judge()`) talking to the
    emulated model service; script its answers with the `scripted_model` fixture."""
    env, _ = real_judge()
    queue_url = _own_judge_queue() if BACKEND == "aws" else None
    if queue_url is not None:
        env["VAULT_CLEARANCE_SQS_QUEUE_URL"] = queue_url
    try:
        v = started(Vault(**env))
        yield v
        v.cleanup()
    finally:
        if queue_url is not None:
            aws_client("sqs").delete_queue(QueueUrl=queue_url)
