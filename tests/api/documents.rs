use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::committees::{committee, member_of};
use crate::helpers::{TestApp, migrations_since, spawn_app, spawn_app_with};
use crate::ws::WsClient;

pub fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.7\n% {text}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n").into_bytes()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Committee A with its chair, committee B with a member, and the secretariat's token.
struct TwoCommittees {
    admin: String,
    a: i64,
    b: i64,
    chair: String,
    reader: String,
}

async fn two_committees(app: &TestApp) -> TwoCommittees {
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(app, &admin, "A").await;
    let b = committee(app, &admin, "B").await;
    let (_, chair) = member_of(app, &admin, a, "chair@a.org", "chair").await;
    let (_, reader) = member_of(app, &admin, b, "reader@b.org", "member").await;
    TwoCommittees {
        admin,
        a,
        b,
        chair,
        reader,
    }
}

pub async fn upload_document(app: &TestApp, token: &str, committee_id: i64, title: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = app
        .upload(
            &format!("/api/committees/{committee_id}/documents"),
            token,
            "estudio.pdf",
            bytes,
            &[("title", title)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn download(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

#[actix_web::test]
async fn versions_are_uploaded_and_each_downloads_byte_for_byte_with_etag_304_and_range() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "Technical Committee 1").await;
    let (member_id, member) = member_of(&app, &admin, c, "m@port.pe", "member").await;

    let first = pdf("version one");
    let (status, created) = app
        .upload(
            &format!("/api/committees/{c}/documents"),
            &member,
            "Estudio de competitividad – Callao.pdf",
            first.clone(),
            &[
                ("title", "Competitiveness study"),
                ("description", "Port of Callao"),
                ("tags", "Callao, KPI,kpi"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["status"], "draft");
    assert_eq!(created["created_by"], member_id);
    assert_eq!(created["tags"], json!(["callao", "kpi"]));
    assert_eq!(created["file"]["sha256"], sha(&first));
    assert_eq!(created["file"]["content_type"], "application/pdf");
    assert_eq!(created["file"]["size_bytes"], first.len());

    let second = pdf("version two, longer than the first one");
    let (status, updated) = app
        .upload(
            &format!("/api/documents/{id}/versions"),
            &member,
            "v2.pdf",
            second.clone(),
            &[("note", "after review")],
            Some("\"1\""),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{updated}");
    assert_eq!(updated["current_version"], 2);
    assert_eq!(updated["version"], 2);

    for (version, bytes) in [(1, &first), (2, &second)] {
        let response = download(&app, &member, &format!("/api/documents/{id}/content?version={version}")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/pdf");
        assert_eq!(response.headers()["etag"], format!("\"{}\"", sha(bytes)));
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], &bytes[..]);
    }
    let current = download(&app, &member, &format!("/api/documents/{id}/content")).await;
    let disposition = current.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.contains("filename*=UTF-8''v2.pdf"), "{disposition}");
    assert_eq!(current.bytes().await.unwrap(), second);

    let original = download(&app, &member, &format!("/api/documents/{id}/content?version=1")).await;
    let disposition = original.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(
        disposition.contains("Estudio%20de%20competitividad%20%E2%80%93%20Callao.pdf"),
        "{disposition}"
    );

    let cached = app
        .client
        .get(app.url(&format!("/api/documents/{id}/content?version=1")))
        .bearer_auth(&member)
        .header("if-none-match", format!("\"{}\"", sha(&first)))
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    let partial = app
        .client
        .get(app.url(&format!("/api/documents/{id}/content?version=2")))
        .bearer_auth(&member)
        .header("range", "bytes=5-14")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        partial.headers()["content-range"],
        format!("bytes 5-14/{}", second.len()).as_str()
    );
    assert_eq!(partial.bytes().await.unwrap(), &second[5..15]);

    // Conditional requests are answered against the ETag clients see, the content's hash: a
    // download resumed with `If-Range` gets the rest while the content is the same, and the
    // whole file once it is not; `If-Match` passes with the current hash; `If-None-Match` also
    // takes the weak form.
    let current_tag = format!("\"{}\"", sha(&second));
    let get_with = |headers: Vec<(&'static str, String)>| {
        let mut request = app
            .client
            .get(app.url(&format!("/api/documents/{id}/content?version=2")))
            .bearer_auth(&member);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let resumed = get_with(vec![("range", "bytes=5-".into()), ("if-range", current_tag.clone())])
        .await
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resumed.bytes().await.unwrap(), &second[5..]);
    let stale = format!("\"{}\"", sha(&first));
    let restarted = get_with(vec![("range", "bytes=5-".into()), ("if-range", stale)])
        .await
        .unwrap();
    assert_eq!(restarted.status(), StatusCode::OK);
    assert_eq!(restarted.bytes().await.unwrap(), second);
    for if_match in [current_tag.clone(), "*".to_owned()] {
        let matched = get_with(vec![("if-match", if_match.clone())]).await.unwrap();
        assert_eq!(matched.status(), StatusCode::OK, "{if_match}");
        assert_eq!(matched.bytes().await.unwrap(), second);
    }
    let weak = get_with(vec![("if-none-match", format!("W/{current_tag}"))])
        .await
        .unwrap();
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
    // A HEAD's range is ignored, Range being a GET's (RFC 9110 §14.2): the whole file's length.
    let head = app
        .client
        .head(app.url(&format!("/api/documents/{id}/content?version=2")))
        .bearer_auth(&member)
        .header("range", "bytes=5-")
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], second.len().to_string().as_str());
    // A range that cannot be read is ignored (RFC 9110 §14.2): the whole file, not a 416.
    for unreadable in ["bytes=5-4", "bytes=x-y", "bytes=7"] {
        let ignored = get_with(vec![("range", unreadable.into())]).await.unwrap();
        assert_eq!(ignored.status(), StatusCode::OK, "{unreadable}");
        assert_eq!(ignored.bytes().await.unwrap(), second, "{unreadable}");
    }

    // A file of many read chunks comes back whole, and a range across chunk boundaries exactly.
    let mut large = pdf("large");
    large.extend((0..300_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8));
    let large_doc = upload_document(&app, &member, c, "Large", large.clone()).await;
    let large_path = format!("/api/documents/{}/content", large_doc["id"]);
    assert_eq!(download(&app, &member, &large_path).await.bytes().await.unwrap(), large);
    let across = app
        .client
        .get(app.url(&large_path))
        .bearer_auth(&member)
        .header("range", "bytes=65000-200000")
        .send()
        .await
        .unwrap();
    assert_eq!(across.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(across.bytes().await.unwrap(), &large[65_000..=200_000]);

    // A range past the end, and a stale If-Match, keep their statuses (416, 412) as problems;
    // an If-Match that cannot be read is a 400, as on a write.
    for (header, value, status, code) in [
        (
            "if-match",
            "not-a-tag".to_owned(),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "if-match",
            format!("\"{}\", 7", sha(&second)),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "range",
            "bytes=99999999-".to_owned(),
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
        ),
        (
            "if-match",
            format!("\"{}\"", sha(&first)),
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
        ),
    ] {
        let refused = app
            .client
            .get(app.url(&format!("/api/documents/{id}/content?version=2")))
            .bearer_auth(&member)
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), status);
        assert_eq!(refused.headers()["content-type"], "application/problem+json");
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            let whole = format!("bytes */{}", second.len());
            assert_eq!(refused.headers()["content-range"], whole.as_str());
        }
        let body: Value = refused.json().await.unwrap();
        assert_eq!(
            (body["code"].as_str(), body["status"].as_u64()),
            (Some(code), Some(status.as_u16().into()))
        );
    }

    let (status, _) = app
        .get(&format!("/api/documents/{id}/content?version=3"), &member)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, detail) = app.get(&format!("/api/documents/{id}"), &member).await;
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    assert_eq!(detail["versions"][1]["note"], "after review");
}

