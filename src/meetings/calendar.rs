//! iCalendar (RFC 5545) for meetings: one meeting, or a member's personal feed behind a
//! revocable token (calendar clients cannot send an Authorization header).
//!
//! Times are written in UTC (`DTSTART:…Z`), which every client resolves exactly, DST included;
//! the meeting's IANA zone travels in `X-WR-TIMEZONE` and in each event's `X-DCPORTS-TIMEZONE`
//! so clients can show it. (The iCalendar crate cannot render a valid VTIMEZONE block, and a
//! hand-written one would be string concatenation.)

use chrono::Utc;
use entity::{calendar_feed, meeting, member};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus, Property};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::dto::MeetingStatus;
use crate::auth::tokens::{OpaqueKind, hash_opaque_of_kind, new_opaque};
use crate::domain::as_one_line;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The calendar of `meetings`, as served with `text/calendar`.
///
/// The iCalendar crate writes the calendar's name as it is and escapes a line feed but not a
/// carriage return in text: a control character there would end the property and let the text
/// add lines of its own, a forged event among them. Input validation refuses them in titles and
/// places; `as_one_line` guards what was stored before.
pub fn render(name: &str, meetings: &[meeting::Model], public_url: &url::Url) -> String {
    // Empty, not `new()`: that one comes with the crate's own PRODID, and RFC 5545 allows one.
    let mut calendar = Calendar::empty();
    calendar.append_property(Property::new("VERSION", "2.0"));
    calendar.append_property(Property::new("PRODID", "-//SELA//dcports//EN"));
    calendar.append_property(Property::new("CALSCALE", "GREGORIAN"));
    // The crate escapes only the properties it knows as text, and not these two.
    calendar.name(&escape_text(&as_one_line(name)));
    if let [only] = meetings {
        calendar.append_property(Property::new("X-WR-TIMEZONE", &only.timezone));
    }
    for meeting in meetings {
        calendar.push(event(meeting, public_url));
    }
    calendar.done().to_string()
}

/// A description keeps its line breaks, as line feeds, which the crate escapes; other control
/// characters become spaces.
fn line_breaks_as_lf(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\n' => '\n',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

fn event(meeting: &meeting::Model, public_url: &url::Url) -> Event {
    let mut event = Event::new();
    event
        // Stable across updates: clients match changes to the event they already have.
        .uid(&format!("{}@dcports", meeting.uid))
        .sequence(meeting.sequence.max(0) as u32)
        .timestamp(meeting.updated_at)
        .summary(&as_one_line(&meeting.title))
        .starts(meeting.starts_at)
        .ends(meeting.ends_at)
        .url(&format!("{public_url}meetings/{}", meeting.id))
        .append_property(Property::new("X-DCPORTS-TIMEZONE", &meeting.timezone));
    if !meeting.description.is_empty() {
        event.description(&line_breaks_as_lf(&meeting.description));
    }
    let place = [meeting.location.as_deref(), meeting.online_url.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
    if !place.is_empty() {
        event.location(&as_one_line(&place));
    }
    let status = match MeetingStatus::from_db(&meeting.status) {
        Ok(MeetingStatus::Cancelled) => EventStatus::Cancelled,
        Ok(MeetingStatus::Draft) => EventStatus::Tentative,
        _ => EventStatus::Confirmed,
    };
    event.status(status);
    event.done()
}

/// Creates (or replaces) the member's feed token; the old feed URL stops working.
pub async fn issue_feed_token(state: &AppState, member: &member::Model) -> ApiResult<String> {
    let (token, hash) = new_opaque(OpaqueKind::CalendarFeed);
    // One statement that replaces the member's row: a delete and an insert would let two
    // requests at once both delete, then collide on the insert.
    let replace = calendar_feed::Entity::insert(calendar_feed::ActiveModel {
        member_id: Set(member.id),
        token_hash: Set(hash),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(calendar_feed::Column::MemberId)
            .update_columns([calendar_feed::Column::TokenHash, calendar_feed::Column::CreatedAt])
            .to_owned(),
    );
    state.db.write(|txn| Box::pin(replace.exec(txn))).await?;
    Ok(token)
}

pub async fn revoke_feed_token(state: &AppState, member: &member::Model) -> ApiResult<()> {
    let revoke = calendar_feed::Entity::delete_by_id(member.id);
    state.db.write(|txn| Box::pin(revoke.exec(txn))).await?;
    Ok(())
}

/// The active member a feed token belongs to; 404 for anything else (the URL is the secret).
pub async fn feed_owner(state: &AppState, token: &str) -> ApiResult<member::Model> {
    let hash = hash_opaque_of_kind(OpaqueKind::CalendarFeed, token).ok_or(ApiError::NotFound)?;
    let feed = calendar_feed::Entity::find()
        .filter(calendar_feed::Column::TokenHash.eq(hash))
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)?;
    crate::auth::extract::member_by_id(state, feed.member_id)
        .await
        .map_err(|_| ApiError::NotFound)
}

/// A TEXT value escaped as RFC 5545 §3.3.11 has it (line breaks are gone already).
fn escape_text(text: &str) -> String {
    text.replace('\\', "\\\\").replace(',', "\\,").replace(';', "\\;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_calendar_names_one_product_ours_one_version_and_one_scale() {
        let text = super::render("Comité técnico", &[], &"http://localhost:8080".parse().unwrap());
        let lines = |name: &str| {
            let prefix = format!("{name}:");
            text.lines()
                .filter(|line| line.starts_with(&prefix))
                .collect::<Vec<_>>()
        };
        assert_eq!(lines("PRODID"), ["PRODID:-//SELA//dcports//EN"], "{text}");
        assert_eq!(lines("VERSION"), ["VERSION:2.0"], "{text}");
        assert_eq!(lines("CALSCALE"), ["CALSCALE:GREGORIAN"], "{text}");
    }

    /// The calendar's name is text: a semicolon, a comma or a backslash in it is escaped (once),
    /// or a strict reader takes the rest for another value.
    #[test]
    fn a_calendar_name_is_escaped_as_text() {
        let text = super::render(
            r"Comité; sesión 3, Lima \ Callao",
            &[],
            &"http://localhost:8080".parse().unwrap(),
        );
        for name in ["NAME", "X-WR-CALNAME"] {
            let expected = format!(r"{name}:Comité\; sesión 3\, Lima \\ Callao");
            assert!(text.lines().any(|line| line == expected), "{expected}\n{text}");
        }
    }
}
