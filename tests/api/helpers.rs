//! `spawn_app()`: a real server on a random port over its own database, and typed helpers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dcports::db::Db;
use dcports::settings::{Environment, Settings};
use dcports::startup::Application;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub db: Db,
    pub state: actix_web::web::Data<dcports::state::AppState>,
    /// Where mail goes when the app was configured for SMTP: the test's SMTP server.
    smtp: Option<crate::smtp::SmtpLog>,
    _dir: tempfile::TempDir,
    _postgres: Option<PostgresDatabase>,
}

/// A fresh PostgreSQL database for one test, dropped when the test ends.
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside any async context we could borrow; a small runtime of its own does it.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let conn = Database::connect(&admin_url).await.ok()?;
                conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the application after `customize` adjusts its settings.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut settings = Settings::load_from(&config_dir, Environment::Test).expect("test settings");
    let (url, postgres) = database_for_test(dir.path()).await;
    settings.database.url = SecretString::from(url);
    settings.server.port = 0;
    settings.mail.outbox_dir = dir.path().join("outbox");
    settings.documents.storage_dir = dir.path().join("files");
    customize(&mut settings);
    dcports::telemetry::init(&settings.log);

    let app = Application::build(settings.clone()).await.expect("application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    actix_web::rt::spawn(app.run_until_stopped());
    let db = Db::connect(&settings.database)
        .await
        .expect("test connects to its database");
    let test_app = TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        settings,
        db,
        state,
        smtp: None,
        _dir: dir,
        _postgres: postgres,
    };
    test_app.wait_until_healthy().await;
    test_app
}

/// Settings under which every request and socket queries through the one pool the test
/// reaches as `app.state.db`, so that holding its connections holds theirs: of two connections,
/// one for the write lanes and one for everything else (too few to give HTTP workers their own
/// on PostgreSQL, `db::Pools`).
pub fn one_pool_for_requests(settings: &mut Settings) {
    settings.database.max_connections = 2;
}

/// SQLite in the test's temp dir, or a new database on `TEST_DATABASE_URL`'s server.
async fn database_for_test(dir: &Path) -> (String, Option<PostgresDatabase>) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if admin_url.starts_with("postgres") => {
            let name = format!("dcports_test_{}", uuid::Uuid::new_v4().simple());
            let conn = Database::connect(&admin_url)
                .await
                .expect("TEST_DATABASE_URL reachable");
            conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin_url);
            (format!("{base}/{name}"), Some(PostgresDatabase { admin_url, name }))
        }
        _ => (format!("sqlite://{}?mode=rwc", dir.join("dcports.db").display()), None),
    }
}

