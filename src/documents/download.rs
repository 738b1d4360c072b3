//! Downloads of stored content: the whole file or one byte range of it, validated by its hash.
//!
//! A version never changes, so its SHA-256 is the strongest validator there is, and it is the
//! `ETag` clients see. The conditional headers are answered here, against it. (actix-files'
//! `NamedFile` compares `If-Match` and `If-Range` with a tag of its own, made of the file's inode,
//! time and size, which no client ever sees: a resumed download, `Range` with `If-Range`, always
//! started over, and a matching `If-Match` was refused.)

use std::io::{ErrorKind, SeekFrom};

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    self, ContentDisposition, DispositionParam, DispositionType, EntityTag, ExtendedValue, HeaderValue,
};
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, ResponseError as _};
use http_range::{HttpRange, HttpRangeParseError};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

use crate::error::{ApiError, ApiResult};
use crate::preconditions::{client_copy_is_current, if_match_list};
use crate::state::AppState;
use crate::storage::BlobStore;

/// What a download of content not yet in place tells the client to wait: the storage sweep
/// places such a file once it is past its grace in staging.
const CONTENT_RETRY_AFTER_SECS: u64 = 300;

/// Serves a stored blob as a download named `file_name`: `If-Match` (412), `If-None-Match`
/// (304), and `Range` (206, or 416 past the end) unless an `If-Range` names other content.
pub async fn serve_file(
    state: &AppState,
    request: &HttpRequest,
    sha256: &str,
    content_type: &str,
    file_name: &str,
) -> ApiResult<HttpResponse> {
    let tag = EntityTag::new_strong(sha256.to_owned());
    // RFC 9110 §13.2.2: If-Match first, then If-None-Match, then Range with If-Range. The tag
    // is the hash: a revalidation is answered without opening the file.
    if !if_match(request, &tag)? {
        return Err(ApiError::PreconditionFailed);
    }
    if client_copy_is_current(request.get_header().as_ref(), &tag) {
        return Ok(HttpResponse::NotModified().insert_header(header::ETag(tag)).finish());
    }
    let (file, size) = open(state, sha256).await?;
    let mut response = HttpResponse::Ok();
    response
        .insert_header(header::ETag(tag.clone()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header(attachment(file_name))
        .content_type(declared_type(content_type));
    let (offset, length) = match requested_range(request, &tag, size) {
        Requested::Whole => (0, size),
        Requested::Part(range) => {
            let last = range.start + range.length - 1;
            response
                .status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_RANGE, format!("bytes {}-{last}/{size}", range.start)));
            (range.start, range.length)
        }
        Requested::Unsatisfiable => {
            let mut refused = ApiError::RangeNotSatisfiable.error_response();
            let whole = HeaderValue::from_str(&format!("bytes */{size}")).map_err(anyhow::Error::from)?;
            refused.headers_mut().insert(header::CONTENT_RANGE, whole);
            return Ok(refused);
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|error| anyhow::Error::new(error).context("stored content cannot be read"))?;
    }
    let chunks = ReaderStream::with_capacity(file.take(length), CHUNK_BYTES);
    Ok(response.body(SizedStream::new(length, chunks)))
}

/// How much of a file one read takes. Each read of a `tokio::fs::File` is a trip to the blocking
/// pool, so reads are large (as actix-files' are): a 100 MB file in 1,600 trips, not 25,000.
const CHUNK_BYTES: usize = 64 * 1024;

/// The type a download is sent as. Text is sent as UTF-8, as uploads are sniffed to be
/// (`documents::upload`), and says so: a reader left to guess takes Windows-1252 and garbles
/// every accent, and `text/markdown` must name its charset (RFC 7763).
fn declared_type(content_type: &str) -> mime::Mime {
    let mime: mime::Mime = content_type.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM);
    if mime.type_() != mime::TEXT || mime.get_param(mime::CHARSET).is_some() {
        return mime;
    }
    format!("{mime}; charset=utf-8").parse().unwrap_or(mime)
}

