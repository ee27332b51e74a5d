//! In-memory caches in front of storage: whole small objects, heads (length, ETag, date) of
//! large ones, and "not found" answers, each with an expiry. TUF metadata is always read whole
//! (it is small) and kept whole; a target is kept whole only when it is at most an eighth of
//! `blob_cache_mb`, and otherwise only its head is kept and its bytes are streamed each time.
//!
//! Immutable names (content-addressed targets, versioned metadata) make caching them trivially
//! correct, so they live until evicted or `immutable_cache_s`; `timestamp.json` and other
//! replaceable objects, and every "not found", live for `metadata_cache_ms`.
//!
//! Every operation is O(1) (the `lru` crate: a hash map threaded by a recency list), so a
//! client that makes the server look up many distinct names costs it the same per request
//! when the cache is full as when it is empty. Found objects are bounded in bytes; "not found"
//! lives in a [`NegativeCache`] of its own that only takes names of the repository's scheme and
//! holds a fixed number of them, so made-up names can neither flush found objects nor grow
//! memory.

use std::hash::RandomState;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use axum::http::HeaderValue;
use bytes::Bytes;
use lru::LruCache;
use vigil_repository::storage::ObjectMeta;

use crate::route;

/// An object as the server answers for it: validators ready to copy into headers, and the
/// bytes when they are held in memory.
#[derive(Debug)]
pub struct Object {
    pub len: u64,
    /// `None` when the backend gave none or one that is not a valid header value.
    pub etag: Option<HeaderValue>,
    pub last_modified: Option<SystemTime>,
    pub last_modified_header: Option<HeaderValue>,
    /// The whole object, when it is small enough to keep.
    pub body: Option<Bytes>,
}

impl Object {
    pub fn new(meta: &ObjectMeta, body: Option<Bytes>) -> Self {
        Self {
            len: meta.len,
            etag: (!meta.etag.is_empty())
                .then(|| HeaderValue::from_str(&meta.etag).ok())
                .flatten(),
            last_modified: meta.last_modified,
            last_modified_header: meta
                .last_modified
                .and_then(|t| HeaderValue::from_str(&httpdate::fmt_http_date(t)).ok()),
            body,
        }
    }
}

/// Bookkeeping per entry (map slot, recency links, key, Arc, header values), so that many
/// small entries also count against the capacity.
const ENTRY_OVERHEAD: usize = 256;

/// Found objects, bounded by the bytes of their keys and bodies.
#[derive(Debug)]
pub struct ObjectCache {
    lru: Lru<Arc<Object>>,
}

impl ObjectCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            lru: Lru::new(capacity_bytes),
        }
    }

    pub fn capacity(&self) -> usize {
        self.lru.capacity
    }

    pub fn get(&self, key: &str, now: Instant) -> Option<Arc<Object>> {
        self.lru.get(key, now)
    }

    /// Keeps `value` until `expires`; does nothing when it cannot fit at all.
    pub fn insert(&self, key: &str, value: Arc<Object>, expires: Instant) {
        let body = value.body.as_ref().map_or(0, Bytes::len);
        let weight = key.len() + body + ENTRY_OVERHEAD;
        self.lru.insert(key, value, expires, weight);
    }

    /// Entries and bytes held, for tests and debugging.
    pub fn usage(&self) -> (usize, usize) {
        self.lru.usage()
    }
}

/// "Not found" answers, only for names of the repository's scheme
/// ([`route::is_scheme_name`]): those a client can legitimately ask for before they exist
/// (the next `N.root.json` at every update check, a target just removed by garbage
/// collection). Anything else is looked up in storage each time, which the rate limit bounds.
/// Holds at most a fixed number of names, each at most ~130 bytes by the scheme.
#[derive(Debug)]
pub struct NegativeCache {
    lru: Lru<()>,
}

