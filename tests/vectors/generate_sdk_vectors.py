"""Regenerate shared/core/tests/vectors/sdk_hashing.json from the published ledgix-python SDK.

The vault must hash ledger events, receipts and checkpoints byte for byte as ledgix-python 0.4.0 does; these
vectors are produced by the SDK's own private helpers so the Rust tests pin that behaviour.
Run: .venv/bin/python tests/vectors/generate_sdk_vectors.py > shared/core/tests/vectors/sdk_hashing.json
"""
import base64
import json

from ledgix_python import LedgixClient
from ledgix_python.models import LedgerCheckpoint, LedgerEntry

client = LedgixClient()

cbor_values = [
    None, True, False, 0, 1, 23, 24, 255, 256, 65535, 65536, 4294967296, -1, -24, -25, -1000,
    0.0, -0.0, 1.5, 0.1, 1e300, "", "a", "héllo", "x" * 30, [], [1, "a"], {},
    {"b": 1, "a": 2, "aa": 3, "é": 4, "z": {"y": [True, None]}},
]

entry_inputs = [
    {
        "seq": 1, "event_uuid": "0b9a7a3e-8a4f-4f7e-9d1e-2f1c3b4a5d6e", "request_id": "req-1",
        "agent_id": "agent-7", "policy_id": "refunds", "policy_version_id": "pv-1",
        "policy_content_hash": "sha256:abc", "intent_hash": "sha256:def", "tool_name": "stripe_refund",
        "tool_args": {"amount": 45, "currency": "usd", "nested": {"list": [1, 2.5, "x", None, True]}, "big": 12345678901234567890},
        "action_category": "clearance.decision", "action_metadata": {"session_id": "s1", "count": 3},
        "reason": "Rego approved", "citations": [], "evidence_chunks": [{"score": 1, "text": "t"}],
        "confidence": 0.95, "confidence_bucket": "extra_high", "decision_status": "approved", "approved": True,
        "accepted_at": "2026-11-22T09:00:00.123456Z", "canonical_version": 2,
        "event_hash": "", "leaf_hash": "", "receipt_algorithm": "Ed25519", "receipt_key_id": "vault-key-001",
    },
    {
        "seq": 2, "event_uuid": "e1", "request_id": "req-2", "agent_id": "", "policy_id": "",
        "policy_version_id": "", "policy_content_hash": "", "intent_hash": "sha256:00", "tool_name": "unknown",
        "tool_args": {}, "action_category": "", "action_metadata": {}, "reason": "No policy", "citations": [],
        "evidence_chunks": [], "confidence": 0, "approved": False, "accepted_at": "2026-11-22T09:00:01Z",
        "canonical_version": 2, "event_hash": "", "leaf_hash": "", "receipt_key_id": "k",
    },
]

def current_event_hash(entry):
    # _build_event_hash falls back to the legacy layout when the entry's own event_hash does not match the
    # current one; record the first (current-layout) hash it computes instead.
    seen = []
    original = client._hash_event_payload
    client._hash_event_payload = lambda payload: seen.append(original(payload)) or seen[-1]
    try:
        client._build_event_hash(entry)
    finally:
        client._hash_event_payload = original
    return seen[0]


entries = []
for raw in entry_inputs:
    entry = LedgerEntry.model_validate(raw)
    event_hash = current_event_hash(entry)
    assert client._build_event_hash(LedgerEntry.model_validate(dict(raw, event_hash=event_hash))) == event_hash
    raw = dict(raw, event_hash=event_hash, leaf_hash=client._hash_leaf(event_hash))
    entry = LedgerEntry.model_validate(raw)
    entries.append({
        "entry": raw,
        "event_hash": event_hash,
        "leaf_hash": client._hash_leaf(event_hash),
        "receipt_payload_hex": client._build_receipt_payload(entry).hex(),
    })

checkpoint_input = {
    "checkpoint_id": 3, "tree_size": 7, "root_hash": "ab" * 32, "checkpoint_hash": "",
    "prev_checkpoint_hash": "cd" * 32, "signature_algorithm": "Ed25519", "signer_key_id": "vault-key-001",
    "signed_at": "2026-11-22T09:00:30Z", "mmd_seconds": 30, "export_target": "s3",
    "export_uri": "s3://b/k", "export_status": "exported",
}
checkpoint = LedgerCheckpoint.model_validate(checkpoint_input)
checkpoint_payload = client._build_checkpoint_payload(checkpoint)

print(json.dumps({
    "generator": "ledgix-python==0.4.0",
    "cbor": [{"value": v, "hex": client._encode_deterministic_cbor(client._normalize_json_numbers_for_cbor(v)).hex()} for v in cbor_values],
    "cbor_raw_ints": [{"value": v, "hex": client._encode_deterministic_cbor(v).hex()} for v in cbor_values if isinstance(v, int) and not isinstance(v, bool)],
    "entries": entries,
    "checkpoint": {
        "input": checkpoint_input,
        "payload_hex": checkpoint_payload.hex(),
        "checkpoint_hash": client._hash_checkpoint_payload(checkpoint_payload),
    },
    "merkle": {
        "leaves": [client._hash_leaf(("%02x" % i) * 32) for i in range(7)],
        "roots": [client._merkle_root([client._hash_leaf(("%02x" % i) * 32) for i in range(n)]) for n in range(1, 8)],
    },
}, indent=1))
