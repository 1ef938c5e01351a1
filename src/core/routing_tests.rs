//! Table tests of the routing-depth rules and of [`RoutingIndex`].

use super::*;

/// Skills or requirements written as pairs.
type Pairs<'a> = &'a [(&'a str, u8)];

fn map(pairs: Pairs) -> BTreeMap<String, u8> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn step(req: &[(&str, u8)], for_ms: Option<u64>) -> Step {
    Step {
        requirements: map(req),
        for_ms,
    }
}

#[test]
fn meets_and_score() {
    // (skills, requirements, meets, score)
    let table: &[(Pairs, Pairs, bool, u32)] = &[
        (&[], &[], true, 0),
        (&[("fr", 5)], &[], true, 0),
        (&[("fr", 5)], &[("fr", 5)], true, 5),
        (&[("fr", 7)], &[("fr", 5)], true, 7),
        (&[("fr", 4)], &[("fr", 5)], false, 4),
        (&[("fr", 9)], &[("fr", 5), ("billing", 1)], false, 9),
        (&[("fr", 9), ("billing", 3)], &[("fr", 5), ("billing", 1)], true, 12),
        (&[("de", 9)], &[("fr", 1)], false, 0),
    ];
    for (skills, req, ok, sc) in table {
        let (s, r) = (map(skills), map(req));
        assert_eq!(meets(&s, &r), *ok, "{skills:?} meets {req:?}");
        assert_eq!(score(&s, &r), *sc, "{skills:?} score over {req:?}");
    }
}

#[test]
fn steps_count_from_received_at() {
    let steps = vec![
        step(&[("fr", 8)], Some(1_000)),
        step(&[("fr", 5)], Some(2_000)),
        step(&[], None),
    ];
    // (now, step, end of that step)
    let table = [
        (100, Some(0), Some(1_100)),
        (1_099, Some(0), Some(1_100)),
        (1_100, Some(1), Some(3_100)),
        (3_099, Some(1), Some(3_100)),
        (3_100, Some(2), None),
        (1_000_000, Some(2), None),
    ];
    for (now, want, end) in table {
        let got = step_at(&steps, 100, now);
        assert_eq!(got, want, "step at {now}");
        assert_eq!(step_ends_at(&steps, 100, got.unwrap_or(0)), end, "end of step at {now}");
    }
    assert_eq!(step_at(&[], 100, 5_000), None);
    assert_eq!(requirements_of(&steps, Some(1)), map(&[("fr", 5)]));
    assert_eq!(requirements_of(&steps, None), Requirements::new());
}

#[test]
fn bad_skills_and_steps_are_refused() {
    let ok_skills: &[&[(&str, u8)]] = &[&[], &[("lang.fr", 1)], &[("a_b-c.9", 10)]];
    for s in ok_skills {
        assert!(check_skills("skills", &map(s)).is_ok(), "{s:?}");
    }
    let bad_skills: &[&[(&str, u8)]] = &[&[("Lang", 3)], &[("", 3)], &[("fr", 0)], &[("fr", 11)], &[("a b", 2)]];
    for s in bad_skills {
        let e = check_skills("skills", &map(s)).unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{s:?}");
    }
    let long = "x".repeat(MAX_SKILL_NAME + 1);
    assert!(check_skills("skills", &map(&[(long.as_str(), 1)])).is_err());

    assert!(check_steps(&[]).is_ok());
    assert!(check_steps(&[step(&[("fr", 5)], None)]).is_ok());
    assert!(check_steps(&[step(&[("fr", 5)], Some(10)), step(&[], None)]).is_ok());
    let bad: &[&[Step]] = &[
        &[step(&[], Some(10))],                           // last with for_ms
        &[step(&[], None), step(&[], None)],              // not last without for_ms
        &[step(&[], Some(0)), step(&[], None)],           // zero for_ms
        &[step(&[("FR", 5)], Some(10)), step(&[], None)], // bad name in a step
    ];
    for s in bad {
        assert_eq!(check_steps(s).unwrap_err().code(), "invalid_input", "{s:?}");
    }
    let many: Vec<Step> = (0..=MAX_STEPS)
        .map(|i| step(&[], (i < MAX_STEPS).then_some(1)))
        .collect();
    assert!(check_steps(&many).is_err());
}

/// A small floor of agents for the index: (id, skills, free_since).
struct Agents(Vec<(String, Vec<String>, Skills, Millis)>);

impl Agents {
    fn new(list: &[(&str, Pairs, Millis)]) -> Self {
        Agents(
            list.iter()
                .map(|(id, skills, t)| (id.to_string(), vec!["q".to_string()], map(skills), *t))
                .collect(),
        )
    }
    fn view(&self, id: &str) -> Option<AgentView<'_>> {
        self.0.iter().find(|a| a.0 == id).map(|a| AgentView {
            id: &a.0,
            queues: &a.1,
            skills: &a.2,
            free_since: a.3,
        })
    }
    fn all(&self) -> impl Iterator<Item = AgentView<'_>> {
        self.0.iter().map(|a| AgentView {
            id: &a.0,
            queues: &a.1,
            skills: &a.2,
            free_since: a.3,
        })
    }
}

