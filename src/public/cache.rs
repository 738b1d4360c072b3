//! A node-local cache of public responses: the public area is read far more than it changes, and
//! a cached answer costs no database round trip and no hashing.
//!
//! Freshness has two parts. A generation number is bumped by every successful write on this node
//! and by every message from another node's bus, and an entry only counts if it was computed in
//! the current generation: what this cluster changes is visible on the next request. What changes
//! out of sight (a `dcports seed` run, a node without the Redis bus) is bounded by the entry's
//! time to live, `public.cache_ttl_secs`, far shorter than the `max-age` the public area already
//! gives browsers and proxies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::header::{EntityTag, HeaderMap};
use actix_web::web::Bytes;

/// One public `200` response, as sent.
pub struct CachedResponse {
    generation: u64,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub etag: EntityTag,
}

pub struct PublicCache {
    /// `None` when `public.cache_ttl_secs` is 0: every request goes to the database.
    entries: Option<moka::sync::Cache<String, Arc<CachedResponse>>>,
    generation: AtomicU64,
}

impl PublicCache {
    /// `max_bytes` bounds the bodies held; keys include query strings, which anyone can vary.
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        let entries = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .time_to_live(ttl)
                .max_capacity(max_bytes)
                .weigher(|key: &String, value: &Arc<CachedResponse>| {
                    u32::try_from(key.len() + value.body.len()).unwrap_or(u32::MAX)
                })
                .build()
        });
        Self {
            entries,
            generation: AtomicU64::new(0),
        }
    }

    /// Read before computing a response that will be stored.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Something changed: everything cached before is stale.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn get(&self, key: &str) -> Option<Arc<CachedResponse>> {
        let hit = self.entries.as_ref()?.get(key)?;
        (hit.generation == self.generation()).then_some(hit)
    }

    /// Stores a response computed from data read after `generation` was read: if anything
    /// changed since, the entry is already stale and is not served.
    pub fn insert(&self, key: String, generation: u64, headers: HeaderMap, body: Bytes, etag: EntityTag) {
        if let Some(entries) = &self.entries {
            entries.insert(
                key,
                Arc::new(CachedResponse {
                    generation,
                    headers,
                    body,
                    etag,
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(cache: &PublicCache, key: &str, generation: u64) {
        cache.insert(
            key.to_owned(),
            generation,
            HeaderMap::new(),
            Bytes::from_static(b"[]"),
            EntityTag::new_strong("x".to_owned()),
        );
    }

    #[test]
    fn serves_entries_of_the_current_generation_only() {
        let cache = PublicCache::new(Duration::from_secs(60), 1 << 20);
        let before = cache.generation();
        store(&cache, "/api/public/countries", before);
        assert!(cache.get("/api/public/countries").is_some());
        cache.changed();
        assert!(cache.get("/api/public/countries").is_none());
        // Computed before the change, stored after it: never served.
        store(&cache, "/api/public/ports", before);
        assert!(cache.get("/api/public/ports").is_none());
    }

    #[test]
    fn a_zero_time_to_live_turns_it_off() {
        let cache = PublicCache::new(Duration::ZERO, 1 << 20);
        store(&cache, "/api/public/countries", cache.generation());
        assert!(cache.get("/api/public/countries").is_none());
    }
}
