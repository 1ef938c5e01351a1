//! How much memory sled keeps while batches are written into a fresh tree, as
//! `switchboard restore` does (BENCHMARKS.md "Bounded restore"; vendor/sled/README.switchboard.md,
//! change 5). Writes `SLED_MEMORY_MB` (default 384) MB of records shaped like the store's
//! (keys of about 25 bytes, values of 100-150) in batches of `SLED_MEMORY_BATCH_KB` (default
//! 256), flushing sled's log every `SLED_MEMORY_FLUSH_EVERY` batches (default 16), with a
//! 64 MiB cache, into a temporary directory; prints the process's RSS, its peak and the heap
//! in use (glibc's count) every 128 MB.
//!
//! `cargo bench --bench sled_batch_memory`

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            >> 10
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let heap = format!(", heap in use {} MiB", unsafe { libc::mallinfo2() }.uordblks >> 20);
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let heap = String::new();
    format!("RSS {} MiB (peak {} MiB){heap}", field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let total = env("SLED_MEMORY_MB", 384) << 20;
    let batch_bytes = env("SLED_MEMORY_BATCH_KB", 256) << 10;
    let flush_every = env("SLED_MEMORY_FLUSH_EVERY", 16).max(1);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .cache_capacity(64 << 20)
        .open()
        .expect("sled opens");
    let started = std::time::Instant::now();
    let (mut written, mut records, mut batches) = (0usize, 0u64, 0usize);
    while written < total {
        let mut batch = sled::Batch::default();
        let mut bytes = 0;
        while bytes < batch_bytes {
            let key = format!("c{:016}/m{:04}", records / 5, records % 5);
            let value = vec![(records % 251) as u8; 100 + (records % 50) as usize];
            bytes += key.len() + value.len();
            batch.insert(key.as_bytes(), value);
            records += 1;
        }
        db.apply_batch(batch).expect("apply");
        batches += 1;
        if batches % flush_every == 0 {
            db.flush().expect("flush");
        }
        written += bytes;
        if written % (128 << 20) < bytes {
            println!(
                "{} MB, {records} records, {:.1} s: {}",
                written >> 20,
                started.elapsed().as_secs_f64(),
                memory()
            );
        }
    }
    db.flush().expect("flush");
    println!("done in {:.1} s: {}", started.elapsed().as_secs_f64(), memory());
}
