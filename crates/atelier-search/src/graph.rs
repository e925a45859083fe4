//! The HNSW graph behind [`crate::HnswIndex`] (Malkov and Yashunin's hierarchical navigable
//! small world): the layout, inserting on several threads, and the walk.
//!
//! **Layout.** Every stored vector has a slot. The vectors lie in one contiguous array (16-bit
//! or 32-bit floats), the bottom layer's links in another (per slot: a count, then up to
//! `2 * connectivity` slots), the upper layers' links in one small array per slot (empty for
//! the nine slots in ten that live only in the bottom layer). A walk reads a vector at
//! `slot * dimensions` and a link list at `slot * (2 * connectivity + 1)`: no pointer to
//! follow on the way, and while it scores one candidate's neighbours it has asked the memory
//! for all of their vectors at once (prefetch), which is where a walk over a million vectors
//! spends its time.
//!
//! **Inserting.** Links are atomics, read without locks (a walk that meets a list being
//! rewritten reads old or new slots, every one a real node) and written under the owning
//! slot's lock, so [`Graph::insert`] links a batch of new slots from several threads at once.
//! The neighbours a node keeps are chosen by the paper's heuristic (a candidate is kept only
//! if it is closer to the node than to every neighbour kept before it), for the new node's
//! own links and for a neighbour whose full list takes the new node in.
//!
//! **Removing** marks the slot: walks still pass through it (its links hold the graph
//! together) but never return it, and its key is free to come back in a new slot.
//! [`Graph::removed`] says how many such slots there are, so the owner can rebuild.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use crate::error::SearchResult;
use crate::persist::{PayloadReader, PayloadWriter};
use crate::vector::{dot, dot_f16, from_f16, to_f16};

/// Layers above the bottom one a node can reach (a million nodes at connectivity 16 use five).
const MAX_LEVEL: usize = 15;

/// The walk starts nowhere in an empty graph.
const NOWHERE: u32 = u32::MAX;

/// How a graph stores its vectors, one row of `dimensions` numbers per slot.
pub(crate) enum Rows {
    F32(Vec<f32>),
    /// IEEE half floats, as bits.
    F16(Vec<u16>),
}

/// A slot and its score (the dot product with the query), ordered by score.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Near {
    pub score: f32,
    pub slot: u32,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Near {}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Near {
    /// Higher score is greater; among equal scores the smaller slot is greater.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.slot.cmp(&self.slot))
    }
}

/// Where every walk starts: the node of the highest level.
#[derive(Clone, Copy)]
struct Entry {
    slot: u32,
    level: usize,
}

/// A walk's working memory, kept between walks: the visited marks (one byte per slot and a
/// generation number, so that starting a walk clears nothing) and the two queues.
#[derive(Default)]
pub(crate) struct Scratch {
    marks: Vec<u8>,
    generation: u8,
    candidates: BinaryHeap<Near>,
    results: BinaryHeap<Reverse<Near>>,
    fresh: Vec<u32>,
    /// The vector of the node being linked.
    query: Vec<f32>,
    /// The vector of the node whose links are being chosen.
    centre: Vec<f32>,
    /// The vector of the candidate the heuristic is looking at.
    other: Vec<f32>,
}

