//! The plaintext chunk cache shared by every open file of a mount.
//!
//! Entries are keyed by (archive, data-chunk index) and live in slots of a
//! locked, non-dumpable [`SlotArena`]; the arena's size is the cache bound.
//! Loading is single-flight: a reader that misses *claims* a run of
//! consecutive absent chunks (inserting them as `Loading` with a slot each),
//! fills them with one vectored read and publishes them; any other reader of
//! those chunks waits on the entry instead of decrypting it again. Eviction is
//! CLOCK (second chance) over insertion order and never touches a chunk that
//! is still loading; an evicted slot nobody holds goes straight to the next
//! load, whose backing read overwrites it, and any other slot is wiped when
//! its last reader lets go (or at unmount). A
//! claim dropped without being published (an error, a panic) marks its
//! entries failed, so no waiter can hang on them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::secmem::{Slot, SlotArena};

/// (archive index, chunk index).
pub type Key = (u32, u64);

/// A loaded chunk: its plaintext is the first `len` bytes of the slot.
pub struct Ready {
    slot: Slot,
    len: usize,
}

impl Ready {
    /// The chunk's plaintext.
    pub fn data(&self) -> &[u8] {
        self.slot.as_slice().get(..self.len).unwrap_or(&[])
    }
}

enum State {
    Loading,
    Ready(Arc<Ready>),
    Failed,
}

/// One cache entry; readers wait on it while it loads.
pub struct Entry {
    state: Mutex<State>,
    done: Condvar,
    referenced: AtomicBool,
    gen: u64,
}

impl Entry {
    /// Waits for the load to finish: the chunk, or `None` if loading failed.
    pub fn wait(&self) -> Option<Arc<Ready>> {
        let mut g = self.state.lock().ok()?;
        loop {
            match &*g {
                State::Ready(r) => return Some(Arc::clone(r)),
                State::Failed => return None,
                State::Loading => g = self.done.wait(g).ok()?,
            }
        }
    }

    fn is_loading(&self) -> bool {
        self.state
            .lock()
            .map(|g| matches!(*g, State::Loading))
            .unwrap_or(false)
    }

    fn finish(&self, s: State) {
        if let Ok(mut g) = self.state.lock() {
            *g = s;
        }
        self.done.notify_all();
    }
}

struct Inner {
    map: HashMap<Key, Arc<Entry>>,
    /// Insertion order with generation (stale pairs are skipped).
    order: VecDeque<(Key, u64)>,
    next_gen: u64,
}

/// Counters for tests and `-v` statistics.
#[derive(Default, Debug)]
pub struct Stats {
    /// Lookups that found an entry (ready or loading).
    pub hits: AtomicU64,
    /// Chunks loaded (read + authenticated) into the cache.
    pub loaded: AtomicU64,
    /// Entries evicted to make room.
    pub evicted: AtomicU64,
}

/// The bounded, shared, single-flight chunk cache.
pub struct ChunkCache {
    arena: Arc<SlotArena>,
    inner: Mutex<Inner>,
    /// Counters.
    pub stats: Stats,
}

