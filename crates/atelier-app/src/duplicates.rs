//! Near-duplicates: pairs of active photos whose trained embeddings (of the newest similarity
//! run) score above a threshold, grouped into connected sets, with reviewers' verdicts ("the
//! same product" or "not the same"); "same product" pairs join one design for the next
//! similarity run. The catalogue stores each file's bytes once (an import merges byte-identical
//! files and reports them), so the closest pairs come first instead: re-encoded or resized
//! copies score about 1.

use std::collections::HashMap;

use atelier_catalog::{Catalog, DuplicateDecision, DuplicateVerdict};
use serde::Serialize;

use crate::error::AppError;
use crate::similar::Searcher;

/// How many of each photo's nearest photos are looked at for pairs.
pub const NEIGHBOURS: usize = 10;

/// What to list.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateQuery {
    /// The similarity run (default: the newest completed one).
    pub run: Option<i64>,
    /// Lowest cosine similarity of a listed pair, in (0, 1].
    pub threshold: f32,
    /// Only pairs no reviewer has decided.
    pub undecided_only: bool,
    /// From 1.
    pub page: usize,
    /// Groups per page.
    pub per_page: usize,
}

impl Default for DuplicateQuery {
    fn default() -> Self {
        DuplicateQuery {
            run: None,
            // Photos of one synthetic design score 0.9+ with the demo's run; distinct designs
            // rarely pass 0.95.
            threshold: 0.95,
            undecided_only: false,
            page: 1,
            per_page: 20,
        }
    }
}

/// One close pair and its verdict, if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicatePair {
    /// The smaller image id.
    pub a: String,
    pub b: String,
    pub score: f32,
    pub verdict: Option<DuplicateVerdict>,
    pub decided_by: Option<String>,
}

/// Photos joined by close pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateGroup {
    /// Sorted ids.
    pub images: Vec<String>,
    /// The group's best score.
    pub best: f32,
    /// Best first.
    pub pairs: Vec<DuplicatePair>,
}

/// One page of near-duplicate groups, best group first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicateReport {
    pub run: i64,
    pub threshold: f32,
    /// Pairs listed (undecided ones only, when asked), and how many of them are undecided.
    pub pairs: usize,
    pub undecided: usize,
    pub groups: usize,
    pub page: usize,
    pub per_page: usize,
    pub more: bool,
    pub shown: Vec<DuplicateGroup>,
}

/// One page of the catalogue's near-duplicate groups (see the module docs).
pub async fn near_duplicates(
    catalog: &Catalog,
    searcher: &Searcher,
    query: &DuplicateQuery,
) -> Result<DuplicateReport, AppError> {
    check(query)?;
    let (record, close) = searcher
        .close_pairs(catalog, query.run, NEIGHBOURS, query.threshold)
        .await?;
    let verdicts: HashMap<(String, String), DuplicateDecision> = catalog
        .duplicate_decisions()
        .await?
        .into_iter()
        .map(|d| ((d.image_a.clone(), d.image_b.clone()), d))
        .collect();
    let pairs: Vec<DuplicatePair> = close
        .iter()
        .map(|(a, b, score)| {
            let decided = verdicts.get(&(a.clone(), b.clone()));
            DuplicatePair {
                a: a.clone(),
                b: b.clone(),
                score: *score,
                verdict: decided.map(|d| d.verdict),
                decided_by: decided.map(|d| d.actor.clone()),
            }
        })
        .filter(|p| !query.undecided_only || p.verdict.is_none())
        .collect();
    let undecided = pairs.iter().filter(|p| p.verdict.is_none()).count();
    let total = pairs.len();
    let groups = group(pairs);
    let start = (query.page - 1).saturating_mul(query.per_page);
    let shown: Vec<DuplicateGroup> = groups
        .iter()
        .skip(start)
        .take(query.per_page)
        .cloned()
        .collect();
    Ok(DuplicateReport {
        run: record.id,
        threshold: query.threshold,
        pairs: total,
        undecided,
        groups: groups.len(),
        page: query.page,
        per_page: query.per_page,
        more: groups.len() > start + shown.len(),
        shown,
    })
}

fn check(query: &DuplicateQuery) -> Result<(), AppError> {
    if !(query.threshold > 0.0 && query.threshold <= 1.0) {
        return Err(AppError::Invalid(format!(
            "threshold {} is not a cosine similarity in (0, 1]; try 0.95",
            query.threshold
        )));
    }
    if query.page == 0 || query.per_page == 0 {
        return Err(AppError::Invalid(
            "page and groups per page count from 1".into(),
        ));
    }
    Ok(())
}

/// The connected sets of `pairs` (best first, each with its pairs best first).
fn group(pairs: Vec<DuplicatePair>) -> Vec<DuplicateGroup> {
    let mut index: HashMap<String, usize> = HashMap::new();
    for pair in &pairs {
        for id in [&pair.a, &pair.b] {
            let next = index.len();
            index.entry(id.clone()).or_insert(next);
        }
    }
    let mut sets = Sets::new(index.len());
    for pair in &pairs {
        sets.join(index[&pair.a], index[&pair.b]);
    }
    let mut groups: HashMap<usize, DuplicateGroup> = HashMap::new();
    for pair in pairs {
        let group = groups
            .entry(sets.root(index[&pair.a]))
            .or_insert_with(|| DuplicateGroup {
                images: Vec::new(),
                best: f32::MIN,
                pairs: Vec::new(),
            });
        group.best = group.best.max(pair.score);
        for id in [&pair.a, &pair.b] {
            if !group.images.contains(id) {
                group.images.push(id.clone());
            }
        }
        group.pairs.push(pair);
    }
    let mut groups: Vec<DuplicateGroup> = groups.into_values().collect();
    for group in &mut groups {
        group.images.sort();
        group.pairs.sort_by(|x, y| y.score.total_cmp(&x.score));
    }
    groups.sort_by(|x, y| {
        y.best
            .total_cmp(&x.best)
            .then_with(|| x.images.cmp(&y.images))
    });
    groups
}

