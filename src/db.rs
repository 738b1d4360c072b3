//! The database handle: a pool, and one gate that serializes writers on SQLite.
//!
//! SQLite lets one writer in at a time; a transaction that reads and then writes fails with
//! `SQLITE_BUSY_SNAPSHOT` if another writer committed in between, and no busy timeout helps.
//! So every write in the process, however small, goes through [`Db::begin_write`]: an
//! in-process gate makes writers queue instead of fail (SQLite is the single-node embedded
//! mode) and keeps event offsets in commit order, and the transaction begins `IMMEDIATE`, taking
//! the write lock before its first read, so that a writer outside the gate (another process,
//! such as `dcports seed`) is waited for (busy timeout) rather than failing the transaction.
//! PostgreSQL needs neither: row locks do it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    PrimaryKeyTrait, QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use secrecy::ExposeSecret;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::settings::DatabaseSettings;

/// How long a pooled connection may sit idle before it is pinged on its next checkout.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Db {
    conn: DatabaseConnection,
    write_gate: Option<Arc<Mutex<()>>>,
    pool_size: u32,
}

/// The server's connections. On PostgreSQL, `database.max_connections` is shared out: half for
/// the group-commit write lanes (one connection each), the rest between a pool of each HTTP
/// worker's own and one, of at least a connection, for the work outside requests (start-up,
/// mail, the scheduler).
///
/// A socket is driven by the runtime that opened it: each HTTP worker is a runtime of its own,
/// and one busy with requests only looks at its sockets between them. A query waiting on a
/// connection opened by another worker waited for that worker too. For the lanes that set the
/// pace of every write in a committee, about a millisecond per round trip (BENCHMARKS.md,
/// "Eleventh session"); for requests, a hand-off between the workers on every query. So the
/// lanes' pool is opened on the lanes' runtime, by the lanes, and each worker's pool by the
/// worker, on its first queries ([`Db::lazy_pool`]): round trips are answered where they wait.
///
/// On SQLite it is all one pool: its connections run on threads of their own, and every writer
/// must pass the same gate. The pools are also shared when `max_connections` is too small to
/// share out.
pub struct Pools {
    /// The work outside requests; and every worker's, when `per_worker` is `None`.
    pub requests: Db,
    pub writes: Db,
    /// The size of each HTTP worker's own pool, on PostgreSQL.
    pub per_worker: Option<u32>,
}

/// What a pool's connections are for, as PostgreSQL shows them (`pg_stat_activity`).
#[derive(Clone, Copy)]
enum Pool {
    /// Everything, or everything outside the workers' and the lanes' pools.
    Shared,
    WriteLanes,
    /// One HTTP worker's own.
    Worker,
}

impl Pool {
    fn application_name(self) -> &'static str {
        match self {
            Pool::Shared => "dcports",
            Pool::WriteLanes => "dcports write lanes",
            Pool::Worker => "dcports worker",
        }
    }
}

/// A write transaction, holding the SQLite writer gate until it commits or drops.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }
}

impl Db {
    /// One pool of `database.max_connections`, for tools and tests.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        Self::connect_pool(settings, Pool::Shared, settings.max_connections).await
    }

    /// The server's pools (see [`Pools`]) for `workers` HTTP workers. Call it on the runtime
    /// the write lanes will run on.
    pub async fn connect_server(settings: &DatabaseSettings, workers: usize) -> anyhow::Result<Pools> {
        // One connection in all cannot be split: the lanes then share it with requests.
        if !is_postgres(settings.url.expose_secret()) || settings.max_connections < 2 {
            let db = Self::connect(settings).await?;
            return Ok(Pools {
                requests: db.clone(),
                writes: db,
                per_worker: None,
            });
        }
        let lanes = settings.max_connections / 2;
        let (outside, per_worker) = share_out(settings.max_connections - lanes, workers);
        Ok(Pools {
            requests: Self::connect_pool(settings, Pool::Shared, outside).await?,
            writes: Self::connect_pool(settings, Pool::WriteLanes, lanes).await?,
            per_worker,
        })
    }

    /// A pool of `pool_size` that opens its connections when first asked, on the runtime that
    /// asks: made by an HTTP worker, its connections are that worker's. Made at once, without
    /// waiting on anything, as a worker must be built; on PostgreSQL only (SQLite's writers
    /// share one gate, hence one pool).
    pub fn lazy_pool(settings: &DatabaseSettings, pool_size: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(
            is_postgres(settings.url.expose_secret()),
            "a pool of one's own is for PostgreSQL"
        );
        let mut options = connect_options(settings, Pool::Worker, pool_size);
        options.connect_lazy(true);
        let conn = sea_orm::Database::connect(options)
            .now_or_never()
            .context("a lazy pool waited to connect")?
            .context("Failed to make a pool (setting database.url)")?;
        Ok(Self {
            conn,
            write_gate: None,
            pool_size,
        })
    }

    async fn connect_pool(settings: &DatabaseSettings, pool: Pool, pool_size: u32) -> anyhow::Result<Self> {
        let url = settings.url.expose_secret();
        if let Some(path) = sqlite_file(url) {
            if let Some(parent) = std::path::Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("Failed to create the database directory {}", parent.display()))?;
            }
        }
        let conn = sea_orm::Database::connect(connect_options(settings, pool, pool_size))
            .await
            .context("Failed to connect to the database (setting database.url)")?;
        let write_gate = (conn.get_database_backend() == DatabaseBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            conn,
            write_gate,
            pool_size,
        })
    }

    /// The most connections this pool opens.
    pub fn pool_size(&self) -> u32 {
        self.pool_size
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }

    pub async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        let gate = match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let options = TransactionOptions {
            sqlite_transaction_mode: gate.is_some().then_some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(WriteTxn {
            txn: self.conn.begin_with_options(options).await?,
            _gate: gate,
        })
    }

    /// Runs one statement (or a few) as a write transaction of its own: [`Db::begin_write`],
    /// `work`, commit. For writes outside any request, such as the mailer's and the sweep's.
    pub async fn write<T, F>(&self, work: F) -> Result<T, DbErr>
    where
        F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<T, DbErr>>,
    {
        let txn = self.begin_write().await?;
        let value = work(&txn).await?;
        txn.commit().await?;
        Ok(value)
    }

    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }
}

