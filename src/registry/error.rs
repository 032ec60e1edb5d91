//! What can go wrong talking to a registry. Every variant names the image as the matrix or the
//! payload names it (`reference`) and, when the request went elsewhere (a mirror), where it went
//! (`tried`). No variant ever holds a credential.

use std::path::PathBuf;

use miette::Diagnostic;

/// A registry, network or authentication failure (exit code 4).
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum RegistryError {
    #[error("`{reference}` was not found{}: {said}", via(tried))]
    #[diagnostic(
        code(driver_matrix::registry::not_found),
        help("check the reference; a mirror must hold every image of the payload by digest")
    )]
    NotFound {
        reference: String,
        tried: String,
        said: String,
    },

    #[error("registry refused `{reference}`{} (HTTP {status}): {said}", via(tried))]
    #[diagnostic(code(driver_matrix::registry::unauthorized), help("{help}"))]
    Unauthorized {
        reference: String,
        tried: String,
        status: u16,
        said: String,
        help: String,
    },

    #[error(
        "registry failed on `{reference}`{} (HTTP {status}): {said}",
        via(tried)
    )]
    #[diagnostic(
        code(driver_matrix::registry::status),
        help("the registry answered with an error; retry later, or check the reference")
    )]
    Status {
        reference: String,
        tried: String,
        status: u16,
        said: String,
    },

    #[error("cannot reach the registry for `{reference}`{}: {message}", via(tried))]
    #[diagnostic(
        code(driver_matrix::registry::network),
        help(
            "check the network and the registry host; hosts serving plain HTTP need `insecure = true` under `[registries.\"HOST\"]`"
        )
    )]
    Network {
        reference: String,
        tried: String,
        message: String,
    },

    #[error(
        "`{reference}` has digest `{actual}`, expected `{expected}`{}",
        via(tried)
    )]
    #[diagnostic(
        code(driver_matrix::registry::digest_mismatch),
        help(
            "the registry or a proxy served other content than asked for; the content was not used"
        )
    )]
    DigestMismatch {
        reference: String,
        tried: String,
        expected: String,
        actual: String,
    },

    #[error("`{reference}` is malformed{}: {message}", via(tried))]
    #[diagnostic(code(driver_matrix::registry::malformed))]
    Malformed {
        reference: String,
        tried: String,
        message: String,
    },

    #[error("`{reference}` has no image for platform `{platform}`; it offers: {offered}")]
    #[diagnostic(
        code(driver_matrix::registry::no_platform),
        help("drop this arch from the matrix, or use a payload built for it")
    )]
    NoPlatform {
        reference: String,
        platform: String,
        offered: String,
    },

    #[error("cannot use credentials file `{path}`: {message}")]
    #[diagnostic(
        code(driver_matrix::registry::authfile),
        help("pass a containers auth.json or a docker config.json with `--authfile`")
    )]
    AuthFile { path: PathBuf, message: String },

    #[error(
        "refused to send credentials for `{reference}` to `{realm}`: the registry names a token service on plain HTTP"
    )]
    #[diagnostic(
        code(driver_matrix::registry::insecure_realm),
        help(
            "credentials go over plain HTTP only to hosts marked `insecure = true` under `[registries.\"{host}\"]`; fix the registry's token realm, or mark that host if it really is trusted"
        )
    )]
    InsecureRealm {
        reference: String,
        realm: String,
        host: String,
    },

    #[error("cannot use the CA certificates in `{path}`: {message}")]
    #[diagnostic(
        code(driver_matrix::registry::certificate),
        help(
            "certificate directories (`/etc/containers/certs.d/HOST/`, or `--cert-dir`) hold PEM CA certificates named `*.crt`"
        )
    )]
    Certificate { path: PathBuf, message: String },

    #[error("cannot start the registry client: {message}")]
    #[diagnostic(code(driver_matrix::registry::client))]
    Client { message: String },
}

/// ` via `URL`` when the request went somewhere else than the reference says (a mirror).
fn via(tried: &str) -> String {
    if tried.is_empty() {
        String::new()
    } else {
        format!(" (tried `{tried}`)")
    }
}

impl RegistryError {
    /// Whether the registry said the content does not exist (as opposed to failing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}
