//! OpenShift release resolution: release payload → Driver Toolkit → kernel, and the update
//! graph that channels expand through.
//!
//! ```text
//! graph (channels) ─┐
//! exact versions ───┴▶ payload manifest ─▶ payload layers ─▶ image-references ─▶ DTK manifest
//!                      (cache hit: stop)                                       ─▶ DTK layers
//!                                                                              ─▶ LockedRelease
//! ```
//!
//! No fact comes from bytes that were not checked against their digest, with one named
//! exception. Manifests are fetched by digest and hashed; the payload layer holding
//! `image-references` and `release-metadata` is read to its end and its digest checked before
//! either file is parsed; the DTK must be named by digest. The DTK's release file, when it sits
//! near the start of a large (squashed) layer, is read from a prefix (reading the whole layer
//! would cost a gigabyte) and used only when the nodes' kernel, read from the OS image's
//! verified config, confirms it; otherwise that layer is read whole after all (see [`dtk`]).
//! The cache holds only what was read whole (see [`cache`]). Everything else reads the least
//! the formats allow (see [`layer`]).

pub mod cache;
pub mod cache_key;
pub mod dtk;
pub mod graph;
mod inflate;
pub mod layer;
pub mod os;
pub mod payload;
mod resolver;

pub use cache::{Cache, DtkEntry, How, PayloadEntry, StreamEntry, Verified};
pub use resolver::{Resolver, Target};

use crate::domain::{Arch, ImageRef, Version};
use crate::registry::{BlobReader, Descriptor, RegistryError};

/// Why one release could not be resolved; the resolver turns it into a [`ReleaseError`] that
/// names the release.
#[derive(Debug)]
pub enum Fault {
    Registry(RegistryError),
    Content(String),
    NoDriverToolkit,
    /// The payload names its DTK by tag, not by digest.
    DtkByTag(String),
    Layer {
        image: String,
        layer: String,
        error: layer::LayerError,
    },
}

impl From<RegistryError> for Fault {
    fn from(e: RegistryError) -> Self {
        Fault::Registry(e)
    }
}

impl Fault {
    fn layer(image: &ImageRef, desc: &Descriptor, error: layer::LayerError) -> Self {
        Fault::Layer {
            image: image.to_string(),
            layer: desc.digest.to_string(),
            error,
        }
    }
}

/// Reads what is left of `blob` (in as few range requests as the reader allows) so that its
/// digest is checked. Callers use nothing read from a layer before this returns `Ok`.
fn verify_rest(blob: &mut BlobReader, image: &ImageRef, desc: &Descriptor) -> Result<(), Fault> {
    blob.hint()
        .store(desc.size, std::sync::atomic::Ordering::Relaxed);
    blob.finish()
        .map_err(|e| Fault::layer(image, desc, layer::LayerError::Read(e)))?;
    if blob.verified() {
        Ok(())
    } else {
        // `finish` after an earlier failure returns early without a check: never trust that.
        Err(Fault::layer(
            image,
            desc,
            layer::LayerError::Read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the layer could not be read to its end and checked",
            )),
        ))
    }
}

