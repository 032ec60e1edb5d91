//! `collect`: the `[[image]]` part of the lock from the registry alone. For each planned job
//! it reads the image its tag names and accepts it when
//! - its `io.driver-matrix.inputs` label equals the job's inputs hash, or, where the lock kept
//!   an older DTK of the same kernel (the contract's DTK rule), when its `io.driver-matrix.dtk`
//!   label names the DTK of a release the job serves and the job's inputs hash recomputed with
//!   that DTK equals the label; and
//! - its modules, read back, were built for the job's kernel and satisfy the driver's signing
//!   rule (the rules `build` applies before recording an image; see [`super::build::confirm`]).
//!
//! This is what joins shards that ran on machines sharing nothing but the registry, and the
//! reference an incremental lock must equal.

use super::{Planned, Session};
use crate::buildah::command::label;
use crate::domain::ImageRef;
use crate::lock::{Lock, LockedImage};
use crate::plan::{self, Job};
use crate::registry::{Client, RegistryError};

/// Why a planned job has no image in the registry that `collect` can accept.
#[derive(Debug, thiserror::Error)]
pub enum Unmatched {
    #[error("the tag does not exist")]
    NoTag,
    /// The tag names an image built from other inputs (an older build, or another matrix).
    #[error("the tag holds an image built from other inputs ({found})")]
    OtherInputs { found: String },
    #[error("the tag holds an image without driver-matrix labels")]
    NoLabels,
    /// The image's modules do not confirm the job's kernel or the driver's signing rule, or
    /// could not be read back.
    #[error(transparent)]
    Unconfirmed(#[from] super::build::Unconfirmed),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl Unmatched {
    /// A registry failure, as opposed to a registry that answered without a usable image.
    pub fn is_registry(&self) -> bool {
        matches!(
            self,
            Unmatched::Registry(_) | Unmatched::Unconfirmed(super::build::Unconfirmed::Registry(_))
        )
    }
}

/// The lock `collect` writes: the releases as resolved, and every image it accepts; and, in
/// plan order, the jobs it found no image for. When the registry failed for any job, nothing:
/// a lock written then would miss images only because of it, so the old one stays.
pub fn collect<'p>(
    session: &Session,
    planned: &'p Planned,
) -> crate::error::Result<(Lock, Vec<(&'p Job, Unmatched)>)> {
    let client = session.client()?;
    let results: Vec<Result<LockedImage, Unmatched>> =
        crate::parallel::map(&planned.plan.jobs, crate::parallel::NETWORK, |j| {
            collect_job(client, session, planned, j)
        });
    let mut lock = Lock {
        releases: planned.resolution.releases.clone(),
        images: Vec::new(),
    };
    let mut missing = Vec::new();
    for (job, result) in planned.plan.jobs.iter().zip(results) {
        match result {
            Ok(image) => lock.images.push(image),
            Err(why) => missing.push((job, why)),
        }
    }
    let failed: Vec<String> = missing
        .iter()
        .filter(|(_, why)| why.is_registry())
        .map(|(job, why)| format!("{}: {}", job.id(), crate::text::one_line(why)))
        .collect();
    if !failed.is_empty() {
        return Err(crate::error::Error::Collect { failed });
    }
    lock.canonicalize();
    Ok((lock, missing))
}

/// Looks up one job's image.
fn collect_job(
    client: &Client,
    session: &Session,
    planned: &Planned,
    job: &Job,
) -> Result<LockedImage, Unmatched> {
    let manifest = match client.manifest(&job.image, job.arch) {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Err(Unmatched::NoTag),
        Err(e) => return Err(e.into()),
    };
    let found = client.config_labels(&job.image, &manifest)?;
    let inputs = found.get(label::INPUTS).ok_or(Unmatched::NoLabels)?;
    let mut image = job.locked(manifest.digest.clone());
    if inputs.as_str() != job.inputs.as_str() {
        let dtk = found
            .get(label::DTK)
            .and_then(|d| d.parse::<ImageRef>().ok());
        match dtk.and_then(|d| other_dtk(session, planned, job, &d).map(|i| (d, i))) {
            Some((dtk, recomputed)) if recomputed.as_str() == inputs.as_str() => {
                image.dtk = dtk;
                image.inputs = recomputed;
            }
            _ => {
                return Err(Unmatched::OtherInputs {
                    found: inputs.escape_debug().to_string(),
                });
            }
        }
    }
    // The manifest read by tag is the image's, by digest: its layers are read back as they are.
    super::build::confirm_manifest(client, &session.cache(), &session.matrix, &image, &manifest)?;
    Ok(image)
}

/// The job's inputs hash recomputed with `dtk`, when `dtk` is the DTK of one of the releases
/// the job serves.
fn other_dtk(
    session: &Session,
    planned: &Planned,
    job: &Job,
    dtk: &ImageRef,
) -> Option<crate::domain::Digest> {
    let release = planned
        .resolution
        .releases
        .iter()
        .find(|r| r.arch == job.arch && &r.dtk == dtk && job.releases.contains(&r.version))?;
    let driver = session.matrix.driver(&job.driver)?;
    let context = planned.contexts.get(&job.driver)?;
    Some(plan::inputs_with_dtk(
        driver,
        context,
        job,
        dtk,
        &release.rhel,
    ))
}
