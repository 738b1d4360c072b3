//! The event store: every change in the workspace is recorded as events, in the transaction of
//! the change, with a per-channel offset that follows commit order without gaps.

pub mod routes;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use entity::{channel, event};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an event is delivered: everything a committee sees, one member's personal feed, or
/// the public area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Committee(i32),
    Member(i32),
    Public,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Channel::Committee(id) => write!(f, "committee:{id}"),
            Channel::Member(id) => write!(f, "member:{id}"),
            Channel::Public => f.write_str("public"),
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let parse_id = |id: &str| {
            // Canonical decimal only, so one channel has one name.
            let canonical = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && !id.starts_with('0');
            id.parse::<i32>().ok().filter(|_| canonical).ok_or(())
        };
        match text.split_once(':') {
            Some(("committee", id)) => parse_id(id).map(Channel::Committee),
            Some(("member", id)) => parse_id(id).map(Channel::Member),
            None if text == "public" => Ok(Channel::Public),
            _ => Err(()),
        }
    }
}

/// The `type` of an event frame: always `"event"`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, utoipa::ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FrameType {
    Event,
}

/// An event as clients receive it; built once per event and shared by every recipient.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventFrame {
    #[serde(rename = "type")]
    pub type_: FrameType,
    pub channel: String,
    pub offset: i64,
    pub kind: String,
    pub actor_id: Option<i32>,
    pub at: DateTime<Utc>,
    pub data: Value,
}

impl From<event::Model> for EventFrame {
    fn from(row: event::Model) -> Self {
        EventFrame {
            type_: FrameType::Event,
            channel: row.channel,
            offset: row.offset,
            kind: row.kind,
            actor_id: row.actor_id,
            at: row.at,
            data: row.data,
        }
    }
}

/// Events recorded by a transaction, to hand to the broker once it has committed.
#[must_use = "recorded events must be published after the commit"]
#[derive(Debug, Default)]
pub struct Recorded(pub Vec<EventFrame>);

impl Recorded {
    pub fn extend(&mut self, other: Recorded) {
        self.0.extend(other.0);
    }
}

/// Appends one event of `kind` to each of `channels`, inside the caller's transaction.
///
/// The offset is the channel's `head` plus one, taken with an upsert on `channels`: the row lock
/// it takes (PostgreSQL) or the write lock (SQLite) is held until commit, so a concurrent
/// transaction on the same channel waits, and offsets follow commit order with no gap.
pub async fn record(
    conn: &impl ConnectionTrait,
    channels: &[Channel],
    kind: &str,
    actor_id: Option<i32>,
    data: Value,
) -> Result<Recorded, DbErr> {
    let events = PendingEvent::for_channels(channels, kind, actor_id, data);
    if conn.get_database_backend() != DbBackend::Postgres {
        // SQLite's write lock, held until the transaction ends, keeps offsets in commit order.
        return append_all(conn, events).await;
    }
    let mut recorded = Vec::with_capacity(events.len());
    for event in events {
        recorded.push(append_postgres(conn, event).await?);
    }
    Ok(Recorded(recorded))
}

/// PostgreSQL takes the offset and appends the event in one statement: the channel's row stays
/// locked from here to the commit, and every round trip inside that window is one that all the
/// channel's other writers wait for.
async fn append_postgres(conn: &impl ConnectionTrait, event: PendingEvent) -> Result<EventFrame, DbErr> {
    const SQL: &str = "WITH bumped AS (\
           INSERT INTO channels (name, head) VALUES ($1, 1) \
           ON CONFLICT (name) DO UPDATE SET head = channels.head + 1 RETURNING head) \
         INSERT INTO events (channel, \"offset\", kind, actor_id, data, at) \
         SELECT $1, head, $2, $3, $4, $5 FROM bumped RETURNING \"offset\"";
    let values: [sea_orm::Value; 5] = [
        event.channel.to_string().into(),
        event.kind.as_str().into(),
        event.actor_id.into(),
        event.data.clone().into(),
        event.at.into(),
    ];
    let offset = conn
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, SQL, values))
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?
        .try_get::<i64>("", "offset")?;
    Ok(event.into_frame(offset))
}

/// An event recorded in a group-commit batch, waiting for its offset.
#[derive(Debug)]
pub struct PendingEvent {
    channel: Channel,
    kind: String,
    actor_id: Option<i32>,
    data: Value,
    at: DateTime<Utc>,
}

impl PendingEvent {
    /// One event of `kind` for each of `channels`, as [`record`] would append them.
    pub fn for_channels(channels: &[Channel], kind: &str, actor_id: Option<i32>, data: Value) -> Vec<Self> {
        let mut channels = channels.to_vec();
        channels.sort();
        channels.dedup();
        let at = Utc::now().trunc_subsecs(6);
        channels
            .into_iter()
            .map(|channel| PendingEvent {
                channel,
                kind: kind.to_owned(),
                actor_id,
                data: data.clone(),
                at,
            })
            .collect()
    }

