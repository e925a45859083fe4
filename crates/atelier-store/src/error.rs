//! The store's errors: each says what went wrong with which store, model or part, and what to
//! do about it. Transport failures are classified here, once, so that callers never see a raw
//! HTTP error for a store that is down or refuses the credentials.

use std::path::PathBuf;

use object_store::client::{HttpError, HttpErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("--store {url}: {reason}")]
    BadUrl { url: String, reason: String },

    #[error("model reference `{reference}`: {reason}")]
    BadReference { reference: String, reason: String },

    #[error("{what} in {store}{hint}")]
    NotFound {
        store: String,
        what: String,
        hint: String,
    },

    #[error(
        "the model store {store} is unreachable ({detail}); gave up after retrying. Is the \
         server running, and are --store and AWS_ENDPOINT_URL right?"
    )]
    Unavailable { store: String, detail: String },

    #[error(
        "the model store {store} refused access ({detail}): check AWS_ACCESS_KEY_ID, \
         AWS_SECRET_ACCESS_KEY and AWS_REGION, and that they may read and write the bucket"
    )]
    Denied { store: String, detail: String },

    #[error(
        "{model}: part {part} {detail}; the stored copy was truncated or altered after \
         publishing. Publish the model again (or pull another version)"
    )]
    Corrupt {
        model: String,
        part: String,
        detail: String,
    },

    /// The store's state forbids the request until the user changes it (e.g. a tag points
    /// at the version to remove).
    #[error("{model}: {reason}")]
    Refused { model: String, reason: String },

    #[error("{model}: {reason}")]
    Conflict { model: String, reason: String },

    #[error("{}: {reason}", path.display())]
    InvalidFolder { path: PathBuf, reason: String },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{store}: {operation} failed: {detail}")]
    Backend {
        store: String,
        operation: String,
        detail: String,
        #[source]
        source: Box<object_store::Error>,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the user's input or configuration is at fault (the fix is theirs), as opposed
    /// to the store or the network.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StoreError::BadUrl { .. }
                | StoreError::BadReference { .. }
                | StoreError::NotFound { .. }
                | StoreError::Denied { .. }
                | StoreError::Refused { .. }
                | StoreError::Corrupt { .. }
                | StoreError::InvalidFolder { .. }
        )
    }

    /// Classifies an object-store failure: connection problems and refusals get their own
    /// variants; everything else keeps the operation and the source.
    pub(crate) fn backend(store: &str, operation: &str, source: object_store::Error) -> Self {
        use object_store::Error as E;
        match &source {
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                return StoreError::Denied {
                    store: store.to_string(),
                    detail: short_cause(&source),
                };
            }
            _ => {}
        }
        if let Some(kind) = transport_kind(&source) {
            let what = match kind {
                HttpErrorKind::Connect => "cannot connect",
                HttpErrorKind::Timeout => "timed out",
                HttpErrorKind::Interrupted => "connection dropped",
                _ => "request failed",
            };
            return StoreError::Unavailable {
                store: store.to_string(),
                detail: format!("{what} during {operation}: {}", short_cause(&source)),
            };
        }
        let detail = short_cause(&source);
        // Listings come back as generic errors whatever the status; S3's code says it all.
        let code = detail.split(':').next().unwrap_or_default();
        if DENIED_CODES.contains(&code) {
            return StoreError::Denied {
                store: store.to_string(),
                detail,
            };
        }
        StoreError::Backend {
            store: store.to_string(),
            operation: operation.to_string(),
            detail,
            source: Box::new(source),
        }
    }

    /// Whether the server answered with this S3 error code (e.g. `NoSuchBucket`).
    pub(crate) fn has_code(&self, code: &str) -> bool {
        match self {
            StoreError::Backend { detail, .. } => {
                detail == code || detail.starts_with(&format!("{code}:"))
            }
            _ => false,
        }
    }
}

/// S3 error codes that mean "these credentials may not do this".
const DENIED_CODES: [&str; 7] = [
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "AllAccessDisabled",
];

/// The kind of the transport error somewhere in `error`'s chain of causes, if any.
fn transport_kind(error: &(dyn std::error::Error + 'static)) -> Option<HttpErrorKind> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        current = e.source();
    }
    None
}

/// The innermost cause's message: the part a person can act on ("Connection refused",
/// "InvalidAccessKeyId"), without the wrapping layers' repetition.
fn short_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() {
            last = text;
        }
        current = e.source();
    }
    // S3 error bodies are XML; keep the code and message, not the whole document.
    if let (Some(code), message) = (xml_field(&last, "Code"), xml_field(&last, "Message")) {
        return match message {
            Some(message) => format!("{code}: {message}"),
            None => code,
        };
    }
    last
}

fn xml_field(text: &str, field: &str) -> Option<String> {
    let open = format!("<{field}>");
    let close = format!("</{field}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(text[start..end].to_string())
}

pub type StoreResult<T = ()> = Result<T, StoreError>;
