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

pub struct AppState {
    pub db: Db,
    /// The path of the high-rate writes (see [`GroupCommit`]).
    pub writes: GroupCommit,
    pub settings: Settings,
    pub tokens: AccessTokens,
    pub passwords: Passwords,
    pub throttle: LoginThrottle,
    pub mailer: Addr<Mailer>,
    pub broker: Addr<Broker>,
    /// Bounds the sockets' database work running at once.
    pub socket_checks: Admission,
    pub bus: Bus,
    pub storage: LocalStorage,
    pub public_cache: Arc<PublicCache>,
}
