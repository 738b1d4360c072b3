use entity::{member, refresh_token};
use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, spawn_app, spawn_app_with};

#[actix_web::test]
async fn an_invited_member_accepts_logs_in_refreshes_and_logs_out() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let member_id = app.invite(&admin, "Ana.Perez@Puerto.CL").await;

    let (status, body) = app.get(&format!("/api/admin/members/{member_id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "invited");
    assert_eq!(body["email"], "ana.perez@puerto.cl");

    let token = app.token_from_mail("ana.perez@puerto.cl", "/invitation").await;
    let (status, pair) = app
        .post(
            "/api/auth/invitations/accept",
            None,
            json!({ "token": token, "name": "Ana Pérez", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["member"]["status"], "active");
    assert_eq!(pair["expires_in"], 900);

    // The invitation is single-use.
    let (status, body) = app
        .post(
            "/api/auth/invitations/accept",
            None,
            json!({ "token": token, "name": "Again", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_token");

    let (status, login) = app.login("ANA.PEREZ@puerto.cl", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let access = login["access_token"].as_str().unwrap();
    let (status, me) = app.get("/api/me", access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "Ana Pérez");
    assert_eq!(me["role"], "member");
    assert_eq!(me["committees"], json!([]));

    let (status, refreshed) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": login["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], login["refresh_token"]);
    let (status, _) = app.get("/api/me", refreshed["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    app.logout(&refreshed).await;
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": refreshed["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The session's access tokens end with it, the one from before the refresh included; the
    // invitation's session is another one and goes on.
    assert_eq!(
        app.get("/api/me", refreshed["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/api/me", access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/me", pair["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );

    let (_, audit) = app.get(&format!("/api/admin/audit?actor_id={member_id}"), &admin).await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["auth.invitation_accepted", "auth.login", "auth.logout"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
}

#[actix_web::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let first = app.member(&admin, "m@port.pe").await;

    let (status, second) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": first["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.get("/api/me", second["access_token"].as_str().unwrap()).await.0,
        StatusCode::OK
    );
    // The stolen first token comes back: refused, and the legitimate second one dies with it.
    let (status, body) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": first["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "unauthorized");
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": second["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // And so do the family's access tokens, whoever holds them.
    assert_eq!(
        app.get("/api/me", second["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/me", first["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// The member's refresh tokens as they are in the database.
async fn refresh_tokens_of(app: &TestApp, member_id: i32) -> Vec<refresh_token::Model> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::MemberId.eq(member_id))
        .all(app.db.conn())
        .await
        .unwrap()
}

/// A write transaction holding the member's row, as the server's refresh and logout take it.
async fn hold_sessions_of(app: &TestApp, member_id: i32) -> dcports::db::WriteTxn {
    let txn = app.state.db.begin_write().await.unwrap();
    member::Entity::find_by_id(member_id)
        .lock_exclusive()
        .one(&*txn)
        .await
        .unwrap();
    txn
}

/// Posts `pair`'s refresh token to `path` while `held` commits half a second later.
async fn post_while_committing(
    app: &TestApp,
    path: &str,
    pair: &serde_json::Value,
    held: dcports::db::WriteTxn,
) -> StatusCode {
    let body = json!({ "refresh_token": pair["refresh_token"] });
    let ((status, _), ()) = tokio::join!(app.post(path, None, body), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        held.commit().await.unwrap();
    });
    status
}

/// A logout that commits while a refresh of the same session is under way: the refresh must not
/// mint a token in the ended session (on PostgreSQL it used to read the token before the logout
/// committed, and spend it after).
#[actix_web::test]
async fn a_refresh_racing_a_logout_does_not_reopen_the_session() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    let member_id = pair["member"]["id"].as_i64().unwrap() as i32;
    // The logout, as the server runs it: the member's row, then the family's tokens; held open.
    let logout = hold_sessions_of(&app, member_id).await;
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(chrono::Utc::now()))
        .filter(refresh_token::Column::MemberId.eq(member_id))
        .exec(&*logout)
        .await
        .unwrap();
    let status = post_while_committing(&app, "/api/auth/refresh", &pair, logout).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        refresh_tokens_of(&app, member_id)
            .await
            .iter()
            .all(|token| token.revoked_at.is_some())
    );
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/me", access).await.0, StatusCode::UNAUTHORIZED);
}

/// A refresh that commits while a logout of the same session is under way: the token it adds is
/// revoked with the rest (on PostgreSQL the logout's update used to miss it).
#[actix_web::test]
async fn a_logout_racing_a_refresh_revokes_the_token_the_refresh_adds() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    let member_id = pair["member"]["id"].as_i64().unwrap() as i32;
    let first = refresh_tokens_of(&app, member_id).await.remove(0);
    // The refresh, as the server runs it: the member's row, the spend, the new token; held open.
    let refresh = hold_sessions_of(&app, member_id).await;
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(chrono::Utc::now()))
        .filter(refresh_token::Column::Id.eq(first.id))
        .exec(&*refresh)
        .await
        .unwrap();
    refresh_token::ActiveModel {
        member_id: Set(member_id),
        family_id: Set(first.family_id.clone()),
        token_hash: Set("added by the racing refresh".to_owned()),
        expires_at: Set(chrono::Utc::now() + chrono::Duration::days(1)),
        created_at: Set(chrono::Utc::now()),
        ..Default::default()
    }
    .insert(&*refresh)
    .await
    .unwrap();
    let status = post_while_committing(&app, "/api/auth/logout", &pair, refresh).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let tokens = refresh_tokens_of(&app, member_id).await;
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|token| token.revoked_at.is_some()), "{tokens:?}");
}

#[actix_web::test]
async fn a_suspended_members_access_token_stops_working_on_the_next_request() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    let access = pair["access_token"].as_str().unwrap();
    let id = pair["member"]["id"].as_i64().unwrap();
    assert_eq!(app.get("/api/me", access).await.0, StatusCode::OK);

    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/admin/members/{id}"),
            Some(&admin),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "suspended");

    assert_eq!(app.get("/api/me", access).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("m@port.pe", PASSWORD).await.0, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_wrong_password_and_an_unknown_email_get_byte_identical_answers() {
    let app = spawn_app().await;
    app.secretariat("admin@sela.org").await;
    let wrong_password = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": "admin@sela.org", "password": "not the password at all" }))
        .send()
        .await
        .unwrap();
    let unknown_email = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": "nobody@sela.org", "password": "not the password at all" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.headers()["content-type"], "application/problem+json");
    let (a, b) = (
        wrong_password.bytes().await.unwrap(),
        unknown_email.bytes().await.unwrap(),
    );
    assert_eq!(a, b);
    assert!(String::from_utf8_lossy(&a).contains("invalid_credentials"));
}

#[actix_web::test]
async fn repeated_failures_on_one_account_are_throttled_until_a_password_reset() {
    let app = spawn_app().await;
    app.secretariat("admin@sela.org").await;
    let limit = app.settings.auth.max_failures_per_account;
    for _ in 0..limit {
        assert_eq!(
            app.login("admin@sela.org", "wrong password, wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": "admin@sela.org", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");

    // The owner proves control of the mailbox: the lock-out is lifted.
    let (status, _) = app
        .post("/api/auth/password/forgot", None, json!({ "email": "admin@sela.org" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let token = app.token_from_mail("admin@sela.org", "/password-reset").await;
    let new_password = "a brand new passphrase";
    let (status, body) = app
        .post(
            "/api/auth/password/reset",
            None,
            json!({ "token": token, "password": new_password }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(app.login("admin@sela.org", new_password).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn many_failures_from_one_ip_are_throttled_across_accounts() {
    let app = spawn_app_with(|settings| settings.auth.max_failures_per_ip = 4).await;
    for n in 0..4 {
        assert_eq!(
            app.login(&format!("nobody{n}@x.org"), "whatever whatever").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, body) = app.login("someone.else@x.org", "whatever whatever").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], "rate_limited");
}

#[actix_web::test]
async fn a_password_reset_revokes_every_session_and_the_token_is_single_use() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    let account = format!("/api/admin/members/{}", pair["member"]["id"]);
    let version_before = app.get(&account, &admin).await.1["version"].clone();
    let (status, _) = app
        .post("/api/auth/password/forgot", None, json!({ "email": "m@port.pe" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let token = app.token_from_mail("m@port.pe", "/password-reset").await;

    let (status, body) = app
        .post(
            "/api/auth/password/reset",
            None,
            json!({ "token": token, "password": "short" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "password");

    let (status, _) = app
        .post(
            "/api/auth/password/reset",
            None,
            json!({ "token": token, "password": "another fine passphrase" }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/me", pair["access_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The account changed (its `updated_at` shows it): an edit from before is stale.
    let version_after = app.get(&account, &admin).await.1["version"].clone();
    assert_eq!(version_after.as_i64(), version_before.as_i64().map(|v| v + 1));
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": pair["refresh_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .post(
            "/api/auth/password/reset",
            None,
            json!({ "token": token, "password": "yet another passphrase" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_token");
    assert_eq!(
        app.login("m@port.pe", "another fine passphrase").await.0,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn forgot_password_answers_202_for_unknown_addresses_and_sends_nothing() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/auth/password/forgot",
            None,
            json!({ "email": "ghost@nowhere.org" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, serde_json::Value::Null);
    // The same request for a real account, sent after, is mailed: by then the first one would
    // have been too.
    let admin = app.secretariat("admin@sela.org").await;
    app.member(&admin, "real@port.pe").await;
    let (status, _) = app
        .post("/api/auth/password/forgot", None, json!({ "email": "real@port.pe" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.wait_for_mail("real@port.pe", |mail| mail.text.contains("/password-reset"))
        .await;
    assert!(app.mails_to("ghost@nowhere.org").is_empty());
}

/// A reset link is a mail in someone's inbox: requests are limited per address, known or not
/// (so the limit tells nothing about who has an account), and per client IP.
#[actix_web::test]
async fn password_reset_requests_are_limited_per_address_known_or_not_and_per_ip() {
    let app = spawn_app_with(|settings| {
        settings.auth.max_reset_requests_per_account = 2;
        settings.auth.max_reset_requests_per_ip = 5;
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    app.member(&admin, "first@port.pe").await;
    app.member(&admin, "second@port.pe").await;
    // Every request is answered 202, over a limit or not: the answer tells nothing.
    let forgot = async |email: &'static str| {
        let (status, _) = app
            .post("/api/auth/password/forgot", None, json!({ "email": email }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{email}");
    };
    // Three for one address: the third is over its limit. Two for an unknown one.
    for email in [
        "first@port.pe",
        "first@port.pe",
        "first@port.pe",
        "ghost@nowhere.org",
        "ghost@nowhere.org",
    ] {
        forgot(email).await;
    }
    // Four requests counted from this client: one more, then the IP's limit, which a second
    // request for an address under its own limit meets.
    forgot("second@port.pe").await;
    forgot("second@port.pe").await;
    let resets = |email: &str| {
        app.mails_to(email)
            .into_iter()
            .filter(|mail| mail.text.contains("/password-reset"))
            .count()
    };
    for _ in 0..100 {
        if (resets("first@port.pe"), resets("second@port.pe")) == (2, 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!((resets("first@port.pe"), resets("second@port.pe")), (2, 1));
}

#[actix_web::test]
async fn changing_ones_password_needs_the_current_one_and_ends_every_session_and_the_calendar_feed() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    let access = pair["access_token"].as_str().unwrap();
    // The calendar feed's secret URL is a credential too: whoever knew the password could have
    // made one.
    let (status, feed) = app
        .call(Method::POST, "/api/me/calendar-token", Some(access), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let feed = app.url(&format!(
        "/api/me/calendar.ics?token={}",
        feed["token"].as_str().unwrap()
    ));
    let feed_status = || async { app.client.get(&feed).send().await.unwrap().status() };
    assert_eq!(feed_status().await, StatusCode::OK);

    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/me",
            Some(access),
            Some(json!({ "password": { "current": "not it at all!", "new": "a new long passphrase" } })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "password.current");
    assert_eq!(
        app.get("/api/me", access).await.0,
        StatusCode::OK,
        "a failed change keeps the session"
    );

    let (status, body) = app
        .call(Method::PATCH, "/api/me", Some(access), Some(json!({ "name": "Renamed", "locale": "es", "password": { "current": PASSWORD, "new": "a new long passphrase" } })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Renamed");
    assert_eq!(body["locale"], "es");
    assert_eq!(app.get("/api/me", access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(feed_status().await, StatusCode::NOT_FOUND);
    assert_eq!(app.login("m@port.pe", "a new long passphrase").await.0, StatusCode::OK);
}

/// A stolen access token must not let its holder guess the password without limit: wrong
/// current passwords count as failed logins of the account.
#[actix_web::test]
async fn guessing_the_current_password_is_throttled_like_logins() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    let access = pair["access_token"].as_str().unwrap();
    let change = |current: &str| {
        app.call(
            Method::PATCH,
            "/api/me",
            Some(access),
            Some(json!({ "password": { "current": current, "new": "a new long passphrase" } })),
        )
    };
    for guess in 0..app.settings.auth.max_failures_per_account {
        let (status, body) = change(&format!("guess number {guess}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, body) = change("one guess too many").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    // Even the right password now waits, and nothing was changed.
    assert_eq!(change(PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.login("m@port.pe", PASSWORD).await.0, StatusCode::OK);
}

/// Failed logins in a member's name, which anyone can cause, do not stop the member from
/// changing the password while logged in.
#[actix_web::test]
async fn failed_logins_in_ones_name_do_not_block_a_password_change() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    for _ in 0..app.settings.auth.max_failures_per_account {
        assert_eq!(
            app.login("m@port.pe", "an attacker's guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.login("m@port.pe", PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS);
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/me",
            pair["access_token"].as_str(),
            Some(json!({ "password": { "current": PASSWORD, "new": "a new long passphrase" } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[actix_web::test]
async fn tokens_of_one_kind_cannot_stand_in_for_another() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let pair = app.member(&admin, "m@port.pe").await;
    // A refresh token is not an access token, and an access token is not a refresh token.
    assert_eq!(
        app.get("/api/me", pair["refresh_token"].as_str().unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .post(
            "/api/auth/refresh",
            None,
            json!({ "refresh_token": pair["access_token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nor is a refresh token an invitation token.
    let (status, body) = app
        .post(
            "/api/auth/invitations/accept",
            None,
            json!({ "token": pair["refresh_token"], "name": "X", "password": PASSWORD }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_token");
}

#[actix_web::test]
async fn an_access_token_signed_with_another_key_or_algorithm_or_not_yet_valid_is_refused() {
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use secrecy::ExposeSecret;
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    // The genuine token's claims, with a later expiry: only the signature differs.
    let payload = admin.split('.').nth(1).unwrap();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["exp"] = json!(chrono::Utc::now().timestamp() + 600);
    let sign = |claims: &serde_json::Value, key: &[u8]| {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(key).unwrap(),
        )
        .unwrap()
    };
    // Signed with the server's key, these claims are accepted: what is refused below is the key.
    let secret = app.settings.auth.jwt_secret.expose_secret().as_bytes();
    assert_eq!(app.get("/api/me", &sign(&claims, secret)).await.0, StatusCode::OK);
    let forged = sign(&claims, b"some other secret that is long enough");
    assert_eq!(app.get("/api/me", &forged).await.0, StatusCode::UNAUTHORIZED);
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(claims.to_string().as_bytes())
    );
    assert_eq!(app.get("/api/me", &unsigned).await.0, StatusCode::UNAUTHORIZED);
    // The server's key, but not valid before ten minutes from now.
    claims["nbf"] = json!(chrono::Utc::now().timestamp() + 600);
    assert_eq!(
        app.get("/api/me", &sign(&claims, secret)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Guesses sent all at once are counted as they start: no more of them reach the password check
/// than the limit allows, whatever their number. A login that succeeds costs its address nothing.
#[actix_web::test]
async fn guesses_sent_at_once_get_no_more_tries_than_the_limit_and_successes_cost_nothing() {
    let app = spawn_app_with(|settings| {
        settings.auth.max_failures_per_account = 3;
        settings.auth.max_failures_per_ip = 3;
    })
    .await;
    app.secretariat("admin@sela.org").await;
    for _ in 0..6 {
        assert_eq!(app.login("admin@sela.org", PASSWORD).await.0, StatusCode::OK);
    }

    let guesses = (0..20).map(|_| app.login("admin@sela.org", "not the password, but long"));
    let answers = futures_util::future::join_all(guesses).await;
    let count = |status: StatusCode| answers.iter().filter(|(s, _)| *s == status).count();
    assert_eq!(
        (count(StatusCode::UNAUTHORIZED), count(StatusCode::TOO_MANY_REQUESTS)),
        (3, 17),
        "{answers:?}"
    );
    let (status, body) = app.login("admin@sela.org", PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
}

/// A made-up, spent or expired one-time token is refused before the password sent with it is
/// hashed: no one makes the server compute argon2 at will without a live token. A live one
/// still sets the password.
#[actix_web::test]
async fn one_time_tokens_are_checked_before_any_password_is_hashed() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    app.invite(&admin, "new@port.pe").await;
    let invitation = app.token_from_mail("new@port.pe", "/invitation").await;
    let made_up = |kind: dcports::auth::tokens::OpaqueKind| dcports::auth::tokens::new_opaque(kind).0;
    let before = app.state.passwords.computed();
    let attempts = [
        (
            "/api/auth/password/reset",
            json!({ "token": made_up(dcports::auth::tokens::OpaqueKind::PasswordReset), "password": "a fine long passphrase" }),
        ),
        (
            "/api/auth/invitations/accept",
            json!({ "token": made_up(dcports::auth::tokens::OpaqueKind::Invitation), "name": "N", "password": "a fine long passphrase" }),
        ),
        // A live token of the wrong kind is no better.
        (
            "/api/auth/password/reset",
            json!({ "token": invitation, "password": "a fine long passphrase" }),
        ),
    ];
    for (path, body) in attempts {
        let (status, problem) = app.post(path, None, body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_token")),
            "{path}"
        );
    }
    assert_eq!(app.state.passwords.computed(), before, "no password was hashed");

    let (status, pair) = app
        .post(
            "/api/auth/invitations/accept",
            None,
            json!({ "token": invitation, "name": "New", "password": "a fine long passphrase" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(app.state.passwords.computed(), before + 1);
}

/// An access token is good only with a login session of the member it names. Were the signing
/// key to leak, a member's own open session must not vouch for a token made out to someone
/// else: the secretariat's id with a member's session is refused.
#[actix_web::test]
async fn a_token_naming_another_members_session_is_refused() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let member = app.member(&admin, "m@port.pe").await;
    let tokens = dcports::auth::tokens::AccessTokens::new(&app.settings.auth).unwrap();
    let admin_claims = tokens.decode(&admin).unwrap();
    let member_claims = tokens.decode(member["access_token"].as_str().unwrap()).unwrap();

    // Made with the key, each with its own session: taken.
    let own = tokens
        .issue(
            member_claims.member_id().unwrap(),
            member_claims.ver,
            &member_claims.sid,
        )
        .unwrap();
    let (status, me) = app.get("/api/me", &own).await;
    assert_eq!((status, &me["email"]), (StatusCode::OK, &json!("m@port.pe")));

    // The secretariat's id and version, with the member's session.
    let forged = tokens
        .issue(admin_claims.member_id().unwrap(), admin_claims.ver, &member_claims.sid)
        .unwrap();
    for path in ["/api/me", "/api/admin/members"] {
        let (status, problem) = app.get(path, &forged).await;
        assert_eq!(
            (status, &problem["code"]),
            (StatusCode::UNAUTHORIZED, &json!("unauthorized")),
            "{path}"
        );
    }
    let mut socket = crate::ws::WsClient::connect(&app).await;
    socket.send(json!({ "type": "auth", "token": forged })).await;
    let (frames, code) = socket.frames_until_close().await;
    assert_eq!(
        (frames.iter().any(|frame| frame["type"] == "ready"), code),
        (false, Some(1008))
    );
}
