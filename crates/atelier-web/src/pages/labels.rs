//! Retagging: one or many labels at once (all or nothing), and undo. Every change carries the
//! version the reviewer saw; if someone changed the label since, the answer is 409 with the
//! current label and version, and nothing is written.

use atelier_catalog::{LabelChange, LabelEdit, Role};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::pages::body::{self, loose};

/// Most labels one request may change.
const MAX_EDITS: usize = 1000;
/// Longest reason a change may give, in characters.
const MAX_REASON_CHARS: usize = 500;

/// One requested change, as a client sends it (the actor is the logged-in user).
#[derive(Debug, Deserialize)]
pub struct EditRequest {
    pub image: String,
    pub facet: String,
    /// `null` clears the label.
    pub label: Option<String>,
    #[serde(deserialize_with = "loose::i64")]
    pub expected_version: i64,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "loose::optional_i64")]
    pub run: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct EditsRequest {
    pub edits: Vec<EditRequest>,
}

#[derive(Debug, Serialize)]
pub struct EditsResponse {
    pub changes: Vec<LabelChange>,
}

async fn apply(
    state: &AppState,
    user: &User,
    edits: Vec<EditRequest>,
) -> Result<Vec<LabelChange>, WebError> {
    if edits.is_empty() {
        return Err(WebError::BadRequest(
            "no edits: send {\"edits\": [...]}".into(),
        ));
    }
    if edits.len() > MAX_EDITS {
        return Err(WebError::BadRequest(format!(
            "{} edits in one request; send at most {MAX_EDITS}",
            edits.len()
        )));
    }
    if let Some(long) = edits.iter().find_map(|e| {
        e.reason
            .as_deref()
            .filter(|r| r.chars().count() > MAX_REASON_CHARS)
    }) {
        return Err(WebError::BadRequest(format!(
            "a reason has {} characters; keep it to {MAX_REASON_CHARS}",
            long.chars().count()
        )));
    }
    let edits: Vec<LabelEdit> = edits
        .into_iter()
        .map(|e| LabelEdit {
            image: e.image,
            facet: e.facet,
            label: e.label.filter(|l| !l.is_empty()),
            expected_version: e.expected_version,
            actor: user.name.clone(),
            reason: e.reason.filter(|r| !r.trim().is_empty()),
            run_id: e.run,
        })
        .collect();
    Ok(state.catalog.set_labels(&edits).await?)
}

/// `POST /api/labels` with `{"edits": [...]}` and the `X-CSRF-Token` header.
pub async fn set(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<EditsResponse>, WebError> {
    let request: EditsRequest = body::write(&user, Role::Reviewer, &headers, &body)?;
    let changes = apply(&state, &user, request.edits).await?;
    Ok(Json(EditsResponse { changes }))
}

#[derive(Debug, Deserialize)]
pub struct UndoRequest {
    #[serde(deserialize_with = "loose::i64")]
    pub event: i64,
}

/// `POST /api/labels/undo` with `{"event": ID}`: restores the label the event replaced, as a
/// new event.
pub async fn undo(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<LabelChange>, WebError> {
    let request: UndoRequest = body::write(&user, Role::Reviewer, &headers, &body)?;
    let change = state
        .catalog
        .undo_label_event(request.event, &user.name)
        .await?;
    Ok(Json(change))
}

#[derive(Debug, Deserialize)]
pub struct FormEdit {
    facet: String,
    label: Option<String>,
    #[serde(deserialize_with = "loose::i64")]
    expected_version: i64,
}

/// The image page's form for browsers without script: one label, then back to the page.
pub async fn set_from_form(
    State(state): State<AppState>,
    user: User,
    Path(image): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form: FormEdit = body::write(&user, Role::Reviewer, &headers, &body)?;
    apply(
        &state,
        &user,
        vec![EditRequest {
            image: image.clone(),
            facet: form.facet,
            label: form.label,
            expected_version: form.expected_version,
            reason: Some("image page".into()),
            run: None,
        }],
    )
    .await?;
    Ok(Redirect::to(&format!("/images/{image}")).into_response())
}
