//! The catalogue browser (`/images`): every image as a thumbnail grid, filtered by current
//! labels (`with=FACET:LABEL`, `without=FACET:LABEL`, both repeatable), split, status
//! (quarantined images with their reasons), design and whether a reviewer changed a label;
//! paged; each card links to the image page and its similar dresses.

use std::collections::BTreeMap;

use atelier_app::browse::{self, BrowseQuery};
use atelier_catalog::{ImageFilter, LabelCondition, Split, Status};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::views::cards::pager;
use crate::views::layout::page;
use crate::views::{short_id, split_badge, thumbnail};

/// One image of the grid, without the server's file path.
#[derive(Debug, Serialize)]
pub struct CatalogueImage {
    pub id: String,
    pub split: Split,
    pub status: Status,
    pub quarantine_reason: Option<String>,
    pub design: Option<String>,
    pub reviewed: bool,
    pub labels: BTreeMap<String, String>,
}

/// The filter as asked, in the parameters' own words (for links and the form).
#[derive(Debug, Default, Serialize)]
pub struct CatalogueParams {
    pub with: Vec<String>,
    pub without: Vec<String>,
    pub split: Option<Split>,
    pub status: Option<Status>,
    pub design: Option<String>,
    pub reviewed: Option<bool>,
    pub per_page: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct CataloguePage {
    pub params: CatalogueParams,
    /// Every facet's labels, in order (the filter form offers them).
    pub facets: BTreeMap<String, Vec<String>>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
    pub pages: u64,
    pub images: Vec<CatalogueImage>,
}

pub async fn list(
    State(state): State<AppState>,
    user: User,
    format: Format,
    RawQuery(raw): RawQuery,
) -> Result<Response, WebError> {
    let (params, query) = parse(raw.as_deref().unwrap_or(""))?;
    let answer = browse::browse(&state.catalog, &query).await?;
    let data = CataloguePage {
        params,
        facets: browse::vocabulary(&state.catalog).await?,
        total: answer.total,
        page: answer.page,
        per_page: answer.per_page,
        pages: answer.pages,
        images: answer
            .images
            .into_iter()
            .map(|image| CatalogueImage {
                id: image.id,
                split: image.split,
                status: image.status,
                quarantine_reason: image.quarantine_reason,
                design: image.design,
                reviewed: image.reviewed,
                labels: image.labels,
            })
            .collect(),
    };
    Ok(respond(format, &data, |data| render(data, &user)))
}

/// The query string as parameters and the query they ask for; a value that cannot be read is a
/// 400 naming the parameter.
fn parse(raw: &str) -> Result<(CatalogueParams, BrowseQuery), WebError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| WebError::BadRequest(format!("the query string cannot be read: {e}")))?;
    let mut params = CatalogueParams::default();
    let mut query = BrowseQuery::default();
    for (key, value) in pairs {
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "with" | "without" => {
                let condition = condition(&key, &value)?;
                query.filter.labels.push(condition);
                match key.as_str() {
                    "with" => params.with.push(value),
                    _ => params.without.push(value),
                }
            }
            "split" => params.split = parse_split(&value)?,
            "status" => params.status = Some(parse_status(&value)?),
            "design" => params.design = Some(value),
            "reviewed" => params.reviewed = Some(parse_yes_no(&value)?),
            "page" => query.page = number(&key, &value)?,
            "per_page" => {
                query.per_page = number(&key, &value)?;
                params.per_page = Some(query.per_page);
            }
            other => {
                return Err(WebError::BadRequest(format!(
                    "unknown parameter {other:?}: use with, without, split, status, design, \
                     reviewed, page or per_page"
                )));
            }
        }
    }
    query.filter = ImageFilter {
        labels: query.filter.labels,
        split: params.split,
        status: params.status,
        design: params.design.clone(),
        reviewed: params.reviewed,
    };
    Ok((params, query))
}

/// `FACET:LABEL` of a `with` or `without` parameter.
pub(crate) fn condition(key: &str, value: &str) -> Result<LabelCondition, WebError> {
    match value.split_once(':') {
        Some((facet, label)) if !facet.is_empty() && !label.is_empty() => Ok(LabelCondition {
            facet: facet.to_string(),
            label: label.to_string(),
            keep: key == "with",
        }),
        _ => Err(WebError::BadRequest(format!(
            "{key}={value:?}: write FACET:LABEL, e.g. neckline:v-neck"
        ))),
    }
}

fn parse_split(value: &str) -> Result<Option<Split>, WebError> {
    match value {
        "all" => Ok(None),
        other => other.parse().map(Some).map_err(|_| {
            WebError::BadRequest(format!("split={other:?}: choose train, test or all"))
        }),
    }
}

fn parse_status(value: &str) -> Result<Status, WebError> {
    [Status::Active, Status::Quarantined, Status::Removed]
        .into_iter()
        .find(|s| s.as_str() == value)
        .ok_or_else(|| {
            WebError::BadRequest(format!(
                "status={value:?}: choose active, quarantined or removed"
            ))
        })
}

fn parse_yes_no(value: &str) -> Result<bool, WebError> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(WebError::BadRequest(format!(
            "reviewed={other:?}: choose yes or no"
        ))),
    }
}

fn number(key: &str, value: &str) -> Result<u64, WebError> {
    value
        .parse()
        .map_err(|_| WebError::BadRequest(format!("{key}={value:?}: give a whole number")))
}

