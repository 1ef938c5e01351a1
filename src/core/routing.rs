//! Routing depth (../shared/SPEC.md "Routing depth"): skills, requirements, routing steps, the
//! choice among eligible agents, and [`RoutingIndex`], the index that finds a match in
//! O(log n) without scanning agents or waiting conversations.
//!
//! # The index
//! Eligible agents and waiting conversations are grouped by **requirement set** per
//! queue. The requirement sets in use are few: the steps written in the configuration
//! (pinned for good) and those of waiting conversations that carry their own (kept while
//! one waits). For each queue and requirement set R:
//! - the *free set* holds every eligible agent of the queue that meets R, ordered by the
//!   routing choice (longest idle, or the highest sum of levels over R and then longest
//!   idle): the best agent for a conversation needing R is the first of the set that did
//!   not let an offer of it expire;
//! - the *waiting group* holds the queue's waiting conversations whose current step needs
//!   R, in queue order (priority, `received_at`, arrival).
//!
//! A conversation waiting for its preferred agent is in that agent's group instead, and
//! only that agent can take it. An agent that becomes free looks at the head of each group
//! of its queues that it meets (and of its preferred group): O(groups · log n).
//!
//! Keeping the free sets costs one insertion per requirement set of the agent's queues
//! when it becomes eligible; a requirement set seen for the first time costs one scan of
//! the queue's eligible agents.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::error::CoreError;
use super::queue::QueueKey;
use super::{AgentId, ConversationId, FastMap, Millis, QueueId};

/// An agent's skills: name → level (1-10).
pub type Skills = BTreeMap<String, u8>;

/// A conversation's requirements: name → lowest level accepted.
pub type Requirements = BTreeMap<String, u8>;

/// Highest skill level.
pub const MAX_LEVEL: u8 = 10;
/// Most skills an agent may have, and most requirements in one step.
pub const MAX_SKILLS: usize = 64;
/// Most routing steps of one entry point, queue or conversation.
pub const MAX_STEPS: usize = 16;
/// Longest skill name, in characters.
pub const MAX_SKILL_NAME: usize = 64;

/// One routing step: its requirements and how long a conversation stays in it (`None`
/// for the last step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub requirements: Requirements,
    pub for_ms: Option<u64>,
}

/// How to choose among eligible agents (`routing.agent_choice`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AgentChoice {
    /// The agent free the longest (../shared/SPEC.md "Routing").
    #[default]
    LongestIdle,
    /// The highest sum of levels over the conversation's current requirements; ties by
    /// longest idle.
    BestSkilled,
}

/// True when `name` is a skill name: 1 to 64 characters from `[a-z0-9_.-]`.
pub fn valid_skill_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SKILL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'-')
}

/// Checks skill names and levels (1-10), for skills and requirements alike.
pub fn check_skills(what: &str, skills: &BTreeMap<String, u8>) -> Result<(), CoreError> {
    if skills.len() > MAX_SKILLS {
        return Err(CoreError::InvalidInput(format!("at most {MAX_SKILLS} {what}")));
    }
    for (name, level) in skills {
        if !valid_skill_name(name) {
            return Err(CoreError::InvalidInput(format!(
                "{what}: skill name {name:?} must be 1 to {MAX_SKILL_NAME} characters from [a-z0-9_.-]"
            )));
        }
        if !(1..=MAX_LEVEL).contains(level) {
            return Err(CoreError::InvalidInput(format!(
                "{what}: level of {name} must be 1 to {MAX_LEVEL}, not {level}"
            )));
        }
    }
    Ok(())
}

