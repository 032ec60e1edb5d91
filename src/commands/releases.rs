//! `driver-matrix releases CHANNEL [--arch A]`: the versions a channel offers, oldest first,
//! from the update graph (`-v` adds each payload).

use super::Context;
use crate::cli::ReleasesArgs;
use crate::error::{Error, Result};
use crate::exit::ExitCode;
use crate::render::appendln;

pub fn run(ctx: &Context, args: &ReleasesArgs) -> Result<ExitCode> {
    if ctx.global.offline {
        return Err(Error::usage(
            "listing a channel needs the update graph, which `--offline` forbids",
            Some("run without `--offline`".into()),
        ));
    }
    // The matrix is optional here: it only supplies the graph URL and the default arch.
    let matrix = if ctx.global.matrix.exists() {
        Some(ctx.load_matrix()?)
    } else {
        None
    };
    let nodes = crate::pipeline::channel::versions(
        &ctx.options(),
        matrix.as_ref(),
        &args.channel,
        args.arch,
    )?;
    let mut out = String::new();
    for n in &nodes {
        match (&n.payload, ctx.global.verbose > 0) {
            (Some(p), true) => appendln!(out, "{}\t{p}", n.version),
            _ => appendln!(out, "{}", n.version),
        }
    }
    print!("{out}");
    Ok(ExitCode::Ok)
}
