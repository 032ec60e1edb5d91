//! `driver-matrix verify [--deep]`: every locked image, every job the matrix asks for over the
//! lock's releases (coverage), and every release's DTK against its nodes' kernel.

use super::Context;
use crate::cli::VerifyArgs;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::pipeline::Access;
use crate::render::appendln;
use crate::text::escape_line;
use crate::verify::coverage::{Gap, Unmapped, releases_left};
use crate::verify::{Finding, ImageReport};

pub fn run(ctx: &Context, args: &VerifyArgs) -> Result<ExitCode> {
    if ctx.global.offline {
        return Err(Error::usage(
            "`verify` checks the registry and cannot run with `--offline`",
            None,
        ));
    }
    let session = ctx.session(Access::Read)?;
    let (matrix, lock) = (&session.matrix, &session.lock);
    let gaps = crate::verify::coverage::gaps(matrix, lock);
    if lock.images.is_empty() && gaps.is_empty() {
        return Err(Error::usage(
            "the lock holds no image to verify",
            Some("run `driver-matrix build` first".into()),
        ));
    }
    let client = session.client()?;
    let images: Vec<_> = lock
        .images
        .iter()
        .map(|i| (i.clone(), matrix.expect_of(&i.driver)))
        .collect();
    let reports = crate::verify::verify_all(client, &session.cache(), &images, args.deep);
    print!("{}", render_images(&reports, args.deep, ctx.global.quiet));
    print!("{}", render_gaps(&gaps));
    print!(
        "{}",
        render_unmapped(&crate::verify::coverage::unmapped(matrix, lock))
    );
    // A release every driver excludes is not checked: it has left the plan.
    let kernels = render_kernels(&crate::plan::exclude::kept_releases(matrix, &lock.releases));
    print!("{kernels}");
    // The contract: 4 when the registry could not answer, 1 only for what it answered.
    let unreachable = reports
        .iter()
        .any(|r| r.findings.iter().any(|f| matches!(f, Finding::Registry(_))));
    Ok(if unreachable {
        ExitCode::Registry
    } else if reports.iter().any(|r| !r.ok()) || !kernels.is_empty() || !gaps.is_empty() {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

/// A `FAIL` line per job the matrix asks for without an image, then the releases that leaves
/// without a driver; empty when every job has one.
fn render_gaps(gaps: &[Gap]) -> String {
    let mut out = String::new();
    for g in gaps {
        appendln!(out, "FAIL {}", g.describe());
    }
    let left = releases_left(gaps);
    if !left.is_empty() {
        let labels: Vec<String> = left.iter().map(|r| r.label()).collect();
        appendln!(
            out,
            "{} job(s) without an image leave {} release(s) without a driver: {}",
            gaps.len(),
            left.len(),
            labels.join(", ")
        );
    } else if !gaps.is_empty() {
        appendln!(out, "{} job(s) without an image", gaps.len());
    }
    out
}

/// A line per driver whose Module maps some locked release's nodes to nothing literal: what
/// KMM does there (nothing, or an in-cluster build); empty when every node kernel has an image.
fn render_unmapped(unmapped: &[Unmapped]) -> String {
    let mut out = String::new();
    for u in unmapped {
        appendln!(out, "{}", escape_line(&u.describe()));
    }
    out
}

/// A finding per locked release whose DTK carries another kernel than its nodes boot (the
/// images built on it will not load there); empty when there is none.
fn render_kernels(releases: &[crate::lock::LockedRelease]) -> String {
    let mut out = String::new();
    for r in releases {
        if let Some(node) = r.node_kernel_mismatch() {
            appendln!(
                out,
                "FAIL release {}: the DTK's kernel {} is not the nodes' kernel {}",
                escape_line(&r.label()),
                escape_line(r.kernel.as_str()),
                escape_line(node.as_str())
            );
        }
        if let (Some(node), Some(dtk)) = (r.node_rt_kernel_mismatch(), &r.rt_kernel) {
            appendln!(
                out,
                "FAIL release {}: the DTK's real-time kernel {} is not the real-time nodes' kernel {}",
                escape_line(&r.label()),
                escape_line(dtk.as_str()),
                escape_line(node.as_str())
            );
        }
    }
    out
}

/// A line per image (`ok` or `FAIL`, and what was checked or found under it; under `-q` only
/// the failures), then a count.
fn render_images(reports: &[ImageReport], deep: bool, quiet: bool) -> String {
    let mut out = String::new();
    let mut failed = 0;
    for r in reports {
        if !r.ok() {
            failed += 1;
        } else if quiet {
            continue;
        }
        let status = if r.ok() { "ok  " } else { "FAIL" };
        let i = &r.image;
        // The lock's strings are checked as it is read; escaped all the same, as everything
        // this command prints is.
        appendln!(
            out,
            "{status} {} {} {}  {}",
            escape_line(&i.driver),
            escape_line(i.kernel.as_str()),
            i.arch,
            escape_line(&i.pinned().to_string())
        );
        for c in &r.checked {
            let e = |s: &str| escape_line(s).into_owned();
            let m = e(&c.module);
            appendln!(out, "     {m}: vermagic {}", e(&c.vermagic));
            match &c.signature {
                Some(Ok(sig)) => {
                    let by = e(&crate::verify::describe_signer(sig));
                    appendln!(out, "     {m}: signed by {by}");
                }
                Some(Err(why)) => {
                    appendln!(
                        out,
                        "     {m}: signature unreadable: {}",
                        e(&why.to_string())
                    );
                }
                None => {}
            }
        }
        for f in &r.findings {
            appendln!(out, "     {}", escape_line(&f.describe()));
        }
    }
    let what = if deep {
        "images and their modules"
    } else {
        "images"
    };
    let total = reports.len();
    appendln!(out, "\n{} of {total} {what} verified", total - failed);
    out
}
