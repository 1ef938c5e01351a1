//! Domain errors: every expected rejection is a value with a stable code.
//!
//! The codes are a contract with clients (../shared/API.md); the HTTP status is derived once, in
//! `api/`, from [`ErrorKind`].

use thiserror::Error;

/// What kind of rejection an error is; `api/` maps each kind to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is malformed or out of bounds (400).
    BadRequest,
    /// The named agent, queue, entry point or conversation does not exist (404).
    NotFound,
    /// The action does not fit the current state (409).
    Conflict,
    /// The acting agent is not allowed to do this (403).
    Forbidden,
    /// Wrong or outdated credentials (401).
    Unauthorized,
}

/// A rejection by the routing core. Nothing changed when one is returned, except where
/// the variant says so (an accept after the deadline also carries out the expiry).
///
/// Each variant's code is its name in snake_case (strum's `IntoStaticStr`, the rule serde's
/// `rename_all` follows for the wire enums); `codes_are_the_clients_contract` pins them, so
/// renaming a variant cannot change a code unnoticed.
#[derive(Debug, Clone, PartialEq, Eq, Error, strum::IntoStaticStr)]
#[cfg_attr(test, derive(strum::EnumIter))]
#[strum(serialize_all = "snake_case")]
pub enum CoreError {
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    #[error("unknown entry point {0}")]
    UnknownEntryPoint(String),
    #[error("unknown conversation {0}")]
    UnknownConversation(String),
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("{0}")]
    InvalidInput(String),
    #[error("conversation {conversation} is not offered to agent {agent}")]
    NotOfferedToYou { conversation: String, agent: String },
    #[error("the offer of conversation {conversation} to agent {agent} has expired")]
    OfferExpired { conversation: String, agent: String },
    #[error("agent {agent} is not the owner of conversation {conversation}")]
    NotOwner { conversation: String, agent: String },
    #[error("agent {agent} is not the conference guest of conversation {conversation}")]
    NotGuest { conversation: String, agent: String },
    #[error("agent {agent} is not in conversation {conversation}")]
    NotInConversation { conversation: String, agent: String },
    #[error("{0}")]
    InvalidState(String),
    #[error("agent {0} holds conversations and cannot log out")]
    AgentBusy(String),
    #[error("agent {0} is not available with a free slot")]
    AgentUnavailable(String),
    #[error("conversation {0} already has a conference guest or a pending conference offer")]
    ConferenceInProgress(String),
    #[error("conversation {0} has no conference")]
    NoConference(String),
    #[error("agent {agent} owes no wrap-up for conversation {conversation}")]
    NoWrapupOwed { conversation: String, agent: String },
    #[error("unknown wrap-up reason {0}")]
    UnknownWrapupReason(String),
    #[error("unknown idle code {0}")]
    UnknownIdleCode(String),
    #[error("the state {0} cannot be set by a client")]
    StateNotSettable(String),
    #[error("conversation {0} has ended")]
    ConversationEnded(String),
    /// A sign-in whose password does not (or no longer) match; the same for an unknown id.
    #[error("wrong agent id or password")]
    InvalidCredentials,
    /// A password change whose current password does not match.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Messenger: the customer last wrote more than 24 hours ago (7 days with the
    /// `HUMAN_AGENT` tag), so the Send API would refuse the message.
    #[error("conversation {0} is outside Messenger's messaging window: the customer last wrote too long ago")]
    OutsideMessagingWindow(String),
    /// A Messenger event for a page no entry point has.
    #[error("no entry point has page id {0}")]
    UnknownPage(String),
    /// An agent asked to read a conversation it has no part in ([`super::Floor::may_read`]).
    /// Its code is the HTTP layer's generic `forbidden`, as it always was.
    #[error("agent {agent} is not in conversation {conversation}")]
    #[strum(serialize = "forbidden")]
    MayNotRead { conversation: String, agent: String },
    #[error("unknown supervisor {0}")]
    UnknownSupervisor(String),
    /// The caller may not do this (an agent setting another agent's presence, a
    /// supervisor acting as an agent or a customer). Code `forbidden`, as above.
    #[error("{0}")]
    #[strum(serialize = "forbidden")]
    Forbidden(String),
    /// A priority change for a conversation that no longer waits (../shared/API.md).
    #[error("conversation {0} is not waiting (queued or offered)")]
    NotQueued(String),
    /// A Facebook Page belongs to one entry point.
    #[error("page {page_id} belongs to entry point {entry_point} already")]
    PageInUse { page_id: String, entry_point: String },
    /// A Messenger message in `standby` (another app owns the thread) on an entry point
    /// whose thread control is `off`: it is not taken in.
    #[error("page {0} lets another app own this thread (thread_control is off)")]
    ThreadOfAnotherApp(String),
    /// A tenant id no tenant has (../shared/API.md "Tenants").
    #[error("unknown tenant {0}")]
    UnknownTenant(String),
    /// A tenant deleted while it holds open conversations.
    #[error("tenant {tenant} has {open_conversations} open conversations")]
    TenantNotEmpty { tenant: String, open_conversations: usize },
    /// One more of something a tenant's limit (or `server.max_tenants`) bounds.
    #[error("the limit {limit} ({max}) is reached")]
    TenantLimit { limit: &'static str, max: u32 },
    /// A transfer or conference note longer than the engine's bound (issue 26 item 5).
    #[error("the note is longer than {max} characters")]
    NoteTooLong { max: usize },
    /// A canned response id the tenant does not have (issue 26 item 4).
    #[error("unknown canned response {0}")]
    UnknownCannedResponse(String),
    /// A webhook subscription id the tenant does not have.
    #[error("unknown webhook {0}")]
    UnknownWebhook(String),
    /// A webhook URL whose host has an address off the public internet, refused unless
    /// `webhooks.allow_private`.
    #[error(
        "the webhook url's host has the address {0}, which is loopback or private (webhooks.allow_private is off)"
    )]
    PrivateAddress(String),
}

