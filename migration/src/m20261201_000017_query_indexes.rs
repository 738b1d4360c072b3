//! Indexes for the queries that grew with the data without one:
//! - a committee's meeting list, by committee and id (its keyset order);
//! - the personal calendar feed, by start time (its year of history);
//! - an agenda item's removal with its sub-items, by parent;
//! - an indicator's values by status, year and port (the public lists' order and the latest
//!   year), and a port's validated values of every indicator (its public page);
//! - a meeting's action items (its minutes);
//! - expired refresh tokens (the housekeeping), and the members and organizations a removed
//!   organization or port community leaves behind (their foreign keys' `SET NULL`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each index: its name, its table, its columns.
const INDEXES: [(&str, &str, &[&str]); 9] = [
    ("idx_meetings_committee_id", "meetings", &["committee_id", "id"]),
    ("idx_meetings_starts_at", "meetings", &["starts_at"]),
    ("idx_agenda_items_parent", "agenda_items", &["parent_id"]),
    (
        "idx_indicator_values_indicator_status_year",
        "indicator_values",
        &["indicator_id", "status", "year", "port_id"],
    ),
    (
        "idx_indicator_values_port_status_year",
        "indicator_values",
        &["port_id", "status", "year"],
    ),
    ("idx_tasks_meeting", "tasks", &["meeting_id"]),
    ("idx_refresh_tokens_expires_at", "refresh_tokens", &["expires_at"]),
    ("idx_members_organization", "members", &["organization_id"]),
    (
        "idx_organizations_port_community",
        "organizations",
        &["port_community_id"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, columns) in INDEXES {
            let mut index = Index::create();
            index.name(name).table(Alias::new(table));
            for column in columns {
                index.col(Alias::new(*column));
            }
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in INDEXES {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}
