"""The AWS emulator for Ledgix's tests: moto's server (pinned, tests/aws/requirements.txt) on 127.0.0.1, plus a
few small, documented additions. moto is monkeypatched at start-up, never vendored.

Usage:  python tests/aws/moto_server.py --port 5000     (foreground; stops on SIGTERM or SIGINT)

1. KMS key spec ECC_NIST_EDWARDS25519 (Ed25519), which moto 5.2.5 lacks. The vault signs with it
   (ED25519_SHA_512, MessageType RAW), so the emulator follows the KMS API reference for it:
   - CreateKey accepts it with KeyUsage SIGN_VERIFY only; any other (or no) KeyUsage -> ValidationException.
   - DescribeKey and GetPublicKey report KeySpec ECC_NIST_EDWARDS25519, KeyUsage SIGN_VERIFY and
     SigningAlgorithms [ED25519_SHA_512, ED25519_PH_SHA_512]; GetPublicKey's PublicKey is the 44-byte DER
     SubjectPublicKeyInfo (302a300506032b6570032100 || the 32-byte key).
   - Sign / Verify, checked in AWS's order:
       Message empty or over 4096 bytes, or an unknown SigningAlgorithm / MessageType -> ValidationException
       key Disabled -> DisabledException; key PendingDeletion -> KMSInvalidStateException
       an algorithm that exists but not for this key (ECDSA_SHA_256, ...) -> InvalidKeyUsageException
       ED25519_SHA_512 with MessageType other than RAW -> ValidationException (AWS: it requires RAW)
       ED25519_PH_SHA_512 -> ValidationException (AWS requires DIGEST for it; Ed25519ph is not emulated, the
       `cryptography` package has no Ed25519ph, and the vault never uses it)
     Sign returns the 64-byte raw Ed25519 signature (RFC 8032) of the message. Verify answers SignatureValid true,
     or fails with KMSInvalidSignatureException, as AWS does.
   - Encrypt / GenerateDataKey* with an Ed25519 key -> InvalidKeyUsageException (moto does not check usage).
   GetPublicKey, for every key, also gets the fields moto leaves out or gets wrong: KeySpec (moto returns only the
   deprecated CustomerMasterKeySpec), KeyId as the key ARN (as AWS returns it), and no null fields.

2. S3 GetBucketVersioning answers with S3's root element <VersioningConfiguration>; moto 5.2.5 names it
   <GetBucketVersioningResponse>, which strict clients (aws-sdk-rust) reject. GetObjectLockConfiguration loses the
   zero <Years>0</Years> (or <Days>0</Days>) moto adds beside the period that was set: S3 returns only that one.

3. Fault injection for failure tests, as WSGI middleware in front of moto's app (not an AWS API):
     POST /_ledgix/faults  {"kms_sign_throttle": N}   the next N KMS Sign calls fail with HTTP 400
                           {"__type": "ThrottlingException", "message": "Rate exceeded"} (sets the count; 0 clears)
     POST /_ledgix/faults  {"reset": true}            clears every fault
     GET  /_ledgix/faults                             the faults still armed, e.g. {"kms_sign_throttle": 2}
   Unknown fields or a bad value -> HTTP 400 {"error": "..."}. moto's own /moto-api/ (e.g. reset) still works.

4. A record of the API operations called, per access key id (for the least-privilege test, tests/deploy):
     GET  /_ledgix/calls?access_key=AKID   [{"service": "kms", "operation": "Sign", "count": 3}, ...]
     POST /_ledgix/calls  {"reset": true}  forgets everything recorded
   The access key id and service come from the SigV4 credential scope; the operation from X-Amz-Target (the JSON
   protocols: DynamoDB, KMS, Secrets Manager, SQS) or, for S3's REST protocol, from the method, key and
   subresource, for Bedrock Runtime (6) from the path, and for SES v2 (restJson1, signed as service `ses`) from the
   method and path as botocore's sesv2 API model routes them (POST /v2/email/outbound-emails SendEmail, POST
   /v2/email/identities CreateEmailIdentity, GET /v2/email/identities/{id} GetEmailIdentity, ...; IAM: ses:<name>).
   A request the recorder cannot name is recorded as "unrecognised <METHOD> <path>?<query>", so a test comparing
   operations fails rather than miss it.

5. DynamoDB requests are applied one at a time. In DynamoDB a write to an item is atomic: a condition
   expression is evaluated and the write applied as one step, so of concurrent conditional writes each sees
   the item as the previous one left it ("Condition expressions", DynamoDB Developer Guide). moto's server
   runs requests on threads and checks the condition, then writes, with no lock, so two threads could both
   pass a condition only one should (two `SET n = n + 1` if `n < 1` both applied). Serialising DynamoDB's
   operations (X-Amz-Target DynamoDB_20120810.*) gives each request the atomicity AWS promises per item, and
   more; other services are untouched.

6. Bedrock Runtime, the judge's model service, answered by a scripted model (scripted_model.py: its rules, request
   log, token counts and embeddings; scripted over HTTP on this port, /_ledgix/model/script and
   /_ledgix/model/requests). moto 5.2.5's bedrock-runtime is a stub, so this is WSGI middleware in front of moto,
   for requests whose SigV4 credential scope names the service `bedrock` (aws-sdk-bedrockruntime and boto3's
   bedrock-runtime sign so) on these restJson1 paths of the API model (botocore's bedrock-runtime service-2.json):
     POST /model/{modelId}/converse   Converse
     POST /model/{modelId}/invoke     InvokeModel
   modelId (URL-encoded) is a model id of the Nova, Titan, Claude or Llama families (versioned, -vN[:N]), such as
   amazon.nova-pro-v1:0; an inference-profile id (us., eu., apac., global. before a chat model's id); or a bedrock
   ARN (foundation-model, inference-profile, application-inference-profile, provisioned-model, ...). Anything else:
   ValidationException "The provided model identifier is invalid."
   - Converse is validated as Bedrock does: messages present, first role user, roles alternating, no empty content
     or blank text; system a list of {"text"}; inferenceConfig's ranges; toolConfig.tools non-empty, each toolSpec
     with a name ([a-zA-Z0-9_-]{1,64}, unique) and inputSchema {"json": {...}}; toolConfig.toolChoice.tool.name
     naming a defined tool; toolUse/toolResult blocks need a toolConfig; an embedding model is refused. The prompt
     the rules match is the system text blocks and the user messages' text blocks, joined with "\n". The answer:
     with a toolConfig, content [{"toolUse": {"toolUseId": "tooluse_...", "name": <the forced tool, else the
     first>, "input": <the reply>}}] and stopReason tool_use; with a "text" rule or no toolConfig, content
     [{"text": <the text, or the reply's JSON>}] and stopReason end_turn; always usage {inputTokens, outputTokens,
     totalTokens} and metrics {latencyMs}.
   - InvokeModel serves Titan Text Embeddings V2 (amazon.titan-embed-text-v2:0, or its foundation-model ARN):
     body {"inputText": 1..50,000 characters, "dimensions": 256|512|1024 (default 1024), "normalize": bool (default
     true), "embeddingTypes": ["float"|"binary"] (optional)} -> {"embedding": [...], "inputTextTokenCount": n}
     (+ "embeddingsByType" when asked), Content-Type application/json, headers X-Amzn-Bedrock-Input-Token-Count and
     X-Amzn-Bedrock-Invocation-Latency. A malformed body: ValidationException "Malformed input request: #...,
     please reformat your input and try again." Another model: ValidationException (the vault embeds only).
   - ConverseStream / InvokeModelWithResponseStream are not emulated (ValidationException saying so).
   - Errors are restJson1's: the status of the error shape in the API model, header
     x-amzn-ErrorType: <Name>:http://internal.amazon.com/coral/com.amazon.bedrock/, body {"message": "..."}.
     Scripted failures: throttle -> 429 ThrottlingException "Too many requests, please wait before trying again.";
     timeout -> 408 ModelTimeoutException; validation -> 400 ValidationException; unavailable -> 503
     ServiceUnavailableException; hang -> the answer, delay_seconds (default 30) late.
   The call recorder (4) names them Converse and InvokeModel (service bedrock; IAM: bedrock:InvokeModel covers
   both). They are not applied under the DynamoDB lock (5), and a hang holds up no other request.

7. The emails moto's SES accepted (SES v1 and v2 share its backend; not an AWS API):
     GET  /_ledgix/ses/messages?region=R[&account=A]
       [{"id": "...", "source": "vault@alerts.example.com", "destinations": {"ToAddresses": [...]},
         "subject": "...", "body": "..."}, ...]   oldest first
   region defaults to AWS_DEFAULT_REGION, else us-east-1; account to 123456789012 (moto's default account). A raw
   message also has "raw" (its subject and text body parsed from it; destinations a list), a templated one
   "template" and "template_data". moto's own check applies when sending: SendEmail from an address that is not a
   verified identity, nor at a verified domain, fails with MessageRejected (HTTP 400), as SES refuses it
   (recipients are not checked: the sandbox's rule for them is not emulated).
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http import HTTPStatus
from importlib.metadata import version
from pathlib import Path

import botocore.session
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from moto.core.exceptions import JsonRESTError
from moto.kms import models as kms_models
from moto.kms import responses as kms_responses
from moto.kms.exceptions import ValidationException
from moto.kms.utils import AbstractPrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripted_model.py, beside this file
from scripted_model import ScriptedModel, embedding, tokens  # noqa: E402

ED25519_SPEC = "ECC_NIST_EDWARDS25519"
ED25519_SHA_512 = "ED25519_SHA_512"
ED25519_PH_SHA_512 = "ED25519_PH_SHA_512"
ED25519_ALGORITHMS = [ED25519_SHA_512, ED25519_PH_SHA_512]
MAX_MESSAGE_BYTES = 4096  # the Message member's length constraint in the KMS API model

# The enums of the KMS API model, from the botocore that moto already depends on: a value outside them is a
# ValidationException (a model constraint), a value inside them but wrong for the key is InvalidKeyUsageException.
_KMS_MODEL = botocore.session.get_session().get_service_model("kms")
SIGNING_ALGORITHMS = _KMS_MODEL.shape_for("SigningAlgorithmSpec").enum
MESSAGE_TYPES = _KMS_MODEL.shape_for("MessageType").enum


def kms_error(code: str, message: str) -> JsonRESTError:
    """A KMS error in AWS's JSON shape ({"__type": code, "message": ...}), HTTP 400."""
    return JsonRESTError(code, message)