#[actix_web::test]
async fn identical_content_is_stored_once() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let bytes = pdf("same");
    upload_document(&app, &admin, c, "One", bytes.clone()).await;
    upload_document(&app, &admin, c, "Two", bytes).await;
    assert_eq!(app.stored_files("blobs").len(), 1);
    assert!(app.stored_files("staging").is_empty());
}

#[actix_web::test]
async fn of_two_concurrent_uploads_on_the_same_version_exactly_one_wins() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, alice) = member_of(&app, &admin, c, "alice@port.pe", "member").await;
    let (_, bob) = member_of(&app, &admin, c, "bob@port.pe", "member").await;
    let id = upload_document(&app, &alice, c, "Agenda", pdf("base")).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/documents/{id}/versions");
    let (a, b) = tokio::join!(
        app.upload(&path, &alice, "a.pdf", pdf("alice's edit"), &[], Some("\"1\"")),
        app.upload(&path, &bob, "b.pdf", pdf("bob's edit"), &[], Some("\"1\"")),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::PRECONDITION_FAILED],
        "{a:?} {b:?}"
    );
    let loser = if a.0 == StatusCode::PRECONDITION_FAILED {
        &a.1
    } else {
        &b.1
    };
    assert_eq!(loser["code"], "precondition_failed");
    let (_, detail) = app.get(&format!("/api/documents/{id}"), &alice).await;
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2);
    assert!(app.stored_files("staging").is_empty(), "the loser's upload was removed");
}

