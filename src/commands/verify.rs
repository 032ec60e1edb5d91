//! `driver-matrix verify [--deep]`.

use std::io::Write;

use super::Context;
use crate::cli::VerifyArgs;
use crate::error::{Error, Result, exit};
use crate::pipeline::Access;
use crate::verify::Finding;

pub fn run(ctx: &Context, args: &VerifyArgs) -> Result<i32> {
    if ctx.global.offline {
        return Err(Error::usage(
            "`verify` checks the registry and cannot run with `--offline`",
            None,
        ));
    }
    let session = ctx.session(Access::Read)?;
    let (matrix, lock) = (&session.matrix, &session.lock);
    if lock.images.is_empty() {
        return Err(Error::usage(
            "the lock holds no image to verify",
            Some("run `driver-matrix build` first".into()),
        ));
    }
    let client = session.client()?;
    let images: Vec<_> = lock
        .images
        .iter()
        .map(|i| {
            let modules = matrix
                .driver(&i.driver)
                .map(|d| d.modules.clone())
                .unwrap_or_default();
            (i.clone(), modules)
        })
        .collect();
    let reports = crate::verify::verify_all(client, &images, args.deep);
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for r in &reports {
        let status = if r.ok() { "ok  " } else { "FAIL" };
        if !r.ok() {
            failed += 1;
        }
        if ctx.global.quiet && r.ok() {
            continue;
        }
        let _ = writeln!(
            out,
            "{status} {} {} {}  {}",
            r.image.driver,
            r.image.kernel,
            r.image.arch,
            r.image.pinned()
        );
        for (module, vermagic) in &r.checked {
            let _ = writeln!(out, "     {module}: vermagic {vermagic}");
        }
        for f in &r.findings {
            let _ = writeln!(out, "     {}", f.describe());
        }
    }
    let what = if args.deep {
        "images and their modules"
    } else {
        "images"
    };
    let _ = writeln!(
        out,
        "\n{} of {} {what} verified",
        reports.len() - failed,
        reports.len()
    );
    // The contract: 4 when the registry could not answer, 1 only for what it answered.
    let unreachable = reports
        .iter()
        .any(|r| r.findings.iter().any(|f| matches!(f, Finding::Registry(_))));
    Ok(if unreachable {
        exit::REGISTRY
    } else if failed > 0 {
        exit::FAILED
    } else {
        exit::OK
    })
}
