//! The rules of events out: which URLs, which events with which bodies, the cursor and
//! the trim, the backoff and the failing mark.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::core::{Account, Channel, Customer, EntryPoint, Floor, Presence, Queue, Rules, Skills};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an address")
}

#[test]
fn only_public_addresses_are_public() {
    for (a, public) in [
        ("93.184.216.34", true),
        ("8.8.8.8", true),
        ("2606:4700::1111", true),
        ("127.0.0.1", false),
        ("10.1.2.3", false),
        ("172.16.0.1", false),
        ("172.31.255.255", false),
        ("172.32.0.1", true),
        ("192.168.1.1", false),
        ("169.254.169.254", false),
        ("100.64.0.1", false),
        ("0.0.0.0", false),
        ("255.255.255.255", false),
        ("224.0.0.1", false),
        ("::1", false),
        ("::", false),
        ("fc00::1", false),
        ("fd12:3456::1", false),
        ("fe80::1", false),
        ("::ffff:127.0.0.1", false),
        ("::ffff:8.8.8.8", true),
    ] {
        assert_eq!(is_public(ip(a)), public, "{a}");
    }
}

#[test]
fn urls_are_checked_in_form_and_by_their_addresses() {
    let public = [IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34))];
    let loopback = [IpAddr::V6(Ipv6Addr::LOCALHOST)];
    assert_eq!(check_url("https://hooks.example.com/in", &public, false), Ok(()));
    assert_eq!(check_url("http://hooks.example.com:8080/in", &public, false), Ok(()));
    assert_eq!(
        check_url("http://localhost/in", &loopback, false),
        Err(CoreError::PrivateAddress("::1".into()))
    );
    // Any one private address is enough to refuse (a name may resolve to several).
    let mixed = [public[0], ip("10.0.0.7")];
    assert_eq!(
        check_url("https://hooks.example.com/", &mixed, false),
        Err(CoreError::PrivateAddress("10.0.0.7".into()))
    );
    assert_eq!(check_url("http://localhost/in", &loopback, true), Ok(()));
    for bad in [
        "ftp://hooks.example.com/",
        "not a url",
        "https://user:pw@hooks.example.com/",
        "file:///etc/passwd",
    ] {
        let code = check_url(bad, &public, true).map_err(|e| e.code());
        assert_eq!(code, Err("invalid_input"), "{bad}");
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_BYTES));
    assert_eq!(
        check_url(&long, &public, true).map_err(|e| e.code()),
        Err("invalid_input")
    );
    assert_eq!(
        check_url("https://nowhere.invalid/", &[], false).map_err(|e| e.code()),
        Err("invalid_input"),
        "a host without an address"
    );
}

