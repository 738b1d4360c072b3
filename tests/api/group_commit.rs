//! The group-commit lanes, driven directly: writes queued together commit together, and a
//! failing or panicking write never takes its batch-mates with it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use dcports::error::{ApiError, ApiResult};
use dcports::events::{self, Channel, EventFrame};
use dcports::group_commit::{Batch, GroupCommit, GroupCommitStats, MAX_QUEUED};
use entity::task_comment;
use futures_util::future::BoxFuture;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use reqwest::{Method, StatusCode};

use crate::committees::{committee, member_of};
use crate::helpers::{TestApp, spawn_app};

const CHANNEL: Channel = Channel::Committee(4242);
const OTHER_CHANNEL: Channel = Channel::Member(4242);

#[derive(Clone, Copy)]
enum Behaviour {
    Succeed,
    /// Records its event, then fails: the event must not survive.
    Fail,
    /// Records its event, then panics.
    Panic,
}

/// A write that records one event labelled `label` and counts how often it runs; its clones
/// share the count.
#[derive(Clone)]
struct TestWrite {
    label: &'static str,
    behaviour: Behaviour,
    channel: Channel,
    runs: Arc<AtomicUsize>,
    /// Closed until the test lets the write finish.
    gate: Option<Arc<Semaphore>>,
}

impl TestWrite {
    fn new(label: &'static str, behaviour: Behaviour) -> Self {
        Self {
            label,
            behaviour,
            channel: CHANNEL,
            runs: Arc::new(AtomicUsize::new(0)),
            gate: None,
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Submits a copy of this write to `lanes`.
    fn submit(&self, lanes: &GroupCommit) -> BoxFuture<'static, ApiResult<String>> {
        self.submit_on(lanes, KEY)
    }

    /// Submits a copy of this write to the lane of `key`.
    fn submit_on(&self, lanes: &GroupCommit, key: i32) -> BoxFuture<'static, ApiResult<String>> {
        let (lanes, write) = (lanes.clone(), self.clone());
        Box::pin(async move {
            lanes
                .write(key, write, |batch, write| Box::pin(write.perform(batch)))
                .await
        })
    }

    async fn perform(&self, batch: &Batch) -> ApiResult<String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            let _permit = gate.acquire().await.unwrap();
        }
        // A kind that committee and member channels both replay as it is (replays fail closed).
        batch.record(
            &[self.channel],
            "membership.updated",
            None,
            json!({ "label": self.label }),
        );
        match self.behaviour {
            Behaviour::Succeed => Ok(self.label.to_owned()),
            Behaviour::Fail => Err(ApiError::Conflict(format!("{} refused", self.label))),
            Behaviour::Panic => panic!("{} panicked", self.label),
        }
    }
}

/// Lanes over the test's database that publish into a list.
fn lanes(app: &TestApp) -> (GroupCommit, Arc<Mutex<Vec<EventFrame>>>) {
    let published = Arc::new(Mutex::new(Vec::new()));
    let sink = published.clone();
    let lanes = GroupCommit::start(
        app.db.clone(),
        Arc::new(move |recorded| sink.lock().unwrap().extend(recorded.0)),
        &prometheus::Registry::new(),
    )
    .unwrap();
    (lanes, published)
}

/// Starts a write that holds its lane until `release`, and waits until the lane runs it.
async fn hold_the_lane(lanes: &GroupCommit) -> (tokio::task::JoinHandle<ApiResult<String>>, Arc<Semaphore>) {
    hold_the_lane_of(lanes, KEY).await
}

async fn hold_the_lane_of(
    lanes: &GroupCommit,
    key: i32,
) -> (tokio::task::JoinHandle<ApiResult<String>>, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let mut holder = TestWrite::new("holder", Behaviour::Succeed);
    holder.gate = Some(gate.clone());
    let task = tokio::spawn(holder.submit_on(lanes, key));
    while holder.runs() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (task, gate)
}

const KEY: i32 = 4242;

/// Queues each write on the (held) lane, in order, and returns the pending answers.
fn queue(lanes: &GroupCommit, writes: &[TestWrite]) -> Vec<BoxFuture<'static, ApiResult<String>>> {
    writes.iter().map(|write| handed_to_lane(write.submit(lanes))).collect()
}

