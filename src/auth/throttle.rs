//! Failed-login throttling, per account and per client IP.
//!
//! A fixed window per key: after `limit` failures the key is refused until the window that
//! started with its first failure ends. An attempt is counted when it starts, in the same step
//! that checks the limit, and forgiven if it succeeds: so guesses sent all at once cannot pass
//! the check together while their passwords are still being hashed. Refused attempts are not
//! counted, so an attacker cannot extend a lock-out by hammering it, and a successful login or
//! password reset clears the account's key.
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

    /// Counts an attempt on `key`, or refuses it with `Some(seconds to wait)` when `limit`
    /// attempts already count in the window.
    pub fn take_attempt(&self, key: &str, limit: u32) -> Option<u64> {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failures.len() >= SWEEP_THRESHOLD {
            let window = self.window;
            failures.retain(|_, entry| entry.started.elapsed() < window);
        }
        let now = Instant::now();
        let entry = failures
            .entry(key.to_owned())
            .or_insert(Window { started: now, count: 0 });
        let elapsed = entry.started.elapsed();
        if elapsed >= self.window {
            *entry = Window { started: now, count: 0 };
        } else if entry.count >= limit {
            return Some(whole_seconds_until((self.window - elapsed).as_millis()));
        }
        entry.count += 1;
        None
    }

    /// Uncounts an attempt that succeeded.
    pub fn forgive(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = failures.get_mut(key) {
            entry.count = entry.count.saturating_sub(1);
        }
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

/// Where an attempt was counted: Redis, or (without it, or while it fails) this node's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountedIn {
    Redis,
    Memory,
}

/// Seconds to wait for a window that ends in `millis`, rounded up and at least one: a client
/// told to come back sooner would be refused again.
fn whole_seconds_until(millis: u128) -> u64 {
    u64::try_from(millis.div_ceil(1000)).unwrap_or(u64::MAX).max(1)
}

struct RedisThrottle {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// Until then, after Redis failed to answer, this node counts in its own memory without
    /// asking Redis again: a Redis that stalls would otherwise cost every login `ANSWER_TIMEOUT`.
    unavailable_until: Mutex<Option<Instant>>,
    window_secs: u64,
    namespace: String,
}

