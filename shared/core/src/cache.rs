//! A small TTL cache for hot per-tenant reads (API keys, compiled policies, review settings).
//! Writes made through this process invalidate at once; the TTL bounds staleness across processes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TtlCache<V> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration) -> Self {
        TtlCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, key: &str, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            // Bound memory: drop expired entries when the map grows.
            if entries.len() >= 10_000 {
                let ttl = self.ttl;
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            entries.insert(key.to_string(), (Instant::now(), value));
        }
    }

    pub fn invalidate(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// Values that never change under their key (compiled policy versions), bounded in number: when full, the
/// oldest insertion makes room. No TTL: a key names one immutable value.
pub struct BoundedCache<V> {
    capacity: usize,
    entries: Mutex<(HashMap<String, V>, VecDeque<String>)>,
}

impl<V: Clone> BoundedCache<V> {
    pub fn new(capacity: usize) -> Self {
        BoundedCache {
            capacity: capacity.max(1),
            entries: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub fn get(&self, key: &str) -> Option<V> {
        self.entries.lock().ok()?.0.get(key).cloned()
    }

    pub fn put(&self, key: &str, value: V) {
        if let Ok(mut guard) = self.entries.lock() {
            let (map, order) = &mut *guard;
            if map.insert(key.to_string(), value).is_none() {
                order.push_back(key.to_string());
            }
            while map.len() > self.capacity {
                match order.pop_front() {
                    Some(oldest) => {
                        map.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|g| g.0.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_invalidate() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.put("a", 1);
        assert_eq!(cache.get("a"), Some(1));
        cache.invalidate("a");
        assert_eq!(cache.get("a"), None);
        cache.put("b", 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("b"), None);
        let off = TtlCache::new(Duration::ZERO);
        let bounded = BoundedCache::new(2);
        bounded.put("x", 1);
        bounded.put("y", 2);
        bounded.put("x", 10);
        assert_eq!(bounded.get("x"), Some(10));
        bounded.put("z", 3);
        assert_eq!(
            (bounded.get("x"), bounded.get("y"), bounded.get("z")),
            (None, Some(2), Some(3)),
            "the oldest insertion makes room"
        );
        assert_eq!(bounded.len(), 2);
        off.put("c", 3);
        assert_eq!(off.get("c"), None, "a zero TTL disables caching");
    }
}
