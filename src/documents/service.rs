//! The rules of documents: who may see, change, share and publish them, one transaction each,
//! with the events every change emits into the owner's and every sharing committee's channel.

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use entity::{committee_membership, document, document_share, document_tag, document_version, publication};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set,
};
use serde_json::json;

use super::dto::*;
use super::upload::Upload;
use crate::audit::{self, AuditEntry};
use crate::committees::dto::CommitteeRole;
use crate::committees::service as committees;
use crate::domain::{ONE_LINE, Role, Validator, has_control, required_line, required_text};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::events::{self, Channel, Recorded};
use crate::pagination::Page;
use crate::preconditions::IfMatch;
use crate::realtime;
use crate::state::AppState;
use crate::storage::BlobStore;
use entity::member;

const MAX_TAGS: usize = 20;

/// What the caller may do with one document.
#[derive(Clone, Copy, Debug)]
pub struct DocAccess {
    pub write: bool,
    /// Chair of the owner committee, or the secretariat: share, publish, delete.
    pub manage: bool,
    /// The owner committee is archived: the document can be read, not changed.
    pub archived: bool,
    /// The secretariat or a member of the owner committee, not someone it is shared with: who
    /// else it is shared with is the owner's business.
    pub owner_side: bool,
}

impl DocAccess {
    fn require_open(&self) -> ApiResult<()> {
        committees::ensure_open(self.archived)
    }

    pub fn require_write(&self) -> ApiResult<()> {
        self.require_open()?;
        if self.write { Ok(()) } else { Err(ApiError::Forbidden) }
    }

    pub fn require_manage(&self) -> ApiResult<()> {
        self.require_open()?;
        if self.manage { Ok(()) } else { Err(ApiError::Forbidden) }
    }