/// Polls a submitted write once, which hands it to its lane; its answer comes after the lane
/// is released.
fn handed_to_lane<T>(mut answer: BoxFuture<'static, T>) -> BoxFuture<'static, T> {
    let waker = futures_util::task::noop_waker();
    let polled = answer.as_mut().poll(&mut std::task::Context::from_waker(&waker));
    assert!(matches!(polled, Poll::Pending));
    answer
}

/// Holds the lane with one write, queues `writes` behind it, lets it go, and returns their
/// answers: the lane then finds them all queued, so they form one batch.
async fn queued_behind_a_held_write(lanes: &GroupCommit, writes: &[TestWrite]) -> Vec<ApiResult<String>> {
    let (holder, release) = hold_the_lane(lanes).await;
    let answers = queue(lanes, writes);
    release.add_permits(1);
    assert_eq!(holder.await.unwrap().unwrap(), "holder");
    futures_util::future::join_all(answers).await
}

/// The labels of the channel's events in the database, in offset order, and their offsets.
async fn stored(app: &TestApp) -> (Vec<String>, Vec<i64>) {
    stored_in(app, CHANNEL).await
}

async fn stored_in(app: &TestApp, channel: Channel) -> (Vec<String>, Vec<i64>) {
    let events::Replay::Events { events, .. } = events::replay(app.db.conn(), &channel.to_string(), 0, 10_000)
        .await
        .unwrap()
    else {
        panic!("nothing was pruned");
    };
    let labels = events
        .iter()
        .map(|event| event.data["label"].as_str().unwrap().to_owned())
        .collect();
    (labels, events.iter().map(|event| event.offset).collect())
}

fn published_labels(published: &Mutex<Vec<EventFrame>>) -> Vec<String> {
    let published = published.lock().unwrap();
    published
        .iter()
        .map(|event| event.data["label"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn writes_queued_together_commit_in_one_transaction_in_order() {
    let app = spawn_app().await;
    let (lanes, published) = lanes(&app);
    // "b" and "d" go to another channel: each channel's offsets follow on from its own.
    let writes: Vec<TestWrite> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|label| {
            let mut write = TestWrite::new(label, Behaviour::Succeed);
            if label == "b" || label == "d" {
                write.channel = OTHER_CHANNEL;
            }
            write
        })
        .collect();
    let answered: Vec<String> = queued_behind_a_held_write(&lanes, &writes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(answered, ["a", "b", "c", "d", "e"]);
    assert!(writes.iter().all(|write| write.runs() == 1));
    assert_eq!(
        lanes.stats(),
        GroupCommitStats {
            shared_transactions: 1,
            shared_writes: 5,
            retried_writes: 0
        }
    );
    let (labels, stored_offsets) = stored(&app).await;
    assert_eq!(labels, ["holder", "a", "c", "e"]);
    assert_eq!(stored_offsets, vec![1, 2, 3, 4]);
    let (other_labels, other_offsets) = stored_in(&app, OTHER_CHANNEL).await;
    assert_eq!(other_labels, ["b", "d"]);
    assert_eq!(other_offsets, vec![1, 2]);
    // Published once committed, in the order recorded, with the offsets stored.
    let published: Vec<(String, i64)> = published
        .lock()
        .unwrap()
        .iter()
        .map(|event| (event.data["label"].as_str().unwrap().to_owned(), event.offset))
        .collect();
    assert_eq!(
        published,
        [("holder", 1), ("a", 2), ("b", 1), ("c", 3), ("d", 2), ("e", 4)]
            .map(|(label, offset)| (label.to_owned(), offset))
    );
}

#[actix_web::test]
async fn a_failing_write_is_answered_alone_and_its_batch_mates_still_commit() {
    let app = spawn_app().await;
    let (lanes, published) = lanes(&app);
    let writes = [
        TestWrite::new("a", Behaviour::Succeed),
        TestWrite::new("b", Behaviour::Succeed),
        TestWrite::new("refused", Behaviour::Fail),
        TestWrite::new("d", Behaviour::Succeed),
    ];
    let answers = queued_behind_a_held_write(&lanes, &writes).await;

    assert!(matches!(&answers[2], Err(ApiError::Conflict(message)) if message == "refused refused"));
    let answered: Vec<&str> = [&answers[0], &answers[1], &answers[3]]
        .into_iter()
        .map(|answer| answer.as_deref().unwrap())
        .collect();
    assert_eq!(answered, ["a", "b", "d"]);
    // The batch ran up to the refusal, was rolled back, and each write ran again on its own.
    let runs: Vec<usize> = writes.iter().map(TestWrite::runs).collect();
    assert_eq!(runs, vec![2, 2, 2, 1]);
    assert_eq!(lanes.stats().shared_transactions, 0);
    assert_eq!(lanes.stats().retried_writes, 4);
    // Nothing of the refused write, or of the rolled-back batch, is stored or published.
    let (labels, stored_offsets) = stored(&app).await;
    assert_eq!(labels, ["holder", "a", "b", "d"]);
    assert_eq!(stored_offsets, vec![1, 2, 3, 4]);
    assert_eq!(published_labels(&published), labels);
}

#[actix_web::test]
async fn a_panicking_write_fails_alone_and_the_lane_goes_on() {
    let app = spawn_app().await;
    let (lanes, published) = lanes(&app);
    let writes = [
        TestWrite::new("a", Behaviour::Succeed),
        TestWrite::new("panics", Behaviour::Panic),
        TestWrite::new("c", Behaviour::Succeed),
    ];
    let answers = queued_behind_a_held_write(&lanes, &writes).await;

    assert!(matches!(answers[1], Err(ApiError::Internal(_))));
    assert_eq!(answers[0].as_deref().unwrap(), "a");
    assert_eq!(answers[2].as_deref().unwrap(), "c");
    let after = TestWrite::new("after", Behaviour::Succeed);
    assert_eq!(after.submit(&lanes).await.unwrap(), "after");
    let (labels, _) = stored(&app).await;
    assert_eq!(labels, ["holder", "a", "c", "after"]);
    assert_eq!(published_labels(&published), labels);
}

#[actix_web::test]
async fn a_panic_while_publishing_does_not_stop_the_lane() {
    let app = spawn_app().await;
    let publishes = Arc::new(AtomicUsize::new(0));
    let counter = publishes.clone();
    let lanes = GroupCommit::start(
        app.db.clone(),
        Arc::new(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the first publish fails");
            }
        }),
        &prometheus::Registry::new(),
    )
    .unwrap();

    // The first write is committed and answered although its publish panicked; the lane goes on.
    for label in ["first", "second", "third"] {
        let write = TestWrite::new(label, Behaviour::Succeed);
        assert_eq!(write.submit(&lanes).await.unwrap(), label);
    }
    assert_eq!(publishes.load(Ordering::SeqCst), 3);
    let (labels, _) = stored(&app).await;
    assert_eq!(labels, ["first", "second", "third"]);
}

#[actix_web::test]
async fn a_write_beyond_a_full_queue_is_refused_at_once_and_leaves_no_trace() {
    let app = spawn_app().await;
    let (lanes, _) = lanes(&app);
    let (holder, release) = hold_the_lane(&lanes).await;
    let queued: Vec<TestWrite> = (0..MAX_QUEUED)
        .map(|_| TestWrite::new("queued", Behaviour::Succeed))
        .collect();
    let answers = queue(&lanes, &queued);
    let refused = TestWrite::new("refused", Behaviour::Succeed);
    assert!(matches!(
        refused.submit(&lanes).await,
        Err(ApiError::Overloaded { retry_after_secs: 1 })
    ));
    assert_eq!(refused.runs(), 0);

    release.add_permits(1);
    assert_eq!(holder.await.unwrap().unwrap(), "holder");
    for answer in futures_util::future::join_all(answers).await {
        assert_eq!(answer.unwrap(), "queued");
    }
    // The queue drained: the lane takes writes again.
    assert_eq!(refused.submit(&lanes).await.unwrap(), "refused");
    let (labels, offsets) = stored(&app).await;
    assert_eq!(labels.len(), MAX_QUEUED + 2);
    assert_eq!(labels.last().map(String::as_str), Some("refused"));
    assert_eq!(offsets, (1..=(MAX_QUEUED as i64 + 2)).collect::<Vec<_>>());
}

/// What the lanes counted since `before`: (shared transactions, writes in them, writes run
/// again alone).
fn counted_since(app: &TestApp, before: GroupCommitStats) -> (u64, u64, u64) {
    let now = app.state.writes.stats();
    (
        now.shared_transactions - before.shared_transactions,
        now.shared_writes - before.shared_writes,
        now.retried_writes - before.retried_writes,
    )
}

/// Holds the server's own lane of committee `c`, queues one task create per `(token, body)`
/// behind it, in order, lets it go, and returns the answers: the creates run as one batch.
async fn creates_in_one_batch(app: &TestApp, c: i64, creates: Vec<(String, Value)>) -> Vec<(StatusCode, Value)> {
    posts_in_one_batch(app, c, &format!("/api/committees/{c}/tasks"), creates).await
}

/// Holds the server's own lane of `key` (a committee or task id), queues one `POST path` per
/// `(token, body)` behind it, in order, lets it go, and returns the answers.
async fn posts_in_one_batch(
    app: &TestApp,
    key: i64,
    path: &str,
    posts: Vec<(String, Value)>,
) -> Vec<(StatusCode, Value)> {
    let lanes = app.state.writes.clone();
    let (holder, release) = hold_the_lane_of(&lanes, key as i32).await;
    let url = app.url(path);
    let mut answers = Vec::new();
    for (n, (token, body)) in posts.into_iter().enumerate() {
        let (client, url) = (app.client.clone(), url.clone());
        answers.push(tokio::spawn(async move {
            let response = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }));
        // One at a time, so that they queue in this order.
        while lanes.queued() < n + 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    release.add_permits(1);
    holder.await.unwrap().unwrap();
    futures_util::future::join_all(answers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[actix_web::test]
async fn each_write_of_a_batch_is_checked_for_its_own_callers_rights() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let other = committee(&app, &admin, "Other").await;
    let (_, member) = member_of(&app, &admin, c, "member@port.pe", "member").await;
    let (_, observer) = member_of(&app, &admin, c, "observer@port.pe", "observer").await;
    let (_, outsider) = member_of(&app, &admin, other, "outsider@port.cl", "member").await;

    // The member's access is read first and shared within the batch, and must not answer for
    // anyone else. The refusals are the writes' checks': the member's writes commit together,
    // and nothing runs again alone.
    let before = app.state.writes.stats();
    let creates = [&member, &member, &observer, &outsider]
        .into_iter()
        .enumerate()
        .map(|(n, token)| (token.clone(), json!({ "title": format!("t{n}") })))
        .collect();
    let answers: Vec<StatusCode> = creates_in_one_batch(&app, c, creates)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(
        answers,
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::FORBIDDEN,
            StatusCode::NOT_FOUND
        ]
    );
    assert_eq!(counted_since(&app, before), (1, 2, 0));
}

/// A task write checks its caller's token inside the batch, once for each login session: a
/// session logged out, or a token older than a suspension, must not ride on the check of
/// another session of the same account, and must leave nothing behind.
#[actix_web::test]
async fn each_write_of_a_batch_is_checked_for_its_own_login_session() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (member_id, from_before) = member_of(&app, &admin, c, "member@port.pe", "member").await;
    for status in ["suspended", "active"] {
        let path = format!("/api/admin/members/{member_id}");
        let (code, body) = app
            .call(Method::PATCH, &path, Some(&admin), Some(json!({ "status": status })))
            .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let session = |pair: &Value| pair["access_token"].as_str().unwrap().to_owned();
    let (_, kept) = app.login("member@port.pe", crate::helpers::PASSWORD).await;
    let (_, ended) = app.login("member@port.pe", crate::helpers::PASSWORD).await;
    app.logout(&ended).await;
    let before = app.state.writes.stats();

    // Each batch holds one token that must not ride on the check of the kept session's writes
    // around it. Refused by the writes' checks, it leaves the batch, and the kept writes commit
    // together, none run again alone.
    let batches = [
        [session(&kept), session(&ended), session(&kept)],
        [session(&kept), from_before.clone(), session(&kept)],
    ];
    for (n, tokens) in batches.into_iter().enumerate() {
        let creates = tokens
            .into_iter()
            .enumerate()
            .map(|(m, token)| (token, json!({ "title": format!("t{n}{m}") })))
            .collect();
        let statuses: Vec<StatusCode> = creates_in_one_batch(&app, c, creates)
            .await
            .into_iter()
            .map(|(status, _)| status)
            .collect();
        use StatusCode as S;
        assert_eq!(statuses, [S::CREATED, S::UNAUTHORIZED, S::CREATED], "batch {n}");
    }
    assert_eq!(counted_since(&app, before), (2, 4, 0));
    let (_, list) = app.get(&format!("/api/committees/{c}/tasks"), &admin).await;
    let titles: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["t00", "t02", "t10", "t12"]);

    // The same on a task's lane: comments.
    let (_, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&admin),
            json!({ "title": "T" }),
        )
        .await;
    let task_id = task["id"].as_i64().unwrap();
    let before = app.state.writes.stats();
    let comments = [session(&kept), session(&ended), session(&kept)]
        .into_iter()
        .map(|token| (token, json!({ "body": "hello" })))
        .collect();
    let path = format!("/api/tasks/{task_id}/comments");
    let statuses: Vec<StatusCode> = posts_in_one_batch(&app, task_id, &path, comments)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::UNAUTHORIZED, StatusCode::CREATED]
    );
    assert_eq!(counted_since(&app, before), (1, 2, 0));
    let (_, stored) = app.get(&path, &admin).await;
    assert_eq!(stored["items"].as_array().unwrap().len(), 2);

    // Writes of one session share a batch and its check.
    let before = app.state.writes.stats();
    let creates = (0..3)
        .map(|n| (session(&kept), json!({ "title": format!("u{n}") })))
        .collect();
    let answers = creates_in_one_batch(&app, c, creates).await;
    assert!(
        answers.iter().all(|(status, _)| *status == StatusCode::CREATED),
        "{answers:?}"
    );
    assert_eq!(counted_since(&app, before), (1, 3, 0));
}

