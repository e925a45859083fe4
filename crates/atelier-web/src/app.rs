//! The application: shared state, the route table, HTML error pages, security headers,
//! `serve`, and the upkeep it does while it runs (leases of queued runs, runs whose process is
//! gone, expired sessions).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atelier_app::ann::IndexFiles;
use atelier_app::jobs::{self, WorkerConfig};
use atelier_app::lease;
use atelier_app::runner::RunPaths;
use atelier_app::similar::Searcher;
use atelier_catalog::Catalog;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::auth::DeviceKey;
use crate::error::WebError;
use crate::limits::{LoginLimiter, LoginPolicy};
use crate::pages;
use crate::views;

/// Failed logins older than this are deleted from the catalogue (longer than any login
/// window counts them).
const FAILURES_KEPT_MS: i64 = 24 * 60 * 60 * 1000;

/// How often the app looks for runs whose process is gone and for expired sessions.
const UPKEEP_EVERY: Duration = Duration::from_secs(60);

/// The Content-Security-Policy of every response: scripts, styles and images of this site
/// only, no inline script or style, no framing, forms posting only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'self'";

/// What `atelier serve` needs besides the catalogue.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Where retrain jobs keep checkpoints, models and cached features.
    pub run_paths: RunPaths,
    /// Where generated thumbnails are kept.
    pub thumbnail_cache: PathBuf,
    /// Login limits and how many password checks run at once.
    pub login: LoginPolicy,
    /// Cookies always get the `Secure` flag (the app is reached over HTTPS only).
    pub secure_cookies: bool,
    /// The app runs behind a reverse proxy it trusts: the client address is the last one of
    /// `X-Forwarded-For`, and `X-Forwarded-Proto: https` makes cookies `Secure`.
    pub behind_proxy: bool,
    /// Largest request body of a photo search upload, in bytes (the photo and the form).
    pub max_upload_bytes: usize,
    /// Where large similarity runs keep their approximate indexes (`None`: every run is
    /// searched by an exact scan).
    pub index_files: Option<IndexFiles>,
    /// A serving app ([`start`]) also works the catalogue's job queue, like `atelier worker`
    /// (off where separate workers do the training).
    pub worker: bool,
}

impl AppConfig {
    /// The settings for these folders, with the default login limits, plain cookies, no proxy,
    /// uploads of up to 16 MiB, and exact similarity scans whatever the size.
    pub fn new(run_paths: RunPaths, thumbnail_cache: PathBuf) -> AppConfig {
        AppConfig {
            run_paths,
            thumbnail_cache,
            login: LoginPolicy::default(),
            secure_cookies: false,
            behind_proxy: false,
            max_upload_bytes: 16 << 20,
            index_files: None,
            worker: false,
        }
    }
}

/// Everything a request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub config: Arc<AppConfig>,
    pub limiter: Arc<LoginLimiter>,
    pub mistags: Arc<pages::mistags::QueueCache>,
    /// Answers similarity queries from its copies of vectors and labels.
    pub searcher: Arc<Searcher>,
    device_key: Arc<tokio::sync::OnceCell<DeviceKey>>,
}

impl AppState {
    /// The key that signs known-device cookies (read from the catalogue once).
    pub async fn device_key(&self) -> Result<DeviceKey, WebError> {
        self.device_key
            .get_or_try_init(|| DeviceKey::load(&self.catalog))
            .await
            .cloned()
    }
}

/// The whole application as a router (tests drive it without a socket). [`start`] also does
/// the app's upkeep, which `serve` needs.
pub fn router(catalog: Catalog, config: AppConfig) -> Router {
    routes(state(catalog, config))
}

/// The router of a serving app: first marks the runs whose process is gone `interrupted` and
/// clears expired sessions, then repeats that upkeep every minute, and with
/// [`AppConfig::worker`] works the job queue, in the background, for as long as the runtime
/// lives.
pub async fn start(catalog: Catalog, config: AppConfig) -> Result<Router, WebError> {
    let state = state(catalog, config);
    upkeep(&state.catalog).await?;
    if state.config.worker {
        spawn_worker(&state);
    }
    let catalog = state.catalog.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP_EVERY);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(error) = upkeep(&catalog).await {
                tracing::warn!("app upkeep failed: {error}");
            }
        }
    });
    Ok(routes(state))
}

/// Works the job queue in the background (checkpoints mirrored in the store, as any worker's).
fn spawn_worker(state: &AppState) {
    let mut paths = state.config.run_paths.clone();
    paths.mirror_checkpoints = paths.store.is_some();
    let config = WorkerConfig::new(paths, state.config.index_files.clone());
    let catalog = state.catalog.clone();
    tokio::spawn(async move {
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        if let Err(error) = jobs::work(&catalog, &config, stopped).await {
            tracing::error!("the app's worker stopped: {error}");
        }
    });
}

