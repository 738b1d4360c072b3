//! The one error type of the API, rendered as `application/problem+json` (RFC 9457).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// One field that failed validation.
#[derive(Clone, Debug, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or query could not be read (malformed JSON, bad encoding).
    #[error("{0}")]
    BadRequest(String),
    /// An extractor's own rejection, already rendered as a problem by its error handler.
    #[error("the request was rejected ({})", .0.status)]
    Rejected(Box<Rejection>),
    /// 400: the request was well-formed but some fields are wrong.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 400: a one-time token is unknown, used or expired.
    #[error("the token is invalid or has expired")]
    InvalidToken,
    /// 401: wrong email or password.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 401: no valid access token.
    #[error("authentication required")]
    Unauthorized,
    /// 403: authenticated but not allowed.
    #[error("forbidden")]
    Forbidden,
    /// 404: absent, or private and not the caller's to know about.
    #[error("not found")]
    NotFound,
    /// 405
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 400: a value the database cannot store in its column (too long, a date out of its
    /// range) that no validation caught first: the client's fault, not the server's.
    #[error("a value is too long or out of range for its field")]
    ValueOutOfRange,
    /// 409: unique constraint, e.g. a taken email.
    #[error("{0}")]
    Conflict(String),
    /// 409: the committee is archived, and nothing is written in it until it is reopened.
    #[error("the committee is archived; the secretariat can reopen it")]
    CommitteeArchived,
    /// 412: `If-Match` names an old version.
    #[error("the resource has changed since you read it")]
    PreconditionFailed,
    /// 416: a download's `Range` lies outside the file.
    #[error("the requested range is outside the file")]
    RangeNotSatisfiable,
    /// 408: the request body stopped arriving (`server.body_idle_timeout_secs`).
    #[error("the request body stopped arriving before it was complete")]
    RequestTimeout,
    /// 413
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 415: a body of another type than the endpoint reads, or text in another charset than
    /// UTF-8; says what to send.
    #[error("unsupported content type; send {0}")]
    UnsupportedMediaType(&'static str),
    /// 415: a body in a content coding the server cannot undo.
    #[error("unsupported content encoding; send the body as it is, or as gzip, deflate, br or zstd")]
    UnsupportedContentEncoding,
    /// 415: an uploaded file whose bytes are not of an allowed type.
    #[error("this kind of file is not accepted (PDF, office and OpenDocument files, CSV, text, Markdown, images, ZIP)")]
    UnsupportedFileType,
    /// 422: a well-formed request the domain rules refuse, with its own stable code and
    /// optional extra members (e.g. `overrun_minutes`).
    #[error("{detail}")]
    Unprocessable {
        code: &'static str,
        detail: String,
        extra: Option<serde_json::Map<String, serde_json::Value>>,
    },
    /// 429, with the seconds to wait.
    #[error("too many attempts; try again later")]
    RateLimited { retry_after_secs: u64 },
    /// 503, with the seconds to wait: more writes are queued than the database can take soon.
    #[error("the server is busy; try again shortly")]
    Overloaded { retry_after_secs: u64 },
    /// 503, with the seconds to wait: a committed file not yet moved into place (the storage
    /// sweep places it).
    #[error("the file is stored but not yet in place; try again later")]
    ContentUnavailable { retry_after_secs: u64 },
    /// 500: the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The stable code, status and title of each error: the one table clients can rely on.
fn describe(error: &ApiError) -> (&'static str, StatusCode, &'static str) {
    use ApiError::*;
    match error {
        BadRequest(_) => ("bad_request", StatusCode::BAD_REQUEST, "Bad request"),
        Validation(_) => ("validation_failed", StatusCode::BAD_REQUEST, "Validation failed"),
        ValueOutOfRange => ("value_out_of_range", StatusCode::BAD_REQUEST, "Value out of range"),
        Rejected(rejection) => ("rejected", rejection.status, "Rejected"),
        InvalidToken => ("invalid_token", StatusCode::BAD_REQUEST, "Invalid or expired token"),
        InvalidCredentials => ("invalid_credentials", StatusCode::UNAUTHORIZED, "Invalid credentials"),
        Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED, "Authentication required"),
        Forbidden => ("forbidden", StatusCode::FORBIDDEN, "Forbidden"),
        NotFound => ("not_found", StatusCode::NOT_FOUND, "Not found"),
        MethodNotAllowed => (
            "method_not_allowed",
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
        ),
        Conflict(_) => ("conflict", StatusCode::CONFLICT, "Conflict"),
        CommitteeArchived => ("committee_archived", StatusCode::CONFLICT, "Committee archived"),
        PreconditionFailed => (
            "precondition_failed",
            StatusCode::PRECONDITION_FAILED,
            "Precondition failed",
        ),
        RequestTimeout => ("request_timeout", StatusCode::REQUEST_TIMEOUT, "Request timeout"),
        PayloadTooLarge => ("payload_too_large", StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
        RangeNotSatisfiable => (
            "range_not_satisfiable",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "Range not satisfiable",
        ),
        UnsupportedFileType => (
            "unsupported_file_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported file type",
        ),
        UnsupportedMediaType(_) | UnsupportedContentEncoding => (
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
        ),
        Unprocessable { code, .. } => (code, StatusCode::UNPROCESSABLE_ENTITY, "Unprocessable request"),
        RateLimited { .. } => ("rate_limited", StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        Overloaded { .. } => ("overloaded", StatusCode::SERVICE_UNAVAILABLE, "Service unavailable"),
        ContentUnavailable { .. } => (
            "content_unavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "Content unavailable",
        ),
        Internal(_) => (
            "internal_error",
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error",
        ),
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    pub fn validation(field: &str, message: &str) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code,
            detail: detail.into(),
            extra: None,
        }
    }

    pub fn code(&self) -> &'static str {
        describe(self).0
    }

    fn problem(&self) -> Problem {
        let (code, status, title) = describe(self);
        let detail = match self {
            // Never send the cause of an internal error: it may hold SQL, paths or secrets.
            ApiError::Internal(_) => "An unexpected error occurred; it has been logged.".to_owned(),
            other => other.to_string(),
        };
        Problem {
            type_: format!("https://dcports.sela.org/problems/{code}"),
            title,
            status: status.as_u16(),
            detail,
            code,
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
            extra: match self {
                ApiError::Unprocessable { extra, .. } => extra.clone(),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        describe(self).1
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Rejected(rejection) = self {
            return rejection.response();
        }
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Overloaded { retry_after_secs }
        | ApiError::ContentUnavailable { retry_after_secs } = self
        {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.max(&1).to_string()));
        }
        response.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(error: sea_orm::DbErr) -> Self {
        if is_out_of_range(&error) {
            return ApiError::ValueOutOfRange;
        }
        // What a write refers to was checked, then removed by another write before this one
        // committed (an organization deleted while a member was saved with it): trying again
        // gets the refusal the check gives. Logged, as a missing check would show the same.
        if let Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(detail)) = error.sql_err() {
            tracing::warn!(detail = %detail, "a write refers to a row that is gone");
            return ApiError::Conflict("something it refers to was removed meanwhile; reload and try again".to_owned());
        }
        ApiError::Internal(anyhow::Error::new(error).context("database error"))
    }
}

/// Whether PostgreSQL refused a value as too long for its column or out of its type's range, or
/// a character it cannot store (SQLSTATE class 22: 22001, 22003, 22008; 22021 and 22P05, which
/// `input::refuse_nul` keeps from happening). SQLite stores such values as they come.
fn is_out_of_range(error: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let (DbErr::Query(RuntimeErr::SqlxError(sqlx_error)) | DbErr::Exec(RuntimeErr::SqlxError(sqlx_error))) = error
    else {
        return false;
    };
    let sqlx::Error::Database(database_error) = &**sqlx_error else {
        return false;
    };
    matches!(
        database_error.code().as_deref(),
        Some("22001" | "22003" | "22008" | "22021" | "22P05")
    )
}

impl<E: std::fmt::Debug + std::fmt::Display> From<sea_orm::TransactionError<E>> for ApiError
where
    ApiError: From<E>,
{
    fn from(error: sea_orm::TransactionError<E>) -> Self {
        match error {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(inner) => inner.into(),
        }
    }
}

/// Turns a unique-constraint violation into a 409 with a message; other errors pass through.
pub trait ConflictExt<T> {
    fn on_conflict(self, message: &str) -> Result<T, ApiError>;
}

impl<T> ConflictExt<T> for Result<T, sea_orm::DbErr> {
    fn on_conflict(self, message: &str) -> Result<T, ApiError> {
        self.map_err(|error| match error.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => ApiError::Conflict(message.to_owned()),
            _ => error.into(),
        })
    }
}