class Ed25519Key(AbstractPrivateKey):
    """moto's private-key interface (moto.kms.utils.AbstractPrivateKey) for an Ed25519 key."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        return self.key.sign(message)  # pure Ed25519 (RFC 8032): the 64-byte R || S

    def verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        try:
            self.key.public_key().verify(signature, message)
            return True
        except InvalidSignature:
            return False

    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(
            encoding=serialization.Encoding.DER, format=serialization.PublicFormat.SubjectPublicKeyInfo)


def patch_kms_models() -> None:
    """Key creation and metadata: moto.kms.models."""
    backend = kms_models.KmsBackend

    # models.Key.__init__ calls the module-level generate_private_key(key_spec).
    original_generate = kms_models.generate_private_key
    kms_models.generate_private_key = lambda spec: Ed25519Key() if spec == ED25519_SPEC else original_generate(spec)

    # DescribeKey / GetPublicKey / Sign read Key.signing_algorithms.
    original_algorithms = kms_models.Key.signing_algorithms.fget
    kms_models.Key.signing_algorithms = property(
        lambda key: list(ED25519_ALGORITHMS) if key.key_spec == ED25519_SPEC else original_algorithms(key))

    # create_key validates the spec with a private (name-mangled) helper against moto's own KeySpec enum.
    original_check_spec = backend._KmsBackend__ensure_valid_key_spec

    def ensure_valid_key_spec(self, key_spec: str) -> None:
        if key_spec != ED25519_SPEC:
            original_check_spec(self, key_spec)

    backend._KmsBackend__ensure_valid_key_spec = ensure_valid_key_spec

    original_create_key = backend.create_key

    def create_key(self, policy, key_usage, key_spec, *args, **kwargs):
        if key_spec == ED25519_SPEC and key_usage != "SIGN_VERIFY":
            # AWS defaults KeyUsage to ENCRYPT_DECRYPT, which no ECC key spec supports.
            raise ValidationException(
                f"KeyUsage {key_usage or 'ENCRYPT_DECRYPT'} is not compatible with KeySpec {ED25519_SPEC}; "
                "it supports SIGN_VERIFY only")
        return original_create_key(self, policy, key_usage, key_spec, *args, **kwargs)

    backend.create_key = create_key


def patch_kms_responses() -> None:
    """Sign, Verify, GetPublicKey and the usage checks: moto.kms.responses.KmsResponse."""
    response = kms_responses.KmsResponse

    def ed25519_key(self):
        """The request's key if it is an Ed25519 key (NotFoundException if there is none), else None."""
        key_id = self._get_param("KeyId")
        self._validate_key_id(key_id)  # NotFoundException, as moto answers it for every key
        key = self.kms_backend.describe_key(key_id)  # accepts key ids, ARNs, alias names and alias ARNs
        return key if key.key_spec == ED25519_SPEC else None

    def checked_request(self, key) -> bytes:
        """Apply AWS's Sign/Verify rules for an Ed25519 key; return the message bytes."""
        message = self._get_param("Message") or b""  # KmsResponse._get_param base64-decodes Message
        algorithm = self._get_param("SigningAlgorithm")
        message_type = self._get_param("MessageType") or "RAW"
        if not 1 <= len(message) <= MAX_MESSAGE_BYTES:
            raise ValidationException(
                "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have "
                f"length {'greater than or equal to 1' if not message else f'less than or equal to {MAX_MESSAGE_BYTES}'}")
        if algorithm not in SIGNING_ALGORITHMS:
            raise ValidationException(
                f"1 validation error detected: Value '{algorithm}' at 'signingAlgorithm' failed to satisfy "
                f"constraint: Member must satisfy enum value set: {SIGNING_ALGORITHMS}")
        if message_type not in MESSAGE_TYPES:
            raise ValidationException(
                f"1 validation error detected: Value '{message_type}' at 'messageType' failed to satisfy "
                f"constraint: Member must satisfy enum value set: {MESSAGE_TYPES}")
        if key.key_state == "Disabled":
            raise kms_error("DisabledException", f"{key.arn} is disabled.")
        if key.key_state != "Enabled":
            raise kms_error("KMSInvalidStateException", f"{key.arn} is {key.key_state.lower()}.")
        if algorithm not in ED25519_ALGORITHMS:
            raise kms_error("InvalidKeyUsageException",
                            f"You cannot use the signing algorithm {algorithm} with KMS key {key.arn} "
                            f"(KeySpec {ED25519_SPEC}); it supports {ED25519_ALGORITHMS}")
        if algorithm == ED25519_SHA_512 and message_type != "RAW":
            raise ValidationException(f"{ED25519_SHA_512} requires MessageType RAW, not {message_type}")
        if algorithm == ED25519_PH_SHA_512:
            raise ValidationException(
                f"{ED25519_PH_SHA_512} requires MessageType DIGEST; Ed25519ph is not emulated by this test server")
        return message

    original_sign = response.sign

    def sign(self) -> str:
        key = ed25519_key(self)
        if key is None:
            return original_sign(self)
        message = checked_request(self, key)
        signature = key.private_key.sign(message, ED25519_SHA_512)
        return json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(),
                           "SigningAlgorithm": ED25519_SHA_512})

    original_verify = response.verify

    def verify(self) -> str:
        key = ed25519_key(self)
        if key is None:
            return original_verify(self)
        message = checked_request(self, key)
        signature = base64.b64decode(self._get_param("Signature") or "")
        if not signature:
            raise ValidationException("1 validation error detected: Value at 'signature' failed to satisfy "
                                      "constraint: Member must have length greater than or equal to 1")
        if not key.private_key.verify(message, signature, ED25519_SHA_512):
            raise kms_error("KMSInvalidSignatureException", "")
        return json.dumps({"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": ED25519_SHA_512})

    original_get_public_key = response.get_public_key

    def get_public_key(self) -> str:
        body = json.loads(original_get_public_key(self))
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        body.update(KeyId=key.arn, KeySpec=key.key_spec)
        return json.dumps({name: value for name, value in body.items() if value is not None})

    def sign_verify_only(original):
        def guarded(self) -> str:
            if ed25519_key(self) is not None:
                raise kms_error("InvalidKeyUsageException",
                                f"KMS key {self._get_param('KeyId')} has KeyUsage SIGN_VERIFY")
            return original(self)
        return guarded

    response.sign = sign
    response.verify = verify
    response.get_public_key = get_public_key
    for name in ("encrypt", "generate_data_key", "generate_data_key_without_plaintext"):
        setattr(response, name, sign_verify_only(getattr(response, name)))


