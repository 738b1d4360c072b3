use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, spawn_app};

/// What anyone may call without a bearer token: the public area, health and metrics, the
/// authentication steps themselves, and the calendar feed (its token is in its URL).
fn is_public(path: &str) -> bool {
    const OPEN: [&str; 7] = [
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/invitations/accept",
        "/api/auth/password/forgot",
        "/api/auth/password/reset",
        "/api/me/calendar.ics",
    ];
    // Outside /api: health, metrics, the public pages (and /ws, which authenticates in-band).
    !path.starts_with("/api/") || path.starts_with("/api/public/") || OPEN.contains(&path)
}

/// Every (method, path) of the OpenAPI document but the public ones, with path parameters
/// filled in. Iterating the document means a new endpoint is covered automatically, whether
/// or not its documentation says it needs a token (it must say so, too).
async fn private_operations(app: &TestApp) -> Vec<(Method, String)> {
    let doc = app.openapi().await;
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if is_public(path) {
                continue;
            }
            assert!(
                operation.get("security").is_some(),
                "{method} {path} is private but documented without a bearer token"
            );
            let concrete = path
                .split('/')
                .map(|part| if part.starts_with('{') { "1" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            operations.push((method.to_uppercase().parse().unwrap(), concrete));
        }
    }
    assert!(
        operations.len() >= 9,
        "the document lists too few private operations: {operations:?}"
    );
    operations
}

