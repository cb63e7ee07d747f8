//! API keys: random, shown once, stored only as SHA-256 hashes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::hashing::sha256_hex;

/// Prefix that makes a leaked key easy to recognise in secret scanners.
pub const TENANT_KEY_PREFIX: &str = "lvk_";
pub const ADMIN_KEY_PREFIX: &str = "lva_";

/// A new random key: prefix + 256 bits, base64url.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a key. Keys carry 256 bits of entropy, so an unsalted hash is not brute-forceable.
pub fn hash(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

/// Constant-time check of a presented key against a stored hash.
pub fn matches(presented: &str, stored_hash: &str) -> bool {
    hash(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}
