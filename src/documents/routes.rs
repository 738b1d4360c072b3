//! Document endpoints under `/api`, and the publication review under `/api/admin`.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};

use super::dto::*;
use super::service::{self, Review};
use super::{download, upload};
use crate::auth::{CallerToken, CurrentMember, Secretariat};
use crate::error::{ApiResult, Deferred, Problem};
use crate::input::{Json, OptionalJson, Query};
use crate::pagination::{PageQuery, Paginated};
use crate::preconditions::{IfMatch, etag};
use crate::state::AppState;
use crate::storage::BlobStore as _;

pub fn configure_member(cfg: &mut web::ServiceConfig) {
    cfg.service(list_documents)
        .service(create_document)
        .service(get_document)
        .service(download_document)
        .service(add_version)
        .service(update_document)
        .service(delete_document)
        .service(share_document)
        .service(unshare_document)
        .service(request_publication);
}

pub fn configure_admin(cfg: &mut web::ServiceConfig) {
    cfg.service(list_publications)
        .service(get_publication)
        .service(approve_publication)
        .service(reject_publication)
        .service(withdraw_publication);
}

/// Documents of a committee: its own and those shared with it.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])),
    params(("id" = i32, Path), DocumentFilter, PageQuery),
    responses((status = 200, body = Paginated<DocumentResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/committees/{id}/documents")]
async fn list_documents(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    filter: Deferred<Query<DocumentFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let rows = service::list(&state, &me.0, *id, &filter, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(rows, page, |d| d.id.into(), |d| d)))
}

/// Uploads a document (multipart: `file`, `title`, optional `description`, `tags` comma-separated, `note`).
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path)),
    request_body(content = NewDocumentForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = DocumentResponse), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem),
    )
)]
#[post("/committees/{id}/documents")]
async fn create_document(
    state: web::Data<AppState>,
    me: CurrentMember,
    caller: CallerToken,
    id: web::Path<i32>,
    request: HttpRequest,
    form: Multipart,
) -> ApiResult<HttpResponse> {
    upload::refuse_declared_too_large(&request, state.settings.documents.max_upload_bytes)?;
    // Refuse before reading the body when the caller may not write here at all.
    crate::committees::service::access(state.db.conn(), &me.0, *id)
        .await?
        .require_write()?;
    let (me, upload) = receive_from(&state, &caller, form).await?;
    let document = service::create(&state, &me, *id, upload).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/documents/{}", document.id)))
        .insert_header(etag(document.version))
        .json(document))
}

/// Reads an upload's body, then checks the caller again: the body may take minutes, and a
/// suspension, a revocation or the end of the login session meanwhile refuses the upload, as it
/// would have refused the request had it come then.
async fn receive_from(
    state: &AppState,
    caller: &CallerToken,
    form: Multipart,
) -> ApiResult<(entity::member::Model, upload::Upload)> {
    let upload = upload::receive(&state.storage, form, state.settings.documents.max_upload_bytes).await?;
    match caller.authorize(state).await {
        Ok(member) => Ok((member, upload)),
        Err(error) => {
            state.storage.discard(upload.file).await;
            Err(error)
        }
    }
}

/// A document's metadata, versions and shares.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = DocumentDetailResponse), (status = 401, body = Problem), (status = 404, body = Problem))
)]
#[get("/documents/{id}")]
async fn get_document(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let detail = service::detail(&state, &me.0, *id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(detail.document.version))
        .json(detail))
}

/// Downloads a version (the current one by default), with `ETag`, `If-None-Match` and `Range`.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path), VersionQuery),
    responses((status = 200, description = "the file"), (status = 206, description = "a range"), (status = 304), (status = 400, description = "an If-Match that cannot be read, or a bad version", body = Problem), (status = 401, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem), (status = 416, body = Problem), (status = 503, description = "content_unavailable", body = Problem))
)]
#[get("/documents/{id}/content")]
async fn download_document(
    state: web::Data<AppState>,
    me: CurrentMember,
    request: HttpRequest,
    id: web::Path<i32>,
    query: Deferred<Query<VersionQuery>>,
) -> ApiResult<HttpResponse> {
    let version = service::content(&state, &me.0, *id, query?.version).await?;
    download::serve_file(
        &state,
        &request,
        &version.sha256,
        &version.content_type,
        &version.file_name,
    )
    .await
}

/// Adds a new version (multipart: `file`, optional `note`); `If-Match` refuses a stale base.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path)),
    request_body(content = NewVersionForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, body = DocumentResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 412, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem),
    )
)]
#[post("/documents/{id}/versions")]
async fn add_version(
    state: web::Data<AppState>,
    me: CurrentMember,
    caller: CallerToken,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
    request: HttpRequest,
    form: Multipart,
) -> ApiResult<HttpResponse> {
    upload::refuse_declared_too_large(&request, state.settings.documents.max_upload_bytes)?;
    let if_match = if_match?;
    let (_, access) = service::access(state.db.conn(), &me.0, *id).await?;
    access.require_write()?;
    let (me, upload) = receive_from(&state, &caller, form).await?;
    let document = service::add_version(&state, &me, *id, if_match, upload).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!(
                "/api/documents/{}/content?version={}",
                document.id, document.current_version
            ),
        ))
        .insert_header(etag(document.version))
        .json(document))
}

