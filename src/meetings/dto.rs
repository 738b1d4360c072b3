//! Request and response bodies of the meeting and agenda endpoints.

use chrono::{DateTime, NaiveDate, Utc};
use entity::{agenda_item, meeting};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::string_enum;

string_enum!(
    /// A meeting's life: planned, announced, running, over, or called off.
    MeetingStatus { Draft => "draft", Scheduled => "scheduled", InProgress => "in_progress", Held => "held", Cancelled => "cancelled" }
);

string_enum!(
    /// An agenda under construction, or agreed.
    AgendaStatus { Draft => "draft", Finalized => "finalized" }
);

string_enum!(
    /// What an agenda item is for.
    AgendaKind { Information => "information", Discussion => "discussion", Decision => "decision" }
);

string_enum!(
    /// An invited member's answer.
    RsvpResponse { Yes => "yes", No => "no", Maybe => "maybe" }
);

string_enum!(
    /// The forms the minutes come in.
    MinutesFormat { Json => "json", Markdown => "markdown" }
);

impl MeetingStatus {
    /// Allowed moves set by hand. `in_progress` is live mode's alone: its start makes a meeting
    /// `in_progress` and its end `held`, and a live meeting's status is not set by hand (that
    /// would leave its live state behind, and a meeting made `in_progress` by hand could never
    /// start live). A meeting run without live mode is marked `held` from `scheduled`.
    pub fn can_become(self, next: MeetingStatus) -> bool {
        use MeetingStatus::*;
        self == next
            || matches!(
                (self, next),
                (Draft, Scheduled | Cancelled) | (Scheduled, Draft | Held | Cancelled)
            )
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMeetingRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// IANA name, e.g. `America/Lima`.
    pub timezone: String,
    #[schema(max_length = 300)]
    pub location: Option<String>,
    #[schema(max_length = 500)]
    pub online_url: Option<String>,
    pub invited_committee_ids: Option<Vec<i32>>,
    pub public: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeetingRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub timezone: Option<String>,
    #[schema(max_length = 300)]
    pub location: Option<String>,
    #[schema(max_length = 500)]
    pub online_url: Option<String>,
    pub invited_committee_ids: Option<Vec<i32>>,
    pub public: Option<bool>,
    pub status: Option<MeetingStatus>,
}

/// Meetings starting in `[from, to)`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MeetingRange {
    /// Meetings starting at or after this time: RFC 3339 (`2027-03-01T13:00:00Z`), or a date
    /// for its midnight UTC.
    #[param(value_type = Option<String>)]
    pub from: Option<Bound>,
    /// Meetings starting before this time, in the same forms.
    #[param(value_type = Option<String>)]
    pub to: Option<Bound>,
}

/// One end of a time range in a query: an RFC 3339 time as the contract has it, or, as a
/// calendar view asks, a date meaning its midnight UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bound(pub DateTime<Utc>);

impl std::str::FromStr for Bound {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(time) = DateTime::parse_from_rfc3339(text) {
            return Ok(Bound(time.to_utc()));
        }
        text.parse::<NaiveDate>()
            .map(|date| Bound(date.and_time(chrono::NaiveTime::MIN).and_utc()))
            .map_err(|_| "is neither an RFC 3339 time nor a date (YYYY-MM-DD)")
    }
}

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MeetingResponse {
    pub id: i32,
    pub committee_id: i32,
    pub title: String,
    pub description: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub timezone: String,
    pub location: Option<String>,
    pub online_url: Option<String>,
    pub public: bool,
    pub status: String,
    pub agenda_status: String,
    pub agenda_published_at: Option<DateTime<Utc>>,
    pub invited_committee_ids: Vec<i32>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MeetingResponse {
    pub fn new(row: meeting::Model, invited_committee_ids: Vec<i32>) -> Self {
        Self {
            id: row.id,
            committee_id: row.committee_id,
            title: row.title,
            description: row.description,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            timezone: row.timezone,
            location: row.location,
            online_url: row.online_url,
            public: row.public,
            status: row.status,
            agenda_status: row.agenda_status,
            agenda_published_at: row.agenda_published_at,
            invited_committee_ids,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgendaItemRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub kind: AgendaKind,
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: i32,
    pub presenter_id: Option<i32>,
    pub parent_id: Option<i32>,
    pub document_ids: Option<Vec<i32>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgendaItemRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub kind: Option<AgendaKind>,
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: Option<i32>,
    pub presenter_id: Option<i32>,
    pub document_ids: Option<Vec<i32>>,
    /// The decision or conclusion recorded for the minutes.
    pub outcome: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderRequest {
    pub item_ids: Vec<i32>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AgendaItemResponse {
    pub id: i32,
    pub meeting_id: i32,
    pub parent_id: Option<i32>,
    pub position: i32,
    pub title: String,
    pub description: String,
    pub kind: String,
    pub duration_minutes: i32,
    pub presenter_id: Option<i32>,
    /// The linked documents that the reader (or, in an event, the channel's committee) can open.
    pub document_ids: Vec<i32>,
    pub outcome: Option<String>,
    /// Planned start, computed from the meeting's start and the durations before it.
    pub starts_at: DateTime<Utc>,
    pub actual_seconds: i32,
    pub changed_after_finalized: bool,
    pub version: i32,
}

impl AgendaItemResponse {
    pub fn new(row: agenda_item::Model, starts_at: DateTime<Utc>, document_ids: Vec<i32>) -> Self {
        Self {
            id: row.id,
            meeting_id: row.meeting_id,
            parent_id: row.parent_id,
            position: row.position,
            title: row.title,
            description: row.description,
            kind: row.kind,
            duration_minutes: row.duration_minutes,
            presenter_id: row.presenter_id,
            document_ids,
            outcome: row.outcome,
            starts_at,
            actual_seconds: row.actual_seconds,
            changed_after_finalized: row.changed_after_finalized,
            version: row.version,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AgendaResponse {
    pub meeting_id: i32,
    pub status: String,
    pub allocated_minutes: i64,
    pub available_minutes: i64,
    pub items: Vec<AgendaItemResponse>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RsvpRequest {
    pub response: RsvpResponse,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    pub present: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AttendanceResponse {
    pub meeting_id: i32,
    pub member_id: i32,
    pub response: Option<String>,
    pub present: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionItemRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub assignee_id: Option<i32>,
    pub due_on: Option<NaiveDate>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LiveState {
    pub meeting_id: i32,
    pub status: String,
    pub current_item_id: Option<i32>,
    pub item_started_at: Option<DateTime<Utc>>,
    pub elapsed_s: i64,
    pub remaining_s: i64,
    /// Seconds behind plan (negative: ahead), counting a late start, finished items' overruns
    /// and the current item's overrun.
    pub drift_s: i64,
    pub paused: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MinutesItem {
    pub id: i32,
    pub title: String,
    pub kind: String,
    pub planned_starts_at: DateTime<Utc>,
    pub planned_minutes: i32,
    pub actual_minutes: f64,
    pub outcome: Option<String>,
    pub action_items: Vec<crate::tasks::dto::TaskResponse>,
}

#[derive(Serialize, ToSchema)]
pub struct MinutesResponse {
    pub meeting: MeetingResponse,
    pub attendance: Vec<AttendanceResponse>,
    pub items: Vec<MinutesItem>,
    pub markdown: String,
}

#[derive(Serialize, ToSchema)]
pub struct CalendarTokenResponse {
    pub token: String,
    pub url: String,
}
