use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// Creates a committee and returns its id.
pub async fn committee(app: &TestApp, admin: &str, name: &str) -> i64 {
    let (status, body) = app
        .post(
            "/api/admin/committees",
            Some(admin),
            json!({ "name": name, "kind": "technical" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Puts `member_id` in `committee_id` with `role`.
pub async fn add(app: &TestApp, admin: &str, committee_id: i64, member_id: i64, role: &str) {
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/admin/committees/{committee_id}/members/{member_id}"),
            Some(admin),
            Some(json!({ "role": role })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Takes `member_id` out of `committee_id`.
pub async fn remove(app: &TestApp, admin: &str, committee_id: i64, member_id: i64) {
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/api/admin/committees/{committee_id}/members/{member_id}"),
            Some(admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// A new member of `committee_id` with `role`: returns (member id, access token).
pub async fn member_of(app: &TestApp, admin: &str, committee_id: i64, email: &str, role: &str) -> (i64, String) {
    let pair = app.member(admin, email).await;
    let id = pair["member"]["id"].as_i64().unwrap();
    add(app, admin, committee_id, id, role).await;
    (id, pair["access_token"].as_str().unwrap().to_owned())
}

fn ids(list: &Value) -> Vec<i64> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn the_committee_list_pages_and_shows_the_callers_role_in_each() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let first = committee(&app, &admin, "Steering").await;
    let second = committee(&app, &admin, "Technical 1").await;
    let third = committee(&app, &admin, "Technical 2").await;
    let (member_id, member) = member_of(&app, &admin, first, "m@port.pe", "chair").await;
    add(&app, &admin, third, member_id, "observer").await;
    let (_, me) = app.get("/api/me", &admin).await;
    add(&app, &admin, second, me["id"].as_i64().unwrap(), "member").await;

    let (status, page1) = app.get("/api/committees?limit=1", &member).await;
    assert_eq!(status, StatusCode::OK, "{page1}");
    assert_eq!(ids(&page1), vec![first]);
    assert_eq!(page1["items"][0]["my_role"], "chair");
    let cursor = page1["next_cursor"].as_str().expect("a second page");
    let (_, page2) = app
        .get(&format!("/api/committees?limit=1&cursor={cursor}"), &member)
        .await;
    assert_eq!(
        ids(&page2),
        vec![third],
        "the committee the member is not in is skipped"
    );
    assert_eq!(page2["items"][0]["my_role"], "observer");
    assert!(page2["next_cursor"].is_null(), "{page2}");

    let (_, all) = app.get("/api/committees", &admin).await;
    assert_eq!(ids(&all), vec![first, second, third]);
    let roles: Vec<&Value> = all["items"].as_array().unwrap().iter().map(|c| &c["my_role"]).collect();
    assert_eq!(roles, [&Value::Null, &json!("member"), &Value::Null]);
}

#[actix_web::test]
async fn members_see_only_their_committees_and_the_secretariat_sees_all() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let steering = committee(&app, &admin, "Transitional Steering Committee").await;
    let technical = committee(&app, &admin, "Technical Committee 1").await;
    let (member_id, member) = member_of(&app, &admin, technical, "m@port.pe", "observer").await;

    let (_, mine) = app.get("/api/committees", &member).await;
    assert_eq!(ids(&mine), vec![technical]);
    assert_eq!(mine["items"][0]["my_role"], "observer");
    let (_, all) = app.get("/api/committees", &admin).await;
    assert_eq!(ids(&all), vec![steering, technical]);

    let (status, detail) = app.get(&format!("/api/committees/{technical}"), &member).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        detail["members"],
        json!([{ "id": member_id, "name": "Member", "role": "observer" }])
    );
    let (status, body) = app.get(&format!("/api/committees/{steering}"), &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another committee is invisible: {body}");
    let (status, _) = app.get("/api/committees/424242", &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, me) = app.get("/api/me", &member).await;
    assert_eq!(
        me["committees"],
        json!([{ "id": technical, "name": "Technical Committee 1", "role": "observer" }])
    );
}

#[actix_web::test]
async fn committee_updates_are_guarded_by_if_match_and_names_are_unique() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let id = committee(&app, &admin, "Group of Experts").await;
    let path = format!("/api/admin/committees/{id}");
    let patch = |version: &'static str, body: Value| {
        app.client
            .patch(app.url(&path))
            .bearer_auth(&admin)
            .header("if-match", version)
            .json(&body)
            .send()
    };
    let response = patch("\"1\"", json!({ "description": "Academia and ports" }))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "\"2\"");
    let stale = patch("\"1\"", json!({ "description": "lost update" })).await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["code"], "precondition_failed");
    let bad = patch("version two", json!({})).await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    // `*` matches whatever version the committee has (RFC 9110).
    let any = patch("*", json!({ "description": "Academia, ports and customs" }))
        .await
        .unwrap();
    assert_eq!(any.status(), StatusCode::OK);
    assert_eq!(any.headers()["etag"], "\"3\"");
    // A list matches when any of its tags does; a weak tag never does (strong comparison).
    let listed = patch("\"9\", \"3\"", json!({ "description": "listed" })).await.unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(listed.headers()["etag"], "\"4\"");
    let weak = patch("W/\"4\"", json!({ "description": "weak" })).await.unwrap();
    assert_eq!(weak.status(), StatusCode::PRECONDITION_FAILED);
    for malformed in ["W/garbage", "\"4", "\"x\"", " , "] {
        assert_eq!(
            patch(malformed, json!({})).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }
    // Empty list elements are allowed; a bare number stands for its quoted form.
    let trailing = patch("\"4\", ", json!({ "description": "trailing" })).await.unwrap();
    assert_eq!(trailing.status(), StatusCode::OK);
    let bare = patch("5", json!({ "description": "listed" })).await.unwrap();
    assert_eq!(bare.status(), StatusCode::OK);

    committee(&app, &admin, "Technical Committee 2").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({ "name": "Technical Committee 2" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = app
        .post(
            "/api/admin/committees",
            Some(&admin),
            json!({ "name": "Group of Experts", "kind": "experts" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = app
        .post(
            "/api/admin/committees",
            Some(&admin),
            json!({ "name": "X", "kind": "club" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (_, detail) = app.get(&format!("/api/committees/{id}"), &admin).await;
    assert_eq!(detail["description"], "listed");
    assert_eq!(detail["version"], 6);
}

#[actix_web::test]
async fn memberships_are_added_changed_and_removed_with_events_on_both_channels() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let id = committee(&app, &admin, "Technical Committee 3").await;
    let (member_id, member) = member_of(&app, &admin, id, "m@port.pe", "member").await;
    add(&app, &admin, id, member_id, "chair").await;
    remove(&app, &admin, id, member_id).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/admin/committees/{id}/members/{member_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/admin/committees/{id}/members/99999"),
            Some(&admin),
            Some(json!({ "role": "member" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, personal) = app
        .get(&format!("/api/events?channel=member:{member_id}"), &member)
        .await;
    let kinds: Vec<&str> = personal["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["membership.added", "membership.updated", "membership.removed"]);
    let offsets: Vec<i64> = personal["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2, 3]);
    assert_eq!(
        personal["items"][1]["data"],
        json!({ "committee_id": id, "member_id": member_id, "role": "chair" })
    );

    let (_, committee_feed) = app.get(&format!("/api/events?channel=committee:{id}"), &admin).await;
    let kinds: Vec<&str> = committee_feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "committee.updated",
            "membership.added",
            "membership.updated",
            "membership.removed"
        ]
    );
    // Removed: the committee's feed is now closed to them.
    let (status, _) = app.get(&format!("/api/events?channel=committee:{id}"), &member).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_event_feed_over_http_validates_its_query_and_hides_other_channels() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let mine = committee(&app, &admin, "Mine").await;
    let other = committee(&app, &admin, "Other").await;
    let (_, member) = member_of(&app, &admin, mine, "m@port.pe", "member").await;
    // A member who exists and shares a committee with the caller.
    let (colleague_id, _) = member_of(&app, &admin, mine, "colleague@port.pe", "member").await;
    for path in [
        format!("/api/events?channel=committee:{other}"),
        format!("/api/events?channel=member:{colleague_id}"),
    ] {
        assert_eq!(app.get(&path, &member).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        "/api/events",
        "/api/events?channel=tasks",
        "/api/events?channel=committee:1&after=-1",
        "/api/events?channel=public&limit=0",
        "/api/events?channel=public&limit=201",
    ] {
        assert_eq!(app.get(path, &member).await.0, StatusCode::BAD_REQUEST, "{path}");
    }
    let (status, page) = app
        .get(
            &format!("/api/events?channel=committee:{mine}&after=1&limit=1"),
            &member,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["offset"], 2);
    assert_eq!(page["reset"], false);
    // committee.created, then the two memberships.
    assert_eq!(page["head"], 3);
}

#[actix_web::test]
async fn an_archived_committee_is_read_only_until_the_secretariat_reopens_it() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let archived = committee(&app, &admin, "Finished working group").await;
    let (_, chair) = member_of(&app, &admin, archived, "chair@port.pe", "chair").await;
    let (_, task) = app
        .post(
            &format!("/api/committees/{archived}/tasks"),
            Some(&chair),
            json!({ "title": "T" }),
        )
        .await;
    let task_id = task["id"].as_i64().unwrap();
    let (status, document) = app
        .upload(
            &format!("/api/committees/{archived}/documents"),
            &chair,
            "estudio.pdf",
            b"%PDF-1.4 archived".to_vec(),
            &[("title", "Estudio")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    let document_id = document["id"].as_i64().unwrap();
    let starts = chrono::Utc::now() + chrono::Duration::days(3);
    let meeting_body =
        json!({ "title": "M", "starts_at": starts, "ends_at": starts + chrono::Duration::hours(1), "timezone": "UTC" });
    let (status, meeting) = app
        .post(
            &format!("/api/committees/{archived}/meetings"),
            Some(&chair),
            meeting_body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{meeting}");
    let meeting_id = meeting["id"].as_i64().unwrap();

    let committee_path = format!("/api/admin/committees/{archived}");
    let set_archived = |value: bool| {
        app.call(
            Method::PATCH,
            &committee_path,
            Some(&admin),
            Some(json!({ "archived": value })),
        )
    };
    assert_eq!(set_archived(true).await.0, StatusCode::OK);

    // Nothing new is written in it, by its chair or by the secretariat.
    let writes = [
        (
            Method::POST,
            format!("/api/committees/{archived}/tasks"),
            json!({ "title": "late" }),
        ),
        (
            Method::PATCH,
            format!("/api/tasks/{task_id}"),
            json!({ "title": "renamed" }),
        ),
        (
            Method::PATCH,
            format!("/api/documents/{document_id}"),
            json!({ "title": "renamed" }),
        ),
        (
            Method::POST,
            format!("/api/committees/{archived}/meetings"),
            meeting_body.clone(),
        ),
        (
            Method::PATCH,
            format!("/api/meetings/{meeting_id}"),
            json!({ "title": "renamed" }),
        ),
    ];
    for token in [&chair, &admin] {
        for (method, path, body) in &writes {
            let (status, problem) = app.call(method.clone(), path, Some(token), Some(body.clone())).await;
            assert_eq!(status, StatusCode::CONFLICT, "{method} {path}: {problem}");
            assert_eq!(problem["code"], "committee_archived", "{method} {path}");
        }
    }
    let (status, problem) = app
        .upload(
            &format!("/api/committees/{archived}/documents"),
            &chair,
            "otro.pdf",
            b"%PDF-1.4 late".to_vec(),
            &[("title", "Late")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, problem) = app
        .call(
            Method::DELETE,
            &format!("/api/documents/{document_id}"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // What it holds stays readable, unchanged.
    let (status, task) = app.get(&format!("/api/tasks/{task_id}"), &chair).await;
    assert_eq!((status, task["title"].as_str()), (StatusCode::OK, Some("T")));
    let (status, document) = app.get(&format!("/api/documents/{document_id}"), &chair).await;
    assert_eq!((status, document["title"].as_str()), (StatusCode::OK, Some("Estudio")));
    let (status, meeting) = app.get(&format!("/api/meetings/{meeting_id}"), &chair).await;
    assert_eq!((status, meeting["title"].as_str()), (StatusCode::OK, Some("M")));
    let (_, tasks) = app.get(&format!("/api/committees/{archived}/tasks"), &chair).await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), 1);

    // The contract says so for each of them.
    let doc = app.openapi().await;
    for (method, path) in [
        ("post", "/api/committees/{id}/tasks"),
        ("patch", "/api/tasks/{id}"),
        ("post", "/api/committees/{id}/documents"),
        ("patch", "/api/documents/{id}"),
        ("delete", "/api/documents/{id}"),
        ("post", "/api/committees/{id}/meetings"),
        ("patch", "/api/meetings/{id}"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["409"].is_object(),
            "{method} {path} documents no 409"
        );
    }

    // Reopened, it takes writes again.
    assert_eq!(set_archived(false).await.0, StatusCode::OK);
    for (method, path, body) in &writes {
        let (status, body) = app.call(method.clone(), path, Some(&chair), Some(body.clone())).await;
        assert!(status.is_success(), "{method} {path}: {status} {body}");
    }
}

/// The statuses, sorted, that `count` writers racing from one version must get: one 200, the
/// rest 412.
pub fn one_winner(count: usize) -> Vec<StatusCode> {
    let mut expected = vec![StatusCode::PRECONDITION_FAILED; count - 1];
    expected.insert(0, StatusCode::OK);
    expected
}

pub fn sorted(mut statuses: Vec<StatusCode>) -> Vec<StatusCode> {
    statuses.sort();
    statuses
}

#[actix_web::test]
async fn of_updates_racing_from_one_version_exactly_one_wins() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let id = committee(&app, &admin, "Group of Experts").await;

    let channel = format!("committee:{id}");
    let updates_before = app.events_of(&channel, "committee.updated", &admin).await.len();

    let statuses = app
        .racing_patches(
            &format!("/api/admin/committees/{id}"),
            &admin,
            1,
            json!({ "description": "raced" }),
            8,
        )
        .await;

    assert_eq!(sorted(statuses), one_winner(8));
    let (_, stored) = app.get(&format!("/api/committees/{id}"), &admin).await;
    assert_eq!(stored["version"], 2);
    assert_eq!(
        app.events_of(&channel, "committee.updated", &admin).await.len(),
        updates_before + 1
    );
}

/// Removals of one membership at once: one removes it, the others find nothing, and the
/// removal is heard and audited once (on PostgreSQL several used to answer 204 and record it).
#[actix_web::test]
async fn a_membership_removed_by_several_requests_at_once_is_removed_once() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (member_id, _) = member_of(&app, &admin, c, "m@port.pe", "member").await;
    let path = format!("/api/admin/committees/{c}/members/{member_id}");
    let removals = (0..8).map(|_| app.call(Method::DELETE, &path, Some(&admin), None));
    let mut statuses: Vec<StatusCode> = futures_util::future::join_all(removals)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    statuses.sort();
    assert_eq!(statuses[0], StatusCode::NO_CONTENT);
    assert!(
        statuses[1..].iter().all(|status| *status == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    let removed = app
        .events_of(&format!("committee:{c}"), "membership.removed", &admin)
        .await;
    assert_eq!(removed.len(), 1, "{removed:?}");
}
