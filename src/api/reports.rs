//! Reports over HTTP (../shared/API.md "Reports and events out"): the records of complete
//! conversations (`GET /api/v1/reports/conversations`, paged by a cursor, searched by
//! transcript words, or streamed as CSV) and the queue and agent figures per interval
//! (`/api/v1/reports/queues`, `/api/v1/reports/agents`).
//!
//! Everything is read from the tenant's store on a blocking thread, never on the
//! engine's: a report that scans many records does not hold up routing. The contract is
//! docs/API-NOTES.md "Reports"; events out are `webhooks.rs`.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Tenanted};
use super::dto::{time, ChannelKind, CustomerDto};
use super::error::{ApiError, ErrorBody};
use crate::core::figures::{self, Figures, Grain, Subject, Sum};
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
    /// Words the transcript holds, every one (whole words, any case; up to 8 words).
    #[param(min_length = 1, max_length = 200)]
    pub q: Option<String>,
    /// `true`: only conversations the customer rated; `false`: only those not rated.
    pub rated: Option<bool>,
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
    /// The customer's rating (docs/API-NOTES.md "Satisfaction"); null: none (not asked,
    /// not answered yet, or not answered).
    pub satisfaction: Option<SatisfactionDto>,
}

/// A customer's rating of a conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SatisfactionDto {
    /// 1 (poor) to 5 (great).
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    /// When the customer gave it.
    pub at: DateTime<Utc>,
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
            satisfaction: r.satisfaction.map(|s| SatisfactionDto {
                rating: s.rating,
                at: time(s.at),
            }),
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
        let words = match self.q.as_deref() {
            None => Vec::new(),
            Some(q) => {
                if q.chars().count() > 200 {
                    return Err(invalid("q is at most 200 characters"));
                }
                let mut w: Vec<String> = core::report::words(q).collect();
                w.sort();
                w.dedup();
                if w.is_empty() || w.len() > core::report::MAX_SEARCH_WORDS {
                    return Err(invalid(format!(
                        "q is 1 to {} words (letters and digits)",
                        core::report::MAX_SEARCH_WORDS
                    )));
                }
                w
            }
        };
        Ok(RecordQuery {
            filter: RecordFilter {
                from,
                to,
                queue: id_param("queue", self.queue)?,
                agent: id_param("agent", self.agent)?,
                outcome,
                customer,
                words,
                rated: self.rated,
            },
            after,
            limit,
        })
    }
}

/// Records of complete conversations (ended, every wrap-up in), oldest arrival first. With
/// `Accept: text/csv`: every matching record (no paging) as CSV, streamed.
#[utoipa::path(get, path = "/api/v1/reports/conversations", tag = "reports", operation_id = "conversation_records",
    params(RecordsQuery),
    responses(
        (status = 200, description = "A page of records; with `Accept: text/csv`, every matching record as CSV",
            content((RecordsPageDto = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad parameter (`invalid_input`)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn conversations(
    state: Tenanted,
    caller: Caller,
    query: web::Query<RecordsQuery>,
    req: actix_web::HttpRequest,
) -> Res {
    caller.reader()?;
    let q = query.into_inner().parse()?;
    let store = state.engine.store().clone();
    if wants_csv(&req) {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"conversations.csv\"",
            ))
            .streaming(csv_stream(store, q)));
    }
    let page = web::block(move || store.records(&q))
        .await
        .map_err(|e| ApiError::from(EngineError::Store(crate::store::StoreError::Read(e.to_string()))))?
        .map_err(|e| ApiError::from(EngineError::Store(e)))?;
    Ok(HttpResponse::Ok().json(RecordsPageDto {
        next: page.next.as_ref().map(RecordCursor::encode),
        records: page.records.into_iter().map(ConversationRecordDto::from).collect(),
    }))
}

/// Whether the client asked for CSV (`Accept: text/csv`) rather than JSON.
fn wants_csv(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        })
}

/// Records read per store call while a CSV export streams: the most it holds at once.
const CSV_PAGE: usize = 500;

