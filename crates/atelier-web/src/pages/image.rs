//! The image page (full picture, every facet's label with the run's prediction and scores,
//! the split, the label history with undo, the most similar dresses and "the same dress,
//! another LABEL" links, the dress box with its editor) and the image bytes and thumbnails, served only by catalogue id.

use std::path::PathBuf;

use atelier_catalog::{LabelEvent, PredictionRecord, Role, RunRecord, Split, Status};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use atelier_app::ErrorKind;
use atelier_app::boxes::ImageBoxes;
use atelier_app::runner::{FACETS_RUN, newest_completed};
use atelier_app::similar::{QueryPhoto, SimilarQuery};
use atelier_app::similarity::SIMILARITY_RUN;
use atelier_train::similarity_model::{CellAgreement, CropView};

use crate::app::{AppState, bytes_response};
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages;
use crate::thumbs;
use crate::views::layout::page;
use crate::views::{short_id, split_badge, timestamp};

#[derive(Deserialize)]
pub struct ImageParams {
    run: Option<i64>,
    /// With `swap_label`: the similar dresses whose current label of this facet is that label.
    swap_facet: Option<String>,
    swap_label: Option<String>,
    /// Show where each similar dress agrees with this one, cell by cell of the dress crops.
    #[serde(default)]
    explain: bool,
}

/// Similar dresses shown on an image page.
const SIMILAR_SHOWN: usize = 8;

/// The most similar dresses to the image, from the newest completed similarity run.
#[derive(Debug, Serialize)]
pub struct SimilarDresses {
    pub run: i64,
    /// `(facet, label)`: only dresses with that current label.
    pub swap: Option<(String, String)>,
    /// Photos the filter left to rank.
    pub candidates: usize,
    pub results: Vec<SimilarDress>,
    /// Asked for the cell-by-cell agreement, and why it is missing when it is.
    pub explained: bool,
    pub explain_problem: Option<String>,
}

/// One similar dress, without the server's file path.
#[derive(Debug, Serialize)]
pub struct SimilarDress {
    pub image_id: String,
    pub score: f32,
    pub labels: std::collections::BTreeMap<String, String>,
    /// With `explain`: the cosine of each cell of a 3x3 grid over the two dress crops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explain: Option<CellAgreement>,
}

/// The similar-dresses part of an image page: absent without a completed similarity run; a
/// reason instead of results when the run cannot answer for this image (e.g. it has no
/// embedding for it yet).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum SimilarSection {
    Found(SimilarDresses),
    Unavailable { run: i64, problem: String },
}

/// One facet of the image: its label (with the version a change must quote) and the run's view.
#[derive(Debug, Serialize)]
pub struct FacetRow {
    pub facet: String,
    pub labels: Vec<String>,
    pub label: Option<String>,
    pub version: i64,
    pub prediction: Option<PredictionRecordView>,
}

