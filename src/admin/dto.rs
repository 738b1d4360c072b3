//! Request and response bodies of `/api/admin/members` and `/api/admin/audit`.

use chrono::{DateTime, Utc};
use entity::audit_log;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::{Locale, Role};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMemberRequest {
    pub email: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub role: Role,
    pub organization_id: Option<i32>,
    pub locale: Option<Locale>,
}

/// Status changes the secretariat may make; `invited` is reached only by creating or re-inviting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdminStatusChange {
    Active,
    Suspended,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemberRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub role: Option<Role>,
    pub status: Option<AdminStatusChange>,
    /// `null` detaches the member from its organization.
    #[serde(default, with = "serde_with_double_option")]
    #[schema(value_type = Option<i32>)]
    pub organization_id: Option<Option<i32>>,
}

/// Distinguishes a missing field (no change) from an explicit `null` (clear it).
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberFilter {
    /// Text in the name or email; accents, case and runs of spaces do not matter.
    pub q: Option<String>,
    #[param(value_type = Option<crate::domain::MemberStatus>, inline)]
    pub status: Option<String>,
    pub committee_id: Option<i32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    pub actor_id: Option<i32>,
    pub action: Option<String>,
    /// RFC 3339; only entries at or after it.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryResponse {
    pub id: i32,
    pub at: DateTime<Utc>,
    pub actor_id: Option<i32>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<i32>,
    pub details: serde_json::Value,
}

impl From<audit_log::Model> for AuditEntryResponse {
    fn from(entry: audit_log::Model) -> Self {
        Self {
            id: entry.id,
            at: entry.at,
            actor_id: entry.actor_id,
            action: entry.action,
            target_type: entry.target_type,
            target_id: entry.target_id,
            details: entry.details,
        }
    }
}
