//! Access tokens (JWT) and opaque tokens (refresh, invitation, password reset, feeds).
//!
//! Each kind is unmistakable: access tokens are JWTs with `typ = "access"`; opaque tokens carry
//! a prefix naming their purpose and are looked up by hash together with that purpose, so no
//! kind of token can stand in for another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::settings::AuthSettings;

const ACCESS_TYPE: &str = "access";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub typ: String,
    /// The member's `token_version` when issued; a bump revokes every older token.
    pub ver: i32,
    /// The login session (refresh-token family) it belongs to; logging that session out
    /// revokes it.
    pub sid: String,
}

impl AccessClaims {
    pub fn member_id(&self) -> Result<i32, ApiError> {
        self.sub.parse().map_err(|_| ApiError::Unauthorized)
    }
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_secs: i64,
}

impl AccessTokens {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let secret = settings.signing_secret()?;
        let secret = secret.expose_secret().as_bytes();
        // The algorithm is pinned: a token claiming any other `alg` is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        // Ours carry no `nbf`; one that says "not yet" is not taken now.
        validation.validate_nbf = true;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl_secs: settings.access_token_ttl_secs,
        })
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    pub fn issue(&self, member_id: i32, token_version: i32, session: &str) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            sub: member_id.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + self.ttl_secs,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            typ: ACCESS_TYPE.to_owned(),
            ver: token_version,
            sid: session.to_owned(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    pub fn decode(&self, token: &str) -> Result<AccessClaims, ApiError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized)?;
        if data.claims.typ != ACCESS_TYPE {
            return Err(ApiError::Unauthorized);
        }
        Ok(data.claims)
    }
}

/// What an opaque token is for; its prefix shows it and its lookup requires it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpaqueKind {
    Refresh,
    Invitation,
    PasswordReset,
    CalendarFeed,
}

impl OpaqueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpaqueKind::Refresh => "refresh",
            OpaqueKind::Invitation => "invitation",
            OpaqueKind::PasswordReset => "password_reset",
            OpaqueKind::CalendarFeed => "calendar_feed",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            OpaqueKind::Refresh => "dcr_",
            OpaqueKind::Invitation => "dci_",
            OpaqueKind::PasswordReset => "dcp_",
            OpaqueKind::CalendarFeed => "dcf_",
        }
    }
}

/// A fresh random token (256 bits) for `kind`, and the hash to store instead of it.
pub fn new_opaque(kind: OpaqueKind) -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_opaque(&token);
    (token, hash)
}

/// The stored form of an opaque token, or `None` when it is not of the expected kind.
pub fn hash_opaque_of_kind(kind: OpaqueKind, token: &str) -> Option<String> {
    token.starts_with(kind.prefix()).then(|| hash_opaque(token))
}

fn hash_opaque(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
