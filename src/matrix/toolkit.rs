//! `[[toolkit]]`: kernels named directly, for clusters without a release payload (plain
//! Kubernetes on RHEL, or a kernel to support ahead of a release). Each names a kernel, the
//! builder image that carries its headers (by digest, as a payload names its DTK) and its RHEL
//! version; the planner builds it for every driver whose arches include its arch, exactly as a
//! DTK's kernel. The raw table (serde + JSON Schema), its validated form, and the validation.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::Problem;
use crate::domain::{Arch, ImageRef, Kernel, check_rhel};

type S<T> = Spanned<T>;

/// A kernel to build for without an OpenShift release: the builder image plays the DTK.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(rename = "Toolkit")]
pub struct RawToolkit {
    /// The kernel release (`uname -r`), such as `5.14.0-427.13.1.el9_4.x86_64`.
    #[schemars(with = "String")]
    pub kernel: S<String>,
    /// The builder image, by digest (`repo@sha256:...`), with the kernel's headers under
    /// `/lib/modules/<kernel>/build`; passed to builds as `DTK_IMAGE` and `DTK_AUTO`.
    #[schemars(with = "String")]
    pub image: S<String>,
    /// The RHEL version of the builder, such as `9.4` (the `RHEL_VERSION` build arg).
    #[schemars(with = "String")]
    pub rhel: S<String>,
    /// The arch of the kernel; default `x86_64`. Must be one of `[openshift].arch`.
    #[serde(default)]
    #[schemars(with = "Option<Arch>")]
    pub arch: Option<S<String>>,
}

/// A validated `[[toolkit]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolkit {
    pub kernel: Kernel,
    /// By digest.
    pub image: ImageRef,
    pub rhel: String,
    pub arch: Arch,
}

/// Validates every `[[toolkit]]`: a kernel, a builder image by digest, a RHEL version, an arch
/// of the matrix; no (kernel, arch) twice. Problems go to `problems`.
pub fn validate(
    raw: &[S<RawToolkit>],
    arches: &[Arch],
    problems: &mut Vec<Problem>,
) -> Vec<Toolkit> {
    let mut out: Vec<Toolkit> = Vec::new();
    for t in raw {
        let Some(toolkit) = checked_toolkit(t.get_ref(), arches, problems) else {
            continue;
        };
        if out
            .iter()
            .any(|o| o.kernel == toolkit.kernel && o.arch == toolkit.arch)
        {
            problems.push(
                Problem::new(format!(
                    "kernel `{}` ({}) has two `[[toolkit]]` entries",
                    toolkit.kernel, toolkit.arch
                ))
                .label(t.get_ref().kernel.span(), "named again here")
                .help("keep one builder image per kernel and arch"),
            );
            continue;
        }
        out.push(toolkit);
    }
    out.sort_by(|a, b| (&a.kernel, a.arch).cmp(&(&b.kernel, b.arch)));
    out
}

/// The builder image, which must be named by digest (a tag can move under a locked kernel).
fn builder_image(
    image: &S<String>,
    bad: &mut impl FnMut(&S<String>, String, &str, &str),
) -> Option<ImageRef> {
    match image.get_ref().parse::<ImageRef>() {
        Ok(i) if i.digest().is_some() => Some(i),
        Ok(_) => {
            bad(
                image,
                format!(
                    "the builder image `{}` is not named by digest",
                    image.get_ref()
                ),
                "a tag can move",
                "name it `repository@sha256:...` (e.g. from `skopeo inspect --format '{{.Digest}}'`), as a payload names its DTK",
            );
            None
        }
        Err(e) => {
            let help = "write `repository@sha256:...`";
            bad(image, e.message, "not an image reference", help);
            None
        }
    }
}

/// One `[[toolkit]]` checked: its kernel, builder image, RHEL version and arch; `None`
/// (with every problem recorded) when any is wrong.
fn checked_toolkit(
    t: &RawToolkit,
    arches: &[Arch],
    problems: &mut Vec<Problem>,
) -> Option<Toolkit> {
    let mut bad = |s: &S<String>, message: String, label: &str, help: &str| {
        problems.push(Problem::new(message).label(s.span(), label).help(help));
    };
    let kernel = match t.kernel.get_ref().parse::<Kernel>() {
        Ok(k) => Some(k),
        Err(e) => {
            let help = "write the kernel as `uname -r` prints it";
            bad(&t.kernel, e.message, "not a kernel release", help);
            None
        }
    };
    let image = builder_image(&t.image, &mut bad);
    let rhel = t.rhel.get_ref().clone();
    let rhel_ok = check_rhel(&rhel).is_ok();
    if !rhel_ok {
        bad(
            &t.rhel,
            format!("`{rhel}` is not a RHEL version"),
            "not a version",
            "write digits and dots, like `9.4`",
        );
    }
    let arch = match &t.arch {
        None => Some(Arch::X86_64),
        Some(a) => a.get_ref().parse::<Arch>().ok().or_else(|| {
            bad(
                a,
                format!("unknown arch `{}`", a.get_ref()),
                "unknown arch",
                "use x86_64, aarch64, ppc64le or s390x",
            );
            None
        }),
    };
    let arch = arch?;
    if !arches.contains(&arch) {
        let span = t.arch.as_ref().unwrap_or(&t.kernel);
        bad(
            span,
            format!("`[[toolkit]]` kernel for {arch}, which `[openshift].arch` does not list"),
            "not an arch of the matrix",
            "add the arch to `[openshift].arch`",
        );
        return None;
    }
    Some(Toolkit {
        kernel: kernel?,
        image: image?,
        rhel: rhel_ok.then_some(rhel)?,
        arch,
    })
}
