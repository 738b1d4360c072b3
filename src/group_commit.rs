//! Group commit: writes that arrive together share one transaction.
//!
//! Every write that records an event holds its channel's row (PostgreSQL) or the writer gate
//! (SQLite) from the offset it takes until its commit is durable, so one committee's writes
//! commit one after another, each paying its own `BEGIN`, `COMMIT` and WAL flush. Here, writes
//! queue on a lane; the lane runs whatever has queued since its last commit in one transaction
//! and commits once, so the flush and the lock are paid once per batch, not once per write.
//! Nothing waits to fill a batch: a lone write runs at once, exactly as it would on its own.
//!
//! A write records its events with [`Batch::record`], which takes no offset yet: the batch
//! appends every event it recorded just before it commits, taking each channel's offsets with
//! one upsert. So a channel's row is locked only for that last statement and the commit, not
//! from a write's first event to the end of the batch, and a write costs no round trip for its
//! events. The lane publishes them after the commit itself, so they go out even if the caller
//! has gone.
//!
//! On PostgreSQL, rows a write inserts through [`Batch::insert`] are written together too: one
//! round trip reserves their ids, one multi-row `INSERT` per table writes them before the events.
//!
//! If any write of a batch fails, the batch is rolled back and each of its writes runs again in
//! a transaction of its own, so a failing write never takes its batch-mates' changes with it,
//! and each caller gets the answer its own write would have had. So a write must be a function
//! of its input and the database that can run twice, with no effect outside its transaction.
//! A write may also name its checks ([`GroupCommit::write_checked`]): reads that change nothing,
//! run for every write of a batch before any write runs. A write its checks refuse (401, 403,
//! 404…) is answered at once and leaves the batch, which they did not touch, so a caller who
//! may not write cannot make everyone else's writes run again one by one.
//!
//! Writes of one committee (or one task) go to the same lane: PostgreSQL has several, so
//! committees commit in parallel; SQLite has one writer anyway, so one lane. A lane holds at
//! most [`MAX_QUEUED`] waiting writes; past that a write is refused at once (503).

use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::ResponseError as _;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use prometheus::{IntCounter, Registry};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr, EntityName,
    EntityTrait, IdenStatic, IntoActiveModel, Iterable, PrimaryKeyToColumn, Statement, TryIntoModel,
};
use serde_json::Value;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, WriteTxn};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, Channel, PendingEvent, Recorded};

/// The most writes one transaction takes: bounds how long a batch holds its locks.
const MAX_BATCH: usize = 64;

/// The most writes waiting on one lane (16 full batches); past it a write is refused with 503
/// at once rather than queued behind more than the database can commit in a moment.
pub const MAX_QUEUED: usize = 1024;

/// The transaction a write runs in (it derefs to it), and the events its writes record.
pub struct Batch {
    txn: WriteTxn,
    events: Mutex<Vec<PendingEvent>>,
    memo: Mutex<HashMap<MemoKey, Box<dyn Any + Send>>>,
    /// Whether [`Batch::insert`] defers its rows to one statement per table: on PostgreSQL,
    /// when the batch holds several writes.
    defers_inserts: bool,
    /// The writes of the batch not yet run, this one included: how many ids to reserve at once.
    writes_left: AtomicUsize,
    /// Ids taken from each table's sequence and not yet used.
    reserved_ids: Mutex<HashMap<&'static str, Vec<i32>>>,
    /// Rows waiting to be inserted, one entry per table in the order the tables were first
    /// inserted into (so a row is written after the rows it may refer to).
    deferred: Mutex<Vec<Box<dyn DeferredRows>>>,
}

/// What a shared read is of: a name for the kind of read, and what it reads by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemoKey {
    kind: &'static str,
    ids: (i32, i32),
    text: String,
}

impl MemoKey {
    /// A read of `kind` by two ids.
    pub fn ids(kind: &'static str, first: i32, second: i32) -> Self {
        Self::with_text(kind, first, second, "")
    }

    /// A read of `kind` by two ids and a text.
    pub fn with_text(kind: &'static str, first: i32, second: i32, text: &str) -> Self {
        Self {
            kind,
            ids: (first, second),
            text: text.to_owned(),
        }
    }
}

impl std::ops::Deref for Batch {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

impl Batch {
    /// Records one event of `kind` in each of `channels`, appended when the batch commits;
    /// the events of one write keep the order they were recorded in.
    pub fn record(&self, channels: &[Channel], kind: &str, actor_id: Option<i32>, data: Value) {
        let pending = PendingEvent::for_channels(channels, kind, actor_id, data);
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(pending);
    }

