use proptest::prelude::*;

use super::*;
use crate::core::conversation::{Channel, Customer};
use crate::core::report::RecordAgent;

const MIN: Millis = 60_000;
/// 2026-12-05T00:00:00Z.
const DAY: Millis = 1_796_428_800_000;

fn record(arrived: Millis) -> ConversationRecord {
    ConversationRecord {
        id: "c1".into(),
        channel: Channel::Rest,
        entry_point: None,
        source_page: "Support".into(),
        customer: Customer {
            id: "u1".into(),
            name: "Ada".into(),
        },
        queues: vec!["q1".into()],
        agents: Vec::new(),
        arrived_at: arrived,
        first_offered_at: None,
        accepted_at: None,
        first_agent_reply_at: None,
        ended_at: arrived,
        wrapped_up_at: None,
        ended_reason: "customer_left".into(),
        outcome: Outcome::Abandoned,
        wrapup_reason: None,
        rona_count: 0,
        transfers: 0,
        satisfaction: None,
    }
}

fn part(agent: &str, joined: Millis, left: Millis, wrapped: Option<Millis>) -> RecordAgent {
    RecordAgent {
        agent: agent.into(),
        guest: false,
        joined_at: joined,
        left_at: left,
        handle_ms: left - joined,
        wrapup_reason: wrapped.map(|_| "resolved".into()),
        wrapped_up_at: wrapped,
        wrapup_automatic: false,
    }
}

#[test]
fn intervals_are_quarter_hours_from_the_epoch() {
    assert_eq!(interval_of(DAY), DAY);
    assert_eq!(interval_of(DAY + 14 * MIN + 59_999), DAY);
    assert_eq!(interval_of(DAY + 15 * MIN), DAY + 15 * MIN);
}

