//! What a committee's channel, or a member's, replays of things they no longer see.
//!
//! A document shared with a committee, and a meeting it is invited to, emit into its channel
//! while the share or the invitation lasts. Once it ends, live delivery stops at once; but the
//! events stay in the channel (retention), and DESIGN.md's rule 5 filters events by what the
//! member may see at the moment of delivery, a replay included. So a replayed event about a
//! document or meeting the committee can no longer see keeps its place (offsets stay gap-free,
//! which resuming relies on) and loses its content: `data` becomes `{"redacted": true}` with
//! the document's or meeting's id, and the actor is dropped. A member's own channel likewise
//! redacts the tasks they were given in a committee they have since left. Both fail closed: an
//! event of a kind without a rule here is replayed as `{"redacted": true}`.

use std::collections::BTreeSet;

use entity::{committee_membership, document, document_share, meeting, meeting_committee, member};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};

use super::EventFrame;
use crate::domain::Role;

/// What an event is about, read from its kind and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Document(i32),
    Meeting(i32),
}

/// What a replay must know of an event to show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    /// The committee's own news (itself, its members, its tasks, the end of a share or an
    /// invitation): shown as it is.
    Own,
    /// About a document or a meeting: shown while the committee sees it.
    About(Subject),
    /// A kind without a rule here: redacted whole, so that a kind added later shows nothing
    /// until its rule is written, rather than too much.
    Unknown,
}

fn reading_of(kind: &str, data: &Value) -> Reading {
    let id = |key: &str| data.get(key)?.as_i64().and_then(|id| i32::try_from(id).ok());
    let about = |subject: Option<Subject>| subject.map_or(Reading::Unknown, Reading::About);
    match kind.split_once('.').map_or(kind, |(resource, _)| resource) {
        // The committee's own news that the share or invitation ended: it says no more than that.
        _ if kind == "document.unshared" || kind == "meeting.uninvited" => Reading::Own,
        "committee" | "membership" | "task" => Reading::Own,
        // A publication's events (`document.published` among them) carry it as `document_id`.
        "document" | "publication" => about(id("document_id").or_else(|| id("id")).map(Subject::Document)),
        "meeting" => about(id("id").or_else(|| id("meeting_id")).map(Subject::Meeting)),
        "agenda" | "agenda_item" | "attendance" => about(id("meeting_id").map(Subject::Meeting)),
        _ => Reading::Unknown,
    }
}

/// Redacts, in events replayed from `committee_id`'s channel, those about a document or a
/// meeting the committee no longer sees (neither owns nor is shared or invited to), and those
/// of a kind it has no rule for.
pub async fn redact_unseen(
    conn: &impl ConnectionTrait,
    committee_id: i32,
    frames: &mut [EventFrame],
) -> Result<(), DbErr> {
    let readings: Vec<Reading> = frames
        .iter()
        .map(|frame| reading_of(&frame.kind, &frame.data))
        .collect();
    let subjects = readings.iter().filter_map(|reading| match reading {
        Reading::About(subject) => Some(*subject),
        _ => None,
    });
    let seen = seen_subjects(conn, committee_id, subjects).await?;
    for (frame, reading) in frames.iter_mut().zip(readings) {
        // The id stays, so that a client can drop what it kept of the thing.
        frame.data = match reading {
            Reading::Own => continue,
            Reading::About(subject) if seen.contains(&subject) => continue,
            Reading::About(Subject::Document(id)) => json!({ "redacted": true, "document_id": id }),
            Reading::About(Subject::Meeting(id)) => json!({ "redacted": true, "meeting_id": id }),
            Reading::Unknown => json!({ "redacted": true }),
        };
        frame.actor_id = None;
    }
    Ok(())
}

/// Redacts, in events replayed from `member_id`'s own channel, the tasks of committees the
/// member no longer belongs to (the secretariat sees every committee).
pub async fn redact_unseen_by_member(
    conn: &impl ConnectionTrait,
    member_id: i32,
    frames: &mut [EventFrame],
) -> Result<(), DbErr> {
    let committee_of = |frame: &EventFrame| {
        (frame.kind.starts_with("task."))
            .then(|| frame.data.get("committee_id")?.as_i64())
            .flatten()
            .and_then(|id| i32::try_from(id).ok())
    };
    // A member's channel carries their memberships and the tasks they are given; any other
    // kind has no rule here and is redacted whole (see `Reading::Unknown`).
    for frame in frames.iter_mut() {
        if !frame.kind.starts_with("task.") && !frame.kind.starts_with("membership.") {
            frame.data = json!({ "redacted": true });
            frame.actor_id = None;
        }
    }
    let committees: BTreeSet<i32> = frames.iter().filter_map(committee_of).collect();
    if committees.is_empty() {
        return Ok(());
    }
    let secretariat = member::Entity::find_by_id(member_id)
        .filter(member::Column::Role.eq(Role::Secretariat.as_str()))
        .one(conn)
        .await?
        .is_some();
    if secretariat {
        return Ok(());
    }
    let memberships = committee_membership::Entity::find()
        .select_only()
        .column(committee_membership::Column::CommitteeId)
        .filter(committee_membership::Column::MemberId.eq(member_id))
        .filter(committee_membership::Column::CommitteeId.is_in(committees));
    let belongs: BTreeSet<i32> = ids(conn, memberships).await?.collect();
    for frame in frames.iter_mut() {
        if committee_of(frame).is_some_and(|committee| !belongs.contains(&committee)) {
            frame.data = json!({ "redacted": true, "task_id": frame.data.get("id") });
            frame.actor_id = None;
        }
    }
    Ok(())
}

