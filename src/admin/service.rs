//! The secretariat's work on accounts.

use chrono::Utc;
use entity::{audit_log, committee_membership, member, organization};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};
use serde_json::json;

use super::dto::{AdminStatusChange, AuditFilter, CreateMemberRequest, MemberFilter, UpdateMemberRequest};
use crate::audit::{self, AuditEntry};
use crate::auth::CurrentMember;
use crate::auth::service::{queue_invitation, queue_password_reset, revoke_sessions};
use crate::domain::{Email, Locale, MemberStatus, Role, Validator, required_line};
use crate::error::{ApiError, ApiResult, ConflictExt};
use crate::mail;
use crate::pagination::Page;
use crate::preconditions::IfMatch;
use crate::state::AppState;

const EMAIL_TAKEN: &str = "an account with this email already exists";

#[tracing::instrument(skip_all, fields(actor_id = actor.id()))]
pub async fn create_member(
    state: &AppState,
    actor: &CurrentMember,
    request: CreateMemberRequest,
    ip: Option<String>,
) -> ApiResult<member::Model> {
    let mut validator = Validator::default();
    let email = validator.check(Email::parse("email", &request.email));
    let name = validator.check(required_line("name", &request.name, 200));
    validator.finish()?;
    let (Some(email), Some(name)) = (email, name) else {
        return Err(ApiError::validation("email", "is required"));
    };
    if let Some(organization_id) = request.organization_id {
        ensure_organization(state, organization_id).await?;
    }

    let txn = state.db.begin_write().await?;
    let now = Utc::now();
    let member = member::ActiveModel {
        search_text: Set(crate::search::member_text(&name, email.as_str())),
        email: Set(email.as_str().to_owned()),
        name: Set(name),
        password_hash: Set(None),
        role: Set(request.role.as_str().to_owned()),
        status: Set(MemberStatus::Invited.as_str().to_owned()),
        locale: Set(request.locale.unwrap_or(Locale::En).as_str().to_owned()),
        organization_id: Set(request.organization_id),
        token_version: Set(0),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*txn)
    .await
    .on_conflict(EMAIL_TAKEN)?;
    queue_invitation(state, &*txn, &member).await?;
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "member.invited",
            target_type: "member",
            target_id: Some(member.id),
            details: json!({ "email": member.email, "role": member.role }),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    state.mailer.do_send(mail::Wake);
    Ok(member)
}

pub async fn list_members(state: &AppState, filter: &MemberFilter, page: Page) -> ApiResult<Vec<member::Model>> {
    let mut query = member::Entity::find()
        .order_by_asc(member::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(member::Column::Id.gt(after));
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        query = query.filter(member::Column::SearchText.like(crate::search::contains(q)));
    }
    if let Some(status) = &filter.status {
        let status = MemberStatus::from_db(status)
            .map_err(|_| ApiError::validation("status", "must be invited, active or suspended"))?;
        query = query.filter(member::Column::Status.eq(status.as_str()));
    }
    if let Some(committee_id) = filter.committee_id {
        let in_committee = committee_membership::Entity::find()
            .select_only()
            .column(committee_membership::Column::MemberId)
            .filter(committee_membership::Column::CommitteeId.eq(committee_id))
            .into_query();
        query = query.filter(member::Column::Id.in_subquery(in_committee));
    }
    Ok(query.all(state.db.conn()).await?)
}

pub async fn get_member(state: &AppState, member_id: i32) -> ApiResult<member::Model> {
    member::Entity::find_by_id(member_id)
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)
}