fn index_with(choice: AgentChoice, agents: &Agents) -> RoutingIndex {
    let mut ix = RoutingIndex::new(choice);
    ix.add_queue("q");
    for a in agents.all() {
        ix.agent_in(a);
    }
    ix
}

fn waiting<'a>(id: &'a str, req: &'a Requirements, preferred: Option<&'a str>, at: Millis) -> WaitingView<'a> {
    WaitingView {
        id,
        queue: "q",
        key: (Reverse(0), at, at),
        requirements: req,
        preferred,
    }
}

#[test]
fn the_best_agent_meets_the_requirements_and_is_chosen_by_the_rule() {
    let agents = Agents::new(&[
        ("novice", &[("fr", 3)], 10),
        ("expert", &[("fr", 9)], 30),
        ("middle", &[("fr", 6), ("billing", 2)], 20),
        ("none", &[], 5),
    ]);
    let none = BTreeSet::new();
    let fr5 = map(&[("fr", 5)]);
    let any = Requirements::new();
    // (choice, requirements, best)
    let table = [
        (AgentChoice::LongestIdle, &any, "none"),
        (AgentChoice::LongestIdle, &fr5, "middle"),
        (AgentChoice::BestSkilled, &fr5, "expert"),
        // No requirements: every score is 0, so longest idle decides.
        (AgentChoice::BestSkilled, &any, "none"),
    ];
    for (choice, req, want) in table {
        let mut ix = index_with(choice, &agents);
        ix.wait(waiting("c1", req, None, 100), agents.all());
        let got = ix.best_agent(waiting("c1", req, None, 100), &none, |id| agents.view(id));
        assert_eq!(got.as_deref(), Some(want), "{choice:?} {req:?}");
    }
    // Agents that let an offer of it expire are passed over while another one is there.
    let ix = index_with(AgentChoice::LongestIdle, &agents);
    let mut ix = ix;
    ix.wait(waiting("c1", &fr5, None, 100), agents.all());
    let rona: BTreeSet<AgentId> = ["middle".to_string()].into();
    let got = ix.best_agent(waiting("c1", &fr5, None, 100), &rona, |id| agents.view(id));
    assert_eq!(got.as_deref(), Some("expert"));
    let rona: BTreeSet<AgentId> = ["middle".to_string(), "expert".to_string()].into();
    let got = ix.best_agent(waiting("c1", &fr5, None, 100), &rona, |id| agents.view(id));
    assert_eq!(got.as_deref(), Some("middle"), "the fallback when nobody else can");
}

#[test]
fn a_free_agent_takes_the_first_conversation_it_can_serve() {
    let agents = Agents::new(&[("fr", &[("fr", 5)], 10), ("de", &[("de", 5)], 10)]);
    let mut ix = index_with(AgentChoice::LongestIdle, &agents);
    let need_de = map(&[("de", 1)]);
    let need_fr = map(&[("fr", 1)]);
    // The oldest needs German; the French agent takes the next one.
    ix.wait(waiting("c-de", &need_de, None, 1), agents.all());
    ix.wait(waiting("c-fr", &need_fr, None, 2), agents.all());
    let fr = agents.view("fr").unwrap();
    assert_eq!(ix.best_conversation_for(fr).as_deref(), Some("c-fr"));
    let de = agents.view("de").unwrap();
    assert_eq!(ix.best_conversation_for(de).as_deref(), Some("c-de"));
    // A conversation preferring an agent is for that agent alone.
    let any = Requirements::new();
    ix.wait(waiting("c-pref", &any, Some("de"), 0), agents.all());
    assert_eq!(ix.best_conversation_for(de).as_deref(), Some("c-pref"));
    assert_eq!(ix.best_conversation_for(fr).as_deref(), Some("c-fr"));
    ix.unwait(waiting("c-pref", &any, Some("de"), 0));
    assert_eq!(ix.best_conversation_for(de).as_deref(), Some("c-de"));
}

#[test]
fn groups_come_and_go_with_the_conversations_that_need_them() {
    let agents = Agents::new(&[("a", &[("fr", 5)], 10)]);
    let mut ix = index_with(AgentChoice::LongestIdle, &agents);
    assert_eq!(ix.groups_of("q"), 1, "no requirements only");
    let need = map(&[("fr", 3)]);
    ix.wait(waiting("c1", &need, None, 1), agents.all());
    assert_eq!(ix.groups_of("q"), 2);
    // A group made while the agent was free already knows it.
    let got = ix.best_agent(waiting("c1", &need, None, 1), &BTreeSet::new(), |id| agents.view(id));
    assert_eq!(got.as_deref(), Some("a"));
    ix.unwait(waiting("c1", &need, None, 1));
    assert_eq!(ix.groups_of("q"), 1, "nobody needs it any more");
    // A pinned group stays.
    ix.pin("q", &need, agents.all());
    ix.wait(waiting("c2", &need, None, 2), agents.all());
    ix.unwait(waiting("c2", &need, None, 2));
    assert_eq!(ix.groups_of("q"), 2);
    // An agent out of the index is in no free set.
    ix.agent_out(agents.view("a").unwrap());
    assert_eq!(ix.available_in("q"), 0);
    let got = ix.best_agent(waiting("c2", &need, None, 2), &BTreeSet::new(), |id| agents.view(id));
    assert_eq!(got, None);
}
