//! Tasks, meetings, agendas (the allocation guidelines), attendance and calendar feeds.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261128_000001_foundation::{Members, index};
use crate::m20261128_000002_committees_events::Committees;
use crate::m20261128_000003_documents::Documents;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Meetings::Table)
                    .col(pk_auto(Meetings::Id))
                    .col(integer(Meetings::CommitteeId))
                    .col(string_len(Meetings::Title, 300))
                    .col(text(Meetings::Description).default(""))
                    .col(timestamp_with_time_zone(Meetings::StartsAt))
                    .col(timestamp_with_time_zone(Meetings::EndsAt))
                    .col(string_len(Meetings::Timezone, 64))
                    .col(string_len_null(Meetings::Location, 300))
                    .col(string_len_null(Meetings::OnlineUrl, 500))
                    .col(boolean(Meetings::Public).default(false))
                    .col(string_len(Meetings::Status, 16))
                    .col(string_len(Meetings::AgendaStatus, 16))
                    .col(timestamp_with_time_zone_null(Meetings::AgendaPublishedAt))
                    .col(string_len(Meetings::Uid, 64))
                    .col(integer(Meetings::Sequence).default(0))
                    .col(integer(Meetings::Version).default(1))
                    .col(integer(Meetings::CreatedBy))
                    .col(timestamp_with_time_zone_null(Meetings::ReminderSentAt))
                    .col(integer_null(Meetings::LiveItemId))
                    .col(timestamp_with_time_zone_null(Meetings::LiveItemStartedAt))
                    .col(timestamp_with_time_zone_null(Meetings::LivePausedAt))
                    .col(timestamp_with_time_zone_null(Meetings::LiveStartedAt))
                    .col(timestamp_with_time_zone_null(Meetings::LiveEndedAt))
                    .col(timestamp_with_time_zone(Meetings::CreatedAt))
                    .col(timestamp_with_time_zone(Meetings::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Meetings::Table, Meetings::CommitteeId)
                            .to(Committees::Table, Committees::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Meetings::Table,
            "idx_meetings_committee_start",
            &[Meetings::CommitteeId, Meetings::StartsAt],
        )
        .await?;
        index(
            manager,
            Meetings::Table,
            "idx_meetings_reminder",
            &[Meetings::Status, Meetings::ReminderSentAt, Meetings::StartsAt],
        )
        .await?;
        index(
            manager,
            Meetings::Table,
            "idx_meetings_public",
            &[Meetings::Public, Meetings::StartsAt],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(MeetingCommittees::Table)
                    .col(integer(MeetingCommittees::MeetingId))
                    .col(integer(MeetingCommittees::CommitteeId))
                    .primary_key(
                        Index::create()
                            .col(MeetingCommittees::MeetingId)
                            .col(MeetingCommittees::CommitteeId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MeetingCommittees::Table, MeetingCommittees::MeetingId)
                            .to(Meetings::Table, Meetings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MeetingCommittees::Table, MeetingCommittees::CommitteeId)
                            .to(Committees::Table, Committees::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            MeetingCommittees::Table,
            "idx_meeting_committees_committee",
            &[MeetingCommittees::CommitteeId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(MeetingAttendance::Table)
                    .col(integer(MeetingAttendance::MeetingId))
                    .col(integer(MeetingAttendance::MemberId))
                    .col(string_len_null(MeetingAttendance::Response, 8))
                    .col(boolean_null(MeetingAttendance::Present))
                    .col(timestamp_with_time_zone(MeetingAttendance::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(MeetingAttendance::MeetingId)
                            .col(MeetingAttendance::MemberId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MeetingAttendance::Table, MeetingAttendance::MeetingId)
                            .to(Meetings::Table, Meetings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MeetingAttendance::Table, MeetingAttendance::MemberId)
                            .to(Members::Table, Members::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AgendaItems::Table)
                    .col(pk_auto(AgendaItems::Id))
                    .col(integer(AgendaItems::MeetingId))
                    .col(integer_null(AgendaItems::ParentId))
                    .col(integer(AgendaItems::Position))
                    .col(string_len(AgendaItems::Title, 300))
                    .col(text(AgendaItems::Description).default(""))
                    .col(string_len(AgendaItems::Kind, 16))
                    .col(integer(AgendaItems::DurationMinutes))
                    .col(integer_null(AgendaItems::PresenterId))
                    .col(text_null(AgendaItems::Outcome))
                    .col(timestamp_with_time_zone_null(AgendaItems::ActualStartedAt))
                    .col(integer(AgendaItems::ActualSeconds).default(0))
                    .col(boolean(AgendaItems::ChangedAfterFinalized).default(false))
                    .col(integer(AgendaItems::Version).default(1))
                    .col(timestamp_with_time_zone(AgendaItems::CreatedAt))
                    .col(timestamp_with_time_zone(AgendaItems::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AgendaItems::Table, AgendaItems::MeetingId)
                            .to(Meetings::Table, Meetings::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            AgendaItems::Table,
            "idx_agenda_items_meeting",
            &[AgendaItems::MeetingId, AgendaItems::Position],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AgendaItemDocuments::Table)
                    .col(integer(AgendaItemDocuments::AgendaItemId))
                    .col(integer(AgendaItemDocuments::DocumentId))
                    .primary_key(
                        Index::create()
                            .col(AgendaItemDocuments::AgendaItemId)
                            .col(AgendaItemDocuments::DocumentId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AgendaItemDocuments::Table, AgendaItemDocuments::AgendaItemId)
                            .to(AgendaItems::Table, AgendaItems::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(AgendaItemDocuments::Table, AgendaItemDocuments::DocumentId)
                            .to(Documents::Table, Documents::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(pk_auto(Tasks::Id))
                    .col(integer(Tasks::CommitteeId))
                    .col(string_len(Tasks::Title, 300))
                    .col(text(Tasks::Description).default(""))
                    .col(string_len(Tasks::Status, 16))
                    .col(string_len(Tasks::Priority, 8))
                    .col(integer_null(Tasks::AssigneeId))
                    .col(date_null(Tasks::DueOn))
                    .col(integer(Tasks::Position).default(0))
                    .col(integer_null(Tasks::MeetingId))
                    .col(integer_null(Tasks::AgendaItemId))
                    .col(integer(Tasks::CreatedBy))
                    .col(integer(Tasks::Version).default(1))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .col(timestamp_with_time_zone(Tasks::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Tasks::DeletedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tasks::Table, Tasks::CommitteeId)
                            .to(Committees::Table, Committees::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            Tasks::Table,
            "idx_tasks_committee",
            &[Tasks::CommitteeId, Tasks::Id],
        )
        .await?;
        index(manager, Tasks::Table, "idx_tasks_assignee", &[Tasks::AssigneeId]).await?;
        index(manager, Tasks::Table, "idx_tasks_agenda_item", &[Tasks::AgendaItemId]).await?;

        manager
            .create_table(
                Table::create()
                    .table(TaskComments::Table)
                    .col(pk_auto(TaskComments::Id))
                    .col(integer(TaskComments::TaskId))
                    .col(integer(TaskComments::AuthorId))
                    .col(text(TaskComments::Body))
                    .col(timestamp_with_time_zone(TaskComments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TaskComments::Table, TaskComments::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            TaskComments::Table,
            "idx_task_comments_task",
            &[TaskComments::TaskId, TaskComments::Id],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(CalendarFeeds::Table)
                    .col(integer(CalendarFeeds::MemberId).primary_key())
                    .col(string_len_uniq(CalendarFeeds::TokenHash, 64))
                    .col(timestamp_with_time_zone(CalendarFeeds::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CalendarFeeds::Table, CalendarFeeds::MemberId)
                            .to(Members::Table, Members::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CalendarFeeds::Table.into_iden(),
            TaskComments::Table.into_iden(),
            Tasks::Table.into_iden(),
            AgendaItemDocuments::Table.into_iden(),
            AgendaItems::Table.into_iden(),
            MeetingAttendance::Table.into_iden(),
            MeetingCommittees::Table.into_iden(),
            Meetings::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum Meetings {
    Table,
    Id,
    CommitteeId,
    Title,
    Description,
    StartsAt,
    EndsAt,
    Timezone,
    Location,
    OnlineUrl,
    Public,
    Status,
    AgendaStatus,
    AgendaPublishedAt,
    Uid,
    Sequence,
    Version,
    CreatedBy,
    ReminderSentAt,
    LiveItemId,
    LiveItemStartedAt,
    LivePausedAt,
    LiveStartedAt,
    LiveEndedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum MeetingCommittees {
    Table,
    MeetingId,
    CommitteeId,
}

#[derive(DeriveIden, Clone, Copy)]
enum MeetingAttendance {
    Table,
    MeetingId,
    MemberId,
    Response,
    Present,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AgendaItems {
    Table,
    Id,
    MeetingId,
    ParentId,
    Position,
    Title,
    Description,
    Kind,
    DurationMinutes,
    PresenterId,
    Outcome,
    ActualStartedAt,
    ActualSeconds,
    ChangedAfterFinalized,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AgendaItemDocuments {
    Table,
    AgendaItemId,
    DocumentId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Tasks {
    Table,
    Id,
    CommitteeId,
    Title,
    Description,
    Status,
    Priority,
    AssigneeId,
    DueOn,
    Position,
    MeetingId,
    AgendaItemId,
    CreatedBy,
    Version,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TaskComments {
    Table,
    Id,
    TaskId,
    AuthorId,
    Body,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum CalendarFeeds {
    Table,
    MemberId,
    TokenHash,
    CreatedAt,
}
