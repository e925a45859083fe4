//! Search by photo (`/search`): upload a photo (a multipart form, at most
//! [`crate::AppConfig::max_upload_bytes`], decoded by the tolerant decoder and never added to
//! the catalogue) or give a catalogue image id, filter by facet labels (`with`/`without`
//! FACET:LABEL), and page through the most similar dresses of the newest similarity run.
//!
//! An upload's answer carries the photo's embedding (`vector`, hex of little-endian f32), and
//! its page links search with it (`GET /search?run=R&vector=...`), so paging never uploads
//! again and any app instance can answer.

use std::collections::BTreeMap;

use atelier_app::browse;
use atelier_app::similar::{
    LabelFilter, QueryPhoto, SimilarQuery, decode_upload, embed_photo, similarity_run,
};
use atelier_catalog::LabelCondition;
use axum::extract::multipart::MultipartError;
use axum::extract::{Multipart, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::catalogue::{condition, label_filters};
use crate::pages::image::SimilarDress;
use crate::views::cards::pager;
use crate::views::layout::page;
use crate::views::{short_id, thumbnail};

/// Results per page.
const PER_PAGE: u64 = 24;
/// Deepest page served (the search ranks `page * PER_PAGE` photos).
const MAX_PAGE: u64 = 40;

/// What a search asks for, in the parameters' own words.
#[derive(Debug, Default, Serialize)]
pub struct SearchParams {
    pub run: Option<i64>,
    /// A catalogue image to search like.
    pub id: Option<String>,
    /// An uploaded photo's embedding (hex of little-endian f32).
    pub vector: Option<String>,
    pub with: Vec<String>,
    pub without: Vec<String>,
    pub page: u64,
}

/// The search page: the form, and the answer once something was asked.
#[derive(Debug, Serialize)]
pub struct SearchPage {
    pub params: SearchParams,
    pub facets: BTreeMap<String, Vec<String>>,
    pub answer: Option<SearchAnswer>,
    /// Why an upload could not be searched (the page shows it above the form).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SearchAnswer {
    pub run: i64,
    /// What was searched like ("image ID" or "an uploaded photo").
    pub query: String,
    /// Photos the filters left.
    pub candidates: usize,
    pub page: u64,
    pub per_page: u64,
    pub results: Vec<SimilarDress>,
}

/// `GET /search`: the form, or the answer for an image id or an uploaded photo's vector.
pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let params = parse_query(raw.as_deref().unwrap_or(""))?;
    let photo = match (&params.id, &params.vector) {
        (Some(_), Some(_)) => {
            return Err(WebError::BadRequest(
                "give id (a catalogue image) or vector (an uploaded photo), not both".into(),
            ));
        }
        (Some(id), None) => Some(QueryPhoto::Image(id.clone())),
        (None, Some(hex)) => Some(QueryPhoto::Embedding(vector_from_hex(hex)?)),
        (None, None) => None,
    };
    answer_page(&state, &user, format, params, photo).await
}

/// `POST /search`: a multipart form with the photo (`photo`), the session's CSRF token
/// (`csrf`, or the header) and optional `with`/`without`/`run` fields.
pub async fn upload(
    State(state): State<AppState>,
    user: User,
    format: Format,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let (mut params, photo, csrf) = read_upload(multipart, state.config.max_upload_bytes).await?;
    user.check_csrf(&headers, csrf.as_deref())?;
    match embed_upload(&state, &mut params, photo).await {
        Ok(vector) => answer_page(&state, &user, format, params, Some(vector)).await,
        // In a browser, the form comes back with the reason above it.
        Err(error) if format == Format::Html && error.status().is_client_error() => {
            let status = error.status();
            let data = SearchPage {
                facets: browse::vocabulary(&state.catalog).await?,
                params,
                answer: None,
                problem: Some(error.to_string()),
            };
            let mut response = respond(format, &data, |data| render(data, &user));
            *response.status_mut() = status;
            Ok(response)
        }
        Err(error) => Err(error),
    }
}

