//! `/duplicates`: near-duplicate pairs across the catalogue (trained embeddings of the newest
//! similarity run above a threshold), grouped, best first; reviewers mark each pair "same
//! product" (the next similarity run learns them as one design) or "not the same".

use atelier_app::duplicates::{self, DuplicateGroup, DuplicateQuery, DuplicateReport};
use atelier_catalog::{DuplicateVerdict, Role};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::body;
use crate::views::layout::page;
use crate::views::{short_id, thumbnail};

#[derive(Deserialize)]
pub struct DuplicateParams {
    run: Option<i64>,
    threshold: Option<f32>,
    page: Option<usize>,
    /// `yes`: only pairs no reviewer has decided.
    undecided: Option<String>,
}

impl DuplicateParams {
    fn query(&self) -> Result<DuplicateQuery, WebError> {
        let defaults = DuplicateQuery::default();
        let undecided_only = match self.undecided.as_deref() {
            None | Some("") | Some("no") => false,
            Some("yes") => true,
            Some(other) => {
                return Err(WebError::BadRequest(format!(
                    "undecided: {other:?} is neither yes nor no"
                )));
            }
        };
        Ok(DuplicateQuery {
            run: self.run,
            threshold: self.threshold.unwrap_or(defaults.threshold),
            undecided_only,
            page: self.page.unwrap_or(defaults.page),
            ..defaults
        })
    }
}

pub async fn show(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Query(params): Query<DuplicateParams>,
) -> Result<Response, WebError> {
    let query = params.query()?;
    let report = duplicates::near_duplicates(&state.catalog, &state.searcher, &query).await?;
    Ok(respond(format, &report, |report| {
        render(report, query.undecided_only, &user)
    }))
}

/// A reviewer's verdict; the page's form also says where to come back to.
#[derive(Deserialize)]
struct VerdictForm {
    a: String,
    b: String,
    verdict: DuplicateVerdict,
    #[serde(default)]
    threshold: Option<String>,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    undecided: Option<String>,
}

/// `POST /duplicates/verdict` (a form: back to the same page of the list) or
/// `/api/duplicates/verdict` with `{"a","b","verdict":"same"|"different"}`.
pub async fn decide(
    State(state): State<AppState>,
    user: User,
    format: Format,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let form: VerdictForm = body::write(&user, Role::Reviewer, &headers, &body)?;
    let decision =
        duplicates::decide(&state.catalog, &form.a, &form.b, form.verdict, &user.name).await?;
    Ok(match format {
        Format::Json => axum::Json(decision).into_response(),
        Format::Html => Redirect::to(&back(&form)).into_response(),
    })
}

/// The list page the form came from: only numbers and `yes` go into the address.
fn back(form: &VerdictForm) -> String {
    let threshold = form
        .threshold
        .as_deref()
        .and_then(|t| t.parse::<f32>().ok())
        .filter(|t| t.is_finite())
        .unwrap_or(DuplicateQuery::default().threshold);
    let page = form
        .page
        .as_deref()
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1);
    let undecided = if form.undecided.as_deref() == Some("yes") {
        "&undecided=yes"
    } else {
        ""
    };
    format!("/duplicates?threshold={threshold}&page={page}{undecided}")
}

fn render(report: &DuplicateReport, undecided_only: bool, user: &User) -> Markup {
    let link = |page: usize| {
        format!(
            "/duplicates?run={}&threshold={}&page={page}{}",
            report.run,
            report.threshold,
            if undecided_only { "&undecided=yes" } else { "" }
        )
    };
    let body = html! {
        p.muted {
            "Pairs of photos whose trained embeddings (similarity run #" (report.run) ") score "
            (report.threshold) " or more, among each photo's ten nearest, joined into groups, "
            "the closest first (the catalogue keeps each file's bytes once, so re-encoded or "
            "resized copies, scoring about 1, lead). \"Same product\" makes the two photos one "
            "design for the next similarity run."
        }
        form.filters method="get" action="/duplicates" {
            input type="hidden" name="run" value=(report.run);
            label { "threshold " input type="number" name="threshold" min="0.5" max="1" step="0.005" value=(report.threshold); }
            label { input type="checkbox" name="undecided" value="yes" checked[undecided_only]; " undecided only" }
            button type="submit" { "Show" }
        }
        p {
            strong { (report.pairs) } " pairs in " strong { (report.groups) } " groups, "
            (report.undecided) " undecided"
        }
        @if report.shown.is_empty() {
            p.empty { @if undecided_only { "No undecided pair scores that high." } @else { "No pair scores that high." } }
        }
        @for group in &report.shown { (group_card(group, report, undecided_only, user)) }
        p.pager {
            @if report.page > 1 { a href=(link(report.page - 1)) { "← previous" } " " }
            @if report.more { a href=(link(report.page + 1)) { "next →" } }
        }
    };
    page(
        "Near-duplicates",
        user,
        &[("Catalogue".into(), "/images".into())],
        body,
    )
}

fn group_card(
    group: &DuplicateGroup,
    report: &DuplicateReport,
    undecided_only: bool,
    user: &User,
) -> Markup {
    let can_decide = user.role >= Role::Reviewer;
    html! {
        section.duplicate-group {
            h3 { (group.images.len()) " photos · best " (format!("{:.3}", group.best)) }
            table.duplicate-pairs {
                tbody {
                    @for pair in &group.pairs {
                        tr.duplicate-pair data-a=(pair.a) data-b=(pair.b) {
                            td { (thumbnail(&pair.a, None)) }
                            td { (thumbnail(&pair.b, None)) }
                            td.score { (format!("{:.3}", pair.score)) }
                            td.verdict {
                                @match pair.verdict {
                                    Some(DuplicateVerdict::Same) => { span.badge.same { "same product" } }
                                    Some(DuplicateVerdict::Different) => { span.badge.different { "not the same" } }
                                    None => { span.muted { "undecided" } }
                                }
                                @if let Some(who) = &pair.decided_by { span.muted { " · " (who) } }
                            }
                            @if can_decide {
                                td {
                                    form.inline.verdict method="post" action="/duplicates/verdict" {
                                        input type="hidden" name="csrf" value=(user.csrf_token);
                                        input type="hidden" name="a" value=(pair.a);
                                        input type="hidden" name="b" value=(pair.b);
                                        input type="hidden" name="threshold" value=(report.threshold);
                                        input type="hidden" name="page" value=(report.page);
                                        @if undecided_only { input type="hidden" name="undecided" value="yes"; }
                                        button type="submit" name="verdict" value="same" title=(format!("{} and {} show the same product", short_id(&pair.a), short_id(&pair.b))) { "Same product" }
                                        button type="submit" name="verdict" value="different" { "Not the same" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
