//! Dress boxes: the box drawn over the image page's photo with its editor (reviewers drag the
//! corners, or move them with the arrow keys, and save; a box someone else saved meanwhile is
//! a 409 with the current box), and `/boxes`, the queue of boxes the newest similarity run's
//! locator was least sure of.

use atelier_app::boxes::{self, ImageBoxes, UnsureQueue};
use atelier_catalog::{BoxCoords, BoxEdit, DressBox, LocatedBox, Role};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Deserializer};

use crate::app::AppState;
use crate::auth::User;
use crate::error::WebError;
use crate::format::{Format, respond};
use crate::pages::body::{self, loose};
use crate::views::layout::page;
use crate::views::short_id;

/// Boxes a page of the queue shows.
const QUEUE_PAGE: usize = 24;

/// A reviewer's box, from the editor's form or a script.
#[derive(Deserialize)]
struct BoxRequest {
    #[serde(deserialize_with = "number")]
    x0: f64,
    #[serde(deserialize_with = "number")]
    y0: f64,
    #[serde(deserialize_with = "number")]
    x1: f64,
    #[serde(deserialize_with = "number")]
    y1: f64,
    #[serde(deserialize_with = "loose::i64")]
    expected_version: i64,
}

/// A coordinate as a JSON number or a form's string.
fn number<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| serde::de::Error::custom("a coordinate is out of range")),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number of pixels"))),
        other => Err(serde::de::Error::custom(format!(
            "{other} is not a number of pixels"
        ))),
    }
}

/// `POST /images/ID/box` (a form: back to the image page) or `/api/images/ID/box` (JSON:
/// the recorded event and the new box).
pub async fn set(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Path(image): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let request: BoxRequest = body::write(&user, Role::Reviewer, &headers, &body)?;
    let edit = BoxEdit {
        image: image.clone(),
        coords: [request.x0, request.y0, request.x1, request.y1],
        expected_version: request.expected_version,
        actor: user.name.clone(),
    };
    let (event, now) = boxes::set_box(&state.catalog, &edit).await?;
    Ok(match format {
        Format::Json => {
            axum::Json(serde_json::json!({ "event": event, "box": now })).into_response()
        }
        Format::Html => Redirect::to(&format!("/images/{image}#box")).into_response(),
    })
}

#[derive(Deserialize)]
pub struct QueueParams {
    run: Option<i64>,
    page: Option<usize>,
}

/// `/boxes`: the boxes the locator was least sure of, least sure first.
pub async fn queue(
    State(state): State<AppState>,
    user: User,
    format: Format,
    Query(params): Query<QueueParams>,
) -> Result<Response, WebError> {
    let queue = boxes::least_sure(
        &state.catalog,
        params.run,
        params.page.unwrap_or(1),
        QUEUE_PAGE,
    )
    .await?;
    Ok(respond(format, &queue, |queue| render_queue(queue, &user)))
}

fn render_queue(queue: &UnsureQueue, user: &User) -> Markup {
    let body = html! {
        p.muted {
            "Where similarity run #" (queue.run) "'s locator was least sure of the dress: low "
            "foreground confidence, or a regressor box far from the final one. Dashed: located; "
            "solid: the stored box. Open one to correct its box; a corrected box leaves the queue "
            "and the next similarity run learns from it."
        }
        @if queue.entries.is_empty() { p.empty { "No unchecked boxes." } }
        div.box-queue {
            @for entry in &queue.entries {
                @let located = &entry.located;
                a.box-card href=(format!("/images/{}#box", located.image)) {
                    div.photo-frame {
                        img src=(format!("/images/{}/thumb", located.image)) alt=(format!("image {}", short_id(&located.image)))
                            width=[entry.width] height=[entry.height] loading="lazy";
                        (overlay_for(entry.width.zip(entry.height), located, entry.current.as_ref()))
                    }
                    span.box-scores {
                        (sureness(located))
                    }
                }
            }
        }
        p.pager {
            @if queue.page > 1 { a href=(format!("/boxes?run={}&page={}", queue.run, queue.page - 1)) { "← previous" } " " }
            @if queue.more { a href=(format!("/boxes?run={}&page={}", queue.run, queue.page + 1)) { "next →" } }
        }
    };
    page(
        "Boxes to check",
        user,
        &[("Catalogue".into(), "/images".into())],
        body,
    )
}

/// "foreground 0.41 · IoU 0.62" for a located box.
fn sureness(located: &LocatedBox) -> String {
    match (located.foreground, located.agreement) {
        (Some(f), Some(a)) => format!("foreground {f:.2} · regressor IoU {a:.2}"),
        _ => "no confidence (model without a foreground classifier)".to_string(),
    }
}

/// The queue's boxes over a photo of `size` pixels: dashed where the locator put it, solid
/// the stored box.
fn overlay_for(
    size: Option<(u32, u32)>,
    located: &LocatedBox,
    current: Option<&DressBox>,
) -> Markup {
    let Some((width, height)) = size else {
        return html! {};
    };
    html! {
        svg.box-overlay viewBox=(format!("0 0 {width} {height}")) preserveAspectRatio="none" {
            (rect("located", &located.coords))
            @if let Some(current) = current { (rect("current", &current.coords)) }
        }
    }
}

