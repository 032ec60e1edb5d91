//! `[[exclude]]` applied to releases. Pure. A rule drops every (driver, release, arch, stream,
//! kernel) that matches all of its keys; a rule without `kernel` or `stream` drops whole cells.
//!
//! A release (one `[[release]]` entry: a version, an arch, a stream) leaves the lock, the
//! warnings, `verify` and every export when every driver that builds for it is excluded from
//! all of its kernels. A release no driver builds for (their `openshift` constraints and
//! `arch` lists) is not excluded: it stays, as it always did.

use crate::domain::{Arch, Kernel, Version};
use crate::lock::LockedRelease;
use crate::matrix::{Driver, KernelCell, Matrix};

/// Whether `driver` builds for `version` on `arch` at all: its `openshift` constraint and its
/// `arch` list, before any exclude.
pub fn builds_for(driver: &Driver, version: &Version, arch: Arch) -> bool {
    driver.openshift.as_ref().is_none_or(|c| c.matches(version)) && driver.arches.contains(&arch)
}

/// The kernels of `release` that `driver` asks for before excludes: the release's kernel, and
/// its RT kernel when the driver has `rt = true`.
fn kernels<'r>(driver: &Driver, release: &'r LockedRelease) -> Vec<&'r Kernel> {
    let rt = release.rt_kernel.as_ref().filter(|_| driver.rt);
    std::iter::once(&release.kernel).chain(rt).collect()
}

/// The cell of `driver`, `release` and one of its kernels, as an exclude sees it.
pub fn cell<'a>(
    driver: &'a Driver,
    release: &'a LockedRelease,
    kernel: &'a Kernel,
) -> KernelCell<'a> {
    KernelCell {
        driver: &driver.name,
        version: &release.version,
        arch: release.arch,
        stream: release.stream_name(),
        kernel,
    }
}

/// Whether an exclude of `matrix` drops `cell`.
pub fn excluded(matrix: &Matrix, cell: &KernelCell<'_>) -> bool {
    matrix.excludes.iter().any(|e| e.matches(cell))
}

/// The kernels of `release` that `driver` builds for, after its constraint, its arches,
/// `[openshift] streams`, `rt` and the excludes.
pub fn kept_kernels<'r>(
    matrix: &Matrix,
    driver: &'r Driver,
    release: &'r LockedRelease,
) -> Vec<&'r Kernel> {
    if !builds_for(driver, &release.version, release.arch)
        || !matrix.openshift.builds_stream(release.stream_name())
    {
        return Vec::new();
    }
    kernels(driver, release)
        .into_iter()
        .filter(|k| !excluded(matrix, &cell(driver, release, k)))
        .collect()
}

/// Whether `release` leaves the lock: some driver builds for its version and arch, none keeps a
/// kernel of it, and an exclude is why.
pub fn release_excluded(matrix: &Matrix, release: &LockedRelease) -> bool {
    if matrix.excludes.is_empty() {
        return false;
    }
    let drivers: Vec<&Driver> = matrix
        .drivers
        .iter()
        .filter(|d| builds_for(d, &release.version, release.arch))
        .collect();
    !drivers.is_empty()
        && drivers
            .iter()
            .all(|d| kept_kernels(matrix, d, release).is_empty())
        && drivers.iter().any(|d| {
            kernels(d, release)
                .into_iter()
                .any(|k| excluded(matrix, &cell(d, release, k)))
        })
}

/// `releases` without those that leave the lock ([`release_excluded`]).
pub fn kept_releases(matrix: &Matrix, releases: &[LockedRelease]) -> Vec<LockedRelease> {
    releases
        .iter()
        .filter(|r| !release_excluded(matrix, r))
        .cloned()
        .collect()
}