    fn into_frame(self, offset: i64) -> EventFrame {
        EventFrame {
            type_: FrameType::Event,
            channel: self.channel.to_string(),
            offset,
            kind: self.kind,
            actor_id: self.actor_id,
            at: self.at,
            data: self.data,
        }
    }
}

fn row_of(frame: &EventFrame) -> event::ActiveModel {
    event::ActiveModel {
        channel: Set(frame.channel.clone()),
        offset: Set(frame.offset),
        kind: Set(frame.kind.clone()),
        actor_id: Set(frame.actor_id),
        data: Set(frame.data.clone()),
        at: Set(frame.at),
        ..Default::default()
    }
}

/// Appends events in the order they were recorded: each channel's offsets are taken at once
/// (one upsert per channel, in [`Channel`] order, as [`record`] takes them on PostgreSQL, so
/// that concurrent writers lock channel rows in one order), then every event goes in with one
/// insert. A group-commit batch calls it last before its commit, so channel rows stay locked
/// for as short a time as possible.
pub async fn append_all(conn: &impl ConnectionTrait, pending: Vec<PendingEvent>) -> Result<Recorded, DbErr> {
    let mut counts: BTreeMap<Channel, i64> = BTreeMap::new();
    for event in &pending {
        *counts.entry(event.channel).or_default() += 1;
    }
    let mut next_offset = HashMap::with_capacity(counts.len());
    for (channel, count) in counts {
        let head = take_offsets(conn, &channel.to_string(), count).await?;
        next_offset.insert(channel, head - count + 1);
    }
    let frames: Vec<EventFrame> = pending
        .into_iter()
        .map(|event| {
            let offset = next_offset.get_mut(&event.channel).expect("counted above");
            *offset += 1;
            event.into_frame(*offset - 1)
        })
        .collect();
    let rows = frames.iter().map(row_of);
    event::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(Recorded(frames))
}

/// Moves `channel`'s head on by `count` under its row lock; returns the new head.
async fn take_offsets(conn: &impl ConnectionTrait, channel: &str, count: i64) -> Result<i64, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO channels (name, head) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET head = channels.head + excluded.head RETURNING head"
        }
        _ => {
            "INSERT INTO channels (name, head) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET head = channels.head + excluded.head RETURNING head"
        }
    };
    conn.query_one_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [channel.into(), count.into()],
    ))
    .await?
    .ok_or_else(|| DbErr::RecordNotFound(format!("channel {channel}")))?
    .try_get::<i64>("", "head")
}

/// The last offset handed out on `channel` (0 when nothing was ever recorded).
pub async fn head(conn: &impl ConnectionTrait, channel: &str) -> Result<i64, DbErr> {
    Ok(channel::Entity::find_by_id(channel.to_owned())
        .one(conn)
        .await?
        .map_or(0, |row| row.head))
}

/// What a client that saw `after` gets next: up to `limit` events, or a reset when events it
/// missed have already been deleted by retention.
pub enum Replay {
    Events { events: Vec<EventFrame>, head: i64 },
    Reset { head: i64 },
}

pub async fn replay(conn: &impl ConnectionTrait, channel: &str, after: i64, limit: u64) -> Result<Replay, DbErr> {
    let head = head(conn, channel).await?;
    if after >= head {
        return Ok(Replay::Events {
            events: Vec::new(),
            head,
        });
    }
    let events = event::Entity::find()
        .filter(event::Column::Channel.eq(channel))
        .filter(event::Column::Offset.gt(after))
        .order_by_asc(event::Column::Offset)
        .limit(limit)
        .all(conn)
        .await?;
    // Offsets have no gaps, so a first event past `after + 1` means the missing ones were pruned.
    if events.first().is_none_or(|first| first.offset != after + 1) {
        return Ok(Replay::Reset { head });
    }
    Ok(Replay::Events {
        events: events.into_iter().map(EventFrame::from).collect(),
        head,
    })
}

/// Deletes events older than `before`; returns how many.
pub async fn prune(conn: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let result = event::Entity::delete_many()
        .filter(event::Column::At.lt(before))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use super::Channel;

    #[test]
    fn channel_names_round_trip_and_reject_garbage() {
        for channel in [Channel::Committee(3), Channel::Member(7), Channel::Public] {
            assert_eq!(channel.to_string().parse::<Channel>(), Ok(channel));
        }
        for bad in [
            "",
            "committee:",
            "committee:x",
            "committee:-1",
            "committee:0",
            "member:+4",
            "tasks:1",
            "public:1",
        ] {
            assert!(bad.parse::<Channel>().is_err(), "{bad}");
        }
    }
}
