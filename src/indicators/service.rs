//! Indicator definitions, submitted values and their validation.

use chrono::Utc;
use entity::{indicator_definition, indicator_value, member, organization, port};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
    TryIntoModel,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Role, Validator, required_line, string_enum};
use crate::error::{ApiError, ApiResult, ConflictExt};
use crate::events::{self, Channel};
use crate::pagination::{Page, Paginated};
use crate::preconditions::IfMatch;
use crate::realtime;
use crate::state::AppState;

string_enum!(
    /// Where a submitted value stands.
    ValueStatus { Submitted => "submitted", Validated => "validated", Rejected => "rejected" }
);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionRequest {
    /// Stable code, e.g. `vessel_turnaround_hours`, kept in lower case. `values` is reserved.
    #[schema(pattern = r"^[A-Za-z0-9_]{1,64}$")]
    pub code: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name_en: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name_es: String,
    #[schema(min_length = 1, max_length = 32)]
    pub unit: String,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub higher_is_better: bool,
}

/// A change to a definition: its names, unit, description or direction. Its code is its
/// identity and stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDefinitionRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name_en: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub name_es: Option<String>,
    #[schema(min_length = 1, max_length = 32)]
    pub unit: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub higher_is_better: Option<bool>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DefinitionResponse {
    pub code: String,
    pub name_en: String,
    pub name_es: String,
    pub unit: String,
    pub description: String,
    pub higher_is_better: bool,
}