#[actix_web::test]
async fn every_private_endpoint_answers_401_without_a_token() {
    let app = spawn_app().await;
    for (method, path) in private_operations(&app).await {
        let (status, body) = app.call(method.clone(), &path, None, Some(json!({}))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(body["code"], "unauthorized", "{method} {path}");
        let (status, _) = app
            .call(method.clone(), &path, Some("garbage.token.here"), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with a garbage token");
    }
}

#[actix_web::test]
async fn a_member_gets_403_on_every_admin_endpoint() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let member = app.member(&admin, "m@port.pe").await;
    let token = member["access_token"].as_str().unwrap();
    let admin_operations: Vec<_> = private_operations(&app)
        .await
        .into_iter()
        .filter(|(_, path)| path.starts_with("/api/admin"))
        .collect();
    assert!(admin_operations.len() >= 7);
    for (method, path) in admin_operations {
        let (status, body) = app.call(method.clone(), &path, Some(token), Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(body["code"], "forbidden");
    }
}

#[actix_web::test]
async fn a_taken_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    app.invite(&admin, "ana@puerto.cl").await;
    let (status, body) = app
        .post(
            "/api/admin/members",
            Some(&admin),
            json!({ "email": "ANA@Puerto.cl", "name": "Ana", "role": "member" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "conflict");
    let (_, list) = app.get("/api/admin/members?q=ana", &admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn members_are_listed_with_filters_and_stable_pages() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    for n in 0..5 {
        app.invite(&admin, &format!("person{n}@port.org")).await;
    }
    let (status, page1) = app.get("/api/admin/members?limit=2&status=invited", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(
            &format!("/api/admin/members?limit=2&status=invited&cursor={cursor}"),
            &admin,
        )
        .await;
    let (_, page3) = app
        .get(
            &format!(
                "/api/admin/members?limit=2&status=invited&cursor={}",
                page2["next_cursor"].as_str().unwrap()
            ),
            &admin,
        )
        .await;
    let emails: Vec<String> = [&page1, &page2, &page3]
        .iter()
        .flat_map(|page| {
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["email"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        emails,
        (0..5).map(|n| format!("person{n}@port.org")).collect::<Vec<_>>()
    );
    assert_eq!(page3["next_cursor"], Value::Null);
    // An empty cursor is the first page, as none is.
    let (_, first) = app.get("/api/admin/members?limit=2", &admin).await;
    let (status, empty) = app.get("/api/admin/members?limit=2&cursor=", &admin).await;
    assert_eq!((status, &empty), (StatusCode::OK, &first));

    let (_, active) = app.get("/api/admin/members?status=active", &admin).await;
    assert_eq!(active["items"].as_array().unwrap().len(), 1);
    let (_, found) = app.get("/api/admin/members?q=PERSON3", &admin).await;
    assert_eq!(found["items"][0]["email"], "person3@port.org");
    let (_, none) = app.get("/api/admin/members?q=%25", &admin).await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0, "a % in q matches literally");

    for bad in [
        "limit=0",
        "limit=201",
        "cursor=nonsense",
        "status=sleeping",
        "limit=abc",
    ] {
        let (status, body) = app.get(&format!("/api/admin/members?{bad}"), &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], "validation_failed", "{bad}: {body}");
        let parameter = bad.split('=').next().unwrap();
        assert_eq!(body["errors"][0]["field"], parameter, "{bad}: {body}");
    }
}

#[actix_web::test]
async fn a_new_invitation_voids_the_previous_link() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let id = app.invite(&admin, "late@port.org").await;
    let first = app.token_from_mail("late@port.org", "/invitation").await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/members/{id}/invitation"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let second = loop {
        let token = app.token_from_mail("late@port.org", "/invitation").await;
        if token != first {
            break token;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let accept = |token: String| json!({ "token": token, "name": "Late", "password": PASSWORD });
    assert_eq!(
        app.post("/api/auth/invitations/accept", None, accept(first)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.post("/api/auth/invitations/accept", None, accept(second)).await.0,
        StatusCode::OK
    );
    // Accepted: re-inviting is now a conflict.
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/members/{id}/invitation"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[actix_web::test]
async fn the_secretariat_sends_a_reset_link_that_works() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let member = app.member(&admin, "m@port.pe").await;
    let id = member["member"]["id"].as_i64().unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/members/{id}/password-reset"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let token = app.token_from_mail("m@port.pe", "/password-reset").await;
    let (status, _) = app
        .post(
            "/api/auth/password/reset",
            None,
            json!({ "token": token, "password": "reset by the secretariat" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("m@port.pe", "reset by the secretariat").await.0,
        StatusCode::OK
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/admin/members/9999/password-reset",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_secretariat_cannot_suspend_itself_and_can_reactivate_others() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let (_, me) = app.get("/api/me", &admin).await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/admin/members/{}", me["id"]),
            Some(&admin),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "validation_failed");

    let member = app.member(&admin, "m@port.pe").await;
    let id = member["member"]["id"].as_i64().unwrap();
    let path = format!("/api/admin/members/{id}");
    app.call(
        Method::PATCH,
        &path,
        Some(&admin),
        Some(json!({ "status": "suspended" })),
    )
    .await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({ "status": "active", "role": "secretariat" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "secretariat");
    assert_eq!(app.login("m@port.pe", PASSWORD).await.0, StatusCode::OK);

    let invited = app.invite(&admin, "new@port.pe").await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/admin/members/{invited}"),
            Some(&admin),
            Some(json!({ "status": "active" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an invited account is activated by its owner only"
    );

    // Suspended before it accepted its invitation: lifting the suspension makes it invited
    // again, and only then can a new invitation be sent; the link sent before is dead (the
    // suspension may have been for a link that reached the wrong person).
    let old_link = app.token_from_mail("new@port.pe", "/invitation").await;
    let path = format!("/api/admin/members/{invited}");
    let suspend = json!({ "status": "suspended" });
    assert_eq!(
        app.call(Method::PATCH, &path, Some(&admin), Some(suspend)).await.0,
        StatusCode::OK
    );
    let resend = format!("{path}/invitation");
    let (status, problem) = app.call(Method::POST, &resend, Some(&admin), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("suspended"), "{problem}");
    let lift = json!({ "status": "active" });
    let (status, body) = app.call(Method::PATCH, &path, Some(&admin), Some(lift)).await;
    assert_eq!((status, &body["status"]), (StatusCode::OK, &json!("invited")), "{body}");
    let accept = json!({ "token": old_link, "name": "Taker", "password": PASSWORD });
    let (status, problem) = app.post("/api/auth/invitations/accept", None, accept).await;
    assert_eq!(
        (status, &problem["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_token"))
    );
    assert_eq!(
        app.call(Method::POST, &resend, Some(&admin), None).await.0,
        StatusCode::ACCEPTED
    );

    let (_, audit) = app.get("/api/admin/audit?action=member.suspended", &admin).await;
    let mut suspended: Vec<i64> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["target_id"].as_i64().unwrap())
        .collect();
    suspended.sort_unstable();
    assert_eq!(suspended, [id, invited], "{audit}");
}

/// An account's `version` moves with every change it shows, a deleted organization's included
/// (its members lose it): an edit sent with the version from before is refused with 412.
#[actix_web::test]
async fn an_account_edit_from_before_a_change_is_refused() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let (status, organization) = app
        .post(
            "/api/admin/directory/organizations",
            Some(&admin),
            json!({ "name": "Autoridad Portuaria", "kind": "port_authority", "country_code": "PE" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{organization}");
    let (status, member) = app
        .post(
            "/api/admin/members",
            Some(&admin),
            json!({ "email": "m@port.pe", "name": "M", "role": "member", "organization_id": organization["id"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{member}");
    let path = format!("/api/admin/members/{}", member["id"]);
    let (_, before) = app.get(&path, &admin).await;

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/admin/directory/organizations/{}", organization["id"]),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = app.get(&path, &admin).await;
    assert_eq!(after["organization_id"], Value::Null);
    assert_eq!(after["version"].as_i64(), before["version"].as_i64().map(|v| v + 1));

    let stale = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("if-match", format!("\"{}\"", before["version"]))
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let current = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin)
        .header("if-match", format!("\"{}\"", after["version"]))
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), StatusCode::OK);
}

/// The secretariat's member search folds accents and case on both databases ("jose pena" finds
/// "José Peña") and follows the name through every step that sets it: the invitation, its
/// acceptance, the member's own edit, the secretariat's edit, and `dcports admin create`; the
/// migration that added the folded text filled it for members made before it.
#[actix_web::test]
async fn the_member_search_ignores_accents_and_case_and_follows_every_name() {
    use migration::MigratorTrait;
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let admin_id = app.get("/api/me", &admin).await.1["id"].as_i64().unwrap();
    let found = async |q: &str| -> Vec<i64> {
        let path = format!(
            "/api/admin/members?q={}",
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let (status, list) = app.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["id"].as_i64().unwrap())
            .collect()
    };
    let (status, invited) = app
        .post(
            "/api/admin/members",
            Some(&admin),
            json!({ "email": "jose@puerto.pe", "name": "José Peña", "role": "member" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invited}");
    let id = invited["id"].as_i64().unwrap();
    assert_eq!(found("jose pena").await, [id]);
    assert_eq!(found("PEÑA").await, [id]);
    assert_eq!(found("PUERTO.pe").await, [id]);
    assert_eq!(found("secretariat").await, [admin_id]);

    let token = app.token_from_mail("jose@puerto.pe", "/invitation").await;
    let (status, pair) = app
        .post(
            "/api/auth/invitations/accept",
            None,
            json!({ "token": token, "name": "Josué Núñez", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!((found("nunez").await, found("pena").await), (vec![id], vec![]));

    let access = pair["access_token"].as_str().unwrap();
    let (status, me) = app
        .call(
            Method::PATCH,
            "/api/me",
            Some(access),
            Some(json!({ "name": "Ángel Núñez" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!((found("angel").await, found("josue").await), (vec![id], vec![]));

    let path = format!("/api/admin/members/{id}");
    let (status, edited) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({ "name": "Mónica Ruiz" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!((found("monica").await, found("angel").await), (vec![id], vec![]));

    // As the database was before the migration: the column gone, then the migration run again.
    let since = crate::helpers::migrations_since("m20261129_000016_member_search_text");
    migration::Migrator::down(app.db.conn(), Some(since)).await.unwrap();
    migration::Migrator::up(app.db.conn(), None).await.unwrap();
    assert_eq!(found("MONICA ruiz").await, [id]);
    assert_eq!(found("secretariat").await, [admin_id]);
}

/// Nodes started together on an empty database each find no secretariat account and try to
/// create it: one does, and the others find it made and start, where they failed on the
/// unique email (and, in the production stack, restarted).
#[actix_web::test]
async fn nodes_starting_together_create_the_secretariat_account_once() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

    let app = spawn_app().await;
    let mut settings = app.settings.clone();
    settings.bootstrap.admin_email = "first@sela.org".to_owned();
    let starts = (0..4).map(|_| dcports::bootstrap::ensure_secretariat(&app.db, &settings));
    for started in futures_util::future::join_all(starts).await {
        started.expect("every node starts");
    }
    let accounts = entity::member::Entity::find()
        .filter(entity::member::Column::Role.eq("secretariat"))
        .all(app.db.conn())
        .await
        .unwrap();
    let emails: Vec<&str> = accounts.iter().map(|account| account.email.as_str()).collect();
    assert_eq!(emails, ["first@sela.org"]);
}
