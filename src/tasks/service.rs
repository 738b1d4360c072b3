//! The rules of tasks: who may see and change them, allowed moves, and who hears about it.

use chrono::{Datelike as _, Utc};
use entity::{agenda_item, committee_membership, meeting, member, task, task_comment};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
    Select, Set,
};
use serde_json::json;

use super::dto::*;
use crate::auth::{CallerToken, authorize_in};
use crate::committees::service::{self as committees, Access};
use crate::domain::{Locale, MemberStatus, Role, Validator, required_line, required_text};
use crate::error::{ApiError, ApiResult};
use crate::events::Channel;
use crate::group_commit::Batch;
use crate::mail::{self, templates};
use crate::pagination::Page;
use crate::preconditions::IfMatch;
use crate::state::AppState;

/// The task (not deleted) and what the caller may do in its committee.
pub async fn access(
    conn: &impl ConnectionTrait,
    caller: &member::Model,
    task_id: i32,
) -> ApiResult<(task::Model, Access)> {
    let task = live_task(task_id).one(conn).await?.ok_or(ApiError::NotFound)?;
    let access = committees::access(conn, caller, task.committee_id).await?;
    Ok((task, access))
}

/// The task, unless it does not exist or was deleted.
fn live_task(task_id: i32) -> Select<task::Entity> {
    task::Entity::find_by_id(task_id).filter(task::Column::DeletedAt.is_null())
}

/// [`access`] for a write in a group-commit batch, sharing the committee's part with the batch.
///
/// Every write that comes here changes the task's row, so the row is read locked: the lane
/// keeps one node's writes of a task in order, the lock those of several nodes (see
/// [`crate::db::lock_row`]).
async fn access_in(batch: &Batch, caller: &member::Model, task_id: i32) -> ApiResult<(task::Model, Access)> {
    let task = live_task(task_id)
        .lock_exclusive()
        .one(&**batch)
        .await?
        .ok_or(ApiError::NotFound)?;
    let access = committees::access_in(batch, caller, task.committee_id).await?;
    Ok((task, access))
}

/// Whether `member_id` can see `committee_id`: an active account, a member of it or of the
/// secretariat. (A suspended or not yet active account could not open the task it is given.)
async fn can_see_committee(conn: &impl ConnectionTrait, member_id: i32, committee_id: i32) -> ApiResult<bool> {
    let Some(member) = member::Entity::find_by_id(member_id)
        .filter(member::Column::Status.eq(MemberStatus::Active.as_str()))
        .one(conn)
        .await?
    else {
        return Ok(false);
    };
    if member.role == Role::Secretariat.as_str() {
        return Ok(true);
    }
    Ok(committee_membership::Entity::find_by_id((committee_id, member_id))
        .one(conn)
        .await?
        .is_some())
}

async fn check_assignee(conn: &impl ConnectionTrait, assignee_id: i32, committee_id: i32) -> ApiResult<()> {
    if can_see_committee(conn, assignee_id, committee_id).await? {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_assignee",
            "the assignee must be an active account that can see the committee",
        ))
    }
}

/// The meeting a new task belongs to: the one named, or the agenda item's. A task may point at
/// a meeting of its committee (owned or invited to) and an item of it; a meeting or item the
/// committee does not take part in gets the same answer as one that does not exist: its
/// existence is not the caller's to learn.
async fn linked_meeting(
    conn: &impl ConnectionTrait,
    committee_id: i32,
    meeting_id: Option<i32>,
    item_id: Option<i32>,
) -> ApiResult<Option<i32>> {
    if let Some(item_id) = item_id {
        let item = agenda_item::Entity::find_by_id(item_id).one(conn).await?;
        let item = match item {
            Some(item) if takes_part(conn, committee_id, item.meeting_id).await? => item,
            _ => return Err(ApiError::validation("agenda_item_id", "no such agenda item")),
        };
        if meeting_id.is_some_and(|id| id != item.meeting_id) {
            return Err(ApiError::validation("agenda_item_id", "belongs to another meeting"));
        }
        return Ok(Some(item.meeting_id));
    }
    if let Some(meeting_id) = meeting_id {
        if !takes_part(conn, committee_id, meeting_id).await? {
            return Err(ApiError::validation("meeting_id", "no such meeting"));
        }
    }
    Ok(meeting_id)
}

/// Whether the meeting exists and the committee owns it or is invited to it.
async fn takes_part(conn: &impl ConnectionTrait, committee_id: i32, meeting_id: i32) -> ApiResult<bool> {
    let Some(meeting) = meeting::Entity::find_by_id(meeting_id).one(conn).await? else {
        return Ok(false);
    };
    Ok(crate::meetings::service::committees_of(conn, &meeting)
        .await?
        .contains(&committee_id))
}

