use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn healthz_and_readyz_answer_and_carry_a_request_id() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            response.headers().get("x-request-id").is_some_and(|id| !id.is_empty()),
            "{path}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[actix_web::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn_app().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    app.client.get(app.url("/api/nowhere")).send().await.unwrap();
    let text = app.text("/metrics", None).await;
    assert!(text.contains("dcports_http_requests_total"), "{text}");
    assert!(text.contains("endpoint=\"/healthz\""), "{text}");
    assert!(text.contains("status=\"404\""), "{text}");
    assert!(text.contains("dcports_http_requests_duration_seconds_bucket"), "{text}");
}

#[actix_web::test]
async fn the_openapi_document_lists_the_auth_and_admin_endpoints_with_their_errors() {
    let app = spawn_app().await;
    let doc = app.openapi().await;
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/me",
        "/api/admin/members",
        "/api/admin/members/{id}",
        "/api/admin/audit",
    ] {
        assert!(paths.contains_key(path), "missing {path}");
    }
    assert!(doc["paths"]["/api/auth/login"]["post"]["responses"]["429"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}
