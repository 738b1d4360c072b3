//! The secretariat's review queue lists the values in one status oldest first, a page at a time:
//! an index on (status, id) makes each page a range scan.

use sea_orm_migration::prelude::*;

use crate::m20261128_000001_foundation::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_indicator_values_status_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            IndicatorValues::Table,
            INDEX,
            &[IndicatorValues::Status, IndicatorValues::Id],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(IndicatorValues::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum IndicatorValues {
    Table,
    Id,
    Status,
}
