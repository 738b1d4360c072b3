//! Directory rules: validation, the folded search text, public filtering, CSV import and export.

use std::collections::HashMap;

use chrono::Utc;
use entity::{contact, organization, port_community};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, TryIntoModel,
};
use serde_json::json;

use super::dto::*;
use crate::domain::{Email, ONE_LINE, Validator, has_control, required_line};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::events::{self, Channel};
use crate::pagination::Page;
use crate::realtime;
use crate::reference;
use crate::search;
use crate::state::AppState;

fn check_country(code: Option<&str>) -> Result<Option<String>, FieldError> {
    code.map(|code| {
        let code = code.trim().to_uppercase();
        if reference::is_member_country(&code) {
            Ok(code)
        } else {
            Err(FieldError::new("country_code", "must be a member country's code"))
        }
    })
    .transpose()
}

fn check_website(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    raw.map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|website| {
            if crate::domain::is_web_url(website) {
                Ok(website.to_owned())
            } else {
                Err(FieldError::new(
                    "website",
                    "must be an http(s) URL of at most 500 characters",
                ))
            }
        })
        .transpose()
}

fn optional_text(field: &str, raw: Option<&str>, max: usize) -> Result<Option<String>, FieldError> {
    let text = raw.map(str::trim).filter(|t| !t.is_empty());
    match text {
        Some(text) if text.chars().count() > max => {
            Err(FieldError::new(field, format!("must be at most {max} characters long")))
        }
        Some(text) if has_control(text) => Err(FieldError::new(field, ONE_LINE)),
        other => Ok(other.map(str::to_owned)),
    }
}

async fn check_port_community(conn: &impl ConnectionTrait, id: Option<i32>) -> ApiResult<()> {
    if let Some(id) = id
        && port_community::Entity::find_by_id(id).one(conn).await?.is_none()
    {
        return Err(ApiError::validation("port_community_id", "no such port community"));
    }
    Ok(())
}

/// Audits a change of the directory and tells the public area about it, in the change's
/// transaction.
async fn emit_public(
    conn: &impl ConnectionTrait,
    actor_id: i32,
    kind: &str,
    data: serde_json::Value,
) -> ApiResult<events::Recorded> {
    crate::audit::record(
        conn,
        crate::audit::AuditEntry {
            actor_id: Some(actor_id),
            action: kind,
            target_type: "directory",
            target_id: None,
            details: data.clone(),
            ip: None,
        },
    )
    .await?;
    // The audit names the secretariat member; the public channel, which every account reads,
    // does not.
    Ok(events::record(conn, &[Channel::Public], kind, None, data).await?)
}

