//! sea-orm entities, one module per table. Behaviour lives in the application's service modules.

pub mod agenda_item;
pub mod agenda_item_document;
pub mod audit_log;
pub mod calendar_feed;
pub mod channel;
pub mod committee;
pub mod committee_membership;
pub mod document;
pub mod document_share;
pub mod document_tag;
pub mod document_version;
pub mod event;
pub mod mail_queue;
pub mod meeting;
pub mod meeting_attendance;
pub mod meeting_committee;
pub mod member;
pub mod one_time_token;
pub mod organization;
pub mod publication;
pub mod refresh_token;
pub mod task;
pub mod task_comment;
