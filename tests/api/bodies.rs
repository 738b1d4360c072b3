//! Request bodies that stop arriving, or declare more than they may hold: answered, not held.
//! Spoken over raw TCP, since an HTTP client always finishes the body it declares.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::committees::committee;
use crate::helpers::{TestApp, spawn_app_with};
use crate::ws::WsClient;

/// Longer than any answer here may take: a test that waits this long has found a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// An answer read off a raw connection.
struct Answer {
    status: u16,
    body: Value,
    /// The server closed the connection after answering.
    closed: bool,
}

/// Sends `head` (a request line and headers, without the blank line that ends them), then each
/// of `chunks` with `gap` before it, and reads the answer.
async fn exchange(app: &TestApp, head: &str, chunks: &[&[u8]], gap: Duration) -> Answer {
    let address = app.address.trim_start_matches("http://");
    let mut connection = TcpStream::connect(address).await.expect("connects");
    connection
        .write_all(format!("{head}\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    for chunk in chunks {
        tokio::time::sleep(gap).await;
        connection.write_all(chunk).await.unwrap();
    }
    let answer = tokio::time::timeout(ANSWER_WITHIN, read_answer(&mut connection))
        .await
        .expect("the server answers instead of waiting for the rest of the body");
    let mut rest = [0u8; 64];
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(2), connection.read(&mut rest)).await,
        Ok(Ok(0) | Err(_))
    );
    Answer { closed, ..answer }
}

/// The status and JSON body of one HTTP/1.1 answer (with a `Content-Length`).
async fn read_answer(connection: &mut TcpStream) -> Answer {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let status = head[9..12].parse().expect("a status code");
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            while received.len() < end + 4 + length {
                let read = connection.read(&mut buffer).await.unwrap();
                assert!(read > 0, "closed inside the answer's body");
                received.extend_from_slice(&buffer[..read]);
            }
            let body = serde_json::from_slice(&received[end + 4..end + 4 + length]).unwrap_or(Value::Null);
            return Answer {
                status,
                body,
                closed: false,
            };
        }
        let read = connection.read(&mut buffer).await.unwrap();
        assert!(read > 0, "closed before answering");
        received.extend_from_slice(&buffer[..read]);
    }
}

fn assert_timed_out(answer: &Answer) {
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert_eq!(answer.body["code"], "request_timeout", "{}", answer.body);
    assert!(answer.closed, "the connection of an unfinished body is closed");
}

/// The head of a document upload whose form's parts are separated by `--cut`.
fn upload_head(committee: i64, token: &str, length: u64) -> String {
    format!(
        "POST /api/committees/{committee}/documents HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=cut\r\nContent-Length: {length}"
    )
}

async fn app_with_a_one_second_pause() -> TestApp {
    spawn_app_with(|settings| settings.server.body_idle_timeout_secs = 1).await
}

#[actix_web::test]
async fn a_json_body_that_stops_arriving_is_answered_408_and_its_connection_closed() {
    let app = app_with_a_one_second_pause().await;
    let head = "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 1000";
    let answer = exchange(&app, head, &[br#"{"email":"#], Duration::ZERO).await;
    assert_timed_out(&answer);
}

#[actix_web::test]
async fn a_body_sent_slowly_but_without_long_pauses_is_read_whole() {
    let app = app_with_a_one_second_pause().await;
    let body = br#"{"email":"nobody@example.org","password":"not the password at all"}"#;
    let head = format!(
        "POST /api/auth/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}",
        body.len()
    );
    // Four pauses of 0.6 s: 2.4 s in all, more than the limit, but no single pause reaches it.
    let chunks: Vec<&[u8]> = body.chunks(body.len().div_ceil(4)).collect();
    let answer = exchange(&app, &head, &chunks, Duration::from_millis(600)).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.body["code"], "invalid_credentials");
}

#[actix_web::test]
async fn an_upload_that_stops_arriving_is_answered_408_and_leaves_nothing() {
    let app = app_with_a_one_second_pause().await;
    let admin = app.secretariat("admin@sela.org").await;
    let committee = committee(&app, &admin, "A").await;
    let head = upload_head(committee, &admin, 100_000);
    let started = b"--cut\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nEstudio\r\n\
        --cut\r\nContent-Disposition: form-data; name=\"file\"; filename=\"estudio.txt\"\r\n\r\n\
        the first line of the file, and then nothing more";
    let answer = exchange(&app, &head, &[started], Duration::ZERO).await;
    assert_timed_out(&answer);
    assert_eq!(app.stored_files(""), Vec::<std::path::PathBuf>::new());
    let (_, documents) = app.get(&format!("/api/committees/{committee}/documents"), &admin).await;
    assert_eq!(documents["items"], json!([]));
}

#[actix_web::test]
async fn a_csv_import_that_stops_arriving_is_answered_408() {
    let app = app_with_a_one_second_pause().await;
    let admin = app.secretariat("admin@sela.org").await;
    let head = format!(
        "POST /api/admin/directory/import HTTP/1.1\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: text/csv\r\nContent-Length: 1000"
    );
    let answer = exchange(&app, &head, &[b"name,kind,country_code\r\n"], Duration::ZERO).await;
    assert_timed_out(&answer);
}

#[actix_web::test]
async fn an_upload_declaring_more_than_the_limit_is_refused_before_it_is_sent() {
    // The default pause (30 s) is longer than a test waits for its answer: only a refusal on
    // the declared length answers in time.
    let app = spawn_app_with(|_| {}).await;
    let admin = app.secretariat("admin@sela.org").await;
    let committee = committee(&app, &admin, "A").await;
    let declared = app.settings.documents.max_upload_bytes * 2;
    let head = upload_head(committee, &admin, declared);
    let answer = exchange(&app, &head, &[], Duration::ZERO).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(answer.body["code"], "payload_too_large");
}

#[actix_web::test]
async fn a_websocket_may_stay_silent_longer_than_a_body_may_pause() {
    let app = app_with_a_one_second_pause().await;
    let admin = app.secretariat("admin@sela.org").await;
    let mut socket = WsClient::connect(&app).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    socket.send(json!({ "type": "auth", "token": admin })).await;
    let ready = socket.next_of_type("ready").await;
    assert!(ready["member_id"].is_i64(), "{ready}");
}
