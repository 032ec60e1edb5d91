//! `collect`: rebuilds the `[[image]]` part of the lock from the registry alone. For each
//! planned job it reads the tag's manifest and config labels and accepts the image only when
//! its `io.driver-matrix.inputs` label equals the job's inputs hash. This is what joins shards
//! that ran on machines sharing nothing but the registry.

use rayon::prelude::*;

use crate::lock::LockedImage;
use crate::plan::Job;
use crate::registry::Client;

/// Why a planned job has no image in the registry that `collect` can accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatched {
    /// The tag does not exist.
    NoTag,
    /// The tag names an image built from other inputs (an older build, or another matrix).
    OtherInputs { found: Option<String> },
    /// The registry failed.
    Registry(String),
}

impl Unmatched {
    pub fn describe(&self) -> String {
        match self {
            Unmatched::NoTag => "the tag does not exist".into(),
            Unmatched::OtherInputs { found: Some(f) } => {
                format!("the tag holds an image built from other inputs ({f})")
            }
            Unmatched::OtherInputs { found: None } => {
                "the tag holds an image without driver-matrix labels".into()
            }
            Unmatched::Registry(e) => e.clone(),
        }
    }
}

/// The label that carries a job's inputs hash.
pub const INPUTS_LABEL: &str = "io.driver-matrix.inputs";

/// Looks up one job's image.
pub fn collect_job(client: &Client, job: &Job) -> Result<LockedImage, Unmatched> {
    let manifest = match client.manifest(&job.image, job.arch) {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Err(Unmatched::NoTag),
        Err(e) => return Err(Unmatched::Registry(e.to_string())),
    };
    let labels = client
        .config_labels(&job.image, &manifest)
        .map_err(|e| Unmatched::Registry(e.to_string()))?;
    let found = labels.get(INPUTS_LABEL);
    if found.map(String::as_str) != Some(job.inputs.as_str()) {
        return Err(Unmatched::OtherInputs {
            found: found.cloned(),
        });
    }
    Ok(job.locked(manifest.digest))
}

/// Looks up every job's image, in parallel; results come back in plan order.
pub fn collect_all(client: &Client, jobs: &[Job]) -> Vec<Result<LockedImage, Unmatched>> {
    jobs.par_iter().map(|j| collect_job(client, j)).collect()
}
