//! `GET /ws`: the WebSocket upgrade.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;

use super::frames::SkipOversized;
use super::session::{MAX_MESSAGE_BYTES, WsSession};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Where the WebSocket is served.
pub const PATH: &str = "/ws";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(PATH, web::get().to(connect));
}

async fn connect(state: web::Data<AppState>, request: HttpRequest, stream: web::Payload) -> ApiResult<HttpResponse> {
    if !origin_allowed(&request, &state.settings.server.allowed_origins) {
        return Err(ApiError::Forbidden);
    }
    let stream = SkipOversized::new(stream, MAX_MESSAGE_BYTES);
    ws::WsResponseBuilder::new(WsSession::new(state), &request, stream)
        .frame_size(MAX_MESSAGE_BYTES)
        .start()
        .map_err(ApiError::from)
}

/// Browsers send `Origin`; a page from another site must not open a socket with the user's
/// token. Clients that send no `Origin` (servers, tests, mobile apps) are not browsers.
fn origin_allowed(request: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    if allowed.iter().any(|allowed| allowed == origin) {
        return true;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    host.is_some() && origin_host == host
}
