//! Request and response bodies of the document and publication endpoints.

use chrono::{DateTime, Utc};
use entity::{document, document_version, publication};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::string_enum;

string_enum!(
    /// A document's review state inside its committee.
    DocumentStatus { Draft => "draft", Final => "final" }
);

string_enum!(
    /// What a committee the document is shared with may do.
    ShareAccess { Read => "read", Write => "write" }
);

string_enum!(
    /// The kinds of publication of the public area.
    PublicationKind { Study => "study", Project => "project", PublicPolicy => "public_policy", Report => "report" }
);

string_enum!(
    /// A publication request's review state.
    PublicationStatus { Pending => "pending", Approved => "approved", Rejected => "rejected", Withdrawn => "withdrawn" }
);

/// The form that uploads a document, as the OpenAPI document describes it (it is read part by
/// part, in `upload::receive`).
#[derive(ToSchema)]
pub struct NewDocumentForm {
    /// The file; its type is told from its first bytes and its name.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    /// Comma-separated: at most 20 tags of at most 64 characters.
    pub tags: Option<String>,
    /// What this version is, for the version list.
    pub note: Option<String>,
}

/// The form that adds a version to a document.
#[derive(ToSchema)]
pub struct NewVersionForm {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VersionResponse {
    pub number: i32,
    pub sha256: String,
    pub size_bytes: i64,
    pub content_type: String,
    pub file_name: String,
    pub note: String,
    pub uploaded_by: i32,
    pub created_at: DateTime<Utc>,
}

impl From<document_version::Model> for VersionResponse {
    fn from(row: document_version::Model) -> Self {
        Self {
            number: row.number,
            sha256: row.sha256,
            size_bytes: row.size_bytes,
            content_type: row.content_type,
            file_name: row.file_name,
            note: row.note,
            uploaded_by: row.uploaded_by,
            created_at: row.created_at,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ShareResponse {
    pub committee_id: i32,
    pub access: String,
}

/// A document as lists and events show it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DocumentResponse {
    pub id: i32,
    pub committee_id: i32,
    pub title: String,
    pub description: String,
    pub status: String,
    pub tags: Vec<String>,
    pub created_by: i32,
    pub current_version: i32,
    /// Changes with every edit and every new file version; send it back in `If-Match`.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub file: Option<VersionResponse>,
}

impl DocumentResponse {
    pub fn new(document: document::Model, tags: Vec<String>, file: Option<VersionResponse>) -> Self {
        Self {
            id: document.id,
            committee_id: document.committee_id,
            title: document.title,
            description: document.description,
            status: document.status,
            tags,
            created_by: document.created_by,
            current_version: document.current_version,
            version: document.version,
            created_at: document.created_at,
            updated_at: document.updated_at,
            file,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DocumentDetailResponse {
    #[serde(flatten)]
    pub document: DocumentResponse,
    pub versions: Vec<VersionResponse>,
    pub shares: Vec<ShareResponse>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDocumentRequest {
    #[schema(min_length = 1, max_length = 300)]
    pub title: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    pub status: Option<DocumentStatus>,
    pub tags: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    pub access: ShareAccess,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DocumentFilter {
    /// Text in the title or description; accents, case and runs of spaces do not matter.
    pub q: Option<String>,
    pub tag: Option<String>,
    #[param(value_type = Option<DocumentStatus>, inline)]
    pub status: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// A version number; the current version when absent.
    pub version: Option<i32>,
}

/// A summary in one language (English) or several.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SummaryInput {
    Text(String),
    Languages { en: Option<String>, es: Option<String> },
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Summary {
    pub en: String,
    pub es: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    pub kind: PublicationKind,
    pub summary: SummaryInput,
    pub country_codes: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The version to publish; the requested one when absent.
    pub version_number: Option<i32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[schema(min_length = 1, max_length = 5000)]
    pub reason: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicationFilter {
    #[param(value_type = Option<PublicationStatus>, inline)]
    pub status: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PublicationResponse {
    pub id: i32,
    pub document_id: i32,
    pub version_number: i32,
    pub kind: String,
    pub title: String,
    pub summary: Summary,
    pub country_codes: Vec<String>,
    pub status: String,
    pub requested_by: i32,
    pub requested_at: DateTime<Utc>,
    pub reviewed_by: Option<i32>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
}

impl From<publication::Model> for PublicationResponse {
    fn from(row: publication::Model) -> Self {
        Self {
            id: row.id,
            document_id: row.document_id,
            version_number: row.version_number,
            kind: row.kind,
            title: row.title,
            summary: Summary {
                en: row.summary_en,
                es: row.summary_es,
            },
            country_codes: serde_json::from_value(row.country_codes).unwrap_or_default(),
            status: row.status,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            reviewed_by: row.reviewed_by,
            reviewed_at: row.reviewed_at,
            reason: row.reason,
            published_at: row.published_at,
        }
    }
}
