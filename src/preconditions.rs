//! Optimistic concurrency: resources carry a `version`; `If-Match: "<version>"` on a write
//! makes it fail with 412 when someone else changed the resource first. And the one rule of
//! conditional reads every `ETag` we send is checked by: [`client_copy_is_current`].

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};

use crate::error::ApiError;

/// The versions `If-Match` names, if the client sent the header (`*` names any). A weak tag
/// (`W/"3"`) names none: `If-Match` compares strongly (RFC 9110 §13.1.1).
#[derive(Clone, Debug)]
pub struct IfMatch(pub Option<Vec<i32>>);

impl IfMatch {
    /// Fails with 412 when `current` is not among the client's versions.
    pub fn check(&self, current: i32) -> Result<(), ApiError> {
        match &self.0 {
            Some(expected) if !expected.contains(&current) => Err(ApiError::PreconditionFailed),
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
    // A weak tag is well-formed but never matches; a bare number is taken as its quoted form,
    // as clients were answered before lists were read.
    let malformed = || ApiError::BadRequest("If-Match must be a quoted version, like \"3\"".to_owned());
    let Some(tags) = if_match_list(req, malformed)? else {
        return Ok(IfMatch(None));
    };
    let mut versions = Vec::new();
    for tag in tags {
        let (weak, tag) = tag.strip_prefix("W/").map_or((false, tag), |tag| (true, tag));
        let quoted = tag.strip_prefix('"').and_then(|tag| tag.strip_suffix('"'));
        let version = quoted
            .or((!weak).then_some(tag))
            .and_then(|version| version.parse::<i32>().ok())
            .ok_or_else(malformed)?;
        if !weak {
            versions.push(version);
        }
    }
    Ok(IfMatch(Some(versions)))
}

/// The elements of `If-Match`, as written: `None` when it is absent or `*` (any current
/// representation, RFC 9110 §13.1.1; the resource exists, or the request is a 404). A list is
/// comma-separated, empty elements allowed (RFC 9110 §5.6.1); one that is not text or holds no
/// element is `malformed`, and so is any element the caller cannot read.
pub fn if_match_list(req: &HttpRequest, malformed: impl Fn() -> ApiError) -> Result<Option<Vec<&str>>, ApiError> {
    let Some(value) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| malformed())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tags: Vec<&str> = text.split(',').map(str::trim).filter(|tag| !tag.is_empty()).collect();
    if tags.is_empty() {
        return Err(malformed());
    }
    Ok(Some(tags))
}

/// Whether `If-None-Match` is `*` or names `tag`, compared weakly as RFC 9110 §13.1.2 has it (a
/// proxy that compresses a response sends its tag on as `W/"…"`): the client's copy is current,
/// and a GET is answered 304.
pub fn client_copy_is_current(if_none_match: Option<&header::IfNoneMatch>, tag: &header::EntityTag) -> bool {
    match if_none_match {
        None => false,
        Some(header::IfNoneMatch::Any) => true,
        Some(header::IfNoneMatch::Items(items)) => items.iter().any(|item| item.weak_eq(tag)),
    }
}

/// The `ETag` for a resource at `version`.
pub fn etag(version: i32) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}
