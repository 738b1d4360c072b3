use std::time::Duration;

use dcports::events::{self, Channel};
use dcports::realtime::{BrokerStats, Stats};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::committees::{committee, member_of};
use crate::helpers::{End, TestApp, one_pool_for_requests, spawn_app, spawn_app_with, tcp_sockets};
use crate::ws::{WsClient, close_code};

async fn rename(app: &TestApp, admin: &str, committee_id: i64, description: &str) {
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/admin/committees/{committee_id}"),
            Some(admin),
            Some(json!({ "description": description })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn broker_stats(app: &TestApp) -> BrokerStats {
    app.state.broker.send(Stats).await.unwrap()
}

/// Polls the broker until `check` holds (sessions leave asynchronously).
async fn wait_for_broker(app: &TestApp, check: impl Fn(BrokerStats) -> bool) -> BrokerStats {
    for _ in 0..400 {
        let stats = broker_stats(app).await;
        if check(stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("broker never reached the expected state: {:?}", broker_stats(app).await);
}

/// A secretariat token, a committee, and one member's socket subscribed to the committee's
/// channel, with the channel's head at that moment.
async fn one_subscribed_member(app: &TestApp) -> (String, i64, WsClient, i64) {
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(app, &admin, "Committee A").await;
    let (_, token) = member_of(app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(app, &token).await;
    let (_, head) = client.subscribe(&format!("committee:{a}"), None).await;
    (admin, a, client, head)
}

#[actix_web::test]
async fn a_change_reaches_every_member_of_its_committee_in_order_and_no_one_else() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let b = committee(&app, &admin, "Committee B").await;
    let (a1_id, a1) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (_, a2) = member_of(&app, &admin, a, "a2@port.pe", "observer").await;
    let (_, b1) = member_of(&app, &admin, b, "b1@port.cl", "member").await;

    let (mut ws_a1, ready) = WsClient::authenticated(&app, &a1).await;
    assert_eq!(ready["member_id"], a1_id);
    assert_eq!(
        ready["channels"],
        json!([format!("committee:{a}"), format!("member:{a1_id}")])
    );
    let (mut ws_a2, _) = WsClient::authenticated(&app, &a2).await;
    let (mut ws_b1, _) = WsClient::authenticated(&app, &b1).await;
    let (_, head_a) = ws_a1.subscribe(&format!("committee:{a}"), None).await;
    ws_a2.subscribe(&format!("committee:{a}"), None).await;
    ws_b1.subscribe(&format!("committee:{b}"), None).await;

    rename(&app, &admin, a, "first").await;
    rename(&app, &admin, a, "second").await;
    for client in [&mut ws_a1, &mut ws_a2] {
        let first = client.next_event().await;
        let second = client.next_event().await;
        assert_eq!(first["kind"], "committee.updated");
        assert_eq!(first["channel"], format!("committee:{a}"));
        assert_eq!(first["data"]["description"], "first");
        assert_eq!(
            (first["offset"].as_i64().unwrap(), second["offset"].as_i64().unwrap()),
            (head_a + 1, head_a + 2)
        );
        assert_eq!(second["data"]["description"], "second");
        assert!(first["actor_id"].is_i64() && first["at"].is_string());
    }
    // B's member gets B's change and nothing of A's before it.
    rename(&app, &admin, b, "for b").await;
    let event = ws_b1.next_event().await;
    assert_eq!(event["channel"], format!("committee:{b}"));
    assert_eq!(event["data"]["description"], "for b");
}

#[actix_web::test]
async fn a_client_that_resumes_gets_exactly_the_events_it_missed_in_order() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let channel = format!("committee:{a}");

    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    let (_, last_seen) = client.subscribe(&channel, None).await;
    drop(client);

    // 1,000 changes while the client is away, from four concurrent writers.
    let writers = (0..4).map(|writer| {
        let (app, admin) = (&app, admin.clone());
        async move {
            for n in 0..250 {
                rename(app, &admin, a, &format!("w{writer}-{n}")).await;
            }
        }
    });
    futures_util::future::join_all(writers).await;

    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    let (replayed, offset) = client.subscribe(&channel, Some(last_seen)).await;
    let offsets: Vec<i64> = replayed.iter().map(|event| event["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, ((last_seen + 1)..=(last_seen + 1000)).collect::<Vec<_>>());
    assert_eq!(offset, last_seen + 1000);
    // Every writer's changes arrive in the order that writer made them.
    for writer in 0..4 {
        let ns: Vec<usize> = replayed
            .iter()
            .filter_map(|e| {
                e["data"]["description"]
                    .as_str()?
                    .strip_prefix(&format!("w{writer}-"))?
                    .parse()
                    .ok()
            })
            .collect();
        assert_eq!(ns, (0..250).collect::<Vec<_>>());
    }
    // And then it is live, with no gap and no duplicate.
    rename(&app, &admin, a, "live").await;
    let live = client.next_event().await;
    assert_eq!(live["offset"], offset + 1);
    assert_eq!(live["data"]["description"], "live");
}

#[actix_web::test]
async fn events_written_during_the_replay_are_delivered_once_after_it() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let channel = format!("committee:{a}");
    for n in 0..200 {
        rename(&app, &admin, a, &format!("before-{n}")).await;
    }
    let before = events::head(app.db.conn(), &channel).await.unwrap();
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    client
        .send(json!({ "type": "subscribe", "channel": channel, "after": 0 }))
        .await;
    // Writes race the replay (whether they overlap it depends on timing: the test holds either
    // way, and catches a duplicate or a gap when they do).
    for n in 0..50 {
        rename(&app, &admin, a, &format!("during-{n}")).await;
    }
    let mut offsets = Vec::new();
    while offsets.len() < (before + 50) as usize {
        let frame = client.next().await;
        if frame["type"] == "event" {
            offsets.push(frame["offset"].as_i64().unwrap());
        }
    }
    assert_eq!(offsets, (1..=before + 50).collect::<Vec<_>>());
    // Nothing more was queued behind them: the next event is the next write.
    rename(&app, &admin, a, "sentinel").await;
    let next = client.next_event().await;
    assert_eq!(
        (next["offset"].as_i64(), next["data"]["description"].as_str()),
        (Some(before + 51), Some("sentinel"))
    );
}

#[actix_web::test]
async fn a_rolled_back_change_emits_nothing_and_takes_no_offset() {
    let app = spawn_app().await;
    let (admin, a, mut client, head) = one_subscribed_member(&app).await;

    {
        let txn = app.state.db.begin_write().await.unwrap();
        let recorded = events::record(
            &*txn,
            &[Channel::Committee(a as i32)],
            "committee.updated",
            None,
            json!({ "ghost": true }),
        )
        .await
        .unwrap();
        assert_eq!(recorded.0[0].offset, head + 1);
        // Dropped without commit: rolled back, never published.
    }
    rename(&app, &admin, a, "real").await;
    let event = client.next_event().await;
    assert_eq!(event["offset"], head + 1, "the rolled-back event left no gap");
    assert_eq!(event["data"]["description"], "real");
    assert_eq!(
        events::head(app.db.conn(), &format!("committee:{a}")).await.unwrap(),
        head + 1
    );
}

#[actix_web::test]
async fn subscribing_to_a_channel_one_may_not_see_is_forbidden_and_delivers_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let b = committee(&app, &admin, "Committee B").await;
    let (_, a1) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    // Another member who exists, in the same committee: their own channel is still theirs.
    let (a2_id, _) = member_of(&app, &admin, a, "a2@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &a1).await;
    for channel in [
        format!("committee:{b}"),
        format!("member:{a2_id}"),
        "committee:999".to_owned(),
    ] {
        client.send(json!({ "type": "subscribe", "channel": channel })).await;
        let error = client.next_of_type("error").await;
        assert_eq!(error["code"], "forbidden");
        assert_eq!(error["channel"], channel);
    }
    client.send(json!({ "type": "subscribe", "channel": "tasks:1" })).await;
    assert_eq!(client.next_of_type("error").await["code"], "bad_channel");
    rename(&app, &admin, b, "secret").await;
    client.subscribe(&format!("committee:{a}"), None).await;
    rename(&app, &admin, a, "visible").await;
    let event = client.next_event().await;
    assert_eq!(event["data"]["description"], "visible", "nothing of B arrived first");
}

/// The committee's last event comes before the revocation: the worker's relay passes on wakes
/// and notices in the order the Broker sent them.
#[actix_web::test]
async fn removal_from_a_committee_stops_delivery_on_an_open_socket() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (id, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    client.subscribe(&format!("committee:{a}"), None).await;
    client.subscribe(&format!("member:{id}"), None).await;

    crate::committees::remove(&app, &admin, a, id).await;
    // In whatever order they come: the removal event on both channels, then the unsubscribe.
    let mut saw_unsubscribed = false;
    let mut removal_events = 0;
    while !saw_unsubscribed || removal_events < 2 {
        let frame = client.next().await;
        match frame["type"].as_str().unwrap() {
            "event" => {
                assert_eq!(frame["kind"], "membership.removed");
                removal_events += 1;
            }
            "unsubscribed" => {
                assert_eq!(frame["channel"], format!("committee:{a}"));
                assert_eq!(frame["reason"], "access_revoked");
                saw_unsubscribed = true;
            }
            other => panic!("unexpected {other}: {frame}"),
        }
    }
    rename(&app, &admin, a, "after removal").await;
    // A personal event is the sentinel: nothing of committee A may come before it.
    let other = committee(&app, &admin, "Committee C").await;
    crate::committees::add(&app, &admin, other, id, "member").await;
    let event = client.next_event().await;
    assert_eq!(event["channel"], format!("member:{id}"));
    assert_eq!(event["kind"], "membership.added");
}

/// The removal itself ends the subscription, in offset order: an event committed after it
/// that reaches the socket first (from a write lane, or another node, before the removal's own
/// event) waits behind the missing removal and is never delivered.
#[actix_web::test]
async fn nothing_committed_after_a_removal_reaches_the_removed_member_whatever_the_order() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (id, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    let (_, head) = client.subscribe(&format!("committee:{a}"), None).await;

    // The removal (as the membership endpoint records it) and a change after it, committed in
    // that order and published in the other.
    let txn = app.state.db.begin_write().await.unwrap();
    let channel = [Channel::Committee(a as i32)];
    let removal = json!({ "committee_id": a, "member_id": id, "role": "member" });
    let mut frames = events::record(&*txn, &channel, "membership.removed", None, removal)
        .await
        .unwrap()
        .0;
    let after = json!({ "description": "after the removal" });
    frames.extend(
        events::record(&*txn, &channel, "committee.updated", None, after)
            .await
            .unwrap()
            .0,
    );
    txn.commit().await.unwrap();
    let later = frames.pop().unwrap();
    app.state
        .broker
        .send(dcports::realtime::Publish(vec![later]))
        .await
        .unwrap();
    app.state.broker.send(dcports::realtime::Publish(frames)).await.unwrap();

    let removed = client.next().await;
    assert_eq!(
        (&removed["kind"], &removed["offset"]),
        (&json!("membership.removed"), &json!(head + 1))
    );
    let revoked = client.next().await;
    assert_eq!(
        (&revoked["type"], &revoked["reason"]),
        (&json!("unsubscribed"), &json!("access_revoked")),
        "{revoked}"
    );
    // The Broker no longer routes to it either: a personal event is the next frame.
    let other = committee(&app, &admin, "Committee C").await;
    crate::committees::add(&app, &admin, other, id, "member").await;
    client.subscribe(&format!("member:{id}"), None).await;
    rename(&app, &admin, a, "later still").await;
    crate::committees::add(&app, &admin, other, id, "chair").await;
    let event = client.next_event().await;
    assert_eq!(
        (&event["channel"], &event["kind"]),
        (&json!(format!("member:{id}")), &json!("membership.updated"))
    );
}

/// The secretariat reads every committee's channel, member of the committee or not: its removal
/// from one ends none of its subscriptions.
#[actix_web::test]
async fn the_secretariat_removed_from_a_committee_keeps_reading_its_channel() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, me) = app.get("/api/me", &admin).await;
    let admin_id = me["id"].as_i64().unwrap();
    crate::committees::add(&app, &admin, a, admin_id, "chair").await;
    let (mut client, _) = WsClient::authenticated(&app, &admin).await;
    client.subscribe(&format!("committee:{a}"), None).await;

    crate::committees::remove(&app, &admin, a, admin_id).await;
    rename(&app, &admin, a, "still read").await;
    let removed = client.next_event().await;
    assert_eq!(removed["kind"], "membership.removed");
    let next = client.next().await;
    assert_eq!(
        (&next["type"], &next["data"]["description"]),
        (&json!("event"), &json!("still read")),
        "{next}"
    );
}

/// A replay that holds a member's removal and, later, the member's return does not end the
/// subscription: the member reads the channel now.
#[actix_web::test]
async fn a_replay_through_a_removal_and_a_return_keeps_the_subscription() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (id, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (_, page) = app.get(&format!("/api/events?channel=committee:{a}"), &token).await;
    let start = page["head"].as_i64().unwrap();
    crate::committees::remove(&app, &admin, a, id).await;
    crate::committees::add(&app, &admin, a, id, "member").await;
    rename(&app, &admin, a, "back").await;

    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    let (replayed, _) = client.subscribe(&format!("committee:{a}"), Some(start)).await;
    let kinds: Vec<&str> = replayed.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["membership.removed", "membership.added", "committee.updated"]);
    rename(&app, &admin, a, "live").await;
    assert_eq!(client.next_event().await["data"]["description"], "live");
}

#[actix_web::test]
async fn suspending_an_account_closes_its_sockets() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (id, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    client.subscribe(&format!("committee:{a}"), None).await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/admin/members/{id}"),
            Some(&admin),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(close_code(&client.ended().await), Some(1008));
    wait_for_broker(&app, |stats| stats.sessions == 0).await;
    // And the token can no longer open one; the refused socket leaves nothing in the Broker,
    // which learns of a socket as its auth frame arrives, before the account is read.
    let mut again = WsClient::connect(&app).await;
    again.send(json!({ "type": "auth", "token": token })).await;
    assert_eq!(close_code(&again.ended().await), Some(1008));
    wait_for_broker(&app, |stats| stats.sessions == 0).await;
}

/// Logging out ends that login session everywhere it is used: its access token and the sockets
/// it authenticated, but not the member's other sessions.
#[actix_web::test]
async fn logging_out_closes_the_sockets_of_that_session_only() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, first_access) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (status, second) = app.login("a1@port.pe", crate::helpers::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let second_access = second["access_token"].as_str().unwrap();
    let channel = format!("committee:{a}");
    let (mut stays, _) = WsClient::authenticated(&app, &first_access).await;
    let (_, head) = stays.subscribe(&channel, None).await;
    let (mut leaves, _) = WsClient::authenticated(&app, second_access).await;
    leaves.subscribe(&channel, None).await;

    app.logout(&second).await;
    assert_eq!(close_code(&leaves.ended().await), Some(1008));
    assert_eq!(app.get("/api/me", second_access).await.0, StatusCode::UNAUTHORIZED);
    // Nor can the ended session's token open a new socket.
    let mut again = WsClient::connect(&app).await;
    again.send(json!({ "type": "auth", "token": second_access })).await;
    assert_eq!(close_code(&again.ended().await), Some(1008));

    // The first session goes on: its token works and its socket still receives.
    assert_eq!(app.get("/api/me", &first_access).await.0, StatusCode::OK);
    rename(&app, &admin, a, "after the logout").await;
    let event = stays.next_event().await;
    assert_eq!(event["offset"], head + 1);
    assert_eq!(event["data"]["description"], "after the logout");
}

