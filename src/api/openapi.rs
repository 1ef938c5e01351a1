//! The OpenAPI description, generated from the handlers and wire types (utoipa), served at
//! `GET /api/v1/openapi.json` with a browsable UI at `/api/docs/`.
//!
//! WebSocket frames cannot be described as operations; their schemas are listed in the
//! components (`ServerEvent`, `DesktopRequest`, `DesktopCommand`) and the endpoint itself
//! is documented as a `GET` answered with `101`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::attachments;
use super::canned;
use super::cluster;
use super::dto::*;
use super::error::{ErrorBody, ErrorDetail};
use super::history;
use super::reports;
use super::rest;
use super::signin;
use super::supervisor;
use super::tenants;
use super::webhooks;
use super::ws::{self, DesktopCommand, DesktopRequest, OfferEvent, ServerEvent};

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Contact-centre routing engine: REST for management and clients, a WebSocket per agent desktop. \
Authenticate with `Authorization: Bearer <token>`: the admin token from config, an agent token, \
a supervisor token, or a session token from `POST /api/v1/login`. \
A missing or wrong token is 401; a valid token acting outside its rights is 403. \
Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        rest::create_queue,
        rest::list_queues,
        rest::get_queue,
        rest::patch_queue,
        rest::create_entry_point,
        rest::list_entry_points,
        rest::patch_entry_point,
        rest::create_agent,
        rest::list_agents,
        rest::get_agent,
        rest::set_skills,
        rest::get_me,
        rest::reissue_token,
        signin::login,
        signin::form,
        signin::logout,
        signin::set_password,
        signin::change_my_password,
        rest::set_my_state,
        rest::create_conversation,
        rest::get_conversation,
        rest::set_priority,
        rest::accept,
        rest::send_message,
        attachments::send_attachment,
        rest::add_note,
        rest::typing,
        rest::transfer,
        rest::conference,
        rest::exit_conference,
        rest::end_conference,
        rest::end_conversation,
        rest::wrapup,
        rest::wrapup_reasons,
        rest::idle_codes,
        super::ops::livez,
        super::ops::readyz,
        super::ops::healthz,
        super::ops::backup,
        rest::metrics,
        ws::desktop,
        supervisor::create_supervisor,
        supervisor::list_supervisors,
        supervisor::get_me,
        supervisor::reissue_token,
        supervisor::set_password,
        supervisor::set_agent_state,
        supervisor::audit,
        supervisor::socket::supervisor_ws,
        tenants::create,
        tenants::list,
        tenants::get,
        tenants::patch,
        tenants::reissue,
        tenants::delete,
        tenants::backup,
        reports::conversations,
        reports::queues,
        reports::agents,
        canned::create,
        canned::list,
        canned::get,
        canned::patch,
        canned::delete,
        history::history,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::delete,
        cluster::status,
        cluster::move_tenant,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        AgentDto,
        AgentDetailDto,
        QueueDto,
        ConversationDto,
        MessageDto,
        ServerEvent,
        OfferEvent,
        DesktopRequest,
        DesktopCommand,
        supervisor::SupervisorDto,
        supervisor::SupervisorCreatedDto,
        supervisor::SupervisedAgentDto,
        supervisor::AuditDto,
        tenants::TenantDto,
        tenants::TenantCounts,
        tenants::LimitsDto,
        tenants::CreateTenant,
        tenants::PatchTenant,
        reports::ConversationRecordDto,
        reports::RecordAgentDto,
        reports::SatisfactionDto,
        SurveyDto,
        SurveyTextsDto,
        reports::RecordsPageDto,
        reports::OutcomeDto,
        reports::DurationDto,
        reports::WaitDto,
        reports::QueueFiguresDto,
        reports::AgentFiguresDto,
        reports::QueueReportDto,
        reports::QueuesReportDto,
        reports::AgentReportDto,
        reports::AgentsReportDto,
        canned::CannedResponseDto,
        PlaceUpdatesDto,
        PlaceTextsDto,
        canned::CreateCannedResponse,
        canned::PatchCannedResponse,
        history::HistoryDto,
        history::EarlierConversationDto,
        history::HistoryAgentDto,
        webhooks::WebhookDto,
        webhooks::CreateWebhook,
        cluster::MoveTenant,
        crate::cluster::ClusterStatus,
        crate::cluster::NodeValue,
        crate::cluster::TenantPlace,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "tenants", description = "The operator's contact centres (tenants): needs the operator token"),
        (name = "queues", description = "Named lines of waiting conversations"),
        (name = "entry points", description = "Customer-facing addresses feeding queues"),
        (name = "agents", description = "Agents, their presence and tokens"),
        (name = "sign-in", description = "Password sign-in for people at a page: session tokens, sign-out, passwords"),
        (name = "conversations", description = "Customer chats: accept, messages, transfer, conference, end, wrap-up"),
        (name = "reference", description = "Configured wrap-up reasons and idle codes"),
        (name = "desktop", description = "The agent desktop WebSocket"),
        (name = "supervisors", description = "Supervisors: accounts, agents' presence set for them, the audit trail, the live socket"),
        (name = "canned responses", description = "Texts agents insert by a short code, with placeholders"),
        (name = "webhooks", description = "Events out: signed POSTs to subscribed URLs, from a durable outbox"),
        (name = "reports", description = "How the centre did: records of complete conversations"),
        (name = "operations", description = "Health, metrics and backup"),
        (name = "cluster", description = "Nodes sharing tenants through NATS JetStream (with `[cluster]`): who routes what, moving a tenant"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
