//! Commands: every state change a client can ask of the floor, and
//! [`Floor::execute`], the one way a command reaches it.
//!
//! Production (the router actor) and the simulation (`tests/simulation.rs`) both drive
//! the floor through `execute`, so the dispatch that runs in production is the dispatch
//! ../shared/SPEC.md's invariants are checked on. To add a command: a variant here, its arm in
//! [`Floor::execute`] (and in [`Command::name`] and [`Command::finished_act`]), the rule
//! itself as a `Floor` method with its table test, and one wire type in `api/`.
//!
//! Also here: who a caller is to the core ([`Principal`]) and the rules that depend on it
//! (the admin writes as the customer, who may read a conversation).

use super::conversation::{Attachment, Channel, Conversation, Customer, Message};
use super::event::{Outbound, OutboxOutcome};
use super::floor::{handoff_note, FinishedAct, Floor};
use super::queue::{EntryPoint, Queue};
use super::routing::{LastOwner, Opening, Skills, Step};
use super::supervisor::{Supervisor, SupervisorId};
use super::{Account, AccountRef, Agent, AgentId, ConversationId, CoreError, EntryPointId, Millis, Presence, QueueId};

/// An agent's capacity when its creator names none (../shared/SPEC.md: default 1).
pub const DEFAULT_CAPACITY: u32 = 1;