/// A socket belongs to the session of the token it last authenticated with: the end of the one
/// it left does not close it, the end of the one it moved to does, a reused refresh token
/// (theft) included.
#[actix_web::test]
async fn a_socket_follows_the_session_it_last_authenticated_with() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (_, left) = app.login("a1@port.pe", crate::helpers::PASSWORD).await;
    let (_, moved_to) = app.login("a1@port.pe", crate::helpers::PASSWORD).await;
    let (mut client, _) = WsClient::authenticated(&app, left["access_token"].as_str().unwrap()).await;
    client
        .send(json!({ "type": "auth", "token": moved_to["access_token"] }))
        .await;
    assert_eq!(client.next_of_type("ready").await["type"], "ready");
    let (_, head) = client.subscribe(&format!("committee:{a}"), None).await;

    app.logout(&left).await;
    rename(&app, &admin, a, "after the first logout").await;
    let event = client.next_event().await;
    assert_eq!(event["offset"], head + 1);

    // The session moved to is refreshed, then its spent token comes back: the family ends.
    let spent = json!({ "refresh_token": moved_to["refresh_token"] });
    let (status, _) = app.post("/api/auth/refresh", None, spent.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post("/api/auth/refresh", None, spent).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(close_code(&client.ended().await), Some(1008));
}

