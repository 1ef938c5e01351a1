//! The security fix of the metrics (../shared/API.md "Operations"): no request adds a series.
//! Alone in its test binary, because the metrics registry is shared by the process: a
//! test running beside it would add series of its own.

mod common;

use common::*;

/// The number of series (sample lines) in the `/metrics` exposition.
async fn series(s: &TestServer) -> usize {
    let body = s.call("GET", "/metrics", None, None).await;
    let text = body.body.as_str().expect("metrics text").to_string();
    text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count()
}

/// Story: an unauthenticated client sends requests with methods and paths it invents.
/// None of them adds a metric series: methods are labelled from the standard set plus
/// `other`, paths by their route template or `unmatched`.
#[actix_rt::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let s = TestServer::start().await;
    // One round of every shape first, so each label combination exists.
    let shapes = |i: usize| {
        [
            (format!("INVENTED{i}"), format!("/no/such/path/{i}")),
            (format!("X{i}"), "/api/v1/queues".to_string()),
            ("GET".to_string(), format!("/api/v1/queues/q{i}")),
            ("GET".to_string(), format!("/nothing-{i}?token=secret{i}")),
            (format!("M{i}"), format!("/api/v1/conversations/c-{i}/accept")),
        ]
    };
    for (method, path) in shapes(0) {
        s.call(&method, &path, Some("wrong-token"), None).await;
    }
    // The metrics request itself is counted after it answers.
    series(&s).await;
    let before = series(&s).await;
    for i in 1..200 {
        for (method, path) in shapes(i) {
            let a = s.call(&method, &path, Some("wrong-token"), None).await;
            assert!(a.status >= 400, "{method} {path}: {}", a.status);
        }
    }
    let after = series(&s).await;
    assert_eq!(before, after, "invented methods and paths added metric series");
    let text = s.call("GET", "/metrics", None, None).await.body;
    let text = text.as_str().unwrap();
    assert!(text.contains("method=\"other\""), "invented methods count as other");
    assert!(text.contains("route=\"unmatched\""), "unknown paths count as unmatched");
    assert!(text.contains("route=\"/api/v1/queues/{id}\""), "routes by template");
    assert!(!text.contains("INVENTED"), "no method is taken from the request");
    assert!(!text.contains("secret"), "no path is taken from the request");
}
