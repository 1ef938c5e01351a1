//! Supervisors and their control of agents' presence (../shared/API.md "Supervisor").
//!
//! A supervisor is a person who watches the floor and may change an agent's presence. It
//! has an id, a name and an [`Account`] (token, password, sessions), whose rules are the
//! agents' ([`super::accounts`]). Presence set by a
//! supervisor (or the admin) follows the agent's own rules and leaves an [`AuditEntry`]:
//! who changed whom, when, from what to what. The [`AuditLog`] keeps the last
//! [`AUDIT_RETAIN`] entries, in memory and in the store (docs/DECISIONS.md, "Audit trail").
//!
//! No I/O here either: time comes in as `now`, decisions go out as effects and changes.

use std::collections::VecDeque;

use super::command::Principal;
use super::event::{Change, Effect, Observation};
use super::floor::Floor;
use super::{valid_id, Account, AccountRef, AgentId, CoreError, FastMap, Millis, Presence, MAX_NAME_CHARS};

/// Supervisor ids are ids as ../shared/API.md defines them.
pub type SupervisorId = String;

/// Audit entries kept (in memory and in the store); the oldest goes when one more comes.
pub const AUDIT_RETAIN: usize = 10_000;
/// The most entries one read of the audit trail answers.
pub const AUDIT_READ_MAX: usize = 1_000;

/// One supervisor account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervisor {
    pub id: SupervisorId,
    pub name: String,
    /// What the supervisor authenticates with, as an agent does ([`super::accounts`]).
    pub account: Account,
}

/// Who changed an agent's presence for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changer {
    Admin,
    Supervisor(SupervisorId),
}

impl Changer {
    /// The reason on the agent's `state_changed` (../shared/API.md): `admin` or `supervisor`.
    pub fn reason(&self) -> &'static str {
        match self {
            Changer::Admin => "admin",
            Changer::Supervisor(_) => "supervisor",
        }
    }

    /// Who may change an agent's presence for it: the admin and supervisors, never an
    /// agent, not even for itself (it uses its own state endpoint).
    pub fn of(p: &Principal) -> Result<Changer, CoreError> {
        match p {
            Principal::Admin => Ok(Changer::Admin),
            Principal::Supervisor(s) => Ok(Changer::Supervisor(s.clone())),
            Principal::Agent(a) => Err(CoreError::Forbidden(format!(
                "agent {a} may not set an agent's presence here; an agent sets its own with PUT /api/v1/agents/me/state"
            ))),
            Principal::Customer { .. } => Err(Principal::customer_may_not("set an agent's presence")),
        }
    }
}

/// One presence change made by a supervisor or the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing; the store keys entries by it.
    pub seq: u64,
    pub at: Millis,
    pub by: Changer,
    pub agent: AgentId,
    pub from: Presence,
    pub to: Presence,
    /// The idle code set (with `to` idle).
    pub idle_code: Option<String>,
}

/// The last [`AUDIT_RETAIN`] audit entries, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditLog {
    entries: VecDeque<AuditEntry>,
    next_seq: u64,
}

impl AuditLog {
    /// A log holding `entries` (from the store, in any order; only the newest
    /// [`AUDIT_RETAIN`] are kept).
    pub fn restore(mut entries: Vec<AuditEntry>) -> AuditLog {
        entries.sort_by_key(|e| e.seq);
        let skip = entries.len().saturating_sub(AUDIT_RETAIN);
        let entries: VecDeque<AuditEntry> = entries.into_iter().skip(skip).collect();
        let next_seq = entries.back().map_or(1, |e| e.seq + 1);
        AuditLog { entries, next_seq }
    }

    /// Appends an entry (its `seq` is set here). Returns the change that makes it
    /// durable and forgets the entry that fell out of the window, if one did.
    pub fn record(&mut self, mut entry: AuditEntry) -> Change {
        entry.seq = self.next_seq.max(1);
        self.next_seq = entry.seq + 1;
        self.entries.push_back(entry.clone());
        let mut forget = None;
        while self.entries.len() > AUDIT_RETAIN {
            forget = self.entries.pop_front().map(|e| e.seq);
        }
        Change::Audit { entry, forget }
    }