#[actix_web::test]
async fn tasks_created_in_one_batch_are_stored_and_announced_exactly_as_answered() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, member) = member_of(&app, &admin, c, "member@port.pe", "member").await;
    let (assignee_id, assignee) = member_of(&app, &admin, c, "assignee@port.pe", "member").await;
    let before = app.state.writes.stats();

    let creates = vec![
        (member.clone(), json!({ "title": "first" })),
        (member.clone(), json!({ "title": "second", "assignee_id": assignee_id })),
        (admin.clone(), json!({ "title": "third", "priority": "high" })),
    ];
    let answers = creates_in_one_batch(&app, c, creates).await;

    assert!(
        answers.iter().all(|(status, _)| *status == StatusCode::CREATED),
        "{answers:?}"
    );
    let created: Vec<&Value> = answers.iter().map(|(_, body)| body).collect();
    assert_eq!(counted_since(&app, before), (1, 3, 0));
    // Every answer, to the last digit of its timestamps, is what is stored and what was announced.
    let (status, list) = app.get(&format!("/api/committees/{c}/tasks"), &member).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().iter().collect::<Vec<_>>(), created);
    for task in &created {
        let (_, stored) = app.get(&format!("/api/tasks/{}", task["id"]), &member).await;
        assert_eq!(&&stored, task);
    }
    let announced = app.events_of(&format!("committee:{c}"), "task.created", &member).await;
    assert_eq!(announced.iter().collect::<Vec<_>>(), created);
    let assigned = app
        .events_of(&format!("member:{assignee_id}"), "task.assigned", &assignee)
        .await;
    assert_eq!(assigned, [created[1].clone()]);
}

