//! Adding a folded `search_text` column to a table and filling it from some of its text columns,
//! as migrations 000013, 000015 and 000016 do. Frozen, with the folding it uses: a migration
//! goes on writing what it wrote then, and a later one that needs something else writes its own.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

#[derive(DeriveIden)]
enum Column {
    Id,
    SearchText,
}

/// Adds `search_text` to `table` and fills each row's with the folded `sources`, joined by spaces.
pub async fn add(manager: &SchemaManager<'_>, table: impl IntoIden + Copy, sources: &[&str]) -> Result<(), DbErr> {
    manager
        .alter_table(
            Table::alter()
                .table(table)
                .add_column(ColumnDef::new(Column::SearchText).text().not_null().default(""))
                .to_owned(),
        )
        .await?;
    let db = manager.get_connection();
    let mut columns = vec![Alias::new(Column::Id.to_string())];
    columns.extend(sources.iter().map(|source| Alias::new(*source)));
    let rows = Query::select().columns(columns).from(table).to_owned();
    for row in db.query_all(&rows).await? {
        let text = sources
            .iter()
            .map(|source| row.try_get::<String>("", source))
            .collect::<Result<Vec<_>, _>>()?
            .join(" ");
        let update = Query::update()
            .table(table)
            .value(Column::SearchText, fold(&text))
            .and_where(Expr::col(Column::Id).eq(row.try_get::<i32>("", "id")?))
            .to_owned();
        db.execute(&update).await?;
    }
    Ok(())
}

/// Drops `search_text` from `table`.
pub async fn drop(manager: &SchemaManager<'_>, table: impl IntoIden) -> Result<(), DbErr> {
    manager
        .alter_table(Table::alter().table(table).drop_column(Column::SearchText).to_owned())
        .await
}

/// The folding of `dcports::search::fold` when migration 000013 was written, kept here as it was
/// (a test compares the two).
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}