#[test]
fn retries_back_off_doubling_up_to_the_cap_and_five_failures_make_failing() {
    let d = Delivery {
        retry_base_ms: 1000,
        retry_max_ms: 60_000,
        max_backlog: 10,
    };
    let delays: Vec<u64> = (1..=9).map(|n| d.retry_delay_ms(n)).collect();
    assert_eq!(delays, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    assert_eq!(d.retry_delay_ms(u32::MAX), 60_000);
    assert!(!Delivery::is_failing(4));
    assert!(Delivery::is_failing(5));
}

fn new(id: &str, events: &[EventKind]) -> NewWebhook {
    NewWebhook {
        id: id.into(),
        url: "https://hooks.example.com/in".into(),
        events: events.to_vec(),
        secret: "0123456789abcdef".into(),
    }
}

#[test]
fn a_subscription_is_checked_when_made() {
    let mut s = Subscriptions::default();
    let code = |r: Result<(Webhook, Vec<Change>), CoreError>| r.map(|_| ()).map_err(|e| e.code());
    assert_eq!(
        code(s.create(new("bad id", &[EventKind::ConversationEnded]), 1)),
        Err("invalid_input")
    );
    assert_eq!(code(s.create(new("w1", &[]), 1)), Err("invalid_input"));
    let mut short = new("w1", &[EventKind::ConversationEnded]);
    short.secret = "short".into();
    assert_eq!(code(s.create(short, 1)), Err("invalid_input"));
    assert!(!s.any(), "nothing refused was kept");
    let (h, changes) = s
        .create(
            new(
                "w1",
                &[
                    EventKind::MessageCreated,
                    EventKind::ConversationCreated,
                    EventKind::MessageCreated,
                ],
            ),
            1,
        )
        .expect("made");
    assert_eq!(h.events, [EventKind::ConversationCreated, EventKind::MessageCreated]);
    assert_eq!(changes, vec![Change::Webhook(Box::new(h.clone()))]);
    assert_eq!(
        code(s.create(new("w1", &[EventKind::ConversationEnded]), 1)),
        Err("already_exists")
    );
    for n in 2..=MAX_WEBHOOKS {
        s.create(new(&format!("w{n}"), &[EventKind::ConversationEnded]), 1)
            .expect("made");
    }
    assert_eq!(
        code(s.create(new("one-more", &[EventKind::ConversationEnded]), 1)),
        Err("tenant_limit")
    );
    assert_eq!(s.remove("nope").map_err(|e| e.code()), Err("unknown_webhook"));
}

/// q1 with a1; entry point e1 → q1; offers run 1000 ms.
fn floor() -> Floor {
    let rules = Rules {
        offer_timeout_ms: 1000,
        ..Rules::default()
    };
    let mut f = Floor::restore(
        rules,
        vec![Queue::new("q1".into(), "One".into())],
        Vec::new(),
        Vec::new(),
        Vec::new(),
        (1, 1, 1),
        0,
    );
    let ep = EntryPoint {
        id: "e1".into(),
        name: "Page e1".into(),
        queue: "q1".into(),
        ..Default::default()
    };
    f.create_entry_point(ep).expect("entry point");
    f.create_agent("a1", "Ann", vec!["q1".into()], 1, Account::default(), Skills::new(), 0)
        .expect("agent");
    f
}

/// The events among the changes owed now (taking changes, then effects, as the router
/// does), with the effects' events, which must be the same.
fn events(f: &mut Floor) -> Vec<WebhookEvent> {
    let changes = f.take_changes();
    let effects = f.take_effects();
    let durable: Vec<WebhookEvent> = changes
        .into_iter()
        .filter_map(|c| match c {
            Change::WebhookEvent(e) => Some((*e).clone()),
            _ => None,
        })
        .collect();
    let told: Vec<WebhookEvent> = effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Webhook(e) => Some((*e).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(durable, told, "the sender hears of exactly the durable events");
    durable
}

fn body(e: &WebhookEvent) -> serde_json::Value {
    serde_json::from_str(&e.body).expect("the body is JSON")
}

fn subscribe(f: &mut Floor, id: &str, kinds: &[EventKind], now: Millis) -> Webhook {
    let h = f.create_webhook(new(id, kinds), now).expect("made");
    f.take_changes();
    f.take_effects();
    h
}

/// No subscription: no event is made, and nothing is scanned for one.
#[test]
fn without_a_subscription_nothing_is_made() {
    let mut f = floor();
    f.saw(1000);
    f.set_state("a1", Presence::Available, None, 1000).expect("available");
    f.customer_message("e1", customer(), "hello", Channel::Rest, 2000)
        .expect("arrived");
    assert!(events(&mut f).is_empty());
}

fn customer() -> Customer {
    Customer {
        id: "u1".into(),
        name: "Uma".into(),
    }
}

/// A whole lifecycle makes each kind of event once, in the order it happened, each
/// numbered in turn, with the body API.md and docs/WEBHOOKS.md describe.
#[test]
fn a_lifecycle_makes_its_events_in_order_with_their_bodies() {
    let mut f = floor();
    let all: Vec<EventKind> = <EventKind as strum::IntoEnumIterator>::iter().collect();
    let h = subscribe(&mut f, "w1", &all, 500);
    assert_eq!((h.first_seq, h.delivered_through), (1, 0));
    let mut got = Vec::new();
    let mut step = |f: &mut Floor, now: Millis, op: &dyn Fn(&mut Floor, Millis)| {
        f.saw(now);
        op(f, now);
        got.extend(events(f));
    };
    step(&mut f, 1000, &|f, t| {
        f.set_state("a1", Presence::Available, None, t).expect("available");
    });
    step(&mut f, 2000, &|f, t| {
        f.customer_message("e1", customer(), "hello", Channel::Rest, t)
            .expect("arrived");
    });
    step(&mut f, 2500, &|f, t| {
        f.accept("a1", "c-1", t).expect("accepted");
    });
    step(&mut f, 3000, &|f, t| {
        f.agent_message("a1", "c-1", "hi Uma", t).expect("sent");
    });
    step(&mut f, 4000, &|f, t| {
        f.end("a1", "c-1", t).expect("ended");
    });
    step(&mut f, 5000, &|f, t| {
        f.wrapup("a1", "c-1", "resolved", t).expect("wrapped up");
    });
    let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "agent.state_changed",
            "conversation.created",
            "message.created",
            "conversation.offered",
            "conversation.accepted",
            "message.created",
            "conversation.ended",
            "conversation.wrapped_up",
        ]
    );
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<u64>>());
    assert_eq!(got[0].key, "a1");
    assert!(got[1..].iter().all(|e| e.key == "c-1"));
    assert_eq!(
        body(&got[0]),
        serde_json::json!({
            "id": "1", "type": "agent.state_changed", "created_at": "1970-01-01T00:00:01.000Z",
            "data": {"agent_id": "a1", "from": "logged_out", "state": "available"},
        })
    );
    assert_eq!(
        body(&got[1])["data"],
        serde_json::json!({
            "conversation_id": "c-1", "queue_id": "q1", "entry_point_id": "e1", "channel": "rest",
            "customer": {"id": "u1", "name": "Uma"},
        })
    );
    assert_eq!(body(&got[2])["data"]["message"]["text"], "hello");
    assert_eq!(body(&got[2])["data"]["message"]["author"]["kind"], "customer");
    assert_eq!(
        body(&got[3])["data"],
        serde_json::json!({"conversation_id": "c-1", "agent_id": "a1", "kind": "new"})
    );
    assert_eq!(
        body(&got[4])["data"],
        serde_json::json!({"conversation_id": "c-1", "agent_id": "a1", "kind": "new", "wait_ms": 500})
    );
    assert_eq!(body(&got[5])["data"]["message"]["author"]["id"], "a1");
    assert_eq!(body(&got[6])["data"]["reason"], "agent_ended");
    assert_eq!(
        body(&got[7])["data"],
        serde_json::json!({"conversation_id": "c-1", "agent_id": "a1", "reason": "resolved"})
    );
    assert_eq!(body(&got[7])["created_at"], "1970-01-01T00:00:05.000Z");
}