/// Records the task event into its committee's channel, and tells a new assignee personally
/// (an event on their own channel and a mail).
async fn emit(
    batch: &Batch,
    public_url: &url::Url,
    actor_id: i32,
    kind: &str,
    task: &task::Model,
    newly_assigned: Option<i32>,
) -> ApiResult<()> {
    let response = TaskResponse::from(task.clone());
    batch.record(
        &[Channel::Committee(task.committee_id)],
        kind,
        Some(actor_id),
        json!(response),
    );
    if let Some(assignee_id) = assignee_to_tell(actor_id, newly_assigned) {
        batch.record(
            &[Channel::Member(assignee_id)],
            "task.assigned",
            Some(actor_id),
            json!(response),
        );
        if let Some(assignee) = member::Entity::find_by_id(assignee_id).one(&**batch).await? {
            let link = format!("{public_url}committees/{}/tasks/{}", task.committee_id, task.id);
            let locale = Locale::from_db(&assignee.locale).unwrap_or(Locale::En);
            mail::enqueue(
                &**batch,
                &assignee.email,
                templates::task_assigned(locale, &assignee.name, &task.title, &link),
            )
            .await?;
        }
    }
    Ok(())
}

/// Who hears personally of a task change by `actor_id` (an event and a mail): a new assignee,
/// unless they assigned themselves.
fn assignee_to_tell(actor_id: i32, newly_assigned: Option<i32>) -> Option<i32> {
    newly_assigned.filter(|id| *id != actor_id)
}

#[tracing::instrument(skip_all, fields(caller = caller.member_id(), committee_id))]
pub async fn create(
    state: &AppState,
    caller: CallerToken,
    committee_id: i32,
    request: CreateTaskRequest,
) -> ApiResult<TaskResponse> {
    let mut validator = Validator::default();
    let title = validator.check(required_line("title", &request.title, 300));
    validator.long_text("description", request.description.as_deref());
    validator.year_in_range("due_on", request.due_on.map(|day| day.year()));
    validator.finish()?;

    let caller_id = caller.member_id();
    let new_task = NewTask {
        caller,
        committee_id,
        title: title.unwrap_or_default(),
        request,
        public_url: state.settings.server.public_url.clone(),
    };
    let task = state
        .writes
        .write_checked(
            committee_id,
            new_task,
            |batch, new_task| Box::pin(may_create(batch, new_task)),
            |batch, new_task| Box::pin(insert_task(batch, new_task)),
        )
        .await?;
    // Only a mail queued now is worth waking the mailer for: each wake costs it a query.
    if assignee_to_tell(caller_id, task.assignee_id).is_some() {
        state.mailer.do_send(mail::Wake);
    }
    Ok(task.into())
}

struct NewTask {
    caller: CallerToken,
    committee_id: i32,
    title: String,
    request: CreateTaskRequest,
    public_url: url::Url,
}

/// The checks of a task create, before its batch's writes run: the caller's token, and their
/// right to write in the committee.
async fn may_create(batch: &Batch, new_task: &NewTask) -> ApiResult<()> {
    let caller = authorize_in(batch, &new_task.caller).await?;
    committees::access_in(batch, &caller, new_task.committee_id)
        .await?
        .require_write()
}

/// The check of a write on a task, before its batch's writes run: the caller's token. (Their
/// rights come with the task's row, which the write reads locked.)
async fn caller_stands(batch: &Batch, caller: &CallerToken) -> ApiResult<()> {
    authorize_in(batch, caller).await.map(drop)
}

async fn insert_task(batch: &Batch, new_task: &NewTask) -> ApiResult<task::Model> {
    let NewTask {
        caller,
        committee_id,
        title,
        request,
        public_url,
    } = new_task;
    let txn = &**batch;
    // Its checks again: run alone after a failed batch, a write runs without them.
    may_create(batch, new_task).await?;
    let caller_id = caller.member_id();
    if let Some(assignee_id) = request.assignee_id {
        check_assignee(txn, assignee_id, *committee_id).await?;
    }
    let meeting_id = linked_meeting(txn, *committee_id, request.meeting_id, request.agenda_item_id).await?;
    let now = crate::db::now();
    let task = task::ActiveModel {
        committee_id: Set(*committee_id),
        title: Set(title.clone()),
        description: Set(request.description.as_deref().unwrap_or_default().trim().to_owned()),
        status: Set(TaskStatus::Todo.as_str().to_owned()),
        priority: Set(request.priority.unwrap_or(TaskPriority::Normal).as_str().to_owned()),
        assignee_id: Set(request.assignee_id),
        due_on: Set(request.due_on),
        position: Set(request.position.unwrap_or(0)),
        meeting_id: Set(meeting_id),
        agenda_item_id: Set(request.agenda_item_id),
        created_by: Set(caller_id),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    };
    let task = batch.insert(task).await?;
    emit(batch, public_url, caller_id, "task.created", &task, task.assignee_id).await?;
    Ok(task)
}

