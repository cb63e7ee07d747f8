//! Merkle proofs against RFC 6962's definitions (a direct recursive implementation), the Certificate
//! Transparency reference vectors, and our verifiers.

use std::collections::HashMap;

use ledgix_core::merkle::{
    append_leaf, consistency_ranges, hashes_for, inclusion_ranges, leaf_hash_data, node_hash,
    positions_for, root, verify_consistency, verify_inclusion, Hash, Position,
};

/// RFC 6962 §2.1.1 PATH, written straight from the definition.
fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = (n as u64).next_power_of_two() as usize / 2;
    let k = if k == n { n / 2 } else { k };
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(root(&leaves[k..]).expect("non-empty"));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(root(&leaves[..k]).expect("non-empty"));
        p
    }
}

/// RFC 6962 §2.1.2 PROOF / SUBPROOF.
fn proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    fn sub(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b {
                vec![]
            } else {
                vec![root(d).expect("non-empty")]
            };
        }
        let k = (n as u64).next_power_of_two() as usize / 2;
        let k = if k == n { n / 2 } else { k };
        if m <= k {
            let mut p = sub(m, &d[..k], b);
            p.push(root(&d[k..]).expect("non-empty"));
            p
        } else {
            let mut p = sub(m - k, &d[k..], false);
            p.push(root(&d[..k]).expect("non-empty"));
            p
        }
    }
    sub(m, leaves, true)
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash_data(&(i as u64).to_be_bytes()))
        .collect()
}

/// Build the stored-hash map by appending leaves one at a time, as the sequencer does.
fn stored(leaves: &[Hash]) -> HashMap<Position, Hash> {
    let mut map = HashMap::new();
    for (i, leaf) in leaves.iter().enumerate() {
        for (p, h) in
            append_leaf(i as u64, *leaf, |p| map.get(&p).copied()).expect("siblings present")
        {
            map.insert(p, h);
        }
    }
    map
}

#[test]
fn inclusion_and_consistency_match_the_rfc_definitions() {
    let all = leaves(70);
    let map = stored(&all);
    for n in 1..=all.len() {
        let tree = &all[..n];
        let tree_root = root(tree).expect("non-empty");
        for m in 0..n {
            let ranges = inclusion_ranges(m as u64, n as u64);
            let got = hashes_for(&ranges, &map).expect("stored hashes suffice");
            assert_eq!(got, path(m, tree), "PATH({m}, {n})");
            assert!(verify_inclusion(
                &tree[m], m as u64, n as u64, &got, &tree_root
            ));
            assert!(
                !verify_inclusion(&tree[m], m as u64 ^ 1, n as u64, &got, &tree_root)
                    || n == 1
                    || got.is_empty()
            );
        }
        for m in 1..=n {
            let ranges = consistency_ranges(m as u64, n as u64);
            let got = hashes_for(&ranges, &map).expect("stored hashes suffice");
            let expected = if m == n { vec![] } else { proof(m, tree) };
            assert_eq!(got, expected, "PROOF({m}, {n})");
            let old_root = root(&all[..m]).expect("non-empty");
            assert!(
                verify_consistency(m as u64, n as u64, &old_root, &tree_root, &got),
                "verify PROOF({m}, {n})"
            );
            if m < n {
                let wrong = node_hash(&old_root, &old_root);
                assert!(!verify_consistency(
                    m as u64, n as u64, &wrong, &tree_root, &got
                ));
            }
        }
    }
}

#[test]
fn positions_cover_every_range_in_logarithmic_reads() {
    let n = 1_000_003u64;
    for m in [0u64, 1, 12_345, 999_999, n - 1] {
        let positions = positions_for(&inclusion_ranges(m, n));
        assert!(
            positions.len() <= 2 * 64,
            "{} reads for an inclusion proof",
            positions.len()
        );
    }
}

fn hex32(s: &str) -> Hash {
    hex::decode(s).expect("hex").try_into().expect("32 bytes")
}

/// Certificate Transparency's reference tree (certificate-transparency-go merkletree tests): eight leaves
/// and the root of every prefix.
#[test]
fn ct_reference_vectors() {
    let data: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash_data(d)).collect();
    for (n, expected) in roots.iter().enumerate() {
        assert_eq!(
            root(&leaves[..n + 1]).expect("non-empty"),
            hex32(expected),
            "root of {} leaves",
            n + 1
        );
    }
    let map = stored(&leaves);
    // RFC 6962 consistency proof between sizes 6 and 8, from the same reference tests.
    let proof = hashes_for(&consistency_ranges(6, 8), &map).expect("stored");
    let expected = [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ];
    assert_eq!(proof, expected.iter().map(|h| hex32(h)).collect::<Vec<_>>());
}
