//! The `Mailer` actor: delivers due messages from the queue, one batch at a time.
//!
//! A message is leased before it is sent (its `next_attempt_at` moved into the future by a
//! conditional update), so two nodes sharing a database never send the same message twice
//! at once, and a node that dies mid-send leaves the message to be retried after the lease.

use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use chrono::Utc;
use entity::mail_queue;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, UpdateMany};
use secrecy::ExposeSecret;

use crate::db::Db;
use crate::settings::{MailSettings, MailTransportKind, SmtpSecurity};

const BATCH: u64 = 20;
const LEASE_SECS: i64 = 120;
const MAX_BACKOFF_MS: u64 = 3_600_000;

#[derive(Clone)]
enum Transport {
    File(AsyncFileTransport<Tokio1Executor>),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    fn from_settings(settings: &MailSettings) -> anyhow::Result<Self> {
        match settings.transport {
            MailTransportKind::File => {
                std::fs::create_dir_all(&settings.outbox_dir)
                    .with_context(|| format!("Failed to create mail.outbox_dir {}", settings.outbox_dir.display()))?;
                Ok(Transport::File(AsyncFileTransport::new(&settings.outbox_dir)))
            }
            MailTransportKind::Smtp => {
                let smtp = &settings.smtp;
                let mut builder = match smtp.security {
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
                    SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
                    SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
                }
                .port(smtp.port)
                .timeout(Some(Duration::from_secs(30)));
                if !smtp.username.is_empty() {
                    builder = builder.credentials(Credentials::new(
                        smtp.username.clone(),
                        smtp.password.expose_secret().to_owned(),
                    ));
                }
                Ok(Transport::Smtp(builder.build()))
            }
        }
    }

    async fn send(&self, message: Message) -> anyhow::Result<()> {
        match self {
            Transport::File(file) => file.send(message).await.map(drop).context("file transport"),
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).context("SMTP transport"),
        }
    }
}

pub struct Mailer {
    db: Db,
    transport: Transport,
    settings: MailSettings,
    from: Mailbox,
    busy: bool,
}

/// Asks the mailer to look at the queue now (sent after a commit that queued mail).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Mailer {
    pub fn new(db: Db, settings: MailSettings) -> anyhow::Result<Self> {
        let from = settings.from.parse().context("Invalid setting mail.from")?;
        let transport = Transport::from_settings(&settings)?;
        Ok(Self {
            db,
            transport,
            settings,
            from,
            busy: false,
        })
    }

    fn deliver_due(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let batch = deliver_batch(
            self.db.clone(),
            self.transport.clone(),
            self.settings.clone(),
            self.from.clone(),
        );
        ctx.spawn(batch.into_actor(self).map(|result, actor, ctx| {
            actor.busy = false;
            match result {
                // A full batch means more may be waiting: go on at once.
                Ok(count) if count as u64 == BATCH => ctx.notify(Wake),
                Ok(_) => {}
                Err(error) => tracing::warn!(error = ?error, "mail queue poll failed"),
            }
        }));
    }
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(Duration::from_millis(self.settings.poll_interval_ms), |actor, ctx| {
            actor.deliver_due(ctx)
        });
        ctx.notify(Wake);
    }
}

impl Handler<Wake> for Mailer {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.deliver_due(ctx);
    }
}

/// Sends what is due; returns how many messages were picked up.
async fn deliver_batch(db: Db, transport: Transport, settings: MailSettings, from: Mailbox) -> anyhow::Result<usize> {
    let now = Utc::now();
    let due = mail_queue::Entity::find()
        .filter(mail_queue::Column::SentAt.is_null())
        .filter(mail_queue::Column::FailedAt.is_null())
        .filter(mail_queue::Column::NextAttemptAt.lte(now))
        .order_by_asc(mail_queue::Column::Id)
        .limit(BATCH)
        .all(db.conn())
        .await?;
    let count = due.len();
    for message in due {
        if !lease(&db, &message).await? {
            continue;
        }
        let outcome = match build_message(&from, &message) {
            Ok(built) => transport.send(built).await,
            Err(error) => Err(error),
        };
        record_outcome(&db, &settings, &message, outcome).await?;
    }
    Ok(count)
}

