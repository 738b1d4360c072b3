//! The agenda as it was published (its top-level items, as JSON), so that the public area shows
//! what the chair published, not the committee's later edits before the next publication.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Meetings::Table)
                    .add_column(ColumnDef::new(Meetings::PublishedAgenda).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Meetings::Table)
                    .drop_column(Meetings::PublishedAgenda)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Meetings {
    Table,
    PublishedAgenda,
}