impl CoreError {
    /// The stable, machine-readable code that clients match on.
    pub fn code(&self) -> &'static str {
        self.into()
    }

    /// The kind of rejection, from which `api/` derives the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoreError::UnknownAgent(_)
            | CoreError::UnknownQueue(_)
            | CoreError::UnknownEntryPoint(_)
            | CoreError::UnknownConversation(_)
            | CoreError::UnknownPage(_)
            | CoreError::UnknownSupervisor(_)
            | CoreError::UnknownTenant(_)
            | CoreError::UnknownCannedResponse(_)
            | CoreError::UnknownWebhook(_) => ErrorKind::NotFound,
            CoreError::InvalidInput(_)
            | CoreError::PrivateAddress(_)
            | CoreError::NoteTooLong { .. }
            | CoreError::UnknownWrapupReason(_)
            | CoreError::UnknownIdleCode(_)
            | CoreError::StateNotSettable(_) => ErrorKind::BadRequest,
            CoreError::NotOwner { .. }
            | CoreError::NotGuest { .. }
            | CoreError::NotInConversation { .. }
            | CoreError::MayNotRead { .. }
            | CoreError::Forbidden(_)
            | CoreError::WrongPassword => ErrorKind::Forbidden,
            CoreError::InvalidCredentials => ErrorKind::Unauthorized,
            _ => ErrorKind::Conflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    #[test]
    fn codes_are_the_clients_contract() {
        let codes: Vec<&str> = CoreError::iter().map(|e| e.code()).collect();
        assert_eq!(
            codes,
            [
                "unknown_agent",
                "unknown_queue",
                "unknown_entry_point",
                "unknown_conversation",
                "already_exists",
                "invalid_input",
                "not_offered_to_you",
                "offer_expired",
                "not_owner",
                "not_guest",
                "not_in_conversation",
                "invalid_state",
                "agent_busy",
                "agent_unavailable",
                "conference_in_progress",
                "no_conference",
                "no_wrapup_owed",
                "unknown_wrapup_reason",
                "unknown_idle_code",
                "state_not_settable",
                "conversation_ended",
                "invalid_credentials",
                "wrong_password",
                "outside_messaging_window",
                "unknown_page",
                "forbidden",
                "unknown_supervisor",
                "forbidden",
                "not_queued",
                "page_in_use",
                "thread_of_another_app",
                "unknown_tenant",
                "tenant_not_empty",
                "tenant_limit",
                "note_too_long",
                "unknown_canned_response",
                "unknown_webhook",
                "private_address",
            ]
        );
    }
}
