use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::committees::{committee, member_of};
use crate::helpers::spawn_app;
use crate::ws::WsClient;

#[actix_web::test]
async fn tasks_move_through_allowed_states_and_assignees_hear_about_it() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let other = committee(&app, &admin, "Other").await;
    let (_, author) = member_of(&app, &admin, c, "author@port.pe", "member").await;
    let (assignee_id, assignee) = member_of(&app, &admin, c, "assignee@port.pe", "member").await;
    let (outsider_id, outsider) = member_of(&app, &admin, other, "outsider@port.cl", "member").await;

    let (mut personal, _) = WsClient::authenticated(&app, &assignee).await;
    personal.subscribe(&format!("member:{assignee_id}"), None).await;

    let path = format!("/api/committees/{c}/tasks");
    let (status, body) = app
        .post(
            &path,
            Some(&author),
            json!({ "title": "Draft MOU", "assignee_id": outsider_id }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "invalid_assignee");

    let (status, task) = app
        .post(
            &path,
            Some(&author),
            json!({ "title": "Draft MOU", "assignee_id": assignee_id, "due_on": "2020-01-31", "priority": "high" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_i64().unwrap();
    assert_eq!(
        (task["status"].as_str(), task["priority"].as_str()),
        (Some("todo"), Some("high"))
    );
    let assigned = personal.next_event().await;
    assert_eq!(
        (assigned["kind"].as_str(), assigned["data"]["id"].as_i64()),
        (Some("task.assigned"), Some(id))
    );
    let mail = app
        .wait_for_mail("assignee@port.pe", |mail| mail.subject.contains("Draft MOU"))
        .await;
    assert!(mail.text.contains(&format!("/tasks/{id}")), "{}", mail.text);

    let task_path = format!("/api/tasks/{id}");
    let patch = |body: Value| app.call(Method::PATCH, &task_path, Some(&author), Some(body));
    assert_eq!(patch(json!({ "status": "in_progress" })).await.0, StatusCode::OK);
    assert_eq!(patch(json!({ "status": "done" })).await.0, StatusCode::OK);
    let (status, body) = patch(json!({ "status": "blocked" })).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition"))
    );
    let (status, reopened) = patch(json!({ "status": "in_progress", "due_on": null })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reopened["due_on"], Value::Null);
    assert_eq!(reopened["version"], 4);

    let stale = app
        .client
        .patch(app.url(&task_path))
        .bearer_auth(&author)
        .header("if-match", "\"1\"")
        .json(&json!({ "title": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);

    let commented = app
        .client
        .post(app.url(&format!("{task_path}/comments")))
        .bearer_auth(&assignee)
        .json(&json!({ "body": "On it." }))
        .send()
        .await
        .unwrap();
    assert_eq!(commented.status(), StatusCode::CREATED);
    let location = commented.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = commented.json().await.unwrap();
    assert_eq!(location, format!("{task_path}/comments/{}", created["id"]));
    // The location reads back the comment, for whoever sees the task, and for no one else.
    let (status, read_back) = app.get(&location, &author).await;
    assert_eq!((status, &read_back), (StatusCode::OK, &created));
    let (status, _) = app.get(&location, &outsider).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Under another task, even one the reader sees, it is not found.
    let (status, second) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&author),
            json!({ "title": "Another" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let elsewhere = format!("/api/tasks/{}/comments/{}", second["id"], created["id"]);
    assert_eq!(app.get(&elsewhere, &author).await.0, StatusCode::NOT_FOUND);
    let (_, comments) = app.get(&format!("{task_path}/comments"), &author).await;
    assert_eq!(comments["items"][0]["body"], "On it.");
    let (status, _) = app
        .post(
            &format!("{task_path}/comments"),
            Some(&assignee),
            json!({ "body": "  " }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn tasks_are_filtered_by_status_assignee_and_due_date() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (member_id, member) = member_of(&app, &admin, c, "m@port.pe", "member").await;
    let path = format!("/api/committees/{c}/tasks");
    for (title, due, assignee) in [
        ("late", "2020-01-01", Some(member_id)),
        ("soon", "2999-01-01", None),
        ("undated", "", Some(member_id)),
    ] {
        let mut body = json!({ "title": title });
        if !due.is_empty() {
            body["due_on"] = json!(due);
        }
        if let Some(id) = assignee {
            body["assignee_id"] = json!(id);
        }
        assert_eq!(app.post(&path, Some(&member), body).await.0, StatusCode::CREATED);
    }
    let titles = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        titles(&app.get(&format!("{path}?overdue=true"), &member).await.1),
        ["late"]
    );
    assert_eq!(
        titles(&app.get(&format!("{path}?assignee_id={member_id}"), &member).await.1),
        ["late", "undated"]
    );
    assert_eq!(
        titles(&app.get(&format!("{path}?due_before=2100-01-01"), &member).await.1),
        ["late"]
    );
    assert_eq!(
        titles(&app.get(&format!("{path}?status=todo&limit=1"), &member).await.1),
        ["late"]
    );
    assert_eq!(
        app.get(&format!("{path}?status=finished"), &member).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get(&format!("{path}?due_before=tomorrow"), &member).await.0,
        StatusCode::BAD_REQUEST
    );
}

#[actix_web::test]
async fn descriptions_longer_than_the_limit_are_refused_and_nothing_is_written() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let path = format!("/api/committees/{c}/tasks");
    let too_long = "ñ".repeat(20_001);

    let (status, body) = app
        .post(&path, Some(&admin), json!({ "title": "Plan", "description": too_long }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "description");
    let (_, list) = app.get(&path, &admin).await;
    assert_eq!(list["items"], json!([]), "no task was written");

    // Exactly at the limit (in characters, not bytes) is accepted; one more is not, on update too.
    let (status, task) = app
        .post(
            &path,
            Some(&admin),
            json!({ "title": "Plan", "description": "ñ".repeat(20_000) }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_path = format!("/api/tasks/{}", task["id"]);
    let (status, body) = app
        .call(
            Method::PATCH,
            &task_path,
            Some(&admin),
            Some(json!({ "description": too_long })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "description");
    let (_, unchanged) = app.get(&task_path, &admin).await;
    assert_eq!(unchanged["version"], task["version"]);
}

#[actix_web::test]
async fn a_link_to_another_committees_meeting_is_answered_as_if_it_did_not_exist() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "A").await;
    let b = committee(&app, &admin, "B").await;
    let (_, member_a) = member_of(&app, &admin, a, "a@port.pe", "member").await;
    let (_, chair_b) = member_of(&app, &admin, b, "b@port.cl", "chair").await;
    let starts = chrono::Utc::now() + chrono::Duration::days(2);
    let (status, meeting) = app
        .post(
            &format!("/api/committees/{b}/meetings"),
            Some(&chair_b),
            json!({ "title": "B only", "starts_at": starts, "ends_at": starts + chrono::Duration::hours(1), "timezone": "UTC" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{meeting}");
    let private_meeting = meeting["id"].as_i64().unwrap();
    let (status, item) = app
        .post(
            &format!("/api/meetings/{private_meeting}/agenda"),
            Some(&chair_b),
            json!({ "title": "i", "kind": "information", "duration_minutes": 5 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let private_item = item["id"].as_i64().unwrap();

    let tasks_path = format!("/api/committees/{a}/tasks");
    let attempt = |link: Value| {
        let mut body = json!({ "title": "linked" });
        body.as_object_mut().unwrap().extend(link.as_object().unwrap().clone());
        app.post(&tasks_path, Some(&member_a), body)
    };
    let answer = |(status, mut problem): (StatusCode, Value)| {
        // The request id differs from one answer to the next; the rest must not.
        problem.as_object_mut().unwrap().remove("instance");
        (status, problem)
    };
    let hidden = answer(attempt(json!({ "meeting_id": private_meeting })).await);
    let missing = answer(attempt(json!({ "meeting_id": 999_999 })).await);
    assert_eq!(hidden.0, StatusCode::BAD_REQUEST, "{}", hidden.1);
    assert_eq!(hidden, missing);
    let hidden = answer(attempt(json!({ "agenda_item_id": private_item })).await);
    let missing = answer(attempt(json!({ "agenda_item_id": 999_999 })).await);
    assert_eq!(hidden.0, StatusCode::BAD_REQUEST, "{}", hidden.1);
    assert_eq!(hidden, missing);
    let (_, tasks) = app.get(&format!("/api/committees/{a}/tasks"), &member_a).await;
    assert_eq!(tasks["items"], json!([]), "nothing was written");

    // In its own committee, an agenda item alone is enough: the task gets the item's meeting.
    let (status, task) = app
        .post(
            &format!("/api/committees/{b}/tasks"),
            Some(&chair_b),
            json!({ "title": "from the item", "agenda_item_id": private_item }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["meeting_id"].as_i64(), Some(private_meeting));
}

#[actix_web::test]
async fn tasks_created_at_once_all_land_in_order_and_refused_ones_leave_no_trace() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let other = committee(&app, &admin, "Other").await;
    let (_, author) = member_of(&app, &admin, c, "author@port.pe", "member").await;
    let (outsider_id, _) = member_of(&app, &admin, other, "outsider@port.cl", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &author).await;
    let (_, head) = client.subscribe(&format!("committee:{c}"), None).await;

    // 48 creates at once (they share commits); every fourth names an assignee from another
    // committee, which the write itself refuses after reading the database.
    let path = format!("/api/committees/{c}/tasks");
    let refused = |n: usize| n % 4 == 3;
    let creates = (0..48).map(|n| {
        let mut body = json!({ "title": format!("t{n}") });
        if refused(n) {
            body["assignee_id"] = json!(outsider_id);
        }
        app.post(&path, Some(&author), body)
    });
    let answers = futures_util::future::join_all(creates).await;
    let mut created = std::collections::BTreeSet::new();
    for (n, (status, body)) in answers.iter().enumerate() {
        if refused(n) {
            assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(body["code"], "invalid_assignee");
        } else {
            assert_eq!(*status, StatusCode::CREATED, "{body}");
            assert_eq!(body["title"], format!("t{n}"));
            created.insert(format!("t{n}"));
        }
    }
    assert_eq!(created.len(), 36);

    // One event per created task, with consecutive offsets; nothing of the refused ones.
    let mut delivered = std::collections::BTreeSet::new();
    for expected_offset in head + 1..=head + 36 {
        let event = client.next_event().await;
        assert_eq!(event["offset"], expected_offset);
        assert_eq!(event["kind"], "task.created");
        delivered.insert(event["data"]["title"].as_str().unwrap().to_owned());
    }
    assert_eq!(delivered, created);
    let (_, list) = app.get(&format!("{path}?limit=100"), &author).await;
    let stored: std::collections::BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored, created);
    let (_, feed) = app
        .get(
            &format!("/api/events?channel=committee:{c}&after={head}&limit=100"),
            &author,
        )
        .await;
    assert_eq!(feed["items"].as_array().unwrap().len(), 36, "{feed}");
    assert_eq!(feed["head"], head + 36);
}

#[actix_web::test]
async fn only_a_writer_of_its_committee_deletes_a_task_and_then_it_is_gone() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let other = committee(&app, &admin, "Other").await;
    let (_, member) = member_of(&app, &admin, c, "member@port.pe", "member").await;
    let (_, observer) = member_of(&app, &admin, c, "observer@port.pe", "observer").await;
    let (_, outsider) = member_of(&app, &admin, other, "outsider@port.cl", "member").await;
    let (_, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&member),
            json!({ "title": "T" }),
        )
        .await;
    let task_path = format!("/api/tasks/{}", task["id"]);
    let (mut client, _) = WsClient::authenticated(&app, &observer).await;
    let (_, head) = client.subscribe(&format!("committee:{c}"), None).await;

    let delete = |token: Option<String>| {
        let (app, task_path) = (&app, &task_path);
        async move { app.call(Method::DELETE, task_path, token.as_deref(), None).await }
    };
    assert_eq!(delete(None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(delete(Some(outsider.clone())).await.0, StatusCode::NOT_FOUND);
    assert_eq!(delete(Some(observer.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&task_path, &member).await.0,
        StatusCode::OK,
        "refusals change nothing"
    );

    assert_eq!(delete(Some(member.clone())).await.0, StatusCode::NO_CONTENT);
    let event = client.next_event().await;
    assert_eq!(
        (event["kind"].as_str(), event["offset"].as_i64()),
        (Some("task.deleted"), Some(head + 1))
    );
    assert_eq!(app.get(&task_path, &member).await.0, StatusCode::NOT_FOUND);
    let (_, list) = app.get(&format!("/api/committees/{c}/tasks"), &member).await;
    assert_eq!(list["items"], json!([]));
    assert_eq!(
        delete(Some(member.clone())).await.0,
        StatusCode::NOT_FOUND,
        "a deleted task is gone"
    );
}

/// Task writes check their token inside their group-commit batch, before anything else: a
/// suspension, a reactivation that leaves the old token revoked, or a logout, must still refuse
/// every one of them, whether what they name exists or not, and a token in good standing learns
/// what does not exist.
#[actix_web::test]
async fn task_writes_refuse_a_token_that_no_longer_stands_and_tell_it_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (member_id, stale) = member_of(&app, &admin, c, "member@port.pe", "member").await;
    let (status, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&stale),
            json!({ "title": "Before" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task_id = task["id"].as_i64().unwrap();
    // The four task writes, on a committee and a task, with their answers and problem codes.
    let writes = |token: String, committee_id: i64, task_id: i64| {
        let app = &app;
        async move {
            let calls = [
                (
                    Method::POST,
                    format!("/api/committees/{committee_id}/tasks"),
                    Some(json!({ "title": "After" })),
                ),
                (
                    Method::PATCH,
                    format!("/api/tasks/{task_id}"),
                    Some(json!({ "title": "After" })),
                ),
                (
                    Method::POST,
                    format!("/api/tasks/{task_id}/comments"),
                    Some(json!({ "body": "After" })),
                ),
                (Method::DELETE, format!("/api/tasks/{task_id}"), None),
            ];
            let mut answers = Vec::new();
            for (method, path, body) in calls {
                let (status, problem) = app.call(method.clone(), &path, Some(&token), body).await;
                answers.push((format!("{method} {path}"), status, problem["code"].clone()));
            }
            answers
        }
    };
    let all_answered = |answers: Vec<(String, StatusCode, Value)>, expected: StatusCode, code: &str| {
        for (call, status, problem) in answers {
            assert_eq!((status, problem.as_str()), (expected, Some(code)), "{call}");
        }
    };
    let refused = |answers| all_answered(answers, StatusCode::UNAUTHORIZED, "unauthorized");
    let set_status = |status: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let path = format!("/api/admin/members/{member_id}");
            let (code, body) = app
                .call(Method::PATCH, &path, Some(admin), Some(json!({ "status": status })))
                .await;
            assert_eq!(code, StatusCode::OK, "{body}");
        }
    };

    set_status("suspended").await;
    refused(writes(stale.clone(), c, task_id).await);
    refused(writes(stale.clone(), 999_999, 999_999).await);
    // Active again, but the suspension revoked the tokens it had: the old one stays refused.
    set_status("active").await;
    refused(writes(stale.clone(), c, task_id).await);
    refused(writes(stale.clone(), 999_999, 999_999).await);

    let task_path = format!("/api/tasks/{task_id}");
    let (_, stored) = app.get(&task_path, &admin).await;
    assert_eq!(
        (stored["title"].as_str(), stored["version"].as_i64()),
        (Some("Before"), Some(1))
    );
    let (_, comments) = app.get(&format!("{task_path}/comments"), &admin).await;
    assert_eq!(comments["items"], json!([]));
    let created = app.events_of(&format!("committee:{c}"), "task.created", &admin).await;
    assert_eq!(created.len(), 1, "only the task made before the suspension");

    // A new token of the same account writes again.
    let (status, pair) = app.login("member@port.pe", crate::helpers::PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let fresh = pair["access_token"].as_str().unwrap().to_owned();
    all_answered(
        writes(fresh.clone(), 999_999, 999_999).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            &task_path,
            Some(&fresh),
            Some(json!({ "title": "After" })),
        )
        .await;
    assert_eq!((status, body["title"].as_str()), (StatusCode::OK, Some("After")));
    let (status, _) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&fresh),
            json!({ "title": "New" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Logged out: the session's token is refused again, whatever it names.
    app.logout(&pair).await;
    refused(writes(fresh.clone(), c, task_id).await);
    refused(writes(fresh, 999_999, 999_999).await);
    let (_, stored) = app.get(&task_path, &admin).await;
    assert_eq!(stored["title"].as_str(), Some("After"));
}

/// A suspended account cannot open the committee's tasks, so none is given to it: not when the
/// task is created, nor by a change of assignee. Once reactivated it can be given one again.
#[actix_web::test]
async fn a_task_is_given_only_to_an_active_account() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, author) = member_of(&app, &admin, c, "author@port.pe", "member").await;
    let (assignee_id, _) = member_of(&app, &admin, c, "assignee@port.pe", "member").await;
    let set_status = async |status: &'static str| {
        app.call(
            Method::PATCH,
            &format!("/api/admin/members/{assignee_id}"),
            Some(&admin),
            Some(json!({ "status": status })),
        )
        .await
    };
    let path = format!("/api/committees/{c}/tasks");
    let (status, task) = app.post(&path, Some(&author), json!({ "title": "Unassigned" })).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let create_assigned = async || {
        app.post(
            &path,
            Some(&author),
            json!({ "title": "Draft MOU", "assignee_id": assignee_id }),
        )
        .await
    };

    assert_eq!(set_status("suspended").await.0, StatusCode::OK);
    let (status, body) = create_assigned().await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_assignee"))
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/tasks/{}", task["id"]),
            Some(&author),
            Some(json!({ "assignee_id": assignee_id })),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("invalid_assignee"))
    );
    let (_, list) = app.get(&path, &author).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");

    assert_eq!(set_status("active").await.0, StatusCode::OK);
    let (status, body) = create_assigned().await;
    assert_eq!(
        (status, &body["assignee_id"]),
        (StatusCode::CREATED, &json!(assignee_id)),
        "{body}"
    );
}

/// DESIGN.md rule 5 in a member's own channel: once they have left a committee, a replay keeps
/// the tasks they were given there in their places, with the content redacted; the removal
/// itself stays readable.
#[actix_web::test]
async fn a_replay_of_ones_own_channel_redacts_the_tasks_of_a_committee_one_has_left() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, author) = member_of(&app, &admin, c, "author@port.pe", "member").await;
    let (leaver_id, leaver) = member_of(&app, &admin, c, "leaver@port.pe", "member").await;
    let (status, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&author),
            json!({ "title": "Draft the port community's MOU", "assignee_id": leaver_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let own = format!("member:{leaver_id}");
    let assigned = |feed: &Value| -> Vec<Value> {
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["kind"] == "task.assigned")
            .map(|event| event["data"].clone())
            .collect()
    };
    let (_, feed) = app.get(&format!("/api/events?channel={own}"), &leaver).await;
    assert_eq!(assigned(&feed)[0]["title"], "Draft the port community's MOU");

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/admin/committees/{c}/members/{leaver_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, feed) = app.get(&format!("/api/events?channel={own}"), &leaver).await;
    assert_eq!(assigned(&feed), [json!({ "redacted": true, "task_id": task["id"] })]);
    assert!(!feed.to_string().contains("MOU"), "{feed}");
    let removed = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["kind"] == "membership.removed")
        .expect("the removal is there");
    assert_eq!(removed["data"]["committee_id"], c);
}

/// A title may be 300 characters; the mail that quotes it must not be refused for it (the
/// queue's subject holds 300 characters: on PostgreSQL the create failed with 400).
#[actix_web::test]
async fn a_task_with_the_longest_title_is_assigned_and_its_mail_goes_out() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, author) = member_of(&app, &admin, c, "author@port.pe", "member").await;
    let (assignee_id, _) = member_of(&app, &admin, c, "assignee@port.pe", "member").await;
    let title = "Ñ".repeat(300);

    let (status, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&author),
            json!({ "title": title, "assignee_id": assignee_id }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(task["title"], json!(title));
    let mail = app
        .wait_for_mail("assignee@port.pe", |mail| {
            mail.subject.starts_with("New task for you: ÑÑÑ")
        })
        .await;
    assert!(mail.subject.ends_with('…'), "{}", mail.subject);
    assert!(mail.text.contains(&title), "the body quotes the whole title");
}
