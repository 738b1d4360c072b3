//! The agenda as it was published (its top-level items, as JSON), so that the public area shows
//! what the chair published, not the committee's later edits before the next publication.
//! A meeting whose agenda was published before keeps what the public saw the moment before
//! this migration: its current top-level items.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

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
            .await?;
        keep_what_the_public_saw(manager).await
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

/// Fills `published_agenda` of every meeting published so far, from its top-level items in
/// agenda order, in the shape `public::data::agenda_to_publish` writes.
async fn keep_what_the_public_saw(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let published = Query::select()
        .column(Meetings::Id)
        .from(Meetings::Table)
        .and_where(Expr::col(Meetings::AgendaPublishedAt).is_not_null())
        .to_owned();
    for meeting in db.query_all(&published).await? {
        let meeting_id: i32 = meeting.try_get("", "id")?;
        let items = Query::select()
            .columns([
                AgendaItems::Id,
                AgendaItems::Title,
                AgendaItems::Kind,
                AgendaItems::DurationMinutes,
            ])
            .from(AgendaItems::Table)
            .and_where(Expr::col(AgendaItems::MeetingId).eq(meeting_id))
            .and_where(Expr::col(AgendaItems::ParentId).is_null())
            .order_by(AgendaItems::Position, Order::Asc)
            .order_by(AgendaItems::Id, Order::Asc)
            .to_owned();
        let mut agenda = Vec::new();
        for item in db.query_all(&items).await? {
            agenda.push(serde_json::json!({
                "id": item.try_get::<i32>("", "id")?,
                "title": item.try_get::<String>("", "title")?,
                "kind": item.try_get::<String>("", "kind")?,
                "duration_minutes": item.try_get::<i32>("", "duration_minutes")?,
            }));
        }
        let update = Query::update()
            .table(Meetings::Table)
            .value(Meetings::PublishedAgenda, serde_json::Value::Array(agenda).to_string())
            .and_where(Expr::col(Meetings::Id).eq(meeting_id))
            .to_owned();
        db.execute(&update).await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum Meetings {
    Table,
    Id,
    AgendaPublishedAt,
    PublishedAgenda,
}

#[derive(DeriveIden)]
enum AgendaItems {
    Table,
    Id,
    MeetingId,
    ParentId,
    Position,
    Title,
    Kind,
    DurationMinutes,
}
