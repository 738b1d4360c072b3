//! Queries of the public area, shared by the JSON API and the web pages. Each reads only data
//! that has been explicitly published.

use chrono::{DateTime, Utc};
use entity::{country, document_version, meeting, port, port_community, publication};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::documents::dto::{PublicationKind, PublicationStatus, Summary};
use crate::error::{ApiError, ApiResult};
use crate::indicators::service::{self as indicators, ValueResponse, ValueStatus};
use crate::meetings::dto::MeetingStatus;
use crate::pagination::{Page, Paginated};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CountryResponse {
    pub code: String,
    pub name_en: String,
    pub name_es: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PortSummary {
    pub id: i32,
    pub name: String,
    pub unlocode: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PortCommunityResponse {
    pub id: i32,
    pub name: String,
    pub country_code: String,
    pub status: String,
    pub ports: Vec<PortSummary>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PortResponse {
    pub id: i32,
    pub name: String,
    pub unlocode: String,
    pub community: PortCommunityResponse,
    pub indicators: Vec<ValueResponse>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PublicAgendaItem {
    pub title: String,
    pub kind: String,
    pub duration_minutes: i32,
    pub starts_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct PublicMeeting {
    pub id: i32,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub timezone: String,
    pub location: Option<String>,
    pub status: String,
    /// Present once the agenda has been published.
    pub agenda: Option<Vec<PublicAgendaItem>>,
}

pub async fn countries(conn: &impl ConnectionTrait) -> ApiResult<Vec<CountryResponse>> {
    let rows = country::Entity::find()
        .order_by_asc(country::Column::Code)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|c| CountryResponse {
            code: c.code,
            name_en: c.name_en,
            name_es: c.name_es,
        })
        .collect())
}

pub async fn port_communities(
    conn: &impl ConnectionTrait,
    country: Option<&str>,
) -> ApiResult<Vec<PortCommunityResponse>> {
    let mut query = port_community::Entity::find().order_by_asc(port_community::Column::Name);
    if let Some(country) = country {
        query = query.filter(port_community::Column::CountryCode.eq(country.trim().to_uppercase()));
    }
    let communities = query.all(conn).await?;
    let ports = port::Entity::find().order_by_asc(port::Column::Name).all(conn).await?;
    Ok(communities.into_iter().map(|c| community(c, &ports)).collect())
}

fn community(row: port_community::Model, ports: &[port::Model]) -> PortCommunityResponse {
    PortCommunityResponse {
        id: row.id,
        ports: ports
            .iter()
            .filter(|p| p.port_community_id == row.id)
            .map(|p| PortSummary {
                id: p.id,
                name: p.name.clone(),
                unlocode: p.unlocode.clone(),
            })
            .collect(),
        name: row.name,
        country_code: row.country_code,
        status: row.status,
    }
}

pub async fn port(conn: &impl ConnectionTrait, id: i32) -> ApiResult<PortResponse> {
    let row = port::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let community_row = port_community::Entity::find_by_id(row.port_community_id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let ports = port::Entity::find()
        .filter(port::Column::PortCommunityId.eq(community_row.id))
        .all(conn)
        .await?;
    let values = indicators::values_of_every_indicator(conn, ValueStatus::Validated, Some(row.id)).await?;
    Ok(PortResponse {
        id: row.id,
        name: row.name,
        unlocode: row.unlocode,
        community: community(community_row, &ports),
        indicators: values,
    })
}

#[derive(Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicPublicationFilter {
    #[param(value_type = Option<PublicationKind>, inline)]
    pub kind: Option<String>,
    /// A member country's ISO code.
    pub country: Option<String>,
    /// The year it was published.
    #[param(minimum = 1, maximum = 9999)]
    pub year: Option<i32>,
    /// Words in the title or summaries.
    pub q: Option<String>,
}

/// One page of the approved publications, newest first, filtered: for the API's list, the
/// publications page and the home page's latest.
pub async fn approved_publications(
    conn: &impl ConnectionTrait,
    filter: &PublicPublicationFilter,
    page: Page,
) -> ApiResult<Paginated<publication::Model>> {
    let mut query = publication::Entity::find()
        .filter(publication::Column::Status.eq(PublicationStatus::Approved.as_str()))
        .order_by_desc(publication::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(publication::Column::Id.lt(after));
    }
    if let Some(kind) = &filter.kind {
        let kind = PublicationKind::from_db(kind).map_err(|_| ApiError::validation("kind", "unknown kind"))?;
        query = query.filter(publication::Column::Kind.eq(kind.as_str()));
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        query = query.filter(publication::Column::SearchText.like(crate::search::contains(q)));
    }
    if let Some(country) = &filter.country {
        let code = country.trim().to_uppercase();
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ApiError::validation("country", "must be a two-letter country code"));
        }
        // The codes are a JSON array of two-letter strings: a code is in it when its quoted form
        // is in the array's text. Filtered here, not after the page is read, so that no page
        // comes back short and none is skipped.
        let codes = Expr::col(publication::Column::CountryCodes).cast_as("text");
        query = query.filter(codes.like(format!("%\"{code}\"%")));
    }
    if let Some(year) = filter.year {
        if !(1..=9999).contains(&year) {
            return Err(ApiError::validation("year", "must be a year between 1 and 9999"));
        }
        let start_of = |year: i32| {
            chrono::NaiveDate::from_ymd_opt(year, 1, 1)
                .unwrap_or_default()
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
        };
        let (start, end) = (start_of(year), start_of(year + 1));
        query = query
            .filter(publication::Column::PublishedAt.gte(start))
            .filter(publication::Column::PublishedAt.lt(end));
    }
    let rows = query.all(conn).await?;
    Ok(Paginated::from_rows(rows, page, |p| p.id.into(), |p| p))
}

/// A publication as the public sees it: what was approved, nothing else.
#[derive(Serialize, ToSchema)]
pub struct PublicPublication {
    pub id: i32,
    pub kind: String,
    pub title: String,
    pub summary: Summary,
    pub country_codes: Vec<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub file: Option<PublicFile>,
}

#[derive(Serialize, ToSchema)]
pub struct PublicFile {
    pub file_name: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub url: String,
}

pub fn public_publication(row: publication::Model, version: Option<document_version::Model>) -> PublicPublication {
    PublicPublication {
        id: row.id,
        kind: row.kind,
        title: row.title,
        summary: Summary {
            en: row.summary_en,
            es: row.summary_es,
        },
        country_codes: serde_json::from_value(row.country_codes).unwrap_or_default(),
        published_at: row.published_at,
        file: version.map(|v| PublicFile {
            file_name: v.file_name,
            content_type: v.content_type,
            size_bytes: v.size_bytes,
            url: format!("/api/public/publications/{}/file", row.id),
        }),
    }
}

/// Where a page of public meetings ends. They are listed latest first: by start, then by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingKey {
    starts_at: DateTime<Utc>,
    id: i32,
}

