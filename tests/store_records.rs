//! Report records in the sled store (docs/STORE.md "Report records"): read back by time
//! range, filter and cursor; kept by the retention sweep that removes their
//! conversations; each tenant's apart; carried by backups and restores.

use std::time::Duration;

use switchboard::core::{
    Change, Channel, Conversation, ConversationRecord, ConversationState, Customer, Outcome, RecordCursor,
    RecordFilter, RecordQuery,
};
use switchboard::store::sled::{restore, SledOptions};
use switchboard::store::{SledStore, Store};

fn record(id: &str, arrived_at: u64, outcome: Outcome) -> ConversationRecord {
    ConversationRecord {
        id: id.into(),
        channel: Channel::Rest,
        entry_point: Some("e1".into()),
        source_page: "Page".into(),
        customer: Customer {
            id: format!("u-{id}"),
            name: "U".into(),
        },
        queues: vec!["q1".into()],
        agents: Vec::new(),
        arrived_at,
        first_offered_at: None,
        accepted_at: None,
        first_agent_reply_at: None,
        ended_at: arrived_at + 5,
        wrapped_up_at: None,
        ended_reason: "customer_ended".into(),
        outcome,
        wrapup_reason: None,
        rona_count: 0,
        transfers: 0,
        satisfaction: None,
    }
}

/// The conversation a record describes, ended at `ended_at`.
fn ended(id: &str, ended_at: u64) -> Conversation {
    Conversation {
        id: id.into(),
        channel: Channel::Rest,
        customer: Customer {
            id: format!("u-{id}"),
            name: "U".into(),
        },
        entry_point: Some("e1".into()),
        source_page: "Page".into(),
        queue: "q1".into(),
        queue_name: "Q".into(),
        priority: 0,
        received_at: 1,
        arrival: 1,
        state: ConversationState::Ended,
        offer: None,
        owner: None,
        guest: None,
        rona_agents: Default::default(),
        ended_reason: Some("customer_ended".into()),
        ended_at: Some(ended_at),
        wrapups: Vec::new(),
        transcript: Vec::new(),
        routing: Default::default(),
        history: Default::default(),
        handoff_note: None,
    }
}

fn query(filter: RecordFilter, after: Option<RecordCursor>, limit: usize) -> RecordQuery {
    RecordQuery { filter, after, limit }
}

fn ids(store: &dyn Store, q: &RecordQuery) -> (Vec<String>, Option<RecordCursor>) {
    let page = store.records(q).expect("records");
    (page.records.into_iter().map(|r| r.id).collect(), page.next)
}

fn all(store: &dyn Store) -> Vec<String> {
    ids(store, &query(RecordFilter::default(), None, 1000)).0
}

/// Records come back in arrival order, a time range is a key range (`from` in, `to`
/// out), a cursor goes on after its record, and they outlive a reopen.
#[test]
fn records_read_back_by_range_filter_and_cursor_across_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    {
        let store = SledStore::open(&path, SledOptions::default()).expect("store");
        let changes = vec![
            Change::Record(Box::new(record("c-3", 300, Outcome::Handled))),
            Change::Record(Box::new(record("c-1", 100, Outcome::Abandoned))),
            Change::Record(Box::new(record("c-2", 300, Outcome::Handled))),
            Change::Record(Box::new(record("c-4", 400, Outcome::Handled))),
        ];
        rt.block_on(store.commit(changes)).expect("commit");
        store.close();
    }
    let store = SledStore::open(&path, SledOptions::default()).expect("store reopens");
    assert_eq!(all(&store), ["c-1", "c-2", "c-3", "c-4"]);
    let range = RecordFilter {
        from: Some(300),
        to: Some(400),
        ..Default::default()
    };
    assert_eq!(ids(&store, &query(range.clone(), None, 10)).0, ["c-2", "c-3"]);
    let (first, next) = ids(&store, &query(range.clone(), None, 1));
    assert_eq!(first, ["c-2"]);
    assert_eq!(ids(&store, &query(range, next, 1)), (vec!["c-3".to_string()], None));
    let handled = RecordFilter {
        outcome: Some(Outcome::Handled),
        ..Default::default()
    };
    let (page, next) = ids(&store, &query(handled.clone(), None, 2));
    assert_eq!(page, ["c-2", "c-3"]);
    assert_eq!(ids(&store, &query(handled, next, 2)), (vec!["c-4".to_string()], None));
}