/// A command: one state change, acknowledged once durable.
#[derive(Debug, Clone)]
pub enum Command {
    CreateQueue {
        id: QueueId,
        name: String,
        /// Steps for conversations transferred into the queue (empty: none).
        routing_steps: Vec<Step>,
        /// Business hours (`None`: always open).
        hours: Option<std::sync::Arc<super::hours::Hours>>,
        /// The satisfaction survey after a served conversation (`None`: none).
        survey: Option<std::sync::Arc<super::survey::Survey>>,
        /// The most conversations that may wait (`None`: no bound).
        wait_limit: Option<super::queue::WaitLimit>,
        /// The service level threshold (`None`: the default).
        service_level_ms: Option<u64>,
        /// Messages to waiting customers about their place in line (`None`: none). Boxed
        /// like `overflow`, for the size of a command.
        place_updates: Option<Box<super::place::PlaceUpdates>>,
        /// Where conversations that waited too long go (`None`: they stay); the target
        /// queue must exist. Boxed, as every queue setting should be: a command is moved
        /// whole through the engine's channels, and its size is its largest variant's.
        overflow: Option<Box<super::queue::Overflow>>,
    },
    /// A queue's settings changed: each `Some` replaces one (`Some(None)` removes it),
    /// `None` leaves it as it is. They apply to the next customer who writes.
    UpdateQueue {
        queue: QueueId,
        hours: Option<Option<std::sync::Arc<super::hours::Hours>>>,
        survey: Option<Option<std::sync::Arc<super::survey::Survey>>>,
        wait_limit: Option<Option<super::queue::WaitLimit>>,
        service_level_ms: Option<Option<u64>>,
        place_updates: Option<Option<super::place::PlaceUpdates>>,
        overflow: Option<Option<Box<super::queue::Overflow>>>,
    },
    CreateEntryPoint(EntryPoint),
    /// The tenant's limits, as the registry holds them (../shared/API.md "Tenants"): set
    /// by the shell when the engine starts and when the operator changes them.
    SetLimits(super::tenant::TenantLimits),
    /// The tenant's wrap-up reasons and idle codes (../shared/API.md "Tenants"): set by the
    /// shell when the operator changes them (the engine starts with them in its rules).
    SetCodes(super::floor::Codes),
    CreateAgent {
        id: AgentId,
        name: String,
        queues: Vec<QueueId>,
        /// `None`: [`DEFAULT_CAPACITY`].
        capacity: Option<u32>,
        /// The hash of the agent's token (`api/` never hands the core a token itself).
        credential: Option<String>,
        /// The Argon2id hash of the agent's password (`api/` hashes it; never the password).
        password_hash: Option<String>,
        skills: Skills,
    },
    /// Replaces an agent's skills (admin); routing runs at once.
    SetSkills {
        agent: AgentId,
        skills: Skills,
    },
    /// Changes the priority of a waiting conversation (admin); the queue reorders at once.
    SetPriority {
        conversation: ConversationId,
        priority: i32,
    },
    /// Replaces an account's credential (token reissue): the old one stops working once
    /// the change is durable, and the new one works from then on.
    SetCredential {
        account: AccountRef,
        credential: String,
    },
    /// Sets an account's password hash (made by the caller, Argon2id; `None` removes the
    /// password) and ends every session of the account but `keep_session`. With
    /// `expected`, refused (`wrong_password`) unless that is the current hash.
    SetPassword {
        account: AccountRef,
        password_hash: Option<String>,
        keep_session: Option<String>,
        expected: Option<String>,
    },
    /// Opens a session (password sign-in) whose token hashes to `credential`; the caller
    /// verified the password against `verified_hash`. Answers [`Reply::SignedIn`].
    StartSession {
        account: AccountRef,
        verified_hash: String,
        credential: String,
        expires_at: Millis,
    },
    /// Ends a session (sign-out); ending one that is not open is not an error.
    EndSession {
        account: AccountRef,
        credential: String,
    },
    /// The agent sets its own presence.
    SetState {
        agent: AgentId,
        state: Presence,
        idle_code: Option<String>,
    },
    /// A customer message on an entry point: opens or joins the customer's conversation.
    CustomerMessage {
        entry_point: EntryPointId,
        customer: Customer,
        text: String,
        channel: Channel,
        /// How a conversation it opens is routed (priority and steps may override the
        /// entry point's; the shell fills in the customer's last owner).
        open: Opening,
    },
    /// A customer message in a known conversation.
    CustomerReply {
        conversation: ConversationId,
        text: String,
    },
    CustomerEnd {
        conversation: ConversationId,
    },
    /// The customer types (`on`) or stopped (issue 26 item 8): told to the agents in it.
    CustomerTyping {
        conversation: ConversationId,
        on: bool,
    },
    Accept {
        agent: AgentId,
        conversation: ConversationId,
    },
    Send {
        agent: AgentId,
        conversation: ConversationId,
        text: String,
    },
    /// An internal note by an agent (issue 26 item 5): in the transcript, never sent.
    AddNote {
        agent: AgentId,
        conversation: ConversationId,
        text: String,
    },
    TransferToAgent {
        agent: AgentId,
        conversation: ConversationId,
        target: AgentId,
        /// Shown in the receiving agent's offer; checked by [`super::floor::handoff_note`].
        note: Option<String>,
    },
    TransferToQueue {
        agent: AgentId,
        conversation: ConversationId,
        queue: QueueId,
        /// Shown in the offers of the conversation from the new queue.
        note: Option<String>,
    },
    Conference {
        agent: AgentId,
        conversation: ConversationId,
        target: AgentId,
        /// Shown in the invited agent's offer.
        note: Option<String>,
    },
    ExitConference {
        agent: AgentId,
        conversation: ConversationId,
    },
    EndConference {
        agent: AgentId,
        conversation: ConversationId,
    },
    End {
        agent: AgentId,
        conversation: ConversationId,
    },
    Wrapup {
        agent: AgentId,
        conversation: ConversationId,
        reason: String,
    },
    /// A Messenger message or postback on Facebook Page `page_id` (see
    /// [`Floor::messenger_message`](super::floor::Floor)): opens or joins the customer's
    /// conversation; ignored when `seen`.
    MessengerMessage {
        page_id: String,
        customer: Customer,
        /// `""` when the message carries only attachments.
        text: String,
        attachments: Vec<Attachment>,
        /// Messenger's message id; `None` for a postback, which has none.
        mid: Option<String>,
        /// Filled by the shell: the store (or a commit under way) has this `mid` already.
        seen: bool,
        /// Filled by the shell: the customer's last owner on the page's entry point.
        last_owner: Option<LastOwner>,
        /// Meta's `timestamp` of the message: the messaging window counts from it.
        sent_at: Option<Millis>,
        /// An echo of what a person wrote from the Page's own inbox (another app's
        /// message): it joins the customer's open conversation as the Page's.
        page_echo: bool,
        /// Delivered in `standby`: another app (a bot) owns the thread. Taken in, and the
        /// thread taken, only where the entry point's thread control is `take`.
        standby: bool,
    },
    /// The Messenger channel's other operations (page tokens, channel state; see
    /// [`super::messenger::MessengerCommand`]).
    Messenger(super::messenger::MessengerCommand),
    /// Messenger's delivery or read mark: every outbound message of the customer's open
    /// conversation sent at or before `watermark` is delivered (read).
    MessengerMark {
        page_id: String,
        customer: String,
        watermark: Millis,
        read: bool,
    },
    /// The outbox sender's report on one outbox entry.
    OutboxReport {
        entry: Outbound,
        outcome: OutboxOutcome,
    },
    /// The User Profile API's name for a customer of a page.
    SetCustomerName {
        page_id: String,
        customer: String,
        name: String,
    },
    /// Creates a canned response (issue 26 item 4).
    CreateCannedResponse(super::canned::CannedResponse),
    /// Changes a canned response: each `Some` replaces a field (`queue: Some(None)`
    /// makes it tenant-wide).
    UpdateCannedResponse {
        id: String,
        code: Option<String>,
        text: Option<String>,
        queue: Option<Option<QueueId>>,
    },
    /// Deletes a canned response.
    DeleteCannedResponse {
        id: String,
    },
    /// Creates a webhook subscription (its URL already checked with
    /// [`super::webhooks::check_url`]).
    CreateWebhook(super::webhooks::NewWebhook),
    /// Deletes a webhook subscription.
    DeleteWebhook {
        id: String,
    },
    /// The webhook sender's report on one subscription's delivery.
    WebhookProgress {
        id: String,
        progress: super::webhooks::Progress,
    },
    /// Creates a supervisor (../shared/API.md "Supervisor"); `credential` is its token's hash.
    CreateSupervisor {
        id: SupervisorId,
        name: String,
        credential: Option<String>,
        password_hash: Option<String>,
    },
    /// A supervisor or the admin (`by`) sets an agent's presence, with the agent's own
    /// rules; audited. Answers the agent.
    SetStateFor {
        by: Principal,
        agent: AgentId,
        state: Presence,
        idle_code: Option<String>,
    },
}

/// The answer to a [`Command`].
// Agent and conversation records are boxed: a reply is moved several times on its way
// (the router's pending queue, the answer channel, the caller), and a record is several
// hundred bytes; memmove of whole replies was measurable in the in-process harness.
#[derive(Debug, Clone)]
pub enum Reply {
    Done,
    /// A new queue, with its live figures.
    Queue(QueueStats),
    EntryPoint(EntryPoint),
    Agent(Box<Agent>),
    Conversation(Box<Conversation>),
    /// A conversation's id alone: the answer of a [`Detail::Brief`] command that would
    /// otherwise carry the conversation.
    ConversationId(ConversationId),
    Message(Message),
    Supervisor(Box<Supervisor>),
    CannedResponse(Box<super::canned::CannedResponse>),
    Webhook(Box<super::webhooks::Webhook>),
    /// A session was opened for this account, held by `name`.
    SignedIn {
        account: AccountRef,
        name: String,
    },
}

