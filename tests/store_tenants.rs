//! Tenants inside one sled store (docs/TENANTS.md "One tenant, one engine; one store for
//! all"): each tenant's records under a scope of their own, every tenant's commits in one
//! group and one flush, a tenant's records kept across a reopen and gone with the tenant
//! (a chunk at a time, other tenants' commits going on), `default`'s backup without the
//! other tenants, and a tenant restored from its own backup.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use switchboard::core::{Change, Queue};
use switchboard::store::sled::{restore_tenant, SledOptions, STORE_FORMAT};
use switchboard::store::{SledStore, Store, StoreError};

fn queue(id: &str, name: &str) -> Change {
    Change::Queue(Queue::new(id.into(), name.into()))
}

fn counters(n: u64) -> Change {
    Change::Counters {
        next_conversation: n,
        next_offer: n,
        next_arrival: n,
    }
}

fn queue_names(store: &dyn Store) -> Vec<(String, String)> {
    let snapshot = store.load().expect("load");
    snapshot.queues.into_iter().map(|q| (q.id, q.name)).collect()
}

/// While the first group's flush is held, commits of two tenants and of `default` queue
/// up; they all go in the next group: two flushes for 21 commits of three tenants.
#[test]
fn every_tenants_commits_share_one_group_and_one_flush() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (release, held) = mpsc::channel::<()>();
    let held = Mutex::new(held);
    let flushes = Arc::new(AtomicUsize::new(0));
    let counted = flushes.clone();
    let options = SledOptions {
        before_flush: Some(Arc::new(move || {
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first flush waits until the test has handed over every other commit.
                let _ = held.lock().map_err(|e| e.to_string())?.recv();
            }
            Ok(())
        })),
        ..SledOptions::default()
    };
    let store = SledStore::open(&dir.path().join("data"), options).expect("store");
    let a = store.tenant("acme").expect("tenant acme");
    let b = store.tenant("beta").expect("tenant beta");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let first = store.commit(vec![counters(1)]);
        // The writer took the first commit and waits in its flush.
        while flushes.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let mut rest = Vec::new();
        for i in 0..10 {
            rest.push(a.commit(vec![queue(&format!("q{i}"), "Acme")]));
            rest.push(b.commit(vec![queue(&format!("q{i}"), "Beta")]));
        }
        release.send(()).expect("release the first flush");
        first.await.expect("first commit");
        for c in rest {
            c.await.expect("commit");
        }
    });
    assert_eq!(
        flushes.load(Ordering::SeqCst),
        2,
        "one flush for the first group, one for the rest"
    );
    let stats = store.stats();
    assert_eq!((stats.commits, stats.flushes), (21, 2));
    assert!(queue_names(&a).iter().all(|(_, n)| n == "Acme"));
    assert!(queue_names(&b).iter().all(|(_, n)| n == "Beta"));
    assert_eq!(queue_names(&a).len(), 10);
    assert!(queue_names(&store).is_empty(), "tenant default holds none of theirs");
}

/// A tenant with thousands of records is removed a chunk at a time: another tenant's
/// commits made meanwhile are all durable, and afterwards nothing of the dropped tenant
/// is left, not even across a reopen.
#[test]
fn a_large_tenant_is_dropped_while_another_commits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    {
        let store = SledStore::open(&path, SledOptions::default()).expect("store");
        let big = store.tenant("big").expect("tenant big");
        let other = store.tenant("other").expect("tenant other");
        rt.block_on(async {
            for chunk in 0..10 {
                let queues = (0..1_000).map(|i| queue(&format!("q{chunk}-{i}"), "Big")).collect();
                big.commit(queues).await.expect("commit");
            }
            big.close();
            let dropped = store.drop_tenant("big");
            let commits: Vec<_> = (0..50)
                .map(|i| other.commit(vec![queue(&format!("o{i}"), "Other")]))
                .collect();
            for c in commits {
                c.await.expect("a commit beside the drop");
            }
            dropped.await.expect("drop");
        });
        assert_eq!(store.tenant_ids().expect("ids"), ["other"]);
        assert_eq!(queue_names(&other).len(), 50);
        store.close();
    }
    let store = SledStore::open(&path, SledOptions::default()).expect("store");
    assert_eq!(store.tenant_ids().expect("ids"), ["other"]);
    assert!(queue_names(&store.tenant("big").expect("big again")).is_empty());
}

