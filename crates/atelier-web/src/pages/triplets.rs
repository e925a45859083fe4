//! The triplet editor (`/triplets`): a reference dress and candidates from the newest
//! similarity run (its nearest photos by the trained and the off-the-shelf embeddings, the
//! reference chosen where the two disagree most); a reviewer picks the most similar and the
//! least similar (digit keys or the mouse) or skips. Stored triplets carry the user and the
//! time, the page lists the latest, and the next similarity run learns from them.

use atelier_app::triplet_editor::{self, TripletEditorConfig, TripletTask};
use atelier_catalog::{Role, TripletRecord, TripletSource};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::body;
use crate::views::layout::page;
use crate::views::{short_id, thumbnail, timestamp};

/// Review triplets listed under the editor.
const RECENT_SHOWN: usize = 10;

#[derive(Deserialize)]
pub struct TripletParams {
    /// Ask about this photo instead of the one the editor would pick.
    reference: Option<String>,
    /// Another round samples other photos (the "skip" link).
    round: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct TripletPage {
    pub round: u64,
    /// `None` when every photo with an embedding was a reference already.
    pub task: Option<TripletTask>,
    /// Triplets reviewers stored so far.
    pub labelled: usize,
    /// The latest of them, newest first.
    pub recent: Vec<TripletRecord>,
}

/// A reviewer's pick.
#[derive(Deserialize)]
struct TripletPick {
    reference: String,
    similar: String,
    dissimilar: String,
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Query(params): Query<TripletParams>,
) -> Result<Response, WebError> {
    let round = params.round.unwrap_or(0);
    let task = triplet_editor::next_task(
        &state.catalog,
        &state.searcher,
        &TripletEditorConfig::default(),
        params.reference.as_deref(),
        round,
    )
    .await?;
    let mut reviewed: Vec<TripletRecord> = state
        .catalog
        .triplets()
        .await?
        .into_iter()
        .filter(|t| t.source == TripletSource::Review)
        .collect();
    let labelled = reviewed.len();
    reviewed.reverse();
    reviewed.truncate(RECENT_SHOWN);
    let data = TripletPage {
        round,
        task,
        labelled,
        recent: reviewed,
    };
    Ok(respond(format, &data, |data| render(data, &user)))
}

/// Stores a pick (reviewers; a form or JSON with the CSRF token): the page goes on to the next
/// reference, the API answers with the triplet's id.
pub async fn add(
    State(state): State<AppState>,
    user: User,
    format: Format,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let pick: TripletPick = body::write(&user, Role::Reviewer, &headers, &body)?;
    let id = triplet_editor::label_triplet(
        &state.catalog,
        &pick.reference,
        &pick.similar,
        &pick.dissimilar,
        &user.name,
    )
    .await?;
    Ok(match format {
        Format::Json => axum::Json(serde_json::json!({ "id": id })).into_response(),
        Format::Html => Redirect::to("/triplets").into_response(),
    })
}

fn render(data: &TripletPage, user: &User) -> Markup {
    let body = html! {
        @match &data.task {
            None => p.empty { "Every photo with an embedding has been a reference already." },
            Some(task) => (editor(task, data.round, user)),
        }
        section.recent-triplets {
            h2 { "Latest triplets (" (data.labelled) " by reviewers)" }
            @if data.recent.is_empty() {
                p.empty { "None yet." }
            } @else {
                table {
                    thead { tr { th { "reference" } th { "most similar" } th { "least similar" } th { "by" } th { "when" } } }
                    tbody {
                        @for triplet in &data.recent {
                            tr.triplet-row {
                                td { (thumbnail(&triplet.reference, None)) }
                                td { (thumbnail(&triplet.similar, None)) }
                                td { (thumbnail(&triplet.dissimilar, None)) }
                                td { (triplet.actor.as_deref().unwrap_or("")) }
                                td { (timestamp(triplet.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Triplet editor", user, &[], body)
}

fn editor(task: &TripletTask, round: u64, user: &User) -> Markup {
    let can_label = user.role >= Role::Reviewer;
    let skip = format!("/triplets?round={}", round + 1);
    html! {
        p.muted {
            "Which of these dresses is most like the reference, and which least? "
            "The embeddings of run #" (task.run) " disagree on " (format!("{:.0}", task.disagreement * 100.0))
            " % of its nearest photos, so this answer teaches the next similarity run most."
        }
        form.triplet method="post" action="/triplets" {
            input type="hidden" name="csrf" value=(user.csrf_token);
            input type="hidden" name="reference" value=(task.reference);
            div.triplet-layout {
                figure.reference {
                    img src=(format!("/images/{}/thumb", task.reference)) alt="the reference dress" width="240" height="240";
                    figcaption {
                        a.mono href=(format!("/images/{}", task.reference)) { (short_id(&task.reference)) }
                        div.labels-line { @for (facet, label) in &task.reference_labels { span title=(facet) { (label) } " " } }
                    }
                }
                div.candidates {
                    @for (i, candidate) in task.candidates.iter().enumerate() {
                        article.candidate data-image=(candidate.image_id) data-key=(i + 1) {
                            (thumbnail(&candidate.image_id, None))
                            div.meta {
                                kbd { (i + 1) } " "
                                @if let Some(score) = candidate.trained_score { span title="trained embedding" { "trained " (format!("{score:.2}")) } " " }
                                @if let Some(score) = candidate.off_the_shelf_score { span title="off-the-shelf embedding" { "off-the-shelf " (format!("{score:.2}")) } }
                            }
                            div.labels-line { @for (facet, label) in &candidate.labels { span title=(facet) { (label) } " " } }
                            @if can_label {
                                div.choice {
                                    label { input type="radio" name="similar" value=(candidate.image_id) required; " most similar" }
                                    label { input type="radio" name="dissimilar" value=(candidate.image_id) required; " least similar" }
                                }
                            }
                        }
                    }
                }
            }
            @if can_label {
                p.keys {
                    kbd { "1" } "…" kbd { "9" } " first the most similar, then the least similar · "
                    kbd { "Enter" } " save · " kbd { "s" } " skip · " kbd { "Esc" } " clear"
                }
                button type="submit" { "Save triplet" }
                " "
            } @else {
                p.muted { "Reviewers label triplets; you can look." }
            }
            a.skip href=(skip) { "Skip" }
        }
    }
}
