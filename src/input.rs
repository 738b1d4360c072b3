//! Reading what a request sends, and one rule every request obeys, whatever its endpoint: no
//! NUL character (U+0000) in its path, its query or its JSON body. PostgreSQL cannot store one in
//! text and SQLite would, so the two databases would answer differently (a 500 on one); no field
//! of the API has a use for it. So it is refused, the same way on both: 400 `bad_request`.
//!
//! The path and query are checked at the door ([`refuse_nul`]); a JSON body as [`Json`] reads
//! it, chunk by chunk (a body no endpoint reads is never stored either). Text that arrives
//! otherwise is checked where it is read: multipart fields in `documents::upload`, CSV in
//! `directory::service::import_csv`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Decompress, Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::{self, BytesMut};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::{Stream, StreamExt as _};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::state::AppState;

pub const NUL_REFUSED: &str = "text must not contain the NUL character (U+0000)";

/// Refuses a request whose path or query holds an encoded NUL.
pub async fn refuse_nul(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let uri = request.uri();
    if has_encoded_nul(uri.path()) || uri.query().is_some_and(has_encoded_nul) {
        let problem = ApiError::BadRequest(NUL_REFUSED.to_owned());
        return Ok(request.error_response(problem).map_into_right_body());
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

/// Refuses a body in a content coding the server cannot undo (415, RFC 9110 §15.5.16): read as
/// it is, it would be taken for what it is not.
pub async fn refuse_unknown_encodings(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let known = request.headers().get_all(header::CONTENT_ENCODING).all(|value| {
        value
            .to_str()
            .is_ok_and(|coding| coding.parse::<header::ContentEncoding>().is_ok())
    });
    if !known {
        let problem = ApiError::UnsupportedContentEncoding;
        return Ok(request.error_response(problem).map_into_right_body());
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

/// Bounds the pauses inside every request body but the WebSocket's (whose heartbeat bounds a
/// silent client): a body that sends nothing for `server.body_idle_timeout_secs` fails to read,
/// and the request is answered 408 `request_timeout`, its connection then closed. Without it, a
/// client that declares a body and sends part of it holds its connection, and whatever the
/// handler holds while it reads, for ever.
pub async fn bound_body_pauses(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let limit = request
        .app_data::<web::Data<AppState>>()
        .map(|state| Duration::from_secs(state.settings.server.body_idle_timeout_secs));
    if let Some(limit) = limit
        && request.path() != crate::realtime::routes::PATH
    {
        match request.take_payload() {
            Payload::None => {}
            body => request.set_payload(Payload::Stream {
                payload: Box::pin(Paced::new(body, limit)),
            }),
        }
    }
    next.call(request).await
}

/// A body whose every chunk must come within `limit` of the last (or of the first read).
struct Paced {
    body: Payload,
    limit: Duration,
    /// Set while a read waits for the client.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Paced {
    fn new(body: Payload, limit: Duration) -> Self {
        Self {
            body,
            limit,
            deadline: None,
        }
    }
}

impl Stream for Paced {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Poll::Ready(item) = Pin::new(&mut this.body).poll_next(cx) {
            this.deadline = None;
            return Poll::Ready(item);
        }
        let limit = this.limit;
        let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                STALLED,
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

const STALLED: &str = "the request body stopped arriving";

/// Whether a body read failed because the body stopped arriving ([`bound_body_pauses`]).
pub fn stalled(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(cause) if cause.kind() == io::ErrorKind::TimedOut)
}

/// What a failed body read answers: 408 when the body stopped arriving, 413 past a limit, else
/// 400 saying what was wrong in words (actix's own text of an early end is a debug dump).
pub fn body_read_error(error: &PayloadError) -> ApiError {
    if stalled(error) {
        return ApiError::RequestTimeout;
    }
    let cause = match error {
        PayloadError::Overflow => return ApiError::PayloadTooLarge,
        // A compressed body that does not decompress ends early with the decoder's reason.
        PayloadError::Incomplete(Some(cause)) | PayloadError::Io(cause) => cause.to_string(),
        PayloadError::Incomplete(None) => "it ended before its declared length".to_owned(),
        PayloadError::EncodingCorrupted => "it does not decode as its Content-Encoding says".to_owned(),
        other => other.to_string(),
    };
    ApiError::BadRequest(format!("could not read the body: {cause}"))
}

/// The length the request declares for its body, when that is the body's own: a compressed
/// body's says nothing of what it holds.
pub fn declared_length(request: &HttpRequest) -> Option<u64> {
    let headers = request.headers();
    if headers.contains_key(header::CONTENT_ENCODING) {
        return None;
    }
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// A JSON body: the extractor every endpoint reads its body with, in place of `web::Json`. It
/// reads within `server.json_limit_bytes` (413 past it) and, where the framework's answered
/// with serde's bare message, says which field is wrong: a body of the wrong shape (a field
/// missing, unknown, of the wrong type or value) is 400 `validation_failed` with
/// `errors: [{field, message}]`; one that is not JSON at all stays 400 `bad_request`.
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = request
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.server.json_limit_bytes);
        // The length sent, when it is the body's own (not a compressed one's).
        let declared = declared_length(request);
        let is_json = is_json(request.headers());
        let payload = Decompress::from_headers(payload.take(), request.headers());
        Box::pin(async move {
            let Some(limit) = limit else {
                let missing = anyhow::anyhow!("application state is not registered");
                return Err(ApiError::Internal(missing).into());
            };
            if !is_json {
                return Err(ApiError::UnsupportedMediaType("application/json, in UTF-8").into());
            }
            if declared.is_some_and(|length| length > limit as u64) {
                return Err(ApiError::PayloadTooLarge.into());
            }
            let body = read_within(payload, limit).await?;
            // Every body is an object. serde would also read a struct from an array of its
            // fields in order (`["a@b.org", "secret"]` as a login), which no client means.
            if body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
                return Err(ApiError::validation("body", NOT_AN_OBJECT).into());
            }
            let mut deserializer = serde_json::Deserializer::from_slice(&body);
            let value = serde_path_to_error::deserialize(&mut deserializer).map_err(body_error)?;
            deserializer
                .end()
                .map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))?;
            Ok(Json(value))
        })
    }
}

