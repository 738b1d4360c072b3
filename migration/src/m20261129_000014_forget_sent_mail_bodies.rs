//! Blanks the bodies of messages already sent or given up. They may hold invitation and reset
//! links, which the database otherwise keeps only as hashes; from this version on, the mailer
//! blanks a body as soon as its message is sent or given up, and this does the same for what it
//! sent before. Nothing to undo: the links are gone once and for all.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let forget = Query::update()
            .table(MailQueue::Table)
            .value(MailQueue::BodyText, "")
            .value(MailQueue::BodyHtml, Option::<String>::None)
            .cond_where(
                Cond::any()
                    .add(Expr::col(MailQueue::SentAt).is_not_null())
                    .add(Expr::col(MailQueue::FailedAt).is_not_null()),
            )
            .to_owned();
        manager.exec_stmt(forget).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

#[derive(DeriveIden)]
enum MailQueue {
    Table,
    BodyText,
    BodyHtml,
    SentAt,
    FailedAt,
}
