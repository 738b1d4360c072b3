//! The audit log: who did what, to what, when and from where.

use chrono::Utc;
use entity::audit_log;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};
use serde_json::Value;

/// One row to write, inside the transaction of the action it records.
pub struct AuditEntry<'a> {
    pub actor_id: Option<i32>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<i32>,
    pub details: Value,
    pub ip: Option<String>,
}

pub async fn record(conn: &impl ConnectionTrait, entry: AuditEntry<'_>) -> Result<(), DbErr> {
    audit_log::ActiveModel {
        at: Set(Utc::now()),
        actor_id: Set(entry.actor_id),
        action: Set(entry.action.to_owned()),
        target_type: Set(entry.target_type.to_owned()),
        target_id: Set(entry.target_id),
        details: Set(entry.details),
        ip: Set(entry.ip),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}
