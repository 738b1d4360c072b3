//! A folded copy of each publication's title and summaries (`search_text`), so that the public
//! search is accent- and case-insensitive on SQLite as on PostgreSQL: SQLite's `lower()` and
//! `LIKE` fold ASCII letters only, so "índice" did not find "Índice" there, and neither
//! database found it from "indice".

use sea_orm_migration::prelude::*;

use crate::folded_text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        folded_text::add(manager, Publications::Table, &["title", "summary_en", "summary_es"]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        folded_text::drop(manager, Publications::Table).await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Publications {
    Table,
}
