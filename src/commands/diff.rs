//! `driver-matrix diff OLD [NEW]`: what changed between two lockfiles, each a path or `git:REV`
//! ([`crate::lock::read_spec`]).

use super::Context;
use crate::cli::{DiffArgs, DiffFormat};
use crate::error::Result;
use crate::lock;

pub fn run(ctx: &Context, args: &DiffArgs) -> Result<i32> {
    let lock_path = ctx.lock_path();
    let old = lock::read_spec(&args.old, &lock_path)?;
    let new = match &args.new {
        Some(spec) => lock::read_spec(spec, &lock_path)?,
        None => lock::read(&lock_path)?,
    };
    let d = lock::diff(&old, &new);
    let text = match args.format {
        DiffFormat::Text => lock::render_diff_text(&d),
        DiffFormat::Markdown => lock::render_diff_markdown(&d),
        DiffFormat::Json => lock::render_diff_json(&d),
    };
    print!("{text}");
    Ok(0)
}
