//! Extractors: who is calling, and from where.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use entity::{member, refresh_token};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::auth::tokens::AccessClaims;
use crate::domain::{MemberStatus, Role};
use crate::error::{ApiError, ApiResult};
use crate::group_commit::{Batch, MemoKey};
use crate::state::AppState;

/// An authenticated, active member whose token has not been revoked.
///
/// The member row is read on every request: that is what makes a suspension or a password
/// change take effect on the very next request.
#[derive(Clone, Debug)]
pub struct CurrentMember(pub member::Model);

impl CurrentMember {
    pub fn id(&self) -> i32 {
        self.0.id
    }

    pub fn is_secretariat(&self) -> bool {
        self.0.role == Role::Secretariat.as_str()
    }
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is not registered")))
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

/// Resolves an access token to its member, refusing suspended accounts and revoked tokens.
pub async fn authenticate(state: &AppState, token: &str) -> Result<member::Model, ApiError> {
    authorize(state, &state.tokens.decode(token)?).await
}

/// The member an already decoded access token names, if it is still good.
pub async fn authorize(state: &AppState, claims: &AccessClaims) -> Result<member::Model, ApiError> {
    member_still_authorized(state, claims.member_id()?, claims.ver, &claims.sid).await
}

/// Reloads the member a token names, refusing a suspended account, a token of an older
/// `token_version` (revoked since it was issued, or since a socket authenticated with it) and
/// one whose login session has ended (logout, or a stolen refresh token detected). One query:
/// the session's check rides on the member read every request makes anyway (task writes make
/// it in their batch: [`authorize_in`]).
pub async fn member_still_authorized(
    state: &AppState,
    member_id: i32,
    token_version: i32,
    session: &str,
) -> Result<member::Model, ApiError> {
    still_authorized_on(state.db.conn(), member_id, token_version, session).await
}

/// [`member_still_authorized`] on `conn`.
async fn still_authorized_on(
    conn: &impl ConnectionTrait,
    member_id: i32,
    token_version: i32,
    session: &str,
) -> Result<member::Model, ApiError> {
    let session_open = Query::select()
        .expr(Expr::val(1))
        .from(refresh_token::Entity)
        .and_where(refresh_token::Column::FamilyId.eq(session))
        // The session must be this member's own: another member's open session, named in a
        // token signed with a leaked key, must not vouch for it.
        .and_where(refresh_token::Column::MemberId.eq(member_id))
        .and_where(refresh_token::Column::RevokedAt.is_null())
        .to_owned();
    member::Entity::find_by_id(member_id)
        .filter(member::Column::Status.eq(MemberStatus::Active.as_str()))
        .filter(member::Column::TokenVersion.eq(token_version))
        .filter(Expr::exists(session_open))
        .one(conn)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// Reloads a member by id, refusing accounts that are no longer active.
pub async fn member_by_id(state: &AppState, member_id: i32) -> Result<member::Model, ApiError> {
    member::Entity::find_by_id(member_id)
        .one(state.db.conn())
        .await?
        .filter(|member| member.status == MemberStatus::Active.as_str())
        .ok_or(ApiError::Unauthorized)
}

impl FromRequest for CurrentMember {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state?;
            let token = token.ok_or(ApiError::Unauthorized)?;
            Ok(CurrentMember(authenticate(&state, &token).await?))
        })
    }
}

/// The caller of a write that checks the account inside its own transaction: a genuine,
/// unexpired access token, not yet checked against the database. The write must call
/// [`authorize_in`] before anything else, and gets the member from it.
///
/// For the writes that wait on a group-commit lane (tasks): there, the writes of a batch by one
/// login session share one check, made inside the batch's transaction after every one of them
/// was queued. That is no weaker than checking each on arrival, as [`CurrentMember`] does, and
/// the writes of one session in a batch pay one query between them. (Action items read the
/// meeting first, so they also check on arrival: [`CallerToken::authorize`].) Every other
/// endpoint takes [`CurrentMember`].
///
/// Not `Debug`: its claims name the login session, which has no business in a log.
#[derive(Clone)]
pub struct CallerToken {
    member_id: i32,
    claims: AccessClaims,
}

impl CallerToken {
    /// The member the token names: genuine (signed by us), but not yet checked to still stand.
    pub fn member_id(&self) -> i32 {
        self.member_id
    }

    /// The member, checked now as [`CurrentMember`] is: for what must be read before the write
    /// is queued.
    pub async fn authorize(&self, state: &AppState) -> ApiResult<member::Model> {
        authorize(state, &self.claims).await
    }
}

impl FromRequest for CallerToken {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let decode = || {
            let token = bearer_token(req).ok_or(ApiError::Unauthorized)?;
            let claims = app_state(req)?.tokens.decode(&token)?;
            Ok(CallerToken {
                member_id: claims.member_id()?,
                claims,
            })
        };
        std::future::ready(decode())
    }
}

/// The member `caller` names, if the token still stands ([`member_still_authorized`]), read in
/// `batch` once for each login session and token version.
pub async fn authorize_in(batch: &Batch, caller: &CallerToken) -> ApiResult<member::Model> {
    let CallerToken { member_id, claims } = caller;
    let key = MemoKey::with_text("caller", *member_id, claims.ver, &claims.sid);
    let check = still_authorized_on(&**batch, *member_id, claims.ver, &claims.sid);
    batch.shared_read(key, check).await
}

/// A member of SELA's secretariat; anyone else authenticated gets 403.
pub struct Secretariat(pub CurrentMember);

impl FromRequest for Secretariat {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let member = CurrentMember::from_request(req, payload);
        Box::pin(async move {
            let member = member.await?;
            if !member.is_secretariat() {
                return Err(ApiError::Forbidden);
            }
            Ok(Secretariat(member))
        })
    }
}

/// The client's address: the peer, or `X-Forwarded-For` when the peer is a trusted proxy.
#[derive(Clone, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    pub fn of(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Self {
        let peer = req.peer_addr().map(|addr| addr.ip());
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        let Some(peer) = peer.filter(is_trusted) else {
            return ClientIp(peer);
        };
        // Walk the chain from the nearest hop; the first address we do not trust is the client.
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        let client = forwarded.iter().rev().find(|ip| !is_trusted(ip)).copied();
        ClientIp(Some(client.or(forwarded.first().copied()).unwrap_or(peer)))
    }

    pub fn to_text(&self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(app_state(req).map(|state| ClientIp::of(req, &state.settings.server.trusted_proxies)))
    }
}