    /// The chair, the secretariat, or a writer of the owner committee who created the document
    /// (one who has left it and writes only through a share is no longer its author there).
    fn require_manage_or_author(&self, document: &document::Model, caller: &member::Model) -> ApiResult<()> {
        self.require_open()?;
        if self.manage || (self.write && self.owner_side && document.created_by == caller.id) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The one place that decides access to a document. Without any, it does not exist (404).
pub async fn access(
    conn: &impl ConnectionTrait,
    caller: &member::Model,
    document_id: i32,
) -> ApiResult<(document::Model, DocAccess)> {
    let (document, archived) = committees::one_with_owner_archived(
        conn,
        document::Entity::find_by_id(document_id).filter(document::Column::DeletedAt.is_null()),
        document::Column::CommitteeId,
    )
    .await?
    .ok_or(ApiError::NotFound)?;
    if caller.role == Role::Secretariat.as_str() {
        return Ok((
            document,
            DocAccess {
                write: true,
                manage: true,
                archived,
                owner_side: true,
            },
        ));
    }
    let memberships = committee_membership::Entity::find()
        .filter(committee_membership::Column::MemberId.eq(caller.id))
        .all(conn)
        .await?;
    let role_in = |committee_id: i32| {
        memberships
            .iter()
            .find(|m| m.committee_id == committee_id)
            .and_then(|m| CommitteeRole::from_db(&m.role).ok())
    };
    if let Some(role) = role_in(document.committee_id) {
        let write = role != CommitteeRole::Observer;
        return Ok((
            document,
            DocAccess {
                write,
                manage: role == CommitteeRole::Chair,
                archived,
                owner_side: true,
            },
        ));
    }
    let shares = document_share::Entity::find()
        .filter(document_share::Column::DocumentId.eq(document_id))
        .all(conn)
        .await?;
    // A committee archived since the share was made still reads through it, and writes no more.
    let archived_sharers: Vec<i32> = if shares.iter().any(|share| role_in(share.committee_id).is_some()) {
        entity::committee::Entity::find()
            .select_only()
            .column(entity::committee::Column::Id)
            .filter(entity::committee::Column::Id.is_in(shares.iter().map(|share| share.committee_id)))
            .filter(entity::committee::Column::Archived.eq(true))
            .into_tuple()
            .all(conn)
            .await?
    } else {
        Vec::new()
    };
    let mut best: Option<DocAccess> = None;
    for share in shares {
        let Some(role) = role_in(share.committee_id) else {
            continue;
        };
        let write = share.access == ShareAccess::Write.as_str()
            && role != CommitteeRole::Observer
            && !archived_sharers.contains(&share.committee_id);
        best = Some(DocAccess {
            write: write || best.is_some_and(|b| b.write),
            manage: false,
            archived,
            owner_side: false,
        });
    }
    best.map(|access| (document, access)).ok_or(ApiError::NotFound)
}

/// Who follows a link to documents (an agenda item's): each sees only those it could open.
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    Member(&'a member::Model),
    /// The members of one committee, as an event in its channel reaches them all.
    Committee(i32),
}

/// The documents among `ids` that `reader` may read, as [`access`] decides: live, and owned by or
/// shared with one of the reader's committees (every live one for the secretariat).
pub async fn readable_among(
    conn: &impl ConnectionTrait,
    reader: Reader<'_>,
    ids: BTreeSet<i32>,
) -> ApiResult<BTreeSet<i32>> {
    if ids.is_empty() {
        return Ok(ids);
    }
    let committees: Option<Vec<i32>> = match reader {
        Reader::Member(member) if member.role == Role::Secretariat.as_str() => None,
        Reader::Member(member) => Some(
            committee_membership::Entity::find()
                .select_only()
                .column(committee_membership::Column::CommitteeId)
                .filter(committee_membership::Column::MemberId.eq(member.id))
                .into_tuple()
                .all(conn)
                .await?,
        ),
        Reader::Committee(id) => Some(vec![id]),
    };
    let mut query = document::Entity::find()
        .select_only()
        .column(document::Column::Id)
        .filter(document::Column::Id.is_in(ids))
        .filter(document::Column::DeletedAt.is_null());
    if let Some(committees) = committees {
        let shared_with = document_share::Entity::find()
            .select_only()
            .column(document_share::Column::DocumentId)
            .filter(document_share::Column::CommitteeId.is_in(committees.clone()))
            .into_query();
        query = query.filter(
            Condition::any()
                .add(document::Column::CommitteeId.is_in(committees))
                .add(document::Column::Id.in_subquery(shared_with)),
        );
    }
    Ok(query.into_tuple::<i32>().all(conn).await?.into_iter().collect())
}

/// The channels a document's events go to: its committee's and every sharing committee's.
async fn channels_of(conn: &impl ConnectionTrait, document: &document::Model) -> ApiResult<Vec<Channel>> {
    let shares = document_share::Entity::find()
        .filter(document_share::Column::DocumentId.eq(document.id))
        .all(conn)
        .await?;
    let mut channels = vec![Channel::Committee(document.committee_id)];
    channels.extend(shares.into_iter().map(|share| Channel::Committee(share.committee_id)));
    Ok(channels)
}

async fn version_of(
    conn: &impl ConnectionTrait,
    document_id: i32,
    number: i32,
) -> ApiResult<Option<document_version::Model>> {
    Ok(document_version::Entity::find()
        .filter(document_version::Column::DocumentId.eq(document_id))
        .filter(document_version::Column::Number.eq(number))
        .one(conn)
        .await?)
}

/// The document as responses and events show it.
pub async fn present(conn: &impl ConnectionTrait, document: document::Model) -> ApiResult<DocumentResponse> {
    let mut page = present_page(conn, vec![document]).await?;
    page.pop()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a presented document went missing")))
}

/// Documents as responses and events show them: their tags and current file, in two queries
/// whatever the number of documents.
async fn present_page(
    conn: &impl ConnectionTrait,
    documents: Vec<document::Model>,
) -> ApiResult<Vec<DocumentResponse>> {
    if documents.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i32> = documents.iter().map(|document| document.id).collect();
    let mut tags: HashMap<i32, Vec<String>> = HashMap::new();
    for row in document_tag::Entity::find()
        .filter(document_tag::Column::DocumentId.is_in(ids))
        .order_by_asc(document_tag::Column::Tag)
        .all(conn)
        .await?
    {
        tags.entry(row.document_id).or_default().push(row.tag);
    }
    let current = documents.iter().fold(Condition::any(), |any, document| {
        any.add(
            Condition::all()
                .add(document_version::Column::DocumentId.eq(document.id))
                .add(document_version::Column::Number.eq(document.current_version)),
        )
    });
    let mut files: HashMap<i32, document_version::Model> = document_version::Entity::find()
        .filter(current)
        .all(conn)
        .await?
        .into_iter()
        .map(|version| (version.document_id, version))
        .collect();
    Ok(documents
        .into_iter()
        .map(|document| {
            let file = files.remove(&document.id).map(VersionResponse::from);
            let tags = tags.remove(&document.id).unwrap_or_default();
            DocumentResponse::new(document, tags, file)
        })
        .collect())
}

/// Records `kind` for the document into all its channels.
async fn emit(
    conn: &impl ConnectionTrait,
    actor_id: i32,
    kind: &str,
    document: document::Model,
) -> ApiResult<(DocumentResponse, Recorded)> {
    let channels = channels_of(conn, &document).await?;
    let response = present(conn, document).await?;
    let recorded = events::record(conn, &channels, kind, Some(actor_id), json!(response)).await?;
    Ok((response, recorded))
}

fn parse_tags(raw: &[String]) -> Result<Vec<String>, FieldError> {
    let tags: BTreeSet<String> = raw
        .iter()
        .map(|tag| tag.trim().to_lowercase())
        .filter(|tag| !tag.is_empty())
        .collect();
    if tags.len() > MAX_TAGS {
        return Err(FieldError::new("tags", "at most 20 tags"));
    }
    if tags.iter().any(|tag| tag.chars().count() > 64) {
        return Err(FieldError::new("tags", "each tag at most 64 characters"));
    }
    if tags.iter().any(|tag| has_control(tag)) {
        return Err(FieldError::new("tags", ONE_LINE));
    }
    Ok(tags.into_iter().collect())
}

/// The upload's `note` on its version, free text bounded as a description is.
fn version_note(upload: &Upload, validator: &mut Validator) -> String {
    let note = upload.fields.get("note").map_or("", |note| note.trim());
    validator.long_text("note", Some(note));
    note.to_owned()
}

async fn replace_tags(conn: &impl ConnectionTrait, document_id: i32, tags: &[String]) -> ApiResult<()> {
    document_tag::Entity::delete_many()
        .filter(document_tag::Column::DocumentId.eq(document_id))
        .exec(conn)
        .await?;
    for tag in tags {
        document_tag::ActiveModel {
            document_id: Set(document_id),
            tag: Set(tag.clone()),
        }
        .insert(conn)
        .await?;
    }
    Ok(())
}

async fn audit_document(
    conn: &impl ConnectionTrait,
    actor_id: i32,
    action: &str,
    target_id: i32,
    details: serde_json::Value,
) -> ApiResult<()> {
    audit::record(
        conn,
        AuditEntry {
            actor_id: Some(actor_id),
            action,
            target_type: "document",
            target_id: Some(target_id),
            details,
            ip: None,
        },
    )
    .await?;
    Ok(())
}

/// Runs `work` in a write transaction; the staged upload becomes a blob only if it commits, and
/// is removed otherwise.
async fn with_upload<T>(
    state: &AppState,
    upload: Upload,
    work: impl AsyncFnOnce(&crate::db::WriteTxn, &Upload) -> ApiResult<(T, Recorded)>,
) -> ApiResult<T> {
    let outcome = async {
        let txn = state.db.begin_write().await?;
        let (value, recorded) = work(&txn, &upload).await?;
        txn.commit().await?;
        Ok::<_, ApiError>((value, recorded))
    }
    .await;
    match outcome {
        Ok((value, recorded)) => {
            // Committed: the write succeeded, whatever happens to the file now. One that cannot
            // be moved into place stays in staging, where the storage sweep promotes it (its
            // version is committed); answering an error would only have the client send it again.
            if let Err(error) = state.storage.promote(upload.file).await {
                tracing::error!(error = %error, "a committed upload stays in staging until the storage sweep promotes it");
            }
            realtime::publish(state, recorded);
            Ok(value)
        }
        Err(error) => {
            state.storage.discard(upload.file).await;
            Err(error)
        }
    }
}

async fn insert_version(
    conn: &impl ConnectionTrait,
    document_id: i32,
    number: i32,
    upload: &Upload,
    note: String,
    uploaded_by: i32,
) -> ApiResult<()> {
    document_version::ActiveModel {
        document_id: Set(document_id),
        number: Set(number),
        sha256: Set(upload.file.sha256.clone()),
        size_bytes: Set(upload.file.size as i64),
        content_type: Set(upload.content_type.clone()),
        file_name: Set(upload.file_name.clone()),
        note: Set(note),
        uploaded_by: Set(uploaded_by),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(skip_all, fields(caller = caller.id, committee_id))]
pub async fn create(
    state: &AppState,
    caller: &member::Model,
    committee_id: i32,
    upload: Upload,
) -> ApiResult<DocumentResponse> {
    create_and(state, caller, committee_id, upload, async |_, _| Ok(())).await
}

/// [`create`], then `and` in the same transaction: what links the new document to something
/// else commits with it or not at all.
pub async fn create_and(
    state: &AppState,
    caller: &member::Model,
    committee_id: i32,
    upload: Upload,
    and: impl AsyncFnOnce(&crate::db::WriteTxn, &document::Model) -> ApiResult<()>,
) -> ApiResult<DocumentResponse> {
    let checked = async {
        let mut validator = Validator::default();
        let title = validator.check(required_line(
            "title",
            upload.fields.get("title").map_or("", String::as_str),
            300,
        ));
        let description = upload
            .fields
            .get("description")
            .map(|d| d.trim().to_owned())
            .unwrap_or_default();
        validator.long_text("description", Some(&description));
        let tags = upload
            .fields
            .get("tags")
            .map(|raw| raw.split(',').map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default();
        let tags = validator.check(parse_tags(&tags));
        let note = version_note(&upload, &mut validator);
        validator.finish()?;
        Ok::<_, ApiError>((title.unwrap_or_default(), description, tags.unwrap_or_default(), note))
    }
    .await;
    let (title, description, tags, note) = match checked {
        Ok(values) => values,
        Err(error) => {
            state.storage.discard(upload.file).await;
            return Err(error);
        }
    };
    with_upload(state, upload, async |txn, upload| {
        // In the transaction: a role lost or a committee archived while the body came in is seen.
        committees::access(&**txn, caller, committee_id)
            .await?
            .require_write()?;
        let now = Utc::now();
        let document = document::ActiveModel {
            committee_id: Set(committee_id),
            search_text: Set(crate::search::index_text(&[&title, &description])),
            title: Set(title),
            description: Set(description),
            status: Set(DocumentStatus::Draft.as_str().to_owned()),
            created_by: Set(caller.id),
            current_version: Set(1),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        }
        .insert(&**txn)
        .await?;
        insert_version(&**txn, document.id, 1, upload, note, caller.id).await?;
        replace_tags(&**txn, document.id, &tags).await?;
        audit_document(
            &**txn,
            caller.id,
            "document.created",
            document.id,
            json!({ "sha256": upload.file.sha256 }),
        )
        .await?;
        and(txn, &document).await?;
        emit(&**txn, caller.id, "document.created", document).await
    })
    .await
}

/// Adds version n+1. With `If-Match`, a stale version is refused (412): two members uploading at
/// once never silently overwrite each other.
#[tracing::instrument(skip_all, fields(caller = caller.id, document_id))]
pub async fn add_version(
    state: &AppState,
    caller: &member::Model,
    document_id: i32,
    if_match: IfMatch,
    upload: Upload,
) -> ApiResult<DocumentResponse> {
    with_upload(state, upload, async |txn, upload| {
        let mut validator = Validator::default();
        let note = version_note(upload, &mut validator);
        validator.finish()?;
        // Read under the row's lock: an upload without If-Match that waited behind another
        // adds the next version after it rather than failing; one with If-Match sees the
        // version it must match.
        crate::db::lock_row::<document::Entity>(&**txn, document_id).await?;
        let (document, access) = access(&**txn, caller, document_id).await?;
        access.require_write()?;
        if_match.check(document.version)?;
        // Conditional on the version read: of two concurrent uploads only one moves it.
        let moved = document::Entity::update_many()
            .col_expr(document::Column::Version, Expr::col(document::Column::Version).add(1))
            .col_expr(
                document::Column::CurrentVersion,
                Expr::col(document::Column::CurrentVersion).add(1),
            )
            .col_expr(document::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(document::Column::Id.eq(document_id))
            .filter(document::Column::Version.eq(document.version))
            .exec(&**txn)
            .await?;
        if moved.rows_affected != 1 {
            return Err(ApiError::PreconditionFailed);
        }
        let number = document.current_version + 1;
        insert_version(&**txn, document_id, number, upload, note, caller.id).await?;
        audit_document(
            &**txn,
            caller.id,
            "document.version_added",
            document_id,
            json!({ "number": number, "sha256": upload.file.sha256 }),
        )
        .await?;
        let updated = document::Entity::find_by_id(document_id)
            .one(&**txn)
            .await?
            .ok_or(ApiError::NotFound)?;
        emit(&**txn, caller.id, "document.version_added", updated).await
    })
    .await
}

/// Documents of a committee: its own and those shared with it.
pub async fn list(
    state: &AppState,
    caller: &member::Model,
    committee_id: i32,
    filter: &DocumentFilter,
    page: Page,
) -> ApiResult<Vec<DocumentResponse>> {
    committees::access(state.db.conn(), caller, committee_id).await?;
    let shared_with = document_share::Entity::find()
        .select_only()
        .column(document_share::Column::DocumentId)
        .filter(document_share::Column::CommitteeId.eq(committee_id))
        .into_query();
    let mut query = document::Entity::find()
        .filter(document::Column::DeletedAt.is_null())
        .filter(
            Condition::any()
                .add(document::Column::CommitteeId.eq(committee_id))
                .add(document::Column::Id.in_subquery(shared_with)),
        )
        .order_by_asc(document::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(document::Column::Id.gt(after));
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        query = query.filter(document::Column::SearchText.like(crate::search::contains(q)));
    }
    if let Some(tag) = &filter.tag {
        let tagged = document_tag::Entity::find()
            .select_only()
            .column(document_tag::Column::DocumentId)
            .filter(document_tag::Column::Tag.eq(tag.trim().to_lowercase()))
            .into_query();
        query = query.filter(document::Column::Id.in_subquery(tagged));
    }
    if let Some(status) = &filter.status {
        let status =
            DocumentStatus::from_db(status).map_err(|_| ApiError::validation("status", "must be draft or final"))?;
        query = query.filter(document::Column::Status.eq(status.as_str()));
    }
    let rows = query.all(state.db.conn()).await?;
    present_page(state.db.conn(), rows).await
}

pub async fn detail(state: &AppState, caller: &member::Model, document_id: i32) -> ApiResult<DocumentDetailResponse> {
    let (document, access) = access(state.db.conn(), caller, document_id).await?;
    let versions = document_version::Entity::find()
        .filter(document_version::Column::DocumentId.eq(document_id))
        .order_by_asc(document_version::Column::Number)
        .all(state.db.conn())
        .await?;
    let mut shares = document_share::Entity::find()
        .filter(document_share::Column::DocumentId.eq(document_id))
        .order_by_asc(document_share::Column::CommitteeId);
    if !access.owner_side {
        // Only the shares that let the caller in: the other sharing committees are not theirs
        // to know of.
        let own = committee_membership::Entity::find()
            .select_only()
            .column(committee_membership::Column::CommitteeId)
            .filter(committee_membership::Column::MemberId.eq(caller.id))
            .into_query();
        shares = shares.filter(document_share::Column::CommitteeId.in_subquery(own));
    }
    let shares = shares.all(state.db.conn()).await?;
    Ok(DocumentDetailResponse {
        document: present(state.db.conn(), document).await?,
        versions: versions.into_iter().map(VersionResponse::from).collect(),
        shares: shares
            .into_iter()
            .map(|s| ShareResponse {
                committee_id: s.committee_id,
                access: s.access,
            })
            .collect(),
    })
}

/// The version to download (the current one by default).
pub async fn content(
    state: &AppState,
    caller: &member::Model,
    document_id: i32,
    number: Option<i32>,
) -> ApiResult<document_version::Model> {
    let (document, _) = access(state.db.conn(), caller, document_id).await?;
    version_of(state.db.conn(), document_id, number.unwrap_or(document.current_version))
        .await?
        .ok_or(ApiError::NotFound)
}

#[tracing::instrument(skip_all, fields(caller = caller.id, document_id))]
pub async fn update(
    state: &AppState,
    caller: &member::Model,
    document_id: i32,
    if_match: IfMatch,
    request: UpdateDocumentRequest,
) -> ApiResult<DocumentResponse> {
    let mut validator = Validator::default();
    let title = request
        .title
        .as_deref()
        .and_then(|title| validator.check(required_line("title", title, 300)));
    validator.long_text("description", request.description.as_deref());
    let tags = request
        .tags
        .as_deref()
        .and_then(|tags| validator.check(parse_tags(tags)));
    validator.finish()?;

    let txn = state.db.begin_write().await?;
    crate::db::lock_row::<document::Entity>(&*txn, document_id).await?;
    let (document, access) = access(&*txn, caller, document_id).await?;
    access.require_write()?;
    if_match.check(document.version)?;
    let version = document.version;
    let mut active = document.into_active_model();
    if let Some(title) = title {
        active.title = Set(title);
    }
    if let Some(description) = request.description {
        active.description = Set(description.trim().to_owned());
    }
    let search_text = crate::search::index_text(&[active.title.as_ref(), active.description.as_ref()]);
    active.search_text = Set(search_text);
    if let Some(status) = request.status {
        active.status = Set(status.as_str().to_owned());
    }
    active.version = Set(version + 1);
    active.updated_at = Set(Utc::now());
    let updated = active.update(&*txn).await?;
    if let Some(tags) = &tags {
        replace_tags(&*txn, document_id, tags).await?;
    }
    audit_document(
        &*txn,
        caller.id,
        "document.updated",
        document_id,
        json!({ "version": updated.version }),
    )
    .await?;
    let (response, recorded) = emit(&*txn, caller.id, "document.updated", updated).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// Soft delete, by the owner committee's chair, the creator or the secretariat.
#[tracing::instrument(skip_all, fields(caller = caller.id, document_id))]
pub async fn delete(state: &AppState, caller: &member::Model, document_id: i32) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    // Locked before it is read: of two deletes at once, the second finds it deleted (404)
    // rather than deleting it again and telling every channel twice.
    crate::db::lock_row::<document::Entity>(&*txn, document_id).await?;
    let (document, access) = access(&*txn, caller, document_id).await?;
    access.require_manage_or_author(&document, caller)?;
    let mut active = document.into_active_model();
    active.deleted_at = Set(Some(Utc::now()));
    let deleted = active.update(&*txn).await?;
    audit_document(&*txn, caller.id, "document.deleted", document_id, json!({})).await?;
    // Recorded in this order, published in it: a channel's offsets go out ascending.
    let (_, mut recorded) = emit(&*txn, caller.id, "document.deleted", deleted.clone()).await?;
    recorded.extend(withdraw_publications(&*txn, &deleted, caller.id).await?);
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(())
}

/// A deleted document leaves the public area: its approved publications are withdrawn, and so
/// are pending ones, which could no longer be approved.
async fn withdraw_publications(
    conn: &impl ConnectionTrait,
    document: &document::Model,
    actor_id: i32,
) -> ApiResult<Recorded> {
    let live = publication::Entity::find()
        .filter(publication::Column::DocumentId.eq(document.id))
        .filter(publication::Column::Status.is_in([
            PublicationStatus::Pending.as_str(),
            PublicationStatus::Approved.as_str(),
        ]))
        .lock_exclusive()
        .all(conn)
        .await?;
    let mut recorded = Recorded::default();
    for row in live {
        let before = PublicationStatus::from_db(&row.status)?;
        let mut active = row.into_active_model();
        active.status = Set(PublicationStatus::Withdrawn.as_str().to_owned());
        let updated = active.update(conn).await?;
        let response = PublicationResponse::from(updated.clone());
        audit::record(
            conn,
            AuditEntry {
                actor_id: Some(actor_id),
                action: "publication.withdrawn",
                target_type: "publication",
                target_id: Some(response.id),
                details: json!({ "document_id": document.id, "because": "document deleted" }),
                ip: None,
            },
        )
        .await?;
        let moved = record_publication_move(conn, document, &updated, before, "publication.withdrawn", actor_id);
        recorded.extend(moved.await?);
    }
    Ok(recorded)
}

/// Shares the document with another committee (or changes the access of a share).
#[tracing::instrument(skip_all, fields(caller = caller.id, document_id, committee_id))]
pub async fn share(
    state: &AppState,
    caller: &member::Model,
    document_id: i32,
    committee_id: i32,
    access_level: ShareAccess,
) -> ApiResult<ShareResponse> {
    let txn = state.db.begin_write().await?;
    // The share is read, then inserted or updated: under the document's lock, so that two of
    // these at once do not both insert (db::lock_row).
    crate::db::lock_row::<document::Entity>(&*txn, document_id).await?;
    let (document, access) = access(&*txn, caller, document_id).await?;
    access.require_manage()?;
    if committee_id == document.committee_id {
        return Err(ApiError::validation(
            "committee_id",
            "the document already belongs to this committee",
        ));
    }
    let target = entity::committee::Entity::find_by_id(committee_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    if target.archived {
        return Err(ApiError::Conflict(
            "the committee is archived and takes no new work".to_owned(),
        ));
    }
    match document_share::Entity::find_by_id((document_id, committee_id))
        .one(&*txn)
        .await?
    {
        Some(existing) => {
            let mut active = existing.into_active_model();
            active.access = Set(access_level.as_str().to_owned());
            active.update(&*txn).await?;
        }
        None => {
            document_share::ActiveModel {
                document_id: Set(document_id),
                committee_id: Set(committee_id),
                access: Set(access_level.as_str().to_owned()),
                created_at: Set(Utc::now()),
            }
            .insert(&*txn)
            .await?;
        }
    }
    audit_document(
        &*txn,
        caller.id,
        "document.shared",
        document_id,
        json!({ "committee_id": committee_id, "access": access_level.as_str() }),
    )
    .await?;
    let (_, recorded) = emit(&*txn, caller.id, "document.shared", document).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(ShareResponse {
        committee_id,
        access: access_level.as_str().to_owned(),
    })
}

/// Stops sharing: the committee loses the document at once, and hears so one last time.
#[tracing::instrument(skip_all, fields(caller = caller.id, document_id, committee_id))]
pub async fn unshare(state: &AppState, caller: &member::Model, document_id: i32, committee_id: i32) -> ApiResult<()> {
    let txn = state.db.begin_write().await?;
    let (document, access) = access(&*txn, caller, document_id).await?;
    access.require_manage()?;
    let removed = document_share::Entity::delete_by_id((document_id, committee_id))
        .exec(&*txn)
        .await?;
    if removed.rows_affected == 0 {
        return Err(ApiError::NotFound);
    }
    audit_document(
        &*txn,
        caller.id,
        "document.unshared",
        document_id,
        json!({ "committee_id": committee_id }),
    )
    .await?;
    // The owner and the committee concerned: the other committees it is shared with have no
    // business knowing with whom else it was.
    let channels = [
        Channel::Committee(document.committee_id),
        Channel::Committee(committee_id),
    ];
    let data = json!({ "id": document_id, "committee_id": committee_id });
    let recorded = events::record(&*txn, &channels, "document.unshared", Some(caller.id), data).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(())
}

/// A chair (or the secretariat) asks to publish the current version in the public area.
#[tracing::instrument(skip_all, fields(caller = caller.id, document_id))]
pub async fn request_publication(
    state: &AppState,
    caller: &member::Model,
    document_id: i32,
    request: PublishRequest,
) -> ApiResult<PublicationResponse> {
    let summary = match request.summary {
        SummaryInput::Text(en) => Summary {
            en: en.trim().to_owned(),
            es: String::new(),
        },
        SummaryInput::Languages { en, es } => Summary {
            en: en.unwrap_or_default().trim().to_owned(),
            es: es.unwrap_or_default().trim().to_owned(),
        },
    };
    let mut validator = Validator::default();
    if summary.en.is_empty() && summary.es.is_empty() {
        validator.add("summary", "must not be empty");
    }
    if summary.en.chars().count() > 5_000 || summary.es.chars().count() > 5_000 {
        validator.add("summary", "must be at most 5000 characters per language");
    }
    let countries: BTreeSet<String> = request
        .country_codes
        .unwrap_or_default()
        .iter()
        .map(|code| code.trim().to_uppercase())
        .collect();
    if countries.iter().any(|code| !crate::reference::is_member_country(code)) {
        validator.add("country_codes", "must be codes of the Network's member countries");
    }
    validator.finish()?;

    let txn = state.db.begin_write().await?;
    // Locked before the pending request is looked for: two requests at once make one.
    crate::db::lock_row::<document::Entity>(&*txn, document_id).await?;
    let (document, access) = access(&*txn, caller, document_id).await?;
    access.require_manage()?;
    let pending = publication::Entity::find()
        .filter(publication::Column::DocumentId.eq(document_id))
        .filter(publication::Column::Status.eq(PublicationStatus::Pending.as_str()))
        .one(&*txn)
        .await?;
    if let Some(pending) = pending {
        return Err(ApiError::Conflict(format!(
            "publication request {} of this document is waiting for review",
            pending.id
        )));
    }
    let row = publication::ActiveModel {
        document_id: Set(document_id),
        version_number: Set(document.current_version),
        kind: Set(request.kind.as_str().to_owned()),
        title: Set(document.title.clone()),
        search_text: Set(crate::search::index_text(&[&document.title, &summary.en, &summary.es])),
        summary_en: Set(summary.en),
        summary_es: Set(summary.es),
        country_codes: Set(json!(countries)),
        status: Set(PublicationStatus::Pending.as_str().to_owned()),
        requested_by: Set(caller.id),
        requested_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&*txn)
    .await?;
    let response = PublicationResponse::from(row);
    audit_document(
        &*txn,
        caller.id,
        "publication.requested",
        document_id,
        json!({ "publication_id": response.id }),
    )
    .await?;
    let recorded = events::record(
        &*txn,
        &[Channel::Committee(document.committee_id)],
        "publication.requested",
        Some(caller.id),
        json!(response),
    )
    .await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

pub async fn list_publications(
    state: &AppState,
    filter: &PublicationFilter,
    page: Page,
) -> ApiResult<Vec<publication::Model>> {
    let mut query = publication::Entity::find()
        .order_by_asc(publication::Column::Id)
        .limit(page.limit + 1);
    if let Some(after) = page.after {
        query = query.filter(publication::Column::Id.gt(after));
    }
    if let Some(status) = &filter.status {
        let status = PublicationStatus::from_db(status)
            .map_err(|_| ApiError::validation("status", "must be pending, approved, rejected or withdrawn"))?;
        query = query.filter(publication::Column::Status.eq(status.as_str()));
    }
    Ok(query.all(state.db.conn()).await?)
}

pub async fn publication(conn: &impl ConnectionTrait, id: i32) -> ApiResult<publication::Model> {
    publication::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound)
}

/// A review decision of the secretariat: moves a publication from one of `from` to `to`.
pub enum Review {
    Approve { version_number: Option<i32> },
    Reject { reason: String },
    Withdraw,
}

#[tracing::instrument(skip_all, fields(actor_id, publication_id))]
pub async fn review(
    state: &AppState,
    actor_id: i32,
    publication_id: i32,
    decision: Review,
) -> ApiResult<PublicationResponse> {
    if let Review::Reject { reason } = &decision {
        required_text("reason", reason, 5_000).map_err(|error| ApiError::Validation(vec![error]))?;
    }
    let txn = state.db.begin_write().await?;
    // Locked: of an approval and a rejection at once, the second must see the first's status.
    let row = publication::Entity::find_by_id(publication_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let status = PublicationStatus::from_db(&row.status)?;
    let document = document::Entity::find_by_id(row.document_id)
        .one(&*txn)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = Utc::now();
    let mut active = row.clone().into_active_model();
    active.reviewed_by = Set(Some(actor_id));
    active.reviewed_at = Set(Some(now));
    let (kind, new_status) = match (&decision, status) {
        (Review::Approve { version_number }, PublicationStatus::Pending) => {
            let number = version_number.unwrap_or(row.version_number);
            version_of(&*txn, row.document_id, number)
                .await?
                .ok_or_else(|| ApiError::validation("version_number", "no such version of the document"))?;
            if document.deleted_at.is_some() {
                return Err(ApiError::Conflict("the document has been deleted".to_owned()));
            }
            active.version_number = Set(number);
            active.published_at = Set(Some(now));
            ("document.published", PublicationStatus::Approved)
        }
        (Review::Reject { reason }, PublicationStatus::Pending) => {
            active.reason = Set(Some(reason.trim().to_owned()));
            ("publication.rejected", PublicationStatus::Rejected)
        }
        (Review::Withdraw, PublicationStatus::Approved | PublicationStatus::Pending) => {
            ("publication.withdrawn", PublicationStatus::Withdrawn)
        }
        (_, current) => {
            return Err(ApiError::Conflict(format!("the publication is {}", current.as_str())));
        }
    };
    active.status = Set(new_status.as_str().to_owned());
    let updated = active.update(&*txn).await?;
    let response = PublicationResponse::from(updated.clone());
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(actor_id),
            action: kind,
            target_type: "publication",
            target_id: Some(publication_id),
            details: json!({ "document_id": response.document_id, "status": response.status }),
            ip: None,
        },
    )
    .await?;
    let recorded = record_publication_move(&*txn, &document, &updated, status, kind, actor_id).await?;
    txn.commit().await?;
    realtime::publish(state, recorded);
    Ok(response)
}

/// Records a publication's move from `before` to its present status. A request and its fate
/// before publication are the owner committee's business; a publication, and a withdrawal from
/// the public area, change what the public sees of the document, which every committee it is
/// shared with hears too, and `public` (see [`public_change`]).
async fn record_publication_move(
    conn: &impl ConnectionTrait,
    document: &document::Model,
    publication: &publication::Model,
    before: PublicationStatus,
    kind: &str,
    actor_id: i32,
) -> ApiResult<Recorded> {
    let public_before_or_now =
        before == PublicationStatus::Approved || publication.status == PublicationStatus::Approved.as_str();
    let channels = if public_before_or_now {
        channels_of(conn, document).await?
    } else {
        vec![Channel::Committee(document.committee_id)]
    };
    let data = json!(PublicationResponse::from(publication.clone()));
    let mut recorded = events::record(conn, &channels, kind, Some(actor_id), data).await?;
    if let Some(public) = public_change(conn, publication, before).await? {
        recorded.extend(events::record(conn, &[Channel::Public], kind, None, public).await?);
    }
    Ok(recorded)
}

/// What the `public` channel hears of a publication that moved from `before`: the publication
/// as the public sees it once approved, `{id, public: false}` once it has left the public area,
/// nothing while it was never public (the requester's and reviewer's ids stay inside).
async fn public_change(
    conn: &impl ConnectionTrait,
    publication: &publication::Model,
    before: PublicationStatus,
) -> ApiResult<Option<serde_json::Value>> {
    if publication.status == PublicationStatus::Approved.as_str() {
        let version = version_of(conn, publication.document_id, publication.version_number).await?;
        return Ok(Some(json!(crate::public::data::public_publication(
            publication.clone(),
            version
        ))));
    }
    Ok((before == PublicationStatus::Approved).then(|| json!({ "id": publication.id, "public": false })))
}

/// Whether any committed version holds this content (for the storage sweep).
pub async fn is_stored_content(conn: &impl ConnectionTrait, sha256: &str) -> ApiResult<bool> {
    Ok(document_version::Entity::find()
        .filter(document_version::Column::Sha256.eq(sha256))
        .one(conn)
        .await?
        .is_some())
}
