//! The binary itself: configuration errors, `migrate`, `admin create`, and the first start.

use std::io::{BufRead, BufReader, Write};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn dcports(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dcports"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DCPORTS_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
        .env(
            "DCPORTS__DATABASE__URL",
            format!("sqlite://{}/cli.db?mode=rwc", dir.display()),
        )
        .env("DCPORTS__MAIL__OUTBOX_DIR", dir.join("outbox"))
        .env("DCPORTS__LOG__LEVEL", "info")
        .current_dir(dir);
    command
}

#[test]
fn production_refuses_to_start_with_the_development_jwt_secret() {
    let dir = tempfile::tempdir().unwrap();
    let output = dcports(dir.path())
        .env("DCPORTS_ENV", "production")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("auth.jwt_secret"), "{stderr}");
}

#[test]
fn a_bad_setting_stops_start_up_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = dcports(dir.path())
        .env("DCPORTS__SERVER__PORT", "eighty")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.port"), "{stderr}");

    let output = dcports(dir.path())
        .env("DCPORTS__AUTH__REFRESH_TOKEN_TTL_DAYS", "1")
        .env("DCPORTS__AUTH__ACCESS_TOKEN_TTL_SECS", "86401")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("auth.access_token_ttl_secs must not exceed"),
        "{stderr}"
    );

    let output = dcports(dir.path())
        .env("DCPORTS__DATABASE__ACQUIRE_TIMEOUT_SECS", "0")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database.acquire_timeout_secs"), "{stderr}");

    let output = dcports(dir.path())
        .env("DCPORTS_ENV", "staging")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("DCPORTS_ENV"));
    let output = dcports(dir.path())
        .env("DCPORTS_CONFIG_DIR", dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("default.toml"));
}

#[test]
fn migrate_then_admin_create_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = dcports(dir.path()).arg("migrate").output().unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(dir.path().join("cli.db").exists());

    let create = |password: &str| {
        let mut child = dcports(dir.path())
            .args([
                "admin",
                "create",
                "--email",
                "Ops@SELA.org",
                "--name",
                "Ops",
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let short = create("short\n");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12"));
    let created = create("a long enough passphrase\n");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(String::from_utf8_lossy(&created.stdout).contains("ops@sela.org"));
    let again = create("a long enough passphrase\n");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Without a terminal and without --password-stdin it refuses instead of hanging.
    let no_tty = dcports(dir.path())
        .args(["admin", "create", "--email", "x@sela.org", "--name", "X"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&no_tty.stderr).contains("--password-stdin"));
}

#[test]
fn the_first_start_creates_the_secretariat_and_logs_a_setup_link_but_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = dcports(dir.path())
        .env("DCPORTS__SERVER__PORT", "0")
        .env("DCPORTS__BOOTSTRAP__ADMIN_EMAIL", "first@sela.org")
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let started = Instant::now();
    let mut log = String::new();
    let mut lines = BufReader::new(stderr).lines();
    while started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        log.push_str(&line);
        log.push('\n');
        if line.contains("dcports listening") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(log.contains("created the secretariat account"), "{log}");
    assert!(log.contains("first@sela.org"));
    assert!(log.contains("/invitation?token=dci_"), "{log}");
    assert!(!log.to_lowercase().contains("password_hash"));
}

#[test]
fn secrets_never_reach_the_logs_nor_garbled_requests_the_error_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = dcports(dir.path())
        .env("DCPORTS__SERVER__PORT", port.to_string())
        .env("DCPORTS__LOG__LEVEL", "debug")
        .env("DCPORTS__BOOTSTRAP__ADMIN_EMAIL", "first@sela.org")
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut log);
        log
    });
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Each request must reach the server and be answered, or the log proves nothing.
    let statuses = runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut up = false;
        for _ in 0..400 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(up, "the server came up");
        let login = client
            .post(format!("{base}/api/auth/login"))
            .json(&serde_json::json!({ "email": "first@sela.org", "password": "SECRETPASSWORD-7f3a" }));
        let feed = client.get(format!("{base}/api/me/calendar.ics?token=dcf_SECRETFEEDTOKEN-9b2c"));
        let me = client.get(format!("{base}/api/me")).bearer_auth("SECRETBEARER-4d1e");
        let refresh = client
            .post(format!("{base}/api/auth/refresh"))
            .json(&serde_json::json!({ "refresh_token": "dcr_SECRETREFRESH-8a8a" }));
        // A JSON string where an object belongs: serde's message quotes it.
        let quoted = client
            .post(format!("{base}/api/auth/login"))
            .header("content-type", "application/json")
            .body(r#""SECRETQUOTED-3c3c""#);
        // Refused before its route's parameters are read: actix-web-prom would warn of it.
        let nul = client.get(format!("{base}/api/public/indicators/a%00b/values"));
        let mut statuses = Vec::new();
        for request in [login, feed, me, refresh, quoted, nul] {
            statuses.push(request.send().await.unwrap().status().as_u16());
        }
        // Requests actix-http refuses itself, before any handler: a URI over 64 KiB, and a
        // request line that is not HTTP. Each is answered 400 and its connection closed.
        let long_uri = format!(
            "GET /api/public/countries?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(70_000)
        );
        for request in [long_uri.as_bytes(), b"NOT AN HTTP REQUEST\r\n\r\n"] {
            let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            connection.write_all(request).await.unwrap();
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(10), connection.read_to_end(&mut answer))
                .await
                .expect("the server answers and closes")
                .unwrap();
            statuses.push(if answer.starts_with(b"HTTP/1.1 400") { 400 } else { 0 });
        }
        statuses
    });
    assert_eq!(statuses, [401, 404, 401, 401, 400, 400, 400, 400]);
    child.kill().unwrap();
    child.wait().unwrap();
    let log = reader.join().unwrap();
    // The requests were logged (at debug, with their paths), and the secrets were not.
    for path in [
        "/api/auth/login",
        "/api/me/calendar.ics",
        "/api/me",
        "/api/auth/refresh",
    ] {
        assert!(log.contains(path), "{path} is in the log: {log}");
    }
    // Connections the clients garbled, and requests refused early, are theirs to worry about:
    // not in the error log, nor warned of.
    assert!(!log.contains("stream error"), "{log}");
    assert!(!log.contains("mixed cardinality"), "{log}");
    assert!(
        log.contains("/api/public/indicators/a%00b/values"),
        "the NUL request was logged: {log}"
    );
    for secret in [
        "SECRETPASSWORD-7f3a",
        "SECRETFEEDTOKEN-9b2c",
        "SECRETBEARER-4d1e",
        "SECRETREFRESH-8a8a",
        "SECRETQUOTED-3c3c",
    ] {
        assert!(!log.contains(secret), "{secret} appears in the log");
    }
}
