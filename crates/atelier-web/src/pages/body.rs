//! Write requests arrive as HTML forms (urlencoded) or as JSON from scripts; [`write`] checks
//! who may make them and reads either into the same struct, so each write has one handler.

use atelier_catalog::Role;
use axum::body::Bytes;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::auth::User;
use crate::error::WebError;

/// A write's body as `T`, once `user` is known to hold `role` and the request carries the
/// session's CSRF token (header `X-CSRF-Token`, or the form's `csrf` field). The role is checked
/// before the body is read, so a viewer learns that first rather than a field error.
pub fn write<T: DeserializeOwned>(
    user: &User,
    role: Role,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, WebError> {
    user.require(role)?;
    let value = read(headers, body)?;
    user.check_csrf(headers, value.get("csrf").and_then(|v| v.as_str()))?;
    into::<T>(value)
}

fn into<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, WebError> {
    serde_json::from_value(value).map_err(|e| {
        WebError::BadRequest(format!("the request is missing or has a bad field: {e}"))
    })
}

/// The body as a JSON value; a form becomes an object of strings, an empty body `{}`.
fn read(headers: &HeaderMap, body: &Bytes) -> Result<serde_json::Value, WebError> {
    if body.is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let value = if is_json {
        serde_json::from_slice(body)
            .map_err(|e| WebError::BadRequest(format!("the JSON body is not valid: {e}")))?
    } else {
        let text = std::str::from_utf8(body)
            .map_err(|_| WebError::BadRequest("the form body is not UTF-8".into()))?;
        let mut fields = serde_json::Map::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            fields.insert(
                percent_decode(key)?,
                serde_json::Value::String(percent_decode(value)?),
            );
        }
        serde_json::Value::Object(fields)
    };
    Ok(value)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(text: &str) -> Result<String, WebError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                let byte = u8::from_str_radix(hex, 16)
                    .map_err(|_| WebError::BadRequest(format!("bad escape %{hex} in the form")))?;
                out.push(byte);
                i += 2;
            }
            b'%' => {
                return Err(WebError::BadRequest(
                    "truncated % escape in the form".into(),
                ));
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| WebError::BadRequest("the form is not UTF-8".into()))
}

/// Optional numbers in forms arrive as strings ("" for none): reads both forms and JSON.
pub mod loose {
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText<T> {
        Number(T),
        Text(String),
        Null,
    }

    /// A number, its text, or nothing ("", null, absent).
    fn optional<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: Deserialize<'de> + FromStr,
        D: Deserializer<'de>,
    {
        match Option::<NumberOrText<T>>::deserialize(d)? {
            None | Some(NumberOrText::Null) => Ok(None),
            Some(NumberOrText::Number(n)) => Ok(Some(n)),
            Some(NumberOrText::Text(t)) if t.trim().is_empty() => Ok(None),
            Some(NumberOrText::Text(t)) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a number"))),
        }
    }

    pub fn optional_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        optional(d)
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        optional_i64(d)?.ok_or_else(|| serde::de::Error::custom("a number is required"))
    }

    pub fn optional_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        optional(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, WebError> {
        into(read(headers, body)?)
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Edit {
        label: String,
        #[serde(deserialize_with = "loose::i64")]
        version: i64,
        #[serde(default, deserialize_with = "loose::optional_i64")]
        run: Option<i64>,
    }

    #[test]
    fn forms_and_json_read_the_same() {
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let from_form: Edit =
            parse(&form, &Bytes::from("label=a-line+%26+co&version=3&run=")).unwrap();
        let mut json = HeaderMap::new();
        json.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let from_json: Edit = parse(
            &json,
            &Bytes::from(r#"{"label":"a-line & co","version":3}"#),
        )
        .unwrap();
        assert_eq!(from_form, from_json);
        assert_eq!(from_form.run, None);
        assert!(parse::<Edit>(&form, &Bytes::from("label=x&version=%G1")).is_err());
        assert!(parse::<Edit>(&form, &Bytes::from("label=x&version=%4")).is_err());
        assert!(parse::<Edit>(&form, &Bytes::from("label=x")).is_err());
    }
}
