//! Live meeting mode: the chair moves through the agenda; the server keeps the actual time of
//! every item and tells everyone the same clock.

use chrono::{DateTime, Utc};
use entity::{agenda_item, meeting, member};
use sea_orm::{ActiveModelTrait, ConnectionTrait, IntoActiveModel, Set};
use serde_json::json;

use super::dto::{LiveState, MeetingStatus};
use super::service::{emit_seen, items_of};
use crate::error::{ApiError, ApiResult};
use crate::realtime;
use crate::state::AppState;

/// What the chair asks of the live meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Start,
    Next,
    Previous,
    Pause,
    Resume,
    End,
}

impl std::str::FromStr for Command {
    type Err = ApiError;

    fn from_str(text: &str) -> Result<Self, ApiError> {
        Ok(match text {
            "start" => Command::Start,
            "next" => Command::Next,
            "previous" => Command::Previous,
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "end" => Command::End,
            _ => return Err(ApiError::NotFound),
        })
    }
}

fn conflict(message: &str) -> ApiError {
    ApiError::Conflict(message.to_owned())
}

/// Seconds spent on the current item so far (pauses excluded).
fn running_seconds(meeting: &meeting::Model, now: DateTime<Utc>) -> i64 {
    match meeting.live_item_started_at {
        Some(started) => (meeting.live_paused_at.unwrap_or(now) - started).num_seconds().max(0),
        None => 0,
    }
}

/// The shared clock at `now`.
pub fn state_at(meeting: &meeting::Model, items: &[agenda_item::Model], now: DateTime<Utc>) -> LiveState {
    let current = meeting
        .live_item_id
        .and_then(|id| items.iter().find(|item| item.id == id));
    let elapsed = current.map_or(0, |item| i64::from(item.actual_seconds) + running_seconds(meeting, now));
    let planned_current = current.map_or(0, |item| i64::from(item.duration_minutes) * 60);
    let top: Vec<&agenda_item::Model> = items.iter().filter(|item| item.parent_id.is_none()).collect();
    let before: Vec<&&agenda_item::Model> = match current {
        Some(current) => top.iter().take_while(|item| item.id != current.id).collect(),
        None => top.iter().filter(|item| item.actual_seconds > 0).collect(),
    };
    let late_start = meeting
        .live_started_at
        .map_or(0, |started| (started - meeting.starts_at).num_seconds());
    let earlier_overrun: i64 = before
        .iter()
        .map(|item| i64::from(item.actual_seconds) - i64::from(item.duration_minutes) * 60)
        .sum();
    LiveState {
        meeting_id: meeting.id,
        status: meeting.status.clone(),
        current_item_id: current.map(|item| item.id),
        item_started_at: meeting.live_item_started_at,
        elapsed_s: elapsed,
        remaining_s: planned_current - elapsed,
        drift_s: late_start + earlier_overrun + (elapsed - planned_current).max(0),
        paused: meeting.live_paused_at.is_some(),
    }
}

pub async fn current(conn: &impl ConnectionTrait, meeting: &meeting::Model) -> ApiResult<LiveState> {
    let items = items_of(conn, meeting.id).await?;
    Ok(state_at(meeting, &items, Utc::now()))
}

/// Adds the current item's running time to its total, when leaving it.
async fn bank_current(
    conn: &impl ConnectionTrait,
    meeting: &meeting::Model,
    items: &[agenda_item::Model],
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let Some(item) = meeting
        .live_item_id
        .and_then(|id| items.iter().find(|item| item.id == id))
    else {
        return Ok(());
    };
    let mut active = item.clone().into_active_model();
    active.actual_seconds = Set(item.actual_seconds + running_seconds(meeting, now) as i32);
    if item.actual_started_at.is_none() {
        active.actual_started_at = Set(meeting.live_item_started_at);
    }
    active.update(conn).await?;
    Ok(())
}