/// A prediction without the server's file path.
#[derive(Debug, Serialize)]
pub struct PredictionRecordView {
    pub predicted: String,
    pub confidence: f64,
    /// (label, probability) in the run's label order.
    pub scores: Vec<(String, f32)>,
    pub out_of_fold: bool,
    pub label_at_training: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImagePage {
    pub id: String,
    pub split: Split,
    pub status: Status,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub design: Option<String>,
    pub run: Option<i64>,
    pub facets: Vec<FacetRow>,
    pub history: Vec<LabelEvent>,
    pub similar: Option<SimilarSection>,
    /// The dress box, where the newest similarity run located it, and the box's changes.
    pub boxes: ImageBoxes,
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(image): Path<String>,
    Query(params): Query<ImageParams>,
) -> Result<Response, WebError> {
    let record = state
        .catalog
        .image(&image)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no image {image:?} in the catalogue")))?;
    let runs = state.catalog.runs().await?;
    // By default the newest completed facet run's predictions.
    let run = params
        .run
        .or_else(|| newest_completed(&runs, FACETS_RUN).map(|r| r.id));
    let predictions: Vec<PredictionRecord> = match run {
        Some(run) => state.catalog.image_predictions(&image, run).await?,
        None => Vec::new(),
    };
    let run_labels = match run {
        Some(run) => state.catalog.run_facets(run).await?,
        None => Vec::new(),
    };
    let orders = state.catalog.label_orders().await?;
    let swap = swap_of(&params, &orders)?;
    let facets = orders
        .into_iter()
        .map(|(facet, labels)| {
            let current = record.labels.iter().find(|l| l.facet == facet);
            let prediction = predictions.iter().find(|p| p.facet == facet).map(|p| {
                let order = run_labels
                    .iter()
                    .find(|r| r.facet == facet)
                    .map(|r| r.labels.clone())
                    .unwrap_or_default();
                PredictionRecordView {
                    predicted: p.predicted.clone(),
                    confidence: p.confidence,
                    scores: order.into_iter().zip(p.scores.iter().copied()).collect(),
                    out_of_fold: p.out_of_fold,
                    label_at_training: p.label.clone(),
                }
            });
            FacetRow {
                facet,
                labels,
                label: current.and_then(|l| l.label.clone()),
                version: current.map_or(0, |l| l.version),
                prediction,
            }
        })
        .collect();
    let mut history = state.catalog.label_history(&image).await?;
    history.reverse();
    // The similar dresses and the located box come from the newest completed similarity run.
    let similarity_run = newest_completed(&runs, SIMILARITY_RUN);
    let similar = match similarity_run {
        Some(run) => Some(similar_dresses(&state, &image, run, swap, params.explain).await?),
        None => None,
    };
    let similarity_run = similarity_run.map(|r| r.id);
    let boxes = atelier_app::boxes::image_boxes(&state.catalog, &record, similarity_run).await?;
    let data = ImagePage {
        boxes,
        id: record.id,
        split: record.split,
        status: record.status,
        width: record.width,
        height: record.height,
        design: record.design,
        run,
        facets,
        history,
        similar,
    };
    Ok(respond(format, &data, |data| render(data, &user)))
}

/// The swap the query asks for, checked against the catalogue's facets and labels.
fn swap_of(
    params: &ImageParams,
    orders: &[(String, Vec<String>)],
) -> Result<Option<(String, String)>, WebError> {
    match (&params.swap_facet, &params.swap_label) {
        (None, None) => Ok(None),
        (Some(facet), Some(label)) => {
            let Some((_, labels)) = orders.iter().find(|(f, _)| f == facet) else {
                return Err(WebError::BadRequest(format!(
                    "swap_facet: the catalogue has no facet {facet:?}"
                )));
            };
            if !labels.contains(label) {
                return Err(WebError::BadRequest(format!(
                    "swap_label: {label:?} is not a label of {facet} (its labels: {})",
                    labels.join(", ")
                )));
            }
            Ok(Some((facet.clone(), label.clone())))
        }
        _ => Err(WebError::BadRequest(
            "swap_facet and swap_label go together: give both or neither".into(),
        )),
    }
}

/// The most similar dresses to `image` by similarity run `run` (with `swap`, among those with
/// that label; with `explain`, where each agrees with it cell by cell), or why the run cannot
/// say. A run that cannot explain (no saved model, say) still lists its dresses.
async fn similar_dresses(
    state: &AppState,
    image: &str,
    record: &RunRecord,
    swap: Option<(String, String)>,
    explain: bool,
) -> Result<SimilarSection, WebError> {
    let run = record.id;
    let mut query = SimilarQuery {
        run: Some(run),
        photo: QueryPhoto::Image(image.to_string()),
        k: SIMILAR_SHOWN,
        filters: Vec::new(),
        swap: swap.clone(),
        off_the_shelf: false,
        explain,
    };
    let mut answer = state
        .searcher
        .similar_in(&state.catalog, record, &query)
        .await;
    let mut explain_problem = None;
    if let Err(error) = &answer
        && explain
        && error.kind() != ErrorKind::Internal
    {
        explain_problem = Some(error.to_string());
        query.explain = false;
        answer = state
            .searcher
            .similar_in(&state.catalog, record, &query)
            .await;
    }
    Ok(match answer {
        Ok(answer) => SimilarSection::Found(SimilarDresses {
            run: answer.run,
            swap,
            candidates: answer.candidates,
            results: answer
                .results
                .into_iter()
                .map(|r| SimilarDress {
                    image_id: r.image_id,
                    score: r.score,
                    labels: r.labels,
                    explain: r.explain,
                })
                .collect(),
            explained: explain,
            explain_problem,
        }),
        Err(error) if error.kind() == ErrorKind::Internal => return Err(error.into()),
        Err(error) => SimilarSection::Unavailable {
            run,
            problem: error.to_string(),
        },
    })
}

fn render(data: &ImagePage, user: &User) -> Markup {
    let can_edit = user.role >= Role::Reviewer && data.status == Status::Active;
    let body = html! {
        div.image-page {
            figure {
                (pages::boxes::figure(&data.id, data.width.zip(data.height), &data.boxes, can_edit, &user.csrf_token))
                figcaption {
                    (split_badge(data.split.as_str())) " "
                    @if let (Some(w), Some(h)) = (data.width, data.height) { (w) "×" (h) " px · " }
                    @if let Some(design) = &data.design { "design " (design) " · " }
                    span.mono { (data.id) }
                    @if data.status != Status::Active { " · " strong.error { (data.status.as_str()) } }
                }
                @if let Some(section) = &data.similar { (similar_section(data, section)) }
            }
            section {
                h2 { "Labels" @if let Some(run) = data.run { span.muted { " and run #" (run) "'s predictions" } } }
                @for facet in &data.facets {
                    article.card.facet-row tabindex="0" data-image=(data.id) data-facet=(facet.facet)
                        data-version=(facet.version) data-run=(data.run.map_or(String::new(), |r| r.to_string()))
                        data-label=(facet.label.as_deref().unwrap_or("")) data-reason="image page" {
                        h3 { (facet.facet) ": " strong.label-value { (facet.label.as_deref().unwrap_or("(none)")) } }
                        @if let Some(prediction) = &facet.prediction {
                            p.model {
                                "predicted " strong { (prediction.predicted) } " · " (format!("{:.2}", prediction.confidence))
                                @if prediction.out_of_fold { span.muted { " (out-of-fold)" } }
                            }
                            div.scores {
                                @for (label, p) in &prediction.scores {
                                    div.score-row {
                                        span.score-label { (label) }
                                        svg.score-bar viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true" {
                                            rect width=(format!("{:.1}", p * 100.0)) height="1" {}
                                        }
                                        span.score-value { (format!("{p:.2}")) }
                                    }
                                }
                            }
                        }
                        @if can_edit {
                            div.labels role="group" aria-label=(format!("set the {} label", facet.facet)) {
                                @for (i, label) in facet.labels.iter().enumerate() {
                                    @let is_current = facet.label.as_deref() == Some(label.as_str());
                                    @let is_suggested = facet.prediction.as_ref().is_some_and(|p| &p.predicted == label);
                                    button.pick.current[is_current].suggested[is_suggested] type="button" data-label=(label) {
                                        @if i < 9 { kbd { (i + 1) } } (label)
                                    }
                                }
                            }
                            noscript {
                                form method="post" action=(format!("/images/{}/labels", data.id)) {
                                    input type="hidden" name="csrf" value=(user.csrf_token);
                                    input type="hidden" name="facet" value=(facet.facet);
                                    input type="hidden" name="expected_version" value=(facet.version);
                                    select name="label" { @for label in &facet.labels { option value=(label) selected[facet.label.as_deref() == Some(label.as_str())] { (label) } } }
                                    button type="submit" { "Save" }
                                }
                            }
                        }
                    }
                }
                (pages::boxes::history(&data.boxes))
                h2 { "History" }
                @if data.history.is_empty() { p.empty { "No label changes yet." } }
                @else {
                    table.history {
                        thead { tr { th { "When" } th { "Who" } th { "Facet" } th { "Change" } th { "Why" } th {} } }
                        tbody {
                            @for (i, event) in data.history.iter().enumerate() {
                                // Only a facet's latest change can be undone: undoing an older
                                // one would overwrite the changes made after it.
                                @let latest = data.history[..i].iter().all(|e| e.facet != event.facet);
                                tr {
                                    td { (timestamp(event.at)) }
                                    td { (event.actor) span.muted { " (" (event.source) ")" } }
                                    td { (event.facet) }
                                    td { (event.old_label.as_deref().unwrap_or("(none)")) " → " strong { (event.new_label.as_deref().unwrap_or("(none)")) } }
                                    td { (event.reason.as_deref().unwrap_or("")) @if let Some(run) = event.run_id { " " a href=(format!("/runs/{run}")) { "run #" (run) } } }
                                    td { @if can_edit && latest && event.source == "review" { button.undo-event type="button" data-event=(event.id) { "Undo" } } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &format!("Image {}", short_id(&data.id)),
        user,
        &[("Runs".into(), "/runs".into())],
        body,
    )
}

/// The row of similar dresses and, per facet, a link to "the same dress, another LABEL".
fn similar_section(data: &ImagePage, section: &SimilarSection) -> Markup {
    let base = format!("/images/{}", data.id);
    html! {
        section.similar id="similar" {
            @match section {
                SimilarSection::Unavailable { run, problem } => {
                    h2 { "Similar dresses" span.muted { " · similarity run #" (run) } }
                    p.empty { (problem) }
                }
                SimilarSection::Found(found) => {
                    h2 {
                        @if let Some((facet, label)) = &found.swap {
                            "The same dress, " (facet) " " (label)
                        } @else { "Similar dresses" }
                        span.muted { " · similarity run #" (found.run) }
                    }
                    @if found.swap.is_some() { p { a href=(format!("{base}#similar")) { "← all similar dresses" } } }
                    p.explain-toggle {
                        @if found.explained {
                            a href=(explain_link(&base, found.swap.as_ref(), false)) { "hide the heat maps" }
                            @if let Some(problem) = &found.explain_problem { " · " span.error { "cannot explain: " (problem) } }
                            @else { span.muted { " · under each dress, this photo's dress crop (left) and that dress's (right), each cell of a 3×3 grid shaded by how much the two crops agree there (cosine, from below 0.6, lightest, to 0.9 and above, darkest; ↔ the mirrored photo agreed better and is shown mirrored; hover for the numbers)" } }
                        } @else {
                            a href=(explain_link(&base, found.swap.as_ref(), true)) { "explain the scores" }
                        }
                    }
                    @if found.results.is_empty() { p.empty { "No other active photo matches." } }
                    div.similar-grid {
                        @for dress in &found.results {
                            a.similar-card href=(format!("/images/{}#similar", dress.image_id)) title=(labels_line(&dress.labels)) {
                                img src=(format!("/images/{}/thumb", dress.image_id)) alt=(format!("image {}", short_id(&dress.image_id))) loading="lazy";
                                span.score { (format!("{:.3}", dress.score)) }
                                @if let Some(agreement) = &dress.explain { (heat_map(&data.id, &dress.image_id, agreement)) }
                            }
                        }
                    }
                    div.swaps {
                        @for facet in &data.facets {
                            p.swap-row {
                                span.swap-facet { "same dress, another " (facet.facet) ":" }
                                @for label in facet.labels.iter().filter(|l| facet.label.as_deref() != Some(l.as_str())) {
                                    @let active = found.swap.as_ref().is_some_and(|(f, l)| f == &facet.facet && l == label);
                                    a.chip.active[active] href=(swap_link(&base, &facet.facet, label)) { (label) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn labels_line(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(facet, label)| format!("{facet}: {label}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The image page with or without the heat maps, keeping the swap.
fn explain_link(base: &str, swap: Option<&(String, String)>, explain: bool) -> String {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    if let Some((facet, label)) = swap {
        pairs.push(("swap_facet", facet));
        pairs.push(("swap_label", label));
    }
    if explain {
        pairs.push(("explain", "true"));
    }
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{base}?{query}#similar")
}

/// A 3x3 grid of the cells' agreement, darker where the two crops agree more (classes, as
/// the page's policy allows no inline style).
fn heat_map(query: &str, other: &str, agreement: &CellAgreement) -> Markup {
    // Cells of similar dresses mostly agree above 0.5: five shades from below 0.6 to 0.9+.
    let level = |v: f32| ((v - 0.5) * 10.0).clamp(0.0, 4.0) as u8;
    let numbers: Vec<String> = agreement.cells.iter().map(|v| format!("{v:.2}")).collect();
    let title = format!(
        "cells (row by row): {}; mean {:.2}{}",
        numbers.join(" "),
        agreement.mean,
        if agreement.flipped { "; mirrored" } else { "" }
    );
    let shades: Vec<u8> = agreement.cells.iter().map(|v| level(*v)).collect();
    html! {
        span.heat title=(title) {
            @match (&agreement.query_crop, &agreement.crop) {
                (Some(mine), Some(theirs)) => {
                    (crop_cells(query, mine, false, &shades))
                    (crop_cells(other, theirs, agreement.flipped, &shades))
                }
                _ => { span.heat-cells { @for shade in &shades { i class=(format!("heat-{shade}")) {} } } }
            }
            @if agreement.flipped { b.mirrored { "↔" } }
        }
    }
}

/// A photo's dress square (mirrored when `mirrored`) with the 3x3 grid's shades over it.
fn crop_cells(image: &str, view: &CropView, mirrored: bool, shades: &[u8]) -> Markup {
    let [x0, y0, side] = view.square;
    let [width, height] = view.size;
    let cell = side as f64 / 3.0;
    // The thumbnail keeps the photo's proportions, so it stands in for it at full size.
    let href = format!("/images/{image}/thumb");
    html! {
        svg.heat-crop viewBox=(format!("{x0} {y0} {side} {side}")) aria-hidden="true" {
            @if mirrored {
                g transform=(format!("translate({width} 0) scale(-1 1)")) {
                    image href=(href) width=(width) height=(height) {}
                }
            } @else {
                image href=(href) width=(width) height=(height) {}
            }
            @for (i, shade) in shades.iter().enumerate() {
                rect class=(format!("heat-{shade}")) x=(x0 as f64 + (i % 3) as f64 * cell)
                    y=(y0 as f64 + (i / 3) as f64 * cell) width=(cell) height=(cell) {}
            }
        }
    }
}

/// The image page asking for the dresses like it whose `facet` is `label`.
fn swap_link(base: &str, facet: &str, label: &str) -> String {
    let query = serde_urlencoded::to_string([("swap_facet", facet), ("swap_label", label)])
        .unwrap_or_default();
    format!("{base}?{query}#similar")
}

/// Largest original file served (a catalogue image is far smaller; anything bigger is no
/// photo the app should stream).
const MAX_SERVED_BYTES: u64 = 64 << 20;

/// The bytes of catalogue image `image` when they may be shown: the image is active and was
/// decoded by `atelier check` (it has a size), its file still holds exactly the bytes that were
/// imported (their SHA-256 is the image's id) and they are an image. Anything else is a 404:
/// the app never serves a file just because a manifest named it.
pub(crate) async fn servable_bytes(state: &AppState, image: &str) -> Result<Vec<u8>, WebError> {
    let path = servable_path(state, image).await?;
    let not_served =
        |why: String| WebError::NotFound(format!("image {image} is not served: {why}"));
    let metadata = tokio::fs::metadata(&path)
        .await
        .map_err(|e| not_served(format!("its file cannot be read ({e})")))?;
    if !metadata.is_file() || metadata.len() > MAX_SERVED_BYTES {
        return Err(not_served("its path no longer holds an image file".into()));
    }
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| not_served(format!("its file cannot be read ({e})")))?;
    if hex::encode(sha2::Sha256::digest(&bytes)) != image {
        return Err(not_served(
            "its file changed since it was imported; import the source again".into(),
        ));
    }
    if !thumbs::content_type(&bytes).starts_with("image/") {
        return Err(not_served("its file is not an image".into()));
    }
    Ok(bytes)
}

/// A local file of an image that may be shown (active and decoded; an image in object storage
/// is fetched into the image cache), else a 404 that says why.
async fn servable_path(state: &AppState, image: &str) -> Result<PathBuf, WebError> {
    let uri = servable_uri(state, image).await?;
    let resolved = atelier_app::images::resolver()
        .resolve(&[(uri.as_str(), image)])
        .await?;
    match resolved.into_iter().next() {
        Some(Ok(path)) => Ok(path),
        Some(Err(error)) => Err(WebError::NotFound(format!(
            "image {image} is not served: {error}"
        ))),
        None => Ok(PathBuf::from(uri)),
    }
}

/// The URI of an image that may be shown (active and decoded), else a 404 that says why.
async fn servable_uri(state: &AppState, image: &str) -> Result<String, WebError> {
    let record = state
        .catalog
        .image(image)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no image {image:?} in the catalogue")))?;
    if record.status != Status::Active {
        return Err(WebError::NotFound(format!(
            "image {image} is not served: it is {}",
            record.status.as_str()
        )));
    }
    if record.width.is_none() {
        return Err(WebError::NotFound(format!(
            "image {image} is not served until `atelier check` has decoded it"
        )));
    }
    Ok(record.uri)
}

/// The original file of a catalogue image.
pub async fn file(
    State(state): State<AppState>,
    _user: User,
    Path(image): Path<String>,
) -> Result<Response, WebError> {
    let bytes = servable_bytes(&state, &image).await?;
    Ok(bytes_response(thumbs::content_type(&bytes), bytes))
}

/// A JPEG thumbnail of a catalogue image (made once, then cached under the image's id, which
/// is the hash of its bytes).
pub async fn thumbnail(
    State(state): State<AppState>,
    _user: User,
    Path(image): Path<String>,
) -> Result<Response, WebError> {
    servable_uri(&state, &image).await?;
    let cache = state.config.thumbnail_cache.clone();
    let bytes = match thumbs::cached(&cache, &image) {
        Some(bytes) => bytes,
        None => {
            let original = servable_bytes(&state, &image).await?;
            tokio::task::spawn_blocking(move || thumbs::thumbnail(&cache, &image, &original))
                .await
                .map_err(|e| WebError::Internal(format!("thumbnail thread failed: {e}")))??
        }
    };
    Ok(bytes_response("image/jpeg", bytes))
}
