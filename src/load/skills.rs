//! `--skills`: the skilled scenario (../shared/SPEC.md "Routing depth") and what the outside checks
//! need to verify invariant 7.
//!
//! - Queue `i` speaks language [`LANGUAGES`]`[i % 4]`; its entry point and the queue itself
//!   (for transfers into it) have two routing steps: that language at level 7 or more for
//!   `--step-ms`, then at level 3 or more.
//! - Each agent has the four languages at seeded random levels 1-10, raised to 3 for the
//!   languages of the queues it serves, so every conversation finds an agent in step 1
//!   and about four in ten agents meet step 0.
//! - A share of conversations ([`PRIORITY_SHARE`]) opens with a priority override (1-5).

use std::collections::HashMap;

use rand::Rng;

use crate::core::routing::{meets, requirements_of, step_at};
use crate::core::{Millis, Requirements, Skills, Step};

/// The skills agents have; queue `i` needs the language `i % 4`.
pub const LANGUAGES: [&str; 4] = ["lang.en", "lang.fr", "lang.de", "lang.es"];
/// The level step 0 needs.
pub const STEP0_LEVEL: u8 = 7;
/// The level the last step needs (every agent has it for the queues it serves).
pub const STEP1_LEVEL: u8 = 3;
/// Share of conversations that open with a priority of their own.
pub const PRIORITY_SHARE: f64 = 0.2;

/// The language of queue `index` (0-based).
pub fn language(index: usize) -> &'static str {
    LANGUAGES[index % LANGUAGES.len()]
}

/// The two routing steps of the queue at `index` and of its entry point.
pub fn steps(index: usize, step_ms: u64) -> Vec<Step> {
    let need = |level| Requirements::from([(language(index).to_string(), level)]);
    vec![
        Step {
            requirements: need(STEP0_LEVEL),
            for_ms: Some(step_ms.max(1)),
        },
        Step {
            requirements: need(STEP1_LEVEL),
            for_ms: None,
        },
    ]
}

/// An agent's skills: every language at a random level, those of `serves` (queue
/// indexes) at [`STEP1_LEVEL`] or more.
pub fn agent_skills(rng: &mut impl Rng, serves: &[usize]) -> Skills {
    let mut skills: Skills = LANGUAGES
        .iter()
        .map(|l| (l.to_string(), rng.gen_range(1..=10u8)))
        .collect();
    for q in serves {
        if let Some(level) = skills.get_mut(language(*q)) {
            *level = (*level).max(STEP1_LEVEL);
        }
    }
    skills
}

/// A conversation's priority override: `None` for most, 1-5 for [`PRIORITY_SHARE`].
pub fn priority(rng: &mut impl Rng) -> Option<i32> {
    rng.gen_bool(PRIORITY_SHARE).then(|| rng.gen_range(1..=5))
}

/// What the engine says of a new offer's routing, when the backend hears it (the
/// in-process engine's offer carries the conversation; the desktop's `offer` frame does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub step: Option<usize>,
    pub requirements: Requirements,
    pub preferred_agent: Option<String>,
}

/// The checker's copy of the scenario: each agent's skills and each queue's steps, as the
/// harness set them up.
#[derive(Debug, Clone, Default)]
pub struct Book {
    pub skills: HashMap<String, Skills>,
    pub steps: HashMap<String, Vec<Step>>,
}

