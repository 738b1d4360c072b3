use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agenda_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub meeting_id: i32,
    pub parent_id: Option<i32>,
    pub position: i32,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: String,
    pub kind: String,
    pub duration_minutes: i32,
    pub presenter_id: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome: Option<String>,
    pub actual_started_at: Option<DateTimeUtc>,
    pub actual_seconds: i32,
    pub changed_after_finalized: bool,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
