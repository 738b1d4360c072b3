//! A version on accounts (API.md: resources carry `version`; `PATCH` takes `If-Match`), so that
//! two people editing one account, or one person in two tabs, do not silently undo each other.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Members::Table)
                    .add_column(ColumnDef::new(Members::Version).integer().not_null().default(1))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Members::Table)
                    .drop_column(Members::Version)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Members {
    Table,
    Version,
}