impl ChunkCache {
    /// A cache over `arena` (one slot per chunk).
    pub fn new(arena: Arc<SlotArena>) -> ChunkCache {
        ChunkCache {
            arena,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                next_gen: 0,
            }),
            stats: Stats::default(),
        }
    }

    /// The arena (slot size, locking state).
    pub fn arena(&self) -> &SlotArena {
        &self.arena
    }

    fn lock(&self) -> Option<MutexGuard<'_, Inner>> {
        // A poisoned lock means a panic while the map was being changed;
        // its contents are still consistent (every change is one insert or
        // remove), so keep serving.
        Some(self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The entry for `key`, if cached or loading.
    pub fn get(&self, key: Key) -> Option<Arc<Entry>> {
        let g = self.lock()?;
        let e = g.map.get(&key)?;
        e.referenced.store(true, Ordering::Relaxed);
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(e))
    }

    /// True when `key` is cached or loading.
    pub fn contains(&self, key: Key) -> bool {
        self.lock().is_some_and(|g| g.map.contains_key(&key))
    }

    /// Entries currently in the map.
    pub fn len(&self) -> usize {
        self.lock().map_or(0, |g| g.map.len())
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Claims up to `max` consecutive absent chunks of `archive` from
    /// `first`, each with a slot, inserting them as loading. Stops at the
    /// first chunk already present. Empty when `first` is present, or when no
    /// slot can be had and `wait` is false; with `wait`, waits for a slot.
    pub fn claim(&self, archive: u32, first: u64, max: u64, wait: bool) -> Claim<'_> {
        loop {
            let mut items = Vec::new();
            let first_present;
            {
                let Some(mut g) = self.lock() else {
                    return Claim::empty(self, archive, first);
                };
                let mut i = first;
                while i < first.saturating_add(max) {
                    let key = (archive, i);
                    if g.map.contains_key(&key) {
                        break;
                    }
                    let slot = match self.arena.try_alloc() {
                        Some(s) => s,
                        None => match self.evict_for_slot(&mut g) {
                            Some(s) => s,
                            None => break,
                        },
                    };
                    let gen = g.next_gen;
                    g.next_gen += 1;
                    let e = Arc::new(Entry {
                        state: Mutex::new(State::Loading),
                        done: Condvar::new(),
                        referenced: AtomicBool::new(false),
                        gen,
                    });
                    g.map.insert(key, Arc::clone(&e));
                    g.order.push_back((key, gen));
                    items.push((e, Some(slot)));
                    i += 1;
                }
                first_present = g.map.contains_key(&(archive, first));
            }
            if !items.is_empty() || !wait || (first_present && items.is_empty()) {
                return Claim {
                    cache: self,
                    archive,
                    first,
                    items,
                    done: false,
                };
            }
            // Every slot is loading or being copied from: they come back soon.
            self.arena.wait_free(Duration::from_millis(50));
        }
    }

    /// Evicts entries (second chance) until a slot frees up.
    fn evict_for_slot(&self, g: &mut Inner) -> Option<Slot> {
        let mut budget = g.order.len().saturating_mul(2) + 1;
        while budget > 0 {
            budget -= 1;
            let (key, gen) = g.order.pop_front()?;
            let Some(e) = g.map.get(&key) else { continue };
            if e.gen != gen {
                continue;
            }
            if e.is_loading() || e.referenced.swap(false, Ordering::Relaxed) {
                g.order.push_back((key, gen));
                continue;
            }
            let removed = g.map.remove(&key);
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            // Nobody else holds the chunk: hand its slot straight to the
            // claimer, whose backing read overwrites it (wiping it first would
            // be one more pass over memory per chunk loaded). Otherwise the
            // last reader's drop wipes the slot and frees it.
            if let Some(slot) = removed.and_then(Self::unshared_slot) {
                return Some(slot);
            }
            if let Some(s) = self.arena.try_alloc() {
                return Some(s);
            }
        }
        None
    }

    /// The slot of a ready entry that has no other holder.
    fn unshared_slot(e: Arc<Entry>) -> Option<Slot> {
        let state = Arc::try_unwrap(e).ok()?.state.into_inner().ok()?;
        match state {
            State::Ready(r) => Arc::try_unwrap(r).ok().map(|r| r.slot),
            _ => None,
        }
    }

    fn remove(&self, key: Key, gen: u64) {
        if let Some(mut g) = self.lock() {
            if g.map.get(&key).is_some_and(|e| e.gen == gen) {
                g.map.remove(&key);
            }
        }
    }

    /// Drops every entry (their slots are wiped once no reader holds them).
    pub fn clear(&self) {
        let old = self.lock().map(|mut g| {
            g.order.clear();
            std::mem::take(&mut g.map)
        });
        drop(old);
    }
}

/// A run of chunks this thread has promised to load.
pub struct Claim<'a> {
    cache: &'a ChunkCache,
    archive: u32,
    first: u64,
    items: Vec<(Arc<Entry>, Option<Slot>)>,
    done: bool,
}

