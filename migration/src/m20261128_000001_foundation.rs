//! Accounts, tokens, organizations, the audit log and the mail queue.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(pk_auto(Organizations::Id))
                    .col(string_len(Organizations::Name, 200))
                    .col(string_len(Organizations::Kind, 32))
                    .col(string_len_null(Organizations::CountryCode, 2))
                    .col(string_len_null(Organizations::Website, 500))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Members::Table)
                    .col(pk_auto(Members::Id))
                    // Stored lower-cased, so the unique index is case-insensitive.
                    .col(string_len_uniq(Members::Email, 254))
                    .col(string_len(Members::Name, 200))
                    .col(string_len_null(Members::PasswordHash, 255))
                    .col(string_len(Members::Role, 32))
                    .col(string_len(Members::Status, 32))
                    .col(string_len(Members::Locale, 8))
                    .col(integer_null(Members::OrganizationId))
                    .col(integer(Members::TokenVersion).default(0))
                    .col(timestamp_with_time_zone(Members::CreatedAt))
                    .col(timestamp_with_time_zone(Members::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Members::Table, Members::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, Members::Table, "idx_members_status", &[Members::Status]).await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(pk_auto(RefreshTokens::Id))
                    .col(integer(RefreshTokens::MemberId))
                    .col(string_len(RefreshTokens::FamilyId, 36))
                    .col(string_len_uniq(RefreshTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::MemberId)
                            .to(Members::Table, Members::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            RefreshTokens::Table,
            "idx_refresh_tokens_member",
            &[RefreshTokens::MemberId],
        )
        .await?;
        index(
            manager,
            RefreshTokens::Table,
            "idx_refresh_tokens_family",
            &[RefreshTokens::FamilyId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(OneTimeTokens::Table)
                    .col(pk_auto(OneTimeTokens::Id))
                    .col(integer(OneTimeTokens::MemberId))
                    .col(string_len(OneTimeTokens::Purpose, 32))
                    .col(string_len_uniq(OneTimeTokens::TokenHash, 64))
                    .col(timestamp_with_time_zone(OneTimeTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(OneTimeTokens::UsedAt))
                    .col(timestamp_with_time_zone(OneTimeTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OneTimeTokens::Table, OneTimeTokens::MemberId)
                            .to(Members::Table, Members::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            OneTimeTokens::Table,
            "idx_one_time_tokens_member",
            &[OneTimeTokens::MemberId, OneTimeTokens::Purpose],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(integer_null(AuditLog::ActorId))
                    .col(string_len(AuditLog::Action, 64))
                    .col(string_len(AuditLog::TargetType, 32))
                    .col(integer_null(AuditLog::TargetId))
                    .col(json(AuditLog::Details))
                    .col(string_len_null(AuditLog::Ip, 64))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            AuditLog::Table,
            "idx_audit_log_actor",
            &[AuditLog::ActorId, AuditLog::Id],
        )
        .await?;
        index(
            manager,
            AuditLog::Table,
            "idx_audit_log_action",
            &[AuditLog::Action, AuditLog::Id],
        )
        .await?;
        index(manager, AuditLog::Table, "idx_audit_log_at", &[AuditLog::At]).await?;

        manager
            .create_table(
                Table::create()
                    .table(MailQueue::Table)
                    .col(pk_auto(MailQueue::Id))
                    .col(string_len(MailQueue::ToAddress, 254))
                    .col(string_len(MailQueue::Subject, 300))
                    .col(text(MailQueue::BodyText))
                    .col(text_null(MailQueue::BodyHtml))
                    .col(integer(MailQueue::Attempts).default(0))
                    .col(timestamp_with_time_zone(MailQueue::NextAttemptAt))
                    .col(timestamp_with_time_zone_null(MailQueue::SentAt))
                    .col(timestamp_with_time_zone_null(MailQueue::FailedAt))
                    .col(text_null(MailQueue::LastError))
                    .col(timestamp_with_time_zone(MailQueue::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            MailQueue::Table,
            "idx_mail_queue_due",
            &[MailQueue::SentAt, MailQueue::FailedAt, MailQueue::NextAttemptAt],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            MailQueue::Table.into_iden(),
            AuditLog::Table.into_iden(),
            OneTimeTokens::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Members::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

/// Creates a plain (non-unique) index; every list query is backed by one.
pub(crate) async fn index<T, C>(manager: &SchemaManager<'_>, table: T, name: &str, columns: &[C]) -> Result<(), DbErr>
where
    T: IntoIden + Copy + 'static,
    C: IntoIden + Copy + 'static,
{
    let mut statement = Index::create();
    statement.name(name).table(table);
    for column in columns {
        statement.col(*column);
    }
    manager.create_index(statement.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Organizations {
    Table,
    Id,
    Name,
    Kind,
    CountryCode,
    Website,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Members {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Role,
    Status,
    Locale,
    OrganizationId,
    TokenVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    Id,
    MemberId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum OneTimeTokens {
    Table,
    Id,
    MemberId,
    Purpose,
    TokenHash,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorId,
    Action,
    TargetType,
    TargetId,
    Details,
    Ip,
}

#[derive(DeriveIden, Clone, Copy)]
enum MailQueue {
    Table,
    Id,
    ToAddress,
    Subject,
    BodyText,
    BodyHtml,
    Attempts,
    NextAttemptAt,
    SentAt,
    FailedAt,
    LastError,
    CreatedAt,
}
