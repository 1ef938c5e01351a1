//! Why every tenant's records share one sled tree (docs/TENANTS.md, BENCHMARKS.md
//! "Tenants"): the same groups of commits from `SLED_LAYOUT_TENANTS` tenants (default 20),
//! written either into a tree per tenant (one batch per tenant in each group) or into one
//! tree with a key prefix per tenant (one batch per group), each group flushed once as the
//! store's writer does. Each commit writes records shaped like the engine's (an agent, a
//! conversation, a message, the counters). Prints the time per group and the bytes the
//! process wrote to disk for each layout.
//!
//! `cargo bench --bench sled_tenant_layout` (`SLED_LAYOUT_GROUPS`, default 5,000 groups of
//! `SLED_LAYOUT_PER_GROUP`, default 15, commits)

use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// One commit's records: (key, value), keys without the tenant's prefix.
fn commit(seq: u64, value: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let agent = (seq * 7) % 100;
    let conversation = seq / 3;
    vec![
        (format!("a{agent:04}").into_bytes(), value.to_vec()),
        (format!("cc-{conversation:08}").into_bytes(), value.to_vec()),
        (format!("m{conversation:08}{seq:08}").into_bytes(), value.to_vec()),
        (b"zcounters".to_vec(), vec![1u8; 24]),
    ]
}

fn run(tenants: usize, trees: bool, groups: usize, per_group: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .cache_capacity(1 << 30)
        .open()
        .expect("sled");
    let tenant_trees: Vec<sled::Tree> = (0..tenants)
        .map(|t| db.open_tree(format!("tenant/t{t}")).expect("tree"))
        .collect();
    let value = vec![7u8; 300];
    let before = written_bytes();
    let started = Instant::now();
    let mut seq = 0u64;
    for g in 0..groups {
        let mut per_tenant: Vec<sled::Batch> = (0..tenants).map(|_| sled::Batch::default()).collect();
        let mut one = sled::Batch::default();
        for c in 0..per_group {
            let t = (g * per_group + c) % tenants;
            for (k, v) in commit(seq, &value) {
                if trees {
                    per_tenant[t].insert(k, v);
                } else {
                    let mut key = format!("~t{t}/").into_bytes();
                    key.extend_from_slice(&k);
                    one.insert(key, v);
                }
            }
            seq += 1;
        }
        if trees {
            let touched: std::collections::BTreeSet<usize> =
                (0..per_group).map(|c| (g * per_group + c) % tenants).collect();
            for (t, batch) in per_tenant.into_iter().enumerate() {
                if touched.contains(&t) {
                    tenant_trees[t].apply_batch(batch).expect("batch");
                }
            }
        } else {
            db.apply_batch(one).expect("batch");
        }
        db.flush().expect("flush");
    }
    let took = started.elapsed();
    println!(
        "{tenants} tenants, {}: {:.2} ms per group, {} MiB written",
        if trees {
            "a tree each"
        } else {
            "one tree, a prefix each"
        },
        took.as_secs_f64() * 1000.0 / groups as f64,
        (written_bytes() - before) >> 20
    );
}

fn main() {
    let tenants = env("SLED_LAYOUT_TENANTS", 20);
    let groups = env("SLED_LAYOUT_GROUPS", 5_000);
    let per_group = env("SLED_LAYOUT_PER_GROUP", 15);
    run(tenants, true, groups, per_group);
    run(tenants, false, groups, per_group);
}