/// A conversation is created once: a transfer to a queue (an arrival of that queue) makes
/// `conversation.transferred`, not a second `conversation.created`.
#[test]
fn a_transfer_to_a_queue_creates_no_second_conversation() {
    let mut f = floor();
    let h = subscribe(
        &mut f,
        "w1",
        &[EventKind::ConversationCreated, EventKind::ConversationTransferred],
        500,
    );
    assert_eq!(h.first_seq, 1);
    f.saw(1000);
    f.set_state("a1", Presence::Available, None, 1000).expect("available");
    f.customer_message("e1", customer(), "hello", Channel::Rest, 1000)
        .expect("arrived");
    f.accept("a1", "c-1", 1500).expect("accepted");
    f.saw(2000);
    f.transfer_to_queue("a1", "c-1", "q1", None, 2000).expect("transferred");
    let kinds: Vec<&str> = events(&mut f).iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["conversation.created", "conversation.transferred"]);
}

/// Only the kinds some subscription asks for are made; a subscription made later gets
/// the events from its making on.
#[test]
fn only_wanted_kinds_are_made_and_a_new_subscription_starts_at_the_next_event() {
    let mut f = floor();
    subscribe(&mut f, "ends", &[EventKind::ConversationEnded], 0);
    f.saw(1000);
    f.set_state("a1", Presence::Available, None, 1000).expect("available");
    f.customer_message("e1", customer(), "hello", Channel::Rest, 2000)
        .expect("arrived");
    assert!(events(&mut f).is_empty(), "nobody asked for these");
    f.accept("a1", "c-1", 2500).expect("accepted");
    f.end("a1", "c-1", 3000).expect("ended");
    let got = events(&mut f);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].seq, got[0].kind), (1, EventKind::ConversationEnded));
    let later = subscribe(&mut f, "later", &[EventKind::ConversationWrappedUp], 3500);
    assert_eq!((later.first_seq, later.delivered_through), (2, 1));
    assert!(!later.wants(1, EventKind::ConversationWrappedUp));
    assert!(later.wants(2, EventKind::ConversationWrappedUp));
    assert!(!later.wants(2, EventKind::ConversationEnded));
}

