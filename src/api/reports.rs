//! Reports over HTTP (../shared/API.md "Reports and events out"): the records of complete
//! conversations, `GET /api/v1/reports/conversations`, paged by a cursor.
//!
//! The records are read from the tenant's store on a blocking thread, never on the
//! engine's: a report that scans many records does not hold up routing. What this slice
//! does not build yet (transcript search, CSV, the aggregate reports) is listed in
//! docs/API-NOTES.md "Reports".

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Tenanted};
use super::dto::{time, ChannelKind, CustomerDto};
use super::error::{ApiError, ErrorBody};
use crate::core::{self, valid_id, ConversationRecord, Outcome, RecordCursor, RecordFilter, RecordQuery};
use crate::engine::EngineError;

type Res = Result<HttpResponse, ApiError>;

/// Records per page when `limit` is not given, and the most one page may hold.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Query of `GET /api/v1/reports/conversations`. Every filter given must hold.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    /// Arrived at or after this time (RFC 3339, e.g. `2026-12-05T00:00:00Z`).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Arrived before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Passed through this queue.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub queue: Option<String>,
    /// Handled (accepted, as owner or guest) by this agent.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub agent: Option<String>,
    /// `handled`, `abandoned`, `transferred` or `closed_inactive`.
    #[param(value_type = Option<OutcomeDto>)]
    pub outcome: Option<String>,
    /// The customer's channel id.
    #[param(min_length = 1, max_length = 256)]
    pub customer: Option<String>,
    /// At most this many records (1 to 1000; default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next` of the previous page: the records after it (opaque).
    #[param(pattern = r"^[0-9]{1,20}\.[A-Za-z0-9_.-]{1,64}$")]
    pub after: Option<String>,
}

/// How a conversation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeDto {
    Handled,
    Abandoned,
    Transferred,
    ClosedInactive,
}

impl From<Outcome> for OutcomeDto {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Handled => OutcomeDto::Handled,
            Outcome::Abandoned => OutcomeDto::Abandoned,
            Outcome::Transferred => OutcomeDto::Transferred,
            Outcome::ClosedInactive => OutcomeDto::ClosedInactive,
        }
    }
}

/// One agent's part in a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordAgentDto {
    pub agent: String,
    /// Took part only as a conference guest.
    pub guest: bool,
    /// First accepted.
    pub joined_at: DateTime<Utc>,
    /// Last left (transfer, exit, end).
    pub left_at: DateTime<Utc>,
    /// Time in the conversation, accept to leaving, in milliseconds.
    pub handle_ms: u64,
    pub wrapup_reason: Option<String>,
    pub wrapped_up_at: Option<DateTime<Utc>>,
    /// The engine recorded the default reason (`wrapup.auto_after_ms`).
    pub wrapup_automatic: bool,
}

/// The record of a complete conversation (ended, every wrap-up in).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationRecordDto {
    /// The conversation's id.
    pub id: String,
    pub channel: ChannelKind,
    pub entry_point: Option<String>,
    pub source_page: String,
    pub customer: CustomerDto,
    /// Queues it passed through, in order.
    pub queues: Vec<String>,
    /// Agents that accepted it, in the order they first did (a transfer chain).
    pub agents: Vec<RecordAgentDto>,
    pub arrived_at: DateTime<Utc>,
    pub first_offered_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub first_agent_reply_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    /// The last wrap-up; null when none was owed.
    pub wrapped_up_at: Option<DateTime<Utc>>,
    pub ended_reason: String,
    pub outcome: OutcomeDto,
    /// The last owner's wrap-up reason.
    pub wrapup_reason: Option<String>,
    pub rona_count: u32,
    pub transfers: u32,
}

