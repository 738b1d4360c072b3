//! Request and response bodies of `/api/auth` and `/api/me`.

use chrono::{DateTime, Utc};
use entity::member;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct AcceptInvitationRequest {
    #[schema(value_type = String)]
    pub token: SecretString,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    pub password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct ForgotPasswordRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetPasswordRequest {
    #[schema(value_type = String)]
    pub token: SecretString,
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    pub password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    #[schema(value_type = String, format = Password)]
    pub current: SecretString,
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 128)]
    pub new: SecretString,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub locale: Option<String>,
    pub password: Option<PasswordChange>,
}

/// A committee the member belongs to, with their role in it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MembershipSummary {
    pub id: i32,
    pub name: String,
    pub role: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    pub id: i32,
    pub email: String,
    pub name: String,
    pub role: String,
    pub status: String,
    pub locale: String,
    pub organization_id: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Moves on every change: send it as `If-Match` with a PATCH.
    pub version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committees: Option<Vec<MembershipSummary>>,
}

impl From<member::Model> for MemberResponse {
    fn from(member: member::Model) -> Self {
        Self {
            id: member.id,
            email: member.email,
            name: member.name,
            role: member.role,
            status: member.status,
            locale: member.locale,
            organization_id: member.organization_id,
            created_at: member.created_at,
            updated_at: member.updated_at,
            version: member.version,
            committees: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenPairResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub member: MemberResponse,
}
