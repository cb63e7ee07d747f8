//! C2SP signed notes (c2sp.org/signed-note) and transparency-log checkpoints (c2sp.org/tlog-checkpoint),
//! so standard tooling and witnesses can follow each tenant's log.
//!
//! Checkpoint body: "<origin>\n<tree size>\n<base64 root hash>\n". A signature line is
//! "— <key name> <base64(key hash[4] ‖ Ed25519 signature[64])>\n", where the key hash is the first four bytes
//! of SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

const ED25519_ALGORITHM: u8 = 0x01;
const EM_DASH: &str = "\u{2014}";

/// The body of a tlog checkpoint note.
pub fn checkpoint_body(origin: &str, tree_size: u64, root: &[u8; 32]) -> String {
    format!("{origin}\n{tree_size}\n{}\n", STANDARD.encode(root))
}

pub fn key_hash(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519_ALGORITHM]);
    h.update(public_key);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The verifier key string, `<name>+<hex key hash>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    let mut encoded = vec![ED25519_ALGORITHM];
    encoded.extend_from_slice(public_key);
    format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, public_key)),
        STANDARD.encode(encoded)
    )
}

/// A signed note: the body, a blank line, one signature line.
pub fn signed(body: &str, name: &str, public_key: &[u8; 32], signature: &[u8]) -> String {
    let mut sig = key_hash(name, public_key).to_vec();
    sig.extend_from_slice(signature);
    format!("{body}\n{EM_DASH} {name} {}\n", STANDARD.encode(sig))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note")]
    Malformed,
    #[error("no signature by {0}")]
    NoSignature(String),
    #[error("signature by {0} does not verify")]
    BadSignature(String),
}

/// Check that `note` carries a valid signature by `name`/`public_key`; returns the body.
pub fn verify<'a>(note: &'a str, name: &str, public_key: &[u8; 32]) -> Result<&'a str, NoteError> {
    let split = note.rfind("\n\n").ok_or(NoteError::Malformed)?;
    let (body, signatures) = (&note[..split + 1], &note[split + 2..]);
    let wanted = key_hash(name, public_key);
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| NoteError::Malformed)?;
    for line in signatures.lines() {
        let Some(rest) = line.strip_prefix(EM_DASH).and_then(|l| l.strip_prefix(' ')) else {
            continue;
        };
        let Some((line_name, sig)) = rest.split_once(' ') else {
            continue;
        };
        if line_name != name {
            continue;
        }
        let Ok(bytes) = STANDARD.decode(sig) else {
            continue;
        };
        if bytes.len() != 68 || bytes[..4] != wanted {
            continue;
        }
        let signature =
            Signature::from_slice(&bytes[4..]).map_err(|_| NoteError::BadSignature(name.into()))?;
        return key
            .verify(body.as_bytes(), &signature)
            .map(|_| body)
            .map_err(|_| NoteError::BadSignature(name.into()));
    }
    Err(NoteError::NoSignature(name.into()))
}

/// Parse a checkpoint body into (origin, tree size, root).
pub fn parse_checkpoint_body(body: &str) -> Option<(String, u64, [u8; 32])> {
    let mut lines = body.lines();
    let origin = lines.next()?.to_string();
    let size = lines.next()?.parse().ok()?;
    let root = STANDARD.decode(lines.next()?).ok()?.try_into().ok()?;
    Some((origin, size, root))
}
