//! Deployment and CI material made from the lock and the plan: KMM `Module`s, boot-time
//! `BootModuleConfig`s, KMM preflight validations, OpenShift `BuildConfig`s, a GitHub Actions
//! shard matrix and a Kubernetes Indexed Job. Pure functions; every output is deterministic, parses back, and the
//! KMM objects validate against KMM's CRDs (`tests/it/kmm_crds.rs`).

mod boot;
pub mod buildconfig;
mod ci;
mod jobs;
mod kmm;
mod preflight;
mod yaml;

pub use boot::{BootOptions, boot_module_configs};
pub use ci::{GITHUB_MATRIX_LIMIT, JobOptions, github_matrix, k8s_job};
pub use jobs::{Wanted, missing, node_kernels, serving, unserved};
pub use kmm::{ExportError, ModuleOptions, modules};
pub use preflight::{PreflightForm, preflights};

/// What a deployment export wrote, and the jobs it found no image for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// YAML documents, possibly none.
    pub text: String,
    /// Sorted by driver, kernel, arch.
    pub missing: Vec<Wanted>,
}

/// A Kubernetes object name from free text: lowercase, `[a-z0-9.-]`, at most 253 characters,
/// starting and ending with an alphanumeric.
pub fn object_name(text: &str) -> String {
    let mapped: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    trimmed
        .chars()
        .take(253)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn object_names_are_dns_subdomains() {
        assert_eq!(
            super::object_name("preflight-4.16.0-rc.3-x86_64"),
            "preflight-4.16.0-rc.3-x86-64"
        );
        assert_eq!(super::object_name("_Hello_KMOD_"), "hello-kmod");
    }
}
