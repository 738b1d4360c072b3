//! `http`: requests per second and p99 at 64 concurrent connections for a cached public list,
//! an authenticated list and an authenticated write (a task with its event), beside a trivial
//! actix-web handler (the ceiling) and a bare insert loop on the same database.
//!
//! `login-storm`: p99 of a cheap authenticated GET, idle and while 32 clients log in without
//! pause (argon2 on the blocking pool).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::server::{ScratchDatabase, Server};
use crate::{option, percentile};

const CONCURRENCY: usize = 64;
/// `database.max_connections` of the benchmark server (server.rs).
const SERVER_CONNECTIONS: usize = 16;

pub struct Options {
    seconds: u64,
    database: Option<String>,
    /// Task writes go round-robin to this many committees (each committee's events are one
    /// channel, whose offsets are taken one writer at a time).
    committees: usize,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let database: String = option(args, "--database", String::new())?;
        Ok(Self {
            seconds: option(args, "--seconds", 5)?,
            database: (!database.is_empty()).then_some(database),
            committees: option(args, "--committees", 1usize)?.max(1),
        })
    }
}

struct Load {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

/// Runs `request` from `concurrency` tasks for `seconds`; counts successes and their latency.
async fn load<F, Fut>(concurrency: usize, seconds: u64, request: F) -> Load
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicUsize::new(0));
    let counter = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (request, errors, counter) = (request.clone(), errors.clone(), counter.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    if request(n).await {
                        latencies.push(started.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Load {
        per_sec: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 50.0) as f64 / 1000.0,
        p99_ms: percentile(&all, 99.0) as f64 / 1000.0,
        errors: errors.load(Ordering::Relaxed),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()
        .unwrap_or_default()
}

fn row(name: &str, load: &Load) {
    println!(
        "| {name} | {:.0} | {:.2} | {:.2} | {} |",
        load.per_sec, load.p50_ms, load.p99_ms, load.errors
    );
}

/// Runs `bench` on a scratch PostgreSQL database when `--database` names one (dropped after),
/// or on the server's temporary SQLite file.
async fn with_database<F, Fut>(options: &Options, bench: F) -> anyhow::Result<()>
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let Some(url) = &options.database else {
        return bench(None).await;
    };
    let scratch = ScratchDatabase::create(url).await?;
    let result = bench(Some(scratch.url.clone())).await;
    scratch.drop().await?;
    result
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    with_database(&options, |database| {
        throughput(options.seconds, options.committees, database)
    })
    .await
}

async fn throughput(seconds: u64, committees: usize, database: Option<String>) -> anyhow::Result<()> {
    let server = Server::start(database.as_deref()).await?;
    let token = server.login().await?;
    let mut committee_ids = Vec::with_capacity(committees);
    for n in 0..committees {
        committee_ids.push(server.create_committee(&token, &format!("http bench {n}")).await?);
    }
    let committee_ids = Arc::new(committee_ids);
    println!(
        "| scenario ({}) | req/s | p50 ms | p99 ms | errors |",
        if database.is_some() { "PostgreSQL" } else { "SQLite" }
    );
    println!("|---|---|---|---|---|");

    let ceiling = trivial_server().await?;
    let http = client();
    let trivial = load(CONCURRENCY, seconds, move |_| {
        let (http, url) = (http.clone(), ceiling.clone());
        async move { http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    row("trivial actix-web handler (ceiling)", &trivial);

    let (http, base) = (client(), server.base.clone());
    let public = load(CONCURRENCY, seconds, move |_| {
        let (http, url) = (http.clone(), format!("{base}/api/public/countries"));
        async move { http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) }
    })
    .await;
    row("GET /api/public/countries (cached public list)", &public);

    let (http, base, bearer) = (client(), server.base.clone(), token.clone());
    let authenticated = load(CONCURRENCY, seconds, move |_| {
        let (http, url, bearer) = (http.clone(), format!("{base}/api/committees"), bearer.clone());
        async move {
            http.get(&url)
                .bearer_auth(&bearer)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    row("GET /api/committees (authenticated list)", &authenticated);

    let (http, base, bearer) = (client(), server.base.clone(), token.clone());
    let writes = load(CONCURRENCY, seconds, move |n| {
        let committee = committee_ids[n % committee_ids.len()];
        let (http, url, bearer) = (
            http.clone(),
            format!("{base}/api/committees/{committee}/tasks"),
            bearer.clone(),
        );
        async move {
            let body = json!({ "title": format!("task {n}") });
            http.post(&url)
                .bearer_auth(&bearer)
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
    row(
        &format!("POST /api/committees/{{id}}/tasks (write + event), {committees} committee(s)"),
        &writes,
    );
    let batching = group_commit_counters(&server.base).await?;

    // SQLite has one writer at a time, so one loop is its ceiling; PostgreSQL commits many
    // transactions at once, so it gets as many loops as the server has connections (pgbench -c).
    let loops = if database.is_some() { SERVER_CONNECTIONS } else { 1 };
    let raw = raw_inserts(database.as_deref(), seconds, loops, None).await?;
    println!("| bare insert loop, one transaction per row, {loops} connection(s) | {raw:.0} | | | |");
    let ordered = raw_inserts(database.as_deref(), seconds, loops, Some(committees)).await?;
    println!(
        "| ordered insert loop: the same, plus a head taken under its row lock ({committees} head(s)), \
         {loops} connection(s) | {ordered:.0} | | | |"
    );
    println!();
    println!(
        "public list / ceiling = {:.2}; task create / bare insert = {:.2}; task create / ordered insert = {:.2}",
        public.per_sec / trivial.per_sec,
        writes.per_sec / raw,
        writes.per_sec / ordered
    );
    println!("{batching}");
    Ok(())
}

/// How the task creates were committed, from the server's `/metrics`.
async fn group_commit_counters(base: &str) -> anyhow::Result<String> {
    let metrics = client().get(format!("{base}/metrics")).send().await?.text().await?;
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let transactions = counter("dcports_write_shared_transactions_total");
    let shared = counter("dcports_write_shared_total");
    Ok(format!(
        "group commit: {shared:.0} writes in {transactions:.0} shared transactions ({:.1} per transaction), \
         {:.0} retried alone",
        shared / transactions.max(1.0),
        counter("dcports_write_retried_total")
    ))
}

/// The ceiling: a hello-world actix-web server on the same machine.
async fn trivial_server() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/", listener.local_addr()?);
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        system.block_on(async move {
            let server = actix_web::HttpServer::new(|| {
                actix_web::App::new().route(
                    "/",
                    actix_web::web::get()
                        .to(|| async { actix_web::HttpResponse::Ok().json(json!([{ "code": "AR" }])) }),
                )
            })
            .listen(listener)
            .map(|server| server.run());
            if let Ok(server) = server {
                let _ = server.await;
            }
        });
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(url)
}

/// Inserts rows one transaction at a time for `seconds` from `loops` connections at once, as
/// fast as the database allows; rows per second over all loops.
///
/// With `heads`, each transaction first bumps one of that many counters (round-robin), as
/// recording an event takes its channel's next offset: the row stays locked until the commit,
/// so the transactions of one head commit one after the other. That is the ceiling of any
/// write that emits an event into one channel, whatever the server does around it.
async fn raw_inserts(database: Option<&str>, seconds: u64, loops: usize, heads: Option<usize>) -> anyhow::Result<f64> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let dir = tempfile::tempdir()?;
    let url = database
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}/raw.db?mode=rwc", dir.path().display()));
    let mut options = sea_orm::ConnectOptions::new(url);
    options
        .max_connections(loops as u32)
        // As the server's pool does: no ping on every checkout.
        .test_before_acquire(false)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
        });
    let db = sea_orm::Database::connect(options)
        .await
        .context("raw insert database")?;
    db.execute_unprepared("DROP TABLE IF EXISTS bench_raw").await?;
    db.execute_unprepared("CREATE TABLE bench_raw (id BIGINT PRIMARY KEY, title TEXT NOT NULL)")
        .await?;
    db.execute_unprepared("DROP TABLE IF EXISTS bench_head").await?;
    db.execute_unprepared("CREATE TABLE bench_head (name TEXT PRIMARY KEY, head BIGINT NOT NULL)")
        .await?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..loops)
        .map(|_| {
            let (db, next) = (db.clone(), next.clone());
            tokio::spawn(async move {
                let mut inserted = 0u64;
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let txn = db.begin().await?;
                    if let Some(heads) = heads {
                        let head = n % heads;
                        txn.execute_unprepared(&format!(
                            "INSERT INTO bench_head (name, head) VALUES ('committee:{head}', 1) \
                             ON CONFLICT (name) DO UPDATE SET head = bench_head.head + 1"
                        ))
                        .await?;
                    }
                    txn.execute_unprepared(&format!("INSERT INTO bench_raw (id, title) VALUES ({n}, 'task {n}')"))
                        .await?;
                    txn.commit().await?;
                    inserted += 1;
                }
                Ok::<_, anyhow::Error>(inserted)
            })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        inserted += task.await??;
    }
    let rate = inserted as f64 / started.elapsed().as_secs_f64();
    db.execute_unprepared("DROP TABLE bench_raw").await?;
    db.execute_unprepared("DROP TABLE bench_head").await?;
    Ok(rate)
}

/// p99 of `GET /api/me` idle, then during a storm of 32 clients logging in.
pub async fn login_storm(options: Options) -> anyhow::Result<()> {
    with_database(&options, |database| storm(options.seconds, database)).await
}

async fn storm(seconds: u64, database: Option<String>) -> anyhow::Result<()> {
    let server = Server::start(database.as_deref()).await?;
    let token = server.login().await?;
    let probe = |base: String, token: String| async move {
        let http = client();
        load(1, seconds, move |_| {
            let (http, url, token) = (http.clone(), format!("{base}/api/me"), token.clone());
            async move {
                http.get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await
    };
    let idle = probe(server.base.clone(), token.clone()).await;
    let base = server.base.clone();
    let storm = tokio::spawn(async move {
        let http = client();
        load(32, seconds, move |_| {
            let (http, url) = (http.clone(), format!("{base}/api/auth/login"));
            async move {
                let body = json!({ "email": "bench@sela.org", "password": crate::server::PASSWORD });
                http.post(&url)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await
    });
    let busy = probe(server.base.clone(), token).await;
    let logins = storm.await?;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| GET /api/me p99, idle | {:.2} ms |", idle.p99_ms);
    println!("| GET /api/me p99, during the login storm | {:.2} ms |", busy.p99_ms);
    println!("| ratio (target ≤ 2) | {:.2} |", busy.p99_ms / idle.p99_ms);
    println!(
        "| logins/s (32 clients, argon2id m=19 MiB t=2 p=1) | {:.1} |",
        logins.per_sec
    );
    println!("| failed logins | {} |", logins.errors);
    Ok(())
}
