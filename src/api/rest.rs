//! REST handlers: authenticate, turn the body into an engine [`Command`] (always through
//! [`crate::engine::Engine::exec`], the one way a change reaches the engine) or a
//! [`Query`], and turn the answer into a wire type. No routing rule lives here; the engine decides,
//! and [`super::error`] maps its refusals to statuses.
//!
//! [`Query`]: crate::engine::Query

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::auth::{self, Caller, Tenanted};
use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::core::{self, valid_id, Conversation, CoreError, Customer};
use crate::engine::{Command, EngineError, Reply};

pub(crate) type Res = Result<HttpResponse, ApiError>;

/// A path id: 400 when it is not an id at all.
pub(crate) fn id(raw: &str) -> Result<&str, ApiError> {
    if valid_id(raw) {
        Ok(raw)
    } else {
        Err(ApiError::bad_request(
            "invalid_input",
            "ids are 1 to 64 characters from [A-Za-z0-9_.-]",
        ))
    }
}

/// An answer of another kind than the call expects (a bug, 500).
pub(crate) fn unexpected(expected: &'static str, got: &Reply) -> ApiError {
    EngineError::UnexpectedReply {
        expected,
        got: got.name(),
    }
    .into()
}

async fn conversation_or_404(state: &AppState, cid: &str) -> Result<Conversation, ApiError> {
    state
        .engine
        .conversation(cid)
        .await?
        .ok_or_else(|| CoreError::UnknownConversation(cid.into()).into())
        .map_err(|e: EngineError| ApiError::from(e))
}

/// The conversation as it is after an action, for the action's answer.
async fn conversation_after(state: &AppState, cid: &str, status: StatusCode) -> Res {
    let c = conversation_or_404(state, cid).await?;
    Ok(HttpResponse::build(status).json(ConversationDto::from(&c)))
}

// ----- queues -----

