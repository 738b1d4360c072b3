//! The methods a path answers to: every GET also answers HEAD, and a request whose path is
//! served under other methods is 405 with `Allow` (RFC 9110 §15.5.6), not 404.
//!
//! actix routes by method and path together, so a request with a method no route of its path
//! takes falls through to the default service, as an unknown path does. The methods each path
//! is served with come from the OpenAPI document, which lists every API route (a test sends
//! every documented path each of its methods, which must be routed, and one it does not list),
//! and from the few routes outside it.

use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, ResponseError as _};
use utoipa::OpenApi as _;

use crate::error::ApiError;

/// Routes outside the OpenAPI document: the document itself and the WebSocket endpoint. (The
/// public pages answer 405 themselves: `public::guard::read_only`.)
const UNDOCUMENTED: [&str; 2] = ["/api/openapi.json", crate::realtime::routes::PATH];

/// HEAD is GET without the body (RFC 9110 §9.3.2), so it is routed as GET. The connection sends
/// no body in answer to a HEAD request, whatever the handler gives; the body is swapped for an
/// empty one of the same length, so that a download's file is not read for nothing.
///
/// What runs after this sees GET: routing, the handlers, and the metrics (which read the method
/// once the response is made); the request's log line, begun before, says HEAD. A `Range` is
/// defined for GET only (RFC 9110 §14.2), so a HEAD's is dropped: the answer is the whole
/// file's headers. A HEAD asking to upgrade is left as it is, so that it never opens a
/// WebSocket. (This must run before anything keeps a handle on the request, or the head
/// cannot be changed: it is the innermost of the app's middlewares, outside the routing.)
pub async fn head_as_get(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let head = request.method() == Method::HEAD && !request.headers().contains_key(header::UPGRADE);
    if head {
        let head = request.head_mut();
        head.method = Method::GET;
        head.headers.remove(header::RANGE);
        head.headers.remove(header::IF_RANGE);
    }
    let response = next.call(request).await?;
    Ok(match head {
        true => response.map_body(|_, body| EitherBody::left(Headless(body.size()))),
        false => response.map_into_right_body(),
    })
}

/// The body of an answer to HEAD: the size the GET's would have, and no bytes.
///
/// actix-http keeps one "this is a HEAD" mark per connection, so a request pipelined behind a
/// HEAD and read before its answer is written overwrites it: the answer is then expected to
/// carry its length in bytes, this gives none, and the connection is closed (with the real
/// body instead, its bytes would follow the HEAD's headers and corrupt the stream). Browsers,
/// HTTP libraries and the nginx in front do not pipeline; a client that does sends again.
struct Headless(BodySize);

impl MessageBody for Headless {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        self.0
    }

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}

/// What a request no route took is answered: 405 with the methods its path is served with, or
/// 404 when no route serves its path.
pub async fn not_routed(request: HttpRequest) -> HttpResponse {
    // The path as actix routes it: `%61` read as `a`.
    let Some(allowed) = allowed_for(request.match_info().as_str()) else {
        return ApiError::NotFound.error_response();
    };
    let mut response = ApiError::MethodNotAllowed.error_response();
    if let Ok(value) = header::HeaderValue::from_str(&allowed) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The methods `path` is served with, as `Allow` lists them: those of every route whose template
/// it fits (`/api/admin/indicators/values` fits `/api/admin/indicators/{id}` too, as actix
/// would route it). `None` when it fits none.
fn allowed_for(path: &str) -> Option<String> {
    let mut allowed: Vec<&Method> = Vec::new();
    for (template, methods) in routes() {
        if fits(template, path) {
            allowed.extend(methods);
        }
    }
    if allowed.is_empty() {
        return None;
    }
    let listed: Vec<&str> = ORDER
        .iter()
        .filter(|method| allowed.contains(method))
        .map(Method::as_str)
        .collect();
    Some(listed.join(", "))
}

/// The order `Allow` lists methods in.
const ORDER: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Whether `path` fits a route's template: segment by segment, a `{parameter}` fitting any
/// segment but an empty one.
fn fits(template: &str, path: &str) -> bool {
    let (mut expected, mut given) = (template.split('/'), path.split('/'));
    loop {
        match (expected.next(), given.next()) {
            (None, None) => return true,
            (Some(expected), Some(given)) if expected == given || (expected.starts_with('{') && !given.is_empty()) => {}
            _ => return false,
        }
    }
}

/// Every route's template, as actix and the OpenAPI document both write it, with its methods.
fn routes() -> &'static [(String, Vec<Method>)] {
    static ROUTES: OnceLock<Vec<(String, Vec<Method>)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let documented = crate::openapi::ApiDoc::openapi()
            .paths
            .paths
            .into_iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::HEAD, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                ];
                let served = methods
                    .into_iter()
                    .filter(|(_, served)| *served)
                    .map(|(method, _)| method);
                (path, served.collect())
            });
        let undocumented = UNDOCUMENTED.map(|path| (path.to_owned(), vec![Method::GET, Method::HEAD]));
        documented.chain(undocumented).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_fits_the_templates_of_its_segments() {
        assert!(fits("/api/tasks/{id}", "/api/tasks/12"));
        assert!(fits("/api/tasks/{id}/comments", "/api/tasks/x/comments"));
        assert!(
            !fits("/api/tasks/{id}", "/api/tasks/"),
            "an empty segment is no parameter"
        );
        assert!(!fits("/api/tasks/{id}", "/api/tasks/12/comments"));
        assert!(!fits("/api/tasks", "/api/tasks/12"));
        assert!(fits("/healthz", "/healthz"));
    }
}
