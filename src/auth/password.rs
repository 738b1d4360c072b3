//! argon2id hashing, on threads of its own so a hash never stalls an executor thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use anyhow::Context;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::settings::AuthSettings;

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// Where hashes run. Each takes a core for tens of milliseconds: the pool's size caps how
    /// many run at once, and its threads yield to the request threads (see `HashPool`).
    pool: HashPool,
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
            pool: HashPool::start(concurrent)?,
            dummy_hash,
        })
    }

    pub async fn hash(&self, password: &SecretString) -> anyhow::Result<String> {
        let params = self.params.clone();
        let password = password.clone();
        self.pool
            .run(move || hash_with(&params, password.expose_secret().as_bytes()))
            .await?
    }

    /// How many hashes and verifications have been run (each one argon2 computation).
    pub fn computed(&self) -> u64 {
        self.pool.runs.load(Ordering::Relaxed)
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is none.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.clone();
        let matches = self
            .pool
            .run(move || -> anyhow::Result<bool> {
                let parsed =
                    PasswordHash::new(&hash).map_err(|error| anyhow::anyhow!("stored hash is corrupt: {error}"))?;
                Ok(Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok())
            })
            .await??;
        Ok(known && matches)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A few threads that only hash passwords, at a lower CPU priority (nice 10) than the request
/// threads: during a login storm a cheap request preempts a hash at once instead of waiting for
/// the hash's time slice, and the hashes use whatever CPU is left. Jobs beyond the pool's size
/// wait in its queue. The threads end when the last `Passwords` holding the queue is dropped.
#[derive(Clone)]
struct HashPool {
    jobs: mpsc::Sender<Job>,
    /// Jobs run so far: how much argon2 work the server has been made to do.
    runs: Arc<AtomicU64>,
}

/// How much the hashing threads give way to the others (0 is normal, 19 the least priority).
const HASHING_NICENESS: i32 = 10;

impl HashPool {
    fn start(threads: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    lower_own_priority();
                    loop {
                        // The lock is held only to take the next job, not while it runs.
                        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .context("Failed to start a password hashing thread")?;
        }
        Ok(Self {
            jobs,
            runs: Arc::new(AtomicU64::new(0)),
        })
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|_| anyhow::anyhow!("password hashing is shut down"))?;
        result.await.context("a password hashing thread stopped")
    }
}

/// Lowers the calling thread's priority (on Linux, the nice value is per thread).
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; `who` 0 is the calling thread.
    unsafe {
        if libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICENESS) != 0 {
            tracing::warn!("could not lower the priority of a password hashing thread");
        }
    }
}

fn hash_with(params: &Params, password: &[u8]) -> anyhow::Result<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("Failed to hash a password: {error}"))
}

#[cfg(test)]
mod pool_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn the_pool_runs_no_more_hashes_at_once_than_it_has_threads_and_yields_cpu() {
        let pool = HashPool::start(2).unwrap();
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..8).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            pool.run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                // SAFETY: reads the calling thread's nice value.
                unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
            })
        });
        let niceness = futures_util::future::try_join_all(jobs).await.unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(niceness.iter().all(|nice| *nice == HASHING_NICENESS), "{niceness:?}");
    }
}
