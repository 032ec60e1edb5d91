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
//! Everything reads the least the formats allow (see [`layer`]); results are cached by payload
//! manifest digest (see [`cache`]). A layer that is deliberately not read to its end cannot be
//! digest-verified: the payload's last layer is abandoned right after `release-metadata`, and a
//! DTK layer right after its release file unless little of it is left. Everything read to the
//! end (manifests, configs, skipped layers, small DTK top layers) is verified.

pub mod cache;
pub mod dtk;
pub mod graph;
mod inflate;
pub mod layer;
pub mod payload;
mod resolver;

pub use cache::Cache;
pub use resolver::{Event, Progress, Resolver, Target};

use crate::domain::{Arch, ImageRef, Version};
use crate::error::exit;
use crate::registry::{Descriptor, RegistryError};

/// Why one release could not be resolved; the resolver turns it into a [`ReleaseError`] that
/// names the release.
#[derive(Debug)]
pub enum Fault {
    Registry(RegistryError),
    Content(String),
    NoDriverToolkit,
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

    #[error("release {release}: cannot read layer `{layer}` of `{image}`: {message}")]
    #[diagnostic(code(driver_matrix::release::layer))]
    Layer {
        release: String,
        image: String,
        layer: String,
        message: String,
        /// A transfer failure (as opposed to bad content).
        network: bool,
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

    #[error("release {release} is neither in the lock nor in the cache")]
    #[diagnostic(
        code(driver_matrix::release::offline),
        help("run `driver-matrix resolve` without `--offline` once to resolve it")
    )]
    Offline { release: String },
}

impl ReleaseError {
    /// 4 for registry, network and authentication failures; 1 for content that is not what a
    /// release payload or DTK should hold; 2 for what `--offline` cannot know.
    pub fn exit_code(&self) -> i32 {
        match self {
            ReleaseError::Registry { .. } | ReleaseError::Graph { .. } => exit::REGISTRY,
            ReleaseError::Layer { network: true, .. } => exit::REGISTRY,
            ReleaseError::Offline { .. } => exit::USAGE,
            _ => exit::FAILED,
        }
    }

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
                network: matches!(error, layer::LayerError::Read(_)),
                message: error.to_string(),
            },
        }
    }
}