impl Reply {
    /// The conversation of a [`Reply::Conversation`].
    pub fn into_conversation(self) -> Option<Box<Conversation>> {
        match self {
            Reply::Conversation(c) => Some(c),
            _ => None,
        }
    }

    /// The agent of a [`Reply::Agent`].
    pub fn into_agent(self) -> Option<Box<Agent>> {
        match self {
            Reply::Agent(a) => Some(a),
            _ => None,
        }
    }

    /// The variant's name, for logs and for an answer of an unexpected kind.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Done => "done",
            Reply::Queue(_) => "queue",
            Reply::EntryPoint(_) => "entry_point",
            Reply::Agent(_) => "agent",
            Reply::Conversation(_) => "conversation",
            Reply::ConversationId(_) => "conversation_id",
            Reply::Message(_) => "message",
            Reply::Supervisor(_) => "supervisor",
            Reply::CannedResponse(_) => "canned_response",
            Reply::Webhook(_) => "webhook",
            Reply::SignedIn { .. } => "signed_in",
        }
    }
}

/// What the answer to a command carries of the conversation it touched: what its caller
/// uses. A REST answer is the whole conversation, transcript included; a desktop's
/// socket and a batch of commands discard it (the desktop is told by its events), so
/// cloning a long transcript into every answer there would be paid for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// The whole conversation ([`Reply::Conversation`]).
    #[default]
    Full,
    /// Its id alone ([`Reply::ConversationId`]).
    Brief,
}

/// A queue with its live figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub id: QueueId,
    pub name: String,
    pub waiting: usize,
    pub longest_wait_ms: u64,
    pub agents_available: usize,
    /// Steps for conversations transferred into the queue.
    pub routing_steps: Vec<Step>,
    /// Business hours (`None`: always open).
    pub hours: Option<std::sync::Arc<super::hours::Hours>>,
    /// The satisfaction survey after a served conversation.
    pub survey: Option<std::sync::Arc<super::survey::Survey>>,
    /// The most conversations that may wait (`None`: no bound).
    pub wait_limit: Option<super::queue::WaitLimit>,
    /// The service level threshold in force.
    pub service_level_ms: u64,
    /// Messages to waiting customers about their place in line.
    pub place_updates: Option<std::sync::Arc<super::place::PlaceUpdates>>,
    /// Where conversations that waited too long go.
    pub overflow: Option<super::queue::Overflow>,
}

/// Who is asking, as far as the core's rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The administrator: manages, reads everything, and stands in for the customer.
    Admin,
    Agent(AgentId),
    /// A supervisor: reads everything, sets agents' presence; acts as no agent or customer.
    Supervisor(SupervisorId),
    /// A customer of an entry point (the demo customer page): reads its own conversations
    /// on that entry point and nothing else. No token authenticates as one.
    Customer {
        entry_point: EntryPointId,
        customer: String,
    },
}

