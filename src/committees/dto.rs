//! Request and response bodies of the committee endpoints.

use chrono::{DateTime, Utc};
use entity::committee;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::string_enum;

string_enum!(
    /// The bodies of the Network's governance.
    CommitteeKind { Steering => "steering", Technical => "technical", Experts => "experts", WorkingGroup => "working_group" }
);

string_enum!(
    /// A member's role inside one committee.
    CommitteeRole { Chair => "chair", Member => "member", Observer => "observer" }
);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCommitteeRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub kind: CommitteeKind,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCommitteeRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    pub archived: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembershipRequest {
    pub role: CommitteeRole,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommitteeResponse {
    pub id: i32,
    pub name: String,
    pub kind: String,
    pub description: String,
    pub archived: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The caller's role in it; absent for the secretariat when not a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_role: Option<String>,
}

impl CommitteeResponse {
    pub fn new(committee: committee::Model, my_role: Option<String>) -> Self {
        Self {
            id: committee.id,
            name: committee.name,
            kind: committee.kind,
            description: committee.description,
            archived: committee.archived,
            version: committee.version,
            created_at: committee.created_at,
            updated_at: committee.updated_at,
            my_role,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommitteeMemberResponse {
    pub id: i32,
    pub name: String,
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct CommitteeDetailResponse {
    #[serde(flatten)]
    pub committee: CommitteeResponse,
    pub members: Vec<CommitteeMemberResponse>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MembershipResponse {
    pub committee_id: i32,
    pub member_id: i32,
    pub role: String,
}
