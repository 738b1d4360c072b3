use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

async fn member_count(app: &crate::helpers::TestApp, admin: &str) -> usize {
    let (_, list) = app.get("/api/admin/members?limit=200", admin).await;
    list["items"].as_array().unwrap().len()
}

pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], expected.as_u16());
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
}

/// Asserts that `response` is a 415 `unsupported_media_type` problem, and returns the problem.
pub async fn assert_unsupported(response: reqwest::Response) -> Value {
    let status = response.status();
    let problem: Value = response.json().await.unwrap();
    assert_problem(
        status,
        &problem,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    problem
}

#[actix_web::test]
async fn unknown_routes_and_wrong_methods_answer_problem_json() {
    let app = spawn_app().await;
    for (method, path, status, code) in [
        (Method::GET, "/api/does-not-exist", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/nothing/here", StatusCode::NOT_FOUND, "not_found"),
        (
            Method::DELETE,
            "/healthz",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/api/auth/login",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ] {
        let response = app.client.request(method.clone(), app.url(path)).send().await.unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{method} {path}"
        );
        let status_got = response.status();
        let body: Value = response.json().await.unwrap();
        assert_problem(status_got, &body, status, code);
    }
}

#[actix_web::test]
async fn bad_bodies_get_clear_4xx_problems_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let before = member_count(&app, &admin).await;
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.client
            .post(app.url("/api/admin/members"))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, &str, StatusCode, &str)> = vec![
        (
            b"{\"email\": ".to_vec(),
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (b"".to_vec(), "application/json", StatusCode::BAD_REQUEST, "bad_request"),
        (
            vec![b'{', 0xff, 0xfe, b'}'],
            "application/json",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            b"email=a@b.org".to_vec(),
            "application/x-www-form-urlencoded",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            format!(
                "{{\"email\":\"a@b.org\",\"name\":\"{}\",\"role\":\"member\"}}",
                "x".repeat(2 * 1024 * 1024)
            )
            .into_bytes(),
            "application/json",
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (body, content_type, status, code) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let response = send(body, content_type).await.unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{preview}"
        );
        let got = response.status();
        let problem: Value = response.json().await.unwrap();
        assert_problem(got, &problem, status, code);
    }

    // JSON of the wrong shape names the field it is wrong about (API.md: `validation_failed`
    // with `errors: [{field, message}]`), however serde met it.
    for (body, field) in [
        (json!({}), "email"),
        (json!({ "email": 42, "name": [], "role": "member" }), "email"),
        (json!({ "email": "a@b.org", "name": "x", "role": "emperor" }), "role"),
        (
            json!({ "email": "a@b.org", "name": "x", "role": "member", "extra": 1 }),
            "extra",
        ),
        (json!({ "email": "a@b.org", "name": "x" }), "role"),
    ] {
        let response = send(body.to_string().into_bytes(), "application/json").await.unwrap();
        let got = response.status();
        let problem: Value = response.json().await.unwrap();
        assert_problem(got, &problem, StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
        assert!(
            !problem["errors"][0]["message"].as_str().unwrap().contains("line"),
            "{problem}"
        );
    }

    for (body, field) in [
        (
            json!({ "email": "not-an-email", "name": "X", "role": "member" }),
            "email",
        ),
        (json!({ "email": "a@b.org", "name": "   ", "role": "member" }), "name"),
        (
            json!({ "email": "a@b.org", "name": "n".repeat(201), "role": "member" }),
            "name",
        ),
        (
            json!({ "email": format!("{}@b.org", "a".repeat(300)), "name": "X", "role": "member" }),
            "email",
        ),
        (
            json!({ "email": "x'); DROP TABLE members;--@b.org", "name": "X", "role": "member" }),
            "email",
        ),
        (
            json!({ "email": "a@b.org", "name": "X", "role": "member", "organization_id": 77 }),
            "organization_id",
        ),
    ] {
        let (status, problem) = app.post("/api/admin/members", Some(&admin), body.clone()).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(member_count(&app, &admin).await, before, "nothing was written");
}

#[actix_web::test]
async fn sql_metacharacters_in_a_login_are_just_a_wrong_login() {
    let app = spawn_app().await;
    app.secretariat("admin@sela.org").await;
    for email in [
        "admin@sela.org' OR '1'='1",
        "' OR 1=1 --",
        "admin@sela.org\"; DROP TABLE members; --",
    ] {
        let (status, body) = app.login(email, "anything at all, long").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{email}: {body}");
    }
    assert_eq!(
        app.login("admin@sela.org", crate::helpers::PASSWORD).await.0,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for path in ["/healthz", "/api/me", "/missing"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(
            headers.get("strict-transport-security").is_none(),
            "no HSTS over plain http"
        );
    }
}

#[actix_web::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.server.public_url = "https://portal.sela.org".parse().unwrap();
    })
    .await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}

#[actix_web::test]
async fn cors_answers_only_the_allowed_origins() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.server.allowed_origins = vec!["https://portal.sela.org".to_owned()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://portal.sela.org").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://portal.sela.org"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused.headers().get("access-control-allow-origin").is_none());
    // Refused like any other bad request: problem+json, with the security headers.
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "bad_request", "{problem}");
}

