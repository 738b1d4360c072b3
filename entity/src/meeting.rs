use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "meetings")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub committee_id: i32,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub timezone: String,
    pub location: Option<String>,
    pub online_url: Option<String>,
    pub public: bool,
    pub status: String,
    pub agenda_status: String,
    pub agenda_published_at: Option<DateTimeUtc>,
    /// The agenda's top-level items as published (JSON), which the public area shows.
    #[sea_orm(column_type = "Text", nullable)]
    pub published_agenda: Option<String>,
    pub uid: String,
    pub sequence: i32,
    pub version: i32,
    pub created_by: i32,
    pub reminder_sent_at: Option<DateTimeUtc>,
    pub live_item_id: Option<i32>,
    pub live_item_started_at: Option<DateTimeUtc>,
    pub live_paused_at: Option<DateTimeUtc>,
    pub live_started_at: Option<DateTimeUtc>,
    pub live_ended_at: Option<DateTimeUtc>,
    /// The document the minutes were filed in (its owner is the meeting's committee).
    pub minutes_document_id: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
