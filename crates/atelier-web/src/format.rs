//! One handler per page answers both the HTML page and its JSON twin under `/api/`: the
//! handler builds the page's data once, and [`respond`] either serialises it or renders it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
use maud::Markup;
use serde::Serialize;

/// Whether the request came in under `/api/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
}

impl<S: Send + Sync> FromRequestParts<S> for Format {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(if parts.uri.path().starts_with("/api/") {
            Format::Json
        } else {
            Format::Html
        })
    }
}

/// The page's data as JSON, or the page rendered from it.
pub fn respond<T: Serialize>(
    format: Format,
    data: &T,
    render: impl FnOnce(&T) -> Markup,
) -> Response {
    match format {
        Format::Json => axum::Json(data).into_response(),
        Format::Html => Html(render(data).into_string()).into_response(),
    }
}
