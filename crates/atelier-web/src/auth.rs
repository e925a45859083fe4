//! Who is asking: argon2 password hashes, session cookies, CSRF tokens, roles, the client's
//! address, and the signed cookie of a known device.
//!
//! A session is a random token in an HttpOnly, SameSite=Strict cookie (also `Secure` when the
//! app is served over HTTPS); the catalogue stores only its SHA-256, so a copy of the database
//! cannot be replayed as a login. Each session has its own random CSRF token, which every write
//! must echo (form field `csrf` or header `X-CSRF-Token`): SameSite already stops most
//! cross-site posts, the token stops the rest. The login limits are in [`crate::limits`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
pub use atelier_catalog::now_millis;
use atelier_catalog::{Role, SessionRecord};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::WebError;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "atelier_session";
/// Name of the cookie that carries the login form's CSRF token (double submit: there is no
/// session yet to hold it).
pub const LOGIN_COOKIE: &str = "atelier_login";
/// Name of the cookie that marks a browser where a user logged in before (see
/// [`DeviceKey`]).
pub const DEVICE_COOKIE: &str = "atelier_device";
/// Header that carries the CSRF token on script (JSON) writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after login.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long a browser stays a known device after its last login.
pub const DEVICE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// The catalogue setting that holds the device-cookie key.
const DEVICE_KEY_SETTING: &str = "web.device_cookie_key";

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
    verify_password_in(hash, password, &mut Vec::new())
}

/// [`verify_password`] with argon2's working memory (19 MiB with the default parameters) in
/// `memory`, grown as needed and kept for the next check: a thread that checks passwords all
/// day holds one block of memory instead of asking the allocator for a new one every time.
pub fn verify_password_in(hash: &str, password: &str, memory: &mut Vec<argon2::Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(parsed.algorithm),
        argon2::Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut computed,
            &mut memory[..blocks],
        )
        .is_ok()
        && constant_time_eq(&computed, expected.as_bytes())
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

/// A `Set-Cookie` value for a cookie scripts cannot read and other sites never send; `secure`
/// adds the flag that keeps browsers from sending it over plain HTTP.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// Whether cookies of this request are set `Secure`: always with `--secure-cookies`, and
/// behind a trusted proxy when it says the client came over HTTPS (`X-Forwarded-Proto`).
pub fn secure_cookies(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.secure_cookies
        || (state.config.behind_proxy
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https")))
}

/// The client's address: the socket's peer, or behind a trusted proxy (`--behind-proxy`) the
/// last address of `X-Forwarded-For` (the one the proxy added). Requests that come without a
/// socket (tests driving the router) count as 0.0.0.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let forwarded = state
            .config
            .behind_proxy
            .then(|| parts.headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|list| list.rsplit(',').next())
            .and_then(|last| last.trim().parse::<IpAddr>().ok());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(ClientAddress(
            forwarded
                .or(peer)
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// The key that signs device cookies: `user:nonce:HMAC-SHA-256(key, user:nonce)`. It is kept
/// in the catalogue (drawn once), so it survives restarts and is shared by every instance.
#[derive(Clone)]
pub struct DeviceKey([u8; 32]);

impl DeviceKey {
    /// The catalogue's key, drawn and stored by the first instance that asks.
    pub async fn load(catalog: &atelier_catalog::Catalog) -> Result<DeviceKey, WebError> {
        let stored = catalog
            .setting_or_insert(DEVICE_KEY_SETTING, &random_token())
            .await?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(stored.trim(), &mut key).map_err(|_| {
            WebError::Internal(format!(
                "the catalogue setting {DEVICE_KEY_SETTING} is not 64 hex digits"
            ))
        })?;
        Ok(DeviceKey(key))
    }

    fn mac(&self, user: &str, nonce: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(format!("{user}:{nonce}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// A fresh device cookie value for `user`.
    pub fn issue(&self, user: &str) -> String {
        let nonce = &random_token()[..32];
        format!("{user}:{nonce}:{}", self.mac(user, nonce))
    }

    /// The device id (its nonce) when `value` is a cookie this key signed for `user`.
    pub fn verify(&self, value: &str, user: &str) -> Option<String> {
        let mut parts = value.splitn(3, ':');
        let (owner, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        (owner == user && constant_time_eq(mac.as_bytes(), self.mac(user, nonce).as_bytes()))
            .then(|| nonce.to_string())
    }
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
        // argon2's own verifier agrees, with one working memory reused across checks.
        let mut memory = Vec::new();
        for (password, expected) in [("correct horse", true), ("wrong horse!", false)] {
            let parsed = PasswordHash::new(&hash).unwrap();
            let reference = argon2::password_hash::PasswordVerifier::verify_password(
                &Argon2::default(),
                password.as_bytes(),
                &parsed,
            )
            .is_ok();
            assert_eq!(reference, expected);
            assert_eq!(verify_password_in(&hash, password, &mut memory), expected);
        }
        assert_eq!(memory.len(), 19 * 1024, "19 MiB of 1 KiB blocks, kept");
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn device_cookies_verify_for_their_user_only() {
        let key = DeviceKey([7; 32]);
        let cookie = key.issue("ann");
        let device = key.verify(&cookie, "ann").unwrap();
        assert_eq!(device.len(), 32);
        assert_eq!(key.verify(&cookie, "bob"), None);
        assert_eq!(DeviceKey([8; 32]).verify(&cookie, "ann"), None);
        let forged = cookie.replacen("ann:", "ann:0", 1);
        assert_eq!(key.verify(&forged, "ann"), None);
        assert_eq!(key.verify("ann", "ann"), None);
    }

    #[test]
    fn cookies_are_secure_only_when_asked() {
        assert!(set_cookie("a", "b", Duration::from_secs(5), true).ends_with("; Secure"));
        assert!(!set_cookie("a", "b", Duration::from_secs(5), false).contains("Secure"));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", "a=1; atelier_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
