//! Image cards of the review grids: a thumbnail, the current label, what the model said, and a
//! row of label buttons (digit keys pick them). The page script reads the `data-` attributes
//! to send retags with the version the reviewer saw.

use maud::{Markup, html};

use super::{short_id, split_badge, thumbnail};

/// What a card shows about one (image, facet).
pub struct Card<'a> {
    pub image: &'a str,
    pub facet: &'a str,
    pub split: &'a str,
    pub current_label: Option<&'a str>,
    pub version: i64,
    pub run: i64,
    /// One line about the model's view, e.g. "predicted neckline-v · 0.93".
    pub model_line: Markup,
    /// The label a button highlights as the model's suggestion.
    pub suggested: Option<&'a str>,
    /// Sent as the change's reason.
    pub reason: &'a str,
}

/// Buttons for every label of the facet in its order; digits 1-9 and 0 pick the first ten.
pub fn card(card: &Card<'_>, labels: &[String]) -> Markup {
    html! {
        article.card tabindex="0"
            data-image=(card.image) data-facet=(card.facet) data-version=(card.version)
            data-run=(card.run) data-label=(card.current_label.unwrap_or("")) data-reason=(card.reason) {
            label.select { input type="checkbox" aria-label=(format!("select image {}", short_id(card.image))); }
            (thumbnail(card.image, Some(card.run)))
            div.meta {
                div { span.mono { (short_id(card.image)) } " " (split_badge(card.split)) }
                div.current { "label: " strong.label-value { (card.current_label.unwrap_or("(none)")) } }
                div.model { (card.model_line) }
            }
            div.labels role="group" aria-label="set the label" {
                @for (i, label) in labels.iter().enumerate() {
                    @let key = if i < 9 { format!("{}", i + 1) } else if i == 9 { "0".to_string() } else { String::new() };
                    @let is_current = Some(label.as_str()) == card.current_label;
                    @let is_suggested = Some(label.as_str()) == card.suggested;
                    button.pick.current[is_current].suggested[is_suggested] type="button" data-label=(label)
                        title=(if key.is_empty() { label.clone() } else { format!("{label} (key {key})") }) {
                        @if !key.is_empty() { kbd { (key) } } (label)
                    }
                }
            }
        }
    }
}

/// The bar above a grid: keyboard help and the "retag selected" control.
pub fn toolbar(labels: &[String]) -> Markup {
    html! {
        div.toolbar {
            p.keys {
                kbd { "←" } kbd { "→" } " move · " kbd { "1" } "…" kbd { "9" } " set the label · "
                kbd { "u" } " undo · " kbd { "x" } " select"
            }
            div.batch {
                @if labels.is_empty() {
                    span.muted { "Pick one facet to retag many images at once." } " "
                } @else {
                    span.count { "0 selected" } " "
                    select.batch-label aria-label="label for the selected images" {
                        @for label in labels { option value=(label) { (label) } }
                    }
                    button.batch-apply type="button" { "Retag selected" }
                }
                button.undo type="button" title="undo your last change (u)" { "Undo" }
            }
        }
    }
}

/// Previous/next links for a paged list; `href(page)` builds a page's URL (1-based).
pub fn pager(page: u64, per_page: u64, total: u64, href: impl Fn(u64) -> String) -> Markup {
    let pages = total.div_ceil(per_page.max(1)).max(1);
    html! {
        nav.pager {
            @if page > 1 { a rel="prev" href=(href(page - 1)) { "← previous" } }
            span { "page " (page) " of " (pages) " · " (total) " images" }
            @if page < pages { a rel="next" href=(href(page + 1)) { "next →" } }
        }
    }
}