pub async fn list(
    state: &AppState,
    caller: &member::Model,
    committee_id: i32,
    filter: &TaskFilter,
    page: Page,
) -> ApiResult<Vec<task::Model>> {
    committees::access(state.db.conn(), caller, committee_id).await?;
    let mut query = task::Entity::find()
        .filter(task::Column::CommitteeId.eq(committee_id))
        .filter(task::Column::DeletedAt.is_null())
        .order_by_asc(task::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(task::Column::Id.gt(after));
    }
    if let Some(status) = &filter.status {
        let status = TaskStatus::from_db(status)
            .map_err(|_| ApiError::validation("status", "must be todo, in_progress, blocked or done"))?;
        query = query.filter(task::Column::Status.eq(status.as_str()));
    }
    if let Some(assignee_id) = filter.assignee_id {
        query = query.filter(task::Column::AssigneeId.eq(assignee_id));
    }
    if let Some(before) = filter.due_before {
        query = query.filter(task::Column::DueOn.lt(before));
    }
    if filter.overdue == Some(true) {
        query = query
            .filter(task::Column::DueOn.lt(Utc::now().date_naive()))
            .filter(task::Column::Status.ne(TaskStatus::Done.as_str()));
    }
    Ok(query.all(state.db.conn()).await?)
}

pub async fn get(state: &AppState, caller: &member::Model, task_id: i32) -> ApiResult<task::Model> {
    Ok(access(state.db.conn(), caller, task_id).await?.0)
}

#[tracing::instrument(skip_all, fields(caller = caller.member_id(), task_id))]
pub async fn update(
    state: &AppState,
    caller: CallerToken,
    task_id: i32,
    if_match: IfMatch,
    request: UpdateTaskRequest,
) -> ApiResult<TaskResponse> {
    let mut validator = Validator::default();
    let title = request
        .title
        .as_deref()
        .and_then(|title| validator.check(required_line("title", title, 300)));
    validator.long_text("description", request.description.as_deref());
    validator.year_in_range("due_on", request.due_on.flatten().map(|day| day.year()));
    validator.finish()?;

    let caller_id = caller.member_id();
    let change = TaskChange {
        caller,
        task_id,
        if_match,
        title,
        request,
        public_url: state.settings.server.public_url.clone(),
    };
    let (updated, newly_assigned) = state
        .writes
        .write_checked(
            task_id,
            change,
            |batch, change| Box::pin(caller_stands(batch, &change.caller)),
            |batch, change| Box::pin(apply_change(batch, change)),
        )
        .await?;
    if assignee_to_tell(caller_id, newly_assigned).is_some() {
        state.mailer.do_send(mail::Wake);
    }
    Ok(updated.into())
}

struct TaskChange {
    caller: CallerToken,
    task_id: i32,
    if_match: IfMatch,
    /// The new title, validated.
    title: Option<String>,
    request: UpdateTaskRequest,
    public_url: url::Url,
}

