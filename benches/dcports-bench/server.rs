//! A dcports server process for benchmarks, with a secretariat account and helpers.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

pub const PASSWORD: &str = "benchmark passphrase";

pub struct Server {
    pub base: String,
    pub ws: String,
    pub child: Child,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// How a benchmark node is started: its database (a temporary SQLite file when `None`), the
/// Redis bus that joins it to other nodes, and whether it creates the benchmark account (only
/// the first node of a shared database does).
#[derive(Default)]
pub struct NodeOptions<'a> {
    pub database: Option<&'a str>,
    pub redis: Option<&'a str>,
    pub second_node: bool,
    /// The node's worker threads (`server.workers`); `None`: the server's default, one per CPU.
    pub workers: Option<usize>,
}

impl Server {
    pub async fn start(database_url: Option<&str>) -> anyhow::Result<Self> {
        Self::start_node(NodeOptions {
            database: database_url,
            ..NodeOptions::default()
        })
        .await
    }

    pub async fn start_node(options: NodeOptions<'_>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = options
            .database
            .map(str::to_owned)
            .unwrap_or_else(|| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let command = |args: &[&str]| {
            // BENCH_SERVER_BIN runs another build of the server (side by side with this one).
            let binary = std::env::var("BENCH_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_dcports").to_owned());
            let mut command = Command::new(binary);
            command
                .args(args)
                .env("DCPORTS_CONFIG_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
                .env("DCPORTS__DATABASE__URL", &url)
                // One key for every node of a run, as production's nodes share theirs.
                .env(
                    "DCPORTS__AUTH__JWT_SECRET",
                    "bench-only-secret-never-used-anywhere-else-0123",
                )
                .env("DCPORTS__BUS__REDIS_URL", options.redis.unwrap_or_default())
                .env("DCPORTS__DATABASE__MAX_CONNECTIONS", "16")
                .env("DCPORTS__SERVER__PORT", port.to_string())
                .env("DCPORTS__MAIL__OUTBOX_DIR", dir.path().join("outbox"))
                .env(
                    "DCPORTS__LOG__LEVEL",
                    std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
                )
                // Throttling would refuse a login storm from one address and one account (each of
                // its 32 clients' logins counts as an attempt until its hash has been checked);
                // benchmarks measure the server.
                .env("DCPORTS__AUTH__MAX_FAILURES_PER_ACCOUNT", "1000000")
                .env("DCPORTS__AUTH__MAX_FAILURES_PER_IP", "1000000")
                .env("DCPORTS__PUBLIC__RATE_LIMIT_PER_MINUTE", "100000000")
                .env("DCPORTS__PUBLIC__RATE_LIMIT_BURST", "100000000");
            if let Some(workers) = options.workers {
                command.env("DCPORTS__SERVER__WORKERS", workers.to_string());
            }
            command
        };
        if !options.second_node {
            create_account(command(&[
                "admin",
                "create",
                "--email",
                "bench@sela.org",
                "--name",
                "Bench",
                "--password-stdin",
            ]))?;
        }
        let child = command(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("server.log"))?))
            .spawn()?;
        eprintln!("server log: {}", dir.path().join("server.log").display());
        let server = Server {
            base: format!("http://127.0.0.1:{port}"),
            ws: format!("ws://127.0.0.1:{port}/ws"),
            child,
            client: reqwest::Client::builder().pool_max_idle_per_host(256).build()?,
            _dir: dir,
        };
        for _ in 0..400 {
            if server
                .client
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the server did not start")
    }

    pub async fn login(&self) -> anyhow::Result<String> {
        let body: Value = self
            .client
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({ "email": "bench@sela.org", "password": PASSWORD }))
            .send()
            .await?
            .json()
            .await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access token")
    }

    pub async fn create_committee(&self, token: &str, name: &str) -> anyhow::Result<i64> {
        let body: Value = self
            .client
            .post(format!("{}/api/admin/committees", self.base))
            .bearer_auth(token)
            .json(&json!({ "name": name, "kind": "technical" }))
            .send()
            .await?
            .json()
            .await?;
        body["id"].as_i64().context("no committee id")
    }

    /// Resident memory of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `dcports admin create` with the benchmark password on its standard input.
fn create_account(mut command: Command) -> anyhow::Result<()> {
    let mut create = command.stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
    create.stdin.take().context("stdin")?.write_all(PASSWORD.as_bytes())?;
    anyhow::ensure!(create.wait()?.success(), "admin create failed");
    Ok(())
}

/// A PostgreSQL database of its own for one benchmark run, dropped afterwards: the benchmark
/// account and its data must not meet a previous run's.
pub struct ScratchDatabase {
    admin: sea_orm::DatabaseConnection,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    /// `server_url` is any database on the server (e.g. `postgres://postgres@127.0.0.1:5432/test`).
    pub async fn create(server_url: &str) -> anyhow::Result<Self> {
        use sea_orm::ConnectionTrait;
        let admin = sea_orm::Database::connect(server_url).await.context("PostgreSQL")?;
        let name = format!("dcports_bench_{}", std::process::id());
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
            .await?;
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        // Keep the URL's options (e.g. `?sslmode=disable`) for the scratch database.
        let (path, options) = server_url.split_once('?').unwrap_or((server_url, ""));
        let (base, _) = path.rsplit_once('/').context("a database URL ends with /name")?;
        let options = if options.is_empty() {
            String::new()
        } else {
            format!("?{options}")
        };
        Ok(Self {
            url: format!("{base}/{name}{options}"),
            admin,
            name,
        })
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        use sea_orm::ConnectionTrait;
        self.admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await?;
        Ok(())
    }
}