#[actix_web::test]
async fn cors_lets_a_browser_on_an_allowed_origin_resume_a_download_and_read_its_name() {
    let app = crate::helpers::spawn_app_with(|settings| {
        settings.server.allowed_origins = vec!["https://portal.sela.org".to_owned()];
    })
    .await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/api/public/publications"))
        .header("origin", "https://portal.sela.org")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range, if-range")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for needed in ["range", "if-range"] {
        assert!(allowed.split(", ").any(|name| name == needed), "{allowed}");
    }

    let answer = app
        .client
        .get(app.url("/api/public/countries"))
        .header("origin", "https://portal.sela.org")
        .send()
        .await
        .unwrap();
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for needed in ["content-range", "content-disposition", "accept-ranges", "etag"] {
        assert!(exposed.split(", ").any(|name| name == needed), "{exposed}");
    }
}

#[actix_web::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let login = |app: &crate::helpers::TestApp, client_ip: &'static str| {
        app.client
            .post(app.url("/api/auth/login"))
            .header("x-forwarded-for", client_ip)
            .json(&json!({ "email": "x@y.org", "password": "wrong but long enough" }))
            .send()
    };
    // Behind a trusted proxy, each client has its own budget.
    let trusted = crate::helpers::spawn_app_with(|settings| {
        settings.auth.max_failures_per_ip = 2;
        settings.auth.max_failures_per_account = 100;
        settings.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            login(&trusted, "203.0.113.7").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&trusted, "203.0.113.7").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login(&trusted, "203.0.113.8").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // From an untrusted peer the header is ignored: spoofing it does not reset the budget.
    let untrusted = crate::helpers::spawn_app_with(|settings| {
        settings.auth.max_failures_per_ip = 2;
        settings.auth.max_failures_per_account = 100;
    })
    .await;
    for ip in ["198.51.100.1", "198.51.100.2"] {
        assert_eq!(login(&untrusted, ip).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login(&untrusted, "198.51.100.3").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[actix_web::test]
async fn every_documented_operation_lists_its_error_responses() {
    let app = spawn_app().await;
    let doc = app.openapi().await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            if path == "/healthz" || path == "/readyz" {
                continue;
            }
            assert!(
                responses.keys().any(|status| status.starts_with('4')),
                "{method} {path} documents no 4xx"
            );
            // Errors are documented as they are sent: problem+json.
            for (status, response) in responses.iter().filter(|(status, _)| !status.starts_with('2')) {
                for media_type in response["content"].as_object().into_iter().flatten().map(|(t, _)| t) {
                    assert_eq!(media_type, "application/problem+json", "{method} {path} {status}");
                }
            }
            // What every body and every query can meet: 400, and 415 for a body.
            let takes_query = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|parameter| parameter["in"] == "query");
            if operation.get("requestBody").is_some() || takes_query {
                assert!(responses.contains_key("400"), "{method} {path} documents no 400");
            }
            if operation.get("requestBody").is_some() {
                assert!(responses.contains_key("415"), "{method} {path} documents no 415");
            }
            // A page's size is bounded as the server bounds it.
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["name"] == "limit" {
                    let schema = &parameter["schema"];
                    assert_eq!(
                        (&schema["minimum"], &schema["maximum"]),
                        (&json!(1), &json!(200)),
                        "{method} {path}"
                    );
                }
            }
        }
    }
}

