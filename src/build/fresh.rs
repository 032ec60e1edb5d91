//! Is a locked image still there? A job is fresh when the plan says so (same inputs, same
//! reference) and the registry still serves the locked digest.
//!
//! The check sits behind [`ImageStore`]: `build` and `resolve` use the native registry client
//! (one `HEAD` per image). The `skopeo` implementation is not used by any command; it is kept
//! as the baseline `make bench` compares the native check with.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

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
    pub cause: Box<StoreCause>,
}

/// What failed while asking.
#[derive(Debug, thiserror::Error)]
pub enum StoreCause {
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
}

/// Where built images live.
pub trait ImageStore: Sync {
    /// Whether `image`'s repository holds a manifest with `digest`.
    fn has_digest(&self, image: &ImageRef, digest: &Digest) -> Result<bool, StoreError>;
}

/// Asks `skopeo inspect --raw` for the manifest by digest.
pub struct Skopeo {
    pub program: OsString,
    pub authfile: Option<PathBuf>,
    /// Hosts to reach without TLS verification (`insecure = true` in the matrix).
    pub insecure: BTreeSet<String>,
}

impl Skopeo {
    pub fn command(&self, image: &ImageRef, digest: &Digest) -> super::command::Invocation {
        let mut args: Vec<OsString> = vec!["inspect".into(), "--raw".into()];
        if let Some(a) = &self.authfile {
            args.push("--authfile".into());
            args.push(a.into());
        }
        if self.insecure.contains(image.registry()) {
            args.push("--tls-verify=false".into());
        }
        args.push(format!("docker://{}", image.with_digest(digest.clone())).into());
        super::command::Invocation {
            program: self.program.clone(),
            args,
            env: Vec::new(),
        }
    }
}

/// What distribution answers for a manifest or repository that is not there.
const MISSING: [&str; 3] = ["manifest unknown", "name unknown", "not found"];

impl ImageStore for Skopeo {
    fn has_digest(&self, image: &ImageRef, digest: &Digest) -> Result<bool, StoreError> {
        let inv = self.command(image, digest);
        let err = |cause| StoreError {
            image: image.with_digest(digest.clone()).to_string(),
            cause: Box::new(cause),
        };
        let out = inv
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|source| {
                err(StoreCause::Spawn {
                    command: inv.display(),
                    source,
                })
            })?;
        if out.status.success() {
            return Ok(true);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if MISSING.iter().any(|m| stderr.to_lowercase().contains(m)) {
            return Ok(false);
        }
        Err(err(StoreCause::Command {
            command: inv.display(),
            stderr: stderr.trim().to_string(),
        }))
    }
}

impl Default for Skopeo {
    fn default() -> Self {
        Skopeo {
            program: "skopeo".into(),
            authfile: None,
            insecure: BTreeSet::new(),
        }
    }
}

/// The native registry client: one `HEAD` of the manifest by digest, no process per check.
impl ImageStore for crate::registry::Client {
    fn has_digest(&self, image: &ImageRef, digest: &Digest) -> Result<bool, StoreError> {
        let pinned = image.with_digest(digest.clone());
        match self.head_manifest(&pinned) {
            Ok(found) => Ok(found.is_some()),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(StoreError {
                image: pinned.to_string(),
                cause: Box::new(e.into()),
            }),
        }
    }
}
