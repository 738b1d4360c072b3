//! The rules of meetings and agendas: who sees and runs them, the allocation guideline, and
//! who hears about every change.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike as _, Duration, Utc};
use chrono_tz::Tz;
use entity::{
    agenda_item, agenda_item_document, committee, committee_membership, document, meeting, meeting_attendance,
    meeting_committee, member, task,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};
use serde_json::json;

use super::dto::*;
use crate::auth::CallerToken;
use crate::committees::dto::CommitteeRole;
use crate::committees::service as committees;
use crate::documents::service::Reader;
use crate::domain::{Locale, MemberStatus, ONE_LINE, Role, Validator, as_one_line, has_control, required_line};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, Channel, PendingEvent, Recorded};
use crate::mail::{self, templates};
use crate::pagination::Page;
use crate::preconditions::IfMatch;
use crate::public::data::PublicMeeting;
use crate::realtime;
use crate::state::AppState;
use crate::tasks::dto::{CreateTaskRequest, TaskResponse};

/// What the caller may do with one meeting.
#[derive(Clone, Copy, Debug)]
pub struct MeetingAccess {
    /// Chair of the owner committee, or the secretariat: edit, agenda, live mode.
    pub manage: bool,
    /// The owner committee is archived: the meeting can be read, not changed.
    pub archived: bool,
}

impl MeetingAccess {
    pub fn require_open(&self) -> ApiResult<()> {
        committees::ensure_open(self.archived)
    }

    pub fn require_manage(&self) -> ApiResult<()> {
        self.require_open()?;
        if self.manage { Ok(()) } else { Err(ApiError::Forbidden) }
    }
}

/// The owner committee and every invited committee.
pub async fn committees_of(conn: &impl ConnectionTrait, meeting: &meeting::Model) -> ApiResult<Vec<i32>> {
    let mut ids = vec![meeting.committee_id];
    ids.extend(invited_of(conn, meeting.id).await?);
    Ok(ids)
}

async fn invited_of(conn: &impl ConnectionTrait, meeting_id: i32) -> ApiResult<Vec<i32>> {
    Ok(meeting_committee::Entity::find()
        .select_only()
        .column(meeting_committee::Column::CommitteeId)
        .filter(meeting_committee::Column::MeetingId.eq(meeting_id))
        .order_by_asc(meeting_committee::Column::CommitteeId)
        .into_tuple()
        .all(conn)
        .await?)
}

/// The one place that decides access to a meeting: members of the owner and invited committees
/// see it, the owner's chair and the secretariat run it; for anyone else it does not exist.
pub async fn access(
    conn: &impl ConnectionTrait,
    caller: &member::Model,
    meeting_id: i32,
) -> ApiResult<(meeting::Model, MeetingAccess)> {
    let (meeting, archived) = committees::one_with_owner_archived(
        conn,
        meeting::Entity::find_by_id(meeting_id),
        meeting::Column::CommitteeId,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    if caller.role == Role::Secretariat.as_str() {
        return Ok((meeting, MeetingAccess { manage: true, archived }));
    }
    let committees = committees_of(conn, &meeting).await?;
    let memberships = committee_membership::Entity::find()
        .filter(committee_membership::Column::MemberId.eq(caller.id))
        .filter(committee_membership::Column::CommitteeId.is_in(committees))
        .all(conn)
        .await?;
    if memberships.is_empty() {
        return Err(ApiError::NotFound);
    }
    let manage = memberships
        .iter()
        .any(|m| m.committee_id == meeting.committee_id && m.role == CommitteeRole::Chair.as_str());
    Ok((meeting, MeetingAccess { manage, archived }))
}

async fn managed(conn: &impl ConnectionTrait, caller: &member::Model, meeting_id: i32) -> ApiResult<meeting::Model> {
    let (meeting, access) = access(conn, caller, meeting_id).await?;
    access.require_manage()?;
    Ok(meeting)
}

pub async fn present(conn: &impl ConnectionTrait, meeting: meeting::Model) -> ApiResult<MeetingResponse> {
    let invited = invited_of(conn, meeting.id).await?;
    Ok(MeetingResponse::new(meeting, invited))
}

/// Records `kind` into the channels of the owner and every invited committee.
pub async fn emit(
    conn: &impl ConnectionTrait,
    meeting: &meeting::Model,
    actor_id: i32,
    kind: &str,
    data: serde_json::Value,
) -> ApiResult<Recorded> {
    let channels: Vec<Channel> = committees_of(conn, meeting)
        .await?
        .into_iter()
        .map(Channel::Committee)
        .collect();
    Ok(events::record(conn, &channels, kind, Some(actor_id), data).await?)
}

/// What the public area shows of `meeting`, or `None` when it does not show it.
pub fn public_view(meeting: &meeting::Model) -> Option<PublicMeeting> {
    crate::public::data::shows(meeting).then(|| crate::public::data::public_meeting(meeting))
}

/// [`emit`], and into `public` what the public sees change (`before` is what it saw): the
/// meeting as it now shows, or `{id, public: false}` once it shows no more. A change the public
/// cannot see (a link, a note, a live command within the same status) records nothing there.
pub async fn emit_seen(
    conn: &impl ConnectionTrait,
    before: Option<PublicMeeting>,
    meeting: &meeting::Model,
    actor_id: i32,
    kind: &str,
    data: serde_json::Value,
) -> ApiResult<Recorded> {
    let mut recorded = emit(conn, meeting, actor_id, kind, data).await?;
    let after = public_view(meeting);
    let public = match (before, after) {
        (before, Some(after)) if before.as_ref() != Some(&after) => json!(after),
        (Some(_), None) => json!({ "id": meeting.id, "public": false }),
        _ => return Ok(recorded),
    };
    // The actor stays inside: the public channel is read by every account.
    recorded.extend(events::record(conn, &[Channel::Public], kind, None, public).await?);
    Ok(recorded)
}

/// Active members of the owner and invited committees.
pub async fn invitees(conn: &impl ConnectionTrait, meeting: &meeting::Model) -> ApiResult<Vec<member::Model>> {
    let committees = committees_of(conn, meeting).await?;
    let ids: BTreeSet<i32> = committee_membership::Entity::find()
        .filter(committee_membership::Column::CommitteeId.is_in(committees))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    Ok(member::Entity::find()
        .filter(member::Column::Id.is_in(ids))
        .filter(member::Column::Status.eq(MemberStatus::Active.as_str()))
        .order_by_asc(member::Column::Id)
        .all(conn)
        .await?)
}

/// Queues a notice about the meeting to every invitee, in each one's language.
async fn notify_invitees(
    state: &AppState,
    conn: &impl ConnectionTrait,
    meeting: &meeting::Model,
    kind: templates::MeetingNotice,
) -> ApiResult<usize> {
    let people = invitees(conn, meeting).await?;
    let agenda = agenda_text(conn, meeting).await?;
    let link = format!("{}meetings/{}", state.settings.server.public_url, meeting.id);
    let when = local_time(meeting)?;
    let mails = people.iter().map(|person| {
        let locale = Locale::from_db(&person.locale).unwrap_or(Locale::En);
        let notice = templates::meeting_notice(locale, kind, &meeting.title, &when, &agenda, &link);
        (person.email.clone(), notice)
    });
    mail::enqueue_all(conn, mails).await?;
    Ok(people.len())
}

fn timezone_of(meeting: &meeting::Model) -> ApiResult<Tz> {
    meeting
        .timezone
        .parse()
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("meeting {} has an unknown time zone", meeting.id)))
}