/// The CSV columns, in order.
const CSV_HEADER: [&str; 25] = [
    "id",
    "channel",
    "entry_point",
    "source_page",
    "customer_id",
    "customer_name",
    "queues",
    "agents",
    "arrived_at",
    "first_offered_at",
    "accepted_at",
    "first_agent_reply_at",
    "ended_at",
    "wrapped_up_at",
    "ended_reason",
    "outcome",
    "wrapup_reason",
    "rona_count",
    "transfers",
    "wait_ms",
    "handle_ms",
    "agent_wrapup_reasons",
    "guests",
    "satisfaction",
    "satisfaction_at",
];

/// A text a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a carriage
/// return first) gets a `'` before it: a customer's name is the customer's to choose.
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}").into(),
        _ => s.into(),
    }
}

fn csv_time(ms: Option<core::Millis>) -> String {
    ms.map(|t| time(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// One record as a CSV row (lists joined by `;`).
fn csv_row(r: &ConversationRecord) -> Vec<String> {
    let join = |it: &mut dyn Iterator<Item = String>| it.collect::<Vec<_>>().join(";");
    let handle: u64 = r.agents.iter().map(|a| a.handle_ms).sum();
    vec![
        r.id.clone(),
        core::Channel::as_str(r.channel).to_string(),
        r.entry_point.clone().unwrap_or_default(),
        cell(&r.source_page).into_owned(),
        cell(&r.customer.id).into_owned(),
        cell(&r.customer.name).into_owned(),
        r.queues.join(";"),
        join(&mut r.agents.iter().filter(|a| !a.guest).map(|a| a.agent.clone())),
        csv_time(Some(r.arrived_at)),
        csv_time(r.first_offered_at),
        csv_time(r.accepted_at),
        csv_time(r.first_agent_reply_at),
        csv_time(Some(r.ended_at)),
        csv_time(r.wrapped_up_at),
        r.ended_reason.clone(),
        r.outcome.as_str().to_string(),
        r.wrapup_reason.clone().unwrap_or_default(),
        r.rona_count.to_string(),
        r.transfers.to_string(),
        r.accepted_at
            .map(|a| a.saturating_sub(r.arrived_at).to_string())
            .unwrap_or_default(),
        handle.to_string(),
        join(
            &mut r
                .agents
                .iter()
                .map(|a| format!("{}={}", a.agent, a.wrapup_reason.as_deref().unwrap_or(""))),
        ),
        join(&mut r.agents.iter().filter(|a| a.guest).map(|a| a.agent.clone())),
        r.satisfaction.map(|s| s.rating.to_string()).unwrap_or_default(),
        csv_time(r.satisfaction.map(|s| s.at)),
    ]
}

/// Every record `q` matches (its paging left aside: all of them, from its cursor on) as
/// CSV, read a page at a time on a blocking thread and sent as it is written: the memory
/// it holds is a page and a few chunks, whatever the number of records. A client that
/// goes away stops the reading. A store error cuts the body short (the status is sent).
fn csv_stream(
    store: std::sync::Arc<dyn crate::store::Store>,
    mut q: RecordQuery,
) -> impl futures_util::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, crate::store::StoreError>>(4);
    actix_web::rt::task::spawn_blocking(move || {
        q.limit = CSV_PAGE;
        let csv_error = |e: String| crate::store::StoreError::Read(format!("CSV: {e}"));
        let header: Vec<String> = CSV_HEADER.iter().map(|h| h.to_string()).collect();
        let mut first = Some(header);
        loop {
            let page = match store.records_bulk(&q) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            let mut w = csv::Writer::from_writer(Vec::with_capacity(64 * 1024));
            let mut rows = first.take().into_iter().chain(page.records.iter().map(csv_row));
            let written = rows
                .try_for_each(|row| w.write_record(&row).map_err(|e| csv_error(e.to_string())))
                .and_then(|()| w.into_inner().map_err(|e| csv_error(e.to_string())));
            let chunk = match written {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if !chunk.is_empty() && tx.blocking_send(Ok(chunk)).is_err() {
                return; // The client went away.
            }
            match page.next {
                Some(next) => q.after = Some(next),
                None => return,
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let item = item
            .map(web::Bytes::from)
            .map_err(actix_web::error::ErrorServiceUnavailable);
        Some((item, rx))
    })
}

/// Query of `GET /api/v1/reports/queues` and `/reports/agents`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FiguresQuery {
    /// The report's start (RFC 3339); the interval holding it is the first.
    #[param(format = DateTime)]
    pub from: String,
    /// The report's end (RFC 3339, excluded).
    #[param(format = DateTime)]
    pub to: String,
    /// `15m`, `1h` (the default) or `1d`.
    #[param(pattern = "^(15m|1h|1d)$")]
    pub interval: Option<String>,
    /// The wall clock hours and days follow (IANA name; default `UTC`).
    #[param(min_length = 1, max_length = 64)]
    pub time_zone: Option<String>,
    /// One queue (`/reports/queues`; default: every queue there is).
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub queue: Option<String>,
    /// One agent (`/reports/agents`; default: every agent there is).
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    pub agent: Option<String>,
}

/// What a report asks for, checked.
struct Range {
    intervals: Vec<core::Millis>,
    end: core::Millis,
    grain: Grain,
    tz: chrono_tz::Tz,
}

impl FiguresQuery {
    fn range(&self) -> Result<Range, ApiError> {
        let from = millis("from", &self.from)?;
        let to = millis("to", &self.to)?;
        if to <= from {
            return Err(invalid("to must be after from"));
        }
        let grain = match self.interval.as_deref() {
            None => Grain::Hour,
            Some(g) => Grain::parse(g).ok_or_else(|| invalid("interval is one of 15m, 1h, 1d"))?,
        };
        let tz: chrono_tz::Tz = match self.time_zone.as_deref() {
            None => chrono_tz::UTC,
            Some(z) => z
                .parse()
                .map_err(|_| invalid("time_zone is an IANA time zone name, e.g. Europe/Paris"))?,
        };
        let intervals = figures::report_intervals(from, to, grain, tz).ok_or_else(|| {
            invalid(format!(
                "the report would hold more than {} intervals: ask for a longer interval or a shorter range",
                figures::MAX_REPORT_INTERVALS
            ))
        })?;
        let end = intervals
            .last()
            .map_or(to, |last| figures::next_report_interval(*last, grain, tz));
        Ok(Range {
            intervals,
            end,
            grain,
            tz,
        })
    }
}

/// A duration's figures over an interval (ms); null where nothing was counted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DurationDto {
    /// How many were counted.
    pub count: u64,
    pub mean: Option<u64>,
    pub max: Option<u64>,
    pub total: u64,
}

impl From<&Sum> for DurationDto {
    fn from(s: &Sum) -> Self {
        DurationDto {
            count: s.count,
            mean: s.mean_ms(),
            max: (s.count > 0).then_some(s.max_ms),
            total: s.total_ms,
        }
    }
}

/// Waits of answered conversations (ms), with their 90th percentile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WaitDto {
    pub count: u64,
    pub mean: Option<u64>,
    /// The upper edge of the bucket holding the 90th percentile (at most 25 %
    /// above it), never above `max`.
    pub p90: Option<u64>,
    pub max: Option<u64>,
}

/// A queue's figures over one interval (or the whole report, without `start`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueFiguresDto {
    /// The interval's start; absent in a total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// Arrived in the queue and waited.
    pub offered: u64,
    pub answered: u64,
    /// Waited and ended before any accept.
    pub abandoned: u64,
    /// Ended at arrival: outside business hours or a full queue.
    pub refused: u64,
    /// Answered within the queue's `service_level_ms` of arrival.
    pub answered_within_sl: u64,
    /// `answered_within_sl` over `offered`, in percent; null when nothing was offered.
    pub service_level_percent: Option<f64>,
    pub transferred: u64,
    pub closed_inactive: u64,
    /// Arrival to the first accept, of answered conversations.
    pub wait_ms: WaitDto,
    /// Arrival to the end, of abandoned conversations.
    pub abandon_wait_ms: DurationDto,
    /// Arrival to the first agent message.
    pub first_response_ms: DurationDto,
    /// Every agent's time in an answered conversation.
    pub handle_ms: DurationDto,
    /// Leaving to wrap-up, per wrap-up.
    pub wrapup_ms: DurationDto,
}

impl QueueFiguresDto {
    fn of(start: Option<core::Millis>, f: &Figures) -> Self {
        QueueFiguresDto {
            start: start.map(time),
            offered: f.offered,
            answered: f.answered,
            abandoned: f.abandoned,
            refused: f.refused,
            answered_within_sl: f.answered_in_sl,
            service_level_percent: f.service_level_percent(),
            transferred: f.transferred,
            closed_inactive: f.closed_inactive,
            wait_ms: WaitDto {
                count: f.wait.count,
                mean: f.wait.mean_ms(),
                p90: f.wait_histogram.quantile(0.9, f.wait.max_ms),
                max: (f.wait.count > 0).then_some(f.wait.max_ms),
            },
            abandon_wait_ms: DurationDto::from(&f.abandon_wait),
            first_response_ms: DurationDto::from(&f.first_response),
            handle_ms: DurationDto::from(&f.handle),
            wrapup_ms: DurationDto::from(&f.wrapup),
        }
    }
}

/// An agent's figures over one interval (or the whole report, without `start`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentFiguresDto {
    /// The interval's start; absent in a total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<DateTime<Utc>>,
    /// Conversations it accepted as owner (counted where it accepted).
    pub handled: u64,
    /// Conversations it joined only as a conference guest.
    pub conferenced: u64,
    /// Its time in each conversation it accepted.
    pub handle_ms: DurationDto,
    pub wrapup_ms: DurationDto,
    /// Offers it let expire.
    pub ronas: u64,
    /// Time in each presence state (`available`, `idle`, `rona`), ms.
    pub presence_ms: std::collections::BTreeMap<String, u64>,
    /// Handle time over time available, in percent (two conversations at once count
    /// twice); null with no time available.
    pub occupancy_percent: Option<f64>,
}

