//! Offline verification an auditor runs without trusting the vault: proof bundles, and a whole exported
//! log (C2SP checkpoint + tiles + the SDK checkpoints). Used by `ledgix verify`.
//!
//! Trust in a bundle is anchored in root keys: the auditor pins them (`PinnedRoots`, from the vault's JWKS or
//! raw keys), a delegated key is trusted through its certificate from a root and only within its window, and
//! only root keys sign checkpoints (docs/ledger.md, "Signing keys").

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use crate::checkpoint::{Checkpoint, CheckpointDraft};
use crate::keys::{KeyCertificate, SignedCertificate};
use crate::ledger::{domain_hash, receipt_payload, CHECKPOINT_HASH_PREFIX};
use crate::merkle::{self, Hash};
use crate::sealing::{KeyVersion, ProofBundle};
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

/// A root key an auditor trusts, with the kid it is published under when known (a raw `--root-key` has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedRoot {
    pub kid: Option<String>,
    pub ed25519: [u8; 32],
}

/// The root keys an auditor pins (from the vault's JWKS or given as raw Ed25519 keys). A bundle's root keys
/// must be among them, and its delegated keys must carry certificates signed by one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinnedRoots {
    roots: Vec<PinnedRoot>,
}

/// Whether `kid` names a delegated key of one of `kids`: the key registry names a delegated key
/// `<root kid>.d<period start>` (`KeyRegistry::delegated_kid`).
pub fn delegated_name(kid: &str, kids: &[&str]) -> bool {
    crate::keys::parse_delegated_kid(kid).is_some_and(|(root, _)| kids.contains(&root))
}

/// Decode base64url or standard base64, padded or not.
fn any_base64(value: &str) -> Option<Vec<u8>> {
    let trimmed = value.trim().trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD_NO_PAD.decode(trimmed))
        .ok()
}

fn ed25519_key(bytes: &[u8], what: &str) -> Result<[u8; 32], AuditError> {
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| AuditError(format!("{what} is not 32 bytes")))?;
    VerifyingKey::from_bytes(&key)
        .map_err(|_| AuditError(format!("{what} is not an Ed25519 public key")))?;
    Ok(key)
}

impl PinnedRoots {
    pub fn new() -> Self {
        Self::default()
    }

    /// The root keys of a JWKS (`/.well-known/jwks.json`), each under its kid. A JWKS also lists the delegated
    /// keys whose tokens may still be live, without saying which they are; they are left out by their names
    /// (`delegated_name`), so a delegated key can never pass for a root, sign a checkpoint, or escape its window.
    pub fn from_jwks(jwks: &serde_json::Value) -> Result<Self, AuditError> {
        Ok(Self::from_keys(&keys_from_jwks(jwks)?))
    }

    /// Keys by kid, as `keys_from_jwks` returns them, less the delegated keys among them.
    pub fn from_keys(keys: &HashMap<String, [u8; 32]>) -> Self {
        let kids: Vec<&str> = keys.keys().map(String::as_str).collect();
        let mut roots: Vec<(&String, &[u8; 32])> = keys
            .iter()
            .filter(|(kid, _)| !delegated_name(kid, &kids))
            .collect();
        roots.sort();
        let mut pinned = Self::new();
        for (kid, key) in roots {
            pinned.add(Some(kid.clone()), *key);
        }
        pinned
    }

    pub fn add(&mut self, kid: Option<String>, ed25519: [u8; 32]) {
        let root = PinnedRoot { kid, ed25519 };
        if !self.roots.contains(&root) {
            self.roots.push(root);
        }
    }

    pub fn extend(&mut self, other: PinnedRoots) {
        for root in other.roots {
            self.add(root.kid, root.ed25519);
        }
    }

    /// A root key as given on a command line: base64url or standard base64 of the raw 32-byte Ed25519 public
    /// key, optionally as `kid=<key>` to pin it under that kid only.
    pub fn add_encoded(&mut self, value: &str) -> Result<(), AuditError> {
        let value = value.trim();
        // A raw base64 key holds `=` only as trailing padding, so `x=y` with a non-empty `y` names a kid.
        let (kid, encoded) = match value.split_once('=') {
            Some((kid, rest)) if !kid.is_empty() && !rest.trim_start_matches('=').is_empty() => {
                (Some(kid.to_string()), rest)
            }
            _ => (None, value),
        };
        let bytes = any_base64(encoded)
            .ok_or_else(|| AuditError(format!("root key {value:?} is not base64")))?;
        let key = ed25519_key(&bytes, &format!("root key {value:?}"))?;
        self.add(kid, key);
        Ok(())
    }

