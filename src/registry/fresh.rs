//! Is a locked image still there? A job is fresh when the plan says so (same inputs, same
//! reference) and the registry still serves the locked digest: [`has_digest`] asks the native
//! registry client, one `HEAD` of the manifest by digest, no process per check. `build` asks
//! it of each job the plan calls fresh, `resolve` of each locked image before it keeps it.

use super::{Client, RegistryError};
use crate::domain::{Digest, ImageRef};

/// Why the registry could not say whether an image exists.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot check `{image}` in the registry")]
#[diagnostic(
    code(driver_matrix::build::registry),
    help(
        "check that the registry is reachable and that the authfile holds credentials for it; `--offline` trusts the lock instead"
    )
)]
pub struct StoreError {
    pub image: String,
    #[source]
    pub cause: Box<RegistryError>,
}

/// Whether `image`'s repository holds a manifest with `digest`: a repository or manifest the
/// registry does not know is `false`, any other failure an error.
pub fn has_digest(client: &Client, image: &ImageRef, digest: &Digest) -> Result<bool, StoreError> {
    let pinned = image.with_digest(digest.clone());
    match client.head_manifest(&pinned) {
        Ok(found) => Ok(found.is_some()),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(StoreError {
            image: pinned.to_string(),
            cause: Box::new(e),
        }),
    }
}