/// A JSON body that may be left out: `None` when the request has none (no `Content-Length`, or
/// 0, and no `Content-Type`) or when it is `null`, else read as [`Json`], whose every refusal
/// stands. (actix's
/// `Option<Json<T>>` answers `None` for any refusal: a body with a misspelt field would be
/// ignored instead of refused.)
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let headers = request.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let chunked = headers.contains_key(header::TRANSFER_ENCODING);
        let absent = length == Some(0) || (length.is_none() && !chunked && !headers.contains_key(header::CONTENT_TYPE));
        if absent {
            return Box::pin(async { Ok(OptionalJson(None)) });
        }
        let body = Json::<Option<T>>::from_request(request, payload);
        Box::pin(async move { Ok(OptionalJson(body.await?.into_inner())) })
    }
}

/// The whole body, decompressed (a gzip header holds zero bytes of its own, and a NUL inside
/// would otherwise pass unseen), read within `limit`, and refused at the first NUL.
async fn read_within(mut payload: Decompress<Payload>, limit: usize) -> Result<BytesMut, ApiError> {
    let mut body = BytesMut::new();
    let mut scan = JsonScan::default();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|error| body_read_error(&error))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        scan = scan
            .feed(&chunk)
            .ok_or_else(|| ApiError::BadRequest(NUL_REFUSED.to_owned()))?;
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A body serde could not read: not JSON (`bad_request`), or JSON of the wrong shape, named by
/// its field (`validation_failed`).
fn body_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let path = error.path().to_string();
    let error = error.into_inner();
    if error.classify() != Category::Data {
        return ApiError::BadRequest(format!("invalid JSON body: {error}"));
    }
    let text = error.to_string();
    // serde says where in the text; the field says it better.
    let message = text.split(" at line ").next().unwrap_or(&text);
    // A body of the wrong type altogether: serde would name our struct ("expected struct
    // CreateCommitteeRequest"), which says nothing to a client.
    let message = match path == "." && message.starts_with("invalid type") {
        true => NOT_AN_OBJECT,
        false => message,
    };
    ApiError::Validation(vec![FieldError::new(field_of(&path, message, "body"), message)])
}

const NOT_AN_OBJECT: &str = "must be a JSON object";

