//! The browser pages: the agent desktop at `/`, the supervisor page at `/supervisor` and,
//! when `demo.customer_page` is on, the demo customer chat at `/demo/customer`. What the
//! pages share (DOM helpers, the REST client, the reconnecting socket, formats, the
//! engine's codes in words) is one set of modules under `/common/`, served always.
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
    /// Its file under `web/` (the tests check that every file there is served).
    #[cfg_attr(not(test), allow(dead_code))]
    file: &'static str,
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
            file: $file,
            body: include_str!(concat!("../../web/", $file)),
        }
    };
}

/// The modules every page shares: `/common/`.
const COMMON: &[Asset] = &[
    asset!("/common/api.js", JS, "common/api.js"),
    asset!("/common/dom.js", JS, "common/dom.js"),
    asset!("/common/errors.js", JS, "common/errors.js"),
    asset!("/common/format.js", JS, "common/format.js"),
    asset!("/common/socket.js", JS, "common/socket.js"),
];

/// The agent desktop: `/` and its own modules.
const DESKTOP: &[Asset] = &[
    asset!("/", HTML, "desktop/index.html"),
    asset!("/assets/app.js", JS, "desktop/app.js"),
    asset!("/assets/api.js", JS, "desktop/api.js"),
    asset!("/assets/socket.js", JS, "desktop/socket.js"),
    asset!("/assets/store.js", JS, "desktop/store.js"),
    asset!("/assets/views.js", JS, "desktop/views.js"),
    asset!("/assets/dialogs.js", JS, "desktop/dialogs.js"),
    asset!("/assets/style.css", CSS, "desktop/style.css"),
];

/// The supervisor page: `/supervisor` and its own files.
const SUPERVISOR: &[Asset] = &[
    asset!("/supervisor", HTML, "supervisor/index.html"),
    asset!("/supervisor/app.js", JS, "supervisor/app.js"),
    asset!("/supervisor/reports.js", JS, "supervisor/reports.js"),
    asset!("/supervisor/charts.js", JS, "supervisor/charts.js"),
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

/// The agent desktop's and the supervisor page's routes, with the modules every page shares.
pub fn desktop_routes(cfg: &mut web::ServiceConfig) {
    route(cfg, COMMON);
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

    /// Every page's files.
    fn all() -> impl Iterator<Item = &'static Asset> {
        COMMON.iter().chain(DESKTOP).chain(SUPERVISOR).chain(DEMO)
    }

    /// The pages say every refusal of the engine in words (`web/common/errors.js`), and
    /// the HTTP layer's own codes that a page can meet.
    #[test]
    fn every_engine_refusal_has_words_on_the_page() {
        use strum::IntoEnumIterator;
        let words = include_str!("../../web/common/errors.js");
        let http = [
            "store_unavailable",
            "engine_unavailable",
            "overloaded",
            "internal_error",
            "invalid_command",
            "too_many_commands",
            "too_many_attempts",
            "invalid_credentials",
            "unauthorized",
            "payload_too_large",
            "attachment_too_large",
            "missing_file",
            "attachment_storage_full",
        ];
        let core = crate::core::CoreError::iter().map(|e| e.code());
        for code in core.chain(http) {
            assert!(
                words.contains(&format!("  {code}:")),
                "web/common/errors.js has no words for {code}"
            );
        }
    }

    /// `target` (`./x.js` or `/common/x.js`) as a URL path, seen from the asset at `from`.
    fn resolve(from: &str, target: &str) -> String {
        match target.strip_prefix("./") {
            Some(file) => format!("{}/{file}", &from[..from.rfind('/').unwrap_or(0)]),
            None => target.to_string(),
        }
    }

    #[test]
    fn relative_imports_resolve_against_the_importing_file() {
        assert_eq!(resolve("/assets/app.js", "./store.js"), "/assets/store.js");
        assert_eq!(resolve("/common/socket.js", "./api.js"), "/common/api.js");
        assert_eq!(resolve("/supervisor/app.js", "/common/dom.js"), "/common/dom.js");
        assert_eq!(resolve("/demo/customer.js", "./x.js"), "/demo/x.js");
    }

    /// Every module the pages import, and every script and stylesheet their HTML names, is
    /// served: a missing entry here would be a 404 in the browser, which only the browser
    /// test would otherwise notice. (Imports are written on one line each.)
    #[test]
    fn every_imported_module_is_served() {
        let served: Vec<&str> = all().map(|a| a.path).collect();
        for asset in all() {
            for line in asset.body.lines() {
                let line = line.trim();
                let import = line
                    .strip_prefix("import ")
                    .and_then(|rest| rest.split(" from ").nth(1))
                    .map(|from| from.trim_matches(|c| c == '"' || c == '\'' || c == ';'));
                let tag = asset.content_type == HTML && (line.starts_with("<script") || line.starts_with("<link"));
                let html = ["src=\"", "href=\""]
                    .iter()
                    .find_map(|attr| line.split(attr).nth(1))
                    .and_then(|rest| rest.split('"').next())
                    .filter(|_| tag);
                for target in import.into_iter().chain(html) {
                    let path = resolve(asset.path, target);
                    assert!(
                        served.contains(&path.as_str()),
                        "{} names {target}, not served",
                        asset.path
                    );
                }
            }
        }
    }

    /// Every file under `web/` is served: a page file added without its line here would
    /// be missing from the binary.
    #[test]
    fn every_file_under_web_is_served() {
        let files: Vec<&str> = all().map(|a| a.file).collect();
        let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut stack = vec![web.clone()];
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read web/") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = path
                    .strip_prefix(&web)
                    .expect("under web/")
                    .to_string_lossy()
                    .replace('\\', "/");
                assert!(
                    files.contains(&name.as_str()),
                    "web/{name} is not served (src/api/pages.rs)"
                );
                seen += 1;
            }
        }
        assert_eq!(seen, files.len(), "every served file is a file under web/");
    }

    /// Modules are JavaScript, pages HTML, stylesheets CSS, by their file's extension.
    #[test]
    fn content_types_follow_the_file() {
        for a in all() {
            let want = match a.file.rsplit('.').next() {
                Some("js") => JS,
                Some("css") => CSS,
                Some("html") => HTML,
                other => panic!("web/{}: no content type for {other:?}", a.file),
            };
            assert_eq!(a.content_type, want, "{}", a.path);
        }
    }
}