impl Command {
    /// A short name for logs and spans.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateQueue { .. } => "create_queue",
            Command::UpdateQueue { .. } => "update_queue",
            Command::CreateEntryPoint(_) => "create_entry_point",
            Command::CreateAgent { .. } => "create_agent",
            Command::SetCredential { .. } => "set_credential",
            Command::SetSkills { .. } => "set_skills",
            Command::SetLimits(_) => "set_limits",
            Command::SetCodes(_) => "set_codes",
            Command::SetPriority { .. } => "set_priority",
            Command::SetPassword { .. } => "set_password",
            Command::StartSession { .. } => "start_session",
            Command::EndSession { .. } => "end_session",
            Command::SetState { .. } => "set_state",
            Command::CustomerMessage { .. } => "customer_message",
            Command::CustomerReply { .. } => "customer_reply",
            Command::CustomerEnd { .. } => "customer_end",
            Command::CustomerTyping { .. } => "customer_typing",
            Command::Accept { .. } => "accept",
            Command::Send { .. } => "send",
            Command::AddNote { .. } => "add_note",
            Command::TransferToAgent { .. } => "transfer_to_agent",
            Command::TransferToQueue { .. } => "transfer_to_queue",
            Command::Conference { .. } => "conference",
            Command::ExitConference { .. } => "exit_conference",
            Command::EndConference { .. } => "end_conference",
            Command::End { .. } => "end",
            Command::Wrapup { .. } => "wrapup",
            Command::MessengerMessage { .. } => "messenger_message",
            Command::MessengerMark { .. } => "messenger_mark",
            Command::Messenger(_) => "messenger",
            Command::OutboxReport { .. } => "outbox_report",
            Command::SetCustomerName { .. } => "set_customer_name",
            Command::CreateSupervisor { .. } => "create_supervisor",
            Command::CreateCannedResponse(_) => "create_canned_response",
            Command::UpdateCannedResponse { .. } => "update_canned_response",
            Command::DeleteCannedResponse { .. } => "delete_canned_response",
            Command::CreateWebhook(_) => "create_webhook",
            Command::DeleteWebhook { .. } => "delete_webhook",
            Command::WebhookProgress { .. } => "webhook_progress",
            Command::SetStateFor { .. } => "set_state_for",
        }
    }

    /// What the command is to a conversation that may be finished (see
    /// [`Floor::refusal_for_finished`]); `None` for commands that name no conversation,
    /// or that open one (a customer's message on an entry point opens a new conversation
    /// when the customer's last one is over).
    pub fn finished_act(&self) -> Option<FinishedAct> {
        Some(match self {
            Command::Accept { agent, .. } => FinishedAct::Accept { agent: agent.clone() },
            Command::Wrapup { agent, .. } => FinishedAct::Wrapup { agent: agent.clone() },
            Command::CustomerReply { .. }
            | Command::CustomerEnd { .. }
            | Command::CustomerTyping { .. }
            | Command::Send { .. }
            | Command::AddNote { .. }
            | Command::TransferToAgent { .. }
            | Command::TransferToQueue { .. }
            | Command::Conference { .. }
            | Command::ExitConference { .. }
            | Command::EndConference { .. }
            | Command::End { .. }
            | Command::Messenger(super::messenger::MessengerCommand::SendFile { .. }) => FinishedAct::NeedsOpen,
            Command::SetPriority { .. } => FinishedAct::NeedsQueued,
            Command::CreateQueue { .. }
            | Command::UpdateQueue { .. }
            | Command::SetSkills { .. }
            | Command::SetLimits(_)
            | Command::SetCodes(_)
            | Command::CreateEntryPoint(_)
            | Command::CreateAgent { .. }
            | Command::SetCredential { .. }
            | Command::SetPassword { .. }
            | Command::StartSession { .. }
            | Command::EndSession { .. }
            | Command::SetState { .. }
            | Command::CustomerMessage { .. }
            | Command::MessengerMessage { .. }
            | Command::MessengerMark { .. }
            | Command::Messenger(_)
            | Command::OutboxReport { .. }
            | Command::SetCustomerName { .. }
            | Command::CreateSupervisor { .. }
            | Command::CreateCannedResponse(_)
            | Command::UpdateCannedResponse { .. }
            | Command::DeleteCannedResponse { .. }
            | Command::CreateWebhook(_)
            | Command::DeleteWebhook { .. }
            | Command::WebhookProgress { .. }
            | Command::SetStateFor { .. } => return None,
        })
    }

    /// A message written in `conversation` by `by`. The admin writes as the customer
    /// (../shared/API.md: `POST /conversations/{id}/messages` is "agent in it; admin as the
    /// customer"); an agent writes as itself.
    /// A supervisor writes as nobody (403).
    pub fn write(by: &Principal, conversation: &str, text: String) -> Result<Command, CoreError> {
        Ok(match by {
            Principal::Admin => Command::CustomerReply {
                conversation: conversation.into(),
                text,
            },
            Principal::Agent(a) => Command::Send {
                agent: a.clone(),
                conversation: conversation.into(),
                text,
            },
            Principal::Supervisor(s) => return Err(Principal::supervisor_may_not(s, "write in a conversation")),
            // A customer writes on its entry point (`CustomerMessage`), after its read right
            // to the conversation was checked; never through this path.
            Principal::Customer { .. } => return Err(Principal::customer_may_not("write here")),
        })
    }

    /// `by` types in `conversation` (`on`) or stopped: the admin as the customer (told to
    /// the agents in it), an agent as itself (a Messenger customer sees it as a sender
    /// action). A supervisor types as nobody (403).
    pub fn typing(by: &Principal, conversation: &str, on: bool) -> Result<Command, CoreError> {
        Ok(match by {
            Principal::Admin => Command::CustomerTyping {
                conversation: conversation.into(),
                on,
            },
            Principal::Agent(a) => Command::Messenger(super::messenger::MessengerCommand::SenderAction {
                agent: a.clone(),
                conversation: conversation.into(),
                typing: Some(on),
            }),
            Principal::Supervisor(s) => return Err(Principal::supervisor_may_not(s, "type in a conversation")),
            Principal::Customer { .. } => return Err(Principal::customer_may_not("type here")),
        })
    }

    /// `agent` transfers `conversation` to exactly one of an agent and a queue.
    pub fn transfer(
        agent: AgentId,
        conversation: ConversationId,
        to_agent: Option<AgentId>,
        to_queue: Option<QueueId>,
        note: Option<String>,
    ) -> Result<Command, CoreError> {
        match (to_agent, to_queue) {
            (Some(target), None) => Ok(Command::TransferToAgent {
                agent,
                conversation,
                target,
                note,
            }),
            (None, Some(queue)) => Ok(Command::TransferToQueue {
                agent,
                conversation,
                queue,
                note,
            }),
            _ => Err(CoreError::InvalidInput(
                "name exactly one of `agent` and `queue`".into(),
            )),
        }
    }

    /// `by` ends `conversation`: the admin as the customer, an agent as its owner.
    /// A supervisor ends nothing (403).
    pub fn end(by: &Principal, conversation: &str) -> Result<Command, CoreError> {
        Ok(match by {
            Principal::Admin => Command::CustomerEnd {
                conversation: conversation.into(),
            },
            Principal::Agent(a) => Command::End {
                agent: a.clone(),
                conversation: conversation.into(),
            },
            Principal::Supervisor(s) => return Err(Principal::supervisor_may_not(s, "end a conversation")),
            Principal::Customer { .. } => return Err(Principal::customer_may_not("end a conversation here")),
        })
    }
}

impl Principal {
    /// The refusal of a customer acting outside its own chat.
    pub fn customer_may_not(what: &str) -> CoreError {
        CoreError::Forbidden(format!("a customer may not {what}"))
    }

    /// The refusal of a supervisor acting as an agent or a customer, or managing.
    pub fn supervisor_may_not(id: &str, what: &str) -> CoreError {
        CoreError::Forbidden(format!(
            "supervisor {id} may not {what}; supervisors read and set agents' presence"
        ))
    }
}

impl Floor {
    /// Applies one command at `now`: the only way a command reaches the floor. Either it
    /// is refused (nothing changed, except where [`CoreError`] says so) or its changes and
    /// effects are queued for [`Floor::take_changes`] and [`Floor::take_effects`].
    pub fn execute(&mut self, cmd: Command, now: Millis) -> Result<Reply, CoreError> {
        self.execute_for(cmd, now, Detail::Full)
    }