    /// Begins the transaction of `writes` writes.
    async fn begin(db: &Db, writes: usize) -> Result<Self, DbErr> {
        Ok(Self {
            txn: db.begin_write().await?,
            events: Mutex::new(Vec::new()),
            memo: Mutex::new(HashMap::new()),
            defers_inserts: writes > 1 && db.backend() == DatabaseBackend::Postgres,
            writes_left: AtomicUsize::new(writes),
            reserved_ids: Mutex::new(HashMap::new()),
            deferred: Mutex::new(Vec::new()),
        })
    }

    /// Inserts `row` and returns it as stored, with its id.
    ///
    /// In a batch of several writes on PostgreSQL, the row takes its id from its table's
    /// sequence (ids for the batch's remaining writes come in one round trip) and is written
    /// with the batch's other rows of its table in one statement, just before the events. So
    /// thirty task creates cost the lane two statements, not thirty. Until then the row is not
    /// visible to the batch's later writes, which cannot name it anyway: its id reaches its
    /// caller only after the commit. A row that fails to insert fails the batch, and every
    /// write of it runs again alone, where rows are inserted at once.
    pub async fn insert<A>(&self, mut row: A) -> ApiResult<<A::Entity as EntityTrait>::Model>
    where
        A: ActiveModelTrait + ActiveModelBehavior + TryIntoModel<<A::Entity as EntityTrait>::Model> + Send + 'static,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        if !self.defers_inserts {
            return Ok(row.insert(&*self.txn).await?);
        }
        let id_column = <A::Entity as EntityTrait>::PrimaryKey::iter()
            .next()
            .expect("an entity has a primary key")
            .into_column();
        let id = self
            .reserve_id(A::Entity::default().table_name(), id_column.as_str())
            .await?;
        row.set(id_column, id.into());
        let stored = row.clone().try_into_model()?;
        let mut deferred = self.deferred.lock().unwrap_or_else(PoisonError::into_inner);
        match deferred
            .iter_mut()
            .find_map(|rows| rows.as_any().downcast_mut::<Rows<A>>())
        {
            Some(rows) => rows.0.push(row),
            None => deferred.push(Box::new(Rows(vec![row]))),
        }
        Ok(stored)
    }

    /// The next id of `table` (PostgreSQL), from ids reserved for the batch's remaining writes.
    async fn reserve_id(&self, table: &'static str, id_column: &'static str) -> Result<i32, DbErr> {
        let reserved = self
            .reserved_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(table)
            .and_then(Vec::pop);
        if let Some(id) = reserved {
            return Ok(id);
        }
        let count = self.writes_left.load(Ordering::Relaxed).max(1) as i32;
        let rows = self
            .txn
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT nextval(pg_get_serial_sequence($1, $2))::int4 AS id FROM generate_series(1, $3)",
                [table.into(), id_column.into(), count.into()],
            ))
            .await?;
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<i32>("", "id"))
            .collect::<Result<Vec<_>, _>>()?;
        // Popped from the end: the first write takes the lowest id.
        ids.reverse();
        let id = ids.pop().ok_or(DbErr::RecordNotInserted)?;
        self.reserved_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(table, ids);
        Ok(id)
    }

    /// The value `read` gives, read by the first write of the batch that asks under `key` and
    /// shared with the batch's later writes (errors are not kept: each write reads again).
    ///
    /// Only for what the lane's writes never change themselves (for task writes: whether the
    /// caller's token still stands, and the caller's role in a committee). Then sharing is no
    /// weaker than reading again: every write of the batch was queued before the batch began,
    /// so the shared read still comes after each request arrived; on SQLite no other writer
    /// commits while the batch holds the gate, and on PostgreSQL a transaction's read never
    /// stopped a change committed after it anyway.
    pub async fn shared_read<V, F>(&self, key: MemoKey, read: F) -> ApiResult<V>
    where
        V: Clone + Send + 'static,
        F: Future<Output = ApiResult<V>>,
    {
        let shared = self
            .memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .and_then(|value| value.downcast_ref::<V>())
            .cloned();
        if let Some(value) = shared {
            return Ok(value);
        }
        let value = read.await?;
        self.memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Box::new(value.clone()));
        Ok(value)
    }

    /// Inserts the deferred rows, appends the recorded events, then commits.
    async fn commit(self) -> Result<Recorded, BatchError> {
        for rows in self.deferred.into_inner().unwrap_or_else(PoisonError::into_inner) {
            rows.insert(&self.txn).await.map_err(BatchError::Append)?;
        }
        let pending = self.events.into_inner().unwrap_or_else(PoisonError::into_inner);
        let recorded = events::append_all(&*self.txn, pending)
            .await
            .map_err(BatchError::Append)?;
        match self.txn.commit().await {
            Ok(()) => Ok(recorded),
            Err(error) => Err(BatchError::Commit(error, recorded)),
        }
    }
}