impl NegativeCache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            lru: Lru::new(max_entries),
        }
    }

    pub fn contains(&self, key: &str, now: Instant) -> bool {
        self.lru.get(key, now).is_some()
    }

    /// Remembers that `key` was not found, if it is a scheme name; returns whether it did.
    pub fn insert(&self, key: &str, expires: Instant) -> bool {
        if !route::is_scheme_name(key) {
            return false;
        }
        self.lru.insert(key, (), expires, 1);
        true
    }

    /// Forgets `key`, once it has been found after all.
    pub fn remove(&self, key: &str) {
        self.lru.remove(key);
    }

    pub fn len(&self) -> usize {
        self.lru.usage().0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An LRU map with an expiry per entry, bounded by the sum of the entries' weights. When an
/// insert does not fit, the least recently used entries go, one O(1) step each. Expired
/// entries are dropped when they are looked up or when they reach the old end; no scan ever
/// looks for them.
#[derive(Debug)]
struct Lru<V> {
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

#[derive(Debug)]
struct Inner<V> {
    // SipHash with a per-process key: the keys are chosen by clients, and a predictable hash
    // would let them pile every key into one bucket.
    map: LruCache<Box<str>, Entry<V>, RandomState>,
    weight: usize,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires: Instant,
    weight: usize,
}

impl<V: Clone> Lru<V> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner {
                map: LruCache::unbounded_with_hasher(RandomState::new()),
                weight: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<V>> {
        // A poisoned lock only means a panic elsewhere mid-operation; the map is still sound
        // (lru's operations do not unwind halfway), and the weight is at worst off by an entry.
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn get(&self, key: &str, now: Instant) -> Option<V> {
        let mut inner = self.lock();
        let entry = inner.map.get(key)?;
        if entry.expires > now {
            return Some(entry.value.clone());
        }
        if let Some(old) = inner.map.pop(key) {
            inner.weight -= old.weight;
        }
        None
    }

    fn insert(&self, key: &str, value: V, expires: Instant, weight: usize) {
        if weight > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.map.pop(key) {
            inner.weight -= old.weight;
        }
        while inner.weight + weight > self.capacity {
            let Some((_, old)) = inner.map.pop_lru() else {
                break;
            };
            inner.weight -= old.weight;
        }
        inner.weight += weight;
        inner.map.push(
            key.into(),
            Entry {
                value,
                expires,
                weight,
            },
        );
    }

    fn remove(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(old) = inner.map.pop(key) {
            inner.weight -= old.weight;
        }
    }

    fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn obj(n: usize) -> Arc<Object> {
        let meta = ObjectMeta {
            len: n as u64,
            etag: "\"e\"".into(),
            last_modified: None,
        };
        Arc::new(Object::new(&meta, Some(Bytes::from(vec![0; n]))))
    }

    fn hash(i: u64) -> String {
        format!("{i:064x}")
    }

    #[test]
    fn expiry() {
        let c = ObjectCache::new(1 << 20);
        let now = Instant::now();
        c.insert("a", obj(10), now + Duration::from_secs(60));
        assert_eq!(c.get("a", now).unwrap().len, 10);
        assert!(c.get("a", now + Duration::from_secs(61)).is_none());
        assert_eq!(c.usage(), (0, 0), "an expired entry is dropped when seen");
        assert!(c.get("missing", now).is_none());
    }

    #[test]
    fn least_recently_used_goes_first() {
        let c = ObjectCache::new(3 * (1000 + ENTRY_OVERHEAD + 1));
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        c.insert("a", obj(1000), later);
        c.insert("b", obj(1000), later);
        c.insert("c", obj(1000), later);
        assert!(c.get("a", now).is_some());
        c.insert("d", obj(1000), later);
        assert!(c.get("b", now).is_none(), "b was least recently used");
        for k in ["a", "c", "d"] {
            assert!(c.get(k, now).is_some(), "{k}");
        }
        // Too large for the cache at all: not kept, nothing evicted.
        c.insert("huge", obj(10_000), later);
        assert!(c.get("huge", now).is_none());
        assert_eq!(c.usage().0, 3);
    }

    #[test]
    fn bytes_stay_within_the_capacity() {
        let cap = 64 << 10;
        let c = ObjectCache::new(cap);
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..2000 {
            c.insert(&format!("k{i}"), obj(i % 3000), later);
            let (_, bytes) = c.usage();
            assert!(bytes <= cap, "{bytes} > {cap} after insert {i}");
        }
        // Replacing a key replaces its weight instead of adding to it.
        let c = ObjectCache::new(cap);
        for _ in 0..100 {
            c.insert("same", obj(1000), later);
        }
        assert_eq!(c.usage(), (1, "same".len() + 1000 + ENTRY_OVERHEAD));
    }

    /// The flood: unique 250-byte metadata names in the default 32 MiB cache, then
    /// more of them. The old cache scanned every entry on each insert once full (about 66k
    /// entries here, ~1 ms per insert: 20k inserts took over 10 s); with O(1) eviction they
    /// take milliseconds. The bound is loose on purpose: it separates O(1) from O(n), not a
    /// fast machine from a slow one.
    #[test]
    fn a_full_cache_evicts_the_oldest_names_in_order() {
        // The flood of the issue: 250-byte names filling 32 MiB. That each insert costs O(1)
        // is the `lru` crate's structure; the cost is measured in the http bench ("cache
        // flooded with unique names"), not timed here.
        let c = ObjectCache::new(32 << 20);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let key = |i: usize| format!("metadata/{i:0>241}");
        assert_eq!(key(0).len(), 250);
        let per_entry = 250 + ENTRY_OVERHEAD;
        let fill = c.capacity() / per_entry;
        for i in 0..fill {
            c.insert(&key(i), obj(0), later);
        }
        assert_eq!(c.usage().0, fill, "full, nothing evicted yet");
        let n = 20_000;
        for i in fill..fill + n {
            c.insert(&key(i), obj(0), later);
        }
        // Still full and within bounds; the oldest names went first, in order.
        assert_eq!(c.usage().0, fill);
        assert!(c.usage().1 <= c.capacity());
        assert!(c.get(&key(n - 1), now).is_none());
        assert!(c.get(&key(n), now).is_some());
        assert!(c.get(&key(fill + n - 1), now).is_some());
    }

    #[test]
    fn negative_cache_takes_only_scheme_names() {
        let c = NegativeCache::new(16);
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        for key in [
            "metadata/timestamp.json".to_owned(),
            "metadata/8.root.json".to_owned(),
            format!("targets/{}.vigil-3.vdb", hash(1)),
        ] {
            assert!(c.insert(&key, later), "{key}");
            assert!(c.contains(&key, now), "{key}");
            assert!(!c.contains(&key, later), "{key} outlived its expiry");
        }
        for key in [
            format!("metadata/{}", "a".repeat(240)),
            "metadata/root.json".to_owned(),
            "targets/missing.vdb".to_owned(),
            format!("targets/{}.other", hash(1)),
        ] {
            assert!(!c.insert(&key, later), "{key}");
            assert!(!c.contains(&key, now), "{key}");
        }
        c.remove("metadata/8.root.json");
        assert!(!c.contains("metadata/8.root.json", now));
    }

    #[test]
    fn negative_cache_is_bounded() {
        let c = NegativeCache::new(100);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for i in 0..10_000 {
            c.insert(&format!("targets/{}.vigil-{i}.vdb", hash(i)), later);
            assert!(c.len() <= 100);
        }
        assert_eq!(c.len(), 100);
        // The most recent names are the ones kept.
        assert!(c.contains(&format!("targets/{}.vigil-9999.vdb", hash(9999)), now));
        assert!(!c.contains(&format!("targets/{}.vigil-0.vdb", hash(0)), now));
    }
}