/// `default`'s backup is `default`'s records only: restored as a store of its own, it has
/// no tenant.
#[test]
fn the_default_tenants_backup_holds_no_other_tenant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("default.backup");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    {
        let store = SledStore::open(&dir.path().join("data"), SledOptions::default()).expect("store");
        let a = store.tenant("acme").expect("tenant acme");
        rt.block_on(async {
            store.commit(vec![queue("d1", "Default")]).await.expect("commit");
            a.commit(vec![queue("q1", "Acme")]).await.expect("commit");
            let mut stream = store.backup().await.expect("backup");
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next_chunk().await {
                bytes.extend(chunk.expect("chunk"));
            }
            std::fs::write(&file, bytes).expect("write the backup");
        });
        store.close();
    }
    let copy = dir.path().join("copy");
    switchboard::store::sled::restore(&file, &copy).expect("restore");
    let store = SledStore::open(&copy, SledOptions::default()).expect("the copy opens");
    assert!(store.tenant_ids().expect("ids").is_empty());
    assert_eq!(queue_names(&store), [("d1".to_string(), "Default".to_string())]);
}

/// Equal ids in two tenants stay apart, across a close and a reopen; a dropped tenant is
/// gone, and opened again it is empty.
#[test]
fn a_tenants_records_are_its_own_and_outlive_a_reopen_until_it_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    {
        let store = SledStore::open(&path, SledOptions::default()).expect("store");
        let a = store.tenant("acme").expect("tenant acme");
        let b = store.tenant("beta").expect("tenant beta");
        rt.block_on(async {
            store
                .commit(vec![queue("q1", "Default"), counters(7)])
                .await
                .expect("commit");
            a.commit(vec![queue("q1", "Acme")]).await.expect("commit");
            b.commit(vec![queue("q1", "Beta"), counters(3)]).await.expect("commit");
        });
        store.close();
        // A closed tenant store takes nothing more.
        let refused = rt.block_on(a.commit(vec![queue("q2", "Late")]));
        assert!(matches!(refused, Err(StoreError::Write(_))), "{refused:?}");
    }
    let store = SledStore::open(&path, SledOptions::default()).expect("store reopens with its tenants");
    let mut ids = store.tenant_ids().expect("tenant ids");
    ids.sort();
    assert_eq!(ids, ["acme", "beta"]);
    let a = store.tenant("acme").expect("tenant acme");
    let b = store.tenant("beta").expect("tenant beta");
    assert_eq!(queue_names(&store), [("q1".to_string(), "Default".to_string())]);
    assert_eq!(queue_names(&a), [("q1".to_string(), "Acme".to_string())]);
    assert_eq!(queue_names(&b), [("q1".to_string(), "Beta".to_string())]);
    assert_eq!(store.load().expect("load").counters, (7, 7, 7));
    assert_eq!(b.load().expect("load").counters, (3, 3, 3));
    b.close();
    rt.block_on(store.drop_tenant("beta")).expect("drop beta");
    assert_eq!(store.tenant_ids().expect("tenant ids"), ["acme"]);
    let b = store.tenant("beta").expect("beta again");
    assert!(queue_names(&b).is_empty(), "a tenant made again starts empty");
    assert_eq!(queue_names(&a), [("q1".to_string(), "Acme".to_string())]);
}

