//! Sessions: login, refresh-token rotation, logout, invitations and password resets.

use chrono::{Duration, Utc};
use entity::{calendar_feed, member, one_time_token, refresh_token};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, ExprTrait, IntoActiveModel, QueryFilter,
    QuerySelect, Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::dto::{TokenPairResponse, UpdateMeRequest};
use super::throttle::{account_key, ip_key, password_change_key, reset_account_key, reset_ip_key};
use super::tokens::{OpaqueKind, hash_opaque_of_kind, new_opaque};
use crate::audit::{self, AuditEntry};
use crate::domain::{Email, Locale, MemberStatus, Password, Validator, required_line};
use crate::error::{ApiError, ApiResult};
use crate::mail::{self, templates};
use crate::preconditions::IfMatch;
use crate::state::AppState;
use actix_web::web;

/// Logs a member in. Every failure, whatever its cause, is the same 401 after the same work.
#[tracing::instrument(skip_all)]
pub async fn login(
    state: &AppState,
    email: &str,
    password: &SecretString,
    ip: Option<String>,
) -> ApiResult<TokenPairResponse> {
    // An unparsable email still costs a hash below, so it answers like any unknown account.
    let email = Email::parse("email", email)
        .map(|email| email.as_str().to_owned())
        .unwrap_or_default();
    let keys = [
        (account_key(&email), state.settings.auth.max_failures_per_account),
        (
            ip_key(ip.as_deref().unwrap_or("unknown")),
            state.settings.auth.max_failures_per_ip,
        ),
    ];
    // Counted before the password is checked, so that attempts sent together cannot all pass
    // while their hashes are still being computed; forgiven below if the login succeeds.
    let counted = state
        .throttle
        .take_attempts(&keys)
        .await
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;

    let found = member::Entity::find()
        .filter(member::Column::Email.eq(&email))
        .one(state.db.conn())
        .await?;
    let active = found.filter(|member| member.status == MemberStatus::Active.as_str());
    let stored_hash = active.as_ref().and_then(|member| member.password_hash.clone());
    let verified = state.passwords.verify(password, stored_hash).await?;

    let txn = state.db.begin_write().await?;
    let Some(member) = active.filter(|_| verified) else {
        audit::record(
            &*txn,
            AuditEntry {
                actor_id: None,
                action: "auth.login_failed",
                target_type: "member",
                target_id: None,
                details: json!({}),
                ip,
            },
        )
        .await?;
        txn.commit().await?;
        return Err(ApiError::InvalidCredentials);
    };
    state.throttle.clear(&keys[0].0).await;
    state.throttle.forgive(&keys[1].0, counted[1]).await;
    let pair = issue_pair(state, &*txn, member, None).await?;
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(pair.member.id),
            action: "auth.login",
            target_type: "member",
            target_id: Some(pair.member.id),
            details: json!({}),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(pair)
}

/// Spends a refresh token for a new pair. A token spent twice means it was stolen: the whole
/// family (every token descended from the same login) is revoked.
#[tracing::instrument(skip_all)]
pub async fn refresh(state: &AppState, token: &SecretString) -> ApiResult<TokenPairResponse> {
    let hash = hash_opaque_of_kind(OpaqueKind::Refresh, token.expose_secret()).ok_or(ApiError::Unauthorized)?;
    let txn = state.db.begin_write().await?;
    let find = || {
        refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(hash.clone()))
            .one(&*txn)
    };
    let member_id = find().await?.ok_or(ApiError::Unauthorized)?.member_id;
    // Read again under the member's row lock (see `SESSIONS_LOCK`): a logout that committed
    // meanwhile is seen.
    let member = member::Entity::find_by_id(member_id)
        .lock_exclusive()
        .one(&*txn)
        .await?;
    let stored = find().await?.ok_or(ApiError::Unauthorized)?;
    if stored.revoked_at.is_some() || stored.expires_at <= Utc::now() {
        return Err(ApiError::Unauthorized);
    }
    // Conditional update: of two concurrent uses, only one can spend the token.
    let spent = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::Id.eq(stored.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(&*txn)
        .await?;
    if spent.rows_affected == 0 {
        revoke_family(&*txn, &stored.family_id).await?;
        audit::record(
            &*txn,
            AuditEntry {
                actor_id: Some(stored.member_id),
                action: "auth.refresh_reuse_detected",
                target_type: "member",
                target_id: Some(stored.member_id),
                details: json!({ "family_id": stored.family_id }),
                ip: None,
            },
        )
        .await?;
        txn.commit().await?;
        tracing::warn!(member_id = stored.member_id, "refresh token reused; family revoked");
        crate::realtime::end_session(state, stored.member_id, stored.family_id);
        return Err(ApiError::Unauthorized);
    }
    let member = member
        .filter(|member| member.status == MemberStatus::Active.as_str())
        .ok_or(ApiError::Unauthorized)?;
    let pair = issue_pair(state, &*txn, member, Some(stored.family_id)).await?;
    txn.commit().await?;
    Ok(pair)
}

