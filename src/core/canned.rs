//! Canned responses (issue 26 item 4): texts an admin writes once, with a short code and
//! placeholders, that agents insert and edit before sending.
//!
//! A response belongs to the tenant (every agent's) or to one queue (that queue's
//! agents). For an agent, the responses that apply are the tenant's and those of the
//! queues it serves; a queue's response replaces a tenant-wide one with the same code
//! for the agents of that queue ([`CannedResponses::applicable`]). Placeholders are
//! filled for one conversation by [`fill`], a pure function: `{{customer.first_name}}`,
//! `{{customer.name}}`, `{{agent.name}}`, `{{agent.first_name}}`, `{{queue.name}}`. A
//! text naming any other is refused when written, so a response never shows a
//! placeholder it cannot fill.

use std::collections::BTreeMap;

use super::{valid_id, AgentId, CoreError, QueueId};

/// Longest code, in characters.
pub const MAX_CODE_CHARS: usize = 32;
/// Longest text of a response, in characters (before its placeholders are filled).
pub const MAX_CANNED_TEXT_CHARS: usize = 5_000;
/// Most responses one tenant keeps.
pub const MAX_CANNED_RESPONSES: usize = 1_000;

/// The placeholders a text may name, in the order the docs list them.
pub const PLACEHOLDERS: [&str; 5] = [
    "customer.first_name",
    "customer.name",
    "agent.name",
    "agent.first_name",
    "queue.name",
];

/// One canned response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedResponse {
    /// The admin's id of it (an id as API.md's).
    pub id: String,
    /// What an agent types after `/` to find it: 1 to 32 of `[a-z0-9_-]`.
    pub code: String,
    /// The text, with placeholders.
    pub text: String,
    /// The queue whose agents it is for; `None`: every agent of the tenant.
    pub queue: Option<QueueId>,
}

/// What the placeholders of one conversation are filled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill<'a> {
    pub customer_name: &'a str,
    pub agent_name: &'a str,
    pub queue_name: &'a str,
}

/// The first word of a name (the whole name if it has one word; `""` if empty).
fn first_name(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or("")
}

/// `text` with every placeholder replaced by its value for `with`. A `{{` that opens no
/// known placeholder is kept as written (a text checked by [`check_text`] has none).
pub fn fill(text: &str, with: &Fill<'_>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").map(|end| (after[..end].trim(), end)) {
            Some((name, end)) if PLACEHOLDERS.contains(&name) => {
                out.push_str(match name {
                    "customer.first_name" => first_name(with.customer_name),
                    "customer.name" => with.customer_name,
                    "agent.name" => with.agent_name,
                    "agent.first_name" => first_name(with.agent_name),
                    _ => with.queue_name,
                });
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn invalid(message: String) -> CoreError {
    CoreError::InvalidInput(message)
}

/// A code: 1 to [`MAX_CODE_CHARS`] of `[a-z0-9_-]`.
pub fn check_code(code: &str) -> Result<(), CoreError> {
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE_CHARS
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "code must be 1 to {MAX_CODE_CHARS} characters from [a-z0-9_-]"
        )))
    }
}

/// A text: not empty, at most [`MAX_CANNED_TEXT_CHARS`] characters, and every `{{...}}`
/// one of [`PLACEHOLDERS`] (the refusal names the first that is not).
pub fn check_text(text: &str) -> Result<(), CoreError> {
    if text.trim().is_empty() {
        return Err(invalid("text must not be empty".into()));
    }
    if text.chars().count() > MAX_CANNED_TEXT_CHARS {
        return Err(invalid(format!(
            "text must be at most {MAX_CANNED_TEXT_CHARS} characters"
        )));
    }
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(invalid("text has a `{{` without its `}}`".into()));
        };
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(invalid(format!(
                "unknown placeholder {{{{{name}}}}}; known: {}",
                PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", ")
            )));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// A tenant's canned responses, by id.
#[derive(Debug, Clone, Default)]
pub struct CannedResponses {
    by_id: BTreeMap<String, CannedResponse>,
}