/// The start as invitees read it in a mail: see [`in_zone`].
fn local_time(meeting: &meeting::Model) -> ApiResult<String> {
    Ok(in_zone(meeting.starts_at, timezone_of(meeting)?))
}

/// A time as people across the Network read it: in the meeting's zone, with the zone named and
/// its offset from UTC, as in "2027-03-01 10:00 (America/Lima, UTC-05:00)". An abbreviation
/// alone is ambiguous across the Network: "CST" is Mexico's, Guatemala's and Costa Rica's, and
/// Brazil's zone has only "-03".
pub fn in_zone(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    format!("{} {}", local.format("%Y-%m-%d %H:%M"), zone_label(&local))
}

/// A meeting's span as [`in_zone`] writes a time, the end by its hour: "2027-03-01 10:00 –
/// 12:00 (America/Lima, UTC-05:00)". Across a change of summer time each end has its label.
pub fn span_in_zone(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, tz: Tz) -> String {
    let (starts, ends) = (starts_at.with_timezone(&tz), ends_at.with_timezone(&tz));
    let (from, to) = (zone_label(&starts), zone_label(&ends));
    let from = if from == to { String::new() } else { format!(" {from}") };
    format!(
        "{}{from} – {} {to}",
        starts.format("%Y-%m-%d %H:%M"),
        ends.format("%H:%M")
    )
}

/// "(America/Lima, UTC-05:00)": the zone of a local time and its offset then.
fn zone_label(local: &DateTime<Tz>) -> String {
    format!("({}, UTC{})", local.timezone().name(), local.format("%:z"))
}

fn parse_timezone(raw: &str) -> Result<String, crate::error::FieldError> {
    raw.parse::<Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| crate::error::FieldError::new("timezone", "must be an IANA time zone such as America/Lima"))
}

fn check_url(validator: &mut Validator, url: Option<&String>) {
    if let Some(url) = url {
        if !crate::domain::is_web_url(url) {
            validator.add("online_url", "must be an http(s) URL of at most 500 characters");
        }
    }
}

/// The most committees one meeting may invite: every committee of the Network, with room.
const MAX_INVITED: usize = 100;

/// Replaces the meeting's invited committees, and answers those no longer invited. A committee
/// newly invited must be open: an archived one takes no new work (one invited before it was
/// archived may stay).
async fn set_invited(
    conn: &impl ConnectionTrait,
    meeting: &meeting::Model,
    committee_ids: &[i32],
) -> ApiResult<Vec<i32>> {
    let wanted: BTreeSet<i32> = committee_ids
        .iter()
        .copied()
        .filter(|id| *id != meeting.committee_id)
        .collect();
    if wanted.len() > MAX_INVITED {
        return Err(ApiError::validation(
            "invited_committee_ids",
            &format!("at most {MAX_INVITED} committees"),
        ));
    }
    let already: BTreeSet<i32> = invited_of(conn, meeting.id).await?.into_iter().collect();
    let newly: Vec<i32> = wanted.difference(&already).copied().collect();
    let open = committee::Entity::find()
        .filter(committee::Column::Id.is_in(newly.iter().copied()))
        .filter(committee::Column::Archived.eq(false))
        .count(conn)
        .await?;
    if open != newly.len() as u64 {
        return Err(ApiError::validation(
            "invited_committee_ids",
            "no such committee, or it is archived",
        ));
    }
    meeting_committee::Entity::delete_many()
        .filter(meeting_committee::Column::MeetingId.eq(meeting.id))
        .exec(conn)
        .await?;
    for committee_id in wanted.iter().copied() {
        meeting_committee::ActiveModel {
            meeting_id: Set(meeting.id),
            committee_id: Set(committee_id),
        }
        .insert(conn)
        .await?;
    }
    Ok(already.difference(&wanted).copied().collect())
}

/// The longest a meeting may last: a conference of several days, not a season.
const MAX_MEETING_DAYS: i64 = 14;

/// What is wrong with a meeting running from `starts_at` to `ends_at`, if anything.
fn span_problem(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>) -> Option<&'static str> {
    if ends_at <= starts_at {
        Some("must be after starts_at")
    } else if ends_at - starts_at > chrono::Duration::days(MAX_MEETING_DAYS) {
        Some("must be at most 14 days after starts_at")
    } else {
        None
    }
}

fn check_location(validator: &mut Validator, location: Option<&str>) {
    let location = location.map(str::trim);
    if location.is_some_and(|l| l.chars().count() > 300) {
        validator.add("location", "must be at most 300 characters long");
    }
    if location.is_some_and(has_control) {
        validator.add("location", ONE_LINE);
    }
}

#[tracing::instrument(skip_all, fields(caller = caller.id, committee_id))]
pub async fn create(
    state: &AppState,
    caller: &member::Model,
    committee_id: i32,
    request: CreateMeetingRequest,
) -> ApiResult<MeetingResponse> {
    let mut validator = Validator::default();
    let title = validator.check(required_line("title", &request.title, 300));
    let timezone = validator.check(parse_timezone(&request.timezone));
    if let Some(problem) = span_problem(request.starts_at, request.ends_at) {
        validator.add("ends_at", problem);
    }
    validator.year_in_range("starts_at", Some(request.starts_at.year()));
    validator.year_in_range("ends_at", Some(request.ends_at.year()));
    check_location(&mut validator, request.location.as_deref());
    validator.long_text("description", request.description.as_deref());
    check_url(&mut validator, request.online_url.as_ref());
    validator.finish()?;

    let txn = state.db.begin_write().await?;
    committees::access(&*txn, caller, committee_id).await?.require_chair()?;
    let now = Utc::now();
    let meeting = meeting::ActiveModel {
        committee_id: Set(committee_id),
        title: Set(title.unwrap_or_default()),
        description: Set(request.description.unwrap_or_default().trim().to_owned()),
        starts_at: Set(request.starts_at),
        ends_at: Set(request.ends_at),
        timezone: Set(timezone.unwrap_or_default()),
        location: Set(request.location.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty())),
        online_url: Set(request.online_url),
        public: Set(request.public.unwrap_or(false)),
        status: Set(MeetingStatus::Draft.as_str().to_owned()),
        agenda_status: Set(AgendaStatus::Draft.as_str().to_owned()),
        uid: Set(uuid::Uuid::new_v4().to_string()),
        sequence: Set(0),
        version: Set(1),
        created_by: Set(caller.id),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*txn)
    .await?;
    set_invited(
        &*txn,
        &meeting,
        request.invited_committee_ids.as_deref().unwrap_or_default(),
    )
    .await?;
    let response = present(&*txn, meeting.clone()).await?;
    let recorded = emit_seen(&*txn, None, &meeting, caller.id, "meeting.created", json!(response)).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// Meetings of a committee: those it owns and those it is invited to.