/// The longest Redis may take to connect or to answer one command. A connection without it
/// waits for ever on a Redis that stalled or a host that vanished without a reset.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a node keeps to its own counts after Redis failed to answer.
const FALLBACK_PERIOD: Duration = Duration::from_secs(5);

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
            unavailable_until: Mutex::new(None),
            window_secs: window.as_secs().max(1),
            namespace: namespace.to_owned(),
        };
        Ok(Self {
            memory: MemoryThrottle::new(window),
            redis: Some(redis),
        })
    }

    /// Counts an attempt on `key` and says where, or refuses it with `Err(seconds to wait)`.
    pub async fn take_attempt(&self, key: &str, limit: u32) -> Result<CountedIn, u64> {
        if let Some(redis) = &self.redis
            && let Ok(refused) = redis.take_attempt(key, limit).await
        {
            return refused.map_or(Ok(CountedIn::Redis), Err);
        }
        match self.memory.take_attempt(key, limit) {
            None => Ok(CountedIn::Memory),
            Some(retry_after_secs) => Err(retry_after_secs),
        }
    }

    /// Counts an attempt on every key and says where each was counted, or refuses it with
    /// `Err(seconds to wait)` when one of them is at its limit; a refused attempt counts on
    /// none of them.
    pub async fn take_attempts(&self, keys: &[(String, u32)]) -> Result<Vec<CountedIn>, u64> {
        let mut counted = Vec::with_capacity(keys.len());
        for (key, limit) in keys {
            match self.take_attempt(key, *limit).await {
                Ok(place) => counted.push(place),
                Err(retry_after_secs) => {
                    for ((key, _), place) in keys.iter().zip(counted) {
                        self.forgive(key, place).await;
                    }
                    return Err(retry_after_secs);
                }
            }
        }
        Ok(counted)
    }

    /// Uncounts an attempt that succeeded, where it was counted: Redis failing meanwhile is no
    /// reason to uncount another attempt in this node's memory.
    pub async fn forgive(&self, key: &str, counted_in: CountedIn) {
        match (counted_in, &self.redis) {
            (CountedIn::Redis, Some(redis)) => {
                let _ = redis.forgive(key).await;
            }
            _ => self.memory.forgive(key),
        }
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
        // Checked under the lock: requests that queued behind a connect that failed go to this
        // node's memory at once, rather than each try again for `ANSWER_TIMEOUT`.
        let unavailable_until = *self
            .unavailable_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if unavailable_until.is_some_and(|until| Instant::now() < until) {
            anyhow::bail!("Redis failed to answer less than {FALLBACK_PERIOD:?} ago");
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(ANSWER_TIMEOUT)
            .set_response_timeout(ANSWER_TIMEOUT);
        let connection = match self.client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(connection) => connection,
            Err(error) => {
                self.fall_back(&error);
                return Err(error.into());
            }
        };
        *cached = Some(connection.clone());
        Ok(connection)
    }

    /// After a failure: the connection is made again, and not before `FALLBACK_PERIOD`.
    async fn forget_connection(&self, error: &redis::RedisError) {
        *self.connection.lock().await = None;
        self.fall_back(error);
    }

    fn fall_back(&self, error: &redis::RedisError) {
        tracing::warn!(error = %error, "shared throttle unavailable; this node counts on its own for {FALLBACK_PERIOD:?}");
        *self
            .unavailable_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now() + FALLBACK_PERIOD);
    }

    fn redis_key(&self, key: &str) -> String {
        format!("{}:throttle:{key}", self.namespace)
    }

    async fn take_attempt(&self, key: &str, limit: u32) -> anyhow::Result<Option<u64>> {
        // One script, run atomically by Redis: count unless the limit is reached, else answer
        // the milliseconds left (at least 1, so that 0 means counted). The window starts with
        // the first attempt and is left alone by the ones after. `PTTL`, not `TTL`: `TTL`
        // rounds, and answers 0 for the window's last half-second while the key still counts.
        const TAKE: &str = r"
            local count = tonumber(redis.call('GET', KEYS[1]) or '0')
            if count >= tonumber(ARGV[1]) then
                local left = redis.call('PTTL', KEYS[1])
                if left < 0 then
                    redis.call('EXPIRE', KEYS[1], ARGV[2])
                    left = tonumber(ARGV[2]) * 1000
                end
                return math.max(left, 1)
            end
            redis.call('INCR', KEYS[1])
            redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
            return 0";
        let mut connection = self.connection().await?;
        let result: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(TAKE)
            .arg(1)
            .arg(self.redis_key(key))
            .arg(limit)
            .arg(self.window_secs)
            .query_async(&mut connection)
            .await;
        match result {
            Ok(0) => Ok(None),
            Ok(millis_left) => Ok(Some(whole_seconds_until(millis_left.unsigned_abs().into()))),
            Err(error) => {
                self.forget_connection(&error).await;
                Err(error.into())
            }
        }
    }

    async fn forgive(&self, key: &str) -> anyhow::Result<()> {
        const FORGIVE: &str = r"
            if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
            return 0";
        let mut connection = self.connection().await?;
        let result: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(FORGIVE)
            .arg(1)
            .arg(self.redis_key(key))
            .query_async(&mut connection)
            .await;
        if let Err(error) = result {
            self.forget_connection(&error).await;
            return Err(error.into());
        }
        Ok(())
    }

    async fn clear(&self, key: &str) -> anyhow::Result<()> {
        let mut connection = self.connection().await?;
        let result: redis::RedisResult<i64> = redis::cmd("DEL")
            .arg(self.redis_key(key))
            .query_async(&mut connection)
            .await;
        if let Err(error) = result {
            self.forget_connection(&error).await;
            return Err(error.into());
        }
        Ok(())
    }
}

pub fn account_key(email: &str) -> String {
    format!("account:{email}")
}

pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// Wrong current passwords given to change an account's password (`PATCH /api/me`).
pub fn password_change_key(member_id: i32) -> String {
    format!("password-change:{member_id}")
}

pub fn reset_account_key(email: &str) -> String {
    format!("reset-account:{email}")
}

pub fn reset_ip_key(ip: &str) -> String {
    format!("reset-ip:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_the_limit_and_cleared_on_demand() {
        let throttle = MemoryThrottle::new(Duration::from_secs(60));
        for _ in 0..3 {
            assert_eq!(throttle.take_attempt("k", 3), None);
        }
        assert!(throttle.take_attempt("k", 3).is_some_and(|secs| secs <= 60));
        assert_eq!(throttle.take_attempt("other", 3), None);
        throttle.clear("k");
        assert_eq!(throttle.take_attempt("k", 3), None);
    }

    #[test]
    fn a_forgiven_attempt_no_longer_counts_and_a_refused_one_never_did() {
        let throttle = MemoryThrottle::new(Duration::from_secs(60));
        assert_eq!(throttle.take_attempt("k", 2), None);
        assert_eq!(throttle.take_attempt("k", 2), None);
        for _ in 0..5 {
            assert!(throttle.take_attempt("k", 2).is_some());
        }
        throttle.forgive("k");
        assert_eq!(throttle.take_attempt("k", 2), None);
        assert!(throttle.take_attempt("k", 2).is_some());
    }

    /// A throttle sharing its counts in the test Redis, under a namespace of its own.
    fn shared_throttle(url: &str) -> LoginThrottle {
        let namespace = format!("dcports-test-{}", uuid::Uuid::new_v4().simple());
        LoginThrottle::shared(Duration::from_secs(60), url, &namespace).unwrap()
    }

    #[tokio::test]
    async fn a_shared_key_at_its_limit_is_refused_to_the_last_millisecond_of_its_window() {
        let throttle = shared_throttle(&crate::test_support::redis_url());
        let redis = throttle.redis.as_ref().unwrap();
        // A key at its limit with less than half a second left, which `TTL` rounds to 0.
        let mut connection = redis.connection().await.unwrap();
        let _: () = redis::cmd("SET")
            .arg(redis.redis_key("k"))
            .arg(3)
            .arg("PX")
            .arg(490)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert_eq!(throttle.take_attempt("k", 3).await, Err(1));
        assert_eq!(throttle.take_attempt("other", 3).await, Ok(CountedIn::Redis));
    }

    #[tokio::test]
    async fn a_redis_that_never_answers_leaves_the_counting_to_this_node() {
        let (url, _held) = crate::test_support::black_hole().await;
        let throttle = shared_throttle(&url);
        let attempts = async {
            let first = throttle.take_attempt("k", 1).await;
            let second = throttle.take_attempt("k", 1).await;
            (first, second)
        };
        // Without a timeout on the answer this never ends; the bound here is only the test's.
        let (first, second) = tokio::time::timeout(Duration::from_secs(30), attempts)
            .await
            .expect("the throttle gave up on Redis");
        assert_eq!(first, Ok(CountedIn::Memory));
        assert!(second.is_err(), "this node's own count refuses the second attempt");
    }

    #[test]
    fn a_wait_is_rounded_up_to_whole_seconds() {
        assert_eq!(whole_seconds_until(0), 1);
        assert_eq!(whole_seconds_until(450), 1);
        assert_eq!(whole_seconds_until(1000), 1);
        assert_eq!(whole_seconds_until(1001), 2);
        assert_eq!(whole_seconds_until(59_999), 60);
    }

    #[test]
    fn a_window_that_has_passed_counts_from_zero_again() {
        let throttle = MemoryThrottle::new(Duration::from_millis(20));
        assert_eq!(throttle.take_attempt("k", 2), None);
        assert_eq!(throttle.take_attempt("k", 2), None);
        assert!(throttle.take_attempt("k", 2).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(throttle.take_attempt("k", 2), None);
    }
}
