//! A similarity run's numbers on its held-out designs (off-the-shelf and trained embedding):
//! read from the run's summary, shown as the runs list's cell, the run page's table and the
//! compare view's rows.

use atelier_catalog::RunRecord;
use atelier_train::similarity_run::{RetrievalScores, SimilarityEvaluation};
use maud::{Markup, html};
use serde::Serialize;

use super::chart::delta;
use super::score;

/// The evaluation a completed similarity run stored, if `record` is one.
pub fn evaluation(record: &RunRecord) -> Option<SimilarityEvaluation> {
    let summary = record.summary.as_ref()?;
    serde_json::from_value(summary.get("evaluation")?.clone()).ok()
}

/// The numbers shown, by name.
fn metrics(scores: &RetrievalScores) -> [(&'static str, Option<f64>); 5] {
    [
        ("Recall@1", scores.recall_at_1),
        ("Recall@10", scores.recall_at_10),
        ("triplet accuracy", scores.triplet_accuracy),
        ("swap accuracy", scores.swap_accuracy),
        ("stored triplets", scores.stored_triplet_accuracy),
    ]
}

/// The runs list's one-line summary of the trained embedding.
pub fn list_cell(scores: &RetrievalScores) -> Markup {
    html! {
        span.facet-score {
            span.name { "similarity" }
            span { "R@1 " strong { (score(scores.recall_at_1)) } " · swap " (score(scores.swap_accuracy)) }
        }
    }
}

/// The run page's table: each number for both embeddings.
pub fn table(evaluation: &SimilarityEvaluation) -> Markup {
    let (plain, trained) = (
        metrics(&evaluation.off_the_shelf),
        metrics(&evaluation.trained),
    );
    html! {
        h2 { "Retrieval on held-out designs" }
        p.muted {
            (evaluation.held_out_designs) " designs (" (evaluation.held_out_photos) " photos) never seen in training: "
            (evaluation.queries) " Recall@k queries, " (evaluation.triplets) " triplets, "
            (evaluation.swap_queries) " swap queries; " (evaluation.stored_triplets_scored) " stored triplets scored, "
            (evaluation.stored_triplets_learnt) " learnt from."
        }
        table.scores.retrieval {
            thead { tr { th { "" } th { "off-the-shelf" } th { "trained" } } }
            tbody {
                @for ((name, a), (_, b)) in plain.iter().zip(trained.iter()) {
                    tr { td { (name) } td { (score(*a)) } td { strong { (score(*b)) } } }
                }
            }
        }
    }
}

/// One number of the trained embedding in two runs.
#[derive(Debug, Serialize)]
pub struct MetricCompare {
    pub metric: &'static str,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub delta: Option<f64>,
}

/// The trained embedding's numbers of run A and run B, with B − A.
pub fn compare(a: &SimilarityEvaluation, b: &SimilarityEvaluation) -> Vec<MetricCompare> {
    metrics(&a.trained)
        .into_iter()
        .zip(metrics(&b.trained))
        .map(|((metric, a), (_, b))| MetricCompare {
            metric,
            a,
            b,
            delta: a.zip(b).map(|(a, b)| b - a),
        })
        .collect()
}

/// The compare view's table of [`compare`]'s rows.
pub fn compare_table(rows: &[MetricCompare]) -> Markup {
    html! {
        h2 { "Retrieval on held-out designs (trained embedding)" }
        table.compare {
            thead { tr { th { "" } th { "A" } th { "B" } th { "Δ" } } }
            tbody {
                @for row in rows {
                    tr { td { (row.metric) } td { (score(row.a)) } td { (score(row.b)) } td { (delta(row.delta)) } }
                }
            }
        }
    }
}