pub async fn list(
    state: &AppState,
    caller: &member::Model,
    committee_id: i32,
    range: &MeetingRange,
    page: Page,
) -> ApiResult<Vec<MeetingResponse>> {
    committees::access(state.db.conn(), caller, committee_id).await?;
    if let (Some(from), Some(to)) = (range.from, range.to)
        && to <= from
    {
        return Err(ApiError::validation("to", "must be later than `from`"));
    }
    let invited = meeting_committee::Entity::find()
        .select_only()
        .column(meeting_committee::Column::MeetingId)
        .filter(meeting_committee::Column::CommitteeId.eq(committee_id))
        .into_query();
    let mut query = meeting::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(meeting::Column::CommitteeId.eq(committee_id))
                .add(meeting::Column::Id.in_subquery(invited)),
        )
        .order_by_asc(meeting::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(meeting::Column::Id.gt(after));
    }
    if let Some(Bound(from)) = range.from {
        query = query.filter(meeting::Column::StartsAt.gte(from));
    }
    if let Some(Bound(to)) = range.to {
        query = query.filter(meeting::Column::StartsAt.lt(to));
    }
    let rows = query.all(state.db.conn()).await?;
    present_all(state.db.conn(), rows).await
}

/// [`present`] for a page of meetings, with one query for all their invitations.
async fn present_all(conn: &impl ConnectionTrait, meetings: Vec<meeting::Model>) -> ApiResult<Vec<MeetingResponse>> {
    let ids: Vec<i32> = meetings.iter().map(|meeting| meeting.id).collect();
    let rows: Vec<(i32, i32)> = meeting_committee::Entity::find()
        .select_only()
        .column(meeting_committee::Column::MeetingId)
        .column(meeting_committee::Column::CommitteeId)
        .filter(meeting_committee::Column::MeetingId.is_in(ids))
        .order_by_asc(meeting_committee::Column::CommitteeId)
        .into_tuple()
        .all(conn)
        .await?;
    let mut invited: HashMap<i32, Vec<i32>> = HashMap::new();
    for (meeting_id, committee_id) in rows {
        invited.entry(meeting_id).or_default().push(committee_id);
    }
    Ok(meetings
        .into_iter()
        .map(|meeting| {
            let committees = invited.remove(&meeting.id).unwrap_or_default();
            MeetingResponse::new(meeting, committees)
        })
        .collect())
}

pub async fn get(state: &AppState, caller: &member::Model, meeting_id: i32) -> ApiResult<MeetingResponse> {
    let (meeting, _) = access(state.db.conn(), caller, meeting_id).await?;
    present(state.db.conn(), meeting).await
}

