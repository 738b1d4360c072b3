//! Committees, memberships, and the event store (channels with their heads, and events).

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_foundation::{Members, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Committees::Table)
                    .col(pk_auto(Committees::Id))
                    .col(string_len_uniq(Committees::Name, 200))
                    .col(string_len(Committees::Kind, 32))
                    .col(text(Committees::Description).default(""))
                    .col(boolean(Committees::Archived).default(false))
                    .col(integer(Committees::Version).default(1))
                    .col(timestamp_with_time_zone(Committees::CreatedAt))
                    .col(timestamp_with_time_zone(Committees::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CommitteeMemberships::Table)
                    .col(integer(CommitteeMemberships::CommitteeId))
                    .col(integer(CommitteeMemberships::MemberId))
                    .col(string_len(CommitteeMemberships::Role, 16))
                    .col(timestamp_with_time_zone(CommitteeMemberships::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(CommitteeMemberships::CommitteeId)
                            .col(CommitteeMemberships::MemberId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CommitteeMemberships::Table, CommitteeMemberships::CommitteeId)
                            .to(Committees::Table, Committees::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CommitteeMemberships::Table, CommitteeMemberships::MemberId)
                            .to(Members::Table, Members::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            CommitteeMemberships::Table,
            "idx_memberships_member",
            &[CommitteeMemberships::MemberId],
        )
        .await?;

        // One row per channel; `head` is the last offset handed out. Taking the next offset is
        // `UPDATE ... SET head = head + 1 RETURNING head`, which locks the row until commit.
        manager
            .create_table(
                Table::create()
                    .table(Channels::Table)
                    .col(string_len(Channels::Name, 64).primary_key())
                    .col(big_integer(Channels::Head).default(0))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(big_pk_auto(Events::Id))
                    .col(string_len(Events::Channel, 64))
                    .col(big_integer(Events::Offset))
                    .col(string_len(Events::Kind, 64))
                    .col(integer_null(Events::ActorId))
                    .col(json(Events::Data))
                    .col(timestamp_with_time_zone(Events::At))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_events_channel_offset")
                    .table(Events::Table)
                    .col(Events::Channel)
                    .col(Events::Offset)
                    .unique()
                    .to_owned(),
            )
            .await?;
        index(manager, Events::Table, "idx_events_at", &[Events::At]).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Events::Table.into_iden(),
            Channels::Table.into_iden(),
            CommitteeMemberships::Table.into_iden(),
            Committees::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Committees {
    Table,
    Id,
    Name,
    Kind,
    Description,
    Archived,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum CommitteeMemberships {
    Table,
    CommitteeId,
    MemberId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Channels {
    Table,
    Name,
    Head,
}

#[derive(DeriveIden, Clone, Copy)]
enum Events {
    Table,
    Id,
    Channel,
    Offset,
    Kind,
    ActorId,
    Data,
    At,
}
