//! A version on indicator values, so that a review applies to the value the reviewer saw: a
//! port that resubmits in between moves the version, and a review sent with the old one fails.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IndicatorValues::Table)
                    .add_column(ColumnDef::new(IndicatorValues::Version).integer().not_null().default(1))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IndicatorValues::Table)
                    .drop_column(IndicatorValues::Version)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum IndicatorValues {
    Table,
    Version,
}