/// The uploaded photo's embedding by the similarity run (`params.run`, or the newest), which
/// `params` then names for the page links.
async fn embed_upload(
    state: &AppState,
    params: &mut SearchParams,
    photo: Option<Vec<u8>>,
) -> Result<QueryPhoto, WebError> {
    let photo = photo.ok_or_else(|| {
        WebError::BadRequest("choose a photo to upload (the form field `photo`)".into())
    })?;
    let photo = decode_upload(photo).await?;
    let record = similarity_run(&state.catalog, params.run).await?;
    let embedded = embed_photo(&record, photo).await?;
    params.run = Some(record.id);
    params.vector = Some(vector_to_hex(&embedded.embedding));
    Ok(QueryPhoto::Embedding(embedded.embedding))
}

async fn answer_page(
    state: &AppState,
    user: &User,
    format: Format,
    params: SearchParams,
    photo: Option<QueryPhoto>,
) -> Result<Response, WebError> {
    let answer = match photo {
        Some(photo) => Some(search(state, &params, photo).await?),
        None => None,
    };
    let data = SearchPage {
        facets: browse::vocabulary(&state.catalog).await?,
        params,
        answer,
        problem: None,
    };
    Ok(respond(format, &data, |data| render(data, user)))
}

/// One page of the dresses most like `photo` that pass the filters.
async fn search(
    state: &AppState,
    params: &SearchParams,
    photo: QueryPhoto,
) -> Result<SearchAnswer, WebError> {
    let mut filters = Vec::new();
    for (values, key) in [(&params.with, "with"), (&params.without, "without")] {
        for value in values {
            let LabelCondition { facet, label, keep } = condition(key, value)?;
            filters.push(LabelFilter { facet, label, keep });
        }
    }
    let query = SimilarQuery {
        run: params.run,
        photo,
        k: (params.page * PER_PAGE) as usize,
        filters,
        swap: None,
        off_the_shelf: false,
        explain: false,
    };
    let answer = state.searcher.similar(&state.catalog, &query).await?;
    let skip = ((params.page - 1) * PER_PAGE) as usize;
    Ok(SearchAnswer {
        run: answer.run,
        query: answer.query,
        candidates: answer.candidates,
        page: params.page,
        per_page: PER_PAGE,
        results: answer
            .results
            .into_iter()
            .skip(skip)
            .map(|r| SimilarDress {
                image_id: r.image_id,
                score: r.score,
                labels: r.labels,
                explain: None,
            })
            .collect(),
    })
}

/// The query string's parameters; an unreadable value is a 400 naming the parameter.
fn parse_query(raw: &str) -> Result<SearchParams, WebError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| WebError::BadRequest(format!("the query string cannot be read: {e}")))?;
    let mut params = SearchParams {
        page: 1,
        ..SearchParams::default()
    };
    for (key, value) in pairs {
        set_param(&mut params, &key, value)?;
    }
    Ok(params)
}

/// Sets one parameter (from the query string or the upload form); empty values are ignored.
fn set_param(params: &mut SearchParams, key: &str, value: String) -> Result<(), WebError> {
    let value = value.trim().to_string();
    if value.is_empty() {
        return Ok(());
    }
    let number = |value: &str| {
        value
            .parse::<i64>()
            .map_err(|_| WebError::BadRequest(format!("{key}={value:?}: give a whole number")))
    };
    match key {
        "with" | "without" => {
            condition(key, &value)?;
            match key {
                "with" => params.with.push(value),
                _ => params.without.push(value),
            }
        }
        "run" => params.run = Some(number(&value)?),
        "id" => params.id = Some(value),
        "vector" => params.vector = Some(value),
        "page" => match number(&value)? {
            page @ 1.. if page as u64 <= MAX_PAGE => params.page = page as u64,
            _ => {
                return Err(WebError::BadRequest(format!(
                    "page={value}: give 1 to {MAX_PAGE}"
                )));
            }
        },
        other => {
            return Err(WebError::BadRequest(format!(
                "unknown parameter {other:?}: use id, vector, run, with, without or page"
            )));
        }
    }
    Ok(())
}

/// The upload form's fields: the parameters, the photo's bytes and the CSRF token.
async fn read_upload(
    mut multipart: Multipart,
    limit: usize,
) -> Result<(SearchParams, Option<Vec<u8>>, Option<String>), WebError> {
    let mut params = SearchParams {
        page: 1,
        ..SearchParams::default()
    };
    let (mut photo, mut csrf) = (None, None);
    let failed = |error: MultipartError| upload_error(error, limit);
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "photo" => {
                let bytes = field.bytes().await.map_err(failed)?;
                if !bytes.is_empty() {
                    photo = Some(bytes.to_vec());
                }
            }
            "csrf" => csrf = Some(field.text().await.map_err(failed)?),
            "with" | "without" | "run" => {
                let value = field.text().await.map_err(failed)?;
                set_param(&mut params, &name, value)?;
            }
            other => {
                return Err(WebError::BadRequest(format!(
                    "unknown form field {other:?}: send photo, with, without, run and csrf"
                )));
            }
        }
    }
    Ok((params, photo, csrf))
}