class Faults:
    """The faults armed through /_ledgix/faults, shared by the server's request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kms_sign_throttle = 0

    def state(self) -> dict:
        return {"kms_sign_throttle": self.kms_sign_throttle}

    def apply(self, body: object) -> None:
        if not isinstance(body, dict) or set(body) - {"reset", "kms_sign_throttle"}:
            raise ValueError('expected {"kms_sign_throttle": N} and/or {"reset": true}')
        throttle = body.get("kms_sign_throttle", 0)
        if type(throttle) is not int or throttle < 0:
            raise ValueError("kms_sign_throttle must be a non-negative integer")
        with self.lock:
            if body.get("reset"):
                self.kms_sign_throttle = 0
            if "kms_sign_throttle" in body:
                self.kms_sign_throttle = throttle

    def take_kms_sign_throttle(self) -> bool:
        with self.lock:
            if self.kms_sign_throttle > 0:
                self.kms_sign_throttle -= 1
                return True
            return False


_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/aws4_request")

# (subresource present, method, object key present) -> S3 API operation; the first match wins.
_S3_OPERATIONS = [
    ("versioning", "GET", False, "GetBucketVersioning"),
    ("object-lock", "GET", False, "GetObjectLockConfiguration"),
    ("policy", "GET", False, "GetBucketPolicy"),
    ("policy", "PUT", False, "PutBucketPolicy"),
    ("retention", "GET", True, "GetObjectRetention"),
    ("retention", "PUT", True, "PutObjectRetention"),
    ("versions", "GET", False, "ListObjectVersions"),
    ("delete", "POST", False, "DeleteObjects"),
    (None, "GET", True, "GetObject"),
    (None, "HEAD", True, "HeadObject"),
    (None, "PUT", True, "PutObject"),
    (None, "DELETE", True, "DeleteObject"),
    (None, "GET", False, "ListObjectsV2"),
    (None, "HEAD", False, "HeadBucket"),
]


# SES v2 (restJson1, signed with the service `ses`): (method, path regex, operation) from the sesv2 API model of the
# pinned botocore, e.g. POST /v2/email/outbound-emails -> SendEmail, GET /v2/email/identities/{EmailIdentity} ->
# GetEmailIdentity. Routes with fewer labels first, so a literal path wins over a label.
_SESV2_MODEL = botocore.session.get_session().get_service_model("sesv2")


def _uri_regex(uri: str) -> re.Pattern:
    pattern = re.escape(uri.split("?", 1)[0])
    pattern = re.sub(r"\\\{\w+\\\+\\\}", ".+", pattern)  # {Key+}: greedy, slashes included
    return re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", pattern))


_SESV2_OPERATIONS = [
    (op.http["method"], _uri_regex(op.http["requestUri"]), op.name)
    for op in sorted(map(_SESV2_MODEL.operation_model, _SESV2_MODEL.operation_names),
                     key=lambda op: op.http["requestUri"].count("{"))]


def _sesv2_operation(method: str, path: str) -> str | None:
    return next((name for m, regex, name in _SESV2_OPERATIONS if m == method and regex.fullmatch(path)), None)


def _s3_operation(method: str, path: str, query: str) -> str | None:
    has_key = len([p for p in path.lstrip("/").split("/", 1) if p]) == 2
    subresources = {part.split("=", 1)[0] for part in query.split("&") if part}
    for subresource, op_method, needs_key, operation in _S3_OPERATIONS:
        if op_method == method and needs_key == has_key and (subresource is None or subresource in subresources):
            if subresource is None and subresources & {"versioning", "object-lock", "policy", "retention",
                                                       "versions", "delete", "acl", "tagging", "lifecycle"}:
                continue
            return operation
    return None


class Calls:
    """API operations called, counted per (access key id, service, operation)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str, str], int] = {}

    def record(self, environ) -> None:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        access_key, service = match.groups() if match else ("anonymous", "unsigned")
        method, path, query = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        target = environ.get("HTTP_X_AMZ_TARGET")
        if target:
            operation = target.rsplit(".", 1)[-1]
        elif service == "s3":
            operation = _s3_operation(method, path, query)
        elif service == "bedrock":
            route = _bedrock_route(environ) if method == "POST" else None
            operation = route[0] if route else None
        elif service == "ses" and path.startswith("/v2/"):
            operation = _sesv2_operation(method, path)
        else:
            operation = None
        operation = operation or f"unrecognised {method} {path}?{query}"
        with self.lock:
            key = (access_key, service, operation)
            self.counts[key] = self.counts.get(key, 0) + 1

    def of(self, access_key: str) -> list[dict]:
        with self.lock:
            return [{"service": s, "operation": o, "count": n}
                    for (k, s, o), n in sorted(self.counts.items()) if k == access_key]

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()


