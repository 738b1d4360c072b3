use std::time::Duration;

use dcports::settings::{MailTransportKind, SmtpSecurity};
use entity::mail_queue;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::helpers::{parse_mail, spawn_app, spawn_app_with};
use crate::smtp::FakeSmtp;

#[actix_web::test]
async fn an_invitation_is_delivered_over_smtp_after_the_server_first_refuses() {
    let smtp = FakeSmtp::start(1);
    let port = smtp.port;
    let app = spawn_app_with(|settings| {
        use_smtp(settings, port);
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    let (status, _) = app
        .post(
            "/api/admin/members",
            Some(&admin),
            json!({ "email": "rosa@puerto.mx", "name": "Rosa", "role": "member", "locale": "es" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let mut received = Vec::new();
    for _ in 0..200 {
        received = smtp.messages();
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(smtp.refused(), 1, "the first attempt was refused");
    assert_eq!(received.len(), 1, "delivered once, on the retry");
    let mail = parse_mail(&received[0]).expect("a parsable message");
    assert_eq!(mail.to, "rosa@puerto.mx");
    // An id under the sender's domain: a relay adds none for a remote sender, and some
    // providers refuse a message without one.
    let parsed = mail_parser::MessageParser::default().parse(&received[0]).unwrap();
    let id = parsed.message_id().expect("a Message-ID");
    assert!(
        id.ends_with("@dcports.local") && id.len() > "@dcports.local".len(),
        "{id}"
    );
    assert!(mail.subject.starts_with("Su invitación"), "{}", mail.subject);
    assert!(
        mail.text.contains("http://localhost:8080/invitation?token=dci_"),
        "{}",
        mail.text
    );
    assert!(mail.html.is_some_and(|html| html.contains("Hola Rosa")));

    // The mailer records the outcome just after the server acknowledges the message.
    let mut row = None;
    for _ in 0..200 {
        let rows = mail_queue::Entity::find().all(app.db.conn()).await.unwrap();
        row = rows
            .into_iter()
            .find(|row| row.to_address == "rosa@puerto.mx" && row.sent_at.is_some());
        if row.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let row = row.expect("the queue row is marked sent");
    assert_eq!(row.attempts, 2);
    assert!(
        row.last_error.as_deref().is_some_and(|error| error.contains("451")),
        "{:?}",
        row.last_error
    );
    // The link was in the body: once sent, the database keeps no copy of it.
    assert_eq!((row.body_text.as_str(), row.body_html), ("", None));
}

#[actix_web::test]
async fn a_message_given_up_keeps_its_outcome_but_not_its_link() {
    let dead_port = closed_port();
    let app = spawn_app_with(|settings| {
        use_smtp(settings, dead_port);
        settings.mail.max_attempts = 1;
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    app.invite(&admin, "unreachable@port.cl").await;
    let mut given_up = None;
    for _ in 0..200 {
        let rows = mail_queue::Entity::find().all(app.db.conn()).await.unwrap();
        given_up = rows
            .into_iter()
            .find(|row| row.to_address == "unreachable@port.cl" && row.failed_at.is_some());
        if given_up.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let row = given_up.expect("the message is given up after its one attempt");
    assert_eq!(row.sent_at, None);
    assert!(row.last_error.is_some() && !row.subject.is_empty());
    assert_eq!((row.body_text.as_str(), row.body_html), ("", None));
}

#[actix_web::test]
async fn the_file_transport_writes_one_eml_per_message_in_english_by_default() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    app.invite(&admin, "john@port.jm").await;
    app.token_from_mail("john@port.jm", "/invitation").await;
    let mails = app.mails_to("john@port.jm");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Your invitation to the D&C Ports Network portal");
    assert!(mails[0].text.contains("expires in 168 hours"));
}

#[actix_web::test]
async fn queued_mail_survives_a_restart_and_is_sent_by_the_next_process() {
    let smtp = FakeSmtp::start(0);
    let dead_port = closed_port();
    // First process: SMTP unreachable, so the invitation stays queued. It tries once, when the
    // invitation wakes its mailer, and does not poll again during the test: as a process that
    // stopped, it must not win the message back from the next one (a flaky race under load).
    let app = spawn_app_with(|settings| {
        use_smtp(settings, dead_port);
        settings.mail.retry_base_ms = 50;
        settings.mail.poll_interval_ms = 600_000;
    })
    .await;
    let admin = app.secretariat("admin@sela.org").await;
    app.invite(&admin, "queued@port.ec").await;
    let mut attempted = false;
    for _ in 0..200 {
        let rows = mail_queue::Entity::find().all(app.db.conn()).await.unwrap();
        if rows.iter().any(|row| row.attempts >= 1 && row.sent_at.is_none()) {
            attempted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(attempted, "the first process tried and failed");

    // Second process on the same database, with a working SMTP server.
    let mut settings = app.settings.clone();
    settings.mail.smtp.port = smtp.port;
    settings.mail.poll_interval_ms = 100;
    let second = dcports::startup::Application::build(settings).await.unwrap();
    actix_web::rt::spawn(second.run_until_stopped());
    for _ in 0..400 {
        if !smtp.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(parse_mail(&messages[0]).unwrap().to, "queued@port.ec");
}

/// The mailer writes too (it leases a message, then records the outcome). On SQLite, a write
/// transaction that had read before another writer committed fails with `SQLITE_BUSY_SNAPSHOT`
/// unless every writer queues at the same gate; this test failed with 500s when the mailer
/// wrote outside it.
#[actix_web::test]
async fn writes_while_mail_goes_out_never_fail() {
    let app = spawn_app().await;
    let admin = app.secretariat("admin@sela.org").await;
    let id = app.invite(&admin, "late@port.org").await;
    let mut failures = Vec::new();
    for _ in 0..60 {
        let (status, body) = app
            .call(
                reqwest::Method::POST,
                &format!("/api/admin/members/{id}/invitation"),
                Some(&admin),
                None,
            )
            .await;
        if status != StatusCode::ACCEPTED {
            failures.push(format!("{status} {body}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 60 re-invitations failed: {failures:?}",
        failures.len()
    );
    // And the mail of every one of them went out.
    for _ in 0..200 {
        let pending = mail_queue::Entity::find()
            .all(app.db.conn())
            .await
            .unwrap()
            .into_iter()
            .filter(|message| message.sent_at.is_none())
            .count();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("mail still queued after 5 s");
}

/// Sends the app's mail by plain SMTP to `port` on this machine.
fn use_smtp(settings: &mut dcports::settings::Settings, port: u16) {
    settings.mail.transport = MailTransportKind::Smtp;
    settings.mail.smtp.host = "127.0.0.1".to_owned();
    settings.mail.smtp.port = port;
    settings.mail.smtp.security = SmtpSecurity::None;
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Migration 000014 blanks what was sent before the mailer blanked bodies itself, and leaves
/// the bodies of messages still to be sent.
#[actix_web::test]
async fn the_migration_forgets_the_bodies_of_mail_sent_before_it() {
    use migration::MigratorTrait;
    use sea_orm::{ActiveModelTrait, Set};
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let queued = |to: &str, sent: bool| mail_queue::ActiveModel {
        to_address: Set(to.to_owned()),
        subject: Set("Your invitation".to_owned()),
        body_text: Set("http://localhost:8080/invitation?token=dci_secret".to_owned()),
        body_html: Set(Some("<a href=\"…?token=dci_secret\">".to_owned())),
        attempts: Set(i32::from(sent)),
        next_attempt_at: Set(now + chrono::Duration::days(1)),
        created_at: Set(now),
        sent_at: Set(sent.then_some(now)),
        ..Default::default()
    };
    let sent = queued("sent@port.pe", true).insert(app.db.conn()).await.unwrap();
    let waiting = queued("waiting@port.pe", false).insert(app.db.conn()).await.unwrap();

    let since = crate::helpers::migrations_since("m20261129_000014_forget_sent_mail_bodies");
    migration::Migrator::down(app.db.conn(), Some(since)).await.unwrap();
    migration::Migrator::up(app.db.conn(), None).await.unwrap();

    let rows = mail_queue::Entity::find().all(app.db.conn()).await.unwrap();
    let row = |id: i32| rows.iter().find(|row| row.id == id).unwrap();
    assert_eq!(
        (row(sent.id).body_text.as_str(), row(sent.id).body_html.as_deref()),
        ("", None)
    );
    assert_eq!(row(waiting.id).body_text, waiting.body_text);
}

/// Housekeeping deletes mail sent or given up longer ago than the retention, and keeps recent
/// mail and mail still to be sent, however old.
#[actix_web::test]
async fn housekeeping_deletes_old_sent_and_given_up_mail_only() {
    use sea_orm::{ActiveModelTrait, Set};
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let (old, recent) = (now - chrono::Duration::days(40), now - chrono::Duration::days(1));
    let queued = |to: &str, sent_at, failed_at| mail_queue::ActiveModel {
        to_address: Set(to.to_owned()),
        subject: Set("Notice".to_owned()),
        body_text: Set(String::new()),
        attempts: Set(1),
        // Not due: the mailer leaves these rows alone during the test.
        next_attempt_at: Set(now + chrono::Duration::days(1)),
        created_at: Set(old),
        sent_at: Set(sent_at),
        failed_at: Set(failed_at),
        ..Default::default()
    };
    for row in [
        queued("old-sent@port.pe", Some(old), None),
        queued("old-given-up@port.pe", None, Some(old)),
        queued("recent-sent@port.pe", Some(recent), None),
        queued("recent-given-up@port.pe", None, Some(recent)),
        queued("waiting@port.pe", None, None),
    ] {
        row.insert(app.db.conn()).await.unwrap();
    }

    dcports::scheduler::sweep(&app.db, 30).await.unwrap();

    let mut kept: Vec<String> = mail_queue::Entity::find()
        .all(app.db.conn())
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.to_address)
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["recent-given-up@port.pe", "recent-sent@port.pe", "waiting@port.pe"]
    );
}