/// Marks runs whose process is gone `interrupted`, deletes expired sessions and old failed
/// logins.
async fn upkeep(catalog: &Catalog) -> Result<(), WebError> {
    let interrupted = catalog
        .interrupt_orphaned_runs(&lease::owner_is_gone)
        .await?;
    if !interrupted.is_empty() {
        tracing::warn!(
            "runs {interrupted:?} lost the process that trained them; they are interrupted \
             (resume them or mark them failed on their pages)"
        );
    }
    let now = crate::auth::now_millis();
    catalog.delete_expired_sessions(now).await?;
    catalog.prune_login_failures(now - FAILURES_KEPT_MS).await?;
    Ok(())
}

fn state(catalog: Catalog, config: AppConfig) -> AppState {
    AppState {
        limiter: Arc::new(LoginLimiter::shared(config.login.clone(), catalog.clone())),
        catalog,
        searcher: Arc::new(Searcher::new(config.index_files.clone())),
        config: Arc::new(config),
        mistags: Arc::new(pages::mistags::QueueCache::default()),
        device_key: Arc::new(tokio::sync::OnceCell::new()),
    }
}

fn routes(state: AppState) -> Router {
    // Each page is registered at its path and at /api/ + path; the handler answers in kind.
    let mut routes = Router::new();
    let upload_limit = DefaultBodyLimit::max(state.config.max_upload_bytes);
    for prefix in ["", "/api"] {
        routes = routes
            .merge(run_pages(prefix))
            .merge(catalogue_pages(prefix, upload_limit))
            .merge(queue_pages(prefix))
            .merge(user_pages(prefix));
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
        // Public: a crowd worker's signed, expiring link to one task's photo.
        .route("/crowd/images/{token}", get(pages::crowd::image))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route("/favicon.ico", get(favicon))
        .route("/assets/favicon.svg", get(favicon))
        .layer(middleware::from_fn(html_errors))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The runs, their facets' views, reviews and mistags, retrain, resume and fail.
fn run_pages(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/runs"), get(pages::runs::list))
        .route(&format!("{prefix}/runs/compare"), get(pages::runs::compare))
        .route(&format!("{prefix}/runs/{{run}}"), get(pages::runs::show))
        .route(
            &format!("{prefix}/runs/{{run}}/retrain"),
            post(pages::runs::retrain),
        )
        .route(
            &format!("{prefix}/runs/{{run}}/resume"),
            post(pages::runs::resume),
        )
        .route(
            &format!("{prefix}/runs/{{run}}/fail"),
            post(pages::runs::mark_failed),
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
}

/// The catalogue browser, image pages and boxes, search, triplets and duplicates.
fn catalogue_pages(prefix: &str, upload_limit: DefaultBodyLimit) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{prefix}/search"),
            get(pages::search::show)
                .post(pages::search::upload)
                .layer(upload_limit),
        )
        .route(&format!("{prefix}/images"), get(pages::catalogue::list))
        .route(
            &format!("{prefix}/triplets"),
            get(pages::triplets::show).post(pages::triplets::add),
        )
        .route(
            &format!("{prefix}/images/{{image}}"),
            get(pages::image::show),
        )
        .route(
            &format!("{prefix}/images/{{image}}/box"),
            post(pages::boxes::set),
        )
        .route(&format!("{prefix}/boxes"), get(pages::boxes::queue))
        .route(
            &format!("{prefix}/duplicates"),
            get(pages::duplicates::show),
        )
        .route(
            &format!("{prefix}/duplicates/verdict"),
            post(pages::duplicates::decide),
        )
}

/// The job queue and crowd batches.
fn queue_pages(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/jobs"), get(pages::jobs::list))
        .route(&format!("{prefix}/jobs/{{job}}"), get(pages::jobs::show))
        .route(
            &format!("{prefix}/jobs/{{job}}/cancel"),
            post(pages::jobs::cancel),
        )
        .route(
            &format!("{prefix}/jobs/{{job}}/retry"),
            post(pages::jobs::retry),
        )
        .route(&format!("{prefix}/crowd"), get(pages::crowd_batches::list))
        .route(
            &format!("{prefix}/crowd/{{batch}}"),
            get(pages::crowd_batches::show),
        )
        .route(
            &format!("{prefix}/crowd/{{batch}}/apply"),
            post(pages::crowd_batches::apply),
        )
        .route(
            &format!("{prefix}/crowd/{{batch}}/answer"),
            get(pages::crowd_batches::answer_form).post(pages::crowd_batches::answer),
        )
}

/// Users (admins).
fn user_pages(prefix: &str) -> Router<AppState> {
    Router::new()
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
        )
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
    let app = start(catalog, config)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// Headers every response carries: the content security policy, no content-type sniffing, no
/// framing, and no full URLs in the referrer sent to other sites.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
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