pub async fn save_organization(
    state: &AppState,
    actor_id: i32,
    id: Option<i32>,
    request: OrganizationRequest,
) -> ApiResult<OrganizationResponse> {
    let mut validator = Validator::default();
    let name = validator.check(required_line("name", &request.name, 200));
    let country = validator
        .check(check_country(request.country_code.as_deref()))
        .flatten();
    let website = validator.check(check_website(request.website.as_deref())).flatten();
    validator.finish()?;
    let name = name.unwrap_or_default();

    let txn = state.db.begin_write().await?;
    check_port_community(&*txn, request.port_community_id).await?;
    let mut active = match id {
        Some(id) => organization::Entity::find_by_id(id)
            .one(&*txn)
            .await?
            .ok_or(ApiError::NotFound)?
            .into_active_model(),
        None => organization::ActiveModel {
            created_at: Set(Utc::now()),
            ..Default::default()
        },
    };
    let details = OrganizationDetails {
        kind: request.kind,
        port_community_id: request.port_community_id,
        website,
    };
    fill_organization(&mut active, name, country, &details);
    let saved = active.save(&*txn).await?;
    let saved: organization::Model = saved.try_into_model()?;
    let response = OrganizationResponse::from(saved);
    let recorded = emit_public(
        &*txn,
        actor_id,
        "directory.updated",
        json!({ "organization": response }),
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// What an organization is besides its name and country, which identify it in an import.
#[derive(Clone, PartialEq)]
struct OrganizationDetails {
    kind: OrganizationKind,
    port_community_id: Option<i32>,
    website: Option<String>,
}

fn fill_organization(
    active: &mut organization::ActiveModel,
    name: String,
    country: Option<String>,
    details: &OrganizationDetails,
) {
    let website = details.website.clone();
    active.search_text = Set(search::index_text(&[&name, website.as_deref().unwrap_or_default()]));
    active.name = Set(name);
    active.kind = Set(details.kind.as_str().to_owned());
    active.country_code = Set(country);
    active.port_community_id = Set(details.port_community_id);
    active.website = Set(website);
}

pub async fn delete_organization(state: &AppState, actor_id: i32, id: i32) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    // Its members lose their organization (ON DELETE SET NULL): a change of their accounts.
    entity::member::Entity::update_many()
        .col_expr(
            entity::member::Column::Version,
            Expr::col(entity::member::Column::Version).add(1),
        )
        .col_expr(entity::member::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(entity::member::Column::OrganizationId.eq(id))
        .exec(&*txn)
        .await?;
    let removed = organization::Entity::delete_by_id(id).exec(&*txn).await?;
    if removed.rows_affected == 0 {
        return Err(ApiError::NotFound);
    }
    let recorded = emit_public(
        &*txn,
        actor_id,
        "directory.updated",
        json!({ "organization_deleted": id }),
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(())
}

pub async fn list_organizations(state: &AppState, page: Page) -> ApiResult<Vec<organization::Model>> {
    let mut query = organization::Entity::find()
        .order_by_asc(organization::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(organization::Column::Id.gt(after));
    }
    Ok(query.all(state.db.conn()).await?)
}

pub async fn get_organization(state: &AppState, id: i32) -> ApiResult<organization::Model> {
    organization::Entity::find_by_id(id)
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)
}

/// A contact's name, position, email and phone, checked (`validate_contact`).
type ValidContact = (String, String, Option<String>, Option<String>);

/// Sets a contact's validated fields (as `validate_contact` returns them) and its search text.
fn fill_contact(
    active: &mut contact::ActiveModel,
    (name, position, email, phone): ValidContact,
    public: bool,
    now: chrono::DateTime<Utc>,
) {
    active.search_text = Set(search::index_text(&[
        &name,
        &position,
        email.as_deref().unwrap_or_default(),
    ]));
    active.name = Set(name);
    active.position = Set(position);
    active.email = Set(email);
    active.phone = Set(phone);
    active.public = Set(public);
    active.updated_at = Set(now);
}

fn validate_contact(request: &ContactRequest) -> ApiResult<ValidContact> {
    let mut validator = Validator::default();
    let name = validator.check(required_line("name", &request.name, 200));
    let position = validator
        .check(optional_text("position", request.position.as_deref(), 200))
        .flatten();
    let email = request
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .and_then(|e| validator.check(Email::parse("email", e)).map(|e| e.as_str().to_owned()));
    let phone = validator
        .check(optional_text("phone", request.phone.as_deref(), 64))
        .flatten();
    validator.finish()?;
    Ok((name.unwrap_or_default(), position.unwrap_or_default(), email, phone))
}

pub async fn save_contact(
    state: &AppState,
    actor_id: i32,
    id: Option<i32>,
    request: ContactRequest,
) -> ApiResult<ContactResponse> {
    let (name, position, email, phone) = validate_contact(&request)?;
    let txn = state.db.begin_write().await?;
    if organization::Entity::find_by_id(request.organization_id)
        .one(&*txn)
        .await?
        .is_none()
    {
        return Err(ApiError::validation("organization_id", "no such organization"));
    }
    let now = Utc::now();
    let mut active = match id {
        Some(id) => contact::Entity::find_by_id(id)
            .one(&*txn)
            .await?
            .ok_or(ApiError::NotFound)?
            .into_active_model(),
        None => contact::ActiveModel {
            created_at: Set(now),
            ..Default::default()
        },
    };
    active.organization_id = Set(request.organization_id);
    fill_contact(&mut active, (name, position, email, phone), request.public, now);
    let saved: contact::Model = active.save(&*txn).await?.try_into_model()?;
    let response = ContactResponse::from(saved);
    // A private contact's details never go to the public channel: only that something changed.
    let recorded = emit_public(
        &*txn,
        actor_id,
        "directory.updated",
        json!({ "contact_id": response.id }),
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

pub async fn delete_contact(state: &AppState, actor_id: i32, id: i32) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    let removed = contact::Entity::delete_by_id(id).exec(&*txn).await?;
    if removed.rows_affected == 0 {
        return Err(ApiError::NotFound);
    }
    let recorded = emit_public(&*txn, actor_id, "directory.updated", json!({ "contact_id": id })).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(())
}

pub async fn list_contacts(state: &AppState, page: Page) -> ApiResult<Vec<contact::Model>> {
    let mut query = contact::Entity::find()
        .order_by_asc(contact::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(contact::Column::Id.gt(after));
    }
    Ok(query.all(state.db.conn()).await?)
}

pub async fn get_contact(state: &AppState, id: i32) -> ApiResult<contact::Model> {
    contact::Entity::find_by_id(id)
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)
}

/// Public contacts, filtered, with their organization.
pub async fn public_directory(
    conn: &impl ConnectionTrait,
    filter: &DirectoryFilter,
    page: Page,
) -> ApiResult<Vec<DirectoryEntry>> {
    let mut organizations = organization::Entity::find();
    if let Some(country) = &filter.country {
        organizations = organizations.filter(organization::Column::CountryCode.eq(country.trim().to_uppercase()));
    }
    if let Some(kind) = &filter.kind {
        let kind =
            OrganizationKind::from_db(kind).map_err(|_| ApiError::validation("kind", "unknown organization kind"))?;
        organizations = organizations.filter(organization::Column::Kind.eq(kind.as_str()));
    }
    if let Some(community) = filter.port_community {
        organizations = organizations.filter(organization::Column::PortCommunityId.eq(community));
    }
    let mut query = contact::Entity::find()
        .filter(contact::Column::Public.eq(true))
        .filter(
            contact::Column::OrganizationId.in_subquery(
                organizations
                    .select_only()
                    .column(organization::Column::Id)
                    .into_query(),
            ),
        )
        .order_by_asc(contact::Column::Id)
        .limit(page.limit + 1);
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let pattern = search::contains(q);
        let matching_organizations = organization::Entity::find()
            .select_only()
            .column(organization::Column::Id)
            .filter(Expr::col(organization::Column::SearchText).like(pattern.clone()))
            .into_query();
        query = query.filter(
            Condition::any()
                .add(Expr::col(contact::Column::SearchText).like(pattern))
                .add(contact::Column::OrganizationId.in_subquery(matching_organizations)),
        );
    }
    if let Some(after) = page.after {
        query = query.filter(contact::Column::Id.gt(after));
    }
    let contacts = query.all(conn).await?;
    let organizations = organization::Entity::find()
        .filter(organization::Column::Id.is_in(contacts.iter().map(|c| c.organization_id)))
        .all(conn)
        .await?;
    Ok(contacts
        .into_iter()
        .filter_map(|c| {
            let org = organizations.iter().find(|o| o.id == c.organization_id)?;
            Some(DirectoryEntry {
                id: c.id,
                name: c.name,
                position: c.position,
                organization: org.name.clone(),
                kind: org.kind.clone(),
                country_code: org.country_code.clone(),
                port_community_id: org.port_community_id,
                email: c.email,
                phone: c.phone,
                website: org.website.clone(),
            })
        })
        .collect())
}

const CSV_HEADER: [&str; 10] = [
    "organization",
    "kind",
    "country_code",
    "port_community_id",
    "website",
    "name",
    "position",
    "email",
    "phone",
    "public",
];

/// Every contact with its organization, as CSV.
pub async fn export_csv(state: &AppState, reader: ExportReader) -> ApiResult<String> {
    let organizations: HashMap<i32, organization::Model> = organization::Entity::find()
        .all(state.db.conn())
        .await?
        .into_iter()
        .map(|org| (org.id, org))
        .collect();
    let contacts = contact::Entity::find()
        .order_by_asc(contact::Column::Id)
        .all(state.db.conn())
        .await?;
    let mut writer = csv_writer(reader);
    writer.write_record(CSV_HEADER).map_err(anyhow::Error::from)?;
    for c in contacts {
        let Some(org) = organizations.get(&c.organization_id) else {
            continue;
        };
        let community = org.port_community_id.map(|id| id.to_string()).unwrap_or_default();
        let cells = [
            org.name.as_str(),
            org.kind.as_str(),
            org.country_code.as_deref().unwrap_or_default(),
            community.as_str(),
            org.website.as_deref().unwrap_or_default(),
            c.name.as_str(),
            c.position.as_str(),
            c.email.as_deref().unwrap_or_default(),
            c.phone.as_deref().unwrap_or_default(),
            if c.public { "true" } else { "false" },
        ];
        let cells = cells.map(|cell| defused(cell, reader));
        writer
            .write_record(cells.iter().map(|cell| cell.as_bytes()))
            .map_err(anyhow::Error::from)?;
    }
    let bytes = writer.into_inner().map_err(|error| anyhow::anyhow!("{error}"))?;
    Ok(String::from_utf8(bytes).map_err(anyhow::Error::from)?)
}

/// A CSV writer in the export's dialect for its reader (see [`ExportReader`]).
fn csv_writer(reader: ExportReader) -> csv::Writer<Vec<u8>> {
    match reader {
        ExportReader::Programs => csv::Writer::from_writer(Vec::new()),
        ExportReader::Spreadsheet => csv::WriterBuilder::new()
            .delimiter(b';')
            .terminator(csv::Terminator::CRLF)
            .from_writer("\u{feff}".as_bytes().to_vec()),
    }
}

/// Whether a spreadsheet would take `cell` for a formula and run it: it starts with `=`, `@`, a
/// tab or a carriage return, or with `+` or `-` and goes on with more than a number's characters.
/// A phone number ("+593 4 259 0000") names no function or cell, so it is left as it is.
fn read_as_formula(cell: &str) -> bool {
    let mut chars = cell.chars();
    match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars.all(|c| c.is_ascii_digit() || " ()./-+".contains(c)),
        _ => false,
    }
}