    /// The newest `limit` entries (at most [`AUDIT_READ_MAX`]), about `agent` if named,
    /// newest first.
    pub fn read(&self, agent: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        self.entries
            .iter()
            .rev()
            .filter(|e| agent.map_or(true, |a| e.agent == a))
            .take(limit.min(AUDIT_READ_MAX))
            .cloned()
            .collect()
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The floor's supervisors and audit log.
#[derive(Debug, Default)]
pub struct Supervision {
    supervisors: FastMap<SupervisorId, Supervisor>,
    audit: AuditLog,
}

impl Supervision {
    /// A supervisor's account, for [`super::accounts`].
    pub(super) fn account_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.supervisors.get_mut(id).map(|s| &mut s.account)
    }
}

impl Floor {
    /// A supervisor.
    pub fn supervisor(&self, id: &str) -> Option<&Supervisor> {
        self.supervision().supervisors.get(id)
    }

    /// Every supervisor, by id.
    pub fn supervisors(&self) -> Vec<&Supervisor> {
        let mut v: Vec<_> = self.supervision().supervisors.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The audit trail: see [`AuditLog::read`].
    pub fn audit(&self, agent: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        self.supervision().audit.read(agent, limit)
    }

    /// Puts back what the store holds of supervision (after [`Floor::restore`]): the
    /// accounts and the audit log. Their credentials reach the edge through
    /// [`Floor::account_grants`], as agents' do.
    pub fn restore_supervision(&mut self, supervisors: Vec<Supervisor>, audit: Vec<AuditEntry>) {
        let supervision = self.supervision_mut();
        for s in supervisors {
            supervision.supervisors.insert(s.id.clone(), s);
        }
        supervision.audit = AuditLog::restore(audit);
    }

    /// Creates a supervisor with an account (token hash and, optionally, password hash).
    pub(crate) fn create_supervisor(
        &mut self,
        id: &str,
        name: &str,
        account: Account,
    ) -> Result<&Supervisor, CoreError> {
        if !valid_id(id) {
            return Err(CoreError::InvalidInput(format!(
                "supervisor id {id:?} is not 1 to 64 characters from [A-Za-z0-9_.-]"
            )));
        }
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS || name.trim().is_empty() {
            return Err(CoreError::InvalidInput(format!(
                "the supervisor name must be 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        if self.supervision().supervisors.contains_key(id) {
            return Err(CoreError::AlreadyExists {
                kind: "supervisor",
                id: id.into(),
            });
        }
        self.account_created(AccountRef::supervisor(id), &account);
        let s = Supervisor {
            id: id.into(),
            name: name.into(),
            account,
        };
        self.journal().change(Change::Supervisor(Box::new(s.clone())));
        let supervisors = &mut self.supervision_mut().supervisors;
        Ok(supervisors.entry(id.into()).or_insert(s))
    }

    /// A supervisor or the admin sets an agent's presence: the agent's own rules
    /// ([`Floor::set_state`]: `rona` cannot be set, logging out is refused while it holds
    /// conversations), `state_changed` with the reason `supervisor` or `admin`, and an
    /// audit entry when the presence changed.
    pub(crate) fn set_state_for(
        &mut self,
        by: &Principal,
        agent: &str,
        state: Presence,
        idle_code: Option<String>,
        now: Millis,
    ) -> Result<(), CoreError> {
        let changer = Changer::of(by)?;
        if let Principal::Supervisor(s) = by {
            if !self.supervision().supervisors.contains_key(s) {
                return Err(CoreError::UnknownSupervisor(s.clone()));
            }
        }
        let before = self
            .agent(agent)
            .map(|a| (a.presence, a.idle_code.clone()))
            .ok_or_else(|| CoreError::UnknownAgent(agent.into()))?;
        let a = self.set_state_with_reason(agent, state, idle_code, Some(changer.reason()), now)?;
        let after = (a.presence, a.idle_code.clone());
        if after != before {
            let change = self.supervision_mut().audit.record(AuditEntry {
                seq: 0,
                at: now,
                by: changer.clone(),
                agent: agent.into(),
                from: before.0,
                to: after.0,
                idle_code: after.1,
            });
            if let Change::Audit { entry, .. } = &change {
                // The shell logs it (the core does no I/O).
                self.journal()
                    .effect(Effect::Observe(Observation::Audited(entry.clone())));
            }
            self.journal().change(change);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Command, Reply, Rules};

    const T0: Millis = 1_000_000;

    fn floor() -> Floor {
        let mut f = Floor::new(Rules::default());
        f.execute(
            Command::CreateQueue {
                id: "q".into(),
                name: "Q".into(),
                routing_steps: Vec::new(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            },
            T0,
        )
        .unwrap();
        f.execute(
            Command::CreateAgent {
                id: "a1".into(),
                name: "Ann".into(),
                queues: vec!["q".into()],
                capacity: None,
                credential: None,
                password_hash: None,
                skills: Default::default(),
            },
            T0,
        )
        .unwrap();
        f.execute(
            Command::CreateSupervisor {
                id: "s1".into(),
                name: "Sue".into(),
                credential: Some("h-s1".into()),
                password_hash: None,
            },
            T0,
        )
        .unwrap();
        f.take_changes();
        f.take_effects();
        f
    }

    fn set(by: Principal, state: Presence, idle: Option<&str>) -> Command {
        Command::SetStateFor {
            by,
            agent: "a1".into(),
            state,
            idle_code: idle.map(Into::into),
        }
    }

    /// Who may set an agent's presence, with what outcome, what the agent's desktop is
    /// told, and what the audit trail keeps: one row per step, in order.
    #[test]
    fn presence_set_by_others() {
        use Presence::*;
        let sup = || Principal::Supervisor("s1".into());
        // (command, expected error code or "", state after, reason told, audited from→to)
        #[allow(clippy::type_complexity)]
        let rows: Vec<(Command, &str, Presence, Option<&str>, Option<(Presence, Presence)>)> = vec![
            (
                set(Principal::Agent("a1".into()), Available, None),
                "forbidden",
                LoggedOut,
                None,
                None,
            ),
            (
                set(Principal::Supervisor("nobody".into()), Available, None),
                "unknown_supervisor",
                LoggedOut,
                None,
                None,
            ),
            (set(sup(), Rona, None), "state_not_settable", LoggedOut, None, None),
            (
                set(sup(), Idle, Some("nap")),
                "unknown_idle_code",
                LoggedOut,
                None,
                None,
            ),
            (
                set(sup(), Idle, Some("break")),
                "",
                Idle,
                Some("supervisor"),
                Some((LoggedOut, Idle)),
            ),
            // The same state again: fine, nothing changes, nothing audited.
            (set(sup(), Idle, Some("break")), "", Idle, None, None),
            (
                set(Principal::Admin, Available, None),
                "",
                Available,
                Some("admin"),
                Some((Idle, Available)),
            ),
            (
                set(sup(), LoggedOut, None),
                "",
                LoggedOut,
                Some("supervisor"),
                Some((Available, LoggedOut)),
            ),
        ];
        let mut f = floor();
        for (i, (cmd, code, state, reason, audited)) in rows.into_iter().enumerate() {
            let before = f.audit(None, 100).len();
            match f.execute(cmd, T0 + i as u64) {
                Ok(Reply::Agent(_)) => assert_eq!(code, "", "row {i}"),
                Ok(other) => panic!("row {i}: unexpected {other:?}"),
                Err(e) => assert_eq!(e.code(), code, "row {i}"),
            }
            assert_eq!(f.agent("a1").unwrap().presence, state, "row {i}");
            let told: Vec<_> = f
                .take_effects()
                .into_iter()
                .filter_map(|e| match e {
                    Effect::Notify {
                        event: crate::core::AgentEvent::StateChanged { reason, .. },
                        ..
                    } => Some(reason),
                    _ => None,
                })
                .collect();
            assert_eq!(told, reason.map(|r| vec![Some(r)]).unwrap_or_default(), "row {i}");
            let log = f.audit(None, 100);
            match audited {
                Some((from, to)) => {
                    assert_eq!(log.len(), before + 1, "row {i}");
                    assert_eq!(
                        (log[0].from, log[0].to, log[0].agent.as_str()),
                        (from, to, "a1"),
                        "row {i}"
                    );
                    let audit_changes = f
                        .take_changes()
                        .into_iter()
                        .filter(|c| matches!(c, Change::Audit { .. }))
                        .count();
                    assert_eq!(audit_changes, 1, "row {i}");
                }
                None => assert_eq!(log.len(), before, "row {i}"),
            }
        }
        let log = f.audit(Some("a1"), 2);
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].by, Changer::Supervisor("s1".into()), "newest first");
        assert_eq!(log[1].by, Changer::Admin);
        assert!(f.audit(Some("a2"), 10).is_empty());
    }

    /// Logging out an agent that holds a conversation is refused for a supervisor as
    /// for the agent itself.
    #[test]
    fn a_supervisor_cannot_log_out_a_busy_agent() {
        let mut f = floor();
        f.execute(set(Principal::Admin, Presence::Available, None), T0).unwrap();
        f.execute(
            Command::CreateEntryPoint(crate::core::EntryPoint {
                id: "ep".into(),
                name: "Page".into(),
                queue: "q".into(),
                page_id: None,
                page_access_token: None,
                priority: 0,
                routing_steps: Vec::new(),
                messenger: Default::default(),
            }),
            T0,
        )
        .unwrap();
        f.execute(
            Command::CustomerMessage {
                entry_point: "ep".into(),
                customer: crate::core::Customer {
                    id: "u".into(),
                    name: "U".into(),
                },
                text: "hi".into(),
                channel: crate::core::Channel::Rest,
                open: Default::default(),
            },
            T0,
        )
        .unwrap();
        let e = f
            .execute(set(Principal::Supervisor("s1".into()), Presence::LoggedOut, None), T0)
            .unwrap_err();
        assert_eq!(e.code(), "agent_busy");
    }

    /// The log keeps the newest [`AUDIT_RETAIN`] entries; each one that falls out is
    /// forgotten by the same change that adds the newest.
    #[test]
    fn the_audit_log_is_bounded() {
        let entry = |agent: &str| AuditEntry {
            seq: 0,
            at: T0,
            by: Changer::Admin,
            agent: agent.into(),
            from: Presence::Idle,
            to: Presence::Available,
            idle_code: None,
        };
        let mut log = AuditLog::default();
        for i in 0..AUDIT_RETAIN {
            match log.record(entry(if i % 2 == 0 { "a" } else { "b" })) {
                Change::Audit { entry, forget } => {
                    assert_eq!(entry.seq, i as u64 + 1);
                    assert_eq!(forget, None);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        match log.record(entry("c")) {
            Change::Audit { entry, forget } => {
                assert_eq!(entry.seq, AUDIT_RETAIN as u64 + 1);
                assert_eq!(forget, Some(1));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(log.len(), AUDIT_RETAIN);
        assert_eq!(log.read(None, 5_000).len(), AUDIT_READ_MAX, "a read is bounded");
        assert_eq!(log.read(Some("c"), 10).len(), 1);
        let restored = AuditLog::restore(log.read(None, AUDIT_READ_MAX));
        assert_eq!(restored.read(None, 1)[0].seq, AUDIT_RETAIN as u64 + 1);
        let mut restored = restored;
        match restored.record(entry("d")) {
            Change::Audit { entry, .. } => assert_eq!(entry.seq, AUDIT_RETAIN as u64 + 2, "seq goes on"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
