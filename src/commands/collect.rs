//! `driver-matrix collect`: the `[[image]]` part of the lock, rebuilt from the registry.

use std::io::Write;

use super::Context;
use crate::error::{Error, Result, exit};
use crate::lock;

pub fn run(ctx: &Context) -> Result<i32> {
    if ctx.global.offline {
        return Err(Error::usage(
            "`collect` reads the registry and cannot run with `--offline`",
            None,
        ));
    }
    let super::plan::Planned {
        matrix,
        mut lock,
        resolution,
        plan,
    } = super::plan::load(ctx)?;
    let client = super::resolve::client(ctx, &matrix)?;
    let results = crate::collect::collect_all(&client, &plan.jobs);
    let lock_path = ctx.lock_path();
    // The whole lock is rebuilt: the releases as resolved, the images as the registry has them.
    lock.releases = resolution.releases;
    lock.images.clear();
    let mut missing = Vec::new();
    for (job, result) in plan.jobs.iter().zip(results) {
        match result {
            Ok(image) => lock.images.push(image),
            Err(why) => missing.push(format!("{}: {} ({})", job.id(), why.describe(), job.image)),
        }
    }
    let found = lock.images.len();
    let changed = lock::write_if_changed(&lock_path, &lock)?;
    let mut err = std::io::stderr().lock();
    if !ctx.global.quiet {
        let _ = writeln!(
            err,
            "collected {found} of {} images; {} {}",
            plan.jobs.len(),
            lock_path.display(),
            if changed { "updated" } else { "unchanged" }
        );
    }
    for m in &missing {
        let _ = writeln!(err, "not in the registry: {m}");
    }
    Ok(if missing.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}
