//! How the server's database connections are set up.

use std::ffi::c_int;

use sea_orm::DatabaseBackend;
use secrecy::ExposeSecret;

use crate::helpers::{End, spawn_app, tcp_sockets};

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
/// build patches in (see `Cargo.toml`) turns it off on every connection; each one the pool opens
/// is checked.
#[actix_web::test]
async fn every_postgresql_connection_sends_without_waiting_for_acks() {
    let app = spawn_app().await;
    if app.state.db.backend() != DatabaseBackend::Postgres {
        // SQLite is a file in this process: no socket.
        return;
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