/// Disjoint sets of `0..n` (union-find with path halving).
struct Sets(Vec<usize>);

impl Sets {
    fn new(n: usize) -> Sets {
        Sets((0..n).collect())
    }

    fn root(&mut self, mut at: usize) -> usize {
        while self.0[at] != at {
            self.0[at] = self.0[self.0[at]];
            at = self.0[at];
        }
        at
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.0[b] = a;
    }
}

/// Stores a reviewer's verdict on a pair (see [`Catalog::decide_duplicate`]).
pub async fn decide(
    catalog: &Catalog,
    a: &str,
    b: &str,
    verdict: DuplicateVerdict,
    actor: &str,
) -> Result<DuplicateDecision, AppError> {
    Ok(catalog.decide_duplicate(a, b, verdict, actor).await?)
}

/// Photos a reviewer called the same product join one design: every design (or lone photo)
/// linked by "same" verdicts takes the smallest design id of its set, or `same:` + its
/// smallest image id when none of them has a design. `designs` holds each row's design,
/// `ids` each row's image id.
pub fn merge_same_products(
    ids: &[String],
    designs: &mut [Option<String>],
    decisions: &[DuplicateDecision],
) {
    let row_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(row, id)| (id.as_str(), row))
        .collect();
    let mut sets = Sets::new(ids.len());
    let mut first_of_design: HashMap<String, usize> = HashMap::new();
    for (row, design) in designs.iter().enumerate() {
        if let Some(design) = design {
            let first = *first_of_design.entry(design.clone()).or_insert(row);
            sets.join(first, row);
        }
    }
    let mut linked = false;
    for decision in decisions
        .iter()
        .filter(|d| d.verdict == DuplicateVerdict::Same)
    {
        let (Some(&a), Some(&b)) = (
            row_of.get(decision.image_a.as_str()),
            row_of.get(decision.image_b.as_str()),
        ) else {
            continue;
        };
        sets.join(a, b);
        linked = true;
    }
    if !linked {
        return;
    }
    // Each set's name: its smallest design id, else `same:` + its smallest image id.
    let mut name: HashMap<usize, (bool, String)> = HashMap::new();
    let mut size: HashMap<usize, usize> = HashMap::new();
    for row in 0..ids.len() {
        let r = sets.root(row);
        *size.entry(r).or_default() += 1;
        let candidate = match &designs[row] {
            Some(design) => (false, design.clone()),
            None => (true, format!("same:{}", ids[row])),
        };
        name.entry(r)
            .and_modify(|kept| {
                if candidate < *kept {
                    *kept = candidate.clone();
                }
            })
            .or_insert(candidate);
    }
    for (row, design) in designs.iter_mut().enumerate() {
        let r = sets.root(row);
        if size[&r] > 1 {
            *design = Some(name[&r].1.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str, score: f32) -> DuplicatePair {
        DuplicatePair {
            a: a.into(),
            b: b.into(),
            score,
            verdict: None,
            decided_by: None,
        }
    }

    #[test]
    fn pairs_join_into_connected_groups_best_first() {
        let groups = group(vec![
            pair("a", "b", 0.97),
            pair("x", "y", 0.99),
            pair("b", "c", 0.96),
            pair("d", "c", 0.95),
        ]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].images, ["x", "y"]);
        assert_eq!(groups[1].images, ["a", "b", "c", "d"]);
        assert_eq!(groups[1].best, 0.97);
        let scores: Vec<f32> = groups[1].pairs.iter().map(|p| p.score).collect();
        assert_eq!(scores, [0.97, 0.96, 0.95]);
    }

    fn same(a: &str, b: &str) -> DuplicateDecision {
        DuplicateDecision {
            image_a: a.into(),
            image_b: b.into(),
            verdict: DuplicateVerdict::Same,
            actor: "zoe".into(),
            decided_at: 0,
        }
    }

    #[test]
    fn same_product_verdicts_merge_designs() {
        let ids: Vec<String> = ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]
            .map(String::from)
            .to_vec();
        let design = |d: &str| Some(d.to_string());
        let mut designs = vec![
            design("d2"),
            design("d2"),
            design("d1"),
            None,
            None,
            None,
            design("d3"),
        ];
        let mut different = same("p0", "p6");
        different.verdict = DuplicateVerdict::Different;
        let decisions = [
            same("p1", "p2"), // d2 and d1 become one design, d1
            same("p2", "p3"), // a lone photo joins it
            same("p4", "p5"), // two lone photos: a design named after the smaller id
            different,
            same("p0", "gone"), // an image not in the data is passed over
        ];
        merge_same_products(&ids, &mut designs, &decisions);
        assert_eq!(
            designs,
            [
                design("d1"),
                design("d1"),
                design("d1"),
                design("d1"),
                design("same:p4"),
                design("same:p4"),
                design("d3"),
            ]
        );
        // Without "same" verdicts nothing changes.
        let mut untouched = vec![design("d2"), None];
        merge_same_products(&ids[..2], &mut untouched, &[]);
        assert_eq!(untouched, [design("d2"), None]);
    }
}
