//! Offline verification an auditor runs without trusting the vault: proof bundles, and a whole exported
//! log (C2SP checkpoint + tiles + the SDK checkpoints). Used by `ledgix verify`.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::checkpoint::{Checkpoint, CheckpointDraft};
use crate::ledger::{domain_hash, receipt_payload, CHECKPOINT_HASH_PREFIX};
use crate::merkle::{self, Hash};
use crate::sealing::ProofBundle;
use crate::token::PublicKey;

/// Why verification failed, in words an auditor can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuditError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, AuditError> {
    Err(AuditError(message.into()))
}

fn b64(value: &str, what: &str) -> Result<Vec<u8>, AuditError> {
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| AuditError(format!("{what} is not base64url")))
}

fn hash32(value: &str, what: &str) -> Result<Hash, AuditError> {
    merkle::parse_hash(value).ok_or_else(|| AuditError(format!("{what} is not a 32-byte hex hash")))
}

/// Public keys by kid, from JWKs (as published at /.well-known/jwks.json or embedded in bundles).
pub fn keys_from_jwks(jwks: &serde_json::Value) -> Result<HashMap<String, [u8; 32]>, AuditError> {
    let mut keys = HashMap::new();
    for jwk in jwks
        .get("keys")
        .and_then(|k| k.as_array())
        .into_iter()
        .flatten()
    {
        let (Some(kid), Some(x)) = (
            jwk.get("kid").and_then(|v| v.as_str()),
            jwk.get("x").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        let bytes: [u8; 32] = b64(x, "JWK x")?
            .try_into()
            .map_err(|_| AuditError("JWK x is not 32 bytes".into()))?;
        keys.insert(kid.to_string(), bytes);
    }
    Ok(keys)
}

pub fn keys_from(public_keys: &[PublicKey]) -> HashMap<String, [u8; 32]> {
    public_keys
        .iter()
        .map(|k| (k.kid.clone(), k.ed25519))
        .collect()
}

fn verify_signature(
    keys: &HashMap<String, [u8; 32]>,
    kid: &str,
    message: &[u8],
    signature: &[u8],
    what: &str,
) -> Result<(), AuditError> {
    let key = keys
        .get(kid)
        .ok_or_else(|| AuditError(format!("no public key for kid {kid} ({what})")))?;
    let key = VerifyingKey::from_bytes(key)
        .map_err(|_| AuditError(format!("public key {kid} is invalid")))?;
    let signature = Signature::from_slice(signature)
        .map_err(|_| AuditError(format!("{what} signature is malformed")))?;
    key.verify(message, &signature)
        .map_err(|_| AuditError(format!("{what} signature does not verify")))
}

/// A checkpoint's payload, hash and signature.
pub fn verify_checkpoint(
    checkpoint: &Checkpoint,
    keys: &HashMap<String, [u8; 32]>,
) -> Result<(), AuditError> {
    let id = checkpoint.checkpoint_id;
    if checkpoint.signature_algorithm != "Ed25519" {
        return fail(format!(
            "checkpoint {id}: unsupported algorithm {}",
            checkpoint.signature_algorithm
        ));
    }
    let payload = b64(&checkpoint.checkpoint_payload, "checkpoint payload")?;
    let rebuilt = CheckpointDraft {
        checkpoint_id: id,
        tree_size: checkpoint.tree_size,
        root_hash: checkpoint.root_hash.clone(),
        prev_checkpoint_hash: checkpoint.prev_checkpoint_hash.clone(),
        signer_key_id: checkpoint.signer_key_id.clone(),
        signed_at: checkpoint.signed_at.clone(),
        mmd_seconds: checkpoint.mmd_seconds,
        export_target: checkpoint.export_target.clone(),
    }
    .payload()
    .map_err(|e| AuditError(e.to_string()))?;
    if payload != rebuilt {
        return fail(format!(
            "checkpoint {id}: payload does not match its fields"
        ));
    }
    if hex::encode(domain_hash(CHECKPOINT_HASH_PREFIX, &payload)) != checkpoint.checkpoint_hash {
        return fail(format!("checkpoint {id}: checkpoint_hash mismatch"));
    }
    let signature = b64(&checkpoint.checkpoint_signature, "checkpoint signature")?;
    verify_signature(
        keys,
        &checkpoint.signer_key_id,
        &payload,
        &signature,
        &format!("checkpoint {id}"),
    )
}

/// Checkpoints chain from the first: each names its predecessor's hash.
pub fn verify_chain(
    checkpoints: &[Checkpoint],
    keys: &HashMap<String, [u8; 32]>,
) -> Result<(), AuditError> {
    let mut prev = String::new();
    let mut prev_size = 0;
    for (i, c) in checkpoints.iter().enumerate() {
        if c.checkpoint_id != i as i64 + 1 {
            return fail(format!(
                "checkpoint {} is out of sequence (expected {})",
                c.checkpoint_id,
                i + 1
            ));
        }
        verify_checkpoint(c, keys)?;
        if c.prev_checkpoint_hash != prev {
            return fail(format!(
                "checkpoint chain broken at checkpoint {}",
                c.checkpoint_id
            ));
        }
        if c.tree_size < prev_size {
            return fail(format!("checkpoint {} shrinks the tree", c.checkpoint_id));
        }
        prev = c.checkpoint_hash.clone();
        prev_size = c.tree_size;
    }
    Ok(())
}

/// `verify_bundle`, after checking that every key the bundle carries is one of the vault's published keys.
/// Keys embedded in a bundle prove nothing by themselves: a forger can embed their own.
pub fn verify_bundle_pinned(
    bundle: &ProofBundle,
    pinned: &HashMap<String, [u8; 32]>,
) -> Result<String, AuditError> {
    for key in &bundle.keys {
        let jwk: serde_json::Value = serde_json::from_slice(&b64(&key.public_jwk, "public_jwk")?)
            .map_err(|_| AuditError("public_jwk is not JSON".into()))?;
        let x = jwk.get("x").and_then(|x| x.as_str()).unwrap_or_default();
        let matches = pinned
            .get(&key.key_id)
            .is_some_and(|k| b64(x, "JWK x").ok().as_deref() == Some(&k[..]));
        if !matches {
            return fail(format!(
                "bundle key {} is not one of the pinned vault keys",
                key.key_id
            ));
        }
    }
    verify_bundle(bundle)
}

/// Everything `verify_ledger_proof_bundle` checks, independently of the SDK.
pub fn verify_bundle(bundle: &ProofBundle) -> Result<String, AuditError> {
    let mut keys = HashMap::new();
    for key in &bundle.keys {
        let jwk: serde_json::Value = serde_json::from_slice(&b64(&key.public_jwk, "public_jwk")?)
            .map_err(|_| AuditError("public_jwk is not JSON".into()))?;
        let x = jwk
            .get("x")
            .and_then(|x| x.as_str())
            .ok_or_else(|| AuditError("public_jwk lacks x".into()))?;
        let bytes: [u8; 32] = b64(x, "JWK x")?
            .try_into()
            .map_err(|_| AuditError("JWK x is not 32 bytes".into()))?;
        keys.insert(key.key_id.clone(), bytes);
    }
    let event = &bundle.event;
    let recomputed = event
        .recompute_event_hash()
        .map_err(|e| AuditError(e.to_string()))?;
    if recomputed != event.event_hash {
        return fail("event hash does not match the event's contents");
    }
    let event_hash = hash32(&event.event_hash, "event_hash")?;
    let leaf = merkle::leaf_hash(&event_hash);
    if hex::encode(leaf) != event.leaf_hash || event.leaf_hash != bundle.inclusion.leaf_hash {
        return fail("leaf hash does not match the event hash");
    }
    let receipt = b64(&event.receipt_payload, "receipt payload")?;
    let rebuilt = receipt_payload(
        &event.accepted_at,
        &event.event_hash,
        &event.event_uuid,
        &event.leaf_hash,
        &event.receipt_key_id,
        &event.request_id,
    )
    .map_err(|e| AuditError(e.to_string()))?;
    if receipt != rebuilt {
        return fail("receipt payload does not match the event");
    }
    verify_signature(
        &keys,
        &event.receipt_key_id,
        &receipt,
        &b64(&event.receipt_signature, "receipt signature")?,
        "receipt",
    )?;

    let inclusion = &bundle.inclusion;
    verify_checkpoint(&inclusion.checkpoint, &keys)?;
    if inclusion.tree_size as i64 != inclusion.checkpoint.tree_size {
        return fail("inclusion proof tree size differs from its checkpoint");
    }
    let path: Vec<Hash> = inclusion
        .path
        .iter()
        .map(|h| hash32(h, "proof path element"))
        .collect::<Result<_, _>>()?;
    let root = hash32(&inclusion.checkpoint.root_hash, "root_hash")?;
    if !merkle::verify_inclusion(
        &leaf,
        inclusion.leaf_index,
        inclusion.tree_size,
        &path,
        &root,
    ) {
        return fail("inclusion proof does not lead to the checkpoint root");
    }
    let mut verdict = format!(
        "event {} (request {}) is leaf {} of the tree signed in checkpoint {}",
        event.event_uuid,
        event.request_id,
        inclusion.leaf_index,
        inclusion.checkpoint.checkpoint_id
    );
    if let Some(consistency) = &bundle.consistency {
        if consistency.from_checkpoint.checkpoint_hash != inclusion.checkpoint.checkpoint_hash {
            return fail("consistency proof does not start at the inclusion checkpoint");
        }
        verify_checkpoint(&consistency.to_checkpoint, &keys)?;
        let path: Vec<Hash> = consistency
            .path
            .iter()
            .map(|h| hash32(h, "proof path element"))
            .collect::<Result<_, _>>()?;
        let (from, to) = (&consistency.from_checkpoint, &consistency.to_checkpoint);
        let ok = merkle::verify_consistency(
            from.tree_size as u64,
            to.tree_size as u64,
            &hash32(&from.root_hash, "root_hash")?,
            &hash32(&to.root_hash, "root_hash")?,
            &path,
        );
        if !ok {
            return fail("consistency proof does not connect the two checkpoints");
        }
        verdict.push_str(&format!(
            ", and checkpoint {} extends it append-only",
            to.checkpoint_id
        ));
    }
    Ok(verdict)
}

/// Recompute the tree from exported entries and hash tiles and compare with the signed root.
/// `read` returns a file under the log's root (e.g. `tile/0/000`), `progress` is told each bundle read.
pub fn verify_tiles(
    tree_size: u64,
    root: &Hash,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, AuditError>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), AuditError> {
    use crate::tiles::{entries_path, hash_tile_path, parse_entry_bundle, TILE_HEIGHT, TILE_WIDTH};
    let mut level_hashes: Vec<Hash> = Vec::with_capacity(tree_size as usize);
    let bundles = tree_size.div_ceil(TILE_WIDTH);
    for index in 0..bundles {
        let width = (tree_size - index * TILE_WIDTH).min(TILE_WIDTH);
        let entries = parse_entry_bundle(&read(&entries_path(index, width))?)
            .ok_or_else(|| AuditError(format!("entry bundle {index} is malformed")))?;
        if entries.len() as u64 != width {
            return fail(format!(
                "entry bundle {index} holds {} entries, expected {width}",
                entries.len()
            ));
        }
        let tile = read(&hash_tile_path(0, index, width))?;
        for (i, entry) in entries.iter().enumerate() {
            let leaf = merkle::leaf_hash_data(entry);
            if tile.get(i * 32..i * 32 + 32) != Some(&leaf[..]) {
                return fail(format!(
                    "leaf {} in tile 0/{index} does not hash its entry",
                    index * TILE_WIDTH + i as u64
                ));
            }
            level_hashes.push(leaf);
        }
        progress(width);
    }
    let computed =
        merkle::root(&level_hashes).ok_or_else(|| AuditError("the log is empty".into()))?;
    if &computed != root {
        return fail("the entries do not hash to the signed root");
    }
    // Higher tile levels must hold the roots of complete 256^level-leaf subtrees.
    let mut level = 1u8;
    let mut below = level_hashes;
    loop {
        let count = tree_size >> (u32::from(level) * u32::from(TILE_HEIGHT));
        if count == 0 {
            break;
        }
        let current: Vec<Hash> = below
            .chunks(TILE_WIDTH as usize)
            .filter(|c| c.len() == TILE_WIDTH as usize)
            .filter_map(merkle::root)
            .collect();
        for index in 0..count.div_ceil(TILE_WIDTH) {
            let width = (count - index * TILE_WIDTH).min(TILE_WIDTH);
            let tile = read(&hash_tile_path(level, index, width))?;
            for i in 0..width as usize {
                let expected = current[index as usize * TILE_WIDTH as usize + i];
                if tile.get(i * 32..i * 32 + 32) != Some(&expected[..]) {
                    return fail(format!("hash {i} of tile {level}/{index} is wrong"));
                }
            }
        }
        below = current;
        level += 1;
    }
    Ok(())
}