/// A customer's records (the desktop's history reads them so) come from the index by
/// customer: only that customer's, whatever other ids share a beginning with it, by
/// arrival, within `from` and `to`, page after page; after a reopen; and once the
/// retention of reports has removed a record, it is gone from its customer's too.
#[test]
fn a_customer_s_records_read_back_alone_in_arrival_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let day = 86_400_000;
    let options = || SledOptions {
        retain_records: Some(Duration::from_millis(30 * day)),
        ..SledOptions::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let of = |id: &str, customer: &str, at: u64| {
        let mut r = record(id, at, Outcome::Handled);
        r.customer.id = customer.into();
        Change::Record(Box::new(r))
    };
    let now = 100 * day;
    {
        let store = SledStore::open(&path, options()).expect("store");
        let changes = vec![
            of("c-1", "u1", now - 40 * day),
            of("c-2", "u1", now - 3 * day),
            of("c-3", "u10", now - 2 * day),
            of("c-4", "u1", now - day),
            of("c-5", "u", now - day),
            of("c-6", "u1", now - day),
            // The same record again (a later version): one key in the index still.
            of("c-2", "u1", now - 3 * day),
        ];
        rt.block_on(store.commit(changes)).expect("commit");
        store.close();
    }
    let store = SledStore::open(&path, options()).expect("store reopens");
    let of_customer = |customer: &str, from: Option<u64>, to: Option<u64>| RecordFilter {
        customer: Some(customer.into()),
        from,
        to,
        ..Default::default()
    };
    let everything = query(of_customer("u1", None, None), None, 100);
    assert_eq!(ids(&store, &everything).0, ["c-1", "c-2", "c-4", "c-6"]);
    assert_eq!(ids(&store, &query(of_customer("u", None, None), None, 100)).0, ["c-5"]);
    assert_eq!(
        ids(&store, &query(of_customer("u10", None, None), None, 100)).0,
        ["c-3"]
    );
    assert!(ids(&store, &query(of_customer("u2", None, None), None, 100))
        .0
        .is_empty());
    let window = of_customer("u1", Some(now - 3 * day), Some(now - day));
    assert_eq!(ids(&store, &query(window, None, 100)).0, ["c-2"], "from in, to out");
    let (first, next) = ids(&store, &query(of_customer("u1", None, None), None, 2));
    assert_eq!(first, ["c-1", "c-2"]);
    let (rest, end) = ids(&store, &query(of_customer("u1", None, None), next, 2));
    assert_eq!((rest, end), (vec!["c-4".to_string(), "c-6".to_string()], None));
    store.sweep(now).expect("sweep");
    assert_eq!(
        ids(&store, &everything).0,
        ["c-2", "c-4", "c-6"],
        "c-1 is past retention"
    );
}

/// The retention sweep removes ended conversations, never their records.
#[test]
fn the_retention_sweep_keeps_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SledOptions {
        retain_ended: Some(Duration::from_millis(10)),
        ..SledOptions::default()
    };
    let store = SledStore::open(&dir.path().join("data"), options).expect("store");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(store.commit(vec![
        Change::Conversation(Box::new(ended("c-1", 100))),
        Change::Record(Box::new(record("c-1", 90, Outcome::Abandoned))),
    ]))
    .expect("commit");
    assert_eq!(store.sweep(1_000_000).expect("sweep"), 1);
    assert!(store.conversation("c-1").expect("read").is_none(), "swept");
    assert_eq!(all(&store), ["c-1"], "the record stays");
}