def _read_body(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _respond(start_response, status: str, body: bytes, content_type: str, extra=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra])
    return [body]


def _is_s3_get(environ, subresource: str) -> bool:
    return (environ.get("REQUEST_METHOD") == "GET"
            and re.search(rf"(^|&){subresource}(=|&|$)", environ.get("QUERY_STRING", "")) is not None
            and "/s3/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""))


def _rewrite_s3(body: bytes, subresource: str) -> bytes:
    if subresource == "versioning":
        return re.sub(rb"<(/?)GetBucketVersioningResponse\b", rb"<\1VersioningConfiguration", body)
    # object-lock: S3 returns only the retention period that was set.
    return re.sub(rb"<(Days|Years)>0</\1>", b"", body)


# --- 6. Bedrock Runtime: Converse and InvokeModel, answered by the scripted model (scripted_model.py) -----------------

# The error names and HTTP statuses of the bedrock-runtime API model in the pinned botocore (restJson1).
_BEDROCK_MODEL = botocore.session.get_session().get_service_model("bedrock-runtime")
BEDROCK_ERROR_STATUS = {shape.name: shape.metadata["error"]["httpStatusCode"]
                        for shape in _BEDROCK_MODEL.operation_model("InvokeModel").error_shapes}
BEDROCK_ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
BEDROCK_OPERATIONS = {"converse": "Converse", "invoke": "InvokeModel", "converse-stream": "ConverseStream",
                      "invoke-with-response-stream": "InvokeModelWithResponseStream"}
_BEDROCK_PATH = re.compile(r"/model/(.+)/(converse|invoke|converse-stream|invoke-with-response-stream)")

# A scripted failure -> the Bedrock error it is answered with (hang is slept through by the scripted model).
BEDROCK_FAILURES = {
    "throttle": ("ThrottlingException", "Too many requests, please wait before trying again."),
    "timeout": ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    "validation": ("ValidationException", "Malformed input request, please reformat your input and try again."),
    "unavailable": ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}

# Model identifiers the emulator knows: the Nova, Titan, Claude and Llama families (always versioned: -vN[:N]),
# optionally behind a cross-region inference-profile prefix, or as a Bedrock ARN.
_FOUNDATION_MODEL = re.compile(
    r"(?:amazon\.(?:nova|titan)-[a-z0-9.-]+?|anthropic\.claude(?:-[a-z0-9.-]+?)?|meta\.llama[a-z0-9.-]+?)"
    r"-v\d+(?::\d+)?(?::[a-z0-9]+)?")
_PROFILE_PREFIX = re.compile(r"(?:us|eu|apac|global)\.")
_BEDROCK_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:bedrock:[a-z0-9-]{1,20}:(\d{12})?:([a-z-]+)/(.+)")
TITAN_EMBED_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)
TITAN_V2_MAX_CHARS = 50_000
INVALID_MODEL = "The provided model identifier is invalid."


