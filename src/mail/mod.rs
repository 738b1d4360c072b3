//! Outgoing mail: written to the `mail_queue` table inside the transaction that causes it, then
//! delivered by the [`Mailer`] actor, which retries with backoff and survives restarts.

mod mailer;
pub mod templates;

use chrono::Utc;
use entity::mail_queue;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};

pub use mailer::{Mailer, Wake};
pub use templates::RenderedMail;

/// The longest subject `mail_queue` keeps (characters). Subjects quote titles of up to 300
/// characters after a prefix, so they are cut here rather than refused by PostgreSQL.
const SUBJECT_MAX: usize = 300;

/// Queues `mail` for `to`; call inside the transaction of the change, then wake the mailer
/// after commit.
pub async fn enqueue(conn: &impl ConnectionTrait, to: &str, mail: RenderedMail) -> Result<(), DbErr> {
    enqueue_all(conn, [(to.to_owned(), mail)]).await
}

/// [`enqueue`] for many messages, in one statement: a meeting's invitees can be hundreds, and
/// their mail is written while the meeting's row is locked.
pub async fn enqueue_all(
    conn: &impl ConnectionTrait,
    mails: impl IntoIterator<Item = (String, RenderedMail)>,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let rows: Vec<mail_queue::ActiveModel> = mails
        .into_iter()
        .map(|(to, mail)| mail_queue::ActiveModel {
            to_address: Set(to),
            subject: Set(bounded_subject(mail.subject)),
            body_text: Set(mail.text),
            body_html: Set(Some(mail.html)),
            attempts: Set(0),
            next_attempt_at: Set(now),
            created_at: Set(now),
            ..Default::default()
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    mail_queue::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// `subject`, cut to [`SUBJECT_MAX`] characters with an ellipsis when longer.
fn bounded_subject(subject: String) -> String {
    if subject.chars().count() <= SUBJECT_MAX {
        return subject;
    }
    let mut cut: String = subject.chars().take(SUBJECT_MAX - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_cut_to_what_the_queue_keeps_counting_characters_not_bytes() {
        let long = format!("Reminder: {}", "é".repeat(300));
        let cut = bounded_subject(long.clone());
        assert_eq!(cut.chars().count(), SUBJECT_MAX);
        assert!(cut.ends_with('…') && long.starts_with(cut.trim_end_matches('…')));
        let exact = "x".repeat(SUBJECT_MAX);
        assert_eq!(bounded_subject(exact.clone()), exact);
    }
}