impl Book {
    /// Invariant 7 for one new offer, from outside: the step the conversation is in when
    /// offered follows from the queue's steps, `received_at` and `offered_at` alone, and
    /// the agent must meet it. The engine may move a step a little after its time (a
    /// timer), never before; each step needs less than the one before, so an agent that
    /// meets the engine's step meets this one. With `claimed`, the engine's own step is
    /// checked too: the agent meets it, it is not ahead of time, and a preference names
    /// this agent. Answers the step the offer counts in, or the violation.
    pub fn check(
        &self,
        conversation: &str,
        agent: &str,
        queue: &str,
        received_at: Millis,
        offered_at: Millis,
        claimed: Option<&Claimed>,
    ) -> Result<usize, String> {
        let skills = self
            .skills
            .get(agent)
            .ok_or_else(|| format!("invariant 7: {conversation} offered to {agent}, not one of the run's agents"))?;
        let steps = self
            .steps
            .get(queue)
            .ok_or_else(|| format!("invariant 7: {conversation} offered from queue {queue}, not one of the run's"))?;
        let step = step_at(steps, received_at, offered_at);
        let req = requirements_of(steps, step);
        if !meets(skills, &req) {
            return Err(format!(
                "invariant 7: {conversation} offered to {agent} {}ms after it entered {queue}, in step {step:?} \
                 needing {req:?}; the agent has {skills:?}",
                offered_at.saturating_sub(received_at)
            ));
        }
        let Some(c) = claimed else {
            return Ok(step.unwrap_or(0));
        };
        if !meets(skills, &c.requirements) {
            return Err(format!(
                "invariant 7: {conversation} offered to {agent} in the engine's step {:?} needing {:?}; \
                 the agent has {skills:?}",
                c.step, c.requirements
            ));
        }
        if c.step > step {
            return Err(format!(
                "{conversation}: the engine has it in step {:?} {}ms after it entered {queue}, before that step's time",
                c.step,
                offered_at.saturating_sub(received_at)
            ));
        }
        if let Some(p) = c.preferred_agent.as_deref().filter(|p| *p != agent) {
            return Err(format!(
                "invariant 7: {conversation} offered to {agent} while it prefers {p}"
            ));
        }
        Ok(c.step.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn book() -> Book {
        Book {
            skills: HashMap::from([
                ("fluent".into(), Skills::from([("lang.en".into(), 9)])),
                ("some".into(), Skills::from([("lang.en".into(), 4)])),
                ("none".into(), Skills::from([("lang.fr".into(), 9)])),
            ]),
            steps: HashMap::from([("q1".into(), steps(0, 100))]),
        }
    }

    fn claimed(step: usize, level: u8, preferred: Option<&str>) -> Claimed {
        Claimed {
            step: Some(step),
            requirements: Requirements::from([("lang.en".into(), level)]),
            preferred_agent: preferred.map(str::to_string),
        }
    }

    #[test]
    fn every_agent_meets_the_last_step_of_the_queues_it_serves() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut step0 = 0;
        for i in 0..400 {
            let serves = [i % 4, (i + 1) % 4];
            let s = agent_skills(&mut rng, &serves);
            assert_eq!(s.len(), LANGUAGES.len());
            for q in serves {
                assert!(meets(&s, &steps(q, 10)[1].requirements), "{s:?} in queue {q}");
            }
            step0 += usize::from(meets(&s, &steps(serves[0], 10)[0].requirements));
        }
        assert!((100..=220).contains(&step0), "{step0} of 400 meet step 0");
    }

    #[test]
    fn offers_are_checked_against_the_step_of_their_instant() {
        let b = book();
        // (agent, ms after received_at, what the engine claims, the step counted or the error's words)
        type Case = (&'static str, u64, Option<Claimed>, Result<usize, &'static str>);
        let cases: &[Case] = &[
            ("fluent", 0, None, Ok(0)),
            ("some", 0, None, Err("in step Some(0)")),
            ("some", 99, None, Err("in step Some(0)")),
            ("some", 100, None, Ok(1)),
            ("none", 500, None, Err("in step Some(1)")),
            ("fluent", 0, Some(claimed(0, 7, None)), Ok(0)),
            // The step timer fired late: the engine still says step 0, and the agent meets it.
            ("fluent", 150, Some(claimed(0, 7, None)), Ok(0)),
            ("some", 150, Some(claimed(0, 7, None)), Err("the engine's step")),
            ("some", 150, Some(claimed(1, 3, None)), Ok(1)),
            ("fluent", 50, Some(claimed(1, 3, None)), Err("before that step's time")),
            ("fluent", 0, Some(claimed(0, 7, Some("other"))), Err("prefers other")),
            ("fluent", 0, Some(claimed(0, 7, Some("fluent"))), Ok(0)),
            ("stranger", 0, None, Err("not one of the run's agents")),
        ];
        for (agent, after, claim, want) in cases {
            let got = b.check("c-1", agent, "q1", 1_000, 1_000 + after, claim.as_ref());
            match (want, &got) {
                (Ok(step), Ok(s)) => assert_eq!(s, step, "{agent} +{after}"),
                (Err(words), Err(e)) => assert!(e.contains(words), "{agent} +{after}: {e}"),
                _ => panic!("{agent} +{after} {claim:?}: got {got:?}, want {want:?}"),
            }
        }
        assert!(b
            .check("c-1", "fluent", "q9", 0, 0, None)
            .unwrap_err()
            .contains("queue q9"));
    }

    #[test]
    fn some_conversations_get_a_priority() {
        let mut rng = StdRng::seed_from_u64(3);
        let given: Vec<i32> = (0..1000).filter_map(|_| priority(&mut rng)).collect();
        assert!((120..=280).contains(&given.len()), "{}", given.len());
        assert!(given.iter().all(|p| (1..=5).contains(p)));
    }
}