impl TestApp {
    async fn wait_until_healthy(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.client.get(self.url("/healthz")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the server did not become healthy");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends `count` PATCHes of `body` to `path` at once, all with `If-Match: "<version>"`, and
    /// returns their statuses: of writers racing from the same version, one may win.
    pub async fn racing_patches(
        &self,
        path: &str,
        token: &str,
        version: i64,
        body: Value,
        count: usize,
    ) -> Vec<StatusCode> {
        let urls = (0..count).map(|_| self.url(path)).collect();
        racing_patches(urls, token, version, body).await
    }

    /// The data of `channel`'s events of `kind`, in order, from the HTTP feed, page after page.
    pub async fn events_of(&self, channel: &str, kind: &str, token: &str) -> Vec<Value> {
        let (mut found, mut after) = (Vec::new(), 0);
        loop {
            let path = format!("/api/events?channel={channel}&after={after}&limit=200");
            let (status, feed) = self.get(&path, token).await;
            assert_eq!(status, StatusCode::OK, "{feed}");
            let items = feed["items"].as_array().unwrap();
            let Some(last) = items.last() else { return found };
            after = last["offset"].as_i64().unwrap();
            let of_kind = items.iter().filter(|event| event["kind"] == kind);
            found.extend(of_kind.map(|event| event["data"].clone()));
        }
    }

    /// Uploads `bytes` as `file_name` with the given extra fields; returns status and body.
    pub async fn upload(
        &self,
        path: &str,
        token: &str,
        file_name: &str,
        bytes: Vec<u8>,
        fields: &[(&str, &str)],
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut form = reqwest::multipart::Form::new();
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
        );
        let mut request = self.client.post(self.url(path)).bearer_auth(token).multipart(form);
        if let Some(version) = if_match {
            request = request.header("if-match", version);
        }
        let response = request.send().await.expect("upload sent");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Every file under the document storage folder (`staging/` and `blobs/`).
    pub fn stored_files(&self, sub: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out)
                } else {
                    out.push(path)
                }
            }
        }
        let mut files = Vec::new();
        walk(&self.settings.documents.storage_dir.join(sub), &mut files);
        files
    }

    pub fn outbox(&self) -> PathBuf {
        self.settings.mail.outbox_dir.clone()
    }

    /// Sends a JSON request with an optional bearer token and returns status and parsed body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// The body of a GET as text (pages, CSV, Markdown, metrics), with an optional bearer token.
    pub async fn text(&self, path: &str, token: Option<&str>) -> String {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("body read")
    }

    /// The served OpenAPI document.
    pub async fn openapi(&self) -> Value {
        let response = self.client.get(self.url("/api/openapi.json")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        self.post("/api/auth/login", None, json!({ "email": email, "password": password }))
            .await
    }

    /// Logs out the session that `pair` (the answer of a login or refresh) belongs to.
    pub async fn logout(&self, pair: &Value) {
        let body = json!({ "refresh_token": pair["refresh_token"] });
        let (status, _) = self.post("/api/auth/logout", None, body).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    /// An active secretariat account, created as `dcports admin create` does, and its access token.
    pub async fn secretariat(&self, email: &str) -> String {
        dcports::bootstrap::create_secretariat(
            &self.db,
            &self.settings,
            email,
            "Secretariat",
            SecretString::from(PASSWORD),
        )
        .await
        .expect("secretariat created");
        let (status, body) = self.login(email, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Invites `email` and returns the new member's id.
    pub async fn invite(&self, admin_token: &str, email: &str) -> i64 {
        let (status, body) = self
            .post(
                "/api/admin/members",
                Some(admin_token),
                json!({ "email": email, "name": "Invitee", "role": "member" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Invites `email`, accepts the invitation from the mail, and returns the token pair.
    pub async fn member(&self, admin_token: &str, email: &str) -> Value {
        self.invite(admin_token, email).await;
        let token = self.token_from_mail(email, "/invitation").await;
        let (status, body) = self
            .post(
                "/api/auth/invitations/accept",
                None,
                json!({ "token": token, "name": "Member", "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits for the newest mail to `to` whose link goes to `path`, and returns the link's token.
    pub async fn token_from_mail(&self, to: &str, path: &str) -> String {
        let marker = format!("{path}?token=");
        for _ in 0..200 {
            let token = self.mails_to(to).into_iter().rev().find_map(|mail| {
                mail.text
                    .split_whitespace()
                    .find_map(|word| word.split_once(&marker).map(|(_, t)| t.to_owned()))
            });
            if let Some(token) = token {
                return token;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no mail with a {path} link reached {to}");
    }

    /// Waits for a mail to `to` that satisfies `matches`.
    pub async fn wait_for_mail(&self, to: &str, matches: impl Fn(&Mail) -> bool) -> Mail {
        for _ in 0..200 {
            if let Some(mail) = self.mails_to(to).into_iter().find(|mail| matches(mail)) {
                return mail;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no matching mail reached {to}");
    }

    /// Reads mail from this SMTP server instead of the outbox.
    pub fn with_smtp(mut self, smtp: &crate::smtp::FakeSmtp) -> Self {
        self.smtp = Some(smtp.log.clone());
        self
    }

    /// Every mail delivered for `to` (outbox files, or the test's SMTP server), oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        let mails = match &self.smtp {
            Some(log) => log
                .messages
                .lock()
                .unwrap()
                .iter()
                .filter_map(|raw| parse_mail(raw))
                .collect(),
            None => read_outbox(&self.outbox()),
        };
        mails
            .into_iter()
            .filter(|mail| mail.to.eq_ignore_ascii_case(to))
            .collect()
    }
}

pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub modified: std::time::SystemTime,
}

pub fn parse_mail(raw: &[u8]) -> Option<Mail> {
    let message = mail_parser::MessageParser::default().parse(raw)?;
    let to = message.to()?.first()?.address()?.to_owned();
    Some(Mail {
        to,
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message.body_text(0)?.into_owned(),
        html: message.body_html(0).map(|html| html.into_owned()),
        modified: std::time::SystemTime::UNIX_EPOCH,
    })
}

fn read_outbox(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut mails: Vec<Mail> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "eml"))
        .filter_map(|entry| {
            let raw = std::fs::read(entry.path()).ok()?;
            let mut mail = parse_mail(&raw)?;
            mail.modified = entry.metadata().ok()?.modified().ok()?;
            Some(mail)
        })
        .collect();
    mails.sort_by_key(|mail| mail.modified);
    mails
}

/// One PATCH of `body` to each URL at once, all with `If-Match: "<version>"`; their statuses.
pub async fn racing_patches(urls: Vec<String>, token: &str, version: i64, body: Value) -> Vec<StatusCode> {
    let client = reqwest::Client::new();
    let patches = urls.into_iter().map(|url| {
        client
            .patch(url)
            .bearer_auth(token)
            .header("if-match", format!("\"{version}\""))
            .json(&body)
            .send()
    });
    futures_util::future::join_all(patches)
        .await
        .into_iter()
        .map(|response| response.unwrap().status())
        .collect()
}

/// How many migrations `Migrator::down` must undo to take back `name` and every later one.
pub fn migrations_since(name: &str) -> u32 {
    use migration::MigratorTrait as _;
    let names: Vec<String> = migration::Migrator::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    let position = names
        .iter()
        .position(|known| known == name)
        .unwrap_or_else(|| panic!("no migration {name}"));
    (names.len() - position) as u32
}

/// Which end of a TCP connection [`tcp_sockets`] matches the port at.
#[derive(Clone, Copy)]
pub enum End {
    /// This process's own end: connections a server of it accepted on that port.
    Local,
    /// The other end: connections this process opened to that port.
    Peer,
}

/// The connected TCP sockets of this process with `port` at `end`, each with whether
/// `TCP_NODELAY` (Nagle's algorithm off) is set on it. The test servers run in the test's
/// process, so their sockets, and their database connections, are read from `/proc/self/fd`.
pub fn tcp_sockets(end: End, port: u16) -> Vec<(i32, bool)> {
    let int_option = |fd: i32, level: i32, name: i32| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are locals of the sizes the call is told; a descriptor that
        // is not a socket (or was closed meanwhile) makes the call fail, which is checked.
        let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &raw mut len) };
        (rc == 0).then_some(value)
    };
    let port_at_end = |fd: i32| {
        // SAFETY: an all-zero `sockaddr_in` is a valid value.
        let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let (address_ptr, len_ptr) = ((&raw mut address).cast(), &raw mut len);
        // SAFETY: as above: the buffer and its length match, and failure is checked.
        let rc = unsafe {
            match end {
                End::Local => libc::getsockname(fd, address_ptr, len_ptr),
                End::Peer => libc::getpeername(fd, address_ptr, len_ptr),
            }
        };
        (rc == 0 && i32::from(address.sin_family) == libc::AF_INET).then(|| u16::from_be(address.sin_port))
    };
    std::fs::read_dir("/proc/self/fd")
        .expect("this process's descriptors")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&fd| port_at_end(fd) == Some(port))
        .filter(|&fd| int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(0))
        // A socket closed meanwhile (an idle connection timing out) fails the read or no longer
        // has the port (its number taken by another socket): it is not counted.
        .filter_map(|fd| Some((fd, int_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)? != 0)))
        .filter(|&(fd, _)| port_at_end(fd) == Some(port))
        .collect()
}
