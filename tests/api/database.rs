//! How the server's database connections are set up.

use std::ffi::c_int;

use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use secrecy::ExposeSecret;

use crate::helpers::{End, spawn_app, spawn_app_with, tcp_sockets};

/// SQLite recompiled a statement each time it ran when the plan could depend on a bound value
/// (every `LIMIT ?`), unless the query planner stability guarantee is on (`db::keep_query_plans`).
/// The guarantee is a setting of each connection, so each one the pool opens is checked.
#[actix_web::test]
async fn every_sqlite_connection_keeps_its_query_plans() {
    let app = spawn_app().await;
    if app.state.db.backend() != DatabaseBackend::Sqlite {
        // PostgreSQL plans prepared statements itself; there is nothing to set.
        return;
    }
    let pool = app.state.db.conn().get_sqlite_connection_pool();
    let mut held = Vec::new();
    for _ in 0..app.state.db.pool_size() {
        held.push(pool.acquire().await.expect("a pooled connection"));
    }
    for connection in &mut held {
        let mut handle = connection.lock_handle().await.unwrap();
        let mut on: c_int = -1;
        // SAFETY: the handle is locked for us; -1 reads the setting into `on` without changing it.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_db_config(
                handle.as_raw_handle().as_ptr(),
                libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
                -1 as c_int,
                &mut on as *mut c_int,
            )
        };
        assert_eq!(rc, libsqlite3_sys::SQLITE_OK);
        assert_eq!(on, 1, "QPSG is off on a pooled connection");
    }
}

/// sqlx 0.9.0 leaves Nagle's algorithm on the sockets it opens, so a statement longer than one
/// TCP segment (a batch's events) waited for PostgreSQL's delayed ACK, 40 ms. The sqlx-core the
/// build patches in (see `Cargo.toml`) turns it off on every connection; each one the pools open
/// is checked, the workers' own included.
#[actix_web::test]
async fn every_postgresql_connection_sends_without_waiting_for_acks() {
    let app = spawn_app().await;
    if app.state.db.backend() != DatabaseBackend::Postgres {
        // SQLite is a file in this process: no socket.
        return;
    }
    // The workers open their pools' connections on their first queries.
    let admin = app.secretariat("admin@sela.org").await;
    let requests = (0..32).map(|_| app.get("/api/committees", &admin));
    for (status, body) in futures_util::future::join_all(requests).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let pool = app.state.db.conn().get_postgres_connection_pool();
    let mut held = Vec::new();
    for _ in 0..app.state.db.pool_size() {
        held.push(pool.acquire().await.expect("a pooled connection"));
    }
    let url = url::Url::parse(app.settings.database.url.expose_secret()).unwrap();
    let port = url.port().unwrap_or(5432);
    let connections = tcp_sockets(End::Peer, port);
    assert!(
        connections.len() >= held.len(),
        "{} connections held, {} sockets to port {port} found",
        held.len(),
        connections.len()
    );
    // Other tests of this process may be connecting at the same moment, and a socket is
    // connected a moment before sqlx turns Nagle off: a socket found with it on is read again
    // a little later, and must have it off by then.
    let nagle_on: Vec<i32> = connections
        .into_iter()
        .filter_map(|(fd, nodelay)| (!nodelay).then_some(fd))
        .collect();
    if !nagle_on.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        for (fd, nodelay) in tcp_sockets(End::Peer, port) {
            assert!(
                nodelay || !nagle_on.contains(&fd),
                "socket {fd} to PostgreSQL has Nagle's algorithm on"
            );
        }
    }
}