/// Ends the session the refresh token belongs to. Unknown tokens are ignored: logging out twice
/// is not an error.
#[tracing::instrument(skip_all)]
pub async fn logout(state: &AppState, token: &SecretString, ip: Option<String>) -> ApiResult<()> {
    let Some(hash) = hash_opaque_of_kind(OpaqueKind::Refresh, token.expose_secret()) else {
        return Ok(());
    };
    let txn = state.db.begin_write().await?;
    let stored = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(&*txn)
        .await?;
    if let Some(stored) = &stored {
        // A refresh of this session in flight commits first, and its new token is revoked too
        // (`SESSIONS_LOCK`).
        crate::db::lock_row::<member::Entity>(&*txn, stored.member_id).await?;
        revoke_family(&*txn, &stored.family_id).await?;
        audit::record(
            &*txn,
            AuditEntry {
                actor_id: Some(stored.member_id),
                action: "auth.logout",
                target_type: "member",
                target_id: Some(stored.member_id),
                details: json!({}),
                ip,
            },
        )
        .await?;
    }
    txn.commit().await?;
    if let Some(stored) = stored {
        crate::realtime::end_session(state, stored.member_id, stored.family_id);
    }
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn accept_invitation(
    state: &AppState,
    token: &SecretString,
    name: &str,
    password: &SecretString,
    ip: Option<String>,
) -> ApiResult<TokenPairResponse> {
    let mut validator = Validator::default();
    let name = validator.check(required_line("name", name, 200));
    let password = validator.check(Password::parse("password", password));
    validator.finish()?;
    let (name, password) = (name.unwrap_or_default(), password.ok_or(ApiError::InvalidToken)?);
    require_live_one_time(state, OpaqueKind::Invitation, token).await?;
    let hash = state.passwords.hash(password.secret()).await?;

    let txn = state.db.begin_write().await?;
    let member = consume_one_time(&*txn, OpaqueKind::Invitation, token).await?;
    if member.status != MemberStatus::Invited.as_str() {
        return Err(ApiError::InvalidToken);
    }
    let version = member.version;
    let search_text = crate::search::member_text(&name, &member.email);
    let mut active = member.into_active_model();
    active.version = Set(version + 1);
    active.name = Set(name);
    active.search_text = Set(search_text);
    active.password_hash = Set(Some(hash));
    active.status = Set(MemberStatus::Active.as_str().to_owned());
    active.updated_at = Set(Utc::now());
    let member = active.update(&*txn).await?;
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(member.id),
            action: "auth.invitation_accepted",
            target_type: "member",
            target_id: Some(member.id),
            details: json!({}),
            ip,
        },
    )
    .await?;
    let pair = issue_pair(state, &*txn, member, None).await?;
    txn.commit().await?;
    Ok(pair)
}

/// Mails a reset link when the address belongs to an active account; says nothing either way,
/// not even by taking longer: the lookup and the mail happen after the answer. Requests are
/// limited per address (known or not) and per client IP; one over a limit is answered the same
/// (API.md: "202 always") and sends nothing.
#[tracing::instrument(skip_all)]
pub async fn forgot_password(state: web::Data<AppState>, email: &str, ip: Option<String>) -> ApiResult<()> {
    let Ok(email) = Email::parse("email", email) else {
        return Ok(());
    };
    let auth = &state.settings.auth;
    let ip_limit = reset_ip_key(ip.as_deref().unwrap_or("unknown"));
    let keys = [
        (reset_account_key(email.as_str()), auth.max_reset_requests_per_account),
        (ip_limit, auth.max_reset_requests_per_ip),
    ];
    if state.throttle.take_attempts(&keys).await.is_err() {
        tracing::info!("a password reset request over its limit was not sent");
        return Ok(());
    }
    actix_web::rt::spawn(async move {
        if let Err(error) = queue_reset_if_active(&state, &email, ip).await {
            tracing::error!(error = %error, "could not queue a password reset");
        }
    });
    Ok(())
}