impl From<indicator_definition::Model> for DefinitionResponse {
    fn from(row: indicator_definition::Model) -> Self {
        Self {
            code: row.code,
            name_en: row.name_en,
            name_es: row.name_es,
            unit: row.unit,
            description: row.description,
            higher_is_better: row.higher_is_better,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValueRequest {
    pub port_id: i32,
    #[schema(minimum = 1990, maximum = 2100)]
    pub year: i32,
    pub value: f64,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ValueResponse {
    pub id: i32,
    pub indicator: String,
    pub port_id: i32,
    pub port: String,
    pub unlocode: String,
    pub year: i32,
    pub value: f64,
    pub status: String,
    /// Moves on every submission and review: send it as `If-Match` with a review.
    pub version: i32,
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ValueFilter {
    /// A port id or UN/LOCODE.
    pub port: Option<String>,
    pub year: Option<i32>,
    pub from_year: Option<i32>,
    pub to_year: Option<i32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReviewFilter {
    /// `submitted` (default), `validated` or `rejected`.
    #[param(value_type = Option<ValueStatus>, inline)]
    pub status: Option<String>,
}

pub async fn definition(conn: &impl sea_orm::ConnectionTrait, code: &str) -> ApiResult<indicator_definition::Model> {
    indicator_definition::Entity::find()
        .filter(indicator_definition::Column::Code.eq(code))
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)
}

pub async fn definitions(conn: &impl sea_orm::ConnectionTrait) -> ApiResult<Vec<DefinitionResponse>> {
    let rows = indicator_definition::Entity::find()
        .order_by_asc(indicator_definition::Column::Code)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(DefinitionResponse::from).collect())
}

/// A code names the indicator in paths beside the review list's `/api/admin/indicators/values`,
/// so `values` is kept out: `PATCH /api/admin/indicators/values` must mean one thing only.
fn check_code(code: &str) -> Result<(), &'static str> {
    if code.is_empty() || code.len() > 64 || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("must be 1 to 64 letters, digits or underscores");
    }
    if code == "values" {
        return Err("`values` is reserved (it names the review list's path)");
    }
    Ok(())
}

pub async fn create_definition(
    state: &AppState,
    actor_id: i32,
    request: DefinitionRequest,
) -> ApiResult<DefinitionResponse> {
    let mut validator = Validator::default();
    let code = request.code.trim().to_lowercase();
    if let Err(message) = check_code(&code) {
        validator.add("code", message);
    }
    let name_en = validator.check(required_line("name_en", &request.name_en, 200));
    let name_es = validator.check(required_line("name_es", &request.name_es, 200));
    let unit = validator.check(required_line("unit", &request.unit, 32));
    validator.long_text("description", request.description.as_deref());
    validator.finish()?;
    let txn = state.db.begin_write().await?;
    let row = indicator_definition::ActiveModel {
        code: Set(code),
        name_en: Set(name_en.unwrap_or_default()),
        name_es: Set(name_es.unwrap_or_default()),
        unit: Set(unit.unwrap_or_default()),
        description: Set(request.description.unwrap_or_default().trim().to_owned()),
        higher_is_better: Set(request.higher_is_better),
        ..Default::default()
    }
    .insert(&*txn)
    .await
    .on_conflict("an indicator with this code already exists")?;
    audit(
        &*txn,
        actor_id,
        "indicator.defined",
        row.id,
        json!({ "code": row.code }),
    )
    .await?;
    let response = DefinitionResponse::from(row);
    let recorded = events::record(&*txn, &[Channel::Public], "indicator.defined", None, json!(response)).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// One page of the definitions, in the order they were made: the secretariat's list.
pub async fn definitions_page(
    conn: &impl sea_orm::ConnectionTrait,
    page: Page,
) -> ApiResult<Paginated<DefinitionResponse>> {
    let mut query = indicator_definition::Entity::find()
        .order_by_asc(indicator_definition::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(indicator_definition::Column::Id.gt(after));
    }
    let rows = query.all(conn).await?;
    Ok(Paginated::from_rows(
        rows,
        page,
        |row| row.id.into(),
        DefinitionResponse::from,
    ))
}

/// Changes a definition's names, unit, description or direction; the public area shows it at
/// once, and the `public` channel hears of it.
pub async fn update_definition(
    state: &AppState,
    actor_id: i32,
    code: &str,
    request: UpdateDefinitionRequest,
) -> ApiResult<DefinitionResponse> {
    let mut validator = Validator::default();
    let name_en = request
        .name_en
        .as_deref()
        .and_then(|name| validator.check(required_line("name_en", name, 200)));
    let name_es = request
        .name_es
        .as_deref()
        .and_then(|name| validator.check(required_line("name_es", name, 200)));
    let unit = request
        .unit
        .as_deref()
        .and_then(|unit| validator.check(required_line("unit", unit, 32)));
    validator.long_text("description", request.description.as_deref());
    validator.finish()?;
    let txn = state.db.begin_write().await?;
    let row = definition(&*txn, code).await?;
    let id = row.id;
    let mut active = row.clone().into_active_model();
    if let Some(name_en) = name_en {
        active.name_en = Set(name_en);
    }
    if let Some(name_es) = name_es {
        active.name_es = Set(name_es);
    }
    if let Some(unit) = unit {
        active.unit = Set(unit);
    }
    if let Some(description) = request.description {
        active.description = Set(description.trim().to_owned());
    }
    if let Some(higher_is_better) = request.higher_is_better {
        active.higher_is_better = Set(higher_is_better);
    }
    // An empty change answers the definition as it is, and tells nobody anything.
    if !active.is_changed() {
        return Ok(row.into());
    }
    let response = DefinitionResponse::from(active.update(&*txn).await?);
    audit(
        &*txn,
        actor_id,
        "indicator.updated",
        id,
        json!({ "code": response.code }),
    )
    .await?;
    let recorded = events::record(&*txn, &[Channel::Public], "indicator.updated", None, json!(response)).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

const MAX_VALUE: f64 = 1e15;

/// A member of a port community submits (or corrects) the value of one of its ports; it waits
/// for the secretariat's validation before it is public.
pub async fn submit(
    state: &AppState,
    caller: &member::Model,
    code: &str,
    request: ValueRequest,
) -> ApiResult<ValueResponse> {
    // Far beyond any port's figure (tonnes, TEU, dollars), and still printed in plain digits.
    if !request.value.is_finite() || request.value.abs() > MAX_VALUE {
        return Err(ApiError::validation("value", "must be a number between -1e15 and 1e15"));
    }
    if !(1990..=2100).contains(&request.year) {
        return Err(ApiError::validation("year", "must be between 1990 and 2100"));
    }
    let txn = state.db.begin_write().await?;
    let definition = definition(&*txn, code).await?;
    let port = port::Entity::find_by_id(request.port_id)
        .one(&*txn)
        .await?
        .ok_or_else(|| ApiError::validation("port_id", "no such port"))?;
    if caller.role != Role::Secretariat.as_str() {
        let organization = match caller.organization_id {
            Some(id) => organization::Entity::find_by_id(id).one(&*txn).await?,
            None => None,
        };
        if organization.and_then(|o| o.port_community_id) != Some(port.port_community_id) {
            return Err(ApiError::Forbidden);
        }
    }
    let existing = indicator_value::Entity::find()
        .filter(indicator_value::Column::IndicatorId.eq(definition.id))
        .filter(indicator_value::Column::PortId.eq(port.id))
        .filter(indicator_value::Column::Year.eq(request.year))
        // Locked, as a review locks it: a review committing meanwhile is seen (its version, and
        // whether the value was public), not overwritten.
        .lock_exclusive()
        .one(&*txn)
        .await?;
    let was_public = existing
        .as_ref()
        .is_some_and(|row| row.status == ValueStatus::Validated.as_str());
    let mut active = match existing {
        Some(row) => {
            let version = row.version + 1;
            let mut active = row.into_active_model();
            active.version = Set(version);
            active
        }
        None => indicator_value::ActiveModel {
            indicator_id: Set(definition.id),
            port_id: Set(port.id),
            year: Set(request.year),
            version: Set(1),
            ..Default::default()
        },
    };
    active.value = Set(request.value);
    active.status = Set(ValueStatus::Submitted.as_str().to_owned());
    active.submitted_by = Set(caller.id);
    active.submitted_at = Set(Utc::now());
    active.validated_by = Set(None);
    active.validated_at = Set(None);
    let row: indicator_value::Model = active
        .save(&*txn)
        .await
        .on_conflict("this value was submitted at the same moment by someone else; read it and try again")?
        .try_into_model()?;
    let response = present(row, &definition, &port);
    // A corrected figure waits for validation again, so the validated one leaves the public area.
    let recorded = match was_public {
        true => withdrawn(&*txn, &response).await?,
        false => events::Recorded::default(),
    };
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// Tells the public area that a value it showed is no longer validated.
async fn withdrawn(conn: &impl sea_orm::ConnectionTrait, value: &ValueResponse) -> ApiResult<events::Recorded> {
    let data = json!({ "indicator": value.indicator, "port_id": value.port_id, "year": value.year });
    Ok(events::record(conn, &[Channel::Public], "indicator.withdrawn", None, data).await?)
}

fn present(row: indicator_value::Model, definition: &indicator_definition::Model, port: &port::Model) -> ValueResponse {
    ValueResponse {
        id: row.id,
        indicator: definition.code.clone(),
        port_id: port.id,
        port: port.name.clone(),
        unlocode: port.unlocode.clone(),
        year: row.year,
        value: row.value,
        status: row.status,
        version: row.version,
    }
}

/// The secretariat validates (publishes) or rejects a submitted value, or rejects a validated
/// one (takes it off the public area). A rejected value is not reviewed again: its port submits
/// it anew. Read locked, so that of two reviews at once the second sees the first's; with
/// `If-Match`, a value resubmitted since the reviewer read it is not the one reviewed (412).
pub async fn review(
    state: &AppState,
    actor_id: i32,
    value_id: i32,
    if_match: IfMatch,
    validate: bool,
) -> ApiResult<ValueResponse> {
    let txn = state.db.begin_write().await?;
    let row = indicator_value::Entity::find_by_id(value_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    if_match.check(row.version)?;
    let reviewable = match ValueStatus::from_db(&row.status)? {
        ValueStatus::Submitted => true,
        ValueStatus::Validated => !validate,
        ValueStatus::Rejected => false,
    };
    if !reviewable {
        return Err(ApiError::Conflict(format!("the value is {}", row.status)));
    }
    let was_public = row.status == ValueStatus::Validated.as_str();
    let definition = indicator_definition::Entity::find_by_id(row.indicator_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let port = port::Entity::find_by_id(row.port_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let version = row.version + 1;
    let mut active = row.into_active_model();
    active.version = Set(version);
    let status = if validate {
        ValueStatus::Validated
    } else {
        ValueStatus::Rejected
    };
    active.status = Set(status.as_str().to_owned());
    active.validated_by = Set(Some(actor_id));
    active.validated_at = Set(Some(Utc::now()));
    let row = active.update(&*txn).await?;
    let response = present(row, &definition, &port);
    let action = if validate {
        "indicator.validated"
    } else {
        "indicator.rejected"
    };
    audit(
        &*txn,
        actor_id,
        action,
        response.id,
        json!({ "indicator": response.indicator, "port": response.unlocode, "year": response.year }),
    )
    .await?;
    let recorded = match (validate, was_public) {
        (true, _) => events::record(&*txn, &[Channel::Public], "indicator.validated", None, json!(response)).await?,
        (false, true) => withdrawn(&*txn, &response).await?,
        (false, false) => events::Recorded::default(),
    };
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

async fn audit(
    conn: &impl sea_orm::ConnectionTrait,
    actor_id: i32,
    action: &str,
    target_id: i32,
    details: serde_json::Value,
) -> ApiResult<()> {
    crate::audit::record(
        conn,
        crate::audit::AuditEntry {
            actor_id: Some(actor_id),
            action,
            target_type: "indicator",
            target_id: Some(target_id),
            details,
            ip: None,
        },
    )
    .await?;
    Ok(())
}

/// Where a page of one indicator's values ends: they are listed by year, then port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct YearPort {
    year: i32,
    port_id: i32,
}

impl std::fmt::Display for YearPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.year, self.port_id)
    }
}

impl std::str::FromStr for YearPort {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (year, port_id) = text.split_once('/').ok_or(())?;
        Ok(YearPort {
            year: year.parse().map_err(|_| ())?,
            port_id: port_id.parse().map_err(|_| ())?,
        })
    }
}

/// One page of the values of one indicator in a status, with their ports, filtered.
pub async fn values(
    conn: &impl sea_orm::ConnectionTrait,
    code: &str,
    status: ValueStatus,
    filter: &ValueFilter,
    page: Page<YearPort>,
) -> ApiResult<Paginated<ValueResponse>> {
    if let (Some(from), Some(to)) = (filter.from_year, filter.to_year)
        && to < from
    {
        return Err(ApiError::validation("to_year", "must not be before `from_year`"));
    }
    let definition = definition(conn, code).await?;
    let mut query = values_in(status)
        .filter(indicator_value::Column::IndicatorId.eq(definition.id))
        .limit(page.limit + 1);
    let ports = port::Entity::find().all(conn).await?;
    if let Some(wanted) = &filter.port {
        let port = ports
            .iter()
            .find(|p| p.unlocode.eq_ignore_ascii_case(wanted) || p.id.to_string() == *wanted)
            .ok_or(ApiError::NotFound)?;
        query = query.filter(indicator_value::Column::PortId.eq(port.id));
    }
    if let Some(year) = filter.year {
        query = query.filter(indicator_value::Column::Year.eq(year));
    }
    if let Some(from) = filter.from_year {
        query = query.filter(indicator_value::Column::Year.gte(from));
    }
    if let Some(to) = filter.to_year {
        query = query.filter(indicator_value::Column::Year.lte(to));
    }
    if let Some(after) = page.after {
        query = query.filter(
            sea_orm::Condition::any()
                .add(indicator_value::Column::Year.gt(after.year))
                .add(
                    sea_orm::Condition::all()
                        .add(indicator_value::Column::Year.eq(after.year))
                        .add(indicator_value::Column::PortId.gt(after.port_id)),
                ),
        );
    }
    let rows: Vec<ValueResponse> = with_ports(query.all(conn).await?, &definition, &ports).collect();
    let key = |value: &ValueResponse| YearPort {
        year: value.year,
        port_id: value.port_id,
    };
    Ok(Paginated::from_rows(rows, page, key, |value| value))
}

/// The latest year in which `code` has a value in `status`.
pub async fn latest_year(
    conn: &impl sea_orm::ConnectionTrait,
    code: &str,
    status: ValueStatus,
) -> ApiResult<Option<i32>> {
    let definition = definition(conn, code).await?;
    let latest = indicator_value::Entity::find()
        .filter(indicator_value::Column::IndicatorId.eq(definition.id))
        .filter(indicator_value::Column::Status.eq(status.as_str()))
        .order_by_desc(indicator_value::Column::Year)
        .one(conn)
        .await?;
    Ok(latest.map(|value| value.year))
}

/// The values in `status`, by year then port: where both listings start.
fn values_in(status: ValueStatus) -> sea_orm::Select<indicator_value::Entity> {
    indicator_value::Entity::find()
        .filter(indicator_value::Column::Status.eq(status.as_str()))
        .order_by_asc(indicator_value::Column::Year)
        .order_by_asc(indicator_value::Column::PortId)
}

/// The answers for one indicator's `rows`, each with its port.
fn with_ports<'a>(
    rows: Vec<indicator_value::Model>,
    definition: &'a indicator_definition::Model,
    ports: &'a [port::Model],
) -> impl Iterator<Item = ValueResponse> + 'a {
    rows.into_iter().filter_map(move |row| {
        let port = ports.iter().find(|p| p.id == row.port_id)?;
        Some(present(row, definition, port))
    })
}

/// One page of the values in `status`, oldest first: the secretariat's review queue.
pub async fn review_queue(
    conn: &impl sea_orm::ConnectionTrait,
    status: ValueStatus,
    page: Page,
) -> ApiResult<Paginated<ValueResponse>> {
    let mut query = indicator_value::Entity::find()
        .filter(indicator_value::Column::Status.eq(status.as_str()))
        .order_by_asc(indicator_value::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(indicator_value::Column::Id.gt(after));
    }
    let rows = query.all(conn).await?;
    // Both small (the Network's indicators and ports), and a page may name any of them.
    let definitions = indicator_definition::Entity::find().all(conn).await?;
    let ports = port::Entity::find().all(conn).await?;
    let described: Vec<_> = rows
        .into_iter()
        .filter_map(|row| {
            let definition = definitions.iter().find(|d| d.id == row.indicator_id)?;
            let port = ports.iter().find(|p| p.id == row.port_id)?;
            Some((row, definition, port))
        })
        .collect();
    Ok(Paginated::from_rows(
        described,
        page,
        |(row, _, _)| row.id.into(),
        |(row, definition, port)| present(row, definition, port),
    ))
}

/// The values in `status` of every indicator (by code, then year and port), of one port when
/// `port_id` is given: three queries, however many indicators there are.
pub async fn values_of_every_indicator(
    conn: &impl sea_orm::ConnectionTrait,
    status: ValueStatus,
    port_id: Option<i32>,
) -> ApiResult<Vec<ValueResponse>> {
    let definitions = indicator_definition::Entity::find()
        .order_by_asc(indicator_definition::Column::Code)
        .all(conn)
        .await?;
    let ports = port::Entity::find().all(conn).await?;
    let mut query = values_in(status);
    if let Some(port_id) = port_id {
        query = query.filter(indicator_value::Column::PortId.eq(port_id));
    }
    let mut by_indicator: std::collections::HashMap<i32, Vec<indicator_value::Model>> =
        std::collections::HashMap::new();
    for row in query.all(conn).await? {
        by_indicator.entry(row.indicator_id).or_default().push(row);
    }
    Ok(definitions
        .iter()
        .flat_map(|definition| {
            let rows = by_indicator.remove(&definition.id).unwrap_or_default();
            with_ports(rows, definition, &ports)
        })
        .collect())
}
