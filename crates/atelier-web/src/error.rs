//! The one error type of the web app and how it becomes an HTTP response.

use atelier_app::{AppError, ErrorKind};
use atelier_catalog::CatalogError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Everything a request can fail with. Each variant maps to one status code; the message is
/// shown to the user as is, so it says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    BadRequest(String),
    #[error("log in first")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Someone else changed a label or a box first; `current` says what it is now.
    #[error("{message}")]
    Conflict {
        message: String,
        current: serde_json::Value,
    },
    /// A request body over the app's limit (an upload, say); the message gives the limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("too many failed logins; wait {0} seconds and try again")]
    RateLimited(u64),
    /// Too many logins are being checked at once.
    #[error("the server is busy checking other logins; try again in {0} seconds")]
    Busy(u64),
    #[error(transparent)]
    App(AppError),
    #[error("{0}")]
    Internal(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Unauthenticated => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Conflict { .. } => StatusCode::CONFLICT,
            WebError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::App(error) => kind_status(error.kind()),
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The one place where error kinds become HTTP statuses.
fn kind_status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Turns a catalogue error into a web error, keeping a label's or box's current state on a
/// conflict.
pub fn from_catalog(error: CatalogError) -> WebError {
    if let CatalogError::Conflict {
        image,
        facet,
        current_version,
        current_label,
        ..
    } = &error
    {
        return WebError::Conflict {
            message: error.to_string(),
            current: json!({
                "image": image,
                "facet": facet,
                "label": current_label,
                "version": current_version,
            }),
        };
    }
    if let CatalogError::BoxConflict { image, current, .. } = &error {
        return WebError::Conflict {
            message: error.to_string(),
            current: json!({ "image": image, "box": current }),
        };
    }
    WebError::App(AppError::Catalog(error))
}

/// Errors answer as JSON: API clients and the page script read its `error` text. For pages
/// (paths outside `/api/`), `app::html_errors` turns it into an HTML page or a login redirect.
impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!("{self}");
        }
        let mut body = json!({ "error": self.to_string() });
        if let WebError::Conflict { current, .. } = &self {
            body["current"] = current.clone();
        }
        let mut response = (status, axum::Json(body)).into_response();
        if let WebError::RateLimited(seconds) | WebError::Busy(seconds) = self
            && let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<AppError> for WebError {
    fn from(error: AppError) -> Self {
        match error {
            // A catalogue error keeps its own mapping (a label conflict's current state).
            AppError::Catalog(error) => from_catalog(error),
            other => WebError::App(other),
        }
    }
}

impl From<CatalogError> for WebError {
    fn from(error: CatalogError) -> Self {
        from_catalog(error)
    }
}