/// Creates a queue.
#[utoipa::path(post, path = "/api/v1/queues", tag = "queues", request_body = CreateQueue,
    responses(
        (status = 201, description = "The queue", body = QueueDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 409, description = "A queue with this id exists (`already_exists`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_queue(state: Tenanted, caller: Caller, body: web::Json<CreateQueue>) -> Res {
    caller.admin()?;
    let body = body.into_inner();
    let dto = match state
        .engine
        .exec(Command::CreateQueue {
            id: body.id,
            name: body.name,
            routing_steps: super::dto::steps(body.routing_steps),
            hours: body.hours.map(|h| std::sync::Arc::new(h.into())),
            survey: body.survey.map(|s| std::sync::Arc::new(s.into())),
            wait_limit: body.wait_limit.map(Into::into),
            service_level_ms: body.service_level_ms,
            place_updates: body.place_updates.map(|p| Box::new(p.into())),
            overflow: body.overflow.map(|o| Box::new(o.into())),
        })
        .await?
    {
        Reply::Queue(q) => QueueDto::from(&q),
        r => return Err(unexpected("queue", &r)),
    };
    Ok(HttpResponse::Created().json(dto))
}

/// Lists queues with their live figures.
#[utoipa::path(get, path = "/api/v1/queues", tag = "queues",
    responses(
        (status = 200, description = "Every queue", body = [QueueDto]),
        (status = 401, description = "No or wrong token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_queues(state: Tenanted, _caller: Caller) -> Res {
    let v: Vec<QueueDto> = state.engine.queues().await?.iter().map(QueueDto::from).collect();
    Ok(HttpResponse::Ok().json(v))
}

/// One queue with its live figures.
#[utoipa::path(get, path = "/api/v1/queues/{id}", tag = "queues",
    params(("id" = String, Path, description = "Queue id")),
    responses(
        (status = 200, description = "The queue", body = QueueDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 404, description = "Unknown queue", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_queue(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let _ = caller;
    let qid = id(&path)?;
    match state.engine.queue(qid).await? {
        Some(q) => Ok(HttpResponse::Ok().json(QueueDto::from(&q))),
        None => Err(EngineError::from(CoreError::UnknownQueue(qid.into())).into()),
    }
}

/// Changes a queue: its business hours, its bound on waiting conversations (the next
/// customer who writes meets them), its service level threshold, its place-in-line
/// messages or its overflow (which conversations waiting in it meet at once).
#[utoipa::path(patch, path = "/api/v1/queues/{id}", tag = "queues", request_body = PatchQueue,
    params(("id" = String, Path, description = "Queue id")),
    responses(
        (status = 200, description = "The queue", body = QueueDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown queue", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_queue(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<PatchQueue>) -> Res {
    caller.admin()?;
    let queue = id(&path)?.to_string();
    let b = body.into_inner();
    if b.hours.is_none()
        && b.wait_limit.is_none()
        && b.service_level_ms.is_none()
        && b.place_updates.is_none()
        && b.overflow.is_none()
        && b.survey.is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_input",
            "give hours, wait_limit, service_level_ms, place_updates, overflow or survey (a value, or null)",
        ));
    }
    match state
        .engine
        .exec(Command::UpdateQueue {
            queue,
            hours: b.hours.map(|h| h.map(|h| std::sync::Arc::new(h.into()))),
            survey: b.survey.map(|s| s.map(|s| std::sync::Arc::new(s.into()))),
            wait_limit: b.wait_limit.map(|l| l.map(Into::into)),
            service_level_ms: b.service_level_ms,
            place_updates: b.place_updates.map(|p| p.map(Into::into)),
            overflow: b.overflow.map(|o| o.map(|o| Box::new(o.into()))),
        })
        .await?
    {
        Reply::Queue(q) => Ok(HttpResponse::Ok().json(QueueDto::from(&q))),
        r => Err(unexpected("queue", &r)),
    }
}

// ----- entry points -----

/// Creates an entry point feeding a queue.
#[utoipa::path(post, path = "/api/v1/entry-points", tag = "entry points", request_body = CreateEntryPoint,
    responses(
        (status = 201, description = "The entry point", body = EntryPointDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown queue", body = ErrorBody),
        (status = 409, description = "Exists already", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_entry_point(state: Tenanted, caller: Caller, body: web::Json<CreateEntryPoint>) -> Res {
    caller.admin()?;
    let b = body.into_inner();
    let ep = core::EntryPoint {
        id: b.id,
        name: b.name,
        queue: b.queue,
        page_id: b.page_id,
        page_access_token: b.page_access_token,
        priority: b.priority,
        routing_steps: super::dto::steps(b.routing_steps),
        messenger: core::messenger::PageSettings {
            thread_control: b.thread_control.into(),
            return_to_app_id: b.return_to_app_id,
            ..Default::default()
        },
    };
    // A page belongs to one entry point in one tenant; the other tenant is not named.
    let _claim = match &ep.page_id {
        Some(page) => {
            let claim = state.tenants.claiming_pages().await;
            if state.tenants.page_elsewhere(page, state.tenant()).await?.is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "page_in_use",
                    format!("page {page} belongs to an entry point already"),
                ));
            }
            Some(claim)
        }
        None => None,
    };
    match state.engine.exec(Command::CreateEntryPoint(ep)).await? {
        Reply::EntryPoint(ep) => Ok(HttpResponse::Created().json(EntryPointDto::from(&ep))),
        r => Err(unexpected("entry_point", &r)),
    }
}

/// Sets a new page access token: the entry point's `channel_state` is `ok` again, and
/// the Messenger messages that waited for a token go out in order.
#[utoipa::path(patch, path = "/api/v1/entry-points/{id}", tag = "entry points", request_body = PatchEntryPoint,
    responses(
        (status = 200, description = "The entry point", body = EntryPointDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown entry point", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_entry_point(
    state: Tenanted,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PatchEntryPoint>,
) -> Res {
    caller.admin()?;
    let entry_point = id(&path)?.to_string();
    let b = body.into_inner();
    let mut commands = Vec::new();
    if b.thread_control.is_some() || b.return_to_app_id.is_some() {
        commands.push(Command::Messenger(
            core::messenger::MessengerCommand::SetThreadControl {
                entry_point: entry_point.clone(),
                thread_control: b.thread_control.unwrap_or_default().into(),
                return_to_app_id: b.return_to_app_id,
            },
        ));
    }
    if let Some(token) = b.page_access_token {
        commands.push(Command::Messenger(core::messenger::MessengerCommand::SetPageToken {
            entry_point,
            token,
        }));
    }
    if commands.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "give page_access_token, thread_control or return_to_app_id",
        ));
    }
    // One message to the engine; the first refusal (nothing of it changed) is answered.
    let mut last = None;
    for answer in state.engine.exec_batch(commands).await {
        last = Some(answer?);
    }
    match last {
        Some(Reply::EntryPoint(ep)) => Ok(HttpResponse::Ok().json(EntryPointDto::from(&ep))),
        Some(r) => Err(unexpected("entry_point", &r)),
        None => Err(ApiError::bad_request("invalid_input", "nothing to change")),
    }
}