/// A subscribe that finds the account suspended (the Broker's notice not yet there) closes the
/// socket as the suspension would, rather than answering an error and staying open.
#[actix_web::test]
async fn a_subscribe_that_finds_the_account_suspended_closes_the_socket() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (id, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    // Suspended in the database only: nothing tells the Broker.
    entity::member::Entity::update_many()
        .col_expr(entity::member::Column::Status, Expr::value("suspended"))
        .filter(entity::member::Column::Id.eq(id as i32))
        .exec(app.db.conn())
        .await
        .unwrap();
    client
        .send(json!({ "type": "subscribe", "channel": format!("committee:{a}") }))
        .await;
    let (frames, code) = client.frames_until_close().await;
    assert_eq!(code, Some(1008), "{frames:?}");
    assert!(frames.iter().all(|frame| frame["type"] == "presence"), "{frames:?}");
}

/// A subscribe is routed before its access is checked; one that is then refused must neither
/// have seen who is online in the channel nor have been shown there.
#[actix_web::test]
async fn a_refused_subscribe_neither_sees_who_is_online_nor_is_seen() {
    use sea_orm::TransactionTrait;
    let app = spawn_app_with(one_pool_for_requests).await;
    let admin = app.secretariat("admin@sela.org").await;
    let (a, b) = (committee(&app, &admin, "A").await, committee(&app, &admin, "B").await);
    let (intruder_id, intruder_token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (insider_id, insider_token) = member_of(&app, &admin, b, "b1@port.pe", "member").await;
    let channel = format!("committee:{b}");
    let (mut insider, _) = WsClient::authenticated(&app, &insider_token).await;
    insider.subscribe(&channel, None).await;
    let presence = insider.next_any().await;
    assert_eq!(
        (&presence["type"], &presence["online"]),
        (&json!("presence"), &json!([insider_id]))
    );
    let (mut intruder, _) = WsClient::authenticated(&app, &intruder_token).await;

    // Every pooled connection held: the access check waits for one past a presence flush.
    let mut held = Vec::new();
    for _ in 0..app.state.db.pool_size() {
        held.push(app.state.db.conn().begin().await.unwrap());
    }
    intruder.send(json!({ "type": "subscribe", "channel": channel })).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(held);
    // Presence frames included: the intruder must see none before its refusal.
    let refused = intruder.next_any().await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{refused}"
    );

    // The insider's next event comes after any presence the intruder could have caused.
    rename(&app, &admin, b, "sentinel").await;
    loop {
        let frame = insider.next_any().await;
        assert_ne!(frame["type"], "presence", "{frame} (intruder {intruder_id})");
        if frame["type"] == "event" {
            break;
        }
    }
}

#[actix_web::test]
async fn a_socket_that_never_authenticates_is_closed_with_1008() {
    let app = spawn_app_with(|settings| settings.realtime.auth_timeout_secs = 1).await;
    let mut client = WsClient::connect(&app).await;
    assert_eq!(close_code(&client.ended().await), Some(1008));
    let mut client = WsClient::connect(&app).await;
    client.send(json!({ "type": "subscribe", "channel": "public" })).await;
    assert_eq!(
        close_code(&client.ended().await),
        Some(1008),
        "the first frame must be auth"
    );
    let mut client = WsClient::connect(&app).await;
    client.send(json!({ "type": "auth", "token": "not-a-token" })).await;
    assert_eq!(close_code(&client.ended().await), Some(1008));
}