/// Reports are kept `retain_records`: the sweep removes the records and search texts of
/// conversations that arrived before the cutoff, and every queue's and agent's figures
/// of intervals before it, leaving the rest (and the rows of every other subject) whole;
/// the same figures add up again after a reopen.
#[test]
fn the_retention_of_reports_removes_old_records_texts_and_figures() {
    use switchboard::core::figures::{Delta, Figures, Subject, INTERVAL_MS};
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let day = 86_400_000;
    let options = || SledOptions {
        retain_records: Some(Duration::from_millis(day)),
        ..SledOptions::default()
    };
    let store = SledStore::open(&path, options()).expect("store");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let now = 10 * day;
    let delta = |subject: Subject, at: u64, offered: u64| {
        Change::Figures(Box::new(Delta {
            subject,
            interval: at - at % INTERVAL_MS,
            figures: Figures {
                offered,
                ..Default::default()
            },
        }))
    };
    let text = |id: &str, at: u64| Change::SearchText {
        arrived_at: at,
        conversation: id.into(),
        text: "hello refund".into(),
    };
    let (old, young) = (now - 2 * day, now - day / 2);
    let mut changes = Vec::new();
    for (id, at) in [("c-1", old), ("c-2", young)] {
        changes.push(Change::Record(Box::new(record(id, at, Outcome::Abandoned))));
        changes.push(text(id, at));
    }
    for s in ["q1", "q10", "a1"] {
        let subject = || {
            if s.starts_with('q') {
                Subject::Queue(s.into())
            } else {
                Subject::Agent(s.into())
            }
        };
        changes.push(delta(subject(), old, 1));
        changes.push(delta(subject(), young, 2));
        changes.push(delta(subject(), young, 3));
    }
    rt.block_on(store.commit(changes)).expect("commit");
    let searched = |store: &SledStore| {
        let q = RecordQuery {
            filter: RecordFilter {
                words: vec!["refund".into()],
                ..Default::default()
            },
            after: None,
            limit: 10,
        };
        store.records(&q).expect("search").records.len()
    };
    let rows = |store: &SledStore, s: Subject| {
        store
            .figures(&s, 0, now)
            .expect("figures")
            .into_iter()
            .map(|(_, f)| f.offered)
            .collect::<Vec<_>>()
    };
    assert_eq!(all(&store), ["c-1", "c-2"]);
    assert_eq!(searched(&store), 2);
    assert_eq!(
        rows(&store, Subject::Queue("q1".into())),
        [1, 5],
        "deltas of one row add up"
    );
    store.sweep(now).expect("sweep");
    assert_eq!(all(&store), ["c-2"]);
    assert_eq!(searched(&store), 1);
    for s in [
        Subject::Queue("q1".into()),
        Subject::Queue("q10".into()),
        Subject::Agent("a1".into()),
    ] {
        assert_eq!(rows(&store, s.clone()), [5], "{s:?}");
    }
    store.close();
    drop(store);
    let store = SledStore::open(&path, options()).expect("store reopens");
    rt.block_on(store.commit(vec![delta(Subject::Queue("q1".into()), young, 4)]))
        .expect("commit");
    assert_eq!(rows(&store, Subject::Queue("q1".into())), [9]);
}

/// Each tenant reads its own records; the deployment's backup carries every tenant's,
/// and a store restored from it serves them.
#[test]
fn records_are_per_tenant_and_restored_from_a_backup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let file = dir.path().join("all.backup");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    {
        let store = SledStore::open(&path, SledOptions::default()).expect("store");
        let acme = store.tenant("acme").expect("tenant acme");
        rt.block_on(async {
            store
                .commit(vec![Change::Record(Box::new(record("c-1", 10, Outcome::Handled)))])
                .await
                .expect("commit");
            acme.commit(vec![Change::Record(Box::new(record("c-9", 20, Outcome::Abandoned)))])
                .await
                .expect("commit");
            let mut stream = store.backup_all().await.expect("backup");
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.next_chunk().await {
                bytes.extend(chunk.expect("chunk"));
            }
            std::fs::write(&file, bytes).expect("write the backup");
        });
        assert_eq!(all(&store), ["c-1"]);
        assert_eq!(all(&acme), ["c-9"]);
        store.close();
    }
    let restored = dir.path().join("restored");
    restore(&file, &restored).expect("restore");
    let store = SledStore::open(&restored, SledOptions::default()).expect("restored store");
    assert_eq!(all(&store), ["c-1"]);
    assert_eq!(all(&store.tenant("acme").expect("tenant acme")), ["c-9"]);
}