impl From<ConversationRecord> for ConversationRecordDto {
    fn from(r: ConversationRecord) -> Self {
        ConversationRecordDto {
            id: r.id,
            channel: r.channel.into(),
            entry_point: r.entry_point,
            source_page: r.source_page,
            customer: CustomerDto {
                id: r.customer.id,
                name: r.customer.name,
            },
            queues: r.queues,
            agents: r
                .agents
                .into_iter()
                .map(|a| RecordAgentDto {
                    agent: a.agent,
                    guest: a.guest,
                    joined_at: time(a.joined_at),
                    left_at: time(a.left_at),
                    handle_ms: a.handle_ms,
                    wrapup_reason: a.wrapup_reason,
                    wrapped_up_at: a.wrapped_up_at.map(time),
                    wrapup_automatic: a.wrapup_automatic,
                })
                .collect(),
            arrived_at: time(r.arrived_at),
            first_offered_at: r.first_offered_at.map(time),
            accepted_at: r.accepted_at.map(time),
            first_agent_reply_at: r.first_agent_reply_at.map(time),
            ended_at: time(r.ended_at),
            wrapped_up_at: r.wrapped_up_at.map(time),
            ended_reason: r.ended_reason,
            outcome: r.outcome.into(),
            wrapup_reason: r.wrapup_reason,
            rona_count: r.rona_count,
            transfers: r.transfers,
        }
    }
}

/// A page of records.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecordsPageDto {
    /// In arrival order (then id).
    pub records: Vec<ConversationRecordDto>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_input", message)
}

/// An RFC 3339 time as milliseconds since the epoch (times before 1970 are refused).
fn millis(name: &str, raw: &str) -> Result<core::Millis, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .ok_or_else(|| invalid(format!("{name} must be an RFC 3339 time, e.g. 2026-12-05T00:00:00Z")))
}

fn id_param(name: &str, raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(v) if !valid_id(&v) => Err(invalid(format!(
            "{name} is an id: 1 to 64 characters from [A-Za-z0-9_.-]"
        ))),
        v => Ok(v),
    }
}

impl RecordsQuery {
    /// The store's query, or 400 `invalid_input` naming the bad parameter.
    fn parse(self) -> Result<RecordQuery, ApiError> {
        let from = self.from.as_deref().map(|v| millis("from", v)).transpose()?;
        let to = self.to.as_deref().map(|v| millis("to", v)).transpose()?;
        if let (Some(f), Some(t)) = (from, to) {
            if t < f {
                return Err(invalid("to is before from"));
            }
        }
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some(o) => Some(
                Outcome::parse(o)
                    .ok_or_else(|| invalid("outcome is one of handled, abandoned, transferred, closed_inactive"))?,
            ),
        };
        let customer = match self.customer {
            Some(c) if c.is_empty() || c.len() > 256 => {
                return Err(invalid("customer must be 1 to 256 characters"));
            }
            c => c,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(invalid(format!("limit is 1 to {MAX_LIMIT}")));
        }
        let after = match self.after.as_deref() {
            None => None,
            Some(a) => Some(RecordCursor::decode(a).ok_or_else(|| invalid("after is not a cursor this API gave"))?),
        };
        Ok(RecordQuery {
            filter: RecordFilter {
                from,
                to,
                queue: id_param("queue", self.queue)?,
                agent: id_param("agent", self.agent)?,
                outcome,
                customer,
            },
            after,
            limit,
        })
    }
}

/// Records of complete conversations (ended, every wrap-up in), oldest arrival first.
#[utoipa::path(get, path = "/api/v1/reports/conversations", tag = "reports", operation_id = "conversation_records",
    params(RecordsQuery),
    responses(
        (status = 200, description = "A page of records", body = RecordsPageDto),
        (status = 400, description = "A bad parameter (`invalid_input`)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn conversations(state: Tenanted, caller: Caller, query: web::Query<RecordsQuery>) -> Res {
    caller.reader()?;
    let q = query.into_inner().parse()?;
    let store = state.engine.store().clone();
    let page = web::block(move || store.records(&q))
        .await
        .map_err(|e| ApiError::from(EngineError::Store(crate::store::StoreError::Read(e.to_string()))))?
        .map_err(|e| ApiError::from(EngineError::Store(e)))?;
    Ok(HttpResponse::Ok().json(RecordsPageDto {
        next: page.next.as_ref().map(RecordCursor::encode),
        records: page.records.into_iter().map(ConversationRecordDto::from).collect(),
    }))
}

/// The reports routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/reports/conversations").route(web::get().to(conversations)));
}
