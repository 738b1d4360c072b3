//! A folded copy of each publication's title and summaries (`search_text`), so that the public
//! search is accent- and case-insensitive on SQLite as on PostgreSQL: SQLite's `lower()` and
//! `LIKE` fold ASCII letters only, so "índice" did not find "Índice" there, and neither
//! database found it from "indice".

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Publications::Table)
                    .add_column(ColumnDef::new(Publications::SearchText).text().not_null().default(""))
                    .to_owned(),
            )
            .await?;
        fill_search_text(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Publications::Table)
                    .drop_column(Publications::SearchText)
                    .to_owned(),
            )
            .await
    }
}

/// Folds the text of every publication there is.
async fn fill_search_text(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let rows = Query::select()
        .columns([
            Publications::Id,
            Publications::Title,
            Publications::SummaryEn,
            Publications::SummaryEs,
        ])
        .from(Publications::Table)
        .to_owned();
    for row in db.query_all(&rows).await? {
        let text = [Publications::Title, Publications::SummaryEn, Publications::SummaryEs]
            .into_iter()
            .map(|column| row.try_get::<String>("", &column.to_string()))
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        let update = Query::update()
            .table(Publications::Table)
            .value(Publications::SearchText, fold(&text))
            .and_where(Expr::col(Publications::Id).eq(row.try_get::<i32>("", "id")?))
            .to_owned();
        db.execute(&update).await?;
    }
    Ok(())
}

/// The folding of `dcports::search::fold` when this migration was written, kept here as it
/// was: a migration must go on writing what it wrote then (a test compares the two).
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(DeriveIden)]
enum Publications {
    Table,
    Id,
    Title,
    SummaryEn,
    SummaryEs,
    SearchText,
}