/// The pool's settings: `pool_size` connections named for what they do, SQLite's pragmas, no
/// per-checkout ping.
fn connect_options(settings: &DatabaseSettings, pool: Pool, pool_size: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(settings.url.expose_secret().to_owned());
    options
        .set_application_name(pool.application_name())
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_secs))
        // sqlx pings every connection it hands out by default: one more round trip for
        // every query. Only a connection idle long enough to have been dropped by the
        // server or a proxy is worth that check.
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|opts| {
            opts.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        })
        .map_sqlx_sqlite_pool_opts(|pool| pool.after_connect(|conn, _| Box::pin(keep_query_plans(conn))));
    options
}

/// `connections` shared out between `workers` pools of their own, of at least
/// [`MIN_WORKER_POOL`] each, and one, of at least one connection, for the work outside requests:
/// that one's size and each worker's. Too few for that, they stay in one pool, which the workers
/// share.
fn share_out(connections: u32, workers: usize) -> (u32, Option<u32>) {
    let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    match connections.saturating_sub(1) / workers {
        per_worker if per_worker < MIN_WORKER_POOL => (connections, None),
        per_worker => (connections - per_worker * workers, Some(per_worker)),
    }
}

/// The smallest pool a worker is given. With one connection, a request holding it in a long
/// transaction (an import, an export) would hold up every other request of its worker while
/// connections sat idle elsewhere.
const MIN_WORKER_POOL: u32 = 2;

/// Turns on SQLite's query planner stability guarantee (QPSG) for one connection.
///
/// Without it, SQLite (3.51) plans a statement with a bound `LIMIT` around the value bound to it
/// (every `.one()` and every page has one), and marks the statement to be compiled again
/// whenever that value is bound anew, which is every time it runs: sqlx's statement cache kept
/// statements that were parsed and planned on every execution. A profile of `GET
/// /api/committees` under load put 45 % of the server's CPU in that recompilation and 2 % in
/// running the queries (BENCHMARKS.md, thirteenth session). With the guarantee, a statement keeps
/// the plan it was prepared with.
async fn keep_query_plans(conn: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is an open connection that sqlx's worker thread does not use while `handle`
    // is held; SQLITE_DBCONFIG_ENABLE_QPSG takes an int (1: on) and an int pointer for the
    // setting's new value, which may be null.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK {
        return Err(sea_orm::sqlx::Error::Configuration(
            format!("SQLite refused the query planner stability guarantee (code {rc})").into(),
        ));
    }
    Ok(())
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The file path of a `sqlite://` URL, when it names a file.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Takes the row's write lock, held until the transaction ends, before a read-check-write of it.
///
/// On PostgreSQL (READ COMMITTED) two transactions could both read version 3, both pass
/// `If-Match: "3"` and both write version 4. With the row locked first, the second waits for
/// the first to commit, then reads version 4 and is refused. SQLite needs nothing: its write
/// transactions hold the writer gate and run one at a time.
pub async fn lock_row<E>(conn: &impl ConnectionTrait, id: i32) -> Result<(), DbErr>
where
    E: EntityTrait,
    i32: Into<<E::PrimaryKey as PrimaryKeyTrait>::ValueType>,
{
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        E::find_by_id(id).lock_exclusive().one(conn).await?;
    }
    Ok(())
}

/// The current time as the databases keep it. PostgreSQL's timestamps hold microseconds, so a
/// row answered as written rather than read back ([`crate::group_commit::Batch::insert`]) must
/// not carry nanoseconds its later reads will not have.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::share_out;

    #[test]
    fn the_connections_left_to_requests_are_shared_out_between_the_workers_and_one_pool() {
        // (connections, workers) → (the pool outside requests, each worker's own)
        assert_eq!(share_out(8, 2), (2, Some(3)));
        assert_eq!(share_out(5, 2), (1, Some(2)));
        assert_eq!(share_out(5, 1), (1, Some(4)));
        assert_eq!(share_out(3, 1), (1, Some(2)));
        // Too few to give each worker two and keep one: one pool for all.
        assert_eq!(share_out(4, 2), (4, None));
        assert_eq!(share_out(5, 3), (5, None));
        assert_eq!(share_out(2, 1), (2, None));
        assert_eq!(share_out(1, 1), (1, None));
        for connections in 1..40 {
            for workers in 1..9 {
                let (outside, per_worker) = share_out(connections, workers);
                let total = outside + per_worker.unwrap_or(0) * workers as u32;
                assert_eq!(total, connections, "{connections} between {workers} workers");
                assert!(outside >= 1);
                assert!(per_worker.is_none_or(|size| size >= 2));
            }
        }
    }
}
