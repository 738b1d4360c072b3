//! argon2id hashing, always on the blocking pool so a hash never stalls an executor thread.

use anyhow::Context;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::settings::AuthSettings;

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// Hashes running at once. Each takes a core for tens of milliseconds: uncapped, a login
    /// storm would take every core from the requests that need none.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// Verified against when the account is unknown, so that a wrong email costs as much
    /// time as a wrong password and timing reveals nothing.
    dummy_hash: String,
}

impl Passwords {
    pub fn new(settings: &AuthSettings) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.argon2_parallelism,
            None,
        )
        .map_err(|error| anyhow::anyhow!("invalid argon2 settings: {error}"))?;
        let dummy_hash = hash_with(&params, b"dcports dummy password for unknown accounts")?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let concurrent = match settings.max_concurrent_hashes {
            0 => cores.saturating_sub(1).max(1),
            n => n,
        };
        Ok(Self {
            params,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(concurrent)),
            dummy_hash,
        })
    }

    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let params = self.params.clone();
        let password = password.clone();
        let _permit = self.permits.acquire().await.context("hashing is shut down")?;
        tokio::task::spawn_blocking(move || hash_with(&params, password.expose_secret().as_bytes()))
            .await
            .context("Failed to join the hashing task")?
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is none.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.clone();
        let _permit = self.permits.acquire().await.context("hashing is shut down")?;
        let matches = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            let parsed =
                PasswordHash::new(&hash).map_err(|error| anyhow::anyhow!("stored hash is corrupt: {error}"))?;
            Ok(Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .context("Failed to join the verifying task")??;
        Ok(known && matches)
    }
}

fn hash_with(params: &Params, password: &[u8]) -> anyhow::Result<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("Failed to hash a password: {error}"))
}