impl<'a> Claim<'a> {
    fn empty(cache: &'a ChunkCache, archive: u32, first: u64) -> Claim<'a> {
        Claim {
            cache,
            archive,
            first,
            items: Vec::new(),
            done: false,
        }
    }

    /// First chunk of the run.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// Chunks in the run.
    pub fn len(&self) -> u64 {
        self.items.len() as u64
    }

    /// True when nothing was claimed.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One buffer per claimed chunk, `stored_len(chunk)` bytes each; `None`
    /// if a chunk does not fit a slot (cannot happen with a correctly sized
    /// arena).
    pub fn buffers(&mut self, stored_len: impl Fn(u64) -> usize) -> Option<Vec<&mut [u8]>> {
        let first = self.first;
        self.items
            .iter_mut()
            .enumerate()
            .map(|(k, (_, slot))| {
                let n = stored_len(first + k as u64);
                slot.as_mut()?.as_mut_slice().get_mut(..n)
            })
            .collect()
    }

    /// Publishes the run as loaded; chunk `i` holds `plain_len(i)` bytes.
    pub fn publish(mut self, plain_len: impl Fn(u64) -> usize) -> Vec<Arc<Ready>> {
        let first = self.first;
        let mut out = Vec::with_capacity(self.items.len());
        for (k, (e, slot)) in self.items.iter_mut().enumerate() {
            match slot.take() {
                Some(slot) => {
                    let r = Arc::new(Ready {
                        slot,
                        len: plain_len(first + k as u64),
                    });
                    e.finish(State::Ready(Arc::clone(&r)));
                    out.push(r);
                }
                None => e.finish(State::Failed),
            }
        }
        self.cache
            .stats
            .loaded
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        self.done = true;
        out
    }

    /// Marks the run failed: waiters get `None`, the entries leave the cache
    /// and the slots (which may hold ciphertext) are wiped.
    pub fn fail(mut self) {
        self.fail_all();
    }

    fn fail_all(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let first = self.first;
        for (k, (e, slot)) in self.items.iter_mut().enumerate() {
            drop(slot.take());
            e.finish(State::Failed);
            self.cache.remove((self.archive, first + k as u64), e.gen);
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.fail_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(slots: usize) -> ChunkCache {
        ChunkCache::new(SlotArena::new(64, slots).unwrap())
    }

    fn load(c: &ChunkCache, first: u64, max: u64) -> u64 {
        let mut cl = c.claim(0, first, max, false);
        let n = cl.len();
        for (k, b) in cl.buffers(|_| 8).unwrap().into_iter().enumerate() {
            b.fill((first + k as u64) as u8);
        }
        cl.publish(|_| 8);
        n
    }

    #[test]
    fn claims_stop_at_present_chunks() {
        let c = cache(8);
        assert_eq!(load(&c, 2, 1), 1);
        assert_eq!(load(&c, 0, 5), 2, "0 and 1; 2 is present");
        assert!(c.claim(0, 2, 3, false).is_empty());
        let r = c.get((0, 1)).unwrap().wait().unwrap();
        assert_eq!(r.data(), &[1u8; 8]);
    }

    #[test]
    fn eviction_is_bounded_and_wipes() {
        let c = cache(4);
        for i in 0..20 {
            assert_eq!(load(&c, i, 1), 1);
            assert!(c.len() <= 4);
        }
        assert_eq!(c.stats.loaded.load(Ordering::Relaxed), 20);
        assert!(c.stats.evicted.load(Ordering::Relaxed) >= 16);
        c.clear();
        assert_eq!(c.arena().free_count(), 4);
    }

    #[test]
    fn held_chunks_survive_eviction_until_released() {
        let c = cache(2);
        load(&c, 0, 2);
        let held = c.get((0, 0)).unwrap().wait().unwrap();
        // Both slots taken; one is held by a reader: only one can be reused.
        assert_eq!(c.claim(0, 10, 2, false).len(), 1);
        assert_eq!(held.data(), &[0u8; 8], "held data intact");
    }

    #[test]
    fn dropped_claim_fails_waiters() {
        let c = cache(2);
        let cl = c.claim(0, 0, 1, false);
        let e = c.get((0, 0)).unwrap();
        drop(cl);
        assert!(e.wait().is_none());
        assert!(!c.contains((0, 0)));
    }

    #[test]
    fn concurrent_readers_load_once() {
        let c = Arc::new(cache(4));
        let loads = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                let loads = Arc::clone(&loads);
                std::thread::spawn(move || loop {
                    if let Some(e) = c.get((0, 7)) {
                        return e.wait().unwrap().data().to_vec();
                    }
                    let mut cl = c.claim(0, 7, 1, true);
                    if cl.is_empty() {
                        continue;
                    }
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::yield_now();
                    cl.buffers(|_| 4).unwrap()[0].fill(9);
                    return cl.publish(|_| 4)[0].data().to_vec();
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), vec![9u8; 4]);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