    /// [`Floor::execute`], answering with as much of a touched conversation as `detail`
    /// asks for.
    pub fn execute_for(&mut self, cmd: Command, now: Millis, detail: Detail) -> Result<Reply, CoreError> {
        self.saw(now);
        let reply = |f: &Floor, id: &str| f.conversation_reply(id, detail);
        Ok(match cmd {
            Command::CreateQueue {
                id,
                name,
                routing_steps,
                hours,
                survey,
                wait_limit,
                service_level_ms,
                place_updates,
                overflow,
            } => {
                // Checked before anything changes.
                if let Some(p) = &place_updates {
                    p.check()?;
                }
                if let Some(s) = &survey {
                    s.check()?;
                }
                if let Some(o) = &overflow {
                    self.check_overflow(&id, o)?;
                }
                let overflow = overflow.map(|o| *o);
                self.create_queue(&id, &name, routing_steps, hours, wait_limit, service_level_ms)?;
                if survey.is_some() {
                    self.set_survey(&id, survey)?;
                }
                if place_updates.is_some() {
                    self.set_place_updates(&id, place_updates.map(|p| *p), now)?;
                }
                if overflow.is_some() {
                    self.set_overflow(&id, overflow, now)?;
                }
                Reply::Queue(self.queue_stats(&id, now).ok_or(CoreError::UnknownQueue(id))?)
            }
            Command::UpdateQueue {
                queue,
                hours,
                survey,
                wait_limit,
                service_level_ms,
                place_updates,
                overflow,
            } => {
                if let Some(Some(p)) = &place_updates {
                    p.check()?;
                }
                if let Some(Some(s)) = &survey {
                    s.check()?;
                }
                if !self.queues().any(|q| q.id == queue) {
                    return Err(CoreError::UnknownQueue(queue));
                }
                if let Some(Some(o)) = &overflow {
                    self.check_overflow(&queue, o)?;
                }
                let hours_given = hours.is_some();
                self.update_queue(&queue, hours, wait_limit, service_level_ms)?;
                if hours_given {
                    self.hours_changed(&queue, now);
                }
                if let Some(p) = place_updates {
                    self.set_place_updates(&queue, p, now)?;
                }
                if let Some(s) = survey {
                    self.set_survey(&queue, s)?;
                }
                if let Some(o) = overflow {
                    self.set_overflow(&queue, o.map(|o| *o), now)?;
                }
                Reply::Queue(self.queue_stats(&queue, now).ok_or(CoreError::UnknownQueue(queue))?)
            }
            Command::CreateEntryPoint(ep) => Reply::EntryPoint(self.create_entry_point(ep)?.clone()),
            Command::CreateAgent {
                id,
                name,
                queues,
                capacity,
                credential,
                password_hash,
                skills,
            } => {
                let capacity = capacity.unwrap_or(DEFAULT_CAPACITY);
                let account = Account::new(credential, password_hash);
                self.create_agent(&id, &name, queues, capacity, account, skills, now)?;
                Reply::Agent(Box::new(self.agent(&id).ok_or(CoreError::UnknownAgent(id))?.clone()))
            }
            Command::SetCredential { account, credential } => {
                self.reissue(&account, credential)?;
                Reply::Done
            }
            Command::SetPassword {
                account,
                password_hash,
                keep_session,
                expected,
            } => {
                self.set_password(&account, password_hash, keep_session.as_deref(), expected.as_deref())?;
                Reply::Done
            }
            Command::StartSession {
                account,
                verified_hash,
                credential,
                expires_at,
            } => {
                self.start_session(&account, &verified_hash, credential, expires_at, now)?;
                let name = self.account_name(&account).unwrap_or_default().to_string();
                Reply::SignedIn { account, name }
            }
            Command::EndSession { account, credential } => {
                self.end_session(&account, &credential)?;
                Reply::Done
            }
            Command::SetState {
                agent,
                state,
                idle_code,
            } => Reply::Agent(Box::new(self.set_state(&agent, state, idle_code, now)?.clone())),
            Command::CustomerMessage {
                entry_point,
                customer,
                text,
                channel,
                open,
            } => {
                let arrival =
                    self.customer_message_with(&entry_point, customer, &text, Vec::new(), channel, open, now)?;
                // A survey's answer may name a conversation the floor no longer holds
                // (complete): the answer is its id, and the shell reads it from the store.
                reply(self, &arrival.conversation).unwrap_or(Reply::ConversationId(arrival.conversation))
            }
            Command::SetLimits(limits) => {
                self.set_limits(limits);
                Reply::Done
            }
            Command::SetCodes(codes) => {
                self.set_codes(codes);
                Reply::Done
            }
            Command::SetSkills { agent, skills } => {
                Reply::Agent(Box::new(self.set_skills(&agent, skills, now)?.clone()))
            }
            Command::SetPriority { conversation, priority } => {
                self.set_priority(&conversation, priority, now)?;
                reply(self, &conversation)?
            }
            Command::CustomerReply { conversation, text } => {
                Reply::Message(self.customer_reply(&conversation, &text, now)?)
            }
            Command::CustomerEnd { conversation } => {
                self.customer_end(&conversation, now)?;
                Reply::Done
            }
            Command::CustomerTyping { conversation, on } => {
                self.customer_typing(&conversation, on, now)?;
                Reply::Done
            }
            Command::Accept { agent, conversation } => {
                self.accept(&agent, &conversation, now)?;
                reply(self, &conversation)?
            }
            Command::Send {
                agent,
                conversation,
                text,
            } => Reply::Message(self.agent_message(&agent, &conversation, &text, now)?),
            Command::AddNote {
                agent,
                conversation,
                text,
            } => Reply::Message(self.add_note(&agent, &conversation, &text, now)?),
            Command::TransferToAgent {
                agent,
                conversation,
                target,
                note,
            } => {
                let note = handoff_note(note)?;
                self.transfer_to_agent(&agent, &conversation, &target, note, now)?;
                reply(self, &conversation)?
            }
            Command::TransferToQueue {
                agent,
                conversation,
                queue,
                note,
            } => {
                let note = handoff_note(note)?;
                self.transfer_to_queue(&agent, &conversation, &queue, note, now)?;
                reply(self, &conversation)?
            }
            Command::Conference {
                agent,
                conversation,
                target,
                note,
            } => {
                let note = handoff_note(note)?;
                self.conference(&agent, &conversation, &target, note, now)?;
                reply(self, &conversation)?
            }
            Command::ExitConference { agent, conversation } => {
                self.exit_conference(&agent, &conversation, now)?;
                Reply::Done
            }
            Command::EndConference { agent, conversation } => {
                self.end_conference(&agent, &conversation, now)?;
                Reply::Done
            }
            Command::End { agent, conversation } => {
                self.end(&agent, &conversation, now)?;
                Reply::Done
            }
            Command::Wrapup {
                agent,
                conversation,
                reason,
            } => {
                self.wrapup(&agent, &conversation, &reason, now)?;
                Reply::Done
            }
            Command::MessengerMessage {
                page_id,
                customer,
                text,
                attachments,
                mid,
                seen,
                last_owner,
                sent_at,
                page_echo: false,
                standby,
            } => match self.messenger_message(
                &page_id,
                customer,
                &text,
                attachments,
                mid,
                seen,
                last_owner,
                sent_at,
                standby,
                now,
            )? {
                // As for `CustomerMessage`: a survey's answer may name a complete one.
                Some(id) => reply(self, &id).unwrap_or(Reply::ConversationId(id)),
                None => Reply::Done,
            },
            Command::MessengerMessage {
                page_id,
                customer,
                text,
                attachments,
                mid,
                seen,
                sent_at,
                page_echo: true,
                ..
            } => {
                self.page_echo(&page_id, &customer.id, &text, attachments, mid, seen, sent_at, now)?;
                Reply::Done
            }
            Command::Messenger(m) => self.messenger(m, now)?,
            Command::MessengerMark {
                page_id,
                customer,
                watermark,
                read,
            } => {
                self.messenger_mark(&page_id, &customer, watermark, read)?;
                Reply::Done
            }
            Command::OutboxReport { entry, outcome } => {
                let (conversation, seq) = (entry.conversation.clone(), entry.seq);
                self.outbox_report(&conversation, seq, outcome, Some(entry))?;
                Reply::Done
            }
            Command::SetCustomerName {
                page_id,
                customer,
                name,
            } => {
                self.set_customer_name(&page_id, &customer, &name)?;
                Reply::Done
            }
            Command::CreateSupervisor {
                id,
                name,
                credential,
                password_hash,
            } => Reply::Supervisor(Box::new(
                self.create_supervisor(&id, &name, Account::new(credential, password_hash))?
                    .clone(),
            )),
            Command::CreateCannedResponse(response) => {
                Reply::CannedResponse(Box::new(self.put_canned(response, true)?))
            }
            Command::UpdateCannedResponse { id, code, text, queue } => {
                let mut response = self
                    .canned()
                    .get(&id)
                    .cloned()
                    .ok_or(CoreError::UnknownCannedResponse(id))?;
                if code.is_none() && text.is_none() && queue.is_none() {
                    return Err(CoreError::InvalidInput("give code, text or queue".into()));
                }
                response.code = code.unwrap_or(response.code);
                response.text = text.unwrap_or(response.text);
                response.queue = queue.unwrap_or(response.queue);
                Reply::CannedResponse(Box::new(self.put_canned(response, false)?))
            }
            Command::DeleteCannedResponse { id } => {
                self.delete_canned(&id)?;
                Reply::Done
            }
            Command::CreateWebhook(new) => Reply::Webhook(Box::new(self.create_webhook(new, now)?)),
            Command::DeleteWebhook { id } => {
                self.delete_webhook(&id)?;
                Reply::Done
            }
            Command::WebhookProgress { id, progress } => {
                self.webhook_progress(&id, progress);
                Reply::Done
            }
            Command::SetStateFor {
                by,
                agent,
                state,
                idle_code,
            } => {
                self.set_state_for(&by, &agent, state, idle_code, now)?;
                Reply::Agent(Box::new(
                    self.agent(&agent).ok_or(CoreError::UnknownAgent(agent))?.clone(),
                ))
            }
        })
    }

