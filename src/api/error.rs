//! The one mapping from failures to HTTP: every error leaves the server as
//! `{"error": {"code", "message"}}` with the status ../shared/API.md gives its kind.
//!
//! Domain errors carry their own stable code ([`crate::core::CoreError::code`]); this module
//! only derives the status from [`ErrorKind`]. Extractor failures (malformed JSON, unknown
//! fields, oversized bodies, bad paths or queries) and unknown routes are turned into the
//! same JSON shape here, so a client never sees an HTML page or an empty error.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::core::ErrorKind;
use crate::engine::EngineError;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code that clients match on, e.g. `not_offered_to_you`.
    #[schema(example = "not_offered_to_you")]
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

/// An error on its way to the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 429 `too_many_attempts` with `Retry-After` (whole seconds, rounded up).
    pub fn too_many_attempts(retry_after_ms: u64) -> Self {
        let secs = retry_after_ms.div_ceil(1000).max(1);
        ApiError {
            retry_after_s: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed authentications from this address; try again in {secs} s"),
            )
        }
    }

    /// 429 `rate_limited` with `Retry-After` (whole seconds, rounded up): a client over a
    /// limit on what it may create (the demo page's new conversations per address).
    pub fn rate_limited(retry_after_ms: u64, what: &str) -> Self {
        let secs = retry_after_ms.div_ceil(1000).max(1);
        ApiError {
            retry_after_s: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("{what}; try again in {secs} s"),
            )
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no token, or a token that belongs to nobody.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    /// 403: a valid token acting outside its rights.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 for a route that does not exist.
    pub fn no_route(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no resource at {path}"))
    }

    /// The JSON detail, as the WebSocket `reply` carries it.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.to_string(),
            message: self.message.clone(),
        }
    }
}

/// The status of a domain error's kind (../shared/API.md's error table).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::Core(c) => status_of(c.kind()),
            // The store refuses writes after a failure, and a stopped engine answers
            // nothing: both are "try again later", not a bug in the request.
            EngineError::Store(_) | EngineError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            // A bug inside the engine, not the request's fault.
            EngineError::UnexpectedReply { .. } | EngineError::Poisoned(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<crate::core::CoreError> for ApiError {
    fn from(e: crate::core::CoreError) -> Self {
        EngineError::Core(e).into()
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_s {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        res.json(ErrorBody { error: self.detail() })
    }
}

/// Turns a JSON body failure into 400 or 413 (wired with `web::JsonConfig`).
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", err.to_string())
        }
        JsonPayloadError::ContentType => ApiError::bad_request(
            "unsupported_content_type",
            "the body must be JSON with Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(d) => ApiError::bad_request("invalid_json", d.to_string()),
        other => ApiError::bad_request("invalid_json", other.to_string()),
    };
    e.into()
}

/// Turns a bad path segment into 400.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_input", err.to_string()).into()
}

/// Turns a bad query string into 400.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_input", err.to_string()).into()
}

/// Default service of the app: unknown routes are 404 JSON.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::no_route(req.path()))
}

/// Default service of each resource: a known path with a method it does not take is 405.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}
