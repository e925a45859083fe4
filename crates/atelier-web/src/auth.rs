//! Who is asking: argon2 password hashes, session cookies, CSRF tokens, roles, and the
//! failed-login limiter.
//!
//! A session is a random token in an HttpOnly, SameSite=Strict cookie; the catalogue stores
//! only its SHA-256, so a copy of the database cannot be replayed as a login. Each session has
//! its own random CSRF token, which every write must echo (form field `csrf` or header
//! `X-CSRF-Token`): SameSite already stops most cross-site posts, the token stops the rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
pub use atelier_catalog::now_millis;
use atelier_catalog::{Role, SessionRecord};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::WebError;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "atelier_session";
/// Name of the cookie that carries the login form's CSRF token (double submit: there is no
/// session yet to hold it).
pub const LOGIN_COOKIE: &str = "atelier_login";
/// Header that carries the CSRF token on script (JSON) writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// An argon2id hash (PHC string, salt included) of `password`.
pub fn hash_password(password: &str) -> Result<String, WebError> {
    if password.chars().count() < 8 {
        return Err(WebError::BadRequest(
            "a password needs at least 8 characters".into(),
        ));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| WebError::Internal(format!("cannot encode a password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| WebError::Internal(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the stored PHC string `hash` (false for a malformed hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh random token: 32 bytes as lowercase hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the catalogue stores for a session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value for a cookie scripts cannot read and other sites never send.
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

/// The logged-in user of a request. Extracting it fails with 401 when there is no valid
/// session (pages turn that into a redirect to the login form).
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub csrf_token: String,
}

impl User {
    /// Refuses users below `role`.
    pub fn require(&self, role: Role) -> Result<(), WebError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(WebError::Forbidden(format!(
                "{} is a {}; this needs the {} role (ask an admin)",
                self.name, self.role, role
            )))
        }
    }

    /// Refuses a write whose CSRF token (header, or the form's `csrf` field) is missing or
    /// not this session's.
    pub fn check_csrf(
        &self,
        headers: &HeaderMap,
        form_token: Option<&str>,
    ) -> Result<(), WebError> {
        let sent = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(form_token);
        match sent {
            Some(token) if constant_time_eq(token.as_bytes(), self.csrf_token.as_bytes()) => Ok(()),
            _ => Err(WebError::Forbidden(
                "missing or stale CSRF token: reload the page and try again".into(),
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<AppState> for User {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(WebError::Unauthenticated)?;
        let session: SessionRecord = state
            .catalog
            .session(&token_hash(token), now_millis())
            .await?
            .ok_or(WebError::Unauthenticated)?;
        Ok(User {
            name: session.user,
            role: session.role,
            csrf_token: session.csrf_token,
        })
    }
}

/// Failed logins per user name within a sliding window; past the limit, logins for that name
/// are refused until the oldest failure leaves the window (the password is not even checked,
/// so guessing gets no faster by trying).
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
    pub max_failures: usize,
    pub window: Duration,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            max_failures: 5,
            window: Duration::from_secs(15 * 60),
        }
    }
}

impl LoginLimiter {
    /// Err with the seconds to wait when `user` has used up its failures.
    pub fn check(&self, user: &str) -> Result<(), WebError> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let recent = failures.entry(user.to_string()).or_default();
        recent.retain(|at| now.duration_since(*at) < self.window);
        if recent.len() >= self.max_failures {
            let wait = self.window - now.duration_since(recent[0]);
            return Err(WebError::RateLimited(wait.as_secs().max(1)));
        }
        Ok(())
    }

    pub fn record_failure(&self, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures
            .entry(user.to_string())
            .or_default()
            .push(Instant::now());
    }

    pub fn clear(&self, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsE"));
        assert!(!verify_password("not a hash", "correct horse"));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn the_limiter_blocks_after_max_failures_per_user() {
        let limiter = LoginLimiter {
            max_failures: 2,
            ..LoginLimiter::default()
        };
        limiter.record_failure("ann");
        assert!(limiter.check("ann").is_ok());
        limiter.record_failure("ann");
        assert!(matches!(
            limiter.check("ann"),
            Err(WebError::RateLimited(_))
        ));
        assert!(limiter.check("bob").is_ok());
        limiter.clear("ann");
        assert!(limiter.check("ann").is_ok());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=1; atelier_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