/// The image page's photo with its boxes drawn over it (`width` x `height` pixels) and, for
/// reviewers, the editor's handles and form.
pub fn figure(
    image: &str,
    size: Option<(u32, u32)>,
    boxes: &ImageBoxes,
    editable: bool,
    csrf: &str,
) -> Markup {
    let src = format!("/images/{image}/file");
    let alt = format!("image {}", short_id(image));
    let Some((width, height)) = size else {
        return html! { img.full src=(src) alt=(alt); };
    };
    let (w, h) = (f64::from(width), f64::from(height));
    // The editor starts from the current box, else the located one, else a centred box.
    let start = boxes
        .current
        .as_ref()
        .map(|b| b.coords)
        .or(boxes.located.as_ref().map(|l| l.coords))
        .unwrap_or([w * 0.1, h * 0.1, w * 0.9, h * 0.9]);
    // About 1/60 of the photo: some 9 screen pixels whatever its size (the frame is scaled).
    let radius = w.max(h) / 60.0;
    html! {
        div.photo-frame id="box" {
            img.full src=(src) alt=(alt);
            svg.box-overlay viewBox=(format!("0 0 {width} {height}")) preserveAspectRatio="none" {
                @if let Some(located) = &boxes.located { (rect("located", &located.coords)) }
                @if editable || boxes.current.is_some() { (rect("current", &start)) }
                @if editable {
                    @for (corner, (x, y)) in corners(&start).into_iter().enumerate() {
                        circle.handle data-corner=(corner) cx=(x) cy=(y) r=(radius) tabindex="0"
                            role="slider" aria-label=(CORNER_NAMES[corner]) {}
                    }
                }
            }
        }
        p.box-legend.muted {
            @match &boxes.current {
                Some(b) if b.source == "review" => {
                    "Solid: the dress box (version " (b.version) ", set by " (b.actor.as_deref().unwrap_or("?")) ")."
                }
                Some(_) => "Solid: the imported dress box.",
                None => "No dress box stored yet.",
            }
            @if let (Some(run), Some(located)) = (boxes.run, &boxes.located) {
                " Dashed: where similarity run #" (run) " located it (" (sureness(located)) ")."
            }
        }
        @if editable { (editor(image, width, height, &start, boxes, csrf)) }
    }
}

const CORNER_NAMES: [&str; 4] = [
    "top-left corner of the dress box",
    "top-right corner of the dress box",
    "bottom-right corner of the dress box",
    "bottom-left corner of the dress box",
];

fn corners(b: &BoxCoords) -> [(f64, f64); 4] {
    [(b[0], b[1]), (b[2], b[1]), (b[2], b[3]), (b[0], b[3])]
}

fn rect(class: &str, b: &BoxCoords) -> Markup {
    html! {
        rect class=(class) x=(b[0]) y=(b[1]) width=((b[2] - b[0]).max(0.0)) height=((b[3] - b[1]).max(0.0)) {}
    }
}

/// The box form: the four coordinates (the handles move them), the version the page saw.
fn editor(
    image: &str,
    width: u32,
    height: u32,
    start: &BoxCoords,
    boxes: &ImageBoxes,
    csrf: &str,
) -> Markup {
    let version = boxes.current.as_ref().map_or(0, |b| b.version);
    let fields = [
        ("x0", start[0], width),
        ("y0", start[1], height),
        ("x1", start[2], width),
        ("y1", start[3], height),
    ];
    html! {
        form.box-editor method="post" action=(format!("/images/{image}/box")) data-width=(width) data-height=(height) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="expected_version" value=(version);
            @for (name, value, limit) in fields {
                label { (name) " " input type="number" name=(name) min="0" max=(limit) step="any" value=(format!("{value:.0}")); }
            }
            button type="submit" { "Save box" }
            span.muted {
                " Drag a corner, or focus one (Tab) and move it with the arrow keys (Shift: ten "
                "times further); Enter saves."
            }
        }
    }
}

/// The box changes of the image page's history.
pub fn history(boxes: &ImageBoxes) -> Markup {
    let coords = |b: &BoxCoords| format!("({:.0}, {:.0}, {:.0}, {:.0})", b[0], b[1], b[2], b[3]);
    html! {
        @if !boxes.events.is_empty() {
            h2 { "Box changes" }
            table.history.box-history {
                thead { tr { th { "When" } th { "Who" } th { "Change" } } }
                tbody {
                    @for event in boxes.events.iter().rev() {
                        tr {
                            td { (crate::views::timestamp(event.at)) }
                            td { (event.actor) }
                            td { (event.old.as_ref().map_or("(none)".to_string(), coords)) " → " strong { (coords(&event.new)) } }
                        }
                    }
                }
            }
        }
    }
}
