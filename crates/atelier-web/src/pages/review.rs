//! False negatives, false positives and confusion-matrix cells of one facet in one run, as a
//! paged grid sorted by the model's confidence, where each image can be retagged.

use atelier_catalog::{ReviewFilter, ReviewPage, ReviewQuery, Split};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::views::cards::{Card, card, pager, toolbar};
use crate::views::layout::page;
use crate::views::url_encode;

pub const PER_PAGE: u64 = 48;

#[derive(Deserialize)]
pub struct ReviewParams {
    /// fn, fp or cell.
    kind: String,
    label: String,
    predicted: Option<String>,
    /// train, test or all (default).
    split: Option<String>,
    page: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ReviewData {
    pub run: i64,
    pub facet: String,
    /// The facet's labels in the catalogue's order (the digit keys follow it).
    pub labels: Vec<String>,
    pub filter: ReviewFilter,
    pub split: Option<Split>,
    pub page: u64,
    pub per_page: u64,
    #[serde(flatten)]
    pub results: ReviewPage,
}

pub fn parse_split(split: Option<&str>) -> Result<Option<Split>, WebError> {
    match split {
        None | Some("") | Some("all") => Ok(None),
        Some("train") => Ok(Some(Split::Train)),
        Some("test") => Ok(Some(Split::Test)),
        Some(other) => Err(WebError::BadRequest(format!(
            "split {other:?}: choose train, test or all"
        ))),
    }
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path((run, facet)): Path<(i64, String)>,
    Query(params): Query<ReviewParams>,
) -> Result<Response, WebError> {
    let filter = match params.kind.as_str() {
        "fn" => ReviewFilter::FalseNegatives {
            label: params.label.clone(),
        },
        "fp" => ReviewFilter::FalsePositives {
            label: params.label.clone(),
        },
        "cell" => ReviewFilter::Cell {
            label: params.label.clone(),
            predicted: params
                .predicted
                .clone()
                .ok_or_else(|| WebError::BadRequest("kind=cell needs predicted=LABEL".into()))?,
        },
        other => {
            return Err(WebError::BadRequest(format!(
                "kind {other:?}: choose fn (false negatives), fp (false positives) or cell"
            )));
        }
    };
    let split = parse_split(params.split.as_deref())?;
    let page = params.page.unwrap_or(1).max(1);
    let labels = state
        .catalog
        .facet_label_orders(std::slice::from_ref(&facet))
        .await?
        .pop()
        .map(|(_, labels)| labels)
        .unwrap_or_default();
    let results = state
        .catalog
        .review_page(&ReviewQuery {
            run,
            facet: facet.clone(),
            filter: filter.clone(),
            split,
            offset: (page - 1) * PER_PAGE,
            limit: PER_PAGE,
        })
        .await?;
    let data = ReviewData {
        run,
        facet,
        labels,
        filter,
        split,
        page,
        per_page: PER_PAGE,
        results,
    };
    Ok(respond(format, &data, |data| render(data, &user)))
}

fn title(data: &ReviewData) -> String {
    match &data.filter {
        ReviewFilter::FalseNegatives { label } => format!("False negatives of {label}"),
        ReviewFilter::FalsePositives { label } => format!("False positives of {label}"),
        ReviewFilter::Cell { label, predicted } if label == predicted => {
            format!("{label}, predicted correctly")
        }
        ReviewFilter::Cell { label, predicted } => {
            format!("Labelled {label}, predicted {predicted}")
        }
    }
}

fn explanation(filter: &ReviewFilter) -> String {
    match filter {
        ReviewFilter::FalseNegatives { label } => format!(
            "Images labelled {label} that the model predicted as something else, most confident first: the top ones are often mislabelled."
        ),
        ReviewFilter::FalsePositives { label } => format!(
            "Images the model predicted as {label} although they are labelled otherwise, most confident first."
        ),
        ReviewFilter::Cell { .. } => {
            "Images of one confusion-matrix cell, most confident prediction first.".to_string()
        }
    }
}

fn render(data: &ReviewData, user: &User) -> Markup {
    let (kind, label, predicted) = match &data.filter {
        ReviewFilter::FalseNegatives { label } => ("fn", label.as_str(), None),
        ReviewFilter::FalsePositives { label } => ("fp", label.as_str(), None),
        ReviewFilter::Cell { label, predicted } => {
            ("cell", label.as_str(), Some(predicted.as_str()))
        }
    };
    let split_value = data.split.map_or("all", |s| s.as_str());
    let base = format!(
        "/runs/{}/facets/{}/review?kind={kind}&label={}{}",
        data.run,
        url_encode(&data.facet),
        url_encode(label),
        predicted.map_or(String::new(), |p| format!("&predicted={}", url_encode(p)))
    );
    let body = html! {
        p.muted { (explanation(&data.filter)) " Labels shown are the current ones; the grid lists what the run saw when it trained." }
        nav.filters {
            "Split: "
            @for (value, name) in [("all", "all"), ("train", "train"), ("test", "test")] {
                @if value == split_value { strong { (name) } } @else { a href=(format!("{base}&split={value}")) { (name) } }
                " "
            }
            @if kind != "cell" {
                " · "
                @if kind == "fn" { a href=(format!("/runs/{}/facets/{}/review?kind=fp&label={}&split={split_value}", data.run, url_encode(&data.facet), url_encode(label))) { "false positives of " (label) } }
                @else { a href=(format!("/runs/{}/facets/{}/review?kind=fn&label={}&split={split_value}", data.run, url_encode(&data.facet), url_encode(label))) { "false negatives of " (label) } }
            }
        }
        @if data.results.items.is_empty() {
            p.empty { "No images here." }
        } @else {
            (toolbar(&data.labels))
            div.grid {
                @for item in &data.results.items {
                    (card(&Card {
                        image: &item.image_id,
                        facet: &data.facet,
                        split: item.split.as_str(),
                        current_label: item.current_label.as_deref(),
                        version: item.version,
                        run: data.run,
                        model_line: html! {
                            "predicted " strong { (item.predicted) } " · " (format!("{:.2}", item.confidence))
                            @if item.label_at_training != item.current_label {
                                br; span.muted { "was " (item.label_at_training.as_deref().unwrap_or("(none)")) " when trained" }
                            }
                        },
                        suggested: Some(&item.predicted),
                        reason: &format!("review of run {}", data.run),
                    }, &data.labels))
                }
            }
            (pager(data.page, data.per_page, data.results.total, |p| format!("{base}&split={split_value}&page={p}")))
        }
    };
    page(
        &title(data),
        user,
        &[
            ("Runs".into(), "/runs".into()),
            (format!("Run #{}", data.run), format!("/runs/{}", data.run)),
            (
                data.facet.clone(),
                format!("/runs/{}/facets/{}", data.run, url_encode(&data.facet)),
            ),
        ],
        body,
    )
}