/// The stored file and its size.
async fn open(state: &AppState, sha256: &str) -> ApiResult<(std::fs::File, u64)> {
    let path = state.storage.blob_path(sha256);
    let opened = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(path)?;
        let size = file.metadata()?.len();
        Ok::<_, std::io::Error>((file, size))
    })
    .await
    .map_err(anyhow::Error::from)?;
    match opened {
        Ok(opened) => Ok(opened),
        // Committed, but its move into place failed: it waits in staging for the storage sweep.
        // (Not a directory: what was in the way of its folder is what made the move fail.)
        Err(error) if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            // An error, not a warning: a file truly lost answers the same, and must be seen.
            tracing::error!(
                sha256,
                "a download asked for content that is not in place (waiting in staging, or lost)"
            );
            Err(ApiError::ContentUnavailable {
                retry_after_secs: CONTENT_RETRY_AFTER_SECS,
            })
        }
        Err(error) => Err(anyhow::Error::new(error)
            .context("stored content cannot be read")
            .into()),
    }
}

/// `Content-Disposition: attachment` with the name in UTF-8 (`filename*`) and, for clients that
/// read only `filename`, in ASCII with anything else replaced.
fn attachment(file_name: &str) -> ContentDisposition {
    let ascii_name: String = file_name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![
            DispositionParam::Filename(ascii_name),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: header::Charset::Ext("UTF-8".to_owned()),
                language_tag: None,
                value: file_name.as_bytes().to_vec(),
            }),
        ],
    }
}

/// No `If-Match`, `*`, or a list that names this content (strong comparison). One that cannot be
/// read is a 400, as on every write: the client meant a condition it did not state. (actix's
/// own `IfMatch` drops the tags it cannot read, which made it a 412.)
fn if_match(request: &HttpRequest, tag: &EntityTag) -> ApiResult<bool> {
    let malformed =
        || ApiError::BadRequest("If-Match must be `*` or quoted entity tags, like a download's ETag".to_owned());
    let Some(named) = if_match_list(request, malformed)? else {
        return Ok(true);
    };
    let mut matched = false;
    for named in named {
        matched |= named.parse::<EntityTag>().map_err(|_| malformed())?.strong_eq(tag);
    }
    Ok(matched)
}

enum Requested {
    Whole,
    Part(HttpRange),
    Unsatisfiable,
}

/// What of the file a GET asks for. A `Range` is read only in bytes (other units are ignored,
/// RFC 9110 §14.2) and only when an `If-Range` names this content; a date there never matches,
/// since no `Last-Modified` is sent. Of several ranges, the first is served.
fn requested_range(request: &HttpRequest, tag: &EntityTag, size: u64) -> Requested {
    let Some(range) = request
        .headers()
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
    else {
        return Requested::Whole;
    };
    let in_bytes = range
        .split_once('=')
        .is_some_and(|(unit, _)| unit.trim().eq_ignore_ascii_case("bytes"));
    if !in_bytes || !if_range_matches(request, tag) {
        return Requested::Whole;
    }
    // RFC 9110 §14.2: a range past the end is unsatisfiable (416); one that cannot be read
    // (`bytes=5-4`) is ignored, and the whole file sent.
    match HttpRange::parse(range, size) {
        Ok(ranges) => ranges.first().copied().map_or(Requested::Whole, Requested::Part),
        Err(HttpRangeParseError::NoOverlap) => Requested::Unsatisfiable,
        Err(HttpRangeParseError::InvalidRange) => Requested::Whole,
    }
}

fn if_range_matches(request: &HttpRequest, tag: &EntityTag) -> bool {
    if !request.headers().contains_key(header::IF_RANGE) {
        return true;
    }
    matches!(request.get_header::<header::IfRange>(), Some(header::IfRange::EntityTag(named)) if named.strong_eq(tag))
}