async fn lease(db: &Db, message: &mail_queue::Model) -> anyhow::Result<bool> {
    let leased_until = Utc::now() + chrono::Duration::seconds(LEASE_SECS);
    let lease = mail_queue::Entity::update_many()
        .col_expr(mail_queue::Column::NextAttemptAt, Expr::value(leased_until))
        .filter(mail_queue::Column::Id.eq(message.id))
        .filter(mail_queue::Column::SentAt.is_null())
        .filter(mail_queue::Column::NextAttemptAt.eq(message.next_attempt_at));
    let result = db.write(|txn| Box::pin(lease.exec(txn))).await?;
    Ok(result.rows_affected == 1)
}

fn build_message(from: &Mailbox, message: &mail_queue::Model) -> anyhow::Result<Message> {
    let to: Mailbox = message.to_address.parse().context("invalid recipient")?;
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&message.subject)
        .message_id(Some(message_id(from, message)));
    let built = match &message.body_html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            message.body_text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(message.body_text.clone())),
    };
    built.context("Failed to build the message")
}

/// The message's id (RFC 5322 §3.6.4): some providers refuse or mark as spam a message without
/// one, and a relay adds it only for senders of its own. The same on every attempt, so that a
/// server that took the message and whose answer was lost sees it again as the same message.
fn message_id(from: &Mailbox, message: &mail_queue::Model) -> String {
    format!(
        "<{}.{}@{}>",
        message.id,
        message.created_at.timestamp_micros(),
        from.email.domain()
    )
}

async fn record_outcome(
    db: &Db,
    settings: &MailSettings,
    message: &mail_queue::Model,
    outcome: anyhow::Result<()>,
) -> anyhow::Result<()> {
    let attempts = message.attempts + 1;
    let update = mail_queue::Entity::update_many()
        .filter(mail_queue::Column::Id.eq(message.id))
        .col_expr(mail_queue::Column::Attempts, Expr::value(attempts));
    let update = match outcome {
        Ok(()) => {
            tracing::info!(mail_id = message.id, attempts, "mail sent");
            forget_body(update).col_expr(mail_queue::Column::SentAt, Expr::value(Utc::now()))
        }
        Err(error) => {
            let error_text = format!("{error:#}");
            let update = update.col_expr(mail_queue::Column::LastError, Expr::value(error_text.clone()));
            if attempts >= settings.max_attempts {
                tracing::error!(mail_id = message.id, attempts, error = %error_text, "mail given up");
                forget_body(update).col_expr(mail_queue::Column::FailedAt, Expr::value(Utc::now()))
            } else {
                let delay = backoff_ms(settings.retry_base_ms, attempts);
                tracing::warn!(mail_id = message.id, attempts, retry_in_ms = delay, error = %error_text, "mail send failed");
                let next = Utc::now() + chrono::Duration::milliseconds(delay as i64);
                update.col_expr(mail_queue::Column::NextAttemptAt, Expr::value(next))
            }
        }
    };
    db.write(|txn| Box::pin(update.exec(txn))).await?;
    Ok(())
}

/// Blanks a message's body once it is sent or given up: bodies hold invitation and reset links,
/// which the database otherwise keeps only as hashes, so a copy of the database (a backup, a
/// read-only account) must not find them in clear. The row stays, with its subject and outcome.
fn forget_body(update: UpdateMany<mail_queue::Entity>) -> UpdateMany<mail_queue::Entity> {
    update
        .col_expr(mail_queue::Column::BodyText, Expr::value(""))
        .col_expr(mail_queue::Column::BodyHtml, Expr::value(Option::<String>::None))
}

/// Exponential backoff: base, 2×base, 4×base, … capped at an hour.
fn backoff_ms(base_ms: u64, attempts: i32) -> u64 {
    let exponent = (attempts.max(1) - 1).min(20) as u32;
    base_ms.saturating_mul(1u64 << exponent).min(MAX_BACKOFF_MS)
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_ms(1000, 1), 1000);
        assert_eq!(backoff_ms(1000, 2), 2000);
        assert_eq!(backoff_ms(1000, 4), 8000);
        assert_eq!(backoff_ms(1000, 30), 3_600_000);
    }
}
