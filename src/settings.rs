//! Typed settings: `config/default.toml`, then `config/{DCPORTS_ENV}.toml`, then
//! `DCPORTS__SECTION__KEY` environment variables (last wins). A key no setting has (a typo, or
//! a setting since removed) stops the start with its name, rather than being silently ignored.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Production => "production",
        }
    }

    fn from_env() -> anyhow::Result<Self> {
        match std::env::var("DCPORTS_ENV").as_deref() {
            Err(_) | Ok("development") => Ok(Environment::Development),
            Ok("test") => Ok(Environment::Test),
            Ok("production") => Ok(Environment::Production),
            Ok(other) => bail!("DCPORTS_ENV must be development, test or production, not {other:?}"),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(skip_deserializing, default = "default_environment")]
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub mail: MailSettings,
    pub bootstrap: BootstrapSettings,
    pub log: LogSettings,
    pub events: EventSettings,
    pub realtime: RealtimeSettings,
    pub documents: DocumentSettings,
    pub meetings: MeetingSettings,
    pub public: PublicSettings,
    pub bus: BusSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSettings {
    /// Empty: one node, the in-process broker is the whole bus. Set: Redis pub/sub between nodes.
    pub redis_url: String,
    /// The Redis channel the nodes of one deployment share.
    pub topic: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicSettings {
    /// Requests per minute each client address may make to the public area, and its burst.
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// How long this node may serve a cached public response when no change is seen (0: off),
    /// and the most body bytes the cache holds.
    pub cache_ttl_secs: u64,
    pub cache_max_bytes: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingSettings {
    /// Invitees are reminded this many hours before a scheduled meeting, once.
    pub reminder_hours: i64,
    pub reminder_check_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSettings {
    /// Where file content is stored (staging and content-addressed blobs).
    pub storage_dir: PathBuf,
    /// Largest upload, in bytes (413 `payload_too_large` beyond).
    pub max_upload_bytes: u64,
}

fn default_environment() -> Environment {
    Environment::Development
}

/// The most worker threads actix takes (it asserts as much).
pub const MAX_WORKERS: usize = 512;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub public_url: url::Url,
    pub json_limit_bytes: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub allowed_origins: Vec<String>,
    /// Worker threads serving requests and sockets; unset: one per CPU this process may use (a
    /// container's CPU quota or CPU set included). Set it when nodes share a machine without
    /// such limits: each would otherwise take all of its CPUs.
    #[serde(default)]
    pub workers: Option<usize>,
    /// The longest a request body may pause between two of its chunks: a body that stops
    /// arriving is answered 408 `request_timeout` then, instead of holding its connection.
    pub body_idle_timeout_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a query waits for a pooled connection before it fails: a request answers 500, a
    /// socket's `auth` closes with 1013.
    pub acquire_timeout_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The HS256 key. Empty outside production: see [`AuthSettings::signing_secret`].
    pub jwt_secret: SecretString,
    /// Where an installation without `jwt_secret` keeps the key it made itself.
    pub jwt_secret_file: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_days: i64,
    pub invitation_ttl_hours: i64,
    pub password_reset_ttl_hours: i64,
    pub max_failures_per_account: u32,
    pub max_failures_per_ip: u32,
    pub failure_window_secs: u64,
    /// Password-reset requests per address and per client IP in `failure_window_secs`.
    pub max_reset_requests_per_account: u32,
    pub max_reset_requests_per_ip: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Password hashes computed at once; 0 means one less than the number of cores (at least 1).
    pub max_concurrent_hashes: usize,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransportKind {
    File,
    Smtp,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: MailTransportKind,
    pub outbox_dir: PathBuf,
    pub from: String,
    pub poll_interval_ms: u64,
    pub retry_base_ms: u64,
    pub max_attempts: i32,
    pub smtp: SmtpSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: String,
    pub password: SecretString,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Events older than this are deleted; a client resuming from before gets `reset`.
    pub retention_days: i64,
    pub sweep_interval_secs: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealtimeSettings {
    /// Bytes of events a socket may have waiting before it is closed (1013) to resume later.
    pub max_pending_bytes: usize,
    /// A ping every `heartbeat_secs`; a client silent for `client_timeout_secs` is dropped.
    pub heartbeat_secs: u64,
    pub client_timeout_secs: u64,
    /// The first frame must authenticate within this time.
    pub auth_timeout_secs: u64,
    /// How long a socket outlives its access token before the client must re-authenticate.
    pub token_grace_secs: u64,
    /// Sockets whose database work (authenticating, subscribing, rechecking) runs at once; the
    /// others wait their turn holding little memory.
    pub concurrent_checks: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSettings {
    pub admin_email: String,
    pub admin_name: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// The shortest HS256 key taken: 256 bits, as RFC 7518 §3.2 asks.
const MIN_SECRET_LEN: usize = 32;

impl AuthSettings {
    /// The key access tokens are signed with: `jwt_secret`, or, when it is empty (never in
    /// production, where nodes must share one), the installation's own, made at its first start
    /// and kept in `jwt_secret_file`. A key shipped in the configuration would be everyone's.
    pub fn signing_secret(&self) -> anyhow::Result<SecretString> {
        if !self.jwt_secret.expose_secret().is_empty() {
            return Ok(self.jwt_secret.clone());
        }
        let secret = read_or_make_secret(&self.jwt_secret_file)
            .with_context(|| format!("the signing key file {}", self.jwt_secret_file.display()))?;
        if secret.len() < MIN_SECRET_LEN {
            bail!(
                "the signing key in {} must be at least {MIN_SECRET_LEN} bytes long",
                self.jwt_secret_file.display()
            );
        }
        Ok(SecretString::from(secret))
    }
}

/// The key in `path`, or a new random one written there, readable by its owner only. A process
/// starting beside this one may make it at the same moment: the first file linked into place
/// wins, and both read it.
fn read_or_make_secret(path: &Path) -> std::io::Result<String> {
    use base64::Engine as _;
    use rand::RngCore as _;

    match std::fs::read_to_string(path) {
        Ok(secret) => return Ok(secret.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 48];
    rand::rng().fill_bytes(&mut key);
    let draft = path.with_extension(format!("new-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(
        &mut options.open(&draft)?,
        base64::engine::general_purpose::STANDARD.encode(key).as_bytes(),
    )?;
    let placed = std::fs::hard_link(&draft, path);
    std::fs::remove_file(&draft)?;
    match placed {
        Ok(()) => tracing::info!(file = %path.display(), "made this installation's token signing key"),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

impl Settings {
    /// Loads the settings for `DCPORTS_ENV` from the configuration directory
    /// (`DCPORTS_CONFIG_DIR`, else `./config`).
    pub fn load() -> anyhow::Result<Self> {
        let dir = std::env::var_os("DCPORTS_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        Self::load_from(&dir, Environment::from_env()?)
    }

    pub fn load_from(dir: &Path, environment: Environment) -> anyhow::Result<Self> {
        let default_file = dir.join("default.toml");
        if !default_file.is_file() {
            bail!(
                "configuration file {} not found (run from the project root or set DCPORTS_CONFIG_DIR)",
                default_file.display()
            );
        }
        let raw = config::Config::builder()
            .add_source(config::File::from(default_file))
            .add_source(config::File::from(dir.join(format!("{}.toml", environment.as_str()))).required(false))
            .add_source(
                config::Environment::with_prefix("DCPORTS")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("server.trusted_proxies")
                    .with_list_parse_key("server.allowed_origins"),
            )
            .build()
            .context("Failed to read the configuration")?;
        let mut settings: Settings = raw.try_deserialize().context("Invalid configuration")?;
        settings.environment = environment;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let secret = self.auth.jwt_secret.expose_secret();
        if secret.is_empty() && self.environment == Environment::Production {
            bail!("setting auth.jwt_secret is missing; set DCPORTS__AUTH__JWT_SECRET, the same on every node");
        }
        if !secret.is_empty() && secret.len() < MIN_SECRET_LEN {
            bail!("setting auth.jwt_secret must be at least {MIN_SECRET_LEN} bytes long");
        }
        if self.environment == Environment::Production
            && self.mail.transport == MailTransportKind::Smtp
            && !self.mail.smtp.username.is_empty()
            && self.mail.smtp.password.expose_secret().is_empty()
        {
            bail!("setting mail.smtp.password is missing while mail.smtp.username is set");
        }
        if self.auth.access_token_ttl_secs <= 0 || self.auth.refresh_token_ttl_days <= 0 {
            bail!("settings auth.access_token_ttl_secs and auth.refresh_token_ttl_days must be positive");
        }
        // An access token is good only while its session's refresh tokens exist, and the
        // housekeeping deletes them once expired: a longer-lived access token would end early.
        if self.auth.access_token_ttl_secs > self.auth.refresh_token_ttl_days.saturating_mul(86_400) {
            bail!("setting auth.access_token_ttl_secs must not exceed auth.refresh_token_ttl_days");
        }
        if self.auth.argon2_memory_kib < 8 * self.auth.argon2_parallelism.max(1) {
            bail!("setting auth.argon2_memory_kib is too small for argon2");
        }
        if self.server.body_idle_timeout_secs == 0 {
            bail!("setting server.body_idle_timeout_secs must be at least 1");
        }
        if self.server.json_limit_bytes == 0 {
            bail!("setting server.json_limit_bytes must be positive");
        }
        if self
            .server
            .workers
            .is_some_and(|workers| !(1..=MAX_WORKERS).contains(&workers))
        {
            bail!("setting server.workers must be from 1 to {MAX_WORKERS} (or unset: one per CPU)");
        }
        // A socket waiting for the database hears nothing else: a longer wait than the heartbeat
        // allows would drop it as silent.
        let acquire = self.database.acquire_timeout_secs;
        if acquire == 0 || acquire >= self.realtime.client_timeout_secs {
            bail!(
                "setting database.acquire_timeout_secs must be at least 1 and less than realtime.client_timeout_secs"
            );
        }
        if self.mail.from.parse::<lettre::message::Mailbox>().is_err() {
            bail!("setting mail.from is not a valid mailbox: {:?}", self.mail.from);
        }
        Ok(())
    }

    /// Whether responses should carry HSTS (only when users reach us over https).
    pub fn uses_https(&self) -> bool {
        self.server.public_url.scheme() == "https"
    }

    /// Builds a link for mails, e.g. `link("/invitation", token)`.
    pub fn link(&self, path: &str, token: &str) -> String {
        let mut url = self.server.public_url.clone();
        url.set_path(path);
        url.query_pairs_mut().clear().append_pair("token", token);
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The project's own configuration, plus `overlay` as the test environment's file.
    fn load_with_overlay(overlay: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        std::fs::copy(shipped, dir.path().join("default.toml"))?;
        std::fs::write(dir.path().join("test.toml"), overlay)?;
        Settings::load_from(dir.path(), Environment::Test)
    }

    #[test]
    fn every_shipped_environment_file_has_only_known_keys() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        for environment in [Environment::Development, Environment::Test, Environment::Production] {
            match Settings::load_from(&shipped, environment) {
                Ok(settings) => assert_eq!(settings.environment, environment),
                // Production refuses the development secret, after every key was read.
                Err(error) => assert!(
                    environment == Environment::Production && format!("{error:#}").contains("jwt_secret"),
                    "{}: {error:#}",
                    environment.as_str()
                ),
            }
        }
    }

    #[test]
    fn a_key_no_setting_has_stops_the_start_and_is_named() {
        for (overlay, key) in [
            ("[realtime]\nrelay_from_sessions = 1024\n", "relay_from_sessions"),
            ("[auth]\naccess_token_ttl = 60\n", "access_token_ttl"),
            ("[mail.smtp]\npasword = \"x\"\n", "pasword"),
            ("[servr]\nport = 1\n", "servr"),
        ] {
            let error = load_with_overlay(overlay).expect_err(key);
            assert!(format!("{error:#}").contains(key), "{key}: {error:#}");
        }
    }

    #[test]
    fn server_workers_is_unset_by_default_and_within_actix_bounds_when_set() {
        assert_eq!(load_with_overlay("").unwrap().server.workers, None);
        let three = load_with_overlay("[server]\nworkers = 3\n").unwrap();
        assert_eq!(three.server.workers, Some(3));
        for workers in [0, MAX_WORKERS + 1] {
            let error = load_with_overlay(&format!("[server]\nworkers = {workers}\n")).expect_err("out of bounds");
            assert!(format!("{error:#}").contains("server.workers"), "{error:#}");
        }
    }

    #[test]
    fn a_body_may_pause_30_seconds_by_default_and_not_zero() {
        assert_eq!(load_with_overlay("").unwrap().server.body_idle_timeout_secs, 30);
        let error = load_with_overlay("[server]\nbody_idle_timeout_secs = 0\n").expect_err("no pause");
        assert!(
            format!("{error:#}").contains("server.body_idle_timeout_secs"),
            "{error:#}"
        );
    }

    /// With no key configured, the installation makes one at its first start, keeps it where
    /// only its owner reads it, and uses the same one on every later start; another
    /// installation makes another. A configured key is used as it is, and no file is made.
    #[test]
    fn without_a_configured_key_an_installation_makes_its_own_once_and_keeps_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut auth = load_with_overlay("").unwrap().auth;
        assert_eq!(auth.jwt_secret.expose_secret(), "", "nothing is shipped");
        auth.jwt_secret_file = dir.path().join("data/jwt_secret");
        let made = auth.signing_secret().unwrap();
        assert!(made.expose_secret().len() >= MIN_SECRET_LEN);
        assert_eq!(auth.signing_secret().unwrap().expose_secret(), made.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&auth.jwt_secret_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers = std::fs::read_dir(dir.path().join("data")).unwrap().count();
        assert_eq!(leftovers, 1, "only the key file");

        let mut other = auth.clone();
        other.jwt_secret_file = dir.path().join("other/jwt_secret");
        assert_ne!(other.signing_secret().unwrap().expose_secret(), made.expose_secret());

        let configured = "k".repeat(MIN_SECRET_LEN);
        other.jwt_secret = SecretString::from(configured.clone());
        other.jwt_secret_file = dir.path().join("unused/jwt_secret");
        assert_eq!(other.signing_secret().unwrap().expose_secret(), configured);
        assert!(!dir.path().join("unused").exists());

        std::fs::write(&auth.jwt_secret_file, "short").unwrap();
        let error = auth.signing_secret().expect_err("a short key");
        assert!(format!("{error:#}").contains("at least 32 bytes"), "{error:#}");
    }

    /// Production nodes must share a key, so production never makes one: it must be set, and
    /// long enough.
    #[test]
    fn production_starts_only_with_a_configured_key_of_32_bytes_or_more() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        for file in ["default.toml", "production.toml"] {
            std::fs::copy(shipped.join(file), dir.path().join(file)).unwrap();
        }
        let error = Settings::load_from(dir.path(), Environment::Production).expect_err("no key");
        assert!(format!("{error:#}").contains("DCPORTS__AUTH__JWT_SECRET"), "{error:#}");
        let error = load_with_overlay("[auth]\njwt_secret = \"short\"\n").expect_err("a short key");
        assert!(format!("{error:#}").contains("at least 32 bytes"), "{error:#}");
    }
}