class BedrockError(Exception):
    """A Bedrock Runtime error: its name (a shape of the API model) and message."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name, self.message = name, message


def _bedrock_model_kind(name: str, profile: bool | None) -> tuple[str, str] | None:
    """("chat" | "embedding", base model id) of a model id or inference-profile id; None if unknown.
    profile: True it must be an inference profile, False it must not, None either."""
    prefix = _PROFILE_PREFIX.match(name)
    if (prefix and profile is False) or (not prefix and profile):
        return None
    base = name[prefix.end():] if prefix else name
    if not _FOUNDATION_MODEL.fullmatch(base):
        return None
    if "embed" in base:
        # No cross-region inference profile serves an embedding model.
        return None if prefix else ("embedding", base)
    return "chat", base


def bedrock_model(model_id: str) -> tuple[str, str]:
    """("chat" | "embedding", base model id) of a Converse/InvokeModel modelId, or ValidationException."""
    arn = _BEDROCK_ARN.fullmatch(model_id)
    if arn is None:
        kind = _bedrock_model_kind(model_id, None)
    else:
        account, resource, name = arn.groups()
        if resource == "foundation-model" and account is None:
            kind = _bedrock_model_kind(name, False)
        elif resource == "inference-profile" and account:
            kind = _bedrock_model_kind(name, True)
        elif resource in ("application-inference-profile", "provisioned-model", "imported-model",
                          "custom-model-deployment") and account and re.fullmatch(r"[a-z0-9]{12}", name):
            kind = ("chat", model_id)  # the model behind it is the account's business; a chat model here
        else:
            kind = None
    if kind is None:
        raise BedrockError("ValidationException", INVALID_MODEL)
    return kind


def _bedrock_route(environ) -> tuple[str, str] | None:
    """(operation, model id) of a request to a Bedrock Runtime path, else None. The model id is a URL-encoded
    path label (an ARN's "/" arrives as %2F), so it is read from the raw request URI."""
    raw = (environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").split("?", 1)[0]
    if "://" in raw:  # absolute-form request target
        raw = "/" + raw.split("://", 1)[1].partition("/")[2]
    match = _BEDROCK_PATH.fullmatch(raw)
    if match:
        return BEDROCK_OPERATIONS[match.group(2)], urllib.parse.unquote(match.group(1))
    match = _BEDROCK_PATH.fullmatch(environ.get("PATH_INFO", ""))
    return (BEDROCK_OPERATIONS[match.group(2)], match.group(1)) if match else None


def _is_bedrock(environ) -> bool:
    credential = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    return credential is not None and credential.group(2) == "bedrock"


def _union_member(value, where: str, members: tuple[str, ...]) -> str:
    """The one member set in a union structure (as AWS requires), or ValidationException."""
    if not isinstance(value, dict):
        raise BedrockError("ValidationException", f"{where} must be a structure")
    present = [name for name in value if value[name] is not None]
    if len(present) != 1 or present[0] not in members:
        raise BedrockError("ValidationException",
                           f"{where} must set exactly one of {list(members)}, not {present or 'none'}")
    return present[0]


def _nonblank_text(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BedrockError("ValidationException",
                           f"The text field in the ContentBlock object at {where} is blank. Add text to the text "
                           "field, and try again.")
    return value


_CONTENT_BLOCKS = ("text", "image", "document", "video", "audio", "toolUse", "toolResult", "guardContent",
                   "cachePoint", "reasoningContent", "citationsContent", "searchResult")


def converse_request(request: object) -> tuple[str, list[str], str | None]:
    """Validate a Converse request as Bedrock does; return (prompt text, tool names, the tool to answer with)."""
    if not isinstance(request, dict):
        raise BedrockError("ValidationException", "Malformed input request, please reformat your input and try again.")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BedrockError("ValidationException",
                           "A conversation must start with a user message. Try again with a conversation that "
                           "starts with a user message.")
    system_texts, user_texts, uses_tools = [], [], False
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise BedrockError("ValidationException",
                               f"Value at 'messages.{i + 1}.member.role' failed to satisfy constraint: Member must "
                               "satisfy enum value set: [user, assistant]")
        expected = "user" if i % 2 == 0 else "assistant"
        if i == 0 and message["role"] != "user":
            raise BedrockError("ValidationException",
                               "A conversation must start with a user message. Try again with a conversation that "
                               "starts with a user message.")
        if message["role"] != expected:
            raise BedrockError("ValidationException",
                               "A conversation must alternate between user and assistant roles. Make sure the "
                               "conversation alternates between user and assistant roles and try again.")
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise BedrockError("ValidationException",
                               f"The content field in the Message object at messages.{i} is empty. Add a "
                               "ContentBlock object to the content field and try again.")
        for j, block in enumerate(content):
            kind = _union_member(block, f"messages.{i}.content.{j}", _CONTENT_BLOCKS)
            if kind == "text":
                text = _nonblank_text(block["text"], f"messages.{i}.content.{j}")
                if message["role"] == "user":
                    user_texts.append(text)
            uses_tools |= kind in ("toolUse", "toolResult")
    system = request.get("system")
    if system is not None:
        if not isinstance(system, list):
            raise BedrockError("ValidationException", "system must be a list of SystemContentBlock")
        for k, block in enumerate(system):
            if _union_member(block, f"system.{k}", ("text", "guardContent", "cachePoint")) == "text":
                system_texts.append(_nonblank_text(block["text"], f"system.{k}"))
    _check_inference_config(request.get("inferenceConfig"))
    tool_config = request.get("toolConfig")
    if tool_config is None:
        if uses_tools:
            raise BedrockError("ValidationException",
                               "The toolConfig field must be defined when using toolUse and toolResult content "
                               "blocks.")
        return "\n".join(system_texts + user_texts), [], None
    tools, forced = _tool_config(tool_config)
    return "\n".join(system_texts + user_texts), tools, forced


def _check_inference_config(config) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise BedrockError("ValidationException", "inferenceConfig must be a structure")
    limits = {"maxTokens": (1, None), "temperature": (0, 1), "topP": (0, 1)}
    for name, (low, high) in limits.items():
        value = config.get(name)
        if value is None:
            continue
        if type(value) not in (int, float) or (name == "maxTokens" and type(value) is not int):
            raise BedrockError("ValidationException", f"inferenceConfig.{name} must be a number")
        if value < low or (high is not None and value > high):
            bound = (f"greater than or equal to {low}" if value < low else f"less than or equal to {high}")
            raise BedrockError("ValidationException",
                               f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' failed to "
                               f"satisfy constraint: Member must have value {bound}")


def _tool_config(config) -> tuple[list[str], str | None]:
    """The tool names of a toolConfig and the tool the model answers with: the forced one, else the first."""
    if not isinstance(config, dict) or not isinstance(config.get("tools"), list) or not config["tools"]:
        raise BedrockError("ValidationException",
                           "1 validation error detected: Value at 'toolConfig.tools' failed to satisfy constraint: "
                           "Member must have length greater than or equal to 1")
    names = []
    for i, tool in enumerate(config["tools"]):
        if _union_member(tool, f"toolConfig.tools.{i}", ("toolSpec", "systemTool", "cachePoint")) != "toolSpec":
            continue
        spec = tool["toolSpec"]
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name):
            raise BedrockError("ValidationException",
                               f"1 validation error detected: Value '{name}' at 'toolConfig.tools.{i + 1}.member."
                               "toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression "
                               "pattern: [a-zA-Z0-9_-]+")
        description = spec.get("description")
        if description is not None and (not isinstance(description, str) or not description):
            raise BedrockError("ValidationException",
                               f"toolConfig.tools.{i}.toolSpec.description must be a non-empty string")
        schema = spec.get("inputSchema")
        if _union_member(schema, f"toolConfig.tools.{i}.toolSpec.inputSchema", ("json",)) and not isinstance(
                schema["json"], dict):
            raise BedrockError("ValidationException",
                               f"toolConfig.tools.{i}.toolSpec.inputSchema.json must be a JSON object")
        if name in names:
            raise BedrockError("ValidationException",
                               f"The toolConfig.tools field has more than one tool named {name}. Tool names must be "
                               "unique.")
        names.append(name)
    choice = config.get("toolChoice")
    if choice is None:
        return names, names[0] if names else None
    if _union_member(choice, "toolConfig.toolChoice", ("auto", "any", "tool")) != "tool":
        return names, names[0] if names else None
    forced = choice["tool"].get("name") if isinstance(choice["tool"], dict) else None
    if forced not in names:
        raise BedrockError("ValidationException",
                           f"The tool {forced} in toolConfig.toolChoice.tool.name isn't defined in toolConfig.tools. "
                           "Define the tool, or specify a tool that is defined, and try again.")
    return names, forced


def _titan_malformed(detail: str) -> BedrockError:
    return BedrockError("ValidationException",
                        f"Malformed input request: {detail}, please reformat your input and try again.")


def titan_embedding_request(body: bytes) -> tuple[str, int, bool, list[str] | None]:
    """Validate a Titan Text Embeddings V2 InvokeModel body: (inputText, dimensions, normalize, embeddingTypes)."""
    try:
        request = json.loads(body)
    except ValueError:
        raise _titan_malformed("expected a JSON object") from None
    if not isinstance(request, dict):
        raise _titan_malformed(f"#: expected type: JSONObject, found: {type(request).__name__}")
    extra = set(request) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
    if extra:
        raise _titan_malformed(f"#: extraneous key [{sorted(extra)[0]}] is not permitted")
    text = request.get("inputText")
    if "inputText" not in request:
        raise _titan_malformed("#: required key [inputText] not found")
    if not isinstance(text, str):
        raise _titan_malformed("#/inputText: expected type: String")
    if not 1 <= len(text) <= TITAN_V2_MAX_CHARS:
        expected = "minLength: 1" if not text else f"maxLength: {TITAN_V2_MAX_CHARS}"
        raise _titan_malformed(f"#/inputText: expected {expected}, actual: {len(text)}")
    dimensions = request.get("dimensions", 1024)
    if type(dimensions) is not int or dimensions not in TITAN_V2_DIMENSIONS:
        raise _titan_malformed(f"#/dimensions: {dimensions} is not a valid enum value")
    normalize = request.get("normalize", True)
    if type(normalize) is not bool:
        raise _titan_malformed("#/normalize: expected type: Boolean")
    types = request.get("embeddingTypes")
    if types is not None and (not isinstance(types, list) or not types
                              or any(t not in ("float", "binary") for t in types)):
        raise _titan_malformed("#/embeddingTypes: expected a non-empty subset of [float, binary]")
    return text, dimensions, normalize, types


def _bedrock_response(start_response, body: dict, extra=()):
    data = json.dumps(body).encode()
    return _respond(start_response, "200 OK", data, "application/json",
                    [("x-amzn-RequestId", str(uuid.uuid4())), *extra])


def _bedrock_error(start_response, error: BedrockError):
    status = BEDROCK_ERROR_STATUS[error.name]
    return _respond(start_response, f"{status} {HTTPStatus(status).phrase}",
                    json.dumps({"message": error.message}).encode(), "application/json",
                    [("x-amzn-RequestId", str(uuid.uuid4())),
                     ("x-amzn-ErrorType", f"{error.name}:{BEDROCK_ERROR_NAMESPACE}")])


def _bedrock_call(model: ScriptedModel, operation: str, model_id: str, environ) -> tuple[dict, list]:
    """Serve a Converse or InvokeModel request: (response body, extra headers), or BedrockError."""
    body = _read_body(environ)
    if operation not in ("Converse", "InvokeModel"):
        raise BedrockError("ValidationException", f"{operation} is not emulated by this test server")
    kind, base = bedrock_model(model_id)
    started = time.monotonic()
    if operation == "Converse":
        if kind != "chat":
            raise BedrockError("ValidationException",
                               "This action doesn't support the model that you provided. Try again with a supported "
                               "text or chat model.")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise BedrockError("ValidationException",
                               "Malformed input request, please reformat your input and try again.") from None
        prompt, tools, tool = converse_request(request)
        outcome = model.call("converse", model_id, prompt, request)
        if outcome.fail:
            raise BedrockError(*BEDROCK_FAILURES[outcome.fail])
        if outcome.text is not None or tool is None:
            content, stop = [{"text": outcome.answer}], "end_turn"
        else:
            tool_use_id = "tooluse_" + secrets.token_urlsafe(16)[:22]
            content, stop = [{"toolUse": {"toolUseId": tool_use_id, "name": tool, "input": outcome.reply}}], "tool_use"
        latency = max(1, round((time.monotonic() - started) * 1000))
        return {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop,
                "usage": {"inputTokens": outcome.input_tokens, "outputTokens": outcome.output_tokens,
                          "totalTokens": outcome.input_tokens + outcome.output_tokens},
                "metrics": {"latencyMs": latency}}, []

    if base != TITAN_EMBED_V2:
        raise BedrockError("ValidationException",
                           f"This test server's InvokeModel serves {TITAN_EMBED_V2} only, not {model_id}")
    content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type not in ("", "application/json", "*/*"):
        raise BedrockError("ValidationException", f"Content type {content_type} is not supported by this model. "
                                                  "Use application/json.")
    text, dimensions, normalize, types = titan_embedding_request(body)
    outcome = model.call("invoke_model", model_id, text, json.loads(body), embedding_call=True)
    if outcome.fail:
        raise BedrockError(*BEDROCK_FAILURES[outcome.fail])
    vector = embedding(text, dimensions, normalize)
    count = tokens(text)
    answer: dict = {"embedding": vector, "inputTextTokenCount": count}
    if types is not None:
        answer["embeddingsByType"] = {t: vector if t == "float" else [1 if x > 0 else 0 for x in vector]
                                      for t in types}
    latency = max(1, round((time.monotonic() - started) * 1000))
    return answer, [("X-Amzn-Bedrock-Input-Token-Count", str(count)),
                    ("X-Amzn-Bedrock-Invocation-Latency", str(latency))]


def _serve_bedrock(model: ScriptedModel, route: tuple[str, str], environ, start_response):
    operation, model_id = route
    if environ.get("REQUEST_METHOD") != "POST":
        _read_body(environ)
        body = json.dumps({"message": f"No operation matches {environ.get('REQUEST_METHOD')} on this path"})
        return _respond(start_response, "404 Not Found", body.encode(), "application/json",
                        [("x-amzn-RequestId", str(uuid.uuid4())),
                         ("x-amzn-ErrorType", f"UnknownOperationException:{BEDROCK_ERROR_NAMESPACE}")])
    try:
        body, headers = _bedrock_call(model, operation, model_id, environ)
    except BedrockError as error:
        return _bedrock_error(start_response, error)
    return _bedrock_response(start_response, body, headers)


# --- 7. SES: the messages moto accepted -------------------------------------------------------------------------------

SES_DEFAULT_ACCOUNT = "123456789012"  # moto's account for access keys it does not map to another


def ses_messages(account: str, region: str) -> list[dict]:
    """The messages moto's SES backend (shared by SES v1 and v2) accepted in `region`, oldest first."""
    from moto.ses.models import RawMessage, ses_backends

    answer = []
    for message in list(ses_backends[account][region].sent_messages):
        entry = {"id": getattr(message, "id", None) or getattr(message, "ids", None), "source": message.source,
                 "destinations": message.destinations, "subject": getattr(message, "subject", None),
                 "body": getattr(message, "body", None)}
        if isinstance(message, RawMessage):
            parsed = email.message_from_string(message.raw_data, policy=email.policy.default)
            text = parsed.get_body(preferencelist=("plain", "html"))
            entry.update(subject=parsed["subject"], body=text.get_content() if text else None, raw=message.raw_data)
        elif hasattr(message, "template"):
            entry.update(template=message.template, template_data=message.template_data)
        answer.append(entry)
    return answer


def ledgix_middleware(app, faults: Faults, calls: Calls, model: ScriptedModel | None = None):
    """WSGI middleware: the fault, call-record, SES message and scripted-model endpoints, the throttling fault,
    Bedrock Runtime, the S3 response fixes and one-at-a-time DynamoDB requests."""
    dynamodb = threading.Lock()
    model = model if model is not None else ScriptedModel()

    def wrapped(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")

        if path == "/_ledgix/calls":
            if method == "POST":
                calls.reset()
                _read_body(environ)
                return _respond(start_response, "200 OK", b"[]", "application/json")
            access_key = re.search(r"(?:^|&)access_key=([^&]*)", environ.get("QUERY_STRING", ""))
            body = json.dumps(calls.of(access_key.group(1) if access_key else "")).encode()
            return _respond(start_response, "200 OK", body, "application/json")
        if not path.startswith("/_ledgix/") and not path.startswith("/moto-api"):
            calls.record(environ)

        if path == "/_ledgix/faults":
            if method == "GET":
                return _respond(start_response, "200 OK", json.dumps(faults.state()).encode(), "application/json")
            if method != "POST":
                return _respond(start_response, "405 Method Not Allowed", b'{"error": "use GET or POST"}',
                                "application/json", [("Allow", "GET, POST")])
            try:
                faults.apply(json.loads(_read_body(environ) or b"{}"))
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                return _respond(start_response, "400 Bad Request", json.dumps({"error": str(e)}).encode(),
                                "application/json")
            return _respond(start_response, "200 OK", json.dumps(faults.state()).encode(), "application/json")

        if path == "/_ledgix/ses/messages":
            _read_body(environ)
            if method != "GET":
                return _respond(start_response, "405 Method Not Allowed", b'{"error": "use GET"}',
                                "application/json", [("Allow", "GET")])
            query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            region = query.get("region", [os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"])[0]
            account = query.get("account", [SES_DEFAULT_ACCOUNT])[0]
            if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", region) or not re.fullmatch(r"\d{12}", account):
                return _respond(start_response, "400 Bad Request",
                                b'{"error": "region must be a region name, account 12 digits"}', "application/json")
            body = json.dumps(ses_messages(account, region)).encode()
            return _respond(start_response, "200 OK", body, "application/json")

        if path.startswith("/_ledgix/model/"):
            answer = model.control(method, path, _read_body(environ))
            if answer is None:
                return _respond(start_response, "404 Not Found", b'{"error": "no such control path"}',
                                "application/json")
            status, payload = answer
            return _respond(start_response, f"{status} {HTTPStatus(status).phrase}", json.dumps(payload).encode(),
                            "application/json")

        if _is_bedrock(environ):  # served here, outside the DynamoDB lock; other bedrock paths go on to moto
            route = _bedrock_route(environ)
            if route is not None:
                return _serve_bedrock(model, route, environ, start_response)

        if environ.get("HTTP_X_AMZ_TARGET") == "TrentService.Sign" and faults.take_kms_sign_throttle():
            _read_body(environ)  # drain the request, so a keep-alive connection stays in step
            body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
            return _respond(start_response, "400 Bad Request", body, "application/x-amz-json-1.1",
                            [("x-amzn-RequestId", str(uuid.uuid4()))])

        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_20120810."):
            with dynamodb:  # moto answers with a complete body, so the whole request is inside the lock
                return list(app(environ, start_response))

        subresource = next((s for s in ("versioning", "object-lock") if _is_s3_get(environ, s)), None)
        if subresource is None:
            return app(environ, start_response)
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)
            return lambda data: None  # moto returns its body; it never uses write()

        body = _rewrite_s3(b"".join(app(environ, capture)), subresource)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], headers + [("Content-Length", str(len(body)))])
        return [body]

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description="moto server with Ledgix's extensions, on 127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port

    patch_kms_models()
    patch_kms_responses()
    # As moto's own server does (moto/server.py): the same app, handler and MOTO_PORT.
    os.environ.setdefault("MOTO_PORT", str(port))
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    model = ScriptedModel()
    app = ledgix_middleware(DomainDispatcherApplication(create_backend_app), Faults(), Calls(), model)
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(*_):  # shutdown() waits for serve_forever() to return, so it cannot run on the main thread
        model.stop()  # ends scripted hangs early
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"moto {version('moto')} with Ledgix extensions on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