/// The deferred rows of one table.
struct Rows<A>(Vec<A>);

trait DeferredRows: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn insert<'t>(self: Box<Self>, txn: &'t DatabaseTransaction) -> BoxFuture<'t, Result<(), DbErr>>;
}

impl<A: ActiveModelTrait + Send + 'static> DeferredRows for Rows<A> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn insert<'t>(self: Box<Self>, txn: &'t DatabaseTransaction) -> BoxFuture<'t, Result<(), DbErr>> {
        Box::pin(async move {
            A::Entity::insert_many(self.0).exec_without_returning(txn).await?;
            Ok(())
        })
    }
}

enum BatchError {
    /// Before the commit (a deferred row or an event): the batch is rolled back, nothing of it
    /// stays.
    Append(DbErr),
    /// The commit's outcome is unknown (e.g. the connection dropped after sending `COMMIT`),
    /// with the events it appended, to find out by ([`settle_unknown_commit`]).
    Commit(DbErr, Recorded),
}

/// A write: what it does with its input in a batch. A plain function, so that it can run again
/// on the same input and can capture nothing else.
pub type WriteFn<I, T> = for<'t> fn(&'t Batch, &'t I) -> BoxFuture<'t, ApiResult<T>>;

/// A write's checks: reads only, changing nothing, that may refuse the write (see the module's
/// documentation). The write must not count on them: run alone, it runs without them.
pub type CheckFn<I> = for<'t> fn(&'t Batch, &'t I) -> BoxFuture<'t, ApiResult<()>>;

/// Where committed events go (the broker and the bus).
pub type Publish = Arc<dyn Fn(Recorded) + Send + Sync>;

#[derive(Clone)]
pub struct GroupCommit {
    lanes: Arc<[mpsc::Sender<Box<dyn Job>>]>,
    counters: Counters,
}

/// How the lanes have been committing, on `/metrics`.
#[derive(Clone)]
struct Counters {
    /// Transactions that carried more than one write.
    shared_transactions: IntCounter,
    /// Writes committed in such a transaction.
    shared_writes: IntCounter,
    /// Writes run again alone because a batch-mate failed.
    retried_writes: IntCounter,
}

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCommitStats {
    pub shared_transactions: u64,
    pub shared_writes: u64,
    pub retried_writes: u64,
}

impl Counters {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        Ok(Self {
            shared_transactions: counter(
                "dcports_write_shared_transactions_total",
                "Transactions that committed several writes at once",
            )?,
            shared_writes: counter(
                "dcports_write_shared_total",
                "Writes committed in a transaction shared with others",
            )?,
            retried_writes: counter(
                "dcports_write_retried_total",
                "Writes run again on their own because a write of their batch failed",
            )?,
        })
    }
}

impl GroupCommit {
    /// Starts the lanes on the current runtime: one on SQLite (one writer anyway), one per
    /// connection of `db`'s pool on PostgreSQL, where that pool is the lanes' own
    /// ([`crate::db::Pools`]).
    pub fn start(db: Db, publish: Publish, registry: &Registry) -> prometheus::Result<Self> {
        let counters = Counters::register(registry)?;
        let lanes = match db.backend() {
            DatabaseBackend::Sqlite => 1,
            _ => db.pool_size().max(1) as usize,
        };
        let lanes = (0..lanes)
            .map(|_| {
                let (sender, receiver) = mpsc::channel(MAX_QUEUED);
                tokio::spawn(run_lane(db.clone(), receiver, publish.clone(), counters.clone()));
                sender
            })
            .collect();
        Ok(Self { lanes, counters })
    }

