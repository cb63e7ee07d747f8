//! RFC 6962 Merkle tree hashing as the SDK verifies it: leaf = SHA-256(0x00 ‖ event_hash),
//! node = SHA-256(0x01 ‖ left ‖ right).

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(event_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(event_hash);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the tree over `leaves` (RFC 6962 MTH); `None` for the empty tree.
pub fn root(leaves: &[Hash]) -> Option<Hash> {
    match leaves.len() {
        0 => None,
        1 => Some(leaves[0]),
        n => {
            let split = largest_power_of_two_below(n);
            let left = root(&leaves[..split])?;
            let right = root(&leaves[split..])?;
            Some(node_hash(&left, &right))
        }
    }
}

/// Largest power of two strictly less than `n` (n ≥ 2).
pub fn largest_power_of_two_below(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

pub fn parse_hash(hex_str: &str) -> Option<Hash> {
    let bytes = hex::decode(hex_str).ok()?;
    bytes.try_into().ok()
}
