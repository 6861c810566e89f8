//! The plaintext chunk cache shared by every open file of a mount.
//!
//! Entries are keyed by (archive, data-chunk index) and live in slots of a
//! locked, non-dumpable [`SlotArena`]; the arena's size is the cache bound.
//! Loading is single-flight: a reader that misses *claims* a run of
//! consecutive absent chunks (inserting them as `Loading` with a slot each),
//! fills them with one vectored read and publishes them *sealed* (the
//! chunks as stored, not yet authenticated, as [`Sealed`]); any other reader
//! of those chunks waits on the entry instead of reading it again. A sealed
//! chunk becomes plaintext only where it is needed: a reader that wants all
//! of it decrypts it straight into its reply ([`Sealed::stored`]), one that
//! wants part of it opens it in the slot once ([`ChunkCache::open`], the
//! entry then holds a [`Ready`] chunk for every later reader). Eviction is
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

/// An opened chunk: its authentic plaintext is the first `len` bytes of
/// the slot.
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

/// A chunk as stored in the archive (ciphertext || tag), not yet
/// authenticated: its bytes are never plaintext and are only ever given to
/// the AEAD.
pub struct Sealed {
    slot: Slot,
    len: usize,
}

impl Sealed {
    /// The stored bytes (ciphertext || tag).
    pub fn stored(&self) -> &[u8] {
        self.slot.as_slice().get(..self.len).unwrap_or(&[])
    }
}

/// What [`ChunkCache::open`] did.
pub enum Opened {
    /// The chunk is open, for this reader and every later one.
    Ready(Arc<Ready>),
    /// Someone else holds the sealed chunk: it was left as it is.
    Shared(Arc<Sealed>),
}

/// What a finished load holds.
#[derive(Clone)]
pub enum Loaded {
    /// Opened: plaintext.
    Ready(Arc<Ready>),
    /// Read, not yet opened.
    Sealed(Arc<Sealed>),
}

