//! Headers that every answer of a kind carries, set in one middleware so that no handler
//! (nor an error path, nor a library's route) can forget them:
//!
//! - API answers (`/api/v1/...`, the demo customer's `/demo/api/...`), errors included,
//!   carry `Cache-Control: no-store`: they hold tokens (login, agent creation),
//!   transcripts and customer data, which no browser or proxy cache should keep; and
//!   `X-Content-Type-Options: nosniff`.
//! - Swagger UI (`/api/docs/...`, served by utoipa-swagger-ui, which sets no headers of
//!   its own) carries the pages' protections ([`super::pages`]): a Content-Security-Policy
//!   allowing only this origin (its HTML has no inline script or style), `nosniff`,
//!   `frame-ancestors 'none'` with `X-Frame-Options: DENY` for older browsers, and
//!   `Referrer-Policy: no-referrer`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

/// Swagger UI's policy: its bundle, stylesheet and initializer are files from this origin,
/// its icons are `data:` images, and it fetches the OpenAPI description (and "Try it
/// out" calls) from this origin. The online validator badge would be an image from
/// elsewhere; it is turned off in the UI's config instead of allowed here.
///
/// One inline style is allowed, by its hash only: the `<style>` inside the Swagger logo's
/// SVG that the bundled Swagger UI (5.17.14) creates,
/// `.logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}`. Without it the
/// logo loses its colours and Chromium reports a violation; `'unsafe-inline'` would allow
/// any injected style. A new Swagger UI with another logo only loses the colours again
/// (the browser test reports the violation).
pub const SWAGGER_CSP: &str = "default-src 'none'; script-src 'self'; \
                               style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
                               img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                               frame-ancestors 'none'";

/// Which headers a path's answers get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JSON (or a backup) from the API: never cached.
    Api,
    /// Swagger UI's page and assets.
    Docs,
    /// Anything else: pages set their own, health and metrics need none.
    Other,
}

impl Kind {
    /// The kind of the answers at `path`.
    pub fn of(path: &str) -> Kind {
        if path.starts_with("/api/v1/") || path.starts_with("/demo/api/") {
            Kind::Api
        } else if path == "/api/docs" || path.starts_with("/api/docs/") {
            Kind::Docs
        } else {
            Kind::Other
        }
    }
}

/// The middleware: adds the headers of the request path's [`Kind`] to the answer.
pub async fn edge_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let kind = Kind::of(req.path());
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    match kind {
        Kind::Api => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        }
        Kind::Docs => {
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SWAGGER_CSP));
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        }
        Kind::Other => {}
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_kinds() {
        for (path, kind) in [
            ("/api/v1/login", Kind::Api),
            ("/api/v1/conversations/c-1", Kind::Api),
            ("/api/v1/openapi.json", Kind::Api),
            ("/demo/api/messages", Kind::Api),
            ("/api/docs", Kind::Docs),
            ("/api/docs/", Kind::Docs),
            ("/api/docs/swagger-ui-bundle.js", Kind::Docs),
            ("/api/docsx", Kind::Other),
            ("/", Kind::Other),
            ("/readyz", Kind::Other),
        ] {
            assert_eq!(Kind::of(path), kind, "{path}");
        }
    }
}