/// A tenant's backup holds its records only, and restores into the tenant of another
/// (stopped) store: refused over records unless replacing them, which removes what the
/// tenant held beyond the backup.
#[test]
fn a_tenant_is_restored_from_its_own_backup_into_a_stopped_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let file = dir.path().join("acme.backup");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    {
        let store = SledStore::open(&path, SledOptions::default()).expect("store");
        let a = store.tenant("acme").expect("tenant acme");
        rt.block_on(async {
            store.commit(vec![queue("d1", "Default")]).await.expect("commit");
            a.commit(vec![queue("q1", "Acme")]).await.expect("commit");
            let mut stream = a.backup().await.expect("backup");
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next_chunk().await {
                bytes.extend(chunk.expect("chunk"));
            }
            std::fs::write(&file, bytes).expect("write the backup");
            a.commit(vec![queue("q2", "After")]).await.expect("commit");
            // The registry's records (the store keeps them as they are given).
            store
                .put_registry(b"acme", Some(b"acme's record".to_vec()))
                .await
                .expect("register acme");
        });
        store.close();
    }
    switchboard::store::backup::verify(
        std::io::BufReader::new(std::fs::File::open(&file).expect("backup file")),
        STORE_FORMAT,
    )
    .expect("a whole backup");
    let refused = restore_tenant(&file, &path, "acme", false);
    assert!(
        matches!(&refused, Err(StoreError::Write(m)) if m.contains("--replace")),
        "{refused:?}"
    );
    assert!(
        restore_tenant(&file, &path, "default", true).is_err(),
        "default is the store itself"
    );
    // The format marker, the mark of the index by customer, and q1.
    assert_eq!(restore_tenant(&file, &path, "acme", true).expect("restore"), 3);
    // A tenant the registry does not hold would not be served: refused, nothing written.
    let unregistered = restore_tenant(&file, &path, "copy", false);
    assert!(
        matches!(&unregistered, Err(StoreError::Write(m)) if m.contains("registry")),
        "{unregistered:?}"
    );
    {
        let store = SledStore::open(&path, SledOptions::default()).expect("store");
        assert_eq!(
            store.tenant_ids().expect("tenant ids"),
            ["acme"],
            "nothing of `copy` written"
        );
        rt.block_on(store.put_registry(b"copy", Some(b"copy's record".to_vec())))
            .expect("register copy");
        store.close();
    }
    // Into a registered tenant the store has no records of: no replace needed.
    restore_tenant(&file, &path, "copy", false).expect("restore into a new tenant");
    let store = SledStore::open(&path, SledOptions::default()).expect("store");
    let a = store.tenant("acme").expect("tenant acme");
    let copy = store.tenant("copy").expect("tenant copy");
    assert_eq!(queue_names(&a), [("q1".to_string(), "Acme".to_string())]);
    assert_eq!(queue_names(&copy), [("q1".to_string(), "Acme".to_string())]);
    assert_eq!(queue_names(&store), [("d1".to_string(), "Default".to_string())]);
}

/// While `default`'s backup is read, another tenant's commits go into the same batches
/// as `default`'s: the backup saves none of them (it would hold them at its end).
#[test]
fn default_s_backup_read_while_a_tenant_commits_holds_none_of_the_tenant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("default.backup");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let name = "x".repeat(200);
    {
        let store = SledStore::open(&dir.path().join("data"), SledOptions::default()).expect("store");
        let a = store.tenant("acme").expect("tenant acme");
        rt.block_on(async {
            for chunk in 0..50 {
                let queues = (0..1_000).map(|i| queue(&format!("d{chunk}-{i}"), &name)).collect();
                store.commit(queues).await.expect("commit");
            }
            a.commit((0..100).map(|i| queue(&format!("t{i}"), "Acme")).collect())
                .await
                .expect("tenant commit");
            let mut stream = store.backup().await.expect("backup");
            let mut bytes = stream.next_chunk().await.expect("a first chunk").expect("chunk");
            // The reader is far from done: the tenant changes records that existed at the
            // backup's point, in one group with `default`'s own commit.
            let tenant = a.commit((0..100).map(|i| queue(&format!("t{i}"), "Acme renamed")).collect());
            let own = store.commit(vec![queue("d-late", "Late")]);
            tenant.await.expect("tenant commit");
            own.await.expect("default commit");
            while let Some(chunk) = stream.next_chunk().await {
                bytes.extend(chunk.expect("chunk"));
            }
            std::fs::write(&file, bytes).expect("write the backup");
        });
        store.close();
    }
    let copy = dir.path().join("copy");
    switchboard::store::sled::restore(&file, &copy).expect("restore");
    let store = SledStore::open(&copy, SledOptions::default()).expect("the copy opens");
    assert!(
        store.tenant_ids().expect("ids").is_empty(),
        "a tenant's record in default's backup"
    );
    let names = queue_names(&store);
    assert_eq!(
        names.len(),
        50_000,
        "the backup's point holds default's queues, not the late one"
    );
}
