//! `driver-matrix export kmm|boot-module-config|preflight|github-matrix|k8s-job`.

use std::io::Write;

use super::Context;
use crate::cli::{ExportArgs, ExportKind};
use crate::error::{Error, Result};
use crate::export::{self, GITHUB_MATRIX_LIMIT};
use crate::plan::State;

pub fn run(ctx: &Context, args: &ExportArgs) -> Result<i32> {
    let text = match &args.what {
        ExportKind::Kmm {
            namespace,
            selectors,
        } => {
            let matrix = ctx.matrix()?;
            let lock = ctx.lock()?;
            let opts = export::ModuleOptions {
                namespace: namespace.clone(),
                selectors: selectors.clone(),
            };
            return deployment(export::modules(&matrix, &lock, &opts)?);
        }
        ExportKind::BootModuleConfig { namespace, pool } => {
            let matrix = ctx.matrix()?;
            let lock = ctx.lock()?;
            let opts = export::BootOptions {
                namespace: namespace.clone(),
                pool: pool.clone(),
            };
            return deployment(export::boot_module_configs(&matrix, &lock, &opts)?);
        }
        ExportKind::Preflight { namespace } => {
            let matrix = ctx.matrix()?;
            let lock = ctx.lock()?;
            if lock.releases.is_empty() {
                return Err(Error::usage(
                    "the lock holds no release",
                    Some("run `driver-matrix resolve` first".into()),
                ));
            }
            return deployment(export::preflights(&matrix, &lock, namespace.as_deref()));
        }
        ExportKind::GithubMatrix { shards } => export::github_matrix(shard_count(ctx, *shards)?),
        ExportKind::K8sJob {
            shards,
            parallelism,
            image,
            workdir,
            pull_secret,
            name,
            namespace,
            retries,
        } => export::k8s_job(&export::JobOptions {
            name: name.clone(),
            namespace: namespace.clone(),
            shards: shard_count(ctx, *shards)?,
            parallelism: *parallelism,
            image: image.clone(),
            workdir: workdir.clone(),
            pull_secret: pull_secret.clone(),
            retries_per_index: *retries,
        }),
    };
    print!("{text}");
    Ok(0)
}

/// Prints a deployment export, names every job without an image on stderr, and exits 1 if
/// there is any: the objects written are still good for the kernels they map.
fn deployment(out: export::Export) -> Result<i32> {
    print!("{}", out.text);
    if out.missing.is_empty() {
        return Ok(0);
    }
    let mut err = std::io::stderr().lock();
    for m in &out.missing {
        let _ = writeln!(err, "error: {m}");
    }
    let _ = writeln!(
        err,
        "{} job(s) have no image in the lock; run `driver-matrix build` (or `collect`), then export again",
        out.missing.len()
    );
    Ok(crate::exit::FAILED)
}

/// The shard count given, or one shard per job still to build (at least 1, at most 256).
fn shard_count(ctx: &Context, given: Option<usize>) -> Result<usize> {
    match given {
        Some(0) => Err(Error::usage("`--shards` must be at least 1", None)),
        Some(n) if n > GITHUB_MATRIX_LIMIT => Err(Error::usage(
            format!("`--shards {n}` is more than {GITHUB_MATRIX_LIMIT}"),
            Some(format!(
                "a GitHub Actions matrix holds at most {GITHUB_MATRIX_LIMIT} entries"
            )),
        )),
        Some(n) => Ok(n),
        None => {
            let plan = super::plan::compute(ctx)?;
            let todo = plan.jobs.iter().filter(|j| j.state != State::Fresh).count();
            Ok(todo.clamp(1, GITHUB_MATRIX_LIMIT))
        }
    }
}
