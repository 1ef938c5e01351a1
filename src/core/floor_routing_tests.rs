//! Table tests of ../shared/SPEC.md "Routing depth": skills, routing steps, priority, best-skilled
//! choice, preferred agents and customer inactivity, through [`Floor::execute`].
//!
//! The floor: queue q1 (no steps of its own) and q2 (steps: `billing >= 3` for 1 s, then
//! anyone). Entry points: e1 → q1 with steps `lang.fr >= 8` for 1 s, `lang.fr >= 5` for
//! 1 s, then anyone; e2 → q1 with priority 5 and no steps; e3 → q2. Agents, each serving
//! both queues with capacity 1: `fr9` (lang.fr 9), `fr6` (lang.fr 6), `bill` (billing 4)
//! and `none` (no skills). Offers last 10 s. Conversations are named by their customer.

use super::routing::{AgentChoice, LastOwner, Opening, Skills, Step};
use super::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    Avail(&'static str),
    Idle(&'static str),
    /// A customer writes on an entry point (opens or joins their conversation).
    Msg(&'static str, &'static str),
    /// ... with a priority override.
    MsgPriority(&'static str, &'static str, i32),
    Accept(&'static str),
    End(&'static str),
    Wrapup(&'static str),
    TransferToQueue(&'static str, &'static str),
    Skills(&'static str, &'static str),
    Priority(&'static str, i32),
    Tick(u64),
    /// `queued`, `offered:fr9`, `active:fr9`, `ended:reason`.
    Is(&'static str, &'static str),
    /// `step/requirements/preferred`, e.g. `1/lang.fr>=5/-`.
    Routing(&'static str, &'static str),
    /// A queue's waiting order.
    Waiting(&'static str, &'static str),
    /// The last transcript text.
    Last(&'static str, &'static str),
}
use Op::*;

fn skills(s: &str) -> Skills {
    s.split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or(0)))
        .collect()
}

fn step(req: &str, for_ms: Option<u64>) -> Step {
    Step {
        requirements: skills(req),
        for_ms,
    }
}

fn rules(choice: AgentChoice, last_agent_ms: u64, inactivity_close_ms: u64) -> Rules {
    Rules {
        offer_timeout_ms: 10_000,
        agent_choice: choice,
        last_agent_ms,
        last_agent_within_ms: 60_000,
        inactivity_close_ms,
        ..Rules::default()
    }
}

fn floor(rules: Rules) -> Floor {
    let mut f = Floor::new(rules);
    let q2_steps = vec![step("billing:3", Some(1_000)), step("", None)];
    for (q, steps) in [("q1", vec![]), ("q2", q2_steps)] {
        f.execute(
            Command::CreateQueue {
                id: q.into(),
                name: q.to_uppercase(),
                routing_steps: steps,
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            },
            0,
        )
        .expect("queue");
    }
    let e1_steps = vec![
        step("lang.fr:8", Some(1_000)),
        step("lang.fr:5", Some(1_000)),
        step("", None),
    ];
    for (e, q, priority, steps) in [
        ("e1", "q1", 0, e1_steps),
        ("e2", "q1", 5, vec![]),
        ("e3", "q2", 0, vec![]),
    ] {
        let ep = EntryPoint {
            id: e.into(),
            name: format!("Page {e}"),
            queue: q.into(),
            priority,
            routing_steps: steps,
            ..Default::default()
        };
        f.execute(Command::CreateEntryPoint(ep), 0).expect("entry point");
    }
    for (a, s) in [
        ("fr9", "lang.fr:9"),
        ("fr6", "lang.fr:6"),
        ("bill", "billing:4"),
        ("none", ""),
    ] {
        f.execute(
            Command::CreateAgent {
                id: a.into(),
                name: a.into(),
                queues: vec!["q1".into(), "q2".into()],
                capacity: Some(1),
                credential: None,
                password_hash: None,
                skills: skills(s),
            },
            0,
        )
        .expect("agent");
    }
    f
}

/// The conversation of customer `u` (open or ended), by scanning: tests are small.
fn conv_of<'a>(f: &'a Floor, u: &str) -> Option<&'a Conversation> {
    f.conversations()
        .filter(|c| c.customer.id == u)
        .max_by_key(|c| c.arrival)
}

fn describe(c: &Conversation) -> String {
    match (c.state, &c.offer) {
        (ConversationState::Queued, _) => "queued".into(),
        (ConversationState::Offered, Some(o)) => format!("offered:{}", o.agent),
        (ConversationState::Active, _) => format!("active:{}", c.owner.clone().unwrap_or_default()),
        (ConversationState::Ended, _) => format!("ended:{}", c.ended_reason.clone().unwrap_or_default()),
        (s, o) => format!("{s:?}/{o:?}"),
    }
}

fn routing_of(c: &Conversation) -> String {
    let step = c.routing.step.map_or("-".to_string(), |s| s.to_string());
    let req: Vec<String> = c
        .routing
        .requirements
        .iter()
        .map(|(k, v)| format!("{k}>={v}"))
        .collect();
    let pref = c.routing.preferred_agent.clone().unwrap_or_else(|| "-".into());
    format!("{step}/{}/{pref}", req.join(","))
}

/// Runs `rows` on `f`; each row's outcome must be as given (`ok`, an error code, or the
/// description a query row asks for). Changes are taken after every row, and the last
/// owners they record are kept as the store would, and handed back with the customer's
/// next message as the router does.
fn check(mut f: Floor, rows: &[(Op, &str)]) {
    let mut now: Millis = 1_000;
    let mut owners: std::collections::HashMap<(String, String), LastOwner> = Default::default();
    let mut gone: std::collections::HashMap<String, Conversation> = Default::default();
    for (i, (op, want)) in rows.iter().enumerate() {
        now += 1;
        let id = |f: &Floor, u: &str| conv_of(f, u).map(|c| c.id.clone()).unwrap_or_else(|| format!("no-{u}"));
        let owner = |f: &Floor, u: &str| conv_of(f, u).and_then(|c| c.owner.clone()).unwrap_or_default();
        let find = |f: &Floor, gone: &std::collections::HashMap<String, Conversation>, u: &str| {
            conv_of(f, u).cloned().or_else(|| gone.get(u).cloned())
        };
        let cmd = match *op {
            Avail(a) => Some(Command::SetState {
                agent: a.into(),
                state: Presence::Available,
                idle_code: None,
            }),
            Idle(a) => Some(Command::SetState {
                agent: a.into(),
                state: Presence::Idle,
                idle_code: Some("break".into()),
            }),
            Msg(ep, u) | MsgPriority(ep, u, _) => {
                let mut cmd = Command::CustomerMessage {
                    entry_point: ep.into(),
                    customer: Customer {
                        id: u.into(),
                        name: u.into(),
                    },
                    text: format!("hi from {u}"),
                    channel: Channel::Rest,
                    open: Opening {
                        priority: match *op {
                            MsgPriority(_, _, p) => Some(p),
                            _ => None,
                        },
                        ..Opening::default()
                    },
                };
                if let Some(key) = f.last_owner_wanted(&cmd) {
                    if let Command::CustomerMessage { open, .. } = &mut cmd {
                        open.last_owner = owners.get(&key).cloned();
                    }
                }
                Some(cmd)
            }
            Accept(u) => {
                let c = conv_of(&f, u);
                let agent = c
                    .and_then(|c| c.offer.as_ref())
                    .map(|o| o.agent.clone())
                    .unwrap_or_default();
                Some(Command::Accept {
                    agent,
                    conversation: id(&f, u),
                })
            }
            End(u) => Some(Command::End {
                agent: owner(&f, u),
                conversation: id(&f, u),
            }),
            Wrapup(u) => {
                let c = id(&f, u);
                let agent = f
                    .agents()
                    .find(|a| a.wrapups.contains_key(&c))
                    .map(|a| a.id.clone())
                    .unwrap_or_default();
                Some(Command::Wrapup {
                    agent,
                    conversation: c,
                    reason: "resolved".into(),
                })
            }
            TransferToQueue(u, q) => Some(Command::TransferToQueue {
                agent: owner(&f, u),
                conversation: id(&f, u),
                queue: q.into(),
                note: None,
            }),
            Skills(a, s) => Some(Command::SetSkills {
                agent: a.into(),
                skills: skills(s),
            }),
            Priority(u, p) => Some(Command::SetPriority {
                conversation: id(&f, u),
                priority: p,
            }),
            _ => None,
        };
        let got = match (cmd, *op) {
            (Some(cmd), _) => match f.execute(cmd, now) {
                Ok(_) => "ok".to_string(),
                Err(e) => e.code().to_string(),
            },
            (None, Tick(ms)) => {
                now += ms;
                f.fire_due(now);
                assert_eq!(f.overdue(now), Vec::<Timer>::new(), "a deadline the table missed");
                "ok".into()
            }
            (None, Is(u, _)) => find(&f, &gone, u).map_or("missing".into(), |c| describe(&c)),
            (None, Routing(u, _)) => find(&f, &gone, u).map_or("missing".into(), |c| routing_of(&c)),
            (None, Last(u, _)) => find(&f, &gone, u)
                .and_then(|c| c.transcript.last().map(|m| m.text.clone()))
                .unwrap_or_default(),
            (None, Waiting(q, _)) => f
                .queue(q)
                .map(|q| {
                    q.waiting
                        .values()
                        .filter_map(|id| f.conversation(id).map(|c| c.customer.id.clone()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
            (None, op) => panic!("row {i}: {op:?} is neither a command nor a query"),
        };
        let want = match op {
            Is(_, w) | Routing(_, w) | Waiting(_, w) | Last(_, w) => *w,
            _ => want,
        };
        assert_eq!(got, want, "row {i}: {op:?}");
        f.take_effects();
        for ch in f.take_changes() {
            if let Change::LastOwner {
                entry_point,
                customer,
                owner,
            } = ch
            {
                owners.insert((entry_point, customer), owner);
            }
        }
        for c in f.take_evicted() {
            gone.insert(c.customer.id.clone(), *c);
        }
        let v = super::super::invariants::check(&f);
        assert!(v.is_empty(), "row {i}: {op:?} broke invariants: {v:?}");
    }
}

#[test]
fn a_skilled_agent_gets_the_offer_over_one_that_waited_longer() {
    check(
        floor(rules(AgentChoice::LongestIdle, 0, 0)),
        &[
            (Avail("none"), "ok"),
            (Avail("fr6"), "ok"),
            (Avail("fr9"), "ok"),
            (Msg("e1", "u1"), "ok"),
            (Is("u1", "offered:fr9"), ""),
            (Routing("u1", "0/lang.fr>=8/-"), ""),
            // No step, no requirements: the longest idle agent.
            (Msg("e2", "u2"), "ok"),
            (Is("u2", "offered:none"), ""),
        ],
    );
}

#[test]
fn steps_relax_with_time_and_each_move_is_routed_at_once() {
    check(
        floor(rules(AgentChoice::LongestIdle, 0, 0)),
        &[
            (Avail("none"), "ok"),
            (Avail("fr6"), "ok"),
            (Msg("e1", "u1"), "ok"),
            (Is("u1", "queued"), ""),
            (Tick(990), "ok"),
            (Is("u1", "queued"), ""),
            // Step 1 (lang.fr >= 5) begins 1 s after received_at: fr6 meets it.
            (Tick(20), "ok"),
            (Routing("u1", "1/lang.fr>=5/-"), ""),
            (Is("u1", "offered:fr6"), ""),
            // fr6 lets the offer expire: RONA, and back in the queue in the step the
            // clock says (step 2, anyone), where none takes it at once.
            (Tick(10_000), "ok"),
            (Routing("u1", "2//-"), ""),
            (Is("u1", "offered:none"), ""),
        ],
    );
}

#[test]
fn new_skills_route_a_waiting_conversation_at_once() {
    check(
        floor(rules(AgentChoice::LongestIdle, 0, 0)),
        &[
            (Avail("none"), "ok"),
            (Msg("e1", "u1"), "ok"),
            (Is("u1", "queued"), ""),
            (Skills("none", "lang.fr:10"), "ok"),
            (Is("u1", "offered:none"), ""),
            // Taking a skill away from a free agent takes it out of groups that need it.
            (Skills("fr9", "lang.fr:bad"), "invalid_input"),
            (Skills("fr9", "Lang:3"), "invalid_input"),
            (Skills("nobody", "lang.fr:3"), "unknown_agent"),
            (Avail("fr6"), "ok"),
            (Skills("fr6", ""), "ok"),
            (Msg("e1", "u2"), "ok"),
            (Is("u2", "queued"), ""),
        ],
    );
}

#[test]
fn a_transfer_to_a_queue_starts_at_that_queues_first_step() {
    check(
        floor(rules(AgentChoice::LongestIdle, 0, 0)),
        &[
            (Avail("fr9"), "ok"),
            (Msg("e1", "u1"), "ok"),
            (Accept("u1"), "ok"),
            (Avail("none"), "ok"),
            (Avail("bill"), "ok"),
            // q2's step 0 needs billing >= 3: bill, though none has waited longer.
            (TransferToQueue("u1", "q2"), "ok"),
            (Routing("u1", "0/billing>=3/-"), ""),
            (Is("u1", "offered:bill"), ""),
        ],
    );
}

#[test]
fn priority_orders_the_queue_and_can_change_while_waiting() {
    check(
        floor(rules(AgentChoice::LongestIdle, 0, 0)),
        &[
            (Msg("e2", "u1"), "ok"),
            (Msg("e1", "u2"), "ok"),
            (MsgPriority("e1", "u3", 9), "ok"),
            (Msg("e2", "u4"), "ok"),
            // Priority first (u3 9, then e2's 5), then received_at.
            (Waiting("q1", "u3,u1,u4,u2"), ""),
            (Priority("u2", 7), "ok"),
            (Waiting("q1", "u3,u2,u1,u4"), ""),
            (Routing("u2", "0/lang.fr>=8/-"), ""),
            // The highest priority it can serve goes to the agent that becomes free.
            (Avail("none"), "ok"),
            (Is("u1", "offered:none"), ""),
            (Priority("u1", 1), "ok"),
            (Accept("u1"), "ok"),
            (Priority("u1", 2), "not_queued"),
            (Priority("nope", 2), "unknown_conversation"),
        ],
    );
}

#[test]
fn best_skilled_chooses_by_the_sum_of_levels_then_longest_idle() {
    for (choice, want) in [
        (AgentChoice::LongestIdle, "offered:fr6"),
        (AgentChoice::BestSkilled, "offered:fr9"),
    ] {
        check(
            floor(rules(choice, 0, 0)),
            &[
                (Skills("fr9", "lang.fr:7"), "ok"),
                (Avail("fr6"), "ok"),
                (Avail("fr9"), "ok"),
                // Step 0 needs lang.fr >= 8: nobody.
                (Msg("e1", "u1"), "ok"),
                (Is("u1", "queued"), ""),
                // Step 1 needs lang.fr >= 5: fr6 has waited longer, fr9 has the higher level.
                (Tick(1_000), "ok"),
                (Is("u1", want), ""),
            ],
        );
    }
}

/// fr6 serves customer u1 on e2 from offer to wrap-up: fr6 is u1's last owner there.
const SERVED_BY_FR6: &[(Op, &str)] = &[
    (Avail("fr6"), "ok"),
    (Msg("e2", "u1"), "ok"),
    (Accept("u1"), "ok"),
    (End("u1"), "ok"),
    (Wrapup("u1"), "ok"),
];

#[test]
fn a_returning_customer_goes_back_to_the_last_owner() {
    check(
        floor(rules(AgentChoice::LongestIdle, 2_000, 0)),
        &[
            SERVED_BY_FR6,
            &[
                // none has waited longest; u1's new conversation goes to fr6 all the same.
                (Avail("none"), "ok"),
                (Msg("e2", "u1"), "ok"),
                (Is("u1", "offered:fr6"), ""),
                (Accept("u1"), "ok"),
                (Routing("u1", "-//-"), ""),
                (End("u1"), "ok"),
                (Wrapup("u1"), "ok"),
                // fr6 busy elsewhere: u1 waits for fr6 alone, then anyone may take it.
                (Msg("e2", "u2"), "ok"),
                (Is("u2", "offered:none"), ""),
                (Accept("u2"), "ok"),
                (Idle("fr6"), "ok"),
                (Avail("bill"), "ok"),
                (Msg("e2", "u1"), "ok"),
                (Is("u1", "queued"), ""),
                (Routing("u1", "-//fr6"), ""),
                (Tick(2_000), "ok"),
                (Routing("u1", "-//-"), ""),
                (Is("u1", "offered:bill"), ""),
            ],
        ]
        .concat(),
    );
}

#[test]
fn an_offer_the_preferred_agent_lets_expire_ends_the_preference() {
    check(
        floor(rules(AgentChoice::LongestIdle, 30_000, 0)),
        &[
            SERVED_BY_FR6,
            &[
                (Msg("e2", "u1"), "ok"),
                (Is("u1", "offered:fr6"), ""),
                (Avail("none"), "ok"),
                (Is("u1", "offered:fr6"), ""),
                (Tick(10_000), "ok"),
                (Routing("u1", "-//-"), ""),
                (Is("u1", "offered:none"), ""),
            ],
        ]
        .concat(),
    );
}

#[test]
fn a_preference_needs_the_last_owner_to_meet_the_first_step() {
    check(
        floor(rules(AgentChoice::LongestIdle, 30_000, 0)),
        &[
            SERVED_BY_FR6,
            &[
                // On e1, step 0 needs lang.fr >= 8: fr6 does not meet it, so no preference
                // (and on another entry point there is no last owner anyway).
                (Msg("e1", "u1"), "ok"),
                (Routing("u1", "0/lang.fr>=8/-"), ""),
            ],
        ]
        .concat(),
    );
}

#[test]
fn a_silent_customer_is_closed_and_a_message_restarts_the_clock() {
    check(
        floor(rules(AgentChoice::LongestIdle, 0, 5_000)),
        &[
            (Avail("none"), "ok"),
            (Msg("e2", "u1"), "ok"),
            (Tick(3_000), "ok"),
            // Queued and offered time does not count: the clock starts at accept.
            (Accept("u1"), "ok"),
            (Tick(3_000), "ok"),
            (Msg("e2", "u1"), "ok"),
            (Tick(3_000), "ok"),
            (Is("u1", "active:none"), ""),
            (Tick(2_100), "ok"),
            (Is("u1", "ended:customer_inactive"), ""),
            (Last("u1", INACTIVITY_TEXT), ""),
            (Wrapup("u1"), "ok"),
        ],
    );
}