/// Whether (`version`, `arch`) leaves whatever it resolves to, so it need not be resolved:
/// some driver builds for it, and a rule that names no `kernel` or `stream` drops the cell of
/// every one that does. (A release emptied by `kernel` or `stream` rules is resolved first,
/// then leaves by [`release_excluded`].)
pub fn excluded_before_resolving(matrix: &Matrix, version: &Version, arch: Arch) -> bool {
    let mut drivers = matrix
        .drivers
        .iter()
        .filter(|d| builds_for(d, version, arch))
        .peekable();
    drivers.peek().is_some()
        && drivers.all(|d| {
            matrix
                .excludes
                .iter()
                .any(|e| e.drops_cell(&d.name, version, arch))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::STREAM_RHEL10;

    const K1: &str = "5.14.0-427.13.1.el9_4.x86_64";
    const RT1: &str = "5.14.0-427.13.1.el9_4.x86_64+rt";
    const K10: &str = "6.12.0-55.9.1.el10_0.x86_64";

    /// Drivers `a` and `b` (`b` with `rt = true`) over 4.18.1 and 4.19.1, and `extra`.
    fn matrix(extra: &str) -> Matrix {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("ctx")).unwrap();
        std::fs::write(root.join("ctx/Containerfile"), "FROM scratch\n").unwrap();
        let text = format!(
            "[openshift]\nreleases = [\"4.18.1\", \"4.19.1\"]\n\n\
             [[driver]]\nname = \"a\"\ncontext = \"ctx\"\nimage = \"quay.io/acme/a\"\n\n\
             [[driver]]\nname = \"b\"\ncontext = \"ctx\"\nimage = \"quay.io/acme/b\"\nrt = true\n\n{extra}"
        );
        match crate::matrix::parse(&root.join("matrix.toml"), &root, text) {
            Ok(l) => l.matrix,
            Err(e) => panic!("{:?}", e.problems),
        }
    }

    fn release(version: &str, stream: Option<&str>, kernel: &str) -> LockedRelease {
        let digest = format!("sha256:{}", "ab".repeat(32));
        LockedRelease {
            version: version.parse().unwrap(),
            arch: Arch::X86_64,
            stream: stream.map(str::to_string),
            payload: format!("quay.io/r/p@{digest}").parse().unwrap(),
            dtk: format!("quay.io/r/dtk@{digest}").parse().unwrap(),
            kernel: kernel.parse().unwrap(),
            rt_kernel: Some(RT1.parse().unwrap()).filter(|_| stream.is_none()),
            rhel: "9.4".into(),
            machine_os: None,
            node_kernel: None,
            node_rt_kernel: None,
        }
    }

    fn kept<'m>(m: &'m Matrix, driver: &str, r: &'m LockedRelease) -> Vec<String> {
        let d = m.driver(driver).unwrap();
        kept_kernels(m, d, r)
            .iter()
            .map(|k| k.to_string())
            .collect()
    }

    #[test]
    fn a_kernel_rule_parks_one_kernel_and_keeps_the_others() {
        let m = matrix(&format!("[[exclude]]\nkernel = \"{K1}\"\n"));
        let default = release("4.19.1", None, K1);
        let rhel10 = release("4.19.1", Some(STREAM_RHEL10), K10);
        assert_eq!(kept(&m, "a", &default), Vec::<String>::new());
        assert_eq!(kept(&m, "b", &default), [RT1], "the RT kernel stays");
        assert_eq!(kept(&m, "a", &rhel10), [K10], "the other stream stays");
        assert!(
            !release_excluded(&m, &default),
            "b still builds its RT kernel"
        );
        assert!(!release_excluded(&m, &rhel10));
        assert!(!excluded_before_resolving(
            &m,
            &default.version,
            Arch::X86_64
        ));
    }

    #[test]
    fn a_stream_rule_drops_that_streams_release_for_its_drivers() {
        let m = matrix("[[exclude]]\nstream = \"rhel-10\"\n");
        let default = release("4.19.1", None, K1);
        let rhel10 = release("4.19.1", Some(STREAM_RHEL10), K10);
        assert_eq!(kept(&m, "a", &default), [K1]);
        assert_eq!(kept(&m, "a", &rhel10), Vec::<String>::new());
        assert!(release_excluded(&m, &rhel10), "every driver excludes it");
        assert!(!release_excluded(&m, &default));
        let only_a = matrix("[[exclude]]\nstream = \"rhel-10\"\ndriver = \"a\"\n");
        assert!(!release_excluded(&only_a, &rhel10), "b still builds it");
    }

    #[test]
    fn a_release_leaves_only_when_every_driver_that_builds_it_excludes_it() {
        let r = release("4.18.1", None, K1);
        let v = r.version.clone();
        let all = matrix("[[exclude]]\nopenshift = \"4.18.1\"\n");
        assert!(release_excluded(&all, &r));
        assert!(excluded_before_resolving(&all, &v, Arch::X86_64));
        assert_eq!(kept_releases(&all, std::slice::from_ref(&r)), []);
        let one = matrix("[[exclude]]\nopenshift = \"4.18.1\"\ndriver = \"a\"\n");
        assert!(!release_excluded(&one, &r));
        assert!(!excluded_before_resolving(&one, &v, Arch::X86_64));
        let both = matrix(
            "[[exclude]]\nopenshift = \"4.18.1\"\ndriver = \"a\"\n\n\
             [[exclude]]\nopenshift = \"4.18.*\"\ndriver = \"b\"\n",
        );
        assert!(release_excluded(&both, &r));
        assert!(excluded_before_resolving(&both, &v, Arch::X86_64));
        // Nothing excluded: a release stays, whatever builds it.
        assert!(!release_excluded(&matrix(""), &r));
        assert!(!excluded_before_resolving(&matrix(""), &v, Arch::X86_64));
    }

    #[test]
    fn the_planner_drops_only_the_kernels_a_rule_names() {
        let m = matrix(&format!(
            "[[exclude]]\ndriver = \"a\"\nstream = \"rhel-10\"\n\n[[exclude]]\nkernel = \"{RT1}\"\n"
        ));
        let releases = [
            release("4.19.1", None, K1),
            release("4.19.1", Some(STREAM_RHEL10), K10),
        ];
        let contexts = m
            .drivers
            .iter()
            .map(|d| (d.name.clone(), crate::domain::Digest::sha256(b"ctx")))
            .collect();
        let versions = ["4.19.1".parse().unwrap()];
        let plan = crate::plan::plan(&crate::plan::PlanInput {
            matrix: &m,
            versions: &versions,
            releases: &releases,
            contexts: &contexts,
            lock: &crate::lock::Lock::default(),
        })
        .unwrap();
        let jobs: Vec<String> = plan
            .jobs
            .iter()
            .map(|j| format!("{}/{}", j.driver, j.kernel))
            .collect();
        assert_eq!(
            jobs,
            [format!("a/{K1}"), format!("b/{K1}"), format!("b/{K10}")]
        );
        assert!(
            !plan
                .warnings
                .iter()
                .any(|w| w.message.contains("[[exclude]]")),
            "both rules matched: {:?}",
            plan.warnings
        );
        assert_eq!(kept_releases(&m, &releases).len(), 2);
    }
}
