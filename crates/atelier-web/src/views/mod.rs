//! HTML building blocks shared by the pages: the layout, charts, thumbnails and formatting.

pub mod cards;
pub mod chart;
pub mod layout;
pub mod retrieval;

use maud::{Markup, html};

/// Percent-encodes `text` for a query-string value or path segment.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A share in [0, 1] with three decimals, or an en dash when unknown.
pub fn score(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"))
}

/// UTC unix milliseconds as `YYYY-MM-DD HH:MM` (UTC).
pub fn timestamp(millis: i64) -> String {
    format!("{} UTC", atelier_catalog::utc_minutes(millis))
}

/// The first 10 hex digits of an image id: enough to tell images apart on a page.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(10)]
}

/// A thumbnail that links to the image page.
pub fn thumbnail(image: &str, run: Option<i64>) -> Markup {
    let href = match run {
        Some(run) => format!("/images/{image}?run={run}"),
        None => format!("/images/{image}"),
    };
    html! {
        a.thumb href=(href) title="open the image page" {
            img src=(format!("/images/{image}/thumb")) alt=(format!("image {}", short_id(image))) loading="lazy" width="160" height="160";
        }
    }
}

/// The split as a small badge (read-only everywhere).
pub fn split_badge(split: &str) -> Markup {
    html! { span class=(format!("badge split-{split}")) title="split (fixed at import)" { (split) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00 UTC");
        // 2026-11-28 07:42:12 UTC
        assert_eq!(timestamp(1_795_851_732_000), "2026-11-28 07:42 UTC");
        assert_eq!(timestamp(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn url_encoding_escapes_reserved_characters() {
        assert_eq!(
            url_encode("a-line & co/x?y=1"),
            "a-line%20%26%20co/x%3Fy%3D1"
        );
        assert_eq!(url_encode("é"), "%C3%A9");
    }
}
