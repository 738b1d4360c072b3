use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "publications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub document_id: i32,
    pub version_number: i32,
    pub kind: String,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub summary_en: String,
    #[sea_orm(column_type = "Text")]
    pub summary_es: String,
    pub country_codes: Json,
    pub status: String,
    pub requested_by: i32,
    pub requested_at: DateTimeUtc,
    pub reviewed_by: Option<i32>,
    pub reviewed_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    pub published_at: Option<DateTimeUtc>,
    /// Title and summaries folded by `search::index_text`, for the accent-insensitive search.
    #[sea_orm(column_type = "Text")]
    pub search_text: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
