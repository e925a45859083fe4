//! The suspected-mistag queue of a run (confident learning on out-of-sample probabilities,
//! see `atelier_train::mistags`), paged, with the suggested label one key away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use atelier_app::mistags::{MistagQueue, mistag_queue};
use atelier_catalog::LABELS_COUNTER;
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

const PER_PAGE: usize = 48;

/// Queues are computed from every prediction of a run, so they are kept until a label changes
/// (any retag bumps the catalogue's labels counter, in whichever app instance or process it
/// happens) rather than recomputed for every page.
/// (run, facet or all) -> (labels counter it was computed at, the queue).
type Queues = HashMap<(i64, Option<String>), (i64, Arc<MistagQueue>)>;

#[derive(Default)]
pub struct QueueCache {
    queues: Mutex<Queues>,
}

impl QueueCache {
    async fn get(
        &self,
        state: &AppState,
        run: i64,
        facet: Option<&str>,
    ) -> Result<Arc<MistagQueue>, WebError> {
        let [generation] = state.catalog.change_counters([LABELS_COUNTER]).await?;
        let key = (run, facet.map(str::to_string));
        if let Some((cached, queue)) = self.lock().get(&key)
            && *cached == generation
        {
            return Ok(queue.clone());
        }
        let queue = Arc::new(mistag_queue(&state.catalog, run, facet).await?);
        self.lock().insert(key, (generation, queue.clone()));
        Ok(queue)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Deserialize)]
pub struct MistagParams {
    facet: Option<String>,
    page: Option<usize>,
}

#[derive(Serialize)]
pub struct MistagPage {
    pub run: i64,
    pub facet: Option<String>,
    pub facets: Vec<String>,
    /// Each facet's labels in the catalogue's order (the digit keys follow it).
    pub labels: HashMap<String, Vec<String>>,
    pub page: usize,
    pub per_page: usize,
    pub total: usize,
    #[serde(flatten)]
    pub queue: MistagQueue,
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(run): Path<i64>,
    Query(params): Query<MistagParams>,
) -> Result<Response, WebError> {
    let facet = params.facet.filter(|f| !f.is_empty());
    let queue = state.mistags.get(&state, run, facet.as_deref()).await?;
    let facets: Vec<String> = state
        .catalog
        .run_facets(run)
        .await?
        .into_iter()
        .map(|f| f.facet)
        .collect();
    let labels: HashMap<String, Vec<String>> = state
        .catalog
        .facet_label_orders(&facets)
        .await?
        .into_iter()
        .collect();
    let page = params.page.unwrap_or(1).max(1);
    let total = queue.items.len();
    let start = ((page - 1) * PER_PAGE).min(total);
    let end = (start + PER_PAGE).min(total);
    let data = MistagPage {
        run,
        facet,
        facets,
        labels,
        page,
        per_page: PER_PAGE,
        total,
        queue: MistagQueue {
            run: queue.run,
            items: queue.items[start..end].to_vec(),
            train_images_included: queue.train_images_included,
            estimates: queue.estimates.clone(),
            precision_at: queue.precision_at.clone(),
            known_flips: queue.known_flips,
            recall: queue.recall,
        },
    };
    Ok(respond(format, &data, |data| render(data, &user)))
}

fn render(data: &MistagPage, user: &User) -> Markup {
    let facet_query = data
        .facet
        .as_deref()
        .map_or(String::new(), |f| format!("facet={}&", url_encode(f)));
    let no_labels = Vec::new();
    let body = html! {
        p.muted {
            "Images whose label is likely wrong (confident learning: per facet, as many images as the confident joint estimates are mislabelled between each pair of labels), the likeliest first: lowest calibrated probability of the given label. "
            @if data.queue.train_images_included {
                "Train images are scored by models that never saw them (out-of-fold)."
            } @else {
                strong { "Only test images are listed: " } "this run has no out-of-fold scores for its train images; train with " code { "--folds 5" } " (and retrain) to review them too."
            }
        }
        @if !data.queue.estimates.is_empty() {
            p.estimates {
                "Estimated wrong labels (of the scored images): "
                @for (i, estimate) in data.queue.estimates.iter().enumerate() {
                    @if i > 0 { " · " }
                    (estimate.facet) " " strong { (estimate.estimated_wrong) } span.muted { " of " (estimate.rows) ", " (estimate.suspects) " queued" }
                }
            }
        }
        @if !data.queue.precision_at.is_empty() {
            p.truth {
                "Against the known flips of this synthetic catalogue"
                @if let Some(flips) = data.queue.known_flips { " (" (flips) " flipped labels among the scored ones)" }
                ": "
                @for (k, precision) in &data.queue.precision_at { "precision@" (k) " = " strong { (format!("{precision:.2}")) } " · " }
                @if let Some(recall) = data.queue.recall { "recall = " strong { (format!("{recall:.2}")) } }
            }
        }
        nav.filters {
            "Facet: "
            @if data.facet.is_none() { strong { "all" } } @else { a href=(format!("/runs/{}/mistags", data.run)) { "all" } }
            @for facet in &data.facets {
                " "
                @if data.facet.as_deref() == Some(facet.as_str()) { strong { (facet) } }
                @else { a href=(format!("/runs/{}/mistags?facet={}", data.run, url_encode(facet))) { (facet) } }
            }
        }
        @if data.queue.items.is_empty() {
            p.empty { "No suspected mistags." }
        } @else {
            @if let Some(facet) = &data.facet { (toolbar(data.labels.get(facet).unwrap_or(&no_labels))) }
            @else { (toolbar(&[])) }
            div.grid {
                @for item in &data.queue.items {
                    (card(&Card {
                        image: &item.image_id,
                        facet: &item.facet,
                        split: item.split.as_str(),
                        current_label: Some(&item.given),
                        version: item.version,
                        run: data.run,
                        model_line: html! {
                            (item.facet) ": suggests " strong { (item.suggested) } " (" (format!("{:.2}", item.suggested_probability)) ") over "
                            (item.given) " (" (format!("{:.2}", item.given_probability)) ")"
                            @if let Some(truth) = &item.true_label {
                                br; span.muted { "known truth: " (truth) }
                            }
                        },
                        suggested: Some(&item.suggested),
                        reason: &format!("suspected mistag, run {}", data.run),
                    }, data.labels.get(&item.facet).unwrap_or(&no_labels)))
                }
            }
            (pager(data.page as u64, data.per_page as u64, data.total as u64, |p| format!("/runs/{}/mistags?{facet_query}page={p}", data.run)))
        }
    };
    page(
        &format!("Suspected mistags · run #{}", data.run),
        user,
        &[
            ("Runs".into(), "/runs".into()),
            (format!("Run #{}", data.run), format!("/runs/{}", data.run)),
        ],
        body,
    )
}