impl Scratch {
    fn start(&mut self, slots: usize) {
        if self.marks.len() < slots {
            self.marks.resize(slots, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks `slot` visited; says whether it was not before.
    #[inline]
    fn first_visit(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        let first = *mark != self.generation;
        *mark = self.generation;
        first
    }

    /// Keeps `near` among the results, dropping the worst when more than `ef` are kept.
    #[inline]
    fn keep(&mut self, near: Near, ef: usize) {
        self.results.push(Reverse(near));
        if self.results.len() > ef {
            self.results.pop();
        }
    }

    /// The worst result kept, when `ef` are kept.
    #[inline]
    fn bar(&self, ef: usize) -> Option<f32> {
        (self.results.len() >= ef).then(|| self.results.peek().map_or(f32::MIN, |r| r.0.score))
    }
}

/// An HNSW graph over unit vectors, scored by dot product.
pub(crate) struct Graph {
    dim: usize,
    /// Links per node in the upper layers; the bottom layer keeps twice as many.
    m: usize,
    ef_add: usize,
    rows: Rows,
    keys: Vec<u64>,
    levels: Vec<u8>,
    gone: Vec<bool>,
    gone_count: usize,
    slots: HashMap<u64, u32>,
    base: Vec<AtomicU32>,
    upper: Vec<Box<[AtomicU32]>>,
    locks: Vec<Mutex<()>>,
    entry: Mutex<Entry>,
    scratches: Mutex<Vec<Scratch>>,
}

impl Graph {
    pub(crate) fn new(dim: usize, m: usize, ef_add: usize, rows: Rows) -> Graph {
        Graph {
            dim,
            m: m.max(2),
            ef_add: ef_add.max(1),
            rows,
            keys: Vec::new(),
            levels: Vec::new(),
            gone: Vec::new(),
            gone_count: 0,
            slots: HashMap::new(),
            base: Vec::new(),
            upper: Vec::new(),
            locks: Vec::new(),
            entry: Mutex::new(Entry {
                slot: NOWHERE,
                level: 0,
            }),
            scratches: Mutex::new(Vec::new()),
        }
    }

    /// The length of every stored vector.
    pub(crate) fn dimensions(&self) -> usize {
        self.dim
    }

    /// Keys held (removed ones not counted).
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots of removed keys that walks still pass through.
    pub(crate) fn removed(&self) -> usize {
        self.gone_count
    }

    pub(crate) fn contains(&self, key: u64) -> bool {
        self.slots.contains_key(&key)
    }

    fn width(&self, level: usize) -> usize {
        if level == 0 {
            2 * self.m + 1
        } else {
            self.m + 1
        }
    }

    /// The link list of `slot` in `level`: the count, then the links.
    #[inline]
    fn list(&self, slot: u32, level: usize) -> &[AtomicU32] {
        let w = self.width(level);
        let slot = slot as usize;
        if level == 0 {
            &self.base[slot * w..(slot + 1) * w]
        } else {
            &self.upper[slot][(level - 1) * w..level * w]
        }
    }

    #[inline]
    fn links(&self, slot: u32, level: usize) -> impl Iterator<Item = u32> + '_ {
        let list = self.list(slot, level);
        let count = (list[0].load(Relaxed) as usize).min(list.len() - 1);
        list[1..=count].iter().map(|l| l.load(Relaxed))
    }

    /// The dot product of `query` with the vector in `slot`.
    #[inline]
    fn score(&self, query: &[f32], slot: u32) -> f32 {
        let at = slot as usize * self.dim;
        match &self.rows {
            Rows::F32(v) => dot(query, &v[at..at + self.dim]),
            Rows::F16(v) => dot_f16(query, &v[at..at + self.dim]),
        }
    }

    /// The vector in `slot`, as f32.
    pub(crate) fn row(&self, slot: u32, out: &mut Vec<f32>) {
        let at = slot as usize * self.dim;
        match &self.rows {
            Rows::F32(v) => {
                out.clear();
                out.extend_from_slice(&v[at..at + self.dim]);
            }
            Rows::F16(v) => from_f16(&v[at..at + self.dim], out),
        }
    }

    /// Asks the memory for the vector in `slot` ahead of its use.
    #[inline]
    fn prefetch(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let at = slot as usize * self.dim;
            let (start, bytes) = match &self.rows {
                Rows::F32(v) => (v[at..].as_ptr() as *const i8, self.dim * 4),
                Rows::F16(v) => (v[at..].as_ptr() as *const i8, self.dim * 2),
            };
            for offset in (0..bytes).step_by(64) {
                // SAFETY: a prefetch never faults; the address lies inside the row anyway.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) };
            }
        }
    }

    /// The slot of `key`, if held.
    pub(crate) fn slot(&self, key: u64) -> Option<u32> {
        self.slots.get(&key).copied()
    }

    /// The dot product of `query` with the vector of `key`, if held.
    pub(crate) fn score_key(&self, query: &[f32], key: u64) -> Option<f32> {
        self.slot(key).map(|slot| self.score(query, slot))
    }

    /// Marks `key` removed; says whether it was held.
    pub(crate) fn remove(&mut self, key: u64) -> bool {
        match self.slots.remove(&key) {
            Some(slot) => {
                self.gone[slot as usize] = true;
                self.gone_count += 1;
                true
            }
            None => false,
        }
    }

    /// Every held key and its vector (as stored), in slot order.
    pub(crate) fn live(&self) -> (Vec<u64>, Vec<f32>) {
        let mut keys = Vec::with_capacity(self.len());
        let mut vectors = Vec::with_capacity(self.len() * self.dim);
        let mut row = Vec::new();
        for (slot, &key) in self.keys.iter().enumerate() {
            if !self.gone[slot] {
                self.row(slot as u32, &mut row);
                keys.push(key);
                vectors.extend_from_slice(&row);
            }
        }
        (keys, vectors)
    }

    fn with_scratch<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        let take = || {
            self.scratches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        let mut scratch = take().pop().unwrap_or_default();
        let result = f(&mut scratch);
        take().push(scratch);
        result
    }

    /// The `k` best slots for `query` that `allow` accepts (removed slots never), best first,
    /// walking the bottom layer with a candidate list of `ef` (at least `k`).
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        let entry = *self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        if entry.slot == NOWHERE || k == 0 {
            return Vec::new();
        }
        let mut best = Near {
            score: self.score(query, entry.slot),
            slot: entry.slot,
        };
        for level in (1..=entry.level).rev() {
            best = self.greedy(query, best, level);
        }
        let ok = |slot: u32| {
            !self.gone[slot as usize] && allow.is_none_or(|f| f(self.keys[slot as usize]))
        };
        let found = self.with_scratch(|s| self.walk(query, &[best], ef.max(k), 0, &ok, s));
        found
            .into_iter()
            .take(k)
            .map(|n| (self.keys[n.slot as usize], n.score))
            .collect()
    }