/// Whether `cell` is formula-like text behind any number of apostrophes: what [`defused`]
/// escapes with one more, so that [`restored`] can take exactly one off whatever the cell held.
fn escapable(cell: &str) -> bool {
    read_as_formula(cell) || cell.strip_prefix('\'').is_some_and(escapable)
}

/// A cell of the export. For a spreadsheet, one it would run as a formula (a contact named
/// `=HYPERLINK(…)`) starts with an apostrophe, which shows it as text (OWASP's advice on CSV
/// injection); programs get formulas as they are. In both, a value that already starts with
/// an apostrophe before such text (`'-- vacante --`) gets one more, since the import, which
/// cannot tell the dialects apart, takes one off: see [`restored`].
fn defused(cell: &str, reader: ExportReader) -> std::borrow::Cow<'_, str> {
    let escaped = match reader {
        ExportReader::Spreadsheet => escapable(cell),
        ExportReader::Programs => cell.starts_with('\'') && escapable(cell),
    };
    if escaped {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// A cell as it was before [`defused`]: the round trip changes nothing, in either dialect.
fn restored(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if escapable(rest) => rest,
        _ => cell,
    }
}

/// A contact's `public` column as the export writes it; empty is private. Anything else (a
/// "yes", a typo) is refused, rather than silently making a contact private.
fn parse_public(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" | "" => Some(false),
        _ => None,
    }
}

