//! The folded search columns hold the text of several fields together (an organization's name
//! and website can fold to 701 characters), so PostgreSQL stores them as `text` with no length
//! limit, as SQLite always did. Folding may also lengthen text (ß becomes ss).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 3] = ["port_communities", "organizations", "contacts"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        alter(manager, "text").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Back to the longest of the old limits; rows longer than that would not fit.
        alter(manager, "varchar(800)").await
    }
}

/// SQLite does not enforce a column's length and cannot change a column's type: nothing to do.
async fn alter(manager: &SchemaManager<'_>, column_type: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    for table in TABLES {
        let sql = format!("ALTER TABLE {table} ALTER COLUMN search_text TYPE {column_type}");
        manager.get_connection().execute_unprepared(&sql).await?;
    }
    Ok(())
}
