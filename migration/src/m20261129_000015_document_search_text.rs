//! A folded copy of each document's title and description (`search_text`), so that the
//! workspace's document search is accent- and case-insensitive on SQLite as on PostgreSQL, as
//! the public search became with migration 000013 ("organizacion" finds "Organización").

use sea_orm_migration::prelude::*;

use crate::folded_text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Deleted documents too: a deletion is soft and may be reviewed.
        folded_text::add(manager, Documents::Table, &["title", "description"]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        folded_text::drop(manager, Documents::Table).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Documents {
    Table,
}