/// A phone number as a spreadsheet leaves it once it has read it as a number: in scientific
/// notation (`5.93412E+11`, or `5,93412E+11` where the comma is the decimal separator), its
/// other digits gone. Imported, it would overwrite the contact's real number.
fn rewritten_by_a_spreadsheet(phone: &str) -> bool {
    let Some((mantissa, exponent)) = phone.split_once(['E', 'e']) else {
        return false;
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let mantissa_ok = mantissa.starts_with(|c: char| c.is_ascii_digit())
        && mantissa
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.' || byte == b',');
    mantissa_ok && digits(exponent.strip_prefix('+').unwrap_or(exponent))
}

/// The delimiter of an imported file: a comma, or a semicolon when the header row is separated by
/// semicolons. Spreadsheets save "CSV" with semicolons in locales whose decimal separator is the
/// comma, Spanish and Portuguese among them: most of the Network's. The header's names hold
/// neither character, so its row tells which one it is. (A UTF-8 byte-order mark, which Excel
/// writes, is skipped by the reader.)
fn delimiter_of(body: &[u8]) -> u8 {
    let header = body.split(|&byte| byte == b'\n').next().unwrap_or_default();
    if header.contains(&b';') && !header.contains(&b',') {
        b';'
    } else {
        b','
    }
}

/// Imports contacts (creating their organizations by name and country when new), all or
/// nothing: one bad row and nothing is written, with the row named.
pub async fn import_csv(state: &AppState, actor_id: i32, body: &[u8]) -> ApiResult<ImportReport> {
    if body.contains(&0) {
        return Err(ApiError::validation("csv", crate::input::NUL_REFUSED));
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter_of(body))
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|_| ApiError::validation("csv", "could not read the header row"))?
        .clone();
    if headers.iter().collect::<Vec<_>>() != CSV_HEADER {
        return Err(ApiError::validation(
            "csv",
            &format!("the header must be: {}", CSV_HEADER.join(",")),
        ));
    }
    let txn = state.db.begin_write().await?;
    let mut report = ImportReport {
        organizations_created: 0,
        organizations_updated: 0,
        contacts_created: 0,
        contacts_updated: 0,
    };
    // The organizations named so far, by name and country: the row that first named each.
    let mut named: HashMap<(String, Option<String>), NamedOrganization> = HashMap::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        let record = record.map_err(|error| ApiError::validation("csv", &format!("row {row}: {error}")))?;
        let field = |i: usize| restored(record.get(i).unwrap_or_default());
        let row_error =
            |error: FieldError| ApiError::validation("csv", &format!("row {row}: {} {}", error.field, error.message));
        // A refusal of the API's own checks, named by the row (their first field error).
        let in_row = |error: ApiError| match error {
            ApiError::Validation(mut errors) if !errors.is_empty() => row_error(errors.swap_remove(0)),
            other => other,
        };
        let kind = OrganizationKind::from_db(field(1))
            .map_err(|_| ApiError::validation("csv", &format!("row {row}: unknown kind")))?;
        let name = required_line("organization", field(0), 200).map_err(row_error)?;
        let country = check_country(Some(field(2)).filter(|c| !c.is_empty())).map_err(row_error)?;
        let website = check_website(Some(field(4))).map_err(row_error)?;
        let community = Some(field(3))
            .filter(|c| !c.is_empty())
            .map(str::parse::<i32>)
            .transpose()
            .map_err(|_| ApiError::validation("csv", &format!("row {row}: port_community_id is not a number")))?;
        // Before anything of the row is written.
        if rewritten_by_a_spreadsheet(field(8)) {
            let message = "is a number a spreadsheet rewrote, its digits lost: format the column as text";
            return Err(row_error(FieldError::new("phone", message)));
        }
        let details = OrganizationDetails {
            kind,
            port_community_id: community,
            website,
        };
        // The rows of one organization carry its details each: they must say the same, or
        // which row's the directory kept would depend on their order.
        let key = (name.clone(), country.clone());
        let organization_id = match named.get(&key) {
            Some(first) if first.details != details => {
                let message = format!(
                    "differs from row {} in kind, port_community_id or website: the rows of one organization must agree",
                    first.row
                );
                return Err(row_error(FieldError::new("organization", message)));
            }
            Some(first) => first.id,
            None => {
                // Checked once for each organization: its later rows say the same.
                check_port_community(&*txn, community).await.map_err(in_row)?;
                let id = import_organization(&*txn, name, country, &details, &mut report).await?;
                named.insert(key, NamedOrganization { row, details, id });
                id
            }
        };
        let request = ContactRequest {
            organization_id,
            name: field(5).to_owned(),
            position: Some(field(6).to_owned()),
            email: Some(field(7).to_owned()),
            phone: Some(field(8).to_owned()),
            public: parse_public(field(9))
                .ok_or_else(|| ApiError::validation("csv", &format!("row {row}: public must be true or false")))?,
        };
        let validated = validate_contact(&request).map_err(in_row)?;
        import_contact(&*txn, organization_id, validated, request.public, &mut report).await?;
    }
    let recorded = emit_public(
        &*txn,
        actor_id,
        "directory.updated",
        json!({
            "imported": report.contacts_created + report.contacts_updated,
            "organizations_created": report.organizations_created,
            "organizations_updated": report.organizations_updated,
        }),
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(report)
}

