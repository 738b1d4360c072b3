//! The public area: reference data (countries, port communities, ports), the directory of
//! organizations and contacts, and the port indicators.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_foundation::{Members, Organizations, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Countries::Table)
                    .col(string_len(Countries::Code, 2).primary_key())
                    .col(string_len(Countries::NameEn, 100))
                    .col(string_len(Countries::NameEs, 100))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PortCommunities::Table)
                    .col(pk_auto(PortCommunities::Id))
                    .col(string_len_uniq(PortCommunities::Name, 200))
                    .col(string_len(PortCommunities::CountryCode, 2))
                    .col(string_len(PortCommunities::Status, 16))
                    .col(string_len(PortCommunities::SearchText, 400))
                    .foreign_key(
                        ForeignKey::create()
                            .from(PortCommunities::Table, PortCommunities::CountryCode)
                            .to(Countries::Table, Countries::Code),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            PortCommunities::Table,
            "idx_port_communities_country",
            &[PortCommunities::CountryCode],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(Ports::Table)
                    .col(pk_auto(Ports::Id))
                    .col(integer(Ports::PortCommunityId))
                    .col(string_len(Ports::Name, 200))
                    .col(string_len_uniq(Ports::Unlocode, 5))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Ports::Table, Ports::PortCommunityId)
                            .to(PortCommunities::Table, PortCommunities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(manager, Ports::Table, "idx_ports_community", &[Ports::PortCommunityId]).await?;

        // Organizations gain their port community and an accent- and case-free search text.
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(integer_null(OrganizationExtra::PortCommunityId))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(string_len(OrganizationExtra::SearchText, 600).default(""))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Organizations::Table,
            "idx_organizations_country",
            &[Organizations::CountryCode],
        )
        .await?;
        index(
            manager,
            Organizations::Table,
            "idx_organizations_kind",
            &[Organizations::Kind],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .col(pk_auto(Contacts::Id))
                    .col(integer(Contacts::OrganizationId))
                    .col(string_len(Contacts::Name, 200))
                    .col(string_len(Contacts::Position, 200).default(""))
                    .col(string_len_null(Contacts::Email, 254))
                    .col(string_len_null(Contacts::Phone, 64))
                    .col(boolean(Contacts::Public).default(false))
                    .col(string_len(Contacts::SearchText, 800).default(""))
                    .col(timestamp_with_time_zone(Contacts::CreatedAt))
                    .col(timestamp_with_time_zone(Contacts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Contacts::Table, Contacts::OrganizationId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Contacts::Table,
            "idx_contacts_public",
            &[Contacts::Public, Contacts::Id],
        )
        .await?;
        index(
            manager,
            Contacts::Table,
            "idx_contacts_organization",
            &[Contacts::OrganizationId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(IndicatorDefinitions::Table)
                    .col(pk_auto(IndicatorDefinitions::Id))
                    .col(string_len_uniq(IndicatorDefinitions::Code, 64))
                    .col(string_len(IndicatorDefinitions::NameEn, 200))
                    .col(string_len(IndicatorDefinitions::NameEs, 200))
                    .col(string_len(IndicatorDefinitions::Unit, 32))
                    .col(text(IndicatorDefinitions::Description).default(""))
                    .col(boolean(IndicatorDefinitions::HigherIsBetter))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IndicatorValues::Table)
                    .col(pk_auto(IndicatorValues::Id))
                    .col(integer(IndicatorValues::IndicatorId))
                    .col(integer(IndicatorValues::PortId))
                    .col(integer(IndicatorValues::Year))
                    .col(double(IndicatorValues::Value))
                    .col(string_len(IndicatorValues::Status, 16))
                    .col(integer(IndicatorValues::SubmittedBy))
                    .col(integer_null(IndicatorValues::ValidatedBy))
                    .col(timestamp_with_time_zone(IndicatorValues::SubmittedAt))
                    .col(timestamp_with_time_zone_null(IndicatorValues::ValidatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(IndicatorValues::Table, IndicatorValues::IndicatorId)
                            .to(IndicatorDefinitions::Table, IndicatorDefinitions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(IndicatorValues::Table, IndicatorValues::PortId)
                            .to(Ports::Table, Ports::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(IndicatorValues::Table, IndicatorValues::SubmittedBy)
                            .to(Members::Table, Members::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_indicator_values_unique")
                    .table(IndicatorValues::Table)
                    .col(IndicatorValues::IndicatorId)
                    .col(IndicatorValues::PortId)
                    .col(IndicatorValues::Year)
                    .unique()
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            IndicatorValues::Table,
            "idx_indicator_values_status",
            &[IndicatorValues::Status, IndicatorValues::IndicatorId],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IndicatorValues::Table.into_iden(),
            IndicatorDefinitions::Table.into_iden(),
            Contacts::Table.into_iden(),
            Ports::Table.into_iden(),
            PortCommunities::Table.into_iden(),
            Countries::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        for column in [OrganizationExtra::PortCommunityId, OrganizationExtra::SearchText] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Countries {
    Table,
    Code,
    NameEn,
    NameEs,
}

#[derive(DeriveIden, Clone, Copy)]
enum PortCommunities {
    Table,
    Id,
    Name,
    CountryCode,
    Status,
    SearchText,
}

#[derive(DeriveIden, Clone, Copy)]
enum Ports {
    Table,
    Id,
    PortCommunityId,
    Name,
    Unlocode,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrganizationExtra {
    PortCommunityId,
    SearchText,
}

#[derive(DeriveIden, Clone, Copy)]
enum Contacts {
    Table,
    Id,
    OrganizationId,
    Name,
    Position,
    Email,
    Phone,
    Public,
    SearchText,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum IndicatorDefinitions {
    Table,
    Id,
    Code,
    NameEn,
    NameEs,
    Unit,
    Description,
    HigherIsBetter,
}

#[derive(DeriveIden, Clone, Copy)]
enum IndicatorValues {
    Table,
    Id,
    IndicatorId,
    PortId,
    Year,
    Value,
    Status,
    SubmittedBy,
    ValidatedBy,
    SubmittedAt,
    ValidatedAt,
}