impl AgentFiguresDto {
    fn of(start: Option<core::Millis>, f: &Figures) -> Self {
        AgentFiguresDto {
            start: start.map(time),
            handled: f.handled,
            conferenced: f.conferenced,
            handle_ms: DurationDto::from(&f.handle),
            wrapup_ms: DurationDto::from(&f.wrapup),
            ronas: f.ronas,
            presence_ms: f.presence_ms.clone(),
            occupancy_percent: f.occupancy_percent(),
        }
    }
}

/// One queue's report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueReportDto {
    pub queue: String,
    /// Its service level threshold now (each conversation was counted against the one in
    /// force when it was complete).
    pub service_level_ms: u64,
    pub intervals: Vec<QueueFiguresDto>,
    pub total: QueueFiguresDto,
}

/// `GET /api/v1/reports/queues`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueuesReportDto {
    /// `15m`, `1h` or `1d`.
    pub interval: String,
    pub time_zone: String,
    pub queues: Vec<QueueReportDto>,
}

/// One agent's report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentReportDto {
    pub agent: String,
    pub intervals: Vec<AgentFiguresDto>,
    pub total: AgentFiguresDto,
}

/// `GET /api/v1/reports/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentsReportDto {
    pub interval: String,
    pub time_zone: String,
    pub agents: Vec<AgentReportDto>,
}

