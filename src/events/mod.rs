//! The event store: every change in the workspace is recorded as events, in the transaction of
//! the change, with a per-channel offset that follows commit order without gaps.

pub mod routes;
mod visibility;

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
    /// The resource, as its endpoint answers it. In a replay, an event about a document or a
    /// meeting the reader's committee no longer sees answers `{"redacted": true, "document_id"
    /// or "meeting_id": …}` instead.
    pub data: Value,
}

impl EventFrame {
    /// The member this event removes from its committee: a `membership.removed` in the
    /// committee's channel. Sockets end that member's subscription to the channel right after
    /// it, in offset order, so that nothing committed after the removal reaches them, whichever
    /// node committed it and whichever way it came (live, over the bus, replayed).
    pub fn removed_member(&self) -> Option<i32> {
        self.membership_change("membership.removed")
    }

    /// The member this event adds to its committee (`membership.added` in its channel): a
    /// removal before it in the same replay no longer ends the subscription.
    pub fn added_member(&self) -> Option<i32> {
        self.membership_change("membership.added")
    }

    fn membership_change(&self, kind: &str) -> Option<i32> {
        if self.kind != kind || !self.channel.starts_with("committee:") {
            return None;
        }
        self.data.get("member_id")?.as_i64()?.try_into().ok()
    }
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
    append_all(conn, PendingEvent::for_channels(channels, kind, actor_id, data)).await
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

/// Appends events in the order they were recorded. Each channel's offsets are taken at once,
/// channel by channel in [`Channel`] order (so that concurrent writers lock channel rows in one
/// order), and the events take them in order. A group-commit batch calls it last before its
/// commit, so channel rows stay locked for as short a time as possible.
pub async fn append_all(conn: &impl ConnectionTrait, pending: Vec<PendingEvent>) -> Result<Recorded, DbErr> {
    if pending.is_empty() {
        return Ok(Recorded::default());
    }
    let mut counts: BTreeMap<Channel, i64> = BTreeMap::new();
    for event in &pending {
        *counts.entry(event.channel).or_default() += 1;
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        let heads = append_postgres(conn, &counts, &pending).await?;
        return Ok(Recorded(numbered(pending, &counts, &heads)?));
    }
    let mut heads = HashMap::with_capacity(counts.len());
    for (channel, count) in &counts {
        heads.insert(*channel, take_offsets(conn, &channel.to_string(), *count).await?);
    }
    let frames = numbered(pending, &counts, &heads)?;
    event::Entity::insert_many(frames.iter().map(row_of))
        .exec_without_returning(conn)
        .await?;
    Ok(Recorded(frames))
}

/// Whether a transaction that appended `recorded` committed, when its commit's answer was lost:
/// its first event is stored as it was appended. (Its offset alone would not tell: had the
/// transaction rolled back, a later one would have taken the same offset for another event.)
/// False when it appended none: nothing to tell by.
pub async fn were_committed(conn: &impl ConnectionTrait, recorded: &Recorded) -> Result<bool, DbErr> {
    let Some(first) = recorded.0.first() else {
        return Ok(false);
    };
    let stored = event::Entity::find()
        .filter(event::Column::Channel.eq(&first.channel))
        .filter(event::Column::Offset.eq(first.offset))
        .one(conn)
        .await?;
    Ok(stored.is_some_and(|row| row.kind == first.kind && row.actor_id == first.actor_id && row.at == first.at))
}

/// The events with their offsets: a channel's `count` events end at its new `head`.
fn numbered(
    pending: Vec<PendingEvent>,
    counts: &BTreeMap<Channel, i64>,
    heads: &HashMap<Channel, i64>,
) -> Result<Vec<EventFrame>, DbErr> {
    let mut next_offset = HashMap::with_capacity(counts.len());
    for (channel, count) in counts {
        let head = heads
            .get(channel)
            .ok_or_else(|| DbErr::RecordNotFound(format!("the head of channel {channel}")))?;
        next_offset.insert(*channel, head - count + 1);
    }
    Ok(pending
        .into_iter()
        .map(|event| {
            let offset = next_offset.entry(event.channel).or_default();
            *offset += 1;
            event.into_frame(*offset - 1)
        })
        .collect())
}

/// PostgreSQL moves every channel's head and inserts every event in one statement: the channel
/// rows stay locked from here to the commit, and each round trip inside that window is one that
/// all the channel's other writers wait for. Returns each channel's new head.
async fn append_postgres(
    conn: &impl ConnectionTrait,
    counts: &BTreeMap<Channel, i64>,
    pending: &[PendingEvent],
) -> Result<HashMap<Channel, i64>, DbErr> {
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(counts.len() * 2 + pending.len() * 6);
    let mut param = |value: sea_orm::Value| {
        values.push(value);
        format!("${}", values.len())
    };
    // Rows are locked in the order of VALUES: `counts` is in Channel order.
    let channels: Vec<String> = counts
        .iter()
        .map(|(channel, count)| format!("({}, {})", param(channel.to_string().into()), param((*count).into())))
        .collect();
    // Each event's offset is its channel's new head less the events after it in that channel.
    let mut left = counts.clone();
    let events: Vec<String> = pending
        .iter()
        .map(|event| {
            let after = left.get_mut(&event.channel).map_or(0, |left| {
                *left -= 1;
                *left
            });
            format!(
                "({}::text, {}::int8, {}::text, {}::int4, {}::json, {}::timestamptz)",
                param(event.channel.to_string().into()),
                param(after.into()),
                param(event.kind.as_str().into()),
                param(event.actor_id.into()),
                param(event.data.clone().into()),
                param(event.at.into()),
            )
        })
        .collect();
    let sql = format!(
        "WITH heads AS (\
           INSERT INTO channels (name, head) VALUES {} \
           ON CONFLICT (name) DO UPDATE SET head = channels.head + excluded.head RETURNING name, head), \
         appended AS (\
           INSERT INTO events (channel, \"offset\", kind, actor_id, data, at) \
           SELECT e.channel, heads.head - e.after, e.kind, e.actor_id, e.data, e.at \
           FROM (VALUES {}) AS e(channel, after, kind, actor_id, data, at) \
           JOIN heads ON heads.name = e.channel) \
         SELECT name, head FROM heads",
        channels.join(", "),
        events.join(", "),
    );
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await?;
    let heads: HashMap<String, i64> = rows
        .iter()
        .map(|row| Ok((row.try_get::<String>("", "name")?, row.try_get::<i64>("", "head")?)))
        .collect::<Result<_, DbErr>>()?;
    counts
        .keys()
        .map(|channel| {
            let head = heads
                .get(&channel.to_string())
                .copied()
                .ok_or_else(|| DbErr::RecordNotFound(format!("the head of channel {channel}")))?;
            Ok((*channel, head))
        })
        .collect()
}

/// SQLite: moves `channel`'s head on by `count` (under the write lock); returns the new head.
async fn take_offsets(conn: &impl ConnectionTrait, channel: &str, count: i64) -> Result<i64, DbErr> {
    const SQL: &str = "INSERT INTO channels (name, head) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET head = channels.head + excluded.head RETURNING head";
    conn.query_one_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        SQL,
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
    // An offset the channel never reached (a client that kept offsets across a restore of the
    // database) cannot be resumed from: the client must reload, as after retention.
    if after > head {
        return Ok(Replay::Reset { head });
    }
    if after == head {
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
    let mut events: Vec<EventFrame> = events.into_iter().map(EventFrame::from).collect();
    match channel.parse() {
        Ok(Channel::Committee(committee_id)) => visibility::redact_unseen(conn, committee_id, &mut events).await?,
        Ok(Channel::Member(member_id)) => visibility::redact_unseen_by_member(conn, member_id, &mut events).await?,
        _ => {}
    }
    Ok(Replay::Events { events, head })
}

/// Deletes events older than `before`, and in each channel every event before the newest of
/// those; returns how many.
pub async fn prune(conn: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    // A channel loses a prefix of its offsets, never one from the middle: an event's time is
    // taken before its offset (two writers, two nodes' clocks), so a later offset may carry an
    // earlier time, and deleting by time alone could remove N+1 and keep N. A client resuming
    // from N-1 would then get N and miss N+1 without a reset (replay only checks the first).
    let oldest: Vec<(String, i64)> = event::Entity::find()
        .select_only()
        .column(event::Column::Channel)
        .column_as(event::Column::Offset.max(), "upto")
        .filter(event::Column::At.lt(before))
        .group_by(event::Column::Channel)
        .into_tuple()
        .all(conn)
        .await?;
    let mut removed = 0;
    for (channel, upto) in oldest {
        removed += event::Entity::delete_many()
            .filter(event::Column::Channel.eq(channel))
            .filter(event::Column::Offset.lte(upto))
            .exec(conn)
            .await?
            .rows_affected;
    }
    Ok(removed)
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