/// The query string of `params` (and a page), for links.
fn query_string(params: &CatalogueParams, page: Option<u64>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    pairs.extend(params.with.iter().map(|v| ("with", v.clone())));
    pairs.extend(params.without.iter().map(|v| ("without", v.clone())));
    if let Some(split) = params.split {
        pairs.push(("split", split.as_str().to_string()));
    }
    if let Some(status) = params.status {
        pairs.push(("status", status.as_str().to_string()));
    }
    if let Some(design) = &params.design {
        pairs.push(("design", design.clone()));
    }
    if let Some(reviewed) = params.reviewed {
        pairs.push(("reviewed", if reviewed { "yes" } else { "no" }.to_string()));
    }
    if let Some(per_page) = params.per_page {
        pairs.push(("per_page", per_page.to_string()));
    }
    if let Some(page) = page {
        pairs.push(("page", page.to_string()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// `params` without one of its label conditions (the chip's "×" link).
fn without_condition(params: &CatalogueParams, key: &str, value: &str) -> String {
    let keep = |v: &&String| v.as_str() != value;
    let rest = CatalogueParams {
        with: match key {
            "with" => params.with.iter().filter(keep).cloned().collect(),
            _ => params.with.clone(),
        },
        without: match key {
            "without" => params.without.iter().filter(keep).cloned().collect(),
            _ => params.without.clone(),
        },
        split: params.split,
        status: params.status,
        design: params.design.clone(),
        reviewed: params.reviewed,
        per_page: params.per_page,
    };
    format!("/images?{}", query_string(&rest, None))
}

fn render(data: &CataloguePage, user: &User) -> Markup {
    let body = html! {
        (filter_form(data))
        @if !data.params.with.is_empty() || !data.params.without.is_empty() {
            p.chips {
                @for value in &data.params.with {
                    a.chip.active href=(without_condition(&data.params, "with", value)) title="remove this filter" { (value) " ×" }
                }
                @for value in &data.params.without {
                    a.chip.excluded href=(without_condition(&data.params, "without", value)) title="remove this filter" { "not " (value) " ×" }
                }
            }
        }
        @if data.images.is_empty() {
            p.empty { "No image passes these filters." }
        } @else {
            div.grid.catalogue {
                @for image in &data.images { (image_card(image)) }
            }
        }
        (pager(data.page, data.per_page, data.total, |p| format!("/images?{}", query_string(&data.params, Some(p)))))
    };
    page("Catalogue", user, &[], body)
}

fn filter_form(data: &CataloguePage) -> Markup {
    let params = &data.params;
    html! {
        form.filters method="get" action="/images" {
            (label_filters(&data.facets, &params.with, &params.without))
            label {
                "split "
                select name="split" {
                    @for (value, name) in [("all", "all"), ("train", "train"), ("test", "test")] {
                        option value=(value) selected[params.split.map_or("all", |s| s.as_str()) == value] { (name) }
                    }
                }
            }
            label {
                "status "
                select name="status" {
                    @for (value, name) in [("", "active and quarantined"), ("active", "active"), ("quarantined", "quarantined"), ("removed", "removed")] {
                        option value=(value) selected[params.status.map_or("", |s| s.as_str()) == value] { (name) }
                    }
                }
            }
            label {
                "changed by a reviewer "
                select name="reviewed" {
                    @for (value, name) in [("", "either"), ("yes", "yes"), ("no", "no")] {
                        option value=(value) selected[params.reviewed.map_or("", |r| if r { "yes" } else { "no" }) == value] { (name) }
                    }
                }
            }
            label {
                "design "
                input type="text" name="design" value=(params.design.as_deref().unwrap_or("")) size="10";
            }
            button type="submit" { "Filter" }
            " "
            a href="/images" { "clear" }
        }
    }
}

/// One "any / LABEL" select per facet (`with`) and one select of every label (`without`).
pub(crate) fn label_filters(
    facets: &BTreeMap<String, Vec<String>>,
    with: &[String],
    without: &[String],
) -> Markup {
    html! {
        @for (facet, labels) in facets {
            label {
                (facet) " "
                select name="with" {
                    option value="" { "any" }
                    @for label in labels {
                        @let value = format!("{facet}:{label}");
                        option value=(value) selected[with.contains(&value)] { (label) }
                    }
                }
            }
        }
        label {
            "without "
            select name="without" {
                option value="" { "—" }
                @for (facet, labels) in facets {
                    optgroup label=(facet) {
                        @for label in labels {
                            @let value = format!("{facet}:{label}");
                            option value=(value) selected[without.contains(&value)] { (label) }
                        }
                    }
                }
            }
        }
    }
}

fn image_card(image: &CatalogueImage) -> Markup {
    let href = format!("/images/{}", image.id);
    html! {
        article.card.catalogue-card data-image=(image.id) {
            @if image.status == Status::Active {
                (thumbnail(&image.id, None))
            } @else {
                a.thumb.unavailable href=(href) title="open the image page" {
                    span { (image.status.as_str()) }
                }
            }
            div.meta {
                div {
                    a.mono href=(href) { (short_id(&image.id)) } " " (split_badge(image.split.as_str()))
                    @if image.reviewed { " " span.badge.reviewed title="a reviewer set one of its labels" { "reviewed" } }
                }
                @if let Some(reason) = &image.quarantine_reason {
                    div.error { (image.status.as_str()) ": " (reason) }
                }
                div.labels-line {
                    @for (facet, label) in &image.labels {
                        span title=(facet) { (label) } " "
                    }
                }
                @if let Some(design) = &image.design {
                    div.muted { "design " a href=(format!("/images?design={}", crate::views::url_encode(design))) { (design) } }
                }
                @if image.status == Status::Active {
                    a.similar-link href=(format!("{href}#similar")) { "similar dresses →" }
                }
            }
        }
    }
}