enum State {
    Loading,
    Sealed(Arc<Sealed>),
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
    pub fn wait(&self) -> Option<Loaded> {
        let mut g = self.state.lock().ok()?;
        loop {
            match &*g {
                State::Ready(r) => return Some(Loaded::Ready(Arc::clone(r))),
                State::Sealed(r) => return Some(Loaded::Sealed(Arc::clone(r))),
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

    /// The slot of a loaded entry that has no other holder.
    fn unshared_slot(e: Arc<Entry>) -> Option<Slot> {
        let state = Arc::try_unwrap(e).ok()?.state.into_inner().ok()?;
        match state {
            State::Ready(r) => Arc::try_unwrap(r).ok().map(|r| r.slot),
            State::Sealed(r) => Arc::try_unwrap(r).ok().map(|r| r.slot),
            _ => None,
        }
    }

    /// Opens the sealed chunk `sealed` of entry `e` (key `key`) in its slot
    /// for every later reader: `open` gets the stored bytes and returns the
    /// plaintext length, or an error. While it runs the entry is loading
    /// (other readers wait for it). [`Opened::Shared`] gives the chunk back
    /// when another reader holds it too, or it is not the entry's sealed
    /// chunk any more: it stays as it is (open a copy instead). On an error
    /// the entry fails and leaves the cache, and the slot is wiped.
    pub fn open<E>(
        &self,
        key: Key,
        e: &Entry,
        sealed: Arc<Sealed>,
        open: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Opened, E> {
        {
            let mut g = e.state.lock().unwrap_or_else(|p| p.into_inner());
            match &*g {
                State::Sealed(r) if Arc::ptr_eq(r, &sealed) => *g = State::Loading,
                _ => return Ok(Opened::Shared(sealed)),
            }
        } // the entry's reference is dropped here
        let mut s = match Arc::try_unwrap(sealed) {
            Ok(s) => s,
            Err(shared) => {
                e.finish(State::Sealed(Arc::clone(&shared)));
                return Ok(Opened::Shared(shared));
            }
        };
        let n = s.len;
        // A slot is at least as long as its chunk (`Claim::buffers`); an
        // empty buffer fails to open, so a mistake fails closed.
        let opened = open(s.slot.as_mut_slice().get_mut(..n).unwrap_or_default());
        match opened {
            Ok(len) => {
                let r = Arc::new(Ready { slot: s.slot, len });
                e.finish(State::Ready(Arc::clone(&r)));
                Ok(Opened::Ready(r))
            }
            Err(err) => {
                drop(s); // the slot is wiped
                e.finish(State::Failed);
                self.remove(key, e.gen);
                Err(err)
            }
        }
    }

    /// Takes a chunk that failed authentication out of the cache: entry
    /// `e` fails (its waiters give up) and leaves the map.
    pub fn discard(&self, key: Key, e: &Entry) {
        e.finish(State::Failed);
        self.remove(key, e.gen);
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

    /// Publishes the run as read but sealed; chunk `i` holds `stored_len(i)`
    /// bytes as stored. Returns the entries with their chunks.
    pub fn publish(self, stored_len: impl Fn(u64) -> usize) -> Vec<(Arc<Entry>, Loaded)> {
        self.finish_run(|e, slot, i| {
            let r = Arc::new(Sealed {
                slot,
                len: stored_len(i),
            });
            e.finish(State::Sealed(Arc::clone(&r)));
            (Arc::clone(e), Loaded::Sealed(r))
        })
    }

    /// Publishes the run as already opened: the loader authenticated every
    /// chunk and left its plaintext at the start of its buffer, `plain_len(i)`
    /// bytes (the external Crypt4GH segments of a reference archive, opened
    /// by `reference::BoundFile::load_run`). Returns the chunks in order.
    pub fn publish_opened(self, plain_len: impl Fn(u64) -> usize) -> Vec<Arc<Ready>> {
        self.finish_run(|e, slot, i| {
            let r = Arc::new(Ready {
                slot,
                len: plain_len(i),
            });
            e.finish(State::Ready(Arc::clone(&r)));
            r
        })
    }

    /// Hands each entry that has its slot, with the slot and the chunk
    /// index, to `publish` (which finishes the entry); entries without a
    /// slot fail. Counts the published chunks and ends the run.
    fn finish_run<T>(mut self, mut publish: impl FnMut(&Arc<Entry>, Slot, u64) -> T) -> Vec<T> {
        let first = self.first;
        let mut out = Vec::with_capacity(self.items.len());
        for (k, (e, slot)) in self.items.iter_mut().enumerate() {
            match slot.take() {
                Some(slot) => out.push(publish(e, slot, first + k as u64)),
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

    /// The chunk `i` as a reader sees it: opened (here: "decrypted" by
    /// adding 100 to every byte) on first use.
    fn read(c: &ChunkCache, i: u64) -> Vec<u8> {
        loop {
            let e = c.get((0, i)).unwrap();
            let opened = match e.wait().unwrap() {
                Loaded::Ready(r) => return r.data().to_vec(),
                Loaded::Sealed(s) => c.open((0, i), &e, s, |b| {
                    b.iter_mut().for_each(|x| *x += 100);
                    Ok::<usize, ()>(b.len() - 2)
                }),
            };
            if let Opened::Ready(r) = opened.unwrap() {
                return r.data().to_vec();
            }
            std::thread::yield_now(); // another reader held it: again
        }
    }

    /// Entry `i` and its chunk, which must be sealed.
    fn sealed(c: &ChunkCache, i: u64) -> (Arc<Entry>, Arc<Sealed>) {
        let e = c.get((0, i)).unwrap();
        match e.wait() {
            Some(Loaded::Sealed(s)) => (e, s),
            _ => panic!("chunk {i} is not sealed"),
        }
    }

    #[test]
    fn claims_stop_at_present_chunks() {
        let c = cache(8);
        assert_eq!(load(&c, 2, 1), 1);
        assert_eq!(load(&c, 0, 5), 2, "0 and 1; 2 is present");
        assert!(c.claim(0, 2, 3, false).is_empty());
        assert_eq!(read(&c, 1), &[101u8; 6]);
    }

    #[test]
    fn a_sealed_chunk_is_opened_once_for_every_reader() {
        let c = cache(4);
        load(&c, 0, 1);
        assert_eq!(read(&c, 0), &[100u8; 6]);
        // Now ready: the next reader gets the plaintext without opening.
        let e = c.get((0, 0)).unwrap();
        assert!(matches!(e.wait(), Some(Loaded::Ready(_))));
        assert_eq!(read(&c, 0), &[100u8; 6]);
    }

    #[test]
    fn a_chunk_that_fails_to_open_leaves_the_cache() {
        let c = cache(4);
        load(&c, 3, 1);
        let (e, s) = sealed(&c, 3);
        assert!(matches!(
            c.open((0, 3), &e, s, |_| Err("bad tag")),
            Err("bad tag")
        ));
        assert!(e.wait().is_none(), "waiters fail");
        assert!(!c.contains((0, 3)));
        assert_eq!(c.arena().free_count(), 4, "slot wiped and freed");
    }

    #[test]
    fn a_shared_sealed_chunk_stays_sealed() {
        let c = cache(4);
        load(&c, 0, 1);
        let (e, s) = sealed(&c, 0);
        let other = Arc::clone(&s); // another reader decrypting it meanwhile
        let back = c.open((0, 0), &e, s, |_| Ok::<usize, ()>(6)).unwrap();
        assert!(matches!(back, Opened::Shared(_)));
        assert!(matches!(e.wait(), Some(Loaded::Sealed(_))));
        assert_eq!(other.stored(), &[0u8; 8]);
        c.discard((0, 0), &e);
        assert!(e.wait().is_none() && !c.contains((0, 0)));
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
        let held = read(&c, 0);
        let e = c.get((0, 0)).unwrap();
        let Some(Loaded::Ready(r)) = e.wait() else {
            panic!("opened")
        };
        // Both slots taken; one is held by a reader: only one can be reused.
        assert_eq!(c.claim(0, 10, 2, false).len(), 1);
        assert_eq!(r.data(), &held[..], "held data intact");
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
                    if c.contains((0, 7)) {
                        return read(&c, 7);
                    }
                    let mut cl = c.claim(0, 7, 1, true);
                    if cl.is_empty() {
                        continue;
                    }
                    loads.fetch_add(1, Ordering::SeqCst);
                    std::thread::yield_now();
                    cl.buffers(|_| 4).unwrap()[0].fill(9);
                    cl.publish(|_| 4);
                    return read(&c, 7);
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), vec![109u8; 2]);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