proptest! {
    /// Every duration lies within its bucket, and buckets grow with the duration.
    #[test]
    fn a_duration_lies_in_its_bucket(ms in 0u64..1u64 << 50, more in 0u64..1u64 << 20) {
        let b = Histogram::bucket(ms);
        prop_assert!(Histogram::lower(b) <= ms, "lower({b}) > {ms}");
        prop_assert!(ms <= Histogram::upper(b), "upper({b}) < {ms}");
        prop_assert!(Histogram::bucket(ms + more) >= b);
        // A quarter of an octave: the upper edge is within 25 % of the lower (from 4 ms on).
        if ms >= 4 {
            prop_assert!(Histogram::upper(b) as f64 <= Histogram::lower(b) as f64 * 1.25 + 1.0);
        }
    }

    /// Adding rows is the same as counting everything in one: in any order.
    #[test]
    fn rows_add_up_in_any_order(waits in proptest::collection::vec(0u64..3_600_000, 0..40), split in 0usize..40) {
        let split = split.min(waits.len());
        let row = |ws: &[u64]| {
            let mut f = Figures::default();
            for &w in ws {
                f.answered += 1;
                f.wait.add(&Sum::of(w));
                f.wait_histogram.record(w);
            }
            f
        };
        let whole = row(&waits);
        let mut a = row(&waits[..split]);
        a.add(&row(&waits[split..]));
        let mut b = row(&waits[split..]);
        b.add(&row(&waits[..split]));
        prop_assert_eq!(&a, &whole);
        prop_assert_eq!(&b, &whole);
        // The p90 is never below the true one, never above the maximum, and within a
        // quarter octave of the truth.
        if !waits.is_empty() {
            let mut sorted = waits.clone();
            sorted.sort_unstable();
            let rank = ((0.9 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let truth = sorted[rank - 1];
            let max = *sorted.last().unwrap_or(&0);
            let p90 = whole.wait_histogram.quantile(0.9, max).unwrap_or(0);
            prop_assert!(p90 >= truth && p90 <= max, "p90 {p90} truth {truth} max {max}");
            prop_assert!(p90 as f64 <= truth as f64 * 1.25 + 3.0);
        }
    }
}

#[test]
fn an_empty_histogram_has_no_quantile() {
    assert_eq!(Histogram::default().quantile(0.9, 0), None);
}

/// Answered within the threshold, answered late, abandoned, refused at arrival: each
/// lands in the queue it arrived in, in its arrival's interval.
#[test]
fn a_queue_counts_each_conversation_once_where_it_arrived() {
    let arrived = DAY + 14 * MIN;
    let mut answered = record(arrived);
    answered.queues = vec!["q1".into(), "q2".into()];
    answered.accepted_at = Some(arrived + 30_000);
    answered.first_agent_reply_at = Some(arrived + 50_000);
    // Wrapped up in the next interval: still the arrival's.
    answered.agents = vec![part("a1", arrived + 30_000, arrived + 5 * MIN, Some(arrived + 6 * MIN))];
    answered.ended_at = arrived + 5 * MIN;
    answered.outcome = Outcome::Transferred;
    answered.transfers = 1;
    let d = queue_delta(&answered, 60_000).expect("a queue");
    assert_eq!(d.subject, Subject::Queue("q1".into()));
    assert_eq!(d.interval, DAY);
    let f = &d.figures;
    assert_eq!(
        (f.offered, f.answered, f.answered_in_sl, f.abandoned, f.refused),
        (1, 1, 1, 0, 0)
    );
    assert_eq!(f.transferred, 1);
    assert_eq!(f.wait, Sum::of(30_000));
    assert_eq!(f.first_response, Sum::of(50_000));
    assert_eq!(f.handle, Sum::of(5 * MIN - 30_000));
    assert_eq!(f.wrapup, Sum::of(MIN));

    let late = queue_delta(&answered, 29_999).expect("a queue");
    assert_eq!(late.figures.answered_in_sl, 0, "30 s is past a 29.999 s threshold");

    let mut left = record(arrived);
    left.ended_at = arrived + 2 * MIN;
    let f = queue_delta(&left, 60_000).expect("a queue").figures;
    assert_eq!((f.offered, f.answered, f.abandoned), (1, 0, 1));
    assert_eq!(f.abandon_wait, Sum::of(2 * MIN));
    assert_eq!(f.service_level_percent(), Some(0.0));

    for reason in [
        super::super::hours::OUTSIDE_HOURS_REASON,
        super::super::queue::QUEUE_FULL_REASON,
    ] {
        let mut refused = record(arrived);
        refused.ended_reason = reason.into();
        let f = queue_delta(&refused, 60_000).expect("a queue").figures;
        assert_eq!((f.offered, f.abandoned, f.refused), (0, 0, 1), "{reason}");
        assert_eq!(f.service_level_percent(), None);
    }
}

#[test]
fn an_agent_counts_what_it_accepted_where_it_accepted() {
    let arrived = DAY;
    let mut r = record(arrived);
    r.accepted_at = Some(arrived + MIN);
    let mut guest = part("a2", arrived + 20 * MIN, arrived + 25 * MIN, Some(arrived + 26 * MIN));
    guest.guest = true;
    r.agents = vec![
        part("a1", arrived + MIN, arrived + 30 * MIN, Some(arrived + 31 * MIN)),
        guest,
    ];
    let d: Vec<Delta> = agent_deltas(&r).collect();
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].subject.clone(), d[0].interval),
        (Subject::Agent("a1".into()), DAY)
    );
    assert_eq!((d[0].figures.handled, d[0].figures.conferenced), (1, 0));
    assert_eq!(d[0].figures.handle, Sum::of(29 * MIN));
    assert_eq!(d[0].figures.wrapup, Sum::of(MIN));
    assert_eq!(
        (d[1].subject.clone(), d[1].interval),
        (Subject::Agent("a2".into()), DAY + 15 * MIN)
    );
    assert_eq!((d[1].figures.handled, d[1].figures.conferenced), (0, 1));
}