/// Reads each subject's rows over `range` on a blocking thread, with its `extra` rows (an
/// agent's presence under way) added, rolled up per interval: one list of sums per
/// subject, in the order given.
async fn read_figures(
    state: &Tenanted,
    subjects: Vec<(Subject, Vec<(core::Millis, Figures)>)>,
    range: &Range,
) -> Result<Vec<Vec<Figures>>, ApiError> {
    let store = state.engine.store().clone();
    let (first, end) = (range.intervals.first().copied().unwrap_or(0), range.end);
    let read = web::block(move || {
        subjects
            .into_iter()
            .map(|(s, extra)| {
                let mut rows = store.figures(&s, first, end)?;
                rows.extend(extra);
                Ok(rows)
            })
            .collect::<Result<Vec<_>, crate::store::StoreError>>()
    })
    .await
    .map_err(|e| ApiError::from(EngineError::Store(crate::store::StoreError::Read(e.to_string()))))?
    .map_err(|e| ApiError::from(EngineError::Store(e)))?;
    Ok(read
        .iter()
        .map(|rows| figures::roll_up(rows, &range.intervals, range.end))
        .collect())
}

/// One subject's report: each interval's figures as `of` shows them, and the total.
fn series<T>(range: &Range, sums: &[Figures], of: fn(Option<core::Millis>, &Figures) -> T) -> (Vec<T>, T) {
    let mut total = Figures::default();
    for f in sums {
        total.add(f);
    }
    let intervals = range
        .intervals
        .iter()
        .zip(sums)
        .map(|(at, f)| of(Some(*at), f))
        .collect();
    (intervals, of(None, &total))
}

