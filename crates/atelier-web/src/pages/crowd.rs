//! Crowd workers' view of a task's photo: `GET /crowd/images/TOKEN?expires=T&sig=S`, without a
//! login. It answers only a signed link that has not expired (see `atelier_app::crowd`), and
//! every other request (an unknown, expired, tampered or borrowed link) with the same 404, so
//! a prober learns nothing.

use atelier_app::crowd::signed_image;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use crate::app::{AppState, bytes_response};
use crate::error::WebError;
use crate::pages::image::servable_bytes;
use crate::thumbs;

#[derive(Deserialize)]
pub struct Signed {
    expires: i64,
    sig: String,
}

pub async fn image(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(signed): Query<Signed>,
) -> Result<Response, WebError> {
    let now = atelier_catalog::now_millis() / 1000;
    let image = signed_image(&state.catalog, &token, signed.expires, &signed.sig, now).await?;
    let Some(image) = image else {
        return Err(WebError::NotFound(
            "no photo at this link (it may have expired)".into(),
        ));
    };
    let bytes = servable_bytes(&state, &image).await?;
    Ok(bytes_response(thumbs::content_type(&bytes), bytes))
}