/// A comment to store through [`Batch::insert`]: task, author, body.
type NewComment = (i32, i32, &'static str);

async fn insert_comment(batch: &Batch, &(task_id, author_id, body): &NewComment) -> ApiResult<task_comment::Model> {
    let row = task_comment::ActiveModel {
        task_id: Set(task_id),
        author_id: Set(author_id),
        body: Set(body.to_owned()),
        created_at: Set(dcports::db::now()),
        ..Default::default()
    };
    batch.insert(row).await
}

/// Holds the lane, queues one comment write per entry behind it, and returns their answers.
async fn comments_in_one_batch(lanes: &GroupCommit, comments: &[NewComment]) -> Vec<ApiResult<task_comment::Model>> {
    let (holder, release) = hold_the_lane(lanes).await;
    let answers: Vec<_> = comments
        .iter()
        .map(|&comment| {
            let lanes = lanes.clone();
            handed_to_lane(Box::pin(async move {
                lanes
                    .write(KEY, comment, |batch, comment| Box::pin(insert_comment(batch, comment)))
                    .await
            }))
        })
        .collect();
    release.add_permits(1);
    holder.await.unwrap().unwrap();
    futures_util::future::join_all(answers).await
}

/// A member of a new committee and a task of theirs: (task id, member id).
async fn a_task(app: &TestApp) -> (i32, i32) {
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(app, &admin, "C").await;
    let (member_id, member) = member_of(app, &admin, c, "member@port.pe", "member").await;
    let (status, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&member),
            json!({ "title": "t" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    (task["id"].as_i64().unwrap() as i32, member_id as i32)
}

/// The task's comments in the database.
async fn stored_comments(app: &TestApp, task_id: i32) -> Vec<task_comment::Model> {
    task_comment::Entity::find()
        .filter(task_comment::Column::TaskId.eq(task_id))
        .order_by_asc(task_comment::Column::Id)
        .all(app.db.conn())
        .await
        .unwrap()
}

#[actix_web::test]
async fn rows_inserted_by_a_batch_are_stored_exactly_as_answered() {
    let app = spawn_app().await;
    let (task_id, author_id) = a_task(&app).await;
    let (lanes, _) = lanes(&app);
    let answers = comments_in_one_batch(
        &lanes,
        &[
            (task_id, author_id, "a"),
            (task_id, author_id, "b"),
            (task_id, author_id, "c"),
        ],
    )
    .await;

    let answered: Vec<task_comment::Model> = answers.into_iter().map(Result::unwrap).collect();
    let bodies: Vec<&str> = answered.iter().map(|comment| comment.body.as_str()).collect();
    assert_eq!(bodies, ["a", "b", "c"]);
    // Each write got its own id, in the order the writes ran, and the row stored under it is
    // the one answered, to the last digit of its timestamp.
    assert!(answered.windows(2).all(|pair| pair[0].id < pair[1].id), "{answered:?}");
    assert_eq!(stored_comments(&app, task_id).await, answered);
    assert_eq!(lanes.stats().shared_transactions, 1);
    assert_eq!(lanes.stats().retried_writes, 0);
    // Later rows take later ids.
    let after = lanes
        .write(KEY, (task_id, author_id, "after"), |batch, comment| {
            Box::pin(insert_comment(batch, comment))
        })
        .await
        .unwrap();
    assert!(after.id > answered[2].id);
}

#[actix_web::test]
async fn a_row_that_cannot_be_stored_fails_its_write_alone() {
    let app = spawn_app().await;
    let (task_id, author_id) = a_task(&app).await;
    let (lanes, _) = lanes(&app);
    // No such task: the foreign key refuses the row (on PostgreSQL when the batch's rows are
    // written together, just before the commit; on SQLite at once).
    let answers = comments_in_one_batch(
        &lanes,
        &[
            (task_id, author_id, "a"),
            (i32::MAX, author_id, "orphan"),
            (task_id, author_id, "c"),
        ],
    )
    .await;

    // What it refers to is not there: a conflict to reload over, as when it was removed meanwhile.
    assert!(matches!(answers[1], Err(ApiError::Conflict(_))), "{:?}", answers[1]);
    let answered: Vec<task_comment::Model> = [&answers[0], &answers[2]]
        .into_iter()
        .map(|answer| answer.as_ref().unwrap().clone())
        .collect();
    assert_eq!(stored_comments(&app, task_id).await, answered);
    assert!(stored_comments(&app, i32::MAX).await.is_empty());
    assert_eq!(lanes.stats().shared_transactions, 0);
    assert_eq!(lanes.stats().retried_writes, 3);
}

/// A commit whose answer is lost on its way back (the connection cut once PostgreSQL has the
/// `COMMIT`) happened all the same: the write is answered as done, and its event goes out live.
/// Told of a failure, the caller would write again, and the clients would not hear of the
/// stored write until the next one.
#[actix_web::test]
async fn a_commit_whose_answer_is_lost_is_found_to_have_happened() {
    let cutter = CommitCutter::start().await;
    let app = crate::helpers::spawn_app_with(|settings| cutter.route(settings)).await;
    if app.state.db.backend() != sea_orm::DatabaseBackend::Postgres {
        // SQLite is a file of this process: a commit cannot lose its answer on the way.
        return;
    }
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (mut socket, _) = crate::ws::WsClient::authenticated(&app, &admin).await;
    socket.subscribe(&format!("committee:{c}"), None).await;

    cutter.arm();
    let (status, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&admin),
            json!({ "title": "Cut" }),
        )
        .await;
    assert_eq!(cutter.cuts(), 1, "the commit's answer was cut");
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let event = socket.next_event().await;
    assert_eq!(event["kind"], "task.created", "{event}");
    assert_eq!(event["data"]["id"], task["id"], "{event}");
    let (_, tasks) = app.get(&format!("/api/committees/{c}/tasks"), &admin).await;
    assert_eq!(tasks["items"].as_array().unwrap().len(), 1, "{tasks}");
}

/// What tells a commit whose answer was lost from one that rolled back: its first event stored
/// as it was appended. The same offset holding another event (a later write's, after a
/// rollback) does not.
#[actix_web::test]
async fn a_lost_commit_is_taken_as_done_only_if_its_first_event_is_stored_as_appended() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (status, task) = app
        .post(
            &format!("/api/committees/{c}/tasks"),
            Some(&admin),
            json!({ "title": "A" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let (_, feed) = app.get(&format!("/api/events?channel=committee:{c}"), &admin).await;
    let stored: EventFrame = serde_json::from_value(feed["items"].as_array().unwrap().last().unwrap().clone()).unwrap();
    let committed = |frame: EventFrame| {
        let conn = app.db.conn().clone();
        async move {
            events::were_committed(&conn, &events::Recorded(vec![frame]))
                .await
                .unwrap()
        }
    };
    assert!(committed(stored.clone()).await, "as appended: committed");

    let mut later = stored.clone();
    later.at += chrono::Duration::microseconds(1);
    assert!(!committed(later).await, "another event at that offset");
    let mut other_kind = stored.clone();
    other_kind.kind = "task.deleted".to_owned();
    assert!(!committed(other_kind).await, "another event at that offset");
    let mut next = stored.clone();
    next.offset += 1;
    assert!(!committed(next).await, "no event at that offset");
    let nothing = events::were_committed(app.db.conn(), &events::Recorded::default()).await;
    assert!(!nothing.unwrap(), "no event to tell by");
}

/// A byte proxy to PostgreSQL that, once armed, passes the next `COMMIT` on and cuts that
/// connection before the answer comes back: a commit that happens, its answer lost.
struct CommitCutter {
    listening: std::net::SocketAddr,
    upstream: Arc<Mutex<Option<String>>>,
    armed: Arc<std::sync::atomic::AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl CommitCutter {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cutter = Self {
            listening: listener.local_addr().unwrap(),
            upstream: Arc::default(),
            armed: Arc::default(),
            cuts: Arc::default(),
        };
        let (upstream, armed, cuts) = (cutter.upstream.clone(), cutter.armed.clone(), cutter.cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.lock().unwrap().clone().expect("routed before use");
                tokio::spawn(pass(client, upstream, armed.clone(), cuts.clone()));
            }
        });
        cutter
    }

    /// Sends the server's PostgreSQL connections through the proxy, unencrypted so that it
    /// reads the commands. (SQLite settings are left as they are.)
    fn route(&self, settings: &mut dcports::settings::Settings) {
        use secrecy::ExposeSecret;
        let Ok(mut url) = reqwest::Url::parse(settings.database.url.expose_secret()) else {
            return;
        };
        if url.scheme() != "postgres" {
            return;
        }
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        *self.upstream.lock().unwrap() = Some(upstream);
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.listening.port())).unwrap();
        url.query_pairs_mut().append_pair("sslmode", "disable");
        settings.database.url = url.to_string().into();
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

/// Passes bytes both ways, until armed and a `COMMIT` goes by: then the answers stop, the
/// `COMMIT` goes on to PostgreSQL, and once it has had time to commit, both sockets close.
async fn pass(
    client: tokio::net::TcpStream,
    upstream: String,
    armed: Arc<std::sync::atomic::AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let answers = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(read @ 1..) = client_read.read(&mut buffer).await {
        let commands = &buffer[..read];
        let cut = commands.windows(6).any(|window| window == b"COMMIT") && armed.swap(false, Ordering::SeqCst);
        if cut {
            answers.abort();
        }
        if server_write.write_all(commands).await.is_err() {
            break;
        }
        if cut {
            cuts.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            break;
        }
    }
    answers.abort();
}
