//! Reading response bodies: whole, each under a cap (so a hostile or broken server cannot make
//! the client buffer gigabytes), and what an error body says.

use reqwest::{Response, StatusCode};

use super::error::RegistryError;
use super::route::{Route, describe};

/// The most of an error body read (for its message); real ones are a few hundred bytes.
pub(crate) const ERROR_BODY_CAP: usize = 64 << 10;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The connection broke or timed out; another try may fix it.
    Broken(String),
    /// More than the cap; the rest was not read.
    TooLarge,
}

/// Reads a whole body, holding at most `cap` bytes: a bigger one is refused as soon as the
/// cap is passed, so a hostile or broken server cannot make the client buffer gigabytes.
pub(crate) async fn read_body(mut resp: Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Broken(describe(&e)))?
    {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What an error answer says: its body, read up to [`ERROR_BODY_CAP`]. A bigger body is an
/// error naming the URL and the cap; one that breaks says nothing.
pub(crate) async fn error_body(
    route: &Route,
    url: &str,
    resp: Response,
) -> Result<Vec<u8>, RegistryError> {
    let status = resp.status();
    match read_body(resp, ERROR_BODY_CAP).await {
        Ok(body) => Ok(body),
        Err(BodyError::Broken(_)) => Ok(Vec::new()),
        Err(BodyError::TooLarge) => Err(too_large(route, url, status, ERROR_BODY_CAP)),
    }
}

/// A body over its cap, not read further.
pub(crate) fn too_large(route: &Route, url: &str, status: StatusCode, cap: usize) -> RegistryError {
    RegistryError::Malformed {
        reference: route.source.to_string(),
        tried: url.to_string(),
        message: format!(
            "the body of the HTTP {} answer is larger than {}; it was not read further",
            status.as_u16(),
            bytes_text(cap)
        ),
    }
}

/// `8 MiB`, `64 KiB`: a cap as people write it.
pub(crate) fn bytes_text(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// What the registry said in an error body: `CODE: message` from the distribution error JSON,
/// else the start of the text.
pub(crate) fn error_summary(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Errors>(body)
        && !e.errors.is_empty()
    {
        return e
            .errors
            .iter()
            .map(|i| format!("{}: {}", i.code, i.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
    let text = text.trim();
    if text.is_empty() {
        "no details".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarizes_registry_errors() {
        assert_eq!(
            error_summary(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(error_summary(b""), "no details");
    }

    #[test]
    fn caps_read_as_people_write_them() {
        assert_eq!(bytes_text(8 << 20), "8 MiB");
        assert_eq!(bytes_text(64 << 10), "64 KiB");
        assert_eq!(bytes_text(1000), "1000 bytes");
    }
}