/// Checks routing steps: every step but the last has `for_ms` (above 0), the last has none.
pub fn check_steps(steps: &[Step]) -> Result<(), CoreError> {
    if steps.len() > MAX_STEPS {
        return Err(CoreError::InvalidInput(format!("at most {MAX_STEPS} routing steps")));
    }
    let last = steps.len().saturating_sub(1);
    for (i, s) in steps.iter().enumerate() {
        check_skills(&format!("routing_steps[{i}].requirements"), &s.requirements)?;
        match (i == last, s.for_ms) {
            (true, Some(_)) => {
                return Err(CoreError::InvalidInput(format!(
                    "routing_steps[{i}] is the last step and must not have for_ms"
                )))
            }
            (false, None) => {
                return Err(CoreError::InvalidInput(format!(
                    "routing_steps[{i}] must have for_ms (only the last step has none)"
                )))
            }
            (false, Some(0)) => {
                return Err(CoreError::InvalidInput(format!(
                    "routing_steps[{i}].for_ms must be above 0"
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// True when `skills` has every skill of `req` at its level or higher.
pub fn meets(skills: &Skills, req: &Requirements) -> bool {
    req.iter()
        .all(|(name, level)| skills.get(name).is_some_and(|have| have >= level))
}

/// The best-skilled score: the sum of the agent's levels over the requirements.
pub fn score(skills: &Skills, req: &Requirements) -> u32 {
    req.keys()
        .filter_map(|name| skills.get(name))
        .map(|l| u32::from(*l))
        .sum()
}

/// The step a conversation that entered its queue at `received_at` is in at `now`:
/// step k ends at `received_at` plus the `for_ms` of steps 0 to k. `None` without steps.
pub fn step_at(steps: &[Step], received_at: Millis, now: Millis) -> Option<usize> {
    if steps.is_empty() {
        return None;
    }
    let mut end = received_at;
    for (i, s) in steps.iter().enumerate() {
        match s.for_ms {
            Some(ms) => {
                end = end.saturating_add(ms);
                if now < end {
                    return Some(i);
                }
            }
            None => return Some(i),
        }
    }
    Some(steps.len() - 1)
}

/// When step `k` ends (`None`: the last step never does).
pub fn step_ends_at(steps: &[Step], received_at: Millis, k: usize) -> Option<Millis> {
    let mut end = received_at;
    for s in steps.iter().take(k + 1) {
        end = end.saturating_add(s.for_ms?);
    }
    (k < steps.len()).then_some(end)
}

/// The requirements of step `k` (none without steps).
pub fn requirements_of(steps: &[Step], k: Option<usize>) -> Requirements {
    k.and_then(|k| steps.get(k))
        .map(|s| s.requirements.clone())
        .unwrap_or_default()
}

/// The agent that last owned a customer's conversation on an entry point, and when
/// that conversation ended: the store keeps one per (entry point, customer), and the
/// shell hands it to the core with the customer's next message
/// ([`Opening::last_owner`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastOwner {
    pub agent: AgentId,
    pub ended_at: Millis,
}

/// How a conversation opened by a customer message is routed, beyond its entry point's
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opening {
    /// Overrides the entry point's priority.
    pub priority: Option<i32>,
    /// Override the entry point's routing steps.
    pub routing_steps: Option<Vec<Step>>,
    /// Filled by the shell from the store: the customer's last owner on this entry point.
    pub last_owner: Option<LastOwner>,
}

/// Index of a requirement set in [`RoutingIndex`]'s interner; 0 is "no requirements".
type ReqId = u32;

/// A free set's order: best-skilled score first (0 under longest idle), then longest free.
type FreeKey = (Reverse<u32>, Millis, AgentId);

/// An agent's key in the free set of requirement set `req`.
fn free_key(choice: AgentChoice, req: &Requirements, agent: &AgentView, free_since: Millis) -> FreeKey {
    let score = match choice {
        AgentChoice::LongestIdle => 0,
        AgentChoice::BestSkilled => score(agent.skills, req),
    };
    (Reverse(score), free_since, agent.id.to_string())
}

/// What the index needs to know of an agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentView<'a> {
    pub id: &'a str,
    pub queues: &'a [QueueId],
    pub skills: &'a Skills,
    pub free_since: Millis,
}

/// What the index needs to know of a waiting conversation.
#[derive(Debug, Clone, Copy)]
pub struct WaitingView<'a> {
    pub id: &'a str,
    pub queue: &'a str,
    pub key: QueueKey,
    pub requirements: &'a Requirements,
    pub preferred: Option<&'a str>,
}

/// A requirement set in use for one queue.
#[derive(Debug, Default)]
struct Group {
    /// Eligible agents of the queue that meet the requirements.
    free: BTreeSet<FreeKey>,
    /// Waiting conversations that need them, in queue order.
    waiting: BTreeMap<QueueKey, ConversationId>,
    /// Written in the configuration: kept when nothing waits.
    pinned: bool,
}

/// Free agents and waiting conversations by queue and requirement set. See the module docs.
#[derive(Debug, Default)]
pub struct RoutingIndex {
    choice: AgentChoice,
    reqs: Vec<Requirements>,
    req_ids: FastMap<Requirements, ReqId>,
    /// Per queue, its groups by requirement set (always one for "no requirements").
    groups: FastMap<QueueId, BTreeMap<ReqId, Group>>,
    /// The `free_since` each eligible agent is indexed under.
    indexed: FastMap<AgentId, Millis>,
    /// Conversations waiting for their preferred agent, per agent, in queue order.
    /// With the requirement set of each one's current step.
    preferred: FastMap<AgentId, BTreeMap<QueueKey, (ConversationId, ReqId)>>,
}

impl RoutingIndex {
    pub fn new(choice: AgentChoice) -> Self {
        let mut ix = RoutingIndex {
            choice,
            ..Default::default()
        };
        ix.intern(&Requirements::new());
        ix
    }

    fn intern(&mut self, req: &Requirements) -> ReqId {
        if let Some(id) = self.req_ids.get(req) {
            return *id;
        }
        let id = self.reqs.len() as ReqId;
        self.reqs.push(req.clone());
        self.req_ids.insert(req.clone(), id);
        id
    }

    fn free_key(&self, agent: &AgentView, req: ReqId, free_since: Millis) -> FreeKey {
        free_key(self.choice, &self.reqs[req as usize], agent, free_since)
    }

    /// A queue exists from now on.
    pub fn add_queue(&mut self, queue: &str) {
        let groups = self.groups.entry(queue.into()).or_default();
        groups.entry(0).or_default().pinned = true;
    }

    /// Keeps the group of `req` in `queue` for good (a configured routing step), so its
    /// free set need not be rebuilt each time a conversation needs it.
    pub fn pin<'a>(&mut self, queue: &str, req: &Requirements, agents: impl Iterator<Item = AgentView<'a>>) {
        let id = self.ensure_group(queue, req, agents);
        if let Some(g) = self.groups.get_mut(queue).and_then(|g| g.get_mut(&id)) {
            g.pinned = true;
        }
    }

    /// The group of `req` in `queue`, made (with its free set filled from the queue's
    /// eligible agents, which `agents` looks up by id) if new.
    fn ensure_group<'a>(
        &mut self,
        queue: &str,
        req: &Requirements,
        agents: impl Iterator<Item = AgentView<'a>>,
    ) -> ReqId {
        let id = self.intern(req);
        let exists = self.groups.get(queue).is_some_and(|g| g.contains_key(&id));
        if !exists {
            let mut group = Group::default();
            for a in agents {
                if let Some(&since) = self.indexed.get(a.id) {
                    if a.queues.iter().any(|q| q == queue) && meets(a.skills, req) {
                        group.free.insert(self.free_key(&a, id, since));
                    }
                }
            }
            self.groups.entry(queue.into()).or_default().insert(id, group);
        }
        id
    }

    /// The ids of the queue's eligible agents (to rebuild a group's free set from).
    pub fn eligible_in(&self, queue: &str) -> Vec<AgentId> {
        self.groups
            .get(queue)
            .and_then(|g| g.get(&0))
            .map(|g| g.free.iter().map(|(_, _, id)| id.clone()).collect())
            .unwrap_or_default()
    }

    /// True when a new group for `req` in `queue` would need the queue's eligible agents.
    pub fn needs_group(&self, queue: &str, req: &Requirements) -> bool {
        match self.req_ids.get(req) {
            Some(id) => !self.groups.get(queue).is_some_and(|g| g.contains_key(id)),
            None => true,
        }
    }

    /// The `free_since` the agent is indexed under, if it is indexed as eligible.
    pub fn indexed(&self, agent: &str) -> Option<Millis> {
        self.indexed.get(agent).copied()
    }

    /// Indexes an eligible agent (or re-indexes it under a new `free_since`).
    pub fn agent_in(&mut self, agent: AgentView) {
        self.agent_out(agent);
        self.each_free_set(agent, agent.free_since, |set, key| {
            set.insert(key);
        });
        self.indexed.insert(agent.id.into(), agent.free_since);
    }

    /// Takes an agent out of the free sets. Its skills and queues must be those it was
    /// indexed with (change them only while it is out).
    pub fn agent_out(&mut self, agent: AgentView) {
        let Some(since) = self.indexed.remove(agent.id) else {
            return;
        };
        self.each_free_set(agent, since, |set, key| {
            set.remove(&key);
        });
    }

    /// Calls `f` with each free set the agent belongs in (its queues' groups whose
    /// requirements it meets) and its key there under `free_since`.
    fn each_free_set(
        &mut self,
        agent: AgentView,
        free_since: Millis,
        mut f: impl FnMut(&mut BTreeSet<FreeKey>, FreeKey),
    ) {
        let RoutingIndex {
            choice, reqs, groups, ..
        } = self;
        for q in agent.queues {
            let Some(groups) = groups.get_mut(q) else { continue };
            for (r, g) in groups.iter_mut() {
                let req = &reqs[*r as usize];
                if meets(agent.skills, req) {
                    f(&mut g.free, free_key(*choice, req, &agent, free_since));
                }
            }
        }
    }

    /// Puts a waiting conversation in its group (or its preferred agent's).
    pub fn wait<'a>(&mut self, c: WaitingView, agents: impl Iterator<Item = AgentView<'a>>) {
        if let Some(p) = c.preferred {
            let r = self.intern(c.requirements);
            self.preferred
                .entry(p.into())
                .or_default()
                .insert(c.key, (c.id.into(), r));
            return;
        }
        let id = self.ensure_group(c.queue, c.requirements, agents);
        if let Some(g) = self.groups.get_mut(c.queue).and_then(|g| g.get_mut(&id)) {
            g.waiting.insert(c.key, c.id.into());
        }
    }

    /// Takes a waiting conversation out of its group; a group that nobody needs any more
    /// goes (its free set would cost every agent that becomes eligible).
    pub fn unwait(&mut self, c: WaitingView) {
        if let Some(p) = c.preferred {
            if let Some(set) = self.preferred.get_mut(p) {
                set.remove(&c.key);
                if set.is_empty() {
                    self.preferred.remove(p);
                }
            }
            return;
        }
        let Some(id) = self.req_ids.get(c.requirements).copied() else {
            return;
        };
        let Some(groups) = self.groups.get_mut(c.queue) else {
            return;
        };
        let drop = match groups.get_mut(&id) {
            Some(g) => {
                g.waiting.remove(&c.key);
                g.waiting.is_empty() && !g.pinned
            }
            None => false,
        };
        if drop {
            groups.remove(&id);
        }
    }

    /// The best agent for a waiting conversation: its preferred agent if that one is
    /// eligible and meets the requirements (else nobody), or the first of its group's free
    /// set, passing over agents in `rona_agents` while another one is there.
    pub fn best_agent<'a>(
        &self,
        c: WaitingView,
        rona_agents: &BTreeSet<AgentId>,
        skills_of: impl Fn(&str) -> Option<AgentView<'a>>,
    ) -> Option<AgentId> {
        if let Some(p) = c.preferred {
            let a = skills_of(p)?;
            let ok = self.indexed.contains_key(p)
                && a.queues.iter().any(|q| q == c.queue)
                && meets(a.skills, c.requirements);
            return ok.then(|| p.to_string());
        }
        let id = self.req_ids.get(c.requirements)?;
        let g = self.groups.get(c.queue)?.get(id)?;
        let mut fallback = None;
        for (_, _, a) in &g.free {
            if !rona_agents.contains(a) {
                return Some(a.clone());
            }
            fallback.get_or_insert_with(|| a.clone());
        }
        fallback
    }

    /// The first waiting conversation (queue order) that `agent` can take: across the
    /// groups of its queues whose requirements it meets, and its preferred group.
    pub fn best_conversation_for(&self, agent: AgentView) -> Option<ConversationId> {
        let mut best: Option<(&QueueKey, &ConversationId)> = None;
        for q in agent.queues {
            let Some(groups) = self.groups.get(q) else { continue };
            for (r, g) in groups {
                let Some((k, id)) = g.waiting.iter().next() else {
                    continue;
                };
                if best.is_some_and(|(b, _)| b <= k) {
                    continue;
                }
                if meets(agent.skills, &self.reqs[*r as usize]) {
                    best = Some((k, id));
                }
            }
        }
        // A step that moved on may need more than this agent has: the first one it meets.
        if let Some(set) = self.preferred.get(agent.id) {
            let first = set
                .iter()
                .find(|(_, (_, r))| meets(agent.skills, &self.reqs[*r as usize]));
            if let Some((k, (id, _))) = first {
                if best.is_none() || best.is_some_and(|(b, _)| k < b) {
                    best = Some((k, id));
                }
            }
        }
        best.map(|(_, id)| id.clone())
    }

    /// How many agents of `queue` are eligible now.
    pub fn available_in(&self, queue: &str) -> usize {
        self.groups
            .get(queue)
            .and_then(|g| g.get(&0))
            .map_or(0, |g| g.free.len())
    }

    /// How many requirement groups a queue has now (for tests and stats).
    pub fn groups_of(&self, queue: &str) -> usize {
        self.groups.get(queue).map_or(0, |g| g.len())
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