/// Applies a command and broadcasts the new clock as `meeting.live` to every invited committee.
#[tracing::instrument(skip_all, fields(caller = caller.id, meeting_id, command = ?command))]
pub async fn apply(
    state: &AppState,
    caller: &member::Model,
    meeting_id: i32,
    command: Command,
) -> ApiResult<LiveState> {
    let txn = state.db.begin_write().await?;
    // Locked: a live command reads the meeting's state and moves it on (db::lock_row).
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let (meeting, access) = super::service::access(&*txn, caller, meeting_id).await?;
    access.require_manage()?;
    let before = super::service::public_view(&meeting);
    let items = items_of(&*txn, meeting_id).await?;
    let top: Vec<&agenda_item::Model> = items.iter().filter(|item| item.parent_id.is_none()).collect();
    let now = Utc::now();
    let status = MeetingStatus::from_db(&meeting.status)?;
    let running = status == MeetingStatus::InProgress && meeting.live_item_id.is_some();
    let position = meeting
        .live_item_id
        .and_then(|id| top.iter().position(|item| item.id == id));
    let mut active = meeting.clone().into_active_model();
    match command {
        Command::Start => {
            if !matches!(status, MeetingStatus::Draft | MeetingStatus::Scheduled) {
                return Err(conflict("only a draft or scheduled meeting can start"));
            }
            let first = top
                .first()
                .ok_or_else(|| ApiError::unprocessable("agenda_empty", "the agenda has no items"))?;
            active.status = Set(MeetingStatus::InProgress.as_str().to_owned());
            active.live_started_at = Set(Some(now));
            active.live_item_id = Set(Some(first.id));
            active.live_item_started_at = Set(Some(now));
            active.live_paused_at = Set(None);
        }
        Command::Next | Command::Previous => {
            if !running {
                return Err(conflict("the meeting is not live"));
            }
            let position = position.unwrap_or(0);
            let target = match command {
                Command::Next => top.get(position + 1),
                _ => position.checked_sub(1).and_then(|p| top.get(p)),
            }
            .ok_or_else(|| conflict("there is no item in that direction"))?;
            bank_current(&*txn, &meeting, &items, now).await?;
            active.live_item_id = Set(Some(target.id));
            active.live_item_started_at = Set(Some(now));
            active.live_paused_at = Set(None);
        }
        Command::Pause => {
            if !running || meeting.live_paused_at.is_some() {
                return Err(conflict("the meeting is not running"));
            }
            active.live_paused_at = Set(Some(now));
        }
        Command::Resume => {
            let (Some(paused), Some(started)) = (meeting.live_paused_at, meeting.live_item_started_at) else {
                return Err(conflict("the meeting is not paused"));
            };
            // Shift the item's start by the pause, so that elapsed time leaves the pause out.
            active.live_item_started_at = Set(Some(started + (now - paused)));
            active.live_paused_at = Set(None);
        }
        Command::End => {
            if !running {
                return Err(conflict("the meeting is not live"));
            }
            bank_current(&*txn, &meeting, &items, now).await?;
            active.status = Set(MeetingStatus::Held.as_str().to_owned());
            active.live_item_id = Set(None);
            active.live_item_started_at = Set(None);
            active.live_paused_at = Set(None);
            active.live_ended_at = Set(Some(now));
        }
    }
    // The meeting changed (its status, its live item): a PATCH from before must see 412.
    active.version = Set(meeting.version + 1);
    active.updated_at = Set(now);
    let updated = active.update(&*txn).await?;
    let items = items_of(&*txn, meeting_id).await?;
    let live = state_at(&updated, &items, now);
    let recorded = emit_seen(&*txn, before, &updated, caller.id, "meeting.live", json!(live)).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(live)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;
    use crate::meetings::service::plan;

    fn meeting() -> meeting::Model {
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 14, 0, 0).unwrap();
        meeting::Model {
            id: 1,
            committee_id: 1,
            title: "m".into(),
            description: String::new(),
            starts_at: start,
            ends_at: start + Duration::hours(2),
            timezone: "America/Lima".into(),
            location: None,
            online_url: None,
            public: false,
            status: "in_progress".into(),
            agenda_status: "draft".into(),
            agenda_published_at: None,
            published_agenda: None,
            uid: "u".into(),
            sequence: 0,
            version: 1,
            created_by: 1,
            reminder_sent_at: None,
            live_item_id: Some(2),
            live_item_started_at: Some(start + Duration::minutes(25)),
            live_paused_at: None,
            live_started_at: Some(start + Duration::minutes(5)),
            live_ended_at: None,
            minutes_document_id: None,
            created_at: start,
            updated_at: start,
        }
    }

    fn item(id: i32, position: i32, minutes: i32, actual_seconds: i32) -> agenda_item::Model {
        agenda_item::Model {
            id,
            meeting_id: 1,
            parent_id: None,
            position,
            title: format!("item {id}"),
            description: String::new(),
            kind: "discussion".into(),
            duration_minutes: minutes,
            presenter_id: None,
            outcome: None,
            actual_started_at: None,
            actual_seconds,
            changed_after_finalized: false,
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn drift_counts_a_late_start_earlier_overruns_and_the_current_overrun() {
        let meeting = meeting();
        // Started 5 minutes late; item 1 planned 15, took 20; item 2 planned 10, 12 minutes in.
        let items = vec![item(1, 1, 15, 20 * 60), item(2, 2, 10, 0)];
        let now = meeting.live_item_started_at.unwrap() + Duration::minutes(12);
        let live = state_at(&meeting, &items, now);
        assert_eq!(live.current_item_id, Some(2));
        assert_eq!(live.elapsed_s, 12 * 60);
        assert_eq!(live.remaining_s, -2 * 60);
        assert_eq!(live.drift_s, (5 + 5 + 2) * 60);
        assert!(!live.paused);
        assert_eq!(plan(&meeting, &items)[1], meeting.starts_at + Duration::minutes(15));
    }

    #[test]
    fn a_pause_stops_the_item_clock() {
        let mut meeting = meeting();
        let started = meeting.live_item_started_at.unwrap();
        meeting.live_paused_at = Some(started + Duration::minutes(3));
        let live = state_at(
            &meeting,
            &[item(1, 1, 15, 900), item(2, 2, 10, 0)],
            started + Duration::minutes(30),
        );
        assert_eq!(live.elapsed_s, 180);
        assert!(live.paused);
    }
}