impl CannedResponses {
    /// Rebuilt from the store.
    pub fn restore(list: Vec<CannedResponse>) -> Self {
        CannedResponses {
            by_id: list.into_iter().map(|c| (c.id.clone(), c)).collect(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&CannedResponse> {
        self.by_id.get(id)
    }

    /// Every response, by id.
    pub fn all(&self) -> impl Iterator<Item = &CannedResponse> {
        self.by_id.values()
    }

    /// Checks `c` as a new response (`replacing` none) or as the new version of response
    /// `replacing`: its fields, that its code is not another's in the same scope (the
    /// tenant, or its queue), and the tenant's bound. `queue_exists` says whether a
    /// queue id names a queue.
    pub fn check(
        &self,
        c: &CannedResponse,
        replacing: bool,
        queue_exists: impl Fn(&str) -> bool,
    ) -> Result<(), CoreError> {
        if !valid_id(&c.id) {
            return Err(invalid("id must be 1 to 64 characters from [A-Za-z0-9_.-]".into()));
        }
        check_code(&c.code)?;
        check_text(&c.text)?;
        if let Some(q) = &c.queue {
            if !queue_exists(q) {
                return Err(CoreError::UnknownQueue(q.clone()));
            }
        }
        match (replacing, self.by_id.contains_key(&c.id)) {
            (false, true) => {
                return Err(CoreError::AlreadyExists {
                    kind: "canned response",
                    id: c.id.clone(),
                })
            }
            (true, false) => return Err(CoreError::UnknownCannedResponse(c.id.clone())),
            _ => {}
        }
        if let Some(other) = self
            .by_id
            .values()
            .find(|o| o.id != c.id && o.code == c.code && o.queue == c.queue)
        {
            return Err(CoreError::AlreadyExists {
                kind: "canned response code",
                id: format!("{} (response {})", other.code, other.id),
            });
        }
        if !replacing && self.by_id.len() >= MAX_CANNED_RESPONSES {
            return Err(CoreError::TenantLimit {
                limit: "max_canned_responses",
                max: MAX_CANNED_RESPONSES as u32,
            });
        }
        Ok(())
    }

    /// Sets `c` (checked by [`CannedResponses::check`]).
    pub fn put(&mut self, c: CannedResponse) {
        self.by_id.insert(c.id.clone(), c);
    }

    pub fn remove(&mut self, id: &str) -> Option<CannedResponse> {
        self.by_id.remove(id)
    }

    /// The responses for an agent serving `queues`: the tenant's and those of its
    /// queues, a queue's replacing the tenant's of the same code; by code, then queue.
    pub fn applicable<'a>(&'a self, queues: &[AgentId]) -> Vec<&'a CannedResponse> {
        let mine = |c: &CannedResponse| c.queue.as_ref().is_some_and(|q| queues.contains(q));
        let mut v: Vec<&CannedResponse> = self
            .by_id
            .values()
            .filter(|c| match &c.queue {
                Some(_) => mine(c),
                None => !self.by_id.values().any(|o| o.code == c.code && mine(o)),
            })
            .collect();
        v.sort_by(|a, b| (&a.code, &a.queue).cmp(&(&b.code, &b.queue)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canned(id: &str, code: &str, text: &str, queue: Option<&str>) -> CannedResponse {
        CannedResponse {
            id: id.into(),
            code: code.into(),
            text: text.into(),
            queue: queue.map(Into::into),
        }
    }

    #[test]
    fn placeholders_are_filled_for_the_conversation() {
        let with = Fill {
            customer_name: "Carol Ann Smith",
            agent_name: "Ann Lee",
            queue_name: "Billing",
        };
        for (text, want) in [
            (
                "Hi {{customer.first_name}}, I am {{agent.name}}.",
                "Hi Carol, I am Ann Lee.",
            ),
            (
                "{{ customer.name }} / {{agent.first_name}} / {{queue.name}}",
                "Carol Ann Smith / Ann / Billing",
            ),
            ("no placeholders", "no placeholders"),
            ("{{unknown}} and {{ stays", "{{unknown}} and {{ stays"),
            ("{{queue.name}}{{queue.name}}", "BillingBilling"),
            ("ünïcode {{agent.first_name}}!", "ünïcode Ann!"),
        ] {
            assert_eq!(fill(text, &with), want, "{text}");
        }
        let nameless = Fill {
            customer_name: "",
            agent_name: "Ann",
            queue_name: "Q",
        };
        assert_eq!(fill("Hi {{customer.first_name}}", &nameless), "Hi ");
    }

    #[test]
    fn codes_and_texts_are_checked() {
        for ok in ["refund", "a", "late-parcel_2", &"x".repeat(MAX_CODE_CHARS)] {
            assert!(check_code(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Refund",
            "has space",
            "/refund",
            "é",
            &"x".repeat(MAX_CODE_CHARS + 1),
        ] {
            assert_eq!(check_code(bad).map_err(|e| e.code()), Err("invalid_input"), "{bad}");
        }
        assert!(check_text("Hi {{customer.first_name}}").is_ok());
        for (bad, says) in [
            ("", "empty"),
            ("  ", "empty"),
            ("Hi {{customer.email}}", "customer.email"),
            ("Hi {{customer.first_name", "without"),
            (&"t".repeat(MAX_CANNED_TEXT_CHARS + 1), "at most"),
        ] {
            match check_text(bad) {
                Err(CoreError::InvalidInput(m)) => assert!(m.contains(says), "{bad:.20}: {m}"),
                other => panic!("{bad:.20}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_code_is_unique_in_its_scope_and_ids_are_unique() {
        let mut r = CannedResponses::default();
        let queues = |q: &str| q == "billing" || q == "sales";
        let code = |r: &CannedResponses, c: CannedResponse, replacing: bool| {
            r.check(&c, replacing, queues)
                .map(|_| "ok")
                .unwrap_or_else(|e| e.code())
        };
        r.put(canned("hi", "hi", "Hello", None));
        for (c, replacing, want) in [
            (canned("hi2", "hi", "Hello again", None), false, "already_exists"),
            (canned("hi", "other", "x", None), false, "already_exists"),
            (
                canned("hi-billing", "hi", "Hello from billing", Some("billing")),
                false,
                "ok",
            ),
            (canned("nope", "x", "x", Some("nowhere")), false, "unknown_queue"),
            (canned("ghost", "g", "x", None), true, "unknown_canned_response"),
            (canned("hi", "hello", "Hello", None), true, "ok"),
            (canned("bad id", "x", "x", None), false, "invalid_input"),
        ] {
            assert_eq!(code(&r, c.clone(), replacing), want, "{c:?}");
        }
    }

    #[test]
    fn an_agent_gets_the_tenants_and_its_queues_and_a_queue_replaces_the_tenants_code() {
        let r = CannedResponses::restore(vec![
            canned("t-hi", "hi", "Hello", None),
            canned("t-bye", "bye", "Bye", None),
            canned("b-hi", "hi", "Billing says hello", Some("billing")),
            canned("s-deal", "deal", "A deal", Some("sales")),
        ]);
        let ids = |qs: &[&str]| -> Vec<String> {
            let qs: Vec<String> = qs.iter().map(|q| q.to_string()).collect();
            r.applicable(&qs).iter().map(|c| c.id.clone()).collect()
        };
        assert_eq!(ids(&[]), ["t-bye", "t-hi"]);
        assert_eq!(ids(&["billing"]), ["t-bye", "b-hi"]);
        assert_eq!(ids(&["sales"]), ["t-bye", "s-deal", "t-hi"]);
        assert_eq!(ids(&["billing", "sales"]), ["t-bye", "s-deal", "b-hi"]);
    }
}

/// A response as a reader gets it: with its text filled for a conversation when one
/// was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedView {
    pub response: CannedResponse,
    /// The text with its placeholders filled for the named conversation.
    pub filled: Option<String>,
}

impl super::Floor {
    /// Creates response `c` (`create`) or replaces the response of its id.
    pub(crate) fn put_canned(&mut self, c: CannedResponse, create: bool) -> Result<CannedResponse, CoreError> {
        self.canned().check(&c, !create, |q| self.queue(q).is_some())?;
        self.canned_mut().put(c.clone());
        self.journal()
            .change(super::Change::CannedResponse(Box::new(c.clone())));
        Ok(c)
    }

    /// Deletes response `id`.
    pub(crate) fn delete_canned(&mut self, id: &str) -> Result<(), CoreError> {
        self.canned_mut()
            .remove(id)
            .ok_or_else(|| CoreError::UnknownCannedResponse(id.into()))?;
        self.journal().change(super::Change::CannedResponseRemoved(id.into()));
        Ok(())
    }

    /// The responses `reader` may use: every one for the admin and supervisors, the
    /// applicable ones for an agent ([`CannedResponses::applicable`]). With
    /// `conversation` (agents only; it must be one the agent may read), each text is
    /// filled for it too. `queue` keeps those of one queue (`""`: the tenant-wide ones).
    pub fn canned_for(
        &self,
        reader: &super::Principal,
        conversation: Option<&str>,
        queue: Option<&str>,
    ) -> Result<Vec<CannedView>, CoreError> {
        use super::Principal;
        let in_queue = |c: &CannedResponse| match queue {
            None => true,
            Some("") => c.queue.is_none(),
            Some(q) => c.queue.as_deref() == Some(q),
        };
        let (list, agent): (Vec<&CannedResponse>, _) = match reader {
            Principal::Admin | Principal::Supervisor(_) => {
                if conversation.is_some() {
                    return Err(invalid(
                        "`conversation` fills the texts for its agent: an agent's token".into(),
                    ));
                }
                (self.canned().all().collect(), None)
            }
            Principal::Agent(a) => {
                let agent = self.agent(a).ok_or_else(|| CoreError::UnknownAgent(a.clone()))?;
                (self.canned().applicable(&agent.queues), Some(agent))
            }
            Principal::Customer { .. } => return Err(super::Principal::customer_may_not("read canned responses")),
        };
        let fill_with = match (conversation, agent) {
            (Some(id), Some(agent)) => {
                let c = self
                    .conversation(id)
                    .ok_or_else(|| CoreError::UnknownConversation(id.into()))?;
                self.check_may_read(reader, c)?;
                Some((c.customer.name.clone(), agent.name.clone(), c.queue_name.clone()))
            }
            _ => None,
        };
        Ok(list
            .into_iter()
            .filter(|c| in_queue(c))
            .map(|c| CannedView {
                response: c.clone(),
                filled: fill_with.as_ref().map(|(customer, agent, queue)| {
                    fill(
                        &c.text,
                        &Fill {
                            customer_name: customer,
                            agent_name: agent,
                            queue_name: queue,
                        },
                    )
                }),
            })
            .collect())
    }
}

#[cfg(test)]
mod floor_tests {
    use super::*;
    use crate::core::{
        Account, Channel, Command, Customer, EntryPoint, Floor, Presence, Principal, Reply, Rules, Skills,
    };

    const T0: u64 = 1_000_000;

    fn floor() -> (Floor, String) {
        let mut f = Floor::new(Rules::default());
        for (q, n) in [("billing", "Billing"), ("sales", "Sales")] {
            f.create_queue(q, n, Vec::new(), None, None, None).expect("queue");
        }
        f.create_entry_point(EntryPoint {
            id: "e".into(),
            name: "Page".into(),
            queue: "billing".into(),
            ..Default::default()
        })
        .expect("entry point");
        f.create_agent(
            "a1",
            "Ann Lee",
            vec!["billing".into()],
            1,
            Account::default(),
            Skills::new(),
            T0,
        )
        .expect("agent");
        f.create_agent(
            "a2",
            "Bo",
            vec!["sales".into()],
            1,
            Account::default(),
            Skills::new(),
            T0,
        )
        .expect("agent");
        f.set_state("a1", Presence::Available, None, T0).expect("available");
        let c = f
            .customer_message(
                "e",
                Customer {
                    id: "u".into(),
                    name: "Carol Smith".into(),
                },
                "hello",
                Channel::Rest,
                T0,
            )
            .expect("opened")
            .conversation;
        f.accept("a1", &c, T0).expect("accept");
        (f, c)
    }

    fn put(f: &mut Floor, id: &str, code: &str, text: &str, queue: Option<&str>) -> Result<Reply, CoreError> {
        f.execute(
            Command::CreateCannedResponse(CannedResponse {
                id: id.into(),
                code: code.into(),
                text: text.into(),
                queue: queue.map(Into::into),
            }),
            T0,
        )
    }

    #[test]
    fn responses_are_durable_and_an_agent_gets_its_own_filled_for_its_conversation() {
        let (mut f, c) = floor();
        f.take_changes();
        put(
            &mut f,
            "hi",
            "hi",
            "Hi {{customer.first_name}}, {{agent.first_name}} here ({{queue.name}}).",
            None,
        )
        .expect("put");
        put(&mut f, "deal", "deal", "A deal", Some("sales")).expect("put");
        assert_eq!(
            put(&mut f, "x", "x", "{{customer.email}}", None).unwrap_err().code(),
            "invalid_input"
        );
        let changes = f.take_changes();
        assert_eq!(
            changes
                .iter()
                .filter(|c| matches!(c, crate::core::Change::CannedResponse(_)))
                .count(),
            2,
            "each response made is durable, a refused one not"
        );
        let a1 = Principal::Agent("a1".into());
        let mine = f.canned_for(&a1, Some(&c), None).expect("read");
        assert_eq!(mine.len(), 1, "billing's agent does not get sales' response");
        assert_eq!(mine[0].filled.as_deref(), Some("Hi Carol, Ann here (Billing)."));
        assert_eq!(f.canned_for(&Principal::Admin, None, None).expect("read").len(), 2);
        assert_eq!(
            f.canned_for(&Principal::Admin, None, Some("sales"))
                .expect("read")
                .len(),
            1
        );
        assert_eq!(
            f.canned_for(&Principal::Admin, None, Some("")).expect("read")[0]
                .response
                .id,
            "hi"
        );
        // a2 may not fill texts for a conversation it is not in.
        let a2 = Principal::Agent("a2".into());
        assert_eq!(f.canned_for(&a2, Some(&c), None).unwrap_err().code(), "forbidden");
        assert_eq!(
            f.canned_for(&a1, Some("c-404"), None).unwrap_err().code(),
            "unknown_conversation"
        );
        assert_eq!(
            f.canned_for(&Principal::Admin, Some(&c), None).unwrap_err().code(),
            "invalid_input"
        );
        // A change replaces the fields given, checked as a new one would be.
        let update = |code: Option<&str>, queue: Option<Option<&str>>| Command::UpdateCannedResponse {
            id: "deal".into(),
            code: code.map(Into::into),
            text: None,
            queue: queue.map(|q| q.map(Into::into)),
        };
        assert_eq!(
            f.execute(update(Some("hi"), Some(None)), T0).unwrap_err().code(),
            "already_exists"
        );
        assert_eq!(f.execute(update(None, None), T0).unwrap_err().code(), "invalid_input");
        assert_eq!(
            f.execute(update(Some("Bad"), None), T0).unwrap_err().code(),
            "invalid_input"
        );
        assert_eq!(f.execute(update(None, Some(Some("billing"))), T0).map(|_| ()), Ok(()));
        assert_eq!(
            f.canned_for(&a1, Some(&c), None).expect("read").len(),
            2,
            "now billing's too"
        );
        // Deleting: once, durable; twice is unknown.
        f.execute(Command::DeleteCannedResponse { id: "deal".into() }, T0)
            .expect("delete");
        assert!(f
            .take_changes()
            .iter()
            .any(|c| matches!(c, crate::core::Change::CannedResponseRemoved(id) if id == "deal")));
        assert_eq!(
            f.execute(Command::DeleteCannedResponse { id: "deal".into() }, T0)
                .unwrap_err()
                .code(),
            "unknown_canned_response"
        );
    }
}
