//! A folded copy of each member's name and email (`search_text`), so that the secretariat's
//! member search is accent- and case-insensitive on SQLite as on PostgreSQL ("jose" finds
//! "José"), as the document search became with migration 000015.

use sea_orm_migration::prelude::*;

use crate::folded_text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        folded_text::add(manager, Members::Table, &["name", "email"]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        folded_text::drop(manager, Members::Table).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Members {
    Table,
}