    /// Moves to the best-scoring neighbour in `level` until none scores better.
    fn greedy(&self, query: &[f32], mut best: Near, level: usize) -> Near {
        loop {
            let mut moved = false;
            for slot in self.links(best.slot, level) {
                let score = self.score(query, slot);
                if score > best.score {
                    best = Near { score, slot };
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    /// The best-first walk of one layer from `starts` (scored), keeping the `ef` best slots that `ok`
    /// accepts (best first). Slots `ok` refuses are walked through but not kept, so a walk
    /// under a selective filter goes on until it has `ef` accepted ones or runs out.
    fn walk(
        &self,
        query: &[f32],
        starts: &[Near],
        ef: usize,
        level: usize,
        ok: &dyn Fn(u32) -> bool,
        s: &mut Scratch,
    ) -> Vec<Near> {
        s.start(self.keys.len());
        for &start in starts {
            if s.first_visit(start.slot) {
                s.candidates.push(start);
                if ok(start.slot) {
                    s.keep(start, ef);
                }
            }
        }
        while let Some(best) = s.candidates.pop() {
            if s.bar(ef).is_some_and(|bar| best.score < bar) {
                break;
            }
            s.fresh.clear();
            for slot in self.links(best.slot, level) {
                if s.first_visit(slot) {
                    s.fresh.push(slot);
                }
            }
            s.fresh.iter().for_each(|&slot| self.prefetch(slot));
            for i in 0..s.fresh.len() {
                let slot = s.fresh[i];
                let near = Near {
                    score: self.score(query, slot),
                    slot,
                };
                if s.bar(ef).is_none_or(|bar| near.score > bar) {
                    s.candidates.push(near);
                    if ok(slot) {
                        s.keep(near, ef);
                    }
                }
            }
        }
        let mut found: Vec<Near> = s.results.drain().map(|r| r.0).collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    }

    /// Adds `items` (new, distinct keys with unit vectors) and links them into the graph from
    /// `threads` threads. The new nodes go in by level, highest first, one level after the
    /// other (as FAISS builds): a walk that reaches a node through an upper layer then finds
    /// its lower layers linked.
    pub(crate) fn insert(&mut self, items: &[(u64, &[f32])], threads: usize) {
        let first = self.append(items);
        let end = self.keys.len();
        let entry = self.entry.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut order: Vec<u32> = (first as u32..end as u32).collect();
        order.sort_by_key(|&slot| Reverse(self.levels[slot as usize]));
        if entry.slot == NOWHERE && !order.is_empty() {
            let top = order.remove(0);
            *entry = Entry {
                slot: top,
                level: self.levels[top as usize] as usize,
            };
        }
        let graph = &*self;
        for group in order.chunk_by(|a, b| graph.levels[*a as usize] == graph.levels[*b as usize]) {
            graph.link_all(group, threads);
        }
    }

    /// Links `slots` from up to `threads` threads, each taking the next slot when free.
    fn link_all(&self, slots: &[u32], threads: usize) {
        let counter = AtomicUsize::new(0);
        let work = || {
            let mut scratch = Scratch::default();
            while let Some(&slot) = slots.get(counter.fetch_add(1, Relaxed)) {
                self.link(slot, &mut scratch);
            }
        };
        let threads = threads.clamp(1, slots.len().max(1));
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(work);
                }
            });
        }
    }

