//! In-memory caches in front of storage: object metadata (length, ETag, date), whole small
//! objects, and "not found" answers, each with an expiry. TUF metadata is always read whole
//! (it is small) and kept whole; a target is kept whole only when it is at most an eighth of
//! `blob_cache_mb`, and otherwise only its head is kept and its bytes are streamed each time.
//!
//! Immutable names (content-addressed targets, versioned metadata) make caching them trivially
//! correct, so they live until evicted or `immutable_cache_s`; `timestamp.json` and other
//! replaceable objects, and every "not found", live for `metadata_cache_ms`. The caches are
//! bounded in bytes; when full, expired entries go first, then the least recently used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use axum::http::HeaderValue;
use bytes::Bytes;
use vigil_repository::storage::ObjectMeta;

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

/// `Some(None)` is a cached "not found".
pub type Lookup = Option<Option<Arc<Object>>>;

#[derive(Debug)]
pub struct ObjectCache {
    capacity: usize,
    clock: AtomicU64,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Box<str>, Slot>,
    size: usize,
}

#[derive(Debug)]
struct Slot {
    value: Option<Arc<Object>>,
    expires: Instant,
    last_used: AtomicU64,
    size: usize,
}

/// Bookkeeping per entry (map slot, key, Arc, header values), so that many "not found"
/// entries also count against the capacity.
const ENTRY_OVERHEAD: usize = 256;

impl ObjectCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity: capacity_bytes,
            clock: AtomicU64::new(0),
            inner: RwLock::new(Inner::default()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn get(&self, key: &str, now: Instant) -> Lookup {
        let inner = match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let slot = inner.map.get(key)?;
        if slot.expires <= now {
            return None;
        }
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        slot.last_used.store(tick, Ordering::Relaxed);
        Some(slot.value.clone())
    }

    /// Keeps `value` for `ttl`; does nothing when it cannot fit.
    pub fn insert(&self, key: &str, value: Option<Arc<Object>>, expires: Instant) {
        let body = value
            .as_ref()
            .and_then(|o| o.body.as_ref())
            .map_or(0, Bytes::len);
        let size = key.len() + body + ENTRY_OVERHEAD;
        if size > self.capacity {
            return;
        }
        let now = Instant::now();
        let mut inner = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(old) = inner.map.remove(key) {
            inner.size -= old.size;
        }
        while inner.size + size > self.capacity {
            let victim = inner
                .map
                .iter()
                .min_by_key(|(_, s)| (s.expires > now, s.last_used.load(Ordering::Relaxed)))
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            if let Some(old) = inner.map.remove(&victim) {
                inner.size -= old.size;
            }
        }
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        inner.size += size;
        inner.map.insert(
            key.into(),
            Slot {
                value,
                expires,
                last_used: AtomicU64::new(tick),
                size,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn obj(n: usize) -> Option<Arc<Object>> {
        let meta = ObjectMeta {
            len: n as u64,
            etag: "\"e\"".into(),
            last_modified: None,
        };
        Some(Arc::new(Object::new(&meta, Some(Bytes::from(vec![0; n])))))
    }

    #[test]
    fn expiry_and_negative_entries() {
        let c = ObjectCache::new(1 << 20);
        let now = Instant::now();
        c.insert("a", obj(10), now + Duration::from_secs(60));
        c.insert("gone", None, now + Duration::from_secs(60));
        assert_eq!(c.get("a", now).unwrap().unwrap().len, 10);
        assert!(c.get("gone", now).unwrap().is_none());
        assert!(c.get("a", now + Duration::from_secs(61)).is_none());
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
        assert!(c.get("a", now).is_some());
    }
}
