//! Receiving a multipart upload: the file streamed to staging, its type sniffed from its bytes,
//! its name made harmless, and the text fields beside it.

use std::collections::HashMap;

use actix_multipart::{Multipart, MultipartError};
use actix_web::HttpRequest;
use futures_util::StreamExt;

use crate::error::{ApiError, ApiResult};
use crate::storage::{BlobStore, LocalStorage, StagedFile};

/// Largest text field (title, description, note, tags) in a multipart form.
const MAX_TEXT_FIELD: usize = 64 * 1024;

/// Most fields a form may have: a file and its few text fields (title, description, note, tags).
const MAX_FIELDS: usize = 16;

/// Most bytes of all a form's text fields together: without it, a form of many fields (or one
/// field sent again and again) could make the server read, and keep, without end.
const MAX_TEXT_FIELDS_TOTAL: usize = 4 * MAX_TEXT_FIELD;

/// Most bytes a form holds beside its file: its text fields, and each part's boundary and
/// headers.
const MAX_FORM_OVERHEAD: u64 = (MAX_TEXT_FIELDS_TOTAL + MAX_FIELDS * 1024) as u64;

/// Refuses at once, unread, a body that declares more bytes than any form within the limits
/// holds (413), instead of reading up to the limit before refusing it.
pub fn refuse_declared_too_large(request: &HttpRequest, max_bytes: u64) -> ApiResult<()> {
    match crate::input::declared_length(request) {
        Some(length) if length > max_bytes.saturating_add(MAX_FORM_OVERHEAD) => Err(ApiError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// A received upload, staged but not yet committed.
pub struct Upload {
    pub file: StagedFile,
    pub file_name: String,
    pub content_type: String,
    pub fields: HashMap<String, String>,
}

/// Reads the form. On any error the staged file is removed and, when we stopped reading early,
/// the rest of the body is drained, so the client gets a clean answer and nothing is left behind.
pub async fn receive(storage: &LocalStorage, mut form: Multipart, max_bytes: u64) -> ApiResult<Upload> {
    let mut fields = HashMap::new();
    let mut file: Option<(StagedFile, String)> = None;
    if let Err(stop) = read_fields(storage, &mut form, max_bytes, &mut fields, &mut file).await {
        if let Some((staged, _)) = file.take() {
            storage.discard(staged).await;
        }
        if stop.body_unread {
            drain(&mut form, max_bytes.saturating_mul(4)).await;
        }
        return Err(stop.error);
    }
    let Some((staged, raw_name)) = file else {
        return Err(ApiError::validation("file", "is required"));
    };
    if staged.size == 0 {
        storage.discard(staged).await;
        return Err(ApiError::validation("file", "must not be empty"));
    }
    let file_name = sanitize_file_name(&raw_name);
    match sniff(&staged.head, &file_name) {
        Some(content_type) => Ok(Upload {
            file: staged,
            file_name,
            content_type: content_type.to_owned(),
            fields,
        }),
        None => {
            storage.discard(staged).await;
            Err(ApiError::UnsupportedFileType)
        }
    }
}

/// Why reading stopped, and whether the body may still hold unread bytes (a multipart stream
/// must not be polled again once it has failed or finished).
struct Stop {
    error: ApiError,
    body_unread: bool,
}

impl Stop {
    fn early(error: ApiError) -> Self {
        Stop {
            error,
            body_unread: true,
        }
    }

    fn broken(error: MultipartError) -> Self {
        let error = match &error {
            MultipartError::Payload(payload) => crate::input::body_read_error(payload),
            MultipartError::ContentTypeMissing | MultipartError::ContentTypeIncompatible => {
                ApiError::UnsupportedMediaType("multipart/form-data")
            }
            other => ApiError::BadRequest(format!("malformed multipart body: {other}")),
        };
        Stop {
            error,
            body_unread: false,
        }
    }
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Self {
        Stop::early(error)
    }
}

impl From<anyhow::Error> for Stop {
    fn from(error: anyhow::Error) -> Self {
        Stop::early(ApiError::Internal(error))
    }
}

async fn read_fields(
    storage: &LocalStorage,
    form: &mut Multipart,
    max_bytes: u64,
    fields: &mut HashMap<String, String>,
    file: &mut Option<(StagedFile, String)>,
) -> Result<(), Stop> {
    let (mut text_bytes, mut count) = (0, 0);
    while let Some(field) = form.next().await {
        let mut field = field.map_err(Stop::broken)?;
        count += 1;
        if count > MAX_FIELDS {
            return Err(Stop::early(ApiError::BadRequest(format!(
                "a form has at most {MAX_FIELDS} fields"
            ))));
        }
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            if file.is_some() {
                return Err(Stop::early(ApiError::validation("file", "send one file")));
            }
            let raw_name = field
                .content_disposition()
                .and_then(|disposition| disposition.get_filename())
                .unwrap_or("document")
                .to_owned();
            let mut staged = storage.stage().await?;
            while let Some(chunk) = field.next().await {
                let chunk = match chunk {
                    Ok(chunk) => chunk,
                    Err(error) => {
                        staged.abandon().await;
                        return Err(Stop::broken(error));
                    }
                };
                if staged.size() + chunk.len() as u64 > max_bytes {
                    staged.abandon().await;
                    return Err(Stop::early(ApiError::PayloadTooLarge));
                }
                staged.write(&chunk).await?;
            }
            *file = Some((staged.finish().await?, raw_name));
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(Stop::broken)?;
                if value.len() + chunk.len() > MAX_TEXT_FIELD {
                    return Err(Stop::early(ApiError::validation(&name, "is too long")));
                }
                text_bytes += chunk.len();
                if text_bytes > MAX_TEXT_FIELDS_TOTAL {
                    return Err(Stop::early(ApiError::BadRequest(format!(
                        "the form's text fields hold more than {} KiB together",
                        MAX_TEXT_FIELDS_TOTAL / 1024
                    ))));
                }
                value.extend_from_slice(&chunk);
            }
            let text = String::from_utf8(value).map_err(|_| ApiError::validation(&name, "must be UTF-8 text"))?;
            if text.contains('\0') {
                return Err(ApiError::validation(&name, crate::input::NUL_REFUSED).into());
            }
            fields.insert(name, text);
        }
    }
    Ok(())
}

/// An upload made by the server itself (minutes, demo data): `bytes` staged like any other.
pub async fn from_bytes(
    storage: &LocalStorage,
    bytes: &[u8],
    file_name: &str,
    content_type: &str,
    fields: &[(&str, &str)],
) -> ApiResult<Upload> {
    let mut staged = storage.stage().await?;
    staged.write(bytes).await?;
    Ok(Upload {
        file: staged.finish().await?,
        file_name: sanitize_file_name(file_name),
        content_type: content_type.to_owned(),
        fields: fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    })
}

/// Reads and discards what is left of the body (up to `budget` bytes), so that an early error
/// reaches a client that is still sending.
async fn drain(form: &mut Multipart, budget: u64) {
    let mut seen = 0u64;
    while let Some(Ok(mut field)) = form.next().await {
        while let Some(Ok(chunk)) = field.next().await {
            seen += chunk.len() as u64;
            if seen > budget {
                return;
            }
        }
    }
}

/// The file's type, decided by its bytes (the client's word is not trusted), if it is allowed.
pub fn sniff(head: &[u8], file_name: &str) -> Option<&'static str> {
    if let Some(kind) = infer::get(head) {
        return ALLOWED.iter().find(|allowed| **allowed == kind.mime_type()).copied();
    }
    // No signature: plain text of some kind, if it is UTF-8 without control bytes.
    if !looks_like_text(head) {
        return None;
    }
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    Some(match extension.as_str() {
        "csv" => "text/csv",
        "md" | "markdown" => "text/markdown",
        _ => "text/plain",
    })
}

