//! The document a meeting's minutes are filed in, linked from the meeting: found by this link,
//! never by a tag anyone could put on a document of their own.

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
                    .add_column(ColumnDef::new(Meetings::MinutesDocumentId).integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Meetings::Table)
                    .drop_column(Meetings::MinutesDocumentId)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Meetings {
    Table,
    MinutesDocumentId,
}
