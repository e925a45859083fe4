//! Logging in and out. The form carries a CSRF token that must match a cookie set with the
//! form (there is no session yet to hold it); logins are limited per user name, client address
//! and known device ([`crate::limits`]); after login the browser goes back only to a path of
//! this site.

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
    self, ClientAddress, DEVICE_COOKIE, DEVICE_LIFETIME, LOGIN_COOKIE, SESSION_COOKIE,
    SESSION_LIFETIME, User, now_millis, random_token, secure_cookies, set_cookie, token_hash,
};
use crate::error::WebError;
use crate::limits::LoginKey;
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

/// Where to go after login: `next` when it is a path of this site, else the runs list. A path
/// starts with one `/` and is followed by no second `/` or `\\` (which browsers read as another
/// host), holds no control character or space (browsers drop tabs and newlines, turning `/\t/`
/// into `//`) and parses as a URI path.
fn safe_next(next: Option<&str>) -> String {
    const HOME: &str = "/runs";
    let Some(path) = next else {
        return HOME.to_string();
    };
    let bytes = path.as_bytes();
    let well_formed = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !bytes
            .iter()
            .any(|&b| b == b'\\' || b.is_ascii_control() || b == b' ' || !b.is_ascii())
        && path.parse::<axum::http::uri::PathAndQuery>().is_ok();
    if well_formed {
        path.to_string()
    } else {
        HOME.to_string()
    }
}

fn login_page(next: &str, error: Option<&str>, secure: bool) -> Response {
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
    append_cookie(
        &mut response,
        &set_cookie(LOGIN_COOKIE, &token, Duration::from_secs(3600), secure),
    );
    response
}

fn append_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    let secure = secure_cookies(&state, &headers);
    login_page(&safe_next(query.next.as_deref()), None, secure)
}

/// What a successful login hands the browser: the session token, and a fresh device cookie.
struct Opened {
    token: String,
    device_cookie: String,
}

/// Checks the password (within the login limits) and opens a session.
async fn open_session(
    state: &AppState,
    headers: &HeaderMap,
    address: ClientAddress,
    user: &str,
    password: &str,
) -> Result<Opened, WebError> {
    let device_key = state.device_key().await?;
    let device = auth::cookie(headers, DEVICE_COOKIE).and_then(|c| device_key.verify(c, user));
    let attempt = state
        .limiter
        .reserve_shared(&LoginKey {
            name: user.to_string(),
            address: address.0,
            device,
        })
        .await?;
    let record = state.catalog.user(user).await?;
    // An unknown user costs a hash verification too, so timing does not tell names apart.
    let hash = match &record {
        Some(record) => record.password_hash.clone(),
        None => dummy_hash().to_string(),
    };
    let matches = match state
        .limiter
        .check_password(hash, password.to_string())
        .await
    {
        Ok(matches) => matches,
        Err(error) => {
            attempt.abandon();
            return Err(error);
        }
    };
    if record.is_none() || !matches {
        attempt.failed();
        return Err(WebError::Forbidden("wrong user name or password".into()));
    }
    attempt.succeeded();
    let token = random_token();
    let expires = now_millis() + SESSION_LIFETIME.as_millis() as i64;
    state
        .catalog
        .create_session(&token_hash(&token), user, &random_token(), expires)
        .await?;
    Ok(Opened {
        token,
        device_cookie: device_key.issue(user),
    })
}

/// Sets the session and device cookies of a login on `response`.
fn set_login_cookies(response: &mut Response, opened: &Opened, secure: bool) {
    append_cookie(
        response,
        &set_cookie(SESSION_COOKIE, &opened.token, SESSION_LIFETIME, secure),
    );
    append_cookie(
        response,
        &set_cookie(
            DEVICE_COOKIE,
            &opened.device_cookie,
            DEVICE_LIFETIME,
            secure,
        ),
    );
}

/// A real argon2id hash of a random password, checked against when the user is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| auth::hash_password(&random_token()).unwrap_or_default())
}

pub async fn submit(
    State(state): State<AppState>,
    address: ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let secure = secure_cookies(&state, &headers);
    if auth::cookie(&headers, LOGIN_COOKIE) != Some(form.csrf.as_str()) {
        return login_page(
            &next,
            Some("The login form expired; please try again."),
            secure,
        );
    }
    match open_session(&state, &headers, address, &form.user, &form.password).await {
        Ok(opened) => {
            let mut response = Redirect::to(&next).into_response();
            set_login_cookies(&mut response, &opened, secure);
            response
        }
        Err(error) => {
            let status = error.status();
            let (message, wait) = match &error {
                WebError::RateLimited(seconds) | WebError::Busy(seconds) => {
                    (error.to_string(), Some(*seconds))
                }
                WebError::Forbidden(message) => (message.clone(), None),
                _ if status.is_server_error() => {
                    tracing::error!("login failed: {error}");
                    (
                        "the login could not be checked; please try again".into(),
                        None,
                    )
                }
                _ => (error.to_string(), None),
            };
            let mut response = login_page(&next, Some(&message), secure);
            *response.status_mut() = status;
            if let Some(value) = wait.and_then(|w| HeaderValue::from_str(&w.to_string()).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
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
    address: ClientAddress,
    headers: HeaderMap,
    Json(login): Json<ApiLogin>,
) -> Result<Response, WebError> {
    let opened = open_session(&state, &headers, address, &login.user, &login.password).await?;
    let session = state
        .catalog
        .session(&token_hash(&opened.token), now_millis())
        .await?
        .ok_or_else(|| WebError::Internal("the new session vanished".into()))?;
    let mut response = Json(json!({
        "user": session.user,
        "role": session.role,
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at,
    }))
    .into_response();
    set_login_cookies(&mut response, &opened, secure_cookies(&state, &headers));
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
    let secure = secure_cookies(&state, &headers);
    append_cookie(
        &mut response,
        &set_cookie(SESSION_COOKIE, "", Duration::ZERO, secure),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_of_this_site_are_followed() {
        for good in [
            "/runs/3",
            "/images/ab?run=2",
            "/runs/1/facets/neckline/review?kind=fn&label=v-neck",
        ] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for evil in [
            "//evil.example/",
            "/\\evil.example/",
            "/\t/evil.example",
            "/\n/evil.example",
            "/runs\r\nSet-Cookie: a=b",
            "https://evil.example/",
            "evil.example",
            "/ /evil.example",
            "/\u{0}x",
            "/é",
            "",
        ] {
            assert_eq!(
                safe_next(Some(evil)),
                "/runs",
                "{evil:?} must not be followed"
            );
        }
        assert_eq!(safe_next(None), "/runs");
    }
}
