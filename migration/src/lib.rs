//! Database migrations for dcports. Run at start-up and by `dcports migrate`.

pub use sea_orm_migration::prelude::*;

pub mod folded_text;
mod m20261128_000001_foundation;
mod m20261128_000002_committees_events;
mod m20261128_000003_documents;
mod m20261128_000004_tasks_meetings;
mod m20261128_000005_public_area;
mod m20261129_000006_meeting_minutes_document;
mod m20261129_000007_search_text_unbounded;
mod m20261129_000008_indicator_value_version;
mod m20261129_000009_indicator_review_queue;
mod m20261129_000010_open_sessions;
mod m20261129_000011_member_version;
mod m20261129_000012_published_agenda;
mod m20261129_000013_publication_search_text;
mod m20261129_000014_forget_sent_mail_bodies;
mod m20261129_000015_document_search_text;
mod m20261129_000016_member_search_text;
mod m20261201_000017_query_indexes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_foundation::Migration),
            Box::new(m20261128_000002_committees_events::Migration),
            Box::new(m20261128_000003_documents::Migration),
            Box::new(m20261128_000004_tasks_meetings::Migration),
            Box::new(m20261128_000005_public_area::Migration),
            Box::new(m20261129_000006_meeting_minutes_document::Migration),
            Box::new(m20261129_000007_search_text_unbounded::Migration),
            Box::new(m20261129_000008_indicator_value_version::Migration),
            Box::new(m20261129_000009_indicator_review_queue::Migration),
            Box::new(m20261129_000010_open_sessions::Migration),
            Box::new(m20261129_000011_member_version::Migration),
            Box::new(m20261129_000012_published_agenda::Migration),
            Box::new(m20261129_000013_publication_search_text::Migration),
            Box::new(m20261129_000014_forget_sent_mail_bodies::Migration),
            Box::new(m20261129_000015_document_search_text::Migration),
            Box::new(m20261129_000016_member_search_text::Migration),
            Box::new(m20261201_000017_query_indexes::Migration),
        ]
    }
}