#[tracing::instrument(skip_all, fields(actor_id = actor.id(), member_id))]
pub async fn update_member(
    state: &AppState,
    actor: &CurrentMember,
    member_id: i32,
    if_match: IfMatch,
    request: UpdateMemberRequest,
    ip: Option<String>,
) -> ApiResult<member::Model> {
    let name = request
        .name
        .as_deref()
        .map(|name| required_line("name", name, 200))
        .transpose()
        .map_err(|e| ApiError::Validation(vec![e]))?;
    if member_id == actor.id()
        && (request.status == Some(AdminStatusChange::Suspended)
            || request.role.is_some_and(|role| role != Role::Secretariat))
    {
        // The last secretariat account locking itself out would leave nobody to undo it.
        return Err(ApiError::validation(
            "status",
            "you cannot suspend or demote your own account",
        ));
    }
    if let Some(Some(organization_id)) = request.organization_id {
        ensure_organization(state, organization_id).await?;
    }

    let txn = state.db.begin_write().await?;
    // Read under the row's lock (PostgreSQL; SQLite's writer gate does the same), so that of two
    // edits from one version the second sees the first's.
    let existing = member::Entity::find_by_id(member_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    if_match.check(existing.version)?;
    let was = existing.clone();
    let mut active = existing.into_active_model();
    active.version = Set(was.version + 1);
    if let Some(name) = name {
        active.search_text = Set(crate::search::member_text(&name, &was.email));
        active.name = Set(name);
    }
    if let Some(role) = request.role {
        active.role = Set(role.as_str().to_owned());
    }
    if let Some(organization_id) = request.organization_id {
        active.organization_id = Set(organization_id);
    }
    let suspending =
        request.status == Some(AdminStatusChange::Suspended) && was.status != MemberStatus::Suspended.as_str();
    // Losing the secretariat role loses the view of every committee: sockets must re-authorize.
    let demoted = was.role == Role::Secretariat.as_str() && request.role.is_some_and(|role| role != Role::Secretariat);
    match request.status {
        Some(AdminStatusChange::Suspended) => active.status = Set(MemberStatus::Suspended.as_str().to_owned()),
        Some(AdminStatusChange::Active) => {
            if was.status == MemberStatus::Invited.as_str() {
                return Err(ApiError::validation(
                    "status",
                    "an invited member becomes active by accepting the invitation",
                ));
            }
            // Lifting a suspension returns the account to where it was: one that never accepted
            // its invitation is invited again (and can be sent a new invitation).
            let restored = match was.password_hash {
                Some(_) => MemberStatus::Active,
                None => MemberStatus::Invited,
            };
            active.status = Set(restored.as_str().to_owned());
        }
        None => {}
    }
    active.updated_at = Set(Utc::now());
    let mut updated = active.update(&*txn).await?;
    if suspending {
        revoke_sessions(&*txn, member_id).await?;
        updated.token_version += 1;
    }
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(actor.id()),
            action: if suspending {
                "member.suspended"
            } else {
                "member.updated"
            },
            target_type: "member",
            target_id: Some(member_id),
            details: json!({
                "name": request.name,
                "role": request.role.map(|role| role.as_str()),
                "status": updated.status,
                "organization_id": updated.organization_id,
            }),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    if suspending || demoted {
        crate::realtime::revoke_member(state, member_id);
    }
    Ok(updated)
}

#[tracing::instrument(skip_all, fields(actor_id = actor.id(), member_id))]
pub async fn resend_invitation(
    state: &AppState,
    actor: &CurrentMember,
    member_id: i32,
    ip: Option<String>,
) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    let member = member::Entity::find_by_id(member_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    if member.status != MemberStatus::Invited.as_str() {
        let why = match member.password_hash {
            None => "the member is suspended; lift the suspension first",
            Some(_) => "the member has already accepted an invitation",
        };
        return Err(ApiError::Conflict(why.to_owned()));
    }
    queue_invitation(state, &*txn, &member).await?;
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "member.reinvited",
            target_type: "member",
            target_id: Some(member_id),
            details: json!({}),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    state.mailer.do_send(mail::Wake);
    Ok(())
}

#[tracing::instrument(skip_all, fields(actor_id = actor.id(), member_id))]
pub async fn send_password_reset(
    state: &AppState,
    actor: &CurrentMember,
    member_id: i32,
    ip: Option<String>,
) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    let member = member::Entity::find_by_id(member_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    if member.status != MemberStatus::Active.as_str() {
        return Err(ApiError::Conflict(
            "only active members can reset a password".to_owned(),
        ));
    }
    queue_password_reset(state, &*txn, &member).await?;
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(actor.id()),
            action: "member.password_reset_sent",
            target_type: "member",
            target_id: Some(member_id),
            details: json!({}),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    state.mailer.do_send(mail::Wake);
    Ok(())
}

pub async fn list_audit(state: &AppState, filter: &AuditFilter, page: Page) -> ApiResult<Vec<audit_log::Model>> {
    // Newest first: the cursor walks down the ids.
    let mut query = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(audit_log::Column::Id.lt(after));
    }
    if let Some(actor_id) = filter.actor_id {
        query = query.filter(audit_log::Column::ActorId.eq(actor_id));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::Column::Action.eq(action.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_log::Column::At.gte(since));
    }
    Ok(query.all(state.db.conn()).await?)
}

async fn ensure_organization(state: &AppState, organization_id: i32) -> ApiResult<()> {
    organization::Entity::find_by_id(organization_id)
        .one(state.db.conn())
        .await?
        .map(drop)
        .ok_or_else(|| ApiError::validation("organization_id", "no such organization"))
}