const ALLOWED: &[&str] = &[
    "application/pdf",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/rtf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/tiff",
];

fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    // The sniffed head may end inside a multi-byte character.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or(""),
        Err(_) => return false,
    };
    !text.is_empty() && !text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// A file name safe to store and to send back: no directories, no control or reserved
/// characters, at most 255 bytes.
pub fn sanitize_file_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned = sanitize_filename::sanitize(base);
    let trimmed = cleaned.trim().trim_start_matches('.');
    let mut name: String = trimmed.to_owned();
    while name.len() > 255 {
        name.pop();
    }
    if name.is_empty() { "document".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_traversal_and_control_characters_are_neutralized() {
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("..\\..\\windows\\system32\\evil.pdf"), "evil.pdf");
        assert_eq!(sanitize_file_name("..."), "document");
        assert_eq!(sanitize_file_name("informe\u{0}\u{7}.pdf"), "informe.pdf");
        assert_eq!(
            sanitize_file_name("Estudio de puertos – Cartagena.pdf"),
            "Estudio de puertos – Cartagena.pdf"
        );
        assert!(sanitize_file_name(&"á".repeat(300)).len() <= 255);
    }

    #[test]
    fn types_come_from_the_bytes_not_the_name() {
        assert_eq!(sniff(b"%PDF-1.7\n...", "x.pdf"), Some("application/pdf"));
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", "report.pdf"), None);
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff", "report.pdf"), None);
        assert_eq!(sniff(b"port,teu\nCallao,2300000\n", "data.csv"), Some("text/csv"));
        assert_eq!(
            sniff("# Acta\n\nAcuerdos…".as_bytes(), "acta.md"),
            Some("text/markdown")
        );
        assert_eq!(sniff(b"plain words", "notes"), Some("text/plain"));
        assert_eq!(sniff(b"\0\x01\x02binary", "data.csv"), None);
        assert_eq!(sniff(b"", "empty.txt"), None);
    }
}
