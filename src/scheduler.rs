//! The `Scheduler` actor: timed housekeeping. Deletes events past retention, mail sent or given
//! up as long ago, and spent or expired tokens, and sweeps staged uploads a crash left behind.
//! Every task is idempotent, so several nodes may run it side by side.

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use entity::{mail_queue, one_time_token, refresh_token};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::db::Db;
use crate::events;
use crate::settings::EventSettings;
use crate::storage::LocalStorage;

/// Staged uploads younger than this may still be in flight: the sweep leaves them alone.
const STAGING_GRACE: Duration = Duration::from_secs(3600);

pub struct Scheduler {
    db: Db,
    settings: EventSettings,
    storage: LocalStorage,
}

impl Scheduler {
    pub fn new(db: Db, settings: EventSettings, storage: LocalStorage) -> Self {
        Self { db, settings, storage }
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let interval = Duration::from_secs(self.settings.sweep_interval_secs.max(1));
        ctx.run_interval(interval, |scheduler, ctx| {
            let (db, storage) = (scheduler.db.clone(), scheduler.storage.clone());
            let retention_days = scheduler.settings.retention_days;
            let work = async move {
                if let Err(error) = sweep(&db, retention_days).await {
                    tracing::warn!(error = ?error, "housekeeping failed");
                }
                if let Err(error) = sweep_staging(&db, &storage, STAGING_GRACE).await {
                    tracing::warn!(error = ?error, "staging sweep failed");
                }
            };
            ctx.spawn(work.into_actor(scheduler));
        });
    }
}

/// One round of housekeeping in the database, one short write transaction per table.
pub async fn sweep(db: &Db, retention_days: i64) -> anyhow::Result<()> {
    let now = Utc::now();
    let cutoff = now - chrono::Duration::days(retention_days);
    let events = db.write(|txn| Box::pin(events::prune(txn, cutoff))).await?;
    let spent = Condition::any()
        .add(one_time_token::Column::ExpiresAt.lt(now))
        .add(one_time_token::Column::UsedAt.is_not_null());
    let spent = one_time_token::Entity::delete_many().filter(spent);
    let one_time = db.write(|txn| Box::pin(spent.exec(txn))).await?.rows_affected;
    let expired = refresh_token::Entity::delete_many().filter(refresh_token::Column::ExpiresAt.lt(now));
    let refresh = db.write(|txn| Box::pin(expired.exec(txn))).await?.rows_affected;
    // Mail stays as long as events, to answer "did the invitation go out?"; its links were
    // blanked when it was sent or given up. Mail still to be sent stays, however old.
    let done = Condition::any()
        .add(mail_queue::Column::SentAt.lt(cutoff))
        .add(mail_queue::Column::FailedAt.lt(cutoff));
    let done = mail_queue::Entity::delete_many().filter(done);
    let mail = db.write(|txn| Box::pin(done.exec(txn))).await?.rows_affected;
    if events + one_time + refresh + mail > 0 {
        tracing::info!(events, one_time, refresh, mail, "housekeeping removed old rows");
    }
    Ok(())
}

/// Removes staged uploads older than `grace` whose transaction never committed (and finishes
/// the promotion of those whose transaction did).
pub async fn sweep_staging(db: &Db, storage: &LocalStorage, grace: Duration) -> anyhow::Result<usize> {
    let removed = storage
        .sweep(grace, |sha256| async move {
            crate::documents::service::is_stored_content(db.conn(), &sha256)
                .await
                .map_err(|error| anyhow::anyhow!("{error}"))
        })
        .await?;
    if removed > 0 {
        tracing::info!(removed, "removed staged uploads left by interrupted requests");
    }
    Ok(removed)
}

/// Checks for due meeting reminders every `meetings.reminder_check_secs`.
pub struct Reminders {
    state: actix_web::web::Data<crate::state::AppState>,
}

impl Actor for Reminders {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let interval = Duration::from_secs(self.state.settings.meetings.reminder_check_secs.max(1));
        ctx.run_interval(interval, |reminders, ctx| {
            let state = reminders.state.clone();
            let work = async move {
                let hours = state.settings.meetings.reminder_hours;
                if let Err(error) = crate::meetings::service::send_due_reminders(&state, hours).await {
                    tracing::warn!(error = %error, "meeting reminders failed");
                }
            };
            ctx.spawn(work.into_actor(reminders));
        });
    }
}

pub fn start_reminders(state: actix_web::web::Data<crate::state::AppState>) {
    Reminders { state }.start();
}
