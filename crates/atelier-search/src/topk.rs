//! The k best hits of a scan, kept in a bounded heap whose top is the worst hit kept, so that a
//! candidate costs one comparison unless it gets in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::Hit;

/// Result order: higher score first, and among equal scores the smaller key first.
pub(crate) fn rank(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.key.cmp(&b.key))
}

/// Sorts hits into result order.
pub(crate) fn sort_hits(hits: &mut [Hit]) {
    hits.sort_by(rank);
}

/// A hit ordered so that the heap's greatest element is the one ranked last.
struct Ranked(Hit);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        rank(&self.0, &other.0) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        rank(&self.0, &other.0)
    }
}

pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(4096)),
        }
    }

    /// Whether a hit with this score could get in (ties may, depending on the key).
    #[inline]
    pub(crate) fn admits(&self, score: f32) -> bool {
        if self.heap.len() < self.k {
            return true;
        }
        match self.heap.peek() {
            Some(worst) => score.total_cmp(&worst.0.score) != Ordering::Less,
            None => false,
        }
    }

    /// Offers a hit; keeps it if it ranks among the k best seen so far.
    #[inline]
    pub(crate) fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(Ranked(hit));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && rank(&hit, &worst.0) == Ordering::Less
        {
            *worst = Ranked(hit);
        }
    }

    /// Like [`TopK::push`], but a key already kept is not kept twice.
    pub(crate) fn push_unique(&mut self, hit: Hit) {
        if self.admits(hit.score) && !self.heap.iter().any(|kept| kept.0.key == hit.key) {
            self.push(hit);
        }
    }

    /// The hits kept, best first.
    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| r.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_best_with_ties_broken_by_the_smaller_key() {
        let mut top = TopK::new(3);
        for (key, score) in [(5, 0.5), (1, 0.9), (4, 0.5), (3, 0.5), (2, 0.1), (9, 0.9)] {
            top.push(Hit { key, score });
        }
        let keys: Vec<u64> = top.into_sorted().iter().map(|h| h.key).collect();
        assert_eq!(keys, vec![1, 9, 3]);
    }

    #[test]
    fn zero_k_keeps_nothing_and_push_unique_skips_kept_keys() {
        let mut none = TopK::new(0);
        none.push(Hit { key: 1, score: 1.0 });
        assert!(none.into_sorted().is_empty());

        let mut top = TopK::new(3);
        for _ in 0..3 {
            top.push_unique(Hit { key: 7, score: 0.5 });
        }
        assert_eq!(top.into_sorted().len(), 1);
    }
}
