//! Request and response bodies of the directory endpoints.

use entity::{contact, organization};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::string_enum;

string_enum!(
    /// What kind of body an organization is.
    OrganizationKind {
        Ministry => "ministry",
        PortAuthority => "port_authority",
        PortCommunity => "port_community",
        Customs => "customs",
        Private => "private",
        Academia => "academia",
        Multilateral => "multilateral",
        Secretariat => "secretariat",
    }
);

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct OrganizationRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub kind: OrganizationKind,
    pub country_code: Option<String>,
    pub port_community_id: Option<i32>,
    pub website: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OrganizationResponse {
    pub id: i32,
    pub name: String,
    pub kind: String,
    pub country_code: Option<String>,
    pub port_community_id: Option<i32>,
    pub website: Option<String>,
}

impl From<organization::Model> for OrganizationResponse {
    fn from(row: organization::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            kind: row.kind,
            country_code: row.country_code,
            port_community_id: row.port_community_id,
            website: row.website,
        }
    }
}

#[derive(Deserialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    pub organization_id: i32,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(max_length = 200)]
    pub position: Option<String>,
    pub email: Option<String>,
    #[schema(max_length = 64)]
    pub phone: Option<String>,
    /// Only public contacts appear in the public directory.
    pub public: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ContactResponse {
    pub id: i32,
    pub organization_id: i32,
    pub name: String,
    pub position: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub public: bool,
}

impl From<contact::Model> for ContactResponse {
    fn from(row: contact::Model) -> Self {
        Self {
            id: row.id,
            organization_id: row.organization_id,
            name: row.name,
            position: row.position,
            email: row.email,
            phone: row.phone,
            public: row.public,
        }
    }
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct DirectoryFilter {
    /// A member country's code.
    pub country: Option<String>,
    #[param(value_type = Option<OrganizationKind>, inline)]
    pub kind: Option<String>,
    pub port_community: Option<i32>,
    /// Words of a name, position or organization; accents and case do not matter.
    pub q: Option<String>,
}

/// Who will open the export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportReader {
    /// Programs: comma-separated UTF-8, LF line ends (RFC 4180 but for the line ends).
    #[default]
    Programs,
    /// A spreadsheet opened with a double click: semicolon-separated, since Excel splits CSV
    /// at the locale's list separator and in Spanish and Portuguese that is `;`; a UTF-8
    /// byte-order mark, without which Excel reads the accents as Windows-1252; CRLF line ends.
    /// The import reads it back as it is.
    Spreadsheet,
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `programs` (the default) or `spreadsheet`.
    #[serde(rename = "for", default)]
    #[param(rename = "for", inline)]
    pub reader: ExportReader,
}

/// A public directory entry.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DirectoryEntry {
    pub id: i32,
    pub name: String,
    pub position: String,
    pub organization: String,
    pub kind: String,
    pub country_code: Option<String>,
    pub port_community_id: Option<i32>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub website: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportReport {
    pub organizations_created: usize,
    /// Organizations the directory already had (by name and country), brought up to the file's
    /// kind, port community and website.
    pub organizations_updated: usize,
    pub contacts_created: usize,
    /// Rows naming a contact the organization already has (by name): updated, not added again.
    pub contacts_updated: usize,
}