#[tracing::instrument(skip_all, fields(caller = caller.id, meeting_id))]
pub async fn update(
    state: &AppState,
    caller: &member::Model,
    meeting_id: i32,
    if_match: IfMatch,
    request: UpdateMeetingRequest,
) -> ApiResult<MeetingResponse> {
    let mut validator = Validator::default();
    let title = request
        .title
        .as_deref()
        .and_then(|t| validator.check(required_line("title", t, 300)));
    let timezone = request
        .timezone
        .as_deref()
        .and_then(|t| validator.check(parse_timezone(t)));
    validator.year_in_range("starts_at", request.starts_at.map(|at| at.year()));
    validator.year_in_range("ends_at", request.ends_at.map(|at| at.year()));
    check_location(&mut validator, request.location.as_deref());
    validator.long_text("description", request.description.as_deref());
    check_url(&mut validator, request.online_url.as_ref());
    validator.finish()?;

    let txn = state.db.begin_write().await?;
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let meeting = managed(&*txn, caller, meeting_id).await?;
    let before = public_view(&meeting);
    if_match.check(meeting.version)?;
    let current = MeetingStatus::from_db(&meeting.status)?;
    if let Some(next) = request.status
        && !current.can_become(next)
    {
        return Err(ApiError::unprocessable(
            "invalid_transition",
            format!("a {} meeting cannot become {}", current.as_str(), next.as_str()),
        ));
    }
    let starts_at = request.starts_at.unwrap_or(meeting.starts_at);
    let ends_at = request.ends_at.unwrap_or(meeting.ends_at);
    // Checked when the dates change: a meeting stored before the 14-day bound still takes
    // its other changes (a cancellation, a new title).
    let moved = request.starts_at.is_some() || request.ends_at.is_some();
    if let Some(problem) = span_problem(starts_at, ends_at).filter(|_| moved) {
        return Err(ApiError::validation("ends_at", problem));
    }
    let cancelling = request.status == Some(MeetingStatus::Cancelled) && current != MeetingStatus::Cancelled;
    // What a calendar shows: its times, title, place (the location and the online link) and
    // status (a draft is tentative, a scheduled meeting confirmed, a cancelled one cancelled).
    let calendar_changed = request.starts_at.is_some()
        || request.ends_at.is_some()
        || request.timezone.is_some()
        || request.location.is_some()
        || request.online_url.is_some()
        || request.title.is_some()
        || request.status.is_some_and(|next| next != current);
    let (version, sequence) = (meeting.version, meeting.sequence);
    let mut active = meeting.clone().into_active_model();
    if let Some(title) = title {
        active.title = Set(title);
    }
    if let Some(description) = request.description {
        active.description = Set(description.trim().to_owned());
    }
    if starts_at != meeting.starts_at {
        // Its reminder, if already sent, named the old time: the new one is reminded again.
        active.reminder_sent_at = Set(None);
    }
    active.starts_at = Set(starts_at);
    active.ends_at = Set(ends_at);
    if let Some(timezone) = timezone {
        active.timezone = Set(timezone);
    }
    if let Some(location) = request.location {
        active.location = Set(Some(location.trim().to_owned()).filter(|l| !l.is_empty()));
    }
    if let Some(online_url) = request.online_url {
        active.online_url = Set(Some(online_url));
    }
    if let Some(public) = request.public {
        active.public = Set(public);
    }
    if let Some(status) = request.status {
        active.status = Set(status.as_str().to_owned());
        // Back to a draft, the agenda is being redone: the public sees none until it is
        // published again (a meeting scheduled anew would otherwise show the old one).
        if status == MeetingStatus::Draft {
            active.published_agenda = Set(None);
        }
    }
    if calendar_changed {
        // Calendar clients replace their copy only when SEQUENCE grows.
        active.sequence = Set(sequence + 1);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let updated = active.update(&*txn).await?;
    let uninvited = match &request.invited_committee_ids {
        Some(ids) => set_invited(&*txn, &updated, ids).await?,
        None => Vec::new(),
    };
    check_allocation(&*txn, &updated).await?;
    if cancelling {
        notify_invitees(state, &*txn, &updated, templates::MeetingNotice::Cancelled).await?;
    }
    let response = present(&*txn, updated.clone()).await?;
    let mut recorded = emit_seen(&*txn, before, &updated, caller.id, "meeting.updated", json!(response)).await?;
    // A committee no longer invited hears that much, and no more: its cached meeting can go.
    for committee_id in uninvited {
        let data = json!({ "meeting_id": updated.id, "committee_id": committee_id });
        let channel = [Channel::Committee(committee_id)];
        recorded.extend(events::record(&*txn, &channel, "meeting.uninvited", Some(caller.id), data).await?);
    }
    txn.commit().await?;
    realtime::publish(state, recorded);
    if cancelling {
        state.mailer.do_send(mail::Wake);
    }
    Ok(response)
}

/// The agenda's items in order, each with its planned start, as `reader` sees them: an item
/// links only the documents the reader can open. An invited committee reads the agenda, not the
/// owner's documents; even their ids would tell it what exists and how much.
pub async fn agenda(
    conn: &impl ConnectionTrait,
    meeting: &meeting::Model,
    reader: Reader<'_>,
) -> ApiResult<AgendaResponse> {
    let mut agenda = agenda_with_every_link(conn, meeting).await?;
    keep_readable_links(conn, &mut agenda.items, reader).await?;
    Ok(agenda)
}

/// `item` with only the document links `reader` can open.
async fn item_as_read_by(
    conn: &impl ConnectionTrait,
    item: &AgendaItemResponse,
    reader: Reader<'_>,
) -> ApiResult<AgendaItemResponse> {
    let mut items = [item.clone()];
    keep_readable_links(conn, &mut items, reader).await?;
    let [item] = items;
    Ok(item)
}

/// Drops from `items` the document links `reader` cannot open (one query for all of them).
async fn keep_readable_links(
    conn: &impl ConnectionTrait,
    items: &mut [AgendaItemResponse],
    reader: Reader<'_>,
) -> ApiResult<()> {
    let linked = items
        .iter()
        .flat_map(|item| item.document_ids.iter().copied())
        .collect();
    let readable = crate::documents::service::readable_among(conn, reader, linked).await?;
    for item in items {
        item.document_ids.retain(|id| readable.contains(id));
    }
    Ok(())
}

/// The agenda with every document link: only for what shows no links (mail, minutes).
async fn agenda_with_every_link(conn: &impl ConnectionTrait, meeting: &meeting::Model) -> ApiResult<AgendaResponse> {
    let items = items_of(conn, meeting.id).await?;
    let documents = agenda_item_document::Entity::find()
        .filter(agenda_item_document::Column::AgendaItemId.is_in(items.iter().map(|i| i.id)))
        .order_by_asc(agenda_item_document::Column::DocumentId)
        .all(conn)
        .await?;
    let planned = plan(meeting, &items);
    let allocated = top_level_minutes(&items);
    let responses = items
        .into_iter()
        .zip(planned)
        .map(|(item, starts_at)| {
            let ids = documents
                .iter()
                .filter(|d| d.agenda_item_id == item.id)
                .map(|d| d.document_id)
                .collect();
            AgendaItemResponse::new(item, starts_at, ids)
        })
        .collect();
    Ok(AgendaResponse {
        meeting_id: meeting.id,
        status: meeting.agenda_status.clone(),
        allocated_minutes: allocated,
        available_minutes: (meeting.ends_at - meeting.starts_at).num_minutes(),
        items: responses,
    })
}

/// Items ordered for display: each top-level item followed by its sub-items.
pub async fn items_of(conn: &impl ConnectionTrait, meeting_id: i32) -> ApiResult<Vec<agenda_item::Model>> {
    let rows = agenda_item::Entity::find()
        .filter(agenda_item::Column::MeetingId.eq(meeting_id))
        .order_by_asc(agenda_item::Column::Position)
        .order_by_asc(agenda_item::Column::Id)
        .all(conn)
        .await?;
    Ok(in_agenda_order(rows))
}

/// Items sorted by position, each top-level item followed by its sub-items.
fn in_agenda_order(rows: Vec<agenda_item::Model>) -> Vec<agenda_item::Model> {
    let (top, subs): (Vec<_>, Vec<_>) = rows.into_iter().partition(|item| item.parent_id.is_none());
    let mut ordered = Vec::with_capacity(top.len() + subs.len());
    for item in top {
        let id = item.id;
        ordered.push(item);
        ordered.extend(subs.iter().filter(|sub| sub.parent_id == Some(id)).cloned());
    }
    ordered
}

/// Planned starts: top-level items one after the other from the meeting's start; sub-items one
/// after the other from their parent's start (their time is part of the parent's).
pub fn plan(meeting: &meeting::Model, items: &[agenda_item::Model]) -> Vec<DateTime<Utc>> {
    let mut clock = meeting.starts_at;
    let mut sub_clock = clock;
    items
        .iter()
        .map(|item| {
            if item.parent_id.is_none() {
                let start = clock;
                clock += Duration::minutes(item.duration_minutes.into());
                sub_clock = start;
                start
            } else {
                let start = sub_clock;
                sub_clock += Duration::minutes(item.duration_minutes.into());
                start
            }
        })
        .collect()
}

fn top_level_minutes(items: &[agenda_item::Model]) -> i64 {
    items
        .iter()
        .filter(|i| i.parent_id.is_none())
        .map(|i| i64::from(i.duration_minutes))
        .sum()
}

/// The allocation guideline: the agenda may not take longer than the meeting.
async fn check_allocation(conn: &impl ConnectionTrait, meeting: &meeting::Model) -> ApiResult<()> {
    let items = items_of(conn, meeting.id).await?;
    let available = (meeting.ends_at - meeting.starts_at).num_minutes();
    let allocated = top_level_minutes(&items);
    if allocated > available {
        let overrun = allocated - available;
        let mut extra = serde_json::Map::new();
        extra.insert("overrun_minutes".to_owned(), json!(overrun));
        extra.insert("allocated_minutes".to_owned(), json!(allocated));
        extra.insert("available_minutes".to_owned(), json!(available));
        return Err(ApiError::Unprocessable {
            code: "agenda_over_allocated",
            detail: format!(
                "the agenda takes {allocated} minutes but the meeting lasts {available}: {overrun} minutes too many"
            ),
            extra: Some(extra),
        });
    }
    for sub_parent in items.iter().filter(|i| i.parent_id.is_none()) {
        let inner: i64 = items
            .iter()
            .filter(|i| i.parent_id == Some(sub_parent.id))
            .map(|i| i64::from(i.duration_minutes))
            .sum();
        if inner > i64::from(sub_parent.duration_minutes) {
            return Err(ApiError::unprocessable(
                "agenda_over_allocated",
                format!(
                    "the sub-items of “{}” take {inner} minutes, more than its {}",
                    sub_parent.title, sub_parent.duration_minutes
                ),
            ));
        }
    }
    Ok(())
}

/// The most documents one agenda item may link: each is checked for the caller's access.
const MAX_ITEM_DOCUMENTS: usize = 50;

async fn set_documents(
    conn: &impl ConnectionTrait,
    caller: &member::Model,
    item_id: i32,
    document_ids: &[i32],
) -> ApiResult<()> {
    let document_ids: BTreeSet<i32> = document_ids.iter().copied().collect();
    if document_ids.len() > MAX_ITEM_DOCUMENTS {
        return Err(ApiError::validation(
            "document_ids",
            &format!("at most {MAX_ITEM_DOCUMENTS} documents"),
        ));
    }
    // The links the caller can open are replaced; the others stay. The caller was never shown
    // them, and sending back the list it was shown must not remove them.
    let linked: BTreeSet<i32> = agenda_item_document::Entity::find()
        .select_only()
        .column(agenda_item_document::Column::DocumentId)
        .filter(agenda_item_document::Column::AgendaItemId.eq(item_id))
        .into_tuple()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    let replaced = crate::documents::service::readable_among(conn, Reader::Member(caller), linked).await?;
    agenda_item_document::Entity::delete_many()
        .filter(agenda_item_document::Column::AgendaItemId.eq(item_id))
        .filter(agenda_item_document::Column::DocumentId.is_in(replaced))
        .exec(conn)
        .await?;
    if document_ids.is_empty() {
        return Ok(());
    }
    // Only documents the caller can see may be linked: all checked in one query.
    let readable =
        crate::documents::service::readable_among(conn, Reader::Member(caller), document_ids.clone()).await?;
    if readable != document_ids {
        return Err(ApiError::validation("document_ids", "no such document"));
    }
    let links = document_ids
        .into_iter()
        .map(|document_id| agenda_item_document::ActiveModel {
            agenda_item_id: Set(item_id),
            document_id: Set(document_id),
        });
    agenda_item_document::Entity::insert_many(links)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

async fn check_presenter(conn: &impl ConnectionTrait, meeting: &meeting::Model, presenter_id: i32) -> ApiResult<()> {
    if invitees(conn, meeting).await?.iter().any(|m| m.id == presenter_id) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "presenter_id",
            "must be a member invited to the meeting",
        ))
    }
}

