"""The AWS emulator for Ledgix's tests: moto's server on loopback, with three small additions.

1. KMS key spec ECC_NIST_EDWARDS25519, which moto lacks, added as AWS documents it
   (https://docs.aws.amazon.com/kms/latest/developerguide/symm-asymm-choose-key-spec.html):
   - CreateKey accepts it with KeyUsage SIGN_VERIFY only;
   - DescribeKey / GetPublicKey report SigningAlgorithms [ED25519_SHA_512, ED25519_PH_SHA_512], and GetPublicKey
     returns KeySpec plus the 44-byte DER SubjectPublicKeyInfo;
   - Sign with ED25519_SHA_512 requires MessageType RAW (ED25519_PH_SHA_512 requires DIGEST, not emulated) and a
     message of at most 4096 bytes, and returns the 64-byte raw Ed25519 signature; Verify follows the same rules.
   GetPublicKey also returns `KeySpec` for every key (moto returns only the deprecated CustomerMasterKeySpec).
2. S3 GetBucketVersioning / GetObjectLockConfiguration answer with the root elements S3 uses
   (VersioningConfiguration, ObjectLockConfiguration); moto 5.2.5 names them GetBucketVersioningResponse etc.,
   which strict clients (aws-sdk-rust) reject.
3. Fault injection for failure tests: POST /_ledgix/faults {"kms_sign_throttle": N} makes the next N KMS Sign
   calls fail with ThrottlingException; {"reset": true} clears it.

Usage: python tests/aws/moto_server.py --port 5000   (binds 127.0.0.1; stops on SIGINT/SIGTERM)
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import signal
import sys
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.exceptions import InvalidSignature
from moto.kms import models as kms_models
from moto.kms import responses as kms_responses
from moto.kms import utils as kms_utils
from moto.core.exceptions import JsonRESTError
from moto.kms.exceptions import ValidationException

ED25519 = "ECC_NIST_EDWARDS25519"
ED25519_ALGORITHMS = ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
MAX_RAW_MESSAGE = 4096


class Ed25519Key(kms_utils.AbstractPrivateKey):
    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        return self.private_key.sign(message)

    def verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        try:
            self.private_key.public_key().verify(signature, message)
            return True
        except InvalidSignature:
            return False

    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            encoding=serialization.Encoding.DER, format=serialization.PublicFormat.SubjectPublicKeyInfo)


def patch_kms() -> None:
    original_generate = kms_models.generate_private_key

    def generate_private_key(key_spec: str):
        return Ed25519Key() if key_spec == ED25519 else original_generate(key_spec)

    kms_models.generate_private_key = generate_private_key

    original_signing_algorithms = kms_models.Key.signing_algorithms.fget

    def signing_algorithms(self):
        if self.key_spec == ED25519 and self.key_usage == "SIGN_VERIFY":
            return list(ED25519_ALGORITHMS)
        return original_signing_algorithms(self)

    kms_models.Key.signing_algorithms = property(signing_algorithms)

    backend = kms_models.KmsBackend
    original_valid_spec = backend._KmsBackend__ensure_valid_key_spec

    def ensure_valid_key_spec(self, key_spec: str) -> None:
        if key_spec != ED25519:
            original_valid_spec(self, key_spec)

    backend._KmsBackend__ensure_valid_key_spec = ensure_valid_key_spec

    original_create_key = backend.create_key

    def create_key(self, policy, key_usage, key_spec, *args, **kwargs):
        if key_spec == ED25519 and key_usage != "SIGN_VERIFY":
            raise ValidationException(
                f"KeyUsage {key_usage} is not compatible with KeySpec {ED25519}; use SIGN_VERIFY")
        return original_create_key(self, policy, key_usage, key_spec, *args, **kwargs)

    backend.create_key = create_key

    response = kms_responses.KmsResponse

    def ed25519_key(self):
        key_id = self._get_param("KeyId")
        self._validate_key_id(key_id)
        key = self.kms_backend.describe_key(key_id)
        return key if key.key_spec == ED25519 else None

    def checked_message(self, key) -> bytes:
        # moto's KMS responses already base64-decode Message: these are the bytes the caller sent.
        message = self._get_param("Message") or b""
        if isinstance(message, str):
            message = message.encode("utf-8")
        algorithm = self._get_param("SigningAlgorithm")
        message_type = self._get_param("MessageType") or "RAW"
        if algorithm not in ED25519_ALGORITHMS:
            raise ValidationException(
                f"1 validation error detected: Value '{algorithm}' at 'SigningAlgorithm' failed to satisfy "
                f"constraint: Member must satisfy enum value set: {ED25519_ALGORITHMS}")
        if algorithm == "ED25519_SHA_512" and message_type != "RAW":
            raise ValidationException("ED25519_SHA_512 supports only MessageType RAW")
        if algorithm == "ED25519_PH_SHA_512":
            raise ValidationException("ED25519_PH_SHA_512 requires MessageType EXTERNAL_MU or DIGEST, not emulated")
        if not message:
            raise ValidationException("Message must have length greater than or equal to 1")
        if len(message) > MAX_RAW_MESSAGE:
            raise ValidationException(f"Message must have length less than or equal to {MAX_RAW_MESSAGE}")
        return message

    original_sign = response.sign

    def sign(self) -> str:
        key = ed25519_key(self)
        if key is None:
            return original_sign(self)
        message = checked_message(self, key)
        signature = key.private_key.sign(message, "ED25519_SHA_512")
        return json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(),
                           "SigningAlgorithm": "ED25519_SHA_512"})

    original_verify = response.verify

    def verify(self) -> str:
        key = ed25519_key(self)
        if key is None:
            return original_verify(self)
        message = checked_message(self, key)
        signature = base64.b64decode(self._get_param("Signature") or "")
        if not key.private_key.verify(message, signature, "ED25519_SHA_512"):
            raise JsonRESTError("KMSInvalidSignatureException", "")
        return json.dumps({"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": "ED25519_SHA_512"})

    original_get_public_key = response.get_public_key

    def get_public_key(self) -> str:
        body = json.loads(original_get_public_key(self))
        body["KeySpec"] = body.get("CustomerMasterKeySpec")
        return json.dumps(body)

    response.sign = sign
    response.verify = verify
    response.get_public_key = get_public_key


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kms_sign_throttle = 0

    def take_sign_throttle(self) -> bool:
        with self.lock:
            if self.kms_sign_throttle > 0:
                self.kms_sign_throttle -= 1
                return True
            return False


S3_ROOTS = {
    "versioning": (b"GetBucketVersioningResponse", b"VersioningConfiguration"),
    "object-lock": (b"GetObjectLockConfigurationResponse", b"ObjectLockConfiguration"),
}


def middleware(app, faults: Faults):
    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_ledgix/faults" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with faults.lock:
                if body.get("reset"):
                    faults.kms_sign_throttle = 0
                if "kms_sign_throttle" in body:
                    faults.kms_sign_throttle = int(body["kms_sign_throttle"])
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"kms_sign_throttle": faults.kms_sign_throttle}).encode()]
        if environ.get("HTTP_X_AMZ_TARGET") == "TrentService.Sign" and faults.take_sign_throttle():
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.1")])
            return [json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()]
        query = environ.get("QUERY_STRING", "")
        fix = next((roots for key, roots in S3_ROOTS.items() if method == "GET" and re.search(rf"(^|&){key}(=|&|$)", query)), None)
        if fix is None or "/s3/" not in environ.get("HTTP_AUTHORIZATION", ""):
            return app(environ, start_response)
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(app(environ, capture))
        old, new = fix
        body = body.replace(b"<" + old, b"<" + new).replace(b"</" + old + b">", b"</" + new + b">")
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(captured["status"], headers)
        return [body]

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    patch_kms()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = middleware(DomainDispatcherApplication(create_backend_app), Faults())
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"moto server with Ledgix extensions on 127.0.0.1:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