async fn queue_reset_if_active(state: &AppState, email: &Email, ip: Option<String>) -> ApiResult<()> {
    let found = member::Entity::find()
        .filter(member::Column::Email.eq(email.as_str()))
        .one(state.db.conn())
        .await?;
    let Some(member) = found.filter(|member| member.status == MemberStatus::Active.as_str()) else {
        return Ok(());
    };
    let txn = state.db.begin_write().await?;
    queue_password_reset(state, &*txn, &member).await?;
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(member.id),
            action: "auth.password_reset_requested",
            target_type: "member",
            target_id: Some(member.id),
            details: json!({}),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    state.mailer.do_send(mail::Wake);
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn reset_password(
    state: &AppState,
    token: &SecretString,
    password: &SecretString,
    ip: Option<String>,
) -> ApiResult<()> {
    let password = Password::parse("password", password).map_err(|error| ApiError::Validation(vec![error]))?;
    require_live_one_time(state, OpaqueKind::PasswordReset, token).await?;
    let hash = state.passwords.hash(password.secret()).await?;
    let txn = state.db.begin_write().await?;
    let member = consume_one_time(&*txn, OpaqueKind::PasswordReset, token).await?;
    if member.status != MemberStatus::Active.as_str() {
        return Err(ApiError::InvalidToken);
    }
    let email = member.email.clone();
    let (member_id, version) = (member.id, member.version);
    let mut active = member.into_active_model();
    active.password_hash = Set(Some(hash));
    active.updated_at = Set(Utc::now());
    active.version = Set(version + 1);
    active.update(&*txn).await?;
    revoke_sessions(&*txn, member_id).await?;
    audit::record(
        &*txn,
        AuditEntry {
            actor_id: Some(member_id),
            action: "auth.password_reset",
            target_type: "member",
            target_id: Some(member_id),
            details: json!({}),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    crate::realtime::revoke_member(state, member_id);
    // Proving control of the mailbox lifts any lock-out an attacker caused.
    state.throttle.clear(&account_key(&email)).await;
    Ok(())
}

/// Checks the password a member gives to change it. A stolen access token must not become a
/// way to guess the password without limit (and keep the account once the token expires), so
/// wrong guesses are counted per account and per address, as failed logins are. The account's
/// count is its own, not the login's: anyone can fail logins in a member's name, and that must
/// not stop the member, still logged in, from changing the password.
async fn verify_current_password(
    state: &AppState,
    member: &member::Model,
    current: &SecretString,
    ip: Option<String>,
) -> ApiResult<()> {
    let keys = [
        (
            password_change_key(member.id),
            state.settings.auth.max_failures_per_account,
        ),
        (
            ip_key(ip.as_deref().unwrap_or("unknown")),
            state.settings.auth.max_failures_per_ip,
        ),
    ];
    let counted = state
        .throttle
        .take_attempts(&keys)
        .await
        .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
    if !state.passwords.verify(current, member.password_hash.clone()).await? {
        return Err(ApiError::validation("password.current", "is not your current password"));
    }
    state.throttle.clear(&keys[0].0).await;
    state.throttle.forgive(&keys[1].0, counted[1]).await;
    Ok(())
}

/// Updates the caller's own profile; a new password needs the current one and ends every
/// session of the account, this one included: whoever changes it logs in again with it.
#[tracing::instrument(skip_all, fields(member_id = member.id))]
pub async fn update_me(
    state: &AppState,
    member: member::Model,
    ip: Option<String>,
    if_match: IfMatch,
    request: UpdateMeRequest,
) -> ApiResult<member::Model> {
    let mut validator = Validator::default();
    let name = request
        .name
        .as_deref()
        .and_then(|name| validator.check(required_line("name", name, 200)));
    let locale = request.locale.as_deref().and_then(|locale| {
        validator
            .check(Locale::from_db(locale).map_err(|_| crate::error::FieldError::new("locale", "must be en or es")))
    });
    let new_password = request
        .password
        .as_ref()
        .and_then(|change| validator.check(Password::parse("password.new", &change.new)));
    validator.finish()?;

    let new_hash = match (&request.password, new_password) {
        (Some(change), Some(new_password)) => {
            verify_current_password(state, &member, &change.current, ip).await?;
            Some(state.passwords.hash(new_password.secret()).await?)
        }
        _ => None,
    };

    let txn = state.db.begin_write().await?;
    let member_id = member.id;
    // Read again under the row's lock: the version checked is the one this update replaces.
    let member = member::Entity::find_by_id(member_id)
        .lock_exclusive()
        .one(&*txn)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if_match.check(member.version)?;
    let version = member.version;
    let email = member.email.clone();
    let mut active = member.into_active_model();
    active.version = Set(version + 1);
    if let Some(name) = name {
        active.search_text = Set(crate::search::member_text(&name, &email));
        active.name = Set(name);
    }
    if let Some(locale) = locale {
        active.locale = Set(locale.as_str().to_owned());
    }
    let password_changed = new_hash.is_some();
    if let Some(hash) = new_hash {
        active.password_hash = Set(Some(hash));
    }
    active.updated_at = Set(Utc::now());
    let mut updated = active.update(&*txn).await?;
    if password_changed {
        revoke_sessions(&*txn, member_id).await?;
        updated.token_version += 1;
        audit::record(
            &*txn,
            AuditEntry {
                actor_id: Some(member_id),
                action: "auth.password_changed",
                target_type: "member",
                target_id: Some(member_id),
                details: json!({}),
                ip: None,
            },
        )
        .await?;
    }
    txn.commit().await?;
    if password_changed {
        crate::realtime::revoke_member(state, member_id);
    }
    Ok(updated)
}

/// Issues an access token and a refresh token (in `family`, or a new family for a new login).
async fn issue_pair(
    state: &AppState,
    conn: &impl ConnectionTrait,
    member: member::Model,
    family: Option<String>,
) -> ApiResult<TokenPairResponse> {
    let (refresh_token, refresh_hash) = new_opaque(OpaqueKind::Refresh);
    let now = Utc::now();
    let family = family.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    refresh_token::ActiveModel {
        member_id: Set(member.id),
        family_id: Set(family.clone()),
        token_hash: Set(refresh_hash),
        expires_at: Set(now + Duration::days(state.settings.auth.refresh_token_ttl_days)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(TokenPairResponse {
        access_token: state.tokens.issue(member.id, member.token_version, &family)?,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl_secs(),
        member: member.into(),
    })
}

// SESSIONS_LOCK: every change to a member's sessions takes the member's row lock first (on
// PostgreSQL; SQLite runs one write at a time anyway): a refresh, a logout, and
// `revoke_sessions` (by updating the row). Without it a logout could revoke a family while a
// refresh of it was adding a token the logout's statement did not see, and the session would
// go on.

async fn revoke_family(conn: &impl ConnectionTrait, family_id: &str) -> ApiResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Ends every session of a member: access tokens (by bumping `token_version`), refresh tokens,
/// the calendar feed's secret URL, which whoever held the account could have made, and the
/// links not yet used (invitation, password reset).
pub async fn revoke_sessions(conn: &impl ConnectionTrait, member_id: i32) -> ApiResult<()> {
    calendar_feed::Entity::delete_by_id(member_id).exec(conn).await?;
    // The member's row first: that takes the lock a refresh holds (`SESSIONS_LOCK`), so the
    // refresh tokens' update below also sees a token a refresh in flight adds.
    member::Entity::update_many()
        .col_expr(
            member::Column::TokenVersion,
            Expr::col(member::Column::TokenVersion).add(1),
        )
        .filter(member::Column::Id.eq(member_id))
        .exec(conn)
        .await?;
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::MemberId.eq(member_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    // Links sent before (an invitation, a password reset) end with the sessions: an account
    // suspended because a link reached the wrong person cannot be taken through it later.
    one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::UsedAt, Expr::value(Utc::now()))
        .filter(one_time_token::Column::MemberId.eq(member_id))
        .filter(one_time_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    Ok(())
}

/// Creates a single-use token for `member`, voiding earlier unused ones of the same kind.
pub async fn issue_one_time(
    conn: &impl ConnectionTrait,
    member_id: i32,
    kind: OpaqueKind,
    ttl: Duration,
) -> ApiResult<String> {
    let now = Utc::now();
    one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::UsedAt, Expr::value(now))
        .filter(one_time_token::Column::MemberId.eq(member_id))
        .filter(one_time_token::Column::Purpose.eq(kind.as_str()))
        .filter(one_time_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    let (token, hash) = new_opaque(kind);
    one_time_token::ActiveModel {
        member_id: Set(member_id),
        purpose: Set(kind.as_str().to_owned()),
        token_hash: Set(hash),
        expires_at: Set(now + ttl),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(token)
}

/// Spends a single-use token of `kind` and returns its member.
/// Refuses a one-time token that is unknown, spent or expired, before the password that comes
/// with it is hashed: otherwise anyone could make the server hash at will with made-up tokens.
/// The hash is computed outside the write transaction (it takes tens of milliseconds), and
/// [`consume_one_time`] checks the token again inside it.
async fn require_live_one_time(state: &AppState, kind: OpaqueKind, token: &SecretString) -> ApiResult<()> {
    one_time_token::Entity::find()
        .filter(live_one_time(kind, token)?)
        .one(state.db.conn())
        .await?
        .map(|_| ())
        .ok_or(ApiError::InvalidToken)
}

/// The row of `token` if it is of `kind`, unspent and unexpired.
fn live_one_time(kind: OpaqueKind, token: &SecretString) -> ApiResult<Condition> {
    let hash = hash_opaque_of_kind(kind, token.expose_secret()).ok_or(ApiError::InvalidToken)?;
    Ok(Condition::all()
        .add(one_time_token::Column::TokenHash.eq(hash))
        .add(one_time_token::Column::Purpose.eq(kind.as_str()))
        .add(one_time_token::Column::UsedAt.is_null())
        .add(one_time_token::Column::ExpiresAt.gt(Utc::now())))
}

async fn consume_one_time(
    conn: &impl ConnectionTrait,
    kind: OpaqueKind,
    token: &SecretString,
) -> ApiResult<member::Model> {
    let hash = hash_opaque_of_kind(kind, token.expose_secret()).ok_or(ApiError::InvalidToken)?;
    let spent = one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::UsedAt, Expr::value(Utc::now()))
        .filter(live_one_time(kind, token)?)
        .exec(conn)
        .await?;
    if spent.rows_affected != 1 {
        return Err(ApiError::InvalidToken);
    }
    let stored = one_time_token::Entity::find()
        .filter(one_time_token::Column::TokenHash.eq(hash))
        .one(conn)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    member::Entity::find_by_id(stored.member_id)
        .one(conn)
        .await?
        .ok_or(ApiError::InvalidToken)
}

/// Queues an invitation mail with a fresh token (any earlier invitation stops working).
pub async fn queue_invitation(state: &AppState, conn: &impl ConnectionTrait, member: &member::Model) -> ApiResult<()> {
    let hours = state.settings.auth.invitation_ttl_hours;
    let token = issue_one_time(conn, member.id, OpaqueKind::Invitation, Duration::hours(hours)).await?;
    let link = state.settings.link("/invitation", &token);
    let locale = Locale::from_db(&member.locale)?;
    mail::enqueue(
        conn,
        &member.email,
        templates::invitation(locale, &member.name, &link, hours),
    )
    .await?;
    Ok(())
}

/// Queues a password-reset mail with a fresh token.
pub async fn queue_password_reset(
    state: &AppState,
    conn: &impl ConnectionTrait,
    member: &member::Model,
) -> ApiResult<()> {
    let hours = state.settings.auth.password_reset_ttl_hours;
    let token = issue_one_time(conn, member.id, OpaqueKind::PasswordReset, Duration::hours(hours)).await?;
    let link = state.settings.link("/password-reset", &token);
    let locale = Locale::from_db(&member.locale)?;
    mail::enqueue(
        conn,
        &member.email,
        templates::password_reset(locale, &member.name, &link, hours),
    )
    .await?;
    Ok(())
}
