//! The browser pages: the agent desktop at `/`, the supervisor page at `/supervisor` and,
//! when `demo.customer_page` is on, the demo customer chat at `/demo/customer`.
//!
//! Every asset lives in `web/` and is embedded in the binary with `include_str!`, so
//! `cargo run` needs no build step and the pages work with no internet: plain ES modules
//! and CSS, nothing from a CDN. The pages talk only to the public REST and WebSocket API
//! (and the demo page to [`super::demo`]).
//!
//! Every page answer carries a strict Content-Security-Policy (scripts, styles and
//! connections from this origin only), `Referrer-Policy: no-referrer` and `nosniff`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::error::ApiError;

/// One embedded file.
struct Asset {
    /// The URL path it is served at.
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($path:literal, $ty:expr, $file:literal) => {
        Asset {
            path: $path,
            content_type: $ty,
            body: include_str!(concat!("../../web/", $file)),
        }
    };
}

/// The agent desktop: `/` and its modules.
const DESKTOP: &[Asset] = &[
    asset!("/", HTML, "desktop/index.html"),
    asset!("/assets/app.js", JS, "desktop/app.js"),
    asset!("/assets/api.js", JS, "desktop/api.js"),
    asset!("/assets/socket.js", JS, "desktop/socket.js"),
    asset!("/assets/store.js", JS, "desktop/store.js"),
    asset!("/assets/views.js", JS, "desktop/views.js"),
    asset!("/assets/dom.js", JS, "desktop/dom.js"),
    asset!("/assets/errors.js", JS, "desktop/errors.js"),
    asset!("/assets/dialogs.js", JS, "desktop/dialogs.js"),
    asset!("/assets/style.css", CSS, "desktop/style.css"),
];

/// The supervisor page: `/supervisor` and its files (it also uses the desktop's
/// `/assets/api.js` and `/assets/errors.js`).
const SUPERVISOR: &[Asset] = &[
    asset!("/supervisor", HTML, "supervisor/index.html"),
    asset!("/supervisor/app.js", JS, "supervisor/app.js"),
    asset!("/supervisor/style.css", CSS, "supervisor/style.css"),
];

/// The demo customer chat (served only with `demo.customer_page`).
const DEMO: &[Asset] = &[
    asset!("/demo/customer", HTML, "demo/customer.html"),
    asset!("/demo/customer.js", JS, "demo/customer.js"),
];

/// `default-src 'none'` and then only what the pages use, all from this origin.
/// `connect-src 'self'` covers the same-origin WebSocket (`ws:`/`wss:`) in CSP level 3.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(asset: &'static Asset) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(asset.content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Small files, and a new binary may bring new ones: always revalidate.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.body)
}

fn route(cfg: &mut web::ServiceConfig, assets: &'static [Asset]) {
    for asset in assets {
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(move || async move { serve(asset) }))
                .route(web::head().to(move || async move { serve(asset) }))
                .default_service(web::to(super::error::method_not_allowed)),
        );
    }
}

/// The agent desktop's routes.
pub fn desktop_routes(cfg: &mut web::ServiceConfig) {
    route(cfg, DESKTOP);
    route(cfg, SUPERVISOR);
    cfg.service(web::resource("/favicon.ico").to(no_icon));
}

/// The demo customer page's routes (the page; its API is [`super::demo::routes`]).
pub fn demo_routes(cfg: &mut web::ServiceConfig) {
    route(cfg, DEMO);
}

/// No icon: an empty 204 rather than a 404 in every browser console.
async fn no_icon(_req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The desktop says every refusal of the engine in words (errors.js), and the
    /// HTTP layer's own codes that a desktop can meet.
    #[test]
    fn every_engine_refusal_has_words_on_the_page() {
        use strum::IntoEnumIterator;
        let words = include_str!("../../web/desktop/errors.js");
        let http = [
            "store_unavailable",
            "engine_unavailable",
            "internal_error",
            "invalid_command",
            "too_many_commands",
            "too_many_attempts",
            "invalid_credentials",
            "unauthorized",
            "payload_too_large",
        ];
        let core = crate::core::CoreError::iter().map(|e| e.code());
        for code in core.chain(http) {
            assert!(
                words.contains(&format!("  {code}:")),
                "web/desktop/errors.js has no words for {code}"
            );
        }
    }

    /// Every module the pages import is served: a missing entry here would be a 404 in
    /// the browser, which only the browser test would otherwise notice.
    #[test]
    fn every_imported_module_is_served() {
        let served: Vec<&str> = DESKTOP.iter().chain(DEMO).chain(SUPERVISOR).map(|a| a.path).collect();
        for asset in DESKTOP.iter().chain(DEMO).chain(SUPERVISOR) {
            for line in asset.body.lines() {
                let line = line.trim();
                let target = line
                    .strip_prefix("import ")
                    .and_then(|rest| rest.split(" from ").nth(1))
                    .map(|from| from.trim_matches(|c| c == '"' || c == '\'' || c == ';'));
                let Some(target) = target else { continue };
                let path = match target.strip_prefix("./") {
                    Some(file) if asset.path.starts_with("/assets/") => format!("/assets/{file}"),
                    Some(file) => format!("/demo/{file}"),
                    None => target.to_string(),
                };
                assert!(
                    served.contains(&path.as_str()),
                    "{} imports {target}, not served",
                    asset.path
                );
            }
        }
    }
}