    /// Stores `items` in new slots with empty links; returns the first new slot.
    fn append(&mut self, items: &[(u64, &[f32])]) -> usize {
        let first = self.keys.len();
        let n = items.len();
        self.keys.reserve(n);
        self.levels.reserve(n);
        self.gone.reserve(n);
        self.base.reserve(n * self.width(0));
        self.upper.reserve(n);
        self.locks.reserve(n);
        let (w0, w) = (self.width(0), self.width(1));
        for &(key, unit) in items {
            let slot = self.keys.len() as u32;
            let level = level_of(key, self.m);
            self.keys.push(key);
            self.slots.insert(key, slot);
            self.levels.push(level as u8);
            self.gone.push(false);
            match &mut self.rows {
                Rows::F32(v) => v.extend_from_slice(unit),
                Rows::F16(v) => v.extend(to_f16(unit)),
            }
            self.base.extend((0..w0).map(|_| AtomicU32::new(0)));
            self.upper
                .push((0..level * w).map(|_| AtomicU32::new(0)).collect());
            self.locks.push(Mutex::new(()));
        }
        first
    }

    /// Links the stored `slot` into every layer up to its level.
    fn link(&self, slot: u32, s: &mut Scratch) {
        let level = self.levels[slot as usize] as usize;
        let mut query = std::mem::take(&mut s.query);
        self.row(slot, &mut query);
        let top = *self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        let mut start = Near {
            score: self.score(&query, top.slot),
            slot: top.slot,
        };
        for layer in (level + 1..=top.level).rev() {
            start = self.greedy(&query, start, layer);
        }
        // Each layer's walk starts from all that the walk of the layer above found (the
        // paper's `ep <- W`).
        let mut starts = vec![start];
        for layer in (0..=level.min(top.level)).rev() {
            let mut found = self.walk(&query, &starts, self.ef_add, layer, &|_| true, s);
            found.retain(|n| n.slot != slot);
            if found.is_empty() {
                break;
            }
            let chosen = self.select(&found, self.width(layer) - 1, &mut s.other);
            self.set_links(slot, layer, &chosen, s);
            for near in &chosen {
                self.link_back(near.slot, slot, near.score, layer, s);
            }
            starts = found;
        }
        s.query = query;
        if level > top.level {
            let mut entry = self.entry.lock().unwrap_or_else(PoisonError::into_inner);
            if level > entry.level {
                *entry = Entry { slot, level };
            }
        }
    }

    /// The neighbours to keep out of `found` (best first): all of them when fewer than `cap`,
    /// else each that is closer to the node than to every one kept before it, up to `cap`.
    fn select(&self, found: &[Near], cap: usize, row: &mut Vec<f32>) -> Vec<Near> {
        if found.len() < cap {
            return found.to_vec();
        }
        let mut kept: Vec<Near> = Vec::with_capacity(cap);
        for &candidate in found {
            if kept.len() == cap {
                break;
            }
            self.row(candidate.slot, row);
            if kept
                .iter()
                .all(|k| self.score(row, k.slot) < candidate.score)
            {
                kept.push(candidate);
            }
        }
        kept
    }