#[test]
fn presence_time_is_split_over_the_intervals_it_spans() {
    let d = presence_deltas("a1", Presence::Available, DAY + 10 * MIN, DAY + 40 * MIN);
    let got: Vec<(Millis, u64)> = d
        .iter()
        .map(|d| (d.interval, d.figures.presence_ms["available"]))
        .collect();
    assert_eq!(
        got,
        [(DAY, 5 * MIN), (DAY + 15 * MIN, 15 * MIN), (DAY + 30 * MIN, 10 * MIN)]
    );
    assert!(presence_deltas("a1", Presence::LoggedOut, DAY, DAY + MIN).is_empty());
    assert!(presence_deltas("a1", Presence::Idle, DAY, DAY).is_empty());
    let mut f = Figures::default();
    for x in &d {
        f.add(&x.figures);
    }
    f.handle = Sum::of(15 * MIN);
    assert_eq!(f.occupancy_percent(), Some(50.0));
    assert_eq!(rona_delta("a1", DAY + 16 * MIN).interval, DAY + 15 * MIN);
}

/// Hours and days on a zone's wall clock, across both daylight-saving changes of 2026 in
/// Paris (29 March, 25 October) and in a zone half an hour off UTC.
#[test]
fn report_intervals_follow_the_wall_clock() {
    use chrono::TimeZone;
    let paris: chrono_tz::Tz = "Europe/Paris".parse().expect("zone");
    let kolkata: chrono_tz::Tz = "Asia/Kolkata".parse().expect("zone");
    let utc = |y, m, d, h, mi| {
        chrono::Utc
            .with_ymd_and_hms(y, m, d, h, mi, 0)
            .unwrap()
            .timestamp_millis() as Millis
    };
    // 5 December 2026, 10:20 UTC is 11:20 in Paris, 15:50 in Kolkata.
    let at = utc(2026, 12, 5, 10, 20);
    assert_eq!(report_interval(at, Grain::Quarter, paris), utc(2026, 12, 5, 10, 15));
    assert_eq!(report_interval(at, Grain::Hour, paris), utc(2026, 12, 5, 10, 0));
    assert_eq!(report_interval(at, Grain::Hour, kolkata), utc(2026, 12, 5, 9, 30));
    assert_eq!(report_interval(at, Grain::Day, paris), utc(2026, 12, 4, 23, 0));
    assert_eq!(report_interval(at, Grain::Day, kolkata), utc(2026, 12, 4, 18, 30));
    // The spring day is 23 hours long, the autumn day 25.
    let days = report_intervals(utc(2026, 3, 28, 12, 0), utc(2026, 3, 30, 12, 0), Grain::Day, paris).expect("few");
    assert_eq!(
        days,
        [
            utc(2026, 3, 27, 23, 0),
            utc(2026, 3, 28, 23, 0),
            utc(2026, 3, 29, 22, 0)
        ]
    );
    let days = report_intervals(utc(2026, 10, 24, 12, 0), utc(2026, 10, 26, 12, 0), Grain::Day, paris).expect("few");
    assert_eq!(
        days,
        [
            utc(2026, 10, 23, 22, 0),
            utc(2026, 10, 24, 22, 0),
            utc(2026, 10, 25, 23, 0)
        ]
    );
    // The hours of the autumn night: 02:00-03:00 comes twice, as two hours.
    let hours = report_intervals(utc(2026, 10, 24, 23, 0), utc(2026, 10, 25, 2, 0), Grain::Hour, paris).expect("few");
    assert_eq!(hours.len(), 3);
    // Too many intervals is refused rather than built.
    assert!(report_intervals(0, 60 * 24 * 3_600_000, Grain::Quarter, paris).is_none());
}

proptest! {
    /// Rolling a row up by the interval starts alone puts it where its wall-clock
    /// interval is, by the hour and by the day, in zones with daylight saving and with a
    /// half-hour offset, over a year.
    #[test]
    fn a_row_rolls_up_into_its_wall_clock_interval(
        offset in 0u64..365 * 24 * 60,
        zone in prop::sample::select(vec!["Europe/Paris", "Asia/Kolkata", "America/New_York", "UTC"]),
        day in any::<bool>(),
    ) {
        let tz: chrono_tz::Tz = zone.parse().expect("zone");
        let grain = if day { Grain::Day } else { Grain::Hour };
        let at = DAY - 182 * 24 * 60 * MIN + offset * MIN;
        // 180 days around it: 4,320 hours, under the report's bound.
        let (from, to) = (at - 90 * 24 * 60 * MIN, at + 90 * 24 * 60 * MIN);
        let intervals = report_intervals(from, to, grain, tz).expect("180 days by the hour fit");
        let end = next_report_interval(*intervals.last().expect("some"), grain, tz);
        let row = Figures { offered: 1, ..Default::default() };
        let sums = roll_up(&[(at, row)], &intervals, end);
        let i = sums.iter().position(|f| f.offered == 1).expect("rolled up");
        prop_assert_eq!(intervals[i], report_interval(at, grain, tz));
    }
}

