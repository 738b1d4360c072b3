//! Outgoing mail: written to the `mail_queue` table inside the transaction that causes it, then
//! delivered by the [`Mailer`] actor, which retries with backoff and survives restarts.

mod mailer;
pub mod templates;

use chrono::Utc;
use entity::mail_queue;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

pub use mailer::{Mailer, Wake};
pub use templates::RenderedMail;

/// Queues `mail` for `to`; call inside the transaction of the change, then wake the mailer
/// after commit.
pub async fn enqueue(conn: &impl ConnectionTrait, to: &str, mail: RenderedMail) -> Result<(), DbErr> {
    let now = Utc::now();
    mail_queue::ActiveModel {
        to_address: Set(to.to_owned()),
        subject: Set(mail.subject),
        body_text: Set(mail.text),
        body_html: Set(Some(mail.html)),
        attempts: Set(0),
        next_attempt_at: Set(now),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}
