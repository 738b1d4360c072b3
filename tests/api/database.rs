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