    /// Gives `slot` its links in `level`. Another thread may have linked back to `slot` since
    /// its walk (it is reachable from the layer above, or as a walk's start): those links stay,
    /// chosen again with the new ones by the heuristic when they do not all fit.
    fn set_links(&self, slot: u32, level: usize, chosen: &[Near], s: &mut Scratch) {
        let _lock = self.locks[slot as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = self.list(slot, level);
        let cap = list.len() - 1;
        let others: Vec<u32> = self
            .links(slot, level)
            .filter(|l| chosen.iter().all(|c| c.slot != *l))
            .collect();
        if chosen.len() + others.len() <= cap {
            write_list(list, chosen.iter().map(|n| n.slot).chain(others));
        } else {
            self.reselect(slot, level, chosen.to_vec(), others.into_iter(), s);
        }
    }

    /// Adds `new` (scoring `score` against it) to the links of `from` in `level`, choosing
    /// again among them by the heuristic when the list is full.
    fn link_back(&self, from: u32, new: u32, score: f32, level: usize, s: &mut Scratch) {
        let _lock = self.locks[from as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = self.list(from, level);
        if self.links(from, level).any(|l| l == new) {
            return;
        }
        let count = self.links(from, level).count();
        if count < list.len() - 1 {
            list[count + 1].store(new, Relaxed);
            list[0].store(count as u32 + 1, Relaxed);
            return;
        }
        let held = self.links(from, level);
        self.reselect(from, level, vec![Near { score, slot: new }], held, s);
    }

    /// Writes into the full list of `slot` in `level` the heuristic's choice among `scored`
    /// (scored against `slot`'s vector) and `others` (scored here). The caller holds the lock.
    fn reselect(
        &self,
        slot: u32,
        level: usize,
        mut scored: Vec<Near>,
        others: impl Iterator<Item = u32>,
        s: &mut Scratch,
    ) {
        self.row(slot, &mut s.centre);
        scored.extend(others.map(|other| Near {
            score: self.score(&s.centre, other),
            slot: other,
        }));
        scored.sort_unstable_by(|a, b| b.cmp(a));
        let list = self.list(slot, level);
        let kept = self.select(&scored, list.len() - 1, &mut s.other);
        write_list(list, kept.iter().map(|n| n.slot));
    }
}

/// Writes `links` into a list (the links first, then the count).
fn write_list(list: &[AtomicU32], links: impl Iterator<Item = u32>) {
    let mut count = 0;
    for (cell, slot) in list[1..].iter().zip(links) {
        cell.store(slot, Relaxed);
        count += 1;
    }
    list[0].store(count, Relaxed);
}

/// The level of `key`'s node: `floor(-ln(u) / ln(m))` for a uniform `u` drawn from the key
/// (SplitMix64), so a key always gets the same level and a graph's levels follow the paper's
/// distribution whatever the keys.
fn level_of(key: u64, m: usize) -> usize {
    let mut z = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // In (0, 1]: the top 53 bits, plus one, over 2^53.
    let u = ((z >> 11) + 1) as f64 / (1u64 << 53) as f64;
    let level = -u.ln() / (m as f64).ln();
    (level as usize).min(MAX_LEVEL)
}

/// Values per piece when streaming arrays to and from a file.
const PIECE: usize = 1 << 14;

/// Writes `values` as `bytes` encodes them, a piece at a time.
fn put_each<T>(
    out: &mut PayloadWriter,
    values: impl Iterator<Item = T>,
    bytes: impl Fn(T, &mut Vec<u8>),
) -> std::io::Result<()> {
    let mut piece = Vec::with_capacity(PIECE * 8);
    for value in values {
        bytes(value, &mut piece);
        if piece.len() >= PIECE * 8 {
            out.put(&piece)?;
            piece.clear();
        }
    }
    out.put(&piece)
}

/// Reads `count` little-endian values of `size` bytes each, a piece at a time.
fn take_each<T>(
    input: &mut PayloadReader,
    count: usize,
    size: usize,
    value: impl Fn(&[u8]) -> T,
) -> SearchResult<Vec<T>> {
    let mut values = Vec::with_capacity(count);
    let mut piece = vec![0u8; PIECE * size];
    let mut left = count;
    while left > 0 {
        let n = left.min(PIECE);
        input.take(&mut piece[..n * size])?;
        values.extend(piece[..n * size].chunks_exact(size).map(&value));
        left -= n;
    }
    Ok(values)
}

fn u32_le(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes.try_into().expect("4 bytes"))
}

/// What a graph file holds besides its parameters (the reader checks it against the
/// parameters' layout before trusting it).
impl Graph {
    fn row_bytes(&self) -> usize {
        self.dim
            * match self.rows {
                Rows::F32(_) => 4,
                Rows::F16(_) => 2,
            }
    }

