//! RFC 6962 Merkle trees as the SDK verifies them: leaf = SHA-256(0x00 ‖ event_hash),
//! node = SHA-256(0x01 ‖ left ‖ right).
//!
//! The tree is kept as the hashes of its complete subtrees, addressed by `(level, index)`: the subtree of
//! 2^level leaves starting at leaf `index << level` (tlog's "stored hashes"; about 2n for n leaves). Any
//! proof needs O(log n) of them, so proofs cost O(log n) reads whatever the tree size. Proof shapes are
//! RFC 6962 §2.1.1 PATH and §2.1.2 PROOF, computed as lists of leaf ranges first so an adapter can fetch
//! every hash a proof needs in one read.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// The hash of one complete subtree: 2^level leaves starting at leaf `index << level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub level: u8,
    pub index: u64,
}

/// Leaves `[start, start + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub size: u64,
}

pub fn leaf_hash(event_hash: &Hash) -> Hash {
    leaf_hash_data(event_hash)
}

/// RFC 6962 leaf hash of arbitrary leaf data.
pub fn leaf_hash_data(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
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
            let split = largest_power_of_two_below(n as u64) as usize;
            let left = root(&leaves[..split])?;
            let right = root(&leaves[split..])?;
            Some(node_hash(&left, &right))
        }
    }
}

/// Largest power of two strictly less than `n` (n ≥ 2).
pub fn largest_power_of_two_below(n: u64) -> u64 {
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

/// Complete subtrees whose hashes become known when leaf `index` is appended: the leaf itself, then each
/// parent it completes. With `stored` able to return earlier hashes, yields the new `(position, hash)`s.
pub fn append_leaf(
    index: u64,
    leaf: Hash,
    stored: impl Fn(Position) -> Option<Hash>,
) -> Result<Vec<(Position, Hash)>, MissingHash> {
    let mut new = vec![(Position { level: 0, index }, leaf)];
    let (mut level, mut idx, mut hash) = (0u8, index, leaf);
    while idx & 1 == 1 {
        let sibling = Position {
            level,
            index: idx - 1,
        };
        let left = stored(sibling).ok_or(MissingHash(sibling))?;
        hash = node_hash(&left, &hash);
        level += 1;
        idx >>= 1;
        new.push((Position { level, index: idx }, hash));
    }
    Ok(new)
}

/// A hash the computation needed was not supplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("missing tree hash at level {} index {}", .0.level, .0.index)]
pub struct MissingHash(pub Position);

/// The complete subtrees that make up a range, left to right.
pub fn range_positions(range: Range) -> Vec<Position> {
    let mut out = Vec::new();
    let (mut start, end) = (range.start, range.start + range.size);
    while start < end {
        // Largest aligned power-of-two block starting at `start` that fits.
        let mut level = if start == 0 {
            63
        } else {
            start.trailing_zeros() as u8
        };
        while level > 0 && start + (1u64 << level) > end {
            level -= 1;
        }
        out.push(Position {
            level,
            index: start >> level,
        });
        start += 1u64 << level;
    }
    out
}

/// MTH of a range from the hashes of its complete subtrees (RFC 6962 splits at the largest power of two).
pub fn range_hash(
    range: Range,
    stored: &impl Fn(Position) -> Option<Hash>,
) -> Result<Hash, MissingHash> {
    if range.size.is_power_of_two() && range.start.is_multiple_of(range.size) {
        let position = Position {
            level: range.size.trailing_zeros() as u8,
            index: range.start / range.size,
        };
        return stored(position).ok_or(MissingHash(position));
    }
    let split = largest_power_of_two_below(range.size);
    let left = range_hash(
        Range {
            start: range.start,
            size: split,
        },
        stored,
    )?;
    let right = range_hash(
        Range {
            start: range.start + split,
            size: range.size - split,
        },
        stored,
    )?;
    Ok(node_hash(&left, &right))
}

/// RFC 6962 PATH(m, D[0:n]) as ranges, leaf-side first (the order the SDK verifier consumes).
pub fn inclusion_ranges(leaf_index: u64, tree_size: u64) -> Vec<Range> {
    fn path(m: u64, start: u64, n: u64, out: &mut Vec<Range>) {
        if n <= 1 {
            return;
        }
        let k = largest_power_of_two_below(n);
        if m < k {
            path(m, start, k, out);
            out.push(Range {
                start: start + k,
                size: n - k,
            });
        } else {
            path(m - k, start + k, n - k, out);
            out.push(Range { start, size: k });
        }
    }
    let mut out = Vec::new();
    if leaf_index < tree_size {
        path(leaf_index, 0, tree_size, &mut out);
    }
    out
}

/// RFC 6962 PROOF(m, D[0:n]) as ranges (empty when m == n or m == 0).
pub fn consistency_ranges(old_size: u64, new_size: u64) -> Vec<Range> {
    fn subproof(m: u64, start: u64, n: u64, complete: bool, out: &mut Vec<Range>) {
        if m == n {
            if !complete {
                out.push(Range { start, size: n });
            }
            return;
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            subproof(m, start, k, complete, out);
            out.push(Range {
                start: start + k,
                size: n - k,
            });
        } else {
            subproof(m - k, start + k, n - k, false, out);
            out.push(Range { start, size: k });
        }
    }
    let mut out = Vec::new();
    if 0 < old_size && old_size < new_size {
        subproof(old_size, 0, new_size, true, &mut out);
    }
    out
}

/// Every stored position a set of ranges needs: fetch these, then call `range_hash` for each range.
pub fn positions_for(ranges: &[Range]) -> Vec<Position> {
    let mut positions: Vec<Position> = ranges.iter().flat_map(|r| range_positions(*r)).collect();
    positions.sort();
    positions.dedup();
    positions
}

/// Hashes of `ranges` from a fetched map of stored hashes.
pub fn hashes_for(
    ranges: &[Range],
    stored: &HashMap<Position, Hash>,
) -> Result<Vec<Hash>, MissingHash> {
    let lookup = |p: Position| stored.get(&p).copied();
    ranges.iter().map(|r| range_hash(*r, &lookup)).collect()
}

/// Verify an inclusion proof (RFC 9162 §2.1.3.2), independent of how it was produced.
pub fn verify_inclusion(
    leaf: &Hash,
    leaf_index: u64,
    tree_size: u64,
    path: &[Hash],
    root: &Hash,
) -> bool {
    if leaf_index >= tree_size {
        return false;
    }
    let (mut fn_, mut sn, mut r) = (leaf_index, tree_size - 1, *leaf);
    for p in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Verify a consistency proof (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    path: &[Hash],
) -> bool {
    if old_size == new_size {
        return old_root == new_root && path.is_empty();
    }
    if old_size == 0 || old_size > new_size || path.is_empty() {
        return false;
    }
    let mut proof: Vec<Hash> = path.to_vec();
    if old_size.is_power_of_two() {
        proof.insert(0, *old_root);
    }
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (proof[0], proof[0]);
    for c in &proof[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && fr == *old_root && sr == *new_root
}
