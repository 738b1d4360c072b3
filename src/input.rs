//! A rule every request obeys, whatever its endpoint: no NUL character (U+0000) in its path,
//! its query or its JSON body. PostgreSQL cannot store one in text and SQLite would, so the two
//! databases would answer differently (a 500 on one); no field of the API has a use for it. So
//! it is refused at the door, the same way on both: 400 `bad_request`.
//!
//! Text that arrives otherwise is checked where it is read: multipart fields in
//! `documents::upload`, CSV in `directory::service::import_csv`.

use actix_web::HttpMessage as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Decompress, Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt;

use crate::error::ApiError;
use crate::state::AppState;

pub const NUL_REFUSED: &str = "text must not contain the NUL character (U+0000)";

pub async fn refuse_nul(
    mut request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let uri = request.uri();
    if has_encoded_nul(uri.path()) || uri.query().is_some_and(has_encoded_nul) {
        return Ok(refused(request, ApiError::BadRequest(NUL_REFUSED.to_owned())));
    }
    if has_json_body(&request) {
        let Some(limit) = request
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.server.json_limit_bytes)
        else {
            let missing = anyhow::anyhow!("application state is not registered");
            return Ok(refused(request, ApiError::Internal(missing)));
        };
        // Read as the JSON extractor will read it: decompressed (a gzip header holds zero bytes
        // of its own, and a NUL inside would otherwise pass unseen), within the same limit.
        let payload = Decompress::from_headers(request.take_payload(), request.headers());
        let body = match read_within(payload, limit).await {
            Ok(Some(body)) => body,
            Ok(None) => return Ok(refused(request, ApiError::PayloadTooLarge)),
            Err(error) => {
                let problem = ApiError::BadRequest(format!("could not read the body: {error}"));
                return Ok(refused(request, problem));
            }
        };
        if json_has_nul(&body) {
            return Ok(refused(request, ApiError::BadRequest(NUL_REFUSED.to_owned())));
        }
        // Handed on decompressed, and said so.
        let headers = request.headers_mut();
        headers.remove(header::CONTENT_ENCODING);
        headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(body.len()));
        request.set_payload(payload_of(body));
    }
    next.call(request).await.map(ServiceResponse::map_into_left_body)
}

fn refused<B>(request: ServiceRequest, error: ApiError) -> ServiceResponse<EitherBody<B>> {
    request.error_response(error).map_into_right_body()
}

/// `%00` in a path or a query string: a NUL once decoded (a raw one cannot reach us in a URI).
fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|window| window == b"%00")
}

fn has_json_body(request: &ServiceRequest) -> bool {
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
        .is_some_and(|mime| mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON));
    writes && json
}

/// The whole body, or `None` when it is longer than `limit` (the JSON extractor's own limit).
async fn read_within(
    mut payload: Decompress<Payload>,
    limit: usize,
) -> Result<Option<Bytes>, actix_web::error::PayloadError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

fn payload_of(body: Bytes) -> Payload {
    let (_, mut payload) = actix_http::h1::Payload::create(true);
    payload.unread_data(body);
    Payload::from(payload)
}

/// Whether JSON text holds a NUL: as the escape `\u0000` in a string (JSON allows it no other
/// way), or raw, which makes the body invalid anyway. Escapes are stepped over whole, so the
/// text `\\u0000` (a backslash, then `u0000`) is not one.
fn json_has_nul(body: &[u8]) -> bool {
    let mut index = 0;
    while let Some(&byte) = body.get(index) {
        match byte {
            0 => return true,
            b'\\' if body.get(index + 1) == Some(&b'u') && body.get(index + 2..index + 6) == Some(b"0000") => {
                return true;
            }
            b'\\' => index += 2,
            _ => index += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_encoded_nul_is_found_in_a_uri() {
        assert!(has_encoded_nul("/api/public/indicators/%00/values"));
        assert!(has_encoded_nul("q=a%00b"));
        assert!(!has_encoded_nul("q=100%25"));
        assert!(!has_encoded_nul("q=%2500"));
    }
}