    /// Bytes [`Graph::write`] writes.
    pub(crate) fn encoded_len(&self) -> u64 {
        let n = self.keys.len();
        let upper: usize = self.upper.iter().map(|u| u.len()).sum();
        (16 + n * (8 + 1 + 1 + self.row_bytes()) + 4 * (self.base.len() + upper)) as u64
    }

    /// Writes the graph: the slot count, the entry, then the keys, levels, removed marks,
    /// vectors, bottom-layer lists and upper-layer lists, all little-endian.
    pub(crate) fn write(&self, out: &mut PayloadWriter) -> std::io::Result<()> {
        let entry = *self.entry.lock().unwrap_or_else(PoisonError::into_inner);
        out.put(&(self.keys.len() as u64).to_le_bytes())?;
        out.put(&entry.slot.to_le_bytes())?;
        out.put(&(entry.level as u32).to_le_bytes())?;
        out.put_u64s(&self.keys)?;
        out.put(&self.levels)?;
        out.put(&self.gone.iter().map(|&g| u8::from(g)).collect::<Vec<u8>>())?;
        match &self.rows {
            Rows::F32(v) => out.put_f32s(v)?,
            Rows::F16(v) => put_each(out, v.iter().copied(), |h, b| {
                b.extend_from_slice(&h.to_le_bytes())
            })?,
        }
        let words = self
            .base
            .iter()
            .chain(self.upper.iter().flat_map(|u| u.iter()));
        put_each(out, words, |w, b| {
            b.extend_from_slice(&w.load(Relaxed).to_le_bytes())
        })
    }

    /// Reads what [`Graph::write`] wrote into an empty graph of the same parameters;
    /// [`Graph::check`] checks it once the payload's checksum holds. `left` is the payload's
    /// length, checked against the slot count before anything is allocated.
    pub(crate) fn read(mut self, input: &mut PayloadReader, left: u64) -> SearchResult<Graph> {
        let mut head = [0u8; 16];
        input.take(&mut head)?;
        let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let per_slot = (8 + 1 + 1 + self.row_bytes() + 4 * self.width(0)) as u64;
        if n.checked_mul(per_slot).is_none_or(|need| need + 16 > left) || n >= NOWHERE as u64 {
            return Err(input.damaged(format!("{n} slots do not fit in the file")));
        }
        let n = n as usize;
        let entry = Entry {
            slot: u32_le(&head[8..12]),
            level: u32_le(&head[12..16]) as usize,
        };
        self.keys = vec![0; n];
        input.take_u64s(&mut self.keys)?;
        self.levels = vec![0; n];
        input.take(&mut self.levels)?;
        let mut gone = vec![0u8; n];
        input.take(&mut gone)?;
        self.gone = gone.iter().map(|&g| g != 0).collect();
        self.rows = match self.rows {
            Rows::F32(_) => {
                let mut v = vec![0f32; n * self.dim];
                input.take_f32s(&mut v)?;
                Rows::F32(v)
            }
            Rows::F16(_) => Rows::F16(take_each(input, n * self.dim, 2, |b| {
                u16::from_le_bytes([b[0], b[1]])
            })?),
        };
        if let Some(level) = self.levels.iter().find(|&&l| l as usize > MAX_LEVEL) {
            return Err(input.damaged(format!("a node of level {level} (at most {MAX_LEVEL})")));
        }
        self.base = take_each(input, n * self.width(0), 4, |b| AtomicU32::new(u32_le(b)))?;
        let w = self.width(1);
        for slot in 0..n {
            let words = self.levels[slot] as usize * w;
            self.upper
                .push(take_each(input, words, 4, |b| AtomicU32::new(u32_le(b)))?.into());
        }
        self.locks = (0..n).map(|_| Mutex::new(())).collect();
        *self.entry.get_mut().unwrap_or_else(PoisonError::into_inner) = entry;
        Ok(self)
    }