/// Satisfaction in both stores (docs/STORE.md "Ratings and pending surveys"): a rating
/// kept before its record is written and one kept after both read back with their record,
/// once, also through a text search, the index by customer and the `rated` filter; a pending survey reads back
/// at start and is gone once removed; the retention of reports takes old ratings with
/// their records; and all of it outlives a reopen.
#[test]
fn ratings_join_their_records_whenever_they_come_and_pending_surveys_reload() {
    use switchboard::core::survey::{PendingSurvey, Satisfaction};
    use switchboard::store::MemoryStore;
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let day = 86_400_000;
    let now = 10 * day;
    let (old, young) = (now - 2 * day, now - day / 2);
    let rated = |id: &str, at: u64, rating: u8| Change::Satisfaction {
        arrived_at: at,
        conversation: id.into(),
        satisfaction: Satisfaction { rating, at: at + 5 },
    };
    let pending = |customer: &str| PendingSurvey {
        conversation: "c-9".into(),
        entry_point: "e1".into(),
        customer: customer.into(),
        channel: Channel::Messenger,
        queue: "q1".into(),
        agent: Some("a1".into()),
        arrived_at: young,
        asked_at: young + 1,
        expires_at: young + day,
        next_seq: 4,
        thanks: "Thanks".into(),
    };
    let survey = |customer: &str, p: Option<PendingSurvey>| Change::Survey {
        entry_point: "e1".into(),
        customer: customer.into(),
        pending: p.map(Box::new),
    };
    let batches = vec![
        // The rating first, its record later (an answer while a wrap-up was owed).
        vec![
            rated("c-1", old, 2),
            survey("u1", Some(pending("u1"))),
            survey("u2", Some(pending("u2"))),
        ],
        vec![
            Change::Record(Box::new(record("c-1", old, Outcome::Handled))),
            Change::SearchText {
                arrived_at: old,
                conversation: "c-1".into(),
                text: "refund".into(),
            },
            Change::Record(Box::new(record("c-2", young, Outcome::Handled))),
            Change::Record(Box::new(record("c-3", young, Outcome::Handled))),
        ],
        // The record first, its rating later (an answer after the wrap-up).
        vec![rated("c-2", young, 5), survey("u2", None)],
    ];
    let check = |store: &dyn Store, what: &str| {
        let page = store
            .records(&query(RecordFilter::default(), None, 10))
            .expect("records");
        let ratings: Vec<(String, Option<u8>)> = page
            .records
            .iter()
            .map(|r| (r.id.clone(), r.satisfaction.map(|s| s.rating)))
            .collect();
        assert_eq!(
            ratings,
            [("c-1".into(), Some(2)), ("c-2".into(), Some(5)), ("c-3".into(), None)],
            "{what}"
        );
        let found = store
            .records(&query(
                RecordFilter {
                    words: vec!["refund".into()],
                    ..Default::default()
                },
                None,
                10,
            ))
            .expect("search");
        assert_eq!(
            found.records[0].satisfaction,
            Some(Satisfaction { rating: 2, at: old + 5 }),
            "{what}"
        );
        let by_customer = store
            .records(&query(
                RecordFilter {
                    customer: Some("u-c-2".into()),
                    ..Default::default()
                },
                None,
                10,
            ))
            .expect("by customer");
        assert_eq!(
            by_customer.records[0].satisfaction.map(|s| s.rating),
            Some(5),
            "{what}: by customer"
        );
        let only = |rated| {
            ids(
                store,
                &query(
                    RecordFilter {
                        rated: Some(rated),
                        ..Default::default()
                    },
                    None,
                    10,
                ),
            )
            .0
        };
        assert_eq!(
            (only(true), only(false)),
            (vec!["c-1".to_string(), "c-2".into()], vec!["c-3".to_string()]),
            "{what}"
        );
        let surveys = store.load().expect("load").surveys;
        assert_eq!(surveys, [pending("u1")], "{what}");
    };

    let memory = MemoryStore::new();
    for b in batches.clone() {
        rt.block_on(memory.commit(b)).expect("commit");
    }
    check(&memory, "memory");

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data");
    let options = || SledOptions {
        retain_records: Some(Duration::from_millis(day)),
        ..SledOptions::default()
    };
    let store = SledStore::open(&path, options()).expect("store");
    for b in batches {
        rt.block_on(store.commit(b)).expect("commit");
    }
    check(&store, "sled");
    store.close();
    drop(store);
    let store = SledStore::open(&path, options()).expect("store reopens");
    check(&store, "sled, reopened");
    store.sweep(now).expect("sweep");
    let page = store
        .records(&query(RecordFilter::default(), None, 10))
        .expect("records");
    assert_eq!(page.records.len(), 2, "c-1 is past the retention");
    // A record written again under c-1's key (it cannot be, but the key is reused by no
    // one) would find no rating: the sweep took it with its record.
    rt.block_on(store.commit(vec![Change::Record(Box::new(record("c-1", old, Outcome::Handled)))]))
        .expect("commit");
    let c1 = store
        .records(&query(RecordFilter::default(), None, 10))
        .expect("records");
    assert_eq!(c1.records[0].id, "c-1");
    assert_eq!(c1.records[0].satisfaction, None, "the old rating went with its record");
}
