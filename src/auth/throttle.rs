//! Failed-login throttling, per account and per client IP.
//!
//! A fixed window per key: after `limit` failures the key is refused until the window that
//! started with its first failure ends. Refused attempts are not counted, so an attacker cannot
//! extend a lock-out by hammering it, and a successful password reset clears the account's key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys beyond this many trigger a sweep of expired windows, bounding memory under attack.
const SWEEP_THRESHOLD: usize = 100_000;

pub struct LoginThrottle {
    window: Duration,
    failures: Mutex<HashMap<String, Window>>,
}

struct Window {
    started: Instant,
    count: u32,
}

impl LoginThrottle {
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
        let throttle = LoginThrottle::new(Duration::from_secs(60));
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
        let throttle = LoginThrottle::new(Duration::from_millis(20));
        throttle.record_failure("k");
        throttle.record_failure("k");
        assert!(throttle.retry_after("k", 2).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(throttle.retry_after("k", 2), None);
    }
}