    /// Checks what [`Graph::read`] read: the entry, the removed marks, distinct keys, and
    /// every list's count and links within bounds. Fills the key map.
    pub(crate) fn check(&mut self, reserved: u64) -> Result<(), String> {
        let n = self.keys.len();
        let entry = *self.entry.get_mut().unwrap_or_else(PoisonError::into_inner);
        let top = self.levels.iter().max().map_or(0, |&l| l as usize);
        let entry_ok = if n == 0 {
            entry.slot == NOWHERE
        } else {
            (entry.slot as usize) < n
                && entry.level == top
                && self.levels[entry.slot as usize] as usize == top
        };
        if !entry_ok {
            return Err(format!(
                "the entry point ({}, level {}) is not the top node",
                entry.slot, entry.level
            ));
        }
        for slot in 0..n as u32 {
            for level in 0..=self.levels[slot as usize] as usize {
                let list = self.list(slot, level);
                let count = list[0].load(Relaxed) as usize;
                if count >= list.len() || self.links(slot, level).any(|l| l as usize >= n) {
                    return Err(format!(
                        "the links of node {slot} in layer {level} are out of bounds"
                    ));
                }
            }
        }
        self.slots.clear();
        self.gone_count = 0;
        for (slot, &key) in self.keys.iter().enumerate() {
            if self.gone[slot] {
                self.gone_count += 1;
            } else if key == reserved || self.slots.insert(key, slot as u32).is_some() {
                return Err(format!("key {key} is reserved or held twice"));
            }
        }
        Ok(())
    }

