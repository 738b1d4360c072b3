//! Task endpoints under `/api`.

use actix_web::{HttpResponse, delete, get, http::header, patch, post, web};

use super::dto::*;
use super::service;
use crate::auth::{CallerToken, CurrentMember};
use crate::error::{ApiResult, Deferred, Problem};
use crate::input::{Json, Query};
use crate::pagination::{PageQuery, Paginated};
use crate::preconditions::{IfMatch, etag};
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list_tasks)
        .service(create_task)
        .service(get_task)
        .service(update_task)
        .service(delete_task)
        .service(list_comments)
        .service(get_comment)
        .service(create_comment);
}

/// Tasks of a committee, filtered and paginated.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path), TaskFilter, PageQuery),
    responses((status = 200, body = Paginated<TaskResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/committees/{id}/tasks")]
async fn list_tasks(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    filter: Deferred<Query<TaskFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let rows = service::list(&state, &me.0, *id, &filter, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |t| t.id.into(), TaskResponse::from)))
}

/// Creates a task; a new assignee is told by event and mail.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path)), request_body = CreateTaskRequest,
    responses(
        (status = 201, body = TaskResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, description = "invalid_assignee", body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem), (status = 503, description = "overloaded: too many writes queued; retry after `Retry-After`", body = Problem),
    )
)]
#[post("/committees/{id}/tasks")]
async fn create_task(
    state: web::Data<AppState>,
    me: CallerToken,
    id: web::Path<i32>,
    body: Deferred<Json<CreateTaskRequest>>,
) -> ApiResult<HttpResponse> {
    let task = service::create(&state, me, *id, body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/tasks/{}", task.id)))
        .insert_header(etag(task.version))
        .json(task))
}

/// One task.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = TaskResponse), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/tasks/{id}")]
async fn get_task(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let task = service::get(&state, &me.0, *id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(task.version))
        .json(TaskResponse::from(task)))
}

/// Changes a task: fields, status (allowed moves only), assignee; `If-Match` guards against lost updates.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path)), request_body = UpdateTaskRequest,
    responses(
        (status = 200, body = TaskResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem), (status = 422, description = "invalid_transition or invalid_assignee", body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem), (status = 503, description = "overloaded: too many writes queued; retry after `Retry-After`", body = Problem),
    )
)]
#[patch("/tasks/{id}")]
async fn update_task(
    state: web::Data<AppState>,
    me: CallerToken,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
    body: Deferred<Json<UpdateTaskRequest>>,
) -> ApiResult<HttpResponse> {
    let task = service::update(&state, me, *id, if_match?, body?.into_inner()).await?;
    Ok(HttpResponse::Ok().insert_header(etag(task.version)).json(task))
}

/// Deletes a task.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem), (status = 503, description = "overloaded: too many writes queued; retry after `Retry-After`", body = Problem))
)]
#[delete("/tasks/{id}")]
async fn delete_task(state: web::Data<AppState>, me: CallerToken, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    service::delete(&state, me, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The discussion of a task, oldest first.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path), PageQuery),
    responses((status = 200, body = Paginated<CommentResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/tasks/{id}/comments")]
async fn list_comments(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let page = page?.page()?;
    let rows = service::comments(&state, &me.0, *id, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |c| c.id.into(), CommentResponse::from)))
}

/// One comment of a task: where a created comment's `Location` points.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path), ("comment_id" = i32, Path)),
    responses((status = 200, body = CommentResponse), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/tasks/{id}/comments/{comment_id}")]
async fn get_comment(
    state: web::Data<AppState>,
    me: CurrentMember,
    path: web::Path<(i32, i32)>,
) -> ApiResult<HttpResponse> {
    let (task_id, comment_id) = path.into_inner();
    let comment = service::comment_of(&state, &me.0, task_id, comment_id).await?;
    Ok(HttpResponse::Ok().json(CommentResponse::from(comment)))
}

/// Comments on a task.
#[utoipa::path(
    context_path = "/api", tag = "tasks", security(("bearer" = [])), params(("id" = i32, Path)), request_body = CommentRequest,
    responses((status = 201, body = CommentResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem), (status = 503, description = "overloaded: too many writes queued; retry after `Retry-After`", body = Problem))
)]
#[post("/tasks/{id}/comments")]
async fn create_comment(
    state: web::Data<AppState>,
    me: CallerToken,
    id: web::Path<i32>,
    body: Deferred<Json<CommentRequest>>,
) -> ApiResult<HttpResponse> {
    let comment = service::comment(&state, me, *id, &body?.body).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/tasks/{}/comments/{}", *id, comment.id)))
        .json(comment))
}
