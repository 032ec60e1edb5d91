//! `driver-matrix plan`: the jobs, from the matrix and the resolved releases.

use super::Context;
use crate::cli::{PlanArgs, PlanFormat};
use crate::error::Result;
use crate::plan::{self, Plan, PlanInput};

pub fn run(ctx: &Context, args: &PlanArgs) -> Result<i32> {
    let plan = compute(ctx)?;
    match args.format {
        PlanFormat::Json => print!("{}", plan::render_json(&plan)),
        PlanFormat::Table => print!("{}", plan::render_table(&plan)),
    }
    Ok(0)
}

/// Loads everything and plans.
pub fn compute(ctx: &Context) -> Result<Plan> {
    let matrix = ctx.matrix()?;
    let lock = ctx.lock()?;
    // Online: the update graph and the registry (through the cache); `--offline`: the lock
    // and the cache only, failing on any release they do not hold.
    let resolved = super::resolve::resolve_matrix(ctx, &matrix, &lock)?;
    let versions = resolved.versions;
    let contexts = crate::inputs::context_digests(&matrix)?;
    let plan = plan::plan(&PlanInput {
        matrix: &matrix,
        versions: &versions,
        releases: &resolved.releases,
        contexts: &contexts,
        lock: &lock,
    })?;
    ctx.warn_all(&matrix, &plan.warnings);
    Ok(plan)
}
