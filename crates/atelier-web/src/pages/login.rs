//! Logging in and out. The form carries a CSRF token that must match a cookie set with the
//! form (there is no session yet to hold it); failed logins are rate-limited per user name.

use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::{
    self, LOGIN_COOKIE, SESSION_COOKIE, SESSION_LIFETIME, User, now_millis, random_token,
    set_cookie, token_hash, verify_password,
};
use crate::error::WebError;
use crate::views::layout::bare_page;

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// Only same-site paths are followed after login (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") => path.to_string(),
        _ => "/runs".to_string(),
    }
}

fn login_page(next: &str, error: Option<&str>) -> Response {
    let token = random_token();
    let page = bare_page(
        "Log in",
        html! {
            form.login method="post" action="/login" {
                h1 { "atelier" }
                p.muted { "Review dress tags, fix mistakes, retrain." }
                @if let Some(error) = error { p.error role="alert" { (error) } }
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label { "User" input name="user" autocomplete="username" required autofocus; }
                label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        },
    );
    let mut response = Html(page.into_string()).into_response();
    if let Ok(value) =
        HeaderValue::from_str(&set_cookie(LOGIN_COOKIE, &token, Duration::from_secs(3600)))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub async fn form(Query(query): Query<NextQuery>) -> Response {
    login_page(&safe_next(query.next.as_deref()), None)
}

/// Checks the password (rate-limited) and opens a session; returns the session token.
async fn open_session(state: &AppState, user: &str, password: &str) -> Result<String, WebError> {
    state.limiter.check(user)?;
    let record = state.catalog.user(user).await?;
    // An unknown user costs a hash verification too, so timing does not tell names apart.
    let hash_owned = match &record {
        Some(record) => record.password_hash.clone(),
        None => dummy_hash().to_string(),
    };
    let password = password.to_string();
    let matches = tokio::task::spawn_blocking(move || verify_password(&hash_owned, &password))
        .await
        .unwrap_or(false);
    if record.is_none() || !matches {
        state.limiter.record_failure(user);
        return Err(WebError::Forbidden("wrong user name or password".into()));
    }
    state.limiter.clear(user);
    let token = random_token();
    let expires = now_millis() + SESSION_LIFETIME.as_millis() as i64;
    state
        .catalog
        .create_session(&token_hash(&token), user, &random_token(), expires)
        .await?;
    Ok(token)
}

/// A real argon2id hash of a random password, checked against when the user is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| auth::hash_password(&random_token()).unwrap_or_default())
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if auth::cookie(&headers, LOGIN_COOKIE) != Some(form.csrf.as_str()) {
        return login_page(&next, Some("The login form expired; please try again."));
    }
    match open_session(&state, &form.user, &form.password).await {
        Ok(token) => {
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) =
                HeaderValue::from_str(&set_cookie(SESSION_COOKIE, &token, SESSION_LIFETIME))
            {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(error) => {
            let mut response = login_page(&next, Some(&error.to_string()));
            *response.status_mut() = error.status();
            response
        }
    }
}

#[derive(Deserialize)]
pub struct ApiLogin {
    user: String,
    password: String,
}

/// Script login: answers the session cookie and the CSRF token to send with writes.
pub async fn api_login(
    State(state): State<AppState>,
    Json(login): Json<ApiLogin>,
) -> Result<Response, WebError> {
    let token = open_session(&state, &login.user, &login.password).await?;
    let session = state
        .catalog
        .session(&token_hash(&token), now_millis())
        .await?
        .ok_or_else(|| WebError::Internal("the new session vanished".into()))?;
    let mut response = Json(json!({
        "user": session.user,
        "role": session.role,
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, &token, SESSION_LIFETIME))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

pub async fn logout(
    State(state): State<AppState>,
    user: User,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let _: serde::de::IgnoredAny =
        crate::pages::body::write(&user, atelier_catalog::Role::Viewer, &headers, &body)?;
    if let Some(token) = auth::cookie(&headers, SESSION_COOKIE) {
        state.catalog.delete_session(&token_hash(token)).await?;
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie(SESSION_COOKIE, "", Duration::ZERO)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}