    /// Approximate bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        let n = self.keys.len();
        let upper: usize = self.upper.iter().map(|u| u.len() * 4 + 16).sum();
        n * (self.row_bytes() + 8 + 1 + 1 + size_of::<Mutex<()>>())
            + self.base.len() * 4
            + upper
            + self.slots.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// A graph of 2-d unit vectors at the given angles (degrees), keys 0.., one thread.
    fn circle(degrees: &[f32], m: usize) -> Graph {
        let vectors: Vec<Vec<f32>> = degrees
            .iter()
            .map(|d| vec![d.to_radians().cos(), d.to_radians().sin()])
            .collect();
        let items: Vec<(u64, &[f32])> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v.as_slice()))
            .collect();
        let mut graph = Graph::new(2, m, 16, Rows::F32(Vec::new()));
        graph.insert(&items, 1);
        graph
    }

    #[test]
    fn the_heuristic_keeps_a_candidate_only_if_it_is_closer_to_the_node_than_to_those_kept() {
        // The node sits at 0 degrees; candidates at 10, 20, 60 and -30 degrees. 20 is nearer
        // 10 (10 degrees) than the node (20), so it goes; so does 60 (50 from 10, 60 from the
        // node); -30 is nearer the node (30) than 10 (40), so it stays.
        let graph = circle(&[10.0, 20.0, 60.0, -30.0], 2);
        let node = unit(&[1.0, 0.0]);
        let found: Vec<Near> = {
            let mut f: Vec<Near> = (0..4u32)
                .map(|slot| Near {
                    score: graph.score(&node, slot),
                    slot,
                })
                .collect();
            f.sort_unstable_by(|a, b| b.cmp(a));
            f
        };
        let kept: Vec<u32> = graph
            .select(&found, 3, &mut Vec::new())
            .iter()
            .map(|n| n.slot)
            .collect();
        assert_eq!(kept, vec![0, 3]);
        // Fewer candidates than the cap: all kept, unpruned.
        let all: Vec<u32> = graph
            .select(&found, 5, &mut Vec::new())
            .iter()
            .map(|n| n.slot)
            .collect();
        assert_eq!(all, vec![0, 1, 3, 2]);
    }

    #[test]
    fn levels_follow_the_papers_distribution_and_stay_with_their_key() {
        let m = 16;
        let n = 200_000u64;
        let above: usize = (0..n).filter(|&k| level_of(k, m) >= 1).count();
        let two: usize = (0..n).filter(|&k| level_of(k, m) >= 2).count();
        // P(level >= l) = m^-l: 1/16 and 1/256.
        let p1 = above as f64 / n as f64;
        let p2 = two as f64 / n as f64;
        assert!((p1 - 1.0 / 16.0).abs() < 0.003, "{p1}");
        assert!((p2 - 1.0 / 256.0).abs() < 0.0008, "{p2}");
        assert_eq!(level_of(12345, m), level_of(12345, m));
    }

    /// `n` pseudo-random unit vectors of `d` numbers (a fixed linear congruential sequence).
    fn random_units(n: usize, d: usize) -> Vec<Vec<f32>> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        (0..n)
            .map(|_| unit(&(0..d).map(|_| next()).collect::<Vec<_>>()))
            .collect()
    }

    fn graph_of(vectors: &[Vec<f32>], m: usize, threads: usize) -> Graph {
        let items: Vec<(u64, &[f32])> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v.as_slice()))
            .collect();
        let mut graph = Graph::new(vectors[0].len(), m, 32, Rows::F32(Vec::new()));
        graph.insert(&items, threads);
        graph
    }

    /// The `k` keys of `vectors` nearest to `query` among those `keep` accepts, by brute force.
    fn nearest(
        vectors: &[Vec<f32>],
        query: &[f32],
        k: usize,
        keep: impl Fn(u64) -> bool,
    ) -> Vec<u64> {
        let mut scored: Vec<(f32, u64)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| keep(*i as u64))
            .map(|(i, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), i as u64))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.iter().take(k).map(|s| s.1).collect()
    }

    #[test]
    fn every_node_is_found_from_the_entry_and_lists_stay_within_their_caps() {
        let vectors = random_units(600, 8);
        for threads in [1, 3] {
            let mut graph = graph_of(&vectors, 4, threads);
            graph.check(u64::MAX).unwrap();
            for slot in 0..600u32 {
                assert!(graph.links(slot, 0).count() <= 8);
                for level in 1..=graph.levels[slot as usize] as usize {
                    assert!(graph.links(slot, level).count() <= 4);
                }
                let best = graph.search(&vectors[slot as usize], 1, 32, None);
                assert_eq!(
                    best[0].0, slot as u64,
                    "{threads} threads: node {slot} not found"
                );
            }
            // Every node is reachable from the entry through the bottom layer's links.
            let mut seen = vec![false; 600];
            let mut todo = vec![graph.entry.lock().unwrap().slot];
            while let Some(slot) = todo.pop() {
                if !std::mem::replace(&mut seen[slot as usize], true) {
                    todo.extend(graph.links(slot, 0));
                }
            }
            assert!(seen.iter().all(|&s| s), "{threads} threads");
        }
    }

    #[test]
    fn check_refuses_links_out_of_bounds_a_wrong_entry_and_twice_held_keys() {
        let mut graph = graph_of(&random_units(50, 8), 4, 1);
        graph.check(u64::MAX).unwrap();

        graph.list(7, 0)[1].store(50, Relaxed);
        assert!(graph.check(u64::MAX).unwrap_err().contains("node 7"));
        graph.list(7, 0)[1].store(3, Relaxed);
        graph.list(7, 0)[0].store(9, Relaxed);
        assert!(graph.check(u64::MAX).unwrap_err().contains("out of bounds"));
        graph.list(7, 0)[0].store(1, Relaxed);
        graph.check(u64::MAX).unwrap();

        let entry = *graph.entry.get_mut().unwrap();
        graph.entry.get_mut().unwrap().slot = (entry.slot + 1) % 50;
        if graph.levels[(entry.slot as usize + 1) % 50] as usize != entry.level {
            assert!(graph.check(u64::MAX).unwrap_err().contains("entry point"));
        }
        *graph.entry.get_mut().unwrap() = entry;

        graph.keys[3] = graph.keys[4];
        assert!(graph.check(u64::MAX).unwrap_err().contains("held twice"));
        graph.keys[3] = u64::MAX;
        assert!(graph.check(u64::MAX).unwrap_err().contains("reserved"));
    }

    #[test]
    fn removed_nodes_are_walked_through_but_never_returned() {
        let vectors = random_units(400, 8);
        let mut graph = graph_of(&vectors, 4, 1);
        for key in 100..300 {
            assert!(graph.remove(key));
        }
        assert!(!graph.remove(100));
        assert_eq!((graph.len(), graph.removed()), (200, 200));
        let held = |k: u64| !(100..300).contains(&k);
        for q in [0usize, 150, 250, 399] {
            let hits: Vec<u64> = graph
                .search(&vectors[q], 5, 64, None)
                .iter()
                .map(|h| h.0)
                .collect();
            assert_eq!(hits, nearest(&vectors, &vectors[q], 5, held), "query {q}");
            let odd = |k: u64| k % 2 == 1;
            let hits: Vec<u64> = graph
                .search(&vectors[q], 5, 64, Some(&odd))
                .iter()
                .map(|h| h.0)
                .collect();
            assert_eq!(
                hits,
                nearest(&vectors, &vectors[q], 5, |k| held(k) && odd(k))
            );
        }
    }
}
