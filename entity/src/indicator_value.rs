use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "indicator_values")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub indicator_id: i32,
    pub port_id: i32,
    pub year: i32,
    pub value: f64,
    pub status: String,
    pub submitted_by: i32,
    pub validated_by: Option<i32>,
    pub submitted_at: DateTimeUtc,
    pub validated_at: Option<DateTimeUtc>,
    /// Moves on every submission and review; `If-Match` on a review names the value reviewed.
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