#[test]
fn rows_roll_up_into_the_report_intervals() {
    let utc: chrono_tz::Tz = "UTC".parse().expect("zone");
    let row = |n| Figures {
        offered: n,
        ..Default::default()
    };
    let rows = [(DAY, row(1)), (DAY + 45 * MIN, row(2)), (DAY + 60 * MIN, row(4))];
    let intervals = report_intervals(DAY, DAY + 2 * 60 * MIN, Grain::Hour, utc).expect("few");
    let got: Vec<u64> = roll_up(&rows, &intervals, DAY + 2 * 60 * MIN)
        .iter()
        .map(|f| f.offered)
        .collect();
    assert_eq!(got, [3, 4]);
}

mod scripted_day {
    //! A scripted morning through the floor, its figures added up as the store adds them,
    //! every figure of both reports computed by hand.
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::{Account, Change, EntryPoint, Floor, Rules, Skills};

    const S: Millis = 1000;
    /// 09:00 UTC on the day: the first interval (I0) of the script.
    const T: Millis = DAY + 9 * 60 * MIN;
    const Q: Millis = INTERVAL_MS;

    struct Day {
        f: Floor,
        rows: BTreeMap<(Subject, Millis), Figures>,
    }

    impl Day {
        /// Queues q1 (a1, a2) and q2 (a3, service level 10 s), entry points e1 → q1 and
        /// e2 → q2; offers run 2 minutes, customers close after 10 minutes of silence.
        fn new() -> Day {
            let rules = Rules {
                offer_timeout_ms: 2 * MIN,
                transfer_timeout_ms: 2 * MIN,
                conference_timeout_ms: 2 * MIN,
                inactivity_close_ms: 10 * MIN,
                ..Rules::default()
            };
            let mut f = Floor::new(rules);
            f.create_queue("q1", "One", Vec::new(), None, None, None).expect("q1");
            f.create_queue("q2", "Two", Vec::new(), None, None, Some(10 * S))
                .expect("q2");
            for (e, q) in [("e1", "q1"), ("e2", "q2")] {
                let ep = EntryPoint {
                    id: e.into(),
                    name: format!("Page {e}"),
                    queue: q.into(),
                    ..Default::default()
                };
                f.create_entry_point(ep).expect("entry point");
            }
            for (a, q) in [("a1", "q1"), ("a2", "q1"), ("a3", "q2")] {
                f.create_agent(a, a, vec![q.into()], 1, Account::default(), Skills::new(), 0)
                    .expect("agent");
            }
            Day {
                f,
                rows: BTreeMap::new(),
            }
        }

        /// Takes the changes owed, as the router does, and adds their figures up.
        fn settle(&mut self) {
            self.f.take_effects();
            for c in self.f.take_changes() {
                if let Change::Figures(d) = c {
                    self.rows.entry((d.subject, d.interval)).or_default().add(&d.figures);
                }
            }
        }

        fn ok<T, E: std::fmt::Debug>(&mut self, r: Result<T, E>) {
            if let Err(e) = r {
                panic!("refused: {e:?}");
            }
            self.settle();
        }

        fn row(&self, s: Subject, at: Millis) -> Figures {
            self.rows.get(&(s, at)).cloned().unwrap_or_default()
        }
    }

    fn q(id: &str) -> Subject {
        Subject::Queue(id.into())
    }

    fn a(id: &str) -> Subject {
        Subject::Agent(id.into())
    }

    fn customer(id: &str) -> Customer {
        Customer {
            id: id.into(),
            name: format!("Customer {id}"),
        }
    }