fn check_duration(validator: &mut Validator, minutes: Option<i32>) {
    if minutes.is_some_and(|m| !(1..=24 * 60).contains(&m)) {
        validator.add("duration_minutes", "must be between 1 and 1440");
    }
}

/// After finalization an agenda changes only by its managers, and the change is flagged.
fn finalized(meeting: &meeting::Model) -> bool {
    meeting.agenda_status == AgendaStatus::Finalized.as_str()
}

/// One agenda item, for whoever may see its meeting.
pub async fn get_item(
    conn: &impl ConnectionTrait,
    caller: &member::Model,
    item_id: i32,
) -> ApiResult<AgendaItemResponse> {
    let item = agenda_item::Entity::find_by_id(item_id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (meeting, _) = access(conn, caller, item.meeting_id).await?;
    item_as_read_by(conn, &item_of(conn, &meeting, item_id).await?, Reader::Member(caller)).await
}

/// The item `item_id` of `meeting`'s agenda, as the agenda lists it, with every link.
async fn item_of(conn: &impl ConnectionTrait, meeting: &meeting::Model, item_id: i32) -> ApiResult<AgendaItemResponse> {
    agenda_with_every_link(conn, meeting)
        .await?
        .items
        .into_iter()
        .find(|i| i.id == item_id)
        .ok_or(ApiError::NotFound)
}

/// Records an agenda item's change into the meeting's channels, each committee's with the
/// document links its members can open; the public sees none of it until the agenda is
/// published again (`published_agenda`). Answers the item as `caller` sees it.
async fn emit_item(
    conn: &impl ConnectionTrait,
    meeting: &meeting::Model,
    caller: &member::Model,
    kind: &str,
    item_id: i32,
) -> ApiResult<(AgendaItemResponse, Recorded)> {
    let item = item_of(conn, meeting, item_id).await?;
    let mut pending = Vec::new();
    for committee_id in committees_of(conn, meeting).await? {
        let mut data = json!(item_as_read_by(conn, &item, Reader::Committee(committee_id)).await?);
        data["after_finalized"] = json!(finalized(meeting));
        let channel = [Channel::Committee(committee_id)];
        pending.extend(PendingEvent::for_channels(&channel, kind, Some(caller.id), data));
    }
    // One append, last: it locks the channels' rows in the order every writer follows, and
    // holds them only until the commit.
    let recorded = events::append_all(conn, pending).await?;
    Ok((item_as_read_by(conn, &item, Reader::Member(caller)).await?, recorded))
}

#[tracing::instrument(skip_all, fields(caller = caller.id, meeting_id))]
pub async fn add_item(
    state: &AppState,
    caller: &member::Model,
    meeting_id: i32,
    request: CreateAgendaItemRequest,
) -> ApiResult<AgendaItemResponse> {
    let mut validator = Validator::default();
    let title = validator.check(required_line("title", &request.title, 300));
    check_duration(&mut validator, Some(request.duration_minutes));
    validator.long_text("description", request.description.as_deref());
    validator.finish()?;

    let txn = state.db.begin_write().await?;
    // Every agenda write holds its meeting's lock: the time budget and the positions belong to
    // the meeting, and two writes checking them side by side would both pass (db::lock_row).
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let meeting = managed(&*txn, caller, meeting_id).await?;
    if let Some(parent_id) = request.parent_id {
        let parent = agenda_item::Entity::find_by_id(parent_id).one(&*txn).await?;
        if !parent.is_some_and(|p| p.meeting_id == meeting_id && p.parent_id.is_none()) {
            return Err(ApiError::validation(
                "parent_id",
                "must be a top-level item of this meeting",
            ));
        }
    }
    if let Some(presenter_id) = request.presenter_id {
        check_presenter(&*txn, &meeting, presenter_id).await?;
    }
    let position = items_of(&*txn, meeting_id)
        .await?
        .iter()
        .map(|i| i.position)
        .max()
        .unwrap_or(0)
        + 1;
    let now = Utc::now();
    let item = agenda_item::ActiveModel {
        meeting_id: Set(meeting_id),
        parent_id: Set(request.parent_id),
        position: Set(position),
        title: Set(title.unwrap_or_default()),
        description: Set(request.description.unwrap_or_default().trim().to_owned()),
        kind: Set(request.kind.as_str().to_owned()),
        duration_minutes: Set(request.duration_minutes),
        presenter_id: Set(request.presenter_id),
        changed_after_finalized: Set(finalized(&meeting)),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*txn)
    .await?;
    set_documents(
        &*txn,
        caller,
        item.id,
        request.document_ids.as_deref().unwrap_or_default(),
    )
    .await?;
    check_allocation(&*txn, &meeting).await?;
    let (response, recorded) = emit_item(&*txn, &meeting, caller, "agenda_item.created", item.id).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

#[tracing::instrument(skip_all, fields(caller = caller.id, item_id))]
pub async fn update_item(
    state: &AppState,
    caller: &member::Model,
    item_id: i32,
    if_match: IfMatch,
    request: UpdateAgendaItemRequest,
) -> ApiResult<AgendaItemResponse> {
    let mut validator = Validator::default();
    let title = request
        .title
        .as_deref()
        .and_then(|t| validator.check(required_line("title", t, 300)));
    check_duration(&mut validator, request.duration_minutes);
    validator.long_text("description", request.description.as_deref());
    validator.long_text("outcome", request.outcome.as_deref());
    validator.finish()?;

    let txn = state.db.begin_write().await?;
    // The meeting's lock first, as every agenda write takes it (see add_item), then the item's:
    // of two updates from one version, the second must see the first's (db::lock_row).
    let meeting_id = agenda_item::Entity::find_by_id(item_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?
        .meeting_id;
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let item = agenda_item::Entity::find_by_id(item_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let meeting = managed(&*txn, caller, item.meeting_id).await?;
    if_match.check(item.version)?;
    if let Some(presenter_id) = request.presenter_id {
        check_presenter(&*txn, &meeting, presenter_id).await?;
    }
    let version = item.version;
    let mut active = item.into_active_model();
    if let Some(title) = title {
        active.title = Set(title);
    }
    if let Some(description) = request.description {
        active.description = Set(description.trim().to_owned());
    }
    if let Some(kind) = request.kind {
        active.kind = Set(kind.as_str().to_owned());
    }
    if let Some(minutes) = request.duration_minutes {
        active.duration_minutes = Set(minutes);
    }
    if let Some(presenter_id) = request.presenter_id {
        active.presenter_id = Set(Some(presenter_id));
    }
    if let Some(outcome) = request.outcome {
        active.outcome = Set(Some(outcome.trim().to_owned()).filter(|o| !o.is_empty()));
    }
    let planning_change = request.title.is_some()
        || request.kind.is_some()
        || request.duration_minutes.is_some()
        || request.presenter_id.is_some()
        || request.document_ids.is_some();
    if finalized(&meeting) && planning_change {
        active.changed_after_finalized = Set(true);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    active.update(&*txn).await?;
    if let Some(ids) = &request.document_ids {
        set_documents(&*txn, caller, item_id, ids).await?;
    }
    check_allocation(&*txn, &meeting).await?;
    let (response, recorded) = emit_item(&*txn, &meeting, caller, "agenda_item.updated", item_id).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

#[tracing::instrument(skip_all, fields(caller = caller.id, item_id))]
pub async fn delete_item(state: &AppState, caller: &member::Model, item_id: i32) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    let item = agenda_item::Entity::find_by_id(item_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    crate::db::lock_row::<meeting::Entity>(&*txn, item.meeting_id).await?;
    let meeting = managed(&*txn, caller, item.meeting_id).await?;
    let before = public_view(&meeting);
    if meeting.live_item_id.is_some() {
        return Err(ApiError::Conflict(
            "the meeting is live; end it before removing items".to_owned(),
        ));
    }
    // Within the meeting: its index finds the item and its sub-items without a scan of every
    // meeting's agenda.
    let removed = agenda_item::Entity::delete_many()
        .filter(agenda_item::Column::MeetingId.eq(item.meeting_id))
        .filter(
            sea_orm::Condition::any()
                .add(agenda_item::Column::Id.eq(item_id))
                .add(agenda_item::Column::ParentId.eq(item_id)),
        )
        .exec(&*txn)
        .await?;
    // Removed by a delete that held the lock before this one.
    if removed.rows_affected == 0 {
        return Err(ApiError::NotFound);
    }
    let meeting = match crate::public::data::published_without(&meeting, item_id) {
        Some(published) => {
            let mut active = meeting.into_active_model();
            active.published_agenda = Set(Some(published));
            active.update(&*txn).await?
        }
        None => meeting,
    };
    let data = json!({ "id": item_id, "meeting_id": meeting.id, "after_finalized": finalized(&meeting) });
    let recorded = emit_seen(&*txn, before, &meeting, caller.id, "agenda_item.deleted", data).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(())
}

#[tracing::instrument(skip_all, fields(caller = caller.id, meeting_id))]
pub async fn reorder(
    state: &AppState,
    caller: &member::Model,
    meeting_id: i32,
    item_ids: &[i32],
) -> ApiResult<AgendaResponse> {
    let txn = state.db.begin_write().await?;
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let meeting = managed(&*txn, caller, meeting_id).await?;
    let items = items_of(&*txn, meeting_id).await?;
    let top: BTreeSet<i32> = items.iter().filter(|i| i.parent_id.is_none()).map(|i| i.id).collect();
    let given: BTreeSet<i32> = item_ids.iter().copied().collect();
    if given != top || given.len() != item_ids.len() {
        return Err(ApiError::validation(
            "item_ids",
            "must list every top-level item of the agenda exactly once",
        ));
    }
    for (position, id) in item_ids.iter().enumerate() {
        let mut active = agenda_item::ActiveModel {
            id: Set(*id),
            ..Default::default()
        };
        active.position = Set(position as i32 + 1);
        if finalized(&meeting) {
            active.changed_after_finalized = Set(true);
        }
        active.update(&*txn).await?;
    }
    let response = agenda(&*txn, &meeting, Reader::Member(caller)).await?;
    let data = json!({ "meeting_id": meeting_id, "item_ids": item_ids, "after_finalized": finalized(&meeting) });
    // The public sees the new order with the next publication.
    let recorded = emit(&*txn, &meeting, caller.id, "agenda.reordered", data).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// Agrees the agenda: later changes are flagged.
pub async fn finalize(state: &AppState, caller: &member::Model, meeting_id: i32) -> ApiResult<AgendaResponse> {
    let txn = state.db.begin_write().await?;
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let meeting = managed(&*txn, caller, meeting_id).await?;
    let version = meeting.version;
    let mut active = meeting.into_active_model();
    active.agenda_status = Set(AgendaStatus::Finalized.as_str().to_owned());
    // The meeting shows its agenda's status: a PATCH from before must see 412.
    active.version = Set(version + 1);
    let meeting = active.update(&*txn).await?;
    let response = agenda(&*txn, &meeting, Reader::Member(caller)).await?;
    let recorded = emit(
        &*txn,
        &meeting,
        caller.id,
        "agenda.finalized",
        json!({ "meeting_id": meeting_id }),
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// How often a meeting's agenda may be mailed: a corrected agenda goes out again once this has
/// passed; a chair's repeated clicks (or a script) do not fill every invitee's inbox.
const AGENDA_MAIL_INTERVAL: chrono::Duration = chrono::Duration::minutes(10);

/// Mails the agenda to every invitee; again only once [`AGENDA_MAIL_INTERVAL`] has passed (429).
pub async fn publish_agenda(state: &AppState, caller: &member::Model, meeting_id: i32) -> ApiResult<usize> {
    let txn = state.db.begin_write().await?;
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let meeting = managed(&*txn, caller, meeting_id).await?;
    if let Some(last) = meeting.agenda_published_at {
        let wait = last + AGENDA_MAIL_INTERVAL - Utc::now();
        if wait > chrono::Duration::zero() {
            // Rounded up, so that a client waiting as told is not refused again.
            let millis = u64::try_from(wait.num_milliseconds()).unwrap_or(1);
            let retry_after_secs = millis.div_ceil(1000).max(1);
            return Err(ApiError::RateLimited { retry_after_secs });
        }
    }
    let before = public_view(&meeting);
    let items = items_of(&*txn, meeting_id).await?;
    if items.is_empty() {
        return Err(ApiError::unprocessable(
            "agenda_empty",
            "add items before publishing the agenda",
        ));
    }
    let version = meeting.version;
    let mut active = meeting.into_active_model();
    active.agenda_published_at = Set(Some(Utc::now()));
    active.published_agenda = Set(Some(crate::public::data::agenda_to_publish(&items)));
    active.version = Set(version + 1);
    let meeting = active.update(&*txn).await?;
    let sent = notify_invitees(state, &*txn, &meeting, templates::MeetingNotice::Agenda).await?;
    let recorded = emit_seen(
        &*txn,
        before,
        &meeting,
        caller.id,
        "agenda.published",
        json!({ "meeting_id": meeting_id, "recipients": sent }),
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    state.mailer.do_send(mail::Wake);
    Ok(sent)
}

/// The agenda as plain text for mails.
async fn agenda_text(conn: &impl ConnectionTrait, meeting: &meeting::Model) -> ApiResult<String> {
    let tz = timezone_of(meeting)?;
    let agenda = agenda_with_every_link(conn, meeting).await?;
    Ok(agenda
        .items
        .iter()
        .map(|item| {
            let indent = if item.parent_id.is_some() { "    " } else { "" };
            format!(
                "{indent}{}  {} ({} min)",
                item.starts_at.with_timezone(&tz).format("%H:%M"),
                item.title,
                item.duration_minutes
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// An invited member answers yes, no or maybe.
pub async fn rsvp(
    state: &AppState,
    caller: &member::Model,
    meeting_id: i32,
    response: RsvpResponse,
) -> ApiResult<AttendanceResponse> {
    let txn = state.db.begin_write().await?;
    // Attendance is read, then inserted or updated: under the meeting's lock, so that two
    // answers at once (a double click) do not both insert (db::lock_row).
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let (meeting, access) = access(&*txn, caller, meeting_id).await?;
    access.require_open()?;
    if !invitees(&*txn, &meeting).await?.iter().any(|m| m.id == caller.id) {
        return Err(ApiError::Forbidden);
    }
    let row = upsert_attendance(&*txn, meeting_id, caller.id, Some(response.as_str()), None).await?;
    let recorded = emit(&*txn, &meeting, caller.id, "attendance.updated", json!(row)).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(row)
}

/// The chair records who was there.
pub async fn record_presence(
    state: &AppState,
    caller: &member::Model,
    meeting_id: i32,
    member_id: i32,
    present: bool,
) -> ApiResult<AttendanceResponse> {
    let txn = state.db.begin_write().await?;
    crate::db::lock_row::<meeting::Entity>(&*txn, meeting_id).await?;
    let meeting = managed(&*txn, caller, meeting_id).await?;
    if !invitees(&*txn, &meeting).await?.iter().any(|m| m.id == member_id) {
        return Err(ApiError::validation("member_id", "is not invited to this meeting"));
    }
    let row = upsert_attendance(&*txn, meeting_id, member_id, None, Some(present)).await?;
    let recorded = emit(&*txn, &meeting, caller.id, "attendance.updated", json!(row)).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(row)
}

async fn upsert_attendance(
    conn: &impl ConnectionTrait,
    meeting_id: i32,
    member_id: i32,
    response: Option<&str>,
    present: Option<bool>,
) -> ApiResult<AttendanceResponse> {
    let existing = meeting_attendance::Entity::find_by_id((meeting_id, member_id))
        .one(conn)
        .await?;
    let row = match existing {
        Some(row) => {
            let mut active = row.into_active_model();
            if let Some(response) = response {
                active.response = Set(Some(response.to_owned()));
            }
            if let Some(present) = present {
                active.present = Set(Some(present));
            }
            active.updated_at = Set(Utc::now());
            active.update(conn).await?
        }
        None => {
            meeting_attendance::ActiveModel {
                meeting_id: Set(meeting_id),
                member_id: Set(member_id),
                response: Set(response.map(str::to_owned)),
                present: Set(present),
                updated_at: Set(Utc::now()),
            }
            .insert(conn)
            .await?
        }
    };
    Ok(AttendanceResponse {
        meeting_id,
        member_id,
        response: row.response,
        present: row.present,
    })
}

pub async fn attendance(conn: &impl ConnectionTrait, meeting_id: i32) -> ApiResult<Vec<AttendanceResponse>> {
    Ok(meeting_attendance::Entity::find()
        .filter(meeting_attendance::Column::MeetingId.eq(meeting_id))
        .order_by_asc(meeting_attendance::Column::MemberId)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| AttendanceResponse {
            meeting_id,
            member_id: row.member_id,
            response: row.response,
            present: row.present,
        })
        .collect())
}

/// A decision's follow-up: a task in the owner committee, linked to the meeting and the item.
pub async fn add_action_item(
    state: &AppState,
    caller: CallerToken,
    item_id: i32,
    request: ActionItemRequest,
) -> ApiResult<TaskResponse> {
    let member = caller.authorize(state).await?;
    let item = agenda_item::Entity::find_by_id(item_id)
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)?;
    let meeting = managed(state.db.conn(), &member, item.meeting_id).await?;
    let task = CreateTaskRequest {
        title: request.title,
        description: request.description,
        assignee_id: request.assignee_id,
        due_on: request.due_on,
        priority: None,
        position: None,
        meeting_id: Some(meeting.id),
        agenda_item_id: Some(item_id),
    };
    crate::tasks::service::create(state, caller, meeting.committee_id, task).await
}

/// The minutes, assembled from the agenda: attendance, planned against actual time, outcomes and
/// action items; as data and as Markdown.
pub async fn minutes(state: &AppState, caller: &member::Model, meeting_id: i32) -> ApiResult<MinutesResponse> {
    let conn = state.db.conn();
    let (meeting, _) = access(conn, caller, meeting_id).await?;
    let tz = timezone_of(&meeting)?;
    let agenda = agenda_with_every_link(conn, &meeting).await?;
    let attendance = attendance(conn, meeting_id).await?;
    // The owner committee's action items only: an invited committee may link tasks of its own
    // to the meeting, and those are for its members, not for everyone the minutes reach.
    let tasks = task::Entity::find()
        .filter(task::Column::MeetingId.eq(meeting_id))
        .filter(task::Column::CommitteeId.eq(meeting.committee_id))
        .filter(task::Column::DeletedAt.is_null())
        .order_by_asc(task::Column::Id)
        .all(conn)
        .await?;
    let people = invitees(conn, &meeting).await?;
    let name_of = |id: i32| {
        people
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| format!("#{id}"), |m| m.name.clone())
    };

    let items: Vec<MinutesItem> = agenda
        .items
        .into_iter()
        .map(|item| MinutesItem {
            id: item.id,
            title: item.title,
            kind: item.kind,
            planned_starts_at: item.starts_at,
            planned_minutes: item.duration_minutes,
            actual_minutes: (f64::from(item.actual_seconds) / 60.0 * 10.0).round() / 10.0,
            outcome: item.outcome,
            action_items: tasks
                .iter()
                .filter(|t| t.agenda_item_id == Some(item.id))
                .cloned()
                .map(TaskResponse::from)
                .collect(),
        })
        .collect();

    let mut md = format!(
        "# {}\n\n{} · {}\n\n",
        meeting.title,
        in_zone(meeting.starts_at, tz),
        meeting.location.clone().unwrap_or_default()
    );
    md.push_str("## Attendance\n\n");
    for row in &attendance {
        let present = match row.present {
            Some(true) => "present",
            Some(false) => "absent",
            None => "not recorded",
        };
        md.push_str(&format!(
            "- {} — {} (answered: {})\n",
            name_of(row.member_id),
            present,
            row.response.as_deref().unwrap_or("—")
        ));
    }
    md.push_str("\n## Agenda\n\n");
    for (n, item) in items.iter().enumerate() {
        md.push_str(&format!(
            "### {}. {} ({})\n\nPlanned {} min at {}; took {} min.\n\n",
            n + 1,
            item.title,
            item.kind,
            item.planned_minutes,
            item.planned_starts_at.with_timezone(&tz).format("%H:%M"),
            item.actual_minutes
        ));
        if let Some(outcome) = &item.outcome {
            md.push_str(&format!("**Outcome:** {outcome}\n\n"));
        }
        for task in &item.action_items {
            let who = task.assignee_id.map(name_of).unwrap_or_else(|| "unassigned".to_owned());
            let due = task.due_on.map(|d| format!(", due {d}")).unwrap_or_default();
            md.push_str(&format!("- [ ] {} — {who}{due}\n", task.title));
        }
        if !item.action_items.is_empty() {
            md.push('\n');
        }
    }
    Ok(MinutesResponse {
        meeting: present(conn, meeting).await?,
        attendance,
        items,
        markdown: md,
    })
}

/// Files the minutes (Markdown) as a document of the owner committee: a new document the first
/// time, a new version of it afterwards.
pub async fn file_minutes(
    state: &AppState,
    caller: &member::Model,
    meeting_id: i32,
) -> ApiResult<crate::documents::dto::DocumentResponse> {
    let meeting = managed(state.db.conn(), caller, meeting_id).await?;
    let minutes = minutes(state, caller, meeting_id).await?;
    let tag = format!("minutes-{meeting_id}");
    let file_name = format!("minutes-{meeting_id}.md");
    // A document title's bound and rule, whatever the meeting's title (one stored before the
    // rule may hold a line break).
    let title: String = as_one_line(&format!("Minutes: {}", meeting.title))
        .chars()
        .take(300)
        .collect();
    let fields = [("title", title.as_str()), ("tags", tag.as_str())];
    let upload = crate::documents::upload::from_bytes(
        &state.storage,
        minutes.markdown.as_bytes(),
        &file_name,
        "text/markdown",
        &fields,
    )
    .await?;
    // The document the meeting links to, while it exists; never one found by its tag, which any
    // member of any committee sharing documents with this one could have put on theirs.
    let filed = match meeting.minutes_document_id {
        Some(document_id) => document::Entity::find_by_id(document_id)
            .filter(document::Column::CommitteeId.eq(meeting.committee_id))
            .filter(document::Column::DeletedAt.is_null())
            .one(state.db.conn())
            .await?
            .map(|document| document.id),
        None => None,
    };
    if let Some(document_id) = filed {
        return crate::documents::service::add_version(state, caller, document_id, IfMatch(None), upload).await;
    }
    // Linked in the document's transaction, and only if the meeting still links what it did when
    // read: of two filings at once, the second is refused and leaves no document behind.
    let link = async |txn: &crate::db::WriteTxn, document: &document::Model| {
        let linked = meeting::Entity::update_many()
            .col_expr(meeting::Column::MinutesDocumentId, Expr::value(document.id))
            .filter(meeting::Column::Id.eq(meeting_id))
            .filter(match meeting.minutes_document_id {
                Some(before) => meeting::Column::MinutesDocumentId.eq(before),
                None => meeting::Column::MinutesDocumentId.is_null(),
            })
            .exec(&**txn)
            .await?;
        match linked.rows_affected {
            0 => Err(ApiError::Conflict(
                "the minutes were filed at the same time; file them again".to_owned(),
            )),
            _ => Ok(()),
        }
    };
    crate::documents::service::create_and(state, caller, meeting.committee_id, upload, link).await
}

/// Queues the reminder of every scheduled meeting starting within `hours`, once: the flag is set
/// by a conditional update in the same transaction as the mails, so a restart or a second node
/// never sends it again.
pub async fn send_due_reminders(state: &AppState, hours: i64) -> ApiResult<usize> {
    let now = Utc::now();
    let due = meeting::Entity::find()
        .filter(meeting::Column::Status.eq(MeetingStatus::Scheduled.as_str()))
        .filter(meeting::Column::ReminderSentAt.is_null())
        .filter(meeting::Column::StartsAt.gt(now))
        .filter(meeting::Column::StartsAt.lte(now + Duration::hours(hours)))
        .all(state.db.conn())
        .await?;
    let mut sent = 0;
    for meeting in due {
        // One meeting that cannot be reminded must not keep the others' reminders from going out.
        match remind(state, &meeting, now).await {
            Ok(count) => sent += count,
            Err(error) => {
                tracing::error!(meeting_id = meeting.id, error = ?error, "meeting reminder failed; the next check tries again")
            }
        }
    }
    if sent > 0 {
        state.mailer.do_send(mail::Wake);
    }
    Ok(sent)
}

/// Claims `meeting`'s reminder and queues it to the invitees, in one transaction.
async fn remind(state: &AppState, meeting: &meeting::Model, now: DateTime<Utc>) -> ApiResult<usize> {
    let txn = state.db.begin_write().await?;
    let claimed = meeting::Entity::update_many()
        .col_expr(meeting::Column::ReminderSentAt, sea_orm::sea_query::Expr::value(now))
        .filter(meeting::Column::Id.eq(meeting.id))
        .filter(meeting::Column::ReminderSentAt.is_null())
        .exec(&*txn)
        .await?;
    let sent = if claimed.rows_affected == 1 {
        notify_invitees(state, &*txn, meeting, templates::MeetingNotice::Reminder).await?
    } else {
        0
    };
    txn.commit().await?;
    Ok(sent)
}

/// How far back the personal calendar feed goes: calendar applications poll it, and keep what
/// they have already read; the history beyond is in the committees' meeting lists.
pub const FEED_HISTORY_DAYS: i64 = 365;

/// The meetings of the personal calendar feed: those of the viewer's committees, owned or
/// invited to (every meeting for the secretariat), that start at most [`FEED_HISTORY_DAYS`] ago.
pub async fn visible_meetings(conn: &impl ConnectionTrait, viewer: &member::Model) -> ApiResult<Vec<meeting::Model>> {
    let since = Utc::now() - chrono::Duration::days(FEED_HISTORY_DAYS);
    let recent = meeting::Entity::find()
        .filter(meeting::Column::StartsAt.gte(since))
        .order_by_asc(meeting::Column::StartsAt);
    if viewer.role == Role::Secretariat.as_str() {
        return Ok(recent.all(conn).await?);
    }
    let committees = committee_membership::Entity::find()
        .select_only()
        .column(committee_membership::Column::CommitteeId)
        .filter(committee_membership::Column::MemberId.eq(viewer.id))
        .into_query();
    let invited = meeting_committee::Entity::find()
        .select_only()
        .column(meeting_committee::Column::MeetingId)
        .filter(meeting_committee::Column::CommitteeId.in_subquery(committees.clone()))
        .into_query();
    Ok(recent
        .filter(
            sea_orm::Condition::any()
                .add(meeting::Column::CommitteeId.in_subquery(committees))
                .add(meeting::Column::Id.in_subquery(invited)),
        )
        .all(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn a_span_names_its_zone_once_and_each_end_across_a_change_of_summer_time() {
        let lima = chrono_tz::America::Lima;
        let starts = Utc.with_ymd_and_hms(2027, 3, 1, 15, 0, 0).unwrap();
        assert_eq!(
            span_in_zone(starts, starts + Duration::hours(2), lima),
            "2027-03-01 10:00 – 12:00 (America/Lima, UTC-05:00)"
        );
        // Santiago leaves summer time in April: a span from March to late April crosses it.
        let santiago = chrono_tz::America::Santiago;
        let (march, april) = (
            Utc.with_ymd_and_hms(2027, 3, 20, 13, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2027, 4, 20, 14, 0, 0).unwrap(),
        );
        assert_eq!(
            span_in_zone(march, april, santiago),
            "2027-03-20 10:00 (America/Santiago, UTC-03:00) – 10:00 (America/Santiago, UTC-04:00)"
        );
    }
}