    fn conversation_reply(&self, id: &str, detail: Detail) -> Result<Reply, CoreError> {
        let c = self
            .conversation(id)
            .ok_or_else(|| CoreError::UnknownConversation(id.into()))?;
        Ok(match detail {
            Detail::Full => Reply::Conversation(Box::new(c.clone())),
            Detail::Brief => Reply::ConversationId(c.id.clone()),
        })
    }

    /// The refusal of a command that named conversation `id`, which the floor does not
    /// hold: the refusal it gave while it held it if the store still has it (`stored`,
    /// a finished conversation), else `unknown_conversation`.
    pub fn refusal_for_unknown(id: String, act: &FinishedAct, stored: Option<&Conversation>) -> CoreError {
        match stored {
            Some(c) => Floor::refusal_for_finished(c, act),
            None => CoreError::UnknownConversation(id),
        }
    }

    /// Queue `id` with its live figures at `now`.
    pub fn queue_stats(&self, id: &str, now: Millis) -> Option<QueueStats> {
        self.queue(id).map(|q| self.stats_of(q, now))
    }

    /// Every queue with its live figures at `now`, by id.
    pub fn all_queue_stats(&self, now: Millis) -> Vec<QueueStats> {
        let mut v: Vec<_> = self.queues().map(|q| self.stats_of(q, now)).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    fn stats_of(&self, q: &Queue, now: Millis) -> QueueStats {
        QueueStats {
            id: q.id.clone(),
            name: q.name.clone(),
            waiting: q.waiting.len(),
            longest_wait_ms: q.longest_wait_ms(now),
            agents_available: self.agents_available(&q.id),
            routing_steps: q.routing_steps.clone(),
            hours: q.hours.clone(),
            survey: q.survey.clone(),
            wait_limit: q.wait_limit.clone(),
            service_level_ms: q.service_level_ms(),
            place_updates: q.place_updates.clone(),
            overflow: q.overflow.clone(),
        }
    }

    /// May `reader` read conversation `c` (held by the floor, or finished and read from
    /// the store)? The admin and supervisors read everything; a customer its own
    /// conversations on its entry point. An agent reads a conversation it is offered,
    /// is in (owner or guest), owes a wrap-up for, or has handled: every agent that was in
    /// a conversation owes it a wrap-up on leaving, so the conversation's wrap-up records
    /// name every agent that handled it, even after it finished (docs/DECISIONS.md). And
    /// an agent serving a customer reads that customer's earlier conversations on the
    /// same entry point ([`Floor::reads_as_earlier`], `earlier.rs`).
    pub fn may_read(&self, reader: &Principal, c: &Conversation) -> bool {
        let agent = match reader {
            Principal::Admin | Principal::Supervisor(_) => return true,
            Principal::Customer { entry_point, customer } => {
                return c.customer.id == *customer && c.entry_point.as_deref() == Some(entry_point.as_str())
            }
            Principal::Agent(a) => a,
        };
        c.participants().any(|p| p == agent)
            || c.offer.as_ref().is_some_and(|o| &o.agent == agent)
            || c.wrapups.iter().any(|w| &w.agent == agent)
            || self.agent(agent).is_some_and(|a| a.wrapups.contains_key(&c.id))
            || self.reads_as_earlier(agent, c)
    }

    /// [`Floor::may_read`] as a refusal: `forbidden` (403) when `reader` may not read `c`.
    pub fn check_may_read(&self, reader: &Principal, c: &Conversation) -> Result<(), CoreError> {
        match reader {
            Principal::Agent(agent) if !self.may_read(reader, c) => Err(CoreError::MayNotRead {
                conversation: c.id.clone(),
                agent: agent.clone(),
            }),
            // Another customer's conversation does not exist, as far as a customer knows.
            Principal::Customer { .. } if !self.may_read(reader, c) => {
                Err(CoreError::UnknownConversation(c.id.clone()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{ConversationState, Rules};

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
            Command::CreateEntryPoint(EntryPoint {
                id: "ep".into(),
                name: "Page".into(),
                queue: "q".into(),
                page_id: None,
                page_access_token: None,

                ..Default::default()
            }),
            T0,
        )
        .unwrap();
        for a in ["a1", "a2"] {
            f.execute(
                Command::CreateAgent {
                    id: a.into(),
                    name: a.into(),
                    queues: vec!["q".into()],
                    capacity: None,
                    credential: None,
                    password_hash: None,

                    skills: Default::default(),
                },
                T0,
            )
            .unwrap();
        }
        f
    }

    fn open(f: &mut Floor) -> String {
        match f.execute(
            Command::CustomerMessage {
                entry_point: "ep".into(),
                customer: Customer {
                    id: "u".into(),
                    name: "U".into(),
                },
                text: "hello".into(),
                channel: Channel::Rest,

                open: Default::default(),
            },
            T0,
        ) {
            Ok(Reply::Conversation(c)) => c.id,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn available(f: &mut Floor, a: &str) {
        f.execute(
            Command::SetState {
                agent: a.into(),
                state: Presence::Available,
                idle_code: None,
            },
            T0,
        )
        .unwrap();
    }

    #[test]
    fn a_new_queue_answers_with_its_figures_and_an_agent_gets_the_default_capacity() {
        let mut f = floor();
        match f.execute(
            Command::CreateQueue {
                id: "q2".into(),
                name: "Q2".into(),
                routing_steps: Vec::new(),
                hours: None,
                survey: None,
                wait_limit: None,
                service_level_ms: None,
                place_updates: None,
                overflow: None,
            },
            T0,
        ) {
            Ok(Reply::Queue(s)) => assert_eq!(
                s,
                QueueStats {
                    id: "q2".into(),
                    name: "Q2".into(),
                    waiting: 0,
                    longest_wait_ms: 0,
                    agents_available: 0,
                    routing_steps: Vec::new(),
                    hours: None,
                    survey: None,
                    wait_limit: None,
                    service_level_ms: 60_000,
                    place_updates: None,
                    overflow: None,
                }
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(f.agent("a1").map(|a| a.capacity), Some(DEFAULT_CAPACITY));
    }

    #[test]
    fn a_brief_answer_carries_the_id_and_a_full_one_the_transcript() {
        let mut f = floor();
        let c = open(&mut f);
        available(&mut f, "a1");
        let accept = |who: &str| Command::Accept {
            agent: who.into(),
            conversation: c.clone(),
        };
        assert!(matches!(
            f.execute_for(accept("a1"), T0, Detail::Brief),
            Ok(Reply::ConversationId(ref id)) if *id == c
        ));
        let full = f.execute(
            Command::SetPriority {
                conversation: c.clone(),
                priority: 1,
            },
            T0,
        );
        // A priority change needs a waiting conversation: refused, and either way the
        // refusal is the same whatever the detail.
        assert!(full.is_err());
        let message = f.execute_for(
            Command::Send {
                agent: "a1".into(),
                conversation: c.clone(),
                text: "hi".into(),
            },
            T0,
            Detail::Brief,
        );
        assert!(matches!(message, Ok(Reply::Message(_))));
        match f.execute(
            Command::transfer("a1".into(), c.clone(), None, Some("q".into()), None).unwrap(),
            T0,
        ) {
            Ok(Reply::Conversation(full)) => {
                let texts: Vec<&str> = full.transcript.iter().map(|m| m.text.as_str()).collect();
                assert!(
                    texts.contains(&"hello") && texts.contains(&"hi"),
                    "the whole transcript: {texts:?}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_admin_writes_and_ends_as_the_customer() {
        let admin = Principal::Admin;
        let agent = Principal::Agent("a1".into());
        assert!(matches!(
            Command::write(&admin, "c-1", "x".into()),
            Ok(Command::CustomerReply { .. })
        ));
        assert!(matches!(Command::write(&agent, "c-1", "x".into()), Ok(Command::Send { agent, .. }) if agent == "a1"));
        assert!(matches!(Command::end(&admin, "c-1"), Ok(Command::CustomerEnd { .. })));
        assert!(matches!(Command::end(&agent, "c-1"), Ok(Command::End { agent, .. }) if agent == "a1"));
        let sup = Principal::Supervisor("s1".into());
        assert_eq!(Command::write(&sup, "c-1", "x".into()).unwrap_err().code(), "forbidden");
        assert_eq!(Command::end(&sup, "c-1").unwrap_err().code(), "forbidden");
    }

    /// Who may read a conversation, through its whole life: offered, active, owing a
    /// wrap-up, and finished (read back as the store would hand it).
    #[test]
    fn a_transfer_names_exactly_one_target() {
        let t = |a: Option<&str>, q: Option<&str>| {
            Command::transfer("a1".into(), "c-1".into(), a.map(Into::into), q.map(Into::into), None)
        };
        assert!(matches!(t(Some("a2"), None), Ok(Command::TransferToAgent { target, .. }) if target == "a2"));
        assert!(matches!(t(None, Some("q2")), Ok(Command::TransferToQueue { queue, .. }) if queue == "q2"));
        for bad in [t(None, None), t(Some("a2"), Some("q2"))] {
            assert_eq!(bad.map(|_| ()).unwrap_err().code(), "invalid_input");
        }
    }

    #[test]
    fn who_may_read_a_conversation() {
        let mut f = floor();
        available(&mut f, "a1");
        let c = open(&mut f);
        let (admin, a1, a2) = (
            Principal::Admin,
            Principal::Agent("a1".into()),
            Principal::Agent("a2".into()),
        );
        let check = |f: &Floor, conv: &Conversation, expect: [bool; 3]| {
            assert_eq!(
                [f.may_read(&admin, conv), f.may_read(&a1, conv), f.may_read(&a2, conv)],
                expect,
                "state {:?}",
                conv.state
            );
        };
        let snapshot = |f: &Floor| f.conversation(&c).cloned().unwrap();
        check(&f, &snapshot(&f), [true, true, false]); // offered to a1
        f.execute(
            Command::Accept {
                agent: "a1".into(),
                conversation: c.clone(),
            },
            T0,
        )
        .unwrap();
        check(&f, &snapshot(&f), [true, true, false]); // a1 owns it
        f.execute(Command::end(&a1, &c).unwrap(), T0).unwrap();
        let ended = snapshot(&f);
        assert_eq!(ended.state, ConversationState::Ended);
        check(&f, &ended, [true, true, false]); // a1 owes the wrap-up
        f.execute(
            Command::Wrapup {
                agent: "a1".into(),
                conversation: c.clone(),
                reason: "resolved".into(),
            },
            T0,
        )
        .unwrap();
        let finished = snapshot(&f);
        f.take_changes();
        assert!(f.conversation(&c).is_none(), "the finished conversation left the floor");
        check(&f, &finished, [true, true, false]); // a1 handled it
    }

    /// A customer reads its own conversations on its entry point, and nothing else: to it
    /// another customer's conversation, or one on another entry point, does not exist.
    #[test]
    fn a_customer_reads_only_its_own_conversations() {
        let mut f = floor();
        let c = open(&mut f);
        let conv = f.conversation(&c).cloned().unwrap();
        let customer = |ep: &str, id: &str| Principal::Customer {
            entry_point: ep.into(),
            customer: id.into(),
        };
        assert!(f.may_read(&customer("ep", "u"), &conv));
        assert!(f.check_may_read(&customer("ep", "u"), &conv).is_ok());
        for other in [customer("ep", "u2"), customer("ep2", "u")] {
            assert!(!f.may_read(&other, &conv));
            assert_eq!(
                f.check_may_read(&other, &conv).unwrap_err().code(),
                "unknown_conversation"
            );
        }
        // A customer principal acts through its own channel only.
        for e in [
            Command::write(&customer("ep", "u"), &c, "hi".into()).unwrap_err(),
            Command::end(&customer("ep", "u"), &c).unwrap_err(),
        ] {
            assert_eq!(e.code(), "forbidden");
        }
    }

    #[test]
    fn a_command_on_a_conversation_the_floor_does_not_hold() {
        let act = FinishedAct::NeedsOpen;
        assert_eq!(
            Floor::refusal_for_unknown("c-9".into(), &act, None),
            CoreError::UnknownConversation("c-9".into())
        );
        let mut f = floor();
        available(&mut f, "a1");
        let c = open(&mut f);
        let mut stored = f.conversation(&c).cloned().unwrap();
        stored.state = ConversationState::Ended;
        assert_eq!(
            Floor::refusal_for_unknown(c.clone(), &act, Some(&stored)),
            CoreError::ConversationEnded(c)
        );
    }
}