    #[test]
    fn a_scripted_morning_gives_the_figures_counted_by_hand() {
        let mut d = Day::new();
        for agent in ["a1", "a2", "a3"] {
            let r = d.f.set_state(agent, Presence::Available, None, T).map(|_| ());
            d.ok(r);
        }
        // c-1 (q1, I0) arrives at 09:01: offered to a1, which lets it expire (RONA) at
        // 09:03; a2 accepts at 09:03:10 (waited 2 min 10 s: past q1's minute), replies 10 s later, ends at
        // 09:14 and wraps up at 09:16: in I1, but its figures stay with I0.
        let r =
            d.f.customer_message("e1", customer("u1"), "hello", Channel::Rest, T + MIN)
                .map(|_| ());
        d.ok(r);
        assert_eq!(d.f.fire_due(T + 3 * MIN), 1, "a1's offer expires");
        d.settle();
        let r = d.f.accept("a2", "c-1", T + 3 * MIN + 10 * S).map(|_| ());
        d.ok(r);
        let r = d.f.agent_message("a2", "c-1", "hi", T + 3 * MIN + 20 * S).map(|_| ());
        d.ok(r);
        // c-2 (q1, I0) arrives at 09:05 with a1 in RONA and a2 busy; its customer leaves
        // at 09:07: abandoned after 2 minutes.
        let r =
            d.f.customer_message("e1", customer("u2"), "anyone?", Channel::Rest, T + 5 * MIN)
                .map(|_| ());
        d.ok(r);
        let r = d.f.customer_end("c-2", T + 7 * MIN);
        d.ok(r);
        // a1 is available again at 09:08 (RONA 09:03-09:08).
        let r = d.f.set_state("a1", Presence::Available, None, T + 8 * MIN).map(|_| ());
        d.ok(r);
        let r = d.f.end("a2", "c-1", T + 14 * MIN);
        d.ok(r);
        // c-3 (q1, I0) arrives at 09:14:30; a1 accepts at 09:15:30 (waited exactly q1's
        // minute: within), in I1 for a1; a1 transfers it to q2 at 09:20, where a3 accepts
        // at 09:20:30; a1 wraps up at 09:21, a3 ends at 09:25 and wraps up at 09:26.
        let r =
            d.f.customer_message("e1", customer("u3"), "help", Channel::Rest, T + 14 * MIN + 30 * S)
                .map(|_| ());
        d.ok(r);
        let r = d.f.accept("a1", "c-3", T + 15 * MIN + 30 * S).map(|_| ());
        d.ok(r);
        let r = d.f.wrapup("a2", "c-1", "resolved", T + 16 * MIN);
        d.ok(r);
        let r = d.f.transfer_to_queue("a1", "c-3", "q2", None, T + 20 * MIN);
        d.ok(r);
        let r = d.f.accept("a3", "c-3", T + 20 * MIN + 30 * S).map(|_| ());
        d.ok(r);
        let r = d.f.wrapup("a1", "c-3", "resolved", T + 21 * MIN);
        d.ok(r);
        let r = d.f.end("a3", "c-3", T + 25 * MIN);
        d.ok(r);
        let r = d.f.wrapup("a3", "c-3", "resolved", T + 26 * MIN);
        d.ok(r);
        // c-4 (q2, I2) arrives at 09:31; a3 accepts 20 s later (past q2's 10 s); the
        // customer says nothing more and it closes at 09:41:20; a3 wraps up 40 s later.
        let r =
            d.f.customer_message("e2", customer("u4"), "hey", Channel::Rest, T + 31 * MIN)
                .map(|_| ());
        d.ok(r);
        let r = d.f.accept("a3", "c-4", T + 31 * MIN + 20 * S).map(|_| ());
        d.ok(r);
        assert_eq!(d.f.fire_due(T + 41 * MIN + 20 * S), 1, "inactivity closes c-4");
        d.settle();
        let r = d.f.wrapup("a3", "c-4", "resolved", T + 42 * MIN);
        d.ok(r);

        // q1, I0: c-1, c-2, c-3.
        let f = d.row(q("q1"), T);
        assert_eq!((f.offered, f.answered, f.abandoned, f.refused), (3, 2, 1, 0));
        assert_eq!(f.answered_in_sl, 1, "c-3 at exactly 60 s; c-1 at 130 s");
        assert_eq!(f.service_level_percent().map(|p| (p * 100.0).round()), Some(3333.0));
        assert_eq!(
            f.wait,
            Sum {
                count: 2,
                total_ms: 130 * S + 60 * S,
                max_ms: 130 * S
            }
        );
        assert_eq!(f.wait_histogram.quantile(0.9, f.wait.max_ms), Some(130 * S));
        assert_eq!(f.abandon_wait, Sum::of(2 * MIN));
        assert_eq!(f.first_response, Sum::of(2 * MIN + 20 * S), "c-1: 09:01 to 09:03:20");
        // c-1: a2 09:03:10-09:14; c-3: a1 09:15:30-09:20 and a3 09:20:30-09:25.
        let c1 = 14 * MIN - (3 * MIN + 10 * S);
        let c3 = (4 * MIN + 30 * S) + (4 * MIN + 30 * S);
        assert_eq!(
            f.handle,
            Sum {
                count: 2,
                total_ms: c1 + c3,
                max_ms: c1
            }
        );
        // Wrap-ups: a2 2 min after 09:14, a1 1 min after 09:20, a3 1 min after 09:25.
        assert_eq!(
            f.wrapup,
            Sum {
                count: 3,
                total_ms: 4 * MIN,
                max_ms: 2 * MIN
            }
        );
        assert_eq!((f.transferred, f.closed_inactive), (1, 0));
        assert_eq!(d.row(q("q1"), T + Q), Figures::default(), "nothing arrived in q1's I1");
        assert_eq!(d.row(q("q2"), T), Figures::default(), "c-3 counts where it arrived");

        // q2, I2: c-4.
        let f = d.row(q("q2"), T + 2 * Q);
        assert_eq!(
            (f.offered, f.answered, f.answered_in_sl, f.closed_inactive),
            (1, 1, 0, 1)
        );
        assert_eq!(f.wait, Sum::of(20 * S));
        assert_eq!(f.handle, Sum::of(10 * MIN));
        assert_eq!(f.wrapup, Sum::of(40 * S));
        assert_eq!(f.first_response, Sum::default(), "a3 never wrote");

        // a1: available 09:00-09:03, RONA 09:03-09:08 (one RONA), available since (under
        // way, not stored yet); c-3 accepted in I1.
        let f = d.row(a("a1"), T);
        assert_eq!(f.presence_ms.get("available"), Some(&(3 * MIN)));
        assert_eq!(f.presence_ms.get("rona"), Some(&(5 * MIN)));
        assert_eq!(f.ronas, 1);
        assert_eq!(f.handled, 0);
        let f = d.row(a("a1"), T + Q);
        assert_eq!(
            (f.handled, f.handle, f.wrapup),
            (1, Sum::of(4 * MIN + 30 * S), Sum::of(MIN))
        );
        // a2: c-1, accepted in I0.
        let f = d.row(a("a2"), T);
        assert_eq!((f.handled, f.handle, f.wrapup), (1, Sum::of(c1), Sum::of(2 * MIN)));
        assert_eq!(f.ronas, 0);
        // a3: c-3 in I1, c-4 in I2.
        let f = d.row(a("a3"), T + Q);
        assert_eq!(
            (f.handled, f.handle, f.wrapup),
            (1, Sum::of(4 * MIN + 30 * S), Sum::of(MIN))
        );
        let f = d.row(a("a3"), T + 2 * Q);
        assert_eq!((f.handled, f.handle, f.wrapup), (1, Sum::of(10 * MIN), Sum::of(40 * S)));

        // By the hour, on any zone with whole-hour offsets, all of q1 is one interval.
        let utc: chrono_tz::Tz = "UTC".parse().expect("zone");
        let rows: Vec<(Millis, Figures)> = d
            .rows
            .iter()
            .filter(|((s, _), _)| *s == q("q1"))
            .map(|((_, at), f)| (*at, f.clone()))
            .collect();
        let hours = report_intervals(T, T + 2 * 60 * MIN, Grain::Hour, utc).expect("few");
        let sums = roll_up(&rows, &hours, T + 2 * 60 * MIN);
        assert_eq!(sums[0], d.row(q("q1"), T));
        assert_eq!(sums[1], Figures::default());
    }
}
