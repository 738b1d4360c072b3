//! Committees, who belongs to them, and what that lets each member see and do.

use chrono::Utc;
use entity::{committee, committee_membership, member};
use sea_orm::sea_query::{Expr, ExprTrait as _, Query, QueryStatementBuilder as _};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IntoActiveModel, QueryFilter,
    QueryOrder, QueryResult, QuerySelect, QueryTrait, Select, Set,
};
use serde_json::json;

use super::dto::*;
use crate::audit::{self, AuditEntry};
use crate::auth::CurrentMember;
use crate::auth::dto::{MemberResponse, MembershipSummary};
use crate::domain::{Role, Validator, required_line};
use crate::error::{ApiError, ApiResult, ConflictExt};
use crate::events::{self, Channel, Recorded};
use crate::group_commit::{Batch, MemoKey};
use crate::pagination::Page;
use crate::preconditions::IfMatch;
use crate::realtime;
use crate::state::AppState;

const NAME_TAKEN: &str = "a committee with this name already exists";

/// What the caller may do in one committee.
#[derive(Clone, Debug)]
pub struct Access {
    pub committee: committee::Model,
    /// The caller's role; `None` for the secretariat acting without being a member.
    pub role: Option<CommitteeRole>,
    pub secretariat: bool,
}

impl Access {
    /// Members, chairs and the secretariat write; observers only read.
    pub fn can_write(&self) -> bool {
        self.secretariat || matches!(self.role, Some(CommitteeRole::Chair | CommitteeRole::Member))
    }

    pub fn is_chair(&self) -> bool {
        self.secretariat || self.role == Some(CommitteeRole::Chair)
    }

    /// An archived committee is read-only, for everyone: what it holds stays readable, nothing
    /// new is written in it until the secretariat reopens it.
    pub fn require_open(&self) -> ApiResult<()> {
        ensure_open(self.committee.archived)
    }