/// The updated task, and its new assignee if it has one.
async fn apply_change(batch: &Batch, change: &TaskChange) -> ApiResult<(task::Model, Option<i32>)> {
    let TaskChange {
        caller,
        task_id,
        if_match,
        title,
        request,
        public_url,
    } = change;
    let txn = &**batch;
    let caller = &authorize_in(batch, caller).await?;
    let (task, access) = access_in(batch, caller, *task_id).await?;
    access.require_write()?;
    if_match.check(task.version)?;
    if let Some(next) = request.status {
        let current = TaskStatus::from_db(&task.status)?;
        if !current.can_become(next) {
            return Err(ApiError::unprocessable(
                "invalid_transition",
                format!("a {} task cannot become {}", current.as_str(), next.as_str()),
            ));
        }
    }
    let newly_assigned = match request.assignee_id {
        Some(Some(assignee_id)) if task.assignee_id != Some(assignee_id) => {
            check_assignee(txn, assignee_id, task.committee_id).await?;
            Some(assignee_id)
        }
        _ => None,
    };
    let version = task.version;
    let mut active = task.into_active_model();
    if let Some(title) = title {
        active.title = Set(title.clone());
    }
    if let Some(description) = &request.description {
        active.description = Set(description.trim().to_owned());
    }
    if let Some(status) = request.status {
        active.status = Set(status.as_str().to_owned());
    }
    if let Some(priority) = request.priority {
        active.priority = Set(priority.as_str().to_owned());
    }
    if let Some(assignee_id) = request.assignee_id {
        active.assignee_id = Set(assignee_id);
    }
    if let Some(due_on) = request.due_on {
        active.due_on = Set(due_on);
    }
    if let Some(position) = request.position {
        active.position = Set(position);
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let updated = active.update(txn).await?;
    emit(batch, public_url, caller.id, "task.updated", &updated, newly_assigned).await?;
    Ok((updated, newly_assigned))
}

#[tracing::instrument(skip_all, fields(caller = caller.member_id(), task_id))]
pub async fn delete(state: &AppState, caller: CallerToken, task_id: i32) -> ApiResult<()> {
    let removal = (caller, task_id, state.settings.server.public_url.clone());
    state
        .writes
        .write_checked(
            task_id,
            removal,
            |batch, removal| Box::pin(caller_stands(batch, &removal.0)),
            |batch, removal| Box::pin(soft_delete(batch, removal)),
        )
        .await
}

async fn soft_delete(batch: &Batch, (caller, task_id, public_url): &(CallerToken, i32, url::Url)) -> ApiResult<()> {
    let caller = &authorize_in(batch, caller).await?;
    let (task, access) = access_in(batch, caller, *task_id).await?;
    access.require_write()?;
    let mut active = task.into_active_model();
    active.deleted_at = Set(Some(Utc::now()));
    let deleted = active.update(&**batch).await?;
    emit(batch, public_url, caller.id, "task.deleted", &deleted, None).await
}

pub async fn comments(
    state: &AppState,
    caller: &member::Model,
    task_id: i32,
    page: Page,
) -> ApiResult<Vec<task_comment::Model>> {
    access(state.db.conn(), caller, task_id).await?;
    let mut query = task_comment::Entity::find()
        .filter(task_comment::Column::TaskId.eq(task_id))
        .order_by_asc(task_comment::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(task_comment::Column::Id.gt(after));
    }
    Ok(query.all(state.db.conn()).await?)
}

/// One comment of a task the caller can see; a comment of another task is not found, as one
/// that does not exist.
pub async fn comment_of(
    state: &AppState,
    caller: &member::Model,
    task_id: i32,
    comment_id: i32,
) -> ApiResult<task_comment::Model> {
    access(state.db.conn(), caller, task_id).await?;
    task_comment::Entity::find_by_id(comment_id)
        .filter(task_comment::Column::TaskId.eq(task_id))
        .one(state.db.conn())
        .await?
        .ok_or(ApiError::NotFound)
}

#[tracing::instrument(skip_all, fields(caller = caller.member_id(), task_id))]
pub async fn comment(state: &AppState, caller: CallerToken, task_id: i32, body: &str) -> ApiResult<CommentResponse> {
    let body = required_text("body", body, 10_000).map_err(|error| ApiError::Validation(vec![error]))?;
    let comment = (caller, task_id, body);
    state
        .writes
        .write_checked(
            task_id,
            comment,
            |batch, comment| Box::pin(caller_stands(batch, &comment.0)),
            |batch, comment| Box::pin(add_comment(batch, comment)),
        )
        .await
}

async fn add_comment(
    batch: &Batch,
    (caller, task_id, body): &(CallerToken, i32, String),
) -> ApiResult<CommentResponse> {
    let txn = &**batch;
    let caller = &authorize_in(batch, caller).await?;
    let (task, access) = access_in(batch, caller, *task_id).await?;
    access.require_write()?;
    let row = task_comment::ActiveModel {
        task_id: Set(*task_id),
        author_id: Set(caller.id),
        body: Set(body.clone()),
        created_at: Set(crate::db::now()),
        ..Default::default()
    };
    let row = batch.insert(row).await?;
    // Touch the task so that lists sorted by change show the discussion.
    task::Entity::update_many()
        .col_expr(task::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(task::Column::Id.eq(*task_id))
        .exec(txn)
        .await?;
    let response = CommentResponse::from(row);
    batch.record(
        &[Channel::Committee(task.committee_id)],
        "task.commented",
        Some(caller.id),
        json!(response),
    );
    Ok(response)
}
