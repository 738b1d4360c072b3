//! Several nodes: events and revocations cross over Redis; a node without Redis keeps serving;
//! a node stopped with SIGTERM loses nothing it acknowledged.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dcports::settings::Settings;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::json;

use crate::committees::{committee, member_of, one_winner, sorted};
use crate::helpers::{PASSWORD, TestApp, racing_patches, spawn_app_with};
use crate::ws::{WsClient, close_code};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A first node on Redis, on a topic of this test's own.
async fn first_node(redis: String) -> TestApp {
    let topic = format!("dcports-test-{}", uuid::Uuid::new_v4().simple());
    spawn_app_with(move |settings| {
        settings.bus.redis_url = redis;
        settings.bus.topic = topic;
    })
    .await
}

/// Another node on the same database and bus; returns its base URL.
async fn second_node(settings: &Settings) -> String {
    let app = dcports::startup::Application::build(settings.clone())
        .await
        .expect("second node builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run_until_stopped());
    address
}

/// Waits for `/readyz` to report the bus `expected`, for up to 15 s: a silent connection is
/// noticed only at a heartbeat.
async fn wait_for_bus(base: &str, expected: &str) {
    for _ in 0..600 {
        let ready: serde_json::Value = reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["bus"] == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} never reported bus {expected}");
}

async fn rename(base: &str, token: &str, committee_id: i64, description: &str) -> StatusCode {
    let request = reqwest::Client::new().patch(format!("{base}/api/admin/committees/{committee_id}"));
    status_of(request.bearer_auth(token).json(&json!({ "description": description }))).await
}

/// The answer's status; 503 when the node did not answer (stopped).
async fn status_of(request: reqwest::RequestBuilder) -> StatusCode {
    request
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// A task create: a write that goes through a group-commit lane.
async fn create_task(base: &str, token: &str, committee_id: i64, title: &str) -> StatusCode {
    let request = reqwest::Client::new().post(format!("{base}/api/committees/{committee_id}/tasks"));
    status_of(request.bearer_auth(token).json(&json!({ "title": title }))).await
}

#[actix_web::test]
async fn a_change_on_one_node_reaches_a_socket_on_another_and_a_suspension_crosses_back() {
    let node_a = first_node(redis_url()).await;
    let node_b = second_node(&node_a.settings).await;
    wait_for_bus(&node_a.address, "redis").await;
    wait_for_bus(&node_b, "redis").await;
    let admin = node_a.secretariat("admin@sela.org").await;
    let c = committee(&node_a, &admin, "Committee A").await;
    let (member_id, member) = member_of(&node_a, &admin, c, "m@port.pe", "member").await;

    // A socket on node B.
    let (mut on_b, _) = WsClient::authenticated_at(&node_b, &member).await;
    let (_, head) = on_b.subscribe(&format!("committee:{c}"), None).await;
    for n in 0..20 {
        assert_eq!(
            rename(&node_a.address, &admin, c, &format!("change {n}")).await,
            StatusCode::OK
        );
    }
    for n in 0..20 {
        let event = on_b.next_event().await;
        assert_eq!(event["offset"], head + 1 + n);
        assert_eq!(event["data"]["description"], format!("change {n}"));
    }
    // Task writes commit on a group-commit lane, which publishes to the bus as well.
    for n in 0..5 {
        let title = format!("task {n}");
        assert_eq!(
            create_task(&node_a.address, &admin, c, &title).await,
            StatusCode::CREATED
        );
    }
    for n in 0..5 {
        let event = on_b.next_event().await;
        assert_eq!(event["kind"], "task.created");
        assert_eq!(event["offset"], head + 21 + n);
        assert_eq!(event["data"]["title"], format!("task {n}"));
    }

    // A second login's socket on node B; that session logs out through node A. Its socket
    // closes; the first session's socket on node B goes on receiving.
    let (status, second) = node_a.login("m@port.pe", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (mut second_on_b, _) = WsClient::authenticated_at(&node_b, second["access_token"].as_str().unwrap()).await;
    node_a.logout(&second).await;
    assert_eq!(close_code(&second_on_b.ended().await), Some(1008));
    assert_eq!(
        rename(&node_a.address, &admin, c, "after a logout").await,
        StatusCode::OK
    );
    let event = on_b.next_event().await;
    assert_eq!(event["offset"], head + 26);
    assert_eq!(event["data"]["description"], "after a logout");

    // A socket on node A; the suspension is made through node B.
    let (mut on_a, _) = WsClient::authenticated(&node_a, &member).await;
    on_a.subscribe(&format!("committee:{c}"), None).await;
    let response = reqwest::Client::new()
        .patch(format!("{node_b}/api/admin/members/{member_id}"))
        .bearer_auth(&admin)
        .json(&json!({ "status": "suspended" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(close_code(&on_a.ended().await), Some(1008));
    assert_eq!(close_code(&on_b.ended().await), Some(1008));
}

#[actix_web::test]
async fn failed_logins_on_one_node_count_on_the_others() {
    let topic = format!("dcports-test-{}", uuid::Uuid::new_v4().simple());
    let node_a = spawn_app_with(move |settings| {
        settings.bus.redis_url = redis_url();
        settings.bus.topic = topic;
        settings.auth.max_failures_per_account = 3;
    })
    .await;
    let node_b = second_node(&node_a.settings).await;
    node_a.secretariat("admin@sela.org").await;
    let login = |base: String, password: &'static str| async move {
        reqwest::Client::new()
            .post(format!("{base}/api/auth/login"))
            .json(&json!({ "email": "admin@sela.org", "password": password }))
            .send()
            .await
            .unwrap()
            .status()
    };
    for _ in 0..3 {
        assert_eq!(
            login(node_a.address.clone(), "not the password at all").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(node_b.clone(), PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "node B knows of node A's failures"
    );
}

#[actix_web::test]
async fn without_redis_a_node_keeps_serving_and_clients_resume_without_gaps() {
    // Nothing listens on port 1: the bus stays down for the whole test.
    let node_a = first_node("redis://127.0.0.1:1".to_owned()).await;
    let node_b = second_node(&node_a.settings).await;
    wait_for_bus(&node_a.address, "redis unreachable").await;
    let metrics = reqwest::get(format!("{}/metrics", node_a.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("dcports_bus_redis_up 0"), "{metrics}");
    let admin = node_a.secretariat("admin@sela.org").await;
    let c = committee(&node_a, &admin, "Committee A").await;
    let (_, member) = member_of(&node_a, &admin, c, "m@port.pe", "member").await;

    let (mut on_b, _) = WsClient::authenticated_at(&node_b, &member).await;
    let (_, head) = on_b.subscribe(&format!("committee:{c}"), None).await;
    let (mut on_a, _) = WsClient::authenticated(&node_a, &member).await;
    on_a.subscribe(&format!("committee:{c}"), None).await;
    for n in 0..10 {
        assert_eq!(
            rename(&node_a.address, &admin, c, &format!("change {n}")).await,
            StatusCode::OK
        );
    }
    // Local delivery goes on.
    for n in 0..10 {
        assert_eq!(on_a.next_event().await["offset"], head + 1 + n);
    }
    // The client on B missed them live; it reconnects and resumes from what it saw.
    drop(on_b);
    let (mut resumed, _) = WsClient::authenticated_at(&node_b, &member).await;
    let (replayed, offset) = resumed.subscribe(&format!("committee:{c}"), Some(head)).await;
    let offsets: Vec<i64> = replayed.iter().map(|e| e["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, ((head + 1)..=(head + 10)).collect::<Vec<_>>());
    assert_eq!(offset, head + 10);
}

#[actix_web::test]
async fn sigterm_during_a_burst_of_writes_loses_nothing_that_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/node.db?mode=rwc", dir.path().display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let command = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dcports"));
        command
            .args(args)
            .env("DCPORTS_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
            .env("DCPORTS_ENV", "test")
            .env("DCPORTS__DATABASE__URL", &database)
            .env("DCPORTS__SERVER__PORT", port.to_string())
            .env("DCPORTS__MAIL__OUTBOX_DIR", dir.path().join("outbox"))
            .env("DCPORTS__DOCUMENTS__STORAGE_DIR", dir.path().join("files"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let mut create = command(&[
        "admin",
        "create",
        "--email",
        "ops@sela.org",
        "--name",
        "Ops",
        "--password-stdin",
    ])
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    create.stdin.take().unwrap().write_all(PASSWORD.as_bytes()).unwrap();
    assert!(create.wait().unwrap().success());
    let mut server = command(&["serve"]).spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let login: serde_json::Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": "ops@sela.org", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let created: serde_json::Value = client
        .post(format!("{base}/api/admin/committees"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Burst", "kind": "technical" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = created["id"].as_i64().unwrap();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();
    {
        use futures_util::{SinkExt, StreamExt};
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(
                json!({ "type": "auth", "token": token }).to_string(),
            ))
            .await
            .unwrap();
        socket.next().await.unwrap().unwrap();
    }
    // A socket that will authenticate only once the node is stopping.
    let (mut late, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .unwrap();

    // Four writers, two renaming the committee (a transaction each) and two creating tasks
    // (through a group-commit lane); SIGTERM lands in the middle of their burst.
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (base, token) = (base.clone(), token.clone());
            actix_web::rt::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..200 {
                    let description = format!("w{writer}-{n}");
                    let status = if writer < 2 {
                        rename(&base, &token, c, &description).await
                    } else {
                        create_task(&base, &token, c, &description).await
                    };
                    if status.is_success() {
                        acknowledged.push(description);
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        closed_with(&mut socket).await,
        Some(1012),
        "sockets are told to reconnect"
    );
    {
        use futures_util::SinkExt;
        late.send(tokio_tungstenite::tungstenite::Message::text(
            json!({ "type": "auth", "token": token }).to_string(),
        ))
        .await
        .unwrap();
    }
    assert_eq!(
        closed_with(&mut late).await,
        Some(1012),
        "a socket that authenticates while the node stops is told to reconnect too"
    );
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the node exits cleanly on SIGTERM: {status:?}");
    assert!(
        !acknowledged.is_empty() && acknowledged.len() < 800,
        "SIGTERM came during the burst ({} acknowledged)",
        acknowledged.len()
    );
    assert!(
        acknowledged.iter().any(|d| d.starts_with("w2-")) && acknowledged.iter().any(|d| d.starts_with("w0-")),
        "both kinds of write were acknowledged before the SIGTERM"
    );

    let db = sea_orm::Database::connect(&database).await.unwrap();
    let events = entity::event::Entity::find()
        .filter(entity::event::Column::Channel.eq(format!("committee:{c}")))
        .order_by_asc(entity::event::Column::Offset)
        .all(&db)
        .await
        .unwrap();
    let offsets: Vec<i64> = events.iter().map(|e| e.offset).collect();
    assert_eq!(
        offsets,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "no gap in the stored events"
    );
    let recorded: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| {
            let changed = if e.kind == "task.created" {
                "title"
            } else {
                "description"
            };
            e.data[changed].as_str().map(str::to_owned)
        })
        .collect();
    for description in &acknowledged {
        assert!(
            recorded.contains(description),
            "acknowledged write {description} has its event"
        );
    }
}

/// The code of the close frame a raw socket receives, reading past any other frame; `None` if
/// the connection ends without one.
async fn closed_with<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt;
    while let Some(Ok(message)) = socket.next().await {
        if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

#[actix_web::test]
async fn a_public_change_on_one_node_expires_the_cached_answer_on_another() {
    let redis = redis_url();
    let topic = format!("dcports-test-{}", uuid::Uuid::new_v4().simple());
    // Answers would otherwise stay cached for minutes: only the bus can make node A see it.
    let node_a = spawn_app_with(move |settings| {
        settings.bus.redis_url = redis;
        settings.bus.topic = topic;
        settings.public.cache_ttl_secs = 600;
    })
    .await;
    let node_b = second_node(&node_a.settings).await;
    wait_for_bus(&node_a.address, "redis").await;
    wait_for_bus(&node_b, "redis").await;
    let admin = node_a.secretariat("admin@sela.org").await;
    let directory = || async {
        reqwest::get(node_a.url("/api/public/directory"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(!directory().await.contains("Puerto Remoto"));

    let post = |path: &str, body: serde_json::Value| {
        reqwest::Client::new()
            .post(format!("{node_b}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let response = post(
        "/api/admin/directory/organizations",
        json!({ "name": "Puerto Remoto", "kind": "port_authority", "country_code": "PE" }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let organization: serde_json::Value = response.json().await.unwrap();
    let response = post(
        "/api/admin/directory/contacts",
        json!({ "organization_id": organization["id"], "name": "Ana Remota", "position": "Director", "email": "a@port.pe", "public": true }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    for _ in 0..100 {
        if directory().await.contains("Puerto Remoto") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node A kept serving its cached directory after node B changed it");
}

#[actix_web::test]
async fn of_task_updates_racing_from_one_version_on_two_nodes_exactly_one_wins() {
    let node_a = first_node(redis_url()).await;
    let node_b = second_node(&node_a.settings).await;
    let admin = node_a.secretariat("admin@sela.org").await;
    let c = committee(&node_a, &admin, "C").await;
    let (status, task) = node_a
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&admin),
            json!({ "title": "t" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");

    // Each node's lane keeps its own writes of the task in order; across the two, only the
    // row lock stops a second writer from passing the same If-Match.
    let path = format!("/api/tasks/{}", task["id"]);
    let urls = (0..8)
        .map(|n| {
            let base = if n % 2 == 0 { &node_a.address } else { &node_b };
            format!("{base}{path}")
        })
        .collect();
    let statuses = racing_patches(urls, &admin, 1, json!({ "title": "raced" })).await;

    assert_eq!(sorted(statuses), one_winner(8));
    let (_, stored) = node_a.get(&path, &admin).await;
    assert_eq!(stored["version"], 2);
}

/// A TCP link to Redis that a test can cut (every connection dropped, new ones refused), stall
/// (every connection kept open and nothing carried, as when a host vanishes without a reset)
/// and mend: one node's network trouble while the other nodes keep their own connections.
struct RedisLink {
    url: String,
    open: Arc<AtomicBool>,
    stalled: tokio::sync::watch::Sender<bool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl RedisLink {
    async fn start() -> Self {
        let redis = redis_url();
        let target = redis
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let (open, connections) = (Arc::new(AtomicBool::new(true)), Arc::new(Mutex::new(Vec::new())));
        let (stalled, stall) = tokio::sync::watch::channel(false);
        let (accepting, tracked) = (open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let (target, mut stall) = (target.clone(), stall.clone());
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            // Both ends stay open, and nothing more crosses.
                            _ = async { drop(stall.wait_for(|stalled| *stalled).await) } => {
                                std::future::pending::<()>().await
                            }
                        }
                    }
                });
                tracked.lock().unwrap().push(forward.abort_handle());
            }
        });
        Self {
            url,
            open,
            stalled,
            connections,
        }
    }

    fn stall(&self) {
        self.stalled.send_replace(true);
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.connections.lock().unwrap().drain(..).for_each(|c| c.abort());
    }

    /// New connections are carried again; stalled ones stay stalled.
    fn mend(&self) {
        self.stalled.send_replace(false);
        self.open.store(true, Ordering::SeqCst);
    }
}

async fn suspend(base: &str, admin: &str, member_id: i64) {
    let request = reqwest::Client::new().patch(format!("{base}/api/admin/members/{member_id}"));
    let status = status_of(request.bearer_auth(admin).json(&json!({ "status": "suspended" }))).await;
    assert_eq!(status, StatusCode::OK);
}

async fn remove_member(base: &str, admin: &str, committee_id: i64, member_id: i64) {
    let url = format!("{base}/api/admin/committees/{committee_id}/members/{member_id}");
    let status = status_of(reqwest::Client::new().delete(url).bearer_auth(admin)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Reads events until the one renamed to `description`, checking that the offsets follow on
/// from `head` without a gap.
async fn events_through(client: &mut WsClient, head: i64, description: &str) {
    let mut expected = head + 1;
    loop {
        let event = client.next_event().await;
        assert_eq!(event["offset"], expected, "{event}");
        expected += 1;
        if event["data"]["description"] == description {
            return;
        }
    }
}

/// Two nodes on Redis, one of them (A when `a_behind_link`, else B) through `link`.
async fn nodes_one_behind(link: &RedisLink, a_behind_link: bool) -> (TestApp, String) {
    let (a_redis, b_redis) = match a_behind_link {
        true => (link.url.clone(), redis_url()),
        false => (redis_url(), link.url.clone()),
    };
    let node_a = first_node(a_redis).await;
    let mut settings = node_a.settings.clone();
    settings.bus.redis_url = b_redis;
    let node_b = second_node(&settings).await;
    wait_for_bus(&node_a.address, "redis").await;
    wait_for_bus(&node_b, "redis").await;
    (node_a, node_b)
}

/// A member's socket at `base`, subscribed to `channel`; with the channel's head.
async fn subscribed_at(base: &str, token: &str, channel: &str) -> (WsClient, i64) {
    let (mut client, _) = WsClient::authenticated_at(base, token).await;
    let (_, head) = client.subscribe(channel, None).await;
    (client, head)
}

#[actix_web::test]
async fn a_node_that_lost_the_bus_rechecks_its_sockets_when_it_comes_back() {
    let link = RedisLink::start().await;
    let (node_a, node_b) = nodes_one_behind(&link, false).await;
    let admin = node_a.secretariat("admin@sela.org").await;
    let c = committee(&node_a, &admin, "Committee A").await;
    let channel = format!("committee:{c}");
    let (_, stays) = member_of(&node_a, &admin, c, "stays@port.pe", "member").await;
    let (removed_id, removed) = member_of(&node_a, &admin, c, "removed@port.pe", "member").await;
    let (suspended_id, suspended) = member_of(&node_a, &admin, c, "suspended@port.pe", "member").await;
    let (mut staying_on_b, head) = subscribed_at(&node_b, &stays, &channel).await;
    let (mut removed_on_b, _) = subscribed_at(&node_b, &removed, &channel).await;
    let (mut suspended_on_b, _) = subscribed_at(&node_b, &suspended, &channel).await;
    let (status, logging_out) = node_a.login("stays@port.pe", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let token = logging_out["access_token"].as_str().unwrap();
    let (mut logged_out_on_b, _) = subscribed_at(&node_b, token, &channel).await;

    // Node B is cut off from Redis while node A removes, suspends, logs a session out and
    // writes: B hears nothing.
    link.cut();
    wait_for_bus(&node_b, "redis unreachable").await;
    remove_member(&node_a.address, &admin, c, removed_id).await;
    suspend(&node_a.address, &admin, suspended_id).await;
    node_a.logout(&logging_out).await;
    assert_eq!(
        rename(&node_a.address, &admin, c, "while B was away").await,
        StatusCode::OK
    );

    // Back on the bus, B checks its sockets against the database.
    link.mend();
    events_through(&mut staying_on_b, head, "while B was away").await;
    let revoked = removed_on_b.next_of_type("unsubscribed").await;
    assert_eq!(revoked["channel"], channel);
    assert_eq!(revoked["reason"], "access_revoked");
    assert_eq!(close_code(&suspended_on_b.ended().await), Some(1008));
    assert_eq!(close_code(&logged_out_on_b.ended().await), Some(1008));
}

#[actix_web::test]
async fn a_node_that_could_not_publish_has_the_others_recheck_once_it_can() {
    let link = RedisLink::start().await;
    let (node_a, node_b) = nodes_one_behind(&link, true).await;
    let admin = node_a.secretariat("admin@sela.org").await;
    let c = committee(&node_a, &admin, "Committee A").await;
    let channel = format!("committee:{c}");
    let (_, stays) = member_of(&node_a, &admin, c, "stays@port.pe", "member").await;
    let (suspended_id, suspended) = member_of(&node_a, &admin, c, "suspended@port.pe", "member").await;
    let (mut staying_on_b, head) = subscribed_at(&node_b, &stays, &channel).await;
    let (mut suspended_on_b, _) = subscribed_at(&node_b, &suspended, &channel).await;

    // Node A cannot publish what it does; B's own subscription never drops.
    link.cut();
    wait_for_bus(&node_a.address, "redis unreachable").await;
    suspend(&node_a.address, &admin, suspended_id).await;
    assert_eq!(rename(&node_a.address, &admin, c, "unpublished").await, StatusCode::OK);

    // Once A can publish again, it has B recheck, without anything else being written.
    link.mend();
    events_through(&mut staying_on_b, head, "unpublished").await;
    assert_eq!(close_code(&suspended_on_b.ended().await), Some(1008));
}

#[actix_web::test]
async fn a_bus_connection_gone_silent_is_noticed_and_the_node_catches_up_once_redis_answers() {
    let link = RedisLink::start().await;
    let (node_a, node_b) = nodes_one_behind(&link, false).await;
    let admin = node_a.secretariat("admin@sela.org").await;
    let c = committee(&node_a, &admin, "Committee A").await;
    let channel = format!("committee:{c}");
    let (suspended_id, suspended) = member_of(&node_a, &admin, c, "suspended@port.pe", "member").await;
    let (_, stays) = member_of(&node_a, &admin, c, "stays@port.pe", "member").await;
    let (mut staying_on_b, head) = subscribed_at(&node_b, &stays, &channel).await;
    let (mut suspended_on_b, _) = subscribed_at(&node_b, &suspended, &channel).await;

    // B's connection to Redis stays open and carries nothing: no error, no close, ever.
    link.stall();
    wait_for_bus(&node_b, "redis unreachable").await;
    suspend(&node_a.address, &admin, suspended_id).await;
    assert_eq!(
        rename(&node_a.address, &admin, c, "while B heard nothing").await,
        StatusCode::OK
    );

    link.mend();
    wait_for_bus(&node_b, "redis").await;
    events_through(&mut staying_on_b, head, "while B heard nothing").await;
    assert_eq!(close_code(&suspended_on_b.ended().await), Some(1008));
}

#[actix_web::test]
async fn a_stalled_redis_leaves_login_throttling_to_the_node_instead_of_hanging_logins() {
    let link = RedisLink::start().await;
    let node = first_node(link.url.clone()).await;
    let wrong_login = || async {
        let request = reqwest::Client::new().post(node.url("/api/auth/login"));
        let body = json!({ "email": "nobody@port.pe", "password": "not the password at all" });
        status_of(request.json(&body)).await
    };
    let max_failures = node.settings.auth.max_failures_per_account;
    assert_eq!(wrong_login().await, StatusCode::UNAUTHORIZED, "counted in Redis");

    link.stall();
    // Each login still answers; the bound is only the test's, against a login that never would.
    let mut statuses = Vec::new();
    for _ in 0..=max_failures {
        let status = tokio::time::timeout(Duration::from_secs(30), wrong_login())
            .await
            .expect("a login answers while Redis is silent");
        statuses.push(status);
    }
    // The node counts on its own from the stall: its limit still holds.
    assert!(
        statuses[..max_failures as usize]
            .iter()
            .all(|status| *status == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[max_failures as usize],
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
}