impl std::fmt::Display for MeetingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let starts_at = self.starts_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        write!(f, "{starts_at}/{}", self.id)
    }
}

impl std::str::FromStr for MeetingKey {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (starts_at, id) = text.rsplit_once('/').ok_or(())?;
        Ok(MeetingKey {
            starts_at: DateTime::parse_from_rfc3339(starts_at).map_err(|_| ())?.to_utc(),
            id: id.parse().map_err(|_| ())?,
        })
    }
}

/// One page of the meetings marked public (drafts excepted), latest first, each with its agenda
/// once published: two queries, however many meetings the page holds.
pub async fn public_meetings(
    conn: &impl ConnectionTrait,
    page: Page<MeetingKey>,
) -> ApiResult<Paginated<PublicMeeting>> {
    let mut query = meeting::Entity::find()
        .filter(meeting::Column::Public.eq(true))
        .filter(meeting::Column::Status.ne(MeetingStatus::Draft.as_str()))
        .order_by_desc(meeting::Column::StartsAt)
        .order_by_desc(meeting::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = &page.after {
        query = query.filter(
            Condition::any().add(meeting::Column::StartsAt.lt(after.starts_at)).add(
                Condition::all()
                    .add(meeting::Column::StartsAt.eq(after.starts_at))
                    .add(meeting::Column::Id.lt(after.id)),
            ),
        );
    }
    let rows = query.all(conn).await?;
    let page_key = |row: &meeting::Model| MeetingKey {
        starts_at: row.starts_at,
        id: row.id,
    };
    Ok(Paginated::from_rows(rows, page, page_key, |row| {
        let agenda = stored_agenda(&row);
        as_public(row, agenda)
    }))
}

/// Whether the public area shows `meeting`: marked public, and past its draft.
pub fn shows(meeting: &meeting::Model) -> bool {
    meeting.public && meeting.status != MeetingStatus::Draft.as_str()
}

/// `meeting` as the public area shows it (see [`shows`]), with its agenda as last published.
pub fn public_meeting(meeting: &meeting::Model) -> PublicMeeting {
    as_public(meeting.clone(), stored_agenda(meeting))
}

/// An agenda item as published: what the public sees of it, and its id, so that deleting it
/// takes it off the public area at once. Its start is not kept but computed from the meeting's
/// start, so that a rescheduled meeting's agenda moves with it.
#[derive(Serialize, Deserialize)]
struct PublishedItem {
    id: i32,
    title: String,
    kind: String,
    duration_minutes: i32,
}

/// The agenda's top-level items, in order, as the public will see them: what a meeting keeps
/// when its agenda is published. Other edits reach the public area with the next publication.
pub fn agenda_to_publish(items: &[entity::agenda_item::Model]) -> String {
    let published: Vec<PublishedItem> = items
        .iter()
        .filter(|item| item.parent_id.is_none())
        .map(|item| PublishedItem {
            id: item.id,
            title: item.title.clone(),
            kind: item.kind.clone(),
            duration_minutes: item.duration_minutes,
        })
        .collect();
    serde_json::json!(published).to_string()
}

/// The published agenda without `item_id`, if it held it: a deleted item leaves the public area
/// at once (showing less is always allowed; showing an edit waits for the next publication).
pub fn published_without(meeting: &meeting::Model, item_id: i32) -> Option<String> {
    let mut items = stored_agenda(meeting)?;
    let before = items.len();
    items.retain(|item| item.id != item_id);
    (items.len() < before).then(|| serde_json::json!(items).to_string())
}

fn stored_agenda(meeting: &meeting::Model) -> Option<Vec<PublishedItem>> {
    let text = meeting.published_agenda.as_deref()?;
    match serde_json::from_str(text) {
        Ok(items) => Some(items),
        Err(error) => {
            tracing::error!(meeting_id = meeting.id, %error, "a published agenda could not be read; the public sees none");
            None
        }
    }
}

/// A meeting's public fields; `agenda` is its published agenda, if any.
fn as_public(row: meeting::Model, agenda: Option<Vec<PublishedItem>>) -> PublicMeeting {
    PublicMeeting {
        agenda: agenda.map(|items| public_agenda(&row, items)),
        id: row.id,
        title: row.title,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        timezone: row.timezone,
        location: row.location,
        status: row.status,
    }
}

/// A published agenda as the public sees it: each item with its start.
fn public_agenda(meeting: &meeting::Model, items: Vec<PublishedItem>) -> Vec<PublicAgendaItem> {
    let mut clock = meeting.starts_at;
    items
        .into_iter()
        .map(|item| {
            let starts_at = clock;
            clock += chrono::Duration::minutes(item.duration_minutes.into());
            PublicAgendaItem {
                title: item.title,
                kind: item.kind,
                duration_minutes: item.duration_minutes,
                starts_at,
            }
        })
        .collect()
}

/// How many public contacts and approved publications there are (counted, not loaded).
pub async fn public_counts(conn: &impl ConnectionTrait) -> ApiResult<(u64, u64)> {
    use sea_orm::PaginatorTrait;
    let contacts = entity::contact::Entity::find()
        .filter(entity::contact::Column::Public.eq(true))
        .count(conn)
        .await?;
    let publications = entity::publication::Entity::find()
        .filter(entity::publication::Column::Status.eq(crate::documents::dto::PublicationStatus::Approved.as_str()))
        .count(conn)
        .await?;
    Ok((contacts, publications))
}