#[actix_web::test]
async fn documented_parameters_are_where_the_request_carries_them() {
    let app = spawn_app().await;
    let doc = app.openapi().await;
    let mut query_parameters = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                match parameter["in"].as_str().unwrap() {
                    // A path parameter names a segment of the path template, and only those do.
                    "path" => assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: `{name}` is documented in the path"
                    ),
                    "query" => {
                        assert!(!path.contains(&format!("{{{name}}}")), "{method} {path}: `{name}`");
                        query_parameters += 1;
                    }
                    other => panic!("{method} {path}: `{name}` in {other}"),
                }
            }
        }
    }
    assert!(
        query_parameters > 0,
        "paging, filters and the event feed take query parameters"
    );
}

/// Values the database could not store as sent (too long for a column, a date outside the years
/// PostgreSQL keeps) are refused as the client's mistake with the field named, or stored whole;
/// never a 500 from the database, and nothing written.
#[actix_web::test]
async fn values_at_the_limits_of_what_the_database_stores_are_stored_or_refused_never_a_500() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = crate::committees::committee(&app, &admin, "C").await;

    // The longest name and website together fold to more than the search column's old limit.
    let name = "Autoridad Portuaria ".repeat(10);
    let website = format!("https://{}.example.org/{}", "puerto".repeat(10), "ruta".repeat(100));
    assert!(name.chars().count() == 200 && website.len() <= 500);
    let (status, organization) = app
        .post(
            "/api/admin/directory/organizations",
            Some(&admin),
            json!({ "name": name.trim(), "kind": "port_authority", "country_code": "PE", "website": website }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{organization}");
    let contact =
        json!({ "organization_id": organization["id"], "name": "Directora", "position": "Gerente", "public": true });
    let (status, body) = app.post("/api/admin/directory/contacts", Some(&admin), contact).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Found by the end of its website: the whole folded text was stored.
    let (_, found) = app.get("/api/public/directory?q=rutaruta", &admin).await;
    assert_eq!(found["items"][0]["website"].as_str(), Some(website.as_str()), "{found}");

    let (status, meeting) = app
        .post(
            &format!("/api/committees/{c}/meetings"),
            Some(&admin),
            json!({ "title": "M", "starts_at": "2027-03-01T14:00:00Z", "ends_at": "2027-03-01T15:00:00Z", "timezone": "UTC" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{meeting}");
    let meeting_path = format!("/api/meetings/{}", meeting["id"]);
    let refusals = [
        (
            Method::PATCH,
            meeting_path.clone(),
            json!({ "location": "x".repeat(301) }),
            "location",
        ),
        (
            Method::PATCH,
            meeting_path.clone(),
            json!({ "starts_at": "0000-06-01T00:00:00Z" }),
            "starts_at",
        ),
        (
            Method::POST,
            format!("/api/committees/{c}/tasks"),
            json!({ "title": "T", "due_on": "0000-12-31" }),
            "due_on",
        ),
    ];
    for (method, path, body, field) in refusals {
        let (status, problem) = app.call(method.clone(), &path, Some(&admin), Some(body)).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{method} {path}: {problem}");
    }
    let (_, stored) = app.get(&meeting_path, &admin).await;
    assert_eq!(
        (stored["version"].as_i64(), stored["location"].clone()),
        (Some(1), Value::Null)
    );
    let (_, tasks) = app.get(&format!("/api/committees/{c}/tasks"), &admin).await;
    assert_eq!(tasks["items"], json!([]));
}

/// A NUL character (U+0000) is refused wherever text comes in, as 400 on both databases
/// (PostgreSQL cannot store it, and answered 500), and nothing is written.
#[actix_web::test]
async fn text_with_a_nul_character_is_refused_everywhere_and_writes_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = crate::committees::committee(&app, &admin, "C").await;
    let tasks = format!("/api/committees/{c}/tasks");

    // JSON: as an escape in a string, in any field, at any depth.
    for body in [
        json!({ "title": "a\u{0}b" }),
        json!({ "title": "ok", "description": "x\u{0}" }),
    ] {
        let (status, problem) = app.post(&tasks, Some(&admin), body).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, problem) = app
        .call(Method::PATCH, "/api/me", Some(&admin), Some(json!({ "name": "\u{0}" })))
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad_request");
    let (_, list) = app.get(&tasks, &admin).await;
    assert_eq!(list["items"], json!([]), "nothing was written");
    // A backslash followed by the letters u0000 is text like any other.
    let (status, task) = app.post(&tasks, Some(&admin), json!({ "title": "a\\u0000b" })).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["title"], "a\\u0000b");

    // A compressed body is read as the endpoint reads it: decompressed. A plain one goes through
    // (a gzip header holds zero bytes of its own); a NUL inside is found.
    let gzip = |body: Value| {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(body.to_string().as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    for (body, expected) in [
        (json!({ "title": "compressed" }), StatusCode::CREATED),
        (json!({ "title": "com\u{0}pressed" }), StatusCode::BAD_REQUEST),
    ] {
        let response = app
            .client
            .post(app.url(&tasks))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(body))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    // Query strings and paths, the public area's included.
    for path in [
        "/api/public/directory?q=%00",
        "/api/public/port-communities?country=%00",
        "/api/public/indicators/%00/values",
    ] {
        let (status, problem) = app.call(Method::GET, path, None, None).await;
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, problem) = app.get(&format!("{tasks}?q=%00"), &admin).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad_request");

    // A multipart text field; the file itself may hold any bytes.
    let pdf = crate::documents::pdf("with a \0 inside");
    let documents = format!("/api/committees/{c}/documents");
    let (status, problem) = app
        .upload(&documents, &admin, "a.pdf", pdf.clone(), &[("title", "a\0b")], None)
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
    let (status, document) = app
        .upload(&documents, &admin, "a.pdf", pdf, &[("title", "Binary inside")], None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");

    // A CSV import.
    let csv = "organization,kind,country_code,port_community_id,website,name,position,email,phone,public\n\
               Autoridad\0 Portuaria,port_authority,EC,,,María Ruiz,Gerente,,,true\n";
    let response = app
        .client
        .post(app.url("/api/admin/directory/import"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let problem: Value = response.json().await.unwrap();
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
}

/// A compressed body that does not decompress is 400 with the decoder's reason in words, read
/// by the API's JSON extractor or by the framework's (the CSV import), and nothing is written.
#[actix_web::test]
async fn a_body_that_does_not_decompress_is_refused_in_words() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    for (path, content_type) in [
        ("/api/admin/committees", "application/json"),
        ("/api/admin/directory/import", "text/csv"),
    ] {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .header("content-encoding", "gzip")
            .body("not gzip at all")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let problem: Value = response.json().await.unwrap();
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "bad_request");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("could not read the body: ") && detail.contains("gzip"),
            "{path}: {detail}"
        );
        assert!(
            !detail.contains("Some(") && !detail.contains("kind:"),
            "{path}: {detail}"
        );
    }
    let (_, committees) = app.get("/api/committees", &admin).await;
    assert_eq!(committees["items"], json!([]), "nothing was written");
}

/// A path served under other methods answers a method it is not served with 405, with the
/// methods it is served with in `Allow` (RFC 9110 §15.5.6), before anything else is checked:
/// every path of the OpenAPI document, and the two routes outside it. Every GET answers HEAD.
#[actix_web::test]
async fn every_path_answers_a_method_it_is_not_served_with_405_and_allow() {
    let app = spawn_app().await;
    let doc = app.openapi().await;
    let mut paths: Vec<(String, Vec<String>)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let served = item.as_object().unwrap().keys().map(|method| method.to_uppercase());
            (path.clone(), served.collect())
        })
        .collect();
    for undocumented in ["/api/openapi.json", "/ws"] {
        paths.push((undocumented.to_owned(), vec!["GET".to_owned()]));
    }
    // A path is served with the methods of every template it fits, as actix routes it:
    // `/api/admin/indicators/values` fits `/api/admin/indicators/{id}` too.
    let fits = |template: &str, path: &str| {
        let (template, path): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
        template.len() == path.len()
            && template
                .iter()
                .zip(&path)
                .all(|(expected, given)| expected == given || expected.starts_with('{'))
    };
    let order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
    for (template, _) in &paths {
        // Every parameter of every template reads "1" (an id, a code, a channel).
        let path: String = template
            .split('/')
            .map(|segment| if segment.starts_with('{') { "1" } else { segment })
            .collect::<Vec<_>>()
            .join("/");
        let mut served: Vec<&str> = paths
            .iter()
            .filter(|(other, _)| fits(other, &path))
            .flat_map(|(_, methods)| methods.iter().map(String::as_str))
            .collect();
        if served.contains(&"GET") {
            served.push("HEAD");
        }
        let allow: Vec<&str> = order.into_iter().filter(|method| served.contains(method)).collect();
        let refused = ["DELETE", "PUT", "POST", "GET"]
            .into_iter()
            .find(|method| !allow.contains(method))
            .unwrap();
        // Every documented method is routed: none of them is answered 405.
        for method in allow.iter().filter(|method| **method != "HEAD") {
            let response = app
                .client
                .request(method.parse().unwrap(), app.url(&path))
                .send()
                .await
                .unwrap();
            assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        }
        let response = app
            .client
            .request(refused.parse().unwrap(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{refused} {path}");
        assert_eq!(
            response.headers()["allow"],
            allow.join(", ").as_str(),
            "{refused} {path}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "method_not_allowed", "{refused} {path}");
    }
    // A path no route serves stays 404, whatever the method.
    for (method, path) in [
        ("GET", "/api/nothing"),
        ("DELETE", "/api/tasks/1/nothing"),
        ("POST", "/nothing"),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        assert!(!response.headers().contains_key("allow"), "{method} {path}");
    }
}

/// HEAD is GET without the body: the same status and headers, the length the body would have,
/// no bytes; on the API as on the public area, and after the same authorization.
#[actix_web::test]
async fn every_get_answers_head_with_its_headers_and_no_body() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    for (path, token) in [
        ("/api/me", Some(&admin)),
        ("/api/admin/members", Some(&admin)),
        ("/api/public/countries", None),
        ("/healthz", None),
        ("/api/me", None),
    ] {
        let request = |method: Method| {
            let request = app.client.request(method, app.url(path));
            match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        };
        let get = request(Method::GET).send().await.unwrap();
        let (status, headers) = (get.status(), get.headers().clone());
        let length = get.bytes().await.unwrap().len();
        let head = request(Method::HEAD).send().await.unwrap();
        assert_eq!(head.status(), status, "{path}");
        assert_eq!(head.headers()["content-length"], length.to_string().as_str(), "{path}");
        for name in ["content-type", "etag", "cache-control"] {
            assert_eq!(head.headers().get(name), headers.get(name), "{path}: {name}");
        }
    }

    // On the wire, no byte of the body follows the headers (a client never reads one after a
    // HEAD, so only the raw connection can tell): read to its close, it ends with the headers.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = "HEAD /api/public/countries HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    connection.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).await.unwrap();
    let (headers, rest) = answer.split_once("\r\n\r\n").unwrap();
    assert!(headers.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !headers.contains("content-length: 0"),
        "the length of the GET's body: {headers}"
    );
    assert_eq!(rest, "", "body bytes after a HEAD's headers");
}

/// Every body is a JSON object: an array of a struct's fields in order, which serde would
/// read, is refused, and a body of another type is told so without naming our types.
#[actix_web::test]
async fn a_body_that_is_not_an_object_is_refused() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    for (path, token, body) in [
        (
            "/api/auth/login",
            None,
            r#"["admin@sela.org", "a password of some length"]"#,
        ),
        ("/api/admin/committees", Some(&admin), r#" ["Experts", "technical"]"#),
        ("/api/admin/committees", Some(&admin), r#""Experts""#),
        ("/api/admin/committees", Some(&admin), "5"),
    ] {
        let request = app
            .client
            .post(app.url(path))
            .header("content-type", "application/json");
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.body(body).send().await.unwrap();
        let status = response.status();
        let problem: Value = response.json().await.unwrap();
        assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(
            problem["errors"][0],
            json!({ "field": "body", "message": "must be a JSON object" }),
            "{path} {body}"
        );
    }
    let (_, committees) = app.get("/api/committees", &admin).await;
    assert_eq!(committees["items"], json!([]), "nothing was written");
}

/// A body in a content coding the server cannot undo is refused (415), not read as if it were
/// plain, and nothing is written.
#[actix_web::test]
async fn a_body_in_an_unknown_content_coding_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = crate::committees::committee(&app, &admin, "C").await;
    let tasks = format!("/api/committees/{c}/tasks");
    for coding in ["zzz", "gzip, zzz", "compress"] {
        let response = app
            .client
            .post(app.url(&tasks))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .header("content-encoding", coding)
            .body(json!({ "title": "not really encoded" }).to_string())
            .send()
            .await
            .unwrap();
        assert_unsupported(response).await;
    }
    let (_, list) = app.get(&tasks, &admin).await;
    assert_eq!(list["items"], json!([]), "nothing was written");
}

/// JSON is read only in UTF-8: a body declared in another charset is refused (415, saying what
/// to send), not read as if it were UTF-8, and nothing is written. A charset that is UTF-8,
/// however it is spelt, is read.
#[actix_web::test]
async fn a_body_declared_in_another_charset_than_utf8_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = crate::committees::committee(&app, &admin, "C").await;
    let tasks = format!("/api/committees/{c}/tasks");
    let create = |content_type: &str, title: &str| {
        app.client
            .post(app.url(&tasks))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(json!({ "title": title }).to_string())
            .send()
    };
    for charset in ["utf-16", "ISO-8859-1", "windows-1252"] {
        let response = create(&format!("application/json; charset={charset}"), "Revisión")
            .await
            .unwrap();
        let problem = assert_unsupported(response).await;
        assert!(problem["detail"].as_str().unwrap().contains("UTF-8"), "{problem}");
    }
    let (_, list) = app.get(&tasks, &admin).await;
    assert_eq!(list["items"], json!([]), "nothing was written");

    for content_type in ["application/json; charset=UTF-8", "application/json; charset=\"utf-8\""] {
        let response = create(content_type, "Revisión").await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{content_type}");
    }
    let (_, list) = app.get(&tasks, &admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(list["items"][0]["title"], "Revisión");
}

/// The bounds the OpenAPI document gives a field are the server's: at the documented maximum a
/// value is taken, one past it is `validation_failed` naming the field. (A sample: a
/// committee's name, a task's title, a comment's body, an agenda item's duration.)
#[actix_web::test]
async fn documented_bounds_are_the_servers() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let doc = app.openapi().await;
    let bound = |schema: &str, field: &str, key: &str| {
        let value = &doc["components"]["schemas"][schema]["properties"][field][key];
        value
            .as_u64()
            .unwrap_or_else(|| panic!("{schema}.{field} documents no {key}")) as usize
    };
    let name_max = bound("CreateCommitteeRequest", "name", "maxLength");
    let committee = |name: String| {
        app.post(
            "/api/admin/committees",
            Some(&admin),
            json!({ "name": name, "kind": "technical" }),
        )
    };
    let (status, created) = committee("n".repeat(name_max)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, problem) = committee("n".repeat(name_max + 1)).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "name");

    let tasks = format!("/api/committees/{}/tasks", created["id"]);
    let title_max = bound("CreateTaskRequest", "title", "maxLength");
    let task = |title: String| app.post(&tasks, Some(&admin), json!({ "title": title }));
    let (status, created) = task("t".repeat(title_max)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, problem) = task("t".repeat(title_max + 1)).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "title");

    let comments = format!("/api/tasks/{}/comments", created["id"]);
    let body_max = bound("CommentRequest", "body", "maxLength");
    let comment = |body: String| app.post(&comments, Some(&admin), json!({ "body": body }));
    assert_eq!(comment("b".repeat(body_max)).await.0, StatusCode::CREATED);
    let (status, problem) = comment("b".repeat(body_max + 1)).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(problem["errors"][0]["field"], "body");

    let (minimum, maximum) = (
        bound("CreateAgendaItemRequest", "duration_minutes", "minimum"),
        bound("CreateAgendaItemRequest", "duration_minutes", "maximum"),
    );
    assert_eq!(
        (minimum, maximum),
        (1, 24 * 60),
        "a day at most, as `check_duration` has it"
    );
}

/// A query parameter with a fixed set of values is documented with that set, and the server
/// takes exactly it: each value is answered 200, any other 400 naming the parameter. Sent with
/// no value (`?status=`, what a form's "any" choice sends), a parameter is read as absent.
#[actix_web::test]
async fn a_query_parameter_of_fixed_values_is_documented_with_exactly_the_values_taken() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = crate::committees::committee(&app, &admin, "C").await;
    let starts = chrono::Utc::now() + chrono::Duration::days(7);
    let body = json!({ "title": "M", "starts_at": starts, "ends_at": starts + chrono::Duration::hours(1), "timezone": "America/Lima" });
    let meeting = crate::meetings::create_meeting(&app, &admin, c, body).await;
    let m = meeting["id"].as_i64().unwrap();
    let doc = app.openapi().await;
    let cases = [
        (
            "/api/committees/{id}/tasks",
            format!("/api/committees/{c}/tasks"),
            "status",
        ),
        (
            "/api/committees/{id}/documents",
            format!("/api/committees/{c}/documents"),
            "status",
        ),
        (
            "/api/meetings/{id}/minutes",
            format!("/api/meetings/{m}/minutes"),
            "format",
        ),
        ("/api/admin/members", "/api/admin/members".to_owned(), "status"),
        (
            "/api/admin/publications",
            "/api/admin/publications".to_owned(),
            "status",
        ),
        (
            "/api/admin/indicators/values",
            "/api/admin/indicators/values".to_owned(),
            "status",
        ),
        ("/api/public/directory", "/api/public/directory".to_owned(), "kind"),
        (
            "/api/public/publications",
            "/api/public/publications".to_owned(),
            "kind",
        ),
    ];
    for (template, path, name) in cases {
        let parameter = doc["paths"][template]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{template} has parameters"))
            .iter()
            .find(|parameter| parameter["name"] == name)
            .unwrap_or_else(|| panic!("{template} documents `{name}`"));
        let values = enum_values(&parameter["schema"]);
        assert!(values.len() >= 2, "{template}: `{name}` lists its values: {parameter}");
        for value in &values {
            let (status, body) = app.get(&format!("{path}?{name}={value}"), &admin).await;
            assert_eq!(status, StatusCode::OK, "{template}?{name}={value}: {body}");
        }
        let (status, body) = app.get(&format!("{path}?{name}=sleeping"), &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{template}: {body}");
        assert_eq!(body["errors"][0]["field"], name, "{template}: {body}");

        let (status, blank) = app.get(&format!("{path}?{name}=&limit="), &admin).await;
        let (_, absent) = app.get(&path, &admin).await;
        assert_eq!((status, &blank), (StatusCode::OK, &absent), "{template}?{name}=");
    }

    // Each form of the minutes is documented with its media type.
    let minutes = &doc["paths"]["/api/meetings/{id}/minutes"]["get"]["responses"]["200"]["content"];
    for media in ["application/json", "text/markdown"] {
        assert!(minutes[media].is_object(), "{media}: {minutes}");
    }

    // A required parameter sent empty is missing, and said so.
    let (status, body) = app.get("/api/events?channel=", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "channel", "{body}");
}

/// The strings of the first `enum` in a schema, however it is wrapped (`oneOf` with `null`).
fn enum_values(schema: &Value) -> Vec<String> {
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .filter_map(|value| value.as_str().map(str::to_owned))
            .collect();
    }
    ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|key| schema[key].as_array())
        .flatten()
        .map(enum_values)
        .find(|values| !values.is_empty())
        .unwrap_or_default()
}

