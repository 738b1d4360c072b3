//! Shared documents: versions, shares with other committees, tags, and publication requests.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_foundation::{Members, index};
use crate::m20261128_000002_committees_events::Committees;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Documents::Table)
                    .col(pk_auto(Documents::Id))
                    .col(integer(Documents::CommitteeId))
                    .col(string_len(Documents::Title, 300))
                    .col(text(Documents::Description).default(""))
                    .col(string_len(Documents::Status, 16))
                    .col(integer(Documents::CreatedBy))
                    .col(integer(Documents::CurrentVersion))
                    .col(integer(Documents::Version))
                    .col(timestamp_with_time_zone(Documents::CreatedAt))
                    .col(timestamp_with_time_zone(Documents::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Documents::DeletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Documents::Table, Documents::CommitteeId)
                            .to(Committees::Table, Committees::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Documents::Table, Documents::CreatedBy)
                            .to(Members::Table, Members::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Documents::Table,
            "idx_documents_committee",
            &[Documents::CommitteeId, Documents::Id],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(DocumentVersions::Table)
                    .col(pk_auto(DocumentVersions::Id))
                    .col(integer(DocumentVersions::DocumentId))
                    .col(integer(DocumentVersions::Number))
                    .col(string_len(DocumentVersions::Sha256, 64))
                    .col(big_integer(DocumentVersions::SizeBytes))
                    .col(string_len(DocumentVersions::ContentType, 128))
                    .col(string_len(DocumentVersions::FileName, 255))
                    .col(text(DocumentVersions::Note).default(""))
                    .col(integer(DocumentVersions::UploadedBy))
                    .col(timestamp_with_time_zone(DocumentVersions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DocumentVersions::Table, DocumentVersions::DocumentId)
                            .to(Documents::Table, Documents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_document_versions_number")
                    .table(DocumentVersions::Table)
                    .col(DocumentVersions::DocumentId)
                    .col(DocumentVersions::Number)
                    .unique()
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            DocumentVersions::Table,
            "idx_document_versions_sha",
            &[DocumentVersions::Sha256],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(DocumentShares::Table)
                    .col(integer(DocumentShares::DocumentId))
                    .col(integer(DocumentShares::CommitteeId))
                    .col(string_len(DocumentShares::Access, 8))
                    .col(timestamp_with_time_zone(DocumentShares::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(DocumentShares::DocumentId)
                            .col(DocumentShares::CommitteeId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DocumentShares::Table, DocumentShares::DocumentId)
                            .to(Documents::Table, Documents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DocumentShares::Table, DocumentShares::CommitteeId)
                            .to(Committees::Table, Committees::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            DocumentShares::Table,
            "idx_document_shares_committee",
            &[DocumentShares::CommitteeId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(DocumentTags::Table)
                    .col(integer(DocumentTags::DocumentId))
                    .col(string_len(DocumentTags::Tag, 64))
                    .primary_key(Index::create().col(DocumentTags::DocumentId).col(DocumentTags::Tag))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DocumentTags::Table, DocumentTags::DocumentId)
                            .to(Documents::Table, Documents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            DocumentTags::Table,
            "idx_document_tags_tag",
            &[DocumentTags::Tag],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Publications::Table)
                    .col(pk_auto(Publications::Id))
                    .col(integer(Publications::DocumentId))
                    .col(integer(Publications::VersionNumber))
                    .col(string_len(Publications::Kind, 32))
                    .col(string_len(Publications::Title, 300))
                    .col(text(Publications::SummaryEn).default(""))
                    .col(text(Publications::SummaryEs).default(""))
                    .col(json(Publications::CountryCodes))
                    .col(string_len(Publications::Status, 16))
                    .col(integer(Publications::RequestedBy))
                    .col(timestamp_with_time_zone(Publications::RequestedAt))
                    .col(integer_null(Publications::ReviewedBy))
                    .col(timestamp_with_time_zone_null(Publications::ReviewedAt))
                    .col(text_null(Publications::Reason))
                    .col(timestamp_with_time_zone_null(Publications::PublishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Publications::Table, Publications::DocumentId)
                            .to(Documents::Table, Documents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Publications::Table,
            "idx_publications_status",
            &[Publications::Status, Publications::Id],
        )
        .await?;
        index(
            manager,
            Publications::Table,
            "idx_publications_document",
            &[Publications::DocumentId],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Publications::Table.into_iden(),
            DocumentTags::Table.into_iden(),
            DocumentShares::Table.into_iden(),
            DocumentVersions::Table.into_iden(),
            Documents::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Documents {
    Table,
    Id,
    CommitteeId,
    Title,
    Description,
    Status,
    CreatedBy,
    CurrentVersion,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DocumentVersions {
    Table,
    Id,
    DocumentId,
    Number,
    Sha256,
    SizeBytes,
    ContentType,
    FileName,
    Note,
    UploadedBy,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DocumentShares {
    Table,
    DocumentId,
    CommitteeId,
    Access,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum DocumentTags {
    Table,
    DocumentId,
    Tag,
}

#[derive(DeriveIden, Clone, Copy)]
enum Publications {
    Table,
    Id,
    DocumentId,
    VersionNumber,
    Kind,
    Title,
    SummaryEn,
    SummaryEs,
    CountryCodes,
    Status,
    RequestedBy,
    RequestedAt,
    ReviewedBy,
    ReviewedAt,
    Reason,
    PublishedAt,
}
