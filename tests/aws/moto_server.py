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
   subresource. A request the recorder cannot name is recorded as "unrecognised <METHOD> <path>?<query>", so a
   test comparing operations fails rather than miss it.

5. DynamoDB requests are applied one at a time. In DynamoDB a write to an item is atomic: a condition
   expression is evaluated and the write applied as one step, so of concurrent conditional writes each sees
   the item as the previous one left it ("Condition expressions", DynamoDB Developer Guide). moto's server
   runs requests on threads and checks the condition, then writes, with no lock, so two threads could both
   pass a condition only one should (two `SET n = n + 1` if `n < 1` both applied). Serialising DynamoDB's
   operations (X-Amz-Target DynamoDB_20120810.*) gives each request the atomicity AWS promises per item, and
   more; other services are untouched.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import threading
import uuid
from importlib.metadata import version

import botocore.session
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from moto.core.exceptions import JsonRESTError
from moto.kms import models as kms_models
from moto.kms import responses as kms_responses
from moto.kms.exceptions import ValidationException
from moto.kms.utils import AbstractPrivateKey

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
        else:
            operation = _s3_operation(method, path, query) if service == "s3" else None
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


def ledgix_middleware(app, faults: Faults, calls: Calls):
    """WSGI middleware: the fault and call-record endpoints, the throttling fault, the S3 response fixes and
    one-at-a-time DynamoDB requests."""
    dynamodb = threading.Lock()

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

    app = ledgix_middleware(DomainDispatcherApplication(create_backend_app), Faults(), Calls())
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(*_):  # shutdown() waits for serve_forever() to return, so it cannot run on the main thread
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