    pub fn require_write(&self) -> ApiResult<()> {
        self.require_open()?;
        if self.can_write() {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    pub fn require_chair(&self) -> ApiResult<()> {
        self.require_open()?;
        if self.is_chair() {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The one place that decides access to a committee. A committee the caller does not belong to
/// is a 404: its existence is not theirs to know.
pub async fn access(conn: &impl ConnectionTrait, caller: &member::Model, committee_id: i32) -> ApiResult<Access> {
    let secretariat = caller.role == Role::Secretariat.as_str();
    let (committee, role) = committee_with_role(conn, caller.id, committee_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if role.is_none() && !secretariat {
        return Err(ApiError::NotFound);
    }
    Ok(Access {
        committee,
        role,
        secretariat,
    })
}

/// [`access`] for a write in a group-commit batch: read once per batch for each caller and
/// committee (the lanes' writes change neither memberships nor committees).
pub async fn access_in(batch: &Batch, caller: &member::Model, committee_id: i32) -> ApiResult<Access> {
    let key = MemoKey::ids("committee access", caller.id, committee_id);
    batch.shared_read(key, access(&**batch, caller, committee_id)).await
}

/// The committee and the member's role in it, in one query: every write in a committee asks
/// this inside its transaction, where each round trip to the database counts.
async fn committee_with_role(
    conn: &impl ConnectionTrait,
    member_id: i32,
    committee_id: i32,
) -> ApiResult<Option<(committee::Model, Option<CommitteeRole>)>> {
    let statement =
        with_role_of(committee::Entity::find_by_id(committee_id), member_id).build(conn.get_database_backend());
    match conn.query_one_raw(statement).await? {
        Some(row) => Ok(Some(committee_and_role(&row)?)),
        None => Ok(None),
    }
}

/// Adds `membership_role`, the role of `member_id` in each committee selected (NULL where they
/// are not a member), as a correlated subquery.
fn with_role_of(query: Select<committee::Entity>, member_id: i32) -> Select<committee::Entity> {
    let role = Query::select()
        .column(committee_membership::Column::Role)
        .from(committee_membership::Entity)
        .and_where(
            Expr::col((committee_membership::Entity, committee_membership::Column::CommitteeId))
                .equals((committee::Entity, committee::Column::Id)),
        )
        .and_where(committee_membership::Column::MemberId.eq(member_id))
        .to_owned();
    query.expr_as(
        Expr::SubQuery(None, Box::new(role.into_sub_query_statement())),
        "membership_role",
    )
}

fn committee_and_role(row: &QueryResult) -> ApiResult<(committee::Model, Option<CommitteeRole>)> {
    let committee = committee::Model::from_query_result(row, "")?;
    let role = row
        .try_get::<Option<String>>("", "membership_role")?
        .map(|role| CommitteeRole::from_db(&role))
        .transpose()
        .map_err(ApiError::Internal)?;
    Ok((committee, role))
}

/// Refuses a write in an archived committee (see [`Access::require_open`]); documents and
/// meetings ask it about the committee that owns them.
pub fn ensure_open(archived: bool) -> ApiResult<()> {
    if archived {
        Err(ApiError::CommitteeArchived)
    } else {
        Ok(())
    }
}

/// The one row of `query` (a document, a meeting: anything a committee owns) and whether its
/// committee, named by its `committee_id` column, is archived: one query, not two.
pub async fn one_with_owner_archived<E>(
    conn: &impl ConnectionTrait,
    query: Select<E>,
    committee_id: E::Column,
) -> ApiResult<Option<(E::Model, bool)>>
where
    E: EntityTrait,
    E::Model: FromQueryResult,
{
    let archived = Query::select()
        .column(committee::Column::Archived)
        .from(committee::Entity)
        .and_where(Expr::col((committee::Entity, committee::Column::Id)).equals((E::default(), committee_id)))
        .to_owned();
    let statement = query
        .expr_as(
            Expr::SubQuery(None, Box::new(archived.into_sub_query_statement())),
            "owner_archived",
        )
        .build(conn.get_database_backend());
    let Some(row) = conn.query_one_raw(statement).await? else {
        return Ok(None);
    };
    let archived = row.try_get::<Option<bool>>("", "owner_archived")?.unwrap_or(false);
    Ok(Some((E::Model::from_query_result(&row, "")?, archived)))
}

/// Whether `caller` may receive the events of `channel`, decided now.
pub async fn can_read_channel(state: &AppState, caller: &member::Model, channel: Channel) -> ApiResult<bool> {
    Ok(match channel {
        Channel::Public => true,
        Channel::Member(id) => id == caller.id,
        Channel::Committee(id) => match access(state.db.conn(), caller, id).await {
            Ok(_) => true,
            Err(ApiError::NotFound) => false,
            Err(other) => return Err(other),
        },
    })
}

/// The channels `caller` may subscribe to: their own, and each of their committees' (every
/// committee's for the secretariat).
pub async fn readable_channels(state: &AppState, caller: &member::Model) -> ApiResult<Vec<Channel>> {
    let committee_ids: Vec<i32> = if caller.role == Role::Secretariat.as_str() {
        committee::Entity::find()
            .select_only()
            .column(committee::Column::Id)
            .order_by_asc(committee::Column::Id)
            .into_tuple()
            .all(state.db.conn())
            .await?
    } else {
        committee_membership::Entity::find()
            .select_only()
            .column(committee_membership::Column::CommitteeId)
            .filter(committee_membership::Column::MemberId.eq(caller.id))
            .order_by_asc(committee_membership::Column::CommitteeId)
            .into_tuple()
            .all(state.db.conn())
            .await?
    };
    let mut channels: Vec<Channel> = committee_ids.into_iter().map(Channel::Committee).collect();
    channels.push(Channel::Member(caller.id));
    Ok(channels)
}

/// The member as `/api/me` shows it: with their committees and their role in each.
pub async fn with_committees(state: &AppState, member: member::Model) -> ApiResult<MemberResponse> {
    let rows: Vec<(committee_membership::Model, Option<committee::Model>)> = committee_membership::Entity::find()
        .filter(committee_membership::Column::MemberId.eq(member.id))
        .find_also_related(committee::Entity)
        .order_by_asc(committee_membership::Column::CommitteeId)
        .all(state.db.conn())
        .await?;
    let summaries = rows
        .into_iter()
        .filter_map(|(row, committee)| {
            committee.map(|c| MembershipSummary {
                id: c.id,
                name: c.name,
                role: row.role,
            })
        })
        .collect();
    let mut response = MemberResponse::from(member);
    response.committees = Some(summaries);
    Ok(response)
}

/// The caller's committees (all of them for the secretariat), with the caller's role.
pub async fn list_mine(state: &AppState, caller: &member::Model, page: Page) -> ApiResult<Vec<CommitteeResponse>> {
    let mut query = with_role_of(committee::Entity::find(), caller.id)
        .order_by_asc(committee::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(committee::Column::Id.gt(after));
    }
    if caller.role != Role::Secretariat.as_str() {
        let mine = Query::select()
            .column(committee_membership::Column::CommitteeId)
            .from(committee_membership::Entity)
            .and_where(committee_membership::Column::MemberId.eq(caller.id))
            .to_owned();
        query = query.filter(committee::Column::Id.in_subquery(mine));
    }
    let rows = state.db.conn().query_all_raw(query.build(state.db.backend())).await?;
    rows.iter()
        .map(|row| {
            let (committee, role) = committee_and_role(row)?;
            Ok(CommitteeResponse::new(
                committee,
                role.map(|role| role.as_str().to_owned()),
            ))
        })
        .collect()
}

pub async fn detail(state: &AppState, caller: &member::Model, committee_id: i32) -> ApiResult<CommitteeDetailResponse> {
    let access = access(state.db.conn(), caller, committee_id).await?;
    let members: Vec<(committee_membership::Model, Option<member::Model>)> = committee_membership::Entity::find()
        .filter(committee_membership::Column::CommitteeId.eq(committee_id))
        .find_also_related(member::Entity)
        .order_by_asc(committee_membership::Column::MemberId)
        .all(state.db.conn())
        .await?;
    let members = members
        .into_iter()
        .filter_map(|(row, member)| {
            member.map(|m| CommitteeMemberResponse {
                id: m.id,
                name: m.name,
                role: row.role,
            })
        })
        .collect();
    Ok(CommitteeDetailResponse {
        committee: CommitteeResponse::new(access.committee, access.role.map(|role| role.as_str().to_owned())),
        members,
    })
}

#[tracing::instrument(skip_all, fields(actor_id = actor.id()))]
pub async fn create(
    state: &AppState,
    actor: &CurrentMember,
    request: CreateCommitteeRequest,
    ip: Option<String>,
) -> ApiResult<committee::Model> {
    let mut validator = Validator::default();
    let name = validator.check(required_line("name", &request.name, 200));
    let description = request
        .description
        .as_deref()
        .map(|d| d.trim().to_owned())
        .unwrap_or_default();
    if description.chars().count() > 10_000 {
        validator.add("description", "must be at most 10000 characters long");
    }
    validator.finish()?;
    let name = name.unwrap_or_default();

    let txn = state.db.begin_write().await?;
    let now = Utc::now();
    let committee = committee::ActiveModel {
        name: Set(name),
        kind: Set(request.kind.as_str().to_owned()),
        description: Set(description),
        archived: Set(false),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*txn)
    .await
    .on_conflict(NAME_TAKEN)?;
    let recorded = events::record(
        &*txn,
        &[Channel::Committee(committee.id)],
        "committee.updated",
        Some(actor.id()),
        json!(CommitteeResponse::new(committee.clone(), None)),
    )
    .await?;
    audit_committee(
        &*txn,
        actor,
        "committee.created",
        committee.id,
        json!({ "name": committee.name }),
        ip,
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(committee)
}

#[tracing::instrument(skip_all, fields(actor_id = actor.id(), committee_id))]
pub async fn update(
    state: &AppState,
    actor: &CurrentMember,
    committee_id: i32,
    if_match: IfMatch,
    request: UpdateCommitteeRequest,
    ip: Option<String>,
) -> ApiResult<committee::Model> {
    let name = request
        .name
        .as_deref()
        .map(|name| required_line("name", name, 200))
        .transpose();
    let name = name.map_err(|error| ApiError::Validation(vec![error]))?;
    if request.description.as_ref().is_some_and(|d| d.chars().count() > 10_000) {
        return Err(ApiError::validation(
            "description",
            "must be at most 10000 characters long",
        ));
    }

    let txn = state.db.begin_write().await?;
    // Locked: of two updates from one version, the second must see the first's (db::lock_row).
    let existing = committee::Entity::find_by_id(committee_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    if_match.check(existing.version)?;
    let version = existing.version;
    let mut active = existing.into_active_model();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(description) = request.description {
        active.description = Set(description.trim().to_owned());
    }
    if let Some(archived) = request.archived {
        active.archived = Set(archived);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let committee = active.update(&*txn).await.on_conflict(NAME_TAKEN)?;
    let recorded = events::record(
        &*txn,
        &[Channel::Committee(committee_id)],
        "committee.updated",
        Some(actor.id()),
        json!(CommitteeResponse::new(committee.clone(), None)),
    )
    .await?;
    audit_committee(
        &*txn,
        actor,
        "committee.updated",
        committee_id,
        json!({ "version": committee.version }),
        ip,
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(committee)
}

/// Adds a member to a committee or changes their role there.
#[tracing::instrument(skip_all, fields(actor_id = actor.id(), committee_id, member_id))]
pub async fn put_membership(
    state: &AppState,
    actor: &CurrentMember,
    committee_id: i32,
    member_id: i32,
    role: CommitteeRole,
    ip: Option<String>,
) -> ApiResult<MembershipResponse> {
    let txn = state.db.begin_write().await?;
    // The membership is read, then inserted or updated: under the committee's lock, so that two
    // of these at once do not both insert (db::lock_row).
    committee::Entity::find_by_id(committee_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    member::Entity::find_by_id(member_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let existing = committee_membership::Entity::find_by_id((committee_id, member_id))
        .one(&*txn)
        .await?;
    let kind = match existing {
        Some(row) if row.role == role.as_str() => {
            return Ok(MembershipResponse {
                committee_id,
                member_id,
                role: row.role,
            });
        }
        Some(row) => {
            let mut active = row.into_active_model();
            active.role = Set(role.as_str().to_owned());
            active.update(&*txn).await?;
            "membership.updated"
        }
        None => {
            committee_membership::ActiveModel {
                committee_id: Set(committee_id),
                member_id: Set(member_id),
                role: Set(role.as_str().to_owned()),
                created_at: Set(Utc::now()),
            }
            .insert(&*txn)
            .await?;
            "membership.added"
        }
    };
    let membership = MembershipResponse {
        committee_id,
        member_id,
        role: role.as_str().to_owned(),
    };
    let recorded = membership_event(&*txn, actor, kind, &membership).await?;
    audit_committee(
        &*txn,
        actor,
        kind,
        committee_id,
        json!({ "member_id": member_id, "role": role.as_str() }),
        ip,
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(membership)
}

/// Removes a member from a committee; their open sockets stop receiving its events at once.
#[tracing::instrument(skip_all, fields(actor_id = actor.id(), committee_id, member_id))]
pub async fn remove_membership(
    state: &AppState,
    actor: &CurrentMember,
    committee_id: i32,
    member_id: i32,
    ip: Option<String>,
) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    let row = committee_membership::Entity::find_by_id((committee_id, member_id))
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let membership = MembershipResponse {
        committee_id,
        member_id,
        role: row.role.clone(),
    };
    // Two removals at once both read the row; only the one whose delete removed it goes on
    // (on PostgreSQL the other's delete waits for it, then finds nothing), so it is recorded once.
    let deleted = committee_membership::Entity::delete_by_id((committee_id, member_id))
        .exec(&*txn)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::NotFound);
    }
    let recorded = membership_event(&*txn, actor, "membership.removed", &membership).await?;
    audit_committee(
        &*txn,
        actor,
        "membership.removed",
        committee_id,
        json!({ "member_id": member_id }),
        ip,
    )
    .await?;
    txn.commit().await?;
    // The event itself ends the member's subscriptions to the committee's channel, on every
    // node, in offset order (`EventFrame::removed_member`).
    realtime::publish(state, recorded);
    Ok(())
}

async fn membership_event(
    conn: &impl ConnectionTrait,
    actor: &CurrentMember,
    kind: &str,
    membership: &MembershipResponse,
) -> ApiResult<Recorded> {
    let channels = [
        Channel::Committee(membership.committee_id),
        Channel::Member(membership.member_id),
    ];
    Ok(events::record(conn, &channels, kind, Some(actor.id()), json!(membership)).await?)
}

async fn audit_committee(
    conn: &impl ConnectionTrait,
    actor: &CurrentMember,
    action: &str,
    committee_id: i32,
    details: serde_json::Value,
    ip: Option<String>,
) -> ApiResult<()> {
    audit::record(
        conn,
        AuditEntry {
            actor_id: Some(actor.id()),
            action,
            target_type: "committee",
            target_id: Some(committee_id),
            details,
            ip,
        },
    )
    .await?;
    Ok(())
}