/// Lists entry points (page access tokens are never shown).
#[utoipa::path(get, path = "/api/v1/entry-points", tag = "entry points",
    responses(
        (status = 200, description = "Every entry point", body = [EntryPointDto]),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_entry_points(state: Tenanted, caller: Caller) -> Res {
    caller.reader()?;
    let v: Vec<EntryPointDto> = state
        .engine
        .entry_points()
        .await?
        .iter()
        .map(EntryPointDto::from)
        .collect();
    Ok(HttpResponse::Ok().json(v))
}

// ----- agents -----

/// Creates an agent (logged out) and returns its token, once.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = CreateAgent,
    responses(
        (status = 201, description = "The agent with its token", body = AgentCreatedDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown queue", body = ErrorBody),
        (status = 409, description = "Exists already", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_agent(state: Tenanted, caller: Caller, body: web::Json<CreateAgent>) -> Res {
    caller.admin()?;
    let b = body.into_inner();
    let password_hash = super::signin::hash_optional(&state, b.password).await?;
    let token = state.new_token();
    let reply = state
        .engine
        .exec(Command::CreateAgent {
            id: b.id,
            name: b.name,
            queues: b.queues,
            capacity: b.capacity,
            credential: Some(auth::credential_of(&token)),
            password_hash,
            skills: b.skills,
        })
        .await?;
    match reply {
        Reply::Agent(a) => Ok(HttpResponse::Created().json(AgentCreatedDto {
            agent: AgentDto::from(&*a),
            token,
        })),
        r => Err(unexpected("agent", &r)),
    }
}

/// Lists agents, filtered: what the transfer and conference dialogs need.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(AgentFilter),
    responses(
        (status = 200, description = "Matching agents, by id", body = [AgentDto]),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_agents(state: Tenanted, _caller: Caller, filter: web::Query<AgentFilter>) -> Res {
    let f = filter.into_inner();
    let want = f.state.map(core::Presence::from);
    let v: Vec<AgentDto> = state
        .engine
        .agents()
        .await?
        .iter()
        .filter(|a| want.map_or(true, |s| a.presence == s))
        .filter(|a| f.queue.as_deref().map_or(true, |q| a.serves(q)))
        .filter(|a| matches(f.q.as_deref(), &[&a.id, &a.name]))
        .filter(|a| f.skill.as_deref().map_or(true, |s| a.skills.contains_key(s)))
        .filter(|a| f.eligible.map_or(true, |e| a.eligible() == e))
        .map(AgentDto::from)
        .collect();
    Ok(HttpResponse::Ok().json(v))
}

/// Replaces an agent's skills; routing runs at once.
#[utoipa::path(put, path = "/api/v1/agents/{id}/skills", tag = "agents", request_body = SetSkills,
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 200, description = "The agent", body = AgentDto),
        (status = 400, description = "Bad skill name or level", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_skills(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<SetSkills>) -> Res {
    caller.admin()?;
    let aid = id(&path)?;
    let reply = state
        .engine
        .exec(Command::SetSkills {
            agent: aid.into(),
            skills: body.into_inner().skills,
        })
        .await?;
    match reply {
        Reply::Agent(a) => Ok(HttpResponse::Ok().json(AgentDto::from(&*a))),
        r => Err(unexpected("agent", &r)),
    }
}

/// One agent with its offers, conversations and owed wrap-ups.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 200, description = "The agent", body = AgentDetailDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Another agent", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_agent(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let aid = id(&path)?;
    caller.admin_or_agent(aid)?;
    match state.engine.agent(aid).await? {
        Some(d) => Ok(HttpResponse::Ok().json(AgentDetailDto::from(&d))),
        None => Err(EngineError::from(CoreError::UnknownAgent(aid.into())).into()),
    }
}

/// The calling agent with its offers, conversations and owed wrap-ups: how a desktop
/// checks a token and learns whose it is.
#[utoipa::path(get, path = "/api/v1/agents/me", tag = "agents",
    responses(
        (status = 200, description = "The calling agent", body = AgentDetailDto),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_me(state: Tenanted, caller: Caller) -> Res {
    let aid = caller.agent()?;
    match state.engine.agent(aid).await? {
        Some(d) => Ok(HttpResponse::Ok().json(AgentDetailDto::from(&d))),
        None => Err(crate::engine::EngineError::from(CoreError::UnknownAgent(aid.into())).into()),
    }
}

/// Issues a new token for an agent; the old one stops working.
#[utoipa::path(post, path = "/api/v1/agents/{id}/token", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses(
        (status = 200, description = "The new token", body = TokenDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown agent", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn reissue_token(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    caller.admin()?;
    super::signin::reissue(&state, crate::core::AccountRef::agent(path.into_inner())).await
}

/// Sets the calling agent's presence; from `logged_out`, `available` or `idle` also logs in.
#[utoipa::path(put, path = "/api/v1/agents/me/state", tag = "agents", request_body = SetState,
    responses(
        (status = 200, description = "The agent", body = AgentDto),
        (status = 400, description = "Bad input, unknown idle code, `rona`", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 409, description = "Logging out while holding conversations (`agent_busy`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_my_state(state: Tenanted, caller: Caller, body: web::Json<SetState>) -> Res {
    let agent = caller.agent()?;
    let b = body.into_inner();
    let a = state
        .engine
        .set_state(agent, b.state.into(), b.idle_code.as_deref())
        .await?;
    Ok(HttpResponse::Ok().json(AgentDto::from(&a)))
}

// ----- conversations -----

/// A customer message over REST: opens the customer's conversation or joins the open one.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", request_body = CreateConversation,
    responses(
        (status = 201, description = "The conversation the message opened or joined", body = ConversationDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown entry point", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 503, description = "The engine is overloaded (`overloaded`, with `Retry-After`) or cannot write (`store_unavailable`)", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_conversation(state: Tenanted, caller: Caller, body: web::Json<CreateConversation>) -> Res {
    caller.admin()?;
    if let Err(e) = state.engine.admit() {
        crate::metrics::OVERLOAD_REFUSED.with_label_values(&["rest"]).inc();
        return Err(e.into());
    }
    let b = body.into_inner();
    let reply = state
        .engine
        .exec(Command::CustomerMessage {
            entry_point: b.entry_point,
            customer: Customer {
                id: b.customer.id,
                name: b.customer.name,
            },
            text: b.text,
            channel: core::Channel::Rest,
            open: core::Opening {
                priority: b.priority,
                routing_steps: b.routing_steps.map(super::dto::steps),
                last_owner: None,
            },
        })
        .await?;
    // A satisfaction survey's answer names the rated conversation (maybe complete).
    let c = state.engine.conversation_of(reply).await?;
    Ok(HttpResponse::Created().json(ConversationDto::from(&c)))
}

/// Changes a waiting conversation's priority; the queue reorders at once.
#[utoipa::path(put, path = "/api/v1/conversations/{id}/priority", tag = "conversations", request_body = SetPriority,
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the admin", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "Not queued or offered (`not_queued`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn set_priority(
    state: Tenanted,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<SetPriority>,
) -> Res {
    caller.admin()?;
    let cid = id(&path)?;
    let reply = state
        .engine
        .exec(Command::SetPriority {
            conversation: cid.into(),
            priority: body.into_inner().priority,
        })
        .await?;
    match reply {
        Reply::Conversation(c) => Ok(HttpResponse::Ok().json(ConversationDto::from(&*c))),
        r => Err(unexpected("conversation", &r)),
    }
}

/// One conversation with its transcript.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent not in it", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn get_conversation(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let cid = id(&path)?;
    let c = state.engine.conversation_for(cid, caller).await?;
    Ok(HttpResponse::Ok().json(ConversationDto::from(&c)))
}

/// Accepts an offer made to the calling agent.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/accept", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation, now active with the caller", body = ConversationDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "`offer_expired`, `not_offered_to_you`", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn accept(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let agent = caller.agent()?;
    let cid = id(&path)?;
    let cmd = Command::Accept {
        agent: agent.into(),
        conversation: cid.into(),
    };
    match state.engine.exec(cmd).await? {
        Reply::Conversation(c) => Ok(HttpResponse::Ok().json(ConversationDto::from(&*c))),
        r => Err(unexpected("conversation", &r)),
    }
}

/// Writes in a conversation: as the agent (owner or guest), or, with the admin token, as
/// the customer.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")), request_body = SendText,
    responses(
        (status = 201, description = "The message as the transcript keeps it", body = MessageDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent not in it", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "Not active, or ended", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn send_message(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<SendText>) -> Res {
    let cid = id(&path)?;
    let text = body.into_inner().text;
    let cmd = Command::write(&caller, cid, text).map_err(EngineError::from)?;
    match state.engine.exec(cmd).await? {
        Reply::Message(m) => Ok(HttpResponse::Created().json(MessageDto::from(&m))),
        r => Err(unexpected("message", &r)),
    }
}

/// Typing: with the admin token as the customer (the agents in the conversation see it),
/// with an agent's as that agent (a Messenger customer sees it), as the desktop's `typing`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/typing", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")), request_body = SetTyping,
    responses(
        (status = 204, description = "Taken (told within the engine's bound on how often)"),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "A supervisor, or an agent not in it", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "Ended", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn typing(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<SetTyping>) -> Res {
    let cid = id(&path)?;
    let cmd = Command::typing(&caller, cid, body.into_inner().on).map_err(EngineError::from)?;
    state.engine.exec(cmd).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds an internal note: for the agents, never sent to the customer
/// (docs/API-NOTES.md "Internal notes").
#[utoipa::path(post, path = "/api/v1/conversations/{id}/notes", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")), request_body = SendText,
    responses(
        (status = 201, description = "The note as the transcript keeps it (`internal: true`)", body = MessageDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an agent in it, or not an agent", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "Ended (and no wrap-up owed by the caller)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn add_note(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<SendText>) -> Res {
    let agent = caller.agent()?;
    let cid = id(&path)?;
    let cmd = Command::AddNote {
        agent: agent.into(),
        conversation: cid.into(),
        text: body.into_inner().text,
    };
    match state.engine.exec(cmd).await? {
        Reply::Message(m) => Ok(HttpResponse::Created().json(MessageDto::from(&m))),
        r => Err(unexpected("message", &r)),
    }
}

/// Transfers to an agent or a queue; the caller leaves at once and owes a wrap-up.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/transfer", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")), request_body = Transfer,
    responses(
        (status = 202, description = "The offer is made (or the conversation queued); the outcome comes as events", body = ConversationDto),
        (status = 400, description = "Bad input (exactly one of `agent`, `queue`)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "Unknown conversation, agent or queue", body = ErrorBody),
        (status = 409, description = "Does not fit the state (e.g. the target is not available)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn transfer(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<Transfer>) -> Res {
    let agent = caller.agent()?;
    let cid = id(&path)?;
    let Transfer {
        agent: target,
        queue,
        note,
    } = body.into_inner();
    let c = match state
        .engine
        .exec(Command::transfer(agent.into(), cid.into(), target, queue, note)?)
        .await?
    {
        Reply::Conversation(c) => c,
        r => return Err(unexpected("conversation", &r)),
    };
    Ok(HttpResponse::Accepted().json(ConversationDto::from(&*c)))
}

/// Invites a second agent as conference guest.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/conference", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")), request_body = Invite,
    responses(
        (status = 202, description = "The offer is made; the conversation shows `conference_requested`", body = ConversationDto),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "Unknown conversation or agent", body = ErrorBody),
        (status = 409, description = "A conference is already on, or the agent is not available", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn conference(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<Invite>) -> Res {
    let agent = caller.agent()?;
    let cid = id(&path)?;
    let Invite { agent: target, note } = body.into_inner();
    let cmd = Command::Conference {
        agent: agent.into(),
        conversation: cid.into(),
        target,
        note,
    };
    match state.engine.exec(cmd).await? {
        Reply::Conversation(c) => Ok(HttpResponse::Accepted().json(ConversationDto::from(&*c))),
        r => Err(unexpected("conversation", &r)),
    }
}

/// The guest leaves the conference and owes a wrap-up.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/conference/exit", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation after the exit", body = ConversationDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the guest", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "No conference", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn exit_conference(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let agent = caller.agent()?;
    let cid = id(&path)?;
    let cmd = Command::ExitConference {
        agent: agent.into(),
        conversation: cid.into(),
    };
    state.engine.exec(cmd).await?;
    conversation_after(&state, cid, StatusCode::OK).await
}

/// The owner ends the conference for everyone; owner and guest each owe a wrap-up.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/conference/end", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The ended conversation", body = ConversationDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "No conference", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn end_conference(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let agent = caller.agent()?;
    let cid = id(&path)?;
    let cmd = Command::EndConference {
        agent: agent.into(),
        conversation: cid.into(),
    };
    state.engine.exec(cmd).await?;
    conversation_after(&state, cid, StatusCode::OK).await
}

/// Ends the conversation: as the owner (who then owes a wrap-up), or, with the admin
/// token, as the customer.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/end", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The ended conversation", body = ConversationDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "Already ended, or not active", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn end_conversation(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let cid = id(&path)?;
    state
        .engine
        .exec(Command::end(&caller, cid).map_err(EngineError::from)?)
        .await?;
    conversation_after(&state, cid, StatusCode::OK).await
}

/// Submits the caller's wrap-up for a conversation it left; frees the slot.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/wrapup", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")), request_body = Wrapup,
    responses(
        (status = 200, description = "The conversation", body = ConversationDto),
        (status = 400, description = "Bad input or unknown reason", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 409, description = "No wrap-up owed (`no_wrapup_owed`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn wrapup(state: Tenanted, caller: Caller, path: web::Path<String>, body: web::Json<Wrapup>) -> Res {
    let agent = caller.agent()?;
    let cid = id(&path)?;
    let cmd = Command::Wrapup {
        agent: agent.into(),
        conversation: cid.into(),
        reason: body.into_inner().reason,
    };
    state.engine.exec(cmd).await?;
    conversation_after(&state, cid, StatusCode::OK).await
}

// ----- reference lists -----

/// The caller's tenant's wrap-up reasons (the config's, unless the tenant has its own),
/// filtered by `q`.
#[utoipa::path(get, path = "/api/v1/wrapup-reasons", tag = "reference", params(CodeFilter),
    responses(
        (status = 200, description = "Matching reasons of the caller's tenant, in their order", body = [CodeDto]),
        (status = 401, description = "No or wrong token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn wrapup_reasons(state: Tenanted, _caller: Caller, filter: web::Query<CodeFilter>) -> Res {
    let q = filter.into_inner().q;
    let v: Vec<CodeDto> = state
        .engine
        .rules()
        .wrapup_reasons
        .iter()
        .filter(|c| matches(q.as_deref(), &[&c.code, &c.label]))
        .map(CodeDto::from)
        .collect();
    Ok(HttpResponse::Ok().json(v))
}

/// The caller's tenant's idle codes (the config's, unless the tenant has its own).
#[utoipa::path(get, path = "/api/v1/idle-codes", tag = "reference",
    responses(
        (status = 200, description = "Every idle code of the caller's tenant, in their order", body = [CodeDto]),
        (status = 401, description = "No or wrong token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn idle_codes(state: Tenanted, _caller: Caller) -> Res {
    let v: Vec<CodeDto> = state.engine.rules().idle_codes.iter().map(CodeDto::from).collect();
    Ok(HttpResponse::Ok().json(v))
}

// ----- operations -----

/// 200 when the store takes writes and the engine answers a query in time.
/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    super::tenants::scrape(&state).await;
    metrics_text()
}

/// Every metric of the process in Prometheus' text format (a cluster node's front server
/// answers it too).
pub(crate) fn metrics_text() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render())
}