/// On PostgreSQL each HTTP worker queries on connections it opened itself: a socket is driven by
/// the runtime that opened it, and one opened by another worker made every query wait on that
/// worker too (`db::Pools`). The workers' pools come out of `database.max_connections`, which
/// the server's connections, all of them, stay within.
#[actix_web::test]
async fn each_worker_queries_postgresql_on_its_own_connections_within_the_setting() {
    use sea_orm::TransactionTrait;
    let app = spawn_app_with(|settings| {
        settings.database.max_connections = 10;
        settings.server.workers = Some(2);
        settings.database.acquire_timeout_secs = 1;
    })
    .await;
    if app.state.db.backend() != DatabaseBackend::Postgres {
        // SQLite's connections are threads of its own, behind one writer gate: one pool.
        return;
    }
    let admin = app.secretariat("admin@sela.org").await;
    // The pool outside requests, held: a request that queried through it would wait for a
    // connection past `acquire_timeout_secs` and fail.
    let mut outside = Vec::new();
    for _ in 0..app.state.db.pool_size() {
        outside.push(app.state.db.conn().begin().await.unwrap());
    }
    // Enough requests at once, over connections the server spreads between its workers, that
    // each worker's pool opens all it may.
    for _ in 0..10 {
        let requests = (0..64).map(|_| app.get("/api/committees", &admin));
        for (status, body) in futures_util::future::join_all(requests).await {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    drop(outside);
    let db = &app.db;
    let count = |application_name: &'static str| async move {
        let query =
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1";
        let row = db
            .conn()
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                query,
                [application_name.into()],
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    };
    // 10 connections: 5 for the write lanes, and of the other 5 two for each worker and one
    // for the work outside requests.
    let (workers, lanes) = (count("dcports worker").await, count("dcports write lanes").await);
    assert!((2..=4).contains(&workers), "{workers} connections of the workers' own");
    assert!(lanes <= 5, "{lanes} connections of the write lanes");
    // The pool outside requests has the one left (named `dcports`, as the test's own
    // connections are, so it is not counted by name).
    assert_eq!(app.state.db.pool_size(), 1);
}

/// How the database would run `sql`, one line per step: SQLite's `EXPLAIN QUERY PLAN`, or
/// PostgreSQL's `EXPLAIN` with sequential scans ruled out (on a test's near-empty tables the
/// planner would rightly prefer them), so that an index is named when one serves the query.
async fn plan_of(db: &dcports::db::Db, sql: &str) -> String {
    use sea_orm::TransactionTrait as _;
    let backend = db.backend();
    let txn = db.conn().begin().await.unwrap();
    let (explain, column) = match backend {
        DatabaseBackend::Postgres => {
            txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.unwrap();
            ("EXPLAIN", "QUERY PLAN")
        }
        _ => ("EXPLAIN QUERY PLAN", "detail"),
    };
    let rows = txn
        .query_all_raw(Statement::from_string(backend, format!("{explain} {sql}")))
        .await
        .unwrap();
    let lines: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String>("", column).unwrap())
        .collect();
    lines.join("\n")
}

/// The queries that grow with the data are served by an index of their own: a committee's
/// meetings a page at a time, an indicator's
/// public values in their order, a port's values, the calendar feed's year, a meeting's action
/// items, the housekeeping's expired sessions, an organization's members and a port community's organizations.
#[actix_web::test]
async fn the_queries_that_grow_with_the_data_use_their_indexes() {
    let app = spawn_app().await;
    for (sql, index) in [
        (
            "SELECT * FROM indicator_values WHERE indicator_id = 1 AND status = 'validated' ORDER BY year, port_id LIMIT 51",
            "idx_indicator_values_indicator_status_year",
        ),
        (
            "SELECT * FROM indicator_values WHERE port_id = 1 AND status = 'validated' ORDER BY year",
            "idx_indicator_values_port_status_year",
        ),
        (
            "SELECT * FROM meetings WHERE committee_id = 1 AND id > 10 ORDER BY id LIMIT 51",
            "idx_meetings_committee_id",
        ),
        (
            "SELECT * FROM meetings WHERE starts_at >= '2026-01-01' ORDER BY starts_at",
            "idx_meetings_starts_at",
        ),
        (
            "SELECT * FROM agenda_items WHERE parent_id = 7",
            "idx_agenda_items_parent",
        ),
        (
            "SELECT * FROM refresh_tokens WHERE expires_at < '2026-01-01'",
            "idx_refresh_tokens_expires_at",
        ),
        ("SELECT * FROM tasks WHERE meeting_id = 3", "idx_tasks_meeting"),
        (
            "SELECT * FROM members WHERE organization_id = 3",
            "idx_members_organization",
        ),
        (
            "SELECT * FROM organizations WHERE port_community_id = 3",
            "idx_organizations_port_community",
        ),
    ] {
        let plan = plan_of(&app.db, sql).await;
        assert!(plan.contains(index), "{sql}\n{plan}");
    }
}
