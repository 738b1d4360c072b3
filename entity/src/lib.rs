//! sea-orm entities, one module per table. Behaviour lives in the application's service modules.

pub mod audit_log;
pub mod channel;
pub mod committee;
pub mod committee_membership;
pub mod event;
pub mod mail_queue;
pub mod member;
pub mod one_time_token;
pub mod organization;
pub mod refresh_token;
