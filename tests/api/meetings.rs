use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use dcports::settings::{MailTransportKind, SmtpSecurity};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::committees::{committee, member_of, one_winner, sorted};
use crate::documents::{pdf, upload_document};
use crate::helpers::{TestApp, parse_mail, spawn_app, spawn_app_with};
use crate::smtp::FakeSmtp;
use crate::ws::WsClient;

pub async fn create_meeting(app: &TestApp, token: &str, committee_id: i64, body: Value) -> Value {
    let (status, meeting) = app
        .post(&format!("/api/committees/{committee_id}/meetings"), Some(token), body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{meeting}");
    meeting
}

#[actix_web::test]
async fn a_meeting_goes_from_agenda_to_live_mode_to_minutes() {
    let smtp = FakeSmtp::start(0);
    let port = smtp.port;
    let app = spawn_app_with(|settings| {
        settings.mail.transport = MailTransportKind::Smtp;
        settings.mail.smtp.host = "127.0.0.1".to_owned();
        settings.mail.smtp.port = port;
        settings.mail.smtp.security = SmtpSecurity::None;
    })
    .await
    .with_smtp(&smtp);
    let admin = app.secretariat("admin@sela.org").await;
    let steering = committee(&app, &admin, "Steering Committee").await;
    let technical = committee(&app, &admin, "Technical Committee 1").await;
    let (chair_id, chair) = member_of(&app, &admin, steering, "chair@sela.org", "chair").await;
    let (guest_id, guest) = member_of(&app, &admin, technical, "guest@port.pe", "member").await;

    // Whole seconds: PostgreSQL keeps microseconds, not nanoseconds.
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let meeting = create_meeting(
        &app,
        &chair,
        steering,
        json!({
            "title": "IV Regional Meeting", "starts_at": starts, "ends_at": starts + Duration::minutes(120),
            "timezone": "America/Port_of_Spain", "location": "Port of Spain", "invited_committee_ids": [technical], "public": true
        }),
    )
    .await;
    let id = meeting["id"].as_i64().unwrap();
    assert_eq!(meeting["invited_committee_ids"], json!([technical]));

    // The invited member sees it, and follows it live.
    assert_eq!(app.get(&format!("/api/meetings/{id}"), &guest).await.0, StatusCode::OK);
    let (mut socket, _) = WsClient::authenticated(&app, &guest).await;
    socket.subscribe(&format!("committee:{technical}"), None).await;

    let mut items = Vec::new();
    for (title, minutes) in [
        ("Opening", 10),
        ("Port community reports", 40),
        ("Indicators", 30),
        ("MOU signature", 20),
        ("Next meeting", 10),
    ] {
        let (status, item) = app
            .post(
                &format!("/api/meetings/{id}/agenda"),
                Some(&chair),
                json!({ "title": title, "kind": "discussion", "duration_minutes": minutes, "presenter_id": chair_id }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{item}");
        items.push(item["id"].as_i64().unwrap());
        assert_eq!(socket.next_event().await["kind"], "agenda_item.created");
    }
    let (status, body) = app
        .post(
            &format!("/api/meetings/{id}/agenda"),
            Some(&chair),
            json!({ "title": "Too much", "kind": "information", "duration_minutes": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "agenda_over_allocated");
    assert_eq!(body["overrun_minutes"], 20);
    let (status, _) = app
        .post(
            &format!("/api/meetings/{id}/agenda"),
            Some(&guest),
            json!({ "title": "Mine", "kind": "information", "duration_minutes": 1 }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the chair shapes the agenda");

    // Reorder: the signature first; planned starts follow.
    let order = vec![items[3], items[0], items[1], items[2], items[4]];
    let (status, agenda) = app
        .call(
            Method::PUT,
            &format!("/api/meetings/{id}/agenda/order"),
            Some(&chair),
            Some(json!({ "item_ids": order })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{agenda}");
    let ids: Vec<i64> = agenda["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, order);
    let second_start: chrono::DateTime<Utc> = agenda["items"][1]["starts_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(second_start, starts + Duration::minutes(20));
    assert_eq!(socket.next_event().await["kind"], "agenda.reordered");
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/meetings/{id}/agenda/order"),
            Some(&chair),
            Some(json!({ "item_ids": [items[0]] })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert_eq!(
        app.call(
            Method::POST,
            &format!("/api/meetings/{id}/agenda/finalize"),
            Some(&chair),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    socket.next_event().await;
    let (_, changed) = app
        .call(
            Method::PATCH,
            &format!("/api/agenda-items/{}", items[4]),
            Some(&chair),
            Some(json!({ "duration_minutes": 5 })),
        )
        .await;
    assert_eq!(changed["changed_after_finalized"], true);
    let event = socket.next_event().await;
    assert_eq!(
        (event["kind"].as_str(), event["data"]["after_finalized"].as_bool()),
        (Some("agenda_item.updated"), Some(true))
    );

    let (status, published) = app
        .call(
            Method::POST,
            &format!("/api/meetings/{id}/agenda/publish"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(published["recipients"], 2);
    assert_eq!(socket.next_event().await["kind"], "agenda.published");
    let mut mails = Vec::new();
    for _ in 0..200 {
        mails = smtp
            .messages()
            .iter()
            .filter_map(|raw| parse_mail(raw))
            .filter(|m| m.subject.starts_with("Agenda:"))
            .collect();
        if mails.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(mails.len(), 2, "one agenda mail per invitee, through SMTP");
    assert!(
        mails
            .iter()
            .any(|m| m.to == "guest@port.pe" && m.text.contains("MOU signature"))
    );
    // The time in the meeting's zone, named, with its offset: an abbreviation ("AST") is
    // ambiguous across the Network's countries.
    assert!(
        mails
            .iter()
            .all(|m| m.text.contains("(America/Port_of_Spain, UTC-04:00)")),
        "{}",
        mails[0].text
    );
    // Publishing again at once mails nobody again: the invitees' inboxes are not the chair's
    // to flood (it may once the interval has passed).
    let republish = app
        .client
        .post(app.url(&format!("/api/meetings/{id}/agenda/publish")))
        .bearer_auth(&chair)
        .send()
        .await
        .unwrap();
    assert_eq!(republish.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = republish.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let agenda_mails = smtp
        .messages()
        .iter()
        .filter_map(|raw| parse_mail(raw))
        .filter(|m| m.subject.starts_with("Agenda:"))
        .count();
    assert_eq!(agenda_mails, 2);

    let (status, rsvp) = app
        .call(
            Method::PUT,
            &format!("/api/meetings/{id}/attendance"),
            Some(&guest),
            Some(json!({ "response": "yes" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rsvp["response"], "yes");
    socket.next_event().await;
    app.call(
        Method::PUT,
        &format!("/api/meetings/{id}/attendance/{guest_id}"),
        Some(&chair),
        Some(json!({ "present": true })),
    )
    .await;
    socket.next_event().await;

    // Live mode through every item; the invited member sees each move.
    assert_eq!(
        app.call(
            Method::POST,
            &format!("/api/meetings/{id}/live/next"),
            Some(&chair),
            None
        )
        .await
        .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.call(
            Method::POST,
            &format!("/api/meetings/{id}/live/start"),
            Some(&guest),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (status, live) = app
        .call(
            Method::POST,
            &format!("/api/meetings/{id}/live/start"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{live}");
    assert_eq!(live["current_item_id"], order[0]);
    let event = socket.next_event().await;
    assert_eq!(
        (event["kind"].as_str(), event["data"]["current_item_id"].as_i64()),
        (Some("meeting.live"), Some(order[0]))
    );
    assert!(
        event["data"]["drift_s"].as_i64().unwrap() < 0,
        "started a week early: ahead of plan"
    );
    app.call(
        Method::POST,
        &format!("/api/meetings/{id}/live/pause"),
        Some(&chair),
        None,
    )
    .await;
    assert_eq!(socket.next_event().await["data"]["paused"], true);
    app.call(
        Method::POST,
        &format!("/api/meetings/{id}/live/resume"),
        Some(&chair),
        None,
    )
    .await;
    assert_eq!(socket.next_event().await["data"]["paused"], false);
    for expected in &order[1..] {
        let (_, live) = app
            .call(
                Method::POST,
                &format!("/api/meetings/{id}/live/next"),
                Some(&chair),
                None,
            )
            .await;
        assert_eq!(live["current_item_id"], *expected);
        assert_eq!(socket.next_event().await["data"]["current_item_id"], *expected);
    }
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/meetings/{id}/live/next"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no item after the last");
    let (_, back) = app
        .call(
            Method::POST,
            &format!("/api/meetings/{id}/live/previous"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(back["current_item_id"], order[3]);
    socket.next_event().await;
    let (_, clock) = app.get(&format!("/api/meetings/{id}/live"), &guest).await;
    assert_eq!(clock["current_item_id"], order[3]);
    assert!(clock["remaining_s"].as_i64().unwrap() <= 30 * 60);
    let (_, ended) = app
        .call(
            Method::POST,
            &format!("/api/meetings/{id}/live/end"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(ended["status"], "held");
    assert_eq!(socket.next_event().await["data"]["status"], "held");

    // Outcomes and action items make the minutes.
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/agenda-items/{}", items[3]),
            Some(&chair),
            Some(json!({ "outcome": "MOU signed by 13 countries." })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, task) = app
        .post(
            &format!("/api/agenda-items/{}/action-items", items[3]),
            Some(&chair),
            json!({ "title": "Send signed copies", "assignee_id": chair_id, "due_on": "2027-01-15" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    assert_eq!(
        (task["meeting_id"].as_i64(), task["agenda_item_id"].as_i64()),
        (Some(id), Some(items[3]))
    );
    // The invited committee links a task of its own to the item: it stays its own business.
    let (status, own) = app
        .post(
            &format!("/api/committees/{technical}/tasks"),
            Some(&guest),
            json!({ "title": "Technical's private follow-up", "agenda_item_id": items[3] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let (status, minutes) = app.get(&format!("/api/meetings/{id}/minutes"), &guest).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(minutes["attendance"][0]["present"], true);
    let signature = &minutes["items"][0];
    assert_eq!(signature["outcome"], "MOU signed by 13 countries.");
    let action_items: Vec<&str> = signature["action_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["title"].as_str().unwrap())
        .collect();
    assert_eq!(action_items, ["Send signed copies"], "the owner committee's only");
    assert_eq!(signature["planned_minutes"], 20);
    let markdown = app
        .text(&format!("/api/meetings/{id}/minutes?format=markdown"), Some(&guest))
        .await;
    assert!(markdown.starts_with("# IV Regional Meeting"), "{markdown}");
    let port_of_spain = format!(
        "{} (America/Port_of_Spain, UTC-04:00) · Port of Spain",
        starts
            .with_timezone(&chrono_tz::America::Port_of_Spain)
            .format("%Y-%m-%d %H:%M")
    );
    assert!(markdown.contains(&port_of_spain), "{markdown}");
    assert!(markdown.contains("**Outcome:** MOU signed by 13 countries."));
    assert!(markdown.contains("- [ ] Send signed copies — Member, due 2027-01-15"));
    assert!(!markdown.contains("private follow-up"), "{markdown}");

    // Filed as a document of the committee; filing again adds a version.
    let (status, document) = app
        .call(
            Method::POST,
            &format!("/api/meetings/{id}/minutes/document"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    assert_eq!(document["file"]["content_type"], "text/markdown");
    assert_eq!(
        app.call(
            Method::POST,
            &format!("/api/meetings/{id}/minutes/document"),
            Some(&guest),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (_, again) = app
        .call(
            Method::POST,
            &format!("/api/meetings/{id}/minutes/document"),
            Some(&chair),
            None,
        )
        .await;
    assert_eq!(
        (again["id"].clone(), again["current_version"].clone()),
        (document["id"].clone(), json!(2))
    );
    let filed = app
        .text(&format!("/api/documents/{}/content", document["id"]), Some(&chair))
        .await;
    assert!(filed.contains("**Outcome:** MOU signed by 13 countries."));
}

fn ics_events(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let unfolded = icalendar::parser::unfold(text);
    let calendar = icalendar::parser::read_calendar(&unfolded).expect("valid iCalendar");
    calendar
        .components
        .iter()
        .filter(|c| c.name == "VEVENT")
        .map(|c| {
            c.properties
                .iter()
                .map(|p| (p.name.to_string(), p.val.to_string()))
                .collect()
        })
        .collect()
}

/// The personal feed holds the meetings of the member's committees, owned or invited to, from
/// a year back on: what is older stays in the committees' lists, not in every poll of the feed.
#[actix_web::test]
async fn the_personal_feed_goes_a_year_back_and_holds_the_members_committees_meetings() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let (own, inviting, other) = (
        committee(&app, &admin, "Own").await,
        committee(&app, &admin, "Inviting").await,
        committee(&app, &admin, "Other").await,
    );
    let (_, member) = member_of(&app, &admin, own, "m@port.pe", "member").await;
    let now = Utc::now();
    let history = Duration::days(dcports::meetings::service::FEED_HISTORY_DAYS);
    for (committee_id, title, starts, invited) in [
        (own, "Too old", now - history - Duration::days(1), json!([])),
        (own, "Within the year", now - history + Duration::days(1), json!([])),
        (inviting, "Invited", now + Duration::days(3), json!([own])),
        (other, "Not ours", now + Duration::days(4), json!([])),
    ] {
        let body = json!({ "title": title, "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC", "invited_committee_ids": invited });
        create_meeting(&app, &admin, committee_id, body).await;
    }
    let titles = |token: String| {
        let app = &app;
        async move {
            let (status, feed) = app
                .call(Method::POST, "/api/me/calendar-token", Some(&token), None)
                .await;
            assert_eq!(status, StatusCode::CREATED);
            let url = format!("/api/me/calendar.ics?token={}", feed["token"].as_str().unwrap());
            ics_events(&app.text(&url, None).await)
                .into_iter()
                .map(|event| event["SUMMARY"].clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(titles(member).await, ["Within the year", "Invited"]);
    assert_eq!(titles(admin.clone()).await, ["Within the year", "Invited", "Not ours"]);
}

#[actix_web::test]
async fn the_calendar_file_parses_keeps_its_uid_counts_changes_and_marks_cancellation() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    // Santiago changes to summer time on the first Sunday of September: a meeting on each side.
    let tz: chrono_tz::Tz = "America/Santiago".parse().unwrap();
    let winter = tz.with_ymd_and_hms(2027, 8, 20, 9, 30, 0).unwrap().with_timezone(&Utc);
    let summer = tz.with_ymd_and_hms(2027, 9, 20, 9, 30, 0).unwrap().with_timezone(&Utc);
    assert_ne!(winter.time(), summer.time(), "the two dates straddle a DST change");
    let mut ids = Vec::new();
    for (title, at) in [("Winter", winter), ("Summer", summer)] {
        let meeting = create_meeting(&app, &admin, c, json!({ "title": title, "starts_at": at, "ends_at": at + Duration::hours(1), "timezone": "America/Santiago", "location": "Valparaíso" })).await;
        ids.push(meeting["id"].as_i64().unwrap());
    }
    let ics = |id: i64| {
        let admin = admin.clone();
        let url = app.url(&format!("/api/meetings/{id}/calendar.ics"));
        let client = app.client.clone();
        async move {
            let response = client.get(url).bearer_auth(&admin).send().await.unwrap();
            assert_eq!(response.headers()["content-type"], "text/calendar; charset=utf-8");
            response.text().await.unwrap()
        }
    };
    for (id, local) in [(ids[0], "09:30"), (ids[1], "09:30")] {
        let text = ics(id).await;
        let events = ics_events(&text);
        assert_eq!(events.len(), 1);
        let start = chrono::NaiveDateTime::parse_from_str(&events[0]["DTSTART"], "%Y%m%dT%H%M%SZ")
            .unwrap()
            .and_utc();
        assert_eq!(
            start.with_timezone(&tz).format("%H:%M").to_string(),
            local,
            "round-trips in the meeting's zone"
        );
        assert_eq!(events[0]["X-DCPORTS-TIMEZONE"], "America/Santiago");
        assert!(text.contains("X-WR-TIMEZONE:America/Santiago"));
    }

    let first = ics_events(&ics(ids[0]).await).remove(0);
    app.call(
        Method::PATCH,
        &format!("/api/meetings/{}", ids[0]),
        Some(&admin),
        Some(json!({ "location": "San Antonio" })),
    )
    .await;
    let moved = ics_events(&ics(ids[0]).await).remove(0);
    assert_eq!(moved["UID"], first["UID"], "UID stable across updates");
    assert_eq!(
        moved["SEQUENCE"].parse::<u32>().unwrap(),
        first["SEQUENCE"].parse::<u32>().unwrap() + 1
    );
    assert_eq!(moved["LOCATION"], "San Antonio");
    // The online link is part of the place, and scheduling a draft confirms it: calendars
    // replace their copy only when SEQUENCE grows.
    let mut previous = moved;
    for (change, property, value) in [
        (
            json!({ "online_url": "https://meet.example/cpt" }),
            "LOCATION",
            "San Antonio · https://meet.example/cpt",
        ),
        (json!({ "status": "scheduled" }), "STATUS", "CONFIRMED"),
    ] {
        let (status, body) = app
            .call(
                Method::PATCH,
                &format!("/api/meetings/{}", ids[0]),
                Some(&admin),
                Some(change.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let changed = ics_events(&ics(ids[0]).await).remove(0);
        assert_eq!(changed[property], value, "{change}");
        assert_eq!(
            changed["SEQUENCE"].parse::<u32>().unwrap(),
            previous["SEQUENCE"].parse::<u32>().unwrap() + 1,
            "{change}"
        );
        previous = changed;
    }
    let moved = previous;
    app.call(
        Method::PATCH,
        &format!("/api/meetings/{}", ids[0]),
        Some(&admin),
        Some(json!({ "status": "cancelled" })),
    )
    .await;
    let cancelled = ics_events(&ics(ids[0]).await).remove(0);
    assert_eq!(cancelled["STATUS"], "CANCELLED");
    assert!(cancelled["SEQUENCE"].parse::<u32>().unwrap() > moved["SEQUENCE"].parse::<u32>().unwrap());

    // The personal feed works with its token only, and stops when revoked. The feed is what the
    // 201 made, so its address is the `Location`.
    let response = app
        .client
        .post(app.url("/api/me/calendar-token"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let feed: Value = response.json().await.unwrap();
    let token = feed["token"].as_str().unwrap();
    let url = format!("/api/me/calendar.ics?token={token}");
    assert_eq!(feed["url"], json!(location));
    assert!(location.ends_with(&url), "{location}");
    let response = app.client.get(app.url(&url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(ics_events(&response.text().await.unwrap()).len(), 2);
    assert_eq!(
        app.client
            .get(app.url("/api/me/calendar.ics?token=dcf_forged"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    app.call(Method::DELETE, "/api/me/calendar-token", Some(&admin), None)
        .await;
    assert_eq!(
        app.client.get(app.url(&url)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

/// A meeting whose reminder cannot be written must not hold back the others' (a 300-character
/// title made the reminder's subject too long on PostgreSQL and stopped the whole check).
#[actix_web::test]
async fn a_meeting_with_the_longest_title_is_reminded_and_so_are_the_others() {
    let app = spawn_app_with(|settings| settings.meetings.reminder_check_secs = 3600).await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    member_of(&app, &admin, c, "m@port.pe", "member").await;
    let long_title = "Q".repeat(300);
    for (title, hours) in [(long_title.as_str(), 2), ("Later", 3)] {
        let starts = Utc::now() + Duration::hours(hours);
        let meeting = create_meeting(&app, &admin, c, json!({ "title": title, "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "America/Lima" })).await;
        let path = format!("/api/meetings/{}", meeting["id"]);
        succeed(
            &app,
            &admin,
            Method::PATCH,
            path,
            Some(json!({ "status": "scheduled" })),
        )
        .await;
    }

    assert_eq!(
        dcports::meetings::service::send_due_reminders(&app.state, 24)
            .await
            .unwrap(),
        2
    );
    app.wait_for_mail("m@port.pe", |mail| mail.subject.starts_with("Reminder: Later"))
        .await;
    let long = app
        .wait_for_mail("m@port.pe", |mail| mail.subject.starts_with("Reminder: QQQ"))
        .await;
    assert_eq!(long.subject.chars().count(), 300, "{}", long.subject);
}

#[actix_web::test]
async fn a_reminder_is_sent_once_even_by_a_second_process_on_the_same_database() {
    let app = spawn_app_with(|settings| settings.meetings.reminder_check_secs = 3600).await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    member_of(&app, &admin, c, "m@port.pe", "member").await;
    let starts = Utc::now() + Duration::hours(3);
    let meeting = create_meeting(&app, &admin, c, json!({ "title": "Soon", "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "America/Lima" })).await;
    let path = format!("/api/meetings/{}", meeting["id"]);
    assert_eq!(
        dcports::meetings::service::send_due_reminders(&app.state, 24)
            .await
            .unwrap(),
        0,
        "drafts are not reminded"
    );
    app.call(
        Method::PATCH,
        &path,
        Some(&admin),
        Some(json!({ "status": "scheduled" })),
    )
    .await;

    assert_eq!(
        dcports::meetings::service::send_due_reminders(&app.state, 24)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        dcports::meetings::service::send_due_reminders(&app.state, 24)
            .await
            .unwrap(),
        0,
        "not twice"
    );
    // Moved after its reminder went out: the reminder named the old time, so it goes again,
    // once. A change that keeps the start (the end) does not.
    let later = starts + Duration::hours(2);
    for (change, reminded) in [
        (json!({ "ends_at": starts + Duration::hours(2) }), 0),
        (json!({ "starts_at": later, "ends_at": later + Duration::hours(1) }), 1),
    ] {
        let (status, body) = app.call(Method::PATCH, &path, Some(&admin), Some(change.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            dcports::meetings::service::send_due_reminders(&app.state, 24)
                .await
                .unwrap(),
            reminded,
            "{change}"
        );
    }
    // A second process on the same database (a restarted node, or another node) runs its own
    // reminder check at once: what was sent is known from the database, not from memory.
    let mut settings = app.settings.clone();
    settings.meetings.reminder_check_secs = 1;
    let second = dcports::startup::Application::build(settings).await.unwrap();
    let second_state = second.state();
    actix_web::rt::spawn(second.run_until_stopped());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        dcports::meetings::service::send_due_reminders(&second_state, 24)
            .await
            .unwrap(),
        0
    );
    let reminders = || {
        app.mails_to("m@port.pe")
            .into_iter()
            .filter(|mail| mail.subject.starts_with("Reminder: Soon"))
            .count()
    };
    for _ in 0..200 {
        if reminders() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(reminders(), 2, "the first, and the one after the move");
}

/// Each role against each endpoint: the status it must get.
#[actix_web::test]
async fn the_authorization_matrix_of_tasks_and_meetings_holds() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let owner = committee(&app, &admin, "Owner").await;
    let invited = committee(&app, &admin, "Invited").await;
    let stranger_committee = committee(&app, &admin, "Stranger").await;
    let (_, chair) = member_of(&app, &admin, owner, "chair@o.org", "chair").await;
    let (_, member) = member_of(&app, &admin, owner, "member@o.org", "member").await;
    let (_, observer) = member_of(&app, &admin, owner, "observer@o.org", "observer").await;
    let (_, guest) = member_of(&app, &admin, invited, "guest@i.org", "member").await;
    let (_, stranger) = member_of(&app, &admin, stranger_committee, "stranger@s.org", "member").await;
    let starts = Utc::now() + Duration::days(3);
    let meeting = create_meeting(&app, &chair, owner, json!({ "title": "M", "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC", "invited_committee_ids": [invited] })).await;
    let m = meeting["id"].as_i64().unwrap();
    let (_, task) = app
        .post(
            &format!("/api/committees/{owner}/tasks"),
            Some(&member),
            json!({ "title": "T" }),
        )
        .await;
    let t = task["id"].as_i64().unwrap();

    let roles: [(&str, Option<&str>); 7] = [
        ("secretariat", Some(&admin)),
        ("chair", Some(&chair)),
        ("member", Some(&member)),
        ("observer", Some(&observer)),
        ("invited", Some(&guest)),
        ("stranger", Some(&stranger)),
        ("anonymous", None),
    ];
    use StatusCode as S;
    let cases: Vec<(Method, String, Value, [S; 7])> = vec![
        (
            Method::GET,
            format!("/api/committees/{owner}/tasks"),
            json!(null),
            [S::OK, S::OK, S::OK, S::OK, S::NOT_FOUND, S::NOT_FOUND, S::UNAUTHORIZED],
        ),
        (
            Method::POST,
            format!("/api/committees/{owner}/tasks"),
            json!({ "title": "x" }),
            [
                S::CREATED,
                S::CREATED,
                S::CREATED,
                S::FORBIDDEN,
                S::NOT_FOUND,
                S::NOT_FOUND,
                S::UNAUTHORIZED,
            ],
        ),
        (
            Method::GET,
            format!("/api/tasks/{t}"),
            json!(null),
            [S::OK, S::OK, S::OK, S::OK, S::NOT_FOUND, S::NOT_FOUND, S::UNAUTHORIZED],
        ),
        (
            Method::PATCH,
            format!("/api/tasks/{t}"),
            json!({ "priority": "low" }),
            [
                S::OK,
                S::OK,
                S::OK,
                S::FORBIDDEN,
                S::NOT_FOUND,
                S::NOT_FOUND,
                S::UNAUTHORIZED,
            ],
        ),
        (
            Method::POST,
            format!("/api/tasks/{t}/comments"),
            json!({ "body": "b" }),
            [
                S::CREATED,
                S::CREATED,
                S::CREATED,
                S::FORBIDDEN,
                S::NOT_FOUND,
                S::NOT_FOUND,
                S::UNAUTHORIZED,
            ],
        ),
        (
            Method::GET,
            format!("/api/meetings/{m}"),
            json!(null),
            [S::OK, S::OK, S::OK, S::OK, S::OK, S::NOT_FOUND, S::UNAUTHORIZED],
        ),
        (
            Method::GET,
            format!("/api/meetings/{m}/agenda"),
            json!(null),
            [S::OK, S::OK, S::OK, S::OK, S::OK, S::NOT_FOUND, S::UNAUTHORIZED],
        ),
        (
            Method::PATCH,
            format!("/api/meetings/{m}"),
            json!({ "description": "d" }),
            [
                S::OK,
                S::OK,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::NOT_FOUND,
                S::UNAUTHORIZED,
            ],
        ),
        (
            Method::POST,
            format!("/api/meetings/{m}/agenda"),
            json!({ "title": "i", "kind": "information", "duration_minutes": 1 }),
            [
                S::CREATED,
                S::CREATED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::NOT_FOUND,
                S::UNAUTHORIZED,
            ],
        ),
        (
            Method::PUT,
            format!("/api/meetings/{m}/attendance"),
            json!({ "response": "maybe" }),
            [S::FORBIDDEN, S::OK, S::OK, S::OK, S::OK, S::NOT_FOUND, S::UNAUTHORIZED],
        ),
        (
            Method::GET,
            format!("/api/meetings/{m}/live"),
            json!(null),
            [S::OK, S::OK, S::OK, S::OK, S::OK, S::NOT_FOUND, S::UNAUTHORIZED],
        ),
        (
            Method::GET,
            format!("/api/meetings/{m}/calendar.ics"),
            json!(null),
            [S::OK, S::OK, S::OK, S::OK, S::OK, S::NOT_FOUND, S::UNAUTHORIZED],
        ),
        (
            Method::POST,
            format!("/api/committees/{owner}/meetings"),
            json!({ "title": "n", "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" }),
            [
                S::CREATED,
                S::CREATED,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::NOT_FOUND,
                S::NOT_FOUND,
                S::UNAUTHORIZED,
            ],
        ),
        (
            Method::GET,
            format!("/api/committees/{invited}/meetings"),
            json!(null),
            [
                S::OK,
                S::NOT_FOUND,
                S::NOT_FOUND,
                S::NOT_FOUND,
                S::OK,
                S::NOT_FOUND,
                S::UNAUTHORIZED,
            ],
        ),
    ];
    for (method, path, body, expected) in cases {
        for ((role, token), want) in roles.iter().zip(expected) {
            let body = (!body.is_null()).then(|| body.clone());
            let (status, answer) = app.call(method.clone(), &path, *token, body).await;
            assert_eq!(status, want, "{role} {method} {path}: {answer}");
        }
    }
    // The invited committee lists the meeting it is invited to.
    let (_, list) = app.get(&format!("/api/committees/{invited}/meetings"), &guest).await;
    assert_eq!(list["items"][0]["id"], m);
}

#[actix_web::test]
async fn of_updates_racing_from_one_version_exactly_one_wins_for_every_versioned_resource() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "Steering Committee").await;
    let (chair_id, chair) = member_of(&app, &admin, c, "chair@sela.org", "chair").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let meeting = create_meeting(
        &app,
        &chair,
        c,
        json!({ "title": "Meeting", "starts_at": starts, "ends_at": starts + Duration::minutes(60), "timezone": "UTC" }),
    )
    .await;
    let meeting_id = meeting["id"].as_i64().unwrap();
    let (status, item) = app
        .post(
            &format!("/api/meetings/{meeting_id}/agenda"),
            Some(&chair),
            json!({ "title": "Opening", "kind": "discussion", "duration_minutes": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let (status, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&chair),
            json!({ "title": "t" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let document = crate::documents::upload_document(&app, &chair, c, "Report", crate::documents::pdf("r")).await;

    // Eight writers from the version each was created with: one wins, seven are refused.
    for (path, created) in [
        (format!("/api/meetings/{meeting_id}"), &meeting),
        (format!("/api/agenda-items/{}", item["id"]), &item),
        (format!("/api/tasks/{}", task["id"]), &task),
        (format!("/api/documents/{}", document["id"]), &document),
    ] {
        let version = created["version"].as_i64().unwrap();
        let statuses = app
            .racing_patches(&path, &chair, version, json!({ "title": "raced" }), 8)
            .await;
        assert_eq!(sorted(statuses), one_winner(8), "{path}");
    }
    // Accounts: the secretariat's edit, and one's own.
    let (_, account) = app.get(&format!("/api/admin/members/{chair_id}"), &admin).await;
    let (_, me) = app.get("/api/me", &chair).await;
    assert_eq!(account["version"], me["version"]);
    for (path, token) in [
        (format!("/api/admin/members/{chair_id}"), &admin),
        ("/api/me".to_owned(), &chair),
    ] {
        let (_, current) = app.get(&path, token).await;
        let version = current["version"].as_i64().unwrap();
        let statuses = app
            .racing_patches(&path, token, version, json!({ "name": "raced" }), 8)
            .await;
        assert_eq!(sorted(statuses), one_winner(8), "{path}");
    }
}

/// Minutes are filed in the document the meeting links to, never in one found by its tag: a
/// document tagged like the minutes, planted by another committee that shares it with this one
/// or by a member of this one, must be left alone.
#[actix_web::test]
async fn minutes_are_filed_in_the_meetings_own_document_not_one_tagged_like_it() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "A").await;
    let b = committee(&app, &admin, "B").await;
    let (_, chair_a) = member_of(&app, &admin, a, "chair-a@port.pe", "chair").await;
    let (_, member_a) = member_of(&app, &admin, a, "member-a@port.pe", "member").await;
    let (_, chair_b) = member_of(&app, &admin, b, "chair-b@port.cl", "chair").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let meeting = create_meeting(
        &app,
        &chair_a,
        a,
        json!({ "title": "Meeting", "starts_at": starts, "ends_at": starts + Duration::minutes(60), "timezone": "UTC" }),
    )
    .await;
    let meeting_id = meeting["id"].as_i64().unwrap();
    let tag = format!("minutes-{meeting_id}");
    let plant = |token: String, committee_id: i64| {
        let (app, tag) = (&app, &tag);
        async move {
            let path = format!("/api/committees/{committee_id}/documents");
            let fields = [("title", "Planted"), ("tags", tag.as_str())];
            let (status, body) = app
                .upload(
                    &path,
                    &token,
                    "planted.pdf",
                    crate::documents::pdf("planted"),
                    &fields,
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body
        }
    };
    let from_b = plant(chair_b.clone(), b).await;
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/documents/{}/shares/{a}", from_b["id"]),
            Some(&chair_b),
            Some(json!({ "access": "write" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let from_member = plant(member_a.clone(), a).await;

    let path = format!("/api/meetings/{meeting_id}/minutes/document");
    let file = || app.call(Method::POST, &path, Some(&chair_a), None);
    let (status, filed) = file().await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    assert_eq!(
        (filed["committee_id"].as_i64(), filed["current_version"].as_i64()),
        (Some(a), Some(1))
    );
    let (status, again) = file().await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(
        (again["id"].clone(), again["current_version"].as_i64()),
        (filed["id"].clone(), Some(2))
    );
    for planted in [&from_b, &from_member] {
        assert_ne!(planted["id"], filed["id"]);
        let (_, now) = app.get(&format!("/api/documents/{}", planted["id"]), &admin).await;
        assert_eq!(now["current_version"], 1, "a planted document gets no version: {now}");
    }
}

/// Agenda items added at once to one meeting cannot together take more time than it has: each
/// checks the budget holding the meeting's lock (on SQLite, the writer gate).
#[actix_web::test]
async fn agenda_items_added_at_once_never_overrun_the_meeting_together() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@sela.org", "chair").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let meeting = create_meeting(
        &app,
        &chair,
        c,
        json!({ "title": "One hour", "starts_at": starts, "ends_at": starts + Duration::minutes(60), "timezone": "UTC" }),
    )
    .await;
    let path = format!("/api/meetings/{}/agenda", meeting["id"]);
    let adds = (0..16).map(|n| {
        let body = json!({ "title": format!("Item {n}"), "kind": "discussion", "duration_minutes": 40 });
        app.post(&path, Some(&chair), body)
    });
    let answers = futures_util::future::join_all(adds).await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(status, _)| *status != StatusCode::CREATED) {
        assert_eq!(
            (*status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("agenda_over_allocated"))
        );
    }
    let (_, agenda) = app.get(&path, &chair).await;
    assert_eq!(agenda["items"].as_array().unwrap().len(), 1, "{agenda}");
}

/// A PUT sent twice at once (a double click) is answered twice and stored once: attendance,
/// a membership, a share. Each reads, then inserts or updates, under its parent's lock.
#[actix_web::test]
async fn the_same_put_sent_at_once_is_stored_once_and_never_a_500() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "A").await;
    let b = committee(&app, &admin, "B").await;
    let (_, chair) = member_of(&app, &admin, a, "chair@sela.org", "chair").await;
    let newcomer = app.member(&admin, "new@port.pe").await["member"]["id"]
        .as_i64()
        .unwrap();
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let meeting = create_meeting(
        &app,
        &chair,
        a,
        json!({ "title": "M", "starts_at": starts, "ends_at": starts + Duration::minutes(60), "timezone": "UTC" }),
    )
    .await;
    let document = crate::documents::upload_document(&app, &chair, a, "Report", crate::documents::pdf("r")).await;
    let puts = [
        (
            format!("/api/meetings/{}/attendance", meeting["id"]),
            chair.clone(),
            json!({ "response": "yes" }),
        ),
        (
            format!("/api/admin/committees/{a}/members/{newcomer}"),
            admin.clone(),
            json!({ "role": "observer" }),
        ),
        (
            format!("/api/documents/{}/shares/{b}", document["id"]),
            chair.clone(),
            json!({ "access": "read" }),
        ),
    ];
    for (path, token, body) in &puts {
        let sent = (0..8).map(|_| app.call(Method::PUT, path, Some(token), Some(body.clone())));
        let answers = futures_util::future::join_all(sent).await;
        assert!(
            answers.iter().all(|(status, _)| status.is_success()),
            "{path}: {answers:?}"
        );
    }
    let (_, minutes) = app
        .get(&format!("/api/meetings/{}/minutes", meeting["id"]), &chair)
        .await;
    let attendance = minutes["attendance"].as_array().unwrap();
    assert_eq!(
        attendance.iter().filter(|row| row["response"] == "yes").count(),
        1,
        "{minutes}"
    );
    let (_, detail) = app.get(&format!("/api/committees/{a}"), &admin).await;
    let newcomers = detail["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["id"] == newcomer)
        .count();
    assert_eq!(newcomers, 1, "{detail}");
    let (_, detail) = app.get(&format!("/api/documents/{}", document["id"]), &chair).await;
    assert_eq!(detail["shares"].as_array().unwrap().len(), 1, "{detail}");
}

/// Live mode and the agenda's finalizing and publishing change the meeting: each moves its
/// version on, so a PATCH from before is refused. A live meeting's status is live mode's alone.
#[actix_web::test]
async fn live_mode_and_the_agenda_move_the_meetings_version_and_own_its_live_status() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@sela.org", "chair").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let body =
        json!({ "title": "M", "starts_at": starts, "ends_at": starts + Duration::minutes(60), "timezone": "UTC" });
    let meeting = create_meeting(&app, &chair, c, body.clone()).await;
    let path = format!("/api/meetings/{}", meeting["id"]);
    let (status, item) = app
        .post(
            &format!("{path}/agenda"),
            Some(&chair),
            json!({ "title": "Opening", "kind": "information", "duration_minutes": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let patch = |version: i64, body: Value| {
        let (app, path, chair) = (&app, &path, &chair);
        async move {
            let response = app
                .client
                .patch(app.url(path))
                .bearer_auth(chair)
                .header("if-match", format!("\"{version}\""))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let version = || async { app.get(&path, &chair).await.1["version"].as_i64().unwrap() };
    let command = |name: &'static str| {
        let (app, path, chair) = (&app, &path, &chair);
        async move {
            app.call(Method::POST, &format!("{path}/{name}"), Some(chair), None)
                .await
        }
    };

    let (status, problem) = patch(1, json!({ "status": "in_progress" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition"))
    );
    assert_eq!(patch(1, json!({ "status": "scheduled" })).await.0, StatusCode::OK);
    let (status, problem) = patch(2, json!({ "status": "in_progress" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition"))
    );

    let mut seen = version().await;
    for name in ["agenda/finalize", "agenda/publish", "live/start"] {
        let (status, body) = command(name).await;
        assert!(status.is_success(), "{name}: {body}");
        let now = version().await;
        assert_eq!(now, seen + 1, "{name} moves the version on");
        let (status, _) = patch(seen, json!({ "title": "stale" })).await;
        assert_eq!(status, StatusCode::PRECONDITION_FAILED, "a PATCH from before {name}");
        seen = now;
    }
    let (_, live) = app.get(&path, &chair).await;
    assert_eq!(live["status"], "in_progress");
    for next in ["held", "cancelled", "scheduled"] {
        let (status, problem) = patch(seen, json!({ "status": next })).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_transition")),
            "a live meeting does not become {next} by hand"
        );
    }
    assert!(command("live/end").await.0.is_success());
    let (_, ended) = app.get(&path, &chair).await;
    assert_eq!(
        (ended["status"].as_str(), ended["version"].as_i64()),
        (Some("held"), Some(seen + 1))
    );

    // Without live mode, a scheduled meeting is marked held by hand.
    let other = create_meeting(&app, &chair, c, body).await;
    let other_path = format!("/api/meetings/{}", other["id"]);
    for (version, status) in [(1, "scheduled"), (2, "held")] {
        let (code, body) = app
            .call(
                Method::PATCH,
                &other_path,
                Some(&chair),
                Some(json!({ "status": status })),
            )
            .await;
        assert_eq!(
            (code, body["status"].as_str(), body["version"].as_i64()),
            (StatusCode::OK, Some(status), Some(version + 1))
        );
    }
}

/// A meeting lasts at most 14 days: a conference of several days, never until the year 9999.
#[actix_web::test]
async fn a_meeting_lasts_at_most_fourteen_days() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let path = format!("/api/committees/{c}/meetings");
    for ends in [starts + Duration::days(15), "9999-12-31T00:00:00Z".parse().unwrap()] {
        let body = json!({ "title": "Forever", "starts_at": starts, "ends_at": ends, "timezone": "UTC" });
        let (status, problem) = app.post(&path, Some(&admin), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "ends_at");
    }
    let fortnight = starts + Duration::days(14);
    let meeting = create_meeting(
        &app,
        &admin,
        c,
        json!({ "title": "Conference", "starts_at": starts, "ends_at": fortnight, "timezone": "UTC" }),
    )
    .await;
    let (status, problem) = app
        .call(
            Method::PATCH,
            &format!("/api/meetings/{}", meeting["id"]),
            Some(&admin),
            Some(json!({ "ends_at": starts + Duration::days(15) })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "ends_at");

    // A meeting stored longer than that before the bound existed still takes other changes.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    entity::meeting::Entity::update_many()
        .col_expr(
            entity::meeting::Column::EndsAt,
            Expr::value(starts + Duration::days(30)),
        )
        .filter(entity::meeting::Column::Id.eq(meeting["id"].as_i64().unwrap() as i32))
        .exec(app.db.conn())
        .await
        .unwrap();
    let (status, renamed) = app
        .call(
            Method::PATCH,
            &format!("/api/meetings/{}", meeting["id"]),
            Some(&admin),
            Some(json!({ "title": "Renamed", "status": "cancelled" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
}

/// A meeting newly invites only open committees (one archived after it was invited may stay),
/// at most a hundred, and an agenda item links at most fifty documents: a list of any length
/// would be one query parameter or one access check per entry.
#[actix_web::test]
async fn invitations_and_linked_documents_are_bounded_and_archived_committees_are_not_newly_invited() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let owner = committee(&app, &admin, "Owner").await;
    let open = committee(&app, &admin, "Open").await;
    let closed = committee(&app, &admin, "Closed").await;
    let (_, chair) = member_of(&app, &admin, owner, "chair@o.org", "chair").await;
    let archive = async |committee: i64| {
        app.call(
            Method::PATCH,
            &format!("/api/admin/committees/{committee}"),
            Some(&admin),
            Some(json!({ "archived": true })),
        )
        .await
    };
    assert_eq!(archive(closed).await.0, StatusCode::OK);
    let starts = Utc::now() + Duration::days(7);
    let meeting = |invited: Vec<i64>| {
        json!({ "title": "Regional", "starts_at": starts, "ends_at": starts + Duration::hours(2),
                "timezone": "America/Lima", "invited_committee_ids": invited })
    };
    let meetings = format!("/api/committees/{owner}/meetings");
    for (invited, message) in [
        (vec![closed], "no such committee, or it is archived"),
        ((1_000..1_101).collect(), "at most 100 committees"),
    ] {
        let (status, problem) = app.post(&meetings, Some(&chair), meeting(invited)).await;
        crate::errors::assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
        assert_eq!(
            problem["errors"][0],
            json!({ "field": "invited_committee_ids", "message": message })
        );
    }
    let created = create_meeting(&app, &chair, owner, meeting(vec![open])).await;
    let path = format!("/api/meetings/{}", created["id"]);

    assert_eq!(archive(open).await.0, StatusCode::OK);
    let (status, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&chair),
            Some(json!({ "title": "Renamed", "invited_committee_ids": [open] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["invited_committee_ids"], json!([open]));

    let (status, problem) = app
        .post(
            &format!("{path}/agenda"),
            Some(&chair),
            json!({ "title": "Item", "kind": "information", "duration_minutes": 10, "document_ids": (1..=51).collect::<Vec<i64>>() }),
        )
        .await;
    crate::errors::assert_problem(status, &problem, StatusCode::BAD_REQUEST, "validation_failed");
    assert_eq!(
        problem["errors"][0],
        json!({ "field": "document_ids", "message": "at most 50 documents" })
    );
    let (_, agenda) = app.get(&format!("{path}/agenda"), &chair).await;
    assert_eq!(agenda["items"], json!([]), "{agenda}");
}

/// DESIGN.md: `public` carries the changes to the public area. A public meeting's changes reach
/// it as the public sees the meeting (no link, no description); a private or draft meeting's do
/// not; one that leaves the public area says so.
#[actix_web::test]
async fn a_public_meetings_changes_reach_the_public_channel_as_the_public_sees_them() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let (_, outsider) = member_of(
        &app,
        &admin,
        committee(&app, &admin, "Other").await,
        "o@port.cl",
        "member",
    )
    .await;
    let (mut public, _) = crate::ws::WsClient::authenticated(&app, &outsider).await;
    public.subscribe("public", None).await;
    let starts = Utc::now() + Duration::days(10);
    let body = |title: &str, public: bool| {
        json!({ "title": title, "starts_at": starts, "ends_at": starts + Duration::hours(2), "timezone": "America/Lima",
                "public": public, "online_url": "https://meet.example/secret-room", "description": "internal notes" })
    };
    let patch = async |id: &Value, body: Value| {
        let (status, meeting) = app
            .call(Method::PATCH, &format!("/api/meetings/{id}"), Some(&chair), Some(body))
            .await;
        assert_eq!(status, StatusCode::OK, "{meeting}");
    };
    let private = create_meeting(&app, &chair, c, body("Private", false)).await;
    let open = create_meeting(&app, &chair, c, body("Open", true)).await;
    // Neither shows yet (one private, both drafts): the first public event is the open one's
    // scheduling, the private one's coming before it.
    patch(&private["id"], json!({ "status": "scheduled" })).await;
    patch(&open["id"], json!({ "status": "scheduled" })).await;
    let event = public.next_event().await;
    assert_eq!(
        (&event["channel"], &event["kind"]),
        (&json!("public"), &json!("meeting.updated"))
    );
    assert_eq!(event["data"]["id"], open["id"]);
    assert_eq!(event["data"]["title"], "Open");
    assert_eq!(event["data"]["status"], "scheduled");
    let text = event.to_string();
    assert!(
        !text.contains("secret-room") && !text.contains("internal notes"),
        "{text}"
    );
    assert_eq!(event["actor_id"], Value::Null, "who changed it stays inside");

    // Changes the public cannot see record nothing there: the next event is the rename.
    patch(&private["id"], json!({ "title": "Still private" })).await;
    patch(
        &open["id"],
        json!({ "online_url": "https://meet.example/another-room", "description": "more notes" }),
    )
    .await;
    patch(&open["id"], json!({ "title": "Open, renamed" })).await;
    // The public page gives its times in the meeting's zone, named with its offset (Lima keeps
    // no summer time): an abbreviation alone would be ambiguous across the Network.
    let page = app.text("/meetings", None).await;
    let lima = chrono_tz::America::Lima;
    let ends = (starts + Duration::hours(2)).with_timezone(&lima);
    let when = format!(
        "{} – {} (America/Lima, UTC-05:00)",
        starts.with_timezone(&lima).format("%Y-%m-%d %H:%M"),
        ends.format("%H:%M")
    );
    // (The page escapes `/` as HTML escapes it.)
    let when = when.replace('/', "&#x2f;");
    assert!(page.contains("Open, renamed") && page.contains(&when), "{when}: {page}");
    let renamed = public.next_event().await;
    assert_eq!(
        (&renamed["data"]["id"], &renamed["data"]["title"]),
        (&open["id"], &json!("Open, renamed"))
    );
    patch(&open["id"], json!({ "public": false })).await;
    let gone = public.next_event().await;
    assert_eq!(gone["data"], json!({ "id": open["id"], "public": false }), "{gone}");
    let (_, listed) = app.get("/api/public/meetings", &outsider).await;
    assert_eq!(listed["items"], json!([]));
}

/// API.md: a create answers 201 with the resource and a `Location` header; what it names can be
/// read back, by whoever could create it, as the same resource.
#[actix_web::test]
async fn every_location_a_create_answers_reads_back_the_created_resource() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let create = async |token: &str, path: String, body: Value| {
        let response = app
            .client
            .post(app.url(&path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{path}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        (location, response.json::<Value>().await.unwrap())
    };
    let starts = Utc::now() + Duration::days(3);
    let meeting_body = json!({ "title": "M", "starts_at": starts, "ends_at": starts + Duration::hours(2), "timezone": "America/Lima" });
    let (meeting_at, meeting) = create(&chair, format!("/api/committees/{c}/meetings"), meeting_body).await;
    let document =
        crate::documents::upload_document(&app, &chair, c, "Estudio", crate::documents::pdf("estudio")).await;
    let created = [
        (meeting_at, meeting.clone(), chair.clone()),
        {
            let (at, item) = create(
                &chair,
                format!("/api/meetings/{}/agenda", meeting["id"]),
                json!({ "title": "Item", "kind": "discussion", "duration_minutes": 30 }),
            )
            .await;
            (at, item, chair.clone())
        },
        {
            let (at, task) = create(&chair, format!("/api/committees/{c}/tasks"), json!({ "title": "T" })).await;
            (at, task, chair.clone())
        },
        {
            let (at, request) = create(
                &chair,
                format!("/api/documents/{}/publish", document["id"]),
                json!({ "kind": "study", "summary": "A study" }),
            )
            .await;
            (at, request, admin.clone())
        },
        {
            let (at, definition) = create(
                &admin,
                "/api/admin/indicators".to_owned(),
                json!({ "code": "crane_moves", "name_en": "Crane moves", "name_es": "Movimientos de grúa", "unit": "moves/h", "higher_is_better": true }),
            )
            .await;
            (at, definition, admin.clone())
        },
    ];
    for (location, resource, reader) in created {
        let (status, read) = app.get(&location, &reader).await;
        assert_eq!(status, StatusCode::OK, "{location}: {read}");
        assert_eq!(read, resource, "{location}");
    }
}

/// DESIGN.md rule 5, for meetings: once a committee is no longer invited, a replay of its
/// channel keeps the meeting's events in their places with their content (title, link)
/// redacted.
#[actix_web::test]
async fn a_replay_redacts_the_events_of_a_meeting_a_committee_is_no_longer_invited_to() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let owner = committee(&app, &admin, "Owner").await;
    let guest = committee(&app, &admin, "Guest").await;
    let (_, chair) = member_of(&app, &admin, owner, "chair@o.org", "chair").await;
    let (_, member) = member_of(&app, &admin, guest, "member@g.org", "member").await;
    let starts = Utc::now() + Duration::days(5);
    let meeting = create_meeting(
        &app,
        &chair,
        owner,
        json!({ "title": "Closed summit", "starts_at": starts, "ends_at": starts + Duration::hours(1),
                "timezone": "UTC", "online_url": "https://meet.example/closed-room", "invited_committee_ids": [guest] }),
    )
    .await;
    let channel = format!("committee:{guest}");
    let meeting_events = |feed: Value| -> Vec<Value> {
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|event| event["kind"].as_str().is_some_and(|kind| kind.starts_with("meeting.")))
            .cloned()
            .collect()
    };
    let (_, feed) = app.get(&format!("/api/events?channel={channel}"), &member).await;
    assert_eq!(meeting_events(feed)[0]["data"]["title"], "Closed summit");

    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/meetings/{}", meeting["id"]),
            Some(&chair),
            Some(json!({ "invited_committee_ids": [] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, feed) = app.get(&format!("/api/events?channel={channel}"), &member).await;
    assert!(
        !feed.to_string().contains("closed-room") && !feed.to_string().contains("Closed summit"),
        "{feed}"
    );
    let events = meeting_events(feed);
    let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["meeting.created", "meeting.uninvited"],
        "the update after the invitation ended never reached the guest, but the end of it did"
    );
    assert_eq!(
        events[0]["data"],
        json!({ "redacted": true, "meeting_id": meeting["id"] })
    );
    assert_eq!(
        events[1]["data"],
        json!({ "meeting_id": meeting["id"], "committee_id": guest })
    );
}

/// Who may read one agenda item, publish an agenda, or read one publication request: the
/// meeting's committees read the item, a stranger and an unknown id find nothing; only the
/// chair publishes; an unknown publication is not found.
#[actix_web::test]
async fn one_agenda_item_and_one_publication_are_read_only_by_those_who_may() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let owner = committee(&app, &admin, "Owner").await;
    let guest = committee(&app, &admin, "Guest").await;
    let other = committee(&app, &admin, "Other").await;
    let (_, chair) = member_of(&app, &admin, owner, "chair@o.org", "chair").await;
    let (_, observer) = member_of(&app, &admin, owner, "observer@o.org", "observer").await;
    let (_, invited) = member_of(&app, &admin, guest, "guest@g.org", "member").await;
    let (_, stranger) = member_of(&app, &admin, other, "stranger@x.org", "member").await;
    let starts = Utc::now() + Duration::days(3);
    let meeting = create_meeting(
        &app,
        &chair,
        owner,
        json!({ "title": "M", "starts_at": starts, "ends_at": starts + Duration::hours(2),
                "timezone": "UTC", "invited_committee_ids": [guest] }),
    )
    .await;
    let (status, item) = app
        .post(
            &format!("/api/meetings/{}/agenda", meeting["id"]),
            Some(&chair),
            json!({ "title": "Item", "kind": "discussion", "duration_minutes": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let path = format!("/api/agenda-items/{}", item["id"]);
    for (token, expected) in [
        (&chair, StatusCode::OK),
        (&observer, StatusCode::OK),
        (&invited, StatusCode::OK),
        (&admin, StatusCode::OK),
        (&stranger, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(app.get(&path, token).await.0, expected, "{token}");
    }
    assert_eq!(
        app.get("/api/agenda-items/999999", &chair).await.0,
        StatusCode::NOT_FOUND
    );

    let publish = format!("/api/meetings/{}/agenda/publish", meeting["id"]);
    for (token, expected) in [
        (&observer, StatusCode::FORBIDDEN),
        (&invited, StatusCode::FORBIDDEN),
        (&stranger, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(app.call(Method::POST, &publish, Some(token), None).await.0, expected);
    }

    assert_eq!(
        app.get("/api/admin/publications/999999", &admin).await.0,
        StatusCode::NOT_FOUND
    );
    // An If-Match that is not a version is refused, not ignored.
    let response = app
        .client
        .patch(app.url("/api/me"))
        .bearer_auth(&chair)
        .header("if-match", "not-a-version")
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// A title or place is one line: a line break in it would end its iCalendar property and let
/// the rest add properties or a whole forged event to every invitee's calendar file. Input
/// refuses it, and the file escapes what was stored before that rule (or by another way).
#[actix_web::test]
async fn a_title_cannot_forge_lines_of_the_calendar_file() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let forged = "Q3\r\nBEGIN:VEVENT\r\nUID:forged\r\nSUMMARY:Log in again at https://evil.example\r\nEND:VEVENT";
    let path = format!("/api/committees/{c}/meetings");
    for (field, body) in [
        (
            "title",
            json!({ "title": forged, "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" }),
        ),
        (
            "title",
            json!({ "title": "Q3\rX", "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" }),
        ),
        (
            "location",
            json!({ "title": "Q3", "location": forged, "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" }),
        ),
    ] {
        let (status, problem) = app.post(&path, Some(&admin), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let (status, problem) = app
        .post(&path, Some(&admin), json!({ "title": "Q3", "online_url": "https://meet.example/\r\nBEGIN:VEVENT", "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" }))
        .await;
    assert_eq!(
        (status, &problem["errors"][0]["field"]),
        (StatusCode::BAD_REQUEST, &json!("online_url")),
        "{problem}"
    );
    let trimmed = create_meeting(&app, &admin, c, json!({ "title": "Q3", "location": "Lima\n", "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" })).await;
    assert_eq!(
        trimmed["location"], "Lima",
        "a trailing line break is trimmed, as in a title"
    );
    let (status, problem) = app
        .post(
            "/api/admin/committees",
            Some(&admin),
            json!({ "name": "A\nB", "kind": "technical" }),
        )
        .await;
    assert_eq!(
        (status, &problem["errors"][0]["field"]),
        (StatusCode::BAD_REQUEST, &json!("name"))
    );

    let meeting = create_meeting(
        &app,
        &admin,
        c,
        json!({ "title": "Q3", "description": "Line one\r\nLine two\rEND:VEVENT", "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" }),
    )
    .await;
    let id = meeting["id"].as_i64().unwrap();
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    entity::meeting::Entity::update_many()
        .col_expr(entity::meeting::Column::Title, Expr::value(forged))
        .col_expr(entity::meeting::Column::Location, Expr::value(forged))
        .filter(entity::meeting::Column::Id.eq(id as i32))
        .exec(app.db.conn())
        .await
        .unwrap();
    let text = app
        .text(&format!("/api/meetings/{id}/calendar.ics"), Some(&admin))
        .await;
    let events = ics_events(&text);
    assert_eq!(events.len(), 1, "{text}");
    assert!(!events[0]["UID"].contains("forged"), "{text}");
    assert!(events[0]["SUMMARY"].starts_with("Q3"), "{text}");
    assert!(events[0]["DESCRIPTION"].starts_with("Line one"), "{text}");
    let lines: Vec<&str> = text.split("\r\n").collect();
    for line in ["UID:forged", "END:VEVENT\rEND:VEVENT"] {
        assert!(!lines.contains(&line), "{text}");
    }
    assert!(
        !text.replace("\r\n", "").contains('\r'),
        "no bare carriage return: {text:?}"
    );
    assert_eq!(
        lines.iter().filter(|line| **line == "BEGIN:VEVENT").count(),
        1,
        "{text}"
    );
}

/// Filing the minutes of a meeting whose title is as long as a title may be still files them
/// (the document's title is cut to its bound); filings at once make one document, linked by the
/// meeting, and none left unlinked.
#[actix_web::test]
async fn minutes_filed_at_once_make_one_linked_document_whatever_the_title() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(7), 0);
    let title = "T".repeat(300);
    let meeting = create_meeting(
        &app,
        &admin,
        c,
        json!({ "title": title, "starts_at": starts, "ends_at": starts + Duration::minutes(60), "timezone": "UTC" }),
    )
    .await;
    let path = format!("/api/meetings/{}/minutes/document", meeting["id"]);
    let outcomes =
        futures_util::future::join_all((0..4).map(|_| app.call(Method::POST, &path, Some(&admin), None))).await;
    for (status, body) in &outcomes {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::CONFLICT,
            "{status} {body}"
        );
    }
    let filed: BTreeSet<i64> = outcomes
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body["id"].as_i64().unwrap())
        .collect();
    assert_eq!(filed.len(), 1, "{outcomes:?}");
    let (_, documents) = app.get(&format!("/api/committees/{c}/documents"), &admin).await;
    let ids: Vec<i64> = documents["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        filed.iter().copied().collect::<Vec<_>>(),
        "no unlinked minutes document"
    );
    let document = &outcomes
        .iter()
        .find(|(status, _)| *status == StatusCode::CREATED)
        .unwrap()
        .1;
    assert_eq!(document["title"].as_str().unwrap().chars().count(), 300);
    let (status, again) = app.call(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(
        again["id"].as_i64(),
        filed.first().copied(),
        "the meeting links the one filed"
    );
}

/// A public meeting of `committee_id` starting at `starts` for three hours, scheduled, so that
/// the public area shows it; its id.
async fn scheduled_public_meeting(app: &TestApp, token: &str, committee_id: i64, starts: chrono::DateTime<Utc>) -> i64 {
    let body = json!({ "title": "Open", "starts_at": starts, "ends_at": starts + Duration::hours(3), "timezone": "UTC", "public": true });
    let id = create_meeting(app, token, committee_id, body).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/meetings/{id}");
    succeed(app, token, Method::PATCH, path, Some(json!({ "status": "scheduled" }))).await;
    id
}

/// Sends a request that must succeed; its answer.
async fn succeed(app: &TestApp, token: &str, method: Method, path: String, body: Option<Value>) -> Value {
    let (status, answer) = app.call(method, &path, Some(token), body).await;
    assert!(status.is_success(), "{path}: {status} {answer}");
    answer
}

/// The public area shows an agenda as its chair published it: items added or renamed afterwards
/// stay inside (on the public list, on the page, and on `public`) until the agenda is published
/// again; a rescheduled meeting's published agenda moves with it.
#[actix_web::test]
async fn the_public_sees_the_agenda_as_published_not_later_edits() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, outsider) = member_of(
        &app,
        &admin,
        committee(&app, &admin, "Other").await,
        "o@port.cl",
        "member",
    )
    .await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(10), 0);
    let id = scheduled_public_meeting(&app, &admin, c, starts).await;
    let call =
        async |method: Method, path: String, body: Option<Value>| succeed(&app, &admin, method, path, body).await;
    let item = call(
        Method::POST,
        format!("/api/meetings/{id}/agenda"),
        Some(json!({ "title": "Welcome", "kind": "information", "duration_minutes": 30 })),
    )
    .await;
    call(Method::POST, format!("/api/meetings/{id}/agenda/publish"), None).await;
    let public_agenda = async || {
        let (_, listed) = app.get("/api/public/meetings", &outsider).await;
        listed["items"][0]["agenda"].clone()
    };
    let welcome_at = |at: chrono::DateTime<Utc>| json!([{ "title": "Welcome", "kind": "information", "duration_minutes": 30, "starts_at": at }]);
    assert_eq!(public_agenda().await, welcome_at(starts));

    let (mut public, _) = WsClient::authenticated(&app, &outsider).await;
    public.subscribe("public", None).await;
    call(
        Method::POST,
        format!("/api/meetings/{id}/agenda"),
        Some(json!({ "title": "Confidential: tariff dispute", "kind": "discussion", "duration_minutes": 45 })),
    )
    .await;
    call(
        Method::PATCH,
        format!("/api/agenda-items/{}", item["id"]),
        Some(json!({ "title": "Renamed before publishing" })),
    )
    .await;
    assert_eq!(
        public_agenda().await,
        welcome_at(starts),
        "unpublished edits stay inside"
    );
    let page = app.text("/meetings", None).await;
    assert!(page.contains("Welcome") && !page.contains("Confidential"), "{page}");

    // Rescheduled: the public hears of it (the first public event since the edits), and the
    // published agenda moves with the meeting.
    let later = starts + Duration::days(1);
    call(
        Method::PATCH,
        format!("/api/meetings/{id}"),
        Some(json!({ "starts_at": later, "ends_at": later + Duration::hours(3) })),
    )
    .await;
    let event = public.next_event().await;
    assert_eq!(event["data"]["agenda"], welcome_at(later), "{event}");
    assert_eq!(public_agenda().await, welcome_at(later));

    // Published again (once the mail interval has passed): the public sees the edits.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    entity::meeting::Entity::update_many()
        .col_expr(
            entity::meeting::Column::AgendaPublishedAt,
            Expr::value(Utc::now() - Duration::hours(1)),
        )
        .filter(entity::meeting::Column::Id.eq(id as i32))
        .exec(app.db.conn())
        .await
        .unwrap();
    call(Method::POST, format!("/api/meetings/{id}/agenda/publish"), None).await;
    let titles: Vec<Value> = public_agenda()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["title"].clone())
        .collect();
    assert_eq!(
        titles,
        [
            json!("Renamed before publishing"),
            json!("Confidential: tariff dispute")
        ]
    );
    let event = public.next_event().await;
    assert_eq!(event["kind"], "agenda.published", "{event}");

    // Deleting a published item takes it off the public area at once, without publishing again.
    let agenda = call(Method::GET, format!("/api/meetings/{id}/agenda"), None).await;
    let confidential = agenda["items"][1]["id"].clone();
    call(Method::DELETE, format!("/api/agenda-items/{confidential}"), None).await;
    let titles: Vec<Value> = public_agenda()
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["title"].clone())
        .collect();
    assert_eq!(titles, [json!("Renamed before publishing")]);
    let event = public.next_event().await;
    assert_eq!(
        (&event["kind"], event["data"]["agenda"].as_array().map(Vec::len)),
        (&json!("agenda_item.deleted"), Some(1))
    );

    // Back to a draft, the agenda is being redone: scheduled again, the meeting shows none.
    for status in ["draft", "scheduled"] {
        call(
            Method::PATCH,
            format!("/api/meetings/{id}"),
            Some(json!({ "status": status })),
        )
        .await;
    }
    assert_eq!(public_agenda().await, Value::Null);
}

/// Migration 000012 keeps, for a meeting published before it, what the public saw the moment
/// before: its current top-level items (ids included, so that deleting one still works).
#[actix_web::test]
async fn the_published_agenda_migration_keeps_what_the_public_saw() {
    use migration::MigratorTrait;
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let starts = chrono::SubsecRound::trunc_subsecs(Utc::now() + Duration::days(10), 0);
    let id = scheduled_public_meeting(&app, &admin, c, starts).await;
    let call =
        async |method: Method, path: String, body: Option<Value>| succeed(&app, &admin, method, path, body).await;
    let mut items = Vec::new();
    for (title, minutes) in [("Welcome", 30), ("Budget", 45)] {
        let body = json!({ "title": title, "kind": "information", "duration_minutes": minutes });
        items.push(call(Method::POST, format!("/api/meetings/{id}/agenda"), Some(body)).await["id"].clone());
    }
    let sub = json!({ "title": "Sub-item", "kind": "information", "duration_minutes": 5, "parent_id": items[0] });
    call(Method::POST, format!("/api/meetings/{id}/agenda"), Some(sub)).await;
    call(Method::POST, format!("/api/meetings/{id}/agenda/publish"), None).await;

    // As the database was before the migration: the column gone, then the migration run again.
    let since = crate::helpers::migrations_since("m20261129_000012_published_agenda");
    migration::Migrator::down(app.db.conn(), Some(since)).await.unwrap();
    migration::Migrator::up(app.db.conn(), None).await.unwrap();

    let public_agenda = async || app.get("/api/public/meetings", &admin).await.1["items"][0]["agenda"].clone();
    assert_eq!(
        public_agenda().await,
        json!([
            { "title": "Welcome", "kind": "information", "duration_minutes": 30, "starts_at": starts },
            { "title": "Budget", "kind": "information", "duration_minutes": 45, "starts_at": starts + Duration::minutes(30) },
        ])
    );
    call(Method::DELETE, format!("/api/agenda-items/{}", items[1]), None).await;
    assert_eq!(public_agenda().await.as_array().map(Vec::len), Some(1));
}

/// An agenda item links documents; everyone who reads the agenda sees the links to the documents
/// they can open, and no others: the owner's members and the secretariat all of them, an invited
/// committee those shared with it, on the agenda, on the item and in its channel's events.
#[actix_web::test]
async fn an_invited_committee_sees_only_the_linked_documents_it_can_open() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let owner = committee(&app, &admin, "Owner").await;
    let guest = committee(&app, &admin, "Guest").await;
    let (_, chair) = member_of(&app, &admin, owner, "chair@o.org", "chair").await;
    let (_, member) = member_of(&app, &admin, owner, "member@o.org", "member").await;
    let (_, invited) = member_of(&app, &admin, guest, "guest@g.org", "member").await;
    let document = |title: &'static str| {
        let (app, chair) = (&app, &chair);
        async move {
            upload_document(app, chair, owner, title, pdf(title)).await["id"]
                .as_i64()
                .unwrap()
        }
    };
    let (internal, shared) = (document("Internal budget").await, document("Draft MOU").await);
    let share = format!("/api/documents/{shared}/shares/{guest}");
    succeed(
        &app,
        &chair,
        Method::PUT,
        share.clone(),
        Some(json!({ "access": "read" })),
    )
    .await;
    let starts = Utc::now() + Duration::days(3);
    let meeting = create_meeting(
        &app,
        &chair,
        owner,
        json!({ "title": "M", "starts_at": starts, "ends_at": starts + Duration::hours(2),
                "timezone": "UTC", "invited_committee_ids": [guest] }),
    )
    .await;
    let item = succeed(
        &app,
        &chair,
        Method::POST,
        format!("/api/meetings/{}/agenda", meeting["id"]),
        Some(json!({ "title": "Budget", "kind": "decision", "duration_minutes": 30, "document_ids": [shared, internal] })),
    )
    .await;
    let links = |value: &Value| -> BTreeSet<i64> {
        value["document_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_i64().unwrap())
            .collect()
    };
    let both = BTreeSet::from([internal, shared]);
    assert_eq!(links(&item), both);

    let agenda_path = format!("/api/meetings/{}/agenda", meeting["id"]);
    let item_path = format!("/api/agenda-items/{}", item["id"]);
    for (token, expected) in [
        (&chair, &both),
        (&member, &both),
        (&admin, &both),
        (&invited, &BTreeSet::from([shared])),
    ] {
        let agenda = succeed(&app, token, Method::GET, agenda_path.clone(), None).await;
        assert_eq!(&links(&agenda["items"][0]), expected, "{agenda}");
        let one = succeed(&app, token, Method::GET, item_path.clone(), None).await;
        assert_eq!(&links(&one), expected, "{one}");
    }
    let created_in = |channel: String, token: &String| {
        let (app, token) = (&app, token.clone());
        async move {
            let (_, feed) = app.get(&format!("/api/events?channel={channel}"), &token).await;
            feed["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|event| event["kind"] == "agenda_item.created")
                .expect("the item's event")["data"]
                .clone()
        }
    };
    assert_eq!(links(&created_in(format!("committee:{owner}"), &member).await), both);
    assert_eq!(
        links(&created_in(format!("committee:{guest}"), &invited).await),
        BTreeSet::from([shared])
    );

    // The share ends: the guest's agenda links nothing more.
    succeed(&app, &chair, Method::DELETE, share, None).await;
    let agenda = succeed(&app, &invited, Method::GET, agenda_path, None).await;
    assert_eq!(links(&agenda["items"][0]), BTreeSet::new());
}

/// A chair edits an item's links without seeing those to documents it cannot open (linked by the
/// secretariat): sending back the list it was shown, or an empty one, replaces only the links it
/// sees; the others stay, and the edit's answer and event show each reader its own view.
#[actix_web::test]
async fn editing_an_items_links_keeps_those_the_editor_cannot_see() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let owner = committee(&app, &admin, "Owner").await;
    let other = committee(&app, &admin, "Other").await;
    let (_, chair) = member_of(&app, &admin, owner, "chair@o.org", "chair").await;
    let (_, other_chair) = member_of(&app, &admin, other, "chair@x.org", "chair").await;
    let own = upload_document(&app, &chair, owner, "Owner's brief", pdf("brief")).await["id"]
        .as_i64()
        .unwrap();
    let foreign = upload_document(&app, &other_chair, other, "Other's study", pdf("study")).await["id"]
        .as_i64()
        .unwrap();
    let starts = Utc::now() + Duration::days(3);
    let body = json!({ "title": "M", "starts_at": starts, "ends_at": starts + Duration::hours(2), "timezone": "UTC" });
    let meeting = create_meeting(&app, &chair, owner, body).await;
    let agenda = format!("/api/meetings/{}/agenda", meeting["id"]);
    let body =
        json!({ "title": "Studies", "kind": "information", "duration_minutes": 20, "document_ids": [own, foreign] });
    let item = succeed(&app, &admin, Method::POST, agenda.clone(), Some(body)).await;
    assert_eq!(item["document_ids"], json!([own, foreign]));
    let path = format!("/api/agenda-items/{}", item["id"]);
    let links_for =
        async |token: &str| succeed(&app, token, Method::GET, path.clone(), None).await["document_ids"].clone();
    assert_eq!(links_for(&chair).await, json!([own]));

    // The chair sends back what it was shown: nothing is lost.
    let edited = succeed(
        &app,
        &chair,
        Method::PATCH,
        path.clone(),
        Some(json!({ "document_ids": [own] })),
    )
    .await;
    assert_eq!(edited["document_ids"], json!([own]));
    assert_eq!(links_for(&admin).await, json!([own, foreign]));
    // The chair removes what it sees: the secretariat's other link stays.
    let edited = succeed(
        &app,
        &chair,
        Method::PATCH,
        path.clone(),
        Some(json!({ "document_ids": [] })),
    )
    .await;
    assert_eq!(edited["document_ids"], json!([]));
    assert_eq!(links_for(&admin).await, json!([foreign]));
    assert_eq!(links_for(&chair).await, json!([]));
    // The owner's channel carries the owner's view of the edit.
    let (_, feed) = app.get(&format!("/api/events?channel=committee:{owner}"), &chair).await;
    let updated = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|event| event["kind"] == "agenda_item.updated")
        .expect("the edit's event")
        .clone();
    assert_eq!(updated["data"]["document_ids"], json!([]));
}

/// `?from=&to=` take RFC 3339 times, as every time in the API, and dates for a calendar view's
/// days; the range is half-open, and a time that is neither, or a range that holds nothing, is
/// refused.
#[actix_web::test]
async fn meetings_are_listed_in_a_range_of_times_or_of_days() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let day = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
    let mut ids = Vec::new();
    for (title, starts) in [
        ("Early", day + Duration::hours(9)),
        ("Late", day + Duration::hours(15)),
        ("Next day", day + Duration::days(1) + Duration::hours(9)),
    ] {
        let body =
            json!({ "title": title, "starts_at": starts, "ends_at": starts + Duration::hours(1), "timezone": "UTC" });
        ids.push(create_meeting(&app, &admin, c, body).await["id"].as_i64().unwrap());
    }
    let listed = |query: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let (status, page) = app.get(&format!("/api/committees/{c}/meetings?{query}"), admin).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            let ids: Vec<i64> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|meeting| meeting["id"].as_i64().unwrap())
                .collect();
            ids
        }
    };
    assert_eq!(listed("from=2027-03-01T12:00:00Z").await, ids[1..]);
    assert_eq!(listed("to=2027-03-01T15:00:00Z").await, ids[..1], "`to` is excluded");
    assert_eq!(
        listed("from=2027-03-01T09:00:00Z&to=2027-03-02T09:00:00Z").await,
        ids[..2],
        "`from` is included"
    );
    // An offset other than UTC's is the same instant: 10:00 at UTC-03:00 is 13:00Z.
    assert_eq!(listed("from=2027-03-01T10:00:00-03:00").await, ids[1..]);
    assert_eq!(listed("from=2027-03-01&to=2027-03-02").await, ids[..2]);
    assert_eq!(listed("from=2027-03-02").await, ids[2..]);

    for (bad, field) in [
        ("from=tomorrow", "from"),
        ("to=2027-02-30", "to"),
        ("from=2027-03-01T25:00:00Z", "from"),
        // A range that ends where it starts, or before, holds nothing: a mistake to be told of.
        ("from=2027-03-02&to=2027-03-01", "to"),
        ("from=2027-03-01T09:00:00Z&to=2027-03-01T06:00:00-03:00", "to"),
    ] {
        let (status, problem) = app.get(&format!("/api/committees/{c}/meetings?{bad}"), &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {problem}");
        assert_eq!(problem["code"], "validation_failed", "{bad}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{bad}: {problem}");
    }
}