/// Changes title, description, status or tags.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path)), request_body = UpdateDocumentRequest,
    responses((status = 200, body = DocumentResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 412, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[patch("/documents/{id}")]
async fn update_document(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    if_match: Deferred<IfMatch>,
    body: Deferred<Json<UpdateDocumentRequest>>,
) -> ApiResult<HttpResponse> {
    let document = service::update(&state, &me.0, *id, if_match?, body?.into_inner()).await?;
    Ok(HttpResponse::Ok().insert_header(etag(document.version)).json(document))
}

/// Deletes a document (softly), by its committee's chair, its creator or the secretariat.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[delete("/documents/{id}")]
async fn delete_document(state: web::Data<AppState>, me: CurrentMember, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    service::delete(&state, &me.0, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Shares the document, live, with another committee.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])),
    params(("id" = i32, Path), ("committee_id" = i32, Path)), request_body = ShareRequest,
    responses((status = 200, body = ShareResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[put("/documents/{id}/shares/{committee_id}")]
async fn share_document(
    state: web::Data<AppState>,
    me: CurrentMember,
    path: web::Path<(i32, i32)>,
    body: Deferred<Json<ShareRequest>>,
) -> ApiResult<HttpResponse> {
    let (id, committee_id) = path.into_inner();
    let share = service::share(&state, &me.0, id, committee_id, body?.access).await?;
    Ok(HttpResponse::Ok().json(share))
}

/// Stops sharing the document with a committee.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path), ("committee_id" = i32, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived", body = Problem))
)]
#[delete("/documents/{id}/shares/{committee_id}")]
async fn unshare_document(
    state: web::Data<AppState>,
    me: CurrentMember,
    path: web::Path<(i32, i32)>,
) -> ApiResult<HttpResponse> {
    let (id, committee_id) = path.into_inner();
    service::unshare(&state, &me.0, id, committee_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Asks the secretariat to publish the document's current version in the public area.
#[utoipa::path(
    context_path = "/api", tag = "documents", security(("bearer" = [])), params(("id" = i32, Path)), request_body = PublishRequest,
    responses((status = 201, body = PublicationResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, description = "committee_archived: the committee is archived; conflict: a request of this document is waiting for review", body = Problem))
)]
#[post("/documents/{id}/publish")]
async fn request_publication(
    state: web::Data<AppState>,
    me: CurrentMember,
    id: web::Path<i32>,
    body: Deferred<Json<PublishRequest>>,
) -> ApiResult<HttpResponse> {
    let publication = service::request_publication(&state, &me.0, *id, body?.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/admin/publications/{}", publication.id)))
        .json(publication))
}

/// Publication requests, by status.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(PublicationFilter, PageQuery),
    responses((status = 200, body = Paginated<PublicationResponse>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem))
)]
#[get("/publications")]
async fn list_publications(
    state: web::Data<AppState>,
    _: Secretariat,
    filter: Deferred<Query<PublicationFilter>>,
    page: Deferred<Query<PageQuery>>,
) -> ApiResult<HttpResponse> {
    let (filter, page) = (filter?, page?.page()?);
    let rows = service::list_publications(&state, &filter, page).await?;
    Ok(HttpResponse::Ok().json(Paginated::from_rows(
        rows,
        page,
        |p| p.id.into(),
        PublicationResponse::from,
    )))
}

/// One publication request, in any status.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = PublicationResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[get("/publications/{id}")]
async fn get_publication(state: web::Data<AppState>, _: Secretariat, id: web::Path<i32>) -> ApiResult<HttpResponse> {
    let publication = service::publication(state.db.conn(), *id).await?;
    Ok(HttpResponse::Ok().json(PublicationResponse::from(publication)))
}

/// Approves a pending publication (of the requested version, or of `version_number`).
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)), request_body = Option<ApproveRequest>,
    responses((status = 200, body = PublicationResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem))
)]
#[post("/publications/{id}/approve")]
async fn approve_publication(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
    body: Deferred<OptionalJson<ApproveRequest>>,
) -> ApiResult<HttpResponse> {
    let version_number = body?.0.and_then(|body| body.version_number);
    let publication = service::review(&state, actor.id(), *id, Review::Approve { version_number }).await?;
    Ok(HttpResponse::Ok().json(publication))
}

/// Rejects a pending publication, with a reason.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)), request_body = RejectRequest,
    responses((status = 200, body = PublicationResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem))
)]
#[post("/publications/{id}/reject")]
async fn reject_publication(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
    body: Deferred<Json<RejectRequest>>,
) -> ApiResult<HttpResponse> {
    let reason = body?.into_inner().reason;
    Ok(HttpResponse::Ok().json(service::review(&state, actor.id(), *id, Review::Reject { reason }).await?))
}

/// Withdraws a publication from the public area.
#[utoipa::path(
    context_path = "/api/admin", tag = "admin", security(("bearer" = [])), params(("id" = i32, Path)),
    responses((status = 200, body = PublicationResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem))
)]
#[post("/publications/{id}/withdraw")]
async fn withdraw_publication(
    state: web::Data<AppState>,
    Secretariat(actor): Secretariat,
    id: web::Path<i32>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::review(&state, actor.id(), *id, Review::Withdraw).await?))
}