/// Per queue and interval: offered, answered, abandoned, service level, waits, handle and
/// wrap-up times. A conversation counts once, in the queue and interval it arrived in.
#[utoipa::path(get, path = "/api/v1/reports/queues", tag = "reports", operation_id = "queue_report",
    params(FiguresQuery),
    responses(
        (status = 200, description = "Each queue's figures per interval", body = QueuesReportDto),
        (status = 400, description = "A bad parameter (`invalid_input`)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn queues(state: Tenanted, caller: Caller, query: web::Query<FiguresQuery>) -> Res {
    caller.reader()?;
    let q = query.into_inner();
    if q.agent.is_some() {
        return Err(invalid("agent is a parameter of /api/v1/reports/agents"));
    }
    let range = q.range()?;
    let queue = id_param("queue", q.queue)?;
    let known = state.engine.queues().await?;
    let sl_of = |id: &str| {
        known
            .iter()
            .find(|s| s.id == id)
            .map_or(figures::DEFAULT_SERVICE_LEVEL_MS, |s| s.service_level_ms)
    };
    let ids: Vec<String> = match queue {
        Some(id) => vec![id],
        None => known.iter().map(|s| s.id.clone()).collect(),
    };
    let subjects = ids.iter().map(|id| (Subject::Queue(id.clone()), Vec::new())).collect();
    let read = read_figures(&state, subjects, &range).await?;
    let queues = ids
        .into_iter()
        .zip(read)
        .map(|(id, sums)| {
            let (intervals, total) = series(&range, &sums, QueueFiguresDto::of);
            QueueReportDto {
                service_level_ms: sl_of(&id),
                queue: id,
                intervals,
                total,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(QueuesReportDto {
        interval: range.grain.as_str().into(),
        time_zone: range.tz.name().into(),
        queues,
    }))
}

/// Per agent and interval: handled, handle and wrap-up times, RONAs, time in each presence
/// state and occupancy. The state an agent is in now counts up to now.
#[utoipa::path(get, path = "/api/v1/reports/agents", tag = "reports", operation_id = "agent_report",
    params(FiguresQuery),
    responses(
        (status = 200, description = "Each agent's figures per interval", body = AgentsReportDto),
        (status = 400, description = "A bad parameter (`invalid_input`)", body = ErrorBody),
        (status = 401, description = "No or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn agents(state: Tenanted, caller: Caller, query: web::Query<FiguresQuery>) -> Res {
    caller.reader()?;
    let q = query.into_inner();
    if q.queue.is_some() {
        return Err(invalid("queue is a parameter of /api/v1/reports/queues"));
    }
    let range = q.range()?;
    let agent = id_param("agent", q.agent)?;
    let now = state.engine.now();
    let mut ids = Vec::new();
    let mut subjects = Vec::new();
    for a in state.engine.agents().await? {
        if agent.as_ref().is_some_and(|id| &a.id != id) {
            continue;
        }
        // The state under way, up to now, as the rows will hold it once it ends.
        let extra = figures::presence_deltas(&a.id, a.presence, a.state_since, now)
            .into_iter()
            .map(|d| (d.interval, d.figures))
            .collect();
        subjects.push((Subject::Agent(a.id.clone()), extra));
        ids.push(a.id);
    }
    if let (Some(id), true) = (agent, ids.is_empty()) {
        // An agent deleted since still has its rows.
        subjects.push((Subject::Agent(id.clone()), Vec::new()));
        ids.push(id);
    }
    let read = read_figures(&state, subjects, &range).await?;
    let agents = ids
        .into_iter()
        .zip(read)
        .map(|(agent, sums)| {
            let (intervals, total) = series(&range, &sums, AgentFiguresDto::of);
            AgentReportDto {
                agent,
                intervals,
                total,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(AgentsReportDto {
        interval: range.grain.as_str().into(),
        time_zone: range.tz.name().into(),
        agents,
    }))
}

/// The reports routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/v1/reports/conversations").route(web::get().to(conversations)))
        .service(super::resource("/api/v1/reports/queues").route(web::get().to(queues)))
        .service(super::resource("/api/v1/reports/agents").route(web::get().to(agents)));
}
