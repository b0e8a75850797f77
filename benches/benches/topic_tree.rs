//! Cost of matching one topic against the subscription tree, by number of
//! subscriptions (1k, 10k, 100k), for exact and wildcard filters.
//! `cargo bench -p tern-bench --bench topic_tree`.
//!
//! The tree is a trie by level, so a match should cost the topic's depth
//! plus the matches, not the number of subscriptions: the three sizes should
//! give about the same time.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tern::topic::SubscriptionTree;

const SIZES: [u32; 3] = [1_000, 10_000, 100_000];

/// Topics are looked up round-robin from this many, so one cached path does
/// not flatter the figure.
const PROBES: u32 = 256;

/// A device topic: `site/<s>/dev/<d>/temp`, 1,000 devices per site.
fn topic(i: u32) -> String {
    format!("site/{}/dev/{}/temp", i / 1000, i % 1000)
}

/// Subscription `i` to exactly one device's topic.
fn exact_filter(i: u32) -> String {
    topic(i)
}

/// Subscription `i` with wildcards, in four shapes. Each still matches
/// only topic `i`, so every probe matches exactly one subscription in both
/// benches: the difference is the extra `+` and `#` branches the walk
/// enters (a `+` at the root, and under every site).
fn wildcard_filter(i: u32) -> String {
    let (s, d) = (i / 1000, i % 1000);
    match i % 4 {
        0 => format!("site/{s}/+/{d}/temp"),
        1 => format!("site/{s}/dev/{d}/#"),
        2 => format!("+/{s}/dev/{d}/temp"),
        _ => format!("site/{s}/dev/{d}/+"),
    }
}

fn tree(n: u32, filter: fn(u32) -> String) -> SubscriptionTree<u32, u8> {
    let mut t = SubscriptionTree::default();
    for i in 0..n {
        // The router keys by session and stores the subscription options;
        // small stand-ins keep the figure about the walk, not hashing.
        t.insert(&filter(i), i, 1);
    }
    t
}

fn bench_match(c: &mut Criterion, name: &str, filter: fn(u32) -> String) {
    let mut group = c.benchmark_group(format!("topic_tree/{name}"));
    for n in SIZES {
        let t = tree(n, filter);
        // Probe topics spread over the subscribed range.
        let probes: Vec<String> = (0..PROBES).map(|k| topic(k * (n / PROBES))).collect();
        // The premise of comparing the two benches: one match per probe.
        for p in &probes {
            let mut matched = 0;
            t.for_each_match(p, |_, _| matched += 1);
            assert_eq!(matched, 1, "{p} in {name}/{n}");
        }
        let mut next = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(n), &t, |b, t| {
            b.iter(|| {
                let topic = &probes[next % probes.len()];
                next += 1;
                let mut matched = 0u32;
                t.for_each_match(black_box(topic), |_, _| matched += 1);
                matched
            })
        });
    }
    group.finish();
}

fn bench_tree(c: &mut Criterion) {
    bench_match(c, "match_exact", exact_filter);
    bench_match(c, "match_wildcard", wildcard_filter);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = bench_tree
}
criterion_main!(benches);