    /// How many writes wait on the lanes, not counting the batches being run.
    pub fn queued(&self) -> usize {
        self.lanes.iter().map(|lane| MAX_QUEUED - lane.capacity()).sum()
    }

    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            shared_transactions: self.counters.shared_transactions.get(),
            shared_writes: self.counters.shared_writes.get(),
            retried_writes: self.counters.retried_writes.get(),
        }
    }

    /// Runs `write` on `input` in a transaction shared with the other writes queued on `key`'s
    /// lane (a committee or task id), publishes its events once committed, and returns its
    /// answer. `write` may run twice (see the module's documentation).
    pub async fn write<I, T>(&self, key: i32, input: I, write: WriteFn<I, T>) -> ApiResult<T>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.queue(key, input, None, write).await
    }

    /// [`GroupCommit::write`], with checks that run before any write of its batch: if they
    /// refuse it, it is answered at once and the batch goes on without it.
    pub async fn write_checked<I, T>(&self, key: i32, input: I, check: CheckFn<I>, write: WriteFn<I, T>) -> ApiResult<T>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
    {
        self.queue(key, input, Some(check), write).await
    }

    async fn queue<I, T>(&self, key: i32, input: I, check: Option<CheckFn<I>>, write: WriteFn<I, T>) -> ApiResult<T>
    where
        I: Send + Sync + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(PendingWrite {
            input,
            check,
            write,
            outcome: None,
            reply,
        });
        let lane = &self.lanes[key.unsigned_abs() as usize % self.lanes.len()];
        lane.try_send(job).map_err(|error| match error {
            TrySendError::Full(_) => ApiError::Overloaded { retry_after_secs: 1 },
            TrySendError::Closed(_) => ApiError::Internal(anyhow::anyhow!("the write lanes have stopped")),
        })?;
        answer
            .await
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("a write lane dropped a write")))?
    }
}

/// A queued write, with its type erased so that one lane carries writes of every kind.
trait Job: Send {
    /// Runs the write's checks in `batch`: false if they refused it (the refusal is kept for the
    /// caller). An error that is not a refusal (the database's) is left for the write to meet.
    fn check<'t>(&'t mut self, batch: &'t Batch) -> BoxFuture<'t, bool>;
    /// Runs the write in `batch`; false if it failed (its error is kept for the caller).
    fn run<'t>(&'t mut self, batch: &'t Batch) -> BoxFuture<'t, bool>;
    /// Answers the caller: its error if it failed, else the commit's outcome.
    fn finish(self: Box<Self>, commit: Result<(), &DbErr>);
}

struct PendingWrite<I, T> {
    input: I,
    check: Option<CheckFn<I>>,
    write: WriteFn<I, T>,
    outcome: Option<ApiResult<T>>,
    reply: oneshot::Sender<ApiResult<T>>,
}

impl<I, T> Job for PendingWrite<I, T>
where
    I: Send + Sync + 'static,
    T: Send + 'static,
{
    fn check<'t>(&'t mut self, batch: &'t Batch) -> BoxFuture<'t, bool> {
        Box::pin(async move {
            let Some(check) = self.check else {
                return true;
            };
            match AssertUnwindSafe(check(batch, &self.input)).catch_unwind().await {
                Ok(Err(refusal)) if refusal.status_code().is_client_error() => {
                    self.outcome = Some(Err(refusal));
                    false
                }
                // Passed, or failed in a way the write itself will meet, in the batch or alone.
                _ => true,
            }
        })
    }

    fn run<'t>(&'t mut self, batch: &'t Batch) -> BoxFuture<'t, bool> {
        Box::pin(async move {
            // A panicking write must not take the lane, and every write queued behind it, down.
            let outcome = AssertUnwindSafe((self.write)(batch, &self.input))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(ApiError::Internal(anyhow::anyhow!("a write panicked"))));
            let succeeded = outcome.is_ok();
            self.outcome = Some(outcome);
            succeeded
        })
    }

    fn finish(self: Box<Self>, commit: Result<(), &DbErr>) {
        let answer = match (self.outcome, commit) {
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(_)), Err(error)) | (None, Err(error)) => Err(ApiError::Internal(
                anyhow::anyhow!("{error}").context("database error (commit)"),
            )),
            (None, Ok(())) => Err(ApiError::Internal(anyhow::anyhow!("a write never ran"))),
        };
        // The caller may have gone (client disconnected); the write stands all the same.
        let _ = self.reply.send(answer);
    }
}

async fn run_lane(db: Db, mut queue: mpsc::Receiver<Box<dyn Job>>, publish: Publish, counters: Counters) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        if jobs.len() == 1 {
            run_alone(&db, jobs, &publish).await;
            continue;
        }
        match run_together(&db, jobs).await {
            Together::Committed(jobs, recorded) => {
                // Checks may have left a lone write, or none.
                if jobs.len() > 1 {
                    counters.shared_transactions.inc();
                    counters.shared_writes.inc_by(jobs.len() as u64);
                }
                // Published before anyone is answered, so a caller that reads the feed next finds it.
                publish_committed(&publish, recorded);
                finish_all(jobs, Ok(()));
            }
            Together::CommitFailed(jobs, error, recorded) => match settle_unknown_commit(&db, error, recorded).await {
                Ok(recorded) => {
                    publish_committed(&publish, recorded);
                    finish_all(jobs, Ok(()));
                }
                Err(error) => finish_all(jobs, Err(&error)),
            },
            Together::WriteFailed(jobs) => {
                counters.retried_writes.inc_by(jobs.len() as u64);
                run_alone(&db, jobs, &publish).await;
            }
        }
    }
}

