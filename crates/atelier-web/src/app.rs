//! The application: shared state, the route table, HTML error pages, and `serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use atelier_catalog::Catalog;
use atelier_train::runner::RunPaths;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::auth::LoginLimiter;
use crate::jobs::Jobs;
use crate::pages;
use crate::views;

/// What `atelier serve` needs besides the catalogue.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Where retrain jobs keep checkpoints, models and cached features.
    pub run_paths: RunPaths,
    /// Where generated thumbnails are kept.
    pub thumbnail_cache: PathBuf,
}

/// Everything a request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub config: Arc<AppConfig>,
    pub limiter: Arc<LoginLimiter>,
    pub jobs: Arc<Jobs>,
    pub mistags: Arc<pages::mistags::QueueCache>,
}

/// The whole application as a router (tests drive it without a socket).
pub fn router(catalog: Catalog, config: AppConfig) -> Router {
    let state = AppState {
        catalog,
        config: Arc::new(config),
        limiter: Arc::new(LoginLimiter::default()),
        jobs: Arc::new(Jobs::default()),
        mistags: Arc::new(pages::mistags::QueueCache::default()),
    };
    // Each page is registered at its path and at /api/ + path; the handler answers in kind.
    let mut routes = Router::new();
    for prefix in ["", "/api"] {
        routes = routes
            .route(&format!("{prefix}/runs"), get(pages::runs::list))
            .route(&format!("{prefix}/runs/compare"), get(pages::runs::compare))
            .route(&format!("{prefix}/runs/{{run}}"), get(pages::runs::show))
            .route(
                &format!("{prefix}/runs/{{run}}/retrain"),
                post(pages::runs::retrain),
            )
            .route(
                &format!("{prefix}/runs/{{run}}/facets/{{facet}}"),
                get(pages::facet::show),
            )
            .route(
                &format!("{prefix}/runs/{{run}}/facets/{{facet}}/review"),
                get(pages::review::show),
            )
            .route(
                &format!("{prefix}/runs/{{run}}/mistags"),
                get(pages::mistags::show),
            )
            .route(
                &format!("{prefix}/images/{{image}}"),
                get(pages::image::show),
            )
            .route(
                &format!("{prefix}/users"),
                get(pages::users::list).post(pages::users::add),
            )
            .route(
                &format!("{prefix}/users/{{name}}/role"),
                post(pages::users::set_role),
            )
            .route(
                &format!("{prefix}/users/{{name}}/remove"),
                post(pages::users::remove),
            );
    }
    routes
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/api/login", post(pages::login::api_login))
        .route("/api/labels", post(pages::labels::set))
        .route("/api/labels/undo", post(pages::labels::undo))
        .route("/images/{image}/labels", post(pages::labels::set_from_form))
        .route("/images/{image}/file", get(pages::image::file))
        .route("/images/{image}/thumb", get(pages::image::thumbnail))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/favicon.ico", get(favicon))
        .route("/assets/favicon.svg", get(favicon))
        .layer(middleware::from_fn(html_errors))
        .with_state(state)
}

/// Serves the app on `addr` until the process is stopped.
pub async fn serve(catalog: Catalog, config: AppConfig, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, catalog, config).await
}

/// Serves the app on a socket already bound (so a caller can print the port it got).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    catalog: Catalog,
    config: AppConfig,
) -> std::io::Result<()> {
    axum::serve(listener, router(catalog, config)).await
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/app.css"),
    )
}

async fn favicon() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        include_str!("../assets/favicon.svg"),
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/app.js"),
    )
}

/// Errors outside `/api/` become pages: 401 sends the browser to the login form (and back
/// afterwards), other errors show their message. API errors stay JSON.
async fn html_errors(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.to_string());
    let is_get = request.method() == axum::http::Method::GET;
    let response = next.run(request).await;
    let status = response.status();
    if path.starts_with("/api/") || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return response;
    }
    if status == StatusCode::UNAUTHORIZED {
        let next = if is_get { target } else { "/runs".to_string() };
        return Redirect::to(&format!("/login?next={}", views::url_encode(&next))).into_response();
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| status.to_string());
    let page = views::layout::error_page(status, &message);
    let mut response = Html(page.into_string()).into_response();
    *response.status_mut() = status;
    response
}

/// A response with a body and a content type.
pub fn bytes_response(content_type: &str, bytes: Vec<u8>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "private, max-age=3600")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
