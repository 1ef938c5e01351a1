//! The customer's history beside a conversation over HTTP (issue 26 item 6;
//! docs/API-NOTES.md "History"): `GET /api/v1/conversations/{id}/history`.
//!
//! The rule is the core's (`core/history.rs`): the engine says whether the caller may see
//! the history beside the conversation, and where it is ([`EarlierScope`]); the records
//! are read from the tenant's store on a blocking thread, as reports are, never on the
//! engine's; the core picks the earlier conversations among them
//! ([`EarlierScope::select`]). This module only carries that out and names things.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Tenanted};
use super::dto::time;
use super::error::{ApiError, ErrorBody};
use super::reports::{OutcomeDto, MAX_LIMIT};
use super::rest::id;
use crate::core::earlier::EarlierScope;
use crate::core::{ConversationRecord, RecordQuery};
use crate::engine::EngineError;
use crate::store::{Store, StoreError};

type Res = Result<HttpResponse, ApiError>;

/// One agent's part in an earlier conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryAgentDto {
    pub id: String,
    /// The agent's name now; null for an agent deleted since.
    pub name: Option<String>,
    /// Took part only as a conference guest.
    pub guest: bool,
}

/// A complete conversation of the same customer on the same entry point, before this one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EarlierConversationDto {
    /// Its id: `GET /api/v1/conversations/{id}` gives its transcript, while the store keeps
    /// it (`store.retain_ended_days`; the record outlives it).
    pub id: String,
    pub arrived_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    /// The agents that accepted it, in the order they first did.
    pub agents: Vec<HistoryAgentDto>,
    /// The last owner's wrap-up reason (its code).
    pub wrapup_reason: Option<String>,
    /// The label of `wrapup_reason` among the tenant's reasons now; null when there is no
    /// reason, or it is no longer one of them.
    pub wrapup_label: Option<String>,
    pub outcome: OutcomeDto,
    pub ended_reason: String,
}

/// The earlier conversations beside one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryDto {
    /// Newest first, at most 20.
    pub conversations: Vec<EarlierConversationDto>,
}

/// The history's route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/conversations/{id}/history").route(web::get().to(history)));
}

/// The earlier conversations of `scope`: the records of its filter, read page after page,
/// each page chosen from together with those kept so far (so no more than a page and
/// the kept ones are held, however many conversations the customer had).
fn earlier(store: &dyn Store, scope: &EarlierScope) -> Result<Vec<ConversationRecord>, StoreError> {
    let mut query = RecordQuery {
        filter: scope.filter(),
        after: None,
        limit: MAX_LIMIT,
    };
    let mut kept = Vec::new();
    loop {
        let page = store.records(&query)?;
        kept = scope.select(kept.into_iter().chain(page.records));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(kept),
        }
    }
}

/// The customer's earlier conversations on the same entry point, newest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/history", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The complete conversations of the same customer on the same entry point that arrived before it, newest first (at most 20)", body = HistoryDto),
        (status = 400, description = "Not an id", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent not in it (owner or guest, while it is open)", body = ErrorBody),
        (status = 404, description = "Unknown conversation", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn history(state: Tenanted, caller: Caller, path: web::Path<String>) -> Res {
    let cid = id(&path)?;
    let Some(scope) = state.engine.earlier_scope(cid, caller).await? else {
        return Ok(HttpResponse::Ok().json(HistoryDto {
            conversations: Vec::new(),
        }));
    };
    let store = state.engine.store().clone();
    let records = web::block(move || earlier(&*store, &scope))
        .await
        .map_err(|e| ApiError::from(EngineError::Store(StoreError::Read(e.to_string()))))?
        .map_err(|e| ApiError::from(EngineError::Store(e)))?;
    let mut ids: Vec<String> = records
        .iter()
        .flat_map(|r| r.agents.iter().map(|a| a.agent.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    let names: std::collections::HashMap<String, Option<String>> = ids
        .iter()
        .cloned()
        .zip(state.engine.agent_names(ids.clone()).await?)
        .collect();
    let rules = state.engine.rules();
    let label = |code: &str| {
        rules
            .wrapup_reasons
            .iter()
            .find(|c| c.code == code)
            .map(|c| c.label.clone())
    };
    let conversations = records
        .into_iter()
        .map(|r| EarlierConversationDto {
            agents: r
                .agents
                .iter()
                .map(|a| HistoryAgentDto {
                    id: a.agent.clone(),
                    name: names.get(&a.agent).cloned().flatten(),
                    guest: a.guest,
                })
                .collect(),
            wrapup_label: r.wrapup_reason.as_deref().and_then(label),
            id: r.id,
            arrived_at: time(r.arrived_at),
            ended_at: time(r.ended_at),
            wrapup_reason: r.wrapup_reason,
            outcome: r.outcome.into(),
            ended_reason: r.ended_reason,
        })
        .collect();
    Ok(HttpResponse::Ok().json(HistoryDto { conversations }))
}