enum Together {
    Committed(Vec<Box<dyn Job>>, Recorded),
    /// The commit's outcome is unknown, so nothing is retried; its events tell whether it
    /// happened.
    CommitFailed(Vec<Box<dyn Job>>, DbErr, Recorded),
    /// A write failed (or the transaction could not begin): the batch was rolled back.
    WriteFailed(Vec<Box<dyn Job>>),
}

async fn run_together(db: &Db, jobs: Vec<Box<dyn Job>>) -> Together {
    let Ok(batch) = Batch::begin(db, jobs.len()).await else {
        return Together::WriteFailed(jobs);
    };
    let mut jobs = admitted(&batch, jobs).await;
    let writes = jobs.len();
    for (ran, job) in jobs.iter_mut().enumerate() {
        batch.writes_left.store(writes - ran, Ordering::Relaxed);
        if !job.run(&batch).await {
            // Dropping the transaction rolls the whole batch back.
            return Together::WriteFailed(jobs);
        }
    }
    match batch.commit().await {
        Ok(recorded) => Together::Committed(jobs, recorded),
        Err(BatchError::Append(_)) => Together::WriteFailed(jobs),
        Err(BatchError::Commit(error, recorded)) => Together::CommitFailed(jobs, error, recorded),
    }
}

/// The writes whose checks pass; the others are answered with their refusal.
async fn admitted(batch: &Batch, jobs: Vec<Box<dyn Job>>) -> Vec<Box<dyn Job>> {
    let mut admitted = Vec::with_capacity(jobs.len());
    for mut job in jobs {
        if job.check(batch).await {
            admitted.push(job);
        } else {
            job.finish(Ok(()));
        }
    }
    admitted
}

/// Each write in a transaction of its own.
async fn run_alone(db: &Db, jobs: Vec<Box<dyn Job>>, publish: &Publish) {
    for mut job in jobs {
        let batch = match Batch::begin(db, 1).await {
            Ok(batch) => batch,
            Err(error) => {
                job.finish(Err(&error));
                continue;
            }
        };
        if !job.run(&batch).await {
            drop(batch);
            job.finish(Ok(()));
            continue;
        }
        let committed = match batch.commit().await {
            Ok(recorded) => Ok(recorded),
            Err(BatchError::Append(error)) => Err(error),
            Err(BatchError::Commit(error, recorded)) => settle_unknown_commit(db, error, recorded).await,
        };
        match committed {
            Ok(recorded) => {
                publish_committed(publish, recorded);
                job.finish(Ok(()));
            }
            Err(error) => job.finish(Err(&error)),
        }
    }
}

/// A commit whose answer was lost (the connection dropped after `COMMIT` was sent) may have
/// happened. Its first event, read back on another connection, tells: if it is there, the
/// commit happened, and its writes are answered and its events published as any other's;
/// otherwise (or if the database cannot tell), the commit's error stands. Its clients would
/// otherwise hear nothing live of writes that are stored, and its callers would be told of a
/// failure and write again.
async fn settle_unknown_commit(db: &Db, error: DbErr, recorded: Recorded) -> Result<Recorded, DbErr> {
    match events::were_committed(db.conn(), &recorded).await {
        Ok(true) => {
            tracing::warn!(error = %error, "a commit's answer was lost, but it happened: its writes stand");
            Ok(recorded)
        }
        Ok(false) => Err(error),
        Err(check) => {
            tracing::warn!(error = %error, check = %check, "a commit's outcome is unknown and could not be read back");
            Err(error)
        }
    }
}

/// Publishes a commit's events. A panic there must not stop the lane, and every write queued on
/// it, for good: the events are stored, so clients that missed them catch up by resuming.
fn publish_committed(publish: &Publish, recorded: Recorded) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| publish(recorded))).is_err() {
        tracing::error!("publishing committed events panicked; clients catch up by resuming");
    }
}

fn finish_all(jobs: Vec<Box<dyn Job>>, commit: Result<(), &DbErr>) {
    for job in jobs {
        job.finish(commit);
    }
}
