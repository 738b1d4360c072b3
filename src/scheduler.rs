//! The `Scheduler` actor: timed housekeeping. Deletes events past retention and spent or expired
//! tokens. Every task is an idempotent delete, so several nodes may run it side by side.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use entity::{one_time_token, refresh_token};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::db::Db;
use crate::events;
use crate::settings::EventSettings;

pub struct Scheduler {
    db: Db,
    settings: EventSettings,
}

impl Scheduler {
    pub fn new(db: Db, settings: EventSettings) -> Self {
        Self { db, settings }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(
            Duration::from_secs(self.settings.sweep_interval_secs.max(1)),
            |scheduler, ctx| {
                let (db, retention_days) = (scheduler.db.clone(), scheduler.settings.retention_days);
                ctx.spawn(
                    async move {
                        if let Err(error) = sweep(&db, retention_days).await {
                            tracing::warn!(error = ?error, "housekeeping failed");
                        }
                    }
                    .into_actor(scheduler),
                );
            },
        );
    }
}

/// One round of housekeeping.
pub async fn sweep(db: &Db, retention_days: i64) -> anyhow::Result<()> {
    let now = Utc::now();
    let events = events::prune(db.conn(), now - chrono::Duration::days(retention_days)).await?;
    let one_time = one_time_token::Entity::delete_many()
        .filter(
            Condition::any()
                .add(one_time_token::Column::ExpiresAt.lt(now))
                .add(one_time_token::Column::UsedAt.is_not_null()),
        )
        .exec(db.conn())
        .await?
        .rows_affected;
    let refresh = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(now))
        .exec(db.conn())
        .await?
        .rows_affected;
    if events + one_time + refresh > 0 {
        tracing::info!(events, one_time, refresh, "housekeeping removed old rows");
    }
    Ok(())
}