/// An organization an import has named, at the row that first named it.
struct NamedOrganization {
    row: usize,
    details: OrganizationDetails,
    id: i32,
}

/// The organization of that name in that country, created or brought up to date: an export
/// edited and imported back changes the organizations as well as their contacts.
async fn import_organization(
    conn: &impl ConnectionTrait,
    name: String,
    country: Option<String>,
    details: &OrganizationDetails,
    report: &mut ImportReport,
) -> ApiResult<i32> {
    let existing = organization::Entity::find()
        .filter(organization::Column::Name.eq(&name))
        .filter(match &country {
            Some(code) => organization::Column::CountryCode.eq(code.clone()),
            None => organization::Column::CountryCode.is_null(),
        })
        // Nothing keeps two organizations from sharing a name in a country: the oldest.
        .order_by_asc(organization::Column::Id)
        .one(conn)
        .await?;
    let mut active = match existing {
        Some(organization) => {
            report.organizations_updated += 1;
            organization.into_active_model()
        }
        None => {
            report.organizations_created += 1;
            organization::ActiveModel {
                created_at: Set(Utc::now()),
                ..Default::default()
            }
        }
    };
    fill_organization(&mut active, name, country, details);
    let saved: organization::Model = active.save(conn).await?.try_into_model()?;
    Ok(saved.id)
}

