//! A folded copy of each member's name and email (`search_text`), so that the secretariat's
//! member search is accent- and case-insensitive on SQLite as on PostgreSQL ("jose" finds
//! "José"), as the document search became with migration 000015.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

// The folding frozen with migration 000013: a migration goes on writing what it wrote then.
use crate::m20261129_000013_publication_search_text::fold;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Members::Table)
                    .add_column(ColumnDef::new(Members::SearchText).text().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        fill_search_text(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Members::Table)
                    .drop_column(Members::SearchText)
                    .to_owned(),
            )
            .await
    }
}

/// Folds the name and email of every member there is.
async fn fill_search_text(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let rows = Query::select()
        .columns([Members::Id, Members::Name, Members::Email])
        .from(Members::Table)
        .to_owned();
    for row in db.query_all(&rows).await? {
        let name: String = row.try_get("", "name")?;
        let email: String = row.try_get("", "email")?;
        let update = Query::update()
            .table(Members::Table)
            .value(Members::SearchText, fold(&format!("{name} {email}")))
            .and_where(Expr::col(Members::Id).eq(row.try_get::<i32>("", "id")?))
            .to_owned();
        db.execute(&update).await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum Members {
    Table,
    Id,
    Name,
    Email,
    SearchText,
}