    /// The contents of a key file: a JWKS, a single JWK (its kid is used when it has one), or a PEM
    /// SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`). Returns how many keys it added.
    pub fn add_document(&mut self, text: &str) -> Result<usize, AuditError> {
        let before = self.roots.len();
        if text.trim_start().starts_with("-----BEGIN") {
            use ed25519_dalek::pkcs8::DecodePublicKey as _;
            let key = VerifyingKey::from_public_key_pem(text.trim())
                .map_err(|e| AuditError(format!("not an Ed25519 PEM public key: {e}")))?;
            self.add(None, key.to_bytes());
            return Ok(self.roots.len() - before);
        }
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| AuditError("not a JWK, JWKS or PEM public key".into()))?;
        if json.get("keys").is_some() {
            let jwks = Self::from_jwks(&json)?;
            if jwks.is_empty() {
                return fail("the JWKS holds no Ed25519 key with a kid");
            }
            self.extend(jwks);
        } else {
            if let Some(curve) = json.get("crv").and_then(|c| c.as_str()) {
                if curve != "Ed25519" {
                    return fail(format!("the JWK is for curve {curve}, not Ed25519"));
                }
            }
            let x = json
                .get("x")
                .and_then(|x| x.as_str())
                .ok_or_else(|| AuditError("the JWK lacks x".into()))?;
            let key = ed25519_key(&b64(x, "JWK x")?, "JWK x")?;
            let kid = json.get("kid").and_then(|k| k.as_str()).map(str::to_string);
            self.add(kid, key);
        }
        Ok(self.roots.len() - before)
    }

    pub fn roots(&self) -> &[PinnedRoot] {
        &self.roots
    }

    pub fn len(&self) -> usize {
        self.roots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Whether `ed25519` is pinned as `kid` (or pinned without a kid).
    pub fn pins(&self, kid: &str, ed25519: &[u8; 32]) -> bool {
        self.roots
            .iter()
            .any(|r| &r.ed25519 == ed25519 && r.kid.as_deref().is_none_or(|k| k == kid))
    }

    /// The keys that may have signed as root `kid`: those pinned under it, and those pinned without a kid.
    fn candidates(&self, kid: &str) -> Vec<[u8; 32]> {
        self.roots
            .iter()
            .filter(|r| r.kid.as_deref().is_none_or(|k| k == kid))
            .map(|r| r.ed25519)
            .collect()
    }
}

/// `KeyVersion::attestation_status` of a root key.
pub const ATTESTATION_ROOT: &str = "root";
/// `KeyVersion::attestation_status` of a delegated key that carries its certificate.
pub const ATTESTATION_CERTIFIED: &str = "certified";

/// What an embedded key may sign once its trust is established.
#[derive(Debug, Clone)]
enum Trust {
    /// Checkpoints, certificates, tokens and receipts.
    Root,
    /// Tokens and receipts within the certificate's window.
    Delegated(KeyCertificate),
}

#[derive(Debug, Clone)]
struct TrustedKey {
    ed25519: [u8; 32],
    trust: Trust,
}

/// The raw key a bundle's `KeyVersion` carries in its JWK.
fn embedded_key(key: &KeyVersion) -> Result<[u8; 32], AuditError> {
    let jwk: serde_json::Value = serde_json::from_slice(&b64(&key.public_jwk, "public_jwk")?)
        .map_err(|_| AuditError("public_jwk is not JSON".into()))?;
    if let Some(kid) = jwk.get("kid").and_then(|k| k.as_str()) {
        if kid != key.key_id {
            return fail(format!(
                "bundle key {} carries the JWK of key {kid}",
                key.key_id
            ));
        }
    }
    let x = jwk
        .get("x")
        .and_then(|x| x.as_str())
        .ok_or_else(|| AuditError("public_jwk lacks x".into()))?;
    b64(x, "JWK x")?
        .try_into()
        .map_err(|_| AuditError("JWK x is not 32 bytes".into()))
}

