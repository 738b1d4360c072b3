use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ports")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub port_community_id: i32,
    pub name: String,
    #[sea_orm(unique)]
    pub unlocode: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
