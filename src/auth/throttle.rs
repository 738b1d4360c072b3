//! Failed-login throttling, per account and per client IP.
//!
//! A fixed window per key: after `limit` failures the key is refused until the window that
//! started with its first failure ends. Refused attempts are not counted, so an attacker cannot
//! extend a lock-out by hammering it, and a successful password reset clears the account's key.
//!
//! One node keeps the counts in memory; several nodes share them in Redis (`bus.redis_url`), so
//! that spreading attempts over nodes gains nothing. If Redis fails, a node falls back to its
//! own memory rather than stop throttling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys beyond this many trigger a sweep of expired windows, bounding memory under attack.
const SWEEP_THRESHOLD: usize = 100_000;

pub struct MemoryThrottle {
    window: Duration,
    failures: Mutex<HashMap<String, Window>>,
}

struct Window {
    started: Instant,
    count: u32,
}

impl MemoryThrottle {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(seconds to wait)` when `key` has reached `limit` failures in its window.
    pub fn retry_after(&self, key: &str, limit: u32) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let window = failures.get(key)?;
        let elapsed = window.started.elapsed();
        (window.count >= limit && elapsed < self.window).then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn record_failure(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() >= SWEEP_THRESHOLD {
            let window = self.window;
            failures.retain(|_, entry| entry.started.elapsed() < window);
        }
        let now = Instant::now();
        let entry = failures
            .entry(key.to_owned())
            .or_insert(Window { started: now, count: 0 });
        if entry.started.elapsed() >= self.window {
            *entry = Window { started: now, count: 0 };
        }
        entry.count += 1;
    }

    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }
}

/// The throttle of this node: in memory, or shared in Redis.
pub struct LoginThrottle {
    memory: MemoryThrottle,
    redis: Option<RedisThrottle>,
}

struct RedisThrottle {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    window_secs: u64,
    namespace: String,
}

impl LoginThrottle {
    pub fn in_memory(window: Duration) -> Self {
        Self {
            memory: MemoryThrottle::new(window),
            redis: None,
        }
    }

    /// Counts shared in Redis under `namespace` (the deployment's bus topic).
    pub fn shared(window: Duration, redis_url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client =
            redis::Client::open(redis_url).map_err(|error| anyhow::anyhow!("setting bus.redis_url: {error}"))?;
        let redis = RedisThrottle {
            client,
            connection: tokio::sync::Mutex::new(None),
            window_secs: window.as_secs().max(1),
            namespace: namespace.to_owned(),
        };
        Ok(Self {
            memory: MemoryThrottle::new(window),
            redis: Some(redis),
        })
    }

    pub async fn retry_after(&self, key: &str, limit: u32) -> Option<u64> {
        if let Some(redis) = &self.redis {
            match redis.retry_after(key, limit).await {
                Ok(answer) => return answer,
                Err(error) => tracing::warn!(error = %error, "shared throttle unavailable; using this node's"),
            }
        }
        self.memory.retry_after(key, limit)
    }

    pub async fn record_failure(&self, key: &str) {
        if let Some(redis) = &self.redis
            && redis.record_failure(key).await.is_ok()
        {
            return;
        }
        self.memory.record_failure(key);
    }

    pub async fn clear(&self, key: &str) {
        if let Some(redis) = &self.redis {
            let _ = redis.clear(key).await;
        }
        self.memory.clear(key);
    }
}

impl RedisThrottle {
    async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let mut cached = self.connection.lock().await;
        if let Some(connection) = cached.as_ref() {
            return Ok(connection.clone());
        }
        let connection =
            tokio::time::timeout(Duration::from_secs(1), self.client.get_multiplexed_async_connection()).await??;
        *cached = Some(connection.clone());
        Ok(connection)
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}:throttle:{key}", self.namespace)
    }

    async fn retry_after(&self, key: &str, limit: u32) -> anyhow::Result<Option<u64>> {
        let mut connection = self.connection().await?;
        let result: redis::RedisResult<(Option<u32>, i64)> = redis::pipe()
            .cmd("GET")
            .arg(self.redis_key(key))
            .cmd("TTL")
            .arg(self.redis_key(key))
            .query_async(&mut connection)
            .await;
        let (count, ttl) = match result {
            Ok(answer) => answer,
            Err(error) => {
                self.forget_connection().await;
                return Err(error.into());
            }
        };
        Ok((count.unwrap_or(0) >= limit && ttl > 0).then_some(ttl as u64))
    }

    async fn record_failure(&self, key: &str) -> anyhow::Result<()> {
        let mut connection = self.connection().await?;
        // The window starts with the first failure: EXPIRE NX leaves a running window alone.
        let result: redis::RedisResult<(i64, i64)> = redis::pipe()
            .cmd("INCR")
            .arg(self.redis_key(key))
            .cmd("EXPIRE")
            .arg(self.redis_key(key))
            .arg(self.window_secs)
            .arg("NX")
            .query_async(&mut connection)
            .await;
        if let Err(error) = result {
            self.forget_connection().await;
            return Err(error.into());
        }
        Ok(())
    }

    async fn clear(&self, key: &str) -> anyhow::Result<()> {
        let mut connection = self.connection().await?;
        let _: i64 = redis::cmd("DEL")
            .arg(self.redis_key(key))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }
}

pub fn account_key(email: &str) -> String {
    format!("account:{email}")
}

pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_the_limit_and_cleared_on_demand() {
        let throttle = MemoryThrottle::new(Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(throttle.retry_after("k", 3), None);
            throttle.record_failure("k");
        }
        assert!(throttle.retry_after("k", 3).is_some_and(|secs| secs <= 60));
        assert_eq!(throttle.retry_after("other", 3), None);
        throttle.clear("k");
        assert_eq!(throttle.retry_after("k", 3), None);
    }

    #[test]
    fn a_window_that_has_passed_counts_from_zero_again() {
        let throttle = MemoryThrottle::new(Duration::from_millis(20));
        throttle.record_failure("k");
        throttle.record_failure("k");
        assert!(throttle.retry_after("k", 2).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(throttle.retry_after("k", 2), None);
    }
}
