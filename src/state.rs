//! What every handler shares.

use std::sync::Arc;

use actix::Addr;

use crate::auth::password::Passwords;
use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::AccessTokens;
use crate::db::Db;
use crate::group_commit::GroupCommit;
use crate::mail::Mailer;
use crate::public::cache::PublicCache;
use crate::realtime::bus::Bus;
use crate::realtime::{Admission, Broker};
use crate::settings::Settings;
use crate::storage::LocalStorage;

/// Each HTTP worker has its own copy, whose `db` is the worker's own pool on PostgreSQL (see
/// [`crate::db::Pools`]); everything else is the same in every copy: handles to the same
/// actors, pools, caches and counters, and the same settings.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// The path of the high-rate writes (see [`GroupCommit`]).
    pub writes: GroupCommit,
    pub settings: Settings,
    pub tokens: Arc<AccessTokens>,
    pub passwords: Passwords,
    pub throttle: Arc<LoginThrottle>,
    pub mailer: Addr<Mailer>,
    pub broker: Addr<Broker>,
    /// Bounds the sockets' database work running at once.
    pub socket_checks: Admission,
    pub bus: Bus,
    pub storage: LocalStorage,
    pub public_cache: Arc<PublicCache>,
}

impl AppState {
    /// This state for one HTTP worker, with a pool of `pool_size` connections of the worker's
    /// own ([`crate::db::Pools`]). Call it on the worker, within its runtime. If that pool
    /// cannot be made (it cannot today: a lazy pool connects nothing until asked), the worker
    /// shares the server's, and says so at the error level: it works, only slower.
    pub fn with_worker_pool(&self, pool_size: u32) -> Self {
        let db = match Db::lazy_pool(&self.settings.database, pool_size) {
            Ok(db) => db,
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "this worker shares the server's database pool"
                );
                self.db.clone()
            }
        };
        Self { db, ..self.clone() }
    }
}