/// The certificate of a delegated bundle key, checked against the root that issued it: a pinned root, or
/// without pins, a root key embedded in the same bundle.
fn certificate_of(
    key: &KeyVersion,
    ed25519: [u8; 32],
    pinned: Option<&PinnedRoots>,
    trusted: &HashMap<String, TrustedKey>,
) -> Result<KeyCertificate, AuditError> {
    let invalid = |why: String| {
        AuditError(format!(
            "bundle key {} has no valid certificate: {why}",
            key.key_id
        ))
    };
    let issuer = &key.attestation_key_id;
    if issuer.is_empty() || key.attestation_payload.is_empty() {
        return Err(invalid("it carries none".into()));
    }
    let roots = match pinned {
        Some(pinned) => pinned.candidates(issuer),
        None => trusted
            .get(issuer)
            .filter(|k| matches!(k.trust, Trust::Root))
            .map(|k| k.ed25519)
            .into_iter()
            .collect(),
    };
    if roots.is_empty() {
        return Err(invalid(match pinned {
            Some(_) => format!("its issuer {issuer} is not a pinned root key"),
            None => format!("its issuer {issuer} is not a root key in the bundle"),
        }));
    }
    let certificate = SignedCertificate {
        payload: b64(&key.attestation_payload, "attestation_payload").map_err(|e| invalid(e.0))?,
        signature: b64(&key.attestation_signature, "attestation_signature")
            .map_err(|e| invalid(e.0))?,
        issuer: issuer.clone(),
    };
    let public = PublicKey {
        kid: key.key_id.clone(),
        ed25519,
    };
    let mut error = None;
    for root in &roots {
        match certificate.verify(&public, root) {
            Ok(certified) => return Ok(certified),
            Err(e) => error = Some(e),
        }
    }
    Err(invalid(error.map(|e| e.to_string()).unwrap_or_default()))
}

/// Decide which of the bundle's keys to trust, and for what. A key marked `root` (or unmarked, as in bundles
/// from before delegated keys) is a root: with pins it must be pinned. A key marked `certified` is trusted
/// within its window when its certificate verifies against a root. Anything else fails the bundle.
fn trusted_keys(
    bundle: &ProofBundle,
    pinned: Option<&PinnedRoots>,
) -> Result<HashMap<String, TrustedKey>, AuditError> {
    let mut decoded: Vec<(&KeyVersion, [u8; 32])> = Vec::with_capacity(bundle.keys.len());
    for key in &bundle.keys {
        if decoded.iter().any(|(k, _)| k.key_id == key.key_id) {
            return fail(format!("bundle embeds key {} twice", key.key_id));
        }
        decoded.push((key, embedded_key(key)?));
    }
    let mut trusted = HashMap::new();
    for (key, ed25519) in &decoded {
        match key.attestation_status.as_str() {
            ATTESTATION_ROOT | "" => {
                if pinned.is_some_and(|p| !p.pins(&key.key_id, ed25519)) {
                    return fail(format!(
                        "bundle key {} is not one of the pinned vault keys (root keys must be pinned)",
                        key.key_id
                    ));
                }
                trusted.insert(
                    key.key_id.clone(),
                    TrustedKey {
                        ed25519: *ed25519,
                        trust: Trust::Root,
                    },
                );
            }
            ATTESTATION_CERTIFIED => {}
            other => {
                return fail(format!(
                    "bundle key {} has no valid certificate (attestation_status {other:?})",
                    key.key_id
                ))
            }
        }
    }
    for (key, ed25519) in &decoded {
        if key.attestation_status == ATTESTATION_CERTIFIED {
            let certificate = certificate_of(key, *ed25519, pinned, &trusted)?;
            trusted.insert(
                key.key_id.clone(),
                TrustedKey {
                    ed25519: *ed25519,
                    trust: Trust::Delegated(certificate),
                },
            );
        }
    }
    Ok(trusted)
}

/// `verify_bundle` with the bundle's keys anchored in `pinned`: each root key it embeds must be pinned, and each
/// delegated key must carry a certificate from a pinned root naming exactly that key; a delegated key is then
/// trusted only within its certified window. Keys embedded in a bundle prove nothing by themselves: a forger
/// can embed their own.
pub fn verify_bundle_pinned(
    bundle: &ProofBundle,
    pinned: &PinnedRoots,
) -> Result<String, AuditError> {
    if pinned.is_empty() {
        return fail("no root keys are pinned");
    }
    verify_with_keys(bundle, &trusted_keys(bundle, Some(pinned))?)
}

/// Everything `verify_ledger_proof_bundle` checks, independently of the SDK, trusting the root keys the bundle
/// embeds. Delegated keys must still carry certificates from those roots, sign only within their windows, and
/// never sign checkpoints.
pub fn verify_bundle(bundle: &ProofBundle) -> Result<String, AuditError> {
    verify_with_keys(bundle, &trusted_keys(bundle, None)?)
}

/// A checkpoint's signature, by a root key: a delegated key never signs checkpoints.
fn verify_root_checkpoint(
    checkpoint: &Checkpoint,
    trusted: &HashMap<String, TrustedKey>,
    roots: &HashMap<String, [u8; 32]>,
) -> Result<(), AuditError> {
    if let Some(TrustedKey {
        trust: Trust::Delegated(_),
        ..
    }) = trusted.get(&checkpoint.signer_key_id)
    {
        return fail(format!(
            "checkpoint {} is signed by delegated key {}: only root keys sign checkpoints",
            checkpoint.checkpoint_id, checkpoint.signer_key_id
        ));
    }
    verify_checkpoint(checkpoint, roots)
}