/// A query string: the extractor every endpoint (the pages too) reads its parameters with, in place of
/// `web::Query`, whose refusal gives serde's bare message ("invalid digit found in string") as
/// 400 `bad_request`. A parameter of the wrong type or value is 400 `validation_failed` naming
/// it, as a body's field is, and as a value out of range already was (`?limit=500`).
///
/// A parameter with no value (`?status=`, `?kind=&q=port`) is read as absent: it is what a
/// form's "any" choice sends, and what a client sends that fills a link from a value it does not
/// have.
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(request.query_string()).map(Query).map_err(Into::into))
    }
}

fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let given = without_empty_values(query);
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(given.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        ApiError::Validation(vec![FieldError::new(field_of(&path, &message, "query"), &message)])
    })
}

/// The query string without its parameters that have an empty value (`a=`, or a bare `a`).
fn without_empty_values(query: &str) -> String {
    let given = form_urlencoded::parse(query.as_bytes()).filter(|(_, value)| !value.is_empty());
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(given)
        .finish()
}

/// The field a serde message is about: the path it was reading (an unknown field's path ends
/// with it), and for a missing field, the one the message names in the object at that path.
fn field_of(path: &str, message: &str, whole: &str) -> String {
    let named = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => whole.to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_owned(),
    }
}

/// `%00` in a path or a query string: a NUL once decoded (a raw one cannot reach us in a URI).
fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|window| window == b"%00")
}

/// `application/json`, or a type with the `+json` suffix, in UTF-8.
fn is_json(headers: &header::HeaderMap) -> bool {
    utf8_media_type(headers).is_some_and(|mime| mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON))
}

/// The body's declared media type, unless a `charset` names another encoding than UTF-8 (or
/// ASCII, a part of it; `utf8`, not a registered name, is sent by enough clients to be taken):
/// every text the API reads is UTF-8, and text in another charset would otherwise be read as if
/// it were, its accented letters garbled or refused as invalid.
pub fn utf8_media_type(headers: &header::HeaderMap) -> Option<mime::Mime> {
    let mime = headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .parse::<mime::Mime>()
        .ok()?;
    let utf8 = mime.get_param(mime::CHARSET).is_none_or(|charset| {
        ["utf-8", "utf8", "us-ascii"]
            .iter()
            .any(|name| charset.as_str().eq_ignore_ascii_case(name))
    });
    utf8.then_some(mime)
}

/// Where a scan of JSON text stands between two bytes, so that a body can be scanned chunk by
/// chunk. A NUL is the escape `\u0000` in a string (JSON allows it no other way), or a raw one,
/// which makes the body invalid anyway. Escapes are stepped over whole, so the text `\\u0000`
/// (a backslash, then `u0000`) is not one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum JsonScan {
    #[default]
    Text,
    /// Just after a backslash that begins an escape.
    Escape,
    /// Inside `\u`, after this many zeros.
    Unicode(u8),
}

impl JsonScan {
    /// The state after `bytes`, or `None` if they complete a NUL.
    fn feed(mut self, bytes: &[u8]) -> Option<Self> {
        for &byte in bytes {
            self = self.step(byte)?;
        }
        Some(self)
    }

