//! `driver-matrix collect`: the lock rebuilt from the registry ([`crate::pipeline::collect`]).

use std::io::Write;

use super::Context;
use crate::error::{Error, Result, exit};
use crate::pipeline::{Access, collect};

pub fn run(ctx: &Context) -> Result<i32> {
    if ctx.global.offline {
        return Err(Error::usage(
            "`collect` reads the registry and cannot run with `--offline`",
            None,
        ));
    }
    let session = ctx.session(Access::Write("collect"))?;
    let planned = super::plan::planned(ctx, &session)?;
    let (lock, missing) = collect::collect(&session, &planned)?;
    let failed: Vec<String> = missing
        .iter()
        .filter(|(_, why)| why.is_registry())
        .map(|(job, why)| format!("{}: {}", job.id(), crate::text::one_line(why)))
        .collect();
    if !failed.is_empty() {
        // A lock written now would miss images only because the registry failed: keep the
        // old one.
        return Err(Error::Collect { failed });
    }
    let changed = session.write(&lock)?;
    ctx.registry_stats(&session);
    let mut err = std::io::stderr().lock();
    if !ctx.global.quiet {
        let _ = writeln!(
            err,
            "collected {} of {} images; {} {}",
            lock.images.len(),
            planned.plan.jobs.len(),
            session.lock_path().display(),
            if changed { "updated" } else { "unchanged" }
        );
    }
    for (job, why) in &missing {
        let why = crate::text::escape_line(&crate::text::one_line(why)).into_owned();
        let _ = writeln!(err, "not collected: {}: {why} ({})", job.id(), job.image);
    }
    Ok(if missing.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}
