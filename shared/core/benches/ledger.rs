//! Sealing and proofs, CPU only (the store is an in-memory array of stored hashes per level).
//! Run: cargo bench -p ledgix-core --bench ledger

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ledgix_core::merkle::{self, Hash, Position, Range};

/// Stored hashes by level, as a compact stand-in for the tree_nodes table.
struct Levels(Vec<Vec<Hash>>);

impl Levels {
    fn get(&self, p: Position) -> Option<Hash> {
        self.0.get(p.level as usize)?.get(p.index as usize).copied()
    }

    fn append(&mut self, index: u64, leaf: Hash) {
        for (p, h) in merkle::append_leaf(index, leaf, |p| self.get(p)).expect("siblings stored") {
            let level = p.level as usize;
            if self.0.len() <= level {
                self.0.push(Vec::new());
            }
            self.0[level].push(h);
        }
    }
}

fn leaf(i: u64) -> Hash {
    merkle::leaf_hash(&merkle::leaf_hash_data(&i.to_be_bytes()))
}

fn build(n: u64) -> Levels {
    let mut levels = Levels(Vec::new());
    for i in 0..n {
        levels.append(i, leaf(i));
    }
    levels
}

fn sequencing(c: &mut Criterion) {
    let mut group = c.benchmark_group("sequencing");
    let batch = 10_000u64;
    let leaves: Vec<Hash> = (0..batch).map(leaf).collect();
    group.throughput(Throughput::Elements(batch));
    group.bench_function("append_10k_leaves_and_root", |b| {
        b.iter_batched(
            || build(1_000),
            |mut levels| {
                let start = 1_000u64;
                for (i, l) in leaves.iter().enumerate() {
                    levels.append(start + i as u64, *l);
                }
                merkle::range_hash(
                    Range {
                        start: 0,
                        size: start + batch,
                    },
                    &|p| levels.get(p),
                )
                .expect("root")
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    let n = 10_000_000u64;
    let levels = build(n);
    let mut group = c.benchmark_group("proofs_10m_leaves");
    for m in [0u64, 4_999_999, n - 1] {
        group.bench_with_input(BenchmarkId::new("inclusion", m), &m, |b, &m| {
            b.iter(|| {
                let ranges = merkle::inclusion_ranges(black_box(m), n);
                let fetched: HashMap<Position, Hash> = merkle::positions_for(&ranges)
                    .into_iter()
                    .filter_map(|p| levels.get(p).map(|h| (p, h)))
                    .collect();
                merkle::hashes_for(&ranges, &fetched).expect("proof")
            })
        });
    }
    group.bench_function("consistency_9_999_000_to_10m", |b| {
        b.iter(|| {
            let ranges = merkle::consistency_ranges(black_box(9_999_000), n);
            let fetched: HashMap<Position, Hash> = merkle::positions_for(&ranges)
                .into_iter()
                .filter_map(|p| levels.get(p).map(|h| (p, h)))
                .collect();
            merkle::hashes_for(&ranges, &fetched).expect("proof")
        })
    });
    group.finish();
}

criterion_group!(benches, sequencing, proofs);
criterion_main!(benches);
