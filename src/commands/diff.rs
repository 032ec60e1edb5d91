//! `driver-matrix diff OLD [NEW]`: what changed between two lockfiles, each a path or `git:REV`
//! ([`crate::lock::read_spec`]).

use super::Context;
use crate::cli::{DiffArgs, DiffFormat};
use crate::error::Result;
use crate::exit::ExitCode;
use crate::lock;

pub fn run(ctx: &Context, args: &DiffArgs) -> Result<ExitCode> {
    let lock_path = ctx.lock_path();
    let old = lock::read_spec(&args.old, &lock_path)?;
    let new = match &args.new {
        Some(spec) => lock::read_spec(spec, &lock_path)?,
        None => lock::read(&lock_path)?,
    };
    let mut d = lock::diff(&old, &new);
    explain_rebuilds(ctx, args, &mut d)?;
    let text = match args.format {
        DiffFormat::Text => lock::render_diff_text(&d),
        DiffFormat::Markdown => lock::render_diff_markdown(&d),
        DiffFormat::Json => lock::render_diff_json(&d),
    };
    print!("{text}");
    Ok(ExitCode::Ok)
}

/// When the older lock is `git:REV`, what changed in the inputs of each image rebuilt for its
/// inputs, from the repository ([`lock::why`]); without a matrix to say where the contexts
/// are, the reasons stay as the locks tell them.
fn explain_rebuilds(ctx: &Context, args: &DiffArgs, d: &mut lock::LockDiff) -> Result<()> {
    let lock_path = ctx.lock_path();
    let Some(old) = lock::spec_commit(&args.old, &lock_path)? else {
        return Ok(());
    };
    let new = match &args.new {
        None => lock::why::Side::WorkTree,
        Some(spec) => match lock::spec_commit(spec, &lock_path)? {
            Some(c) => lock::why::Side::Commit(c),
            // A lock from a path may come from anywhere: its inputs are not in this checkout.
            None => return Ok(()),
        },
    };
    if let Ok(loaded) = crate::matrix::load(&ctx.global.matrix) {
        lock::why::explain(d, &loaded.matrix, &old, &new);
    }
    Ok(())
}
