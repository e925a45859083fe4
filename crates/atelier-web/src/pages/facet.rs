//! The F1 view of one facet in one run: precision, recall, F1 and support per class for train
//! and test (table and bars, in the facet's label order), and both confusion matrices as heat
//! maps whose cells open their images.

use atelier_train::metrics::SplitMetrics;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::runs::{RunFacet, find_run};
use crate::views::chart::{Bars, confusion, f1_bars};
use crate::views::layout::page;
use crate::views::{score, url_encode};

#[derive(Debug, Serialize)]
pub struct FacetPage {
    pub run: i64,
    pub facet: String,
    pub labels: Vec<String>,
    pub train: Option<SplitMetrics>,
    pub test: Option<SplitMetrics>,
    /// The train numbers come from out-of-fold predictions (models that never saw the image).
    pub train_out_of_fold: bool,
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path((run, facet)): Path<(i64, String)>,
) -> Result<Response, WebError> {
    let record = find_run(&state, run).await?;
    let result = state
        .catalog
        .run_facets(run)
        .await?
        .into_iter()
        .find(|f| f.facet == facet)
        .ok_or_else(|| WebError::NotFound(format!("run #{run} did not train facet {facet:?}")))?;
    let facet = RunFacet::from_result(result);
    let train_out_of_fold = atelier_app::RunSummary::of(&record)
        .is_some_and(|s| s.train_metrics == atelier_app::summary::TrainMetrics::OutOfFold);
    let data = FacetPage {
        run,
        facet: facet.facet,
        labels: facet.labels,
        train: facet.train,
        test: facet.test,
        train_out_of_fold,
    };
    Ok(respond(format, &data, |data| render(data, &user)))
}

fn review_link(data: &FacetPage, query: &str) -> String {
    format!(
        "/runs/{}/facets/{}/review?{query}",
        data.run,
        url_encode(&data.facet)
    )
}

fn metrics_table(data: &FacetPage, metrics: &SplitMetrics, split: &str) -> Markup {
    html! {
        table.metrics {
            thead { tr {
                th { "Class" } th { "Precision" } th { "Recall" } th { "F1" } th { "Support" }
                th title="labelled with the class, predicted as another" { "False negatives" }
                th title="predicted as the class, labelled as another" { "False positives" }
            } }
            tbody {
                @for (i, class) in metrics.per_class.iter().enumerate() {
                    @let row_total: u64 = metrics.confusion.get(i).map_or(0, |r| r.iter().sum());
                    @let hits = metrics.confusion.get(i).and_then(|r| r.get(i)).copied().unwrap_or(0);
                    @let predicted: u64 = metrics.confusion.iter().filter_map(|r| r.get(i)).sum();
                    @let label = url_encode(&class.label);
                    tr {
                        td { (class.label) }
                        td { (score(Some(class.precision))) }
                        td { (score(Some(class.recall))) }
                        td { strong { (score(Some(class.f1))) } }
                        td { (class.support) }
                        td { a href=(review_link(data, &format!("kind=fn&label={label}&split={split}"))) { (row_total - hits) } }
                        td { a href=(review_link(data, &format!("kind=fp&label={label}&split={split}"))) { (predicted - hits) } }
                    }
                }
            }
            tfoot { tr {
                td { "macro" } td {} td {} td { strong { (score(Some(metrics.macro_f1))) } } td { (metrics.count) }
                td colspan="2" { "accuracy " (score(Some(metrics.accuracy))) }
            } }
        }
    }
}

fn render(data: &FacetPage, user: &User) -> Markup {
    let bars: Vec<Bars<'_>> = data
        .labels
        .iter()
        .map(|label| Bars {
            label,
            train: data
                .train
                .as_ref()
                .and_then(|m| m.per_class.iter().find(|c| &c.label == label))
                .map(|c| c.f1),
            test: data
                .test
                .as_ref()
                .and_then(|m| m.per_class.iter().find(|c| &c.label == label))
                .map(|c| c.f1),
        })
        .collect();
    let train_name = if data.train_out_of_fold {
        "Train (out-of-fold)"
    } else {
        "Train"
    };
    let cell_link = |split: &'static str| {
        move |r: usize, c: usize| {
            review_link(
                data,
                &format!(
                    "kind=cell&label={}&predicted={}&split={split}",
                    url_encode(&data.labels[r]),
                    url_encode(&data.labels[c])
                ),
            )
        }
    };
    let body = html! {
        div.columns {
            section {
                h2 { "F1 per class" }
                p.legend { span.swatch.train {} (train_name) " " span.swatch.test {} "Test" }
                (f1_bars(&format!("F1 per class of {}", data.facet), &bars))
            }
            section {
                h2 { "Test confusion matrix" }
                p.muted { "Rows: the label; columns: the prediction. Click a cell to see its images." }
                @if let Some(test) = &data.test { (confusion(&data.labels, &test.confusion, cell_link("test"))) }
            }
        }
        @if let Some(test) = &data.test {
            h2 { "Test" }
            (metrics_table(data, test, "test"))
        }
        @if let Some(train) = &data.train {
            h2 { (train_name) }
            @if !data.train_out_of_fold {
                p.muted { "Scores on images the model trained on flatter it; train with " code { "--folds 5" } " for honest train numbers and mistag detection on the train split." }
            }
            (metrics_table(data, train, "train"))
            h3 { (train_name) " confusion matrix" }
            (confusion(&data.labels, &train.confusion, cell_link("train")))
        }
    };
    page(
        &format!("{} · run #{}", data.facet, data.run),
        user,
        &[
            ("Runs".into(), "/runs".into()),
            (format!("Run #{}", data.run), format!("/runs/{}", data.run)),
        ],
        body,
    )
}