#[actix_web::test]
async fn a_silent_client_is_dropped_and_leaves_no_trace_in_the_broker() {
    let app = spawn_app_with(|settings| {
        settings.realtime.heartbeat_secs = 1;
        settings.realtime.client_timeout_secs = 2;
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    client.subscribe(&format!("committee:{a}"), None).await;
    let stats = broker_stats(&app).await;
    assert_eq!((stats.sessions, stats.subscriptions), (1, 1));
    // Not reading means not answering pings: the server gives up on us.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let stats = wait_for_broker(&app, |stats| stats.sessions == 0).await;
    assert_eq!(
        stats,
        BrokerStats {
            sessions: 0,
            channels: 0,
            subscriptions: 0
        }
    );
    drop(client);
}

#[actix_web::test]
async fn garbage_huge_and_flooding_clients_are_answered_and_others_stay_healthy() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut healthy, _) = WsClient::authenticated(&app, &token).await;
    healthy.subscribe(&format!("committee:{a}"), None).await;

    // Garbage: an error frame each, then a close when it goes on.
    let (mut garbage, _) = WsClient::authenticated(&app, &token).await;
    garbage.send_raw(Message::text("this is not json")).await;
    assert_eq!(garbage.next_of_type("error").await["code"], "bad_frame");
    garbage.send(json!({ "type": "dance" })).await;
    assert_eq!(garbage.next_of_type("error").await["code"], "bad_frame");
    garbage.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(garbage.next_of_type("error").await["code"], "bad_frame");
    for _ in 0..20 {
        garbage.send_raw(Message::text("{")).await;
    }
    let (_, code) = garbage.frames_until_close().await;
    assert_eq!(code, Some(1008));

    // A 10 MiB frame: answered with an error, and the socket goes on; only repeated ones close it.
    let (mut huge, _) = WsClient::authenticated(&app, &token).await;
    assert!(huge.send_raw(Message::text("x".repeat(10 * 1024 * 1024))).await);
    assert_eq!(huge.next_of_type("error").await["code"], "payload_too_large");
    huge.subscribe(&format!("committee:{a}"), None).await;
    rename(&app, &admin, a, "after the huge frame").await;
    assert_eq!(huge.next_event().await["data"]["description"], "after the huge frame");
    for _ in 0..20 {
        if !huge.send_raw(Message::text("x".repeat(65 * 1024))).await {
            break;
        }
    }
    let (frames, code) = huge.frames_until_close().await;
    assert!(frames.iter().any(|f| f["code"] == "payload_too_large"), "{frames:?}");
    assert_eq!(code, Some(1009));

    // 10,000 frames in a burst: rate limited, then closed.
    let (mut flood, _) = WsClient::authenticated(&app, &token).await;
    for _ in 0..10_000 {
        if !flood
            .send_raw(Message::text(r#"{"type":"unsubscribe","channel":"public"}"#))
            .await
        {
            break;
        }
    }
    let (frames, code) = flood.frames_until_close().await;
    assert!(
        frames.iter().any(|f| f["code"] == "rate_limited"),
        "rate_limited frame expected"
    );
    assert_eq!(code, Some(1008));

    // The well-behaved client never noticed.
    rename(&app, &admin, a, "still here").await;
    assert_eq!(
        healthy.next_event().await["data"]["description"],
        "after the huge frame"
    );
    assert_eq!(healthy.next_event().await["data"]["description"], "still here");
    assert_eq!(
        app.client.get(app.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    wait_for_broker(&app, |stats| stats.sessions == 1).await;
}

#[actix_web::test]
async fn a_frame_that_declares_a_huge_length_is_refused_without_being_buffered() {
    let app = spawn_app().await;
    // A ping (control frames carry at most 125 bytes) declaring 2^40 bytes, masked, then 1 MiB
    // of it. Read whole before being judged, it would hold the socket until the auth timeout.
    let mut header = vec![0x89, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 40).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let mut client = WsClient::connect(&app).await;
    assert!(client.send_bytes(&header).await);
    client.send_bytes(&vec![0; 1024 * 1024]).await;
    let started = std::time::Instant::now();
    let (_, code) = client.frames_until_close().await;
    assert_eq!(code, Some(1002), "a protocol error, at once");
    assert!(started.elapsed() < Duration::from_secs(5), "not the auth timeout");

    // A text frame declaring as much is skipped as it streams in: answered, and the socket lives.
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(3u64 * 1024 * 1024).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    assert!(client.send_bytes(&header).await);
    assert_eq!(client.next_of_type("error").await["code"], "payload_too_large");
    assert!(client.send_bytes(&vec![0; 3 * 1024 * 1024]).await);
    client.subscribe(&format!("committee:{a}"), None).await;
}

/// A text frame of the protocol, split into fragments as RFC 6455 allows.
fn fragments(text: &str, pieces: usize) -> Vec<Message> {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let bytes = text.as_bytes();
    let size = bytes.len().div_ceil(pieces);
    let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
    chunks
        .iter()
        .enumerate()
        .map(|(n, chunk)| {
            let opcode = if n == 0 { Data::Text } else { Data::Continue };
            Message::Frame(Frame::message(
                chunk.to_vec(),
                OpCode::Data(opcode),
                n + 1 == chunks.len(),
            ))
        })
        .collect()
}

#[actix_web::test]
async fn fragmented_messages_are_assembled_within_the_size_limit() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (member_id, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;

    // Auth and subscribe, each sent in three fragments, work as single frames do.
    let mut client = WsClient::connect(&app).await;
    for fragment in fragments(&json!({ "type": "auth", "token": token }).to_string(), 3) {
        assert!(client.send_raw(fragment).await);
    }
    assert_eq!(client.next_of_type("ready").await["member_id"], member_id);
    let subscribe = json!({ "type": "subscribe", "channel": format!("committee:{a}") }).to_string();
    for fragment in fragments(&subscribe, 3) {
        assert!(client.send_raw(fragment).await);
    }
    client.next_of_type("subscribed").await;
    rename(&app, &admin, a, "assembled").await;
    assert_eq!(client.next_event().await["data"]["description"], "assembled");

    // Over the 64 KiB a message may have: 100 fragments of 1 KiB each; three fragments of which
    // the middle one alone is 10 MiB; and a first fragment of 10 MiB. Each is answered with an
    // error and the rest of its fragments are ignored; the socket goes on.
    let (mut huge, _) = WsClient::authenticated(&app, &token).await;
    let big = "x".repeat(10 * 1024 * 1024);
    let oversized_messages = [
        fragments(&"x".repeat(100 * 1024), 100),
        fragments(&format!("ab{big}cd"), 3),
        fragments(&format!("{big}cd"), 2),
    ];
    for message in oversized_messages {
        for fragment in message {
            assert!(huge.send_raw(fragment).await);
        }
        assert_eq!(huge.next_of_type("error").await["code"], "payload_too_large");
    }
    for fragment in fragments(&subscribe, 3) {
        assert!(huge.send_raw(fragment).await);
    }
    huge.next_of_type("subscribed").await;
    rename(&app, &admin, a, "still assembling").await;
    assert_eq!(huge.next_event().await["data"]["description"], "still assembling");

    // A continuation with no message to continue is a protocol error.
    let (mut confused, _) = WsClient::authenticated(&app, &token).await;
    let stray = fragments("{}{}", 2).pop().unwrap();
    confused.send_raw(stray).await;
    let (_, code) = confused.frames_until_close().await;
    assert_eq!(code, Some(1002));
}

#[actix_web::test]
async fn presence_lists_the_members_online_in_a_channel() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (id1, t1) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (id2, t2) = member_of(&app, &admin, a, "a2@port.pe", "member").await;
    let channel = format!("committee:{a}");
    let (mut first, _) = WsClient::authenticated(&app, &t1).await;
    first.subscribe(&channel, None).await;
    let (mut second, _) = WsClient::authenticated(&app, &t2).await;
    second.subscribe(&channel, None).await;
    let mut expected = vec![id1, id2];
    expected.sort();
    loop {
        let frame = first.next_any().await;
        if frame["type"] == "presence" && frame["online"] == json!(expected) {
            assert_eq!(frame["channel"], channel);
            break;
        }
    }
    drop(second);
    loop {
        let frame = first.next_any().await;
        if frame["type"] == "presence" && frame["online"] == json!([id1]) {
            break;
        }
    }
    // A second tab of a member already online changes no one's list, and still learns it.
    let (mut tab, _) = WsClient::authenticated(&app, &t1).await;
    tab.subscribe(&channel, None).await;
    let presence = tab.next_any().await;
    assert_eq!(
        (&presence["type"], &presence["online"]),
        (&json!("presence"), &json!([id1])),
        "{presence}"
    );
}

#[actix_web::test]
async fn resuming_from_before_retention_answers_reset() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    for n in 0..3 {
        rename(&app, &admin, a, &format!("old-{n}")).await;
    }
    // Retention deletes everything up to now.
    dcports::scheduler::sweep(&app.db, -1).await.unwrap();
    rename(&app, &admin, a, "new").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    client
        .send(json!({ "type": "subscribe", "channel": format!("committee:{a}"), "after": 1 }))
        .await;
    let reset = client.next_of_type("reset").await;
    assert_eq!(reset["channel"], format!("committee:{a}"));
    let subscribed = client.next_of_type("subscribed").await;
    let head = subscribed["offset"].as_i64().unwrap();
    rename(&app, &admin, a, "live").await;
    assert_eq!(client.next_event().await["offset"], head + 1);
    let (_, page) = app
        .get(&format!("/api/events?channel=committee:{a}&after=1"), &token)
        .await;
    assert_eq!(page["reset"], true);

    // An offset the channel never reached (offsets kept across a restore) answers reset too,
    // and the subscription starts from the real head.
    let (mut ahead, _) = WsClient::authenticated(&app, &token).await;
    ahead
        .send(json!({ "type": "subscribe", "channel": format!("committee:{a}"), "after": 1_000_000 }))
        .await;
    assert_eq!(ahead.next_of_type("reset").await["channel"], format!("committee:{a}"));
    assert_eq!(ahead.next_of_type("subscribed").await["offset"], head + 1);
    rename(&app, &admin, a, "after the restore").await;
    assert_eq!(ahead.next_event().await["offset"], head + 2);
    let (_, page) = app
        .get(&format!("/api/events?channel=committee:{a}&after=1000000"), &token)
        .await;
    assert_eq!(page["reset"], true);
}

/// A replay is bounded in bytes as live frames are (`realtime.max_pending_bytes`): one larger
/// is answered `reset`, and the subscription starts from the head. One within the bound is
/// replayed whole, in order.
#[actix_web::test]
async fn a_replay_larger_than_a_sockets_bound_answers_reset() {
    let app = spawn_app_with(|settings| settings.realtime.max_pending_bytes = 16 * 1024).await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let channel = format!("committee:{a}");
    let (_, page) = app.get(&format!("/api/events?channel={channel}"), &token).await;
    let start = page["head"].as_i64().unwrap();
    // Ten events of some 2 KiB each: 20 KiB in all.
    for n in 0..10 {
        rename(&app, &admin, a, &format!("{n} {}", "x".repeat(2_000))).await;
    }
    let head = start + 10;

    let (mut whole, _) = WsClient::authenticated(&app, &token).await;
    whole
        .send(json!({ "type": "subscribe", "channel": channel, "after": start }))
        .await;
    assert_eq!(whole.next_of_type("reset").await["channel"], channel);
    assert_eq!(whole.next_of_type("subscribed").await["offset"], head);

    let (mut recent, _) = WsClient::authenticated(&app, &token).await;
    recent
        .send(json!({ "type": "subscribe", "channel": channel, "after": head - 5 }))
        .await;
    let mut offsets = Vec::new();
    loop {
        let frame = recent.next().await;
        match frame["type"].as_str() {
            Some("event") => offsets.push(frame["offset"].as_i64().unwrap()),
            Some("subscribed") => {
                assert_eq!(frame["offset"], head);
                break;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(offsets, (head - 4..=head).collect::<Vec<_>>());
}

#[actix_web::test]
async fn an_origin_that_is_not_allowed_cannot_open_a_socket() {
    let app =
        spawn_app_with(|settings| settings.server.allowed_origins = vec!["https://portal.sela.org".to_owned()]).await;
    let status = |origin: &'static str| {
        let request = app
            .client
            .get(app.url("/ws"))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("origin", origin);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status("https://evil.example").await, StatusCode::FORBIDDEN);
    assert_eq!(status("https://portal.sela.org").await, StatusCode::SWITCHING_PROTOCOLS);
}

#[actix_web::test]
async fn an_expired_token_ends_the_socket_after_the_grace_unless_the_client_reauthenticates() {
    const TTL: Duration = Duration::from_secs(2);
    const GRACE: Duration = Duration::from_secs(3);
    let app = spawn_app_with(|settings| {
        settings.auth.access_token_ttl_secs = TTL.as_secs() as i64;
        settings.realtime.token_grace_secs = GRACE.as_secs();
    })
    .await;
    let first_token = app.secretariat("admin@sela.org").await;
    let issued = std::time::Instant::now();
    let (mut lapsing, _) = WsClient::authenticated(&app, &first_token).await;
    let (mut renewing, _) = WsClient::authenticated(&app, &first_token).await;

    // Before the first token expires, one client sends a fresh token on the same socket.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = app.login("admin@sela.org", crate::helpers::PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    renewing
        .send(json!({ "type": "auth", "token": body["access_token"] }))
        .await;
    assert_eq!(renewing.next_of_type("ready").await["type"], "ready");

    // The other is closed once its token's lifetime and the grace have passed: not when the
    // token expires, and not long after the grace. (A token's `exp` counts whole seconds, so
    // it may lapse up to a second before `issued + TTL`.)
    let (_, code) = lapsing.frames_until_close().await;
    assert_eq!(code, Some(1008));
    let lived = issued.elapsed();
    assert!(
        lived >= TTL + GRACE - Duration::from_secs(1) && lived <= TTL + GRACE + Duration::from_millis(1500),
        "closed after {lived:?}; the token lapsed after {TTL:?} and the grace is {GRACE:?}"
    );

    // The renewed socket is still serving at that point...
    renewing.send(json!({ "type": "subscribe", "channel": "public" })).await;
    assert_eq!(renewing.next_of_type("subscribed").await["channel"], "public");
    // ...until its own, later token lapses in turn.
    let (_, code) = renewing.frames_until_close().await;
    assert_eq!(code, Some(1008));
}

/// A subscribe, an unsubscribe and a subscribe again sent at once (a page that mounts, unmounts
/// and mounts again) leave one live subscription; a subscribe and an unsubscribe leave none, in
/// the session and in the Broker, whichever order their work finishes in.
#[actix_web::test]
async fn subscribing_again_before_an_earlier_subscribe_has_finished_leaves_exactly_one_subscription() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, first) = member_of(&app, &admin, a, "first@port.pe", "member").await;
    let (_, second) = member_of(&app, &admin, a, "second@port.pe", "member").await;
    let channel = format!("committee:{a}");
    let subscribe = json!({ "type": "subscribe", "channel": channel });
    let unsubscribe = json!({ "type": "unsubscribe", "channel": channel });

    let (mut client, _) = WsClient::authenticated(&app, &first).await;
    client.send_together(&[&subscribe, &unsubscribe, &subscribe]).await;
    // The first subscribe's work is still reading when the other two frames are handled: the
    // answers are the unsubscribe's, then the second subscribe's.
    assert_eq!(client.next_of_type("unsubscribed").await["channel"], channel);
    assert_eq!(client.next_of_type("subscribed").await["channel"], channel);
    rename(&app, &admin, a, "after the second subscribe").await;
    let event = client.next_event().await;
    assert_eq!(event["data"]["description"], "after the second subscribe");

    let (mut leaving, _) = WsClient::authenticated(&app, &second).await;
    leaving.send_together(&[&subscribe, &unsubscribe]).await;
    assert_eq!(leaving.next_of_type("unsubscribed").await["channel"], channel);
    // Long enough for the first subscribe's work to end, whatever it routed meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = broker_stats(&app).await;
    assert_eq!((stats.sessions, stats.subscriptions), (2, 1), "{stats:?}");
    rename(&app, &admin, a, "only the first hears this").await;
    assert_eq!(
        client.next_event().await["data"]["description"],
        "only the first hears this"
    );
    leaving.send(subscribe).await;
    assert_eq!(leaving.next_of_type("subscribed").await["channel"], channel);
    let stats = broker_stats(&app).await;
    assert_eq!(stats.subscriptions, 2, "{stats:?}");
}

/// Retention removes a prefix of each channel's offsets. An event's time is taken before its
/// offset, so an offset can carry an earlier time than the one before it; deleting by time alone
/// would leave a hole that a resume skips without a reset.
#[actix_web::test]
async fn retention_removes_a_prefix_of_offsets_never_one_from_the_middle() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let channel = format!("committee:{a}");
    for n in 0..4 {
        rename(&app, &admin, a, &format!("v{n}")).await;
    }
    let head = events::head(app.db.conn(), &channel).await.unwrap();
    assert!(head >= 4);
    // The one before the newest was stamped long ago; those before it recently.
    entity::event::Entity::update_many()
        .col_expr(
            entity::event::Column::At,
            Expr::value(chrono::Utc::now() - chrono::Duration::days(40)),
        )
        .filter(entity::event::Column::Channel.eq(&channel))
        .filter(entity::event::Column::Offset.eq(head - 1))
        .exec(app.db.conn())
        .await
        .unwrap();

    events::prune(app.db.conn(), chrono::Utc::now() - chrono::Duration::days(30))
        .await
        .unwrap();

    let left: Vec<i64> = entity::event::Entity::find()
        .filter(entity::event::Column::Channel.eq(&channel))
        .order_by_asc(entity::event::Column::Offset)
        .all(app.db.conn())
        .await
        .unwrap()
        .iter()
        .map(|event| event.offset)
        .collect();
    assert_eq!(left, [head]);
    let (_, page) = app
        .get(&format!("/api/events?channel={channel}&after={}", head - 3), &token)
        .await;
    assert_eq!(page["reset"], true, "{page}");
}

/// Commits one `committee.updated` event per `data` into the committee's channel, without
/// publishing them: the Broker knows nothing of them until the test hands them over.
async fn committed_unpublished(
    app: &TestApp,
    committee_id: i64,
    data: impl Iterator<Item = serde_json::Value>,
) -> Vec<events::EventFrame> {
    let txn = app.state.db.begin_write().await.unwrap();
    let mut frames = Vec::new();
    for data in data {
        let channel = [Channel::Committee(committee_id as i32)];
        let recorded = events::record(&*txn, &channel, "committee.updated", None, data)
            .await
            .unwrap();
        frames.extend(recorded.0);
    }
    txn.commit().await.unwrap();
    frames
}

/// A gap that can no longer be filled (retention removed the missing event before the session
/// fetched it) answers reset and moves on: the events held back after it, and the channel's
/// next ones, are still delivered.
#[actix_web::test]
async fn a_gap_that_cannot_be_filled_answers_reset_and_the_channel_goes_on() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let app = spawn_app().await;
    let (admin, a, mut client, head) = one_subscribed_member(&app).await;
    let channel = format!("committee:{a}");

    // Two events committed but not published; then the first of them is gone, and only the
    // second reaches the Broker (as from another node).
    let mut frames = committed_unpublished(&app, a, (1..=2).map(|n| json!({ "n": n }))).await;
    entity::event::Entity::delete_many()
        .filter(entity::event::Column::Channel.eq(&channel))
        .filter(entity::event::Column::Offset.eq(head + 1))
        .exec(app.db.conn())
        .await
        .unwrap();
    let second = frames.pop().unwrap();
    assert_eq!(second.offset, head + 2);
    app.state
        .broker
        .send(dcports::realtime::Publish(vec![second]))
        .await
        .unwrap();

    assert_eq!(client.next().await["type"], "reset");
    assert_eq!(client.next_event().await["offset"], head + 2);
    rename(&app, &admin, a, "after the gap").await;
    let next = client.next_event().await;
    assert_eq!(
        (next["offset"].as_i64(), next["data"]["description"].as_str()),
        (Some(head + 3), Some("after the gap"))
    );
}