#[actix_web::test]
async fn oversize_disguised_and_badly_named_uploads_are_handled_and_leave_nothing_behind() {
    let app = spawn_app_with(|settings| settings.documents.max_upload_bytes = 1024 * 1024).await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let path = format!("/api/committees/{c}/documents");

    let mut big = pdf("big");
    big.resize(2 * 1024 * 1024, b'x');
    let (status, body) = app
        .upload(&path, &admin, "big.pdf", big, &[("title", "Too big")], None)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large");

    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    elf.resize(4096, 0);
    let (status, body) = app
        .upload(&path, &admin, "informe.pdf", elf, &[("title", "Report")], None)
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["code"], "unsupported_file_type");
    let mut exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    exe.resize(4096, 0);
    assert_eq!(
        app.upload(&path, &admin, "report.pdf", exe, &[("title", "Report")], None)
            .await
            .0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    let (status, body) = app.upload(&path, &admin, "x.pdf", pdf("no title"), &[], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "title");
    let too_long = "d".repeat(20_001);
    let (status, body) = app
        .upload(
            &path,
            &admin,
            "x.pdf",
            pdf("long description"),
            &[("title", "Report"), ("description", &too_long)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "description");

    // An empty file is a mistake of the client's, not a type the server refuses.
    let (status, body) = app
        .upload(&path, &admin, "notes.txt", Vec::new(), &[("title", "Notes")], None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errors"][0]["field"], "file", "{body}");
    // Each text field is bounded, and so are the fields' number and all of them together, as
    // the form is read; a body that declares more than any form within the bounds can hold is
    // refused before it is read.
    let empty: Vec<String> = (0..20).map(|n| format!("empty{n}")).collect();
    let fields: Vec<(&str, &str)> = empty.iter().map(|name| (name.as_str(), "")).collect();
    let (status, body) = app
        .upload(&path, &admin, "x.pdf", pdf("empty fields"), &fields, None)
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request")),
        "{body}"
    );
    let field = "f".repeat(60 * 1024);
    let names: Vec<String> = (0..1000).map(|n| format!("extra{n}")).collect();
    let form = |count: usize| {
        let mut fields: Vec<(&str, &str)> = vec![("title", "Many fields")];
        fields.extend(names[..count].iter().map(|name| (name.as_str(), field.as_str())));
        fields
    };
    // Five fields of 60 KiB: within the upload limit, over the fields' total (256 KiB).
    let (status, body) = app.upload(&path, &admin, "x.pdf", pdf("many"), &form(5), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_request", "{body}");
    // A thousand (60 MB): refused on its declared length.
    let (status, body) = app.upload(&path, &admin, "x.pdf", pdf("many"), &form(1000), None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "payload_too_large", "{body}");

    let (_, list) = app.get(&format!("/api/committees/{c}/documents"), &admin).await;
    assert_eq!(list["items"], json!([]), "no row was written");
    assert!(
        app.stored_files("staging").is_empty() && app.stored_files("blobs").is_empty(),
        "no file was left"
    );

    let (status, body) = app
        .upload(
            &path,
            &admin,
            "../../etc/passwd",
            b"root:x:0:0".to_vec(),
            &[("title", "Traversal")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["file"]["file_name"], "passwd");
    assert_eq!(body["file"]["content_type"], "text/plain");
    // Text goes out saying it is UTF-8, as it was sniffed to be: a reader left to guess garbles
    // every accent.
    let text = download(&app, &admin, &format!("/api/documents/{}/content", body["id"])).await;
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");

    // A body that is not a form at all is of the wrong type, and the answer says which to send.
    for content_type in [Some("application/json"), None] {
        let request = app.client.post(app.url(&path)).bearer_auth(&admin);
        let request = match content_type {
            Some(content_type) => request.header("content-type", content_type),
            None => request,
        };
        let response = request.body(json!({ "title": "x" }).to_string()).send().await.unwrap();
        let problem = crate::errors::assert_unsupported(response).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("multipart/form-data"),
            "{content_type:?}: {problem}"
        );
    }
}

#[actix_web::test]
async fn another_committee_sees_a_document_only_while_it_is_shared_and_only_as_shared() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "Committee A").await;
    let b = committee(&app, &admin, "Committee B").await;
    let (_, chair_a) = member_of(&app, &admin, a, "chair@a.pe", "chair").await;
    let (_, member_b) = member_of(&app, &admin, b, "member@b.cl", "member").await;
    let (_, observer_a) = member_of(&app, &admin, a, "observer@a.pe", "observer").await;
    let id = upload_document(&app, &chair_a, a, "Draft MOU", pdf("mou")).await["id"]
        .as_i64()
        .unwrap();

    let (mut socket_b, _) = WsClient::authenticated(&app, &member_b).await;
    socket_b.subscribe(&format!("committee:{b}"), None).await;

    let hidden = |app: &TestApp| {
        let member_b = member_b.clone();
        let app_url = app.address.clone();
        async move {
            let client = reqwest::Client::new();
            let mut statuses = Vec::new();
            for (method, path) in [
                (Method::GET, format!("/api/documents/{id}")),
                (Method::GET, format!("/api/documents/{id}/content")),
                (Method::PATCH, format!("/api/documents/{id}")),
                (Method::DELETE, format!("/api/documents/{id}")),
            ] {
                let response = client
                    .request(method, format!("{app_url}{path}"))
                    .bearer_auth(&member_b)
                    .json(&json!({ "title": "x" }))
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status());
            }
            statuses
        }
    };
    assert_eq!(hidden(&app).await, vec![StatusCode::NOT_FOUND; 4]);
    let (_, list) = app.get(&format!("/api/committees/{b}/documents"), &member_b).await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = app
        .upload(
            &format!("/api/documents/{id}/versions"),
            &member_b,
            "v.pdf",
            pdf("x"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only the owner committee's chair (or the secretariat) shares.
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/documents/{id}/shares/{b}"),
            Some(&observer_a),
            Some(json!({ "access": "read" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/documents/{id}/shares/{b}"),
            Some(&chair_a),
            Some(json!({ "access": "read" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let shared = socket_b.next_event().await;
    assert_eq!(shared["kind"], "document.shared");
    assert_eq!(shared["data"]["id"], id);

    let (_, list) = app.get(&format!("/api/committees/{b}/documents"), &member_b).await;
    assert_eq!(list["items"][0]["id"], id);
    let response = download(&app, &member_b, &format!("/api/documents/{id}/content")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app
        .upload(
            &format!("/api/documents/{id}/versions"),
            &member_b,
            "v.pdf",
            pdf("x"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a read share cannot write");
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/documents/{id}"),
            Some(&member_b),
            Some(json!({ "title": "Mine now" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/documents/{id}"),
            Some(&observer_a),
            Some(json!({ "title": "Observed" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "observers cannot write");

    // Changes reach the sharing committee live.
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/documents/{id}"),
            Some(&chair_a),
            Some(json!({ "status": "final" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let updated = socket_b.next_event().await;
    assert_eq!(
        (updated["kind"].as_str(), updated["data"]["status"].as_str()),
        (Some("document.updated"), Some("final"))
    );

    // A write share lets B's members add versions.
    app.call(
        Method::PUT,
        &format!("/api/documents/{id}/shares/{b}"),
        Some(&chair_a),
        Some(json!({ "access": "write" })),
    )
    .await;
    socket_b.next_event().await;
    let (status, _) = app
        .upload(
            &format!("/api/documents/{id}/versions"),
            &member_b,
            "b.pdf",
            pdf("by b"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(socket_b.next_event().await["kind"], "document.version_added");

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/documents/{id}/shares/{b}"),
            Some(&chair_a),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(socket_b.next_event().await["kind"], "document.unshared");
    assert_eq!(hidden(&app).await, vec![StatusCode::NOT_FOUND; 4]);

    // After unsharing, B hears nothing more of it: the next B event is B's own.
    app.call(
        Method::PATCH,
        &format!("/api/documents/{id}"),
        Some(&chair_a),
        Some(json!({ "title": "Secret again" })),
    )
    .await;
    let own = upload_document(&app, &member_b, b, "B's own", pdf("own")).await;
    let next = socket_b.next_event().await;
    assert_eq!(
        (next["kind"].as_str(), next["data"]["id"].as_i64()),
        (Some("document.created"), own["id"].as_i64())
    );
}

/// The kinds of the events on the public channel, oldest first.
async fn public_event_kinds(app: &TestApp, token: &str) -> Vec<String> {
    let (_, feed) = app.get("/api/events?channel=public", token).await;
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_document_reaches_the_public_area_only_between_approval_and_withdrawal() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let (_, member) = member_of(&app, &admin, c, "member@port.pe", "member").await;
    let bytes = pdf("public study");
    let id = upload_document(&app, &chair, c, "Port community study", bytes.clone()).await["id"]
        .as_i64()
        .unwrap();
    let public_list = || async {
        app.client
            .get(app.url("/api/public/publications"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(public_list().await["items"], json!([]));

    let request =
        json!({ "kind": "study", "summary": { "en": "A study", "es": "Un estudio" }, "country_codes": ["pe", "CL"] });
    let (status, _) = app
        .post(&format!("/api/documents/{id}/publish"), Some(&member), request.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only a chair asks to publish");
    let (status, body) = app
        .post(
            &format!("/api/documents/{id}/publish"),
            Some(&chair),
            json!({ "kind": "study", "summary": "x", "country_codes": ["US"] }),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("country_codes"))
    );
    let (status, publication) = app
        .post(&format!("/api/documents/{id}/publish"), Some(&chair), request)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{publication}");
    assert_eq!(publication["status"], "pending");
    assert_eq!(publication["country_codes"], json!(["CL", "PE"]));
    let pid = publication["id"].as_i64().unwrap();
    assert_eq!(public_list().await["items"], json!([]), "pending is not public");
    let (status, _) = app
        .client
        .get(app.url(&format!("/api/public/publications/{pid}")))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A later version does not sneak in: the requested version is the one published.
    let (status, later) = app
        .upload(
            &format!("/api/documents/{id}/versions"),
            &chair,
            "draft.pdf",
            pdf("unreviewed draft"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    let (_, detail) = app.get(&format!("/api/documents/{id}"), &chair).await;
    assert_eq!(detail["current_version"], 2, "{detail}");

    let (_, pending) = app.get("/api/admin/publications?status=pending", &admin).await;
    assert_eq!(pending["items"][0]["id"], pid);
    // A body the approval cannot read is refused, not ignored: ignored, the misspelt version
    // would publish the requested one instead.
    let (status, problem) = app
        .post(
            &format!("/api/admin/publications/{pid}/approve"),
            Some(&admin),
            json!({ "version": 1 }),
        )
        .await;
    assert_eq!(
        (status, &problem["code"]),
        (StatusCode::BAD_REQUEST, &json!("validation_failed")),
        "{problem}"
    );
    let (_, still) = app.get("/api/admin/publications?status=pending", &admin).await;
    assert_eq!(still["items"][0]["id"], pid);
    // A body of `null` is no body, as the OpenAPI document has it.
    let (status, approved) = app
        .call(
            Method::POST,
            &format!("/api/admin/publications/{pid}/approve"),
            Some(&admin),
            Some(Value::Null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    let list = public_list().await;
    assert_eq!(list["items"][0]["title"], "Port community study");
    assert_eq!(list["items"][0]["summary"]["es"], "Un estudio");
    let file = app
        .client
        .get(app.url(&format!("/api/public/publications/{pid}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), StatusCode::OK);
    assert_eq!(
        file.bytes().await.unwrap(),
        bytes,
        "the approved version, not the later draft"
    );
    // HEAD says what a GET would send, and sends none of it.
    let head = app
        .client
        .head(app.url(&format!("/api/public/publications/{pid}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], bytes.len().to_string().as_str());
    assert!(head.headers().contains_key("etag"));
    assert!(head.bytes().await.unwrap().is_empty());
    let filtered = app
        .client
        .get(app.url("/api/public/publications?country=pe&kind=study"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let none = app
        .client
        .get(app.url("/api/public/publications?country=MX"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(none["items"], json!([]));

    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/publications/{pid}/approve"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "already approved");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/publications/{pid}/withdraw"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(public_list().await["items"], json!([]));
    let gone = app
        .client
        .get(app.url(&format!("/api/public/publications/{pid}/file")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);

    let (_, audit) = app.get("/api/admin/audit?action=document.published", &admin).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        public_event_kinds(&app, &admin).await,
        ["document.published", "publication.withdrawn"]
    );
}

/// Deleting a document takes it out of the public area: its publication is withdrawn, list, page
/// and file alike, and the public channel hears of it.
#[actix_web::test]
async fn deleting_a_published_document_withdraws_its_publication() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let summary = json!({ "en": "A study", "es": "Un estudio" });
    let (id, pid) = approved_publication(&app, &admin, &chair, c, "Port study", summary).await;
    let app = &app;
    let public_status = |path: String| async move { app.client.get(app.url(&path)).send().await.unwrap().status() };
    let file = format!("/api/public/publications/{pid}/file");
    assert_eq!(public_status(file.clone()).await, StatusCode::OK);

    let (status, _) = app
        .call(Method::DELETE, &format!("/api/documents/{id}"), Some(&chair), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        public_status(format!("/api/public/publications/{pid}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(public_status(file).await, StatusCode::NOT_FOUND);
    let list = app
        .client
        .get(app.url("/api/public/publications"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.json::<Value>().await.unwrap()["items"], json!([]));
    let page = app.client.get(app.url("/publications")).send().await.unwrap();
    assert!(!page.text().await.unwrap().contains("Port study"));
    assert_eq!(
        public_event_kinds(app, &admin).await,
        ["document.published", "publication.withdrawn"]
    );
}

/// A committee a document is shared with sees its own share, not which other committees the
/// owner shared it with; the owner committee sees them all.
#[actix_web::test]
async fn a_share_recipient_sees_only_its_own_share() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let (a, b, c) = (
        committee(&app, &admin, "A").await,
        committee(&app, &admin, "B").await,
        committee(&app, &admin, "C").await,
    );
    let (_, chair_a) = member_of(&app, &admin, a, "chair@a.pe", "chair").await;
    let (_, member_a) = member_of(&app, &admin, a, "member@a.pe", "member").await;
    let (_, member_b) = member_of(&app, &admin, b, "member@b.pe", "member").await;
    let id = upload_document(&app, &chair_a, a, "Shared twice", pdf("twice")).await["id"]
        .as_i64()
        .unwrap();
    for (committee_id, access) in [(b, "read"), (c, "write")] {
        let path = format!("/api/documents/{id}/shares/{committee_id}");
        let (status, body) = app
            .call(Method::PUT, &path, Some(&chair_a), Some(json!({ "access": access })))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let shares_seen_by = |token: String| {
        let app = &app;
        async move {
            let (status, detail) = app.get(&format!("/api/documents/{id}"), &token).await;
            assert_eq!(status, StatusCode::OK, "{detail}");
            detail["shares"]
                .as_array()
                .unwrap()
                .iter()
                .map(|share| share["committee_id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(shares_seen_by(member_a).await, [b, c]);
    assert_eq!(shares_seen_by(admin.clone()).await, [b, c]);
    assert_eq!(shares_seen_by(member_b.clone()).await, [b]);

    // Nor does B hear of C's share ending: its next event is its own committee's.
    let (mut socket_b, _) = WsClient::authenticated(&app, &member_b).await;
    socket_b.subscribe(&format!("committee:{b}"), None).await;
    let path = format!("/api/documents/{id}/shares/{c}");
    let (status, _) = app.call(Method::DELETE, &path, Some(&chair_a), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/admin/committees/{b}"),
            Some(&admin),
            Some(json!({ "description": "sentinel" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(socket_b.next_event().await["kind"], "committee.updated");
}

#[actix_web::test]
async fn a_rejected_request_never_appears_and_carries_its_reason() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let id = upload_document(&app, &admin, c, "Internal memo", pdf("memo")).await["id"]
        .as_i64()
        .unwrap();
    let (_, publication) = app
        .post(
            &format!("/api/documents/{id}/publish"),
            Some(&admin),
            json!({ "kind": "report", "summary": "memo" }),
        )
        .await;
    let pid = publication["id"].as_i64().unwrap();
    let (status, _) = app
        .post(
            &format!("/api/admin/publications/{pid}/reject"),
            Some(&admin),
            json!({ "reason": "  " }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, rejected) = app
        .post(
            &format!("/api/admin/publications/{pid}/reject"),
            Some(&admin),
            json!({ "reason": "Internal only" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rejected["reason"], "Internal only");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/admin/publications/{pid}/approve"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let list = app
        .client
        .get(app.url("/api/public/publications"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
}

#[actix_web::test]
async fn a_failed_transaction_leaves_no_visible_document_and_the_sweep_removes_its_file() {
    use dcports::storage::BlobStore;
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;

    // The file is written, then the transaction fails: as a crash between the two would leave it.
    let mut staged = app.state.storage.stage().await.unwrap();
    staged.write(&pdf("orphan")).await.unwrap();
    let staged = staged.finish().await.unwrap();
    {
        let txn = app.state.db.begin_write().await.unwrap();
        sea_orm::ConnectionTrait::execute_unprepared(&*txn, "INSERT INTO no_such_table VALUES (1)")
            .await
            .unwrap_err();
    }
    assert!(staged.path.exists());
    let (_, list) = app.get(&format!("/api/committees/{c}/documents"), &admin).await;
    assert_eq!(list["items"], json!([]));

    let removed = dcports::scheduler::sweep_staging(&app.db, &app.state.storage, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!staged.path.exists());
    assert!(app.stored_files("blobs").is_empty());

    // A staged file whose transaction did commit (the rename was lost) is promoted, not deleted.
    let bytes = pdf("committed");
    let doc = upload_document(&app, &admin, c, "Committed", bytes.clone()).await;
    let blob = app.state.storage.blob_path(doc["file"]["sha256"].as_str().unwrap());
    let staging_copy = app.settings.documents.storage_dir.join("staging").join("lost.part");
    std::fs::rename(&blob, &staging_copy).unwrap();
    dcports::scheduler::sweep_staging(&app.db, &app.state.storage, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);
}

/// A committed upload whose file cannot be moved into place is still a success: answering an
/// error would have the client upload it again as a second version. The file waits in staging
/// and the storage sweep puts it in place.
#[actix_web::test]
async fn an_upload_committed_but_not_moved_into_place_succeeds_and_the_sweep_places_it() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let bytes = pdf("blocked");
    let digest = sha(&bytes);
    // A file where the blob's folder would go: the move into place fails.
    let blocker = app.settings.documents.storage_dir.join("blobs").join(&digest[..2]);
    std::fs::create_dir_all(blocker.parent().unwrap()).unwrap();
    std::fs::write(&blocker, b"in the way").unwrap();

    let doc = upload_document(&app, &admin, c, "Blocked", bytes.clone()).await;
    assert_eq!(doc["file"]["sha256"], digest);
    let (_, list) = app.get(&format!("/api/committees/{c}/documents"), &admin).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Until then a download says so, with a time to come back, instead of failing.
    let content = format!("/api/documents/{}/content", doc["id"]);
    let response = download(&app, &admin, &content).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "300");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "content_unavailable");

    std::fs::remove_file(&blocker).unwrap();
    dcports::scheduler::sweep_staging(&app.db, &app.state.storage, std::time::Duration::ZERO)
        .await
        .unwrap();
    let response = download(&app, &admin, &content).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes);
}

#[actix_web::test]
async fn documents_are_listed_with_filters_and_deleted_softly_by_the_right_people() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let (_, author) = member_of(&app, &admin, c, "author@port.pe", "member").await;
    let (_, other) = member_of(&app, &admin, c, "other@port.pe", "member").await;
    let path = format!("/api/committees/{c}/documents");
    for (title, tags) in [
        ("Callao KPIs 2018", "kpi,callao"),
        ("Valparaíso memo", "memo"),
        ("Cartagena KPIs", "kpi"),
    ] {
        let (status, _) = app
            .upload(
                &path,
                &author,
                "f.pdf",
                pdf(title),
                &[("title", title), ("tags", tags)],
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let titles = |list: &Value| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    // A page shows each document as the document's own view does (which adds its versions
    // and shares): tags and current file included, also when the current file is not the first.
    let (_, all) = app.get(&path, &other).await;
    let revised = all["items"][1]["id"].as_i64().unwrap();
    let (status, _) = app
        .upload(
            &format!("/api/documents/{revised}/versions"),
            &author,
            "memo-v2.pdf",
            pdf("the memo, revised"),
            &[],
            Some("\"1\""),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, all) = app.get(&path, &other).await;
    assert_eq!(all["items"][1]["file"]["number"], 2);
    assert_eq!(all["items"][1]["file"]["file_name"], "memo-v2.pdf");
    assert_eq!(all["items"][0]["tags"], json!(["callao", "kpi"]));
    for item in all["items"].as_array().unwrap() {
        let (_, single) = app.get(&format!("/api/documents/{}", item["id"]), &other).await;
        for (field, value) in item.as_object().unwrap() {
            assert_eq!(value, &single[field], "{field} of document {}", item["id"]);
        }
        assert!(item["file"]["sha256"].is_string(), "{item}");
    }
    let (_, kpi) = app.get(&format!("{path}?tag=KPI"), &other).await;
    assert_eq!(titles(&kpi), ["Callao KPIs 2018", "Cartagena KPIs"]);
    let (_, q) = app.get(&format!("{path}?q=callao"), &other).await;
    assert_eq!(titles(&q), ["Callao KPIs 2018"]);
    let (_, page) = app.get(&format!("{path}?limit=2"), &other).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (_, rest) = app
        .get(
            &format!("{path}?limit=2&cursor={}", page["next_cursor"].as_str().unwrap()),
            &other,
        )
        .await;
    assert_eq!(titles(&rest), ["Cartagena KPIs"]);
    let (status, _) = app.get(&format!("{path}?status=archived"), &other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let first = kpi["items"][0]["id"].as_i64().unwrap();
    let second = kpi["items"][1]["id"].as_i64().unwrap();
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/documents/{first}"), Some(&other), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "neither chair nor creator");
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/documents/{first}"), Some(&author), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/documents/{second}"), Some(&chair), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, left) = app.get(&path, &other).await;
    assert_eq!(titles(&left), ["Valparaíso memo"]);
    assert_eq!(
        app.get(&format!("/api/documents/{first}"), &chair).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Country and year filter the public list in the query: a page is never short of matches that
/// exist further on, and its cursor reaches every one of them.
#[actix_web::test]
async fn public_publications_filtered_by_country_or_year_page_through_every_match() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let mut ids = Vec::new();
    // Oldest first: two Peruvian studies, then three Chilean ones in front of them.
    for (n, country) in ["PE", "PE", "CL", "CL", "CL"].into_iter().enumerate() {
        let document = upload_document(&app, &chair, c, &format!("Study {n}"), pdf(&format!("study {n}"))).await;
        let request =
            json!({ "kind": "study", "summary": { "en": "A study", "es": "Un estudio" }, "country_codes": [country] });
        let (status, publication) = app
            .post(
                &format!("/api/documents/{}/publish", document["id"]),
                Some(&chair),
                request,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{publication}");
        let path = format!("/api/admin/publications/{}/approve", publication["id"]);
        assert_eq!(
            app.call(Method::POST, &path, Some(&admin), None).await.0,
            StatusCode::OK
        );
        ids.push(publication["id"].as_i64().unwrap());
    }
    let public = |query: String| {
        let app = &app;
        async move {
            let response = app
                .client
                .get(app.url(&format!("/api/public/publications?{query}")))
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    // Every page of one, following the cursor.
    let all_pages = |filter: &'static str| async move {
        let (mut found, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let after = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
            let (status, page) = public(format!("{filter}&limit=1{after}")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            found.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_i64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return found,
            }
        }
    };
    assert_eq!(all_pages("country=pe").await, [ids[1], ids[0]]);
    assert_eq!(all_pages("country=CL").await, [ids[4], ids[3], ids[2]]);
    let this_year = chrono::Datelike::year(&chrono::Utc::now());
    let (_, page) = public(format!("year={this_year}&country=PE")).await;
    let items: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(items, [ids[1], ids[0]]);
    let (_, page) = public(format!("year={}", this_year - 1)).await;
    assert_eq!(page["items"], json!([]));
    for bad in ["country=PER", "country=%25", "year=0", "year=2147483647"] {
        let (status, problem) = public(bad.to_owned()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("validation_failed")),
            "{bad}"
        );
    }
}

/// Of an approval and rejections of one publication sent at once, exactly one decides it.
#[actix_web::test]
async fn a_publication_is_decided_once_when_reviews_arrive_at_once() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let document = upload_document(&app, &chair, c, "Study", pdf("study")).await;
    let request =
        json!({ "kind": "study", "summary": { "en": "A study", "es": "Un estudio" }, "country_codes": ["PE"] });
    let (status, publication) = app
        .post(
            &format!("/api/documents/{}/publish", document["id"]),
            Some(&chair),
            request,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{publication}");
    let reviews = (0..16).map(|n| {
        let (decision, body) = match n % 2 {
            0 => ("approve", None),
            _ => ("reject", Some(json!({ "reason": "Not yet" }))),
        };
        let path = format!("/api/admin/publications/{}/{decision}", publication["id"]);
        let app = &app;
        let admin = &admin;
        async move { app.call(Method::POST, &path, Some(admin), body).await.0 }
    });
    let statuses = futures_util::future::join_all(reviews).await;
    assert_eq!(statuses.iter().filter(|s| s.is_success()).count(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| s.is_success() || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let decided = app
        .events_of(&format!("committee:{c}"), "document.published", &chair)
        .await
        .len()
        + app
            .events_of(&format!("committee:{c}"), "publication.rejected", &chair)
            .await
            .len();
    assert_eq!(decided, 1);
}

/// A document has one publication request waiting at a time: another, one at a time or many
/// at once (a double click), is refused with 409 while it waits; once it is decided, the
/// document may be put forward again.
#[actix_web::test]
async fn a_document_has_one_publication_request_waiting_at_a_time() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let document = upload_document(&app, &chair, c, "Study", pdf("study")).await;
    let path = format!("/api/documents/{}/publish", document["id"]);
    let request = json!({ "kind": "study", "summary": { "en": "A study", "es": "Un estudio" } });
    let requests = (0..8).map(|_| app.post(&path, Some(&chair), request.clone()));
    let answers = futures_util::future::join_all(requests).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let (_, first) = answers
        .into_iter()
        .find(|(status, _)| *status == StatusCode::CREATED)
        .unwrap();
    let (_, pending) = app.get("/api/admin/publications?status=pending", &admin).await;
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(1), "{pending}");

    let reject = format!("/api/admin/publications/{}/reject", first["id"]);
    let (status, _) = app.post(&reject, Some(&admin), json!({ "reason": "Not yet" })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = app.post(&path, Some(&chair), request).await;
    assert_eq!(
        (status, &again["status"]),
        (StatusCode::CREATED, &json!("pending")),
        "{again}"
    );
}

/// Of deletes arriving at once, one deletes the document and tells its committee; the others
/// find it gone.
#[actix_web::test]
async fn a_document_is_deleted_once_when_deletes_arrive_at_once() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let document = upload_document(&app, &chair, c, "Study", pdf("study")).await;
    let path = format!("/api/documents/{}", document["id"]);
    let deletes = (0..16).map(|_| async { app.call(Method::DELETE, &path, Some(&chair), None).await.0 });
    let statuses = futures_util::future::join_all(deletes).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::NOT_FOUND),
        "{statuses:?}"
    );
    let deleted = app
        .events_of(&format!("committee:{c}"), "document.deleted", &chair)
        .await;
    assert_eq!(deleted.len(), 1);
}

/// An archived committee takes no new share, and one archived after a document was shared with
/// it reads the document still but writes no more. An author who has left the owner committee
/// and writes through a share may edit the document, not delete it.
#[actix_web::test]
async fn shares_respect_archived_committees_and_an_author_who_has_left() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let a = committee(&app, &admin, "A").await;
    let b = committee(&app, &admin, "B").await;
    let closed = committee(&app, &admin, "Closed").await;
    let (_, chair_a) = member_of(&app, &admin, a, "chair@a.org", "chair").await;
    let (author_id, author) = member_of(&app, &admin, a, "author@a.org", "member").await;
    crate::committees::add(&app, &admin, b, author_id, "member").await;
    let (_, writer_b) = member_of(&app, &admin, b, "writer@b.org", "member").await;
    let id = upload_document(&app, &author, a, "Estudio", pdf("estudio")).await["id"]
        .as_i64()
        .unwrap();
    let share = async |committee: i64| {
        app.call(
            Method::PUT,
            &format!("/api/documents/{id}/shares/{committee}"),
            Some(&chair_a),
            Some(json!({ "access": "write" })),
        )
        .await
    };
    let archive = async |committee: i64, archived: bool| {
        app.call(
            Method::PATCH,
            &format!("/api/admin/committees/{committee}"),
            Some(&admin),
            Some(json!({ "archived": archived })),
        )
        .await
    };
    let rename = async |token: &str, title: &str| {
        app.call(
            Method::PATCH,
            &format!("/api/documents/{id}"),
            Some(token),
            Some(json!({ "title": title })),
        )
        .await
    };

    assert_eq!(archive(closed, true).await.0, StatusCode::OK);
    let (status, problem) = share(closed).await;
    crate::errors::assert_problem(status, &problem, StatusCode::CONFLICT, "conflict");
    assert_eq!(share(b).await.0, StatusCode::OK);

    assert_eq!(rename(&writer_b, "Edited in B").await.0, StatusCode::OK);
    assert_eq!(archive(b, true).await.0, StatusCode::OK);
    assert_eq!(rename(&writer_b, "Edited in archived B").await.0, StatusCode::FORBIDDEN);
    let (status, read) = app.get(&format!("/api/documents/{id}"), &writer_b).await;
    assert_eq!((status, &read["title"]), (StatusCode::OK, &json!("Edited in B")));
    assert_eq!(archive(b, false).await.0, StatusCode::OK);

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/admin/committees/{a}/members/{author_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(rename(&author, "Edited by the former author").await.0, StatusCode::OK);
    let (status, _) = app
        .call(Method::DELETE, &format!("/api/documents/{id}"), Some(&author), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, read) = app.get(&format!("/api/documents/{id}"), &chair_a).await;
    assert_eq!(
        (status, &read["title"]),
        (StatusCode::OK, &json!("Edited by the former author"))
    );
}

/// The public channel hears a publication as the public area shows it (no requester, reviewer
/// or document ids), and its withdrawal as `{id, public: false}`; a committee the document is
/// shared with hears both, and not the owner's request.
#[actix_web::test]
async fn a_publication_reaches_the_public_channel_as_the_public_sees_it_and_sharers_hear_of_it() {
    let app = spawn_app().await;
    let TwoCommittees {
        admin,
        a,
        b,
        chair,
        reader,
    } = two_committees(&app).await;
    let id = upload_document(&app, &chair, a, "Shared study", pdf("shared study")).await["id"]
        .as_i64()
        .unwrap();
    let (status, _) = app
        .call(
            Method::PUT,
            &format!("/api/documents/{id}/shares/{b}"),
            Some(&chair),
            Some(json!({ "access": "read" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, request) = app
        .post(
            &format!("/api/documents/{id}/publish"),
            Some(&chair),
            json!({ "kind": "study", "summary": { "en": "A study", "es": "Un estudio" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let pid = request["id"].as_i64().unwrap();
    let review = async |action: &str| {
        let (status, body) = app
            .post(
                &format!("/api/admin/publications/{pid}/{action}"),
                Some(&admin),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    };
    let feed = async |channel: String, token: &str| {
        let (status, feed) = app.get(&format!("/api/events?channel={channel}"), token).await;
        assert_eq!(status, StatusCode::OK, "{feed}");
        feed["items"].as_array().unwrap().clone()
    };

    review("approve").await;
    let shown = app.text(&format!("/api/public/publications/{pid}"), None).await;
    let shown: Value = serde_json::from_str(&shown).unwrap();
    review("withdraw").await;
    // A second request, withdrawn while pending, stays the owner's business.
    let (status, second) = app
        .post(
            &format!("/api/documents/{id}/publish"),
            Some(&chair),
            json!({ "kind": "study", "summary": { "en": "Again", "es": "Otra vez" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (status, _) = app
        .post(
            &format!("/api/admin/publications/{}/withdraw", second["id"]),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let owner_kinds: Vec<Value> = feed(format!("committee:{a}"), &chair)
        .await
        .into_iter()
        .map(|event| event["kind"].clone())
        .filter(|kind| kind.as_str().is_some_and(|kind| kind.starts_with("publication.")))
        .collect();
    assert_eq!(
        owner_kinds,
        [
            "publication.requested",
            "publication.withdrawn",
            "publication.requested",
            "publication.withdrawn"
        ]
    );

    let public: Vec<(Value, Value)> = feed("public".to_owned(), &reader)
        .await
        .into_iter()
        .map(|event| (event["kind"].clone(), event["data"].clone()))
        .collect();
    assert_eq!(
        public,
        [
            (json!("document.published"), shown),
            (json!("publication.withdrawn"), json!({ "id": pid, "public": false })),
        ]
    );
    let kinds: Vec<Value> = feed(format!("committee:{b}"), &reader)
        .await
        .into_iter()
        .map(|event| event["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "committee.updated",
            "membership.added",
            "document.shared",
            "document.published",
            "publication.withdrawn"
        ]
    );
}

/// DESIGN.md rule 5: events reach a member as what the member may see when they are delivered,
/// a replay included. Once a share ends, a replay of the committee's channel keeps the
/// document's events in their places (offsets unbroken, so resuming still works) with their
/// content redacted; the unshare itself stays. The owner's channel keeps everything.
#[actix_web::test]
async fn a_replay_redacts_the_events_of_a_document_no_longer_shared() {
    let app = spawn_app().await;
    let TwoCommittees {
        a, b, chair, reader, ..
    } = two_committees(&app).await;
    let id = upload_document(&app, &chair, a, "Confidential plan", pdf("plan")).await["id"]
        .as_i64()
        .unwrap();
    let share_path = format!("/api/documents/{id}/shares/{b}");
    let (status, _) = app
        .call(
            Method::PUT,
            &share_path,
            Some(&chair),
            Some(json!({ "access": "read" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/documents/{id}"),
            Some(&chair),
            Some(json!({ "title": "Confidential plan, second draft" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let feed = async |channel: i64, token: &str| {
        let (status, feed) = app
            .get(&format!("/api/events?channel=committee:{channel}"), token)
            .await;
        assert_eq!(status, StatusCode::OK, "{feed}");
        feed["items"].as_array().unwrap().clone()
    };
    let of_document = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .filter(|event| event["kind"].as_str().is_some_and(|kind| kind.starts_with("document.")))
            .cloned()
            .collect()
    };
    let while_shared = of_document(&feed(b, &reader).await);
    assert_eq!(while_shared.len(), 2, "shared, then updated: {while_shared:?}");
    assert_eq!(while_shared[1]["data"]["title"], "Confidential plan, second draft");

    let (status, _) = app.call(Method::DELETE, &share_path, Some(&chair), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let events = feed(b, &reader).await;
    let offsets: Vec<i64> = events.iter().map(|event| event["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, (1..=offsets.len() as i64).collect::<Vec<_>>(), "no gap");
    let after = of_document(&events);
    let kinds: Vec<&str> = after.iter().map(|event| event["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["document.shared", "document.updated", "document.unshared"]);
    for event in &after[..2] {
        assert_eq!(
            (&event["data"], &event["actor_id"]),
            (&json!({ "redacted": true, "document_id": id }), &Value::Null)
        );
    }
    assert_eq!(after[2]["data"], json!({ "id": id, "committee_id": b }));
    assert!(!Value::Array(events.clone()).to_string().contains("Confidential"));

    // The WebSocket's replay says the same.
    let (mut socket, _) = WsClient::authenticated(&app, &reader).await;
    let (replayed, _) = socket.subscribe(&format!("committee:{b}"), Some(0)).await;
    let data = |events: &[Value]| -> Vec<(Value, Value)> {
        events
            .iter()
            .map(|event| (event["offset"].clone(), event["data"].clone()))
            .collect()
    };
    assert_eq!(data(&replayed), data(&events));
    // The owner's channel keeps all of it.
    let owner = of_document(&feed(a, &chair).await);
    assert!(
        owner
            .iter()
            .any(|event| event["data"]["title"] == "Confidential plan, second draft")
    );
}

/// The public search folds accents and case on both databases ("indice" finds "Índice"), and
/// the migration that added the folded text filled it for publications made before it.
#[actix_web::test]
async fn the_public_search_of_publications_ignores_accents_and_case_before_and_after_the_migration() {
    use migration::MigratorTrait;
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let summary = json!({ "en": "Performance of Callao", "es": "Desempeño del Callao" });
    let (_, pid) = approved_publication(&app, &admin, &chair, c, "Índice de desempeño portuario", summary).await;
    let found = async |q: &str| {
        let path = format!("/api/public/publications?q={}", urlencoding(q));
        let list: Value = app
            .client
            .get(app.url(&path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let searches = async || {
        let mut hits = Vec::new();
        for q in ["índice", "INDICE", "Desempeno  del", "callao", "índices"] {
            hits.push(found(q).await);
        }
        hits
    };
    let expected = vec![vec![pid], vec![pid], vec![pid], vec![pid], vec![]];
    assert_eq!(searches().await, expected);

    // As the database was before the migration: the column gone, then the migration run again.
    migration::Migrator::down(
        app.db.conn(),
        Some(migrations_since("m20261129_000013_publication_search_text")),
    )
    .await
    .unwrap();
    migration::Migrator::up(app.db.conn(), None).await.unwrap();
    app.state.public_cache.changed();
    assert_eq!(searches().await, expected);
}

/// Uploads `title` to committee `c`, has its chair ask to publish it as a study and the
/// secretariat approve it; the document's and the publication's ids.
async fn approved_publication(
    app: &TestApp,
    admin: &str,
    chair: &str,
    c: i64,
    title: &str,
    summary: Value,
) -> (i64, i64) {
    let id = upload_document(app, chair, c, title, pdf(title)).await["id"]
        .as_i64()
        .unwrap();
    let request = json!({ "kind": "study", "summary": summary });
    let (status, publication) = app
        .post(&format!("/api/documents/{id}/publish"), Some(chair), request)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{publication}");
    let pid = publication["id"].as_i64().unwrap();
    let approve = format!("/api/admin/publications/{pid}/approve");
    assert_eq!(
        app.call(Method::POST, &approve, Some(admin), None).await.0,
        StatusCode::OK
    );
    (id, pid)
}

/// Percent-encodes a query value (spaces and non-ASCII letters).
fn urlencoding(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A committee's document search folds accents and case on both databases ("organizacion"
/// finds "Organización"), follows edits of the title and description, and the migration that
/// added the folded text filled it for documents made before it.
#[actix_web::test]
async fn the_document_search_ignores_accents_and_case_follows_edits_and_survives_the_migration() {
    use migration::MigratorTrait;
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    let organization = upload_document(&app, &chair, c, "Organización portuaria", pdf("org")).await["id"]
        .as_i64()
        .unwrap();
    let kpis = upload_document(&app, &chair, c, "Callao KPIs", pdf("kpis")).await["id"]
        .as_i64()
        .unwrap();
    let edit = |body: Value| {
        let (app, chair) = (&app, &chair);
        async move {
            let path = format!("/api/documents/{organization}");
            let (status, answer) = app.call(Method::PATCH, &path, Some(chair), Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    edit(json!({ "description": "Índice de DESEMPEÑO" })).await;
    let found = async |q: &str| -> Vec<i64> {
        let path = format!("/api/committees/{c}/documents?q={}", urlencoding(q));
        let (status, list) = app.get(&path, &chair).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_i64().unwrap())
            .collect()
    };
    let searches = async || {
        let mut hits = Vec::new();
        for q in [
            "organizacion",
            "ORGANIZACIÓN",
            "indice de  desempeno",
            "kpis",
            "organizaciones",
        ] {
            hits.push(found(q).await);
        }
        hits
    };
    let expected = vec![
        vec![organization],
        vec![organization],
        vec![organization],
        vec![kpis],
        vec![],
    ];
    assert_eq!(searches().await, expected);

    // A new title replaces the old one in the search; the description stays searchable.
    edit(json!({ "title": "Plan de acción" })).await;
    assert_eq!(found("organizacion").await, Vec::<i64>::new());
    assert_eq!(found("ACCION").await, [organization]);
    assert_eq!(found("desempeño").await, [organization]);

    // As the database was before the migration: the column gone, then the migration run again.
    let since = migrations_since("m20261129_000015_document_search_text");
    migration::Migrator::down(app.db.conn(), Some(since)).await.unwrap();
    migration::Migrator::up(app.db.conn(), None).await.unwrap();
    assert_eq!(found("accion").await, [organization]);
    assert_eq!(found("Índice").await, [organization]);
    assert_eq!(found("kpis").await, [kpis]);
}

/// An upload whose body comes in two halves: the start of the file at once, its end and the
/// form's close when [`SlowUpload::finish`] is called.
struct SlowUpload {
    rest: tokio::sync::mpsc::Sender<Vec<u8>>,
    answer: tokio::task::JoinHandle<(StatusCode, Value)>,
}

impl SlowUpload {
    const BOUNDARY: &str = "dcports-slow-upload";

    /// Starts the upload, and returns once the server is storing the file: past the checks
    /// made before the body is read.
    async fn start(app: &TestApp, path: &str, token: &str) -> Self {
        use futures_util::StreamExt as _;
        let boundary = Self::BOUNDARY;
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nSlow\r\n--{boundary}\r\n\
             Content-Disposition: form-data; name=\"file\"; filename=\"estudio.pdf\"\r\n\r\n"
        );
        let (rest, chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let first = [head.into_bytes(), pdf(&"slow ".repeat(2_000))].concat();
        let body =
            futures_util::stream::once(async { Ok::<_, std::io::Error>(first) })
                .chain(futures_util::stream::unfold(chunks, |mut chunks| async move {
                    chunks.recv().await.map(|chunk| (Ok(chunk), chunks))
                }));
        let request = app
            .client
            .post(app.url(path))
            .bearer_auth(token)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(reqwest::Body::wrap_stream(body));
        let answer = tokio::spawn(async move {
            let response = request.send().await.expect("upload sent");
            let status = response.status();
            (status, response.json().await.unwrap_or(Value::Null))
        });
        for _ in 0..200 {
            if !app.stored_files("staging").is_empty() {
                return Self { rest, answer };
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the server did not begin storing the upload");
    }

    /// Sends the rest of the body, and returns the answer.
    async fn finish(self) -> (StatusCode, Value) {
        let end = format!("\r\n--{}--\r\n", Self::BOUNDARY);
        self.rest
            .send(end.into_bytes())
            .await
            .expect("the body is still wanted");
        drop(self.rest);
        self.answer.await.unwrap()
    }
}

/// The checks made before an upload's body is read are made again once it is in: a member
/// suspended, or whose login session ended, while the body came in has the upload refused, and
/// nothing of it is kept.
#[actix_web::test]
async fn an_upload_is_refused_if_its_sender_lost_access_while_the_body_came_in() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (suspended_id, suspended) = member_of(&app, &admin, c, "suspended@port.pe", "member").await;
    let pair = app.member(&admin, "leaving@port.pe").await;
    crate::committees::add(&app, &admin, c, pair["member"]["id"].as_i64().unwrap(), "member").await;
    let leaving = pair["access_token"].as_str().unwrap().to_owned();
    let document = upload_document(&app, &admin, c, "Existing", pdf("v1")).await;

    let upload = SlowUpload::start(&app, &format!("/api/committees/{c}/documents"), &suspended).await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/admin/members/{suspended_id}"),
            Some(&admin),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = upload.finish().await;
    assert_eq!(
        (status, &problem["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );

    let versions = format!("/api/documents/{}/versions", document["id"]);
    let upload = SlowUpload::start(&app, &versions, &leaving).await;
    app.logout(&pair).await;
    let (status, problem) = upload.finish().await;
    assert_eq!(
        (status, &problem["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );

    let (_, listed) = app.get(&format!("/api/committees/{c}/documents"), &admin).await;
    let titles: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["title"])
        .collect();
    assert_eq!(titles, [&json!("Existing")]);
    let (_, detail) = app.get(&format!("/api/documents/{}", document["id"]), &admin).await;
    assert_eq!(detail["current_version"], 1);
    assert_eq!(app.stored_files("staging"), Vec::<std::path::PathBuf>::new());
    assert_eq!(app.stored_files("blobs").len(), 1, "the existing document's file only");
}

/// A version's note is bounded as a description is, and a tag is a single line, on upload and
/// on change; a refused upload leaves nothing behind.
#[actix_web::test]
async fn an_uploads_note_and_tags_are_checked_and_a_refused_one_leaves_nothing() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let document = upload_document(&app, &admin, c, "Existing", pdf("v1")).await;
    let long_note = "n".repeat(dcports::domain::LONG_TEXT_MAX + 1);
    let create = format!("/api/committees/{c}/documents");
    let version = format!("/api/documents/{}/versions", document["id"]);
    for (path, fields, field) in [
        (&create, vec![("title", "T"), ("tags", "puerto,a\u{7}b")], "tags"),
        (&create, vec![("title", "T"), ("note", long_note.as_str())], "note"),
        (&version, vec![("note", long_note.as_str())], "note"),
    ] {
        let (status, problem) = app.upload(path, &admin, "estudio.pdf", pdf("v2"), &fields, None).await;
        assert_eq!(
            (status, &problem["errors"][0]["field"]),
            (StatusCode::BAD_REQUEST, &json!(field)),
            "{path}: {problem}"
        );
    }
    let (status, problem) = app
        .call(
            Method::PATCH,
            &format!("/api/documents/{}", document["id"]),
            Some(&admin),
            Some(json!({ "tags": ["line\nbreak"] })),
        )
        .await;
    assert_eq!(
        (status, &problem["errors"][0]["field"]),
        (StatusCode::BAD_REQUEST, &json!("tags"))
    );

    let (_, detail) = app.get(&format!("/api/documents/{}", document["id"]), &admin).await;
    assert_eq!((&detail["current_version"], &detail["tags"]), (&json!(1), &json!([])));
    let (_, listed) = app.get(&format!("/api/committees/{c}/documents"), &admin).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(app.stored_files("staging"), Vec::<std::path::PathBuf>::new());
    assert_eq!(app.stored_files("blobs").len(), 1);

    let (status, created) = app
        .upload(
            &create,
            &admin,
            "estudio.pdf",
            pdf("v3"),
            &[("title", "T"), ("note", "Primera\nversión")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

/// The public publications page shows a page of them, newest first, and leads to the earlier
/// ones (it listed every publication ever approved in one page); the home page shows the five
/// latest.
#[actix_web::test]
async fn the_publications_page_shows_a_page_at_a_time_and_leads_to_the_earlier_ones() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let c = committee(&app, &admin, "C").await;
    let (_, chair) = member_of(&app, &admin, c, "chair@port.pe", "chair").await;
    for title in ["First study", "Second study", "Third study"] {
        approved_publication(&app, &admin, &chair, c, title, json!("A study")).await;
    }
    let first = app.text("/publications?limit=2&lang=es", None).await;
    assert!(
        first.contains("Third study") && first.contains("Second study"),
        "{first}"
    );
    assert!(!first.contains("First study"), "the oldest is on the next page");
    assert!(first.contains("Publicaciones anteriores"), "{first}");
    let earlier = first
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|link| link.contains("cursor="))
        .expect("a link to the earlier publications")
        .replace("&amp;", "&");
    let second = app.text(&format!("{earlier}&limit=2"), None).await;
    assert!(
        second.contains("First study") && !second.contains("Second study"),
        "{second}"
    );
    assert!(!second.contains("cursor="), "the second page is the last");
    let whole = app.text("/publications", None).await;
    assert!(
        ["First study", "Second study", "Third study"]
            .iter()
            .all(|title| whole.contains(title))
    );

    // The home page shows the five latest, the same list's first page.
    for title in ["Fourth study", "Fifth study", "Sixth study"] {
        approved_publication(&app, &admin, &chair, c, title, json!("A study")).await;
    }
    let home = app.text("/", None).await;
    let shown: Vec<&str> = ["First", "Second", "Third", "Fourth", "Fifth", "Sixth"]
        .into_iter()
        .filter(|n| home.contains(&format!("{n} study")))
        .collect();
    assert_eq!(shown, ["Second", "Third", "Fourth", "Fifth", "Sixth"]);
}