/// An extractor's rejection as the response it renders to. `actix_web::Error` is not `Send`;
/// this is, so that an `ApiError` can come back from another thread (the group-commit lanes).
#[derive(Debug)]
pub struct Rejection {
    status: StatusCode,
    headers: header::HeaderMap,
    body: actix_web::web::Bytes,
}

impl Rejection {
    fn response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status).body(self.body.clone());
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }
}

impl From<actix_web::Error> for ApiError {
    fn from(error: actix_web::Error) -> Self {
        use actix_web::body::MessageBody as _;
        // A body a framework extractor (`web::Bytes`) could not read is answered as the
        // API's own extractors answer it: 408 when it stopped arriving (not 400), and the
        // reason in words (not a bare "bad request").
        if let Some(error) = error.as_error::<actix_web::error::PayloadError>() {
            return crate::input::body_read_error(error);
        }
        let response = error.error_response();
        let (status, headers) = (response.status(), response.headers().clone());
        // Error bodies are bytes in memory; a streaming one would have nothing worth keeping.
        let body = response.into_body().try_into_bytes().unwrap_or_default();
        ApiError::Rejected(Box::new(Rejection { status, headers, body }))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// An extractor whose rejection waits for the handler, written `let body = body?;` after the
/// authentication extractors: actix polls extractors together, and a caller without the right
/// to an endpoint must hear 401/403, not learn what the endpoint would accept.
pub type Deferred<T> = Result<T, actix_web::Error>;

#[cfg(test)]
mod tests {
    use actix_web::body::MessageBody as _;

    use super::*;

    #[test]
    fn an_overloaded_server_says_so_and_when_to_retry() {
        let response = ApiError::Overloaded { retry_after_secs: 1 }.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        let body = response.into_body().try_into_bytes().unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "overloaded");
        assert_eq!(problem["status"], 503);
    }
}
