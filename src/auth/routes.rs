//! `/api/auth/*` and `/api/me`.

use actix_web::{HttpResponse, get, patch, post, web};

use super::dto::*;
use super::extract::{ClientIp, CurrentMember};
use super::service;
use crate::error::{ApiResult, Deferred, Problem};
use crate::input::Json;
use crate::preconditions::IfMatch;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/auth")
            .service(login)
            .service(refresh)
            .service(logout)
            .service(accept_invitation)
            .service(forgot_password)
            .service(reset_password),
    )
    .service(get_me)
    .service(update_me);
}

/// Logs in with email and password.
#[utoipa::path(
    context_path = "/api/auth", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenPairResponse),
        (status = 401, description = "invalid_credentials, the same for any wrong pair", body = Problem),
        (status = 429, description = "rate_limited, with Retry-After", body = Problem),
    )
)]
#[post("/login")]
async fn login(state: web::Data<AppState>, ip: ClientIp, body: Json<LoginRequest>) -> ApiResult<HttpResponse> {
    let pair = service::login(&state, &body.email, &body.password, ip.to_text()).await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// Spends a refresh token for a new token pair.
#[utoipa::path(
    context_path = "/api/auth", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPairResponse), (status = 401, body = Problem))
)]
#[post("/refresh")]
async fn refresh(state: web::Data<AppState>, body: Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::refresh(&state, &body.refresh_token).await?))
}

/// Ends the session of a refresh token.
#[utoipa::path(
    context_path = "/api/auth", tag = "auth", request_body = RefreshRequest,
    responses((status = 204), (status = 400, body = Problem))
)]
#[post("/logout")]
async fn logout(state: web::Data<AppState>, ip: ClientIp, body: Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    service::logout(&state, &body.refresh_token, ip.to_text()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accepts an invitation: sets name and password, activates the account and logs in.
#[utoipa::path(
    context_path = "/api/auth", tag = "auth", request_body = AcceptInvitationRequest,
    responses(
        (status = 200, body = TokenPairResponse),
        (status = 400, description = "invalid_token or validation_failed (weak password)", body = Problem),
    )
)]
#[post("/invitations/accept")]
async fn accept_invitation(
    state: web::Data<AppState>,
    ip: ClientIp,
    body: Json<AcceptInvitationRequest>,
) -> ApiResult<HttpResponse> {
    let pair = service::accept_invitation(&state, &body.token, &body.name, &body.password, ip.to_text()).await?;
    Ok(HttpResponse::Ok().json(pair))
}

/// Mails a password-reset link if the address has an account; always 202.
#[utoipa::path(
    context_path = "/api/auth", tag = "auth", request_body = ForgotPasswordRequest,
    responses((status = 202), (status = 400, body = Problem))
)]
#[post("/password/forgot")]
async fn forgot_password(
    state: web::Data<AppState>,
    ip: ClientIp,
    body: Json<ForgotPasswordRequest>,
) -> ApiResult<HttpResponse> {
    service::forgot_password(state, &body.email, ip.to_text()).await?;
    Ok(HttpResponse::Accepted().finish())
}

/// Sets a new password with a reset token; ends every session of the account.
#[utoipa::path(
    context_path = "/api/auth", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204), (status = 400, description = "invalid_token or validation_failed", body = Problem))
)]
#[post("/password/reset")]
async fn reset_password(
    state: web::Data<AppState>,
    ip: ClientIp,
    body: Json<ResetPasswordRequest>,
) -> ApiResult<HttpResponse> {
    service::reset_password(&state, &body.token, &body.password, ip.to_text()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's account, with their committees.
#[utoipa::path(
    context_path = "/api", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MemberResponse), (status = 401, body = Problem))
)]
#[get("/me")]
async fn get_me(state: web::Data<AppState>, me: CurrentMember) -> ApiResult<HttpResponse> {
    // No ETag: the body holds the committees, which change without the account's version.
    Ok(HttpResponse::Ok().json(crate::committees::service::with_committees(&state, me.0).await?))
}

/// Changes the caller's name, language or password (which needs the current one).
#[utoipa::path(
    context_path = "/api", tag = "me", security(("bearer" = [])), request_body = UpdateMeRequest,
    responses((status = 200, body = MemberResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 412, body = Problem), (status = 429, description = "rate_limited: too many wrong current passwords for the account or from the address", body = Problem))
)]
#[patch("/me")]
async fn update_me(
    state: web::Data<AppState>,
    me: CurrentMember,
    ip: ClientIp,
    if_match: Deferred<IfMatch>,
    body: Deferred<Json<UpdateMeRequest>>,
) -> ApiResult<HttpResponse> {
    let member = service::update_me(&state, me.0, ip.to_text(), if_match?, body?.into_inner()).await?;
    Ok(HttpResponse::Ok().json(crate::committees::service::with_committees(&state, member).await?))
}
