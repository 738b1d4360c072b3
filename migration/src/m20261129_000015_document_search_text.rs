//! A folded copy of each document's title and description (`search_text`), so that the
//! workspace's document search is accent- and case-insensitive on SQLite as on PostgreSQL, as
//! the public search became with migration 000013 ("organizacion" finds "Organización").

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
                    .table(Documents::Table)
                    .add_column(ColumnDef::new(Documents::SearchText).text().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        fill_search_text(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Documents::Table)
                    .drop_column(Documents::SearchText)
                    .to_owned(),
            )
            .await
    }
}

/// Folds the title and description of every document there is, deleted ones included (a
/// deletion is soft and may be reviewed).
async fn fill_search_text(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let rows = Query::select()
        .columns([Documents::Id, Documents::Title, Documents::Description])
        .from(Documents::Table)
        .to_owned();
    for row in db.query_all(&rows).await? {
        let title: String = row.try_get("", "title")?;
        let description: String = row.try_get("", "description")?;
        let update = Query::update()
            .table(Documents::Table)
            .value(Documents::SearchText, fold(&format!("{title} {description}")))
            .and_where(Expr::col(Documents::Id).eq(row.try_get::<i32>("", "id")?))
            .to_owned();
        db.execute(&update).await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum Documents {
    Table,
    Id,
    Title,
    Description,
    SearchText,
}