/// Of `subjects`, those `committee_id` sees: documents it owns or has a share of, meetings it
/// owns or is invited to.
async fn seen_subjects(
    conn: &impl ConnectionTrait,
    committee_id: i32,
    subjects: impl Iterator<Item = Subject>,
) -> Result<BTreeSet<Subject>, DbErr> {
    let (mut documents, mut meetings) = (BTreeSet::new(), BTreeSet::new());
    for subject in subjects {
        match subject {
            Subject::Document(id) => documents.insert(id),
            Subject::Meeting(id) => meetings.insert(id),
        };
    }
    let mut seen = BTreeSet::new();
    if !documents.is_empty() {
        let owned = document::Entity::find()
            .select_only()
            .column(document::Column::Id)
            .filter(document::Column::Id.is_in(documents.clone()))
            .filter(document::Column::CommitteeId.eq(committee_id));
        let shared = document_share::Entity::find()
            .select_only()
            .column(document_share::Column::DocumentId)
            .filter(document_share::Column::DocumentId.is_in(documents))
            .filter(document_share::Column::CommitteeId.eq(committee_id));
        seen.extend(
            ids(conn, owned)
                .await?
                .chain(ids(conn, shared).await?)
                .map(Subject::Document),
        );
    }
    if !meetings.is_empty() {
        let owned = meeting::Entity::find()
            .select_only()
            .column(meeting::Column::Id)
            .filter(meeting::Column::Id.is_in(meetings.clone()))
            .filter(meeting::Column::CommitteeId.eq(committee_id));
        let invited = meeting_committee::Entity::find()
            .select_only()
            .column(meeting_committee::Column::MeetingId)
            .filter(meeting_committee::Column::MeetingId.is_in(meetings))
            .filter(meeting_committee::Column::CommitteeId.eq(committee_id));
        seen.extend(
            ids(conn, owned)
                .await?
                .chain(ids(conn, invited).await?)
                .map(Subject::Meeting),
        );
    }
    Ok(seen)
}

/// The ids a query selecting one integer column answers.
async fn ids<E: EntityTrait>(
    conn: &impl ConnectionTrait,
    query: sea_orm::Select<E>,
) -> Result<impl Iterator<Item = i32>, DbErr> {
    Ok(query.into_tuple::<i32>().all(conn).await?.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_about_the_document_or_meeting_its_payload_names_or_unknown() {
        let reading = |kind: &str, data: Value| reading_of(kind, &data);
        let document = |id| Reading::About(Subject::Document(id));
        let meeting = |id| Reading::About(Subject::Meeting(id));
        assert_eq!(
            reading("document.updated", json!({ "id": 4, "committee_id": 1 })),
            document(4)
        );
        assert_eq!(
            reading("document.published", json!({ "id": 9, "document_id": 4 })),
            document(4)
        );
        assert_eq!(
            reading("publication.withdrawn", json!({ "id": 9, "document_id": 4 })),
            document(4)
        );
        assert_eq!(
            reading("document.unshared", json!({ "id": 4, "committee_id": 2 })),
            Reading::Own
        );
        assert_eq!(reading("meeting.updated", json!({ "id": 7 })), meeting(7));
        assert_eq!(reading("meeting.live", json!({ "meeting_id": 7 })), meeting(7));
        assert_eq!(
            reading("meeting.uninvited", json!({ "meeting_id": 7, "committee_id": 2 })),
            Reading::Own
        );
        assert_eq!(
            reading("agenda_item.deleted", json!({ "id": 3, "meeting_id": 7 })),
            meeting(7)
        );
        assert_eq!(
            reading("attendance.updated", json!({ "meeting_id": 7, "member_id": 2 })),
            meeting(7)
        );
        assert_eq!(reading("task.created", json!({ "id": 5 })), Reading::Own);
        assert_eq!(reading("committee.updated", json!({ "id": 1 })), Reading::Own);
        assert_eq!(reading("membership.removed", json!({ "member_id": 3 })), Reading::Own);
        // Fails closed: a kind without a rule, or a document event without its id.
        assert_eq!(reading("indicator.validated", json!({ "id": 1 })), Reading::Unknown);
        assert_eq!(reading("document.updated", json!({ "title": "x" })), Reading::Unknown);
    }
}
