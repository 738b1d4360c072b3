//! What keeps the public area public: read-only methods, cache validators, and a per-address
//! rate limit.

use std::net::IpAddr;

use actix_governor::governor::NotUntil;
use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::{GovernorConfig, GovernorConfigBuilder, KeyExtractor, PeerIpKeyExtractor};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse, HttpResponseBuilder, ResponseError, web};
use sha2::{Digest, Sha256};

use crate::auth::ClientIp;
use crate::error::ApiError;
use crate::preconditions::client_copy_is_current;
use crate::state::AppState;

/// Answers 405 to anything but GET (HEAD arrives as GET: `methods::head_as_get`), before any
/// route runs.
pub async fn read_only(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if request.method() == Method::GET {
        return Ok(next.call(request).await?.map_into_boxed_body());
    }
    let mut response = ApiError::MethodNotAllowed.error_response();
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    Ok(request.into_response(response))
}

/// Adds a strong `ETag` (a hash of the body) and `Cache-Control`, and answers `If-None-Match`
/// with 304. Responses that carry their own `ETag` (files) keep it and are not cached; the
/// others are served from the node's `PublicCache` while nothing has changed.
pub async fn cache_validators(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let if_none_match: Option<header::IfNoneMatch> = request.get_header();
    let cache = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.public_cache.clone())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no application state")))?;
    let key = cache_key(&request);
    if let Some(hit) = cache.get(&key) {
        let mut response = HttpResponse::Ok().body(hit.body.clone());
        *response.headers_mut() = hit.headers.clone();
        let response = validated(response, &hit.etag, if_none_match.as_ref());
        return Ok(request.into_response(response));
    }
    let generation = cache.generation();
    let response = next.call(request).await?.map_into_boxed_body();
    if response.status() != StatusCode::OK || response.headers().contains_key(header::ETAG) {
        return Ok(response);
    }
    let (request, response) = response.into_parts();
    let (mut head, body) = response.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("unreadable response body")))?;
    // Kept parsed beside the response: a cache hit compares it without reading it back.
    let etag = header::EntityTag::new_strong(hex::encode(Sha256::digest(&bytes))[..32].to_owned());
    let headers = head.headers_mut();
    headers.insert(
        header::ETAG,
        header::HeaderValue::from_str(&etag.to_string())
            .map_err(anyhow::Error::from)
            .map_err(ApiError::from)?,
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=60"),
        );
    }
    cache.insert(key, generation, head.headers().clone(), bytes.clone(), etag.clone());
    let response = validated(head.set_body(bytes.boxed()), &etag, if_none_match.as_ref());
    Ok(ServiceResponse::new(request, response))
}

/// Public responses differ by URL (path and query, `?lang=` included) and by `Accept-Language`
/// (the pages' language when no `lang` is given); by nothing else.
fn cache_key(request: &ServiceRequest) -> String {
    let language = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    format!("{}\u{0}{language}", request.uri())
}

/// The full response, or 304 with its validators when the client already holds this version.
fn validated(
    response: HttpResponse,
    etag: &header::EntityTag,
    if_none_match: Option<&header::IfNoneMatch>,
) -> HttpResponse {
    if !client_copy_is_current(if_none_match, etag) {
        return response;
    }
    let mut not_modified = HttpResponse::NotModified().finish();
    for name in [header::ETAG, header::CACHE_CONTROL, header::VARY] {
        if let Some(value) = response.headers().get(&name) {
            not_modified.headers_mut().insert(name.clone(), value.clone());
        }
    }
    not_modified
}

/// Rate-limit key: the client address as `ClientIp` sees it (through trusted proxies only).
#[derive(Clone)]
pub struct ClientAddress;

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;
    type KeyExtractionError = ApiError;

    fn extract(&self, request: &ServiceRequest) -> Result<IpAddr, ApiError> {
        let trusted = request
            .app_data::<web::Data<AppState>>()
            .map(|state| state.settings.server.trusted_proxies.clone())
            .unwrap_or_default();
        match ClientIp::of(request.request(), &trusted).0 {
            Some(ip) => Ok(ip),
            None => PeerIpKeyExtractor
                .extract(request)
                .map_err(|_| ApiError::BadRequest("no client address".to_owned())),
        }
    }

    fn exceed_rate_limit_response(&self, negative: &NotUntil<QuantaInstant>, _: HttpResponseBuilder) -> HttpResponse {
        let wait = negative.wait_time_from(DefaultClock::default().now()).as_secs().max(1);
        ApiError::RateLimited { retry_after_secs: wait }.error_response()
    }
}

/// The limiter's settings: `public.rate_limit_per_minute` with bursts of `public.rate_limit_burst`.
pub fn rate_limit(
    per_minute: u32,
    burst: u32,
) -> anyhow::Result<GovernorConfig<ClientAddress, actix_governor::governor::middleware::NoOpMiddleware<QuantaInstant>>>
{
    let interval_ms = (60_000 / u64::from(per_minute.max(1))).max(1);
    GovernorConfigBuilder::default()
        .milliseconds_per_request(interval_ms)
        .burst_size(burst.max(1))
        .key_extractor(ClientAddress)
        .finish()
        .ok_or_else(|| anyhow::anyhow!("invalid public rate limit settings"))
}