    fn step(self, byte: u8) -> Option<Self> {
        match (self, byte) {
            (_, 0) | (Self::Unicode(3), b'0') => None,
            (Self::Unicode(zeros), b'0') => Some(Self::Unicode(zeros + 1)),
            (Self::Escape, b'u') => Some(Self::Unicode(0)),
            (Self::Escape, _) => Some(Self::Text),
            (Self::Text | Self::Unicode(_), b'\\') => Some(Self::Escape),
            (Self::Text | Self::Unicode(_), _) => Some(Self::Text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_has_nul(body: &[u8]) -> bool {
        JsonScan::default().feed(body).is_none()
    }

    #[test]
    fn parameters_with_no_value_are_left_out_and_the_others_kept_as_sent() {
        assert_eq!(
            without_empty_values("status=&kind&q=port+of+spain&tag=a&tag=b&x=%20"),
            "q=port+of+spain&tag=a&tag=b&x=+"
        );
        assert_eq!(without_empty_values("q=caf%C3%A9&cursor="), "q=caf%C3%A9");
        assert_eq!(without_empty_values(""), "");
    }

    #[test]
    fn a_nul_is_found_as_an_escape_or_raw_and_only_then() {
        assert!(json_has_nul(br#"{"title":"a\u0000b"}"#));
        assert!(json_has_nul(b"{\"title\":\"a\0b\"}"));
        assert!(
            !json_has_nul(br#"{"title":"a\\u0000b"}"#),
            "an escaped backslash, then text"
        );
        assert!(
            json_has_nul(br#"{"title":"a\\\u0000b"}"#),
            "an escaped backslash, then a NUL"
        );
        assert!(!json_has_nul(br#"{"title":"a\u0001b\"\u00e9"}"#));
        assert!(!json_has_nul(br#"{"title":"trailing\"#));
    }

    /// A body split into chunks anywhere gives the answer the whole body gives.
    #[test]
    fn a_scan_carries_its_state_across_chunks() {
        let bodies: [&[u8]; 5] = [
            br#"{"title":"a\u0000b"}"#,
            br#"{"title":"a\\u0000b"}"#,
            br#"{"title":"a\\\u0000b"}"#,
            br#"{"t":"\u00\\u0000","u":"\u0000"}"#,
            br#"{"title":"\u0010\u0100"}"#,
        ];
        for body in bodies {
            let whole = JsonScan::default().feed(body);
            for split in 0..=body.len() {
                let (first, second) = body.split_at(split);
                let chunked = JsonScan::default().feed(first).and_then(|scan| scan.feed(second));
                assert_eq!(chunked, whole, "{} split at {split}", String::from_utf8_lossy(body));
            }
        }
    }

    #[test]
    fn a_body_error_names_the_field_at_its_path() {
        assert_eq!(field_of(".", "missing field `title`", "body"), "title");
        assert_eq!(field_of("items[0]", "missing field `kind`", "body"), "items[0].kind");
        assert_eq!(field_of("role", "unknown variant `emperor`", "body"), "role");
        assert_eq!(
            field_of("extra", "unknown field `extra`, expected `name`", "body"),
            "extra"
        );
        assert_eq!(
            field_of(".", "invalid type: string \"x\", expected struct Login", "body"),
            "body"
        );
    }

    #[test]
    fn a_query_error_names_its_parameter() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Filter {
            channel: String,
            limit: Option<u64>,
            role: Option<crate::domain::Role>,
        }
        let field = |query: &str| match parse_query::<Filter>(query) {
            Err(ApiError::Validation(errors)) => errors[0].field.clone(),
            other => panic!("{query}: {other:?}"),
        };
        assert_eq!(field("channel=a&limit=abc"), "limit");
        assert_eq!(field("channel=a&limit=-1"), "limit");
        assert_eq!(field("channel=a&role=emperor"), "role");
        assert_eq!(field("limit=5"), "channel");
        let parsed: Filter = parse_query("channel=committee%3A3&limit=5&unknown=1").unwrap();
        assert_eq!((parsed.channel.as_str(), parsed.limit), ("committee:3", Some(5)));
    }

    #[test]
    fn text_is_read_only_in_utf8() {
        let media_type = |value: &'static str| {
            let mut headers = header::HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(value));
            utf8_media_type(&headers).map(|mime| mime.essence_str().to_owned())
        };
        for utf8 in [
            "text/csv",
            "text/csv; charset=utf-8",
            "text/csv; charset=UTF-8",
            "text/csv; charset=\"utf-8\"",
            "text/csv; charset=utf8",
            "text/csv; charset=US-ASCII",
        ] {
            assert_eq!(media_type(utf8).as_deref(), Some("text/csv"), "{utf8}");
        }
        for other in [
            "text/csv; charset=windows-1252",
            "application/json; charset=utf-16",
            "text/csv; charset=ISO-8859-1",
            "not a type",
        ] {
            assert_eq!(media_type(other), None, "{other}");
        }
    }

    #[test]
    fn an_encoded_nul_is_found_in_a_uri() {
        assert!(has_encoded_nul("/api/public/indicators/%00/values"));
        assert!(has_encoded_nul("q=a%00b"));
        assert!(!has_encoded_nul("q=100%25"));
        assert!(!has_encoded_nul("q=%2500"));
    }
}