/// The contact of that name in the organization, created or brought up to date: a contact of
/// the same name in the same organization is the same person, so an export edited and imported
/// back updates its rows rather than adding them again.
async fn import_contact(
    conn: &impl ConnectionTrait,
    organization_id: i32,
    validated: ValidContact,
    public: bool,
    report: &mut ImportReport,
) -> ApiResult<()> {
    let existing = contact::Entity::find()
        .filter(contact::Column::OrganizationId.eq(organization_id))
        .filter(contact::Column::Name.eq(&validated.0))
        .order_by_asc(contact::Column::Id)
        .one(conn)
        .await?;
    let mut active = match existing {
        Some(row) => {
            report.contacts_updated += 1;
            row.into_active_model()
        }
        None => {
            report.contacts_created += 1;
            contact::ActiveModel {
                organization_id: Set(organization_id),
                created_at: Set(Utc::now()),
                ..Default::default()
            }
        }
    };
    fill_contact(&mut active, validated, public, Utc::now());
    active.save(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_in_scientific_notation_is_told_from_a_phone() {
        for rewritten in ["5.93412E+11", "5,93412E+11", "5.9e+11", "1E12"] {
            assert!(rewritten_by_a_spreadsheet(rewritten), "{rewritten}");
        }
        for phone in [
            "+593 4 000",
            "+56 32 2 123456 ext. 12",
            "(01) 611-5000",
            "E+12",
            "5.9E+",
            "",
            "1800 EXT",
        ] {
            assert!(!rewritten_by_a_spreadsheet(phone), "{phone}");
        }
    }

    #[test]
    fn every_cell_comes_back_from_either_export_as_it_was() {
        use ExportReader::{Programs, Spreadsheet};
        for formula in [
            "=1+2",
            "@SUM(A1)",
            "+A1*2",
            "-2+3*A1",
            "=HYPERLINK(\"https://x\")",
            "\tx",
        ] {
            assert_eq!(defused(formula, Spreadsheet), format!("'{formula}"));
            assert_eq!(defused(formula, Programs), formula, "programs run no formulas");
        }
        for (value, for_a_spreadsheet) in [
            ("=1+2", "'=1+2"),
            ("'-- vacante --", "''-- vacante --"),
            ("''=x", "'''=x"),
            ("+593 4 000", "+593 4 000"),
            ("(01) 611-5000", "(01) 611-5000"),
            ("-", "-"),
            ("'quoted'", "'quoted'"),
            ("María", "María"),
            ("", ""),
        ] {
            assert_eq!(defused(value, Spreadsheet), for_a_spreadsheet);
            for reader in [Programs, Spreadsheet] {
                assert_eq!(restored(&defused(value, reader)), value, "{value} via {reader:?}");
            }
        }
    }

    #[test]
    fn a_header_of_semicolons_makes_them_the_delimiter() {
        assert_eq!(delimiter_of(b"organization;kind;country_code\nA;b;EC\n"), b';');
        assert_eq!(delimiter_of(b"organization,kind,country_code\nA;b,c\n"), b',');
        assert_eq!(delimiter_of(b""), b',');
    }
}
