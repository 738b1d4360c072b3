//! The event store: every change in the workspace is recorded as events, in the transaction of
//! the change, with a per-channel offset that follows commit order without gaps.

pub mod routes;

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use entity::{channel, event};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement,
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
    let mut channels = channels.to_vec();
    channels.sort();
    channels.dedup();
    // Microseconds, as both databases store it: the live frame and a replayed one are identical.
    let at = Utc::now().trunc_subsecs(6);
    let mut recorded = Vec::with_capacity(channels.len());
    for channel in channels {
        let name = channel.to_string();
        let frame = match conn.get_database_backend() {
            DbBackend::Postgres => append_postgres(conn, name, kind, actor_id, &data, at).await?,
            _ => append_sqlite(conn, name, kind, actor_id, &data, at).await?,
        };
        recorded.push(frame);
    }
    Ok(Recorded(recorded))
}

/// PostgreSQL takes the offset and appends the event in one statement: the channel's row stays
/// locked from here to the commit, and every round trip inside that window is one that all the
/// channel's other writers wait for.
async fn append_postgres(
    conn: &impl ConnectionTrait,
    channel: String,
    kind: &str,
    actor_id: Option<i32>,
    data: &Value,
    at: DateTime<Utc>,
) -> Result<EventFrame, DbErr> {
    const SQL: &str = "WITH bumped AS (\
           INSERT INTO channels (name, head) VALUES ($1, 1) \
           ON CONFLICT (name) DO UPDATE SET head = channels.head + 1 RETURNING head) \
         INSERT INTO events (channel, \"offset\", kind, actor_id, data, at) \
         SELECT $1, head, $2, $3, $4, $5 FROM bumped RETURNING \"offset\"";
    let values: [sea_orm::Value; 5] = [
        channel.clone().into(),
        kind.into(),
        actor_id.into(),
        data.clone().into(),
        at.into(),
    ];
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, SQL, values))
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?;
    Ok(EventFrame {
        type_: FrameType::Event,
        offset: row.try_get::<i64>("", "offset")?,
        channel,
        kind: kind.to_owned(),
        actor_id,
        at,
        data: data.clone(),
    })
}

/// SQLite takes the offset, creating the channel's row with its first event, then appends the
/// event; its write lock, held until the transaction ends, keeps offsets in commit order.
async fn append_sqlite(
    conn: &impl ConnectionTrait,
    channel: String,
    kind: &str,
    actor_id: Option<i32>,
    data: &Value,
    at: DateTime<Utc>,
) -> Result<EventFrame, DbErr> {
    const NEXT_OFFSET: &str = "INSERT INTO channels (name, head) VALUES (?, 1) \
         ON CONFLICT (name) DO UPDATE SET head = channels.head + 1 RETURNING head";
    let offset = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            NEXT_OFFSET,
            [channel.as_str().into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("channel {channel}")))?
        .try_get::<i64>("", "head")?;
    let row = event::ActiveModel {
        channel: Set(channel),
        offset: Set(offset),
        kind: Set(kind.to_owned()),
        actor_id: Set(actor_id),
        data: Set(data.clone()),
        at: Set(at),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(EventFrame::from(row))
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
