//! ../shared/SPEC.md's invariants as a check over a [`Floor`] at rest.
//!
//! Used by the simulation after every step, by the actor tests at the end of a run and
//! after recovery. Invariant 3 (no new offer to an agent in `rona`, `idle` or
//! `logged_out`) is about a step, not a state: the simulation checks it on each step's
//! [`Observation::Offered`](super::Observation) effects with [`offer_went_to_eligible`].
//!
//! "At rest" means after [`Floor::take_changes`]: that is where finished conversations
//! leave the floor, and the check says so if one is still there.

use super::routing::{meets, requirements_of};
use super::{Agent, Conversation, ConversationState, Floor, OfferKind, Presence};

/// Whether `a` could be offered the queued conversation `c` now: eligible, serving its
/// queue, meeting its current requirements, and the preferred agent while one holds.
fn could_take(a: &Agent, c: &Conversation) -> bool {
    a.eligible()
        && a.serves(&c.queue)
        && meets(&a.skills, &c.routing.requirements)
        && !matches!(&c.routing.preferred_agent, Some(p) if *p != a.id)
}

/// Every violation found, as readable sentences; empty when all hold.
pub fn check(f: &Floor) -> Vec<String> {
    let mut v = Vec::new();
    // 1. A conversation is offered to at most one agent, and both sides agree.
    for a in f.agents() {
        for c in &a.offers {
            match f.conversation(c).and_then(|c| c.offer.as_ref()) {
                Some(o) if o.agent == a.id => {}
                _ => v.push(format!(
                    "1: agent {} lists an offer of {c} that the conversation does not have",
                    a.id
                )),
            }
        }
    }
    for c in f.conversations() {
        if let Some(o) = &c.offer {
            if !f.agent(&o.agent).is_some_and(|a| a.offers.contains(&c.id)) {
                v.push(format!("1: offer of {} to {} is not held by the agent", c.id, o.agent));
            }
            let holders = f.agents().filter(|a| a.offers.contains(&c.id)).count();
            if holders != 1 {
                v.push(format!("1: conversation {} is offered to {holders} agents", c.id));
            }
            let ok = match o.kind {
                OfferKind::New | OfferKind::Transfer => c.state == ConversationState::Offered,
                OfferKind::Conference => c.state == ConversationState::Active && c.guest.is_none(),
            };
            if !ok {
                v.push(format!(
                    "1: conversation {} in state {:?} has a {:?} offer",
                    c.id, c.state, o.kind
                ));
            }
        } else if c.state == ConversationState::Offered {
            v.push(format!("1: conversation {} is offered but has no offer", c.id));
        }
        // Participants agree with the agents' active sets.
        for p in c.participants() {
            if !f.agent(p).is_some_and(|a| a.active.contains(&c.id)) {
                v.push(format!("participant {p} of {} does not hold it", c.id));
            }
        }
        if c.state == ConversationState::Active && c.owner.is_none() {
            v.push(format!("active conversation {} has no owner", c.id));
        }
        if c.state == ConversationState::Ended && (c.owner.is_some() || c.guest.is_some() || c.offer.is_some()) {
            v.push(format!(
                "ended conversation {} still has participants or an offer",
                c.id
            ));
        }
    }
    // 2. Never over capacity.
    for a in f.agents() {
        if a.load() > a.capacity {
            v.push(format!(
                "2: agent {} holds {} conversations with capacity {}",
                a.id,
                a.load(),
                a.capacity
            ));
        }
        for c in &a.active {
            if !f.conversation(c).is_some_and(|c| c.participants().any(|p| *p == a.id)) {
                v.push(format!("agent {} holds {c} without being in it", a.id));
            }
        }
        for c in a.wrapups.keys() {
            if f.conversation(c).is_none() {
                v.push(format!("agent {} owes a wrap-up for unknown conversation {c}", a.id));
            }
        }
        if (a.presence == Presence::Idle) != a.idle_code.is_some() {
            v.push(format!(
                "agent {} has idle code {:?} in state {:?}",
                a.id, a.idle_code, a.presence
            ));
        }
    }
    // The wrap-up count per conversation agrees with the agents, and nothing finished
    // (ended, no wrap-up owed) is held.
    let mut owing: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for a in f.agents() {
        for c in a.wrapups.keys() {
            *owing.entry(c.as_str()).or_default() += 1;
        }
    }
    for c in f.conversations() {
        let owing = owing.get(c.id.as_str()).copied().unwrap_or(0);
        if owing != f.wrapups_owed(&c.id) as usize {
            v.push(format!(
                "{owing} agents owe a wrap-up for {} but the floor counts {}",
                c.id,
                f.wrapups_owed(&c.id)
            ));
        }
        if f.is_finished(c) {
            v.push(format!("finished conversation {} is still held", c.id));
        }
    }
    // 4. A queued conversation waits only while no eligible agent exists for it.
    for q in f.queues() {
        for id in q.waiting.values() {
            match f.conversation(id) {
                Some(c) if c.state == ConversationState::Queued && c.queue == q.id => {}
                _ => v.push(format!("4: queue {} lists {id}, which is not queued there", q.id)),
            }
        }
    }
    for c in f.conversations() {
        if c.state != ConversationState::Queued {
            continue;
        }
        if !f
            .queue(&c.queue)
            .is_some_and(|q| q.waiting.values().any(|x| *x == c.id))
        {
            v.push(format!(
                "4: queued conversation {} is missing from queue {}",
                c.id, c.queue
            ));
        }
        // A held queue (closed with `hold` hours) offers nothing while it is closed.
        if f.queue(&c.queue).is_some_and(|q| q.held) {
            continue;
        }
        if let Some(a) = f.agents().find(|a| could_take(a, c)) {
            v.push(format!(
                "4: conversation {} waits in {} while agent {} is eligible",
                c.id, c.queue, a.id
            ));
        }
    }
    // 7 (state): a waiting conversation's requirements are those of its step, and its
    // step is one of its steps.
    for c in f.conversations() {
        if !matches!(c.state, ConversationState::Queued | ConversationState::Offered) {
            continue;
        }
        let r = &c.routing;
        if r.step.is_some_and(|s| s >= r.steps.len()) || (r.step.is_none() && !r.steps.is_empty()) {
            v.push(format!(
                "7: {} is in step {:?} of {} steps",
                c.id,
                r.step,
                r.steps.len()
            ));
        }
        if r.requirements != requirements_of(&r.steps, r.step) {
            v.push(format!(
                "7: {} needs {:?}, but its step {:?} says otherwise",
                c.id, r.requirements, r.step
            ));
        }
    }
    // 6. Transcript order is acceptance order.
    for c in f.conversations() {
        for (i, m) in c.transcript.iter().enumerate() {
            if m.seq != i as u64 + 1 {
                v.push(format!("6: message {} of {} has seq {}", i + 1, c.id, m.seq));
            }
            if i > 0 && c.transcript[i - 1].at > m.at {
                v.push(format!("6: message {} of {} is older than the one before", m.seq, c.id));
            }
        }
    }
    v
}

/// Invariant 7 for one offer made in a step: a new offer went to an agent meeting the
/// conversation's current requirements and, while a preference holds, to the preferred
/// agent. `None` when it holds; else why not.
pub fn offer_fits_routing(f: &Floor, conversation: &str, agent: &str) -> Option<String> {
    let c = f.conversation(conversation)?;
    let o = c
        .offer
        .as_ref()
        .filter(|o| o.agent == agent && o.kind == OfferKind::New)?;
    let a = f.agent(&o.agent)?;
    if !meets(&a.skills, &c.routing.requirements) {
        return Some(format!(
            "skills {:?} do not meet step {:?} requirements {:?}",
            a.skills, c.routing.step, c.routing.requirements
        ));
    }
    match &c.routing.preferred_agent {
        Some(p) if *p != a.id => Some(format!("the preferred agent is {p}")),
        _ => None,
    }
}

/// Invariant 3 for one offer made in a step: its agent was eligible when offered, which
/// at rest after the step means it is `available` (routing runs last in every step).
pub fn offer_went_to_eligible(f: &Floor, agent: &str) -> bool {
    f.agent(agent).is_some_and(|a| a.presence == Presence::Available)
}
