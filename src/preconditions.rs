//! Optimistic concurrency: resources carry a `version`; `If-Match: "<version>"` on a write
//! makes it fail with 412 when someone else changed the resource first.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};

use crate::error::ApiError;

/// The version named by `If-Match`, if the client sent one.
#[derive(Clone, Copy, Debug)]
pub struct IfMatch(pub Option<i32>);

impl IfMatch {
    /// Fails with 412 when the client's version is not `current`.
    pub fn check(self, current: i32) -> Result<(), ApiError> {
        match self.0 {
            Some(expected) if expected != current => Err(ApiError::PreconditionFailed),
            _ => Ok(()),
        }
    }
}

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(parse(req))
    }
}

fn parse(req: &HttpRequest) -> Result<IfMatch, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(IfMatch(None));
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("If-Match is not valid text".to_owned()))?
        .trim();
    // `*`: any current version (RFC 9110 §13.1.1); the resource exists, or the write is a 404.
    if text == "*" {
        return Ok(IfMatch(None));
    }
    let unquoted = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    unquoted
        .parse::<i32>()
        .map(|version| IfMatch(Some(version)))
        .map_err(|_| ApiError::BadRequest("If-Match must be a quoted version, like \"3\"".to_owned()))
}

/// The `ETag` for a resource at `version`.
pub fn etag(version: i32) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}