/// A gap larger than a socket's bound (a bus outage's worth of another node's events) is not
/// filled into the socket's buffer: the session answers reset, as a replay that large does, and
/// the channel goes on from the event that showed the gap.
#[actix_web::test]
async fn a_gap_larger_than_a_sockets_bound_answers_reset() {
    let app = spawn_app_with(|settings| settings.realtime.max_pending_bytes = 16 * 1024).await;
    let (admin, a, mut client, head) = one_subscribed_member(&app).await;

    // Twenty events of some 2 KiB committed but not published (heard by no node); the last
    // reaches the Broker, as from another node once the bus is back.
    let data = (0..20).map(|n| json!({ "n": n, "padding": "x".repeat(2_000) }));
    let mut frames = committed_unpublished(&app, a, data).await;
    let last = frames.pop().unwrap();
    assert_eq!(last.offset, head + 20);
    app.state
        .broker
        .send(dcports::realtime::Publish(vec![last]))
        .await
        .unwrap();

    assert_eq!(client.next().await["type"], "reset");
    assert_eq!(client.next_event().await["offset"], head + 20);
    rename(&app, &admin, a, "after the gap").await;
    assert_eq!(client.next_event().await["offset"], head + 21);
}

/// Events held back behind a gap that cannot be read count against the same bound as the
/// outbox: past it the session closes with 1013 (reconnect and resume) instead of growing.
#[actix_web::test]
async fn events_held_back_behind_an_unreadable_gap_are_bounded() {
    use sea_orm::ConnectionTrait;
    let app = spawn_app_with(|settings| settings.realtime.max_pending_bytes = 2048).await;
    let (_, a, mut client, head) = one_subscribed_member(&app).await;

    // Committed but not published, so the first is missing when the others arrive.
    let data = (0..20).map(|n| json!({ "n": n, "padding": "x".repeat(100) }));
    let frames = committed_unpublished(&app, a, data).await;
    // And the missing one cannot be read.
    app.db
        .conn()
        .execute_unprepared("ALTER TABLE events RENAME TO events_out_of_reach")
        .await
        .unwrap();
    // One at a time, so that the outbox never holds more than one and is not what overflows.
    for frame in frames.into_iter().filter(|frame| frame.offset > head + 1) {
        app.state
            .broker
            .send(dcports::realtime::Publish(vec![frame]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Closed for what it held back, not because its outbox overflowed (also 1013).
    match client.ended().await {
        crate::ws::Ended::Closed(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1013);
            assert_eq!(frame.reason.as_str(), dcports::realtime::HELD_BACK_TOO_LONG);
        }
        other => panic!("expected a 1013 close, got {other:?}"),
    }
}

/// Live events that arrive while a subscription's replay waits for the database are held for
/// it, within the outbox's bound: past it the session closes with 1013 instead of growing.
#[actix_web::test]
async fn events_held_back_behind_a_replay_that_waits_are_bounded() {
    use sea_orm::TransactionTrait;
    let app = spawn_app_with(|settings| {
        settings.realtime.max_pending_bytes = 2048;
        settings.database.max_connections = 2;
        settings.database.acquire_timeout_secs = 60;
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    let data = (0..20).map(|n| json!({ "n": n, "padding": "x".repeat(100) }));
    let frames = committed_unpublished(&app, a, data).await;

    // Every pooled connection taken: the subscription's checks and replay wait for one. (On
    // PostgreSQL a background task may keep one: take what can be had within a few seconds.)
    let mut held = Vec::new();
    while let Ok(taken) = tokio::time::timeout(Duration::from_secs(3), app.state.db.conn().begin()).await {
        held.push(taken.unwrap());
    }
    assert!((1..=2).contains(&held.len()), "{} held", held.len());
    client
        .send(json!({ "type": "subscribe", "channel": format!("committee:{a}"), "after": 0 }))
        .await;
    // Routed (the first step, before any read). Then as much as the bound holds, and the rest
    // in one batch whose first event passes it: the session must stop there, for nothing may
    // follow its close frame. (Each batch fits the outbox, which the session empties between.)
    wait_for_broker(&app, |stats| stats.subscriptions == 1).await;
    let bound = app.settings.realtime.max_pending_bytes;
    let size = |frame: &events::EventFrame| serde_json::to_string(frame).unwrap().len();
    let mut frames = frames.into_iter().peekable();
    let (mut first_batch, mut held_back) = (Vec::new(), 0);
    while let Some(frame) = frames.next_if(|frame| held_back + size(frame) <= bound) {
        held_back += size(&frame);
        first_batch.push(frame);
    }
    let last_batch: Vec<_> = frames.take(3).collect();
    assert!(last_batch.iter().map(size).sum::<usize>() <= bound);
    for batch in [first_batch, last_batch] {
        app.state.broker.send(dcports::realtime::Publish(batch)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ended = client.ended().await;
    let after_close = client.after_close().await;
    drop(held);
    match ended {
        crate::ws::Ended::Closed(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1013);
            assert_eq!(frame.reason.as_str(), dcports::realtime::HELD_BACK_TOO_LONG);
        }
        other => panic!("expected a 1013 close, got {other:?}"),
    }
    assert_eq!(after_close, None, "nothing may follow a close frame");
}

/// Held-back events are measured after the ones that can go out have gone: the event that
/// closes the gap delivers them all, rather than tipping the count over the bound.
#[actix_web::test]
async fn the_event_that_closes_a_gap_delivers_what_was_held_back_even_near_the_bound() {
    let data = (0..7).map(|n| json!({ "n": n, "padding": "x".repeat(100) }));
    let app = spawn_app().await;
    let (_, a, client, head) = one_subscribed_member(&app).await;
    let frames = committed_unpublished(&app, a, data).await;
    let size = |frame: &events::EventFrame| serde_json::to_string(frame).unwrap().len();
    let held_back: usize = frames[1..].iter().map(size).sum();
    // Room for what is held back, not for that and the missing one together.
    let bound = held_back + size(&frames[0]) / 2;
    drop((app, client));

    let app = spawn_app_with(|settings| settings.realtime.max_pending_bytes = bound).await;
    let (_, a, mut client, head_here) = one_subscribed_member(&app).await;
    assert_eq!(head_here, head);
    let data = (0..7).map(|n| json!({ "n": n, "padding": "x".repeat(100) }));
    let mut frames = committed_unpublished(&app, a, data).await;
    let first = frames.remove(0);
    for frame in frames {
        app.state
            .broker
            .send(dcports::realtime::Publish(vec![frame]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.state
        .broker
        .send(dcports::realtime::Publish(vec![first]))
        .await
        .unwrap();
    for n in 0..7 {
        let event = client.next_event().await;
        assert_eq!(event["offset"], head + 1 + n, "{event}");
    }
}

/// Presence is who works in a committee now. In `public`, which every account may read, it
/// would tell anyone who is online in any committee: there is none there.
#[actix_web::test]
async fn the_public_channel_carries_no_presence() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let b = committee(&app, &admin, "Committee B").await;
    let (_, in_a) = member_of(&app, &admin, a, "a@port.pe", "member").await;
    let (_, in_b) = member_of(&app, &admin, b, "b@port.cl", "member").await;
    let (mut watcher, _) = WsClient::authenticated(&app, &in_a).await;
    watcher.subscribe("public", None).await;
    let (mut other, _) = WsClient::authenticated(&app, &in_b).await;
    other.subscribe("public", None).await;
    // Longer than the Broker's presence flush, several times.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let (status, _) = app
        .post(
            "/api/admin/directory/organizations",
            Some(&admin),
            json!({ "name": "Puerto Nuevo", "kind": "port_authority", "country_code": "PE" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for client in [&mut watcher, &mut other] {
        let frame = client.next_any().await;
        assert_eq!(
            (&frame["type"], &frame["channel"]),
            (&json!("event"), &json!("public")),
            "{frame}"
        );
    }
}

/// A replay fails closed: an event of a kind no visibility rule knows (one a later change might
/// add without writing its rule) is replayed as `{"redacted": true}`, in a committee's channel
/// and in a member's own, while the kinds it knows are replayed as they are.
#[actix_web::test]
async fn a_replay_redacts_an_event_of_a_kind_without_a_visibility_rule() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "A").await;
    let (member_id, token) = member_of(&app, &admin, a, "m@port.pe", "member").await;
    let txn = app.state.db.begin_write().await.unwrap();
    for channel in [Channel::Committee(a as i32), Channel::Member(member_id as i32)] {
        for kind in ["future.secret", "membership.updated"] {
            let data = json!({ "id": 1, "note": "only for those who may see it" });
            // Not published: only the replay is under test.
            let _unpublished = events::record(&*txn, &[channel], kind, Some(1), data).await.unwrap();
        }
    }
    txn.commit().await.unwrap();
    for channel in [format!("committee:{a}"), format!("member:{member_id}")] {
        let (status, page) = app.get(&format!("/api/events?channel={channel}&after=0"), &token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let replayed = page["items"].as_array().unwrap();
        let of_kind = |kind: &str| replayed.iter().find(|event| event["kind"] == kind).unwrap().clone();
        let unknown = of_kind("future.secret");
        assert_eq!(
            (&unknown["data"], &unknown["actor_id"]),
            (&json!({ "redacted": true }), &json!(null)),
            "{channel}"
        );
        assert_eq!(
            of_kind("membership.updated")["data"]["note"],
            "only for those who may see it",
            "{channel}"
        );
    }
}

/// A fresh token sent while the session's own subscribe holds the node's one turn for database
/// work: the re-authentication holds back the session's other work until it is done, so it must
/// not wait for that turn too (it did, and then the session never answered again, nor did any
/// other socket get a turn). The subscribe is made to hold the turn by keeping every connection
/// of the server's pool busy while it starts.
#[actix_web::test]
async fn a_fresh_token_during_a_subscribe_is_answered_when_checks_go_one_at_a_time() {
    use sea_orm::TransactionTrait;
    let app = spawn_app_with(|settings| {
        settings.realtime.concurrent_checks = 1;
        // At least two connections for requests on either database, in one pool: on
        // PostgreSQL, two for requests are too few to give workers pools of their own.
        settings.database.max_connections = 4;
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let (mut client, _) = WsClient::authenticated(&app, &token).await;
    let mut busy = Vec::new();
    for _ in 0..app.state.db.pool_size() {
        busy.push(app.state.db.conn().begin().await.unwrap());
    }
    client
        .send(json!({ "type": "subscribe", "channel": format!("committee:{a}") }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.send(json!({ "type": "auth", "token": token })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for transaction in busy {
        transaction.rollback().await.unwrap();
    }

    let mut answers = vec![
        client.next().await["type"].as_str().unwrap().to_owned(),
        client.next().await["type"].as_str().unwrap().to_owned(),
    ];
    answers.sort();
    assert_eq!(answers, ["ready", "subscribed"]);
    // And the node's turn is free for other sockets.
    let (mut other, _) = WsClient::authenticated(&app, &token).await;
    other.subscribe(&format!("committee:{a}"), None).await;
}

/// When the database cannot be asked (no connection free within `acquire_timeout_secs`), a
/// socket's `auth` closes it with 1013, try again later, not 1008: the token may be good, and a
/// client told 1008 would make its user log in again.
#[actix_web::test]
async fn a_token_that_cannot_be_checked_now_closes_with_1013_not_1008() {
    use sea_orm::TransactionTrait;
    let app = spawn_app_with(|settings| {
        one_pool_for_requests(settings);
        settings.database.acquire_timeout_secs = 1;
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let mut busy = Vec::new();
    for _ in 0..app.state.db.pool_size() {
        busy.push(app.state.db.conn().begin().await.unwrap());
    }
    let mut client = WsClient::connect(&app).await;
    client.send(json!({ "type": "auth", "token": token })).await;
    assert_eq!(close_code(&client.ended().await), Some(1013));
    for transaction in busy {
        transaction.rollback().await.unwrap();
    }

    // With connections free again, the same token is good.
    WsClient::authenticated(&app, &token).await;
}

/// Sockets' database work passes one at a time when the node allows one (`concurrent_checks`):
/// a dozen sockets authenticating and subscribing at once, with a replay, all get through, and
/// the next change reaches each. A turn never given back would leave all but one waiting.
#[actix_web::test]
async fn sockets_checked_one_at_a_time_all_get_through() {
    let app = spawn_app_with(|settings| settings.realtime.concurrent_checks = 1).await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (_, member) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    rename(&app, &admin, a, "before").await;
    let channel = format!("committee:{a}");
    let clients = futures_util::future::join_all((0..12).map(|_| async {
        let (mut client, _) = WsClient::authenticated(&app, &member).await;
        let (replayed, head) = client.subscribe(&channel, Some(0)).await;
        (client, replayed, head)
    }))
    .await;
    rename(&app, &admin, a, "after").await;
    for (mut client, replayed, head) in clients {
        assert_eq!(replayed.last().unwrap()["data"]["description"], "before");
        let event = client.next_event().await;
        assert_eq!(event["data"]["description"], "after");
        assert_eq!(event["offset"], head + 1);
    }
}

/// A worker's relay wakes its sessions a turn at a time and yields between turns. With more
/// sockets than several turns' worth, every socket still gets each event once and in order, and
/// a revocation queued behind a long run of wakes still comes after the channel's last event.
#[actix_web::test]
async fn an_event_reaches_every_socket_when_the_relays_take_several_turns() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let (id, token) = member_of(&app, &admin, a, "a1@port.pe", "member").await;
    let channel = format!("committee:{a}");
    let mut sockets = Vec::new();
    let mut head = 0;
    for _ in 0..300 {
        let (mut client, _) = WsClient::authenticated(&app, &token).await;
        head = client.subscribe(&channel, None).await.1;
        sockets.push(client);
    }
    for round in 1..=2 {
        rename(&app, &admin, a, &format!("round {round}")).await;
        for client in &mut sockets {
            let event = client.next().await;
            assert_eq!(event["type"], "event", "{event}");
            assert_eq!(event["offset"], head + round);
        }
    }
    crate::committees::remove(&app, &admin, a, id).await;
    for client in &mut sockets {
        let last = client.next().await;
        assert_eq!(last["kind"], "membership.removed", "{last}");
        assert_eq!(last["offset"], head + 3);
        let unsubscribed = client.next().await;
        assert_eq!(unsubscribed["type"], "unsubscribed", "{unsubscribed}");
        assert_eq!(unsubscribed["channel"], channel);
    }
}

/// Events are small frames written one after another. With Nagle's algorithm on, a frame waits
/// for the client's ACK of the frame before, which a client that delays its ACKs holds back for
/// 40 ms or more: the tail of the fan-out latency. So every connection the server accepts has
/// `TCP_NODELAY`; the sockets are read from this process, where the test server runs.
#[actix_web::test]
async fn every_connection_the_server_accepts_sends_without_waiting_for_acks() {
    let app = spawn_app().await;
    let (_, _, _client, _) = one_subscribed_member(&app).await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let accepted = tcp_sockets(End::Local, port);
    assert!(!accepted.is_empty(), "no accepted socket found on port {port}");
    for (fd, nodelay) in accepted {
        assert!(nodelay, "socket {fd} accepted on port {port} has Nagle's algorithm on");
    }
}

/// The HTTP feed pages as every list does (API.md: `limit` default 50, at most 200), a page
/// after the last offset received, to the end.
#[actix_web::test]
async fn the_http_feed_pages_like_every_list() {
    let app = spawn_app().await;
    let (admin, a, _client, head) = one_subscribed_member(&app).await;
    committed_unpublished(&app, a, (0..120).map(|n| json!({ "n": n }))).await;
    let page = |query: String| {
        let (app, admin) = (&app, &admin);
        async move {
            let (status, page) = app
                .get(&format!("/api/events?channel=committee:{a}&{query}"), admin)
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let offsets: Vec<i64> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| event["offset"].as_i64().unwrap())
                .collect();
            offsets
        }
    };
    let first = page(format!("after={head}")).await;
    assert_eq!(first, ((head + 1)..=(head + 50)).collect::<Vec<_>>(), "50 by default");
    let widest = page(format!("after={head}&limit=200")).await;
    assert_eq!(widest.len(), 120);
    let last = page(format!("after={}&limit=100", head + 50)).await;
    assert_eq!(last, ((head + 51)..=(head + 120)).collect::<Vec<_>>());
}