fn verify_with_keys(
    bundle: &ProofBundle,
    trusted: &HashMap<String, TrustedKey>,
) -> Result<String, AuditError> {
    let keys: HashMap<String, [u8; 32]> = trusted
        .iter()
        .map(|(kid, k)| (kid.clone(), k.ed25519))
        .collect();
    let roots: HashMap<String, [u8; 32]> = trusted
        .iter()
        .filter(|(_, k)| matches!(k.trust, Trust::Root))
        .map(|(kid, k)| (kid.clone(), k.ed25519))
        .collect();
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
    // A delegated key vouches only for what it signed within its window: `accepted_at` is inside the signed
    // receipt, so a stolen key cannot backdate or postdate a receipt past its certificate.
    if let Some(TrustedKey {
        trust: Trust::Delegated(certificate),
        ..
    }) = trusted.get(&event.receipt_key_id)
    {
        certificate
            .covers(&event.accepted_at)
            .map_err(|e| AuditError(e.to_string()))?;
    }

    let inclusion = &bundle.inclusion;
    verify_root_checkpoint(&inclusion.checkpoint, trusted, &roots)?;
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
        let (from, to) = (&consistency.from_checkpoint, &consistency.to_checkpoint);
        // The proof starts from the verified inclusion checkpoint: its hash, and the size and root it signs.
        let signed = &inclusion.checkpoint;
        if from.checkpoint_hash != signed.checkpoint_hash
            || from.tree_size != signed.tree_size
            || from.root_hash != signed.root_hash
        {
            return fail("consistency proof does not start at the inclusion checkpoint");
        }
        verify_root_checkpoint(to, trusted, &roots)?;
        let path: Vec<Hash> = consistency
            .path
            .iter()
            .map(|h| hash32(h, "proof path element"))
            .collect::<Result<_, _>>()?;
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
    if let Some(TrustedKey {
        trust: Trust::Delegated(certificate),
        ..
    }) = trusted.get(&event.receipt_key_id)
    {
        verdict.push_str(&format!(
            "; receipt by key {} certified by root {}",
            event.receipt_key_id, certificate.issuer
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{rfc3339, KeyRole, PublishedKey};
    use crate::ledger::{EventDraft, LedgerEvent};
    use crate::sealing::{ConsistencyProof, InclusionProof};
    use chrono::{DateTime, Duration, Utc};
    use ed25519_dalek::{Signer as _, SigningKey};

    struct TestKey {
        signing: SigningKey,
        kid: String,
    }

    impl TestKey {
        fn new(seed: u8, kid: &str) -> Self {
            TestKey {
                signing: SigningKey::from_bytes(&[seed; 32]),
                kid: kid.into(),
            }
        }

        fn public(&self) -> PublicKey {
            PublicKey {
                kid: self.kid.clone(),
                ed25519: self.signing.verifying_key().to_bytes(),
            }
        }

        fn root(&self) -> PublishedKey {
            PublishedKey {
                kid: self.kid.clone(),
                ed25519: self.public().ed25519,
                role: KeyRole::Root,
                active_from: "2027-01-01T00:00:00Z".into(),
                retired_at: None,
                certificate: None,
            }
        }

        /// This key as a delegated key certified by `root` for `window`.
        fn delegated(
            &self,
            root: &TestKey,
            window: (DateTime<Utc>, DateTime<Utc>),
        ) -> PublishedKey {
            let payload =
                KeyCertificate::for_key(&self.public(), window.0, window.1, &root.kid).payload();
            PublishedKey {
                kid: self.kid.clone(),
                ed25519: self.public().ed25519,
                role: KeyRole::Delegated,
                active_from: rfc3339(window.0),
                retired_at: Some(rfc3339(window.1)),
                certificate: Some(SignedCertificate {
                    signature: root.signing.sign(&payload).to_bytes().to_vec(),
                    payload,
                    issuer: root.kid.clone(),
                }),
            }
        }

        fn jwk(&self) -> serde_json::Value {
            serde_json::to_value(self.public().to_jwk()).unwrap()
        }
    }

    fn jwks(keys: &[&TestKey]) -> PinnedRoots {
        let keys: Vec<_> = keys.iter().map(|k| k.jwk()).collect();
        PinnedRoots::from_jwks(&serde_json::json!({ "keys": keys })).unwrap()
    }

    /// The start of the delegated key's period in these tests.
    fn period_start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn window() -> (DateTime<Utc>, DateTime<Utc>) {
        (
            period_start() - Duration::seconds(60),
            period_start() + Duration::seconds(3660),
        )
    }

    fn at(offset_seconds: i64) -> String {
        rfc3339(period_start() + Duration::seconds(offset_seconds))
    }

    fn event(receipt_key: &TestKey, accepted_at: &str) -> LedgerEvent {
        let draft = EventDraft {
            event_uuid: "ev-1".into(),
            request_id: "req-1".into(),
            agent_id: "agent-1".into(),
            policy_id: "pol-1".into(),
            policy_version_id: "pv-1".into(),
            policy_content_hash: "sha256:00".into(),
            intent_hash: "sha256:11".into(),
            tool_name: "pay".into(),
            tool_args: serde_json::json!({ "amount": 45 }),
            action_category: "clearance.decision".into(),
            action_metadata: serde_json::json!({ "status": "approved" }),
            reason: "within policy".into(),
            citations: vec![],
            evidence_chunks: vec![],
            confidence: 0.95,
            confidence_bucket: "high".into(),
            decision_status: "approved".into(),
            approved: true,
            accepted_at: accepted_at.into(),
        };
        let prepared = draft.prepare(&receipt_key.kid).unwrap();
        let signature = receipt_key.signing.sign(&prepared.receipt_payload);
        let mut event = prepared.seal(&signature.to_bytes());
        event.leaf_index = Some(0);
        event.checkpoint_id = Some(1);
        event
    }

    fn checkpoint(
        id: i64,
        leaves: &[Hash],
        prev: &str,
        signer: &TestKey,
        signed_at: &str,
    ) -> Checkpoint {
        let draft = CheckpointDraft {
            checkpoint_id: id,
            tree_size: leaves.len() as i64,
            root_hash: hex::encode(merkle::root(leaves).unwrap()),
            prev_checkpoint_hash: prev.into(),
            signer_key_id: signer.kid.clone(),
            signed_at: signed_at.into(),
            mmd_seconds: 30,
            export_target: String::new(),
        };
        let payload = draft.payload().unwrap();
        let signature = signer.signing.sign(&payload);
        draft.seal(&payload, &signature.to_bytes())
    }

    fn versions(keys: &[PublishedKey]) -> Vec<KeyVersion> {
        keys.iter().map(|k| KeyVersion::of(k).unwrap()).collect()
    }

    /// A one-leaf tree: the receipt signed by `receipt_key` at `accepted_at`, checkpoint 1 by `checkpoint_key`.
    fn bundle(
        receipt_key: &TestKey,
        accepted_at: &str,
        checkpoint_key: &TestKey,
        keys: &[PublishedKey],
    ) -> ProofBundle {
        let event = event(receipt_key, accepted_at);
        let leaf = merkle::parse_hash(&event.leaf_hash).unwrap();
        let checkpoint = checkpoint(1, &[leaf], "", checkpoint_key, &at(20));
        ProofBundle {
            inclusion: InclusionProof {
                event_uuid: event.event_uuid.clone(),
                request_id: event.request_id.clone(),
                event_hash: event.event_hash.clone(),
                leaf_hash: event.leaf_hash.clone(),
                leaf_index: 0,
                tree_size: 1,
                path: vec![],
                checkpoint,
            },
            event,
            consistency: None,
            keys: versions(keys),
        }
    }

    /// The bundle with a second leaf sealed in checkpoint 2 by `signer`, and the consistency proof 1 → 2.
    fn extended(mut bundle: ProofBundle, signer: &TestKey, keys: &[PublishedKey]) -> ProofBundle {
        let first = bundle.inclusion.checkpoint.clone();
        let leaves = [
            merkle::parse_hash(&bundle.event.leaf_hash).unwrap(),
            merkle::leaf_hash_data(b"the next event"),
        ];
        let to = checkpoint(2, &leaves, &first.checkpoint_hash, signer, &at(7200));
        let path = merkle::consistency_ranges(1, 2)
            .iter()
            .map(|r| {
                let range = &leaves[r.start as usize..(r.start + r.size) as usize];
                hex::encode(merkle::root(range).unwrap())
            })
            .collect();
        bundle.consistency = Some(ConsistencyProof {
            from_checkpoint: first,
            to_checkpoint: to,
            path,
        });
        bundle.keys = versions(keys);
        bundle
    }

    fn failure(result: Result<String, AuditError>) -> String {
        match result {
            Ok(verdict) => panic!("verified unexpectedly: {verdict}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn a_receipt_by_a_certified_delegated_key_verifies_against_the_pinned_root() {
        let root = TestKey::new(1, "root-1");
        let delegated = TestKey::new(2, "d-1");
        let keys = [delegated.delegated(&root, window()), root.root()];
        let bundle = bundle(&delegated, &at(10), &root, &keys);
        let verdict = verify_bundle_pinned(&bundle, &jwks(&[&root])).unwrap();
        assert!(verdict.contains("certified by root root-1"), "{verdict}");
        verify_bundle(&bundle).unwrap();
        // A root pinned as a raw key, without its kid, anchors the same bundle.
        let mut raw = PinnedRoots::new();
        raw.add_encoded(&URL_SAFE_NO_PAD.encode(root.public().ed25519))
            .unwrap();
        verify_bundle_pinned(&bundle, &raw).unwrap();
        // The bundle the vault builds round-trips through JSON.
        let json = serde_json::to_string(&bundle).unwrap();
        let parsed: ProofBundle = serde_json::from_str(&json).unwrap();
        verify_bundle_pinned(&parsed, &jwks(&[&root])).unwrap();
    }

    #[test]
    fn a_certificate_signed_by_a_key_that_is_not_pinned_fails() {
        let root = TestKey::new(1, "root-1");
        let impostor = TestKey::new(9, "root-1");
        let delegated = TestKey::new(2, "d-1");
        // Certified by a key that calls itself root-1; the real root-1 signs the checkpoint.
        let keys = [delegated.delegated(&impostor, window()), root.root()];
        let forged = bundle(&delegated, &at(10), &root, &keys);
        let message = failure(verify_bundle_pinned(&forged, &jwks(&[&root])));
        assert!(
            message.contains("bundle key d-1 has no valid certificate"),
            "{message}"
        );
        let message = failure(verify_bundle(&forged));
        assert!(
            message.contains("bundle key d-1 has no valid certificate"),
            "{message}"
        );

        // Embedding the impostor as the root fools only a verifier that pins nothing.
        let keys = [delegated.delegated(&impostor, window()), impostor.root()];
        let forged = bundle(&delegated, &at(10), &impostor, &keys);
        verify_bundle(&forged).unwrap();
        let message = failure(verify_bundle_pinned(&forged, &jwks(&[&root])));
        assert!(
            message.contains("bundle key root-1 is not one of the pinned vault keys"),
            "{message}"
        );
    }

    #[test]
    fn a_certificate_with_an_edited_window_fails() {
        let root = TestKey::new(1, "root-1");
        let delegated = TestKey::new(2, "d-1");
        let keys = [delegated.delegated(&root, window()), root.root()];
        let mut forged = bundle(&delegated, &at(7200), &root, &keys);
        let version = &mut forged.keys[0];
        let payload = b64(&version.attestation_payload, "payload").unwrap();
        let mut fields = KeyCertificate::parse(&payload).unwrap();
        fields.not_after = "2099-01-01T00:00:00Z".into();
        version.attestation_payload = URL_SAFE_NO_PAD.encode(fields.payload());
        let message = failure(verify_bundle_pinned(&forged, &jwks(&[&root])));
        assert!(
            message.contains("bundle key d-1 has no valid certificate"),
            "{message}"
        );
        assert!(failure(verify_bundle(&forged)).contains("has no valid certificate"));
    }

    #[test]
    fn a_certificate_for_another_key_fails() {
        let root = TestKey::new(1, "root-1");
        let delegated = TestKey::new(2, "d-1");
        let thief = TestKey::new(3, "d-1");
        // The thief's key under d-1's name, with d-1's genuine certificate.
        let mut stolen = delegated.delegated(&root, window());
        stolen.ed25519 = thief.public().ed25519;
        let forged = bundle(&thief, &at(10), &root, &[stolen, root.root()]);
        let message = failure(verify_bundle_pinned(&forged, &jwks(&[&root])));
        assert!(
            message.contains("bundle key d-1 has no valid certificate"),
            "{message}"
        );
    }

    #[test]
    fn a_receipt_outside_the_delegated_window_fails() {
        let root = TestKey::new(1, "root-1");
        let delegated = TestKey::new(2, "d-1");
        let keys = [delegated.delegated(&root, window()), root.root()];
        for accepted_at in [at(3660), at(-61), at(86_400)] {
            let late = bundle(&delegated, &accepted_at, &root, &keys);
            let message = failure(verify_bundle_pinned(&late, &jwks(&[&root])));
            assert!(
                message.contains(&format!(
                    "key d-1 signed at {accepted_at}, outside its certified window"
                )),
                "{message}"
            );
            assert!(failure(verify_bundle(&late)).contains("outside its certified window"));
        }
        // The edges of the window are inside it (not_after exclusive).
        for accepted_at in [at(-60), at(3659)] {
            verify_bundle_pinned(
                &bundle(&delegated, &accepted_at, &root, &keys),
                &jwks(&[&root]),
            )
            .unwrap();
        }
    }

    #[test]
    fn a_checkpoint_signed_by_a_delegated_key_fails() {
        let root = TestKey::new(1, "root-1");
        let delegated = TestKey::new(2, "d-1");
        let keys = [delegated.delegated(&root, window()), root.root()];
        let bundle = bundle(&delegated, &at(10), &delegated, &keys);
        let message = failure(verify_bundle_pinned(&bundle, &jwks(&[&root])));
        assert!(
            message.contains(
                "checkpoint 1 is signed by delegated key d-1: only root keys sign checkpoints"
            ),
            "{message}"
        );
        assert!(failure(verify_bundle(&bundle)).contains("only root keys sign checkpoints"));

        // The same for the checkpoint a consistency proof leads to.
        let first = crate::audit::tests::bundle(&delegated, &at(10), &root, &keys);
        let later = extended(first, &delegated, &keys);
        let message = failure(verify_bundle_pinned(&later, &jwks(&[&root])));
        assert!(
            message.contains("checkpoint 2 is signed by delegated key d-1"),
            "{message}"
        );
    }

    #[test]
    fn a_bundle_spanning_a_root_rotation_verifies_with_both_roots_pinned() {
        let old_root = TestKey::new(1, "root-1");
        let new_root = TestKey::new(4, "root-2");
        let delegated = TestKey::new(2, "d-1");
        let keys = [
            delegated.delegated(&old_root, window()),
            old_root.root(),
            new_root.root(),
        ];
        let first = bundle(&delegated, &at(10), &old_root, &keys);
        let bundle = extended(first, &new_root, &keys);
        let verdict = verify_bundle_pinned(&bundle, &jwks(&[&old_root, &new_root])).unwrap();
        assert!(
            verdict.contains("checkpoint 2 extends it append-only"),
            "{verdict}"
        );
        verify_bundle(&bundle).unwrap();
        // Pinning only the old root refuses the new one.
        let message = failure(verify_bundle_pinned(&bundle, &jwks(&[&old_root])));
        assert!(
            message.contains("bundle key root-2 is not one of the pinned vault keys"),
            "{message}"
        );
    }

    #[test]
    fn a_consistency_proof_must_start_at_the_signed_inclusion_checkpoint() {
        let root = TestKey::new(1, "root-1");
        let keys = [root.root()];
        let first = bundle(&root, &at(10), &root, &keys);
        let mut forged = extended(first, &root, &keys);
        let consistency = forged.consistency.as_mut().unwrap();
        consistency.from_checkpoint.root_hash = hex::encode([7u8; 32]);
        let message = failure(verify_bundle(&forged));
        assert!(
            message.contains("does not start at the inclusion checkpoint"),
            "{message}"
        );
    }

    #[test]
    fn a_certified_key_whose_issuer_is_not_pinned_fails() {
        let root = TestKey::new(1, "root-1");
        let other_root = TestKey::new(5, "root-other");
        let delegated = TestKey::new(2, "d-1");
        // Certified by a genuine-looking root the auditor does not pin (and the bundle does not embed).
        let keys = [delegated.delegated(&other_root, window()), root.root()];
        let bundle = bundle(&delegated, &at(10), &root, &keys);
        let message = failure(verify_bundle_pinned(&bundle, &jwks(&[&root])));
        assert!(
            message.contains("bundle key d-1 has no valid certificate: its issuer root-other is not a pinned root key"),
            "{message}"
        );
        let message = failure(verify_bundle(&bundle));
        assert!(
            message.contains("its issuer root-other is not a root key in the bundle"),
            "{message}"
        );
        // A root pinned under another kid does not stand in for the issuer either.
        let mut renamed = PinnedRoots::new();
        renamed.add(Some("root-1".into()), root.public().ed25519);
        renamed.add(Some("root-x".into()), other_root.public().ed25519);
        let message = failure(verify_bundle_pinned(&bundle, &renamed));
        assert!(message.contains("is not a pinned root key"), "{message}");
    }

    #[test]
    fn keys_without_a_valid_attestation_fail() {
        let root = TestKey::new(1, "root-1");
        let delegated = TestKey::new(2, "d-1");
        let keys = [delegated.delegated(&root, window()), root.root()];
        let good = bundle(&delegated, &at(10), &root, &keys);

        let mut bare = good.clone();
        bare.keys[0].attestation_payload.clear();
        let message = failure(verify_bundle_pinned(&bare, &jwks(&[&root])));
        assert!(
            message.contains("bundle key d-1 has no valid certificate"),
            "{message}"
        );

        let mut unknown = good.clone();
        unknown.keys[0].attestation_status = "self-signed".into();
        let message = failure(verify_bundle(&unknown));
        assert!(
            message.contains("bundle key d-1 has no valid certificate"),
            "{message}"
        );

        let mut twice = good.clone();
        twice.keys.push(twice.keys[1].clone());
        assert!(failure(verify_bundle(&twice)).contains("twice"));

        let mut renamed = good;
        renamed.keys[1].key_id = "root-2".into();
        assert!(failure(verify_bundle(&renamed)).contains("carries the JWK of key root-1"));
    }

    #[test]
    fn a_delegated_key_in_the_jwks_cannot_pass_for_a_root() {
        let root = TestKey::new(1, "root-1");
        let delegated = TestKey::new(2, "root-1.d1800000000");
        // The vault's JWKS lists the live delegated key beside its root.
        let published = jwks(&[&root, &delegated]);
        assert!(published.pins("root-1", &root.public().ed25519));
        assert!(!published.pins("root-1.d1800000000", &delegated.public().ed25519));
        let keys = [delegated.delegated(&root, window()), root.root()];
        verify_bundle_pinned(&bundle(&delegated, &at(10), &root, &keys), &published).unwrap();

        // A holder of the delegated key strips its certificate and calls it a root, to sign outside its window.
        let mut stripped = delegated.root();
        stripped.active_from = at(0);
        let forged = bundle(
            &delegated,
            &at(86_400),
            &root,
            &[stripped.clone(), root.root()],
        );
        let message = failure(verify_bundle_pinned(&forged, &published));
        assert!(
            message.contains("bundle key root-1.d1800000000 is not one of the pinned vault keys"),
            "{message}"
        );
        // ... or to sign a checkpoint.
        let forged = bundle(&delegated, &at(10), &delegated, &[stripped, root.root()]);
        assert!(verify_bundle_pinned(&forged, &published).is_err());

        assert!(delegated_name("root-1.d1800000000", &["root-1"]));
        assert!(!delegated_name("root-1.d1800000000", &["root-2"]));
        assert!(!delegated_name("root-1.dev", &["root-1"]));
        assert!(!delegated_name("vault-key-001", &["vault-key-001"]));
    }

    #[test]
    fn bundles_from_before_certificates_still_verify() {
        let root = TestKey::new(1, "vault-key-001");
        let mut legacy = bundle(&root, &at(10), &root, &[root.root()]);
        legacy.keys[0].attestation_status.clear();
        verify_bundle(&legacy).unwrap();
        verify_bundle_pinned(&legacy, &jwks(&[&root])).unwrap();
        let other = TestKey::new(6, "vault-key-001");
        assert!(verify_bundle_pinned(&legacy, &jwks(&[&other])).is_err());
        assert!(verify_bundle_pinned(&legacy, &PinnedRoots::new()).is_err());
    }

    #[test]
    fn root_keys_are_pinned_from_the_forms_an_auditor_has() {
        let root = TestKey::new(1, "root-1");
        let raw = root.public().ed25519;
        let url = URL_SAFE_NO_PAD.encode(raw);
        let standard = base64::engine::general_purpose::STANDARD.encode(raw);

        let mut roots = PinnedRoots::new();
        roots.add_encoded(&url).unwrap();
        roots.add_encoded(&standard).unwrap();
        assert_eq!(
            roots.roots(),
            &[PinnedRoot {
                kid: None,
                ed25519: raw
            }]
        );
        assert!(roots.pins("any-kid", &raw));

        let mut named = PinnedRoots::new();
        named.add_encoded(&format!("root-1={standard}")).unwrap();
        assert!(named.pins("root-1", &raw));
        assert!(!named.pins("root-2", &raw));

        let mut bad = PinnedRoots::new();
        assert!(bad.add_encoded("not base64!").is_err());
        assert!(bad.add_encoded(&URL_SAFE_NO_PAD.encode([1u8; 16])).is_err());

        let mut documents = PinnedRoots::new();
        let jwks = serde_json::json!({ "keys": [root.jwk()] }).to_string();
        assert_eq!(documents.add_document(&jwks).unwrap(), 1);
        assert!(documents.pins("root-1", &raw) && !documents.pins("root-2", &raw));
        let mut single = PinnedRoots::new();
        assert_eq!(single.add_document(&root.jwk().to_string()).unwrap(), 1);
        assert!(single.pins("root-1", &raw));
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let pem = root
            .signing
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let mut from_pem = PinnedRoots::new();
        assert_eq!(from_pem.add_document(&pem).unwrap(), 1);
        assert!(from_pem.pins("whatever", &raw));
        assert!(PinnedRoots::new().add_document("{}").is_err());
        assert!(PinnedRoots::new().add_document("hello").is_err());
    }
}