/// A release that could not be resolved, or an update graph that could not be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ReleaseError {
    #[error("cannot resolve release {release}: {error}")]
    #[diagnostic(forward(error))]
    Registry {
        release: String,
        error: Box<RegistryError>,
    },

    #[error("release {release}: the payload `{payload}` names no `driver-toolkit` image")]
    #[diagnostic(
        code(driver_matrix::release::no_dtk),
        help(
            "releases before OpenShift 4.6 ship no Driver Toolkit; drop this release from the matrix"
        )
    )]
    NoDriverToolkit { release: String, payload: String },

    #[error(
        "release {release}: the payload `{payload}` names its Driver Toolkit by tag, `{reference}`, not by digest"
    )]
    #[diagnostic(
        code(driver_matrix::release::dtk_by_tag),
        help(
            "a tag can be moved to other content, so it cannot say what the release ships; real payloads name every image `@sha256:`. This payload was not made by `oc adm release new`: check `payload-repo`"
        )
    )]
    DtkByTag {
        release: String,
        payload: String,
        reference: String,
    },

    #[error("release {release}: layer `{layer}` of `{image}` does not match its digest: {message}")]
    #[diagnostic(
        code(driver_matrix::release::digest_mismatch),
        help(
            "the registry or a mirror served other bytes than the digest names; nothing read from them was used or cached. Check the mirror, then run again"
        )
    )]
    LayerDigest {
        release: String,
        image: String,
        layer: String,
        message: String,
    },

    #[error("release {release}: {message} (in `{image}`)")]
    #[diagnostic(
        code(driver_matrix::release::content),
        help(
            "the image is not a release payload or Driver Toolkit of a known format; check `payload-repo` and the version"
        )
    )]
    Content {
        release: String,
        image: String,
        message: String,
    },

    #[error("release {release}: cannot read layer `{layer}` of `{image}`")]
    #[diagnostic(code(driver_matrix::release::layer))]
    Layer {
        release: String,
        image: String,
        layer: String,
        #[source]
        error: layer::LayerError,
    },

    #[error("cannot read channel `{channel}` ({arch}) from the update graph: {error}")]
    #[diagnostic(forward(error))]
    Graph {
        channel: String,
        arch: Arch,
        error: Box<RegistryError>,
    },

    #[error("the update graph answer for channel `{channel}` is malformed: {message}")]
    #[diagnostic(code(driver_matrix::release::graph_format))]
    GraphFormat { channel: String, message: String },

    /// A release the payload repository has no tag for: not worth a retry.
    #[error(transparent)]
    #[diagnostic(transparent)]
    UnknownRelease(Box<UnknownRelease>),

    /// A channel the update graph does not know, or that offers no release of its minor.
    #[error(transparent)]
    #[diagnostic(transparent)]
    UnknownChannel(Box<UnknownChannel>),

    #[error("release {release} is neither in the lock nor in the cache")]
    #[diagnostic(
        code(driver_matrix::release::offline),
        help("run `driver-matrix resolve` without `--offline` once to resolve it")
    )]
    Offline { release: String },
}

/// A release the payload repository has no tag for: the matrix names a version that does not
/// exist (or not for this arch).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("release `{version}` ({arch}) does not exist: `{asked}` has no tag `{tag}`")]
#[diagnostic(code(driver_matrix::release::unknown), help("{help}"))]
pub struct UnknownRelease {
    pub version: String,
    pub arch: Arch,
    /// `host/repository` actually asked (the mirror's when there is one).
    pub asked: String,
    pub tag: String,
    pub help: String,
    #[source_code]
    pub matrix: Option<std::sync::Arc<miette::NamedSource<String>>>,
    #[label("no such release")]
    pub span: Option<miette::SourceSpan>,
}

/// A channel the update graph does not know, or that offers no release of its own minor.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("channel `{channel}` ({arch}) is not in the update graph `{url}`: {said}")]
#[diagnostic(code(driver_matrix::release::unknown_channel), help("{help}"))]
pub struct UnknownChannel {
    pub channel: String,
    pub arch: Arch,
    pub url: String,
    pub said: String,
    pub help: String,
    #[source_code]
    pub matrix: Option<std::sync::Arc<miette::NamedSource<String>>>,
    #[label("unknown channel")]
    pub span: Option<miette::SourceSpan>,
}

impl ReleaseError {
    pub(crate) fn from_fault(version: &Version, arch: Arch, payload: &ImageRef, f: Fault) -> Self {
        let release = format!("{version} ({arch})");
        match f {
            Fault::Registry(error) => ReleaseError::Registry {
                release,
                error: Box::new(error),
            },
            Fault::NoDriverToolkit => ReleaseError::NoDriverToolkit {
                release,
                payload: payload.to_string(),
            },
            Fault::DtkByTag(reference) => ReleaseError::DtkByTag {
                release,
                payload: payload.to_string(),
                reference,
            },
            Fault::Layer {
                image,
                layer: l,
                error: layer::LayerError::Read(e),
            } if e.kind() == std::io::ErrorKind::InvalidData
                && crate::registry::TransferError::is_transfer(&e) =>
            {
                ReleaseError::LayerDigest {
                    release,
                    image,
                    layer: l,
                    message: e.to_string(),
                }
            }
            Fault::Content(message) => ReleaseError::Content {
                release,
                image: payload.to_string(),
                message,
            },
            Fault::Layer {
                image,
                layer: l,
                error,
            } => ReleaseError::Layer {
                release,
                image,
                layer: l,
                error,
            },
        }
    }
}