#[test]
fn cursors_only_move_forward_and_events_leave_once_every_subscription_is_done() {
    let mut s = Subscriptions::restore(Vec::new(), None, 0);
    s.create(new("a", &[EventKind::ConversationEnded]), 0).expect("a");
    s.create(new("b", &[EventKind::ConversationEnded]), 0).expect("b");
    // Ten events made.
    s.last_seq = 10;
    let p = |through: u64| Progress {
        delivered_through: through,
        dropped: 0,
        failing: None,
    };
    let changes = s.progress("a", p(7));
    assert_eq!(changes.len(), 1, "a moved; b holds the events: no trim yet");
    let changes = s.progress("b", p(4));
    assert_eq!(changes.last(), Some(&Change::WebhookTrim { from: 1, through: 4 }));
    assert!(s.progress("a", p(5)).is_empty(), "a cursor never goes back");
    assert_eq!(s.get("a").map(|h| h.delivered_through), Some(7));
    assert!(s
        .progress("a", p(99))
        .iter()
        .all(|c| !matches!(c, Change::WebhookTrim { .. })));
    assert_eq!(
        s.get("a").map(|h| h.delivered_through),
        Some(10),
        "never past the last event"
    );
    assert!(s.progress("gone", p(10)).is_empty());
    // Deleting b lets its events go.
    let changes = s.remove("b").expect("removed");
    assert_eq!(
        changes,
        vec![
            Change::WebhookRemoved("b".into()),
            Change::WebhookTrim { from: 5, through: 10 }
        ]
    );
}

#[test]
fn failing_keeps_its_first_time_and_clears_on_a_delivery() {
    let mut s = Subscriptions::default();
    s.create(new("a", &[EventKind::ConversationEnded]), 0).expect("a");
    let failing = |at: Millis, error: &str| Progress {
        delivered_through: 0,
        dropped: 0,
        failing: Some(Failing {
            since: at,
            error: error.into(),
        }),
    };
    assert_eq!(s.progress("a", failing(100, "HTTP 500")).len(), 1);
    s.progress("a", failing(200, "HTTP 503"));
    assert_eq!(
        s.get("a").and_then(|h| h.failing.clone()),
        Some(Failing {
            since: 100,
            error: "HTTP 503".into()
        })
    );
    let dropped = Progress {
        delivered_through: 0,
        dropped: 3,
        failing: None,
    };
    assert_eq!(s.progress("a", dropped.clone()).len(), 1);
    assert_eq!(s.get("a").map(|h| (h.failing.is_none(), h.dropped)), Some((true, 3)));
    s.progress("a", dropped);
    assert_eq!(s.get("a").map(|h| h.dropped), Some(6), "drops add up");
}

/// After a restart the sequence goes on after the highest event, trim mark or cursor
/// the store holds: an event id is never used twice.
#[test]
fn the_sequence_goes_on_after_a_restart() {
    let mut f = floor();
    let h = subscribe(&mut f, "w", &[EventKind::AgentStateChanged], 0);
    f.saw(10);
    f.set_state("a1", Presence::Available, None, 10).expect("available");
    let made = events(&mut f);
    assert_eq!(made.len(), 1);
    for (events, trimmed, cursor, next) in [
        (Some(1), 0, 0, 2),
        (None, 1, 1, 2),
        (None, 0, 7, 8),
        (Some(3), 9, 0, 10),
    ] {
        let hook = Webhook {
            delivered_through: cursor,
            ..h.clone()
        };
        let s = Subscriptions::restore(vec![hook], events, trimmed);
        assert_eq!(s.last_seq + 1, next);
    }
}