/// The forms that upload files are documented as forms, with the parts they cannot go without.
#[actix_web::test]
async fn the_upload_forms_are_documented_with_their_required_parts() {
    let app = spawn_app().await;
    let doc = app.openapi().await;
    for (path, required) in [
        ("/api/committees/{id}/documents", vec!["file", "title"]),
        ("/api/documents/{id}/versions", vec!["file"]),
    ] {
        let schema = &doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(reference) => &doc["components"]["schemas"][reference.rsplit('/').next().unwrap()],
            None => schema,
        };
        let mut listed: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        listed.sort();
        assert_eq!(listed, required, "{path}: {schema}");
        assert_eq!(schema["properties"]["file"]["format"], "binary", "{path}: {schema}");
    }
}

/// A write whose reference was checked and then removed by another write before it committed
/// fails on the foreign key, on either database: a 409 to try again, not a 500.
#[actix_web::test]
async fn a_write_referring_to_a_row_removed_meanwhile_is_a_conflict() {
    use actix_web::ResponseError as _;
    use sea_orm::{ActiveModelTrait, Set};

    let app = spawn_app().await;
    let refused = entity::document_tag::ActiveModel {
        document_id: Set(999_999),
        tag: Set("gone".to_owned()),
    }
    .insert(app.db.conn())
    .await
    .expect_err("no such document");
    let response = dcports::error::ApiError::from(refused).error_response();
    assert_eq!(response.status(), actix_web::http::StatusCode::CONFLICT);
    let body = actix_web::body::to_bytes(response.into_body()).await.unwrap();
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["code"], "conflict", "{problem}");
}