/// A form that could not be read: over the size limit (413, with the limit), or malformed.
fn upload_error(error: MultipartError, limit: usize) -> WebError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return WebError::TooLarge(format!(
            "the upload is larger than the {} MiB this app accepts; send a smaller photo",
            limit >> 20
        ));
    }
    WebError::BadRequest(format!("the upload form cannot be read: {error}"))
}

fn vector_to_hex(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    hex::encode(bytes)
}

fn vector_from_hex(text: &str) -> Result<Vec<f32>, WebError> {
    let bytes = hex::decode(text)
        .ok()
        .filter(|b| !b.is_empty() && b.len() % 4 == 0)
        .ok_or_else(|| {
            WebError::BadRequest(
                "vector: not an embedding from this app (hex of 4-byte numbers); upload the \
                 photo again"
                    .into(),
            )
        })?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The GET link of another page of this search.
fn page_link(params: &SearchParams, page: u64) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(run) = params.run {
        pairs.push(("run", run.to_string()));
    }
    if let Some(id) = &params.id {
        pairs.push(("id", id.clone()));
    }
    if let Some(vector) = &params.vector {
        pairs.push(("vector", vector.clone()));
    }
    pairs.extend(params.with.iter().map(|v| ("with", v.clone())));
    pairs.extend(params.without.iter().map(|v| ("without", v.clone())));
    pairs.push(("page", page.to_string()));
    format!(
        "/search?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

fn render(data: &SearchPage, user: &User) -> Markup {
    let params = &data.params;
    let body = html! {
        @if let Some(problem) = &data.problem { p.error.problem role="alert" { (problem) } }
        div.search-forms {
            form.filters.upload method="post" action="/search" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(user.csrf_token);
                @if let Some(run) = params.run { input type="hidden" name="run" value=(run); }
                label { "Photo " input type="file" name="photo" accept="image/*" required; }
                (label_filters(&data.facets, &params.with, &params.without))
                button type="submit" { "Search by photo" }
            }
            form.filters method="get" action="/search" {
                @if let Some(run) = params.run { input type="hidden" name="run" value=(run); }
                label { "Image id " input type="text" name="id" value=(params.id.as_deref().unwrap_or("")) size="20" placeholder="paste an image id"; }
                (label_filters(&data.facets, &params.with, &params.without))
                button type="submit" { "Search like this image" }
            }
        }
        @match &data.answer {
            None => p.muted { "Upload a photo (it is not added to the catalogue) or paste an image id; the filters keep only dresses with (or without) a label." },
            Some(answer) => (results(answer, params)),
        }
    };
    page("Search by photo", user, &[], body)
}

fn results(answer: &SearchAnswer, params: &SearchParams) -> Markup {
    let total = answer.candidates.min((MAX_PAGE * PER_PAGE) as usize) as u64;
    html! {
        h2 #results { "Dresses most like " (answer.query) }
        p.muted { "Similarity run #" (answer.run) " · " (answer.candidates) " photos pass the filters · score = cosine similarity" }
        @if answer.results.is_empty() {
            p.empty { "No dress passes these filters." }
        } @else {
            div.grid.similar-results {
                @for dress in &answer.results {
                    article.card.similar-card data-image=(dress.image_id) {
                        (thumbnail(&dress.image_id, None))
                        div.meta {
                            div { a.mono href=(format!("/images/{}", dress.image_id)) { (short_id(&dress.image_id)) } " · " strong.score { (format!("{:.3}", dress.score)) } }
                            div.labels-line {
                                @for (facet, label) in &dress.labels { span title=(facet) { (label) } " " }
                            }
                            a.similar-link href=(format!("/images/{}#similar", dress.image_id)) { "similar dresses →" }
                        }
                    }
                }
            }
        }
        (pager(answer.page, answer.per_page, total, |p| page_link(params, p)))
    }
}
