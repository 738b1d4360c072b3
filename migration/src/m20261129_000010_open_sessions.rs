//! Every authenticated request asks whether its login session is still open (a refresh-token
//! family with a token not revoked). An index on (family_id, revoked_at) answers that from the
//! index alone; it replaces the index on family_id, whose lookups it serves as well.

use sea_orm_migration::prelude::*;

use crate::m20261128_000001_foundation::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_refresh_tokens_family_revoked";
const REPLACED: &str = "idx_refresh_tokens_family";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(
            manager,
            RefreshTokens::Table,
            INDEX,
            &[RefreshTokens::FamilyId, RefreshTokens::RevokedAt],
        )
        .await?;
        manager
            .drop_index(Index::drop().name(REPLACED).table(RefreshTokens::Table).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        index(manager, RefreshTokens::Table, REPLACED, &[RefreshTokens::FamilyId]).await?;
        manager
            .drop_index(Index::drop().name(INDEX).table(RefreshTokens::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    FamilyId,
    RevokedAt,
}
